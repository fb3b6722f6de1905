/*  test_job - job settings: defaults, derived values (quorum, task
    timeout, job id), parameter merging, job files with every setting and
    every kind of mistake, the JSON round trip, and metric names.

    Job files are written into a fresh temporary directory (mkdtemp) and
    removed again; errors are checked for the field they must name, since
    that is what a user reads.
*/
#include "controller/zfed_job_private.h"
#include "zfed/zfed_safetensors.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_util.h"
#include "zfed_test.h"
#include "zfed_test_fs.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK_CONTAINS(text, needle)                                                               \
    do {                                                                                           \
        const char *text_ = (text);                                                                \
        const char *needle_ = (needle);                                                            \
        zfed_test_checks++;                                                                        \
        if (!text_ || !strstr(text_, needle_)) {                                                   \
            zfed_test_failures++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK_CONTAINS failed: %s\n  text:   %s\n  wanted: %s\n",      \
                    __FILE__, __LINE__, #text, text_ ? text_ : "(null)", needle_);                 \
        }                                                                                          \
    } while (0)

//  True when text starts with prefix.
static bool s_starts_with(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

#define CHECK_PREFIX(text, prefix)                                                                 \
    do {                                                                                           \
        const char *text_p_ = (text);                                                              \
        zfed_test_checks++;                                                                        \
        if (!s_starts_with(text_p_, prefix)) {                                                     \
            zfed_test_failures++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK_PREFIX failed\n  text:   %s\n  wanted: %s...\n",         \
                    __FILE__, __LINE__, text_p_, prefix);                                          \
        }                                                                                          \
    } while (0)

//  The library's calls, with the error's message copied where the checks
//  read it (the codes and fields are checked in s_check_error_codes).
static int s_message(int rc, const zfed_error_t *error, char *text, size_t size)
{
    const char *message = rc == 0 ? "" : error->message;
    size_t length = strlen(message) < size ? strlen(message) : size - 1;
    memcpy(text, message, length);
    text[length] = '\0';
    return rc;
}

static int s_job_load(zfed_job_t *job, const char *path, char *text, size_t size)
{
    zfed_error_t error;
    return s_message(zfed_job_load(job, path, &error), &error, text, size);
}

static int s_job_finish(zfed_job_t *job, char *text, size_t size)
{
    zfed_error_t error;
    return s_message(zfed_job_finish(job, &error), &error, text, size);
}

static int s_job_set(zfed_job_t *job, const char *key, json_t *value, char *text, size_t size)
{
    zfed_error_t error;
    return s_message(zfed_job_set(job, key, value, &error), &error, text, size);
}

//  The temporary directory for job files, and a counter for file names.
static char s_dir[64];
static int s_file_number = 0;

//  Writes text into a new file under s_dir; path receives its name.
static void s_write(const char *text, char *path, size_t path_size)
{
    snprintf(path, path_size, "%s/job-%d.json", s_dir, s_file_number++);
    zfed_test_write_text(path, text);
}

//  Loads text as a job file into job (already initialised).  Returns what
//  zfed_job_load returned; error receives its message.
static int s_load_text(zfed_job_t *job, const char *text, char *error, size_t error_size)
{
    char path[128];
    s_write(text, path, sizeof path);
    error[0] = '\0';
    int rc = s_job_load(job, path, error, error_size);
    unlink(path);
    return rc;
}

//  A fresh default job loaded from text, then finished when finish is
//  set.  Returns 0 when every step passed, else -1 with the error.
static int s_load_and_finish(const char *text, bool finish, char *error, size_t error_size)
{
    zfed_job_t job;
    if (zfed_job_init(&job) != 0)
        abort();
    int rc = s_load_text(&job, text, error, error_size);
    if (rc == 0 && finish)
        rc = s_job_finish(&job, error, error_size);
    zfed_job_clear(&job);
    return rc;
}

//  CHECKs that text fails to load (or, with finish, to load and finish)
//  with an error starting with prefix.
static void s_check_load_error(const char *text, bool finish, const char *prefix)
{
    char error[512];
    int rc = s_load_and_finish(text, finish, error, sizeof error);
    CHECK_INT(rc, -1);
    bool named = rc == -1 && s_starts_with(error, prefix);
    CHECK(named);
    if (!named)
        fprintf(stderr, "  job file %s\n  error: '%s'\n  wanted a prefix '%s'\n", text, error,
                prefix);
}

//  Like s_check_load_error, but load itself must succeed and finish fail:
//  some mistakes can only be seen once every setting is known.
static void s_check_finish_error(const char *text, const char *prefix)
{
    char error[512];
    zfed_job_t job;
    zfed_job_init(&job);
    int rc = s_load_text(&job, text, error, sizeof error);
    CHECK_INT(rc, 0);
    if (rc != 0)
        fprintf(stderr, "  job file %s\n  load failed: %s\n", text, error);
    if (rc == 0) {
        error[0] = '\0';
        rc = s_job_finish(&job, error, sizeof error);
        CHECK_INT(rc, -1);
        bool named = rc == -1 && s_starts_with(error, prefix);
        CHECK(named);
        if (!named)
            fprintf(stderr, "  job file %s\n  finish error: '%s'\n  wanted a prefix '%s'\n", text,
                    error, prefix);
    }
    zfed_job_clear(&job);
}

//  The integer value of params key in the merged params of (round, task),
//  or -999 when missing.
static long long s_param(const zfed_job_t *job, uint32_t round, uint32_t task, const char *key)
{
    json_t *merged = zfed_job_task_params(job, round, task);
    if (!merged)
        return -1000;
    json_t *value = json_object_get(merged, key);
    long long result = json_is_integer(value) ? (long long)json_integer_value(value) : -999;
    json_decref(merged);
    return result;
}

//  ---------------------------------------------------------------------
//  Defaults and derived values

static void s_test_defaults(void)
{
    zfed_job_t job;
    memset(&job, 0x5a, sizeof job); //  init must not depend on a zeroed struct
    CHECK_INT(zfed_job_init(&job), 0);
    CHECK_STR(job.job_id, "");
    CHECK_STR(job.service, "fib");
    CHECK_STR(job.endpoint, "tcp://127.0.0.1:5555");
    CHECK_STR(job.workdir, "/tmp/zfed/jobs");
    CHECK_INT(job.rounds, 5);
    CHECK_INT(job.tasks, 5);
    //  params start empty: the service's defaults come with finish.
    CHECK(json_is_object(job.params));
    CHECK_INT(json_object_size(job.params), 0);
    CHECK(job.task_params == NULL);
    CHECK(job.round_params == NULL);
    CHECK(job.quorum_fraction == 1.0);
    CHECK_INT(job.quorum_count, 0);
    CHECK_INT(job.quorum, 0);
    CHECK_INT(job.round_timeout_ms, 30000);
    CHECK_INT(job.grace_ms, 1000);
    CHECK_INT(job.task_timeout_ms, 0);
    CHECK_INT(job.retries, 1);
    CHECK_INT(job.batch, 1);
    CHECK_INT(job.window, ZFED_JOB_DEFAULT_WINDOW);
    CHECK_INT(job.strategy, ZFED_AGG_FEDAVG);
    CHECK(job.trim == 0.1);
    CHECK_INT(job.metric, ZFED_METRIC_AGGREGATE);
    CHECK(job.maximize);
    CHECK_STR(job.curve_cert, "");
    CHECK_STR(job.server_key, "");

    //  Finishing the defaults: quorum all 5, task timeout 30 s / 2 tries,
    //  and a generated job id.
    char error[256] = "";
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_STR(error, "");
    CHECK_INT(job.quorum, 5);
    CHECK_INT(job.task_timeout_ms, 15000);
    CHECK(zfed_is_safe_name(job.job_id, ZFED_JOB_ID_MAX));
    //  "job-YYYYMMDD-HHMMSS-xxxx"
    CHECK_INT(strlen(job.job_id), 24);
    CHECK(s_starts_with(job.job_id, "job-20"));
    CHECK(job.job_id[12] == '-' && job.job_id[19] == '-');
    bool digits = true;
    for (int index = 4; index < 19; index++)
        if (index != 12 && (job.job_id[index] < '0' || job.job_id[index] > '9'))
            digits = false;
    CHECK(digits);
    //  A second finish keeps the id and the resolved values.
    char id[ZFED_JOB_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", job.job_id);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_STR(job.job_id, id);
    CHECK_INT(job.task_timeout_ms, 15000);
    zfed_job_clear(&job);
    CHECK(job.params == NULL && job.task_params == NULL && job.round_params == NULL);
    zfed_job_clear(&job); //  twice is harmless

    //  A job id given is kept.
    zfed_job_init(&job);
    snprintf(job.job_id, sizeof job.job_id, "mine");
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_STR(job.job_id, "mine");
    zfed_job_clear(&job);
}

//  Finishes a default job after set_up; returns the resolved quorum or -1.
static long long s_quorum(uint32_t tasks, double fraction, uint32_t count, char *error,
                          size_t error_size)
{
    zfed_job_t job;
    zfed_job_init(&job);
    job.tasks = tasks;
    job.quorum_fraction = fraction;
    job.quorum_count = count;
    long long quorum = s_job_finish(&job, error, error_size) == 0 ? (long long)job.quorum : -1;
    zfed_job_clear(&job);
    return quorum;
}

static void s_test_quorum(void)
{
    char error[256];
    CHECK_INT(s_quorum(5, 0.6, 0, error, sizeof error), 3);
    CHECK_INT(s_quorum(5, 1.0, 0, error, sizeof error), 5);
    CHECK_INT(s_quorum(5, 0.5, 0, error, sizeof error), 3); //  ceil(2.5)
    CHECK_INT(s_quorum(5, 0.2, 0, error, sizeof error), 1);
    CHECK_INT(s_quorum(5, 0.01, 0, error, sizeof error), 1); //  never below one
    CHECK_INT(s_quorum(5, 0.25, 0, error, sizeof error), 2); //  ceil(1.25), not rounded
    CHECK_INT(s_quorum(5, 0.61, 0, error, sizeof error), 4); //  ceil(3.05)
    //  Products a hair above a whole number in binary are that number.
    CHECK_INT(s_quorum(100, 0.55, 0, error, sizeof error), 55); //  55.00000000000001
    CHECK_INT(s_quorum(100, 0.07, 0, error, sizeof error), 7);  //  7.000000000000001
    CHECK_INT(s_quorum(3, 1.0 / 3.0, 0, error, sizeof error), 1);
    CHECK_INT(s_quorum(1000000, 0.999999, 0, error, sizeof error), 999999);
    CHECK_INT(s_quorum(1, 0.5, 0, error, sizeof error), 1);
    CHECK_INT(s_quorum(5, 0, 2, error, sizeof error), 2);
    CHECK_INT(s_quorum(5, 0, 5, error, sizeof error), 5);
    CHECK_INT(s_quorum(5, 0, 1, error, sizeof error), 1);
    error[0] = '\0';
    CHECK_INT(s_quorum(5, 0, 6, error, sizeof error), -1);
    CHECK_PREFIX(error, "quorum:");
    CHECK_CONTAINS(error, "6");

    //  The same through a job file, count and fraction.
    zfed_job_t job;
    zfed_job_init(&job);
    CHECK_INT(s_load_text(&job, "{\"tasks\": 5, \"quorum\": 0.6}", error, sizeof error), 0);
    CHECK(job.quorum_fraction == 0.6);
    CHECK_INT(job.quorum_count, 0);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_INT(job.quorum, 3);
    zfed_job_clear(&job);
    zfed_job_init(&job);
    CHECK_INT(s_load_text(&job, "{\"tasks\": 4, \"quorum\": 2}", error, sizeof error), 0);
    CHECK_INT(job.quorum_count, 2);
    CHECK(job.quorum_fraction == 0);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_INT(job.quorum, 2);
    zfed_job_clear(&job);
    //  A later fraction replaces an earlier count and the reverse.
    zfed_job_init(&job);
    CHECK_INT(s_load_text(&job, "{\"quorum\": 2}", error, sizeof error), 0);
    CHECK_INT(s_load_text(&job, "{\"quorum\": 1.0}", error, sizeof error), 0);
    CHECK_INT(job.quorum_count, 0);
    CHECK(job.quorum_fraction == 1.0);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_INT(job.quorum, 5);
    zfed_job_clear(&job);
    s_check_finish_error("{\"tasks\": 3, \"quorum\": 4}", "quorum:");
    //  quorum 1 (an integer) is a count of one; 1.0 (a real) is all.
    s_check_finish_error("{\"tasks\": 2, \"quorum\": 3}", "quorum:");
    zfed_job_init(&job);
    CHECK_INT(s_load_text(&job, "{\"quorum\": 1}", error, sizeof error), 0);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_INT(job.quorum, 1);
    zfed_job_clear(&job);
}

static void s_test_task_timeout(void)
{
    char error[256];
    zfed_job_t job;
    zfed_job_init(&job);
    job.round_timeout_ms = 9000;
    job.retries = 2;
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_INT(job.task_timeout_ms, 3000);
    zfed_job_clear(&job);

    zfed_job_init(&job);
    job.round_timeout_ms = 10000;
    job.retries = 0;
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_INT(job.task_timeout_ms, 10000);
    zfed_job_clear(&job);

    //  Given explicitly: kept.
    zfed_job_init(&job);
    job.task_timeout_ms = 1234;
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_INT(job.task_timeout_ms, 1234);
    zfed_job_clear(&job);

    //  Never zero: 1 ms over 2 tries rounds down to 0, lifted to 1.
    zfed_job_init(&job);
    CHECK_INT(s_load_text(&job, "{\"round_timeout\": 0.001, \"retries\": 1}", error, sizeof error),
              0);
    CHECK_INT(job.round_timeout_ms, 1);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_INT(job.task_timeout_ms, 1);
    zfed_job_clear(&job);

    //  Through a file: 7 s over 100 retries + 1 = 69 ms (integer division).
    zfed_job_init(&job);
    CHECK_INT(s_load_text(&job, "{\"round_timeout\": 7, \"retries\": 100}", error, sizeof error),
              0);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_INT(job.task_timeout_ms, 69);
    zfed_job_clear(&job);
}

//  ---------------------------------------------------------------------
//  Parameter levels

static void s_test_param_merging(void)
{
    zfed_job_t job;
    zfed_job_init(&job);
    json_decref(job.params);
    job.params = json_pack("{s:i, s:i, s:i, s:i}", "a", 1, "b", 1, "c", 1, "d", 1);
    job.rounds = 3;
    job.tasks = 2;
    job.task_params = json_pack("[{s:i, s:i, s:i}, {}]", "b", 2, "c", 2, "d", 2);
    job.round_params = json_pack("[{s:i, s:i}, [{s:i}, {}], {}]", "c", 3, "d", 3, "d", 4);
    CHECK(job.params && job.task_params && job.round_params);

    //  round 0 is an object: params < task_params[t] < round_params[0].
    CHECK_INT(s_param(&job, 0, 0, "a"), 1);
    CHECK_INT(s_param(&job, 0, 0, "b"), 2);
    CHECK_INT(s_param(&job, 0, 0, "c"), 3);
    CHECK_INT(s_param(&job, 0, 0, "d"), 3);
    CHECK_INT(s_param(&job, 0, 1, "a"), 1);
    CHECK_INT(s_param(&job, 0, 1, "b"), 1);
    CHECK_INT(s_param(&job, 0, 1, "c"), 3);
    CHECK_INT(s_param(&job, 0, 1, "d"), 3);
    //  round 1 is a table: round_params[1][t] wins for its task only.
    CHECK_INT(s_param(&job, 1, 0, "a"), 1);
    CHECK_INT(s_param(&job, 1, 0, "b"), 2);
    CHECK_INT(s_param(&job, 1, 0, "c"), 2);
    CHECK_INT(s_param(&job, 1, 0, "d"), 4);
    CHECK_INT(s_param(&job, 1, 1, "b"), 1);
    CHECK_INT(s_param(&job, 1, 1, "c"), 1);
    CHECK_INT(s_param(&job, 1, 1, "d"), 1);
    //  round 2 adds nothing.
    CHECK_INT(s_param(&job, 2, 0, "b"), 2);
    CHECK_INT(s_param(&job, 2, 0, "d"), 2);
    CHECK_INT(s_param(&job, 2, 1, "d"), 1);

    //  The merge is a copy: the job's own objects are unchanged.
    json_t *merged = zfed_job_task_params(&job, 1, 0);
    CHECK(merged != NULL && merged != job.params);
    json_object_set_new(merged, "a", json_integer(99));
    json_decref(merged);
    CHECK_INT(json_integer_value(json_object_get(job.params, "a")), 1);
    CHECK_INT(json_object_size(job.params), 4);
    CHECK_INT(json_object_size(json_array_get(job.task_params, 0)), 3);
    //  Keys only set at a deeper level appear in the merge.
    zfed_job_clear(&job);

    zfed_job_init(&job);
    job.tasks = 2;
    job.rounds = 1;
    job.task_params = json_pack("[{s:i}, {s:s}]", "only_t0", 5, "only_t1", "x");
    merged = zfed_job_task_params(&job, 0, 1);
    REQUIRE(merged != NULL);
    CHECK_INT(json_object_size(merged), 1);
    CHECK_STR(json_string_value(json_object_get(merged, "only_t1")), "x");
    CHECK(json_object_get(merged, "only_t0") == NULL);
    json_decref(merged);
    zfed_job_clear(&job);

    //  Through a job file and finish: the levels reach the service check,
    //  and a bad value at any level is reported with its round and task.
    char error[512];
    zfed_job_init(&job);
    CHECK_INT(s_load_text(&job,
                          "{\"rounds\": 2, \"tasks\": 3, \"params\": {\"fibonacci_level\": 5},"
                          " \"task_params\": [{}, {\"fibonacci_level\": 6}, {}],"
                          " \"round_params\": [[{}, {}, {\"fibonacci_level\": 8}],"
                          " {\"fibonacci_level\": 9}]}",
                          error, sizeof error),
              0);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_INT(s_param(&job, 0, 0, "fibonacci_level"), 5);
    CHECK_INT(s_param(&job, 0, 1, "fibonacci_level"), 6);
    CHECK_INT(s_param(&job, 0, 2, "fibonacci_level"), 8);
    CHECK_INT(s_param(&job, 1, 0, "fibonacci_level"), 9);
    CHECK_INT(s_param(&job, 1, 1, "fibonacci_level"), 9);
    CHECK_INT(s_param(&job, 1, 2, "fibonacci_level"), 9);
    zfed_job_clear(&job);

    s_check_finish_error("{\"rounds\": 2, \"tasks\": 3,"
                         " \"round_params\": [{}, [{}, {\"fibonacci_level\": 0}, {}]]}",
                         "fibonacci_level (round 1, task 1)");
    s_check_finish_error("{\"rounds\": 2, \"tasks\": 3,"
                         " \"task_params\": [{}, {}, {\"fibonacci_level\": 100001}]}",
                         "fibonacci_level (round 0, task 2)");
}

//  ---------------------------------------------------------------------
//  Job files

static void s_test_load_everything(void)
{
    static const char text[] = "{\n"
                               "  \"job_id\": \"exp-1.b_2\",\n"
                               "  \"service\": \"fib\",\n"
                               "  \"connect\": \"tcp://10.0.0.7:6000\",\n"
                               "  \"workdir\": \"/var/tmp/zfed-test\",\n"
                               "  \"rounds\": 3,\n"
                               "  \"tasks\": 4,\n"
                               "  \"params\": {\"fibonacci_level\": 12},\n"
                               "  \"task_params\": [{}, {}, {}, {\"fibonacci_level\": 7}],\n"
                               "  \"round_params\": [{}, [{}, {}, {}, {}],"
                               " {\"fibonacci_level\": 20}],\n"
                               "  \"quorum\": 0.75,\n"
                               "  \"round_timeout\": 2.5,\n"
                               "  \"grace\": 0.25,\n"
                               "  \"task_timeout\": 1.5,\n"
                               "  \"retries\": 3,\n"
                               "  \"aggregate\": \"trimmed-mean\",\n"
                               "  \"trim\": 0.2,\n"
                               "  \"select\": \"duration_ms:min\",\n"
                               "  \"curve_cert\": \"/etc/zfed/client.cert\",\n"
                               "  \"server_key\": \"/etc/zfed/server.key\"\n"
                               "}\n";
    zfed_job_t job;
    zfed_job_init(&job);
    char error[256] = "";
    CHECK_INT(s_load_text(&job, text, error, sizeof error), 0);
    CHECK_STR(error, "");
    CHECK_STR(job.job_id, "exp-1.b_2");
    CHECK_STR(job.service, "fib");
    CHECK_STR(job.endpoint, "tcp://10.0.0.7:6000");
    CHECK_STR(job.workdir, "/var/tmp/zfed-test");
    CHECK_INT(job.rounds, 3);
    CHECK_INT(job.tasks, 4);
    CHECK_INT(json_integer_value(json_object_get(job.params, "fibonacci_level")), 12);
    CHECK_INT(json_array_size(job.task_params), 4);
    CHECK_INT(json_array_size(job.round_params), 3);
    CHECK(job.quorum_fraction == 0.75);
    CHECK_INT(job.quorum_count, 0);
    CHECK_INT(job.round_timeout_ms, 2500);
    CHECK_INT(job.grace_ms, 250);
    CHECK_INT(job.task_timeout_ms, 1500);
    CHECK_INT(job.retries, 3);
    CHECK_INT(job.strategy, ZFED_AGG_TRIMMED_MEAN);
    CHECK(job.trim == 0.2);
    CHECK_INT(job.metric, ZFED_METRIC_DURATION);
    CHECK(!job.maximize);
    CHECK_STR(job.curve_cert, "/etc/zfed/client.cert");
    CHECK_STR(job.server_key, "/etc/zfed/server.key");

    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_STR(error, "");
    CHECK_INT(job.quorum, 3);
    CHECK_INT(job.task_timeout_ms, 1500);
    CHECK_STR(job.job_id, "exp-1.b_2");
    CHECK_INT(s_param(&job, 0, 3, "fibonacci_level"), 7);
    CHECK_INT(s_param(&job, 1, 3, "fibonacci_level"), 7);
    CHECK_INT(s_param(&job, 2, 3, "fibonacci_level"), 20);
    CHECK_INT(s_param(&job, 1, 0, "fibonacci_level"), 12);
    zfed_job_clear(&job);

    //  Each strategy name and each select form.
    const char *strategies[] = {"fedavg", "mean", "median", "trimmed-mean", "min", "max", "sum"};
    for (int index = 0; index < 7; index++) {
        char file[128];
        snprintf(file, sizeof file, "{\"aggregate\": \"%s\"}", strategies[index]);
        zfed_job_init(&job);
        CHECK_INT(s_load_text(&job, file, error, sizeof error), 0);
        CHECK_INT(job.strategy, index);
        zfed_job_clear(&job);
    }
    struct {
        const char *select;
        zfed_metric_t metric;
        bool maximize;
    } selects[] = {{"aggregate", ZFED_METRIC_AGGREGATE, true},
                   {"aggregate:min", ZFED_METRIC_AGGREGATE, false},
                   {"results:max", ZFED_METRIC_RESULTS, true},
                   {"results", ZFED_METRIC_RESULTS, true},
                   {"duration_ms:min", ZFED_METRIC_DURATION, false},
                   {"duration_ms:max", ZFED_METRIC_DURATION, true}};
    for (size_t index = 0; index < sizeof selects / sizeof selects[0]; index++) {
        char file[128];
        snprintf(file, sizeof file, "{\"select\": \"%s\"}", selects[index].select);
        zfed_job_init(&job);
        job.maximize = !selects[index].maximize; //  must be set either way
        CHECK_INT(s_load_text(&job, file, error, sizeof error), 0);
        CHECK_INT(job.metric, selects[index].metric);
        CHECK(job.maximize == selects[index].maximize);
        zfed_job_clear(&job);
    }

    //  Limits that are still valid.
    zfed_job_init(&job);
    CHECK_INT(s_load_text(&job,
                          "{\"rounds\": 1000000, \"tasks\": 1, \"retries\": 0, \"grace\": 0,"
                          " \"round_timeout\": 86400, \"trim\": 0, \"quorum\": 1}",
                          error, sizeof error),
              0);
    CHECK_INT(job.rounds, 1000000);
    CHECK_INT(job.tasks, 1);
    CHECK_INT(job.retries, 0);
    CHECK_INT(job.grace_ms, 0);
    CHECK_INT(job.round_timeout_ms, 86400000);
    CHECK(job.trim == 0);
    zfed_job_clear(&job);
    zfed_job_init(&job);
    CHECK_INT(s_load_text(&job, "{\"tasks\": 1000000, \"retries\": 100, \"trim\": 0.49}", error,
                          sizeof error),
              0);
    CHECK_INT(job.tasks, 1000000);
    CHECK_INT(job.retries, 100);
    zfed_job_clear(&job);
    //  An empty object changes nothing.
    zfed_job_init(&job);
    CHECK_INT(s_load_text(&job, "{}", error, sizeof error), 0);
    CHECK_INT(job.rounds, 5);
    CHECK_STR(job.service, "fib");
    zfed_job_clear(&job);
}

static void s_test_load_errors(void)
{
    //  Unknown setting.
    s_check_load_error("{\"rouns\": 3}", false, "rouns: unknown setting");
    s_check_load_error("{\"rounds\": 3, \"Tasks\": 3}", false, "Tasks:");
    //  rounds and tasks: integers in range.
    s_check_load_error("{\"rounds\": \"5\"}", false, "rounds:");
    s_check_load_error("{\"rounds\": 5.0}", false, "rounds:");
    s_check_load_error("{\"rounds\": 0}", false, "rounds:");
    s_check_load_error("{\"rounds\": -1}", false, "rounds:");
    s_check_load_error("{\"rounds\": 1000001}", false, "rounds:");
    s_check_load_error("{\"rounds\": null}", false, "rounds:");
    s_check_load_error("{\"rounds\": true}", false, "rounds:");
    s_check_load_error("{\"tasks\": 0}", false, "tasks:");
    s_check_load_error("{\"tasks\": [5]}", false, "tasks:");
    s_check_load_error("{\"tasks\": 1000001}", false, "tasks:");
    s_check_load_error("{\"retries\": 101}", false, "retries:");
    s_check_load_error("{\"retries\": -1}", false, "retries:");
    s_check_load_error("{\"batch\": 0}", false, "batch:");
    s_check_load_error("{\"batch\": 1025}", false, "batch:");
    s_check_load_error("{\"window\": 0}", false, "window:");
    s_check_load_error("{\"window\": 1000001}", false, "window:");
    s_check_load_error("{\"window\": \"8\"}", false, "window:");
    //  quorum: count >= 1 or a fraction in (0, 1].
    s_check_load_error("{\"quorum\": 1.5}", false, "quorum:");
    s_check_load_error("{\"quorum\": \"x\"}", false, "quorum:");
    s_check_load_error("{\"quorum\": 0}", false, "quorum:");
    s_check_load_error("{\"quorum\": 0.0}", false, "quorum:");
    s_check_load_error("{\"quorum\": -0.5}", false, "quorum:");
    s_check_load_error("{\"quorum\": -2}", false, "quorum:");
    s_check_load_error("{\"quorum\": 1000001}", false, "quorum:");
    //  Times in seconds.
    s_check_load_error("{\"round_timeout\": 0}", false, "round_timeout:");
    s_check_load_error("{\"round_timeout\": -1}", false, "round_timeout:");
    s_check_load_error("{\"round_timeout\": 86400.5}", false, "round_timeout:");
    s_check_load_error("{\"round_timeout\": \"30\"}", false, "round_timeout:");
    s_check_load_error("{\"grace\": -0.1}", false, "grace:");
    s_check_load_error("{\"task_timeout\": 90000}", false, "task_timeout:");
    s_check_load_error("{\"task_timeout\": null}", false, "task_timeout:");
    //  Names.
    s_check_load_error("{\"aggregate\": \"avg\"}", false, "aggregate:");
    s_check_load_error("{\"aggregate\": 1}", false, "aggregate:");
    s_check_load_error("{\"aggregate\": \"FEDAVG\"}", false, "aggregate:");
    s_check_load_error("{\"trim\": 0.5}", false, "trim:");
    s_check_load_error("{\"trim\": -0.1}", false, "trim:");
    s_check_load_error("{\"trim\": \"0.1\"}", false, "trim:");
    s_check_load_error("{\"select\": \"foo:max\"}", false, "select: unknown metric 'foo'");
    s_check_load_error("{\"select\": \"aggregate:up\"}", false,
                       "select: direction must be max or min, got 'up'");
    s_check_load_error("{\"select\": \"aggregate:\"}", false, "select:");
    s_check_load_error("{\"select\": \":max\"}", false, "select:");
    s_check_load_error("{\"select\": \"\"}", false, "select:");
    s_check_load_error("{\"select\": \"aggregate:max:min\"}", false, "select:");
    s_check_load_error("{\"select\": \"a-very-long-metric-name-over-32-characters:max\"}", false,
                       "select:");
    s_check_load_error("{\"select\": 3}", false, "select:");
    //  Strings.
    s_check_load_error("{\"service\": \"\"}", false, "service:");
    s_check_load_error("{\"service\": 7}", false, "service:");
    s_check_load_error("{\"service\": \"0123456789012345678901234567890123456789012345678901234567"
                       "890123\"}",
                       false, "service:"); //  64 characters
    s_check_load_error("{\"connect\": null}", false, "connect:");
    s_check_load_error("{\"workdir\": \"\"}", false, "workdir:");
    s_check_load_error("{\"curve_cert\": \"\"}", false, "curve_cert:");
    s_check_load_error("{\"server_key\": false}", false, "server_key:");
    s_check_load_error("{\"service\": \"nosuch\"}", true, "service:");
    //  job_id: a safe name.
    s_check_load_error("{\"job_id\": \"a/b\"}", false, "job_id:");
    s_check_load_error("{\"job_id\": \"\"}", false, "job_id:");
    s_check_load_error("{\"job_id\": \".hidden\"}", false, "job_id:");
    s_check_load_error("{\"job_id\": \"a b\"}", false, "job_id:");
    s_check_load_error("{\"job_id\": 5}", false, "job_id:");
    s_check_load_error("{\"job_id\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                       "aaaaa\"}",
                       false, "job_id:"); //  65 characters
    //  Parameter levels: shapes at load, lengths at finish.
    s_check_load_error("{\"params\": [1]}", false, "params:");
    s_check_load_error("{\"params\": null}", false, "params:");
    s_check_load_error("{\"task_params\": {}}", false, "task_params:");
    s_check_load_error("{\"task_params\": [{}, 5]}", false,
                       "task_params: entry 1 is not an object");
    s_check_load_error("{\"task_params\": [[{}]]}", false, "task_params: entry 0 is not an object");
    s_check_load_error("{\"round_params\": [5]}", false,
                       "round_params: entry 0 is not an object nor an array of objects");
    s_check_load_error("{\"round_params\": [{}, \"x\"]}", false,
                       "round_params: entry 1 is not an object");
    s_check_load_error("{\"round_params\": [{}, [{}, 3]]}", false,
                       "round_params: entry 1, 1 is not an object");
    s_check_load_error("{\"round_params\": {\"0\": {}}}", false, "round_params:");
    s_check_finish_error("{\"tasks\": 3, \"task_params\": [{}, {}]}",
                         "task_params: has 2 entries for 3 tasks");
    s_check_finish_error("{\"task_params\": [{}, {}, {}, {}, {}, {}]}",
                         "task_params: has 6 entries for 5 tasks");
    s_check_finish_error("{\"rounds\": 2, \"round_params\": [{}]}",
                         "round_params: has 1 entries for 2 rounds");
    s_check_finish_error("{\"rounds\": 2, \"tasks\": 2, \"round_params\": [{}, [{}]]}",
                         "round_params: entry 1 has 1 entries for 2 tasks");
    //  Lengths are judged against the final tasks, wherever it was set.
    s_check_finish_error("{\"task_params\": [{}, {}], \"tasks\": 3}", "task_params:");

    //  fibonacci_level, judged by the service at finish.
    s_check_finish_error("{\"params\": {\"fibonacci_level\": 0}}",
                         "fibonacci_level (round 0, task 0): must be at least 1");
    s_check_finish_error("{\"params\": {\"fibonacci_level\": 100001}}",
                         "fibonacci_level (round 0, task 0): must be at most 100000");
    s_check_finish_error("{\"params\": {\"fibonacci_level\": \"10\"}}",
                         "fibonacci_level (round 0, task 0): must be an integer");
    s_check_finish_error("{\"params\": {\"fibonacci_level\": 10.5}}", "fibonacci_level");
    s_check_finish_error("{\"params\": {\"fibonacci_level\": 10.0}}", "fibonacci_level");
    s_check_finish_error("{\"params\": {\"fibonacci_level\": -3}}", "fibonacci_level");
    s_check_finish_error("{\"params\": {\"fibonacci_level\": null}}", "fibonacci_level");
    //  A service without defaults: nothing given is something missing.
    s_check_finish_error("{\"service\": \"vecavg\", \"params\": {}}",
                         "vector (round 0, task 0): missing");
    s_check_finish_error("{\"service\": \"vecavg\", \"params\": {\"vector\": [1, 2]}}",
                         "samples (round 0, task 0): missing");
    s_check_finish_error("{\"params\": {\"fibonacci_level\": 10, \"levle\": 3}}",
                         "levle (round 0, task 0): unknown parameter 'levle'");
    s_check_finish_error("{\"task_params\": [{}, {}, {}, {}, {\"extra\": true}]}",
                         "extra (round 0, task 4): unknown parameter");
    //  The edges themselves are fine, and fib's documented default fills
    //  in what nobody set.
    char error[256];
    CHECK_INT(s_load_and_finish("{\"params\": {}}", true, error, sizeof error), 0);
    CHECK_INT(
        s_load_and_finish("{\"params\": {\"fibonacci_level\": 1}}", true, error, sizeof error), 0);
    CHECK_INT(
        s_load_and_finish("{\"params\": {\"fibonacci_level\": 100000}}", true, error, sizeof error),
        0);

    //  Not JSON, not an object, duplicate keys, no such file.
    char *invalid = "{\n  \"rounds\": 3,\n  \"tasks\": ,\n}\n";
    CHECK_INT(s_load_and_finish(invalid, false, error, sizeof error), -1);
    CHECK_PREFIX(error, "line 3, column 12:");
    CHECK_INT(s_load_and_finish("{\"rounds\": 3", false, error, sizeof error), -1);
    CHECK_PREFIX(error, "line 1, column ");
    CHECK_INT(s_load_and_finish("", false, error, sizeof error), -1);
    CHECK_PREFIX(error, "line ");
    CHECK_INT(s_load_and_finish("{\"rounds\": 3} {\"rounds\": 4}", false, error, sizeof error), -1);
    CHECK_PREFIX(error, "line 1, column ");
    CHECK_INT(s_load_and_finish("{\"rounds\": 3, \"rounds\": 4}", false, error, sizeof error), -1);
    CHECK_CONTAINS(error, "duplicate");
    CHECK_CONTAINS(error, "rounds");
    CHECK_INT(s_load_and_finish("[{\"rounds\": 3}]", false, error, sizeof error), -1);
    CHECK_STR(error, "the job file must hold one JSON object");
    //  (jansson refuses a bare scalar itself, as a parse error.)
    CHECK_INT(s_load_and_finish("42", false, error, sizeof error), -1);
    CHECK_PREFIX(error, "line 1, column ");
    zfed_job_t job;
    zfed_job_init(&job);
    char path[128];
    snprintf(path, sizeof path, "%s/no-such-job.json", s_dir);
    CHECK_INT(s_job_load(&job, path, error, sizeof error), -1);
    CHECK_STR(error, "cannot read: No such file or directory");
    CHECK_INT(s_job_load(&job, s_dir, error, sizeof error), -1); //  a directory
    CHECK_PREFIX(error, "cannot read:");
    zfed_job_clear(&job);

    //  The first mistake is reported (keys in file order), and a short
    //  error buffer is cut, not overrun.
    CHECK_INT(s_load_and_finish("{\"rounds\": 0, \"tasks\": 0}", false, error, sizeof error), -1);
    CHECK_PREFIX(error, "rounds:");
    char tiny[8];
    memset(tiny, 'Z', sizeof tiny);
    CHECK_INT(s_load_and_finish("{\"rounds\": 0}", false, tiny, 5), -1);
    CHECK_STR(tiny, "roun");
    CHECK(tiny[5] == 'Z');
}

//  zfed_job_set directly, with values made here rather than parsed.
static void s_test_set(void)
{
    zfed_job_t job;
    zfed_job_init(&job);
    char error[256];
    json_t *value = json_integer(7);
    CHECK_INT(s_job_set(&job, "rounds", value, error, sizeof error), 0);
    CHECK_INT(job.rounds, 7);
    CHECK_INT(s_job_set(&job, "nope", value, error, sizeof error), -1);
    CHECK_STR(error, "nope: unknown setting");
    json_decref(value);
    //  params keeps a reference: the caller may drop its own.
    value = json_pack("{s:i}", "fibonacci_level", 3);
    CHECK_INT(s_job_set(&job, "params", value, error, sizeof error), 0);
    json_decref(value);
    CHECK_INT(json_integer_value(json_object_get(job.params, "fibonacci_level")), 3);
    //  Replacing task_params twice does not leak the first (valgrind).
    value = json_pack("[{}]");
    CHECK_INT(s_job_set(&job, "task_params", value, error, sizeof error), 0);
    json_decref(value);
    value = json_pack("[{}, {}]");
    CHECK_INT(s_job_set(&job, "task_params", value, error, sizeof error), 0);
    json_decref(value);
    CHECK_INT(json_array_size(job.task_params), 2);
    value = json_pack("[{}]");
    CHECK_INT(s_job_set(&job, "round_params", value, error, sizeof error), 0);
    CHECK_INT(s_job_set(&job, "round_params", value, error, sizeof error), 0);
    json_decref(value);
    //  A refused value leaves the setting as it was.
    value = json_string("x");
    CHECK_INT(s_job_set(&job, "task_params", value, error, sizeof error), -1);
    CHECK_INT(s_job_set(&job, "params", value, error, sizeof error), -1);
    CHECK_INT(s_job_set(&job, "rounds", value, error, sizeof error), -1);
    json_decref(value);
    CHECK_INT(json_array_size(job.task_params), 2);
    CHECK_INT(json_integer_value(json_object_get(job.params, "fibonacci_level")), 3);
    CHECK_INT(job.rounds, 7);
    zfed_job_clear(&job);
}

//  ---------------------------------------------------------------------
//  Round trip through zfed_job_to_json

static void s_check_same_job(const zfed_job_t *a, const zfed_job_t *b)
{
    CHECK_STR(a->job_id, b->job_id);
    CHECK_STR(a->service, b->service);
    CHECK_STR(a->endpoint, b->endpoint);
    CHECK_STR(a->workdir, b->workdir);
    CHECK_INT(a->rounds, b->rounds);
    CHECK_INT(a->tasks, b->tasks);
    CHECK(json_equal(a->params, b->params));
    CHECK((a->task_params == NULL) == (b->task_params == NULL));
    if (a->task_params && b->task_params)
        CHECK(json_equal(a->task_params, b->task_params));
    CHECK((a->round_params == NULL) == (b->round_params == NULL));
    if (a->round_params && b->round_params)
        CHECK(json_equal(a->round_params, b->round_params));
    CHECK(a->quorum_fraction == b->quorum_fraction);
    CHECK_INT(a->quorum_count, b->quorum_count);
    CHECK_INT(a->round_timeout_ms, b->round_timeout_ms);
    CHECK_INT(a->grace_ms, b->grace_ms);
    CHECK_INT(a->task_timeout_ms, b->task_timeout_ms);
    CHECK_INT(a->retries, b->retries);
    CHECK_INT(a->batch, b->batch);
    CHECK_INT(a->window, b->window);
    CHECK_INT(a->strategy, b->strategy);
    CHECK(a->trim == b->trim);
    CHECK_INT(a->metric, b->metric);
    CHECK(a->maximize == b->maximize);
    CHECK_STR(a->curve_cert, b->curve_cert);
    CHECK_STR(a->server_key, b->server_key);
}

//  Writes job's JSON to a file, loads it into a fresh job, finishes both
//  and compares every setting.
static void s_check_round_trip(zfed_job_t *job, const char *label)
{
    char error[256] = "";
    json_t *root = zfed_job_to_json(job);
    CHECK(root != NULL);
    if (!root)
        return;
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    REQUIRE(text != NULL);
    zfed_job_t back;
    zfed_job_init(&back);
    int rc = text ? s_load_text(&back, text, error, sizeof error) : -1;
    CHECK_INT(rc, 0);
    if (rc != 0)
        fprintf(stderr, "  round trip '%s': %s\n  %s\n", label, error, text ? text : "");
    free(text);
    if (rc == 0) {
        CHECK_INT(s_job_finish(&back, error, sizeof error), 0);
        int failures = zfed_test_failures;
        s_check_same_job(job, &back);
        CHECK_INT(back.quorum, job->quorum);
        if (zfed_test_failures != failures)
            fprintf(stderr, "  round trip '%s' changed settings\n", label);
    }
    zfed_job_clear(&back);
}

static void s_test_round_trip(void)
{
    char error[256];
    //  Defaults (finished, so the job id is set).
    zfed_job_t job;
    zfed_job_init(&job);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    s_check_round_trip(&job, "defaults");
    zfed_job_clear(&job);

    //  Every setting away from its default.
    zfed_job_init(&job);
    CHECK_INT(s_load_text(&job,
                          "{\"job_id\": \"rt-2\", \"connect\": \"ipc:///tmp/zfed.sock\","
                          " \"workdir\": \"/srv/jobs\", \"rounds\": 2, \"tasks\": 3,"
                          " \"params\": {\"fibonacci_level\": 30},"
                          " \"task_params\": [{\"fibonacci_level\": 1}, {}, {}],"
                          " \"round_params\": [[{}, {\"fibonacci_level\": 2}, {}], {}],"
                          " \"quorum\": 2, \"round_timeout\": 12.345, \"grace\": 0.001,"
                          " \"task_timeout\": 4, \"retries\": 7, \"batch\": 3,"
                          " \"window\": 9, \"aggregate\": \"median\","
                          " \"trim\": 0.3, \"select\": \"results:min\","
                          " \"curve_cert\": \"c.cert\", \"server_key\": \"s.key\"}",
                          error, sizeof error),
              0);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    s_check_round_trip(&job, "everything");
    zfed_job_clear(&job);

    //  A fraction that is not exact in binary, and a computed task timeout.
    zfed_job_init(&job);
    CHECK_INT(s_load_text(&job, "{\"job_id\": \"rt-3\", \"quorum\": 0.1, \"trim\": 0.1}", error,
                          sizeof error),
              0);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    s_check_round_trip(&job, "fractions");
    zfed_job_clear(&job);

    //  The JSON itself: every key, with the values as a user would write.
    zfed_job_init(&job);
    snprintf(job.job_id, sizeof job.job_id, "shape");
    job.quorum_count = 4;
    job.quorum_fraction = 0;
    json_t *root = zfed_job_to_json(&job);
    REQUIRE(root != NULL);
    if (root) {
        CHECK_STR(json_string_value(json_object_get(root, "job_id")), "shape");
        CHECK_STR(json_string_value(json_object_get(root, "service")), "fib");
        CHECK_STR(json_string_value(json_object_get(root, "connect")), "tcp://127.0.0.1:5555");
        CHECK_STR(json_string_value(json_object_get(root, "workdir")), "/tmp/zfed/jobs");
        CHECK_INT(json_integer_value(json_object_get(root, "rounds")), 5);
        CHECK_INT(json_integer_value(json_object_get(root, "tasks")), 5);
        CHECK(json_is_integer(json_object_get(root, "quorum")));
        CHECK_INT(json_integer_value(json_object_get(root, "quorum")), 4);
        CHECK(json_real_value(json_object_get(root, "round_timeout")) == 30.0);
        CHECK(json_real_value(json_object_get(root, "grace")) == 1.0);
        CHECK(json_is_real(json_object_get(root, "task_timeout")));
        CHECK_INT(json_integer_value(json_object_get(root, "retries")), 1);
        CHECK_STR(json_string_value(json_object_get(root, "aggregate")), "fedavg");
        CHECK(json_real_value(json_object_get(root, "trim")) == 0.1);
        CHECK_STR(json_string_value(json_object_get(root, "select")), "aggregate:max");
        CHECK(json_object_get(root, "task_params") == NULL);
        CHECK(json_object_get(root, "round_params") == NULL);
        CHECK(json_object_get(root, "curve_cert") == NULL);
        CHECK(json_object_get(root, "server_key") == NULL);
        CHECK(json_equal(json_object_get(root, "params"), job.params));
        //  Every key it writes is one zfed_job_set knows.
        const char *key;
        json_t *value;
        zfed_job_t other;
        zfed_job_init(&other);
        json_object_foreach(root, key, value)
        {
            int rc = s_job_set(&other, key, value, error, sizeof error);
            CHECK_INT(rc, 0);
            if (rc != 0)
                fprintf(stderr, "  key %s: %s\n", key, error);
        }
        zfed_job_clear(&other);
        json_decref(root);
    }
    //  A fraction is written as a real even when whole: 1.0 stays "all".
    job.quorum_count = 0;
    job.quorum_fraction = 1.0;
    root = zfed_job_to_json(&job);
    CHECK(root && json_is_real(json_object_get(root, "quorum")));
    json_decref(root);
    zfed_job_clear(&job);
}

//  ---------------------------------------------------------------------
//  Metric names

static void s_test_metrics(void)
{
    CHECK_STR(zfed_metric_name(ZFED_METRIC_AGGREGATE), "aggregate");
    CHECK_STR(zfed_metric_name(ZFED_METRIC_RESULTS), "results");
    CHECK_STR(zfed_metric_name(ZFED_METRIC_DURATION), "duration_ms");
    CHECK_STR(zfed_metric_name(ZFED_METRIC_TEST_ACCURACY), "test_accuracy");
    CHECK_STR(zfed_metric_name(ZFED_METRIC_TEST_LOSS), "test_loss");
    CHECK_STR(zfed_metric_name((zfed_metric_t)5), "unknown");
    CHECK_STR(zfed_metric_name((zfed_metric_t)1000), "unknown");

    zfed_metric_t metric = ZFED_METRIC_DURATION;
    CHECK_INT(zfed_metric_parse("aggregate", &metric), 0);
    CHECK_INT(metric, ZFED_METRIC_AGGREGATE);
    CHECK_INT(zfed_metric_parse("results", &metric), 0);
    CHECK_INT(metric, ZFED_METRIC_RESULTS);
    CHECK_INT(zfed_metric_parse("duration_ms", &metric), 0);
    CHECK_INT(metric, ZFED_METRIC_DURATION);
    //  Refused names leave metric alone.
    const char *bad[] = {"duration", "Aggregate", "aggregate ", "", "result", "unknown"};
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        metric = ZFED_METRIC_RESULTS;
        CHECK_INT(zfed_metric_parse(bad[index], &metric), -1);
        CHECK_INT(metric, ZFED_METRIC_RESULTS);
    }
    CHECK_INT(zfed_metric_parse(NULL, &metric), -1);
    CHECK_INT(metric, ZFED_METRIC_RESULTS);
    //  Names and parsing agree.
    for (int index = 0; index <= ZFED_METRIC_DURATION; index++) {
        CHECK_INT(zfed_metric_parse(zfed_metric_name((zfed_metric_t)index), &metric), 0);
        CHECK_INT(metric, index);
    }
}

//  Errors carry a code and the setting at fault, so callers (the
//  controller's flags and exit statuses) never read the words.
static void s_check_error_codes(void)
{
    zfed_error_t error;
    zfed_job_t *job = zfed_job_new();
    CHECK(job != NULL);
    CHECK_INT(zfed_job_load(job, "/nonexistent/job.json", &error), -1);
    CHECK_INT(error.code, ZFED_E_IO);
    CHECK_STR(error.field, "");

    json_t *value = json_real(1.5);
    CHECK_INT(zfed_job_set(job, "quorum", value, &error), -1);
    json_decref(value);
    CHECK_INT(error.code, ZFED_E_INVALID);
    CHECK_STR(error.field, "quorum");
    CHECK_INT(error.round, -1);
    CHECK_PREFIX(error.message, "quorum: expected a count");

    value = json_string("127.0.0.1:5555");
    CHECK_INT(zfed_job_set(job, "connect", value, &error), -1);
    json_decref(value);
    CHECK_STR(error.field, "connect");
    CHECK_CONTAINS(error.text, "is not an endpoint (no transport)");

    value = json_string("nope");
    CHECK_INT(zfed_job_set(job, "service", value, &error), -1);
    json_decref(value);
    CHECK_STR(error.field, "service");
    CHECK_STR(error.text, "unknown service 'nope'");

    //  One task's parameters: the parameter, and where.
    value = json_pack("[{s:i},{s:i}]", "fibonacci_level", 10, "fibonacci_level", 0);
    CHECK_INT(zfed_job_set(job, "round_params", value, &error), 0);
    json_decref(value);
    value = json_integer(2);
    CHECK_INT(zfed_job_set(job, "rounds", value, &error), 0);
    json_decref(value);
    CHECK_INT(zfed_job_finish(job, &error), -1);
    CHECK_INT(error.code, ZFED_E_INVALID);
    CHECK_STR(error.field, "fibonacci_level");
    CHECK_INT(error.round, 1);
    CHECK_INT(error.task, 0);
    CHECK_PREFIX(error.message, "fibonacci_level (round 1, task 0): ");
    zfed_job_destroy(&job);
    zfed_job_destroy(&job); //  twice is harmless
    CHECK(job == NULL);

    zfed_error_clear(&error);
    CHECK_INT(error.code, ZFED_OK);
    CHECK_STR(zfed_error_code_name(ZFED_E_NO_JOB), "no job");
    CHECK_INT(zfed_error_set(&error, ZFED_E_EXISTS, "job_id", "taken"), -1);
    CHECK_STR(error.message, "job_id: taken");
    CHECK_INT(zfed_error_set(NULL, ZFED_E_EXISTS, "job_id", "taken"), -1);
}

//  ---------------------------------------------------------------------
//  Model services' settings

static void s_test_models(void)
{
    //  A model to start from, beside the job files.
    char model[128];
    snprintf(model, sizeof model, "%s/start.safetensors", s_dir);
    {
        char reason[256];
        zfed_layout_t *layout = zfed_layout_new();
        const uint64_t shape[] = {3};
        zfed_layout_add(layout, "w", ZFED_DTYPE_F32, shape, 1, reason, sizeof reason);
        zfed_model_t *start = zfed_model_new(&layout);
        REQUIRE(start && zfed_safetensors_save(model, start, NULL, reason, sizeof reason) == 0);
        zfed_model_destroy(&start);
    }
    //  Resolved defaults, recorded; a relative initial_model is found
    //  beside the job file and recorded absolute.
    char text[1024], error[512], path[128];
    snprintf(text, sizeof text,
             "{\"service\": \"tensoravg\", \"initial_model\": \"start.safetensors\", "
             "\"tasks\": 5, \"params\": {\"add\": 1, \"samples\": 1}, "
             "\"aggregate\": \"fedadam\", \"beta1\": 0.5}");
    s_write(text, path, sizeof path);
    zfed_job_t job;
    zfed_job_init(&job);
    CHECK_INT(s_job_load(&job, path, error, sizeof error), 0);
    unlink(path);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK(job.initial_model[0] == '/' && strstr(job.initial_model, "/start.safetensors"));
    CHECK(job.server_lr == 0.01 && job.beta1 == 0.5 && job.beta2 == 0.99 && job.tau == 1e-3);
    json_t *saved = zfed_job_to_json(&job);
    CHECK_STR(json_string_value(json_object_get(saved, "keep_models")), "last:1");
    CHECK_INT(json_integer_value(json_object_get(saved, "chunk")), ZFED_JOB_DEFAULT_CHUNK);
    CHECK(json_real_value(json_object_get(saved, "beta1")) == 0.5);
    CHECK(json_real_value(json_object_get(saved, "tau")) == 1e-3);
    CHECK(json_object_get(saved, "krum_f") == NULL);
    json_decref(saved);
    zfed_job_clear(&job);
    //  keep_models forms.
    const char *keeps[] = {"none", "best", "all", "last:7"};
    for (size_t index = 0; index < 4; index++) {
        zfed_job_init(&job);
        json_t *value = json_string(keeps[index]);
        CHECK_INT(s_job_set(&job, "keep_models", value, error, sizeof error), 0);
        char back[32];
        CHECK_STR(zfed_job_keep_text(&job, back, sizeof back), keeps[index]);
        json_decref(value);
        zfed_job_clear(&job);
    }
    //  Mistakes, each named.
    char base[256];
    snprintf(base, sizeof base,
             "\"service\": \"tensoravg\", \"initial_model\": \"%s\", "
             "\"params\": {\"add\": 1, \"samples\": 1}",
             model);
    struct {
        const char *more;
        const char *prefix;
        bool at_finish;
    } cases[] = {
        {"\"keep_models\": \"last:0\"", "keep_models: expected none, best, last:N", false},
        {"\"chunk\": 65535", "chunk: expected an integer from 65536", false},
        {"\"server_lr\": 0", "server_lr: expected a number above 0", false},
        {"\"beta1\": 1", "beta1: expected a number from 0 and below 1", false},
        {"\"tau\": -1", "tau: expected a number above 0", false},
        {"\"krum_m\": 0", "krum_m: expected an integer from 1", false},
        {"\"server_lr\": 0.1", "server_lr: only fedavgm, fedadam and fedyogi take it", true},
        {"\"aggregate\": \"fedavgm\", \"beta2\": 0.5", "beta2: fedavgm keeps no second", true},
        {"\"krum_f\": 1", "krum_f: only krum takes it", true},
        {"\"aggregate\": \"krum\", \"krum_f\": 2",
         "krum_f: Krum with krum_f 2 needs more "
         "than 6 results",
         true},
        {"\"aggregate\": \"krum\", \"krum_m\": 5", "krum_m: 5 is more than the quorum", true},
        {"\"batch\": 2", "batch: model tasks travel one per request", true},
        {"\"tasks\": 4097", "tasks: a round of a model service has at most 4096", true},
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        snprintf(text, sizeof text, "{%s, %s}", base, cases[index].more);
        if (cases[index].at_finish)
            s_check_finish_error(text, cases[index].prefix);
        else
            s_check_load_error(text, false, cases[index].prefix);
    }
    s_check_finish_error("{\"service\": \"tensoravg\", \"params\": {\"add\": 1, \"samples\": 1}}",
                         "initial_model: tensoravg needs a model to start from");
    //  A value service refuses every model setting, and the model strategies.
    s_check_finish_error("{\"service\": \"vecavg\", \"seed\": 3}",
                         "seed: a setting of model services; vecavg is a value service");
    s_check_finish_error("{\"aggregate\": \"fedyogi\"}",
                         "aggregate: fedyogi aggregates models; fib is a value service");
    //  And writes none of them in job.json.
    zfed_job_init(&job);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    saved = zfed_job_to_json(&job);
    CHECK(json_object_get(saved, "keep_models") == NULL && json_object_get(saved, "seed") == NULL);
    json_decref(saved);
    zfed_job_clear(&job);
    unlink(model);
}

//  Sites: one task per site, addressed to SERVICE@SITE, its params
//  carrying the site last, which the service's view leaves out; the
//  service's seed from the job's.
static void s_test_sites(void)
{
    char text[512], error[512], path[128];
    snprintf(text, sizeof text,
             "{\"service\": \"mlp\", \"sites\": [\"north\", \"south\"], \"seed\": 9, "
             "\"params\": {\"hidden\": [8]}, \"quorum\": 0.5}");
    s_write(text, path, sizeof path);
    zfed_job_t job;
    zfed_job_init(&job);
    CHECK_INT(s_job_load(&job, path, error, sizeof error), 0);
    unlink(path);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_INT(zfed_job_tasks(&job), 2);
    CHECK_INT(zfed_job_quorum(&job), 1);
    CHECK_STR(zfed_job_task_service(&job, 0), "mlp@north");
    CHECK_STR(zfed_job_task_service(&job, 1), "mlp@south");
    CHECK_STR(zfed_job_site(&job, 1), "south");
    CHECK_INT(json_integer_value(json_object_get(job.params, "seed")), 9);
    uint8_t *packed = NULL;
    size_t size = 0;
    zfed_error_t failure;
    REQUIRE(zfed_job_pack_params(&job, 0, 1, &packed, &size, &failure) == 0);
    msgpack_unpacked unpacked;
    REQUIRE(zfed_unpack(&unpacked, packed, size) == 0);
    msgpack_object *params = &unpacked.data;
    REQUIRE(params->type == MSGPACK_OBJECT_MAP);
    uint32_t keys = params->via.map.size;
    const msgpack_object_kv *last = &params->via.map.ptr[keys - 1];
    CHECK(last->key.via.str.size == 4 && memcmp(last->key.via.str.ptr, "site", 4) == 0);
    CHECK(last->val.via.str.size == 5 && memcmp(last->val.via.str.ptr, "south", 5) == 0);
    zfed_job_service_params(&job, params);
    CHECK_INT(params->via.map.size, keys - 1);
    CHECK(zfed_map_get(params, "site") == NULL && zfed_map_get(params, "hidden") != NULL);
    msgpack_unpacked_destroy(&unpacked);
    free(packed);
    json_t *saved = zfed_job_to_json(&job);
    CHECK_INT(json_array_size(json_object_get(saved, "sites")), 2);
    json_decref(saved);
    zfed_job_clear(&job);

    //  Without sites the service is the job's, for every task.
    zfed_job_init(&job);
    CHECK_INT(s_job_finish(&job, error, sizeof error), 0);
    CHECK_STR(zfed_job_task_service(&job, 3), "fib");
    CHECK(zfed_job_site(&job, 0) == NULL);
    zfed_job_clear(&job);
}

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/zfed-test-job-XXXXXX");
    if (!mkdtemp(s_dir)) {
        perror("mkdtemp");
        return 1;
    }
    s_test_defaults();
    s_test_quorum();
    s_test_task_timeout();
    s_test_param_merging();
    s_test_load_everything();
    s_test_load_errors();
    s_test_set();
    s_test_round_trip();
    s_test_metrics();
    s_test_models();
    s_test_sites();
    s_check_error_codes();
    if (rmdir(s_dir) != 0) {
        perror(s_dir); //  a job file left behind
        CHECK(false);
    }
    ZFED_TEST_END();
}
