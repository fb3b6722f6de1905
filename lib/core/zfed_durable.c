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
#include <signal.h>
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
    //  zfed_durable_deferred: the bytes, written into the temporary (made
    //  then) by the queue's thread; fd is -1 until then.
    char *deferred;
    size_t deferred_size;
    bool made; //  the temporary exists
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

static zfed_durable_t *s_new(const char *path)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, s_read_umask);
    zfed_durable_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->fd = -1;
    if (snprintf(self->path, sizeof self->path, "%s", path) >= (int)sizeof self->path ||
        snprintf(self->temporary, sizeof self->temporary, "%s" TEMPORARY_SUFFIX, path) >=
            (int)sizeof self->temporary) {
        free(self);
        errno = ENAMETOOLONG;
        return NULL;
    }
    return self;
}

//  Makes the temporary.  0, or -1 with errno (and none left behind).
static int s_make(zfed_durable_t *self)
{
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
        self->fd = -1;
        errno = saved;
        return -1;
    }
    self->made = true;
    return 0;
}

zfed_durable_t *zfed_durable_open(const char *path)
{
    zfed_durable_t *self = s_new(path);
    if (self && s_make(self) != 0) {
        int saved = errno;
        free(self);
        errno = saved;
        return NULL;
    }
    return self;
}

zfed_durable_t *zfed_durable_deferred(const char *path, char *data, size_t size)
{
    zfed_durable_t *self = s_new(path);
    if (!self) {
        int saved = errno;
        free(data);
        errno = saved;
        return NULL;
    }
    self->deferred = data;
    self->deferred_size = size;
    return self;
}

//  A deferred file's temporary made and its bytes written (a failure
//  sticks in failed, for commit to report with its step).
static void s_write_deferred(zfed_durable_t *self)
{
    if (!self->deferred)
        return;
    if (s_make(self) != 0)
        self->failed = errno;
    else
        (void)zfed_durable_write(self, self->deferred, self->deferred_size);
    free(self->deferred);
    self->deferred = NULL;
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

//  The folder path is in (".", "/" or the part before the last slash).
static void s_parent(const char *path, char parent[PATH_MAX])
{
    snprintf(parent, PATH_MAX, "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash)
        snprintf(parent, PATH_MAX, ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
}

static int s_fsync_folder(const char *folder)
{
    int fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static int s_fsync_parent(const char *path)
{
    char parent[PATH_MAX];
    s_parent(path, parent);
    return s_fsync_folder(parent);
}

//  fsync (unless synced: a syncfs made its data durable already), close
//  and rename: the file has its name, its folder is not yet fsynced.  0,
//  or -1 with errno and *step naming the step that failed (self is left
//  for the caller to free or abort either way).
static int s_commit_file(zfed_durable_t *self, bool synced, const char **step)
{
    s_write_deferred(self);
    int saved = self->failed;
    *step = self->made ? "write" : "create";
    if (!saved && !synced && fsync(self->fd) != 0) {
        saved = errno;
        *step = "fsync";
    }
    int fd = self->fd;
    self->fd = -1;
    if (fd >= 0 && close(fd) != 0 && !saved) {
        saved = errno;
        *step = "close";
    }
    if (!saved && rename(self->temporary, self->path) != 0) {
        saved = errno;
        *step = "rename";
    }
    errno = saved;
    return saved ? -1 : 0;
}

int zfed_durable_commit(zfed_durable_t **self_p)
{
    zfed_durable_t *self = *self_p;
    const char *step;
    if (s_commit_file(self, false, &step) != 0) {
        int saved = errno;
        zfed_durable_abort(self_p);
        errno = saved;
        return -1;
    }
    int rc = s_fsync_parent(self->path);
    int saved = errno;
    free(self);
    *self_p = NULL;
    errno = saved;
    return rc;
}

const char *zfed_durable_path(const zfed_durable_t *self)
{
    return self->path;
}

void zfed_durable_abort(zfed_durable_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_durable_t *self = *self_p;
    if (self->fd >= 0)
        close(self->fd);
    if (self->made)
        unlink(self->temporary);
    free(self->deferred);
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

//  ---------------------------------------------------------------------
//  The queue: files made durable on a thread of their own, in order

//  Folders a segment (files between two barriers) may rename into before
//  they are fsynced early; a round's group has one or two.
#define QUEUE_FOLDERS_MAX 8
//  Files between two barriers started to writeback together (and, with
//  syncfs, made durable by one syncfs) from this many.
#define SEGMENT_FILES_MIN 2
#define QUEUE_REASON_MAX  (PATH_MAX + 128)

//  An entry: a file to commit, or (NULL) a barrier.  syncfs: the queue's
//  setting when the group was handed over.
typedef struct {
    zfed_durable_t **entries;
    size_t count;
    size_t capacity;
    bool syncfs;
} group_t;

typedef struct _queued_t {
    group_t group;
    struct _queued_t *next;
} queued_t;

struct _zfed_durable_queue_t {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; //  the thread's: a group was handed over, or stop
    pthread_cond_t done; //  the waiters': a group is durable
    group_t open;        //  the caller's alone until it is handed over
    queued_t *head, *tail;
    uint64_t handed, durable;
    bool stopping;
    bool syncfs; //  the caller's: zfed_durable_queue_set_syncfs
    int failed;  //  errno of the first failure, 0 if none
    char reason[QUEUE_REASON_MAX];
};

//  The folders renamed into since the last barrier, fsynced together.
typedef struct {
    char paths[QUEUE_FOLDERS_MAX][PATH_MAX];
    size_t count;
} folders_t;

static int s_sync_folders(folders_t *folders, char *reason, size_t size)
{
    for (size_t index = 0; index < folders->count; index++)
        if (s_fsync_folder(folders->paths[index]) != 0) {
            int saved = errno;
            snprintf(reason, size, "%s: fsync of the folder: %s", folders->paths[index],
                     strerror(saved));
            folders->count = 0;
            return saved;
        }
    folders->count = 0;
    return 0;
}

static int s_note_folder(folders_t *folders, const char *path, char *reason, size_t size)
{
    char parent[PATH_MAX];
    s_parent(path, parent);
    for (size_t index = 0; index < folders->count; index++)
        if (strcmp(folders->paths[index], parent) == 0)
            return 0;
    if (folders->count == QUEUE_FOLDERS_MAX) {
        int rc = s_sync_folders(folders, reason, size);
        if (rc != 0)
            return rc;
    }
    snprintf(folders->paths[folders->count++], PATH_MAX, "%s", parent);
    return 0;
}

//  Starts the writeback of the files from first to the next barrier
//  (written first if deferred), so that their blocks are allocated in one
//  journal transaction: on ext4 the first fsync commits it for all of
//  them.  With syncfs (a group of several files) one syncfs(2) then makes
//  all their data durable, one journal commit and one flush of the
//  device's cache where an fsync each flushes it once a file; *synced
//  says so.  0, or the errno of a failed syncfs with the reason.
static int s_start_segment(group_t *group, size_t first, bool *synced, char *reason, size_t size)
{
    *synced = false;
    size_t end = first;
    while (end < group->count && group->entries[end])
        end++;
    if (end - first < SEGMENT_FILES_MIN)
        return 0;
    bool written = true;
    for (size_t index = first; index < end; index++) {
        zfed_durable_t *file = group->entries[index];
        s_write_deferred(file);
        written = written && !file->failed;
#ifdef SYNC_FILE_RANGE_WRITE
        if (!file->failed && file->handed < file->size)
            (void)sync_file_range(file->fd, (off_t)file->handed, 0, SYNC_FILE_RANGE_WRITE);
#endif
    }
#ifdef __linux__
    //  A file that failed gets its failure reported in order, by commit.
    if (group->syncfs && written) {
        zfed_durable_t *file = group->entries[first];
        if (syncfs(file->fd) != 0) {
            int saved = errno;
            snprintf(reason, size, "%s: syncfs: %s", file->path, strerror(saved));
            return saved;
        }
        *synced = true;
    }
#else
    (void)reason;
    (void)size;
    (void)written;
#endif
    return 0;
}

//  Commits a group's files in order, one fsync per folder at each barrier
//  and at the end; after a failure (or with abandon) the rest are removed,
//  never renamed: what follows a file that did not land must not land.
//  0, or the errno of the failure with the reason.
static int s_run_group(group_t *group, bool abandon, char *reason, size_t size)
{
    folders_t folders; //  not zeroed: 8 paths of PATH_MAX bytes a group
    folders.count = 0;
    int failed = abandon ? ECANCELED : 0;
    bool synced = false;
    if (!failed)
        failed = s_start_segment(group, 0, &synced, reason, size);
    for (size_t index = 0; index < group->count; index++) {
        zfed_durable_t *file = group->entries[index];
        if (failed) {
            zfed_durable_abort(&file);
            continue;
        }
        if (!file) {
            failed = s_sync_folders(&folders, reason, size);
            if (!failed)
                failed = s_start_segment(group, index + 1, &synced, reason, size);
            continue;
        }
        const char *step;
        if (s_commit_file(file, synced, &step) != 0) {
            failed = errno;
            snprintf(reason, size, "%s: %s: %s", file->path, step, strerror(failed));
            zfed_durable_abort(&file);
            continue;
        }
        failed = s_note_folder(&folders, file->path, reason, size);
        free(file);
    }
    if (!failed)
        failed = s_sync_folders(&folders, reason, size);
    return abandon ? 0 : failed;
}

static void s_group_clear(group_t *group)
{
    free(group->entries);
    *group = (group_t){0};
}

static void *s_queue_thread(void *argument)
{
    zfed_durable_queue_t *self = argument;
    pthread_mutex_lock(&self->lock);
    while (true) {
        while (!self->head && !self->stopping)
            pthread_cond_wait(&self->wake, &self->lock);
        queued_t *queued = self->head;
        if (!queued)
            break; //  stopping, and nothing left
        self->head = queued->next;
        if (!self->head)
            self->tail = NULL;
        bool abandon = self->failed != 0;
        pthread_mutex_unlock(&self->lock);
        char reason[QUEUE_REASON_MAX];
        reason[0] = '\0';
        int failed = s_run_group(&queued->group, abandon, reason, sizeof reason);
        s_group_clear(&queued->group);
        free(queued);
        pthread_mutex_lock(&self->lock);
        if (failed && !self->failed) {
            self->failed = failed;
            snprintf(self->reason, sizeof self->reason, "%s", reason);
        }
        self->durable++;
        pthread_cond_broadcast(&self->done);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

zfed_durable_queue_t *zfed_durable_queue_new(void)
{
    zfed_durable_queue_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->done, NULL);
    //  Signals stay with the caller's threads (its handlers, its polls).
    sigset_t all, before;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &before);
    int rc = pthread_create(&self->thread, NULL, s_queue_thread, self);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&self->done);
        pthread_cond_destroy(&self->wake);
        pthread_mutex_destroy(&self->lock);
        free(self);
        errno = rc;
        return NULL;
    }
    pthread_setname_np(self->thread, "zfed-durable");
    return self;
}

void zfed_durable_queue_destroy(zfed_durable_queue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_durable_queue_t *self = *self_p;
    zfed_durable_queue_submit(self);
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    pthread_cond_destroy(&self->done);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

//  A failure of the caller's side (no memory to queue a file): the job's
//  next wait reports it, as it would the thread's.
static void s_fail(zfed_durable_queue_t *self, int error, const char *path, const char *step)
{
    pthread_mutex_lock(&self->lock);
    if (!self->failed) {
        self->failed = error;
        snprintf(self->reason, sizeof self->reason, "%s: %s: %s", path, step, strerror(error));
    }
    pthread_mutex_unlock(&self->lock);
}

static void s_append(zfed_durable_queue_t *self, zfed_durable_t *file)
{
    group_t *open = &self->open;
    if (open->count == open->capacity) {
        size_t capacity = open->capacity ? open->capacity * 2 : 8;
        zfed_durable_t **grown = realloc(open->entries, capacity * sizeof *grown);
        if (!grown) {
            s_fail(self, ENOMEM, file ? file->path : "a barrier", "queue");
            zfed_durable_abort(&file);
            return;
        }
        open->entries = grown;
        open->capacity = capacity;
    }
    open->entries[open->count++] = file;
}

void zfed_durable_queue_add(zfed_durable_queue_t *self, zfed_durable_t **file_p)
{
    zfed_durable_t *file = *file_p;
    *file_p = NULL;
    if (file)
        s_append(self, file);
}

void zfed_durable_queue_barrier(zfed_durable_queue_t *self)
{
    if (self->open.count > 0 && self->open.entries[self->open.count - 1])
        s_append(self, NULL);
}

void zfed_durable_queue_submit(zfed_durable_queue_t *self)
{
    if (self->open.count == 0)
        return;
    queued_t *queued = calloc(1, sizeof *queued);
    if (!queued) {
        s_fail(self, ENOMEM, "a group", "queue");
        zfed_durable_queue_abandon(self);
        return;
    }
    queued->group = self->open;
    queued->group.syncfs = self->syncfs;
    self->open = (group_t){0};
    pthread_mutex_lock(&self->lock);
    if (self->tail)
        self->tail->next = queued;
    else
        self->head = queued;
    self->tail = queued;
    self->handed++;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
}

void zfed_durable_queue_abandon(zfed_durable_queue_t *self)
{
    for (size_t index = 0; index < self->open.count; index++)
        zfed_durable_abort(&self->open.entries[index]);
    s_group_clear(&self->open);
}

void zfed_durable_queue_set_syncfs(zfed_durable_queue_t *self, bool syncfs)
{
    self->syncfs = syncfs;
}

bool zfed_durable_queue_busy(zfed_durable_queue_t *self)
{
    pthread_mutex_lock(&self->lock);
    bool busy = self->durable < self->handed;
    pthread_mutex_unlock(&self->lock);
    return busy;
}

int zfed_durable_queue_wait(zfed_durable_queue_t *self, char *reason, size_t size)
{
    pthread_mutex_lock(&self->lock);
    while (self->durable < self->handed)
        pthread_cond_wait(&self->done, &self->lock);
    int failed = self->failed;
    if (failed)
        snprintf(reason, size, "%s", self->reason);
    pthread_mutex_unlock(&self->lock);
    if (failed) {
        errno = failed;
        return -1;
    }
    return 0;
}
