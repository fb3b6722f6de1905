/*  zfed-bench-models - a big global model through the broker to workers
    and their results back: what MODELS.md's chunk transfer costs.

    Builds an F32 model of SIZE bytes (several tensors), hashes it (its
    SHA-256 is its id: the time is printed), holds it in a blob service of
    its own and sends TASKS tensoravg tasks naming it by reference, so each
    worker fetches it in chunks through the broker.  With --fetch-results
    it then reads every result back the way a controller's pass would
    (all results' transfers at once, chunk by chunk), checks every element
    (x + 0.5), and releases them.  One JSON line of figures on stdout.

        zfed-bench-models --connect EP [--size 1GiB] [--tasks 5] [--service tensoravg]
                          [--fetch-results]
*/
#include "zfed/zfed_blob_server.h"
#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_fetcher.h"
#include "zfed/zfed_mdp.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_sha256.h"
#include "zfed/zfed_util.h"
#include "core/zfed_cli.h"
#include "wire/zfed_frames.h"

#include <czmq.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRAM   "zfed-bench-models"
#define TENSORS   4
#define TASKS_MAX 64
#define WAIT_MS   600000
#define POLL_MS   100

typedef struct {
    bool answered;
    double seconds; //  from the first send
    zfed_descriptor_t result;
    zfed_fetch_t *fetch;
    uint64_t wrong; //  elements that are not x + 0.5
    bool whole;
    bool matched;
} task_t;

//  The value of element index of the global model.
static float s_value(uint64_t index)
{
    return (float)(index % 1000) * 0.001f;
}

static zfed_model_t *s_model(uint64_t size)
{
    zfed_layout_t *layout = zfed_layout_new();
    char error[128];
    uint64_t left = size / 4;
    for (int index = 0; index < TENSORS; index++) {
        uint64_t shape[1] = {index == TENSORS - 1 ? left : size / 4 / TENSORS};
        left -= shape[0];
        char name[16];
        snprintf(name, sizeof name, "layer%d.weight", index);
        if (zfed_layout_add(layout, name, ZFED_DTYPE_F32, shape, 1, error, sizeof error) != 0)
            return NULL;
    }
    zfed_model_t *model = zfed_model_new(&layout);
    float *values = model ? zfed_model_data(model) : NULL;
    for (uint64_t index = 0; values && index < size / 4; index++)
        values[index] = s_value(index);
    return model;
}

static int s_task_body(msgpack_sbuffer *body, const zfed_descriptor_t *global, uint32_t task)
{
    msgpack_sbuffer params, value;
    msgpack_sbuffer_init(&params);
    msgpack_sbuffer_init(&value);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &params, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, 2);
    msgpack_pack_str_with_body(&packer, "add", 3);
    msgpack_pack_double(&packer, 0.5);
    msgpack_pack_str_with_body(&packer, "samples", 7);
    msgpack_pack_uint64(&packer, 1 + task);
    int rc = zfed_descriptor_encode(global, &value);
    rc |= zfed_msg_encode_task(body, "bench-models", 0, task, 0, params.data, params.size, -1,
                               value.data, value.size);
    msgpack_sbuffer_destroy(&params);
    msgpack_sbuffer_destroy(&value);
    return rc;
}

static void s_send(void *socket, const char *service, const msgpack_sbuffer *body)
{
    zfed_send_bytes(socket, "", 0, ZMQ_SNDMORE);
    zfed_send_bytes(socket, ZFED_MDPC_HEADER, ZFED_MDP_HEADER_SIZE, ZMQ_SNDMORE);
    zfed_send_bytes(socket, service, strlen(service), ZMQ_SNDMORE);
    zfed_send_bytes(socket, body->data, body->size, 0);
}

//  A reply: its task's result descriptor, or the error said.
static void s_reply(zfed_frames_t *frames, task_t *tasks, uint32_t count, double now)
{
    if (frames->count < 4)
        return;
    char reason[256];
    zfed_msg_t *reply =
        zfed_msg_decode(frames->view[3].data, frames->view[3].size, reason, sizeof reason);
    if (!reply) {
        fprintf(stderr, PROGRAM ": a reply does not decode: %s\n", reason);
        return;
    }
    uint32_t task = zfed_msg_task_id(reply);
    if (zfed_msg_kind(reply) == ZFED_MSG_ERROR)
        fprintf(stderr, PROGRAM ": task %u: error %u %s\n", task, zfed_msg_error_code(reply),
                zfed_msg_error_text(reply));
    else if (task < count && !tasks[task].answered) {
        const msgpack_object *model =
            zfed_map_get(zfed_msg_outputs_object(reply), ZFED_OUTPUT_MODEL);
        if (model && zfed_descriptor_read(model, ZFED_DESCRIPTOR_RESULT, &tasks[task].result,
                                          reason, sizeof reason) == 0) {
            tasks[task].answered = true;
            tasks[task].seconds = now;
        } else
            fprintf(stderr, PROGRAM ": task %u: bad result: %s\n", task, reason);
    }
    zfed_msg_destroy(&reply);
}

//  Every element of a result's chunk is its global element + 0.5 (the
//  model's tensors are all F32, end to end).
static void s_result_chunk(task_t *task, zfed_chunk_t *chunk)
{
    const uint8_t *bytes = zfed_chunk_data(chunk);
    uint64_t first = zfed_chunk_offset(chunk) / 4;
    for (size_t index = 0; index < zfed_chunk_size(chunk) / 4; index++) {
        float value;
        memcpy(&value, bytes + 4 * index, sizeof value);
        task->wrong += value != s_value(first + index) + 0.5f;
    }
    zfed_chunk_destroy(&chunk);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"connect", required_argument, NULL, 'c'}, {"size", required_argument, NULL, 's'},
        {"tasks", required_argument, NULL, 't'},   {"service", required_argument, NULL, 'S'},
        {"fetch-results", no_argument, NULL, 'f'}, {NULL, 0, NULL, 0},
    };
    const char *endpoint = "tcp://127.0.0.1:5555", *service = "tensoravg";
    uint64_t size = 1ULL << 30;
    uint32_t count = 1;
    bool fetch_results = false;
    int option;
    while ((option = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (option == 'c')
            endpoint = optarg;
        else if (option == 's')
            size = zfed_cli_bytes(PROGRAM, "--size", optarg, ZFED_MODEL_INLINE_MAX + 16,
                                  ZFED_MODEL_BYTES_MAX);
        else if (option == 't')
            count = zfed_cli_u32(PROGRAM, "--tasks", optarg, 1, TASKS_MAX);
        else if (option == 'S')
            service = optarg;
        else if (option == 'f')
            fetch_results = true;
        else
            zfed_cli_fail(PROGRAM,
                          "usage: %s --connect EP [--size B] [--tasks N] "
                          "[--service S] [--fetch-results]",
                          PROGRAM);
    }
    size -= size % 4;
    zsys_init();
    zfed_model_t *model = s_model(size);
    if (!model)
        zfed_cli_fail(PROGRAM, "out of memory for %llu bytes", (unsigned long long)size);
    uint8_t id[ZFED_SHA256_SIZE];
    int64_t hash_started = zfed_clock_us();
    zfed_sha256(zfed_model_data(model), size, id);
    double hash_seconds = (double)(zfed_clock_us() - hash_started) / 1e6;

    zfed_blob_server_config_t blob_config;
    zfed_blob_server_config_defaults(&blob_config);
    blob_config.endpoint = endpoint;
    zfed_blob_server_t *blob = zfed_blob_server_new(&blob_config);
    zfed_fetcher_config_t fetcher_config;
    zfed_fetcher_config_defaults(&fetcher_config);
    fetcher_config.endpoint = endpoint;
    zfed_fetcher_t *fetcher = zfed_fetcher_new(&fetcher_config);
    zsock_t *client = zsock_new_dealer(endpoint);
    if (!blob || !fetcher || !client)
        zfed_cli_fail(PROGRAM, "cannot connect to %s", endpoint);
    zfed_descriptor_t global;
    char reason[256];
    if (zfed_descriptor_set(&global, id, id, zfed_model_layout(model), ZFED_CHUNK_DEFAULT,
                            zfed_blob_server_service(blob), ZFED_DESCRIPTOR_GLOBAL, reason,
                            sizeof reason) != 0 ||
        zfed_blob_server_hold(blob, id, &model, ZFED_CHUNK_DEFAULT, ZFED_HOLD_FOREVER, reason,
                              sizeof reason) != 0)
        zfed_cli_fail(PROGRAM, "%s", reason);
    zclock_sleep(200); //  let the blob service register before anyone asks it
    task_t tasks[TASKS_MAX] = {0};
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    int64_t started = zfed_clock_us();
    for (uint32_t task = 0; task < count; task++) {
        s_task_body(&body, &global, task);
        s_send(zsock_resolve(client), service, &body);
    }
    uint32_t answered = 0, whole = 0, transfers = 0;
    double replies_seconds = 0, results_seconds = 0;
    int64_t fetch_started = 0;
    zfed_frames_t frames;
    int64_t until = zfed_clock_ms() + WAIT_MS;
    while (zfed_clock_ms() < until && (answered < count || (fetch_results && whole < transfers))) {
        zmq_pollitem_t items[] = {{zsock_resolve(client), 0, ZMQ_POLLIN, 0},
                                  {zfed_blob_server_socket(blob), 0, ZMQ_POLLIN, 0},
                                  {zfed_fetcher_socket(fetcher), 0, ZMQ_POLLIN, 0}};
        zmq_poll(items, 3, POLL_MS);
        double now = (double)(zfed_clock_us() - started) / 1e6;
        if (items[0].revents & ZMQ_POLLIN && zfed_frames_recv(&frames, items[0].socket, 0) == 0) {
            s_reply(&frames, tasks, count, now);
            zfed_frames_close(&frames);
        }
        if (items[1].revents & ZMQ_POLLIN)
            zfed_blob_server_handle(blob);
        if (items[2].revents & ZMQ_POLLIN)
            zfed_fetcher_handle(fetcher);
        int64_t ms = zfed_clock_ms();
        if (ms >= zfed_blob_server_next_due(blob))
            zfed_blob_server_tick(blob, ms);
        if (ms >= zfed_fetcher_next_due(fetcher))
            zfed_fetcher_tick(fetcher, ms);
        uint32_t done = 0;
        for (uint32_t task = 0; task < count; task++)
            done += tasks[task].answered;
        //  Every worker has read the global: now the results come back.
        if (done == count && answered < count) {
            replies_seconds = now;
            fetch_started = zfed_clock_us();
            for (uint32_t task = 0; fetch_results && task < count; task++) {
                task_t *t = &tasks[task];
                if (zfed_descriptor_is_inline(&t->result))
                    continue;
                t->fetch = zfed_fetcher_start(fetcher, &t->result, 0, t, reason, sizeof reason);
                transfers += t->fetch != NULL;
            }
        }
        answered = done;
        zfed_fetch_event_t event;
        while (zfed_fetcher_next(fetcher, &event)) {
            task_t *t = event.user;
            if (event.kind == ZFED_FETCH_EVENT_CHUNK)
                s_result_chunk(t, event.chunk);
            else if (event.kind == ZFED_FETCH_EVENT_WHOLE ||
                     event.kind == ZFED_FETCH_EVENT_FAILED) {
                whole++;
                t->whole = event.kind == ZFED_FETCH_EVENT_WHOLE;
                t->matched = t->whole && t->wrong == 0;
                if (!t->whole)
                    fprintf(stderr, PROGRAM ": a result failed: %s\n", event.reason);
                if (whole == transfers)
                    results_seconds = (double)(zfed_clock_us() - fetch_started) / 1e6;
            }
        }
    }
    uint32_t matched = 0;
    for (uint32_t task = 0; task < count; task++) {
        task_t *t = &tasks[task];
        matched += t->matched;
        if (t->fetch)
            zfed_fetcher_release(fetcher, t->result.source,
                                 (const uint8_t(*)[ZFED_MODEL_ID_SIZE])t->result.id, 1, NULL);
    }
    zfed_blob_server_stats_t served;
    zfed_blob_server_stats(blob, &served);
    printf("{\"size\": %llu, \"tasks\": %u, \"answered\": %u, \"sha256_seconds\": %.3f, "
           "\"sha256_gb_s\": %.2f, \"replies_seconds\": %.3f, \"global_bytes_served\": %llu, "
           "\"global_mb_s\": %.0f, \"results_fetched\": %u, \"results_matched\": %u, "
           "\"results_seconds\": %.3f, \"results_mb_s\": %.0f}\n",
           (unsigned long long)size, count, answered, hash_seconds,
           hash_seconds > 0 ? (double)size / hash_seconds / 1e9 : 0.0, replies_seconds,
           (unsigned long long)served.bytes,
           replies_seconds > 0 ? (double)served.bytes / replies_seconds / 1e6 : 0.0, whole, matched,
           results_seconds,
           results_seconds > 0 ? (double)size * whole / results_seconds / 1e6 : 0.0);
    zclock_sleep(100); //  the releases leave
    for (uint32_t task = 0; task < count; task++) {
        zfed_fetch_destroy(&tasks[task].fetch);
        zfed_descriptor_clear(&tasks[task].result);
    }
    zfed_descriptor_clear(&global);
    msgpack_sbuffer_destroy(&body);
    zsock_destroy(&client);
    zfed_fetcher_destroy(&fetcher);
    zfed_blob_server_destroy(&blob);
    return answered == count && (!fetch_results || matched == count) ? 0 : 1;
}
