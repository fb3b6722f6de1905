/*  zfed_round_model - what a round of a model service adds to a round
    (schemas/MODELS.md 9, 10, 13).

    Tasks carry the published global (zfed_publish).  A result is checked
    whole before it is accepted: its descriptor, its data frame, its
    layout against the global's (the first difference goes in the
    record), its samples and the service's own keys, and, when inline,
    every float of it.  An inline result's data frame is taken from the
    client without a copy; a result by reference stays with its worker,
    which holds it until released.

    At the close the pass (zfed_pass) reads the accepted results in task
    order, those by reference through the fetcher, one transfer each.  A
    result the pass cannot use is dropped: refused (bad data: counted
    invalid, named in the record) or lost (its holder gone); its task is
    open again.  While the quorum still holds, a new pass starts without
    it; otherwise the round collects again, the task sent anew, within the
    round's deadline.  Once the new global is written every result read
    or refused by reference is released; one that arrives late, twice, or
    while the round aggregates is released at once.
*/
#include "controller/zfed_evaluation.h"
#include "controller/zfed_job_private.h"
#include "controller/zfed_pass.h"
#include "controller/zfed_round_private.h"
#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_safetensors.h"
#include "zfed/zfed_signal.h"
#include "zfed/zfed_transfer.h"
#include "zfed/zfed_util.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

//  Most refusals kept in one round record (all are counted in invalid).
#define REFUSED_KEPT 100

typedef struct {
    bool held;     //  accepted: its model is ours to read, then to release or free
    bool released; //  by reference: zfed.release sent
    zfed_descriptor_t descriptor;
    //  Inline: the data frame, taken from the client (or, past the job's
    //  inline_memory, a read-only map of the file it was spilled to).
    void *data;
    size_t size;
    bool spilled;
    zfed_client_free_fn *free_fn;
    void *hint;
    uint64_t weight;
    //  From the last pass that read it.
    bool aggregated;
    double norm;
    double score;
    bool selected;
} mresult_t;

struct _zfed_mround_t {
    zfed_round_env_t *env;
    round_t *round;
    mresult_t *results; //  one per task
    json_t *refused;
    //  The pass running, its sources (task order) and their transfers.
    zfed_pass_t *pass;
    uint32_t *source_task;
    zfed_fetch_t **transfers;
    size_t sources;
    uint64_t inline_held; //  bytes of inline results in memory
    uint32_t passes;
    int64_t pass_started_us;
    int64_t pass_us;
    uint64_t held_peak;
    zfed_model_file_t out; //  the new global, once written
};

//  ---------------------------------------------------------------------
//  Releases

//  zfed.release of one result held by reference (fire and forget: an
//  answer, or none, changes nothing).
static void s_release_descriptor(zfed_round_env_t *self, const zfed_descriptor_t *descriptor)
{
    if (zfed_descriptor_is_inline(descriptor) || !descriptor->source[0])
        return;
    const uint8_t(*ids)[ZFED_MODEL_ID_SIZE] = (const uint8_t(*)[ZFED_MODEL_ID_SIZE])descriptor->id;
    if (zfed_fetcher_release(self->model->fetcher, descriptor->source, ids, 1, NULL) != 0)
        zfed_debug("cannot release a result held by %s", descriptor->source);
}

static bool s_to_release(const mresult_t *result)
{
    return result->held && !result->released && !zfed_descriptor_is_inline(&result->descriptor);
}

//  Every held result by reference not released yet, one zfed.release per
//  holder (up to ZFED_RELEASE_IDS_MAX ids each).
static void s_release_all(zfed_mround_t *mround, uint32_t tasks)
{
    zfed_fetcher_t *fetcher = mround->env->model->fetcher;
    uint8_t(*ids)[ZFED_MODEL_ID_SIZE] = malloc(ZFED_RELEASE_IDS_MAX * sizeof *ids);
    for (uint32_t first = 0; first < tasks; first++) {
        if (!s_to_release(&mround->results[first]))
            continue;
        const char *holder = mround->results[first].descriptor.source;
        size_t count = 0;
        for (uint32_t index = first; index < tasks; index++) {
            mresult_t *result = &mround->results[index];
            if (!s_to_release(result) || strcmp(result->descriptor.source, holder) != 0)
                continue;
            result->released = true;
            if (!ids) {
                s_release_descriptor(mround->env,
                                     &result->descriptor); //  out of memory: one by one
                continue;
            }
            memcpy(ids[count++], result->descriptor.id, ZFED_MODEL_ID_SIZE);
            if (count == ZFED_RELEASE_IDS_MAX || index + 1 == tasks) {
                zfed_fetcher_release(fetcher, holder, (const uint8_t(*)[ZFED_MODEL_ID_SIZE])ids,
                                     count, NULL);
                count = 0;
            }
        }
        if (count)
            zfed_fetcher_release(fetcher, holder, (const uint8_t(*)[ZFED_MODEL_ID_SIZE])ids, count,
                                 NULL);
    }
    free(ids);
}

static void s_forget(zfed_mround_t *mround, mresult_t *result)
{
    if (result->data && !result->spilled)
        mround->inline_held -= result->size;
    if (result->free_fn)
        result->free_fn(result->data, result->hint);
    zfed_descriptor_clear(&result->descriptor);
    memset(result, 0, sizeof *result);
}

void zfed_mround_unused(zfed_round_env_t *self, const zfed_msg_t *message)
{
    const msgpack_object *model = zfed_map_get(zfed_msg_outputs_object(message), ZFED_OUTPUT_MODEL);
    zfed_descriptor_t descriptor = {0};
    char reason[REASON_MAX];
    if (model && zfed_descriptor_read(model, ZFED_DESCRIPTOR_RESULT, &descriptor, reason,
                                      sizeof reason) == 0)
        s_release_descriptor(self, &descriptor);
    zfed_descriptor_clear(&descriptor);
}

//  ---------------------------------------------------------------------
//  A round's state

int zfed_mround_begin(zfed_round_env_t *self, round_t *round)
{
    zfed_mround_t *mround = calloc(1, sizeof *mround);
    if (mround)
        mround->results = calloc(self->job->tasks, sizeof *mround->results);
    if (mround)
        mround->refused = json_array();
    round->model = mround;
    if (!mround || !mround->results || !mround->refused) {
        snprintf(self->failure, sizeof self->failure, "round %u: out of memory", round->number);
        return -1;
    }
    mround->env = self;
    mround->round = round;
    //  The global of this round: published once (the same model again is
    //  not published again).
    const zfed_model_file_t *current = zfed_models_current(self->model->models);
    char path[PATH_MAX], reason[REASON_MAX];
    zfed_models_path(self->model->models, current->name, path);
    if (zfed_publish_set(self->model->publish, path, current->sha256, reason, sizeof reason) != 0) {
        snprintf(self->failure, sizeof self->failure, "round %u: cannot publish %s: %.*s",
                 round->number, current->name, FAILURE_REASON_MAX - 64, reason);
        return -1;
    }
    return 0;
}

void zfed_mround_end(zfed_round_env_t *self, round_t *round)
{
    zfed_mround_t *mround = round->model;
    if (!mround)
        return;
    zfed_pass_destroy(&mround->pass);
    if (mround->results) {
        s_release_all(mround, self->job->tasks);
        for (uint32_t index = 0; index < self->job->tasks; index++)
            s_forget(mround, &mround->results[index]);
    }
    free(mround->results);
    free(mround->source_task);
    free(mround->transfers);
    json_decref(mround->refused);
    free(mround);
    round->model = NULL;
}

zfed_global_t zfed_mround_global(zfed_round_env_t *self)
{
    zfed_global_t global = {0};
    size_t size = 0;
    global.value = (uint8_t *)zfed_publish_descriptor(self->model->publish, &size);
    global.size = size;
    global.round = zfed_models_current(self->model->models)->round;
    return global;
}

int zfed_mround_send(zfed_round_env_t *self, const char *service, const msgpack_sbuffer *body,
                     uint64_t ticket)
{
    const void *data;
    size_t size;
    zfed_client_free_fn *free_fn;
    void *hint;
    if (zfed_publish_data(self->model->publish, &data, &size, &free_fn, &hint) == 0)
        return zfed_client_send_data_ticket(self->client, service,
                                            self->plain_broker ? NULL : &ticket, body->data,
                                            body->size, data, size, free_fn, hint);
    if (self->plain_broker)
        return zfed_client_send(self->client, service, body->data, body->size);
    return zfed_client_send_ticket(self->client, service, ticket, body->data, body->size);
}

//  ---------------------------------------------------------------------
//  Results

static void s_refuse(zfed_round_env_t *self, round_t *round, uint32_t index, const char *worker,
                     uint32_t attempt, const char *reason)
{
    round->invalid++;
    zfed_round_warn(round, "task %u: result from %s refused: %s", index, worker, reason);
    if (json_array_size(round->model->refused) < REFUSED_KEPT)
        json_array_append_new(round->model->refused,
                              json_pack("{s:i,s:s,s:i,s:s}", "task", index, "worker", worker,
                                        "attempt", attempt, "reason", reason));
}

//  The result's checks (MODELS.md 9.2, 9.3) but its by-reference data's,
//  which the pass checks as it reads.  0, or -1 with the reason.
static int s_check_result(zfed_round_env_t *self, uint32_t index, const task_t *task,
                          const msgpack_object *outputs, const uint8_t *data, size_t data_size,
                          zfed_descriptor_t *descriptor, uint64_t *weight, char *reason,
                          size_t reason_size)
{
    const msgpack_object *model = zfed_map_get(outputs, ZFED_OUTPUT_MODEL);
    if (!model) {
        snprintf(reason, reason_size,
                 "model: missing (a model service's result carries its "
                 "model's descriptor)");
        return -1;
    }
    char why[REASON_MAX - 64];
    if (zfed_descriptor_read(model, ZFED_DESCRIPTOR_RESULT, descriptor, why, sizeof why) != 0 ||
        zfed_descriptor_check_data(descriptor, data != NULL, data_size, why, sizeof why) != 0) {
        snprintf(reason, reason_size, "model: %s", why);
        return -1;
    }
    if (!zfed_layout_equal(descriptor->layout, zfed_models_layout(self->model->models),
                           "the global", why, sizeof why)) {
        snprintf(reason, reason_size, "model: %s", why);
        return -1;
    }
    const msgpack_object *samples = zfed_map_get(outputs, ZFED_OUTPUT_SAMPLES);
    if (!samples || samples->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        snprintf(reason, reason_size, "samples: %s (an unsigned integer: the result's weight)",
                 samples ? "not an unsigned integer" : "missing");
        return -1;
    }
    *weight = samples->via.u64;
    if (self->service->check_metrics) {
        msgpack_unpacked params;
        zfed_fault_t fault = {0};
        int rc = zfed_unpack(&params, task->params, task->params_size);
        if (rc == 0) {
            zfed_job_service_params(self->job, &params.data);
            rc = self->service->check_metrics(&params.data, outputs, &fault);
        } else
            zfed_fault_set(&fault, ZFED_ERR_INTERNAL, "", "cannot unpack the task's params");
        msgpack_unpacked_destroy(&params);
        if (rc != 0) {
            //  Cut to fit: the text is for people.
            if (snprintf(reason, reason_size, "%s%s%s", fault.field, fault.field[0] ? ": " : "",
                         fault.text) >= (int)reason_size)
                reason[reason_size - 1] = '\0';
            return -1;
        }
    }
    //  A site's result is of its site's shard, weighed by its count.
    if (self->job->site_shards &&
        zfed_sites_check(self->job->split_json, zfed_job_site(self->job, index),
                         &self->job->site_shards[index], outputs, reason, reason_size) != 0)
        return -1;
    if (data) {
        //  Inline: read whole now, so every float is checked before use.
        const zfed_layout_t *layout = descriptor->layout;
        for (size_t t = 0; t < zfed_layout_size(layout); t++) {
            const zfed_tensor_t *tensor = zfed_layout_tensor(layout, t);
            if (zfed_tensor_check_finite(tensor, 0, data + tensor->offset, tensor->count, why,
                                         sizeof why) != 0) {
                snprintf(reason, reason_size, "%s", why);
                return -1;
            }
        }
    }
    return 0;
}

static void s_unmap(void *data, void *hint)
{
    munmap(data, (size_t)(uintptr_t)hint);
}

//  Past the job's inline_memory, an inline result goes to a file of the
//  work folder, read back through a map (page cache, not the heap); the
//  file is unlinked at once and goes when the map does.  On failure the
//  result simply stays in memory.
static void s_spill(zfed_round_env_t *self, round_t *round, uint32_t index, mresult_t *result)
{
    char name[ZFED_MODELS_NAME_MAX], path[PATH_MAX];
    snprintf(name, sizeof name, "models/.spill-%06u-%06u", round->number, index);
    zfed_models_path(self->model->models, name, path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        zfed_warn("cannot spill task %u's result to %s: %s", index, path, strerror(errno));
        return;
    }
    size_t done = 0;
    while (done < result->size) {
        ssize_t written = write(fd, (uint8_t *)result->data + done, result->size - done);
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            break;
        done += (size_t)written;
    }
    void *map = done == result->size && result->size > 0
                    ? mmap(NULL, result->size, PROT_READ, MAP_SHARED, fd, 0)
                    : MAP_FAILED;
    close(fd);
    unlink(path);
    if (map == MAP_FAILED) {
        if (result->size > 0)
            zfed_warn("cannot spill task %u's result to %s", index, path);
        return;
    }
    if (result->free_fn)
        result->free_fn(result->data, result->hint);
    result->data = map;
    result->free_fn = s_unmap;
    result->hint = (void *)(uintptr_t)result->size;
    result->spilled = true;
}

void zfed_mround_result(zfed_round_env_t *self, round_t *round, zfed_msg_t **message_p,
                        const uint8_t *data, size_t data_size, int64_t now)
{
    (void)now;
    zfed_msg_t *message = *message_p;
    uint32_t index = zfed_msg_task_id(message);
    const task_t *task = &round->tasks[index];
    mresult_t *result = &round->model->results[index];
    zfed_descriptor_t descriptor = {0};
    uint64_t weight = 0;
    char reason[REASON_MAX];
    if (s_check_result(self, index, task, zfed_msg_outputs_object(message), data, data_size,
                       &descriptor, &weight, reason, sizeof reason) != 0) {
        s_refuse(self, round, index, zfed_msg_worker(message), zfed_msg_attempt(message), reason);
        //  A refused result by reference is released at once.
        if (descriptor.layout)
            s_release_descriptor(self, &descriptor);
        else
            zfed_mround_unused(self, message);
        zfed_descriptor_clear(&descriptor);
        return;
    }
    s_forget(round->model, result);
    if (data && zfed_client_take_data(self->client, &result->data, &result->size, &result->free_fn,
                                      &result->hint) != 0) {
        zfed_descriptor_clear(&descriptor);
        zfed_round_warn(round, "task %u: cannot keep the result's data (out of memory)", index);
        return;
    }
    if (data) {
        if (round->model->inline_held + result->size > self->job->inline_memory)
            s_spill(self, round, index, result);
        if (!result->spilled)
            round->model->inline_held += result->size;
    }
    result->descriptor = descriptor;
    result->weight = weight;
    result->held = true;
    zfed_round_accept(round, index, message_p);
}

//  ---------------------------------------------------------------------
//  The pass

static int s_start_transfer(void *hint, size_t source, uint64_t first)
{
    zfed_mround_t *mround = hint;
    const mresult_t *result = &mround->results[mround->source_task[source]];
    char reason[REASON_MAX];
    mround->transfers[source] =
        zfed_fetcher_start(mround->env->model->fetcher, &result->descriptor, first,
                           (void *)(uintptr_t)(source + 1), reason, sizeof reason);
    if (!mround->transfers[source]) {
        zfed_warn("round %u task %u: cannot read the result: %s", mround->round->number,
                  mround->source_task[source], reason);
        return -1;
    }
    return 0;
}

static void s_cancel_transfer(void *hint, size_t source)
{
    zfed_mround_t *mround = hint;
    zfed_fetch_destroy(&mround->transfers[source]);
}

static void s_chunk_free(void *data, void *hint)
{
    (void)data;
    zfed_chunk_t *chunk = hint;
    zfed_chunk_destroy(&chunk);
}

static zfed_opt_t s_optimiser(const zfed_job_t *job)
{
    zfed_opt_t opt;
    zfed_opt_kind_t kind = ZFED_OPT_FEDAVGM;
    zfed_opt_parse(zfed_agg_strategy_name(job->strategy), &kind);
    zfed_opt_defaults(kind, &opt);
    if (zfed_agg_strategy_is_optimiser(job->strategy)) {
        opt.lr = job->server_lr;
        opt.beta1 = job->beta1;
        opt.beta2 = job->beta2;
        opt.tau = job->tau;
    }
    return opt;
}

int zfed_mround_close(zfed_round_env_t *self, round_t *round)
{
    zfed_mround_t *mround = round->model;
    const zfed_job_t *job = self->job;
    zfed_models_t *models = self->model->models;
    free(mround->source_task);
    free(mround->transfers);
    mround->source_task = calloc(job->tasks, sizeof *mround->source_task);
    mround->transfers = calloc(job->tasks, sizeof *mround->transfers);
    zfed_pass_source_t *sources = calloc(job->tasks, sizeof *sources);
    if (!mround->source_task || !mround->transfers || !sources) {
        free(sources);
        snprintf(self->failure, sizeof self->failure, "round %u: out of memory", round->number);
        return -1;
    }
    size_t count = 0;
    for (uint32_t index = 0; index < job->tasks; index++) {
        mresult_t *result = &mround->results[index];
        result->aggregated = false;
        if (round->tasks[index].state != TASK_DONE)
            continue;
        mround->source_task[count] = index;
        sources[count++] = (zfed_pass_source_t){
            .weight = result->weight,
            .data = result->data,
            .chunk = zfed_descriptor_is_inline(&result->descriptor) ? 0 : result->descriptor.chunk};
    }
    mround->sources = count;
    const zfed_model_file_t *current = zfed_models_current(models);
    zfed_models_round_names(models, round->number, &mround->out);
    char global[PATH_MAX], out[PATH_MAX], m_in[PATH_MAX], v_in[PATH_MAX], m_out[PATH_MAX],
        v_out[PATH_MAX];
    zfed_pass_settings_t settings = {
        .strategy = job->strategy,
        .trim = job->trim,
        .opt = s_optimiser(job),
        .krum_f = job->krum_f,
        .krum_m = job->krum_m,
        .chunk = job->chunk,
        .window = ZFED_ROUND_FETCH_WINDOW,
        .layout = zfed_models_layout(models),
        .global_path = zfed_models_path(models, current->name, global),
        .out_path = zfed_models_path(models, mround->out.name, out),
        .m_in = current->has_state ? zfed_models_path(models, current->m_name, m_in) : NULL,
        .v_in = current->has_state && current->v_name[0]
                    ? zfed_models_path(models, current->v_name, v_in)
                    : NULL,
        .m_out = mround->out.has_state ? zfed_models_path(models, mround->out.m_name, m_out) : NULL,
        .v_out = mround->out.v_name[0] ? zfed_models_path(models, mround->out.v_name, v_out) : NULL,
    };
    zfed_pass_fetch_t fetch = {mround, s_start_transfer, s_cancel_transfer};
    char reason[ZFED_PASS_REASON_MAX];
    mround->pass = zfed_pass_new(&settings, sources, count, &fetch, reason, sizeof reason);
    free(sources);
    if (!mround->pass) {
        snprintf(self->failure, sizeof self->failure, "round %u: cannot aggregate: %.*s",
                 round->number, FAILURE_REASON_MAX - 64, reason);
        return -1;
    }
    mround->passes++;
    mround->pass_started_us = zfed_clock_us();
    zfed_debug("round %u: aggregation pass %u over %zu results", round->number, mround->passes,
               count);
    return 0;
}

bool zfed_mround_passing(const round_t *round)
{
    return round->model && round->model->pass;
}

//  The pass could not use a result: its task is open again.
static zfed_mround_status_t s_dropped(zfed_round_env_t *self, round_t *round, int64_t now)
{
    zfed_mround_t *mround = round->model;
    bool refused = false;
    size_t source = zfed_pass_dropped(mround->pass, &refused);
    uint32_t index = mround->source_task[source];
    task_t *task = &round->tasks[index];
    const char *worker = task->result ? zfed_msg_worker(task->result) : "?";
    uint32_t attempt = task->result ? zfed_msg_attempt(task->result) : 0;
    char reason[ZFED_PASS_REASON_MAX];
    snprintf(reason, sizeof reason, "%s", zfed_pass_reason(mround->pass));
    zfed_pass_destroy(&mround->pass);
    if (refused)
        s_refuse(self, round, index, worker, attempt, reason);
    else
        zfed_round_warn(round, "task %u: the result from %s was lost while aggregating: %s", index,
                        worker, reason);
    mresult_t *result = &mround->results[index];
    s_release_descriptor(self, &result->descriptor);
    s_forget(mround, result);
    zfed_msg_destroy(&task->result);
    task->state = TASK_PENDING;
    round->answered--;
    if (round->answered >= self->job->quorum)
        return zfed_mround_close(self, round) == 0 ? ZFED_MROUND_PASSING : ZFED_MROUND_FAILED;
    //  Below the quorum: the task goes again, and the round waits for it
    //  (and any other) within its deadline.
    round->quorum_at_ms = 0;
    if (task->attempts <= self->job->retries)
        zfed_round_send_task(self, round, index, now);
    else {
        task->state = TASK_FAILED;
        round->failed++;
    }
    return ZFED_MROUND_COLLECT;
}

//  The new global is written: figures for the record, results released.
static void s_done(zfed_round_env_t *self, round_t *round)
{
    zfed_mround_t *mround = round->model;
    zfed_pass_t *pass = mround->pass;
    memcpy(mround->out.sha256, zfed_pass_sha256(pass), ZFED_SHA256_SIZE);
    mround->out.size = zfed_pass_size(pass);
    mround->out.tensors = zfed_layout_size(zfed_models_layout(self->model->models));
    if (mround->out.has_state) {
        memcpy(mround->out.m_sha256, zfed_pass_state_sha256(pass, 'm'), ZFED_SHA256_SIZE);
        memcpy(mround->out.v_sha256, zfed_pass_state_sha256(pass, 'v'), ZFED_SHA256_SIZE);
    }
    for (size_t source = 0; source < mround->sources; source++) {
        mresult_t *result = &mround->results[mround->source_task[source]];
        result->aggregated = true;
        result->norm = zfed_pass_norm(pass, source);
        result->score = zfed_pass_krum_score(pass, source);
        result->selected = zfed_pass_selected(pass, source);
    }
    mround->held_peak = zfed_pass_held_peak(pass);
    mround->pass_us = zfed_clock_us() - mround->pass_started_us;
    zfed_pass_destroy(&mround->pass);
    s_release_all(mround, self->job->tasks);
}

//  ---------------------------------------------------------------------
//  Evaluation (MODELS.md 9.3): inline, before the record is written, or
//  pipelined: the record is written pending, the next round's tasks go
//  out with the new global, and the round's model is scored on a thread
//  meanwhile; its figures are written before the next round's record.

int zfed_mround_evaluate(zfed_round_env_t *self, const round_t *round, json_t *record)
{
    zfed_model_env_t *env = self->model;
    if (!env->eval_data)
        return 0;
    if (!env->eval_inline)
        return json_object_set_new(record, "eval", json_string(ZFED_RECORDS_EVAL_PENDING));
    char path[PATH_MAX];
    zfed_models_path(env->models, round->model->out.name, path);
    zfed_evaluation_t *evaluation = zfed_evaluation_start(
        self->job, self->service, env->eval_data, round->number, path, round->tasks[0].params,
        round->tasks[0].params_size, false, self->failure, sizeof self->failure);
    return evaluation
               ? zfed_evaluation_finish(&evaluation, record, self->failure, sizeof self->failure)
               : -1;
}

void zfed_mround_report(zfed_round_env_t *self, const zfed_progress_round_t *view,
                        const json_t *aggregate, const json_t *record, int64_t duration_us)
{
    char text[160];
    const char *hex = json_string_value(json_object_get(aggregate, "sha256"));
    int used = snprintf(text, sizeof text, "sha256 %.16s... (%" JSON_INTEGER_FORMAT " bytes)",
                        hex ? hex : "?", json_integer_value(json_object_get(aggregate, "size")));
    const json_t *accuracy = json_object_get(record, "test_accuracy");
    if (accuracy && used > 0 && (size_t)used < sizeof text)
        snprintf(text + used, sizeof text - (size_t)used, ", test accuracy %.4f, loss %.4f",
                 json_real_value(accuracy), json_real_value(json_object_get(record, "test_loss")));
    zfed_progress_round_closed(self->progress, view, text, duration_us);
}

int zfed_mround_evaluate_start(zfed_round_env_t *self, const round_t *round,
                               const json_t *aggregate, const zfed_progress_round_t *view,
                               int64_t duration_us, const json_t *record)
{
    zfed_model_env_t *env = self->model;
    if (zfed_records_pending(self->records) != (int64_t)round->number) {
        zfed_mround_report(self, view, aggregate, record, duration_us);
        return 0;
    }
    char path[PATH_MAX];
    zfed_models_path(env->models, round->model->out.name, path);
    env->evaluation = zfed_evaluation_start(
        self->job, self->service, env->eval_data, round->number, path, round->tasks[0].params,
        round->tasks[0].params_size, true, self->failure, sizeof self->failure);
    if (!env->evaluation)
        return -1;
    env->eval_aggregate = json_incref((json_t *)aggregate);
    env->eval_view = *view;
    env->eval_duration_us = duration_us;
    return 0;
}

int zfed_round_settle(zfed_round_env_t *self)
{
    zfed_model_env_t *env = self->model;
    if (!env || !env->eval_data || zfed_records_pending(self->records) < 0)
        return 0;
    uint32_t number = (uint32_t)zfed_records_pending(self->records);
    //  A resumed job's pending round: scored here, before anything else.
    if (!env->evaluation) {
        const zfed_model_file_t *current = zfed_models_current(env->models);
        char path[PATH_MAX];
        uint8_t *params = NULL;
        size_t params_size = 0;
        zfed_error_t error;
        if (current->round != (int64_t)number) {
            snprintf(self->failure, sizeof self->failure,
                     "round %u: cannot evaluate its model: the current global is round %" PRId64
                     "'s",
                     number, current->round);
            return -1;
        }
        if (zfed_job_pack_params(self->job, number, 0, &params, &params_size, &error) != 0) {
            snprintf(self->failure, sizeof self->failure,
                     "round %u: cannot evaluate its model: %.*s", number, FAILURE_REASON_MAX / 2,
                     error.message);
            return -1;
        }
        zfed_models_path(env->models, current->name, path);
        env->evaluation =
            zfed_evaluation_start(self->job, self->service, env->eval_data, number, path, params,
                                  params_size, false, self->failure, sizeof self->failure);
        free(params);
        if (!env->evaluation)
            return -1;
    }
    //  (Without figures, finish fails "out of memory", and still joins.)
    json_t *figures = json_object();
    zfed_error_t error;
    int rc = zfed_evaluation_finish(&env->evaluation, figures, self->failure, sizeof self->failure);
    if (rc == 0 &&
        (zfed_records_evaluated(self->records, figures, &error) != 0 ||
         zfed_models_set_best(env->models, zfed_records_best_round(self->records), &error) != 0)) {
        snprintf(self->failure, sizeof self->failure, "%.*s", FAILURE_REASON_MAX, error.message);
        rc = -1;
    }
    if (rc == 0 && env->eval_aggregate)
        zfed_mround_report(self, &env->eval_view, env->eval_aggregate, figures,
                           env->eval_duration_us);
    else if (rc == 0)
        zfed_progress_print(self->progress,
                            "round %u evaluated on resume: test accuracy %.4f, loss %.4f\n", number,
                            json_real_value(json_object_get(figures, "test_accuracy")),
                            json_real_value(json_object_get(figures, "test_loss")));
    json_decref(env->eval_aggregate);
    env->eval_aggregate = NULL;
    json_decref(figures);
    return rc;
}

zfed_mround_status_t zfed_mround_step(zfed_round_env_t *self, round_t *round, int64_t now)
{
    zfed_mround_t *mround = round->model;
    switch (zfed_pass_step(mround->pass)) {
    case ZFED_PASS_WAITING:
        return ZFED_MROUND_PASSING;
    case ZFED_PASS_DONE:
        s_done(self, round);
        return ZFED_MROUND_DONE;
    case ZFED_PASS_DROPPED:
        return s_dropped(self, round, now);
    default:
        snprintf(self->failure, sizeof self->failure, "round %u: cannot aggregate: %.*s",
                 round->number, FAILURE_REASON_MAX - 64, zfed_pass_reason(mround->pass));
        zfed_pass_destroy(&mround->pass);
        return ZFED_MROUND_FAILED;
    }
}

//  ---------------------------------------------------------------------
//  Waiting

//  Fetcher events: chunks to the pass, failures too.
static void s_fetcher_events(zfed_mround_t *mround)
{
    zfed_fetch_event_t event;
    while (zfed_fetcher_next(mround->env->model->fetcher, &event)) {
        size_t source = (size_t)(uintptr_t)event.user;
        bool ours = mround->pass && source >= 1 && source <= mround->sources;
        if (event.kind == ZFED_FETCH_EVENT_CHUNK) {
            zfed_chunk_t *chunk = event.chunk;
            if (!ours) {
                zfed_chunk_destroy(&chunk);
                continue;
            }
            zfed_pass_chunk(mround->pass, source - 1, zfed_chunk_index(chunk),
                            zfed_chunk_data(chunk), zfed_chunk_size(chunk), s_chunk_free, chunk);
        } else if (event.kind == ZFED_FETCH_EVENT_FAILED && ours)
            zfed_pass_fail(mround->pass, source - 1, false, "%s", event.reason);
    }
}

int zfed_mround_wait(zfed_round_env_t *self, round_t *round, int64_t wait_ms)
{
    zfed_model_env_t *model = self->model;
    int64_t now = zfed_clock_ms();
    int64_t due = now + wait_ms;
    if (zfed_fetcher_next_due(model->fetcher) < due)
        due = zfed_fetcher_next_due(model->fetcher);
    if (model->blob && zfed_blob_server_next_due(model->blob) < due)
        due = zfed_blob_server_next_due(model->blob);
    zmq_pollitem_t items[4] = {{zfed_client_socket(self->client), 0, ZMQ_POLLIN, 0},
                               {zfed_fetcher_socket(model->fetcher), 0, ZMQ_POLLIN, 0}};
    int count = 2;
    int blob_item = -1, signal_item = -1;
    void *blob_socket = model->blob ? zfed_blob_server_socket(model->blob) : NULL;
    if (blob_socket) {
        blob_item = count;
        items[count++] = (zmq_pollitem_t){blob_socket, 0, ZMQ_POLLIN, 0};
    }
    if (zfed_signal_fd() >= 0) {
        signal_item = count;
        items[count++] = (zmq_pollitem_t){NULL, zfed_signal_fd(), ZMQ_POLLIN, 0};
    }
    (void)signal_item;
    int64_t timeout = due > now ? due - now : 0;
    if (zmq_poll(items, count, (long)timeout) < 0)
        return 0;
    now = zfed_clock_ms();
    if (items[1].revents & ZMQ_POLLIN)
        zfed_fetcher_handle(model->fetcher);
    zfed_fetcher_tick(model->fetcher, now);
    s_fetcher_events(round->model);
    if (model->blob) {
        if (blob_item >= 0 && items[blob_item].revents & ZMQ_POLLIN)
            zfed_blob_server_handle(model->blob);
        zfed_blob_server_tick(model->blob, now);
    }
    //  The client is read by the caller (zfed_client_recv with no wait),
    //  which also keeps its connection monitor going.
    return 1;
}

//  ---------------------------------------------------------------------
//  The record

void zfed_mround_describe(const zfed_round_env_t *self, const round_t *round, uint32_t index,
                          json_t *entry)
{
    (void)self;
    const mresult_t *result = &round->model->results[index];
    const zfed_descriptor_t *descriptor = &result->descriptor;
    char hex[ZFED_SHA256_HEX_SIZE];
    json_object_set_new(entry, "samples", json_integer((json_int_t)result->weight));
    json_object_set_new(entry, "size", json_integer((json_int_t)descriptor->size));
    json_object_set_new(entry, "inline", json_boolean(zfed_descriptor_is_inline(descriptor)));
    if (result->spilled)
        json_object_set_new(entry, "spilled", json_true());
    json_object_set_new(entry, "sha256",
                        descriptor->has_sha256
                            ? json_string(zfed_sha256_hex(descriptor->sha256, hex))
                            : json_null());
    json_object_set_new(entry, "update_norm", json_real(result->norm));
    if (self->job->strategy == ZFED_AGG_KRUM) {
        json_object_set_new(entry, "krum_score", json_real(result->score));
        json_object_set_new(entry, "selected", json_boolean(result->selected));
    }
}

json_t *zfed_mround_aggregate_json(const zfed_round_env_t *self, const round_t *round)
{
    (void)self;
    return zfed_models_json(&round->model->out);
}

json_t *zfed_mround_refused_json(const round_t *round)
{
    return json_incref(round->model->refused);
}

json_t *zfed_mround_pass_json(const round_t *round)
{
    const zfed_mround_t *mround = round->model;
    return json_pack("{s:I,s:i,s:I}", "duration_us", (json_int_t)mround->pass_us, "passes",
                     (int)mround->passes, "held_peak_bytes", (json_int_t)mround->held_peak);
}

json_t *zfed_mround_state_json(const round_t *round)
{
    return zfed_models_state_json(&round->model->out);
}

int zfed_mround_advance(zfed_round_env_t *self, round_t *round, zfed_error_t *error)
{
    return zfed_models_advance(self->model->models, &round->model->out,
                               zfed_records_best_round(self->records), error);
}
