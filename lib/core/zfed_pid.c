/*  zfed_pid - this process's id, asked of the kernel once.  */
#define _GNU_SOURCE //  syscall
#include "core/zfed_pid.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

//  0: not asked yet in this process (at start, and in a fork's child).
static atomic_int s_pid;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_forget(void)
{
    atomic_store_explicit(&s_pid, 0, memory_order_relaxed);
}

static void s_watch_forks(void)
{
    pthread_atfork(NULL, NULL, s_forget);
}

pid_t zfed_pid(void)
{
    pid_t pid = atomic_load_explicit(&s_pid, memory_order_relaxed);
    if (pid == 0) {
        pthread_once(&s_once, s_watch_forks);
        //  The system call itself: getpid() may be zfed_pid().
        pid = (pid_t)syscall(SYS_getpid);
        atomic_store_explicit(&s_pid, pid, memory_order_relaxed);
    }
    return pid;
}
