/*  zfed_blob_server - a blob service: models held by id, served in chunks
    (schemas/MODELS.md 6-7).

    One MDP/0.1 worker connection (a DEALER to the broker) registered as
    "zfed.blob.<32 hex>", with credit (READY "credit=N"), heartbeats and
    reconnection with back-off as any zfed worker.  It answers zfed.fetch
    with zfed.chunk (code 200 and the chunk as a data frame, or 404, 416,
    400) and zfed.release with zfed.released.

    It owns no thread: the owner polls zfed_blob_server_socket() for input
    and calls zfed_blob_server_handle() when it is readable, and calls
    zfed_blob_server_tick() at zfed_blob_server_next_due() (heartbeats,
    reconnection, hold expiry).  Every call comes from the owner's thread.

    Entries are held by id until removed, released by a peer, or past
    their hold time.  An entry is a model in memory (taken: a chunk reply
    points into its buffer, zero copy, and the model lives until libzmq
    has sent the last such frame even when the entry is gone), or a range
    reader (a safetensors file, say: chunks are read on demand, so a 4 GiB
    global is served without loading it).  The hold budget counts the
    bytes of models in memory; a reader's entries cost it nothing.
*/
#ifndef ZFED_BLOB_SERVER_H_INCLUDED
#define ZFED_BLOB_SERVER_H_INCLUDED

#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_model.h"
#include "zfed/zfed_safetensors.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZFED_BLOB_CREDIT_DEFAULT 8
#define ZFED_HOLD_MS_DEFAULT     600000 //  MODELS.md 7: the C worker's --hold-ms
//  hold_ms for zfed_blob_server_hold*: the server's default; or never expire.
#define ZFED_HOLD_DEFAULT (-1)
#define ZFED_HOLD_FOREVER 0

typedef struct {
    const char *endpoint;         //  the broker
    const char *service;          //  NULL: a fresh random zfed.blob.<32 hex>
    unsigned credit;              //  fetches served at once (1-256)
    int heartbeat_ms;             //  must match the broker's
    int liveness;                 //  silent intervals before the broker counts as gone
    int reconnect_ms;             //  first back-off step
    int reconnect_max_ms;         //  back-off ceiling
    int64_t hold_ms;              //  default hold time (ZFED_HOLD_FOREVER: until removed)
    uint64_t hold_bytes;          //  bytes of models held in memory at once; 0 = no limit
    const char *curve_cert;       //  our secret certificate, or NULL for plaintext
    const char *curve_server_key; //  the broker's public key (Z85 or certificate file)
} zfed_blob_server_config_t;

typedef struct {
    uint64_t fetches;      //  zfed.fetch requests answered
    uint64_t chunks;       //  of which with code 200
    uint64_t bytes;        //  chunk bytes sent
    uint64_t unknown;      //  answered 404 (never held, released or expired)
    uint64_t out_of_range; //  answered 416
    uint64_t malformed;    //  answered 400 (or dropped: not even an MDP request)
    uint64_t releases;     //  zfed.release requests answered
    uint64_t released;     //  entries removed by them
    uint64_t expired;      //  entries removed past their hold time
    uint64_t reconnects;   //  fresh sockets after the first
    size_t entries;        //  held now
    uint64_t held_bytes;   //  bytes of models in memory held now
} zfed_blob_server_stats_t;

typedef struct _zfed_blob_server_t zfed_blob_server_t;

//  Reads size bytes at offset of an entry's data into buffer.  0, or -1
//  with the reason in error (the fetch is then answered 404 and the entry
//  removed).  Called on the owner's thread.
typedef int(zfed_blob_read_fn)(void *reader, uint64_t offset, void *buffer, size_t size,
                               char *error, size_t error_size);
//  Called once when an entry with a reader is gone.
typedef void(zfed_blob_close_fn)(void *reader);

void zfed_blob_server_config_defaults(zfed_blob_server_config_t *config);

//  Connects and sends READY at once.  NULL (reason logged) on a bad
//  configuration or a CURVE key that cannot be read.
zfed_blob_server_t *zfed_blob_server_new(const zfed_blob_server_config_t *config);
//  Sends DISCONNECT, drops every entry (models still in flight in libzmq
//  are freed when it is done with them).
void zfed_blob_server_destroy(zfed_blob_server_t **self_p);

//  The registered name, "zfed.blob.<32 hex>" (a descriptor's source).
const char *zfed_blob_server_service(const zfed_blob_server_t *self);

//  The libzmq socket to poll for ZMQ_POLLIN, or NULL while waiting to
//  reconnect.  It changes on reconnection: ask again after each handle()
//  and tick().
void *zfed_blob_server_socket(const zfed_blob_server_t *self);
//  Answers what has arrived (at most a bounded batch per call, so other
//  sockets get their turn).  0, or -1 on a fatal error.
int zfed_blob_server_handle(zfed_blob_server_t *self);
//  Heartbeats, reconnection and hold expiry; now from zfed_clock_ms().
void zfed_blob_server_tick(zfed_blob_server_t *self, int64_t now_ms);
//  When tick() is next due (zfed_clock_ms() time).
int64_t zfed_blob_server_next_due(const zfed_blob_server_t *self);

//  Holds *model_p under id for hold_ms (ZFED_HOLD_DEFAULT: the server's;
//  ZFED_HOLD_FOREVER: until removed), served in chunks of chunk bytes.
//  Takes the model (*model_p becomes NULL) on success.  -1 with the reason
//  when the model does not fit in the hold budget, the id is already held
//  or chunk is out of range; the model stays the caller's then.
int zfed_blob_server_hold(zfed_blob_server_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE],
                          zfed_model_t **model_p, uint32_t chunk, int64_t hold_ms, char *reason,
                          size_t reason_size);
//  Holds data read on demand: size bytes, read through read(reader, ...),
//  closed with close(reader) (may be NULL) when the entry goes.  Takes
//  the reader on success only.
int zfed_blob_server_hold_reader(zfed_blob_server_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE],
                                 uint64_t size, uint32_t chunk, zfed_blob_read_fn *read,
                                 zfed_blob_close_fn *close, void *reader, int64_t hold_ms,
                                 char *reason, size_t reason_size);
//  A safetensors file's data, read in ranges (takes *file_p on success).
int zfed_blob_server_hold_file(zfed_blob_server_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE],
                               zfed_safetensors_t **file_p, uint32_t chunk, int64_t hold_ms,
                               char *reason, size_t reason_size);

//  Whether the budget has room for bytes more now.
bool zfed_blob_server_fits(const zfed_blob_server_t *self, uint64_t bytes);
bool zfed_blob_server_holds(const zfed_blob_server_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE]);
//  Forgets id (true when it was held).  Fetches for it get 404 from now.
bool zfed_blob_server_remove(zfed_blob_server_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE]);

void zfed_blob_server_stats(const zfed_blob_server_t *self, zfed_blob_server_stats_t *stats);

#ifdef __cplusplus
}
#endif

#endif
