/*  test_client - the real zfed_client, in-process, against a fake broker (a
    ROUTER socket the test drives frame by frame on an inproc endpoint).

    What it sends is exactly "" MDPC01 service body; a reply is handed out
    with its service and body; malformed replies (wrong header, several
    body frames, a bad service frame, too many frames) are skipped and
    counted, never returned; a wait with nothing to read times out with 0.
*/
#include "zfed/zfed_client.h"
#include "zfed/zfed_mdp.h"
#include "zfed_test.h"
#include "zfed_test_mdp.h"

#include <czmq.h>
#include <string.h>

//  A wait for a reply that will not come: short, since it must time out.
#define NOTHING_MS 50

typedef struct {
    char endpoint[128];
    zsock_t *router;
    zfed_client_t *client;
    zframe_t *peer; //  the client's routing id, once it has sent
} s_fixture_t;

static void s_start(s_fixture_t *fixture)
{
    zfed_test_endpoint(fixture->endpoint, sizeof fixture->endpoint, "client");
    fixture->router = zsock_new(ZMQ_ROUTER);
    REQUIRE(fixture->router != NULL);
    zsock_set_rcvtimeo(fixture->router, ZFED_TEST_WAIT_MS);
    REQUIRE(zsock_bind(fixture->router, "%s", fixture->endpoint) == 0);
    fixture->client = zfed_client_new(fixture->endpoint, NULL, NULL);
    REQUIRE(fixture->client != NULL);
    fixture->peer = NULL;
}

static void s_stop(s_fixture_t *fixture)
{
    zfed_client_destroy(&fixture->client);
    zframe_destroy(&fixture->peer);
    zsock_destroy(&fixture->router);
}

//  The fake broker sends frames (after the client's routing id).
static void s_reply(s_fixture_t *fixture, const void *const *data, const size_t *size, size_t count)
{
    zmsg_t *message = zmsg_new();
    zmsg_append(message, &(zframe_t *){zframe_dup(fixture->peer)});
    for (size_t index = 0; index < count; index++)
        zmsg_addmem(message, data[index], size[index]);
    REQUIRE_INT(zmsg_send(&message, fixture->router), 0);
}

static void s_test_request_and_replies(void)
{
    s_fixture_t fixture;
    s_start(&fixture);
    REQUIRE_INT(zfed_client_send(fixture.client, "fib", "\x01\x02\x00\x03", 4), 0);
    zmsg_t *request = zmsg_recv(fixture.router);
    REQUIRE(request != NULL);
    CHECK_INT(zmsg_size(request), 5);
    CHECK(zfed_test_frame_str(request, 1, ""));
    CHECK(zfed_test_frame_str(request, 2, ZFED_MDPC_HEADER));
    CHECK(zfed_test_frame_str(request, 3, "fib"));
    CHECK(zfed_test_frame_is(request, 4, "\x01\x02\x00\x03", 4));
    fixture.peer = zmsg_pop(request);
    zmsg_destroy(&request);

    //  Nothing to read yet: a timeout, not an error.
    const char *service = NULL;
    const uint8_t *body = NULL;
    size_t size = 0;
    CHECK_INT(zfed_client_recv(fixture.client, NOTHING_MS, &service, &body, &size), 0);

    //  Malformed replies, each skipped and counted, then a good one.
    const void *wrong_header[] = {"", "MDPW01", "fib", "x"};
    size_t wrong_header_size[] = {0, 6, 3, 1};
    s_reply(&fixture, wrong_header, wrong_header_size, 4);
    const void *two_bodies[] = {"", ZFED_MDPC_HEADER, "fib", "a", "b"};
    size_t two_bodies_size[] = {0, 6, 3, 1, 1};
    s_reply(&fixture, two_bodies, two_bodies_size, 5);
    const void *bad_service[] = {"", ZFED_MDPC_HEADER, "f\tb", "x"};
    size_t bad_service_size[] = {0, 6, 3, 1};
    s_reply(&fixture, bad_service, bad_service_size, 4);
    const void *no_body[] = {"", ZFED_MDPC_HEADER, "fib"};
    size_t no_body_size[] = {0, 6, 3};
    s_reply(&fixture, no_body, no_body_size, 3);
    const void *many[40];
    size_t many_size[40];
    for (size_t index = 0; index < 40; index++) {
        many[index] = index == 1 ? ZFED_MDPC_HEADER : index == 2 ? "fib" : "";
        many_size[index] = index == 1 ? 6 : index == 2 ? 3 : 0;
    }
    s_reply(&fixture, many, many_size, 40);
    const void *good[] = {"", ZFED_MDPC_HEADER, "fib", "result\0bytes"};
    size_t good_size[] = {0, 6, 3, 12};
    s_reply(&fixture, good, good_size, 4);

    CHECK_INT(zfed_client_recv(fixture.client, ZFED_TEST_WAIT_MS, &service, &body, &size), 1);
    CHECK_STR(service, "fib");
    CHECK_INT(size, 12);
    CHECK(body && memcmp(body, "result\0bytes", 12) == 0);
    CHECK_INT(zfed_client_malformed(fixture.client), 5);

    //  A service with a space is a valid name (RFC 7: printable).
    const void *spaced[] = {"", ZFED_MDPC_HEADER, "my service", "ok"};
    size_t spaced_size[] = {0, 6, 10, 2};
    s_reply(&fixture, spaced, spaced_size, 4);
    CHECK_INT(zfed_client_recv(fixture.client, ZFED_TEST_WAIT_MS, &service, &body, &size), 1);
    CHECK_STR(service, "my service");
    CHECK_INT(zfed_client_malformed(fixture.client), 5);
    s_stop(&fixture);
}

//  Against the real broker: the client's requests reach a worker and the
//  replies come back in order.
static void s_test_through_a_broker(void)
{
    char endpoint[128];
    zfed_test_endpoint(endpoint, sizeof endpoint, "client-broker");
    zactor_t *broker = zfed_test_broker_start(NULL, endpoint);
    REQUIRE(broker != NULL);
    zsock_t *worker = zfed_test_worker(endpoint, "echo", NULL);
    REQUIRE(worker != NULL);
    REQUIRE(zfed_test_broker_wait(broker, workers, 1));
    zfed_client_t *client = zfed_client_new(endpoint, NULL, NULL);
    REQUIRE(client != NULL);
    enum { REQUESTS = 20 };
    for (int index = 0; index < REQUESTS; index++) {
        char text[16];
        snprintf(text, sizeof text, "req-%d", index);
        REQUIRE_INT(zfed_client_send(client, "echo", text, strlen(text)), 0);
    }
    for (int index = 0; index < REQUESTS; index++) {
        zmsg_t *request = zfed_test_recv_skipping_heartbeats(worker);
        REQUIRE(request != NULL);
        zframe_t *frame = zfed_test_frame(request, 5);
        REQUIRE(frame != NULL);
        const void *echo[] = {zframe_data(frame)};
        size_t echo_size[] = {zframe_size(frame)};
        REQUIRE_INT(zfed_test_send_reply(worker, request, echo, echo_size, 1), 0);
        zmsg_destroy(&request);

        const char *service = NULL;
        const uint8_t *body = NULL;
        size_t size = 0;
        REQUIRE_INT(zfed_client_recv(client, ZFED_TEST_WAIT_MS, &service, &body, &size), 1);
        char text[16];
        snprintf(text, sizeof text, "req-%d", index);
        CHECK_STR(service, "echo");
        CHECK(size == strlen(text) && memcmp(body, text, size) == 0);
    }
    CHECK_INT(zfed_client_malformed(client), 0);
    zfed_client_destroy(&client);
    zsock_destroy(&worker);
    zactor_destroy(&broker);
}

static int s_freed;
static void s_count_free(void *data, void *hint)
{
    (void)data;
    (void)hint;
    s_freed++;
}

//  Data frames: sent without a copy and freed once gone; received when
//  allowed (else the reply is malformed, as for a value service), taken
//  over so they outlive the next receive.
static void s_test_data_frames(void)
{
    s_fixture_t fixture;
    s_start(&fixture);
    static const char model[] = "tensor bytes";
    s_freed = 0;
    REQUIRE_INT(zfed_client_send_data(fixture.client, "tensoravg", "body", 4, model, 12,
                                      s_count_free, NULL),
                0);
    zmsg_t *request = zmsg_recv(fixture.router);
    REQUIRE(request != NULL);
    CHECK_INT(zmsg_size(request), 6);
    CHECK(zfed_test_frame_str(request, 3, "tensoravg"));
    CHECK(zfed_test_frame_is(request, 4, "body", 4));
    CHECK(zfed_test_frame_is(request, 5, model, 12));
    fixture.peer = zmsg_pop(request);
    zmsg_destroy(&request);
    CHECK_INT(s_freed, 1);

    const char *service = NULL;
    const uint8_t *body = NULL, *data = NULL;
    size_t size = 0, data_size = 0;
    const void *reply[] = {"", ZFED_MDPC_HEADER, "tensoravg", "result", "data!"};
    size_t reply_size[] = {0, 6, 9, 6, 5};
    s_reply(&fixture, reply, reply_size, 5);
    CHECK_INT(zfed_client_recv(fixture.client, NOTHING_MS, &service, &body, &size), 0);
    CHECK_INT(zfed_client_malformed(fixture.client), 1);
    zfed_client_allow_data(fixture.client, true);
    s_reply(&fixture, reply, reply_size, 5);
    CHECK_INT(zfed_client_recv_data(fixture.client, ZFED_TEST_WAIT_MS, &service, &body, &size,
                                    &data, &data_size),
              1);
    CHECK_INT(size, 6);
    CHECK(data && data_size == 5 && memcmp(data, "data!", 5) == 0);
    void *taken = NULL, *hint = NULL;
    size_t taken_size = 0;
    zfed_client_free_fn *free_fn = NULL;
    REQUIRE_INT(zfed_client_take_data(fixture.client, &taken, &taken_size, &free_fn, &hint), 0);
    CHECK_INT(zfed_client_take_data(fixture.client, &taken, &taken_size, &free_fn, &hint), -1);
    //  A reply without a data frame, after which the taken one still holds.
    const void *plain[] = {"", ZFED_MDPC_HEADER, "tensoravg", "error"};
    size_t plain_size[] = {0, 6, 9, 5};
    s_reply(&fixture, plain, plain_size, 4);
    CHECK_INT(zfed_client_recv_data(fixture.client, ZFED_TEST_WAIT_MS, &service, &body, &size,
                                    &data, &data_size),
              1);
    CHECK(data == NULL && data_size == 0);
    CHECK(taken_size == 5 && memcmp(taken, "data!", 5) == 0);
    free_fn(taken, hint);
    //  Three body frames are one too many.
    const void *three[] = {"", ZFED_MDPC_HEADER, "tensoravg", "a", "b", "c"};
    size_t three_size[] = {0, 6, 9, 1, 1, 1};
    s_reply(&fixture, three, three_size, 6);
    CHECK_INT(zfed_client_recv(fixture.client, NOTHING_MS, &service, &body, &size), 0);
    CHECK_INT(zfed_client_malformed(fixture.client), 2);
    s_stop(&fixture);
}

int main(void)
{
    ZFED_TEST_RUN(s_test_request_and_replies);
    ZFED_TEST_RUN(s_test_data_frames);
    ZFED_TEST_RUN(s_test_through_a_broker);
    ZFED_TEST_END();
}
