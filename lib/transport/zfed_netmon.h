/*  zfed_netmon - transport events of a listening socket (private header).

    libzmq closes a connection on its own for some faults (a message over
    ZMQ_MAXMSGSIZE, a ZMTP protocol error, a failed CURVE handshake) and the
    application never sees a message.  The socket monitor does see the
    connection come and go; this module turns those events into log lines
    that name the remote address, and into counters.  libzmq does not say
    why a connection closed, so a close is reported as such.
*/
#ifndef ZFED_NETMON_H_INCLUDED
#define ZFED_NETMON_H_INCLUDED

#include <stdint.h>

typedef struct _zfed_netmon_t zfed_netmon_t;

typedef struct {
    uint64_t accepted;         //  connections accepted
    uint64_t closed;           //  connections closed (peer left, or libzmq dropped it)
    uint64_t handshake_failed; //  ZMTP handshakes that failed (protocol or no detail)
    uint64_t auth_failed;      //  handshakes refused by authentication (ZAP)
} zfed_netmon_stats_t;

//  Starts monitoring a libzmq socket handle.  NULL on failure.
zfed_netmon_t *zfed_netmon_new(void *socket);
void zfed_netmon_destroy(zfed_netmon_t **self_p);

//  The handle to poll for ZMQ_POLLIN; call zfed_netmon_handle when readable.
void *zfed_netmon_socket(zfed_netmon_t *self);
void zfed_netmon_handle(zfed_netmon_t *self);

void zfed_netmon_stats(zfed_netmon_t *self, zfed_netmon_stats_t *stats);

#endif
