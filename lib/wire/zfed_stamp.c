/*  zfed_stamp - ticket and stamp frames (PROTOCOL.md 3.1).  */
#include "wire/zfed_stamp.h"

#include <string.h>

void zfed_ticket_put(uint8_t out[ZFED_TICKET_BYTES], uint64_t ticket)
{
    for (int index = 0; index < ZFED_TICKET_BYTES; index++)
        out[index] = (uint8_t)(ticket >> (8 * (ZFED_TICKET_BYTES - 1 - index)));
}

uint64_t zfed_ticket_get(const uint8_t in[ZFED_TICKET_BYTES])
{
    uint64_t ticket = 0;
    for (int index = 0; index < ZFED_TICKET_BYTES; index++)
        ticket = (ticket << 8) | in[index];
    return ticket;
}

void zfed_ticket_write(uint8_t out[ZFED_TICKET_SIZE], uint64_t ticket)
{
    memcpy(out, ZFED_TICKET_PREFIX, ZFED_TICKET_PREFIX_SIZE);
    zfed_ticket_put(out + ZFED_TICKET_PREFIX_SIZE, ticket);
}

bool zfed_ticket_read(zfed_view_t frame, uint64_t *ticket)
{
    if (frame.size != ZFED_TICKET_SIZE ||
        memcmp(frame.data, ZFED_TICKET_PREFIX, ZFED_TICKET_PREFIX_SIZE) != 0)
        return false;
    *ticket = zfed_ticket_get(frame.data + ZFED_TICKET_PREFIX_SIZE);
    return true;
}

size_t zfed_stamp_write(uint8_t out[ZFED_STAMP_MAX], uint64_t ticket, const char *identity)
{
    size_t length = strlen(identity);
    if (length > ZFED_STAMP_IDENTITY_MAX)
        length = ZFED_STAMP_IDENTITY_MAX;
    memcpy(out, ZFED_STAMP_PREFIX, ZFED_STAMP_PREFIX_SIZE);
    zfed_ticket_put(out + ZFED_STAMP_PREFIX_SIZE, ticket);
    memcpy(out + ZFED_STAMP_PREFIX_SIZE + 8, identity, length);
    return ZFED_STAMP_PREFIX_SIZE + 8 + length;
}

bool zfed_stamp_read(zfed_view_t frame, uint64_t *ticket,
                     char identity[ZFED_STAMP_IDENTITY_MAX + 1])
{
    const size_t head = ZFED_STAMP_PREFIX_SIZE + 8;
    if (frame.size <= head || frame.size > ZFED_STAMP_MAX ||
        memcmp(frame.data, ZFED_STAMP_PREFIX, ZFED_STAMP_PREFIX_SIZE) != 0)
        return false;
    size_t length = frame.size - head;
    for (size_t index = 0; index < length; index++)
        if (frame.data[head + index] < 0x20 || frame.data[head + index] > 0x7e)
            return false;
    *ticket = zfed_ticket_get(frame.data + ZFED_STAMP_PREFIX_SIZE);
    memcpy(identity, frame.data + head, length);
    identity[length] = '\0';
    return true;
}
