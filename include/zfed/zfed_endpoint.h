/*  zfed_endpoint - is this text an endpoint zfed's sockets can use?

    libzmq reports a malformed endpoint only when a socket binds or
    connects to it, and czmq asserts on some of those failures; the
    programs check every endpoint flag here first, at start, so a typo is
    one line naming the flag (exit 2), never a flood of connect errors.
    zfed speaks the three transports Majordomo peers use:

        tcp://HOST:PORT     HOST a name, an IPv4 address or [IPv6];
                            binding also takes * for HOST (every
                            interface) or PORT (a free port)
        ipc://PATH          a Unix socket path (at most 107 bytes)
        inproc://NAME       within one process
*/
#ifndef ZFED_ENDPOINT_H_INCLUDED
#define ZFED_ENDPOINT_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  What a valid endpoint looks like, for messages.
#define ZFED_ENDPOINT_FORMS "tcp://HOST:PORT, ipc://PATH or inproc://NAME"

typedef enum {
    ZFED_ENDPOINT_CONNECT, //  where a worker or controller connects
    ZFED_ENDPOINT_BIND     //  where the broker listens (wildcards allowed)
} zfed_endpoint_use_t;

//  0 when endpoint can be used that way; else -1 and a short reason
//  ("no transport", "port '70000' is not 1 to 65535") in reason.
int zfed_endpoint_check(const char *endpoint, zfed_endpoint_use_t use, char *reason,
                        size_t reason_size);

#ifdef __cplusplus
}
#endif

#endif
