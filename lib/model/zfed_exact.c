/*  zfed_exact - the exact accumulator (method and costs in zfed_exact.h).

    Element i is M * 2^E.  M lives in lo[i] (narrow) or hi[i]:lo[i]
    (wide, 128 bits).  E is stored as the int16 code[i] = EXP_EMPTY - E,
    so that calloc'ed memory means "empty" (code 0, E larger than any
    real exponent, M = 0) and the smallest exponent is the largest code.
    A negative code marks an element that moved to the side table; lo[i]
    is then its index there.

    The invariant of the fast representation: |M| <= 2^62 (narrow) or
    2^126 (wide).  A fold adds (M << s1) + (term << s2) when each shifted
    part is at most 2^61 (2^125), so the sum keeps the invariant and never
    overflows.
*/
#include "zfed/zfed_exact.h"
#include "model/zfed_rounding.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gmp.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_KERNEL 1
#include <cpuid.h>
#include <immintrin.h>
#endif

//  Exponent codes: code = EXP_EMPTY - E.  Real exponents lie in
//  [-1074 - 127, 971 + 127] (F64's range, plus trailing zeros of a 128-bit
//  term), so codes of real elements are in [1, 3300], far from both ends.
#define EXP_EMPTY    2048
#define CODE_SPILLED (-1)

//  Bounds of each shifted part of a sum (see the file comment).
#define NARROW_PART_BITS 61
#define WIDE_PART_BITS   125

//  Widen once more than count / WIDEN_FRACTION elements (and at least
//  WIDEN_MIN) have spilled.
#define WIDEN_FRACTION 64
#define WIDEN_MIN      1024

#define POISON_SIZE 200

typedef __int128 s_i128;

typedef struct {
    mpz_t mantissa;
    int64_t exp;
} s_big_t;

struct _zfed_exact_t {
    uint64_t count;
    int64_t *lo;
    int64_t *hi; //  NULL while narrow
    int16_t *code;
    s_big_t *big;
    size_t big_count;
    size_t big_capacity;
    uint64_t widen_at; //  spilled elements past which we widen
    mpz_t term;        //  scratch for side-table arithmetic
    mpz_t scratch;
    mpz_t wide;
    bool poisoned;
    char poison[POISON_SIZE];
};

static bool s_simd_enabled = true;

void zfed_exact_set_simd(bool enabled)
{
    s_simd_enabled = enabled;
}

bool zfed_exact_simd(void)
{
#ifdef HAVE_AVX2_KERNEL
    //  F16C is CPUID leaf 1, ECX bit 29 (not every compiler's
    //  __builtin_cpu_supports knows its name).
    static int f16c = -1;
    if (f16c < 0) {
        unsigned int eax, ebx, ecx, edx;
        f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
    }
    return s_simd_enabled && f16c && __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}

zfed_exact_t *zfed_exact_new(uint64_t count)
{
    if (count > ZFED_EXACT_COUNT_MAX || count > SIZE_MAX / sizeof(int64_t))
        return NULL;
    zfed_exact_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->count = count;
    self->widen_at = count / WIDEN_FRACTION < WIDEN_MIN ? WIDEN_MIN : count / WIDEN_FRACTION;
    size_t slots = count ? (size_t)count : 1;
    self->lo = calloc(slots, sizeof *self->lo);
    self->code = calloc(slots, sizeof *self->code);
    if (!self->lo || !self->code) {
        free(self->lo);
        free(self->code);
        free(self);
        return NULL;
    }
    mpz_init(self->term);
    mpz_init(self->scratch);
    mpz_init(self->wide);
    return self;
}

static void s_clear_big(zfed_exact_t *self)
{
    for (size_t index = 0; index < self->big_count; index++)
        mpz_clear(self->big[index].mantissa);
    free(self->big);
    self->big = NULL;
    self->big_count = self->big_capacity = 0;
}

void zfed_exact_destroy(zfed_exact_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_exact_t *self = *self_p;
    s_clear_big(self);
    mpz_clear(self->term);
    mpz_clear(self->scratch);
    mpz_clear(self->wide);
    free(self->lo);
    free(self->hi);
    free(self->code);
    free(self);
    *self_p = NULL;
}

void zfed_exact_reset(zfed_exact_t *self)
{
    s_clear_big(self);
    free(self->hi);
    self->hi = NULL;
    memset(self->lo, 0, self->count * sizeof *self->lo);
    memset(self->code, 0, self->count * sizeof *self->code);
    self->poisoned = false;
}

uint64_t zfed_exact_count(const zfed_exact_t *self)
{
    return self->count;
}

void zfed_exact_stats(const zfed_exact_t *self, zfed_exact_stats_t *stats)
{
    stats->spilled = self->big_count;
    stats->wide = self->hi != NULL;
    uint64_t per_element =
        sizeof *self->lo + sizeof *self->code + (self->hi ? sizeof *self->hi : 0);
    uint64_t big_bytes = self->big_capacity * sizeof *self->big;
    for (size_t index = 0; index < self->big_count; index++)
        big_bytes += (uint64_t)self->big[index].mantissa->_mp_alloc * sizeof(mp_limb_t);
    stats->bytes = sizeof *self + self->count * per_element + big_bytes;
}

// --------------------------------------------------------------------------
//  The side table

static void s_mpz_set_u128(mpz_t out, zfed_u128 value)
{
    mpz_set_ui(out, (unsigned long)(value >> 64));
    mpz_mul_2exp(out, out, 64);
    mpz_add_ui(out, out, (unsigned long)(uint64_t)value);
}

static void s_mpz_set_i128(mpz_t out, s_i128 value)
{
    s_mpz_set_u128(out, value < 0 ? -(zfed_u128)value : (zfed_u128)value);
    if (value < 0)
        mpz_neg(out, out);
}

//  big += (-1)^neg * magnitude * 2^exp, exactly.
static void s_big_add(zfed_exact_t *self, s_big_t *big, bool neg, zfed_u128 magnitude, int64_t exp)
{
    s_mpz_set_u128(self->term, magnitude);
    if (neg)
        mpz_neg(self->term, self->term);
    if (mpz_sgn(big->mantissa) == 0) {
        mpz_swap(big->mantissa, self->term);
        big->exp = exp;
        return;
    }
    if (exp >= big->exp) {
        mpz_mul_2exp(self->term, self->term, (mp_bitcnt_t)(exp - big->exp));
    } else {
        mpz_mul_2exp(big->mantissa, big->mantissa, (mp_bitcnt_t)(big->exp - exp));
        big->exp = exp;
    }
    mpz_add(big->mantissa, big->mantissa, self->term);
}

//  128-bit mantissas for every element that has not spilled.
static int s_widen(zfed_exact_t *self)
{
    int64_t *hi = malloc((self->count ? self->count : 1) * sizeof *hi);
    if (!hi)
        return -1;
    for (uint64_t index = 0; index < self->count; index++)
        hi[index] = self->code[index] < 0 ? 0 : self->lo[index] >> 63;
    self->hi = hi;
    return 0;
}

//  Moves element index to the side table.  0, or -1 when memory runs out.
static int s_spill(zfed_exact_t *self, uint64_t index)
{
    if (self->big_count == self->big_capacity) {
        size_t capacity = self->big_capacity ? self->big_capacity * 2 : 64;
        s_big_t *big = realloc(self->big, capacity * sizeof *big);
        if (!big)
            return -1;
        self->big = big;
        self->big_capacity = capacity;
    }
    s_big_t *big = &self->big[self->big_count];
    mpz_init(big->mantissa);
    s_i128 mantissa =
        self->hi
            ? (s_i128)(((zfed_u128)(uint64_t)self->hi[index] << 64) | (uint64_t)self->lo[index])
            : (s_i128)self->lo[index];
    s_mpz_set_i128(big->mantissa, mantissa);
    big->exp = (int64_t)EXP_EMPTY - self->code[index];
    self->lo[index] = (int64_t)self->big_count;
    self->code[index] = CODE_SPILLED;
    self->big_count++;
    //  Data that does not fit 64 bits is seldom one element's quirk:
    //  widen now, before the rest of it spills too.  (If memory runs out
    //  we stay narrow and keep spilling, which is exact, only costlier.)
    if (!self->hi && self->big_count > self->widen_at)
        s_widen(self);
    return 0;
}

// --------------------------------------------------------------------------
//  Adding one term

static uint64_t s_abs64(int64_t value)
{
    return value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
}

//  element += (-1)^neg * magnitude * 2^exp.  0, or -1 out of memory.
__attribute__((noinline)) static int s_add(zfed_exact_t *self, uint64_t index, bool neg,
                                           zfed_u128 magnitude, int64_t exp)
{
    if (magnitude == 0)
        return 0;
    //  Trailing zeros belong in the exponent: round numbers (integers,
    //  F16 values in F32) then align with everything.
    int zeros = (uint64_t)magnitude ? __builtin_ctzll((uint64_t)magnitude)
                                    : 64 + __builtin_ctzll((uint64_t)(magnitude >> 64));
    magnitude >>= zeros;
    exp += zeros;
    int16_t code = self->code[index];
    if (code < 0) {
        s_big_add(self, &self->big[self->lo[index]], neg, magnitude, exp);
        return 0;
    }
    int64_t element_exp = (int64_t)EXP_EMPTY - code;
    if (!self->hi) {
        int64_t mantissa = self->lo[index];
        int64_t new_exp = mantissa == 0 || exp < element_exp ? exp : element_exp;
        int64_t s1 = mantissa == 0 ? 0 : element_exp - new_exp;
        int64_t s2 = exp - new_exp;
        const uint64_t limit = 1ULL << NARROW_PART_BITS;
        if (s1 <= NARROW_PART_BITS && s2 <= NARROW_PART_BITS && s_abs64(mantissa) <= limit >> s1 &&
            magnitude <= limit >> s2) {
            int64_t term = (int64_t)((uint64_t)magnitude << s2);
            self->lo[index] = (int64_t)((uint64_t)mantissa << s1) + (neg ? -term : term);
            self->code[index] = (int16_t)(EXP_EMPTY - new_exp);
            return 0;
        }
    } else {
        s_i128 mantissa =
            (s_i128)(((zfed_u128)(uint64_t)self->hi[index] << 64) | (uint64_t)self->lo[index]);
        int64_t new_exp = mantissa == 0 || exp < element_exp ? exp : element_exp;
        int64_t s1 = mantissa == 0 ? 0 : element_exp - new_exp;
        int64_t s2 = exp - new_exp;
        const zfed_u128 limit = (zfed_u128)1 << WIDE_PART_BITS;
        zfed_u128 absolute = mantissa < 0 ? -(zfed_u128)mantissa : (zfed_u128)mantissa;
        if (s1 <= WIDE_PART_BITS && s2 <= WIDE_PART_BITS && absolute <= limit >> s1 &&
            magnitude <= limit >> s2) {
            s_i128 term = (s_i128)(magnitude << s2);
            s_i128 sum = (s_i128)((zfed_u128)mantissa << s1) + (neg ? -term : term);
            self->lo[index] = (int64_t)(uint64_t)sum;
            self->hi[index] = (int64_t)(uint64_t)((zfed_u128)sum >> 64);
            self->code[index] = (int16_t)(EXP_EMPTY - new_exp);
            return 0;
        }
    }
    if (s_spill(self, index) != 0)
        return -1;
    s_big_add(self, &self->big[self->lo[index]], neg, magnitude, exp);
    return 0;
}

// --------------------------------------------------------------------------
//  Terms of each dtype: x = (-1)^neg * mantissa * 2^exp

typedef struct {
    bool neg;
    bool finite;
    uint64_t mantissa;
    int64_t exp;
} s_value_t;

//  A binary float of fraction_bits explicit fraction bits and bias.
static inline s_value_t s_float(uint64_t bits, int width, int fraction_bits, int bias)
{
    s_value_t value;
    uint64_t all_ones = (1ULL << (width - 1 - fraction_bits)) - 1;
    uint64_t biased = (bits >> fraction_bits) & all_ones;
    uint64_t fraction = bits & ((1ULL << fraction_bits) - 1);
    value.neg = (bits >> (width - 1)) & 1;
    value.finite = biased != all_ones;
    value.mantissa = biased ? fraction | (1ULL << fraction_bits) : fraction;
    value.exp = (int64_t)(biased ? biased : 1) - bias - fraction_bits;
    return value;
}

static s_value_t s_integer(int64_t signed_value)
{
    s_value_t value = {signed_value < 0, true, s_abs64(signed_value), 0};
    return value;
}

static s_value_t s_unsigned(uint64_t unsigned_value)
{
    s_value_t value = {false, true, unsigned_value, 0};
    return value;
}

static void s_poison(zfed_exact_t *self, char *error, size_t error_size, const char *format,
                     uint64_t index, const char *what)
{
    self->poisoned = true;
    snprintf(self->poison, sizeof self->poison, format, index, what);
    snprintf(error, error_size, "%s", self->poison);
}

//  The common case of s_add, inline: a narrow element that is not in the
//  side table, and a term and sum that fit without normalising.
static inline int s_add_fast(zfed_exact_t *self, uint64_t index, bool neg, zfed_u128 magnitude,
                             int64_t exp)
{
    int16_t code = self->code[index];
    if (code < 0)
        return s_add(self, index, neg, magnitude, exp);
    int64_t element_exp = (int64_t)EXP_EMPTY - code;
    if (!self->hi) {
        const uint64_t limit = 1ULL << NARROW_PART_BITS;
        int64_t mantissa = self->lo[index];
        int64_t new_exp = mantissa == 0 || exp < element_exp ? exp : element_exp;
        int64_t s1 = mantissa == 0 ? 0 : element_exp - new_exp;
        int64_t s2 = exp - new_exp;
        if (magnitude <= limit && s1 <= NARROW_PART_BITS && s2 <= NARROW_PART_BITS &&
            s_abs64(mantissa) <= limit >> s1 && (uint64_t)magnitude <= limit >> s2) {
            int64_t term = (int64_t)((uint64_t)magnitude << s2);
            self->lo[index] = (int64_t)((uint64_t)mantissa << s1) + (neg ? -term : term);
            self->code[index] = (int16_t)(EXP_EMPTY - new_exp);
            return 0;
        }
        return s_add(self, index, neg, magnitude, exp);
    }
    //  Wide: the same in 128 bits (the absolute value by masks: a select
    //  of two 128-bit values costs GCC a trip through the stack).
    const zfed_u128 limit = (zfed_u128)1 << WIDE_PART_BITS;
    int64_t high = self->hi[index];
    zfed_u128 bits = ((zfed_u128)(uint64_t)high << 64) | (uint64_t)self->lo[index];
    s_i128 mantissa = (s_i128)bits;
    zfed_u128 sign = (zfed_u128)(s_i128)(high >> 63);
    zfed_u128 absolute = (bits ^ sign) - sign;
    int64_t new_exp = bits == 0 || exp < element_exp ? exp : element_exp;
    int64_t s1 = bits == 0 ? 0 : element_exp - new_exp;
    int64_t s2 = exp - new_exp;
    if (s1 <= WIDE_PART_BITS && s2 <= WIDE_PART_BITS && absolute <= limit >> s1 &&
        magnitude <= limit >> s2) {
        s_i128 term = (s_i128)(magnitude << s2);
        s_i128 sum = (s_i128)((zfed_u128)mantissa << s1) + (neg ? -term : term);
        self->lo[index] = (int64_t)(uint64_t)sum;
        self->hi[index] = (int64_t)(uint64_t)((zfed_u128)sum >> 64);
        self->code[index] = (int16_t)(EXP_EMPTY - new_exp);
        return 0;
    }
    return s_add(self, index, neg, magnitude, exp);
}

//  Folds n elements one at a time, any weight, any mode: DECODE turns one
//  element (read as type) into an s_value_t.
#define FOLD_SCALAR_LOOP(type, DECODE)                                                             \
    for (uint64_t at = 0; at < n; at++) {                                                          \
        type raw;                                                                                  \
        memcpy(&raw, data + at * sizeof raw, sizeof raw);                                          \
        s_value_t value = DECODE;                                                                  \
        if (!value.finite)                                                                         \
            return s_not_finite(self, first + at, value, error, error_size);                       \
        if (s_add_fast(self, first + at, value.neg, (zfed_u128)value.mantissa * weight,            \
                       value.exp) != 0) {                                                          \
            snprintf(error, error_size, "out of memory");                                          \
            return -1;                                                                             \
        }                                                                                          \
    }

static int s_not_finite(zfed_exact_t *self, uint64_t index, s_value_t value, char *error,
                        size_t error_size)
{
    bool nan = value.mantissa & (value.mantissa - 1); //  more than the implicit bit
    s_poison(self, error, error_size,
             "element %" PRIu64 ": %s cannot be summed (the accumulator is now unusable)", index,
             nan         ? "NaN"
             : value.neg ? "-Inf"
                         : "+Inf");
    return -1;
}

static int s_fold_scalar(zfed_exact_t *self, uint64_t first, const uint8_t *data,
                         zfed_dtype_t dtype, uint64_t n, uint64_t weight, char *error,
                         size_t error_size)
{
    switch (dtype) {
    case ZFED_DTYPE_F64:
        FOLD_SCALAR_LOOP(uint64_t, s_float(raw, 64, 52, 1023));
        break;
    case ZFED_DTYPE_F32:
        FOLD_SCALAR_LOOP(uint32_t, s_float(raw, 32, 23, 127));
        break;
    case ZFED_DTYPE_F16:
        FOLD_SCALAR_LOOP(uint16_t, s_float(raw, 16, 10, 15));
        break;
    case ZFED_DTYPE_BF16:
        FOLD_SCALAR_LOOP(uint16_t, s_float(raw, 16, 7, 127));
        break;
    case ZFED_DTYPE_I64:
        FOLD_SCALAR_LOOP(int64_t, s_integer(raw));
        break;
    case ZFED_DTYPE_I32:
        FOLD_SCALAR_LOOP(int32_t, s_integer(raw));
        break;
    case ZFED_DTYPE_I16:
        FOLD_SCALAR_LOOP(int16_t, s_integer(raw));
        break;
    case ZFED_DTYPE_I8:
        FOLD_SCALAR_LOOP(int8_t, s_integer(raw));
        break;
    case ZFED_DTYPE_U64:
        FOLD_SCALAR_LOOP(uint64_t, s_unsigned(raw));
        break;
    case ZFED_DTYPE_U32:
        FOLD_SCALAR_LOOP(uint32_t, s_unsigned(raw));
        break;
    case ZFED_DTYPE_U16:
        FOLD_SCALAR_LOOP(uint16_t, s_unsigned(raw));
        break;
    case ZFED_DTYPE_U8:
        FOLD_SCALAR_LOOP(uint8_t, s_unsigned(raw));
        break;
    default:
        break;
    }
    return 0;
}

// --------------------------------------------------------------------------
//  F32, F16 and BF16 with AVX2, narrow mode, weight < 2^32

#ifdef HAVE_AVX2_KERNEL
//  Loads 8 elements as F32 bits (F16 and BF16 widen exactly).
__attribute__((target("avx2,f16c"), always_inline)) static inline __m256i
s_load8(zfed_dtype_t dtype, const uint8_t *at)
{
    if (dtype == ZFED_DTYPE_F32)
        return _mm256_loadu_si256((const __m256i *)at);
    __m128i halves = _mm_loadu_si128((const __m128i *)at);
    if (dtype == ZFED_DTYPE_F16)
        return _mm256_castps_si256(_mm256_cvtph_ps(halves));
    return _mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16);
}

//  Folds groups of 8 elements until one has an element that does not
//  fit (or has spilled, or is not finite), which it leaves unstored.
//  Returns the groups done.  No calls inside: the constants stay in
//  registers.  Inlined into one function per dtype, so the load is chosen
//  at compile time.
__attribute__((target("avx2,f16c"), always_inline)) static inline uint64_t
s_fold_avx2_run(int64_t *lo, int16_t *code, uint64_t first, const uint8_t *data,
                const zfed_dtype_t dtype, uint64_t groups, uint64_t weight)
{
    const __m256i zero = _mm256_setzero_si256();
    const __m256i exponent_mask = _mm256_set1_epi32(0xff);
    const __m256i fraction_mask = _mm256_set1_epi32(0x7fffff);
    const __m256i hidden = _mm256_set1_epi32(0x800000);
    const __m256i one = _mm256_set1_epi32(1);
    //  code of a term: EXP_EMPTY - (max(biased, 1) - 150)
    const __m256i code_base = _mm256_set1_epi32(EXP_EMPTY + 150);
    const __m256i limit = _mm256_set1_epi64x(1LL << NARROW_PART_BITS);
    const __m256i weights = _mm256_set1_epi64x((int64_t)weight);
    //  A product is below 2^(24 + bits of weight): shifted by at most
    //  this it stays within 2^61, a test on 32-bit lanes.
    const __m256i s2_max =
        _mm256_set1_epi32(NARROW_PART_BITS - 24 - (64 - __builtin_clzll(weight)));
    size_t size = dtype == ZFED_DTYPE_F32 ? 4 : 2;
    for (uint64_t group = 0; group < groups; group++) {
        uint64_t index = first + group * 8;
        const uint8_t *at = data + group * 8 * size;
        __m256i bits = s_load8(dtype, at);
        __m256i biased = _mm256_and_si256(_mm256_srli_epi32(bits, 23), exponent_mask);
        __m256i mantissa =
            _mm256_or_si256(_mm256_and_si256(bits, fraction_mask),
                            _mm256_and_si256(_mm256_cmpgt_epi32(biased, zero), hidden));
        __m256i bad = _mm256_cmpeq_epi32(biased, exponent_mask);
        //  A zero term gets code 0 (empty): it moves no exponent.
        __m256i is_zero = _mm256_cmpeq_epi32(mantissa, zero);
        __m256i term_code = _mm256_sub_epi32(code_base, _mm256_max_epi32(biased, one));
        term_code = _mm256_andnot_si256(is_zero, term_code);
        __m256i negative = _mm256_srai_epi32(bits, 31);
        __m256i old_code = _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(code + index)));
        bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(zero, old_code)); //  spilled
        __m256i new_code = _mm256_max_epi32(old_code, term_code);
        __m256i s1 = _mm256_sub_epi32(new_code, old_code);
        __m256i s2 = _mm256_sub_epi32(new_code, term_code);
        bad = _mm256_or_si256(bad, _mm256_andnot_si256(is_zero, _mm256_cmpgt_epi32(s2, s2_max)));
        __m256i sums[2];
        for (int half = 0; half < 2; half++) {
            __m128i s1_half = half ? _mm256_extracti128_si256(s1, 1) : _mm256_castsi256_si128(s1);
            __m128i s2_half = half ? _mm256_extracti128_si256(s2, 1) : _mm256_castsi256_si128(s2);
            __m128i m_half =
                half ? _mm256_extracti128_si256(mantissa, 1) : _mm256_castsi256_si128(mantissa);
            __m128i n_half =
                half ? _mm256_extracti128_si256(negative, 1) : _mm256_castsi256_si128(negative);
            __m256i shift1 = _mm256_cvtepi32_epi64(s1_half);
            __m256i shift2 = _mm256_cvtepi32_epi64(s2_half);
            __m256i sign = _mm256_cvtepi32_epi64(n_half);
            __m256i product = _mm256_mul_epu32(_mm256_cvtepu32_epi64(m_half), weights);
            __m256i old = _mm256_loadu_si256((const __m256i *)(lo + index + 4 * half));
            __m256i old_sign = _mm256_cmpgt_epi64(zero, old);
            __m256i magnitude = _mm256_sub_epi64(_mm256_xor_si256(old, old_sign), old_sign);
            //  |old| << s1 <= 2^61, or not fast.
            bad = _mm256_or_si256(bad,
                                  _mm256_cmpgt_epi64(magnitude, _mm256_srlv_epi64(limit, shift1)));
            __m256i term = _mm256_sllv_epi64(product, shift2);
            term = _mm256_sub_epi64(_mm256_xor_si256(term, sign), sign);
            sums[half] = _mm256_add_epi64(_mm256_sllv_epi64(old, shift1), term);
        }
        if (!_mm256_testz_si256(bad, bad))
            return group;
        _mm256_storeu_si256((__m256i *)(lo + index), sums[0]);
        _mm256_storeu_si256((__m256i *)(lo + index + 4), sums[1]);
        //  int32 codes -> int16, in order.
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(new_code, new_code), 0x08);
        _mm_storeu_si128((__m128i *)(code + index), _mm256_castsi256_si128(packed));
    }
    return groups;
}

//  Folds whole groups of 8; a group that s_fold_avx2_run stops at goes
//  through s_fold_scalar whole.  Returns the elements done (all whole
//  groups, or fewer when the accumulator widened), or -1.
__attribute__((target("avx2,f16c"), always_inline)) static inline int64_t
s_fold_avx2(zfed_exact_t *self, uint64_t first, const uint8_t *data, const zfed_dtype_t dtype,
            uint64_t n, uint64_t weight, char *error, size_t error_size)
{
    size_t size = zfed_dtype_size(dtype);
    uint64_t groups = n / 8, group = 0;
    while (group < groups) {
        group += s_fold_avx2_run(self->lo, self->code, first + group * 8, data + group * 8 * size,
                                 dtype, groups - group, weight);
        if (group == groups)
            break;
        if (s_fold_scalar(self, first + group * 8, data + group * 8 * size, dtype, 8, weight, error,
                          error_size) != 0)
            return -1;
        group++;
        if (self->hi)
            break; //  widened: the rest is scalar
    }
    return (int64_t)(group * 8);
}

#define FOLD_AVX2_FOR(name, DTYPE)                                                                 \
    __attribute__((target("avx2,f16c"))) static int64_t name(                                      \
        zfed_exact_t *self, uint64_t first, const uint8_t *data, uint64_t n, uint64_t weight,      \
        char *error, size_t error_size)                                                            \
    {                                                                                              \
        return s_fold_avx2(self, first, data, DTYPE, n, weight, error, error_size);                \
    }
FOLD_AVX2_FOR(s_fold_avx2_f32, ZFED_DTYPE_F32)
FOLD_AVX2_FOR(s_fold_avx2_f16, ZFED_DTYPE_F16)
FOLD_AVX2_FOR(s_fold_avx2_bf16, ZFED_DTYPE_BF16)
#endif

//  One block of a fold, by the fastest path that applies.
static int s_fold_block(zfed_exact_t *self, uint64_t first, const uint8_t *data, zfed_dtype_t dtype,
                        uint64_t n, uint64_t weight, char *error, size_t error_size)
{
#ifdef HAVE_AVX2_KERNEL
    bool vector_dtype =
        dtype == ZFED_DTYPE_F32 || dtype == ZFED_DTYPE_F16 || dtype == ZFED_DTYPE_BF16;
    if (vector_dtype && !self->hi && weight <= UINT32_MAX && zfed_exact_simd()) {
        int64_t done = dtype == ZFED_DTYPE_F32
                           ? s_fold_avx2_f32(self, first, data, n, weight, error, error_size)
                       : dtype == ZFED_DTYPE_F16
                           ? s_fold_avx2_f16(self, first, data, n, weight, error, error_size)
                           : s_fold_avx2_bf16(self, first, data, n, weight, error, error_size);
        if (done < 0)
            return -1;
        first += (uint64_t)done;
        data += (uint64_t)done * zfed_dtype_size(dtype);
        n -= (uint64_t)done;
    }
#endif
    return s_fold_scalar(self, first, data, dtype, n, weight, error, error_size);
}

static bool s_range_ok(const zfed_exact_t *self, uint64_t first, uint64_t n, char *error,
                       size_t error_size)
{
    if (first > self->count || n > self->count - first) {
        snprintf(error, error_size,
                 "elements %" PRIu64 "..%" PRIu64 " are past the accumulator's %" PRIu64, first,
                 first + n, self->count);
        return false;
    }
    if (self->poisoned) {
        snprintf(error, error_size, "%s", self->poison);
        return false;
    }
    return true;
}

int zfed_exact_fold(zfed_exact_t *self, uint64_t first, const void *data, zfed_dtype_t dtype,
                    uint64_t n, uint64_t weight, char *error, size_t error_size)
{
    if (zfed_dtype_size(dtype) == 0) {
        snprintf(error, error_size, "dtype: unknown (%d)", (int)dtype);
        return -1;
    }
    if (!s_range_ok(self, first, n, error, error_size))
        return -1;
    if (weight == 0)
        return 0;
    //  Terms that can never fit 64 bits (F64 and 64-bit integers with
    //  weights past 16, anything with a weight near 2^64): widen first
    //  rather than spill the first count / WIDEN_FRACTION elements.
    int term_bits = (dtype == ZFED_DTYPE_F64 ? 53 : 8 * (int)zfed_dtype_size(dtype)) +
                    (64 - __builtin_clzll(weight));
    if (!self->hi && n > 0 && term_bits > NARROW_PART_BITS - 4 && s_widen(self) != 0) {
        snprintf(error, error_size, "out of memory");
        return -1;
    }
    return s_fold_block(self, first, data, dtype, n, weight, error, error_size);
}

// --------------------------------------------------------------------------
//  Rounding

//  (hi:lo) / divisor where hi < divisor: the quotient fits 64 bits.
static inline uint64_t s_div_128_64(uint64_t hi, uint64_t lo, uint64_t divisor, uint64_t *rest)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    uint64_t quotient;
    __asm__("divq %4" : "=a"(quotient), "=d"(*rest) : "a"(lo), "d"(hi), "rm"(divisor));
    return quotient;
#else
    zfed_u128 numerator = ((zfed_u128)hi << 64) | lo;
    *rest = (uint64_t)(numerator % divisor);
    return (uint64_t)(numerator / divisor);
#endif
}

//  magnitude * 2^exp / divisor as (q + f) * 2^exp2 with q of at least 62
//  bits whenever f != 0 (the rounding precondition for floats).
static inline void s_divide(zfed_u128 magnitude, int64_t exp, uint64_t divisor, zfed_u128 *q,
                            bool *sticky, int64_t *exp2)
{
    if (divisor == 1 || magnitude == 0) {
        *q = magnitude;
        *sticky = false;
        *exp2 = exp;
        return;
    }
    uint64_t rest;
    int divisor_msb = 63 - __builtin_clzll(divisor);
    if ((magnitude >> 64) == 0) {
        //  Shift so the quotient lands in [2^62, 2^64): one division.
        uint64_t low = (uint64_t)magnitude;
        int shift = 63 + divisor_msb - (63 - __builtin_clzll(low));
        zfed_u128 numerator = (zfed_u128)low << shift;
        *q = s_div_128_64((uint64_t)(numerator >> 64), (uint64_t)numerator, divisor, &rest);
        *sticky = rest != 0;
        *exp2 = exp - shift;
        return;
    }
    uint64_t high = (uint64_t)(magnitude >> 64);
    uint64_t q_high = high / divisor;
    uint64_t q_low = s_div_128_64(high % divisor, (uint64_t)magnitude, divisor, &rest);
    if (q_high) {
        *q = ((zfed_u128)q_high << 64) | q_low;
        *sticky = rest != 0;
        *exp2 = exp;
        return;
    }
    //  magnitude >= 2^64 > divisor, so q_low >= 1: one more word of
    //  quotient gives at least 65 bits.
    uint64_t q_next = s_div_128_64(rest, 0, divisor, &rest);
    *q = ((zfed_u128)q_low << 64) | q_next;
    *sticky = rest != 0;
    *exp2 = exp - 64;
}

//  The same for a side-table element, with q in [2^126, 2^128) when
//  inexact (enough for integers too).
static void s_divide_big(zfed_exact_t *self, const mpz_t mantissa, int64_t exp, uint64_t divisor,
                         zfed_u128 *q, bool *sticky, int64_t *exp2)
{
    mpz_ptr quotient = self->term, rest = self->scratch;
    int64_t bits = (int64_t)mpz_sizeinbase(mantissa, 2);
    int64_t shift = 127 + (64 - __builtin_clzll(divisor)) - bits;
    mpz_abs(quotient, mantissa);
    if (shift >= 0) {
        mpz_mul_2exp(quotient, quotient, (mp_bitcnt_t)shift);
        mpz_set_ui(rest, (unsigned long)divisor);
        mpz_tdiv_qr(quotient, rest, quotient, rest);
    } else {
        mpz_set_ui(rest, (unsigned long)divisor);
        mpz_mul_2exp(rest, rest, (mp_bitcnt_t)-shift);
        mpz_tdiv_qr(quotient, rest, quotient, rest);
    }
    *sticky = mpz_sgn(rest) != 0;
    *exp2 = exp - shift;
    mpz_tdiv_r_2exp(rest, quotient, 64);
    *q = (zfed_u128)mpz_get_ui(rest);
    mpz_tdiv_q_2exp(quotient, quotient, 64);
    *q |= (zfed_u128)mpz_get_ui(quotient) << 64;
}

//  Element index: sign, magnitude (or the side-table entry) and exponent.
static const s_big_t *s_element(const zfed_exact_t *self, uint64_t index, bool *neg,
                                zfed_u128 *magnitude, int64_t *exp)
{
    int16_t code = self->code[index];
    if (code < 0)
        return &self->big[self->lo[index]];
    s_i128 mantissa =
        self->hi
            ? (s_i128)(((zfed_u128)(uint64_t)self->hi[index] << 64) | (uint64_t)self->lo[index])
            : (s_i128)self->lo[index];
    *neg = mantissa < 0;
    *magnitude = mantissa < 0 ? -(zfed_u128)mantissa : (zfed_u128)mantissa;
    *exp = (int64_t)EXP_EMPTY - code;
    return NULL;
}

//  Rounds element index into dtype: any mode, the side table, integers.
__attribute__((noinline)) static int s_round_one(zfed_exact_t *self, uint64_t index,
                                                 uint64_t divisor, zfed_dtype_t dtype,
                                                 uint64_t *bits, char *error, size_t error_size)
{
    bool neg = false, sticky;
    zfed_u128 magnitude = 0, q;
    int64_t exp = 0, exp2;
    const s_big_t *big = s_element(self, index, &neg, &magnitude, &exp);
    bool is_float = zfed_dtype_is_float(dtype);
    if (big) {
        neg = mpz_sgn(big->mantissa) < 0;
        q = 0;
        sticky = false;
        exp2 = 0;
        if (mpz_sgn(big->mantissa) != 0)
            s_divide_big(self, big->mantissa, big->exp, divisor, &q, &sticky, &exp2);
    } else {
        s_divide(magnitude, exp, divisor, &q, &sticky, &exp2);
        if (!is_float && sticky && exp2 > -1) {
            //  Too few fraction digits to round to an integer: the value
            //  is at least 2^62; redo it with GMP's precision.
            s_mpz_set_u128(self->wide, magnitude);
            s_divide_big(self, self->wide, exp, divisor, &q, &sticky, &exp2);
        }
    }
    if (zfed_rounding_bits(neg, q, sticky, exp2, dtype, bits) == ZFED_ROUNDING_OK)
        return 0;
    int scale = exp2 < -100000 ? -100000 : exp2 > 100000 ? 100000 : (int)exp2;
    double approximate = ldexp((double)q, scale);
    if (is_float)
        snprintf(error, error_size, "element %" PRIu64 ": %s%.6g is beyond the largest finite %s",
                 index, neg ? "-" : "", approximate, zfed_dtype_name(dtype));
    else
        snprintf(error, error_size, "element %" PRIu64 ": %s%.17g is out of %s range", index,
                 neg ? "-" : "", approximate, zfed_dtype_name(dtype));
    return -1;
}

//  The common case of rounding, in 64-bit integers: a narrow element
//  into a float format.  0, or -1 for the rare cases (deep subnormal
//  results, overflow) that s_round_one handles and words.
//  A divisor prepared for division without a divide instruction (Möller
//  and Granlund, "Improved division by invariant integers", 2011): the
//  divisor shifted until its top bit is set, and its reciprocal
//  floor((2^128 - 1) / normalised) - 2^64.  A 128-by-64-bit division
//  with a 64-bit quotient is then two multiplications and a correction,
//  several times faster than DIV.
typedef struct {
    uint64_t normalised;
    uint64_t reciprocal;
    int shift;
} s_divisor_t;

static s_divisor_t s_divisor(uint64_t divisor)
{
    s_divisor_t prepared;
    prepared.shift = __builtin_clzll(divisor);
    prepared.normalised = divisor << prepared.shift;
    zfed_u128 all_ones = ((zfed_u128)~prepared.normalised << 64) | ~0ULL;
    prepared.reciprocal = (uint64_t)(all_ones / prepared.normalised);
    return prepared;
}

//  (high:low) / normalised for high < normalised: quotient and remainder.
static inline uint64_t s_div_preinv(uint64_t high, uint64_t low, const s_divisor_t *divisor,
                                    uint64_t *rest)
{
    zfed_u128 product = (zfed_u128)high * divisor->reciprocal;
    product += ((zfed_u128)(high + 1) << 64) | low;
    uint64_t quotient = (uint64_t)(product >> 64);
    uint64_t remainder = low - quotient * divisor->normalised;
    //  The first correction is taken about half the time: a mask, not a
    //  branch the CPU would mispredict.
    uint64_t mask = (uint64_t)0 - (uint64_t)(remainder > (uint64_t)product);
    quotient += mask;
    remainder += mask & divisor->normalised;
    if (__builtin_expect(remainder >= divisor->normalised, 0)) {
        quotient++;
        remainder -= divisor->normalised;
    }
    *rest = remainder;
    return quotient;
}

static inline __attribute__((always_inline)) int
s_round_narrow(int64_t mantissa, int64_t exp, uint64_t divisor, const s_divisor_t *prepared,
               const zfed_rounding_format_t *format, uint64_t *bits)
{
    if (mantissa == 0) {
        *bits = 0;
        return 0;
    }
    uint64_t low = s_abs64(mantissa), q, rest = 0;
    int64_t exp2;
    int leading = 63 - __builtin_clzll(low);
    if (divisor == 1) {
        q = low << (63 - leading);
        exp2 = exp - (63 - leading);
    } else {
        //  low * 2^shift in [2^126, 2^127) over the normalised divisor:
        //  q in [2^62, 2^64), as in s_divide.
        int shift = 126 - leading;
        zfed_u128 numerator = (zfed_u128)low << shift;
        q = s_div_preinv((uint64_t)(numerator >> 64), (uint64_t)numerator, prepared, &rest);
        exp2 = exp - shift + prepared->shift;
    }
    int p = format->precision;
    int64_t lsb = (63 - __builtin_clzll(q)) + exp2 - (p - 1);
    if (lsb < format->emin - (p - 1))
        lsb = format->emin - (p - 1);
    int64_t shift = lsb - exp2; //  at least 62 - 53 + 1
    if (shift >= 64)
        return -1;
    uint64_t r = q >> shift;
    uint64_t half = 1ULL << (shift - 1);
    //  Round half to even, without branches (the bits are random).
    r += ((q & half) != 0) & (((q & (half - 1)) != 0) | (rest != 0) | (r & 1));
    if (r == 1ULL << p) {
        r >>= 1;
        lsb++;
    }
    uint64_t sign = (uint64_t)(mantissa < 0) << (format->width - 1);
    if (r < 1ULL << (p - 1)) { //  subnormal
        *bits = sign | r;
        return 0;
    }
    int64_t exponent = lsb + (p - 1);
    if (exponent > format->emax)
        return -1;
    *bits = sign | ((uint64_t)(exponent + format->emax) << (p - 1)) | (r - (1ULL << (p - 1)));
    return 0;
}

//  Rounding into F32, F16 and BF16, the common cases, in double
//  arithmetic: y = (double)M * (2^E * (1 / divisor)) is within 5 units in
//  the last place of a double of the exact value (four roundings), and
//  the dtype keeps 53 - precision bits fewer than a double (29 for F32).
//  So unless y lies within 16 double units of a point halfway between two
//  values of the dtype, rounding y rounds the exact value as well: the
//  rest (ties, a chance of 6e-8 for random data into F32), subnormals and
//  overflow go the exact way.
#define TIE_MARGIN  16
#define SCALE_RANGE 900

static inline __attribute__((always_inline)) int s_round_fast(int64_t mantissa, int64_t exp,
                                                              double reciprocal,
                                                              const zfed_rounding_format_t *format,
                                                              uint64_t *out)
{
    if (mantissa == 0) {
        *out = 0;
        return 0;
    }
    if (exp < -SCALE_RANGE || exp > SCALE_RANGE)
        return -1;
    uint64_t power_bits = (uint64_t)(exp + 1023) << 52;
    double power;
    memcpy(&power, &power_bits, sizeof power);
    double y = (double)mantissa * (power * reciprocal);
    uint64_t bits;
    memcpy(&bits, &y, sizeof bits);
    int64_t biased = (int64_t)((bits >> 52) & 0x7ff);
    int extra_bits = 53 - format->precision;
    uint64_t extra = bits & ((1ULL << extra_bits) - 1);
    uint64_t half = 1ULL << (extra_bits - 1);
    //  Normal results only, clear of the largest value's exponent.
    if (biased <= 1023 + format->emin || biased >= 1023 + format->emax ||
        extra - (half - TIE_MARGIN) <= 2 * TIE_MARGIN)
        return -1;
    //  y's exponent and top fraction bits, plus the first bit dropped
    //  (never a tie here); a carry runs into the exponent as it should.
    uint64_t fraction = bits & ((1ULL << 52) - 1);
    uint64_t rounded = ((uint64_t)(biased - 1023 + format->emax) << (format->precision - 1)) +
                       (fraction >> extra_bits) + ((fraction >> (extra_bits - 1)) & 1);
    *out = (bits >> 63) << (format->width - 1) | rounded;
    return 0;
}

//  Rounds n elements into a float dtype whose bits are a type: narrow
//  elements inline, the rest (and errors) through s_round_one.
#define ROUND_FLOAT_LOOP(type, DTYPE)                                                              \
    do {                                                                                           \
        const zfed_rounding_format_t *format = &zfed_rounding_formats[DTYPE];                      \
        uint8_t *target = out;                                                                     \
        bool narrow = !self->hi;                                                                   \
        s_divisor_t prepared = s_divisor(divisor);                                                 \
        for (uint64_t at = 0; at < n; at++) {                                                      \
            uint64_t index = first + at, bits;                                                     \
            int16_t code = self->code[index];                                                      \
            if (!narrow || code < 0 ||                                                             \
                s_round_narrow(self->lo[index], (int64_t)EXP_EMPTY - code, divisor, &prepared,     \
                               format, &bits) != 0)                                                \
                if (s_round_one(self, index, divisor, DTYPE, &bits, error, error_size) != 0)       \
                    return -1;                                                                     \
            type value = (type)bits;                                                               \
            memcpy(target + at * sizeof value, &value, sizeof value);                              \
        }                                                                                          \
    } while (0)

//  Rounds n elements into F32, F16 or BF16 (bits of a type) through
//  s_round_fast, the rest (and errors) through s_round_one; one loop per
//  dtype so the format is a constant.
#define ROUND_FAST_LOOP(type, DTYPE, FORMAT)                                                       \
    do {                                                                                           \
        const zfed_rounding_format_t format = FORMAT;                                              \
        uint8_t *target = out;                                                                     \
        for (uint64_t at = 0; at < n; at++) {                                                      \
            uint64_t index = first + at, bits;                                                     \
            int16_t code = self->code[index];                                                      \
            if ((code < 0 || s_round_fast(self->lo[index], (int64_t)EXP_EMPTY - code, reciprocal,  \
                                          &format, &bits) != 0) &&                                 \
                s_round_one(self, index, divisor, DTYPE, &bits, error, error_size) != 0)           \
                return -1;                                                                         \
            type value = (type)bits;                                                               \
            memcpy(target + at * sizeof value, &value, sizeof value);                              \
        }                                                                                          \
    } while (0)

#ifdef HAVE_AVX2_KERNEL
//  s_round_fast into F32 on 4 narrow elements at once, with the same
//  operations in the same order, so the same doubles and the same bits:
//  the int64 mantissa to double exactly rounded (its high 16 and low 48
//  bits as exact doubles, one rounding in their sum: Mysticial's
//  conversion, as AVX2 has no cvtepi64_pd), times 2^E times 1 / divisor.
//  Stores the 4 results and returns a mask of the lanes s_round_fast
//  would refuse (spilled elements, ties, subnormals, overflow), which the
//  caller rounds one by one; a zero mantissa is +0, as there.
__attribute__((target("avx2"), always_inline)) static inline int
s_round4_f32(const int64_t *lo, const int16_t *code, __m256d reciprocal, uint8_t *out)
{
    const __m256i magic_high = _mm256_castpd_si256(_mm256_set1_pd(442721857769029238784.0));
    const __m256d magic_all = _mm256_set1_pd(442726361368656609280.0);
    const __m256i magic_low = _mm256_castpd_si256(_mm256_set1_pd(4503599627370496.0));
    __m256i m = _mm256_loadu_si256((const __m256i *)lo);
    __m256i high = _mm256_blend_epi16(_mm256_srai_epi32(m, 16), _mm256_setzero_si256(), 0x33);
    high = _mm256_add_epi64(high, magic_high);
    __m256i low = _mm256_blend_epi16(m, magic_low, 0x88);
    __m256d md = _mm256_add_pd(_mm256_sub_pd(_mm256_castsi256_pd(high), magic_all),
                               _mm256_castsi256_pd(low));
    __m256i c = _mm256_cvtepi16_epi64(_mm_loadl_epi64((const __m128i *)code));
    //  exp = EXP_EMPTY - code within +-SCALE_RANGE, else refused.
    __m256i code_bad =
        _mm256_or_si256(_mm256_cmpgt_epi64(_mm256_set1_epi64x(EXP_EMPTY - SCALE_RANGE), c),
                        _mm256_cmpgt_epi64(c, _mm256_set1_epi64x(EXP_EMPTY + SCALE_RANGE)));
    __m256i spilled = _mm256_cmpgt_epi64(_mm256_setzero_si256(), c);
    __m256i power =
        _mm256_slli_epi64(_mm256_sub_epi64(_mm256_set1_epi64x(EXP_EMPTY + 1023), c), 52);
    __m256d y = _mm256_mul_pd(md, _mm256_mul_pd(_mm256_castsi256_pd(power), reciprocal));
    __m256i bits = _mm256_castpd_si256(y);
    __m256i biased = _mm256_and_si256(_mm256_srli_epi64(bits, 52), _mm256_set1_epi64x(0x7ff));
    //  extra - (half - TIE_MARGIN) in [0, 2 TIE_MARGIN]: near a tie.
    __m256i near = _mm256_sub_epi64(_mm256_and_si256(bits, _mm256_set1_epi64x((1LL << 29) - 1)),
                                    _mm256_set1_epi64x((1LL << 28) - TIE_MARGIN));
    __m256i bad = _mm256_or_si256(
        code_bad,
        _mm256_or_si256(
            _mm256_or_si256(_mm256_cmpgt_epi64(_mm256_set1_epi64x(1023 - 126 + 1), biased),
                            _mm256_cmpgt_epi64(biased, _mm256_set1_epi64x(1023 + 127 - 1))),
            _mm256_and_si256(_mm256_cmpgt_epi64(near, _mm256_set1_epi64x(-1)),
                             _mm256_cmpgt_epi64(_mm256_set1_epi64x(2 * TIE_MARGIN + 1), near))));
    __m256i zero = _mm256_cmpeq_epi64(m, _mm256_setzero_si256());
    bad = _mm256_or_si256(spilled, _mm256_andnot_si256(zero, bad));
    __m256i fraction = _mm256_and_si256(bits, _mm256_set1_epi64x((1LL << 52) - 1));
    __m256i rounded = _mm256_add_epi64(
        _mm256_add_epi64(
            _mm256_slli_epi64(_mm256_sub_epi64(biased, _mm256_set1_epi64x(1023 - 127)), 23),
            _mm256_srli_epi64(fraction, 29)),
        _mm256_and_si256(_mm256_srli_epi64(fraction, 28), _mm256_set1_epi64x(1)));
    rounded = _mm256_or_si256(rounded, _mm256_slli_epi64(_mm256_srli_epi64(bits, 63), 31));
    rounded = _mm256_andnot_si256(zero, rounded);
    __m256i packed =
        _mm256_permutevar8x32_epi32(rounded, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    _mm_storeu_si128((__m128i *)out, _mm256_castsi256_si128(packed));
    return _mm256_movemask_pd(_mm256_castsi256_pd(bad));
}

//  zfed_exact_round into F32 of a narrow accumulator, 4 elements at a
//  time; the lanes s_round4_f32 refuses and the tail go the scalar way.
__attribute__((target("avx2"))) static int s_round_f32_simd(zfed_exact_t *self, uint64_t first,
                                                            uint64_t n, uint64_t divisor,
                                                            double reciprocal, uint8_t *out,
                                                            char *error, size_t error_size)
{
    const zfed_rounding_format_t format = ZFED_ROUNDING_FORMAT_F32;
    __m256d reciprocals = _mm256_set1_pd(reciprocal);
    uint64_t at = 0;
    for (; at < n; at += 4) {
        unsigned lanes = 0xf;
        if (n - at >= 4)
            lanes = (unsigned)s_round4_f32(self->lo + first + at, self->code + first + at,
                                           reciprocals, out + at * 4);
        else
            lanes = (1u << (n - at)) - 1;
        while (lanes) {
            unsigned lane = (unsigned)__builtin_ctz(lanes);
            lanes &= lanes - 1;
            uint64_t index = first + at + lane, bits;
            int16_t code = self->code[index];
            if ((code < 0 || s_round_fast(self->lo[index], (int64_t)EXP_EMPTY - code, reciprocal,
                                          &format, &bits) != 0) &&
                s_round_one(self, index, divisor, ZFED_DTYPE_F32, &bits, error, error_size) != 0)
                return -1;
            uint32_t value = (uint32_t)bits;
            memcpy(out + (at + lane) * sizeof value, &value, sizeof value);
        }
    }
    return 0;
}
#endif

int zfed_exact_round(zfed_exact_t *self, uint64_t first, uint64_t n, uint64_t divisor,
                     zfed_dtype_t dtype, void *out, char *error, size_t error_size)
{
    if (zfed_dtype_size(dtype) == 0) {
        snprintf(error, error_size, "dtype: unknown (%d)", (int)dtype);
        return -1;
    }
    if (divisor == 0) {
        snprintf(error, error_size, "divisor: 0 (the total weight of nothing)");
        return -1;
    }
    if (!s_range_ok(self, first, n, error, error_size))
        return -1;
    if (!self->hi) {
        double reciprocal = 1.0 / (double)divisor;
        switch (dtype) {
        case ZFED_DTYPE_F32:
#ifdef HAVE_AVX2_KERNEL
            if (zfed_exact_simd())
                return s_round_f32_simd(self, first, n, divisor, reciprocal, out, error,
                                        error_size);
#endif
            ROUND_FAST_LOOP(uint32_t, ZFED_DTYPE_F32, ZFED_ROUNDING_FORMAT_F32);
            return 0;
        case ZFED_DTYPE_F16:
            ROUND_FAST_LOOP(uint16_t, ZFED_DTYPE_F16, ZFED_ROUNDING_FORMAT_F16);
            return 0;
        case ZFED_DTYPE_BF16:
            ROUND_FAST_LOOP(uint16_t, ZFED_DTYPE_BF16, ZFED_ROUNDING_FORMAT_BF16);
            return 0;
        default:
            break;
        }
    }
    switch (dtype) {
    case ZFED_DTYPE_F64:
        ROUND_FLOAT_LOOP(uint64_t, ZFED_DTYPE_F64);
        return 0;
    case ZFED_DTYPE_F32:
        ROUND_FLOAT_LOOP(uint32_t, ZFED_DTYPE_F32);
        return 0;
    case ZFED_DTYPE_F16:
    case ZFED_DTYPE_BF16:
        ROUND_FLOAT_LOOP(uint16_t, dtype);
        return 0;
    default:
        break;
    }
    for (uint64_t at = 0; at < n; at++) {
        uint64_t bits;
        if (s_round_one(self, first + at, divisor, dtype, &bits, error, error_size) != 0)
            return -1;
        zfed_rounding_store(dtype, out, at, bits);
    }
    return 0;
}
