/*  zfed_store - the work folder of one job.  */
#include "zfed/zfed_store.h"
#include "zfed/zfed_json.h"
#include "zfed/zfed_util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROUNDS_DIR "rounds"
//  Largest record read back.
#define RECORD_MAX (256 << 20)

struct _zfed_store_t {
    char path[PATH_MAX];
};

zfed_store_t *zfed_store_open(const char *workdir, const char *job_id, bool resume,
                              zfed_error_t *error)
{
    zfed_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
        return NULL;
    }
    if (snprintf(self->path, sizeof self->path, "%s/%s", workdir, job_id) >=
        (int)sizeof self->path - 64) {
        zfed_error_set(error, ZFED_E_INVALID, "workdir", "work folder path is too long");
        goto err;
    }
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
    return self;
err:
    free(self);
    return NULL;
}

void zfed_store_destroy(zfed_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

const char *zfed_store_path(zfed_store_t *self)
{
    return self->path;
}

int zfed_store_write(zfed_store_t *self, const char *name, const json_t *value)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", self->path, name);
    return zfed_json_write_durable(path, value);
}

static void s_round_name(uint32_t round, char *name, size_t size)
{
    snprintf(name, size, ROUNDS_DIR "/round-%06u.json", round);
}

int zfed_store_write_round(zfed_store_t *self, uint32_t round, const json_t *record)
{
    char name[64];
    s_round_name(round, name, sizeof name);
    return zfed_store_write(self, name, record);
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
