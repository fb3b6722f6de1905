/*  zfed_test - the few assertions our unit tests need.

    A failed CHECK prints the file, line and expression and counts the
    failure; the test keeps going so one run shows every broken case.
    main() ends with ZFED_TEST_END() which returns non-zero on any failure.
*/
#ifndef ZFED_TEST_H_INCLUDED
#define ZFED_TEST_H_INCLUDED

#include <stdio.h>
#include <string.h>

static int zfed_test_failures = 0;
static int zfed_test_checks = 0;

#define CHECK(expression)                                                                          \
    do {                                                                                           \
        zfed_test_checks++;                                                                        \
        if (!(expression)) {                                                                       \
            zfed_test_failures++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expression);         \
        }                                                                                          \
    } while (0)

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

#define CHECK_INT(actual, expected)                                                                \
    do {                                                                                           \
        long long actual_ = (long long)(actual);                                                   \
        long long expected_ = (long long)(expected);                                               \
        zfed_test_checks++;                                                                        \
        if (actual_ != expected_) {                                                                \
            zfed_test_failures++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK_INT failed: %s\n  got:      %lld\n  expected: %lld\n",   \
                    __FILE__, __LINE__, #actual, actual_, expected_);                              \
        }                                                                                          \
    } while (0)

#define ZFED_TEST_END()                                                                            \
    do {                                                                                           \
        fprintf(stderr, "%s: %d checks, %d failed\n", __FILE__, zfed_test_checks,                  \
                zfed_test_failures);                                                               \
        return zfed_test_failures == 0 ? 0 : 1;                                                    \
    } while (0)

#endif
