/*  zfed_window - a model cut into the windows an aggregation pass works
    through (private header).

    Window i of a model of chunk size C holds the elements whose FIRST byte
    lies in [i * C, (i + 1) * C).  Its bytes are the span [start, end) of
    those elements: it starts at most 7 bytes after i * C and ends at most
    7 bytes after (i + 1) * C, because an element may straddle a chunk
    boundary (tensors lie back to back without padding, so an F32 tensor
    can start at an odd offset, and a chunk need not be a multiple of 8).
    Windows tile the data: window i ends where window i + 1 starts.  So
    every element belongs to exactly one window, whatever the layout, and
    a window is chunk i of the model give or take the few bytes of the
    elements across its edges.

    A window is a list of runs: the elements of one tensor in it.  Runs
    are in model order and back to back; a run's offset is its distance
    from the window's start, so with any source's bytes of the window at
    p, the run's elements are at p + offset, and element k of the run is
    element first + k of its tensor.

    The float elements of a model, in model order, are what the server
    optimisers keep state for (one F32 per float element); the float
    elements of a window are a contiguous range of them.
*/
#ifndef ZFED_WINDOW_H_INCLUDED
#define ZFED_WINDOW_H_INCLUDED

#include "zfed/zfed_model.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t tensor;    //  index in the layout
    uint64_t first;   //  first element of the tensor in the run
    uint64_t count;   //  elements
    uint64_t offset;  //  bytes from the window's start
    uint64_t element; //  index of its first element among the window's elements
    uint64_t state;   //  float runs: index of its first element among the
                      //  window's float elements
} zfed_run_t;

typedef struct {
    uint64_t index;
    uint64_t start; //  byte span in the model's data
    uint64_t end;
    uint64_t elements;       //  elements in the window
    uint64_t float_first;    //  its first float element among the model's float elements
    uint64_t float_elements; //  its float elements
    size_t runs;
    const zfed_run_t *run; //  runs entries, valid until the next zfed_windows_get
} zfed_window_t;

typedef struct _zfed_windows_t zfed_windows_t;

//  The windows of layout (which must outlive them) at chunk size chunk
//  (>= 8).  NULL when memory runs out or chunk is too small.
zfed_windows_t *zfed_windows_new(const zfed_layout_t *layout, uint64_t chunk);
void zfed_windows_destroy(zfed_windows_t **self_p);

//  ceil(size / chunk): 0 for a model without bytes.
uint64_t zfed_windows_count(const zfed_windows_t *self);
//  The most elements, float elements and bytes any one window holds (for
//  sizing scratch space).
uint64_t zfed_windows_max_elements(const zfed_windows_t *self);
uint64_t zfed_windows_max_float_elements(const zfed_windows_t *self);
uint64_t zfed_windows_max_span(const zfed_windows_t *self);
//  Float elements in the whole model.
uint64_t zfed_windows_float_elements(const zfed_windows_t *self);

//  Where window index starts: the first byte of its first element (the
//  model's size for index == count).  O(log tensors), without building
//  the window.
uint64_t zfed_windows_start(const zfed_windows_t *self, uint64_t index);

//  Window index (< count).  Cheapest walked in order; any index works.
//  The window is self's until the next call.  NULL past the end.
const zfed_window_t *zfed_windows_get(zfed_windows_t *self, uint64_t index);

#endif
