/*  zfed_round_private - what a round keeps, shared by zfed_round.c (every
    round) and zfed_round_model.c (the parts only model services have)
    (private header).
*/
#ifndef ZFED_ROUND_PRIVATE_H_INCLUDED
#define ZFED_ROUND_PRIVATE_H_INCLUDED

#include "controller/zfed_round.h"
#include "wire/zfed_stamp.h"
#include "zfed/zfed_sha256.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_service.h"

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

//  Longest reason text carried around.
#define REASON_MAX 512
//  "task/attempt" in decimal, and its terminator.
#define OUTSTANDING_KEY_MAX 24
//  Longest part of a failure text that a reason may take.
#define FAILURE_REASON_MAX (ZFED_ROUND_FAILURE_MAX - 64)
//  Most error entries kept in one round record (all are counted).
#define ROUND_ERRORS_KEPT 100
//  Warnings about bad replies per round, before they are only counted.
#define ROUND_WARNINGS_MAX 10
//  Model rounds: the longest wait while a pass runs (it is woken by
//  chunks), and replies read per wait.
#define PASS_WAIT_MS 1000
//  Replicas sent to replace an answer that was no say (a result that was
//  no vote, an error not spending a replica), per replica.
#define REPLACEMENTS_PER_REPLICA 32
#define REPLIES_PER_WAIT         64

typedef enum { TASK_PENDING = 0, TASK_DONE, TASK_FAILED } task_state_t;

//  One replica's result (zfed_vote): who, what, and the SHA-256 of its
//  outputs as packed, by which votes are compared.
typedef struct {
    char worker_id[ZFED_STAMP_IDENTITY_MAX + 1];
    zfed_msg_t *message; //  NULL once it became the task's result
    uint8_t digest[ZFED_SHA256_SIZE];
} vote_t;

typedef struct {
    task_state_t state;
    uint32_t attempts; //  times sent
    uint8_t *params;   //  msgpack map; may be the round's shared copy
    size_t params_size;
    bool params_owned;
    int64_t sent_us; //  latency is measured in microseconds
    bool batched;    //  last sent inside a zfed.batch
    //  The accepted result, kept as decoded: its record entry is built when
    //  the round closes, after the round's time is taken.
    zfed_msg_t *result;
    char worker_id[ZFED_STAMP_IDENTITY_MAX + 1]; //  who the broker says answered it
    //  A big round's result is its line of the results file instead
    //  (zfed_results), rendered when accepted, at line_at in the round's
    //  lines; the decoded reply is freed at once (line_size > 0).
    size_t line_at;
    uint32_t line_size;
    int64_t latency_us;
    zfed_sample_t sample; //  value services
    //  --replicas K > 1: the votes so far (K at most), and the value decided.
    vote_t *votes;
    uint32_t vote_count;
    uint32_t spent; //  replicas that ended in an error that is not retried
    //  Who spent them: one say per identity, a vote or such an error
    //  (job->replicas entries, allocated at the first).
    char (*spent_by)[ZFED_STAMP_IDENTITY_MAX + 1];
    uint32_t replaced;  //  replicas sent at once for an answer that was no say
    uint32_t paced;     //  such replicas another worker's answer released
    uint32_t in_flight; //  requests of the round carrying it, not answered
    uint32_t deferred;  //  replacements waiting in round->deferred
    //  Its replacements were spent when a resend on silence came due, and
    //  no new identity has had its say on it since.
    bool starving;
    uint8_t decided[ZFED_SHA256_SIZE];
} task_t;

//  One task as a request carried it: a reply to that request may answer
//  that task (its attempt) and no other.
typedef struct {
    uint32_t task;
    uint32_t attempt;
} carried_t;

//  A request of the round, by its ticket (first_ticket + its position):
//  the tasks it carried (count of them from carried[first]), whether as a
//  batch, and whether its reply has come.
typedef struct {
    size_t first;
    uint32_t count;
    bool batch;
    bool answered;
} sent_t;

//  Replicas: a replacement replica waiting for a worker other than the
//  one whose answer it replaces to be free (zfed_round.c s_replace).
typedef struct {
    uint32_t task;
    char by[ZFED_STAMP_IDENTITY_MAX + 1];
} deferral_t;

//  A resend deadline; stale once the task is answered or sent again
//  (its send count no longer equals sends).
typedef struct {
    uint32_t task;
    uint32_t sends;
    int64_t due_ms;
} resend_t;

typedef struct {
    uint32_t number;
    //  What every task of the round begins with (zfed_msg_task_prefix).
    uint8_t task_prefix[ZFED_MSG_TASK_PREFIX_MAX];
    size_t task_prefix_size;
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
    //  shared_params unpacked once, for every result that reads them.
    msgpack_unpacked shared_unpacked;
    bool shared_unpacked_ok;
    //  The round's requests by ticket, and the tasks they carried.
    uint64_t first_ticket;
    sent_t *sent;
    size_t sent_count;
    size_t sent_capacity;
    size_t replies; //  requests of the round answered
    carried_t *carried;
    size_t carried_count;
    size_t carried_capacity;
    //  Plain broker only: "task/attempt" -> the position in sent + 1 of
    //  the request that carried it (zfed_round_env_t.plain_broker).
    zhashx_t *outstanding;
    //  The identity the broker vouched for in the reply being handled.
    const char *identity;
    //  When the reply being handled was taken (0: none is): a batch's
    //  results share one clock read.
    int64_t reply_us;
    //  Replicas (zfed_vote): disagreements recorded, identities excluded
    //  in this round, results refused because their worker was excluded.
    json_t *disagreements;
    json_t *excluded;
    uint64_t excluded_results;
    deferral_t *deferred;
    size_t deferred_count;
    size_t deferred_capacity;
    //  More tasks than a record holds inline (not a model round): results
    //  are rendered into lines as they are accepted.
    bool render;
    msgpack_sbuffer lines;
    //  Model services: the results' models and the aggregation pass.
    struct _zfed_mround_t *model;
} round_t;

//  round->identity of a reply no broker vouched for (a plain broker):
//  logs name it so, records carry a null worker_id.
#define ROUND_UNVOUCHED "(not vouched: plain broker)"

//  The identity a record keeps for the reply being handled: NULL when
//  none was vouched for.
const char *zfed_round_vouched(const round_t *round);

//  Round helpers zfed_round_model.c uses too.
void zfed_round_warn(round_t *round, const char *format, ...) __attribute__((format(printf, 2, 3)));
int zfed_round_send_task(zfed_round_env_t *self, round_t *round, uint32_t index, int64_t now);
//  A task's params as an object, as its service sees them (after
//  zfed_job_service_params): the round's shared copy, unpacked once, or
//  the task's own unpacked into own (which the caller then destroys:
//  *own_used says so).  NULL when they cannot be unpacked.
const msgpack_object *zfed_round_task_params(const zfed_round_env_t *self, const round_t *round,
                                             const task_t *task, msgpack_unpacked *own,
                                             bool *own_used);
//  Task index's result is accepted: *message_p becomes the task's.
void zfed_round_accept(round_t *round, uint32_t index, zfed_msg_t **message_p);

// --------------------------------------------------------------------------
//  Model services (zfed_round_model.c)

typedef struct _zfed_mround_t zfed_mround_t;

//  What zfed_mround_step says.
typedef enum {
    ZFED_MROUND_PASSING = 0, //  the pass goes on: keep polling
    ZFED_MROUND_DONE,        //  the new global is written: record the round
    ZFED_MROUND_COLLECT,     //  the pass lost a result below the quorum: collect again
    ZFED_MROUND_FAILED       //  the round cannot aggregate (self->failure says why)
} zfed_mround_status_t;

//  A model round's state: publishes the global of the round if it is new.
//  0, or -1 with self->failure.
int zfed_mround_begin(zfed_round_env_t *self, round_t *round);
//  Releases every result still held by reference, frees the rest.
void zfed_mround_end(zfed_round_env_t *self, round_t *round);

//  The global value of the round's tasks: the published descriptor, and
//  the round whose aggregate the model is.
zfed_global_t zfed_mround_global(zfed_round_env_t *self);

//  Sends a task's body (already encoded in body) to service (the task's:
//  SERVICE@SITE in a job with sites) with the global's data frame when
//  the global is inline, under ticket.  0 or -1 as zfed_client_send.
int zfed_mround_send(zfed_round_env_t *self, const char *service, const msgpack_sbuffer *body,
                     uint64_t ticket);

//  A result of this round for a task not done: accepted (*message_p is
//  taken) or refused and counted (invalid), the reason kept for the
//  record.  data: the reply's data frame, or NULL.
void zfed_mround_result(zfed_round_env_t *self, round_t *round, zfed_msg_t **message_p,
                        const uint8_t *data, size_t data_size, int64_t now);
//  A result that will not be used (late, duplicate, arriving while the
//  round aggregates): its model is released at once when held by
//  reference.
void zfed_mround_unused(zfed_round_env_t *self, const zfed_msg_t *message);

//  Starts the aggregation pass over the accepted results (task order).
//  0, or -1 with self->failure.
int zfed_mround_close(zfed_round_env_t *self, round_t *round);
bool zfed_mround_passing(const round_t *round);
//  Drives the pass (after zfed_mround_wait): see zfed_mround_status_t.
zfed_mround_status_t zfed_mround_step(zfed_round_env_t *self, round_t *round, int64_t now);

//  Waits up to wait_ms for the client, the fetcher and the blob server,
//  serving the blob server and handing fetched chunks to the pass.
//  1 when the client has replies to read, 0 otherwise.
int zfed_mround_wait(zfed_round_env_t *self, round_t *round, int64_t wait_ms);

//  The record's parts of a model round: each accepted result's fields
//  (added to entry), the aggregate ({"sha256", "file", "size",
//  "tensors"}), the refusals, and the pass's figures.
void zfed_mround_describe(const zfed_round_env_t *self, const round_t *round, uint32_t index,
                          json_t *entry);
json_t *zfed_mround_aggregate_json(const zfed_round_env_t *self, const round_t *round);
json_t *zfed_mround_refused_json(const round_t *round);
json_t *zfed_mround_pass_json(const round_t *round);
//  The optimiser state written ({"m": {"sha256", "file"}, "v": ...}), or
//  json null.
json_t *zfed_mround_state_json(const round_t *round);
//  With the job's eval_data, before the record is written: inline, the
//  round's new global scored by the service's evaluate hook, its figures
//  (mlp: test_accuracy, test_loss, test_samples) and eval_us added to
//  record; pipelined, "eval": "pending" added (zfed_records).  0, or -1
//  with self->failure.
int zfed_mround_evaluate(zfed_round_env_t *self, const round_t *round, json_t *record);
//  Once the record is durable and the round advanced: a pending round's
//  scoring starts on a thread of its own (zfed_round_settle ends it and
//  shows the round's line); any other round's line is shown now.  0, or
//  -1 with self->failure.
int zfed_mround_evaluate_start(zfed_round_env_t *self, const round_t *round,
                               const json_t *aggregate, const zfed_progress_round_t *view,
                               int64_t duration_us, const json_t *record);
//  A model round's progress line: its aggregate and figures.
void zfed_mround_report(zfed_round_env_t *self, const zfed_progress_round_t *view,
                        const json_t *aggregate, const json_t *record, int64_t duration_us);
//  The aggregate becomes the current global once the record is durable
//  (and the keep policy goes through the model files).  0, or -1.
int zfed_mround_advance(zfed_round_env_t *self, round_t *round, zfed_error_t *error);

#endif
