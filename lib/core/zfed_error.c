/*  zfed_error - error codes with the field at fault.  */
#include "zfed/zfed_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void s_format(zfed_error_t *error)
{
    char where[48] = "";
    if (error->round >= 0)
        snprintf(where, sizeof where, "%s(round %lld, task %lld)", error->field[0] ? " " : "",
                 (long long)error->round, (long long)error->task);
    const char *colon = error->field[0] || where[0] ? ": " : "";
    snprintf(error->message, sizeof error->message, "%s%s%s%s", error->field, where, colon,
             error->text);
}

int zfed_error_set(zfed_error_t *error, zfed_error_code_t code, const char *field,
                   const char *format, ...)
{
    if (!error)
        return -1;
    error->code = code;
    snprintf(error->field, sizeof error->field, "%s", field ? field : "");
    error->round = error->task = -1;
    va_list args;
    va_start(args, format);
    vsnprintf(error->text, sizeof error->text, format, args);
    va_end(args);
    s_format(error);
    return -1;
}

void zfed_error_locate(zfed_error_t *error, int64_t round, int64_t task)
{
    if (!error)
        return;
    error->round = round;
    error->task = task;
    s_format(error);
}

void zfed_error_clear(zfed_error_t *error)
{
    if (!error)
        return;
    memset(error, 0, sizeof *error);
    error->round = error->task = -1;
}

const char *zfed_error_code_name(zfed_error_code_t code)
{
    static const char *names[] = {"ok", "invalid",   "exists",    "no job", "corrupt",
                                  "io", "no memory", "transport", "busy"};
    return (unsigned)code < sizeof names / sizeof names[0] ? names[code] : "unknown";
}
