/*  zfed_mdp - the Majordomo Protocol envelope (7/MDP, MDP/0.1) and 8/MMI.

    Parsing works on views of the frames of one multipart message, without
    copying or allocating, so the broker can validate a message and then
    forward its body frames untouched.  Each parse function is given the
    frames as its peer's socket delivers them:

    at a broker (ROUTER, routing id already removed):
        client REQUEST  ""  "MDPC01"  service  body...
        worker command  ""  "MDPW01"  cmd  ...
    at a worker (DEALER):   ""  "MDPW01"  cmd  ...
    at a client (DEALER):   ""  "MDPC01"  service  body...

    A parse never looks at bodies: those are opaque to MDP.
*/
#ifndef ZFED_MDP_H_INCLUDED
#define ZFED_MDP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZFED_MDPC_HEADER     "MDPC01"
#define ZFED_MDPW_HEADER     "MDPW01"
#define ZFED_MDP_HEADER_SIZE 6

//  Worker command bytes (frame 2 of every MDP/Worker message).
#define ZFED_MDPW_READY      0x01
#define ZFED_MDPW_REQUEST    0x02
#define ZFED_MDPW_REPLY      0x03
#define ZFED_MDPW_HEARTBEAT  0x04
#define ZFED_MDPW_DISCONNECT 0x05

//  Limits on envelope frames.  Service names are what RFC 7 calls a
//  printable string: 1-255 bytes of printable ASCII, 0x20-0x7E, spaces
//  included; client addresses are routing ids (libzmq: at most 255 bytes).
#define ZFED_MDP_SERVICE_MAX 255
#define ZFED_MDP_ADDRESS_MAX 255

//  zfed compact worker frames (PROTOCOL.md 3.2): between a zfed broker and
//  a zfed worker that agreed on them in READY, a REQUEST or REPLY is one
//  compact frame, then its body frames:
//      offset 0, 4 bytes   "zfwc"
//      offset 4, 1 byte    command (0x02 REQUEST, 0x03 REPLY)
//      offset 5, 1 byte    L, the address length, 1..255
//      offset 6, L bytes   the address (opaque, as MDP frame 3)
//  and nothing after it: the frame is exactly 6 + L bytes.
#define ZFED_MDP_COMPACT_MAGIC      "zfwc"
#define ZFED_MDP_COMPACT_MAGIC_SIZE 4
#define ZFED_MDP_COMPACT_COMMAND_AT 4
#define ZFED_MDP_COMPACT_LENGTH_AT  5
#define ZFED_MDP_COMPACT_HEAD       6
#define ZFED_MDP_COMPACT_MAX        (ZFED_MDP_COMPACT_HEAD + ZFED_MDP_ADDRESS_MAX)
//  zfed compact client frames (PROTOCOL.md 3.3): between a zfed client and
//  a zfed broker whose mmi.status says "compact_clients": true, a request
//  or reply is one compact client frame, then its body frames:
//      offset 0, 4 bytes   "zfcc"
//      offset 4, 1 byte    command (0x02 REQUEST, client to broker; 0x03
//                          REPLY, broker to client: MDPW01's numbers)
//      offset 5, 1 byte    flags: 0, or ZFED_MDPC_COMPACT_TICKET (a
//                          request's ticket, a reply's stamp)
//      offset 6, 8 bytes   the ticket, big-endian (all zero without the flag)
//      offset 14, 1 byte   S, the service length, 1..255
//      offset 15, S bytes  the service name
//  and, in a REPLY with the flag only, the stamp's identity:
//      offset 15 + S, 1 byte   I, 1..ZFED_MDP_IDENTITY_MAX
//      offset 16 + S, I bytes  the identity (printable ASCII)
//  and nothing after it.
#define ZFED_MDPC_COMPACT_MAGIC     "zfcc"
#define ZFED_MDPC_COMPACT_FLAGS_AT  5
#define ZFED_MDPC_COMPACT_TICKET_AT 6
#define ZFED_MDPC_COMPACT_LENGTH_AT 14
#define ZFED_MDPC_COMPACT_HEAD      15
#define ZFED_MDPC_COMPACT_TICKET    0x01
//  Longest stamp identity: "curve:" and a 40-character Z85 key is 46.
#define ZFED_MDP_IDENTITY_MAX 64
#define ZFED_MDPC_COMPACT_MAX                                                                      \
    (ZFED_MDPC_COMPACT_HEAD + ZFED_MDP_SERVICE_MAX + 1 + ZFED_MDP_IDENTITY_MAX)
//  READY's fifth frame is a list of offers separated by single spaces
//  ("credit=8 compact=1"), at most this long; a longer one offers nothing.
#define ZFED_MDP_EXTENSION_MAX 64
#define ZFED_MDP_OFFER_COMPACT "compact=1"

//  8/MMI: services under this prefix are answered by the broker itself.
#define ZFED_MMI_PREFIX          "mmi."
#define ZFED_MMI_SERVICE         "mmi.service"
#define ZFED_MMI_STATUS          "mmi.status" //  zfed: broker load and counters (msgpack map)
#define ZFED_MMI_FOUND           "200"
#define ZFED_MMI_NOT_FOUND       "404"
#define ZFED_MMI_NOT_IMPLEMENTED "501"

//  Default heartbeat timing (zguide's): interval, and intervals missed
//  before the peer counts as gone.
#define ZFED_MDP_HEARTBEAT_MS_DEFAULT 2500
#define ZFED_MDP_LIVENESS_DEFAULT     3

typedef struct {
    const uint8_t *data;
    size_t size;
} zfed_view_t;

typedef enum {
    ZFED_MDP_CLIENT = 0,                  //  MDPC01 request (at broker) or reply (at client)
    ZFED_MDP_READY = ZFED_MDPW_READY,     //  with service
    ZFED_MDP_REQUEST = ZFED_MDPW_REQUEST, //  with address and body
    ZFED_MDP_REPLY = ZFED_MDPW_REPLY,     //  with address and body
    ZFED_MDP_HEARTBEAT = ZFED_MDPW_HEARTBEAT,
    ZFED_MDP_DISCONNECT = ZFED_MDPW_DISCONNECT
} zfed_mdp_command_t;

//  Which protocol a message claims, by its header frame: what is left to
//  answer when the rest of it is invalid.
typedef enum {
    ZFED_MDP_ORIGIN_NONE = 0, //  no MDP header: nobody to answer
    ZFED_MDP_ORIGIN_CLIENT,   //  MDPC01
    ZFED_MDP_ORIGIN_WORKER    //  MDPW01
} zfed_mdp_origin_t;

//  One parsed message: views into the caller's frames.
typedef struct {
    //  Set by every parse, also one that fails (then, for an MDPC01
    //  message with a frame 2, service is that frame as received, valid or
    //  not, so a broker can echo it in an error reply).
    zfed_mdp_origin_t origin;
    zfed_mdp_command_t command;
    zfed_view_t service;   //  CLIENT, READY
    zfed_view_t address;   //  REQUEST, REPLY
    zfed_view_t extension; //  READY: optional fifth frame (zfed "credit=N"), else empty
    size_t body_index;     //  first body frame (CLIENT, REQUEST, REPLY)
    size_t body_count;     //  number of body frames, at least 1 where there is a body
    bool compact;          //  it came as a compact frame (PROTOCOL.md 3.2, 3.3)
    //  A compact client frame's ticket (request) or stamp (reply): ticket,
    //  and in a reply the identity who answered (a view into the frame).
    bool ticketed;
    uint64_t ticket;
    zfed_view_t identity;
} zfed_mdp_t;

//  Each returns 0 and fills *mdp, or -1 and points *reason at a constant
//  string saying what was wrong (for logs and counters).
int zfed_mdp_parse_at_broker(const zfed_view_t *frames, size_t count, zfed_mdp_t *mdp,
                             const char **reason);
int zfed_mdp_parse_at_worker(const zfed_view_t *frames, size_t count, zfed_mdp_t *mdp,
                             const char **reason);
int zfed_mdp_parse_at_client(const zfed_view_t *frames, size_t count, zfed_mdp_t *mdp,
                             const char **reason);

//  What a READY's extension frame offers (PROTOCOL.md 3): credit N in
//  1..max ("credit=N", else 1: plain MDP, one request at a time) and
//  compact frames ("compact=1").  An empty, overlong or ill-formed frame
//  (an empty offer, a repeated key) offers nothing: credit 1, no compact.
typedef struct {
    unsigned credit;
    bool compact;
} zfed_mdp_offer_t;

zfed_mdp_offer_t zfed_mdp_ready_offer(zfed_view_t extension, unsigned max);
//  The credit of zfed_mdp_ready_offer.
unsigned zfed_mdp_ready_credit(zfed_view_t extension, unsigned max);

//  True when frame starts with the compact magic: a compact REQUEST or
//  REPLY, well-formed or not (never an MDP message: its frame 0 is empty).
bool zfed_mdp_is_compact(zfed_view_t frame);
//  Writes the compact frame of command (REQUEST or REPLY) and address
//  (1..255 bytes) into out (ZFED_MDP_COMPACT_MAX bytes).  Returns its size,
//  or 0 (nothing written) for another command or address size.
size_t zfed_mdp_compact_write(uint8_t *out, uint8_t command, const uint8_t *address,
                              size_t address_size);
//  Parses a compact message: frames[0] the compact frame, then at least
//  one body frame.  command is the one this side may receive (REQUEST at
//  a worker, REPLY at the broker); anything else is refused.  Fills *mdp
//  as the MDP parses do (origin WORKER, address, body_index 1) and
//  returns 0, or -1 with *reason; origin is WORKER whenever frames[0]
//  has the magic, so the broker answers as for a bad MDPW01 message.
int zfed_mdp_parse_compact(const zfed_view_t *frames, size_t count, uint8_t command,
                           zfed_mdp_t *mdp, const char **reason);

//  True when frame starts with the compact client magic: a compact client
//  request or reply, well-formed or not.
bool zfed_mdp_is_compact_client(zfed_view_t frame);
//  Writes the compact client frame into out (ZFED_MDPC_COMPACT_MAX bytes):
//  command REQUEST (then identity must be empty) or REPLY, service a valid
//  name (zfed_mdp_service_valid: 1..255 printable bytes), the ticket when ticket is
//  not NULL, and in a REPLY with a ticket the stamp's identity of
//  1..ZFED_MDP_IDENTITY_MAX bytes (empty without one).  Returns its size,
//  or 0 (nothing written) for anything else.
size_t zfed_mdp_compact_client_write(uint8_t *out, uint8_t command, zfed_view_t service,
                                     const uint64_t *ticket, zfed_view_t identity);
//  Parses a compact client message: frames[0] the compact client frame,
//  then at least one body frame.  command is the one this side may receive
//  (REQUEST at the broker, REPLY at a client).  Fills *mdp as
//  zfed_mdp_parse_at_broker does for an MDPC01 request (origin CLIENT,
//  command CLIENT, service, body_index 1) with compact, ticketed, ticket
//  and identity, and returns 0; or -1 with *reason, and origin NONE: a
//  broken compact head addresses no answer (PROTOCOL.md 3.3: dropped).
int zfed_mdp_parse_compact_client(const zfed_view_t *frames, size_t count, uint8_t command,
                                  zfed_mdp_t *mdp, const char **reason);

//  True when view is a valid service name (1..255 bytes, 0x20-0x7E).
bool zfed_mdp_service_valid(zfed_view_t service);
//  True when the service belongs to the broker (8/MMI namespace).
bool zfed_mdp_is_mmi(zfed_view_t service);
//  Name of a worker command for logs ("READY", ...), "?" if unknown.
const char *zfed_mdp_command_name(zfed_mdp_command_t command);

#ifdef __cplusplus
}
#endif

#endif
