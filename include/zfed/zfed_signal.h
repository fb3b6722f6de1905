/*  zfed_signal - SIGINT and SIGTERM that wake a poll at once.

    czmq's own handler only sets zsys_interrupted; a loop blocked in
    zmq_poll notices at its next wake-up, and when the signal lands on one of
    libzmq's threads the poll is not even interrupted.  This handler also
    writes a byte to a pipe that every zfed loop polls, so a program stops
    within milliseconds, whichever thread took the signal.
*/
#ifndef ZFED_SIGNAL_H_INCLUDED
#define ZFED_SIGNAL_H_INCLUDED

#ifdef __cplusplus
extern "C" {
#endif

//  Installs the handler (after czmq's initialisation, so it stays).
//  Returns 0, or -1 if the pipe cannot be made (czmq's handler remains).
int zfed_signal_install(void);

//  File descriptor that becomes readable on SIGINT/SIGTERM, or -1 when the
//  handler is not installed.  Poll it; never read it.
int zfed_signal_fd(void);

#ifdef __cplusplus
}
#endif

#endif
