/*  zfed_round - rounding an exact binary value once into a dtype (private).

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
#ifndef ZFED_ROUND_H_INCLUDED
#define ZFED_ROUND_H_INCLUDED

#include "zfed/zfed_model.h"

#include <stdbool.h>
#include <stdint.h>

typedef unsigned __int128 zfed_u128;

typedef enum {
    ZFED_ROUND_OK = 0,
    ZFED_ROUND_RANGE = -1, //  beyond the largest finite float, or out of an integer's range
} zfed_round_rc_t;

//  Writes the rounded value's bits (the low zfed_dtype_size(dtype) * 8
//  bits of *bits).  An exact zero (q == 0, !sticky) is +0; a nonzero value
//  too small for the dtype rounds to a zero of its sign.
zfed_round_rc_t zfed_round_bits(bool neg, zfed_u128 q, bool sticky, int64_t exp2,
                                zfed_dtype_t dtype, uint64_t *bits);

//  Stores the low bytes of bits as one element of dtype at out[index].
void zfed_round_store(zfed_dtype_t dtype, void *out, size_t index, uint64_t bits);

//  Index of the highest set bit of q (q != 0).
static inline int zfed_u128_msb(zfed_u128 q)
{
    uint64_t high = (uint64_t)(q >> 64);
    return high ? 127 - __builtin_clzll(high) : 63 - __builtin_clzll((uint64_t)q);
}

//  Decomposes a finite, nonzero double into sign, integer mantissa and
//  exponent: value = (-1)^neg * mantissa * 2^exp2.
void zfed_round_split_f64(double value, bool *neg, uint64_t *mantissa, int64_t *exp2);

#endif
