/*  zfed_round - one round of a job: send its tasks, collect, resend, close
    (private header).

    A round sends every task (carrying the previous round's aggregate as
    global state), collects results until all are in, or the quorum is in
    and the grace period has passed, resends a task whose answer is late
    (bounded by retries), aggregates, and hands its record to zfed_records,
    which writes it durably before the round counts.  A result for a
    closed round is counted late and never aggregated; a second result for
    the same (round, task) is counted once.  A round that cannot reach its
    quorum by its deadline fails the job.
*/
#ifndef ZFED_ROUND_H_INCLUDED
#define ZFED_ROUND_H_INCLUDED

#include "controller/zfed_models.h"
#include "controller/zfed_progress.h"
#include "controller/zfed_publish.h"
#include "controller/zfed_records.h"
#include "controller/zfed_watch.h"
#include "zfed/zfed_batch.h"
#include "zfed/zfed_blob_server.h"
#include "zfed/zfed_client.h"
#include "zfed/zfed_fetcher.h"
#include "zfed/zfed_job.h"
#include "zfed/zfed_service.h"

#include <msgpack.h>

//  Longest failure text.
#define ZFED_ROUND_FAILURE_MAX 1024

//  Chunks of each result the controller fetches ahead while it aggregates
//  (the fetcher's window): the pass waits for the slowest result's chunk
//  i, so a deeper window keeps every transfer busy meanwhile.  At 4 MiB
//  chunks, 8 is 32 MiB per result.
#define ZFED_ROUND_FETCH_WINDOW 8

//  Model services: what every round of the job shares (MODELS.md 9).
typedef struct {
    zfed_models_t *models;    //  the work folder's model files
    zfed_publish_t *publish;  //  the global as tasks carry it
    zfed_blob_server_t *blob; //  serves globals over 4 MiB; NULL when none is
    zfed_fetcher_t *fetcher;  //  reads results by reference, releases them
    //  The job's eval_data as the service's open_data loaded it (NULL:
    //  no evaluation): each round's global model is scored on it.
    void *eval_data;
    //  --eval-inline: each round's model is scored before its record is
    //  written and the next round starts; otherwise while the next round
    //  trains (JOB.md), the record written pending and finished by
    //  zfed_round_settle.
    bool eval_inline;
    //  The pending round's scoring (NULL: none, or a resumed job's pending
    //  round, scored by zfed_round_settle itself) and its progress line.
    struct _zfed_evaluation_t *evaluation;
    json_t *eval_aggregate;
    zfed_progress_round_t eval_view;
    int64_t eval_duration_us;
} zfed_model_env_t;

//  What every round of a job runs with.
typedef struct {
    const zfed_job_t *job;
    const zfed_service_t *service;
    zfed_client_t *client;
    zfed_records_t *records;
    zfed_progress_t *progress;
    zfed_watch_t *watch;     //  NULL: no early diagnosis
    bool fail_fast;          //  a watch finding fails the round at once
    zfed_model_env_t *model; //  NULL for a value service
    //  Scratch reused by every round: the request being sent (a batch's
    //  tasks written into it in place), and views of a batch reply's items.
    msgpack_sbuffer buffer;
    zfed_view_t views[ZFED_BATCH_MAX];
    //  The last reply let go, whose block the next one is decoded into
    //  (zfed_msg_decode_into).
    zfed_msg_t *spare;
    //  The next request's ticket (PROTOCOL.md 3.1): every request of the
    //  job has its own, so a reply is matched to the request it answers.
    uint64_t next_ticket;
    //  Requests queued with a ticket whose reply has not come, of every
    //  round: the workers holding them are busy (replicas, zfed_round.c
    //  s_replace).
    uint64_t unanswered;
    //  The broker does not stamp (a plain Majordomo broker, found out at
    //  start: PROTOCOL.md 3.1): requests go without tickets and a reply
    //  is matched by the (round, task, attempt) its body names.
    bool plain_broker;
    //  --exclude-liars: identities caught in a minority (zfed_vote).
    struct _zfed_liars_t *liars;
    //  Why the last round failed.
    char failure[ZFED_ROUND_FAILURE_MAX];
} zfed_round_env_t;

//  Sets up the scratch buffers (the other fields are the caller's).
void zfed_round_env_init(zfed_round_env_t *env);
void zfed_round_env_clear(zfed_round_env_t *env);

//  The pending round's evaluation (zfed_records_pending), if any: waited
//  for (or, after a resume, run), its figures written into its record,
//  the best round and best_model.safetensors brought up to date.  A model
//  round calls it before writing its own record; the job before it ends.
//  0, or -1 (env->failure says why).
int zfed_round_settle(zfed_round_env_t *env);

//  Runs round number.  0: closed and recorded; -1: failed (env->failure
//  says why); 1: interrupted.
int zfed_round_run(zfed_round_env_t *env, uint32_t number);

#endif
