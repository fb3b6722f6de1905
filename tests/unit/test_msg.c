/*  test_msg - the zfed message bodies: constructors, canonical encoding,
    decoding of every field, every way a body can be refused, the raw
    msgpack pre-check, zfed_msg_peek_ids, and a fixed-seed mutation fuzz
    loop.

    Expected encodings are written out byte by byte: a round trip through
    our own encoder and decoder alone would pass even if both were wrong
    the same way.
*/
#include "wire/zfed_msg_private.h"
#include "zfed/zfed_msg.h"
#include "zfed_test.h"
#include "zfed_test_msgpack.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Bytes and length of a literal, counting embedded NULs.
#define RAW(literal) (const void *)(literal), (sizeof(literal) - 1)

//  Iterations of the mutation fuzz loop (ZFED_TEST_FUZZ_ITERATIONS
//  overrides, e.g. for a long soak).
#define FUZZ_ITERATIONS 200000
#define FUZZ_SEED       0x9e3779b97f4a7c15ULL
#define FUZZ_BUFFER_MAX 1024

#define CHECK_CONTAINS(text, needle)                                                               \
    do {                                                                                           \
        const char *text_ = (text);                                                                \
        const char *needle_ = (needle);                                                            \
        zfed_test_checks++;                                                                        \
        if (!text_ || !strstr(text_, needle_)) {                                                   \
            zfed_test_failures++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK_CONTAINS failed: %s\n  text:   %s\n  wanted: %s\n",      \
                    __FILE__, __LINE__, #text, text_ ? text_ : "(null)", needle_);                 \
        }                                                                                          \
    } while (0)

//  ---------------------------------------------------------------------
//  Helpers

static bool s_bytes_equal(const void *actual, size_t actual_size, const void *expected,
                          size_t expected_size)
{
    return actual && actual_size == expected_size && memcmp(actual, expected, expected_size) == 0;
}

static void s_dump(const char *label, const void *data, size_t size)
{
    fprintf(stderr, "  %s (%zu bytes):", label, size);
    for (size_t index = 0; index < size; index++)
        fprintf(stderr, " %02x", ((const uint8_t *)data)[index]);
    fprintf(stderr, "\n");
}

//  CHECKs that actual equals expected and prints both when not.
static void s_check_bytes(const void *actual, size_t actual_size, const void *expected,
                          size_t expected_size, const char *label)
{
    bool same = s_bytes_equal(actual, actual_size, expected, expected_size);
    CHECK(same);
    if (!same) {
        fprintf(stderr, "  bytes differ for %s\n", label);
        s_dump("got", actual, actual ? actual_size : 0);
        s_dump("expected", expected, expected_size);
    }
}

static void s_pack_str(msgpack_packer *packer, const char *text)
{
    size_t length = strlen(text);
    msgpack_pack_str(packer, length);
    msgpack_pack_str_body(packer, text, length);
}

//  A string of length copies of c, which the caller frees.
static char *s_repeat(char c, size_t length)
{
    char *text = malloc(length + 1);
    if (!text)
        abort();
    memset(text, c, length);
    text[length] = '\0';
    return text;
}

//  Copies data into a fresh allocation of exactly size bytes, so that any
//  read past the end is caught by valgrind or ASan.
static uint8_t *s_exact_copy(const void *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        abort();
    if (size)
        memcpy(copy, data, size);
    return copy;
}

//  Decodes data and CHECKs that it is refused with a reason holding needle
//  (NULL: any non-empty reason).  label names the case when it fails.
static void s_check_rejected(const void *data, size_t size, const char *needle, const char *label)
{
    char reason[256] = "";
    uint8_t *copy = s_exact_copy(data, size);
    zfed_msg_t *msg = zfed_msg_decode(copy, size, reason, sizeof reason);
    bool ok = msg == NULL && reason[0] != '\0' && strcmp(reason, "no reason") != 0 &&
              (!needle || strstr(reason, needle) != NULL);
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  case '%s': decoded=%s reason='%s' wanted '%s'\n", label,
                msg ? "yes" : "no", reason, needle ? needle : "(any)");
    zfed_msg_destroy(&msg);
    free(copy);
}

//  Decodes data, CHECKing success; the caller destroys the message.
static zfed_msg_t *s_decode_ok(const void *data, size_t size, const char *label)
{
    char reason[256] = "";
    uint8_t *copy = s_exact_copy(data, size);
    zfed_msg_t *msg = zfed_msg_decode(copy, size, reason, sizeof reason);
    free(copy);
    CHECK(msg != NULL);
    if (!msg)
        fprintf(stderr, "  case '%s': refused: %s\n", label, reason);
    return msg;
}

//  ---------------------------------------------------------------------
//  A body builder: each kind's elements with valid values, any one of
//  which can be replaced by raw bytes or a string.

typedef struct {
    const void *raw; //  bytes written verbatim, or NULL
    size_t raw_size;
    const char *text; //  else a string (NULL and NULL: nothing replaced)
} s_override_t;

//  Packs the valid value of element index of kind; past the kind's
//  layout, an extra nil.
static void s_pack_valid_element(msgpack_packer *packer, zfed_msg_kind_t kind, uint32_t index)
{
    switch (index) {
    case 0:
        s_pack_str(packer, zfed_msg_kind_name(kind));
        return;
    case 1:
        msgpack_pack_uint32(packer, ZFED_PROTOCOL_VERSION);
        return;
    case 2:
        s_pack_str(packer, "job-1");
        return;
    case 3:
        msgpack_pack_uint32(packer, 2); //  round
        return;
    case 4:
        msgpack_pack_uint32(packer, 3); //  task
        return;
    case 5:
        msgpack_pack_uint32(packer, 1); //  attempt
        return;
    default:
        break;
    }
    if (kind == ZFED_MSG_TASK && index == 6) {
        msgpack_pack_map(packer, 1);
        s_pack_str(packer, "fibonacci_level");
        msgpack_pack_uint32(packer, 10);
    } else if (kind == ZFED_MSG_TASK && index == 7) {
        msgpack_pack_array(packer, 2);
        msgpack_pack_int64(packer, -1);
        s_pack_str(packer, "0");
    } else if (kind != ZFED_MSG_TASK && index == 6) {
        s_pack_str(packer, "worker-1");
    } else if (kind == ZFED_MSG_RESULT && index == 7) {
        msgpack_pack_uint64(packer, 1234);
    } else if (kind == ZFED_MSG_RESULT && index == 8) {
        msgpack_pack_map(packer, 2);
        s_pack_str(packer, "sum");
        s_pack_str(packer, "143");
        s_pack_str(packer, "terms");
        msgpack_pack_uint32(packer, 10);
    } else if (kind == ZFED_MSG_ERROR && index == 7) {
        msgpack_pack_uint32(packer, 422);
    } else if (kind == ZFED_MSG_ERROR && index == 8) {
        s_pack_str(packer, "fibonacci_level");
    } else if (kind == ZFED_MSG_ERROR && index == 9) {
        s_pack_str(packer, "must be at least 1");
    } else {
        msgpack_pack_nil(packer);
    }
}

static uint32_t s_elements(zfed_msg_kind_t kind)
{
    return kind == ZFED_MSG_TASK ? 8 : kind == ZFED_MSG_RESULT ? 9 : 10;
}

//  Builds a body of count elements of kind into buffer (cleared first),
//  element at replace taking override's value (replace < 0: none).
static void s_build(msgpack_sbuffer *buffer, zfed_msg_kind_t kind, uint32_t count, int replace,
                    s_override_t override)
{
    msgpack_sbuffer_clear(buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_array(&packer, count);
    for (uint32_t index = 0; index < count; index++) {
        if ((int)index == replace && override.raw)
            msgpack_sbuffer_write(buffer, override.raw, override.raw_size);
        else if ((int)index == replace && override.text)
            s_pack_str(&packer, override.text);
        else
            s_pack_valid_element(&packer, kind, index);
    }
}

static const s_override_t s_no_override = {NULL, 0, NULL};

//  ---------------------------------------------------------------------
//  Constructors

//  Canonical params used by several cases: {"fibonacci_level": 10}.
static const char s_params[] = "\x81\xaf"
                               "fibonacci_level"
                               "\x0a";
#define PARAMS RAW(s_params)

static void s_test_new_task(void)
{
    //  Valid: every argument at an edge that must still pass.
    zfed_msg_t *msg = zfed_msg_new_task("job-1", 0, 0, 0, PARAMS, -1,
                                        RAW("\xa1"
                                            "0"));
    REQUIRE(msg != NULL);
    if (msg) {
        CHECK_INT(zfed_msg_kind(msg), ZFED_MSG_TASK);
        CHECK_STR(zfed_msg_job_id(msg), "job-1");
        CHECK_INT(zfed_msg_global_round(msg), -1);
    }
    zfed_msg_destroy(&msg);
    CHECK(msg == NULL);
    zfed_msg_destroy(&msg); //  twice is harmless
    zfed_msg_destroy(NULL);

    char *id64 = s_repeat('a', ZFED_JOB_ID_MAX);
    char *id65 = s_repeat('a', ZFED_JOB_ID_MAX + 1);
    msg = zfed_msg_new_task(id64, UINT32_MAX, UINT32_MAX, UINT32_MAX, PARAMS, UINT32_MAX,
                            RAW("\xc0"));
    REQUIRE(msg != NULL);
    if (msg)
        CHECK_STR(zfed_msg_job_id(msg), id64);
    zfed_msg_destroy(&msg);
    CHECK(zfed_msg_new_task(id65, 0, 0, 0, PARAMS, -1, RAW("\xc0")) == NULL);
    free(id64);
    free(id65);

    //  An empty map of params is a map.
    msg = zfed_msg_new_task("j", 0, 0, 0, RAW("\x80"), -1, RAW("\xc0"));
    REQUIRE(msg != NULL);
    zfed_msg_destroy(&msg);

    //  Job ids: not a safe name, empty (only errors may name no job).
    const char *bad_ids[] = {"",     "a b",         "a/b", ".hidden", "..",
                             "a\tb", "caf\xc3\xa9", "a:b", "a\\b"};
    for (size_t index = 0; index < sizeof bad_ids / sizeof bad_ids[0]; index++) {
        msg = zfed_msg_new_task(bad_ids[index], 0, 0, 0, PARAMS, -1, RAW("\xc0"));
        CHECK(msg == NULL);
        if (msg)
            fprintf(stderr, "  job id '%s' was accepted\n", bad_ids[index]);
        zfed_msg_destroy(&msg);
    }
    CHECK(zfed_msg_new_task(NULL, 0, 0, 0, PARAMS, -1, RAW("\xc0")) == NULL);

    //  global_round: -1 or 0..2^32-1.
    CHECK(zfed_msg_new_task("j", 0, 0, 0, PARAMS, -2, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, PARAMS, INT64_MIN, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, PARAMS, (int64_t)UINT32_MAX + 1, RAW("\xc0")) == NULL);

    //  params: must be one msgpack map with distinct non-empty string keys.
    CHECK(zfed_msg_new_task("j", 0, 0, 0, RAW("\x91\x01"), -1, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, RAW("\xa1x"), -1, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, RAW("\xc0"), -1, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, RAW("\x81\x01\x02"), -1, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, RAW("\x81\xc4\x01k\x02"), -1, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, RAW("\x81\xa0\x02"), -1, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, RAW("\x82\xa1k\x01\xa1k\x02"), -1, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, RAW("\x82\xa1k\x01"), -1, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, RAW("\x80\xc0"), -1, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, NULL, 0, -1, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, s_params, 0, -1, RAW("\xc0")) == NULL);
    //  Keys that differ only after a shared prefix are distinct.
    msg = zfed_msg_new_task("j", 0, 0, 0, RAW("\x82\xa1k\x01\xa2kk\x02"), -1, RAW("\xc0"));
    REQUIRE(msg != NULL);
    zfed_msg_destroy(&msg);

    //  global_value: any one msgpack value, but exactly one.
    CHECK(zfed_msg_new_task("j", 0, 0, 0, PARAMS, -1, RAW("\xa2x")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, PARAMS, -1, RAW("\x01\x02")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, PARAMS, -1, RAW("\xc1")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, PARAMS, -1, NULL, 0) == NULL);
    msg = zfed_msg_new_task("j", 0, 0, 0, PARAMS, -1, RAW("\x92\x81\xa1k\x02\xc4\x01z"));
    REQUIRE(msg != NULL); //  maps and bin are fine in the global value
    zfed_msg_destroy(&msg);
}

//  A map of count distinct keys "k0".."kN" each set to nil.
static void s_pack_many_keys(msgpack_sbuffer *buffer, uint32_t count)
{
    msgpack_sbuffer_clear(buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, count);
    for (uint32_t index = 0; index < count; index++) {
        char key[16];
        snprintf(key, sizeof key, "k%" PRIu32, index);
        s_pack_str(&packer, key);
        msgpack_pack_nil(&packer);
    }
}

static void s_test_map_key_limit(void)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    s_pack_many_keys(&buffer, 256);
    zfed_msg_t *msg = zfed_msg_new_task("j", 0, 0, 0, buffer.data, buffer.size, -1, RAW("\xc0"));
    REQUIRE(msg != NULL);
    zfed_msg_destroy(&msg);
    msg = zfed_msg_new_result("j", 0, 0, 0, "w", 0, buffer.data, buffer.size);
    REQUIRE(msg != NULL);
    zfed_msg_destroy(&msg);

    s_pack_many_keys(&buffer, 257);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, buffer.data, buffer.size, -1, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_result("j", 0, 0, 0, "w", 0, buffer.data, buffer.size) == NULL);

    //  The same limit applies when decoding.
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    s_override_t override = {buffer.data, buffer.size, NULL};
    s_build(&body, ZFED_MSG_TASK, 8, 6, override);
    s_check_rejected(body.data, body.size, "257 keys", "params with 257 keys");
    s_build(&body, ZFED_MSG_RESULT, 9, 8, override);
    s_check_rejected(body.data, body.size, "outputs", "outputs with 257 keys");
    s_pack_many_keys(&buffer, 256);
    override.raw = buffer.data;
    override.raw_size = buffer.size;
    s_build(&body, ZFED_MSG_TASK, 8, 6, override);
    zfed_msg_t *decoded = s_decode_ok(body.data, body.size, "params with 256 keys");
    zfed_msg_destroy(&decoded);
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&buffer);
}

static void s_test_new_result(void)
{
    zfed_msg_t *msg = zfed_msg_new_result("job-1", 1, 2, 3, "worker-1", 0, RAW("\x80"));
    REQUIRE(msg != NULL);
    zfed_msg_destroy(&msg);

    char *name128 = s_repeat('w', ZFED_WORKER_NAME_MAX);
    char *name129 = s_repeat('w', ZFED_WORKER_NAME_MAX + 1);
    msg = zfed_msg_new_result("j", 0, 0, 0, name128, UINT64_MAX, RAW("\x80"));
    REQUIRE(msg != NULL);
    if (msg)
        CHECK_STR(zfed_msg_worker(msg), name128);
    zfed_msg_destroy(&msg);
    CHECK(zfed_msg_new_result("j", 0, 0, 0, name129, 0, RAW("\x80")) == NULL);
    free(name128);
    free(name129);

    //  Worker names: printable ASCII, no spaces, not empty.
    msg = zfed_msg_new_result("j", 0, 0, 0, "host:1234/pid-7!~", 0, RAW("\x80"));
    REQUIRE(msg != NULL);
    zfed_msg_destroy(&msg);
    const char *bad_workers[] = {"", "worker 1", "w\t", "w\n", "w\x7f", "caf\xc3\xa9", " w"};
    for (size_t index = 0; index < sizeof bad_workers / sizeof bad_workers[0]; index++) {
        msg = zfed_msg_new_result("j", 0, 0, 0, bad_workers[index], 0, RAW("\x80"));
        CHECK(msg == NULL);
        if (msg)
            fprintf(stderr, "  worker '%s' was accepted\n", bad_workers[index]);
        zfed_msg_destroy(&msg);
    }
    CHECK(zfed_msg_new_result("j", 0, 0, 0, NULL, 0, RAW("\x80")) == NULL);

    //  Job id: never empty for a result.
    CHECK(zfed_msg_new_result("", 0, 0, 0, "w", 0, RAW("\x80")) == NULL);
    CHECK(zfed_msg_new_result("a b", 0, 0, 0, "w", 0, RAW("\x80")) == NULL);

    //  Outputs: a string-keyed map.
    CHECK(zfed_msg_new_result("j", 0, 0, 0, "w", 0, RAW("\x90")) == NULL);
    CHECK(zfed_msg_new_result("j", 0, 0, 0, "w", 0, RAW("\x81\x01\x01")) == NULL);
    CHECK(zfed_msg_new_result("j", 0, 0, 0, "w", 0, RAW("\x82\xa1k\x01\xa1k\x01")) == NULL);
    CHECK(zfed_msg_new_result("j", 0, 0, 0, "w", 0, RAW("\x81\xa1k")) == NULL);
    CHECK(zfed_msg_new_result("j", 0, 0, 0, "w", 0, NULL, 0) == NULL);
}

static void s_test_new_error(void)
{
    //  An error about a body nobody could read names no job.
    zfed_msg_t *msg = zfed_msg_new_error("", 0, 0, 0, "w", 400, "", "");
    REQUIRE(msg != NULL);
    if (msg) {
        CHECK_STR(zfed_msg_job_id(msg), "");
        CHECK_STR(zfed_msg_error_field(msg), "");
        CHECK_STR(zfed_msg_error_text(msg), "");
    }
    zfed_msg_destroy(&msg);

    //  Codes 100..599.
    uint32_t good_codes[] = {100, 404, 599};
    for (size_t index = 0; index < sizeof good_codes / sizeof good_codes[0]; index++) {
        msg = zfed_msg_new_error("j", 0, 0, 0, "w", good_codes[index], "f", "t");
        REQUIRE(msg != NULL);
        if (msg)
            CHECK_INT(zfed_msg_error_code(msg), good_codes[index]);
        zfed_msg_destroy(&msg);
    }
    uint32_t bad_codes[] = {0, 99, 600, 1000, UINT32_MAX};
    for (size_t index = 0; index < sizeof bad_codes / sizeof bad_codes[0]; index++) {
        msg = zfed_msg_new_error("j", 0, 0, 0, "w", bad_codes[index], "f", "t");
        CHECK(msg == NULL);
        if (msg)
            fprintf(stderr, "  code %u was accepted\n", bad_codes[index]);
        zfed_msg_destroy(&msg);
    }

    //  Field: empty or a token of at most ZFED_FIELD_MAX.
    char *field64 = s_repeat('f', ZFED_FIELD_MAX);
    char *field65 = s_repeat('f', ZFED_FIELD_MAX + 1);
    msg = zfed_msg_new_error("j", 0, 0, 0, "w", 422, field64, "t");
    REQUIRE(msg != NULL);
    if (msg)
        CHECK_STR(zfed_msg_error_field(msg), field64);
    zfed_msg_destroy(&msg);
    CHECK(zfed_msg_new_error("j", 0, 0, 0, "w", 422, field65, "t") == NULL);
    CHECK(zfed_msg_new_error("j", 0, 0, 0, "w", 422, "fib level", "t") == NULL);
    CHECK(zfed_msg_new_error("j", 0, 0, 0, "w", 422, "f\n", "t") == NULL);
    CHECK(zfed_msg_new_error("j", 0, 0, 0, "w", 422, NULL, "t") == NULL);
    free(field64);
    free(field65);

    //  Text: no control characters, at most ZFED_ERROR_TEXT_MAX bytes;
    //  spaces and UTF-8 are fine.
    char *text512 = s_repeat('t', ZFED_ERROR_TEXT_MAX);
    char *text513 = s_repeat('t', ZFED_ERROR_TEXT_MAX + 1);
    msg = zfed_msg_new_error("j", 0, 0, 0, "w", 422, "f", text512);
    REQUIRE(msg != NULL);
    if (msg)
        CHECK_STR(zfed_msg_error_text(msg), text512);
    zfed_msg_destroy(&msg);
    CHECK(zfed_msg_new_error("j", 0, 0, 0, "w", 422, "f", text513) == NULL);
    free(text512);
    free(text513);
    msg = zfed_msg_new_error("j", 0, 0, 0, "w", 422, "f", "niveau trop \xc3\xa9lev\xc3\xa9 !");
    REQUIRE(msg != NULL);
    zfed_msg_destroy(&msg);
    const char *bad_texts[] = {"line\nbreak", "tab\there", "bell\a", "del\x7f",
                               "\x1b[31m",    "caf\xc3",   "\xff",   "\xed\xa0\x80"};
    for (size_t index = 0; index < sizeof bad_texts / sizeof bad_texts[0]; index++) {
        msg = zfed_msg_new_error("j", 0, 0, 0, "w", 422, "f", bad_texts[index]);
        CHECK(msg == NULL);
        if (msg)
            fprintf(stderr, "  text #%zu was accepted\n", index);
        zfed_msg_destroy(&msg);
    }
    CHECK(zfed_msg_new_error("j", 0, 0, 0, "w", 422, "f", NULL) == NULL);

    //  Worker and job id rules as for results (but "" job id allowed).
    CHECK(zfed_msg_new_error("j", 0, 0, 0, "", 422, "f", "t") == NULL);
    CHECK(zfed_msg_new_error("j", 0, 0, 0, "a b", 422, "f", "t") == NULL);
    CHECK(zfed_msg_new_error("j", 0, 0, 0, NULL, 422, "f", "t") == NULL);
    CHECK(zfed_msg_new_error("a/b", 0, 0, 0, "w", 422, "f", "t") == NULL);
    CHECK(zfed_msg_new_error(".x", 0, 0, 0, "w", 422, "f", "t") == NULL);
    CHECK(zfed_msg_new_error(NULL, 0, 0, 0, "w", 422, "f", "t") == NULL);
}

//  ---------------------------------------------------------------------
//  Canonical encoding, written out byte by byte

static void s_test_encode_bytes(void)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    //  Stale content must not survive: encode clears the buffer first.
    msgpack_sbuffer_write(&buffer, "garbage", 7);

    zfed_msg_t *msg = zfed_msg_new_task("j", 0, 1, 2,
                                        RAW("\x81\xa1"
                                            "a\x01"),
                                        -1,
                                        RAW("\xa1"
                                            "0"));
    REQUIRE(msg != NULL);
    if (msg) {
        CHECK_INT(zfed_msg_encode(msg, &buffer), 0);
        s_check_bytes(buffer.data, buffer.size,
                      RAW("\x98\xa9zfed.task\x01\xa1j\x00\x01\x02\x81\xa1"
                          "a\x01\x92\xff\xa1"
                          "0"),
                      "task");
    }
    zfed_msg_destroy(&msg);

    //  The shortest form of every integer: 300 is uint16, 2^32-1 uint32.
    msg = zfed_msg_new_result("j", 1, 2, 3, "w", 300, RAW("\x80"));
    REQUIRE(msg != NULL);
    if (msg) {
        CHECK_INT(zfed_msg_encode(msg, &buffer), 0);
        s_check_bytes(buffer.data, buffer.size,
                      RAW("\x99\xabzfed.result\x01\xa1j\x01\x02\x03\xa1w\xcd\x01\x2c\x80"),
                      "result");
    }
    zfed_msg_destroy(&msg);

    msg = zfed_msg_new_error("", 1, 2, 3, "w", 422, "f", "bad");
    REQUIRE(msg != NULL);
    if (msg) {
        CHECK_INT(zfed_msg_encode(msg, &buffer), 0);
        s_check_bytes(buffer.data, buffer.size,
                      RAW("\x9a\xaazfed.error\x01\xa0\x01\x02\x03\xa1w\xcd\x01\xa6\xa1"
                          "f\xa3"
                          "bad"),
                      "error");
    }
    zfed_msg_destroy(&msg);

    msg = zfed_msg_new_task("j", UINT32_MAX, 65536, 255, RAW("\x80"), UINT32_MAX, RAW("\xc3"));
    REQUIRE(msg != NULL);
    if (msg) {
        CHECK_INT(zfed_msg_encode(msg, &buffer), 0);
        s_check_bytes(buffer.data, buffer.size,
                      RAW("\x98\xa9zfed.task\x01\xa1j\xce\xff\xff\xff\xff\xce\x00\x01\x00\x00"
                          "\xcc\xff\x80\x92\xce\xff\xff\xff\xff\xc3"),
                      "task with wide integers");
    }
    zfed_msg_destroy(&msg);

    msg = zfed_msg_new_result("j", 0, 0, 0, "w", UINT64_MAX, RAW("\x80"));
    REQUIRE(msg != NULL);
    if (msg) {
        CHECK_INT(zfed_msg_encode(msg, &buffer), 0);
        s_check_bytes(buffer.data, buffer.size,
                      RAW("\x99\xabzfed.result\x01\xa1j\x00\x00\x00\xa1w"
                          "\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x80"),
                      "result with compute_us 2^64-1");
    }
    zfed_msg_destroy(&msg);

    //  Params and outputs given in a longer form are kept canonical: a
    //  map16 header becomes a fixmap, a uint16 1 becomes fixint 1, a str8
    //  key becomes a fixstr.
    msg = zfed_msg_new_task("j", 0, 0, 0, RAW("\xde\x00\x01\xd9\x01k\xcd\x00\x01"), 0,
                            RAW("\xd0\x05"));
    REQUIRE(msg != NULL);
    if (msg) {
        size_t size = 0;
        const uint8_t *params = zfed_msg_params(msg, &size);
        s_check_bytes(params, size, RAW("\x81\xa1k\x01"), "canonical params");
        const uint8_t *global = zfed_msg_global_value(msg, &size);
        s_check_bytes(global, size, RAW("\x05"), "canonical global value");
    }
    zfed_msg_destroy(&msg);
    msg = zfed_msg_new_result("j", 0, 0, 0, "w", 0, RAW("\x81\xa1k\xd1\xff\xfe"));
    REQUIRE(msg != NULL);
    if (msg) {
        size_t size = 0;
        const uint8_t *outputs = zfed_msg_outputs(msg, &size);
        s_check_bytes(outputs, size, RAW("\x81\xa1k\xfe"), "canonical outputs");
    }
    zfed_msg_destroy(&msg);
    msgpack_sbuffer_destroy(&buffer);
}

//  The hand-written encoders write what msgpack-c's packer writes, at
//  every integer and string-length boundary.
static void s_reference_head(msgpack_packer *packer, const char *kind, size_t elements,
                             const char *job_id, uint32_t round, uint32_t task, uint32_t attempt)
{
    msgpack_pack_array(packer, elements);
    s_pack_str(packer, kind);
    msgpack_pack_uint32(packer, ZFED_PROTOCOL_VERSION);
    s_pack_str(packer, job_id);
    msgpack_pack_uint32(packer, round);
    msgpack_pack_uint32(packer, task);
    msgpack_pack_uint32(packer, attempt);
}

static void s_test_encode_matches_packer(void)
{
    static const uint64_t numbers[] = {0,     1,     127,   128,        255,        256,
                                       65535, 65536, 70000, UINT32_MAX, 1ull << 32, UINT64_MAX};
    static const int64_t rounds[] = {-1, 0, 127, 128, 255, 256, 65535, 65536, UINT32_MAX};
    static const size_t lengths[] = {1, 31, 32, 64, 128};
    msgpack_sbuffer fast, reference;
    msgpack_sbuffer_init(&fast);
    msgpack_sbuffer_init(&reference);
    size_t numbers_count = sizeof numbers / sizeof numbers[0];
    for (size_t n = 0; n < numbers_count; n++) {
        uint32_t small = numbers[n] > UINT32_MAX ? UINT32_MAX : (uint32_t)numbers[n];
        for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
            char *name = s_repeat('a', lengths[l]);
            char *job_id =
                s_repeat('j', lengths[l] > ZFED_JOB_ID_MAX ? ZFED_JOB_ID_MAX : lengths[l]);
            REQUIRE(name && job_id);
            msgpack_packer packer;
            int64_t global_round = rounds[n % (sizeof rounds / sizeof rounds[0])];
            msgpack_sbuffer_clear(&reference);
            msgpack_packer_init(&packer, &reference, msgpack_sbuffer_write);
            s_reference_head(&packer, ZFED_KIND_TASK, 8, job_id, small, small / 2, small / 3);
            msgpack_sbuffer_write(&reference, "\x80", 1);
            msgpack_pack_array(&packer, 2);
            msgpack_pack_int64(&packer, global_round);
            msgpack_sbuffer_write(&reference, "\xc3", 1);
            CHECK_INT(zfed_msg_encode_task(&fast, job_id, small, small / 2, small / 3, "\x80", 1,
                                           global_round, "\xc3", 1),
                      0);
            CHECK(s_bytes_equal(fast.data, fast.size, reference.data, reference.size));

            msgpack_sbuffer_clear(&reference);
            s_reference_head(&packer, ZFED_KIND_RESULT, 9, job_id, small / 3, small, small / 2);
            s_pack_str(&packer, name);
            msgpack_pack_uint64(&packer, numbers[n]);
            msgpack_sbuffer_write(&reference, "\x80", 1);
            CHECK_INT(zfed_msg_encode_result(&fast, job_id, small / 3, small, small / 2, name,
                                             numbers[n], "\x80", 1),
                      0);
            CHECK(s_bytes_equal(fast.data, fast.size, reference.data, reference.size));
            free(name);
            free(job_id);
        }
    }
    //  A body over the limit is refused, as the packer's path refused it.
    char *big = malloc(ZFED_BODY_MAX);
    REQUIRE(big);
    memset(big, 0xc0, ZFED_BODY_MAX);
    CHECK_INT(zfed_msg_encode_task(&fast, "j", 0, 0, 0, "\x80", 1, -1, big, ZFED_BODY_MAX), -1);
    CHECK_INT(zfed_msg_encode_result(&fast, "j", 0, 0, 0, "w", 0, big, ZFED_BODY_MAX - 20), -1);
    free(big);
    msgpack_sbuffer_destroy(&fast);
    msgpack_sbuffer_destroy(&reference);
}

//  Constructors copy their arguments: changing the caller's buffers later
//  changes nothing in the message.
static void s_test_constructors_copy(void)
{
    char job_id[] = "job-1";
    char worker[] = "worker-1";
    uint8_t params[] = {0x81, 0xa1, 'k', 0x07};
    uint8_t global[] = {0xa1, '9'};
    zfed_msg_t *task =
        zfed_msg_new_task(job_id, 0, 0, 0, params, sizeof params, 4, global, sizeof global);
    zfed_msg_t *result = zfed_msg_new_result(job_id, 0, 0, 0, worker, 0, params, sizeof params);
    CHECK(task != NULL && result != NULL);
    job_id[0] = 'X';
    worker[0] = 'X';
    params[3] = 0x08;
    global[1] = '8';
    if (task && result) {
        size_t size = 0;
        CHECK_STR(zfed_msg_job_id(task), "job-1");
        CHECK_STR(zfed_msg_worker(result), "worker-1");
        const uint8_t *bytes = zfed_msg_params(task, &size);
        s_check_bytes(bytes, size, RAW("\x81\xa1k\x07"), "params copied");
        bytes = zfed_msg_global_value(task, &size);
        s_check_bytes(bytes, size,
                      RAW("\xa1"
                          "9"),
                      "global value copied");
        bytes = zfed_msg_outputs(result, &size);
        s_check_bytes(bytes, size, RAW("\x81\xa1k\x07"), "outputs copied");
    }
    zfed_msg_destroy(&task);
    zfed_msg_destroy(&result);
}

//  ---------------------------------------------------------------------
//  Round trips: construct, encode, decode, check every accessor

static zfed_msg_t *s_reencode(const zfed_msg_t *msg, msgpack_sbuffer *buffer)
{
    CHECK_INT(zfed_msg_encode(msg, buffer), 0);
    return s_decode_ok(buffer->data, buffer->size, "re-encoded message");
}

static void s_test_round_trips(void)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);

    //  Task, with params holding every msgpack family and a nested global.
    static const char params[] =
        "\x8b"
        "\xa3int\xd3\x80\x00\x00\x00\x00\x00\x00\x00"  //  INT64_MIN
        "\xa4uint\xcf\xff\xff\xff\xff\xff\xff\xff\xff" //  UINT64_MAX
        "\xa3"
        "f64\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00" //  1.5
        "\xa3"
        "f32\xca\x3f\xc0\x00\x00" //  1.5f
        "\xa3str\xa5hello"        //
        "\xa3"
        "bin\xc4\x03\x00\x01\x02" //
        "\xa3"
        "ext\xd4\x07\x2a" //  fixext1
        "\xa3nil\xc0"     //
        "\xa4true\xc3"    //
        "\xa3"
        "arr\x93\x01\x92\x02\x03\x81\xa1x\xc2" //  [1, [2, 3], {"x": false}]
        "\xa5"
        "empty\x80"; //  {}
    static const char global[] = "\x82\xa3"
                                 "agg\xa4"
                                 "12.5\xa1n\x90";
    zfed_msg_t *task =
        zfed_msg_new_task("round-trip_1.2", 7, 4096, 3, RAW(params), 41, RAW(global));
    REQUIRE(task != NULL);
    if (task) {
        zfed_msg_t *back = s_reencode(task, &buffer);
        if (back) {
            size_t size = 0;
            CHECK_INT(zfed_msg_kind(back), ZFED_MSG_TASK);
            CHECK_STR(zfed_msg_kind_name(zfed_msg_kind(back)), "zfed.task");
            CHECK_STR(zfed_msg_job_id(back), "round-trip_1.2");
            CHECK_INT(zfed_msg_round(back), 7);
            CHECK_INT(zfed_msg_task_id(back), 4096);
            CHECK_INT(zfed_msg_attempt(back), 3);
            //  Canonical form: the float32 comes back as a float64, the
            //  rest byte for byte.
            static const char canonical[] = "\x8b"
                                            "\xa3int\xd3\x80\x00\x00\x00\x00\x00\x00\x00"
                                            "\xa4uint\xcf\xff\xff\xff\xff\xff\xff\xff\xff"
                                            "\xa3"
                                            "f64\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"
                                            "\xa3"
                                            "f32\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"
                                            "\xa3str\xa5hello"
                                            "\xa3"
                                            "bin\xc4\x03\x00\x01\x02"
                                            "\xa3"
                                            "ext\xd4\x07\x2a"
                                            "\xa3nil\xc0"
                                            "\xa4true\xc3"
                                            "\xa3"
                                            "arr\x93\x01\x92\x02\x03\x81\xa1x\xc2"
                                            "\xa5"
                                            "empty\x80";
            const uint8_t *bytes = zfed_msg_params(back, &size);
            s_check_bytes(bytes, size, RAW(canonical), "task params");
            CHECK_INT(zfed_msg_global_round(back), 41);
            bytes = zfed_msg_global_value(back, &size);
            s_check_bytes(bytes, size, RAW(global), "task global value");
            //  Result and error fields are empty on a task.
            CHECK_STR(zfed_msg_worker(back), "");
            CHECK_INT(zfed_msg_compute_us(back), 0);
            CHECK(zfed_msg_outputs(back, &size) == NULL);
            CHECK_INT(size, 0);
            CHECK_INT(zfed_msg_error_code(back), 0);
        }
        zfed_msg_destroy(&back);
    }
    zfed_msg_destroy(&task);

    //  Task with the largest global_round and a scalar global value.
    task = zfed_msg_new_task("j", 0, 0, 0, RAW("\x80"), UINT32_MAX,
                             RAW("\xa1"
                                 "0"));
    REQUIRE(task != NULL);
    if (task) {
        zfed_msg_t *back = s_reencode(task, &buffer);
        if (back) {
            CHECK_INT(zfed_msg_global_round(back), UINT32_MAX);
            CHECK_INT(zfed_msg_round(back), 0);
        }
        zfed_msg_destroy(&back);
    }
    zfed_msg_destroy(&task);

    //  Result.
    static const char outputs[] = "\x84\xa3sum\xa3"
                                  "143\xa5terms\x0a\xa4last\xa2"
                                  "55\xa8sequence\x90";
    zfed_msg_t *result =
        zfed_msg_new_result("job-9", UINT32_MAX, 12, 1, "host-1:77", UINT64_MAX, RAW(outputs));
    REQUIRE(result != NULL);
    if (result) {
        zfed_msg_t *back = s_reencode(result, &buffer);
        if (back) {
            size_t size = 0;
            CHECK_INT(zfed_msg_kind(back), ZFED_MSG_RESULT);
            CHECK_STR(zfed_msg_kind_name(zfed_msg_kind(back)), "zfed.result");
            CHECK_STR(zfed_msg_job_id(back), "job-9");
            CHECK_INT(zfed_msg_round(back), UINT32_MAX);
            CHECK_INT(zfed_msg_task_id(back), 12);
            CHECK_INT(zfed_msg_attempt(back), 1);
            CHECK_STR(zfed_msg_worker(back), "host-1:77");
            CHECK(zfed_msg_compute_us(back) == UINT64_MAX);
            const uint8_t *bytes = zfed_msg_outputs(back, &size);
            s_check_bytes(bytes, size, RAW(outputs), "result outputs");
            CHECK(zfed_msg_params(back, &size) == NULL);
            CHECK_INT(size, 0);
            CHECK(zfed_msg_global_value(back, &size) == NULL);
        }
        zfed_msg_destroy(&back);
    }
    zfed_msg_destroy(&result);

    //  Error, with and without a job id.
    const char *ids[] = {"job-3", ""};
    for (size_t index = 0; index < 2; index++) {
        zfed_msg_t *error =
            zfed_msg_new_error(ids[index], 5, 6, 2, "w-2", 503, "fibonacci_level",
                               "must be at most 100000, got 100001 (\xc3\xa9t\xc3\xa9)");
        CHECK(error != NULL);
        if (!error)
            continue;
        zfed_msg_t *back = s_reencode(error, &buffer);
        if (back) {
            size_t size = 0;
            CHECK_INT(zfed_msg_kind(back), ZFED_MSG_ERROR);
            CHECK_STR(zfed_msg_kind_name(zfed_msg_kind(back)), "zfed.error");
            CHECK_STR(zfed_msg_job_id(back), ids[index]);
            CHECK_INT(zfed_msg_round(back), 5);
            CHECK_INT(zfed_msg_task_id(back), 6);
            CHECK_INT(zfed_msg_attempt(back), 2);
            CHECK_STR(zfed_msg_worker(back), "w-2");
            CHECK_INT(zfed_msg_error_code(back), 503);
            CHECK_STR(zfed_msg_error_field(back), "fibonacci_level");
            CHECK_STR(zfed_msg_error_text(back),
                      "must be at most 100000, got 100001 (\xc3\xa9t\xc3\xa9)");
            CHECK(zfed_msg_outputs(back, &size) == NULL);
            CHECK(zfed_msg_params(back, &size) == NULL);
        }
        zfed_msg_destroy(&back);
        zfed_msg_destroy(&error);
    }

    //  The builder's valid bodies decode to what it packed.
    s_build(&buffer, ZFED_MSG_ERROR, 10, -1, s_no_override);
    zfed_msg_t *error = s_decode_ok(buffer.data, buffer.size, "built error");
    if (error) {
        CHECK_STR(zfed_msg_job_id(error), "job-1");
        CHECK_INT(zfed_msg_round(error), 2);
        CHECK_INT(zfed_msg_task_id(error), 3);
        CHECK_INT(zfed_msg_attempt(error), 1);
        CHECK_STR(zfed_msg_worker(error), "worker-1");
        CHECK_INT(zfed_msg_error_code(error), 422);
        CHECK_STR(zfed_msg_error_field(error), "fibonacci_level");
        CHECK_STR(zfed_msg_error_text(error), "must be at least 1");
    }
    zfed_msg_destroy(&error);

    //  Decoding keeps non-canonical input canonical: a uint8 round, a
    //  map16 of params, an int8 -1 global round all decode, and re-encode
    //  in their shortest form.
    zfed_msg_t *loose = s_decode_ok(RAW("\x98\xd9\x09zfed.task\xcc\x01\xa1j\xcc\x05\x00\x00"
                                        "\xde\x00\x01\xa1k\xcd\x00\x01\x92\xd0\xff\xc0"),
                                    "non-canonical task");
    if (loose) {
        CHECK_INT(zfed_msg_round(loose), 5);
        CHECK_INT(zfed_msg_global_round(loose), -1);
        CHECK_INT(zfed_msg_encode(loose, &buffer), 0);
        s_check_bytes(buffer.data, buffer.size,
                      RAW("\x98\xa9zfed.task\x01\xa1j\x05\x00\x00\x81\xa1k\x01\x92\xff\xc0"),
                      "canonical re-encoding");
    }
    zfed_msg_destroy(&loose);
    msgpack_sbuffer_destroy(&buffer);
}

static void s_test_kind_and_type_names(void)
{
    CHECK_STR(zfed_msg_kind_name(ZFED_MSG_TASK), "zfed.task");
    CHECK_STR(zfed_msg_kind_name(ZFED_MSG_RESULT), "zfed.result");
    CHECK_STR(zfed_msg_kind_name(ZFED_MSG_ERROR), "zfed.error");
    CHECK_STR(zfed_msg_kind_name((zfed_msg_kind_t)0), "unknown");
    CHECK_STR(zfed_msg_kind_name((zfed_msg_kind_t)4), "unknown");

    CHECK_STR(zfed_msgpack_type_name(MSGPACK_OBJECT_NIL), "nil");
    CHECK_STR(zfed_msgpack_type_name(MSGPACK_OBJECT_BOOLEAN), "bool");
    CHECK_STR(zfed_msgpack_type_name(MSGPACK_OBJECT_POSITIVE_INTEGER), "positive int");
    CHECK_STR(zfed_msgpack_type_name(MSGPACK_OBJECT_NEGATIVE_INTEGER), "negative int");
    CHECK_STR(zfed_msgpack_type_name(MSGPACK_OBJECT_FLOAT32), "float");
    CHECK_STR(zfed_msgpack_type_name(MSGPACK_OBJECT_FLOAT64), "float");
    CHECK_STR(zfed_msgpack_type_name(MSGPACK_OBJECT_STR), "str");
    CHECK_STR(zfed_msgpack_type_name(MSGPACK_OBJECT_ARRAY), "array");
    CHECK_STR(zfed_msgpack_type_name(MSGPACK_OBJECT_MAP), "map");
    CHECK_STR(zfed_msgpack_type_name(MSGPACK_OBJECT_BIN), "bin");
    CHECK_STR(zfed_msgpack_type_name(MSGPACK_OBJECT_EXT), "ext");
    CHECK_STR(zfed_msgpack_type_name(99), "unknown");
    CHECK_STR(zfed_msgpack_type_name(-1), "unknown");
}

//  ---------------------------------------------------------------------
//  Decode refusals

//  Valid bodies of each kind, for truncation.
static void s_test_truncation(void)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    const zfed_msg_kind_t kinds[] = {ZFED_MSG_TASK, ZFED_MSG_RESULT, ZFED_MSG_ERROR};
    for (size_t k = 0; k < 3; k++) {
        s_build(&buffer, kinds[k], s_elements(kinds[k]), -1, s_no_override);
        zfed_msg_t *whole = s_decode_ok(buffer.data, buffer.size, "whole body");
        zfed_msg_destroy(&whole);
        //  Every proper prefix, including the empty one, is refused.
        for (size_t length = 0; length < buffer.size; length++) {
            char label[64];
            snprintf(label, sizeof label, "%s cut to %zu of %zu bytes",
                     zfed_msg_kind_name(kinds[k]), length, buffer.size);
            s_check_rejected(buffer.data, length, NULL, label);
            CHECK(zfed_msgpack_check(buffer.data, length, NULL, 0) == -1);
        }
    }
    //  The reasons say where: empty, then truncated.
    s_build(&buffer, ZFED_MSG_TASK, 8, -1, s_no_override);
    s_check_rejected(buffer.data, 0, "empty body", "empty");
    s_check_rejected(buffer.data, 5, "claims 8 elements but only 4 bytes follow", "5 bytes");
    s_check_rejected(buffer.data, 12, "truncated at byte 12", "12 bytes");
    s_check_rejected(buffer.data, buffer.size - 1, "truncated", "one byte short");
    char reason[128] = "";
    CHECK(zfed_msg_decode(NULL, 0, reason, sizeof reason) == NULL);
    CHECK_CONTAINS(reason, "empty");
    //  A NULL or zero-sized reason buffer is never written.
    CHECK(zfed_msg_decode(buffer.data, 3, NULL, 0) == NULL);
    reason[0] = 'Z';
    CHECK(zfed_msg_decode(buffer.data, 3, reason, 0) == NULL);
    CHECK(reason[0] == 'Z');
    msgpack_sbuffer_destroy(&buffer);
}

typedef struct {
    zfed_msg_kind_t kind;
    int index;          //  element replaced
    const char *raw;    //  by these bytes, or
    size_t raw_size;    //
    const char *text;   //  by this string
    const char *needle; //  expected in the reason
} s_field_case_t;

#define FIELD_RAW(kind, index, literal, needle)                                                    \
    {                                                                                              \
        kind, index, literal, sizeof(literal) - 1, NULL, needle                                    \
    }
#define FIELD_TEXT(kind, index, text, needle)                                                      \
    {                                                                                              \
        kind, index, NULL, 0, text, needle                                                         \
    }

#define T ZFED_MSG_TASK
#define R ZFED_MSG_RESULT
#define E ZFED_MSG_ERROR

static const s_field_case_t s_field_cases[] = {
    //  kind and version, in every kind
    FIELD_RAW(T, 0, "\xc0", "element 0 (kind): expected a string, got nil"),
    FIELD_RAW(T, 0, "\x01", "element 0 (kind)"),
    FIELD_TEXT(T, 0, "zfed.tusk", "unknown kind 'zfed.tusk'"),
    FIELD_TEXT(T, 0, "zfed.task ", "unknown kind"),
    FIELD_TEXT(T, 0, "", "unknown kind"),
    FIELD_RAW(T, 0, "\xc4\x09zfed.task", "expected a string, got bin"),
    FIELD_RAW(T, 1, "\x02", "element 1 (version)"),
    FIELD_RAW(T, 1, "\x00", "element 1 (version)"),
    FIELD_RAW(T, 1, "\xc0", "element 1 (version)"),
    FIELD_RAW(T, 1, "\xff", "element 1 (version)"),
    FIELD_RAW(T, 1, "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", "element 1 (version)"), //  1.0
    FIELD_RAW(T, 1, "\xcf\x00\x00\x00\x01\x00\x00\x00\x01", "element 1 (version)"), //  2^32+1
    FIELD_TEXT(T, 1, "1", "element 1 (version)"),
    FIELD_RAW(R, 1, "\x02", "element 1 (version)"),
    FIELD_RAW(E, 1, "\x02", "element 1 (version)"),
    FIELD_RAW(R, 0, "\xc2", "element 0 (kind)"),
    FIELD_TEXT(E, 0, "zfed.errors", "unknown kind"),
    //  job_id
    FIELD_RAW(T, 2, "\xc0", "element 2 (job_id): expected a string, got nil"),
    FIELD_RAW(T, 2, "\x05", "element 2 (job_id)"),
    FIELD_TEXT(T, 2, "", "element 2 (job_id)"),
    FIELD_TEXT(R, 2, "", "element 2 (job_id)"),
    FIELD_TEXT(T, 2, "a/b", "element 2 (job_id)"),
    FIELD_TEXT(T, 2, "a b", "element 2 (job_id)"),
    FIELD_TEXT(T, 2, ".hidden", "element 2 (job_id)"),
    FIELD_TEXT(E, 2, "..", "element 2 (job_id)"),
    FIELD_TEXT(R, 2, "caf\xc3\xa9", "element 2 (job_id)"),
    FIELD_TEXT(T, 2, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
               "element 2 (job_id)"), //  65 characters
    //  round, task_id, attempt in every kind
    FIELD_TEXT(T, 3, "2", "element 3 (round): expected an unsigned integer below 2^32, got str"),
    FIELD_RAW(T, 3, "\xff", "element 3 (round)"),
    FIELD_RAW(T, 3, "\xc0", "element 3 (round)"),
    FIELD_RAW(T, 3, "\xcb\x40\x00\x00\x00\x00\x00\x00\x00", "element 3 (round)"),
    FIELD_RAW(T, 3, "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", "element 3 (round)"), //  2^32
    FIELD_RAW(R, 3, "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", "element 3 (round)"),
    FIELD_RAW(E, 3, "\xc3", "element 3 (round)"),
    FIELD_RAW(T, 4, "\xa1x", "element 4 (task_id)"),
    FIELD_RAW(R, 4, "\xd0\xfe", "element 4 (task_id)"),
    FIELD_RAW(E, 4, "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", "element 4 (task_id)"),
    FIELD_RAW(T, 5, "\x90", "element 5 (attempt)"),
    FIELD_RAW(R, 5, "\x80", "element 5 (attempt)"),
    FIELD_RAW(E, 5, "\xff", "element 5 (attempt)"),
    //  task: params and global
    FIELD_RAW(T, 6, "\xc0", "element 6 (params): expected a map, got nil"),
    FIELD_RAW(T, 6, "\x91\x01", "element 6 (params): expected a map, got array"),
    FIELD_TEXT(T, 6, "fibonacci_level=10", "element 6 (params)"),
    FIELD_RAW(T, 6, "\x81\x01\x02", "key"),
    FIELD_RAW(T, 6, "\x82\xa1k\x01\x02\x03", "key"),
    FIELD_RAW(T, 6, "\x81\xa0\x01", "element 6 (params): key 0"),
    FIELD_RAW(T, 6, "\x81\xc4\x01k\x01", "key"),
    FIELD_RAW(T, 6, "\x82\xa1k\x01\xa1k\x02", "element 6 (params): duplicate key 'k'"),
    FIELD_RAW(T, 6, "\x83\xa1k\x01\xa1j\x01\xd9\x01k\x02", "duplicate key 'k'"),
    FIELD_RAW(T, 7, "\xc0", "element 7 (global)"),
    FIELD_RAW(T, 7, "\x90", "element 7 (global)"),
    FIELD_RAW(T, 7, "\x91\xff", "element 7 (global)"),
    FIELD_RAW(T, 7, "\x93\xff\xc0\xc0", "element 7 (global)"),
    FIELD_RAW(T, 7, "\x81\xa1k\xc0", "element 7 (global)"),
    FIELD_RAW(T, 7, "\x92\xfe\xc0", "global_round must be -1"),
    FIELD_RAW(T, 7, "\x92\xd3\x80\x00\x00\x00\x00\x00\x00\x00\xc0", "global_round"),
    FIELD_RAW(T, 7, "\x92\xcf\x00\x00\x00\x01\x00\x00\x00\x00\xc0", "global_round"),
    FIELD_RAW(T, 7, "\x92\xa2-1\xc0", "global_round"),
    FIELD_RAW(T, 7, "\x92\xcb\xbf\xf0\x00\x00\x00\x00\x00\x00\xc0", "global_round"), //  -1.0
    FIELD_RAW(T, 7, "\x92\xc0\xc0", "global_round"),
    //  result: worker, compute_us, outputs
    FIELD_RAW(R, 6, "\xc0", "element 6 (worker): expected a string, got nil"),
    FIELD_TEXT(R, 6, "", "element 6 (worker)"),
    FIELD_TEXT(R, 6, "worker 1", "element 6 (worker)"),
    FIELD_TEXT(R, 6, "w\x01", "element 6 (worker)"),
    FIELD_TEXT(R, 6,
               "wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww"
               "wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww",
               "element 6 (worker)"), //  129 characters
    FIELD_RAW(R, 7, "\xff",
              "element 7 (compute_us): expected an unsigned integer, got negative int"),
    FIELD_RAW(R, 7,
              "\xa1"
              "1",
              "element 7 (compute_us)"),
    FIELD_RAW(R, 7, "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", "element 7 (compute_us)"),
    FIELD_RAW(R, 7, "\xc0", "element 7 (compute_us)"),
    FIELD_RAW(R, 8, "\x90", "element 8 (outputs): expected a map, got array"),
    FIELD_RAW(R, 8, "\xc0", "element 8 (outputs)"),
    FIELD_RAW(R, 8, "\x81\xc0\x01", "key"),
    FIELD_RAW(R, 8, "\x82\xa3sum\x01\xa3sum\x01", "element 8 (outputs): duplicate key 'sum'"),
    //  error: worker, code, field, message
    FIELD_TEXT(E, 6, "", "element 6 (worker)"),
    FIELD_TEXT(E, 6, "a b", "element 6 (worker)"),
    FIELD_RAW(E, 6, "\x01", "element 6 (worker)"),
    FIELD_RAW(E, 7, "\x63", "element 7 (code)"),                                 //  99
    FIELD_RAW(E, 7, "\xcd\x02\x58", "element 7 (code)"),                         //  600
    FIELD_RAW(E, 7, "\x00", "element 7 (code)"),                                 //  0
    FIELD_RAW(E, 7, "\xd1\xfe\x6a", "element 7 (code)"),                         //  -406
    FIELD_RAW(E, 7, "\xcf\x00\x00\x00\x01\x00\x00\x01\xa6", "element 7 (code)"), //  2^32+422
    FIELD_TEXT(E, 7, "422", "element 7 (code)"),
    FIELD_TEXT(E, 8, "fib level", "element 8 (field)"),
    FIELD_TEXT(E, 8, "field\n", "element 8 (field)"),
    FIELD_TEXT(E, 8,
               "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
               "f",
               "element 8 (field)"), //  65 characters
    FIELD_RAW(E, 8, "\xc0", "element 8 (field): expected a string"),
    FIELD_TEXT(E, 9, "two\nlines", "element 9 (message)"),
    FIELD_TEXT(E, 9, "\x1b[1mbold", "element 9 (message)"),
    FIELD_TEXT(E, 9, "del \x7f", "element 9 (message)"),
    FIELD_RAW(E, 9, "\xc0", "element 9 (message): expected a string"),
    FIELD_RAW(E, 9, "\xc4\x02ok", "element 9 (message): expected a string, got bin"),
};

#undef T
#undef R
#undef E

static void s_test_field_types(void)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    size_t count = sizeof s_field_cases / sizeof s_field_cases[0];
    for (size_t index = 0; index < count; index++) {
        const s_field_case_t *c = &s_field_cases[index];
        s_override_t override = {c->raw, c->raw_size, c->text};
        s_build(&buffer, c->kind, s_elements(c->kind), c->index, override);
        char label[96];
        snprintf(label, sizeof label, "#%zu: %s element %d", index, zfed_msg_kind_name(c->kind),
                 c->index);
        s_check_rejected(buffer.data, buffer.size, c->needle, label);
    }

    //  Error text of exactly ZFED_ERROR_TEXT_MAX is fine, one more is not.
    char *text = s_repeat('t', ZFED_ERROR_TEXT_MAX);
    s_override_t override = {NULL, 0, text};
    s_build(&buffer, ZFED_MSG_ERROR, 10, 9, override);
    zfed_msg_t *msg = s_decode_ok(buffer.data, buffer.size, "512-byte message");
    if (msg)
        CHECK_INT(strlen(zfed_msg_error_text(msg)), ZFED_ERROR_TEXT_MAX);
    zfed_msg_destroy(&msg);
    free(text);
    text = s_repeat('t', ZFED_ERROR_TEXT_MAX + 1);
    override.text = text;
    s_build(&buffer, ZFED_MSG_ERROR, 10, 9, override);
    s_check_rejected(buffer.data, buffer.size, "element 9 (message)", "513-byte message");
    free(text);

    //  Strings at their limits pass; an empty field and message pass.
    char *id = s_repeat('i', ZFED_JOB_ID_MAX);
    override.text = id;
    s_build(&buffer, ZFED_MSG_RESULT, 9, 2, override);
    msg = s_decode_ok(buffer.data, buffer.size, "64-character job id");
    if (msg)
        CHECK_STR(zfed_msg_job_id(msg), id);
    zfed_msg_destroy(&msg);
    free(id);
    char *worker = s_repeat('w', ZFED_WORKER_NAME_MAX);
    override.text = worker;
    s_build(&buffer, ZFED_MSG_ERROR, 10, 6, override);
    msg = s_decode_ok(buffer.data, buffer.size, "128-character worker");
    if (msg)
        CHECK_STR(zfed_msg_worker(msg), worker);
    zfed_msg_destroy(&msg);
    free(worker);
    override.text = "";
    s_build(&buffer, ZFED_MSG_ERROR, 10, 8, override);
    msg = s_decode_ok(buffer.data, buffer.size, "empty field");
    if (msg)
        CHECK_STR(zfed_msg_error_field(msg), "");
    zfed_msg_destroy(&msg);
    s_build(&buffer, ZFED_MSG_ERROR, 10, 9, override);
    msg = s_decode_ok(buffer.data, buffer.size, "empty message");
    zfed_msg_destroy(&msg);
    //  An error may name no job (element 2 empty); a task or result may not.
    s_build(&buffer, ZFED_MSG_ERROR, 10, 2, override);
    msg = s_decode_ok(buffer.data, buffer.size, "error with no job id");
    if (msg)
        CHECK_STR(zfed_msg_job_id(msg), "");
    zfed_msg_destroy(&msg);
    //  Codes at both ends.
    override.text = NULL;
    override.raw = "\x64"; //  100
    override.raw_size = 1;
    s_build(&buffer, ZFED_MSG_ERROR, 10, 7, override);
    msg = s_decode_ok(buffer.data, buffer.size, "code 100");
    if (msg)
        CHECK_INT(zfed_msg_error_code(msg), 100);
    zfed_msg_destroy(&msg);
    override.raw = "\xcd\x02\x57"; //  599
    override.raw_size = 3;
    s_build(&buffer, ZFED_MSG_ERROR, 10, 7, override);
    msg = s_decode_ok(buffer.data, buffer.size, "code 599");
    if (msg)
        CHECK_INT(zfed_msg_error_code(msg), 599);
    zfed_msg_destroy(&msg);
    //  global_round 0 and 2^32-1.
    override.raw = "\x92\x00\xc0";
    override.raw_size = 3;
    s_build(&buffer, ZFED_MSG_TASK, 8, 7, override);
    msg = s_decode_ok(buffer.data, buffer.size, "global_round 0");
    if (msg)
        CHECK_INT(zfed_msg_global_round(msg), 0);
    zfed_msg_destroy(&msg);
    override.raw = "\x92\xce\xff\xff\xff\xff\xc0";
    override.raw_size = 7;
    s_build(&buffer, ZFED_MSG_TASK, 8, 7, override);
    msg = s_decode_ok(buffer.data, buffer.size, "global_round 2^32-1");
    if (msg)
        CHECK_INT(zfed_msg_global_round(msg), UINT32_MAX);
    zfed_msg_destroy(&msg);
    msgpack_sbuffer_destroy(&buffer);
}

//  Regression: s_is_job_id used to check a NUL-terminated copy with
//  zfed_is_safe_name, so bytes after an embedded NUL were never looked at
//  and "ab\0/../x" decoded (and peeked) as job "ab": two different wire
//  ids naming the same job.  PROTOCOL.md section 9 requires refusing it.
static void s_test_job_id_embedded_nul(void)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    s_override_t override = {RAW("\xa8"
                                 "ab\x00/../x"),
                             NULL};
    s_build(&buffer, ZFED_MSG_TASK, 8, 2, override);
    s_check_rejected(buffer.data, buffer.size, "element 2 (job_id)", "job id with an embedded NUL");
    char job_id[ZFED_JOB_ID_MAX + 1] = "untouched";
    uint32_t round = 0, task = 0, attempt = 0;
    CHECK_INT(zfed_msg_peek_ids(buffer.data, buffer.size, job_id, &round, &task, &attempt), -1);
    if (strcmp(job_id, "untouched") != 0)
        fprintf(stderr, "  peek_ids read job id '%s' from \"ab\\0/../x\"\n", job_id);
    msgpack_sbuffer_destroy(&buffer);
}

static void s_test_element_counts(void)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    const zfed_msg_kind_t kinds[] = {ZFED_MSG_TASK, ZFED_MSG_RESULT, ZFED_MSG_ERROR};
    for (size_t k = 0; k < 3; k++) {
        uint32_t expected = s_elements(kinds[k]);
        for (uint32_t count = 0; count <= expected + 2; count++) {
            if (count == expected)
                continue;
            s_build(&buffer, kinds[k], count, -1, s_no_override);
            char label[64];
            snprintf(label, sizeof label, "%s with %u elements", zfed_msg_kind_name(kinds[k]),
                     count);
            //  Fewer than two cannot even say their kind; the rest are
            //  named by kind with both counts.
            char needle[64];
            if (count < 2)
                snprintf(needle, sizeof needle, "must be an array");
            else
                snprintf(needle, sizeof needle, "%s v1 has %u elements, got %u",
                         zfed_msg_kind_name(kinds[k]), expected, count);
            s_check_rejected(buffer.data, buffer.size, needle, label);
        }
    }
    //  Not an array at all.
    s_check_rejected(RAW("\x80"), "must be an array", "map body");
    s_check_rejected(RAW("\xa9zfed.task"), "got str", "string body");
    s_check_rejected(RAW("\xc0"), "got nil", "nil body");
    s_check_rejected(RAW("\x2a"), "must be an array", "integer body");
    //  A result laid out as a task (8 elements) is refused by count.
    s_override_t override = {NULL, 0, "zfed.result"};
    s_build(&buffer, ZFED_MSG_TASK, 8, 0, override);
    s_check_rejected(buffer.data, buffer.size, "zfed.result v1 has 9 elements, got 8",
                     "result with a task's layout");
    msgpack_sbuffer_destroy(&buffer);
}

static void s_test_structural_refusals(void)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    s_build(&buffer, ZFED_MSG_TASK, 8, -1, s_no_override);
    size_t size = buffer.size;

    //  Trailing bytes after the one value.
    uint8_t *longer = malloc(size + 3);
    memcpy(longer, buffer.data, size);
    memcpy(longer + size, "\xc0\x01\x02", 3);
    s_check_rejected(longer, size + 1, "1 trailing bytes", "one trailing byte");
    s_check_rejected(longer, size + 3, "3 trailing bytes", "three trailing bytes");
    free(longer);

    //  0xc1 anywhere: as the body, as an element, inside params.
    s_check_rejected(RAW("\xc1"), "invalid msgpack byte 0xc1 at 0", "0xc1 body");
    s_override_t override = {RAW("\xc1"), NULL};
    s_build(&buffer, ZFED_MSG_TASK, 8, 3, override);
    s_check_rejected(buffer.data, buffer.size, "invalid msgpack byte 0xc1", "0xc1 round");
    override.raw = "\x81\xa1k\xc1";
    override.raw_size = 4;
    s_build(&buffer, ZFED_MSG_TASK, 8, 6, override);
    s_check_rejected(buffer.data, buffer.size, "0xc1", "0xc1 in params");

    //  Headers that promise more than the bytes hold.
    s_check_rejected(RAW("\xdd\xff\xff\xff\xff"), "claims", "array32 of 2^32-1");
    s_check_rejected(RAW("\xdf\xff\xff\xff\xff"), "claims", "map32 of 2^32-1");
    s_check_rejected(RAW("\xdc\xff\xff"), "claims", "array16 of 65535");
    s_check_rejected(RAW("\xde\xff\xff"), "claims", "map16 of 65535");
    s_check_rejected(RAW("\x9f\x01"), "claims", "fixarray of 15 with 1 byte");
    s_check_rejected(RAW("\xdb\xff\xff\xff\xff"), "truncated", "str32 of 4 GiB");
    s_check_rejected(RAW("\xc6\xff\xff\xff\xff\x00"), "truncated", "bin32 of 4 GiB");
    s_check_rejected(RAW("\xc9\xff\xff\xff\xff\x01"), "truncated", "ext32 of 4 GiB");
    override.raw = "\xdf\xff\xff\xff\xff";
    override.raw_size = 5;
    s_build(&buffer, ZFED_MSG_TASK, 8, 6, override);
    s_check_rejected(buffer.data, buffer.size, "claims", "params claiming 2^32-1 pairs");
    override.raw = "\xdd\x7f\xff\xff\xff";
    s_build(&buffer, ZFED_MSG_TASK, 8, 7, override);
    s_check_rejected(buffer.data, buffer.size, "claims", "global claiming 2^31-1 elements");
    override.raw = "\xdb\x00\x10\x00\x00";
    s_build(&buffer, ZFED_MSG_TASK, 8, 2, override);
    s_check_rejected(buffer.data, buffer.size, "truncated", "job id claiming 1 MiB");
    //  Outer array claiming one more element than is there.
    s_build(&buffer, ZFED_MSG_TASK, 8, -1, s_no_override);
    uint8_t *copy = s_exact_copy(buffer.data, buffer.size);
    copy[0] = 0x99;
    s_check_rejected(copy, buffer.size, "truncated", "outer array one too long");
    free(copy);

    //  Nesting: params hold [[[...]]] inside the outer array and the map;
    //  the outer array is at depth 0, params at 1, so six arrays reach
    //  depth 7 (fine) and a seventh reaches ZFED_NESTING_MAX.
    override.raw = "\x81\xa1k\x91\x91\x91\x91\x91\x91\x01";
    override.raw_size = 10;
    s_build(&buffer, ZFED_MSG_TASK, 8, 6, override);
    zfed_msg_t *msg = s_decode_ok(buffer.data, buffer.size, "params nested to depth 7");
    zfed_msg_destroy(&msg);
    override.raw = "\x81\xa1k\x91\x91\x91\x91\x91\x91\x91\x01";
    override.raw_size = 11;
    s_build(&buffer, ZFED_MSG_TASK, 8, 6, override);
    s_check_rejected(buffer.data, buffer.size, "nesting deeper than 8", "params nested to 8");
    override.raw = "\x92\xff\x91\x81\xa1k\x91\x91\x91\x91\x90";
    override.raw_size = 11;
    s_build(&buffer, ZFED_MSG_TASK, 8, 7, override);
    s_check_rejected(buffer.data, buffer.size, "nesting", "global nested to 8");

    msgpack_sbuffer_destroy(&buffer);
}

//  Bodies over ZFED_BODY_MAX are refused before they are parsed; one of
//  exactly ZFED_BODY_MAX bytes is fine.
static void s_test_body_limit(void)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    size_t value_size = 100000;
    for (int attempt = 0; attempt < 2; attempt++) {
        //  params = {"x": "xxxx..."} with a str32 header.
        size_t params_size = 3 + 5 + value_size;
        uint8_t *params = malloc(params_size);
        memcpy(params, "\x81\xa1x\xdb", 4);
        params[4] = (uint8_t)(value_size >> 24);
        params[5] = (uint8_t)(value_size >> 16);
        params[6] = (uint8_t)(value_size >> 8);
        params[7] = (uint8_t)value_size;
        memset(params + 8, 'x', value_size);
        zfed_msg_t *msg = zfed_msg_new_task("big", 0, 0, 0, params, params_size, -1, RAW("\xc0"));
        free(params);
        CHECK(msg != NULL);
        if (!msg)
            break;
        CHECK_INT(zfed_msg_encode(msg, &buffer), 0);
        zfed_msg_destroy(&msg);
        //  First pass measures the overhead; second builds the exact size.
        if (attempt == 0)
            value_size += (size_t)ZFED_BODY_MAX - buffer.size;
    }
    CHECK_INT(buffer.size, ZFED_BODY_MAX);
    if (buffer.size == ZFED_BODY_MAX) {
        zfed_msg_t *msg = s_decode_ok(buffer.data, buffer.size, "body of ZFED_BODY_MAX");
        if (msg) {
            size_t size = 0;
            zfed_msg_params(msg, &size);
            CHECK_INT(size, 8 + value_size);
        }
        zfed_msg_destroy(&msg);
        //  One byte more (a trailing byte would also be refused, so the
        //  reason must be the size limit, checked first).
        msgpack_sbuffer_write(&buffer, "\xc0", 1);
        s_check_rejected(buffer.data, buffer.size, "over the 4194304-byte limit",
                         "body of ZFED_BODY_MAX + 1");
        char job_id[ZFED_JOB_ID_MAX + 1];
        uint32_t round, task, attempt;
        CHECK_INT(zfed_msg_peek_ids(buffer.data, buffer.size, job_id, &round, &task, &attempt), -1);
    }
    msgpack_sbuffer_destroy(&buffer);
}

//  A task whose global value is an array of `zeros` fixints: 13 values
//  around it (body array, 6 head values, params map with one pair, the
//  global pair and the array itself), so zeros = ZFED_VALUES_MAX - 13 is
//  the largest that fits.
#define TASK_VALUES_AROUND_GLOBAL 13

static void s_pack_task_with_zeros(msgpack_sbuffer *buffer, size_t zeros)
{
    msgpack_sbuffer_clear(buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_array(&packer, 8);
    s_pack_str(&packer, ZFED_KIND_TASK);
    msgpack_pack_uint32(&packer, 1);
    s_pack_str(&packer, "many");
    msgpack_pack_uint32(&packer, 1);
    msgpack_pack_uint32(&packer, 2);
    msgpack_pack_uint32(&packer, 3);
    msgpack_pack_map(&packer, 1);
    s_pack_str(&packer, "fibonacci_level");
    msgpack_pack_uint32(&packer, 10);
    msgpack_pack_array(&packer, 2);
    msgpack_pack_int64(&packer, 0);
    msgpack_pack_array(&packer, (uint32_t)zeros);
    for (size_t index = 0; index < zeros; index++)
        msgpack_pack_uint8(&packer, 0);
}

//  ZFED_VALUES_MAX: a body of exactly that many values decodes, one more
//  is refused by the pre-scan (before msgpack-c allocates 24 bytes a
//  value), and so is a 4 MiB body of fixints, which used to cost a decoder
//  about 100 MB.
static void s_test_value_limit(void)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    s_pack_task_with_zeros(&buffer, ZFED_VALUES_MAX - TASK_VALUES_AROUND_GLOBAL);
    zfed_msg_t *msg = s_decode_ok(buffer.data, buffer.size, "exactly ZFED_VALUES_MAX values");
    if (msg) {
        size_t size = 0;
        CHECK(zfed_msg_global_value(msg, &size) != NULL);
        CHECK_INT(size, 5 + ZFED_VALUES_MAX - TASK_VALUES_AROUND_GLOBAL);
    }
    zfed_msg_destroy(&msg);
    CHECK_INT(zfed_msgpack_check(buffer.data, buffer.size, NULL, 0), 0);

    s_pack_task_with_zeros(&buffer, ZFED_VALUES_MAX - TASK_VALUES_AROUND_GLOBAL + 1);
    s_check_rejected(buffer.data, buffer.size, "msgpack body holds more than 1048576 values",
                     "ZFED_VALUES_MAX + 1 values");
    //  zfed_msg_peek_ids reads only structurally valid bodies.
    char job_id[ZFED_JOB_ID_MAX + 1];
    uint32_t round, task, attempt;
    CHECK_INT(zfed_msg_peek_ids(buffer.data, buffer.size, job_id, &round, &task, &attempt), -1);

    //  The model descriptor the limit leaves room for (MODELS.md): 100,000
    //  tensors of 4 dimensions, as a task's global value.
    enum { TENSORS = 100000 };
    msgpack_sbuffer global;
    msgpack_sbuffer_init(&global);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &global, msgpack_sbuffer_write);
    static const uint8_t id[32] = {0};
    msgpack_pack_array(&packer, 8);
    s_pack_str(&packer, "zfed.model");
    msgpack_pack_uint32(&packer, 1);
    msgpack_pack_bin_with_body(&packer, id, sizeof id);
    msgpack_pack_nil(&packer);
    msgpack_pack_uint64(&packer, (uint64_t)TENSORS * 64);
    msgpack_pack_uint32(&packer, 4 << 20);
    msgpack_pack_array(&packer, TENSORS);
    for (uint32_t tensor = 0; tensor < TENSORS; tensor++) {
        char name[32];
        snprintf(name, sizeof name, "layer.%u.weight", tensor);
        msgpack_pack_array(&packer, 5);
        s_pack_str(&packer, name);
        s_pack_str(&packer, "F32");
        msgpack_pack_array(&packer, 4);
        for (int dimension = 0; dimension < 4; dimension++)
            msgpack_pack_uint32(&packer, 2);
        msgpack_pack_uint64(&packer, (uint64_t)tensor * 64);
        msgpack_pack_uint64(&packer, 64);
    }
    s_pack_str(&packer, "");
    zfed_msg_t *model_task =
        zfed_msg_new_task("models", 0, 0, 0, RAW("\x81\xa1k\x01"), 0, global.data, global.size);
    CHECK(model_task != NULL);
    if (model_task) {
        REQUIRE_INT(zfed_msg_encode(model_task, &buffer), 0);
        CHECK(buffer.size <= ZFED_BODY_MAX);
        zfed_msg_t *back = s_decode_ok(buffer.data, buffer.size, "100,000-tensor descriptor");
        zfed_msg_destroy(&back);
    }
    zfed_msg_destroy(&model_task);
    msgpack_sbuffer_destroy(&global);

    //  4 MiB of fixints in one array32.
    size_t count = (size_t)ZFED_BODY_MAX - 5;
    uint8_t *flat = calloc(1, ZFED_BODY_MAX);
    REQUIRE(flat != NULL);
    flat[0] = 0xdd;
    flat[1] = (uint8_t)(count >> 24);
    flat[2] = (uint8_t)(count >> 16);
    flat[3] = (uint8_t)(count >> 8);
    flat[4] = (uint8_t)count;
    char reason[256] = "";
    CHECK_INT(zfed_msgpack_check(flat, ZFED_BODY_MAX, reason, sizeof reason), -1);
    CHECK_STR(reason, "msgpack body holds more than 1048576 values");
    s_check_rejected(flat, ZFED_BODY_MAX, "more than 1048576 values", "4 MiB of fixints");
    free(flat);
    msgpack_sbuffer_destroy(&buffer);
}

//  ---------------------------------------------------------------------
//  zfed_msgpack_check on every msgpack family

typedef struct {
    const char *bytes;
    size_t size;
    const char *name;
} s_sample_t;

#define SAMPLE(literal, name)                                                                      \
    {                                                                                              \
        literal, sizeof(literal) - 1, name                                                         \
    }

static const s_sample_t s_samples[] = {
    SAMPLE("\x00", "positive fixint 0"),
    SAMPLE("\x7f", "positive fixint 127"),
    SAMPLE("\xe0", "negative fixint -32"),
    SAMPLE("\xff", "negative fixint -1"),
    SAMPLE("\xc0", "nil"),
    SAMPLE("\xc2", "false"),
    SAMPLE("\xc3", "true"),
    SAMPLE("\xcc\xff", "uint8"),
    SAMPLE("\xcd\x01\x00", "uint16"),
    SAMPLE("\xce\x00\x01\x00\x00", "uint32"),
    SAMPLE("\xcf\x00\x00\x00\x01\x00\x00\x00\x00", "uint64"),
    SAMPLE("\xd0\x80", "int8"),
    SAMPLE("\xd1\x80\x00", "int16"),
    SAMPLE("\xd2\x80\x00\x00\x00", "int32"),
    SAMPLE("\xd3\x80\x00\x00\x00\x00\x00\x00\x00", "int64"),
    SAMPLE("\xca\x3f\xc0\x00\x00", "float32"),
    SAMPLE("\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", "float64"),
    SAMPLE("\xa0", "fixstr empty"),
    SAMPLE("\xa3"
           "abc",
           "fixstr"),
    SAMPLE("\xbf"
           "0123456789abcdef0123456789abcde",
           "fixstr 31"),
    SAMPLE("\xd9\x03"
           "abc",
           "str8"),
    SAMPLE("\xda\x00\x03"
           "abc",
           "str16"),
    SAMPLE("\xdb\x00\x00\x00\x03"
           "abc",
           "str32"),
    SAMPLE("\xd9\x00", "str8 empty"),
    SAMPLE("\xc4\x02\x00\xff", "bin8"),
    SAMPLE("\xc5\x00\x02\x00\xff", "bin16"),
    SAMPLE("\xc6\x00\x00\x00\x02\x00\xff", "bin32"),
    SAMPLE("\xc7\x02\x05\x01\x02", "ext8"),
    SAMPLE("\xc7\x00\x05", "ext8 empty"),
    SAMPLE("\xc8\x00\x02\x05\x01\x02", "ext16"),
    SAMPLE("\xc9\x00\x00\x00\x02\x05\x01\x02", "ext32"),
    SAMPLE("\xd4\x05\x01", "fixext1"),
    SAMPLE("\xd5\x05\x01\x02", "fixext2"),
    SAMPLE("\xd6\x05\x01\x02\x03\x04", "fixext4"),
    SAMPLE("\xd7\x05\x01\x02\x03\x04\x05\x06\x07\x08", "fixext8"),
    SAMPLE("\xd8\x05\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", "fixext16"),
    SAMPLE("\x90", "fixarray empty"),
    SAMPLE("\x92\x01\xa1x", "fixarray"),
    SAMPLE("\xdc\x00\x02\x01\x02", "array16"),
    SAMPLE("\xdc\x00\x00", "array16 empty"),
    SAMPLE("\xdd\x00\x00\x00\x02\x01\x02", "array32"),
    SAMPLE("\x80", "fixmap empty"),
    SAMPLE("\x81\xa1k\x01", "fixmap"),
    SAMPLE("\xde\x00\x01\xa1k\x01", "map16"),
    SAMPLE("\xdf\x00\x00\x00\x01\xa1k\x01", "map32"),
    SAMPLE("\xdf\x00\x00\x00\x00", "map32 empty"),
    SAMPLE("\x82\xa1k\x92\xc0\xc3\xa1j\x81\xa1x\x92\xc4\x00\xd4\x01\x02", "mixed"),
};

//  The one-pass build (bodies of up to 128 values) and the two passes
//  agree at its edges: as many values as it holds and one more, nesting
//  at the limit and past it, keys that are no strings, UTF-8 short and
//  long, well formed or not.
static void s_test_tree_edges(void)
{
    uint8_t body[64 + 3 * 200];
    for (size_t count = 125; count <= 130; count++) {
        //  [count - 1 fixints] is count values.
        size_t size = 0;
        body[size++] = 0xdc;
        body[size++] = (uint8_t)((count - 1) >> 8);
        body[size++] = (uint8_t)(count - 1);
        for (size_t item = 0; item + 1 < count; item++)
            body[size++] = (uint8_t)(item & 0x7f);
        CHECK(zfed_test_tree_agrees(body, size));
        CHECK(zfed_msgpack_check(body, size, NULL, 0) == 0);
    }
    for (size_t depth = ZFED_NESTING_MAX - 1; depth <= ZFED_NESTING_MAX + 1; depth++) {
        memset(body, 0x91, depth);
        body[depth] = 0x01;
        CHECK(zfed_test_tree_agrees(body, depth + 1));
        //  the same in maps
        size_t size = 0;
        for (size_t level = 0; level < depth; level++) {
            body[size++] = 0x81;
            body[size++] = 0xa1;
            body[size++] = 'k';
        }
        body[size++] = 0xc0;
        CHECK(zfed_test_tree_agrees(body, size));
    }
    static const struct {
        const char *bytes;
        size_t size;
    } odd[] = {
        {"\x81\x01\x02", 3},      //  an integer key
        {"\x81\xc4\x01k\x02", 5}, //  a bin key
        {"\x81\xd9\x01k\x02", 5}, //  a str8 key
        {"\xa2\xc3\xa9", 3},      //  "é"
        {"\xa2\xc3\x28", 3},      //  a broken sequence
        {"\xa3\xed\xa0\x80", 4},  //  a surrogate
        {"\xb1"
         "aaaaaaaaaaaaaaaa\xc3",
         18}, //  long, cut short
        {"\xb2"
         "aaaaaaaaaaaaaaaa\xc3\xa9",
         19},                                        //  long, well formed
        {"\x92\xc1\x01", 3},                         //  reserved byte
        {"\x92\xd4\x01\x02\x03", 5},                 //  an ext inside
        {"\x01\x02", 2},                             //  trailing bytes
        {"\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9}, //  float64
        {"\xca\x3f\x80\x00\x00", 5},                 //  float32
        {"\xd3\xff\xff\xff\xff\xff\xff\xff\xfe", 9}, //  int64 -2
        {"\xd0\x05", 2},                             //  int8 positive
        //  ASCII strings followed by bytes of 0x80 and more, which the
        //  walk's word reads must not take for the string's
        {"\x93\xa3"
         "abc\xcc\xff\xcc\xfe",
         9},
        {"\x92\xa9"
         "abcdefghi\xcc\xff",
         13},
        {"\x92\xb0"
         "abcdefghijklmnop\xcc\xff",
         20},
        {"\x92\xac"
         "abcdefghij\xc3\xa9\xcc\xff",
         16}, //  "é" in the second word
        {"\x92\xac"
         "abcdefghij\xc3\x28\xcc\xff",
         16}, //  broken in the second word
    };
    for (size_t index = 0; index < sizeof odd / sizeof odd[0]; index++) {
        uint8_t *copy = s_exact_copy(odd[index].bytes, odd[index].size);
        CHECK(zfed_test_tree_agrees(copy, odd[index].size));
        if (!zfed_test_tree_agrees(copy, odd[index].size))
            fprintf(stderr, "  case %zu: the tree and the check disagree\n", index);
        free(copy);
    }
}

//  A result encoded: job "job-1", the given task id, outputs {"k": value}.
static void s_result_body(msgpack_sbuffer *body, uint32_t task, const char *value)
{
    msgpack_sbuffer outputs;
    msgpack_sbuffer_init(&outputs);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &outputs, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, 1);
    msgpack_pack_str_with_body(&packer, "k", 1);
    msgpack_pack_str_with_body(&packer, value, strlen(value));
    zfed_msg_t *msg =
        zfed_msg_new_result("job-1", 1, task, 0, "worker-1", 5, outputs.data, outputs.size);
    msgpack_sbuffer_clear(body);
    REQUIRE(msg != NULL && zfed_msg_encode(msg, body) == 0);
    zfed_msg_destroy(&msg);
    msgpack_sbuffer_destroy(&outputs);
}

//  zfed_msg_decode_into reuses a recycled message's block when the next
//  body fits it, takes a new one when it does not, and decodes the same
//  either way; a constructed message is destroyed, not kept; a body that
//  does not decode frees the spare (ASan would say otherwise).
static void s_test_decode_into(void)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    zfed_msg_t *spare = NULL;
    s_result_body(&body, 7, "small");
    zfed_msg_t *first = zfed_msg_decode_into(&spare, body.data, body.size, NULL, 0);
    REQUIRE(first != NULL);
    const void *block = first;
    zfed_msg_recycle(&first, &spare);
    CHECK(first == NULL && spare == block);
    s_result_body(&body, 8, "other");
    zfed_msg_t *second = zfed_msg_decode_into(&spare, body.data, body.size, NULL, 0);
    REQUIRE(second != NULL);
    CHECK(spare == NULL && (const void *)second == block); //  the same memory
    CHECK_INT(zfed_msg_task_id(second), 8);
    size_t size;
    const uint8_t *outputs = zfed_msg_outputs(second, &size);
    CHECK(outputs && size == 9 && memcmp(outputs, "\x81\xa1k\xa5other", 9) == 0);
    zfed_msg_recycle(&second, &spare);
    //  Too big for the spare: a block of its own, still right.
    char big[2048];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    s_result_body(&body, 9, big);
    zfed_msg_t *third = zfed_msg_decode_into(&spare, body.data, body.size, NULL, 0);
    REQUIRE(third != NULL);
    CHECK(spare == NULL && zfed_msg_task_id(third) == 9);
    outputs = zfed_msg_outputs(third, &size);
    CHECK(outputs && size == 3 + 3 + sizeof big - 1);
    zfed_msg_recycle(&third, &spare);
    CHECK(spare != NULL);
    //  A constructed message is never a spare.
    zfed_msg_t *made = zfed_msg_new_result("job-1", 1, 2, 3, "worker-1", 0, RAW("\x80"));
    const zfed_msg_t *kept = spare;
    zfed_msg_recycle(&made, &spare);
    CHECK(made == NULL && spare == kept);
    //  A body that does not decode: NULL, the reason, the spare gone.
    char reason[128] = "";
    CHECK(zfed_msg_decode_into(&spare, "\x91\xc1", 2, reason, sizeof reason) == NULL);
    CHECK(spare == NULL && reason[0] != '\0');
    msgpack_sbuffer_destroy(&body);
}

//  A recycled block far bigger than the next body needs is not lent to
//  it: a kept result would hold it for the rest of its round.  A peer's
//  reply of 100,000 values (refused later, say, for naming another task)
//  has a block of 2.5 MB; without the bound every small result decoded
//  after such a reply kept one, 1,000 of them per round.
static void s_test_decode_into_bounds_the_block(void)
{
    msgpack_sbuffer outputs, body;
    msgpack_sbuffer_init(&outputs);
    msgpack_sbuffer_init(&body);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &outputs, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, 1);
    msgpack_pack_str_with_body(&packer, "k", 1);
    msgpack_pack_array(&packer, 100000);
    for (int item = 0; item < 100000; item++)
        msgpack_pack_int(&packer, item & 0x7f);
    REQUIRE(zfed_msg_encode_result(&body, "job-1", 1, 3, 0, "worker-1", 5, outputs.data,
                                   outputs.size) == 0);
    zfed_msg_t *spare = NULL;
    zfed_msg_t *big = zfed_msg_decode_into(&spare, body.data, body.size, NULL, 0);
    REQUIRE(big != NULL);
    zfed_msg_recycle(&big, &spare);
    s_result_body(&body, 4, "small");
    zfed_msg_t *small = zfed_msg_decode_into(&spare, body.data, body.size, NULL, 0);
    REQUIRE(small != NULL);
    CHECK_INT(zfed_msg_task_id(small), 4);
    //  At most the one pass's own block for a body this size, with room
    //  to spare; the big block was 2.5 MB.
    CHECK(malloc_usable_size(small) < 64 * 1024);
    zfed_msg_recycle(&small, &spare);
    zfed_msg_destroy(&spare);
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&outputs);
}

static void s_test_msgpack_check(void)
{
    char reason[128];
    size_t count = sizeof s_samples / sizeof s_samples[0];
    for (size_t index = 0; index < count; index++) {
        const s_sample_t *sample = &s_samples[index];
        uint8_t *copy = s_exact_copy(sample->bytes, sample->size);
        reason[0] = '\0';
        int rc = zfed_msgpack_check(copy, sample->size, reason, sizeof reason);
        CHECK_INT(rc, 0);
        if (rc != 0)
            fprintf(stderr, "  %s refused: %s\n", sample->name, reason);
        //  The decoder's tree of it is msgpack-c's.
        CHECK(zfed_test_tree_agrees(copy, sample->size));
        free(copy);
        //  Every proper prefix is truncated (or empty).
        for (size_t length = 0; length < sample->size; length++) {
            copy = s_exact_copy(sample->bytes, length);
            reason[0] = '\0';
            rc = zfed_msgpack_check(copy, length, reason, sizeof reason);
            CHECK_INT(rc, -1);
            CHECK(strstr(reason, length == 0 ? "empty" : "truncated") != NULL ||
                  strstr(reason, "claims") != NULL);
            CHECK(zfed_test_tree_agrees(copy, length)); //  refused by the one pass too
            if (rc != -1)
                fprintf(stderr, "  %s cut to %zu accepted\n", sample->name, length);
            free(copy);
        }
        //  One extra byte is a trailing byte.
        copy = malloc(sample->size + 1);
        memcpy(copy, sample->bytes, sample->size);
        copy[sample->size] = 0x00;
        reason[0] = '\0';
        CHECK_INT(zfed_msgpack_check(copy, sample->size + 1, reason, sizeof reason), -1);
        CHECK_CONTAINS(reason, "1 trailing bytes");
        free(copy);
    }

    //  Every single byte, alone: only the one-byte values pass; 0xc1 is
    //  never valid; nothing reads past the byte (valgrind / ASan).
    for (int head = 0; head <= 0xff; head++) {
        uint8_t *copy = s_exact_copy((uint8_t[]){(uint8_t)head}, 1);
        int rc = zfed_msgpack_check(copy, 1, NULL, 0);
        bool single = head <= 0x80 || head == 0x90 || head == 0xa0 || head == 0xc0 ||
                      head == 0xc2 || head == 0xc3 || head >= 0xe0;
        CHECK_INT(rc, single ? 0 : -1);
        if (rc != (single ? 0 : -1))
            fprintf(stderr, "  lone byte 0x%02x: rc %d\n", head, rc);
        free(copy);
    }
    CHECK_INT(zfed_msgpack_check("\xc1", 1, reason, sizeof reason), -1);
    CHECK_STR(reason, "invalid msgpack byte 0xc1 at 0");
    CHECK_INT(zfed_msgpack_check("\x92\x01\xc1", 3, reason, sizeof reason), -1);
    CHECK_STR(reason, "invalid msgpack byte 0xc1 at 2");
    CHECK_INT(zfed_msgpack_check(NULL, 0, reason, sizeof reason), -1);
    CHECK_STR(reason, "empty body");
    CHECK_INT(zfed_msgpack_check("\x01", 0, reason, sizeof reason), -1);

    //  Nesting: eight levels of containers pass, nine do not, whatever
    //  mix of arrays and maps.
    CHECK_INT(zfed_msgpack_check(RAW("\x91\x91\x91\x91\x91\x91\x91\x90"), NULL, 0), 0);
    CHECK_INT(
        zfed_msgpack_check(RAW("\x91\x91\x91\x91\x91\x91\x91\x91\x90"), reason, sizeof reason), -1);
    CHECK_STR(reason, "msgpack nesting deeper than 8");
    CHECK_INT(zfed_msgpack_check(RAW("\x81\xa1k\x81\xa1k\x81\xa1k\x81\xa1k\x81\xa1k\x81\xa1k"
                                     "\x81\xa1k\x81\xa1k\x80"),
                                 reason, sizeof reason),
              -1);
    CHECK_STR(reason, "msgpack nesting deeper than 8");
    CHECK_INT(zfed_msgpack_check(RAW("\x81\xa1k\x81\xa1k\x81\xa1k\x81\xa1k\x81\xa1k\x81\xa1k"
                                     "\x81\xa1k\x80"),
                                 NULL, 0),
              0);
    CHECK_INT(zfed_msgpack_check(RAW("\xdc\x00\x01\xdd\x00\x00\x00\x01\xde\x00\x01\xa1k\xdf"
                                     "\x00\x00\x00\x01\xa1k\x91\x91\x91\x91\x90"),
                                 reason, sizeof reason),
              -1);
    CHECK_STR(reason, "msgpack nesting deeper than 8");
    CHECK_INT(zfed_msgpack_check(RAW("\xdc\x00\x01\xdd\x00\x00\x00\x01\xde\x00\x01\xa1k\xdf"
                                     "\x00\x00\x00\x01\xa1k\x91\x91\x91\x90"),
                                 reason, sizeof reason),
              0);

    //  Headers that claim more than remains: refused with the count.
    CHECK_INT(zfed_msgpack_check(RAW("\xdd\xff\xff\xff\xff"), reason, sizeof reason), -1);
    CHECK_STR(reason, "msgpack container claims 4294967295 elements but only 0 bytes follow");
    CHECK_INT(zfed_msgpack_check(RAW("\xdf\xff\xff\xff\xff"), reason, sizeof reason), -1);
    CHECK_STR(reason, "msgpack container claims 8589934590 elements but only 0 bytes follow");
    CHECK_INT(zfed_msgpack_check(RAW("\x83\x01\x01\x01\x01\x01"), reason, sizeof reason), -1);
    CHECK_STR(reason, "msgpack container claims 6 elements but only 5 bytes follow");
    CHECK_INT(zfed_msgpack_check(RAW("\x93\x01\x01"), reason, sizeof reason), -1);
    CHECK_CONTAINS(reason, "claims 3 elements");
    //  ... but an array whose count fits the bytes yet whose elements run
    //  out is merely truncated.
    CHECK_INT(zfed_msgpack_check(RAW("\x92\xcd\x01\x02"), reason, sizeof reason), -1);
    CHECK_CONTAINS(reason, "truncated");
    //  Length fields at the very end.
    CHECK_INT(zfed_msgpack_check(RAW("\xdb\xff\xff\xff\xff"), reason, sizeof reason), -1);
    CHECK_CONTAINS(reason, "truncated");
    CHECK_INT(zfed_msgpack_check(RAW("\xc9\xff\xff\xff\xfe\x01"), reason, sizeof reason), -1);
    CHECK_INT(zfed_msgpack_check(RAW("\xc7\xff\x01"), reason, sizeof reason), -1);
    //  A small reason buffer is cut, never overrun.
    char tiny[8];
    memset(tiny, 'Z', sizeof tiny);
    CHECK_INT(zfed_msgpack_check(RAW("\xc1"), tiny, 4), -1);
    CHECK_STR(tiny, "inv");
    CHECK(tiny[4] == 'Z');
}

//  Strings are UTF-8 (PROTOCOL.md 7.5): well-formed, no overlong forms, no
//  surrogates, nothing past U+10FFFF.  bin is not text and is not checked.
static void s_test_utf8(void)
{
    static const s_sample_t good[] = {
        SAMPLE("\xa2\xc3\xa9", "U+00E9"),
        SAMPLE("\xa2\xc2\x80", "U+0080, smallest 2-byte"),
        SAMPLE("\xa2\xdf\xbf", "U+07FF"),
        SAMPLE("\xa3\xe0\xa0\x80", "U+0800, smallest 3-byte"),
        SAMPLE("\xa3\xe2\x82\xac", "euro sign"),
        SAMPLE("\xa3\xed\x9f\xbf", "U+D7FF, below the surrogates"),
        SAMPLE("\xa3\xee\x80\x80", "U+E000, above the surrogates"),
        SAMPLE("\xa3\xef\xbf\xbf", "U+FFFF"),
        SAMPLE("\xa4\xf0\x90\x80\x80", "U+10000, smallest 4-byte"),
        SAMPLE("\xa4\xf0\x9f\x98\x80", "emoji"),
        SAMPLE("\xa4\xf4\x8f\xbf\xbf", "U+10FFFF"),
        SAMPLE("\xd9\x02\xc3\xa9", "str8"),
        SAMPLE("\xc4\x02\xff\xfe", "bin is not text"),
        SAMPLE("\x81\xa2\xc3\xa9\x01", "UTF-8 key"),
    };
    static const s_sample_t bad[] = {
        SAMPLE("\xa1\x80", "lone continuation byte"),
        SAMPLE("\xa1\xc3", "cut 2-byte sequence"),
        SAMPLE("\xa2\xe2\x82", "cut 3-byte sequence"),
        SAMPLE("\xa3\xf0\x9f\x98", "cut 4-byte sequence"),
        SAMPLE("\xa2\xc3\x28", "bad continuation"),
        SAMPLE("\xa2\xc0\x80", "overlong NUL"),
        SAMPLE("\xa2\xc1\xbf", "overlong 2-byte"),
        SAMPLE("\xa3\xe0\x80\x80", "overlong 3-byte"),
        SAMPLE("\xa3\xe0\x9f\xbf", "overlong U+07FF"),
        SAMPLE("\xa4\xf0\x80\x80\x80", "overlong 4-byte"),
        SAMPLE("\xa4\xf0\x8f\xbf\xbf", "overlong U+FFFF"),
        SAMPLE("\xa3\xed\xa0\x80", "surrogate U+D800"),
        SAMPLE("\xa3\xed\xbf\xbf", "surrogate U+DFFF"),
        SAMPLE("\xa4\xf4\x90\x80\x80", "U+110000"),
        SAMPLE("\xa4\xf5\x80\x80\x80", "lead byte 0xf5"),
        SAMPLE("\xa1\xff", "byte 0xff"),
        SAMPLE("\xa1\xfe", "byte 0xfe"),
        SAMPLE("\xda\x00\x01\x80", "str16"),
        SAMPLE("\xdb\x00\x00\x00\x01\x80", "str32"),
        SAMPLE("\x92\x01\xa1\x80", "inside an array"),
        SAMPLE("\x81\xa1\x80\x01", "as a map key"),
    };
    char reason[128];
    for (size_t index = 0; index < sizeof good / sizeof good[0]; index++) {
        int rc = zfed_msgpack_check(good[index].bytes, good[index].size, reason, sizeof reason);
        CHECK_INT(rc, 0);
        if (rc != 0)
            fprintf(stderr, "  UTF-8 '%s' refused: %s\n", good[index].name, reason);
    }
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        reason[0] = '\0';
        int rc = zfed_msgpack_check(bad[index].bytes, bad[index].size, reason, sizeof reason);
        CHECK_INT(rc, -1);
        if (rc != -1)
            fprintf(stderr, "  bad UTF-8 '%s' accepted\n", bad[index].name);
        else
            CHECK_CONTAINS(reason, "UTF-8");
    }
    //  In a body: an error message and a params value.
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    s_override_t override = {NULL, 0, "caf\xc3"};
    s_build(&buffer, ZFED_MSG_ERROR, 10, 9, override);
    s_check_rejected(buffer.data, buffer.size, "UTF-8", "message with a cut sequence");
    override.text = "\xed\xa0\x80";
    s_build(&buffer, ZFED_MSG_ERROR, 10, 9, override);
    s_check_rejected(buffer.data, buffer.size, "UTF-8", "message with a surrogate");
    override.text = NULL;
    override.raw = "\x81\xa1k\xa1\xff";
    override.raw_size = 5;
    s_build(&buffer, ZFED_MSG_TASK, 8, 6, override);
    s_check_rejected(buffer.data, buffer.size, "UTF-8", "params value 0xff");
    CHECK(zfed_msg_new_task("j", 0, 0, 0, RAW("\x81\xa1k\xa1\xff"), -1, RAW("\xc0")) == NULL);
    CHECK(zfed_msg_new_task("j", 0, 0, 0, PARAMS, -1, RAW("\xa1\xff")) == NULL);
    msgpack_sbuffer_destroy(&buffer);
}

//  Whatever a constructor accepts must encode to a body the decoder
//  accepts: otherwise a peer builds messages nobody can read.  Each case
//  may be refused by the constructor; if it is not, it must round-trip.
static void s_check_agrees(zfed_msg_t *msg, const char *label)
{
    if (!msg)
        return;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    CHECK_INT(zfed_msg_encode(msg, &buffer), 0);
    char reason[160] = "";
    zfed_msg_t *back = zfed_msg_decode(buffer.data, buffer.size, reason, sizeof reason);
    CHECK(back != NULL);
    if (!back)
        fprintf(stderr, "  '%s' was constructed but its body is refused: %s\n", label, reason);
    zfed_msg_destroy(&back);
    zfed_msg_destroy(&msg);
    msgpack_sbuffer_destroy(&buffer);
}

static void s_test_constructor_decoder_agree(void)
{
    //  Error texts that are not UTF-8.  Regression: zfed_msg_new_error
    //  used to check only for control bytes while decode refuses any str
    //  that is not UTF-8, so these were built and then unreadable.  Found
    //  by this test; s_is_text now checks UTF-8 too.
    s_check_agrees(zfed_msg_new_error("j", 0, 0, 0, "w", 500, "f", "caf\xc3"),
                   "error text with a cut UTF-8 sequence");
    s_check_agrees(zfed_msg_new_error("j", 0, 0, 0, "w", 500, "f", "\xed\xa0\x80"),
                   "error text with a surrogate");
    s_check_agrees(zfed_msg_new_error("j", 0, 0, 0, "w", 500, "f", "\xc0\xaf"),
                   "error text with an overlong '/'");
    s_check_agrees(zfed_msg_new_error("j", 0, 0, 0, "w", 500, "f", "\xff"),
                   "error text with byte 0xff");
    //  Nesting at and past what a body leaves params and the global value
    //  (PROTOCOL.md 7.3: params at level 2 may hold 6 more levels, a
    //  container global_value at level 3 may have 6 levels itself).
    s_check_agrees(zfed_msg_new_task("j", 0, 0, 0, RAW("\x81\xa1k\x91\x91\x91\x91\x91\x91\x01"), -1,
                                     RAW("\xc0")),
                   "params holding 6 levels");
    s_check_agrees(zfed_msg_new_task("j", 0, 0, 0, RAW("\x81\xa1k\x91\x91\x91\x91\x91\x91\x91\x01"),
                                     -1, RAW("\xc0")),
                   "params holding 7 levels");
    s_check_agrees(zfed_msg_new_task("j", 0, 0, 0, PARAMS, -1, RAW("\x91\x91\x91\x91\x91\x91\x01")),
                   "global value of 6 levels");
    s_check_agrees(
        zfed_msg_new_task("j", 0, 0, 0, PARAMS, -1, RAW("\x91\x91\x91\x91\x91\x91\x91\x01")),
        "global value of 7 levels");
    s_check_agrees(
        zfed_msg_new_result("j", 0, 0, 0, "w", 0, RAW("\x81\xa1k\x91\x91\x91\x91\x91\x91\x91\x90")),
        "outputs holding 7 levels");
    //  The limits themselves must be constructible.
    zfed_msg_t *msg = zfed_msg_new_task("j", 0, 0, 0, RAW("\x81\xa1k\x91\x91\x91\x91\x91\x91\x01"),
                                        -1, RAW("\x91\x91\x91\x91\x91\x91\x01"));
    REQUIRE(msg != NULL);
    s_check_agrees(msg, "both at their limits");
}

//  ---------------------------------------------------------------------
//  zfed_msg_peek_ids

typedef int (*s_peek_fn)(const void *data, size_t size, char *job_id, uint32_t *round,
                         uint32_t *task_id, uint32_t *attempt);

//  A body built by s_build with one element replaced, that a peek must
//  refuse.
typedef struct {
    zfed_msg_kind_t kind;
    uint32_t count;
    int index;
    const char *raw;
    size_t raw_size;
    const char *text;
    const char *what;
} s_peek_case_t;

//  peek refuses every case and leaves every output as it was.
static void s_check_peek_cases(s_peek_fn peek, const s_peek_case_t *cases, size_t count)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    for (size_t index = 0; index < count; index++) {
        s_override_t bad = {cases[index].raw, cases[index].raw_size, cases[index].text};
        s_build(&buffer, cases[index].kind, cases[index].count, cases[index].index, bad);
        char job_id[ZFED_JOB_ID_MAX + 1] = "untouched";
        uint32_t round = 77, task = 77, attempt = 77;
        int rc = peek(buffer.data, buffer.size, job_id, &round, &task, &attempt);
        CHECK_INT(rc, -1);
        CHECK_STR(job_id, "untouched");
        CHECK(round == 77 && task == 77 && attempt == 77);
        if (rc != -1)
            fprintf(stderr, "  peek accepted: %s\n", cases[index].what);
    }
    msgpack_sbuffer_destroy(&buffer);
}

static void s_test_peek_ids(void)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    char job_id[ZFED_JOB_ID_MAX + 1];
    uint32_t round = 99, task = 99, attempt = 99;

    //  A task whose params are an array: decode refuses it, the ids are
    //  still readable for the error reply.
    s_override_t override = {RAW("\x91\x01"), NULL};
    s_build(&buffer, ZFED_MSG_TASK, 8, 6, override);
    s_check_rejected(buffer.data, buffer.size, "element 6 (params)", "bad params");
    strcpy(job_id, "?");
    CHECK_INT(zfed_msg_peek_ids(buffer.data, buffer.size, job_id, &round, &task, &attempt), 0);
    CHECK_STR(job_id, "job-1");
    CHECK_INT(round, 2);
    CHECK_INT(task, 3);
    CHECK_INT(attempt, 1);

    //  Also with an unknown kind, a wrong version, or a wrong count.
    override.raw = NULL;
    override.text = "zfed.future";
    s_build(&buffer, ZFED_MSG_TASK, 8, 0, override);
    round = task = attempt = 0;
    CHECK_INT(zfed_msg_peek_ids(buffer.data, buffer.size, job_id, &round, &task, &attempt), 0);
    CHECK_INT(round, 2);
    override.text = NULL;
    override.raw = "\x07";
    override.raw_size = 1;
    s_build(&buffer, ZFED_MSG_RESULT, 9, 1, override);
    CHECK_INT(zfed_msg_peek_ids(buffer.data, buffer.size, job_id, &round, &task, &attempt), 0);
    s_build(&buffer, ZFED_MSG_RESULT, 6, -1, s_no_override);
    CHECK_INT(zfed_msg_peek_ids(buffer.data, buffer.size, job_id, &round, &task, &attempt), 0);
    CHECK_STR(job_id, "job-1");
    CHECK_INT(task, 3);

    //  Large ids at their limits.
    char *long_id = s_repeat('L', ZFED_JOB_ID_MAX);
    override.raw = NULL;
    override.text = long_id;
    s_build(&buffer, ZFED_MSG_TASK, 8, 2, override);
    CHECK_INT(zfed_msg_peek_ids(buffer.data, buffer.size, job_id, &round, &task, &attempt), 0);
    CHECK_STR(job_id, long_id);
    free(long_id);

    //  Unreadable ids: outputs untouched.
    static const s_peek_case_t cases[] = {
        {ZFED_MSG_TASK, 8, 2, NULL, 0, "a/b", "unsafe job id"},
        {ZFED_MSG_TASK, 8, 2, NULL, 0, "", "empty job id"},
        {ZFED_MSG_TASK, 8, 2, "\x01", 1, NULL, "job id not a string"},
        {ZFED_MSG_TASK, 8, 3, NULL, 0, "2", "round a string"},
        {ZFED_MSG_TASK, 8, 4, "\xff", 1, NULL, "negative task"},
        {ZFED_MSG_TASK, 8, 5, "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9, NULL, "attempt 2^32"},
        {ZFED_MSG_TASK, 5, -1, NULL, 0, NULL, "five elements"},
        {ZFED_MSG_TASK, 8, 6, "\xc1", 1, NULL, "0xc1 in params"},
        {ZFED_MSG_TASK, 8, 6, "\xdd\xff\xff\xff\xff", 5, NULL, "lying header in params"},
    };
    s_check_peek_cases(zfed_msg_peek_ids, cases, sizeof cases / sizeof cases[0]);
    s_build(&buffer, ZFED_MSG_TASK, 8, -1, s_no_override);
    CHECK_INT(zfed_msg_peek_ids(buffer.data, buffer.size - 1, job_id, &round, &task, &attempt), -1);
    CHECK_INT(zfed_msg_peek_ids(buffer.data, 0, job_id, &round, &task, &attempt), -1);
    CHECK_INT(zfed_msg_peek_ids(RAW("\x80"), job_id, &round, &task, &attempt), -1);
    CHECK_INT(zfed_msg_peek_ids(RAW("\xa1x"), job_id, &round, &task, &attempt), -1);
    msgpack_sbuffer_destroy(&buffer);
}

//  ---------------------------------------------------------------------
//  zfed_msg_peek_task: the head of a task, read straight from the bytes

static void s_test_peek_task(void)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    char job_id[ZFED_JOB_ID_MAX + 1];
    uint32_t round = 0, task = 0, attempt = 0;

    s_build(&buffer, ZFED_MSG_TASK, 8, -1, s_no_override);
    CHECK_INT(zfed_msg_peek_task(buffer.data, buffer.size, job_id, &round, &task, &attempt), 0);
    CHECK_STR(job_id, "job-1");
    CHECK(round == 2 && task == 3 && attempt == 1);

    //  Only the head is read: a body whose params are garbage, or that is
    //  cut right after the attempt, still names its task (decode refuses
    //  both, and zfed_msg_peek_ids, which pre-scans the whole body, too).
    s_override_t garbage = {RAW("\xc1\xc1\xc1"), NULL};
    s_build(&buffer, ZFED_MSG_TASK, 8, 6, garbage);
    s_check_rejected(buffer.data, buffer.size, "0xc1", "garbage params");
    CHECK_INT(zfed_msg_peek_ids(buffer.data, buffer.size, job_id, &round, &task, &attempt), -1);
    round = task = attempt = 0;
    CHECK_INT(zfed_msg_peek_task(buffer.data, buffer.size, job_id, &round, &task, &attempt), 0);
    CHECK(round == 2 && task == 3 && attempt == 1);
    s_build(&buffer, ZFED_MSG_TASK, 8, -1, s_no_override);
    size_t head = 0;
    for (size_t cut = 1; cut <= buffer.size; cut++)
        if (zfed_msg_peek_task(buffer.data, cut, job_id, &round, &task, &attempt) == 0) {
            head = cut;
            break;
        }
    CHECK(head > 0 && head < buffer.size);
    CHECK_INT(zfed_msg_peek_task(buffer.data, ZFED_BODY_MAX + 1, job_id, &round, &task, &attempt),
              -1);

    //  Every integer form of the version and ids; an array16 header.
    static const char wide[] = "\xdc\x00\x08\xa9zfed.task\xd0\x01\xa1j"
                               "\xce\x00\x00\x00\x07\xd3\x00\x00\x00\x00\x00\x00\x00\x08\x09";
    CHECK_INT(zfed_msg_peek_task(RAW(wide), job_id, &round, &task, &attempt), 0);
    CHECK_STR(job_id, "j");
    CHECK(round == 7 && task == 8 && attempt == 9);

    //  Not a task head: the outputs stay as they were.
    static const s_peek_case_t cases[] = {
        {ZFED_MSG_RESULT, 9, -1, NULL, 0, NULL, "a result"},
        {ZFED_MSG_TASK, 7, -1, NULL, 0, NULL, "seven elements"},
        {ZFED_MSG_TASK, 9, -1, NULL, 0, NULL, "nine elements"},
        {ZFED_MSG_TASK, 8, 0, NULL, 0, "zfed.tas", "another kind"},
        {ZFED_MSG_TASK, 8, 1, "\x02", 1, NULL, "version 2"},
        {ZFED_MSG_TASK, 8, 1, "\xff", 1, NULL, "version -1"},
        {ZFED_MSG_TASK, 8, 2, NULL, 0, ".hidden", "job id with a leading dot"},
        {ZFED_MSG_TASK, 8, 2, "\xc4\x01j", 3, NULL, "job id as bin"},
        {ZFED_MSG_TASK, 8, 3, "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9, NULL, "round 1.0"},
        {ZFED_MSG_TASK, 8, 5, "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9, NULL, "attempt 2^32"},
    };
    s_check_peek_cases(zfed_msg_peek_task, cases, sizeof cases / sizeof cases[0]);
    CHECK_INT(zfed_msg_peek_task(NULL, 0, job_id, &round, &task, &attempt), -1);
    CHECK_INT(zfed_msg_peek_task(RAW("\x98"), job_id, &round, &task, &attempt), -1);
    msgpack_sbuffer_destroy(&buffer);
}

//  ---------------------------------------------------------------------
//  Fuzz: random mutations of valid bodies never crash the decoder, and
//  whatever decodes re-encodes to a body that decodes to the same fields.

static uint64_t s_xorshift(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

static bool s_blob_same(const uint8_t *a, size_t a_size, const uint8_t *b, size_t b_size)
{
    return a_size == b_size && (a_size == 0 || memcmp(a, b, a_size) == 0);
}

static bool s_same_fields(const zfed_msg_t *a, const zfed_msg_t *b)
{
    size_t a_size = 0, b_size = 0;
    const uint8_t *a_bytes, *b_bytes;
    if (zfed_msg_kind(a) != zfed_msg_kind(b) ||
        strcmp(zfed_msg_job_id(a), zfed_msg_job_id(b)) != 0 ||
        zfed_msg_round(a) != zfed_msg_round(b) || zfed_msg_task_id(a) != zfed_msg_task_id(b) ||
        zfed_msg_attempt(a) != zfed_msg_attempt(b))
        return false;
    switch (zfed_msg_kind(a)) {
    case ZFED_MSG_TASK:
        a_bytes = zfed_msg_params(a, &a_size);
        b_bytes = zfed_msg_params(b, &b_size);
        if (!s_blob_same(a_bytes, a_size, b_bytes, b_size))
            return false;
        a_bytes = zfed_msg_global_value(a, &a_size);
        b_bytes = zfed_msg_global_value(b, &b_size);
        return s_blob_same(a_bytes, a_size, b_bytes, b_size) &&
               zfed_msg_global_round(a) == zfed_msg_global_round(b);
    case ZFED_MSG_RESULT:
        a_bytes = zfed_msg_outputs(a, &a_size);
        b_bytes = zfed_msg_outputs(b, &b_size);
        return s_blob_same(a_bytes, a_size, b_bytes, b_size) &&
               strcmp(zfed_msg_worker(a), zfed_msg_worker(b)) == 0 &&
               zfed_msg_compute_us(a) == zfed_msg_compute_us(b);
    case ZFED_MSG_ERROR:
        return strcmp(zfed_msg_worker(a), zfed_msg_worker(b)) == 0 &&
               zfed_msg_error_code(a) == zfed_msg_error_code(b) &&
               strcmp(zfed_msg_error_field(a), zfed_msg_error_field(b)) == 0 &&
               strcmp(zfed_msg_error_text(a), zfed_msg_error_text(b)) == 0;
    }
    return false;
}

//  Bytes a mutation likes to write: every msgpack header boundary.
static const uint8_t s_interesting[] = {
    0x00, 0x01, 0x7f, 0x80, 0x81, 0x8f, 0x90, 0x91, 0x9f, 0xa0, 0xa1, 0xbf, 0xc0, 0xc1,
    0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf,
    0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd,
    0xde, 0xdf, 0xe0, 0xfe, 0xff, 0x20, 0x2e, 0x2f, 0x0a, 0x64, 0x63};

//  Applies one random mutation to data[0..*size) (capacity FUZZ_BUFFER_MAX).
static void s_mutate(uint8_t *data, size_t *size, uint64_t *state)
{
    uint64_t r = s_xorshift(state);
    size_t at = *size ? (size_t)((r >> 8) % *size) : 0;
    switch (r % 8) {
    case 0: //  flip one bit
        if (*size)
            data[at] ^= (uint8_t)(1u << ((r >> 40) % 8));
        break;
    case 1: //  any byte
        if (*size)
            data[at] = (uint8_t)(r >> 48);
        break;
    case 2:
    case 3: //  a header byte
        if (*size)
            data[at] = s_interesting[(r >> 40) % sizeof s_interesting];
        break;
    case 4: //  insert a byte
        if (*size < FUZZ_BUFFER_MAX) {
            memmove(data + at + 1, data + at, *size - at);
            data[at] = s_interesting[(r >> 40) % sizeof s_interesting];
            (*size)++;
        }
        break;
    case 5: //  delete a byte
        if (*size) {
            memmove(data + at, data + at + 1, *size - at - 1);
            (*size)--;
        }
        break;
    case 6: //  truncate
        *size = at;
        break;
    default: //  duplicate a short run (repeats elements, keys, headers)
        if (*size) {
            size_t run = 1 + (size_t)((r >> 40) % 8);
            if (at + run > *size)
                run = *size - at;
            if (*size + run <= FUZZ_BUFFER_MAX) {
                memmove(data + at + run, data + at, *size - at);
                (*size) += run;
            }
        }
        break;
    }
}

//  ---------------------------------------------------------------------
//  The canonical result's short way against the general decode

//  The same bytes through both ways: both refuse with the same reason, or
//  both decode to the same fields and the same outputs tree.  *took: the
//  short way decoded it.
static bool s_ways_agree(const void *data, size_t size, bool *took)
{
    char short_reason[160] = "", general_reason[160] = "";
    uint8_t *copy = s_exact_copy(data, size);
    zfed_msg_t *quick =
        zfed_msg_decode_canonical(copy, size, took, short_reason, sizeof short_reason);
    zfed_msg_t *general =
        zfed_msg_decode_general(copy, size, general_reason, sizeof general_reason);
    free(copy);
    bool same;
    if (!quick || !general)
        same = !quick && !general && !*took && strcmp(short_reason, general_reason) == 0;
    else
        same =
            s_same_fields(quick, general) &&
            (zfed_msg_kind(quick) != ZFED_MSG_RESULT ||
             zfed_test_tree_same(zfed_msg_outputs_object(quick), zfed_msg_outputs_object(general)));
    zfed_msg_destroy(&quick);
    zfed_msg_destroy(&general);
    return same;
}

//  A result as the C worker encodes it (zfed_msg_encode_result).
static void s_canonical_result(msgpack_sbuffer *body, const char *job_id, uint32_t round,
                               uint32_t task, uint32_t attempt, const char *worker,
                               uint64_t compute_us, const void *outputs, size_t outputs_size)
{
    msgpack_sbuffer_clear(body);
    REQUIRE(zfed_msg_encode_result(body, job_id, round, task, attempt, worker, compute_us, outputs,
                                   outputs_size) == 0);
}

//  Every prefix, every one-byte change (all 256 values at every byte) and
//  every one-byte insertion and deletion of canonical results decode the
//  same both ways; the results themselves take the short way.
static void s_test_canonical_result(void)
{
    //  fib level 10's outputs; an empty sequence; a nested value at the
    //  deepest level outputs may reach (8 in all); a long worker name
    //  (str8) and big ids (uint32, uint64 compute_us); keys out of order.
    static const char fib10[] = "\x84\xa3sum\xa2"
                                "88\xa5terms\x0a\xa4last\xa2"
                                "34\xa8sequence\x9a\xa1"
                                "0\xa1"
                                "1\xa1"
                                "1\xa1"
                                "2\xa1"
                                "3\xa1"
                                "5\xa1"
                                "8\xa2"
                                "13\xa2"
                                "21\xa2"
                                "34";
    static const char empty[] = "\x84\xa3sum\xa2"
                                "88\xa5terms\x0a\xa4last\xa2"
                                "34\xa8sequence\x90";
    static const char deep[] = "\x82\xa1"
                               "a\x91\x91\x91\x91\x91\x90\xa1"
                               "b\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00";
    static const char reordered[] = "\x83\xa5terms\xcd\x01\x00\xa3sum\xa1"
                                    "1\xa8sequence\x90";
    char *long_worker = s_repeat('w', ZFED_WORKER_NAME_MAX);
    REQUIRE(long_worker != NULL);
    struct {
        const char *job_id;
        uint32_t round, task, attempt;
        const char *worker;
        uint64_t compute_us;
        const char *outputs;
        size_t outputs_size;
    } cases[] = {
        {"bench-1", 1, 4711, 0, "bench-0-w3", 12, RAW(fib10)},
        {"j", 0, 0, 0, "w", 0, RAW(empty)},
        {"deep.job_1-x", 70000, 1u << 20, 300, "w~1", 1ull << 40, RAW(deep)},
        {"a.b", UINT32_MAX, UINT32_MAX, UINT32_MAX, long_worker, UINT64_MAX, RAW(reordered)},
    };
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    uint8_t changed[1024];
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        s_canonical_result(&body, cases[index].job_id, cases[index].round, cases[index].task,
                           cases[index].attempt, cases[index].worker, cases[index].compute_us,
                           cases[index].outputs, cases[index].outputs_size);
        REQUIRE(body.size + 1 <= sizeof changed);
        bool took = false;
        CHECK(s_ways_agree(body.data, body.size, &took));
        CHECK(took);
        long disagree = 0, short_way = 0;
        for (size_t length = 0; length < body.size; length++) {
            disagree += !s_ways_agree(body.data, length, &took);
            short_way += took;
        }
        for (size_t at = 0; at < body.size; at++)
            for (unsigned value = 0; value < 256; value++) {
                memcpy(changed, body.data, body.size);
                changed[at] = (uint8_t)value;
                disagree += !s_ways_agree(changed, body.size, &took);
                short_way += took;
            }
        for (size_t at = 0; at <= body.size; at++) {
            //  One byte more (each of the interesting ones) and one less.
            for (size_t pick = 0; pick < sizeof s_interesting; pick++) {
                memcpy(changed, body.data, at);
                changed[at] = s_interesting[pick];
                memcpy(changed + at + 1, body.data + at, body.size - at);
                disagree += !s_ways_agree(changed, body.size + 1, &took);
            }
            if (at < body.size) {
                memcpy(changed, body.data, at);
                memcpy(changed + at, body.data + at + 1, body.size - at - 1);
                disagree += !s_ways_agree(changed, body.size - 1, &took);
            }
        }
        CHECK_INT(disagree, 0);
        //  Changes that keep the layout (a digit for a digit) still take it.
        CHECK(short_way > (long)body.size);
    }
    //  Not the layout: a result with its kind as str8, or its version
    //  as uint8, decodes the general way, and the same.
    static const char str8_kind[] = "\x99\xd9\x0bzfed.result\x01\xa1j\x00\x00\x00\xa1w\x00\x80";
    static const char wide_version[] = "\x99\xabzfed.result\xcc\x01\xa1j\x00\x00\x00\xa1w\x00\x80";
    bool took = true;
    CHECK(s_ways_agree(RAW(str8_kind), &took));
    CHECK(!took);
    took = true;
    CHECK(s_ways_agree(RAW(wide_version), &took));
    CHECK(!took);
    //  Duplicate or empty output keys, and outputs one level too deep,
    //  fail the short way's checks and are refused by the general one.
    static const char duplicate[] =
        "\x99\xabzfed.result\x01\xa1j\x00\x00\x00\xa1w\x00\x82\xa1k\x01\xa1k\x02";
    static const char too_deep[] = "\x99\xabzfed.result\x01\xa1j\x00\x00\x00\xa1w\x00\x81\xa1"
                                   "a\x91\x91\x91\x91\x91\x91\x90";
    took = true;
    CHECK(s_ways_agree(RAW(duplicate), &took));
    CHECK(!took);
    took = true;
    CHECK(s_ways_agree(RAW(too_deep), &took));
    CHECK(!took);
    char reason[160];
    CHECK(zfed_msg_decode(RAW(too_deep), reason, sizeof reason) == NULL);
    CHECK_CONTAINS(reason, "nesting");
    free(long_worker);
    msgpack_sbuffer_destroy(&body);
}

static void s_test_fuzz(void)
{
    //  Seed corpus: the builder's bodies and richer constructed ones.
    msgpack_sbuffer seeds[6];
    for (size_t index = 0; index < 6; index++)
        msgpack_sbuffer_init(&seeds[index]);
    s_build(&seeds[0], ZFED_MSG_TASK, 8, -1, s_no_override);
    s_build(&seeds[1], ZFED_MSG_RESULT, 9, -1, s_no_override);
    s_build(&seeds[2], ZFED_MSG_ERROR, 10, -1, s_no_override);
    zfed_msg_t *rich =
        zfed_msg_new_task("fuzz.job_1", 70000, 300, 2,
                          RAW("\x84\xa1i\xd3\x80\x00\x00\x00\x00\x00\x00\x00\xa1"
                              "f\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\xa1"
                              "b\xc4\x02\x00\x01\xa1n\x92\x81\xa1x\x91\xc3\xd5\x01\x00\x00"),
                          12, RAW("\x82\xa1k\xa2vv\xa1n\x92\xca\x3f\xc0\x00\x00\xc0"));
    zfed_msg_t *rich_result =
        zfed_msg_new_result("r", 1, 1, 1, "w~1", 1ull << 40,
                            RAW("\x83\xa3sum\xa5"
                                "12345\xa5terms\xcd\x01\x00\xa8sequence\x93\xa1"
                                "1\xa1"
                                "1\xa1"
                                "2"));
    zfed_msg_t *rich_error = zfed_msg_new_error("", 0, 0, 0, "w", 500, "", "kaput: \xc3\xa9");
    CHECK(rich && rich_result && rich_error);
    if (rich)
        zfed_msg_encode(rich, &seeds[3]);
    if (rich_result)
        zfed_msg_encode(rich_result, &seeds[4]);
    if (rich_error)
        zfed_msg_encode(rich_error, &seeds[5]);
    zfed_msg_destroy(&rich);
    zfed_msg_destroy(&rich_result);
    zfed_msg_destroy(&rich_error);

    long iterations = FUZZ_ITERATIONS;
    const char *override = getenv("ZFED_TEST_FUZZ_ITERATIONS");
    if (override && atol(override) > 0)
        iterations = atol(override);

    uint64_t state = FUZZ_SEED;
    uint8_t data[FUZZ_BUFFER_MAX];
    msgpack_sbuffer first, second;
    msgpack_sbuffer_init(&first);
    msgpack_sbuffer_init(&second);
    long decoded = 0, refused = 0, mismatches = 0;
    for (long iteration = 0; iteration < iterations; iteration++) {
        const msgpack_sbuffer *seed = &seeds[s_xorshift(&state) % 6];
        size_t size = seed->size;
        memcpy(data, seed->data, size);
        int mutations = 1 + (int)(s_xorshift(&state) % 4);
        for (int m = 0; m < mutations; m++)
            s_mutate(data, &size, &state);
        uint8_t *copy = s_exact_copy(data, size);
        char reason[160];
        reason[0] = '\0';
        zfed_msg_t *msg = zfed_msg_decode(copy, size, reason, sizeof reason);
        if (!zfed_test_tree_agrees(copy, size))
            mismatches++;
        bool took = false;
        if (!s_ways_agree(copy, size, &took))
            mismatches++;
        //  peek never crashes either, and agrees with a successful decode.
        char job_id[ZFED_JOB_ID_MAX + 1];
        uint32_t round = 0, task = 0, attempt = 0;
        int peeked = zfed_msg_peek_ids(copy, size, job_id, &round, &task, &attempt);
        free(copy);
        if (!msg) {
            refused++;
            if (reason[0] == '\0' || strcmp(reason, "no reason") == 0) {
                mismatches++;
                fprintf(stderr, "  fuzz %ld: refused without a reason\n", iteration);
            }
            continue;
        }
        decoded++;
        bool ok = zfed_msg_encode(msg, &first) == 0 &&
                  zfed_msgpack_check(first.data, first.size, NULL, 0) == 0;
        zfed_msg_t *again = ok ? zfed_msg_decode(first.data, first.size, NULL, 0) : NULL;
        ok = ok && again && s_same_fields(msg, again) && zfed_msg_encode(again, &second) == 0 &&
             s_blob_same((const uint8_t *)first.data, first.size, (const uint8_t *)second.data,
                         second.size);
        if (zfed_msg_job_id(msg)[0] != '\0')
            ok = ok && peeked == 0 && strcmp(job_id, zfed_msg_job_id(msg)) == 0 &&
                 round == zfed_msg_round(msg) && task == zfed_msg_task_id(msg) &&
                 attempt == zfed_msg_attempt(msg);
        if (!ok && mismatches++ < 5) {
            fprintf(stderr, "  fuzz %ld: decoded body does not survive a round trip\n", iteration);
            s_dump("input", data, size);
        }
        zfed_msg_destroy(&again);
        zfed_msg_destroy(&msg);
    }
    CHECK_INT(mismatches, 0);
    //  The loop exercised both paths (a mutation that breaks nothing,
    //  e.g. flipping a value bit, still decodes).
    CHECK(decoded > iterations / 100);
    CHECK(refused > iterations / 2);
    fprintf(stderr, "  fuzz: %ld iterations, %ld decoded, %ld refused\n", iterations, decoded,
            refused);
    msgpack_sbuffer_destroy(&first);
    msgpack_sbuffer_destroy(&second);
    for (size_t index = 0; index < 6; index++)
        msgpack_sbuffer_destroy(&seeds[index]);
}

int main(void)
{
    s_test_new_task();
    s_test_map_key_limit();
    s_test_new_result();
    s_test_new_error();
    s_test_encode_bytes();
    s_test_encode_matches_packer();
    s_test_constructors_copy();
    s_test_round_trips();
    s_test_kind_and_type_names();
    s_test_truncation();
    s_test_field_types();
    s_test_job_id_embedded_nul();
    s_test_element_counts();
    s_test_structural_refusals();
    s_test_body_limit();
    s_test_value_limit();
    s_test_msgpack_check();
    s_test_tree_edges();
    s_test_decode_into();
    s_test_decode_into_bounds_the_block();
    s_test_utf8();
    s_test_constructor_decoder_agree();
    s_test_peek_ids();
    s_test_peek_task();
    s_test_canonical_result();
    s_test_fuzz();
    ZFED_TEST_END();
}
