/*  zfed_client - asynchronous MDP/0.1 client, and zfed's compact client
    frames (PROTOCOL.md 3.3) once told that the broker takes them.  */
#include "zfed/zfed_client.h"
#include "wire/zfed_frames.h"
#include "wire/zfed_stamp.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_mdp.h"
#include "zfed/zfed_signal.h"
#include "transport/zfed_curve.h"
#include "transport/zfed_linkmon.h"

#include <czmq.h>
#include <errno.h>
#include <string.h>

//  The send queue has no limit (a round is sent at once), so a send can
//  only fail when there is no connection to queue into: after the broker
//  refused our handshake.  It then fails at once rather than block: the
//  caller has its own timeouts, and a stop must not wait on sends.

struct _zfed_client_t {
    zsock_t *socket;
    void *handle;
    zfed_frames_t frames;
    bool holding;
    char service[ZFED_MDP_SERVICE_MAX + 1];
    uint64_t malformed;
    zfed_linkmon_t *linkmon;
    bool send_failing;            //  warned that sends fail; quiet until one succeeds
    bool allow_data;              //  replies may carry a data frame
    size_t data_index;            //  frame of the last reply's data frame, 0: none (or taken)
    bool tickets_sent;            //  a ticket has gone out: replies may carry stamps
    bool stamped;                 //  the last reply carried a stamp (PROTOCOL.md 3.1)
    bool compact;                 //  requests go as compact client frames (PROTOCOL.md 3.3)
    bool compact_sent;            //  a compact request has gone out: replies may be compact
    uint64_t compact_disconnects; //  the link's disconnects when compact was set
    uint32_t sends;               //  requests since the link monitor was last read
    uint64_t stamp_ticket;
    char stamp_identity[ZFED_STAMP_IDENTITY_MAX + 1];
};

zfed_client_t *zfed_client_new(const char *endpoint, const char *curve_cert, const char *server_key)
{
    zfed_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->socket = zsock_new(ZMQ_DEALER);
    if (!self->socket)
        goto err;
    zsock_set_linger(self->socket, 0);
    //  A round is sent at once; let it queue whole rather than block.
    zsock_set_sndhwm(self->socket, 0);
    zsock_set_rcvhwm(self->socket, 0);
    self->linkmon = zfed_linkmon_new(endpoint, "--controllers-dir", curve_cert != NULL);
    if (!self->linkmon || zfed_linkmon_attach(self->linkmon, zsock_resolve(self->socket)) != 0)
        goto err;
    if (curve_cert) {
        zfed_curve_client_t *curve = zfed_curve_client_new(curve_cert, server_key);
        int rc = curve ? zfed_curve_client_apply(curve, self->socket) : -1;
        zfed_curve_client_destroy(&curve);
        if (rc != 0)
            goto err;
    }
    if (zsock_connect(self->socket, "%s", endpoint) != 0) {
        zfed_error("cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
        goto err;
    }
    self->handle = zsock_resolve(self->socket);
    return self;
err:
    zfed_client_destroy(&self);
    return NULL;
}

void zfed_client_destroy(zfed_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_client_t *self = *self_p;
    if (self->holding)
        zfed_frames_close(&self->frames);
    zfed_linkmon_destroy(&self->linkmon); //  before the socket it watches
    zsock_destroy(&self->socket);
    free(self);
    *self_p = NULL;
}

//  Requests sent between two reads of the link monitor.  A read is a
//  zmq_msg_recv on the monitor's socket (about 1,600 instructions): once
//  per request it was an eighth of a 100,000-task round's sending.  Link
//  events are rare, every wait for a reply reads them too, and a send
//  that fails reads them at once.
#define LINKMON_SENDS_PER_READ 64

//  Reads the link monitor's events.  Compact requests were agreed with
//  the broker on one connection: once it is lost the broker that takes
//  its place may be another, one that drops compact frames (older, or
//  --no-compact), so requests go MDP/0.1, which every Majordomo broker
//  takes, from then on.  Replies in either form are still taken.
static void s_read_link(zfed_client_t *self)
{
    zfed_linkmon_handle(self->linkmon);
    const zfed_link_status_t *link = zfed_linkmon_link(self->linkmon);
    if (self->compact && link->disconnects != self->compact_disconnects) {
        self->compact = false;
        zfed_info("the connection to the broker was lost: requests go MDP/0.1 from now on (the "
                  "broker that takes its place may not take compact client frames)");
    }
}

void zfed_client_set_compact(zfed_client_t *self, bool compact)
{
    zfed_linkmon_handle(self->linkmon);
    self->compact_disconnects = zfed_linkmon_link(self->linkmon)->disconnects;
    self->compact = compact;
}

//  "" MDPC01 service [ticket] body, or the compact client frame and body;
//  more to follow when more is ZMQ_SNDMORE.  The first part goes without
//  waiting: when it is queued, the rest are too.
static int s_send_request(zfed_client_t *self, const char *service, const uint64_t *ticket,
                          const void *body, size_t size, int more)
{
    if (self->sends++ % LINKMON_SENDS_PER_READ == 0)
        s_read_link(self);
    uint8_t head[ZFED_MDPC_COMPACT_MAX];
    size_t head_size = 0;
    if (self->compact) {
        zfed_view_t name = {(const uint8_t *)service, strlen(service)};
        head_size = zfed_mdp_compact_client_write(head, ZFED_MDPW_REQUEST, name, ticket,
                                                  (zfed_view_t){NULL, 0});
        if (head_size == 0) {
            zfed_warn("cannot send to the broker: not a valid service name (%zu bytes; 1-255 "
                      "printable ones)",
                      name.size);
            errno = EINVAL;
            return -1;
        }
    }
    if (zfed_send_bytes(self->handle, head_size ? head : (const uint8_t *)"", head_size,
                        ZMQ_SNDMORE | ZMQ_DONTWAIT) != 0) {
        int failure = errno;
        s_read_link(self);
        self->sends = 0; //  and the next send reads it again
        if (!self->send_failing)
            zfed_warn("cannot send to the broker: %s",
                      failure == EAGAIN ? "no connection to it (refused?)" : zmq_strerror(failure));
        self->send_failing = true;
        errno = failure;
        return -1;
    }
    self->send_failing = false;
    self->compact_sent = self->compact_sent || head_size > 0;
    if (ticket)
        self->tickets_sent = true;
    if (head_size) { //  the ticket went in the head
        zfed_send_bytes(self->handle, body, size, more);
        return 0;
    }
    zfed_send_bytes(self->handle, ZFED_MDPC_HEADER, ZFED_MDP_HEADER_SIZE, ZMQ_SNDMORE);
    zfed_send_bytes(self->handle, service, strlen(service), ZMQ_SNDMORE);
    if (ticket) {
        uint8_t frame[ZFED_TICKET_SIZE];
        zfed_ticket_write(frame, *ticket);
        zfed_send_bytes(self->handle, frame, sizeof frame, ZMQ_SNDMORE);
    }
    zfed_send_bytes(self->handle, body, size, more);
    return 0;
}

int zfed_client_send(zfed_client_t *self, const char *service, const void *body, size_t size)
{
    return s_send_request(self, service, NULL, body, size, 0);
}

int zfed_client_send_ticket(zfed_client_t *self, const char *service, uint64_t ticket,
                            const void *body, size_t size)
{
    return s_send_request(self, service, &ticket, body, size, 0);
}

int zfed_client_send_data(zfed_client_t *self, const char *service, const void *body, size_t size,
                          const void *data, size_t data_size, zfed_client_free_fn *free_fn,
                          void *hint)
{
    return zfed_client_send_data_ticket(self, service, NULL, body, size, data, data_size, free_fn,
                                        hint);
}

int zfed_client_send_data_ticket(zfed_client_t *self, const char *service, const uint64_t *ticket,
                                 const void *body, size_t size, const void *data, size_t data_size,
                                 zfed_client_free_fn *free_fn, void *hint)
{
    zmq_msg_t frame;
    if (zmq_msg_init_data(&frame, (void *)data, data_size, free_fn, hint) != 0) {
        if (free_fn)
            free_fn((void *)data, hint);
        return -1;
    }
    if (s_send_request(self, service, ticket, body, size, ZMQ_SNDMORE) != 0) {
        zmq_msg_close(&frame); //  frees the data
        return -1;
    }
    //  The first part is queued, so the rest go too (sndhwm 0: no limit).
    if (zmq_msg_send(&frame, self->handle, 0) < 0)
        zmq_msg_close(&frame);
    return 0;
}

void zfed_client_allow_data(zfed_client_t *self, bool allow)
{
    self->allow_data = allow;
}

static void s_free_frame(void *data, void *hint)
{
    (void)data;
    zmq_msg_t *frame = hint;
    zmq_msg_close(frame);
    free(frame);
}

int zfed_client_take_data(zfed_client_t *self, void **data, size_t *size,
                          zfed_client_free_fn **free_fn, void **hint)
{
    if (!self->holding || self->data_index == 0)
        return -1;
    zmq_msg_t *frame = malloc(sizeof *frame);
    if (!frame)
        return -1;
    //  The frame moves out of the received message; what is left in its
    //  place is empty, so closing the message later frees nothing twice.
    zmq_msg_init(frame);
    zmq_msg_move(frame, &self->frames.part[self->data_index]);
    self->data_index = 0;
    *data = zmq_msg_data(frame);
    *size = zmq_msg_size(frame);
    *free_fn = s_free_frame;
    *hint = frame;
    return 0;
}

void *zfed_client_socket(zfed_client_t *self)
{
    return self->handle;
}

int zfed_client_recv(zfed_client_t *self, int64_t timeout_ms, const char **service,
                     const uint8_t **body, size_t *size)
{
    const uint8_t *data;
    size_t data_size;
    return zfed_client_recv_data(self, timeout_ms, service, body, size, &data, &data_size);
}

int zfed_client_recv_data(zfed_client_t *self, int64_t timeout_ms, const char **service,
                          const uint8_t **body, size_t *size, const uint8_t **data,
                          size_t *data_size)
{
    *data = NULL;
    *data_size = 0;
    self->data_index = 0;
    self->stamped = false;
    if (self->holding) {
        zfed_frames_close(&self->frames);
        self->holding = false;
    }
    int64_t deadline = zclock_mono() + (timeout_ms < 0 ? 0 : timeout_ms);
    while (true) {
        if (zsys_interrupted)
            return -1; //  the caller checks zsys_interrupted
        //  A reply already queued is taken at once: polling first would
        //  cost a system call per reply when a round's replies pour in.
        if (zfed_frames_recv(&self->frames, self->handle, ZMQ_DONTWAIT) != 0) {
            int64_t wait = deadline - zclock_mono();
            int signal_fd = zfed_signal_fd();
            zmq_pollitem_t items[3] = {{self->handle, 0, ZMQ_POLLIN, 0},
                                       {zfed_linkmon_socket(self->linkmon), 0, ZMQ_POLLIN, 0},
                                       {NULL, signal_fd, ZMQ_POLLIN, 0}};
            int rc = zmq_poll(items, signal_fd >= 0 ? 3 : 2, (long)(wait > 0 ? wait : 0));
            if (rc < 0 || zsys_interrupted)
                return -1;
            if (items[1].revents & ZMQ_POLLIN)
                s_read_link(self);
            if (rc == 0 || (!(items[0].revents & ZMQ_POLLIN) && zclock_mono() >= deadline))
                return 0;
            continue;
        }
        zfed_mdp_t mdp = {0};
        const char *reason = "too many frames";
        //  A compact reply only to a client that sent compact requests;
        //  to any other its frame 0 is not empty, as MDP/0.1 judges it.
        bool compact = self->compact_sent && self->frames.count > 0 &&
                       zfed_mdp_is_compact_client(self->frames.view[0]);
        bool parsed =
            self->frames.dropped == 0 &&
            (compact ? zfed_mdp_parse_compact_client(self->frames.view, self->frames.count,
                                                     ZFED_MDPW_REPLY, &mdp, &reason)
                     : zfed_mdp_parse_at_client(self->frames.view, self->frames.count, &mdp,
                                                &reason)) == 0;
        self->stamped = false; //  a dropped reply's stamp is no later one's
        if (parsed && mdp.compact && mdp.ticketed) {
            //  The stamp is in the head (its identity checked there).
            parsed = self->tickets_sent;
            reason = "a stamped compact reply, and no ticket was sent";
            if (parsed) {
                self->stamped = true;
                self->stamp_ticket = mdp.ticket;
                memcpy(self->stamp_identity, mdp.identity.data, mdp.identity.size);
                self->stamp_identity[mdp.identity.size] = '\0';
            }
        }
        //  A stamp goes in front of the body; it is not a body frame.  It
        //  is looked for only once this client has sent a ticket: a client
        //  that never did gets plain replies, whatever their first frame.
        if (parsed && !mdp.compact && self->tickets_sent &&
            zfed_stamp_read(self->frames.view[mdp.body_index], &self->stamp_ticket,
                            self->stamp_identity)) {
            self->stamped = true;
            mdp.body_index++;
            mdp.body_count--;
        }
        //  A stamp and no body frame: handed over empty, so that the
        //  caller can say whose it was.
        if (parsed && (mdp.body_count == 1 || (mdp.body_count == 2 && self->allow_data) ||
                       (mdp.body_count == 0 && self->stamped))) {
            memcpy(self->service, mdp.service.data, mdp.service.size);
            self->service[mdp.service.size] = '\0';
            *service = self->service;
            *body = mdp.body_count ? self->frames.view[mdp.body_index].data : (const uint8_t *)"";
            *size = mdp.body_count ? self->frames.view[mdp.body_index].size : 0;
            if (mdp.body_count == 2) {
                self->data_index = mdp.body_index + 1;
                *data = self->frames.view[self->data_index].data;
                *data_size = self->frames.view[self->data_index].size;
            }
            self->holding = true;
            return 1;
        }
        self->malformed++;
        zfed_warn("dropped a malformed reply: %s",
                  mdp.body_count > 1 ? "several body frames" : reason);
        zfed_frames_close(&self->frames);
        if (timeout_ms >= 0 && zclock_mono() >= deadline)
            return 0;
    }
}

bool zfed_client_stamp(zfed_client_t *self, uint64_t *ticket, const char **identity)
{
    if (!self->holding || !self->stamped)
        return false;
    *ticket = self->stamp_ticket;
    *identity = self->stamp_identity;
    return true;
}

uint64_t zfed_client_malformed(zfed_client_t *self)
{
    return self->malformed;
}

const zfed_link_status_t *zfed_client_link(zfed_client_t *self)
{
    s_read_link(self);
    return zfed_linkmon_link(self->linkmon);
}
