/*  zfed_auth - CurveZMQ authentication and role authorization for the broker
    (private header).

    A ZAP handler (RFC 27) runs in its own thread and answers the handshake
    of every CURVE connection: the client's public key is looked up in two
    directories of certificates, one per role.  A key in neither is refused
    (logged with the peer's address, counted); an accepted connection gets
    a User-Id naming its roles, which the broker reads from each message to
    decide what the peer may do:

        worker      register services, heartbeat, return results
        controller  submit requests

    Directories are re-read when they change (a certificate added,
    removed, rewritten or truncated), within half a second, so keys are
    issued and revoked without a restart: a revoked key is refused on its
    next connection, and the broker, told of the change, cuts the
    connections it already has (zfed_auth_socket, zfed_auth_key_roles).
*/
#ifndef ZFED_AUTH_H_INCLUDED
#define ZFED_AUTH_H_INCLUDED

#include <stdint.h>
#include <zmq.h>

#define ZFED_ROLE_WORKER     0x01
#define ZFED_ROLE_CONTROLLER 0x02

//  The ZAP domain zfed's broker socket uses.
#define ZFED_AUTH_DOMAIN "zfed"

typedef struct _zfed_auth_t zfed_auth_t;

typedef struct {
    uint64_t accepted; //  handshakes allowed
    uint64_t refused;  //  handshakes refused: unknown key or wrong mechanism
} zfed_auth_stats_t;

//  Starts the ZAP handler; either directory may be NULL (no keys in that
//  role).  Must run before any socket binds.  NULL (reason logged) on
//  failure, e.g. another ZAP handler already bound in this process.
zfed_auth_t *zfed_auth_new(const char *workers_dir, const char *controllers_dir);
void zfed_auth_destroy(zfed_auth_t **self_p);

void zfed_auth_stats(zfed_auth_t *self, zfed_auth_stats_t *stats);

//  Roles of the peer a received frame came from (ZFED_ROLE_ bits), 0 when
//  the frame carries no zfed User-Id (plaintext).  key_prefix, when not
//  NULL, receives the first 8 characters of its public key for logs.
unsigned zfed_auth_roles(zmq_msg_t *frame, char key_prefix[9]);

//  Z85 text of a CURVE public key, and its NUL.
#define ZFED_AUTH_KEY_SIZE 41

//  The whole public key (Z85) of the peer a received frame came from.
//  0, or -1 ("" in key) when the frame carries no zfed User-Id.
int zfed_auth_key(zmq_msg_t *frame, char key[ZFED_AUTH_KEY_SIZE]);

//  The whole public key (Z85) and roles of the peer a frame came from.
//  0, or -1 when the frame carries no zfed User-Id.
int zfed_auth_user(zmq_msg_t *frame, char key[ZFED_AUTH_KEY_SIZE], unsigned *roles);

//  Readable (ZMQ_POLLIN) after the key folders changed; zfed_auth_changed
//  then consumes the notices and returns the generation of the roles now
//  in force.  zfed_auth_generation reads it without consuming anything.
void *zfed_auth_socket(zfed_auth_t *self);
uint64_t zfed_auth_changed(zfed_auth_t *self);
uint64_t zfed_auth_generation(zfed_auth_t *self);

//  The roles key (Z85) has now: 0 when it is in no folder any more.
//  Thread-safe (a mutex around the snapshot the handler rebuilds).
unsigned zfed_auth_key_roles(zfed_auth_t *self, const char *key);

#endif
