/*  zfed_log - levelled, timestamped logging to stderr.

    Every line is written with one write(2) so lines from several threads or
    processes sharing a terminal never interleave mid-line.  The level check
    happens before any formatting, so a debug line on a hot path costs one
    comparison when debug is off.
*/
#ifndef ZFED_LOG_H_INCLUDED
#define ZFED_LOG_H_INCLUDED

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ZFED_LOG_ERROR = 0,
    ZFED_LOG_WARN = 1,
    ZFED_LOG_INFO = 2,
    ZFED_LOG_DEBUG = 3
} zfed_log_level_t;

//  Process-wide threshold; lines above it are skipped.  Default INFO, or
//  the value of ZFED_LOG_LEVEL (error|warn|info|debug) at first use.
void zfed_log_set_level(zfed_log_level_t level);
zfed_log_level_t zfed_log_level(void);

//  Short name printed on every line ("broker", "worker", ...).  The string
//  is copied; at most 31 characters are kept.
void zfed_log_set_ident(const char *ident);

//  Parses "error", "warn", "info" or "debug".  Returns 0 or -1.
int zfed_log_level_parse(const char *name, zfed_log_level_t *level);

void zfed_log_write(zfed_log_level_t level, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

#define zfed_log_at(level, ...)                                                                    \
    do {                                                                                           \
        if ((level) <= zfed_log_level())                                                           \
            zfed_log_write((level), __VA_ARGS__);                                                  \
    } while (0)

#define zfed_error(...) zfed_log_at(ZFED_LOG_ERROR, __VA_ARGS__)
#define zfed_warn(...)  zfed_log_at(ZFED_LOG_WARN, __VA_ARGS__)
#define zfed_info(...)  zfed_log_at(ZFED_LOG_INFO, __VA_ARGS__)
#define zfed_debug(...) zfed_log_at(ZFED_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif
