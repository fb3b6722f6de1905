/*  zfed_fetcher - chunk transfers over one MDP client connection.

    Each transfer has `window` slots; a slot is a fetch outstanding (or
    waiting out a 429 back-off), and a chunk handed to the owner holds its
    window place until the owner destroys it.  Replies find their
    transfer through a hash of running transfers by id (a controller's
    pass may read hundreds of results at once), then their slot by index
    (a scan of at most `window`).

    Events wait in one queue, oldest first.  A transfer the owner destroys
    takes its queued events with it; one whose chunks the owner still
    holds lingers, detached, until the last of them is destroyed.
*/
#include "zfed/zfed_fetcher.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_transfer.h"
#include "zfed/zfed_util.h"
#include "core/zfed_list.h"
#include "transport/zfed_curve.h"
#include "wire/zfed_frames.h"

#include <czmq.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Replies read per handle() call before the owner's loop gets its turn.
#define DRAIN_BATCH  256
#define REASON_MAX   256
#define ENDPOINT_MAX 1024

typedef struct {
    bool used;
    bool waiting; //  after a 429: not outstanding, fetched again at due_ms
    uint32_t index;
    int64_t due_ms; //  timeout (outstanding) or end of the back-off (waiting)
    unsigned sends; //  sends after a timeout, the first included
    int backoff_ms; //  the next 429's back-off
} slot_t;

struct _zfed_fetch_t {
    zfed_link_t link; //  on the fetcher's list until the owner destroys it
    zfed_fetcher_t *owner;
    uint8_t id[ZFED_MODEL_ID_SIZE];
    char source[ZFED_BLOB_SERVICE_SIZE];
    uint64_t size;
    uint32_t chunk;
    uint64_t chunks;   //  in the model
    uint64_t first;    //  first chunk asked for
    uint64_t next;     //  next chunk to fetch
    uint64_t received; //  chunks handed over
    unsigned live;     //  handed over and not destroyed
    unsigned used;     //  slots in use
    slot_t *slots;
    zfed_fetch_state_t state;
    bool detached; //  destroyed by the owner while chunks live
    void *user;
    char error[REASON_MAX];
};

struct _zfed_chunk_t {
    zfed_fetch_t *fetch;
    uint64_t index;
    uint64_t offset;
    zmq_msg_t frame;
};

typedef struct {
    zfed_link_t link;
    zfed_fetch_event_t event;
} event_t;

typedef struct {
    zfed_link_t link;
    char service[ZFED_MDP_SERVICE_MAX + 1];
    int64_t deadline_ms;
    void *user;
} release_t;

struct _zfed_fetcher_t {
    zfed_fetcher_config_t config;
    char endpoint[ENDPOINT_MAX + 1];
    zfed_curve_client_t *curve;
    zsock_t *socket;
    void *handle;
    zhashx_t *running;     //  id -> zfed_fetch_t, while it runs
    zfed_link_t transfers; //  every transfer the owner has not destroyed
    zfed_link_t events;
    zfed_link_t releases;
    zfed_frames_t frames;
    msgpack_sbuffer body;
    zfed_fetcher_stats_t stats;
};

//  ---------------------------------------------------------------------
//  Ids as hash keys: 32 bytes, already random

static size_t s_id_hash(const void *key)
{
    size_t hash;
    memcpy(&hash, key, sizeof hash);
    return hash;
}

static int s_id_compare(const void *one, const void *other)
{
    return memcmp(one, other, ZFED_MODEL_ID_SIZE);
}

//  ---------------------------------------------------------------------
//  Events

static void s_queue(zfed_fetcher_t *self, const zfed_fetch_event_t *what)
{
    event_t *event = calloc(1, sizeof *event);
    if (!event) {
        zfed_error("fetcher: out of memory for an event");
        return;
    }
    zfed_link_init(&event->link);
    event->event = *what;
    zfed_list_push_back(&self->events, &event->link);
}

bool zfed_fetcher_next(zfed_fetcher_t *self, zfed_fetch_event_t *event)
{
    zfed_link_t *link = zfed_list_first(&self->events);
    if (!link)
        return false;
    event_t *queued = zfed_container_of(link, event_t, link);
    *event = queued->event;
    zfed_link_remove(link);
    free(queued);
    return true;
}

//  ---------------------------------------------------------------------
//  Sending

static void s_send_request(zfed_fetcher_t *self, const char *service)
{
    //  A full queue (no broker yet) loses the request; its timeout
    //  sends it again.
    if (zfed_send_bytes(self->handle, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) != 0)
        return;
    zfed_send_bytes(self->handle, ZFED_MDPC_HEADER, ZFED_MDP_HEADER_SIZE, ZMQ_SNDMORE);
    zfed_send_bytes(self->handle, service, strlen(service), ZMQ_SNDMORE);
    zfed_send_bytes(self->handle, self->body.data, self->body.size, 0);
}

static void s_send_fetch(zfed_fetcher_t *self, zfed_fetch_t *fetch, slot_t *slot, int64_t now)
{
    slot->waiting = false;
    slot->due_ms = now + self->config.timeout_ms;
    if (zfed_transfer_encode_fetch(&self->body, fetch->id, slot->index) != 0)
        return; //  out of memory: the timeout tries again
    s_send_request(self, fetch->source);
    self->stats.fetches++;
}

//  Fetches more while the window has room.
static void s_fill(zfed_fetcher_t *self, zfed_fetch_t *fetch)
{
    int64_t now = zfed_clock_ms();
    for (unsigned index = 0; index < self->config.window && fetch->state == ZFED_FETCH_RUNNING;
         index++) {
        if (fetch->next >= fetch->chunks || fetch->used + fetch->live >= self->config.window)
            return;
        slot_t *slot = &fetch->slots[index];
        if (slot->used)
            continue;
        *slot = (slot_t){.used = true,
                         .index = (uint32_t)fetch->next++,
                         .sends = 1,
                         .backoff_ms = ZFED_FETCH_BUSY_BACKOFF_MS};
        fetch->used++;
        s_send_fetch(self, fetch, slot, now);
    }
}

//  ---------------------------------------------------------------------
//  Transfers

static void s_free_fetch(zfed_fetch_t *fetch)
{
    free(fetch->slots);
    free(fetch);
}

//  Out of the hash of running transfers: replies for it are dropped from
//  now, and no timer looks at it.
static void s_stop(zfed_fetch_t *fetch)
{
    zfed_fetcher_t *self = fetch->owner;
    if (self && zhashx_lookup(self->running, fetch->id) == fetch) {
        zhashx_delete(self->running, fetch->id);
        self->stats.transfers--;
    }
    for (unsigned index = 0; index < (self ? self->config.window : 0); index++)
        fetch->slots[index].used = false;
    fetch->used = 0;
}

static void s_fail(zfed_fetch_t *fetch, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void s_fail(zfed_fetch_t *fetch, const char *format, ...)
{
    zfed_fetcher_t *self = fetch->owner;
    if (fetch->state != ZFED_FETCH_RUNNING)
        return;
    va_list args;
    va_start(args, format);
    vsnprintf(fetch->error, sizeof fetch->error, format, args);
    va_end(args);
    fetch->state = ZFED_FETCH_FAILED;
    s_stop(fetch);
    self->stats.failed++;
    zfed_debug("fetch of %s failed: %s", fetch->source, fetch->error);
    zfed_fetch_event_t event = {.kind = ZFED_FETCH_EVENT_FAILED,
                                .fetch = fetch,
                                .user = fetch->user,
                                .reason = fetch->error};
    s_queue(self, &event);
}

zfed_fetch_t *zfed_fetcher_start(zfed_fetcher_t *self, const zfed_descriptor_t *model,
                                 uint64_t first, void *user, char *reason, size_t reason_size)
{
    uint64_t chunks = zfed_descriptor_chunks(model);
    const char *problem = NULL;
    if (zfed_descriptor_is_inline(model))
        problem = "an inline model is not fetched";
    else if (first > chunks)
        problem = "the first chunk asked for is past the model's last";
    else if (zhashx_lookup(self->running, model->id))
        problem = "a transfer of this model is running already";
    if (problem) {
        snprintf(reason, reason_size, "%s", problem);
        return NULL;
    }
    zfed_fetch_t *fetch = calloc(1, sizeof *fetch);
    if (fetch)
        fetch->slots = calloc(self->config.window, sizeof *fetch->slots);
    if (!fetch || !fetch->slots) {
        free(fetch);
        snprintf(reason, reason_size, "out of memory");
        return NULL;
    }
    zfed_link_init(&fetch->link);
    fetch->owner = self;
    memcpy(fetch->id, model->id, ZFED_MODEL_ID_SIZE);
    snprintf(fetch->source, sizeof fetch->source, "%s", model->source);
    fetch->size = model->size;
    fetch->chunk = model->chunk;
    fetch->chunks = chunks;
    fetch->first = first;
    fetch->next = first;
    fetch->user = user;
    if (zhashx_insert(self->running, fetch->id, fetch) != 0) {
        s_free_fetch(fetch);
        snprintf(reason, reason_size, "out of memory");
        return NULL;
    }
    zfed_list_push_back(&self->transfers, &fetch->link);
    self->stats.transfers++;
    if (first == chunks) { //  nothing left to read
        fetch->state = ZFED_FETCH_WHOLE;
        s_stop(fetch);
        self->stats.whole++;
        zfed_fetch_event_t event = {.kind = ZFED_FETCH_EVENT_WHOLE, .fetch = fetch, .user = user};
        s_queue(self, &event);
    } else
        s_fill(self, fetch);
    return fetch;
}

static void s_chunk_free(zfed_chunk_t *chunk)
{
    zmq_msg_close(&chunk->frame);
    free(chunk);
}

void zfed_fetch_destroy(zfed_fetch_t **fetch_p)
{
    if (!fetch_p || !*fetch_p)
        return;
    zfed_fetch_t *fetch = *fetch_p;
    *fetch_p = NULL;
    zfed_fetcher_t *self = fetch->owner;
    if (self) {
        s_stop(fetch);
        zfed_link_remove(&fetch->link);
        //  Its events not yet taken go with it.
        for (zfed_link_t *link = self->events.next, *next; link != &self->events; link = next) {
            next = link->next;
            event_t *event = zfed_container_of(link, event_t, link);
            if (event->event.fetch != fetch)
                continue;
            if (event->event.chunk) {
                fetch->live--;
                s_chunk_free(event->event.chunk);
            }
            zfed_link_remove(link);
            free(event);
        }
    }
    fetch->owner = NULL;
    if (fetch->live > 0)
        fetch->detached = true; //  freed with its last chunk
    else
        s_free_fetch(fetch);
}

zfed_fetch_state_t zfed_fetch_state(const zfed_fetch_t *self)
{
    return self->state;
}

const char *zfed_fetch_error(const zfed_fetch_t *self)
{
    return self->error;
}

void *zfed_fetch_user(const zfed_fetch_t *self)
{
    return self->user;
}

uint64_t zfed_fetch_received(const zfed_fetch_t *self)
{
    return self->received;
}

uint64_t zfed_fetch_chunks(const zfed_fetch_t *self)
{
    return self->chunks - self->first;
}

//  ---------------------------------------------------------------------
//  Chunks

uint64_t zfed_chunk_index(const zfed_chunk_t *self)
{
    return self->index;
}

uint64_t zfed_chunk_offset(const zfed_chunk_t *self)
{
    return self->offset;
}

const void *zfed_chunk_data(const zfed_chunk_t *self)
{
    return zmq_msg_data((zmq_msg_t *)&self->frame);
}

size_t zfed_chunk_size(const zfed_chunk_t *self)
{
    return zmq_msg_size((zmq_msg_t *)&self->frame);
}

void *zfed_chunk_user(const zfed_chunk_t *self)
{
    return self->fetch->user;
}

void zfed_chunk_destroy(zfed_chunk_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_chunk_t *chunk = *self_p;
    *self_p = NULL;
    zfed_fetch_t *fetch = chunk->fetch;
    s_chunk_free(chunk);
    fetch->live--;
    if (fetch->detached) {
        if (fetch->live == 0)
            s_free_fetch(fetch);
    } else if (fetch->owner)
        s_fill(fetch->owner, fetch);
}

//  ---------------------------------------------------------------------
//  Replies

static slot_t *s_slot(zfed_fetcher_t *self, zfed_fetch_t *fetch, uint32_t index)
{
    for (unsigned at = 0; at < self->config.window; at++) {
        slot_t *slot = &fetch->slots[at];
        if (slot->used && !slot->waiting && slot->index == index)
            return slot;
    }
    return NULL;
}

//  A 200 that matches: the chunk goes to the owner with its frame.
static void s_deliver(zfed_fetcher_t *self, zfed_fetch_t *fetch, slot_t *slot, zmq_msg_t *frame,
                      uint64_t offset)
{
    zfed_chunk_t *chunk = calloc(1, sizeof *chunk);
    if (!chunk)
        return; //  the slot stays: its timeout fetches it again
    chunk->fetch = fetch;
    chunk->index = slot->index;
    chunk->offset = offset;
    zmq_msg_init(&chunk->frame);
    zmq_msg_move(&chunk->frame, frame);
    slot->used = false;
    fetch->used--;
    fetch->live++;
    fetch->received++;
    self->stats.chunks++;
    self->stats.bytes += zmq_msg_size(&chunk->frame);
    zfed_fetch_event_t event = {
        .kind = ZFED_FETCH_EVENT_CHUNK, .fetch = fetch, .user = fetch->user, .chunk = chunk};
    s_queue(self, &event);
    if (fetch->received == fetch->chunks - fetch->first) {
        fetch->state = ZFED_FETCH_WHOLE;
        s_stop(fetch);
        self->stats.whole++;
        zfed_fetch_event_t whole = {
            .kind = ZFED_FETCH_EVENT_WHOLE, .fetch = fetch, .user = fetch->user};
        s_queue(self, &whole);
    } else
        s_fill(self, fetch);
}

static void s_chunk_reply(zfed_fetcher_t *self, const zfed_mdp_t *mdp, const zfed_transfer_t *reply)
{
    zfed_fetch_t *fetch = zhashx_lookup(self->running, reply->id);
    slot_t *slot = fetch ? s_slot(self, fetch, reply->index) : NULL;
    //  Only the service we asked may answer for its model.
    if (!slot || mdp->service.size != strlen(fetch->source) ||
        memcmp(mdp->service.data, fetch->source, mdp->service.size) != 0) {
        self->stats.dropped++;
        return;
    }
    if (reply->code == ZFED_CHUNK_OK) {
        uint64_t offset;
        size_t length;
        zfed_chunk_range(fetch->size, fetch->chunk, reply->index, &offset, &length);
        if (mdp->body_count != 2 || self->frames.view[mdp->body_index + 1].size != length) {
            //  A short or missing chunk: dropped; the fetch times out and
            //  goes again.
            self->stats.dropped++;
            return;
        }
        s_deliver(self, fetch, slot, &self->frames.part[mdp->body_index + 1], offset);
        return;
    }
    if (reply->code == ZFED_CHUNK_BUSY) {
        self->stats.busy++;
        slot->waiting = true;
        slot->due_ms = zfed_clock_ms() + slot->backoff_ms;
        slot->backoff_ms *= 2;
        if (slot->backoff_ms > ZFED_FETCH_BUSY_BACKOFF_MAX)
            slot->backoff_ms = ZFED_FETCH_BUSY_BACKOFF_MAX;
        return;
    }
    s_fail(fetch, "chunk %u from %s: %u %.*s", reply->index, fetch->source, reply->code,
           (int)reply->text.size, (const char *)reply->text.data);
}

static void s_release_done(zfed_fetcher_t *self, release_t *release, bool ok, uint32_t count)
{
    zfed_fetch_event_t event = {
        .kind = ZFED_FETCH_EVENT_RELEASED, .user = release->user, .ok = ok, .count = count};
    s_queue(self, &event);
    zfed_link_remove(&release->link);
    free(release);
}

//  The oldest release waiting for an answer from service, or NULL.
static release_t *s_release_for(zfed_fetcher_t *self, const zfed_view_t *service)
{
    for (zfed_link_t *link = self->releases.next; link != &self->releases; link = link->next) {
        release_t *release = zfed_container_of(link, release_t, link);
        if (strlen(release->service) == service->size &&
            memcmp(release->service, service->data, service->size) == 0)
            return release;
    }
    return NULL;
}

//  A zfed.error from the broker (the service has no worker, lost it, or
//  our key may not ask it): every transfer from that service fails, since
//  the reply cannot say which request it answers.
static void s_broker_error(zfed_fetcher_t *self, const zfed_mdp_t *mdp, const zfed_msg_t *error)
{
    int length = (int)mdp->service.size;
    const char *service = (const char *)mdp->service.data;
    for (zfed_link_t *link = self->transfers.next, *next; link != &self->transfers; link = next) {
        next = link->next;
        zfed_fetch_t *fetch = zfed_container_of(link, zfed_fetch_t, link);
        if (strlen(fetch->source) == mdp->service.size &&
            memcmp(fetch->source, service, mdp->service.size) == 0)
            s_fail(fetch, "the broker answered a fetch from %.*s with %u: %s", length, service,
                   zfed_msg_error_code(error), zfed_msg_error_text(error));
    }
    release_t *release;
    while ((release = s_release_for(self, &mdp->service)) != NULL)
        s_release_done(self, release, false, 0);
}

static void s_reply(zfed_fetcher_t *self)
{
    zfed_mdp_t mdp;
    const char *why = NULL;
    if (self->frames.dropped > 0 ||
        zfed_mdp_parse_at_client(self->frames.view, self->frames.count, &mdp, &why) != 0) {
        self->stats.dropped++;
        return;
    }
    const zfed_view_t *body = &self->frames.view[mdp.body_index];
    zfed_transfer_t reply;
    char reason[REASON_MAX];
    if (zfed_transfer_decode(body->data, body->size, &reply, reason, sizeof reason) == 0) {
        if (reply.kind == ZFED_TRANSFER_CHUNK) {
            s_chunk_reply(self, &mdp, &reply);
            return;
        }
        release_t *release = reply.kind == ZFED_TRANSFER_RELEASED && mdp.body_count == 1
                                 ? s_release_for(self, &mdp.service)
                                 : NULL;
        if (release) {
            self->stats.released += reply.count;
            s_release_done(self, release, true, reply.count);
        } else
            self->stats.dropped++;
        return;
    }
    zfed_msg_t *error = zfed_msg_decode(body->data, body->size, reason, sizeof reason);
    if (error && zfed_msg_kind(error) == ZFED_MSG_ERROR)
        s_broker_error(self, &mdp, error);
    else
        self->stats.dropped++;
    zfed_msg_destroy(&error);
}

int zfed_fetcher_handle(zfed_fetcher_t *self)
{
    for (int handled = 0; handled < DRAIN_BATCH; handled++) {
        if (zfed_frames_recv(&self->frames, self->handle, ZMQ_DONTWAIT) != 0)
            break;
        s_reply(self);
        zfed_frames_close(&self->frames);
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Timers

static void s_tick_fetch(zfed_fetcher_t *self, zfed_fetch_t *fetch, int64_t now)
{
    if (fetch->state != ZFED_FETCH_RUNNING)
        return;
    for (unsigned index = 0; index < self->config.window; index++) {
        slot_t *slot = &fetch->slots[index];
        if (!slot->used || slot->due_ms > now)
            continue;
        if (!slot->waiting) {
            if (slot->sends > self->config.resends) {
                s_fail(fetch, "chunk %u from %s unanswered after %u sends", slot->index,
                       fetch->source, slot->sends);
                return;
            }
            slot->sends++;
            self->stats.resent++;
        }
        s_send_fetch(self, fetch, slot, now);
    }
}

void zfed_fetcher_tick(zfed_fetcher_t *self, int64_t now_ms)
{
    for (zfed_link_t *link = self->transfers.next, *next; link != &self->transfers; link = next) {
        next = link->next;
        s_tick_fetch(self, zfed_container_of(link, zfed_fetch_t, link), now_ms);
    }
    for (zfed_link_t *link = self->releases.next, *next; link != &self->releases; link = next) {
        next = link->next;
        release_t *release = zfed_container_of(link, release_t, link);
        if (release->deadline_ms <= now_ms)
            s_release_done(self, release, false, 0);
    }
}

int64_t zfed_fetcher_next_due(const zfed_fetcher_t *self)
{
    int64_t due = INT64_MAX;
    for (zfed_link_t *link = self->transfers.next; link != &self->transfers; link = link->next) {
        const zfed_fetch_t *fetch = zfed_container_of(link, zfed_fetch_t, link);
        for (unsigned index = 0; index < self->config.window; index++)
            if (fetch->slots[index].used && fetch->slots[index].due_ms < due)
                due = fetch->slots[index].due_ms;
    }
    for (zfed_link_t *link = self->releases.next; link != &self->releases; link = link->next) {
        const release_t *release = zfed_container_of(link, release_t, link);
        if (release->deadline_ms < due)
            due = release->deadline_ms;
    }
    return due;
}

//  ---------------------------------------------------------------------
//  Releases

int zfed_fetcher_release(zfed_fetcher_t *self, const char *service,
                         const uint8_t (*ids)[ZFED_MODEL_ID_SIZE], size_t count, void *user)
{
    if (!service || !zfed_blob_service_valid(service, strlen(service)) ||
        zfed_transfer_encode_release(&self->body, ids, count) != 0)
        return -1;
    release_t *release = calloc(1, sizeof *release);
    if (!release)
        return -1;
    zfed_link_init(&release->link);
    snprintf(release->service, sizeof release->service, "%s", service);
    release->deadline_ms = zfed_clock_ms() + self->config.release_timeout_ms;
    release->user = user;
    zfed_list_push_back(&self->releases, &release->link);
    s_send_request(self, service);
    self->stats.releases++;
    return 0;
}

//  ---------------------------------------------------------------------
//  Construction

void zfed_fetcher_config_defaults(zfed_fetcher_config_t *config)
{
    memset(config, 0, sizeof *config);
    config->endpoint = "tcp://127.0.0.1:5555";
    config->window = ZFED_FETCH_WINDOW_DEFAULT;
    config->timeout_ms = ZFED_FETCH_TIMEOUT_MS_DEFAULT;
    config->resends = ZFED_FETCH_RESENDS_DEFAULT;
    config->release_timeout_ms = ZFED_RELEASE_TIMEOUT_MS_DEFAULT;
}

zfed_fetcher_t *zfed_fetcher_new(const zfed_fetcher_config_t *config)
{
    if (!config->endpoint || strlen(config->endpoint) > ENDPOINT_MAX || config->window < 1 ||
        config->window > ZFED_FETCH_WINDOW_MAX || config->timeout_ms <= 0 ||
        config->release_timeout_ms <= 0) {
        zfed_error("invalid fetcher configuration");
        return NULL;
    }
    zfed_fetcher_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    snprintf(self->endpoint, sizeof self->endpoint, "%s", config->endpoint);
    self->config.endpoint = self->endpoint;
    zfed_link_init(&self->transfers);
    zfed_link_init(&self->events);
    zfed_link_init(&self->releases);
    msgpack_sbuffer_init(&self->body);
    self->running = zhashx_new();
    if (!self->running)
        goto err;
    zhashx_set_key_hasher(self->running, s_id_hash);
    zhashx_set_key_comparator(self->running, s_id_compare);
    zhashx_set_key_duplicator(self->running, NULL);
    zhashx_set_key_destructor(self->running, NULL);
    if (config->curve_cert) {
        self->curve = zfed_curve_client_new(config->curve_cert, config->curve_server_key);
        if (!self->curve)
            goto err;
    }
    self->socket = zsock_new(ZMQ_DEALER);
    if (!self->socket)
        goto err;
    zsock_set_linger(self->socket, 0);
    if (self->curve && zfed_curve_client_apply(self->curve, self->socket) != 0)
        goto err;
    if (zsock_connect(self->socket, "%s", self->endpoint) != 0) {
        zfed_error("fetcher: cannot connect to %s", self->endpoint);
        goto err;
    }
    self->handle = zsock_resolve(self->socket);
    return self;
err:
    zfed_fetcher_destroy(&self);
    return NULL;
}

void zfed_fetcher_destroy(zfed_fetcher_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_fetcher_t *self = *self_p;
    zfed_link_t *link;
    //  Transfers the owner still holds lose their fetcher: their chunks
    //  stay valid, and zfed_fetch_destroy frees them as usual.
    while ((link = zfed_list_first(&self->transfers)) != NULL) {
        zfed_fetch_t *fetch = zfed_container_of(link, zfed_fetch_t, link);
        s_stop(fetch);
        zfed_link_remove(link);
        fetch->owner = NULL;
    }
    while ((link = zfed_list_first(&self->events)) != NULL) {
        event_t *event = zfed_container_of(link, event_t, link);
        if (event->event.chunk) {
            event->event.chunk->fetch->live--;
            s_chunk_free(event->event.chunk);
        }
        zfed_link_remove(link);
        free(event);
    }
    while ((link = zfed_list_first(&self->releases)) != NULL) {
        zfed_link_remove(link);
        free(zfed_container_of(link, release_t, link));
    }
    zhashx_destroy(&self->running);
    zsock_destroy(&self->socket);
    zfed_curve_client_destroy(&self->curve);
    msgpack_sbuffer_destroy(&self->body);
    free(self);
    *self_p = NULL;
}

void *zfed_fetcher_socket(const zfed_fetcher_t *self)
{
    return self->handle;
}

void zfed_fetcher_stats(const zfed_fetcher_t *self, zfed_fetcher_stats_t *stats)
{
    *stats = self->stats;
}
