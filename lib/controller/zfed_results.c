/*  zfed_results - a big round's results as NDJSON, written as text.  */
#include "controller/zfed_results.h"
#include "controller/zfed_job_private.h"
#include "controller/zfed_records.h"
#include "core/zfed_durable.h"
#include "core/zfed_huge.h"
#include "zfed/zfed_json.h"
#include "zfed/zfed_msg.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  Text gathered before it is handed to the file.
#define RESULTS_FLUSH_BYTES (1u << 20)
//  A line's bytes, guessed for the reservation: fib's are 140-150.
#define RESULTS_LINE_GUESS 192

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

//  The fixed members of a line, longest: keys and punctuation.
#define LINE_KEYS_MAX 96

//  One result's line: the keys and order of s_result_entry's object.  The
//  members before the service's are written through one reservation.
int zfed_results_line(const zfed_round_env_t *self, const round_t *round, uint32_t index,
                      msgpack_sbuffer *out)
{
    const task_t *task = &round->tasks[index];
    const zfed_msg_t *result = task->result;
    const char *worker = zfed_msg_worker(result);
    uint64_t compute_us = zfed_msg_compute_us(result);
    const char *site = zfed_job_site(self->job, index);
    size_t worker_length = strlen(worker), id_length = strlen(task->worker_id);
    size_t site_length = site ? strlen(site) : 0;
    char *at = zfed_json_text_reserve(
        out, LINE_KEYS_MAX + 4 * ZFED_JSON_INT_MAX + ZFED_JSON_STRING_MAX(worker_length) +
                 ZFED_JSON_STRING_MAX(id_length) + ZFED_JSON_STRING_MAX(site_length));
    if (!at)
        return -1;
    at = ZFED_JSON_PUT_LITERAL(at, "{\"task\":");
    at = zfed_json_put_int(at, index);
    at = ZFED_JSON_PUT_LITERAL(at, ",\"worker\":");
    at = zfed_json_put_string(at, worker, worker_length);
    at = ZFED_JSON_PUT_LITERAL(at, ",\"worker_id\":");
    at = zfed_json_put_string(at, task->worker_id, id_length);
    at = ZFED_JSON_PUT_LITERAL(at, ",\"attempt\":");
    at = zfed_json_put_int(at, zfed_msg_attempt(result));
    at = ZFED_JSON_PUT_LITERAL(at, ",\"compute_us\":");
    at = zfed_json_put_int(at, compute_us > INT64_MAX ? INT64_MAX : (int64_t)compute_us);
    at = ZFED_JSON_PUT_LITERAL(at, ",\"latency_us\":");
    at = zfed_json_put_int(at, task->latency_us);
    if (site) {
        at = ZFED_JSON_PUT_LITERAL(at, ",\"site\":");
        at = zfed_json_put_string(at, site, site_length);
    }
    zfed_json_text_commit(out, at);
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

void zfed_results_reserve(msgpack_sbuffer *lines, uint32_t tasks)
{
    size_t capacity = 0;
    char *data =
        lines->alloc == 0 ? zfed_huge_malloc((size_t)tasks * RESULTS_LINE_GUESS, &capacity) : NULL;
    if (!data)
        return; //  grown as it fills, then
    lines->data = data;
    lines->alloc = capacity;
}

int zfed_results_write(const zfed_round_env_t *self, const round_t *round, const char *path)
{
    zfed_durable_t *file = zfed_durable_open(path);
    if (!file)
        return -1;
    msgpack_sbuffer text;
    msgpack_sbuffer_init(&text);
    //  Filled to the flush mark and emptied again: one reservation.
    size_t capacity = 0;
    if ((text.data = zfed_huge_malloc(RESULTS_FLUSH_BYTES, &capacity)) != NULL)
        text.alloc = capacity;
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
    //  Made durable with (before) the round's record, off the round's path.
    zfed_records_stage_file(self->records, &file);
    return 0;
}
