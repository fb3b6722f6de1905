/*  zfed_broker - the Majordomo broker.

    State lives in one struct owned by one loop: services (hash by name),
    workers and peers (hash by routing id), each client's queue per
    service (hash by both), and intrusive lists that make every step O(1):

    service->turns     the queues of the clients with requests waiting for
                       the service, in turn order: a dispatch takes the
                       oldest request of the first queue and moves that
                       queue to the back, so clients take turns and one
                       with 200,000 queued delays another by one request
    service->parked    the queues held back because their client's byte
                       budget has no room for another reply (below)
    queue->requests    one client's queued requests for one service, oldest
                       first
    broker->by_age     every queued request, oldest first (expiry)
    service->waiting   workers with spare credit, longest idle first (LRU)
    broker->liveness   every worker, soonest to expire first; all workers
                       share one timeout, so appending on each sign of life
                       keeps the list sorted and expiry only looks at the head
    broker->quiet      busy workers past that timeout that have never shown
                       they heartbeat while they work (plain MDP workers
                       block): they get busy_timeout_ms instead, again one
                       timeout for all, so this list too is sorted
    worker->in_flight  requests the worker holds

    A request keeps its body frames until its reply arrives: it is sent as a
    copy (libzmq shares the content of large frames by reference count), so
    if the worker dies the same bytes go to another worker.  The REQUEST's
    "client address" frame, which MDP makes opaque to workers, carries the
    broker's 8-byte request id; the worker echoes it and the reply is
    matched to exactly one in-flight request, so a stale or duplicate reply
    can be recognised and dropped.

    A peer is one connection (one routing id).  Its record holds what the
    broker knows of it: the connection's descriptor (ZMQ_SRCFD) so the
    record goes when the connection closes (the monitor's DISCONNECTED
    names the descriptor) and so a revoked key's connection can be cut
    (shutdown() on it: libzmq sees the stream end and closes it), its CURVE
    key and roles, its byte account (zfed_budget), its READYs, its queues
    and its worker registration.

    Flow control: a request is dispatched only when its client's byte
    budget has room for its reply, as big as the largest its service has
    sent (reserved at dispatch, given back when the reply comes).  A client
    that reads slowly, or not at all, has its further requests wait in its
    queue (parked, out of the turns) instead of its replies dropped; libzmq
    freeing the client's bytes wakes the broker (the ledger's eventfd) to
    put the queue back.  Only a reply larger than its reservation can still
    find no room, and is dropped and counted.
*/
#include "zfed/zfed_broker.h"
#include "zfed/zfed_batch.h"
#include "zfed/zfed_descriptor.h"
#include "wire/zfed_frames.h"
#include "wire/zfed_stamp.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_mdp.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_signal.h"
#include "zfed/zfed_util.h"
#include "zfed/zfed_version.h"
#include "broker/zfed_auth.h"
#include "broker/zfed_broker_actor.h"
#include "broker/zfed_budget.h"
#include "broker/zfed_gate.h"
#include "core/zfed_list.h"
#include "transport/zfed_netmon.h"

#include <errno.h>
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

//  Messages handled per wake-up before timers are looked at again.
#define DRAIN_BATCH 1024
//  Request ids travel as 8 big-endian bytes in the address frame.
#define REQUEST_ID_SIZE 8
//  Hex text of a routing id: 2 characters per byte, plus NUL.
#define IDENTITY_KEY_SIZE (2 * ZFED_MDP_ADDRESS_MAX + 1)
//  Warnings about bad input are capped per second so a flood of garbage
//  cannot turn into a flood of log lines; the rest are counted.
#define WARNINGS_PER_SECOND 20
//  Linger on close, so the DISCONNECTs sent at shutdown leave the process.
#define SHUTDOWN_LINGER_MS 200
//  Name the broker signs its own error replies with.
#define BROKER_NAME "broker"
//  Replies up to this size are forwarded as copies, releasing libzmq's
//  receive buffer at once (see s_worker_reply).
#define COMPACT_BODY_MAX 2048
//  A HEARTBEAT shows a worker heartbeats while it works only if it comes
//  this long (a fraction of an interval) after the worker became busy: an
//  idle plain MDP worker's heartbeat may cross the REQUEST on the wire and
//  arrive just after it, but never half an interval later.
#define BUSY_HEARTBEAT_DIVISOR 2
//  A queue's key: the service's address and the client's routing id.
#define QUEUE_KEY_SIZE (2 * sizeof(void *) + 4 + IDENTITY_KEY_SIZE)
//  Descriptors the peer table indexes, at most (a bigger one is untracked).
#define FD_TABLE_MAX (1 << 22)
//  Replies per epoch of a service's reply sizes: what a reply is set aside
//  is the largest of this epoch and the last, so one outsized reply sizes
//  the reservations of the next 64 to 128 replies, not all of them.
#define REPLY_SIZE_EPOCH 64
//  Held bytes that, once released, are worth handing back to the system.
#define TRIM_BYTES (16 << 20)

typedef struct _service_t service_t;
typedef struct _worker_t worker_t;
typedef struct _request_t request_t;
typedef struct _queue_t queue_t;
typedef struct _peer_t peer_t;

struct _service_t {
    char *name;
    size_t name_size;  //  strlen(name)
    zfed_link_t turns; //  queue_t.turn_link of the clients waiting, in turn order
    zfed_link_t waiting;
    zfed_link_t pending_link; //  in broker->pending until a worker first registers
    zfed_link_t reclaim_link; //  in broker->reclaim when it may have become idle
    zfed_link_t parked;       //  queue_t.turn_link of the queues held back
    zfed_link_t parked_link;  //  in broker->parked while it has any
    zfed_link_t idle;         //  queue_t.turn_link of empty queues kept (s_queue_empty)
    size_t reply_max;         //  the largest reply forwarded this epoch, with overhead
    size_t reply_max_before;  //  the same in the epoch before
    uint32_t replies_in_epoch;
    bool registered; //  a worker has served it
    size_t workers;
    size_t queued;
    size_t in_flight;
    //  Under CURVE, a blob service (zfed.blob.*) belongs to the key of its
    //  first worker while it has workers: no other key may register it,
    //  so nobody serves forged chunks under another holder's name.
    bool blob;
    char owner[ZFED_AUTH_KEY_SIZE];
};

//  One client's requests for one service.
struct _queue_t {
    char key[QUEUE_KEY_SIZE];
    zfed_link_t turn_link; //  in service->turns, service->parked, or (empty) service->idle
    zfed_link_t peer_link; //  in peer->queues
    zfed_link_t requests;  //  request_t.link, oldest first
    size_t count;
    service_t *service;
    peer_t *peer;
    bool parked;
};

struct _peer_t {
    char key[IDENTITY_KEY_SIZE];
    uint8_t identity[ZFED_MDP_ADDRESS_MAX];
    size_t identity_size;
    int fd;                         //  the connection's descriptor, -1 when unknown (inproc)
    ino_t inode;                    //  of that socket, checked before it is shut down
    char curve[ZFED_AUTH_KEY_SIZE]; //  its CURVE public key, "" in plaintext
    unsigned roles;                 //  the roles its handshake gave it
    uint64_t generation;            //  of the key roles it was last checked against
    zfed_account_t *account;
    worker_t *worker; //  its registration, if it is a worker
    zfed_link_t queues;
    uint32_t readies;
    bool revoked;    //  its key lost a role: everything it sends is refused
    uint64_t serial; //  its number, from 1: its stamp identity in plaintext
    char stamp_id[ZFED_STAMP_IDENTITY_MAX + 1]; //  "peer:<serial>", written with serial
    queue_t *last_queue;                        //  the queue it last sent to (s_queue_of)
    //  Watched for a stall (in broker->stalled) since its budget or the
    //  total was found full: when libzmq last let go of one of its
    //  messages (or the watch began), and how many it had let go of then.
    zfed_link_t stall_link;
    int64_t stall_since_ms;
    uint64_t stall_released;
    bool cut; //  shut for a stall: not watched again
    //  Its connection is gone (a newer one took its descriptor): in
    //  broker->gone until the router has been read dry.
    zfed_link_t gone_link;
};

struct _worker_t {
    char key[IDENTITY_KEY_SIZE];
    uint8_t identity[ZFED_MDP_ADDRESS_MAX];
    size_t identity_size;
    peer_t *peer;
    service_t *service;
    zfed_link_t waiting_link;
    zfed_link_t liveness_link;
    zfed_link_t in_flight;
    size_t in_flight_count;
    size_t credit;
    int64_t expiry_ms;
    int64_t last_heard_ms;
    int64_t last_sent_ms;
    int64_t busy_since_ms; //  when in_flight_count last went from 0 to 1
    bool beats_while_busy; //  sent a HEARTBEAT while working, or has credit
    bool congested;        //  its byte budget is full: out of line until it drains
    bool compact;          //  offered compact frames and we accepted (PROTOCOL.md 3.2)
};

//  A request is one allocation: its fields, then the client's routing id
//  and the body frames back to back.  Copying the bytes in (rather than
//  keeping libzmq's frames) matters at scale: libzmq hands out small frames
//  as slices of shared 8 KB receive buffers that stay alive while any
//  slice does, so 100,000 queued requests kept as frames pinned about 2 KB
//  each; as copies they cost about 130 bytes plus their body.  Its size is
//  charged to the client's account until it is answered.
struct _request_t {
    zfed_link_t link;     //  in its queue, or its worker's in_flight
    zfed_link_t age_link; //  in broker->by_age while queued
    uint64_t id;
    service_t *service;
    worker_t *worker;
    queue_t *queue;
    zfed_account_t *account; //  the client's
    size_t charge;
    size_t reserved; //  on the account for its reply, while in flight
    int64_t enqueued_ms;
    uint32_t attempts;
    bool stamped;    //  the client sent a ticket: its reply is stamped
    bool compact;    //  it came compact: so is its reply (PROTOCOL.md 3.3)
    uint64_t ticket; //  (PROTOCOL.md 3.1)
    uint8_t client_size;
    uint8_t body_count;
    uint32_t body_size[ZFED_BROKER_MAX_BODY_FRAMES];
    uint8_t data[];
};

struct _zfed_broker_t {
    zfed_broker_config_t config;
    zsock_t *router;
    void *handle;
    zfed_netmon_t *netmon;
    zfed_auth_t *auth; //  NULL: plaintext
    zfed_gate_t *gate;
    zfed_ledger_t *ledger;
    zhashx_t *services;
    zhashx_t *workers;
    zhashx_t *peers;
    zhashx_t *queues;
    zlistx_t *endpoints;
    zfed_link_t liveness;
    zfed_link_t quiet;
    zfed_link_t by_age;
    zfed_link_t pending; //  services no worker has served, oldest first
    zfed_link_t reclaim; //  services that may be idle now
    zfed_link_t parked;  //  services with queues held back for their budget
    zfed_link_t stalled; //  peer_t.stall_link: peers watched for a stall
    bool total_full;     //  the total refused someone since the last tick
    //  Peers by descriptor, and how many DISCONNECTEDs are still to come
    //  for connections whose descriptor a newer one already took.
    peer_t **by_fd;
    uint16_t *owed;
    size_t fd_capacity;
    //  Descriptors whose connection closed, retired only once the router
    //  has been read dry after the event came (s_closed_apply): what the
    //  connection sent before it closed may still wait in the router.
    int *closing;
    size_t closing_count;
    size_t closing_capacity;
    //  Peers whose descriptor a newer connection took, retired in the same
    //  way: those found gone before a drain (gone_ready) once it reads dry.
    zfed_link_t gone;
    zfed_link_t gone_ready;
    uint64_t next_request_id;
    uint64_t next_peer_serial;
    int64_t tick_at_ms;
    //  The clock as read once per message (and around each sleep): what
    //  handling the message stamps (arrival, dispatch, liveness) uses, so
    //  it costs one clock read, not one per timestamp.  Read per message,
    //  not per drain: handling a big one (a model's chunk) takes time.
    int64_t now_ms;
    zfed_frames_t frames;
    char sender_key[ZFED_AUTH_KEY_SIZE]; //  CURVE: the key of the message being handled
    msgpack_sbuffer scratch;             //  the reply the broker is building
    msgpack_sbuffer item_scratch;        //  one item of an error batch
    zfed_view_t *batch_items;            //  ZFED_BATCH_MAX views, for refusing a batch
    zfed_broker_stats_t stats;
    int64_t warning_window_ms;
    unsigned warnings_in_window;
    uint64_t warnings_suppressed;
    bool terminated;
    int64_t started_ms;
    int64_t trim_high; //  the most bytes held since memory was last handed back
};

//  A request's ticket (PROTOCOL.md 3.1): a reply to it is stamped when on;
//  and the form it came in, which its replies take (compact, 3.3, or MDP).
typedef struct {
    bool on;
    uint64_t value;
    bool compact;
} ticket_t;

//  ---------------------------------------------------------------------
//  Small helpers

static void s_identity_key(const uint8_t *identity, size_t size, char *key)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t index = 0; index < size; index++) {
        key[2 * index] = digits[identity[index] >> 4];
        key[2 * index + 1] = digits[identity[index] & 0x0f];
    }
    key[2 * size] = '\0';
}

//  Warn about a peer's bad input, within the per-second budget.
static void s_warn_peer(zfed_broker_t *self, const zfed_view_t *peer, const char *what,
                        const char *reason)
{
    int64_t now = zfed_clock_ms();
    if (now - self->warning_window_ms >= 1000) {
        if (self->warnings_suppressed > 0)
            zfed_warn("%" PRIu64 " more warnings about bad input were suppressed",
                      self->warnings_suppressed);
        self->warning_window_ms = now;
        self->warnings_in_window = 0;
        self->warnings_suppressed = 0;
    }
    if (self->warnings_in_window >= WARNINGS_PER_SECOND) {
        self->warnings_suppressed++;
        return;
    }
    self->warnings_in_window++;
    char key[IDENTITY_KEY_SIZE];
    s_identity_key(peer->data, peer->size, key);
    zfed_warn("peer %s: %s: %s", key, what, reason);
}

//  Sends the next part of a message to a peer; with ROUTER_MANDATORY and
//  DONTWAIT an unknown or congested peer fails the first part instead of
//  silently swallowing the message.
static int s_send(zfed_broker_t *self, const void *data, size_t size, int flags)
{
    return zfed_send_bytes(self->handle, data, size, flags | ZMQ_DONTWAIT);
}

//  A peer's connection number, and the stamp identity that names it in
//  plaintext (PROTOCOL.md 3.1), written once here rather than per reply.
static void s_peer_number(zfed_broker_t *self, peer_t *peer)
{
    peer->serial = ++self->next_peer_serial;
    snprintf(peer->stamp_id, sizeof peer->stamp_id, ZFED_STAMP_PEER "%" PRIu64, peer->serial);
}

static void s_count_unroutable(zfed_broker_t *self, const char *what)
{
    self->stats.unroutable++;
    zfed_debug("could not deliver %s: %s", what, zmq_strerror(errno));
}

//  ---------------------------------------------------------------------
//  Peers

static peer_t *s_peer_lookup(zfed_broker_t *self, const zfed_view_t *identity)
{
    char key[IDENTITY_KEY_SIZE];
    s_identity_key(identity->data, identity->size, key);
    return zhashx_lookup(self->peers, key);
}

static peer_t **s_fd_slot(zfed_broker_t *self, int fd)
{
    if (fd < 0 || fd >= FD_TABLE_MAX)
        return NULL;
    if ((size_t)fd >= self->fd_capacity) {
        size_t capacity = self->fd_capacity ? self->fd_capacity : 1024;
        while (capacity <= (size_t)fd)
            capacity *= 2;
        peer_t **by_fd = realloc(self->by_fd, capacity * sizeof *by_fd);
        if (!by_fd)
            return NULL;
        self->by_fd = by_fd;
        uint16_t *owed = realloc(self->owed, capacity * sizeof *owed);
        if (!owed)
            return NULL;
        self->owed = owed;
        memset(by_fd + self->fd_capacity, 0, (capacity - self->fd_capacity) * sizeof *by_fd);
        memset(owed + self->fd_capacity, 0, (capacity - self->fd_capacity) * sizeof *owed);
        self->fd_capacity = capacity;
    }
    return &self->by_fd[fd];
}

static void s_peer_unbind_fd(zfed_broker_t *self, peer_t *peer)
{
    peer_t **slot = s_fd_slot(self, peer->fd);
    if (slot && *slot == peer)
        *slot = NULL;
    peer->fd = -1;
}

//  Ends the peer's connection from our side: libzmq reads the end of the
//  stream, closes the socket and reports DISCONNECTED.  Only if the
//  descriptor is still that connection (same socket inode).
static void s_peer_shut(zfed_broker_t *self, peer_t *peer)
{
    struct stat info;
    if (peer->fd >= 0 && fstat(peer->fd, &info) == 0 && S_ISSOCK(info.st_mode) &&
        info.st_ino == peer->inode)
        shutdown(peer->fd, SHUT_RDWR);
}

static void s_worker_delete(zfed_broker_t *self, worker_t **worker_p, bool send_disconnect);
static void s_queue_drop(zfed_broker_t *self, queue_t **queue_p);
static void s_queue_free(zfed_broker_t *self, queue_t **queue_p);

//  The requests a peer has queued: nobody could be told their answers.
static void s_peer_drop_queues(zfed_broker_t *self, peer_t *peer)
{
    zfed_link_t *link;
    while ((link = zfed_list_first(&peer->queues)) != NULL) {
        queue_t *queue = zfed_container_of(link, queue_t, peer_link);
        s_queue_drop(self, &queue);
    }
}

//  Forgets a peer whose connection is gone (or is being cut): its worker
//  registration (what it held goes to other workers), its queued requests
//  (nobody could be answered), and its record.  Requests it has at workers
//  keep its account alive until they end.
static void s_peer_retire(zfed_broker_t *self, peer_t **peer_p, const char *why)
{
    peer_t *peer = *peer_p;
    if (peer->worker) {
        zfed_info("worker %s (%s) gone: %s; re-queuing %zu requests", peer->key,
                  peer->worker->service->name, why, peer->worker->in_flight_count);
        self->stats.workers_expired++;
        s_worker_delete(self, &peer->worker, false);
    }
    s_peer_drop_queues(self, peer);
    s_peer_unbind_fd(self, peer);
    zfed_link_remove(&peer->stall_link);
    zfed_link_remove(&peer->gone_link);
    zfed_account_release(&peer->account);
    zhashx_delete(self->peers, peer->key);
    self->stats.peers--;
    free(peer);
    *peer_p = NULL;
}

//  Ties the peer to the connection a message came on; false when it is
//  not (its fd stays -1).
static bool s_peer_bind_fd(zfed_broker_t *self, peer_t *peer, int fd)
{
    peer_t **slot = s_fd_slot(self, fd);
    if (!slot)
        return false;
    struct stat info;
    ino_t inode = fstat(fd, &info) == 0 ? info.st_ino : 0;
    if (*slot && *slot != peer) {
        if (inode != 0 && inode == (*slot)->inode) {
            //  The descriptor's owner is still on it (same socket): this
            //  message came on a connection that has closed since, whose
            //  descriptor the owner's took.  Nobody is retired for it, and
            //  this peer stays unbound.
            return false;
        }
        //  The descriptor was reused: the peer it named is gone, and its
        //  DISCONNECTED, still to come, must not retire this one.  What it
        //  sent may still wait in the router: it is retired once that has
        //  been read (s_closed_apply).
        self->owed[fd]++;
        peer_t *old = *slot;
        s_peer_unbind_fd(self, old);
        zfed_list_push_back(&self->gone, &old->gone_link);
    }
    peer->fd = fd;
    peer->inode = inode;
    *slot = peer;
    return true;
}

//  What the handshake of the peer's connection said: its CURVE key and
//  roles (checked against the key folders again on its next message).
static void s_peer_authenticate(zfed_broker_t *self, peer_t *peer)
{
    zfed_frames_t *frames = &self->frames;
    peer->curve[0] = '\0';
    peer->roles = 0;
    peer->generation = 0;
    if (self->auth && frames->count >= 2 &&
        zfed_auth_user(&frames->part[1], peer->curve, &peer->roles) != 0)
        peer->curve[0] = '\0';
}

//  CURVE: true when the message's connection speaks for another key than
//  the peer record of its routing id.  Anyone may reuse a routing id
//  (ROUTER_HANDOVER), so the record, its registration and the requests it
//  holds belong to the key, not to the routing id: another key's
//  connection retires the record (what it held is queued again) and gets
//  its own, and it never answers or is stamped as the first key.
static bool s_peer_key_changed(zfed_broker_t *self, const peer_t *peer)
{
    if (!self->auth)
        return false;
    char key[ZFED_AUTH_KEY_SIZE];
    unsigned roles;
    if (zfed_auth_user(&self->frames.part[1], key, &roles) != 0)
        key[0] = '\0';
    if (strcmp(key, peer->curve) == 0)
        return false;
    s_warn_peer(self, &self->frames.view[0], "routing id taken over by another key",
                "the record of the first key is retired, its requests queued again");
    return true;
}

//  The descriptor of the connection a frame came on, -1 if none (inproc).
//  What zmq_msg_get (ZMQ_SRCFD) says, read as libzmq keeps it, in its
//  metadata as decimal text, without atoi's locale-aware strtol: this
//  runs for every message.
static int s_frame_fd(zmq_msg_t *frame)
{
    const char *text = zmq_msg_gets(frame, "__fd");
    if (!text || *text < '0' || *text > '9')
        return -1;
    long fd = 0;
    for (; *text >= '0' && *text <= '9'; text++) {
        fd = 10 * fd + (*text - '0');
        if (fd > INT32_MAX)
            return -1;
    }
    return *text ? -1 : (int)fd;
}

//  The record of the message's sender, made on its first message.  NULL
//  only when out of memory.
static peer_t *s_peer_of_message(zfed_broker_t *self)
{
    zfed_frames_t *frames = &self->frames;
    const zfed_view_t *identity = &frames->view[0];
    //  Metadata rides on the frames the peer sent, not on the routing id.
    int fd = frames->count >= 2 ? s_frame_fd(&frames->part[1]) : -1;
    //  The peer bound to that descriptor, if the routing id is its own, is
    //  the one the lookup would find (a record is bound to one descriptor
    //  and found under its own routing id): no key to make, no hashing.
    peer_t *peer = fd >= 0 && (size_t)fd < self->fd_capacity ? self->by_fd[fd] : NULL;
    if (peer && peer->identity_size == identity->size &&
        memcmp(peer->identity, identity->data, identity->size) == 0)
        return peer;
    peer = s_peer_lookup(self, identity);
    if (peer && fd >= 0 && peer->fd != fd) {
        //  Its routing id on a new connection (ROUTER_HANDOVER): the old
        //  one is dead or soon will be; if it lingers, it is shut.
        s_peer_shut(self, peer);
        if (s_peer_key_changed(self, peer))
            s_peer_retire(self, &peer, "its routing id was taken over by another key");
        else {
            s_peer_unbind_fd(self, peer);
            if (s_peer_bind_fd(self, peer, fd)) {
                //  A new connection, judged by its own handshake: what the
                //  old one was (revoked, cut for a stall) is not held
                //  against it.
                peer->readies = 0;
                peer->revoked = false;
                peer->cut = false;
                zfed_link_remove(&peer->stall_link);
                zfed_link_remove(&peer->gone_link);
                s_peer_authenticate(self, peer);
                //  In plaintext the stamp names the connection (PROTOCOL.md 3.1).
                if (!peer->curve[0])
                    s_peer_number(self, peer);
            }
        }
    }
    if (peer)
        return peer;
    peer = calloc(1, sizeof *peer);
    zfed_account_t *account = peer ? zfed_account_new(self->ledger) : NULL;
    if (!account) {
        free(peer);
        return NULL;
    }
    memcpy(peer->identity, identity->data, identity->size);
    peer->identity_size = identity->size;
    s_identity_key(identity->data, identity->size, peer->key);
    peer->fd = -1;
    s_peer_number(self, peer);
    peer->account = account;
    zfed_link_init(&peer->queues);
    zfed_link_init(&peer->stall_link);
    zfed_link_init(&peer->gone_link);
    s_peer_authenticate(self, peer);
    zhashx_insert(self->peers, peer->key, peer);
    self->stats.peers++;
    if (fd >= 0)
        s_peer_bind_fd(self, peer, fd);
    return peer;
}

//  A peer with no connection descriptor to watch (inproc) is forgotten as
//  soon as it holds nothing; the others when their connection closes.
static void s_peer_forget_if_idle(zfed_broker_t *self, peer_t **peer_p)
{
    peer_t *peer = *peer_p;
    if (peer && peer->fd < 0 && peer->last_queue && peer->last_queue->count == 0)
        s_queue_free(self, &peer->last_queue); //  kept empty (s_queue_empty)
    if (peer && peer->fd < 0 && !peer->worker && zfed_list_empty(&peer->queues) &&
        zfed_account_items(peer->account) == 0 && !peer->revoked)
        s_peer_retire(self, peer_p, "idle");
}

//  A limit refused something of this peer's: if it was its own budget, it
//  is watched from now on (s_check_stalls cuts it if it reads nothing for
//  stall_timeout_ms); if it was the total, every peer holding bytes in
//  libzmq is looked at on the next tick.
static void s_peer_watch(zfed_broker_t *self, peer_t *peer, zfed_room_t room)
{
    if (room == ZFED_ROOM_TOTAL_FULL)
        self->total_full = true;
    if (room != ZFED_ROOM_ACCOUNT_FULL || !peer || peer->cut ||
        self->config.stall_timeout_ms <= 0 || zfed_link_linked(&peer->stall_link))
        return;
    peer->stall_since_ms = self->now_ms;
    peer->stall_released = zfed_account_released(peer->account);
    zfed_list_push_back(&self->stalled, &peer->stall_link);
}

//  ---------------------------------------------------------------------
//  Services

static service_t *s_service_lookup(zfed_broker_t *self, zfed_view_t name)
{
    char text[ZFED_MDP_SERVICE_MAX + 1];
    memcpy(text, name.data, name.size);
    text[name.size] = '\0';
    return zhashx_lookup(self->services, text);
}

static void s_service_evict(zfed_broker_t *self, service_t *service);

//  The service of that name, made if need be.  At max_services a READY
//  (for_worker) takes the slot of the oldest service no worker has ever
//  served, whose requests then fail: requests for names nobody serves
//  cannot keep a worker out.  NULL at the limit, or out of memory.
static service_t *s_service_require(zfed_broker_t *self, zfed_view_t name, bool for_worker)
{
    service_t *service = s_service_lookup(self, name);
    if (service)
        return service;
    if (zhashx_size(self->services) >= self->config.max_services) {
        zfed_link_t *oldest = zfed_list_first(&self->pending);
        if (!for_worker || !oldest)
            return NULL;
        s_service_evict(self, zfed_container_of(oldest, service_t, pending_link));
    }
    service = calloc(1, sizeof *service);
    if (!service)
        return NULL;
    service->name = malloc(name.size + 1);
    if (!service->name) {
        free(service);
        return NULL;
    }
    memcpy(service->name, name.data, name.size);
    service->name[name.size] = '\0';
    service->name_size = name.size;
    service->blob = zfed_blob_service_valid(service->name, name.size);
    zfed_link_init(&service->turns);
    zfed_link_init(&service->parked);
    zfed_link_init(&service->parked_link);
    zfed_link_init(&service->idle);
    zfed_link_init(&service->waiting);
    zfed_link_init(&service->pending_link);
    zfed_link_init(&service->reclaim_link);
    zfed_list_push_back(&self->pending, &service->pending_link);
    zhashx_insert(self->services, service->name, service);
    zfed_debug("service %s created", service->name);
    return service;
}

static void s_service_destroy(zfed_broker_t *self, service_t **service_p)
{
    service_t *service = *service_p;
    zfed_link_t *link;
    while ((link = zfed_list_first(&service->idle)) != NULL) {
        queue_t *queue = zfed_container_of(link, queue_t, turn_link);
        s_queue_free(self, &queue);
    }
    zfed_link_remove(&service->pending_link);
    zfed_link_remove(&service->reclaim_link);
    zfed_link_remove(&service->parked_link);
    zhashx_delete(self->services, service->name);
    free(service->name);
    free(service);
    *service_p = NULL;
}

//  Marks a service that may have become idle; s_reclaim forgets it if so.
static void s_service_check(zfed_broker_t *self, service_t *service)
{
    if (service->workers == 0 && service->queued == 0 && service->in_flight == 0)
        zfed_list_push_back(&self->reclaim, &service->reclaim_link);
}

//  Forgets the services nobody serves or waits for, so that names that
//  come and go (10,000 READYs with distinct names) cannot use up
//  max_services.  Run where no caller holds a service pointer: at the end
//  of each message, event and tick.
static void s_reclaim(zfed_broker_t *self)
{
    zfed_link_t *link;
    while ((link = zfed_list_first(&self->reclaim)) != NULL) {
        service_t *service = zfed_container_of(link, service_t, reclaim_link);
        zfed_link_remove(link);
        if (service->workers == 0 && service->queued == 0 && service->in_flight == 0)
            s_service_destroy(self, &service);
    }
}

//  ---------------------------------------------------------------------
//  Requests

//  What a request of that client and body would hold, charged to its
//  client's account while it lives.
static size_t s_request_size(const zfed_view_t *client, const zfed_view_t *body, size_t body_count)
{
    size_t size = sizeof(request_t) + client->size;
    for (size_t index = 0; index < body_count; index++)
        size += body[index].size;
    return size;
}

static request_t *s_request_new(zfed_broker_t *self, const zfed_view_t *client,
                                const zfed_view_t *body, size_t body_count, service_t *service,
                                zfed_account_t *account)
{
    size_t charge = s_request_size(client, body, body_count);
    request_t *request = malloc(charge);
    if (!request)
        return NULL;
    zfed_link_init(&request->link);
    zfed_link_init(&request->age_link);
    request->id = ++self->next_request_id;
    request->service = service;
    request->worker = NULL;
    request->queue = NULL;
    request->account = zfed_account_ref(account);
    request->charge = charge;
    request->reserved = 0;
    zfed_account_charge(account, charge);
    zfed_account_count(account, 1);
    request->enqueued_ms = self->now_ms;
    request->attempts = 0;
    request->stamped = false;
    request->compact = false;
    request->ticket = 0;
    request->client_size = (uint8_t)client->size;
    request->body_count = (uint8_t)body_count;
    memcpy(request->data, client->data, client->size);
    uint8_t *cursor = request->data + client->size;
    for (size_t index = 0; index < body_count; index++) {
        request->body_size[index] = (uint32_t)body[index].size;
        memcpy(cursor, body[index].data, body[index].size);
        cursor += body[index].size;
    }
    return request;
}

static zfed_view_t s_request_client(const request_t *request)
{
    return (zfed_view_t){request->data, request->client_size};
}

static zfed_view_t s_request_body(const request_t *request, size_t index)
{
    const uint8_t *cursor = request->data + request->client_size;
    for (size_t before = 0; before < index; before++)
        cursor += request->body_size[before];
    return (zfed_view_t){cursor, request->body_size[index]};
}

static void s_queue_take(zfed_broker_t *self, request_t *request);

static void s_request_destroy(zfed_broker_t *self, request_t **request_p)
{
    request_t *request = *request_p;
    if (request->queue)
        s_queue_take(self, request);
    zfed_link_remove(&request->link);
    zfed_link_remove(&request->age_link);
    zfed_account_credit(request->account, request->charge + request->reserved);
    zfed_account_count(request->account, -1);
    zfed_account_release(&request->account);
    free(request);
    *request_p = NULL;
}

//  The reply's reservation goes back (it came, or its worker was lost).
static void s_unreserve(request_t *request)
{
    zfed_account_credit(request->account, request->reserved);
    request->reserved = 0;
}

static zfed_view_t s_text_view(const char *text)
{
    return (zfed_view_t){(const uint8_t *)text, strlen(text)};
}

//  After the client's routing id: the head of a reply in the form its
//  request came in, "" MDPC01 service [stamp] (PROTOCOL.md 2.1, 3.1) or
//  one compact client frame (3.3), stamped with identity when the request
//  had a ticket.
static void s_send_client_head(zfed_broker_t *self, zfed_view_t service, const ticket_t *ticket,
                               const char *identity)
{
    bool stamped = ticket && ticket->on;
    if (ticket && ticket->compact) {
        uint8_t head[ZFED_MDPC_COMPACT_MAX];
        zfed_view_t vouched = stamped ? s_text_view(identity) : (zfed_view_t){NULL, 0};
        size_t size = zfed_mdp_compact_client_write(head, ZFED_MDPW_REPLY, service,
                                                    stamped ? &ticket->value : NULL, vouched);
        //  The service was a valid name and identities are at most 64
        //  bytes, so the head always fits; should it not, the MDP/0.1
        //  head below, which a compact client takes too (PROTOCOL.md 3.3).
        if (size > 0) {
            s_send(self, head, size, ZMQ_SNDMORE);
            return;
        }
        zfed_error("cannot write a compact reply's head (service of %zu bytes, identity \"%s\"): "
                   "sent as MDP/0.1",
                   service.size, identity ? identity : "");
    }
    s_send(self, "", 0, ZMQ_SNDMORE);
    s_send(self, ZFED_MDPC_HEADER, ZFED_MDP_HEADER_SIZE, ZMQ_SNDMORE);
    s_send(self, service.data, service.size, ZMQ_SNDMORE);
    if (stamped) {
        uint8_t stamp[ZFED_STAMP_MAX];
        size_t size = zfed_stamp_write(stamp, ticket->value, identity);
        s_send(self, stamp, size, ZMQ_SNDMORE);
    }
}

//  Sends [client] "" MDPC01 service body (or its compact form); service
//  is echoed as the client gave it (the client matches replies on it).
//  The body is charged to the client's account (when known) until libzmq
//  has written it; a body its budget has no room for is not sent.  0 sent, -1 unroutable, 1
//  dropped for the budget (counted).
static int s_send_client_reply(zfed_broker_t *self, zfed_account_t *account,
                               const zfed_view_t *client, zfed_view_t service,
                               const ticket_t *ticket, const void *body, size_t body_size)
{
    size_t charge = body_size + ZFED_BUDGET_MESSAGE_OVERHEAD;
    if (account && !zfed_account_fits(account, charge)) {
        self->stats.replies_dropped++;
        return 1;
    }
    if (s_send(self, client->data, client->size, ZMQ_SNDMORE) != 0)
        return -1;
    //  Once the first part is accepted the rest cannot fail on routing.
    s_send_client_head(self, service, ticket, ZFED_STAMP_BROKER);
    if (account)
        zfed_account_send_copy(account, self->handle, body, body_size, charge, ZMQ_DONTWAIT);
    else
        s_send(self, body, body_size, 0);
    return 0;
}

//  The error body answering one task body.  It names the task when the
//  body's head reads as one (zfed_msg_peek_task: six values straight from
//  the bytes; params and the global value are never read), so the client
//  can match it; otherwise the ids are empty.  0, or -1 out of memory.
static int s_error_body(const zfed_view_t *task_body, uint32_t code, const char *text,
                        msgpack_sbuffer *out)
{
    char job_id[ZFED_JOB_ID_MAX + 1] = "";
    uint32_t round = 0, task_id = 0, attempt = 0;
    if (task_body && zfed_msg_peek_task(task_body->data, task_body->size, job_id, &round, &task_id,
                                        &attempt) != 0)
        job_id[0] = '\0';
    zfed_msg_t *error =
        zfed_msg_new_error(job_id, round, task_id, attempt, BROKER_NAME, code, "", text);
    int rc = error ? zfed_msg_encode(error, out) : -1;
    zfed_msg_destroy(&error);
    return rc;
}

//  A batch of errors, item i answering item i of the request's batch.
//  Each item is written as it is made, through one reusable buffer.
static int s_error_batch(zfed_broker_t *self, size_t count, uint32_t code, const char *text)
{
    int rc = zfed_batch_encode_begin(&self->scratch, count);
    for (size_t item = 0; item < count && rc == 0; item++) {
        msgpack_sbuffer_clear(&self->item_scratch);
        rc = s_error_body(&self->batch_items[item], code, text, &self->item_scratch);
        if (rc == 0)
            rc = zfed_batch_encode_item(&self->scratch, self->item_scratch.data,
                                        self->item_scratch.size);
    }
    return rc;
}

//  Answers a client with a zfed error; a batch request gets a batch of
//  errors, one per task, so every task of it is accounted for.  Built from
//  the ids alone: refusing costs little, which matters most exactly when
//  the broker refuses the most (queue full).
static void s_reply_error(zfed_broker_t *self, zfed_account_t *account, const zfed_view_t *client,
                          zfed_view_t service, const ticket_t *ticket,
                          const zfed_view_t *request_body, uint32_t code, const char *text)
{
    self->stats.failed++;
    size_t count = 0;
    if (request_body && zfed_batch_is(request_body->data, request_body->size) &&
        zfed_batch_decode(request_body->data, request_body->size, self->batch_items, ZFED_BATCH_MAX,
                          &count, NULL, 0) != 0)
        count = 0;
    int rc = count > 0 ? s_error_batch(self, count, code, text)
                       : s_error_body(request_body, code, text, &self->scratch);
    if (rc != 0) {
        zfed_error("could not build an error reply (out of memory)");
        return;
    }
    if (s_send_client_reply(self, account, client, service, ticket, self->scratch.data,
                            self->scratch.size) < 0)
        s_count_unroutable(self, "error reply");
}

static void s_request_fail(zfed_broker_t *self, request_t **request_p, uint32_t code,
                           const char *text)
{
    request_t *request = *request_p;
    zfed_view_t client = s_request_client(request);
    zfed_view_t body = s_request_body(request, 0);
    zfed_warn("request %" PRIu64 " for %s failed: %s", request->id, request->service->name, text);
    ticket_t ticket = {request->stamped, request->ticket, request->compact};
    s_reply_error(self, request->account, &client, s_text_view(request->service->name), &ticket,
                  &body, code, text);
    s_service_check(self, request->service);
    s_request_destroy(self, request_p);
}

//  ---------------------------------------------------------------------
//  Queues: one per client and service, taking turns

//  The service's address and the client's routing id, in hex ("%p/" and
//  s_identity_key), written by hand: this runs for every request.
static void s_queue_key(const service_t *service, const zfed_view_t *client, char *key)
{
    static const char digits[] = "0123456789abcdef";
    uintptr_t address = (uintptr_t)service;
    size_t used = 0;
    for (int shift = (int)(8 * sizeof address) - 4; shift >= 0; shift -= 4)
        key[used++] = digits[(address >> shift) & 0x0f];
    key[used++] = '/';
    s_identity_key(client->data, client->size, key + used);
}

//  The client's queue for the service, made if need be (NULL: no memory).
static queue_t *s_queue_of(zfed_broker_t *self, service_t *service, peer_t *peer)
{
    //  A client mostly sends to one service: its last queue, if still
    //  there (s_queue_free forgets it), spares making the key and the lookup.
    if (peer->last_queue && peer->last_queue->service == service)
        return peer->last_queue;
    if (peer->last_queue && peer->last_queue->count == 0)
        s_queue_free(self, &peer->last_queue); //  kept empty: no longer the last
    char key[QUEUE_KEY_SIZE];
    zfed_view_t client = {peer->identity, peer->identity_size};
    s_queue_key(service, &client, key);
    queue_t *queue = zhashx_lookup(self->queues, key);
    if (queue) {
        peer->last_queue = queue;
        return queue;
    }
    queue = calloc(1, sizeof *queue);
    if (!queue)
        return NULL;
    memcpy(queue->key, key, sizeof key);
    zfed_link_init(&queue->turn_link);
    zfed_link_init(&queue->peer_link);
    zfed_link_init(&queue->requests);
    queue->service = service;
    queue->peer = peer;
    zfed_list_push_back(&peer->queues, &queue->peer_link);
    zhashx_insert(self->queues, queue->key, queue);
    peer->last_queue = queue;
    return queue;
}

static void s_queue_free(zfed_broker_t *self, queue_t **queue_p)
{
    queue_t *queue = *queue_p;
    if (queue->peer->last_queue == queue)
        queue->peer->last_queue = NULL;
    zfed_link_remove(&queue->turn_link);
    zfed_link_remove(&queue->peer_link);
    zhashx_delete(self->queues, queue->key);
    free(queue);
    *queue_p = NULL;
}

//  Queues a request: at the back of its client's queue, or at the front
//  when it lost its worker; a queue that had nothing waiting joins the
//  turns at the back (at the front for a request that lost its worker,
//  which has waited longest).
static void s_queue_push(zfed_broker_t *self, queue_t *queue, request_t *request, bool front)
{
    if (front)
        zfed_list_push_front(&queue->requests, &request->link);
    else
        zfed_list_push_back(&queue->requests, &request->link);
    if (queue->count == 0) { //  new, or kept empty (out of its service's idle list)
        if (front)
            zfed_list_push_front(&queue->service->turns, &queue->turn_link);
        else
            zfed_list_push_back(&queue->service->turns, &queue->turn_link);
    }
    request->queue = queue;
    request->enqueued_ms = self->now_ms;
    zfed_list_push_back(&self->by_age, &request->age_link);
    queue->count++;
    queue->service->queued++;
    self->stats.queued++;
}

//  A queue left empty goes, unless it is its client's last one: that one
//  waits on its service's idle list (out of the turns) for the client's
//  next request, which would otherwise make and hash a queue again each
//  time workers keep up.  One per client at most (s_queue_of frees the one
//  it stops being), freed with its client or its service.
static void s_queue_empty(zfed_broker_t *self, queue_t *queue)
{
    if (queue->peer->last_queue != queue) {
        s_queue_free(self, &queue);
        return;
    }
    queue->parked = false;
    zfed_list_push_back(&queue->service->idle, &queue->turn_link);
}

//  Takes a queued request out of its queue (for a worker, or to fail it);
//  a queue left empty goes (s_queue_empty).
static void s_queue_take(zfed_broker_t *self, request_t *request)
{
    queue_t *queue = request->queue;
    zfed_link_remove(&request->link);
    zfed_link_remove(&request->age_link);
    request->queue = NULL;
    queue->count--;
    queue->service->queued--;
    self->stats.queued--;
    if (queue->count == 0)
        s_queue_empty(self, queue);
}

//  A client that is gone: its queued requests could never be answered.
static void s_queue_drop(zfed_broker_t *self, queue_t **queue_p)
{
    queue_t *queue = *queue_p;
    service_t *service = queue->service;
    if (queue->peer->last_queue == queue)
        queue->peer->last_queue = NULL; //  so that it goes with its last request
    zfed_link_t *link;
    while (queue && (link = zfed_list_first(&queue->requests)) != NULL) {
        request_t *request = zfed_container_of(link, request_t, link);
        bool last = queue->count == 1;
        s_request_destroy(self, &request); //  takes it out of the queue
        if (last)
            queue = NULL; //  freed with its last request
    }
    if (queue)
        s_queue_free(self, &queue);
    s_service_check(self, service);
    *queue_p = NULL;
}

//  ---------------------------------------------------------------------
//  Workers

static void s_worker_send_command(zfed_broker_t *self, worker_t *worker, uint8_t command)
{
    if (s_send(self, worker->identity, worker->identity_size, ZMQ_SNDMORE) != 0) {
        s_count_unroutable(self, zfed_mdp_command_name(command));
        return;
    }
    s_send(self, "", 0, ZMQ_SNDMORE);
    s_send(self, ZFED_MDPW_HEADER, ZFED_MDP_HEADER_SIZE, ZMQ_SNDMORE);
    s_send(self, &command, 1, 0);
    worker->last_sent_ms = self->now_ms;
}

//  DISCONNECT to a peer we hold no worker for (unknown or just removed).
static void s_send_disconnect_to(zfed_broker_t *self, const zfed_view_t *peer)
{
    uint8_t command = ZFED_MDPW_DISCONNECT;
    if (s_send(self, peer->data, peer->size, ZMQ_SNDMORE) != 0) {
        s_count_unroutable(self, "DISCONNECT");
        return;
    }
    s_send(self, "", 0, ZMQ_SNDMORE);
    s_send(self, ZFED_MDPW_HEADER, ZFED_MDP_HEADER_SIZE, ZMQ_SNDMORE);
    s_send(self, &command, 1, 0);
}

static void s_dispatch(zfed_broker_t *self, service_t *service);

//  A worker whose pipe held more than its byte budget is out of line
//  until libzmq has written half of it.
static bool s_worker_drained(const zfed_broker_t *self, const worker_t *worker)
{
    return zfed_account_bytes(worker->peer->account) <= self->config.max_bytes_per_peer / 2;
}

static void s_worker_touch(zfed_broker_t *self, worker_t *worker)
{
    worker->last_heard_ms = self->now_ms;
    worker->expiry_ms =
        worker->last_heard_ms + (int64_t)self->config.heartbeat_ms * self->config.liveness;
    zfed_list_push_back(&self->liveness, &worker->liveness_link);
    if (worker->congested && s_worker_drained(self, worker)) {
        worker->congested = false;
        if (worker->in_flight_count < worker->credit) {
            zfed_list_push_back(&worker->service->waiting, &worker->waiting_link);
            s_dispatch(self, worker->service);
        }
    }
}

//  Puts a request that lost its worker back at the head of its client's
//  queue, or fails it once it has used its attempts.  A request whose
//  client has gone is dropped: its answer could not be delivered.
static void s_request_requeue(zfed_broker_t *self, request_t *request)
{
    s_unreserve(request);
    request->worker = NULL;
    zfed_link_remove(&request->link);
    self->stats.in_flight--;
    request->service->in_flight--;
    if (request->attempts >= self->config.max_attempts) {
        char text[128];
        snprintf(text, sizeof text, "request lost its worker %u times; giving up",
                 request->attempts);
        s_request_fail(self, &request, ZFED_ERR_UNAVAILABLE, text);
        return;
    }
    zfed_view_t client = s_request_client(request);
    peer_t *peer = s_peer_lookup(self, &client);
    queue_t *queue = peer ? s_queue_of(self, request->service, peer) : NULL;
    if (!queue) {
        s_service_check(self, request->service);
        s_request_destroy(self, &request);
        return;
    }
    //  Its lifetime in the queue starts again: time spent at a worker that
    //  died is not waiting for a worker (it joins the age list as newest).
    s_queue_push(self, queue, request, true);
    self->stats.redispatched++;
}

//  Forgets a worker, optionally telling it so; what it held is re-queued
//  (at the head of its service's queue) but not dispatched: the caller
//  does that, so dropping many workers in a row never nests.
static void s_worker_forget(zfed_broker_t *self, worker_t **worker_p, bool send_disconnect)
{
    worker_t *worker = *worker_p;
    service_t *service = worker->service;
    if (send_disconnect)
        s_worker_send_command(self, worker, ZFED_MDPW_DISCONNECT);
    zfed_link_t *link;
    while ((link = zfed_list_first(&worker->in_flight)) != NULL)
        s_request_requeue(self, zfed_container_of(link, request_t, link));
    zfed_link_remove(&worker->waiting_link);
    zfed_link_remove(&worker->liveness_link);
    zhashx_delete(self->workers, worker->key);
    service->workers--;
    if (service->workers == 0)
        service->owner[0] = '\0';
    self->stats.workers--;
    s_service_check(self, service);
    if (worker->peer)
        worker->peer->worker = NULL;
    free(worker);
    *worker_p = NULL;
}

//  Forgets a worker and gives what it held to the others.
static void s_worker_delete(zfed_broker_t *self, worker_t **worker_p, bool send_disconnect)
{
    service_t *service = (*worker_p)->service;
    s_worker_forget(self, worker_p, send_disconnect);
    s_dispatch(self, service);
}

//  The worker registered under a routing id (the broker's own messages
//  reach it through its peer; CURVE's role check looks it up here).
static worker_t *s_worker_lookup(zfed_broker_t *self, const zfed_view_t *identity)
{
    char key[IDENTITY_KEY_SIZE];
    s_identity_key(identity->data, identity->size, key);
    return zhashx_lookup(self->workers, key);
}

//  ---------------------------------------------------------------------
//  Dispatch

//  The bytes a REQUEST of this request puts in the worker's pipe.
static size_t s_request_bytes(const request_t *request)
{
    size_t size = ZFED_BUDGET_MESSAGE_OVERHEAD;
    for (size_t index = 0; index < request->body_count; index++)
        size += request->body_size[index];
    return size;
}

//  The body frames go as counted copies: the request keeps its own bytes
//  for a re-dispatch, and what waits in the worker's pipe is charged to
//  the worker until libzmq has written it.
static int s_send_request(zfed_broker_t *self, worker_t *worker, request_t *request)
{
    uint8_t address[REQUEST_ID_SIZE];
    for (int index = 0; index < REQUEST_ID_SIZE; index++)
        address[index] = (uint8_t)(request->id >> (8 * (REQUEST_ID_SIZE - 1 - index)));
    uint8_t command = ZFED_MDPW_REQUEST;
    if (s_send(self, worker->identity, worker->identity_size, ZMQ_SNDMORE) != 0)
        return -1;
    if (worker->compact) {
        //  One frame for MDP's five (PROTOCOL.md 3.2).
        uint8_t head[ZFED_MDP_COMPACT_HEAD + REQUEST_ID_SIZE];
        size_t size = zfed_mdp_compact_write(head, command, address, sizeof address);
        s_send(self, head, size, ZMQ_SNDMORE);
    } else {
        s_send(self, "", 0, ZMQ_SNDMORE);
        s_send(self, ZFED_MDPW_HEADER, ZFED_MDP_HEADER_SIZE, ZMQ_SNDMORE);
        s_send(self, &command, 1, ZMQ_SNDMORE);
        s_send(self, address, sizeof address, ZMQ_SNDMORE);
        s_send(self, "", 0, ZMQ_SNDMORE);
    }
    for (size_t index = 0; index < request->body_count; index++) {
        zfed_view_t body = s_request_body(request, index);
        size_t charge = body.size + (index == 0 ? ZFED_BUDGET_MESSAGE_OVERHEAD : 0);
        int flags = (index + 1 < request->body_count ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT;
        zfed_account_send_copy(worker->peer->account, self->handle, body.data, body.size, charge,
                               flags);
    }
    worker->last_sent_ms = self->now_ms;
    return 0;
}

//  What a reply of this service is set aside: the largest it has sent, or
//  before it has sent any, the largest a message may be (so a burst of
//  requests to a new service, a model transfer's window, cannot all be
//  dispatched on a guess).
static size_t s_expected_reply(const zfed_broker_t *self, const service_t *service)
{
    size_t recent = service->reply_max > service->reply_max_before ? service->reply_max
                                                                   : service->reply_max_before;
    size_t expected =
        recent ? recent : (size_t)self->config.max_message + ZFED_BUDGET_MESSAGE_OVERHEAD;
    size_t budget = (size_t)self->config.max_bytes_per_peer;
    return expected < budget ? expected : budget;
}

//  A reply was forwarded: its size counts for the reservations to come.
static void s_note_reply_size(service_t *service, size_t bytes)
{
    if (bytes > service->reply_max)
        service->reply_max = bytes;
    if (++service->replies_in_epoch >= REPLY_SIZE_EPOCH) {
        service->reply_max_before = service->reply_max;
        service->reply_max = 0;
        service->replies_in_epoch = 0;
    }
}

//  Asks to be woken when the limit that refused a reply of that size (the
//  account's or the total's: only that one, the other has room and would
//  wake at once) could take it again.
static void s_wake_when_room(zfed_broker_t *self, zfed_account_t *account, size_t expected,
                             zfed_room_t room)
{
    if (room == ZFED_ROOM_ACCOUNT_FULL)
        zfed_account_wake_at(account,
                             zfed_ledger_max_per_account(self->ledger) - (int64_t)expected);
    else if (room == ZFED_ROOM_TOTAL_FULL)
        zfed_ledger_wake_at(self->ledger, zfed_ledger_max_total(self->ledger) - (int64_t)expected);
}

//  Holds a client's queue back: its budget has no room for another reply.
//  Its requests keep their place in it and their lifetime runs on.
static void s_queue_park(zfed_broker_t *self, queue_t *queue, size_t expected, zfed_room_t room)
{
    service_t *service = queue->service;
    zfed_list_push_back(&service->parked, &queue->turn_link);
    queue->parked = true;
    if (!zfed_link_linked(&service->parked_link))
        zfed_list_push_back(&self->parked, &service->parked_link);
    self->stats.held_back++;
    s_peer_watch(self, queue->peer, room);
    zfed_debug("client %s (%s): its byte budget holds %" PRId64 " bytes, no room for a %zu-byte "
               "reply; its queue waits",
               queue->peer->key, service->name, zfed_account_bytes(queue->peer->account), expected);
    s_wake_when_room(self, queue->peer->account, expected, room);
}

//  Bytes were freed: the queues whose client has room again go back to the
//  front of their service's turns (they have waited longest), and those
//  services dispatch.
static void s_unpark(zfed_broker_t *self)
{
    zfed_ledger_woken(self->ledger);
    zfed_link_t *link;
    zfed_link_t ready;
    zfed_link_init(&ready);
    while ((link = zfed_list_first(&self->parked)) != NULL) {
        service_t *service = zfed_container_of(link, service_t, parked_link);
        zfed_list_push_back(&ready, link);
        size_t expected = s_expected_reply(self, service);
        for (zfed_link_t *turn = service->parked.next, *next; turn != &service->parked;
             turn = next) {
            next = turn->next;
            queue_t *queue = zfed_container_of(turn, queue_t, turn_link);
            zfed_room_t room = zfed_account_room(queue->peer->account, expected);
            if (room != ZFED_ROOM_FITS) {
                s_peer_watch(self, queue->peer, room);
                s_wake_when_room(self, queue->peer->account, expected, room);
                continue;
            }
            queue->parked = false;
            zfed_list_push_front(&service->turns, turn);
        }
    }
    while ((link = zfed_list_first(&ready)) != NULL) {
        service_t *service = zfed_container_of(link, service_t, parked_link);
        zfed_link_remove(link);
        if (!zfed_list_empty(&service->parked))
            zfed_list_push_back(&self->parked, link);
        s_dispatch(self, service);
    }
}

//  Hands queued requests to waiting workers, clients taking turns: the
//  first queue in the service's turns gives its oldest request and goes
//  to the back.  A client whose byte budget has no room for the reply is
//  held back (s_queue_park); a worker whose budget has no room for the
//  request leaves the line until its pipe drains (s_worker_touch).
static void s_dispatch(zfed_broker_t *self, service_t *service)
{
    if (self->terminated)
        return; //  tearing down: nothing goes out any more
    zfed_link_t *turn, *worker_link;
    while ((turn = zfed_list_first(&service->turns)) != NULL &&
           (worker_link = zfed_list_first(&service->waiting)) != NULL) {
        queue_t *queue = zfed_container_of(turn, queue_t, turn_link);
        request_t *request = zfed_container_of(zfed_list_first(&queue->requests), request_t, link);
        worker_t *worker = zfed_container_of(worker_link, worker_t, waiting_link);
        size_t expected = s_expected_reply(self, service);
        zfed_room_t room = zfed_account_room(request->account, expected);
        if (room != ZFED_ROOM_FITS) {
            s_queue_park(self, queue, expected, room);
            continue;
        }
        zfed_room_t worker_room =
            zfed_account_room(worker->peer->account, s_request_bytes(request));
        if (worker_room != ZFED_ROOM_FITS) {
            s_peer_watch(self, worker->peer, worker_room);
            zfed_debug("worker %s (%s): its pipe holds %" PRId64 " bytes; out of line until it "
                       "drains",
                       worker->key, service->name, zfed_account_bytes(worker->peer->account));
            worker->congested = true;
            zfed_link_remove(&worker->waiting_link);
            continue;
        }
        if (s_send_request(self, worker, request) != 0) {
            //  The peer is gone (or its pipe is full): forget it rather
            //  than wait for its heartbeats to lapse, and try the next
            //  worker.  A loop, not a call back into s_dispatch: a line of
            //  100,000 dead workers must not be 100,000 stack frames.
            s_count_unroutable(self, "REQUEST");
            zfed_warn("worker %s (%s) unreachable; dropping it", worker->key, service->name);
            s_worker_forget(self, &worker, false);
            continue;
        }
        bool emptied = queue->count == 1;
        s_queue_take(self, request); //  frees the queue when it empties
        if (!emptied)
            zfed_list_push_back(&service->turns, turn); //  its turn is over
        zfed_account_charge(request->account, expected);
        request->reserved = expected;
        request->worker = worker;
        request->attempts++;
        zfed_list_push_back(&worker->in_flight, &request->link);
        if (worker->in_flight_count++ == 0)
            worker->busy_since_ms = worker->last_sent_ms;
        self->stats.in_flight++;
        service->in_flight++;
        self->stats.dispatched++;
        if (worker->in_flight_count >= worker->credit)
            zfed_link_remove(&worker->waiting_link);
        else //  spare credit: to the back, so workers take turns
            zfed_list_push_back(&service->waiting, &worker->waiting_link);
    }
}

//  ---------------------------------------------------------------------
//  Client side

static int s_pack_string(msgpack_packer *packer, const char *text)
{
    size_t length = strlen(text);
    return msgpack_pack_str(packer, length) || msgpack_pack_str_body(packer, text, length) ? -1 : 0;
}

static int s_pack_counter(msgpack_packer *packer, const char *name, uint64_t value)
{
    return s_pack_string(packer, name) || msgpack_pack_uint64(packer, value) ? -1 : 0;
}

//  mmi.status: a msgpack map of the broker's load and counters (see
//  schemas/PROTOCOL.md).  Walks services and their waiting lists: O(workers),
//  fine for an occasional query.
static int s_pack_status(zfed_broker_t *self, msgpack_sbuffer *buffer)
{
    msgpack_sbuffer_clear(buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    const zfed_broker_stats_t *stats = &self->stats;
    int rc = msgpack_pack_map(&packer, 7);
    rc |= s_pack_string(&packer, "version") | s_pack_string(&packer, ZFED_VERSION_STRING);
    //  What a client's start probe decides on (PROTOCOL.md 3.1): a zfed
    //  broker older than stamps answered a map too, without this key.
    rc |= s_pack_string(&packer, "stamps") | msgpack_pack_true(&packer);
    //  And whether it takes compact client frames (3.3).
    rc |= s_pack_string(&packer, "compact_clients") |
          (self->config.compact ? msgpack_pack_true(&packer) : msgpack_pack_false(&packer));
    rc |= s_pack_counter(&packer, "uptime_ms", (uint64_t)(zfed_clock_ms() - self->started_ms));
    rc |= s_pack_counter(&packer, "workers", stats->workers);
    rc |= s_pack_string(&packer, "services");
    rc |= msgpack_pack_map(&packer, zhashx_size(self->services));
    for (service_t *service = zhashx_first(self->services); service;
         service = zhashx_next(self->services)) {
        size_t idle = 0;
        for (zfed_link_t *link = service->waiting.next; link != &service->waiting;
             link = link->next)
            idle++;
        rc |= s_pack_string(&packer, service->name) | msgpack_pack_map(&packer, 4);
        rc |= s_pack_counter(&packer, "workers", service->workers);
        rc |= s_pack_counter(&packer, "idle", idle);
        rc |= s_pack_counter(&packer, "queued", service->queued);
        rc |= s_pack_counter(&packer, "in_flight", service->in_flight);
    }
    zfed_netmon_stats_t net = {0};
    if (self->netmon)
        zfed_netmon_stats(self->netmon, &net);
    zfed_auth_stats_t auth = {0};
    if (self->auth)
        zfed_auth_stats(self->auth, &auth);
    zfed_gate_stats_t gate = {0};
    if (self->gate)
        zfed_gate_stats(self->gate, &gate);
    rc |= s_pack_string(&packer, "counters") | msgpack_pack_map(&packer, 40);
    rc |= s_pack_counter(&packer, "requests", stats->requests);
    rc |= s_pack_counter(&packer, "dispatched", stats->dispatched);
    rc |= s_pack_counter(&packer, "replies", stats->replies);
    rc |= s_pack_counter(&packer, "redispatched", stats->redispatched);
    rc |= s_pack_counter(&packer, "failed", stats->failed);
    rc |= s_pack_counter(&packer, "expired", stats->expired);
    rc |= s_pack_counter(&packer, "rejected", stats->rejected);
    rc |= s_pack_counter(&packer, "malformed", stats->malformed);
    rc |= s_pack_counter(&packer, "unexpected", stats->unexpected);
    rc |= s_pack_counter(&packer, "stale_replies", stats->stale_replies);
    rc |= s_pack_counter(&packer, "unroutable", stats->unroutable);
    rc |= s_pack_counter(&packer, "mmi", stats->mmi);
    rc |= s_pack_counter(&packer, "workers_ready", stats->workers_ready);
    rc |= s_pack_counter(&packer, "workers_compact", stats->workers_compact);
    rc |= s_pack_counter(&packer, "compact_requests", stats->compact_requests);
    rc |= s_pack_counter(&packer, "workers_expired", stats->workers_expired);
    rc |= s_pack_counter(&packer, "workers_left", stats->workers_left);
    rc |= s_pack_counter(&packer, "queued", stats->queued);
    rc |= s_pack_counter(&packer, "connections_accepted", net.accepted);
    rc |= s_pack_counter(&packer, "connections_closed", net.closed);
    rc |= s_pack_counter(&packer, "handshakes_failed", net.handshake_failed);
    rc |= s_pack_counter(&packer, "auth_failed", net.auth_failed);
    rc |= s_pack_counter(&packer, "auth_accepted", auth.accepted);
    rc |= s_pack_counter(&packer, "auth_refused", auth.refused);
    rc |= s_pack_counter(&packer, "forbidden", stats->forbidden);
    rc |= s_pack_counter(&packer, "quota_refused", stats->quota_refused);
    rc |= s_pack_counter(&packer, "budget_refused", stats->budget_refused);
    rc |= s_pack_counter(&packer, "ready_refused", stats->ready_refused);
    rc |= s_pack_counter(&packer, "replies_dropped", stats->replies_dropped);
    rc |= s_pack_counter(&packer, "held_back", stats->held_back);
    rc |= s_pack_counter(&packer, "services_evicted", stats->services_evicted);
    rc |= s_pack_counter(&packer, "revoked", stats->revoked);
    rc |= s_pack_counter(&packer, "stalled_cut", stats->stalled_cut);
    rc |= s_pack_counter(&packer, "peers", stats->peers);
    rc |= s_pack_counter(&packer, "bytes_held", (uint64_t)zfed_ledger_bytes(self->ledger));
    rc |= s_pack_counter(&packer, "bytes_peak", (uint64_t)zfed_ledger_peak(self->ledger));
    rc |= s_pack_counter(&packer, "connections_open", gate.open);
    rc |= s_pack_counter(&packer, "connections_refused", gate.refused);
    rc |= s_pack_counter(&packer, "accept_failed", net.accept_failed);
    rc |= s_pack_counter(&packer, "accept_closes", gate.closes);
    return rc == 0 ? 0 : -1;
}

//  8/MMI: answered by the broker itself.
static void s_client_mmi(zfed_broker_t *self, peer_t *peer, const zfed_view_t *client,
                         const zfed_mdp_t *mdp, const zfed_view_t *frames, const ticket_t *ticket)
{
    char service[ZFED_MDP_SERVICE_MAX + 1];
    memcpy(service, mdp->service.data, mdp->service.size);
    service[mdp->service.size] = '\0';
    const char *answer = ZFED_MMI_NOT_IMPLEMENTED;
    size_t answer_size = 0;
    if (strcmp(service, ZFED_MMI_STATUS) == 0 && s_pack_status(self, &self->scratch) == 0) {
        answer = self->scratch.data;
        answer_size = self->scratch.size;
    } else if (strcmp(service, ZFED_MMI_SERVICE) == 0) {
        const zfed_view_t *asked = &frames[mdp->body_index];
        service_t *found = NULL;
        if (zfed_mdp_service_valid(*asked))
            found = s_service_lookup(self, *asked);
        answer = found && found->workers > 0 ? ZFED_MMI_FOUND : ZFED_MMI_NOT_FOUND;
    }
    self->stats.mmi++;
    if (answer_size == 0)
        answer_size = strlen(answer);
    if (s_send_client_reply(self, peer->account, client, mdp->service, ticket, answer,
                            answer_size) < 0)
        s_count_unroutable(self, "MMI reply");
}

//  Refuses a request with 429: counted in rejected and in the counter of
//  the limit that refused it.
static void s_refuse_request(zfed_broker_t *self, peer_t *peer, const zfed_mdp_t *mdp,
                             const ticket_t *ticket, const zfed_view_t *body, uint64_t *counter,
                             const char *text)
{
    self->stats.rejected++;
    if (counter)
        (*counter)++;
    s_warn_peer(self, &self->frames.view[0], "request refused", text);
    s_reply_error(self, peer->account, &self->frames.view[0], mdp->service, ticket, body,
                  ZFED_ERR_OVERLOADED, text);
}

//  A request whose first body frame is a ticket (PROTOCOL.md 3.1): the
//  ticket comes off, and the request is the frames after it.  0, or -1
//  when the ticket is all there is (answered 400).  A compact request's
//  ticket is in its head (3.3): its body frames are all body.
static int s_take_ticket(zfed_broker_t *self, peer_t *peer, zfed_mdp_t *mdp, ticket_t *ticket)
{
    ticket->compact = mdp->compact;
    if (mdp->compact) {
        ticket->on = mdp->ticketed;
        ticket->value = mdp->ticket;
        return 0;
    }
    const zfed_view_t *first = &self->frames.view[1 + mdp->body_index];
    ticket->on = zfed_ticket_read(*first, &ticket->value);
    if (!ticket->on)
        return 0;
    if (mdp->body_count < 2) {
        const char *text = "invalid request: a ticket frame and no body";
        self->stats.malformed++;
        s_warn_peer(self, &self->frames.view[0], "request refused", text);
        s_reply_error(self, peer->account, &self->frames.view[0], mdp->service, ticket, NULL,
                      ZFED_ERR_MALFORMED, text);
        return -1;
    }
    mdp->body_index++;
    mdp->body_count--;
    return 0;
}

static void s_client_request(zfed_broker_t *self, peer_t *peer, const zfed_mdp_t *asked)
{
    //  frames[0] is the sender; MDP frames start at 1.
    zfed_frames_t *frames = &self->frames;
    const zfed_view_t *client = &frames->view[0];
    const zfed_view_t *mdp_frames = &frames->view[1];
    //  The ticket comes off first, an MMI question's too: its answer is
    //  stamped like any other (PROTOCOL.md 3.1, 5).
    zfed_mdp_t stripped = *asked;
    const zfed_mdp_t *mdp = &stripped;
    ticket_t ticket_value;
    const ticket_t *ticket = &ticket_value;
    if (s_take_ticket(self, peer, &stripped, &ticket_value) != 0)
        return;
    if (zfed_mdp_is_mmi(mdp->service)) {
        s_client_mmi(self, peer, client, mdp, mdp_frames, ticket);
        return;
    }
    const zfed_view_t *body = &mdp_frames[mdp->body_index];
    if (mdp->body_count > ZFED_BROKER_MAX_BODY_FRAMES) {
        //  However many: frames past ZFED_FRAMES_MAX were counted, not kept.
        char text[96];
        snprintf(text, sizeof text, "too many body frames: %zu, the broker forwards at most %d",
                 mdp->body_count, ZFED_BROKER_MAX_BODY_FRAMES);
        self->stats.malformed++;
        s_warn_peer(self, client, "request refused", text);
        s_reply_error(self, peer->account, client, mdp->service, ticket, body, ZFED_ERR_TOO_LARGE,
                      text);
        return;
    }
    //  Each limit below refuses the sender only: what the others have
    //  queued never counts against it, and its own never against them.
    if (self->stats.queued >= self->config.max_queue) {
        s_refuse_request(self, peer, mdp, ticket, body, NULL, "broker queue is full; retry later");
        return;
    }
    char text[160];
    if (zfed_account_items(peer->account) >= self->config.max_queued_per_client) {
        snprintf(text, sizeof text,
                 "this client has %zu requests in the broker, its limit "
                 "(--max-queued-per-client); retry when some are answered",
                 zfed_account_items(peer->account));
        s_refuse_request(self, peer, mdp, ticket, body, &self->stats.quota_refused, text);
        return;
    }
    size_t size = s_request_size(client, &frames->view[1 + mdp->body_index], mdp->body_count);
    zfed_room_t room = zfed_account_room(peer->account, size);
    if (room != ZFED_ROOM_FITS) {
        s_peer_watch(self, peer, room);
        snprintf(text, sizeof text,
                 "the broker holds %" PRId64 " bytes for this client and %" PRId64
                 " in all: over its byte budget (--max-bytes-per-peer, --max-bytes); retry later",
                 zfed_account_bytes(peer->account), zfed_ledger_bytes(self->ledger));
        s_refuse_request(self, peer, mdp, ticket, body, &self->stats.budget_refused, text);
        return;
    }
    //  The service of the client's last queue, when it names that one,
    //  spares copying the name and hashing it (s_queue_of then finds the
    //  queue at once too).
    service_t *service = peer->last_queue ? peer->last_queue->service : NULL;
    if (!service || service->name_size != mdp->service.size ||
        memcmp(service->name, mdp->service.data, mdp->service.size) != 0)
        service = s_service_require(self, mdp->service, false);
    queue_t *queue = service ? s_queue_of(self, service, peer) : NULL;
    if (!queue) {
        s_refuse_request(self, peer, mdp, ticket, body, NULL,
                         service ? "out of memory" : "broker has reached its limit of services");
        if (service)
            s_service_check(self, service);
        return;
    }
    //  Frame 0 of frames->view is the sender, MDP frame i is view i + 1.
    request_t *request = s_request_new(self, &frames->view[0], &frames->view[1 + mdp->body_index],
                                       mdp->body_count, service, peer->account);
    if (!request) {
        zfed_error("out of memory queuing a request");
        self->stats.rejected++;
        if (queue->count == 0)
            s_queue_free(self, &queue);
        s_service_check(self, service);
        return;
    }
    request->stamped = ticket->on;
    request->compact = ticket->compact;
    request->ticket = ticket->value;
    s_queue_push(self, queue, request, false);
    self->stats.requests++;
    s_dispatch(self, service);
}

//  ---------------------------------------------------------------------
//  Worker side

//  The slot of a service no worker ever served, taken by a READY: its
//  requests fail (nobody was going to answer them).
static void s_service_evict(zfed_broker_t *self, service_t *service)
{
    char text[128 + ZFED_MDP_SERVICE_MAX];
    snprintf(text, sizeof text,
             "no worker ever registered for service %s and the broker needed its slot "
             "(--max-services)",
             service->name);
    zfed_warn("evicting service %s (%zu requests, no worker ever) for a worker's READY",
              service->name, service->queued);
    self->stats.services_evicted++;
    zfed_link_t *turn;
    while ((turn = zfed_list_first(&service->turns)) != NULL ||
           (turn = zfed_list_first(&service->parked)) != NULL) {
        queue_t *queue = zfed_container_of(turn, queue_t, turn_link);
        request_t *request = zfed_container_of(zfed_list_first(&queue->requests), request_t, link);
        s_queue_take(self, request);
        s_request_fail(self, &request, ZFED_ERR_UNAVAILABLE, text);
    }
    s_service_destroy(self, &service);
}

static void s_worker_ready(zfed_broker_t *self, peer_t *sender, const zfed_mdp_t *mdp)
{
    const zfed_view_t *peer = &self->frames.view[0];
    if (++sender->readies > self->config.max_ready_per_connection) {
        //  Registering again and again on one connection is no worker's
        //  way (after DISCONNECT a worker opens a new one): nothing more
        //  is made for it.
        self->stats.rejected++;
        self->stats.ready_refused++;
        s_warn_peer(self, peer, "READY refused",
                    "too many READYs on one connection (--max-ready-per-connection)");
        s_send_disconnect_to(self, peer);
        return;
    }
    worker_t *worker = sender->worker;
    if (worker) {
        self->stats.unexpected++;
        s_warn_peer(self, peer, "second READY", "disconnecting the worker");
        s_worker_delete(self, &worker, true);
        return;
    }
    if (zfed_mdp_is_mmi(mdp->service)) {
        self->stats.unexpected++;
        s_warn_peer(self, peer, "READY refused", "mmi.* services belong to the broker");
        s_send_disconnect_to(self, peer);
        return;
    }
    if (self->stats.workers >= self->config.max_workers) {
        self->stats.rejected++;
        s_warn_peer(self, peer, "READY refused", "broker has reached its limit of workers");
        s_send_disconnect_to(self, peer);
        return;
    }
    service_t *service = s_service_require(self, mdp->service, true);
    worker = service ? calloc(1, sizeof *worker) : NULL;
    if (!worker) {
        self->stats.rejected++;
        s_warn_peer(self, peer, "READY refused", service ? "out of memory" : "too many services");
        s_send_disconnect_to(self, peer);
        if (service)
            s_service_check(self, service);
        return;
    }
    memcpy(worker->identity, peer->data, peer->size);
    worker->identity_size = peer->size;
    s_identity_key(peer->data, peer->size, worker->key);
    worker->service = service;
    worker->peer = sender;
    sender->worker = worker;
    service->registered = true;
    zfed_link_remove(&service->pending_link);
    zfed_mdp_offer_t offer = zfed_mdp_ready_offer(mdp->extension, ZFED_BROKER_MAX_CREDIT);
    worker->credit = offer.credit;
    worker->compact = offer.compact && self->config.compact;
    //  Credit is a zfed extension, and zfed workers heartbeat from their
    //  I/O thread while tasks compute; a plain MDP worker has to show it.
    worker->beats_while_busy = worker->credit > 1;
    zfed_link_init(&worker->waiting_link);
    zfed_link_init(&worker->liveness_link);
    zfed_link_init(&worker->in_flight);
    zhashx_insert(self->workers, worker->key, worker);
    if (service->workers == 0 && self->auth)
        memcpy(service->owner, self->sender_key, sizeof service->owner);
    service->workers++;
    self->stats.workers++;
    self->stats.workers_ready++;
    self->stats.workers_compact += worker->compact;
    s_worker_touch(self, worker);
    zfed_list_push_back(&service->waiting, &worker->waiting_link);
    zfed_info("worker %s ready for %s (credit %zu, %s; %zu workers on it)", worker->key,
              service->name, worker->credit,
              worker->compact ? "compact frames"
              : offer.compact ? "MDP/0.1: compact refused"
                              : "MDP/0.1",
              service->workers);
    s_dispatch(self, service);
}

//  What forwarding a reply puts in the client's pipe.
static size_t s_reply_bytes(const zfed_frames_t *frames, const zfed_mdp_t *mdp)
{
    size_t size = ZFED_BUDGET_MESSAGE_OVERHEAD;
    for (size_t index = 0; index < mdp->body_count; index++)
        size += frames->view[1 + mdp->body_index + index].size;
    return size;
}

static void s_drop_reply(zfed_broker_t *self, request_t *request)
{
    self->stats.replies_dropped++;
    zfed_view_t client = s_request_client(request);
    char text[192];
    snprintf(text, sizeof text,
             "reply dropped: the broker holds %" PRId64 " bytes for this client, its byte "
             "budget (--max-bytes-per-peer) or the broker's (--max-bytes) is full; read "
             "faster or retry",
             zfed_account_bytes(request->account));
    s_warn_peer(self, &client, "reply dropped", text);
    zfed_view_t body = s_request_body(request, 0);
    //  Counted as dropped already; not again if the answer does not fit.
    uint64_t dropped = self->stats.replies_dropped;
    ticket_t ticket = {request->stamped, request->ticket, request->compact};
    s_reply_error(self, request->account, &client, s_text_view(request->service->name), &ticket,
                  &body, ZFED_ERR_UNAVAILABLE, text);
    self->stats.replies_dropped = dropped;
}

//  The identity a worker's reply is stamped with (PROTOCOL.md 3.1): the
//  CURVE key of the connection the reply came on (read from the reply
//  itself, not from the record of its routing id), or in plaintext the
//  number of that connection (unique while the broker runs).  Written to
//  buffer when it has to be; the result lives as long as buffer and worker.
static const char *s_stamp_identity(zfed_broker_t *self, const worker_t *worker,
                                    char buffer[ZFED_STAMP_IDENTITY_MAX + 1])
{
    char key[ZFED_AUTH_KEY_SIZE] = "";
    if (self->auth && self->frames.count >= 2)
        zfed_auth_key(&self->frames.part[1], key);
    if (!key[0])
        return worker->peer->stamp_id;
    snprintf(buffer, ZFED_STAMP_IDENTITY_MAX + 1, ZFED_STAMP_CURVE "%s", key);
    return buffer;
}

static void s_worker_reply(zfed_broker_t *self, worker_t *worker, const zfed_mdp_t *mdp)
{
    zfed_frames_t *frames = &self->frames;
    const zfed_view_t *peer = &frames->view[0];
    request_t *request = NULL;
    if (mdp->address.size == REQUEST_ID_SIZE) {
        uint64_t id = 0;
        for (int index = 0; index < REQUEST_ID_SIZE; index++)
            id = (id << 8) | mdp->address.data[index];
        //  Linear in the worker's credit (1 for plain MDP, a few dozen at most).
        for (zfed_link_t *link = worker->in_flight.next; link != &worker->in_flight;
             link = link->next) {
            request_t *candidate = zfed_container_of(link, request_t, link);
            if (candidate->id == id) {
                request = candidate;
                break;
            }
        }
    }
    if (!request) {
        self->stats.stale_replies++;
        s_warn_peer(self, peer, "reply dropped", "worker holds no such request; disconnecting it");
        s_worker_delete(self, &worker, true);
        return;
    }
    service_t *service = request->service;
    zfed_view_t client = s_request_client(request);
    //  Its room was set aside at dispatch: given back, then taken by what
    //  came (the next dispatches set aside as much as the largest recent
    //  one forwarded: a reply refused or dropped sizes nothing).  Frames
    //  past ZFED_FRAMES_MAX were counted, not kept.
    s_unreserve(request);
    zfed_room_t room = ZFED_ROOM_FITS;
    bool forwardable = mdp->body_count <= ZFED_BROKER_MAX_BODY_FRAMES;
    size_t reply_bytes = forwardable ? s_reply_bytes(frames, mdp) : 0;
    if (!forwardable) {
        //  Valid MDP, but more than the broker forwards: the client hears
        //  why (413) instead of waiting, and the worker, which broke no
        //  rule of RFC 7, keeps its registration and gets its slot back.
        char text[128];
        snprintf(text, sizeof text,
                 "the worker's reply has %zu body frames; the broker forwards at most %d",
                 mdp->body_count, ZFED_BROKER_MAX_BODY_FRAMES);
        self->stats.malformed++;
        s_warn_peer(self, peer, "reply refused", text);
        request->worker = NULL;
        s_request_fail(self, &request, ZFED_ERR_TOO_LARGE, text);
    } else if ((room = zfed_account_room(request->account, reply_bytes)) != ZFED_ROOM_FITS) {
        //  The client's byte budget is full (it does not read, or not
        //  fast enough): this reply is dropped, and the client told so
        //  when even that small answer fits.  Nobody else's replies wait.
        s_peer_watch(self, s_peer_lookup(self, &client), room);
        s_drop_reply(self, request);
    } else if (s_send(self, client.data, client.size, ZMQ_SNDMORE) == 0) {
        //  Forward: [client] "" MDPC01 service [stamp] body..., or the
        //  compact client frame and the body when the request came so.
        char buffer[ZFED_STAMP_IDENTITY_MAX + 1];
        ticket_t ticket = {request->stamped, request->ticket, request->compact};
        s_send_client_head(self, (zfed_view_t){(const uint8_t *)service->name, service->name_size},
                           &ticket,
                           request->stamped ? s_stamp_identity(self, worker, buffer) : NULL);
        //  frames->part[i + 1] holds MDP frame i.  A small body is sent as a
        //  copy: moving it would keep the worker connection's whole 8 KB
        //  receive buffer alive until the client reads it, which under a
        //  backlog costs far more memory than the copy costs time.  Either
        //  way the bytes count to the client until libzmq has written them.
        for (size_t index = 0; index < mdp->body_count; index++) {
            int flags = (index + 1 < mdp->body_count ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT;
            size_t part = 1 + mdp->body_index + index;
            const zfed_view_t *body = &frames->view[part];
            size_t charge = body->size + (index == 0 ? ZFED_BUDGET_MESSAGE_OVERHEAD : 0);
            if (body->size <= COMPACT_BODY_MAX)
                zfed_account_send_copy(request->account, self->handle, body->data, body->size,
                                       charge, flags);
            else
                zfed_account_send_frame(request->account, self->handle, &frames->part[part], charge,
                                        flags);
        }
        self->stats.replies++;
        s_note_reply_size(service, reply_bytes);
    } else
        s_count_unroutable(self, "reply to client");
    if (request) {
        request->worker = NULL;
        s_request_destroy(self, &request);
    }
    self->stats.in_flight--;
    service->in_flight--;
    worker->in_flight_count--;
    if (!zfed_link_linked(&worker->waiting_link) && !worker->congested)
        zfed_list_push_back(&service->waiting, &worker->waiting_link);
    s_dispatch(self, service);
}

static void s_worker_command(zfed_broker_t *self, peer_t *sender, const zfed_mdp_t *mdp)
{
    const zfed_view_t *peer = &self->frames.view[0];
    if (mdp->command == ZFED_MDP_READY) {
        s_worker_ready(self, sender, mdp);
        return;
    }
    worker_t *worker = sender->worker;
    if (!worker) {
        //  A worker we do not know (we restarted, or expired it): tell it
        //  to start over, which makes it re-register.
        if (mdp->command != ZFED_MDP_DISCONNECT) {
            self->stats.unexpected++;
            if (mdp->command == ZFED_MDP_REPLY)
                self->stats.stale_replies++;
            zfed_debug("%s from unknown worker: sending DISCONNECT",
                       zfed_mdp_command_name(mdp->command));
            s_send_disconnect_to(self, peer);
        }
        return;
    }
    //  Any command but DISCONNECT is a sign of life.
    if (mdp->command != ZFED_MDP_DISCONNECT)
        s_worker_touch(self, worker);
    switch (mdp->command) {
    case ZFED_MDP_REPLY:
        s_worker_reply(self, worker, mdp);
        break;
    case ZFED_MDP_HEARTBEAT:
        if (!worker->beats_while_busy && worker->in_flight_count > 0 &&
            self->now_ms - worker->busy_since_ms >=
                self->config.heartbeat_ms / BUSY_HEARTBEAT_DIVISOR) {
            worker->beats_while_busy = true;
            zfed_info("worker %s (%s) heartbeats while it works: %d silent heartbeats expire it, "
                      "busy or not",
                      worker->key, worker->service->name, self->config.liveness);
        }
        break;
    case ZFED_MDP_DISCONNECT:
        zfed_info("worker %s (%s) disconnected; re-queuing %zu requests", worker->key,
                  worker->service->name, worker->in_flight_count);
        self->stats.workers_left++;
        s_worker_delete(self, &worker, false);
        break;
    default: //  REQUEST is for workers, not from them
        self->stats.unexpected++;
        s_warn_peer(self, peer, "unexpected command", "disconnecting the worker");
        s_worker_delete(self, &worker, true);
        break;
    }
}

//  CURVE: may a READY for a blob service pass?  Not when another key
//  holds that service, nor, for a worker key (one a controller does not
//  share), past its limit of blob services (a worker process has one).
static bool s_blob_ready_allowed(zfed_broker_t *self, const zfed_mdp_t *mdp, unsigned roles,
                                 const char **why)
{
    service_t *service = s_service_lookup(self, mdp->service);
    if (service && service->workers > 0 && strcmp(service->owner, self->sender_key) != 0) {
        *why = "register a blob service another key holds";
        return false;
    }
    size_t limit = self->config.max_blob_services_per_key;
    if (roles & ZFED_ROLE_CONTROLLER || limit == 0)
        return true;
    size_t owned = 0;
    for (service_t *other = zhashx_first(self->services); other;
         other = zhashx_next(self->services))
        owned += other != service && other->blob && other->workers > 0 &&
                 strcmp(other->owner, self->sender_key) == 0;
    if (owned >= limit) {
        *why = "register another blob service (a worker key's limit, "
               "--blob-services-per-worker-key)";
        return false;
    }
    return true;
}

//  CURVE: may this peer's key do what the message asks?  Workers speak
//  MDPW01; controllers send requests; both may ask 8/MMI questions.
//  Blob traffic (MODELS.md 7) crosses the roles: a worker key may send
//  requests to zfed.blob.* services (to fetch a global model) and register
//  one of its own (to hold its results); a controller key may register
//  zfed.blob.* services (to publish a global) and speak MDPW01 on them.  A
//  message its role does not allow is logged and counted.
static bool s_role_allows(zfed_broker_t *self, const zfed_mdp_t *mdp)
{
    zfed_frames_t *frames = &self->frames;
    char key[9] = "";
    //  Metadata rides on the frames the peer sent (part 1 on), not on the
    //  routing id the ROUTER prepends.
    unsigned roles = zfed_auth_roles(&frames->part[1], key);
    zfed_auth_key(&frames->part[1], self->sender_key);
    bool client = mdp->origin == ZFED_MDP_ORIGIN_CLIENT;
    bool blob = (client || mdp->command == ZFED_MDP_READY) &&
                zfed_blob_service_valid((const char *)mdp->service.data, mdp->service.size);
    const char *why =
        client ? "submit requests (not a controller key)" : "act as a worker (not a worker key)";
    bool allowed;
    if (client)
        allowed =
            roles & (zfed_mdp_is_mmi(mdp->service) || blob ? ZFED_ROLE_WORKER | ZFED_ROLE_CONTROLLER
                                                           : ZFED_ROLE_CONTROLLER);
    else if (blob)
        allowed = roles & (ZFED_ROLE_WORKER | ZFED_ROLE_CONTROLLER) &&
                  s_blob_ready_allowed(self, mdp, roles, &why);
    else if (roles & ZFED_ROLE_WORKER)
        allowed = true;
    else {
        //  A controller key's blob service: its heartbeats, replies and
        //  goodbye, on the connection that registered it.
        worker_t *worker = s_worker_lookup(self, &frames->view[0]);
        allowed = roles & ZFED_ROLE_CONTROLLER && mdp->command != ZFED_MDP_READY &&
                  (mdp->command == ZFED_MDP_DISCONNECT || (worker && worker->service->blob));
    }
    if (allowed)
        return true;
    self->stats.forbidden++;
    char reason[160];
    snprintf(reason, sizeof reason, "key %s... may not %s", key[0] ? key : "(none)", why);
    s_warn_peer(self, &frames->view[0], "message refused", reason);
    return false;
}

//  A peer whose key the handshake accepted, but whose role does not allow
//  what it sent, is told so, or it would wait in silence and never know
//  its key sits in the wrong directory: a request gets a 403 error, a
//  READY a DISCONNECT.
static void s_tell_forbidden(zfed_broker_t *self, const zfed_mdp_t *mdp)
{
    const zfed_view_t *peer = &self->frames.view[0];
    if (mdp->command == ZFED_MDP_CLIENT) {
        const zfed_view_t *body =
            mdp->body_count >= 1 ? &self->frames.view[1 + mdp->body_index] : NULL;
        ticket_t ticket = {mdp->ticketed, mdp->ticket, mdp->compact};
        if (!mdp->compact && body && zfed_ticket_read(*body, &ticket.value)) {
            ticket.on = true;
            body = mdp->body_count >= 2 ? body + 1 : NULL;
        }
        s_reply_error(self, NULL, peer, mdp->service, &ticket, body, ZFED_ERR_FORBIDDEN,
                      "forbidden: this key may not submit requests (it is not in the broker's "
                      "--controllers-dir)");
    } else if (mdp->command == ZFED_MDP_READY)
        s_send_disconnect_to(self, peer);
}

//  A message that breaks the envelope rules gets the answer its header
//  allows, never silence: a worker (MDPW01) is treated as invalid as RFC 7
//  says, forgotten and sent DISCONNECT; a client (MDPC01) with a service
//  frame to answer under gets error 400 naming what was wrong.  Only a
//  message with no MDP header at all is just dropped (logged, counted).
static void s_refuse_invalid(zfed_broker_t *self, peer_t *sender, const zfed_mdp_t *mdp,
                             const char *reason)
{
    zfed_frames_t *frames = &self->frames;
    const zfed_view_t *peer = &frames->view[0];
    self->stats.malformed++;
    //  Routing id, "", header, service: the MDP frames start at view 1.
    bool has_service = frames->count > 3;
    if (mdp->origin == ZFED_MDP_ORIGIN_WORKER) {
        s_warn_peer(self, peer, "invalid MDPW01 message, disconnecting its sender", reason);
        if (sender->worker)
            s_worker_delete(self, &sender->worker, true);
        else
            s_send_disconnect_to(self, peer);
    } else if (mdp->origin == ZFED_MDP_ORIGIN_CLIENT && has_service) {
        char text[160];
        snprintf(text, sizeof text, "invalid request: %s", reason);
        s_warn_peer(self, peer, "request refused", reason);
        s_reply_error(self, sender->account, peer, mdp->service, NULL,
                      frames->count > 4 ? &frames->view[4] : NULL, ZFED_ERR_MALFORMED, text);
    } else
        s_warn_peer(self, peer, "message dropped", reason);
}

//  ---------------------------------------------------------------------
//  Revocation (CURVE)

//  Cuts a peer whose key lost a role it was authenticated with: its
//  connection is shut (libzmq closes it, the peer sees it go and, on
//  reconnecting, is judged by the folders as they are now), its worker
//  registration and queued requests go, and anything more it sends before
//  the connection is gone is refused.
static void s_peer_revoke(zfed_broker_t *self, peer_t *peer, unsigned roles_now)
{
    if (peer->revoked)
        return;
    peer->revoked = true;
    self->stats.revoked++;
    const char *address =
        self->netmon && peer->fd >= 0 ? zfed_netmon_address(self->netmon, peer->fd) : NULL;
    zfed_warn("key %.8s... revoked (roles %s%s, now %s%s%s): cutting its connection from %s",
              peer->curve, peer->roles & ZFED_ROLE_WORKER ? "w" : "",
              peer->roles & ZFED_ROLE_CONTROLLER ? "c" : "",
              roles_now & ZFED_ROLE_WORKER ? "w" : "", roles_now & ZFED_ROLE_CONTROLLER ? "c" : "",
              roles_now ? "" : "none", address ? address : peer->key);
    if (peer->worker)
        s_worker_delete(self, &peer->worker, false);
    s_peer_drop_queues(self, peer);
    s_peer_shut(self, peer);
}

//  True when the peer may still be heard: under CURVE its key must still
//  hold every role its handshake gave it (checked again whenever the key
//  folders have changed since this peer's last check).
static bool s_peer_admit(zfed_broker_t *self, peer_t *peer)
{
    if (!peer->revoked && self->auth && peer->curve[0]) {
        uint64_t generation = zfed_auth_generation(self->auth);
        if (peer->generation != generation) {
            peer->generation = generation;
            unsigned now = zfed_auth_key_roles(self->auth, peer->curve);
            if (peer->roles & ~now)
                s_peer_revoke(self, peer, now);
        }
    }
    if (!peer->revoked)
        return true;
    self->stats.forbidden++;
    return false;
}

//  The key folders changed: every connected key is checked now, so a
//  revoked one is cut whether or not it sends anything.
static void s_keys_changed(zfed_broker_t *self)
{
    zfed_auth_changed(self->auth);
    zlistx_t *all = zhashx_values(self->peers);
    for (peer_t *peer = all ? zlistx_first(all) : NULL; peer; peer = zlistx_next(all))
        s_peer_admit(self, peer);
    zlistx_destroy(&all);
    s_reclaim(self);
}

static void s_handle_from(zfed_broker_t *self, peer_t *peer)
{
    zfed_frames_t *frames = &self->frames;
    zfed_mdp_t mdp;
    const char *reason = NULL;
    //  A compact REPLY (PROTOCOL.md 3.2) only from a worker we accepted
    //  them from; from a worker we did not, it is an invalid MDPW01
    //  message.  From no worker at all (we restarted, or expired it) it is
    //  a late reply, answered as an MDP one: DISCONNECT, stale_replies.
    //  A compact client request (PROTOCOL.md 3.3) only when compact frames
    //  are on: a broker with them off judges it by the MDP rules (frame 0
    //  not empty, no MDP header: dropped).  A broken one is dropped too:
    //  its head is what would address the answer.
    int rc;
    if (frames->count > 1 && zfed_mdp_is_compact(frames->view[1])) {
        rc = zfed_mdp_parse_compact(&frames->view[1], frames->count - 1, ZFED_MDPW_REPLY, &mdp,
                                    &reason);
        if (rc == 0 && peer->worker && !peer->worker->compact) {
            reason = "a compact frame from a worker that did not agree on them in READY";
            rc = -1;
        }
    } else if (frames->count > 1 && self->config.compact &&
               zfed_mdp_is_compact_client(frames->view[1])) {
        rc = zfed_mdp_parse_compact_client(&frames->view[1], frames->count - 1, ZFED_MDPW_REQUEST,
                                           &mdp, &reason);
        self->stats.compact_requests += rc == 0;
    } else
        rc = zfed_mdp_parse_at_broker(&frames->view[1], frames->count - 1, &mdp, &reason);
    //  Frames past ZFED_FRAMES_MAX were drained, not kept.  Only a request
    //  or a reply can be that long and still valid: their extra frames are
    //  body frames, counted so the refusal below says how many.  Any other
    //  command with that many frames has failed its parse already.
    if (rc == 0 && frames->dropped > 0)
        mdp.body_count += frames->dropped;
    //  A key whose role does not allow the message is told so (403 or
    //  DISCONNECT); an invalid message gets the answer any invalid one gets.
    if (rc == 0 && self->auth && !s_role_allows(self, &mdp)) {
        s_tell_forbidden(self, &mdp);
        return;
    }
    if (rc != 0) {
        s_refuse_invalid(self, peer, &mdp, reason);
        return;
    }
    if (mdp.command == ZFED_MDP_CLIENT)
        s_client_request(self, peer, &mdp);
    else
        s_worker_command(self, peer, &mdp);
}

static void s_handle_message(zfed_broker_t *self)
{
    zfed_frames_t *frames = &self->frames;
    if (frames->count < 1)
        return;
    peer_t *peer = s_peer_of_message(self);
    if (!peer) {
        zfed_error("out of memory for a peer's record; message dropped");
        return;
    }
    if (!s_peer_admit(self, peer))
        return; //  revoked: nothing it sends is taken
    s_handle_from(self, peer);
    s_peer_forget_if_idle(self, &peer);
    s_reclaim(self);
}

//  ---------------------------------------------------------------------
//  Connections

//  A closed connection's peer is forgotten (unless a newer connection
//  already took the descriptor, whose peer has already retired the old one).
static void s_closed(zfed_broker_t *self, int fd)
{
    if (fd < 0 || (size_t)fd >= self->fd_capacity)
        return;
    if (self->owed[fd] > 0)
        self->owed[fd]--;
    else if (self->by_fd[fd])
        s_peer_retire(self, &self->by_fd[fd], "its connection closed");
}

//  The router has been read dry since the first ready closings came: all
//  their connections sent has been heard, so their peers may go.  Later
//  ones wait for the next time.
static void s_closed_apply(zfed_broker_t *self, size_t ready)
{
    zfed_link_t *link;
    while ((link = zfed_list_first(&self->gone_ready)) != NULL) {
        peer_t *peer = zfed_container_of(link, peer_t, gone_link);
        s_peer_retire(self, &peer, "its connection closed");
    }
    if (ready > 0) { //  (closing may not be allocated yet: no memmove of NULL)
        for (size_t index = 0; index < ready; index++)
            s_closed(self, self->closing[index]);
        memmove(self->closing, self->closing + ready,
                (self->closing_count - ready) * sizeof *self->closing);
        self->closing_count -= ready;
    }
    s_reclaim(self);
}

//  A monitor event: connections are counted at the gate; a closed one's
//  peer goes once the router has been read dry (s_closed_apply), for the
//  messages it sent before it closed may still wait there, and a record
//  made for them after its peer had gone would be bound to a descriptor
//  that a live peer has taken since.
static void s_net_event(zfed_broker_t *self, const zfed_netmon_event_t *event)
{
    if (event->kind == ZFED_NETMON_ACCEPTED && self->gate)
        zfed_gate_accepted(self->gate, event->fd);
    else if (event->kind == ZFED_NETMON_ACCEPT_FAILED && self->gate)
        zfed_gate_accept_failed(self->gate, event->error);
    else if (event->kind == ZFED_NETMON_CLOSED) {
        if (self->gate)
            zfed_gate_closed(self->gate, event->fd);
        if (self->closing_count == self->closing_capacity) {
            size_t capacity = self->closing_capacity ? 2 * self->closing_capacity : 64;
            int *closing = realloc(self->closing, capacity * sizeof *closing);
            if (!closing) {
                s_closed(self, event->fd); //  out of memory: at once, as it comes
                s_reclaim(self);
                return;
            }
            self->closing = closing;
            self->closing_capacity = capacity;
        }
        self->closing[self->closing_count++] = event->fd;
    }
}

//  ---------------------------------------------------------------------
//  Timers

//  True while a silent worker gets busy_timeout_ms rather than the usual
//  expiry: it holds requests and has never heartbeated while working.  A
//  worker written on the reference MDP API computes inside its receive
//  loop and sends nothing until its REPLY, so heartbeat x liveness would
//  fail every task longer than that (7.5 s by default).
static bool s_worker_quiet_allowed(zfed_broker_t *self, const worker_t *worker)
{
    return worker->in_flight_count > 0 && !worker->beats_while_busy &&
           self->config.busy_timeout_ms > 0;
}

static void s_worker_expire(zfed_broker_t *self, worker_t *worker, const char *why)
{
    zfed_warn("worker %s (%s) %s: dropping it, re-queuing %zu requests", worker->key,
              worker->service->name, why, worker->in_flight_count);
    self->stats.workers_expired++;
    s_worker_delete(self, &worker, true);
}

static void s_purge_workers(zfed_broker_t *self, int64_t now)
{
    zfed_link_t *link;
    while ((link = zfed_list_first(&self->liveness)) != NULL) {
        worker_t *worker = zfed_container_of(link, worker_t, liveness_link);
        if (worker->expiry_ms > now)
            break;
        if (s_worker_quiet_allowed(self, worker)) {
            zfed_debug("worker %s (%s) silent while busy: waiting up to %" PRId64 " ms",
                       worker->key, worker->service->name, self->config.busy_timeout_ms);
            zfed_list_push_back(&self->quiet, &worker->liveness_link);
            continue;
        }
        char why[64];
        snprintf(why, sizeof why, "silent for %d heartbeats", self->config.liveness);
        s_worker_expire(self, worker, why);
    }
    while ((link = zfed_list_first(&self->quiet)) != NULL) {
        worker_t *worker = zfed_container_of(link, worker_t, liveness_link);
        if (worker->last_heard_ms + self->config.busy_timeout_ms > now)
            break;
        char why[96];
        snprintf(why, sizeof why, "busy and silent for %" PRId64 " ms (the busy timeout)",
                 now - worker->last_heard_ms);
        s_worker_expire(self, worker, why);
    }
}

static void s_send_heartbeats_on(zfed_broker_t *self, zfed_link_t *list, int64_t now)
{
    for (zfed_link_t *link = list->next; link != list; link = link->next) {
        worker_t *worker = zfed_container_of(link, worker_t, liveness_link);
        //  Any command is a heartbeat: only idle links need one.
        if (now - worker->last_sent_ms >= self->config.heartbeat_ms)
            s_worker_send_command(self, worker, ZFED_MDPW_HEARTBEAT);
    }
}

static void s_send_heartbeats(zfed_broker_t *self, int64_t now)
{
    s_send_heartbeats_on(self, &self->liveness, now);
    s_send_heartbeats_on(self, &self->quiet, now);
}

//  Queued requests past their lifetime fail with 504, oldest first: the
//  age list is in enqueue order, so the sweep stops at the first one
//  still in time.
static void s_expire_requests(zfed_broker_t *self, int64_t now)
{
    if (self->config.request_ttl_ms <= 0)
        return;
    zfed_link_t *link;
    while ((link = zfed_list_first(&self->by_age)) != NULL) {
        request_t *request = zfed_container_of(link, request_t, age_link);
        if (now - request->enqueued_ms < self->config.request_ttl_ms)
            break;
        s_queue_take(self, request);
        self->stats.expired++;
        char text[128 + ZFED_MDP_SERVICE_MAX];
        snprintf(text, sizeof text, "request waited %" PRId64 " ms for a %s worker; expired",
                 now - request->enqueued_ms, request->service->name);
        s_request_fail(self, &request, ZFED_ERR_EXPIRED, text);
    }
}

//  Many small blocks freed (a flood's queue and replies, once its peer has
//  gone) stay in the allocator's heap, which only shrinks from its top;
//  malloc_trim gives the free pages inside it back too.  Big buffers have
//  mappings of their own and go back when freed (zfed-broker's mallopt).
static void s_give_memory_back(zfed_broker_t *self)
{
    int64_t held = zfed_ledger_bytes(self->ledger);
    if (held > self->trim_high)
        self->trim_high = held;
    if (self->trim_high - held < TRIM_BYTES)
        return;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    self->trim_high = held;
}

//  Cuts the watched peers that have read nothing for stall_timeout_ms:
//  bytes wait for them in libzmq and libzmq has let go of none of their
//  messages since.  One with nothing waiting in libzmq reads (what it holds
//  is its queue and the room for replies on their way) and is let go.
static void s_check_stalls(zfed_broker_t *self, int64_t now)
{
    if (self->config.stall_timeout_ms <= 0)
        return;
    if (self->total_full) {
        //  The total refused someone: whoever holds unread bytes is watched.
        self->total_full = false;
        for (peer_t *peer = zhashx_first(self->peers); peer; peer = zhashx_next(self->peers))
            if (zfed_account_piped(peer->account) > 0)
                s_peer_watch(self, peer, ZFED_ROOM_ACCOUNT_FULL);
    }
    for (zfed_link_t *link = self->stalled.next, *next; link != &self->stalled; link = next) {
        next = link->next;
        peer_t *peer = zfed_container_of(link, peer_t, stall_link);
        int64_t piped = zfed_account_piped(peer->account);
        uint64_t released = zfed_account_released(peer->account);
        if (piped <= 0) {
            zfed_link_remove(link);
            continue;
        }
        if (released != peer->stall_released) {
            peer->stall_released = released;
            peer->stall_since_ms = now;
            continue;
        }
        if (now - peer->stall_since_ms < self->config.stall_timeout_ms)
            continue;
        zfed_link_remove(link);
        peer->cut = true;
        self->stats.stalled_cut++;
        const char *address =
            self->netmon && peer->fd >= 0 ? zfed_netmon_address(self->netmon, peer->fd) : NULL;
        zfed_warn("peer %s (%s): %" PRId64 " bytes wait for it and it has read none for %" PRId64
                  " ms (--stall-timeout): cutting its connection",
                  peer->key, address ? address : "no address", piped, now - peer->stall_since_ms);
        s_peer_shut(self, peer);
    }
}

static int64_t s_tick_ms(int heartbeat_ms)
{
    return heartbeat_ms / 4 > 0 ? heartbeat_ms / 4 : 1;
}

static void s_tick(zfed_broker_t *self)
{
    int64_t now = self->now_ms;
    s_purge_workers(self, now);
    s_send_heartbeats(self, now);
    s_expire_requests(self, now);
    if (self->gate)
        zfed_gate_tick(self->gate);
    //  A safety net under the ledger's wake-ups: held-back queues are
    //  looked at again each tick, whatever the eventfd said.
    if (!zfed_list_empty(&self->parked))
        s_unpark(self);
    s_check_stalls(self, now);
    s_reclaim(self);
    s_give_memory_back(self);
    //  Ticking at a quarter interval keeps every gap between heartbeats
    //  under 1.25 intervals, well inside the peer's liveness.
    self->tick_at_ms = now + s_tick_ms(self->config.heartbeat_ms);
}

//  ---------------------------------------------------------------------
//  Public API

//  CURVE server: our certificate on the socket, the ZAP handler running
//  before anything binds, a ZAP domain so libzmq consults it.
static int s_setup_curve(zfed_broker_t *self)
{
    const zfed_broker_config_t *config = &self->config;
    zcert_t *cert = zcert_load(config->curve_cert);
    if (!cert) {
        zfed_error("cannot load the broker certificate %s", config->curve_cert);
        return -1;
    }
    uint8_t zero[32] = {0};
    if (memcmp(zcert_secret_key(cert), zero, sizeof zero) == 0) {
        zfed_error("%s has no secret key: give the broker its _secret file", config->curve_cert);
        zcert_destroy(&cert);
        return -1;
    }
    self->auth = zfed_auth_new(config->workers_dir, config->controllers_dir);
    if (!self->auth) {
        zcert_destroy(&cert);
        return -1;
    }
    zcert_apply(cert, self->router);
    zsock_set_curve_server(self->router, 1);
    zsock_set_zap_domain(self->router, ZFED_AUTH_DOMAIN);
    zfed_info("CURVE on: public key %s; workers from %s, controllers from %s",
              zcert_public_txt(cert), config->workers_dir ? config->workers_dir : "(none)",
              config->controllers_dir ? config->controllers_dir : "(none)");
    zcert_destroy(&cert);
    return 0;
}

int64_t zfed_broker_largest_reply(int64_t max_message)
{
    return ZFED_BROKER_MAX_BODY_FRAMES * max_message + ZFED_BUDGET_MESSAGE_OVERHEAD;
}

bool zfed_endpoint_is_local(const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0)
        return true;
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    //  "tcp://127.0.0.1:5555", "tcp://localhost:5555", "tcp://[::1]:5555",
    //  "tcp://lo:5555"; a "source;" prefix is not local-only by itself.
    if (strchr(host, ';'))
        return false;
    return strncmp(host, "127.", 4) == 0 || strncmp(host, "localhost:", 10) == 0 ||
           strncmp(host, "[::1]:", 6) == 0 || strncmp(host, "lo:", 3) == 0;
}

void zfed_broker_config_defaults(zfed_broker_config_t *config)
{
    memset(config, 0, sizeof *config);
    config->heartbeat_ms = ZFED_MDP_HEARTBEAT_MS_DEFAULT;
    config->liveness = ZFED_MDP_LIVENESS_DEFAULT;
    config->max_workers = ZFED_BROKER_MAX_WORKERS_DEFAULT;
    config->max_services = ZFED_BROKER_MAX_SERVICES_DEFAULT;
    config->max_queue = ZFED_BROKER_MAX_QUEUE_DEFAULT;
    config->max_message = ZFED_BROKER_MAX_MESSAGE_DEFAULT;
    config->request_ttl_ms = ZFED_BROKER_REQUEST_TTL_MS_DEFAULT;
    config->max_attempts = ZFED_BROKER_MAX_ATTEMPTS_DEFAULT;
    config->busy_timeout_ms = ZFED_BROKER_BUSY_TIMEOUT_MS_DEFAULT;
    config->hwm = ZFED_BROKER_HWM_DEFAULT;
    config->max_blob_services_per_key = ZFED_BROKER_BLOB_SERVICES_PER_KEY;
    config->max_queued_per_client = ZFED_BROKER_MAX_QUEUED_PER_CLIENT_DEFAULT;
    config->max_ready_per_connection = ZFED_BROKER_MAX_READY_PER_CONNECTION_DEFAULT;
    config->max_bytes = ZFED_BROKER_MAX_BYTES_DEFAULT;
    config->max_bytes_per_peer = ZFED_BROKER_MAX_BYTES_PER_PEER_DEFAULT;
    config->stall_timeout_ms = ZFED_BROKER_STALL_TIMEOUT_MS_DEFAULT;
    config->compact = true;
}

zfed_broker_t *zfed_broker_new(const zfed_broker_config_t *config)
{
    zfed_broker_config_t defaults;
    if (!config) {
        zfed_broker_config_defaults(&defaults);
        config = &defaults;
    }
    if (config->heartbeat_ms <= 0 || config->liveness <= 0 || config->max_workers == 0 ||
        config->max_services == 0 || config->max_queue == 0 || config->max_message <= 0 ||
        config->max_attempts == 0 || config->hwm < 0 || config->busy_timeout_ms < 0 ||
        config->stall_timeout_ms < 0 || config->max_queued_per_client == 0 ||
        config->max_ready_per_connection == 0) {
        zfed_error("invalid broker configuration");
        return NULL;
    }
    //  The largest reply (every body frame of the largest size) must fit a
    //  peer's budget, and a peer's budget the total, or some replies could
    //  never be delivered.
    if (config->max_bytes_per_peer < zfed_broker_largest_reply(config->max_message) ||
        config->max_bytes < config->max_bytes_per_peer) {
        zfed_error("invalid byte budget: --max-bytes-per-peer (%" PRId64
                   ") must hold a reply of %d frames of --max-message (%" PRId64
                   ") and fit in --max-bytes (%" PRId64 ")",
                   config->max_bytes_per_peer, ZFED_BROKER_MAX_BODY_FRAMES, config->max_message,
                   config->max_bytes);
        return NULL;
    }
    zfed_broker_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    zfed_link_init(&self->liveness);
    zfed_link_init(&self->quiet);
    zfed_link_init(&self->by_age);
    zfed_link_init(&self->pending);
    zfed_link_init(&self->reclaim);
    zfed_link_init(&self->parked);
    zfed_link_init(&self->stalled);
    zfed_link_init(&self->gone);
    zfed_link_init(&self->gone_ready);
    msgpack_sbuffer_init(&self->scratch);
    msgpack_sbuffer_init(&self->item_scratch);
    self->batch_items = calloc(ZFED_BATCH_MAX, sizeof *self->batch_items);
    self->services = zhashx_new();
    self->workers = zhashx_new();
    self->peers = zhashx_new();
    self->queues = zhashx_new();
    self->endpoints = zlistx_new();
    self->ledger = zfed_ledger_new(config->max_bytes, config->max_bytes_per_peer);
    self->gate = zfed_gate_new(config->max_connections);
    self->router = zsock_new(ZMQ_ROUTER);
    if (!self->services || !self->workers || !self->peers || !self->queues || !self->endpoints ||
        !self->ledger || !self->gate || !self->router || !self->batch_items)
        goto err;
    zlistx_set_destructor(self->endpoints, (zlistx_destructor_fn *)zstr_free);
    self->handle = zsock_resolve(self->router);
    //  MANDATORY: an undeliverable message is an error we count, not a
    //  silent drop.  HANDOVER: a restarted peer that reuses its routing id
    //  takes over instead of being locked out.
    zsock_set_router_mandatory(self->router, 1);
    zsock_set_router_handover(self->router, 1);
    zsock_set_sndhwm(self->router, config->hwm);
    zsock_set_rcvhwm(self->router, config->hwm);
    int64_t max_message = config->max_message;
    zmq_setsockopt(self->handle, ZMQ_MAXMSGSIZE, &max_message, sizeof max_message);
    zsock_set_linger(self->router, 0);
    if (config->curve_cert && s_setup_curve(self) != 0)
        goto err;
    //  Transport events: connections libzmq drops on its own are logged
    //  with the peer's address and counted.
    self->netmon = zfed_netmon_new(self->handle);
    if (!self->netmon)
        zfed_warn("connection monitor unavailable; transport drops will not be logged");
    self->started_ms = zfed_clock_ms();
    self->now_ms = self->started_ms;
    self->tick_at_ms = self->started_ms + config->heartbeat_ms;
    return self;
err:
    zfed_broker_destroy(&self);
    return NULL;
}

void zfed_broker_destroy(zfed_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_broker_t *self = *self_p;
    self->terminated = true;
    if (self->workers) {
        zlistx_t *all = zhashx_values(self->workers);
        for (worker_t *worker = all ? zlistx_first(all) : NULL; worker; worker = zlistx_next(all))
            s_worker_forget(self, &worker, false);
        zlistx_destroy(&all);
    }
    //  Peers take their queued requests with them; what workers held was
    //  re-queued above, so nothing is left in flight.
    if (self->peers) {
        zlistx_t *all = zhashx_values(self->peers);
        for (peer_t *peer = all ? zlistx_first(all) : NULL; peer; peer = zlistx_next(all))
            s_peer_retire(self, &peer, "the broker is stopping");
        zlistx_destroy(&all);
    }
    if (self->services) {
        zlistx_t *all = zhashx_values(self->services);
        for (service_t *service = all ? zlistx_first(all) : NULL; service;
             service = zlistx_next(all))
            s_service_destroy(self, &service);
        zlistx_destroy(&all);
    }
    zfed_netmon_destroy(&self->netmon);
    zsock_destroy(&self->router);
    zfed_auth_destroy(&self->auth);
    zfed_gate_destroy(&self->gate);
    zfed_ledger_release(&self->ledger);
    zhashx_destroy(&self->services);
    zhashx_destroy(&self->workers);
    zhashx_destroy(&self->peers);
    zhashx_destroy(&self->queues);
    zlistx_destroy(&self->endpoints);
    free(self->by_fd);
    free(self->owed);
    free(self->closing);
    msgpack_sbuffer_destroy(&self->scratch);
    msgpack_sbuffer_destroy(&self->item_scratch);
    free(self->batch_items);
    free(self);
    *self_p = NULL;
}

int zfed_broker_bind(zfed_broker_t *self, const char *endpoint)
{
    if (!self->auth && !self->config.insecure && !zfed_endpoint_is_local(endpoint)) {
        zfed_error("refusing to bind %s in plaintext: anyone who can reach it could take "
                   "tasks, inject results or submit jobs.  Turn on CURVE (--curve-cert with "
                   "--workers-dir/--controllers-dir) or, on a network you trust, --insecure",
                   endpoint);
        return -1;
    }
    if (zsock_bind(self->router, "%s", endpoint) < 0) {
        zfed_error("cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        return -1;
    }
    char *bound = zsock_last_endpoint(self->router);
    zfed_info("listening on %s", bound ? bound : endpoint);
    zfed_gate_listen(self->gate, bound ? bound : endpoint);
    zlistx_add_end(self->endpoints, bound ? bound : strdup(endpoint));
    return 0;
}

const char *zfed_broker_endpoint(zfed_broker_t *self, size_t index)
{
    const char *endpoint = zlistx_first(self->endpoints);
    for (size_t skipped = 0; endpoint && skipped < index; skipped++)
        endpoint = zlistx_next(self->endpoints);
    return endpoint;
}

size_t zfed_broker_endpoints(zfed_broker_t *self)
{
    return zlistx_size(self->endpoints);
}

void zfed_broker_stats(zfed_broker_t *self, zfed_broker_stats_t *stats)
{
    *stats = self->stats;
    stats->services = zhashx_size(self->services);
    stats->bytes_held = zfed_ledger_bytes(self->ledger);
    stats->bytes_peak = zfed_ledger_peak(self->ledger);
}

//  Commands from an embedding thread.  Returns -1 on $TERM.
static int s_handle_pipe(zfed_broker_t *self, zsock_t *pipe)
{
    zmsg_t *message = zmsg_recv(pipe);
    if (!message)
        return -1;
    char *command = zmsg_popstr(message);
    int rc = 0;
    if (!command || streq(command, "$TERM"))
        rc = -1;
    else if (streq(command, "BIND")) {
        char *endpoint = zmsg_popstr(message);
        int bound = endpoint ? zfed_broker_bind(self, endpoint) : -1;
        const char *last = bound == 0 ? zlistx_last(self->endpoints) : "";
        zsock_send(pipe, "ss", bound == 0 ? "0" : "-1", last);
        zstr_free(&endpoint);
    } else if (streq(command, "STATS")) {
        zfed_broker_stats_t stats;
        zfed_broker_stats(self, &stats);
        zsock_send(pipe, "b", &stats, sizeof stats);
    } else
        zfed_warn("unknown pipe command %s", command);
    zstr_free(&command);
    zmsg_destroy(&message);
    return rc;
}

int zfed_broker_run(zfed_broker_t *self)
{
    return zfed_broker_serve(self, NULL);
}

//  A libzmq socket's descriptor (ZMQ_FD), -1 if it has none.
static int s_socket_fd(void *socket)
{
    int fd = -1;
    size_t size = sizeof fd;
    return socket && zmq_getsockopt(socket, ZMQ_FD, &fd, &size) == 0 ? fd : -1;
}

//  True when a libzmq socket has a message to read (ZMQ_EVENTS).  Reading
//  it also makes the socket's descriptor signal again on the next event:
//  see zfed_broker_serve.  -1 when the socket is gone (ETERM).
static int s_socket_readable(void *socket)
{
    uint32_t events = 0;
    size_t size = sizeof events;
    if (zmq_getsockopt(socket, ZMQ_EVENTS, &events, &size) != 0)
        return errno == EINTR ? 0 : -1;
    return events & ZMQ_POLLIN ? 1 : 0;
}

int zfed_broker_serve(zfed_broker_t *self, zsock_t *pipe)
{
    //  poll(2) on descriptors rather than zmq_poll: zmq_poll asks every
    //  libzmq socket for ZMQ_EVENTS before and after it sleeps, which costs
    //  a system call per socket each time, for every pass of the loop.
    //  A libzmq socket's descriptor (ZMQ_FD) only says that commands for it
    //  have come, and it stops saying so once anything on that socket has
    //  processed them (a recv, a send, ZMQ_EVENTS): so a socket is slept on
    //  only when it was last found with nothing to read after the last
    //  thing done on it.  The router is read until EAGAIN (which is such a
    //  finding), the monitor too; the pipe and the key watcher are asked
    //  ZMQ_EVENTS; and whatever sends on the router after its drain (the
    //  tick, a wake-up, a closed connection, a command) has it asked too.
    enum { ITEM_ROUTER, ITEM_NETMON, ITEM_SIGNAL, ITEM_AUTH, ITEM_WAKE, ITEM_PIPE, ITEM_COUNT };
    void *auth_socket = self->auth ? zfed_auth_socket(self->auth) : NULL;
    void *netmon_socket = self->netmon ? zfed_netmon_socket(self->netmon) : NULL;
    void *pipe_socket = pipe ? zsock_resolve(pipe) : NULL;
    //  A negative descriptor is skipped by poll(2).
    struct pollfd items[ITEM_COUNT] = {{s_socket_fd(self->handle), POLLIN, 0},
                                       {s_socket_fd(netmon_socket), POLLIN, 0},
                                       {zfed_signal_fd(), POLLIN, 0},
                                       {s_socket_fd(auth_socket), POLLIN, 0},
                                       {zfed_ledger_wake_fd(self->ledger), POLLIN, 0},
                                       {s_socket_fd(pipe_socket), POLLIN, 0}};
    if (items[ITEM_ROUTER].fd < 0) {
        zfed_error("the router socket has no descriptor to poll");
        return -1;
    }
    //  What must be looked at before the next sleep (all of it, at first).
    bool check_router = true, check_netmon = true, check_auth = true, check_pipe = true;
    int rc = 0;
    while (!self->terminated) {
        if (!pipe && zsys_interrupted)
            break;
        bool router_ready = false, auth_ready = false, pipe_ready = false;
        int readable = 0;
        if (check_router && (readable = s_socket_readable(self->handle)) > 0)
            router_ready = true;
        if (readable >= 0 && auth_socket && check_auth &&
            (readable = s_socket_readable(auth_socket)) > 0)
            auth_ready = true;
        if (readable >= 0 && pipe_socket && check_pipe &&
            (readable = s_socket_readable(pipe_socket)) > 0)
            pipe_ready = true;
        if (readable < 0) {
            zfed_error("poll failed: %s", zmq_strerror(errno));
            rc = -1;
            break;
        }
        check_router = check_auth = check_pipe = false;
        self->now_ms = zfed_clock_ms();
        int64_t wait = self->tick_at_ms - self->now_ms;
        if (wait < 0 || self->closing_count > 0 || !zfed_list_empty(&self->gone))
            wait = 0; //  closings wait for the router to be read dry: look now
        if (router_ready || auth_ready || pipe_ready || check_netmon)
            wait = 0;
        if (poll(items, ITEM_COUNT, (int)wait) < 0) {
            if (errno == EINTR) {
                check_router = check_netmon = check_auth = check_pipe = true;
                continue;
            }
            zfed_error("poll failed: %s", strerror(errno));
            rc = -1;
            break;
        }
        self->now_ms = zfed_clock_ms();
        router_ready = router_ready || items[ITEM_ROUTER].revents;
        bool netmon_ready = netmon_socket && (check_netmon || items[ITEM_NETMON].revents);
        check_netmon = false;
        //  Signalled only: whether a message came is for ZMQ_EVENTS to say,
        //  before the next sleep or now.
        if (auth_socket && (auth_ready || items[ITEM_AUTH].revents)) {
            check_auth = true;
            if (auth_ready || s_socket_readable(auth_socket) > 0) {
                s_keys_changed(self);
                check_router = true;
            }
        }
        if (pipe_socket && (pipe_ready || items[ITEM_PIPE].revents)) {
            check_pipe = true;
            check_router = true; //  BIND works on the router
            if ((pipe_ready || s_socket_readable(pipe_socket) > 0) &&
                s_handle_pipe(self, pipe) != 0)
                break;
        }
        if (items[ITEM_WAKE].revents & POLLIN) {
            s_unpark(self);
            s_reclaim(self);
            check_router = true;
        }
        //  Closings heard before this drain may be applied if it reads the
        //  router dry (or it had nothing): a connection's messages are in
        //  the router before its DISCONNECTED is in the monitor's pipe.
        size_t closings_ready = self->closing_count;
        zfed_link_t *gone;
        while ((gone = zfed_list_first(&self->gone)) != NULL)
            zfed_list_push_back(&self->gone_ready, gone);
        bool dry = true;
        if (router_ready) {
            dry = false;
            for (int handled = 0; handled < DRAIN_BATCH; handled++) {
                if (zfed_frames_recv(&self->frames, self->handle, ZMQ_DONTWAIT) != 0) {
                    dry = true;
                    break;
                }
                self->now_ms = zfed_clock_ms();
                s_handle_message(self);
                zfed_frames_close(&self->frames);
            }
            if (!dry)
                check_router = true; //  more waits: read on without sleeping
        }
        if (dry && (closings_ready > 0 || !zfed_list_empty(&self->gone_ready))) {
            s_closed_apply(self, closings_ready);
            check_router = true;
        }
        //  Connection events after the messages: what a peer sent before
        //  its connection closed (a worker's DISCONNECT) is heard first.
        //  A newer connection on a closed one's descriptor may have spoken
        //  already; its peer then retired the old one (s_peer_bind_fd).
        //  Read until there are none: its descriptor signals only new ones.
        zfed_netmon_event_t event;
        while (netmon_ready && zfed_netmon_handle(self->netmon, &event) == 0) {
            s_net_event(self, &event);
            check_router = true;
        }
        self->now_ms = zfed_clock_ms();
        if (self->now_ms >= self->tick_at_ms) {
            s_tick(self);
            check_router = true;
        }
    }
    //  Tell workers we are going, so they re-register with our successor
    //  at once instead of after their heartbeats lapse.
    zsock_set_linger(self->router, SHUTDOWN_LINGER_MS);
    zfed_link_t *lists[] = {&self->liveness, &self->quiet};
    for (size_t list = 0; list < sizeof lists / sizeof lists[0]; list++)
        for (zfed_link_t *link = lists[list]->next; link != lists[list]; link = link->next)
            s_worker_send_command(self, zfed_container_of(link, worker_t, liveness_link),
                                  ZFED_MDPW_DISCONNECT);
    zfed_info("stopped: %" PRIu64 " requests, %" PRIu64 " replies, %" PRIu64 " failed, %" PRIu64
              " malformed",
              self->stats.requests, self->stats.replies, self->stats.failed, self->stats.malformed);
    return rc;
}

void zfed_broker_actor(zsock_t *pipe, void *args)
{
    zfed_broker_t *broker = zfed_broker_new((const zfed_broker_config_t *)args);
    zsock_signal(pipe, broker ? 0 : 1);
    if (!broker)
        return;
    zfed_broker_serve(broker, pipe);
    zfed_broker_destroy(&broker);
}
