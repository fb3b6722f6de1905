/*  zfed_controller - the round loop.

    Time is kept on the monotonic clock; a round has three kinds of
    deadline: its own (round_timeout), the end of the grace period once the
    quorum is in, and each task's resend deadline.  Tasks of a round are
    all sent at once and share one timeout, so resend deadlines come due in
    the order tasks were (re)sent: a FIFO of (task, attempt) entries keeps
    them sorted for free and the next deadline is always at its head.
    Entries made stale by an answer or a newer attempt are skipped when
    they reach the head.
*/
#include "zfed/zfed_controller.h"
#include "zfed/zfed_aggregate.h"
#include "zfed/zfed_batch.h"
#include "zfed/zfed_client.h"
#include "zfed/zfed_json.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_number.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_store.h"
#include "zfed/zfed_util.h"
#include "zfed/zfed_version.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  Longest reason text carried around.
#define REASON_MAX 512
//  Most error entries kept in one round record (all are counted).
#define ROUND_ERRORS_KEPT 100
//  Warnings about bad replies per round, before they are only counted.
#define ROUND_WARNINGS_MAX 10

typedef enum { TASK_PENDING = 0, TASK_DONE, TASK_FAILED } task_state_t;

typedef struct {
    task_state_t state;
    uint32_t attempts; //  times sent
    uint8_t *params;   //  msgpack map; may be the round's shared copy
    size_t params_size;
    bool params_owned;
    int64_t sent_ms;
    bool batched; //  last sent inside a zfed.batch
    //  The accepted result, kept as decoded: its record entry is built when
    //  the round closes, after the round's time is taken.
    zfed_msg_t *result;
    int64_t latency_us;
    zfed_sample_t sample;
} task_t;

//  A resend deadline; stale once the task is answered or sent again
//  (its send count no longer equals sends).
typedef struct {
    uint32_t task;
    uint32_t sends;
    int64_t due_ms;
} resend_t;

typedef struct {
    uint32_t number;
    task_t *tasks;
    uint32_t unsent; //  first task not sent yet (tasks go out in order)
    uint32_t answered;
    uint32_t failed;
    uint64_t duplicates;
    uint64_t invalid;
    uint64_t errors;
    uint64_t resent;
    uint64_t warnings;
    json_t *error_list;
    const char *last_error;
    char last_error_text[REASON_MAX];
    int64_t started_ms;
    int64_t started_us;
    int64_t started_wall_ms;
    int64_t quorum_at_ms;
    int64_t deadline_ms;
    resend_t *resends;
    size_t resend_head;
    size_t resend_count;
    size_t resend_capacity;
    uint8_t *shared_params;
    size_t shared_params_size;
} round_t;

struct _zfed_controller_t {
    zfed_job_t *job;
    //  --batch: one body per task of a batch request, and views of them
    //  (also used to read batch replies).
    msgpack_sbuffer items[ZFED_BATCH_MAX];
    zfed_view_t views[ZFED_BATCH_MAX];
    const zfed_service_t *service;
    zfed_store_t *store;
    zfed_client_t *client;
    FILE *progress;
    msgpack_sbuffer buffer;
    uint32_t next_round;
    //  The global state the next round's tasks carry.
    int64_t global_round;
    uint8_t *global_value;
    size_t global_size;
    //  Per round, for the summary: entries and late counts.
    json_t *summaries;
    uint64_t *late;
    uint64_t foreign;
    //  Best round so far.
    int64_t best_round;
    mpq_t best_aggregate;
    double best_number;
    json_t *best_value;
    int64_t started_wall_ms;
    char failure[REASON_MAX];
    //  On a terminal, a live line shows a round while it runs.
    bool live;
    int64_t live_at_ms;
    bool live_shown;
};

//  ---------------------------------------------------------------------
//  Helpers

//  ISO 8601 UTC with milliseconds; text needs 80 bytes to satisfy the
//  compiler's worst case for every field.
static char *s_iso_time(int64_t wall_ms, char *text, size_t size)
{
    time_t seconds = (time_t)(wall_ms / 1000);
    struct tm parts;
    gmtime_r(&seconds, &parts);
    snprintf(text, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900,
             parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
             (int)(wall_ms % 1000));
    return text;
}

static json_t *s_iso_json(int64_t wall_ms)
{
    char text[80];
    return json_string(s_iso_time(wall_ms, text, sizeof text));
}

static void s_progress(zfed_controller_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void s_progress(zfed_controller_t *self, const char *format, ...)
{
    if (!self->progress)
        return;
    va_list args;
    va_start(args, format);
    vfprintf(self->progress, format, args);
    va_end(args);
    fflush(self->progress);
}

//  Packs the global value into self->global_value.
static int s_set_global(zfed_controller_t *self, int64_t round, const msgpack_sbuffer *packed)
{
    uint8_t *copy = malloc(packed->size);
    if (!copy)
        return -1;
    memcpy(copy, packed->data, packed->size);
    free(self->global_value);
    self->global_value = copy;
    self->global_size = packed->size;
    self->global_round = round;
    return 0;
}

static json_t *s_global_json(zfed_controller_t *self)
{
    msgpack_unpacked unpacked;
    json_t *value = NULL;
    if (zfed_unpack(&unpacked, self->global_value, self->global_size) == 0)
        value = zfed_json_from_msgpack(&unpacked.data);
    msgpack_unpacked_destroy(&unpacked);
    return json_pack("{s:I,s:o}", "round", (json_int_t)self->global_round, "value",
                     value ? value : json_null());
}

//  ---------------------------------------------------------------------
//  Round bookkeeping

static void s_round_clear(round_t *round, uint32_t tasks)
{
    for (uint32_t index = 0; round->tasks && index < tasks; index++) {
        task_t *task = &round->tasks[index];
        if (task->params_owned)
            free(task->params);
        zfed_msg_destroy(&task->result);
        if (task->state == TASK_DONE)
            zfed_sample_clear(&task->sample);
    }
    free(round->tasks);
    free(round->resends);
    free(round->shared_params);
    json_decref(round->error_list);
    memset(round, 0, sizeof *round);
}

static int s_schedule_resend(zfed_controller_t *self, round_t *round, uint32_t task, int64_t now)
{
    if (round->resend_count == round->resend_capacity) {
        //  Compact what has been consumed before growing.
        if (round->resend_head > 0) {
            memmove(round->resends, round->resends + round->resend_head,
                    (round->resend_count - round->resend_head) * sizeof *round->resends);
            round->resend_count -= round->resend_head;
            round->resend_head = 0;
        }
        if (round->resend_count == round->resend_capacity) {
            size_t capacity = round->resend_capacity ? round->resend_capacity * 2 : 64;
            resend_t *grown = realloc(round->resends, capacity * sizeof *grown);
            if (!grown)
                return -1;
            round->resends = grown;
            round->resend_capacity = capacity;
        }
    }
    round->resends[round->resend_count++] =
        (resend_t){task, round->tasks[task].attempts, now + self->job->task_timeout_ms};
    return 0;
}

//  Every task's parameters as msgpack, checked (again: a job past the
//  up-front check's limit is judged here, round by round); one shared copy
//  when they cannot differ between tasks (the common case, and the cheap
//  one at scale).
static int s_round_prepare(zfed_controller_t *self, round_t *round, uint32_t number)
{
    zfed_job_t *job = self->job;
    round->number = number;
    round->tasks = calloc(job->tasks, sizeof *round->tasks);
    round->error_list = json_array();
    if (!round->tasks || !round->error_list) {
        snprintf(self->failure, sizeof self->failure, "round %u: out of memory", number);
        return -1;
    }
    bool shared = !job->task_params && !job->round_params;
    if (!shared && job->round_params && !job->task_params &&
        json_is_object(json_array_get(job->round_params, number)))
        shared = true;
    char error[REASON_MAX - 32]; //  room for "round N: " in self->failure
    if (shared && zfed_job_pack_params(job, number, 0, &round->shared_params,
                                       &round->shared_params_size, error, sizeof error) != 0) {
        snprintf(self->failure, sizeof self->failure, "round %u: %s", number, error);
        return -1;
    }
    for (uint32_t index = 0; index < job->tasks; index++) {
        task_t *task = &round->tasks[index];
        if (shared) {
            task->params = round->shared_params;
            task->params_size = round->shared_params_size;
            continue;
        }
        if (zfed_job_pack_params(job, number, index, &task->params, &task->params_size, error,
                                 sizeof error) != 0) {
            snprintf(self->failure, sizeof self->failure, "round %u: %s", number, error);
            return -1;
        }
        task->params_owned = true;
    }
    return 0;
}

//  Sends count tasks as one request: a plain task body for one, a
//  zfed.batch for several (--batch).  params were checked when the round
//  was packed and the global value is the service's own packing, so the
//  bodies are encoded straight from their parts.  A send that cannot be
//  queued is treated like a lost one: the resend deadline covers both.
static int s_send_tasks(zfed_controller_t *self, round_t *round, const uint32_t *indexes,
                        size_t count, int64_t now)
{
    for (size_t item = 0; item < count; item++) {
        task_t *task = &round->tasks[indexes[item]];
        msgpack_sbuffer *body = count == 1 ? &self->buffer : &self->items[item];
        if (zfed_msg_encode_task(body, self->job->job_id, round->number, indexes[item],
                                 task->attempts, task->params, task->params_size,
                                 self->global_round, self->global_value, self->global_size) != 0)
            return -1;
        self->views[item].data = (const uint8_t *)body->data;
        self->views[item].size = body->size;
    }
    //  Tasks too big to travel together go as two smaller batches (down to
    //  single tasks, which zfed_msg limits on their own).
    if (count > 1 && zfed_batch_encoded_size(self->views, count) > ZFED_BODY_MAX) {
        size_t half = count / 2;
        if (s_send_tasks(self, round, indexes, half, now) != 0)
            return -1;
        return s_send_tasks(self, round, indexes + half, count - half, now);
    }
    if (count > 1 && zfed_batch_encode(&self->buffer, self->views, count) != 0)
        return -1;
    if (zfed_client_send(self->client, self->job->service, self->buffer.data, self->buffer.size) !=
        0)
        zfed_debug("%zu task(s) of round %u not queued; will retry", count, round->number);
    for (size_t item = 0; item < count; item++) {
        task_t *task = &round->tasks[indexes[item]];
        if (task->attempts > 0)
            round->resent++;
        task->attempts++;
        task->sent_ms = now;
        task->batched = count > 1;
        if (s_schedule_resend(self, round, indexes[item], now) != 0)
            return -1;
    }
    return 0;
}

static int s_send_task(zfed_controller_t *self, round_t *round, uint32_t index, int64_t now)
{
    return s_send_tasks(self, round, &index, 1, now);
}

static void s_round_warn(round_t *round, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void s_round_warn(round_t *round, const char *format, ...)
{
    if (++round->warnings > ROUND_WARNINGS_MAX)
        return;
    char text[REASON_MAX];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof text, format, args);
    va_end(args);
    zfed_warn("round %u: %s%s", round->number, text,
              round->warnings == ROUND_WARNINGS_MAX ? " (further warnings this round suppressed)"
                                                    : "");
}

//  ---------------------------------------------------------------------
//  Replies

//  Transient errors are worth another attempt; the rest would fail again.
static bool s_error_is_transient(uint32_t code)
{
    return code == ZFED_ERR_OVERLOADED || code == ZFED_ERR_INTERNAL ||
           code == ZFED_ERR_UNAVAILABLE || code == ZFED_ERR_EXPIRED;
}

static void s_handle_error(zfed_controller_t *self, round_t *round, const zfed_msg_t *message,
                           int64_t now)
{
    uint32_t index = zfed_msg_task_id(message);
    task_t *task = &round->tasks[index];
    round->errors++;
    snprintf(round->last_error_text, sizeof round->last_error_text, "task %u: %s%s%s (%u, from %s)",
             index, zfed_msg_error_field(message), zfed_msg_error_field(message)[0] ? ": " : "",
             zfed_msg_error_text(message), zfed_msg_error_code(message), zfed_msg_worker(message));
    round->last_error = round->last_error_text;
    if (json_array_size(round->error_list) < ROUND_ERRORS_KEPT)
        json_array_append_new(
            round->error_list,
            json_pack("{s:i,s:s,s:i,s:i,s:s,s:s}", "task", index, "worker",
                      zfed_msg_worker(message), "attempt", zfed_msg_attempt(message), "code",
                      zfed_msg_error_code(message), "field", zfed_msg_error_field(message),
                      "message", zfed_msg_error_text(message)));
    s_round_warn(round, "%s", round->last_error_text);
    //  Only the answer to the newest attempt decides; an older attempt's
    //  error says nothing about the one still in flight.
    if (task->state != TASK_PENDING || zfed_msg_attempt(message) + 1 != task->attempts)
        return;
    //  A 413 for a task that travelled in a batch says the batch's results
    //  did not fit together: the task goes again alone, as a packing
    //  matter rather than a retry (alone it cannot get that answer again).
    bool send_alone = zfed_msg_error_code(message) == ZFED_ERR_TOO_LARGE && task->batched;
    if (send_alone || (s_error_is_transient(zfed_msg_error_code(message)) &&
                       task->attempts <= self->job->retries)) {
        if (s_send_task(self, round, index, now) != 0)
            zfed_error("cannot resend task %u (out of memory)", index);
        return;
    }
    task->state = TASK_FAILED;
    round->failed++;
}

//  Takes *message_p when the result is accepted (it becomes the task's).
static void s_handle_result(zfed_controller_t *self, round_t *round, zfed_msg_t **message_p,
                            int64_t now)
{
    zfed_msg_t *message = *message_p;
    uint32_t index = zfed_msg_task_id(message);
    task_t *task = &round->tasks[index];
    if (task->state == TASK_DONE) {
        round->duplicates++;
        zfed_debug("round %u task %u: duplicate result from %s counted once", round->number, index,
                   zfed_msg_worker(message));
        return;
    }
    const msgpack_object *outputs = zfed_msg_outputs_object(message);
    msgpack_unpacked params;
    zfed_fault_t fault = {0};
    int rc = zfed_unpack(&params, task->params, task->params_size);
    if (rc == 0 && outputs)
        rc = self->service->read_outputs(&params.data, outputs, &task->sample, &fault);
    else {
        rc = -1;
        zfed_fault_set(&fault, ZFED_ERR_INTERNAL, "", "cannot unpack");
    }
    if (rc != 0) {
        //  A result that does not fit its task is refused, never bent into
        //  shape; the task stays open for its resend.
        round->invalid++;
        s_round_warn(round, "task %u: result from %s refused: %s%s%s", index,
                     zfed_msg_worker(message), fault.field, fault.field[0] ? ": " : "", fault.text);
    } else {
        task->result = message;
        *message_p = NULL;
        task->latency_us = (now - task->sent_ms) * 1000;
        if (task->state == TASK_FAILED)
            round->failed--; //  a late success beats an earlier error
        task->state = TASK_DONE;
        round->answered++;
    }
    msgpack_unpacked_destroy(&params);
}

static void s_handle_reply(zfed_controller_t *self, round_t *round, const uint8_t *body,
                           size_t size, int64_t now);

//  A batch reply: one reply body per task of the batch request.
static void s_handle_batch(zfed_controller_t *self, round_t *round, const uint8_t *body,
                           size_t size, int64_t now)
{
    char reason[REASON_MAX];
    size_t count = 0;
    if (zfed_batch_decode(body, size, self->views, ZFED_BATCH_MAX, &count, reason, sizeof reason) !=
        0) {
        round->invalid++;
        s_round_warn(round, "undecodable batch reply refused: %s", reason);
        return;
    }
    for (size_t item = 0; item < count; item++) {
        if (zfed_batch_is(self->views[item].data, self->views[item].size)) {
            round->invalid++; //  batches do not nest
            continue;
        }
        s_handle_reply(self, round, self->views[item].data, self->views[item].size, now);
    }
}

static void s_handle_reply(zfed_controller_t *self, round_t *round, const uint8_t *body,
                           size_t size, int64_t now)
{
    if (zfed_batch_is(body, size)) {
        s_handle_batch(self, round, body, size, now);
        return;
    }
    char reason[REASON_MAX];
    zfed_msg_t *message = zfed_msg_decode(body, size, reason, sizeof reason);
    if (!message) {
        round->invalid++;
        s_round_warn(round, "undecodable reply refused: %s", reason);
        return;
    }
    const char *job_id = zfed_msg_job_id(message);
    zfed_msg_kind_t kind = zfed_msg_kind(message);
    if (kind == ZFED_MSG_ERROR && job_id[0] == '\0') {
        //  Someone could not read our task at all: nothing to match it to.
        round->errors++;
        s_round_warn(round, "error reply naming no task: %s (%u, from %s)",
                     zfed_msg_error_text(message), zfed_msg_error_code(message),
                     zfed_msg_worker(message));
    } else if (strcmp(job_id, self->job->job_id) != 0) {
        self->foreign++;
        zfed_debug("reply for another job (%s) ignored", job_id);
    } else if (kind == ZFED_MSG_TASK) {
        round->invalid++;
        s_round_warn(round, "a task came back as a reply; refused");
    } else if (zfed_msg_round(message) < round->number) {
        self->late[zfed_msg_round(message)]++;
        zfed_debug("late %s for round %u task %u from %s: counted, not aggregated",
                   zfed_msg_kind_name(kind), zfed_msg_round(message), zfed_msg_task_id(message),
                   zfed_msg_worker(message));
    } else if (zfed_msg_round(message) > round->number ||
               zfed_msg_task_id(message) >= self->job->tasks) {
        round->invalid++;
        s_round_warn(round, "reply for round %u task %u, which was never sent; refused",
                     zfed_msg_round(message), zfed_msg_task_id(message));
    } else if (kind == ZFED_MSG_RESULT)
        s_handle_result(self, round, &message, now);
    else
        s_handle_error(self, round, message, now);
    zfed_msg_destroy(&message);
}

//  ---------------------------------------------------------------------
//  Closing a round

static int s_aggregate(zfed_controller_t *self, round_t *round, mpq_t **values_p, size_t *dims_p)
{
    size_t dims = 0;
    for (uint32_t index = 0; index < self->job->tasks && dims == 0; index++)
        if (round->tasks[index].state == TASK_DONE)
            dims = round->tasks[index].sample.dims;
    zfed_agg_t *agg = dims ? zfed_agg_new(self->job->strategy, dims, self->job->trim) : NULL;
    if (!agg) {
        snprintf(self->failure, sizeof self->failure, "round %u: nothing to aggregate",
                 round->number);
        return -1;
    }
    int rc = 0;
    //  Task order: the aggregate does not depend on arrival order.
    for (uint32_t index = 0; index < self->job->tasks && rc == 0; index++) {
        task_t *task = &round->tasks[index];
        if (task->state != TASK_DONE)
            continue;
        if (task->sample.dims != dims) {
            snprintf(self->failure, sizeof self->failure,
                     "round %u: task %u's result has %zu values where others have %zu",
                     round->number, index, task->sample.dims, dims);
            rc = -1;
        } else
            rc = zfed_agg_add(agg, (const mpq_t *)task->sample.values, task->sample.weight);
    }
    mpq_t *values = rc == 0 ? calloc(dims, sizeof(mpq_t)) : NULL;
    if (values) {
        for (size_t dim = 0; dim < dims; dim++)
            mpq_init(values[dim]);
        if (zfed_agg_result(agg, values) != 0) {
            snprintf(self->failure, sizeof self->failure,
                     "round %u: %s cannot aggregate these results (total weight 0?)", round->number,
                     zfed_agg_strategy_name(self->job->strategy));
            rc = -1;
        }
    } else if (rc == 0) {
        snprintf(self->failure, sizeof self->failure, "out of memory");
        rc = -1;
    }
    zfed_agg_destroy(&agg);
    if (rc != 0 && values) {
        for (size_t dim = 0; dim < dims; dim++)
            mpq_clear(values[dim]);
        free(values);
        values = NULL;
    }
    *values_p = values;
    *dims_p = dims;
    return rc;
}

static void s_free_values(mpq_t *values, size_t dims)
{
    for (size_t dim = 0; values && dim < dims; dim++)
        mpq_clear(values[dim]);
    free(values);
}

//  Exact aggregate as rational strings, one per value, for resume.
static json_t *s_exact_json(mpq_t *values, size_t dims)
{
    json_t *array = json_array();
    for (size_t dim = 0; array && dim < dims; dim++) {
        char *text = mpq_get_str(NULL, 10, values[dim]);
        json_array_append_new(array, json_string(text));
        void (*free_function)(void *, size_t);
        mp_get_memory_functions(NULL, NULL, &free_function);
        free_function(text, strlen(text) + 1);
    }
    return array;
}

//  Updates the best round with a closed round's metric.
static void s_consider_best(zfed_controller_t *self, uint32_t round, const mpq_t *aggregate,
                            double number, json_t *value)
{
    bool better;
    if (self->best_round < 0)
        better = true;
    else if (self->job->metric == ZFED_METRIC_AGGREGATE) {
        int order = mpq_cmp(aggregate[0], self->best_aggregate);
        better = self->job->maximize ? order > 0 : order < 0;
    } else
        better = self->job->maximize ? number > self->best_number : number < self->best_number;
    if (!better) {
        json_decref(value);
        return;
    }
    self->best_round = round;
    if (self->job->metric == ZFED_METRIC_AGGREGATE)
        mpq_set(self->best_aggregate, aggregate[0]);
    self->best_number = number;
    json_decref(self->best_value);
    self->best_value = value;
}

static json_t *s_metric_value(zfed_controller_t *self, json_t *aggregate_json, uint32_t results,
                              int64_t duration_ms, double *number)
{
    switch (self->job->metric) {
    case ZFED_METRIC_RESULTS:
        *number = results;
        return json_integer(results);
    case ZFED_METRIC_DURATION:
        *number = (double)duration_ms;
        return json_integer(duration_ms);
    default:
        *number = 0;
        return json_incref(aggregate_json);
    }
}

//  The summary's view of a round: what the user asked to see.
static json_t *s_round_summary(const json_t *record)
{
    json_t *results = json_array();
    size_t index;
    json_t *entry;
    json_array_foreach(json_object_get(record, "results"), index, entry)
    {
        json_t *brief = json_deep_copy(entry);
        json_object_del(brief, "latency_us");
        json_object_del(brief, "compute_us");
        json_array_append_new(results, brief);
    }
    return json_pack(
        "{s:O,s:o,s:O,s:O,s:O,s:O,s:O,s:O,s:I}", "round", json_object_get(record, "round"),
        "results", results, "aggregate", json_object_get(record, "aggregate"), "duration_ms",
        json_object_get(record, "duration_ms"), "missing", json_object_get(record, "missing"),
        "duplicates", json_object_get(record, "duplicates"), "errors",
        json_object_get(record, "errors"), "invalid", json_object_get(record, "invalid"), "late",
        (json_int_t)0);
}

//  Rewrites the live line (terminals only), at most every LIVE_PERIOD_MS.
#define LIVE_PERIOD_MS 100

static void s_live_clear(zfed_controller_t *self)
{
    if (self->live_shown) {
        s_progress(self, "\r\033[K");
        self->live_shown = false;
    }
}

static void s_live_update(zfed_controller_t *self, const round_t *round, int64_t now)
{
    if (!self->live || now - self->live_at_ms < LIVE_PERIOD_MS)
        return;
    self->live_at_ms = now;
    self->live_shown = true;
    s_progress(
        self, "\r\033[Kround %u (%u/%u): %u/%u results (quorum %u), %" PRIu64 " resent, %.1f s%s",
        round->number, round->number + 1, self->job->rounds, round->answered, self->job->tasks,
        self->job->quorum, round->resent, (now - round->started_ms) / 1000.0,
        round->quorum_at_ms ? ", quorum in, grace running" : "");
}

static void s_print_round(zfed_controller_t *self, const round_t *round, const char *aggregate,
                          int64_t duration_us)
{
    char notes[160] = "";
    size_t used = 0;
    uint64_t counts[] = {round->resent, round->duplicates, round->errors, round->invalid};
    const char *names[] = {"resent", "duplicates", "errors", "refused"};
    for (int index = 0; index < 4; index++)
        if (counts[index] && used < sizeof notes)
            used += (size_t)snprintf(notes + used, sizeof notes - used, ", %" PRIu64 " %s",
                                     counts[index], names[index]);
    s_live_clear(self);
    s_progress(self, "round %u (%u/%u): %u/%u results (quorum %u), aggregate %s, %.1f ms%s\n",
               round->number, round->number + 1, self->job->rounds, round->answered,
               self->job->tasks, self->job->quorum, aggregate, duration_us / 1000.0, notes);
}

//  The record of an accepted result: who, which attempt, how long, and the
//  service's own fields.
static json_t *s_result_entry(zfed_controller_t *self, uint32_t index, const task_t *task)
{
    const zfed_msg_t *result = task->result;
    uint64_t compute_us = zfed_msg_compute_us(result);
    json_t *entry =
        json_pack("{s:i,s:s,s:i,s:I,s:I}", "task", index, "worker", zfed_msg_worker(result),
                  "attempt", zfed_msg_attempt(result), "compute_us",
                  (json_int_t)(compute_us > INT64_MAX ? INT64_MAX : compute_us), "latency_us",
                  (json_int_t)task->latency_us);
    msgpack_unpacked params;
    if (entry && zfed_unpack(&params, task->params, task->params_size) == 0)
        self->service->describe(&params.data, zfed_msg_outputs_object(result), entry);
    msgpack_unpacked_destroy(&params);
    return entry ? entry : json_null();
}

static int s_close_round(zfed_controller_t *self, round_t *round)
{
    mpq_t *values = NULL;
    size_t dims = 0;
    if (s_aggregate(self, round, &values, &dims) != 0)
        return -1;
    int64_t duration_us = zfed_clock_us() - round->started_us;
    int64_t duration_ms = (duration_us + 500) / 1000;

    json_t *results = json_array();
    json_t *missing = json_array();
    for (uint32_t index = 0; index < self->job->tasks; index++) {
        task_t *task = &round->tasks[index];
        if (task->state == TASK_DONE)
            json_array_append_new(results, s_result_entry(self, index, task));
        else
            json_array_append_new(missing, json_integer(index));
    }
    json_t *global_in = s_global_json(self);
    json_t *aggregate_json = self->service->aggregate_json((const mpq_t *)values, dims);
    char *aggregate_text = self->service->aggregate_text((const mpq_t *)values, dims);

    //  The aggregate becomes the next round's global state.
    msgpack_sbuffer packed;
    msgpack_sbuffer_init(&packed);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &packed, msgpack_sbuffer_write);
    int rc = self->service->pack_aggregate((const mpq_t *)values, dims, &packer);
    if (rc == 0)
        rc = s_set_global(self, round->number, &packed);
    msgpack_sbuffer_destroy(&packed);
    json_t *global_out = rc == 0 ? s_global_json(self) : NULL;

    char started[80];
    json_t *record = json_pack(
        "{s:i,s:s,s:s,s:I,s:I,s:i,s:i,s:i,s:o,s:o,s:O,s:o,s:I,s:I,s:I,s:I,s:o,s:o,s:o}", "round",
        round->number, "status", "closed", "started_at",
        s_iso_time(round->started_wall_ms, started, sizeof started), "duration_ms",
        (json_int_t)duration_ms, "duration_us", (json_int_t)duration_us, "tasks", self->job->tasks,
        "quorum", self->job->quorum, "answered", round->answered, "results", results, "missing",
        missing, "aggregate", aggregate_json ? aggregate_json : json_null(), "aggregate_exact",
        s_exact_json(values, dims), "duplicates", (json_int_t)round->duplicates, "errors",
        (json_int_t)round->errors, "invalid", (json_int_t)round->invalid, "resent",
        (json_int_t)round->resent, "error_list", json_incref(round->error_list), "global_in",
        global_in, "global_out", global_out ? global_out : json_null());
    if (!record || !global_out || !aggregate_json || !aggregate_text) {
        snprintf(self->failure, sizeof self->failure, "round %u: out of memory", round->number);
        rc = -1;
    } else if (zfed_store_write_round(self->store, round->number, record) != 0) {
        //  No durable record, no next round: resuming must never skip one.
        snprintf(self->failure, sizeof self->failure, "cannot write round %u's record in %s: %s",
                 round->number, zfed_store_path(self->store), strerror(errno));
        rc = -1;
    }
    if (rc == 0) {
        double number;
        json_t *value = s_metric_value(self, aggregate_json, round->answered, duration_ms, &number);
        s_consider_best(self, round->number, (const mpq_t *)values, number, value);
        json_array_append_new(self->summaries, s_round_summary(record));
        s_print_round(self, round, aggregate_text, duration_us);
    }
    json_decref(record);
    json_decref(aggregate_json);
    free(aggregate_text);
    s_free_values(values, dims);
    return rc;
}

//  ---------------------------------------------------------------------
//  One round

static int64_t s_next_due(zfed_controller_t *self, round_t *round)
{
    int64_t due = round->deadline_ms;
    if (round->quorum_at_ms && round->quorum_at_ms + self->job->grace_ms < due)
        due = round->quorum_at_ms + self->job->grace_ms;
    //  Drop stale resend entries: answered tasks, superseded attempts.
    while (round->resend_head < round->resend_count) {
        resend_t *head = &round->resends[round->resend_head];
        task_t *task = &round->tasks[head->task];
        if (task->state == TASK_PENDING && task->attempts == head->sends &&
            task->attempts <= self->job->retries) {
            if (head->due_ms < due)
                due = head->due_ms;
            break;
        }
        round->resend_head++;
    }
    return due;
}

static void s_resend_due(zfed_controller_t *self, round_t *round, int64_t now)
{
    while (round->resend_head < round->resend_count) {
        resend_t head = round->resends[round->resend_head];
        task_t *task = &round->tasks[head.task];
        bool live = task->state == TASK_PENDING && task->attempts == head.sends &&
                    task->attempts <= self->job->retries;
        if (live && head.due_ms > now)
            break;
        round->resend_head++;
        if (live) {
            zfed_debug("round %u task %u: no answer in %" PRId64 " ms, sending attempt %u",
                       round->number, head.task, self->job->task_timeout_ms, task->attempts);
            s_send_task(self, round, head.task, now);
        }
    }
}

//  First sends, --batch tasks per request, in task order, while fewer than
//  --window requests' worth of tasks are unsettled (sent, neither answered
//  nor failed).  Resends do not count: their tasks already do.  -1 with
//  self->failure set when a task cannot be encoded.
static int s_send_window(zfed_controller_t *self, round_t *round, int64_t now)
{
    const zfed_job_t *job = self->job;
    uint64_t window_tasks = (uint64_t)job->window * job->batch;
    uint32_t indexes[ZFED_BATCH_MAX];
    while (round->unsent < job->tasks &&
           round->unsent - (round->answered + round->failed) < window_tasks) {
        uint32_t first = round->unsent;
        uint32_t count = job->tasks - first < job->batch ? job->tasks - first : job->batch;
        for (uint32_t item = 0; item < count; item++)
            indexes[item] = first + item;
        if (s_send_tasks(self, round, indexes, count, now) != 0) {
            snprintf(self->failure, sizeof self->failure,
                     "round %u: cannot build tasks %u to %u (a body over %d bytes?)", round->number,
                     first, first + count - 1, ZFED_BODY_MAX);
            return -1;
        }
        round->unsent += count;
    }
    return 0;
}

//  0: closed; -1: failed (self->failure says why); 1: interrupted.
static int s_run_round(zfed_controller_t *self, uint32_t number)
{
    zfed_job_t *job = self->job;
    round_t round = {0};
    if (s_round_prepare(self, &round, number) != 0) {
        s_round_clear(&round, job->tasks);
        return -1;
    }
    int64_t now = zfed_clock_ms();
    round.started_ms = now;
    round.started_us = zfed_clock_us();
    round.started_wall_ms = zfed_wall_ms();
    round.deadline_ms = now + job->round_timeout_ms;
    int outcome = -1;
    while (true) {
        if (s_send_window(self, &round, zfed_clock_ms()) != 0)
            break;
        now = zfed_clock_ms();
        if (round.answered >= job->quorum && !round.quorum_at_ms)
            round.quorum_at_ms = now;
        bool all_settled = round.answered + round.failed == job->tasks;
        if (round.answered == job->tasks ||
            (round.quorum_at_ms && (all_settled || now >= round.quorum_at_ms + job->grace_ms)) ||
            (now >= round.deadline_ms && round.answered >= job->quorum)) {
            outcome = s_close_round(self, &round);
            break;
        }
        if (job->tasks - round.failed < job->quorum) {
            snprintf(self->failure, sizeof self->failure,
                     "round %u: quorum of %u is out of reach: %u of %u tasks failed (last: %s)",
                     number, job->quorum, round.failed, job->tasks,
                     round.last_error ? round.last_error : "unknown");
            break;
        }
        if (now >= round.deadline_ms) {
            snprintf(self->failure, sizeof self->failure,
                     "round %u: only %u of %u results by the %.1f s deadline (quorum %u)%s%s",
                     number, round.answered, job->tasks, job->round_timeout_ms / 1000.0,
                     job->quorum, round.last_error ? "; last error: " : "",
                     round.last_error ? round.last_error : "");
            break;
        }
        s_resend_due(self, &round, now);
        int64_t wait = s_next_due(self, &round) - now;
        if (self->live && wait > LIVE_PERIOD_MS)
            wait = LIVE_PERIOD_MS;
        const char *service;
        const uint8_t *body;
        size_t size;
        int got = zfed_client_recv(self->client, wait > 0 ? wait : 0, &service, &body, &size);
        if (zsys_interrupted) {
            outcome = 1;
            break;
        }
        if (got == 1)
            s_handle_reply(self, &round, body, size, zfed_clock_ms());
        s_live_update(self, &round, zfed_clock_ms());
    }
    s_live_clear(self);
    s_round_clear(&round, job->tasks);
    return outcome;
}

//  ---------------------------------------------------------------------
//  The job

static void s_print_table(zfed_controller_t *self)
{
    if (!self->progress || json_array_size(self->summaries) == 0)
        return;
    s_progress(self, "\n%5s  %9s  %4s  %4s  %6s  %9s  %s\n", "round", "results", "late", "dup",
               "errors", "time (ms)", "aggregate");
    size_t index;
    json_t *summary;
    json_array_foreach(self->summaries, index, summary)
    {
        json_t *aggregate = json_object_get(summary, "aggregate");
        char *text =
            json_is_string(aggregate)
                ? zfed_number_abbreviate(json_string_value(aggregate), ZFED_NUMBER_DISPLAY_MAX)
                : json_dumps(aggregate, JSON_ENCODE_ANY);
        uint32_t round = (uint32_t)json_integer_value(json_object_get(summary, "round"));
        char results[32];
        snprintf(results, sizeof results, "%zu/%u",
                 json_array_size(json_object_get(summary, "results")), self->job->tasks);
        s_progress(self, "%5u  %9s  %4" PRIu64 "  %4lld  %6lld  %9lld  %s%s\n", round, results,
                   self->late[round],
                   (long long)json_integer_value(json_object_get(summary, "duplicates")),
                   (long long)json_integer_value(json_object_get(summary, "errors")),
                   (long long)json_integer_value(json_object_get(summary, "duration_ms")),
                   text ? text : "?", (int64_t)round == self->best_round ? "  <- best" : "");
        free(text);
    }
}

static int s_write_summary(zfed_controller_t *self, const char *status)
{
    //  Late counts keep growing after a round closes; the summary has the
    //  final figures.
    size_t index;
    json_t *summary;
    uint64_t late_total = 0;
    json_array_foreach(self->summaries, index, summary)
    {
        uint32_t round = (uint32_t)json_integer_value(json_object_get(summary, "round"));
        json_object_set_new(summary, "late", json_integer((json_int_t)self->late[round]));
        late_total += self->late[round];
    }
    char select[48];
    snprintf(select, sizeof select, "%s:%s", zfed_metric_name(self->job->metric),
             self->job->maximize ? "max" : "min");
    int64_t finished = zfed_wall_ms();
    json_t *best = self->best_round >= 0
                       ? json_pack("{s:I,s:s,s:s,s:O}", "round", (json_int_t)self->best_round,
                                   "metric", zfed_metric_name(self->job->metric), "direction",
                                   self->job->maximize ? "max" : "min", "value", self->best_value)
                       : json_null();
    json_t *root = json_pack(
        "{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:s,s:s,s:O,s:o,s:o,s:o,s:I,s:I,s:o,s:o,s:I}", "job_id",
        self->job->job_id, "status", status, "zfed_version", ZFED_VERSION_STRING, "service",
        self->job->service, "rounds_planned", self->job->rounds, "rounds_completed",
        (int)json_array_size(self->summaries), "tasks_per_round", self->job->tasks, "aggregation",
        zfed_agg_strategy_name(self->job->strategy), "select", select, "rounds", self->summaries,
        "best_round",
        self->best_round >= 0 ? json_integer((json_int_t)self->best_round) : json_null(), "best",
        best, "final_global", s_global_json(self), "late_total", (json_int_t)late_total,
        "foreign_replies", (json_int_t)self->foreign, "started_at",
        s_iso_json(self->started_wall_ms), "finished_at", s_iso_json(finished), "duration_ms",
        (json_int_t)(finished - self->started_wall_ms));
    if (!root)
        return -1;
    if (self->failure[0])
        json_object_set_new(root, "error", json_string(self->failure));
    int rc = zfed_store_write(self->store, ZFED_STORE_SUMMARY, root);
    if (rc == 0 && self->best_round >= 0)
        rc = zfed_store_write(self->store, ZFED_STORE_BEST, best);
    json_t *global = s_global_json(self);
    if (rc == 0)
        rc = zfed_store_write(self->store, ZFED_STORE_GLOBAL, global);
    json_decref(global);
    json_decref(root);
    if (rc != 0)
        zfed_error("cannot write the summary in %s: %s", zfed_store_path(self->store),
                   strerror(errno));
    return rc;
}

int zfed_controller_run(zfed_controller_t *self)
{
    zfed_job_t *job = self->job;
    if (self->next_round == 0)
        s_progress(self, "job %s: %u rounds of %u %s tasks, quorum %u, %s, best by %s:%s\n",
                   job->job_id, job->rounds, job->tasks, job->service, job->quorum,
                   zfed_agg_strategy_name(job->strategy), zfed_metric_name(job->metric),
                   job->maximize ? "max" : "min");
    else
        s_progress(self, "job %s: resuming at round %u of %u\n", job->job_id, self->next_round + 1,
                   job->rounds);
    int outcome = ZFED_RUN_COMPLETED;
    for (; self->next_round < job->rounds; self->next_round++) {
        int rc = s_run_round(self, self->next_round);
        if (rc == 1) {
            outcome = ZFED_RUN_INTERRUPTED;
            snprintf(self->failure, sizeof self->failure, "interrupted during round %u",
                     self->next_round);
            break;
        }
        if (rc != 0) {
            outcome = ZFED_RUN_FAILED;
            break;
        }
    }
    const char *status = outcome == ZFED_RUN_COMPLETED     ? "completed"
                         : outcome == ZFED_RUN_INTERRUPTED ? "interrupted"
                                                           : "failed";
    s_print_table(self);
    if (s_write_summary(self, status) != 0 && outcome == ZFED_RUN_COMPLETED)
        outcome = ZFED_RUN_FAILED;
    if (outcome == ZFED_RUN_FAILED)
        zfed_error("job %s failed: %s", job->job_id, self->failure);
    else if (outcome == ZFED_RUN_INTERRUPTED)
        s_progress(self, "\njob %s interrupted; continue it with --resume %s\n", job->job_id,
                   job->job_id);
    if (outcome == ZFED_RUN_COMPLETED && self->best_round >= 0) {
        char *value = json_is_string(self->best_value)
                          ? zfed_number_abbreviate(json_string_value(self->best_value),
                                                   ZFED_NUMBER_DISPLAY_MAX)
                          : json_dumps(self->best_value, JSON_ENCODE_ANY);
        s_progress(self, "\nbest round: %" PRId64 " (%s %s: %s)\n", self->best_round,
                   zfed_metric_name(job->metric), job->maximize ? "max" : "min", value);
        free(value);
    }
    s_progress(self, "%s: %s\n", outcome == ZFED_RUN_COMPLETED ? "results" : "records so far",
               zfed_store_path(self->store));
    return outcome;
}

//  ---------------------------------------------------------------------
//  Construction and resume

//  Rebuilds the state after the last durable round record.
//  Late results arrive after their round's record was written, so the
//  records cannot hold them; the summary written when the controller last
//  stopped (interrupted or failed) can.  Missing after a kill -9: then the
//  late counts before the crash are lost, which only affects counters.
static void s_resume_late_counts(zfed_controller_t *self)
{
    char ignored[256];
    json_t *summary = zfed_store_read(self->store, ZFED_STORE_SUMMARY, ignored, sizeof ignored);
    size_t index;
    json_t *round;
    json_array_foreach(json_object_get(summary, "rounds"), index, round)
    {
        json_int_t number = json_integer_value(json_object_get(round, "round"));
        json_int_t late = json_integer_value(json_object_get(round, "late"));
        if (number >= 0 && (uint64_t)number < self->next_round && late > 0)
            self->late[number] = (uint64_t)late;
    }
    json_decref(summary);
}

static int s_resume(zfed_controller_t *self, char *error, size_t error_size)
{
    for (uint32_t round = 0; round < self->job->rounds; round++) {
        json_t *record = zfed_store_read_round(self->store, round, error, error_size);
        if (!record) {
            if (errno == ENOENT)
                break;
            return -1; //  corrupt: reported, never half-read
        }
        json_t *exact = json_object_get(record, "aggregate_exact");
        json_t *global = json_object_get(json_object_get(record, "global_out"), "value");
        mpq_t aggregate;
        mpq_init(aggregate);
        int rc =
            json_is_array(exact) && json_array_size(exact) >= 1 &&
                    json_is_string(json_array_get(exact, 0)) &&
                    mpq_set_str(aggregate, json_string_value(json_array_get(exact, 0)), 10) == 0
                ? 0
                : -1;
        msgpack_sbuffer packed;
        msgpack_sbuffer_init(&packed);
        msgpack_packer packer;
        msgpack_packer_init(&packer, &packed, msgpack_sbuffer_write);
        if (rc == 0 && global && zfed_json_pack(global, &packer, NULL, 0) == 0)
            rc = s_set_global(self, round, &packed);
        else
            rc = -1;
        msgpack_sbuffer_destroy(&packed);
        if (rc != 0) {
            snprintf(error, error_size, "round %u's record lacks its aggregate or global state",
                     round);
            mpq_clear(aggregate);
            json_decref(record);
            return -1;
        }
        mpq_canonicalize(aggregate);
        double number;
        json_t *value =
            s_metric_value(self, json_object_get(record, "aggregate"),
                           (uint32_t)json_integer_value(json_object_get(record, "answered")),
                           json_integer_value(json_object_get(record, "duration_ms")), &number);
        s_consider_best(self, round, (const mpq_t *)&aggregate, number, value);
        json_array_append_new(self->summaries, s_round_summary(record));
        self->next_round = round + 1;
        mpq_clear(aggregate);
        json_decref(record);
    }
    s_resume_late_counts(self);
    return 0;
}

//  The state round 0 carries, shaped by the job's first task.
static int s_initial_global(zfed_controller_t *self)
{
    uint8_t *params = NULL;
    size_t params_size = 0;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    msgpack_sbuffer packed;
    msgpack_sbuffer_init(&packed);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &packed, msgpack_sbuffer_write);
    char error[REASON_MAX];
    int rc = zfed_job_pack_params(self->job, 0, 0, &params, &params_size, error, sizeof error);
    if (rc == 0) {
        msgpack_unpacked_destroy(&unpacked);
        rc = zfed_unpack(&unpacked, params, params_size);
    }
    if (rc == 0)
        rc = self->service->pack_initial(&unpacked.data, &packer);
    if (rc == 0)
        rc = s_set_global(self, -1, &packed);
    msgpack_sbuffer_destroy(&packed);
    msgpack_unpacked_destroy(&unpacked);
    free(params);
    return rc;
}

zfed_controller_t *zfed_controller_new(zfed_job_t *job, bool resume, FILE *progress, char *error,
                                       size_t error_size)
{
    zfed_controller_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(error, error_size, "out of memory");
        return NULL;
    }
    self->job = job;
    self->progress = progress;
    self->live = progress && isatty(fileno(progress));
    self->best_round = -1;
    self->started_wall_ms = zfed_wall_ms();
    mpq_init(self->best_aggregate);
    msgpack_sbuffer_init(&self->buffer);
    for (size_t item = 0; item < ZFED_BATCH_MAX; item++)
        msgpack_sbuffer_init(&self->items[item]);
    self->service = zfed_service_find(job->service);
    self->summaries = json_array();
    self->late = calloc(job->rounds, sizeof *self->late);
    if (!self->service || !self->summaries || !self->late || s_initial_global(self) != 0) {
        snprintf(error, error_size, "out of memory");
        goto err;
    }
    self->store = zfed_store_open(job->workdir, job->job_id, resume, error, error_size);
    if (!self->store)
        goto err;
    if (resume) {
        if (s_resume(self, error, error_size) != 0)
            goto err;
    } else {
        json_t *settings = zfed_job_to_json(job);
        int rc = settings ? zfed_store_write(self->store, ZFED_STORE_JOB, settings) : -1;
        json_decref(settings);
        if (rc != 0) {
            snprintf(error, error_size, "cannot write %s/%s: %s", zfed_store_path(self->store),
                     ZFED_STORE_JOB, strerror(errno));
            goto err;
        }
    }
    self->client = zfed_client_new(job->endpoint, job->curve_cert[0] ? job->curve_cert : NULL,
                                   job->server_key[0] ? job->server_key : NULL);
    if (!self->client) {
        snprintf(error, error_size, "cannot reach the broker at %s", job->endpoint);
        goto err;
    }
    return self;
err:
    zfed_controller_destroy(&self);
    return NULL;
}

void zfed_controller_destroy(zfed_controller_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_controller_t *self = *self_p;
    zfed_client_destroy(&self->client);
    zfed_store_destroy(&self->store);
    json_decref(self->summaries);
    json_decref(self->best_value);
    free(self->late);
    free(self->global_value);
    mpq_clear(self->best_aggregate);
    msgpack_sbuffer_destroy(&self->buffer);
    for (size_t item = 0; item < ZFED_BATCH_MAX; item++)
        msgpack_sbuffer_destroy(&self->items[item]);
    free(self);
    *self_p = NULL;
}

const char *zfed_controller_path(zfed_controller_t *self)
{
    return zfed_store_path(self->store);
}
