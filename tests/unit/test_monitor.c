/*  test_monitor - the connection monitors (zfed_netmon, zfed_linkmon) stop
    libzmq's monitor before their end of it closes.

    libzmq does not free a monitor event whose send fails, and a socket
    sends one for every connection that closes after nobody reads its
    monitor any more: an endpoint longer than a small message (33 bytes,
    as every ipc path under a test folder is) was then leaked, which
    LeakSanitizer reported at the broker's exit in about one run in ten.
    Here connections close after each monitor is destroyed, many times, on
    a long ipc path: under the sanitizer build a leak fails this test.
*/
#include "transport/zfed_linkmon.h"
#include "transport/zfed_netmon.h"
#include "zfed_test.h"

#include <czmq.h>
#include <unistd.h>

#define ROUNDS 20

static char s_endpoint[160];

//  One message each way, so that both ends' connections are up.
static int s_exchange(zsock_t *router, zsock_t *dealer)
{
    if (zstr_send(dealer, "hello") != 0)
        return -1;
    zmsg_t *request = zmsg_recv(router);
    if (!request)
        return -1;
    int rc = zmsg_send(&request, router);
    char *answer = rc == 0 ? zstr_recv(dealer) : NULL;
    rc = answer ? 0 : -1;
    zstr_free(&answer);
    return rc;
}

static zsock_t *s_router(void)
{
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    if (router) {
        zsock_set_linger(router, 0);
        zsock_set_rcvtimeo(router, 5000);
    }
    return router;
}

static zsock_t *s_dealer(void)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    if (dealer) {
        zsock_set_linger(dealer, 0);
        zsock_set_rcvtimeo(dealer, 5000);
    }
    return dealer;
}

//  The listening side: its monitor destroyed while a peer is connected,
//  then the peer leaves and the socket closes.
static void s_test_netmon_then_close(void)
{
    for (int round = 0; round < ROUNDS; round++) {
        zsock_t *router = s_router();
        REQUIRE(router);
        zfed_netmon_t *netmon = zfed_netmon_new(zsock_resolve(router));
        REQUIRE(netmon);
        REQUIRE_INT(zsock_bind(router, "%s", s_endpoint), 0);
        zsock_t *dealer = s_dealer();
        REQUIRE(dealer);
        REQUIRE_INT(zsock_connect(dealer, "%s", s_endpoint), 0);
        REQUIRE_INT(s_exchange(router, dealer), 0);
        zfed_netmon_event_t event;
        while (zfed_netmon_handle(netmon, &event) == 0)
            ;
        zfed_netmon_destroy(&netmon);
        CHECK(netmon == NULL);
        zsock_destroy(&dealer);
        zclock_sleep(5); //  the disconnection reaches the router's side
        zsock_destroy(&router);
    }
}

//  The connecting side: its monitor destroyed, then its socket closes
//  while connected, then the listener goes.
static void s_test_linkmon_then_close(void)
{
    for (int round = 0; round < ROUNDS; round++) {
        zsock_t *router = s_router();
        REQUIRE(router);
        REQUIRE_INT(zsock_bind(router, "%s", s_endpoint), 0);
        zfed_linkmon_t *linkmon = zfed_linkmon_new(s_endpoint, "--workers-dir", false);
        REQUIRE(linkmon);
        zsock_t *dealer = s_dealer();
        REQUIRE(dealer);
        REQUIRE_INT(zfed_linkmon_attach(linkmon, zsock_resolve(dealer)), 0);
        REQUIRE_INT(zsock_connect(dealer, "%s", s_endpoint), 0);
        REQUIRE_INT(s_exchange(router, dealer), 0);
        zfed_linkmon_handle(linkmon);
        CHECK_INT(zfed_linkmon_link(linkmon)->state, ZFED_LINK_UP);
        if (round % 2 == 0) {
            //  Detached and attached again (as a reconnection does), then
            //  destroyed while attached.
            zfed_linkmon_detach(linkmon);
            CHECK(zfed_linkmon_socket(linkmon) == NULL);
            REQUIRE_INT(zfed_linkmon_attach(linkmon, zsock_resolve(dealer)), 0);
            CHECK(zfed_linkmon_socket(linkmon) != NULL);
            CHECK(zfed_linkmon_link(linkmon)->ever_up);
        }
        zfed_linkmon_destroy(&linkmon);
        CHECK(linkmon == NULL);
        zsock_destroy(&router);
        zclock_sleep(5); //  the disconnection reaches the dealer's side
        zsock_destroy(&dealer);
    }
}

int main(void)
{
    //  Longer than libzmq's 33-byte small message, as a test folder's is.
    snprintf(s_endpoint, sizeof s_endpoint, "ipc:///tmp/zfed-test-monitor-%d-long-enough.sock",
             (int)getpid());
    ZFED_TEST_RUN(s_test_netmon_then_close);
    ZFED_TEST_RUN(s_test_linkmon_then_close);
    unlink(s_endpoint + strlen("ipc://"));
    zsys_shutdown();
    ZFED_TEST_END();
}
