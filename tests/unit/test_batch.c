/*  test_batch - zfed.batch framing: round trips, limits, every refusal.  */
#include "zfed/zfed_batch.h"
#include "zfed/zfed_msg.h"
#include "zfed_test.h"

#include <stdlib.h>
#include <string.h>

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

int main(void)
{
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
    ZFED_TEST_END();
}
