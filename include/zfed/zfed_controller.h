/*  zfed_controller - runs a job: rounds of tasks through a broker.

    Each round: send every task (carrying the previous round's aggregate as
    global state), collect results until all are in, or the quorum is in
    and the grace period has passed; resend a task whose answer is late
    (bounded by retries); aggregate; write the round record durably; go on.
    A result for a closed round is counted late and never aggregated; a
    second result for the same (round, task) is counted once.  A round that
    cannot reach its quorum by its deadline fails the job.

    With resume, the job continues from the last round record in its work
    folder, rebuilding the global state and the best round from the
    records, so the finished summary equals an undisturbed run's.
*/
#ifndef ZFED_CONTROLLER_H_INCLUDED
#define ZFED_CONTROLLER_H_INCLUDED

#include "zfed/zfed_error.h"
#include "zfed/zfed_job.h"

#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Outcomes; also the controller program's exit statuses.
#define ZFED_RUN_COMPLETED   0
#define ZFED_RUN_FAILED      1
#define ZFED_RUN_USAGE       2
#define ZFED_RUN_INTERRUPTED 130

typedef struct _zfed_controller_t zfed_controller_t;

typedef struct {
    //  Continue the job from the last round record in its work folder.
    bool resume;
    //  One line per round and the final table (NULL: none).
    FILE *progress;
    //  When a round hears nothing and the broker is not there, refuses
    //  our key or has no worker for the service, fail at once instead of
    //  waiting for the round's deadline.
    bool fail_fast;
    //  Score each round's model (a job with eval_data) before its record
    //  is written and the next round starts, instead of while the next
    //  round trains: the same figures, later.
    bool eval_inline;
    //  --sync round: each round's records durable before the next round's
    //  tasks go out.  By default they are made durable by a thread while
    //  the next round runs, and before its record is (schemas/WORKDIR.md 1).
    bool sync_rounds;
    //  --sync group: > 0, records handed to that thread in groups, one
    //  each sync_group_ms (schemas/WORKDIR.md 1.1: a crash re-runs the
    //  rounds of up to two groups instead of one round).  0: a round each.
    uint32_t sync_group_ms;
    //  --no-compact: requests stay MDP/0.1 even to a broker that takes
    //  compact client frames (PROTOCOL.md 3.3); by default they go compact
    //  when its mmi.status says "compact_clients": true.
    bool no_compact;
} zfed_controller_options_t;

//  job must have passed zfed_job_finish and outlive the controller.  NULL
//  with the error when the work folder cannot be set up: ZFED_E_EXISTS
//  when a new job's folder already holds one, ZFED_E_NO_JOB or
//  ZFED_E_CORRUPT on resume, ZFED_E_IO or ZFED_E_TRANSPORT otherwise.
zfed_controller_t *zfed_controller_new(const zfed_job_t *job,
                                       const zfed_controller_options_t *options,
                                       zfed_error_t *error);
void zfed_controller_destroy(zfed_controller_t **self_p);

//  Runs the remaining rounds.  Returns a ZFED_RUN_ value.
int zfed_controller_run(zfed_controller_t *self);

//  The job folder.
const char *zfed_controller_path(zfed_controller_t *self);

#ifdef __cplusplus
}
#endif

#endif
