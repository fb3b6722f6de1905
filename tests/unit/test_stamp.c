/*  test_stamp - ticket and stamp frames (PROTOCOL.md 3.1): their bytes,
    and everything that is not one.
*/
#include "wire/zfed_stamp.h"
#include "zfed_test.h"

#include <string.h>

static zfed_view_t s_view(const void *data, size_t size)
{
    return (zfed_view_t){data, size};
}

static void test_ticket(void)
{
    uint8_t frame[ZFED_TICKET_SIZE];
    zfed_ticket_write(frame, 0x0102030405060708ull);
    CHECK(memcmp(frame, "zfed.ticket\x01\x02\x03\x04\x05\x06\x07\x08", ZFED_TICKET_SIZE) == 0);
    uint64_t ticket = 0;
    CHECK(zfed_ticket_read(s_view(frame, sizeof frame), &ticket));
    CHECK(ticket == 0x0102030405060708ull);
    //  One byte short or long, or another prefix: not a ticket.
    CHECK(!zfed_ticket_read(s_view(frame, sizeof frame - 1), &ticket));
    uint8_t longer[ZFED_TICKET_SIZE + 1] = {0};
    memcpy(longer, frame, sizeof frame);
    CHECK(!zfed_ticket_read(s_view(longer, sizeof longer), &ticket));
    frame[0] = 'Z';
    CHECK(!zfed_ticket_read(s_view(frame, sizeof frame), &ticket));
    //  A zfed body (a msgpack array) never is one.
    CHECK(!zfed_ticket_read(s_view("\x93\x01\x02\x03", 4), &ticket));
}

static void test_stamp(void)
{
    uint8_t frame[ZFED_STAMP_MAX];
    size_t size = zfed_stamp_write(frame, 42, "peer:7");
    CHECK(size == 10 + 8 + 6);
    CHECK(memcmp(frame, "zfed.stamp\0\0\0\0\0\0\0\x2apeer:7", size) == 0);
    uint64_t ticket = 0;
    char identity[ZFED_STAMP_IDENTITY_MAX + 1];
    CHECK(zfed_stamp_read(s_view(frame, size), &ticket, identity));
    CHECK(ticket == 42);
    CHECK_STR(identity, "peer:7");
    //  No identity, a control byte in it, or one too long: not a stamp.
    CHECK(!zfed_stamp_read(s_view(frame, 18), &ticket, identity));
    frame[size - 1] = '\n';
    CHECK(!zfed_stamp_read(s_view(frame, size), &ticket, identity));
    char key[] = "curve:0123456789012345678901234567890123456789";
    size = zfed_stamp_write(frame, 1, key);
    CHECK(zfed_stamp_read(s_view(frame, size), &ticket, identity));
    CHECK_STR(identity, key);
    uint8_t big[ZFED_STAMP_MAX + 1];
    memcpy(big, frame, 18);
    memset(big + 18, 'a', sizeof big - 18);
    CHECK(!zfed_stamp_read(s_view(big, sizeof big), &ticket, identity));
    CHECK(zfed_stamp_read(s_view(big, sizeof big - 1), &ticket, identity));
    CHECK(strlen(identity) == ZFED_STAMP_IDENTITY_MAX);
}

//  The examples of PROTOCOL.md 3.1, byte for byte.
static void test_protocol_examples(void)
{
    uint8_t ticket[ZFED_TICKET_SIZE];
    zfed_ticket_write(ticket, 1);
    CHECK(memcmp(ticket, "zfed.ticket\0\0\0\0\0\0\0\x01", sizeof ticket) == 0);
    uint8_t stamp[ZFED_STAMP_MAX];
    CHECK(zfed_stamp_write(stamp, 1, "peer:3") == 24);
    CHECK(memcmp(stamp, "zfed.stamp\0\0\0\0\0\0\0\x01peer:3", 24) == 0);
    CHECK(zfed_stamp_write(stamp, 1, ZFED_STAMP_BROKER) == 24);
    CHECK(memcmp(stamp,
                 "zfed.stamp\0\0\0\0\0\0\0\x01"
                 "broker",
                 24) == 0);
}

int main(void)
{
    test_protocol_examples();
    test_ticket();
    test_stamp();
    ZFED_TEST_END();
}
