/*  zfed_client - an asynchronous Majordomo client (MDP/0.1, DEALER).

    Sends requests without waiting and collects replies as they come, so a
    controller can have a whole round in flight.  Replies are validated;
    a malformed one is logged, counted and skipped.
*/
#ifndef ZFED_CLIENT_H_INCLUDED
#define ZFED_CLIENT_H_INCLUDED

#include "zfed/zfed_link.h"

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

//  Waits up to timeout_ms for a reply.  1: *service and *body (size) point
//  into self until the next call; 0: timed out; -1: interrupted or error.
int zfed_client_recv(zfed_client_t *self, int64_t timeout_ms, const char **service,
                     const uint8_t **body, size_t *size);

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
