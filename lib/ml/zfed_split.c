/*  zfed_split - iid, labels:K and dirichlet:A splits of a labelled set.  */
#include "ml/zfed_split.h"
#include "ml/zfed_ml_error.h"
#include "ml/zfed_rng.h"
#include "zfed/zfed_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNASSIGNED    UINT32_MAX
#define MAX_CLASSES   256
#define LABELS_TAG    "labels:"
#define DIRICHLET_TAG "dirichlet:"
//  The smallest Dirichlet concentration: below it every draw puts a class
//  on one site and the Gamma boost's logarithms lose all meaning.
#define MIN_ALPHA 1e-3

int zfed_split_parse(zfed_split_spec_t *spec, const char *text, char *error, size_t error_size)
{
    zfed_split_spec_t parsed = {0};
    const char *value = text ? text : "";
    if (strlen(value) >= sizeof parsed.text)
        return zfed_ml_error(error, error_size, "method: '%.20s...' is too long", value);
    snprintf(parsed.text, sizeof parsed.text, "%s", value);
    if (strcmp(value, "iid") == 0)
        parsed.method = ZFED_SPLIT_IID;
    else if (strncmp(value, LABELS_TAG, strlen(LABELS_TAG)) == 0) {
        parsed.method = ZFED_SPLIT_LABELS;
        if (zfed_parse_u32(value + strlen(LABELS_TAG), 1, ZFED_SPLIT_MAX_K,
                           &parsed.classes_per_site) != 0)
            return zfed_ml_error(error, error_size,
                                 "method: labels:K needs K from 1 to %d, got '%s'",
                                 ZFED_SPLIT_MAX_K, value);
    } else if (strncmp(value, DIRICHLET_TAG, strlen(DIRICHLET_TAG)) == 0) {
        parsed.method = ZFED_SPLIT_DIRICHLET;
        if (zfed_parse_double(value + strlen(DIRICHLET_TAG), MIN_ALPHA, ZFED_SPLIT_MAX_ALPHA,
                              &parsed.alpha) != 0)
            return zfed_ml_error(error, error_size,
                                 "method: dirichlet:A needs A from %g to %g, got '%s'", MIN_ALPHA,
                                 ZFED_SPLIT_MAX_ALPHA, value);
    } else
        return zfed_ml_error(error, error_size,
                             "method: expected iid, labels:K or dirichlet:A, got '%s'", value);
    *spec = parsed;
    return 0;
}

//  Deals the shuffled pool into equal parts.
static void s_iid(zfed_rng_t *rng, uint32_t *pool, uint32_t n, uint32_t sites, uint32_t *site_of)
{
    zfed_rng_shuffle(rng, pool, n);
    uint32_t base = n / sites, extra = n % sites, at = 0;
    for (uint32_t s = 0; s < sites; s++)
        for (uint32_t i = 0; i < base + (s < extra); i++)
            site_of[pool[at++]] = s;
}

//  Sorts the pool by label (a counting sort: ties keep index order), cuts
//  it into K * sites shards and hands out shuffled shard ids.
static int s_labels(zfed_rng_t *rng, const uint8_t *labels, uint32_t classes, uint32_t *pool,
                    uint32_t n, uint32_t sites, uint32_t k, uint32_t *site_of, char *error,
                    size_t error_size)
{
    uint64_t shards = (uint64_t)k * sites;
    if (n < shards)
        return zfed_ml_error(error, error_size,
                             "method: labels:%u over %u sites needs %llu shards, but there are "
                             "only %u samples",
                             k, sites, (unsigned long long)shards, n);
    uint32_t *sorted = malloc((size_t)n * sizeof *sorted);
    uint32_t *shard_ids = malloc((size_t)shards * sizeof *shard_ids);
    if (!sorted || !shard_ids) {
        free(sorted);
        free(shard_ids);
        return zfed_ml_error(error, error_size, "samples: out of memory");
    }
    uint32_t start[MAX_CLASSES + 1] = {0};
    for (uint32_t i = 0; i < n; i++)
        start[labels[pool[i]] + 1]++;
    for (uint32_t c = 0; c < classes; c++)
        start[c + 1] += start[c];
    for (uint32_t i = 0; i < n; i++)
        sorted[start[labels[pool[i]]]++] = pool[i];
    for (uint32_t t = 0; t < shards; t++)
        shard_ids[t] = t;
    zfed_rng_shuffle(rng, shard_ids, shards);
    for (uint32_t slot = 0; slot < shards; slot++) {
        uint32_t shard = shard_ids[slot];
        uint64_t first = (uint64_t)shard * n / shards, last = (uint64_t)(shard + 1) * n / shards;
        for (uint64_t i = first; i < last; i++)
            site_of[sorted[i]] = slot / k;
    }
    free(sorted);
    free(shard_ids);
    return 0;
}

//  One Dirichlet draw over all classes; false when a site got nothing.
static bool s_dirichlet_draw(zfed_rng_t *rng, const uint8_t *labels, uint32_t classes,
                             const uint32_t *pool, uint32_t n, uint32_t sites, double alpha,
                             uint32_t *members, double *weights, uint32_t *per_site,
                             uint32_t *site_of)
{
    memset(per_site, 0, sites * sizeof *per_site);
    for (uint32_t c = 0; c < classes; c++) {
        uint32_t size = 0;
        for (uint32_t i = 0; i < n; i++)
            if (labels[pool[i]] == c)
                members[size++] = pool[i];
        zfed_rng_shuffle(rng, members, size);
        //  Gamma deviates as logarithms, scaled by the largest before
        //  leaving them: no underflow to an all-zero draw.
        double largest = -INFINITY, total = 0;
        for (uint32_t s = 0; s < sites; s++) {
            weights[s] = zfed_rng_log_gamma(rng, alpha);
            if (weights[s] > largest)
                largest = weights[s];
        }
        for (uint32_t s = 0; s < sites; s++)
            total += weights[s] = exp(weights[s] - largest);
        double running = 0;
        uint32_t first = 0;
        for (uint32_t s = 0; s < sites; s++) {
            running += weights[s];
            uint32_t last = s + 1 == sites ? size : (uint32_t)llround(running / total * size);
            if (last > size)
                last = size;
            for (uint32_t i = first; i < last; i++)
                site_of[members[i]] = s;
            per_site[s] += last > first ? last - first : 0;
            first = last > first ? last : first;
        }
    }
    for (uint32_t s = 0; s < sites; s++)
        if (per_site[s] == 0)
            return false;
    return true;
}

static int s_dirichlet(zfed_rng_t *rng, const uint8_t *labels, uint32_t classes,
                       const uint32_t *pool, uint32_t n, uint32_t sites, double alpha,
                       uint32_t *site_of, uint32_t *attempts, char *error, size_t error_size)
{
    uint32_t *members = malloc((size_t)n * sizeof *members);
    uint32_t *per_site = malloc(sites * sizeof *per_site);
    double *weights = malloc(sites * sizeof *weights);
    int rc = -1;
    if (!members || !per_site || !weights) {
        zfed_ml_error(error, error_size, "samples: out of memory");
        goto done;
    }
    for (*attempts = 1; *attempts <= ZFED_SPLIT_MAX_ATTEMPTS; (*attempts)++)
        if (s_dirichlet_draw(rng, labels, classes, pool, n, sites, alpha, members, weights,
                             per_site, site_of)) {
            rc = 0;
            goto done;
        }
    zfed_ml_error(error, error_size,
                  "method: dirichlet:%g left a site without samples in %d draws; try a larger "
                  "alpha, fewer sites or another seed",
                  alpha, ZFED_SPLIT_MAX_ATTEMPTS);
done:
    free(members);
    free(per_site);
    free(weights);
    return rc;
}

int zfed_split_assign(const zfed_split_spec_t *spec, const uint8_t *labels, uint32_t count,
                      uint32_t classes, uint32_t samples, uint32_t sites, uint64_t seed,
                      uint32_t *members, uint32_t *offsets, uint32_t *attempts, char *error,
                      size_t error_size)
{
    if (sites < 1 || sites > ZFED_SPLIT_MAX_SITES)
        return zfed_ml_error(error, error_size, "sites: %u, expected 1 to %d", sites,
                             ZFED_SPLIT_MAX_SITES);
    if (classes < 1 || classes > MAX_CLASSES)
        return zfed_ml_error(error, error_size, "classes: %u, expected 1 to %d", classes,
                             MAX_CLASSES);
    uint32_t n = samples && samples < count ? samples : count;
    if (samples > count)
        return zfed_ml_error(error, error_size, "samples: %u asked for, the set has %u", samples,
                             count);
    if (n < sites)
        return zfed_ml_error(error, error_size, "sites: %u sites for %u samples", sites, n);
    for (uint32_t i = 0; i < count; i++)
        if (labels[i] >= classes)
            return zfed_ml_error(error, error_size, "labels: label %u at %u, expected below %u",
                                 labels[i], i, classes);
    uint32_t *site_of = malloc((size_t)count * sizeof *site_of);
    uint32_t *pool = malloc((size_t)count * sizeof *pool);
    if (!site_of || !pool) {
        free(site_of);
        free(pool);
        return zfed_ml_error(error, error_size, "samples: out of memory for %u", count);
    }
    zfed_rng_t rng;
    zfed_rng_seed(&rng, seed);
    for (uint32_t i = 0; i < count; i++)
        pool[i] = i;
    if (n < count) {
        //  The subset: the first n of a shuffle, back in index order.
        zfed_rng_shuffle(&rng, pool, count);
        for (uint32_t i = 0; i < count; i++)
            site_of[i] = UNASSIGNED;
        for (uint32_t i = 0; i < n; i++)
            site_of[pool[i]] = 0;
        uint32_t kept = 0;
        for (uint32_t i = 0; i < count; i++)
            if (site_of[i] != UNASSIGNED)
                pool[kept++] = i;
    }
    for (uint32_t i = 0; i < count; i++)
        site_of[i] = UNASSIGNED;
    *attempts = 1;
    int rc = 0;
    switch (spec->method) {
    case ZFED_SPLIT_IID:
        s_iid(&rng, pool, n, sites, site_of);
        break;
    case ZFED_SPLIT_LABELS:
        rc = s_labels(&rng, labels, classes, pool, n, sites, spec->classes_per_site, site_of, error,
                      error_size);
        break;
    case ZFED_SPLIT_DIRICHLET:
        rc = s_dirichlet(&rng, labels, classes, pool, n, sites, spec->alpha, site_of, attempts,
                         error, error_size);
        break;
    }
    if (rc == 0) {
        //  Group by site, each site's samples in index order.
        memset(offsets, 0, (sites + 1) * sizeof *offsets);
        for (uint32_t i = 0; i < count; i++)
            if (site_of[i] != UNASSIGNED)
                offsets[site_of[i] + 1]++;
        for (uint32_t s = 0; s < sites; s++)
            offsets[s + 1] += offsets[s];
        uint32_t *cursor = pool; //  pool is free again: reuse it as cursors
        memcpy(cursor, offsets, sites * sizeof *cursor);
        for (uint32_t i = 0; i < count; i++)
            if (site_of[i] != UNASSIGNED)
                members[cursor[site_of[i]]++] = i;
    }
    free(site_of);
    free(pool);
    return rc;
}
