/*  zfed_test_model - what the model tests share: a seeded generator, and
    an exact reference written independently of lib/model (GMP rationals,
    rounding by comparison with one half), so a test compares two
    different methods rather than one method with itself.
*/
#ifndef ZFED_TEST_MODEL_H_INCLUDED
#define ZFED_TEST_MODEL_H_INCLUDED

#include "zfed/zfed_model.h"

#include <stdio.h>
#include <gmp.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

//  splitmix64: small, seeded, the same on every machine.
static inline uint64_t zfed_test_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

//  Uniform in [0, 1).
static inline double zfed_test_uniform(uint64_t *state)
{
    return (double)(zfed_test_random(state) >> 11) * 0x1p-53;
}

//  Normal with mean 0 and standard deviation sigma (Box-Muller).
static inline double zfed_test_normal(uint64_t *state, double sigma)
{
    double u = zfed_test_uniform(state), v = zfed_test_uniform(state);
    return sigma * sqrt(-2.0 * log(u + 0x1p-60)) * cos(6.283185307179586 * v);
}

//  Element index of data as an exact rational.
static inline void zfed_test_value_mpq(mpq_t out, zfed_dtype_t dtype, const void *data,
                                       size_t index)
{
    size_t size = zfed_dtype_size(dtype);
    uint64_t bits = 0;
    memcpy(&bits, (const uint8_t *)data + index * size, size);
    if (zfed_dtype_is_float(dtype)) {
        mpq_set_d(out, zfed_dtype_get_f64(dtype, data, index)); //  exact: all are doubles
        return;
    }
    mpz_t integer;
    mpz_init(integer);
    if (zfed_dtype_is_signed(dtype)) {
        int shift = 64 - 8 * (int)size;
        int64_t value = (int64_t)(bits << shift) >> shift;
        mpz_set_si(integer, value);
    } else {
        mpz_set_ui(integer, bits);
    }
    mpq_set_z(out, integer);
    mpz_clear(integer);
}

//  floor(log2 |value|) for value != 0.
static inline long zfed_test_log2(const mpq_t value)
{
    long guess =
        (long)mpz_sizeinbase(mpq_numref(value), 2) - (long)mpz_sizeinbase(mpq_denref(value), 2);
    mpq_t absolute, power;
    mpq_inits(absolute, power, NULL);
    mpq_abs(absolute, value);
    for (;;) { //  settle guess so that 2^guess <= |value| < 2^(guess + 1)
        mpq_set_ui(power, 1, 1);
        if (guess >= 0)
            mpq_mul_2exp(power, power, (mp_bitcnt_t)guess);
        else
            mpq_div_2exp(power, power, (mp_bitcnt_t)-guess);
        if (mpq_cmp(power, absolute) > 0) {
            guess--;
            continue;
        }
        mpq_mul_2exp(power, power, 1);
        if (mpq_cmp(power, absolute) <= 0) {
            guess++;
            continue;
        }
        break;
    }
    mpq_clears(absolute, power, NULL);
    return guess;
}

//  |value| / 2^unit rounded to an integer, half to even.
static inline void zfed_test_round_scaled(mpz_t out, const mpq_t value, long unit)
{
    mpq_t scaled, fraction, half;
    mpq_inits(scaled, fraction, half, NULL);
    mpq_abs(scaled, value);
    if (unit >= 0)
        mpq_div_2exp(scaled, scaled, (mp_bitcnt_t)unit);
    else
        mpq_mul_2exp(scaled, scaled, (mp_bitcnt_t)-unit);
    mpz_fdiv_q(out, mpq_numref(scaled), mpq_denref(scaled));
    mpq_set_z(fraction, out);
    mpq_sub(fraction, scaled, fraction);
    mpq_set_ui(half, 1, 2);
    int against = mpq_cmp(fraction, half);
    if (against > 0 || (against == 0 && mpz_odd_p(out)))
        mpz_add_ui(out, out, 1);
    mpq_clears(scaled, fraction, half, NULL);
}

//  The correctly rounded value of an exact rational in a float dtype, as
//  a double (every F16, BF16 and F32 value is one).  -1 beyond the
//  largest finite value.
static inline int zfed_test_reference_float(const mpq_t value, zfed_dtype_t dtype, double *out)
{
    int precision, emin, emax;
    switch (dtype) {
    case ZFED_DTYPE_F64:
        precision = 53, emin = -1022, emax = 1023;
        break;
    case ZFED_DTYPE_F32:
        precision = 24, emin = -126, emax = 127;
        break;
    case ZFED_DTYPE_F16:
        precision = 11, emin = -14, emax = 15;
        break;
    default:
        precision = 8, emin = -126, emax = 127;
        break;
    }
    if (mpq_sgn(value) == 0) {
        *out = 0.0;
        return 0;
    }
    long unit = zfed_test_log2(value) - (precision - 1);
    if (unit < emin - (precision - 1))
        unit = emin - (precision - 1);
    mpz_t rounded;
    mpz_init(rounded);
    zfed_test_round_scaled(rounded, value, unit);
    int rc = 0;
    if (mpz_sizeinbase(rounded, 2) > (size_t)precision) { //  carried to 2^precision
        mpz_fdiv_q_2exp(rounded, rounded, 1);
        unit++;
    }
    if (mpz_sgn(rounded) != 0 && (long)mpz_sizeinbase(rounded, 2) - 1 + unit > emax)
        rc = -1;
    //  r * 2^unit is exact in a double for every format here.
    double magnitude = ldexp(mpz_get_d(rounded), (int)unit);
    *out = mpq_sgn(value) < 0 ? -magnitude : magnitude;
    mpz_clear(rounded);
    return rc;
}

//  The same for an integer dtype: half to even, -1 out of range.
static inline int zfed_test_reference_int(const mpq_t value, zfed_dtype_t dtype, mpz_t out)
{
    zfed_test_round_scaled(out, value, 0);
    if (mpq_sgn(value) < 0)
        mpz_neg(out, out);
    int bits = 8 * (int)zfed_dtype_size(dtype);
    mpz_t low, high;
    mpz_inits(low, high, NULL);
    if (zfed_dtype_is_signed(dtype)) {
        mpz_ui_pow_ui(high, 2, (unsigned long)bits - 1);
        mpz_neg(low, high);
        mpz_sub_ui(high, high, 1);
    } else {
        mpz_set_ui(low, 0);
        mpz_ui_pow_ui(high, 2, (unsigned long)bits);
        mpz_sub_ui(high, high, 1);
    }
    int rc = mpz_cmp(out, low) < 0 || mpz_cmp(out, high) > 0 ? -1 : 0;
    mpz_clears(low, high, NULL);
    return rc;
}

//  True when element index of out (dtype) is the correctly rounded value,
//  bit for bit (the sign of zero included).  Prints the difference.
static inline bool zfed_test_matches(const mpq_t value, zfed_dtype_t dtype, const void *out,
                                     size_t index)
{
    if (zfed_dtype_is_float(dtype)) {
        double expected, got = zfed_dtype_get_f64(dtype, out, index);
        if (zfed_test_reference_float(value, dtype, &expected) != 0) {
            fprintf(stderr, "element %zu: reference overflows %s, got %.17g\n", index,
                    zfed_dtype_name(dtype), got);
            return false;
        }
        if (memcmp(&expected, &got, sizeof got) != 0) {
            fprintf(stderr, "element %zu (%s): expected %a, got %a (exact %g)\n", index,
                    zfed_dtype_name(dtype), expected, got, mpq_get_d(value));
            return false;
        }
        return true;
    }
    mpz_t expected, got;
    mpz_inits(expected, got, NULL);
    mpq_t as_rational;
    mpq_init(as_rational);
    zfed_test_value_mpq(as_rational, dtype, out, index);
    mpz_set(got, mpq_numref(as_rational));
    bool ok = zfed_test_reference_int(value, dtype, expected) == 0 && mpz_cmp(expected, got) == 0;
    if (!ok)
        gmp_fprintf(stderr, "element %zu (%s): expected %Zd, got %Zd\n", index,
                    zfed_dtype_name(dtype), expected, got);
    mpq_clear(as_rational);
    mpz_clears(expected, got, NULL);
    return ok;
}

#endif
