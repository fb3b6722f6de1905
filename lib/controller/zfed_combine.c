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

struct _zfed_combine_t {
    const zfed_layout_t *layout;
    size_t sources;
    zfed_exact_t *acc; //  the most elements of a window
    zfed_reduce_t *reduce;
    const void **pointers; //  sources entries: the sources' bytes of one run
    double *average;       //  the most float elements of a window
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
    uint64_t elements = zfed_windows_max_elements(windows);
    uint64_t floats = zfed_windows_max_float_elements(windows);
    self->acc = zfed_exact_new(elements ? elements : 1);
    self->reduce = zfed_reduce_new();
    self->pointers = calloc(sources ? sources : 1, sizeof *self->pointers);
    self->average = malloc((floats ? floats : 1) * sizeof *self->average);
    self->x = malloc((floats ? floats : 1) * sizeof *self->x);
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

//  "tensor NAME (elements FIRST...): REASON" in place of reason.
static int s_locate(const zfed_combine_t *self, const zfed_run_t *run, char *error,
                    size_t error_size)
{
    char reason[512];
    snprintf(reason, sizeof reason, "%s", error);
    snprintf(error, error_size, "tensor %s (elements from %" PRIu64 "): %s",
             s_tensor(self, run)->name, run->first, reason);
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
static int s_fold(zfed_combine_t *self, const zfed_run_t *run, const uint8_t *const *sources,
                  const uint64_t *weights, size_t n, char *error, size_t error_size)
{
    zfed_dtype_t dtype = s_tensor(self, run)->dtype;
    for (size_t i = 0; i < n; i++)
        if (zfed_exact_fold(self->acc, run->element, sources[i] + run->offset, dtype, run->count,
                            weights ? weights[i] : 1, error, error_size) != 0)
            return s_locate(self, run, error, error_size);
    return 0;
}

int zfed_combine_exact(zfed_combine_t *self, const zfed_window_t *window,
                       const uint8_t *const *sources, const uint64_t *weights, size_t n,
                       uint64_t divisor, uint8_t *out, char *error, size_t error_size)
{
    zfed_exact_reset(self->acc);
    for (size_t r = 0; r < window->runs; r++) {
        const zfed_run_t *run = &window->run[r];
        if (s_fold(self, run, sources, weights, n, error, error_size) != 0)
            return -1;
        if (zfed_exact_round(self->acc, run->element, run->count, divisor,
                             s_tensor(self, run)->dtype, out + run->offset, error, error_size) != 0)
            return s_locate(self, run, error, error_size);
    }
    return 0;
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
            return s_locate(self, run, error, error_size);
    }
    return 0;
}

int zfed_combine_step(zfed_combine_t *self, const zfed_opt_t *opt, const zfed_window_t *window,
                      const uint8_t *const *sources, const uint64_t *weights, size_t n,
                      uint64_t divisor, const uint8_t *global, float *m, float *v, uint8_t *out,
                      char *error, size_t error_size)
{
    zfed_exact_reset(self->acc);
    for (size_t r = 0; r < window->runs; r++) {
        const zfed_run_t *run = &window->run[r];
        zfed_dtype_t dtype = s_tensor(self, run)->dtype;
        if (s_fold(self, run, sources, weights, n, error, error_size) != 0)
            return -1;
        if (!zfed_dtype_is_float(dtype)) {
            //  Integer tensors take the average itself (MODELS.md 10).
            if (zfed_exact_round(self->acc, run->element, run->count, divisor, dtype,
                                 out + run->offset, error, error_size) != 0)
                return s_locate(self, run, error, error_size);
            continue;
        }
        //  a = the average rounded once to float64; x in float64 (exact
        //  for every float dtype); the step computes x + step in float64
        //  and the new x is rounded once into the dtype.
        size_t count = (size_t)run->count;
        if (zfed_exact_round(self->acc, run->element, run->count, divisor, ZFED_DTYPE_F64,
                             self->average, error, error_size) != 0)
            return s_locate(self, run, error, error_size);
        const uint8_t *x = global + run->offset;
        for (size_t k = 0; k < count; k++)
            self->x[k] = zfed_dtype_get_f64(dtype, x, k);
        if (zfed_opt_step(opt, self->x, self->average, ZFED_DTYPE_F64, m + run->state,
                          v ? v + run->state : NULL, count, error, error_size) != 0)
            return s_locate(self, run, error, error_size);
        uint8_t *into = out + run->offset;
        for (size_t k = 0; k < count; k++)
            if (zfed_dtype_set_f64(dtype, into, k, self->x[k]) != 0) {
                snprintf(error, error_size, "element %zu: %s step gives %g, not a finite %s", k,
                         zfed_opt_name(opt->kind), self->x[k], zfed_dtype_name(dtype));
                return s_locate(self, run, error, error_size);
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
            return s_locate(self, run, error, error_size);
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
