/*  zfed_rounding - rounding an exact binary value once into a dtype (private).

    The value is (-1)^neg * (q + f) * 2^exp2, where q is an unsigned
    128-bit integer and f a fraction in [0, 1) known only by whether it is
    zero (sticky false) or not (sticky true).  The result is that value
    rounded to nearest, ties to even, in the dtype: the one rounding every
    exact computation of lib/model ends with (the exact accumulator, the
    median of two middle values, narrowing conversions).

    Precondition: when sticky is true, q carries the digits the rounding
    looks at.  For a float dtype q >= 2^(precision + 1); for an integer
    dtype exp2 <= -1.  Callers divide with enough quotient bits for that.
*/
#ifndef ZFED_ROUNDING_H_INCLUDED
#define ZFED_ROUNDING_H_INCLUDED

#include "zfed/zfed_model.h"

#include <stdbool.h>
#include <stdint.h>

typedef unsigned __int128 zfed_u128;

typedef enum {
    ZFED_ROUNDING_OK = 0,
    ZFED_ROUNDING_RANGE = -1, //  beyond the largest finite float, or out of an integer's range
} zfed_rounding_rc_t;

//  Writes the rounded value's bits (the low zfed_dtype_size(dtype) * 8
//  bits of *bits).  An exact zero (q == 0, !sticky) is +0; a nonzero value
//  too small for the dtype rounds to a zero of its sign.
zfed_rounding_rc_t zfed_rounding_bits(bool neg, zfed_u128 q, bool sticky, int64_t exp2,
                                      zfed_dtype_t dtype, uint64_t *bits);

//  Stores the low bytes of bits as one element of dtype at out[index].
void zfed_rounding_store(zfed_dtype_t dtype, void *out, size_t index, uint64_t bits);

//  Index of the highest set bit of q (q != 0).
static inline int zfed_u128_msb(zfed_u128 q)
{
    uint64_t high = (uint64_t)(q >> 64);
    return high ? 127 - __builtin_clzll(high) : 63 - __builtin_clzll((uint64_t)q);
}

//  A binary floating-point format: precision p (significand bits with the
//  implicit one), the exponents of the smallest and largest normal values,
//  and the width.  The bias is emax.
typedef struct {
    int precision;
    int emin;
    int emax;
    int width;
} zfed_rounding_format_t;

//  The four formats, as initialisers (constants for loops over one dtype),
//  and indexed by the float dtypes.
#define ZFED_ROUNDING_FORMAT_F64                                                                   \
    {                                                                                              \
        53, -1022, 1023, 64                                                                        \
    }
#define ZFED_ROUNDING_FORMAT_F32                                                                   \
    {                                                                                              \
        24, -126, 127, 32                                                                          \
    }
#define ZFED_ROUNDING_FORMAT_F16                                                                   \
    {                                                                                              \
        11, -14, 15, 16                                                                            \
    }
#define ZFED_ROUNDING_FORMAT_BF16                                                                  \
    {                                                                                              \
        8, -126, 127, 16                                                                           \
    }
extern const zfed_rounding_format_t zfed_rounding_formats[];

//  q >> shift rounded to nearest, ties to even, with sticky standing for
//  nonzero bits below q.  0 < shift; a shift past the top bit gives 0 or
//  1 as the rounding says.
static inline zfed_u128 zfed_rounding_shift(zfed_u128 q, bool sticky, int64_t shift)
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

//  zfed_rounding_bits for a float format, inline for loops over one dtype.
static inline zfed_rounding_rc_t zfed_rounding_float(bool neg, zfed_u128 q, bool sticky,
                                                     int64_t exp2,
                                                     const zfed_rounding_format_t *format,
                                                     uint64_t *bits)
{
    uint64_t sign = (uint64_t)neg << (format->width - 1);
    if (q == 0 && !sticky) {
        *bits = 0; //  an exact zero is +0
        return ZFED_ROUNDING_OK;
    }
    int p = format->precision;
    int64_t leading = zfed_u128_msb(q) + exp2;
    //  Exponent of the result's last unit: p - 1 below the leading bit,
    //  but never below that of the subnormals.
    int64_t lsb = leading - (p - 1);
    if (lsb < format->emin - (p - 1))
        lsb = format->emin - (p - 1);
    int64_t shift = lsb - exp2;
    zfed_u128 r = shift <= 0 ? q << -shift : zfed_rounding_shift(q, sticky, shift);
    if (r == (zfed_u128)1 << p) { //  rounding carried into a new bit
        r >>= 1;
        lsb++;
    }
    if (r == 0) {
        *bits = sign; //  too small: a zero of the value's sign
        return ZFED_ROUNDING_OK;
    }
    uint64_t significand = (uint64_t)r;
    if (significand < (1ULL << (p - 1))) { //  subnormal: lsb is the smallest
        *bits = sign | significand;
        return ZFED_ROUNDING_OK;
    }
    int64_t exponent = lsb + (p - 1);
    if (exponent > format->emax)
        return ZFED_ROUNDING_RANGE;
    uint64_t biased = (uint64_t)(exponent + format->emax);
    *bits = sign | (biased << (p - 1)) | (significand - (1ULL << (p - 1)));
    return ZFED_ROUNDING_OK;
}

//  Decomposes a finite, nonzero double into sign, integer mantissa and
//  exponent: value = (-1)^neg * mantissa * 2^exp2.
void zfed_rounding_split_f64(double value, bool *neg, uint64_t *mantissa, int64_t *exp2);

#endif
