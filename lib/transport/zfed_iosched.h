/*  zfed_iosched - how libzmq's I/O threads are scheduled (private header).

    A message sent on a ZeroMQ socket is written by the process's libzmq
    I/O thread, which the sending thread wakes through an eventfd when
    that thread sleeps.  A woken thread normally preempts the one that
    woke it when both share a CPU: a worker answering a burst of eight
    requests then switched to its I/O thread after every reply, and each
    reply went out on its own wake-up (an eventfd read, two polls, two
    epoll_ctl, a sendto: PERFORMANCE.md).  Run as SCHED_BATCH, the I/O
    thread still gets its fair share of the CPU but does not preempt the
    thread that wakes it: it runs when that thread waits, or on an idle
    CPU, and sends what has queued meanwhile in one go.
*/
#ifndef ZFED_IOSCHED_H_INCLUDED
#define ZFED_IOSCHED_H_INCLUDED

//  Asks that the process's libzmq I/O threads run as SCHED_BATCH once
//  started.  Call it before the first ZeroMQ socket exists: the threads
//  start with the first socket, and later calls change nothing.  0, or
//  -1 where there is no SCHED_BATCH or the process does not run under
//  the default policy, SCHED_OTHER (the threads then run as the process
//  does: a policy given with chrt is kept).
int zfed_iosched_batch(void);

#endif
