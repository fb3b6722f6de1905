/*  fuzz_safetensors - libFuzzer target: the safetensors reader, and the
    exact accumulator over whatever tensors it accepts.

    Invariants: nothing crashes or leaks on any input; a file that decodes
    re-encodes to bytes that decode to the same layout, data and metadata
    and re-encode to exactly the same bytes; and for every tensor of
    finite values, folding it into an exact accumulator with a weight and
    rounding by that weight gives the tensor back bit for bit (but -0.0,
    whose exact sum is zero, comes back +0.0).
*/
#include "zfed/zfed_exact.h"
#include "zfed/zfed_safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  Weights drawn from the input: small, and past 2^32 and 2^63.
static uint64_t s_weight(const uint8_t *data, size_t size)
{
    uint64_t hash = 1469598103934665603ULL;
    for (size_t i = 0; i < size && i < 64; i++)
        hash = (hash ^ data[i]) * 1099511628211ULL;
    switch (hash % 4) {
    case 0:
        return 1;
    case 1:
        return 1 + (hash >> 48);
    case 2:
        return hash | (1ULL << 32);
    default:
        return hash | (1ULL << 63);
    }
}

static void s_check_exact(const zfed_model_t *model, uint64_t weight)
{
    const zfed_layout_t *layout = zfed_model_layout(model);
    char error[256];
    for (size_t index = 0; index < zfed_layout_size(layout); index++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(layout, index);
        const uint8_t *bytes = zfed_model_tensor_data(model, index);
        size_t where;
        if (tensor->count > (1u << 16) ||
            zfed_dtype_check_finite(tensor->dtype, bytes, tensor->count, &where) != ZFED_FINITE)
            continue;
        zfed_exact_t *acc = zfed_exact_new(tensor->count);
        uint8_t *out = malloc(tensor->nbytes + 1);
        if (!acc || !out ||
            zfed_exact_fold(acc, 0, bytes, tensor->dtype, tensor->count, weight, error,
                            sizeof error) != 0 ||
            zfed_exact_round(acc, 0, tensor->count, weight, tensor->dtype, out, error,
                             sizeof error) != 0)
            abort();
        size_t size = zfed_dtype_size(tensor->dtype);
        for (uint64_t i = 0; i < tensor->count; i++) {
            const uint8_t *in = bytes + i * size, *back = out + i * size;
            if (memcmp(in, back, size) == 0)
                continue;
            //  Only -0.0 may differ: it comes back as +0.0.
            uint8_t negative_zero[8] = {0};
            negative_zero[size - 1] = 0x80;
            uint8_t zero[8] = {0};
            if (!zfed_dtype_is_float(tensor->dtype) || memcmp(in, negative_zero, size) != 0 ||
                memcmp(back, zero, size) != 0)
                abort();
        }
        free(out);
        zfed_exact_destroy(&acc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char error[512];
    json_t *metadata = NULL;
    zfed_model_t *model = zfed_safetensors_decode(data, size, &metadata, error, sizeof error);
    if (!model)
        return 0;
    size_t first_size, second_size;
    uint8_t *first = zfed_safetensors_encode(model, metadata, &first_size, error, sizeof error);
    if (!first)
        abort(); //  whatever we read, we can write
    json_t *again_metadata = NULL;
    zfed_model_t *again =
        zfed_safetensors_decode(first, first_size, &again_metadata, error, sizeof error);
    if (!again ||
        !zfed_layout_equal(zfed_model_layout(again), zfed_model_layout(model), NULL, error,
                           sizeof error) ||
        zfed_model_nbytes(again) != zfed_model_nbytes(model) ||
        memcmp(zfed_model_data(again), zfed_model_data(model), zfed_model_nbytes(model)) != 0)
        abort();
    if ((metadata && json_object_size(metadata) > 0) !=
        (again_metadata && json_object_size(again_metadata) > 0))
        abort();
    if (metadata && again_metadata && !json_equal(metadata, again_metadata))
        abort();
    uint8_t *second =
        zfed_safetensors_encode(again, again_metadata, &second_size, error, sizeof error);
    if (!second || second_size != first_size || memcmp(first, second, first_size) != 0)
        abort(); //  our encoding is a fixed point
    s_check_exact(model, s_weight(data, size));
    free(first);
    free(second);
    json_decref(metadata);
    json_decref(again_metadata);
    zfed_model_destroy(&again);
    zfed_model_destroy(&model);
    return 0;
}
