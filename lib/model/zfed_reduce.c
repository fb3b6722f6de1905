/*  zfed_reduce - median, trimmed mean, min, max, Krum, norms, server
    optimisers.

    Order statistics work on keys: each value mapped to an unsigned
    integer that sorts like the value (floats: flip every bit of a
    negative, the sign bit of a positive; signed integers: flip the sign
    bit), and mapped back to the same bytes afterwards.  A chunk goes
    through in blocks of BLOCK elements: the kept values of a block are
    gathered by rank into rows, and each row folds into an exact
    accumulator, the fast contiguous path of zfed_exact.
*/
#include "zfed/zfed_reduce.h"
#include "zfed/zfed_exact.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 4096
//  Sorting n keys: insertion sort up to this many, qsort past it.
#define INSERTION_MAX 24

struct _zfed_reduce_t {
    zfed_exact_t *acc; //  BLOCK elements
    uint64_t *keys;    //  n keys of one element
    size_t keys_size;
    uint8_t *rows; //  kept values of a block, rank by rank
    size_t rows_size;
};

zfed_reduce_t *zfed_reduce_new(void)
{
    zfed_reduce_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->acc = zfed_exact_new(BLOCK);
    if (!self->acc)
        zfed_reduce_destroy(&self);
    return self;
}

void zfed_reduce_destroy(zfed_reduce_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_reduce_t *self = *self_p;
    zfed_exact_destroy(&self->acc);
    free(self->keys);
    free(self->rows);
    free(self);
    *self_p = NULL;
}

size_t zfed_reduce_trim_count(double trim, size_t n)
{
    if (n == 0 || !(trim > 0.0))
        return 0;
    double cut = floor(trim * (double)n);
    size_t trimmed = cut > 0.0 ? (size_t)cut : 0;
    size_t most = (n - 1) / 2;
    return trimmed > most ? most : trimmed;
}

// --------------------------------------------------------------------------
//  Keys

//  Sign bit of a dtype's width.
static uint64_t s_top_bit(zfed_dtype_t dtype)
{
    return 1ULL << (8 * zfed_dtype_size(dtype) - 1);
}

static uint64_t s_width_mask(zfed_dtype_t dtype)
{
    size_t bits = 8 * zfed_dtype_size(dtype);
    return bits == 64 ? ~0ULL : (1ULL << bits) - 1;
}

static uint64_t s_key(zfed_dtype_t dtype, uint64_t bits)
{
    uint64_t top = s_top_bit(dtype);
    if (zfed_dtype_is_float(dtype))
        return bits & top ? ~bits & s_width_mask(dtype) : bits | top;
    if (zfed_dtype_is_signed(dtype))
        return (bits ^ top) & s_width_mask(dtype);
    return bits;
}

static uint64_t s_unkey(zfed_dtype_t dtype, uint64_t key)
{
    uint64_t top = s_top_bit(dtype);
    if (zfed_dtype_is_float(dtype))
        return key & top ? key & ~top : ~key & s_width_mask(dtype);
    if (zfed_dtype_is_signed(dtype))
        return key ^ top;
    return key;
}

static uint64_t s_bits(const void *data, size_t index, size_t size)
{
    uint64_t bits = 0;
    memcpy(&bits, (const uint8_t *)data + index * size, size);
    return bits;
}

static int s_compare_keys(const void *left, const void *right)
{
    uint64_t a = *(const uint64_t *)left, b = *(const uint64_t *)right;
    return a < b ? -1 : a > b;
}

static void s_sort(uint64_t *keys, size_t n)
{
    if (n > INSERTION_MAX) {
        qsort(keys, n, sizeof *keys, s_compare_keys);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        uint64_t key = keys[i];
        size_t j = i;
        for (; j > 0 && keys[j - 1] > key; j--)
            keys[j] = keys[j - 1];
        keys[j] = key;
    }
}

//  Arguments every element-wise reduction checks, and the sources'
//  finiteness (naming source and element).
static int s_check(const void *const *sources, size_t n, zfed_dtype_t dtype, size_t count,
                   char *error, size_t error_size)
{
    if (zfed_dtype_size(dtype) == 0) {
        snprintf(error, error_size, "dtype: unknown (%d)", (int)dtype);
        return -1;
    }
    if (n == 0 || n > ZFED_REDUCE_SOURCES_MAX) {
        snprintf(error, error_size, "sources: %zu, expected 1 to %d", n, ZFED_REDUCE_SOURCES_MAX);
        return -1;
    }
    for (size_t r = 0; r < n; r++) {
        size_t index;
        zfed_finite_t kind = zfed_dtype_check_finite(dtype, sources[r], count, &index);
        if (kind != ZFED_FINITE) {
            snprintf(error, error_size, "source %zu element %zu: %s", r, index,
                     zfed_finite_name(kind));
            return -1;
        }
    }
    return 0;
}

static int s_grow(void **buffer, size_t *size, size_t wanted)
{
    if (wanted <= *size)
        return 0;
    void *grown = realloc(*buffer, wanted);
    if (!grown)
        return -1;
    *buffer = grown;
    *size = wanted;
    return 0;
}

//  The mean of ranks [trimmed, n - trimmed) of every element, rounded
//  once; a single kept rank is copied as it is.
static int s_trimmed(zfed_reduce_t *self, const void *const *sources, size_t n, zfed_dtype_t dtype,
                     size_t count, size_t trimmed, void *out, char *error, size_t error_size)
{
    if (s_check(sources, n, dtype, count, error, error_size) != 0)
        return -1;
    size_t size = zfed_dtype_size(dtype), kept = n - 2 * trimmed;
    if (s_grow((void **)&self->keys, &self->keys_size, n * sizeof *self->keys) != 0 ||
        s_grow((void **)&self->rows, &self->rows_size, kept * BLOCK * size) != 0) {
        snprintf(error, error_size, "out of memory");
        return -1;
    }
    uint8_t *target = out;
    for (size_t start = 0; start < count; start += BLOCK) {
        size_t block = count - start < BLOCK ? count - start : BLOCK;
        for (size_t i = 0; i < block; i++) {
            for (size_t r = 0; r < n; r++)
                self->keys[r] = s_key(dtype, s_bits(sources[r], start + i, size));
            s_sort(self->keys, n);
            for (size_t rank = 0; rank < kept; rank++) {
                uint64_t bits = s_unkey(dtype, self->keys[trimmed + rank]);
                memcpy(self->rows + (rank * BLOCK + i) * size, &bits, size);
            }
        }
        if (kept == 1) { //  the exact middle value, bytes as they were
            memcpy(target + start * size, self->rows, block * size);
            continue;
        }
        zfed_exact_reset(self->acc);
        for (size_t rank = 0; rank < kept; rank++)
            if (zfed_exact_fold(self->acc, 0, self->rows + rank * BLOCK * size, dtype, block, 1,
                                error, error_size) != 0)
                return -1;
        if (zfed_exact_round(self->acc, 0, block, kept, dtype, target + start * size, error,
                             error_size) != 0)
            return -1;
    }
    return 0;
}

int zfed_reduce_median(zfed_reduce_t *self, const void *const *sources, size_t n,
                       zfed_dtype_t dtype, size_t count, void *out, char *error, size_t error_size)
{
    //  Keep the middle one (n odd) or two (n even).
    return s_trimmed(self, sources, n, dtype, count, n ? (n - 1) / 2 : 0, out, error, error_size);
}

int zfed_reduce_trimmed_mean(zfed_reduce_t *self, const void *const *sources, size_t n,
                             zfed_dtype_t dtype, size_t count, double trim, void *out, char *error,
                             size_t error_size)
{
    if (!(trim >= 0.0 && trim < 0.5)) {
        snprintf(error, error_size, "trim: %g, expected a fraction in [0, 0.5)", trim);
        return -1;
    }
    return s_trimmed(self, sources, n, dtype, count, zfed_reduce_trim_count(trim, n), out, error,
                     error_size);
}

static int s_extreme(const void *const *sources, size_t n, zfed_dtype_t dtype, size_t count,
                     bool want_max, void *out, char *error, size_t error_size)
{
    if (s_check(sources, n, dtype, count, error, error_size) != 0)
        return -1;
    size_t size = zfed_dtype_size(dtype);
    for (size_t i = 0; i < count; i++) {
        uint64_t best = s_key(dtype, s_bits(sources[0], i, size));
        for (size_t r = 1; r < n; r++) {
            uint64_t key = s_key(dtype, s_bits(sources[r], i, size));
            if (want_max ? key > best : key < best)
                best = key;
        }
        uint64_t bits = s_unkey(dtype, best);
        memcpy((uint8_t *)out + i * size, &bits, size);
    }
    return 0;
}

int zfed_reduce_min(zfed_reduce_t *self, const void *const *sources, size_t n, zfed_dtype_t dtype,
                    size_t count, void *out, char *error, size_t error_size)
{
    return s_extreme(sources, n, dtype, count, false, out, error, error_size);
}

int zfed_reduce_max(zfed_reduce_t *self, const void *const *sources, size_t n, zfed_dtype_t dtype,
                    size_t count, void *out, char *error, size_t error_size)
{
    return s_extreme(sources, n, dtype, count, true, out, error, error_size);
}

// --------------------------------------------------------------------------
//  Distances

//  Four partial sums in a fixed interleaving (a compiler may vectorise
//  them; the order of additions never depends on anything but count).
#define SQDIST_LOOP(LOAD)                                                                          \
    do {                                                                                           \
        size_t i = 0;                                                                              \
        for (; i + 4 <= count; i += 4)                                                             \
            for (int lane = 0; lane < 4; lane++) {                                                 \
                double d = LOAD(a, i + lane) - (b ? LOAD(b, i + lane) : 0.0);                      \
                sums[lane] += d * d;                                                               \
            }                                                                                      \
        for (; i < count; i++) {                                                                   \
            double d = LOAD(a, i) - (b ? LOAD(b, i) : 0.0);                                        \
            sums[0] += d * d;                                                                      \
        }                                                                                          \
    } while (0)

static inline double s_f64(const void *data, size_t i)
{
    double value;
    memcpy(&value, (const uint8_t *)data + i * 8, 8);
    return value;
}

static inline double s_f32(const void *data, size_t i)
{
    float value;
    memcpy(&value, (const uint8_t *)data + i * 4, 4);
    return value;
}

double zfed_reduce_sqdist(const void *a, const void *b, zfed_dtype_t dtype, size_t count)
{
    double sums[4] = {0, 0, 0, 0};
    switch (dtype) {
    case ZFED_DTYPE_F64:
        SQDIST_LOOP(s_f64);
        break;
    case ZFED_DTYPE_F32:
        SQDIST_LOOP(s_f32);
        break;
    default: {
#define S_ANY(data, i) zfed_dtype_get_f64(dtype, data, i)
        SQDIST_LOOP(S_ANY);
#undef S_ANY
        break;
    }
    }
    return (sums[0] + sums[1]) + (sums[2] + sums[3]);
}

//  One float64 partial folded into element index of an exact sum.
static int s_add_partial(zfed_exact_t *acc, size_t index, double partial, char *error,
                         size_t error_size)
{
    return zfed_exact_fold(acc, index, &partial, ZFED_DTYPE_F64, 1, 1, error, error_size);
}

//  Element index of an exact sum as a double (infinity past the range).
static double s_total(zfed_exact_t *acc, size_t index)
{
    double value;
    char error[160];
    if (zfed_exact_round(acc, index, 1, 1, ZFED_DTYPE_F64, &value, error, sizeof error) != 0)
        return INFINITY;
    return value;
}

static int s_check_finite(const void *data, zfed_dtype_t dtype, size_t count, const char *what,
                          size_t which, char *error, size_t error_size)
{
    size_t index;
    zfed_finite_t kind = zfed_dtype_check_finite(dtype, data, count, &index);
    if (kind == ZFED_FINITE)
        return 0;
    snprintf(error, error_size, "%s %zu element %zu: %s", what, which, index,
             zfed_finite_name(kind));
    return -1;
}

struct _zfed_krum_t {
    size_t n;
    zfed_exact_t *acc; //  one element per pair i < j
};

static size_t s_pair(size_t n, size_t i, size_t j)
{
    if (i > j) {
        size_t swap = i;
        i = j;
        j = swap;
    }
    return i * n - i * (i + 1) / 2 + (j - i - 1);
}

zfed_krum_t *zfed_krum_new(size_t n)
{
    if (n < 2 || n > ZFED_REDUCE_SOURCES_MAX)
        return NULL;
    zfed_krum_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->n = n;
    self->acc = zfed_exact_new(n * (n - 1) / 2);
    if (!self->acc)
        zfed_krum_destroy(&self);
    return self;
}

void zfed_krum_destroy(zfed_krum_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_exact_destroy(&(*self_p)->acc);
    free(*self_p);
    *self_p = NULL;
}

int zfed_krum_add(zfed_krum_t *self, const void *const *sources, zfed_dtype_t dtype, size_t count,
                  char *error, size_t error_size)
{
    if (zfed_dtype_size(dtype) == 0) {
        snprintf(error, error_size, "dtype: unknown (%d)", (int)dtype);
        return -1;
    }
    for (size_t r = 0; r < self->n; r++)
        if (s_check_finite(sources[r], dtype, count, "source", r, error, error_size) != 0)
            return -1;
    for (size_t i = 0; i < self->n; i++)
        for (size_t j = i + 1; j < self->n; j++) {
            double partial = zfed_reduce_sqdist(sources[i], sources[j], dtype, count);
            if (!isfinite(partial)) {
                snprintf(error, error_size,
                         "sources %zu and %zu: squared distance past the float64 range", i, j);
                return -1;
            }
            if (s_add_partial(self->acc, s_pair(self->n, i, j), partial, error, error_size) != 0)
                return -1;
        }
    return 0;
}

double zfed_krum_distance(zfed_krum_t *self, size_t i, size_t j)
{
    if (i == j || i >= self->n || j >= self->n)
        return 0.0;
    return s_total(self->acc, s_pair(self->n, i, j));
}

typedef struct {
    double score;
    size_t index;
} s_scored_t;

static int s_compare_scored(const void *left, const void *right)
{
    const s_scored_t *a = left, *b = right;
    if (a->score != b->score)
        return a->score < b->score ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

static int s_compare_doubles(const void *left, const void *right)
{
    double a = *(const double *)left, b = *(const double *)right;
    return a < b ? -1 : a > b;
}

int zfed_krum_select(zfed_krum_t *self, size_t f, size_t m, size_t *selected, double *scores,
                     char *error, size_t error_size)
{
    size_t n = self->n;
    if (n <= 2 * f + 2) {
        snprintf(error, error_size, "f: %zu Byzantine sources need more than %zu sources, got %zu",
                 f, 2 * f + 2, n);
        return -1;
    }
    if (m < 1 || m > n - f) {
        snprintf(error, error_size, "m: %zu, expected 1 to n - f = %zu", m, n - f);
        return -1;
    }
    double *distances = malloc((n - 1) * sizeof *distances);
    s_scored_t *scored = malloc(n * sizeof *scored);
    if (!distances || !scored) {
        free(distances);
        free(scored);
        snprintf(error, error_size, "out of memory");
        return -1;
    }
    size_t closest = n - f - 2;
    for (size_t i = 0; i < n; i++) {
        size_t used = 0;
        for (size_t j = 0; j < n; j++)
            if (j != i)
                distances[used++] = zfed_krum_distance(self, i, j);
        qsort(distances, used, sizeof *distances, s_compare_doubles);
        double score = 0.0; //  smallest first: a fixed order of additions
        for (size_t k = 0; k < closest; k++)
            score += distances[k];
        scored[i] = (s_scored_t){score, i};
        if (scores)
            scores[i] = score;
    }
    qsort(scored, n, sizeof *scored, s_compare_scored);
    for (size_t k = 0; k < m; k++)
        selected[k] = scored[k].index;
    free(distances);
    free(scored);
    return 0;
}

struct _zfed_norm_t {
    size_t n;
    zfed_exact_t *acc;
};

zfed_norm_t *zfed_norm_new(size_t n)
{
    if (n < 1 || n > ZFED_REDUCE_SOURCES_MAX)
        return NULL;
    zfed_norm_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->n = n;
    self->acc = zfed_exact_new(n);
    if (!self->acc)
        zfed_norm_destroy(&self);
    return self;
}

void zfed_norm_destroy(zfed_norm_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_exact_destroy(&(*self_p)->acc);
    free(*self_p);
    *self_p = NULL;
}

int zfed_norm_add(zfed_norm_t *self, size_t r, const void *x, const void *g, zfed_dtype_t dtype,
                  size_t count, char *error, size_t error_size)
{
    if (r >= self->n || zfed_dtype_size(dtype) == 0) {
        snprintf(error, error_size, "%s", r >= self->n ? "source: out of range" : "dtype: unknown");
        return -1;
    }
    if (s_check_finite(x, dtype, count, "source", r, error, error_size) != 0 ||
        (g && s_check_finite(g, dtype, count, "global", 0, error, error_size) != 0))
        return -1;
    double partial = zfed_reduce_sqdist(x, g, dtype, count);
    if (!isfinite(partial)) {
        snprintf(error, error_size, "source %zu: squared norm past the float64 range", r);
        return -1;
    }
    return s_add_partial(self->acc, r, partial, error, error_size);
}

double zfed_norm_get(zfed_norm_t *self, size_t r)
{
    return r < self->n ? sqrt(s_total(self->acc, r)) : 0.0;
}

// --------------------------------------------------------------------------
//  Server optimisers

static const char *const s_opt_names[ZFED_OPT_COUNT] = {"fedavgm", "fedadam", "fedyogi"};

int zfed_opt_parse(const char *name, zfed_opt_kind_t *kind)
{
    for (int index = 0; name && index < ZFED_OPT_COUNT; index++)
        if (strcmp(name, s_opt_names[index]) == 0) {
            *kind = (zfed_opt_kind_t)index;
            return 0;
        }
    return -1;
}

const char *zfed_opt_name(zfed_opt_kind_t kind)
{
    return (unsigned)kind < ZFED_OPT_COUNT ? s_opt_names[kind] : "unknown";
}

void zfed_opt_defaults(zfed_opt_kind_t kind, zfed_opt_t *opt)
{
    opt->kind = kind;
    if (kind == ZFED_OPT_FEDAVGM) {
        opt->lr = 1.0;
        opt->beta1 = 0.9;
        opt->beta2 = 0.0;
        opt->tau = 0.0;
        return;
    }
    opt->lr = 0.01;
    opt->beta1 = 0.9;
    opt->beta2 = 0.99;
    opt->tau = 1e-3;
}

bool zfed_opt_has_v(zfed_opt_kind_t kind)
{
    return kind == ZFED_OPT_FEDADAM || kind == ZFED_OPT_FEDYOGI;
}

int zfed_opt_check(const zfed_opt_t *opt, char *error, size_t error_size)
{
    if ((unsigned)opt->kind >= ZFED_OPT_COUNT) {
        snprintf(error, error_size, "optimiser: unknown (%d)", (int)opt->kind);
        return -1;
    }
    if (!(isfinite(opt->lr) && opt->lr > 0)) {
        snprintf(error, error_size, "lr: %g, expected a number above 0", opt->lr);
        return -1;
    }
    if (!(opt->beta1 >= 0 && opt->beta1 < 1)) {
        snprintf(error, error_size, "beta1: %g, expected a number in [0, 1)", opt->beta1);
        return -1;
    }
    if (zfed_opt_has_v(opt->kind) && !(opt->beta2 >= 0 && opt->beta2 < 1)) {
        snprintf(error, error_size, "beta2: %g, expected a number in [0, 1)", opt->beta2);
        return -1;
    }
    if (zfed_opt_has_v(opt->kind) && !(isfinite(opt->tau) && opt->tau > 0)) {
        snprintf(error, error_size, "tau: %g, expected a number above 0", opt->tau);
        return -1;
    }
    return 0;
}

void zfed_opt_init(const zfed_opt_t *opt, float *m, float *v, size_t count)
{
    float start = (float)(opt->tau * opt->tau);
    for (size_t i = 0; i < count; i++) {
        m[i] = 0.0f;
        if (v && zfed_opt_has_v(opt->kind))
            v[i] = start;
    }
}

int zfed_opt_step(const zfed_opt_t *opt, void *x, const void *avg, zfed_dtype_t dtype, float *m,
                  float *v, size_t count, char *error, size_t error_size)
{
    if (zfed_opt_check(opt, error, error_size) != 0)
        return -1;
    if (!zfed_dtype_is_float(dtype)) {
        snprintf(error, error_size, "dtype: %s, %s steps float models (F64, F32, F16, BF16)",
                 zfed_dtype_name(dtype), zfed_opt_name(opt->kind));
        return -1;
    }
    if (zfed_opt_has_v(opt->kind) && !v) {
        snprintf(error, error_size, "v: missing (%s keeps v)", zfed_opt_name(opt->kind));
        return -1;
    }
    double b1 = opt->beta1, b2 = opt->beta2;
    for (size_t i = 0; i < count; i++) {
        double now = zfed_dtype_get_f64(dtype, x, i);
        double delta = zfed_dtype_get_f64(dtype, avg, i) - now;
        double step;
        if (opt->kind == ZFED_OPT_FEDAVGM) {
            m[i] = (float)(b1 * (double)m[i] + delta);
            step = opt->lr * (double)m[i];
        } else {
            m[i] = (float)(b1 * (double)m[i] + (1 - b1) * delta);
            double square = delta * delta, before = (double)v[i];
            if (opt->kind == ZFED_OPT_FEDADAM) {
                v[i] = (float)(b2 * before + (1 - b2) * square);
            } else {
                double sign = before > square ? 1.0 : before < square ? -1.0 : 0.0;
                v[i] = (float)(before - (1 - b2) * square * sign);
            }
            step = opt->lr * (double)m[i] / (sqrt((double)v[i]) + opt->tau);
        }
        if (!isfinite(m[i]) || (v && zfed_opt_has_v(opt->kind) && !isfinite(v[i])) ||
            zfed_dtype_set_f64(dtype, x, i, now + step) != 0) {
            snprintf(error, error_size, "element %zu: %s step gives %g, not a finite %s", i,
                     zfed_opt_name(opt->kind), now + step, zfed_dtype_name(dtype));
            return -1;
        }
    }
    return 0;
}
