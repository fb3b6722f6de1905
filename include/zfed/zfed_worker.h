/*  zfed_worker - a pool of Majordomo workers in one process.

    One I/O thread owns every broker connection (one DEALER socket per MDP
    worker, --concurrency of them) and answers heartbeats; a pool of
    compute threads runs the tasks.  So a long task never silences the
    heartbeats of its connection, and a process can hold hundreds of
    connections without a thread each.

    Each connection is a strict MDP/0.1 worker: READY, then REQUEST/REPLY,
    heartbeats both ways, a fresh socket after DISCONNECT or when the broker
    falls silent (with exponential back-off while it stays away).  With
    credit > 1 it announces "credit=N" in its READY (a zfed extension plain
    brokers ignore) and may hold N requests at once.

    A model service (schemas/MODELS.md 8) takes its global model from the
    task's data frame, or from the process's cache of the last global
    (by id, which is its SHA-256), or fetches it in chunks on a connection
    of its own (zfed_fetcher), hashing it as it arrives; a model is used
    only whole and verified, so a fetch that fails or does not match
    answers 503 and the controller sends the task again.  Results of at
    most 4 MiB go back inline as a data frame; larger ones are held by the
    process's one blob service ("zfed.blob.<32 hex>") for hold_ms or until
    released, within hold_bytes (beyond it: error 507).
*/
#ifndef ZFED_WORKER_H_INCLUDED
#define ZFED_WORKER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZFED_WORKER_MAX_CONCURRENCY  4096
#define ZFED_WORKER_MAX_THREADS      256
#define ZFED_WORKER_MAX_CREDIT       256
#define ZFED_WORKER_RECONNECT_MS     250  //  first back-off step
#define ZFED_WORKER_RECONNECT_MAX_MS 8000 //  back-off ceiling
#define ZFED_WORKER_SITE_MAX         64   //  --site: a job_id-like name
//  Globals kept beside those in use (MODELS.md 8: the last one).
#define ZFED_WORKER_CACHED_MODELS 1
//  Spare model buffers kept for the next round (zfed_model_pool_keep):
//  its global and its result; one idle this long goes back to the system.
#define ZFED_WORKER_SPARE_MODELS  2
#define ZFED_WORKER_SPARE_IDLE_MS 30000

typedef struct {
    const char *endpoint; //  broker endpoint
    const char *service;  //  service to serve (must be registered, see zfed_service.h)
    //  MDP name to register under, if not the service's own; "{i}" is
    //  replaced by the connection index (benchmarks spread one process
    //  over many names).  NULL: the service name.
    const char *register_as;
    const char *name;     //  worker name in results; connection i is "name.i" when concurrency > 1
    unsigned concurrency; //  MDP workers (connections)
    unsigned threads;     //  compute threads; 0 = run tasks on the I/O thread
    unsigned credit;      //  requests per connection (1 = strict MDP)
    int heartbeat_ms;     //  must match the broker's
    int liveness;         //  silent intervals before the broker counts as gone
    int reconnect_ms;     //  first back-off step
    int reconnect_max_ms; //  back-off ceiling
    bool pyramid;         //  print each task's display text (fib: the pyramid) on stdout
    int delay_ms;         //  extra time per task, to play a straggler in tests and demos
    const char *curve_cert;       //  our certificate file (secret), or NULL for plaintext
    const char *curve_server_key; //  broker public key (Z85 or certificate file)
    //  A site's worker registers SERVICE@SITE (unless register_as says
    //  otherwise) and takes params["site"] out of its tasks after checking
    //  it is this site (else 422, field "site").  NULL: no site.
    const char *site;
    //  What the service's open_data loaded from the site's data folder
    //  (zfed-worker --data DIR), handed to every task; borrowed: the caller
    //  closes it after zfed_worker_destroy.  A service with an open_data
    //  hook needs it (zfed_worker_new refuses to start without).
    const void *service_data;
    //  Model services.
    int64_t hold_ms;      //  a result held by reference stays fetchable this long unless released
    uint64_t hold_bytes;  //  results held at once, bytes; 0 = no limit (beyond: 507)
    uint32_t chunk;       //  chunk size of results held by reference
    int fetch_timeout_ms; //  a chunk fetch unanswered this long is sent again
    //  Check each global against its sha256 before use (default true).  It
    //  costs about 0.7 s of CPU per GiB, hidden behind the transfer (the
    //  data is hashed in order as chunks arrive), so zfed-worker has no
    //  flag to skip it.
    bool verify;
    //  Offer compact frames in READY (default true; PROTOCOL.md 3.2): a
    //  zfed broker that accepts sends REQUESTs as one compact frame and
    //  the body, and each is answered in the form it came in.
    bool compact;
} zfed_worker_config_t;

typedef struct {
    uint64_t tasks;        //  results returned
    uint64_t errors;       //  error replies returned
    uint64_t malformed;    //  messages from the broker dropped as invalid
    uint64_t reconnects;   //  fresh sockets opened after the first
    uint64_t abandoned;    //  finished tasks whose connection was reset meanwhile
    uint64_t fetched;      //  global models fetched whole (and verified)
    uint64_t fetch_failed; //  fetches that failed or did not match their sha256
    uint64_t cache_hits;   //  tasks whose global was already here
    uint64_t held;         //  results held by reference
    uint64_t refused;      //  results over the hold budget (answered 507)
    uint64_t compact;      //  REQUESTs that came as compact frames
} zfed_worker_stats_t;

typedef struct _zfed_worker_t zfed_worker_t;

void zfed_worker_config_defaults(zfed_worker_config_t *config);

//  Raises this process's ZeroMQ socket limit (1024 by default) and its
//  open-file limit (up to the hard limit) to what config's connections and
//  threads need.  Call it first, before any ZeroMQ socket exists (czmq
//  refuses to change the socket limit later).  0, or -1 with the reason
//  logged when a limit cannot be raised that far.
int zfed_worker_raise_limits(const zfed_worker_config_t *config);

//  NULL (reason logged) on an invalid configuration, an unknown service,
//  or more connections than the process's socket limit allows.
zfed_worker_t *zfed_worker_new(const zfed_worker_config_t *config);
void zfed_worker_destroy(zfed_worker_t **self_p);

//  Serves until zsys_interrupted is set or zfed_worker_stop is called.
//  Sends DISCONNECT on every connection before returning.  0 on a clean
//  stop, -1 on a fatal error.
int zfed_worker_run(zfed_worker_t *self);

//  Asks zfed_worker_run to return; safe from any thread (a program that
//  runs workers in a thread of its own, or a test).  The run notices
//  within a quarter heartbeat interval.
void zfed_worker_stop(zfed_worker_t *self);

void zfed_worker_stats(zfed_worker_t *self, zfed_worker_stats_t *stats);

#ifdef __cplusplus
}
#endif

#endif
