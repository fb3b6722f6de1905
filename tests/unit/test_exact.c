/*  test_exact - the exact accumulator against GMP rationals.

    Every result is compared bit for bit with an independent reference
    (zfed_test_model.h: exact rational sums, rounded by comparing with one
    half), for every dtype in and out; folds happen in shuffled orders and
    shuffled splits into runs, with the AVX2 kernel and without, and the
    outputs must be identical in every case.  Hostile data (exponents far
    apart, huge weights, subnormals) drives elements to the side table and
    the accumulator to 128 bits; the same references must hold there.
*/
#include "zfed/zfed_exact.h"
#include "zfed_test.h"
#include "zfed_test_model.h"

#include <float.h>
#include <stdlib.h>

#define MAX_RESULTS 8

//  One test case: results of count elements of dtype, with weights.
typedef struct {
    zfed_dtype_t dtype;
    size_t count;
    size_t results;
    uint8_t *data[MAX_RESULTS];
    uint64_t weights[MAX_RESULTS];
} s_case_t;

static void s_case_free(s_case_t *c)
{
    for (size_t r = 0; r < c->results; r++)
        free(c->data[r]);
}

//  The exact weighted sums of a case.
static mpq_t *s_reference_sums(const s_case_t *c)
{
    mpq_t *sums = malloc(c->count * sizeof *sums);
    mpq_t term, weight;
    mpq_inits(term, weight, NULL);
    for (size_t i = 0; i < c->count; i++) {
        mpq_init(sums[i]);
        for (size_t r = 0; r < c->results; r++) {
            zfed_test_value_mpq(term, c->dtype, c->data[r], i);
            mpz_set_ui(mpq_numref(weight), 0);
            mpz_import(mpq_numref(weight), 1, 1, sizeof c->weights[r], 0, 0, &c->weights[r]);
            mpz_set_ui(mpq_denref(weight), 1);
            mpq_mul(term, term, weight);
            mpq_add(sums[i], sums[i], term);
        }
    }
    mpq_clears(term, weight, NULL);
    return sums;
}

static void s_sums_free(mpq_t *sums, size_t count)
{
    for (size_t i = 0; i < count; i++)
        mpq_clear(sums[i]);
    free(sums);
}

//  Folds every result in an order and split given by seed: each result is
//  cut into 1 to 4 runs, and all runs of all results are shuffled.
static zfed_exact_t *s_fold_shuffled(const s_case_t *c, uint64_t seed)
{
    typedef struct {
        size_t result, first, n;
    } run_t;
    run_t runs[MAX_RESULTS * 4];
    size_t run_count = 0;
    uint64_t state = seed;
    for (size_t r = 0; r < c->results; r++) {
        size_t cuts = 1 + zfed_test_random(&state) % 4, start = 0;
        for (size_t cut = 0; cut < cuts; cut++) {
            size_t end = cut + 1 == cuts
                             ? c->count
                             : start + zfed_test_random(&state) % (c->count - start + 1);
            runs[run_count++] = (run_t){r, start, end - start};
            start = end;
        }
    }
    for (size_t i = run_count; i > 1; i--) {
        size_t j = zfed_test_random(&state) % i;
        run_t swap = runs[i - 1];
        runs[i - 1] = runs[j];
        runs[j] = swap;
    }
    zfed_exact_t *acc = zfed_exact_new(c->count);
    char error[256];
    size_t size = zfed_dtype_size(c->dtype);
    for (size_t i = 0; i < run_count; i++) {
        const run_t *run = &runs[i];
        int rc = zfed_exact_fold(acc, run->first, c->data[run->result] + run->first * size,
                                 c->dtype, run->n, c->weights[run->result], error, sizeof error);
        CHECK(rc == 0);
        if (rc != 0)
            fprintf(stderr, "fold: %s\n", error);
    }
    return acc;
}

//  Rounds acc into dtype by divisor and compares with the reference.
//  Returns the output (caller frees) so orders can be compared bytewise.
static uint8_t *s_round_checked(zfed_exact_t *acc, const mpq_t *sums, size_t count,
                                uint64_t divisor, zfed_dtype_t dtype, size_t *mismatches)
{
    uint8_t *out = calloc(count ? count : 1, zfed_dtype_size(dtype));
    char error[256];
    int rc = zfed_exact_round(acc, 0, count, divisor, dtype, out, error, sizeof error);
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "round: %s\n", error);
        return out;
    }
    mpq_t value, d;
    mpq_inits(value, d, NULL);
    mpz_import(mpq_numref(d), 1, 1, sizeof divisor, 0, 0, &divisor);
    for (size_t i = 0; i < count; i++) {
        mpq_div(value, sums[i], d);
        if (!zfed_test_matches(value, dtype, out, i) && ++*mismatches > 10)
            break;
    }
    mpq_clears(value, d, NULL);
    return out;
}

//  The whole check of a case: several shuffles, SIMD on and off, rounded
//  into out_dtype by divisor: outputs identical and equal to the reference.
static void s_check_case(const s_case_t *c, zfed_dtype_t out_dtype, uint64_t divisor,
                         const char *what)
{
    mpq_t *sums = s_reference_sums(c);
    uint8_t *first_out = NULL;
    size_t mismatches = 0;
    size_t bytes = c->count * zfed_dtype_size(out_dtype);
    for (int trial = 0; trial < 6; trial++) {
        zfed_exact_set_simd(trial % 2 == 0);
        zfed_exact_t *acc = s_fold_shuffled(c, 1000 + (uint64_t)trial);
        uint8_t *out =
            s_round_checked(acc, (const mpq_t *)sums, c->count, divisor, out_dtype, &mismatches);
        if (!first_out)
            first_out = out;
        else {
            CHECK(memcmp(first_out, out, bytes) == 0);
            free(out);
        }
        zfed_exact_destroy(&acc);
    }
    zfed_exact_set_simd(true);
    if (mismatches)
        fprintf(stderr, "case %s: %zu mismatches\n", what, mismatches);
    CHECK(mismatches == 0);
    free(first_out);
    s_sums_free(sums, c->count);
}

//  Realistic updates: a global ~N(0, 0.05) and each result a small
//  perturbation of it; weights in 1..60000.
static s_case_t s_realistic(zfed_dtype_t dtype, size_t count, size_t results, uint64_t seed)
{
    s_case_t c = {dtype, count, results, {0}, {0}};
    uint64_t state = seed;
    double *global = malloc(count * sizeof *global);
    for (size_t i = 0; i < count; i++)
        global[i] = zfed_test_normal(&state, 0.05);
    for (size_t r = 0; r < results; r++) {
        c.data[r] = malloc(count * zfed_dtype_size(dtype));
        c.weights[r] = 1 + zfed_test_random(&state) % 60000;
        for (size_t i = 0; i < count; i++)
            zfed_dtype_set_f64(dtype, c.data[r], i, global[i] + zfed_test_normal(&state, 0.005));
    }
    free(global);
    return c;
}

//  Any finite bit pattern of the float dtype, or any integer: exponents
//  all over the range, subnormals, zeros of both signs.
static s_case_t s_hostile(zfed_dtype_t dtype, size_t count, size_t results, uint64_t seed,
                          bool huge_weights)
{
    s_case_t c = {dtype, count, results, {0}, {0}};
    uint64_t state = seed;
    size_t size = zfed_dtype_size(dtype);
    for (size_t r = 0; r < results; r++) {
        c.data[r] = malloc(count * size);
        uint64_t pick = zfed_test_random(&state);
        c.weights[r] = huge_weights ? (pick % 3 == 0   ? UINT64_MAX
                                       : pick % 3 == 1 ? (1ULL << 32) + (pick >> 40)
                                                       : pick)
                                    : 1 + pick % 60000;
        for (size_t i = 0; i < count; i++) {
            uint64_t bits;
            do {
                bits = zfed_test_random(&state);
                if (zfed_test_random(&state) % 8 == 0)
                    bits &= 0x800f00000000ffffULL; //  small and subnormal values
                //  F64 sums must stay finite: exponents up to 2^769.
                if (dtype == ZFED_DTYPE_F64 && ((bits >> 52) & 0x7ff) > 0x700)
                    bits &= ~(1ULL << 62);
                memcpy(c.data[r] + i * size, &bits, size);
            } while (zfed_dtype_check_finite(dtype, c.data[r] + i * size, 1, &(size_t){0}) !=
                     ZFED_FINITE);
        }
    }
    return c;
}

static void test_realistic(void)
{
    //  Counts that are not multiples of 8 exercise the scalar tail.
    static const zfed_dtype_t dtypes[] = {ZFED_DTYPE_F32, ZFED_DTYPE_F16, ZFED_DTYPE_BF16,
                                          ZFED_DTYPE_F64};
    for (size_t d = 0; d < sizeof dtypes / sizeof *dtypes; d++) {
        s_case_t c = s_realistic(dtypes[d], 1003, 5, 7 + d);
        uint64_t total = 0;
        for (size_t r = 0; r < c.results; r++)
            total += c.weights[r];
        s_check_case(&c, dtypes[d], total, "realistic fedavg");
        s_check_case(&c, ZFED_DTYPE_F64, total, "realistic fedavg to F64");
        s_check_case(&c, ZFED_DTYPE_F32, 1, "realistic sum to F32");
        s_check_case(&c, ZFED_DTYPE_BF16, total, "realistic fedavg to BF16");
        //  Weights just under 2^32 (the largest the AVX2 kernel takes)
        //  leave it 5 bits of exponent spread: many groups go scalar.
        for (size_t r = 0; r < c.results; r++)
            c.weights[r] = UINT32_MAX - r * 977;
        s_check_case(&c, ZFED_DTYPE_F64, 3, "weights near 2^32");
        s_case_free(&c);
    }
}

static void test_hostile_floats(void)
{
    static const zfed_dtype_t dtypes[] = {ZFED_DTYPE_F32, ZFED_DTYPE_F64, ZFED_DTYPE_F16,
                                          ZFED_DTYPE_BF16};
    for (size_t d = 0; d < 4; d++) {
        for (int huge = 0; huge < 2; huge++) {
            s_case_t c =
                s_hostile(dtypes[d], 517, 1 + (d * 3 + (size_t)huge) % MAX_RESULTS, 99 + d, huge);
            //  Every sum fits F64; a weighted mean fits the input dtype.
            s_check_case(&c, ZFED_DTYPE_F64, 3, "hostile floats to F64");
            if (!huge) {
                uint64_t total = 0;
                for (size_t r = 0; r < c.results; r++)
                    total += c.weights[r];
                s_check_case(&c, dtypes[d], total, "hostile floats fedavg");
            }
            s_case_free(&c);
        }
    }
}

static void test_integers(void)
{
    static const zfed_dtype_t dtypes[] = {ZFED_DTYPE_I64, ZFED_DTYPE_I32, ZFED_DTYPE_I16,
                                          ZFED_DTYPE_I8,  ZFED_DTYPE_U64, ZFED_DTYPE_U32,
                                          ZFED_DTYPE_U16, ZFED_DTYPE_U8};
    for (size_t d = 0; d < sizeof dtypes / sizeof *dtypes; d++) {
        s_case_t c = s_hostile(dtypes[d], 203, 4, 500 + d, false);
        s_check_case(&c, ZFED_DTYPE_F64, 7, "integers to F64");
        s_check_case(&c, ZFED_DTYPE_F32, 1, "integers to F32");
        uint64_t total = 0;
        for (size_t r = 0; r < c.results; r++)
            total += c.weights[r];
        //  A weighted mean of integers is in their range: round it back.
        s_check_case(&c, dtypes[d], total, "integers fedavg");
        s_case_free(&c);
    }
}

//  Sums needing more than 64 bits, exactly at ties, into integers.
static void test_integer_wide_ties(void)
{
    s_case_t c = {ZFED_DTYPE_U64, 4, 2, {0}, {UINT64_MAX, 3}};
    uint64_t values[2][4] = {{UINT64_MAX, 1, 5, 0}, {UINT64_MAX, 2, 7, 1}};
    for (size_t r = 0; r < 2; r++) {
        c.data[r] = malloc(sizeof values[r]);
        memcpy(c.data[r], values[r], sizeof values[r]);
    }
    //  (2^64-1)^2 + 3 (2^64-1) over 2^64-1 is 2^64 + 2: past U64.
    s_check_case(&c, ZFED_DTYPE_F64, UINT64_MAX, "wide u64 to F64");
    s_check_case(&c, ZFED_DTYPE_F32, 2, "wide u64 to F32");
    s_case_free(&c);
}

static void s_fold_f64(zfed_exact_t *acc, uint64_t index, double value, uint64_t weight)
{
    char error[128];
    CHECK(zfed_exact_fold(acc, index, &value, ZFED_DTYPE_F64, 1, weight, error, sizeof error) == 0);
}

static float s_round_f32(zfed_exact_t *acc, uint64_t index, uint64_t divisor)
{
    float out = NAN;
    char error[128];
    CHECK(zfed_exact_round(acc, index, 1, divisor, ZFED_DTYPE_F32, &out, error, sizeof error) == 0);
    return out;
}

static void test_rounding_edges(void)
{
    zfed_exact_t *acc = zfed_exact_new(8);
    //  Ties to even at 1 + half an F32 unit, and just above it.
    s_fold_f64(acc, 0, 1.0 + 0x1p-24, 1);
    CHECK(s_round_f32(acc, 0, 1) == 1.0f);
    s_fold_f64(acc, 1, 1.0 + 3 * 0x1p-24, 1);
    CHECK(s_round_f32(acc, 1, 1) == 1.0f + 0x1p-22f);
    s_fold_f64(acc, 2, 1.0 + 0x1p-24, 1);
    s_fold_f64(acc, 2, 0x1p-60, 1); //  a hair above the tie
    CHECK(s_round_f32(acc, 2, 1) == 1.0f + 0x1p-23f);
    //  Cancellation to an exact zero gives +0.
    s_fold_f64(acc, 3, 0.1, 3);
    s_fold_f64(acc, 3, -0.3, 1); //  -0.3 is not 3 * -0.1 in binary
    s_fold_f64(acc, 3, -0.1, 3);
    s_fold_f64(acc, 3, 0.3, 1);
    float zero = s_round_f32(acc, 3, 7);
    CHECK(zero == 0.0f && !signbit(zero));
    //  A tiny negative value rounds to -0; 1.5 units of the smallest
    //  subnormal round to 2 (even).
    s_fold_f64(acc, 4, -0x1p-200, 1);
    float negative_zero = s_round_f32(acc, 4, 1);
    CHECK(negative_zero == 0.0f && signbit(negative_zero));
    s_fold_f64(acc, 5, 0x1p-149 * 1.5, 1);
    CHECK(s_round_f32(acc, 5, 1) == 0x1p-148f);
    //  Past the largest F32: an error naming the element, never inf.
    s_fold_f64(acc, 6, FLT_MAX, 2);
    float out;
    char error[128];
    CHECK(zfed_exact_round(acc, 0, 8, 1, ZFED_DTYPE_F32, (float[8]){0}, error, sizeof error) == -1);
    CHECK(strstr(error, "element 6") != NULL);
    CHECK(strstr(error, "beyond the largest finite F32") != NULL);
    CHECK(s_round_f32(acc, 6, 2) == FLT_MAX); //  the mean is fine
    //  Rounding just below the overflow threshold stays finite.
    s_fold_f64(acc, 7, (double)FLT_MAX + 0x1p102, 1); //  below the halfway point
    CHECK(s_round_f32(acc, 7, 1) == FLT_MAX);
    s_fold_f64(acc, 7, 0x1p102, 1); //  now exactly halfway: to even is 2^128, too big
    CHECK(zfed_exact_round(acc, 7, 1, 1, ZFED_DTYPE_F32, &out, error, sizeof error) == -1);
    zfed_exact_destroy(&acc);
}

//  The F32 rounding of a block of elements (4 at a time in AVX2) against
//  the same elements rounded one by one (the scalar way), SIMD on and off:
//  edge cases in every lane position, beside ordinary values.
static void test_rounding_block_edges(void)
{
    static const double edges[] = {
        0.0,                      //  an empty element: +0
        1.0 + 0x1p-24,            //  a tie: to even (1)
        1.0 + 3 * 0x1p-24,        //  a tie: to even (up)
        1.0 + 0x1p-24 + 0x1p-52,  //  a hair above a tie
        1.0 + 0x1p-24 - 0x1p-52,  //  a hair below
        -(1.0 + 0x1p-24),         //  a negative tie
        0x1p-149 * 1.5,           //  subnormal, a tie
        0x1p-126,                 //  the smallest normal
        0x1p-126 * (1 - 0x1p-30), //  just below it: rounds up to it
        -0x1p-200,                //  to -0
        (double)FLT_MAX,          //  the largest F32
        0x1p127,                  //  at the top exponent
        1e300,                    //  spills beside 1e-300 (below): too big for F32 alone
        0.1,
        -0.3,
        12345.678,
    };
    const size_t count = 4 * 37 + 3; //  a tail of 3
    const size_t kinds = sizeof edges / sizeof edges[0];
    zfed_exact_t *acc = zfed_exact_new(count);
    uint64_t divisors[] = {1, 3, 7, 60000};
    for (size_t i = 0; i < count; i++) {
        double value = edges[(i * 7 + i / kinds) % kinds];
        if (value == 1e300) {
            //  +1e300 - 1e300 + a small value: exact zero, then 1e-300,
            //  then 2^-10: the element leaves the narrow representation.
            s_fold_f64(acc, i, 1e300, 1);
            s_fold_f64(acc, i, -1e300, 1);
            s_fold_f64(acc, i, 1e-300, 1);
            s_fold_f64(acc, i, 0x1p-10, 1);
        } else if (value != 0.0)
            s_fold_f64(acc, i, value, 1);
    }
    for (size_t d = 0; d < sizeof divisors / sizeof divisors[0]; d++) {
        float *block = calloc(count, sizeof *block);
        char error[128];
        for (int simd = 1; simd >= 0; simd--) {
            zfed_exact_set_simd(simd);
            CHECK(zfed_exact_round(acc, 0, count, divisors[d], ZFED_DTYPE_F32, block, error,
                                   sizeof error) == 0);
            //  Offsets 1-3 put every value in every lane.
            for (size_t shift = 0; shift < 4; shift++) {
                float *part = calloc(count, sizeof *part);
                CHECK(zfed_exact_round(acc, shift, count - shift, divisors[d], ZFED_DTYPE_F32, part,
                                       error, sizeof error) == 0);
                CHECK(memcmp(part, block + shift, (count - shift) * sizeof *part) == 0);
                free(part);
            }
            for (size_t i = 0; i < count; i++) {
                float one = s_round_f32(acc, i, divisors[d]);
                CHECK(memcmp(&one, &block[i], sizeof one) == 0);
            }
        }
        zfed_exact_set_simd(true);
        free(block);
    }
    //  Spot checks of the block against known values (divisor 1).
    float block[4 * 37 + 3];
    char error[128];
    CHECK(zfed_exact_round(acc, 0, count, 1, ZFED_DTYPE_F32, block, error, sizeof error) == 0);
    for (size_t i = 0; i < count; i++) {
        double value = edges[(i * 7 + i / kinds) % kinds];
        if (value == 1.0 + 0x1p-24 || value == 1.0 + 0x1p-24 - 0x1p-52)
            CHECK(block[i] == 1.0f);
        else if (value == 1.0 + 0x1p-24 + 0x1p-52)
            CHECK(block[i] == 1.0f + 0x1p-23f);
        else if (value == 0x1p-149 * 1.5)
            CHECK(block[i] == 0x1p-148f);
        else if (value == -0x1p-200)
            CHECK(block[i] == 0.0f && signbit(block[i]));
        else if (value == 0.0)
            CHECK(block[i] == 0.0f && !signbit(block[i]));
        else if (value == 1e300)
            CHECK(block[i] == (float)(1e-300 + 0x1p-10));
        else if (value == 0x1p-126 * (1 - 0x1p-30))
            CHECK(block[i] == 0x1p-126f);
        else
            CHECK(block[i] == (float)value);
    }
    zfed_exact_stats_t stats;
    zfed_exact_stats(acc, &stats);
    CHECK(stats.spilled > 0 && !stats.wide); //  the fast path ran, beside spilled elements
    zfed_exact_destroy(&acc);
}

//  Many divisors (1, powers of two, odd, near 2^64) over large integer
//  sums, into every float dtype and I64; ties built on purpose.
static void test_divisors(void)
{
    static const uint64_t divisors[] = {
        1, 2, 3, 7, 60000, 1ULL << 32, (1ULL << 32) + 1, 1ULL << 63, UINT64_MAX - 1, UINT64_MAX};
    s_case_t c = s_hostile(ZFED_DTYPE_I64, 2000, 2, 2024, false);
    c.weights[0] = 1;
    c.weights[1] = 1;
    for (size_t d = 0; d < sizeof divisors / sizeof *divisors; d++) {
        s_check_case(&c, ZFED_DTYPE_F32, divisors[d], "divisors to F32");
        s_check_case(&c, ZFED_DTYPE_F64, divisors[d], "divisors to F64");
        s_check_case(&c, ZFED_DTYPE_BF16, divisors[d], "divisors to BF16");
        if (divisors[d] > 4)
            s_check_case(&c, ZFED_DTYPE_I64, divisors[d], "divisors to I64");
    }
    s_case_free(&c);
    //  3 (1 + 2^-24) / 3 is an F32 tie: to even, 1.
    zfed_exact_t *acc = zfed_exact_new(2);
    s_fold_f64(acc, 0, 3 * (1.0 + 0x1p-24), 1);
    CHECK(s_round_f32(acc, 0, 3) == 1.0f);
    s_fold_f64(acc, 1, 3 * (1.0 + 3 * 0x1p-24), 1);
    CHECK(s_round_f32(acc, 1, 3) == 1.0f + 0x1p-22f);
    zfed_exact_destroy(&acc);
}

static void test_integer_rounding(void)
{
    zfed_exact_t *acc = zfed_exact_new(4);
    int32_t values[4] = {5, 7, -5, 300};
    char error[128];
    CHECK(zfed_exact_fold(acc, 0, values, ZFED_DTYPE_I32, 4, 1, error, sizeof error) == 0);
    int16_t halves[4];
    CHECK(zfed_exact_round(acc, 0, 4, 2, ZFED_DTYPE_I16, halves, error, sizeof error) == 0);
    CHECK_INT(halves[0], 2); //  2.5 -> 2
    CHECK_INT(halves[1], 4); //  3.5 -> 4
    CHECK_INT(halves[2], -2);
    CHECK_INT(halves[3], 150);
    uint8_t bytes[4];
    CHECK(zfed_exact_round(acc, 3, 1, 1, ZFED_DTYPE_U8, bytes, error, sizeof error) == -1);
    CHECK(strstr(error, "element 3") && strstr(error, "U8"));
    CHECK(zfed_exact_round(acc, 2, 1, 1, ZFED_DTYPE_U8, bytes, error, sizeof error) == -1);
    int32_t small = -2;
    zfed_exact_reset(acc);
    CHECK(zfed_exact_fold(acc, 0, &small, ZFED_DTYPE_I32, 1, 1, error, sizeof error) == 0);
    CHECK(zfed_exact_round(acc, 0, 1, 5, ZFED_DTYPE_U8, bytes, error, sizeof error) == 0);
    CHECK_INT(bytes[0], 0); //  -0.4 rounds to 0, which U8 holds
    zfed_exact_destroy(&acc);
}

static void test_nan_poisons(void)
{
    zfed_exact_t *acc = zfed_exact_new(16);
    float values[16];
    for (int i = 0; i < 16; i++)
        values[i] = (float)i;
    values[11] = NAN;
    char error[256];
    //  Weight 0 is a no-op: not even a NaN matters.
    CHECK(zfed_exact_fold(acc, 0, values, ZFED_DTYPE_F32, 16, 0, error, sizeof error) == 0);
    for (int simd = 0; simd < 2; simd++) {
        zfed_exact_set_simd(simd);
        zfed_exact_reset(acc);
        CHECK(zfed_exact_fold(acc, 0, values, ZFED_DTYPE_F32, 16, 1, error, sizeof error) == -1);
        CHECK(strstr(error, "element 11: NaN") != NULL);
        float out[16];
        CHECK(zfed_exact_round(acc, 0, 16, 1, ZFED_DTYPE_F32, out, error, sizeof error) == -1);
        CHECK(strstr(error, "element 11: NaN") != NULL);
        CHECK(zfed_exact_fold(acc, 0, values, ZFED_DTYPE_F32, 1, 1, error, sizeof error) == -1);
    }
    zfed_exact_set_simd(true);
    zfed_exact_reset(acc);
    double infinity = -INFINITY;
    CHECK(zfed_exact_fold(acc, 5, &infinity, ZFED_DTYPE_F64, 1, 1, error, sizeof error) == -1);
    CHECK(strstr(error, "element 5: -Inf") != NULL);
    zfed_exact_reset(acc);
    float out;
    CHECK(zfed_exact_round(acc, 0, 1, 1, ZFED_DTYPE_F32, &out, error, sizeof error) == 0);
    CHECK(out == 0.0f && !signbit(out));
    zfed_exact_destroy(&acc);
}

static void test_arguments(void)
{
    zfed_exact_t *acc = zfed_exact_new(10);
    float values[4] = {1, 2, 3, 4};
    char error[256];
    CHECK(zfed_exact_fold(acc, 8, values, ZFED_DTYPE_F32, 4, 1, error, sizeof error) == -1);
    CHECK(strstr(error, "past the accumulator's 10") != NULL);
    CHECK(zfed_exact_fold(acc, 0, values, (zfed_dtype_t)99, 4, 1, error, sizeof error) == -1);
    CHECK(zfed_exact_fold(acc, 6, values, ZFED_DTYPE_F32, 4, 1, error, sizeof error) == 0);
    CHECK(zfed_exact_round(acc, 0, 10, 0, ZFED_DTYPE_F32, values, error, sizeof error) == -1);
    CHECK(strstr(error, "divisor") != NULL);
    CHECK(zfed_exact_round(acc, 9, 2, 1, ZFED_DTYPE_F32, values, error, sizeof error) == -1);
    CHECK(zfed_exact_count(acc) == 10);
    zfed_exact_destroy(&acc);
    zfed_exact_destroy(&acc); //  idempotent
    CHECK(zfed_exact_new(ZFED_EXACT_COUNT_MAX + 1) == NULL);
    zfed_exact_t *empty = zfed_exact_new(0);
    CHECK(empty &&
          zfed_exact_fold(empty, 0, values, ZFED_DTYPE_F32, 0, 1, error, sizeof error) == 0);
    zfed_exact_destroy(&empty);
}

//  Values far apart in exponent spill to the side table; F64 with large
//  weights widens the accumulator.  The references hold in both.
static void test_spill_and_widen(void)
{
    size_t count = 4096;
    s_case_t c = {ZFED_DTYPE_F32, count, 3, {0}, {1, 60000, 7}};
    for (size_t r = 0; r < 3; r++) {
        c.data[r] = malloc(count * 4);
        for (size_t i = 0; i < count; i++) {
            float value = r == 1 ? 0x1p-120f * (float)(i + 1) : 0x1p60f / (float)(i + 3);
            memcpy(c.data[r] + i * 4, &value, 4);
        }
    }
    zfed_exact_t *acc = zfed_exact_new(count);
    char error[128];
    for (size_t r = 0; r < 3; r++)
        CHECK(zfed_exact_fold(acc, 0, c.data[r], c.dtype, count, c.weights[r], error,
                              sizeof error) == 0);
    zfed_exact_stats_t stats;
    zfed_exact_stats(acc, &stats);
    CHECK(stats.spilled > 0);
    zfed_exact_destroy(&acc);
    s_check_case(&c, ZFED_DTYPE_F32, 60008, "spilled");
    s_check_case(&c, ZFED_DTYPE_F64, 3, "spilled to F64");
    s_case_free(&c);

    s_case_t wide = s_realistic(ZFED_DTYPE_F64, 5000, 4, 4242);
    acc = zfed_exact_new(wide.count);
    for (size_t r = 0; r < wide.results; r++)
        CHECK(zfed_exact_fold(acc, 0, wide.data[r], wide.dtype, wide.count, wide.weights[r], error,
                              sizeof error) == 0);
    zfed_exact_stats(acc, &stats);
    CHECK(stats.wide);
    CHECK(stats.spilled < wide.count / 2);
    CHECK(stats.bytes >= wide.count * 18);
    zfed_exact_destroy(&acc);
    uint64_t total = 0;
    for (size_t r = 0; r < wide.results; r++)
        total += wide.weights[r];
    s_check_case(&wide, ZFED_DTYPE_F64, total, "wide F64 fedavg");
    s_case_free(&wide);
}

//  Realistic F32 data stays in the 10-byte representation.
static void test_memory_realistic(void)
{
    s_case_t c = s_realistic(ZFED_DTYPE_F32, 100000, 5, 77);
    zfed_exact_t *acc = zfed_exact_new(c.count);
    char error[128];
    for (size_t r = 0; r < c.results; r++)
        CHECK(zfed_exact_fold(acc, 0, c.data[r], c.dtype, c.count, c.weights[r], error,
                              sizeof error) == 0);
    zfed_exact_stats_t stats;
    zfed_exact_stats(acc, &stats);
    CHECK(!stats.wide);
    CHECK(stats.spilled < c.count / 1000);
    CHECK(stats.bytes < c.count * 11);
    zfed_exact_destroy(&acc);
    s_case_free(&c);
}

int main(void)
{
    test_arguments();
    test_rounding_edges();
    test_rounding_block_edges();
    test_integer_rounding();
    test_divisors();
    test_nan_poisons();
    test_realistic();
    test_hostile_floats();
    test_integers();
    test_integer_wide_ties();
    test_spill_and_widen();
    test_memory_realistic();
    fprintf(stderr, "simd: %s\n", zfed_exact_simd() ? "AVX2" : "none");
    ZFED_TEST_END();
}
