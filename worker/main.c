/*  zfed-worker - stateless workers: pull tasks from a broker, run them, reply.  */
#include "zfed/zfed_blob_server.h"
#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_fetcher.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_signal.h"
#include "zfed/zfed_mdp.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_util.h"
#include "zfed/zfed_version.h"
#include "zfed/zfed_worker.h"
#include "ml/zfed_sites.h"
#include "core/zfed_cli.h"
#include "transport/zfed_iosched.h"

#include <czmq.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PROGRAM "zfed-worker"

static void s_usage(void)
{
    printf(
        "Usage: " PROGRAM " [OPTION]...\n"
        "Serve zfed tasks from a Majordomo broker.  Stateless: start as many as you like,\n"
        "on as many hosts as you like, pointed at the same broker.\n"
        "\n"
        "  --connect EP         broker endpoint: tcp://HOST:PORT, ipc://PATH or\n"
        "                       inproc://NAME (default tcp://127.0.0.1:5555)\n"
        "  --service NAME       service to serve (default fib; see below)\n"
        "  --register-as NAME   MDP service name to register under instead of the\n"
        "                       service's own; {i} becomes the worker's index\n"
        "  --site NAME          the site this worker serves: registers SERVICE@NAME, and a\n"
        "                       task's \"site\" parameter must be NAME (it is taken out\n"
        "                       before the service sees the params)\n"
        "  --data DIR           the site's data, loaded once at start (mlp: a shard folder\n"
        "                       of zfed-split, train-images-idx3-ubyte.gz and\n"
        "                       train-labels-idx1-ubyte.gz); a service that trains needs it\n"
        "  --split FILE         zfed-split's split.json: refuse to start unless --data is\n"
        "                       the shard FILE gives --site (its SHA-256 and count)\n"
        "  --concurrency N      Majordomo workers in this process (default 1, at most %d)\n"
        "  --threads N          compute threads (default: concurrency, at most the CPU count;\n"
        "                       0 runs tasks on the I/O thread: fastest for tiny tasks, but\n"
        "                       heartbeats pause while one runs)\n"
        "  --credit N           requests each worker may hold at once (default 1 = strict\n"
        "                       MDP/0.1; >1 announces a zfed credit plain brokers ignore)\n"
        "  --no-compact         do not offer zfed's compact frames in READY (by default a\n"
        "                       zfed-broker that accepts sends each task as 2 frames, not 6)\n"
        "  --pyramid            print each task's display on stdout (fib: its pyramid)\n"
        "  --name NAME          name reported in results (default HOST-PID; .N per worker)\n"
        "  --heartbeat-ms N     heartbeat interval, must match the broker's (default %d)\n"
        "  --liveness N         silent intervals before the broker counts as gone (default %d)\n"
        "  --delay-ms N         extra time per task, to play a straggler (default 0)\n"
        "  --curve-cert FILE    our CURVE certificate (the _secret file): encrypt and\n"
        "                       authenticate to the broker\n"
        "  --server-key KEY     the broker's public key: 40 Z85 characters or a certificate file\n"
        "  --log-level LEVEL    error, warn, info or debug (default info)\n"
        "  -v, --verbose        same as --log-level debug\n"
        "  -q, --quiet          same as --log-level warn\n"
        "  -h, --help           show this help and exit\n"
        "  -V, --version        show the version and exit\n"
        "\n"
        "Model services (tensoravg, mlp):\n"
        "  --hold-ms N          a result held by reference (over 4 MiB) stays fetchable this\n"
        "                       long unless released (default %d)\n"
        "  --hold-bytes N       results held at once, bytes (KiB, MiB, GiB suffixes); a\n"
        "                       result beyond it is answered 507 (default: no limit)\n"
        "  --chunk BYTES        chunk size of results held by reference (default 4MiB)\n"
        "  --fetch-timeout-ms N a chunk fetch unanswered this long is sent again (default %d)\n"
        "\n"
        "Services:\n",
        ZFED_WORKER_MAX_CONCURRENCY, ZFED_MDP_HEARTBEAT_MS_DEFAULT, ZFED_MDP_LIVENESS_DEFAULT,
        ZFED_HOLD_MS_DEFAULT, ZFED_FETCH_TIMEOUT_MS_DEFAULT);
    for (const zfed_service_t *const *service = zfed_services(); *service; service++)
        printf("  %-20s %s\n", (*service)->name, (*service)->description);
    printf("\nA worker reconnects on its own when the broker goes away.  SIGINT or SIGTERM\n"
           "stops it cleanly.  Exit status: 0 on a clean stop, 1 on failure, 2 on bad usage.\n");
}

enum {
    OPT_CONNECT = 256,
    OPT_SERVICE,
    OPT_REGISTER_AS,
    OPT_CONCURRENCY,
    OPT_THREADS,
    OPT_CREDIT,
    OPT_NO_COMPACT,
    OPT_PYRAMID,
    OPT_NAME,
    OPT_HEARTBEAT,
    OPT_LIVENESS,
    OPT_DELAY,
    OPT_CURVE_CERT,
    OPT_SERVER_KEY,
    OPT_SITE,
    OPT_HOLD_MS,
    OPT_HOLD_BYTES,
    OPT_CHUNK,
    OPT_FETCH_TIMEOUT,
    OPT_DATA,
    OPT_SPLIT,
};

//  --data: the site's data, opened once by the service before anything
//  connects, so a missing or broken shard is a usage error (exit 2) said
//  at once, not a failure of every task.  NULL for a service without data.
static void *s_open_data(const char *name, const char *dir)
{
    const zfed_service_t *service = zfed_service_find(name);
    if (!service->open_data) {
        if (dir)
            zfed_cli_fail(PROGRAM, "--data: service %s reads no data", name);
        return NULL;
    }
    if (!dir)
        zfed_cli_fail(PROGRAM,
                      "--data: service %s trains on a site's data: give --data DIR (a shard "
                      "folder of zfed-split)",
                      name);
    void *data = NULL;
    zfed_fault_t fault = {0};
    if (service->open_data(dir, ZFED_DATA_TRAIN, &data, &fault) != 0)
        zfed_cli_fail(PROGRAM, "--data: %s", fault.text);
    return data;
}

//  --split FILE: the data must be the shard FILE (zfed-split's split.json)
//  gives the worker's site, checked before anything connects (exit 2 when
//  it is another site's, or no shard of FILE).
static void s_check_split(const char *name, const char *path, const char *site, const void *data)
{
    const zfed_service_t *service = zfed_service_find(name);
    if (!service->data_digest)
        zfed_cli_fail(PROGRAM, "--split: service %s is not bound to a site's data", name);
    if (!site || !data)
        zfed_cli_fail(PROGRAM, "--split: needs --site and --data (the site's shard)");
    json_error_t parse_error;
    json_t *split = json_load_file(path, JSON_REJECT_DUPLICATES, &parse_error);
    if (!split)
        zfed_cli_fail(PROGRAM, "--split: %s: %s", path, parse_error.text);
    uint8_t digest[ZFED_SHA256_SIZE];
    uint64_t count = 0;
    service->data_digest(data, digest, &count);
    char reason[512];
    int rc = zfed_sites_check_data(split, path, site, digest, count, reason, sizeof reason);
    json_decref(split);
    if (rc != 0)
        zfed_cli_fail(PROGRAM, "--split: %s", reason);
    zfed_info("--data is site %s's shard in %s", site, path);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"connect", required_argument, NULL, OPT_CONNECT},
        {"service", required_argument, NULL, OPT_SERVICE},
        {"register-as", required_argument, NULL, OPT_REGISTER_AS},
        {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"credit", required_argument, NULL, OPT_CREDIT},
        {"no-compact", no_argument, NULL, OPT_NO_COMPACT},
        {"pyramid", no_argument, NULL, OPT_PYRAMID},
        {"name", required_argument, NULL, OPT_NAME},
        {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
        {"liveness", required_argument, NULL, OPT_LIVENESS},
        {"delay-ms", required_argument, NULL, OPT_DELAY},
        {"curve-cert", required_argument, NULL, OPT_CURVE_CERT},
        {"server-key", required_argument, NULL, OPT_SERVER_KEY},
        {"site", required_argument, NULL, OPT_SITE},
        {"hold-ms", required_argument, NULL, OPT_HOLD_MS},
        {"hold-bytes", required_argument, NULL, OPT_HOLD_BYTES},
        {"chunk", required_argument, NULL, OPT_CHUNK},
        {"fetch-timeout-ms", required_argument, NULL, OPT_FETCH_TIMEOUT},
        {"data", required_argument, NULL, OPT_DATA},
        {"split", required_argument, NULL, OPT_SPLIT},
        ZFED_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    zfed_worker_config_t config;
    zfed_worker_config_defaults(&config);
    bool threads_given = false;
    const char *data_dir = NULL, *split_path = NULL;

    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ZFED_CLI_COMMON_SHORT, options, NULL)) != -1) {
        switch (option) {
        case OPT_CONNECT:
            config.endpoint =
                zfed_cli_endpoint(PROGRAM, "--connect", optarg, ZFED_ENDPOINT_CONNECT);
            break;
        case OPT_SERVICE:
            if (!zfed_service_find(optarg))
                zfed_cli_fail(PROGRAM, "--service: unknown service '%s' (see --help)", optarg);
            config.service = optarg;
            break;
        case OPT_REGISTER_AS:
            config.register_as = optarg;
            break;
        case OPT_CONCURRENCY:
            config.concurrency =
                zfed_cli_u32(PROGRAM, "--concurrency", optarg, 1, ZFED_WORKER_MAX_CONCURRENCY);
            break;
        case OPT_THREADS:
            config.threads = zfed_cli_u32(PROGRAM, "--threads", optarg, 0, ZFED_WORKER_MAX_THREADS);
            threads_given = true;
            break;
        case OPT_CREDIT:
            config.credit = zfed_cli_u32(PROGRAM, "--credit", optarg, 1, ZFED_WORKER_MAX_CREDIT);
            break;
        case OPT_NO_COMPACT:
            config.compact = false;
            break;
        case OPT_PYRAMID:
            config.pyramid = true;
            break;
        case OPT_NAME:
            config.name = optarg;
            break;
        case OPT_HEARTBEAT:
            config.heartbeat_ms = (int)zfed_cli_u32(PROGRAM, "--heartbeat-ms", optarg, 10, 600000);
            break;
        case OPT_LIVENESS:
            config.liveness = (int)zfed_cli_u32(PROGRAM, "--liveness", optarg, 1, 100);
            break;
        case OPT_DELAY:
            config.delay_ms = (int)zfed_cli_u32(PROGRAM, "--delay-ms", optarg, 0, 3600000);
            break;
        case OPT_CURVE_CERT:
            config.curve_cert = optarg;
            break;
        case OPT_SERVER_KEY:
            config.curve_server_key = optarg;
            break;
        case OPT_SITE:
            if (!zfed_is_safe_name(optarg, ZFED_WORKER_SITE_MAX))
                zfed_cli_fail(PROGRAM,
                              "--site: 1 to %d characters of A-Z a-z 0-9 . _ - not starting "
                              "with '.'",
                              ZFED_WORKER_SITE_MAX);
            config.site = optarg;
            break;
        case OPT_HOLD_MS:
            config.hold_ms = zfed_cli_u32(PROGRAM, "--hold-ms", optarg, 1, INT32_MAX);
            break;
        case OPT_HOLD_BYTES:
            config.hold_bytes =
                zfed_cli_bytes(PROGRAM, "--hold-bytes", optarg, 1, ZFED_MODEL_BYTES_MAX * 1024);
            break;
        case OPT_CHUNK:
            config.chunk = (uint32_t)zfed_cli_bytes(PROGRAM, "--chunk", optarg, ZFED_CHUNK_MIN,
                                                    ZFED_CHUNK_MAX);
            break;
        case OPT_DATA:
            data_dir = optarg;
            break;
        case OPT_SPLIT:
            split_path = optarg;
            break;
        case OPT_FETCH_TIMEOUT:
            config.fetch_timeout_ms =
                (int)zfed_cli_u32(PROGRAM, "--fetch-timeout-ms", optarg, 1, 600000);
            break;
        default:
            if (zfed_cli_common_or_fail(PROGRAM, argc, argv, option, optarg, s_usage))
                return ZFED_EXIT_OK;
        }
    }
    if (optind < argc)
        zfed_cli_fail(PROGRAM, "unexpected argument '%s'", argv[optind]);
    if (config.name && !zfed_is_token(config.name, ZFED_WORKER_NAME_MAX - 6))
        zfed_cli_fail(PROGRAM, "--name: 1 to %d printable ASCII characters without spaces",
                      ZFED_WORKER_NAME_MAX - 6);
    if ((config.curve_cert == NULL) != (config.curve_server_key == NULL))
        zfed_cli_fail(PROGRAM, "%s: CURVE needs both --curve-cert and --server-key",
                      config.curve_cert ? "--server-key" : "--curve-cert");
    if (!threads_given) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        config.threads = config.concurrency;
        if (cpus > 0 && config.threads > (unsigned)cpus)
            config.threads = (unsigned)cpus;
    }

    zfed_log_set_ident(config.name ? config.name : "worker");
    void *data = s_open_data(config.service, data_dir);
    config.service_data = data;
    if (split_path)
        s_check_split(config.service, split_path, config.site, data);
    int rc = -1;
    //  Replies of a burst leave together (zfed_iosched.h).
    if (zfed_iosched_batch() != 0)
        zfed_debug("libzmq's I/O threads keep the process's scheduling policy");
    if (zfed_worker_raise_limits(&config) == 0) {
        if (zfed_signal_install() != 0)
            zfed_warn("cannot install the signal handler; Ctrl-C may take a moment");
        zfed_worker_t *worker = zfed_worker_new(&config);
        if (worker)
            rc = zfed_worker_run(worker);
        zfed_worker_destroy(&worker);
    }
    const zfed_service_t *service = zfed_service_find(config.service);
    if (data)
        service->close_data(&data);
    return rc == 0 ? ZFED_EXIT_OK : ZFED_EXIT_FAILED;
}
