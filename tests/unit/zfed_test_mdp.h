/*  zfed_test_mdp - in-process Majordomo peers for the unit tests.

    A real broker in a thread of the test (the private broker actor, on an
    inproc:// endpoint), and raw DEALER sockets that send and receive whole
    MDP messages, so a test can assert every frame the broker sends.  Every
    wait has a generous timeout and ends as soon as its condition holds:
    nothing here sleeps a fixed time.
*/
#ifndef ZFED_TEST_MDP_H_INCLUDED
#define ZFED_TEST_MDP_H_INCLUDED

#include "zfed/zfed_broker.h"
#include "zfed/zfed_mdp.h"
#include "zfed/zfed_util.h"
#include "broker/zfed_broker_actor.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

//  Longest a test waits for a message or a condition.
#define ZFED_TEST_WAIT_MS 10000

//  A fresh inproc endpoint name per call.
static inline void zfed_test_endpoint(char *endpoint, size_t size, const char *what)
{
    static int counter = 0;
    snprintf(endpoint, size, "inproc://zfed-test-%s-%d-%d", what, (int)getpid(), ++counter);
}

//  Starts a broker actor (config NULL: the defaults) bound to endpoint.
static inline zactor_t *zfed_test_broker_start(const zfed_broker_config_t *config,
                                               const char *endpoint)
{
    zactor_t *broker = zactor_new(zfed_broker_actor, (void *)config);
    if (!broker)
        return NULL;
    zstr_sendx(broker, "BIND", endpoint, NULL);
    char *status = NULL, *bound = NULL;
    zstr_recvx(broker, &status, &bound, NULL);
    bool ok = status && strcmp(status, "0") == 0 && bound && strcmp(bound, endpoint) == 0;
    zstr_free(&status);
    zstr_free(&bound);
    if (!ok)
        zactor_destroy(&broker);
    return broker;
}

//  broker: the actor, or the pipe of a zfed_broker_serve thread.
static inline int zfed_test_broker_stats(void *broker, zfed_broker_stats_t *stats)
{
    zstr_send(broker, "STATS");
    zframe_t *frame = zframe_recv(broker);
    int rc = frame && zframe_size(frame) == sizeof *stats ? 0 : -1;
    if (rc == 0)
        memcpy(stats, zframe_data(frame), sizeof *stats);
    zframe_destroy(&frame);
    return rc;
}

//  Waits until field of the broker's counters reaches at least value.
#define zfed_test_broker_wait(broker, field, value)                                                \
    ({                                                                                             \
        zfed_broker_stats_t stats_ = {0};                                                          \
        int64_t until_ = zfed_clock_ms() + ZFED_TEST_WAIT_MS;                                      \
        bool reached_ = false;                                                                     \
        while (!reached_ && zfed_clock_ms() < until_) {                                            \
            reached_ = zfed_test_broker_stats((broker), &stats_) == 0 && stats_.field >= (value);  \
            if (!reached_)                                                                         \
                zclock_sleep(2);                                                                   \
        }                                                                                          \
        reached_;                                                                                  \
    })

//  A DEALER connected to endpoint, receiving with the test timeout.
static inline zsock_t *zfed_test_dealer(const char *endpoint)
{
    zsock_t *socket = zsock_new(ZMQ_DEALER);
    if (!socket)
        return NULL;
    zsock_set_rcvtimeo(socket, ZFED_TEST_WAIT_MS);
    zsock_set_linger(socket, 0);
    if (zsock_connect(socket, "%s", endpoint) != 0)
        zsock_destroy(&socket);
    return socket;
}

//  Sends count frames (data[i], size[i]) as one message.
static inline int zfed_test_send_frames(zsock_t *socket, const void *const *data,
                                        const size_t *size, size_t count)
{
    zmsg_t *message = zmsg_new();
    for (size_t index = 0; index < count; index++)
        zmsg_addmem(message, data[index], size[index]);
    return zmsg_send(&message, socket);
}

//  Sends "" header first second... (strings; NULL ends the list).
#define zfed_test_send_strings(socket, ...) zstr_sendx((socket), "", __VA_ARGS__, NULL)

//  Frame index of message (NULL past the end).
static inline zframe_t *zfed_test_frame(zmsg_t *message, size_t index)
{
    zframe_t *frame = zmsg_first(message);
    for (size_t skipped = 0; frame && skipped < index; skipped++)
        frame = zmsg_next(message);
    return frame;
}

//  True when frame index of message holds exactly data[0..size).
static inline bool zfed_test_frame_is(zmsg_t *message, size_t index, const void *data, size_t size)
{
    zframe_t *frame = zfed_test_frame(message, index);
    return frame && zframe_size(frame) == size && memcmp(zframe_data(frame), data, size) == 0;
}

//  Most frames the senders below put in one message.
#define ZFED_TEST_FRAMES_MAX 64

//  A client request: "" MDPC01 service body[0..count).  0 or -1.
static inline int zfed_test_send_request(zsock_t *client, const char *service,
                                         const void *const *body, const size_t *body_size,
                                         size_t count)
{
    const void *data[ZFED_TEST_FRAMES_MAX] = {"", ZFED_MDPC_HEADER, service};
    size_t size[ZFED_TEST_FRAMES_MAX] = {0, ZFED_MDP_HEADER_SIZE, strlen(service)};
    if (count + 3 > ZFED_TEST_FRAMES_MAX)
        return -1;
    for (size_t index = 0; index < count; index++) {
        data[3 + index] = body[index];
        size[3 + index] = body_size[index];
    }
    return zfed_test_send_frames(client, data, size, count + 3);
}

//  A worker REPLY to request (as received: "" MDPW01 0x02 address "" ...)
//  with body[0..count).  0 or -1.
static inline int zfed_test_send_reply(zsock_t *worker, zmsg_t *request, const void *const *body,
                                       const size_t *body_size, size_t count)
{
    zframe_t *address = zfed_test_frame(request, 3);
    if (!address || count + 5 > ZFED_TEST_FRAMES_MAX)
        return -1;
    const void *data[ZFED_TEST_FRAMES_MAX] = {"", ZFED_MDPW_HEADER, "\003", zframe_data(address),
                                              ""};
    size_t size[ZFED_TEST_FRAMES_MAX] = {0, ZFED_MDP_HEADER_SIZE, 1, zframe_size(address), 0};
    for (size_t index = 0; index < count; index++) {
        data[5 + index] = body[index];
        size[5 + index] = body_size[index];
    }
    return zfed_test_send_frames(worker, data, size, count + 5);
}

#define zfed_test_frame_str(message, index, text)                                                  \
    zfed_test_frame_is((message), (index), (text), strlen(text))

//  The worker side: READY for service, optionally with a fifth frame.
static inline zsock_t *zfed_test_worker(const char *endpoint, const char *service,
                                        const char *extension)
{
    zsock_t *socket = zfed_test_dealer(endpoint);
    if (!socket)
        return NULL;
    if (extension)
        zfed_test_send_strings(socket, ZFED_MDPW_HEADER, "\001", service, extension);
    else
        zfed_test_send_strings(socket, ZFED_MDPW_HEADER, "\001", service);
    return socket;
}

//  Receives the next message that is not a HEARTBEAT (NULL on timeout).
static inline zmsg_t *zfed_test_recv_skipping_heartbeats(zsock_t *socket)
{
    int64_t until = zfed_clock_ms() + ZFED_TEST_WAIT_MS;
    while (zfed_clock_ms() < until) {
        zmsg_t *message = zmsg_recv(socket);
        if (!message)
            return NULL;
        if (zmsg_size(message) == 3 && zfed_test_frame_is(message, 2, "\004", 1)) {
            zmsg_destroy(&message);
            continue;
        }
        return message;
    }
    return NULL;
}

#endif
