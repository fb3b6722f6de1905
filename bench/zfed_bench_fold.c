/*  zfed-bench-fold - how fast the exact accumulator folds and rounds.

    Folds R updates (float32 unless --dtype says) of a model of SIZE bytes into one exact
    accumulator, the way a controller folds results as they arrive, and
    prints GB/s of update bytes beside two yardsticks measured in the same
    run on the same bytes: memcpy (the memory's speed) and a naive float64
    sum (acc[i] += w * (double)x[i]: what an inexact accumulator costs).

    The data is realistic: a global model ~N(0, 0.05), each update the
    global plus N(0, 0.005) noise, weights in 1..60000.  The accumulator's
    pages are touched before timing (as in every round after the first).

        zfed-bench-fold [--size 256MiB] [--results 5] [--repeat 3] [--scalar] [--dtype F32]
*/
#include "zfed/zfed_exact.h"
#include "core/zfed_cli.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROGRAM         "zfed-bench-fold"
#define DEFAULT_SIZE    (256ULL << 20)
#define DEFAULT_RESULTS 5
#define DEFAULT_REPEAT  3
#define MAX_RESULTS     64
#define WEIGHT_MAX      60000

static double s_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static uint64_t s_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

//  About N(0, sigma): the sum of four uniforms (fast, and plenty for data).
static double s_normal(uint64_t *state, double sigma)
{
    uint64_t bits = s_random(state);
    double sum = 0;
    for (int i = 0; i < 4; i++)
        sum += (double)((bits >> (16 * i)) & 0xffff) / 65536.0;
    return (sum - 2.0) * sigma * 1.7320508075688772; //  variance of the sum: 1/3
}

static void s_usage(void)
{
    printf("Usage: " PROGRAM " [OPTION]...\n"
           "Measure the exact accumulator's fold and round against memcpy.\n"
           "\n"
           "  --size BYTES     bytes per update (suffix KiB, MiB, GiB; default 256MiB)\n"
           "  --dtype NAME     F32 (default), F64, F16 or BF16\n"
           "  --results N      updates folded per round (default 5)\n"
           "  --repeat N       rounds timed; the best is printed (default 3)\n"
           "  --scalar         also time the fold without AVX2\n"
           "  -h, --help       show this help and exit\n");
}

//  Seconds for one round of folds (best of repeat), after one untimed one.
static double s_time_folds(zfed_exact_t *acc, uint8_t **updates, const uint64_t *weights,
                           int results, zfed_dtype_t dtype, uint64_t count, int repeat)
{
    char error[256];
    double best = INFINITY;
    for (int trial = -1; trial < repeat; trial++) {
        zfed_exact_reset(acc);
        double start = s_now();
        for (int r = 0; r < results; r++)
            if (zfed_exact_fold(acc, 0, updates[r], dtype, count, weights[r], error,
                                sizeof error) != 0) {
                fprintf(stderr, PROGRAM ": fold: %s\n", error);
                exit(1);
            }
        double seconds = s_now() - start;
        if (trial >= 0 && seconds < best)
            best = seconds;
    }
    return best;
}

//  Seconds of the naive float64 sum over every update (F32 and F64; 0 for
//  the 16-bit types, which have no plain C loop to compare with).
static double s_time_naive(double *sums, uint8_t **updates, const uint64_t *weights, int results,
                           zfed_dtype_t dtype, uint64_t count)
{
    if (dtype != ZFED_DTYPE_F32 && dtype != ZFED_DTYPE_F64)
        return 0;
    memset(sums, 0, count * sizeof *sums);
    double start = s_now();
    for (int r = 0; r < results; r++) {
        double weight = (double)weights[r];
        if (dtype == ZFED_DTYPE_F32) {
            const float *x = (const float *)updates[r];
            for (uint64_t i = 0; i < count; i++)
                sums[i] += weight * (double)x[i];
        } else {
            const double *x = (const double *)updates[r];
            for (uint64_t i = 0; i < count; i++)
                sums[i] += weight * x[i];
        }
    }
    return s_now() - start;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"size", required_argument, NULL, 's'},
        {"results", required_argument, NULL, 'r'},
        {"repeat", required_argument, NULL, 'n'},
        {"scalar", no_argument, NULL, 'c'},
        {"dtype", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t size = DEFAULT_SIZE;
    int results = DEFAULT_RESULTS, repeat = DEFAULT_REPEAT;
    bool scalar = false;
    zfed_dtype_t dtype = ZFED_DTYPE_F32;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (option) {
        case 's':
            size = zfed_cli_bytes(PROGRAM, "--size", optarg, 32, 64ULL << 30) & ~31ULL;
            break;
        case 'r':
            results = (int)zfed_cli_u32(PROGRAM, "--results", optarg, 1, MAX_RESULTS);
            break;
        case 'n':
            repeat = (int)zfed_cli_u32(PROGRAM, "--repeat", optarg, 1, 1000);
            break;
        case 'c':
            scalar = true;
            break;
        case 'd':
            if (zfed_dtype_parse(optarg, &dtype) != 0 || !zfed_dtype_is_float(dtype))
                zfed_cli_fail(PROGRAM, "--dtype: expected F32, F64, F16 or BF16, got '%s'", optarg);
            break;
        case 'h':
            s_usage();
            return 0;
        default:
            zfed_cli_bad_option(PROGRAM, argc, argv, option);
        }
    }
    size_t element = zfed_dtype_size(dtype);
    uint64_t count = size / element;
    uint64_t state = 42;
    uint8_t *updates[MAX_RESULTS];
    uint64_t weights[MAX_RESULTS];
    double *global = malloc(count * sizeof(double));
    double *sums = malloc(count * sizeof(double));
    uint8_t *copy = malloc(size);
    if (!global || !sums || !copy)
        return 1;
    for (uint64_t i = 0; i < count; i++)
        global[i] = s_normal(&state, 0.05);
    for (int r = 0; r < results; r++) {
        updates[r] = malloc(size);
        if (!updates[r])
            return 1;
        weights[r] = 1 + s_random(&state) % WEIGHT_MAX;
        for (uint64_t i = 0; i < count; i++)
            zfed_dtype_set_f64(dtype, updates[r], i, global[i] + s_normal(&state, 0.005));
    }
    double bytes = (double)size * results;

    //  memcpy of the same bytes, and the naive float64 sum.
    memset(copy, 0, size);
    double copy_best = INFINITY, naive_best = INFINITY;
    for (int trial = 0; trial < repeat; trial++) {
        double start = s_now();
        for (int r = 0; r < results; r++)
            memcpy(copy, updates[r], size);
        double seconds = s_now() - start;
        copy_best = seconds < copy_best ? seconds : copy_best;
        seconds = s_time_naive(sums, updates, weights, results, dtype, count);
        naive_best = seconds < naive_best ? seconds : naive_best;
    }

    zfed_exact_t *acc = zfed_exact_new(count);
    if (!acc)
        return 1;
    bool simd = zfed_exact_simd() && dtype != ZFED_DTYPE_F64;
    double fold_best = s_time_folds(acc, updates, weights, results, dtype, count, repeat);
    zfed_exact_stats_t stats;
    zfed_exact_stats(acc, &stats);
    double scalar_best = 0;
    if (scalar && simd) {
        zfed_exact_set_simd(false);
        scalar_best = s_time_folds(acc, updates, weights, results, dtype, count, repeat);
        zfed_exact_set_simd(true);
    }
    uint64_t total = 0;
    for (int r = 0; r < results; r++)
        total += weights[r];
    char error[256];
    double round_best = INFINITY;
    for (int trial = 0; trial < repeat; trial++) {
        double start = s_now();
        if (zfed_exact_round(acc, 0, count, total, dtype, copy, error, sizeof error) != 0) {
            fprintf(stderr, PROGRAM ": round: %s\n", error);
            return 1;
        }
        double seconds = s_now() - start;
        round_best = seconds < round_best ? seconds : round_best;
    }
    //  The naive mean agrees with the exact one to float precision.
    double worst = 0;
    for (uint64_t i = 0; naive_best > 0 && i < count; i += 4096) {
        double exact = zfed_dtype_get_f64(dtype, copy, i);
        double gap = fabs(sums[i] / (double)total - exact) / (fabs(exact) + 1e-30);
        worst = gap > worst ? gap : worst;
    }

    printf(PROGRAM ": %.0f MiB %s update x %d results, weights 1..%d, fold %s, best of %d\n",
           (double)size / (1 << 20), zfed_dtype_name(dtype), results, WEIGHT_MAX,
           simd ? "AVX2" : "scalar", repeat);
    printf("  memcpy            %6.2f GB/s\n", bytes / copy_best * 1e-9);
    if (naive_best > 0)
        printf("  naive f64 sum     %6.2f GB/s   (relative gap to the exact mean %.1e)\n",
               bytes / naive_best * 1e-9, worst);
    printf("  exact fold        %6.2f GB/s   %.2fx memcpy\n", bytes / fold_best * 1e-9,
           copy_best / fold_best);
    if (scalar_best > 0)
        printf("  exact fold scalar %6.2f GB/s\n", bytes / scalar_best * 1e-9);
    printf("  exact round       %6.2f GB/s   of %s output (mean by the total weight)\n",
           (double)size / round_best * 1e-9, zfed_dtype_name(dtype));
    printf("  accumulator       %.1f bytes/element, %llu of %llu elements spilled, %s\n",
           (double)stats.bytes / (double)count, (unsigned long long)stats.spilled,
           (unsigned long long)count, stats.wide ? "wide" : "narrow");
    zfed_exact_destroy(&acc);
    for (int r = 0; r < results; r++)
        free(updates[r]);
    free(global);
    free(sums);
    free(copy);
    return 0;
}
