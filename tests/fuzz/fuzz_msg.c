/*  fuzz_msg - libFuzzer target: body decoding and the fib service's checks.

    Invariants: nothing crashes or leaks on any input; whatever decodes
    re-encodes to canonical bytes that decode to the same message and
    re-encode to exactly the same bytes; a decoded task's params and a
    decoded result's outputs go through the fib service's validators; the
    decoder's object tree (zfed_tree_build) is msgpack-c's for whatever
    passes the structural check, and it refuses what the check refuses.
*/
#include "zfed/zfed_batch.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_service.h"
#include "zfed_test_msgpack.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void s_check_service(const zfed_msg_t *message)
{
    const zfed_service_t *fib = zfed_service_find("fib");
    zfed_fault_t fault;
    size_t size;
    msgpack_unpacked unpacked;
    if (zfed_msg_kind(message) == ZFED_MSG_TASK) {
        const uint8_t *params = zfed_msg_params(message, &size);
        if (zfed_unpack(&unpacked, params, size) == 0)
            fib->check_params(&unpacked.data, &fault);
        msgpack_unpacked_destroy(&unpacked);
    } else if (zfed_msg_kind(message) == ZFED_MSG_RESULT) {
        const uint8_t *outputs = zfed_msg_outputs(message, &size);
        //  Judge the outputs against a plausible task of their own size.
        static const uint8_t level_10[] = {0x81, 0xaf, 'f', 'i', 'b', 'o', 'n', 'a', 'c',
                                           'c',  'i',  '_', 'l', 'e', 'v', 'e', 'l', 0x0a};
        msgpack_unpacked params;
        if (zfed_unpack(&unpacked, outputs, size) == 0 &&
            zfed_unpack(&params, level_10, sizeof level_10) == 0) {
            zfed_sample_t sample;
            if (fib->read_outputs(&params.data, &unpacked.data, &sample, &fault) == 0)
                zfed_sample_clear(&sample);
            json_t *record = json_object();
            fib->describe(&params.data, &unpacked.data, record);
            json_decref(record);
        }
        msgpack_unpacked_destroy(&params);
        msgpack_unpacked_destroy(&unpacked);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char reason[256];
    char job_id[ZFED_JOB_ID_MAX + 1];
    uint32_t round, task, attempt;
    zfed_msg_peek_ids(data, size, job_id, &round, &task, &attempt);
    //  The broker's head-only peek names at least what the full one does.
    uint32_t full_round = 0, full_task = 0, full_attempt = 0;
    char full_id[ZFED_JOB_ID_MAX + 1];
    zfed_msg_t *whole = zfed_msg_decode(data, size, NULL, 0);
    if (whole && zfed_msg_kind(whole) == ZFED_MSG_TASK &&
        (zfed_msg_peek_task(data, size, full_id, &full_round, &full_task, &full_attempt) != 0 ||
         strcmp(full_id, zfed_msg_job_id(whole)) != 0 || full_round != zfed_msg_round(whole) ||
         full_task != zfed_msg_task_id(whole) || full_attempt != zfed_msg_attempt(whole)))
        abort();
    zfed_msg_destroy(&whole);
    if (size <= ZFED_BODY_MAX && !zfed_test_tree_agrees(data, size))
        abort();
    //  Batch framing: every item it hands out lies inside the input.
    static zfed_view_t items[ZFED_BATCH_MAX];
    size_t count = 0;
    zfed_batch_is(data, size);
    if (zfed_batch_decode(data, size, items, ZFED_BATCH_MAX, &count, reason, sizeof reason) == 0)
        for (size_t item = 0; item < count; item++)
            if (items[item].data < data || items[item].data + items[item].size > data + size)
                abort();
    zfed_msg_t *message = zfed_msg_decode(data, size, reason, sizeof reason);
    if (!message)
        return 0;
    s_check_service(message);

    msgpack_sbuffer first, second;
    msgpack_sbuffer_init(&first);
    msgpack_sbuffer_init(&second);
    if (zfed_msg_encode(message, &first) != 0)
        abort();
    zfed_msg_t *again = zfed_msg_decode(first.data, first.size, reason, sizeof reason);
    if (!again)
        abort(); //  our own encoding must always decode
    if (zfed_msg_encode(again, &second) != 0 || first.size != second.size ||
        memcmp(first.data, second.data, first.size) != 0)
        abort(); //  canonical form is a fixed point
    if (zfed_msg_kind(again) != zfed_msg_kind(message) ||
        zfed_msg_round(again) != zfed_msg_round(message) ||
        zfed_msg_task_id(again) != zfed_msg_task_id(message) ||
        strcmp(zfed_msg_job_id(again), zfed_msg_job_id(message)) != 0)
        abort();
    zfed_msg_destroy(&again);
    zfed_msg_destroy(&message);
    msgpack_sbuffer_destroy(&first);
    msgpack_sbuffer_destroy(&second);
    return 0;
}
