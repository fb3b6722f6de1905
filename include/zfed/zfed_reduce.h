/*  zfed_reduce - the aggregation strategies besides weighted sums, over
    chunks of tensors.

    A chunk is the same run of elements from n sources (results): n
    pointers to count elements of one dtype.  Every strategy here gives the
    same output whatever order the sources are listed in, except where an
    index is the answer (Krum), which is then the caller's fixed source
    numbering (task ids, say), never arrival order.

    Element-wise, exact in the dtype:
        median        the middle value; for an even n the exact mean of the
                      two middle values, rounded once
        trimmed mean  drop floor(trim * n) lowest and as many highest values,
                      the exact mean of the rest rounded once
        min, max      (-0.0 counts as less than +0.0)
    Floats must be finite: a NaN or infinity is refused, naming the source
    and the element.

    Krum and Multi-Krum (Blanchard et al., "Machine Learning with
    Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017):
    pairwise squared Euclidean distances accumulate chunk by chunk; within
    a chunk in float64 in element order, across chunks exactly (so the
    order chunks arrive in does not matter, only where chunks are cut).
    score(i) = the sum of the n - f - 2 smallest distances from i to the
    others; Multi-Krum selects the m lowest scores (ties to the lower
    index), Krum is m = 1.  The aggregate is then the mean of the selected
    sources (with zfed_exact).  The update norm ||x_r - g||_2 accumulates
    the same way.

    Server optimisers (Reddi et al., "Adaptive Federated Optimization",
    ICLR 2021; FedAvgM: Hsu et al., "Measuring the Effects of Non-Identical
    Data Distribution for Federated Visual Classification", 2019): one
    step per element, in float64, from the global x and the round's
    average avg (delta = avg - x):
        fedavgm  m = b1 m + delta;                           x' = x + lr m
        fedadam  m = b1 m + (1 - b1) delta;
                 v = b2 v + (1 - b2) delta^2;                x' = x + lr m / (sqrt(v) + tau)
        fedyogi  as fedadam but v = v - (1 - b2) delta^2 sign(v - delta^2)
    m and v are F32 tensors of the model's shape (m starts at 0, v at
    tau^2), rounded to F32 after each step and used as stored, so a step
    from saved state repeats exactly; x' is rounded once to the model's
    dtype.  Defaults: fedavgm lr 1.0, b1 0.9; fedadam and fedyogi lr 0.01,
    b1 0.9, b2 0.99, tau 1e-3 (the paper's tuned ranges).
*/
#ifndef ZFED_REDUCE_H_INCLUDED
#define ZFED_REDUCE_H_INCLUDED

#include "zfed/zfed_model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Most sources one reduction takes (Krum keeps n^2 / 2 distances).
#define ZFED_REDUCE_SOURCES_MAX 4096

typedef struct _zfed_reduce_t zfed_reduce_t;

//  Scratch space reused by every call (a chunk is worked through in
//  blocks, so the scratch stays about n * 32 KiB however long the chunk).
//  NULL when memory runs out.
zfed_reduce_t *zfed_reduce_new(void);
void zfed_reduce_destroy(zfed_reduce_t **self_p);

//  Number of values trimmed from each end for trim in [0, 0.5): floor(trim
//  * n) computed in double like scipy's trim_mean, at most (n - 1) / 2.
size_t zfed_reduce_trim_count(double trim, size_t n);

//  out[i] = the strategy over sources[0..n)[i], for i in [0, count).  n in
//  1..ZFED_REDUCE_SOURCES_MAX; out may not overlap a source.  0, or -1
//  with the reason in error (out is then partly written).
int zfed_reduce_median(zfed_reduce_t *self, const void *const *sources, size_t n,
                       zfed_dtype_t dtype, size_t count, void *out, char *error, size_t error_size);
int zfed_reduce_trimmed_mean(zfed_reduce_t *self, const void *const *sources, size_t n,
                             zfed_dtype_t dtype, size_t count, double trim, void *out, char *error,
                             size_t error_size);
int zfed_reduce_min(zfed_reduce_t *self, const void *const *sources, size_t n, zfed_dtype_t dtype,
                    size_t count, void *out, char *error, size_t error_size);
int zfed_reduce_max(zfed_reduce_t *self, const void *const *sources, size_t n, zfed_dtype_t dtype,
                    size_t count, void *out, char *error, size_t error_size);

//  sum over the chunk of (a[i] - b[i])^2 in float64, in a fixed order
//  (b NULL: of a[i]^2).  Non-finite input gives a non-finite sum.
double zfed_reduce_sqdist(const void *a, const void *b, zfed_dtype_t dtype, size_t count);

// --------------------------------------------------------------------------
//  Krum

typedef struct _zfed_krum_t zfed_krum_t;

//  For n sources (2..ZFED_REDUCE_SOURCES_MAX).  NULL on a bad n or out of
//  memory.
zfed_krum_t *zfed_krum_new(size_t n);
void zfed_krum_destroy(zfed_krum_t **self_p);
//  Adds one chunk of every source (sources[i] is source i's chunk).  0,
//  or -1 when a value is not finite (naming it).
int zfed_krum_add(zfed_krum_t *self, const void *const *sources, zfed_dtype_t dtype, size_t count,
                  char *error, size_t error_size);
//  Squared distance between sources i and j over the chunks so far.
double zfed_krum_distance(zfed_krum_t *self, size_t i, size_t j);
//  Writes the m selected sources to selected[0..m) (best first) and, if
//  scores is not NULL, every score to scores[0..n).  Needs n > 2f + 2 and
//  1 <= m <= n - f.  0, or -1 with the reason in error.
int zfed_krum_select(zfed_krum_t *self, size_t f, size_t m, size_t *selected, double *scores,
                     char *error, size_t error_size);

// --------------------------------------------------------------------------
//  Update norms

typedef struct _zfed_norm_t zfed_norm_t;

//  ||x_r - g|| for n sources, chunk by chunk.  NULL on a bad n.
zfed_norm_t *zfed_norm_new(size_t n);
void zfed_norm_destroy(zfed_norm_t **self_p);
//  Adds a chunk of source r and the same chunk of g (g NULL: zeros).
int zfed_norm_add(zfed_norm_t *self, size_t r, const void *x, const void *g, zfed_dtype_t dtype,
                  size_t count, char *error, size_t error_size);
//  The norm of source r over the chunks so far.
double zfed_norm_get(zfed_norm_t *self, size_t r);

// --------------------------------------------------------------------------
//  Server optimisers

typedef enum {
    ZFED_OPT_FEDAVGM = 0,
    ZFED_OPT_FEDADAM,
    ZFED_OPT_FEDYOGI,
    ZFED_OPT_COUNT
} zfed_opt_kind_t;

typedef struct {
    zfed_opt_kind_t kind;
    double lr;
    double beta1;
    double beta2; //  fedadam, fedyogi
    double tau;   //  fedadam, fedyogi
} zfed_opt_t;

//  "fedavgm", "fedadam", "fedyogi".  0, or -1 for another name.
int zfed_opt_parse(const char *name, zfed_opt_kind_t *kind);
const char *zfed_opt_name(zfed_opt_kind_t kind);
//  The defaults above.
void zfed_opt_defaults(zfed_opt_kind_t kind, zfed_opt_t *opt);
//  0 when lr > 0, 0 <= b1 < 1, 0 <= b2 < 1 and tau > 0 (all finite);
//  otherwise -1 naming the field.
int zfed_opt_check(const zfed_opt_t *opt, char *error, size_t error_size);
//  Whether the optimiser keeps v (fedadam, fedyogi) besides m.
bool zfed_opt_has_v(zfed_opt_kind_t kind);
//  The starting state: m = 0 and (when kept) v = tau^2.
void zfed_opt_init(const zfed_opt_t *opt, float *m, float *v, size_t count);

//  One step over count elements: x (model dtype, updated in place) from
//  avg (the same dtype), with the state m and v (v NULL for fedavgm).  A
//  float dtype only.  0, or -1 naming the first element whose new value
//  is not finite in the dtype (x, m and v are then partly updated).
int zfed_opt_step(const zfed_opt_t *opt, void *x, const void *avg, zfed_dtype_t dtype, float *m,
                  float *v, size_t count, char *error, size_t error_size);

#ifdef __cplusplus
}
#endif

#endif
