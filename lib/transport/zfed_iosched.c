/*  zfed_iosched - how libzmq's I/O threads are scheduled.  */
#define _GNU_SOURCE //  SCHED_BATCH
#include "transport/zfed_iosched.h"

#include <czmq.h>
#include <sched.h>

int zfed_iosched_batch(void)
{
#ifdef SCHED_BATCH
    //  Only from the default policy.  libzmq applies the setting in each
    //  new I/O thread and aborts the process when that fails: a thread of
    //  a process started under SCHED_FIFO (chrt -f) keeps a priority that
    //  SCHED_BATCH refuses, and an unprivileged one under SCHED_IDLE may
    //  not leave it.  Going from SCHED_OTHER to SCHED_BATCH needs no
    //  privilege, and a policy someone chose is theirs to keep.
    if (sched_getscheduler(0) != SCHED_OTHER)
        return -1;
    //  On the context, not through zsys_set_thread_sched_policy: czmq
    //  asserts there when a socket already exists, where libzmq only
    //  keeps the setting for threads it has yet to start.
    return zmq_ctx_set(zsys_init(), ZMQ_THREAD_SCHED_POLICY, SCHED_BATCH);
#else
    return -1;
#endif
}
