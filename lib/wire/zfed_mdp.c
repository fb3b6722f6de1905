/*  zfed_mdp - validating the Majordomo envelope.

    Every frame count and size is checked before it is looked at, so a
    message with too few frames, an unknown header or an oversized address
    is refused with a reason instead of being half-read (zguide's broker
    asserts on such input; a broker must never trust its peers).
*/
#include "zfed/zfed_mdp.h"
#include "wire/zfed_stamp.h"

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

//  Every byte printable ASCII, 0x20-0x7E (RFC 7's service names, and a
//  stamp's identity).
static bool s_printable(zfed_view_t view)
{
    for (size_t index = 0; index < view.size; index++)
        if (view.data[index] < 0x20 || view.data[index] > 0x7e)
            return false;
    return true;
}

bool zfed_mdp_service_valid(zfed_view_t service)
{
    return service.size > 0 && service.size <= ZFED_MDP_SERVICE_MAX && s_printable(service);
}

//  "credit=" and 1-6 digits: N in 1..max, else 1.
static unsigned s_credit_offer(const uint8_t *data, size_t size, unsigned max)
{
    static const char prefix[] = "credit=";
    size_t prefix_size = sizeof prefix - 1;
    //  Longest accepted number of digits keeps the arithmetic below from
    //  overflowing whatever max is.
    enum { DIGITS_MAX = 6 };
    if (size <= prefix_size || size > prefix_size + DIGITS_MAX)
        return 1;
    unsigned value = 0;
    for (size_t index = prefix_size; index < size; index++) {
        uint8_t digit = data[index];
        if (digit < '0' || digit > '9')
            return 1;
        value = value * 10 + (unsigned)(digit - '0');
    }
    if (value < 1)
        return 1;
    return value > max ? max : value;
}

//  True when the offer's key (up to and with its '=') is key.
static bool s_offer_key(const uint8_t *data, size_t size, const char *key)
{
    size_t length = strlen(key);
    return size >= length && memcmp(data, key, length) == 0;
}

zfed_mdp_offer_t zfed_mdp_ready_offer(zfed_view_t extension, unsigned max)
{
    zfed_mdp_offer_t none = {.credit = 1, .compact = false};
    zfed_mdp_offer_t offer = none;
    if (extension.size == 0 || extension.size > ZFED_MDP_EXTENSION_MAX)
        return none;
    bool seen_credit = false, seen_compact = false;
    size_t start = 0;
    while (start <= extension.size) {
        const uint8_t *data = extension.data + start;
        const uint8_t *space = memchr(data, ' ', extension.size - start);
        size_t size = space ? (size_t)(space - data) : extension.size - start;
        if (size == 0)
            return none; //  leading, trailing or doubled space
        if (s_offer_key(data, size, "credit=")) {
            if (seen_credit)
                return none;
            seen_credit = true;
            offer.credit = s_credit_offer(data, size, max);
        } else if (s_offer_key(data, size, "compact=")) {
            if (seen_compact)
                return none;
            seen_compact = true;
            offer.compact = size == strlen(ZFED_MDP_OFFER_COMPACT) &&
                            memcmp(data, ZFED_MDP_OFFER_COMPACT, size) == 0;
        } //  any other offer is left for a later version to read
        start += size + 1;
    }
    return offer;
}

unsigned zfed_mdp_ready_credit(zfed_view_t extension, unsigned max)
{
    return zfed_mdp_ready_offer(extension, max).credit;
}

//  ---------------------------------------------------------------------
//  Compact frames: the worker leg's (PROTOCOL.md 3.2) and the client leg's
//  (3.3) start alike, a 4-byte magic and the command byte, and are followed
//  by at least one body frame; what lies between is each leg's own.

typedef struct {
    const char *magic;
    size_t head;              //  bytes every frame of the leg has at least
    zfed_mdp_origin_t origin; //  who is answered once the magic is seen
    const char *not_magic;
    const char *too_short;
} s_leg_t;

static const s_leg_t s_worker_leg = {
    ZFED_MDP_COMPACT_MAGIC, ZFED_MDP_COMPACT_HEAD, ZFED_MDP_ORIGIN_WORKER,
    "not a compact frame (expected \"zfwc\")", "compact frame shorter than its 6-byte head"};
//  A broken compact client head addresses no answer: origin stays NONE.
static const s_leg_t s_client_leg = {ZFED_MDPC_COMPACT_MAGIC, ZFED_MDPC_COMPACT_HEAD,
                                     ZFED_MDP_ORIGIN_NONE,
                                     "not a compact client frame (expected \"zfcc\")",
                                     "compact client frame shorter than its 15-byte head"};

static bool s_has_magic(zfed_view_t frame, const char *magic)
{
    return frame.size >= ZFED_MDP_COMPACT_MAGIC_SIZE &&
           memcmp(frame.data, magic, ZFED_MDP_COMPACT_MAGIC_SIZE) == 0;
}

bool zfed_mdp_is_compact(zfed_view_t frame)
{
    return s_has_magic(frame, ZFED_MDP_COMPACT_MAGIC);
}

bool zfed_mdp_is_compact_client(zfed_view_t frame)
{
    return s_has_magic(frame, ZFED_MDPC_COMPACT_MAGIC);
}

//  The magic, the head's fixed size and the command this side may get.
static int s_compact_open(const s_leg_t *leg, const zfed_view_t *frames, size_t count,
                          uint8_t command, zfed_mdp_t *mdp, const char **reason)
{
    memset(mdp, 0, sizeof *mdp);
    if (count < 1 || !s_has_magic(frames[0], leg->magic)) {
        *reason = leg->not_magic;
        return -1;
    }
    mdp->origin = leg->origin;
    if (frames[0].size < leg->head) {
        *reason = leg->too_short;
        return -1;
    }
    if (frames[0].data[ZFED_MDP_COMPACT_COMMAND_AT] != command) {
        *reason = command == ZFED_MDPW_REQUEST ? "compact frame command is not REQUEST (0x02)"
                                               : "compact frame command is not REPLY (0x03)";
        return -1;
    }
    return 0;
}

//  The body frames after the compact frame: at least one.
static int s_compact_body(size_t count, zfed_mdp_t *mdp, const char **reason)
{
    if (count < 2) {
        *reason = "compact REQUEST/REPLY needs a body frame";
        return -1;
    }
    mdp->compact = true;
    mdp->body_index = 1;
    mdp->body_count = count - 1;
    return 0;
}

static void s_compact_start(uint8_t *out, const char *magic, uint8_t command)
{
    memcpy(out, magic, ZFED_MDP_COMPACT_MAGIC_SIZE);
    out[ZFED_MDP_COMPACT_COMMAND_AT] = command;
}

static bool s_compact_command(uint8_t command)
{
    return command == ZFED_MDPW_REQUEST || command == ZFED_MDPW_REPLY;
}

size_t zfed_mdp_compact_write(uint8_t *out, uint8_t command, const uint8_t *address,
                              size_t address_size)
{
    if (!s_compact_command(command) || address_size == 0 || address_size > ZFED_MDP_ADDRESS_MAX)
        return 0;
    s_compact_start(out, ZFED_MDP_COMPACT_MAGIC, command);
    out[ZFED_MDP_COMPACT_LENGTH_AT] = (uint8_t)address_size;
    memcpy(out + ZFED_MDP_COMPACT_HEAD, address, address_size);
    return ZFED_MDP_COMPACT_HEAD + address_size;
}

int zfed_mdp_parse_compact(const zfed_view_t *frames, size_t count, uint8_t command,
                           zfed_mdp_t *mdp, const char **reason)
{
    if (s_compact_open(&s_worker_leg, frames, count, command, mdp, reason) != 0)
        return -1;
    zfed_view_t head = frames[0];
    size_t address_size = head.data[ZFED_MDP_COMPACT_LENGTH_AT];
    if (address_size == 0) {
        *reason = "compact frame address must be 1-255 bytes";
        return -1;
    }
    if (head.size != ZFED_MDP_COMPACT_HEAD + address_size) {
        *reason = "compact frame size is not 6 + its address length";
        return -1;
    }
    if (s_compact_body(count, mdp, reason) != 0)
        return -1;
    mdp->command = (zfed_mdp_command_t)command;
    mdp->address.data = head.data + ZFED_MDP_COMPACT_HEAD;
    mdp->address.size = address_size;
    return 0;
}

size_t zfed_mdp_compact_client_write(uint8_t *out, uint8_t command, zfed_view_t service,
                                     const uint64_t *ticket, zfed_view_t identity)
{
    //  Only a reply's stamp carries an identity; a stamp always has one.
    bool stamp = command == ZFED_MDPW_REPLY && ticket;
    if (!s_compact_command(command) || !zfed_mdp_service_valid(service) ||
        (stamp ? identity.size == 0 || identity.size > ZFED_MDP_IDENTITY_MAX : identity.size != 0))
        return 0;
    s_compact_start(out, ZFED_MDPC_COMPACT_MAGIC, command);
    out[ZFED_MDPC_COMPACT_FLAGS_AT] = ticket ? ZFED_MDPC_COMPACT_TICKET : 0;
    zfed_ticket_put(out + ZFED_MDPC_COMPACT_TICKET_AT, ticket ? *ticket : 0);
    out[ZFED_MDPC_COMPACT_LENGTH_AT] = (uint8_t)service.size;
    memcpy(out + ZFED_MDPC_COMPACT_HEAD, service.data, service.size);
    size_t size = ZFED_MDPC_COMPACT_HEAD + service.size;
    if (stamp) {
        out[size++] = (uint8_t)identity.size;
        memcpy(out + size, identity.data, identity.size);
        size += identity.size;
    }
    return size;
}

int zfed_mdp_parse_compact_client(const zfed_view_t *frames, size_t count, uint8_t command,
                                  zfed_mdp_t *mdp, const char **reason)
{
    if (s_compact_open(&s_client_leg, frames, count, command, mdp, reason) != 0)
        return -1;
    zfed_view_t head = frames[0];
    uint8_t flags = head.data[ZFED_MDPC_COMPACT_FLAGS_AT];
    if (flags & ~ZFED_MDPC_COMPACT_TICKET) {
        *reason = "compact client frame has unknown flags (only 0x01, the ticket, is defined)";
        return -1;
    }
    bool ticketed = flags & ZFED_MDPC_COMPACT_TICKET;
    uint64_t ticket = zfed_ticket_get(head.data + ZFED_MDPC_COMPACT_TICKET_AT);
    if (!ticketed && ticket != 0) {
        *reason = "compact client frame has a ticket but not its flag";
        return -1;
    }
    zfed_view_t service = {head.data + ZFED_MDPC_COMPACT_HEAD,
                           head.data[ZFED_MDPC_COMPACT_LENGTH_AT]};
    if (service.size == 0) {
        *reason = "compact client frame service must be 1-255 bytes";
        return -1;
    }
    size_t end = ZFED_MDPC_COMPACT_HEAD + service.size;
    zfed_view_t identity = {NULL, 0};
    if (command == ZFED_MDPW_REPLY && ticketed) {
        //  A stamp: the identity's length, then the identity.
        if (head.size <= end) {
            *reason = "compact client REPLY with a stamp has no identity length";
            return -1;
        }
        identity = (zfed_view_t){head.data + end + 1, head.data[end]};
        if (identity.size == 0 || identity.size > ZFED_MDP_IDENTITY_MAX) {
            *reason = "compact client REPLY stamp identity must be 1-64 bytes";
            return -1;
        }
        end += 1 + identity.size;
    }
    if (head.size != end) {
        *reason = "compact client frame size does not match its lengths";
        return -1;
    }
    if (!zfed_mdp_service_valid(service)) {
        *reason = "invalid service name (1-255 printable ASCII characters, 0x20-0x7E)";
        return -1;
    }
    if (!s_printable(identity)) {
        *reason = "compact client REPLY stamp identity is not printable ASCII (0x20-0x7E)";
        return -1;
    }
    if (s_compact_body(count, mdp, reason) != 0)
        return -1;
    mdp->origin = ZFED_MDP_ORIGIN_CLIENT;
    mdp->command = ZFED_MDP_CLIENT;
    mdp->service = service;
    mdp->ticketed = ticketed;
    mdp->ticket = ticket;
    mdp->identity = identity;
    return 0;
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
