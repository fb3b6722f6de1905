/*  zfed_svc_vecavg - "vecavg": federated averaging of a weight vector.

    The smallest honest model of what FedAvg does with real models: the
    global state is a weight vector; each client holds a vector of its own
    (its "data") and a sample count; in a round it moves the global weights
    halfway towards its vector and returns the new weights with its sample
    count; the controller averages the weights element-wise, weighted by
    samples (fedavg), and the average is the next round's global state.
    Over rounds the model converges on the sample-weighted mean of the
    clients' vectors.

    Task params:    {"vector": [number, ...], "samples": int >= 1}
    Result outputs: {"weights": [float64, ...], "samples": int}
    Global value:   [float64, ...], as long as the vector; zeros before the
                    first round closes (shaped by the job's first task).

    Shapes are checked at both ends and never bent: a global value or a
    result whose length differs from the task's vector is refused with an
    error naming the field (the FLARE seed's 2-D to 1-D surprise cannot
    happen quietly here).
*/
#include "zfed/zfed_aggregate.h"
#include "zfed/zfed_number.h"
#include "zfed/zfed_service.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARAM_VECTOR   "vector"
#define PARAM_SAMPLES  "samples"
#define OUTPUT_WEIGHTS "weights"
#define OUTPUT_SAMPLES "samples"
#define OUTPUT_FIELDS  2
//  Values shown in a progress line before "...".
#define TEXT_VALUES 4

static bool s_is_number(const msgpack_object *object)
{
    return object->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
           object->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
           object->type == MSGPACK_OBJECT_FLOAT32 || object->type == MSGPACK_OBJECT_FLOAT64;
}

static double s_number(const msgpack_object *object)
{
    switch (object->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return (double)object->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return (double)object->via.i64;
    default:
        return object->via.f64;
    }
}

//  An array of 1..ZFED_AGG_MAX_DIMS finite numbers.
static int s_read_vector(const msgpack_object *object, const char *field, zfed_fault_t *fault)
{
    if (!object) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, field, "missing: an array of numbers");
        return -1;
    }
    if (object->type != MSGPACK_OBJECT_ARRAY || object->via.array.size == 0 ||
        object->via.array.size > ZFED_AGG_MAX_DIMS) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, field,
                       "must be an array of 1 to %d numbers, got %s", ZFED_AGG_MAX_DIMS,
                       object->type == MSGPACK_OBJECT_ARRAY ? "an empty or oversized array"
                                                            : zfed_msgpack_type_name(object->type));
        return -1;
    }
    for (uint32_t index = 0; index < object->via.array.size; index++) {
        const msgpack_object *value = &object->via.array.ptr[index];
        if (!s_is_number(value) || !isfinite(s_number(value))) {
            zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, field,
                           "entry %u must be a finite number, got %s", index,
                           zfed_msgpack_type_name(value->type));
            return -1;
        }
    }
    return 0;
}

static int s_read_params(const msgpack_object *params, const msgpack_object **vector,
                         uint64_t *samples, zfed_fault_t *fault)
{
    static const char *const allowed[] = {PARAM_VECTOR, PARAM_SAMPLES, NULL};
    if (zfed_map_check_keys(params, allowed, "parameter", fault) != 0)
        return -1;
    *vector = zfed_map_get(params, PARAM_VECTOR);
    if (s_read_vector(*vector, PARAM_VECTOR, fault) != 0)
        return -1;
    const msgpack_object *count = zfed_map_get(params, PARAM_SAMPLES);
    if (!count || count->type != MSGPACK_OBJECT_POSITIVE_INTEGER || count->via.u64 < 1) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_SAMPLES,
                       "%s: an integer of at least 1 (the task's weight in fedavg)",
                       count ? "must be" : "missing");
        return -1;
    }
    *samples = count->via.u64;
    return 0;
}

static int s_pack_string(msgpack_packer *packer, const char *text)
{
    size_t length = strlen(text);
    return msgpack_pack_str(packer, length) || msgpack_pack_str_body(packer, text, length) ? -1 : 0;
}

//  (a + b) / 2 for finite a and b, never overflowing: the sum first while
//  it cannot overflow (one rounding, as before), else the halves first
//  (exact at such magnitudes).  1.7e308 and 1.7e308 gave infinity, and a
//  valid job failed.
static double s_midpoint(double a, double b)
{
    if (fabs(a) <= DBL_MAX / 2 && fabs(b) <= DBL_MAX / 2)
        return (a + b) / 2.0;
    return a / 2.0 + b / 2.0;
}

static int s_run(const msgpack_object *params, int64_t global_round,
                 const msgpack_object *global_value, msgpack_packer *outputs, char **display,
                 zfed_fault_t *fault)
{
    const msgpack_object *vector;
    uint64_t samples;
    if (s_read_params(params, &vector, &samples, fault) != 0 ||
        s_read_vector(global_value, "global", fault) != 0)
        return -1;
    uint32_t dims = vector->via.array.size;
    if (global_value->via.array.size != dims) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, "global",
                       "the global weights have %u values but this task's vector has %u; "
                       "shapes are never changed to fit",
                       global_value->via.array.size, dims);
        return -1;
    }
    //  The local step: halfway from the global weights to our vector.
    int rc = msgpack_pack_map(outputs, OUTPUT_FIELDS);
    rc |= s_pack_string(outputs, OUTPUT_WEIGHTS);
    rc |= msgpack_pack_array(outputs, dims);
    for (uint32_t index = 0; index < dims; index++)
        rc |= msgpack_pack_double(outputs, s_midpoint(s_number(&global_value->via.array.ptr[index]),
                                                      s_number(&vector->via.array.ptr[index])));
    rc |= s_pack_string(outputs, OUTPUT_SAMPLES);
    rc |= msgpack_pack_uint64(outputs, samples);
    if (rc != 0) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory packing %u weights", dims);
        return -1;
    }
    if (display) {
        char *text = malloc(96);
        if (text)
            snprintf(text, 96, "vecavg: %u weights from global round %lld, %llu samples\n", dims,
                     (long long)global_round, (unsigned long long)samples);
        *display = text;
    }
    return 0;
}

static int s_check_params(const msgpack_object *params, zfed_fault_t *fault)
{
    const msgpack_object *vector;
    uint64_t samples;
    return s_read_params(params, &vector, &samples, fault);
}

static int s_read_outputs(const msgpack_object *params, const msgpack_object *outputs,
                          zfed_sample_t *sample, zfed_fault_t *fault)
{
    static const char *const allowed[] = {OUTPUT_WEIGHTS, OUTPUT_SAMPLES, NULL};
    const msgpack_object *vector;
    uint64_t samples;
    if (s_read_params(params, &vector, &samples, fault) != 0 ||
        zfed_map_check_keys(outputs, allowed, "output", fault) != 0)
        return -1;
    const msgpack_object *weights = zfed_map_get(outputs, OUTPUT_WEIGHTS);
    if (s_read_vector(weights, OUTPUT_WEIGHTS, fault) != 0) {
        fault->code = ZFED_ERR_MALFORMED;
        return -1;
    }
    if (weights->via.array.size != vector->via.array.size) {
        zfed_fault_set(fault, ZFED_ERR_MALFORMED, OUTPUT_WEIGHTS,
                       "has %u values; the task's vector has %u (refused, never reshaped)",
                       weights->via.array.size, vector->via.array.size);
        return -1;
    }
    const msgpack_object *count = zfed_map_get(outputs, OUTPUT_SAMPLES);
    if (!count || count->type != MSGPACK_OBJECT_POSITIVE_INTEGER || count->via.u64 != samples) {
        zfed_fault_set(fault, ZFED_ERR_MALFORMED, OUTPUT_SAMPLES,
                       "must be %llu, the task's samples", (unsigned long long)samples);
        return -1;
    }
    if (zfed_sample_init(sample, weights->via.array.size) != 0) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory");
        return -1;
    }
    //  Doubles convert to rationals exactly: the average is exact too.
    for (uint32_t index = 0; index < weights->via.array.size; index++)
        mpq_set_d(sample->values[index], s_number(&weights->via.array.ptr[index]));
    sample->weight = samples;
    return 0;
}

static int s_describe(const msgpack_object *params, const msgpack_object *outputs, json_t *object)
{
    const msgpack_object *vector = zfed_map_get(params, PARAM_VECTOR);
    const msgpack_object *samples = zfed_map_get(params, PARAM_SAMPLES);
    const msgpack_object *weights = zfed_map_get(outputs, OUTPUT_WEIGHTS);
    json_t *list = json_array();
    for (uint32_t index = 0; list && weights && weights->type == MSGPACK_OBJECT_ARRAY &&
                             index < weights->via.array.size;
         index++)
        json_array_append_new(list, json_real(s_number(&weights->via.array.ptr[index])));
    int rc = json_object_set_new(object, "dims",
                                 json_integer(vector && vector->type == MSGPACK_OBJECT_ARRAY
                                                  ? (json_int_t)vector->via.array.size
                                                  : 0));
    rc |=
        json_object_set_new(object, "samples",
                            json_integer(samples && samples->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                                             ? (json_int_t)samples->via.u64
                                             : 0));
    rc |= json_object_set_new(object, "weights", list ? list : json_null());
    return rc == 0 ? 0 : -1;
}

static int s_pack_initial(const msgpack_object *params, msgpack_packer *packer)
{
    const msgpack_object *vector = zfed_map_get(params, PARAM_VECTOR);
    uint32_t dims = vector && vector->type == MSGPACK_OBJECT_ARRAY ? vector->via.array.size : 0;
    int rc = msgpack_pack_array(packer, dims);
    for (uint32_t index = 0; index < dims; index++)
        rc |= msgpack_pack_double(packer, 0.0);
    return rc == 0 ? 0 : -1;
}

static int s_pack_aggregate(const mpq_t *values, size_t dims, msgpack_packer *packer)
{
    int rc = msgpack_pack_array(packer, dims);
    for (size_t index = 0; index < dims; index++)
        rc |= msgpack_pack_double(packer, zfed_mpq_to_double(values[index]));
    return rc == 0 ? 0 : -1;
}

static json_t *s_aggregate_json(const mpq_t *values, size_t dims)
{
    json_t *list = json_array();
    for (size_t index = 0; list && index < dims; index++)
        if (json_array_append_new(list, json_real(zfed_mpq_to_double(values[index]))) != 0) {
            json_decref(list);
            return NULL;
        }
    return list;
}

//  "[0.5, 1.25, 3, 4, ...] (1000 values)"
static char *s_aggregate_text(const mpq_t *values, size_t dims)
{
    size_t size = 48 + TEXT_VALUES * 32;
    char *text = malloc(size);
    if (!text)
        return NULL;
    size_t used = (size_t)snprintf(text, size, "[");
    for (size_t index = 0; index < dims && index < TEXT_VALUES; index++)
        used += (size_t)snprintf(text + used, size - used, "%s%g", index ? ", " : "",
                                 zfed_mpq_to_double(values[index]));
    snprintf(text + used, size - used, "%s]%s", dims > TEXT_VALUES ? ", ..." : "", "");
    if (dims > TEXT_VALUES) {
        used = strlen(text);
        snprintf(text + used, size - used, " (%zu values)", dims);
    }
    return text;
}

const zfed_service_t zfed_service_vecavg = {
    .name = "vecavg",
    .description = "federated averaging of a weight vector: each task moves the global weights "
                   "halfway to its vector",
    .run = s_run,
    .check_params = s_check_params,
    .read_outputs = s_read_outputs,
    .describe = s_describe,
    .pack_initial = s_pack_initial,
    .pack_aggregate = s_pack_aggregate,
    .aggregate_json = s_aggregate_json,
    .aggregate_text = s_aggregate_text,
    .scalar = 0,
};
