/*  zfed_signal - a self-pipe for SIGINT and SIGTERM.  */
#define _GNU_SOURCE //  pipe2
#include "zfed/zfed_signal.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static int s_pipe[2] = {-1, -1};

static void s_handler(int signal_value)
{
    (void)signal_value;
    int saved = errno;
    zsys_interrupted = 1;
    //  Non-blocking: if the pipe is full, a byte is already waiting.
    if (write(s_pipe[1], "!", 1) < 0) {
    }
    errno = saved;
}

int zfed_signal_install(void)
{
    if (s_pipe[0] >= 0)
        return 0;
    if (pipe2(s_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        s_pipe[0] = s_pipe[1] = -1;
        return -1;
    }
    //  czmq installs its handler in zsys_init; ours must come after.
    zsys_init();
    zsys_handler_set(s_handler);
    return 0;
}

int zfed_signal_fd(void)
{
    return s_pipe[0];
}
