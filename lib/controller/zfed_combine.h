/*  zfed_combine - one window of a round's results into one window of the
    next global model (private header).

    The arithmetic of an aggregation pass (MODELS.md 10), free of where the
    bytes come from: every call gets, for each of n sources, a pointer to
    that source's bytes of the window (see zfed_window.h), and writes the
    window's bytes of the aggregate.  The pass (zfed_pass) fetches, checks
    and orders; this module only computes.

        exact     sum(w_i x_i) / divisor, exactly, rounded once per element
                  into its dtype (fedavg: w = samples, divisor = their sum;
                  mean and Krum's mean: w = 1, divisor = n; sum: divisor 1)
        reduce    median, trimmed mean, min, max (zfed_reduce)
        step      the exact fedavg average rounded once to float64, then a
                  server optimiser step from the global x with state m, v
                  (float tensors; integer tensors take the average)
        krum      the window's pairwise distances, added to a zfed_krum_t
        norms     each source's distance to the global, into a zfed_norm_t

    Scratch is sized once from the windows, so a pass allocates nothing
    per window.
*/
#ifndef ZFED_COMBINE_H_INCLUDED
#define ZFED_COMBINE_H_INCLUDED

#include "controller/zfed_window.h"
#include "zfed/zfed_aggregate.h"
#include "zfed/zfed_reduce.h"

#include <stddef.h>
#include <stdint.h>

typedef struct _zfed_combine_t zfed_combine_t;

//  For the windows of layout with at most sources sources at a time (and
//  update norms of sources ids 0 to sources - 1).
//  NULL when memory runs out.
zfed_combine_t *zfed_combine_new(const zfed_layout_t *layout, const zfed_windows_t *windows,
                                 size_t sources);
void zfed_combine_destroy(zfed_combine_t **self_p);

//  out = sum(weights[i] * sources[i]) / divisor, rounded once.  0, or -1
//  with the reason (an element past its dtype's range, named).
int zfed_combine_exact(zfed_combine_t *self, const zfed_window_t *window,
                       const uint8_t *const *sources, const uint64_t *weights, size_t n,
                       uint64_t divisor, uint8_t *out, char *error, size_t error_size);

//  out = median, trimmed mean (trim), min or max of the sources.
int zfed_combine_reduce(zfed_combine_t *self, zfed_agg_strategy_t strategy, double trim,
                        const zfed_window_t *window, const uint8_t *const *sources, size_t n,
                        uint8_t *out, char *error, size_t error_size);

//  The exact weighted average, then opt's step from global (the window's
//  bytes of x) with m and v (the window's float elements of the state, v
//  NULL for fedavgm; updated in place).  out gets the new x.
int zfed_combine_step(zfed_combine_t *self, const zfed_opt_t *opt, const zfed_window_t *window,
                      const uint8_t *const *sources, const uint64_t *weights, size_t n,
                      uint64_t divisor, const uint8_t *global, float *m, float *v, uint8_t *out,
                      char *error, size_t error_size);

//  Adds the window's pairwise distances of the n sources to krum.
int zfed_combine_krum(zfed_combine_t *self, zfed_krum_t *krum, const zfed_window_t *window,
                      const uint8_t *const *sources, size_t n, char *error, size_t error_size);

//  Update norms, and the check of every value on the way: adds
//  ||source_i - global||^2 over the window to the squared norm of source
//  ids[i] (float64 partial sums per run, in element order, summed exactly
//  across runs and windows, so arrival order never matters).  A partial
//  that is not finite means a value that is not (the global's are), and
//  only then is the run searched for it: one read of each source's bytes
//  both checks and measures them.  0, or -1 with *bad the index (into
//  sources) of the source at fault and the reason naming the tensor and
//  the element (or a norm past the float64 range).
int zfed_combine_norms(zfed_combine_t *self, const zfed_window_t *window,
                       const uint8_t *const *sources, const size_t *ids, size_t n,
                       const uint8_t *global, size_t *bad, char *error, size_t error_size);
//  The update norm of source id so far.
double zfed_combine_norm(zfed_combine_t *self, size_t id);

#endif
