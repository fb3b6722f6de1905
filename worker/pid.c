/*  getpid() in zfed-worker: zfed_pid's answer (core/zfed_pid.h), so that
    libzmq's check for a fork on every signal between its threads costs no
    system call.  */
#include "core/zfed_pid.h"

#include <unistd.h>

pid_t getpid(void)
{
    return zfed_pid();
}
