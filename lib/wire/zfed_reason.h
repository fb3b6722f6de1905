/*  zfed_reason - the reason texts of decoders (private header of lib/wire).

    A refusal's reason goes into the caller's buffer (which may be NULL),
    prefixed with the class of the rule it broke and a colon when there is
    one ("offset: tensor w: ..."), the way schemas/model-vectors.json names
    classes, so tests and logs can branch on the class without parsing the
    rest.
*/
#ifndef ZFED_REASON_H_INCLUDED
#define ZFED_REASON_H_INCLUDED

#include <stddef.h>

//  Writes "CLASS: text" (or "text" when class is NULL) and returns -1.
int zfed_reason_set(char *reason, size_t reason_size, const char *class, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

//  A body's size and structure (PROTOCOL.md 7.1-7.2) before any of it is
//  read: 0, or -1 with a "msgpack: ..." reason.
int zfed_reason_prescan(const void *data, size_t size, char *reason, size_t reason_size);

#endif
