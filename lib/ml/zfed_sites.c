/*  zfed_sites - a job's sites bound to their data.  */
#include "ml/zfed_sites.h"
#include "zfed/zfed_service.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The split's site whose key (a string) is value, or NULL: by "name" for
//  a site, by "sha256" for the site a shard is of.
static const json_t *s_site_where(const json_t *split, const char *key, const char *value)
{
    size_t index;
    const json_t *entry;
    json_array_foreach(json_object_get(split, "sites"), index, entry)
    {
        const char *text = json_string_value(json_object_get(entry, key));
        if (text && strcmp(text, value) == 0)
            return entry;
    }
    return NULL;
}

int zfed_sites_shards(const json_t *split, const char *path, const json_t *sites,
                      zfed_site_shard_t **shards, zfed_error_t *error)
{
    size_t count = json_array_size(sites);
    zfed_site_shard_t *table = calloc(count ? count : 1, sizeof *table);
    if (!table)
        return zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
    for (size_t index = 0; index < count; index++) {
        const char *name = json_string_value(json_array_get(sites, index));
        const json_t *entry = name ? s_site_where(split, "name", name) : NULL;
        const json_t *samples = json_object_get(entry, "count");
        const json_t *sha256 = json_object_get(entry, "sha256");
        if (!json_is_integer(samples) || json_integer_value(samples) < 1) {
            free(table);
            return zfed_error_set(error, ZFED_E_INVALID, "split",
                                  "%s: site %s has no count (its shard's samples, at least 1)",
                                  path, name ? name : "?");
        }
        if (zfed_sha256_from_hex(json_string_value(sha256), json_string_length(sha256),
                                 table[index].sha256) != 0) {
            free(table);
            return zfed_error_set(error, ZFED_E_INVALID, "split",
                                  "%s: site %s has no sha256 (its shard's, %d lower-case hex "
                                  "digits; zfed-split writes one: a split from an older "
                                  "zfed-split needs writing again)",
                                  path, name, 2 * ZFED_SHA256_SIZE);
        }
        table[index].count = (uint64_t)json_integer_value(samples);
    }
    *shards = table;
    return 0;
}

//  The name of the split's site whose shard has digest hex, or NULL.
static const char *s_owner(const json_t *split, const char *hex)
{
    return json_string_value(json_object_get(s_site_where(split, "sha256", hex), "name"));
}

int zfed_sites_check(const json_t *split, const char *site, const zfed_site_shard_t *expected,
                     const msgpack_object *outputs, char *reason, size_t reason_size)
{
    char want[ZFED_SHA256_HEX_SIZE], got[ZFED_SHA256_HEX_SIZE];
    zfed_sha256_hex(expected->sha256, want);
    const msgpack_object *digest = zfed_map_get(outputs, ZFED_OUTPUT_DATA_SHA256);
    uint8_t bytes[ZFED_SHA256_SIZE];
    if (!digest || digest->type != MSGPACK_OBJECT_STR ||
        zfed_sha256_from_hex(digest->via.str.ptr, digest->via.str.size, bytes) != 0) {
        snprintf(reason, reason_size,
                 "site %s: " ZFED_OUTPUT_DATA_SHA256 ": %s (the SHA-256 of the shard the result "
                 "was trained on)",
                 site, digest ? "not 64 lower-case hex digits" : "missing");
        return -1;
    }
    zfed_sha256_hex(bytes, got);
    if (strcmp(got, want) != 0) {
        const char *owner = s_owner(split, got);
        if (owner)
            snprintf(reason, reason_size,
                     "site %s: trained on site %s's shard (" ZFED_OUTPUT_DATA_SHA256
                     " %.12s...), not its own (%.12s...): is the worker's --data the shard of "
                     "its --site?",
                     site, owner, got, want);
        else
            snprintf(reason, reason_size,
                     "site %s: trained on data that is no shard of the split "
                     "(" ZFED_OUTPUT_DATA_SHA256 " %.12s...; the site's is %.12s...): is the "
                     "worker's --data a shard of this split?",
                     site, got, want);
        return -1;
    }
    const msgpack_object *samples = zfed_map_get(outputs, ZFED_OUTPUT_SAMPLES);
    if (!samples || samples->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        samples->via.u64 != expected->count) {
        char claimed[32] = "not a count";
        if (samples && samples->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            snprintf(claimed, sizeof claimed, "%" PRIu64, samples->via.u64);
        snprintf(reason, reason_size,
                 "site %s: " ZFED_OUTPUT_SAMPLES ": %s claimed, the split gives the site %" PRIu64
                 " (a result's weight is its site's sample count)",
                 site, claimed, expected->count);
        return -1;
    }
    return 0;
}

int zfed_sites_check_data(const json_t *split, const char *path, const char *site,
                          const uint8_t digest[ZFED_SHA256_SIZE], uint64_t count, char *reason,
                          size_t reason_size)
{
    const json_t *entry = s_site_where(split, "name", site);
    if (!entry) {
        snprintf(reason, reason_size, "%s lists no site %s", path, site);
        return -1;
    }
    const json_t *sha256 = json_object_get(entry, "sha256");
    const json_t *samples = json_object_get(entry, "count");
    uint8_t want[ZFED_SHA256_SIZE];
    if (zfed_sha256_from_hex(json_string_value(sha256), json_string_length(sha256), want) != 0 ||
        !json_is_integer(samples)) {
        snprintf(reason, reason_size,
                 "%s: site %s has no sha256 or count (written by an older zfed-split?)", path,
                 site);
        return -1;
    }
    char got[ZFED_SHA256_HEX_SIZE], wanted[ZFED_SHA256_HEX_SIZE];
    zfed_sha256_hex(digest, got);
    zfed_sha256_hex(want, wanted);
    const char *owner = s_owner(split, got);
    if (strcmp(got, wanted) != 0 && owner)
        snprintf(reason, reason_size,
                 "the data (sha256 %.12s..., %" PRIu64 " samples) is site %s's shard in %s, "
                 "not site %s's (%.12s...)",
                 got, count, owner, path, site, wanted);
    else if (strcmp(got, wanted) != 0)
        snprintf(reason, reason_size,
                 "the data (sha256 %.12s..., %" PRIu64 " samples) is no shard of %s (site %s's "
                 "is %.12s...)",
                 got, count, path, site, wanted);
    else if ((uint64_t)json_integer_value(samples) != count)
        snprintf(reason, reason_size, "the data has %" PRIu64 " samples, %s gives site %s %" PRIu64,
                 count, path, site, (uint64_t)json_integer_value(samples));
    else
        return 0;
    return -1;
}
