/*  zfed_idx - IDX files through zlib.  */
#include "ml/zfed_idx.h"
#include "ml/zfed_ml_error.h"
#include "zfed/zfed_util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAGIC_SIZE 4
#define DIM_SIZE   4
//  zlib's read buffer, and the first allocation for the payload: the
//  buffer doubles as bytes arrive, up to what the header promised.
#define READ_BUFFER (128u * 1024u)
#define FIRST_CHUNK (1u << 20)
//  gzread takes an unsigned int: read at most this much per call.
#define MAX_READ (1u << 30)

struct _zfed_idx_t {
    uint32_t ndims;
    uint32_t dims[ZFED_IDX_MAX_DIMS];
    uint8_t *data;
    size_t size;
};

static uint32_t s_be32(const uint8_t *bytes)
{
    return (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 | (uint32_t)bytes[2] << 8 |
           (uint32_t)bytes[3];
}

static void s_put_be32(uint8_t *bytes, uint32_t value)
{
    bytes[0] = (uint8_t)(value >> 24);
    bytes[1] = (uint8_t)(value >> 16);
    bytes[2] = (uint8_t)(value >> 8);
    bytes[3] = (uint8_t)value;
}

//  Checks dims against the limits; the payload size in *size.  On error
//  writes "FIELD: reason" (without a file name) into reason.
static int s_check_dims(uint32_t ndims, const uint32_t *dims, size_t *size, char *reason,
                        size_t reason_size)
{
    if (ndims < 1 || ndims > ZFED_IDX_MAX_DIMS) {
        snprintf(reason, reason_size, "dims: %u dimensions, expected 1 to %d", ndims,
                 ZFED_IDX_MAX_DIMS);
        return -1;
    }
    if (dims[0] > ZFED_IDX_MAX_ITEMS) {
        snprintf(reason, reason_size, "dim 0 (items): %u, at most %u", dims[0], ZFED_IDX_MAX_ITEMS);
        return -1;
    }
    uint64_t total = dims[0];
    for (uint32_t i = 1; i < ndims; i++) {
        if (dims[i] < 1 || dims[i] > ZFED_IDX_MAX_DIM) {
            snprintf(reason, reason_size, "dim %u: %u, expected 1 to %u", i, dims[i],
                     ZFED_IDX_MAX_DIM);
            return -1;
        }
        total *= dims[i]; //  at most 10^7 * 4096^3 < 2^64
    }
    if (total > ZFED_IDX_MAX_BYTES) {
        snprintf(reason, reason_size, "dims: %llu bytes of data, at most %llu",
                 (unsigned long long)total, (unsigned long long)ZFED_IDX_MAX_BYTES);
        return -1;
    }
    *size = (size_t)total;
    return 0;
}

//  What a short read was: the file ended cleanly (the IDX data is
//  truncated), or zlib or the system failed (a broken gzip stream, an I/O
//  error): then the field in the error is "gzip" or "read", not the IDX
//  field being read.
typedef enum { READ_OK, READ_SHORT, READ_GZIP, READ_SYSTEM } s_read_t;

static const char *s_field(s_read_t result, const char *field)
{
    return result == READ_GZIP ? "gzip" : result == READ_SYSTEM ? "read" : field;
}

//  zlib's message, without the "path: " it puts in front.
static const char *s_gz_message(gzFile file, const char *path, int *code)
{
    const char *message = gzerror(file, code);
    size_t length = strlen(path);
    if (strncmp(message, path, length) == 0 && strncmp(message + length, ": ", 2) == 0)
        message += length + 2;
    return message;
}

//  Reads exactly size bytes; the reason of a short read in reason.
static s_read_t s_read_exact(gzFile file, const char *path, void *into, size_t size, char *reason,
                             size_t reason_size)
{
    uint8_t *at = into;
    while (size > 0) {
        unsigned want = size > MAX_READ ? MAX_READ : (unsigned)size;
        int got = gzread(file, at, want);
        if (got <= 0) {
            int code;
            const char *message = s_gz_message(file, path, &code);
            if (code == Z_ERRNO) {
                snprintf(reason, reason_size, "%s", strerror(errno));
                return READ_SYSTEM;
            }
            if (code != Z_OK) {
                snprintf(reason, reason_size, "%s", message);
                return READ_GZIP;
            }
            snprintf(reason, reason_size, "truncated");
            return READ_SHORT;
        }
        at += got;
        size -= (size_t)got;
    }
    return READ_OK;
}

//  Reads the payload, growing the buffer as bytes arrive rather than
//  trusting the header's size up front.
static uint8_t *s_read_payload(gzFile file, const char *path, size_t size, s_read_t *result,
                               char *reason, size_t reason_size)
{
    size_t capacity = size < FIRST_CHUNK ? size : FIRST_CHUNK;
    uint8_t *data = malloc(capacity ? capacity : 1);
    size_t filled = 0;
    while (data && filled < size) {
        if (filled == capacity) {
            capacity = capacity > size / 2 ? size : capacity * 2;
            uint8_t *grown = realloc(data, capacity);
            if (!grown) {
                free(data);
                data = NULL;
                break;
            }
            data = grown;
        }
        *result = s_read_exact(file, path, data + filled, capacity - filled, reason, reason_size);
        if (*result != READ_OK) {
            free(data);
            return NULL;
        }
        filled = capacity;
    }
    if (!data) {
        *result = READ_SHORT;
        snprintf(reason, reason_size, "out of memory for %zu bytes", size);
    }
    return data;
}

zfed_idx_t *zfed_idx_read(const char *path, uint32_t ndims, char *error, size_t error_size)
{
    char reason[256] = "";
    zfed_idx_t *self = NULL;
    if (ndims < 1 || ndims > ZFED_IDX_MAX_DIMS) {
        zfed_ml_error(error, error_size, "%s: dims: %u asked for, expected 1 to %d", path, ndims,
                      ZFED_IDX_MAX_DIMS);
        return NULL;
    }
    gzFile file = gzopen(path, "rb");
    if (!file) {
        zfed_ml_error(error, error_size, "%s: %s", path, errno ? strerror(errno) : "cannot open");
        return NULL;
    }
    gzbuffer(file, READ_BUFFER);
    uint8_t magic[MAGIC_SIZE];
    s_read_t result = s_read_exact(file, path, magic, sizeof magic, reason, sizeof reason);
    if (result != READ_OK) {
        zfed_ml_error(error, error_size, "%s: %s: %s", path, s_field(result, "magic"), reason);
        goto err;
    }
    uint32_t expected = (uint32_t)ZFED_IDX_TYPE_U8 << 8 | ndims;
    if (s_be32(magic) != expected) {
        zfed_ml_error(error, error_size, "%s: magic: 0x%08x, expected 0x%08x (u8, %u dims)", path,
                      s_be32(magic), expected, ndims);
        goto err;
    }
    self = calloc(1, sizeof *self);
    if (!self) {
        zfed_ml_error(error, error_size, "%s: out of memory", path);
        goto err;
    }
    self->ndims = ndims;
    uint8_t dims[ZFED_IDX_MAX_DIMS * DIM_SIZE];
    result = s_read_exact(file, path, dims, ndims * DIM_SIZE, reason, sizeof reason);
    if (result != READ_OK) {
        zfed_ml_error(error, error_size, "%s: %s: %s", path, s_field(result, "dims"), reason);
        goto err;
    }
    for (uint32_t i = 0; i < ndims; i++)
        self->dims[i] = s_be32(dims + i * DIM_SIZE);
    if (s_check_dims(ndims, self->dims, &self->size, reason, sizeof reason) != 0) {
        zfed_ml_error(error, error_size, "%s: %s", path, reason);
        goto err;
    }
    self->data = s_read_payload(file, path, self->size, &result, reason, sizeof reason);
    if (!self->data) {
        zfed_ml_error(error, error_size, "%s: %s: %s (header promises %zu bytes)", path,
                      s_field(result, "data"), reason, self->size);
        goto err;
    }
    //  Reading on to the end makes zlib check the gzip CRC and length, and
    //  shows bytes the header does not account for.
    uint8_t extra;
    int got = gzread(file, &extra, 1);
    int code;
    const char *message = s_gz_message(file, path, &code);
    if (got != 0 || code != Z_OK) {
        if (got > 0)
            zfed_ml_error(error, error_size, "%s: data: bytes after the items the header counts",
                          path);
        else
            zfed_ml_error(error, error_size, "%s: %s: %s", path, code == Z_ERRNO ? "read" : "gzip",
                          message);
        goto err;
    }
    gzclose(file);
    return self;

err:
    gzclose(file);
    zfed_idx_destroy(&self);
    return NULL;
}

zfed_idx_t *zfed_idx_new(uint32_t ndims, const uint32_t *dims, uint8_t *data, char *error,
                         size_t error_size)
{
    char reason[256];
    size_t size;
    if (s_check_dims(ndims, dims, &size, reason, sizeof reason) != 0) {
        zfed_ml_error(error, error_size, "%s", reason);
        return NULL;
    }
    zfed_idx_t *self = calloc(1, sizeof *self);
    if (!self) {
        zfed_ml_error(error, error_size, "out of memory");
        return NULL;
    }
    self->ndims = ndims;
    memcpy(self->dims, dims, ndims * sizeof *dims);
    self->data = data;
    self->size = size;
    return self;
}

void zfed_idx_destroy(zfed_idx_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->data);
    free(*self_p);
    *self_p = NULL;
}

uint32_t zfed_idx_ndims(const zfed_idx_t *self)
{
    return self->ndims;
}

uint32_t zfed_idx_dim(const zfed_idx_t *self, uint32_t i)
{
    return i < self->ndims ? self->dims[i] : 0;
}

uint32_t zfed_idx_count(const zfed_idx_t *self)
{
    return self->dims[0];
}

size_t zfed_idx_item_size(const zfed_idx_t *self)
{
    size_t size = 1;
    for (uint32_t i = 1; i < self->ndims; i++)
        size *= self->dims[i];
    return size;
}

const uint8_t *zfed_idx_data(const zfed_idx_t *self)
{
    return self->data;
}

size_t zfed_idx_size(const zfed_idx_t *self)
{
    return self->size;
}

//  Feeds input to the deflate stream; false on a zlib error.
static bool s_deflate(z_stream *stream, const uint8_t *input, size_t size, int flush)
{
    //  avail_in is an unsigned int: feed big payloads in slices.
    do {
        unsigned slice = size > MAX_READ ? MAX_READ : (unsigned)size;
        stream->next_in = (Bytef *)input;
        stream->avail_in = slice;
        input += slice;
        size -= slice;
        int last = size == 0 ? flush : Z_NO_FLUSH;
        int rc = deflate(stream, last);
        if (rc == Z_STREAM_ERROR || stream->avail_in != 0 ||
            (last == Z_FINISH && rc != Z_STREAM_END))
            return false;
    } while (size > 0);
    return true;
}

int zfed_idx_write(const char *path, uint32_t ndims, const uint32_t *dims, const uint8_t *data,
                   char *error, size_t error_size)
{
    char reason[256];
    size_t size;
    if (s_check_dims(ndims, dims, &size, reason, sizeof reason) != 0) {
        zfed_ml_error(error, error_size, "%s: %s", path, reason);
        return -1;
    }
    uint8_t header[MAGIC_SIZE + ZFED_IDX_MAX_DIMS * DIM_SIZE];
    s_put_be32(header, (uint32_t)ZFED_IDX_TYPE_U8 << 8 | ndims);
    for (uint32_t i = 0; i < ndims; i++)
        s_put_be32(header + MAGIC_SIZE + i * DIM_SIZE, dims[i]);
    size_t header_size = MAGIC_SIZE + ndims * DIM_SIZE;

    //  Compressed in memory, then written in one durable step: a reader
    //  never sees half a shard.  Window bits 15 + 16 ask zlib for a gzip
    //  wrapper; its default header has time 0 and no name.
    z_stream stream = {0};
    if (deflateInit2(&stream, ZFED_IDX_GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        zfed_ml_error(error, error_size, "%s: cannot start zlib", path);
        return -1;
    }
    int rc = -1;
    size_t bound = deflateBound(&stream, header_size + size);
    uint8_t *out = malloc(bound);
    if (!out) {
        zfed_ml_error(error, error_size, "%s: out of memory for %zu bytes", path, bound);
        goto done;
    }
    stream.next_out = out;
    //  deflateBound's margin is for one call; a slice per GiB stays within
    //  it because MAX_BYTES is 2 GiB and the bound grows with the input.
    stream.avail_out = bound > UINT32_MAX ? UINT32_MAX : (unsigned)bound;
    if (!s_deflate(&stream, header, header_size, size ? Z_NO_FLUSH : Z_FINISH) ||
        (size && !s_deflate(&stream, data, size, Z_FINISH))) {
        zfed_ml_error(error, error_size, "%s: zlib cannot compress: %s", path,
                      stream.msg ? stream.msg : "output buffer too small");
        goto done;
    }
    if (zfed_write_file_durable(path, out, stream.total_out) != 0) {
        zfed_ml_error(error, error_size, "%s: %s", path, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    deflateEnd(&stream);
    free(out);
    return rc;
}
