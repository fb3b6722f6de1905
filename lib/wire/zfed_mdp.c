/*  zfed_mdp - validating the Majordomo envelope.

    Every frame count and size is checked before it is looked at, so a
    message with too few frames, an unknown header or an oversized address
    is refused with a reason instead of being half-read (zguide's broker
    asserts on such input; a broker must never trust its peers).
*/
#include "zfed/zfed_mdp.h"

#include <string.h>

//  Frames before the body: "" header service / "" header cmd address "".
#define CLIENT_ENVELOPE_FRAMES  3
#define REQUEST_ENVELOPE_FRAMES 5
#define READY_FRAMES            4
#define BARE_COMMAND_FRAMES     3

static bool s_is(zfed_view_t view, const char *text, size_t length)
{
    return view.size == length && memcmp(view.data, text, length) == 0;
}

bool zfed_mdp_service_valid(zfed_view_t service)
{
    if (service.size == 0 || service.size > ZFED_MDP_SERVICE_MAX)
        return false;
    for (size_t index = 0; index < service.size; index++)
        if (service.data[index] < 0x20 || service.data[index] > 0x7e)
            return false;
    return true;
}

unsigned zfed_mdp_ready_credit(zfed_view_t extension, unsigned max)
{
    static const char prefix[] = "credit=";
    size_t prefix_size = sizeof prefix - 1;
    //  Longest accepted number of digits keeps the arithmetic below from
    //  overflowing whatever max is.
    enum { DIGITS_MAX = 6 };
    if (extension.size <= prefix_size || extension.size > prefix_size + DIGITS_MAX ||
        memcmp(extension.data, prefix, prefix_size) != 0)
        return 1;
    unsigned value = 0;
    for (size_t index = prefix_size; index < extension.size; index++) {
        uint8_t digit = extension.data[index];
        if (digit < '0' || digit > '9')
            return 1;
        value = value * 10 + (unsigned)(digit - '0');
    }
    if (value < 1)
        return 1;
    return value > max ? max : value;
}

bool zfed_mdp_is_mmi(zfed_view_t service)
{
    size_t prefix = strlen(ZFED_MMI_PREFIX);
    return service.size >= prefix && memcmp(service.data, ZFED_MMI_PREFIX, prefix) == 0;
}

const char *zfed_mdp_command_name(zfed_mdp_command_t command)
{
    switch (command) {
    case ZFED_MDP_CLIENT:
        return "CLIENT";
    case ZFED_MDP_READY:
        return "READY";
    case ZFED_MDP_REQUEST:
        return "REQUEST";
    case ZFED_MDP_REPLY:
        return "REPLY";
    case ZFED_MDP_HEARTBEAT:
        return "HEARTBEAT";
    case ZFED_MDP_DISCONNECT:
        return "DISCONNECT";
    }
    return "?";
}

static void s_clear(zfed_mdp_t *mdp)
{
    memset(mdp, 0, sizeof *mdp);
}

//  "" service body...  after the header frame.
static int s_parse_client(const zfed_view_t *frames, size_t count, zfed_mdp_t *mdp,
                          const char **reason)
{
    if (count > 2)
        mdp->service = frames[2]; //  kept on failure too, for an error reply
    if (count < CLIENT_ENVELOPE_FRAMES + 1) {
        *reason = "MDPC01 message needs a service frame and at least one body frame";
        return -1;
    }
    if (!zfed_mdp_service_valid(frames[2])) {
        *reason = "invalid service name (1-255 printable ASCII characters, 0x20-0x7E)";
        return -1;
    }
    mdp->command = ZFED_MDP_CLIENT;
    mdp->service = frames[2];
    mdp->body_index = CLIENT_ENVELOPE_FRAMES;
    mdp->body_count = count - CLIENT_ENVELOPE_FRAMES;
    return 0;
}

//  "" "MDPW01" cmd ... : shapes of each command, whoever sends it.
static int s_parse_worker(const zfed_view_t *frames, size_t count, zfed_mdp_t *mdp,
                          const char **reason)
{
    if (count < BARE_COMMAND_FRAMES || frames[2].size != 1) {
        *reason = "MDPW01 message needs a one-byte command frame";
        return -1;
    }
    uint8_t command = frames[2].data[0];
    switch (command) {
    case ZFED_MDPW_READY:
        //  RFC 7 READY has four frames; zfed workers may add a fifth
        //  (credit), which plain brokers ignore.
        if (count < READY_FRAMES || count > READY_FRAMES + 1 ||
            !zfed_mdp_service_valid(frames[3])) {
            *reason = "READY needs exactly one valid service frame";
            return -1;
        }
        mdp->service = frames[3];
        if (count > READY_FRAMES)
            mdp->extension = frames[4];
        break;
    case ZFED_MDPW_REQUEST:
    case ZFED_MDPW_REPLY:
        if (count < REQUEST_ENVELOPE_FRAMES + 1) {
            *reason = "REQUEST/REPLY needs address, empty frame and body";
            return -1;
        }
        if (frames[3].size == 0 || frames[3].size > ZFED_MDP_ADDRESS_MAX) {
            *reason = "REQUEST/REPLY client address must be 1-255 bytes";
            return -1;
        }
        if (frames[4].size != 0) {
            *reason = "REQUEST/REPLY address must be followed by an empty frame";
            return -1;
        }
        mdp->address = frames[3];
        mdp->body_index = REQUEST_ENVELOPE_FRAMES;
        mdp->body_count = count - REQUEST_ENVELOPE_FRAMES;
        break;
    case ZFED_MDPW_HEARTBEAT:
    case ZFED_MDPW_DISCONNECT:
        if (count != BARE_COMMAND_FRAMES) {
            *reason = "HEARTBEAT/DISCONNECT take no frames after the command";
            return -1;
        }
        break;
    default:
        *reason = "unknown MDPW01 command";
        return -1;
    }
    mdp->command = (zfed_mdp_command_t)command;
    return 0;
}

//  Common to every side: the empty frame and a known header.
static int s_parse_header(const zfed_view_t *frames, size_t count, const char **reason)
{
    if (count < 2) {
        *reason = "too few frames for an MDP message";
        return -1;
    }
    if (frames[0].size != 0) {
        *reason = "first frame must be empty";
        return -1;
    }
    return 0;
}

int zfed_mdp_parse_at_broker(const zfed_view_t *frames, size_t count, zfed_mdp_t *mdp,
                             const char **reason)
{
    s_clear(mdp);
    if (s_parse_header(frames, count, reason) != 0)
        return -1;
    if (s_is(frames[1], ZFED_MDPC_HEADER, ZFED_MDP_HEADER_SIZE)) {
        mdp->origin = ZFED_MDP_ORIGIN_CLIENT;
        return s_parse_client(frames, count, mdp, reason);
    }
    if (s_is(frames[1], ZFED_MDPW_HEADER, ZFED_MDP_HEADER_SIZE)) {
        mdp->origin = ZFED_MDP_ORIGIN_WORKER;
        return s_parse_worker(frames, count, mdp, reason);
    }
    *reason = "unknown protocol header (expected MDPC01 or MDPW01)";
    return -1;
}

int zfed_mdp_parse_at_worker(const zfed_view_t *frames, size_t count, zfed_mdp_t *mdp,
                             const char **reason)
{
    s_clear(mdp);
    if (s_parse_header(frames, count, reason) != 0)
        return -1;
    if (!s_is(frames[1], ZFED_MDPW_HEADER, ZFED_MDP_HEADER_SIZE)) {
        *reason = "unknown protocol header (expected MDPW01)";
        return -1;
    }
    mdp->origin = ZFED_MDP_ORIGIN_WORKER;
    return s_parse_worker(frames, count, mdp, reason);
}

int zfed_mdp_parse_at_client(const zfed_view_t *frames, size_t count, zfed_mdp_t *mdp,
                             const char **reason)
{
    s_clear(mdp);
    if (s_parse_header(frames, count, reason) != 0)
        return -1;
    if (!s_is(frames[1], ZFED_MDPC_HEADER, ZFED_MDP_HEADER_SIZE)) {
        *reason = "unknown protocol header (expected MDPC01)";
        return -1;
    }
    mdp->origin = ZFED_MDP_ORIGIN_CLIENT;
    return s_parse_client(frames, count, mdp, reason);
}
