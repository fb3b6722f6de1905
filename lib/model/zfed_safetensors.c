/*  zfed_safetensors - reading and writing safetensors files.  */
#include "zfed/zfed_safetensors.h"
#include "core/zfed_durable.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

//  Bytes moved per read or write when a whole model goes through a file.
#define IO_CHUNK (8u << 20)
//  A header pads to a multiple of this.
#define HEADER_ALIGN 8

//  One tensor of a header, before it joins the layout.
typedef struct {
    const char *name;
    zfed_dtype_t dtype;
    size_t ndim;
    uint64_t shape[ZFED_TENSOR_DIMS_MAX];
    uint64_t begin, end;
    size_t position; //  in the header, for ties between zero-size tensors
} s_entry_t;

static uint64_t s_le64(const uint8_t *bytes)
{
    uint64_t value = 0;
    for (int index = 7; index >= 0; index--)
        value = (value << 8) | bytes[index];
    return value;
}

static void s_put_le64(uint8_t *bytes, uint64_t value)
{
    for (int index = 0; index < 8; index++, value >>= 8)
        bytes[index] = (uint8_t)value;
}

//  A non-negative JSON integer, or -1.
static int s_count(const json_t *value, uint64_t *out)
{
    if (!json_is_integer(value) || json_integer_value(value) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(value);
    return 0;
}

static int s_parse_entry(const char *name, json_t *value, size_t position, s_entry_t *entry,
                         char *error, size_t error_size)
{
    memset(entry, 0, sizeof *entry);
    entry->name = name;
    entry->position = position;
    if (!json_is_object(value)) {
        snprintf(error, error_size, "tensor %s: not an object", name);
        return -1;
    }
    const char *key;
    json_t *field;
    json_object_foreach(value, key, field)
    {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets")) {
            snprintf(error, error_size, "tensor %s: unknown field '%.40s'", name, key);
            return -1;
        }
    }
    json_t *dtype = json_object_get(value, "dtype");
    json_t *shape = json_object_get(value, "shape");
    json_t *offsets = json_object_get(value, "data_offsets");
    if (!dtype || !shape || !offsets) {
        snprintf(error, error_size, "tensor %s: %s is missing", name,
                 !dtype   ? "dtype"
                 : !shape ? "shape"
                          : "data_offsets");
        return -1;
    }
    if (!json_is_string(dtype) || zfed_dtype_parse(json_string_value(dtype), &entry->dtype) != 0) {
        snprintf(error, error_size, "tensor %s: dtype %s%.20s%s is not one of %s", name,
                 json_is_string(dtype) ? "'" : "",
                 json_is_string(dtype) ? json_string_value(dtype) : "(not a string)",
                 json_is_string(dtype) ? "'" : "", zfed_dtype_list());
        return -1;
    }
    if (!json_is_array(shape)) {
        snprintf(error, error_size, "tensor %s: shape is not an array", name);
        return -1;
    }
    entry->ndim = json_array_size(shape);
    if (entry->ndim > ZFED_TENSOR_DIMS_MAX) {
        snprintf(error, error_size, "tensor %s: shape has %zu dimensions, at most %d", name,
                 entry->ndim, ZFED_TENSOR_DIMS_MAX);
        return -1;
    }
    for (size_t dim = 0; dim < entry->ndim; dim++)
        if (s_count(json_array_get(shape, dim), &entry->shape[dim]) != 0) {
            snprintf(error, error_size, "tensor %s: shape[%zu] is not a non-negative integer", name,
                     dim);
            return -1;
        }
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
        s_count(json_array_get(offsets, 0), &entry->begin) != 0 ||
        s_count(json_array_get(offsets, 1), &entry->end) != 0) {
        snprintf(error, error_size, "tensor %s: data_offsets is not [BEGIN, END] (integers)", name);
        return -1;
    }
    if (entry->begin > entry->end) {
        snprintf(error, error_size,
                 "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin", name,
                 entry->begin, entry->end);
        return -1;
    }
    return 0;
}

static int s_compare_entries(const void *left, const void *right)
{
    const s_entry_t *a = left, *b = right;
    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    return a->position < b->position ? -1 : a->position > b->position;
}

static int s_parse_metadata(json_t *value, char *error, size_t error_size)
{
    if (!json_is_object(value)) {
        snprintf(error, error_size, ZFED_SAFETENSORS_METADATA ": not an object");
        return -1;
    }
    const char *key;
    json_t *field;
    json_object_foreach(value, key, field)
    {
        if (!json_is_string(field)) {
            snprintf(error, error_size,
                     ZFED_SAFETENSORS_METADATA ": value of '%.40s' is not a string", key);
            return -1;
        }
    }
    return 0;
}

//  Entries sorted by offset -> a layout, checking they tile the data.
static zfed_layout_t *s_layout_of(s_entry_t *entries, size_t count, uint64_t data_size, char *error,
                                  size_t error_size)
{
    qsort(entries, count, sizeof *entries, s_compare_entries);
    zfed_layout_t *layout = zfed_layout_new();
    if (!layout) {
        snprintf(error, error_size, "out of memory");
        return NULL;
    }
    uint64_t expected = 0;
    const s_entry_t *previous = NULL;
    for (size_t index = 0; index < count; index++) {
        const s_entry_t *entry = &entries[index];
        if (zfed_layout_add(layout, entry->name, entry->dtype, entry->shape, entry->ndim, error,
                            error_size) != 0)
            goto err;
        const zfed_tensor_t *tensor = zfed_layout_tensor(layout, index);
        if (entry->end - entry->begin != tensor->nbytes) {
            snprintf(error, error_size,
                     "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                     " bytes where dtype %s and shape need %" PRIu64,
                     entry->name, entry->begin, entry->end, entry->end - entry->begin,
                     zfed_dtype_name(entry->dtype), tensor->nbytes);
            goto err;
        }
        if (entry->end > data_size) {
            snprintf(error, error_size,
                     "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
                     "] run past the end of the data (%" PRIu64 " bytes): truncated file?",
                     entry->name, entry->begin, entry->end, data_size);
            goto err;
        }
        if (entry->begin < expected) {
            snprintf(error, error_size,
                     "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
                     "] overlap tensor %s's [%" PRIu64 ", %" PRIu64 "]",
                     entry->name, entry->begin, entry->end, previous->name, previous->begin,
                     previous->end);
            goto err;
        }
        if (entry->begin > expected) {
            snprintf(error, error_size,
                     "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] leave a gap of %" PRIu64
                     " bytes before them",
                     entry->name, entry->begin, entry->end, entry->begin - expected);
            goto err;
        }
        expected = entry->end;
        previous = entry;
    }
    if (expected != data_size) {
        snprintf(error, error_size,
                 "data: %" PRIu64 " bytes after the header, the tensors cover %" PRIu64, data_size,
                 expected);
        goto err;
    }
    return layout;
err:
    zfed_layout_destroy(&layout);
    return NULL;
}

zfed_layout_t *zfed_safetensors_parse(const void *json, size_t size, uint64_t data_size,
                                      json_t **metadata, char *error, size_t error_size)
{
    if (metadata)
        *metadata = NULL;
    if (size > ZFED_SAFETENSORS_HEADER_MAX) {
        snprintf(error, error_size, "header: %zu bytes, more than %u", size,
                 ZFED_SAFETENSORS_HEADER_MAX);
        return NULL;
    }
    if (size == 0 || *(const char *)json != '{') {
        snprintf(error, error_size, "header: does not start with '{'");
        return NULL;
    }
    json_error_t parse_error;
    json_t *root = json_loadb(json, size, JSON_REJECT_DUPLICATES, &parse_error);
    if (!root) {
        snprintf(error, error_size, "header: not valid JSON (line %d column %d: %s)",
                 parse_error.line, parse_error.column, parse_error.text);
        return NULL;
    }
    zfed_layout_t *layout = NULL;
    s_entry_t *entries = NULL;
    if (!json_is_object(root)) {
        snprintf(error, error_size, "header: not a JSON object");
        goto done;
    }
    size_t members = json_object_size(root);
    if (members > ZFED_LAYOUT_TENSORS_MAX + 1) {
        snprintf(error, error_size, "header: %zu tensors, more than %d", members,
                 ZFED_LAYOUT_TENSORS_MAX);
        goto done;
    }
    entries = calloc(members ? members : 1, sizeof *entries);
    if (!entries) {
        snprintf(error, error_size, "out of memory");
        goto done;
    }
    size_t count = 0, position = 0;
    json_t *found_metadata = NULL;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        if (strcmp(key, ZFED_SAFETENSORS_METADATA) == 0) {
            if (s_parse_metadata(value, error, error_size) != 0)
                goto done;
            found_metadata = value;
            continue;
        }
        if (s_parse_entry(key, value, position++, &entries[count], error, error_size) != 0)
            goto done;
        count++;
    }
    if (count > ZFED_LAYOUT_TENSORS_MAX) {
        snprintf(error, error_size, "header: %zu tensors, more than %d", count,
                 ZFED_LAYOUT_TENSORS_MAX);
        goto done;
    }
    layout = s_layout_of(entries, count, data_size, error, error_size);
    if (layout && metadata && found_metadata)
        *metadata = json_incref(found_metadata);
done:
    free(entries);
    json_decref(root);
    return layout;
}

// --------------------------------------------------------------------------
//  Writing headers

static int s_check_metadata(const json_t *metadata, char *error, size_t error_size)
{
    return metadata ? s_parse_metadata((json_t *)metadata, error, error_size) : 0;
}

uint8_t *zfed_safetensors_header(const zfed_layout_t *layout, const json_t *metadata, size_t *size,
                                 char *error, size_t error_size)
{
    if (s_check_metadata(metadata, error, error_size) != 0)
        return NULL;
    json_t *root = json_object();
    uint8_t *header = NULL;
    char *text = NULL;
    if (!root)
        goto oom;
    if (metadata && json_object_size(metadata) > 0 &&
        json_object_set(root, ZFED_SAFETENSORS_METADATA, (json_t *)metadata) != 0)
        goto oom;
    for (size_t index = 0; index < zfed_layout_size(layout); index++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(layout, index);
        json_t *shape = json_array();
        for (uint32_t dim = 0; shape && dim < tensor->ndim; dim++)
            if (json_array_append_new(shape, json_integer((json_int_t)tensor->shape[dim])) != 0)
                json_decref(shape), shape = NULL;
        json_t *entry =
            shape ? json_pack("{s:s, s:o, s:[I, I]}", "dtype", zfed_dtype_name(tensor->dtype),
                              "shape", shape, "data_offsets", (json_int_t)tensor->offset,
                              (json_int_t)(tensor->offset + tensor->nbytes))
                  : NULL;
        if (!entry || json_object_set_new(root, tensor->name, entry) != 0)
            goto oom;
    }
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        goto oom;
    size_t length = strlen(text);
    size_t padded = (length + HEADER_ALIGN - 1) / HEADER_ALIGN * HEADER_ALIGN;
    if (padded > ZFED_SAFETENSORS_HEADER_MAX) {
        snprintf(error, error_size, "header: %zu bytes, more than %u", padded,
                 ZFED_SAFETENSORS_HEADER_MAX);
        goto done;
    }
    header = malloc(ZFED_SAFETENSORS_PREFIX + padded);
    if (!header)
        goto oom;
    s_put_le64(header, padded);
    memcpy(header + ZFED_SAFETENSORS_PREFIX, text, length);
    memset(header + ZFED_SAFETENSORS_PREFIX + length, ' ', padded - length);
    *size = ZFED_SAFETENSORS_PREFIX + padded;
    goto done;
oom:
    snprintf(error, error_size, "out of memory");
done:
    free(text);
    json_decref(root);
    return header;
}

// --------------------------------------------------------------------------
//  Whole files in memory

zfed_model_t *zfed_safetensors_decode(const void *bytes, size_t size, json_t **metadata,
                                      char *error, size_t error_size)
{
    if (metadata)
        *metadata = NULL;
    if (size < ZFED_SAFETENSORS_PREFIX) {
        snprintf(error, error_size, "file: %zu bytes, shorter than the header length", size);
        return NULL;
    }
    uint64_t length = s_le64(bytes);
    if (length > ZFED_SAFETENSORS_HEADER_MAX) {
        snprintf(error, error_size, "header: length %" PRIu64 ", more than %u", length,
                 ZFED_SAFETENSORS_HEADER_MAX);
        return NULL;
    }
    if (length > size - ZFED_SAFETENSORS_PREFIX) {
        snprintf(error, error_size, "header: length %" PRIu64 " runs past the end (%zu bytes)",
                 length, size);
        return NULL;
    }
    const uint8_t *json = (const uint8_t *)bytes + ZFED_SAFETENSORS_PREFIX;
    uint64_t data_size = size - ZFED_SAFETENSORS_PREFIX - length;
    zfed_layout_t *layout =
        zfed_safetensors_parse(json, length, data_size, metadata, error, error_size);
    if (!layout)
        return NULL;
    zfed_model_t *model = zfed_model_new(&layout);
    if (!model) {
        zfed_layout_destroy(&layout);
        if (metadata)
            json_decref(*metadata), *metadata = NULL;
        snprintf(error, error_size, "out of memory");
        return NULL;
    }
    if (data_size)
        memcpy(zfed_model_data(model), json + length, data_size);
    return model;
}

uint8_t *zfed_safetensors_encode(const zfed_model_t *model, const json_t *metadata, size_t *size,
                                 char *error, size_t error_size)
{
    size_t header_size;
    uint8_t *header = zfed_safetensors_header(zfed_model_layout(model), metadata, &header_size,
                                              error, error_size);
    if (!header)
        return NULL;
    uint64_t nbytes = zfed_model_nbytes(model);
    uint8_t *file = realloc(header, header_size + nbytes);
    if (!file) {
        free(header);
        snprintf(error, error_size, "out of memory");
        return NULL;
    }
    if (nbytes)
        memcpy(file + header_size, zfed_model_data(model), nbytes);
    *size = header_size + nbytes;
    return file;
}

// --------------------------------------------------------------------------
//  Reading files in ranges

struct _zfed_safetensors_t {
    int fd;
    zfed_layout_t *layout;
    json_t *metadata;
    uint64_t data_offset;
    uint64_t data_size;
    void *map; //  the whole file, read-only, once zfed_safetensors_map ran
    size_t map_size;
};

//  pread of exactly size bytes at offset, retried; 0, or -1 with errno
//  (EIO for a file that ends early).
static int s_pread_all(int fd, void *buffer, size_t size, uint64_t offset)
{
    uint8_t *cursor = buffer;
    while (size > 0) {
        ssize_t got = pread(fd, cursor, size, (off_t)offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0) {
            errno = EIO;
            return -1;
        }
        cursor += got;
        size -= (size_t)got;
        offset += (uint64_t)got;
    }
    return 0;
}

zfed_safetensors_t *zfed_safetensors_open(const char *path, char *error, size_t error_size)
{
    zfed_safetensors_t *self = calloc(1, sizeof *self);
    char reason[512];
    char *json = NULL;
    if (!self) {
        snprintf(error, error_size, "%s: out of memory", path);
        return NULL;
    }
    self->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat info;
    if (self->fd < 0 || fstat(self->fd, &info) != 0) {
        snprintf(reason, sizeof reason, "%s", strerror(errno));
        goto err;
    }
    if (!S_ISREG(info.st_mode)) {
        snprintf(reason, sizeof reason, "not a regular file");
        goto err;
    }
    uint64_t file_size = (uint64_t)info.st_size;
    uint8_t prefix[ZFED_SAFETENSORS_PREFIX];
    if (file_size < ZFED_SAFETENSORS_PREFIX) {
        snprintf(reason, sizeof reason, "file: %" PRIu64 " bytes, shorter than the header length",
                 file_size);
        goto err;
    }
    if (s_pread_all(self->fd, prefix, sizeof prefix, 0) != 0) {
        snprintf(reason, sizeof reason, "%s", strerror(errno));
        goto err;
    }
    uint64_t length = s_le64(prefix);
    if (length > ZFED_SAFETENSORS_HEADER_MAX) {
        snprintf(reason, sizeof reason, "header: length %" PRIu64 ", more than %u", length,
                 ZFED_SAFETENSORS_HEADER_MAX);
        goto err;
    }
    if (length > file_size - ZFED_SAFETENSORS_PREFIX) {
        snprintf(reason, sizeof reason,
                 "header: length %" PRIu64 " runs past the end (%" PRIu64 " bytes)", length,
                 file_size);
        goto err;
    }
    json = malloc(length ? length : 1);
    if (!json) {
        snprintf(reason, sizeof reason, "out of memory");
        goto err;
    }
    if (s_pread_all(self->fd, json, length, ZFED_SAFETENSORS_PREFIX) != 0) {
        snprintf(reason, sizeof reason, "%s", strerror(errno));
        goto err;
    }
    self->data_offset = ZFED_SAFETENSORS_PREFIX + length;
    self->data_size = file_size - self->data_offset;
    self->layout = zfed_safetensors_parse(json, length, self->data_size, &self->metadata, reason,
                                          sizeof reason);
    if (!self->layout)
        goto err;
    free(json);
    return self;
err:
    snprintf(error, error_size, "%s: %s", path, reason);
    free(json);
    zfed_safetensors_close(&self);
    return NULL;
}

void zfed_safetensors_close(zfed_safetensors_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_safetensors_t *self = *self_p;
    if (self->map)
        munmap(self->map, self->map_size);
    if (self->fd >= 0)
        close(self->fd);
    zfed_layout_destroy(&self->layout);
    json_decref(self->metadata);
    free(self);
    *self_p = NULL;
}

const zfed_layout_t *zfed_safetensors_layout(const zfed_safetensors_t *self)
{
    return self->layout;
}

const json_t *zfed_safetensors_metadata(const zfed_safetensors_t *self)
{
    return self->metadata;
}

uint64_t zfed_safetensors_data_offset(const zfed_safetensors_t *self)
{
    return self->data_offset;
}

int zfed_safetensors_read(zfed_safetensors_t *self, uint64_t offset, void *buffer, size_t size,
                          char *error, size_t error_size)
{
    if (offset > self->data_size || size > self->data_size - offset) {
        snprintf(error, error_size,
                 "read: bytes %" PRIu64 "..%" PRIu64 " are past the data (%" PRIu64 " bytes)",
                 offset, offset + size, self->data_size);
        return -1;
    }
    if (s_pread_all(self->fd, buffer, size, self->data_offset + offset) != 0) {
        snprintf(error, error_size, "read: %s%s", strerror(errno),
                 errno == EIO ? " (did the file shrink?)" : "");
        return -1;
    }
    return 0;
}

const uint8_t *zfed_safetensors_map(zfed_safetensors_t *self, char *error, size_t error_size)
{
    if (self->map)
        return (const uint8_t *)self->map + self->data_offset;
    if (self->data_size == 0 || self->data_offset + self->data_size > SIZE_MAX) {
        snprintf(error, error_size, "map: no data to map");
        return NULL;
    }
    size_t size = (size_t)(self->data_offset + self->data_size);
    void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, self->fd, 0);
    if (map == MAP_FAILED) {
        snprintf(error, error_size, "map: %s", strerror(errno));
        return NULL;
    }
    self->map = map;
    self->map_size = size;
    return (const uint8_t *)map + self->data_offset;
}

void zfed_safetensors_map_drop(zfed_safetensors_t *self, uint64_t offset, size_t size)
{
    if (!self->map || size == 0)
        return;
    //  Whole pages around the range: the file's pages stay in the page
    //  cache, so a later read of a neighbour just maps them again.
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t base = (uintptr_t)self->map;
    uintptr_t start = (base + (uintptr_t)(self->data_offset + offset)) & ~(page - 1);
    uintptr_t end = base + (uintptr_t)(self->data_offset + offset) + size;
    end = (end + page - 1) & ~(page - 1);
    if (end > base + self->map_size)
        end = (base + self->map_size + page - 1) & ~(page - 1);
    madvise((void *)start, end - start, MADV_DONTNEED);
}

// --------------------------------------------------------------------------
//  Writing files in chunks

struct _zfed_safetensors_writer_t {
    zfed_durable_t *file;
    char path[PATH_MAX];
    uint64_t nbytes;
    uint64_t written;
};

zfed_safetensors_writer_t *zfed_safetensors_create(const char *path, const zfed_layout_t *layout,
                                                   const json_t *metadata, char *error,
                                                   size_t error_size)
{
    char reason[512];
    size_t header_size;
    uint8_t *header =
        zfed_safetensors_header(layout, metadata, &header_size, reason, sizeof reason);
    if (!header) {
        snprintf(error, error_size, "%s: %s", path, reason);
        return NULL;
    }
    zfed_safetensors_writer_t *self = calloc(1, sizeof *self);
    if (!self) {
        free(header);
        snprintf(error, error_size, "%s: out of memory", path);
        return NULL;
    }
    snprintf(self->path, sizeof self->path, "%s", path);
    self->nbytes = zfed_layout_nbytes(layout);
    self->file = zfed_durable_open(path);
    if (!self->file || zfed_durable_write(self->file, header, header_size) != 0) {
        snprintf(error, error_size, "%s: %s", path, strerror(errno));
        free(header);
        zfed_safetensors_abandon(&self);
        return NULL;
    }
    free(header);
    return self;
}

int zfed_safetensors_write(zfed_safetensors_writer_t *self, const void *data, size_t size,
                           char *error, size_t error_size)
{
    if (size > self->nbytes - self->written) {
        snprintf(error, error_size,
                 "%s: %zu more bytes after %" PRIu64 ", but the model holds %" PRIu64, self->path,
                 size, self->written, self->nbytes);
        return -1;
    }
    if (zfed_durable_write(self->file, data, size) != 0) {
        snprintf(error, error_size, "%s: %s", self->path, strerror(errno));
        return -1;
    }
    self->written += size;
    return 0;
}

uint64_t zfed_safetensors_written(const zfed_safetensors_writer_t *self)
{
    return self->written;
}

int zfed_safetensors_finish(zfed_safetensors_writer_t **self_p, char *error, size_t error_size)
{
    zfed_safetensors_writer_t *self = *self_p;
    if (self->written != self->nbytes) {
        snprintf(error, error_size,
                 "%s: only %" PRIu64 " of the model's %" PRIu64 " bytes were written", self->path,
                 self->written, self->nbytes);
        zfed_safetensors_abandon(self_p);
        return -1;
    }
    int rc = zfed_durable_commit(&self->file);
    if (rc != 0)
        snprintf(error, error_size, "%s: %s", self->path, strerror(errno));
    free(self);
    *self_p = NULL;
    return rc;
}

void zfed_safetensors_abandon(zfed_safetensors_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_durable_abort(&(*self_p)->file);
    free(*self_p);
    *self_p = NULL;
}

// --------------------------------------------------------------------------
//  Whole files

zfed_model_t *zfed_safetensors_load(const char *path, json_t **metadata, char *error,
                                    size_t error_size)
{
    if (metadata)
        *metadata = NULL;
    zfed_safetensors_t *file = zfed_safetensors_open(path, error, error_size);
    if (!file)
        return NULL;
    zfed_layout_t *layout = zfed_layout_dup(file->layout);
    zfed_model_t *model = layout ? zfed_model_new(&layout) : NULL;
    if (!model) {
        zfed_layout_destroy(&layout);
        snprintf(error, error_size, "%s: out of memory", path);
        zfed_safetensors_close(&file);
        return NULL;
    }
    uint8_t *data = zfed_model_data(model);
    char reason[256];
    for (uint64_t done = 0; done < file->data_size; done += IO_CHUNK) {
        size_t chunk =
            file->data_size - done < IO_CHUNK ? (size_t)(file->data_size - done) : IO_CHUNK;
        if (zfed_safetensors_read(file, done, data + done, chunk, reason, sizeof reason) != 0) {
            snprintf(error, error_size, "%s: %s", path, reason);
            zfed_model_destroy(&model);
            zfed_safetensors_close(&file);
            return NULL;
        }
    }
    if (metadata && file->metadata)
        *metadata = json_incref(file->metadata);
    zfed_safetensors_close(&file);
    return model;
}

int zfed_safetensors_save(const char *path, const zfed_model_t *model, const json_t *metadata,
                          char *error, size_t error_size)
{
    zfed_safetensors_writer_t *writer =
        zfed_safetensors_create(path, zfed_model_layout(model), metadata, error, error_size);
    if (!writer)
        return -1;
    const uint8_t *data = zfed_model_data(model);
    uint64_t nbytes = zfed_model_nbytes(model);
    for (uint64_t done = 0; done < nbytes; done += IO_CHUNK) {
        size_t chunk = nbytes - done < IO_CHUNK ? (size_t)(nbytes - done) : IO_CHUNK;
        if (zfed_safetensors_write(writer, data + done, chunk, error, error_size) != 0) {
            zfed_safetensors_abandon(&writer);
            return -1;
        }
    }
    return zfed_safetensors_finish(&writer, error, error_size);
}
