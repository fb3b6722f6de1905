/*  zfed_auth - a ZAP handler with one key directory per role.

    Why not czmq's zauth: zauth checks one certificate store and answers
    allow/deny, while zfed authorizes by role (two stores); and zcertstore
    asserts (aborts the process) when two certificate files hold the same
    key, which an operator can cause by copying a file, and a broker must
    survive.  So this handler reads certificates with zcert itself, keeps a
    set of keys per directory, and tells the broker the peer's roles through
    the User-Id of the connection.
*/
#include "broker/zfed_auth.h"
#include "zfed/zfed_log.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define ZAP_ENDPOINT    "inproc://zeromq.zap.01"
#define ZAP_VERSION     "1.0"
#define CURVE_KEY_BYTES 32
#define Z85_KEY_CHARS   40
//  User-Id: "<roles>:<Z85 public key>", roles a subset of "wc".
#define USER_ID_MAX (3 + Z85_KEY_CHARS + 1)
//  Refusals logged per second; the rest are counted only.
#define WARNINGS_PER_SECOND 10
//  Certificate files read per directory, at most.
#define KEYS_MAX 1000000

//  The public keys of one directory, re-read when it changes.
typedef struct {
    char *path;
    zhashx_t *keys; //  Z85 public key -> file name
    struct timespec modified;
    bool loaded;
} s_keyring_t;

struct _zfed_auth_t {
    zactor_t *actor;
    s_keyring_t workers;
    s_keyring_t controllers;
    zfed_auth_stats_t stats; //  written by the actor thread, read with atomics
    int64_t window_ms;
    unsigned warnings;
};

static void s_keyring_init(s_keyring_t *ring, const char *path)
{
    memset(ring, 0, sizeof *ring);
    ring->path = path ? strdup(path) : NULL;
    ring->keys = zhashx_new();
    zhashx_set_destructor(ring->keys, (zhashx_destructor_fn *)zstr_free);
}

static void s_keyring_clear(s_keyring_t *ring)
{
    zhashx_destroy(&ring->keys);
    free(ring->path);
    ring->path = NULL;
}

//  Every regular file not named *_secret that zcert can read is a
//  certificate; anything else in the folder is ignored.
static void s_keyring_load(s_keyring_t *ring)
{
    zhashx_purge(ring->keys);
    DIR *dir = opendir(ring->path);
    if (!dir) {
        zfed_warn("cannot read key directory %s: %s", ring->path, strerror(errno));
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL && zhashx_size(ring->keys) < KEYS_MAX) {
        size_t length = strlen(entry->d_name);
        if (entry->d_name[0] == '.' ||
            (length >= 7 && strcmp(entry->d_name + length - 7, "_secret") == 0))
            continue;
        char *file = zsys_sprintf("%s/%s", ring->path, entry->d_name);
        struct stat info;
        zcert_t *cert =
            file && stat(file, &info) == 0 && S_ISREG(info.st_mode) ? zcert_load(file) : NULL;
        if (cert)
            zhashx_update(ring->keys, zcert_public_txt(cert), strdup(entry->d_name));
        zcert_destroy(&cert);
        zstr_free(&file);
    }
    closedir(dir);
    zfed_info("%zu keys in %s", zhashx_size(ring->keys), ring->path);
}

//  Found by public key (Z85), re-reading the directory if it changed since
//  the last look (adding, removing or renaming a file changes its mtime).
static const char *s_keyring_lookup(s_keyring_t *ring, const char *key)
{
    if (!ring->path)
        return NULL;
    struct stat info;
    if (stat(ring->path, &info) != 0) {
        if (ring->loaded)
            zhashx_purge(ring->keys);
        ring->loaded = false;
        return NULL;
    }
    if (!ring->loaded || info.st_mtim.tv_sec != ring->modified.tv_sec ||
        info.st_mtim.tv_nsec != ring->modified.tv_nsec) {
        s_keyring_load(ring);
        ring->modified = info.st_mtim;
        ring->loaded = true;
    }
    return zhashx_lookup(ring->keys, key);
}

static bool s_may_warn(zfed_auth_t *self)
{
    int64_t now = zclock_mono();
    if (now - self->window_ms >= 1000) {
        self->window_ms = now;
        self->warnings = 0;
    }
    return ++self->warnings <= WARNINGS_PER_SECOND;
}

//  One ZAP request: version, request id, domain, address, identity,
//  mechanism, credentials.
static void s_handle_request(zfed_auth_t *self, zsock_t *handler)
{
    zmsg_t *request = zmsg_recv(handler);
    if (!request)
        return;
    char *version = zmsg_popstr(request);
    char *sequence = zmsg_popstr(request);
    char *domain = zmsg_popstr(request);
    char *address = zmsg_popstr(request);
    char *identity = zmsg_popstr(request);
    char *mechanism = zmsg_popstr(request);
    zframe_t *credential = zmsg_pop(request);

    const char *status = "400";
    const char *text = "no such key";
    char user_id[USER_ID_MAX] = "";
    char key[Z85_KEY_CHARS + 1] = "";
    if (mechanism && streq(mechanism, "CURVE") && credential &&
        zframe_size(credential) == CURVE_KEY_BYTES) {
        zmq_z85_encode(key, zframe_data(credential), CURVE_KEY_BYTES);
        bool worker = s_keyring_lookup(&self->workers, key) != NULL;
        bool controller = s_keyring_lookup(&self->controllers, key) != NULL;
        if (worker || controller) {
            status = "200";
            text = "OK";
            snprintf(user_id, sizeof user_id, "%s%s:%s", worker ? "w" : "", controller ? "c" : "",
                     key);
        }
    } else
        text = "zfed accepts CURVE only";

    if (streq(status, "200")) {
        __atomic_add_fetch(&self->stats.accepted, 1, __ATOMIC_RELAXED);
        zfed_debug("CURVE key %.8s... from %s accepted as %s", key, address ? address : "?",
                   user_id);
    } else {
        __atomic_add_fetch(&self->stats.refused, 1, __ATOMIC_RELAXED);
        if (s_may_warn(self))
            zfed_warn("connection from %s refused: %s%s%s", address ? address : "?",
                      key[0] ? "CURVE key " : text, key[0] ? key : "",
                      key[0] ? " is in neither the workers' nor the controllers' directory" : "");
    }
    //  Reply: version, request id, status code, status text, user id,
    //  metadata (none).
    zsock_send(handler, "ssssss", ZAP_VERSION, sequence ? sequence : "", status, text, user_id, "");
    (void)version;
    (void)domain;
    (void)identity;
    zstr_free(&version);
    zstr_free(&sequence);
    zstr_free(&domain);
    zstr_free(&address);
    zstr_free(&identity);
    zstr_free(&mechanism);
    zframe_destroy(&credential);
    zmsg_destroy(&request);
}

static void s_actor(zsock_t *pipe, void *args)
{
    zfed_auth_t *self = args;
    zsock_t *handler = zsock_new(ZMQ_REP);
    if (!handler || zsock_bind(handler, ZAP_ENDPOINT) != 0) {
        zfed_error("cannot start the ZAP handler (is another one running in this process?)");
        zsock_destroy(&handler);
        zsock_signal(pipe, 1);
        return;
    }
    zsock_signal(pipe, 0);
    zpoller_t *poller = zpoller_new(pipe, handler, NULL);
    while (poller) {
        zsock_t *which = zpoller_wait(poller, -1);
        if (which == handler)
            s_handle_request(self, handler);
        else if (which == pipe) {
            char *command = zstr_recv(pipe);
            bool stop = !command || streq(command, "$TERM");
            zstr_free(&command);
            if (stop)
                break;
        } else if (zpoller_terminated(poller))
            break;
    }
    zpoller_destroy(&poller);
    zsock_destroy(&handler);
}

zfed_auth_t *zfed_auth_new(const char *workers_dir, const char *controllers_dir)
{
    zfed_auth_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    s_keyring_init(&self->workers, workers_dir);
    s_keyring_init(&self->controllers, controllers_dir);
    if (!self->workers.keys || !self->controllers.keys)
        goto err;
    //  Load now, so a missing directory is reported at start-up.
    if (workers_dir)
        s_keyring_lookup(&self->workers, "");
    if (controllers_dir)
        s_keyring_lookup(&self->controllers, "");
    self->actor = zactor_new(s_actor, self);
    if (!self->actor)
        goto err;
    return self;
err:
    zfed_auth_destroy(&self);
    return NULL;
}

void zfed_auth_destroy(zfed_auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_auth_t *self = *self_p;
    zactor_destroy(&self->actor);
    s_keyring_clear(&self->workers);
    s_keyring_clear(&self->controllers);
    free(self);
    *self_p = NULL;
}

void zfed_auth_stats(zfed_auth_t *self, zfed_auth_stats_t *stats)
{
    stats->accepted = __atomic_load_n(&self->stats.accepted, __ATOMIC_RELAXED);
    stats->refused = __atomic_load_n(&self->stats.refused, __ATOMIC_RELAXED);
}

unsigned zfed_auth_roles(zmq_msg_t *frame, char key_prefix[9])
{
    const char *user_id = zmq_msg_gets(frame, "User-Id");
    if (!user_id)
        return 0;
    const char *colon = strchr(user_id, ':');
    if (!colon)
        return 0;
    unsigned roles = 0;
    for (const char *cursor = user_id; cursor < colon; cursor++)
        roles |= *cursor == 'w' ? ZFED_ROLE_WORKER : *cursor == 'c' ? ZFED_ROLE_CONTROLLER : 0;
    if (key_prefix)
        snprintf(key_prefix, 9, "%s", colon + 1);
    return roles;
}

int zfed_auth_key(zmq_msg_t *frame, char key[ZFED_AUTH_KEY_SIZE])
{
    key[0] = '\0';
    const char *user_id = zmq_msg_gets(frame, "User-Id");
    const char *colon = user_id ? strchr(user_id, ':') : NULL;
    if (!colon || strlen(colon + 1) >= ZFED_AUTH_KEY_SIZE)
        return -1;
    snprintf(key, ZFED_AUTH_KEY_SIZE, "%s", colon + 1);
    return 0;
}
