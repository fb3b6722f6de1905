/*  zfed_model - a layout and the bytes of its tensors.

    Buffers of ZFED_MODEL_MAP_MIN bytes or more are mappings of their own,
    marked for transparent huge pages: a 1 GiB model faults in 512 pages
    of 2 MiB instead of 262,144 of 4 KiB (the fault count dominated a
    worker's kernel time), and its reads and writes miss the TLB less.
    Such a buffer, once freed, may wait in a small pool of spare buffers
    (zfed_model_pool_keep) for the next model of its size made by
    zfed_model_new_uninit, so a worker that fetches a global and writes a
    result of the same size every round faults its pages in once, not
    every round.
*/
#include "zfed/zfed_model.h"
#include "zfed/zfed_util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

//  Mappings are rounded up to whole huge pages, so a pooled buffer fits
//  every model whose size rounds to the same length.
#define HUGE_PAGE_BYTES ((size_t)2 << 20)

typedef enum {
    BUFFER_CALLER = 0, //  wrapped: free_fn, if any, frees it
    BUFFER_HEAP,       //  calloc'ed
    BUFFER_MAPPED,     //  a mapping of `mapped` bytes
} s_buffer_t;

struct _zfed_model_t {
    zfed_layout_t *layout;
    uint8_t *data;
    uint64_t nbytes;
    zfed_model_free_fn *free_fn;
    void *hint;
    s_buffer_t buffer;
    size_t mapped;
};

//  ---------------------------------------------------------------------
//  The pool of spare mapped buffers (any thread: models are freed on
//  libzmq's I/O threads too)

typedef struct {
    void *data;
    size_t length;
    int64_t freed_ms;
} s_spare_t;

static struct {
    pthread_mutex_t lock;
    size_t keep; //  buffers kept at most (0: none, the default)
    int64_t idle_ms;
    size_t count;
    s_spare_t spare[ZFED_MODEL_POOL_MAX];
} s_pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t s_mapped_length(uint64_t nbytes)
{
    return ((size_t)nbytes + HUGE_PAGE_BYTES - 1) & ~(HUGE_PAGE_BYTES - 1);
}

//  A fresh mapping of length bytes (zeroed by the kernel), or NULL.
static void *s_map(size_t length)
{
    void *data = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    //  Advice only: a kernel without THP ignores it.
    madvise(data, length, MADV_HUGEPAGE);
#endif
    return data;
}

//  A spare buffer of exactly length bytes, or NULL.
static void *s_pool_take(size_t length)
{
    void *data = NULL;
    pthread_mutex_lock(&s_pool.lock);
    for (size_t index = s_pool.count; index-- > 0;) {
        if (s_pool.spare[index].length == length) {
            data = s_pool.spare[index].data;
            s_pool.spare[index] = s_pool.spare[--s_pool.count];
            break;
        }
    }
    pthread_mutex_unlock(&s_pool.lock);
    return data;
}

//  Keeps a freed mapping as a spare, pushing out the oldest, or unmaps it.
static void s_pool_give(void *data, size_t length)
{
    void *evicted = NULL;
    size_t evicted_length = 0;
    pthread_mutex_lock(&s_pool.lock);
    if (s_pool.keep > 0) {
        if (s_pool.count == s_pool.keep) {
            size_t oldest = 0;
            for (size_t index = 1; index < s_pool.count; index++)
                if (s_pool.spare[index].freed_ms < s_pool.spare[oldest].freed_ms)
                    oldest = index;
            evicted = s_pool.spare[oldest].data;
            evicted_length = s_pool.spare[oldest].length;
            s_pool.spare[oldest] = s_pool.spare[--s_pool.count];
        }
        s_pool.spare[s_pool.count++] = (s_spare_t){data, length, zfed_clock_ms()};
        data = NULL;
    }
    pthread_mutex_unlock(&s_pool.lock);
    if (evicted)
        munmap(evicted, evicted_length);
    if (data)
        munmap(data, length);
}

void zfed_model_pool_keep(size_t buffers, int64_t idle_ms)
{
    if (buffers > ZFED_MODEL_POOL_MAX)
        buffers = ZFED_MODEL_POOL_MAX;
    pthread_mutex_lock(&s_pool.lock);
    s_pool.keep = buffers;
    s_pool.idle_ms = idle_ms;
    pthread_mutex_unlock(&s_pool.lock);
    zfed_model_pool_trim(INT64_MAX);
}

size_t zfed_model_pool_trim(int64_t now_ms)
{
    s_spare_t gone[ZFED_MODEL_POOL_MAX];
    size_t count = 0;
    if (now_ms == INT64_MAX)
        now_ms = zfed_clock_ms();
    pthread_mutex_lock(&s_pool.lock);
    for (size_t index = s_pool.count; index-- > 0;) {
        if (index >= s_pool.keep || now_ms - s_pool.spare[index].freed_ms >= s_pool.idle_ms) {
            gone[count++] = s_pool.spare[index];
            s_pool.spare[index] = s_pool.spare[--s_pool.count];
        }
    }
    pthread_mutex_unlock(&s_pool.lock);
    for (size_t index = 0; index < count; index++)
        munmap(gone[index].data, gone[index].length);
    return count;
}

size_t zfed_model_pool_size(void)
{
    pthread_mutex_lock(&s_pool.lock);
    size_t count = s_pool.count;
    pthread_mutex_unlock(&s_pool.lock);
    return count;
}

//  ---------------------------------------------------------------------
//  Models

static zfed_model_t *s_new(zfed_layout_t **layout_p, bool zeroed)
{
    zfed_model_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    uint64_t nbytes = zfed_layout_nbytes(*layout_p);
    if (nbytes > SIZE_MAX - HUGE_PAGE_BYTES)
        goto err;
    if (nbytes >= ZFED_MODEL_MAP_MIN) {
        size_t length = s_mapped_length(nbytes);
        self->data = zeroed ? NULL : s_pool_take(length);
        if (!self->data)
            self->data = s_map(length);
        self->buffer = BUFFER_MAPPED;
        self->mapped = length;
    } else {
        //  calloc: the pages of a model stay untouched until written.
        self->data = calloc(1, nbytes ? (size_t)nbytes : 1);
        self->buffer = BUFFER_HEAP;
    }
    if (!self->data)
        goto err;
    self->nbytes = nbytes;
    self->layout = *layout_p;
    *layout_p = NULL;
    return self;
err:
    free(self);
    return NULL;
}

zfed_model_t *zfed_model_new(zfed_layout_t **layout_p)
{
    return s_new(layout_p, true);
}

zfed_model_t *zfed_model_new_uninit(zfed_layout_t **layout_p)
{
    return s_new(layout_p, false);
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
    if (self->buffer == BUFFER_MAPPED)
        s_pool_give(self->data, self->mapped);
    else if (self->buffer == BUFFER_HEAP)
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
