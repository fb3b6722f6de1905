/*  zfed_model - models as zfed carries them: typed tensors in one buffer.

    A dtype is one of the twelve numeric types safetensors names (F64 ...
    U8), always little-endian: F16 is IEEE 754 binary16, BF16 the top 16
    bits of a binary32.

    A layout is the ordered list of a model's tensors: a name (1 to
    ZFED_TENSOR_NAME_MAX bytes of UTF-8 without control characters, distinct
    within the layout), a dtype and a shape of 0 to ZFED_TENSOR_DIMS_MAX
    dimensions (a dimension may be 0).  Tensors lie back to back in list
    order with no padding, so a tensor's offset is the sum of the sizes
    before it; a layout holds at most ZFED_LAYOUT_TENSORS_MAX tensors and
    ZFED_MODEL_BYTES_MAX bytes.

    A model is a layout and the buffer of its bytes.  It owns its buffer or
    wraps the caller's with a free callback, so the bytes of a received
    frame can become a model's storage without a copy.

    Hosts are little-endian (checked when this compiles): tensor bytes are
    used as they lie.  Buffers need no alignment.
*/
#ifndef ZFED_MODEL_H_INCLUDED
#define ZFED_MODEL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ZFED_DTYPE_F64 = 0,
    ZFED_DTYPE_F32,
    ZFED_DTYPE_F16,
    ZFED_DTYPE_BF16,
    ZFED_DTYPE_I64,
    ZFED_DTYPE_I32,
    ZFED_DTYPE_I16,
    ZFED_DTYPE_I8,
    ZFED_DTYPE_U64,
    ZFED_DTYPE_U32,
    ZFED_DTYPE_U16,
    ZFED_DTYPE_U8,
    ZFED_DTYPE_COUNT
} zfed_dtype_t;

//  Bytes per element (0 for a value out of range).
size_t zfed_dtype_size(zfed_dtype_t dtype);
//  The safetensors name ("F32"); "unknown" for a value out of range.
const char *zfed_dtype_name(zfed_dtype_t dtype);
//  "F32" -> ZFED_DTYPE_F32 (exact, case-sensitive, as safetensors spells
//  it).  0, or -1 for any other text.
int zfed_dtype_parse(const char *name, zfed_dtype_t *dtype);
//  "F64, F32, ..." for help and error text.
const char *zfed_dtype_list(void);
bool zfed_dtype_is_float(zfed_dtype_t dtype);
bool zfed_dtype_is_signed(zfed_dtype_t dtype);

//  Exact widening conversions (every F16 and BF16 value, subnormals,
//  infinities and NaN included, is a float and a double).
float zfed_f16_to_f32(uint16_t half);
double zfed_f16_to_f64(uint16_t half);
float zfed_bf16_to_f32(uint16_t bf16);
double zfed_bf16_to_f64(uint16_t bf16);
//  Narrowing conversions, rounded once to nearest, ties to even, as IEEE
//  754 converts: subnormal results where due, overflow to infinity, NaN
//  stays NaN (quiet, same sign).  A double goes to F16 and BF16 directly,
//  never through float (which could round twice).
uint16_t zfed_f32_to_f16(float value);
uint16_t zfed_f64_to_f16(double value);
uint16_t zfed_f32_to_bf16(float value);
uint16_t zfed_f64_to_bf16(double value);

//  Element index of data[index] as a double (exact for floats, and for
//  integers up to 2^53 in magnitude).
double zfed_dtype_get_f64(zfed_dtype_t dtype, const void *data, size_t index);
//  Stores value as element index of data: floats rounded once (as the
//  narrowing conversions above), integers only when value is one of the
//  dtype's exactly.  0, or -1 when the stored float is not finite or the
//  integer does not exist (nothing is stored then).
int zfed_dtype_set_f64(zfed_dtype_t dtype, void *data, size_t index, double value);

typedef enum { ZFED_FINITE = 0, ZFED_NAN, ZFED_POS_INF, ZFED_NEG_INF } zfed_finite_t;

//  "NaN", "+Inf", "-Inf" ("finite" for ZFED_FINITE).
const char *zfed_finite_name(zfed_finite_t kind);

//  Looks at count elements of dtype; integers are always finite.  Returns
//  ZFED_FINITE, or the kind of the first element that is not, with its
//  index in *index.  Runs at memory speed on the all-finite path.
zfed_finite_t zfed_dtype_check_finite(zfed_dtype_t dtype, const void *data, size_t count,
                                      size_t *index);

// --------------------------------------------------------------------------
//  Layouts

#define ZFED_TENSOR_NAME_MAX    255
#define ZFED_TENSOR_DIMS_MAX    16
#define ZFED_LAYOUT_TENSORS_MAX 100000
#define ZFED_MODEL_BYTES_MAX    (1ULL << 40)

typedef struct {
    const char *name; //  owned by the layout
    zfed_dtype_t dtype;
    uint32_t ndim;
    uint64_t shape[ZFED_TENSOR_DIMS_MAX];
    uint64_t count;  //  elements: the product of the shape (1 for 0 dims)
    uint64_t first;  //  index of its first element among the model's elements
    uint64_t offset; //  of its first byte in the model's data
    uint64_t nbytes; //  count * zfed_dtype_size(dtype)
} zfed_tensor_t;

typedef struct _zfed_layout_t zfed_layout_t;

zfed_layout_t *zfed_layout_new(void);
void zfed_layout_destroy(zfed_layout_t **self_p);
//  A copy, or NULL when memory runs out.
zfed_layout_t *zfed_layout_dup(const zfed_layout_t *self);

//  Appends a tensor after the last one.  0, or -1 with the reason in error
//  (naming the tensor and the field): a bad or repeated name, an unknown
//  dtype, more than ZFED_TENSOR_DIMS_MAX dimensions, an element count that
//  overflows, or a layout past ZFED_LAYOUT_TENSORS_MAX tensors or
//  ZFED_MODEL_BYTES_MAX bytes.  A failed add leaves the layout as it was.
int zfed_layout_add(zfed_layout_t *self, const char *name, zfed_dtype_t dtype,
                    const uint64_t *shape, size_t ndim, char *error, size_t error_size);

//  Number of tensors, all their bytes, all their elements.
size_t zfed_layout_size(const zfed_layout_t *self);
uint64_t zfed_layout_nbytes(const zfed_layout_t *self);
uint64_t zfed_layout_elements(const zfed_layout_t *self);

//  Tensor index (NULL past the end).
const zfed_tensor_t *zfed_layout_tensor(const zfed_layout_t *self, size_t index);
//  The tensor named name (NULL when there is none), and its index.
const zfed_tensor_t *zfed_layout_find(const zfed_layout_t *self, const char *name, size_t *index);
//  Index of the tensor that holds byte offset of the data (zero-size
//  tensors hold no byte); -1 past the end.
long zfed_layout_tensor_at(const zfed_layout_t *self, uint64_t offset);

//  True when self has the same tensors as reference, in the same order,
//  with the same names, dtypes and shapes.  Otherwise false, and the first
//  difference in words in diff, reference being called reference_name:
//      tensor fc1.weight: shape [200, 784] where the global has [200, 785]
//      tensor 3: name fc2.bias where the global has fc2.weight
//      tensor fc2.bias: dtype F16 where the global has F32
//      missing tensor fc3.weight (the global has 6 tensors, this has 5)
//      extra tensor fc4.weight (the global has 6 tensors, this has 7)
bool zfed_layout_equal(const zfed_layout_t *self, const zfed_layout_t *reference,
                       const char *reference_name, char *diff, size_t diff_size);

//  "[200, 784]" (for messages).  Returns buffer.
char *zfed_shape_format(const uint64_t *shape, size_t ndim, char *buffer, size_t size);

// --------------------------------------------------------------------------
//  Models

typedef struct _zfed_model_t zfed_model_t;

//  Called once when a model that wraps a buffer is destroyed.
typedef void(zfed_model_free_fn)(void *data, void *hint);

//  A model of layout (which it takes: *layout_p becomes NULL) with zeroed
//  bytes.  NULL when memory runs out (*layout_p then stays the caller's).
zfed_model_t *zfed_model_new(zfed_layout_t **layout_p);
//  The same with bytes left undefined, for a caller that writes every one
//  of them before it reads any: a big model may then reuse a spare buffer
//  of the pool below instead of faulting in fresh pages.
zfed_model_t *zfed_model_new_uninit(zfed_layout_t **layout_p);

//  Models of ZFED_MODEL_MAP_MIN bytes or more get buffers mapped for
//  themselves (huge pages advised).  A process may keep up to `buffers`
//  (at most ZFED_MODEL_POOL_MAX) of them when their models are destroyed,
//  for zfed_model_new_uninit to reuse; a spare idle for idle_ms goes back
//  to the system at the next zfed_model_pool_trim.  Off (0) by default.
//  Thread-safe, as is everything below on distinct models.
#define ZFED_MODEL_MAP_MIN  ((uint64_t)8 << 20)
#define ZFED_MODEL_POOL_MAX 4
void zfed_model_pool_keep(size_t buffers, int64_t idle_ms);
//  Unmaps spares idle for idle_ms at now_ms (zfed_clock_ms(); INT64_MAX:
//  now) and spares beyond the kept count; returns how many went.
size_t zfed_model_pool_trim(int64_t now_ms);
size_t zfed_model_pool_size(void);
//  A model over the caller's buffer of size bytes, which must be the
//  layout's size; free_fn (may be NULL) gets data and hint when the model
//  is destroyed.  On success the model takes both the layout and the
//  buffer; on failure (NULL, reason in error) it takes neither.
zfed_model_t *zfed_model_wrap(zfed_layout_t **layout_p, void *data, size_t size,
                              zfed_model_free_fn *free_fn, void *hint, char *error,
                              size_t error_size);
void zfed_model_destroy(zfed_model_t **self_p);

const zfed_layout_t *zfed_model_layout(const zfed_model_t *self);
void *zfed_model_data(const zfed_model_t *self);
uint64_t zfed_model_nbytes(const zfed_model_t *self);
//  The bytes of tensor index (NULL past the end).
void *zfed_model_tensor_data(const zfed_model_t *self, size_t index);

//  0 when every float element of the model is finite; otherwise -1 and
//  the first one that is not in error: "tensor fc1.weight element 785
//  [1, 1]: NaN".
int zfed_model_check_finite(const zfed_model_t *self, char *error, size_t error_size);

//  The same over count elements of one tensor from element first (data
//  holds those elements): the check of one chunk of a transfer.
int zfed_tensor_check_finite(const zfed_tensor_t *tensor, uint64_t first, const void *data,
                             uint64_t count, char *error, size_t error_size);

#ifdef __cplusplus
}
#endif

#endif
