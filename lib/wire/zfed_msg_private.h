/*  zfed_msg_private - the decoder's two ways, for tests (private header).

    zfed_msg_decode reads a result laid out as the encoders lay it by its
    own short way (zfed_msg.c, "A result laid out as the encoders lay
    it") and everything else the general way.  These let tests hold the
    short way to the general one: the same bytes through each.
*/
#ifndef ZFED_MSG_PRIVATE_H_INCLUDED
#define ZFED_MSG_PRIVATE_H_INCLUDED

#include "zfed/zfed_msg.h"

#include <stdbool.h>
#include <stddef.h>

//  zfed_msg_decode without the canonical result's short way.
zfed_msg_t *zfed_msg_decode_general(const void *data, size_t size, char *reason,
                                    size_t reason_size);

//  zfed_msg_decode; *took says whether the short way decoded it.
zfed_msg_t *zfed_msg_decode_canonical(const void *data, size_t size, bool *took, char *reason,
                                      size_t reason_size);

#endif
