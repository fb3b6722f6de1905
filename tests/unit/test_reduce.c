/*  test_reduce - median, trimmed mean, min and max against GMP rationals
    (sorted exactly, middle values averaged exactly and rounded by the
    independent reference of zfed_test_model.h), in every source order;
    Krum and norms against a direct computation, and independent of the
    order chunks come in; one step of each server optimiser against the
    formulas written out here.
*/
#include "zfed/zfed_reduce.h"
#include "zfed_test.h"
#include "zfed_test_model.h"

#include <stdlib.h>

#define MAX_SOURCES 16

//  Chunks of count elements from n sources of dtype: values of mixed
//  magnitude and sign, with repeats (ties) and zeros of both signs.
static uint8_t *s_sources[MAX_SOURCES];

static void s_make(zfed_dtype_t dtype, size_t n, size_t count, uint64_t seed)
{
    uint64_t state = seed;
    size_t size = zfed_dtype_size(dtype);
    for (size_t r = 0; r < n; r++) {
        free(s_sources[r]);
        s_sources[r] = malloc(count * size);
        for (size_t i = 0; i < count; i++) {
            uint64_t pick = zfed_test_random(&state), bits;
            double value = zfed_test_normal(&state, pick % 3 ? 1.0 : 1e6) * (pick % 7 ? 1 : 1e-30);
            if (pick % 11 == 0)
                value = (pick >> 8) % 2 ? 0.0 : -0.0;
            if (pick % 13 == 0 && r > 0) { //  a tie with source 0
                memcpy(s_sources[r] + i * size, s_sources[0] + i * size, size);
                continue;
            }
            if (!zfed_dtype_is_float(dtype)) {
                bits = zfed_test_random(&state); //  any integer
                memcpy(s_sources[r] + i * size, &bits, size);
            } else if (zfed_dtype_set_f64(dtype, s_sources[r], i,
                                          dtype == ZFED_DTYPE_F16 ? value / 1e3 : value) != 0) {
                zfed_dtype_set_f64(dtype, s_sources[r], i, 1.0); //  stay finite
            }
        }
    }
}

static int s_compare_mpq(const void *left, const void *right)
{
    return mpq_cmp(*(const mpq_t *)left, *(const mpq_t *)right);
}

//  Reference trimmed mean (trimmed values cut from each end) of element i.
static void s_reference(mpq_t out, zfed_dtype_t dtype, size_t n, size_t i, size_t trimmed)
{
    mpq_t values[MAX_SOURCES];
    for (size_t r = 0; r < n; r++) {
        mpq_init(values[r]);
        zfed_test_value_mpq(values[r], dtype, s_sources[r], i);
    }
    qsort(values, n, sizeof *values, s_compare_mpq);
    mpq_set_ui(out, 0, 1);
    for (size_t r = trimmed; r < n - trimmed; r++)
        mpq_add(out, out, values[r]);
    mpq_t kept;
    mpq_init(kept);
    mpq_set_ui(kept, (unsigned long)(n - 2 * trimmed), 1);
    mpq_div(out, out, kept);
    mpq_clear(kept);
    for (size_t r = 0; r < n; r++)
        mpq_clear(values[r]);
}

//  Runs median (trim < 0) or trimmed mean over the sources in a shuffled
//  order and compares with the reference.
static void s_check_trimmed(zfed_reduce_t *reduce, zfed_dtype_t dtype, size_t n, size_t count,
                            double trim, uint64_t seed)
{
    const void *sources[MAX_SOURCES];
    uint64_t state = seed;
    size_t order[MAX_SOURCES];
    for (size_t r = 0; r < n; r++)
        order[r] = r;
    for (size_t r = n; r > 1; r--) {
        size_t j = zfed_test_random(&state) % r, swap = order[r - 1];
        order[r - 1] = order[j];
        order[j] = swap;
    }
    for (size_t r = 0; r < n; r++)
        sources[r] = s_sources[order[r]];
    size_t size = zfed_dtype_size(dtype);
    uint8_t *out = malloc(count * size);
    char error[256];
    int rc = trim < 0
                 ? zfed_reduce_median(reduce, sources, n, dtype, count, out, error, sizeof error)
                 : zfed_reduce_trimmed_mean(reduce, sources, n, dtype, count, trim, out, error,
                                            sizeof error);
    CHECK(rc == 0);
    if (rc != 0)
        fprintf(stderr, "%s\n", error);
    size_t trimmed = trim < 0 ? (n - 1) / 2 : zfed_reduce_trim_count(trim, n);
    mpq_t expected;
    mpq_init(expected);
    size_t mismatches = 0;
    for (size_t i = 0; rc == 0 && i < count && mismatches < 5; i++) {
        s_reference(expected, dtype, n, i, trimmed);
        if (n - 2 * trimmed == 1) {
            //  One kept value: its bytes exactly (a -0.0 stays -0.0).
            bool found = false;
            for (size_t r = 0; r < n; r++)
                found |= memcmp(out + i * size, s_sources[r] + i * size, size) == 0;
            mpq_t got;
            mpq_init(got);
            zfed_test_value_mpq(got, dtype, out, i);
            if (!found || !mpq_equal(got, expected))
                mismatches++;
            mpq_clear(got);
        } else if (!zfed_test_matches(expected, dtype, out, i)) {
            mismatches++;
        }
    }
    if (mismatches)
        fprintf(stderr, "%s n %zu trim %g: mismatches\n", zfed_dtype_name(dtype), n, trim);
    CHECK(mismatches == 0);
    mpq_clear(expected);
    free(out);
}

static void test_order_statistics(void)
{
    zfed_reduce_t *reduce = zfed_reduce_new();
    for (int d = 0; d < ZFED_DTYPE_COUNT; d++) {
        zfed_dtype_t dtype = (zfed_dtype_t)d;
        static const size_t ns[] = {1, 2, 3, 4, 5, 10, 16};
        for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
            size_t n = ns[k], count = n == 5 ? 4099 : 300; //  past one block
            s_make(dtype, n, count, 100 + (uint64_t)d * 10 + k);
            for (uint64_t shuffle = 0; shuffle < 2; shuffle++) {
                s_check_trimmed(reduce, dtype, n, count, -1, shuffle);
                s_check_trimmed(reduce, dtype, n, count, 0.1, shuffle);
                s_check_trimmed(reduce, dtype, n, count, 0.25, shuffle);
                s_check_trimmed(reduce, dtype, n, count, 0.0, shuffle);
            }
        }
    }
    zfed_reduce_destroy(&reduce);
    zfed_reduce_destroy(&reduce);
    CHECK(reduce == NULL);
}

static void test_min_max(void)
{
    zfed_reduce_t *reduce = zfed_reduce_new();
    float a[] = {1.0f, -0.0f, 0.0f, -3.0f, 7.0f};
    float b[] = {2.0f, 0.0f, -0.0f, -2.0f, -7.0f};
    const void *sources[] = {a, b};
    float low[5], high[5];
    char error[256];
    CHECK(zfed_reduce_min(reduce, sources, 2, ZFED_DTYPE_F32, 5, low, error, sizeof error) == 0);
    CHECK(zfed_reduce_max(reduce, sources, 2, ZFED_DTYPE_F32, 5, high, error, sizeof error) == 0);
    CHECK(low[0] == 1.0f && high[0] == 2.0f);
    CHECK(low[1] == 0.0f && signbit(low[1]) && high[1] == 0.0f && !signbit(high[1]));
    CHECK(signbit(low[2]) && !signbit(high[2])); //  the same whichever source has which
    CHECK(low[3] == -3.0f && high[3] == -2.0f && low[4] == -7.0f && high[4] == 7.0f);
    int8_t c[] = {-128, 127, 0}, e[] = {127, -128, -1};
    const void *ints[] = {c, e};
    int8_t small[3], big[3];
    CHECK(zfed_reduce_min(reduce, ints, 2, ZFED_DTYPE_I8, 3, small, error, sizeof error) == 0);
    CHECK(zfed_reduce_max(reduce, ints, 2, ZFED_DTYPE_I8, 3, big, error, sizeof error) == 0);
    CHECK(small[0] == -128 && small[1] == -128 && small[2] == -1);
    CHECK(big[0] == 127 && big[1] == 127 && big[2] == 0);
    uint64_t u[] = {UINT64_MAX, 0}, w[] = {1, 5};
    const void *unsigned_sources[] = {u, w};
    uint64_t out[2];
    CHECK(zfed_reduce_min(reduce, unsigned_sources, 2, ZFED_DTYPE_U64, 2, out, error,
                          sizeof error) == 0);
    CHECK(out[0] == 1 && out[1] == 0);
    //  Refusals name the source and element.
    b[3] = NAN;
    CHECK(zfed_reduce_max(reduce, sources, 2, ZFED_DTYPE_F32, 5, high, error, sizeof error) == -1);
    CHECK_STR(error, "source 1 element 3: NaN");
    CHECK(zfed_reduce_median(reduce, sources, 2, ZFED_DTYPE_F32, 5, high, error, sizeof error) ==
          -1);
    CHECK_STR(error, "source 1 element 3: NaN");
    CHECK(zfed_reduce_median(reduce, sources, 0, ZFED_DTYPE_F32, 5, high, error, sizeof error) ==
          -1);
    CHECK_STR(error, "sources: 0, expected 1 to 4096");
    CHECK(zfed_reduce_trimmed_mean(reduce, sources, 2, ZFED_DTYPE_F32, 5, 0.5, high, error,
                                   sizeof error) == -1);
    CHECK_STR(error, "trim: 0.5, expected a fraction in [0, 0.5)");
    zfed_reduce_destroy(&reduce);
}

static void test_trim_count(void)
{
    CHECK_INT(zfed_reduce_trim_count(0.1, 10), 1);
    CHECK_INT(zfed_reduce_trim_count(0.1, 9), 0);
    CHECK_INT(zfed_reduce_trim_count(0.2, 5), 1);
    CHECK_INT(zfed_reduce_trim_count(0.3, 10), 3);
    CHECK_INT(zfed_reduce_trim_count(0.49, 3), 1);
    CHECK_INT(zfed_reduce_trim_count(0.49999, 2), 0); //  at least one value survives
    CHECK_INT(zfed_reduce_trim_count(0.0, 100), 0);
    CHECK_INT(zfed_reduce_trim_count(0.25, 0), 0);
}

//  Five sources near 1.0 and one far away: Krum picks among the near ones.
static void test_krum(void)
{
    enum { N = 6, COUNT = 1000 };
    static float data[N][COUNT];
    uint64_t state = 9;
    for (size_t r = 0; r < N; r++)
        for (size_t i = 0; i < COUNT; i++)
            data[r][i] =
                (float)(1.0 + zfed_test_normal(&state, r == 3 ? 5.0 : 0.01 * (double)(r + 1)));
    const void *sources[N];
    for (size_t r = 0; r < N; r++)
        sources[r] = data[r];
    char error[256];
    zfed_krum_t *whole = zfed_krum_new(N);
    CHECK(zfed_krum_add(whole, sources, ZFED_DTYPE_F32, COUNT, error, sizeof error) == 0);
    //  The same in three chunks, added last first: the same distances.
    zfed_krum_t *chunked = zfed_krum_new(N);
    static const size_t cuts[] = {0, 123, 640, COUNT};
    for (int c = 2; c >= 0; c--) {
        const void *parts[N];
        for (size_t r = 0; r < N; r++)
            parts[r] = data[r] + cuts[c];
        CHECK(zfed_krum_add(chunked, parts, ZFED_DTYPE_F32, cuts[c + 1] - cuts[c], error,
                            sizeof error) == 0);
    }
    zfed_krum_t *reversed = zfed_krum_new(N);
    for (int c = 0; c < 3; c++) {
        const void *parts[N];
        for (size_t r = 0; r < N; r++)
            parts[r] = data[r] + cuts[c];
        CHECK(zfed_krum_add(reversed, parts, ZFED_DTYPE_F32, cuts[c + 1] - cuts[c], error,
                            sizeof error) == 0);
    }
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++) {
            double direct = 0;
            for (size_t k = 0; k < COUNT; k++) {
                double d = (double)data[i][k] - (double)data[j][k];
                direct += d * d;
            }
            double got = zfed_krum_distance(whole, i, j);
            CHECK(fabs(got - direct) <= 1e-12 * direct);
            CHECK(zfed_krum_distance(chunked, i, j) == zfed_krum_distance(reversed, i, j));
            CHECK(zfed_krum_distance(whole, i, j) == zfed_krum_distance(whole, j, i));
        }
    size_t selected[N];
    double scores[N];
    CHECK(zfed_krum_select(whole, 1, 1, selected, scores, error, sizeof error) == 0);
    CHECK(selected[0] == 0); //  the tightest source
    //  score(i): the n - f - 2 = 3 smallest distances from i, summed.
    for (size_t i = 0; i < N; i++) {
        double distances[N - 1];
        size_t used = 0;
        for (size_t j = 0; j < N; j++)
            if (j != i)
                distances[used++] = zfed_krum_distance(whole, i, j);
        for (size_t a = 0; a < used; a++)
            for (size_t b = a + 1; b < used; b++)
                if (distances[b] < distances[a]) {
                    double swap = distances[a];
                    distances[a] = distances[b];
                    distances[b] = swap;
                }
        CHECK(scores[i] == distances[0] + distances[1] + distances[2]);
    }
    CHECK(zfed_krum_select(whole, 1, 5, selected, NULL, error, sizeof error) == 0);
    for (size_t k = 0; k < 5; k++)
        CHECK(selected[k] != 3); //  Multi-Krum leaves the outlier out
    CHECK(zfed_krum_select(whole, 2, 1, selected, NULL, error, sizeof error) == -1);
    CHECK_STR(error, "f: 2 Byzantine sources need more than 6 sources, got 6");
    CHECK(zfed_krum_select(whole, 1, 6, selected, NULL, error, sizeof error) == -1);
    CHECK_STR(error, "m: 6, expected 1 to n - f = 5");
    //  Ties go to the lower index.
    zfed_krum_t *same = zfed_krum_new(4);
    const void *copies[4] = {data[0], data[0], data[0], data[0]};
    CHECK(zfed_krum_add(same, copies, ZFED_DTYPE_F32, COUNT, error, sizeof error) == 0);
    CHECK(zfed_krum_select(same, 0, 3, selected, NULL, error, sizeof error) == 0);
    CHECK(selected[0] == 0 && selected[1] == 1 && selected[2] == 2);
    data[2][7] = INFINITY;
    CHECK(zfed_krum_add(same, sources, ZFED_DTYPE_F32, COUNT, error, sizeof error) == -1);
    CHECK_STR(error, "source 2 element 7: +Inf");
    CHECK(zfed_krum_new(1) == NULL);
    zfed_krum_destroy(&same);
    zfed_krum_destroy(&whole);
    zfed_krum_destroy(&chunked);
    zfed_krum_destroy(&reversed);
    zfed_krum_destroy(&whole);
}

static void test_norm(void)
{
    double x[5] = {3, 4, 0, 1, -1}, g[5] = {0, 0, 0, 1, -1};
    zfed_norm_t *norm = zfed_norm_new(2);
    char error[256];
    CHECK(zfed_norm_add(norm, 0, x + 2, g + 2, ZFED_DTYPE_F64, 3, error, sizeof error) == 0);
    CHECK(zfed_norm_add(norm, 0, x, g, ZFED_DTYPE_F64, 2, error, sizeof error) == 0);
    CHECK(zfed_norm_get(norm, 0) == 5.0);
    CHECK(zfed_norm_add(norm, 1, x, NULL, ZFED_DTYPE_F64, 5, error, sizeof error) == 0);
    CHECK(zfed_norm_get(norm, 1) == sqrt(27.0));
    CHECK(zfed_norm_add(norm, 2, x, NULL, ZFED_DTYPE_F64, 5, error, sizeof error) == -1);
    g[1] = NAN;
    CHECK(zfed_norm_add(norm, 0, x, g, ZFED_DTYPE_F64, 5, error, sizeof error) == -1);
    CHECK_STR(error, "global 0 element 1: NaN");
    uint16_t halves[2] = {0x3c00, 0x4000}; //  1, 2
    CHECK(zfed_reduce_sqdist(halves, NULL, ZFED_DTYPE_F16, 2) == 5.0);
    zfed_norm_destroy(&norm);
}

static void test_optimisers(void)
{
    zfed_opt_t opt;
    zfed_opt_kind_t kind;
    CHECK(zfed_opt_parse("fedyogi", &kind) == 0 && kind == ZFED_OPT_FEDYOGI);
    CHECK(zfed_opt_parse("adam", &kind) == -1);
    CHECK_STR(zfed_opt_name(ZFED_OPT_FEDADAM), "fedadam");
    zfed_opt_defaults(ZFED_OPT_FEDAVGM, &opt);
    CHECK(opt.lr == 1.0 && opt.beta1 == 0.9 && !zfed_opt_has_v(opt.kind));
    zfed_opt_defaults(ZFED_OPT_FEDADAM, &opt);
    CHECK(opt.lr == 0.01 && opt.beta1 == 0.9 && opt.beta2 == 0.99 && opt.tau == 1e-3);
    char error[256];
    CHECK(zfed_opt_check(&opt, error, sizeof error) == 0);
    opt.beta2 = 1.0;
    CHECK(zfed_opt_check(&opt, error, sizeof error) == -1);
    CHECK_STR(error, "beta2: 1, expected a number in [0, 1)");
    opt.beta2 = 0.99;
    opt.lr = 0;
    CHECK(zfed_opt_check(&opt, error, sizeof error) == -1);
    CHECK_STR(error, "lr: 0, expected a number above 0");

    //  FedAvgM with no momentum and lr 1 is plain FedAvg: x' = avg.
    float x[3] = {1.0f, -2.0f, 0.5f}, avg[3] = {1.5f, -2.25f, 0.5f}, m[3];
    zfed_opt_defaults(ZFED_OPT_FEDAVGM, &opt);
    opt.beta1 = 0;
    zfed_opt_init(&opt, m, NULL, 3);
    CHECK(zfed_opt_step(&opt, x, avg, ZFED_DTYPE_F32, m, NULL, 3, error, sizeof error) == 0);
    CHECK(memcmp(x, avg, sizeof x) == 0);
    //  With momentum: the second step adds b1 times the first.
    float y[1] = {0.0f}, target[1] = {1.0f}, momentum[1];
    zfed_opt_defaults(ZFED_OPT_FEDAVGM, &opt);
    opt.lr = 0.5;
    zfed_opt_init(&opt, momentum, NULL, 1);
    CHECK(zfed_opt_step(&opt, y, target, ZFED_DTYPE_F32, momentum, NULL, 1, error, sizeof error) ==
          0);
    CHECK(y[0] == 0.5f && momentum[0] == 1.0f);
    CHECK(zfed_opt_step(&opt, y, target, ZFED_DTYPE_F32, momentum, NULL, 1, error, sizeof error) ==
          0);
    CHECK(momentum[0] == (float)(0.9 * 1.0 + 0.5) &&
          y[0] == (float)(0.5 + 0.5 * (double)momentum[0]));

    //  FedAdam and FedYogi, one step each, written out.
    static const zfed_opt_kind_t adaptive[] = {ZFED_OPT_FEDADAM, ZFED_OPT_FEDYOGI};
    for (int k = 0; k < 2; k++) {
        zfed_opt_defaults(adaptive[k], &opt);
        double xs[2] = {0.25, -1.0}, avgs[2] = {0.75, -1.0};
        float ms[2], vs[2];
        zfed_opt_init(&opt, ms, vs, 2);
        CHECK(vs[0] == (float)(1e-3 * 1e-3) && ms[1] == 0.0f);
        double delta = 0.5, v0 = (double)(float)1e-6;
        float expected_m = (float)(0.1 * delta);
        float expected_v = adaptive[k] == ZFED_OPT_FEDADAM
                               ? (float)(0.99 * v0 + 0.01 * delta * delta)
                               : (float)(v0 + 0.01 * delta * delta); //  v < delta^2: grows
        double expected_x = 0.25 + 0.01 * (double)expected_m / (sqrt((double)expected_v) + 1e-3);
        CHECK(zfed_opt_step(&opt, xs, avgs, ZFED_DTYPE_F64, ms, vs, 2, error, sizeof error) == 0);
        CHECK(ms[0] == expected_m && vs[0] == expected_v && xs[0] == expected_x);
        CHECK(xs[1] == -1.0 && ms[1] == 0.0f); //  no change where delta is 0
        if (adaptive[k] == ZFED_OPT_FEDYOGI)
            CHECK(vs[1] == (float)((double)(float)1e-6 - 0.01 * 0 * 1)); //  sign(v) = +1, delta 0
        CHECK(zfed_opt_step(&opt, xs, avgs, ZFED_DTYPE_F64, ms, NULL, 2, error, sizeof error) ==
              -1);
        CHECK(strstr(error, "v: missing") != NULL);
    }
    //  A step out of F16's range is an error naming the element.
    uint16_t h[2] = {0x3c00, 0x7bff}, target16[2] = {0x3c00, 0x7bff};
    zfed_opt_defaults(ZFED_OPT_FEDAVGM, &opt);
    opt.lr = 1e6;
    float fm[2] = {0.0f, 1.0f};
    CHECK(zfed_opt_step(&opt, h, target16, ZFED_DTYPE_F16, fm, NULL, 2, error, sizeof error) == -1);
    CHECK(strstr(error, "element 1: fedavgm step gives") && strstr(error, "not a finite F16"));
    int32_t ints[1] = {1};
    CHECK(zfed_opt_step(&opt, ints, ints, ZFED_DTYPE_I32, fm, NULL, 1, error, sizeof error) == -1);
    CHECK(strstr(error, "dtype: I32") != NULL);
}

int main(void)
{
    test_trim_count();
    test_order_statistics();
    test_min_max();
    test_krum();
    test_norm();
    test_optimisers();
    for (size_t r = 0; r < MAX_SOURCES; r++)
        free(s_sources[r]);
    ZFED_TEST_END();
}
