/*  zfed_stamp - the reply stamp: binds a reply to the request it answers
    and names who answered it (schemas/PROTOCOL.md 3.1).

    A client that wants to know which of its requests a reply answers, and
    who answered, puts a ticket frame ("zfed.ticket" and 8 bytes) in front
    of its request's body.  The zfed broker takes it off (the worker never
    sees it) and puts a stamp frame ("zfed.stamp", the same 8 bytes, then
    the identity the broker vouches for) in front of the reply's body:
    the worker's CURVE public key, its connection's number in plaintext, or
    "broker" for the broker's own replies.  The worker cannot write the
    stamp (the broker matches a REPLY to the one request that worker holds
    and writes the stamp itself), so a worker can answer only the tasks it
    was sent, and its name in the records is the broker's, not its own.

    Private to libzfed (lib/wire).
*/
#ifndef ZFED_STAMP_H_INCLUDED
#define ZFED_STAMP_H_INCLUDED

#include "zfed/zfed_mdp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZFED_TICKET_PREFIX      "zfed.ticket"
#define ZFED_TICKET_PREFIX_SIZE 11
#define ZFED_TICKET_SIZE        (ZFED_TICKET_PREFIX_SIZE + 8)
#define ZFED_STAMP_PREFIX       "zfed.stamp"
#define ZFED_STAMP_PREFIX_SIZE  10
//  Longest identity (zfed_mdp.h: the compact client frame carries one too).
#define ZFED_STAMP_IDENTITY_MAX ZFED_MDP_IDENTITY_MAX
#define ZFED_STAMP_MAX          (ZFED_STAMP_PREFIX_SIZE + 8 + ZFED_STAMP_IDENTITY_MAX)
//  The identity of the broker's own replies (errors it answers itself).
#define ZFED_STAMP_BROKER "broker"
//  Prefixes of a worker's identity: under CURVE, and in plaintext.
#define ZFED_STAMP_CURVE "curve:"
#define ZFED_STAMP_PEER  "peer:"

//  A ticket's 8 bytes, big-endian, as the ticket and stamp frames and the
//  compact client frame (PROTOCOL.md 3.3) carry them.
#define ZFED_TICKET_BYTES 8
void zfed_ticket_put(uint8_t out[ZFED_TICKET_BYTES], uint64_t ticket);
uint64_t zfed_ticket_get(const uint8_t in[ZFED_TICKET_BYTES]);

//  Writes the ticket frame of ticket into out.
void zfed_ticket_write(uint8_t out[ZFED_TICKET_SIZE], uint64_t ticket);
//  Whether frame is a ticket frame; *ticket its value.
bool zfed_ticket_read(zfed_view_t frame, uint64_t *ticket);

//  Writes the stamp frame of ticket and identity (1 to
//  ZFED_STAMP_IDENTITY_MAX printable ASCII bytes) into out: its size.
size_t zfed_stamp_write(uint8_t out[ZFED_STAMP_MAX], uint64_t ticket, const char *identity);
//  Whether frame is a valid stamp frame: *ticket, and identity as a
//  string.
bool zfed_stamp_read(zfed_view_t frame, uint64_t *ticket,
                     char identity[ZFED_STAMP_IDENTITY_MAX + 1]);

#endif
