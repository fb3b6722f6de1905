/*  zfed_fetcher - reading models by reference in chunks, through the
    broker (schemas/MODELS.md 6).

    One MDP client connection (a DEALER to the broker) carries any number
    of transfers at once.  A transfer reads the chunks of one model from
    the blob service its descriptor names, from a first chunk (so a pass
    that starts again can skip what it has) to the last:

      * flow control: at most `window` chunks per transfer are fetched and
        not yet given back, counting both fetches outstanding and chunks
        handed to the owner and not yet destroyed; so a slow reader slows
        only its own transfer, and a broker holds at most window x chunk
        bytes for it;
      * each reply is matched by service, id and index to an outstanding
        fetch and checked for length; anything else (late, duplicate,
        forged, short) is dropped and counted;
      * a fetch unanswered for `timeout_ms` is sent again, at most
        `resends` times; 429 fetches again after a back-off (100 ms,
        doubling to 2 s); 400, 404 and 416, a broker error (zfed.error:
        503, 504, 403) or an exhausted fetch fail the transfer.

    Chunks are handed over with the frame they arrived in (zero copy): the
    owner reads zfed_chunk_data() and destroys the chunk when done, which
    frees the frame and lets the transfer fetch one more.

    It owns no thread: poll zfed_fetcher_socket() for input, call
    zfed_fetcher_handle() when it is readable and zfed_fetcher_tick() at
    zfed_fetcher_next_due(), then take events with zfed_fetcher_next()
    until it returns false.  Every call comes from the owner's thread.
*/
#ifndef ZFED_FETCHER_H_INCLUDED
#define ZFED_FETCHER_H_INCLUDED

#include "zfed/zfed_descriptor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZFED_FETCH_WINDOW_DEFAULT     4
#define ZFED_FETCH_WINDOW_MAX         256
#define ZFED_FETCH_TIMEOUT_MS_DEFAULT 10000
#define ZFED_FETCH_RESENDS_DEFAULT    3
#define ZFED_FETCH_BUSY_BACKOFF_MS    100  //  after a 429, doubling
#define ZFED_FETCH_BUSY_BACKOFF_MAX   2000 //  ms
//  A zfed.release unanswered this long is given up (releases are not resent).
#define ZFED_RELEASE_TIMEOUT_MS_DEFAULT 10000

typedef struct {
    const char *endpoint;
    unsigned window;              //  chunks per transfer fetched and not given back (1-256)
    int timeout_ms;               //  per fetch, before it is sent again
    unsigned resends;             //  sends per fetch after the first
    int release_timeout_ms;       //  a zfed.release unanswered this long is reported failed
    const char *curve_cert;       //  our secret certificate, or NULL for plaintext
    const char *curve_server_key; //  the broker's public key (Z85 or certificate file)
} zfed_fetcher_config_t;

typedef struct {
    uint64_t fetches;  //  zfed.fetch requests sent, resends included
    uint64_t resent;   //  of which after a timeout
    uint64_t busy;     //  429 replies (fetched again after a back-off)
    uint64_t chunks;   //  chunks handed over
    uint64_t bytes;    //  their bytes
    uint64_t dropped;  //  replies matching no outstanding fetch, or of the wrong length
    uint64_t whole;    //  transfers completed
    uint64_t failed;   //  transfers failed
    uint64_t releases; //  zfed.release requests sent
    uint64_t released; //  ids their answers said were held
    size_t transfers;  //  running now
} zfed_fetcher_stats_t;

typedef struct _zfed_fetcher_t zfed_fetcher_t;
typedef struct _zfed_fetch_t zfed_fetch_t; //  one transfer
typedef struct _zfed_chunk_t zfed_chunk_t; //  one chunk that arrived

typedef enum {
    ZFED_FETCH_RUNNING = 0,
    ZFED_FETCH_WHOLE,  //  every chunk from the first asked has been handed over
    ZFED_FETCH_FAILED, //  nothing more comes; zfed_fetch_error says why
} zfed_fetch_state_t;

typedef enum {
    ZFED_FETCH_EVENT_CHUNK = 1, //  chunk: the owner's, to destroy
    ZFED_FETCH_EVENT_WHOLE,     //  after the transfer's last chunk event
    ZFED_FETCH_EVENT_FAILED,    //  reason: why (valid until the transfer is destroyed)
    ZFED_FETCH_EVENT_RELEASED,  //  a zfed.release answered (ok, count) or given up (!ok)
} zfed_fetch_event_kind_t;

typedef struct {
    zfed_fetch_event_kind_t kind;
    zfed_fetch_t *fetch; //  CHUNK, WHOLE, FAILED
    void *user;          //  the transfer's or the release's
    zfed_chunk_t *chunk; //  CHUNK
    const char *reason;  //  FAILED
    bool ok;             //  RELEASED
    uint32_t count;      //  RELEASED: ids that were held
} zfed_fetch_event_t;

void zfed_fetcher_config_defaults(zfed_fetcher_config_t *config);

//  Connects.  NULL (reason logged) on a bad configuration or a CURVE key
//  that cannot be read.
zfed_fetcher_t *zfed_fetcher_new(const zfed_fetcher_config_t *config);
//  Cancels every transfer.  Chunks the owner still holds stay valid until
//  it destroys them.
void zfed_fetcher_destroy(zfed_fetcher_t **self_p);

void *zfed_fetcher_socket(const zfed_fetcher_t *self);
//  Reads every reply that has arrived.  0, or -1 on a fatal socket error.
int zfed_fetcher_handle(zfed_fetcher_t *self);
//  Resends, back-offs and release timeouts due at now (zfed_clock_ms()).
void zfed_fetcher_tick(zfed_fetcher_t *self, int64_t now_ms);
//  When tick() is next due; INT64_MAX when nothing waits for a time.
int64_t zfed_fetcher_next_due(const zfed_fetcher_t *self);
//  The next event, oldest first: true and *event, or false when none.
bool zfed_fetcher_next(zfed_fetcher_t *self, zfed_fetch_event_t *event);

//  Starts reading the model model describes (by reference: its source
//  names the blob service) from chunk first, and sends the first window
//  of fetches.  The descriptor is copied (not its layout).  NULL with the
//  reason when the descriptor is inline, first is past the last chunk, or
//  a transfer of the same id is running on this fetcher.
zfed_fetch_t *zfed_fetcher_start(zfed_fetcher_t *self, const zfed_descriptor_t *model,
                                 uint64_t first, void *user, char *reason, size_t reason_size);
//  Cancels a running transfer and frees it (its events not yet taken are
//  dropped).  Chunks already handed over stay valid.  Idempotent.
void zfed_fetch_destroy(zfed_fetch_t **fetch_p);

zfed_fetch_state_t zfed_fetch_state(const zfed_fetch_t *self);
//  Why it failed ("" while it has not).
const char *zfed_fetch_error(const zfed_fetch_t *self);
void *zfed_fetch_user(const zfed_fetch_t *self);
//  Chunks handed over so far, and chunks this transfer reads in all.
uint64_t zfed_fetch_received(const zfed_fetch_t *self);
uint64_t zfed_fetch_chunks(const zfed_fetch_t *self);

//  A chunk: its index in the model, its offset and bytes (the frame that
//  carried it: valid until the chunk is destroyed), its transfer's user.
uint64_t zfed_chunk_index(const zfed_chunk_t *self);
uint64_t zfed_chunk_offset(const zfed_chunk_t *self);
const void *zfed_chunk_data(const zfed_chunk_t *self);
size_t zfed_chunk_size(const zfed_chunk_t *self);
void *zfed_chunk_user(const zfed_chunk_t *self);
//  Frees the frame and gives the window slot back.  Idempotent.
void zfed_chunk_destroy(zfed_chunk_t **self_p);

//  Sends zfed.release of count (1-1024) ids to service; its answer comes
//  as a RELEASED event with user.  0, or -1 (bad arguments, out of memory).
int zfed_fetcher_release(zfed_fetcher_t *self, const char *service,
                         const uint8_t (*ids)[ZFED_MODEL_ID_SIZE], size_t count, void *user);

void zfed_fetcher_stats(const zfed_fetcher_t *self, zfed_fetcher_stats_t *stats);

#ifdef __cplusplus
}
#endif

#endif
