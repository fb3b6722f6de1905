/*  zfed_durable - temporary file, fsync, rename, fsync of the folder.

    A big file (a model) is handed to the kernel's writeback as it is
    written, WRITEBACK_STEP bytes at a time (sync_file_range, which starts
    the writes without waiting for them), so the fsync of commit waits for
    the last few MiB, not for a whole model of dirty pages.
*/
#define _GNU_SOURCE //  sync_file_range
#include "core/zfed_durable.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  PATH + this, the Xs replaced by mkstemp.
#define TEMPORARY_SUFFIX ".tmp." TEMPORARY_RANDOM
#define TEMPORARY_RANDOM "XXXXXX"
#define FILE_MODE        0644
//  Bytes written between two starts of writeback.
#define WRITEBACK_STEP (8u << 20)

struct _zfed_durable_t {
    char path[PATH_MAX];
    char temporary[PATH_MAX];
    int fd;
    uint64_t size;
    uint64_t handed; //  bytes handed to writeback so far
    int failed;      //  errno of the first failed write, 0 if none
};

//  mkstemp makes 0600; the file gets FILE_MODE less the umask, as open()
//  would have given it.  The umask can only be read by setting it, so it
//  is read once.
static mode_t s_file_mode;
static void s_read_umask(void)
{
    mode_t mask = umask(0);
    umask(mask);
    s_file_mode = FILE_MODE & ~mask;
}

zfed_durable_t *zfed_durable_open(const char *path)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, s_read_umask);
    zfed_durable_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    if (snprintf(self->path, sizeof self->path, "%s", path) >= (int)sizeof self->path ||
        snprintf(self->temporary, sizeof self->temporary, "%s" TEMPORARY_SUFFIX, path) >=
            (int)sizeof self->temporary) {
        free(self);
        errno = ENAMETOOLONG;
        return NULL;
    }
    //  A fresh name per write (O_EXCL): two writers of one path, which a
    //  second controller on a job folder once was, each write their own
    //  file and the last rename wins whole, instead of one truncating the
    //  other's half-written temporary or renaming it away under it.
    self->fd = mkstemp(self->temporary);
    if (self->fd < 0 || fcntl(self->fd, F_SETFD, FD_CLOEXEC) != 0 ||
        fchmod(self->fd, s_file_mode) != 0) {
        int saved = errno;
        if (self->fd >= 0) {
            close(self->fd);
            unlink(self->temporary);
        }
        free(self);
        errno = saved;
        return NULL;
    }
    return self;
}

int zfed_durable_write(zfed_durable_t *self, const void *data, size_t size)
{
    if (self->failed) {
        errno = self->failed;
        return -1;
    }
    const char *cursor = data;
    while (size > 0) {
        ssize_t written = write(self->fd, cursor, size);
        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0) {
            self->failed = errno;
            return -1;
        }
        cursor += written;
        size -= (size_t)written;
        self->size += (uint64_t)written;
    }
#ifdef SYNC_FILE_RANGE_WRITE
    if (self->size - self->handed >= WRITEBACK_STEP) {
        //  Advice only: a file system without it still gets its fsync.
        (void)sync_file_range(self->fd, (off_t)self->handed, (off_t)(self->size - self->handed),
                              SYNC_FILE_RANGE_WRITE);
        self->handed = self->size;
    }
#endif
    return 0;
}

uint64_t zfed_durable_size(const zfed_durable_t *self)
{
    return self->size;
}

static int s_fsync_parent(const char *path)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash)
        snprintf(parent, sizeof parent, ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int zfed_durable_commit(zfed_durable_t **self_p)
{
    zfed_durable_t *self = *self_p;
    int saved = self->failed;
    if (!saved && fsync(self->fd) != 0)
        saved = errno;
    int fd = self->fd;
    self->fd = -1;
    if (close(fd) != 0 && !saved)
        saved = errno;
    if (!saved && rename(self->temporary, self->path) != 0)
        saved = errno;
    if (saved) {
        zfed_durable_abort(self_p);
        errno = saved;
        return -1;
    }
    int rc = s_fsync_parent(self->path);
    saved = errno;
    free(self);
    *self_p = NULL;
    errno = saved;
    return rc;
}

void zfed_durable_abort(zfed_durable_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_durable_t *self = *self_p;
    if (self->fd >= 0)
        close(self->fd);
    unlink(self->temporary);
    free(self);
    *self_p = NULL;
}

//  "NAME.tmp.XXXXXX" with six characters of mkstemp's alphabet.
static bool s_is_temporary(const char *name)
{
    static const char marker[] = ".tmp.";
    size_t length = strlen(name);
    size_t random = sizeof TEMPORARY_RANDOM - 1;
    size_t tail = sizeof marker - 1 + random;
    if (length <= tail || memcmp(name + length - tail, marker, sizeof marker - 1) != 0)
        return false;
    for (const char *cursor = name + length - random; *cursor; cursor++)
        if (!((*cursor >= 'a' && *cursor <= 'z') || (*cursor >= 'A' && *cursor <= 'Z') ||
              (*cursor >= '0' && *cursor <= '9')))
            return false;
    return true;
}

int zfed_durable_sweep(const char *folder)
{
    DIR *dir = opendir(folder);
    if (!dir)
        return -1;
    int removed = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        struct stat info;
        if (!s_is_temporary(entry->d_name) ||
            fstatat(dirfd(dir), entry->d_name, &info, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(info.st_mode))
            continue;
        if (unlinkat(dirfd(dir), entry->d_name, 0) == 0)
            removed++;
    }
    closedir(dir);
    return removed;
}
