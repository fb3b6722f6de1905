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
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
//  Remembered fd -> address pairs: more than the open-file limit allows.
#define ADDRESSES_MAX    1048576
#define ADDRESS_TEXT_MAX 64
//  Warnings per second about failed handshakes, so a scan or an attack
//  does not flood the log; all are counted.
#define WARNINGS_PER_SECOND 10

struct _zfed_netmon_t {
    zsock_t *pair;
    void *handle;
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
    self->pair = zsock_new_pair(endpoint);
    self->addresses = zhashx_new();
    if (!self->pair || !self->addresses)
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

void zfed_netmon_handle(zfed_netmon_t *self)
{
    zmsg_t *message = zmsg_recv(self->pair);
    if (!message)
        return;
    zframe_t *header = zmsg_first(message);
    if (!header || zframe_size(header) != 6) {
        zmsg_destroy(&message);
        return;
    }
    uint16_t event;
    int32_t value;
    memcpy(&event, zframe_data(header), sizeof event);
    memcpy(&value, zframe_data(header) + 2, sizeof value);
    //  For accept and disconnect events the value is the connection's file
    //  descriptor; for handshake failures it is an error or ZAP status code,
    //  and the peer is not known.
    char key[16];
    snprintf(key, sizeof key, "%d", value);
    bool by_fd = event == ZMQ_EVENT_ACCEPTED || event == ZMQ_EVENT_DISCONNECTED;
    const char *known = by_fd ? zhashx_lookup(self->addresses, key) : NULL;
    char peer[ADDRESS_TEXT_MAX];
    snprintf(peer, sizeof peer, "%s", known ? known : "a peer");

    switch (event) {
    case ZMQ_EVENT_ACCEPTED:
        self->stats.accepted++;
        s_peer_text(value, peer, sizeof peer);
        if (zhashx_size(self->addresses) < ADDRESSES_MAX)
            zhashx_update(self->addresses, key, strdup(peer));
        zfed_debug("connection from %s accepted", peer);
        break;
    case ZMQ_EVENT_DISCONNECTED:
        self->stats.closed++;
        if (s_may_warn(self))
            zfed_info("connection from %s closed (the peer left, or libzmq dropped it for a "
                      "message over --max-message or a protocol error)",
                      peer);
        zhashx_delete(self->addresses, key);
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
                      event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error" : "no detail",
                      value);
        break;
    }
    zmsg_destroy(&message);
}
