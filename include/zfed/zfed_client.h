/*  zfed_client - an asynchronous Majordomo client (MDP/0.1, DEALER).

    Sends requests without waiting and collects replies as they come, so a
    controller can have a whole round in flight.  Replies are validated;
    a malformed one is logged, counted and skipped.
*/
#ifndef ZFED_CLIENT_H_INCLUDED
#define ZFED_CLIENT_H_INCLUDED

#include "zfed/zfed_link.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _zfed_client_t zfed_client_t;

//  curve_cert and server_key may be NULL for plaintext.  NULL on failure.
zfed_client_t *zfed_client_new(const char *endpoint, const char *curve_cert,
                               const char *server_key);
void zfed_client_destroy(zfed_client_t **self_p);

//  Queues one request.  0, or -1 if it could not be queued (no connection
//  to the broker: its handshake refused us).
int zfed_client_send(zfed_client_t *self, const char *service, const void *body, size_t size);

//  As zfed_client_send, with a ticket (PROTOCOL.md 3.1): a zfed broker
//  stamps the reply with it and with the identity of who answered.
int zfed_client_send_ticket(zfed_client_t *self, const char *service, uint64_t ticket,
                            const void *body, size_t size);

//  Sends every later request as a compact client frame and its body
//  (PROTOCOL.md 3.3) when compact is true, as MDP/0.1 when false (the
//  default).  Only for a broker whose mmi.status says "compact_clients":
//  true.  Replies are read in either form: a broker answers each request
//  in the form it came.
void zfed_client_set_compact(zfed_client_t *self, bool compact);

//  The stamp of the last reply received: true with *ticket and *identity
//  (valid until the next receive) when it had one.  A reply's first body
//  frame is read as a stamp only once this client has sent a ticket
//  (zfed_client_send_ticket, zfed_client_send_data_ticket): before that
//  every reply is plain.  A stamped reply with no body frame after its
//  stamp is received with an empty body (size 0).
bool zfed_client_stamp(zfed_client_t *self, uint64_t *ticket, const char **identity);

//  Waits up to timeout_ms for a reply.  1: *service and *body (size) point
//  into self until the next call; 0: timed out; -1: interrupted or error.
//  A reply of more than one body frame is malformed here (dropped and
//  counted), unless data frames are allowed (below).
int zfed_client_recv(zfed_client_t *self, int64_t timeout_ms, const char **service,
                     const uint8_t **body, size_t *size);

// --------------------------------------------------------------------------
//  Data frames (schemas/MODELS.md 5): a model task or result whose model
//  travels inline is its body frame and one data frame.

//  Called once when libzmq (or the caller) is done with a data frame's
//  bytes; may run on libzmq's I/O thread.
typedef void(zfed_client_free_fn)(void *data, void *hint);

//  Queues a request of two body frames: body, then data (data_size
//  bytes), which is sent without a copy: free_fn (may be NULL) gets data
//  and hint once it has gone (also when it could not be queued).  0 or -1
//  as zfed_client_send.
int zfed_client_send_data(zfed_client_t *self, const char *service, const void *body, size_t size,
                          const void *data, size_t data_size, zfed_client_free_fn *free_fn,
                          void *hint);

//  As zfed_client_send_data, with a ticket when ticket is not NULL.
int zfed_client_send_data_ticket(zfed_client_t *self, const char *service, const uint64_t *ticket,
                                 const void *body, size_t size, const void *data, size_t data_size,
                                 zfed_client_free_fn *free_fn, void *hint);

//  Lets replies carry one data frame after the body (model services); off
//  by default.
void zfed_client_allow_data(zfed_client_t *self, bool allow);

//  As zfed_client_recv, and *data (data_size bytes) is the reply's data
//  frame, or NULL when it has none.  Valid until the next call unless
//  taken.
int zfed_client_recv_data(zfed_client_t *self, int64_t timeout_ms, const char **service,
                          const uint8_t **body, size_t *size, const uint8_t **data,
                          size_t *data_size);

//  Takes the data frame of the last reply, without a copy: its bytes stay
//  at *data until the caller calls (*free_fn)(*data, *hint).  0, or -1
//  when the last reply has none (or it was taken already).
int zfed_client_take_data(zfed_client_t *self, void **data, size_t *size,
                          zfed_client_free_fn **free_fn, void **hint);

//  The libzmq socket, to poll beside others (ZMQ_POLLIN: call
//  zfed_client_recv with timeout 0).  Owned by self.
void *zfed_client_socket(zfed_client_t *self);

//  Replies dropped as malformed so far.
uint64_t zfed_client_malformed(zfed_client_t *self);

//  How the connection to the broker stands (the socket monitor's view,
//  read when the client sends or waits): whether a handshake has
//  succeeded, and what a refusal means.  A refusal is also logged, once
//  and then at most every minute.
const zfed_link_status_t *zfed_client_link(zfed_client_t *self);

#ifdef __cplusplus
}
#endif

#endif
