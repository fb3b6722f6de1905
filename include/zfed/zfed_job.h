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
#include "zfed/zfed_error.h"
#include "zfed/zfed_msg.h"

#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZFED_JOB_ROUNDS_MAX  1000000
#define ZFED_JOB_TASKS_MAX   1000000
#define ZFED_JOB_RETRIES_MAX 100
#define ZFED_JOB_WINDOW_MAX  1000000
//  Most replicas of a task (--replicas: each goes to a distinct worker).
#define ZFED_JOB_REPLICAS_MAX  15
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

//  Model services: the chunk of a global model (schemas/MODELS.md 6), the
//  Krum defaults, the most tasks a model round may have (a pass reads
//  every result at once) and the most rounds keep_models "last:N" keeps.
#define ZFED_JOB_DEFAULT_CHUNK   (4u << 20)
#define ZFED_JOB_CHUNK_MIN       (64u << 10)
#define ZFED_JOB_CHUNK_MAX       (64u << 20)
#define ZFED_JOB_DEFAULT_KRUM_F  1
#define ZFED_JOB_DEFAULT_KRUM_M  1
#define ZFED_JOB_MODEL_TASKS_MAX 4096
#define ZFED_JOB_DEFAULT_KEEP    "last:1"
#define ZFED_JOB_SEED_MAX        ((1ULL << 53))
//  Bytes of a round's inline results (each at most 4 MiB) held in memory;
//  more are spilled to the work folder.
#define ZFED_JOB_DEFAULT_INLINE_MEMORY (1ULL << 30)
#define ZFED_JOB_INLINE_MEMORY_MAX     (1ULL << 40)

//  Sites (JOB.md): the most a job lists (one task each, so a model job's
//  task limit), and the longest name (zfed-worker --site's).
#define ZFED_JOB_SITES_MAX     4096
#define ZFED_JOB_SITE_NAME_MAX 64
//  What a site's tasks are addressed to: SERVICE@SITE.
#define ZFED_JOB_SITE_SEPARATOR "@"
//  The parameter a site's task carries its site's name in (its workers
//  check it and take it out before the service sees the params).
#define ZFED_JOB_SITE_PARAM "site"
//  A split's description (zfed-split's split.json), as it is copied into
//  the job folder.
#define ZFED_JOB_SPLIT_FILE   "split.json"
#define ZFED_JOB_SPLIT_FORMAT "zfed.split/1"

//  Which round models stay in the work folder's models/ (WORKDIR.md):
//  none (model.safetensors and best_model.safetensors only), the best
//  round's, the last N rounds', or all.  The current global always stays
//  while a round needs it.
typedef enum { ZFED_KEEP_NONE = 0, ZFED_KEEP_BEST, ZFED_KEEP_LAST, ZFED_KEEP_ALL } zfed_keep_t;

//  What picks the best round, and which way.
typedef enum {
    ZFED_METRIC_AGGREGATE = 0, //  the round's aggregate (scalar services)
    ZFED_METRIC_RESULTS,       //  results aggregated
    ZFED_METRIC_DURATION,      //  round time in ms
    ZFED_METRIC_TEST_ACCURACY, //  the round's model on the job's eval_data
    ZFED_METRIC_TEST_LOSS,
} zfed_metric_t;

//  Opaque: every setting goes through zfed_job_set (the job file's keys),
//  which checks it and names it in its error.
typedef struct _zfed_job_t zfed_job_t;

//  Defaults everywhere: 5 rounds of 5 fib tasks, quorum all tasks, fedavg,
//  best round by highest aggregate.  params start empty; zfed_job_finish
//  adds the service's default parameters under them (fib:
//  fibonacci_level 10), so they show in job.json like any other setting.
//  NULL when out of memory.
zfed_job_t *zfed_job_new(void);
void zfed_job_destroy(zfed_job_t **self_p);

//  Applies a job file's settings (see schemas/JOB.md); every key is
//  checked.  0, or -1 with the error: its field names the key at fault
//  ("" for the file as a whole), code ZFED_E_IO when the file cannot be
//  read, ZFED_E_INVALID otherwise.
int zfed_job_load(zfed_job_t *job, const char *path, zfed_error_t *error);

//  The settings job_id ran with, from WORKDIR/JOB_ID/job.json (for
//  --resume).  NULL with ZFED_E_NO_JOB when that folder holds no job,
//  ZFED_E_CORRUPT when its job.json cannot be used.  The job's workdir
//  becomes workdir (the folder may have moved).
zfed_job_t *zfed_job_load_saved(const char *workdir, const char *job_id, zfed_error_t *error);

//  Applies one setting (key as in schemas/JOB.md).  0, or -1 with
//  ZFED_E_INVALID and field = key.
int zfed_job_set(zfed_job_t *job, const char *key, json_t *value, zfed_error_t *error);
//  The same for a setting whose value is text (connect, workdir, ...).
int zfed_job_set_string(zfed_job_t *job, const char *key, const char *value, zfed_error_t *error);

//  Resolves derived settings (quorum, task timeout, job id) and checks the
//  whole job, including every task's parameters against the service.
//  0, or -1 with ZFED_E_INVALID, the field at fault and, for one task's
//  parameters, its round and task.
int zfed_job_finish(zfed_job_t *job, zfed_error_t *error);

//  Merged parameters of one task (new reference), or NULL on allocation
//  failure.
json_t *zfed_job_task_params(const zfed_job_t *job, uint32_t round, uint32_t task);

//  One task's parameters as canonical msgpack (*data is the caller's to
//  free), checked for what a body may carry and by the service.  0, or -1
//  with the field, round and task in error.
int zfed_job_pack_params(const zfed_job_t *job, uint32_t round, uint32_t task, uint8_t **data,
                         size_t *size, zfed_error_t *error);

//  The settings as run, for job.json and for --resume.
json_t *zfed_job_to_json(const zfed_job_t *job);

//  What the programs need to read back.  Strings are owned by the job;
//  curve_cert and server_key are NULL for plaintext.  quorum is resolved
//  by zfed_job_finish.
const char *zfed_job_id(const zfed_job_t *job);
const char *zfed_job_service(const zfed_job_t *job);
const char *zfed_job_endpoint(const zfed_job_t *job);
const char *zfed_job_workdir(const zfed_job_t *job);
const char *zfed_job_curve_cert(const zfed_job_t *job);
const char *zfed_job_server_key(const zfed_job_t *job);
uint32_t zfed_job_rounds(const zfed_job_t *job);
uint32_t zfed_job_tasks(const zfed_job_t *job);
uint32_t zfed_job_quorum(const zfed_job_t *job);

//  The MDP service task goes to: SERVICE@SITE for a job with sites, the
//  service otherwise.  Site task's name, or NULL without sites.
const char *zfed_job_task_service(const zfed_job_t *job, uint32_t task);
const char *zfed_job_site(const zfed_job_t *job, uint32_t task);
//  The split's description (the split file's JSON, borrowed), or NULL.
const json_t *zfed_job_split(const zfed_job_t *job);
//  The folder the controller evaluates each round's model on, or NULL.
const char *zfed_job_eval_data(const zfed_job_t *job);

//  Names for metrics: "aggregate", "results", "duration_ms",
//  "test_accuracy", "test_loss".
const char *zfed_metric_name(zfed_metric_t metric);
int zfed_metric_parse(const char *name, zfed_metric_t *metric);

#ifdef __cplusplus
}
#endif

#endif
