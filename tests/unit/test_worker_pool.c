/*  test_worker_pool - the real worker pool, in-process: zfed_worker_run in a
    thread, many connections on one I/O thread and a few compute threads,
    serving fib through a broker actor, driven by a zfed_client.

    Every task must come back with the right sum, on the connection that
    took it (the poll item -> connection table), spread over every
    connection; zfed_worker_stop ends the run from another thread with a
    DISCONNECT on each connection.
*/
#include "zfed/zfed_client.h"
#include "zfed/zfed_fib.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_number.h"
#include "zfed/zfed_worker.h"
#include "zfed_test.h"
#include "zfed_test_mdp.h"

#include <czmq.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CONNECTIONS 256
#define THREADS     2
#define TASKS       (4 * CONNECTIONS)
#define HEARTBEAT   100
#define LEVEL_BASE  20

static void *s_run(void *args)
{
    zfed_worker_run(args);
    return NULL;
}

//  The decimal sum of fib level, computed apart from the service.
static char *s_expected_sum(uint32_t level)
{
    zfed_fib_t *fib = zfed_fib_new(level);
    char *sum = fib ? zfed_bigint_format(*zfed_fib_sum(fib)) : NULL;
    zfed_fib_destroy(&fib);
    return sum;
}

//  The "sum" string of a result's outputs, copied.
static char *s_result_sum(const zfed_msg_t *result)
{
    const msgpack_object *outputs = zfed_msg_outputs_object(result);
    if (!outputs || outputs->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t index = 0; index < outputs->via.map.size; index++) {
        const msgpack_object_kv *pair = &outputs->via.map.ptr[index];
        if (pair->key.via.str.size == 3 && memcmp(pair->key.via.str.ptr, "sum", 3) == 0 &&
            pair->val.type == MSGPACK_OBJECT_STR)
            return strndup(pair->val.via.str.ptr, pair->val.via.str.size);
    }
    return NULL;
}

static void s_test_pool_serves_through_every_connection(void)
{
    char endpoint[128];
    zfed_test_endpoint(endpoint, sizeof endpoint, "pool");
    zfed_broker_config_t broker_config;
    zfed_broker_config_defaults(&broker_config);
    broker_config.heartbeat_ms = HEARTBEAT;
    broker_config.liveness = 50; //  a loaded machine never loses a worker here
    zactor_t *broker = zfed_test_broker_start(&broker_config, endpoint);
    REQUIRE(broker != NULL);

    zfed_worker_config_t config;
    zfed_worker_config_defaults(&config);
    config.endpoint = endpoint;
    config.service = "fib";
    config.name = "pool";
    config.concurrency = CONNECTIONS;
    config.threads = THREADS;
    config.heartbeat_ms = HEARTBEAT;
    config.liveness = 50;
    zfed_worker_t *worker = zfed_worker_new(&config);
    REQUIRE(worker != NULL);
    pthread_t thread;
    REQUIRE_INT(pthread_create(&thread, NULL, s_run, worker), 0);
    REQUIRE(zfed_test_broker_wait(broker, workers, CONNECTIONS));

    zfed_client_t *client = zfed_client_new(endpoint, NULL, NULL);
    REQUIRE(client != NULL);
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    for (uint32_t task = 0; task < TASKS; task++) {
        uint8_t params[] = {0x81, 0xaf, 'f', 'i', 'b', 'o',
                            'n',  'a',  'c', 'c', 'i', '_',
                            'l',  'e',  'v', 'e', 'l', (uint8_t)(LEVEL_BASE + task % 64)};
        REQUIRE_INT(zfed_msg_encode_task(&body, "pool", 0, task, 0, params, sizeof params, -1,
                                         "\xa1\x30", 2),
                    0);
        REQUIRE_INT(zfed_client_send(client, "fib", body.data, body.size), 0);
    }

    bool *seen = calloc(TASKS, sizeof *seen);
    bool *named = calloc(CONNECTIONS, sizeof *named);
    REQUIRE(seen && named);
    size_t answered = 0, right = 0;
    while (answered < TASKS) {
        const char *service = NULL;
        const uint8_t *data = NULL;
        size_t size = 0;
        int rc = zfed_client_recv(client, ZFED_TEST_WAIT_MS, &service, &data, &size);
        CHECK_INT(rc, 1);
        if (rc != 1)
            break;
        answered++;
        zfed_msg_t *result = zfed_msg_decode(data, size, NULL, 0);
        CHECK(result && zfed_msg_kind(result) == ZFED_MSG_RESULT);
        if (!result || zfed_msg_kind(result) != ZFED_MSG_RESULT) {
            zfed_msg_destroy(&result);
            continue;
        }
        uint32_t task = zfed_msg_task_id(result);
        CHECK(task < TASKS && !seen[task]);
        if (task < TASKS)
            seen[task] = true;
        char *expected = s_expected_sum(LEVEL_BASE + task % 64);
        char *sum = s_result_sum(result);
        right += expected && sum && strcmp(expected, sum) == 0;
        free(expected);
        free(sum);
        //  Connection i signs its results "pool.i".
        unsigned index = 0;
        if (sscanf(zfed_msg_worker(result), "pool.%u", &index) == 1 && index < CONNECTIONS)
            named[index] = true;
        zfed_msg_destroy(&result);
    }
    CHECK_INT(right, TASKS);
    size_t connections_used = 0;
    for (size_t index = 0; index < CONNECTIONS; index++)
        connections_used += named[index];
    //  The broker hands work to the longest idle worker: every one served.
    CHECK_INT(connections_used, CONNECTIONS);
    CHECK_INT(zfed_client_malformed(client), 0);

    zfed_worker_stop(worker);
    REQUIRE_INT(pthread_join(thread, NULL), 0);
    zfed_worker_stats_t stats;
    zfed_worker_stats(worker, &stats);
    CHECK_INT(stats.tasks, TASKS);
    CHECK_INT(stats.errors, 0);
    CHECK_INT(stats.malformed, 0);
    CHECK(zfed_test_broker_wait(broker, workers_left, CONNECTIONS));

    free(seen);
    free(named);
    msgpack_sbuffer_destroy(&body);
    zfed_client_destroy(&client);
    zfed_worker_destroy(&worker);
    zactor_destroy(&broker);
}

int main(void)
{
    zsys_set_max_sockets(CONNECTIONS + 64);
    ZFED_TEST_RUN(s_test_pool_serves_through_every_connection);
    ZFED_TEST_END();
}
