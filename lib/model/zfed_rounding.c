/*  zfed_rounding - one correct rounding of an exact binary value.  */
#include "model/zfed_rounding.h"

#include <string.h>

const zfed_rounding_format_t zfed_rounding_formats[] = {
    [ZFED_DTYPE_F64] = ZFED_ROUNDING_FORMAT_F64,
    [ZFED_DTYPE_F32] = ZFED_ROUNDING_FORMAT_F32,
    [ZFED_DTYPE_F16] = ZFED_ROUNDING_FORMAT_F16,
    [ZFED_DTYPE_BF16] = ZFED_ROUNDING_FORMAT_BF16,
};

static zfed_rounding_rc_t s_round_int(bool neg, zfed_u128 q, bool sticky, int64_t exp2,
                                      zfed_dtype_t dtype, uint64_t *bits)
{
    int width = (int)zfed_dtype_size(dtype) * 8;
    zfed_u128 r;
    if (exp2 >= 0) {
        if (q != 0 && zfed_u128_msb(q) + exp2 >= 64)
            return ZFED_ROUNDING_RANGE;
        r = q == 0 ? 0 : q << exp2; //  exp2 < 64 here when q != 0
    } else {
        r = zfed_rounding_shift(q, sticky, -exp2);
    }
    //  Largest magnitude: 2^(w-1) - 1 above zero and 2^(w-1) below for
    //  signed types, 2^w - 1 and 0 for unsigned ones.
    zfed_u128 limit;
    if (zfed_dtype_is_signed(dtype))
        limit = ((zfed_u128)1 << (width - 1)) - (neg ? 0 : 1);
    else
        limit = neg ? 0 : ((zfed_u128)1 << width) - 1;
    if (r > limit)
        return ZFED_ROUNDING_RANGE;
    uint64_t magnitude = (uint64_t)r;
    uint64_t value = neg ? (uint64_t)0 - magnitude : magnitude;
    *bits = width == 64 ? value : value & ((1ULL << width) - 1);
    return ZFED_ROUNDING_OK;
}

zfed_rounding_rc_t zfed_rounding_bits(bool neg, zfed_u128 q, bool sticky, int64_t exp2,
                                      zfed_dtype_t dtype, uint64_t *bits)
{
    if (zfed_dtype_is_float(dtype))
        return zfed_rounding_float(neg, q, sticky, exp2, &zfed_rounding_formats[dtype], bits);
    return s_round_int(neg, q, sticky, exp2, dtype, bits);
}

void zfed_rounding_store(zfed_dtype_t dtype, void *out, size_t index, uint64_t bits)
{
    size_t size = zfed_dtype_size(dtype);
    //  Little-endian host: the low bytes of bits are the element.
    memcpy((uint8_t *)out + index * size, &bits, size);
}

void zfed_rounding_split_f64(double value, bool *neg, uint64_t *mantissa, int64_t *exp2)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    *neg = bits >> 63;
    uint64_t biased = (bits >> 52) & 0x7ff;
    uint64_t fraction = bits & ((1ULL << 52) - 1);
    *mantissa = biased ? fraction | (1ULL << 52) : fraction;
    *exp2 = (int64_t)(biased ? biased : 1) - 1075;
}
