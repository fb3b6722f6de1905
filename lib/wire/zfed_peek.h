/*  zfed_peek - single msgpack values read straight from the bytes.

    For the few places that need a value or two of a body without building
    an object tree: the zfed.batch envelope (zfed_batch) and the head of a
    task that the broker names in its own error replies
    (zfed_msg_peek_task).  Each reader takes the value at the position,
    moves past it and returns 0, or returns -1 with the position unchanged
    when the value is not of that type or does not fit in the bytes left.
    Nothing is allocated and nothing past the value is looked at, so a
    peek costs the same for a 40-byte body and a 4 MiB one.
*/
#ifndef ZFED_PEEK_H_INCLUDED
#define ZFED_PEEK_H_INCLUDED

#include "zfed/zfed_mdp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t position;
} zfed_peek_t;

//  An array header (fixarray, array16, array32): its element count.
int zfed_peek_array(zfed_peek_t *reader, uint64_t *count);

//  An integer in any of its msgpack forms, signed or unsigned (1 may come
//  as d0 01).  *negative is set for a value below zero; *value then holds
//  its two's complement bits.
int zfed_peek_int(zfed_peek_t *reader, uint64_t *value, bool *negative);

//  A non-negative integer in any of its forms, at most max: a positive
//  fixint read inline (ids mostly are; a call per id was a tenth of a
//  result's decode), the rest by zfed_peek_int.  -1 for a negative one
//  or one over max (the position then past it).
static inline int zfed_peek_uint(zfed_peek_t *reader, uint64_t max, uint64_t *value)
{
    if (reader->position < reader->size && reader->data[reader->position] <= 0x7f &&
        reader->data[reader->position] <= max) {
        *value = reader->data[reader->position++];
        return 0;
    }
    bool negative = true;
    uint64_t number = 0;
    if (zfed_peek_int(reader, &number, &negative) != 0 || negative || number > max)
        return -1;
    *value = number;
    return 0;
}

//  zfed_peek_uint of a u32 (the ids of tasks, results and transfers).
static inline int zfed_peek_u32(zfed_peek_t *reader, uint32_t *value)
{
    uint64_t number = 0;
    if (zfed_peek_uint(reader, UINT32_MAX, &number) != 0)
        return -1;
    *value = (uint32_t)number;
    return 0;
}

//  A str (bin false) or a bin (bin true): a view of its bytes in data.
int zfed_peek_bytes(zfed_peek_t *reader, bool bin, zfed_view_t *view);

#endif
