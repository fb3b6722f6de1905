/*  zfed_iosched - how libzmq's I/O threads are scheduled.  */
#define _GNU_SOURCE //  SCHED_BATCH
#include "transport/zfed_iosched.h"

#include <czmq.h>
#include <sched.h>

int zfed_iosched_batch(void)
{
#ifdef SCHED_BATCH
    //  On the context, not through zsys_set_thread_sched_policy: czmq
    //  asserts there when a socket already exists, where libzmq only
    //  keeps the setting for threads it has yet to start.
    return zmq_ctx_set(zsys_init(), ZMQ_THREAD_SCHED_POLICY, SCHED_BATCH);
#else
    return -1;
#endif
}
