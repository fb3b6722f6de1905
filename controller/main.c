/*  zfed-controller - runs a federated job: rounds of tasks, quorum, aggregate,
    best round, everything saved to a work folder.
*/
#include "zfed/zfed_controller.h"
#include "zfed/zfed_batch.h"
#include "zfed/zfed_fib.h"
#include "zfed/zfed_job.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_signal.h"
#include "zfed/zfed_util.h"
#include "zfed/zfed_version.h"
#include "controller/zfed_status.h"
#include "controller/zfed_watch.h"
#include "core/zfed_cli.h"
#include "transport/zfed_iosched.h"
#include "services/zfed_fib_levels.h"

#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRAM "zfed-controller"

//  --sync group's interval: records of the rounds closed within it share
//  one fsync (WORKDIR.md 1.1).  The help says both numbers.
#define SYNC_INTERVAL_MS_DEFAULT 20
#define SYNC_INTERVAL_MS_MAX     60000
//  Free heap kept for the next wave of replies (see main).
#define HEAP_KEPT_BYTES (32 * 1024 * 1024)

static void s_usage(void)
{
    printf("Usage: " PROGRAM " [OPTION]...\n"
           "Run a federated job through a zfed broker.  Each round sends its tasks, waits for\n"
           "a quorum of results and aggregates them; the aggregate travels to the next round.\n"
           "\n"
           "Job:\n"
           "  --job FILE           read settings from a JSON job file (flags override it;\n"
           "                       see JOB.md and examples/jobs/: in schemas/ of the source,\n"
           "                       in share/doc/zfed/ where zfed is installed)\n"
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
           "  --replicas K         send each task to K distinct workers (up to 15; default\n"
           "                       1) and accept a value only when a strict majority of\n"
           "                       them agree byte for byte; disagreements are recorded\n"
           "  --exclude-liars      with --replicas 3 or more: a worker caught in a minority\n"
           "                       gets no vote for the rest of the job\n"
           "  --aggregate NAME     %s\n"
           "                       (default fedavg); model services also krum, fedavgm,\n"
           "                       fedadam, fedyogi\n"
           "  --trim F             fraction trimmed from each end by trimmed-mean (default %g)\n"
           "  --params JSON        parameters of every task, a JSON object (replaces params)\n"
           "  --select M:DIR       best round by METRIC (aggregate, results, duration_ms,\n"
           "                       test_accuracy, test_loss), max or min (default\n"
           "                       aggregate:max)\n"
           "  --fail-fast          fail at once, instead of at the round's deadline, when a\n"
           "                       round hears nothing and the broker is not there, refuses\n"
           "                       our key, or has no worker for the service (said after %g s)\n"
           "\n"
           "Model services (tensoravg, mlp; see schemas/MODELS.md):\n"
           "  --initial-model FILE the model round 0 starts from (safetensors); needed\n"
           "                       unless the service builds its own\n"
           "  --seed N             seed of a model the service builds (default 0)\n"
           "  --keep-models K      round models kept in the work folder's models/: none,\n"
           "                       best, last:N or all (default " ZFED_JOB_DEFAULT_KEEP ")\n"
           "  --chunk BYTES        chunk size of the global model, %u to %u\n"
           "                       (default %u)\n"
           "  --inline-memory BYTES  a round's inline results kept in memory; more go to\n"
           "                       the work folder (default %llu)\n"
           "  --server-lr F        fedavgm, fedadam, fedyogi: server learning rate\n"
           "                       (default 1.0 for fedavgm, 0.01 for the others)\n"
           "  --beta1 F, --beta2 F momentum decays (defaults 0.9 and 0.99)\n"
           "  --tau F              fedadam, fedyogi: adaptivity (default 0.001)\n"
           "  --krum-f N           krum: results assumed Byzantine (default %d)\n"
           "  --krum-m N           krum: results averaged, 1 for Krum (default %d)\n"
           "\n"
           "Sites (mlp; see schemas/JOB.md):\n"
           "  --sites A,B,...      one task per site, sent to SERVICE@SITE only (the workers\n"
           "                       of zfed-worker --site SITE); sets the task count\n"
           "  --split FILE         a zfed-split split.json: its sites (unless --sites), and\n"
           "                       a copy in the job folder\n"
           "  --eval-data DIR      the folder of the set each round's model is evaluated on\n"
           "                       by the controller (mlp: t10k-*-ubyte.gz): test_accuracy\n"
           "                       and test_loss per round, while the next round trains\n"
           "  --eval-inline        evaluate each round's model before the next round starts\n"
           "                       (the same figures; the sites wait for it)\n"
           "  --sync MODE          when a round's files are durable: overlap (default: while\n"
           "                       the next round runs, before its record), round (before\n"
           "                       the next round's tasks go out) or group (with the rounds\n"
           "                       that close within --sync-interval-ms: one fsync for\n"
           "                       them; a crash may run two groups' rounds again)\n"
           "  --sync-interval-ms MS\n"
           "                       --sync group's interval (default 20, at most 60000)\n"
           "\n"
           "Where:\n"
           "  --connect EP         broker endpoint: tcp://HOST:PORT, ipc://PATH or\n"
           "                       inproc://NAME (default " ZFED_JOB_DEFAULT_ENDPOINT ")\n"
           "  --workdir DIR        work folder (default " ZFED_JOB_DEFAULT_WORKDIR ")\n"
           "  --job-id ID          job name, the folder under DIR (default job-DATE-TIME-XXXX)\n"
           "  --resume ID          continue job ID from its last completed round\n"
           "  --curve-cert FILE    our CURVE certificate (the _secret file)\n"
           "  --server-key KEY     the broker's public key: 40 Z85 characters or a certificate\n"
           "  --no-compact         send plain MDP/0.1 requests even to a zfed-broker that takes\n"
           "                       zfed's compact client frames (by default each request is\n"
           "                       then its body and one frame, not 4 or 5)\n"
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
           zfed_agg_value_strategy_list(), ZFED_AGG_DEFAULT_TRIM, ZFED_WATCH_AFTER_MS / 1000.0,
           ZFED_JOB_CHUNK_MIN, ZFED_JOB_CHUNK_MAX, ZFED_JOB_DEFAULT_CHUNK,
           (unsigned long long)ZFED_JOB_DEFAULT_INLINE_MEMORY, ZFED_JOB_DEFAULT_KRUM_F,
           ZFED_JOB_DEFAULT_KRUM_M, ZFED_FIB_MAX_LEVEL);
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
    OPT_REPLICAS,
    OPT_EXCLUDE_LIARS,
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
    OPT_FAIL_FAST,
    OPT_NO_COMPACT,
    OPT_EVAL_INLINE,
    OPT_SYNC,
    OPT_SYNC_INTERVAL,
    OPT_INITIAL_MODEL,
    OPT_SEED,
    OPT_KEEP_MODELS,
    OPT_CHUNK,
    OPT_INLINE_MEMORY,
    OPT_SERVER_LR,
    OPT_BETA1,
    OPT_BETA2,
    OPT_TAU,
    OPT_KRUM_F,
    OPT_KRUM_M,
    OPT_SITES,
    OPT_SPLIT,
    OPT_EVAL_DATA,
    OPT_PARAMS,
    OPT_END
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
    {"replicas", required_argument, NULL, OPT_REPLICAS},
    {"exclude-liars", no_argument, NULL, OPT_EXCLUDE_LIARS},
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
    {"fail-fast", no_argument, NULL, OPT_FAIL_FAST},
    {"no-compact", no_argument, NULL, OPT_NO_COMPACT},
    {"eval-inline", no_argument, NULL, OPT_EVAL_INLINE},
    {"sync", required_argument, NULL, OPT_SYNC},
    {"sync-interval-ms", required_argument, NULL, OPT_SYNC_INTERVAL},
    {"initial-model", required_argument, NULL, OPT_INITIAL_MODEL},
    {"seed", required_argument, NULL, OPT_SEED},
    {"keep-models", required_argument, NULL, OPT_KEEP_MODELS},
    {"chunk", required_argument, NULL, OPT_CHUNK},
    {"inline-memory", required_argument, NULL, OPT_INLINE_MEMORY},
    {"server-lr", required_argument, NULL, OPT_SERVER_LR},
    {"beta1", required_argument, NULL, OPT_BETA1},
    {"beta2", required_argument, NULL, OPT_BETA2},
    {"tau", required_argument, NULL, OPT_TAU},
    {"krum-f", required_argument, NULL, OPT_KRUM_F},
    {"krum-m", required_argument, NULL, OPT_KRUM_M},
    {"sites", required_argument, NULL, OPT_SITES},
    {"split", required_argument, NULL, OPT_SPLIT},
    {"eval-data", required_argument, NULL, OPT_EVAL_DATA},
    {"params", required_argument, NULL, OPT_PARAMS},
    ZFED_CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0},
};

//  How a flag's text becomes the job-file value of its setting, so flags
//  and job files are checked by the same code (zfed_job_set) and the flag
//  is named in the error.
typedef enum {
    VALUE_TEXT,
    VALUE_INTEGER,
    VALUE_NUMBER,
    VALUE_QUORUM,
    VALUE_LIST,   //  "a,b,c": an array of strings
    VALUE_OBJECT, //  a JSON object
    VALUE_TRUE,   //  a flag without a value
} s_value_t;

static const struct {
    int option;
    const char *key; //  as in job files (schemas/JOB.md)
    s_value_t value;
} s_settings[] = {
    {OPT_SERVICE, "service", VALUE_TEXT},
    {OPT_ROUNDS, "rounds", VALUE_INTEGER},
    {OPT_TASKS, "tasks", VALUE_INTEGER},
    {OPT_QUORUM, "quorum", VALUE_QUORUM},
    {OPT_ROUND_TIMEOUT, "round_timeout", VALUE_NUMBER},
    {OPT_GRACE, "grace", VALUE_NUMBER},
    {OPT_TASK_TIMEOUT, "task_timeout", VALUE_NUMBER},
    {OPT_RETRIES, "retries", VALUE_INTEGER},
    {OPT_BATCH, "batch", VALUE_INTEGER},
    {OPT_WINDOW, "window", VALUE_INTEGER},
    {OPT_REPLICAS, "replicas", VALUE_INTEGER},
    {OPT_EXCLUDE_LIARS, "exclude_liars", VALUE_TRUE},
    {OPT_AGGREGATE, "aggregate", VALUE_TEXT},
    {OPT_TRIM, "trim", VALUE_NUMBER},
    {OPT_SELECT, "select", VALUE_TEXT},
    {OPT_CONNECT, "connect", VALUE_TEXT},
    {OPT_WORKDIR, "workdir", VALUE_TEXT},
    {OPT_JOB_ID, "job_id", VALUE_TEXT},
    {OPT_CURVE_CERT, "curve_cert", VALUE_TEXT},
    {OPT_SERVER_KEY, "server_key", VALUE_TEXT},
    {OPT_INITIAL_MODEL, "initial_model", VALUE_TEXT},
    {OPT_SEED, "seed", VALUE_INTEGER},
    {OPT_KEEP_MODELS, "keep_models", VALUE_TEXT},
    {OPT_CHUNK, "chunk", VALUE_INTEGER},
    {OPT_INLINE_MEMORY, "inline_memory", VALUE_INTEGER},
    {OPT_SERVER_LR, "server_lr", VALUE_NUMBER},
    {OPT_BETA1, "beta1", VALUE_NUMBER},
    {OPT_BETA2, "beta2", VALUE_NUMBER},
    {OPT_TAU, "tau", VALUE_NUMBER},
    {OPT_KRUM_F, "krum_f", VALUE_INTEGER},
    {OPT_KRUM_M, "krum_m", VALUE_INTEGER},
    {OPT_SITES, "sites", VALUE_LIST},
    {OPT_SPLIT, "split", VALUE_TEXT},
    {OPT_EVAL_DATA, "eval_data", VALUE_TEXT},
    {OPT_PARAMS, "params", VALUE_OBJECT},
};
#define SETTINGS (sizeof s_settings / sizeof s_settings[0])

//  What a resumed job may still be told: where it is and how to reach the
//  broker, and how to run (not what to run).
static bool s_resume_allows(int option)
{
    return option == OPT_CONNECT || option == OPT_WORKDIR || option == OPT_CURVE_CERT ||
           option == OPT_SERVER_KEY || option == OPT_RESUME || option == OPT_NO_PROGRESS ||
           option == OPT_FAIL_FAST || option == OPT_NO_COMPACT || option == OPT_EVAL_INLINE ||
           option == OPT_SYNC || option == OPT_SYNC_INTERVAL || option == ZFED_CLI_OPT_LOG_LEVEL ||
           option == 'v' || option == 'q';
}

//  The command line as given: every option in order, recorded by the one
//  getopt_long pass, so "--connect=EP", "--conn EP" and "--connect EP"
//  are the same thing.
typedef struct {
    struct {
        int option;
        const char *value;
    } * given;
    size_t count;
    bool seen[OPT_END - OPT_JOB];
    const char *job_file;
    const char *resume;
    const char *workdir; //  the last --workdir: where --resume looks
    bool progress, status, as_json, fail_fast, no_compact, eval_inline, sync_rounds, sync_group;
    uint32_t sync_interval_ms; //  0: not given
    //  Which flag set the task parameters (for errors about them), and
    //  how many levels --levels and --schedule gave (0: not given).
    const char *params_flag;
    size_t levels, schedule;
} s_args_t;

static const char *s_flag_name(int option)
{
    for (const struct option *known = s_options; known->name; known++)
        if (known->val == option)
            return known->name;
    return "?";
}

static bool s_seen(const s_args_t *args, int option)
{
    return option >= OPT_JOB && option < OPT_END && args->seen[option - OPT_JOB];
}

static void s_parse(s_args_t *args, int argc, char **argv)
{
    args->given = calloc((size_t)argc, sizeof *args->given);
    if (!args->given)
        zfed_cli_fail(PROGRAM, "out of memory");
    args->progress = true;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ZFED_CLI_COMMON_SHORT, s_options, NULL)) != -1) {
        switch (option) {
        case '?':
        case ':':
            zfed_cli_bad_option(PROGRAM, argc, argv, option);
        case OPT_JOB:
            args->job_file = optarg;
            break;
        case OPT_RESUME:
            args->resume = optarg;
            break;
        case OPT_WORKDIR:
            args->workdir = optarg;
            break;
        case OPT_NO_PROGRESS:
            args->progress = false;
            break;
        case OPT_STATUS:
            args->status = true;
            break;
        case OPT_JSON:
            args->as_json = true;
            break;
        case OPT_FAIL_FAST:
            args->fail_fast = true;
            break;
        case OPT_NO_COMPACT:
            args->no_compact = true;
            break;
        case OPT_EVAL_INLINE:
            args->eval_inline = true;
            break;
        case OPT_SYNC:
            if (strcmp(optarg, "round") != 0 && strcmp(optarg, "overlap") != 0 &&
                strcmp(optarg, "group") != 0)
                zfed_cli_fail(PROGRAM, "--sync: '%s' is not overlap, round or group", optarg);
            args->sync_rounds = strcmp(optarg, "round") == 0;
            args->sync_group = strcmp(optarg, "group") == 0;
            break;
        case OPT_SYNC_INTERVAL:
            args->sync_interval_ms =
                zfed_cli_u32(PROGRAM, "--sync-interval-ms", optarg, 1, SYNC_INTERVAL_MS_MAX);
            break;
        default:
            if (zfed_cli_common(PROGRAM, option, optarg, s_usage) == ZFED_CLI_EXIT)
                exit(ZFED_EXIT_OK);
            break;
        }
        if (option >= OPT_JOB && option < OPT_END)
            args->seen[option - OPT_JOB] = true;
        args->given[args->count].option = option;
        args->given[args->count].value = optarg;
        args->count++;
    }
    if (optind < argc)
        zfed_cli_fail(PROGRAM, "unexpected argument '%s'", argv[optind]);
    if (args->job_file && args->resume)
        zfed_cli_fail(PROGRAM, "--resume: a resumed job keeps its own settings; drop --job");
    if (args->as_json && !args->status)
        zfed_cli_fail(PROGRAM, "--json goes with --status");
    if (args->sync_interval_ms && !args->sync_group)
        zfed_cli_fail(PROGRAM, "--sync-interval-ms goes with --sync group");
    for (size_t index = 0; args->resume && index < args->count; index++)
        if (!s_resume_allows(args->given[index].option))
            zfed_cli_fail(PROGRAM,
                          "--resume: a resumed job keeps its own settings; only where it runs "
                          "(--connect, --workdir, --curve-cert, --server-key) and how "
                          "(--no-progress, --fail-fast, --no-compact, --eval-inline, --sync, "
                          "--sync-interval-ms, "
                          "--log-level, -v, -q) "
                          "may change (not --%s)",
                          s_flag_name(args->given[index].option));
}

//  A flag's text as its setting's JSON value; exits 2 when it is not one.
static json_t *s_flag_value(const char *flag, s_value_t kind, const char *text)
{
    uint64_t integer;
    double number;
    switch (kind) {
    case VALUE_INTEGER:
        if (zfed_parse_u64(text, 0, INT64_MAX, &integer) != 0)
            zfed_cli_fail(PROGRAM, "--%s: expected an integer, got '%s'", flag, text);
        return json_integer((json_int_t)integer);
    case VALUE_NUMBER:
        if (zfed_parse_double(text, -INFINITY, INFINITY, &number) != 0)
            zfed_cli_fail(PROGRAM, "--%s: expected a number, got '%s'", flag, text);
        return json_real(number);
    case VALUE_QUORUM:
        //  "3" is a count, "0.6" a fraction of the tasks.
        if (!strchr(text, '.'))
            return s_flag_value(flag, VALUE_INTEGER, text);
        if (zfed_parse_double(text, -INFINITY, INFINITY, &number) != 0)
            zfed_cli_fail(PROGRAM, "--%s: expected a count or a fraction, got '%s'", flag, text);
        return json_real(number);
    case VALUE_TRUE: //  a flag without a value
        return json_true();
    case VALUE_LIST: {
        json_t *list = json_array();
        for (const char *at = text; list; at++) {
            const char *comma = strchr(at, ',');
            size_t length = comma ? (size_t)(comma - at) : strlen(at);
            json_array_append_new(list, json_stringn(at, length));
            if (!comma)
                break;
            at = comma;
        }
        return list;
    }
    case VALUE_OBJECT: {
        json_error_t parse_error;
        json_t *object = json_loads(text, JSON_REJECT_DUPLICATES, &parse_error);
        if (!object)
            zfed_cli_fail(PROGRAM, "--%s: %s", flag, parse_error.text);
        return object;
    }
    default:
        return json_string(text);
    }
}

//  Applies one flag that sets something in the job.
static void s_apply(zfed_job_t *job, int option, const char *value, s_args_t *args)
{
    zfed_error_t error;
    const char *flag = s_flag_name(option);
    const char *key = NULL;
    json_t *json = NULL;
    if (option == OPT_LEVEL || option == OPT_LEVELS || option == OPT_SCHEDULE) {
        json = option == OPT_LEVEL ? zfed_fib_level_params(value, &error)
                                   : zfed_fib_level_list(value, &error);
        if (!json)
            zfed_cli_fail(PROGRAM, "--%s: %s", flag, error.message);
        key = option == OPT_LEVEL    ? "params"
              : option == OPT_LEVELS ? "task_params"
                                     : "round_params";
        if (option == OPT_LEVELS)
            args->levels = json_array_size(json);
        if (option == OPT_SCHEDULE)
            args->schedule = json_array_size(json);
        args->params_flag = option == OPT_LEVEL    ? "--level"
                            : option == OPT_LEVELS ? "--levels"
                                                   : "--schedule";
    } else {
        for (size_t index = 0; index < SETTINGS && !key; index++)
            if (s_settings[index].option == option) {
                key = s_settings[index].key;
                json = s_flag_value(flag, s_settings[index].value, value);
            }
        if (!key)
            return; //  not a setting: handled by s_parse
        if (option == OPT_PARAMS)
            args->params_flag = "--params";
    }
    if (!json)
        zfed_cli_fail(PROGRAM, "out of memory");
    int rc = zfed_job_set(job, key, json, &error);
    json_decref(json);
    if (rc != 0) {
        //  Say what was given, unless the reason already quotes it.
        char quoted[ZFED_JOB_PATH_MAX + 4];
        snprintf(quoted, sizeof quoted, "'%s'", value);
        bool shown = strstr(error.text, quoted) != NULL;
        zfed_cli_fail(PROGRAM, "--%s: %s%s%s", flag, error.text, shown ? "" : ", got ",
                      shown ? "" : quoted);
    }
}

//  An error from zfed_job_finish names the setting at fault; say where its
//  value came from: the flag that set it, else the job file.
static void s_fail_finish(const zfed_error_t *error, const s_args_t *args)
{
    bool is_param = error->round >= 0 || strcmp(error->field, "params") == 0;
    if (is_param && args->params_flag)
        zfed_cli_fail(PROGRAM, "%s: %s", args->params_flag, error->message);
    for (size_t index = 0; !is_param && index < SETTINGS; index++)
        if (strcmp(s_settings[index].key, error->field) == 0 &&
            s_seen(args, s_settings[index].option))
            zfed_cli_fail(PROGRAM, "--%s: %s", s_flag_name(s_settings[index].option), error->text);
    if (args->job_file)
        zfed_cli_fail(PROGRAM, "--job %s: %s", args->job_file, error->message);
    zfed_cli_fail(PROGRAM, "%s", error->message);
}

//  The job as the command line describes it: a resumed job's own settings
//  (with where it is and how to reach the broker as given now), or the
//  defaults under the job file under the flags.
static zfed_job_t *s_build_job(s_args_t *args)
{
    zfed_error_t error;
    zfed_job_t *job;
    if (args->resume) {
        if (!zfed_is_safe_name(args->resume, ZFED_JOB_ID_MAX))
            zfed_cli_fail(PROGRAM, "--resume: '%s' is not a job id", args->resume);
        job = zfed_job_load_saved(args->workdir ? args->workdir : ZFED_JOB_DEFAULT_WORKDIR,
                                  args->resume, &error);
        if (!job && error.code == ZFED_E_NO_JOB)
            zfed_cli_fail(PROGRAM, "--resume %s: %s", args->resume, error.text);
        if (!job) {
            fprintf(stderr, "%s: --resume %s: %s\n", PROGRAM, args->resume, error.message);
            exit(ZFED_EXIT_FAILED);
        }
    } else {
        job = zfed_job_new();
        if (!job)
            zfed_cli_fail(PROGRAM, "out of memory");
        if (args->job_file && zfed_job_load(job, args->job_file, &error) != 0)
            zfed_cli_fail(PROGRAM, "--job %s: %s", args->job_file, error.message);
    }
    //  Flags override the file, in the order given.
    for (size_t index = 0; index < args->count; index++)
        s_apply(job, args->given[index].option, args->given[index].value, args);
    if (args->resume)
        return job;
    //  --levels and --schedule imply the task and round counts.
    if (args->levels && !s_seen(args, OPT_TASKS)) {
        json_t *count = json_integer((json_int_t)args->levels);
        zfed_job_set(job, "tasks", count, NULL);
        json_decref(count);
    }
    if (args->schedule && !s_seen(args, OPT_ROUNDS)) {
        json_t *count = json_integer((json_int_t)args->schedule);
        zfed_job_set(job, "rounds", count, NULL);
        json_decref(count);
    }
    if (args->levels && args->levels != zfed_job_tasks(job))
        zfed_cli_fail(PROGRAM, "--levels: %zu levels for %u tasks", args->levels,
                      zfed_job_tasks(job));
    if (args->schedule && args->schedule != zfed_job_rounds(job))
        zfed_cli_fail(PROGRAM, "--schedule: %zu levels for %u rounds", args->schedule,
                      zfed_job_rounds(job));
    return job;
}

int main(int argc, char **argv)
{
    s_args_t args = {0};
    s_parse(&args, argc, argv);
    zfed_job_t *job = s_build_job(&args);
    if (!zfed_job_curve_cert(job) != !zfed_job_server_key(job))
        zfed_cli_fail(PROGRAM, "%s: CURVE needs both --curve-cert and --server-key",
                      zfed_job_curve_cert(job) ? "--server-key" : "--curve-cert");
    zfed_log_set_ident("controller");
    //  A window of requests leaves on few wake-ups of libzmq's I/O thread,
    //  not one each (zfed_iosched.h); before the first socket.
    if (zfed_iosched_batch() != 0)
        zfed_debug("libzmq's I/O threads keep the process's scheduling policy");
    zfed_error_t error;
    if (args.status) {
        //  Only where the broker is and how to reach it matter here.
        int rc = zfed_status_print(zfed_job_endpoint(job), zfed_job_curve_cert(job),
                                   zfed_job_server_key(job), args.as_json, stdout, &error);
        if (rc != 0)
            fprintf(stderr, "%s: %s\n", PROGRAM, error.message);
        zfed_job_destroy(&job);
        free(args.given);
        return rc == 0 ? ZFED_EXIT_OK : ZFED_EXIT_FAILED;
    }
    if (zfed_job_finish(job, &error) != 0)
        s_fail_finish(&error, &args);

#ifdef M_TRIM_THRESHOLD
    //  A round's replies are small blocks taken and freed in waves (by
    //  libzmq's I/O thread and here); glibc gave the top of each heap back
    //  past 128 KiB free and faulted it in again with the next wave.  Kept
    //  up to HEAP_KEPT_BYTES.  This also fixes glibc's mmap threshold at
    //  128 KiB: big buffers keep mappings of their own (zfed_huge's).
    mallopt(M_TRIM_THRESHOLD, HEAP_KEPT_BYTES);
#endif
    if (zfed_signal_install() != 0)
        zfed_warn("cannot install the signal handler; Ctrl-C may take a moment");
    zfed_controller_options_t options = {.resume = args.resume != NULL,
                                         .progress = args.progress ? stdout : NULL,
                                         .fail_fast = args.fail_fast,
                                         .no_compact = args.no_compact,
                                         .eval_inline = args.eval_inline,
                                         .sync_rounds = args.sync_rounds,
                                         .sync_group_ms = !args.sync_group ? 0
                                                          : args.sync_interval_ms
                                                              ? args.sync_interval_ms
                                                              : SYNC_INTERVAL_MS_DEFAULT};
    zfed_controller_t *controller = zfed_controller_new(job, &options, &error);
    int outcome;
    if (controller) {
        outcome = zfed_controller_run(controller);
        zfed_controller_destroy(&controller);
    } else {
        //  A job id that is taken, or a job that is not there to resume,
        //  is a mistake on the command line; anything else a failure.
        zfed_error("%s", error.message);
        outcome = error.code == ZFED_E_EXISTS || error.code == ZFED_E_NO_JOB ? ZFED_EXIT_USAGE
                                                                             : ZFED_EXIT_FAILED;
    }
    zfed_job_destroy(&job);
    free(args.given);
    return outcome;
}
