/*  zfed_transfer - the bodies of chunk transfers (schemas/MODELS.md 6).

    A model by reference is read in chunks through the broker, as MDP
    client requests to the blob service that holds it:

        ["zfed.fetch",    1, id, index]               request: chunk index of model id
        ["zfed.chunk",    1, id, index, code, text]   reply; code 200: one data frame follows
        ["zfed.release",  1, ids]                     request: 1-1024 ids no longer needed
        ["zfed.released", 1, count]                   reply: how many of them were held

    Decoding reads straight from the bytes (after the structural pre-scan
    of PROTOCOL.md 7.2): nothing is allocated, the text and the ids stay
    views into the body, and trailing bytes are refused.  Reasons start
    with the class model-vectors.json names ("index: ...").  Encoding is
    canonical.
*/
#ifndef ZFED_TRANSFER_H_INCLUDED
#define ZFED_TRANSFER_H_INCLUDED

#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_mdp.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZFED_KIND_FETCH    "zfed.fetch"
#define ZFED_KIND_CHUNK    "zfed.chunk"
#define ZFED_KIND_RELEASE  "zfed.release"
#define ZFED_KIND_RELEASED "zfed.released"

#define ZFED_RELEASE_IDS_MAX 1024
#define ZFED_CHUNK_TEXT_MAX  512

//  zfed.chunk codes (MODELS.md 6).
#define ZFED_CHUNK_OK           200 //  the chunk follows in a data frame
#define ZFED_CHUNK_MALFORMED    400 //  the fetch was malformed
#define ZFED_CHUNK_NOT_FOUND    404 //  no model with this id here
#define ZFED_CHUNK_OUT_OF_RANGE 416 //  index past the last chunk
#define ZFED_CHUNK_BUSY         429 //  over budget: fetch again later

typedef enum {
    ZFED_TRANSFER_FETCH = 1,
    ZFED_TRANSFER_CHUNK,
    ZFED_TRANSFER_RELEASE,
    ZFED_TRANSFER_RELEASED
} zfed_transfer_kind_t;

typedef struct {
    zfed_transfer_kind_t kind;
    uint8_t id[ZFED_MODEL_ID_SIZE]; //  FETCH, CHUNK
    uint32_t index;                 //  FETCH, CHUNK
    uint32_t code;                  //  CHUNK
    zfed_view_t text;               //  CHUNK: into the body
    uint32_t count;                 //  RELEASE: ids; RELEASED: the count
    zfed_view_t ids;                //  RELEASE: the ids' bytes (read with zfed_transfer_next_id)
} zfed_transfer_t;

//  True when the bytes start like a transfer body: an array whose first
//  element is one of the four kinds (nothing else is looked at).
bool zfed_transfer_is(const void *data, size_t size);

//  Decodes one body.  0, or -1 with the reason ("CLASS: text").
int zfed_transfer_decode(const void *data, size_t size, zfed_transfer_t *out, char *reason,
                         size_t reason_size);

//  The ids of a decoded zfed.release, one per call: start with *cursor 0.
//  0 with the id, or -1 after the last.
int zfed_transfer_next_id(const zfed_transfer_t *self, size_t *cursor,
                          uint8_t id[ZFED_MODEL_ID_SIZE]);

//  Canonical encoders into buffer (cleared first).  0, or -1 on a value
//  the decoder would refuse (a code out of 100-599, a text over 512 bytes
//  or with control characters, 0 or more than 1024 ids) or out of memory.
int zfed_transfer_encode_fetch(msgpack_sbuffer *buffer, const uint8_t id[ZFED_MODEL_ID_SIZE],
                               uint32_t index);
int zfed_transfer_encode_chunk(msgpack_sbuffer *buffer, const uint8_t id[ZFED_MODEL_ID_SIZE],
                               uint32_t index, uint32_t code, const char *text);
int zfed_transfer_encode_release(msgpack_sbuffer *buffer, const uint8_t (*ids)[ZFED_MODEL_ID_SIZE],
                                 size_t count);
int zfed_transfer_encode_released(msgpack_sbuffer *buffer, uint32_t count);

const char *zfed_transfer_kind_name(zfed_transfer_kind_t kind);

#ifdef __cplusplus
}
#endif

#endif
