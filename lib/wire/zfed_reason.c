/*  zfed_reason - "CLASS: text" reasons.  */
#include "wire/zfed_reason.h"
#include "zfed/zfed_msg.h"

#include <stdarg.h>
#include <stdio.h>

int zfed_reason_set(char *reason, size_t reason_size, const char *class, const char *format, ...)
{
    if (!reason || reason_size == 0)
        return -1;
    int used = class ? snprintf(reason, reason_size, "%s: ", class) : 0;
    if (used >= 0 && (size_t)used < reason_size) {
        va_list args;
        va_start(args, format);
        vsnprintf(reason + used, reason_size - (size_t)used, format, args);
        va_end(args);
    }
    return -1;
}

int zfed_reason_prescan(const void *data, size_t size, char *reason, size_t reason_size)
{
    char why[160];
    if (size > ZFED_BODY_MAX)
        return zfed_reason_set(reason, reason_size, "msgpack",
                               "body of %zu bytes is over the %d-byte limit", size, ZFED_BODY_MAX);
    if (zfed_msgpack_check(data, size, why, sizeof why) != 0)
        return zfed_reason_set(reason, reason_size, "msgpack", "%s", why);
    return 0;
}
