/*  zfed_broker - a Majordomo (7/MDP, MDP/0.1 + 8/MMI) broker.

    One ROUTER socket serves clients and workers; one thread owns all
    state.  Requests are routed by service name to the worker that has been
    idle longest, and queue while no worker is free.  Everything the broker
    can hold is bounded by a named, configurable limit; past a limit the
    sender gets an error reply or the message is dropped and counted, and
    the broker keeps serving.

    Beyond the reference broker: a worker that dies while busy is noticed
    through heartbeats and its request goes to another worker (at most
    max_attempts dispatches per request); queued requests expire; and no
    input, however malformed, stops the loop.  Plain MDP workers, which
    send nothing while they compute, keep their request for busy_timeout_ms
    of silence; a worker that has shown it heartbeats while busy (zfed's
    do) expires after heartbeat x liveness, busy or not.

    zfed extension (interoperable): a worker may append a fifth READY frame
    "credit=N" to accept up to N requests at once.  Plain MDP workers send
    four frames and get one request at a time; plain MDP brokers ignore the
    extra frame.

    No single peer can starve or exhaust it: clients take turns within a
    service (one request each, in turn, whatever one of them has queued);
    each client may hold max_queued_per_client requests; each connection
    may send max_ready_per_connection READYs; a service that nobody serves
    and nobody waits for is forgotten at once, and one that no worker has
    ever served gives its slot to a READY when the table is full; the bytes
    held for each peer (its queued requests, the room set aside for their
    replies, and what libzmq holds for it until written) are bounded by
    max_bytes_per_peer and the total by max_bytes, a client's requests
    waiting while its budget has no room for their replies, and a peer
    whose budget (or the total) is full and that reads nothing for
    stall_timeout_ms is cut, so that what it holds goes to others; and
    connections stop being accepted at max_connections, below the
    descriptor limit, rather than spinning on EMFILE.
*/
#ifndef ZFED_BROKER_H_INCLUDED
#define ZFED_BROKER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZFED_BROKER_ENDPOINT_DEFAULT "tcp://127.0.0.1:5555"

//  Defaults of every limit (see zfed_broker_config_t).
#define ZFED_BROKER_MAX_WORKERS_DEFAULT 100000
//  More than connections can be had below the descriptor limit: READYs
//  alone (one service per connection) cannot fill it.
#define ZFED_BROKER_MAX_SERVICES_DEFAULT 65536
#define ZFED_BROKER_MAX_QUEUE_DEFAULT    1000000
//  A tenth of the whole queue: ten clients (connections) could fill it,
//  one cannot; a controller keeps --window (4,096) in the broker.
#define ZFED_BROKER_MAX_QUEUED_PER_CLIENT_DEFAULT 100000
//  A worker registers once per connection (after DISCONNECT it opens a new
//  one); a restarted one reusing its routing id needs a second READY.
#define ZFED_BROKER_MAX_READY_PER_CONNECTION_DEFAULT 4
//  Bytes held for all peers together, and for any one (its queued requests
//  plus what libzmq holds until written): room for model chunks of 4 MiB
//  in windows of 4 (16 MiB a transfer) several at a time, while one peer
//  that never reads holds at most a quarter of the whole.
#define ZFED_BROKER_MAX_BYTES_DEFAULT          (256LL << 20)
#define ZFED_BROKER_MAX_BYTES_PER_PEER_DEFAULT (64LL << 20)
//  A peer whose byte budget (or the total) is full and that has read none
//  of the bytes waiting for it in libzmq for this long is cut: it does not
//  read, and what it holds must go to those who do.  A reader, however
//  slow, frees some bytes every few seconds and is never cut.
#define ZFED_BROKER_STALL_TIMEOUT_MS_DEFAULT 10000
//  Descriptors kept for the broker itself when --max-connections is left to
//  the descriptor limit.
#define ZFED_BROKER_FD_HEADROOM             64
#define ZFED_BROKER_MAX_MESSAGE_DEFAULT     (8 << 20)
#define ZFED_BROKER_REQUEST_TTL_MS_DEFAULT  300000
#define ZFED_BROKER_MAX_ATTEMPTS_DEFAULT    3
#define ZFED_BROKER_BUSY_TIMEOUT_MS_DEFAULT 300000
#define ZFED_BROKER_HWM_DEFAULT             100000
#define ZFED_BROKER_MAX_CREDIT              256
#define ZFED_BROKER_MAX_BODY_FRAMES         4
#define ZFED_BROKER_BLOB_SERVICES_PER_KEY   1

typedef struct {
    int heartbeat_ms;       //  interval between heartbeats to workers
    int liveness;           //  intervals of silence before a worker is dead
    size_t max_workers;     //  registered workers, all services
    size_t max_services;    //  distinct service names
    size_t max_queue;       //  queued requests, all services together
    int64_t max_message;    //  bytes; larger messages cost the sender its connection
    int64_t request_ttl_ms; //  lifetime of a queued request; 0 = forever
    uint32_t max_attempts;  //  dispatches per request before it fails with 503
    //  How long a busy worker that has never heartbeated while working may
    //  stay silent (plain MDP workers send nothing while they compute);
    //  0 = no allowance, it expires after heartbeat x liveness like any.
    int64_t busy_timeout_ms;
    int hwm;                           //  ZeroMQ high-water marks on the ROUTER
    size_t max_queued_per_client;      //  requests one client may have queued or in flight
    uint32_t max_ready_per_connection; //  READYs one connection may send
    int64_t max_bytes;                 //  bytes held for all peers
    int64_t max_bytes_per_peer;        //  bytes held for one peer (at least max_message)
    //  How long a peer whose budget (or the total) is full may read nothing
    //  of what waits for it before it is cut; 0 = never.
    int64_t stall_timeout_ms;
    //  Connections open at once; 0 = the descriptor limit (RLIMIT_NOFILE)
    //  less what the broker needs for itself.
    size_t max_connections;
    //  CURVE (see zfed_broker_new): the broker's secret certificate and one
    //  directory of public certificates per role.  NULL: plaintext.
    const char *curve_cert;
    const char *workers_dir;
    const char *controllers_dir;
    //  Allow plaintext on endpoints other than loopback, ipc and inproc.
    bool insecure;
    //  Under CURVE, blob services (zfed.blob.*) a worker key may hold at
    //  once (a worker process registers one); 0 = no limit.  Controller
    //  keys have none.
    size_t max_blob_services_per_key;
    //  Compact frames on both legs (default true): accept a worker's offer
    //  of them (PROTOCOL.md 3.2: its REQUESTs and REPLYs are then one frame
    //  and the body), and take compact client requests, answered compact
    //  (3.3; mmi.status says "compact_clients").  False: MDP/0.1 only.
    bool compact;
} zfed_broker_config_t;

//  Counters, for logs, tests and the status service.
typedef struct {
    uint64_t requests;         //  client requests accepted into a queue
    uint64_t dispatched;       //  REQUESTs sent to workers (includes re-dispatches)
    uint64_t replies;          //  replies delivered to clients
    uint64_t redispatched;     //  requests re-queued after their worker died
    uint64_t failed;           //  requests answered with an error (expired, attempts, full)
    uint64_t expired;          //  of which: waited past request_ttl_ms
    uint64_t rejected;         //  of which: refused because a limit was reached
    uint64_t malformed;        //  messages dropped as invalid
    uint64_t unexpected;       //  valid but unexpected worker commands (answered by DISCONNECT)
    uint64_t stale_replies;    //  replies for requests the worker no longer holds
    uint64_t unroutable;       //  messages ROUTER could not deliver (peer gone or full)
    uint64_t mmi;              //  8/MMI requests answered
    uint64_t forbidden;        //  messages a peer's role does not allow (CURVE)
    uint64_t workers_ready;    //  READY accepted
    uint64_t workers_expired;  //  workers dropped for silence, or because their connection closed
    uint64_t workers_left;     //  workers that sent DISCONNECT
    size_t workers;            //  registered now
    size_t services;           //  known now
    size_t queued;             //  waiting for a worker now
    size_t in_flight;          //  held by workers now
    uint64_t quota_refused;    //  of rejected: the client's max_queued_per_client
    uint64_t budget_refused;   //  of rejected: the byte budget (the client's or the total)
    uint64_t ready_refused;    //  of rejected: READYs past max_ready_per_connection
    uint64_t replies_dropped;  //  replies not forwarded: the client's byte budget was full
    uint64_t held_back;        //  times a client's queue waited for room in its byte budget
    uint64_t services_evicted; //  services no worker ever served, evicted for a READY
    uint64_t revoked;          //  connections cut because their key lost a role
    uint64_t stalled_cut;      //  connections cut because they read nothing (stall_timeout_ms)
    size_t peers;              //  connections the broker keeps state for now
    int64_t bytes_held;        //  bytes held for peers now (queued and in libzmq)
    int64_t bytes_peak;        //  the most ever held at once
    uint64_t workers_compact;  //  READYs accepted with compact frames (PROTOCOL.md 3.2)
    uint64_t compact_requests; //  client requests (MMI too) that came compact (PROTOCOL.md 3.3)
} zfed_broker_stats_t;

typedef struct _zfed_broker_t zfed_broker_t;

void zfed_broker_config_defaults(zfed_broker_config_t *config);
//  The bytes the largest reply costs a client's budget (ZFED_BROKER_MAX_BODY_FRAMES
//  frames of max_message, and the overhead): max_bytes_per_peer must hold it.
int64_t zfed_broker_largest_reply(int64_t max_message);

//  NULL on invalid configuration or failure to create the socket.  With
//  curve_cert, the ZAP handler (zfed_auth) starts before anything can bind,
//  and every message is checked against its sender's role: only worker
//  keys may speak MDPW01, only controller keys may send requests (8/MMI
//  queries are open to both).
zfed_broker_t *zfed_broker_new(const zfed_broker_config_t *config);
void zfed_broker_destroy(zfed_broker_t **self_p);

//  Binds one more endpoint ("tcp://127.0.0.1:*" picks a free port).
//  Returns 0, or -1 with the reason logged.  The endpoint actually bound
//  is then in zfed_broker_endpoint(self, index).  Secure by default: a
//  plaintext broker refuses endpoints beyond this host (anything but
//  loopback TCP, ipc and inproc) unless config.insecure is set.
int zfed_broker_bind(zfed_broker_t *self, const char *endpoint);
const char *zfed_broker_endpoint(zfed_broker_t *self, size_t index);
size_t zfed_broker_endpoints(zfed_broker_t *self);

//  Serves until SIGINT or SIGTERM (zfed_signal_install, or czmq's own
//  handler).  Returns 0 on a clean stop, -1 on a fatal socket error.  (To
//  run a broker in a thread of a bigger program, libzfed's own tests use
//  the private lib/broker/zfed_broker_actor.h.)
int zfed_broker_run(zfed_broker_t *self);

void zfed_broker_stats(zfed_broker_t *self, zfed_broker_stats_t *stats);

//  True for endpoints that stay on this host: tcp on a loopback address
//  or "localhost", ipc, inproc.
bool zfed_endpoint_is_local(const char *endpoint);

#ifdef __cplusplus
}
#endif

#endif
