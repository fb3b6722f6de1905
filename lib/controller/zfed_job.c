/*  zfed_job - job settings: defaults, job files, derived values, checks.  */
#include "controller/zfed_job_private.h"
#include "zfed/zfed_endpoint.h"
#include "zfed/zfed_batch.h"
#include "zfed/zfed_json.h"
#include "zfed/zfed_safetensors.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  Largest job file read, and most (round, task) parameter sets checked up
//  front; the controller checks every round's again as it packs them.
#define JOB_FILE_MAX (16 << 20)
#define CHECK_MAX    1000000
//  Bytes of an initial model read at a time to check its values.
#define MODEL_CHECK_PIECE (8u << 20)

static const char *s_metric_names[] = {"aggregate", "results", "duration_ms", "test_accuracy",
                                       "test_loss"};
#define METRIC_LAST ZFED_METRIC_TEST_LOSS

//  The settings of model services, as bits of model_keys (set when given).
enum {
    KEY_INITIAL_MODEL = 1 << 0,
    KEY_SEED = 1 << 1,
    KEY_KEEP_MODELS = 1 << 2,
    KEY_CHUNK = 1 << 3,
    KEY_SERVER_LR = 1 << 4,
    KEY_BETA1 = 1 << 5,
    KEY_BETA2 = 1 << 6,
    KEY_TAU = 1 << 7,
    KEY_KRUM_F = 1 << 8,
    KEY_KRUM_M = 1 << 9,
    KEY_INLINE_MEMORY = 1 << 10,
};
static const char *const s_model_keys[] = {"initial_model", "seed",   "keep_models",   "chunk",
                                           "server_lr",     "beta1",  "beta2",         "tau",
                                           "krum_f",        "krum_m", "inline_memory", NULL};

const char *zfed_metric_name(zfed_metric_t metric)
{
    return metric <= METRIC_LAST ? s_metric_names[metric] : "unknown";
}

int zfed_metric_parse(const char *name, zfed_metric_t *metric)
{
    for (int index = 0; index <= METRIC_LAST; index++) {
        if (name && strcmp(name, s_metric_names[index]) == 0) {
            *metric = (zfed_metric_t)index;
            return 0;
        }
    }
    return -1;
}

int zfed_job_init(zfed_job_t *job)
{
    memset(job, 0, sizeof *job);
    snprintf(job->service, sizeof job->service, "fib");
    snprintf(job->endpoint, sizeof job->endpoint, "%s", ZFED_JOB_DEFAULT_ENDPOINT);
    snprintf(job->workdir, sizeof job->workdir, "%s", ZFED_JOB_DEFAULT_WORKDIR);
    job->rounds = ZFED_JOB_DEFAULT_ROUNDS;
    job->tasks = ZFED_JOB_DEFAULT_TASKS;
    //  Empty until someone sets them; zfed_job_finish adds the service's
    //  documented defaults (fib: fibonacci_level 10) under them.
    job->params = json_object();
    job->quorum_fraction = 1.0;
    job->round_timeout_ms = ZFED_JOB_DEFAULT_ROUND_TIMEOUT;
    job->grace_ms = ZFED_JOB_DEFAULT_GRACE;
    job->retries = ZFED_JOB_DEFAULT_RETRIES;
    job->batch = 1;
    job->window = ZFED_JOB_DEFAULT_WINDOW;
    job->replicas = 1;
    job->strategy = ZFED_AGG_FEDAVG;
    job->trim = ZFED_AGG_DEFAULT_TRIM;
    job->metric = ZFED_METRIC_AGGREGATE;
    job->maximize = true;
    job->keep = ZFED_KEEP_LAST;
    job->keep_last = 1;
    job->chunk = ZFED_JOB_DEFAULT_CHUNK;
    job->inline_memory = ZFED_JOB_DEFAULT_INLINE_MEMORY;
    job->server_lr = job->beta1 = job->beta2 = job->tau = NAN;
    job->krum_f = ZFED_JOB_DEFAULT_KRUM_F;
    job->krum_m = ZFED_JOB_DEFAULT_KRUM_M;
    return job->params ? 0 : -1;
}

static void s_close_eval_set(zfed_job_t *job)
{
    const zfed_service_t *service = job->eval_set ? zfed_service_find(job->service) : NULL;
    if (service)
        service->close_data(&job->eval_set);
    job->eval_set = NULL;
}

void zfed_job_clear(zfed_job_t *job)
{
    json_decref(job->params);
    json_decref(job->task_params);
    json_decref(job->round_params);
    json_decref(job->sites);
    json_decref(job->split_json);
    free(job->site_services);
    free(job->site_shards);
    s_close_eval_set(job);
    job->params = job->task_params = job->round_params = NULL;
    job->sites = job->split_json = NULL;
    job->site_services = NULL;
    job->site_shards = NULL;
}

zfed_job_t *zfed_job_new(void)
{
    zfed_job_t *self = calloc(1, sizeof *self);
    if (self && zfed_job_init(self) != 0) {
        zfed_job_clear(self);
        free(self);
        self = NULL;
    }
    return self;
}

void zfed_job_destroy(zfed_job_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_job_clear(*self_p);
    free(*self_p);
    *self_p = NULL;
}

const char *zfed_job_id(const zfed_job_t *job)
{
    return job->job_id;
}

const char *zfed_job_service(const zfed_job_t *job)
{
    return job->service;
}

const char *zfed_job_endpoint(const zfed_job_t *job)
{
    return job->endpoint;
}

const char *zfed_job_workdir(const zfed_job_t *job)
{
    return job->workdir;
}

const char *zfed_job_curve_cert(const zfed_job_t *job)
{
    return job->curve_cert[0] ? job->curve_cert : NULL;
}

const char *zfed_job_server_key(const zfed_job_t *job)
{
    return job->server_key[0] ? job->server_key : NULL;
}

uint32_t zfed_job_rounds(const zfed_job_t *job)
{
    return job->rounds;
}

uint32_t zfed_job_tasks(const zfed_job_t *job)
{
    return job->tasks;
}

uint32_t zfed_job_quorum(const zfed_job_t *job)
{
    return job->quorum;
}

const char *zfed_job_task_service(const zfed_job_t *job, uint32_t task)
{
    return job->site_services && task < job->tasks ? job->site_services[task] : job->service;
}

const char *zfed_job_site(const zfed_job_t *job, uint32_t task)
{
    return job->sites ? json_string_value(json_array_get(job->sites, task)) : NULL;
}

const json_t *zfed_job_split(const zfed_job_t *job)
{
    return job->split_json;
}

const char *zfed_job_eval_data(const zfed_job_t *job)
{
    return job->eval_data[0] ? job->eval_data : NULL;
}

//  ---------------------------------------------------------------------
//  Job files

static int s_get_uint(const json_t *value, const char *field, uint64_t min, uint64_t max,
                      uint64_t *out, zfed_error_t *error)
{
    if (!json_is_integer(value) || json_integer_value(value) < 0 ||
        (uint64_t)json_integer_value(value) < min || (uint64_t)json_integer_value(value) > max)
        return zfed_error_set(error, ZFED_E_INVALID, field, "expected an integer from %llu to %llu",
                              (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)json_integer_value(value);
    return 0;
}

static int s_get_seconds(const json_t *value, const char *field, double min, double max,
                         int64_t *out_ms, zfed_error_t *error)
{
    if (!json_is_number(value) || !isfinite(json_number_value(value)) ||
        json_number_value(value) < min || json_number_value(value) > max)
        return zfed_error_set(error, ZFED_E_INVALID, field, "expected seconds from %g to %g", min,
                              max);
    *out_ms = (int64_t)(json_number_value(value) * 1000.0 + 0.5);
    return 0;
}

static int s_get_string(const json_t *value, const char *field, char *out, size_t out_size,
                        zfed_error_t *error)
{
    if (!json_is_string(value) || json_string_length(value) == 0 ||
        json_string_length(value) >= out_size)
        return zfed_error_set(error, ZFED_E_INVALID, field,
                              "expected a string of 1 to %zu characters", out_size - 1);
    snprintf(out, out_size, "%s", json_string_value(value));
    return 0;
}

//  task_params: an array of objects; round_params: an array whose entries
//  are objects or arrays of objects.  Lengths are checked by finish, once
//  rounds and tasks are known from every source.
static int s_check_param_levels(const json_t *value, const char *field, bool allow_table,
                                zfed_error_t *error)
{
    if (!json_is_array(value))
        return zfed_error_set(error, ZFED_E_INVALID, field, "expected an array");
    size_t index;
    json_t *entry;
    json_array_foreach(value, index, entry)
    {
        if (json_is_object(entry))
            continue;
        if (allow_table && json_is_array(entry)) {
            size_t inner;
            json_t *cell;
            json_array_foreach(entry, inner, cell)
            {
                if (!json_is_object(cell))
                    return zfed_error_set(error, ZFED_E_INVALID, field,
                                          "entry %zu, %zu is not an object", index, inner);
            }
            continue;
        }
        return zfed_error_set(error, ZFED_E_INVALID, field, "entry %zu is not an object%s", index,
                              allow_table ? " nor an array of objects" : "");
    }
    return 0;
}

static int s_apply_quorum(zfed_job_t *job, const json_t *value, zfed_error_t *error)
{
    if (json_is_integer(value) && json_integer_value(value) >= 1 &&
        json_integer_value(value) <= ZFED_JOB_TASKS_MAX) {
        job->quorum_count = (uint32_t)json_integer_value(value);
        job->quorum_fraction = 0;
        return 0;
    }
    if (json_is_real(value) && json_real_value(value) > 0 && json_real_value(value) <= 1.0) {
        job->quorum_fraction = json_real_value(value);
        job->quorum_count = 0;
        return 0;
    }
    return zfed_error_set(error, ZFED_E_INVALID, "quorum",
                          "expected a count (integer >= 1) or a fraction of the tasks in (0, 1]");
}

static int s_apply_select(zfed_job_t *job, const char *text, zfed_error_t *error)
{
    char name[32];
    const char *colon = strchr(text, ':');
    size_t length = colon ? (size_t)(colon - text) : strlen(text);
    if (length >= sizeof name)
        return zfed_error_set(error, ZFED_E_INVALID, "select", "unknown metric");
    memcpy(name, text, length);
    name[length] = '\0';
    zfed_metric_t metric;
    if (zfed_metric_parse(name, &metric) != 0)
        return zfed_error_set(error, ZFED_E_INVALID, "select",
                              "unknown metric '%s' (aggregate, results, duration_ms, "
                              "test_accuracy or test_loss)",
                              name);
    if (colon && strcmp(colon + 1, "max") != 0 && strcmp(colon + 1, "min") != 0)
        return zfed_error_set(error, ZFED_E_INVALID, "select",
                              "direction must be max or min, got '%s'", colon + 1);
    job->metric = metric;
    job->metric_given = true;
    job->maximize = !colon || strcmp(colon + 1, "max") == 0;
    return 0;
}

//  sites: 1 to ZFED_JOB_SITES_MAX distinct names, each one zfed-worker
//  --site takes.
static int s_set_sites(zfed_job_t *job, json_t *value, zfed_error_t *error)
{
    if (!json_is_array(value) || json_array_size(value) < 1 ||
        json_array_size(value) > ZFED_JOB_SITES_MAX)
        return zfed_error_set(error, ZFED_E_INVALID, "sites",
                              "expected an array of 1 to %d site names", ZFED_JOB_SITES_MAX);
    size_t index;
    json_t *name;
    json_array_foreach(value, index, name)
    {
        if (!json_is_string(name) ||
            !zfed_is_safe_name(json_string_value(name), ZFED_JOB_SITE_NAME_MAX))
            return zfed_error_set(error, ZFED_E_INVALID, "sites",
                                  "entry %zu: a site name is 1 to %d characters of A-Z a-z 0-9 "
                                  ". _ - not starting with '.'",
                                  index, ZFED_JOB_SITE_NAME_MAX);
        for (size_t before = 0; before < index; before++)
            if (json_equal(json_array_get(value, before), name))
                return zfed_error_set(error, ZFED_E_INVALID, "sites",
                                      "entry %zu: site %s is listed twice", index,
                                      json_string_value(name));
    }
    json_decref(job->sites);
    job->sites = json_incref(value);
    return 0;
}

//  Both check into a copy first: a refused value leaves the job as it was.
static int s_set_service(zfed_job_t *job, const json_t *value, zfed_error_t *error)
{
    char service[sizeof job->service];
    if (s_get_string(value, "service", service, sizeof service, error) != 0)
        return -1;
    if (!zfed_service_find(service))
        return zfed_error_set(error, ZFED_E_INVALID, "service", "unknown service '%s'", service);
    memcpy(job->service, service, sizeof service);
    return 0;
}

static int s_set_endpoint(zfed_job_t *job, const json_t *value, zfed_error_t *error)
{
    char endpoint[sizeof job->endpoint];
    char reason[128];
    if (s_get_string(value, "connect", endpoint, sizeof endpoint, error) != 0)
        return -1;
    if (zfed_endpoint_check(endpoint, ZFED_ENDPOINT_CONNECT, reason, sizeof reason) != 0)
        return zfed_error_set(error, ZFED_E_INVALID, "connect",
                              "'%s' is not an endpoint (%s): expected " ZFED_ENDPOINT_FORMS,
                              endpoint, reason);
    memcpy(job->endpoint, endpoint, sizeof endpoint);
    return 0;
}

static int s_set_keep(zfed_job_t *job, const json_t *value, zfed_error_t *error)
{
    const char *text = json_is_string(value) ? json_string_value(value) : "";
    uint64_t last = 0;
    if (strcmp(text, "none") == 0)
        job->keep = ZFED_KEEP_NONE;
    else if (strcmp(text, "best") == 0)
        job->keep = ZFED_KEEP_BEST;
    else if (strcmp(text, "all") == 0)
        job->keep = ZFED_KEEP_ALL;
    else if (strncmp(text, "last:", 5) == 0 &&
             zfed_parse_u64(text + 5, 1, ZFED_JOB_ROUNDS_MAX, &last) == 0) {
        job->keep = ZFED_KEEP_LAST;
        job->keep_last = (uint32_t)last;
    } else
        return zfed_error_set(error, ZFED_E_INVALID, "keep_models",
                              "expected none, best, last:N (N from 1 to %d) or all",
                              ZFED_JOB_ROUNDS_MAX);
    return 0;
}

//  A real in [min, max) (or (min, max) when open_min), finite.
static int s_get_real(const json_t *value, const char *field, double min, bool open_min, double max,
                      double *out, zfed_error_t *error)
{
    double number = json_is_number(value) ? json_number_value(value) : NAN;
    if (!isfinite(number) || number < min || (open_min && number == min) || number >= max)
        return zfed_error_set(error, ZFED_E_INVALID, field, "expected a number %s %g and below %g",
                              open_min ? "above" : "from", min, max);
    *out = number;
    return 0;
}

//  The settings of model services.  1: key is not one of them.
static int s_set_model_key(zfed_job_t *job, const char *key, const json_t *value,
                           zfed_error_t *error)
{
    uint64_t number = 0;
    int rc = 0;
    unsigned bit;
    if (strcmp(key, "initial_model") == 0) {
        bit = KEY_INITIAL_MODEL;
        rc = s_get_string(value, key, job->initial_model, sizeof job->initial_model, error);
    } else if (strcmp(key, "seed") == 0) {
        bit = KEY_SEED;
        rc = s_get_uint(value, key, 0, ZFED_JOB_SEED_MAX, &job->seed, error);
    } else if (strcmp(key, "keep_models") == 0) {
        bit = KEY_KEEP_MODELS;
        rc = s_set_keep(job, value, error);
    } else if (strcmp(key, "chunk") == 0) {
        bit = KEY_CHUNK;
        rc = s_get_uint(value, key, ZFED_JOB_CHUNK_MIN, ZFED_JOB_CHUNK_MAX, &number, error);
        job->chunk = rc == 0 ? (uint32_t)number : job->chunk;
    } else if (strcmp(key, "inline_memory") == 0) {
        bit = KEY_INLINE_MEMORY;
        rc = s_get_uint(value, key, 0, ZFED_JOB_INLINE_MEMORY_MAX, &job->inline_memory, error);
    } else if (strcmp(key, "server_lr") == 0) {
        bit = KEY_SERVER_LR;
        rc = s_get_real(value, key, 0, true, 1e6, &job->server_lr, error);
    } else if (strcmp(key, "beta1") == 0) {
        bit = KEY_BETA1;
        rc = s_get_real(value, key, 0, false, 1, &job->beta1, error);
    } else if (strcmp(key, "beta2") == 0) {
        bit = KEY_BETA2;
        rc = s_get_real(value, key, 0, false, 1, &job->beta2, error);
    } else if (strcmp(key, "tau") == 0) {
        bit = KEY_TAU;
        rc = s_get_real(value, key, 0, true, 1e6, &job->tau, error);
    } else if (strcmp(key, "krum_f") == 0) {
        bit = KEY_KRUM_F;
        rc = s_get_uint(value, key, 0, ZFED_JOB_MODEL_TASKS_MAX, &number, error);
        job->krum_f = rc == 0 ? (uint32_t)number : job->krum_f;
    } else if (strcmp(key, "krum_m") == 0) {
        bit = KEY_KRUM_M;
        rc = s_get_uint(value, key, 1, ZFED_JOB_MODEL_TASKS_MAX, &number, error);
        job->krum_m = rc == 0 ? (uint32_t)number : job->krum_m;
    } else
        return 1;
    if (rc == 0)
        job->model_keys |= bit;
    return rc;
}

int zfed_job_set(zfed_job_t *job, const char *key, json_t *value, zfed_error_t *error)
{
    uint64_t number = 0;
    if (strcmp(key, "job_id") == 0) {
        if (!json_is_string(value) || !zfed_is_safe_name(json_string_value(value), ZFED_JOB_ID_MAX))
            return zfed_error_set(error, ZFED_E_INVALID, key,
                                  "1 to %d characters of A-Z a-z 0-9 . _ - not starting with '.'",
                                  ZFED_JOB_ID_MAX);
        snprintf(job->job_id, sizeof job->job_id, "%s", json_string_value(value));
    } else if (strcmp(key, "service") == 0)
        return s_set_service(job, value, error);
    else if (strcmp(key, "connect") == 0)
        return s_set_endpoint(job, value, error);
    else if (strcmp(key, "workdir") == 0)
        return s_get_string(value, key, job->workdir, sizeof job->workdir, error);
    else if (strcmp(key, "rounds") == 0) {
        if (s_get_uint(value, key, 1, ZFED_JOB_ROUNDS_MAX, &number, error) != 0)
            return -1;
        job->rounds = (uint32_t)number;
    } else if (strcmp(key, "tasks") == 0) {
        if (s_get_uint(value, key, 1, ZFED_JOB_TASKS_MAX, &number, error) != 0)
            return -1;
        job->tasks = (uint32_t)number;
        job->tasks_given = true;
    } else if (strcmp(key, "sites") == 0)
        return s_set_sites(job, value, error);
    else if (strcmp(key, "split") == 0)
        return s_get_string(value, key, job->split, sizeof job->split, error);
    else if (strcmp(key, "eval_data") == 0)
        return s_get_string(value, key, job->eval_data, sizeof job->eval_data, error);
    else if (strcmp(key, "params") == 0) {
        if (!json_is_object(value))
            return zfed_error_set(error, ZFED_E_INVALID, key, "expected an object");
        json_decref(job->params);
        job->params = json_incref(value);
    } else if (strcmp(key, "task_params") == 0) {
        if (s_check_param_levels(value, key, false, error) != 0)
            return -1;
        json_decref(job->task_params);
        job->task_params = json_incref(value);
    } else if (strcmp(key, "round_params") == 0) {
        if (s_check_param_levels(value, key, true, error) != 0)
            return -1;
        json_decref(job->round_params);
        job->round_params = json_incref(value);
    } else if (strcmp(key, "quorum") == 0)
        return s_apply_quorum(job, value, error);
    else if (strcmp(key, "round_timeout") == 0)
        return s_get_seconds(value, key, 0.001, ZFED_JOB_TIMEOUT_MAX_S, &job->round_timeout_ms,
                             error);
    else if (strcmp(key, "grace") == 0)
        return s_get_seconds(value, key, 0, ZFED_JOB_TIMEOUT_MAX_S, &job->grace_ms, error);
    else if (strcmp(key, "task_timeout") == 0)
        return s_get_seconds(value, key, 0, ZFED_JOB_TIMEOUT_MAX_S, &job->task_timeout_ms, error);
    else if (strcmp(key, "retries") == 0) {
        if (s_get_uint(value, key, 0, ZFED_JOB_RETRIES_MAX, &number, error) != 0)
            return -1;
        job->retries = (uint32_t)number;
    } else if (strcmp(key, "batch") == 0) {
        if (s_get_uint(value, key, 1, ZFED_BATCH_MAX, &number, error) != 0)
            return -1;
        job->batch = (uint32_t)number;
    } else if (strcmp(key, "window") == 0) {
        if (s_get_uint(value, key, 1, ZFED_JOB_WINDOW_MAX, &number, error) != 0)
            return -1;
        job->window = (uint32_t)number;
    } else if (strcmp(key, "replicas") == 0) {
        if (s_get_uint(value, key, 1, ZFED_JOB_REPLICAS_MAX, &number, error) != 0)
            return -1;
        job->replicas = (uint32_t)number;
    } else if (strcmp(key, "exclude_liars") == 0) {
        if (!json_is_boolean(value))
            return zfed_error_set(error, ZFED_E_INVALID, key, "expected true or false");
        job->exclude_liars = json_is_true(value);
    } else if (strcmp(key, "aggregate") == 0) {
        if (!json_is_string(value) ||
            zfed_agg_strategy_parse(json_string_value(value), &job->strategy) != 0)
            return zfed_error_set(error, ZFED_E_INVALID, key, "expected one of %s",
                                  zfed_agg_strategy_list());
    } else if (strcmp(key, "trim") == 0) {
        if (!json_is_number(value) || json_number_value(value) < 0 ||
            json_number_value(value) >= 0.5)
            return zfed_error_set(error, ZFED_E_INVALID, key, "expected a fraction in [0, 0.5)");
        job->trim = json_number_value(value);
    } else if (strcmp(key, "select") == 0) {
        if (!json_is_string(value))
            return zfed_error_set(error, ZFED_E_INVALID, key,
                                  "expected \"METRIC:max\" or \"METRIC:min\"");
        return s_apply_select(job, json_string_value(value), error);
    } else if (strcmp(key, "curve_cert") == 0)
        return s_get_string(value, key, job->curve_cert, sizeof job->curve_cert, error);
    else if (strcmp(key, "server_key") == 0)
        return s_get_string(value, key, job->server_key, sizeof job->server_key, error);
    else {
        int rc = s_set_model_key(job, key, value, error);
        if (rc != 1)
            return rc;
        return zfed_error_set(error, ZFED_E_INVALID, key, "unknown setting");
    }
    return 0;
}

int zfed_job_set_string(zfed_job_t *job, const char *key, const char *value, zfed_error_t *error)
{
    json_t *text = json_string(value);
    if (!text)
        return value ? zfed_error_set(error, ZFED_E_INVALID, key, "expected UTF-8 text")
                     : zfed_error_set(error, ZFED_E_INVALID, key, "expected a value");
    int rc = zfed_job_set(job, key, text, error);
    json_decref(text);
    return rc;
}

//  A relative file name from the job file at job_path, made relative to
//  where that file is.  0, or -1 naming field when it is too long.
static int s_beside(char *name, size_t size, const char *job_path, const char *field,
                    zfed_error_t *error)
{
    const char *slash = strrchr(job_path, '/');
    if (name[0] == '/' || !slash)
        return 0;
    char joined[ZFED_JOB_PATH_MAX];
    if (snprintf(joined, sizeof joined, "%.*s/%s", (int)(slash - job_path), job_path, name) >=
        (int)sizeof joined)
        return zfed_error_set(error, ZFED_E_INVALID, field,
                              "longer than %d characters once found beside the job file",
                              ZFED_JOB_PATH_MAX - 1);
    snprintf(name, size, "%s", joined);
    return 0;
}

int zfed_job_load(zfed_job_t *job, const char *path, zfed_error_t *error)
{
    json_error_t parse_error;
    size_t size = 0;
    char *text = zfed_read_file(path, JOB_FILE_MAX, &size);
    if (!text)
        return zfed_error_set(error, ZFED_E_IO, "", "cannot read: %s", strerror(errno));
    json_t *root = json_loadb(text, size, JSON_REJECT_DUPLICATES, &parse_error);
    free(text);
    if (!root)
        return zfed_error_set(error, ZFED_E_INVALID, "", "line %d, column %d: %s", parse_error.line,
                              parse_error.column, parse_error.text);
    int rc = 0;
    if (!json_is_object(root))
        rc = zfed_error_set(error, ZFED_E_INVALID, "", "the job file must hold one JSON object");
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        if (rc == 0)
            rc = zfed_job_set(job, key, value, error);
    }
    //  A model file (a split, an evaluation folder) named in a job file is
    //  found beside the file, as its author sees it, whatever the folder
    //  the controller runs in.
    if (rc == 0 && json_is_string(json_object_get(root, "initial_model")))
        rc = s_beside(job->initial_model, sizeof job->initial_model, path, "initial_model", error);
    if (rc == 0 && json_is_string(json_object_get(root, "split")))
        rc = s_beside(job->split, sizeof job->split, path, "split", error);
    if (rc == 0 && json_is_string(json_object_get(root, "eval_data")))
        rc = s_beside(job->eval_data, sizeof job->eval_data, path, "eval_data", error);
    json_decref(root);
    return rc;
}

zfed_job_t *zfed_job_load_saved(const char *workdir, const char *job_id, zfed_error_t *error)
{
    char path[ZFED_JOB_PATH_MAX + ZFED_JOB_ID_MAX + 32];
    if (!zfed_is_safe_name(job_id, ZFED_JOB_ID_MAX)) {
        zfed_error_set(error, ZFED_E_INVALID, "job_id", "'%s' is not a job id", job_id);
        return NULL;
    }
    if (strlen(workdir) >= ZFED_JOB_PATH_MAX) {
        zfed_error_set(error, ZFED_E_INVALID, "workdir", "longer than %d characters",
                       ZFED_JOB_PATH_MAX - 1);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/%s/job.json", workdir, job_id);
    if (access(path, F_OK) != 0) {
        zfed_error_set(error, ZFED_E_NO_JOB, "job_id", "no job %s in %s (no %s)", job_id, workdir,
                       path);
        return NULL;
    }
    zfed_job_t *job = zfed_job_new();
    if (!job) {
        zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
        return NULL;
    }
    if (zfed_job_load(job, path, error) != 0) {
        //  The job's own file, written by us: any fault in it is damage.
        char reason[sizeof error->message];
        snprintf(reason, sizeof reason, "%s", error->message);
        zfed_error_set(error, ZFED_E_CORRUPT, "", "%s: %s", path, reason);
        zfed_job_destroy(&job);
        return NULL;
    }
    snprintf(job->workdir, sizeof job->workdir, "%s", workdir);
    job->resumed = true;
    return job;
}

//  ---------------------------------------------------------------------
//  Derived values and checks

json_t *zfed_job_task_params(const zfed_job_t *job, uint32_t round, uint32_t task)
{
    json_t *merged = json_deep_copy(job->params);
    if (!merged)
        return NULL;
    json_t *per_task = job->task_params ? json_array_get(job->task_params, task) : NULL;
    json_t *per_round = job->round_params ? json_array_get(job->round_params, round) : NULL;
    json_t *per_cell = json_is_array(per_round) ? json_array_get(per_round, task) : NULL;
    if ((per_task && json_object_update(merged, per_task) != 0) ||
        (json_is_object(per_round) && json_object_update(merged, per_round) != 0) ||
        (per_cell && json_object_update(merged, per_cell) != 0)) {
        json_decref(merged);
        return NULL;
    }
    return merged;
}

//  params as msgpack into buffer (initialised here), checked for what a
//  body may hold.  0, or -1 with the reason.
static int s_pack_json(const json_t *params, msgpack_sbuffer *buffer, char *reason,
                       size_t reason_size)
{
    msgpack_sbuffer_init(buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    int rc = zfed_json_pack(params, &packer, reason, reason_size);
    if (rc == 0 && zfed_msg_check_params(buffer->data, buffer->size, reason, reason_size) != 0)
        rc = -1;
    return rc;
}

int zfed_job_pack_params(const zfed_job_t *job, uint32_t round, uint32_t task, uint8_t **data,
                         size_t *size, zfed_error_t *error)
{
    *data = NULL;
    *size = 0;
    const zfed_service_t *service = zfed_service_find(job->service);
    json_t *params = zfed_job_task_params(job, round, task);
    if (!service || !params) {
        json_decref(params);
        return zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
    }
    msgpack_sbuffer buffer;
    char reason[128];
    int rc = s_pack_json(params, &buffer, reason, sizeof reason);
    //  What a body may hold (depth, size, keys), then what the service wants.
    if (rc != 0) {
        json_decref(params);
        msgpack_sbuffer_destroy(&buffer);
        zfed_error_set(error, ZFED_E_INVALID, "params", "%s", reason);
        zfed_error_locate(error, round, task);
        return -1;
    }
    msgpack_unpacked unpacked;
    zfed_fault_t fault = {0};
    rc = zfed_unpack(&unpacked, (const uint8_t *)buffer.data, buffer.size);
    if (rc == 0 && service->check_params(&unpacked.data, &fault) != 0) {
        rc = zfed_error_set(error, ZFED_E_INVALID, fault.field, "%s", fault.text);
        zfed_error_locate(error, round, task);
    }
    msgpack_unpacked_destroy(&unpacked);
    //  A site's task says whose it is (params["site"], last): the site's
    //  workers check it and take it out before their service sees the
    //  params, so the service checked them without it.
    const char *site = zfed_job_site(job, task);
    if (rc == 0 && site) {
        msgpack_sbuffer_destroy(&buffer);
        rc = json_object_set_new(params, ZFED_JOB_SITE_PARAM, json_string(site));
        if (rc == 0 && s_pack_json(params, &buffer, reason, sizeof reason) != 0) {
            rc = zfed_error_set(error, ZFED_E_INVALID, "params", "%s", reason);
            zfed_error_locate(error, round, task);
        }
    }
    json_decref(params);
    if (rc != 0) {
        msgpack_sbuffer_destroy(&buffer);
        return -1;
    }
    *size = buffer.size;
    *data = (uint8_t *)msgpack_sbuffer_release(&buffer);
    return *data ? 0 : zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
}

//  The work the requests of a round ask for (the service's cost model):
//  tasks go in task order, --batch to a request, so each group of batch
//  consecutive tasks must stay within what one request may ask for.
//  Checked here, before anything is sent, rather than learnt from the
//  workers' 413s.
typedef struct {
    uint64_t total;   //  of the group so far
    uint64_t largest; //  one task's, for the suggestion
} s_batch_cost_t;

static int s_check_batch_cost(const zfed_job_t *job, s_batch_cost_t *group, uint32_t round,
                              uint32_t task, bool uniform, const uint8_t *packed, size_t size,
                              zfed_error_t *error)
{
    //  One task alone is always sent: its params' own limits bound it.
    const zfed_service_t *service = zfed_service_find(job->service);
    if (job->batch < 2 || !service || !service->cost)
        return 0;
    msgpack_unpacked unpacked;
    uint64_t cost =
        zfed_unpack(&unpacked, packed, size) == 0 ? zfed_service_cost(service, &unpacked.data) : 0;
    msgpack_unpacked_destroy(&unpacked);
    uint32_t batch = job->batch < job->tasks ? job->batch : job->tasks;
    if (task % batch == 0)
        *group = (s_batch_cost_t){0, 0};
    //  Tasks that all share these params: a group is batch of them.
    uint64_t copies = uniform ? batch : 1;
    group->total = zfed_service_cost_add(
        group->total, cost && copies > UINT64_MAX / cost ? UINT64_MAX : cost * copies);
    if (cost > group->largest)
        group->largest = cost;
    if (zfed_service_cost_allowed(service, group->total))
        return 0;
    uint64_t fits = group->largest ? service->max_request_cost / group->largest : 1;
    zfed_error_set(error, ZFED_E_INVALID, "batch",
                   "%u tasks per request ask %s for %llu units of work (%s, summed); one "
                   "request may ask for at most %llu: use a batch of %llu or fewer",
                   batch, service->name, (unsigned long long)group->total,
                   service->cost_unit ? service->cost_unit : "its own unit",
                   (unsigned long long)service->max_request_cost,
                   (unsigned long long)(fits ? fits : 1));
    //  The request's last task, where its cost went over.
    if (!uniform)
        zfed_error_locate(error, round, task);
    return -1;
}

void zfed_job_service_params(const zfed_job_t *job, msgpack_object *params)
{
    if (!job->sites || params->type != MSGPACK_OBJECT_MAP)
        return;
    const size_t length = strlen(ZFED_JOB_SITE_PARAM);
    msgpack_object_kv *pairs = params->via.map.ptr;
    uint32_t kept = 0;
    for (uint32_t index = 0; index < params->via.map.size; index++) {
        const msgpack_object *key = &pairs[index].key;
        bool site = key->type == MSGPACK_OBJECT_STR && key->via.str.size == length &&
                    memcmp(key->via.str.ptr, ZFED_JOB_SITE_PARAM, length) == 0;
        if (!site)
            pairs[kept++] = pairs[index];
    }
    params->via.map.size = kept;
}

static int s_check_all_params(const zfed_job_t *job, zfed_error_t *error)
{
    if (job->task_params && json_array_size(job->task_params) != job->tasks)
        return zfed_error_set(error, ZFED_E_INVALID, "task_params", "has %zu entries for %u tasks",
                              json_array_size(job->task_params), job->tasks);
    if (job->round_params) {
        if (json_array_size(job->round_params) != job->rounds)
            return zfed_error_set(error, ZFED_E_INVALID, "round_params",
                                  "has %zu entries for %u rounds",
                                  json_array_size(job->round_params), job->rounds);
        size_t index;
        json_t *entry;
        json_array_foreach(job->round_params, index, entry)
        {
            if (json_is_array(entry) && json_array_size(entry) != job->tasks)
                return zfed_error_set(error, ZFED_E_INVALID, "round_params",
                                      "entry %zu has %zu entries for %u tasks", index,
                                      json_array_size(entry), job->tasks);
        }
    }
    //  Only the levels that vary need walking: one round when no per-round
    //  parameters exist, one task when no per-task ones do.
    uint32_t rounds = job->round_params ? job->rounds : 1;
    uint32_t tasks = job->task_params || job->round_params ? job->tasks : 1;
    uint64_t checks = 0;
    for (uint32_t round = 0; round < rounds; round++) {
        s_batch_cost_t batch = {0};
        for (uint32_t task = 0; task < tasks && checks < CHECK_MAX; task++, checks++) {
            uint8_t *packed;
            size_t packed_size;
            if (zfed_job_pack_params(job, round, task, &packed, &packed_size, error) != 0)
                return -1;
            int rc = s_check_batch_cost(job, &batch, round, task, tasks == 1, packed, packed_size,
                                        error);
            free(packed);
            if (rc != 0)
                return -1;
        }
    }
    return 0;
}

//  A safetensors file every round can start from: valid, every float
//  finite (read once, in pieces).  0, or -1 with the reason.
static int s_check_model_file(const char *path, char *reason, size_t reason_size)
{
    zfed_safetensors_t *file = zfed_safetensors_open(path, reason, reason_size);
    if (!file)
        return -1;
    const zfed_layout_t *layout = zfed_safetensors_layout(file);
    uint8_t *piece = malloc(MODEL_CHECK_PIECE);
    int rc = piece ? 0 : -1;
    if (!piece)
        snprintf(reason, reason_size, "out of memory");
    for (size_t t = 0; rc == 0 && t < zfed_layout_size(layout); t++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(layout, t);
        uint64_t size = zfed_dtype_size(tensor->dtype);
        uint64_t per_piece = MODEL_CHECK_PIECE / size;
        for (uint64_t first = 0; rc == 0 && first < tensor->count; first += per_piece) {
            uint64_t count = tensor->count - first < per_piece ? tensor->count - first : per_piece;
            rc = zfed_safetensors_read(file, tensor->offset + first * size, piece,
                                       (size_t)(count * size), reason, reason_size);
            if (rc == 0)
                rc = zfed_tensor_check_finite(tensor, first, piece, count, reason, reason_size);
        }
    }
    free(piece);
    zfed_safetensors_close(&file);
    return rc;
}

//  path (a buffer of size bytes) made absolute, when it resolves and the
//  result fits: job.json names files so they are found from anywhere later.
static void s_make_absolute(char *path, size_t size)
{
    char absolute[PATH_MAX];
    size_t length = realpath(path, absolute) ? strlen(absolute) : 0;
    if (length > 0 && length < size)
        memcpy(path, absolute, length + 1);
}

//  The first model key set, as named in job files.
static const char *s_first_model_key(const zfed_job_t *job, unsigned keys)
{
    for (size_t index = 0; s_model_keys[index]; index++)
        if (keys & (1u << index))
            return s_model_keys[index];
    return NULL;
}

static int s_finish_optimiser(zfed_job_t *job, zfed_error_t *error)
{
    const char *strategy = zfed_agg_strategy_name(job->strategy);
    if (!zfed_agg_strategy_is_optimiser(job->strategy)) {
        const char *key = s_first_model_key(
            job, job->model_keys & (KEY_SERVER_LR | KEY_BETA1 | KEY_BETA2 | KEY_TAU));
        if (key)
            return zfed_error_set(error, ZFED_E_INVALID, key,
                                  "only fedavgm, fedadam and fedyogi take it (the job "
                                  "aggregates with %s)",
                                  strategy);
        return 0;
    }
    zfed_opt_t opt;
    zfed_opt_kind_t kind;
    zfed_opt_parse(strategy, &kind);
    zfed_opt_defaults(kind, &opt);
    if (!zfed_opt_has_v(kind)) {
        const char *key = s_first_model_key(job, job->model_keys & (KEY_BETA2 | KEY_TAU));
        if (key)
            return zfed_error_set(error, ZFED_E_INVALID, key,
                                  "%s keeps no second moment: beta2 and tau are for fedadam "
                                  "and fedyogi",
                                  strategy);
    }
    //  The defaults (zfed_reduce.h) where nothing was given.
    if (!(job->model_keys & KEY_SERVER_LR))
        job->server_lr = opt.lr;
    if (!(job->model_keys & KEY_BETA1))
        job->beta1 = opt.beta1;
    if (!(job->model_keys & KEY_BETA2))
        job->beta2 = opt.beta2;
    if (!(job->model_keys & KEY_TAU))
        job->tau = opt.tau;
    return 0;
}

//  Replicas go one task per request, to a value service, and a minority
//  needs three of them at least.
static int s_finish_replicas(const zfed_job_t *job, const zfed_service_t *service,
                             zfed_error_t *error)
{
    if (job->exclude_liars && job->replicas < 3)
        return zfed_error_set(error, ZFED_E_INVALID, "exclude_liars",
                              "needs replicas of 3 or more (with %u there is no minority to "
                              "exclude)",
                              job->replicas);
    if (job->replicas < 2)
        return 0;
    if (job->batch != 1)
        return zfed_error_set(error, ZFED_E_INVALID, "replicas",
                              "replicated tasks travel one per request: drop batch (%u)",
                              job->batch);
    if (service->kind == ZFED_SERVICE_MODEL)
        return zfed_error_set(error, ZFED_E_INVALID, "replicas",
                              "%s is a model service; replicas are for value services",
                              job->service);
    return 0;
}

//  The settings of model services: refused for value services, checked
//  together (and against the service) for model services.
static int s_finish_models(zfed_job_t *job, const zfed_service_t *service, zfed_error_t *error)
{
    if (service->kind != ZFED_SERVICE_MODEL) {
        const char *key = s_first_model_key(job, job->model_keys);
        if (key)
            return zfed_error_set(error, ZFED_E_INVALID, key,
                                  "a setting of model services; %s is a value service",
                                  job->service);
        if (zfed_agg_strategy_models_only(job->strategy))
            return zfed_error_set(error, ZFED_E_INVALID, "aggregate",
                                  "%s aggregates models; %s is a value service (%s)",
                                  zfed_agg_strategy_name(job->strategy), job->service,
                                  zfed_agg_value_strategy_list());
        return 0;
    }
    if (job->batch != 1)
        return zfed_error_set(error, ZFED_E_INVALID, "batch",
                              "model tasks travel one per request: %s cannot be batched",
                              job->service);
    if (job->tasks > ZFED_JOB_MODEL_TASKS_MAX)
        return zfed_error_set(error, ZFED_E_INVALID, "tasks",
                              "a round of a model service has at most %d tasks, got %u",
                              ZFED_JOB_MODEL_TASKS_MAX, job->tasks);
    if (!job->initial_model[0] && !service->initial_model)
        return zfed_error_set(error, ZFED_E_INVALID, "initial_model",
                              "%s needs a model to start from", job->service);
    if (job->initial_model[0] && !job->resumed) {
        char reason[ZFED_ERROR_REASON_MAX];
        if (s_check_model_file(job->initial_model, reason, sizeof reason) != 0)
            return zfed_error_set(error, ZFED_E_INVALID, "initial_model", "%s", reason);
        //  job.json names it absolutely: it is read from anywhere later.
        s_make_absolute(job->initial_model, sizeof job->initial_model);
    }
    if (s_finish_optimiser(job, error) != 0)
        return -1;
    if (job->strategy != ZFED_AGG_KRUM) {
        const char *key = s_first_model_key(job, job->model_keys & (KEY_KRUM_F | KEY_KRUM_M));
        if (key)
            return zfed_error_set(error, ZFED_E_INVALID, key,
                                  "only krum takes it (the job aggregates with %s)",
                                  zfed_agg_strategy_name(job->strategy));
    } else {
        //  Blanchard et al.: the n - f - 2 closest neighbours of each result
        //  must exist, so every round needs n > 2f + 2 results.
        if (job->quorum <= 2 * job->krum_f + 2)
            return zfed_error_set(error, ZFED_E_INVALID, "krum_f",
                                  "Krum with krum_f %u needs more than %u results a round; the "
                                  "quorum is %u",
                                  job->krum_f, 2 * job->krum_f + 2, job->quorum);
        if (job->krum_m > job->quorum - job->krum_f)
            return zfed_error_set(error, ZFED_E_INVALID, "krum_m",
                                  "%u is more than the quorum minus krum_f (%u)", job->krum_m,
                                  job->quorum - job->krum_f);
    }
    return 0;
}

//  A split's description (zfed-split's split.json): its format, and its
//  sites' names, read from path (the job's split, or a resumed job's
//  copy).  0, or -1 naming split.
static int s_read_split(zfed_job_t *job, const char *path, zfed_error_t *error)
{
    json_error_t parse_error;
    json_t *split = json_load_file(path, JSON_REJECT_DUPLICATES, &parse_error);
    if (!split)
        return zfed_error_set(error, ZFED_E_INVALID, "split", "%s: %s", path, parse_error.text);
    const json_t *sites = json_object_get(split, "sites");
    const char *format = json_string_value(json_object_get(split, "format"));
    json_t *names = json_array();
    int rc = 0;
    if (!format || strcmp(format, ZFED_JOB_SPLIT_FORMAT) != 0 || !json_is_array(sites))
        rc = zfed_error_set(error, ZFED_E_INVALID, "split",
                            "%s: not a split description (format " ZFED_JOB_SPLIT_FORMAT
                            " with sites: zfed-split writes one)",
                            path);
    size_t index;
    json_t *site;
    json_array_foreach(sites, index, site)
    {
        if (rc == 0 && !json_is_string(json_object_get(site, "name")))
            rc = zfed_error_set(error, ZFED_E_INVALID, "split", "%s: site %zu has no name", path,
                                index);
        if (rc == 0)
            rc = json_array_append(names, json_object_get(site, "name"));
    }
    if (rc == 0 && !job->sites && (rc = s_set_sites(job, names, error)) != 0) {
        char reason[sizeof error->text];
        snprintf(reason, sizeof reason, "%s", error->text);
        rc = zfed_error_set(error, ZFED_E_INVALID, "split", "%s: %s", path, reason);
    }
    //  Sites listed beside a split are some of its sites.
    json_array_foreach(job->sites, index, site)
    {
        bool found = false;
        for (size_t other = 0; rc == 0 && other < json_array_size(names); other++)
            found = found || json_equal(json_array_get(names, other), site);
        if (rc == 0 && !found)
            rc = zfed_error_set(error, ZFED_E_INVALID, "sites", "site %s is not one of %s's",
                                json_string_value(site), path);
    }
    json_decref(names);
    if (rc != 0) {
        json_decref(split);
        return -1;
    }
    json_decref(job->split_json);
    job->split_json = split;
    return 0;
}

//  Sites (from the job or its split): one task each, addressed to
//  SERVICE@SITE; the evaluation folder, opened once to check it and kept
//  open for the controller.
static int s_finish_sites(zfed_job_t *job, const zfed_service_t *service, zfed_error_t *error)
{
    //  A resumed job has its sites in job.json and its split's copy in its
    //  folder: the file need not exist any more.
    char copy[sizeof job->workdir + sizeof job->job_id + sizeof ZFED_JOB_SPLIT_FILE + 2];
    snprintf(copy, sizeof copy, "%s/%s/" ZFED_JOB_SPLIT_FILE, job->workdir, job->job_id);
    const char *split = job->resumed ? copy : job->split;
    if (job->split[0]) {
        if (s_read_split(job, split, error) != 0)
            return -1;
        if (!job->resumed)
            s_make_absolute(job->split, sizeof job->split);
    }
    if (job->eval_data[0]) {
        if (!service->evaluate)
            return zfed_error_set(error, ZFED_E_INVALID, "eval_data",
                                  "service %s evaluates no model", job->service);
        zfed_fault_t fault = {0};
        s_close_eval_set(job);
        if (service->open_data(job->eval_data, ZFED_DATA_EVAL, &job->eval_set, &fault) != 0)
            return zfed_error_set(error, ZFED_E_INVALID, "eval_data", "%s", fault.text);
        s_make_absolute(job->eval_data, sizeof job->eval_data);
    }
    if (!job->sites)
        return 0;
    //  A site-bound service's results are held against their sites' shards.
    free(job->site_shards);
    job->site_shards = NULL;
    if (service->site_bound && job->split_json &&
        zfed_sites_shards(job->split_json, split, job->sites, &job->site_shards, error) != 0)
        return -1;
    uint32_t count = (uint32_t)json_array_size(job->sites);
    if (job->tasks_given && job->tasks != count)
        return zfed_error_set(error, ZFED_E_INVALID, "tasks",
                              "%u tasks for %u sites: a job with sites has one task per site",
                              job->tasks, count);
    job->tasks = count;
    //  Each task goes to its own site's workers: one task per request.
    if (job->batch != 1)
        return zfed_error_set(error, ZFED_E_INVALID, "batch",
                              "a job with sites sends each task to its site alone");
    free(job->site_services);
    job->site_services = calloc(count, sizeof *job->site_services);
    if (!job->site_services)
        return zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
    for (uint32_t task = 0; task < count; task++) {
        const char *site = zfed_job_site(job, task);
        if (snprintf(job->site_services[task], sizeof job->site_services[task],
                     "%s" ZFED_JOB_SITE_SEPARATOR "%s", job->service,
                     site) >= (int)sizeof job->site_services[task])
            return zfed_error_set(error, ZFED_E_INVALID, "sites",
                                  "%s" ZFED_JOB_SITE_SEPARATOR "%s is longer than a service name "
                                  "(%d bytes)",
                                  job->service, site, ZFED_MDP_SERVICE_MAX);
    }
    return 0;
}

int zfed_job_finish(zfed_job_t *job, zfed_error_t *error)
{
    const zfed_service_t *service = zfed_service_find(job->service);
    if (!service)
        return zfed_error_set(error, ZFED_E_INVALID, "service", "unknown service '%s'",
                              job->service);
    //  The service's documented defaults sit under everything the user set.
    if (service->default_params) {
        json_t *defaults = json_loads(service->default_params, 0, NULL);
        int rc = defaults ? json_object_update_missing(job->params, defaults) : -1;
        json_decref(defaults);
        if (rc != 0)
            return zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
    }
    //  A service whose tasks take a seed gets the job's, unless the params
    //  set their own: one seed makes the whole job repeatable.
    if (service->seed_param && !json_object_get(job->params, "seed") &&
        json_object_set_new(job->params, "seed", json_integer((json_int_t)job->seed)) != 0)
        return zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
    if (s_finish_sites(job, service, error) != 0)
        return -1;
    if (job->quorum_count > job->tasks)
        return zfed_error_set(error, ZFED_E_INVALID, "quorum",
                              "%u is more than the %u tasks of a round", job->quorum_count,
                              job->tasks);
    if (job->quorum_count > 0)
        job->quorum = job->quorum_count;
    else {
        double needed = ceil(job->quorum_fraction * job->tasks - 1e-9);
        job->quorum = needed < 1 ? 1 : (uint32_t)needed;
    }
    if (job->task_timeout_ms == 0)
        job->task_timeout_ms = job->round_timeout_ms / (job->retries + 1);
    if (job->task_timeout_ms <= 0)
        job->task_timeout_ms = 1;
    if ((job->metric == ZFED_METRIC_TEST_ACCURACY || job->metric == ZFED_METRIC_TEST_LOSS) &&
        !job->eval_data[0])
        return zfed_error_set(error, ZFED_E_INVALID, "select",
                              "%s needs eval_data: the folder of the set each round's model is "
                              "evaluated on",
                              zfed_metric_name(job->metric));
    if (job->metric == ZFED_METRIC_AGGREGATE && !service->scalar) {
        if (job->metric_given)
            return zfed_error_set(error, ZFED_E_INVALID, "select",
                                  "service %s has no scalar aggregate; use results or "
                                  "duration_ms",
                                  job->service);
        job->metric = ZFED_METRIC_RESULTS; //  the default that makes sense for it
    }
    if (s_finish_replicas(job, service, error) != 0 || s_finish_models(job, service, error) != 0)
        return -1;
    if ((job->curve_cert[0] == '\0') != (job->server_key[0] == '\0'))
        return zfed_error_set(error, ZFED_E_INVALID,
                              job->curve_cert[0] ? "server_key" : "curve_cert",
                              "CURVE needs both curve_cert and server_key");
    if (job->job_id[0] == '\0') {
        //  Sortable and unique enough for one user: UTC time + pid + random.
        time_t now = time(NULL);
        struct tm parts;
        gmtime_r(&now, &parts);
        unsigned salt = (unsigned)(zfed_clock_us() ^ getpid()) & 0xffff;
        snprintf(job->job_id, sizeof job->job_id, "job-%04d%02d%02d-%02d%02d%02d-%04x",
                 parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min,
                 parts.tm_sec, salt);
    }
    return s_check_all_params(job, error);
}

const char *zfed_job_keep_text(const zfed_job_t *job, char *text, size_t size)
{
    switch (job->keep) {
    case ZFED_KEEP_NONE:
        snprintf(text, size, "none");
        break;
    case ZFED_KEEP_BEST:
        snprintf(text, size, "best");
        break;
    case ZFED_KEEP_ALL:
        snprintf(text, size, "all");
        break;
    default:
        snprintf(text, size, "last:%u", job->keep_last);
        break;
    }
    return text;
}

//  The model settings as run, resolved (job.json of a model service).
static int s_models_to_json(const zfed_job_t *job, json_t *root)
{
    char keep[32];
    int rc = 0;
    if (job->initial_model[0])
        rc |= json_object_set_new(root, "initial_model", json_string(job->initial_model));
    rc |= json_object_set_new(root, "seed", json_integer((json_int_t)job->seed));
    rc |= json_object_set_new(root, "keep_models",
                              json_string(zfed_job_keep_text(job, keep, sizeof keep)));
    rc |= json_object_set_new(root, "chunk", json_integer(job->chunk));
    rc |= json_object_set_new(root, "inline_memory", json_integer((json_int_t)job->inline_memory));
    if (zfed_agg_strategy_is_optimiser(job->strategy)) {
        rc |= json_object_set_new(root, "server_lr", json_real(job->server_lr));
        rc |= json_object_set_new(root, "beta1", json_real(job->beta1));
        if (job->strategy != ZFED_AGG_FEDAVGM) {
            rc |= json_object_set_new(root, "beta2", json_real(job->beta2));
            rc |= json_object_set_new(root, "tau", json_real(job->tau));
        }
    }
    if (job->strategy == ZFED_AGG_KRUM) {
        rc |= json_object_set_new(root, "krum_f", json_integer(job->krum_f));
        rc |= json_object_set_new(root, "krum_m", json_integer(job->krum_m));
    }
    return rc;
}

json_t *zfed_job_to_json(const zfed_job_t *job)
{
    char select[48];
    snprintf(select, sizeof select, "%s:%s", zfed_metric_name(job->metric),
             job->maximize ? "max" : "min");
    json_t *root = json_object();
    if (!root)
        return NULL;
    int rc = json_object_set_new(root, "job_id", json_string(job->job_id));
    rc |= json_object_set_new(root, "service", json_string(job->service));
    rc |= json_object_set_new(root, "connect", json_string(job->endpoint));
    rc |= json_object_set_new(root, "workdir", json_string(job->workdir));
    rc |= json_object_set_new(root, "rounds", json_integer(job->rounds));
    rc |= json_object_set_new(root, "tasks", json_integer(job->tasks));
    rc |= json_object_set(root, "params", job->params);
    if (job->sites)
        rc |= json_object_set(root, "sites", job->sites);
    if (job->split[0])
        rc |= json_object_set_new(root, "split", json_string(job->split));
    if (job->eval_data[0])
        rc |= json_object_set_new(root, "eval_data", json_string(job->eval_data));
    if (job->task_params)
        rc |= json_object_set(root, "task_params", job->task_params);
    if (job->round_params)
        rc |= json_object_set(root, "round_params", job->round_params);
    rc |= json_object_set_new(root, "quorum",
                              job->quorum_count ? json_integer(job->quorum_count)
                                                : json_real(job->quorum_fraction));
    rc |= json_object_set_new(root, "round_timeout", json_real(job->round_timeout_ms / 1000.0));
    rc |= json_object_set_new(root, "grace", json_real(job->grace_ms / 1000.0));
    rc |= json_object_set_new(root, "task_timeout", json_real(job->task_timeout_ms / 1000.0));
    rc |= json_object_set_new(root, "retries", json_integer(job->retries));
    rc |= json_object_set_new(root, "batch", json_integer(job->batch));
    rc |= json_object_set_new(root, "window", json_integer(job->window));
    rc |= json_object_set_new(root, "replicas", json_integer(job->replicas));
    rc |= json_object_set_new(root, "exclude_liars", json_boolean(job->exclude_liars));
    rc |=
        json_object_set_new(root, "aggregate", json_string(zfed_agg_strategy_name(job->strategy)));
    rc |= json_object_set_new(root, "trim", json_real(job->trim));
    rc |= json_object_set_new(root, "select", json_string(select));
    if (job->curve_cert[0])
        rc |= json_object_set_new(root, "curve_cert", json_string(job->curve_cert));
    if (job->server_key[0])
        rc |= json_object_set_new(root, "server_key", json_string(job->server_key));
    const zfed_service_t *service = zfed_service_find(job->service);
    if (service && service->kind == ZFED_SERVICE_MODEL)
        rc |= s_models_to_json(job, root);
    if (rc != 0) {
        json_decref(root);
        return NULL;
    }
    return root;
}
