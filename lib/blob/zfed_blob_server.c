/*  zfed_blob_server - models held by id, served in chunks over one MDP
    worker connection.

    Entries sit on an unsorted list, so a lookup is O(entries): fine,
    since a holder keeps a handful of models (a controller its global, a
    worker the results not yet released), and a fetch costs a chunk's
    worth of copying elsewhere anyway.

    A chunk of a model in memory, or of a model file (mapped read-only),
    goes out as a frame over the model's own bytes (zmq_msg_init_data): no
    copy, where a pread per chunk copied every byte once more on the
    owner's thread and malloc'ed a buffer for it.  libzmq frees such a frame on its
    I/O thread whenever it is done with it, so each entry counts its
    frames in flight atomically, and the model is destroyed by whichever
    comes last: the entry's removal or the last frame's release.
*/
#include "zfed/zfed_blob_server.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_transfer.h"
#include "zfed/zfed_util.h"
#include "zfed/zfed_worker.h"
#include "core/zfed_list.h"
#include "transport/zfed_curve.h"
#include "transport/zfed_mdpw.h"
#include "wire/zfed_frames.h"
#include "wire/zfed_reason.h"

#include <czmq.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Messages read per handle() call, so one busy connection cannot starve
//  the owner's other sockets or its timers.
#define DRAIN_BATCH 64
#define REASON_MAX  256
//  Longest endpoint kept (a copy, so the caller's string may go).
#define ENDPOINT_MAX 1024

typedef struct {
    zfed_link_t link;
    uint8_t id[ZFED_MODEL_ID_SIZE];
    uint64_t size;
    uint32_t chunk;
    int64_t expires_at_ms; //  0: never
    zfed_model_t *model;   //  in memory, or NULL for a reader
    const uint8_t *mapped; //  a reader's data mapped (its file's), or NULL
    zfed_blob_read_fn *read;
    zfed_blob_close_fn *close;
    void *reader;
    atomic_int refs; //  the server's (while listed) + one per frame in flight
} entry_t;

struct _zfed_blob_server_t {
    zfed_blob_server_config_t config;
    char service[ZFED_BLOB_SERVICE_SIZE];
    char endpoint[ENDPOINT_MAX + 1];
    zfed_curve_client_t *curve;
    zfed_mdpw_t connection;
    zfed_link_t entries;
    zfed_frames_t frames;
    msgpack_sbuffer reply;
    zfed_blob_server_stats_t stats;
};

//  ---------------------------------------------------------------------
//  Entries

static void s_entry_unref(entry_t *entry)
{
    if (atomic_fetch_sub(&entry->refs, 1) != 1)
        return;
    zfed_model_destroy(&entry->model);
    if (entry->close)
        entry->close(entry->reader);
    free(entry);
}

//  libzmq is done with a chunk frame over an entry's model (any thread).
//  A mapped file's pages of the chunk leave our address space, so the
//  file never counts in our RSS whole (only chunks in flight do).
static void s_frame_done(void *data, void *hint)
{
    entry_t *entry = hint;
    if (entry->mapped) {
        uint64_t offset = (uint64_t)((const uint8_t *)data - entry->mapped);
        uint64_t length = entry->size - offset < entry->chunk ? entry->size - offset : entry->chunk;
        zfed_safetensors_map_drop(entry->reader, offset, (size_t)length);
    }
    s_entry_unref(entry);
}

static void s_buffer_done(void *data, void *hint)
{
    free(data);
}

static entry_t *s_find(const zfed_blob_server_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE])
{
    for (zfed_link_t *link = self->entries.next; link != &self->entries; link = link->next) {
        entry_t *entry = zfed_container_of(link, entry_t, link);
        if (memcmp(entry->id, id, ZFED_MODEL_ID_SIZE) == 0)
            return entry;
    }
    return NULL;
}

static void s_drop(zfed_blob_server_t *self, entry_t *entry)
{
    zfed_link_remove(&entry->link);
    if (entry->model)
        self->stats.held_bytes -= entry->size;
    self->stats.entries--;
    s_entry_unref(entry);
}

//  A new listed entry, or -1 with the reason (nothing taken).
static int s_add(zfed_blob_server_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE], uint64_t size,
                 uint32_t chunk, int64_t hold_ms, bool in_memory, entry_t **entry_p, char *reason,
                 size_t reason_size)
{
    if (chunk < ZFED_CHUNK_MIN || chunk > ZFED_CHUNK_MAX)
        return zfed_reason_set(reason, reason_size, NULL, "a chunk is %u to %u bytes, not %u",
                               ZFED_CHUNK_MIN, ZFED_CHUNK_MAX, chunk);
    if (s_find(self, id))
        return zfed_reason_set(reason, reason_size, NULL, "a model with this id is held already");
    if (in_memory && !zfed_blob_server_fits(self, size))
        return zfed_reason_set(
            reason, reason_size, NULL,
            "cannot hold %llu bytes more: %llu of the %llu-byte hold budget are in use",
            (unsigned long long)size, (unsigned long long)self->stats.held_bytes,
            (unsigned long long)self->config.hold_bytes);
    entry_t *entry = calloc(1, sizeof *entry);
    if (!entry)
        return zfed_reason_set(reason, reason_size, NULL, "out of memory");
    zfed_link_init(&entry->link);
    memcpy(entry->id, id, ZFED_MODEL_ID_SIZE);
    entry->size = size;
    entry->chunk = chunk;
    atomic_init(&entry->refs, 1);
    if (hold_ms == ZFED_HOLD_DEFAULT)
        hold_ms = self->config.hold_ms;
    entry->expires_at_ms = hold_ms > 0 ? zfed_clock_ms() + hold_ms : 0;
    zfed_list_push_back(&self->entries, &entry->link);
    if (in_memory)
        self->stats.held_bytes += size;
    self->stats.entries++;
    *entry_p = entry;
    return 0;
}

int zfed_blob_server_hold(zfed_blob_server_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE],
                          zfed_model_t **model_p, uint32_t chunk, int64_t hold_ms, char *reason,
                          size_t reason_size)
{
    entry_t *entry = NULL;
    if (!model_p || !*model_p)
        return zfed_reason_set(reason, reason_size, NULL, "no model");
    if (s_add(self, id, zfed_model_nbytes(*model_p), chunk, hold_ms, true, &entry, reason,
              reason_size) != 0)
        return -1;
    entry->model = *model_p;
    *model_p = NULL;
    return 0;
}

int zfed_blob_server_hold_reader(zfed_blob_server_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE],
                                 uint64_t size, uint32_t chunk, zfed_blob_read_fn *read,
                                 zfed_blob_close_fn *close, void *reader, int64_t hold_ms,
                                 char *reason, size_t reason_size)
{
    entry_t *entry = NULL;
    if (!read)
        return zfed_reason_set(reason, reason_size, NULL, "no reader");
    if (s_add(self, id, size, chunk, hold_ms, false, &entry, reason, reason_size) != 0)
        return -1;
    entry->read = read;
    entry->close = close;
    entry->reader = reader;
    return 0;
}

static int s_file_read(void *reader, uint64_t offset, void *buffer, size_t size, char *error,
                       size_t error_size)
{
    return zfed_safetensors_read(reader, offset, buffer, size, error, error_size);
}

static void s_file_close(void *reader)
{
    zfed_safetensors_t *file = reader;
    zfed_safetensors_close(&file);
}

int zfed_blob_server_hold_file(zfed_blob_server_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE],
                               zfed_safetensors_t **file_p, uint32_t chunk, int64_t hold_ms,
                               char *reason, size_t reason_size)
{
    if (!file_p || !*file_p)
        return zfed_reason_set(reason, reason_size, NULL, "no file");
    uint64_t size = zfed_layout_nbytes(zfed_safetensors_layout(*file_p));
    //  Mapped when it can be (pread per chunk when not: an empty model,
    //  or a file system that cannot map).
    char why[REASON_MAX];
    const uint8_t *mapped = size > 0 ? zfed_safetensors_map(*file_p, why, sizeof why) : NULL;
    if (size > 0 && !mapped)
        zfed_warn("%s: %s; serving the model by pread", self->service, why);
    entry_t *entry = NULL;
    if (s_add(self, id, size, chunk, hold_ms, false, &entry, reason, reason_size) != 0)
        return -1;
    entry->read = s_file_read;
    entry->close = s_file_close;
    entry->reader = *file_p;
    entry->mapped = mapped;
    *file_p = NULL;
    return 0;
}

bool zfed_blob_server_fits(const zfed_blob_server_t *self, uint64_t bytes)
{
    return self->config.hold_bytes == 0 ||
           (bytes <= self->config.hold_bytes &&
            self->stats.held_bytes <= self->config.hold_bytes - bytes);
}

bool zfed_blob_server_holds(const zfed_blob_server_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE])
{
    return s_find(self, id) != NULL;
}

bool zfed_blob_server_remove(zfed_blob_server_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE])
{
    entry_t *entry = s_find(self, id);
    if (entry)
        s_drop(self, entry);
    return entry != NULL;
}

//  ---------------------------------------------------------------------
//  Answering requests

//  Sends the reply for the request at address: its body in self->reply,
//  then data (taken) when it is not NULL.
static void s_send_reply(zfed_blob_server_t *self, const zfed_view_t *address, zmq_msg_t *data)
{
    zfed_mdpw_t *connection = &self->connection;
    if (zfed_mdpw_reply_envelope(connection, address->data, address->size) != 0) {
        //  The broker is not reading: start over on a fresh socket; it
        //  re-dispatches what we held.
        if (data)
            zmq_msg_close(data);
        zfed_mdpw_reconnect_later(connection, "cannot deliver a reply");
        return;
    }
    zfed_send_bytes(connection->handle, self->reply.data, self->reply.size, data ? ZMQ_SNDMORE : 0);
    if (data) {
        if (zmq_msg_send(data, connection->handle, 0) < 0)
            zmq_msg_close(data);
    }
}

static void s_reply_chunk(zfed_blob_server_t *self, const zfed_view_t *address,
                          const uint8_t id[ZFED_MODEL_ID_SIZE], uint32_t index, uint32_t code,
                          const char *format, ...) __attribute__((format(printf, 6, 7)));

//  A zfed.chunk without data (any code but 200), its text made safe.
static void s_reply_chunk(zfed_blob_server_t *self, const zfed_view_t *address,
                          const uint8_t id[ZFED_MODEL_ID_SIZE], uint32_t index, uint32_t code,
                          const char *format, ...)
{
    char text[ZFED_ERROR_TEXT_MAX + 1];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof text, format, args);
    va_end(args);
    zfed_fault_t fault;
    zfed_fault_set(&fault, code, "", "%s", text);
    if (zfed_transfer_encode_chunk(&self->reply, id, index, code, fault.text) != 0) {
        zfed_error("%s: cannot encode a chunk reply (out of memory)", self->service);
        msgpack_sbuffer_clear(&self->reply);
    }
    s_send_reply(self, address, NULL);
}

//  The data frame of chunk index of entry: over the model's bytes, or
//  read into a buffer of its own.  0, or -1 with the reason.
static int s_chunk_frame(entry_t *entry, uint64_t offset, size_t length, zmq_msg_t *frame,
                         char *error, size_t error_size)
{
    if (entry->model || entry->mapped) {
        uint8_t *bytes = entry->model ? (uint8_t *)zfed_model_data(entry->model) + offset
                                      : (uint8_t *)entry->mapped + offset;
        atomic_fetch_add(&entry->refs, 1);
        if (zmq_msg_init_data(frame, bytes, length, s_frame_done, entry) != 0) {
            atomic_fetch_sub(&entry->refs, 1);
            return zfed_reason_set(error, error_size, NULL, "out of memory for a frame");
        }
        return 0;
    }
    void *buffer = malloc(length);
    if (!buffer)
        return zfed_reason_set(error, error_size, NULL, "out of memory reading %zu bytes", length);
    if (entry->read(entry->reader, offset, buffer, length, error, error_size) != 0 ||
        zmq_msg_init_data(frame, buffer, length, s_buffer_done, NULL) != 0) {
        free(buffer);
        return -1;
    }
    return 0;
}

static void s_fetch(zfed_blob_server_t *self, const zfed_view_t *address,
                    const zfed_transfer_t *fetch)
{
    entry_t *entry = s_find(self, fetch->id);
    if (!entry) {
        self->stats.unknown++;
        s_reply_chunk(self, address, fetch->id, fetch->index, ZFED_CHUNK_NOT_FOUND,
                      "no model with this id here");
        return;
    }
    uint64_t offset;
    size_t length;
    if (zfed_chunk_range(entry->size, entry->chunk, fetch->index, &offset, &length) != 0) {
        self->stats.out_of_range++;
        s_reply_chunk(self, address, fetch->id, fetch->index, ZFED_CHUNK_OUT_OF_RANGE,
                      "chunk %u of a model of %llu chunks", fetch->index,
                      (unsigned long long)zfed_chunk_count(entry->size, entry->chunk));
        return;
    }
    zmq_msg_t frame;
    char error[REASON_MAX];
    if (s_chunk_frame(entry, offset, length, &frame, error, sizeof error) != 0) {
        //  A reader that fails once will fail again: the model is gone.
        zfed_warn("%s: cannot serve chunk %u: %s; dropping the model", self->service, fetch->index,
                  error);
        s_drop(self, entry);
        self->stats.unknown++;
        s_reply_chunk(self, address, fetch->id, fetch->index, ZFED_CHUNK_NOT_FOUND,
                      "the model cannot be read here any more: %s", error);
        return;
    }
    if (zfed_transfer_encode_chunk(&self->reply, fetch->id, fetch->index, ZFED_CHUNK_OK, "") != 0) {
        zmq_msg_close(&frame);
        return;
    }
    self->stats.chunks++;
    self->stats.bytes += length;
    s_send_reply(self, address, &frame);
}

static void s_release(zfed_blob_server_t *self, const zfed_view_t *address,
                      const zfed_transfer_t *release)
{
    uint8_t id[ZFED_MODEL_ID_SIZE];
    size_t cursor = 0;
    uint32_t count = 0;
    while (zfed_transfer_next_id(release, &cursor, id) == 0)
        count += zfed_blob_server_remove(self, id);
    self->stats.releases++;
    self->stats.released += count;
    if (zfed_transfer_encode_released(&self->reply, count) == 0)
        s_send_reply(self, address, NULL);
}

static void s_request(zfed_blob_server_t *self, const zfed_mdp_t *mdp)
{
    static const uint8_t no_id[ZFED_MODEL_ID_SIZE];
    const zfed_view_t *address = &mdp->address;
    const zfed_view_t *body = &self->frames.view[mdp->body_index];
    zfed_transfer_t request;
    char reason[REASON_MAX];
    if (mdp->body_count != 1) {
        self->stats.malformed++;
        s_reply_chunk(self, address, no_id, 0, ZFED_CHUNK_MALFORMED,
                      "a fetch is exactly one frame, got %zu", mdp->body_count);
    } else if (zfed_transfer_decode(body->data, body->size, &request, reason, sizeof reason) != 0) {
        self->stats.malformed++;
        s_reply_chunk(self, address, no_id, 0, ZFED_CHUNK_MALFORMED, "bad fetch: %s", reason);
    } else if (request.kind == ZFED_TRANSFER_FETCH) {
        self->stats.fetches++;
        s_fetch(self, address, &request);
    } else if (request.kind == ZFED_TRANSFER_RELEASE)
        s_release(self, address, &request);
    else {
        self->stats.malformed++;
        s_reply_chunk(self, address, no_id, 0, ZFED_CHUNK_MALFORMED, "expected %s or %s, got %s",
                      ZFED_KIND_FETCH, ZFED_KIND_RELEASE, zfed_transfer_kind_name(request.kind));
    }
}

static void s_message(zfed_blob_server_t *self)
{
    zfed_mdpw_t *connection = &self->connection;
    zfed_mdp_t mdp;
    const char *reason = "too many frames";
    if (self->frames.dropped > 0 ||
        zfed_mdp_parse_at_worker(self->frames.view, self->frames.count, &mdp, &reason) != 0) {
        self->stats.malformed++;
        zfed_warn("%s: dropped a message from the broker: %s", self->service, reason);
        return;
    }
    zfed_mdpw_heard(connection, mdp.command);
    switch (mdp.command) {
    case ZFED_MDP_REQUEST:
        s_request(self, &mdp);
        break;
    case ZFED_MDP_HEARTBEAT:
        break;
    case ZFED_MDP_DISCONNECT:
        zfed_mdpw_reconnect_later(connection, "broker sent DISCONNECT");
        break;
    default:
        self->stats.malformed++;
        zfed_warn("%s: unexpected %s from the broker ignored", self->service,
                  zfed_mdp_command_name(mdp.command));
        break;
    }
}

int zfed_blob_server_handle(zfed_blob_server_t *self)
{
    for (int handled = 0; handled < DRAIN_BATCH && self->connection.socket; handled++) {
        if (zfed_frames_recv(&self->frames, self->connection.handle, ZMQ_DONTWAIT) != 0)
            break;
        s_message(self);
        zfed_frames_close(&self->frames);
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Timers

void zfed_blob_server_tick(zfed_blob_server_t *self, int64_t now_ms)
{
    uint64_t generation = self->connection.generation;
    if (zfed_mdpw_tick(&self->connection, now_ms) && generation > 0)
        self->stats.reconnects++;
    for (zfed_link_t *link = self->entries.next, *next; link != &self->entries; link = next) {
        next = link->next;
        entry_t *entry = zfed_container_of(link, entry_t, link);
        if (entry->expires_at_ms && entry->expires_at_ms <= now_ms) {
            self->stats.expired++;
            s_drop(self, entry);
        }
    }
}

int64_t zfed_blob_server_next_due(const zfed_blob_server_t *self)
{
    int64_t due = zfed_mdpw_next_due(&self->connection);
    for (zfed_link_t *link = self->entries.next; link != &self->entries; link = link->next) {
        const entry_t *entry = zfed_container_of(link, entry_t, link);
        if (entry->expires_at_ms && entry->expires_at_ms < due)
            due = entry->expires_at_ms;
    }
    return due;
}

//  ---------------------------------------------------------------------
//  Construction

void zfed_blob_server_config_defaults(zfed_blob_server_config_t *config)
{
    memset(config, 0, sizeof *config);
    config->endpoint = "tcp://127.0.0.1:5555";
    config->credit = ZFED_BLOB_CREDIT_DEFAULT;
    config->heartbeat_ms = ZFED_MDP_HEARTBEAT_MS_DEFAULT;
    config->liveness = ZFED_MDP_LIVENESS_DEFAULT;
    config->reconnect_ms = ZFED_WORKER_RECONNECT_MS;
    config->reconnect_max_ms = ZFED_WORKER_RECONNECT_MAX_MS;
    config->hold_ms = ZFED_HOLD_MS_DEFAULT;
}

zfed_blob_server_t *zfed_blob_server_new(const zfed_blob_server_config_t *config)
{
    if (!config->endpoint || strlen(config->endpoint) > ENDPOINT_MAX || config->credit < 1 ||
        config->credit > ZFED_WORKER_MAX_CREDIT || config->heartbeat_ms <= 0 ||
        config->liveness <= 0 || config->reconnect_ms <= 0 ||
        config->reconnect_max_ms < config->reconnect_ms || config->hold_ms < 0 ||
        (config->service && !zfed_blob_service_valid(config->service, strlen(config->service)))) {
        zfed_error("invalid blob server configuration");
        return NULL;
    }
    zfed_blob_server_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    snprintf(self->endpoint, sizeof self->endpoint, "%s", config->endpoint);
    self->config.endpoint = self->endpoint;
    self->config.service = self->service;
    zfed_link_init(&self->entries);
    msgpack_sbuffer_init(&self->reply);
    if (config->service)
        snprintf(self->service, sizeof self->service, "%s", config->service);
    else if (zfed_blob_service_random(self->service) != 0) {
        zfed_error("cannot draw a random blob service name");
        goto err;
    }
    if (config->curve_cert) {
        self->curve = zfed_curve_client_new(config->curve_cert, config->curve_server_key);
        if (!self->curve)
            goto err;
    }
    zfed_mdpw_config_t connection = zfed_mdpw_config(
        self->endpoint, self->service, self->service, config->credit, config->heartbeat_ms,
        config->liveness, config->reconnect_ms, config->reconnect_max_ms, self->curve);
    zfed_mdpw_init(&self->connection, &connection);
    if (zfed_mdpw_open(&self->connection) != 0)
        goto err;
    return self;
err:
    zfed_blob_server_destroy(&self);
    return NULL;
}

void zfed_blob_server_destroy(zfed_blob_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_blob_server_t *self = *self_p;
    zfed_mdpw_close(&self->connection, true);
    zfed_link_t *link;
    while ((link = zfed_list_first(&self->entries)) != NULL)
        s_drop(self, zfed_container_of(link, entry_t, link));
    zfed_curve_client_destroy(&self->curve);
    msgpack_sbuffer_destroy(&self->reply);
    free(self);
    *self_p = NULL;
}

const char *zfed_blob_server_service(const zfed_blob_server_t *self)
{
    return self->service;
}

void *zfed_blob_server_socket(const zfed_blob_server_t *self)
{
    return self->connection.handle;
}

void zfed_blob_server_stats(const zfed_blob_server_t *self, zfed_blob_server_stats_t *stats)
{
    *stats = self->stats;
}
