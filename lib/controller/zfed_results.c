/*  zfed_results - a big round's results as NDJSON, written as text.  */
#include "controller/zfed_results.h"
#include "controller/zfed_job_private.h"
#include "core/zfed_durable.h"
#include "zfed/zfed_json.h"
#include "zfed/zfed_msg.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  Text gathered before it is handed to the file.
#define RESULTS_FLUSH_BYTES (1u << 20)

//  describe's object, dumped, for a service without describe_text: its
//  members without the braces, after a comma.
static int s_describe_dumped(const zfed_service_t *service, const msgpack_object *params,
                             const msgpack_object *outputs, msgpack_sbuffer *out)
{
    json_t *entry = json_object();
    int rc = entry && service->describe(params, outputs, entry) == 0 ? 0 : -1;
    char *text = rc == 0 ? json_dumps(entry, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(entry);
    if (!text)
        return -1;
    size_t length = strlen(text);
    if (length > 2)
        rc = msgpack_sbuffer_write(out, ",", 1) != 0 ||
                     msgpack_sbuffer_write(out, text + 1, length - 2) != 0
                 ? -1
                 : 0;
    free(text);
    return rc;
}

//  One result's line: the keys and order of s_result_entry's object.
int zfed_results_line(const zfed_round_env_t *self, const round_t *round, uint32_t index,
                      msgpack_sbuffer *out)
{
    const task_t *task = &round->tasks[index];
    const zfed_msg_t *result = task->result;
    const char *worker = zfed_msg_worker(result);
    uint64_t compute_us = zfed_msg_compute_us(result);
    if (zfed_json_text_raw(out, "{\"task\":") != 0 || zfed_json_text_int(out, index) != 0 ||
        zfed_json_text_raw(out, ",\"worker\":") != 0 ||
        zfed_json_text_string(out, worker, strlen(worker)) != 0 ||
        zfed_json_text_raw(out, ",\"worker_id\":") != 0 ||
        zfed_json_text_string(out, task->worker_id, strlen(task->worker_id)) != 0 ||
        zfed_json_text_raw(out, ",\"attempt\":") != 0 ||
        zfed_json_text_int(out, zfed_msg_attempt(result)) != 0 ||
        zfed_json_text_raw(out, ",\"compute_us\":") != 0 ||
        zfed_json_text_int(out, compute_us > INT64_MAX ? INT64_MAX : (int64_t)compute_us) != 0 ||
        zfed_json_text_raw(out, ",\"latency_us\":") != 0 ||
        zfed_json_text_int(out, task->latency_us) != 0)
        return -1;
    const char *site = zfed_job_site(self->job, index);
    if (site && (zfed_json_text_raw(out, ",\"site\":") != 0 ||
                 zfed_json_text_string(out, site, strlen(site)) != 0))
        return -1;
    const zfed_service_t *service = self->service;
    if (service->describe_text || service->describe) {
        msgpack_unpacked own;
        bool unpacked;
        const msgpack_object *params = zfed_round_task_params(self, round, task, &own, &unpacked);
        int rc = 0;
        if (params && service->describe_text)
            rc = service->describe_text(params, zfed_msg_outputs_object(result), out);
        else if (params)
            rc = s_describe_dumped(service, params, zfed_msg_outputs_object(result), out);
        if (unpacked)
            msgpack_unpacked_destroy(&own);
        if (rc != 0)
            return -1;
    }
    return zfed_json_text_raw(out, "}\n");
}

int zfed_results_write(const zfed_round_env_t *self, const round_t *round, const char *path)
{
    zfed_durable_t *file = zfed_durable_open(path);
    if (!file)
        return -1;
    msgpack_sbuffer text;
    msgpack_sbuffer_init(&text);
    int rc = 0;
    for (uint32_t index = 0; index < self->job->tasks && rc == 0; index++) {
        const task_t *task = &round->tasks[index];
        if (task->state != TASK_DONE)
            continue;
        if (task->line_size) {
            if (msgpack_sbuffer_write(&text, round->lines.data + task->line_at, task->line_size) !=
                0) {
                errno = ENOMEM;
                rc = -1;
            }
        } else if (zfed_results_line(self, round, index, &text) != 0) {
            errno = ENOMEM;
            rc = -1;
        }
        if (rc == 0 && text.size >= RESULTS_FLUSH_BYTES) {
            rc = zfed_durable_write(file, text.data, text.size);
            text.size = 0;
        }
    }
    if (rc == 0 && text.size)
        rc = zfed_durable_write(file, text.data, text.size);
    msgpack_sbuffer_destroy(&text);
    if (rc != 0) {
        int saved = errno;
        zfed_durable_abort(&file);
        errno = saved;
        return -1;
    }
    return zfed_durable_commit(&file);
}
