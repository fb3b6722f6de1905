/*  zfed_round - one correct rounding of an exact binary value.  */
#include "model/zfed_round.h"

#include <string.h>

//  A binary floating-point format: precision p (significand bits with the
//  implicit one), the exponents of the smallest and largest normal values,
//  and the width.  The bias is emax.
typedef struct {
    int precision;
    int emin;
    int emax;
    int width;
} s_format_t;

static const s_format_t s_formats[] = {
    [ZFED_DTYPE_F64] = {53, -1022, 1023, 64},
    [ZFED_DTYPE_F32] = {24, -126, 127, 32},
    [ZFED_DTYPE_F16] = {11, -14, 15, 16},
    [ZFED_DTYPE_BF16] = {8, -126, 127, 16},
};

//  q >> shift rounded to nearest, ties to even, with sticky standing for
//  nonzero bits below q.  0 < shift; a shift past the top bit gives 0 or
//  1 as the rounding says.
static zfed_u128 s_shift_round(zfed_u128 q, bool sticky, int64_t shift)
{
    if (shift > 128)
        return 0; //  below half of the last unit
    zfed_u128 kept = shift == 128 ? 0 : q >> shift;
    zfed_u128 half = (zfed_u128)1 << (shift - 1);
    bool above_half = (q & half) != 0;
    bool rest = (q & (half - 1)) != 0 || sticky;
    if (above_half && (rest || (kept & 1)))
        kept++;
    return kept;
}

static zfed_round_rc_t s_round_float(bool neg, zfed_u128 q, bool sticky, int64_t exp2,
                                     const s_format_t *format, uint64_t *bits)
{
    uint64_t sign = (uint64_t)neg << (format->width - 1);
    if (q == 0 && !sticky) {
        *bits = 0; //  an exact zero is +0
        return ZFED_ROUND_OK;
    }
    int p = format->precision;
    int64_t leading = zfed_u128_msb(q) + exp2;
    //  Exponent of the result's last unit: p - 1 below the leading bit,
    //  but never below that of the subnormals.
    int64_t lsb = leading - (p - 1);
    if (lsb < format->emin - (p - 1))
        lsb = format->emin - (p - 1);
    int64_t shift = lsb - exp2;
    zfed_u128 r = shift <= 0 ? q << -shift : s_shift_round(q, sticky, shift);
    if (r == (zfed_u128)1 << p) { //  rounding carried into a new bit
        r >>= 1;
        lsb++;
    }
    if (r == 0) {
        *bits = sign; //  too small: a zero of the value's sign
        return ZFED_ROUND_OK;
    }
    uint64_t significand = (uint64_t)r;
    if (significand < (1ULL << (p - 1))) { //  subnormal: lsb is the smallest
        *bits = sign | significand;
        return ZFED_ROUND_OK;
    }
    int64_t exponent = lsb + (p - 1);
    if (exponent > format->emax)
        return ZFED_ROUND_RANGE;
    uint64_t biased = (uint64_t)(exponent + format->emax);
    *bits = sign | (biased << (p - 1)) | (significand - (1ULL << (p - 1)));
    return ZFED_ROUND_OK;
}

static zfed_round_rc_t s_round_int(bool neg, zfed_u128 q, bool sticky, int64_t exp2,
                                   zfed_dtype_t dtype, uint64_t *bits)
{
    int width = (int)zfed_dtype_size(dtype) * 8;
    zfed_u128 r;
    if (exp2 >= 0) {
        if (q != 0 && zfed_u128_msb(q) + exp2 >= 64)
            return ZFED_ROUND_RANGE;
        r = q == 0 ? 0 : q << exp2; //  exp2 < 64 here when q != 0
    } else {
        r = s_shift_round(q, sticky, -exp2);
    }
    //  Largest magnitude: 2^(w-1) - 1 above zero and 2^(w-1) below for
    //  signed types, 2^w - 1 and 0 for unsigned ones.
    zfed_u128 limit;
    if (zfed_dtype_is_signed(dtype))
        limit = ((zfed_u128)1 << (width - 1)) - (neg ? 0 : 1);
    else
        limit = neg ? 0 : ((zfed_u128)1 << width) - 1;
    if (r > limit)
        return ZFED_ROUND_RANGE;
    uint64_t magnitude = (uint64_t)r;
    uint64_t value = neg ? (uint64_t)0 - magnitude : magnitude;
    *bits = width == 64 ? value : value & ((1ULL << width) - 1);
    return ZFED_ROUND_OK;
}

zfed_round_rc_t zfed_round_bits(bool neg, zfed_u128 q, bool sticky, int64_t exp2,
                                zfed_dtype_t dtype, uint64_t *bits)
{
    if (zfed_dtype_is_float(dtype))
        return s_round_float(neg, q, sticky, exp2, &s_formats[dtype], bits);
    return s_round_int(neg, q, sticky, exp2, dtype, bits);
}

void zfed_round_store(zfed_dtype_t dtype, void *out, size_t index, uint64_t bits)
{
    size_t size = zfed_dtype_size(dtype);
    //  Little-endian host: the low bytes of bits are the element.
    memcpy((uint8_t *)out + index * size, &bits, size);
}

void zfed_round_split_f64(double value, bool *neg, uint64_t *mantissa, int64_t *exp2)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    *neg = bits >> 63;
    uint64_t biased = (bits >> 52) & 0x7ff;
    uint64_t fraction = bits & ((1ULL << 52) - 1);
    *mantissa = biased ? fraction | (1ULL << 52) : fraction;
    *exp2 = (int64_t)(biased ? biased : 1) - 1075;
}
