/*  zfed_rng - the seeded pseudo-random numbers zfed's machine learning uses
    (private header).

    xoshiro256** (Blackman and Vigna, 2018), its 256-bit state filled from
    the 64-bit seed by splitmix64, as the authors recommend.  The sequence
    for a seed is fixed by this file alone (no libc rand, no global state),
    so a shuffle, an initialisation or a split made with the same seed is the
    same on every run and every machine.  Not for cryptography.

    A zfed_rng_t is a small value: keep one on the stack or in a struct.
*/
#ifndef ZFED_RNG_H_INCLUDED
#define ZFED_RNG_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t state[4];
} zfed_rng_t;

//  The state for seed: four outputs of splitmix64 started at seed.
void zfed_rng_seed(zfed_rng_t *rng, uint64_t seed);

//  The next 64 random bits.
uint64_t zfed_rng_next(zfed_rng_t *rng);

//  Uniform in [0, bound) without modulo bias (Lemire's multiply-and-reject);
//  bound must be at least 1.
uint64_t zfed_rng_below(zfed_rng_t *rng, uint64_t bound);

//  Uniform in [0, 1) with 53 random bits (the top 53 of zfed_rng_next).
double zfed_rng_double(zfed_rng_t *rng);

//  Fisher-Yates shuffle of items[0..count), i from the end down, j =
//  zfed_rng_below(i + 1).
void zfed_rng_shuffle(zfed_rng_t *rng, uint32_t *items, size_t count);

//  A standard normal deviate (Marsaglia's polar method; the second deviate
//  of each pair is not kept, so every call draws afresh).
double zfed_rng_normal(zfed_rng_t *rng);

//  The natural logarithm of a Gamma(shape, 1) deviate, shape > 0:
//  Marsaglia and Tsang (2000) for shape >= 1, and for shape < 1 their
//  boost Gamma(shape + 1) * U^(1/shape), kept in logarithms because U^(1/shape)
//  underflows to 0 for small shapes (Dirichlet splits with alpha 0.01).
double zfed_rng_log_gamma(zfed_rng_t *rng, double shape);

#endif
