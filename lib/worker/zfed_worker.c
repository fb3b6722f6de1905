/*  zfed_worker - Majordomo workers: one I/O thread, a pool of compute threads.

    The I/O thread owns every socket.  A REQUEST becomes a job (its address
    frame and body, moved, not copied) that goes to an idle compute thread
    as a pointer over an inproc pipe, and comes back with its reply bytes.
    Each job remembers the generation of the connection it came on: a reply
    finished after its connection was reset (broker restart, DISCONNECT) is
    dropped, since the new broker session never issued that request.

    With threads == 0 jobs run inline on the I/O thread: fastest for tiny
    tasks, at the cost of heartbeats pausing while a task runs.

    Model services add two sockets to the I/O thread's poll set: the
    process's blob service (results held by reference) and its fetcher.  A
    job whose global model is neither in its data frame nor in the cache
    comes back from its compute thread with need_fetch; the I/O thread
    fetches that model once (however many tasks wait for it), copying each
    chunk into the model's buffer and hashing the data in order as it
    fills, and puts it in the cache when it is whole and matches its
    sha256; the waiting jobs then run again with it.  A result over 4 MiB
    is held by the blob service before the reply that names it leaves.
*/
#include "zfed/zfed_worker.h"
#include "zfed/zfed_batch.h"
#include "zfed/zfed_blob_server.h"
#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_fetcher.h"
#include "zfed/zfed_sha256.h"
#include "wire/zfed_frames.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_mdp.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_signal.h"
#include "zfed/zfed_util.h"
#include "core/zfed_list.h"
#include "transport/zfed_curve.h"
#include "transport/zfed_linkmon.h"
#include "transport/zfed_mdpw.h"
#include "worker/zfed_model_cache.h"
#include "worker/zfed_task.h"

#include <czmq.h>
#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

//  Messages read from one connection per wake-up, so one busy connection
//  cannot starve the others or the timers.
#define DRAIN_BATCH 64
//  Longest reason text we keep from a failed decode.
#define REASON_MAX 256
//  ZeroMQ sockets and open files a pool needs beyond its own: the
//  embedding program's, and libzmq's I/O thread.
#define SOCKETS_SPARE 16
//  A model service's own sockets: its blob service and its fetcher.
#define MODEL_SOCKETS 2
#define FILES_SPARE   64
//  Finished jobs kept for the next requests, with their buffers' room: a
//  job per task was a calloc and two buffers' allocations per task.
#define SPARE_JOBS 64
//  A job whose reply or outputs buffer grew past this is freed, not kept.
#define SPARE_BUFFER_MAX (64 * 1024)
//  A batch's working arrays are kept with their job up to this many items.
#define SPARE_BATCH_ROOM 64

//  A batch's working arrays, kept with its job between batches: a batch
//  of 8 was 13 allocations and as many frees, and its replies' buffers
//  each grew from nothing.
typedef struct {
    zfed_view_t items[ZFED_BATCH_MAX];
    size_t room;              //  entries in each array below
    msgpack_sbuffer *replies; //  per item, initialised
    zfed_view_t *answers;
    zfed_msg_t **tasks;
    bool *failed;
} batch_scratch_t;

typedef struct _connection_t connection_t;

typedef struct {
    zfed_link_t link; //  in the pending queue while no compute thread is idle
    connection_t *connection;
    uint64_t generation;
    uint8_t address[ZFED_MDP_ADDRESS_MAX];
    size_t address_size;
    bool compact; //  the REQUEST came compact: so goes its REPLY
    zmq_msg_t body;
    zmq_msg_t data; //  a model task's data frame (its inline global), or empty
    msgpack_sbuffer reply;
    msgpack_sbuffer outputs; //  the service's scratch buffer
    batch_scratch_t *batch;  //  NULL until the job's first batch
    bool is_error;
    unsigned items;  //  task bodies answered (a batch holds several)
    unsigned errors; //  of which answered with an error body
    zfed_model_job_t model;
} job_t;

struct _connection_t {
    zfed_worker_t *owner;
    unsigned index;
    char name[ZFED_WORKER_NAME_MAX + 1];
    char registered[ZFED_MDP_SERVICE_MAX + 1]; //  MDP service name in READY
    zfed_mdpw_t mdpw;
    unsigned in_flight;
};

//  A global model being fetched, and the jobs that wait for it.
typedef struct {
    zfed_link_t link;
    zfed_descriptor_t descriptor;
    zfed_model_t *model; //  filled chunk by chunk
    zfed_fetch_t *fetch;
    zfed_sha256_t *hash; //  over the data in order, as far as it has arrived
    uint8_t *arrived;    //  per chunk
    uint64_t hashed;     //  chunks hashed so far
    int64_t started_us;
    zfed_link_t waiters;
} download_t;

typedef struct {
    zactor_t *actor;
    void *handle;
    bool busy;
} compute_t;

struct _zfed_worker_t {
    zfed_worker_config_t config;
    const zfed_service_t *service;
    zfed_curve_client_t *curve;
    //  The monitor of connection 0: every connection has the same broker
    //  and key, so one tells why the broker refuses them all.
    zfed_linkmon_t *linkmon;
    int64_t role_warned_at_ms;
    bool told_plain_answer; //  said once that our compact offer got MDP/0.1
    connection_t *connections;
    compute_t *computes;
    zfed_link_t pending;
    zfed_link_t spare_jobs; //  SPARE_JOBS at most, I/O thread only
    size_t spare_count;
    zmq_pollitem_t *items;
    struct pollfd *pollfds;         //  per poll item, for s_poll's shortcut
    connection_t **item_connection; //  per poll item: its connection, or NULL
    size_t item_count;
    bool items_dirty;
    atomic_bool stopping; //  zfed_worker_stop, from any thread
    int64_t tick_at_ms;
    zfed_frames_t frames;
    zfed_worker_stats_t stats;
    //  Model services (NULL otherwise).
    zfed_blob_server_t *blob;
    zfed_fetcher_t *fetcher;
    zfed_model_cache_t *cache;
    zfed_model_runner_t runner;
    zfed_link_t downloads;
};

//  ---------------------------------------------------------------------
//  Executing a task (compute thread or inline)

//  Writes a whole text with one write(2), so pyramids from several
//  threads or processes sharing a terminal never interleave.
static void s_print(const char *text)
{
    size_t size = strlen(text);
    while (size > 0) {
        ssize_t written = write(STDOUT_FILENO, text, size);
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            return;
        text += written;
        size -= (size_t)written;
    }
}

static void s_show(const connection_t *connection, const zfed_msg_t *task, const char *display,
                   uint64_t compute_us)
{
    size_t size = strlen(display) + 256;
    char *text = malloc(size);
    if (!text)
        return;
    snprintf(text, size, "--- %s: job %s round %u task %u (%" PRIu64 " us)\n%s", connection->name,
             zfed_msg_job_id(task), zfed_msg_round(task), zfed_msg_task_id(task), compute_us,
             display);
    s_print(text);
    free(text);
}

//  --delay-ms: sleeps in short steps so SIGINT/SIGTERM still stop the
//  process within a second.
static void s_play_straggler(int delay_ms)
{
    enum { STEP_MS = 20 };
    int64_t until = zfed_clock_ms() + delay_ms;
    while (!zsys_interrupted && zfed_clock_ms() < until) {
        int64_t left = until - zfed_clock_ms();
        zclock_sleep((int)(left < STEP_MS ? left : STEP_MS));
    }
}

//  Runs the service on a decoded task; fills outputs or fault.
static int s_run_task(const zfed_worker_t *self, const connection_t *connection,
                      const zfed_msg_t *task, msgpack_sbuffer *outputs, uint64_t *compute_us,
                      zfed_fault_t *fault)
{
    //  Views into the decoded task: no copy, no second parse.
    const msgpack_object *given = zfed_msg_params_object(task);
    const msgpack_object *global = zfed_msg_global_object(task);
    msgpack_object params;
    msgpack_object_kv *storage = NULL;
    if (!given || !global) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory reading a task");
        return -1;
    }
    if (zfed_task_site_params(self->config.site, given, &params, &storage, fault) != 0)
        return -1;
    s_play_straggler(self->config.delay_ms);
    msgpack_packer packer;
    msgpack_packer_init(&packer, outputs, msgpack_sbuffer_write);
    char *display = NULL;
    int64_t started = zfed_clock_us();
    int rc = self->service->run(&params, zfed_msg_global_round(task), global, &packer,
                                self->config.pyramid ? &display : NULL, fault);
    *compute_us = (uint64_t)(zfed_clock_us() - started);
    if (rc == 0 && display)
        s_show(connection, task, display, *compute_us);
    free(display);
    free(storage);
    return rc;
}

//  Runs task, decoded from the body data (NULL: it did not decode, and
//  decoding data again says why), and writes its reply body (result or
//  error) into reply; outputs is the caller's scratch buffer.  Takes the
//  task.  Returns the number of errors (0 or 1).
static unsigned s_answer(const zfed_worker_t *self, const connection_t *connection,
                         zfed_msg_t *task, const void *data, size_t size, msgpack_sbuffer *outputs,
                         msgpack_sbuffer *reply)
{
    zfed_fault_t fault = {0};
    if (!task)
        task = zfed_task_decode(data, size, &fault);
    msgpack_sbuffer_clear(outputs);
    uint64_t compute_us = 0;
    int rc = task ? s_run_task(self, connection, task, outputs, &compute_us, &fault) : -1;
    //  The outputs come from our own service's packer: encode them as they
    //  are rather than check them again.
    if (rc == 0 &&
        zfed_msg_encode_result(reply, zfed_msg_job_id(task), zfed_msg_round(task),
                               zfed_msg_task_id(task), zfed_msg_attempt(task), connection->name,
                               compute_us, outputs->data, outputs->size) != 0) {
        zfed_fault_set(&fault, ZFED_ERR_TOO_LARGE, "", "the result does not fit in a %d-byte body",
                       ZFED_BODY_MAX);
        rc = -1;
    }
    if (rc != 0) {
        zfed_task_ids_t ids;
        zfed_task_ids(task, data, size, &ids);
        zfed_task_encode_error(connection->name, &ids, &fault, reply);
    }
    zfed_msg_destroy(&task);
    return rc == 0 ? 0 : 1;
}

//  Runs one task body and writes its reply body (result or error) into
//  reply.  Returns the number of errors (0 or 1).
static unsigned s_execute_body(const zfed_worker_t *self, const connection_t *connection,
                               const void *data, size_t size, msgpack_sbuffer *outputs,
                               msgpack_sbuffer *reply)
{
    zfed_fault_t ignored;
    return s_answer(self, connection, zfed_task_decode(data, size, &ignored), data, size, outputs,
                    reply);
}

//  Answers one item of a batch with fault, without running it.
static void s_refuse_item(const connection_t *connection, const zfed_view_t *item,
                          const zfed_fault_t *fault, msgpack_sbuffer *reply)
{
    zfed_task_ids_t ids;
    zfed_task_ids(NULL, item->data, item->size, &ids);
    msgpack_sbuffer_clear(reply);
    zfed_task_encode_error(connection->name, &ids, fault, reply);
}

//  The work a batch asks for in all (the service's cost model), read from
//  its tasks, decoded once here for the run (tasks[i]: NULL for an item
//  that is not a task, which costs nothing and is refused on its own).
static uint64_t s_batch_cost(const zfed_worker_t *self, const zfed_view_t *items, size_t count,
                             zfed_msg_t **tasks)
{
    uint64_t total = 0;
    for (size_t index = 0; index < count; index++) {
        zfed_fault_t ignored;
        tasks[index] = zfed_task_decode(items[index].data, items[index].size, &ignored);
        if (tasks[index] && self->service->cost)
            total = zfed_service_cost_add(
                total, zfed_service_cost(self->service, zfed_msg_params_object(tasks[index])));
    }
    return total;
}

//  Results that are fine alone can outgrow one body together.  From the
//  last item back, a result gives way to a 413 error asking for its task
//  alone until the replies fit; the batch keeps its length, so every task
//  still gets an answer.  Returns the number of results given up.
static unsigned s_fit_batch(const connection_t *connection, const zfed_view_t *items,
                            msgpack_sbuffer *replies, zfed_view_t *answers, bool *failed,
                            size_t count)
{
    unsigned given_up = 0;
    for (size_t index = count; index-- > 0;) {
        if (zfed_batch_encoded_size(answers, count) <= ZFED_BODY_MAX)
            break;
        if (failed[index])
            continue;
        zfed_fault_t fault;
        zfed_fault_set(&fault, ZFED_ERR_TOO_LARGE, "",
                       "the batch's results do not fit in a %d-byte body; send this task alone",
                       ZFED_BODY_MAX);
        s_refuse_item(connection, &items[index], &fault, &replies[index]);
        answers[index].data = (const uint8_t *)replies[index].data;
        answers[index].size = replies[index].size;
        failed[index] = true;
        given_up++;
    }
    if (given_up)
        zfed_warn(
            "%s: a batch's results outgrew one body; %u task(s) answered 413 to be sent alone",
            connection->name, given_up);
    return given_up;
}

//  MODELS.md 5: model tasks are never batched (a global model each).
static bool s_refuse_batched(const connection_t *connection, const zfed_view_t *item,
                             msgpack_sbuffer *reply)
{
    zfed_fault_t fault;
    zfed_fault_set(&fault, ZFED_ERR_MALFORMED, "",
                   "model services cannot be batched; send each task alone");
    s_refuse_item(connection, item, &fault, reply);
    return true;
}

static void s_batch_scratch_destroy(batch_scratch_t **scratch_p)
{
    batch_scratch_t *scratch = *scratch_p;
    if (!scratch)
        return;
    for (size_t index = 0; index < scratch->room; index++)
        msgpack_sbuffer_destroy(&scratch->replies[index]);
    free(scratch->replies);
    free(scratch->answers);
    free(scratch->tasks);
    free(scratch->failed);
    free(scratch);
    *scratch_p = NULL;
}

//  *scratch_p with room for count items (made or grown).  0, or -1 when
//  out of memory (what was there is kept).
static int s_batch_scratch_room(batch_scratch_t **scratch_p, size_t count)
{
    if (!*scratch_p && !(*scratch_p = calloc(1, sizeof **scratch_p)))
        return -1;
    batch_scratch_t *scratch = *scratch_p;
    if (count <= scratch->room)
        return 0;
    msgpack_sbuffer *replies = realloc(scratch->replies, count * sizeof *replies);
    if (replies)
        scratch->replies = replies;
    zfed_view_t *answers = realloc(scratch->answers, count * sizeof *answers);
    if (answers)
        scratch->answers = answers;
    zfed_msg_t **tasks = realloc(scratch->tasks, count * sizeof *tasks);
    if (tasks)
        scratch->tasks = tasks;
    bool *failed = realloc(scratch->failed, count * sizeof *failed);
    if (failed)
        scratch->failed = failed;
    if (!replies || !answers || !tasks || !failed)
        return -1;
    for (size_t index = scratch->room; index < count; index++)
        msgpack_sbuffer_init(&scratch->replies[index]);
    scratch->room = count;
    return 0;
}

//  A batch request: every item is a task body; the reply is a batch with
//  one reply body per item, in the same order.  The working arrays are
//  *scratch_p's, made or grown as the batch needs.
static unsigned s_execute_batch(const zfed_worker_t *self, const connection_t *connection,
                                const void *data, size_t size, batch_scratch_t **scratch_p,
                                msgpack_sbuffer *outputs, msgpack_sbuffer *reply,
                                unsigned *answered)
{
    char reason[REASON_MAX];
    size_t count = 0;
    unsigned errors = 0;
    *answered = 1;
    if (s_batch_scratch_room(scratch_p, 1) != 0) {
        zfed_error("%s: out of memory for a batch", connection->name);
        return 1;
    }
    zfed_view_t *items = (*scratch_p)->items;
    if (zfed_batch_decode(data, size, items, ZFED_BATCH_MAX, &count, reason, sizeof reason) != 0) {
        //  Not even a readable batch: one error body, as for a bad task.
        zfed_fault_t fault;
        zfed_fault_set(&fault, ZFED_ERR_MALFORMED, "", "bad batch: %s", reason);
        zfed_task_ids_t none = {0};
        zfed_task_encode_error(connection->name, &none, &fault, reply);
        return 1;
    }
    if (s_batch_scratch_room(scratch_p, count) != 0) {
        zfed_error("%s: out of memory for a batch", connection->name);
        return 1;
    }
    batch_scratch_t *scratch = *scratch_p;
    msgpack_sbuffer *replies = scratch->replies;
    zfed_view_t *answers = scratch->answers;
    zfed_msg_t **tasks = scratch->tasks;
    bool *failed = scratch->failed;
    //  A request that asks for more work than one may is refused whole,
    //  before any of it runs: every task gets the 413 that says so.
    uint64_t cost = s_batch_cost(self, items, count, tasks);
    zfed_fault_t costly = {0};
    if (!zfed_service_cost_allowed(self->service, cost)) {
        zfed_service_cost_fault(self->service, cost, count, &costly);
        zfed_warn("%s: refusing a batch of %zu tasks unrun: %s", connection->name, count,
                  costly.text);
    }
    for (size_t index = 0; index < count; index++) {
        msgpack_sbuffer_clear(&replies[index]);
        if (self->service->kind == ZFED_SERVICE_MODEL)
            failed[index] = s_refuse_batched(connection, &items[index], &replies[index]);
        else if (costly.code) {
            s_refuse_item(connection, &items[index], &costly, &replies[index]);
            failed[index] = true;
        } else {
            failed[index] = s_answer(self, connection, tasks[index], items[index].data,
                                     items[index].size, outputs, &replies[index]);
            tasks[index] = NULL; //  s_answer took it
        }
        errors += failed[index];
        answers[index].data = (const uint8_t *)replies[index].data;
        answers[index].size = replies[index].size;
    }
    if (count)
        *answered = (unsigned)count;
    errors += s_fit_batch(connection, items, replies, answers, failed, count);
    if (count && zfed_batch_encode(reply, answers, count) != 0) {
        zfed_error("%s: the batch's replies do not fit in one body", connection->name);
        msgpack_sbuffer_clear(reply);
        errors = (unsigned)count;
    }
    for (size_t index = 0; index < count; index++) {
        zfed_msg_destroy(&tasks[index]);
        //  A buffer that grew large is not kept for the next batch.
        if (replies[index].alloc > SPARE_BUFFER_MAX) {
            msgpack_sbuffer_destroy(&replies[index]);
            msgpack_sbuffer_init(&replies[index]);
        }
    }
    return errors;
}

static void s_execute(const zfed_worker_t *self, job_t *job)
{
    const void *data = zmq_msg_data(&job->body);
    size_t size = zmq_msg_size(&job->body);
    job->items = 1;
    if (zfed_batch_is(data, size))
        job->errors = s_execute_batch(self, job->connection, data, size, &job->batch, &job->outputs,
                                      &job->reply, &job->items);
    else if (self->service->kind == ZFED_SERVICE_MODEL) {
        s_play_straggler(self->config.delay_ms);
        job->errors = zfed_model_execute(&self->runner, job->connection->name, data, size,
                                         &job->model, &job->reply);
    } else
        job->errors = s_execute_body(self, job->connection, data, size, &job->outputs, &job->reply);
    job->is_error = job->errors > 0;
}

static void s_job_destroy(job_t **job_p)
{
    job_t *job = *job_p;
    if (!job)
        return;
    zfed_link_remove(&job->link);
    zmq_msg_close(&job->body);
    zmq_msg_close(&job->data);
    msgpack_sbuffer_destroy(&job->reply);
    msgpack_sbuffer_destroy(&job->outputs);
    s_batch_scratch_destroy(&job->batch);
    zfed_model_job_clear(&job->model);
    free(job);
    *job_p = NULL;
}

//  A job for a request of connection: a spare one, emptied when it was
//  put back, or a new one.  NULL when out of memory.
static job_t *s_job_new(zfed_worker_t *self, connection_t *connection)
{
    zfed_link_t *spare = zfed_list_first(&self->spare_jobs);
    job_t *job;
    if (spare) {
        zfed_link_remove(spare);
        self->spare_count--;
        job = zfed_container_of(spare, job_t, link);
    } else {
        job = calloc(1, sizeof *job);
        if (!job)
            return NULL;
        zfed_link_init(&job->link);
        zmq_msg_init(&job->body);
        zmq_msg_init(&job->data);
        msgpack_sbuffer_init(&job->reply);
        msgpack_sbuffer_init(&job->outputs);
    }
    job->connection = connection;
    job->generation = connection->mdpw.generation;
    return job;
}

//  Done with a job: kept as a spare (emptied, its buffers' room kept)
//  while there are fewer than SPARE_JOBS, else freed.  I/O thread only.
static void s_job_release(zfed_worker_t *self, job_t **job_p)
{
    job_t *job = *job_p;
    if (!job)
        return;
    if (self->spare_count >= SPARE_JOBS || job->reply.alloc > SPARE_BUFFER_MAX ||
        job->outputs.alloc > SPARE_BUFFER_MAX) {
        s_job_destroy(job_p);
        return;
    }
    *job_p = NULL;
    zfed_link_remove(&job->link);
    zmq_msg_close(&job->body);
    zmq_msg_close(&job->data);
    zmq_msg_init(&job->body);
    zmq_msg_init(&job->data);
    if (self->service->kind == ZFED_SERVICE_MODEL) { //  untouched otherwise
        zfed_model_job_clear(&job->model);
        memset(&job->model, 0, sizeof job->model);
    }
    msgpack_sbuffer_clear(&job->reply);
    msgpack_sbuffer_clear(&job->outputs);
    if (job->batch && job->batch->room > SPARE_BATCH_ROOM)
        s_batch_scratch_destroy(&job->batch);
    job->connection = NULL;
    job->generation = 0;
    job->address_size = 0;
    job->compact = false;
    job->is_error = false;
    job->items = 0;
    job->errors = 0;
    zfed_list_push_back(&self->spare_jobs, &job->link);
    self->spare_count++;
}

//  Compute thread: receives job pointers, runs them, sends them back.
static void s_compute_actor(zsock_t *pipe, void *args)
{
    const zfed_worker_t *self = args;
    void *handle = zsock_resolve(pipe);
    zsock_signal(pipe, 0);
    while (true) {
        zmq_msg_t message;
        zmq_msg_init(&message);
        if (zmq_msg_recv(&message, handle, 0) < 0) {
            zmq_msg_close(&message);
            if (errno == EINTR)
                continue;
            break;
        }
        //  A pointer-sized frame is a job; anything else ("$TERM") ends us.
        job_t *job = NULL;
        if (zmq_msg_size(&message) == sizeof job)
            memcpy(&job, zmq_msg_data(&message), sizeof job);
        zmq_msg_close(&message);
        if (!job)
            break;
        s_execute(self, job);
        while (zmq_send(handle, &job, sizeof job, 0) < 0 && errno == EINTR)
            ;
    }
    //  czmq's actor threads are detached: this one may outlive the
    //  process's exit handlers, so it hands back what libcrypto keeps per
    //  thread now rather than in a destructor that may never run.
    zfed_sha256_thread_done();
}

//  ---------------------------------------------------------------------
//  Connections

static void s_close(connection_t *connection, bool say_goodbye)
{
    if (!connection->mdpw.socket)
        return;
    zfed_mdpw_close(&connection->mdpw, say_goodbye);
    connection->owner->items_dirty = true;
}

static int s_open(connection_t *connection)
{
    if (zfed_mdpw_open(&connection->mdpw) != 0)
        return -1;
    connection->in_flight = 0;
    connection->owner->items_dirty = true;
    return 0;
}

//  Drops the socket and schedules a fresh one after the current back-off.
static void s_reconnect_later(connection_t *connection, const char *why)
{
    zfed_mdpw_reconnect_later(&connection->mdpw, why);
    connection->owner->items_dirty = true;
}

//  ---------------------------------------------------------------------
//  Jobs in and out

//  libzmq is done with a result sent inline (any thread).
static void s_result_sent(void *data, void *hint)
{
    zfed_model_t *model = hint;
    zfed_model_destroy(&model);
}

//  A model job's result before its reply goes: held by the blob service
//  (or, past the hold budget, the reply becomes error 507), or made the
//  data frame, over the result's own bytes.  True when data holds a
//  frame to send after the body.
static bool s_result_frame(zfed_worker_t *self, job_t *job, zmq_msg_t *data)
{
    zfed_model_job_t *model = &job->model;
    if (!model->result)
        return false;
    if (model->hold) {
        char reason[256];
        uint64_t size = zfed_model_nbytes(model->result);
        if (zfed_blob_server_hold(self->blob, model->result_id, &model->result, self->config.chunk,
                                  ZFED_HOLD_DEFAULT, reason, sizeof reason) == 0) {
            self->stats.held++;
            return false;
        }
        zfed_fault_t fault;
        zfed_fault_set(&fault, ZFED_ERR_INSUFFICIENT_STORAGE, "",
                       "cannot hold a result of %llu bytes within --hold-bytes %llu: %s",
                       (unsigned long long)size, (unsigned long long)self->config.hold_bytes,
                       reason);
        zfed_task_encode_error(job->connection->name, &model->ids, &fault, &job->reply);
        zfed_model_destroy(&model->result);
        self->stats.refused++;
        job->errors = 1;
        return false;
    }
    zfed_model_t *result = model->result;
    if (zmq_msg_init_data(data, zfed_model_data(result), (size_t)zfed_model_nbytes(result),
                          s_result_sent, result) != 0)
        return false;
    model->result = NULL; //  the frame's now
    return true;
}

static void s_send_reply(zfed_worker_t *self, job_t *job)
{
    connection_t *connection = job->connection;
    zfed_mdpw_t *mdpw = &connection->mdpw;
    if (job->generation != mdpw->generation || !mdpw->socket) {
        self->stats.abandoned++;
        return;
    }
    connection->in_flight--;
    zmq_msg_t data;
    bool has_data = s_result_frame(self, job, &data);
    self->stats.errors += job->errors;
    self->stats.tasks += job->items - job->errors;
    int sent = job->compact ? zfed_mdpw_reply_compact(mdpw, job->address, job->address_size)
                            : zfed_mdpw_reply_envelope(mdpw, job->address, job->address_size);
    if (sent != 0) {
        //  The send timeout passed: the broker is not reading.  Start over
        //  on a fresh socket; the broker will notice our silence and hand
        //  the request to someone else, rather than wait on a reply that
        //  will never come while we keep heartbeating.
        zfed_warn("%s: reply could not be sent: %s", connection->name, zmq_strerror(errno));
        if (has_data)
            zmq_msg_close(&data);
        if (job->model.hold)
            zfed_blob_server_remove(self->blob, job->model.result_id);
        s_reconnect_later(connection, "cannot deliver a reply");
        return;
    }
    zfed_send_bytes(mdpw->handle, job->reply.data, job->reply.size, has_data ? ZMQ_SNDMORE : 0);
    if (has_data && zmq_msg_send(&data, mdpw->handle, 0) < 0)
        zmq_msg_close(&data);
}

static compute_t *s_idle_compute(zfed_worker_t *self)
{
    for (unsigned index = 0; index < self->config.threads; index++)
        if (!self->computes[index].busy)
            return &self->computes[index];
    return NULL;
}

static void s_hand_to_compute(zfed_worker_t *self, compute_t *compute, job_t *job)
{
    compute->busy = true;
    while (zmq_send(compute->handle, &job, sizeof job, 0) < 0 && errno == EINTR)
        ;
}

static void s_await_global(zfed_worker_t *self, job_t *job);

//  A job is done with its compute thread: its reply goes, or it waits for
//  its global model.
static void s_finish(zfed_worker_t *self, job_t *job)
{
    if (job->model.need_fetch) {
        s_await_global(self, job);
        return;
    }
    s_send_reply(self, job);
    s_job_release(self, &job);
}

static void s_submit(zfed_worker_t *self, job_t *job)
{
    if (self->config.threads == 0) {
        s_execute(self, job);
        s_finish(self, job);
        return;
    }
    compute_t *compute = s_idle_compute(self);
    if (compute)
        s_hand_to_compute(self, compute, job);
    else
        zfed_list_push_back(&self->pending, &job->link);
}

static void s_compute_done(zfed_worker_t *self, compute_t *compute)
{
    job_t *job = NULL;
    zmq_msg_t message;
    zmq_msg_init(&message);
    if (zmq_msg_recv(&message, compute->handle, ZMQ_DONTWAIT) >= 0 &&
        zmq_msg_size(&message) == sizeof job)
        memcpy(&job, zmq_msg_data(&message), sizeof job);
    zmq_msg_close(&message);
    if (!job)
        return;
    compute->busy = false;
    s_finish(self, job);
    zfed_link_t *next = compute->busy ? NULL : zfed_list_first(&self->pending);
    if (next) {
        zfed_link_remove(next);
        s_hand_to_compute(self, compute, zfed_container_of(next, job_t, link));
    }
}

//  ---------------------------------------------------------------------
//  Global models by reference

//  Answers a job that waited for a global with 503: the controller sends
//  the task again (MODELS.md 8).
static void s_fail_waiter(zfed_worker_t *self, job_t *job, const char *reason)
{
    zfed_fault_t fault;
    zfed_fault_set(&fault, ZFED_ERR_UNAVAILABLE, "", "cannot fetch the global model: %s", reason);
    zfed_task_encode_error(job->connection->name, &job->model.ids, &fault, &job->reply);
    job->errors = 1;
    job->is_error = true;
    s_send_reply(self, job);
    s_job_release(self, &job);
}

//  Runs a job again with the global it waited for (one use of it taken),
//  unless its connection was reset meanwhile.
static void s_resume(zfed_worker_t *self, job_t *job, zfed_cached_t *global)
{
    zfed_link_remove(&job->link);
    if (job->generation != job->connection->mdpw.generation) {
        zfed_cached_release(&global);
        self->stats.abandoned++;
        s_job_release(self, &job);
        return;
    }
    job->model.fetched = global;
    s_submit(self, job);
}

static void s_download_destroy(download_t **download_p)
{
    download_t *download = *download_p;
    zfed_link_remove(&download->link);
    zfed_fetch_destroy(&download->fetch);
    zfed_model_destroy(&download->model);
    zfed_sha256_destroy(&download->hash);
    zfed_descriptor_clear(&download->descriptor);
    free(download->arrived);
    free(download);
    *download_p = NULL;
}

static void s_download_failed(zfed_worker_t *self, download_t *download, const char *reason)
{
    zfed_warn("cannot fetch global model %02x%02x%02x%02x... from %s: %s",
              download->descriptor.id[0], download->descriptor.id[1], download->descriptor.id[2],
              download->descriptor.id[3], download->descriptor.source, reason);
    self->stats.fetch_failed++;
    zfed_link_t *link;
    while ((link = zfed_list_first(&download->waiters)) != NULL) {
        zfed_link_remove(link);
        s_fail_waiter(self, zfed_container_of(link, job_t, link), reason);
    }
    s_download_destroy(&download);
}

//  Every chunk arrived: checked against its sha256 (hashed as it came),
//  cached, and the waiting jobs run.
static void s_download_whole(zfed_worker_t *self, download_t *download)
{
    uint8_t digest[ZFED_SHA256_SIZE];
    if (download->hash && (zfed_sha256_final(download->hash, digest) != 0 ||
                           memcmp(digest, download->descriptor.sha256, sizeof digest) != 0)) {
        s_download_failed(self, download, "its data does not match its sha256");
        return;
    }
    zfed_cached_t *global =
        zfed_model_cache_put(self->cache, download->descriptor.id, &download->model);
    if (!global) {
        s_download_failed(self, download, "out of memory");
        return;
    }
    self->stats.fetched++;
    double seconds = (double)(zfed_clock_us() - download->started_us) / 1e6;
    zfed_info("fetched global model %02x%02x%02x%02x... from %s: %llu bytes in %.3f s "
              "(%.0f MB/s)%s",
              download->descriptor.id[0], download->descriptor.id[1], download->descriptor.id[2],
              download->descriptor.id[3], download->descriptor.source,
              (unsigned long long)download->descriptor.size, seconds,
              seconds > 0 ? (double)download->descriptor.size / seconds / 1e6 : 0.0,
              download->hash ? ", sha256 verified" : "");
    zfed_link_t *link;
    while ((link = zfed_list_first(&download->waiters)) != NULL)
        s_resume(self, zfed_container_of(link, job_t, link), zfed_cached_use(global));
    zfed_cached_release(&global);
    s_download_destroy(&download);
}

//  A chunk into the model's buffer; the hash moves on over every chunk
//  that is now contiguous with what it has seen.
static void s_download_chunk(download_t *download, zfed_chunk_t *chunk)
{
    uint8_t *data = zfed_model_data(download->model);
    uint64_t index = zfed_chunk_index(chunk);
    memcpy(data + zfed_chunk_offset(chunk), zfed_chunk_data(chunk), zfed_chunk_size(chunk));
    download->arrived[index] = 1;
    uint64_t chunks = zfed_descriptor_chunks(&download->descriptor);
    while (download->hash && download->hashed < chunks && download->arrived[download->hashed]) {
        uint64_t offset;
        size_t length;
        zfed_chunk_range(download->descriptor.size, download->descriptor.chunk, download->hashed,
                         &offset, &length);
        zfed_sha256_update(download->hash, data + offset, length);
        download->hashed++;
    }
}

static void s_fetcher_events(zfed_worker_t *self)
{
    zfed_fetch_event_t event;
    while (zfed_fetcher_next(self->fetcher, &event)) {
        download_t *download = event.user;
        switch (event.kind) {
        case ZFED_FETCH_EVENT_CHUNK:
            s_download_chunk(download, event.chunk);
            zfed_chunk_destroy(&event.chunk);
            break;
        case ZFED_FETCH_EVENT_WHOLE:
            s_download_whole(self, download);
            break;
        case ZFED_FETCH_EVENT_FAILED:
            s_download_failed(self, download, event.reason);
            break;
        case ZFED_FETCH_EVENT_RELEASED:
            break;
        }
    }
}

static download_t *s_download_find(zfed_worker_t *self, const uint8_t *id)
{
    for (zfed_link_t *link = self->downloads.next; link != &self->downloads; link = link->next) {
        download_t *download = zfed_container_of(link, download_t, link);
        if (memcmp(download->descriptor.id, id, ZFED_MODEL_ID_SIZE) == 0)
            return download;
    }
    return NULL;
}

//  Starts fetching descriptor's model; NULL with the reason.
static download_t *s_download_start(zfed_worker_t *self, const zfed_descriptor_t *descriptor,
                                    char *reason, size_t reason_size)
{
    //  Old globals no task uses go first: a worker holds the global it
    //  fetches, not also the one before it.
    zfed_model_cache_trim(self->cache);
    download_t *download = calloc(1, sizeof *download);
    if (!download) {
        snprintf(reason, reason_size, "out of memory");
        return NULL;
    }
    zfed_link_init(&download->link);
    zfed_link_init(&download->waiters);
    download->started_us = zfed_clock_us();
    zfed_list_push_back(&self->downloads, &download->link);
    zfed_layout_t *layout = NULL;
    if (zfed_descriptor_copy(&download->descriptor, descriptor) != 0 ||
        !(layout = zfed_layout_dup(descriptor->layout)) ||
        !(download->model = zfed_model_new_uninit(&layout)) ||
        !(download->arrived = calloc(zfed_descriptor_chunks(descriptor) + 1, 1)) ||
        (self->config.verify && !(download->hash = zfed_sha256_new()))) {
        snprintf(reason, reason_size, "out of memory for a model of %llu bytes",
                 (unsigned long long)descriptor->size);
        goto err;
    }
    download->fetch =
        zfed_fetcher_start(self->fetcher, descriptor, 0, download, reason, reason_size);
    if (!download->fetch)
        goto err;
    return download;
err:
    zfed_layout_destroy(&layout);
    s_download_destroy(&download);
    return NULL;
}

//  The job's global is by reference and was not cached: it waits for
//  the model's download (started now unless one is running).
static void s_await_global(zfed_worker_t *self, job_t *job)
{
    const zfed_descriptor_t *wanted = &job->model.global;
    zfed_cached_t *cached = zfed_model_cache_get(self->cache, wanted->id);
    if (cached) { //  fetched meanwhile for another task
        self->stats.cache_hits++;
        s_resume(self, job, cached);
        return;
    }
    download_t *download = s_download_find(self, wanted->id);
    char reason[256];
    if (!download)
        download = s_download_start(self, wanted, reason, sizeof reason);
    if (!download) {
        s_fail_waiter(self, job, reason);
        return;
    }
    zfed_list_push_back(&download->waiters, &job->link);
}

//  ---------------------------------------------------------------------
//  Requests

static void s_request(zfed_worker_t *self, connection_t *connection, const zfed_mdp_t *mdp,
                      bool compact)
{
    zfed_frames_t *frames = &self->frames;
    job_t *job = s_job_new(self, connection);
    if (!job) {
        zfed_error("%s: out of memory for a task", connection->name);
        return;
    }
    memcpy(job->address, mdp->address.data, mdp->address.size);
    job->address_size = mdp->address.size;
    job->compact = compact;
    connection->in_flight++;
    //  zfed bodies are one frame; a model task may have its data frame.
    bool model = self->service->kind == ZFED_SERVICE_MODEL;
    size_t frames_allowed = model ? 2 : 1;
    if (mdp->body_count < 1 || mdp->body_count > frames_allowed) {
        zfed_fault_t fault;
        zfed_fault_set(&fault, ZFED_ERR_MALFORMED, "", "%s",
                       model ? "a model task is one body frame and at most one data frame"
                             : "a zfed task body is exactly one frame");
        zfed_task_ids_t none = {0};
        zfed_task_encode_error(connection->name, &none, &fault, &job->reply);
        job->is_error = true;
        job->items = 1;
        job->errors = 1;
        s_send_reply(self, job);
        s_job_release(self, &job);
        return;
    }
    zmq_msg_move(&job->body, &frames->part[mdp->body_index]);
    if (mdp->body_count == 2) {
        zmq_msg_move(&job->data, &frames->part[mdp->body_index + 1]);
        job->model.data = zmq_msg_data(&job->data);
        job->model.data_size = zmq_msg_size(&job->data);
        job->model.has_data = true;
    }
    s_submit(self, job);
}

static void s_connection_message(zfed_worker_t *self, connection_t *connection)
{
    zfed_frames_t *frames = &self->frames;
    zfed_mdp_t mdp;
    const char *reason = "too many frames";
    //  A compact REQUEST only on a connection that offered them: a broker
    //  that sends one unasked is as wrong as one that breaks MDP.
    bool compact = frames->count > 0 && zfed_mdp_is_compact(frames->view[0]);
    bool unoffered = compact && !self->config.compact;
    if (unoffered)
        reason = "a compact frame, which this worker did not offer";
    if (frames->dropped > 0 || unoffered ||
        (compact
             ? zfed_mdp_parse_compact(frames->view, frames->count, ZFED_MDPW_REQUEST, &mdp, &reason)
             : zfed_mdp_parse_at_worker(frames->view, frames->count, &mdp, &reason)) != 0) {
        self->stats.malformed++;
        zfed_warn("%s: dropped a message from the broker: %s", connection->name, reason);
        return;
    }
    zfed_mdpw_t *mdpw = &connection->mdpw;
    bool accepted_before = mdpw->heard_since_ready;
    zfed_mdpw_heard(mdpw, mdp.command);
    if (!accepted_before && mdpw->heard_since_ready && connection->index == 0)
        self->items_dirty = true; //  the monitor leaves the poll set
    switch (mdp.command) {
    case ZFED_MDP_REQUEST:
        self->stats.compact += compact;
        //  A broker that answers our offer in MDP/0.1 may be a zfed-broker
        //  from before compact frames, which reads "credit=N compact=1" as
        //  credit 1: the operator hears it once (PROTOCOL.md 3).
        if (!compact && self->config.compact && self->config.credit > 1 &&
            !self->told_plain_answer) {
            self->told_plain_answer = true;
            zfed_info("%s: the broker sends MDP/0.1 requests to our compact offer: a zfed-broker "
                      "older than compact frames then gives us credit 1, not %u (run with "
                      "--no-compact against it)",
                      connection->name, self->config.credit);
        }
        s_request(self, connection, &mdp, compact);
        break;
    case ZFED_MDP_HEARTBEAT:
        break;
    case ZFED_MDP_DISCONNECT:
        //  A DISCONNECT before any sign that the broker took our READY,
        //  over a CURVE handshake it accepted: zfed's broker knows our key
        //  but not as a worker's.
        if (!accepted_before && self->curve &&
            mdpw->last_heard_ms - self->role_warned_at_ms >= ZFED_LINKMON_WARN_PERIOD_MS) {
            self->role_warned_at_ms = mdpw->last_heard_ms;
            zfed_warn("the broker at %s refused our READY: it knows our key, but not as a "
                      "worker's (is our public key in its --workers-dir, not its "
                      "--controllers-dir?)",
                      self->config.endpoint);
        }
        //  RFC 7: close the socket and register again on a new one.
        s_reconnect_later(connection, "broker sent DISCONNECT");
        break;
    default:
        self->stats.malformed++;
        zfed_warn("%s: unexpected %s from the broker ignored", connection->name,
                  zfed_mdp_command_name(mdp.command));
        break;
    }
}

static void s_connection_readable(zfed_worker_t *self, connection_t *connection)
{
    for (int handled = 0; handled < DRAIN_BATCH && connection->mdpw.socket; handled++) {
        if (zfed_frames_recv(&self->frames, connection->mdpw.handle, ZMQ_DONTWAIT) != 0) {
            //  Found nothing: libzmq processed the socket's commands first.
            connection->mdpw.drained = errno == EAGAIN;
            break;
        }
        connection->mdpw.drained = false;
        s_connection_message(self, connection);
        zfed_frames_close(&self->frames);
    }
}

//  ---------------------------------------------------------------------
//  Timers and the loop

//  Connection 0 has a socket its broker has not yet answered on.
static bool s_link_unproven(const zfed_worker_t *self)
{
    const zfed_mdpw_t *mdpw = &self->connections[0].mdpw;
    return mdpw->socket && !mdpw->heard_since_ready;
}

static void s_tick(zfed_worker_t *self, int64_t now)
{
    //  The monitor's events since the last tick (it is polled only while
    //  connection 0 is unproven), before a silent broker is judged on them.
    if (self->linkmon && !s_link_unproven(self))
        zfed_linkmon_handle(self->linkmon);
    for (unsigned index = 0; index < self->config.concurrency; index++) {
        connection_t *connection = &self->connections[index];
        bool had_socket = connection->mdpw.socket != NULL;
        if (zfed_mdpw_tick(&connection->mdpw, now)) {
            connection->in_flight = 0;
            self->items_dirty = true;
            if (connection->mdpw.generation > 1)
                self->stats.reconnects++;
        } else if (had_socket && !connection->mdpw.socket)
            self->items_dirty = true; //  the broker fell silent
    }
    zfed_model_pool_trim(now);
    //  A quarter interval: heartbeats leave at most 1.25 intervals apart.
    self->tick_at_ms =
        now + (self->config.heartbeat_ms / 4 > 0 ? self->config.heartbeat_ms / 4 : 1);
}

//  Earliest moment something is due: the next heartbeat tick, a pending
//  reconnect, the blob service's or the fetcher's timers.
static int64_t s_next_deadline(zfed_worker_t *self)
{
    int64_t deadline = self->tick_at_ms;
    for (unsigned index = 0; index < self->config.concurrency; index++) {
        connection_t *connection = &self->connections[index];
        if (!connection->mdpw.socket && connection->mdpw.reconnect_at_ms < deadline)
            deadline = connection->mdpw.reconnect_at_ms;
    }
    if (self->blob && zfed_blob_server_next_due(self->blob) < deadline)
        deadline = zfed_blob_server_next_due(self->blob);
    if (self->fetcher && zfed_fetcher_next_due(self->fetcher) < deadline)
        deadline = zfed_fetcher_next_due(self->fetcher);
    return deadline;
}

//  Item 0 is the signal pipe (or an inert entry), item 1 connection 0's
//  monitor, item 2 the blob service, item 3 the fetcher (each an inert
//  entry when there is none), then compute threads, then connections.
#define ITEM_MONITOR          1
#define ITEM_BLOB             2
#define ITEM_FETCHER          3
#define ITEMS_BEFORE_COMPUTES 4

static int s_rebuild_items(zfed_worker_t *self)
{
    size_t count = 0;
    int signal_fd = zfed_signal_fd();
    self->item_connection[count] = NULL;
    self->items[count++] = (zmq_pollitem_t){NULL, signal_fd >= 0 ? signal_fd : 0,
                                            (short)(signal_fd >= 0 ? ZMQ_POLLIN : 0), 0};
    //  The monitor only while connection 0 waits for its broker to take a
    //  READY: that is when a refused handshake needs explaining at once.
    //  A socket in the poll set costs two system calls per zmq_poll (its
    //  ZMQ_EVENTS, before and after the wait) even when it is silent, so
    //  once the broker answers, its events wait for the next tick.
    void *monitor =
        self->linkmon && s_link_unproven(self) ? zfed_linkmon_socket(self->linkmon) : NULL;
    void *blob = self->blob ? zfed_blob_server_socket(self->blob) : NULL;
    void *fetcher = self->fetcher ? zfed_fetcher_socket(self->fetcher) : NULL;
    void *extra[] = {monitor, blob, fetcher};
    for (size_t index = 0; index < sizeof extra / sizeof extra[0]; index++) {
        self->item_connection[count] = NULL;
        self->items[count++] =
            (zmq_pollitem_t){extra[index], 0, (short)(extra[index] ? ZMQ_POLLIN : 0), 0};
    }
    for (unsigned index = 0; index < self->config.threads; index++) {
        self->item_connection[count] = NULL;
        self->items[count] = (zmq_pollitem_t){self->computes[index].handle, 0, ZMQ_POLLIN, 0};
        count++;
    }
    for (unsigned index = 0; index < self->config.concurrency; index++) {
        if (!self->connections[index].mdpw.socket)
            continue;
        self->item_connection[count] = &self->connections[index];
        self->items[count] =
            (zmq_pollitem_t){self->connections[index].mdpw.handle, 0, ZMQ_POLLIN, 0};
        count++;
    }
    self->item_count = count;
    self->items_dirty = false;
    return 0;
}

//  The connection a readable poll item belongs to: O(1), from the table
//  built with the items (a scan of every connection per readable item was
//  O(n^2) per wake-up at 4,096 connections).  NULL when the connection was
//  closed earlier in this pass (its socket, and so the item, is stale).
static connection_t *s_connection_for_item(zfed_worker_t *self, size_t item)
{
    connection_t *connection = self->item_connection[item];
    return connection && connection->mdpw.socket &&
                   connection->mdpw.handle == self->items[item].socket
               ? connection
               : NULL;
}

//  Whether s_poll may wait on descriptors alone: no socket in the poll
//  set but connections, each drained (its last operation a receive that
//  found nothing, so its mailbox is quiet and its descriptor turns
//  readable at its next command).
static bool s_all_drained(zfed_worker_t *self)
{
    for (size_t item = ITEM_MONITOR; item < ITEMS_BEFORE_COMPUTES; item++)
        if (self->items[item].socket)
            return false;
    if (self->config.threads > 0)
        return false;
    for (size_t item = ITEMS_BEFORE_COMPUTES; item < self->item_count; item++) {
        connection_t *connection = s_connection_for_item(self, item);
        if (!connection || !connection->mdpw.drained)
            return false;
    }
    return true;
}

//  zmq_poll on the poll set, with one shortcut when every socket in it is
//  drained: one poll(2) on their mailboxes' descriptors (and the signal
//  pipe) until the next command.  zmq_poll would first poll every
//  descriptor without waiting and ask each socket for ZMQ_EVENTS: three
//  system calls per wake-up that can only find nothing.  A send may
//  process a command that says input arrived, so a connection that sent
//  since its last empty receive goes through zmq_poll.  A readable
//  mailbox is reported as input; the receive that follows finds out.
static int s_poll(zfed_worker_t *self, long wait)
{
    if (!s_all_drained(self))
        return zmq_poll(self->items, (int)self->item_count, wait);
    for (size_t item = 0; item < self->item_count; item++) {
        zmq_pollitem_t *entry = &self->items[item];
        int fd = entry->events ? entry->fd : -1; //  poll(2) skips a negative one
        size_t size = sizeof fd;
        if (entry->socket && zmq_getsockopt(entry->socket, ZMQ_FD, &fd, &size) != 0)
            return zmq_poll(self->items, (int)self->item_count, wait);
        self->pollfds[item] = (struct pollfd){fd, POLLIN, 0};
        entry->revents = 0;
    }
    int ready = poll(self->pollfds, (nfds_t)self->item_count, (int)wait);
    for (size_t item = 0; ready > 0 && item < self->item_count; item++)
        if (self->pollfds[item].revents)
            self->items[item].revents = ZMQ_POLLIN;
    return ready;
}

//  The model sockets' input and timers: the blob service's socket changes
//  when it reconnects, so the poll set is rebuilt then.
static void s_serve_models(zfed_worker_t *self, int64_t now)
{
    if (!self->blob)
        return;
    if (self->items[ITEM_BLOB].revents & ZMQ_POLLIN &&
        self->items[ITEM_BLOB].socket == zfed_blob_server_socket(self->blob))
        zfed_blob_server_handle(self->blob);
    if (self->items[ITEM_FETCHER].revents & ZMQ_POLLIN)
        zfed_fetcher_handle(self->fetcher);
    if (now >= zfed_blob_server_next_due(self->blob))
        zfed_blob_server_tick(self->blob, now);
    if (now >= zfed_fetcher_next_due(self->fetcher))
        zfed_fetcher_tick(self->fetcher, now);
    s_fetcher_events(self);
    if (self->items[ITEM_BLOB].socket != zfed_blob_server_socket(self->blob))
        self->items_dirty = true;
}

int zfed_worker_run(zfed_worker_t *self)
{
    for (unsigned index = 0; index < self->config.concurrency; index++)
        s_open(&self->connections[index]);
    zfed_info("%u worker%s for %s on %s (credit %u, %u compute thread%s)%s%s",
              self->config.concurrency, self->config.concurrency == 1 ? "" : "s",
              self->connections[0].registered, self->config.endpoint, self->config.credit,
              self->config.threads, self->config.threads == 1 ? "" : "s",
              self->blob ? "; results held as " : "",
              self->blob ? zfed_blob_server_service(self->blob) : "");
    self->tick_at_ms = zfed_clock_ms() + self->config.heartbeat_ms;
    int rc = 0;
    while (!zsys_interrupted && !atomic_load(&self->stopping)) {
        if (self->items_dirty)
            s_rebuild_items(self);
        int64_t wait = s_next_deadline(self) - zfed_clock_ms();
        if (wait < 0)
            wait = 0;
        if (s_poll(self, (long)wait) < 0) {
            if (errno == EINTR)
                continue;
            zfed_error("poll failed: %s", zmq_strerror(errno));
            rc = -1;
            break;
        }
        if (self->items[ITEM_MONITOR].revents & ZMQ_POLLIN)
            zfed_linkmon_handle(self->linkmon);
        size_t computes_end = ITEMS_BEFORE_COMPUTES + self->config.threads;
        for (size_t item = ITEMS_BEFORE_COMPUTES; item < self->item_count; item++) {
            if (!(self->items[item].revents & ZMQ_POLLIN))
                continue;
            if (item < computes_end)
                s_compute_done(self, &self->computes[item - ITEMS_BEFORE_COMPUTES]);
            else {
                connection_t *connection = s_connection_for_item(self, item);
                if (connection)
                    s_connection_readable(self, connection);
            }
        }
        int64_t now = zfed_clock_ms();
        s_serve_models(self, now);
        if (now >= s_next_deadline(self))
            s_tick(self, now);
    }
    for (unsigned index = 0; index < self->config.concurrency; index++)
        s_close(&self->connections[index], true);
    zfed_info("stopping: %" PRIu64 " results, %" PRIu64 " errors, %" PRIu64 " reconnects; %" PRIu64
              " requests came as compact frames",
              self->stats.tasks, self->stats.errors, self->stats.reconnects, self->stats.compact);
    if (self->blob) {
        //  What the controller did with the results held for it: every one
        //  it accepted, refused, or got late or twice is released.
        zfed_blob_server_stats_t blob;
        zfed_blob_server_stats(self->blob, &blob);
        zfed_info("results held by reference: %" PRIu64 ", %" PRIu64 " released, %" PRIu64
                  " expired, %zu still held",
                  self->stats.held, blob.released, blob.expired, blob.entries);
    }
    return rc;
}

//  ---------------------------------------------------------------------
//  Construction

void zfed_worker_config_defaults(zfed_worker_config_t *config)
{
    memset(config, 0, sizeof *config);
    config->endpoint = "tcp://127.0.0.1:5555";
    config->service = "fib";
    config->concurrency = 1;
    config->threads = 1;
    config->credit = 1;
    config->compact = true;
    config->heartbeat_ms = ZFED_MDP_HEARTBEAT_MS_DEFAULT;
    config->liveness = ZFED_MDP_LIVENESS_DEFAULT;
    config->reconnect_ms = ZFED_WORKER_RECONNECT_MS;
    config->reconnect_max_ms = ZFED_WORKER_RECONNECT_MAX_MS;
    config->hold_ms = ZFED_HOLD_MS_DEFAULT;
    config->chunk = ZFED_CHUNK_DEFAULT;
    config->fetch_timeout_ms = ZFED_FETCH_TIMEOUT_MS_DEFAULT;
    config->verify = true;
}

static void s_default_name(char *name, size_t size)
{
    char host[64] = "host";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    for (char *cursor = host; *cursor; cursor++)
        if (*cursor <= 0x20 || *cursor >= 0x7f)
            *cursor = '_';
    snprintf(name, size, "%s-%d", host, (int)getpid());
}

//  The MDP name connection index registers under: register_as with "{i}"
//  replaced by the index, or the service's name (SERVICE@SITE for a
//  site's worker).  0, or -1 if the result is not a valid service name or
//  sits in the broker's mmi. namespace.
static int s_registered_name(const zfed_worker_config_t *config, unsigned index, char *name,
                             size_t size)
{
    const char *pattern = config->register_as ? config->register_as : config->service;
    const char *marker = strstr(pattern, "{i}");
    int length = marker ? snprintf(name, size, "%.*s%u%s", (int)(marker - pattern), pattern, index,
                                   marker + 3)
                 : config->site && !config->register_as
                     ? snprintf(name, size, "%s@%s", pattern, config->site)
                     : snprintf(name, size, "%s", pattern);
    zfed_view_t view = {(const uint8_t *)name, (size_t)(length > 0 ? length : 0)};
    if (length <= 0 || (size_t)length >= size || !zfed_mdp_service_valid(view) ||
        zfed_mdp_is_mmi(view))
        return -1;
    return 0;
}

//  One socket per connection and two per compute thread (its pipe), and
//  a model service's blob service and fetcher.
static size_t s_sockets_needed(const zfed_worker_config_t *config)
{
    return (size_t)config->concurrency + 2 * (size_t)config->threads + SOCKETS_SPARE +
           MODEL_SOCKETS;
}

//  Per socket its mailbox; per connection its TCP (or ipc) stream.
static rlim_t s_files_needed(const zfed_worker_config_t *config)
{
    return (rlim_t)s_sockets_needed(config) + config->concurrency + FILES_SPARE;
}

int zfed_worker_raise_limits(const zfed_worker_config_t *config)
{
    size_t sockets = s_sockets_needed(config);
    if (sockets > zsys_socket_limit()) {
        zfed_error("%u workers need %zu ZeroMQ sockets; libzmq allows at most %zu",
                   config->concurrency, sockets, zsys_socket_limit());
        return -1;
    }
    if ((size_t)zmq_ctx_get(zsys_init(), ZMQ_MAX_SOCKETS) < sockets)
        zsys_set_max_sockets(sockets);
    struct rlimit files;
    rlim_t needed = s_files_needed(config);
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < needed) {
        if (files.rlim_max != RLIM_INFINITY && files.rlim_max < needed) {
            zfed_error("%u workers need about %llu open files; this process may open %llu "
                       "(ulimit -Hn): lower --concurrency or raise the limit",
                       config->concurrency, (unsigned long long)needed,
                       (unsigned long long)files.rlim_max);
            return -1;
        }
        files.rlim_cur = needed;
        if (setrlimit(RLIMIT_NOFILE, &files) != 0) {
            zfed_error("cannot raise the open-file limit to %llu: %s", (unsigned long long)needed,
                       strerror(errno));
            return -1;
        }
    }
    return 0;
}

//  A model service's own parts: its cache of globals, its blob service
//  (results over 4 MiB) and its fetcher (globals by reference).
static int s_models_new(zfed_worker_t *self)
{
    const zfed_worker_config_t *config = &self->config;
    self->cache = zfed_model_cache_new(ZFED_WORKER_CACHED_MODELS);
    //  A round's global and result go as the next round's arrive: spare
    //  buffers for both save faulting their pages in again.
    zfed_model_pool_keep(ZFED_WORKER_SPARE_MODELS, ZFED_WORKER_SPARE_IDLE_MS);
    zfed_blob_server_config_t blob;
    zfed_blob_server_config_defaults(&blob);
    blob.endpoint = config->endpoint;
    blob.heartbeat_ms = config->heartbeat_ms;
    blob.liveness = config->liveness;
    blob.reconnect_ms = config->reconnect_ms;
    blob.reconnect_max_ms = config->reconnect_max_ms;
    blob.hold_ms = config->hold_ms;
    blob.hold_bytes = config->hold_bytes;
    blob.curve_cert = config->curve_cert;
    blob.curve_server_key = config->curve_server_key;
    zfed_fetcher_config_t fetcher;
    zfed_fetcher_config_defaults(&fetcher);
    fetcher.endpoint = config->endpoint;
    fetcher.timeout_ms = config->fetch_timeout_ms;
    fetcher.curve_cert = config->curve_cert;
    fetcher.curve_server_key = config->curve_server_key;
    if (!self->cache || !(self->blob = zfed_blob_server_new(&blob)) ||
        !(self->fetcher = zfed_fetcher_new(&fetcher)))
        return -1;
    self->runner = (zfed_model_runner_t){.service = self->service,
                                         .site = config->site,
                                         .data = config->service_data,
                                         .blob_service = zfed_blob_server_service(self->blob),
                                         .chunk = config->chunk,
                                         .verify = config->verify,
                                         .result_sha256 = false,
                                         .cache = self->cache};
    return 0;
}

zfed_worker_t *zfed_worker_new(const zfed_worker_config_t *config)
{
    const zfed_service_t *service = zfed_service_find(config->service);
    if (!service) {
        zfed_error("unknown service '%s'", config->service ? config->service : "(null)");
        return NULL;
    }
    if ((config->name && !zfed_is_token(config->name, ZFED_WORKER_NAME_MAX - 6)) ||
        !config->endpoint || config->concurrency < 1 ||
        config->concurrency > ZFED_WORKER_MAX_CONCURRENCY ||
        config->threads > ZFED_WORKER_MAX_THREADS || config->credit < 1 ||
        config->credit > ZFED_WORKER_MAX_CREDIT || config->heartbeat_ms <= 0 ||
        config->liveness <= 0 || config->reconnect_ms <= 0 ||
        config->reconnect_max_ms < config->reconnect_ms || config->delay_ms < 0 ||
        (config->site && !zfed_is_safe_name(config->site, ZFED_WORKER_SITE_MAX)) ||
        config->hold_ms < 0 || config->chunk < ZFED_CHUNK_MIN || config->chunk > ZFED_CHUNK_MAX ||
        config->fetch_timeout_ms <= 0) {
        zfed_error("invalid worker configuration");
        return NULL;
    }
    if (service->kind == ZFED_SERVICE_MODEL ? !service->train : !service->run) {
        zfed_error("service '%s' cannot run on a worker", service->name);
        return NULL;
    }
    if (service->open_data && !config->service_data) {
        zfed_error("service '%s' trains on a site's data: open it first (zfed-worker --data DIR)",
                   service->name);
        return NULL;
    }
    //  czmq aborts the process when it cannot make a socket: refuse first.
    size_t allowed = (size_t)zmq_ctx_get(zsys_init(), ZMQ_MAX_SOCKETS);
    if (s_sockets_needed(config) > allowed) {
        zfed_error("%u workers need %zu ZeroMQ sockets; this process allows %zu (call "
                   "zfed_worker_raise_limits before creating any socket)",
                   config->concurrency, s_sockets_needed(config), allowed);
        return NULL;
    }
    zfed_worker_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->service = service;
    zfed_link_init(&self->pending);
    zfed_link_init(&self->spare_jobs);
    zfed_link_init(&self->downloads);
    if (config->curve_cert) {
        self->curve = zfed_curve_client_new(config->curve_cert, config->curve_server_key);
        if (!self->curve)
            goto err;
    }
    self->linkmon = zfed_linkmon_new(config->endpoint, "--workers-dir", self->curve != NULL);
    self->role_warned_at_ms = -ZFED_LINKMON_WARN_PERIOD_MS;
    if (!self->linkmon)
        goto err;
    char base[ZFED_WORKER_NAME_MAX + 1];
    if (config->name)
        snprintf(base, sizeof base, "%s", config->name);
    else
        s_default_name(base, sizeof base);
    self->connections = calloc(config->concurrency, sizeof *self->connections);
    self->computes = calloc(config->threads ? config->threads : 1, sizeof *self->computes);
    if (service->kind == ZFED_SERVICE_MODEL && s_models_new(self) != 0)
        goto err;
    size_t items = ITEMS_BEFORE_COMPUTES + config->concurrency + config->threads;
    self->items = calloc(items, sizeof *self->items);
    self->item_connection = calloc(items, sizeof *self->item_connection);
    self->pollfds = calloc(items, sizeof *self->pollfds);
    if (!self->connections || !self->computes || !self->items || !self->item_connection ||
        !self->pollfds)
        goto err;
    for (unsigned index = 0; index < config->concurrency; index++) {
        connection_t *connection = &self->connections[index];
        if (s_registered_name(config, index, connection->registered,
                              sizeof connection->registered) != 0) {
            zfed_error("--register-as: '%s' is not a valid service name for connection %u",
                       config->register_as, index);
            goto err;
        }
        connection->owner = self;
        connection->index = index;
        //  Connection i of several is "base.i"; the base is cut so the
        //  suffix (at most ".4095") always fits.
        char suffix[16] = "";
        if (config->concurrency > 1)
            snprintf(suffix, sizeof suffix, ".%u", index % ZFED_WORKER_MAX_CONCURRENCY);
        snprintf(connection->name, sizeof connection->name, "%.*s%s",
                 (int)(ZFED_WORKER_NAME_MAX - strlen(suffix)), base, suffix);
        zfed_mdpw_config_t mdpw =
            zfed_mdpw_config(config->endpoint, connection->registered, connection->name,
                             config->credit, config->heartbeat_ms, config->liveness,
                             config->reconnect_ms, config->reconnect_max_ms, self->curve);
        //  Every connection has the same broker and key: connection 0's
        //  monitor and log lines speak for all.
        mdpw.compact = config->compact;
        mdpw.linkmon = index == 0 ? self->linkmon : NULL;
        mdpw.quiet = index > 0;
        zfed_mdpw_init(&connection->mdpw, &mdpw);
    }
    for (unsigned index = 0; index < config->threads; index++) {
        self->computes[index].actor = zactor_new(s_compute_actor, self);
        if (!self->computes[index].actor)
            goto err;
        self->computes[index].handle = zsock_resolve(self->computes[index].actor);
    }
    self->items_dirty = true;
    return self;
err:
    zfed_error("cannot start the worker");
    zfed_worker_destroy(&self);
    return NULL;
}

void zfed_worker_destroy(zfed_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_worker_t *self = *self_p;
    //  Stop compute threads first: they may hold jobs that point at
    //  connections.  A busy one hands its job back before it reads $TERM.
    for (unsigned index = 0; self->computes && index < self->config.threads; index++) {
        compute_t *compute = &self->computes[index];
        if (compute->busy) {
            job_t *job = NULL;
            if (zmq_recv(compute->handle, &job, sizeof job, 0) == sizeof job)
                s_job_destroy(&job);
        }
        zactor_destroy(&compute->actor);
    }
    zfed_link_t *link;
    while ((link = zfed_list_first(&self->pending)) != NULL) {
        job_t *job = zfed_container_of(link, job_t, link);
        s_job_destroy(&job);
    }
    while ((link = zfed_list_first(&self->spare_jobs)) != NULL) {
        job_t *job = zfed_container_of(link, job_t, link);
        s_job_destroy(&job);
    }
    while ((link = zfed_list_first(&self->downloads)) != NULL) {
        download_t *download = zfed_container_of(link, download_t, link);
        while ((link = zfed_list_first(&download->waiters)) != NULL) {
            job_t *job = zfed_container_of(link, job_t, link);
            s_job_destroy(&job);
        }
        s_download_destroy(&download);
    }
    zfed_fetcher_destroy(&self->fetcher);
    zfed_blob_server_destroy(&self->blob);
    zfed_model_cache_destroy(&self->cache);
    for (unsigned index = 0; self->connections && index < self->config.concurrency; index++)
        zfed_mdpw_close(&self->connections[index].mdpw, false);
    zfed_curve_client_destroy(&self->curve);
    zfed_linkmon_destroy(&self->linkmon);
    free(self->connections);
    free(self->computes);
    free(self->items);
    free(self->pollfds);
    free(self->item_connection);
    free(self);
    *self_p = NULL;
}

void zfed_worker_stats(zfed_worker_t *self, zfed_worker_stats_t *stats)
{
    *stats = self->stats;
}

void zfed_worker_stop(zfed_worker_t *self)
{
    atomic_store(&self->stopping, true);
}
