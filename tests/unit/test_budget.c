/*  test_budget - byte accounts per peer and in total (broker/zfed_budget):
    charges and credits, the per-account and total limits, the peak, and
    messages handed to libzmq counted until libzmq frees them, also after
    their account's owner and the ledger's creator have let go (the
    sanitizer build checks nothing is touched after it is freed), and the
    wake-ups that tell a waiting broker an account has drained.
*/
#include "broker/zfed_budget.h"
#include "zfed_test.h"

#include <poll.h>
#include <string.h>
#include <zmq.h>

static void s_test_limits(void)
{
    zfed_ledger_t *ledger = zfed_ledger_new(1000, 600);
    REQUIRE(ledger != NULL);
    zfed_account_t *one = zfed_account_new(ledger);
    zfed_account_t *two = zfed_account_new(ledger);
    REQUIRE(one && two);
    CHECK(zfed_account_fits(one, 600));
    CHECK(!zfed_account_fits(one, 601)); //  its share
    zfed_account_charge(one, 500);
    CHECK(zfed_account_fits(one, 100));
    CHECK(!zfed_account_fits(one, 101));
    zfed_account_charge(two, 450);
    CHECK(zfed_account_fits(two, 50));
    CHECK(!zfed_account_fits(two, 51)); //  the total: 500 + 450 + 51 > 1000
    CHECK(zfed_ledger_bytes(ledger) == 950);
    zfed_account_credit(one, 500);
    CHECK(zfed_account_bytes(one) == 0);
    CHECK(zfed_ledger_bytes(ledger) == 450);
    CHECK(zfed_ledger_peak(ledger) == 950);
    CHECK(!zfed_account_fits(two, SIZE_MAX)); //  no overflow on a huge size
    zfed_account_count(one, 2);
    zfed_account_count(one, -3);
    CHECK(zfed_account_items(one) == 0);
    zfed_account_credit(two, 450);
    zfed_account_release(&one);
    zfed_account_release(&two);
    CHECK(one == NULL && two == NULL);
    zfed_ledger_release(&ledger);
    zfed_ledger_release(&ledger); //  idempotent
}

//  Bytes sent stay charged while libzmq holds them: over inproc the
//  receiver holds the very content until it closes the message.
static void s_test_sends(void)
{
    void *context = zmq_ctx_new();
    void *out = zmq_socket(context, ZMQ_PAIR);
    void *in = zmq_socket(context, ZMQ_PAIR);
    REQUIRE(context && out && in);
    REQUIRE_INT(zmq_bind(in, "inproc://test-budget"), 0);
    REQUIRE_INT(zmq_connect(out, "inproc://test-budget"), 0);
    zfed_ledger_t *ledger = zfed_ledger_new(1 << 20, 1 << 20);
    zfed_account_t *account = zfed_account_new(ledger);
    REQUIRE(ledger && account);

    char payload[1000];
    memset(payload, 'x', sizeof payload);
    CHECK_INT(zfed_account_send_copy(account, out, payload, sizeof payload,
                                     sizeof payload + ZFED_BUDGET_MESSAGE_OVERHEAD, 0),
              0);
    //  A received frame, moved on: not copied, charged the same way.
    zmq_msg_t frame;
    zmq_msg_init_size(&frame, 3000);
    memset(zmq_msg_data(&frame), 'y', 3000);
    CHECK_INT(zfed_account_send_frame(account, out, &frame, 3000, 0), 0);
    CHECK_INT((int)zmq_msg_size(&frame), 0); //  emptied: its content travels
    zmq_msg_close(&frame);
    CHECK(zfed_account_bytes(account) == 1000 + ZFED_BUDGET_MESSAGE_OVERHEAD + 3000);

    //  The owner lets go while both are still in flight.
    zfed_account_release(&account);
    zfed_ledger_release(&ledger);

    zmq_msg_t first, second;
    zmq_msg_init(&first);
    zmq_msg_init(&second);
    CHECK_INT(zmq_msg_recv(&first, in, 0), 1000);
    CHECK_INT(zmq_msg_recv(&second, in, 0), 3000);
    CHECK(memcmp(zmq_msg_data(&first), payload, 1000) == 0);
    CHECK(((char *)zmq_msg_data(&second))[2999] == 'y');
    zmq_msg_close(&first);  //  the last references: account and ledger
    zmq_msg_close(&second); //  are freed here, by the callbacks

    //  A send that fails gives its charge back at once and keeps the frame.
    ledger = zfed_ledger_new(1 << 20, 1 << 20);
    account = zfed_account_new(ledger);
    void *lonely = zmq_socket(context, ZMQ_PUSH); //  no peer: DONTWAIT fails
    zmq_msg_init_size(&frame, 10);
    CHECK_INT(zfed_account_send_frame(account, lonely, &frame, 10, ZMQ_DONTWAIT), -1);
    CHECK_INT((int)zmq_msg_size(&frame), 10);
    CHECK_INT(zfed_account_send_copy(account, lonely, payload, 10, 10, ZMQ_DONTWAIT), -1);
    CHECK(zfed_account_bytes(account) == 0);
    CHECK(zfed_ledger_bytes(ledger) == 0);
    zmq_msg_close(&frame);
    zfed_account_release(&account);
    zfed_ledger_release(&ledger);

    zmq_close(lonely);
    zmq_close(out);
    zmq_close(in);
    zmq_ctx_term(context);
}

//  A threshold set on an account (or the total) is met by the credit that
//  reaches it: the ledger's eventfd becomes readable, once; a threshold
//  already met when it is set wakes at once.
static void s_test_wake_ups(void)
{
    zfed_ledger_t *ledger = zfed_ledger_new(1000, 1000);
    zfed_account_t *account = zfed_account_new(ledger);
    REQUIRE(ledger && account && zfed_ledger_wake_fd(ledger) >= 0);
    struct pollfd poll_fd = {zfed_ledger_wake_fd(ledger), POLLIN, 0};
    zfed_account_charge(account, 900);
    zfed_account_wake_at(account, 500);
    CHECK_INT(poll(&poll_fd, 1, 0), 0);
    zfed_account_credit(account, 300); //  600: not yet
    CHECK_INT(poll(&poll_fd, 1, 0), 0);
    zfed_account_credit(account, 100); //  500: there
    CHECK_INT(poll(&poll_fd, 1, 0), 1);
    zfed_ledger_woken(ledger);
    CHECK_INT(poll(&poll_fd, 1, 0), 0);
    zfed_account_credit(account, 100); //  cleared: no second wake-up
    CHECK_INT(poll(&poll_fd, 1, 0), 0);
    zfed_account_wake_at(account, 500); //  400 already: at once
    CHECK_INT(poll(&poll_fd, 1, 0), 1);
    zfed_ledger_woken(ledger);
    zfed_ledger_wake_at(ledger, 100); //  the total
    zfed_account_credit(account, 350);
    CHECK_INT(poll(&poll_fd, 1, 0), 1);
    CHECK(zfed_ledger_max_total(ledger) == 1000 && zfed_ledger_max_per_account(ledger) == 1000);
    zfed_account_credit(account, 50);
    zfed_account_release(&account);
    zfed_ledger_release(&ledger);
}

//  Which limit refuses: the account's first, then the total's; a waiter
//  arms only that one (the other has room and would wake at once, a busy
//  loop).  A threshold of 0 is a real one (wake when empty), and of two
//  armed thresholds the higher, reached first, is kept.
static void s_test_room(void)
{
    zfed_ledger_t *ledger = zfed_ledger_new(1000, 600);
    zfed_account_t *one = zfed_account_new(ledger);
    zfed_account_t *two = zfed_account_new(ledger);
    REQUIRE(ledger && one && two);
    struct pollfd poll_fd = {zfed_ledger_wake_fd(ledger), POLLIN, 0};
    zfed_account_charge(one, 500);
    CHECK_INT(zfed_account_room(one, 100), ZFED_ROOM_FITS);
    CHECK_INT(zfed_account_room(one, 101), ZFED_ROOM_ACCOUNT_FULL);
    zfed_account_charge(two, 450);
    CHECK_INT(zfed_account_room(two, 51), ZFED_ROOM_TOTAL_FULL);
    CHECK_INT(zfed_account_room(one, 101), ZFED_ROOM_ACCOUNT_FULL); //  both: the account's
    //  Armed where it blocks: nothing fires until the bytes get there.
    zfed_ledger_wake_at(ledger, 1000 - 100);
    zfed_account_wake_at(one, 0);
    CHECK_INT(poll(&poll_fd, 1, 0), 0);
    zfed_account_wake_at(one, 400); //  higher: kept
    zfed_account_wake_at(one, 100); //  lower: the 400 stays
    zfed_account_credit(one, 100);  //  400 (and the total 850): both wake
    CHECK_INT(poll(&poll_fd, 1, 0), 1);
    zfed_ledger_woken(ledger);
    zfed_account_wake_at(one, 0); //  wake when empty
    zfed_account_credit(one, 399);
    CHECK_INT(poll(&poll_fd, 1, 0), 0); //  1 byte left
    zfed_account_credit(one, 1);        //  0: empty
    CHECK_INT(poll(&poll_fd, 1, 0), 1);
    zfed_ledger_woken(ledger);
    zfed_account_credit(two, 450);
    zfed_account_release(&one);
    zfed_account_release(&two);
    zfed_ledger_release(&ledger);
}

int main(void)
{
    ZFED_TEST_RUN(s_test_limits);
    ZFED_TEST_RUN(s_test_sends);
    ZFED_TEST_RUN(s_test_wake_ups);
    ZFED_TEST_RUN(s_test_room);
    ZFED_TEST_END();
}
