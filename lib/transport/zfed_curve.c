/*  zfed_curve - CurveZMQ settings for client-side sockets.  */
#include "transport/zfed_curve.h"
#include "zfed/zfed_log.h"

#include <string.h>

//  A Z85-encoded CURVE key is 40 characters.
#define Z85_KEY_LENGTH 40

struct _zfed_curve_client_t {
    zcert_t *cert;
    char server_key[Z85_KEY_LENGTH + 1];
};

zfed_curve_client_t *zfed_curve_client_new(const char *cert_file, const char *server_key)
{
    if (!cert_file || !server_key) {
        zfed_error("CURVE needs both a certificate and the broker's public key");
        return NULL;
    }
    zfed_curve_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cert = zcert_load(cert_file);
    if (!self->cert) {
        zfed_error("cannot load certificate %s", cert_file);
        goto err;
    }
    if (strlen(zcert_secret_txt(self->cert)) != Z85_KEY_LENGTH ||
        strcmp(zcert_secret_txt(self->cert), "0000000000000000000000000000000000000000") == 0) {
        zfed_error("certificate %s has no secret key (give the _secret file)", cert_file);
        goto err;
    }
    if (strlen(server_key) == Z85_KEY_LENGTH && zfile_exists(server_key) == false) {
        uint8_t decoded[32];
        if (!zmq_z85_decode(decoded, server_key)) {
            zfed_error("server key is not a valid Z85 key");
            goto err;
        }
        snprintf(self->server_key, sizeof self->server_key, "%s", server_key);
    } else {
        zcert_t *server = zcert_load(server_key);
        if (!server) {
            zfed_error("cannot load the broker's certificate %s", server_key);
            goto err;
        }
        snprintf(self->server_key, sizeof self->server_key, "%s", zcert_public_txt(server));
        zcert_destroy(&server);
    }
    return self;
err:
    zfed_curve_client_destroy(&self);
    return NULL;
}

void zfed_curve_client_destroy(zfed_curve_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zcert_destroy(&(*self_p)->cert);
    free(*self_p);
    *self_p = NULL;
}

int zfed_curve_client_apply(zfed_curve_client_t *self, zsock_t *socket)
{
    zcert_apply(self->cert, socket);
    zsock_set_curve_serverkey(socket, self->server_key);
    return zsock_mechanism(socket) == ZMQ_CURVE ? 0 : -1;
}
