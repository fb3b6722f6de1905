/*  zfed_aggregate - combining one round's results into its aggregate.

    Results are kept (copied) until the aggregate is asked for, because
    median and trimmed-mean need every value at once.  All arithmetic is on
    canonical GMP rationals, so sums and comparisons are exact and the
    aggregate cannot depend on the order in which results arrived.

    fedavg, mean and sum keep no result, only running sums: each
    dimension adds weight x value into a 128-bit integer while values are
    integers that fit 64 bits (fib's sums below F(93), counts), and into an
    exact rational otherwise (a fraction, a bigger integer, or a sum that
    would overflow 128 bits).  The aggregate is the two added, so it is the
    same rational as the all-GMP sum, bit for bit, for far less work per
    result.
*/
#include "zfed/zfed_aggregate.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

//  Result slots reserved by the first add; the array doubles from there,
//  so a round of n results costs O(log n) reallocations.
#define AGG_INITIAL_CAPACITY 16

//  Direction multipliers for s_extreme: keep a value when
//  direction * mpq_cmp(value, best) > 0.
#define AGG_KEEP_SMALLER -1
#define AGG_KEEP_LARGER  1

typedef struct {
    mpq_t *values;   //  dims canonical rationals, owned
    uint64_t weight; //  samples behind this result (fedavg only)
} agg_entry_t;

//  A running sum of weight x value: small terms in wide, the rest exact.
typedef struct {
    __int128 wide;
    mpq_t exact;
} agg_sum_t;

struct _zfed_agg_t {
    zfed_agg_strategy_t strategy;
    size_t dims;
    double trim; //  fraction cut from each end by trimmed-mean
    agg_entry_t *entries;
    size_t count;
    size_t capacity;
    //  fedavg, mean, sum: no entries, running sums (dims of them) and the
    //  total weight (below 2^64 results of weight below 2^64: no overflow).
    agg_sum_t *sums;
    unsigned __int128 total_weight;
};

//  Indexed by strategy; designated so a reordered enum cannot mislabel.
static const char *const s_strategy_names[] = {
    [ZFED_AGG_FEDAVG] = "fedavg",   [ZFED_AGG_MEAN] = "mean",
    [ZFED_AGG_MEDIAN] = "median",   [ZFED_AGG_TRIMMED_MEAN] = "trimmed-mean",
    [ZFED_AGG_MIN] = "min",         [ZFED_AGG_MAX] = "max",
    [ZFED_AGG_SUM] = "sum",         [ZFED_AGG_KRUM] = "krum",
    [ZFED_AGG_FEDAVGM] = "fedavgm", [ZFED_AGG_FEDADAM] = "fedadam",
    [ZFED_AGG_FEDYOGI] = "fedyogi",
};
_Static_assert(sizeof s_strategy_names / sizeof s_strategy_names[0] == ZFED_AGG_STRATEGY_COUNT,
               "every strategy needs a name");

//  Kept literal (not joined at run time) so it can be returned without
//  allocation or a once-only initialiser; the unit test checks it against
//  the names above.
static const char s_strategy_list[] =
    "fedavg, mean, median, trimmed-mean, min, max, sum, krum, fedavgm, fedadam, fedyogi";
static const char s_value_strategy_list[] = "fedavg, mean, median, trimmed-mean, min, max, sum";

//  True for a value inside the enum; the unsigned cast folds a negative
//  value (the enum's underlying type may be signed) into the too-large range.
static int s_strategy_valid(zfed_agg_strategy_t strategy)
{
    return (unsigned)strategy < (unsigned)ZFED_AGG_STRATEGY_COUNT;
}

int zfed_agg_strategy_parse(const char *name, zfed_agg_strategy_t *strategy)
{
    if (!name || !strategy)
        return -1;
    for (int index = 0; index < ZFED_AGG_STRATEGY_COUNT; index++) {
        if (strcmp(name, s_strategy_names[index]) == 0) {
            *strategy = (zfed_agg_strategy_t)index;
            return 0;
        }
    }
    return -1;
}

const char *zfed_agg_strategy_name(zfed_agg_strategy_t strategy)
{
    return s_strategy_valid(strategy) ? s_strategy_names[strategy] : "unknown";
}

const char *zfed_agg_strategy_list(void)
{
    return s_strategy_list;
}

const char *zfed_agg_value_strategy_list(void)
{
    return s_value_strategy_list;
}

bool zfed_agg_strategy_models_only(zfed_agg_strategy_t strategy)
{
    return strategy == ZFED_AGG_KRUM || zfed_agg_strategy_is_optimiser(strategy);
}

bool zfed_agg_strategy_is_optimiser(zfed_agg_strategy_t strategy)
{
    return strategy == ZFED_AGG_FEDAVGM || strategy == ZFED_AGG_FEDADAM ||
           strategy == ZFED_AGG_FEDYOGI;
}

//  mpz_set_ui takes an unsigned long, which is only 32 bits on some ABIs
//  (LLP64, 32-bit targets); a weight must never be silently truncated.
static void s_mpz_set_u64(mpz_t target, uint64_t value)
{
#if ULONG_MAX >= UINT64_MAX
    mpz_set_ui(target, (unsigned long)value);
#else
    mpz_set_ui(target, (unsigned long)(value >> 32));
    mpz_mul_2exp(target, target, 32);
    mpz_add_ui(target, target, (unsigned long)(value & UINT32_MAX));
#endif
}

//  value/1 is already canonical, so no mpq_canonicalize is needed.
static void s_mpq_set_u64(mpq_t target, uint64_t value)
{
    s_mpz_set_u64(mpq_numref(target), value);
    mpz_set_ui(mpq_denref(target), 1);
}

static void s_entry_clear(agg_entry_t *entry, size_t dims)
{
    if (!entry->values)
        return;
    for (size_t dim = 0; dim < dims; dim++)
        mpq_clear(entry->values[dim]);
    free(entry->values);
    entry->values = NULL;
}

zfed_agg_t *zfed_agg_new(zfed_agg_strategy_t strategy, size_t dims, double trim)
{
    if (!s_strategy_valid(strategy) || zfed_agg_strategy_models_only(strategy))
        return NULL;
    if (dims == 0 || dims > ZFED_AGG_MAX_DIMS)
        return NULL;
    //  Phrased positively so NaN, for which every comparison is false,
    //  is rejected too.
    if (!(trim >= 0.0 && trim < 0.5))
        return NULL;

    zfed_agg_t *self = malloc(sizeof *self);
    if (!self)
        return NULL;
    self->strategy = strategy;
    self->dims = dims;
    self->trim = trim;
    self->entries = NULL; //  allocated by the first add: empty rounds cost nothing
    self->count = 0;
    self->capacity = 0;
    self->sums = NULL;
    self->total_weight = 0;
    if (strategy == ZFED_AGG_FEDAVG || strategy == ZFED_AGG_MEAN || strategy == ZFED_AGG_SUM) {
        self->sums = malloc(dims * sizeof *self->sums);
        if (!self->sums) {
            free(self);
            return NULL;
        }
        for (size_t dim = 0; dim < dims; dim++) {
            self->sums[dim].wide = 0;
            mpq_init(self->sums[dim].exact);
        }
    }
    return self;
}

void zfed_agg_destroy(zfed_agg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_agg_t *self = *self_p;
    for (size_t index = 0; index < self->count && self->entries; index++)
        s_entry_clear(&self->entries[index], self->dims);
    free(self->entries);
    for (size_t dim = 0; self->sums && dim < self->dims; dim++)
        mpq_clear(self->sums[dim].exact);
    free(self->sums);
    free(self);
    *self_p = NULL;
}

//  An mpz of a 128-bit integer (GMP has no such setter).
static void s_mpz_set_i128(mpz_t target, __int128 value)
{
    unsigned __int128 magnitude =
        value < 0 ? (unsigned __int128)0 - (unsigned __int128)value : (unsigned __int128)value;
    s_mpz_set_u64(target, (uint64_t)(magnitude >> 64));
    mpz_mul_2exp(target, target, 64);
    mpz_t low;
    mpz_init(low);
    s_mpz_set_u64(low, (uint64_t)magnitude);
    mpz_add(target, target, low);
    mpz_clear(low);
    if (value < 0)
        mpz_neg(target, target);
}

//  sum += weight x value, value with a non-zero denominator.
static void s_sum_add(agg_sum_t *sum, mpq_srcptr value, uint64_t weight)
{
    if (sizeof(long) == sizeof(int64_t) && mpz_cmp_ui(mpq_denref(value), 1) == 0 &&
        mpz_fits_slong_p(mpq_numref(value))) {
        //  |value| <= 2^63 and weight < 2^64: the product fits 128 bits.
        __int128 term = (__int128)mpz_get_si(mpq_numref(value)) * (__int128)weight;
        __int128 added; //  (on overflow it holds the wrapped sum: not kept)
        if (!__builtin_add_overflow(sum->wide, term, &added)) {
            sum->wide = added;
            return;
        }
    }
    //  Exactly, part by part (mpq_set assumes a positive denominator).
    mpq_t term;
    mpq_init(term);
    mpz_set(mpq_numref(term), mpq_numref(value));
    mpz_set(mpq_denref(term), mpq_denref(value));
    mpq_canonicalize(term);
    mpz_t factor;
    mpz_init(factor);
    s_mpz_set_u64(factor, weight);
    mpz_mul(mpq_numref(term), mpq_numref(term), factor);
    mpq_canonicalize(term);
    mpq_add(sum->exact, sum->exact, term);
    mpz_clear(factor);
    mpq_clear(term);
}

//  out = the running sum, exactly.
static void s_sum_value(const agg_sum_t *sum, mpq_t out)
{
    mpq_t wide;
    mpq_init(wide);
    s_mpz_set_i128(mpq_numref(wide), sum->wide);
    mpq_add(out, sum->exact, wide);
    mpq_clear(wide);
}

//  Makes room for at least one more entry.  On failure the old array is
//  untouched (realloc keeps it), so the accumulator stays usable.
static int s_grow(zfed_agg_t *self)
{
    size_t capacity = self->capacity ? self->capacity * 2 : AGG_INITIAL_CAPACITY;
    if (capacity > ZFED_AGG_MAX_RESULTS)
        capacity = ZFED_AGG_MAX_RESULTS;
    if (capacity <= self->capacity || capacity > SIZE_MAX / sizeof(agg_entry_t))
        return -1;
    agg_entry_t *entries = realloc(self->entries, capacity * sizeof *entries);
    if (!entries)
        return -1;
    self->entries = entries;
    self->capacity = capacity;
    return 0;
}

int zfed_agg_add(zfed_agg_t *self, const mpq_t *values, uint64_t weight)
{
    if (!self || !values)
        return -1;
    if (self->count >= ZFED_AGG_MAX_RESULTS)
        return -1;
    //  A zero denominator is not a number; mpq_canonicalize below would
    //  divide by it and kill the process, so refuse it up front.
    for (size_t dim = 0; dim < self->dims; dim++) {
        if (mpz_sgn(mpq_denref(values[dim])) == 0)
            return -1;
    }
    if (self->sums) {
        uint64_t factor = self->strategy == ZFED_AGG_FEDAVG ? weight : 1;
        for (size_t dim = 0; dim < self->dims; dim++)
            s_sum_add(&self->sums[dim], values[dim], factor);
        self->total_weight += factor;
        self->count++;
        return 0;
    }
    if (self->count == self->capacity && s_grow(self) != 0)
        return -1;
    if (self->dims > SIZE_MAX / sizeof(mpq_t))
        return -1;
    mpq_t *copy = malloc(self->dims * sizeof *copy);
    if (!copy)
        return -1;
    for (size_t dim = 0; dim < self->dims; dim++) {
        //  mpq_cmp and mpq_equal assume canonical operands, and a caller
        //  that filled numerator and denominator by hand may not have
        //  reduced.  Copied part by part because mpq_set itself assumes a
        //  positive denominator and misreads a negative one.
        mpq_init(copy[dim]);
        mpz_set(mpq_numref(copy[dim]), mpq_numref(values[dim]));
        mpz_set(mpq_denref(copy[dim]), mpq_denref(values[dim]));
        mpq_canonicalize(copy[dim]);
    }
    self->entries[self->count].values = copy;
    self->entries[self->count].weight = weight;
    self->count++;
    return 0;
}

//  sum += weight x value, both below 2^64: in 128 bits while the product
//  and the sum fit a signed 128-bit integer, exactly otherwise.
static void s_sum_add_u64(agg_sum_t *sum, uint64_t value, uint64_t weight)
{
    __int128 term, added;
    if (!__builtin_mul_overflow((__int128)value, (__int128)weight, &term) &&
        !__builtin_add_overflow(sum->wide, term, &added)) {
        sum->wide = added;
        return;
    }
    mpq_t exact;
    mpq_init(exact);
    s_mpq_set_u64(exact, value);
    mpz_t factor;
    mpz_init(factor);
    s_mpz_set_u64(factor, weight);
    mpz_mul(mpq_numref(exact), mpq_numref(exact), factor);
    mpq_add(sum->exact, sum->exact, exact); //  integers: already canonical
    mpz_clear(factor);
    mpq_clear(exact);
}

int zfed_agg_add_u64(zfed_agg_t *self, uint64_t value, uint64_t weight)
{
    if (!self || self->dims != 1 || self->count >= ZFED_AGG_MAX_RESULTS)
        return -1;
    if (self->sums) {
        uint64_t factor = self->strategy == ZFED_AGG_FEDAVG ? weight : 1;
        s_sum_add_u64(&self->sums[0], value, factor);
        self->total_weight += factor;
        self->count++;
        return 0;
    }
    //  Strategies that keep every value: as zfed_agg_add would.
    mpq_t one;
    mpq_init(one);
    s_mpq_set_u64(one, value);
    int rc = zfed_agg_add(self, (const mpq_t *)&one, weight);
    mpq_clear(one);
    return rc;
}

size_t zfed_agg_count(const zfed_agg_t *self)
{
    return self ? self->count : 0;
}

size_t zfed_agg_dims(const zfed_agg_t *self)
{
    return self ? self->dims : 0;
}

//  sum, mean (sum / count) and fedavg (weighted sum / total weight) from
//  the running sums.  The total weight is 128 bits wide: two results of
//  weight UINT64_MAX already overflow a uint64_t, and a wrapped total would
//  give a wrong aggregate (or a division by zero) without any error.
static int s_running(const zfed_agg_t *self, mpq_t *out)
{
    //  Checked before any out[] is written, so a failed call leaves the
    //  caller's values as they were.
    if (self->strategy != ZFED_AGG_SUM && self->total_weight == 0)
        return -1;
    mpq_t total;
    mpq_init(total);
    s_mpz_set_i128(mpq_numref(total), (__int128)self->total_weight);
    for (size_t dim = 0; dim < self->dims; dim++) {
        s_sum_value(&self->sums[dim], out[dim]);
        if (self->strategy != ZFED_AGG_SUM)
            mpq_div(out[dim], out[dim], total);
    }
    mpq_clear(total);
    return 0;
}

static void s_extreme(const zfed_agg_t *self, mpq_t *out, int direction)
{
    for (size_t dim = 0; dim < self->dims; dim++) {
        mpq_srcptr best = self->entries[0].values[dim];
        for (size_t index = 1; index < self->count; index++) {
            mpq_srcptr candidate = self->entries[index].values[dim];
            if (direction * mpq_cmp(candidate, best) > 0)
                best = candidate;
        }
        mpq_set(out[dim], best);
    }
}

//  qsort comparator over an array of mpq_srcptr.  Equal values are equal
//  rationals, so the instability of qsort cannot change any aggregate.
static int s_compare_values(const void *left, const void *right)
{
    mpq_srcptr const *left_value = left;
    mpq_srcptr const *right_value = right;
    return mpq_cmp(*left_value, *right_value);
}

//  Number of values trimmed from each end.  Computed in double precision,
//  like the common reference implementations (e.g. scipy's trim_mean takes
//  int(trim * n)), so cut counts agree with them.  trim < 0.5 keeps
//  2k < count exactly, but the product is rounded: the clamp guarantees at
//  least one value survives whatever the rounding did.
static size_t s_trim_count(double trim, size_t count)
{
    double cut = floor(trim * (double)count);
    size_t trimmed = cut > 0.0 ? (size_t)cut : 0;
    size_t most = (count - 1) / 2;
    return trimmed > most ? most : trimmed;
}

//  median and trimmed-mean: both need each dimension's values in order.
//  Sorting pointers to the stored values (not copies of them) keeps the
//  sort cheap for huge numbers and leaves the stored order alone.
static int s_ordered(const zfed_agg_t *self, mpq_t *out)
{
    size_t count = self->count;
    if (count > SIZE_MAX / sizeof(mpq_srcptr))
        return -1;
    //  Allocated before any out[] is written: on failure out is untouched.
    mpq_srcptr *column = malloc(count * sizeof *column);
    if (!column)
        return -1;

    size_t trimmed = self->strategy == ZFED_AGG_TRIMMED_MEAN ? s_trim_count(self->trim, count) : 0;
    mpq_t kept;
    mpq_init(kept);
    s_mpq_set_u64(kept, (uint64_t)(count - 2 * trimmed));

    for (size_t dim = 0; dim < self->dims; dim++) {
        for (size_t index = 0; index < count; index++)
            column[index] = self->entries[index].values[dim];
        qsort(column, count, sizeof *column, s_compare_values);

        if (self->strategy == ZFED_AGG_MEDIAN) {
            if (count % 2 == 1) {
                mpq_set(out[dim], column[count / 2]);
            } else {
                mpq_add(out[dim], column[count / 2 - 1], column[count / 2]);
                mpq_div_2exp(out[dim], out[dim], 1);
            }
        } else {
            mpq_set_ui(out[dim], 0, 1);
            for (size_t index = trimmed; index < count - trimmed; index++)
                mpq_add(out[dim], out[dim], column[index]);
            mpq_div(out[dim], out[dim], kept);
        }
    }
    mpq_clear(kept);
    free(column);
    return 0;
}

int zfed_agg_result(const zfed_agg_t *self, mpq_t *out)
{
    if (!self || !out || self->count == 0)
        return -1;
    switch (self->strategy) {
    case ZFED_AGG_FEDAVG:
    case ZFED_AGG_MEAN:
    case ZFED_AGG_SUM:
        return s_running(self, out);
    case ZFED_AGG_MEDIAN:
    case ZFED_AGG_TRIMMED_MEAN:
        return s_ordered(self, out);
    case ZFED_AGG_MIN:
        s_extreme(self, out, AGG_KEEP_SMALLER);
        return 0;
    case ZFED_AGG_MAX:
        s_extreme(self, out, AGG_KEEP_LARGER);
        return 0;
    default:
        return -1; //  unreachable: zfed_agg_new validated the strategy
    }
}
