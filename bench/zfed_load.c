/*  zfed-bench-load - drives zfed's real broker and workers with fib tasks.

    The load side of the benchmark, built on libzfed's own client and
    codec: tasks are real zfed.task bodies, replies are decoded and checked
    like the controller does.  Two modes, matching zfed-bench-baseline's:

        --mode round   T tasks at once, wait for all, R times: round latency
        --mode stream  keep O tasks outstanding for S seconds: throughput

    Prints one JSON line: mode, tasks, seconds, tasks_per_s, latency_us
    {p50, p90, p99, max} (per round, or per task in stream mode), cpu_s.
*/
#include "zfed/zfed_batch.h"
#include "zfed/zfed_client.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_signal.h"
#include "zfed/zfed_util.h"
#include "core/zfed_cli.h"

#include <czmq.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define PROGRAM       "zfed-bench-load"
#define WARMUP_ROUNDS 20
#define WARMUP_MS     500
#define REPLY_WAIT_MS 10000
#define JOB_ID        "bench"

typedef struct {
    const char *endpoint;
    const char *curve_cert;
    const char *server_key;
    bool stream;
    uint32_t tasks;
    uint32_t rounds;
    uint32_t outstanding;
    double seconds;
    uint32_t level;
    uint32_t batch;
    bool tickets; //  each request with a ticket, each reply's stamp checked
} s_options_t;

typedef struct {
    zfed_client_t *client;
    const char *service;
    msgpack_sbuffer items[ZFED_BATCH_MAX];
    zfed_view_t views[ZFED_BATCH_MAX];
    msgpack_sbuffer buffer;
    uint8_t params[32];
    size_t params_size;
    uint8_t global[8];
    size_t global_size;
    uint64_t errors;
    bool tickets;
    uint64_t next_ticket;
} s_load_t;

static int s_compare(const void *left, const void *right)
{
    int64_t a = *(const int64_t *)left, b = *(const int64_t *)right;
    return a < b ? -1 : a > b;
}

static int64_t s_percentile(int64_t *sorted, size_t count, double fraction)
{
    if (count == 0)
        return 0;
    size_t index = (size_t)(fraction * (double)(count - 1) + 0.5);
    return sorted[index];
}

static double s_cpu_seconds(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
           (double)usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

//  One request of count tasks with ids first..first+count-1: a task body
//  for one, a zfed.batch for several.
static int s_send(s_load_t *load, uint32_t round, uint32_t first, uint32_t count)
{
    for (uint32_t item = 0; item < count; item++) {
        msgpack_sbuffer *body = count == 1 ? &load->buffer : &load->items[item];
        if (zfed_msg_encode_task(body, JOB_ID, round, first + item, 0, load->params,
                                 load->params_size, -1, load->global, load->global_size) != 0)
            return -1;
        load->views[item].data = (const uint8_t *)body->data;
        load->views[item].size = body->size;
    }
    if (count > 1 && zfed_batch_encode(&load->buffer, load->views, count) != 0)
        return -1;
    if (load->tickets)
        return zfed_client_send_ticket(load->client, load->service, ++load->next_ticket,
                                       load->buffer.data, load->buffer.size);
    return zfed_client_send(load->client, load->service, load->buffer.data, load->buffer.size);
}

//  Checks one reply body is a result, as the controller would (decoded in
//  full); returns its task id.
static int64_t s_check_result(s_load_t *load, const uint8_t *body, size_t size)
{
    zfed_msg_t *reply = zfed_msg_decode(body, size, NULL, 0);
    int64_t task = reply ? (int64_t)zfed_msg_task_id(reply) : 0;
    if (!reply || zfed_msg_kind(reply) != ZFED_MSG_RESULT)
        load->errors++;
    zfed_msg_destroy(&reply);
    return task;
}

//  Waits for one reply (a result, or a batch of them); returns the first
//  task id it answers and sets *answered to how many tasks it answers, or
//  -1 on timeout/interrupt.
static int64_t s_receive(s_load_t *load, uint32_t *answered)
{
    const char *service;
    const uint8_t *body;
    size_t size;
    if (zfed_client_recv(load->client, REPLY_WAIT_MS, &service, &body, &size) != 1)
        return -1;
    //  As the controller does: the stamp names a ticket it issued.
    uint64_t ticket;
    const char *identity;
    if (load->tickets && (!zfed_client_stamp(load->client, &ticket, &identity) || ticket == 0 ||
                          ticket > load->next_ticket))
        load->errors++;
    *answered = 1;
    if (!zfed_batch_is(body, size))
        return s_check_result(load, body, size);
    size_t count = 0;
    if (zfed_batch_decode(body, size, load->views, ZFED_BATCH_MAX, &count, NULL, 0) != 0) {
        load->errors++;
        return 0;
    }
    int64_t first = 0;
    for (size_t item = 0; item < count; item++) {
        int64_t task = s_check_result(load, load->views[item].data, load->views[item].size);
        if (item == 0)
            first = task;
    }
    *answered = (uint32_t)count;
    return first;
}

static void s_print(const s_options_t *options, uint64_t tasks, double seconds, int64_t *samples,
                    size_t count, double cpu, uint64_t errors)
{
    qsort(samples, count, sizeof *samples, s_compare);
    printf("{\"mode\": \"%s\", \"tasks\": %llu, \"seconds\": %.3f, \"tasks_per_s\": %.1f, "
           "\"latency_us\": {\"p50\": %lld, \"p90\": %lld, \"p99\": %lld, \"max\": %lld}, "
           "\"cpu_s\": %.3f, \"errors\": %llu}\n",
           options->stream ? "stream" : "round", (unsigned long long)tasks, seconds,
           seconds > 0 ? tasks / seconds : 0.0, (long long)s_percentile(samples, count, 0.5),
           (long long)s_percentile(samples, count, 0.9),
           (long long)s_percentile(samples, count, 0.99),
           (long long)(count ? samples[count - 1] : 0), cpu, (unsigned long long)errors);
    fflush(stdout);
}

static int s_rounds(s_load_t *load, const s_options_t *options)
{
    int64_t *latency = calloc(options->rounds, sizeof *latency);
    if (!latency)
        return -1;
    double cpu_start = 0;
    int64_t started = 0;
    uint32_t total = WARMUP_ROUNDS + options->rounds;
    for (uint32_t round = 0; round < total && !zsys_interrupted; round++) {
        if (round == WARMUP_ROUNDS) {
            cpu_start = s_cpu_seconds();
            started = zfed_clock_us();
        }
        int64_t round_start = zfed_clock_us();
        for (uint32_t task = 0; task < options->tasks; task += options->batch) {
            uint32_t count =
                options->tasks - task < options->batch ? options->tasks - task : options->batch;
            if (s_send(load, round, task, count) != 0)
                goto fail;
        }
        for (uint32_t answered = 0, got = 0; answered < options->tasks; answered += got)
            if (s_receive(load, &got) < 0)
                goto fail;
        if (round >= WARMUP_ROUNDS)
            latency[round - WARMUP_ROUNDS] = zfed_clock_us() - round_start;
    }
    double seconds = (zfed_clock_us() - started) / 1e6;
    s_print(options, (uint64_t)options->tasks * options->rounds, seconds, latency, options->rounds,
            s_cpu_seconds() - cpu_start, load->errors);
    free(latency);
    return 0;
fail:
    fprintf(stderr, PROGRAM ": no reply within %d ms\n", REPLY_WAIT_MS);
    free(latency);
    return -1;
}

//  Steady stream: O tasks in flight, in requests of --batch tasks; each
//  answer sends the next request.  Requests number the ring of send times
//  (first task id / batch), so latency needs no lookup structure.
static int s_stream(s_load_t *load, const s_options_t *options)
{
    uint32_t batch = options->batch;
    size_t ring = options->outstanding / batch ? options->outstanding / batch : 1;
    int64_t *sent_at = calloc(ring, sizeof *sent_at);
    size_t capacity = 1 << 20, count = 0;
    int64_t *latency = malloc(capacity * sizeof *latency);
    if (!sent_at || !latency)
        return -1;
    uint32_t next = 0; //  next request number
    for (; next < ring; next++) {
        sent_at[next % ring] = zfed_clock_us();
        if (s_send(load, 0, next * batch, batch) != 0)
            return -1;
    }
    int64_t now = zfed_clock_us();
    int64_t measure_from = now + WARMUP_MS * 1000;
    int64_t until = measure_from + (int64_t)(options->seconds * 1e6);
    double cpu_start = 0;
    bool measuring = false;
    uint64_t done = 0;
    while (!zsys_interrupted) {
        uint32_t answered = 0;
        int64_t task = s_receive(load, &answered);
        if (task < 0) {
            fprintf(stderr, PROGRAM ": no reply within %d ms\n", REPLY_WAIT_MS);
            return -1;
        }
        now = zfed_clock_us();
        if (!measuring && now >= measure_from) {
            measuring = true;
            cpu_start = s_cpu_seconds();
            measure_from = now;
        }
        if (measuring) {
            done += answered;
            if (count == capacity) {
                int64_t *grown = realloc(latency, 2 * capacity * sizeof *latency);
                if (!grown)
                    return -1;
                latency = grown;
                capacity *= 2;
            }
            latency[count++] = now - sent_at[(size_t)(task / batch) % ring];
            if (now >= until)
                break;
        }
        sent_at[next % ring] = zfed_clock_us();
        if (s_send(load, 0, next * batch, batch) != 0)
            return -1;
        next++;
    }
    s_print(options, done, (now - measure_from) / 1e6, latency, count, s_cpu_seconds() - cpu_start,
            load->errors);
    free(latency);
    free(sent_at);
    return 0;
}

static void s_usage(void)
{
    printf("Usage: " PROGRAM " --connect EP --mode round|stream [OPTION]...\n"
           "Drive a zfed broker and its fib workers; print one JSON line of results.\n"
           "\n"
           "  --connect EP        broker endpoint\n"
           "  --mode MODE         round (T tasks at once, R times) or stream (O outstanding)\n"
           "  --tasks T           tasks per round (default 5)\n"
           "  --rounds R          measured rounds, after %d warm-up rounds (default 200)\n"
           "  --outstanding O     tasks in flight in stream mode (default 64)\n"
           "  --seconds S         stream duration after a %d ms warm-up (default 3)\n"
           "  --level N           fibonacci_level of every task (default 10)\n"
           "  --service NAME      MDP service name the fib workers registered under (default fib)\n"
           "  --batch K           tasks per request (zfed.batch when > 1; default 1)\n"
           "  --tickets           a ticket on every request, each reply's stamp checked\n"
           "                      (PROTOCOL.md 3.1: what binding costs)\n"
           "  --curve-cert FILE   our CURVE certificate (secret)\n"
           "  --server-key KEY    the broker's public key\n"
           "  -h, --help          this help\n",
           WARMUP_ROUNDS, WARMUP_MS);
}

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"connect", required_argument, NULL, 'c'},
        {"mode", required_argument, NULL, 'm'},
        {"tasks", required_argument, NULL, 't'},
        {"rounds", required_argument, NULL, 'r'},
        {"outstanding", required_argument, NULL, 'o'},
        {"seconds", required_argument, NULL, 's'},
        {"level", required_argument, NULL, 'l'},
        {"service", required_argument, NULL, 'S'},
        {"batch", required_argument, NULL, 'B'},
        {"curve-cert", required_argument, NULL, 'C'},
        {"server-key", required_argument, NULL, 'K'},
        {"tickets", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    s_options_t options = {NULL, NULL, NULL, false, 5, 200, 64, 3.0, 10, 1, false};
    const char *mode = NULL;
    const char *service = "fib";
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        switch (option) {
        case 'c':
            options.endpoint =
                zfed_cli_endpoint(PROGRAM, "--connect", optarg, ZFED_ENDPOINT_CONNECT);
            break;
        case 'm':
            mode = optarg;
            break;
        case 't':
            options.tasks = zfed_cli_u32(PROGRAM, "--tasks", optarg, 1, 10000000);
            break;
        case 'r':
            options.rounds = zfed_cli_u32(PROGRAM, "--rounds", optarg, 1, 10000000);
            break;
        case 'o':
            options.outstanding = zfed_cli_u32(PROGRAM, "--outstanding", optarg, 1, 1000000);
            break;
        case 's':
            options.seconds = zfed_cli_seconds_ms(PROGRAM, "--seconds", optarg, 0.1, 3600) / 1e3;
            break;
        case 'l':
            options.level = zfed_cli_u32(PROGRAM, "--level", optarg, 1, 100000);
            break;
        case 'S':
            service = optarg;
            break;
        case 'B':
            options.batch = zfed_cli_u32(PROGRAM, "--batch", optarg, 1, ZFED_BATCH_MAX);
            break;
        case 'C':
            options.curve_cert = optarg;
            break;
        case 'K':
            options.server_key = optarg;
            break;
        case 'T':
            options.tickets = true;
            break;
        case 'h':
            s_usage();
            return 0;
        default:
            zfed_cli_bad_option(PROGRAM, argc, argv, option);
        }
    }
    if (!options.endpoint)
        zfed_cli_fail(PROGRAM, "--connect is required");
    if (!mode || (strcmp(mode, "round") != 0 && strcmp(mode, "stream") != 0))
        zfed_cli_fail(PROGRAM, "--mode: expected round or stream");
    options.stream = strcmp(mode, "stream") == 0;

    zfed_log_set_ident("bench-load");
    zfed_signal_install();
    static s_load_t load; //  large (batch buffers): not on the stack
    load.service = service;
    load.tickets = options.tickets;
    for (size_t item = 0; item < ZFED_BATCH_MAX; item++)
        msgpack_sbuffer_init(&load.items[item]);
    msgpack_sbuffer_init(&load.buffer);
    //  {"fibonacci_level": level} and the initial global value "0".
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init(&scratch);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &scratch, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, 1);
    msgpack_pack_str_with_body(&packer, "fibonacci_level", 15);
    msgpack_pack_uint32(&packer, options.level);
    load.params_size = scratch.size;
    memcpy(load.params, scratch.data, scratch.size);
    msgpack_sbuffer_clear(&scratch);
    msgpack_pack_str_with_body(&packer, "0", 1);
    load.global_size = scratch.size;
    memcpy(load.global, scratch.data, scratch.size);
    msgpack_sbuffer_destroy(&scratch);

    load.client = zfed_client_new(options.endpoint, options.curve_cert, options.server_key);
    if (!load.client)
        return 1;
    int rc = options.stream ? s_stream(&load, &options) : s_rounds(&load, &options);
    zfed_client_destroy(&load.client);
    msgpack_sbuffer_destroy(&load.buffer);
    return rc == 0 ? 0 : 1;
}
