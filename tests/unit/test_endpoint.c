/*  test_endpoint - which texts are endpoints zfed's sockets can use, and
    what the reason says when one is not.
*/
#include "zfed/zfed_endpoint.h"
#include "zfed_test.h"

#include <stdbool.h>
#include <string.h>

static void s_check(const char *endpoint, zfed_endpoint_use_t use, bool valid, const char *reason)
{
    char text[128] = "";
    int rc = zfed_endpoint_check(endpoint, use, text, sizeof text);
    CHECK_INT(rc, valid ? 0 : -1);
    if (!valid && reason && !strstr(text, reason)) {
        zfed_test_failures++;
        fprintf(stderr, "  endpoint '%s': reason '%s' lacks '%s'\n", endpoint ? endpoint : "(null)",
                text, reason);
    }
}

int main(void)
{
    const zfed_endpoint_use_t C = ZFED_ENDPOINT_CONNECT, B = ZFED_ENDPOINT_BIND;
    //  What a worker or controller connects to.
    s_check("tcp://127.0.0.1:5555", C, true, NULL);
    s_check("tcp://broker-host.example:5555", C, true, NULL);
    s_check("tcp://[::1]:5555", C, true, NULL);
    s_check("tcp://[fe80::1%eth0]:5555", C, true, NULL);
    s_check("tcp://10.0.0.2;127.0.0.1:5555", C, true, NULL);
    s_check("ipc:///tmp/zfed.sock", C, true, NULL);
    s_check("inproc://broker", C, true, NULL);
    //  The mistakes of issue 9: no transport at all.
    s_check("127.0.0.1:5555", C, false, "no transport");
    s_check("notanendpoint", C, false, "no transport");
    s_check("", C, false, "empty");
    s_check(NULL, C, false, "empty");
    s_check("udp://127.0.0.1:5555", C, false, "transport 'udp' is not one zfed speaks");
    s_check("tcp://127.0.0.1", C, false, "no port");
    s_check("tcp://:5555", C, false, "no host");
    s_check("tcp://127.0.0.1:0", C, false, "for binding");
    s_check("tcp://127.0.0.1:*", C, false, "for binding");
    s_check("tcp://*:5555", C, false, "for binding");
    s_check("tcp://127.0.0.1:65536", C, false, "port '65536' is not 1 to 65535");
    s_check("tcp://127.0.0.1:05555", C, false, "port");
    s_check("tcp://127.0.0.1:55x", C, false, "port '55x'");
    s_check("tcp://bad host:5555", C, false, "is not a host name or address");
    s_check("tcp://[::1:5555", C, false, "not a host name");
    s_check("ipc://", C, false, "no path");
    s_check("inproc://", C, false, "no name");
    char long_path[160] = "ipc:///";
    memset(long_path + 7, 'x', 120);
    s_check(long_path, C, false, "path longer than 107 bytes");
    //  What the broker binds: wildcards too.
    s_check("tcp://127.0.0.1:*", B, true, NULL);
    s_check("tcp://*:5555", B, true, NULL);
    s_check("tcp://0.0.0.0:0", B, true, NULL);
    s_check("tcp://lo:5555", B, true, NULL);
    s_check("127.0.0.1:5555", B, false, "no transport");
    s_check("tcp://127.0.0.1:99999", B, false, "or * for a free one");
    ZFED_TEST_END();
}
