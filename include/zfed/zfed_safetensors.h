/*  zfed_safetensors - models on disk in the safetensors format.

    A file is an 8-byte little-endian header length N, N bytes of JSON,
    then the data:

        {"__metadata__": {"key": "value", ...},            (optional)
         "fc1.weight": {"dtype": "F32", "shape": [200, 784],
                        "data_offsets": [BEGIN, END]}, ...}

    where BEGIN and END are byte offsets into the data.  Reading validates
    everything before anything is used: N against ZFED_SAFETENSORS_HEADER_MAX
    and the file's size; the JSON (duplicate keys refused); each tensor's
    fields (no unknown ones), its dtype (the twelve of zfed_model.h), its
    shape (integers, at most ZFED_TENSOR_DIMS_MAX), and that END - BEGIN
    is exactly what the dtype and shape need; that the tensors cover the
    data exactly, with no gap and no overlap; and that the file ends with
    the last tensor.  Errors name the tensor and the field.  The layout
    lists the tensors in the order of their data (zero-size ones where
    they stand in the header among tensors at the same offset).

    Writing puts the header's tensors in model order with contiguous
    offsets, "__metadata__" first when there is any, and pads the JSON
    with spaces so the data starts at a multiple of 8 bytes.

    Big models stream: open a file to get its layout and read ranges of
    its data, so a 4 GiB model is served in chunks without loading it;
    create a file for a known layout and write its data in order, chunk by
    chunk, then finish it durably (temporary file, fsync, rename, fsync of
    the folder).  Small models load and save whole.
*/
#ifndef ZFED_SAFETENSORS_H_INCLUDED
#define ZFED_SAFETENSORS_H_INCLUDED

#include "zfed/zfed_model.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Largest JSON header read (the format's own readers use the same).
#define ZFED_SAFETENSORS_HEADER_MAX (100u << 20)
//  The length field before the JSON.
#define ZFED_SAFETENSORS_PREFIX 8
//  The key of the string-to-string metadata object.
#define ZFED_SAFETENSORS_METADATA "__metadata__"

//  Validates a header (the N bytes of JSON) for data of data_size bytes.
//  Returns the layout, and the metadata object (new reference, NULL when
//  there is none) in *metadata if metadata is not NULL; NULL with the
//  reason in error.
zfed_layout_t *zfed_safetensors_parse(const void *json, size_t size, uint64_t data_size,
                                      json_t **metadata, char *error, size_t error_size);

//  The header of a file for layout: length prefix, JSON and padding
//  (malloc'ed, *size bytes; the data starts right after).  metadata may be
//  NULL, or an object of strings.  NULL with the reason in error.
uint8_t *zfed_safetensors_header(const zfed_layout_t *layout, const json_t *metadata, size_t *size,
                                 char *error, size_t error_size);

//  A whole file in memory -> a model (its own copy of the data), and the
//  metadata as zfed_safetensors_parse gives it.
zfed_model_t *zfed_safetensors_decode(const void *bytes, size_t size, json_t **metadata,
                                      char *error, size_t error_size);
//  A model -> a whole file in memory (malloc'ed, *size bytes).
uint8_t *zfed_safetensors_encode(const zfed_model_t *model, const json_t *metadata, size_t *size,
                                 char *error, size_t error_size);

//  Whole files.  Errors start with the path.
zfed_model_t *zfed_safetensors_load(const char *path, json_t **metadata, char *error,
                                    size_t error_size);
int zfed_safetensors_save(const char *path, const zfed_model_t *model, const json_t *metadata,
                          char *error, size_t error_size);

// --------------------------------------------------------------------------
//  Reading in ranges

typedef struct _zfed_safetensors_t zfed_safetensors_t;

//  Opens and validates path (its header, against its size).  NULL with
//  the reason in error.
zfed_safetensors_t *zfed_safetensors_open(const char *path, char *error, size_t error_size);
void zfed_safetensors_close(zfed_safetensors_t **self_p);

const zfed_layout_t *zfed_safetensors_layout(const zfed_safetensors_t *self);
//  The metadata object, or NULL when the file has none (owned by self).
const json_t *zfed_safetensors_metadata(const zfed_safetensors_t *self);
//  Where the data starts in the file (8 + N).
uint64_t zfed_safetensors_data_offset(const zfed_safetensors_t *self);

//  Reads size bytes of data from offset (relative to the data's start).
//  0, or -1 with the reason in error (a range past the data, a read
//  error, a file that shrank).  Reads use pread: several threads may read
//  one open file at once.
int zfed_safetensors_read(zfed_safetensors_t *self, uint64_t offset, void *buffer, size_t size,
                          char *error, size_t error_size);
//  Maps the file read-only (once; the mapping lives until the file is
//  closed) and returns its data's first byte, so it can be sent without
//  a copy; NULL with the reason (no data, or mmap failed).  The file must
//  not shrink while it is mapped (a read past its end would be SIGBUS):
//  zfed replaces its model files by rename, never in place.
const uint8_t *zfed_safetensors_map(zfed_safetensors_t *self, char *error, size_t error_size);
//  Unmaps the pages of data [offset, offset + size) from our address space
//  for now (madvise DONTNEED: the page cache keeps them, a later read maps
//  them again), so a file served in chunks does not count in our RSS
//  whole.  Any thread; a no-op when the file is not mapped.
void zfed_safetensors_map_drop(zfed_safetensors_t *self, uint64_t offset, size_t size);

// --------------------------------------------------------------------------
//  Writing in chunks

typedef struct _zfed_safetensors_writer_t zfed_safetensors_writer_t;

//  Starts path for a model of layout (copied) and writes its header.
//  NULL with the reason in error.
zfed_safetensors_writer_t *zfed_safetensors_create(const char *path, const zfed_layout_t *layout,
                                                   const json_t *metadata, char *error,
                                                   size_t error_size);
//  Appends the next size bytes of data (in layout order).  More than the
//  layout holds is an error.  0 or -1.
int zfed_safetensors_write(zfed_safetensors_writer_t *self, const void *data, size_t size,
                           char *error, size_t error_size);
//  Data bytes written so far.
uint64_t zfed_safetensors_written(const zfed_safetensors_writer_t *self);
//  Checks every byte was written, then makes the file durable and
//  visible at path.  Destroys the writer either way.  0, or -1 with the
//  reason in error and no file left (a previous file at path is kept).
int zfed_safetensors_finish(zfed_safetensors_writer_t **self_p, char *error, size_t error_size);
//  Gives up: nothing appears at path.  Idempotent.
void zfed_safetensors_abandon(zfed_safetensors_writer_t **self_p);

#ifdef __cplusplus
}
#endif

#endif
