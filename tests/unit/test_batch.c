/*  test_batch - zfed.batch framing: round trips, limits, every refusal,
    and the batch test vectors (schemas/batch-vectors.json, written by
    schemas/tools/make_vectors.py with msgpack-python, independently of
    zfed_batch): every valid vector decodes to exactly its items and
    re-encodes to its canonical bytes; every invalid one is refused with
    its error_contains in the reason; zfed_batch_is agrees with is_batch.
*/
#include "wire/zfed_peek.h"
#include "zfed/zfed_batch.h"
#include "zfed/zfed_msg.h"
#include "zfed_test.h"
#include "zfed_test_hex.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_VECTORS_PATH ZFED_SOURCE_DIR "/schemas/batch-vectors.json"
#define PROTOCOL_PATH      ZFED_SOURCE_DIR "/schemas/zfed-protocol.json"

//  Vectors the generator promises, so a truncated file cannot pass.
#define BATCH_VALID_MIN   8
#define BATCH_INVALID_MIN 12

static void s_round_trip(size_t count)
{
    msgpack_sbuffer bodies[8], batch;
    zfed_view_t views[8], back[8];
    msgpack_sbuffer_init(&batch);
    static const uint8_t params[] = {0x80};
    static const uint8_t global[] = {0xa1, '0'};
    for (size_t item = 0; item < count; item++) {
        msgpack_sbuffer_init(&bodies[item]);
        CHECK_INT(zfed_msg_encode_task(&bodies[item], "job", 3, (uint32_t)item, 0, params,
                                       sizeof params, -1, global, sizeof global),
                  0);
        views[item].data = (const uint8_t *)bodies[item].data;
        views[item].size = bodies[item].size;
    }
    CHECK_INT(zfed_batch_encode(&batch, views, count), 0);
    CHECK(zfed_batch_is(batch.data, batch.size));
    //  A batch is not a task, and a task is not a batch.
    CHECK(zfed_msg_decode(batch.data, batch.size, NULL, 0) == NULL);
    CHECK(!zfed_batch_is(bodies[0].data, bodies[0].size));
    size_t got = 0;
    char reason[128];
    CHECK_INT(zfed_batch_decode(batch.data, batch.size, back, 8, &got, reason, sizeof reason), 0);
    CHECK_INT(got, count);
    for (size_t item = 0; item < got; item++) {
        CHECK_INT(back[item].size, views[item].size);
        CHECK(memcmp(back[item].data, views[item].data, views[item].size) == 0);
        //  Views point into the batch, not copies.
        CHECK(back[item].data > (const uint8_t *)batch.data &&
              back[item].data < (const uint8_t *)batch.data + batch.size);
        zfed_msg_t *task = zfed_msg_decode(back[item].data, back[item].size, NULL, 0);
        CHECK(task != NULL && zfed_msg_task_id(task) == item);
        zfed_msg_destroy(&task);
    }
    //  A reader with room for fewer items refuses it.
    if (count > 1)
        CHECK_INT(
            zfed_batch_decode(batch.data, batch.size, back, count - 1, &got, reason, sizeof reason),
            -1);
    for (size_t item = 0; item < count; item++)
        msgpack_sbuffer_destroy(&bodies[item]);
    msgpack_sbuffer_destroy(&batch);
}

//  Decoding raw bytes must fail with a reason containing expected.
static void s_refused(const char *bytes, size_t size, const char *expected)
{
    zfed_view_t items[4];
    size_t count = 99;
    char reason[160] = "";
    CHECK_INT(zfed_batch_decode(bytes, size, items, 4, &count, reason, sizeof reason), -1);
    CHECK_INT(count, 0);
    CHECK(strstr(reason, expected) != NULL);
    if (!strstr(reason, expected))
        fprintf(stderr, "  reason '%s' lacks '%s'\n", reason, expected);
}

#define REFUSED(literal, expected) s_refused(literal, sizeof literal - 1, expected)

//  ---------------------------------------------------------------------
//  The batch vectors

//  An item's kind as the vector states it (for information): the message
//  decoder must agree.
static void s_check_item_kind(const zfed_view_t *item, const json_t *kind)
{
    zfed_msg_t *message = zfed_msg_decode(item->data, item->size, NULL, 0);
    if (json_is_null(kind))
        CHECK(message == NULL && !zfed_batch_is(item->data, item->size));
    else if (strcmp(json_string_value(kind), "batch") == 0)
        CHECK(message == NULL && zfed_batch_is(item->data, item->size));
    else {
        char name[32];
        snprintf(name, sizeof name, "zfed.%s", json_string_value(kind));
        CHECK(message != NULL && strcmp(zfed_msg_kind_name(zfed_msg_kind(message)), name) == 0);
    }
    zfed_msg_destroy(&message);
}

static void s_check_valid_vector(const zfed_test_bytes_t *body, const json_t *vector,
                                 zfed_view_t *items)
{
    const json_t *expected = json_object_get(vector, "items");
    const json_t *kinds = json_object_get(vector, "item_kinds");
    size_t count = 0;
    char reason[256] = "";
    CHECK_INT(zfed_batch_decode(body->data, body->size, items, ZFED_BATCH_MAX, &count, reason,
                                sizeof reason),
              0);
    if (reason[0])
        fprintf(stderr, "  refused: %s\n", reason);
    CHECK_INT(count, json_array_size(expected));
    CHECK_INT(json_array_size(kinds), json_array_size(expected));
    for (size_t item = 0; item < count && item < json_array_size(expected); item++) {
        CHECK(zfed_test_same_hex(items[item].data, items[item].size,
                                 json_string_value(json_array_get(expected, item))));
        //  Views, not copies.
        CHECK(items[item].data >= body->data && items[item].data <= body->data + body->size);
        s_check_item_kind(&items[item], json_array_get(kinds, item));
    }
    //  Re-encoding gives the canonical bytes.
    const char *canonical = json_string_value(json_object_get(vector, "canonical_hex"));
    if (json_is_true(json_object_get(vector, "canonical")))
        canonical = zfed_test_string(vector, "hex", "");
    msgpack_sbuffer again;
    msgpack_sbuffer_init(&again);
    CHECK_INT(zfed_batch_encode(&again, items, count), 0);
    CHECK(canonical && zfed_test_same_hex(again.data, again.size, canonical));
    if (json_is_false(json_object_get(vector, "canonical")))
        CHECK(!zfed_test_same_hex(again.data, again.size, zfed_test_string(vector, "hex", "")));
    msgpack_sbuffer_destroy(&again);
}

static void s_check_invalid_vector(const zfed_test_bytes_t *body, const json_t *vector,
                                   zfed_view_t *items)
{
    const char *expected = zfed_test_string(vector, "error_contains", "");
    size_t count = 99;
    char reason[256] = "";
    CHECK_INT(zfed_batch_decode(body->data, body->size, items, ZFED_BATCH_MAX, &count, reason,
                                sizeof reason),
              -1);
    CHECK_INT(count, 0);
    CHECK(expected[0] && strstr(reason, expected) != NULL);
    if (!strstr(reason, expected))
        fprintf(stderr, "  reason '%s' lacks '%s'\n", reason, expected);
}

static void s_check_batch_vectors(void)
{
    json_t *root = zfed_test_load_json(BATCH_VECTORS_PATH);
    CHECK(root != NULL);
    if (!root)
        return;
    CHECK_INT(json_integer_value(json_object_get(root, "protocol_version")), ZFED_PROTOCOL_VERSION);
    CHECK(strcmp(zfed_test_string(root, "kind", ""), ZFED_KIND_BATCH) == 0);
    zfed_view_t *items = calloc(ZFED_BATCH_MAX, sizeof *items);
    REQUIRE(items != NULL);
    size_t index, valid = 0, invalid = 0;
    json_t *vector;
    json_array_foreach(json_object_get(root, "vectors"), index, vector)
    {
        if (!items)
            break;
        int failures = zfed_test_failures;
        zfed_test_bytes_t body;
        CHECK(zfed_test_from_hex(json_string_value(json_object_get(vector, "hex")), &body) == 0);
        //  Recognition decides how a worker answers: a batch, or one body.
        if (body.data)
            CHECK(zfed_batch_is(body.data, body.size) ==
                  json_is_true(json_object_get(vector, "is_batch")));
        if (body.data && json_is_true(json_object_get(vector, "valid"))) {
            s_check_valid_vector(&body, vector, items);
            valid++;
        } else if (body.data && json_is_false(json_object_get(vector, "valid"))) {
            s_check_invalid_vector(&body, vector, items);
            invalid++;
        } else
            CHECK(!"vector has bad hex or no valid flag");
        free(body.data);
        if (zfed_test_failures > failures)
            fprintf(stderr, "  ^ in batch vector %s\n", zfed_test_string(vector, "name", ""));
    }
    fprintf(stderr, "%zu valid and %zu invalid batch vectors checked\n", valid, invalid);
    CHECK(valid >= BATCH_VALID_MIN && invalid >= BATCH_INVALID_MIN);
    free(items);
    json_decref(root);
}

//  The machine-readable spec names the kind and the limit the code uses.
static void s_check_protocol_file(void)
{
    json_t *root = zfed_test_load_json(PROTOCOL_PATH);
    CHECK(root != NULL);
    if (!root)
        return;
    const json_t *batch = json_object_get(json_object_get(root, "messages"), "batch");
    CHECK(strcmp(zfed_test_string(batch, "kind", ""), ZFED_KIND_BATCH) == 0);
    CHECK_INT(json_integer_value(json_object_get(batch, "elements_count")), 3);
    CHECK_INT(json_array_size(json_object_get(batch, "elements")), 3);
    const json_t *limits = json_object_get(root, "limits");
    CHECK_INT(json_integer_value(json_object_get(limits, "batch_items_max")), ZFED_BATCH_MAX);
    CHECK_INT(json_integer_value(json_object_get(limits, "controller_batch_max")), ZFED_BATCH_MAX);
    CHECK_STR(
        json_string_value(json_object_get(json_object_get(root, "protocol"), "batch_vectors")),
        "batch-vectors.json");
    json_decref(root);
}

//  Items over 65535 bytes take the bin32 form, and the whole body, not
//  each item, is held to ZFED_BODY_MAX.
static void s_check_sizes(void)
{
    size_t large = 70000;
    uint8_t *bytes = calloc(1, ZFED_BODY_MAX + (size_t)1);
    CHECK(bytes != NULL);
    if (!bytes)
        return;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    zfed_view_t item = {bytes, large}, back[2];
    size_t count = 0;
    CHECK_INT(zfed_batch_encode(&buffer, &item, 1), 0);
    //  93 aa "zfed.batch" 01 91 c6 <4-byte length>
    CHECK_INT(buffer.size, 1 + 11 + 1 + 1 + 5 + large);
    CHECK_INT((uint8_t)buffer.data[14], 0xc6);
    CHECK_INT(zfed_batch_decode(buffer.data, buffer.size, back, 2, &count, NULL, 0), 0);
    CHECK(count == 1 && back[0].size == large);
    //  One item as big as a whole body leaves no room for the envelope.
    item.size = ZFED_BODY_MAX;
    CHECK_INT(zfed_batch_encode(&buffer, &item, 1), -1);
    item.size = ZFED_BODY_MAX - 19; //  the envelope of one bin32 item is 19 bytes
    CHECK_INT(zfed_batch_encode(&buffer, &item, 1), 0);
    CHECK_INT(buffer.size, ZFED_BODY_MAX);
    CHECK_INT(zfed_batch_decode(buffer.data, buffer.size, back, 2, &count, NULL, 0), 0);
    //  A body one byte over the limit is refused before it is read.
    char reason[128] = "";
    CHECK_INT(
        zfed_batch_decode(bytes, ZFED_BODY_MAX + (size_t)1, back, 2, &count, reason, sizeof reason),
        -1);
    CHECK(strstr(reason, "over the 4194304-byte limit") != NULL);

    //  zfed_batch_encoded_size predicts every header width exactly: items
    //  of 0, 255, 256, 65535 and 65536 bytes; 1, 15, 16 and 40 items.
    static const size_t item_sizes[] = {0, 255, 256, 65535, 65536};
    static const size_t item_counts[] = {1, 15, 16, 40};
    zfed_view_t views[40];
    for (size_t size = 0; size < sizeof item_sizes / sizeof *item_sizes; size++)
        for (size_t kind = 0; kind < sizeof item_counts / sizeof *item_counts; kind++) {
            size_t count_here = item_counts[kind];
            for (size_t index = 0; index < count_here; index++)
                views[index] = (zfed_view_t){bytes, item_sizes[(size + index) % 5]};
            CHECK_INT(zfed_batch_encode(&buffer, views, count_here), 0);
            CHECK_INT(zfed_batch_encoded_size(views, count_here), buffer.size);
        }
    msgpack_sbuffer_destroy(&buffer);
    free(bytes);
}

//  What zfed_batch_decode takes without the full check (its one bounded
//  walk) is what the full check passes: every prefix and every one-byte
//  change of a batch of three items is either refused or a well-formed
//  body whose items are where the walk says, inside the bytes.
static void s_check_quick_edges(void)
{
    static const uint8_t item[] = {0x93, 0xa1, 'x', 0x01, 0xc0};
    zfed_view_t views[3] = {{item, sizeof item}, {item, 2}, {item, 0}};
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    REQUIRE_INT(zfed_batch_encode(&buffer, views, 3), 0);
    uint8_t *body = malloc(buffer.size);
    REQUIRE(body != NULL);
    static const uint8_t changes[] = {0x00, 0x01, 0x7f, 0x80, 0x90, 0x93, 0xa0, 0xaa,
                                      0xc0, 0xc1, 0xc4, 0xc5, 0xc6, 0xcc, 0xd9, 0xff};
    size_t accepted = 0, refused = 0;
    for (size_t at = 0; at <= buffer.size; at++) {
        for (size_t change = 0; change <= sizeof changes; change++) {
            memcpy(body, buffer.data, buffer.size);
            //  change == sizeof changes: the prefix of at bytes as it is.
            size_t size = change == sizeof changes ? at : buffer.size;
            if (change < sizeof changes) {
                if (at == buffer.size)
                    break;
                body[at] = changes[change];
            }
            zfed_view_t back[4];
            size_t count = 0;
            char reason[128];
            if (zfed_batch_decode(body, size, back, 4, &count, reason, sizeof reason) != 0) {
                refused++;
                continue;
            }
            accepted++;
            CHECK_INT(zfed_msgpack_check(body, size, reason, sizeof reason), 0);
            CHECK(zfed_batch_is(body, size));
            CHECK(count >= 1 && count <= 4);
            for (size_t index = 0; index < count; index++)
                CHECK(back[index].data >= body &&
                      back[index].data + back[index].size <= body + size);
        }
    }
    CHECK(accepted > 0 && refused > 0);
    free(body);
    msgpack_sbuffer_destroy(&buffer);
}

//  Items written in place (open, the body appended, close) give
//  zfed_batch_encode's bytes, at every header size (bin8, bin16, bin32:
//  the body moved); tasks appended by zfed_msg_encode_task_append are
//  zfed_msg_encode_task's bodies.
static void s_check_in_place(void)
{
    const size_t sizes[] = {0, 1, 255, 256, 65535, 65536, 70000};
    const size_t count = sizeof sizes / sizeof sizes[0];
    uint8_t *bytes = malloc(70000);
    REQUIRE(bytes != NULL);
    for (size_t index = 0; index < 70000; index++)
        bytes[index] = (uint8_t)(index * 7 + 3);
    zfed_view_t items[sizeof sizes / sizeof sizes[0]];
    msgpack_sbuffer whole, in_place;
    msgpack_sbuffer_init(&whole);
    msgpack_sbuffer_init(&in_place);
    for (size_t first = 0; first < count; first++) {
        //  Every size after every other, so each move lands after a
        //  header of each size.
        size_t used = 0;
        for (size_t index = first; index < count; index++)
            items[used++] = (zfed_view_t){bytes, sizes[index]};
        for (size_t index = 0; index < first; index++)
            items[used++] = (zfed_view_t){bytes + 1, sizes[index]};
        REQUIRE_INT(zfed_batch_encode(&whole, items, used), 0);
        REQUIRE_INT(zfed_batch_encode_begin(&in_place, used), 0);
        for (size_t index = 0; index < used; index++) {
            size_t mark = 0;
            CHECK_INT(zfed_batch_encode_open(&in_place, &mark), 0);
            CHECK_INT(msgpack_sbuffer_write(&in_place, (const char *)items[index].data,
                                            items[index].size),
                      0);
            CHECK_INT(zfed_batch_encode_close(&in_place, mark), 0);
        }
        CHECK(whole.size == in_place.size && memcmp(whole.data, in_place.data, whole.size) == 0);
    }
    //  Tasks: appended in place equal encoded alone.
    msgpack_sbuffer alone;
    msgpack_sbuffer_init(&alone);
    static const char params[] = "\x81\xaf"
                                 "fibonacci_level\x0a";
    static const char global[] = "\xa2"
                                 "88";
    REQUIRE_INT(zfed_batch_encode_begin(&in_place, 3), 0);
    for (uint32_t task = 0; task < 3; task++) {
        REQUIRE_INT(zfed_msg_encode_task(&alone, "job-1", 7, task * 200, task, params,
                                         sizeof params - 1, task - 1, global, sizeof global - 1),
                    0);
        items[task] = (zfed_view_t){malloc(alone.size), alone.size};
        REQUIRE(items[task].data != NULL);
        memcpy((uint8_t *)items[task].data, alone.data, alone.size);
        size_t mark = 0;
        CHECK_INT(zfed_batch_encode_open(&in_place, &mark), 0);
        CHECK_INT(zfed_msg_encode_task_append(&in_place, "job-1", 7, task * 200, task, params,
                                              sizeof params - 1, task - 1, global,
                                              sizeof global - 1),
                  0);
        CHECK_INT(zfed_batch_encode_close(&in_place, mark), 0);
    }
    REQUIRE_INT(zfed_batch_encode(&whole, items, 3), 0);
    CHECK(whole.size == in_place.size && memcmp(whole.data, in_place.data, whole.size) == 0);
    //  From the round's prefix, written once: the same bytes, for job ids
    //  as fixstr and str8 and rounds in every width.
    uint8_t prefix[ZFED_MSG_TASK_PREFIX_MAX];
    char *long_id = malloc(ZFED_JOB_ID_MAX + 2);
    REQUIRE(long_id != NULL);
    memset(long_id, 'j', ZFED_JOB_ID_MAX + 1);
    long_id[ZFED_JOB_ID_MAX + 1] = '\0';
    CHECK_INT(zfed_msg_task_prefix(prefix, long_id, 1), 0); //  one over the limit
    long_id[ZFED_JOB_ID_MAX] = '\0';
    const char *ids[] = {"j", "job-1", long_id};
    const uint32_t rounds[] = {0, 127, 128, 65535, 65536, UINT32_MAX};
    for (size_t id = 0; id < 3; id++)
        for (size_t number = 0; number < sizeof rounds / sizeof rounds[0]; number++) {
            size_t prefix_size = zfed_msg_task_prefix(prefix, ids[id], rounds[number]);
            CHECK(prefix_size > 0 && prefix_size <= ZFED_MSG_TASK_PREFIX_MAX);
            REQUIRE_INT(zfed_msg_encode_task(&alone, ids[id], rounds[number], 70000, 3, params,
                                             sizeof params - 1, 5, global, sizeof global - 1),
                        0);
            msgpack_sbuffer_clear(&whole);
            CHECK_INT(zfed_msg_encode_task_after(&whole, prefix, prefix_size, 70000, 3, params,
                                                 sizeof params - 1, 5, global, sizeof global - 1),
                      0);
            CHECK(whole.size == alone.size && memcmp(whole.data, alone.data, whole.size) == 0);
        }
    free(long_id);
    //  A task over the body limit is refused and leaves the buffer as it was.
    size_t before = in_place.size;
    uint8_t *big = calloc(ZFED_BODY_MAX, 1);
    REQUIRE(big != NULL);
    CHECK_INT(zfed_msg_encode_task_append(&in_place, "job-1", 7, 0, 0, params, sizeof params - 1,
                                          -1, big, ZFED_BODY_MAX),
              -1);
    CHECK(in_place.size == before);
    free(big);
    for (uint32_t task = 0; task < 3; task++)
        free((void *)items[task].data);
    msgpack_sbuffer_destroy(&alone);
    msgpack_sbuffer_destroy(&whole);
    msgpack_sbuffer_destroy(&in_place);
    free(bytes);
}

//  zfed_peek_uint and zfed_peek_u32: every integer form, the bounds, a
//  negative value, a truncated one and other types.
static void s_check_peek_uint(void)
{
    static const struct {
        const char *bytes;
        size_t size;
        uint64_t max;
        int rc;
        uint64_t value;
    } cases[] = {
        {"\x00", 1, UINT32_MAX, 0, 0},
        {"\x7f", 1, UINT32_MAX, 0, 127},
        {"\x7f", 1, 100, -1, 0},
        {"\xcc\xff", 2, UINT32_MAX, 0, 255},
        {"\xcd\x01\x00", 3, UINT32_MAX, 0, 256},
        {"\xce\xff\xff\xff\xff", 5, UINT32_MAX, 0, UINT32_MAX},
        {"\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9, UINT32_MAX, -1, 0},
        {"\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9, UINT64_MAX, 0, 1ull << 32},
        {"\xd0\x05", 2, UINT32_MAX, 0, 5},
        {"\xd0\xff", 2, UINT32_MAX, -1, 0},
        {"\xff", 1, UINT64_MAX, -1, 0},
        {"\xcd\x01", 2, UINT32_MAX, -1, 0},
        {"\xa1"
         "1",
         2, UINT32_MAX, -1, 0},
        {"", 0, UINT32_MAX, -1, 0},
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        zfed_peek_t reader = {(const uint8_t *)cases[index].bytes, cases[index].size, 0};
        uint64_t value = 0;
        int rc = zfed_peek_uint(&reader, cases[index].max, &value);
        CHECK_INT(rc, cases[index].rc);
        if (rc == 0)
            CHECK(value == cases[index].value && reader.position == cases[index].size);
        if (cases[index].max == UINT32_MAX) {
            zfed_peek_t again = {(const uint8_t *)cases[index].bytes, cases[index].size, 0};
            uint32_t small = 0;
            CHECK_INT(zfed_peek_u32(&again, &small), cases[index].rc);
            CHECK(rc != 0 || small == cases[index].value);
        }
    }
}

int main(void)
{
    s_check_peek_uint();
    s_check_quick_edges();
    s_check_in_place();
    s_round_trip(1);
    s_round_trip(2);
    s_round_trip(8);

    //  A non-canonical version (uint8 form of 1) is accepted.
    static const char wide_version[] = "\x93\xaazfed.batch\xcc\x01\x91\xc4\x01\x90";
    zfed_view_t items[4];
    size_t count = 0;
    CHECK_INT(zfed_batch_decode(wide_version, sizeof wide_version - 1, items, 4, &count, NULL, 0),
              0);
    CHECK_INT(count, 1);
    //  So is the signed form (int8 01); a negative version is refused.
    static const char signed_version[] = "\x93\xaazfed.batch\xd0\x01\x91\xc4\x01\x90";
    CHECK_INT(
        zfed_batch_decode(signed_version, sizeof signed_version - 1, items, 4, &count, NULL, 0), 0);
    REFUSED("\x93\xaazfed.batch\xd0\xff\x91\xc4\x01\x90", "version");

    REFUSED("\x93\xaazfed.batch\x02\x91\xc4\x01\x90", "version");
    REFUSED("\x93\xaazfed.batch\x01\x90", "0 items");
    REFUSED("\x92\xaazfed.batch\x01", "has 3 elements, got 2");
    REFUSED("\x93\xaazfed.batch\x01\x91\xa1x", "item 0 is not a bin");
    REFUSED("\x93\xaazfed.batch\x01\x81\xa1x\x01", "expected an array");
    REFUSED("\x93\xa9zfed.task\x01\x91\xc4\x01\x90", "not a zfed.batch");
    REFUSED(
        "\x93\xaazfed.batch\x01\x95\xc4\x01\x90\xc4\x01\x90\xc4\x01\x90\xc4\x01\x90\xc4\x01\x90",
        "5 items, 1 to 4 allowed");
    REFUSED("\x93\xaazfed.batch\x01\x91\xc4\x05\x90", "truncated");
    REFUSED("", "empty");

    //  Encoding refuses nothing and too much.
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    CHECK_INT(zfed_batch_encode(&buffer, items, 0), -1);
    zfed_view_t *many = calloc(ZFED_BATCH_MAX + 1, sizeof *many);
    for (size_t item = 0; item <= ZFED_BATCH_MAX; item++)
        many[item] = (zfed_view_t){(const uint8_t *)"\x90", 1};
    CHECK_INT(zfed_batch_encode(&buffer, many, ZFED_BATCH_MAX), 0);
    CHECK_INT(zfed_batch_encode(&buffer, many, ZFED_BATCH_MAX + 1), -1);
    free(many);
    msgpack_sbuffer_destroy(&buffer);
    CHECK(!zfed_batch_is("", 0));
    CHECK(!zfed_batch_is("\x93", 1));

    s_check_batch_vectors();
    s_check_protocol_file();
    s_check_sizes();
    ZFED_TEST_END();
}
