/*  zfed_budget - the bytes the broker holds, per peer and in total
    (private header).

    The broker holds bytes in two places: its own queue (the requests it
    keeps until they are answered) and libzmq's pipes (every message sent
    sits there until libzmq has written it to the peer's socket, which for
    a peer that never reads is forever, up to the high-water mark of
    100,000 messages of up to 8 MiB).  A ledger bounds both: each peer has
    an account, every byte held for it is charged there and to the total,
    and the broker asks before it takes more (zfed_account_fits).

    Bytes handed to libzmq are counted by sending them as messages whose
    free callback gives them back: zfed_account_send_copy (a copy, for
    small bodies) and zfed_account_send_frame (the received frame itself,
    no copy).  The callback runs wherever libzmq releases the message,
    usually its I/O thread, so the counters are atomics, and accounts and
    the ledger are reference counted: an outstanding message keeps its
    account alive after its peer has gone and after the broker itself has
    been destroyed.

    Each message is charged ZFED_BUDGET_MESSAGE_OVERHEAD bytes beyond its
    body, an estimate of what its envelope frames and libzmq's bookkeeping
    (a zmq_msg_t per frame in the pipe) cost.

    Wake-ups: whoever waits for an account (or the total) to drain sets a
    threshold; the credit that brings the bytes to it or below clears the
    threshold and writes to the ledger's eventfd (zfed_ledger_wake_fd), on
    whichever thread that credit runs, so a poll loop hears of it.
*/
#ifndef ZFED_BUDGET_H_INCLUDED
#define ZFED_BUDGET_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define ZFED_BUDGET_MESSAGE_OVERHEAD 512
//  A threshold that wakes nobody.
#define ZFED_WAKE_NONE (-1)

//  Whether more bytes fit, and if not, which limit they break (the
//  account's is checked first): the one a waiter must wait for.
typedef enum { ZFED_ROOM_FITS, ZFED_ROOM_ACCOUNT_FULL, ZFED_ROOM_TOTAL_FULL } zfed_room_t;

typedef struct _zfed_ledger_t zfed_ledger_t;
typedef struct _zfed_account_t zfed_account_t;

//  A ledger allowing max_total bytes in all and max_per_account to each
//  account.  NULL when out of memory.
zfed_ledger_t *zfed_ledger_new(int64_t max_total, int64_t max_per_account);
//  Drops the creator's reference; the ledger lives on while any account
//  (and so any outstanding message) does.  Nulls the pointer.
void zfed_ledger_release(zfed_ledger_t **self_p);
//  Bytes held now in all accounts, and the most ever held at once.
int64_t zfed_ledger_bytes(const zfed_ledger_t *self);
int64_t zfed_ledger_peak(const zfed_ledger_t *self);
//  The eventfd written when a threshold is reached (poll it for reading;
//  zfed_ledger_woken reads it back to zero).  -1 if it could not be made.
int zfed_ledger_wake_fd(const zfed_ledger_t *self);
void zfed_ledger_woken(zfed_ledger_t *self);
//  Wake when the total falls to threshold or below (0: when empty).  The
//  threshold is shared: arming a lower one than is armed keeps the higher.
void zfed_ledger_wake_at(zfed_ledger_t *self, int64_t threshold);
//  The limits it was made with.
int64_t zfed_ledger_max_total(const zfed_ledger_t *self);
int64_t zfed_ledger_max_per_account(const zfed_ledger_t *self);

//  A new account (one reference, the caller's).  NULL when out of memory.
zfed_account_t *zfed_account_new(zfed_ledger_t *ledger);
//  Another reference to account (returned), and dropping one (nulls the
//  pointer; the last one frees it).
zfed_account_t *zfed_account_ref(zfed_account_t *self);
void zfed_account_release(zfed_account_t **self_p);

//  True when size more bytes keep the account within its share and the
//  ledger within its total; zfed_account_room says which limit they break.
bool zfed_account_fits(const zfed_account_t *self, size_t size);
zfed_room_t zfed_account_room(const zfed_account_t *self, size_t size);
//  Bytes held for this account now.
int64_t zfed_account_bytes(const zfed_account_t *self);
//  Of those, the bytes of messages libzmq holds (sent, not yet written),
//  and how many messages libzmq has let go of so far: a peer whose piped
//  bytes stay while the count stands still reads nothing.
int64_t zfed_account_piped(const zfed_account_t *self);
uint64_t zfed_account_released(const zfed_account_t *self);
//  Takes or gives back size bytes (the broker's own holdings: requests).
void zfed_account_charge(zfed_account_t *self, size_t size);
void zfed_account_credit(zfed_account_t *self, size_t size);
//  Wake when this account falls to threshold or below (0: when empty; as
//  for the ledger, the higher of two armed thresholds is kept).
void zfed_account_wake_at(zfed_account_t *self, int64_t threshold);

//  Requests the account's owner has in the broker (queued or in flight),
//  for the per-client quota.  The broker's thread only.
void zfed_account_count(zfed_account_t *self, int delta);
size_t zfed_account_items(const zfed_account_t *self);

//  Sends size bytes (copied) as one part on a libzmq socket, with charge
//  bytes (its size, plus ZFED_BUDGET_MESSAGE_OVERHEAD on one part of each
//  message) counted to the account until libzmq frees them.  flags as
//  zmq_msg_send.  0, or -1 with errno from libzmq (nothing charged then).
int zfed_account_send_copy(zfed_account_t *self, void *socket, const void *data, size_t size,
                           size_t charge, int flags);
//  The same for a received frame, moved rather than copied: on success the
//  frame is emptied (its content now travels in the message), on failure
//  it is left as it was.
int zfed_account_send_frame(zfed_account_t *self, void *socket, zmq_msg_t *frame, size_t charge,
                            int flags);

#endif
