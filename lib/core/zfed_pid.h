/*  zfed_pid - this process's id, asked of the kernel once (private header).

    libzmq calls getpid() on every signal between its threads and every
    wait for one (it checks that it has not been forked): 9 calls a task
    in a worker on the strict path, 340 ns each on this project's VM.
    glibc asks the kernel every time.  zfed_pid asks once and is told
    again in a fork's child (pthread_atfork); a program that wants
    libzmq's calls answered from it defines getpid() as zfed_pid() (the
    executable's definition takes their place: zfed-worker does).
*/
#ifndef ZFED_PID_H_INCLUDED
#define ZFED_PID_H_INCLUDED

#include <sys/types.h>

//  The calling process's id: the kernel's answer at the first call, and
//  again at the first call in a child after fork().
pid_t zfed_pid(void);

#endif
