/*  zfed_round - one round of a job, from its first send to its record.

    Time is kept on the monotonic clock; a round has three kinds of
    deadline: its own (round_timeout), the end of the grace period once the
    quorum is in, and each task's resend deadline.  Tasks of a round are
    all sent at once and share one timeout, so resend deadlines come due in
    the order tasks were (re)sent: a FIFO of (task, attempt) entries keeps
    them sorted for free and the next deadline is always at its head.
    Entries made stale by an answer or a newer attempt are skipped when
    they reach the head.
*/
#include "controller/zfed_round_private.h"
#include "controller/zfed_job_private.h"
#include "controller/zfed_vote.h"
#include "controller/zfed_results.h"
#include "core/zfed_huge.h"
#include "zfed/zfed_store.h"
#include "zfed/zfed_aggregate.h"
#include "zfed/zfed_batch.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_mdp.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_util.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  Round bookkeeping

//  Whether task may be sent again: retries + 1 sends per replica, not
//  counting the replicas sent to replace an answer that was no say (its
//  worker had had its say on the task, or is excluded; or a transient
//  error), which have their own bound: the broker hands a request to
//  whichever worker is free, and a fast liar may take many before an
//  honest worker is free for one.
static bool s_may_send(const zfed_job_t *job, const task_t *task, bool replacing)
{
    if (replacing)
        return task->replaced < job->replicas * REPLACEMENTS_PER_REPLICA;
    return task->attempts - task->replaced - task->paced < job->replicas * (job->retries + 1);
}

static void s_round_clear(zfed_round_env_t *self, round_t *round, uint32_t tasks)
{
    if (round->model)
        zfed_mround_end(self, round);
    for (uint32_t index = 0; round->tasks && index < tasks; index++) {
        task_t *task = &round->tasks[index];
        if (task->params_owned)
            free(task->params);
        zfed_msg_destroy(&task->result);
        if (task->state == TASK_DONE)
            zfed_sample_clear(&task->sample);
        zfed_vote_clear(task);
    }
    zfed_huge_unmap(round->tasks, tasks, sizeof *round->tasks);
    free(round->resends);
    free(round->sent);
    free(round->carried);
    free(round->shared_params);
    msgpack_unpacked_destroy(&round->shared_unpacked);
    msgpack_sbuffer_destroy(&round->lines);
    json_decref(round->error_list);
    json_decref(round->disagreements);
    json_decref(round->excluded);
    free(round->deferred);
    zhashx_destroy(&round->outstanding);
    memset(round, 0, sizeof *round);
}

static int s_schedule_resend(zfed_round_env_t *self, round_t *round, uint32_t task, int64_t now)
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

//  Grows an array of items of size bytes to hold at least wanted.
static int s_grow(void **array, size_t *capacity, size_t wanted, size_t size)
{
    if (wanted <= *capacity)
        return 0;
    size_t grown = *capacity ? *capacity : 64;
    while (grown < wanted)
        grown *= 2;
    void *bigger = realloc(*array, grown * size);
    if (!bigger)
        return -1;
    *array = bigger;
    *capacity = grown;
    return 0;
}

//  An empty array's room for wanted items at once, on huge pages
//  (zfed_huge); grown by s_grow past it.
static int s_reserve(void **array, size_t *capacity, size_t wanted, size_t size)
{
    size_t bytes = 0;
    void *data = wanted <= SIZE_MAX / size ? zfed_huge_malloc(wanted * size, &bytes) : NULL;
    if (!data)
        return s_grow(array, capacity, wanted, size);
    free(*array);
    *array = data;
    *capacity = bytes / size;
    return 0;
}

//  The key of a (task, attempt) in round->outstanding.
static void s_outstanding_key(char *key, size_t size, uint32_t task, uint32_t attempt)
{
    snprintf(key, size, "%u/%u", task, attempt);
}

//  Plain broker: the request at position in round->sent carries these
//  tasks at their current attempt; a reply naming one of them finds it.
static int s_record_outstanding(round_t *round, size_t position, const uint32_t *indexes,
                                size_t count)
{
    if (!round->outstanding && !(round->outstanding = zhashx_new()))
        return -1;
    for (size_t item = 0; item < count; item++) {
        char key[OUTSTANDING_KEY_MAX];
        s_outstanding_key(key, sizeof key, indexes[item], round->tasks[indexes[item]].attempts);
        zhashx_update(round->outstanding, key, (void *)(uintptr_t)(position + 1));
    }
    return 0;
}

//  The request about to go with the next ticket carries these tasks at
//  their current attempt.
static int s_record_sent(zfed_round_env_t *self, round_t *round, const uint32_t *indexes,
                         size_t count)
{
    if (s_grow((void **)&round->sent, &round->sent_capacity, round->sent_count + 1,
               sizeof *round->sent) != 0 ||
        s_grow((void **)&round->carried, &round->carried_capacity, round->carried_count + count,
               sizeof *round->carried) != 0 ||
        (self->plain_broker && s_record_outstanding(round, round->sent_count, indexes, count) != 0))
        return -1;
    round->sent[round->sent_count++] =
        (sent_t){round->carried_count, (uint32_t)count, count > 1, false};
    for (size_t item = 0; item < count; item++)
        round->carried[round->carried_count++] =
            (carried_t){indexes[item], round->tasks[indexes[item]].attempts};
    return 0;
}

//  A request of the round is answered (or will never be: it was not
//  queued): nothing more is waited for from it.
static void s_settle(round_t *round, sent_t *request)
{
    request->answered = true;
    round->replies++;
    for (size_t item = request->first; item < request->first + request->count; item++) {
        task_t *task = &round->tasks[round->carried[item].task];
        task->in_flight -= task->in_flight > 0;
    }
}

//  Every task's parameters as msgpack, checked (again: a job past the
//  up-front check's limit is judged here, round by round); one shared copy
//  when they cannot differ between tasks (the common case, and the cheap
//  one at scale).
static int s_round_prepare(zfed_round_env_t *self, round_t *round, uint32_t number)
{
    const zfed_job_t *job = self->job;
    round->number = number;
    //  The bytes every task of the round begins with, written once.
    round->task_prefix_size = zfed_msg_task_prefix(round->task_prefix, job->job_id, number);
    round->render = job->tasks > ZFED_RESULTS_INLINE_MAX && !self->model;
    round->tasks = zfed_huge_map(job->tasks, sizeof *round->tasks);
    round->error_list = json_array();
    if (!round->tasks || !round->error_list) {
        snprintf(self->failure, sizeof self->failure, "round %u: out of memory", number);
        return -1;
    }
    if (round->render)
        zfed_results_reserve(&round->lines, job->tasks);
    //  Room for the first sends of every task at once: grown by doubling,
    //  these arrays were copied and faulted in again at each step.
    size_t sends = (size_t)job->tasks * job->replicas;
    size_t requests = ((size_t)job->tasks + job->batch - 1) / job->batch * job->replicas;
    if (s_reserve((void **)&round->sent, &round->sent_capacity, requests, sizeof *round->sent) !=
            0 ||
        s_reserve((void **)&round->carried, &round->carried_capacity, sends,
                  sizeof *round->carried) != 0 ||
        s_reserve((void **)&round->resends, &round->resend_capacity, sends,
                  sizeof *round->resends) != 0) {
        snprintf(self->failure, sizeof self->failure, "round %u: out of memory", number);
        return -1;
    }
    //  A site's task carries its site: never shared.
    bool shared = !job->task_params && !job->round_params && !job->sites;
    if (!shared && job->round_params && !job->task_params && !job->sites &&
        json_is_object(json_array_get(job->round_params, number)))
        shared = true;
    zfed_error_t error;
    if (shared && zfed_job_pack_params(job, number, 0, &round->shared_params,
                                       &round->shared_params_size, &error) != 0) {
        snprintf(self->failure, sizeof self->failure, "round %u: %.*s", number, FAILURE_REASON_MAX,
                 error.message);
        return -1;
    }
    //  Unpacked once for every result that reads them, as the service sees
    //  them: zfed_job_service_params edits the object in place, and does
    //  the same for every task (shared params carry no site), so once here
    //  is right for each task that reuses it.
    if (shared) {
        round->shared_unpacked_ok = zfed_unpack(&round->shared_unpacked, round->shared_params,
                                                round->shared_params_size) == 0;
        if (round->shared_unpacked_ok)
            zfed_job_service_params(job, &round->shared_unpacked.data);
    }
    for (uint32_t index = 0; index < job->tasks; index++) {
        task_t *task = &round->tasks[index];
        if (shared) {
            task->params = round->shared_params;
            task->params_size = round->shared_params_size;
            continue;
        }
        if (zfed_job_pack_params(job, number, index, &task->params, &task->params_size, &error) !=
            0) {
            snprintf(self->failure, sizeof self->failure, "round %u: %.*s", number,
                     FAILURE_REASON_MAX, error.message);
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
static int s_send_tasks(zfed_round_env_t *self, round_t *round, const uint32_t *indexes,
                        size_t count, int64_t now)
{
    const zfed_global_t *global = zfed_records_global(self->records);
    zfed_global_t model_global;
    if (round->model) {
        model_global = zfed_mround_global(self);
        global = &model_global;
    }
    //  A batch's tasks are written in place, each after its item header:
    //  no body of its own copied in (zfed_batch_encode_open).
    if (count > 1 && zfed_batch_encode_begin(&self->buffer, count) != 0)
        return -1;
    for (size_t item = 0; item < count; item++) {
        task_t *task = &round->tasks[indexes[item]];
        size_t mark = 0;
        if (count > 1 && zfed_batch_encode_open(&self->buffer, &mark) != 0)
            return -1;
        if (count == 1)
            msgpack_sbuffer_clear(&self->buffer);
        int rc = zfed_msg_encode_task_after(&self->buffer, round->task_prefix,
                                            round->task_prefix_size, indexes[item], task->attempts,
                                            task->params, task->params_size, global->round,
                                            global->value, global->size);
        if (rc != 0 || (count > 1 && zfed_batch_encode_close(&self->buffer, mark) != 0))
            return -1;
    }
    //  Tasks too big to travel together go as two smaller batches (down to
    //  single tasks, which zfed_msg limits on their own).
    if (count > 1 && self->buffer.size > ZFED_BODY_MAX) {
        size_t half = count / 2;
        if (s_send_tasks(self, round, indexes, half, now) != 0)
            return -1;
        return s_send_tasks(self, round, indexes + half, count - half, now);
    }
    uint64_t ticket = self->next_ticket;
    if (s_record_sent(self, round, indexes, count) != 0)
        return -1;
    sent_t *request = &round->sent[round->sent_count - 1];
    self->next_ticket++;
    //  A job with sites sends one task per request, to its site's workers.
    //  A plain broker would forward a ticket to the worker: none then.
    const char *service = zfed_job_task_service(self->job, indexes[0]);
    int sent = round->model ? zfed_mround_send(self, service, &self->buffer, ticket)
               : self->plain_broker
                   ? zfed_client_send(self->client, service, self->buffer.data, self->buffer.size)
                   : zfed_client_send_ticket(self->client, service, ticket, self->buffer.data,
                                             self->buffer.size);
    if (sent != 0)
        zfed_debug("%zu task(s) of round %u not queued; will retry", count, round->number);
    int64_t sent_us = zfed_clock_us();
    for (size_t item = 0; item < count; item++) {
        task_t *task = &round->tasks[indexes[item]];
        if (task->attempts >= self->job->replicas)
            round->resent++; //  a replica is no resend
        task->attempts++;
        task->sent_us = sent_us;
        task->batched = count > 1;
        task->in_flight++;
        if (s_schedule_resend(self, round, indexes[item], now) != 0)
            return -1;
    }
    //  Never queued, so never answered: nothing waits for its reply.
    if (sent != 0)
        s_settle(round, request);
    else if (!self->plain_broker)
        self->unanswered++;
    return 0;
}

int zfed_round_send_task(zfed_round_env_t *self, round_t *round, uint32_t index, int64_t now)
{
    return s_send_tasks(self, round, &index, 1, now);
}

void zfed_round_warn(round_t *round, const char *format, ...)
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

static void s_replace(zfed_round_env_t *self, round_t *round, uint32_t index, int64_t now);
static void s_send_copies(zfed_round_env_t *self, round_t *round, uint32_t index, uint32_t count,
                          bool replacing, int64_t now);

//  Who sent message, for a log line: the identity the broker vouched for,
//  with the worker's own name beside it as a label.
static const char *s_who(const round_t *round, const zfed_msg_t *message, char *text, size_t size)
{
    const char *vouched = zfed_round_vouched(round);
    const char *label = zfed_msg_worker(message);
    if (!vouched)
        snprintf(text, size, "\"%s\" %s", label, round->identity ? round->identity : "");
    else if (strcmp(vouched, label) == 0)
        snprintf(text, size, "%s", vouched);
    else
        snprintf(text, size, "%s \"%s\"", vouched, label);
    return text;
}

//  Replicas: an error is one replica's.  One that is not transient spends
//  that replica, as its identity's say on the task (one say per identity:
//  a vote or such an error), and the task fails when too few are left
//  for a majority.  A worker's transient error, or any error from an
//  identity that has had its say or is excluded, is no say: the replica
//  is replaced.
static void s_replica_error(zfed_round_env_t *self, round_t *round, uint32_t index,
                            const zfed_msg_t *message, int64_t now)
{
    task_t *task = &round->tasks[index];
    const char *why = NULL;
    if (task->state != TASK_PENDING)
        return;
    bool transient = s_error_is_transient(zfed_msg_error_code(message));
    if (transient && round->identity && strcmp(round->identity, ZFED_STAMP_BROKER) == 0) {
        //  The broker's own 429/503/504 say how it is, not what a worker
        //  did: another replica, within the task's sends (as without
        //  replicas).
        s_send_copies(self, round, index, 1, false, now);
        return;
    }
    if (!zfed_vote_allowed(self, round, index, round->identity, &why) || transient) {
        if (why)
            zfed_debug("round %u task %u: error from %s not counted: %s", round->number, index,
                       round->identity, why);
        s_replace(self, round, index, now);
        return;
    }
    if (zfed_vote_spend(self, round, index, round->identity) != 0)
        zfed_error("round %u task %u: out of memory", round->number, index);
    task->starving = false; //  a new identity's say
    if (self->job->replicas - task->spent < self->job->replicas / 2 + 1) {
        task->state = TASK_FAILED;
        round->failed++;
    }
}

static void s_handle_error(zfed_round_env_t *self, round_t *round, const zfed_msg_t *message,
                           int64_t now)
{
    uint32_t index = zfed_msg_task_id(message);
    task_t *task = &round->tasks[index];
    round->errors++;
    char who[REASON_MAX];
    //  The round's last error, for its log line and summary: cut short when
    //  a 512-byte message and a long identity do not fit (the round
    //  record's error list below keeps each part whole).
    int length =
        snprintf(round->last_error_text, sizeof round->last_error_text,
                 "task %u: %s%s%s (%u, from %s)", index, zfed_msg_error_field(message),
                 zfed_msg_error_field(message)[0] ? ": " : "", zfed_msg_error_text(message),
                 zfed_msg_error_code(message), s_who(round, message, who, sizeof who));
    if (length >= (int)sizeof round->last_error_text)
        memcpy(round->last_error_text + sizeof round->last_error_text - 4, "...", 4);
    round->last_error = round->last_error_text;
    if (json_array_size(round->error_list) < ROUND_ERRORS_KEPT)
        json_array_append_new(
            round->error_list,
            json_pack(
                "{s:i,s:s,s:o,s:i,s:i,s:s,s:s}", "task", index, "worker", zfed_msg_worker(message),
                "worker_id",
                zfed_round_vouched(round) ? json_string(zfed_round_vouched(round)) : json_null(),
                "attempt", zfed_msg_attempt(message), "code", zfed_msg_error_code(message), "field",
                zfed_msg_error_field(message), "message", zfed_msg_error_text(message)));
    zfed_round_warn(round, "%s", round->last_error_text);
    if (self->job->replicas > 1) {
        s_replica_error(self, round, index, message, now);
        return;
    }
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
        if (zfed_round_send_task(self, round, index, now) != 0)
            zfed_error("cannot resend task %u (out of memory)", index);
        return;
    }
    task->state = TASK_FAILED;
    round->failed++;
}

const msgpack_object *zfed_round_task_params(const zfed_round_env_t *self, const round_t *round,
                                             const task_t *task, msgpack_unpacked *own,
                                             bool *own_used)
{
    *own_used = false;
    //  The shared copy went through zfed_job_service_params once, when it
    //  was unpacked (s_round_prepare): the same for every task.
    if (task->params == round->shared_params && round->shared_unpacked_ok)
        return &round->shared_unpacked.data;
    *own_used = true; //  zfed_unpack's contract: destroyed by the caller either way
    if (zfed_unpack(own, task->params, task->params_size) != 0)
        return NULL;
    zfed_job_service_params(self->job, &own->data);
    return &own->data;
}

//  The service's reading of a result for task index into sample: 0, or
//  -1 with fault.
static int s_read_sample(zfed_round_env_t *self, const round_t *round, const task_t *task,
                         const zfed_msg_t *message, zfed_sample_t *sample, zfed_fault_t *fault)
{
    const msgpack_object *outputs = zfed_msg_outputs_object(message);
    msgpack_unpacked own;
    bool own_used;
    const msgpack_object *params = zfed_round_task_params(self, round, task, &own, &own_used);
    int rc;
    if (params && outputs)
        rc = self->service->read_outputs(params, outputs, sample, fault);
    else {
        rc = -1;
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "cannot unpack");
    }
    if (own_used)
        msgpack_unpacked_destroy(&own);
    return rc;
}

//  A big round's accepted result becomes its line at once, so the round
//  holds about 130 bytes per result instead of its decoded reply (2.5 KB):
//  a 100,000-result round no longer faults in and frees 0.25 GB.  A line
//  that cannot be rendered (out of memory) keeps the reply, rendered later.
static void s_render(zfed_round_env_t *self, round_t *round, uint32_t index)
{
    task_t *task = &round->tasks[index];
    size_t at = round->lines.size;
    if (zfed_results_line(self, round, index, &round->lines) != 0) {
        round->lines.size = at;
        return;
    }
    task->line_at = at;
    task->line_size = (uint32_t)(round->lines.size - at);
    zfed_msg_recycle(&task->result, &self->spare);
}

//  Sends up to count more replicas of task index (one, for replicas 1),
//  as far as its sends allow: replicas x (retries + 1) in all.
static void s_send_copies(zfed_round_env_t *self, round_t *round, uint32_t index, uint32_t count,
                          bool replacing, int64_t now)
{
    task_t *task = &round->tasks[index];
    for (uint32_t copy = 0; copy < count && s_may_send(self->job, task, replacing); copy++) {
        if (zfed_round_send_task(self, round, index, now) != 0) {
            zfed_error("cannot send task %u again (out of memory)", index);
            return;
        }
        task->replaced += replacing;
    }
}

//  Replicas: task index has had every replacement it may have and still
//  too few distinct identities answer it (more replicas than workers, or
//  one worker taking every replica while the others are busy elsewhere
//  for a whole task timeout): it fails saying so, rather than churn until
//  the deadline.
static void s_too_few_identities(zfed_round_env_t *self, round_t *round, uint32_t index)
{
    task_t *task = &round->tasks[index];
    if (task->state != TASK_PENDING)
        return;
    uint32_t replicas = self->job->replicas;
    uint32_t said = task->vote_count + task->spent; //  distinct: one say per identity
    snprintf(round->last_error_text, sizeof round->last_error_text,
             "only %u distinct identit%s answered task %u; a majority of K=%u needs %u (%u "
             "replacement replicas, %u sends in all: fewer workers than replicas?)",
             said, said == 1 ? "y" : "ies", index, replicas, replicas / 2 + 1, task->replaced,
             task->attempts);
    round->last_error = round->last_error_text;
    zfed_round_warn(round, "%s", round->last_error_text);
    task->state = TASK_FAILED;
    round->failed++;
}

//  Replicas: task index may get no more replacements.  It waits for its
//  resend on silence (s_resend_due), unless it may get no send at all and
//  none of it is out: then nothing can ever decide it.
static void s_replacements_out(zfed_round_env_t *self, round_t *round, uint32_t index)
{
    const task_t *task = &round->tasks[index];
    if (!s_may_send(self->job, task, false) && task->in_flight == 0 && task->deferred == 0)
        s_too_few_identities(self, round, index);
}

//  Replicas: an answer that was no say on task index (a result that was no
//  vote, an error that spent no replica) is replaced by another replica.
//  The broker hands it to whichever worker is free: while other requests
//  are out (this round's, or an earlier round's still being worked on),
//  that may well be only the worker that just answered, which would take
//  every replacement as fast as it answers.  So while any request is out
//  the replacement waits until a worker other than that one answers
//  (s_release); when none is out it goes at once.  Replacements that go
//  at once are bounded (REPLACEMENTS_PER_REPLICA x replicas per task);
//  those another worker's answer releases are paced by those answers.
static void s_replace(zfed_round_env_t *self, round_t *round, uint32_t index, int64_t now)
{
    task_t *task = &round->tasks[index];
    if (task->state != TASK_PENDING)
        return;
    if (self->unanswered == 0) {
        if (s_may_send(self->job, task, true))
            s_send_copies(self, round, index, 1, true, now);
        else
            s_replacements_out(self, round, index);
        return;
    }
    if (s_grow((void **)&round->deferred, &round->deferred_capacity, round->deferred_count + 1,
               sizeof *round->deferred) != 0) {
        s_send_copies(self, round, index, 1, true, now);
        return;
    }
    deferral_t *entry = &round->deferred[round->deferred_count++];
    entry->task = index;
    snprintf(entry->by, sizeof entry->by, "%s", round->identity ? round->identity : "");
    task->deferred++;
}

//  Replacements waiting go out once a worker that may still have its say
//  on their task, and is not the one whose answer they replace, has
//  answered (it, at least, is free now; the broker's own replies say
//  nothing of that), or all of them once no request is out.  The broker
//  hands a request to the worker free longest, which is often the one
//  whose answer it replaces (it answered before the releasing worker
//  did), so a released replacement goes as two copies: the second finds
//  the worker that just answered.
static void s_release(zfed_round_env_t *self, round_t *round, const char *identity, int64_t now)
{
    if (round->deferred_count == 0)
        return;
    bool all = self->unanswered == 0;
    if (!all && (!identity || strcmp(identity, ZFED_STAMP_BROKER) == 0))
        return;
    //  The ones that stay to the front, the ones that go behind them.
    size_t kept = 0, count = round->deferred_count;
    for (size_t item = 0; item < count; item++) {
        deferral_t entry = round->deferred[item];
        const char *why;
        if (!all && (strcmp(entry.by, identity) == 0 ||
                     (round->tasks[entry.task].state == TASK_PENDING &&
                      !zfed_vote_allowed(self, round, entry.task, identity, &why)))) {
            round->deferred[item] = round->deferred[kept];
            round->deferred[kept++] = entry;
        } else
            round->tasks[entry.task].deferred--;
    }
    round->deferred_count = kept;
    //  In random order: in a fixed one the broker's free workers could
    //  take the same tasks again and again.
    for (size_t item = count; item > kept + 1; item--) {
        size_t other = kept + (size_t)rand() % (item - kept);
        deferral_t entry = round->deferred[item - 1];
        round->deferred[item - 1] = round->deferred[other];
        round->deferred[other] = entry;
    }
    for (size_t item = kept; item < count; item++) {
        uint32_t index = round->deferred[item].task;
        task_t *task = &round->tasks[index];
        if (task->state != TASK_PENDING)
            continue;
        //  Released by a worker's answer, replacements go even past the
        //  bound: they are paced by the answers of workers that may still
        //  have their say, not by how fast the one they replace answers.
        if (all && !s_may_send(self->job, task, true)) {
            s_replacements_out(self, round, index);
            continue;
        }
        for (int copy = 0; copy < (all ? 1 : 2); copy++) {
            if (zfed_round_send_task(self, round, index, now) != 0)
                zfed_error("cannot send task %u again (out of memory)", index);
            if (all)
                task->replaced++;
            else
                task->paced++;
        }
    }
}

//  Replicas: a result the service accepted is a vote; a majority decides.
static void s_vote(zfed_round_env_t *self, round_t *round, uint32_t index, zfed_msg_t **message_p,
                   int64_t now)
{
    task_t *task = &round->tasks[index];
    zfed_msg_t *winner = NULL;
    char winner_id[ZFED_STAMP_IDENTITY_MAX + 1];
    zfed_debug("round %u task %u: a vote from %s", round->number, index, round->identity);
    zfed_vote_outcome_t outcome = zfed_vote_add(self, round, index, message_p, &winner, winner_id);
    task->starving = false; //  a new identity's say
    if (outcome == ZFED_VOTE_SPLIT) {
        if (task->state == TASK_PENDING)
            round->failed++;
        task->state = TASK_FAILED;
        snprintf(round->last_error_text, sizeof round->last_error_text,
                 "task %u: no majority among %u replicas", index, self->job->replicas);
        round->last_error = round->last_error_text;
    } else if (outcome == ZFED_VOTE_DECIDED) {
        zfed_fault_t fault = {0};
        const char *identity = round->identity;
        round->identity = winner_id;
        //  Read before: it was, as this vote's twin, so it reads again.
        if (s_read_sample(self, round, task, winner, &task->sample, &fault) == 0) {
            zfed_round_accept(round, index, &winner);
            if (round->render)
                s_render(self, round, index);
        }
        round->identity = identity;
        zfed_msg_destroy(&winner);
    }
}

//  Takes *message_p when the result is accepted (it becomes the task's).
static void s_handle_result(zfed_round_env_t *self, round_t *round, zfed_msg_t **message_p,
                            const uint8_t *data, size_t data_size, int64_t now)
{
    zfed_msg_t *message = *message_p;
    uint32_t index = zfed_msg_task_id(message);
    task_t *task = &round->tasks[index];
    bool replicated = self->job->replicas > 1;
    const char *why = NULL;
    if (replicated && task->state != TASK_DONE && task->vote_count >= self->job->replicas) {
        round->duplicates++; //  every replica has voted (and there was no majority)
        return;
    }
    if (replicated && !zfed_vote_allowed(self, round, index, round->identity, &why)) {
        //  Not a vote: the replica goes to another worker.
        if (zfed_liars_has(self->liars, round->identity))
            round->excluded_results++;
        else
            round->duplicates++;
        char who[REASON_MAX];
        s_who(round, message, who, sizeof who);
        zfed_debug("round %u task %u: result from %s not counted: %s", round->number, index, who,
                   why);
        zfed_round_warn(round, "task %u: result from %s not counted: %s", index, who, why);
        s_replace(self, round, index, now);
        return;
    }
    if (task->state == TASK_DONE) {
        round->duplicates++;
        char who[REASON_MAX];
        zfed_debug("round %u task %u: duplicate result from %s counted once", round->number, index,
                   s_who(round, message, who, sizeof who));
        if (replicated)
            zfed_vote_late(self, round, index, message);
        if (round->model)
            zfed_mround_unused(self, message);
        return;
    }
    if (round->model) {
        zfed_mround_result(self, round, message_p, data, data_size, now);
        return;
    }
    //  Emptied, not zeroed: its 580 bytes cleared were 80 instructions a
    //  result, and a fault is read as its code and two strings.
    zfed_fault_t fault;
    fault.code = 0;
    fault.field[0] = fault.text[0] = '\0';
    zfed_sample_t check;
    zfed_sample_t *sample = replicated ? &check : &task->sample;
    if (s_read_sample(self, round, task, message, sample, &fault) != 0) {
        //  A result that does not fit its task is refused, never bent into
        //  shape; the task stays open for its resend.
        round->invalid++;
        zfed_round_warn(round, "task %u: result from %s refused: %s%s%s (its worker: %s)", index,
                        zfed_msg_worker(message), fault.field, fault.field[0] ? ": " : "",
                        fault.text, round->identity);
    } else if (replicated) {
        zfed_sample_clear(&check);
        s_vote(self, round, index, message_p, now);
    } else {
        zfed_round_accept(round, index, message_p);
        if (round->render)
            s_render(self, round, index);
    }
}

void zfed_round_accept(round_t *round, uint32_t index, zfed_msg_t **message_p)
{
    task_t *task = &round->tasks[index];
    task->result = *message_p;
    *message_p = NULL;
    const char *vouched = zfed_round_vouched(round);
    //  Copied by hand: an snprintf per result was 150 instructions of it.
    size_t length = vouched ? strnlen(vouched, sizeof task->worker_id - 1) : 0;
    memcpy(task->worker_id, vouched ? vouched : "", length);
    task->worker_id[length] = '\0';
    task->latency_us = (round->reply_us ? round->reply_us : zfed_clock_us()) - task->sent_us;
    if (task->state == TASK_FAILED)
        round->failed--; //  a late success beats an earlier error
    task->state = TASK_DONE;
    round->answered++;
}

//  A reply's body that is no task's answer: refused and counted.
static void s_refuse_reply(round_t *round, const char *what)
{
    round->invalid++;
    zfed_round_warn(round, "%s from %s refused", what, round->identity);
}

//  One reply body (a batch's item, or a plain reply).  expect: the task
//  and attempt the request carried in that place, NULL for a reply of an
//  earlier round's request or a single reply to a batch request (which
//  may only be an error naming no task: a worker that cannot read
//  batches, section 16).
static void s_handle_body(zfed_round_env_t *self, round_t *round, const carried_t *expect,
                          const uint8_t *body, size_t size, const uint8_t *data, size_t data_size,
                          bool earlier, int64_t now)
{
    char reason[REASON_MAX];
    zfed_msg_t *message = zfed_msg_decode_into(&self->spare, body, size, reason, sizeof reason);
    if (!message) {
        round->invalid++;
        zfed_round_warn(round, "undecodable reply from %s refused: %s", round->identity, reason);
        return;
    }
    const char *job_id = zfed_msg_job_id(message);
    zfed_msg_kind_t kind = zfed_msg_kind(message);
    if (kind == ZFED_MSG_ERROR && job_id[0] == '\0') {
        //  Someone could not read our task at all: nothing to match it to.
        round->errors++;
        zfed_round_warn(round, "error reply naming no task: %s (%u, from %s)",
                        zfed_msg_error_text(message), zfed_msg_error_code(message),
                        round->identity);
    } else if (kind == ZFED_MSG_TASK) {
        s_refuse_reply(round, "a task sent back as a reply");
    } else if (earlier) {
        //  The request was an earlier round's: its answer is late (or, if
        //  it claims otherwise, a lie).
        if (strcmp(job_id, self->job->job_id) != 0) {
            zfed_records_count_foreign(self->records);
            zfed_debug("reply for another job (%s) ignored", job_id);
        } else if (zfed_msg_round(message) < round->number) {
            zfed_records_count_late(self->records, zfed_msg_round(message));
            if (round->model && kind == ZFED_MSG_RESULT)
                zfed_mround_unused(self, message);
            zfed_debug("late %s for round %u task %u from %s: counted, not aggregated",
                       zfed_msg_kind_name(kind), zfed_msg_round(message), zfed_msg_task_id(message),
                       round->identity);
        } else
            s_refuse_reply(round, "a reply to an earlier round's request naming this round");
    } else if (!expect) {
        s_refuse_reply(round, "a single reply to a batch request");
    } else if (strcmp(job_id, self->job->job_id) != 0 || zfed_msg_round(message) != round->number ||
               zfed_msg_task_id(message) != expect->task ||
               zfed_msg_attempt(message) != expect->attempt) {
        //  A reply answers the task its request carried, nothing else.
        round->invalid++;
        zfed_round_warn(round,
                        "a %s from %s naming job %s round %u task %u attempt %u refused: its "
                        "request carried round %u task %u attempt %u",
                        zfed_msg_kind_name(kind), round->identity, job_id, zfed_msg_round(message),
                        zfed_msg_task_id(message), zfed_msg_attempt(message), round->number,
                        expect->task, expect->attempt);
    } else if (zfed_mround_passing(round)) {
        //  Too late for its round: this round aggregates, and the pass
        //  reads what was in at its close.
        zfed_records_count_late(self->records, round->number);
        if (round->model && kind == ZFED_MSG_RESULT)
            zfed_mround_unused(self, message);
        zfed_debug("late %s for round %u task %u from %s: counted, not aggregated",
                   zfed_msg_kind_name(kind), round->number, expect->task, round->identity);
    } else if (kind == ZFED_MSG_RESULT)
        s_handle_result(self, round, &message, data, data_size, now);
    else
        s_handle_error(self, round, message, now);
    zfed_msg_recycle(&message, &self->spare);
}

//  A batch reply: one reply body per task of the batch request, item i
//  answering the request's task i.
static void s_handle_batch(zfed_round_env_t *self, round_t *round, const sent_t *sent,
                           const uint8_t *body, size_t size, int64_t now)
{
    char reason[REASON_MAX];
    size_t count = 0;
    if (zfed_batch_decode(body, size, self->views, ZFED_BATCH_MAX, &count, reason, sizeof reason) !=
        0) {
        round->invalid++;
        zfed_round_warn(round, "undecodable batch reply from %s refused: %s", round->identity,
                        reason);
        return;
    }
    if (count != sent->count) {
        round->invalid++;
        zfed_round_warn(round,
                        "a batch of %zu replies from %s refused: its request carried %u tasks",
                        count, round->identity, sent->count);
        return;
    }
    //  Handling an item may send again, which moves round->sent and
    //  round->carried: each item's task is copied out first.
    size_t first = sent->first;
    for (size_t item = 0; item < count; item++) {
        if (zfed_batch_is(self->views[item].data, self->views[item].size)) {
            round->invalid++; //  batches do not nest
            continue;
        }
        carried_t expect = round->carried[first + item];
        s_handle_body(self, round, &expect, self->views[item].data, self->views[item].size, NULL, 0,
                      false, now);
    }
}

//  A reply to request sent (NULL: a request of an earlier round).
static void s_handle_reply(zfed_round_env_t *self, round_t *round, const sent_t *sent,
                           const uint8_t *body, size_t size, const uint8_t *data, size_t data_size,
                           int64_t now)
{
    if (!zfed_batch_is(body, size)) {
        carried_t expect = sent ? round->carried[sent->first] : (carried_t){0, 0};
        s_handle_body(self, round, sent && !sent->batch ? &expect : NULL, body, size, data,
                      data_size, !sent, now);
    } else if (!sent) {
        zfed_records_count_late(self->records, round->number - 1);
        zfed_debug("late batch reply from %s: counted, not aggregated", round->identity);
    } else if (!sent->batch)
        s_refuse_reply(round, "a batch reply to a plain request");
    else
        s_handle_batch(self, round, sent, body, size, now);
}

const char *zfed_round_vouched(const round_t *round)
{
    if (!round->identity || strcmp(round->identity, ROUND_UNVOUCHED) == 0)
        return NULL;
    return round->identity;
}

//  Plain broker: the (job, round, task, attempt) a reply's body names, for
//  a batch its first item's.  false when the body names no task of this
//  job (undecodable, an error naming no task, another job's).
static bool s_peek_names(zfed_round_env_t *self, const uint8_t *body, size_t size,
                         uint32_t *round_number, uint32_t *task, uint32_t *attempt)
{
    if (zfed_batch_is(body, size)) {
        char reason[REASON_MAX];
        size_t count = 0;
        if (zfed_batch_decode(body, size, self->views, ZFED_BATCH_MAX, &count, reason,
                              sizeof reason) != 0 ||
            count == 0 || zfed_batch_is(self->views[0].data, self->views[0].size))
            return false;
        body = self->views[0].data;
        size = self->views[0].size;
    }
    char reason[REASON_MAX];
    zfed_msg_t *message = zfed_msg_decode(body, size, reason, sizeof reason);
    bool named = message && zfed_msg_kind(message) != ZFED_MSG_TASK &&
                 strcmp(zfed_msg_job_id(message), self->job->job_id) == 0;
    if (named) {
        *round_number = zfed_msg_round(message);
        *task = zfed_msg_task_id(message);
        *attempt = zfed_msg_attempt(message);
    }
    zfed_msg_destroy(&message);
    return named;
}

//  Plain broker: no stamp says which request a reply answers, so the
//  body's own names must find one: a request of this round, not answered
//  yet, that carried that task at that attempt (for a batch, as its first
//  task; s_handle_batch then checks every item against it).  A reply
//  naming an earlier round is late; one naming nothing outstanding is
//  refused.  Nobody vouches for who answered (PROTOCOL.md 3.1).
static void s_handle_plain(zfed_round_env_t *self, round_t *round, const uint8_t *body, size_t size,
                           const uint8_t *data, size_t data_size, int64_t now)
{
    round->identity = ROUND_UNVOUCHED;
    uint32_t number = 0, task = 0, attempt = 0;
    bool named = s_peek_names(self, body, size, &number, &task, &attempt);
    char key[OUTSTANDING_KEY_MAX];
    s_outstanding_key(key, sizeof key, task, attempt);
    uintptr_t position = named && number == round->number && round->outstanding
                             ? (uintptr_t)zhashx_lookup(round->outstanding, key)
                             : 0;
    sent_t *sent = position ? &round->sent[position - 1] : NULL;
    bool batch = zfed_batch_is(body, size);
    if (!named || number < round->number)
        //  Late, another job's, or naming no task: handled as a reply to
        //  no request of this round (counted, never aggregated).
        s_handle_reply(self, round, NULL, body, size, data, data_size, now);
    else if (!sent || sent->answered || sent->batch != batch ||
             round->carried[sent->first].task != task)
        s_refuse_reply(round, "a reply naming no request outstanding");
    else {
        s_settle(round, sent);
        s_handle_reply(self, round, sent, body, size, data, data_size, now);
    }
    round->identity = NULL;
}

//  Every reply must carry the broker's stamp: the ticket of the request
//  it answers, and who answered.  A reply that has none, or a ticket this
//  controller never issued, answers nothing.
static void s_handle_stamped(zfed_round_env_t *self, round_t *round, const uint8_t *body,
                             size_t size, const uint8_t *data, size_t data_size, int64_t now)
{
    if (self->plain_broker) {
        s_handle_plain(self, round, body, size, data, data_size, now);
        return;
    }
    uint64_t ticket = 0;
    const char *identity = NULL;
    if (!zfed_client_stamp(self->client, &ticket, &identity)) {
        round->invalid++;
        zfed_round_warn(round, "a reply without the broker's stamp refused (is the broker a "
                               "zfed-broker? PROTOCOL.md 3.1)");
        return;
    }
    round->identity = identity;
    //  A ticket's first reply (one per request: the broker matches each
    //  REPLY to one request once) frees whoever held it.
    if (ticket > 0 && ticket < self->next_ticket && self->unanswered > 0 &&
        (ticket < round->first_ticket || !round->sent[ticket - round->first_ticket].answered))
        self->unanswered--;
    if (ticket == 0 || ticket >= self->next_ticket) {
        round->invalid++;
        zfed_round_warn(round, "a reply from %s with a ticket never issued (%" PRIu64 ") refused",
                        identity, ticket);
    } else if (ticket < round->first_ticket)
        s_handle_reply(self, round, NULL, body, size, data, data_size, now);
    else {
        sent_t *sent = &round->sent[ticket - round->first_ticket];
        if (sent->answered)
            s_refuse_reply(round, "a second reply to one request");
        else if (size == 0) {
            //  The stamp came with an empty body frame, or none at all.
            s_settle(round, sent);
            round->invalid++;
            zfed_round_warn(round, "an empty reply body from %s (ticket %" PRIu64 ") refused",
                            identity, ticket);
        } else {
            s_settle(round, sent);
            s_handle_reply(self, round, sent, body, size, data, data_size, now);
        }
    }
    s_release(self, round, identity, now);
    round->identity = NULL;
}

//  ---------------------------------------------------------------------
//  Closing a round

static int s_aggregate(zfed_round_env_t *self, round_t *round, mpq_t **values_p, size_t *dims_p)
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
        } else if (task->sample.small)
            rc = zfed_agg_add_u64(agg, task->sample.small_value, task->sample.weight);
        else
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

//  The record of an accepted result: who, which attempt, how long, and the
//  service's own fields.
static json_t *s_result_entry(zfed_round_env_t *self, const round_t *round, uint32_t index)
{
    const task_t *task = &round->tasks[index];
    const zfed_msg_t *result = task->result;
    if (!result) {
        //  Rendered already (a big round that kept few results): read back.
        json_t *entry = task->line_size ? json_loadb(round->lines.data + task->line_at,
                                                     task->line_size, JSON_DECODE_ANY, NULL)
                                        : NULL;
        return entry ? entry : json_null();
    }
    uint64_t compute_us = zfed_msg_compute_us(result);
    //  Set one by one, not json_pack'd: the format's parse and its keys'
    //  UTF-8 checks were a third of an entry's cost (the keys are ours).
    json_t *entry = json_object();
    if (!entry)
        return json_null();
    int rc = json_object_set_new_nocheck(entry, "task", json_integer(index));
    rc |= json_object_set_new_nocheck(entry, "worker", json_string(zfed_msg_worker(result)));
    rc |= json_object_set_new_nocheck(
        entry, "worker_id", task->worker_id[0] ? json_string(task->worker_id) : json_null());
    rc |= json_object_set_new_nocheck(entry, "attempt", json_integer(zfed_msg_attempt(result)));
    rc |= json_object_set_new_nocheck(
        entry, "compute_us",
        json_integer((json_int_t)(compute_us > INT64_MAX ? INT64_MAX : compute_us)));
    rc |= json_object_set_new_nocheck(entry, "latency_us",
                                      json_integer((json_int_t)task->latency_us));
    if (rc != 0) {
        json_decref(entry);
        return json_null();
    }
    if (zfed_job_site(self->job, index))
        json_object_set_new(entry, "site", json_string(zfed_job_site(self->job, index)));
    msgpack_unpacked own;
    bool own_used;
    const msgpack_object *params = zfed_round_task_params(self, round, task, &own, &own_used);
    if (params && self->service->describe)
        self->service->describe(params, zfed_msg_outputs_object(result), entry);
    if (own_used)
        msgpack_unpacked_destroy(&own);
    if (round->model)
        zfed_mround_describe(self, round, index, entry);
    return entry;
}

//  The record's results (accepted, in task order; not built when
//  results_p is NULL) and missing tasks.
static void s_record_lists(zfed_round_env_t *self, const round_t *round, json_t **results_p,
                           json_t **missing_p)
{
    json_t *results = results_p ? json_array() : NULL;
    json_t *missing = json_array();
    for (uint32_t index = 0; index < self->job->tasks; index++) {
        const task_t *task = &round->tasks[index];
        if (task->state != TASK_DONE)
            json_array_append_new(missing, json_integer(index));
        else if (results)
            json_array_append_new(results, s_result_entry(self, round, index));
    }
    if (results_p)
        *results_p = results;
    *missing_p = missing;
}

//  A big round's results go to their own file (zfed_results), named by the
//  record (new reference), or NULL with self->failure set.
static json_t *s_results_file(zfed_round_env_t *self, const round_t *round)
{
    char name[64], path[PATH_MAX];
    zfed_store_results_name(round->number, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", zfed_records_path(self->records), name);
    int64_t started_us = zfed_clock_us();
    if (zfed_results_write(self, round, path) != 0) {
        snprintf(self->failure, sizeof self->failure, "round %u: cannot write %.*s: %s",
                 round->number, FAILURE_REASON_MAX / 2, path, strerror(errno));
        return NULL;
    }
    zfed_debug("round %u: %u results written to %s in %.1f ms", round->number, round->answered,
               name, (double)(zfed_clock_us() - started_us) / 1000.0);
    return json_string(name);
}

static zfed_progress_round_t s_view(const zfed_round_env_t *self, const round_t *round, int64_t now)
{
    return (zfed_progress_round_t){
        round->number,     self->job->rounds,       round->answered,         self->job->tasks,
        self->job->quorum, round->resent,           round->duplicates,       round->errors,
        round->invalid,    now - round->started_ms, round->quorum_at_ms != 0};
}

static int s_close_round(zfed_round_env_t *self, round_t *round)
{
    mpq_t *values = NULL;
    size_t dims = 0;
    if (s_aggregate(self, round, &values, &dims) != 0)
        return -1;
    int64_t duration_us = zfed_clock_us() - round->started_us;
    int64_t duration_ms = (duration_us + 500) / 1000;
    json_t *results = NULL, *missing;
    bool own_file = round->answered > ZFED_RESULTS_INLINE_MAX;
    s_record_lists(self, round, own_file ? NULL : &results, &missing);
    if (own_file && !(results = s_results_file(self, round))) {
        json_decref(missing);
        s_free_values(values, dims);
        return -1;
    }
    json_t *aggregate_json = self->service->aggregate_json((const mpq_t *)values, dims);
    char *aggregate_text = self->service->aggregate_text((const mpq_t *)values, dims);
    //  global_in and global_out are zfed_records' to fill; they hold their
    //  place in the record's order.
    json_t *record = json_pack(
        "{s:i,s:s,s:o,s:I,s:I,s:i,s:i,s:i,s:o,s:o,s:O,s:o,s:I,s:I,s:I,s:I,s:o,s:n,s:n}", "round",
        round->number, "status", "closed", "started_at",
        zfed_records_time_json(round->started_wall_ms), "duration_ms", (json_int_t)duration_ms,
        "duration_us", (json_int_t)duration_us, "tasks", self->job->tasks, "quorum",
        self->job->quorum, "answered", round->answered, own_file ? "results_file" : "results",
        results, "missing", missing, "aggregate", aggregate_json ? aggregate_json : json_null(),
        "aggregate_exact", zfed_records_exact_json((const mpq_t *)values, dims), "duplicates",
        (json_int_t)round->duplicates, "errors", (json_int_t)round->errors, "invalid",
        (json_int_t)round->invalid, "resent", (json_int_t)round->resent, "error_list",
        json_incref(round->error_list), "global_in", "global_out");
    if (record)
        zfed_vote_describe(self, round, record);
    int rc = 0;
    zfed_error_t error;
    if (!record || !aggregate_json || !aggregate_text) {
        snprintf(self->failure, sizeof self->failure, "round %u: out of memory", round->number);
        rc = -1;
    } else if (zfed_records_close_round(self->records, round->number, record, (const mpq_t *)values,
                                        dims, &error) != 0) {
        snprintf(self->failure, sizeof self->failure, "%.*s", FAILURE_REASON_MAX, error.message);
        rc = -1;
    } else {
        zfed_progress_round_t view = s_view(self, round, zfed_clock_ms());
        zfed_progress_round_closed(self->progress, &view, aggregate_text, duration_us);
    }
    json_decref(record);
    json_decref(aggregate_json);
    free(aggregate_text);
    s_free_values(values, dims);
    return rc;
}

//  A model round, once its pass is done: the record names the new global
//  model's file, never its numbers (WORKDIR.md).
static int s_close_model_round(zfed_round_env_t *self, round_t *round)
{
    int64_t duration_us = zfed_clock_us() - round->started_us;
    int64_t duration_ms = (duration_us + 500) / 1000;
    json_t *results, *missing;
    s_record_lists(self, round, &results, &missing);
    json_t *aggregate = zfed_mround_aggregate_json(self, round);
    json_t *record = json_pack(
        "{s:i,s:s,s:o,s:I,s:I,s:i,s:i,s:i,s:o,s:o,s:O,s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:n,s:n}",
        "round", round->number, "status", "closed", "started_at",
        zfed_records_time_json(round->started_wall_ms), "duration_ms", (json_int_t)duration_ms,
        "duration_us", (json_int_t)duration_us, "tasks", self->job->tasks, "quorum",
        self->job->quorum, "answered", round->answered, "results", results, "missing", missing,
        "aggregate", aggregate ? aggregate : json_null(), "duplicates",
        (json_int_t)round->duplicates, "errors", (json_int_t)round->errors, "invalid",
        (json_int_t)round->invalid, "resent", (json_int_t)round->resent, "error_list",
        json_incref(round->error_list), "refused", zfed_mround_refused_json(round), "pass",
        zfed_mround_pass_json(round), "global_in", "global_out");
    json_t *state = zfed_mround_state_json(round);
    if (record && !json_is_null(state))
        json_object_set(record, "state", state);
    json_decref(state);
    int rc = 0;
    zfed_error_t error;
    if (!record || !aggregate) {
        snprintf(self->failure, sizeof self->failure, "round %u: out of memory", round->number);
        rc = -1;
    } else if (zfed_round_settle(self) != 0 || zfed_mround_evaluate(self, round, record) != 0)
        rc = -1; //  the previous round's figures are written before this record
    else if (zfed_records_close_model_round(self->records, round->number, record, aggregate,
                                            &error) != 0 ||
             zfed_mround_advance(self, round, &error) != 0) {
        snprintf(self->failure, sizeof self->failure, "%.*s", FAILURE_REASON_MAX, error.message);
        rc = -1;
    } else {
        zfed_progress_round_t view = s_view(self, round, zfed_clock_ms());
        rc = zfed_mround_evaluate_start(self, round, aggregate, &view, duration_us, record);
    }
    json_decref(record);
    json_decref(aggregate);
    return rc;
}

//  ---------------------------------------------------------------------
//  One round

static int64_t s_next_due(zfed_round_env_t *self, round_t *round)
{
    int64_t due = round->deadline_ms;
    if (round->quorum_at_ms && round->quorum_at_ms + self->job->grace_ms < due)
        due = round->quorum_at_ms + self->job->grace_ms;
    //  Drop stale resend entries: answered tasks, superseded attempts.
    while (round->resend_head < round->resend_count) {
        resend_t *head = &round->resends[round->resend_head];
        task_t *task = &round->tasks[head->task];
        if (task->state == TASK_PENDING && task->attempts == head->sends &&
            s_may_send(self->job, task, false)) {
            if (head->due_ms < due)
                due = head->due_ms;
            break;
        }
        round->resend_head++;
    }
    return due;
}

static void s_resend_due(zfed_round_env_t *self, round_t *round, int64_t now)
{
    while (round->resend_head < round->resend_count) {
        resend_t head = round->resends[round->resend_head];
        task_t *task = &round->tasks[head.task];
        bool live = task->state == TASK_PENDING && task->attempts == head.sends &&
                    s_may_send(self->job, task, false);
        if (live && head.due_ms > now)
            break;
        round->resend_head++;
        if (live) {
            //  Replicas: a second task timeout with its replacements spent
            //  and no new identity's say on it since the first (s_vote,
            //  s_replica_error clear starving) fails it.
            if (self->job->replicas > 1 && !s_may_send(self->job, task, true)) {
                if (task->starving) {
                    s_too_few_identities(self, round, head.task);
                    continue;
                }
                task->starving = true;
            }
            zfed_debug("round %u task %u: no answer in %" PRId64 " ms, sending attempt %u",
                       round->number, head.task, self->job->task_timeout_ms, task->attempts);
            //  Replicas: as many again as votes are still missing.
            int64_t missing = (int64_t)self->job->replicas - task->vote_count - task->spent;
            s_send_copies(self, round, head.task, missing > 0 ? (uint32_t)missing : 1, false, now);
        }
    }
}

//  First sends, --batch tasks per request, in task order, while fewer than
//  --window requests' worth of tasks are unsettled (sent, neither answered
//  nor failed).  Resends do not count: their tasks already do.  -1 with
//  self->failure set when a task cannot be encoded.
static int s_send_window(zfed_round_env_t *self, round_t *round, int64_t now)
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
        int rc = 0;
        for (uint32_t copy = 0; copy < job->replicas && rc == 0; copy++)
            rc = s_send_tasks(self, round, indexes, count, now);
        if (rc != 0) {
            snprintf(self->failure, sizeof self->failure,
                     "round %u: cannot build tasks %u to %u (a body over %d bytes?)", round->number,
                     first, first + count - 1, ZFED_BODY_MAX);
            return -1;
        }
        round->unsent += count;
    }
    return 0;
}

//  Why a round that failed heard nothing (or nothing from some sites),
//  when the watch knows.
static void s_add_finding(zfed_round_env_t *self, const round_t *round)
{
    bool heard = round->answered || round->errors || round->invalid || round->duplicates;
    const char *reason = !self->watch ? ""
                         : heard      ? zfed_watch_reason(self->watch)
                                      : zfed_watch_explain(self->watch, zfed_clock_ms());
    size_t used = strlen(self->failure);
    if (reason[0] && used < sizeof self->failure)
        snprintf(self->failure + used, sizeof self->failure - used, "; %s", reason);
}

//  What a collecting round does next.
enum { COLLECT_WAIT = 0, COLLECT_CLOSE, COLLECT_FAIL };

//  Sends what the window allows, then: close (all in, or the quorum and
//  the grace period, or the deadline with the quorum), fail (the quorum
//  out of reach, the deadline without it, --fail-fast), or wait.
static int s_collect(zfed_round_env_t *self, round_t *round, int64_t *now_p)
{
    const zfed_job_t *job = self->job;
    uint32_t number = round->number;
    if (s_send_window(self, round, *now_p) != 0)
        return COLLECT_FAIL;
    s_release(self, round, NULL, *now_p); //  if nothing is out any more (sends not queued)
    int64_t now = *now_p = zfed_clock_ms();
    if (round->answered >= job->quorum && !round->quorum_at_ms)
        round->quorum_at_ms = now;
    //  Replicas: a round waits for every replica's answer (each may be a
    //  disagreement to record), up to the grace period.
    bool replicas_in = job->replicas == 1 || round->replies >= round->sent_count;
    bool all_settled = round->answered + round->failed == job->tasks && replicas_in;
    if ((round->answered == job->tasks && replicas_in) ||
        (round->quorum_at_ms && (all_settled || now >= round->quorum_at_ms + job->grace_ms)) ||
        (now >= round->deadline_ms && round->answered >= job->quorum))
        return COLLECT_CLOSE;
    if (job->tasks - round->failed < job->quorum) {
        snprintf(self->failure, sizeof self->failure,
                 "round %u: quorum of %u is out of reach: %u of %u tasks failed (last: %s)", number,
                 job->quorum, round->failed, job->tasks,
                 round->last_error ? round->last_error : "unknown");
        return COLLECT_FAIL;
    }
    if (now >= round->deadline_ms) {
        snprintf(self->failure, sizeof self->failure,
                 "round %u: only %u of %u results by the %.1f s deadline (quorum %u)%s%.*s", number,
                 round->answered, job->tasks, job->round_timeout_ms / 1000.0, job->quorum,
                 round->last_error ? "; last error: " : "", REASON_MAX,
                 round->last_error ? round->last_error : "");
        s_add_finding(self, round);
        return COLLECT_FAIL;
    }
    if (self->watch && zfed_watch_check(self->watch, now) != ZFED_WATCH_NOTHING &&
        self->fail_fast) {
        snprintf(self->failure, sizeof self->failure,
                 "round %u: %u of %u results after %.1f s, failing at once (--fail-fast)", number,
                 round->answered, job->tasks, (now - round->started_ms) / 1000.0);
        s_add_finding(self, round);
        return COLLECT_FAIL;
    }
    return COLLECT_WAIT;
}

//  One reply from the client: the watch's, or the round's.
static void s_take_reply(zfed_round_env_t *self, round_t *round, const char *service,
                         const uint8_t *body, size_t size, const uint8_t *data, size_t data_size)
{
    if (self->watch && zfed_watch_reply(self->watch, service, body, size))
        return;
    if (strcmp(service, ZFED_MMI_STATUS) == 0)
        return; //  the start's probe, answered after it gave up (PROTOCOL.md 3.1)
    if (self->watch)
        zfed_watch_heard(self->watch, service);
    round->reply_us = zfed_clock_us();
    s_handle_stamped(self, round, body, size, data, data_size, round->reply_us / 1000);
    round->reply_us = 0;
}

//  A model round waits on the client, the fetcher and the blob server at
//  once, then reads the replies that came (a bounded number, so chunks
//  keep flowing while a round's results pour in).
static void s_receive_model(zfed_round_env_t *self, round_t *round, int64_t wait)
{
    if (zfed_mround_wait(self, round, wait) != 1)
        return;
    for (int count = 0; count < REPLIES_PER_WAIT && !zsys_interrupted; count++) {
        const char *service;
        const uint8_t *body, *data;
        size_t size, data_size;
        if (zfed_client_recv_data(self->client, 0, &service, &body, &size, &data, &data_size) != 1)
            break;
        s_take_reply(self, round, service, body, size, data, data_size);
    }
}

int zfed_round_run(zfed_round_env_t *self, uint32_t number)
{
    const zfed_job_t *job = self->job;
    round_t round = {0};
    if (s_round_prepare(self, &round, number) != 0 ||
        (self->model && zfed_mround_begin(self, &round) != 0)) {
        s_round_clear(self, &round, job->tasks);
        return -1;
    }
    int64_t now = zfed_clock_ms();
    round.started_ms = now;
    round.first_ticket = self->next_ticket;
    round.started_us = zfed_clock_us();
    round.started_wall_ms = zfed_wall_ms();
    round.deadline_ms = now + job->round_timeout_ms;
    if (self->watch)
        zfed_watch_start(self->watch, now);
    int outcome = -1;
    while (true) {
        //  A model round that closed aggregates (MODELS.md 13); if its pass
        //  loses a result below the quorum, it collects again.
        bool passing = zfed_mround_passing(&round);
        if (passing) {
            zfed_mround_status_t status = zfed_mround_step(self, &round, zfed_clock_ms());
            if (status == ZFED_MROUND_DONE) {
                outcome = s_close_model_round(self, &round);
                break;
            }
            if (status == ZFED_MROUND_FAILED)
                break;
            passing = status == ZFED_MROUND_PASSING;
        }
        now = zfed_clock_ms();
        if (!passing) {
            int step = s_collect(self, &round, &now);
            if (step == COLLECT_CLOSE && !round.model) {
                outcome = s_close_round(self, &round);
                break;
            }
            if (step == COLLECT_CLOSE) {
                if (zfed_mround_close(self, &round) != 0)
                    break;
                continue;
            }
            if (step == COLLECT_FAIL)
                break;
            s_resend_due(self, &round, now);
        }
        int64_t due = passing ? now + PASS_WAIT_MS : s_next_due(self, &round);
        if (self->watch && zfed_watch_due(self->watch) < due)
            due = zfed_watch_due(self->watch);
        //  --sync group: the rounds before this one are handed over on
        //  time even while this one runs long.
        if (zfed_records_due(self->records) < due)
            due = zfed_records_due(self->records);
        int64_t wait = due - now;
        if (zfed_progress_live(self->progress) && wait > ZFED_PROGRESS_LIVE_MS)
            wait = ZFED_PROGRESS_LIVE_MS;
        if (round.model)
            s_receive_model(self, &round, wait > 0 ? wait : 0);
        else {
            const char *service;
            const uint8_t *body;
            size_t size;
            if (zfed_client_recv(self->client, wait > 0 ? wait : 0, &service, &body, &size) == 1)
                s_take_reply(self, &round, service, body, size, NULL, 0);
        }
        if (zsys_interrupted) {
            outcome = 1;
            break;
        }
        now = zfed_clock_ms();
        zfed_error_t error;
        if (zfed_records_tick(self->records, now, &error) != 0) {
            snprintf(self->failure, sizeof self->failure, "%.*s", FAILURE_REASON_MAX,
                     error.message);
            break;
        }
        zfed_progress_round_t view = s_view(self, &round, now);
        zfed_progress_live_update(self->progress, &view, now);
    }
    zfed_progress_live_clear(self->progress);
    s_round_clear(self, &round, job->tasks);
    return outcome;
}

void zfed_round_env_init(zfed_round_env_t *env)
{
    if (env->next_ticket == 0)
        env->next_ticket = 1;
    msgpack_sbuffer_init(&env->buffer);
}

void zfed_round_env_clear(zfed_round_env_t *env)
{
    zfed_msg_destroy(&env->spare);
    zfed_liars_destroy(&env->liars);
    msgpack_sbuffer_destroy(&env->buffer);
}
