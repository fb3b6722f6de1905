/*  zfed_gate - whether the broker takes new connections (private header).

    Every connection costs the broker a descriptor.  At the process's limit
    (RLIMIT_NOFILE) libzmq's accept fails with EMFILE and it does nothing
    about it: the listening socket stays readable, its I/O thread calls
    accept again at once, for ever (100 % of a core), the application only
    hears of it as ZMQ_EVENT_ACCEPT_FAILED on a monitor, and new peers time
    out.  The gate keeps the broker below the limit and out of that loop:

    - it counts connections (the monitor's ACCEPTED and DISCONNECTED), and
      at max_connections it closes: a socket filter (SO_ATTACH_FILTER, one
      BPF instruction that drops every packet) on each TCP listening
      socket leaves new connection attempts unanswered, so peers retry
      later (their kernel resends the SYN) at no cost to the broker; the
      peers already connected are served as before;
    - a connection accepted while closed (one that was already in the
      listen queue) is shut down at once, after checking that its
      descriptor is a socket of one of our listeners;
    - if accept fails anyway (EMFILE or ENFILE: descriptors used elsewhere)
      it closes too, and hands libzmq the descriptors it keeps in reserve,
      so the connections waiting in the listen queue are accepted and shut,
      the queue empties and libzmq's loop ends; the reserve is taken back
      once accepting has stopped failing;
    - it opens again once the connections are below 90 % of the limit.
    Each closing and each opening is logged once.

    The listening sockets are libzmq's: the gate finds their descriptors
    after a bind by their local port (SO_ACCEPTCONN, getsockname).
*/
#ifndef ZFED_GATE_H_INCLUDED
#define ZFED_GATE_H_INCLUDED

#include "zfed/zfed_broker.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Descriptors the broker needs besides its connections (libzmq's
//  mailboxes and epoll, listeners, the monitor, stdio, the key folder
//  scans, the gate's reserve): the default limit leaves them free.
#define ZFED_GATE_HEADROOM ZFED_BROKER_FD_HEADROOM

typedef struct _zfed_gate_t zfed_gate_t;

typedef struct {
    uint64_t open;    //  connections open now
    uint64_t refused; //  connections shut at accept because the gate was closed
    uint64_t closes;  //  times the gate closed
    uint64_t limit;   //  max_connections in force
    bool closed;
} zfed_gate_stats_t;

//  max_connections 0: RLIMIT_NOFILE's soft limit minus ZFED_GATE_HEADROOM.
//  NULL when out of memory.
zfed_gate_t *zfed_gate_new(size_t max_connections);
void zfed_gate_destroy(zfed_gate_t **self_p);

//  After a bind: finds the listening socket of a tcp:// endpoint (as
//  bound, with its port).  Other transports are not gated.  0, or -1 when
//  a tcp listener could not be found (logged; that endpoint is ungated).
int zfed_gate_listen(zfed_gate_t *self, const char *endpoint);

//  Monitor events: a connection accepted (its descriptor), one closed, an
//  accept that failed (its errno).
void zfed_gate_accepted(zfed_gate_t *self, int fd);
void zfed_gate_closed(zfed_gate_t *self, int fd);
void zfed_gate_accept_failed(zfed_gate_t *self, int error);

//  Periodic: takes the reserve back, opens again below the low mark.
void zfed_gate_tick(zfed_gate_t *self);

void zfed_gate_stats(const zfed_gate_t *self, zfed_gate_stats_t *stats);

//  True when fd is a TCP socket accepted by one of the gate's listeners
//  (its local port is theirs).  The broker checks this before it shuts a
//  connection down by descriptor.
bool zfed_gate_owns(const zfed_gate_t *self, int fd);

#endif
