/*  test_layout - layouts (names, shapes, limits, lookups, comparison in
    words) and models (own buffers, wrapped buffers, finiteness checks
    naming the element).
*/
#include "zfed/zfed_model.h"
#include "zfed_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int s_add(zfed_layout_t *layout, const char *name, zfed_dtype_t dtype, const uint64_t *shape,
                 size_t ndim, char *error)
{
    return zfed_layout_add(layout, name, dtype, shape, ndim, error, 256);
}

//  The usual small MLP, in model order.
static zfed_layout_t *s_mlp(uint64_t fc1_in)
{
    zfed_layout_t *layout = zfed_layout_new();
    char error[256];
    CHECK(s_add(layout, "fc1.weight", ZFED_DTYPE_F32, (uint64_t[]){200, fc1_in}, 2, error) == 0);
    CHECK(s_add(layout, "fc1.bias", ZFED_DTYPE_F32, (uint64_t[]){200}, 1, error) == 0);
    CHECK(s_add(layout, "fc2.weight", ZFED_DTYPE_F32, (uint64_t[]){10, 200}, 2, error) == 0);
    CHECK(s_add(layout, "fc2.bias", ZFED_DTYPE_F32, (uint64_t[]){10}, 1, error) == 0);
    return layout;
}

static void test_offsets(void)
{
    zfed_layout_t *layout = s_mlp(784);
    CHECK_INT(zfed_layout_size(layout), 4);
    const zfed_tensor_t *fc2 = zfed_layout_tensor(layout, 2);
    CHECK_STR(fc2->name, "fc2.weight");
    CHECK_INT(fc2->count, 2000);
    CHECK_INT(fc2->first, 200 * 784 + 200);
    CHECK_INT(fc2->offset, (200 * 784 + 200) * 4);
    CHECK_INT(fc2->nbytes, 8000);
    CHECK_INT(zfed_layout_nbytes(layout), (200 * 784 + 200 + 2000 + 10) * 4);
    CHECK_INT(zfed_layout_elements(layout), 200 * 784 + 200 + 2000 + 10);
    size_t index = 99;
    CHECK(zfed_layout_find(layout, "fc2.bias", &index) == zfed_layout_tensor(layout, 3));
    CHECK_INT(index, 3);
    CHECK(zfed_layout_find(layout, "fc3.bias", &index) == NULL);
    CHECK(zfed_layout_tensor(layout, 4) == NULL);
    CHECK_INT(zfed_layout_tensor_at(layout, 0), 0);
    CHECK_INT(zfed_layout_tensor_at(layout, fc2->offset - 1), 1);
    CHECK_INT(zfed_layout_tensor_at(layout, fc2->offset), 2);
    CHECK_INT(zfed_layout_tensor_at(layout, zfed_layout_nbytes(layout) - 1), 3);
    CHECK_INT(zfed_layout_tensor_at(layout, zfed_layout_nbytes(layout)), -1);
    zfed_layout_destroy(&layout);
    zfed_layout_destroy(&layout);
    CHECK(layout == NULL);

    //  Scalars (no dimensions) hold one element; a zero dimension none,
    //  and holds no byte for tensor_at.
    layout = zfed_layout_new();
    char error[256];
    CHECK(s_add(layout, "step", ZFED_DTYPE_I64, NULL, 0, error) == 0);
    CHECK(s_add(layout, "empty", ZFED_DTYPE_F32, (uint64_t[]){3, 0}, 2, error) == 0);
    CHECK(s_add(layout, "tail", ZFED_DTYPE_U8, (uint64_t[]){2}, 1, error) == 0);
    CHECK_INT(zfed_layout_tensor(layout, 0)->count, 1);
    CHECK_INT(zfed_layout_tensor(layout, 1)->count, 0);
    CHECK_INT(zfed_layout_tensor(layout, 2)->offset, 8);
    CHECK_INT(zfed_layout_tensor_at(layout, 8), 2);
    CHECK_INT(zfed_layout_tensor_at(layout, 7), 0);
    zfed_layout_destroy(&layout);
}

static void test_refused(void)
{
    zfed_layout_t *layout = zfed_layout_new();
    char error[256];
    uint64_t one[] = {1};
    CHECK(s_add(layout, "a", ZFED_DTYPE_F32, one, 1, error) == 0);
    CHECK(s_add(layout, "a", ZFED_DTYPE_F16, one, 1, error) == -1);
    CHECK_STR(error, "tensor 1: name a is already tensor 0's");
    CHECK(s_add(layout, "", ZFED_DTYPE_F32, one, 1, error) == -1);
    CHECK_STR(error, "tensor 1: name '' is empty");
    CHECK(s_add(layout, NULL, ZFED_DTYPE_F32, one, 1, error) == -1);
    CHECK(s_add(layout, "tab\there", ZFED_DTYPE_F32, one, 1, error) == -1);
    CHECK_STR(error, "tensor 1: name 'tab\\x09here' holds a control character");
    CHECK(s_add(layout, "c1\xc2\x85", ZFED_DTYPE_F32, one, 1, error) == -1); //  U+0085
    CHECK(strstr(error, "control character") != NULL);
    static const char *not_utf8[] = {
        "\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc3", "\xe2\x82"};
    for (size_t i = 0; i < sizeof not_utf8 / sizeof *not_utf8; i++) {
        CHECK(s_add(layout, not_utf8[i], ZFED_DTYPE_F32, one, 1, error) == -1);
        CHECK(strstr(error, "is not UTF-8") != NULL);
    }
    CHECK(s_add(layout,
                "gr\xc3\xb6\xc3\x9f"
                "e.\xe2\x82\xac.\xf0\x9f\x98\x80",
                ZFED_DTYPE_F32, one, 1, error) == 0);
    char name[300];
    memset(name, 'n', sizeof name);
    name[255] = '\0';
    CHECK(s_add(layout, name, ZFED_DTYPE_F32, one, 1, error) == 0);
    name[255] = 'n';
    name[256] = '\0';
    CHECK(s_add(layout, name, ZFED_DTYPE_F32, one, 1, error) == -1);
    CHECK(strstr(error, "is longer than 255 bytes") != NULL);
    CHECK(s_add(layout, "b", (zfed_dtype_t)12, one, 1, error) == -1);
    CHECK_STR(error, "tensor b: unknown dtype 12");
    uint64_t dims[17];
    for (int i = 0; i < 17; i++)
        dims[i] = 1;
    CHECK(s_add(layout, "b", ZFED_DTYPE_F32, dims, 16, error) == 0);
    CHECK(s_add(layout, "c", ZFED_DTYPE_F32, dims, 17, error) == -1);
    CHECK_STR(error, "tensor c: shape has 17 dimensions, at most 16");
    CHECK(s_add(layout, "d", ZFED_DTYPE_U8, (uint64_t[]){1ULL << 32, 1ULL << 32}, 2, error) == -1);
    CHECK_STR(error, "tensor d: shape [4294967296, 4294967296] has more elements than 2^64");
    CHECK(s_add(layout, "d", ZFED_DTYPE_F64, (uint64_t[]){1ULL << 62}, 1, error) == -1);
    CHECK(strstr(error, "exceed 1099511627776 bytes") != NULL);
    uint64_t nbytes = zfed_layout_nbytes(layout);
    //  Exactly up to the limit is fine, one byte more is not.
    CHECK(s_add(layout, "e", ZFED_DTYPE_U8, (uint64_t[]){(1ULL << 40) - nbytes}, 1, error) == 0);
    CHECK(s_add(layout, "f", ZFED_DTYPE_U8, one, 1, error) == -1);
    CHECK(s_add(layout, "g", ZFED_DTYPE_U8, (uint64_t[]){0}, 1, error) == 0);
    size_t size = zfed_layout_size(layout);
    CHECK_INT(size, 6);
    zfed_layout_destroy(&layout);

    layout = zfed_layout_new();
    for (int i = 0; i < ZFED_LAYOUT_TENSORS_MAX; i++) {
        snprintf(name, sizeof name, "layer%d", i);
        if (s_add(layout, name, ZFED_DTYPE_U8, one, 1, error) != 0) {
            CHECK(!"add failed");
            break;
        }
    }
    CHECK(s_add(layout, "one.too.many", ZFED_DTYPE_U8, one, 1, error) == -1);
    CHECK_STR(error, "tensor one.too.many: more than 100000 tensors");
    CHECK(zfed_layout_find(layout, "layer99999", NULL) == zfed_layout_tensor(layout, 99999));
    CHECK_INT(zfed_layout_tensor_at(layout, 77777), 77777);
    zfed_layout_t *copy = zfed_layout_dup(layout);
    CHECK(copy && zfed_layout_equal(copy, layout, "the global", error, sizeof error));
    zfed_layout_destroy(&copy);
    zfed_layout_destroy(&layout);
}

static void test_equal(void)
{
    zfed_layout_t *global = s_mlp(785);
    zfed_layout_t *same = s_mlp(785);
    zfed_layout_t *shape = s_mlp(784);
    char diff[256];
    CHECK(zfed_layout_equal(same, global, "the global", diff, sizeof diff));
    CHECK(!zfed_layout_equal(shape, global, "the global", diff, sizeof diff));
    CHECK_STR(diff, "tensor fc1.weight: shape [200, 784] where the global has [200, 785]");

    zfed_layout_t *swapped = zfed_layout_new(), *dtype = zfed_layout_new();
    zfed_layout_t *shorter = zfed_layout_new(), *longer = zfed_layout_dup(global);
    zfed_layout_t *rank = zfed_layout_new();
    char error[256];
    for (size_t i = 0; i < 4; i++) {
        const zfed_tensor_t *t = zfed_layout_tensor(global, i);
        size_t j = i == 2 ? 3 : i == 3 ? 2 : i;
        const zfed_tensor_t *u = zfed_layout_tensor(global, j);
        CHECK(s_add(swapped, u->name, u->dtype, u->shape, u->ndim, error) == 0);
        CHECK(s_add(dtype, t->name, i == 3 ? ZFED_DTYPE_F16 : t->dtype, t->shape, t->ndim, error) ==
              0);
        if (i < 3)
            CHECK(s_add(shorter, t->name, t->dtype, t->shape, t->ndim, error) == 0);
        CHECK(s_add(rank, t->name, t->dtype, t->shape, i == 1 ? 2 : t->ndim, error) == 0);
    }
    CHECK(s_add(longer, "fc3.weight", ZFED_DTYPE_F32, (uint64_t[]){1}, 1, error) == 0);
    CHECK(!zfed_layout_equal(swapped, global, "the global", diff, sizeof diff));
    CHECK_STR(diff, "tensor 2: name fc2.bias where the global has fc2.weight");
    CHECK(!zfed_layout_equal(dtype, global, "the global", diff, sizeof diff));
    CHECK_STR(diff, "tensor fc2.bias: dtype F16 where the global has F32");
    CHECK(!zfed_layout_equal(shorter, global, "the global", diff, sizeof diff));
    CHECK_STR(diff, "missing tensor fc2.bias (the global has 4 tensors, this has 3)");
    CHECK(!zfed_layout_equal(longer, global, NULL, diff, sizeof diff));
    CHECK_STR(diff, "extra tensor fc3.weight (the reference has 4 tensors, this has 5)");
    CHECK(!zfed_layout_equal(rank, global, "the global", diff, sizeof diff));
    CHECK_STR(diff, "tensor fc1.bias: shape [200, 0] where the global has [200]");
    zfed_layout_t *layouts[] = {global, same, shape, swapped, dtype, shorter, longer, rank};
    for (size_t i = 0; i < sizeof layouts / sizeof *layouts; i++)
        zfed_layout_destroy(&layouts[i]);
}

static int s_freed = 0;

static void s_free(void *data, void *hint)
{
    CHECK(hint == &s_freed);
    free(data);
    s_freed++;
}

static void test_models(void)
{
    zfed_layout_t *layout = s_mlp(784);
    zfed_model_t *model = zfed_model_new(&layout);
    CHECK(model && layout == NULL);
    const zfed_layout_t *held = zfed_model_layout(model);
    CHECK_INT(zfed_model_nbytes(model), zfed_layout_nbytes(held));
    float *fc2 = zfed_model_tensor_data(model, 2);
    CHECK((uint8_t *)fc2 ==
          (uint8_t *)zfed_model_data(model) + zfed_layout_tensor(held, 2)->offset);
    CHECK(fc2[0] == 0.0f && fc2[1999] == 0.0f); //  zeroed
    CHECK(zfed_model_tensor_data(model, 4) == NULL);
    char error[256];
    CHECK(zfed_model_check_finite(model, error, sizeof error) == 0);
    fc2[201] = -INFINITY;
    CHECK(zfed_model_check_finite(model, error, sizeof error) == -1);
    CHECK_STR(error, "tensor fc2.weight element 201 [1, 1]: -Inf");
    fc2[5] = NAN;
    CHECK(zfed_model_check_finite(model, error, sizeof error) == -1);
    CHECK_STR(error, "tensor fc2.weight element 5 [0, 5]: NaN");
    //  A chunk of the tensor from element 200 on: indices stay the tensor's.
    CHECK(zfed_tensor_check_finite(zfed_layout_tensor(held, 2), 200, fc2 + 200, 100, error,
                                   sizeof error) == -1);
    CHECK_STR(error, "tensor fc2.weight element 201 [1, 1]: -Inf");
    zfed_model_destroy(&model);
    zfed_model_destroy(&model);
    CHECK(model == NULL);

    //  Wrapping: the size must match; on failure nothing is taken.
    layout = s_mlp(784);
    uint64_t nbytes = zfed_layout_nbytes(layout);
    void *buffer = calloc(1, nbytes);
    CHECK(zfed_model_wrap(&layout, buffer, nbytes - 1, s_free, &s_freed, error, sizeof error) ==
          NULL);
    CHECK(layout != NULL && s_freed == 0);
    CHECK(strstr(error, "data: 636039 bytes where the layout needs 636040") != NULL);
    model = zfed_model_wrap(&layout, buffer, nbytes, s_free, &s_freed, error, sizeof error);
    CHECK(model && layout == NULL && zfed_model_data(model) == buffer);
    zfed_model_destroy(&model);
    CHECK_INT(s_freed, 1);
    //  Without a free function the buffer stays the caller's.
    layout = zfed_layout_new();
    uint8_t bytes[3] = {1, 2, 3};
    CHECK(s_add(layout, "b", ZFED_DTYPE_U8, (uint64_t[]){3}, 1, error) == 0);
    model = zfed_model_wrap(&layout, bytes, 3, NULL, NULL, error, sizeof error);
    CHECK(model && ((uint8_t *)zfed_model_tensor_data(model, 0))[2] == 3);
    zfed_model_destroy(&model);
    //  An empty layout makes an empty model.
    layout = zfed_layout_new();
    model = zfed_model_new(&layout);
    CHECK(model && zfed_model_nbytes(model) == 0);
    CHECK(zfed_model_check_finite(model, error, sizeof error) == 0);
    zfed_model_destroy(&model);
}

int main(void)
{
    test_offsets();
    test_refused();
    test_equal();
    test_models();
    ZFED_TEST_END();
}
