/*  zfed_cli - shared command-line helpers for zfed's programs.  */
#include "core/zfed_cli.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_util.h"
#include "zfed/zfed_version.h"

#include <czmq.h>
#include <gmp.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void zfed_cli_fail(const char *program, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, "%s: ", program);
    vfprintf(stderr, format, args);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", program);
    va_end(args);
    exit(ZFED_EXIT_USAGE);
}

void zfed_cli_bad_option(const char *program, int argc, char **argv, int option)
{
    extern int optind, optopt;
    const char *offending = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    if (option == ':')
        zfed_cli_fail(program, "option '%s' needs a value", offending);
    if (optopt)
        zfed_cli_fail(program, "unknown option '-%c'", optopt);
    zfed_cli_fail(program, "unknown option '%s'", offending);
}

uint64_t zfed_cli_u64(const char *program, const char *flag, const char *value, uint64_t min,
                      uint64_t max)
{
    uint64_t parsed;
    if (zfed_parse_u64(value, min, max, &parsed) != 0)
        zfed_cli_fail(program, "%s: expected an integer from %llu to %llu, got '%s'", flag,
                      (unsigned long long)min, (unsigned long long)max, value ? value : "");
    return parsed;
}

uint64_t zfed_cli_bytes(const char *program, const char *flag, const char *value, uint64_t min,
                        uint64_t max)
{
    static const struct {
        const char *suffix;
        int shift;
    } units[] = {{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
    char digits[32];
    size_t length = value ? strspn(value, "0123456789") : 0;
    int shift = -1;
    if (value && length > 0 && length < sizeof digits) {
        if (value[length] == '\0')
            shift = 0;
        for (size_t unit = 0; unit < sizeof units / sizeof *units; unit++)
            if (strcmp(value + length, units[unit].suffix) == 0)
                shift = units[unit].shift;
    }
    uint64_t count;
    if (shift >= 0) {
        memcpy(digits, value, length);
        digits[length] = '\0';
    }
    if (shift < 0 || zfed_parse_u64(digits, 0, UINT64_MAX >> shift, &count) != 0 ||
        (count << shift) < min || (count << shift) > max)
        zfed_cli_fail(program,
                      "%s: expected bytes from %llu to %llu (suffix KiB, MiB, GiB, TiB), "
                      "got '%s'",
                      flag, (unsigned long long)min, (unsigned long long)max, value ? value : "");
    return count << shift;
}

uint32_t zfed_cli_u32(const char *program, const char *flag, const char *value, uint32_t min,
                      uint32_t max)
{
    return (uint32_t)zfed_cli_u64(program, flag, value, min, max);
}

int64_t zfed_cli_seconds_ms(const char *program, const char *flag, const char *value, double min_s,
                            double max_s)
{
    double seconds;
    if (zfed_parse_double(value, min_s, max_s, &seconds) != 0)
        zfed_cli_fail(program, "%s: expected seconds from %g to %g, got '%s'", flag, min_s, max_s,
                      value ? value : "");
    return (int64_t)(seconds * 1000.0 + 0.5);
}

const char *zfed_cli_endpoint(const char *program, const char *flag, const char *value,
                              zfed_endpoint_use_t use)
{
    char reason[128];
    if (zfed_endpoint_check(value, use, reason, sizeof reason) != 0)
        zfed_cli_fail(program, "%s: '%s' is not an endpoint (%s): expected " ZFED_ENDPOINT_FORMS,
                      flag, value ? value : "", reason);
    return value;
}

void zfed_cli_version(const char *program)
{
    int major, minor, patch;
    zmq_version(&major, &minor, &patch);
    printf("%s (zfed) %s\nlibzmq %d.%d.%d, czmq %d.%d.%d, msgpack-c %s, jansson %s, gmp %s\n",
           program, ZFED_VERSION_STRING, major, minor, patch, CZMQ_VERSION_MAJOR,
           CZMQ_VERSION_MINOR, CZMQ_VERSION_PATCH, msgpack_version(), JANSSON_VERSION, gmp_version);
}

zfed_cli_common_t zfed_cli_common(const char *program, int option, const char *value,
                                  void (*usage)(void))
{
    switch (option) {
    case ZFED_CLI_OPT_LOG_LEVEL:
        zfed_cli_log_level(program, value);
        return ZFED_CLI_APPLIED;
    case 'v':
        zfed_log_set_level(ZFED_LOG_DEBUG);
        return ZFED_CLI_APPLIED;
    case 'q':
        zfed_log_set_level(ZFED_LOG_WARN);
        return ZFED_CLI_APPLIED;
    case 'h':
        usage();
        return ZFED_CLI_EXIT;
    case 'V':
        zfed_cli_version(program);
        return ZFED_CLI_EXIT;
    default:
        return ZFED_CLI_OTHER;
    }
}

bool zfed_cli_common_or_fail(const char *program, int argc, char **argv, int option,
                             const char *value, void (*usage)(void))
{
    zfed_cli_common_t common = zfed_cli_common(program, option, value, usage);
    if (common == ZFED_CLI_OTHER)
        zfed_cli_bad_option(program, argc, argv, option);
    return common == ZFED_CLI_EXIT;
}

void zfed_cli_log_level(const char *program, const char *value)
{
    zfed_log_level_t level;
    if (zfed_log_level_parse(value, &level) != 0)
        zfed_cli_fail(program, "--log-level: expected error, warn, info or debug, got '%s'",
                      value ? value : "");
    zfed_log_set_level(level);
}
