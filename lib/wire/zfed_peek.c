/*  zfed_peek - reading single msgpack values without an object tree.  */
#include "wire/zfed_peek.h"

//  Big-endian unsigned of width bytes; the caller checked they are there.
static uint64_t s_be(const uint8_t *bytes, size_t width)
{
    uint64_t value = 0;
    for (size_t index = 0; index < width; index++)
        value = (value << 8) | bytes[index];
    return value;
}

static size_t s_left(const zfed_peek_t *reader)
{
    return reader->position < reader->size ? reader->size - reader->position : 0;
}

int zfed_peek_array(zfed_peek_t *reader, uint64_t *count)
{
    if (s_left(reader) == 0)
        return -1;
    uint8_t head = reader->data[reader->position];
    size_t width = head == 0xdc ? 2 : head == 0xdd ? 4 : 0;
    if ((head & 0xf0) == 0x90)
        *count = head & 0x0f;
    else if (width && s_left(reader) > width)
        *count = s_be(reader->data + reader->position + 1, width);
    else
        return -1;
    reader->position += 1 + width;
    return 0;
}

int zfed_peek_int(zfed_peek_t *reader, uint64_t *value, bool *negative)
{
    if (s_left(reader) == 0)
        return -1;
    uint8_t head = reader->data[reader->position];
    if (head <= 0x7f || head >= 0xe0) {
        *negative = head >= 0xe0;
        *value = *negative ? (uint64_t)(int64_t)(int8_t)head : head;
        reader->position++;
        return 0;
    }
    bool is_signed = head >= 0xd0 && head <= 0xd3;
    if (!is_signed && (head < 0xcc || head > 0xcf))
        return -1;
    size_t width = (size_t)1 << (head - (is_signed ? 0xd0 : 0xcc));
    if (s_left(reader) - 1 < width)
        return -1;
    const uint8_t *bytes = reader->data + reader->position + 1;
    *value = s_be(bytes, width);
    *negative = is_signed && (bytes[0] & 0x80);
    reader->position += 1 + width;
    return 0;
}

int zfed_peek_bytes(zfed_peek_t *reader, bool bin, zfed_view_t *view)
{
    if (s_left(reader) == 0)
        return -1;
    uint8_t head = reader->data[reader->position];
    size_t width = 0;
    uint64_t length = 0;
    if (!bin && (head & 0xe0) == 0xa0)
        length = head & 0x1f;
    else if (head == (bin ? 0xc4 : 0xd9))
        width = 1;
    else if (head == (bin ? 0xc5 : 0xda))
        width = 2;
    else if (head == (bin ? 0xc6 : 0xdb))
        width = 4;
    else
        return -1;
    if (s_left(reader) - 1 < width)
        return -1;
    if (width)
        length = s_be(reader->data + reader->position + 1, width);
    if (s_left(reader) - 1 - width < length)
        return -1;
    view->data = reader->data + reader->position + 1 + width;
    view->size = (size_t)length;
    reader->position += 1 + width + (size_t)length;
    return 0;
}
