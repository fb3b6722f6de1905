/*  zfed_job - everything that defines a job, checked before it starts.

    Parameters are named JSON values, set at four levels; the most specific
    wins, key by key:

        params                  every task of every round
        task_params[t]          task t in every round
        round_params[r]         every task of round r (an object), or
        round_params[r][t]      task t of round r (an array of objects)

    The controller's --level, --levels and --schedule fill these levels for
    fib; a job file (zfed_job_load) can set any of them for any service.
    zfed_job_finish checks every (round, task) against the service before
    the first task is sent, so a typo is an error at start, not a failure in
    round 3.
*/
#ifndef ZFED_JOB_H_INCLUDED
#define ZFED_JOB_H_INCLUDED

#include "zfed/zfed_aggregate.h"
#include "zfed/zfed_msg.h"

#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZFED_JOB_ROUNDS_MAX    1000000
#define ZFED_JOB_TASKS_MAX     1000000
#define ZFED_JOB_RETRIES_MAX   100
#define ZFED_JOB_WINDOW_MAX    1000000
#define ZFED_JOB_ENDPOINT_MAX  256
#define ZFED_JOB_PATH_MAX      1024
#define ZFED_JOB_TIMEOUT_MAX_S 86400.0

#define ZFED_JOB_DEFAULT_ROUNDS        5
#define ZFED_JOB_DEFAULT_TASKS         5
#define ZFED_JOB_DEFAULT_LEVEL         10
#define ZFED_JOB_DEFAULT_ROUND_TIMEOUT 30000
#define ZFED_JOB_DEFAULT_GRACE         1000
#define ZFED_JOB_DEFAULT_RETRIES       1
#define ZFED_JOB_DEFAULT_WINDOW        4096
#define ZFED_JOB_DEFAULT_WORKDIR       "/tmp/zfed/jobs"
#define ZFED_JOB_DEFAULT_ENDPOINT      "tcp://127.0.0.1:5555"

//  What picks the best round, and which way.
typedef enum {
    ZFED_METRIC_AGGREGATE = 0, //  the round's aggregate (scalar services)
    ZFED_METRIC_RESULTS,       //  results aggregated
    ZFED_METRIC_DURATION,      //  round time in ms
} zfed_metric_t;

typedef struct {
    char job_id[ZFED_JOB_ID_MAX + 1]; //  empty: zfed_job_finish picks one
    char service[64];
    char endpoint[ZFED_JOB_ENDPOINT_MAX];
    char workdir[ZFED_JOB_PATH_MAX];
    uint32_t rounds;
    uint32_t tasks;
    json_t *params;       //  object, owned
    json_t *task_params;  //  NULL or array of objects, owned
    json_t *round_params; //  NULL or array of objects / arrays of objects, owned
    //  Quorum as given: a count, or a fraction of the tasks; resolved into
    //  quorum by zfed_job_finish.
    double quorum_fraction; //  > 0 when given as a fraction
    uint32_t quorum_count;  //  > 0 when given as a count
    uint32_t quorum;        //  resolved: results needed to close a round
    int64_t round_timeout_ms;
    int64_t grace_ms;
    int64_t task_timeout_ms; //  0: round_timeout / (retries + 1)
    uint32_t retries;
    uint32_t batch; //  tasks per request (1: one zfed.task body each; more: zfed.batch)
    //  Requests of a round in flight at once: the rest wait for answers, so
    //  a 100,000-task round does not sit in the broker's memory all at once.
    uint32_t window;
    zfed_agg_strategy_t strategy;
    double trim;
    zfed_metric_t metric;
    bool maximize;
    bool metric_given; //  chosen by the user (else a service without a scalar
                       //  aggregate selects by results)
    //  CURVE (NULL/empty: plaintext)
    char curve_cert[ZFED_JOB_PATH_MAX];
    char server_key[ZFED_JOB_PATH_MAX];
} zfed_job_t;

//  Defaults everywhere: 5 rounds of 5 fib tasks, quorum all tasks, fedavg,
//  best round by highest aggregate.  params start empty; zfed_job_finish
//  adds the service's default parameters under them (fib:
//  fibonacci_level 10), so they show in job.json like any other setting.
int zfed_job_init(zfed_job_t *job);
void zfed_job_clear(zfed_job_t *job);

//  Applies a job file's settings (see schemas/JOB.md); every key is
//  checked.  On error returns -1 and writes "FIELD: reason" into error.
int zfed_job_load(zfed_job_t *job, const char *path, char *error, size_t error_size);

//  Applies one job-file setting (key as in schemas/JOB.md).  0, or -1 with
//  "KEY: reason" in error.
int zfed_job_set(zfed_job_t *job, const char *key, json_t *value, char *error, size_t error_size);

//  Resolves derived settings (quorum, task timeout, job id) and checks the
//  whole job, including every task's parameters against the service.  On
//  error returns -1 and writes "FIELD: reason" into error.
int zfed_job_finish(zfed_job_t *job, char *error, size_t error_size);

//  Merged parameters of one task (new reference), or NULL on allocation
//  failure.
json_t *zfed_job_task_params(const zfed_job_t *job, uint32_t round, uint32_t task);

//  One task's parameters as canonical msgpack (*data is the caller's to
//  free), checked for what a body may carry and by the service.  0, or -1
//  with "FIELD (round R, task T): reason" in error.
int zfed_job_pack_params(const zfed_job_t *job, uint32_t round, uint32_t task, uint8_t **data,
                         size_t *size, char *error, size_t error_size);

//  The settings as run, for job.json and for --resume.
json_t *zfed_job_to_json(const zfed_job_t *job);

//  Names for metrics: "aggregate", "results", "duration_ms".
const char *zfed_metric_name(zfed_metric_t metric);
int zfed_metric_parse(const char *name, zfed_metric_t *metric);

#ifdef __cplusplus
}
#endif

#endif
