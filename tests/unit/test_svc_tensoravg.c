/*  test_svc_tensoravg - the tensoravg service (MODELS.md 11) on its own:
    its params and their refusals (each naming its field), x + add in each
    of the twelve dtypes (tensors at unaligned offsets included), the
    integer rules, and the controller's check of a result's outputs.
*/
#include "zfed/zfed_model.h"
#include "zfed/zfed_service.h"
#include "zfed_test.h"

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

static const zfed_service_t *s_service(void)
{
    return zfed_service_find("tensoravg");
}

//  params from a packing function, decoded into unpacked.
typedef void(pack_fn)(msgpack_packer *packer);

static const msgpack_object *s_object(msgpack_unpacked *unpacked, msgpack_sbuffer *buffer,
                                      pack_fn *pack)
{
    msgpack_sbuffer_init(buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    pack(&packer);
    msgpack_unpacked_init(unpacked);
    size_t offset = 0;
    if (msgpack_unpack_next(unpacked, buffer->data, buffer->size, &offset) !=
        MSGPACK_UNPACK_SUCCESS)
        return NULL;
    return &unpacked->data;
}

static void s_key(msgpack_packer *packer, const char *key)
{
    msgpack_pack_str_with_body(packer, key, strlen(key));
}

#define PARAMS(name, body)                                                                         \
    static void name(msgpack_packer *p)                                                            \
    {                                                                                              \
        body                                                                                       \
    }

PARAMS(s_ok, msgpack_pack_map(p, 2); s_key(p, "add"); msgpack_pack_double(p, 1.5);
       s_key(p, "samples"); msgpack_pack_uint64(p, 7);)
PARAMS(s_int_add, msgpack_pack_map(p, 2); s_key(p, "add"); msgpack_pack_int64(p, 3);
       s_key(p, "samples"); msgpack_pack_uint64(p, 0);)
PARAMS(s_unknown, msgpack_pack_map(p, 3); s_key(p, "add"); msgpack_pack_double(p, 1);
       s_key(p, "samples"); msgpack_pack_uint64(p, 1); s_key(p, "lr"); msgpack_pack_double(p, 1);)
PARAMS(s_no_add, msgpack_pack_map(p, 1); s_key(p, "samples"); msgpack_pack_uint64(p, 1);)
PARAMS(s_add_str, msgpack_pack_map(p, 2); s_key(p, "add"); s_key(p, "x"); s_key(p, "samples");
       msgpack_pack_uint64(p, 1);)
PARAMS(s_add_nan, msgpack_pack_map(p, 2); s_key(p, "add"); msgpack_pack_double(p, NAN);
       s_key(p, "samples"); msgpack_pack_uint64(p, 1);)
PARAMS(s_no_samples, msgpack_pack_map(p, 1); s_key(p, "add"); msgpack_pack_double(p, 1);)
PARAMS(s_samples_big, msgpack_pack_map(p, 2); s_key(p, "add"); msgpack_pack_double(p, 1);
       s_key(p, "samples"); msgpack_pack_uint64(p, (1ULL << 53) + 1);)
PARAMS(s_samples_negative, msgpack_pack_map(p, 2); s_key(p, "add"); msgpack_pack_double(p, 1);
       s_key(p, "samples"); msgpack_pack_int64(p, -1);)
PARAMS(s_half_add, msgpack_pack_map(p, 2); s_key(p, "add"); msgpack_pack_double(p, 0.5);
       s_key(p, "samples"); msgpack_pack_uint64(p, 1);)
PARAMS(s_one, msgpack_pack_map(p, 2); s_key(p, "add"); msgpack_pack_double(p, 1.0);
       s_key(p, "samples"); msgpack_pack_uint64(p, 1);)
PARAMS(s_minus_one, msgpack_pack_map(p, 2); s_key(p, "add"); msgpack_pack_int64(p, -1);
       s_key(p, "samples"); msgpack_pack_uint64(p, 1);)
PARAMS(s_outputs_ok, msgpack_pack_map(p, 2); s_key(p, "model"); msgpack_pack_nil(p);
       s_key(p, "samples"); msgpack_pack_uint64(p, 7);)
PARAMS(s_outputs_extra, msgpack_pack_map(p, 3); s_key(p, "model"); msgpack_pack_nil(p);
       s_key(p, "samples"); msgpack_pack_uint64(p, 7); s_key(p, "loss"); msgpack_pack_double(p, 1);)
PARAMS(s_outputs_wrong, msgpack_pack_map(p, 2); s_key(p, "model"); msgpack_pack_nil(p);
       s_key(p, "samples"); msgpack_pack_uint64(p, 8);)

static void test_params_refused_by_field(void)
{
    const zfed_service_t *service = s_service();
    REQUIRE(service && service->kind == ZFED_SERVICE_MODEL && service->train);
    CHECK(service->run == NULL && service->pack_initial == NULL);
    struct {
        pack_fn *pack;
        const char *field;
        const char *text;
    } cases[] = {
        {s_unknown, "lr", "unknown parameter 'lr'"},
        {s_no_add, "add", "missing: a finite number"},
        {s_add_str, "add", "must be a finite number, got str"},
        {s_add_nan, "add", "must be a finite number, got float"},
        {s_no_samples, "samples", "missing: an integer from 0 to 2^53"},
        {s_samples_big, "samples", "must be an integer from 0 to 2^53"},
        {s_samples_negative, "samples", "must be an integer from 0 to 2^53"},
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        msgpack_unpacked unpacked;
        msgpack_sbuffer buffer;
        const msgpack_object *params = s_object(&unpacked, &buffer, cases[index].pack);
        REQUIRE(params);
        zfed_fault_t fault = {0};
        CHECK(service->check_params(params, &fault) != 0);
        CHECK_INT(fault.code, ZFED_ERR_INVALID_PARAM);
        CHECK_STR(fault.field, cases[index].field);
        CHECK_STR(fault.text, cases[index].text);
        msgpack_unpacked_destroy(&unpacked);
        msgpack_sbuffer_destroy(&buffer);
    }
    msgpack_unpacked unpacked;
    msgpack_sbuffer buffer;
    zfed_fault_t fault = {0};
    CHECK(service->check_params(s_object(&unpacked, &buffer, s_ok), &fault) == 0);
    msgpack_unpacked_destroy(&unpacked);
    msgpack_sbuffer_destroy(&buffer);
}

//  A model with one tensor of each dtype, at end-to-end (unaligned)
//  offsets, holding small values of both signs.
static zfed_model_t *s_every_dtype(void)
{
    zfed_layout_t *layout = zfed_layout_new();
    char error[128];
    char name[16];
    for (int dtype = 0; dtype < ZFED_DTYPE_COUNT; dtype++) {
        uint64_t shape[2] = {3, (uint64_t)dtype + 1};
        snprintf(name, sizeof name, "t%d", dtype);
        if (zfed_layout_add(layout, name, (zfed_dtype_t)dtype, shape, dtype % 3 ? 2 : 1, error,
                            sizeof error) != 0)
            return NULL;
    }
    zfed_model_t *model = zfed_model_new(&layout);
    for (size_t index = 0; model && index < zfed_layout_size(zfed_model_layout(model)); index++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(zfed_model_layout(model), index);
        for (uint64_t element = 0; element < tensor->count; element++) {
            double value = (double)element * 1.25;
            if (zfed_dtype_is_signed(tensor->dtype) && element % 2)
                value = -value;
            if (!zfed_dtype_is_float(tensor->dtype))
                value = floor(value);
            zfed_dtype_set_f64(tensor->dtype, zfed_model_tensor_data(model, index), element, value);
        }
    }
    return model;
}

//  The element x + add should become, worked out through doubles.
static double s_expected(zfed_dtype_t dtype, double x, double add)
{
    switch (dtype) {
    case ZFED_DTYPE_F64:
        return x + add;
    case ZFED_DTYPE_F32:
        return (double)((float)x + (float)add);
    case ZFED_DTYPE_F16: {
        float a = zfed_f16_to_f32(zfed_f64_to_f16(add));
        return zfed_f16_to_f64(zfed_f64_to_f16((double)((float)x + a)));
    }
    case ZFED_DTYPE_BF16: {
        float a = zfed_bf16_to_f32(zfed_f64_to_bf16(add));
        return zfed_bf16_to_f64(zfed_f64_to_bf16((double)((float)x + a)));
    }
    default:
        return x + add;
    }
}

static void s_check_add(pack_fn *pack, double add, uint64_t samples)
{
    const zfed_service_t *service = s_service();
    zfed_model_t *global = s_every_dtype();
    REQUIRE(global);
    msgpack_unpacked unpacked;
    msgpack_sbuffer buffer;
    const msgpack_object *params = s_object(&unpacked, &buffer, pack);
    zfed_task_ctx_t ctx = {.job_id = "j", .worker = "w"};
    zfed_model_t *result = NULL;
    uint64_t weight = 99;
    zfed_fault_t fault = {0};
    int rc = service->train(params, &ctx, global, &result, &weight, NULL, &fault);
    if (rc != 0)
        fprintf(stderr, "refused: %s: %s\n", fault.field, fault.text);
    REQUIRE(rc == 0 && result);
    CHECK_INT(weight, samples);
    const zfed_layout_t *layout = zfed_model_layout(result);
    char diff[128];
    CHECK(zfed_layout_equal(layout, zfed_model_layout(global), "global", diff, sizeof diff));
    for (size_t index = 0; index < zfed_layout_size(layout); index++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(layout, index);
        for (uint64_t element = 0; element < tensor->count; element++) {
            double x =
                zfed_dtype_get_f64(tensor->dtype, zfed_model_tensor_data(global, index), element);
            double got =
                zfed_dtype_get_f64(tensor->dtype, zfed_model_tensor_data(result, index), element);
            double want = s_expected(tensor->dtype, x, add);
            if (got != want)
                fprintf(stderr, "%s element %llu: %.17g + %g gave %.17g, expected %.17g\n",
                        zfed_dtype_name(tensor->dtype), (unsigned long long)element, x, add, got,
                        want);
            CHECK(got == want);
        }
    }
    zfed_model_destroy(&result);
    zfed_model_destroy(&global);
    msgpack_unpacked_destroy(&unpacked);
    msgpack_sbuffer_destroy(&buffer);
}

static void test_every_dtype(void)
{
    s_check_add(s_int_add, 3, 0); //  an integer add: every dtype
    s_check_add(s_one, 1.0, 1);   //  a float with an integral value: every dtype too
}

//  Refused train calls: a fault naming "add", and no result.
static void s_check_refused(zfed_model_t *global, pack_fn *pack, const char *needle)
{
    msgpack_unpacked unpacked;
    msgpack_sbuffer buffer;
    const msgpack_object *params = s_object(&unpacked, &buffer, pack);
    zfed_task_ctx_t ctx = {.job_id = "j", .worker = "w"};
    zfed_model_t *result = NULL;
    uint64_t weight = 0;
    zfed_fault_t fault = {0};
    CHECK(s_service()->train(params, &ctx, global, &result, &weight, NULL, &fault) != 0);
    CHECK(result == NULL);
    CHECK_INT(fault.code, ZFED_ERR_INVALID_PARAM);
    CHECK_STR(fault.field, "add");
    if (!strstr(fault.text, needle))
        fprintf(stderr, "'%s' does not say '%s'\n", fault.text, needle);
    CHECK(strstr(fault.text, needle) != NULL);
    msgpack_unpacked_destroy(&unpacked);
    msgpack_sbuffer_destroy(&buffer);
}

static zfed_model_t *s_one_tensor(zfed_dtype_t dtype, double value)
{
    zfed_layout_t *layout = zfed_layout_new();
    char error[128];
    uint64_t shape[1] = {4};
    if (zfed_layout_add(layout, "n", dtype, shape, 1, error, sizeof error) != 0)
        return NULL;
    zfed_model_t *model = zfed_model_new(&layout);
    if (model)
        zfed_dtype_set_f64(dtype, zfed_model_data(model), 2, value);
    return model;
}

static void test_integer_rules(void)
{
    zfed_model_t *every = s_every_dtype();
    s_check_refused(every, s_half_add, "needs an integer add, got 0.5");
    zfed_model_destroy(&every);
    zfed_model_t *u8 = s_one_tensor(ZFED_DTYPE_U8, 255);
    s_check_refused(u8, s_one, "tensor n: U8 + 1 leaves the range of U8 (element 2)");
    zfed_model_destroy(&u8);
    zfed_model_t *unsigned64 = s_one_tensor(ZFED_DTYPE_U64, 0);
    s_check_refused(unsigned64, s_minus_one, "leaves the range of U64 (element 0)");
    zfed_model_destroy(&unsigned64);
    //  The largest I8 plus nothing is fine; a float tensor takes 0.5.
    zfed_model_t *f32 = s_one_tensor(ZFED_DTYPE_F32, 1);
    msgpack_unpacked unpacked;
    msgpack_sbuffer buffer;
    const msgpack_object *params = s_object(&unpacked, &buffer, s_half_add);
    zfed_model_t *result = NULL;
    uint64_t weight = 0;
    zfed_fault_t fault = {0};
    zfed_task_ctx_t ctx = {.job_id = "j", .worker = "w"};
    CHECK(s_service()->train(params, &ctx, f32, &result, &weight, NULL, &fault) == 0);
    CHECK(result && zfed_dtype_get_f64(ZFED_DTYPE_F32, zfed_model_data(result), 2) == 1.5);
    zfed_model_destroy(&result);
    zfed_model_destroy(&f32);
    msgpack_unpacked_destroy(&unpacked);
    msgpack_sbuffer_destroy(&buffer);
}

static void test_check_metrics(void)
{
    const zfed_service_t *service = s_service();
    msgpack_unpacked task_unpacked;
    msgpack_sbuffer task_buffer;
    const msgpack_object *params = s_object(&task_unpacked, &task_buffer, s_ok);
    struct {
        pack_fn *pack;
        int rc;
        const char *field;
    } cases[] = {
        {s_outputs_ok, 0, ""}, {s_outputs_extra, -1, "loss"}, {s_outputs_wrong, -1, "samples"}};
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        msgpack_unpacked unpacked;
        msgpack_sbuffer buffer;
        const msgpack_object *outputs = s_object(&unpacked, &buffer, cases[index].pack);
        zfed_fault_t fault = {0};
        CHECK_INT(service->check_metrics(params, outputs, &fault), cases[index].rc);
        CHECK_STR(fault.field, cases[index].field);
        if (index == 0) {
            json_t *record = json_object();
            CHECK(service->describe(params, outputs, record) == 0);
            CHECK_INT(json_integer_value(json_object_get(record, "samples")), 7);
            CHECK(json_real_value(json_object_get(record, "add")) == 1.5);
            json_decref(record);
        }
        msgpack_unpacked_destroy(&unpacked);
        msgpack_sbuffer_destroy(&buffer);
    }
    msgpack_unpacked_destroy(&task_unpacked);
    msgpack_sbuffer_destroy(&task_buffer);
}

int main(void)
{
    ZFED_TEST_RUN(test_params_refused_by_field);
    ZFED_TEST_RUN(test_every_dtype);
    ZFED_TEST_RUN(test_integer_rules);
    ZFED_TEST_RUN(test_check_metrics);
    ZFED_TEST_END();
}
