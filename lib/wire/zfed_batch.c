/*  zfed_batch - reading and writing batch bodies.

    A batch is framing only: its items are complete bodies, read by
    zfed_msg_decode like any other.  So this module reads the few bytes of
    the envelope itself, in one bounded walk when the body is laid out as
    the encoder lays it, otherwise after zfed_msgpack_check has vouched
    for the structure, and hands out views of the items without copying
    them.
*/
#include "zfed/zfed_batch.h"
#include "zfed/zfed_msg.h"
#include "wire/zfed_peek.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BATCH_ELEMENTS 3
#define KIND_LENGTH    (sizeof ZFED_KIND_BATCH - 1)

static int s_fail(char *reason, size_t reason_size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(char *reason, size_t reason_size, const char *format, ...)
{
    if (reason && reason_size) {
        va_list args;
        va_start(args, format);
        vsnprintf(reason, reason_size, format, args);
        va_end(args);
    }
    return -1;
}

bool zfed_batch_is(const void *data, size_t size)
{
    //  Most bodies asked about are a batch's items: a fixarray whose first
    //  element is a fixstr of another length ("zfed.result") is no batch,
    //  seen from its first two bytes.
    const uint8_t *bytes = data;
    if (size >= 2 && bytes[0] >= 0x91 && bytes[0] <= 0x9f && bytes[1] >= 0xa0 && bytes[1] <= 0xbf &&
        bytes[1] != (0xa0 | KIND_LENGTH))
        return false;
    zfed_peek_t reader = {data, size, 0};
    uint64_t count;
    zfed_view_t kind;
    return zfed_peek_array(&reader, &count) == 0 && count >= 1 &&
           zfed_peek_bytes(&reader, false, &kind) == 0 && kind.size == KIND_LENGTH &&
           memcmp(kind.data, ZFED_KIND_BATCH, KIND_LENGTH) == 0;
}

//  A batch of bins laid out as the encoder lays it, taken in one bounded
//  walk: every length inside the bytes, nothing after the items.  What
//  it takes the full check and the walk below would take, with the same
//  items; anything else (false) goes that way, which says why.  The full
//  check first was 1,100 instructions a batch reply.
static bool s_quick_decode(const void *data, size_t size, zfed_view_t *items, size_t max_items,
                           size_t *count)
{
    zfed_peek_t reader = {data, size, 0};
    uint64_t elements = 0, listed = 0, version = 0;
    bool negative = true;
    zfed_view_t kind;
    if (zfed_peek_array(&reader, &elements) != 0 || elements != BATCH_ELEMENTS ||
        zfed_peek_bytes(&reader, false, &kind) != 0 || kind.size != KIND_LENGTH ||
        memcmp(kind.data, ZFED_KIND_BATCH, KIND_LENGTH) != 0 ||
        zfed_peek_int(&reader, &version, &negative) != 0 || negative ||
        version != ZFED_PROTOCOL_VERSION || zfed_peek_array(&reader, &listed) != 0 || listed == 0 ||
        listed > ZFED_BATCH_MAX || listed > max_items)
        return false;
    for (uint64_t index = 0; index < listed; index++)
        if (zfed_peek_bytes(&reader, true, &items[index]) != 0)
            return false;
    if (reader.position != size)
        return false;
    *count = (size_t)listed;
    return true;
}

int zfed_batch_decode(const void *data, size_t size, zfed_view_t *items, size_t max_items,
                      size_t *count, char *reason, size_t reason_size)
{
    *count = 0;
    if (size <= ZFED_BODY_MAX && s_quick_decode(data, size, items, max_items, count))
        return 0;
    if (size > ZFED_BODY_MAX)
        return s_fail(reason, reason_size, "body of %zu bytes is over the %d-byte limit", size,
                      ZFED_BODY_MAX);
    if (zfed_msgpack_check(data, size, reason, reason_size) != 0)
        return -1;
    if (!zfed_batch_is(data, size))
        return s_fail(reason, reason_size, "not a %s body", ZFED_KIND_BATCH);
    zfed_peek_t reader = {data, size, 0};
    uint64_t elements = 0, listed = 0;
    zfed_view_t kind;
    zfed_peek_array(&reader, &elements);
    zfed_peek_bytes(&reader, false, &kind);
    if (elements != BATCH_ELEMENTS)
        return s_fail(reason, reason_size, "%s v1 has %d elements, got %llu", ZFED_KIND_BATCH,
                      BATCH_ELEMENTS, (unsigned long long)elements);
    uint64_t version;
    bool negative;
    if (zfed_peek_int(&reader, &version, &negative) != 0 || negative ||
        version != ZFED_PROTOCOL_VERSION)
        return s_fail(reason, reason_size, "element 1 (version): this peer speaks version %d",
                      ZFED_PROTOCOL_VERSION);
    if (zfed_peek_array(&reader, &listed) != 0)
        return s_fail(reason, reason_size, "element 2 (items): expected an array");
    if (listed == 0 || listed > ZFED_BATCH_MAX || listed > max_items)
        return s_fail(reason, reason_size, "element 2 (items): %llu items, 1 to %zu allowed",
                      (unsigned long long)listed,
                      max_items < ZFED_BATCH_MAX ? max_items : ZFED_BATCH_MAX);
    for (uint64_t index = 0; index < listed; index++)
        if (zfed_peek_bytes(&reader, true, &items[index]) != 0)
            return s_fail(reason, reason_size, "element 2 (items): item %llu is not a bin",
                          (unsigned long long)index);
    *count = (size_t)listed;
    return 0;
}

//  Bytes msgpack spends on a header for a length, for bins and arrays.
static size_t s_bin_header(size_t size)
{
    return size <= UINT8_MAX ? 2 : size <= UINT16_MAX ? 3 : 5;
}

size_t zfed_batch_encoded_size(const zfed_view_t *items, size_t count)
{
    //  fixarray(3), fixstr "zfed.batch", version 1, the items' array header
    size_t size = 1 + 1 + KIND_LENGTH + 1 + (count <= 15 ? 1 : count <= UINT16_MAX ? 3 : 5);
    for (size_t index = 0; index < count; index++)
        size += s_bin_header(items[index].size) + items[index].size;
    return size;
}

int zfed_batch_encode_begin(msgpack_sbuffer *buffer, size_t count)
{
    msgpack_sbuffer_clear(buffer);
    if (count == 0 || count > ZFED_BATCH_MAX)
        return -1;
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    int rc = msgpack_pack_array(&packer, BATCH_ELEMENTS);
    rc |= msgpack_pack_str_with_body(&packer, ZFED_KIND_BATCH, KIND_LENGTH);
    rc |= msgpack_pack_uint32(&packer, ZFED_PROTOCOL_VERSION);
    rc |= msgpack_pack_array(&packer, count);
    return rc == 0 ? 0 : -1;
}

int zfed_batch_encode_item(msgpack_sbuffer *buffer, const void *data, size_t size)
{
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    return msgpack_pack_bin_with_body(&packer, data, size) == 0 && buffer->size <= ZFED_BODY_MAX
               ? 0
               : -1;
}

int zfed_batch_encode(msgpack_sbuffer *buffer, const zfed_view_t *items, size_t count)
{
    int rc = zfed_batch_encode_begin(buffer, count);
    for (size_t index = 0; index < count && rc == 0; index++)
        rc = zfed_batch_encode_item(buffer, items[index].data, items[index].size);
    return rc;
}

//  The bin8 header open writes before every item: 0xc4 and the length.
#define ITEM_HEADER_OPEN 2

int zfed_batch_encode_open(msgpack_sbuffer *buffer, size_t *mark)
{
    *mark = buffer->size;
    static const char room[ITEM_HEADER_OPEN] = {0};
    return msgpack_sbuffer_write(buffer, room, sizeof room) == 0 ? 0 : -1;
}

int zfed_batch_encode_close(msgpack_sbuffer *buffer, size_t mark)
{
    size_t size = buffer->size - mark - ITEM_HEADER_OPEN;
    if (size > ZFED_BODY_MAX)
        return -1;
    size_t header = s_bin_header(size);
    if (header > ITEM_HEADER_OPEN) {
        //  Room for the longer header after the body, then the body moved.
        static const char more[5] = {0};
        if (msgpack_sbuffer_write(buffer, more, header - ITEM_HEADER_OPEN) != 0)
            return -1;
        memmove(buffer->data + mark + header, buffer->data + mark + ITEM_HEADER_OPEN, size);
    }
    uint8_t *at = (uint8_t *)buffer->data + mark;
    if (header == 2) {
        at[0] = 0xc4;
        at[1] = (uint8_t)size;
    } else if (header == 3) {
        at[0] = 0xc5;
        at[1] = (uint8_t)(size >> 8);
        at[2] = (uint8_t)size;
    } else {
        at[0] = 0xc6;
        for (size_t index = 0; index < 4; index++)
            at[1 + index] = (uint8_t)(size >> (8 * (3 - index)));
    }
    return 0;
}
