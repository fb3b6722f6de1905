/*  zfed_window - windows and runs of a model.  */
#include "controller/zfed_window.h"

#include <stdlib.h>
#include <string.h>

struct _zfed_windows_t {
    const zfed_layout_t *layout;
    uint64_t chunk;
    uint64_t size;
    uint64_t count;
    uint64_t *float_before; //  per tensor: float elements of the tensors before it
    uint64_t floats;
    uint64_t max_elements;
    uint64_t max_floats;
    uint64_t max_span;
    zfed_run_t *runs;
    size_t capacity;
    zfed_window_t window;
};

static int s_add_run(zfed_windows_t *self, const zfed_run_t *run)
{
    if (self->window.runs == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 16;
        zfed_run_t *grown = realloc(self->runs, capacity * sizeof *grown);
        if (!grown)
            return -1;
        self->runs = grown;
        self->capacity = capacity;
    }
    self->runs[self->window.runs++] = *run;
    return 0;
}

static uint64_t s_ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

//  Fills self->window for index; -1 when memory runs out.
static int s_build(zfed_windows_t *self, uint64_t index)
{
    zfed_window_t *window = &self->window;
    uint64_t low = index * self->chunk;
    uint64_t high = low + self->chunk < self->size ? low + self->chunk : self->size;
    *window = (zfed_window_t){.index = index};
    long at = zfed_layout_tensor_at(self->layout, low);
    size_t tensors = zfed_layout_size(self->layout);
    bool first_run = true;
    for (size_t t = at < 0 ? tensors : (size_t)at; t < tensors; t++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(self->layout, t);
        if (tensor->offset >= high)
            break;
        if (tensor->nbytes == 0)
            continue;
        uint64_t size = zfed_dtype_size(tensor->dtype);
        uint64_t from = tensor->offset >= low ? 0 : s_ceil_div(low - tensor->offset, size);
        uint64_t to = s_ceil_div(high - tensor->offset, size);
        if (to > tensor->count)
            to = tensor->count;
        if (from >= to)
            continue;
        uint64_t begin = tensor->offset + from * size;
        if (first_run) {
            window->start = begin;
            first_run = false;
        }
        bool is_float = zfed_dtype_is_float(tensor->dtype);
        zfed_run_t run = {.tensor = t,
                          .first = from,
                          .count = to - from,
                          .offset = begin - window->start,
                          .element = window->elements,
                          .state = window->float_elements};
        if (s_add_run(self, &run) != 0)
            return -1;
        if (is_float) {
            if (window->float_elements == 0)
                window->float_first = self->float_before[t] + from;
            window->float_elements += run.count;
        }
        window->elements += run.count;
        window->end = tensor->offset + to * size;
    }
    window->run = self->runs;
    return 0;
}

zfed_windows_t *zfed_windows_new(const zfed_layout_t *layout, uint64_t chunk)
{
    if (chunk < 8)
        return NULL;
    zfed_windows_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->layout = layout;
    self->chunk = chunk;
    self->size = zfed_layout_nbytes(layout);
    self->count = s_ceil_div(self->size, chunk);
    size_t tensors = zfed_layout_size(layout);
    self->float_before = calloc(tensors + 1, sizeof *self->float_before);
    if (!self->float_before)
        goto err;
    for (size_t t = 0; t < tensors; t++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(layout, t);
        self->float_before[t] = self->floats;
        if (zfed_dtype_is_float(tensor->dtype))
            self->floats += tensor->count;
    }
    //  One sweep for the largest window: O(windows + tensors), far less
    //  than any pass over the data.
    for (uint64_t index = 0; index < self->count; index++) {
        if (s_build(self, index) != 0)
            goto err;
        const zfed_window_t *window = &self->window;
        if (window->elements > self->max_elements)
            self->max_elements = window->elements;
        if (window->float_elements > self->max_floats)
            self->max_floats = window->float_elements;
        if (window->end - window->start > self->max_span)
            self->max_span = window->end - window->start;
    }
    self->window.index = UINT64_MAX;
    return self;
err:
    zfed_windows_destroy(&self);
    return NULL;
}

void zfed_windows_destroy(zfed_windows_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_windows_t *self = *self_p;
    free(self->float_before);
    free(self->runs);
    free(self);
    *self_p = NULL;
}

uint64_t zfed_windows_count(const zfed_windows_t *self)
{
    return self->count;
}

uint64_t zfed_windows_max_elements(const zfed_windows_t *self)
{
    return self->max_elements;
}

uint64_t zfed_windows_max_float_elements(const zfed_windows_t *self)
{
    return self->max_floats;
}

uint64_t zfed_windows_max_span(const zfed_windows_t *self)
{
    return self->max_span;
}

uint64_t zfed_windows_float_elements(const zfed_windows_t *self)
{
    return self->floats;
}

uint64_t zfed_windows_start(const zfed_windows_t *self, uint64_t index)
{
    if (index >= self->count)
        return self->size;
    uint64_t low = index * self->chunk;
    //  The tensor holding byte low; its first element starting at or after
    //  low, or its end, where the next element starts (tensors tile).
    const zfed_tensor_t *tensor =
        zfed_layout_tensor(self->layout, (size_t)zfed_layout_tensor_at(self->layout, low));
    uint64_t size = zfed_dtype_size(tensor->dtype);
    return tensor->offset + s_ceil_div(low - tensor->offset, size) * size;
}

const zfed_window_t *zfed_windows_get(zfed_windows_t *self, uint64_t index)
{
    if (index >= self->count)
        return NULL;
    if (self->window.index == index)
        return &self->window;
    if (s_build(self, index) != 0) {
        self->window.index = UINT64_MAX;
        return NULL;
    }
    return &self->window;
}
