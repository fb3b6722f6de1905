/*  test_mdp - the Majordomo envelope: every valid command shape at the
    broker, worker and client, every output field, every refusal, the
    small helpers (READY offers, MMI, service names, command names), and
    zfed's compact frames of both legs (PROTOCOL.md 3.2, 3.3) against
    zfed-protocol.json, with every refusal.

    Each parse gets copies of its frames in allocations of exactly the
    right size and a frame array of exactly count entries, so a parser that
    looks one frame or one byte too far is caught by valgrind or ASan.
*/
#include "zfed/zfed_mdp.h"
#include "zfed_test.h"
#include "zfed_test_hex.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAMES_MAX 16

//  One frame given as a literal (embedded NULs allowed).
typedef struct {
    const char *data;
    size_t size;
} s_frame_t;

#define F(literal)                                                                                 \
    {                                                                                              \
        literal, sizeof(literal) - 1                                                               \
    }
#define EMPTY F("")
#define MDPC  F("MDPC01")
#define MDPW  F("MDPW01")

typedef enum { AT_BROKER, AT_WORKER, AT_CLIENT } s_side_t;

static const char *s_side_name(s_side_t side)
{
    return side == AT_BROKER ? "broker" : side == AT_WORKER ? "worker" : "client";
}

//  Frames copied into exact allocations; views point into them.
typedef struct {
    zfed_view_t *views;
    uint8_t *copies[FRAMES_MAX];
    size_t count;
} s_message_t;

static void s_message_init(s_message_t *message, const s_frame_t *frames, size_t count)
{
    message->count = count;
    message->views = malloc((count ? count : 1) * sizeof(zfed_view_t));
    if (!message->views)
        abort();
    for (size_t index = 0; index < count; index++) {
        message->copies[index] = malloc(frames[index].size ? frames[index].size : 1);
        if (!message->copies[index])
            abort();
        memcpy(message->copies[index], frames[index].data, frames[index].size);
        message->views[index].data = message->copies[index];
        message->views[index].size = frames[index].size;
    }
}

static void s_message_clear(s_message_t *message)
{
    for (size_t index = 0; index < message->count; index++)
        free(message->copies[index]);
    free(message->views);
    message->views = NULL;
    message->count = 0;
}

static int s_parse(s_side_t side, const s_message_t *message, zfed_mdp_t *mdp, const char **reason)
{
    switch (side) {
    case AT_BROKER:
        return zfed_mdp_parse_at_broker(message->views, message->count, mdp, reason);
    case AT_WORKER:
        return zfed_mdp_parse_at_worker(message->views, message->count, mdp, reason);
    case AT_CLIENT:
        return zfed_mdp_parse_at_client(message->views, message->count, mdp, reason);
    }
    return -2;
}

//  Index of view in message, or -1 when it points elsewhere.
static int s_frame_of(const s_message_t *message, zfed_view_t view)
{
    for (size_t index = 0; index < message->count; index++)
        if (view.data == message->views[index].data && view.size == message->views[index].size)
            return (int)index;
    return -1;
}

//  What a successful parse must produce.  Frame indexes: -1 for a view
//  that must be empty.
typedef struct {
    zfed_mdp_command_t command;
    int service;
    int address;
    int extension;
    size_t body_index;
    size_t body_count;
} s_expected_t;

static void s_check_accepted(s_side_t side, const s_frame_t *frames, size_t count,
                             s_expected_t expected, const char *label)
{
    s_message_t message;
    s_message_init(&message, frames, count);
    zfed_mdp_t mdp;
    memset(&mdp, 0xa5, sizeof mdp); //  every field must be written
    const char *reason = "untouched";
    int rc = s_parse(side, &message, &mdp, &reason);
    int failures = zfed_test_failures;
    CHECK_INT(rc, 0);
    if (rc == 0) {
        CHECK_INT(mdp.command, expected.command);
        if (expected.service >= 0)
            CHECK_INT(s_frame_of(&message, mdp.service), expected.service);
        else
            CHECK(mdp.service.size == 0 && mdp.service.data == NULL);
        if (expected.address >= 0)
            CHECK_INT(s_frame_of(&message, mdp.address), expected.address);
        else
            CHECK(mdp.address.size == 0 && mdp.address.data == NULL);
        if (expected.extension >= 0)
            CHECK_INT(s_frame_of(&message, mdp.extension), expected.extension);
        else
            CHECK(mdp.extension.size == 0 && mdp.extension.data == NULL);
        CHECK_INT(mdp.body_index, expected.body_index);
        CHECK_INT(mdp.body_count, expected.body_count);
        if (expected.body_count)
            CHECK(mdp.body_index + mdp.body_count == count);
    }
    if (zfed_test_failures != failures)
        fprintf(stderr, "  case '%s' at %s (rc %d, reason %s)\n", label, s_side_name(side), rc,
                rc == 0 ? "-" : reason);
    s_message_clear(&message);
}

//  The parse fails with a non-empty constant reason; when needle is not
//  NULL the reason holds it.
static void s_check_refused(s_side_t side, const s_frame_t *frames, size_t count,
                            const char *needle, const char *label)
{
    s_message_t message;
    s_message_init(&message, frames, count);
    zfed_mdp_t mdp;
    const char *reason = NULL;
    int rc = s_parse(side, &message, &mdp, &reason);
    bool ok = rc == -1 && reason != NULL && reason[0] != '\0' &&
              (!needle || strstr(reason, needle) != NULL);
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  case '%s' at %s: rc %d, reason '%s', wanted '%s'\n", label,
                s_side_name(side), rc, reason ? reason : "(null)", needle ? needle : "(any)");
    s_message_clear(&message);
}

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

//  A frame of size bytes of c, in storage the caller provides.
static s_frame_t s_filled(char *storage, char c, size_t size)
{
    memset(storage, c, size);
    return (s_frame_t){storage, size};
}

//  ---------------------------------------------------------------------
//  Valid shapes

static void s_test_client_messages(void)
{
    //  Client request at the broker, and the reply at the client: same shape.
    s_frame_t one[] = {EMPTY, MDPC, F("fib"), F("body")};
    s_frame_t several[] = {EMPTY, MDPC, F("fib"), F("b1"), EMPTY, F("b3\0x")};
    s_expected_t expect_one = {ZFED_MDP_CLIENT, 2, -1, -1, 3, 1};
    s_expected_t expect_several = {ZFED_MDP_CLIENT, 2, -1, -1, 3, 3};
    s_check_accepted(AT_BROKER, one, COUNT(one), expect_one, "request, one body frame");
    s_check_accepted(AT_CLIENT, one, COUNT(one), expect_one, "reply, one body frame");
    s_check_accepted(AT_BROKER, several, COUNT(several), expect_several, "request, 3 bodies");
    s_check_accepted(AT_CLIENT, several, COUNT(several), expect_several, "reply, 3 bodies");
    //  An empty body frame is still a body frame.
    s_frame_t empty_body[] = {EMPTY, MDPC, F("fib"), EMPTY};
    s_check_accepted(AT_BROKER, empty_body, COUNT(empty_body), expect_one, "empty body");
    //  MMI requests parse like any other service.
    s_frame_t mmi[] = {EMPTY, MDPC, F("mmi.service"), F("fib")};
    s_check_accepted(AT_BROKER, mmi, COUNT(mmi), expect_one, "mmi.service request");

    //  Service name at its longest.
    char longest[ZFED_MDP_SERVICE_MAX];
    s_frame_t max_service[] = {EMPTY, MDPC, s_filled(longest, 's', sizeof longest), F("b")};
    s_check_accepted(AT_BROKER, max_service, COUNT(max_service), expect_one, "255-byte service");
    s_frame_t punctuation[] = {EMPTY, MDPC, F("!~svc.v2/x:y"), F("b")};
    s_check_accepted(AT_CLIENT, punctuation, COUNT(punctuation), expect_one, "punctuation");
    //  Spaces are printable (RFC 7's service name is a printable string).
    s_frame_t spaced[] = {EMPTY, MDPC, F("my service"), F("b")};
    s_check_accepted(AT_BROKER, spaced, COUNT(spaced), expect_one, "service with a space");
    s_check_accepted(AT_CLIENT, spaced, COUNT(spaced), expect_one, "service with a space");
}

static void s_test_worker_messages(void)
{
    const s_side_t sides[] = {AT_BROKER, AT_WORKER};
    for (size_t side = 0; side < 2; side++) {
        s_frame_t ready4[] = {EMPTY, MDPW, F("\x01"), F("fib")};
        s_check_accepted(sides[side], ready4, COUNT(ready4),
                         (s_expected_t){ZFED_MDP_READY, 3, -1, -1, 0, 0}, "READY, 4 frames");
        s_frame_t ready5[] = {EMPTY, MDPW, F("\x01"), F("fib"), F("credit=8")};
        s_check_accepted(sides[side], ready5, COUNT(ready5),
                         (s_expected_t){ZFED_MDP_READY, 3, -1, 4, 0, 0}, "READY, 5 frames");
        //  An empty fifth frame is an (empty) extension.
        s_frame_t ready5_empty[] = {EMPTY, MDPW, F("\x01"), F("fib"), EMPTY};
        s_message_t message;
        s_message_init(&message, ready5_empty, COUNT(ready5_empty));
        zfed_mdp_t mdp;
        const char *reason = NULL;
        CHECK_INT(s_parse(sides[side], &message, &mdp, &reason), 0);
        CHECK_INT(mdp.extension.size, 0);
        CHECK_INT(mdp.command, ZFED_MDP_READY);
        s_message_clear(&message);

        s_frame_t request[] = {EMPTY, MDPW, F("\x02"), F("\x00k\x8b\x45\x67"), EMPTY, F("body")};
        s_check_accepted(sides[side], request, COUNT(request),
                         (s_expected_t){ZFED_MDP_REQUEST, -1, 3, -1, 5, 1}, "REQUEST");
        s_frame_t request3[] = {EMPTY, MDPW, F("\x02"), F("A"), EMPTY, F("b1"), F("b2"), EMPTY};
        s_check_accepted(sides[side], request3, COUNT(request3),
                         (s_expected_t){ZFED_MDP_REQUEST, -1, 3, -1, 5, 3},
                         "REQUEST, 3 body frames");
        s_frame_t reply[] = {EMPTY, MDPW, F("\x03"), F("client-7"), EMPTY, F("result")};
        s_check_accepted(sides[side], reply, COUNT(reply),
                         (s_expected_t){ZFED_MDP_REPLY, -1, 3, -1, 5, 1}, "REPLY");
        s_frame_t reply2[] = {EMPTY, MDPW, F("\x03"), F("c"), EMPTY, F("r1"), F("r2")};
        s_check_accepted(sides[side], reply2, COUNT(reply2),
                         (s_expected_t){ZFED_MDP_REPLY, -1, 3, -1, 5, 2}, "REPLY, 2 bodies");
        char address[ZFED_MDP_ADDRESS_MAX];
        s_frame_t long_address[] = {
            EMPTY, MDPW, F("\x03"), s_filled(address, '\xff', sizeof address), EMPTY, F("r")};
        s_check_accepted(sides[side], long_address, COUNT(long_address),
                         (s_expected_t){ZFED_MDP_REPLY, -1, 3, -1, 5, 1}, "255-byte address");
        s_frame_t heartbeat[] = {EMPTY, MDPW, F("\x04")};
        s_check_accepted(sides[side], heartbeat, COUNT(heartbeat),
                         (s_expected_t){ZFED_MDP_HEARTBEAT, -1, -1, -1, 0, 0}, "HEARTBEAT");
        s_frame_t disconnect[] = {EMPTY, MDPW, F("\x05")};
        s_check_accepted(sides[side], disconnect, COUNT(disconnect),
                         (s_expected_t){ZFED_MDP_DISCONNECT, -1, -1, -1, 0, 0}, "DISCONNECT");
    }
}

//  ---------------------------------------------------------------------
//  Refusals

static void s_test_header_refusals(void)
{
    const s_side_t all[] = {AT_BROKER, AT_WORKER, AT_CLIENT};
    for (size_t side = 0; side < 3; side++) {
        s_side_t at = all[side];
        //  0 and 1 frames.
        s_check_refused(at, NULL, 0, "too few frames", "no frames");
        s_frame_t lone_empty[] = {EMPTY};
        s_check_refused(at, lone_empty, 1, "too few frames", "one empty frame");
        s_frame_t lone_header[] = {MDPC};
        s_check_refused(at, lone_header, 1, "too few frames", "one header frame");
        //  First frame not empty.
        s_frame_t not_empty[] = {F("x"), MDPC, F("fib"), F("b")};
        s_check_refused(at, not_empty, COUNT(not_empty), "first frame must be empty",
                        "non-empty first frame (client)");
        s_frame_t not_empty_w[] = {F("\0"), MDPW, F("\x04")};
        s_check_refused(at, not_empty_w, COUNT(not_empty_w), "first frame must be empty",
                        "NUL first frame (worker)");
        //  Unknown headers, including near misses.
        const s_frame_t headers[] = {F("MDPC02"),   F("MDPW00"),  F("mdpc01"), F("MDPC0"),
                                     F("MDPC01\0"), F("MDPW01 "), EMPTY,       F("MDP/0.1")};
        for (size_t index = 0; index < COUNT(headers); index++) {
            s_frame_t frames[] = {EMPTY, headers[index], F("\x04"), F("fib"), F("b")};
            s_check_refused(at, frames, COUNT(frames), "unknown protocol header", "unknown header");
        }
    }
    //  The right header for the wrong side.
    s_frame_t client_request[] = {EMPTY, MDPC, F("fib"), F("b")};
    s_check_refused(AT_WORKER, client_request, COUNT(client_request), "expected MDPW01",
                    "MDPC01 at a worker");
    s_frame_t heartbeat[] = {EMPTY, MDPW, F("\x04")};
    s_check_refused(AT_CLIENT, heartbeat, COUNT(heartbeat), "expected MDPC01",
                    "MDPW01 at a client");
    s_frame_t ready[] = {EMPTY, MDPW, F("\x01"), F("fib")};
    s_check_refused(AT_CLIENT, ready, COUNT(ready), "expected MDPC01", "READY at a client");
    //  A two-frame message with a valid header still lacks the rest.
    s_frame_t two_c[] = {EMPTY, MDPC};
    s_check_refused(AT_BROKER, two_c, 2, "service", "MDPC01 with nothing else");
    s_check_refused(AT_CLIENT, two_c, 2, "service", "MDPC01 with nothing else");
    s_frame_t two_w[] = {EMPTY, MDPW};
    s_check_refused(AT_BROKER, two_w, 2, "one-byte command", "MDPW01 with nothing else");
    s_check_refused(AT_WORKER, two_w, 2, "one-byte command", "MDPW01 with nothing else");
}

static void s_test_client_refusals(void)
{
    const s_side_t sides[] = {AT_BROKER, AT_CLIENT};
    char long_service[ZFED_MDP_SERVICE_MAX + 1];
    for (size_t side = 0; side < 2; side++) {
        s_side_t at = sides[side];
        //  Service but no body.
        s_frame_t no_body[] = {EMPTY, MDPC, F("fib")};
        s_check_refused(at, no_body, COUNT(no_body), "at least one body frame", "no body");
        //  Bad service names.
        const s_frame_t services[] = {EMPTY,        F("fib\t"),   F("fib\n"),
                                      F("f\0b"),    F("\x7f"),    F("caf\xc3\xa9"),
                                      F("\x1b[0m"), F("fib\x80"), F("\x1f")};
        for (size_t index = 0; index < COUNT(services); index++) {
            s_frame_t frames[] = {EMPTY, MDPC, services[index], F("b")};
            char label[32];
            snprintf(label, sizeof label, "bad service #%zu", index);
            s_check_refused(at, frames, COUNT(frames), "invalid service name", label);
        }
        s_frame_t too_long[] = {EMPTY, MDPC, s_filled(long_service, 's', sizeof long_service),
                                F("b")};
        s_check_refused(at, too_long, COUNT(too_long), "invalid service name", "256-byte service");
    }
}

static void s_test_worker_refusals(void)
{
    const s_side_t sides[] = {AT_BROKER, AT_WORKER};
    char address[ZFED_MDP_ADDRESS_MAX + 1];
    char long_service[ZFED_MDP_SERVICE_MAX + 1];
    for (size_t side = 0; side < 2; side++) {
        s_side_t at = sides[side];
        //  Command frame of 0 or 2 bytes.
        s_frame_t zero[] = {EMPTY, MDPW, EMPTY};
        s_check_refused(at, zero, COUNT(zero), "one-byte command", "empty command frame");
        s_frame_t two[] = {EMPTY, MDPW, F("\x04\x00")};
        s_check_refused(at, two, COUNT(two), "one-byte command", "two-byte command frame");
        s_frame_t two_ready[] = {EMPTY, MDPW, F("\x01\x01"), F("fib")};
        s_check_refused(at, two_ready, COUNT(two_ready), "one-byte command", "two-byte READY");
        //  Unknown command bytes.
        const s_frame_t commands[] = {F("\x00"), F("\x06"), F("\x07"),
                                      F("\x7f"), F("\xff"), F("1")};
        for (size_t index = 0; index < COUNT(commands); index++) {
            s_frame_t frames[] = {EMPTY, MDPW, commands[index]};
            s_check_refused(at, frames, COUNT(frames), "unknown MDPW01 command", "unknown command");
            s_frame_t longer[] = {EMPTY, MDPW, commands[index], F("a"), EMPTY, F("b")};
            s_check_refused(at, longer, COUNT(longer), "unknown MDPW01 command",
                            "unknown command with frames");
        }
        //  READY with 3 or 6 frames, or a bad service.
        s_frame_t ready3[] = {EMPTY, MDPW, F("\x01")};
        s_check_refused(at, ready3, COUNT(ready3), "READY", "READY with 3 frames");
        s_frame_t ready6[] = {EMPTY, MDPW, F("\x01"), F("fib"), F("credit=2"), F("x")};
        s_check_refused(at, ready6, COUNT(ready6), "READY", "READY with 6 frames");
        s_frame_t ready_empty[] = {EMPTY, MDPW, F("\x01"), EMPTY};
        s_check_refused(at, ready_empty, COUNT(ready_empty), "READY", "READY, empty service");
        s_frame_t ready_tab[] = {EMPTY, MDPW, F("\x01"), F("my\tservice")};
        s_check_refused(at, ready_tab, COUNT(ready_tab), "READY", "READY, service with a tab");
        s_frame_t ready_long[] = {EMPTY, MDPW, F("\x01"),
                                  s_filled(long_service, 'x', sizeof long_service)};
        s_check_refused(at, ready_long, COUNT(ready_long), "READY", "READY, 256-byte service");
        s_frame_t ready_long5[] = {EMPTY, MDPW, F("\x01"),
                                   s_filled(long_service, 'x', sizeof long_service), F("c")};
        s_check_refused(at, ready_long5, COUNT(ready_long5), "READY",
                        "READY, 256-byte service, 5 frames");

        for (int command = ZFED_MDPW_REQUEST; command <= ZFED_MDPW_REPLY; command++) {
            char byte[1] = {(char)command};
            s_frame_t cmd = {byte, 1};
            //  Too few frames: no body, no delimiter, no address.
            s_frame_t no_body[] = {EMPTY, MDPW, cmd, F("addr"), EMPTY};
            s_check_refused(at, no_body, COUNT(no_body), "needs address, empty frame and body",
                            "REQUEST/REPLY without body");
            s_frame_t bare[] = {EMPTY, MDPW, cmd};
            s_check_refused(at, bare, COUNT(bare), "needs address", "REQUEST/REPLY bare");
            s_frame_t address_only[] = {EMPTY, MDPW, cmd, F("addr")};
            s_check_refused(at, address_only, COUNT(address_only), "needs address",
                            "REQUEST/REPLY with only an address");
            //  Delimiter missing: the body sits where the empty frame goes.
            s_frame_t no_delimiter[] = {EMPTY, MDPW, cmd, F("addr"), F("body"), F("more")};
            s_check_refused(at, no_delimiter, COUNT(no_delimiter), "followed by an empty frame",
                            "REQUEST/REPLY without delimiter");
            s_frame_t nul_delimiter[] = {EMPTY, MDPW, cmd, F("addr"), F("\0"), F("body")};
            s_check_refused(at, nul_delimiter, COUNT(nul_delimiter), "followed by an empty frame",
                            "REQUEST/REPLY with NUL delimiter");
            //  Address of 0 or 256 bytes.
            s_frame_t empty_address[] = {EMPTY, MDPW, cmd, EMPTY, EMPTY, F("body")};
            s_check_refused(at, empty_address, COUNT(empty_address), "1-255 bytes",
                            "empty address");
            s_frame_t long_address[] = {
                EMPTY, MDPW, cmd, s_filled(address, 'a', sizeof address), EMPTY, F("body")};
            s_check_refused(at, long_address, COUNT(long_address), "1-255 bytes",
                            "256-byte address");
        }
        //  HEARTBEAT and DISCONNECT take nothing more.
        for (int command = ZFED_MDPW_HEARTBEAT; command <= ZFED_MDPW_DISCONNECT; command++) {
            char byte[1] = {(char)command};
            s_frame_t cmd = {byte, 1};
            s_frame_t extra[] = {EMPTY, MDPW, cmd, EMPTY};
            s_check_refused(at, extra, COUNT(extra), "take no frames after the command",
                            "HEARTBEAT/DISCONNECT + empty frame");
            s_frame_t extra2[] = {EMPTY, MDPW, cmd, F("x"), F("y")};
            s_check_refused(at, extra2, COUNT(extra2), "take no frames after the command",
                            "HEARTBEAT/DISCONNECT + 2 frames");
        }
    }
}

//  A failed parse leaves the output without stale data from an earlier
//  successful one (it is cleared before anything is checked).
static void s_test_output_cleared(void)
{
    s_frame_t good[] = {EMPTY, MDPW, F("\x03"), F("addr"), EMPTY, F("r")};
    s_frame_t bad[] = {EMPTY, F("XXXX01"), F("\x04")};
    s_message_t first, second;
    s_message_init(&first, good, COUNT(good));
    s_message_init(&second, bad, COUNT(bad));
    zfed_mdp_t mdp;
    const char *reason = NULL;
    CHECK_INT(zfed_mdp_parse_at_broker(first.views, first.count, &mdp, &reason), 0);
    CHECK_INT(mdp.body_index, 5);
    CHECK_INT(zfed_mdp_parse_at_broker(second.views, second.count, &mdp, &reason), -1);
    CHECK(mdp.address.data == NULL && mdp.address.size == 0);
    CHECK_INT(mdp.body_index, 0);
    CHECK_INT(mdp.body_count, 0);
    s_message_clear(&first);
    s_message_clear(&second);
}

//  ---------------------------------------------------------------------
//  Helpers

static unsigned s_credit(const char *text, size_t size, unsigned max)
{
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, text, size);
    zfed_view_t view = {copy, size};
    unsigned credit = zfed_mdp_ready_credit(view, max);
    free(copy);
    return credit;
}

#define CREDIT(literal, max) s_credit(literal, sizeof(literal) - 1, max)

static void s_test_ready_credit(void)
{
    CHECK_INT(CREDIT("credit=8", 64), 8);
    CHECK_INT(CREDIT("credit=1", 64), 1);
    CHECK_INT(CREDIT("credit=64", 64), 64);
    CHECK_INT(CREDIT("credit=65", 64), 64); //  clamped to max
    CHECK_INT(CREDIT("credit=999999", 64), 64);
    CHECK_INT(CREDIT("credit=999999", 1000000), 999999); //  six digits: the longest read
    CHECK_INT(CREDIT("credit=000012", 64), 12);
    CHECK_INT(CREDIT("credit=0", 64), 1);
    CHECK_INT(CREDIT("credit=000000", 64), 1);
    CHECK_INT(CREDIT("credit=", 64), 1);
    CHECK_INT(CREDIT("credit", 64), 1);
    CHECK_INT(CREDIT("", 64), 1);
    zfed_view_t nothing = {NULL, 0};
    CHECK_INT(zfed_mdp_ready_credit(nothing, 64), 1);
    //  Seven or more digits are not read at all (so the arithmetic can
    //  never overflow): plain MDP credit, not the max.
    CHECK_INT(CREDIT("credit=99999999", 64), 1);
    CHECK_INT(CREDIT("credit=0000001", 64), 1);
    CHECK_INT(CREDIT("credit=4294967297", 64), 1);
    //  Anything else is not a credit frame.
    CHECK_INT(CREDIT("crdit=4", 64), 1);
    CHECK_INT(CREDIT("Credit=4", 64), 1);
    CHECK_INT(CREDIT("credit:4", 64), 1);
    CHECK_INT(CREDIT("credit= 4", 64), 1);
    CHECK_INT(CREDIT("credit=4 ", 64), 1);
    CHECK_INT(CREDIT("credit=+4", 64), 1);
    CHECK_INT(CREDIT("credit=-4", 64), 1);
    CHECK_INT(CREDIT("credit=4x", 64), 1);
    CHECK_INT(CREDIT("credit=0x10", 64), 1);
    CHECK_INT(CREDIT("credit=4\0", 64), 1);
    CHECK_INT(CREDIT("xcredit=4", 64), 1);
    CHECK_INT(CREDIT("credit=12", 12), 12);
    CHECK_INT(CREDIT("credit=13", 12), 12);
    CHECK_INT(CREDIT("credit=5", 1), 1);
}

static bool s_service_valid(const char *text, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, text, size);
    zfed_view_t view = {copy, size};
    bool valid = zfed_mdp_service_valid(view);
    free(copy);
    return valid;
}

static bool s_is_mmi(const char *text, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, text, size);
    zfed_view_t view = {copy, size};
    bool mmi = zfed_mdp_is_mmi(view);
    free(copy);
    return mmi;
}

#define SERVICE_VALID(literal) s_service_valid(literal, sizeof(literal) - 1)
#define IS_MMI(literal)        s_is_mmi(literal, sizeof(literal) - 1)

static void s_test_service_names(void)
{
    CHECK(SERVICE_VALID("fib"));
    CHECK(SERVICE_VALID("a"));
    CHECK(SERVICE_VALID("!"));
    CHECK(SERVICE_VALID("~"));
    CHECK(SERVICE_VALID("mmi.service"));
    CHECK(!SERVICE_VALID(""));
    CHECK(SERVICE_VALID(" "));   //  RFC 7: a printable string,
    CHECK(SERVICE_VALID("a b")); //  and the space is printable
    CHECK(SERVICE_VALID(" fib "));
    CHECK(!SERVICE_VALID("ab\0"));
    CHECK(!SERVICE_VALID("tab\t"));
    CHECK(!SERVICE_VALID("\x7f"));
    CHECK(!SERVICE_VALID("\x80"));
    CHECK(!SERVICE_VALID("\xff"));
    CHECK(!SERVICE_VALID("caf\xc3\xa9"));
    char name[ZFED_MDP_SERVICE_MAX + 1];
    memset(name, 'n', sizeof name);
    CHECK(s_service_valid(name, ZFED_MDP_SERVICE_MAX));
    CHECK(!s_service_valid(name, ZFED_MDP_SERVICE_MAX + 1));
    //  Every byte alone: exactly 0x20..0x7e pass.
    for (int c = 0; c <= 0xff; c++) {
        char byte = (char)c;
        CHECK(s_service_valid(&byte, 1) == (c >= 0x20 && c <= 0x7e));
    }

    CHECK(IS_MMI("mmi.service"));
    CHECK(IS_MMI("mmi."));
    CHECK(IS_MMI("mmi.echo"));
    CHECK(!IS_MMI("mmi"));
    CHECK(!IS_MMI("mmi_service"));
    CHECK(!IS_MMI("MMI.service"));
    CHECK(!IS_MMI("xmmi.service"));
    CHECK(!IS_MMI("fib"));
    CHECK(!IS_MMI(""));
    zfed_view_t nothing = {NULL, 0};
    CHECK(!zfed_mdp_is_mmi(nothing));
}

static void s_test_command_names(void)
{
    CHECK_STR(zfed_mdp_command_name(ZFED_MDP_CLIENT), "CLIENT");
    CHECK_STR(zfed_mdp_command_name(ZFED_MDP_READY), "READY");
    CHECK_STR(zfed_mdp_command_name(ZFED_MDP_REQUEST), "REQUEST");
    CHECK_STR(zfed_mdp_command_name(ZFED_MDP_REPLY), "REPLY");
    CHECK_STR(zfed_mdp_command_name(ZFED_MDP_HEARTBEAT), "HEARTBEAT");
    CHECK_STR(zfed_mdp_command_name(ZFED_MDP_DISCONNECT), "DISCONNECT");
    CHECK_STR(zfed_mdp_command_name((zfed_mdp_command_t)6), "?");
    CHECK_STR(zfed_mdp_command_name((zfed_mdp_command_t)0xff), "?");
    //  The wire bytes are RFC 7's.
    CHECK_INT(ZFED_MDPW_READY, 1);
    CHECK_INT(ZFED_MDPW_REQUEST, 2);
    CHECK_INT(ZFED_MDPW_REPLY, 3);
    CHECK_INT(ZFED_MDPW_HEARTBEAT, 4);
    CHECK_INT(ZFED_MDPW_DISCONNECT, 5);
    CHECK_STR(ZFED_MDPC_HEADER, "MDPC01");
    CHECK_STR(ZFED_MDPW_HEADER, "MDPW01");
}

//  The origin a parse reports, whether it succeeds or not, and the service
//  frame an MDPC01 message leaves behind when it fails (the broker answers
//  from them: an error reply to a client, DISCONNECT to a worker).
static void s_check_origin(s_side_t side, const s_frame_t *frames, size_t count, int rc,
                           zfed_mdp_origin_t origin, int service, const char *label)
{
    s_message_t message;
    s_message_init(&message, frames, count);
    zfed_mdp_t mdp;
    memset(&mdp, 0xa5, sizeof mdp);
    const char *reason = NULL;
    int failures = zfed_test_failures;
    CHECK_INT(s_parse(side, &message, &mdp, &reason), rc);
    CHECK_INT(mdp.origin, origin);
    if (service >= 0)
        CHECK_INT(s_frame_of(&message, mdp.service), service);
    else
        CHECK(mdp.service.data == NULL && mdp.service.size == 0);
    if (zfed_test_failures != failures)
        fprintf(stderr, "  case '%s' at %s\n", label, s_side_name(side));
    s_message_clear(&message);
}

static void s_test_origin(void)
{
    s_frame_t request[] = {EMPTY, MDPC, F("fib"), F("b")};
    s_check_origin(AT_BROKER, request, COUNT(request), 0, ZFED_MDP_ORIGIN_CLIENT, 2, "request");
    s_check_origin(AT_CLIENT, request, COUNT(request), 0, ZFED_MDP_ORIGIN_CLIENT, 2, "reply");
    s_frame_t no_body[] = {EMPTY, MDPC, F("fib")};
    s_check_origin(AT_BROKER, no_body, COUNT(no_body), -1, ZFED_MDP_ORIGIN_CLIENT, 2, "no body");
    s_frame_t bad_name[] = {EMPTY, MDPC, F("f\tb"), F("b")};
    s_check_origin(AT_BROKER, bad_name, COUNT(bad_name), -1, ZFED_MDP_ORIGIN_CLIENT, 2,
                   "bad service");
    s_frame_t no_service[] = {EMPTY, MDPC};
    s_check_origin(AT_BROKER, no_service, COUNT(no_service), -1, ZFED_MDP_ORIGIN_CLIENT, -1,
                   "no service");
    s_frame_t ready6[] = {EMPTY, MDPW, F("\x01"), F("fib"), F("credit=2"), F("x")};
    s_check_origin(AT_BROKER, ready6, COUNT(ready6), -1, ZFED_MDP_ORIGIN_WORKER, -1, "READY x6");
    s_check_origin(AT_WORKER, ready6, COUNT(ready6), -1, ZFED_MDP_ORIGIN_WORKER, -1, "READY x6");
    s_frame_t heartbeat[] = {EMPTY, MDPW, F("\x04")};
    s_check_origin(AT_BROKER, heartbeat, COUNT(heartbeat), 0, ZFED_MDP_ORIGIN_WORKER, -1,
                   "HEARTBEAT");
    s_frame_t unknown[] = {EMPTY, F("MDPX01"), F("fib"), F("b")};
    s_check_origin(AT_BROKER, unknown, COUNT(unknown), -1, ZFED_MDP_ORIGIN_NONE, -1, "MDPX01");
    s_frame_t not_empty[] = {F("x"), MDPC, F("fib"), F("b")};
    s_check_origin(AT_BROKER, not_empty, COUNT(not_empty), -1, ZFED_MDP_ORIGIN_NONE, -1,
                   "frame 0 not empty");
    //  A worker reads only MDPW01 and a client only MDPC01.
    s_check_origin(AT_WORKER, request, COUNT(request), -1, ZFED_MDP_ORIGIN_NONE, -1,
                   "MDPC01 at a worker");
    s_check_origin(AT_CLIENT, heartbeat, COUNT(heartbeat), -1, ZFED_MDP_ORIGIN_NONE, -1,
                   "MDPW01 at a client");
}

//  ---------------------------------------------------------------------
//  READY offers and compact frames (PROTOCOL.md 3, 3.2)

#define PROTOCOL_PATH ZFED_SOURCE_DIR "/schemas/zfed-protocol.json"

static zfed_mdp_offer_t s_offer(const char *text, size_t size, unsigned max)
{
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, text, size);
    zfed_view_t view = {copy, size};
    zfed_mdp_offer_t offer = zfed_mdp_ready_offer(view, max);
    free(copy);
    return offer;
}

#define OFFER(literal) s_offer(literal, sizeof(literal) - 1, 256)

static void s_test_ready_offers(void)
{
    CHECK(OFFER("credit=8 compact=1").compact);
    CHECK_INT(OFFER("credit=8 compact=1").credit, 8);
    CHECK_INT(OFFER("compact=1 credit=8").credit, 8);
    CHECK(OFFER("compact=1").compact);
    CHECK_INT(OFFER("compact=1").credit, 1);
    CHECK(!OFFER("credit=8").compact);
    CHECK(!OFFER("compact=2").compact);
    CHECK(!OFFER("compact=").compact);
    CHECK(!OFFER("compact=11").compact);
    CHECK(!OFFER("compact").compact);
    CHECK(!OFFER("Compact=1").compact);
    //  A bad credit offer is credit 1, and leaves the compact offer alone.
    CHECK_INT(OFFER("credit=x compact=1").credit, 1);
    CHECK(OFFER("credit=x compact=1").compact);
    //  Unknown offers are skipped.
    CHECK(OFFER("later=1 compact=1").compact);
    CHECK_INT(OFFER("credit=4 later compact=1").credit, 4);
    //  An ill-formed list offers nothing.
    CHECK(!OFFER(" compact=1").compact);
    CHECK(!OFFER("compact=1 ").compact);
    CHECK(!OFFER("credit=4  compact=1").compact);
    CHECK_INT(OFFER("credit=4  compact=1").credit, 1);
    CHECK_INT(OFFER("credit=4 credit=4").credit, 1);
    CHECK(!OFFER("compact=1 compact=1").compact);
    CHECK(!OFFER(" ").compact);
    CHECK(!OFFER("compact=1\0").compact);
    //  64 bytes are read, 65 are not.
    char text[ZFED_MDP_EXTENSION_MAX + 1];
    memset(text, 'x', sizeof text);
    memcpy(text, "compact=1 ", 10);
    CHECK(s_offer(text, ZFED_MDP_EXTENSION_MAX, 256).compact);
    CHECK(!s_offer(text, ZFED_MDP_EXTENSION_MAX + 1, 256).compact);
    zfed_view_t nothing = {NULL, 0};
    CHECK(!zfed_mdp_ready_offer(nothing, 256).compact);

    json_t *protocol = zfed_test_load_json(PROTOCOL_PATH);
    REQUIRE(protocol);
    json_t *examples = json_object_get(
        json_object_get(json_object_get(json_object_get(protocol, "mdp"), "extensions"),
                        "ready_offers"),
        "examples");
    REQUIRE(json_object_size(examples) >= 8);
    const char *text_key;
    json_t *expected;
    json_object_foreach(examples, text_key, expected)
    {
        zfed_mdp_offer_t offer = s_offer(text_key, strlen(text_key), 256);
        bool same = offer.credit == json_integer_value(json_object_get(expected, "credit")) &&
                    offer.compact == json_is_true(json_object_get(expected, "compact"));
        CHECK(same);
        if (!same)
            fprintf(stderr, "  offer '%s': credit %u compact %d\n", text_key, offer.credit,
                    offer.compact);
    }
    json_decref(protocol);
}

static void s_test_compact_vectors(void)
{
    json_t *protocol = zfed_test_load_json(PROTOCOL_PATH);
    REQUIRE(protocol);
    json_t *vectors = json_object_get(
        json_object_get(json_object_get(json_object_get(protocol, "mdp"), "extensions"),
                        "compact_frame"),
        "vectors");
    REQUIRE(json_array_size(vectors) >= 3);
    size_t index;
    json_t *vector;
    json_array_foreach(vectors, index, vector)
    {
        zfed_test_bytes_t address, expected;
        REQUIRE(zfed_test_from_hex(json_string_value(json_object_get(vector, "address")),
                                   &address) == 0);
        REQUIRE(zfed_test_from_hex(json_string_value(json_object_get(vector, "hex")), &expected) ==
                0);
        uint8_t command = (uint8_t)json_integer_value(json_object_get(vector, "command"));
        uint8_t out[ZFED_MDP_COMPACT_MAX];
        size_t size = zfed_mdp_compact_write(out, command, address.data, address.size);
        CHECK_INT(size, expected.size);
        CHECK(size == expected.size && memcmp(out, expected.data, size) == 0);
        //  and it reads back: the address, at the side that receives it
        zfed_view_t frames[2] = {{expected.data, expected.size}, {(const uint8_t *)"b", 1}};
        zfed_mdp_t mdp;
        const char *reason = NULL;
        CHECK_INT(zfed_mdp_parse_compact(frames, 2, command, &mdp, &reason), 0);
        CHECK(mdp.address.size == address.size &&
              memcmp(mdp.address.data, address.data, address.size) == 0);
        free(address.data);
        free(expected.data);
    }
    json_decref(protocol);
    //  Only REQUEST and REPLY, and only addresses MDP allows.
    uint8_t out[ZFED_MDP_COMPACT_MAX], address[ZFED_MDP_ADDRESS_MAX + 1];
    memset(address, 0xee, sizeof address);
    CHECK_INT(zfed_mdp_compact_write(out, ZFED_MDPW_READY, address, 8), 0);
    CHECK_INT(zfed_mdp_compact_write(out, ZFED_MDPW_HEARTBEAT, address, 8), 0);
    CHECK_INT(zfed_mdp_compact_write(out, ZFED_MDPW_REPLY, address, 0), 0);
    CHECK_INT(zfed_mdp_compact_write(out, ZFED_MDPW_REPLY, address, ZFED_MDP_ADDRESS_MAX + 1), 0);
    CHECK_INT(zfed_mdp_compact_write(out, ZFED_MDPW_REPLY, address, ZFED_MDP_ADDRESS_MAX),
              ZFED_MDP_COMPACT_MAX);
    CHECK_INT(out[5], 255);
}

//  Parses a compact message given as frames (copied into exact
//  allocations), expecting command at this side: 0, or -1 with a reason
//  that holds needle.
static void s_check_compact(const s_frame_t *frames, size_t count, uint8_t command,
                            const char *needle, const char *label)
{
    s_message_t message;
    s_message_init(&message, frames, count);
    zfed_mdp_t mdp;
    memset(&mdp, 0xa5, sizeof mdp);
    const char *reason = NULL;
    int rc = zfed_mdp_parse_compact(message.views, message.count, command, &mdp, &reason);
    bool ok;
    if (!needle)
        ok = rc == 0 && mdp.command == (zfed_mdp_command_t)command &&
             mdp.origin == ZFED_MDP_ORIGIN_WORKER && mdp.body_index == 1 &&
             mdp.body_count == count - 1 && mdp.address.data == message.views[0].data + 6 &&
             mdp.address.size == message.views[0].size - 6 && mdp.service.size == 0 &&
             mdp.extension.size == 0;
    else
        ok = rc == -1 && reason && strstr(reason, needle) &&
             //  a frame with the magic is answered as an MDPW01 message
             mdp.origin == (count > 0 && message.views[0].size >= 4 &&
                                    memcmp(message.views[0].data, "zfwc", 4) == 0
                                ? ZFED_MDP_ORIGIN_WORKER
                                : ZFED_MDP_ORIGIN_NONE);
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  compact case '%s': rc %d, reason '%s', wanted '%s'\n", label, rc,
                reason ? reason : "(null)", needle ? needle : "(accepted)");
    s_message_clear(&message);
}

static void s_test_compact_parse(void)
{
    s_frame_t body = F("\x98\x01");
    s_frame_t request[] = {F("zfwc\x02\x08\0\0\0\0\0\0\0\x01"), body};
    s_check_compact(request, 2, ZFED_MDPW_REQUEST, NULL, "request");
    s_frame_t reply[] = {F("zfwc\x03\x08\0\0\0\0\0\0\0\x01"), body, F("data"), F("")};
    s_check_compact(reply, 4, ZFED_MDPW_REPLY, NULL, "reply, 3 body frames");
    s_frame_t one[] = {F("zfwc\x03\x01\xff"), body};
    s_check_compact(one, 2, ZFED_MDPW_REPLY, NULL, "one-byte address");
    char storage[ZFED_MDP_COMPACT_MAX];
    memcpy(storage, "zfwc\x03\xff", 6);
    memset(storage + 6, 'a', ZFED_MDP_ADDRESS_MAX);
    s_frame_t longest[] = {{storage, ZFED_MDP_COMPACT_MAX}, body};
    s_check_compact(longest, 2, ZFED_MDPW_REPLY, NULL, "255-byte address");

    //  Refusals: the wrong command for this side, or none known.
    s_check_compact(request, 2, ZFED_MDPW_REPLY, "not REPLY", "REQUEST at the broker");
    s_check_compact(reply, 2, ZFED_MDPW_REQUEST, "not REQUEST", "REPLY at a worker");
    s_frame_t heartbeat[] = {F("zfwc\x04\x08\0\0\0\0\0\0\0\x01"), body};
    s_check_compact(heartbeat, 2, ZFED_MDPW_REPLY, "not REPLY", "HEARTBEAT command");
    s_frame_t zero[] = {F("zfwc\x00\x08\0\0\0\0\0\0\0\x01"), body};
    s_check_compact(zero, 2, ZFED_MDPW_REQUEST, "not REQUEST", "command 0");
    //  Truncated heads.
    s_frame_t magic_only[] = {F("zfwc"), body};
    s_check_compact(magic_only, 2, ZFED_MDPW_REPLY, "6-byte head", "magic only");
    s_frame_t five[] = {F("zfwc\x03"), body};
    s_check_compact(five, 2, ZFED_MDPW_REPLY, "6-byte head", "five bytes");
    //  Lengths that do not match the frame.
    s_frame_t empty_address[] = {F("zfwc\x03\x00"), body};
    s_check_compact(empty_address, 2, ZFED_MDPW_REPLY, "1-255", "address length 0");
    s_frame_t short_address[] = {F("zfwc\x03\x08\0\0\0\0\0\0\x01"), body};
    s_check_compact(short_address, 2, ZFED_MDPW_REPLY, "6 + its address length", "one byte short");
    s_frame_t long_address[] = {F("zfwc\x03\x08\0\0\0\0\0\0\0\0\x01"), body};
    s_check_compact(long_address, 2, ZFED_MDPW_REPLY, "6 + its address length", "one byte over");
    s_frame_t oversize[] = {F("zfwc\x03\xff\0\0\0\0\0\0\0\x01"), body};
    s_check_compact(oversize, 2, ZFED_MDPW_REPLY, "6 + its address length",
                    "length 255 in a 14-byte frame");
    s_frame_t head_only[] = {F("zfwc\x03\x01\x01")};
    s_check_compact(head_only, 1, ZFED_MDPW_REPLY, "body frame", "no body");
    //  Not compact at all.
    s_frame_t mdp[] = {EMPTY, MDPW, F("\x03"), F("12345678"), EMPTY, body};
    s_check_compact(mdp, COUNT(mdp), ZFED_MDPW_REPLY, "not a compact frame", "an MDP REPLY");
    s_frame_t near[] = {F("zfwC\x03\x01\x01"), body};
    s_check_compact(near, 2, ZFED_MDPW_REPLY, "not a compact frame", "magic's case");
    s_frame_t short_magic[] = {F("zfw"), body};
    s_check_compact(short_magic, 2, ZFED_MDPW_REPLY, "not a compact frame", "3 bytes");
    s_check_compact(NULL, 0, ZFED_MDPW_REPLY, "not a compact frame", "no frames");
    //  An MDP parse refuses a compact message (frame 0 is not empty).
    s_check_refused(AT_BROKER, reply, 2, "first frame must be empty", "compact at MDP broker");
    s_check_refused(AT_WORKER, request, 2, "first frame must be empty", "compact at MDP worker");
}

//  ---------------------------------------------------------------------
//  Compact client frames (PROTOCOL.md 3.3)

static json_t *s_client_vectors(json_t *protocol)
{
    return json_object_get(
        json_object_get(json_object_get(json_object_get(protocol, "mdp"), "extensions"),
                        "compact_client_frame"),
        "vectors");
}

static zfed_view_t s_text(const char *text)
{
    return (zfed_view_t){(const uint8_t *)text, text ? strlen(text) : 0};
}

static void s_test_compact_client_vectors(void)
{
    json_t *protocol = zfed_test_load_json(PROTOCOL_PATH);
    REQUIRE(protocol);
    json_t *vectors = s_client_vectors(protocol);
    REQUIRE(json_array_size(vectors) >= 6);
    size_t index;
    json_t *vector;
    json_array_foreach(vectors, index, vector)
    {
        zfed_test_bytes_t expected;
        REQUIRE(zfed_test_from_hex(json_string_value(json_object_get(vector, "hex")), &expected) ==
                0);
        uint8_t command = (uint8_t)json_integer_value(json_object_get(vector, "command"));
        const char *service = json_string_value(json_object_get(vector, "service"));
        json_t *ticket_json = json_object_get(vector, "ticket");
        uint64_t ticket = (uint64_t)json_integer_value(ticket_json);
        bool ticketed = json_is_integer(ticket_json);
        const char *identity = json_string_value(json_object_get(vector, "identity"));
        uint8_t out[ZFED_MDPC_COMPACT_MAX];
        size_t size = zfed_mdp_compact_client_write(out, command, s_text(service),
                                                    ticketed ? &ticket : NULL, s_text(identity));
        CHECK_INT(size, expected.size);
        CHECK(size == expected.size && memcmp(out, expected.data, size) == 0);
        //  and it reads back at the side that receives it
        zfed_view_t frames[2] = {{expected.data, expected.size}, {(const uint8_t *)"b", 1}};
        zfed_mdp_t mdp;
        const char *reason = NULL;
        CHECK_INT(zfed_mdp_parse_compact_client(frames, 2, command, &mdp, &reason), 0);
        CHECK(mdp.service.size == strlen(service) &&
              memcmp(mdp.service.data, service, mdp.service.size) == 0);
        CHECK(mdp.ticketed == ticketed && mdp.ticket == (ticketed ? ticket : 0));
        CHECK(mdp.identity.size == (identity ? strlen(identity) : 0) &&
              (!identity || memcmp(mdp.identity.data, identity, mdp.identity.size) == 0));
        if (zfed_test_failures)
            fprintf(stderr, "  compact client vector %s\n",
                    json_string_value(json_object_get(vector, "name")));
        free(expected.data);
    }
    json_decref(protocol);
    //  What the writer refuses: another command, a service MDP does not
    //  allow, an identity where none goes or none where one must.
    uint8_t out[ZFED_MDPC_COMPACT_MAX];
    char name[ZFED_MDP_SERVICE_MAX + 2], who[ZFED_MDP_IDENTITY_MAX + 2];
    memset(name, 's', sizeof name);
    memset(who, 'w', sizeof who);
    uint64_t ticket = 7;
    zfed_view_t fib = s_text("fib"), none = {NULL, 0};
    zfed_view_t longest = {(const uint8_t *)name, ZFED_MDP_SERVICE_MAX};
    zfed_view_t too_long = {(const uint8_t *)name, ZFED_MDP_SERVICE_MAX + 1};
    zfed_view_t widest = {(const uint8_t *)who, ZFED_MDP_IDENTITY_MAX};
    zfed_view_t too_wide = {(const uint8_t *)who, ZFED_MDP_IDENTITY_MAX + 1};
    CHECK_INT(zfed_mdp_compact_client_write(out, ZFED_MDPW_READY, fib, NULL, none), 0);
    CHECK_INT(zfed_mdp_compact_client_write(out, ZFED_MDPW_HEARTBEAT, fib, NULL, none), 0);
    CHECK_INT(zfed_mdp_compact_client_write(out, ZFED_MDPW_REQUEST, none, NULL, none), 0);
    CHECK_INT(zfed_mdp_compact_client_write(out, ZFED_MDPW_REQUEST, too_long, NULL, none), 0);
    //  A name MDP/0.1 would answer 400 is not written compact either.
    CHECK_INT(zfed_mdp_compact_client_write(out, ZFED_MDPW_REQUEST,
                                            s_text("a\x01"
                                                   "b"),
                                            NULL, none),
              0);
    CHECK_INT(zfed_mdp_compact_client_write(out, ZFED_MDPW_REQUEST, s_text("a\x7f"), NULL, none),
              0);
    CHECK_INT(zfed_mdp_compact_client_write(out, ZFED_MDPW_REQUEST, fib, &ticket, widest), 0);
    CHECK_INT(zfed_mdp_compact_client_write(out, ZFED_MDPW_REPLY, fib, &ticket, none), 0);
    CHECK_INT(zfed_mdp_compact_client_write(out, ZFED_MDPW_REPLY, fib, &ticket, too_wide), 0);
    CHECK_INT(zfed_mdp_compact_client_write(out, ZFED_MDPW_REPLY, fib, NULL, widest), 0);
    //  The largest frame fits ZFED_MDPC_COMPACT_MAX exactly.
    CHECK_INT(zfed_mdp_compact_client_write(out, ZFED_MDPW_REPLY, longest, &ticket, widest),
              ZFED_MDPC_COMPACT_MAX);
    CHECK_INT(out[ZFED_MDPC_COMPACT_LENGTH_AT], 255);
    CHECK_INT(out[ZFED_MDPC_COMPACT_HEAD + 255], 64);
    CHECK_INT(zfed_mdp_compact_client_write(out, ZFED_MDPW_REQUEST, longest, &ticket, none),
              ZFED_MDPC_COMPACT_HEAD + 255);
}

//  Parses a compact client message (frames copied into exact
//  allocations) at the side that receives command: accepted with service
//  size, ticket and identity size as given, or refused with a reason that
//  holds needle and origin NONE (a broken head is dropped, never answered).
static void s_check_client(const s_frame_t *frames, size_t count, uint8_t command,
                           const char *needle, size_t service_size, bool ticketed,
                           size_t identity_size, const char *label)
{
    s_message_t message;
    s_message_init(&message, frames, count);
    zfed_mdp_t mdp;
    memset(&mdp, 0xa5, sizeof mdp);
    const char *reason = NULL;
    int rc = zfed_mdp_parse_compact_client(message.views, message.count, command, &mdp, &reason);
    bool ok;
    if (!needle) {
        const uint8_t *head = message.views[0].data;
        ok = rc == 0 && mdp.command == ZFED_MDP_CLIENT && mdp.origin == ZFED_MDP_ORIGIN_CLIENT &&
             mdp.compact && mdp.body_index == 1 && mdp.body_count == count - 1 &&
             mdp.service.data == head + ZFED_MDPC_COMPACT_HEAD &&
             mdp.service.size == service_size && mdp.ticketed == ticketed &&
             mdp.identity.size == identity_size &&
             (!identity_size ||
              mdp.identity.data == head + ZFED_MDPC_COMPACT_HEAD + service_size + 1) &&
             mdp.address.size == 0 && mdp.extension.size == 0;
    } else
        ok = rc == -1 && reason && strstr(reason, needle) && mdp.origin == ZFED_MDP_ORIGIN_NONE;
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  compact client case '%s': rc %d, reason '%s', wanted '%s'\n", label, rc,
                reason ? reason : "(null)", needle ? needle : "(accepted)");
    s_message_clear(&message);
}

#define ACCEPTED(frames, count, command, service, ticketed, identity, label)                       \
    s_check_client(frames, count, command, NULL, service, ticketed, identity, label)
#define REFUSED(frames, count, command, needle, label)                                             \
    s_check_client(frames, count, command, needle, 0, false, 0, label)

//  Heads as literals: magic, command, flags, 8-byte ticket, S, service.
#define T1        "\0\0\0\0\0\0\0\x01"
#define T0        "\0\0\0\0\0\0\0\0"
#define REQ(rest) F("zfcc\x02" rest)
#define REP(rest) F("zfcc\x03" rest)

static void s_test_compact_client_parse(void)
{
    s_frame_t body = F("\x98\x01");
    const uint8_t Q = ZFED_MDPW_REQUEST, P = ZFED_MDPW_REPLY;
    //  Accepted: with and without a ticket, several body frames, MMI.
    s_frame_t ticketed[] = {REQ("\x01" T1 "\x03"
                                "fib"),
                            body};
    ACCEPTED(ticketed, 2, Q, 3, true, 0, "request with ticket");
    s_frame_t plain[] = {REQ("\x00" T0 "\x03"
                             "fib"),
                         body, F("data"), F(""), F("x")};
    ACCEPTED(plain, 5, Q, 3, false, 0, "request, 4 body frames");
    s_frame_t mmi[] = {REQ("\x00" T0 "\x0a"
                           "mmi.status"),
                       F("")};
    ACCEPTED(mmi, 2, Q, 10, false, 0, "mmi.status, empty question");
    s_frame_t zero_ticket[] = {REQ("\x01" T0 "\x03"
                                   "fib"),
                               body};
    ACCEPTED(zero_ticket, 2, Q, 3, true, 0, "ticket 0 with its flag");
    s_frame_t stamped[] = {REP("\x01" T1 "\x03"
                               "fib"
                               "\x06"
                               "peer:3"),
                           body};
    ACCEPTED(stamped, 2, P, 3, true, 6, "reply stamped peer:3");
    s_frame_t unstamped[] = {REP("\x00" T0 "\x03"
                                 "fib"),
                             body, F("data")};
    ACCEPTED(unstamped, 3, P, 3, false, 0, "reply, no stamp, data frame");
    s_frame_t space[] = {REQ("\x00" T0 "\x0a"
                             "my service"),
                         body};
    ACCEPTED(space, 2, Q, 10, false, 0, "a service with a space");
    //  The longest: a 255-byte service and a 64-byte identity.
    char storage[ZFED_MDPC_COMPACT_MAX];
    memcpy(storage, "zfcc\x03\x01" T1 "\xff", ZFED_MDPC_COMPACT_HEAD);
    memset(storage + ZFED_MDPC_COMPACT_HEAD, 'a', 255);
    storage[ZFED_MDPC_COMPACT_HEAD + 255] = 64;
    memset(storage + ZFED_MDPC_COMPACT_HEAD + 256, '~', 64);
    s_frame_t longest[] = {{storage, ZFED_MDPC_COMPACT_MAX}, body};
    ACCEPTED(longest, 2, P, 255, true, 64, "the largest reply head");
    //  At the broker a request's head has no identity: a 255-byte
    //  service and nothing after.
    char request_storage[ZFED_MDPC_COMPACT_HEAD + 255];
    memcpy(request_storage, "zfcc\x02\x01" T1 "\xff", ZFED_MDPC_COMPACT_HEAD);
    memset(request_storage + ZFED_MDPC_COMPACT_HEAD, ' ', 255);
    s_frame_t longest_request[] = {{request_storage, sizeof request_storage}, body};
    ACCEPTED(longest_request, 2, Q, 255, true, 0, "the largest request head");

    //  Refused: the command.
    REFUSED(ticketed, 2, P, "not REPLY", "REQUEST at a client");
    REFUSED(stamped, 2, Q, "not REQUEST", "REPLY at the broker");
    s_frame_t heartbeat[] = {F("zfcc\x04\x00" T0 "\x03"
                               "fib"),
                             body};
    REFUSED(heartbeat, 2, Q, "not REQUEST", "command 0x04");
    s_frame_t zero[] = {F("zfcc\x00\x00" T0 "\x03"
                          "fib"),
                        body};
    REFUSED(zero, 2, P, "not REPLY", "command 0");
    //  Flags and ticket.
    s_frame_t flag2[] = {REQ("\x02" T0 "\x03"
                             "fib"),
                         body};
    REFUSED(flag2, 2, Q, "unknown flags", "flag 0x02");
    s_frame_t flag3[] = {REQ("\x03" T1 "\x03"
                             "fib"),
                         body};
    REFUSED(flag3, 2, Q, "unknown flags", "flags 0x03");
    s_frame_t flag80[] = {REP("\x80" T0 "\x03"
                              "fib"),
                          body};
    REFUSED(flag80, 2, P, "unknown flags", "flag 0x80");
    s_frame_t stray[] = {REQ("\x00" T1 "\x03"
                             "fib"),
                         body};
    REFUSED(stray, 2, Q, "not its flag", "a ticket without its flag");
    s_frame_t stray_high[] = {REP("\x00"
                                  "\x80\0\0\0\0\0\0\0"
                                  "\x03"
                                  "fib"),
                              body};
    REFUSED(stray_high, 2, P, "not its flag", "a high ticket byte without the flag");
    //  Truncated heads.
    s_frame_t magic_only[] = {F("zfcc"), body};
    REFUSED(magic_only, 2, Q, "15-byte head", "magic only");
    s_frame_t fourteen[] = {REQ("\x01" T1), body};
    REFUSED(fourteen, 2, Q, "15-byte head", "14 bytes, no length");
    //  Lengths that do not match the frame.
    s_frame_t empty_service[] = {REQ("\x00" T0 "\x00"), body};
    REFUSED(empty_service, 2, Q, "1-255 bytes", "service length 0");
    s_frame_t short_service[] = {REQ("\x01" T1 "\x04"
                                     "fib"),
                                 body};
    REFUSED(short_service, 2, Q, "does not match", "service one byte short");
    s_frame_t long_service[] = {REQ("\x01" T1 "\x02"
                                    "fib"),
                                body};
    REFUSED(long_service, 2, Q, "does not match", "one byte after the service");
    s_frame_t oversize[] = {REQ("\x01" T1 "\xff"
                                "fib"),
                            body};
    REFUSED(oversize, 2, Q, "does not match", "length 255 in an 18-byte frame");
    s_frame_t request_identity[] = {REQ("\x01" T1 "\x03"
                                        "fib"
                                        "\x06"
                                        "peer:3"),
                                    body};
    REFUSED(request_identity, 2, Q, "does not match", "an identity in a request");
    s_frame_t unstamped_identity[] = {REP("\x00" T0 "\x03"
                                          "fib"
                                          "\x06"
                                          "peer:3"),
                                      body};
    REFUSED(unstamped_identity, 2, P, "does not match", "an identity with no stamp flag");
    //  A stamp's identity.
    s_frame_t no_identity[] = {REP("\x01" T1 "\x03"
                                   "fib"),
                               body};
    REFUSED(no_identity, 2, P, "no identity length", "stamp without identity");
    s_frame_t identity0[] = {REP("\x01" T1 "\x03"
                                 "fib"
                                 "\x00"),
                             body};
    REFUSED(identity0, 2, P, "1-64 bytes", "identity length 0");
    char wide[ZFED_MDPC_COMPACT_HEAD + 3 + 1 + 65];
    memcpy(wide,
           "zfcc\x03\x01" T1 "\x03"
           "fib"
           "\x41",
           ZFED_MDPC_COMPACT_HEAD + 4);
    memset(wide + ZFED_MDPC_COMPACT_HEAD + 4, 'w', 65);
    s_frame_t identity65[] = {{wide, sizeof wide}, body};
    REFUSED(identity65, 2, P, "1-64 bytes", "identity length 65");
    s_frame_t identity_short[] = {REP("\x01" T1 "\x03"
                                      "fib"
                                      "\x07"
                                      "peer:3"),
                                  body};
    REFUSED(identity_short, 2, P, "does not match", "identity one byte short");
    s_frame_t identity_long[] = {REP("\x01" T1 "\x03"
                                     "fib"
                                     "\x05"
                                     "peer:3"),
                                 body};
    REFUSED(identity_long, 2, P, "does not match", "one byte after the identity");
    s_frame_t identity_control[] = {REP("\x01" T1 "\x03"
                                        "fib"
                                        "\x06"
                                        "peer\n3"),
                                    body};
    REFUSED(identity_control, 2, P, "identity is not printable", "a newline in the identity");
    s_frame_t identity_high[] = {REP("\x01" T1 "\x03"
                                     "fib"
                                     "\x06"
                                     "peer\x80"
                                     "3"),
                                 body};
    REFUSED(identity_high, 2, P, "identity is not printable", "0x80 in the identity");
    //  The service name's bytes.
    s_frame_t control[] = {REQ("\x01" T1 "\x03"
                               "f\x1f"
                               "b"),
                           body};
    REFUSED(control, 2, Q, "invalid service name", "0x1f in the service");
    s_frame_t del[] = {REQ("\x01" T1 "\x03"
                           "f\x7f"
                           "b"),
                       body};
    REFUSED(del, 2, Q, "invalid service name", "0x7f in the service");
    s_frame_t utf8[] = {REP("\x00" T0 "\x03"
                            "f\xc3\xa9"),
                        body};
    REFUSED(utf8, 2, P, "invalid service name", "UTF-8 in the service");
    //  No body.
    s_frame_t head_only[] = {REQ("\x01" T1 "\x03"
                                 "fib")};
    REFUSED(head_only, 1, Q, "body frame", "request, no body");
    s_frame_t reply_only[] = {REP("\x01" T1 "\x03"
                                  "fib"
                                  "\x06"
                                  "peer:3")};
    REFUSED(reply_only, 1, P, "body frame", "reply, no body");
    //  Not compact client frames at all.
    s_frame_t mdp[] = {EMPTY, MDPC, F("fib"), body};
    REFUSED(mdp, COUNT(mdp), Q, "not a compact client frame", "an MDP request");
    s_frame_t worker_leg[] = {F("zfwc\x02\x08" T1), body};
    REFUSED(worker_leg, 2, Q, "not a compact client frame", "the worker leg's frame");
    s_frame_t near[] = {F("zfcC\x02\x00" T0 "\x03"
                          "fib"),
                        body};
    REFUSED(near, 2, Q, "not a compact client frame", "magic's case");
    s_frame_t short_magic[] = {F("zfc"), body};
    REFUSED(short_magic, 2, Q, "not a compact client frame", "3 bytes");
    s_check_client(NULL, 0, Q, "not a compact client frame", 0, false, 0, "no frames");
    //  Neither leg's other parser takes them.
    s_check_refused(AT_BROKER, ticketed, 2, "first frame must be empty", "zfcc at an MDP broker");
    s_check_refused(AT_CLIENT, stamped, 2, "first frame must be empty", "zfcc at an MDP client");
    s_check_compact(ticketed, 2, ZFED_MDPW_REQUEST, "not a compact frame", "zfcc at a worker");
}

int main(void)
{
    s_test_origin();
    s_test_client_messages();
    s_test_worker_messages();
    s_test_header_refusals();
    s_test_client_refusals();
    s_test_worker_refusals();
    s_test_output_cleared();
    s_test_ready_credit();
    s_test_ready_offers();
    s_test_compact_vectors();
    s_test_compact_parse();
    s_test_compact_client_vectors();
    s_test_compact_client_parse();
    s_test_service_names();
    s_test_command_names();
    ZFED_TEST_END();
}
