/*  zfed_exact - exact weighted sums of tensor elements, rounded once.

    An accumulator holds count elements.  A fold adds weight * x[i] to
    element first + i for a run of elements of any dtype, EXACTLY: no
    rounding ever happens while folding.  A round writes each element's
    exact sum divided by a divisor, rounded once to nearest (ties to even)
    into the output dtype.  So a mean is folds of weight 1 and a round by
    the number of folds, fedavg is folds weighted by sample counts and a
    round by their total, a sum is a round by 1; and because the sum is
    exact, the result is bit-identical whatever order the folds came in
    and however the elements were split into runs.

    Method.  Every finite element of every dtype is an integer times a
    power of two: x = m * 2^e (|m| < 2^53 for F64, < 2^24 for F32).  Each
    element of the accumulator is such a number too, M * 2^E, with M in
    an int64 (|M| <= 2^62) and E in an int16 beside it (the arrays are
    split: 10 bytes an element).  Folding w * x aligns the two exponents
    (E becomes the smaller, M is shifted left) and adds; as long as both
    shifted terms stay below 2^61 this is exact in 64-bit integers, and it
    is: with F32 data of similar magnitude across results (the same weight
    of a model from different workers), weights up to 2^16 and thousands
    of results, a sum needs 24 + 16 + log2(results) bits plus the spread
    of exponents, well under 61.  The rare element that does not fit (an
    exponent spread past about 20 binary orders between results, or huge
    weights) moves to a side table of GMP integers with an exponent,
    exact with no bound, and stays there.  Terms that can never fit (F64
    and 64-bit integers with weights past 16: 53 + 16 bits) make the
    accumulator widen before the fold to 128-bit mantissas (18 bytes an
    element), spilling only past 2^125; so does a spill count past 1/64
    of the elements, whatever its cause.
    A fold of F32 (and F16, BF16 through F16C) runs 8 elements at a time
    with AVX2 when the CPU has it; a group with an element that needs the
    slow path goes through the scalar code as a whole.  A round into F32,
    F16 or BF16 computes in double and falls back to exact integer
    rounding near ties (see s_round_fast); F64 and integers round in
    integers, dividing by a precomputed reciprocal of the divisor.

    Cost.  Memory: 10 bytes an element (18 once wide), plus about 48 bytes
    for each element in the side table (none with realistic F32 data).
    Time, one core of an AMD EPYC VM (zfed-bench-fold, 256 MiB to 1 GiB of
    F32 updates x 5): fold 3.2-3.4 GB/s of F32 update bytes with AVX2
    (memcpy of the same bytes: 12-13 GB/s; in cache the fold runs 4.4
    GB/s: compute-bound at about 4.5 cycles an element), 0.4 GB/s
    without; F16 and BF16 1.6-1.8 GB/s (0.8 G elements/s); F64 (wide,
    scalar) 0.5 GB/s.  Round: about 1 GB/s of F32 output, 0.5 GB/s of
    F16/BF16, 0.2 GB/s of F64.

    A chunk of a transfer folds at its tensor's first element plus its
    own offset; a chunk whose bytes cut an element in two must be
    realigned by the caller first.

    NaN and infinities have no exact value: a fold that meets one returns
    -1 naming the element, and since the elements before it in the run
    have been folded already, the accumulator is then POISONED: every
    later fold and round fails with that message until zfed_exact_reset.
    Callers check finiteness first (zfed_dtype_check_finite); this is the
    backstop that keeps a NaN from ever becoming a number.

    Not thread-safe: one accumulator, one thread at a time.
*/
#ifndef ZFED_EXACT_H_INCLUDED
#define ZFED_EXACT_H_INCLUDED

#include "zfed/zfed_model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Largest accumulator: as many elements as the largest model has bytes.
#define ZFED_EXACT_COUNT_MAX ZFED_MODEL_BYTES_MAX

typedef struct _zfed_exact_t zfed_exact_t;

//  An accumulator of count zeros (count <= ZFED_EXACT_COUNT_MAX); its
//  memory is only touched as elements are folded.  NULL when memory runs
//  out or count is too large.
zfed_exact_t *zfed_exact_new(uint64_t count);
void zfed_exact_destroy(zfed_exact_t **self_p);
//  All elements back to zero; forgets a poisoning.
void zfed_exact_reset(zfed_exact_t *self);
uint64_t zfed_exact_count(const zfed_exact_t *self);

//  element[first + i] += weight * data[i] for i in [0, n), exactly.  data
//  holds n elements of dtype (little-endian, any alignment).  Weight 0 is
//  a no-op.  0, or -1 with the reason in error: the range past the
//  count, an unknown dtype, a non-finite element (the accumulator is then
//  poisoned, see above), or a poisoned accumulator.
int zfed_exact_fold(zfed_exact_t *self, uint64_t first, const void *data, zfed_dtype_t dtype,
                    uint64_t n, uint64_t weight, char *error, size_t error_size);

//  out[i] = element[first + i] / divisor, rounded once to nearest, ties to
//  even, in dtype, for i in [0, n); divisor >= 1.  Floats: subnormals as
//  IEEE 754 has them; an exact zero is +0.0 (a nonzero value too small for
//  the dtype rounds to a zero of its sign); a result beyond the largest
//  finite value is an error, never an infinity.  Integers: rounded half to
//  even; out of range is an error.  0, or -1 with the reason in error
//  naming the first element that failed (out is then partly written).
int zfed_exact_round(zfed_exact_t *self, uint64_t first, uint64_t n, uint64_t divisor,
                     zfed_dtype_t dtype, void *out, char *error, size_t error_size);

typedef struct {
    uint64_t spilled; //  elements in the GMP side table
    bool wide;        //  128-bit mantissas
    uint64_t bytes;   //  memory held (allocated, touched or not)
} zfed_exact_stats_t;

void zfed_exact_stats(const zfed_exact_t *self, zfed_exact_stats_t *stats);

//  Whether folds may use AVX2 where the CPU has it (the default).  For
//  tests and benchmarks comparing the vector and scalar paths, which give
//  identical results.  Process-wide.
void zfed_exact_set_simd(bool enabled);
//  True when folds of F32, F16 and BF16 run on AVX2 on this CPU.
bool zfed_exact_simd(void);

#ifdef __cplusplus
}
#endif

#endif
