/*  zfed_cli - what the three programs share on their command lines
    (private header).

    Usage errors name the flag and exit with status 2; --version prints
    one line.  Values are parsed strictly: "10x", "-1" and "" are errors,
    never silently 0.
*/
#ifndef ZFED_CLI_H_INCLUDED
#define ZFED_CLI_H_INCLUDED

#include "zfed/zfed_endpoint.h"

#include <stdbool.h>
#include <stdint.h>

//  The options every program takes: end its getopt_long table with
//  ZFED_CLI_COMMON_OPTIONS (then the zero entry), pass ZFED_CLI_COMMON_SHORT
//  as its short options, and give zfed_cli_common what its own switch does
//  not handle.  (Needs <getopt.h>.)
#define ZFED_CLI_OPT_LOG_LEVEL 0x1000
#define ZFED_CLI_COMMON_SHORT  ":vqhV"
// clang-format off
#define ZFED_CLI_COMMON_OPTIONS                                                                    \
    {"log-level", required_argument, NULL, ZFED_CLI_OPT_LOG_LEVEL},                                \
    {"verbose", no_argument, NULL, 'v'},                                                           \
    {"quiet", no_argument, NULL, 'q'},                                                             \
    {"help", no_argument, NULL, 'h'},                                                              \
    {"version", no_argument, NULL, 'V'}
// clang-format on

typedef enum {
    ZFED_CLI_OTHER,   //  not a shared option
    ZFED_CLI_APPLIED, //  --log-level, -v or -q: the log level is set
    ZFED_CLI_EXIT     //  -h or -V: usage or version printed; exit 0
} zfed_cli_common_t;

//  Applies option if it is one of the shared ones; usage prints the
//  program's --help.
zfed_cli_common_t zfed_cli_common(const char *program, int option, const char *value,
                                  void (*usage)(void));

//  The same, for a program's last switch case: an option that is not a
//  shared one is a usage error (exit 2).  True when the program should now
//  exit 0 (after -h or -V).
bool zfed_cli_common_or_fail(const char *program, int argc, char **argv, int option,
                             const char *value, void (*usage)(void));

#define ZFED_EXIT_OK     0
#define ZFED_EXIT_FAILED 1
#define ZFED_EXIT_USAGE  2

//  Prints "program: message" and a hint to stderr, exits 2.
void zfed_cli_fail(const char *program, const char *format, ...)
    __attribute__((format(printf, 2, 3), noreturn));

//  Reports getopt_long's complaint about argv (unknown option, missing
//  value) by name and exits 2.  Call on getopt_long returning '?' or ':'.
void zfed_cli_bad_option(const char *program, int argc, char **argv, int option)
    __attribute__((noreturn));

//  Flag value parsers: exit 2 naming flag when value is not acceptable.
uint32_t zfed_cli_u32(const char *program, const char *flag, const char *value, uint32_t min,
                      uint32_t max);
uint64_t zfed_cli_u64(const char *program, const char *flag, const char *value, uint64_t min,
                      uint64_t max);
//  A byte count in [min, max]: digits with an optional binary suffix
//  (KiB, MiB, GiB, TiB): "4096", "256MiB", "1GiB".
uint64_t zfed_cli_bytes(const char *program, const char *flag, const char *value, uint64_t min,
                        uint64_t max);
//  Seconds ("2.5") in [min_s, max_s], returned in milliseconds.
int64_t zfed_cli_seconds_ms(const char *program, const char *flag, const char *value, double min_s,
                            double max_s);

//  An endpoint flag's value, checked (zfed_endpoint_check): exits 2 naming
//  the flag and what a valid endpoint looks like.
const char *zfed_cli_endpoint(const char *program, const char *flag, const char *value,
                              zfed_endpoint_use_t use);

//  "program (zfed) X.Y.Z" and the versions of the libraries it uses.
void zfed_cli_version(const char *program);

//  --log-level NAME, and -v/-q shortcuts, applied to zfed_log.
void zfed_cli_log_level(const char *program, const char *value);

#endif
