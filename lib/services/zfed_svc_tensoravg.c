/*  zfed_svc_tensoravg - "tensoravg": vecavg for models (schemas/MODELS.md 11).

    A test service anyone can check with numpy: every element x of every
    tensor becomes x + add, computed in the tensor's dtype, and the
    result's weight is the task's samples.

    Task params:    {"add": NUMBER, "samples": INTEGER 0..2^53}
    Global:         a model descriptor, any layout of any dtypes (a job
                    names its initial model: tensoravg builds none)
    Result outputs: {"model": DESCRIPTOR, "samples": samples}

    The sum in each dtype: F64 in binary64, F32 in binary32; F16 and BF16
    widened to binary32, add rounded once to the dtype and widened too,
    the sum rounded once back.  Integer dtypes need an integer add (a
    float with an integral value counts) and an exact sum in range;
    anything else is refused (422, field "add") naming the tensor.
*/
#include "zfed/zfed_model.h"
#include "zfed/zfed_service.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARAM_ADD     "add"
#define PARAM_SAMPLES "samples"
#define SAMPLES_MAX   (1ULL << 53)
#define OUTPUT_FIELDS 2
//  An add at least this large (in magnitude) leaves every integer dtype's
//  range; below it, it fits an __int128 exactly.
#define ADD_INTEGER_LIMIT 0x1p64

typedef struct {
    double value;     //  add as a float64 (an integer add rounded to nearest)
    bool integral;    //  add has an integer value
    bool huge;        //  |add| >= 2^64: no integer tensor can take it
    __int128 integer; //  add's integer value, when integral and not huge
} add_t;

static int s_read_add(const msgpack_object *params, add_t *add, zfed_fault_t *fault)
{
    const msgpack_object *value = zfed_map_get(params, PARAM_ADD);
    memset(add, 0, sizeof *add);
    if (!value) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_ADD, "missing: a finite number");
        return -1;
    }
    switch (value->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        add->value = (double)value->via.u64;
        add->integer = (__int128)value->via.u64;
        add->integral = true;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        add->value = (double)value->via.i64;
        add->integer = (__int128)value->via.i64;
        add->integral = true;
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (isfinite(value->via.f64)) {
            add->value = value->via.f64;
            add->integral = add->value == trunc(add->value);
            add->huge = fabs(add->value) >= ADD_INTEGER_LIMIT;
            if (add->integral && !add->huge)
                add->integer = (__int128)add->value;
            return 0;
        }
        break;
    default:
        break;
    }
    zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_ADD, "must be a finite number, got %s",
                   zfed_msgpack_type_name(value->type));
    return -1;
}

static int s_read_params(const msgpack_object *params, add_t *add, uint64_t *samples,
                         zfed_fault_t *fault)
{
    static const char *const allowed[] = {PARAM_ADD, PARAM_SAMPLES, NULL};
    if (zfed_map_check_keys(params, allowed, "parameter", fault) != 0 ||
        s_read_add(params, add, fault) != 0)
        return -1;
    const msgpack_object *count = zfed_map_get(params, PARAM_SAMPLES);
    if (!count || count->type != MSGPACK_OBJECT_POSITIVE_INTEGER || count->via.u64 > SAMPLES_MAX) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_SAMPLES, "%s an integer from 0 to 2^53",
                       count ? "must be" : "missing:");
        return -1;
    }
    *samples = count->via.u64;
    return 0;
}

static int s_check_params(const msgpack_object *params, zfed_fault_t *fault)
{
    add_t add;
    uint64_t samples;
    return s_read_params(params, &add, &samples, fault);
}

//  ---------------------------------------------------------------------
//  x + add in each dtype.  Tensors need not be aligned to their element
//  size (MODELS.md 3: no padding), so elements are moved with memcpy,
//  which compilers turn into plain (unaligned) loads and stores.

#define S_FLOAT_LOOP(type, a)                                                                      \
    for (uint64_t i = 0; i < count; i++) {                                                         \
        type x;                                                                                    \
        memcpy(&x, in + i * sizeof x, sizeof x);                                                   \
        x += (a);                                                                                  \
        memcpy(out + i * sizeof x, &x, sizeof x);                                                  \
    }

#define S_HALF_LOOP(to_f32, from_f32, a)                                                           \
    for (uint64_t i = 0; i < count; i++) {                                                         \
        uint16_t x;                                                                                \
        memcpy(&x, in + i * sizeof x, sizeof x);                                                   \
        x = from_f32(to_f32(x) + (a));                                                             \
        memcpy(out + i * sizeof x, &x, sizeof x);                                                  \
    }

//  Integers: the exact sum, checked against the dtype's range.
#define S_INT_LOOP(type, low, high)                                                                \
    for (uint64_t i = 0; i < count; i++) {                                                         \
        type x;                                                                                    \
        memcpy(&x, in + i * sizeof x, sizeof x);                                                   \
        __int128 sum = (__int128)x + add->integer;                                                 \
        if (sum < (__int128)(low) || sum > (__int128)(high)) {                                     \
            *bad = i;                                                                              \
            return -1;                                                                             \
        }                                                                                          \
        x = (type)sum;                                                                             \
        memcpy(out + i * sizeof x, &x, sizeof x);                                                  \
    }

static int s_add_integers(zfed_dtype_t dtype, const uint8_t *restrict in, uint8_t *restrict out,
                          uint64_t count, const add_t *add, uint64_t *bad)
{
    switch (dtype) {
    case ZFED_DTYPE_I64:
        S_INT_LOOP(int64_t, INT64_MIN, INT64_MAX);
        break;
    case ZFED_DTYPE_I32:
        S_INT_LOOP(int32_t, INT32_MIN, INT32_MAX);
        break;
    case ZFED_DTYPE_I16:
        S_INT_LOOP(int16_t, INT16_MIN, INT16_MAX);
        break;
    case ZFED_DTYPE_I8:
        S_INT_LOOP(int8_t, INT8_MIN, INT8_MAX);
        break;
    case ZFED_DTYPE_U64:
        S_INT_LOOP(uint64_t, 0, UINT64_MAX);
        break;
    case ZFED_DTYPE_U32:
        S_INT_LOOP(uint32_t, 0, UINT32_MAX);
        break;
    case ZFED_DTYPE_U16:
        S_INT_LOOP(uint16_t, 0, UINT16_MAX);
        break;
    case ZFED_DTYPE_U8:
        S_INT_LOOP(uint8_t, 0, UINT8_MAX);
        break;
    default:
        return -1;
    }
    return 0;
}

//  One tensor: 0, or -1 + fault.
static int s_add_tensor(const zfed_tensor_t *tensor, const uint8_t *restrict in,
                        uint8_t *restrict out, const add_t *add, zfed_fault_t *fault)
{
    uint64_t count = tensor->count;
    if (count == 0)
        return 0;
    switch (tensor->dtype) {
    case ZFED_DTYPE_F64:
        S_FLOAT_LOOP(double, add->value);
        return 0;
    case ZFED_DTYPE_F32: {
        float a = (float)add->value;
        S_FLOAT_LOOP(float, a);
        return 0;
    }
    case ZFED_DTYPE_F16: {
        float a = zfed_f16_to_f32(zfed_f64_to_f16(add->value));
        S_HALF_LOOP(zfed_f16_to_f32, zfed_f32_to_f16, a);
        return 0;
    }
    case ZFED_DTYPE_BF16: {
        float a = zfed_bf16_to_f32(zfed_f64_to_bf16(add->value));
        S_HALF_LOOP(zfed_bf16_to_f32, zfed_f32_to_bf16, a);
        return 0;
    }
    default:
        break;
    }
    const char *dtype = zfed_dtype_name(tensor->dtype);
    if (!add->integral) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_ADD,
                       "tensor %s is %s: an integer tensor needs an integer add, got %.17g",
                       tensor->name, dtype, add->value);
        return -1;
    }
    uint64_t bad = 0;
    if (add->huge || s_add_integers(tensor->dtype, in, out, count, add, &bad) != 0) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_ADD,
                       "tensor %s: %s + %.17g leaves the range of %s (element %llu)", tensor->name,
                       dtype, add->value, dtype, (unsigned long long)bad);
        return -1;
    }
    return 0;
}

static int s_train(const msgpack_object *params, const zfed_task_ctx_t *ctx,
                   const zfed_model_t *global, zfed_model_t **result, uint64_t *weight,
                   msgpack_packer *metrics, zfed_fault_t *fault)
{
    add_t add;
    uint64_t samples;
    if (s_read_params(params, &add, &samples, fault) != 0)
        return -1;
    const zfed_layout_t *layout = zfed_model_layout(global);
    zfed_layout_t *copy = zfed_layout_dup(layout);
    zfed_model_t *model = copy ? zfed_model_new_uninit(&copy) : NULL; //  every byte written
    if (!model) {
        zfed_layout_destroy(&copy);
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory for a model of %llu bytes",
                       (unsigned long long)zfed_layout_nbytes(layout));
        return -1;
    }
    for (size_t index = 0; index < zfed_layout_size(layout); index++) {
        if (s_add_tensor(zfed_layout_tensor(layout, index), zfed_model_tensor_data(global, index),
                         zfed_model_tensor_data(model, index), &add, fault) != 0) {
            zfed_model_destroy(&model);
            return -1;
        }
    }
    *result = model;
    *weight = samples;
    return 0;
}

//  The controller's check of a result's outputs besides "model".
static int s_check_metrics(const msgpack_object *params, const msgpack_object *outputs,
                           zfed_fault_t *fault)
{
    static const char *const allowed[] = {ZFED_OUTPUT_MODEL, ZFED_OUTPUT_SAMPLES, NULL};
    add_t add;
    uint64_t expected;
    if (s_read_params(params, &add, &expected, fault) != 0 ||
        zfed_map_check_keys(outputs, allowed, "output", fault) != 0)
        return -1;
    const msgpack_object *samples = zfed_map_get(outputs, ZFED_OUTPUT_SAMPLES);
    if (!samples || samples->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        samples->via.u64 != expected) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, ZFED_OUTPUT_SAMPLES,
                       "%s: the task's samples, %llu", samples ? "must be" : "missing",
                       (unsigned long long)expected);
        return -1;
    }
    return 0;
}

static int s_describe(const msgpack_object *params, const msgpack_object *outputs, json_t *object)
{
    const msgpack_object *samples = zfed_map_get(outputs, ZFED_OUTPUT_SAMPLES);
    const msgpack_object *add = zfed_map_get(params, PARAM_ADD);
    int rc = 0;
    if (samples && samples->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        rc |= json_object_set_new(object, "samples", json_integer((json_int_t)samples->via.u64));
    if (add && (add->type == MSGPACK_OBJECT_FLOAT64 || add->type == MSGPACK_OBJECT_FLOAT32))
        rc |= json_object_set_new(object, "add", json_real(add->via.f64));
    else if (add && add->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        rc |= json_object_set_new(object, "add", json_integer((json_int_t)add->via.u64));
    else if (add && add->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        rc |= json_object_set_new(object, "add", json_integer((json_int_t)add->via.i64));
    return rc == 0 ? 0 : -1;
}

const zfed_service_t zfed_service_tensoravg = {
    .name = "tensoravg",
    .description = "a model service for tests: adds \"add\" to every element of every tensor, "
                   "in the tensor's dtype; weight \"samples\"",
    .kind = ZFED_SERVICE_MODEL,
    .check_params = s_check_params,
    .train = s_train,
    .check_metrics = s_check_metrics,
    .describe = s_describe,
};
