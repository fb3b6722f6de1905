/*  zfed_controller - a job: its rounds, one after the other, and what it
    leaves behind.

    The parts: zfed_round runs one round, zfed_records keeps the global
    state, the round records, the best round and the summary (and rebuilds
    them on resume), zfed_progress is what people see on stdout, and
    zfed_watch says early why a round hears nothing.
*/
#include "zfed/zfed_controller.h"
#include "controller/zfed_evaluation.h"
#include "controller/zfed_job_private.h"
#include "controller/zfed_progress.h"
#include "controller/zfed_records.h"
#include "controller/zfed_round.h"
#include "controller/zfed_status.h"
#include "controller/zfed_vote.h"
#include "controller/zfed_watch.h"
#include "zfed/zfed_client.h"
#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_number.h"
#include "zfed/zfed_service.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct _zfed_controller_t {
    const zfed_job_t *job;
    zfed_round_env_t env;
    zfed_client_t *client;
    zfed_records_t *records;
    zfed_progress_t *progress;
    zfed_watch_t *watch;
    bool models; //  a model service: model below is set up
    zfed_model_env_t model;
    bool eval_owned; //  model.eval_data is ours to close (not the job's)
    bool no_compact; //  MDP/0.1 requests even to a broker that takes compact ones
};

//  A model service's parts: the model files (the initial model written,
//  or a resumed job's current model checked), the blob server when the
//  global is too big to travel inline, the fetcher, the publisher.
static int s_models_new(zfed_controller_t *self, const zfed_service_t *service, bool resume,
                        bool eval_inline, zfed_error_t *error)
{
    const zfed_job_t *job = self->job;
    zfed_model_env_t *model = &self->model;
    self->models = true;
    model->models = zfed_models_new(zfed_records_path(self->records), job, service, error);
    if (!model->models)
        return -1;
    int rc = resume
                 ? zfed_models_resume(model->models, (int64_t)zfed_records_next(self->records) - 1,
                                      zfed_records_model_value(self->records),
                                      zfed_records_model_state(self->records),
                                      zfed_records_best_round(self->records), error)
                 : zfed_models_start(model->models, error);
    if (rc != 0)
        return -1;
    const zfed_model_file_t *current = zfed_models_current(model->models);
    zfed_records_set_model_global(self->records, current->round, zfed_models_json(current));
    const char *curve_cert = job->curve_cert[0] ? job->curve_cert : NULL;
    const char *server_key = job->server_key[0] ? job->server_key : NULL;
    if (zfed_layout_nbytes(zfed_models_layout(model->models)) > ZFED_MODEL_INLINE_MAX) {
        zfed_blob_server_config_t config;
        zfed_blob_server_config_defaults(&config);
        config.endpoint = job->endpoint;
        config.hold_ms = ZFED_HOLD_FOREVER; //  a global is served until the next replaces it
        config.curve_cert = curve_cert;
        config.curve_server_key = server_key;
        model->blob = zfed_blob_server_new(&config);
        if (!model->blob)
            return zfed_error_set(error, ZFED_E_TRANSPORT, "connect",
                                  "cannot set up the blob service at %s", job->endpoint);
    }
    zfed_fetcher_config_t config;
    zfed_fetcher_config_defaults(&config);
    config.endpoint = job->endpoint;
    config.window = ZFED_ROUND_FETCH_WINDOW;
    config.curve_cert = curve_cert;
    config.curve_server_key = server_key;
    model->fetcher = zfed_fetcher_new(&config);
    model->publish = zfed_publish_new(model->blob, job->chunk);
    if (!model->fetcher || !model->publish)
        return zfed_error_set(error, ZFED_E_TRANSPORT, "connect",
                              "cannot set up the model transfers at %s", job->endpoint);
    zfed_client_allow_data(self->client, true);
    //  Evaluated here, not by a worker: the test set is the controller's
    //  (no site holds it), the model is already in its work folder, and a
    //  forward pass over 10,000 images costs tens of ms, less than sending
    //  the model out and waiting for an answer would.  The set is the one
    //  zfed_job_finish opened to check the folder (read once), or opened
    //  here for a job finished without it.
    model->eval_inline = eval_inline;
    if (job->eval_set)
        model->eval_data = job->eval_set;
    else if (job->eval_data[0]) {
        self->eval_owned = true;
        zfed_fault_t fault = {0};
        if (service->open_data(job->eval_data, ZFED_DATA_EVAL, &model->eval_data, &fault) != 0)
            return zfed_error_set(error, ZFED_E_INVALID, "eval_data", "%s", fault.text);
    }
    return 0;
}

static void s_models_destroy(zfed_controller_t *self)
{
    const zfed_service_t *service = zfed_service_find(self->job->service);
    if (self->model.evaluation) //  a run that did not settle: joined, dropped
        zfed_evaluation_finish(&self->model.evaluation, NULL, NULL, 0);
    json_decref(self->model.eval_aggregate);
    if (self->model.eval_data && service && self->eval_owned)
        service->close_data(&self->model.eval_data);
    zfed_publish_destroy(&self->model.publish);
    zfed_fetcher_destroy(&self->model.fetcher);
    zfed_blob_server_destroy(&self->model.blob);
    zfed_models_destroy(&self->model.models);
}

//  The closing lines: where things are, and how to go on.
static void s_report(zfed_controller_t *self, int outcome)
{
    const zfed_job_t *job = self->job;
    const char *path = zfed_records_path(self->records);
    if (outcome == ZFED_RUN_FAILED)
        zfed_error("job %s failed: %s", job->job_id, self->env.failure);
    else if (outcome == ZFED_RUN_INTERRUPTED) {
        if (zfed_progress_enabled(self->progress))
            zfed_progress_print(self->progress,
                                "\njob %s interrupted; continue it with --resume %s\n", job->job_id,
                                job->job_id);
        else
            //  stdout is silent, but whoever stopped us needs to know how to
            //  go on.
            zfed_warn("job %s interrupted; continue it with --resume %s (records in %s)",
                      job->job_id, job->job_id, path);
    }
    int64_t best_round = zfed_records_best_round(self->records);
    if (outcome == ZFED_RUN_COMPLETED && best_round >= 0) {
        const json_t *best = zfed_records_best_value(self->records);
        char *value = json_is_string(best)
                          ? zfed_number_abbreviate(json_string_value(best), ZFED_NUMBER_DISPLAY_MAX)
                          : json_dumps(best, JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
        zfed_progress_print(self->progress, "\nbest round: %" PRId64 " (%s %s: %s)\n", best_round,
                            zfed_metric_name(job->metric), job->maximize ? "max" : "min", value);
        free(value);
    }
    zfed_progress_print(self->progress, "%s: %s\n",
                        outcome == ZFED_RUN_COMPLETED ? "results" : "records so far", path);
}

//  Whether the broker stamps replies (PROTOCOL.md 3.1), asked once before
//  anything is sent.  A plain Majordomo broker runs the job without
//  tickets, replies matched by the tasks they name; replicas need a
//  stamp's identity, so with them the job fails here.  No answer keeps
//  the zfed default (stamps required): the rounds then say what is wrong.
//  A broker that says it takes compact client frames gets them (PROTOCOL.md
//  3.3), unless --no-compact; any other gets MDP/0.1.
static int s_probe_broker(zfed_controller_t *self)
{
    const zfed_job_t *job = self->job;
    bool compact = false;
    int stamps = zfed_status_probe(self->client, job->endpoint, &compact);
    if (stamps == -1)
        zfed_warn("no answer to mmi.status from the broker at %s within %d ms: assuming a "
                  "zfed-broker (replies must be stamped)",
                  job->endpoint, ZFED_PROBE_TIMEOUT_MS);
    if (compact && !self->no_compact) {
        zfed_client_set_compact(self->client, true);
        zfed_info("the broker at %s takes compact client frames: requests go compact",
                  job->endpoint);
    }
    if (stamps != 0)
        return ZFED_RUN_COMPLETED;
    self->env.plain_broker = true;
    zfed_warn("the broker at %s does not stamp replies (not a zfed-broker): results are matched "
              "by the task ids they name, with no identity vouched for; --replicas needs a "
              "zfed-broker",
              job->endpoint);
    if (job->replicas > 1) {
        snprintf(self->env.failure, sizeof self->env.failure,
                 "--replicas %u needs a zfed-broker: the broker at %s does not stamp replies, so "
                 "no vote can tell its workers apart; nothing was sent",
                 job->replicas, job->endpoint);
        return ZFED_RUN_FAILED;
    }
    return ZFED_RUN_COMPLETED;
}

int zfed_controller_run(zfed_controller_t *self)
{
    const zfed_job_t *job = self->job;
    uint32_t next = zfed_records_next(self->records);
    if (next == 0)
        zfed_progress_print(self->progress,
                            "job %s: %u rounds of %u %s tasks, quorum %u, %s, best by %s:%s\n",
                            job->job_id, job->rounds, job->tasks, job->service, job->quorum,
                            zfed_agg_strategy_name(job->strategy), zfed_metric_name(job->metric),
                            job->maximize ? "max" : "min");
    else
        zfed_progress_print(self->progress, "job %s: resuming at round %u of %u\n", job->job_id,
                            next + 1, job->rounds);
    int outcome = s_probe_broker(self);
    //  A resumed job whose last round was recorded before its evaluation
    //  ended: evaluated first.
    if (outcome == ZFED_RUN_COMPLETED && zfed_round_settle(&self->env) != 0)
        outcome = ZFED_RUN_FAILED;
    for (uint32_t round = next; round < job->rounds && outcome == ZFED_RUN_COMPLETED; round++) {
        int rc = zfed_round_run(&self->env, round);
        if (rc == 1) {
            outcome = ZFED_RUN_INTERRUPTED;
            snprintf(self->env.failure, sizeof self->env.failure, "interrupted during round %u",
                     round);
            break;
        }
        if (rc != 0) {
            outcome = ZFED_RUN_FAILED;
            break;
        }
    }
    //  The job never ends before its last evaluation: a failed or
    //  interrupted job's records are settled too.
    if (zfed_round_settle(&self->env) != 0 && outcome == ZFED_RUN_COMPLETED)
        outcome = ZFED_RUN_FAILED;
    //  Every record durable before the summary, and before exit: a file
    //  that could not be made so fails the job, whatever its outcome was.
    zfed_error_t drained;
    if (zfed_records_drain(self->records, &drained) != 0) {
        if (outcome != ZFED_RUN_FAILED)
            snprintf(self->env.failure, sizeof self->env.failure, "%.*s",
                     (int)sizeof self->env.failure - 1, drained.message);
        else
            zfed_error("%s", drained.message);
        outcome = ZFED_RUN_FAILED;
    }
    const char *status = outcome == ZFED_RUN_COMPLETED     ? "completed"
                         : outcome == ZFED_RUN_INTERRUPTED ? "interrupted"
                                                           : "failed";
    zfed_progress_table(self->progress, zfed_records_summaries(self->records),
                        zfed_records_late(self->records), job->tasks,
                        zfed_records_best_round(self->records));
    if (zfed_records_write_summary(self->records, status, self->env.failure) != 0 &&
        outcome == ZFED_RUN_COMPLETED)
        outcome = ZFED_RUN_FAILED;
    zfed_error_t error;
    if (self->models &&
        zfed_models_finish(self->model.models, outcome == ZFED_RUN_COMPLETED, &error) != 0) {
        zfed_error("%s", error.message);
        if (outcome == ZFED_RUN_COMPLETED)
            outcome = ZFED_RUN_FAILED;
    }
    s_report(self, outcome);
    return outcome;
}

zfed_controller_t *zfed_controller_new(const zfed_job_t *job,
                                       const zfed_controller_options_t *options,
                                       zfed_error_t *error)
{
    zfed_controller_t *self = calloc(1, sizeof *self);
    if (!self) {
        zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
        return NULL;
    }
    self->job = job;
    self->no_compact = options->no_compact;
    zfed_round_env_init(&self->env);
    const zfed_service_t *service = zfed_service_find(job->service);
    self->progress = zfed_progress_new(options->progress);
    if (!service || !self->progress) {
        zfed_error_set(error, service ? ZFED_E_NOMEM : ZFED_E_INVALID, service ? "" : "service",
                       service ? "out of memory" : "unknown service");
        goto err;
    }
    self->records = zfed_records_new(job, service, options->resume, error);
    if (!self->records)
        goto err;
    zfed_records_set_sync(self->records, options->sync_rounds);
    zfed_records_set_group(self->records, options->sync_rounds ? 0 : options->sync_group_ms);
    self->client = zfed_client_new(job->endpoint, job->curve_cert[0] ? job->curve_cert : NULL,
                                   job->server_key[0] ? job->server_key : NULL);
    if (!self->client) {
        zfed_error_set(error, ZFED_E_TRANSPORT, "connect", "cannot set up the connection to %s",
                       job->endpoint);
        goto err;
    }
    self->watch = zfed_watch_new(self->client, job->endpoint, zfed_job_task_service(job, 0),
                                 options->fail_fast);
    //  A job with sites sends to a service per site: each is watched.
    for (uint32_t task = 1; self->watch && zfed_job_site(job, 0) && task < job->tasks; task++)
        if (zfed_watch_add_service(self->watch, zfed_job_task_service(job, task)) != 0)
            zfed_watch_destroy(&self->watch);
    if (!self->watch) {
        zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
        goto err;
    }
    if (service->kind == ZFED_SERVICE_MODEL &&
        s_models_new(self, service, options->resume, options->eval_inline, error) != 0)
        goto err;
    self->env = (zfed_round_env_t){.job = job,
                                   .service = service,
                                   .client = self->client,
                                   .records = self->records,
                                   .progress = self->progress,
                                   .watch = self->watch,
                                   .fail_fast = options->fail_fast,
                                   .model = self->models ? &self->model : NULL};
    zfed_round_env_init(&self->env);
    //  A liar caught before a stop stays caught (PROTOCOL.md 15.5).
    if (job->exclude_liars)
        zfed_vote_restore(&self->env, zfed_records_excluded(self->records));
    return self;
err:
    zfed_controller_destroy(&self);
    return NULL;
}

void zfed_controller_destroy(zfed_controller_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_controller_t *self = *self_p;
    zfed_round_env_clear(&self->env);
    s_models_destroy(self);
    zfed_watch_destroy(&self->watch);
    zfed_client_destroy(&self->client);
    zfed_records_destroy(&self->records);
    zfed_progress_destroy(&self->progress);
    free(self);
    *self_p = NULL;
}

const char *zfed_controller_path(zfed_controller_t *self)
{
    return zfed_records_path(self->records);
}
