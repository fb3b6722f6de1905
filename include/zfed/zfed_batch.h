/*  zfed_batch - several zfed bodies in one Majordomo request (protocol v1).

    The fast path for many small tasks: a controller may send

        ["zfed.batch", 1, [bin, bin, ...]]

    where every bin is a complete zfed.task body, and a batch-aware worker
    answers with a batch of the same length whose item i is the zfed.result
    or zfed.error body for task i.  Every MDP frame then carries up to
    ZFED_BATCH_MAX tasks instead of one, which is what limits throughput on
    a broker (MDP spends 24 frames on each request and its reply).  The
    envelope stays plain MDP/0.1: brokers forward a batch like any body.
    A controller only batches when told to (--batch), so peers that know
    nothing of batches keep working.
*/
#ifndef ZFED_BATCH_H_INCLUDED
#define ZFED_BATCH_H_INCLUDED

#include "zfed/zfed_mdp.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZFED_KIND_BATCH "zfed.batch"
#define ZFED_BATCH_MAX  1024 //  items in one batch

//  True when data is (the start of) a batch body: an array whose first
//  element is the string "zfed.batch".  Cheap: reads a dozen bytes.
bool zfed_batch_is(const void *data, size_t size);

//  Reads a batch: items[0..*count) receive views of the item bodies, which
//  point into data.  Returns 0, or -1 with a reason (not a batch, wrong
//  version, more than max_items or ZFED_BATCH_MAX items, an item that is
//  not a bin, an empty batch).
int zfed_batch_decode(const void *data, size_t size, zfed_view_t *items, size_t max_items,
                      size_t *count, char *reason, size_t reason_size);

//  The exact size zfed_batch_encode would write for these items: callers
//  that must stay under ZFED_BODY_MAX split or shrink a batch with it.
size_t zfed_batch_encoded_size(const zfed_view_t *items, size_t count);

//  Writes a batch of count item bodies into buffer (cleared first).
//  Returns 0, or -1 when count is 0 or over ZFED_BATCH_MAX, the body would
//  exceed ZFED_BODY_MAX, or memory runs out.
int zfed_batch_encode(msgpack_sbuffer *buffer, const zfed_view_t *items, size_t count);

//  The same, an item at a time, for a writer that makes each item as it
//  goes (the broker's error batches): begin clears buffer and writes the
//  envelope for count items, then exactly count calls to item append them.
//  Each returns 0, or -1 (count 0 or over ZFED_BATCH_MAX, the body over
//  ZFED_BODY_MAX, out of memory).
int zfed_batch_encode_begin(msgpack_sbuffer *buffer, size_t count);
int zfed_batch_encode_item(msgpack_sbuffer *buffer, const void *data, size_t size);

//  An item written in place, after begin, for a writer that appends its
//  body to buffer itself (the controller's tasks: no copy of each):
//  open leaves room for the item's header and says where (*mark), the
//  caller appends the body, close writes the header for its size (moving
//  the body when it needs more than two bytes).  The bytes are
//  zfed_batch_encode's.  0, or -1 (out of memory; close: the body over
//  ZFED_BODY_MAX).  The whole may still exceed ZFED_BODY_MAX: the caller
//  checks buffer->size.
int zfed_batch_encode_open(msgpack_sbuffer *buffer, size_t *mark);
int zfed_batch_encode_close(msgpack_sbuffer *buffer, size_t mark);

#ifdef __cplusplus
}
#endif

#endif
