/*  zfed_publish - the global model as a round's tasks carry it (private
    header; schemas/MODELS.md 9.1).

    Its id is its SHA-256.  A model of at most 4 MiB travels inline: its
    bytes are read from its file once and every task's data frame points
    at them (no copy per task; the buffer is freed when the last frame
    that uses it has gone).  A larger one travels by reference: the
    controller's blob server serves its file in chunks straight from disk
    (the streaming reader, one pread per chunk), so a 4 GiB global never
    sits in memory.  Either way the descriptor is packed once per round.
*/
#ifndef ZFED_PUBLISH_H_INCLUDED
#define ZFED_PUBLISH_H_INCLUDED

#include "zfed/zfed_blob_server.h"
#include "zfed/zfed_client.h"
#include "zfed/zfed_model.h"
#include "zfed/zfed_sha256.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _zfed_publish_t zfed_publish_t;

//  Globals go out in chunks of chunk bytes; server (may be NULL when
//  every global is inline) serves those by reference and outlives self.
zfed_publish_t *zfed_publish_new(zfed_blob_server_t *server, uint32_t chunk);
void zfed_publish_destroy(zfed_publish_t **self_p);

//  Publishes the model in the safetensors file at path, of sha256 (its
//  data's, checked by whoever made the file), in place of the previous
//  one (which the blob server stops serving).  0, or -1 with the reason.
int zfed_publish_set(zfed_publish_t *self, const char *path, const uint8_t sha256[ZFED_SHA256_SIZE],
                     char *reason, size_t reason_size);

//  The descriptor, packed: a task's global value.  NULL before a set.
const uint8_t *zfed_publish_descriptor(const zfed_publish_t *self, size_t *size);
bool zfed_publish_is_inline(const zfed_publish_t *self);

//  For one task of an inline global: the data frame's bytes and what frees
//  them (a reference on the shared buffer, dropped by free_fn).  0, or -1
//  when the global is not inline.
int zfed_publish_data(zfed_publish_t *self, const void **data, size_t *size,
                      zfed_client_free_fn **free_fn, void **hint);

#endif
