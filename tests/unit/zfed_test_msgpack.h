/*  zfed_test_msgpack - zfed_tree_build's tree against msgpack-c's.

    zfed_test_tree_agrees(data, size): when the bytes pass
    zfed_msgpack_check, zfed_tree_build succeeds and its tree is the one
    msgpack_unpack builds, value for value (floats bit for bit, strings,
    bins and exts byte for byte, containers in order); when they do not,
    zfed_tree_build refuses them too.  Shared by test_msg and fuzz_msg.
*/
#ifndef ZFED_TEST_MSGPACK_H_INCLUDED
#define ZFED_TEST_MSGPACK_H_INCLUDED

#include "wire/zfed_tree.h"
#include "zfed/zfed_msg.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static inline bool zfed_test_tree_same(const msgpack_object *a, const msgpack_object *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case MSGPACK_OBJECT_NIL:
        return true;
    case MSGPACK_OBJECT_BOOLEAN:
        return a->via.boolean == b->via.boolean;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return a->via.u64 == b->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return a->via.i64 == b->via.i64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return memcmp(&a->via.f64, &b->via.f64, sizeof a->via.f64) == 0;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        return a->via.str.size == b->via.str.size &&
               (a->via.str.size == 0 ||
                memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0);
    case MSGPACK_OBJECT_EXT:
        return a->via.ext.type == b->via.ext.type && a->via.ext.size == b->via.ext.size &&
               (a->via.ext.size == 0 ||
                memcmp(a->via.ext.ptr, b->via.ext.ptr, a->via.ext.size) == 0);
    case MSGPACK_OBJECT_ARRAY:
        if (a->via.array.size != b->via.array.size)
            return false;
        for (uint32_t index = 0; index < a->via.array.size; index++)
            if (!zfed_test_tree_same(&a->via.array.ptr[index], &b->via.array.ptr[index]))
                return false;
        return true;
    case MSGPACK_OBJECT_MAP:
        if (a->via.map.size != b->via.map.size)
            return false;
        for (uint32_t index = 0; index < a->via.map.size; index++)
            if (!zfed_test_tree_same(&a->via.map.ptr[index].key, &b->via.map.ptr[index].key) ||
                !zfed_test_tree_same(&a->via.map.ptr[index].val, &b->via.map.ptr[index].val))
                return false;
        return true;
    }
    return false;
}

static inline bool zfed_test_tree_agrees(const void *data, size_t size)
{
    msgpack_object *root = NULL;
    char reason[160];
    void *block = zfed_tree_build(data, size, 8, &root, reason, sizeof reason);
    bool checked = zfed_msgpack_check(data, size, NULL, 0) == 0;
    if (!checked || !block) {
        free(block);
        return !checked && !block;
    }
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t offset = 0;
    bool same = msgpack_unpack_next(&unpacked, (const char *)data, size, &offset) ==
                    MSGPACK_UNPACK_SUCCESS &&
                offset == size && zfed_test_tree_same(root, &unpacked.data);
    msgpack_unpacked_destroy(&unpacked);
    free(block);
    return same;
}

#endif
