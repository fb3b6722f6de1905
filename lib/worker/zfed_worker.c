/*  zfed_worker - Majordomo workers: one I/O thread, a pool of compute threads.

    The I/O thread owns every socket.  A REQUEST becomes a job (its address
    frame and body, moved, not copied) that goes to an idle compute thread
    as a pointer over an inproc pipe, and comes back with its reply bytes.
    Each job remembers the generation of the connection it came on: a reply
    finished after its connection was reset (broker restart, DISCONNECT) is
    dropped, since the new broker session never issued that request.

    With threads == 0 jobs run inline on the I/O thread: fastest for tiny
    tasks, at the cost of heartbeats pausing while a task runs.
*/
#include "zfed/zfed_worker.h"
#include "zfed/zfed_batch.h"
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

#include <czmq.h>
#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

//  Messages read from one connection per wake-up, so one busy connection
//  cannot starve the others or the timers.
#define DRAIN_BATCH 64
//  Linger on close, so a final DISCONNECT leaves the process.
#define CLOSE_LINGER_MS 100
//  Longest reason text we keep from a failed decode.
#define REASON_MAX 256
//  How long a reply may wait for room in a full send queue.
#define REPLY_SEND_TIMEOUT_MS 1000
//  ZeroMQ sockets and open files a pool needs beyond its own: the
//  embedding program's, and libzmq's I/O thread.
#define SOCKETS_SPARE 16
#define FILES_SPARE   64

typedef struct _connection_t connection_t;

typedef struct {
    zfed_link_t link; //  in the pending queue while no compute thread is idle
    connection_t *connection;
    uint64_t generation;
    uint8_t address[ZFED_MDP_ADDRESS_MAX];
    size_t address_size;
    zmq_msg_t body;
    msgpack_sbuffer reply;
    bool is_error;
    unsigned items;  //  task bodies answered (a batch holds several)
    unsigned errors; //  of which answered with an error body
} job_t;

struct _connection_t {
    zfed_worker_t *owner;
    unsigned index;
    char name[ZFED_WORKER_NAME_MAX + 1];
    char registered[ZFED_MDP_SERVICE_MAX + 1]; //  MDP service name in READY
    zsock_t *socket;
    void *handle;
    uint64_t generation;
    int64_t last_heard_ms;
    int64_t last_sent_ms;
    int64_t reconnect_at_ms;
    int backoff_ms;
    unsigned in_flight;
    bool heard_since_ready;
};

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
    connection_t *connections;
    compute_t *computes;
    zfed_link_t pending;
    zmq_pollitem_t *items;
    connection_t **item_connection; //  per poll item: its connection, or NULL
    size_t item_count;
    bool items_dirty;
    atomic_bool stopping; //  zfed_worker_stop, from any thread
    int64_t tick_at_ms;
    zfed_frames_t frames;
    zfed_worker_stats_t stats;
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
    const msgpack_object *params = zfed_msg_params_object(task);
    const msgpack_object *global = zfed_msg_global_object(task);
    if (!params || !global) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory reading a task");
        return -1;
    }
    s_play_straggler(self->config.delay_ms);
    msgpack_packer packer;
    msgpack_packer_init(&packer, outputs, msgpack_sbuffer_write);
    char *display = NULL;
    int64_t started = zfed_clock_us();
    int rc = self->service->run(params, zfed_msg_global_round(task), global, &packer,
                                self->config.pyramid ? &display : NULL, fault);
    *compute_us = (uint64_t)(zfed_clock_us() - started);
    if (rc == 0 && display)
        s_show(connection, task, display, *compute_us);
    free(display);
    return rc;
}

//  An error reply body naming the task (job_id "" when it could not be
//  read at all).
static void s_encode_error(const connection_t *connection, const char *job_id, uint32_t round,
                           uint32_t task_id, uint32_t attempt, const zfed_fault_t *fault,
                           msgpack_sbuffer *reply)
{
    zfed_debug("%s: refusing task %s/%u/%u: %s%s%s", connection->name, job_id, round, task_id,
               fault->field, fault->field[0] ? ": " : "", fault->text);
    zfed_msg_t *error = zfed_msg_new_error(job_id, round, task_id, attempt, connection->name,
                                           fault->code, fault->field, fault->text);
    if (!error || zfed_msg_encode(error, reply) != 0) {
        //  Nothing sensible to send: an empty body still frees the broker's
        //  slot, and the client counts it and resends.
        zfed_error("%s: cannot encode a reply (out of memory)", connection->name);
        msgpack_sbuffer_clear(reply);
    }
    zfed_msg_destroy(&error);
}

//  Runs one task body and writes its reply body (result or error) into
//  reply.  Returns the number of errors (0 or 1).
static unsigned s_execute_body(const zfed_worker_t *self, const connection_t *connection,
                               const void *data, size_t size, msgpack_sbuffer *reply)
{
    char reason[REASON_MAX];
    zfed_fault_t fault = {0};
    zfed_msg_t *task = zfed_msg_decode(data, size, reason, sizeof reason);
    msgpack_sbuffer outputs;
    msgpack_sbuffer_init(&outputs);
    uint64_t compute_us = 0;
    int rc = -1;
    if (!task)
        zfed_fault_set(&fault, ZFED_ERR_MALFORMED, "", "bad task: %s", reason);
    else if (zfed_msg_kind(task) != ZFED_MSG_TASK)
        zfed_fault_set(&fault, ZFED_ERR_MALFORMED, "", "expected %s, got %s", ZFED_KIND_TASK,
                       zfed_msg_kind_name(zfed_msg_kind(task)));
    else
        rc = s_run_task(self, connection, task, &outputs, &compute_us, &fault);

    //  The outputs come from our own service's packer: encode them as they
    //  are rather than check them again.
    if (rc == 0 &&
        zfed_msg_encode_result(reply, zfed_msg_job_id(task), zfed_msg_round(task),
                               zfed_msg_task_id(task), zfed_msg_attempt(task), connection->name,
                               compute_us, outputs.data, outputs.size) != 0) {
        zfed_fault_set(&fault, ZFED_ERR_TOO_LARGE, "", "the result does not fit in a %d-byte body",
                       ZFED_BODY_MAX);
        rc = -1;
    }
    if (rc != 0) {
        char job_id[ZFED_JOB_ID_MAX + 1] = "";
        uint32_t round = 0, task_id = 0, attempt = 0;
        if (task) {
            snprintf(job_id, sizeof job_id, "%s", zfed_msg_job_id(task));
            round = zfed_msg_round(task);
            task_id = zfed_msg_task_id(task);
            attempt = zfed_msg_attempt(task);
        } else if (zfed_msg_peek_ids(data, size, job_id, &round, &task_id, &attempt) != 0)
            job_id[0] = '\0';
        s_encode_error(connection, job_id, round, task_id, attempt, &fault, reply);
    }
    zfed_msg_destroy(&task);
    msgpack_sbuffer_destroy(&outputs);
    return rc == 0 ? 0 : 1;
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
        char job_id[ZFED_JOB_ID_MAX + 1] = "";
        uint32_t round = 0, task_id = 0, attempt = 0;
        if (zfed_msg_peek_ids(items[index].data, items[index].size, job_id, &round, &task_id,
                              &attempt) != 0)
            job_id[0] = '\0';
        zfed_fault_t fault;
        zfed_fault_set(&fault, ZFED_ERR_TOO_LARGE, "",
                       "the batch's results do not fit in a %d-byte body; send this task alone",
                       ZFED_BODY_MAX);
        msgpack_sbuffer_clear(&replies[index]);
        s_encode_error(connection, job_id, round, task_id, attempt, &fault, &replies[index]);
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

//  A batch request: every item is a task body; the reply is a batch with
//  one reply body per item, in the same order.
static unsigned s_execute_batch(const zfed_worker_t *self, const connection_t *connection,
                                const void *data, size_t size, msgpack_sbuffer *reply,
                                unsigned *answered)
{
    char reason[REASON_MAX];
    zfed_view_t *items = calloc(ZFED_BATCH_MAX, sizeof *items);
    msgpack_sbuffer *replies = calloc(ZFED_BATCH_MAX, sizeof *replies);
    zfed_view_t *answers = calloc(ZFED_BATCH_MAX, sizeof *answers);
    size_t count = 0;
    unsigned errors = 0;
    *answered = 1;
    if (!items || !replies || !answers) {
        zfed_error("%s: out of memory for a batch", connection->name);
        errors = 1;
    } else if (zfed_batch_decode(data, size, items, ZFED_BATCH_MAX, &count, reason,
                                 sizeof reason) != 0) {
        //  Not even a readable batch: one error body, as for a bad task.
        zfed_fault_t fault;
        zfed_fault_set(&fault, ZFED_ERR_MALFORMED, "", "bad batch: %s", reason);
        s_encode_error(connection, "", 0, 0, 0, &fault, reply);
        errors = 1;
        count = 0;
    }
    bool failed[ZFED_BATCH_MAX] = {false};
    for (size_t index = 0; index < count; index++) {
        msgpack_sbuffer_init(&replies[index]);
        failed[index] =
            s_execute_body(self, connection, items[index].data, items[index].size, &replies[index]);
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
    for (size_t index = 0; index < count; index++)
        msgpack_sbuffer_destroy(&replies[index]);
    free(items);
    free(replies);
    free(answers);
    return errors;
}

static void s_execute(const zfed_worker_t *self, job_t *job)
{
    const void *data = zmq_msg_data(&job->body);
    size_t size = zmq_msg_size(&job->body);
    job->items = 1;
    job->errors = zfed_batch_is(data, size)
                      ? s_execute_batch(self, job->connection, data, size, &job->reply, &job->items)
                      : s_execute_body(self, job->connection, data, size, &job->reply);
    job->is_error = job->errors > 0;
}

static void s_job_destroy(job_t **job_p)
{
    job_t *job = *job_p;
    if (!job)
        return;
    zfed_link_remove(&job->link);
    zmq_msg_close(&job->body);
    msgpack_sbuffer_destroy(&job->reply);
    free(job);
    *job_p = NULL;
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
}

//  ---------------------------------------------------------------------
//  Connections

static void s_send_command(connection_t *connection, uint8_t command, const char *service,
                           const char *extension)
{
    void *handle = connection->handle;
    int more = service ? ZMQ_SNDMORE : 0;
    if (zfed_send_bytes(handle, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) != 0)
        return; //  nothing queued: the connection is congested or closing
    zfed_send_bytes(handle, ZFED_MDPW_HEADER, ZFED_MDP_HEADER_SIZE, ZMQ_SNDMORE);
    zfed_send_bytes(handle, &command, 1, more);
    if (service) {
        zfed_send_bytes(handle, service, strlen(service), extension ? ZMQ_SNDMORE : 0);
        if (extension)
            zfed_send_bytes(handle, extension, strlen(extension), 0);
    }
    connection->last_sent_ms = zfed_clock_ms();
}

static void s_close(connection_t *connection, bool say_goodbye)
{
    if (!connection->socket)
        return;
    if (say_goodbye) {
        s_send_command(connection, ZFED_MDPW_DISCONNECT, NULL, NULL);
        zsock_set_linger(connection->socket, CLOSE_LINGER_MS);
    }
    zsock_destroy(&connection->socket);
    connection->handle = NULL;
    connection->owner->items_dirty = true;
}

static int s_open(connection_t *connection)
{
    zfed_worker_t *self = connection->owner;
    connection->socket = zsock_new(ZMQ_DEALER);
    if (!connection->socket)
        return -1;
    zsock_set_linger(connection->socket, 0);
    //  A reply waits at most this long for room in the send queue.
    zsock_set_sndtimeo(connection->socket, REPLY_SEND_TIMEOUT_MS);
    if (self->curve && zfed_curve_client_apply(self->curve, connection->socket) != 0) {
        zsock_destroy(&connection->socket);
        return -1;
    }
    if (connection->index == 0 && self->linkmon &&
        zfed_linkmon_attach(self->linkmon, zsock_resolve(connection->socket)) != 0)
        zfed_warn("%s: cannot monitor the connection; handshake failures go unexplained",
                  connection->name);
    if (zsock_connect(connection->socket, "%s", self->config.endpoint) != 0) {
        zfed_error("%s: cannot connect to %s", connection->name, self->config.endpoint);
        zsock_destroy(&connection->socket);
        return -1;
    }
    connection->handle = zsock_resolve(connection->socket);
    connection->generation++;
    connection->in_flight = 0;
    connection->heard_since_ready = false;
    connection->last_heard_ms = zfed_clock_ms();
    char extension[32];
    snprintf(extension, sizeof extension, "credit=%u", self->config.credit);
    s_send_command(connection, ZFED_MDPW_READY, connection->registered,
                   self->config.credit > 1 ? extension : NULL);
    self->items_dirty = true;
    return 0;
}

//  Drops the socket and schedules a fresh one after the current back-off,
//  doubling the back-off for next time (reset when the broker answers).
static void s_reconnect_later(connection_t *connection, const char *why)
{
    zfed_worker_t *self = connection->owner;
    s_close(connection, false);
    connection->reconnect_at_ms = zfed_clock_ms() + connection->backoff_ms;
    //  When the handshake was refused, the monitor has said why (and
    //  keeps the reminders rare); silence is only its consequence.
    const zfed_link_status_t *link = self->linkmon ? zfed_linkmon_link(self->linkmon) : NULL;
    bool explained = link && (link->state == ZFED_LINK_REFUSED || link->state == ZFED_LINK_FAILED);
    if (!explained && (connection->index == 0 || zfed_log_level() >= ZFED_LOG_DEBUG))
        zfed_warn("%s: %s; reconnecting in %d ms", connection->name, why, connection->backoff_ms);
    else
        zfed_debug("%s: %s; reconnecting in %d ms", connection->name, why, connection->backoff_ms);
    connection->backoff_ms *= 2;
    if (connection->backoff_ms > self->config.reconnect_max_ms)
        connection->backoff_ms = self->config.reconnect_max_ms;
}

//  ---------------------------------------------------------------------
//  Jobs in and out

static void s_send_reply(zfed_worker_t *self, job_t *job)
{
    connection_t *connection = job->connection;
    self->stats.errors += job->errors;
    self->stats.tasks += job->items - job->errors;
    if (job->generation != connection->generation || !connection->socket) {
        self->stats.abandoned++;
        return;
    }
    connection->in_flight--;
    uint8_t command = ZFED_MDPW_REPLY;
    void *handle = connection->handle;
    if (zfed_send_bytes(handle, "", 0, ZMQ_SNDMORE) != 0) {
        //  The send timeout passed: the broker is not reading.  Start over
        //  on a fresh socket; the broker will notice our silence and hand
        //  the request to someone else, rather than wait on a reply that
        //  will never come while we keep heartbeating.
        zfed_warn("%s: reply could not be sent: %s", connection->name, zmq_strerror(errno));
        s_reconnect_later(connection, "cannot deliver a reply");
        return;
    }
    zfed_send_bytes(handle, ZFED_MDPW_HEADER, ZFED_MDP_HEADER_SIZE, ZMQ_SNDMORE);
    zfed_send_bytes(handle, &command, 1, ZMQ_SNDMORE);
    zfed_send_bytes(handle, job->address, job->address_size, ZMQ_SNDMORE);
    zfed_send_bytes(handle, "", 0, ZMQ_SNDMORE);
    zfed_send_bytes(handle, job->reply.data, job->reply.size, 0);
    connection->last_sent_ms = zfed_clock_ms();
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

static void s_submit(zfed_worker_t *self, job_t *job)
{
    if (self->config.threads == 0) {
        s_execute(self, job);
        s_send_reply(self, job);
        s_job_destroy(&job);
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
    s_send_reply(self, job);
    s_job_destroy(&job);
    zfed_link_t *next = zfed_list_first(&self->pending);
    if (next) {
        zfed_link_remove(next);
        s_hand_to_compute(self, compute, zfed_container_of(next, job_t, link));
    }
}

static void s_request(zfed_worker_t *self, connection_t *connection, const zfed_mdp_t *mdp)
{
    zfed_frames_t *frames = &self->frames;
    job_t *job = calloc(1, sizeof *job);
    if (!job) {
        zfed_error("%s: out of memory for a task", connection->name);
        return;
    }
    zfed_link_init(&job->link);
    job->connection = connection;
    job->generation = connection->generation;
    memcpy(job->address, mdp->address.data, mdp->address.size);
    job->address_size = mdp->address.size;
    zmq_msg_init(&job->body);
    msgpack_sbuffer_init(&job->reply);
    //  zfed bodies are one frame; anything else gets a clear error reply.
    if (mdp->body_count == 1)
        zmq_msg_move(&job->body, &frames->part[mdp->body_index]);
    connection->in_flight++;
    if (mdp->body_count != 1) {
        zfed_fault_t fault;
        zfed_fault_set(&fault, ZFED_ERR_MALFORMED, "", "a zfed task body is exactly one frame");
        s_encode_error(connection, "", 0, 0, 0, &fault, &job->reply);
        job->is_error = true;
        job->items = 1;
        job->errors = 1;
        s_send_reply(self, job);
        s_job_destroy(&job);
        return;
    }
    s_submit(self, job);
}

static void s_connection_message(zfed_worker_t *self, connection_t *connection)
{
    zfed_frames_t *frames = &self->frames;
    zfed_mdp_t mdp;
    const char *reason = "too many frames";
    if (frames->dropped > 0 ||
        zfed_mdp_parse_at_worker(frames->view, frames->count, &mdp, &reason) != 0) {
        self->stats.malformed++;
        zfed_warn("%s: dropped a message from the broker: %s", connection->name, reason);
        return;
    }
    connection->last_heard_ms = zfed_clock_ms();
    //  A REQUEST or HEARTBEAT means the broker took our READY: the next
    //  outage starts again from the shortest back-off.  A DISCONNECT does
    //  not, so a broker that keeps refusing us is not hammered.
    if (!connection->heard_since_ready && mdp.command != ZFED_MDP_DISCONNECT) {
        connection->heard_since_ready = true;
        connection->backoff_ms = self->config.reconnect_ms;
    }
    switch (mdp.command) {
    case ZFED_MDP_REQUEST:
        s_request(self, connection, &mdp);
        break;
    case ZFED_MDP_HEARTBEAT:
        break;
    case ZFED_MDP_DISCONNECT:
        //  A DISCONNECT before any sign that the broker took our READY,
        //  over a CURVE handshake it accepted: zfed's broker knows our key
        //  but not as a worker's.
        if (!connection->heard_since_ready && self->curve &&
            connection->last_heard_ms - self->role_warned_at_ms >= ZFED_LINKMON_WARN_PERIOD_MS) {
            self->role_warned_at_ms = connection->last_heard_ms;
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
    for (int handled = 0; handled < DRAIN_BATCH && connection->socket; handled++) {
        if (zfed_frames_recv(&self->frames, connection->handle, ZMQ_DONTWAIT) != 0)
            break;
        s_connection_message(self, connection);
        zfed_frames_close(&self->frames);
    }
}

//  ---------------------------------------------------------------------
//  Timers and the loop

static void s_tick(zfed_worker_t *self, int64_t now)
{
    int64_t silence_ms = (int64_t)self->config.heartbeat_ms * self->config.liveness;
    for (unsigned index = 0; index < self->config.concurrency; index++) {
        connection_t *connection = &self->connections[index];
        if (!connection->socket) {
            if (now >= connection->reconnect_at_ms && s_open(connection) == 0 &&
                connection->generation > 1)
                self->stats.reconnects++;
            continue;
        }
        if (now - connection->last_heard_ms > silence_ms)
            s_reconnect_later(connection, "broker silent");
        else if (now - connection->last_sent_ms >= self->config.heartbeat_ms)
            s_send_command(connection, ZFED_MDPW_HEARTBEAT, NULL, NULL);
    }
    //  A quarter interval: heartbeats leave at most 1.25 intervals apart.
    self->tick_at_ms =
        now + (self->config.heartbeat_ms / 4 > 0 ? self->config.heartbeat_ms / 4 : 1);
}

//  Earliest moment something is due: the next heartbeat tick, or a
//  pending reconnect.
static int64_t s_next_deadline(zfed_worker_t *self)
{
    int64_t deadline = self->tick_at_ms;
    for (unsigned index = 0; index < self->config.concurrency; index++) {
        connection_t *connection = &self->connections[index];
        if (!connection->socket && connection->reconnect_at_ms < deadline)
            deadline = connection->reconnect_at_ms;
    }
    return deadline;
}

//  Item 0 is the signal pipe (or an inert entry), item 1 connection 0's
//  monitor (or an inert entry), then compute threads, then connections.
#define ITEM_MONITOR          1
#define ITEMS_BEFORE_COMPUTES 2

static int s_rebuild_items(zfed_worker_t *self)
{
    size_t count = 0;
    int signal_fd = zfed_signal_fd();
    self->item_connection[count] = NULL;
    self->items[count++] = (zmq_pollitem_t){NULL, signal_fd >= 0 ? signal_fd : 0,
                                            (short)(signal_fd >= 0 ? ZMQ_POLLIN : 0), 0};
    void *monitor = self->linkmon ? zfed_linkmon_socket(self->linkmon) : NULL;
    self->items[count++] = (zmq_pollitem_t){monitor, 0, (short)(monitor ? ZMQ_POLLIN : 0), 0};
    for (unsigned index = 0; index < self->config.threads; index++) {
        self->item_connection[count] = NULL;
        self->items[count] = (zmq_pollitem_t){self->computes[index].handle, 0, ZMQ_POLLIN, 0};
        count++;
    }
    for (unsigned index = 0; index < self->config.concurrency; index++) {
        if (!self->connections[index].socket)
            continue;
        self->item_connection[count] = &self->connections[index];
        self->items[count] = (zmq_pollitem_t){self->connections[index].handle, 0, ZMQ_POLLIN, 0};
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
    return connection && connection->socket && connection->handle == self->items[item].socket
               ? connection
               : NULL;
}

int zfed_worker_run(zfed_worker_t *self)
{
    for (unsigned index = 0; index < self->config.concurrency; index++)
        s_open(&self->connections[index]);
    zfed_info("%u worker%s for %s on %s (credit %u, %u compute thread%s)", self->config.concurrency,
              self->config.concurrency == 1 ? "" : "s", self->config.service, self->config.endpoint,
              self->config.credit, self->config.threads, self->config.threads == 1 ? "" : "s");
    self->tick_at_ms = zfed_clock_ms() + self->config.heartbeat_ms;
    int rc = 0;
    while (!zsys_interrupted && !atomic_load(&self->stopping)) {
        if (self->items_dirty)
            s_rebuild_items(self);
        int64_t wait = s_next_deadline(self) - zfed_clock_ms();
        if (wait < 0)
            wait = 0;
        if (zmq_poll(self->items, (int)self->item_count, (long)wait) < 0) {
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
        if (now >= s_next_deadline(self))
            s_tick(self, now);
    }
    for (unsigned index = 0; index < self->config.concurrency; index++)
        s_close(&self->connections[index], true);
    zfed_info("stopping: %" PRIu64 " results, %" PRIu64 " errors, %" PRIu64 " reconnects",
              self->stats.tasks, self->stats.errors, self->stats.reconnects);
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
    config->heartbeat_ms = ZFED_MDP_HEARTBEAT_MS_DEFAULT;
    config->liveness = ZFED_MDP_LIVENESS_DEFAULT;
    config->reconnect_ms = ZFED_WORKER_RECONNECT_MS;
    config->reconnect_max_ms = ZFED_WORKER_RECONNECT_MAX_MS;
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
//  replaced by the index, or the service's name.  0, or -1 if the result is
//  not a valid service name or sits in the broker's mmi. namespace.
static int s_registered_name(const zfed_worker_config_t *config, unsigned index, char *name,
                             size_t size)
{
    const char *pattern = config->register_as ? config->register_as : config->service;
    const char *marker = strstr(pattern, "{i}");
    int length = marker ? snprintf(name, size, "%.*s%u%s", (int)(marker - pattern), pattern, index,
                                   marker + 3)
                        : snprintf(name, size, "%s", pattern);
    zfed_view_t view = {(const uint8_t *)name, (size_t)(length > 0 ? length : 0)};
    if (length <= 0 || (size_t)length >= size || !zfed_mdp_service_valid(view) ||
        zfed_mdp_is_mmi(view))
        return -1;
    return 0;
}

//  One socket per connection and two per compute thread (its pipe).
static size_t s_sockets_needed(const zfed_worker_config_t *config)
{
    return (size_t)config->concurrency + 2 * (size_t)config->threads + SOCKETS_SPARE;
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
        config->reconnect_max_ms < config->reconnect_ms || config->delay_ms < 0) {
        zfed_error("invalid worker configuration");
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
    size_t items = ITEMS_BEFORE_COMPUTES + config->concurrency + config->threads;
    self->items = calloc(items, sizeof *self->items);
    self->item_connection = calloc(items, sizeof *self->item_connection);
    if (!self->connections || !self->computes || !self->items || !self->item_connection)
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
        connection->backoff_ms = config->reconnect_ms;
        //  Connection i of several is "base.i"; the base is cut so the
        //  suffix (at most ".4095") always fits.
        char suffix[16] = "";
        if (config->concurrency > 1)
            snprintf(suffix, sizeof suffix, ".%u", index % ZFED_WORKER_MAX_CONCURRENCY);
        snprintf(connection->name, sizeof connection->name, "%.*s%s",
                 (int)(ZFED_WORKER_NAME_MAX - strlen(suffix)), base, suffix);
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
    for (unsigned index = 0; self->connections && index < self->config.concurrency; index++)
        s_close(&self->connections[index], false);
    zfed_curve_client_destroy(&self->curve);
    zfed_linkmon_destroy(&self->linkmon);
    free(self->connections);
    free(self->computes);
    free(self->items);
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
