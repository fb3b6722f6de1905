/*  zfed_broker_actor - a broker in a thread of its own, driven over a pipe.

    Private to libzfed (it speaks czmq, which the public zfed_broker.h
    keeps out of programs that link zfed).  Its callers are the in-process
    tests (tests/unit/test_broker.c and friends): a broker that a test can
    start on an inproc:// or ipc:// endpoint, ask for its counters while it
    runs and stop, without signals and without a second process.
*/
#ifndef ZFED_BROKER_ACTOR_H_INCLUDED
#define ZFED_BROKER_ACTOR_H_INCLUDED

#include "zfed/zfed_broker.h"

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  zfed_broker_run, but serving until "$TERM" arrives on pipe (signals are
//  left to the embedding program).  The pipe also answers "STATS" with the
//  counters as one zfed_broker_stats_t frame, and "BIND" endpoint with
//  "0" or "-1" and the endpoint bound.  Returns 0 on a clean stop, -1 on a
//  fatal socket error.
int zfed_broker_serve(zfed_broker_t *self, zsock_t *pipe);

//  zactor body: args is a const zfed_broker_config_t * (or NULL for the
//  defaults).  Signals 0 once the broker exists (1 if it could not be
//  made), then serves the commands of zfed_broker_serve until "$TERM".
void zfed_broker_actor(zsock_t *pipe, void *args);

#ifdef __cplusplus
}
#endif

#endif
