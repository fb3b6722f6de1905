/*  zfed-bench-baseline - the bare-libzmq yardstick for zfed's benchmark.

    The same four hops zfed takes (client -> broker -> worker -> broker ->
    client) with nothing but libzmq's C API: no czmq, no msgpack, no zfed
    code, no heartbeats, no retries.  The benchmark runs this and zfed in
    the same session and reports zfed as a ratio of this, so the program
    must be as lean as an honest load-balancing broker can be while still
    doing the work any such broker must do: learn who asked, pick a worker,
    queue when none is free, and carry the reply back.

    Three roles, one process each:

    broker   one thread, one ROUTER socket shared by clients and workers
             (as Majordomo does).  Workers with spare slots wait in a FIFO,
             longest idle first; a worker with slots left after a dispatch
             goes to the back, so a burst is spread over all workers rather
             than filling the first worker's slots.
    workers  N DEALER sockets, one per worker, polled by T threads.
    load     one DEALER socket: rounds of T requests, or a stream keeping
             O requests outstanding.

    Wire format, one command byte so the broker can tell the three kinds
    of message apart on its one socket (frames after the ROUTER's routing
    id, which the broker sees first):

    client -> broker   ['Q'][payload]
    broker -> worker   [client id][payload]
    worker -> broker   ['P'][client id][reply]
    broker -> client   [reply]
    worker -> broker   ['W'][slots, 4 bytes big-endian]     (ready)

    Payloads are 32 bytes.  A request carries the client's request id and
    send time (echoed in the reply so the client measures per-request
    latency without a lookup table) and the number of Fibonacci terms to
    sum; the reply carries the same two words and the sum.

    Batches (load --batch N, the yardstick of zfed.batch): one message
    carries N tasks as N payloads back to back, the first saying N; the
    worker answers with one message of N replies, each computed as above.
    The broker does not look inside: a batch takes one slot of a worker's
    credit, as a zfed.batch request does in zfed's broker.

    Models (load --mode model, the yardstick of zfed's model rounds): a
    round moves a model of B bytes to each of T tasks and one of B bytes
    back from each, in chunks of C bytes, over the same hops: T x B / C
    requests of C bytes (their first 32 bytes the usual header, answered
    with the usual 32-byte reply), then T x B / C requests of 32 bytes
    whose header asks for C bytes back (OFFSET_BULK; workers started with
    --bulk-bytes answer those from one buffer of their own).  Every chunk
    is sent without a copy (zmq_msg_init_data over a buffer that is never
    written while in flight); a window of outstanding requests is the
    only flow control, as in zfed's fetches.

    High-water marks are off (0) on every socket: flow control here is the
    workers' credit and the client's outstanding count, and a full pipe
    would otherwise let a client that is still sending a large round block
    the broker's replies to it, and the broker block on that client.
*/
#define _GNU_SOURCE //  pipe2, getopt_long

#include "zfed/zfed_endpoint.h"
#include <zmq.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PROGRAM "zfed-bench-baseline"

#define EXIT_OK     0
#define EXIT_FAILED 1
#define EXIT_USAGE  2

//  Command bytes (first frame after the routing id).
#define CMD_REQUEST 'Q'
#define CMD_REPLY   'P'
#define CMD_READY   'W'

//  Payload layout, request and reply alike; the first ECHO_SIZE bytes of
//  a request come back unchanged in its reply.
#define PAYLOAD_SIZE  32
#define OFFSET_ID     0
#define OFFSET_SENT   8
#define ECHO_SIZE     16
#define OFFSET_TERMS  16 //  request: one byte, Fibonacci terms to sum
#define OFFSET_RESULT 16 //  reply: uint64 sum
#define OFFSET_BULK   24 //  request: uint32, bytes of bulk reply wanted (0: the usual reply)
#define OFFSET_COUNT  20 //  first request of a batch: uint16, tasks in the message (0: one)
#define FIB_TERMS     10 //  sum of the first 10 is 143: cheap and constant
#define FIB_TERMS_MAX 90 //  the sum of the first 91 would not fit 64 bits
#define READY_SIZE    4
#define MAX_CREDIT    256  //  slots per worker, as zfed's broker caps it
#define MAX_BATCH     1024 //  tasks per message, as zfed.batch caps it
#define MAX_WORKERS   4096
#define MAX_IDENTITY  255 //  ZeroMQ routing ids are at most 255 bytes
#define MAX_THREADS   64
#define MAX_FRAMES    4                 //  longest valid message: [id]['P'][client][reply]
#define WORKER_INDEX  (2 * MAX_WORKERS) //  hash slots, power of two, half full at most
#define DRAIN_BATCH   1024 //  messages per wake-up before the signal pipe is looked at again
#define PENDING_START 1024 //  queued requests before the queue first grows
#define SAMPLES_START 4096
#define ENDPOINT_MAX  256
#define NS_PER_S      1000000000ULL
#define NS_PER_US     1000.0
#define NS_PER_MS     1000000ULL
//  Poll timeout cap: signals also wake every loop through the self-pipe,
//  so this only bounds how stale a deadline check can get.
#define POLL_CAP_MS 1000

#define DEFAULT_WARMUP_ROUNDS  3
#define DEFAULT_WARMUP_SECONDS 1.0
#define DEFAULT_TIMEOUT_S      10.0
#define MAX_TASKS              10000000
#define MAX_ROUNDS             10000000
#define MAX_SECONDS            86400.0
//  Models: the largest model, chunk and window of --mode model.
#define MAX_MODEL_BYTES (1ULL << 40)
#define MAX_CHUNK       (64u << 20)
#define MIN_CHUNK       PAYLOAD_SIZE
#define DEFAULT_CHUNK   (4u << 20)

// ---------------------------------------------------------------------
//  Shared helpers: usage errors, signals, clocks.

static void s_fail_usage(const char *role, const char *format, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void s_fail_usage(const char *role, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, PROGRAM "%s%s: ", role ? " " : "", role ? role : "");
    vfprintf(stderr, format, args);
    va_end(args);
    fprintf(stderr, "\nTry '" PROGRAM "%s%s --help'.\n", role ? " " : "", role ? role : "");
    exit(EXIT_USAGE);
}

static void s_log(const char *role, const char *format, ...) __attribute__((format(printf, 2, 3)));

static void s_log(const char *role, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, PROGRAM " %s: ", role);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
}

//  Strict: "10x", "-1" and "" are errors, never silently 0.
static uint64_t s_parse_count(const char *role, const char *flag, const char *text, uint64_t min,
                              uint64_t max)
{
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || errno != 0 || *end != '\0' || value < min || value > max)
        s_fail_usage(role, "%s: '%s' is not a whole number from %" PRIu64 " to %" PRIu64, flag,
                     text, min, max);
    return value;
}

static double s_parse_seconds(const char *role, const char *flag, const char *text, double min,
                              double max)
{
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    //  The comparisons are written so NaN fails them too.
    if (end == text || *end != '\0' || errno != 0 || !(value >= min) || !(value <= max))
        s_fail_usage(role, "%s: '%s' is not a number of seconds from %g to %g", flag, text, min,
                     max);
    return value;
}

//  An endpoint flag's value, checked by zfed's own rules before libzmq
//  sees it.
static const char *s_endpoint(const char *role, const char *flag, const char *value,
                              zfed_endpoint_use_t use)
{
    char reason[128];
    if (zfed_endpoint_check(value, use, reason, sizeof reason) != 0)
        s_fail_usage(role, "%s: '%s' is not an endpoint (%s): expected " ZFED_ENDPOINT_FORMS, flag,
                     value, reason);
    return value;
}

//  getopt_long returned '?' or ':' (the option string starts with ':').
static void s_bad_option(const char *role, char **argv, int option)
{
    const char *text = argv[optind - 1];
    if (option == ':')
        s_fail_usage(role, "option '%s' needs a value", text);
    if (optopt && strncmp(text, "--", 2) != 0)
        s_fail_usage(role, "unknown option '-%c'", optopt);
    s_fail_usage(role, "unknown option '%s'", text);
}

//  SIGINT/SIGTERM set a flag and write to a pipe every loop polls, so a
//  thread blocked in zmq_poll wakes even when the signal was delivered to
//  another thread.  The pipe is never drained: it stays readable, and every
//  thread sees it.
static volatile sig_atomic_t s_interrupted = 0;
static int s_signal_pipe[2] = {-1, -1};

static void s_on_signal(int signal_value)
{
    (void)signal_value;
    int saved = errno;
    s_interrupted = 1;
    if (write(s_signal_pipe[1], "!", 1) < 0) {
        //  Full pipe: a byte is already waiting, which is all that matters.
    }
    errno = saved;
}

//  Stops every loop in the process, as a signal would (a worker thread
//  that fails stops its siblings this way).
static void s_request_stop(void)
{
    s_interrupted = 1;
    if (write(s_signal_pipe[1], "!", 1) < 0) {
        //  Full pipe: already readable.
    }
}

static int s_signals_install(void)
{
    if (pipe2(s_signal_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset(&action.sa_mask);
    //  No SA_RESTART: blocking calls return EINTR and the loops look at the flag.
    action.sa_flags = 0;
    if (sigaction(SIGINT, &action, NULL) != 0 || sigaction(SIGTERM, &action, NULL) != 0)
        return -1;
    return 0;
}

static uint64_t s_now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * NS_PER_S + (uint64_t)now.tv_nsec;
}

static double s_cpu_seconds(void)
{
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0)
        return 0.0;
    return (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
           (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
}

//  The workers' "compute": cheap, constant, and not foldable by the
//  compiler because the term count comes off the wire.
static uint64_t s_fib_sum(unsigned terms)
{
    if (terms > FIB_TERMS_MAX)
        terms = FIB_TERMS_MAX;
    uint64_t previous = 0, current = 1, sum = 0;
    for (unsigned term = 0; term < terms; term++) {
        sum += current;
        uint64_t next = previous + current;
        previous = current;
        current = next;
    }
    return sum;
}

static int s_set_int(void *socket, int option, int value)
{
    return zmq_setsockopt(socket, option, &value, sizeof value);
}

//  Options every socket here gets: no high-water mark (see the header
//  comment) and no linger, so a signalled process exits at once.
static int s_socket_defaults(void *socket)
{
    if (s_set_int(socket, ZMQ_SNDHWM, 0) != 0 || s_set_int(socket, ZMQ_RCVHWM, 0) != 0 ||
        s_set_int(socket, ZMQ_LINGER, 0) != 0)
        return -1;
    return 0;
}

//  Receives one whole message into frames[0 .. *count).  Returns 0, or -1
//  with errno: EAGAIN when nothing waits under ZMQ_DONTWAIT, EPROTO when
//  the message had more than max frames (it is consumed and dropped).
//  The caller closes the frames.
static int s_recv_message(void *socket, int flags, zmq_msg_t *frames, size_t max, size_t *count)
{
    *count = 0;
    size_t received = 0;
    bool more = true;
    while (more) {
        zmq_msg_t scratch;
        zmq_msg_t *frame = received < max ? &frames[received] : &scratch;
        zmq_msg_init(frame);
        //  Parts of a multipart message arrive together, so only the first
        //  receive can find nothing waiting.
        if (zmq_msg_recv(frame, socket, received == 0 ? flags : 0) == -1) {
            int saved = errno;
            zmq_msg_close(frame);
            for (size_t index = 0; index < received && index < max; index++)
                zmq_msg_close(&frames[index]);
            errno = saved;
            return -1;
        }
        more = zmq_msg_more(frame) != 0;
        if (frame == &scratch)
            zmq_msg_close(&scratch);
        received++;
    }
    if (received > max) {
        for (size_t index = 0; index < max; index++)
            zmq_msg_close(&frames[index]);
        errno = EPROTO;
        return -1;
    }
    *count = received;
    return 0;
}

static void s_close_frames(zmq_msg_t *frames, size_t count)
{
    for (size_t index = 0; index < count; index++)
        zmq_msg_close(&frames[index]);
}

//  Written to a temporary name and renamed, so a driver polling for the
//  file never reads half an endpoint.
static int s_write_endpoint_file(const char *path, const char *endpoint)
{
    size_t size = strlen(path) + 32;
    char *temporary = malloc(size);
    if (!temporary)
        return -1;
    snprintf(temporary, size, "%s.%ld.tmp", path, (long)getpid());
    FILE *file = fopen(temporary, "w");
    int rc = -1;
    if (file) {
        bool written = fprintf(file, "%s\n", endpoint) > 0;
        if (fclose(file) == 0 && written && rename(temporary, path) == 0)
            rc = 0;
        else
            unlink(temporary);
    }
    free(temporary);
    return rc;
}

// ---------------------------------------------------------------------
//  broker

typedef struct {
    unsigned char id[MAX_IDENTITY];
    size_t id_size;
    uint32_t credit;    //  slots
    uint32_t in_flight; //  slots in use
    bool waiting;       //  in the waiting FIFO
    bool gone;          //  a send found it disconnected
} s_worker_t;

typedef struct {
    zmq_msg_t client;
    zmq_msg_t payload;
} s_request_t;

typedef struct {
    void *socket;
    uint32_t credit_override; //  0: use what each worker announces
    s_worker_t *workers;
    size_t worker_count;
    int32_t *index; //  routing id hash -> workers[], linear probing, -1 empty
    //  Workers with a free slot, longest idle first; each at most once.
    uint32_t *waiting;
    size_t waiting_head, waiting_count;
    //  Requests no worker was free for, oldest first; a ring that grows.
    s_request_t *pending;
    size_t pending_capacity, pending_head, pending_count;
    uint64_t dispatched, replied, dropped, malformed;
} s_broker_t;

static uint32_t s_hash(const unsigned char *bytes, size_t size)
{
    uint32_t hash = 2166136261u; //  FNV-1a
    for (size_t index = 0; index < size; index++)
        hash = (hash ^ bytes[index]) * 16777619u;
    return hash;
}

static size_t s_broker_compact(s_broker_t *self);

//  Returns the worker for this routing id, or NULL; with create, adds it.
static s_worker_t *s_broker_worker(s_broker_t *self, zmq_msg_t *routing_id, bool create)
{
    const unsigned char *id = zmq_msg_data(routing_id);
    size_t size = zmq_msg_size(routing_id);
    if (size == 0 || size > MAX_IDENTITY)
        return NULL;
    size_t slot = s_hash(id, size) & (WORKER_INDEX - 1);
    while (self->index[slot] >= 0) {
        s_worker_t *worker = &self->workers[self->index[slot]];
        if (worker->id_size == size && memcmp(worker->id, id, size) == 0)
            return worker;
        slot = (slot + 1) & (WORKER_INDEX - 1);
    }
    if (!create)
        return NULL;
    if (self->worker_count == MAX_WORKERS) {
        //  Full: forget the workers known to have gone, then look again.
        if (s_broker_compact(self) == 0)
            return NULL;
        return s_broker_worker(self, routing_id, create);
    }
    s_worker_t *worker = &self->workers[self->worker_count];
    memset(worker, 0, sizeof *worker);
    memcpy(worker->id, id, size);
    worker->id_size = size;
    self->index[slot] = (int32_t)self->worker_count++;
    return worker;
}

//  Drops the records of workers a send found gone, so a broker that outlives
//  many runs of worker processes keeps room for new ones.  There is no
//  deletion in the hash (linear probing): it is rebuilt, as is the waiting
//  FIFO, whose order is kept.  Returns how many records were dropped.
static size_t s_broker_compact(s_broker_t *self)
{
    int32_t *moved_to = self->index; //  reused: rebuilt below anyway
    size_t kept = 0;
    for (size_t from = 0; from < self->worker_count; from++) {
        if (self->workers[from].gone) {
            moved_to[from] = -1;
            continue;
        }
        if (kept != from)
            self->workers[kept] = self->workers[from];
        moved_to[from] = (int32_t)kept++;
    }
    size_t dropped = self->worker_count - kept;
    if (dropped == 0)
        return 0;
    size_t waiting_kept = 0;
    for (size_t position = 0; position < self->waiting_count; position++) {
        int32_t to = moved_to[self->waiting[(self->waiting_head + position) % MAX_WORKERS]];
        if (to >= 0)
            self->waiting[waiting_kept++] = (uint32_t)to;
    }
    self->waiting_head = 0;
    self->waiting_count = waiting_kept;
    for (size_t slot = 0; slot < WORKER_INDEX; slot++)
        self->index[slot] = -1;
    for (size_t at = 0; at < kept; at++) {
        s_worker_t *worker = &self->workers[at];
        size_t slot = s_hash(worker->id, worker->id_size) & (WORKER_INDEX - 1);
        while (self->index[slot] >= 0)
            slot = (slot + 1) & (WORKER_INDEX - 1);
        self->index[slot] = (int32_t)at;
    }
    self->worker_count = kept;
    s_log("broker", "forgot %zu workers that have gone", dropped);
    return dropped;
}

static void s_broker_wait(s_broker_t *self, s_worker_t *worker)
{
    size_t tail = (self->waiting_head + self->waiting_count) % MAX_WORKERS;
    self->waiting[tail] = (uint32_t)(worker - self->workers);
    self->waiting_count++;
    worker->waiting = true;
}

//  Sends one request to the longest-idle worker with a free slot.  Returns
//  1 when sent, 0 when no worker is free (the request is untouched), -1 on
//  a socket error.
static int s_broker_dispatch(s_broker_t *self, zmq_msg_t *client, zmq_msg_t *payload)
{
    while (self->waiting_count > 0) {
        s_worker_t *worker = &self->workers[self->waiting[self->waiting_head]];
        self->waiting_head = (self->waiting_head + 1) % MAX_WORKERS;
        self->waiting_count--;
        worker->waiting = false;
        if (worker->gone || worker->in_flight >= worker->credit)
            continue; //  stale entry
        //  ROUTER_MANDATORY fails the routing-id frame when the peer has
        //  gone, before anything is queued, so the request can go elsewhere.
        if (zmq_send(self->socket, worker->id, worker->id_size, ZMQ_SNDMORE) == -1) {
            if (errno != EHOSTUNREACH)
                return -1;
            worker->gone = true;
            s_log("broker", "a worker has gone; %" PRIu32 " request(s) it held are lost",
                  worker->in_flight);
            continue;
        }
        if (zmq_msg_send(client, self->socket, ZMQ_SNDMORE) == -1 ||
            zmq_msg_send(payload, self->socket, 0) == -1)
            return -1;
        worker->in_flight++;
        self->dispatched++;
        if (worker->in_flight < worker->credit)
            s_broker_wait(self, worker); //  to the back: workers take turns
        return 1;
    }
    return 0;
}

static int s_broker_enqueue(s_broker_t *self, zmq_msg_t *client, zmq_msg_t *payload)
{
    if (self->pending_count == self->pending_capacity) {
        //  zmq_msg_t may not be copied bytewise: move each into the new ring.
        size_t capacity = self->pending_capacity ? 2 * self->pending_capacity : PENDING_START;
        s_request_t *grown = malloc(capacity * sizeof *grown);
        if (!grown)
            return -1;
        for (size_t index = 0; index < self->pending_count; index++) {
            s_request_t *from =
                &self->pending[(self->pending_head + index) % self->pending_capacity];
            zmq_msg_init(&grown[index].client);
            zmq_msg_init(&grown[index].payload);
            zmq_msg_move(&grown[index].client, &from->client);
            zmq_msg_move(&grown[index].payload, &from->payload);
            zmq_msg_close(&from->client);
            zmq_msg_close(&from->payload);
        }
        free(self->pending);
        self->pending = grown;
        self->pending_capacity = capacity;
        self->pending_head = 0;
    }
    s_request_t *request =
        &self->pending[(self->pending_head + self->pending_count) % self->pending_capacity];
    zmq_msg_init(&request->client);
    zmq_msg_init(&request->payload);
    zmq_msg_move(&request->client, client);
    zmq_msg_move(&request->payload, payload);
    self->pending_count++;
    return 0;
}

//  Hands queued requests to free workers, oldest request first.
static int s_broker_drain_pending(s_broker_t *self)
{
    while (self->pending_count > 0 && self->waiting_count > 0) {
        s_request_t *request = &self->pending[self->pending_head];
        int rc = s_broker_dispatch(self, &request->client, &request->payload);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        zmq_msg_close(&request->client);
        zmq_msg_close(&request->payload);
        self->pending_head = (self->pending_head + 1) % self->pending_capacity;
        self->pending_count--;
    }
    return 0;
}

static int s_broker_on_request(s_broker_t *self, zmq_msg_t *client, zmq_msg_t *payload)
{
    //  Straight through when nothing is queued ahead of it: no copy, no queue.
    if (self->pending_count == 0) {
        int rc = s_broker_dispatch(self, client, payload);
        if (rc != 0)
            return rc < 0 ? -1 : 0;
    }
    return s_broker_enqueue(self, client, payload);
}

static int s_broker_on_ready(s_broker_t *self, zmq_msg_t *routing_id, zmq_msg_t *slots)
{
    if (zmq_msg_size(slots) != READY_SIZE) {
        self->malformed++;
        return 0;
    }
    const unsigned char *bytes = zmq_msg_data(slots);
    uint32_t announced = (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 |
                         (uint32_t)bytes[2] << 8 | (uint32_t)bytes[3];
    if (announced < 1 || announced > MAX_CREDIT) {
        self->malformed++;
        return 0;
    }
    s_worker_t *worker = s_broker_worker(self, routing_id, true);
    if (!worker) {
        s_log("broker", "more than %d workers; one ignored", MAX_WORKERS);
        return 0;
    }
    worker->credit = self->credit_override ? self->credit_override : announced;
    worker->in_flight = 0;
    worker->gone = false;
    if (!worker->waiting)
        s_broker_wait(self, worker);
    s_log("broker", "worker %zu ready (%" PRIu32 " slot%s)", self->worker_count, worker->credit,
          worker->credit == 1 ? "" : "s");
    return s_broker_drain_pending(self);
}

static int s_broker_on_reply(s_broker_t *self, zmq_msg_t *routing_id, zmq_msg_t *client,
                             zmq_msg_t *reply)
{
    //  The reply first, so the client's latency does not include the next dispatch.
    if (zmq_msg_send(client, self->socket, ZMQ_SNDMORE) == -1) {
        if (errno != EHOSTUNREACH)
            return -1;
        self->dropped++; //  the client has gone
    } else {
        if (zmq_msg_send(reply, self->socket, 0) == -1)
            return -1;
        self->replied++;
    }
    s_worker_t *worker = s_broker_worker(self, routing_id, false);
    if (!worker || worker->gone) {
        self->malformed++;
        return 0;
    }
    if (worker->in_flight > 0)
        worker->in_flight--;
    if (!worker->waiting)
        s_broker_wait(self, worker);
    return s_broker_drain_pending(self);
}

//  frames: [routing id][command][...]
static int s_broker_handle(s_broker_t *self, zmq_msg_t *frames, size_t count)
{
    if (count < 2 || zmq_msg_size(&frames[1]) != 1) {
        self->malformed++;
        return 0;
    }
    char command = *(const char *)zmq_msg_data(&frames[1]);
    if (command == CMD_REQUEST && count == 3)
        return s_broker_on_request(self, &frames[0], &frames[2]);
    if (command == CMD_REPLY && count == 4)
        return s_broker_on_reply(self, &frames[0], &frames[2], &frames[3]);
    if (command == CMD_READY && count == 3)
        return s_broker_on_ready(self, &frames[0], &frames[2]);
    self->malformed++;
    return 0;
}

static int s_broker_run(s_broker_t *self)
{
    zmq_pollitem_t items[] = {
        {self->socket, 0, ZMQ_POLLIN, 0},
        {NULL, s_signal_pipe[0], ZMQ_POLLIN, 0},
    };
    while (!s_interrupted) {
        if (zmq_poll(items, 2, -1) == -1) {
            if (errno == EINTR)
                continue;
            s_log("broker", "zmq_poll: %s", zmq_strerror(errno));
            return -1;
        }
        if (items[1].revents & ZMQ_POLLIN)
            break;
        //  Drain what is waiting before polling again: under load one poll
        //  serves many messages.
        for (int handled = 0; handled < DRAIN_BATCH; handled++) {
            zmq_msg_t frames[MAX_FRAMES];
            size_t count = 0;
            if (s_recv_message(self->socket, ZMQ_DONTWAIT, frames, MAX_FRAMES, &count) == -1) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                if (errno == EPROTO) {
                    self->malformed++;
                    continue;
                }
                s_log("broker", "receive: %s", zmq_strerror(errno));
                return -1;
            }
            int rc = s_broker_handle(self, frames, count);
            s_close_frames(frames, count);
            if (rc != 0) {
                s_log("broker", "cannot route: %s", zmq_strerror(errno));
                return -1;
            }
        }
    }
    return 0;
}

static void s_broker_usage(void)
{
    printf("Usage: " PROGRAM " broker --bind EP [--endpoint-file FILE] [--credit K]\n"
           "One-thread load-balancing broker on one ROUTER socket (clients and workers\n"
           "alike).  Each request goes to the longest-idle worker with a free slot, or\n"
           "waits in a queue until one is free; the reply goes back to its client.\n"
           "\n"
           "  --bind EP             endpoint to listen on; \"tcp://127.0.0.1:*\" picks a\n"
           "                        free port (see --endpoint-file)\n"
           "  --endpoint-file FILE  write the endpoint actually bound to FILE\n"
           "  --credit K            slots per worker, 1..%d, whatever the workers\n"
           "                        announce (default: as each worker announces)\n"
           "  -h, --help            show this help and exit\n"
           "\n"
           "Runs until SIGINT or SIGTERM.  Exit status 0, 1 on failure, 2 on bad usage.\n",
           MAX_CREDIT);
}

static int s_broker_main(int argc, char **argv)
{
    static const char role[] = "broker";
    static const struct option options[] = {
        {"bind", required_argument, NULL, 'b'},
        {"endpoint-file", required_argument, NULL, 'e'},
        {"credit", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *bind_endpoint = NULL;
    const char *endpoint_file = NULL;
    uint32_t credit_override = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (option) {
        case 'b':
            bind_endpoint = s_endpoint(role, "--bind", optarg, ZFED_ENDPOINT_BIND);
            break;
        case 'e':
            endpoint_file = optarg;
            break;
        case 'k':
            credit_override = (uint32_t)s_parse_count(role, "--credit", optarg, 1, MAX_CREDIT);
            break;
        case 'h':
            s_broker_usage();
            return EXIT_OK;
        default:
            s_bad_option(role, argv, option);
        }
    }
    if (optind < argc)
        s_fail_usage(role, "unexpected argument '%s'", argv[optind]);
    if (!bind_endpoint)
        s_fail_usage(role, "--bind is required");

    s_broker_t broker;
    memset(&broker, 0, sizeof broker);
    broker.credit_override = credit_override;
    broker.workers = calloc(MAX_WORKERS, sizeof *broker.workers);
    broker.index = malloc(WORKER_INDEX * sizeof *broker.index);
    broker.waiting = calloc(MAX_WORKERS, sizeof *broker.waiting);
    if (!broker.workers || !broker.index || !broker.waiting) {
        s_log(role, "out of memory");
        return EXIT_FAILED;
    }
    for (size_t slot = 0; slot < WORKER_INDEX; slot++)
        broker.index[slot] = -1;

    int rc = EXIT_FAILED;
    void *context = zmq_ctx_new();
    if (!context) {
        s_log(role, "zmq_ctx_new: %s", zmq_strerror(errno));
        return EXIT_FAILED;
    }
    broker.socket = zmq_socket(context, ZMQ_ROUTER);
    char endpoint[ENDPOINT_MAX];
    size_t endpoint_size = sizeof endpoint;
    if (!broker.socket || s_socket_defaults(broker.socket) != 0 ||
        s_set_int(broker.socket, ZMQ_ROUTER_MANDATORY, 1) != 0) {
        s_log(role, "socket setup: %s", zmq_strerror(errno));
    } else if (zmq_bind(broker.socket, bind_endpoint) != 0) {
        s_log(role, "cannot bind %s: %s", bind_endpoint, zmq_strerror(errno));
    } else if (zmq_getsockopt(broker.socket, ZMQ_LAST_ENDPOINT, endpoint, &endpoint_size) != 0) {
        s_log(role, "ZMQ_LAST_ENDPOINT: %s", zmq_strerror(errno));
    } else if (endpoint_file && s_write_endpoint_file(endpoint_file, endpoint) != 0) {
        s_log(role, "cannot write %s: %s", endpoint_file, strerror(errno));
    } else {
        s_log(role, "ready on %s", endpoint);
        if (s_broker_run(&broker) == 0)
            rc = EXIT_OK;
        s_log(role,
              "stopping: %zu workers, %" PRIu64 " dispatched, %" PRIu64 " replied, %" PRIu64
              " dropped, %" PRIu64 " malformed, %zu queued",
              broker.worker_count, broker.dispatched, broker.replied, broker.dropped,
              broker.malformed, broker.pending_count);
    }
    for (size_t index = 0; index < broker.pending_count; index++) {
        s_request_t *request =
            &broker.pending[(broker.pending_head + index) % broker.pending_capacity];
        zmq_msg_close(&request->client);
        zmq_msg_close(&request->payload);
    }
    if (broker.socket)
        zmq_close(broker.socket);
    zmq_ctx_term(context);
    free(broker.pending);
    free(broker.workers);
    free(broker.index);
    free(broker.waiting);
    return rc;
}

// ---------------------------------------------------------------------
//  workers

typedef struct {
    void *context;
    const char *endpoint;
    uint32_t credit;
    size_t first, stride, total; //  this thread's sockets: first, first + stride, ... < total
    uint64_t answered;
    int rc;
    const unsigned char *bulk; //  the bulk reply buffer (shared, read-only)
    size_t bulk_size;
} s_worker_thread_t;

//  A bulk reply: bytes of the worker's buffer, sent without a copy.
static int s_worker_answer_bulk(void *socket, zmq_msg_t *client, const unsigned char *bulk,
                                size_t size)
{
    zmq_msg_t reply;
    const char command = CMD_REPLY;
    if (zmq_msg_init_data(&reply, (void *)bulk, size, NULL, NULL) != 0)
        return -1;
    if (zmq_send(socket, &command, 1, ZMQ_SNDMORE) == -1 ||
        zmq_msg_send(client, socket, ZMQ_SNDMORE) == -1 || zmq_msg_send(&reply, socket, 0) == -1) {
        zmq_msg_close(&reply);
        return -1;
    }
    return 0;
}

//  One task's reply from its request payload (both PAYLOAD_SIZE bytes).
static void s_answer_one(unsigned char *reply, const unsigned char *request)
{
    memcpy(reply, request, ECHO_SIZE);
    uint64_t sum = s_fib_sum(request[OFFSET_TERMS]);
    memcpy(reply + OFFSET_RESULT, &sum, sizeof sum);
}

//  A batch's reply: one message of tasks replies, built in place (no copy
//  on send), in the order of the requests.
static int s_worker_answer_batch(void *socket, zmq_msg_t *client, const unsigned char *request,
                                 size_t tasks)
{
    zmq_msg_t reply;
    if (zmq_msg_init_size(&reply, tasks * PAYLOAD_SIZE) != 0)
        return -1;
    unsigned char *out = zmq_msg_data(&reply);
    memset(out, 0, tasks * PAYLOAD_SIZE);
    for (size_t task = 0; task < tasks; task++)
        s_answer_one(out + task * PAYLOAD_SIZE, request + task * PAYLOAD_SIZE);
    const char command = CMD_REPLY;
    if (zmq_send(socket, &command, 1, ZMQ_SNDMORE) == -1 ||
        zmq_msg_send(client, socket, ZMQ_SNDMORE) == -1 || zmq_msg_send(&reply, socket, 0) == -1) {
        zmq_msg_close(&reply);
        return -1;
    }
    return 0;
}

//  request frames: [client id][payload]
static int s_worker_answer(void *socket, zmq_msg_t *frames, size_t count,
                           const s_worker_thread_t *self)
{
    unsigned char reply[PAYLOAD_SIZE];
    memset(reply, 0, sizeof reply);
    zmq_msg_t *payload = &frames[count - 1];
    const unsigned char *request = zmq_msg_data(payload);
    size_t request_size = zmq_msg_size(payload);
    //  A short request still gets a reply, so its slot comes back; the
    //  client will see the wrong result and fail loudly.
    if (request_size >= PAYLOAD_SIZE) {
        uint32_t bulk = 0;
        memcpy(&bulk, request + OFFSET_BULK, sizeof bulk);
        if (bulk > 0 && bulk <= self->bulk_size)
            return s_worker_answer_bulk(socket, &frames[0], self->bulk, bulk);
        uint16_t tasks = 0;
        memcpy(&tasks, request + OFFSET_COUNT, sizeof tasks);
        if (tasks > 1 && (size_t)tasks * PAYLOAD_SIZE == request_size)
            return s_worker_answer_batch(socket, &frames[0], request, tasks);
        s_answer_one(reply, request);
    }
    const char command = CMD_REPLY;
    if (zmq_send(socket, &command, 1, ZMQ_SNDMORE) == -1 ||
        zmq_msg_send(&frames[0], socket, ZMQ_SNDMORE) == -1 ||
        zmq_send(socket, reply, sizeof reply, 0) == -1)
        return -1;
    return 0;
}

static void *s_worker_thread(void *argument)
{
    s_worker_thread_t *self = argument;
    size_t count = (self->total - self->first + self->stride - 1) / self->stride;
    void **sockets = calloc(count, sizeof *sockets);
    zmq_pollitem_t *items = calloc(count + 1, sizeof *items);
    self->rc = -1;
    if (!sockets || !items) {
        s_log("workers", "out of memory");
        goto done;
    }
    unsigned char ready[1 + READY_SIZE] = {
        CMD_READY, (unsigned char)(self->credit >> 24), (unsigned char)(self->credit >> 16),
        (unsigned char)(self->credit >> 8), (unsigned char)self->credit};
    for (size_t index = 0; index < count; index++) {
        sockets[index] = zmq_socket(self->context, ZMQ_DEALER);
        if (!sockets[index] || s_socket_defaults(sockets[index]) != 0 ||
            zmq_connect(sockets[index], self->endpoint) != 0) {
            s_log("workers", "cannot connect to %s: %s", self->endpoint, zmq_strerror(errno));
            goto done;
        }
        //  Queued until the connection is up.
        if (zmq_send(sockets[index], ready, 1, ZMQ_SNDMORE) == -1 ||
            zmq_send(sockets[index], ready + 1, READY_SIZE, 0) == -1) {
            s_log("workers", "cannot announce: %s", zmq_strerror(errno));
            goto done;
        }
        items[index] = (zmq_pollitem_t){sockets[index], 0, ZMQ_POLLIN, 0};
    }
    items[count] = (zmq_pollitem_t){NULL, s_signal_pipe[0], ZMQ_POLLIN, 0};

    while (!s_interrupted) {
        if (zmq_poll(items, (int)count + 1, -1) == -1) {
            if (errno == EINTR)
                continue;
            s_log("workers", "zmq_poll: %s", zmq_strerror(errno));
            goto done;
        }
        if (items[count].revents & ZMQ_POLLIN)
            break;
        for (size_t index = 0; index < count; index++) {
            if (!(items[index].revents & ZMQ_POLLIN))
                continue;
            //  At most credit requests can be waiting; the batch bound is
            //  only a guard against a broker that ignores it.
            for (int handled = 0; handled < DRAIN_BATCH; handled++) {
                zmq_msg_t frames[MAX_FRAMES];
                size_t frame_count = 0;
                if (s_recv_message(sockets[index], ZMQ_DONTWAIT, frames, MAX_FRAMES,
                                   &frame_count) == -1) {
                    if (errno == EAGAIN || errno == EINTR)
                        break;
                    if (errno == EPROTO)
                        continue;
                    s_log("workers", "receive: %s", zmq_strerror(errno));
                    goto done;
                }
                if (frame_count != 2) {
                    s_close_frames(frames, frame_count);
                    continue; //  not a request
                }
                int rc = s_worker_answer(sockets[index], frames, frame_count, self);
                s_close_frames(frames, frame_count);
                if (rc != 0) {
                    s_log("workers", "send: %s", zmq_strerror(errno));
                    goto done;
                }
                self->answered++;
            }
        }
    }
    self->rc = 0;
done:
    if (self->rc != 0)
        s_request_stop();
    if (sockets) {
        for (size_t index = 0; index < count; index++)
            if (sockets[index])
                zmq_close(sockets[index]);
    }
    free(sockets);
    free(items);
    return NULL;
}

static void s_workers_usage(void)
{
    printf("Usage: " PROGRAM " workers --connect EP --count N [--credit K] [--threads T]\n"
           "                      [--bulk-bytes B]\n"
           "N workers, one DEALER socket each, in this process.  Each announces K slots\n"
           "and answers every request at once with a 32-byte reply (the sum of the first\n"
           "%d Fibonacci numbers), or, when the request asks for a bulk reply of up to B\n"
           "bytes, with that many bytes of one buffer (no copy).\n"
           "\n"
           "  --connect EP      broker endpoint\n"
           "  --count N         workers, 1..%d\n"
           "  --credit K        requests each worker may hold at once, 1..%d (default 1)\n"
           "  --threads T       threads polling the sockets, 1..%d and at most N (default 1)\n"
           "  --bulk-bytes B    largest bulk reply, up to %u (default 0: none)\n"
           "  -h, --help        show this help and exit\n"
           "\n"
           "Runs until SIGINT or SIGTERM.  Exit status 0, 1 on failure, 2 on bad usage.\n",
           FIB_TERMS, MAX_WORKERS, MAX_CREDIT, MAX_THREADS, MAX_CHUNK);
}

static int s_workers_main(int argc, char **argv)
{
    static const char role[] = "workers";
    static const struct option options[] = {
        {"connect", required_argument, NULL, 'c'},
        {"count", required_argument, NULL, 'n'},
        {"credit", required_argument, NULL, 'k'},
        {"threads", required_argument, NULL, 't'},
        {"bulk-bytes", required_argument, NULL, 'B'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *endpoint = NULL;
    size_t count = 0, threads = 1, bulk_size = 0;
    uint32_t credit = 1;
    int option;
    while ((option = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (option) {
        case 'c':
            endpoint = s_endpoint(role, "--connect", optarg, ZFED_ENDPOINT_CONNECT);
            break;
        case 'n':
            count = (size_t)s_parse_count(role, "--count", optarg, 1, MAX_WORKERS);
            break;
        case 'k':
            credit = (uint32_t)s_parse_count(role, "--credit", optarg, 1, MAX_CREDIT);
            break;
        case 't':
            threads = (size_t)s_parse_count(role, "--threads", optarg, 1, MAX_THREADS);
            break;
        case 'B':
            bulk_size = (size_t)s_parse_count(role, "--bulk-bytes", optarg, 0, MAX_CHUNK);
            break;
        case 'h':
            s_workers_usage();
            return EXIT_OK;
        default:
            s_bad_option(role, argv, option);
        }
    }
    if (optind < argc)
        s_fail_usage(role, "unexpected argument '%s'", argv[optind]);
    if (!endpoint)
        s_fail_usage(role, "--connect is required");
    if (count == 0)
        s_fail_usage(role, "--count is required");
    if (threads > count)
        s_fail_usage(role, "--threads %zu is more than --count %zu", threads, count);

    void *context = zmq_ctx_new();
    if (!context) {
        s_log(role, "zmq_ctx_new: %s", zmq_strerror(errno));
        return EXIT_FAILED;
    }
    //  The bulk buffer: touched once, so replies read resident pages.
    unsigned char *bulk = bulk_size ? malloc(bulk_size) : NULL;
    if (bulk_size && !bulk) {
        s_log(role, "out of memory");
        zmq_ctx_term(context);
        return EXIT_FAILED;
    }
    if (bulk)
        memset(bulk, 0x5a, bulk_size);
    s_worker_thread_t loops[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    size_t started = 0;
    for (size_t index = 0; index < threads; index++)
        loops[index] = (s_worker_thread_t){context, endpoint, credit, index, threads,
                                           count,   0,        -1,     bulk,  bulk_size};
    s_log(role, "%zu worker%s, %" PRIu32 " slot%s each, %zu thread%s, on %s", count,
          count == 1 ? "" : "s", credit, credit == 1 ? "" : "s", threads, threads == 1 ? "" : "s",
          endpoint);
    int rc = EXIT_OK;
    //  One loop runs on this thread: with --threads 1 there is no extra thread at all.
    for (size_t index = 1; index < threads; index++) {
        int error = pthread_create(&ids[index], NULL, s_worker_thread, &loops[index]);
        if (error != 0) {
            s_log(role, "pthread_create: %s", strerror(error));
            rc = EXIT_FAILED;
            s_request_stop();
            break;
        }
        started = index;
    }
    if (rc == EXIT_OK) {
        s_worker_thread(&loops[0]);
        if (loops[0].rc != 0)
            rc = EXIT_FAILED;
    }
    uint64_t answered = loops[0].answered;
    for (size_t index = 1; index <= started; index++) {
        pthread_join(ids[index], NULL);
        answered += loops[index].answered;
        if (loops[index].rc != 0)
            rc = EXIT_FAILED;
    }
    s_log(role, "stopping: %" PRIu64 " requests answered", answered);
    //  No frame over the bulk buffer outlives the context.
    zmq_ctx_term(context);
    free(bulk);
    return rc;
}

// ---------------------------------------------------------------------
//  load

typedef enum { MODE_NONE, MODE_ROUND, MODE_STREAM, MODE_MODEL } s_mode_t;

typedef struct {
    void *socket;
    void *context;
    uint64_t next_id;
    uint64_t timeout_ns; //  longest wait for any reply before giving up
    uint64_t expected;   //  the sum a correct reply carries
    uint32_t batch;      //  tasks per request message
    uint64_t *samples;   //  latencies, ns
    size_t sample_count, sample_capacity;
} s_load_t;

//  One request message of tasks tasks (1..MAX_BATCH), built in place.
static int s_load_send(s_load_t *self, uint32_t tasks)
{
    zmq_msg_t frame;
    if (zmq_msg_init_size(&frame, (size_t)tasks * PAYLOAD_SIZE) != 0) {
        s_log("load", "out of memory");
        return -1;
    }
    unsigned char *payload = zmq_msg_data(&frame);
    memset(payload, 0, (size_t)tasks * PAYLOAD_SIZE);
    uint64_t sent = s_now_ns();
    for (uint32_t task = 0; task < tasks; task++) {
        unsigned char *one = payload + (size_t)task * PAYLOAD_SIZE;
        uint64_t id = self->next_id++;
        memcpy(one + OFFSET_ID, &id, sizeof id);
        memcpy(one + OFFSET_SENT, &sent, sizeof sent);
        one[OFFSET_TERMS] = FIB_TERMS;
    }
    uint16_t count = tasks > 1 ? (uint16_t)tasks : 0;
    memcpy(payload + OFFSET_COUNT, &count, sizeof count);
    const char command = CMD_REQUEST;
    if (zmq_send(self->socket, &command, 1, ZMQ_SNDMORE) == -1 ||
        zmq_msg_send(&frame, self->socket, 0) == -1) {
        s_log("load", "send: %s", zmq_strerror(errno));
        zmq_msg_close(&frame);
        return -1;
    }
    return 0;
}

//  One reply if one is waiting: 1 with its frames, 0 when none is, -1 on
//  a socket error.
static int s_load_receive(s_load_t *self, zmq_msg_t *frames, size_t *count)
{
    if (s_recv_message(self->socket, ZMQ_DONTWAIT, frames, MAX_FRAMES, count) == 0)
        return 1;
    if (errno == EAGAIN || errno == EINTR)
        return 0;
    s_log("load", "receive: %s", zmq_strerror(errno));
    return -1;
}

//  Takes one reply message if one is waiting.  Returns how many tasks it
//  answered (1..MAX_BATCH) with their ids and send times, 0 when none is
//  waiting, -1 on error (a wrong reply is an error: the yardstick must be
//  measuring the real path).
static int s_load_take(s_load_t *self, uint64_t *ids, uint64_t *sents)
{
    zmq_msg_t frames[MAX_FRAMES];
    size_t count = 0;
    int got = s_load_receive(self, frames, &count);
    if (got <= 0)
        return got;
    int rc = -1;
    size_t size = count == 1 ? zmq_msg_size(&frames[0]) : 0;
    if (size == 0 || size % PAYLOAD_SIZE != 0 || size / PAYLOAD_SIZE > MAX_BATCH) {
        s_log("load", "malformed reply (%zu frames, %zu bytes)", count, size);
    } else {
        const unsigned char *reply = zmq_msg_data(&frames[0]);
        rc = (int)(size / PAYLOAD_SIZE);
        for (int task = 0; task < rc; task++, reply += PAYLOAD_SIZE) {
            uint64_t sum = 0;
            memcpy(&ids[task], reply + OFFSET_ID, sizeof ids[task]);
            memcpy(&sents[task], reply + OFFSET_SENT, sizeof sents[task]);
            memcpy(&sum, reply + OFFSET_RESULT, sizeof sum);
            if (sum != self->expected || ids[task] >= self->next_id) {
                s_log("load", "wrong reply: id %" PRIu64 ", result %" PRIu64, ids[task], sum);
                rc = -1;
                break;
            }
        }
    }
    s_close_frames(frames, count);
    return rc;
}

//  Waits until a reply may be waiting or deadline_ns passes.  Returns 0,
//  or -1 when interrupted or on error.
static int s_load_wait(s_load_t *self, uint64_t deadline_ns)
{
    zmq_pollitem_t items[] = {
        {self->socket, 0, ZMQ_POLLIN, 0},
        {NULL, s_signal_pipe[0], ZMQ_POLLIN, 0},
    };
    uint64_t now = s_now_ns();
    long timeout_ms = 0;
    if (deadline_ns > now)
        timeout_ms = (long)((deadline_ns - now + NS_PER_MS - 1) / NS_PER_MS);
    if (timeout_ms > POLL_CAP_MS)
        timeout_ms = POLL_CAP_MS;
    if (zmq_poll(items, 2, timeout_ms) == -1 && errno != EINTR) {
        s_log("load", "zmq_poll: %s", zmq_strerror(errno));
        return -1;
    }
    if (s_interrupted) {
        s_log("load", "interrupted");
        return -1;
    }
    return 0;
}

static int s_load_record(s_load_t *self, uint64_t latency_ns)
{
    if (self->sample_count == self->sample_capacity) {
        size_t capacity = self->sample_capacity ? 2 * self->sample_capacity : SAMPLES_START;
        uint64_t *grown = realloc(self->samples, capacity * sizeof *grown);
        if (!grown) {
            s_log("load", "out of memory");
            return -1;
        }
        self->samples = grown;
        self->sample_capacity = capacity;
    }
    self->samples[self->sample_count++] = latency_ns;
    return 0;
}

static int s_compare_u64(const void *left, const void *right)
{
    uint64_t a = *(const uint64_t *)left, b = *(const uint64_t *)right;
    return (a > b) - (a < b);
}

//  Nearest rank: the smallest sample at or above percent of all samples.
static double s_percentile_us(const uint64_t *sorted, size_t count, unsigned percent)
{
    if (count == 0)
        return 0.0;
    size_t rank = (count * percent + 99) / 100;
    return (double)sorted[rank ? rank - 1 : 0] / NS_PER_US;
}

typedef struct {
    s_mode_t mode;
    uint64_t tasks, rounds, warmup_rounds, outstanding;
    uint64_t window; //  round: requests unanswered at most (0: all at once)
    double seconds, warmup_seconds;
    uint64_t model_bytes, chunk; //  model
} s_load_config_t;

typedef struct {
    uint64_t tasks;
    uint64_t elapsed_ns;
    double cpu_s;
} s_load_result_t;

//  Rounds: send T at once, wait for all T; one latency sample per round.
static int s_load_rounds(s_load_t *self, const s_load_config_t *config, s_load_result_t *result)
{
    uint64_t measure_start = 0, measure_end = 0;
    double cpu_start = 0.0;
    for (uint64_t round = 0; round < config->warmup_rounds + config->rounds; round++) {
        bool measured = round >= config->warmup_rounds;
        uint64_t first_id = self->next_id;
        uint64_t start = s_now_ns();
        if (round == config->warmup_rounds) {
            measure_start = start;
            cpu_start = s_cpu_seconds();
        }
        //  At most window requests unanswered (all at once without one),
        //  as zfed-controller's --window keeps its rounds.
        uint64_t unsent = config->tasks, messages_out = 0;
        uint64_t window = config->window ? config->window : UINT64_MAX;
        uint64_t received = 0, last_progress = s_now_ns();
        while (received < config->tasks) {
            while (unsent > 0 && messages_out < window) {
                uint32_t count = unsent < self->batch ? (uint32_t)unsent : self->batch;
                if (s_load_send(self, count) != 0)
                    return -1;
                unsent -= count;
                messages_out++;
            }
            uint64_t ids[MAX_BATCH], sents[MAX_BATCH];
            int rc = s_load_take(self, ids, sents);
            if (rc < 0)
                return -1;
            if (rc == 0) {
                if (s_now_ns() - last_progress >= self->timeout_ns) {
                    s_log("load",
                          "no reply for %.1f s (round %" PRIu64 ", %" PRIu64 "/%" PRIu64
                          " replies)",
                          (double)self->timeout_ns / NS_PER_S, round, received, config->tasks);
                    return -1;
                }
                if (s_load_wait(self, last_progress + self->timeout_ns) != 0)
                    return -1;
                continue;
            }
            for (int task = 0; task < rc; task++)
                if (ids[task] < first_id) {
                    s_log("load", "reply %" PRIu64 " from an earlier round", ids[task]);
                    return -1;
                }
            received += (uint64_t)rc;
            messages_out--;
            last_progress = s_now_ns();
        }
        uint64_t end = s_now_ns();
        if (measured) {
            if (s_load_record(self, end - start) != 0)
                return -1;
            measure_end = end;
        }
    }
    result->tasks = config->tasks * config->rounds;
    result->elapsed_ns = measure_end - measure_start;
    result->cpu_s = s_cpu_seconds() - cpu_start;
    return 0;
}

//  Stream: keep O tasks outstanding (in O / batch messages); every task
//  answered is a latency sample, and every reply message is replaced at
//  once by a new request of as many tasks.
static int s_load_stream(s_load_t *self, const s_load_config_t *config, s_load_result_t *result)
{
    uint64_t start = s_now_ns();
    uint64_t warmup_end = start + (uint64_t)(config->warmup_seconds * (double)NS_PER_S);
    uint64_t window_ns = (uint64_t)(config->seconds * (double)NS_PER_S);
    uint64_t measure_start = 0, measure_end = 0, completed = 0, outstanding = 0;
    double cpu_start = 0.0, cpu_end = 0.0;
    bool measuring = false, stopped = false;
    uint64_t messages = config->outstanding / self->batch ? config->outstanding / self->batch : 1;
    for (uint64_t index = 0; index < messages; index++) {
        if (s_load_send(self, self->batch) != 0)
            return -1;
        outstanding += self->batch;
    }
    uint64_t last_progress = s_now_ns();
    while (!stopped || outstanding > 0) {
        uint64_t ids[MAX_BATCH], sents[MAX_BATCH];
        int rc = s_load_take(self, ids, sents);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            if (s_now_ns() - last_progress >= self->timeout_ns) {
                if (stopped) {
                    //  The figures are taken; only the clean-up is short.
                    s_log("load", "%" PRIu64 " replies never came back", outstanding);
                    break;
                }
                s_log("load", "no reply for %.1f s", (double)self->timeout_ns / NS_PER_S);
                return -1;
            }
            if (s_load_wait(self, last_progress + self->timeout_ns) != 0)
                return -1;
            continue;
        }
        uint64_t now = s_now_ns();
        last_progress = now;
        outstanding -= (uint64_t)rc;
        if (!measuring && !stopped && now >= warmup_end) {
            measuring = true;
            measure_start = now;
            cpu_start = s_cpu_seconds();
        }
        if (measuring) {
            if (now - measure_start < window_ns) {
                for (int task = 0; task < rc; task++)
                    if (s_load_record(self, now - sents[task]) != 0)
                        return -1;
                completed += (uint64_t)rc;
            } else {
                measuring = false;
                stopped = true;
                measure_end = measure_start + window_ns;
                cpu_end = s_cpu_seconds();
            }
        }
        //  After the window, let what is in flight drain so the broker and
        //  workers are idle for whatever the benchmark runs next.
        if (!stopped) {
            if (s_load_send(self, (uint32_t)rc) != 0)
                return -1;
            outstanding += (uint64_t)rc;
        }
    }
    result->tasks = completed;
    result->elapsed_ns = measure_end - measure_start;
    result->cpu_s = cpu_end - cpu_start;
    return 0;
}

//  Models: one request of a phase.  Upload: a chunk (the shared upload
//  buffer, header first, answered with the usual reply); download: a
//  32-byte header asking for size bytes back.
static int s_model_send(s_load_t *self, const unsigned char *upload, size_t size, bool down)
{
    const char command = CMD_REQUEST;
    zmq_msg_t frame;
    int rc;
    if (down) {
        unsigned char payload[PAYLOAD_SIZE];
        memset(payload, 0, sizeof payload);
        uint32_t bulk = (uint32_t)size;
        memcpy(payload + OFFSET_BULK, &bulk, sizeof bulk);
        rc = zmq_msg_init_size(&frame, sizeof payload);
        if (rc == 0)
            memcpy(zmq_msg_data(&frame), payload, sizeof payload);
    } else
        rc = zmq_msg_init_data(&frame, (void *)upload, size, NULL, NULL);
    if (rc != 0 || zmq_send(self->socket, &command, 1, ZMQ_SNDMORE) == -1 ||
        zmq_msg_send(&frame, self->socket, 0) == -1) {
        s_log("load", "send: %s", zmq_strerror(errno));
        zmq_msg_close(&frame);
        return -1;
    }
    return 0;
}

//  A reply of a model phase: its payload size (-1 on error, 0 when none).
static int64_t s_model_take(s_load_t *self, bool down)
{
    zmq_msg_t frames[MAX_FRAMES];
    size_t count = 0;
    int got = s_load_receive(self, frames, &count);
    if (got <= 0)
        return got;
    int64_t size = count == 1 ? (int64_t)zmq_msg_size(&frames[0]) : -1;
    if (size >= 0 && !down) {
        uint64_t sum = 0;
        if (size == PAYLOAD_SIZE)
            memcpy(&sum, (const unsigned char *)zmq_msg_data(&frames[0]) + OFFSET_RESULT,
                   sizeof sum);
        if (sum != self->expected)
            size = -1;
    }
    if (size < 0)
        s_log("load", "wrong reply (%zu frames)", count);
    s_close_frames(frames, count);
    return size == 0 ? -1 : size;
}

//  One phase: requests chunks of every task's model, at most outstanding
//  at once.  Returns 0, or -1 (the bytes that came back are checked).
static int s_model_phase(s_load_t *self, const s_load_config_t *config, const unsigned char *upload,
                         bool down)
{
    uint64_t chunks = (config->model_bytes + config->chunk - 1) / config->chunk;
    uint64_t last = config->model_bytes - (chunks - 1) * config->chunk;
    uint64_t total = chunks * config->tasks, sent = 0, received = 0, bytes = 0;
    uint64_t last_progress = s_now_ns();
    while (received < total) {
        while (sent < total && sent - received < config->outstanding) {
            size_t size = (size_t)(sent % chunks == chunks - 1 ? last : config->chunk);
            if (s_model_send(self, upload, size, down) != 0)
                return -1;
            sent++;
        }
        int64_t got = s_model_take(self, down);
        if (got < 0)
            return -1;
        if (got == 0) {
            if (s_now_ns() - last_progress >= self->timeout_ns) {
                s_log("load", "no reply for %.1f s (%" PRIu64 "/%" PRIu64 " chunks)",
                      (double)self->timeout_ns / NS_PER_S, received, total);
                return -1;
            }
            if (s_load_wait(self, last_progress + self->timeout_ns) != 0)
                return -1;
            continue;
        }
        received++;
        bytes += (uint64_t)got;
        last_progress = s_now_ns();
    }
    if (down && bytes != config->model_bytes * config->tasks) {
        s_log("load", "%" PRIu64 " bytes came back where %" PRIu64 " were due", bytes,
              config->model_bytes * config->tasks);
        return -1;
    }
    return 0;
}

//  Model rounds: every task's model out, then every task's model back; one
//  latency sample per round.
static int s_load_models(s_load_t *self, const s_load_config_t *config, s_load_result_t *result)
{
    unsigned char *upload = malloc((size_t)config->chunk);
    if (!upload) {
        s_log("load", "out of memory");
        return -1;
    }
    memset(upload, 0x33, (size_t)config->chunk);
    memset(upload, 0, PAYLOAD_SIZE);
    upload[OFFSET_TERMS] = FIB_TERMS;
    int rc = 0;
    uint64_t measure_start = 0;
    double cpu_start = 0.0;
    for (uint64_t round = 0; rc == 0 && round < config->warmup_rounds + config->rounds; round++) {
        uint64_t start = s_now_ns();
        if (round == config->warmup_rounds) {
            measure_start = start;
            cpu_start = s_cpu_seconds();
        }
        rc = s_model_phase(self, config, upload, false);
        if (rc == 0)
            rc = s_model_phase(self, config, upload, true);
        if (rc == 0 && round >= config->warmup_rounds)
            rc = s_load_record(self, s_now_ns() - start);
    }
    result->tasks = config->tasks * config->rounds;
    result->elapsed_ns = s_now_ns() - measure_start;
    result->cpu_s = s_cpu_seconds() - cpu_start;
    //  The last frames over the upload buffer go with the socket.
    zmq_close(self->socket);
    self->socket = NULL;
    free(upload);
    return rc;
}

static void s_load_usage(void)
{
    printf("Usage: " PROGRAM " load --connect EP --mode round --tasks T --rounds R\n"
           "       " PROGRAM " load --connect EP --mode stream --outstanding O --seconds S\n"
           "       " PROGRAM " load --connect EP --mode model --tasks T --rounds R\n"
           "                      --model-bytes B [--chunk C] [--outstanding O]\n"
           "Drive the broker from one DEALER socket and print one line of JSON:\n"
           "  {\"mode\", \"tasks\", \"seconds\", \"tasks_per_s\",\n"
           "   \"latency_us\": {\"p50\", \"p90\", \"p99\", \"max\"}, \"cpu_s\"}\n"
           "Latency is per round in round mode and per request in stream mode; tasks,\n"
           "seconds and cpu_s (user + system CPU of this process) cover the measured\n"
           "part only, after the warm-up.\n"
           "\n"
           "  --connect EP          broker endpoint\n"
           "  --mode round|stream   what to measure\n"
           "  --tasks T             round: requests sent at once per round, 1..%d\n"
           "  --rounds R            round: measured rounds, 1..%d\n"
           "  --warmup-rounds N     round: unmeasured rounds first (default %d)\n"
           "  --outstanding O       stream: tasks kept in flight, 1..%d\n"
           "  --seconds S           stream: measured seconds\n"
           "  --warmup-seconds S    stream: unmeasured seconds first (default %g)\n"
           "  --model-bytes B       model: bytes each task's model has, to it and back\n"
           "  --chunk C             model: bytes per chunk (default %u)\n"
           "                        (model: requests in flight, default 4 per task)\n"
           "  --window W            round: requests unanswered at most, 1..%d (default:\n"
           "                        all of a round's at once)\n"
           "  --batch N             round, stream: tasks per message both ways, 1..%d\n"
           "                        (default 1; a batch takes one slot of a worker)\n"
           "  --timeout S           fail when no reply comes for S seconds (default %g)\n"
           "  -h, --help            show this help and exit\n"
           "\n"
           "Exit status 0, 1 on failure (or SIGINT/SIGTERM), 2 on bad usage.\n",
           MAX_TASKS, MAX_ROUNDS, DEFAULT_WARMUP_ROUNDS, MAX_TASKS, DEFAULT_WARMUP_SECONDS,
           DEFAULT_CHUNK, MAX_TASKS, MAX_BATCH, DEFAULT_TIMEOUT_S);
}

static int s_load_main(int argc, char **argv)
{
    static const char role[] = "load";
    enum {
        OPT_CONNECT = 256,
        OPT_MODE,
        OPT_TASKS,
        OPT_ROUNDS,
        OPT_WARMUP_ROUNDS,
        OPT_OUTSTANDING,
        OPT_SECONDS,
        OPT_WARMUP_SECONDS,
        OPT_TIMEOUT,
        OPT_MODEL_BYTES,
        OPT_CHUNK,
        OPT_BATCH,
        OPT_WINDOW,
    };
    static const struct option options[] = {
        {"connect", required_argument, NULL, OPT_CONNECT},
        {"mode", required_argument, NULL, OPT_MODE},
        {"tasks", required_argument, NULL, OPT_TASKS},
        {"rounds", required_argument, NULL, OPT_ROUNDS},
        {"warmup-rounds", required_argument, NULL, OPT_WARMUP_ROUNDS},
        {"outstanding", required_argument, NULL, OPT_OUTSTANDING},
        {"seconds", required_argument, NULL, OPT_SECONDS},
        {"warmup-seconds", required_argument, NULL, OPT_WARMUP_SECONDS},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"model-bytes", required_argument, NULL, OPT_MODEL_BYTES},
        {"chunk", required_argument, NULL, OPT_CHUNK},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *endpoint = NULL;
    s_load_config_t config = {.mode = MODE_NONE,
                              .warmup_rounds = DEFAULT_WARMUP_ROUNDS,
                              .warmup_seconds = DEFAULT_WARMUP_SECONDS};
    double timeout_s = DEFAULT_TIMEOUT_S;
    uint32_t batch = 1;
    const char *round_flag = NULL, *stream_flag = NULL; //  last seen, for mixing errors
    int option;
    while ((option = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (option) {
        case OPT_CONNECT:
            endpoint = s_endpoint(role, "--connect", optarg, ZFED_ENDPOINT_CONNECT);
            break;
        case OPT_MODE:
            if (strcmp(optarg, "round") == 0)
                config.mode = MODE_ROUND;
            else if (strcmp(optarg, "stream") == 0)
                config.mode = MODE_STREAM;
            else if (strcmp(optarg, "model") == 0)
                config.mode = MODE_MODEL;
            else
                s_fail_usage(role, "--mode: '%s' is not round, stream or model", optarg);
            break;
        case OPT_TASKS:
            config.tasks = s_parse_count(role, "--tasks", optarg, 1, MAX_TASKS);
            round_flag = "--tasks";
            break;
        case OPT_ROUNDS:
            config.rounds = s_parse_count(role, "--rounds", optarg, 1, MAX_ROUNDS);
            round_flag = "--rounds";
            break;
        case OPT_WARMUP_ROUNDS:
            config.warmup_rounds = s_parse_count(role, "--warmup-rounds", optarg, 0, MAX_ROUNDS);
            round_flag = "--warmup-rounds";
            break;
        case OPT_OUTSTANDING:
            config.outstanding = s_parse_count(role, "--outstanding", optarg, 1, MAX_TASKS);
            stream_flag = "--outstanding";
            break;
        case OPT_SECONDS:
            config.seconds = s_parse_seconds(role, "--seconds", optarg, 0.001, MAX_SECONDS);
            stream_flag = "--seconds";
            break;
        case OPT_WARMUP_SECONDS:
            config.warmup_seconds =
                s_parse_seconds(role, "--warmup-seconds", optarg, 0.0, MAX_SECONDS);
            stream_flag = "--warmup-seconds";
            break;
        case OPT_TIMEOUT:
            timeout_s = s_parse_seconds(role, "--timeout", optarg, 0.001, MAX_SECONDS);
            break;
        case OPT_MODEL_BYTES:
            config.model_bytes =
                s_parse_count(role, "--model-bytes", optarg, MIN_CHUNK, MAX_MODEL_BYTES);
            break;
        case OPT_CHUNK:
            config.chunk = s_parse_count(role, "--chunk", optarg, MIN_CHUNK, MAX_CHUNK);
            break;
        case OPT_BATCH:
            batch = (uint32_t)s_parse_count(role, "--batch", optarg, 1, MAX_BATCH);
            break;
        case OPT_WINDOW:
            config.window = s_parse_count(role, "--window", optarg, 1, MAX_TASKS);
            round_flag = "--window";
            break;
        case 'h':
            s_load_usage();
            return EXIT_OK;
        default:
            s_bad_option(role, argv, option);
        }
    }
    if (optind < argc)
        s_fail_usage(role, "unexpected argument '%s'", argv[optind]);
    if (!endpoint)
        s_fail_usage(role, "--connect is required");
    if (config.mode == MODE_NONE)
        s_fail_usage(role, "--mode is required (round, stream or model)");
    if (config.mode != MODE_MODEL && (config.model_bytes || config.chunk))
        s_fail_usage(role, "--model-bytes and --chunk are for --mode model");
    if (config.mode == MODE_MODEL && batch > 1)
        s_fail_usage(role, "--batch is for --mode round and stream");
    if (config.mode == MODE_MODEL) {
        if (config.tasks == 0 || config.rounds == 0 || config.model_bytes == 0)
            s_fail_usage(role, "--mode model needs --tasks, --rounds and --model-bytes");
        if (config.chunk == 0)
            config.chunk = DEFAULT_CHUNK;
        if (config.outstanding == 0)
            config.outstanding = 4 * config.tasks;
    } else if (config.mode == MODE_ROUND) {
        if (stream_flag)
            s_fail_usage(role, "%s is for --mode stream", stream_flag);
        if (config.tasks == 0)
            s_fail_usage(role, "--mode round needs --tasks");
        if (config.rounds == 0)
            s_fail_usage(role, "--mode round needs --rounds");
    } else {
        if (round_flag)
            s_fail_usage(role, "%s is for --mode round", round_flag);
        if (config.outstanding == 0)
            s_fail_usage(role, "--mode stream needs --outstanding");
        if (config.seconds == 0.0)
            s_fail_usage(role, "--mode stream needs --seconds");
    }

    s_load_t load;
    memset(&load, 0, sizeof load);
    load.timeout_ns = (uint64_t)(timeout_s * (double)NS_PER_S);
    load.expected = s_fib_sum(FIB_TERMS);
    load.batch = batch;
    load.context = zmq_ctx_new();
    if (!load.context) {
        s_log(role, "zmq_ctx_new: %s", zmq_strerror(errno));
        return EXIT_FAILED;
    }
    int rc = EXIT_FAILED;
    s_load_result_t result = {0, 0, 0.0};
    load.socket = zmq_socket(load.context, ZMQ_DEALER);
    if (!load.socket || s_socket_defaults(load.socket) != 0) {
        s_log(role, "socket setup: %s", zmq_strerror(errno));
    } else if (zmq_connect(load.socket, endpoint) != 0) {
        s_log(role, "cannot connect to %s: %s", endpoint, zmq_strerror(errno));
    } else if ((config.mode == MODE_ROUND   ? s_load_rounds(&load, &config, &result)
                : config.mode == MODE_MODEL ? s_load_models(&load, &config, &result)
                                            : s_load_stream(&load, &config, &result)) == 0) {
        qsort(load.samples, load.sample_count, sizeof *load.samples, s_compare_u64);
        double seconds = (double)result.elapsed_ns / (double)NS_PER_S;
        printf("{\"mode\":\"%s\",\"tasks\":%" PRIu64 ",\"seconds\":%.6f,\"tasks_per_s\":%.1f,"
               "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
               "\"cpu_s\":%.3f}\n",
               config.mode == MODE_ROUND   ? "round"
               : config.mode == MODE_MODEL ? "model"
                                           : "stream",
               result.tasks, seconds, seconds > 0.0 ? (double)result.tasks / seconds : 0.0,
               s_percentile_us(load.samples, load.sample_count, 50),
               s_percentile_us(load.samples, load.sample_count, 90),
               s_percentile_us(load.samples, load.sample_count, 99),
               s_percentile_us(load.samples, load.sample_count, 100), result.cpu_s);
        if (fflush(stdout) == 0)
            rc = EXIT_OK;
        else
            s_log(role, "cannot write the result: %s", strerror(errno));
    }
    if (load.socket)
        zmq_close(load.socket);
    zmq_ctx_term(load.context);
    free(load.samples);
    return rc;
}

// ---------------------------------------------------------------------

static void s_usage(void)
{
    printf("Usage: " PROGRAM " ROLE [OPTION]...\n"
           "Bare-libzmq baseline for zfed's benchmark: the same client -> broker ->\n"
           "worker -> broker -> client path, in plain libzmq.  Roles, one process each:\n"
           "\n"
           "  broker   --bind EP [--endpoint-file FILE] [--credit K]\n"
           "  workers  --connect EP --count N [--credit K] [--threads T]\n"
           "  load     --connect EP --mode round --tasks T --rounds R\n"
           "  load     --connect EP --mode stream --outstanding O --seconds S [--batch N]\n"
           "  load     --connect EP --mode model --tasks T --rounds R --model-bytes B\n"
           "\n"
           "'" PROGRAM " ROLE --help' describes each role.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2)
        s_fail_usage(NULL, "a role is required: broker, workers or load");
    const char *role = argv[1];
    if (strcmp(role, "-h") == 0 || strcmp(role, "--help") == 0) {
        s_usage();
        return EXIT_OK;
    }
    int (*role_main)(int, char **) = NULL;
    if (strcmp(role, "broker") == 0)
        role_main = s_broker_main;
    else if (strcmp(role, "workers") == 0)
        role_main = s_workers_main;
    else if (strcmp(role, "load") == 0)
        role_main = s_load_main;
    else
        s_fail_usage(NULL, "unknown role '%s' (broker, workers or load)", role);
    if (s_signals_install() != 0) {
        fprintf(stderr, PROGRAM ": cannot install signal handlers: %s\n", strerror(errno));
        return EXIT_FAILED;
    }
    //  The role parses its own options, with itself as argv[0].
    opterr = 0;
    optind = 1;
    return role_main(argc - 1, argv + 1);
}
