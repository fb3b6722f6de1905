/*  zfed_combine - the arithmetic of one window.

    Every strategy goes run by run (one tensor's elements of the window),
    so each call into zfed_exact or zfed_reduce sees one dtype.  Errors
    from those name an element of the run; they are wrapped here with the
    tensor and the run's first element, so a person can find it.
*/
#include "controller/zfed_combine.h"
#include "zfed/zfed_exact.h"

#include <inttypes.h>
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
    if (!self->acc || !self->reduce || !self->pointers || !self->average || !self->x)
        zfed_combine_destroy(&self);
    return self;
}

void zfed_combine_destroy(zfed_combine_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_combine_t *self = *self_p;
    zfed_exact_destroy(&self->acc);
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

int zfed_combine_check(const zfed_combine_t *self, const zfed_window_t *window,
                       const uint8_t *source, char *error, size_t error_size)
{
    for (size_t r = 0; r < window->runs; r++) {
        const zfed_run_t *run = &window->run[r];
        if (zfed_tensor_check_finite(s_tensor(self, run), run->first, source + run->offset,
                                     run->count, error, error_size) != 0)
            return -1;
    }
    return 0;
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

int zfed_combine_norms(zfed_combine_t *self, zfed_norm_t *norm, const zfed_window_t *window,
                       const uint8_t *const *sources, const size_t *ids, size_t n,
                       const uint8_t *global, char *error, size_t error_size)
{
    for (size_t r = 0; r < window->runs; r++) {
        const zfed_run_t *run = &window->run[r];
        zfed_dtype_t dtype = s_tensor(self, run)->dtype;
        for (size_t i = 0; i < n; i++)
            if (zfed_norm_add(norm, ids[i], sources[i] + run->offset, global + run->offset, dtype,
                              (size_t)run->count, error, error_size) != 0)
                return s_locate(self, run, error, error_size);
    }
    return 0;
}
