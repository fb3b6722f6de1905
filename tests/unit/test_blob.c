/*  test_blob - the blob server and the fetcher, through a real broker
    (the broker actor, in-process, on inproc:// endpoints).

    One test loop drives both the way their owners do: poll their sockets,
    handle what is readable, tick when due, take the fetcher's events.
    Peers that misbehave are raw DEALER sockets speaking MDP by hand: a
    holder that forges replies, one that answers 429, one that is killed
    mid-transfer.  Nothing sleeps a fixed time: every wait polls for its
    condition with a generous timeout.
*/
#include "zfed/zfed_blob_server.h"
#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_fetcher.h"
#include "zfed/zfed_model.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_sha256.h"
#include "zfed/zfed_transfer.h"
#include "zfed/zfed_util.h"
#include "zfed_test.h"
#include "zfed_test_mdp.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#define HEARTBEAT 100
#define CHUNK     ZFED_CHUNK_MIN
//  Just over the inline limit: the smallest model that travels by reference.
#define MODEL_BYTES (ZFED_MODEL_INLINE_MAX + 3 * CHUNK + 100)
#define CHUNKS      ((MODEL_BYTES + CHUNK - 1) / CHUNK)

typedef struct {
    zfed_blob_server_t *server; //  may be NULL
    zfed_fetcher_t *fetcher;
    uint8_t *out; //  chunks land here
    size_t out_size;
    bool keep; //  hold chunks instead of destroying them
    zfed_chunk_t *held[ZFED_FETCH_WINDOW_MAX];
    size_t held_count;
    uint64_t chunks; //  chunk events
    uint64_t first_index;
    int whole;
    int failed;
    char reason[256];
    int released;
    bool release_ok;
    uint32_t release_count;
} rig_t;

static void s_event(rig_t *rig, zfed_fetch_event_t *event)
{
    switch (event->kind) {
    case ZFED_FETCH_EVENT_CHUNK: {
        zfed_chunk_t *chunk = event->chunk;
        if (rig->chunks == 0)
            rig->first_index = zfed_chunk_index(chunk);
        rig->chunks++;
        uint64_t offset = zfed_chunk_offset(chunk);
        if (rig->out && offset + zfed_chunk_size(chunk) <= rig->out_size)
            memcpy(rig->out + offset, zfed_chunk_data(chunk), zfed_chunk_size(chunk));
        if (rig->keep && rig->held_count < ZFED_FETCH_WINDOW_MAX)
            rig->held[rig->held_count++] = chunk;
        else
            zfed_chunk_destroy(&chunk);
        break;
    }
    case ZFED_FETCH_EVENT_WHOLE:
        rig->whole++;
        break;
    case ZFED_FETCH_EVENT_FAILED:
        rig->failed++;
        snprintf(rig->reason, sizeof rig->reason, "%s", event->reason);
        break;
    case ZFED_FETCH_EVENT_RELEASED:
        rig->released++;
        rig->release_ok = event->ok;
        rig->release_count = event->count;
        break;
    }
}

//  One turn of the owners' loop, waiting at most wait_ms.
static void s_turn(rig_t *rig, int64_t wait_ms)
{
    zmq_pollitem_t items[2];
    int count = 0;
    void *server_socket = rig->server ? zfed_blob_server_socket(rig->server) : NULL;
    if (server_socket)
        items[count++] = (zmq_pollitem_t){server_socket, 0, ZMQ_POLLIN, 0};
    if (rig->fetcher)
        items[count++] = (zmq_pollitem_t){zfed_fetcher_socket(rig->fetcher), 0, ZMQ_POLLIN, 0};
    int64_t now = zfed_clock_ms();
    int64_t due = rig->fetcher ? zfed_fetcher_next_due(rig->fetcher) : INT64_MAX;
    if (rig->server && zfed_blob_server_next_due(rig->server) < due)
        due = zfed_blob_server_next_due(rig->server);
    int64_t wait = due - now < wait_ms ? due - now : wait_ms;
    zmq_poll(items, count, (long)(wait > 0 ? wait : 0));
    if (server_socket && (items[0].revents & ZMQ_POLLIN))
        zfed_blob_server_handle(rig->server);
    now = zfed_clock_ms();
    if (rig->server && now >= zfed_blob_server_next_due(rig->server))
        zfed_blob_server_tick(rig->server, now);
    if (!rig->fetcher)
        return;
    if (items[count - 1].revents & ZMQ_POLLIN)
        zfed_fetcher_handle(rig->fetcher);
    if (now >= zfed_fetcher_next_due(rig->fetcher))
        zfed_fetcher_tick(rig->fetcher, now);
    zfed_fetch_event_t event;
    while (zfed_fetcher_next(rig->fetcher, &event))
        s_event(rig, &event);
}

//  Turns until condition holds or the test's wait is over.
#define s_pump_until(rig, condition)                                                               \
    ({                                                                                             \
        int64_t until_ = zfed_clock_ms() + ZFED_TEST_WAIT_MS;                                      \
        while (!(condition) && zfed_clock_ms() < until_)                                           \
            s_turn((rig), 20);                                                                     \
        (condition);                                                                               \
    })

//  Turns for about ms, whatever happens (to see that nothing more does).
static void s_pump_for(rig_t *rig, int64_t ms)
{
    int64_t until = zfed_clock_ms() + ms;
    while (zfed_clock_ms() < until)
        s_turn(rig, 10);
}

static zactor_t *s_broker(char *endpoint, size_t size, const char *what, int64_t ttl_ms)
{
    zfed_test_endpoint(endpoint, size, what);
    zfed_broker_config_t config;
    zfed_broker_config_defaults(&config);
    config.heartbeat_ms = HEARTBEAT;
    config.liveness = 20;
    if (ttl_ms > 0)
        config.request_ttl_ms = ttl_ms;
    return zfed_test_broker_start(&config, endpoint);
}

static zfed_blob_server_t *s_server(const char *endpoint, uint64_t hold_bytes)
{
    zfed_blob_server_config_t config;
    zfed_blob_server_config_defaults(&config);
    config.endpoint = endpoint;
    config.heartbeat_ms = HEARTBEAT;
    config.liveness = 20;
    config.hold_bytes = hold_bytes;
    return zfed_blob_server_new(&config);
}

static zfed_fetcher_t *s_fetcher(const char *endpoint, int timeout_ms, unsigned resends)
{
    zfed_fetcher_config_t config;
    zfed_fetcher_config_defaults(&config);
    config.endpoint = endpoint;
    if (timeout_ms > 0)
        config.timeout_ms = timeout_ms;
    config.resends = resends;
    return zfed_fetcher_new(&config);
}

//  A U8 model of MODEL_BYTES bytes of a pattern drawn from seed.
static zfed_model_t *s_model(uint32_t seed)
{
    zfed_layout_t *layout = zfed_layout_new();
    uint64_t shape[1] = {MODEL_BYTES};
    char error[128];
    if (!layout || zfed_layout_add(layout, "w", ZFED_DTYPE_U8, shape, 1, error, sizeof error) != 0)
        return NULL;
    zfed_model_t *model = zfed_model_new(&layout);
    uint8_t *bytes = model ? zfed_model_data(model) : NULL;
    for (size_t index = 0; bytes && index < MODEL_BYTES; index++) {
        seed = seed * 1103515245u + 12345u;
        bytes[index] = (uint8_t)(seed >> 16);
    }
    zfed_layout_destroy(&layout);
    return model;
}

static void s_descriptor(zfed_descriptor_t *d, const zfed_model_t *model, const uint8_t *id,
                         const char *source)
{
    char reason[256];
    int rc = zfed_descriptor_set(d, id, NULL, zfed_model_layout(model), CHUNK, source,
                                 ZFED_DESCRIPTOR_RESULT, reason, sizeof reason);
    if (rc != 0)
        fprintf(stderr, "descriptor: %s\n", reason);
    REQUIRE(rc == 0);
}

//  The server is registered when the broker has a worker for its name.
static bool s_registered(zactor_t *broker, size_t workers)
{
    return zfed_test_broker_wait(broker, workers, workers);
}

//  A broker (request TTL ttl_ms, 0: the default) and, on it, a blob
//  server with a hold budget and a fetcher, the server registered.
static zactor_t *s_start(rig_t *rig, char *endpoint, size_t size, const char *what, int64_t ttl_ms,
                         uint64_t hold_bytes)
{
    zactor_t *broker = s_broker(endpoint, size, what, ttl_ms);
    REQUIRE(broker);
    rig->server = s_server(endpoint, hold_bytes);
    rig->fetcher = s_fetcher(endpoint, 0, 3);
    REQUIRE(rig->server && rig->fetcher);
    REQUIRE(s_registered(broker, 1));
    return broker;
}

static void s_stop(rig_t *rig, zactor_t **broker_p)
{
    zfed_fetcher_destroy(&rig->fetcher);
    zfed_blob_server_destroy(&rig->server);
    zactor_destroy(broker_p);
}

static void s_test_fetch_whole_model(void)
{
    char endpoint[128];
    rig_t rig = {0};
    zactor_t *broker = s_start(&rig, endpoint, sizeof endpoint, "blob-whole", 0, 0);
    zfed_model_t *model = s_model(7);
    REQUIRE(model);
    uint8_t id[ZFED_MODEL_ID_SIZE];
    REQUIRE(zfed_sha256(zfed_model_data(model), MODEL_BYTES, id) == 0);
    uint8_t *expected = malloc(MODEL_BYTES);
    memcpy(expected, zfed_model_data(model), MODEL_BYTES);
    zfed_descriptor_t d;
    s_descriptor(&d, model, id, zfed_blob_server_service(rig.server));
    char reason[256];
    zfed_model_t *taken = model;
    REQUIRE(zfed_blob_server_hold(rig.server, id, &taken, CHUNK, ZFED_HOLD_DEFAULT, reason,
                                  sizeof reason) == 0);
    CHECK(taken == NULL);
    CHECK(zfed_blob_server_holds(rig.server, id));
    //  The same id twice is refused, and the model stays the caller's.
    zfed_model_t *again = s_model(7);
    CHECK(zfed_blob_server_hold(rig.server, id, &again, CHUNK, ZFED_HOLD_DEFAULT, reason,
                                sizeof reason) != 0);
    CHECK(again != NULL);
    zfed_model_destroy(&again);

    rig.out = calloc(1, MODEL_BYTES);
    rig.out_size = MODEL_BYTES;
    int user = 42;
    zfed_fetch_t *fetch = zfed_fetcher_start(rig.fetcher, &d, 0, &user, reason, sizeof reason);
    REQUIRE(fetch);
    CHECK(zfed_fetch_user(fetch) == &user);
    //  One transfer per id at a time.
    CHECK(zfed_fetcher_start(rig.fetcher, &d, 0, NULL, reason, sizeof reason) == NULL);
    CHECK(s_pump_until(&rig, rig.whole == 1));
    CHECK_INT(rig.failed, 0);
    CHECK_INT(rig.chunks, CHUNKS);
    CHECK_INT(zfed_fetch_received(fetch), CHUNKS);
    CHECK(zfed_fetch_state(fetch) == ZFED_FETCH_WHOLE);
    CHECK(memcmp(rig.out, expected, MODEL_BYTES) == 0);
    zfed_fetcher_stats_t stats;
    zfed_fetcher_stats(rig.fetcher, &stats);
    CHECK_INT(stats.chunks, CHUNKS);
    CHECK_INT(stats.bytes, MODEL_BYTES);
    CHECK_INT(stats.fetches, CHUNKS);
    CHECK_INT(stats.dropped, 0);
    CHECK_INT(stats.transfers, 0);
    zfed_blob_server_stats_t served;
    zfed_blob_server_stats(rig.server, &served);
    CHECK_INT(served.chunks, CHUNKS);
    CHECK_INT(served.bytes, MODEL_BYTES);
    CHECK_INT(served.entries, 1);
    CHECK_INT(served.held_bytes, MODEL_BYTES);
    zfed_fetch_destroy(&fetch);
    CHECK(fetch == NULL);

    //  Again from chunk 5, as a pass that starts over would.
    memset(rig.out, 0, MODEL_BYTES);
    rig.whole = 0;
    rig.chunks = 0;
    fetch = zfed_fetcher_start(rig.fetcher, &d, 5, NULL, reason, sizeof reason);
    REQUIRE(fetch);
    CHECK(s_pump_until(&rig, rig.whole == 1));
    CHECK_INT(rig.chunks, CHUNKS - 5);
    CHECK_INT(rig.first_index, 5);
    CHECK(memcmp(rig.out + 5 * CHUNK, expected + 5 * CHUNK, MODEL_BYTES - 5 * CHUNK) == 0);
    CHECK(rig.out[0] == 0);
    zfed_fetch_destroy(&fetch);

    //  Released: the first release finds it, the second not; then 404.
    REQUIRE(zfed_fetcher_release(rig.fetcher, zfed_blob_server_service(rig.server),
                                 (const uint8_t(*)[ZFED_MODEL_ID_SIZE])id, 1, NULL) == 0);
    CHECK(s_pump_until(&rig, rig.released == 1));
    CHECK(rig.release_ok && rig.release_count == 1);
    REQUIRE(zfed_fetcher_release(rig.fetcher, zfed_blob_server_service(rig.server),
                                 (const uint8_t(*)[ZFED_MODEL_ID_SIZE])id, 1, NULL) == 0);
    CHECK(s_pump_until(&rig, rig.released == 2));
    CHECK(rig.release_ok && rig.release_count == 0);
    CHECK(!zfed_blob_server_holds(rig.server, id));
    fetch = zfed_fetcher_start(rig.fetcher, &d, 0, NULL, reason, sizeof reason);
    REQUIRE(fetch);
    CHECK(s_pump_until(&rig, rig.failed == 1));
    CHECK(strstr(rig.reason, "404") != NULL);
    CHECK(zfed_fetch_state(fetch) == ZFED_FETCH_FAILED);
    CHECK(strstr(zfed_fetch_error(fetch), "404") != NULL);
    zfed_fetch_destroy(&fetch);
    zfed_blob_server_stats(rig.server, &served);
    CHECK_INT(served.released, 1);
    CHECK_INT(served.unknown, ZFED_FETCH_WINDOW_DEFAULT); //  the whole first window
    CHECK_INT(served.entries, 0);
    CHECK_INT(served.held_bytes, 0);

    zfed_descriptor_clear(&d);
    free(rig.out);
    free(expected);
    s_stop(&rig, &broker);
}

//  The window counts chunks the owner holds: with all four held, nothing
//  more is fetched; each one given back lets one more come.
static void s_test_window_bounds_chunks_in_hand(void)
{
    char endpoint[128];
    rig_t rig = {0};
    zactor_t *broker = s_start(&rig, endpoint, sizeof endpoint, "blob-window", 0, 0);
    zfed_model_t *model = s_model(3);
    uint8_t id[ZFED_MODEL_ID_SIZE] = {9, 9, 9};
    zfed_descriptor_t d;
    s_descriptor(&d, model, id, zfed_blob_server_service(rig.server));
    char reason[256];
    REQUIRE(zfed_blob_server_hold(rig.server, id, &model, CHUNK, ZFED_HOLD_FOREVER, reason,
                                  sizeof reason) == 0);
    rig.keep = true;
    zfed_fetch_t *fetch = zfed_fetcher_start(rig.fetcher, &d, 0, NULL, reason, sizeof reason);
    REQUIRE(fetch);
    CHECK(s_pump_until(&rig, rig.chunks == ZFED_FETCH_WINDOW_DEFAULT));
    s_pump_for(&rig, 200);
    CHECK_INT(rig.chunks, ZFED_FETCH_WINDOW_DEFAULT);
    zfed_fetcher_stats_t stats;
    zfed_fetcher_stats(rig.fetcher, &stats);
    CHECK_INT(stats.fetches, ZFED_FETCH_WINDOW_DEFAULT);
    zfed_chunk_destroy(&rig.held[0]);
    CHECK(s_pump_until(&rig, rig.chunks == ZFED_FETCH_WINDOW_DEFAULT + 1));
    s_pump_for(&rig, 100);
    CHECK_INT(rig.chunks, ZFED_FETCH_WINDOW_DEFAULT + 1);
    //  Cancelled with chunks in hand: they stay readable until destroyed.
    zfed_fetch_destroy(&fetch);
    for (size_t index = 1; index < rig.held_count; index++) {
        CHECK(zfed_chunk_size(rig.held[index]) == CHUNK);
        zfed_chunk_destroy(&rig.held[index]);
    }
    //  The fetcher can go before the chunks the owner holds, too.
    rig.held_count = 0;
    fetch = zfed_fetcher_start(rig.fetcher, &d, 0, NULL, reason, sizeof reason);
    REQUIRE(fetch);
    CHECK(s_pump_until(&rig, rig.held_count == ZFED_FETCH_WINDOW_DEFAULT));
    zfed_fetcher_destroy(&rig.fetcher);
    CHECK(zfed_chunk_index(rig.held[0]) < ZFED_FETCH_WINDOW_DEFAULT);
    for (size_t index = 0; index < rig.held_count; index++)
        zfed_chunk_destroy(&rig.held[index]);
    zfed_fetch_destroy(&fetch);
    zfed_descriptor_clear(&d);
    zfed_blob_server_destroy(&rig.server);
    zactor_destroy(&broker);
}

static void s_test_unknown_service_and_id(void)
{
    char endpoint[128];
    rig_t rig = {0};
    zactor_t *broker = s_start(&rig, endpoint, sizeof endpoint, "blob-unknown", 300, 0);
    zfed_model_t *model = s_model(1);
    uint8_t id[ZFED_MODEL_ID_SIZE] = {1};
    zfed_descriptor_t d;
    char reason[256];
    //  An id the server never held: 404.
    s_descriptor(&d, model, id, zfed_blob_server_service(rig.server));
    zfed_fetch_t *fetch = zfed_fetcher_start(rig.fetcher, &d, 0, NULL, reason, sizeof reason);
    REQUIRE(fetch);
    CHECK(s_pump_until(&rig, rig.failed == 1));
    CHECK(strstr(rig.reason, "404") && strstr(rig.reason, "no model with this id here"));
    zfed_fetch_destroy(&fetch);
    zfed_descriptor_clear(&d);
    //  A service nobody registered: the broker's 504 after its TTL fails it.
    char nobody[ZFED_BLOB_SERVICE_SIZE];
    REQUIRE(zfed_blob_service_random(nobody) == 0);
    s_descriptor(&d, model, id, nobody);
    fetch = zfed_fetcher_start(rig.fetcher, &d, 0, NULL, reason, sizeof reason);
    REQUIRE(fetch);
    CHECK(s_pump_until(&rig, rig.failed == 2));
    CHECK(strstr(rig.reason, "504") != NULL);
    zfed_fetch_destroy(&fetch);
    //  A release to nobody: given up, not a crash.
    REQUIRE(zfed_fetcher_release(rig.fetcher, nobody, (const uint8_t(*)[ZFED_MODEL_ID_SIZE])id, 1,
                                 NULL) == 0);
    CHECK(s_pump_until(&rig, rig.released == 1));
    CHECK(!rig.release_ok);
    //  An inline descriptor is not fetched.
    zfed_descriptor_clear(&d);
    zfed_layout_t *small = zfed_layout_new();
    uint64_t shape[1] = {8};
    REQUIRE(zfed_layout_add(small, "w", ZFED_DTYPE_U8, shape, 1, reason, sizeof reason) == 0);
    REQUIRE(zfed_descriptor_set(&d, id, NULL, small, CHUNK, "", ZFED_DESCRIPTOR_RESULT, reason,
                                sizeof reason) == 0);
    CHECK(zfed_fetcher_start(rig.fetcher, &d, 0, NULL, reason, sizeof reason) == NULL);
    zfed_layout_destroy(&small);
    zfed_descriptor_clear(&d);
    zfed_model_destroy(&model);
    s_stop(&rig, &broker);
}

//  What the server answers to fetches the fetcher would never send.
static void s_test_server_refusals(void)
{
    char endpoint[128];
    rig_t rig = {0};
    zactor_t *broker = s_start(&rig, endpoint, sizeof endpoint, "blob-refuse", 0, 0);
    zfed_model_t *model = s_model(5);
    uint8_t id[ZFED_MODEL_ID_SIZE] = {5};
    char reason[256];
    REQUIRE(zfed_blob_server_hold(rig.server, id, &model, CHUNK, ZFED_HOLD_DEFAULT, reason,
                                  sizeof reason) == 0);
    zsock_t *client = zfed_test_dealer(endpoint);
    REQUIRE(client);
    const char *service = zfed_blob_server_service(rig.server);
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    struct {
        const char *what;
        uint32_t code;
        int body_frames;
    } cases[] = {{"index past the end", ZFED_CHUNK_OUT_OF_RANGE, 1},
                 {"garbage", ZFED_CHUNK_MALFORMED, 1},
                 {"two frames", ZFED_CHUNK_MALFORMED, 2},
                 {"a chunk, not a fetch", ZFED_CHUNK_MALFORMED, 1}};
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        if (index == 0)
            zfed_transfer_encode_fetch(&body, id, CHUNKS);
        else if (index == 3)
            zfed_transfer_encode_chunk(&body, id, 0, 200, "");
        else {
            msgpack_sbuffer_clear(&body);
            msgpack_sbuffer_write(&body, "\x93\xc1\x01\x02", 4);
        }
        const void *frames[2] = {body.data, "extra"};
        size_t sizes[2] = {body.size, 5};
        REQUIRE(zfed_test_send_request(client, service, frames, sizes, cases[index].body_frames) ==
                0);
        zmsg_t *reply = NULL;
        int64_t until = zfed_clock_ms() + ZFED_TEST_WAIT_MS;
        while (!reply && zfed_clock_ms() < until) {
            s_turn(&rig, 10);
            zmq_pollitem_t item = {zsock_resolve(client), 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&item, 1, 0) == 1)
                reply = zmsg_recv(client);
        }
        REQUIRE(reply);
        CHECK_INT(zmsg_size(reply), 4); //  "" MDPC01 service body: no data frame
        zframe_t *frame = zfed_test_frame(reply, 3);
        zfed_transfer_t chunk;
        REQUIRE(zfed_transfer_decode(zframe_data(frame), zframe_size(frame), &chunk, reason,
                                     sizeof reason) == 0);
        if (chunk.code != cases[index].code)
            fprintf(stderr, "%s: got %u\n", cases[index].what, chunk.code);
        CHECK_INT(chunk.code, cases[index].code);
        zmsg_destroy(&reply);
    }
    zfed_blob_server_stats_t stats;
    zfed_blob_server_stats(rig.server, &stats);
    CHECK_INT(stats.out_of_range, 1);
    CHECK_INT(stats.malformed, 3);
    msgpack_sbuffer_destroy(&body);
    zsock_destroy(&client);
    s_stop(&rig, &broker);
}

//  A holder that answers each fetch by hand, as scripted.
typedef enum { FORGE_ID, FORGE_INDEX, FORGE_LENGTH, FORGE_NO_DATA, BUSY, HONEST } answer_t;

static void s_answer(zsock_t *holder, zmsg_t *request, answer_t how)
{
    zframe_t *body = zfed_test_frame(request, 5);
    zfed_transfer_t fetch;
    char reason[256];
    REQUIRE(zfed_transfer_decode(zframe_data(body), zframe_size(body), &fetch, reason,
                                 sizeof reason) == 0);
    REQUIRE(fetch.kind == ZFED_TRANSFER_FETCH);
    uint64_t offset;
    size_t length;
    REQUIRE(zfed_chunk_range(MODEL_BYTES, CHUNK, fetch.index, &offset, &length) == 0);
    if (how == FORGE_ID)
        fetch.id[0] ^= 1;
    uint32_t index = how == FORGE_INDEX ? fetch.index + 1 : fetch.index;
    msgpack_sbuffer reply;
    msgpack_sbuffer_init(&reply);
    zfed_transfer_encode_chunk(&reply, fetch.id, index, how == BUSY ? 429 : 200, "");
    uint8_t *data = calloc(1, length + 1);
    memset(data, (int)(fetch.index & 0xff), length);
    const void *frames[2] = {reply.data, data};
    size_t sizes[2] = {reply.size, how == FORGE_LENGTH ? length - 1 : length};
    REQUIRE(zfed_test_send_reply(holder, request, frames, sizes,
                                 how == BUSY || how == FORGE_NO_DATA ? 1 : 2) == 0);
    free(data);
    msgpack_sbuffer_destroy(&reply);
}

static zmsg_t *s_next_request(rig_t *rig, zsock_t *holder)
{
    int64_t until = zfed_clock_ms() + ZFED_TEST_WAIT_MS;
    while (zfed_clock_ms() < until) {
        s_turn(rig, 5);
        zmq_pollitem_t item = {zsock_resolve(holder), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 0) != 1)
            continue;
        zmsg_t *message = zmsg_recv(holder);
        if (message && zmsg_size(message) >= 6 && zfed_test_frame_is(message, 2, "\002", 1))
            return message;
        zmsg_destroy(&message);
    }
    return NULL;
}

static void s_test_forged_and_busy_replies(void)
{
    char endpoint[128];
    zactor_t *broker = s_broker(endpoint, sizeof endpoint, "blob-forge", 0);
    REQUIRE(broker);
    char service[ZFED_BLOB_SERVICE_SIZE];
    REQUIRE(zfed_blob_service_random(service) == 0);
    zsock_t *holder = zfed_test_worker(endpoint, service, NULL);
    REQUIRE(holder);
    REQUIRE(s_registered(broker, 1));
    //  A short timeout: the forged replies leave their fetches unanswered.
    rig_t rig = {.fetcher = s_fetcher(endpoint, 150, 10)};
    REQUIRE(rig.fetcher);
    zfed_model_t *model = s_model(0);
    uint8_t id[ZFED_MODEL_ID_SIZE] = {7};
    zfed_descriptor_t d;
    s_descriptor(&d, model, id, service);
    rig.out = calloc(1, MODEL_BYTES);
    rig.out_size = MODEL_BYTES;
    char reason[256];
    zfed_fetch_t *fetch =
        zfed_fetcher_start(rig.fetcher, &d, CHUNKS - 1, NULL, reason, sizeof reason);
    REQUIRE(fetch);
    answer_t script[] = {FORGE_ID, FORGE_INDEX, FORGE_LENGTH, FORGE_NO_DATA, BUSY, HONEST};
    for (size_t step = 0; step < sizeof script / sizeof script[0]; step++) {
        zmsg_t *request = s_next_request(&rig, holder);
        REQUIRE(request);
        s_answer(holder, request, script[step]);
        zmsg_destroy(&request);
        if (script[step] != HONEST)
            CHECK_INT(rig.chunks, 0); //  nothing forged is ever handed over
    }
    CHECK(s_pump_until(&rig, rig.whole == 1));
    CHECK_INT(rig.chunks, 1);
    CHECK(rig.out[(CHUNKS - 1) * CHUNK] == (uint8_t)((CHUNKS - 1) & 0xff));
    zfed_fetcher_stats_t stats;
    zfed_fetcher_stats(rig.fetcher, &stats);
    CHECK_INT(stats.dropped, 4);
    CHECK_INT(stats.busy, 1);
    CHECK(stats.resent >= 3);
    zfed_fetch_destroy(&fetch);

    //  A holder that stops answering: the fetch fails after its resends.
    fetch = zfed_fetcher_start(rig.fetcher, &d, CHUNKS - 1, NULL, reason, sizeof reason);
    REQUIRE(fetch);
    CHECK(s_pump_until(&rig, rig.failed == 1));
    CHECK(strstr(rig.reason, "unanswered after 11 sends") != NULL);
    zfed_fetch_destroy(&fetch);
    zfed_descriptor_clear(&d);
    zfed_model_destroy(&model);
    free(rig.out);
    zsock_destroy(&holder);
    zfed_fetcher_destroy(&rig.fetcher);
    zactor_destroy(&broker);
}

//  The holder dies with fetches in flight (its socket closed without a
//  word): the broker loses its worker, the fetch fails, never a torn model.
static void s_test_server_dies_mid_transfer(void)
{
    char endpoint[128];
    zactor_t *broker = s_broker(endpoint, sizeof endpoint, "blob-dies", 500);
    REQUIRE(broker);
    char service[ZFED_BLOB_SERVICE_SIZE];
    REQUIRE(zfed_blob_service_random(service) == 0);
    zsock_t *holder = zfed_test_worker(endpoint, service, "credit=4");
    REQUIRE(holder);
    REQUIRE(s_registered(broker, 1));
    rig_t rig = {.fetcher = s_fetcher(endpoint, 400, 2)};
    REQUIRE(rig.fetcher);
    zfed_model_t *model = s_model(0);
    uint8_t id[ZFED_MODEL_ID_SIZE] = {8};
    zfed_descriptor_t d;
    s_descriptor(&d, model, id, service);
    char reason[256];
    zfed_fetch_t *fetch = zfed_fetcher_start(rig.fetcher, &d, 0, NULL, reason, sizeof reason);
    REQUIRE(fetch);
    for (int step = 0; step < 2; step++) {
        zmsg_t *request = s_next_request(&rig, holder);
        REQUIRE(request);
        s_answer(holder, request, HONEST);
        zmsg_destroy(&request);
    }
    CHECK(s_pump_until(&rig, rig.chunks == 2));
    zsock_destroy(&holder); //  killed: no DISCONNECT
    CHECK(s_pump_until(&rig, rig.failed == 1));
    CHECK(rig.whole == 0);
    CHECK(zfed_fetch_state(fetch) == ZFED_FETCH_FAILED);
    CHECK(zfed_fetch_received(fetch) < zfed_fetch_chunks(fetch));
    zfed_fetch_destroy(&fetch);
    zfed_descriptor_clear(&d);
    zfed_model_destroy(&model);
    zfed_fetcher_destroy(&rig.fetcher);
    zactor_destroy(&broker);
}

//  Entries read on demand, hold time, hold budget.
typedef struct {
    int reads;
    bool fail;
    bool closed;
} reader_t;

static int s_read(void *reader_, uint64_t offset, void *buffer, size_t size, char *error,
                  size_t error_size)
{
    reader_t *reader = reader_;
    reader->reads++;
    if (reader->fail) {
        snprintf(error, error_size, "the disk is gone");
        return -1;
    }
    for (size_t index = 0; index < size; index++)
        ((uint8_t *)buffer)[index] = (uint8_t)((offset + index) * 31);
    return 0;
}

static void s_close(void *reader_)
{
    ((reader_t *)reader_)->closed = true;
}

static void s_test_readers_expiry_budget(void)
{
    char endpoint[128];
    rig_t rig = {0};
    zactor_t *broker = s_start(&rig, endpoint, sizeof endpoint, "blob-reader", 0, MODEL_BYTES + 1);
    const char *service = zfed_blob_server_service(rig.server);
    reader_t reader = {0};
    uint8_t id[ZFED_MODEL_ID_SIZE] = {3};
    char reason[256];
    REQUIRE(zfed_blob_server_hold_reader(rig.server, id, MODEL_BYTES, CHUNK, s_read, s_close,
                                         &reader, ZFED_HOLD_FOREVER, reason, sizeof reason) == 0);
    zfed_model_t *model = s_model(0);
    zfed_descriptor_t d;
    s_descriptor(&d, model, id, service);
    rig.out = calloc(1, MODEL_BYTES);
    rig.out_size = MODEL_BYTES;
    zfed_fetch_t *fetch = zfed_fetcher_start(rig.fetcher, &d, 0, NULL, reason, sizeof reason);
    REQUIRE(fetch);
    CHECK(s_pump_until(&rig, rig.whole == 1));
    CHECK_INT(reader.reads, CHUNKS);
    bool same = true;
    for (size_t index = 0; index < MODEL_BYTES; index++)
        same &= rig.out[index] == (uint8_t)(index * 31);
    CHECK(same);
    zfed_fetch_destroy(&fetch);
    //  A reader that fails drops its entry: 404, closed.
    reader.fail = true;
    fetch = zfed_fetcher_start(rig.fetcher, &d, 0, NULL, reason, sizeof reason);
    CHECK(s_pump_until(&rig, rig.failed == 1));
    CHECK(strstr(rig.reason, "the disk is gone") != NULL);
    CHECK(reader.closed);
    CHECK(!zfed_blob_server_holds(rig.server, id));
    zfed_fetch_destroy(&fetch);

    //  The budget: one model fits, a second does not (and stays ours).
    zfed_model_t *second = s_model(1);
    uint8_t other[ZFED_MODEL_ID_SIZE] = {4};
    CHECK(zfed_blob_server_fits(rig.server, MODEL_BYTES));
    REQUIRE(zfed_blob_server_hold(rig.server, id, &model, CHUNK, 50, reason, sizeof reason) == 0);
    CHECK(!zfed_blob_server_fits(rig.server, MODEL_BYTES));
    CHECK(zfed_blob_server_hold(rig.server, other, &second, CHUNK, ZFED_HOLD_DEFAULT, reason,
                                sizeof reason) != 0);
    CHECK(strstr(reason, "hold budget") != NULL);
    CHECK(second != NULL);
    //  Held for 50 ms: then gone, and the budget has room again.
    CHECK(s_pump_until(&rig, !zfed_blob_server_holds(rig.server, id)));
    zfed_blob_server_stats_t stats;
    zfed_blob_server_stats(rig.server, &stats);
    CHECK_INT(stats.expired, 1);
    CHECK_INT(stats.held_bytes, 0);
    CHECK(zfed_blob_server_hold(rig.server, other, &second, CHUNK, ZFED_HOLD_DEFAULT, reason,
                                sizeof reason) == 0);
    zfed_descriptor_clear(&d);
    free(rig.out);
    s_stop(&rig, &broker);
}

//  The broker goes away and comes back: the server notices the silence,
//  registers again on a fresh socket and serves.
static void s_test_server_reconnects(void)
{
    char endpoint[128];
    zactor_t *broker = s_broker(endpoint, sizeof endpoint, "blob-again", 0);
    REQUIRE(broker);
    zfed_blob_server_config_t config;
    zfed_blob_server_config_defaults(&config);
    config.endpoint = endpoint;
    config.heartbeat_ms = 50;
    config.liveness = 3;
    config.reconnect_ms = 20;
    config.reconnect_max_ms = 200;
    //  No fetcher while the broker is away: inproc never reconnects a
    //  client (tcp would), so it comes with the new broker.
    rig_t rig = {.server = zfed_blob_server_new(&config)};
    REQUIRE(rig.server);
    REQUIRE(s_registered(broker, 1));
    zactor_destroy(&broker);
    zfed_blob_server_stats_t stats = {0};
    int64_t until = zfed_clock_ms() + ZFED_TEST_WAIT_MS;
    while (stats.reconnects == 0 && zfed_clock_ms() < until) {
        s_turn(&rig, 10);
        zfed_blob_server_stats(rig.server, &stats);
    }
    CHECK(stats.reconnects >= 1);
    zfed_broker_config_t broker_config;
    zfed_broker_config_defaults(&broker_config);
    broker_config.heartbeat_ms = 50;
    broker_config.liveness = 3;
    broker = zfed_test_broker_start(&broker_config, endpoint);
    REQUIRE(broker);
    //  Registered again (READY goes out on each new socket)...
    until = zfed_clock_ms() + ZFED_TEST_WAIT_MS;
    zfed_broker_stats_t broker_stats = {0};
    while (broker_stats.workers < 1 && zfed_clock_ms() < until) {
        s_turn(&rig, 10);
        zfed_test_broker_stats(broker, &broker_stats);
    }
    CHECK_INT(broker_stats.workers, 1);
    //  ... and serving.
    rig.fetcher = s_fetcher(endpoint, 300, 10);
    REQUIRE(rig.fetcher);
    zfed_model_t *model = s_model(2);
    uint8_t id[ZFED_MODEL_ID_SIZE] = {2};
    zfed_descriptor_t d;
    s_descriptor(&d, model, id, zfed_blob_server_service(rig.server));
    char reason[256];
    REQUIRE(zfed_blob_server_hold(rig.server, id, &model, CHUNK, ZFED_HOLD_DEFAULT, reason,
                                  sizeof reason) == 0);
    zfed_fetch_t *fetch =
        zfed_fetcher_start(rig.fetcher, &d, CHUNKS - 2, NULL, reason, sizeof reason);
    REQUIRE(fetch);
    CHECK(s_pump_until(&rig, rig.whole == 1));
    zfed_fetch_destroy(&fetch);
    zfed_descriptor_clear(&d);
    s_stop(&rig, &broker);
}

int main(void)
{
    zsys_init();
    zsys_set_logstream(NULL);
    ZFED_TEST_RUN(s_test_fetch_whole_model);
    ZFED_TEST_RUN(s_test_window_bounds_chunks_in_hand);
    ZFED_TEST_RUN(s_test_unknown_service_and_id);
    ZFED_TEST_RUN(s_test_server_refusals);
    ZFED_TEST_RUN(s_test_forged_and_busy_replies);
    ZFED_TEST_RUN(s_test_server_dies_mid_transfer);
    ZFED_TEST_RUN(s_test_readers_expiry_budget);
    ZFED_TEST_RUN(s_test_server_reconnects);
    ZFED_TEST_END();
}
