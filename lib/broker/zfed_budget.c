/*  zfed_budget - per-peer and total byte accounts, including what libzmq
    holds for a peer until it is written.  */
#include "broker/zfed_budget.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct _zfed_ledger_t {
    int64_t bytes; //  atomic: every account's bytes
    int64_t peak;  //  atomic: the most bytes ever held at once
    int64_t max_total;
    int64_t max_per_account;
    int refs;        //  atomic: the creator and each account
    int wake_fd;     //  eventfd
    int64_t wake_at; //  atomic: total threshold, ZFED_WAKE_NONE = none
};

struct _zfed_account_t {
    int64_t bytes;     //  atomic
    int64_t piped;     //  atomic: of bytes, those handed to libzmq
    uint64_t released; //  atomic: messages libzmq has let go of, ever
    int refs;          //  atomic: the owner and each outstanding message
    zfed_ledger_t *ledger;
    size_t items;    //  the broker's thread only
    int64_t wake_at; //  atomic: threshold, ZFED_WAKE_NONE = none
};

//  What travels with a message libzmq holds: whom to credit, how much,
//  and the bytes themselves (a copy after this header, or a moved frame).
typedef struct {
    zfed_account_t *account;
    size_t charge;
    bool moved;
    zmq_msg_t frame; //  when moved
    uint8_t copy[];  //  when not
} s_hold_t;

static void s_ledger_unref(zfed_ledger_t *self)
{
    if (!self || __atomic_sub_fetch(&self->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (self->wake_fd >= 0)
        close(self->wake_fd);
    free(self);
}

//  A threshold reached: cleared (once), and the eventfd written.
//  The arming thread stores the threshold then loads the bytes; the
//  crediting one changes the bytes then loads the threshold.  Both sides
//  are sequentially consistent: with weaker orders each load may miss the
//  other's store (store buffering) and the wake-up is lost.
static void s_wake(zfed_ledger_t *ledger, int64_t *threshold, int64_t bytes)
{
    int64_t at = __atomic_load_n(threshold, __ATOMIC_SEQ_CST);
    if (at < 0 || bytes > at ||
        !__atomic_compare_exchange_n(threshold, &at, ZFED_WAKE_NONE, false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST))
        return;
    uint64_t one = 1;
    if (ledger->wake_fd >= 0 && write(ledger->wake_fd, &one, sizeof one) < 0) {
        //  EAGAIN: the counter is full, so a wake-up is pending anyway.
    }
}

zfed_ledger_t *zfed_ledger_new(int64_t max_total, int64_t max_per_account)
{
    zfed_ledger_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->max_total = max_total;
    self->max_per_account = max_per_account;
    self->refs = 1;
    self->wake_at = ZFED_WAKE_NONE;
    self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return self;
}

int zfed_ledger_wake_fd(const zfed_ledger_t *self)
{
    return self->wake_fd;
}

void zfed_ledger_woken(zfed_ledger_t *self)
{
    uint64_t count;
    if (self->wake_fd >= 0 && read(self->wake_fd, &count, sizeof count) < 0) {
        //  EAGAIN: nothing was pending.
    }
}

//  Arms a threshold: raised to threshold if it is lower (several waiters
//  share one; the highest is reached first, and whoever it wakes re-arms
//  what it still waits for), then checked at once in case the credit that
//  would have woken us came first.
static void s_arm(zfed_ledger_t *ledger, int64_t *at, const int64_t *bytes, int64_t threshold)
{
    if (threshold < 0)
        threshold = 0; //  an empty account or ledger has room for anything allowed
    int64_t now = __atomic_load_n(at, __ATOMIC_RELAXED);
    while (now < threshold && !__atomic_compare_exchange_n(at, &now, threshold, true,
                                                           __ATOMIC_RELEASE, __ATOMIC_RELAXED))
        ;
    s_wake(ledger, at, __atomic_load_n(bytes, __ATOMIC_RELAXED));
}

void zfed_ledger_wake_at(zfed_ledger_t *self, int64_t threshold)
{
    s_arm(self, &self->wake_at, &self->bytes, threshold);
}

int64_t zfed_ledger_max_total(const zfed_ledger_t *self)
{
    return self->max_total;
}

int64_t zfed_ledger_max_per_account(const zfed_ledger_t *self)
{
    return self->max_per_account;
}

void zfed_ledger_release(zfed_ledger_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_ledger_unref(*self_p);
    *self_p = NULL;
}

int64_t zfed_ledger_bytes(const zfed_ledger_t *self)
{
    return __atomic_load_n(&self->bytes, __ATOMIC_RELAXED);
}

int64_t zfed_ledger_peak(const zfed_ledger_t *self)
{
    return __atomic_load_n(&self->peak, __ATOMIC_RELAXED);
}

zfed_account_t *zfed_account_new(zfed_ledger_t *ledger)
{
    zfed_account_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->refs = 1;
    self->ledger = ledger;
    self->wake_at = ZFED_WAKE_NONE;
    __atomic_add_fetch(&ledger->refs, 1, __ATOMIC_RELAXED);
    return self;
}

zfed_account_t *zfed_account_ref(zfed_account_t *self)
{
    __atomic_add_fetch(&self->refs, 1, __ATOMIC_RELAXED);
    return self;
}

void zfed_account_release(zfed_account_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_account_t *self = *self_p;
    *self_p = NULL;
    if (__atomic_sub_fetch(&self->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    s_ledger_unref(self->ledger);
    free(self);
}

zfed_room_t zfed_account_room(const zfed_account_t *self, size_t size)
{
    int64_t more = size > INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)size;
    if (__atomic_load_n(&self->bytes, __ATOMIC_RELAXED) + more > self->ledger->max_per_account)
        return ZFED_ROOM_ACCOUNT_FULL;
    if (__atomic_load_n(&self->ledger->bytes, __ATOMIC_RELAXED) + more > self->ledger->max_total)
        return ZFED_ROOM_TOTAL_FULL;
    return ZFED_ROOM_FITS;
}

bool zfed_account_fits(const zfed_account_t *self, size_t size)
{
    return zfed_account_room(self, size) == ZFED_ROOM_FITS;
}

int64_t zfed_account_bytes(const zfed_account_t *self)
{
    return __atomic_load_n(&self->bytes, __ATOMIC_RELAXED);
}

int64_t zfed_account_piped(const zfed_account_t *self)
{
    return __atomic_load_n(&self->piped, __ATOMIC_RELAXED);
}

uint64_t zfed_account_released(const zfed_account_t *self)
{
    return __atomic_load_n(&self->released, __ATOMIC_RELAXED);
}

void zfed_account_charge(zfed_account_t *self, size_t size)
{
    __atomic_add_fetch(&self->bytes, (int64_t)size, __ATOMIC_RELAXED);
    int64_t total = __atomic_add_fetch(&self->ledger->bytes, (int64_t)size, __ATOMIC_RELAXED);
    int64_t peak = __atomic_load_n(&self->ledger->peak, __ATOMIC_RELAXED);
    while (total > peak && !__atomic_compare_exchange_n(&self->ledger->peak, &peak, total, true,
                                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

void zfed_account_credit(zfed_account_t *self, size_t size)
{
    int64_t bytes = __atomic_sub_fetch(&self->bytes, (int64_t)size, __ATOMIC_SEQ_CST);
    int64_t total = __atomic_sub_fetch(&self->ledger->bytes, (int64_t)size, __ATOMIC_SEQ_CST);
    s_wake(self->ledger, &self->wake_at, bytes);
    s_wake(self->ledger, &self->ledger->wake_at, total);
}

void zfed_account_wake_at(zfed_account_t *self, int64_t threshold)
{
    s_arm(self->ledger, &self->wake_at, &self->bytes, threshold);
}

void zfed_account_count(zfed_account_t *self, int delta)
{
    if (delta >= 0)
        self->items += (size_t)delta;
    else
        self->items -= self->items < (size_t)-delta ? self->items : (size_t)-delta;
}

size_t zfed_account_items(const zfed_account_t *self)
{
    return self->items;
}

//  libzmq is done with a message: on its I/O thread when the bytes were
//  written, on the caller's when a send failed or the pipe was dropped.
static void s_release(void *data, void *hint)
{
    s_hold_t *hold = hint;
    __atomic_sub_fetch(&hold->account->piped, (int64_t)hold->charge, __ATOMIC_RELAXED);
    __atomic_add_fetch(&hold->account->released, 1, __ATOMIC_RELAXED);
    zfed_account_credit(hold->account, hold->charge);
    zfed_account_release(&hold->account);
    if (hold->moved)
        zmq_msg_close(&hold->frame);
    free(hold);
}

//  Sends the bytes at data (held by hold) as one part, charged until
//  libzmq frees them.  On failure hold is freed, the charge given back and
//  errno kept; a moved frame first goes back to give_back.
static int s_send_hold(zfed_account_t *self, s_hold_t *hold, void *socket, void *data, size_t size,
                       int flags, zmq_msg_t *give_back)
{
    hold->account = zfed_account_ref(self);
    zfed_account_charge(self, hold->charge);
    __atomic_add_fetch(&self->piped, (int64_t)hold->charge, __ATOMIC_RELAXED);
    zmq_msg_t message;
    bool made = zmq_msg_init_data(&message, data, size, s_release, hold) == 0;
    bool sent = false;
    while (made && !sent) {
        if (zmq_msg_send(&message, socket, flags) >= 0)
            sent = true;
        else if (errno != EINTR)
            break;
    }
    if (sent)
        return 0;
    int saved = errno;
    if (hold->moved) {
        zmq_msg_move(give_back, &hold->frame);
        hold->moved = false;
    }
    if (made)
        zmq_msg_close(&message); //  runs s_release
    else
        s_release(data, hold);
    errno = saved;
    return -1;
}

int zfed_account_send_copy(zfed_account_t *self, void *socket, const void *data, size_t size,
                           size_t charge, int flags)
{
    s_hold_t *hold = malloc(sizeof *hold + size);
    if (!hold) {
        errno = ENOMEM;
        return -1;
    }
    hold->charge = charge;
    hold->moved = false;
    if (size)
        memcpy(hold->copy, data, size);
    return s_send_hold(self, hold, socket, hold->copy, size, flags, NULL);
}

int zfed_account_send_frame(zfed_account_t *self, void *socket, zmq_msg_t *frame, size_t charge,
                            int flags)
{
    s_hold_t *hold = malloc(sizeof *hold);
    if (!hold) {
        errno = ENOMEM;
        return -1;
    }
    hold->charge = charge;
    hold->moved = true;
    zmq_msg_init(&hold->frame);
    zmq_msg_move(&hold->frame, frame);
    return s_send_hold(self, hold, socket, zmq_msg_data(&hold->frame), zmq_msg_size(&hold->frame),
                       flags, frame);
}
