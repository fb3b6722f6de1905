/*  zfed_layout - the ordered tensors of a model.

    Tensors live in one array in model order; names are found through an
    open-addressing hash table of indices (a layout may hold 100,000
    tensors, and every add checks that its name is new).
*/
#include "zfed/zfed_model.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Hash slots hold index + 1 (0 is empty); the table is kept at most half
//  full.
#define SLOTS_MIN 16

#define S_TEXT(x)  #x
#define S_XTEXT(x) S_TEXT(x)

struct _zfed_layout_t {
    zfed_tensor_t *tensors;
    size_t size;
    size_t capacity;
    uint32_t *slots;
    size_t slot_count; //  a power of two
    uint64_t nbytes;
    uint64_t elements;
};

zfed_layout_t *zfed_layout_new(void)
{
    return calloc(1, sizeof(zfed_layout_t));
}

void zfed_layout_destroy(zfed_layout_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_layout_t *self = *self_p;
    for (size_t index = 0; index < self->size; index++)
        free((char *)self->tensors[index].name);
    free(self->tensors);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

static uint64_t s_hash(const char *name)
{
    uint64_t hash = 14695981039346656037ULL; //  FNV-1a
    for (const unsigned char *cursor = (const unsigned char *)name; *cursor; cursor++)
        hash = (hash ^ *cursor) * 1099511628211ULL;
    return hash;
}

//  The slot holding name, or the empty slot where it would go.
static size_t s_slot(const zfed_layout_t *self, const char *name)
{
    size_t mask = self->slot_count - 1;
    size_t slot = (size_t)s_hash(name) & mask;
    while (self->slots[slot] && strcmp(self->tensors[self->slots[slot] - 1].name, name) != 0)
        slot = (slot + 1) & mask;
    return slot;
}

//  Makes room for one more name in the table (rebuilt at twice the size).
static int s_grow_slots(zfed_layout_t *self)
{
    if ((self->size + 1) * 2 <= self->slot_count)
        return 0;
    size_t count = self->slot_count ? self->slot_count * 2 : SLOTS_MIN;
    uint32_t *slots = calloc(count, sizeof *slots);
    if (!slots)
        return -1;
    free(self->slots);
    self->slots = slots;
    self->slot_count = count;
    for (size_t index = 0; index < self->size; index++)
        self->slots[s_slot(self, self->tensors[index].name)] = (uint32_t)index + 1;
    return 0;
}

//  True when name is 1..ZFED_TENSOR_NAME_MAX bytes of well-formed UTF-8
//  (shortest forms, no surrogates, at most U+10FFFF) without control
//  characters (U+0000-U+001F, U+007F-U+009F).  Otherwise the reason.
static const char *s_name_problem(const char *name)
{
    size_t length = strlen(name);
    if (length == 0)
        return "is empty";
    if (length > ZFED_TENSOR_NAME_MAX)
        return "is longer than " S_XTEXT(ZFED_TENSOR_NAME_MAX) " bytes";
    const unsigned char *cursor = (const unsigned char *)name;
    while (*cursor) {
        unsigned char lead = *cursor;
        uint32_t point;
        int extra;
        if (lead < 0x80) {
            point = lead;
            extra = 0;
        } else if (lead >= 0xc2 && lead <= 0xdf) {
            point = lead & 0x1f;
            extra = 1;
        } else if (lead >= 0xe0 && lead <= 0xef) {
            point = lead & 0x0f;
            extra = 2;
        } else if (lead >= 0xf0 && lead <= 0xf4) {
            point = lead & 0x07;
            extra = 3;
        } else {
            return "is not UTF-8";
        }
        cursor++;
        for (int index = 0; index < extra; index++, cursor++) {
            if ((*cursor & 0xc0) != 0x80)
                return "is not UTF-8";
            point = (point << 6) | (*cursor & 0x3f);
        }
        static const uint32_t shortest[] = {0, 0x80, 0x800, 0x10000};
        if (point < shortest[extra] || point > 0x10ffff || (point >= 0xd800 && point <= 0xdfff))
            return "is not UTF-8";
        if (point < 0x20 || (point >= 0x7f && point <= 0x9f))
            return "holds a control character";
    }
    return NULL;
}

char *zfed_shape_format(const uint64_t *shape, size_t ndim, char *buffer, size_t size)
{
    size_t used = (size_t)snprintf(buffer, size, "[");
    for (size_t dim = 0; dim < ndim && used < size; dim++)
        used +=
            (size_t)snprintf(buffer + used, size - used, "%s%" PRIu64, dim ? ", " : "", shape[dim]);
    if (used < size)
        snprintf(buffer + used, size - used, "]");
    return buffer;
}

//  A printable form of a name for messages (names are checked text, but
//  a refused one may be anything).
static void s_quote(const char *name, char *out, size_t size)
{
    size_t used = 0;
    for (const unsigned char *cursor = (const unsigned char *)name; *cursor && used + 5 < size;
         cursor++) {
        if (*cursor < 0x20 || *cursor == 0x7f)
            used += (size_t)snprintf(out + used, size - used, "\\x%02x", *cursor);
        else
            out[used++] = (char)*cursor;
    }
    out[used] = '\0';
}

int zfed_layout_add(zfed_layout_t *self, const char *name, zfed_dtype_t dtype,
                    const uint64_t *shape, size_t ndim, char *error, size_t error_size)
{
    const char *problem = name ? s_name_problem(name) : "is missing";
    if (problem) {
        char shown[80]; //  enough to recognise it
        s_quote(name ? name : "", shown, sizeof shown);
        snprintf(error, error_size, "tensor %zu: name '%s' %s", self->size, shown, problem);
        return -1;
    }
    if (self->size >= ZFED_LAYOUT_TENSORS_MAX) {
        snprintf(error, error_size, "tensor %s: more than %d tensors", name,
                 ZFED_LAYOUT_TENSORS_MAX);
        return -1;
    }
    if (zfed_dtype_size(dtype) == 0) {
        snprintf(error, error_size, "tensor %s: unknown dtype %d", name, (int)dtype);
        return -1;
    }
    if (ndim > ZFED_TENSOR_DIMS_MAX) {
        snprintf(error, error_size, "tensor %s: shape has %zu dimensions, at most %d", name, ndim,
                 ZFED_TENSOR_DIMS_MAX);
        return -1;
    }
    uint64_t count = 1;
    for (size_t dim = 0; dim < ndim; dim++)
        if (__builtin_mul_overflow(count, shape[dim], &count)) {
            char text[ZFED_TENSOR_DIMS_MAX * 22 + 8];
            snprintf(error, error_size, "tensor %s: shape %s has more elements than 2^64", name,
                     zfed_shape_format(shape, ndim, text, sizeof text));
            return -1;
        }
    uint64_t nbytes;
    if (__builtin_mul_overflow(count, (uint64_t)zfed_dtype_size(dtype), &nbytes) ||
        nbytes > ZFED_MODEL_BYTES_MAX - self->nbytes) {
        snprintf(error, error_size, "tensor %s: the model would exceed %llu bytes", name,
                 (unsigned long long)ZFED_MODEL_BYTES_MAX);
        return -1;
    }
    if (s_grow_slots(self) != 0)
        goto oom;
    size_t slot = s_slot(self, name);
    if (self->slots[slot]) {
        snprintf(error, error_size, "tensor %zu: name %s is already tensor %u's", self->size, name,
                 self->slots[slot] - 1);
        return -1;
    }
    if (self->size == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 8;
        zfed_tensor_t *tensors = realloc(self->tensors, capacity * sizeof *tensors);
        if (!tensors)
            goto oom;
        self->tensors = tensors;
        self->capacity = capacity;
    }
    char *copy = strdup(name);
    if (!copy)
        goto oom;
    zfed_tensor_t *tensor = &self->tensors[self->size];
    memset(tensor, 0, sizeof *tensor);
    tensor->name = copy;
    tensor->dtype = dtype;
    tensor->ndim = (uint32_t)ndim;
    if (ndim)
        memcpy(tensor->shape, shape, ndim * sizeof *shape);
    tensor->count = count;
    tensor->first = self->elements;
    tensor->offset = self->nbytes;
    tensor->nbytes = nbytes;
    self->slots[slot] = (uint32_t)self->size + 1;
    self->size++;
    self->nbytes += nbytes;
    self->elements += count;
    return 0;
oom:
    snprintf(error, error_size, "tensor %s: out of memory", name);
    return -1;
}

zfed_layout_t *zfed_layout_dup(const zfed_layout_t *self)
{
    zfed_layout_t *copy = zfed_layout_new();
    char error[8];
    for (size_t index = 0; copy && index < self->size; index++) {
        const zfed_tensor_t *tensor = &self->tensors[index];
        if (zfed_layout_add(copy, tensor->name, tensor->dtype, tensor->shape, tensor->ndim, error,
                            sizeof error) != 0)
            zfed_layout_destroy(&copy);
    }
    return copy;
}

size_t zfed_layout_size(const zfed_layout_t *self)
{
    return self->size;
}

uint64_t zfed_layout_nbytes(const zfed_layout_t *self)
{
    return self->nbytes;
}

uint64_t zfed_layout_elements(const zfed_layout_t *self)
{
    return self->elements;
}

const zfed_tensor_t *zfed_layout_tensor(const zfed_layout_t *self, size_t index)
{
    return index < self->size ? &self->tensors[index] : NULL;
}

const zfed_tensor_t *zfed_layout_find(const zfed_layout_t *self, const char *name, size_t *index)
{
    if (!self->size || !name)
        return NULL;
    uint32_t held = self->slots[s_slot(self, name)];
    if (!held)
        return NULL;
    if (index)
        *index = held - 1;
    return &self->tensors[held - 1];
}

long zfed_layout_tensor_at(const zfed_layout_t *self, uint64_t offset)
{
    if (offset >= self->nbytes)
        return -1;
    //  The last tensor starting at or before offset that has bytes.
    size_t low = 0, high = self->size;
    while (high - low > 1) {
        size_t middle = low + (high - low) / 2;
        if (self->tensors[middle].offset <= offset)
            low = middle;
        else
            high = middle;
    }
    while (self->tensors[low].nbytes == 0 || self->tensors[low].offset > offset)
        low--; //  zero-size tensors share the offset of the next one
    return (long)low;
}

bool zfed_layout_equal(const zfed_layout_t *self, const zfed_layout_t *reference,
                       const char *reference_name, char *diff, size_t diff_size)
{
    const char *other = reference_name ? reference_name : "the reference";
    size_t common = self->size < reference->size ? self->size : reference->size;
    for (size_t index = 0; index < common; index++) {
        const zfed_tensor_t *mine = &self->tensors[index];
        const zfed_tensor_t *theirs = &reference->tensors[index];
        if (strcmp(mine->name, theirs->name) != 0) {
            snprintf(diff, diff_size, "tensor %zu: name %s where %s has %s", index, mine->name,
                     other, theirs->name);
            return false;
        }
        if (mine->dtype != theirs->dtype) {
            snprintf(diff, diff_size, "tensor %s: dtype %s where %s has %s", mine->name,
                     zfed_dtype_name(mine->dtype), other, zfed_dtype_name(theirs->dtype));
            return false;
        }
        if (mine->ndim != theirs->ndim ||
            memcmp(mine->shape, theirs->shape, mine->ndim * sizeof *mine->shape) != 0) {
            char a[ZFED_TENSOR_DIMS_MAX * 22 + 8], b[ZFED_TENSOR_DIMS_MAX * 22 + 8];
            snprintf(diff, diff_size, "tensor %s: shape %s where %s has %s", mine->name,
                     zfed_shape_format(mine->shape, mine->ndim, a, sizeof a), other,
                     zfed_shape_format(theirs->shape, theirs->ndim, b, sizeof b));
            return false;
        }
    }
    if (self->size < reference->size) {
        snprintf(diff, diff_size, "missing tensor %s (%s has %zu tensors, this has %zu)",
                 reference->tensors[common].name, other, reference->size, self->size);
        return false;
    }
    if (self->size > reference->size) {
        snprintf(diff, diff_size, "extra tensor %s (%s has %zu tensors, this has %zu)",
                 self->tensors[common].name, other, reference->size, self->size);
        return false;
    }
    return true;
}
