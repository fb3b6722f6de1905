/*  zfed_durable - temporary file, fsync, rename, fsync of the folder.

    A big file (a model) is handed to the kernel's writeback as it is
    written, WRITEBACK_STEP bytes at a time (sync_file_range, which starts
    the writes without waiting for them), so the fsync of commit waits for
    the last few MiB, not for a whole model of dirty pages.
*/
#define _GNU_SOURCE //  sync_file_range
#include "core/zfed_durable.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEMPORARY_SUFFIX ".tmp"
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

zfed_durable_t *zfed_durable_open(const char *path)
{
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
    //  One fixed name per target, truncated when reused: a crash leaves at
    //  most one stale temporary file per path, which the next write takes
    //  over.  (One writer per path: a job folder has one controller.)
    self->fd = open(self->temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, FILE_MODE);
    if (self->fd < 0) {
        int saved = errno;
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
