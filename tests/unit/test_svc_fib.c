/*  test_svc_fib - the fib service end to end in-process: the 64-bit fast
    path packs exactly what the GMP path packs, and the controller-side
    checks accept both and refuse what does not fit the task.
*/
#include "zfed/zfed_fib.h"
#include "zfed/zfed_service.h"
#include "zfed_test.h"

#include <stdlib.h>
#include <string.h>

//  Packs {"fibonacci_level": level} and unpacks it into unpacked.
static void s_params(uint32_t level, msgpack_sbuffer *buffer, msgpack_unpacked *unpacked)
{
    msgpack_sbuffer_clear(buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, 1);
    msgpack_pack_str_with_body(&packer, "fibonacci_level", 15);
    msgpack_pack_uint32(&packer, level);
    REQUIRE_INT(zfed_unpack(unpacked, (const uint8_t *)buffer->data, buffer->size), 0);
}

static void s_global(msgpack_unpacked *unpacked)
{
    static const uint8_t zero[] = {0xa1, '0'};
    REQUIRE_INT(zfed_unpack(unpacked, zero, sizeof zero), 0);
}

int main(void)
{
    const zfed_service_t *fib = zfed_service_find("fib");
    REQUIRE(fib != NULL);
    msgpack_sbuffer params_buffer, fast, slow;
    msgpack_sbuffer_init(&params_buffer);
    msgpack_sbuffer_init(&fast);
    msgpack_sbuffer_init(&slow);
    msgpack_unpacked global;
    s_global(&global);

    //  Levels on both sides of the 64-bit limit and of the sequence limit.
    for (uint32_t level = 1; level <= 120; level++) {
        msgpack_unpacked params;
        s_params(level, &params_buffer, &params);
        msgpack_packer packer;
        zfed_fault_t fault;
        msgpack_sbuffer_clear(&fast);
        msgpack_packer_init(&packer, &fast, msgpack_sbuffer_write);
        CHECK_INT(fib->run(&params.data, -1, &global.data, &packer, NULL, &fault), 0);
        //  Asking for the display takes the GMP path whatever the level.
        msgpack_sbuffer_clear(&slow);
        msgpack_packer_init(&packer, &slow, msgpack_sbuffer_write);
        char *display = NULL;
        CHECK_INT(fib->run(&params.data, -1, &global.data, &packer, &display, &fault), 0);
        CHECK(display != NULL && strstr(display, "fibonacci_level") != NULL);
        free(display);
        CHECK(fast.size == slow.size && memcmp(fast.data, slow.data, fast.size) == 0);
        if (fast.size != slow.size || memcmp(fast.data, slow.data, fast.size) != 0)
            fprintf(stderr, "  level %u: fast and GMP outputs differ\n", level);

        //  The controller's reading accepts it, with weight = level.
        msgpack_unpacked outputs;
        REQUIRE_INT(zfed_unpack(&outputs, (const uint8_t *)fast.data, fast.size), 0);
        zfed_sample_t sample;
        CHECK_INT(fib->read_outputs(&params.data, &outputs.data, &sample, &fault), 0);
        CHECK_INT(sample.weight, level);
        zfed_sample_clear(&sample);
        //  ... and refuses it for a task of another level.
        msgpack_unpacked other;
        msgpack_sbuffer other_buffer;
        msgpack_sbuffer_init(&other_buffer);
        s_params(level + 1, &other_buffer, &other);
        CHECK_INT(fib->read_outputs(&other.data, &outputs.data, &sample, &fault), -1);
        CHECK_STR(fault.field, "terms");
        msgpack_unpacked_destroy(&other);
        msgpack_sbuffer_destroy(&other_buffer);
        msgpack_unpacked_destroy(&outputs);
        msgpack_unpacked_destroy(&params);
    }

    //  The fast path's own limits.
    uint64_t terms[ZFED_FIB_SMALL_MAX], sum = 0;
    CHECK_INT(zfed_fib_small(0, terms, &sum), -1);
    CHECK_INT(zfed_fib_small(ZFED_FIB_SMALL_MAX + 1, terms, &sum), -1);
    CHECK_INT(zfed_fib_small(ZFED_FIB_SMALL_MAX, terms, &sum), 0);
    CHECK(sum == 12200160415121876737ULL);      //  F(93) - 1, the largest sum that fits
    CHECK(terms[91] == 4660046610375530309ULL); //  F(91)

    msgpack_unpacked_destroy(&global);
    msgpack_sbuffer_destroy(&params_buffer);
    msgpack_sbuffer_destroy(&fast);
    msgpack_sbuffer_destroy(&slow);
    ZFED_TEST_END();
}
