/*  zfed_sites - a job's sites bound to their data (private header).

    A split's description (zfed-split's split.json) says, per site, how
    many samples its shard holds and the shard's SHA-256 (zfed_dataset.h).
    For a site-bound service (mlp) a result's weight is that count and its
    output data_sha256 names the shard it trained on, so the controller
    refuses a result of site S whose digest is not S's shard (a worker
    started with another site's --data, or with data of no shard of the
    split) or whose samples are not S's count (a worker claiming 10^9
    samples to outweigh every other site in the average).  zfed-worker
    --split FILE holds its own --data against FILE at start the same way,
    so a worker given the wrong shard says so before it registers.
    Without a split
    the controller knows nothing to check a site against (schemas/
    SERVICES.md 1.1: a job that lists sites alone).
*/
#ifndef ZFED_SITES_H_INCLUDED
#define ZFED_SITES_H_INCLUDED

#include "zfed/zfed_error.h"
#include "zfed/zfed_sha256.h"

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t count;
    uint8_t sha256[ZFED_SHA256_SIZE];
} zfed_site_shard_t;

//  What split (read from path, for messages) says of each site of sites
//  (an array of names, all of them the split's), in that order, into
//  *shards (malloc'd, the caller's).  0, or -1 + error naming "split" and
//  the site whose count or sha256 is missing or malformed.
int zfed_sites_shards(const json_t *split, const char *path, const json_t *sites,
                      zfed_site_shard_t **shards, zfed_error_t *error);

//  Checks the outputs of a result for site (whose shard is expected) of
//  split: its data_sha256 and samples.  0, or -1 with the reason for
//  people ("site beta: samples: 1000000000 claimed, the split gives the
//  site 1000"), naming the site whose shard it was when it is another's.
int zfed_sites_check(const json_t *split, const char *site, const zfed_site_shard_t *expected,
                     const msgpack_object *outputs, char *reason, size_t reason_size);

//  Whether data of that digest and sample count is the shard split (read
//  from path, for messages) gives site.  0, or -1 with the reason for
//  people: the site it is the shard of, or that it is no shard of the
//  split, or that the split has no such site.
int zfed_sites_check_data(const json_t *split, const char *path, const char *site,
                          const uint8_t digest[ZFED_SHA256_SIZE], uint64_t count, char *reason,
                          size_t reason_size);

#endif
