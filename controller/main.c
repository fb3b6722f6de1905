/*  zfed-controller - runs a federated job: rounds of tasks, quorum, aggregate,
    best round, everything saved to a work folder.
*/
#include "zfed/zfed_controller.h"
#include "zfed/zfed_fib.h"
#include "zfed/zfed_job.h"
#include "zfed/zfed_batch.h"
#include "zfed/zfed_client.h"
#include "zfed/zfed_json.h"
#include "zfed/zfed_mdp.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_signal.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_util.h"
#include "core/zfed_cli.h"

#include <czmq.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROGRAM   "zfed-controller"
#define ERROR_MAX 768

static void s_usage(void)
{
    printf("Usage: " PROGRAM " [OPTION]...\n"
           "Run a federated job through a zfed broker: each round sends its tasks, waits for a\n"
           "quorum of results, aggregates them, and the aggregate travels to the next round.\n"
           "\n"
           "Job:\n"
           "  --job FILE           read settings from a JSON job file (flags override it;\n"
           "                       see schemas/JOB.md and examples/jobs/)\n"
           "  --service NAME       service the tasks go to (default fib)\n"
           "  --rounds N           rounds (default %d)\n"
           "  --tasks N            tasks per round (default %d, or the number of --levels)\n"
           "  --level N            fibonacci_level of every task (default %d)\n"
           "  --levels A,B,...     one fibonacci_level per task\n"
           "  --schedule A,B,...   one fibonacci_level per round\n"
           "  --quorum N|F         results needed to close a round: a count (3) or a fraction\n"
           "                       of the tasks (0.6); default all tasks\n"
           "  --round-timeout S    seconds before a round without its quorum fails the job\n"
           "                       (default %d)\n"
           "  --grace S            seconds to wait for more results once the quorum is in\n"
           "                       (default %g)\n"
           "  --task-timeout S     seconds before an unanswered task is sent again\n"
           "                       (default: round timeout / (retries + 1))\n"
           "  --retries N          times a task may be sent again (default %d)\n"
           "  --batch N            tasks per request, up to %d (default 1): more tasks per\n"
           "                       message for throughput; the workers must understand\n"
           "                       zfed.batch (zfed's do; see schemas/PROTOCOL.md)\n"
           "  --window N           requests of a round in flight at once (default %d); the\n"
           "                       rest are sent as answers come, which bounds the broker's\n"
           "                       memory on very large rounds\n"
           "  --aggregate NAME     %s (default fedavg)\n"
           "  --trim F             fraction trimmed from each end by trimmed-mean (default %g)\n"
           "  --select M:DIR       best round by METRIC (aggregate, results, duration_ms),\n"
           "                       max or min (default aggregate:max)\n"
           "\n"
           "Where:\n"
           "  --connect EP         broker endpoint (default " ZFED_JOB_DEFAULT_ENDPOINT ")\n"
           "  --workdir DIR        work folder (default " ZFED_JOB_DEFAULT_WORKDIR ")\n"
           "  --job-id ID          job name, the folder under DIR (default job-DATE-TIME-XXXX)\n"
           "  --resume ID          continue job ID from its last completed round\n"
           "  --curve-cert FILE    our CURVE certificate (the _secret file)\n"
           "  --server-key KEY     the broker's public key: 40 Z85 characters or a certificate\n"
           "\n"
           "Broker status:\n"
           "  --status             print the broker's load and counters (8/MMI mmi.status)\n"
           "                       and exit: workers per service, queued, in flight, done,\n"
           "                       failed, dropped\n"
           "  --json               with --status: print the raw status as JSON\n"
           "\n"
           "Output:\n"
           "  --no-progress        no per-round lines or final table on stdout\n"
           "  --log-level LEVEL    error, warn, info or debug (default info); logs go to stderr\n"
           "  -v, --verbose        same as --log-level debug\n"
           "  -q, --quiet          same as --log-level warn\n"
           "  -h, --help           show this help and exit\n"
           "  -V, --version        show the version and exit\n"
           "\n"
           "fib levels run from 1 to %d.  Exit status: 0 job completed, 1 job failed (the\n"
           "summary says why), 2 bad usage, 130 interrupted (resume it with --resume).\n",
           ZFED_JOB_DEFAULT_ROUNDS, ZFED_JOB_DEFAULT_TASKS, ZFED_JOB_DEFAULT_LEVEL,
           ZFED_JOB_DEFAULT_ROUND_TIMEOUT / 1000, ZFED_JOB_DEFAULT_GRACE / 1000.0,
           ZFED_JOB_DEFAULT_RETRIES, ZFED_BATCH_MAX, ZFED_JOB_DEFAULT_WINDOW,
           zfed_agg_strategy_list(), ZFED_AGG_DEFAULT_TRIM, ZFED_FIB_MAX_LEVEL);
}

enum {
    OPT_JOB = 256,
    OPT_SERVICE,
    OPT_ROUNDS,
    OPT_TASKS,
    OPT_LEVEL,
    OPT_LEVELS,
    OPT_SCHEDULE,
    OPT_QUORUM,
    OPT_ROUND_TIMEOUT,
    OPT_GRACE,
    OPT_TASK_TIMEOUT,
    OPT_RETRIES,
    OPT_BATCH,
    OPT_WINDOW,
    OPT_AGGREGATE,
    OPT_TRIM,
    OPT_SELECT,
    OPT_CONNECT,
    OPT_WORKDIR,
    OPT_JOB_ID,
    OPT_RESUME,
    OPT_CURVE_CERT,
    OPT_SERVER_KEY,
    OPT_NO_PROGRESS,
    OPT_STATUS,
    OPT_JSON,
};

static const struct option s_options[] = {
    {"job", required_argument, NULL, OPT_JOB},
    {"service", required_argument, NULL, OPT_SERVICE},
    {"rounds", required_argument, NULL, OPT_ROUNDS},
    {"tasks", required_argument, NULL, OPT_TASKS},
    {"level", required_argument, NULL, OPT_LEVEL},
    {"levels", required_argument, NULL, OPT_LEVELS},
    {"schedule", required_argument, NULL, OPT_SCHEDULE},
    {"quorum", required_argument, NULL, OPT_QUORUM},
    {"round-timeout", required_argument, NULL, OPT_ROUND_TIMEOUT},
    {"grace", required_argument, NULL, OPT_GRACE},
    {"task-timeout", required_argument, NULL, OPT_TASK_TIMEOUT},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"aggregate", required_argument, NULL, OPT_AGGREGATE},
    {"trim", required_argument, NULL, OPT_TRIM},
    {"select", required_argument, NULL, OPT_SELECT},
    {"connect", required_argument, NULL, OPT_CONNECT},
    {"workdir", required_argument, NULL, OPT_WORKDIR},
    {"job-id", required_argument, NULL, OPT_JOB_ID},
    {"resume", required_argument, NULL, OPT_RESUME},
    {"curve-cert", required_argument, NULL, OPT_CURVE_CERT},
    {"server-key", required_argument, NULL, OPT_SERVER_KEY},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"status", no_argument, NULL, OPT_STATUS},
    {"json", no_argument, NULL, OPT_JSON},
    ZFED_CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0},
};

//  "10,20,30" -> a JSON array of {"fibonacci_level": n} objects.
static json_t *s_level_list(const char *flag, const char *text)
{
    json_t *list = json_array();
    char *copy = strdup(text);
    if (!list || !copy)
        zfed_cli_fail(PROGRAM, "out of memory");
    char *saveptr = NULL;
    for (char *item = strtok_r(copy, ",", &saveptr); item; item = strtok_r(NULL, ",", &saveptr)) {
        uint32_t level = zfed_cli_u32(PROGRAM, flag, item, 0, UINT32_MAX);
        json_array_append_new(list, json_pack("{s:I}", "fibonacci_level", (json_int_t)level));
    }
    free(copy);
    if (json_array_size(list) == 0)
        zfed_cli_fail(PROGRAM, "%s: expected a comma-separated list of levels", flag);
    return list;
}

static void s_copy(char *target, size_t size, const char *flag, const char *value)
{
    if (!value || !*value || strlen(value) >= size)
        zfed_cli_fail(PROGRAM, "%s: expected 1 to %zu characters", flag, size - 1);
    snprintf(target, size, "%s", value);
}

//  Status answers come quickly or not at all.
#define STATUS_TIMEOUT_MS 3000

static uint64_t s_counter(json_t *counters, const char *name)
{
    return (uint64_t)json_integer_value(json_object_get(counters, name));
}

//  --status: one mmi.status query, printed for people (or as JSON).
static int s_status(const zfed_job_t *job, bool as_json)
{
    zfed_client_t *client =
        zfed_client_new(job->endpoint, job->curve_cert[0] ? job->curve_cert : NULL,
                        job->server_key[0] ? job->server_key : NULL);
    if (!client)
        return ZFED_EXIT_FAILED;
    const char *service;
    const uint8_t *body = NULL;
    size_t size = 0;
    int got = zfed_client_send(client, ZFED_MMI_STATUS, "", 0) == 0
                  ? zfed_client_recv(client, STATUS_TIMEOUT_MS, &service, &body, &size)
                  : -1;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    json_t *status = NULL;
    if (got == 1 && zfed_msgpack_check(body, size, NULL, 0) == 0) {
        msgpack_unpacked_destroy(&unpacked);
        if (zfed_unpack(&unpacked, body, size) == 0)
            status = zfed_json_from_msgpack(&unpacked.data);
    }
    msgpack_unpacked_destroy(&unpacked);
    zfed_client_destroy(&client);
    if (!json_is_object(status)) {
        fprintf(stderr, "%s: no status from %s within %d ms%s\n", PROGRAM, job->endpoint,
                STATUS_TIMEOUT_MS, got == 1 ? " (the answer was not a zfed status)" : "");
        json_decref(status);
        return ZFED_EXIT_FAILED;
    }
    if (as_json) {
        char *text = json_dumps(status, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(status);
        return ZFED_EXIT_OK;
    }
    json_t *counters = json_object_get(status, "counters");
    printf("broker %s (zfed %s), up %.1f s, %lld workers\n\n", job->endpoint,
           json_string_value(json_object_get(status, "version")),
           json_integer_value(json_object_get(status, "uptime_ms")) / 1000.0,
           json_integer_value(json_object_get(status, "workers")));
    printf("%-24s %8s %6s %8s %10s\n", "service", "workers", "idle", "queued", "in flight");
    const char *name;
    json_t *entry;
    json_object_foreach(json_object_get(status, "services"), name, entry)
    {
        printf("%-24s %8lld %6lld %8lld %10lld\n", name,
               json_integer_value(json_object_get(entry, "workers")),
               json_integer_value(json_object_get(entry, "idle")),
               json_integer_value(json_object_get(entry, "queued")),
               json_integer_value(json_object_get(entry, "in_flight")));
    }
    uint64_t dropped = s_counter(counters, "malformed") + s_counter(counters, "unexpected") +
                       s_counter(counters, "stale_replies") + s_counter(counters, "unroutable") +
                       s_counter(counters, "forbidden");
    printf("\nrequests %llu, done %llu, failed %llu (expired %llu, refused at a limit %llu), "
           "re-dispatched %llu\n"
           "dropped %llu (malformed %llu, unexpected %llu, stale replies %llu, undeliverable %llu, "
           "forbidden %llu)\n"
           "workers: %llu registered, %llu expired, %llu left; connections: %llu accepted, %llu "
           "closed, %llu refused at the handshake\n",
           (unsigned long long)s_counter(counters, "requests"),
           (unsigned long long)s_counter(counters, "replies"),
           (unsigned long long)s_counter(counters, "failed"),
           (unsigned long long)s_counter(counters, "expired"),
           (unsigned long long)s_counter(counters, "rejected"),
           (unsigned long long)s_counter(counters, "redispatched"), (unsigned long long)dropped,
           (unsigned long long)s_counter(counters, "malformed"),
           (unsigned long long)s_counter(counters, "unexpected"),
           (unsigned long long)s_counter(counters, "stale_replies"),
           (unsigned long long)s_counter(counters, "unroutable"),
           (unsigned long long)s_counter(counters, "forbidden"),
           (unsigned long long)s_counter(counters, "workers_ready"),
           (unsigned long long)s_counter(counters, "workers_expired"),
           (unsigned long long)s_counter(counters, "workers_left"),
           (unsigned long long)s_counter(counters, "connections_accepted"),
           (unsigned long long)s_counter(counters, "connections_closed"),
           (unsigned long long)(s_counter(counters, "handshakes_failed") +
                                s_counter(counters, "auth_refused")));
    json_decref(status);
    return ZFED_EXIT_OK;
}

typedef struct {
    bool rounds, tasks, levels, schedule;
    const char *params_flag; //  the flag that set the levels, for error messages
    char flags[512];         //  " name name " of the job settings flags set
} s_given_t;

//  Remembers that the flag for job setting KEY was given (its name is the
//  key with '-' for '_'), so an error about KEY can name the flag.
static void s_note_flag(s_given_t *given, const char *flag)
{
    size_t used = strlen(given->flags);
    snprintf(given->flags + used, sizeof given->flags - used, " %s ", flag);
}

//  An error from zfed_job_finish starts with the setting at fault ("quorum:
//  ..." or "fibonacci_level (round 0, task 0): ...").  Say where its value
//  came from: the flag that set it, else the job file, else the flag.
static void s_fail_finish(const char *error, const char *job_file, const s_given_t *given)
{
    char flag[64] = "--";
    size_t length = strcspn(error, ": (");
    if (length > sizeof flag - 3)
        length = sizeof flag - 3;
    for (size_t index = 0; index < length; index++)
        flag[2 + index] = error[index] == '_' ? '-' : error[index];
    flag[2 + length] = '\0';
    bool is_param = strstr(error, "(round ") != NULL || strncmp(error, "params", 6) == 0;
    char spaced[80];
    snprintf(spaced, sizeof spaced, " %s ", flag);
    if (is_param && given->params_flag)
        zfed_cli_fail(PROGRAM, "%s: %s", given->params_flag, error);
    if (!is_param && strstr(given->flags, spaced))
        zfed_cli_fail(PROGRAM, "%s: %s", flag, error + length + (error[length] == ':' ? 2 : 0));
    if (job_file)
        zfed_cli_fail(PROGRAM, "--job %s: %s", job_file, error);
    zfed_cli_fail(PROGRAM, "%s", error);
}

//  Applies one option to the job (second pass).
static void s_apply(zfed_job_t *job, int option, const char *value, s_given_t *given)
{
    char error[ERROR_MAX];
    switch (option) {
    case OPT_SERVICE:
        if (!zfed_service_find(value))
            zfed_cli_fail(PROGRAM, "--service: unknown service '%s'", value);
        s_copy(job->service, sizeof job->service, "--service", value);
        break;
    case OPT_ROUNDS:
        job->rounds = zfed_cli_u32(PROGRAM, "--rounds", value, 1, ZFED_JOB_ROUNDS_MAX);
        given->rounds = true;
        break;
    case OPT_TASKS:
        job->tasks = zfed_cli_u32(PROGRAM, "--tasks", value, 1, ZFED_JOB_TASKS_MAX);
        given->tasks = true;
        break;
    case OPT_LEVEL: {
        uint32_t level = zfed_cli_u32(PROGRAM, "--level", value, 0, UINT32_MAX);
        json_decref(job->params);
        job->params = json_pack("{s:I}", "fibonacci_level", (json_int_t)level);
        given->params_flag = "--level";
        break;
    }
    case OPT_LEVELS:
        json_decref(job->task_params);
        job->task_params = s_level_list("--levels", value);
        given->levels = true;
        given->params_flag = "--levels";
        break;
    case OPT_SCHEDULE:
        json_decref(job->round_params);
        job->round_params = s_level_list("--schedule", value);
        given->schedule = true;
        given->params_flag = "--schedule";
        break;
    case OPT_QUORUM: {
        double fraction;
        if (strchr(value, '.')) {
            if (zfed_parse_double(value, 1e-9, 1.0, &fraction) != 0)
                zfed_cli_fail(PROGRAM, "--quorum: a fraction must be in (0, 1], got '%s'", value);
            job->quorum_fraction = fraction;
            job->quorum_count = 0;
        } else {
            job->quorum_count = zfed_cli_u32(PROGRAM, "--quorum", value, 1, ZFED_JOB_TASKS_MAX);
            job->quorum_fraction = 0;
        }
        break;
    }
    case OPT_ROUND_TIMEOUT:
        job->round_timeout_ms =
            zfed_cli_seconds_ms(PROGRAM, "--round-timeout", value, 0.001, ZFED_JOB_TIMEOUT_MAX_S);
        break;
    case OPT_GRACE:
        job->grace_ms = zfed_cli_seconds_ms(PROGRAM, "--grace", value, 0, ZFED_JOB_TIMEOUT_MAX_S);
        break;
    case OPT_TASK_TIMEOUT:
        job->task_timeout_ms =
            zfed_cli_seconds_ms(PROGRAM, "--task-timeout", value, 0.001, ZFED_JOB_TIMEOUT_MAX_S);
        break;
    case OPT_RETRIES:
        job->retries = zfed_cli_u32(PROGRAM, "--retries", value, 0, ZFED_JOB_RETRIES_MAX);
        break;
    case OPT_BATCH:
        job->batch = zfed_cli_u32(PROGRAM, "--batch", value, 1, ZFED_BATCH_MAX);
        break;
    case OPT_WINDOW:
        job->window = zfed_cli_u32(PROGRAM, "--window", value, 1, ZFED_JOB_WINDOW_MAX);
        break;
    case OPT_AGGREGATE:
        if (zfed_agg_strategy_parse(value, &job->strategy) != 0)
            zfed_cli_fail(PROGRAM, "--aggregate: expected one of %s, got '%s'",
                          zfed_agg_strategy_list(), value);
        break;
    case OPT_TRIM:
        if (zfed_parse_double(value, 0, 0.4999999, &job->trim) != 0)
            zfed_cli_fail(PROGRAM, "--trim: expected a fraction in [0, 0.5), got '%s'", value);
        break;
    case OPT_SELECT: {
        //  The job file's parser, so both spellings behave the same.
        json_t *text = json_string(value);
        int rc = text ? zfed_job_set(job, "select", text, error, sizeof error) : -1;
        json_decref(text);
        if (rc != 0)
            zfed_cli_fail(PROGRAM, "--%s", error);
        break;
    }
    case OPT_CONNECT:
        s_copy(job->endpoint, sizeof job->endpoint, "--connect", value);
        break;
    case OPT_WORKDIR:
        s_copy(job->workdir, sizeof job->workdir, "--workdir", value);
        break;
    case OPT_JOB_ID:
        if (!zfed_is_safe_name(value, ZFED_JOB_ID_MAX))
            zfed_cli_fail(PROGRAM,
                          "--job-id: 1 to %d characters of A-Z a-z 0-9 . _ - not starting with "
                          "'.', got '%s'",
                          ZFED_JOB_ID_MAX, value);
        s_copy(job->job_id, sizeof job->job_id, "--job-id", value);
        break;
    case OPT_CURVE_CERT:
        s_copy(job->curve_cert, sizeof job->curve_cert, "--curve-cert", value);
        break;
    case OPT_SERVER_KEY:
        s_copy(job->server_key, sizeof job->server_key, "--server-key", value);
        break;
    default:
        break;
    }
}

int main(int argc, char **argv)
{
    const char *job_file = NULL;
    const char *resume = NULL;
    bool progress = true;
    bool status = false, as_json = false;

    //  First pass: what decides the starting point (job file, resume),
    //  help, version and logging.
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ZFED_CLI_COMMON_SHORT, s_options, NULL)) != -1) {
        switch (option) {
        case OPT_JOB:
            job_file = optarg;
            break;
        case OPT_RESUME:
            if (!zfed_is_safe_name(optarg, ZFED_JOB_ID_MAX))
                zfed_cli_fail(PROGRAM, "--resume: '%s' is not a job id", optarg);
            resume = optarg;
            break;
        case OPT_NO_PROGRESS:
            progress = false;
            break;
        case OPT_STATUS:
            status = true;
            break;
        case OPT_JSON:
            as_json = true;
            break;
        case '?':
        case ':':
            zfed_cli_bad_option(PROGRAM, argc, argv, option);
        default:
            if (zfed_cli_common(PROGRAM, option, optarg, s_usage) == ZFED_CLI_EXIT)
                return ZFED_EXIT_OK;
            break;
        }
    }
    if (optind < argc)
        zfed_cli_fail(PROGRAM, "unexpected argument '%s'", argv[optind]);
    if (job_file && resume)
        zfed_cli_fail(PROGRAM, "--resume: a resumed job keeps its own settings; drop --job");

    if (as_json && !status)
        zfed_cli_fail(PROGRAM, "--json goes with --status");
    zfed_job_t job;
    if (zfed_job_init(&job) != 0)
        zfed_cli_fail(PROGRAM, "out of memory");
    char error[ERROR_MAX];
    if (job_file && zfed_job_load(&job, job_file, error, sizeof error) != 0)
        zfed_cli_fail(PROGRAM, "--job %s: %s", job_file, error);

    //  Second pass: flags override the file.
    s_given_t given = {0};
    optind = 0;
    while ((option = getopt_long(argc, argv, ZFED_CLI_COMMON_SHORT, s_options, NULL)) != -1) {
        if (resume && option != OPT_CONNECT && option != OPT_WORKDIR && option != OPT_CURVE_CERT &&
            option != OPT_SERVER_KEY && option != OPT_RESUME && option != OPT_NO_PROGRESS &&
            option != ZFED_CLI_OPT_LOG_LEVEL && option != 'v' && option != 'q')
            zfed_cli_fail(PROGRAM,
                          "--resume: a resumed job keeps its own settings; only --connect, "
                          "--workdir, --curve-cert and --server-key may change");
        s_apply(&job, option, optarg, &given);
        for (const struct option *known = s_options; known->name; known++)
            if (known->val == option) {
                char flag[64];
                snprintf(flag, sizeof flag, "--%s", known->name);
                s_note_flag(&given, flag);
            }
    }

    if (status) {
        //  Only where the broker is and how to reach it matter here.
        zfed_log_set_ident("controller");
        int rc = s_status(&job, as_json);
        zfed_job_clear(&job);
        return rc;
    }
    bool resuming = resume != NULL;
    if (resuming) {
        //  The job's own settings, from its folder; where it is and how to
        //  reach the broker may have changed.
        char endpoint[sizeof job.endpoint], workdir[sizeof job.workdir];
        char cert[sizeof job.curve_cert], key[sizeof job.server_key];
        memcpy(endpoint, job.endpoint, sizeof endpoint);
        memcpy(workdir, job.workdir, sizeof workdir);
        memcpy(cert, job.curve_cert, sizeof cert);
        memcpy(key, job.server_key, sizeof key);
        char path[ZFED_JOB_PATH_MAX + 128];
        snprintf(path, sizeof path, "%s/%s/job.json", workdir, resume);
        zfed_job_clear(&job);
        zfed_job_init(&job);
        if (zfed_job_load(&job, path, error, sizeof error) != 0) {
            fprintf(stderr, "%s: --resume %s: %s: %s\n", PROGRAM, resume, path, error);
            return ZFED_EXIT_FAILED;
        }
        memcpy(job.workdir, workdir, sizeof workdir);
        for (int index = 1; index < argc; index++) {
            if (strcmp(argv[index], "--connect") == 0)
                memcpy(job.endpoint, endpoint, sizeof endpoint);
            if (strcmp(argv[index], "--curve-cert") == 0)
                memcpy(job.curve_cert, cert, sizeof cert);
            if (strcmp(argv[index], "--server-key") == 0)
                memcpy(job.server_key, key, sizeof key);
        }
    } else {
        //  --levels and --schedule imply the task and round counts.
        if (given.levels && !given.tasks)
            job.tasks = (uint32_t)json_array_size(job.task_params);
        if (given.schedule && !given.rounds)
            job.rounds = (uint32_t)json_array_size(job.round_params);
        if (given.levels && json_array_size(job.task_params) != job.tasks)
            zfed_cli_fail(PROGRAM, "--levels: %zu levels for %u tasks",
                          json_array_size(job.task_params), job.tasks);
        if (given.schedule && json_array_size(job.round_params) != job.rounds)
            zfed_cli_fail(PROGRAM, "--schedule: %zu levels for %u rounds",
                          json_array_size(job.round_params), job.rounds);
    }
    if ((job.curve_cert[0] == '\0') != (job.server_key[0] == '\0'))
        zfed_cli_fail(PROGRAM, "%s: CURVE needs both --curve-cert and --server-key",
                      job.curve_cert[0] ? "--server-key" : "--curve-cert");
    if (zfed_job_finish(&job, error, sizeof error) != 0)
        s_fail_finish(error, job_file, &given);

    zfed_log_set_ident("controller");
    if (zfed_signal_install() != 0)
        zfed_warn("cannot install the signal handler; Ctrl-C may take a moment");
    zfed_controller_t *controller =
        zfed_controller_new(&job, resuming, progress ? stdout : NULL, error, sizeof error);
    if (!controller) {
        zfed_error("%s", error);
        zfed_job_clear(&job);
        return resuming || strstr(error, "already holds") == NULL ? ZFED_EXIT_FAILED
                                                                  : ZFED_EXIT_USAGE;
    }
    int outcome = zfed_controller_run(controller);
    zfed_controller_destroy(&controller);
    zfed_job_clear(&job);
    return outcome;
}
