/*  zfed_linkmon - what a connecting socket's monitor says about its broker
    (private header).

    A worker or controller whose handshake the broker refuses never sees a
    message: libzmq drops the connection and reconnects, and the program
    only notices silence.  The socket monitor does see the handshake fail,
    and says how: refused by authentication (the broker's ZAP handler does
    not know our key), or failed (a wrong server key, or one side speaking
    CURVE and the other not).  This module turns those events into a
    state the program can ask about and into a log line that says what to
    check, the first time at once and then at most every
    ZFED_LINKMON_WARN_PERIOD_MS with a count, so a misconfigured worker
    explains itself without flooding its log.
*/
#ifndef ZFED_LINKMON_H_INCLUDED
#define ZFED_LINKMON_H_INCLUDED

#include "zfed/zfed_link.h"

#include <stdbool.h>
#include <stdint.h>

#define ZFED_LINKMON_WARN_PERIOD_MS 60000

typedef struct _zfed_linkmon_t zfed_linkmon_t;

//  endpoint and role_dir (the broker option that should hold our key:
//  "--controllers-dir" or "--workers-dir") are for messages; curve says
//  whether we speak CURVE.  NULL on failure.
zfed_linkmon_t *zfed_linkmon_new(const char *endpoint, const char *role_dir, bool curve);
void zfed_linkmon_destroy(zfed_linkmon_t **self_p);

//  Starts watching a libzmq socket handle (before it connects); a socket
//  watched before is detached, its state kept.  0 or -1.
int zfed_linkmon_attach(zfed_linkmon_t *self, void *socket);

//  Stops watching: call it before the watched socket closes (and destroy
//  does it), so that no event is sent while it closes.
void zfed_linkmon_detach(zfed_linkmon_t *self);

//  The handle to poll for ZMQ_POLLIN (NULL before attach), and what to
//  call when it is readable: reads every pending event.
void *zfed_linkmon_socket(zfed_linkmon_t *self);
void zfed_linkmon_handle(zfed_linkmon_t *self);

const zfed_link_status_t *zfed_linkmon_link(zfed_linkmon_t *self);

#endif
