/*  zfed_aggregate - combining one round's results into its aggregate.

    Every result contributes a vector of exact rationals (its value; one
    element for scalar services such as fib) and a weight (its number of
    samples; for fib the number of terms).  Strategies work element-wise:

    fedavg        sum(weight_i * value_i) / sum(weight_i)
    mean          plain mean
    median        middle value; mean of the two middle values for an even count
    trimmed-mean  mean after dropping floor(trim * count) lowest and as many
                  highest values (trim in [0, 0.5))
    min, max, sum as named

    Model services (MODELS.md 10) also take krum (Multi-Krum) and the
    server optimisers fedavgm, fedadam and fedyogi; those work on tensors
    only (zfed_combine), and zfed_agg_new refuses them.

    Exact arithmetic throughout (GMP rationals): the aggregate of the same
    results is the same whatever order they arrived in.
*/
#ifndef ZFED_AGGREGATE_H_INCLUDED
#define ZFED_AGGREGATE_H_INCLUDED

#include <stdio.h> //  before gmp.h, which then declares gmp_printf and friends
#include <gmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ZFED_AGG_FEDAVG = 0,
    ZFED_AGG_MEAN,
    ZFED_AGG_MEDIAN,
    ZFED_AGG_TRIMMED_MEAN,
    ZFED_AGG_MIN,
    ZFED_AGG_MAX,
    ZFED_AGG_SUM,
    //  Model services only:
    ZFED_AGG_KRUM,
    ZFED_AGG_FEDAVGM,
    ZFED_AGG_FEDADAM,
    ZFED_AGG_FEDYOGI,
    ZFED_AGG_STRATEGY_COUNT
} zfed_agg_strategy_t;

//  Default fraction trimmed from each end by trimmed-mean.
#define ZFED_AGG_DEFAULT_TRIM 0.1

//  Largest vector a result may carry, and most results one round may add.
#define ZFED_AGG_MAX_DIMS    65536
#define ZFED_AGG_MAX_RESULTS 1000000

//  "fedavg", "mean", ... -> strategy.  Returns 0, or -1 for an unknown name.
int zfed_agg_strategy_parse(const char *name, zfed_agg_strategy_t *strategy);
//  Strategy -> its name; "unknown" for a value out of range.
const char *zfed_agg_strategy_name(zfed_agg_strategy_t strategy);
//  All names separated by ", ", for help and error text.
const char *zfed_agg_strategy_list(void);
//  The names value services take (the first seven), likewise.
const char *zfed_agg_value_strategy_list(void);
//  True for krum, fedavgm, fedadam and fedyogi, which only model services
//  run.
bool zfed_agg_strategy_models_only(zfed_agg_strategy_t strategy);
//  True for fedavgm, fedadam and fedyogi.
bool zfed_agg_strategy_is_optimiser(zfed_agg_strategy_t strategy);

typedef struct _zfed_agg_t zfed_agg_t;

//  An accumulator for one round.  dims in 1..ZFED_AGG_MAX_DIMS; trim is
//  used by trimmed-mean only and must be in [0, 0.5).  NULL on bad
//  arguments (a strategy for models only among them) or allocation
//  failure.
zfed_agg_t *zfed_agg_new(zfed_agg_strategy_t strategy, size_t dims, double trim);
void zfed_agg_destroy(zfed_agg_t **self_p);

//  Adds one result: dims values (copied) and its weight.  Returns 0, or -1
//  when the accumulator is full (ZFED_AGG_MAX_RESULTS) or memory runs out.
int zfed_agg_add(zfed_agg_t *self, const mpq_t *values, uint64_t weight);

//  zfed_agg_add of one value, value/1, for an accumulator of one
//  dimension: the same aggregate, without GMP while 128 bits hold the
//  running sum.  0, or -1 as zfed_agg_add (or dims other than 1).
int zfed_agg_add_u64(zfed_agg_t *self, uint64_t value, uint64_t weight);

size_t zfed_agg_count(const zfed_agg_t *self);
size_t zfed_agg_dims(const zfed_agg_t *self);

//  Writes the aggregate into out[0..dims), each already mpq_init'ed by the
//  caller.  Returns 0, or -1 when there is nothing to aggregate (no
//  results, or a total weight of 0 for fedavg).
int zfed_agg_result(const zfed_agg_t *self, mpq_t *out);

#ifdef __cplusplus
}
#endif

#endif
