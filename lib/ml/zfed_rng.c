/*  zfed_rng - xoshiro256** seeded by splitmix64, and the deviates built on it.  */
#include "ml/zfed_rng.h"

#include <math.h>

#define SPLITMIX_GAMMA 0x9e3779b97f4a7c15ull
//  2^-53: turns the top 53 bits into a double in [0, 1).
#define UNIT_53 (1.0 / 9007199254740992.0)

static uint64_t s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t s_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += SPLITMIX_GAMMA);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void zfed_rng_seed(zfed_rng_t *rng, uint64_t seed)
{
    //  splitmix64 never yields four zeros in a row, so the state is never
    //  the all-zero one xoshiro cannot leave.
    for (int i = 0; i < 4; i++)
        rng->state[i] = s_splitmix64(&seed);
}

uint64_t zfed_rng_next(zfed_rng_t *rng)
{
    uint64_t *s = rng->state;
    uint64_t result = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return result;
}

uint64_t zfed_rng_below(zfed_rng_t *rng, uint64_t bound)
{
    //  Lemire (2019): the high word of a 64x64 product is uniform in
    //  [0, bound) once products whose low word falls in the first
    //  2^64 mod bound values are rejected.
    unsigned __int128 product = (unsigned __int128)zfed_rng_next(rng) * bound;
    uint64_t low = (uint64_t)product;
    if (low < bound) {
        uint64_t threshold = (0 - bound) % bound;
        while (low < threshold) {
            product = (unsigned __int128)zfed_rng_next(rng) * bound;
            low = (uint64_t)product;
        }
    }
    return (uint64_t)(product >> 64);
}

double zfed_rng_double(zfed_rng_t *rng)
{
    return (double)(zfed_rng_next(rng) >> 11) * UNIT_53;
}

void zfed_rng_shuffle(zfed_rng_t *rng, uint32_t *items, size_t count)
{
    for (size_t i = count; i > 1; i--) {
        size_t j = (size_t)zfed_rng_below(rng, i);
        uint32_t swap = items[i - 1];
        items[i - 1] = items[j];
        items[j] = swap;
    }
}

double zfed_rng_normal(zfed_rng_t *rng)
{
    double u, v, s;
    do {
        u = 2.0 * zfed_rng_double(rng) - 1.0;
        v = 2.0 * zfed_rng_double(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    return u * sqrt(-2.0 * log(s) / s);
}

double zfed_rng_log_gamma(zfed_rng_t *rng, double shape)
{
    if (shape < 1.0) {
        //  1 - U is in (0, 1]: its logarithm is finite.
        double u = 1.0 - zfed_rng_double(rng);
        return zfed_rng_log_gamma(rng, shape + 1.0) + log(u) / shape;
    }
    double d = shape - 1.0 / 3.0;
    double c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = zfed_rng_normal(rng);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = 1.0 - zfed_rng_double(rng);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v))
            return log(d * v);
    }
}
