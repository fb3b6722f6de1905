/*  zfed_fib - the Fibonacci task kernel.  Knows nothing of messaging.

    Level n means the first n terms F(0)..F(n-1): level 10 is
    0 1 1 2 3 5 8 13 21 34, whose sum is 88.  Every value is exact (GMP).
*/
#ifndef ZFED_FIB_H_INCLUDED
#define ZFED_FIB_H_INCLUDED

#include <stdio.h> //  before gmp.h, which then declares gmp_printf and friends
#include <gmp.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Highest level a worker computes.  F(99999) has 20,899 digits; the
//  kernel takes tens of milliseconds there.
#define ZFED_FIB_MAX_LEVEL 100000

//  The work one request may ask of fib, in the square of the level summed
//  over its tasks: the kernel's time grows with the square of the level
//  (0.84 ms at 10,000 and 54 ms at 100,000 on the 2-core development
//  machine), so this is about a second of one core: 20 tasks at the
//  highest level, or 1,000 at level 14,000.  A batch of 1,024 tasks at
//  100,000 (57 s of work) asks for 51 times this.
#define ZFED_FIB_MAX_REQUEST_COST 200000000000ULL

//  Results of levels up to this many terms carry the sequence itself;
//  past it only the sum, the count and the last term travel.
#define ZFED_FIB_SEQUENCE_MAX 100

//  Pyramid rendering caps, so a level of 100,000 still prints something
//  readable: at most this many rows, and rows no wider than this.
#define ZFED_FIB_PYRAMID_MAX_ROWS  20
#define ZFED_FIB_PYRAMID_MAX_WIDTH 160

//  Up to this level every term and the sum fit in 64 bits (the sum of the
//  first 92 terms is F(93) - 1 < 2^64; 93 terms overflow).
#define ZFED_FIB_SMALL_MAX 92

//  The fast path for small levels: the first level terms (terms must hold
//  level entries) and their sum, in plain 64-bit arithmetic, no
//  allocation.  Returns 0, or -1 when level is 0 or above
//  ZFED_FIB_SMALL_MAX.
int zfed_fib_small(uint32_t level, uint64_t *terms, uint64_t *sum);

typedef struct _zfed_fib_t zfed_fib_t;

//  Computes the first level terms.  Returns NULL when level is 0 or above
//  ZFED_FIB_MAX_LEVEL, or on allocation failure.
zfed_fib_t *zfed_fib_new(uint32_t level);
void zfed_fib_destroy(zfed_fib_t **self_p);

//  Number of terms (== level); FedAvg's weight.
uint32_t zfed_fib_terms(const zfed_fib_t *self);
//  Sum of all terms, and the last term F(level-1).  Owned by self.
const mpz_t *zfed_fib_sum(const zfed_fib_t *self);
const mpz_t *zfed_fib_last(const zfed_fib_t *self);
//  Term index (0-based) when the sequence is kept (terms <=
//  ZFED_FIB_SEQUENCE_MAX), NULL otherwise or when index is out of range.
const mpz_t *zfed_fib_term(const zfed_fib_t *self, uint32_t index);
//  True when the sequence is kept and zfed_fib_term works.
int zfed_fib_has_sequence(const zfed_fib_t *self);

//  The sequence as a centred pyramid, row k showing the first k terms, one
//  row per line, capped by the limits above (a final line says what was
//  left out).  Works for every level.  Caller frees; NULL on allocation
//  failure.
char *zfed_fib_pyramid(const zfed_fib_t *self);

#ifdef __cplusplus
}
#endif

#endif
