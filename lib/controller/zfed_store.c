/*  zfed_store - the work folder of one job.  */
#include "controller/zfed_store_private.h"
#include "zfed/zfed_json.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_util.h"
#include "core/zfed_durable.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROUNDS_DIR "rounds"
//  Largest record read back.
#define RECORD_MAX (256 << 20)
#define LOCK_MODE  0644
//  "<pid>\n" in the lock file.
#define PID_TEXT_MAX 24
//  How long a refused controller waits for a holder that has just taken
//  the lock to write its pid, polling every PID_POLL_MS.
#define PID_WAIT_MS 2000
#define PID_POLL_MS 5

struct _zfed_store_t {
    char path[PATH_MAX];
    int lock_fd; //  controller.lock, or -1
    bool locked; //  the flock on it is ours
    //  The durability thread: started once the folder is ours, stopped
    //  (drained) before the lock is released.
    zfed_durable_queue_t *queue;
};

//  The pid the holder wrote into the lock file, or 0 when there is none
//  yet: between its flock and its write a starting holder has not written
//  it, and a crashed holder's pid (no process any more) does not count.
static long s_holder_pid(int fd)
{
    char text[PID_TEXT_MAX] = "";
    ssize_t length = pread(fd, text, sizeof text - 1, 0);
    if (length <= 0)
        return 0;
    text[length] = '\0';
    char *end = NULL;
    long pid = strtol(text, &end, 10);
    if (end == text || pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
        return 0;
    return pid;
}

//  Takes the job folder for this process: an exclusive, non-blocking flock
//  on controller.lock (which lives as long as the descriptor, so it is
//  released however the process ends), then our pid in it for the next
//  controller's message.  A folder held by another controller is refused
//  with its pid, waited for a moment when it has only just taken the lock
//  and not yet written it.  0, or -1 with the error.
static int s_lock(zfed_store_t *self, const char *job_id, zfed_error_t *error)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", self->path, ZFED_STORE_LOCK);
    self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, LOCK_MODE);
    if (self->lock_fd < 0)
        return zfed_error_set(error, ZFED_E_IO, "workdir", "cannot open %s: %s", path,
                              strerror(errno));
    int64_t give_up_ms = zfed_clock_ms() + PID_WAIT_MS;
    while (flock(self->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return zfed_error_set(error, ZFED_E_IO, "workdir", "cannot lock %s: %s", path,
                                  strerror(errno));
        long pid = s_holder_pid(self->lock_fd);
        if (pid > 0)
            return zfed_error_set(error, ZFED_E_BUSY, "", "job %s is running (pid %ld)", job_id,
                                  pid);
        if (zfed_clock_ms() >= give_up_ms)
            return zfed_error_set(error, ZFED_E_BUSY, "",
                                  "job %s is running (another controller holds %s)", job_id, path);
        usleep(PID_POLL_MS * 1000);
    }
    self->locked = true;
    char text[PID_TEXT_MAX];
    int length = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    if (ftruncate(self->lock_fd, 0) != 0 ||
        pwrite(self->lock_fd, text, (size_t)length, 0) != length)
        return zfed_error_set(error, ZFED_E_IO, "workdir", "cannot write %s: %s", path,
                              strerror(errno));
    return 0;
}

zfed_store_t *zfed_store_open(const char *workdir, const char *job_id, bool resume,
                              zfed_error_t *error)
{
    zfed_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
        return NULL;
    }
    self->lock_fd = -1;
    if (snprintf(self->path, sizeof self->path, "%s/%s", workdir, job_id) >=
        (int)sizeof self->path - 64) {
        zfed_error_set(error, ZFED_E_INVALID, "workdir", "work folder path is too long");
        goto err;
    }
    //  The folder must exist to be locked: a new job makes it; a job to
    //  resume must have it (and is checked for its job.json under the lock).
    struct stat folder;
    if (resume && (stat(self->path, &folder) != 0 || !S_ISDIR(folder.st_mode))) {
        zfed_error_set(error, ZFED_E_NO_JOB, "job_id", "%s holds no job to resume", self->path);
        goto err;
    }
    if (!resume && zfed_mkdir_p(self->path) != 0) {
        zfed_error_set(error, ZFED_E_IO, "workdir", "cannot create %s: %s", self->path,
                       strerror(errno));
        goto err;
    }
    if (s_lock(self, job_id, error) != 0)
        goto err;
    char job_file[PATH_MAX + 16];
    snprintf(job_file, sizeof job_file, "%s/%s", self->path, ZFED_STORE_JOB);
    bool exists = access(job_file, F_OK) == 0;
    if (exists && !resume) {
        zfed_error_set(error, ZFED_E_EXISTS, "job_id",
                       "%s already holds job %s; resume it with --resume %s or pick another "
                       "--job-id",
                       self->path, job_id, job_id);
        goto err;
    }
    if (!exists && resume) {
        zfed_error_set(error, ZFED_E_NO_JOB, "job_id", "%s holds no job to resume", self->path);
        goto err;
    }
    char rounds[PATH_MAX + 16];
    snprintf(rounds, sizeof rounds, "%s/%s", self->path, ROUNDS_DIR);
    if (zfed_mkdir_p(rounds) != 0) {
        zfed_error_set(error, ZFED_E_IO, "workdir", "cannot create %s: %s", rounds,
                       strerror(errno));
        goto err;
    }
    //  Ours alone now: what a crashed writer left half-written goes.
    zfed_durable_sweep(self->path);
    zfed_durable_sweep(rounds);
    self->queue = zfed_durable_queue_new();
    if (!self->queue) {
        zfed_error_set(error, ZFED_E_NOMEM, "", "cannot start the work folder's thread: %s",
                       strerror(errno));
        goto err;
    }
    return self;
err:
    zfed_store_destroy(&self);
    return NULL;
}

void zfed_store_destroy(zfed_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_store_t *self = *self_p;
    //  What was handed over lands (or fails) while the folder is ours.
    zfed_durable_queue_destroy(&self->queue);
    //  Emptied before it is released, so the next controller never reads
    //  our pid as a holder's.
    if (self->locked && ftruncate(self->lock_fd, 0) != 0)
        zfed_debug("cannot empty %s in %s", ZFED_STORE_LOCK, self->path);
    if (self->lock_fd >= 0)
        close(self->lock_fd); //  releases the flock
    free(self);
    *self_p = NULL;
}

const char *zfed_store_path(zfed_store_t *self)
{
    return self->path;
}

int zfed_store_write(zfed_store_t *self, const char *name, const json_t *value)
{
    //  After what is queued, in order (a failure there is the flush's to
    //  report: this file is still written).
    char ignored[8];
    if (self->queue) {
        zfed_durable_queue_submit(self->queue);
        zfed_durable_queue_wait(self->queue, ignored, sizeof ignored);
    }
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", self->path, name);
    return zfed_json_write_durable(path, value);
}

int zfed_store_stage(zfed_store_t *self, const char *name, const json_t *value)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", self->path, name);
    size_t size = 0;
    char *text = zfed_json_file_text(value, &size);
    if (!text) {
        errno = ENOMEM;
        return -1;
    }
    //  Written into its temporary by the durability thread, in order.
    zfed_durable_t *file = zfed_durable_deferred(path, text, size);
    if (!file)
        return -1;
    zfed_durable_queue_add(self->queue, &file);
    return 0;
}

void zfed_store_stage_file(zfed_store_t *self, zfed_durable_t **file_p)
{
    zfed_durable_queue_add(self->queue, file_p);
}

void zfed_store_barrier(zfed_store_t *self)
{
    zfed_durable_queue_barrier(self->queue);
}

int zfed_store_flush(zfed_store_t *self, bool wait, zfed_error_t *error)
{
    char reason[PATH_MAX + 160];
    if (zfed_durable_queue_wait(self->queue, reason, sizeof reason) == 0) {
        zfed_durable_queue_submit(self->queue);
        if (!wait || zfed_durable_queue_wait(self->queue, reason, sizeof reason) == 0)
            return 0;
    }
    zfed_durable_queue_abandon(self->queue);
    return zfed_error_set(error, ZFED_E_IO, "", "the work folder failed: %s", reason);
}

void zfed_store_set_syncfs(zfed_store_t *self, bool syncfs)
{
    zfed_durable_queue_set_syncfs(self->queue, syncfs);
}

bool zfed_store_busy(zfed_store_t *self)
{
    return zfed_durable_queue_busy(self->queue);
}

static void s_round_name(uint32_t round, char *name, size_t size)
{
    snprintf(name, size, ROUNDS_DIR "/round-%06u.json", round);
}

void zfed_store_results_name(uint32_t round, char *name, size_t size)
{
    snprintf(name, size, ROUNDS_DIR "/round-%06u.results.ndjson", round);
}

int zfed_store_write_round(zfed_store_t *self, uint32_t round, const json_t *record)
{
    char name[64];
    s_round_name(round, name, sizeof name);
    return zfed_store_write(self, name, record);
}

int zfed_store_stage_round(zfed_store_t *self, uint32_t round, const json_t *record)
{
    char name[64];
    s_round_name(round, name, sizeof name);
    return zfed_store_stage(self, name, record);
}

json_t *zfed_store_read(zfed_store_t *self, const char *name, char *error, size_t error_size)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", self->path, name);
    size_t size = 0;
    char *text = zfed_read_file(path, RECORD_MAX, &size);
    if (!text) {
        snprintf(error, error_size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    json_error_t parse_error;
    json_t *value = json_loadb(text, size, JSON_REJECT_DUPLICATES, &parse_error);
    free(text);
    if (!value) {
        snprintf(error, error_size, "%s is corrupt (line %d: %s)", path, parse_error.line,
                 parse_error.text);
        errno = EBADMSG;
    }
    return value;
}

json_t *zfed_store_read_round(zfed_store_t *self, uint32_t round, char *error, size_t error_size)
{
    char name[64];
    s_round_name(round, name, sizeof name);
    json_t *record = zfed_store_read(self, name, error, error_size);
    if (!record)
        return NULL;
    json_t *number = json_object_get(record, "round");
    if (!json_is_integer(number) || json_integer_value(number) != (json_int_t)round ||
        !json_is_object(json_object_get(record, "global_out"))) {
        snprintf(error, error_size, "%s/%s is not the complete record of round %u", self->path,
                 name, round);
        json_decref(record);
        errno = EBADMSG;
        return NULL;
    }
    return record;
}
