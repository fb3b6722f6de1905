/*  zfed_descriptor - the zfed.model descriptor (schemas/MODELS.md 3-5).

    A model service's global value, and the "model" output of each of its
    results, is a descriptor: an msgpack array of 8 elements

        ["zfed.model", 1, id, sha256, size, chunk, tensors, source]

    id (bin 32) names the model in chunk fetches; sha256 (bin 32 or nil) is
    the SHA-256 of its data when the sender computed it; size is its data's
    bytes; chunk the size of the chunks it is fetched in; tensors its
    layout, each entry [name, dtype, shape, offset, nbytes]; source "" when
    the data travels inline (the data frame after the body, at most
    ZFED_MODEL_INLINE_MAX bytes) or the blob service that holds it
    ("zfed.blob." and 32 lowercase hex digits).

    Reading validates every rule of MODELS.md 3-4 once; a descriptor that
    reads is whole.  A refusal's reason starts with the class of the rule
    it broke, as schemas/model-vectors.json names the classes, then a colon
    ("offset: tensor fc1.bias: offset 12, expected 8 ..."), so tests and
    logs can tell them apart without parsing the rest.  Packing is
    canonical: the bytes of the vectors.
*/
#ifndef ZFED_DESCRIPTOR_H_INCLUDED
#define ZFED_DESCRIPTOR_H_INCLUDED

#include "zfed/zfed_model.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZFED_KIND_MODEL "zfed.model"

#define ZFED_MODEL_ID_SIZE    32
#define ZFED_MODEL_INLINE_MAX (4u << 20) //  a model this small travels inline, a larger one never
#define ZFED_CHUNK_MIN        (64u << 10)
#define ZFED_CHUNK_MAX        (64u << 20)
#define ZFED_CHUNK_DEFAULT    (4u << 20)
//  Blob service names: the prefix and 32 lowercase hex digits (128 bits).
#define ZFED_BLOB_PREFIX       "zfed.blob."
#define ZFED_BLOB_PREFIX_SIZE  (sizeof ZFED_BLOB_PREFIX - 1)
#define ZFED_BLOB_HEX_DIGITS   32
#define ZFED_BLOB_SERVICE_SIZE (ZFED_BLOB_PREFIX_SIZE + ZFED_BLOB_HEX_DIGITS + 1) //  with the NUL

typedef enum {
    ZFED_DESCRIPTOR_RESULT = 0, //  any id
    ZFED_DESCRIPTOR_GLOBAL      //  id and sha256 both present and equal (MODELS.md 4)
} zfed_descriptor_role_t;

typedef struct {
    uint8_t id[ZFED_MODEL_ID_SIZE];
    bool has_sha256;
    uint8_t sha256[ZFED_MODEL_ID_SIZE];
    uint64_t size;
    uint32_t chunk;
    zfed_layout_t *layout;               //  owned
    char source[ZFED_BLOB_SERVICE_SIZE]; //  "" (inline) or a blob service name
} zfed_descriptor_t;

//  Reads a decoded msgpack value (e.g. a task's global value) into out,
//  which the caller clears.  0, or -1 with out cleared and the reason
//  ("CLASS: text") in reason.
int zfed_descriptor_read(const msgpack_object *object, zfed_descriptor_role_t role,
                         zfed_descriptor_t *out, char *reason, size_t reason_size);

//  The same from bytes holding exactly one msgpack value (checked as a
//  body is, PROTOCOL.md 7.2: class "msgpack" when it is not one).
int zfed_descriptor_decode(const void *data, size_t size, zfed_descriptor_role_t role,
                           zfed_descriptor_t *out, char *reason, size_t reason_size);

//  Packs the canonical descriptor.  0, or -1 (allocation failure).
int zfed_descriptor_pack(msgpack_packer *packer, const zfed_descriptor_t *self);
//  The same into buffer (cleared first).
int zfed_descriptor_encode(const zfed_descriptor_t *self, msgpack_sbuffer *buffer);

//  Fills out for a model of layout (copied): size is the layout's, sha256
//  may be NULL, source "" (inline) or a blob service name.  Checks every
//  rule reading would check (the inline rule and, for role GLOBAL, id ==
//  sha256 included).  0, or -1 with the reason and out cleared.
int zfed_descriptor_set(zfed_descriptor_t *out, const uint8_t id[ZFED_MODEL_ID_SIZE],
                        const uint8_t *sha256, const zfed_layout_t *layout, uint32_t chunk,
                        const char *source, zfed_descriptor_role_t role, char *reason,
                        size_t reason_size);

//  Frees the layout and zeroes every field.  Idempotent.
void zfed_descriptor_clear(zfed_descriptor_t *self);

//  A copy (its own layout).  0, or -1 when memory runs out.
int zfed_descriptor_copy(zfed_descriptor_t *out, const zfed_descriptor_t *self);

bool zfed_descriptor_is_inline(const zfed_descriptor_t *self);

//  MODELS.md 5: an inline descriptor comes with exactly one data frame of
//  size bytes, one by reference with none.  0, or -1 with a "data: ..."
//  reason.
int zfed_descriptor_check_data(const zfed_descriptor_t *self, bool has_data_frame,
                               uint64_t data_size, char *reason, size_t reason_size);

//  Chunks: ceil(size / chunk) of them (0 for an empty model); chunk index
//  covers bytes [index * chunk, min((index + 1) * chunk, size)).
uint64_t zfed_chunk_count(uint64_t size, uint32_t chunk);
//  Its offset and length.  0, or -1 when index is past the last chunk.
int zfed_chunk_range(uint64_t size, uint32_t chunk, uint64_t index, uint64_t *offset,
                     size_t *length);
uint64_t zfed_descriptor_chunks(const zfed_descriptor_t *self);

//  True when name is "zfed.blob." and 32 lowercase hex digits.
bool zfed_blob_service_valid(const char *name, size_t length);
//  A fresh blob service name from 128 random bits (getrandom).  0 or -1.
int zfed_blob_service_random(char name[ZFED_BLOB_SERVICE_SIZE]);

#ifdef __cplusplus
}
#endif

#endif
