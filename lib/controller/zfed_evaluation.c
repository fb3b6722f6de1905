/*  zfed_evaluation - a round's model scored on the job's eval_data, on a
    thread of its own or inline.  */
#include "controller/zfed_evaluation.h"
#include "controller/zfed_job_private.h"
#include "zfed/zfed_model.h"
#include "zfed/zfed_safetensors.h"
#include "zfed/zfed_sha256.h"
#include "zfed/zfed_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Longest text of a failure to evaluate, and the longest part of it a
//  loader's or service's text may take.
#define EVALUATION_REASON_MAX 1024
#define EVALUATION_TEXT_MAX   512

struct _zfed_evaluation_t {
    const zfed_job_t *job;
    const zfed_service_t *service;
    const void *eval_data;
    uint32_t round;
    char *path;
    uint8_t *params;
    size_t params_size;
    bool on_thread;
    pthread_t thread;
    //  Written by the scoring thread only, read after it was joined.
    json_t *figures;
    int rc;
    char reason[EVALUATION_REASON_MAX];
};

//  The scoring itself, on whichever thread runs it.
static void s_score(zfed_evaluation_t *self)
{
    int64_t started_us = zfed_clock_us();
    char reason[EVALUATION_TEXT_MAX];
    zfed_model_t *model = zfed_safetensors_load(self->path, NULL, reason, sizeof reason);
    msgpack_unpacked params;
    zfed_fault_t fault = {0};
    self->figures = json_object();
    //  Every task's params give the same model (check_global said so for
    //  each): the first's say how to read it.
    int rc = model && self->figures ? zfed_unpack(&params, self->params, self->params_size) : -1;
    if (rc == 0) {
        zfed_job_service_params(self->job, &params.data);
        rc = self->service->evaluate(&params.data, model, self->eval_data, self->figures, &fault);
        msgpack_unpacked_destroy(&params);
    } else if (!self->figures)
        zfed_fault_set(&fault, ZFED_ERR_INTERNAL, "", "out of memory");
    else if (model)
        zfed_fault_set(&fault, ZFED_ERR_INTERNAL, "", "cannot unpack the task's params");
    else
        zfed_fault_set(&fault, ZFED_ERR_INTERNAL, "", "%s", reason);
    zfed_model_destroy(&model);
    if (rc == 0 &&
        json_object_set_new(self->figures, "eval_us",
                            json_integer((json_int_t)(zfed_clock_us() - started_us))) != 0) {
        zfed_fault_set(&fault, ZFED_ERR_INTERNAL, "", "out of memory");
        rc = -1;
    }
    if (rc != 0)
        snprintf(self->reason, sizeof self->reason, "round %u: cannot evaluate its model: %s%s%.*s",
                 self->round, fault.field, fault.field[0] ? ": " : "", EVALUATION_REASON_MAX - 64,
                 fault.text);
    self->rc = rc;
}

static void *s_thread(void *argument)
{
    s_score(argument);
    //  Loading may hash (libcrypto keeps per-thread state): hand it back.
    zfed_sha256_thread_done();
    return NULL;
}

static void s_destroy(zfed_evaluation_t **self_p)
{
    zfed_evaluation_t *self = *self_p;
    json_decref(self->figures);
    free(self->path);
    free(self->params);
    free(self);
    *self_p = NULL;
}

zfed_evaluation_t *zfed_evaluation_start(const zfed_job_t *job, const zfed_service_t *service,
                                         const void *eval_data, uint32_t round, const char *path,
                                         const uint8_t *params, size_t params_size, bool on_thread,
                                         char *failure, size_t failure_size)
{
    zfed_evaluation_t *self = calloc(1, sizeof *self);
    if (self) {
        *self = (zfed_evaluation_t){.job = job,
                                    .service = service,
                                    .eval_data = eval_data,
                                    .round = round,
                                    .path = strdup(path),
                                    .params = malloc(params_size ? params_size : 1),
                                    .params_size = params_size,
                                    .on_thread = on_thread};
    }
    if (!self || !self->path || !self->params) {
        snprintf(failure, failure_size, "round %u: cannot evaluate its model: out of memory",
                 round);
        if (self)
            s_destroy(&self);
        return NULL;
    }
    memcpy(self->params, params, params_size);
    if (!on_thread) {
        s_score(self);
        return self;
    }
    int rc = pthread_create(&self->thread, NULL, s_thread, self);
    if (rc != 0) {
        snprintf(failure, failure_size, "round %u: cannot start its evaluation's thread: %s", round,
                 strerror(rc));
        s_destroy(&self);
        return NULL;
    }
    return self;
}

int zfed_evaluation_finish(zfed_evaluation_t **self_p, json_t *record, char *failure,
                           size_t failure_size)
{
    zfed_evaluation_t *self = *self_p;
    if (self->on_thread)
        pthread_join(self->thread, NULL);
    int rc = self->rc;
    if (rc == 0 && json_object_update(record, self->figures) != 0) {
        snprintf(self->reason, sizeof self->reason,
                 "round %u: cannot evaluate its model: out of memory", self->round);
        rc = -1;
    }
    if (rc != 0)
        snprintf(failure, failure_size, "%s", self->reason);
    s_destroy(self_p);
    return rc;
}
