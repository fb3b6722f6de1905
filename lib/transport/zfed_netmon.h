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
    uint64_t accept_failed;    //  accepts that failed (EMFILE at the descriptor limit, ...)
} zfed_netmon_stats_t;

//  Starts monitoring a libzmq socket handle.  NULL on failure.  Destroy
//  it before the socket closes (destroy stops the monitor on it).
zfed_netmon_t *zfed_netmon_new(void *socket);
void zfed_netmon_destroy(zfed_netmon_t **self_p);

//  What an event says about a connection, for callers that track them.
typedef enum {
    ZFED_NETMON_OTHER,        //  handshake failures and the like: logged, counted
    ZFED_NETMON_ACCEPTED,     //  fd is the new connection's descriptor
    ZFED_NETMON_CLOSED,       //  fd is the closed connection's descriptor
    ZFED_NETMON_ACCEPT_FAILED //  error is accept's errno (EMFILE, ENFILE, ...)
} zfed_netmon_kind_t;

typedef struct {
    zfed_netmon_kind_t kind;
    int fd;
    int error;
} zfed_netmon_event_t;

//  The handle to poll for ZMQ_POLLIN; call zfed_netmon_handle when readable
//  (and until it returns -1: events queue without limit, none is lost).
//  0 with the event read (event may be NULL), -1 when none was waiting.
void *zfed_netmon_socket(zfed_netmon_t *self);
int zfed_netmon_handle(zfed_netmon_t *self, zfed_netmon_event_t *event);

//  "ip:port" of a connection still open, or NULL.
const char *zfed_netmon_address(zfed_netmon_t *self, int fd);

void zfed_netmon_stats(zfed_netmon_t *self, zfed_netmon_stats_t *stats);

#endif
