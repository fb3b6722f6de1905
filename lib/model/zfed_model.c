/*  zfed_model - a layout and the bytes of its tensors.  */
#include "zfed/zfed_model.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _zfed_model_t {
    zfed_layout_t *layout;
    uint8_t *data;
    uint64_t nbytes;
    zfed_model_free_fn *free_fn; //  NULL with owned: we calloc'ed data
    void *hint;
    bool owned;
};

zfed_model_t *zfed_model_new(zfed_layout_t **layout_p)
{
    zfed_model_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    uint64_t nbytes = zfed_layout_nbytes(*layout_p);
    if (nbytes > SIZE_MAX - 1)
        goto err;
    //  calloc: the pages of a big model stay untouched until written.
    self->data = calloc(1, nbytes ? (size_t)nbytes : 1);
    if (!self->data)
        goto err;
    self->nbytes = nbytes;
    self->owned = true;
    self->layout = *layout_p;
    *layout_p = NULL;
    return self;
err:
    free(self);
    return NULL;
}

zfed_model_t *zfed_model_wrap(zfed_layout_t **layout_p, void *data, size_t size,
                              zfed_model_free_fn *free_fn, void *hint, char *error,
                              size_t error_size)
{
    uint64_t nbytes = zfed_layout_nbytes(*layout_p);
    if (size != nbytes) {
        snprintf(error, error_size, "data: %zu bytes where the layout needs %" PRIu64, size,
                 nbytes);
        return NULL;
    }
    if (!data && size) {
        snprintf(error, error_size, "data: missing");
        return NULL;
    }
    zfed_model_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(error, error_size, "out of memory");
        return NULL;
    }
    self->data = data;
    self->nbytes = nbytes;
    self->free_fn = free_fn;
    self->hint = hint;
    self->layout = *layout_p;
    *layout_p = NULL;
    return self;
}

void zfed_model_destroy(zfed_model_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_model_t *self = *self_p;
    if (self->owned)
        free(self->data);
    else if (self->free_fn)
        self->free_fn(self->data, self->hint);
    zfed_layout_destroy(&self->layout);
    free(self);
    *self_p = NULL;
}

const zfed_layout_t *zfed_model_layout(const zfed_model_t *self)
{
    return self->layout;
}

void *zfed_model_data(const zfed_model_t *self)
{
    return self->data;
}

uint64_t zfed_model_nbytes(const zfed_model_t *self)
{
    return self->nbytes;
}

void *zfed_model_tensor_data(const zfed_model_t *self, size_t index)
{
    const zfed_tensor_t *tensor = zfed_layout_tensor(self->layout, index);
    return tensor ? self->data + tensor->offset : NULL;
}

//  "[1, 1]": the coordinates of a flat element index in a shape.
static void s_coordinates(const zfed_tensor_t *tensor, uint64_t element, char *out, size_t size)
{
    uint64_t coordinates[ZFED_TENSOR_DIMS_MAX];
    for (size_t dim = tensor->ndim; dim-- > 0;) {
        coordinates[dim] = tensor->shape[dim] ? element % tensor->shape[dim] : 0;
        element = tensor->shape[dim] ? element / tensor->shape[dim] : 0;
    }
    zfed_shape_format(coordinates, tensor->ndim, out, size);
}

int zfed_tensor_check_finite(const zfed_tensor_t *tensor, uint64_t first, const void *data,
                             uint64_t count, char *error, size_t error_size)
{
    size_t index;
    zfed_finite_t kind = zfed_dtype_check_finite(tensor->dtype, data, (size_t)count, &index);
    if (kind == ZFED_FINITE)
        return 0;
    char where[ZFED_TENSOR_DIMS_MAX * 22 + 8];
    s_coordinates(tensor, first + index, where, sizeof where);
    snprintf(error, error_size, "tensor %s element %" PRIu64 " %s: %s", tensor->name, first + index,
             where, zfed_finite_name(kind));
    return -1;
}

int zfed_model_check_finite(const zfed_model_t *self, char *error, size_t error_size)
{
    for (size_t index = 0; index < zfed_layout_size(self->layout); index++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(self->layout, index);
        if (zfed_tensor_check_finite(tensor, 0, self->data + tensor->offset, tensor->count, error,
                                     error_size) != 0)
            return -1;
    }
    return 0;
}
