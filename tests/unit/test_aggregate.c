/*  test_aggregate - every strategy on inputs whose aggregates were worked
    out by hand and are written below as literal rationals, plus the edges:
    values and weight totals beyond 64 bits, empty rounds, zero weights,
    vectors, arrival order, and constructor and name validation.
*/
#include "zfed/zfed_aggregate.h"
#include "zfed_test.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>

//  Widest vector any case below uses; fixed arrays keep the helpers simple.
#define TEST_MAX_DIMS 3

//  Stands for "weight 1 for every result" in s_aggregate_is.
#define TEST_UNIT_WEIGHTS NULL

//  Every strategy, for the cases that loop over all of them.
static const zfed_agg_strategy_t s_all_strategies[] = {
    ZFED_AGG_FEDAVG, ZFED_AGG_MEAN, ZFED_AGG_MEDIAN, ZFED_AGG_TRIMMED_MEAN,
    ZFED_AGG_MIN,    ZFED_AGG_MAX,  ZFED_AGG_SUM,
};
#define TEST_STRATEGY_COUNT (sizeof s_all_strategies / sizeof s_all_strategies[0])

//  Sets value from "p/q" or "p" text.  Returns 0, or -1 for bad text (so a
//  typo in a test fails loudly instead of comparing against garbage).
static int s_set(mpq_t value, const char *text)
{
    if (mpq_set_str(value, text, 10) != 0 || mpz_sgn(mpq_denref(value)) == 0)
        return -1;
    mpq_canonicalize(value);
    return 0;
}

//  Adds count results of agg's width from row-major "p/q" texts.
//  weights may be TEST_UNIT_WEIGHTS.  Returns 0, or -1 on any failure.
static int s_add_all(zfed_agg_t *agg, size_t count, const char *const *values,
                     const uint64_t *weights)
{
    size_t dims = zfed_agg_dims(agg);
    mpq_t row[TEST_MAX_DIMS];
    int rc = 0;
    if (dims == 0 || dims > TEST_MAX_DIMS)
        return -1;
    for (size_t dim = 0; dim < dims; dim++)
        mpq_init(row[dim]);
    for (size_t index = 0; index < count && rc == 0; index++) {
        for (size_t dim = 0; dim < dims && rc == 0; dim++)
            rc = s_set(row[dim], values[index * dims + dim]);
        if (rc == 0)
            rc = zfed_agg_add(agg, row, weights ? weights[index] : 1);
    }
    for (size_t dim = 0; dim < dims; dim++)
        mpq_clear(row[dim]);
    return rc;
}

//  True when the aggregate of the given results equals expected[0..dims)
//  exactly; otherwise prints what came out, for the failing CHECK's line.
static int s_aggregate_is(zfed_agg_strategy_t strategy, double trim, size_t dims, size_t count,
                          const char *const *values, const uint64_t *weights,
                          const char *const *expected)
{
    int same = 0;
    mpq_t out[TEST_MAX_DIMS], want;
    if (dims == 0 || dims > TEST_MAX_DIMS)
        return 0;
    zfed_agg_t *agg = zfed_agg_new(strategy, dims, trim);
    if (!agg) {
        fprintf(stderr, "  %s: zfed_agg_new failed\n", zfed_agg_strategy_name(strategy));
        return 0;
    }
    mpq_init(want);
    for (size_t dim = 0; dim < dims; dim++)
        mpq_init(out[dim]);
    if (s_add_all(agg, count, values, weights) != 0 || zfed_agg_result(agg, out) != 0) {
        fprintf(stderr, "  %s: add or result failed\n", zfed_agg_strategy_name(strategy));
        goto done;
    }
    same = 1;
    for (size_t dim = 0; dim < dims; dim++) {
        if (s_set(want, expected[dim]) != 0 || mpq_cmp(out[dim], want) != 0) {
            gmp_fprintf(stderr, "  %s [%zu]: got %Qd, expected %s\n",
                        zfed_agg_strategy_name(strategy), dim, out[dim], expected[dim]);
            same = 0;
        }
    }
done:
    for (size_t dim = 0; dim < dims; dim++)
        mpq_clear(out[dim]);
    mpq_clear(want);
    zfed_agg_destroy(&agg);
    return same;
}

//  Scalar shorthand for the many one-dimensional cases.
static int s_scalar_is(zfed_agg_strategy_t strategy, double trim, size_t count,
                       const char *const *values, const uint64_t *weights, const char *expected)
{
    return s_aggregate_is(strategy, trim, 1, count, values, weights, &expected);
}

//  The seed case: five identical results (value 88, weight 10).
static void s_test_seed(void)
{
    const char *values[] = {"88", "88", "88", "88", "88"};
    const uint64_t weights[] = {10, 10, 10, 10, 10};
    for (size_t index = 0; index < TEST_STRATEGY_COUNT; index++) {
        zfed_agg_strategy_t strategy = s_all_strategies[index];
        const char *expected = strategy == ZFED_AGG_SUM ? "440" : "88";
        CHECK(s_scalar_is(strategy, ZFED_AGG_DEFAULT_TRIM, 5, values, weights, expected));
    }
}

//  Per-task levels: 88, 7, 1 with weights 10, 5, 2.
static void s_test_levels(void)
{
    const char *values[] = {"88", "7", "1"};
    const uint64_t weights[] = {10, 5, 2};
    double trim = ZFED_AGG_DEFAULT_TRIM;
    //  (880 + 35 + 2) / (10 + 5 + 2)
    CHECK(s_scalar_is(ZFED_AGG_FEDAVG, trim, 3, values, weights, "917/17"));
    CHECK(s_scalar_is(ZFED_AGG_MEAN, trim, 3, values, weights, "32"));
    CHECK(s_scalar_is(ZFED_AGG_MEDIAN, trim, 3, values, weights, "7"));
    //  floor(0.1 * 3) = 0: nothing trimmed, the plain mean
    CHECK(s_scalar_is(ZFED_AGG_TRIMMED_MEAN, trim, 3, values, weights, "32"));
    //  floor(0.34 * 3) = 1: only the middle value survives
    CHECK(s_scalar_is(ZFED_AGG_TRIMMED_MEAN, 0.34, 3, values, weights, "7"));
    CHECK(s_scalar_is(ZFED_AGG_MIN, trim, 3, values, weights, "1"));
    CHECK(s_scalar_is(ZFED_AGG_MAX, trim, 3, values, weights, "88"));
    CHECK(s_scalar_is(ZFED_AGG_SUM, trim, 3, values, weights, "96"));
}

static void s_test_median_even(void)
{
    const char *integers[] = {"4", "1", "3", "2"};
    CHECK(s_scalar_is(ZFED_AGG_MEDIAN, 0, 4, integers, TEST_UNIT_WEIGHTS, "5/2"));
    //  sorted: -4, 1/2, 3, 10 -> (1/2 + 3) / 2
    const char *rationals[] = {"3", "1/2", "10", "-4"};
    CHECK(s_scalar_is(ZFED_AGG_MEDIAN, 0, 4, rationals, TEST_UNIT_WEIGHTS, "7/4"));
    //  two values: their mean
    const char *pair[] = {"-1/3", "1/3"};
    CHECK(s_scalar_is(ZFED_AGG_MEDIAN, 0, 2, pair, TEST_UNIT_WEIGHTS, "0"));
    const char *single[] = {"-5/7"};
    CHECK(s_scalar_is(ZFED_AGG_MEDIAN, 0, 1, single, TEST_UNIT_WEIGHTS, "-5/7"));
}

static void s_test_trimmed(void)
{
    //  sorted: -50, 1/3, 4, 5, 100
    const char *values[] = {"100", "-50", "1/3", "4", "5"};
    //  floor(0.2 * 5) = 1 from each end: (1/3 + 4 + 5) / 3 = (28/3) / 3
    CHECK(s_scalar_is(ZFED_AGG_TRIMMED_MEAN, 0.2, 5, values, TEST_UNIT_WEIGHTS, "28/9"));
    //  floor(0.1 * 5) = 0: (100 - 50 + 1/3 + 4 + 5) / 5 = (178/3) / 5
    CHECK(s_scalar_is(ZFED_AGG_TRIMMED_MEAN, 0.1, 5, values, TEST_UNIT_WEIGHTS, "178/15"));
    //  trim 0 is the plain mean too
    CHECK(s_scalar_is(ZFED_AGG_TRIMMED_MEAN, 0.0, 5, values, TEST_UNIT_WEIGHTS, "178/15"));

    //  ten values 1..10, floor(0.25 * 10) = 2 from each end: (3+...+8) / 6
    const char *ten[] = {"10", "9", "8", "7", "6", "5", "4", "3", "2", "1"};
    CHECK(s_scalar_is(ZFED_AGG_TRIMMED_MEAN, 0.25, 10, ten, TEST_UNIT_WEIGHTS, "11/2"));

    //  The largest trim below 0.5: floor(0.4999... * 3) = 1 keeps the middle;
    //  with one value nothing can be trimmed; with two, floor(0.999...) = 0.
    double widest = nextafter(0.5, 0.0);
    const char *three[] = {"9", "-1", "2/3"};
    CHECK(s_scalar_is(ZFED_AGG_TRIMMED_MEAN, widest, 3, three, TEST_UNIT_WEIGHTS, "2/3"));
    const char *one[] = {"-7/2"};
    CHECK(s_scalar_is(ZFED_AGG_TRIMMED_MEAN, widest, 1, one, TEST_UNIT_WEIGHTS, "-7/2"));
    const char *two[] = {"1", "2"};
    CHECK(s_scalar_is(ZFED_AGG_TRIMMED_MEAN, widest, 2, two, TEST_UNIT_WEIGHTS, "3/2"));
}

static void s_test_min_max(void)
{
    const char *values[] = {"-3/4", "-2/3", "1/5", "-7/8"};
    CHECK(s_scalar_is(ZFED_AGG_MIN, 0, 4, values, TEST_UNIT_WEIGHTS, "-7/8"));
    CHECK(s_scalar_is(ZFED_AGG_MAX, 0, 4, values, TEST_UNIT_WEIGHTS, "1/5"));
    //  over 120: -90 - 80 + 24 - 105
    CHECK(s_scalar_is(ZFED_AGG_SUM, 0, 4, values, TEST_UNIT_WEIGHTS, "-251/120"));
    //  all negative: the largest is the one nearest zero
    const char *negative[] = {"-1/2", "-1/3", "-5"};
    CHECK(s_scalar_is(ZFED_AGG_MAX, 0, 3, negative, TEST_UNIT_WEIGHTS, "-1/3"));
    CHECK(s_scalar_is(ZFED_AGG_MIN, 0, 3, negative, TEST_UNIT_WEIGHTS, "-5"));
}

//  2^100 and 2^100 + 2: far beyond any machine integer.
static void s_test_huge_values(void)
{
    const char *values[] = {"1267650600228229401496703205376", "1267650600228229401496703205378"};
    const char *middle = "1267650600228229401496703205377";
    CHECK(s_scalar_is(ZFED_AGG_MEAN, 0, 2, values, TEST_UNIT_WEIGHTS, middle));
    CHECK(s_scalar_is(ZFED_AGG_FEDAVG, 0, 2, values, TEST_UNIT_WEIGHTS, middle));
    CHECK(s_scalar_is(ZFED_AGG_MEDIAN, 0, 2, values, TEST_UNIT_WEIGHTS, middle));
    CHECK(s_scalar_is(ZFED_AGG_TRIMMED_MEAN, 0.1, 2, values, TEST_UNIT_WEIGHTS, middle));
    CHECK(s_scalar_is(ZFED_AGG_MIN, 0, 2, values, TEST_UNIT_WEIGHTS, values[0]));
    CHECK(s_scalar_is(ZFED_AGG_MAX, 0, 2, values, TEST_UNIT_WEIGHTS, values[1]));
    //  2^101 + 2
    CHECK(s_scalar_is(ZFED_AGG_SUM, 0, 2, values, TEST_UNIT_WEIGHTS,
                      "2535301200456458802993406410754"));
}

//  Total weights a uint64_t cannot hold.
static void s_test_huge_weights(void)
{
    const char *values[] = {"1", "3"};
    //  2 * UINT64_MAX wraps in 64 bits; exactly, (W + 3W) / 2W = 2
    const uint64_t both_max[] = {UINT64_MAX, UINT64_MAX};
    CHECK(s_scalar_is(ZFED_AGG_FEDAVG, 0, 2, values, both_max, "2"));
    //  UINT64_MAX + 1 wraps to 0; exactly, (W + 3) / (W + 1) = (2^64 + 2) / 2^64
    const uint64_t max_and_one[] = {UINT64_MAX, 1};
    CHECK(s_scalar_is(ZFED_AGG_FEDAVG, 0, 2, values, max_and_one,
                      "9223372036854775809/9223372036854775808"));
}

//  No results, and fedavg over a total weight of 0: nothing to aggregate,
//  and the caller's out is left as it was.
static void s_test_nothing_to_aggregate(void)
{
    mpq_t out, sentinel;
    mpq_inits(out, sentinel, NULL);
    s_set(sentinel, "-12345/7");
    for (size_t index = 0; index < TEST_STRATEGY_COUNT; index++) {
        zfed_agg_t *agg = zfed_agg_new(s_all_strategies[index], 1, ZFED_AGG_DEFAULT_TRIM);
        REQUIRE(agg != NULL);
        mpq_set(out, sentinel);
        CHECK_INT(zfed_agg_count(agg), 0);
        CHECK_INT(zfed_agg_result(agg, &out), -1);
        CHECK(mpq_equal(out, sentinel));
        zfed_agg_destroy(&agg);
    }

    const char *values[] = {"5", "6"};
    const uint64_t zero[] = {0, 0};
    zfed_agg_t *agg = zfed_agg_new(ZFED_AGG_FEDAVG, 1, 0);
    REQUIRE(agg != NULL);
    CHECK_INT(s_add_all(agg, 2, values, zero), 0);
    mpq_set(out, sentinel);
    CHECK_INT(zfed_agg_result(agg, &out), -1);
    CHECK(mpq_equal(out, sentinel));
    zfed_agg_destroy(&agg);
    //  Weights only matter to fedavg: the plain mean ignores them.
    CHECK(s_scalar_is(ZFED_AGG_MEAN, 0, 2, values, zero, "11/2"));
    //  One zero weight among others simply contributes nothing.
    const uint64_t one_zero[] = {0, 4};
    CHECK(s_scalar_is(ZFED_AGG_FEDAVG, 0, 2, values, one_zero, "6"));
    mpq_clears(out, sentinel, NULL);
}

//  Three-element vectors, aggregated element by element.
static void s_test_vectors(void)
{
    const char *values[] = {
        "1", "10",  "-1",   //
        "2", "20",  "-2/3", //
        "4", "5",   "7",    //
        "3", "1/2", "0",    //
    };
    const uint64_t weights[] = {1, 2, 3, 4};
    //  sorted columns: 1 2 3 4 | 1/2 5 10 20 | -1 -2/3 0 7
    const char *median[] = {"5/2", "15/2", "-1/3"};
    CHECK(s_aggregate_is(ZFED_AGG_MEDIAN, 0, 3, 4, values, weights, median));
    //  over total weight 10: 1+4+12+12 | 10+40+15+2 | -1-4/3+21+0 = 56/3
    const char *fedavg[] = {"29/10", "67/10", "28/15"};
    CHECK(s_aggregate_is(ZFED_AGG_FEDAVG, 0, 3, 4, values, weights, fedavg));
    const char *minimum[] = {"1", "1/2", "-1"};
    CHECK(s_aggregate_is(ZFED_AGG_MIN, 0, 3, 4, values, weights, minimum));
    const char *maximum[] = {"4", "20", "7"};
    CHECK(s_aggregate_is(ZFED_AGG_MAX, 0, 3, 4, values, weights, maximum));
    //  10 | 71/2 | 16/3, each over 4
    const char *mean[] = {"5/2", "71/8", "4/3"};
    CHECK(s_aggregate_is(ZFED_AGG_MEAN, 0, 3, 4, values, weights, mean));
    //  odd count: the first three rows; sorted 1 2 4 | 5 10 20 | -1 -2/3 7
    const char *median_odd[] = {"2", "10", "-2/3"};
    CHECK(s_aggregate_is(ZFED_AGG_MEDIAN, 0, 3, 3, values, weights, median_odd));
}

//  The same results in three arrival orders give identical aggregates.
static void s_test_order_independence(void)
{
    enum { DIMS = 2, COUNT = 7 };
    const char *values[COUNT][DIMS] = {
        {"5", "-1/2"},   {"3", "7/3"}, {"5", "0"}, {"-2", "100"},
        {"11/4", "7/3"}, {"9", "-8"},  {"0", "1"},
    };
    const uint64_t weights[COUNT] = {3, 1, 0, 7, 2, 5, 4};
    const size_t orders[][COUNT] = {
        {0, 1, 2, 3, 4, 5, 6},
        {6, 5, 4, 3, 2, 1, 0},
        {3, 0, 6, 2, 5, 1, 4},
    };
    enum { ORDERS = sizeof orders / sizeof orders[0] };

    for (size_t index = 0; index < TEST_STRATEGY_COUNT; index++) {
        zfed_agg_strategy_t strategy = s_all_strategies[index];
        mpq_t out[ORDERS][DIMS];
        for (size_t order = 0; order < ORDERS; order++) {
            //  trim 0.3: floor(2.1) = 2 cut from each end of 7
            zfed_agg_t *agg = zfed_agg_new(strategy, DIMS, 0.3);
            REQUIRE(agg != NULL);
            for (size_t rank = 0; rank < COUNT; rank++) {
                size_t row = orders[order][rank];
                const char *texts[DIMS] = {values[row][0], values[row][1]};
                CHECK_INT(s_add_all(agg, 1, texts, &weights[row]), 0);
            }
            for (size_t dim = 0; dim < DIMS; dim++)
                mpq_init(out[order][dim]);
            CHECK_INT(zfed_agg_result(agg, out[order]), 0);
            zfed_agg_destroy(&agg);
        }
        for (size_t order = 1; order < ORDERS; order++) {
            for (size_t dim = 0; dim < DIMS; dim++) {
                if (!mpq_equal(out[order][dim], out[0][dim]))
                    fprintf(stderr, "  %s: order %zu differs in [%zu]\n",
                            zfed_agg_strategy_name(strategy), order, dim);
                CHECK(mpq_equal(out[order][dim], out[0][dim]));
            }
        }
        for (size_t order = 0; order < ORDERS; order++) {
            for (size_t dim = 0; dim < DIMS; dim++)
                mpq_clear(out[order][dim]);
        }
    }

    //  And one strategy worked by hand on the same data, second column
    //  sorted: -8, -1/2, 0, 1, 7/3, 7/3, 100 -> keep 0, 1, 7/3 -> (10/3) / 3
    const char *column[] = {"-1/2", "7/3", "0", "100", "7/3", "-8", "1"};
    CHECK(s_scalar_is(ZFED_AGG_TRIMMED_MEAN, 0.3, COUNT, column, TEST_UNIT_WEIGHTS, "10/9"));
}

static void s_test_constructor(void)
{
    zfed_agg_t *agg;
    CHECK(zfed_agg_new(ZFED_AGG_MEAN, 0, 0.1) == NULL);
    CHECK(zfed_agg_new(ZFED_AGG_MEAN, ZFED_AGG_MAX_DIMS + 1, 0.1) == NULL);
    CHECK(zfed_agg_new(ZFED_AGG_TRIMMED_MEAN, 1, -0.1) == NULL);
    CHECK(zfed_agg_new(ZFED_AGG_TRIMMED_MEAN, 1, 0.5) == NULL);
    CHECK(zfed_agg_new(ZFED_AGG_TRIMMED_MEAN, 1, 0.7) == NULL);
    CHECK(zfed_agg_new(ZFED_AGG_TRIMMED_MEAN, 1, NAN) == NULL);
    CHECK(zfed_agg_new(ZFED_AGG_TRIMMED_MEAN, 1, INFINITY) == NULL);
    CHECK(zfed_agg_new(ZFED_AGG_TRIMMED_MEAN, 1, -INFINITY) == NULL);
    //  trim is validated whatever the strategy, so a bad value never hides
    CHECK(zfed_agg_new(ZFED_AGG_MEAN, 1, 0.5) == NULL);
    CHECK(zfed_agg_new(ZFED_AGG_STRATEGY_COUNT, 1, 0.1) == NULL);
    CHECK(zfed_agg_new((zfed_agg_strategy_t)-1, 1, 0.1) == NULL);

    //  The boundaries that are allowed.
    agg = zfed_agg_new(ZFED_AGG_SUM, ZFED_AGG_MAX_DIMS, 0.0);
    REQUIRE(agg != NULL);
    CHECK_INT(zfed_agg_dims(agg), ZFED_AGG_MAX_DIMS);
    zfed_agg_destroy(&agg);
    agg = zfed_agg_new(ZFED_AGG_TRIMMED_MEAN, 1, nextafter(0.5, 0.0));
    REQUIRE(agg != NULL);
    CHECK_INT(zfed_agg_dims(agg), 1);
    CHECK_INT(zfed_agg_count(agg), 0);

    //  destroy NULLs the pointer and may be repeated
    zfed_agg_destroy(&agg);
    CHECK(agg == NULL);
    zfed_agg_destroy(&agg);
    CHECK(agg == NULL);
    zfed_agg_destroy(NULL);
    CHECK_INT(zfed_agg_count(NULL), 0);
    CHECK_INT(zfed_agg_dims(NULL), 0);
}

static void s_test_add(void)
{
    zfed_agg_t *agg = zfed_agg_new(ZFED_AGG_MAX, 1, 0);
    mpq_t value, out;
    mpq_inits(value, out, NULL);
    REQUIRE(agg != NULL);
    CHECK_INT(zfed_agg_add(NULL, &value, 1), -1);
    CHECK_INT(zfed_agg_add(agg, NULL, 1), -1);
    CHECK_INT(zfed_agg_result(NULL, &out), -1);

    //  A zero denominator is refused rather than crashing the process.
    mpz_set_ui(mpq_numref(value), 1);
    mpz_set_ui(mpq_denref(value), 0);
    CHECK_INT(zfed_agg_add(agg, &value, 1), -1);
    CHECK_INT(zfed_agg_count(agg), 0);

    //  Hand-built, unreduced 1/-3 and 2/4 are stored canonical (mpq_cmp
    //  assumes it), while the caller's own values are left alone.
    mpz_set_si(mpq_numref(value), 1);
    mpz_set_si(mpq_denref(value), -3);
    CHECK_INT(zfed_agg_add(agg, &value, 1), 0);
    CHECK_INT(mpz_sgn(mpq_denref(value)), -1);
    mpz_set_ui(mpq_numref(value), 2);
    mpz_set_ui(mpq_denref(value), 4);
    CHECK_INT(zfed_agg_add(agg, &value, 1), 0);
    CHECK_INT(mpz_get_ui(mpq_denref(value)), 4);
    //  The stored copy is independent of the caller's variable.
    mpq_set_si(value, 1000, 1);
    CHECK_INT(zfed_agg_count(agg), 2);
    CHECK_INT(zfed_agg_result(agg, &out), 0);
    //  Exactly 1/2 in lowest terms, not 2/4
    CHECK_INT(mpz_get_si(mpq_numref(out)), 1);
    CHECK_INT(mpz_get_si(mpq_denref(out)), 2);
    CHECK_INT(zfed_agg_result(agg, NULL), -1);
    zfed_agg_destroy(&agg);
    mpq_clears(value, out, NULL);
}

//  The accumulator grows up to ZFED_AGG_MAX_RESULTS and refuses the next.
static void s_test_capacity(void)
{
    zfed_agg_t *agg = zfed_agg_new(ZFED_AGG_SUM, 1, 0);
    mpq_t value, out, want;
    mpq_inits(value, out, want, NULL);
    mpq_set_ui(value, 1, 1);
    int failed = 0;
    for (size_t index = 0; index < ZFED_AGG_MAX_RESULTS && !failed; index++)
        failed = zfed_agg_add(agg, &value, 1) != 0;
    CHECK(!failed);
    CHECK_INT(zfed_agg_count(agg), ZFED_AGG_MAX_RESULTS);
    CHECK_INT(zfed_agg_add(agg, &value, 1), -1);
    CHECK_INT(zfed_agg_count(agg), ZFED_AGG_MAX_RESULTS);
    CHECK_INT(zfed_agg_result(agg, &out), 0);
    mpq_set_ui(want, ZFED_AGG_MAX_RESULTS, 1);
    CHECK(mpq_equal(out, want));
    zfed_agg_destroy(&agg);
    mpq_clears(value, out, want, NULL);
}

static void s_test_names(void)
{
    for (size_t index = 0; index < TEST_STRATEGY_COUNT; index++) {
        zfed_agg_strategy_t strategy = s_all_strategies[index];
        zfed_agg_strategy_t parsed = ZFED_AGG_STRATEGY_COUNT;
        CHECK_INT(zfed_agg_strategy_parse(zfed_agg_strategy_name(strategy), &parsed), 0);
        CHECK_INT(parsed, strategy);
    }
    CHECK_STR(zfed_agg_strategy_name(ZFED_AGG_FEDAVG), "fedavg");
    CHECK_STR(zfed_agg_strategy_name(ZFED_AGG_MEAN), "mean");
    CHECK_STR(zfed_agg_strategy_name(ZFED_AGG_MEDIAN), "median");
    CHECK_STR(zfed_agg_strategy_name(ZFED_AGG_TRIMMED_MEAN), "trimmed-mean");
    CHECK_STR(zfed_agg_strategy_name(ZFED_AGG_MIN), "min");
    CHECK_STR(zfed_agg_strategy_name(ZFED_AGG_MAX), "max");
    CHECK_STR(zfed_agg_strategy_name(ZFED_AGG_SUM), "sum");
    CHECK_STR(zfed_agg_strategy_name(ZFED_AGG_STRATEGY_COUNT), "unknown");
    CHECK_STR(zfed_agg_strategy_name((zfed_agg_strategy_t)-1), "unknown");
    CHECK_STR(zfed_agg_value_strategy_list(), "fedavg, mean, median, trimmed-mean, min, max, sum");
    CHECK_STR(zfed_agg_strategy_list(), "fedavg, mean, median, trimmed-mean, min, max, sum, krum, "
                                        "fedavgm, fedadam, fedyogi");
    //  The model strategies parse, but a value aggregate refuses them.
    const char *models_only[] = {"krum", "fedavgm", "fedadam", "fedyogi"};
    for (size_t index = 0; index < 4; index++) {
        zfed_agg_strategy_t strategy;
        CHECK(zfed_agg_strategy_parse(models_only[index], &strategy) == 0);
        CHECK(zfed_agg_strategy_models_only(strategy));
        CHECK(zfed_agg_new(strategy, 1, 0.1) == NULL);
    }
    CHECK(!zfed_agg_strategy_models_only(ZFED_AGG_MEDIAN));

    //  Exact names only: no case folding, underscores, padding or prefixes.
    const char *unknown[] = {"", "FedAvg", "trimmed_mean", "trimmed", " mean", "mean ", "avg"};
    for (size_t index = 0; index < sizeof unknown / sizeof unknown[0]; index++) {
        zfed_agg_strategy_t parsed = ZFED_AGG_MEDIAN;
        CHECK_INT(zfed_agg_strategy_parse(unknown[index], &parsed), -1);
        CHECK_INT(parsed, ZFED_AGG_MEDIAN); //  untouched on failure
    }
    zfed_agg_strategy_t parsed;
    CHECK_INT(zfed_agg_strategy_parse(NULL, &parsed), -1);
    CHECK_INT(zfed_agg_strategy_parse("mean", NULL), -1);
}

//  fedavg, mean and sum add integers that fit 64 bits in a 128-bit sum
//  and the rest exactly: sums that overflow 128 bits, integers past 64
//  bits and fractions must all still give the exact rational, in any order.
static void s_test_wide_sums(void)
{
    const uint64_t heavy[] = {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX};
    //  Each term is about 2^127: the second one overflows 128 bits.
    const char *largest[] = {"9223372036854775807", "9223372036854775807", "9223372036854775807",
                             "9223372036854775807"};
    CHECK(s_scalar_is(ZFED_AGG_FEDAVG, 0, 4, largest, heavy, "9223372036854775807"));
    //  M + M - M - (M + 1) = -1, weighted by W each: -W / 4W; part of it
    //  overflows into the exact sum and comes back out of it.
    const char *mixed[] = {"9223372036854775807", "9223372036854775807", "-9223372036854775807",
                           "-9223372036854775808"};
    const char *reversed[] = {"-9223372036854775808", "-9223372036854775807", "9223372036854775807",
                              "9223372036854775807"};
    CHECK(s_scalar_is(ZFED_AGG_FEDAVG, 0, 4, mixed, heavy, "-1/4"));
    CHECK(s_scalar_is(ZFED_AGG_FEDAVG, 0, 4, reversed, heavy, "-1/4"));
    CHECK(s_scalar_is(ZFED_AGG_SUM, 0, 4, mixed, TEST_UNIT_WEIGHTS, "-1"));
    CHECK(s_scalar_is(ZFED_AGG_MEAN, 0, 4, mixed, TEST_UNIT_WEIGHTS, "-1/4"));
    //  2^63 does not fit 64 bits, 1/2 is no integer: both go exact, beside
    //  the small ones.
    const char *beyond[] = {"9223372036854775807", "9223372036854775808", "1/2",
                            "-9223372036854775808"};
    CHECK(s_scalar_is(ZFED_AGG_SUM, 0, 4, beyond, TEST_UNIT_WEIGHTS, "18446744073709551615/2"));
    CHECK(s_scalar_is(ZFED_AGG_MEAN, 0, 4, beyond, TEST_UNIT_WEIGHTS, "18446744073709551615/8"));
    const uint64_t weights[] = {1, 2, 3, 4};
    //  (M + 2 (M + 1) + 3/2 - 4 (M + 1)) / 10 = (-M - 1/2) / 10 = -(2^64 - 1) / 20
    CHECK(s_scalar_is(ZFED_AGG_FEDAVG, 0, 4, beyond, weights, "-3689348814741910323/4"));
}

//  The aggregate of results added with zfed_agg_add_u64 (alone, or mixed
//  with zfed_agg_add) against all of them added as rationals.
static int s_u64_agrees(zfed_agg_strategy_t strategy, size_t count, const uint64_t *values,
                        const uint64_t *weights, bool mixed)
{
    zfed_agg_t *wide = zfed_agg_new(strategy, 1, 0.2), *exact = zfed_agg_new(strategy, 1, 0.2);
    mpq_t value, out_wide, out_exact;
    mpq_inits(value, out_wide, out_exact, NULL);
    int rc = wide && exact ? 0 : -1;
    for (size_t index = 0; index < count && rc == 0; index++) {
        mpz_import(mpq_numref(value), 1, 1, sizeof values[index], 0, 0, &values[index]);
        mpz_set_ui(mpq_denref(value), 1);
        rc = zfed_agg_add(exact, (const mpq_t *)&value, weights[index]);
        if (rc == 0)
            rc = mixed && index % 2 ? zfed_agg_add(wide, (const mpq_t *)&value, weights[index])
                                    : zfed_agg_add_u64(wide, values[index], weights[index]);
    }
    int same = rc == 0 && zfed_agg_result(wide, &out_wide) == 0 &&
               zfed_agg_result(exact, &out_exact) == 0 && mpq_equal(out_wide, out_exact);
    if (!same)
        gmp_fprintf(stderr, "  %s%s: %Qd from the u64 adds, %Qd exactly\n",
                    zfed_agg_strategy_name(strategy), mixed ? " (mixed)" : "", out_wide, out_exact);
    mpq_clears(value, out_wide, out_exact, NULL);
    zfed_agg_destroy(&wide);
    zfed_agg_destroy(&exact);
    return same;
}

//  Small samples (fib's sums below 2^64) are added without GMP while 128
//  bits hold the running sum; at and past the boundary (products of two
//  64-bit numbers over 2^127, sums that overflow) they go exact, and the
//  aggregate is the same rational either way, for every strategy.
static void s_test_u64_adds(void)
{
    const uint64_t top = UINT64_MAX, half = (uint64_t)1 << 63;
    const uint64_t plain[] = {88, 0, 55, 143, 1};
    const uint64_t plain_weights[] = {10, 1, 9, 11, 2};
    //  half x top = 2^127 - 2^63 still fits a signed 128-bit integer;
    //  top x top, and half x top twice, do not.
    const uint64_t edge[] = {half, half, top, top, 1, top};
    const uint64_t edge_weights[] = {top, top, top, 1, top, top};
    for (size_t index = 0; index < TEST_STRATEGY_COUNT; index++) {
        zfed_agg_strategy_t strategy = s_all_strategies[index];
        CHECK(s_u64_agrees(strategy, 5, plain, plain_weights, false));
        CHECK(s_u64_agrees(strategy, 6, edge, edge_weights, false));
        CHECK(s_u64_agrees(strategy, 6, edge, edge_weights, true));
        CHECK(s_u64_agrees(strategy, 1, &half, &top, false));
    }
    zfed_agg_t *vector = zfed_agg_new(ZFED_AGG_SUM, 2, 0);
    CHECK_INT(zfed_agg_add_u64(vector, 1, 1), -1); //  one dimension only
    CHECK_INT(zfed_agg_add_u64(NULL, 1, 1), -1);
    zfed_agg_destroy(&vector);
}

int main(void)
{
    s_test_seed();
    s_test_levels();
    s_test_median_even();
    s_test_trimmed();
    s_test_min_max();
    s_test_huge_values();
    s_test_huge_weights();
    s_test_wide_sums();
    s_test_u64_adds();
    s_test_nothing_to_aggregate();
    s_test_vectors();
    s_test_order_independence();
    s_test_constructor();
    s_test_add();
    s_test_capacity();
    s_test_names();
    ZFED_TEST_END();
}
