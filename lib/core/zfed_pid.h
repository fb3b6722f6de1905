/*  zfed_pid - this process's id, asked of the kernel once (private header).

    libzmq calls getpid() on every signal between its threads and every
    wait for one (it checks that it has not been forked): 9 calls a task
    in a worker on the strict path, 340 ns each on this project's VM.
    glibc asks the kernel every time.  zfed_pid asks once and is told
    again in a fork's child (pthread_atfork).  A program that wants
    libzmq's calls answered from it says ZFED_PID_AS_GETPID at file scope
    in one of its own files: an executable's getpid() takes the place of
    libc's for the libraries it loads (zfed-worker and zfed-broker do).
    Not in the library: every program, test and binding would get it.
*/
#ifndef ZFED_PID_H_INCLUDED
#define ZFED_PID_H_INCLUDED

#include <sys/types.h>
#include <unistd.h> //  getpid, for ZFED_PID_AS_GETPID

//  The calling process's id: the kernel's answer at the first call, and
//  again at the first call in a child after fork().
pid_t zfed_pid(void);

#define ZFED_PID_AS_GETPID                                                                         \
    pid_t getpid(void)                                                                             \
    {                                                                                              \
        return zfed_pid();                                                                         \
    }

#endif
