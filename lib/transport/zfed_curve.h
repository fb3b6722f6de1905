/*  zfed_curve - CurveZMQ settings for client-side sockets (private header).

    Workers and controllers present their own certificate and pin the
    broker's public key.  The key may be given as 40 Z85 characters or as a
    certificate file (its public part is used).
*/
#ifndef ZFED_CURVE_H_INCLUDED
#define ZFED_CURVE_H_INCLUDED

#include <czmq.h>

typedef struct _zfed_curve_client_t zfed_curve_client_t;

//  NULL (reason logged) if a file cannot be read or the key is not valid.
zfed_curve_client_t *zfed_curve_client_new(const char *cert_file, const char *server_key);
void zfed_curve_client_destroy(zfed_curve_client_t **self_p);

//  Applies our keys and the server key; call before connect.  0 or -1.
int zfed_curve_client_apply(zfed_curve_client_t *self, zsock_t *socket);

#endif
