/*  zfed-broker - the Majordomo broker zfed's workers and controllers meet at.  */
#include "zfed/zfed_broker.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_signal.h"
#include "zfed/zfed_mdp.h"
#include "zfed/zfed_util.h"
#include "zfed/zfed_version.h"
#include "broker/zfed_budget.h"
#include "core/zfed_cli.h"

#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRAM       "zfed-broker"
#define MAX_ENDPOINTS 16
//  Buffers at least this big get a mapping of their own (see main).
#define MMAP_THRESHOLD (128 * 1024)

static void s_usage(void)
{
    printf(
        "Usage: " PROGRAM " [OPTION]...\n"
        "Route zfed tasks (7/MDP Majordomo, MDP/0.1) from controllers to workers.\n"
        "\n"
        "  --bind EP            endpoint to listen on; repeatable "
        "(default " ZFED_BROKER_ENDPOINT_DEFAULT ")\n"
        "                       (tcp://HOST:PORT, ipc://PATH or inproc://NAME);\n"
        "                       \"tcp://127.0.0.1:*\" picks a free port (see --endpoint-file)\n"
        "  --endpoint-file F    write the endpoints actually bound to F, one per line\n"
        "  --heartbeat-ms N     heartbeat interval, must match the workers' (default %d)\n"
        "  --liveness N         silent intervals before a worker is dropped (default %d)\n"
        "  --max-workers N      registered workers, all services (default %d)\n"
        "  --max-services N     distinct service names (default %d)\n"
        "  --max-queue N        queued requests, all services (default %d)\n"
        "  --max-message BYTES  largest message accepted; bigger ones cost the sender its\n"
        "                       connection (default %d)\n"
        "  --request-ttl S      seconds a request may wait for a worker, 0 = forever (default %d)\n"
        "  --max-attempts N     dispatches per request before it fails (default %d)\n"
        "  --busy-timeout S     seconds a busy worker may stay silent when it has never\n"
        "                       heartbeated while working (plain MDP workers block while they\n"
        "                       compute); 0 = none, silent workers expire after heartbeat x\n"
        "                       liveness, busy or not (default %d)\n"
        "  --hwm N              ZeroMQ high-water mark, messages per peer (default %d)\n"
        "\n"
        "Fairness and budgets (no single peer can starve or exhaust the broker):\n"
        "  --max-queued-per-client N  requests one client (connection) may have queued or\n"
        "                       in flight; more get 429 (default %d)\n"
        "  --max-ready-per-connection N  READYs one connection may send (default %d)\n"
        "  --max-bytes BYTES    bytes held for all peers: queued requests and what waits\n"
        "                       in libzmq until written (default %lld)\n"
        "  --max-bytes-per-peer BYTES  the same for one peer: its requests wait while it\n"
        "                       has no room for their replies, and get 429 when it has\n"
        "                       no room for them (default %lld)\n"
        "  --stall-timeout S    a peer whose budget (or the total) is full and that has\n"
        "                       read none of what waits for it for S seconds is cut;\n"
        "                       0 = never (default %d)\n"
        "  --max-connections N  connections at once; at the limit new ones wait unanswered\n"
        "                       (default: the descriptor limit less %d)\n"
        "\n"
        "Security (CurveZMQ; see docs/SECURITY.md):\n"
        "  --curve-cert FILE    the broker's certificate (its _secret file): encrypt every\n"
        "                       connection and authenticate peers by key\n"
        "  --workers-dir DIR    public certificates of the keys allowed to work\n"
        "  --controllers-dir DIR  public certificates of the keys allowed to submit tasks\n"
        "  --blob-services-per-worker-key N  blob services (zfed.blob.*, where workers hold\n"
        "                       results of model services) a worker key may register at\n"
        "                       once; 0 = no limit (default %d; one per worker process)\n"
        "  --insecure           allow plaintext on endpoints beyond this host (by default\n"
        "                       only loopback, ipc and inproc may be plaintext)\n"
        "\n"
        "  --no-compact         no zfed compact frames on either leg: refuse workers' offer\n"
        "                       of them (every worker is sent plain MDP/0.1, 6 frames a\n"
        "                       task, not 2) and take only MDP/0.1 from clients (mmi.status\n"
        "                       says \"compact_clients\": false)\n"
        "  --log-level LEVEL    error, warn, info or debug (default info)\n"
        "  -v, --verbose        same as --log-level debug\n"
        "  -q, --quiet          same as --log-level warn\n"
        "  -h, --help           show this help and exit\n"
        "  -V, --version        show the version and exit\n"
        "\n"
        "Logs go to stderr.  SIGINT or SIGTERM stops the broker cleanly; workers are told\n"
        "to register again elsewhere.  Exit status: 0 on a clean stop, 1 on failure, 2 on\n"
        "bad usage.\n",
        ZFED_MDP_HEARTBEAT_MS_DEFAULT, ZFED_MDP_LIVENESS_DEFAULT, ZFED_BROKER_MAX_WORKERS_DEFAULT,
        ZFED_BROKER_MAX_SERVICES_DEFAULT, ZFED_BROKER_MAX_QUEUE_DEFAULT,
        ZFED_BROKER_MAX_MESSAGE_DEFAULT, ZFED_BROKER_REQUEST_TTL_MS_DEFAULT / 1000,
        ZFED_BROKER_MAX_ATTEMPTS_DEFAULT, ZFED_BROKER_BUSY_TIMEOUT_MS_DEFAULT / 1000,
        ZFED_BROKER_HWM_DEFAULT, ZFED_BROKER_MAX_QUEUED_PER_CLIENT_DEFAULT,
        ZFED_BROKER_MAX_READY_PER_CONNECTION_DEFAULT, (long long)ZFED_BROKER_MAX_BYTES_DEFAULT,
        (long long)ZFED_BROKER_MAX_BYTES_PER_PEER_DEFAULT,
        ZFED_BROKER_STALL_TIMEOUT_MS_DEFAULT / 1000, ZFED_BROKER_FD_HEADROOM,
        ZFED_BROKER_BLOB_SERVICES_PER_KEY);
}

enum {
    OPT_BIND = 256,
    OPT_ENDPOINT_FILE,
    OPT_HEARTBEAT,
    OPT_LIVENESS,
    OPT_MAX_WORKERS,
    OPT_MAX_SERVICES,
    OPT_MAX_QUEUE,
    OPT_MAX_MESSAGE,
    OPT_REQUEST_TTL,
    OPT_MAX_ATTEMPTS,
    OPT_BUSY_TIMEOUT,
    OPT_HWM,
    OPT_MAX_QUEUED_PER_CLIENT,
    OPT_MAX_READY,
    OPT_MAX_BYTES,
    OPT_MAX_BYTES_PER_PEER,
    OPT_STALL_TIMEOUT,
    OPT_MAX_CONNECTIONS,
    OPT_CURVE_CERT,
    OPT_WORKERS_DIR,
    OPT_CONTROLLERS_DIR,
    OPT_INSECURE,
    OPT_NO_COMPACT,
    OPT_BLOB_SERVICES,
};

static int s_write_endpoints(zfed_broker_t *broker, const char *path)
{
    size_t capacity = 64 * MAX_ENDPOINTS + 1;
    char *text = calloc(1, capacity);
    if (!text)
        return -1;
    size_t used = 0;
    for (size_t index = 0; index < zfed_broker_endpoints(broker); index++)
        used += (size_t)snprintf(text + used, capacity - used, "%s\n",
                                 zfed_broker_endpoint(broker, index));
    int rc = zfed_write_file_durable(path, text, used);
    free(text);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"bind", required_argument, NULL, OPT_BIND},
        {"endpoint-file", required_argument, NULL, OPT_ENDPOINT_FILE},
        {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
        {"liveness", required_argument, NULL, OPT_LIVENESS},
        {"max-workers", required_argument, NULL, OPT_MAX_WORKERS},
        {"max-services", required_argument, NULL, OPT_MAX_SERVICES},
        {"max-queue", required_argument, NULL, OPT_MAX_QUEUE},
        {"max-message", required_argument, NULL, OPT_MAX_MESSAGE},
        {"request-ttl", required_argument, NULL, OPT_REQUEST_TTL},
        {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
        {"busy-timeout", required_argument, NULL, OPT_BUSY_TIMEOUT},
        {"hwm", required_argument, NULL, OPT_HWM},
        {"max-queued-per-client", required_argument, NULL, OPT_MAX_QUEUED_PER_CLIENT},
        {"max-ready-per-connection", required_argument, NULL, OPT_MAX_READY},
        {"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
        {"max-bytes-per-peer", required_argument, NULL, OPT_MAX_BYTES_PER_PEER},
        {"stall-timeout", required_argument, NULL, OPT_STALL_TIMEOUT},
        {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
        {"curve-cert", required_argument, NULL, OPT_CURVE_CERT},
        {"workers-dir", required_argument, NULL, OPT_WORKERS_DIR},
        {"controllers-dir", required_argument, NULL, OPT_CONTROLLERS_DIR},
        {"insecure", no_argument, NULL, OPT_INSECURE},
        {"no-compact", no_argument, NULL, OPT_NO_COMPACT},
        {"blob-services-per-worker-key", required_argument, NULL, OPT_BLOB_SERVICES},
        ZFED_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    zfed_broker_config_t config;
    zfed_broker_config_defaults(&config);
    const char *endpoints[MAX_ENDPOINTS];
    size_t endpoint_count = 0;
    const char *endpoint_file = NULL;

    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ZFED_CLI_COMMON_SHORT, options, NULL)) != -1) {
        switch (option) {
        case OPT_BIND:
            if (endpoint_count == MAX_ENDPOINTS)
                zfed_cli_fail(PROGRAM, "--bind: at most %d endpoints", MAX_ENDPOINTS);
            endpoints[endpoint_count++] =
                zfed_cli_endpoint(PROGRAM, "--bind", optarg, ZFED_ENDPOINT_BIND);
            break;
        case OPT_ENDPOINT_FILE:
            endpoint_file = optarg;
            break;
        case OPT_HEARTBEAT:
            config.heartbeat_ms = (int)zfed_cli_u32(PROGRAM, "--heartbeat-ms", optarg, 10, 600000);
            break;
        case OPT_LIVENESS:
            config.liveness = (int)zfed_cli_u32(PROGRAM, "--liveness", optarg, 1, 100);
            break;
        case OPT_MAX_WORKERS:
            config.max_workers = zfed_cli_u32(PROGRAM, "--max-workers", optarg, 1, 10000000);
            break;
        case OPT_MAX_SERVICES:
            config.max_services = zfed_cli_u32(PROGRAM, "--max-services", optarg, 1, 1000000);
            break;
        case OPT_MAX_QUEUE:
            config.max_queue = zfed_cli_u32(PROGRAM, "--max-queue", optarg, 1, 100000000);
            break;
        case OPT_MAX_MESSAGE:
            config.max_message =
                (int64_t)zfed_cli_u64(PROGRAM, "--max-message", optarg, 1024, INT32_MAX);
            break;
        case OPT_REQUEST_TTL:
            config.request_ttl_ms = zfed_cli_seconds_ms(PROGRAM, "--request-ttl", optarg, 0, 86400);
            break;
        case OPT_MAX_ATTEMPTS:
            config.max_attempts = zfed_cli_u32(PROGRAM, "--max-attempts", optarg, 1, 1000);
            break;
        case OPT_BUSY_TIMEOUT:
            config.busy_timeout_ms =
                zfed_cli_seconds_ms(PROGRAM, "--busy-timeout", optarg, 0, 86400);
            break;
        case OPT_HWM:
            config.hwm = (int)zfed_cli_u32(PROGRAM, "--hwm", optarg, 0, 100000000);
            break;
        case OPT_MAX_QUEUED_PER_CLIENT:
            config.max_queued_per_client =
                zfed_cli_u32(PROGRAM, "--max-queued-per-client", optarg, 1, 100000000);
            break;
        case OPT_MAX_READY:
            config.max_ready_per_connection =
                zfed_cli_u32(PROGRAM, "--max-ready-per-connection", optarg, 1, 1000000);
            break;
        case OPT_MAX_BYTES:
            config.max_bytes =
                (int64_t)zfed_cli_u64(PROGRAM, "--max-bytes", optarg, 1 << 20, INT64_MAX / 4);
            break;
        case OPT_MAX_BYTES_PER_PEER:
            config.max_bytes_per_peer = (int64_t)zfed_cli_u64(PROGRAM, "--max-bytes-per-peer",
                                                              optarg, 1 << 20, INT64_MAX / 4);
            break;
        case OPT_STALL_TIMEOUT:
            config.stall_timeout_ms =
                zfed_cli_seconds_ms(PROGRAM, "--stall-timeout", optarg, 0, 86400);
            break;
        case OPT_MAX_CONNECTIONS:
            config.max_connections =
                zfed_cli_u32(PROGRAM, "--max-connections", optarg, 1, 100000000);
            break;
        case OPT_CURVE_CERT:
            config.curve_cert = optarg;
            break;
        case OPT_WORKERS_DIR:
            config.workers_dir = optarg;
            break;
        case OPT_CONTROLLERS_DIR:
            config.controllers_dir = optarg;
            break;
        case OPT_INSECURE:
            config.insecure = true;
            break;
        case OPT_NO_COMPACT:
            config.compact = false;
            break;
        case OPT_BLOB_SERVICES:
            config.max_blob_services_per_key =
                zfed_cli_u32(PROGRAM, "--blob-services-per-worker-key", optarg, 0, 1000000);
            break;
        default:
            if (zfed_cli_common_or_fail(PROGRAM, argc, argv, option, optarg, s_usage))
                return ZFED_EXIT_OK;
        }
    }
    if (optind < argc)
        zfed_cli_fail(PROGRAM, "unexpected argument '%s'", argv[optind]);
    if (endpoint_count == 0)
        endpoints[endpoint_count++] = ZFED_BROKER_ENDPOINT_DEFAULT;
    if (!config.curve_cert && (config.workers_dir || config.controllers_dir))
        zfed_cli_fail(PROGRAM, "%s: key directories need --curve-cert",
                      config.workers_dir ? "--workers-dir" : "--controllers-dir");
    if (config.max_bytes_per_peer < zfed_broker_largest_reply(config.max_message) ||
        config.max_bytes < config.max_bytes_per_peer)
        zfed_cli_fail(PROGRAM,
                      "--max-bytes-per-peer must hold the largest reply (%d frames of "
                      "--max-message, %lld bytes), and --max-bytes one peer's budget",
                      ZFED_BROKER_MAX_BODY_FRAMES,
                      (long long)zfed_broker_largest_reply(config.max_message));
    if (config.curve_cert && !config.workers_dir && !config.controllers_dir)
        zfed_cli_fail(PROGRAM, "--curve-cert: give --workers-dir and/or --controllers-dir, "
                               "or no key could ever connect");
    for (size_t index = 0; index < endpoint_count; index++)
        if (!config.curve_cert && !config.insecure && !zfed_endpoint_is_local(endpoints[index]))
            zfed_cli_fail(PROGRAM,
                          "--bind %s: refusing plaintext beyond this host; anyone who can "
                          "reach it could take tasks or inject results.  Use --curve-cert with "
                          "--workers-dir/--controllers-dir, or --insecure on a trusted network",
                          endpoints[index]);

    //  Past --max-bytes-per-peer or --max-bytes it is not enough that the
    //  bytes are freed: their pages must go back.  A fixed mmap threshold
    //  keeps every buffer of 128 KiB or more (replies, model chunks) in
    //  its own mapping, returned when freed; glibc's default raises the
    //  threshold after the first such free, and 3,000 replies of 1 MB to a
    //  client that then left kept 700 MB of heap.
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    zfed_log_set_ident("broker");
    if (zfed_signal_install() != 0)
        zfed_warn("cannot install the signal handler; Ctrl-C may take a moment");
    zfed_broker_t *broker = zfed_broker_new(&config);
    if (!broker)
        return ZFED_EXIT_FAILED;
    for (size_t index = 0; index < endpoint_count; index++) {
        if (zfed_broker_bind(broker, endpoints[index]) != 0) {
            zfed_broker_destroy(&broker);
            return ZFED_EXIT_FAILED;
        }
    }
    if (endpoint_file && s_write_endpoints(broker, endpoint_file) != 0) {
        zfed_error("cannot write %s", endpoint_file);
        zfed_broker_destroy(&broker);
        return ZFED_EXIT_FAILED;
    }
    zfed_info("zfed-broker %s ready (heartbeat %d ms x %d, request ttl %lld ms, busy timeout "
              "%lld ms)",
              ZFED_VERSION_STRING, config.heartbeat_ms, config.liveness,
              (long long)config.request_ttl_ms, (long long)config.busy_timeout_ms);
    int rc = zfed_broker_run(broker);
    zfed_broker_destroy(&broker);
    return rc == 0 ? ZFED_EXIT_OK : ZFED_EXIT_FAILED;
}
