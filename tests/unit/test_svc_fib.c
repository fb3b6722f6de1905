/*  test_svc_fib - the fib service end to end in-process: the 64-bit fast
    path packs exactly what the GMP path packs, and the controller-side
    checks accept both and refuse what does not fit the task; a sum larger
    than its level allows is refused, and with sums so bounded the largest
    aggregate any strategy makes still fits the global value's limit; the
    cost model is the level squared.
*/
#include "zfed/zfed_aggregate.h"
#include "zfed/zfed_fib.h"
#include "zfed/zfed_job.h"
#include "zfed/zfed_number.h"
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

//  {"sum": sum, "terms": level, "last": F(level - 1), "sequence": []}
static void s_outputs(uint32_t level, const mpz_t sum, msgpack_sbuffer *buffer,
                      msgpack_unpacked *unpacked)
{
    mpz_t last;
    mpz_init(last);
    mpz_fib_ui(last, level - 1);
    char *sum_text = mpz_get_str(NULL, 10, sum), *last_text = mpz_get_str(NULL, 10, last);
    msgpack_sbuffer_clear(buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, 4);
    msgpack_pack_str_with_body(&packer, "sum", 3);
    msgpack_pack_str_with_body(&packer, sum_text, strlen(sum_text));
    msgpack_pack_str_with_body(&packer, "terms", 5);
    msgpack_pack_uint32(&packer, level);
    msgpack_pack_str_with_body(&packer, "last", 4);
    msgpack_pack_str_with_body(&packer, last_text, strlen(last_text));
    msgpack_pack_str_with_body(&packer, "sequence", 8);
    msgpack_pack_array(&packer, 0);
    free(sum_text);
    free(last_text);
    mpz_clear(last);
    REQUIRE_INT(zfed_unpack(unpacked, (const uint8_t *)buffer->data, buffer->size), 0);
}

//  The largest honest sum passes, one more is refused naming the digits;
//  and the biggest aggregates of honest sums fit the global value.
static void s_test_sum_bound(const zfed_service_t *fib)
{
    msgpack_sbuffer params_buffer, outputs_buffer, packed;
    msgpack_sbuffer_init(&params_buffer);
    msgpack_sbuffer_init(&outputs_buffer);
    msgpack_sbuffer_init(&packed);
    //  91 and 92 are the 64-bit check's last levels, 93 the exact path's first.
    uint32_t levels[] = {1, 2, 10, 91, 92, 93, ZFED_FIB_MAX_LEVEL};
    for (size_t index = 0; index < sizeof levels / sizeof levels[0]; index++) {
        uint32_t level = levels[index];
        mpz_t sum;
        mpz_init(sum);
        mpz_fib_ui(sum, level + 1);
        mpz_sub_ui(sum, sum, 1); //  the true sum, the largest there is
        msgpack_unpacked params, outputs;
        s_params(level, &params_buffer, &params);
        s_outputs(level, sum, &outputs_buffer, &outputs);
        zfed_sample_t sample;
        zfed_fault_t fault;
        CHECK_INT(fib->read_outputs(&params.data, &outputs.data, &sample, &fault), 0);
        //  Up to level 91 the sum fits 19 digits: a small sample, no GMP.
        CHECK(sample.small == (level <= 91));
        REQUIRE_INT(zfed_sample_expand(&sample), 0);
        CHECK(!sample.small && sample.dims == 1 && sample.weight == level);
        CHECK(mpz_cmp(mpq_numref(sample.values[0]), sum) == 0);
        CHECK(mpz_cmp_ui(mpq_denref(sample.values[0]), 1) == 0);
        zfed_sample_clear(&sample);
        msgpack_unpacked_destroy(&outputs);
        mpz_add_ui(sum, sum, 1);
        s_outputs(level, sum, &outputs_buffer, &outputs);
        CHECK_INT(fib->read_outputs(&params.data, &outputs.data, &sample, &fault), -1);
        CHECK_STR(fault.field, "sum");
        CHECK(strstr(fault.text, "more than the sum of the first") != NULL);
        msgpack_unpacked_destroy(&outputs);
        msgpack_unpacked_destroy(&params);

        //  The sum of ZFED_JOB_TASKS_MAX largest sums (the "sum" strategy),
        //  and the largest with a fraction (mean of it and one less), pack.
        if (level == ZFED_FIB_MAX_LEVEL) {
            mpq_t aggregate;
            mpq_init(aggregate);
            mpz_sub_ui(sum, sum, 1);
            mpz_mul_ui(sum, sum, ZFED_JOB_TASKS_MAX);
            mpq_set_z(aggregate, sum);
            msgpack_packer packer;
            msgpack_packer_init(&packer, &packed, msgpack_sbuffer_write);
            CHECK_INT(fib->pack_aggregate((const mpq_t *)&aggregate, 1, &packer), 0);
            mpq_set_ui(aggregate, 1, 3);
            mpz_add(mpq_numref(aggregate), mpq_numref(aggregate), sum);
            CHECK_INT(fib->pack_aggregate((const mpq_t *)&aggregate, 1, &packer), 0);
            //  A 32,769-character aggregate is never packed.
            mpz_ui_pow_ui(sum, 10, ZFED_NUMBER_MAX_CHARS);
            mpq_set_z(aggregate, sum);
            CHECK_INT(fib->pack_aggregate((const mpq_t *)&aggregate, 1, &packer), -1);
            mpq_clear(aggregate);
        }
        mpz_clear(sum);
    }
    msgpack_sbuffer_destroy(&params_buffer);
    msgpack_sbuffer_destroy(&outputs_buffer);
    msgpack_sbuffer_destroy(&packed);
}

//  {"sum": sum, "terms": level, "last": terms[level - 1], "sequence": terms},
//  with term bad (if below level) written as text instead.
static void s_sequence_outputs(uint32_t level, const uint64_t *terms, uint64_t sum, uint32_t bad,
                               const char *text, msgpack_sbuffer *buffer,
                               msgpack_unpacked *unpacked)
{
    char number[32];
    msgpack_sbuffer_clear(buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, 4);
    msgpack_pack_str_with_body(&packer, "sum", 3);
    snprintf(number, sizeof number, "%llu", (unsigned long long)sum);
    msgpack_pack_str_with_body(&packer, number, strlen(number));
    msgpack_pack_str_with_body(&packer, "terms", 5);
    msgpack_pack_uint32(&packer, level);
    msgpack_pack_str_with_body(&packer, "last", 4);
    snprintf(number, sizeof number, "%llu", (unsigned long long)terms[level - 1]);
    msgpack_pack_str_with_body(&packer, number, strlen(number));
    msgpack_pack_str_with_body(&packer, "sequence", 8);
    msgpack_pack_array(&packer, level);
    for (uint32_t index = 0; index < level; index++) {
        snprintf(number, sizeof number, "%llu", (unsigned long long)terms[index]);
        const char *entry = index == bad ? text : number;
        msgpack_pack_str_with_body(&packer, entry, strlen(entry));
    }
    REQUIRE_INT(zfed_unpack(unpacked, (const uint8_t *)buffer->data, buffer->size), 0);
}

//  The 64-bit check accepts what the exact one accepts and nothing else:
//  an honest sequence, with its sum as the sample; a term off by one, a
//  term not canonical, a last term that is not the sequence's, refused.
static void s_test_sequence_checks(const zfed_service_t *fib)
{
    msgpack_sbuffer params_buffer, outputs_buffer;
    msgpack_sbuffer_init(&params_buffer);
    msgpack_sbuffer_init(&outputs_buffer);
    //  Every level the 64-bit check takes (its bound a table): the honest
    //  sum is the largest allowed, one more is refused.
    for (uint32_t level = 2; level <= 92; level++) {
        uint64_t terms[ZFED_FIB_SMALL_MAX], sum = 0;
        REQUIRE_INT(zfed_fib_small(level, terms, &sum), 0);
        msgpack_unpacked params, outputs;
        s_params(level, &params_buffer, &params);
        zfed_sample_t sample;
        zfed_fault_t fault;
        s_sequence_outputs(level, terms, sum, level, NULL, &outputs_buffer, &outputs);
        CHECK_INT(fib->read_outputs(&params.data, &outputs.data, &sample, &fault), 0);
        CHECK(sample.small == (level < 92) && (!sample.small || sample.small_value == sum));
        REQUIRE_INT(zfed_sample_expand(&sample), 0);
        CHECK(mpz_cmp_ui(mpq_numref(sample.values[0]), (unsigned long)sum) == 0);
        zfed_sample_clear(&sample);
        msgpack_unpacked_destroy(&outputs);
        char text[32];
        snprintf(text, sizeof text, "%llu", (unsigned long long)(terms[0] + 1));
        s_sequence_outputs(level, terms, sum, 0, text, &outputs_buffer, &outputs);
        CHECK_INT(fib->read_outputs(&params.data, &outputs.data, &sample, &fault), -1);
        CHECK_STR(fault.field, "sequence");
        msgpack_unpacked_destroy(&outputs);
        snprintf(text, sizeof text, "0%llu", (unsigned long long)terms[1]);
        s_sequence_outputs(level, terms, sum, 1, text, &outputs_buffer, &outputs);
        CHECK_INT(fib->read_outputs(&params.data, &outputs.data, &sample, &fault), -1);
        CHECK_STR(fault.field, "sequence");
        msgpack_unpacked_destroy(&outputs);
        //  A sequence that adds up, one more than the level allows.
        uint64_t bigger[ZFED_FIB_SMALL_MAX];
        memcpy(bigger, terms, sizeof bigger);
        bigger[level - 1] += 1;
        s_sequence_outputs(level, bigger, sum + 1, level, NULL, &outputs_buffer, &outputs);
        CHECK_INT(fib->read_outputs(&params.data, &outputs.data, &sample, &fault), -1);
        CHECK_STR(fault.field, "sum");
        msgpack_unpacked_destroy(&outputs);
        msgpack_unpacked_destroy(&params);
    }
    msgpack_sbuffer_destroy(&params_buffer);
    msgpack_sbuffer_destroy(&outputs_buffer);
}

static void s_test_cost(const zfed_service_t *fib)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_unpacked params;
    s_params(ZFED_FIB_MAX_LEVEL, &buffer, &params);
    uint64_t one = zfed_service_cost(fib, &params.data);
    CHECK(one == 10000000000ULL);
    msgpack_unpacked_destroy(&params);
    //  20 tasks at the highest level are the most one request may ask for.
    uint64_t total = 0;
    for (int task = 0; task < 20; task++)
        total = zfed_service_cost_add(total, one);
    CHECK(zfed_service_cost_allowed(fib, total));
    CHECK(!zfed_service_cost_allowed(fib, zfed_service_cost_add(total, 1)));
    CHECK(zfed_service_cost_add(UINT64_MAX - 1, one) == UINT64_MAX);
    zfed_fault_t fault;
    zfed_service_cost_fault(fib, 1024 * one, 1024, &fault);
    CHECK_INT(fault.code, 413);
    CHECK(strstr(fault.text, "10240000000000 units of work in 1024 task(s)") != NULL);
    CHECK(strstr(fault.text, "at most 200000000000") != NULL);
    //  vecavg has no cost model: anything is allowed.
    const zfed_service_t *vecavg = zfed_service_find("vecavg");
    CHECK(vecavg && zfed_service_cost_allowed(vecavg, UINT64_MAX));
    msgpack_sbuffer_destroy(&buffer);
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

    s_test_sum_bound(fib);
    s_test_sequence_checks(fib);
    s_test_cost(fib);

    msgpack_unpacked_destroy(&global);
    msgpack_sbuffer_destroy(&params_buffer);
    msgpack_sbuffer_destroy(&fast);
    msgpack_sbuffer_destroy(&slow);
    ZFED_TEST_END();
}
