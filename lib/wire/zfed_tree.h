/*  zfed_tree - msgpack bytes checked and read into msgpack-c's object tree
    in one block (private header).

    zfed_msgpack_check's rules first (every length inside the bytes, UTF-8
    strings, string map keys, nesting and value limits), then the tree
    msgpack_unpack would build, by a cursor over the checked bytes: the
    same types and values, strings and bins as views, containers'
    elements side by side.  The block holds prefix bytes for the caller
    (zfed_msg puts the message there) first, then the objects and a copy
    of the bytes the tree's views point into (in either order: a small
    body is checked and built in one pass, straight into the block, the
    rest in two); free() releases all of it.
*/
#ifndef ZFED_TREE_H_INCLUDED
#define ZFED_TREE_H_INCLUDED

#include <msgpack.h>
#include <stddef.h>

//  The block (malloc'd, its first prefix bytes undefined) with *root at
//  the tree's root, or NULL with reason when the bytes do not pass the
//  check or memory runs out.  size must be within ZFED_BODY_MAX.
void *zfed_tree_build(const void *data, size_t size, size_t prefix, msgpack_object **root,
                      char *reason, size_t reason_size);

//  zfed_tree_build into block (capacity bytes, malloc'd; NULL for none)
//  when the one pass takes the bytes and they fit it, into a new block
//  otherwise.  block is taken either way (returned, or freed).  The block
//  returned is *block_size bytes.
void *zfed_tree_build_reusing(void *block, size_t capacity, const void *data, size_t size,
                              size_t prefix, msgpack_object **root, size_t *block_size,
                              char *reason, size_t reason_size);

#endif
