/*  zfed_mdpw - one MDP/0.1 worker connection: socket, READY, heartbeats,
    reconnection with back-off.  */
#include "transport/zfed_mdpw.h"
#include "wire/zfed_frames.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_util.h"

#include <stdio.h>
#include <string.h>

//  Linger on a goodbye, so the DISCONNECT leaves the process.
#define CLOSE_LINGER_MS 100

zfed_mdpw_config_t zfed_mdpw_config(const char *endpoint, const char *service, const char *name,
                                    unsigned credit, int heartbeat_ms, int liveness,
                                    int reconnect_ms, int reconnect_max_ms,
                                    zfed_curve_client_t *curve)
{
    return (zfed_mdpw_config_t){.endpoint = endpoint,
                                .service = service,
                                .name = name,
                                .credit = credit,
                                .heartbeat_ms = heartbeat_ms,
                                .liveness = liveness,
                                .reconnect_ms = reconnect_ms,
                                .reconnect_max_ms = reconnect_max_ms,
                                .send_timeout_ms = ZFED_MDPW_SEND_TIMEOUT_MS,
                                .curve = curve};
}

void zfed_mdpw_init(zfed_mdpw_t *self, const zfed_mdpw_config_t *config)
{
    memset(self, 0, sizeof *self);
    self->config = *config;
    self->backoff_ms = config->reconnect_ms;
}

void zfed_mdpw_send_command(zfed_mdpw_t *self, uint8_t command, const char *service,
                            const char *extension)
{
    void *handle = self->handle;
    if (!handle)
        return;
    self->drained = false; //  a send, even one refused, may process commands
    int more = service ? ZMQ_SNDMORE : 0;
    if (zfed_send_bytes(handle, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) != 0)
        return; //  nothing queued: the connection is congested or closing
    zfed_send_bytes(handle, ZFED_MDPW_HEADER, ZFED_MDP_HEADER_SIZE, ZMQ_SNDMORE);
    zfed_send_bytes(handle, &command, 1, more);
    if (service) {
        zfed_send_bytes(handle, service, strlen(service), extension ? ZMQ_SNDMORE : 0);
        if (extension)
            zfed_send_bytes(handle, extension, strlen(extension), 0);
    }
    self->last_sent_ms = zfed_clock_ms();
}

//  The first frame of a reply waits up to the send timeout for room; once
//  it is queued, the rest of the message always goes.
static int s_reply_first(zfed_mdpw_t *self, const void *data, size_t size)
{
    void *handle = self->handle;
    self->drained = false; //  a send, even one refused, may process commands
    if (!handle || zfed_send_bytes(handle, data, size, ZMQ_SNDMORE) != 0)
        return -1;
    self->last_sent_ms = zfed_clock_ms();
    return 0;
}

int zfed_mdpw_reply_compact(zfed_mdpw_t *self, const void *address, size_t address_size)
{
    uint8_t head[ZFED_MDP_COMPACT_MAX];
    size_t size = zfed_mdp_compact_write(head, ZFED_MDPW_REPLY, address, address_size);
    if (size == 0)
        return -1; //  not an address a REQUEST could have carried
    return s_reply_first(self, head, size);
}

int zfed_mdpw_reply_envelope(zfed_mdpw_t *self, const void *address, size_t address_size)
{
    uint8_t command = ZFED_MDPW_REPLY;
    void *handle = self->handle;
    if (s_reply_first(self, "", 0) != 0)
        return -1;
    zfed_send_bytes(handle, ZFED_MDPW_HEADER, ZFED_MDP_HEADER_SIZE, ZMQ_SNDMORE);
    zfed_send_bytes(handle, &command, 1, ZMQ_SNDMORE);
    zfed_send_bytes(handle, address, address_size, ZMQ_SNDMORE);
    zfed_send_bytes(handle, "", 0, ZMQ_SNDMORE);
    return 0;
}

void zfed_mdpw_close(zfed_mdpw_t *self, bool goodbye)
{
    if (!self->socket)
        return;
    if (goodbye) {
        zfed_mdpw_send_command(self, ZFED_MDPW_DISCONNECT, NULL, NULL);
        zsock_set_linger(self->socket, CLOSE_LINGER_MS);
    }
    if (self->config.linkmon)
        zfed_linkmon_detach(self->config.linkmon);
    zsock_destroy(&self->socket);
    self->handle = NULL;
}

int zfed_mdpw_open(zfed_mdpw_t *self)
{
    const zfed_mdpw_config_t *config = &self->config;
    self->socket = zsock_new(ZMQ_DEALER);
    if (!self->socket)
        return -1;
    zsock_set_linger(self->socket, 0);
    if (config->send_timeout_ms > 0)
        zsock_set_sndtimeo(self->socket, config->send_timeout_ms);
    if (config->curve && zfed_curve_client_apply(config->curve, self->socket) != 0) {
        zsock_destroy(&self->socket);
        return -1;
    }
    if (config->linkmon && zfed_linkmon_attach(config->linkmon, zsock_resolve(self->socket)) != 0)
        zfed_warn("%s: cannot monitor the connection; handshake failures go unexplained",
                  config->name);
    if (zsock_connect(self->socket, "%s", config->endpoint) != 0) {
        zfed_error("%s: cannot connect to %s", config->name, config->endpoint);
        if (config->linkmon)
            zfed_linkmon_detach(config->linkmon);
        zsock_destroy(&self->socket);
        return -1;
    }
    self->handle = zsock_resolve(self->socket);
    self->drained = false;
    self->generation++;
    self->heard_since_ready = false;
    self->last_heard_ms = zfed_clock_ms();
    //  Offers only a zfed broker reads (PROTOCOL.md 3): with none, the
    //  READY is RFC 7's four frames.
    char extension[ZFED_MDP_EXTENSION_MAX + 1] = "";
    if (config->credit > 1)
        snprintf(extension, sizeof extension, "credit=%u", config->credit);
    if (config->compact)
        snprintf(extension + strlen(extension), sizeof extension - strlen(extension), "%s%s",
                 extension[0] ? " " : "", ZFED_MDP_OFFER_COMPACT);
    zfed_mdpw_send_command(self, ZFED_MDPW_READY, config->service, extension[0] ? extension : NULL);
    return 0;
}

void zfed_mdpw_reconnect_later(zfed_mdpw_t *self, const char *why)
{
    const zfed_mdpw_config_t *config = &self->config;
    zfed_mdpw_close(self, false);
    self->reconnect_at_ms = zfed_clock_ms() + self->backoff_ms;
    //  When the handshake was refused, the monitor has said why (and
    //  keeps the reminders rare); silence is only its consequence.
    const zfed_link_status_t *link = config->linkmon ? zfed_linkmon_link(config->linkmon) : NULL;
    bool explained = link && (link->state == ZFED_LINK_REFUSED || link->state == ZFED_LINK_FAILED);
    if (!explained && (!config->quiet || zfed_log_level() >= ZFED_LOG_DEBUG))
        zfed_warn("%s: %s; reconnecting in %d ms", config->name, why, self->backoff_ms);
    else
        zfed_debug("%s: %s; reconnecting in %d ms", config->name, why, self->backoff_ms);
    self->backoff_ms *= 2;
    if (self->backoff_ms > config->reconnect_max_ms)
        self->backoff_ms = config->reconnect_max_ms;
}

void zfed_mdpw_heard(zfed_mdpw_t *self, zfed_mdp_command_t command)
{
    self->last_heard_ms = zfed_clock_ms();
    //  A REQUEST or HEARTBEAT means the broker took our READY: the next
    //  outage starts again from the shortest back-off.  A DISCONNECT does
    //  not, so a broker that keeps refusing us is not hammered.
    if (!self->heard_since_ready && command != ZFED_MDP_DISCONNECT) {
        self->heard_since_ready = true;
        self->backoff_ms = self->config.reconnect_ms;
    }
}

int zfed_mdpw_tick(zfed_mdpw_t *self, int64_t now_ms)
{
    const zfed_mdpw_config_t *config = &self->config;
    if (!self->socket)
        return now_ms >= self->reconnect_at_ms && zfed_mdpw_open(self) == 0 ? 1 : 0;
    int64_t silence_ms = (int64_t)config->heartbeat_ms * config->liveness;
    if (now_ms - self->last_heard_ms > silence_ms)
        zfed_mdpw_reconnect_later(self, "broker silent");
    else if (now_ms - self->last_sent_ms >= config->heartbeat_ms)
        zfed_mdpw_send_command(self, ZFED_MDPW_HEARTBEAT, NULL, NULL);
    return 0;
}

int64_t zfed_mdpw_next_due(const zfed_mdpw_t *self)
{
    if (!self->socket)
        return self->reconnect_at_ms;
    int64_t heartbeat = self->last_sent_ms + self->config.heartbeat_ms;
    int64_t silence =
        self->last_heard_ms + (int64_t)self->config.heartbeat_ms * self->config.liveness + 1;
    return heartbeat < silence ? heartbeat : silence;
}
