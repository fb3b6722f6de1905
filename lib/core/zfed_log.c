/*  zfed_log - levelled, timestamped logging to stderr.  */
#include "zfed/zfed_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX  2048
#define LOG_IDENT_MAX 32

//  -1 means "not read from the environment yet".  Plain ints: a torn read
//  of a log threshold is harmless, and a lock here would sit on hot paths.
static volatile int s_level = -1;
static char s_ident[LOG_IDENT_MAX] = "zfed";

static const char *s_level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int zfed_log_level_parse(const char *name, zfed_log_level_t *level)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (!name)
        return -1;
    for (int index = 0; index < 4; index++) {
        if (strcasecmp(name, names[index]) == 0) {
            *level = (zfed_log_level_t)index;
            return 0;
        }
    }
    return -1;
}

void zfed_log_set_level(zfed_log_level_t level)
{
    s_level = (int)level;
}

zfed_log_level_t zfed_log_level(void)
{
    if (s_level < 0) {
        zfed_log_level_t level = ZFED_LOG_INFO;
        const char *from_env = getenv("ZFED_LOG_LEVEL");
        if (from_env && zfed_log_level_parse(from_env, &level) != 0)
            level = ZFED_LOG_INFO;
        s_level = (int)level;
    }
    return (zfed_log_level_t)s_level;
}

void zfed_log_set_ident(const char *ident)
{
    snprintf(s_ident, sizeof s_ident, "%s", ident ? ident : "zfed");
}

void zfed_log_write(zfed_log_level_t level, const char *format, ...)
{
    char line[LOG_LINE_MAX];
    struct timeval now;
    struct tm parts;
    gettimeofday(&now, NULL);
    gmtime_r(&now.tv_sec, &parts);

    int size = snprintf(line, sizeof line,
                        "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ", parts.tm_year + 1900,
                        parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
                        (int)(now.tv_usec / 1000), s_ident, s_level_names[level]);
    va_list args;
    va_start(args, format);
    int body = vsnprintf(line + size, sizeof line - (size_t)size - 1, format, args);
    va_end(args);
    if (body < 0)
        body = 0;
    size += body;
    if (size > (int)sizeof line - 2)
        size = (int)sizeof line - 2; //  truncated: keep room for the newline
    line[size++] = '\n';

    const char *cursor = line;
    while (size > 0) {
        ssize_t written = write(STDERR_FILENO, cursor, (size_t)size);
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            break;
        cursor += written;
        size -= (int)written;
    }
}
