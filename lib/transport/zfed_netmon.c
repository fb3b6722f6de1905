/*  zfed_netmon - connection events of a listening socket, with addresses.  */
#include "transport/zfed_netmon.h"
#include "zfed/zfed_log.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define EVENTS                                                                                     \
    (ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |          \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |                       \
     ZMQ_EVENT_ACCEPT_FAILED)
//  Remembered fd -> address pairs: more than the open-file limit allows.
#define ADDRESSES_MAX    1048576
#define ADDRESS_TEXT_MAX 64
//  Warnings per second about failed handshakes, so a scan or an attack
//  does not flood the log; all are counted.
#define WARNINGS_PER_SECOND 10

struct _zfed_netmon_t {
    zsock_t *pair;
    void *handle;
    void *watched;       //  the listening socket, until destroy
    zhashx_t *addresses; //  "fd" -> "ip:port" (owned strings)
    zfed_netmon_stats_t stats;
    int64_t window_ms;
    unsigned warnings;
};

static uint64_t s_counter;

zfed_netmon_t *zfed_netmon_new(void *socket)
{
    zfed_netmon_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://zfed-netmon-%d-%llu", (int)getpid(),
             (unsigned long long)__atomic_add_fetch(&s_counter, 1, __ATOMIC_RELAXED));
    if (zmq_socket_monitor(socket, endpoint, EVENTS) != 0)
        goto err;
    self->watched = socket;
    //  No high-water mark on our end (an inproc pipe then has none): a
    //  burst of connections must not drop the events that close them.
    self->pair = zsock_new(ZMQ_PAIR);
    self->addresses = zhashx_new();
    if (!self->pair || !self->addresses)
        goto err;
    zsock_set_rcvhwm(self->pair, 0);
    if (zsock_connect(self->pair, "%s", endpoint) != 0)
        goto err;
    zhashx_set_destructor(self->addresses, (zhashx_destructor_fn *)zstr_free);
    self->handle = zsock_resolve(self->pair);
    return self;
err:
    zfed_netmon_destroy(&self);
    return NULL;
}

void zfed_netmon_destroy(zfed_netmon_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_netmon_t *self = *self_p;
    //  Stopped before our end closes: libzmq does not free an event whose
    //  send fails, and the socket's closing sends one per connection.
    if (self->watched)
        zmq_socket_monitor(self->watched, NULL, 0);
    zsock_destroy(&self->pair);
    zhashx_destroy(&self->addresses);
    free(self);
    *self_p = NULL;
}

void *zfed_netmon_socket(zfed_netmon_t *self)
{
    return self->handle;
}

void zfed_netmon_stats(zfed_netmon_t *self, zfed_netmon_stats_t *stats)
{
    *stats = self->stats;
}

//  The peer of an accepted socket, as "ip:port" (or the ipc path).
static void s_peer_text(int fd, char *text, size_t size)
{
    struct sockaddr_storage address;
    socklen_t length = sizeof address;
    snprintf(text, size, "fd %d", fd);
    if (getpeername(fd, (struct sockaddr *)&address, &length) != 0)
        return;
    char host[INET6_ADDRSTRLEN] = "?";
    if (address.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&address;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(text, size, "%s:%u", host, ntohs(in->sin_port));
    } else if (address.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(text, size, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else if (address.ss_family == AF_UNIX)
        snprintf(text, size, "ipc peer (fd %d)", fd);
}

static bool s_may_warn(zfed_netmon_t *self)
{
    int64_t now = zclock_mono();
    if (now - self->window_ms >= 1000) {
        self->window_ms = now;
        self->warnings = 0;
    }
    return ++self->warnings <= WARNINGS_PER_SECOND;
}

//  One event: logged (within the per-second budget), counted, and said to
//  the caller when it is about a connection.  For accept and disconnect
//  events the value is the connection's file descriptor; for an accept
//  failure it is errno; for handshake failures an error or ZAP status
//  code, and the peer is not known.
static void s_handle_event(zfed_netmon_t *self, uint16_t kind, int32_t value,
                           zfed_netmon_event_t *event)
{
    char key[16];
    snprintf(key, sizeof key, "%d", value);
    bool by_fd = kind == ZMQ_EVENT_ACCEPTED || kind == ZMQ_EVENT_DISCONNECTED;
    const char *known = by_fd ? zhashx_lookup(self->addresses, key) : NULL;
    char peer[ADDRESS_TEXT_MAX];
    snprintf(peer, sizeof peer, "%s", known ? known : "a peer");

    switch (kind) {
    case ZMQ_EVENT_ACCEPTED:
        self->stats.accepted++;
        *event = (zfed_netmon_event_t){ZFED_NETMON_ACCEPTED, value, 0};
        s_peer_text(value, peer, sizeof peer);
        if (zhashx_size(self->addresses) < ADDRESSES_MAX)
            zhashx_update(self->addresses, key, strdup(peer));
        zfed_debug("connection from %s accepted", peer);
        break;
    case ZMQ_EVENT_DISCONNECTED:
        self->stats.closed++;
        *event = (zfed_netmon_event_t){ZFED_NETMON_CLOSED, value, 0};
        if (s_may_warn(self))
            zfed_info("connection from %s closed (the peer left, or libzmq dropped it for a "
                      "message over --max-message or a protocol error)",
                      peer);
        zhashx_delete(self->addresses, key);
        break;
    case ZMQ_EVENT_ACCEPT_FAILED:
        //  libzmq retries at once and says so each time: counted here,
        //  logged once by whoever acts on it (zfed_gate).
        self->stats.accept_failed++;
        *event = (zfed_netmon_event_t){ZFED_NETMON_ACCEPT_FAILED, -1, value};
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        self->stats.auth_failed++;
        if (s_may_warn(self))
            zfed_warn("a connection was refused: authentication failed (ZAP status %d; the "
                      "authentication log line names its address and key)",
                      value);
        break;
    default:
        self->stats.handshake_failed++;
        if (s_may_warn(self))
            zfed_warn("a connection was dropped: ZMTP handshake failed (%s, code %d)",
                      kind == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error" : "no detail",
                      value);
        break;
    }
}

const char *zfed_netmon_address(zfed_netmon_t *self, int fd)
{
    char key[16];
    snprintf(key, sizeof key, "%d", fd);
    return zhashx_lookup(self->addresses, key);
}

int zfed_netmon_handle(zfed_netmon_t *self, zfed_netmon_event_t *event)
{
    zfed_netmon_event_t ignored;
    if (!event)
        event = &ignored;
    *event = (zfed_netmon_event_t){ZFED_NETMON_OTHER, -1, 0};
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    if (zmq_msg_recv(&frame, self->handle, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&frame);
        return -1;
    }
    bool well_formed = zmq_msg_size(&frame) == 6;
    uint16_t kind = 0;
    int32_t value = 0;
    if (well_formed) {
        memcpy(&kind, zmq_msg_data(&frame), sizeof kind);
        memcpy(&value, (uint8_t *)zmq_msg_data(&frame) + 2, sizeof value);
    }
    //  The second frame (the endpoint) is not needed: drain it.
    while (zmq_msg_more(&frame)) {
        zmq_msg_close(&frame);
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, self->handle, 0) < 0)
            break;
    }
    zmq_msg_close(&frame);
    if (well_formed)
        s_handle_event(self, kind, value, event);
    return 0;
}
