/*  zfed_models - model files in the work folder: the initial model, round
    aggregates, optimiser state, the keep policy, the final and best
    models.  */
#include "controller/zfed_models.h"
#include "controller/zfed_job_private.h"
#include "core/zfed_durable.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_safetensors.h"
#include "zfed/zfed_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODELS_DIR   "models"
#define STATE_DIR    "state"
#define INITIAL_NAME MODELS_DIR "/initial.safetensors"
//  Bytes read at a time when a model file is copied or hashed.
#define IO_BYTES (8u << 20)

struct _zfed_models_t {
    const zfed_job_t *job;
    const zfed_service_t *service;
    char path[PATH_MAX]; //  the job folder
    zfed_model_file_t current;
    zfed_layout_t *layout; //  the current model's
    int64_t best_round;    //  whose file best_model.safetensors is (-1: none)
};

//  ---------------------------------------------------------------------
//  Helpers

char *zfed_models_path(const zfed_models_t *self, const char *name, char *path)
{
    //  The store keeps job folders 64 bytes short of PATH_MAX: names fit.
    if (snprintf(path, PATH_MAX, "%s/%s", self->path, name) >= PATH_MAX)
        path[0] = '\0';
    return path;
}

static void s_round_name(char *name, int64_t round)
{
    if (round < 0)
        snprintf(name, ZFED_MODELS_NAME_MAX, INITIAL_NAME);
    else
        snprintf(name, ZFED_MODELS_NAME_MAX, MODELS_DIR "/round-%06" PRId64 ".safetensors", round);
}

void zfed_models_round_names(const zfed_models_t *self, uint32_t round, zfed_model_file_t *file)
{
    memset(file, 0, sizeof *file);
    file->round = round;
    s_round_name(file->name, round);
    const zfed_job_t *job = self->job;
    if (zfed_agg_strategy_is_optimiser(job->strategy)) {
        file->has_state = true;
        snprintf(file->m_name, sizeof file->m_name, STATE_DIR "/round-%06u.m.safetensors", round);
        if (job->strategy != ZFED_AGG_FEDAVGM)
            snprintf(file->v_name, sizeof file->v_name, STATE_DIR "/round-%06u.v.safetensors",
                     round);
    }
}

//  The SHA-256 of a safetensors file's data, and its layout (the caller's)
//  if layout_p is not NULL.  0, or -1 with the reason.
static int s_hash_file(const char *path, uint8_t digest[ZFED_SHA256_SIZE], uint64_t *size,
                       zfed_layout_t **layout_p, char *reason, size_t reason_size)
{
    zfed_safetensors_t *file = zfed_safetensors_open(path, reason, reason_size);
    if (!file)
        return -1;
    const zfed_layout_t *layout = zfed_safetensors_layout(file);
    uint64_t total = zfed_layout_nbytes(layout);
    int rc = 0;
    if (zfed_sha256_file_range(path, zfed_safetensors_data_offset(file), total, digest) != 0) {
        snprintf(reason, reason_size, "read: %s%s", strerror(errno),
                 errno == EIO ? " (did the file shrink?)" : "");
        rc = -1;
    }
    if (rc == 0 && layout_p && !(*layout_p = zfed_layout_dup(layout))) {
        snprintf(reason, reason_size, "out of memory");
        rc = -1;
    }
    *size = total;
    zfed_safetensors_close(&file);
    return rc;
}

//  Copies a safetensors file's tensors (not its metadata) to a new file,
//  hashing the data.  0, or -1 with the reason.
static int s_copy_model(const char *from, const char *to, uint8_t digest[ZFED_SHA256_SIZE],
                        char *reason, size_t reason_size)
{
    zfed_safetensors_t *file = zfed_safetensors_open(from, reason, reason_size);
    if (!file)
        return -1;
    const zfed_layout_t *layout = zfed_safetensors_layout(file);
    zfed_safetensors_writer_t *writer =
        zfed_safetensors_create(to, layout, NULL, reason, reason_size);
    zfed_sha256_t *sha256 = zfed_sha256_new();
    uint8_t *buffer = malloc(IO_BYTES);
    int rc = writer && sha256 && buffer ? 0 : -1;
    if (writer && rc != 0)
        snprintf(reason, reason_size, "out of memory");
    uint64_t total = zfed_layout_nbytes(layout);
    for (uint64_t at = 0; rc == 0 && at < total; at += IO_BYTES) {
        size_t length = (size_t)(total - at < IO_BYTES ? total - at : IO_BYTES);
        rc = zfed_safetensors_read(file, at, buffer, length, reason, reason_size);
        if (rc == 0)
            rc = zfed_safetensors_write(writer, buffer, length, reason, reason_size);
        if (rc == 0)
            rc = zfed_sha256_update(sha256, buffer, length);
    }
    if (rc == 0)
        rc = zfed_sha256_final(sha256, digest);
    if (rc == 0)
        rc = zfed_safetensors_finish(&writer, reason, reason_size);
    zfed_safetensors_abandon(&writer);
    free(buffer);
    zfed_sha256_destroy(&sha256);
    zfed_safetensors_close(&file);
    return rc;
}

//  target becomes the file at source, durably: a hard link (no copy),
//  else a copy.  0, or -1 with errno.
static int s_link(const char *source, const char *target)
{
    char temporary[PATH_MAX + 8];
    snprintf(temporary, sizeof temporary, "%s.tmp", target);
    unlink(temporary);
    if (link(source, temporary) == 0) {
        if (rename(temporary, target) != 0) {
            int saved = errno;
            unlink(temporary);
            errno = saved;
            return -1;
        }
        //  The new name is durable once its folder is.
        char folder[PATH_MAX];
        snprintf(folder, sizeof folder, "%s", target);
        char *slash = strrchr(folder, '/');
        if (slash)
            *slash = '\0';
        int fd = open(slash ? folder : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int rc = fd >= 0 ? fsync(fd) : -1;
        if (fd >= 0)
            close(fd);
        return rc;
    }
    //  No hard links here (another file system, FAT, ...): copy.
    int fd = open(source, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    zfed_durable_t *copy = zfed_durable_open(target);
    uint8_t *buffer = malloc(IO_BYTES);
    int rc = copy && buffer ? 0 : -1;
    while (rc == 0) {
        ssize_t got = read(fd, buffer, IO_BYTES);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            rc = got < 0 ? -1 : 0;
            break;
        }
        rc = zfed_durable_write(copy, buffer, (size_t)got);
    }
    int saved = errno;
    close(fd);
    free(buffer);
    if (rc == 0 && copy)
        rc = zfed_durable_commit(&copy);
    else
        zfed_durable_abort(&copy);
    errno = saved;
    return rc;
}

static void s_remove(zfed_models_t *self, const char *name)
{
    char path[PATH_MAX];
    if (name[0] && unlink(zfed_models_path(self, name, path)) != 0 && errno != ENOENT)
        zfed_warn("cannot remove %s: %s", path, strerror(errno));
}

//  Whether the keep policy keeps round's file once it is not current.
static bool s_kept(const zfed_models_t *self, int64_t round, int64_t newest)
{
    const zfed_job_t *job = self->job;
    switch (job->keep) {
    case ZFED_KEEP_ALL:
        return true;
    case ZFED_KEEP_LAST:
        return round >= 0 && round > newest - (int64_t)job->keep_last;
    case ZFED_KEEP_BEST:
        return round >= 0 && round == self->best_round;
    default:
        return false;
    }
}

//  ---------------------------------------------------------------------
//  Records

json_t *zfed_models_json(const zfed_model_file_t *file)
{
    char hex[ZFED_SHA256_HEX_SIZE];
    return json_pack("{s:s,s:s,s:I,s:I}", "sha256", zfed_sha256_hex(file->sha256, hex), "file",
                     file->name, "size", (json_int_t)file->size, "tensors",
                     (json_int_t)file->tensors);
}

json_t *zfed_models_state_json(const zfed_model_file_t *file)
{
    if (!file->has_state)
        return json_null();
    char hex[ZFED_SHA256_HEX_SIZE];
    json_t *state = json_object();
    json_object_set_new(state, "m",
                        json_pack("{s:s,s:s}", "sha256", zfed_sha256_hex(file->m_sha256, hex),
                                  "file", file->m_name));
    if (file->v_name[0])
        json_object_set_new(state, "v",
                            json_pack("{s:s,s:s}", "sha256", zfed_sha256_hex(file->v_sha256, hex),
                                      "file", file->v_name));
    return state;
}

//  A name from a record: one of ours, relative, no way out of the folder.
static int s_record_name(const json_t *value, char *name)
{
    const char *text = json_string_value(value);
    if (!text || strlen(text) >= ZFED_MODELS_NAME_MAX || strstr(text, "..") || text[0] == '/' ||
        (strncmp(text, MODELS_DIR "/", 7) != 0 && strncmp(text, STATE_DIR "/", 6) != 0))
        return -1;
    snprintf(name, ZFED_MODELS_NAME_MAX, "%s", text);
    return 0;
}

static int s_record_sha256(const json_t *value, uint8_t digest[ZFED_SHA256_SIZE])
{
    const char *text = json_string_value(value);
    if (!text || strlen(text) != 2 * ZFED_SHA256_SIZE)
        return -1;
    for (size_t i = 0; i < ZFED_SHA256_SIZE; i++) {
        unsigned byte;
        if (sscanf(text + 2 * i, "%2x", &byte) != 1)
            return -1;
        digest[i] = (uint8_t)byte;
    }
    return 0;
}

//  A state file named in a record, checked against its hash.
static int s_resume_state(zfed_models_t *self, const json_t *entry, char *name,
                          uint8_t digest[ZFED_SHA256_SIZE], zfed_error_t *error)
{
    char path[PATH_MAX], reason[ZFED_ERROR_REASON_MAX];
    uint8_t actual[ZFED_SHA256_SIZE];
    uint64_t size;
    if (s_record_name(json_object_get(entry, "file"), name) != 0 ||
        s_record_sha256(json_object_get(entry, "sha256"), digest) != 0)
        return zfed_error_set(error, ZFED_E_CORRUPT, "",
                              "the optimiser state in the last round "
                              "record is not a file and a sha256");
    if (s_hash_file(zfed_models_path(self, name, path), actual, &size, NULL, reason,
                    sizeof reason) != 0)
        return zfed_error_set(error, ZFED_E_CORRUPT, "", "optimiser state: %s", reason);
    if (memcmp(actual, digest, sizeof actual) != 0)
        return zfed_error_set(error, ZFED_E_CORRUPT, "",
                              "%s does not match the sha256 its round record gives", path);
    return 0;
}

int zfed_models_resume(zfed_models_t *self, int64_t round, const json_t *model, const json_t *state,
                       int64_t best_round, zfed_error_t *error)
{
    self->best_round = best_round;
    zfed_model_file_t file = {.round = round};
    char path[PATH_MAX], reason[ZFED_ERROR_REASON_MAX];
    uint8_t actual[ZFED_SHA256_SIZE];
    zfed_layout_t *layout = NULL;
    if (round < 0) {
        //  No round closed: the initial model as written at the start.
        s_round_name(file.name, -1);
        if (s_hash_file(zfed_models_path(self, file.name, path), file.sha256, &file.size, &layout,
                        reason, sizeof reason) != 0)
            return zfed_error_set(error, ZFED_E_CORRUPT, "", "the initial model: %s", reason);
    } else {
        if (!json_is_object(model) || s_record_name(json_object_get(model, "file"), file.name) ||
            s_record_sha256(json_object_get(model, "sha256"), file.sha256) != 0)
            return zfed_error_set(error, ZFED_E_CORRUPT, "",
                                  "round %" PRId64 "'s record names no model file", round);
        if (s_hash_file(zfed_models_path(self, file.name, path), actual, &file.size, &layout,
                        reason, sizeof reason) != 0)
            return zfed_error_set(error, ZFED_E_CORRUPT, "", "round %" PRId64 "'s model: %s", round,
                                  reason);
        if (memcmp(actual, file.sha256, sizeof actual) != 0) {
            zfed_layout_destroy(&layout);
            return zfed_error_set(error, ZFED_E_CORRUPT, "",
                                  "%s does not match the sha256 round %" PRId64 "'s record gives",
                                  path, round);
        }
    }
    file.tensors = zfed_layout_size(layout);
    if (json_is_object(state)) {
        file.has_state = true;
        if (s_resume_state(self, json_object_get(state, "m"), file.m_name, file.m_sha256, error) !=
                0 ||
            (json_object_get(state, "v") &&
             s_resume_state(self, json_object_get(state, "v"), file.v_name, file.v_sha256, error) !=
                 0)) {
            zfed_layout_destroy(&layout);
            return -1;
        }
    }
    zfed_layout_destroy(&self->layout);
    self->layout = layout;
    self->current = file;
    return 0;
}

//  ---------------------------------------------------------------------
//  The initial model

//  The service's own model, from the first task's params and the seed.
static int s_build_initial(zfed_models_t *self, const char *path, uint8_t *digest,
                           zfed_error_t *error)
{
    uint8_t *params = NULL;
    size_t params_size = 0;
    if (zfed_job_pack_params(self->job, 0, 0, &params, &params_size, error) != 0)
        return -1;
    msgpack_unpacked unpacked;
    zfed_fault_t fault = {0};
    zfed_model_t *model = NULL;
    int rc = zfed_unpack(&unpacked, params, params_size);
    if (rc == 0) {
        zfed_job_service_params(self->job, &unpacked.data);
        rc = self->service->initial_model(&unpacked.data, self->job->seed, &model, &fault);
    }
    msgpack_unpacked_destroy(&unpacked);
    free(params);
    if (rc != 0 || !model)
        return zfed_error_set(error, ZFED_E_INVALID, "initial_model",
                              "%s cannot build its initial model: %s%s%s", self->job->service,
                              fault.field, fault.field[0] ? ": " : "", fault.text);
    char reason[ZFED_ERROR_REASON_MAX];
    rc = zfed_model_check_finite(model, reason, sizeof reason);
    if (rc == 0)
        rc = zfed_safetensors_save(path, model, NULL, reason, sizeof reason);
    if (rc == 0)
        rc = zfed_sha256(zfed_model_data(model), zfed_model_nbytes(model), digest);
    zfed_model_destroy(&model);
    if (rc != 0)
        return zfed_error_set(error, ZFED_E_IO, "initial_model", "%s", reason);
    return 0;
}

int zfed_models_start(zfed_models_t *self, zfed_error_t *error)
{
    zfed_model_file_t file = {.round = -1};
    s_round_name(file.name, -1);
    char path[PATH_MAX], reason[ZFED_ERROR_REASON_MAX];
    zfed_models_path(self, file.name, path);
    const char *initial = self->job->initial_model;
    if (initial[0]) {
        if (s_copy_model(initial, path, file.sha256, reason, sizeof reason) != 0)
            return zfed_error_set(error, ZFED_E_INVALID, "initial_model", "%s", reason);
    } else if (s_build_initial(self, path, file.sha256, error) != 0)
        return -1;
    //  Read back what was written: the layout every round will have.
    zfed_safetensors_t *written = zfed_safetensors_open(path, reason, sizeof reason);
    if (!written)
        return zfed_error_set(error, ZFED_E_IO, "initial_model", "%s", reason);
    zfed_layout_destroy(&self->layout);
    self->layout = zfed_layout_dup(zfed_safetensors_layout(written));
    zfed_safetensors_close(&written);
    if (!self->layout)
        return zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
    //  Floats in a model that rounds will average must be numbers.
    file.size = zfed_layout_nbytes(self->layout);
    file.tensors = zfed_layout_size(self->layout);
    self->current = file;
    return 0;
}

//  ---------------------------------------------------------------------
//  Rounds

int zfed_models_advance(zfed_models_t *self, const zfed_model_file_t *next, int64_t best_round,
                        zfed_error_t *error)
{
    zfed_model_file_t previous = self->current;
    int64_t best_before = self->best_round;
    char path[PATH_MAX], best[PATH_MAX];
    if (best_round >= 0 && best_round == next->round && best_round != best_before) {
        if (s_link(zfed_models_path(self, next->name, path),
                   zfed_models_path(self, ZFED_MODELS_BEST, best)) != 0)
            return zfed_error_set(error, ZFED_E_IO, "", "cannot write %s: %s", best,
                                  strerror(errno));
    }
    self->best_round = best_round;
    self->current = *next;
    //  Files no round needs any more, as the policy says.
    if (!s_kept(self, previous.round, next->round))
        s_remove(self, previous.name);
    if (previous.has_state) {
        s_remove(self, previous.m_name);
        s_remove(self, previous.v_name);
    }
    const zfed_job_t *job = self->job;
    char name[ZFED_MODELS_NAME_MAX];
    if (job->keep == ZFED_KEEP_LAST && next->round - (int64_t)job->keep_last >= 0 &&
        next->round - (int64_t)job->keep_last != previous.round) {
        s_round_name(name, next->round - (int64_t)job->keep_last);
        s_remove(self, name);
    }
    if (job->keep == ZFED_KEEP_BEST && best_before >= 0 && best_before != best_round &&
        best_before != previous.round) {
        s_round_name(name, best_before);
        s_remove(self, name);
    }
    return 0;
}

int zfed_models_set_best(zfed_models_t *self, int64_t best_round, zfed_error_t *error)
{
    int64_t before = self->best_round;
    if (best_round < 0 || best_round == before)
        return 0;
    char name[ZFED_MODELS_NAME_MAX], path[PATH_MAX], best[PATH_MAX];
    s_round_name(name, best_round);
    if (s_link(zfed_models_path(self, name, path),
               zfed_models_path(self, ZFED_MODELS_BEST, best)) != 0)
        return zfed_error_set(error, ZFED_E_IO, "", "cannot write %s: %s", best, strerror(errno));
    self->best_round = best_round;
    //  The best before is no round's global any more (it is older than
    //  the pending round, which is current).
    if (self->job->keep == ZFED_KEEP_BEST && before >= 0 && before != self->current.round) {
        s_round_name(name, before);
        s_remove(self, name);
    }
    return 0;
}

int zfed_models_finish(zfed_models_t *self, bool completed, zfed_error_t *error)
{
    char path[PATH_MAX], final[PATH_MAX];
    if (s_link(zfed_models_path(self, self->current.name, path),
               zfed_models_path(self, ZFED_MODELS_FINAL, final)) != 0)
        return zfed_error_set(error, ZFED_E_IO, "", "cannot write %s: %s", final, strerror(errno));
    if (!completed)
        return 0; //  a job to resume needs its current model where it is
    if (self->current.round < 0 || !s_kept(self, self->current.round, self->current.round))
        s_remove(self, self->current.name);
    if (self->current.has_state) {
        s_remove(self, self->current.m_name);
        s_remove(self, self->current.v_name);
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Construction

zfed_models_t *zfed_models_new(const char *path, const zfed_job_t *job,
                               const zfed_service_t *service, zfed_error_t *error)
{
    zfed_models_t *self = calloc(1, sizeof *self);
    if (!self) {
        zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
        return NULL;
    }
    self->job = job;
    self->service = service;
    self->best_round = -1;
    snprintf(self->path, sizeof self->path, "%s", path);
    char folder[PATH_MAX];
    if (zfed_mkdir_p(zfed_models_path(self, MODELS_DIR, folder)) != 0 ||
        zfed_mkdir_p(zfed_models_path(self, STATE_DIR, folder)) != 0) {
        zfed_error_set(error, ZFED_E_IO, "workdir", "cannot create %s: %s", folder,
                       strerror(errno));
        free(self);
        return NULL;
    }
    return self;
}

void zfed_models_destroy(zfed_models_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_layout_destroy(&(*self_p)->layout);
    free(*self_p);
    *self_p = NULL;
}

const zfed_model_file_t *zfed_models_current(const zfed_models_t *self)
{
    return &self->current;
}

const zfed_layout_t *zfed_models_layout(const zfed_models_t *self)
{
    return self->layout;
}
