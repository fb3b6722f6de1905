/*  test_controller - the controller in one process with a real broker and
    real workers (threads on loopback TCP): a job runs and its records say
    so; a taken job id and a missing job are told apart by their error
    codes, not their words; resuming a finished job changes nothing; a
    round that hears nothing fails fast with the reason (no worker for the
    service, no broker at all).
*/
#include "zfed/zfed_broker.h"
#include "zfed/zfed_controller.h"
#include "zfed/zfed_job.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_util.h"
#include "zfed/zfed_worker.h"
#include "zfed_test.h"

#include <czmq.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static char s_workdir[64];
static char s_endpoint[256];

static void *s_broker_thread(void *broker)
{
    zfed_broker_run(broker);
    return NULL;
}

static void *s_worker_thread(void *worker)
{
    zfed_worker_run(worker);
    return NULL;
}

static void s_set(zfed_job_t *job, const char *key, json_t *value)
{
    zfed_error_t error;
    int rc = zfed_job_set(job, key, value, &error);
    CHECK_INT(rc, 0);
    if (rc != 0)
        fprintf(stderr, "  %s: %s\n", key, error.message);
    json_decref(value);
}

//  A finished job of rounds x tasks for service, run against endpoint.
static zfed_job_t *s_job(const char *job_id, const char *service, const char *endpoint,
                         uint32_t rounds, uint32_t tasks, const char *params)
{
    zfed_job_t *job = zfed_job_new();
    s_set(job, "job_id", json_string(job_id));
    s_set(job, "service", json_string(service));
    s_set(job, "connect", json_string(endpoint));
    s_set(job, "workdir", json_string(s_workdir));
    s_set(job, "rounds", json_integer(rounds));
    s_set(job, "tasks", json_integer(tasks));
    s_set(job, "round_timeout", json_real(20));
    s_set(job, "params", json_loads(params, 0, NULL));
    zfed_error_t error;
    CHECK_INT(zfed_job_finish(job, &error), 0);
    return job;
}

//  Runs job to its end; returns the outcome and, in *summary, the summary.
static int s_run(const zfed_job_t *job, bool resume, bool fail_fast, json_t **summary)
{
    zfed_controller_options_t options = {.resume = resume, .fail_fast = fail_fast};
    zfed_error_t error;
    zfed_controller_t *controller = zfed_controller_new(job, &options, &error);
    CHECK(controller != NULL);
    if (!controller) {
        fprintf(stderr, "  controller: %s\n", error.message);
        *summary = NULL;
        return -1;
    }
    int outcome = zfed_controller_run(controller);
    char path[512];
    snprintf(path, sizeof path, "%s/summary.json", zfed_controller_path(controller));
    *summary = json_load_file(path, 0, NULL);
    CHECK(*summary != NULL);
    zfed_controller_destroy(&controller);
    return outcome;
}

static const char *s_text(const json_t *object, const char *key)
{
    const char *text = json_string_value(json_object_get(object, key));
    return text ? text : "(none)";
}

static void s_check_contains(const char *text, const char *needle)
{
    zfed_test_checks++;
    if (!strstr(text, needle)) {
        zfed_test_failures++;
        fprintf(stderr, "  '%s'\n  lacks '%s'\n", text, needle);
    }
}

static void s_job_runs_and_resumes(void)
{
    zfed_job_t *job = s_job("inproc", "fib", s_endpoint, 3, 4, "{\"fibonacci_level\": 10}");
    json_t *summary = NULL;
    CHECK_INT(s_run(job, false, false, &summary), ZFED_RUN_COMPLETED);
    CHECK_STR(s_text(summary, "status"), "completed");
    json_t *rounds = json_object_get(summary, "rounds");
    CHECK_INT(json_array_size(rounds), 3);
    size_t index;
    json_t *round;
    json_array_foreach(rounds, index, round)
    {
        CHECK_STR(s_text(round, "aggregate"), "88");
        CHECK_INT(json_array_size(json_object_get(round, "results")), 4);
    }
    json_decref(summary);

    //  The same job id again: refused, and the code says it is a usage
    //  matter (the controller exits 2 on it).
    zfed_controller_options_t options = {0};
    zfed_error_t error;
    zfed_controller_t *again = zfed_controller_new(job, &options, &error);
    CHECK(again == NULL);
    CHECK_INT(error.code, ZFED_E_EXISTS);
    CHECK_STR(error.field, "job_id");
    zfed_controller_destroy(&again);
    zfed_job_destroy(&job);

    //  Resumed from its folder: every round is on record, nothing runs.
    zfed_job_t *saved = zfed_job_load_saved(s_workdir, "inproc", &error);
    CHECK(saved != NULL);
    if (saved) {
        CHECK_STR(zfed_job_endpoint(saved), s_endpoint);
        CHECK_INT(zfed_job_rounds(saved), 3);
        CHECK_INT(zfed_job_finish(saved, &error), 0);
        CHECK_INT(s_run(saved, true, false, &summary), ZFED_RUN_COMPLETED);
        CHECK_INT(json_integer_value(json_object_get(summary, "rounds_completed")), 3);
        json_decref(summary);
    }
    zfed_job_destroy(&saved);

    //  A job that is not there is its own code, not a failure's.
    CHECK(zfed_job_load_saved(s_workdir, "no-such-job", &error) == NULL);
    CHECK_INT(error.code, ZFED_E_NO_JOB);
    CHECK_STR(error.field, "job_id");
}

static void s_silent_rounds_fail_fast_with_the_reason(void)
{
    //  A broker with fib workers only.
    zfed_job_t *job =
        s_job("no-vecavg", "vecavg", s_endpoint, 1, 1, "{\"vector\": [1.0], \"samples\": 1}");
    json_t *summary = NULL;
    int64_t started = zfed_clock_ms();
    CHECK_INT(s_run(job, false, true, &summary), ZFED_RUN_FAILED);
    CHECK(zfed_clock_ms() - started < 15000); //  not the 20 s round timeout
    s_check_contains(s_text(summary, "error"), "--fail-fast");
    s_check_contains(s_text(summary, "error"), "no worker is registered for service 'vecavg'");
    json_decref(summary);
    zfed_job_destroy(&job);

    //  Nobody at all.
    job = s_job("no-broker", "fib", "tcp://127.0.0.1:1", 1, 1, "{}");
    CHECK_INT(s_run(job, false, true, &summary), ZFED_RUN_FAILED);
    s_check_contains(s_text(summary, "error"), "no broker answers at tcp://127.0.0.1:1");
    json_decref(summary);
    zfed_job_destroy(&job);
}

int main(void)
{
    zfed_log_set_level(ZFED_LOG_WARN);
    snprintf(s_workdir, sizeof s_workdir, "/tmp/zfed-test-controller-XXXXXX");
    if (!mkdtemp(s_workdir)) {
        perror("mkdtemp");
        return 1;
    }
    zfed_broker_config_t broker_config;
    zfed_broker_config_defaults(&broker_config);
    zfed_broker_t *broker = zfed_broker_new(&broker_config);
    CHECK(broker != NULL);
    if (!broker || zfed_broker_bind(broker, "tcp://127.0.0.1:*") != 0)
        return 1;
    snprintf(s_endpoint, sizeof s_endpoint, "%s", zfed_broker_endpoint(broker, 0));
    zfed_worker_config_t worker_config;
    zfed_worker_config_defaults(&worker_config);
    worker_config.endpoint = s_endpoint;
    worker_config.concurrency = 2;
    worker_config.threads = 2;
    worker_config.name = "inproc";
    zfed_worker_t *worker = zfed_worker_new(&worker_config);
    CHECK(worker != NULL);
    if (!worker)
        return 1;
    pthread_t broker_thread, worker_thread;
    pthread_create(&broker_thread, NULL, s_broker_thread, broker);
    pthread_create(&worker_thread, NULL, s_worker_thread, worker);

    s_job_runs_and_resumes();
    s_silent_rounds_fail_fast_with_the_reason();

    //  Both loops end on the interrupt flag, as on SIGTERM.
    zsys_interrupted = 1;
    pthread_join(worker_thread, NULL);
    pthread_join(broker_thread, NULL);
    zfed_worker_destroy(&worker);
    zfed_broker_destroy(&broker);
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", s_workdir);
    if (system(command) != 0)
        fprintf(stderr, "could not remove %s\n", s_workdir);
    ZFED_TEST_END();
}
