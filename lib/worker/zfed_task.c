/*  zfed_task - error replies, site parameters and model tasks.  */
#include "worker/zfed_task.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_sha256.h"
#include "zfed/zfed_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define PARAM_SITE "site"
#define REASON_MAX 512
#define DIFF_MAX   256

void zfed_task_encode_error(const char *worker, const zfed_task_ids_t *ids,
                            const zfed_fault_t *fault, msgpack_sbuffer *reply)
{
    zfed_debug("%s: refusing task %s/%u/%u: %s%s%s", worker, ids->job_id, ids->round, ids->task_id,
               fault->field, fault->field[0] ? ": " : "", fault->text);
    msgpack_sbuffer_clear(reply);
    zfed_msg_t *error = zfed_msg_new_error(ids->job_id, ids->round, ids->task_id, ids->attempt,
                                           worker, fault->code, fault->field, fault->text);
    if (!error || zfed_msg_encode(error, reply) != 0) {
        //  Nothing sensible to send: an empty body still frees the broker's
        //  slot, and the client counts it and resends.
        zfed_error("%s: cannot encode a reply (out of memory)", worker);
        msgpack_sbuffer_clear(reply);
    }
    zfed_msg_destroy(&error);
}

zfed_msg_t *zfed_task_decode(const void *body, size_t size, zfed_fault_t *fault)
{
    char reason[REASON_MAX];
    zfed_msg_t *task = zfed_msg_decode(body, size, reason, sizeof reason);
    if (!task)
        zfed_fault_set(fault, ZFED_ERR_MALFORMED, "", "bad task: %s", reason);
    else if (zfed_msg_kind(task) != ZFED_MSG_TASK) {
        zfed_fault_set(fault, ZFED_ERR_MALFORMED, "", "expected %s, got %s", ZFED_KIND_TASK,
                       zfed_msg_kind_name(zfed_msg_kind(task)));
        zfed_msg_destroy(&task);
    }
    return task;
}

void zfed_task_ids(const zfed_msg_t *task, const void *body, size_t size, zfed_task_ids_t *ids)
{
    memset(ids, 0, sizeof *ids);
    if (task) {
        snprintf(ids->job_id, sizeof ids->job_id, "%s", zfed_msg_job_id(task));
        ids->round = zfed_msg_round(task);
        ids->task_id = zfed_msg_task_id(task);
        ids->attempt = zfed_msg_attempt(task);
    } else if (zfed_msg_peek_ids(body, size, ids->job_id, &ids->round, &ids->task_id,
                                 &ids->attempt) != 0)
        memset(ids, 0, sizeof *ids);
}

int zfed_task_site_params(const char *site, const msgpack_object *params, msgpack_object *out,
                          msgpack_object_kv **storage, zfed_fault_t *fault)
{
    *out = *params;
    *storage = NULL;
    const msgpack_object *given = site ? zfed_map_get(params, PARAM_SITE) : NULL;
    if (!given)
        return 0;
    size_t length = strlen(site);
    if (given->type != MSGPACK_OBJECT_STR || given->via.str.size != length ||
        memcmp(given->via.str.ptr, site, length) != 0) {
        char shown[65] = "(not a string)";
        if (given->type == MSGPACK_OBJECT_STR)
            snprintf(shown, sizeof shown, "%.*s",
                     (int)(given->via.str.size < 64 ? given->via.str.size : 64),
                     given->via.str.ptr);
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_SITE,
                       "this worker serves site %s, the task is for site %s", site, shown);
        return -1;
    }
    uint32_t count = params->via.map.size;
    *storage = calloc(count, sizeof **storage);
    if (!*storage) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory reading params");
        return -1;
    }
    uint32_t kept = 0;
    for (uint32_t index = 0; index < count; index++)
        if (&params->via.map.ptr[index].val != given)
            (*storage)[kept++] = params->via.map.ptr[index];
    out->via.map.ptr = *storage;
    out->via.map.size = kept;
    return 0;
}

//  ---------------------------------------------------------------------
//  Model tasks

static int s_random_id(uint8_t id[ZFED_MODEL_ID_SIZE])
{
    size_t got = 0;
    while (got < ZFED_MODEL_ID_SIZE) {
        ssize_t rc = getrandom(id + got, ZFED_MODEL_ID_SIZE - got, 0);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        got += (size_t)rc;
    }
    return 0;
}

//  The global model of the task: the data frame (wrapped, not copied),
//  or the fetched or cached one.  1 when it must be fetched first, 0
//  with *model (and *cached when it is shared), -1 + fault.
static int s_global_model(const zfed_model_runner_t *runner, zfed_model_job_t *job,
                          zfed_model_t **wrapped, zfed_cached_t **cached, zfed_fault_t *fault)
{
    const zfed_descriptor_t *d = &job->global;
    if (zfed_descriptor_is_inline(d)) {
        uint8_t digest[ZFED_SHA256_SIZE];
        if (runner->verify && (zfed_sha256(job->data, job->data_size, digest) != 0 ||
                               memcmp(digest, d->sha256, sizeof digest) != 0)) {
            zfed_fault_set(fault, ZFED_ERR_UNAVAILABLE, "",
                           "cannot fetch the global model: its data does not match its sha256");
            return -1;
        }
        char error[128];
        zfed_layout_t *layout = zfed_layout_dup(d->layout);
        *wrapped = layout ? zfed_model_wrap(&layout, (void *)job->data, job->data_size, NULL, NULL,
                                            error, sizeof error)
                          : NULL;
        zfed_layout_destroy(&layout);
        if (!*wrapped) {
            zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory reading the global model");
            return -1;
        }
        return 0;
    }
    if (job->fetched) { //  fetched for us: ours to use, whatever the cache did since
        *cached = job->fetched;
        job->fetched = NULL;
    } else
        *cached = zfed_model_cache_get(runner->cache, d->id);
    return *cached ? 0 : 1;
}

//  The outputs map: "model", "samples", then the service's metrics.
static int s_pack_outputs(const zfed_descriptor_t *result, uint64_t weight,
                          const msgpack_sbuffer *metrics, msgpack_sbuffer *outputs,
                          zfed_fault_t *fault)
{
    const uint8_t *pairs = (const uint8_t *)metrics->data;
    size_t pairs_size = metrics->size, count = 0, header = 0;
    if (pairs_size > 0) {
        uint8_t head = pairs[0];
        if (head >= 0x80 && head <= 0x8f)
            count = head & 0x0f, header = 1;
        else if (head == 0xde && pairs_size >= 3)
            count = (size_t)pairs[1] << 8 | pairs[2], header = 3;
        else if (head == 0xdf && pairs_size >= 5)
            count =
                (size_t)pairs[1] << 24 | (size_t)pairs[2] << 16 | (size_t)pairs[3] << 8 | pairs[4],
            header = 5;
        else {
            zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "the service's metrics are not a map");
            return -1;
        }
    }
    msgpack_packer packer;
    msgpack_packer_init(&packer, outputs, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&packer, 2 + count);
    rc |= msgpack_pack_str_with_body(&packer, ZFED_OUTPUT_MODEL, strlen(ZFED_OUTPUT_MODEL));
    rc |= zfed_descriptor_pack(&packer, result);
    rc |= msgpack_pack_str_with_body(&packer, ZFED_OUTPUT_SAMPLES, strlen(ZFED_OUTPUT_SAMPLES));
    rc |= msgpack_pack_uint64(&packer, weight);
    if (pairs_size > header)
        rc |= msgpack_sbuffer_write(outputs, (const char *)pairs + header, pairs_size - header);
    char reason[REASON_MAX];
    if (rc != 0) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory packing the outputs");
        return -1;
    }
    //  The service's own keys are its to get right; they are checked, not
    //  trusted, so a bad one answers 500 rather than a body that does not
    //  decode.
    if (count && zfed_msg_check_params(outputs->data, outputs->size, reason, sizeof reason) != 0) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "the service's outputs are not valid: %s",
                       reason);
        return -1;
    }
    return 0;
}

//  The result's descriptor, checks and outputs; 0, or -1 + fault.
static int s_describe_result(const zfed_model_runner_t *runner, const zfed_descriptor_t *global,
                             const zfed_model_t *model, zfed_model_job_t *job,
                             zfed_descriptor_t *result, zfed_fault_t *fault)
{
    const zfed_layout_t *layout = zfed_model_layout(model);
    char diff[DIFF_MAX];
    if (!zfed_layout_equal(layout, global->layout, "global", diff, sizeof diff)) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "",
                       "the returned model's layout differs from the global's: %s", diff);
        return -1;
    }
    char where[DIFF_MAX];
    if (zfed_model_check_finite(model, where, sizeof where) != 0) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "the returned model is not finite: %s", where);
        return -1;
    }
    //  An inline result carries its SHA-256 (4 MiB: about 3 ms).  One held
    //  by reference does not: hashing 1 GiB costs about 0.7 s of the
    //  round, and its chunks are checked on the way (id, index, length).
    uint8_t digest[ZFED_SHA256_SIZE];
    bool inline_model = zfed_model_nbytes(model) <= ZFED_MODEL_INLINE_MAX;
    bool hashed = (inline_model || runner->result_sha256) &&
                  zfed_sha256(zfed_model_data(model), zfed_model_nbytes(model), digest) == 0;
    char reason[REASON_MAX];
    if (s_random_id(job->result_id) != 0 ||
        zfed_descriptor_set(result, job->result_id, hashed ? digest : NULL, layout, runner->chunk,
                            inline_model ? "" : runner->blob_service, ZFED_DESCRIPTOR_RESULT,
                            reason, sizeof reason) != 0) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "cannot describe the result: %s", reason);
        return -1;
    }
    job->hold = !inline_model;
    return 0;
}

//  Runs the service on its global and writes the result; 0, or -1 + fault.
static int s_run(const zfed_model_runner_t *runner, const char *worker, const zfed_msg_t *task,
                 const msgpack_object *params, const zfed_model_t *global, zfed_model_job_t *job,
                 msgpack_sbuffer *reply, zfed_fault_t *fault)
{
    zfed_task_ctx_t ctx = {.data = runner->data,
                           .site = runner->site,
                           .job_id = job->ids.job_id,
                           .round = job->ids.round,
                           .task = job->ids.task_id,
                           .attempt = job->ids.attempt,
                           .worker = worker};
    msgpack_sbuffer metrics, outputs;
    msgpack_sbuffer_init(&metrics);
    msgpack_sbuffer_init(&outputs);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &metrics, msgpack_sbuffer_write);
    zfed_model_t *model = NULL;
    uint64_t weight = 0;
    zfed_descriptor_t result = {0};
    int64_t started = zfed_clock_us();
    int rc = runner->service->train(params, &ctx, global, &model, &weight, &packer, fault);
    uint64_t compute_us = (uint64_t)(zfed_clock_us() - started);
    if (rc == 0 && !model) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "the service returned no model");
        rc = -1;
    }
    if (rc == 0)
        rc = s_describe_result(runner, &job->global, model, job, &result, fault);
    if (rc == 0)
        rc = s_pack_outputs(&result, weight, &metrics, &outputs, fault);
    if (rc == 0 && zfed_msg_encode_result(reply, job->ids.job_id, job->ids.round, job->ids.task_id,
                                          job->ids.attempt, worker, compute_us, outputs.data,
                                          outputs.size) != 0) {
        zfed_fault_set(fault, ZFED_ERR_TOO_LARGE, "", "the result does not fit in a %d-byte body",
                       ZFED_BODY_MAX);
        rc = -1;
    }
    if (rc == 0) {
        job->result = model;
        model = NULL;
    }
    zfed_model_destroy(&model);
    zfed_descriptor_clear(&result);
    msgpack_sbuffer_destroy(&metrics);
    msgpack_sbuffer_destroy(&outputs);
    return rc;
}

//  The task after it decoded: its descriptor, its global, the run.
//  1 when the global must be fetched, 0 done, -1 + fault.
static int s_model_task(const zfed_model_runner_t *runner, const char *worker,
                        const zfed_msg_t *task, zfed_model_job_t *job, msgpack_sbuffer *reply,
                        zfed_fault_t *fault)
{
    msgpack_object params;
    msgpack_object_kv *storage = NULL;
    char reason[REASON_MAX];
    zfed_model_t *wrapped = NULL;
    zfed_cached_t *cached = NULL;
    int rc =
        zfed_task_site_params(runner->site, zfed_msg_params_object(task), &params, &storage, fault);
    if (rc == 0 && !job->global.layout &&
        zfed_descriptor_read(zfed_msg_global_object(task), ZFED_DESCRIPTOR_GLOBAL, &job->global,
                             reason, sizeof reason) != 0) {
        zfed_fault_set(fault, ZFED_ERR_MALFORMED, "global", "bad model: %s", reason);
        rc = -1;
    }
    if (rc == 0 && zfed_descriptor_check_data(&job->global, job->has_data, job->data_size, reason,
                                              sizeof reason) != 0) {
        zfed_fault_set(fault, ZFED_ERR_MALFORMED, "global", "%s", reason);
        rc = -1;
    }
    //  Cheap checks before a global of any size is fetched.
    if (rc == 0 && runner->service->check_params)
        rc = runner->service->check_params(&params, fault);
    if (rc == 0 && runner->service->check_global)
        rc = runner->service->check_global(&params, job->global.layout, fault);
    if (rc == 0)
        rc = s_global_model(runner, job, &wrapped, &cached, fault);
    if (rc == 0)
        rc = s_run(runner, worker, task, &params, wrapped ? wrapped : zfed_cached_model(cached),
                   job, reply, fault);
    zfed_model_destroy(&wrapped);
    zfed_cached_release(&cached);
    free(storage);
    return rc;
}

unsigned zfed_model_execute(const zfed_model_runner_t *runner, const char *worker, const void *body,
                            size_t size, zfed_model_job_t *job, msgpack_sbuffer *reply)
{
    zfed_fault_t fault = {0};
    job->need_fetch = false;
    msgpack_sbuffer_clear(reply);
    zfed_msg_t *task = zfed_task_decode(body, size, &fault);
    int rc = -1;
    if (task) {
        zfed_task_ids(task, body, size, &job->ids);
        job->has_ids = true;
        rc = s_model_task(runner, worker, task, job, reply, &fault);
    }
    if (rc > 0) {
        job->need_fetch = true;
        msgpack_sbuffer_clear(reply);
    } else if (rc < 0) {
        zfed_task_ids_t ids;
        zfed_task_ids(task, body, size, &ids);
        zfed_task_encode_error(worker, &ids, &fault, reply);
    }
    zfed_msg_destroy(&task);
    return rc < 0 ? 1 : 0;
}

void zfed_model_job_clear(zfed_model_job_t *job)
{
    zfed_descriptor_clear(&job->global);
    zfed_cached_release(&job->fetched);
    zfed_model_destroy(&job->result);
}
