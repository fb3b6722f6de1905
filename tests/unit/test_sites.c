/*  test_sites - a result held against its site's shard (zfed_sites): the
    split's table read per site in the job's order, a split without a
    site's count or digest refused naming the site, and a result refused
    for another site's digest (naming it), a digest of no shard, a
    malformed one, and samples that are not the site's count; a worker's
    data (zfed-worker --split) held against its site the same way.
    (tests/integration/test_sites.py runs real and hostile workers.)
*/
#include "ml/zfed_sites.h"
#include "zfed/zfed_service.h"
#include "zfed_test.h"

#include <jansson.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define A_SHA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B_SHA "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define C_SHA "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static json_t *s_split(void)
{
    return json_pack("{s:s, s:[{s:s, s:i, s:s}, {s:s, s:i, s:s}]}", "format", "zfed.split/1",
                     "sites", "name", "a", "count", 10, "sha256", A_SHA, "name", "b", "count", 20,
                     "sha256", B_SHA);
}

//  Outputs {"samples": samples, "data_sha256": digest} (digest NULL: left
//  out), unpacked into unpacked.
static const msgpack_object *s_outputs(msgpack_unpacked *unpacked, msgpack_sbuffer *buffer,
                                       uint64_t samples, const char *digest)
{
    msgpack_sbuffer_init(buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, digest ? 2 : 1);
    msgpack_pack_str_with_body(&packer, "samples", 7);
    msgpack_pack_uint64(&packer, samples);
    if (digest) {
        msgpack_pack_str_with_body(&packer, "data_sha256", 11);
        msgpack_pack_str_with_body(&packer, digest, strlen(digest));
    }
    msgpack_unpacked_init(unpacked);
    size_t offset = 0;
    REQUIRE(msgpack_unpack_next(unpacked, buffer->data, buffer->size, &offset) ==
            MSGPACK_UNPACK_SUCCESS);
    return &unpacked->data;
}

//  zfed_sites_check of those outputs for site b: its rc, reason in reason.
static int s_check(const json_t *split, const zfed_site_shard_t *b, uint64_t samples,
                   const char *digest, char *reason, size_t size)
{
    msgpack_unpacked unpacked;
    msgpack_sbuffer buffer;
    const msgpack_object *outputs = s_outputs(&unpacked, &buffer, samples, digest);
    reason[0] = '\0';
    int rc = zfed_sites_check(split, "b", b, outputs, reason, size);
    msgpack_unpacked_destroy(&unpacked);
    msgpack_sbuffer_destroy(&buffer);
    return rc;
}

static void test_the_table_follows_the_jobs_sites(void)
{
    json_t *split = s_split();
    json_t *sites = json_pack("[s, s]", "b", "a");
    zfed_site_shard_t *shards = NULL;
    zfed_error_t error = {0};
    REQUIRE(zfed_sites_shards(split, "S.json", sites, &shards, &error) == 0);
    CHECK(shards[0].count == 20 && shards[1].count == 10);
    CHECK(shards[0].sha256[0] == 0xbb && shards[0].sha256[31] == 0xbb);
    CHECK(shards[1].sha256[0] == 0xaa);
    free(shards);
    //  A site without its digest, or with one of the wrong form, or
    //  without a count: refused naming the split and the site.
    const char *cases[][3] = {{"sha256", NULL, "site b has no sha256"},
                              {"sha256", "BBBB", "site b has no sha256"},
                              {"sha256", "B" B_SHA, "site b has no sha256"},
                              {"count", NULL, "site b has no count"},
                              {"count", "0", "site b has no count"}};
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        json_t *broken = s_split();
        json_t *b = json_array_get(json_object_get(broken, "sites"), 1);
        if (!cases[index][1])
            json_object_del(b, cases[index][0]);
        else if (strcmp(cases[index][0], "count") == 0)
            json_object_set_new(b, "count", json_integer(atoi(cases[index][1])));
        else
            json_object_set_new(b, "sha256", json_string(cases[index][1]));
        error = (zfed_error_t){0};
        shards = NULL;
        CHECK(zfed_sites_shards(broken, "S.json", sites, &shards, &error) != 0);
        CHECK(shards == NULL);
        CHECK_STR(error.field, "split");
        CHECK(strstr(error.text, "S.json: ") == error.text);
        CHECK(strstr(error.text, cases[index][2]) != NULL);
        json_decref(broken);
    }
    json_decref(sites);
    json_decref(split);
}

static void test_a_result_is_held_against_its_sites_shard(void)
{
    json_t *split = s_split();
    json_t *sites = json_pack("[s]", "b");
    zfed_site_shard_t *shards = NULL;
    zfed_error_t error = {0};
    REQUIRE(zfed_sites_shards(split, "S.json", sites, &shards, &error) == 0);
    char reason[512];
    CHECK(s_check(split, shards, 20, B_SHA, reason, sizeof reason) == 0);
    //  Another site's shard: named.
    CHECK(s_check(split, shards, 10, A_SHA, reason, sizeof reason) != 0);
    CHECK_STR(reason, "site b: trained on site a's shard (data_sha256 aaaaaaaaaaaa...), not its "
                      "own (bbbbbbbbbbbb...): is the worker's --data the shard of its --site?");
    //  Data of no shard.
    CHECK(s_check(split, shards, 20, C_SHA, reason, sizeof reason) != 0);
    CHECK(strstr(reason, "site b: trained on data that is no shard of the split") == reason);
    //  No digest, or not one.
    CHECK(s_check(split, shards, 20, NULL, reason, sizeof reason) != 0);
    CHECK(strstr(reason, "site b: data_sha256: missing") == reason);
    CHECK(s_check(split, shards, 20, "B" B_SHA, reason, sizeof reason) != 0);
    CHECK(strstr(reason, "not 64 lower-case hex digits") != NULL);
    //  The right shard with another weight: claimed and expected named.
    CHECK(s_check(split, shards, 1000000000, B_SHA, reason, sizeof reason) != 0);
    CHECK_STR(reason, "site b: samples: 1000000000 claimed, the split gives the site 20 (a "
                      "result's weight is its site's sample count)");
    CHECK(s_check(split, shards, 19, B_SHA, reason, sizeof reason) != 0);
    //  A reason cut to its buffer stays a string.
    CHECK(s_check(split, shards, 10, A_SHA, reason, 16) != 0);
    CHECK(strlen(reason) == 15);
    free(shards);
    json_decref(sites);
    json_decref(split);
}

static void test_a_workers_data_is_held_against_its_site(void)
{
    json_t *split = s_split();
    uint8_t a[ZFED_SHA256_SIZE], b[ZFED_SHA256_SIZE], c[ZFED_SHA256_SIZE];
    memset(a, 0xaa, sizeof a);
    memset(b, 0xbb, sizeof b);
    memset(c, 0xcc, sizeof c);
    char reason[512];
    CHECK(zfed_sites_check_data(split, "S.json", "b", b, 20, reason, sizeof reason) == 0);
    CHECK(zfed_sites_check_data(split, "S.json", "b", a, 10, reason, sizeof reason) != 0);
    CHECK_STR(reason, "the data (sha256 aaaaaaaaaaaa..., 10 samples) is site a's shard in "
                      "S.json, not site b's (bbbbbbbbbbbb...)");
    CHECK(zfed_sites_check_data(split, "S.json", "b", c, 20, reason, sizeof reason) != 0);
    CHECK_STR(reason, "the data (sha256 cccccccccccc..., 20 samples) is no shard of S.json (site "
                      "b's is bbbbbbbbbbbb...)");
    CHECK(zfed_sites_check_data(split, "S.json", "b", b, 21, reason, sizeof reason) != 0);
    CHECK_STR(reason, "the data has 21 samples, S.json gives site b 20");
    CHECK(zfed_sites_check_data(split, "S.json", "z", b, 20, reason, sizeof reason) != 0);
    CHECK_STR(reason, "S.json lists no site z");
    json_object_del(json_array_get(json_object_get(split, "sites"), 1), "sha256");
    CHECK(zfed_sites_check_data(split, "S.json", "b", b, 20, reason, sizeof reason) != 0);
    CHECK(strstr(reason, "S.json: site b has no sha256 or count") == reason);
    json_decref(split);
}

int main(void)
{
    test_a_workers_data_is_held_against_its_site();
    test_the_table_follows_the_jobs_sites();
    test_a_result_is_held_against_its_sites_shard();
    ZFED_TEST_END();
}
