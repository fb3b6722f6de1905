/*  zfed_linkmon - handshake outcomes of a connecting socket.  */
#include "transport/zfed_linkmon.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_util.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define EVENTS                                                                                     \
    (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |                \
     ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |                  \
     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
//  A monitor event is two frames: 6 bytes (event, value), then the endpoint.
#define EVENT_HEADER_SIZE 6

struct _zfed_linkmon_t {
    char endpoint[256];
    char role_dir[32];
    bool curve;
    zsock_t *pair;
    void *handle;
    void *watched; //  the socket our monitor is on, until detached
    zfed_link_status_t link;
    //  Warnings: the first at once, then one per period with a count; a
    //  new explanation is news and goes out at once.
    int64_t warned_at_ms;
    uint64_t unwarned;
    char warned[sizeof((zfed_link_status_t *)0)->reason];
    //  The last refusal was specific (ZAP, or a mechanism mismatch): a
    //  vague "no detail" after it does not replace its explanation.
    bool specific;
};

static uint64_t s_counter;

zfed_linkmon_t *zfed_linkmon_new(const char *endpoint, const char *role_dir, bool curve)
{
    zfed_linkmon_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    snprintf(self->role_dir, sizeof self->role_dir, "%s", role_dir);
    self->curve = curve;
    self->warned_at_ms = -ZFED_LINKMON_WARN_PERIOD_MS;
    return self;
}

void zfed_linkmon_destroy(zfed_linkmon_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_linkmon_detach(*self_p);
    free(*self_p);
    *self_p = NULL;
}

void zfed_linkmon_detach(zfed_linkmon_t *self)
{
    //  The monitor is stopped before our end closes: libzmq does not free
    //  an event whose send fails (one sent while the socket closes, to a
    //  monitor nobody reads any more, leaked its endpoint frame).
    if (self->watched)
        zmq_socket_monitor(self->watched, NULL, 0);
    self->watched = NULL;
    zsock_destroy(&self->pair);
    self->handle = NULL;
}

int zfed_linkmon_attach(zfed_linkmon_t *self, void *socket)
{
    zfed_linkmon_detach(self);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://zfed-linkmon-%d-%llu", (int)getpid(),
             (unsigned long long)__atomic_add_fetch(&s_counter, 1, __ATOMIC_RELAXED));
    if (zmq_socket_monitor(socket, endpoint, EVENTS) != 0)
        return -1;
    self->watched = socket;
    self->pair = zsock_new_pair(endpoint);
    if (!self->pair)
        return -1;
    self->handle = zsock_resolve(self->pair);
    //  inproc has no handshake, so no event would ever say it is up.
    bool inproc = strncmp(self->endpoint, "inproc://", 9) == 0;
    self->link.state = inproc ? ZFED_LINK_UP : ZFED_LINK_DOWN;
    self->link.ever_up = self->link.ever_up || inproc;
    return 0;
}

void *zfed_linkmon_socket(zfed_linkmon_t *self)
{
    return self->handle;
}

const zfed_link_status_t *zfed_linkmon_link(zfed_linkmon_t *self)
{
    return &self->link;
}

//  What a failed handshake means, seen from our side.  libzmq reports a
//  refusal by the broker's ZAP handler as AUTH (with its status code); a
//  wrong server key and a plaintext peer on a CURVE broker both end as
//  "no detail"; CURVE against plaintext is a mechanism mismatch.
static void s_explain(zfed_linkmon_t *self, uint16_t event, int32_t value)
{
    zfed_link_status_t *link = &self->link;
    bool specific = event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
                    (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
                     value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH);
    if (self->specific && !specific)
        return;
    self->specific = specific;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        snprintf(link->reason, sizeof link->reason,
                 "the broker at %s refused our key (CURVE authentication failed, status %d): "
                 "is our public key in the broker's %s?",
                 self->endpoint, (int)value, self->role_dir);
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
             value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        snprintf(link->reason, sizeof link->reason,
                 "the handshake with the broker at %s failed: %s", self->endpoint,
                 self->curve ? "we speak CURVE and it does not (drop --curve-cert and "
                               "--server-key, or give the broker --curve-cert)"
                             : "it speaks CURVE and we do not (give --curve-cert and "
                               "--server-key)");
    else if (self->curve)
        snprintf(link->reason, sizeof link->reason,
                 "the CURVE handshake with the broker at %s failed: is --server-key the "
                 "broker's public key, and does the broker run CURVE?",
                 self->endpoint);
    else
        snprintf(link->reason, sizeof link->reason,
                 "the handshake with the broker at %s failed: it may require CURVE (give "
                 "--curve-cert and --server-key)",
                 self->endpoint);
}

static void s_warn(zfed_linkmon_t *self)
{
    int64_t now = zfed_clock_ms();
    if (now - self->warned_at_ms < ZFED_LINKMON_WARN_PERIOD_MS &&
        strcmp(self->warned, self->link.reason) == 0) {
        self->unwarned++;
        return;
    }
    if (self->unwarned)
        zfed_warn("%s (%llu more refusals since the last warning)", self->link.reason,
                  (unsigned long long)self->unwarned);
    else
        zfed_warn("%s", self->link.reason);
    self->warned_at_ms = now;
    self->unwarned = 0;
    snprintf(self->warned, sizeof self->warned, "%s", self->link.reason);
}

//  One event: its header frame, then the rest (the endpoint) dropped.
//  0, or -1 when none is pending.
static int s_next_event(zfed_linkmon_t *self, uint16_t *event, int32_t *value)
{
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    if (zmq_msg_recv(&frame, self->handle, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&frame);
        return -1;
    }
    bool valid = zmq_msg_size(&frame) == EVENT_HEADER_SIZE;
    if (valid) {
        memcpy(event, zmq_msg_data(&frame), sizeof *event);
        memcpy(value, (const uint8_t *)zmq_msg_data(&frame) + sizeof *event, sizeof *value);
    }
    while (zmq_msg_more(&frame)) {
        zmq_msg_close(&frame);
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, self->handle, ZMQ_DONTWAIT) < 0)
            break;
    }
    zmq_msg_close(&frame);
    if (!valid)
        *event = 0;
    return 0;
}

void zfed_linkmon_handle(zfed_linkmon_t *self)
{
    uint16_t event;
    int32_t value;
    while (self->handle && s_next_event(self, &event, &value) == 0) {
        zfed_link_status_t *link = &self->link;
        switch (event) {
        case 0:
            break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            if (link->state == ZFED_LINK_REFUSED || link->state == ZFED_LINK_FAILED)
                zfed_info("the broker at %s accepts us now", self->endpoint);
            link->state = ZFED_LINK_UP;
            link->ever_up = true;
            self->specific = false;
            break;
        case ZMQ_EVENT_DISCONNECTED:
            link->disconnects++;
            if (link->state == ZFED_LINK_UP)
                link->state = ZFED_LINK_DOWN;
            break;
        case ZMQ_EVENT_CONNECTED:
            break;
        default:
            link->state =
                event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? ZFED_LINK_REFUSED : ZFED_LINK_FAILED;
            link->refusals++;
            s_explain(self, event, value);
            s_warn(self);
            break;
        }
    }
}
