/*  zfed_auth - a ZAP handler with one key directory per role.

    Why not czmq's zauth: zauth checks one certificate store and answers
    allow/deny, while zfed authorizes by role (two stores); and zcertstore
    asserts (aborts the process) when two certificate files hold the same
    key, which an operator can cause by copying a file, and a broker must
    survive.  So this handler reads certificates with zcert itself, keeps a
    set of keys per directory, and tells the broker the peer's roles through
    the User-Id of the connection.

    Revocation: every RESCAN_MS the handler's thread takes a fingerprint of
    each folder (every entry's name, inode, size, modification and change
    times, and the folder's own), so any change, a file added, removed,
    renamed, rewritten or truncated in place, is seen within that time
    (the folder's mtime alone misses the last two).  A folder that changed
    is read again; new connections are then judged by it, and the broker is
    told (a "CHANGED" message on the actor's pipe) so it can look up the
    roles each connected key has now (zfed_auth_key_roles, from a snapshot
    shared under a mutex) and cut the connections of keys that lost one.
    A scan costs about a microsecond per key file.
*/
#include "broker/zfed_auth.h"
#include "zfed/zfed_log.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
//  How often the folders are checked for changes: new connections see a
//  change within this, and the broker cuts a revoked key's connections
//  right after.
#define RESCAN_MS 500

//  The public keys of one directory, re-read when it changes.
typedef struct {
    char *path;
    zhashx_t *keys;           //  Z85 public key -> file name
    uint64_t fingerprint;     //  of the folder as last read
    struct timespec modified; //  the folder's mtime then
    bool loaded;
} s_keyring_t;

struct _zfed_auth_t {
    zactor_t *actor;
    s_keyring_t workers;
    s_keyring_t controllers;
    zfed_auth_stats_t stats; //  written by the actor thread, read with atomics
    int64_t window_ms;
    unsigned warnings;
    int64_t scanned_ms; //  actor thread: last fingerprint taken
    //  The roles each key has now (Z85 -> ZFED_ROLE_ bits), rebuilt by the
    //  actor thread whenever a folder changes, read by the broker's.
    pthread_mutex_t mutex;
    zhashx_t *roles;
    uint64_t generation; //  atomic: bumped on each rebuild
    bool noticed;        //  atomic: a CHANGED waits on the pipe (so at most one does)
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

static uint64_t s_mix(uint64_t hash, uint64_t value)
{
    //  splitmix64's finaliser: each field moves every bit of the hash.
    hash ^= value + 0x9e3779b97f4a7c15ULL + (hash << 6) + (hash >> 2);
    hash ^= hash >> 30;
    hash *= 0xbf58476d1ce4e5b9ULL;
    hash ^= hash >> 27;
    hash *= 0x94d049bb133111ebULL;
    return hash ^ (hash >> 31);
}

static uint64_t s_mix_stat(uint64_t hash, const struct stat *info)
{
    hash = s_mix(hash, (uint64_t)info->st_ino);
    hash = s_mix(hash, (uint64_t)info->st_size);
    hash = s_mix(hash, (uint64_t)info->st_mode);
    hash = s_mix(hash, (uint64_t)info->st_mtim.tv_sec * 1000000000ULL + info->st_mtim.tv_nsec);
    return s_mix(hash, (uint64_t)info->st_ctim.tv_sec * 1000000000ULL + info->st_ctim.tv_nsec);
}

//  What the folder looks like: a sum over its entries (so readdir's order
//  does not matter) of each one's name and stat, plus the folder's own
//  stat.  0 when the folder cannot be read.
static uint64_t s_fingerprint(const char *path)
{
    DIR *dir = opendir(path);
    if (!dir)
        return 0;
    struct stat info;
    uint64_t sum = fstat(dirfd(dir), &info) == 0 ? s_mix_stat(1, &info) : 1;
    struct dirent *entry;
    size_t entries = 0;
    while ((entry = readdir(dir)) != NULL && entries++ < KEYS_MAX) {
        uint64_t hash = 0;
        for (const char *cursor = entry->d_name; *cursor; cursor++)
            hash = s_mix(hash, (unsigned char)*cursor);
        if (fstatat(dirfd(dir), entry->d_name, &info, 0) == 0)
            hash = s_mix_stat(hash, &info);
        sum += hash;
    }
    closedir(dir);
    return sum ? sum : 1;
}

//  Reads the folder again when its fingerprint changed.  True when its
//  keys were (re)loaded.
static bool s_keyring_refresh(s_keyring_t *ring)
{
    if (!ring->path)
        return false;
    struct stat folder;
    if (stat(ring->path, &folder) == 0)
        ring->modified = folder.st_mtim;
    uint64_t fingerprint = s_fingerprint(ring->path);
    if (ring->loaded && fingerprint == ring->fingerprint)
        return false;
    if (fingerprint == 0) {
        if (ring->loaded || zhashx_size(ring->keys) > 0)
            zfed_warn("cannot read key directory %s: %s; no key of it is accepted", ring->path,
                      strerror(errno));
        zhashx_purge(ring->keys);
    } else
        s_keyring_load(ring);
    ring->fingerprint = fingerprint;
    ring->loaded = true;
    return true;
}

//  True when the folder's own mtime moved since it was read: a file was
//  added (or removed, or renamed).  One stat, so a handshake with an
//  unknown key can afford it, and a key issued a moment ago works at once.
static bool s_keyring_grew(const s_keyring_t *ring)
{
    struct stat info;
    return ring->path && stat(ring->path, &info) == 0 &&
           (info.st_mtim.tv_sec != ring->modified.tv_sec ||
            info.st_mtim.tv_nsec != ring->modified.tv_nsec);
}

static const char *s_keyring_lookup(s_keyring_t *ring, const char *key)
{
    return ring->path ? zhashx_lookup(ring->keys, key) : NULL;
}

//  The roles snapshot the broker reads, from both folders as loaded now.
static void s_publish_roles(zfed_auth_t *self)
{
    zhashx_t *roles = zhashx_new();
    if (!roles) {
        zfed_error("out of memory rebuilding the key roles; keeping the previous ones");
        return;
    }
    s_keyring_t *rings[] = {&self->workers, &self->controllers};
    unsigned bits[] = {ZFED_ROLE_WORKER, ZFED_ROLE_CONTROLLER};
    for (size_t ring = 0; ring < 2; ring++) {
        for (void *file = zhashx_first(rings[ring]->keys); file;
             file = zhashx_next(rings[ring]->keys)) {
            const char *key = zhashx_cursor(rings[ring]->keys);
            uintptr_t have = (uintptr_t)zhashx_lookup(roles, key);
            zhashx_update(roles, key, (void *)(have | bits[ring]));
        }
    }
    pthread_mutex_lock(&self->mutex);
    zhashx_t *old = self->roles;
    self->roles = roles;
    pthread_mutex_unlock(&self->mutex);
    zhashx_destroy(&old);
    __atomic_add_fetch(&self->generation, 1, __ATOMIC_RELEASE);
}

//  Actor thread, at most every interval_ms: both folders checked, and on
//  a change the snapshot rebuilt and the broker told.
static void s_rescan(zfed_auth_t *self, zsock_t *pipe, int64_t interval_ms)
{
    int64_t now = zclock_mono();
    if (now - self->scanned_ms < interval_ms)
        return;
    self->scanned_ms = now;
    bool changed = s_keyring_refresh(&self->workers);
    changed |= s_keyring_refresh(&self->controllers);
    if (changed || !self->roles)
        s_publish_roles(self);
    if (changed && pipe && !__atomic_exchange_n(&self->noticed, true, __ATOMIC_ACQ_REL))
        zstr_send(pipe, "CHANGED");
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
static void s_handle_request(zfed_auth_t *self, zsock_t *handler, zsock_t *pipe)
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
        if (!worker && !controller &&
            (s_keyring_grew(&self->workers) || s_keyring_grew(&self->controllers))) {
            s_rescan(self, pipe, 0);
            worker = s_keyring_lookup(&self->workers, key) != NULL;
            controller = s_keyring_lookup(&self->controllers, key) != NULL;
        }
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
        zsock_t *which = zpoller_wait(poller, RESCAN_MS);
        //  Before the handshake it may decide: a change is never judged
        //  by keys older than RESCAN_MS.
        s_rescan(self, pipe, RESCAN_MS);
        if (which == handler)
            s_handle_request(self, handler, pipe);
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
    pthread_mutex_init(&self->mutex, NULL);
    s_keyring_init(&self->workers, workers_dir);
    s_keyring_init(&self->controllers, controllers_dir);
    if (!self->workers.keys || !self->controllers.keys)
        goto err;
    //  Load now, so a missing directory is reported at start-up.
    s_rescan(self, NULL, 0);
    if (!self->roles)
        goto err;
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
    zhashx_destroy(&self->roles);
    pthread_mutex_destroy(&self->mutex);
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

int zfed_auth_user(zmq_msg_t *frame, char key[ZFED_AUTH_KEY_SIZE], unsigned *roles)
{
    if (zfed_auth_key(frame, key) != 0 || strlen(key) != Z85_KEY_CHARS)
        return -1;
    *roles = zfed_auth_roles(frame, NULL);
    return 0;
}

void *zfed_auth_socket(zfed_auth_t *self)
{
    return zsock_resolve(zactor_sock(self->actor));
}

uint64_t zfed_auth_changed(zfed_auth_t *self)
{
    zsock_t *pipe = zactor_sock(self->actor);
    if (__atomic_exchange_n(&self->noticed, false, __ATOMIC_ACQ_REL)) {
        char *note = zstr_recv(pipe); //  there is exactly one
        zstr_free(&note);
    }
    return __atomic_load_n(&self->generation, __ATOMIC_ACQUIRE);
}

uint64_t zfed_auth_generation(zfed_auth_t *self)
{
    return __atomic_load_n(&self->generation, __ATOMIC_ACQUIRE);
}

unsigned zfed_auth_key_roles(zfed_auth_t *self, const char *key)
{
    pthread_mutex_lock(&self->mutex);
    unsigned roles = (unsigned)(uintptr_t)zhashx_lookup(self->roles, key);
    pthread_mutex_unlock(&self->mutex);
    return roles;
}
