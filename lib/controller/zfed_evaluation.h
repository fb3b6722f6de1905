/*  zfed_evaluation - one round's global model scored on the job's
    eval_data by the service's evaluate hook, on a thread of its own while
    the next round trains, or on the caller's (private header).

    The thread reads the model file the round's pass wrote (durable
    before the thread starts) and the evaluation set, which nothing
    changes while the job runs; its figures go into an object of its own,
    which the caller reads only after zfed_evaluation_finish joined it.
    The same code scores on either thread: the service sets its own
    thread count (mlp: OpenBLAS on one thread, a setting of the whole
    process), so a figure does not depend on where it was computed.
*/
#ifndef ZFED_EVALUATION_H_INCLUDED
#define ZFED_EVALUATION_H_INCLUDED

#include "zfed/zfed_job.h"
#include "zfed/zfed_service.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _zfed_evaluation_t zfed_evaluation_t;

//  Scores the model file at path (round's aggregate), read with the
//  round's first task's params (msgpack, copied): on a new thread, or at
//  once on this one when on_thread is false.  NULL only when out of
//  memory or no thread can be started (failure says so).
zfed_evaluation_t *zfed_evaluation_start(const zfed_job_t *job, const zfed_service_t *service,
                                         const void *eval_data, uint32_t round, const char *path,
                                         const uint8_t *params, size_t params_size, bool on_thread,
                                         char *failure, size_t failure_size);

//  Waits for the evaluation to end (joins its thread) and destroys it:
//  0 with its figures (mlp: test_accuracy, test_loss, test_samples) and
//  eval_us added to record, or -1 with failure ("round R: cannot evaluate
//  its model: ...").
int zfed_evaluation_finish(zfed_evaluation_t **self_p, json_t *record, char *failure,
                           size_t failure_size);

#endif
