/*  zfed_idx - IDX files (the MNIST format), read through zlib and written
    gzip-compressed (private header).

    An IDX file is a 4-byte magic (0x00 0x00 TYPE NDIMS), NDIMS big-endian
    u32 dimensions, then the items, row-major.  Fashion-MNIST's images are
    0x00000803 (u8, 3 dims: count, 28, 28), its labels 0x00000801 (u8, 1
    dim: count).  Only u8 data (TYPE 0x08) is supported: that is all the
    MNIST family uses.

    The reader takes gzip or plain files alike (zlib's gzread passes plain
    bytes through), checks the gzip CRC by reading to the end, and refuses
    a header it cannot trust: unknown magic, a dimension count other than the
    one asked for, a zero or oversized dimension, more items or bytes than
    the limits below, fewer bytes than the header promises, or bytes after
    them.  It never allocates more than the bytes that actually arrive (plus
    a doubling), so a 16-byte file claiming 10 million images costs nothing.
    Errors read "FILE: FIELD: reason".
*/
#ifndef ZFED_IDX_H_INCLUDED
#define ZFED_IDX_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define ZFED_IDX_TYPE_U8  0x08
#define ZFED_IDX_MAX_DIMS 4
//  Limits on what a header may claim: items (the first dimension), every
//  other dimension, and the whole payload.
#define ZFED_IDX_MAX_ITEMS 10000000u
#define ZFED_IDX_MAX_DIM   4096u
#define ZFED_IDX_MAX_BYTES (1ull << 31)

typedef struct _zfed_idx_t zfed_idx_t;

//  Reads path, which must hold u8 data with ndims dimensions (1 to
//  ZFED_IDX_MAX_DIMS).  Returns NULL with "path: field: reason" in error.
zfed_idx_t *zfed_idx_read(const char *path, uint32_t ndims, char *error, size_t error_size);

//  Wraps data (which the new object owns from now on, freed with free())
//  as an IDX of ndims dims; NULL when the dims break the limits above.
zfed_idx_t *zfed_idx_new(uint32_t ndims, const uint32_t *dims, uint8_t *data, char *error,
                         size_t error_size);

void zfed_idx_destroy(zfed_idx_t **self_p);

uint32_t zfed_idx_ndims(const zfed_idx_t *self);
//  Dimension i (0 = the item count); 0 past ndims.
uint32_t zfed_idx_dim(const zfed_idx_t *self, uint32_t i);
//  The item count (dimension 0) and the bytes of one item.
uint32_t zfed_idx_count(const zfed_idx_t *self);
size_t zfed_idx_item_size(const zfed_idx_t *self);
//  The payload: count * item_size bytes.
const uint8_t *zfed_idx_data(const zfed_idx_t *self);
size_t zfed_idx_size(const zfed_idx_t *self);

//  Writes ndims dims and their data to path, gzip-compressed (zlib level
//  ZFED_IDX_GZIP_LEVEL, header time 0, so the same data gives the same
//  bytes), durably (temporary file, fsync, rename).  Returns 0, or -1 with
//  "path: reason" in error.
#define ZFED_IDX_GZIP_LEVEL 6
int zfed_idx_write(const char *path, uint32_t ndims, const uint32_t *dims, const uint8_t *data,
                   char *error, size_t error_size);

#endif
