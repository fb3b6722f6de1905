/*  zfed_combine - the arithmetic of one window.

    Every strategy goes run by run (one tensor's elements of the window),
    so each call into zfed_exact or zfed_reduce sees one dtype.  Errors
    from those name an element of the run; they are wrapped here with the
    tensor and the run's first element, so a person can find it.
*/
#include "controller/zfed_combine.h"
#include "zfed/zfed_exact.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Elements per block of the exact strategies: 320 KiB of accumulator.
#define COMBINE_BLOCK 32768

struct _zfed_combine_t {
    const zfed_layout_t *layout;
    size_t sources;
    zfed_exact_t *acc; //  one block
    zfed_reduce_t *reduce;
    const void **pointers; //  sources entries: the sources' bytes of one run
    double *average;       //  one block, the optimisers' a and x
    double *x;
    zfed_exact_t *norms; //  squared update norms, one per source
};

zfed_combine_t *zfed_combine_new(const zfed_layout_t *layout, const zfed_windows_t *windows,
                                 size_t sources)
{
    zfed_combine_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->layout = layout;
    self->sources = sources;
    (void)windows;
    self->acc = zfed_exact_new(COMBINE_BLOCK);
    self->reduce = zfed_reduce_new();
    self->pointers = calloc(sources ? sources : 1, sizeof *self->pointers);
    self->average = malloc(COMBINE_BLOCK * sizeof *self->average);
    self->x = malloc(COMBINE_BLOCK * sizeof *self->x);
    self->norms = zfed_exact_new(sources ? sources : 1);
    if (!self->acc || !self->reduce || !self->pointers || !self->average || !self->x ||
        !self->norms)
        zfed_combine_destroy(&self);
    return self;
}

void zfed_combine_destroy(zfed_combine_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_combine_t *self = *self_p;
    zfed_exact_destroy(&self->acc);
    zfed_exact_destroy(&self->norms);
    zfed_reduce_destroy(&self->reduce);
    free(self->pointers);
    free(self->average);
    free(self->x);
    free(self);
    *self_p = NULL;
}

static const zfed_tensor_t *s_tensor(const zfed_combine_t *self, const zfed_run_t *run)
{
    return zfed_layout_tensor(self->layout, run->tensor);
}

//  "tensor NAME (elements from FIRST): REASON" in place of reason, for the
//  elements of run from its element at.
static int s_locate(const zfed_combine_t *self, const zfed_run_t *run, uint64_t at, char *error,
                    size_t error_size)
{
    char reason[512];
    snprintf(reason, sizeof reason, "%s", error);
    snprintf(error, error_size, "tensor %s (elements from %" PRIu64 "): %s",
             s_tensor(self, run)->name, run->first + at, reason);
    return -1;
}

//  The sources' bytes of run, in self->pointers.
static const void *const *s_point(zfed_combine_t *self, const zfed_run_t *run,
                                  const uint8_t *const *sources, size_t n)
{
    for (size_t i = 0; i < n; i++)
        self->pointers[i] = sources[i] + run->offset;
    return self->pointers;
}

//  Folds run of every source into the accumulator at the run's elements.
//  The exact strategies go through a window a block of elements at a time:
//  every source's block folds into the accumulator, which stays in cache
//  (COMBINE_BLOCK elements of 10 bytes) while the block is rounded out.  A
//  block is made of pieces: runs, or parts of them.
typedef struct {
    size_t run;  //  index in the window
    uint64_t at; //  elements of that run already taken
} cursor_t;

//  The next piece from *cursor, at most room elements: its run, first
//  element in the run and count.  false when the window or the room is
//  done.
static bool s_piece(const zfed_window_t *window, cursor_t *cursor, uint64_t room,
                    const zfed_run_t **run, uint64_t *at, uint64_t *count)
{
    while (cursor->run < window->runs && cursor->at >= window->run[cursor->run].count) {
        cursor->run++;
        cursor->at = 0;
    }
    if (cursor->run >= window->runs || room == 0)
        return false;
    *run = &window->run[cursor->run];
    *at = cursor->at;
    uint64_t left = (*run)->count - cursor->at;
    *count = left < room ? left : room;
    cursor->at += *count;
    return true;
}

//  Folds the next block's pieces from *cursor of every source; *cursor
//  moves past them.  0 or -1.
static int s_fold_block(zfed_combine_t *self, const zfed_window_t *window, cursor_t *cursor,
                        const uint8_t *const *sources, const uint64_t *weights, size_t n,
                        char *error, size_t error_size)
{
    zfed_exact_reset(self->acc);
    const zfed_run_t *run;
    uint64_t at, count, used = 0;
    while (s_piece(window, cursor, COMBINE_BLOCK - used, &run, &at, &count)) {
        zfed_dtype_t dtype = s_tensor(self, run)->dtype;
        size_t offset = (size_t)(run->offset + at * zfed_dtype_size(dtype));
        for (size_t i = 0; i < n; i++)
            if (zfed_exact_fold(self->acc, used, sources[i] + offset, dtype, count,
                                weights ? weights[i] : 1, error, error_size) != 0)
                return s_locate(self, run, at, error, error_size);
        used += count;
    }
    return 0;
}

static int s_blocks(zfed_combine_t *self, const zfed_opt_t *opt, const zfed_window_t *window,
                    const uint8_t *const *sources, const uint64_t *weights, size_t n,
                    uint64_t divisor, const uint8_t *global, float *m, float *v, uint8_t *out,
                    char *error, size_t error_size);

int zfed_combine_exact(zfed_combine_t *self, const zfed_window_t *window,
                       const uint8_t *const *sources, const uint64_t *weights, size_t n,
                       uint64_t divisor, uint8_t *out, char *error, size_t error_size)
{
    return s_blocks(self, NULL, window, sources, weights, n, divisor, NULL, NULL, NULL, out, error,
                    error_size);
}

int zfed_combine_reduce(zfed_combine_t *self, zfed_agg_strategy_t strategy, double trim,
                        const zfed_window_t *window, const uint8_t *const *sources, size_t n,
                        uint8_t *out, char *error, size_t error_size)
{
    for (size_t r = 0; r < window->runs; r++) {
        const zfed_run_t *run = &window->run[r];
        const void *const *at = s_point(self, run, sources, n);
        zfed_dtype_t dtype = s_tensor(self, run)->dtype;
        size_t count = (size_t)run->count;
        void *into = out + run->offset;
        int rc;
        switch (strategy) {
        case ZFED_AGG_MEDIAN:
            rc = zfed_reduce_median(self->reduce, at, n, dtype, count, into, error, error_size);
            break;
        case ZFED_AGG_TRIMMED_MEAN:
            rc = zfed_reduce_trimmed_mean(self->reduce, at, n, dtype, count, trim, into, error,
                                          error_size);
            break;
        case ZFED_AGG_MIN:
            rc = zfed_reduce_min(self->reduce, at, n, dtype, count, into, error, error_size);
            break;
        case ZFED_AGG_MAX:
            rc = zfed_reduce_max(self->reduce, at, n, dtype, count, into, error, error_size);
            break;
        default:
            snprintf(error, error_size, "strategy %s is not a reduction",
                     zfed_agg_strategy_name(strategy));
            return -1;
        }
        if (rc != 0)
            return s_locate(self, run, 0, error, error_size);
    }
    return 0;
}

//  One piece of a folded block out: the average rounded once into the
//  dtype, or with opt, the server step: a (the average, rounded once to
//  float64) and x in float64 (exact for every float dtype); the step
//  computes x + step in float64 and the new x is rounded once into the
//  dtype.
static int s_out_piece(zfed_combine_t *self, const zfed_opt_t *opt, const zfed_run_t *run,
                       uint64_t at, uint64_t first, size_t count, uint64_t divisor,
                       const uint8_t *global, float *m, float *v, uint8_t *out, char *error,
                       size_t error_size)
{
    zfed_dtype_t dtype = s_tensor(self, run)->dtype;
    size_t offset = (size_t)(run->offset + at * zfed_dtype_size(dtype));
    if (!opt || !zfed_dtype_is_float(dtype)) {
        //  Integer tensors take the average itself (MODELS.md 10).
        if (zfed_exact_round(self->acc, first, count, divisor, dtype, out + offset, error,
                             error_size) != 0)
            return s_locate(self, run, at, error, error_size);
        return 0;
    }
    if (zfed_exact_round(self->acc, first, count, divisor, ZFED_DTYPE_F64, self->average, error,
                         error_size) != 0)
        return s_locate(self, run, at, error, error_size);
    for (size_t k = 0; k < count; k++)
        self->x[k] = zfed_dtype_get_f64(dtype, global + offset, k);
    size_t state = (size_t)(run->state + at);
    if (zfed_opt_step(opt, self->x, self->average, ZFED_DTYPE_F64, m + state, v ? v + state : NULL,
                      count, error, error_size) != 0)
        return s_locate(self, run, at, error, error_size);
    for (size_t k = 0; k < count; k++)
        if (zfed_dtype_set_f64(dtype, out + offset, k, self->x[k]) != 0) {
            snprintf(error, error_size, "element %zu: %s step gives %g, not a finite %s", k,
                     zfed_opt_name(opt->kind), self->x[k], zfed_dtype_name(dtype));
            return s_locate(self, run, at, error, error_size);
        }
    return 0;
}

int zfed_combine_step(zfed_combine_t *self, const zfed_opt_t *opt, const zfed_window_t *window,
                      const uint8_t *const *sources, const uint64_t *weights, size_t n,
                      uint64_t divisor, const uint8_t *global, float *m, float *v, uint8_t *out,
                      char *error, size_t error_size)
{
    return s_blocks(self, opt, window, sources, weights, n, divisor, global, m, v, out, error,
                    error_size);
}

//  Block by block: fold every source's block, then put it out.
static int s_blocks(zfed_combine_t *self, const zfed_opt_t *opt, const zfed_window_t *window,
                    const uint8_t *const *sources, const uint64_t *weights, size_t n,
                    uint64_t divisor, const uint8_t *global, float *m, float *v, uint8_t *out,
                    char *error, size_t error_size)
{
    cursor_t cursor = {0, 0};
    while (cursor.run < window->runs) {
        cursor_t block = cursor;
        if (s_fold_block(self, window, &cursor, sources, weights, n, error, error_size) != 0)
            return -1;
        const zfed_run_t *run;
        uint64_t at, count, used = 0;
        while (s_piece(window, &block, COMBINE_BLOCK - used, &run, &at, &count)) {
            if (s_out_piece(self, opt, run, at, used, (size_t)count, divisor, global, m, v, out,
                            error, error_size) != 0)
                return -1;
            used += count;
        }
    }
    return 0;
}

int zfed_combine_krum(zfed_combine_t *self, zfed_krum_t *krum, const zfed_window_t *window,
                      const uint8_t *const *sources, size_t n, char *error, size_t error_size)
{
    for (size_t r = 0; r < window->runs; r++) {
        const zfed_run_t *run = &window->run[r];
        if (zfed_krum_add(krum, s_point(self, run, sources, n), s_tensor(self, run)->dtype,
                          (size_t)run->count, error, error_size) != 0)
            return s_locate(self, run, 0, error, error_size);
    }
    return 0;
}

//  Squared distance of two F32 runs, in float64, eight lanes at a time
//  (lane k takes the elements k mod 8 of each group of eight, the tail
//  goes to lane 0, the lanes are summed in one fixed tree), so the AVX2
//  path and the scalar one give the same bits.  Multiplies and adds stay
//  apart (no FMA) for the same reason.
#define NORM_LANES 8

static double s_lanes_total(const double *lanes)
{
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
           ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

static size_t s_sqdist_f32_tail(const uint8_t *a, const uint8_t *b, size_t from, size_t count,
                                double *lanes)
{
    for (size_t i = from; i < count; i++) {
        float x, y;
        memcpy(&x, a + 4 * i, 4);
        memcpy(&y, b + 4 * i, 4);
        double d = (double)x - (double)y;
        lanes[0] += d * d;
    }
    return count;
}

static double s_sqdist_f32_scalar(const uint8_t *a, const uint8_t *b, size_t count)
{
    double lanes[NORM_LANES] = {0};
    size_t i = 0;
    for (; i + NORM_LANES <= count; i += NORM_LANES)
        for (size_t k = 0; k < NORM_LANES; k++) {
            float x, y;
            memcpy(&x, a + 4 * (i + k), 4);
            memcpy(&y, b + 4 * (i + k), 4);
            double d = (double)x - (double)y;
            lanes[k] += d * d;
        }
    s_sqdist_f32_tail(a, b, i, count, lanes);
    return s_lanes_total(lanes);
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2"))) static double s_sqdist_f32_avx2(const uint8_t *a, const uint8_t *b,
                                                                size_t count)
{
    __m256d low = _mm256_setzero_pd(), high = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + NORM_LANES <= count; i += NORM_LANES) {
        __m256 x = _mm256_loadu_ps((const float *)(const void *)(a + 4 * i));
        __m256 y = _mm256_loadu_ps((const float *)(const void *)(b + 4 * i));
        __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x)),
                                   _mm256_cvtps_pd(_mm256_castps256_ps128(y)));
        __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)),
                                   _mm256_cvtps_pd(_mm256_extractf128_ps(y, 1)));
        low = _mm256_add_pd(low, _mm256_mul_pd(d0, d0));
        high = _mm256_add_pd(high, _mm256_mul_pd(d1, d1));
    }
    double lanes[NORM_LANES];
    _mm256_storeu_pd(lanes, low);
    _mm256_storeu_pd(lanes + 4, high);
    s_sqdist_f32_tail(a, b, i, count, lanes);
    return s_lanes_total(lanes);
}
#endif

static double s_sqdist(zfed_dtype_t dtype, const uint8_t *a, const uint8_t *b, size_t count)
{
    if (dtype != ZFED_DTYPE_F32)
        return zfed_reduce_sqdist(a, b, dtype, count);
#if defined(__x86_64__)
    if (zfed_exact_simd())
        return s_sqdist_f32_avx2(a, b, count);
#endif
    return s_sqdist_f32_scalar(a, b, count);
}

int zfed_combine_norms(zfed_combine_t *self, const zfed_window_t *window,
                       const uint8_t *const *sources, const size_t *ids, size_t n,
                       const uint8_t *global, size_t *bad, char *error, size_t error_size)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t r = 0; r < window->runs; r++) {
            const zfed_run_t *run = &window->run[r];
            const zfed_tensor_t *tensor = s_tensor(self, run);
            const uint8_t *data = sources[i] + run->offset;
            double partial =
                s_sqdist(tensor->dtype, data, global + run->offset, (size_t)run->count);
            if (!isfinite(partial)) {
                *bad = i;
                if (zfed_tensor_check_finite(tensor, run->first, data, run->count, error,
                                             error_size) == 0)
                    snprintf(error, error_size,
                             "tensor %s (elements from %" PRIu64
                             "): the update's norm is past the float64 range",
                             tensor->name, run->first);
                return -1;
            }
            if (zfed_exact_fold(self->norms, ids[i], &partial, ZFED_DTYPE_F64, 1, 1, error,
                                error_size) != 0) {
                *bad = i;
                return -1;
            }
        }
    }
    return 0;
}

double zfed_combine_norm(zfed_combine_t *self, size_t id)
{
    double total = 0;
    char error[128];
    if (zfed_exact_round(self->norms, id, 1, 1, ZFED_DTYPE_F64, &total, error, sizeof error) != 0)
        return INFINITY;
    return sqrt(total);
}
