/*  zfed_mdpw - one MDP/0.1 worker connection (private header).

    The part of a Majordomo worker that is the same whatever it serves: a
    DEALER to the broker, READY (with "credit=N" when N > 1), heartbeats
    when nothing else went out for an interval, a fresh socket after
    DISCONNECT or when the broker falls silent for liveness intervals,
    with a back-off that doubles up to a ceiling and returns to its first
    step when the broker first answers a READY (PROTOCOL.md 4).  Each
    socket is a generation: a reply finished for an older one is never
    sent on the new one, since that broker session never issued it.

    The owner polls zfed_mdpw_socket, receives and parses the messages
    (zfed_mdpw_heard records a sign of life), and calls zfed_mdpw_tick at
    zfed_mdpw_next_due.  Embeddable (a zfed_worker holds thousands); it
    borrows its config's strings, CURVE settings and monitor.
*/
#ifndef ZFED_MDPW_H_INCLUDED
#define ZFED_MDPW_H_INCLUDED

#include "zfed/zfed_mdp.h"
#include "transport/zfed_curve.h"
#include "transport/zfed_linkmon.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *endpoint;
    const char *service; //  registered in READY
    const char *name;    //  for logs
    unsigned credit;
    int heartbeat_ms;
    int liveness;
    int reconnect_ms;
    int reconnect_max_ms;
    int send_timeout_ms;        //  how long a send may wait for room (0: never)
    zfed_curve_client_t *curve; //  or NULL
    zfed_linkmon_t *linkmon;    //  attached to every new socket, or NULL
    //  Offer compact frames in READY ("compact=1", PROTOCOL.md 3.2); the
    //  owner answers each REQUEST in the form it came in.
    bool compact;
    //  Reconnections logged at debug level only (one of many connections
    //  to the same broker: the first speaks for all).
    bool quiet;
} zfed_mdpw_config_t;

typedef struct {
    zfed_mdpw_config_t config;
    zsock_t *socket; //  NULL while waiting to reconnect
    void *handle;
    uint64_t generation; //  +1 per socket
    int64_t last_heard_ms;
    int64_t last_sent_ms;
    int64_t reconnect_at_ms;
    int backoff_ms;
    bool heard_since_ready;
    //  The socket's last operation was a receive that found nothing (the
    //  owner sets it; every send here clears it): its commands are all
    //  processed, so its ZMQ_FD turns readable at the next one.
    bool drained;
} zfed_mdpw_t;

//  How long a reply may wait for room in a full send queue before its
//  connection starts over (the broker re-dispatches what it held).
#define ZFED_MDPW_SEND_TIMEOUT_MS 1000

//  A config with these settings, the send timeout above, no monitor, not
//  quiet, no compact offer; strings and curve are borrowed.
zfed_mdpw_config_t zfed_mdpw_config(const char *endpoint, const char *service, const char *name,
                                    unsigned credit, int heartbeat_ms, int liveness,
                                    int reconnect_ms, int reconnect_max_ms,
                                    zfed_curve_client_t *curve);

void zfed_mdpw_init(zfed_mdpw_t *self, const zfed_mdpw_config_t *config);

//  A new socket, connected, READY sent.  0, or -1 (no socket: tick()
//  tries again after the back-off).
int zfed_mdpw_open(zfed_mdpw_t *self);
//  Closes the socket, after a DISCONNECT when goodbye (lingering briefly
//  so it leaves).  Idempotent.
void zfed_mdpw_close(zfed_mdpw_t *self, bool goodbye);
//  Closes without a word and opens again after the current back-off,
//  which then doubles.  Logs why at warn level (debug when quiet, or when
//  the monitor has already said the broker refused our handshake).
void zfed_mdpw_reconnect_later(zfed_mdpw_t *self, const char *why);

//  A sign of life: a message from the broker that passed the envelope
//  rules.  The back-off starts over at the first one after a READY that
//  is not a DISCONNECT.
void zfed_mdpw_heard(zfed_mdpw_t *self, zfed_mdp_command_t command);

//  READY, HEARTBEAT or DISCONNECT (service and extension for READY).
void zfed_mdpw_send_command(zfed_mdpw_t *self, uint8_t command, const char *service,
                            const char *extension);
//  The envelope of a REPLY: "" MDPW01 0x03 address "", all with
//  ZMQ_SNDMORE; the caller sends the body frames after it (the last
//  without).  0, or -1 when the send timed out (nothing was queued).
int zfed_mdpw_reply_envelope(zfed_mdpw_t *self, const void *address, size_t address_size);
//  The same for a REQUEST that came compact (PROTOCOL.md 3.2): one frame,
//  "zfwc" 0x03 length address, with ZMQ_SNDMORE.  0, or -1 as above.
int zfed_mdpw_reply_compact(zfed_mdpw_t *self, const void *address, size_t address_size);

//  Opens the socket when its back-off is over; otherwise reconnects a
//  silent broker's connection, or sends a heartbeat when one is due.
//  Returns 1 when it opened a new socket (the poll set changed), else 0.
int zfed_mdpw_tick(zfed_mdpw_t *self, int64_t now_ms);
//  When tick() is next due for this connection.
int64_t zfed_mdpw_next_due(const zfed_mdpw_t *self);

#endif
