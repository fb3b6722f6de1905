/*  zfed_split - which samples of a labelled set go to which federated
    site (private header).

    Three methods, each seeded (zfed_rng: one stream from the seed, drawn
    in the order described here, so the same seed and set give the same
    split):

      iid            the samples shuffled and dealt into S parts of equal
                     size (the first n mod S sites get one more)
      labels:K       McMahan et al. 2017: the samples sorted by label (ties
                     by index), cut into K*S equal shards, the shard ids
                     shuffled and site s given shards s*K .. s*K+K-1.  A site
                     sees at most K classes when every class's size is a
                     multiple of the shard size (Fashion-MNIST's 6,000 per
                     class with S = 5 or 10, K = 2); otherwise a shard may
                     straddle two classes.
      dirichlet:A    per class (0 to 9), the class's samples shuffled and
                     cut in proportions p ~ Dirichlet(A, ..., A) over the S
                     sites (p from S Gamma(A) deviates, normalised; counts by
                     rounding the running sum); a draw that leaves a site
                     empty is redrawn, up to ZFED_SPLIT_MAX_ATTEMPTS times.

    With samples below the set's size, a uniform random subset of that size
    (the first draws of the stream) is split instead.  Each site's samples
    keep the order they have in the set.
*/
#ifndef ZFED_SPLIT_H_INCLUDED
#define ZFED_SPLIT_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define ZFED_SPLIT_MAX_SITES    1000
#define ZFED_SPLIT_MAX_K        100
#define ZFED_SPLIT_MAX_ALPHA    1e6
#define ZFED_SPLIT_MAX_ATTEMPTS 100
#define ZFED_SPLIT_METHOD_MAX   48 //  "dirichlet:0.001" and its NUL, with room

typedef enum { ZFED_SPLIT_IID, ZFED_SPLIT_LABELS, ZFED_SPLIT_DIRICHLET } zfed_split_method_t;

typedef struct {
    zfed_split_method_t method;
    uint32_t classes_per_site; //  K of labels:K
    double alpha;              //  A of dirichlet:A
    char text[ZFED_SPLIT_METHOD_MAX];
} zfed_split_spec_t;

//  Parses "iid", "labels:K" (K 1 .. ZFED_SPLIT_MAX_K) or "dirichlet:A"
//  (A > 0 up to ZFED_SPLIT_MAX_ALPHA).  -1 with "method: reason".
int zfed_split_parse(zfed_split_spec_t *spec, const char *text, char *error, size_t error_size);

//  Splits count samples (labels 0..classes-1, classes at most 256) over
//  sites sites, using samples of them (0: all).  On success members holds
//  the chosen sample indices grouped by site, site s's at members[offsets[s]
//  .. offsets[s+1]) (members: room for count, offsets: sites + 1), and
//  *attempts the draws a Dirichlet split needed (1 otherwise).  -1 with
//  "FIELD: reason" when the split cannot be made (too few samples for the
//  sites or shards, a site left empty after every attempt).
int zfed_split_assign(const zfed_split_spec_t *spec, const uint8_t *labels, uint32_t count,
                      uint32_t classes, uint32_t samples, uint32_t sites, uint64_t seed,
                      uint32_t *members, uint32_t *offsets, uint32_t *attempts, char *error,
                      size_t error_size);

#endif
