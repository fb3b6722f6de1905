/*  zfed_transfer - zfed.fetch, zfed.chunk, zfed.release and zfed.released.

    Chunk traffic is the hot path of a model transfer (a 1 GiB model is
    256 fetches and 256 replies each way), so decoding peeks at the bytes
    the pre-scan vouched for instead of building msgpack-c objects.
*/
#include "zfed/zfed_transfer.h"
#include "zfed/zfed_msg.h"
#include "wire/zfed_reason.h"
#include "wire/zfed_peek.h"

#include <stdio.h>
#include <string.h>

#define CODE_MIN 100
#define CODE_MAX 599

static const struct {
    const char *name;
    zfed_transfer_kind_t kind;
    uint64_t elements;
} s_kinds[] = {
    {ZFED_KIND_FETCH, ZFED_TRANSFER_FETCH, 4},
    {ZFED_KIND_CHUNK, ZFED_TRANSFER_CHUNK, 6},
    {ZFED_KIND_RELEASE, ZFED_TRANSFER_RELEASE, 3},
    {ZFED_KIND_RELEASED, ZFED_TRANSFER_RELEASED, 3},
};
#define KINDS (sizeof s_kinds / sizeof s_kinds[0])

//  The kind the body's first element names (index into s_kinds), or -1;
//  reader is left after it and *elements holds the array's count.
static int s_kind(zfed_peek_t *reader, uint64_t *elements)
{
    zfed_view_t kind;
    if (zfed_peek_array(reader, elements) != 0 || *elements < 1 ||
        zfed_peek_bytes(reader, false, &kind) != 0)
        return -1;
    for (size_t index = 0; index < KINDS; index++)
        if (kind.size == strlen(s_kinds[index].name) &&
            memcmp(kind.data, s_kinds[index].name, kind.size) == 0)
            return (int)index;
    return -1;
}

bool zfed_transfer_is(const void *data, size_t size)
{
    zfed_peek_t reader = {data, size, 0};
    uint64_t elements;
    return s_kind(&reader, &elements) >= 0;
}

static int s_id(zfed_peek_t *reader, uint8_t id[ZFED_MODEL_ID_SIZE])
{
    zfed_view_t view;
    if (zfed_peek_bytes(reader, true, &view) != 0 || view.size != ZFED_MODEL_ID_SIZE)
        return -1;
    if (id)
        memcpy(id, view.data, ZFED_MODEL_ID_SIZE);
    return 0;
}

//  Text (PROTOCOL.md 9): UTF-8 (the pre-scan checked it) without bytes
//  0x00-0x1f or 0x7f, at most ZFED_CHUNK_TEXT_MAX bytes.
static bool s_text_valid(const uint8_t *text, size_t size)
{
    if (size > ZFED_CHUNK_TEXT_MAX)
        return false;
    for (size_t index = 0; index < size; index++)
        if (text[index] < 0x20 || text[index] == 0x7f)
            return false;
    return true;
}

int zfed_transfer_decode(const void *data, size_t size, zfed_transfer_t *out, char *reason,
                         size_t reason_size)
{
    memset(out, 0, sizeof *out);
    if (zfed_reason_prescan(data, size, reason, reason_size) != 0)
        return -1;
    zfed_peek_t reader = {data, size, 0};
    uint64_t elements = 0;
    int kind = s_kind(&reader, &elements);
    if (kind < 0)
        return zfed_reason_set(reason, reason_size, "kind", "not a %s, %s, %s or %s body",
                               ZFED_KIND_FETCH, ZFED_KIND_CHUNK, ZFED_KIND_RELEASE,
                               ZFED_KIND_RELEASED);
    uint32_t version;
    if (elements < 2 || zfed_peek_u32(&reader, &version) != 0 || version != ZFED_PROTOCOL_VERSION)
        return zfed_reason_set(reason, reason_size, "version",
                               "element 1 (version): this peer speaks version %d",
                               ZFED_PROTOCOL_VERSION);
    const char *name = s_kinds[kind].name;
    if (elements != s_kinds[kind].elements)
        return zfed_reason_set(reason, reason_size, "elements", "%s v1 has %llu elements, got %llu",
                               name, (unsigned long long)s_kinds[kind].elements,
                               (unsigned long long)elements);
    out->kind = s_kinds[kind].kind;
    switch (out->kind) {
    case ZFED_TRANSFER_FETCH:
    case ZFED_TRANSFER_CHUNK:
        if (s_id(&reader, out->id) != 0)
            return zfed_reason_set(reason, reason_size, "id",
                                   "element 2 (id): expected a bin of %d bytes",
                                   ZFED_MODEL_ID_SIZE);
        if (zfed_peek_u32(&reader, &out->index) != 0)
            return zfed_reason_set(reason, reason_size, "index",
                                   "element 3 (index): expected an unsigned integer below 2^32");
        if (out->kind == ZFED_TRANSFER_FETCH)
            break;
        if (zfed_peek_u32(&reader, &out->code) != 0 || out->code < CODE_MIN || out->code > CODE_MAX)
            return zfed_reason_set(reason, reason_size, "code",
                                   "element 4 (code): expected a code from %d to %d", CODE_MIN,
                                   CODE_MAX);
        if (zfed_peek_bytes(&reader, false, &out->text) != 0 ||
            !s_text_valid(out->text.data, out->text.size))
            return zfed_reason_set(reason, reason_size, "text",
                                   "element 5 (text): at most %d bytes without control characters",
                                   ZFED_CHUNK_TEXT_MAX);
        break;
    case ZFED_TRANSFER_RELEASE: {
        uint64_t count = 0;
        if (zfed_peek_array(&reader, &count) != 0 || count < 1 || count > ZFED_RELEASE_IDS_MAX)
            return zfed_reason_set(reason, reason_size, "ids",
                                   "element 2 (ids): expected an array of 1 to %d ids",
                                   ZFED_RELEASE_IDS_MAX);
        size_t start = reader.position;
        for (uint64_t index = 0; index < count; index++)
            if (s_id(&reader, NULL) != 0)
                return zfed_reason_set(reason, reason_size, "id",
                                       "element 2 (ids): id %llu is not a bin of %d bytes",
                                       (unsigned long long)index, ZFED_MODEL_ID_SIZE);
        out->count = (uint32_t)count;
        out->ids.data = (const uint8_t *)data + start;
        out->ids.size = reader.position - start;
        break;
    }
    case ZFED_TRANSFER_RELEASED:
        if (zfed_peek_u32(&reader, &out->count) != 0)
            return zfed_reason_set(reason, reason_size, "count",
                                   "element 2 (count): expected an unsigned integer below 2^32");
        break;
    }
    //  The pre-scan saw one value and the array had exactly its elements,
    //  so nothing can follow; kept as a guard for the peeks above.
    if (reader.position != size)
        return zfed_reason_set(reason, reason_size, "msgpack", "%zu trailing bytes",
                               size - reader.position);
    return 0;
}

int zfed_transfer_next_id(const zfed_transfer_t *self, size_t *cursor,
                          uint8_t id[ZFED_MODEL_ID_SIZE])
{
    if (self->kind != ZFED_TRANSFER_RELEASE)
        return -1;
    zfed_peek_t reader = {self->ids.data, self->ids.size, *cursor};
    if (reader.position >= reader.size || s_id(&reader, id) != 0)
        return -1;
    *cursor = reader.position;
    return 0;
}

static int s_head(msgpack_packer *packer, msgpack_sbuffer *buffer, zfed_transfer_kind_t kind)
{
    msgpack_sbuffer_clear(buffer);
    msgpack_packer_init(packer, buffer, msgpack_sbuffer_write);
    const char *name = zfed_transfer_kind_name(kind);
    int rc = msgpack_pack_array(packer, s_kinds[kind - 1].elements);
    rc |= msgpack_pack_str_with_body(packer, name, strlen(name));
    rc |= msgpack_pack_uint32(packer, ZFED_PROTOCOL_VERSION);
    return rc;
}

int zfed_transfer_encode_fetch(msgpack_sbuffer *buffer, const uint8_t id[ZFED_MODEL_ID_SIZE],
                               uint32_t index)
{
    msgpack_packer packer;
    int rc = s_head(&packer, buffer, ZFED_TRANSFER_FETCH);
    rc |= msgpack_pack_bin_with_body(&packer, id, ZFED_MODEL_ID_SIZE);
    rc |= msgpack_pack_uint32(&packer, index);
    return rc == 0 ? 0 : -1;
}

int zfed_transfer_encode_chunk(msgpack_sbuffer *buffer, const uint8_t id[ZFED_MODEL_ID_SIZE],
                               uint32_t index, uint32_t code, const char *text)
{
    size_t length = text ? strlen(text) : 0;
    if (code < CODE_MIN || code > CODE_MAX || !s_text_valid((const uint8_t *)text, length))
        return -1;
    msgpack_packer packer;
    int rc = s_head(&packer, buffer, ZFED_TRANSFER_CHUNK);
    rc |= msgpack_pack_bin_with_body(&packer, id, ZFED_MODEL_ID_SIZE);
    rc |= msgpack_pack_uint32(&packer, index);
    rc |= msgpack_pack_uint32(&packer, code);
    rc |= msgpack_pack_str_with_body(&packer, text ? text : "", length);
    return rc == 0 ? 0 : -1;
}

int zfed_transfer_encode_release(msgpack_sbuffer *buffer, const uint8_t (*ids)[ZFED_MODEL_ID_SIZE],
                                 size_t count)
{
    if (count < 1 || count > ZFED_RELEASE_IDS_MAX)
        return -1;
    msgpack_packer packer;
    int rc = s_head(&packer, buffer, ZFED_TRANSFER_RELEASE);
    rc |= msgpack_pack_array(&packer, count);
    for (size_t index = 0; index < count; index++)
        rc |= msgpack_pack_bin_with_body(&packer, ids[index], ZFED_MODEL_ID_SIZE);
    return rc == 0 ? 0 : -1;
}

int zfed_transfer_encode_released(msgpack_sbuffer *buffer, uint32_t count)
{
    msgpack_packer packer;
    int rc = s_head(&packer, buffer, ZFED_TRANSFER_RELEASED);
    rc |= msgpack_pack_uint32(&packer, count);
    return rc == 0 ? 0 : -1;
}

const char *zfed_transfer_kind_name(zfed_transfer_kind_t kind)
{
    return kind >= ZFED_TRANSFER_FETCH && kind <= ZFED_TRANSFER_RELEASED ? s_kinds[kind - 1].name
                                                                         : "unknown";
}
