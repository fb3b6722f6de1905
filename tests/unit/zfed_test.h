/*  zfed_test - the few assertions our unit tests need.

    A failed CHECK prints the file, line and expression and counts the
    failure; the test keeps going so one run shows every broken case.
    A failed REQUIRE (or REQUIRE_INT) does the same and then stops the
    current test, for conditions the rest of it depends on (a pointer it
    will dereference, a socket it will use): inside ZFED_TEST_RUN(fn) the
    rest of fn is skipped and the next test runs; outside one, the program
    ends at once with the summary and exit status 1.
    main() ends with ZFED_TEST_END() which returns non-zero on any failure.
*/
#ifndef ZFED_TEST_H_INCLUDED
#define ZFED_TEST_H_INCLUDED

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int zfed_test_failures = 0;
static int zfed_test_checks = 0;
//  Where a failed REQUIRE returns to, while ZFED_TEST_RUN runs a test.
static jmp_buf zfed_test_stop_point;
static int zfed_test_running = 0;

static inline void zfed_test_summary(const char *file)
{
    fprintf(stderr, "%s: %d checks, %d failed\n", file, zfed_test_checks, zfed_test_failures);
}

__attribute__((noreturn)) static inline void zfed_test_stop(const char *file)
{
    if (zfed_test_running)
        longjmp(zfed_test_stop_point, 1);
    zfed_test_summary(file);
    exit(1);
}

//  Runs one test function; a failed REQUIRE in it ends only that test.
//  What the test had allocated when it stopped is leaked: it failed anyway.
#define ZFED_TEST_RUN(function)                                                                    \
    do {                                                                                           \
        fprintf(stderr, "-- %s\n", #function);                                                     \
        zfed_test_running = 1;                                                                     \
        if (setjmp(zfed_test_stop_point) == 0)                                                     \
            function();                                                                            \
        zfed_test_running = 0;                                                                     \
    } while (0)

//  A failed check is counted and reported; stop says whether the test
//  ends there (REQUIRE) or goes on (CHECK).
#define ZFED_TEST_TRUE_(kind, stop, expression)                                                    \
    do {                                                                                           \
        zfed_test_checks++;                                                                        \
        if (!(expression)) {                                                                       \
            zfed_test_failures++;                                                                  \
            fprintf(stderr, "%s:%d: %s failed: %s%s\n", __FILE__, __LINE__, kind, #expression,     \
                    stop ? " (test stopped)" : "");                                                \
            if (stop)                                                                              \
                zfed_test_stop(__FILE__);                                                          \
        }                                                                                          \
    } while (0)

#define ZFED_TEST_INT_(kind, stop, actual, expected)                                               \
    do {                                                                                           \
        long long actual_ = (long long)(actual);                                                   \
        long long expected_ = (long long)(expected);                                               \
        zfed_test_checks++;                                                                        \
        if (actual_ != expected_) {                                                                \
            zfed_test_failures++;                                                                  \
            fprintf(stderr, "%s:%d: %s failed: %s%s\n  got:      %lld\n  expected: %lld\n",        \
                    __FILE__, __LINE__, kind, #actual, stop ? " (test stopped)" : "", actual_,     \
                    expected_);                                                                    \
            if (stop)                                                                              \
                zfed_test_stop(__FILE__);                                                          \
        }                                                                                          \
    } while (0)

#define CHECK(expression)             ZFED_TEST_TRUE_("CHECK", 0, expression)
#define REQUIRE(expression)           ZFED_TEST_TRUE_("REQUIRE", 1, expression)
#define CHECK_INT(actual, expected)   ZFED_TEST_INT_("CHECK_INT", 0, actual, expected)
#define REQUIRE_INT(actual, expected) ZFED_TEST_INT_("REQUIRE_INT", 1, actual, expected)

#define CHECK_STR(actual, expected)                                                                \
    do {                                                                                           \
        const char *actual_ = (actual);                                                            \
        const char *expected_ = (expected);                                                        \
        zfed_test_checks++;                                                                        \
        if (!actual_ || strcmp(actual_, expected_) != 0) {                                         \
            zfed_test_failures++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s\n  got:      %s\n  expected: %s\n",       \
                    __FILE__, __LINE__, #actual, actual_ ? actual_ : "(null)", expected_);         \
        }                                                                                          \
    } while (0)

#define ZFED_TEST_END()                                                                            \
    do {                                                                                           \
        zfed_test_summary(__FILE__);                                                               \
        return zfed_test_failures == 0 ? 0 : 1;                                                    \
    } while (0)

#endif
