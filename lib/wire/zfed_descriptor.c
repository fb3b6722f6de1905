/*  zfed_descriptor - reading and writing zfed.model descriptors.

    Reading goes element by element in the order of MODELS.md 4 and stops
    at the first rule broken, so a reason names one fault; the layout is
    built with zfed_layout_add (which checks names as UTF-8 text and keeps
    the name index), after this module has checked what the wire adds to
    a layout: every offset and nbytes as sent.
*/
#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_msg.h"
#include "wire/zfed_reason.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define DESCRIPTOR_ELEMENTS 8
#define ENTRY_ELEMENTS      5
#define KIND_LENGTH         (sizeof ZFED_KIND_MODEL - 1)
//  Longest dtype name ("BF16") and its NUL.
#define DTYPE_TEXT_MAX 8
//  How much of a refused name a reason shows.
#define NAME_SHOWN 64

static bool s_is_uint(const msgpack_object *object, uint64_t max)
{
    return object->type == MSGPACK_OBJECT_POSITIVE_INTEGER && object->via.u64 <= max;
}

static bool s_is_id(const msgpack_object *object)
{
    return object->type == MSGPACK_OBJECT_BIN && object->via.bin.size == ZFED_MODEL_ID_SIZE;
}

//  A printable piece of a name for reasons: bytes below 0x20 and 0x7f as '?'.
static void s_show(const char *data, size_t size, char *out, size_t out_size)
{
    size_t length = size < out_size - 1 ? size : out_size - 1;
    if (length > NAME_SHOWN)
        length = NAME_SHOWN;
    for (size_t index = 0; index < length; index++) {
        unsigned char byte = (unsigned char)data[index];
        out[index] = byte < 0x20 || byte == 0x7f ? '?' : (char)byte;
    }
    out[length] = '\0';
}

static bool s_name_bytes_valid(const char *data, size_t size)
{
    if (size < 1 || size > ZFED_TENSOR_NAME_MAX)
        return false;
    for (size_t index = 0; index < size; index++) {
        unsigned char byte = (unsigned char)data[index];
        if (byte < 0x20 || byte == 0x7f)
            return false;
    }
    return true;
}

static int s_read_dtype(const msgpack_object *object, zfed_dtype_t *type)
{
    char text[DTYPE_TEXT_MAX];
    if (object->type != MSGPACK_OBJECT_STR || object->via.str.size >= sizeof text)
        return -1;
    memcpy(text, object->via.str.ptr, object->via.str.size);
    text[object->via.str.size] = '\0';
    return zfed_dtype_parse(text, type);
}

//  One tensor entry, appended to layout; *offset is where it must start
//  and moves past it.
static int s_read_entry(const msgpack_object *entry, size_t index, zfed_layout_t *layout,
                        uint64_t *offset, char *reason, size_t reason_size)
{
    if (entry->type != MSGPACK_OBJECT_ARRAY || entry->via.array.size != ENTRY_ELEMENTS)
        return zfed_reason_set(reason, reason_size, "tensor",
                               "tensor %zu: expected an array [name, dtype, shape, offset, nbytes]",
                               index);
    const msgpack_object *field = entry->via.array.ptr;
    const msgpack_object *name = &field[0], *dtype = &field[1], *shape = &field[2];
    if (name->type != MSGPACK_OBJECT_STR ||
        !s_name_bytes_valid(name->via.str.ptr, name->via.str.size))
        return zfed_reason_set(
            reason, reason_size, "name",
            "tensor %zu: name must be 1-%d bytes of UTF-8 without control characters", index,
            ZFED_TENSOR_NAME_MAX);
    char text[ZFED_TENSOR_NAME_MAX + 1];
    memcpy(text, name->via.str.ptr, name->via.str.size);
    text[name->via.str.size] = '\0';
    char shown[NAME_SHOWN + 1];
    s_show(text, name->via.str.size, shown, sizeof shown);
    size_t first = 0;
    if (zfed_layout_find(layout, text, &first))
        return zfed_reason_set(reason, reason_size, "duplicate",
                               "tensor %s: the name of tensor %zu appears again as tensor %zu",
                               shown, first, index);
    zfed_dtype_t type;
    if (s_read_dtype(dtype, &type) != 0)
        return zfed_reason_set(reason, reason_size, "dtype", "tensor %s: dtype must be one of %s",
                               shown, zfed_dtype_list());
    if (shape->type != MSGPACK_OBJECT_ARRAY || shape->via.array.size > ZFED_TENSOR_DIMS_MAX)
        return zfed_reason_set(reason, reason_size, "shape",
                               "tensor %s: shape must be an array of 0-%d unsigned integers", shown,
                               ZFED_TENSOR_DIMS_MAX);
    uint64_t dims[ZFED_TENSOR_DIMS_MAX];
    uint64_t expected = zfed_dtype_size(type);
    bool overflow = false;
    for (uint32_t dim = 0; dim < shape->via.array.size; dim++) {
        if (!s_is_uint(&shape->via.array.ptr[dim], UINT64_MAX))
            return zfed_reason_set(reason, reason_size, "shape",
                                   "tensor %s: shape must be an array of 0-%d unsigned integers",
                                   shown, ZFED_TENSOR_DIMS_MAX);
        dims[dim] = shape->via.array.ptr[dim].via.u64;
        overflow |= __builtin_mul_overflow(expected, dims[dim], &expected);
    }
    if (!s_is_uint(&field[3], UINT64_MAX))
        return zfed_reason_set(
            reason, reason_size, "offset",
            "tensor %s: offset must be an unsigned integer (%llu, where the previous "
            "tensor ends)",
            shown, (unsigned long long)*offset);
    if (field[3].via.u64 != *offset)
        return zfed_reason_set(reason, reason_size, "offset",
                               "tensor %s: offset %llu, expected %llu (tensors lie end to end)",
                               shown, (unsigned long long)field[3].via.u64,
                               (unsigned long long)*offset);
    char shape_text[ZFED_TENSOR_DIMS_MAX * 22 + 8];
    zfed_shape_format(dims, shape->via.array.size, shape_text, sizeof shape_text);
    if (overflow)
        return zfed_reason_set(reason, reason_size, "nbytes",
                               "tensor %s: shape %s of %s is more than 2^64 bytes", shown,
                               shape_text, zfed_dtype_name(type));
    if (!s_is_uint(&field[4], UINT64_MAX) || field[4].via.u64 != expected)
        return zfed_reason_set(reason, reason_size, "nbytes",
                               "tensor %s: nbytes must be %llu (shape %s of %s)", shown,
                               (unsigned long long)expected, shape_text, zfed_dtype_name(type));
    if (expected > ZFED_MODEL_BYTES_MAX - *offset)
        return zfed_reason_set(reason, reason_size, "size",
                               "tensor %s: the tensors end past 2^40 bytes", shown);
    char error[256];
    if (zfed_layout_add(layout, text, type, dims, shape->via.array.size, error, sizeof error) != 0)
        //  What is left for the layout to refuse is the name as text
        //  (UTF-8, C1 controls), or memory.
        return zfed_reason_set(reason, reason_size, "name", "%s", error);
    *offset += expected;
    return 0;
}

int zfed_descriptor_read(const msgpack_object *object, zfed_descriptor_role_t role,
                         zfed_descriptor_t *out, char *reason, size_t reason_size)
{
    memset(out, 0, sizeof *out);
    if (object->type != MSGPACK_OBJECT_ARRAY)
        return zfed_reason_set(reason, reason_size, "descriptor",
                               "a model descriptor is an array, got %s",
                               zfed_msgpack_type_name(object->type));
    const msgpack_object *element = object->via.array.ptr;
    uint32_t count = object->via.array.size;
    if (count < 2 || element[0].type != MSGPACK_OBJECT_STR ||
        element[0].via.str.size != KIND_LENGTH ||
        memcmp(element[0].via.str.ptr, ZFED_KIND_MODEL, KIND_LENGTH) != 0)
        return zfed_reason_set(reason, reason_size, "kind", "element 0 (kind): expected \"%s\"",
                               ZFED_KIND_MODEL);
    if (!s_is_uint(&element[1], UINT32_MAX) || element[1].via.u64 != ZFED_PROTOCOL_VERSION)
        return zfed_reason_set(reason, reason_size, "version",
                               "element 1 (version): this peer speaks version %d",
                               ZFED_PROTOCOL_VERSION);
    if (count != DESCRIPTOR_ELEMENTS)
        return zfed_reason_set(reason, reason_size, "elements", "%s v1 has %d elements, got %u",
                               ZFED_KIND_MODEL, DESCRIPTOR_ELEMENTS, count);
    if (!s_is_id(&element[2]))
        return zfed_reason_set(reason, reason_size, "id",
                               "element 2 (id): expected a bin of %d bytes", ZFED_MODEL_ID_SIZE);
    if (element[3].type != MSGPACK_OBJECT_NIL && !s_is_id(&element[3]))
        return zfed_reason_set(reason, reason_size, "sha256",
                               "element 3 (sha256): expected nil or a bin of %d bytes",
                               ZFED_MODEL_ID_SIZE);
    if (!s_is_uint(&element[4], ZFED_MODEL_BYTES_MAX))
        return zfed_reason_set(reason, reason_size, "size",
                               "element 4 (size): expected an unsigned integer up to 2^40");
    if (!s_is_uint(&element[5], ZFED_CHUNK_MAX) || element[5].via.u64 < ZFED_CHUNK_MIN)
        return zfed_reason_set(reason, reason_size, "chunk",
                               "element 5 (chunk): expected %u to %u bytes", ZFED_CHUNK_MIN,
                               ZFED_CHUNK_MAX);
    const msgpack_object *tensors = &element[6];
    if (tensors->type != MSGPACK_OBJECT_ARRAY || tensors->via.array.size > ZFED_LAYOUT_TENSORS_MAX)
        return zfed_reason_set(reason, reason_size, "tensors",
                               "element 6 (tensors): expected an array of at most %d entries",
                               ZFED_LAYOUT_TENSORS_MAX);
    memcpy(out->id, element[2].via.bin.ptr, ZFED_MODEL_ID_SIZE);
    out->has_sha256 = element[3].type != MSGPACK_OBJECT_NIL;
    if (out->has_sha256)
        memcpy(out->sha256, element[3].via.bin.ptr, ZFED_MODEL_ID_SIZE);
    out->size = element[4].via.u64;
    out->chunk = (uint32_t)element[5].via.u64;
    out->layout = zfed_layout_new();
    if (!out->layout)
        return zfed_reason_set(reason, reason_size, "memory", "out of memory reading a descriptor");
    uint64_t offset = 0;
    for (uint32_t index = 0; index < tensors->via.array.size; index++)
        if (s_read_entry(&tensors->via.array.ptr[index], index, out->layout, &offset, reason,
                         reason_size) != 0)
            goto err;
    if (offset != out->size) {
        zfed_reason_set(reason, reason_size, "size",
                        "element 4 (size): %llu bytes, but the layout's tensors end at %llu",
                        (unsigned long long)out->size, (unsigned long long)offset);
        goto err;
    }
    const msgpack_object *source = &element[7];
    if (source->type != MSGPACK_OBJECT_STR ||
        (source->via.str.size != 0 &&
         !zfed_blob_service_valid(source->via.str.ptr, source->via.str.size))) {
        zfed_reason_set(reason, reason_size, "source",
                        "element 7 (source): expected \"\" or %s and %d lowercase hex digits",
                        ZFED_BLOB_PREFIX, ZFED_BLOB_HEX_DIGITS);
        goto err;
    }
    memcpy(out->source, source->via.str.ptr, source->via.str.size);
    out->source[source->via.str.size] = '\0';
    bool inline_model = source->via.str.size == 0;
    if (inline_model && out->size > ZFED_MODEL_INLINE_MAX) {
        zfed_reason_set(reason, reason_size, "inline",
                        "a model of %llu bytes (over %u) must travel by reference",
                        (unsigned long long)out->size, ZFED_MODEL_INLINE_MAX);
        goto err;
    }
    if (!inline_model && out->size <= ZFED_MODEL_INLINE_MAX) {
        zfed_reason_set(reason, reason_size, "inline",
                        "a model of %llu bytes (at most %u) must travel inline",
                        (unsigned long long)out->size, ZFED_MODEL_INLINE_MAX);
        goto err;
    }
    if (role == ZFED_DESCRIPTOR_GLOBAL &&
        (!out->has_sha256 || memcmp(out->id, out->sha256, ZFED_MODEL_ID_SIZE) != 0)) {
        zfed_reason_set(reason, reason_size, "global_id", "a global model's id must be its sha256");
        goto err;
    }
    return 0;
err:
    zfed_descriptor_clear(out);
    return -1;
}

int zfed_descriptor_decode(const void *data, size_t size, zfed_descriptor_role_t role,
                           zfed_descriptor_t *out, char *reason, size_t reason_size)
{
    memset(out, 0, sizeof *out);
    if (zfed_reason_prescan(data, size, reason, reason_size) != 0)
        return -1;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t offset = 0;
    int rc = -1;
    if (msgpack_unpack_next(&unpacked, data, size, &offset) != MSGPACK_UNPACK_SUCCESS ||
        offset != size)
        zfed_reason_set(reason, reason_size, "msgpack", "cannot unpack the descriptor");
    else
        rc = zfed_descriptor_read(&unpacked.data, role, out, reason, reason_size);
    msgpack_unpacked_destroy(&unpacked);
    return rc;
}

static int s_pack_text(msgpack_packer *packer, const char *text)
{
    size_t length = strlen(text);
    return msgpack_pack_str_with_body(packer, text, length);
}

int zfed_descriptor_pack(msgpack_packer *packer, const zfed_descriptor_t *self)
{
    int rc = msgpack_pack_array(packer, DESCRIPTOR_ELEMENTS);
    rc |= msgpack_pack_str_with_body(packer, ZFED_KIND_MODEL, KIND_LENGTH);
    rc |= msgpack_pack_uint32(packer, ZFED_PROTOCOL_VERSION);
    rc |= msgpack_pack_bin_with_body(packer, self->id, ZFED_MODEL_ID_SIZE);
    if (self->has_sha256)
        rc |= msgpack_pack_bin_with_body(packer, self->sha256, ZFED_MODEL_ID_SIZE);
    else
        rc |= msgpack_pack_nil(packer);
    rc |= msgpack_pack_uint64(packer, self->size);
    rc |= msgpack_pack_uint32(packer, self->chunk);
    size_t tensors = self->layout ? zfed_layout_size(self->layout) : 0;
    rc |= msgpack_pack_array(packer, tensors);
    for (size_t index = 0; index < tensors && rc == 0; index++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(self->layout, index);
        rc |= msgpack_pack_array(packer, ENTRY_ELEMENTS);
        rc |= s_pack_text(packer, tensor->name);
        rc |= s_pack_text(packer, zfed_dtype_name(tensor->dtype));
        rc |= msgpack_pack_array(packer, tensor->ndim);
        for (uint32_t dim = 0; dim < tensor->ndim; dim++)
            rc |= msgpack_pack_uint64(packer, tensor->shape[dim]);
        rc |= msgpack_pack_uint64(packer, tensor->offset);
        rc |= msgpack_pack_uint64(packer, tensor->nbytes);
    }
    rc |= s_pack_text(packer, self->source);
    return rc == 0 ? 0 : -1;
}

int zfed_descriptor_encode(const zfed_descriptor_t *self, msgpack_sbuffer *buffer)
{
    msgpack_sbuffer_clear(buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    return zfed_descriptor_pack(&packer, self);
}

int zfed_descriptor_set(zfed_descriptor_t *out, const uint8_t id[ZFED_MODEL_ID_SIZE],
                        const uint8_t *sha256, const zfed_layout_t *layout, uint32_t chunk,
                        const char *source, zfed_descriptor_role_t role, char *reason,
                        size_t reason_size)
{
    memset(out, 0, sizeof *out);
    size_t source_length = source ? strlen(source) : 0;
    uint64_t size = zfed_layout_nbytes(layout);
    if (chunk < ZFED_CHUNK_MIN || chunk > ZFED_CHUNK_MAX)
        return zfed_reason_set(reason, reason_size, "chunk", "a chunk is %u to %u bytes, not %u",
                               ZFED_CHUNK_MIN, ZFED_CHUNK_MAX, chunk);
    if (source_length && !zfed_blob_service_valid(source, source_length))
        return zfed_reason_set(reason, reason_size, "source", "'%.64s' is not a blob service name",
                               source);
    if ((source_length == 0) != (size <= ZFED_MODEL_INLINE_MAX))
        return zfed_reason_set(reason, reason_size, "inline",
                               "a model of %llu bytes travels %s (the inline limit is %u)",
                               (unsigned long long)size, source_length ? "inline" : "by reference",
                               ZFED_MODEL_INLINE_MAX);
    if (role == ZFED_DESCRIPTOR_GLOBAL && (!sha256 || memcmp(id, sha256, ZFED_MODEL_ID_SIZE) != 0))
        return zfed_reason_set(reason, reason_size, "global_id",
                               "a global model's id must be its sha256");
    out->layout = zfed_layout_dup(layout);
    if (!out->layout)
        return zfed_reason_set(reason, reason_size, "memory", "out of memory copying a layout");
    memcpy(out->id, id, ZFED_MODEL_ID_SIZE);
    out->has_sha256 = sha256 != NULL;
    if (sha256)
        memcpy(out->sha256, sha256, ZFED_MODEL_ID_SIZE);
    out->size = size;
    out->chunk = chunk;
    memcpy(out->source, source ? source : "", source_length + 1);
    return 0;
}

void zfed_descriptor_clear(zfed_descriptor_t *self)
{
    if (!self)
        return;
    zfed_layout_destroy(&self->layout);
    memset(self, 0, sizeof *self);
}

int zfed_descriptor_copy(zfed_descriptor_t *out, const zfed_descriptor_t *self)
{
    *out = *self;
    out->layout = self->layout ? zfed_layout_dup(self->layout) : NULL;
    if (self->layout && !out->layout) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

bool zfed_descriptor_is_inline(const zfed_descriptor_t *self)
{
    return self->source[0] == '\0';
}

int zfed_descriptor_check_data(const zfed_descriptor_t *self, bool has_data_frame,
                               uint64_t data_size, char *reason, size_t reason_size)
{
    bool inline_model = zfed_descriptor_is_inline(self);
    if (inline_model && !has_data_frame)
        return zfed_reason_set(reason, reason_size, "data",
                               "an inline model comes with its data frame");
    if (!inline_model && has_data_frame)
        return zfed_reason_set(reason, reason_size, "data",
                               "a model by reference comes without a data frame");
    if (has_data_frame && data_size != self->size)
        return zfed_reason_set(reason, reason_size, "data",
                               "the data frame is %llu bytes, the model %llu",
                               (unsigned long long)data_size, (unsigned long long)self->size);
    return 0;
}

uint64_t zfed_chunk_count(uint64_t size, uint32_t chunk)
{
    return chunk ? size / chunk + (size % chunk != 0) : 0;
}

int zfed_chunk_range(uint64_t size, uint32_t chunk, uint64_t index, uint64_t *offset,
                     size_t *length)
{
    if (index >= zfed_chunk_count(size, chunk))
        return -1;
    uint64_t start = index * chunk;
    uint64_t left = size - start;
    *offset = start;
    *length = (size_t)(left < chunk ? left : chunk);
    return 0;
}

uint64_t zfed_descriptor_chunks(const zfed_descriptor_t *self)
{
    return zfed_chunk_count(self->size, self->chunk);
}

bool zfed_blob_service_valid(const char *name, size_t length)
{
    if (length != ZFED_BLOB_PREFIX_SIZE + ZFED_BLOB_HEX_DIGITS ||
        memcmp(name, ZFED_BLOB_PREFIX, ZFED_BLOB_PREFIX_SIZE) != 0)
        return false;
    for (size_t index = ZFED_BLOB_PREFIX_SIZE; index < length; index++) {
        char digit = name[index];
        if (!((digit >= '0' && digit <= '9') || (digit >= 'a' && digit <= 'f')))
            return false;
    }
    return true;
}

int zfed_blob_service_random(char name[ZFED_BLOB_SERVICE_SIZE])
{
    static const char digits[] = "0123456789abcdef";
    uint8_t random[ZFED_BLOB_HEX_DIGITS / 2];
    size_t got = 0;
    while (got < sizeof random) {
        ssize_t rc = getrandom(random + got, sizeof random - got, 0);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        got += (size_t)rc;
    }
    memcpy(name, ZFED_BLOB_PREFIX, ZFED_BLOB_PREFIX_SIZE);
    for (size_t index = 0; index < sizeof random; index++) {
        name[ZFED_BLOB_PREFIX_SIZE + 2 * index] = digits[random[index] >> 4];
        name[ZFED_BLOB_PREFIX_SIZE + 2 * index + 1] = digits[random[index] & 0x0f];
    }
    name[ZFED_BLOB_PREFIX_SIZE + ZFED_BLOB_HEX_DIGITS] = '\0';
    return 0;
}
