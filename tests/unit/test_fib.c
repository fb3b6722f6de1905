/*  test_fib - the Fibonacci kernel against independent answers.

    Two independent sources: GMP's mpz_fib_ui (a different algorithm) via
    sum(F(0)..F(n-1)) = F(n+1) - 1 and last = F(n-1), and decimal constants
    computed separately with Python and pasted in below.
*/
#include "zfed/zfed_fib.h"
#include "zfed/zfed_number.h"
#include "zfed_test.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

//  How many leading and trailing digits the large-level constants pin.
#define EDGE_DIGITS 20

//  Decimal text of an mpz the test owns; NULL-safe for CHECK_STR.
static char *s_text(const mpz_t *value)
{
    return value ? zfed_bigint_format(*value) : NULL;
}

#define CHECK_MPZ_STR(value, expected)                                                             \
    do {                                                                                           \
        char *text_ = s_text(value);                                                               \
        CHECK_STR(text_, expected);                                                                \
        free(text_);                                                                               \
    } while (0)

//  Compares sum and last with GMP's own Fibonacci numbers.
static bool s_matches_identity(const zfed_fib_t *fib, uint32_t level)
{
    mpz_t expected_sum, expected_last;
    mpz_inits(expected_sum, expected_last, NULL);
    mpz_fib_ui(expected_sum, (unsigned long)level + 1);
    mpz_sub_ui(expected_sum, expected_sum, 1);
    mpz_fib_ui(expected_last, (unsigned long)level - 1);
    bool matches = zfed_fib_sum(fib) && zfed_fib_last(fib) &&
                   mpz_cmp(*zfed_fib_sum(fib), expected_sum) == 0 &&
                   mpz_cmp(*zfed_fib_last(fib), expected_last) == 0;
    mpz_clears(expected_sum, expected_last, NULL);
    return matches;
}

//  True when the decimal text of value has digit_count digits and starts
//  and ends with the given EDGE_DIGITS-long strings.
static bool s_matches_digits(const mpz_t *value, size_t digit_count, const char *head,
                             const char *tail)
{
    char *text = s_text(value);
    if (!text)
        return false;
    size_t length = strlen(text);
    bool matches = length == digit_count && length >= EDGE_DIGITS &&
                   strncmp(text, head, EDGE_DIGITS) == 0 &&
                   strcmp(text + length - EDGE_DIGITS, tail) == 0;
    if (!matches)
        fprintf(stderr, "  digits: %zu, head %.20s, tail %s\n", length, text,
                length >= EDGE_DIGITS ? text + length - EDGE_DIGITS : text);
    free(text);
    return matches;
}

//  Every kept term equals mpz_fib_ui's, and the index past the end is NULL.
static bool s_sequence_matches(const zfed_fib_t *fib, uint32_t level)
{
    bool matches = zfed_fib_has_sequence(fib) && zfed_fib_term(fib, level) == NULL;
    mpz_t expected;
    mpz_init(expected);
    for (uint32_t index = 0; index < level && matches; index++) {
        mpz_fib_ui(expected, index);
        const mpz_t *term = zfed_fib_term(fib, index);
        matches = term && mpz_cmp(*term, expected) == 0;
    }
    mpz_clear(expected);
    return matches;
}

static void s_test_rejects(void)
{
    zfed_fib_t *fib = zfed_fib_new(0);
    CHECK(fib == NULL);
    fib = zfed_fib_new(ZFED_FIB_MAX_LEVEL + 1);
    CHECK(fib == NULL);
    fib = zfed_fib_new(UINT32_MAX);
    CHECK(fib == NULL);
    //  Destroying nothing is harmless.
    zfed_fib_destroy(&fib);
    zfed_fib_destroy(NULL);
}

static void s_test_small_levels(void)
{
    zfed_fib_t *fib = zfed_fib_new(1);
    REQUIRE(fib != NULL);
    CHECK_INT(zfed_fib_terms(fib), 1);
    CHECK_MPZ_STR(zfed_fib_sum(fib), "0");
    CHECK_MPZ_STR(zfed_fib_last(fib), "0");
    CHECK(zfed_fib_has_sequence(fib));
    CHECK_MPZ_STR(zfed_fib_term(fib, 0), "0");
    CHECK(zfed_fib_term(fib, 1) == NULL);
    zfed_fib_destroy(&fib);
    CHECK(fib == NULL);
    //  A second destroy finds NULL and does nothing.
    zfed_fib_destroy(&fib);
    CHECK(fib == NULL);

    fib = zfed_fib_new(2);
    REQUIRE(fib != NULL);
    CHECK_INT(zfed_fib_terms(fib), 2);
    CHECK_MPZ_STR(zfed_fib_sum(fib), "1");
    CHECK_MPZ_STR(zfed_fib_last(fib), "1");
    CHECK_MPZ_STR(zfed_fib_term(fib, 0), "0");
    CHECK_MPZ_STR(zfed_fib_term(fib, 1), "1");
    CHECK(zfed_fib_term(fib, 2) == NULL);
    zfed_fib_destroy(&fib);

    fib = zfed_fib_new(3);
    REQUIRE(fib != NULL);
    CHECK_MPZ_STR(zfed_fib_sum(fib), "2");
    CHECK_MPZ_STR(zfed_fib_last(fib), "1");
    zfed_fib_destroy(&fib);

    fib = zfed_fib_new(10);
    REQUIRE(fib != NULL);
    CHECK_INT(zfed_fib_terms(fib), 10);
    CHECK_MPZ_STR(zfed_fib_sum(fib), "88");
    CHECK_MPZ_STR(zfed_fib_last(fib), "34");
    CHECK(zfed_fib_has_sequence(fib));
    static const unsigned long level_10[] = {0, 1, 1, 2, 3, 5, 8, 13, 21, 34};
    for (uint32_t index = 0; index < 10; index++) {
        const mpz_t *term = zfed_fib_term(fib, index);
        REQUIRE(term != NULL);
        if (term && mpz_cmp_ui(*term, level_10[index]) != 0) {
            fprintf(stderr, "  level 10, term %u\n", index);
            CHECK(false);
        }
    }
    CHECK(zfed_fib_term(fib, 10) == NULL);
    CHECK(zfed_fib_term(fib, UINT32_MAX) == NULL);
    CHECK(s_matches_identity(fib, 10));
    zfed_fib_destroy(&fib);
}

//  Past 64 bits: the sum overflows a uint64_t from level 93, the last term
//  from level 95.
static void s_test_beyond_64_bits(void)
{
    zfed_fib_t *fib = zfed_fib_new(93);
    REQUIRE(fib != NULL);
    CHECK_MPZ_STR(zfed_fib_sum(fib), "19740274219868223166");
    CHECK_MPZ_STR(zfed_fib_last(fib), "7540113804746346429");
    CHECK(s_matches_identity(fib, 93));
    CHECK(s_sequence_matches(fib, 93));
    zfed_fib_destroy(&fib);

    fib = zfed_fib_new(94);
    REQUIRE(fib != NULL);
    CHECK_MPZ_STR(zfed_fib_sum(fib), "31940434634990099904");
    CHECK_MPZ_STR(zfed_fib_last(fib), "12200160415121876738");
    CHECK(s_matches_identity(fib, 94));
    zfed_fib_destroy(&fib);

    fib = zfed_fib_new(95);
    REQUIRE(fib != NULL);
    CHECK_MPZ_STR(zfed_fib_last(fib), "19740274219868223167");
    CHECK(s_matches_identity(fib, 95));
    zfed_fib_destroy(&fib);

    fib = zfed_fib_new(100);
    REQUIRE(fib != NULL);
    CHECK_INT(zfed_fib_terms(fib), 100);
    CHECK_MPZ_STR(zfed_fib_sum(fib), "573147844013817084100");
    CHECK_MPZ_STR(zfed_fib_last(fib), "218922995834555169026");
    CHECK_MPZ_STR(zfed_fib_term(fib, 99), "218922995834555169026");
    CHECK(s_matches_identity(fib, 100));
    zfed_fib_destroy(&fib);
}

static void s_test_sequence_boundary(void)
{
    zfed_fib_t *fib = zfed_fib_new(ZFED_FIB_SEQUENCE_MAX);
    REQUIRE(fib != NULL);
    CHECK(zfed_fib_has_sequence(fib));
    CHECK(s_sequence_matches(fib, ZFED_FIB_SEQUENCE_MAX));
    zfed_fib_destroy(&fib);

    fib = zfed_fib_new(ZFED_FIB_SEQUENCE_MAX + 1);
    REQUIRE(fib != NULL);
    CHECK(!zfed_fib_has_sequence(fib));
    CHECK(zfed_fib_term(fib, 0) == NULL);
    CHECK(zfed_fib_term(fib, ZFED_FIB_SEQUENCE_MAX) == NULL);
    //  Sum and last do not depend on keeping the sequence.
    CHECK_INT(zfed_fib_terms(fib), ZFED_FIB_SEQUENCE_MAX + 1);
    CHECK(s_matches_identity(fib, ZFED_FIB_SEQUENCE_MAX + 1));
    zfed_fib_destroy(&fib);
}

static void s_test_large_levels(void)
{
    zfed_fib_t *fib = zfed_fib_new(1000);
    REQUIRE(fib != NULL);
    CHECK(!zfed_fib_has_sequence(fib));
    CHECK(s_matches_identity(fib, 1000));
    CHECK(s_matches_digits(zfed_fib_sum(fib), 209, "70330367711422815821", "91902245245323403500"));
    CHECK(
        s_matches_digits(zfed_fib_last(fib), 209, "26863810024485359386", "15764450078474174626"));
    zfed_fib_destroy(&fib);

    fib = zfed_fib_new(10000);
    REQUIRE(fib != NULL);
    CHECK(s_matches_identity(fib, 10000));
    CHECK(
        s_matches_digits(zfed_fib_sum(fib), 2090, "54438373113565281338", "60676846711185597500"));
    CHECK(
        s_matches_digits(zfed_fib_last(fib), 2090, "20793608237133498072", "94603536651238230626"));
    zfed_fib_destroy(&fib);

    fib = zfed_fib_new(ZFED_FIB_MAX_LEVEL);
    REQUIRE(fib != NULL);
    CHECK_INT(zfed_fib_terms(fib), ZFED_FIB_MAX_LEVEL);
    CHECK(s_matches_identity(fib, ZFED_FIB_MAX_LEVEL));
    //  These constants are for level 100000; they must change with the cap.
    CHECK_INT(ZFED_FIB_MAX_LEVEL, 100000);
    CHECK(
        s_matches_digits(zfed_fib_sum(fib), 20899, "42026927029951543863", "38285979669707537500"));
    CHECK(s_matches_digits(zfed_fib_last(fib), 20899, "16052857682729819697",
                           "88390605016278790626"));
    //  The largest result must still fit the wire format.
    char *sum = s_text(zfed_fib_sum(fib));
    CHECK(sum && strlen(sum) <= ZFED_NUMBER_MAX_CHARS);
    free(sum);
    zfed_fib_destroy(&fib);
}

//  Renders the pyramid of a level, or NULL.
static char *s_pyramid(uint32_t level)
{
    zfed_fib_t *fib = zfed_fib_new(level);
    char *pyramid = fib ? zfed_fib_pyramid(fib) : NULL;
    zfed_fib_destroy(&fib);
    return pyramid;
}

//  Checks every line of a pyramid: newline-terminated, within the width
//  cap, no trailing spaces.  Returns the number of lines.
static size_t s_check_lines(const char *pyramid)
{
    size_t lines = 0;
    const char *line = pyramid;
    while (*line) {
        const char *end = strchr(line, '\n');
        CHECK(end != NULL);
        if (!end)
            break;
        size_t width = (size_t)(end - line);
        CHECK(width <= ZFED_FIB_PYRAMID_MAX_WIDTH);
        CHECK(width > 0 && line[width - 1] != ' ');
        lines++;
        line = end + 1;
    }
    return lines;
}

static void s_test_pyramid(void)
{
    char *pyramid = s_pyramid(1);
    CHECK_STR(pyramid, "0\n");
    free(pyramid);

    pyramid = s_pyramid(4);
    CHECK_STR(pyramid, "   0\n"
                       "  0 1\n"
                       " 0 1 1\n"
                       "0 1 1 2\n");
    free(pyramid);

    pyramid = s_pyramid(7);
    CHECK_STR(pyramid, "      0\n"
                       "     0 1\n"
                       "    0 1 1\n"
                       "   0 1 1 2\n"
                       "  0 1 1 2 3\n"
                       " 0 1 1 2 3 5\n"
                       "0 1 1 2 3 5 8\n");
    free(pyramid);

    //  Two-digit terms make rows grow unevenly; padding rounds down.
    pyramid = s_pyramid(9);
    CHECK_STR(pyramid, "         0\n"
                       "        0 1\n"
                       "       0 1 1\n"
                       "      0 1 1 2\n"
                       "     0 1 1 2 3\n"
                       "    0 1 1 2 3 5\n"
                       "   0 1 1 2 3 5 8\n"
                       " 0 1 1 2 3 5 8 13\n"
                       "0 1 1 2 3 5 8 13 21\n");
    free(pyramid);

    //  Exactly the row cap: nothing left out, so no summary line.
    pyramid = s_pyramid(ZFED_FIB_PYRAMID_MAX_ROWS);
    REQUIRE(pyramid != NULL);
    if (pyramid) {
        CHECK_INT(s_check_lines(pyramid), ZFED_FIB_PYRAMID_MAX_ROWS);
        CHECK(strstr(pyramid, "more row") == NULL);
    }
    free(pyramid);

    pyramid = s_pyramid(ZFED_FIB_PYRAMID_MAX_ROWS + 1);
    REQUIRE(pyramid != NULL);
    if (pyramid) {
        CHECK_INT(s_check_lines(pyramid), ZFED_FIB_PYRAMID_MAX_ROWS + 1);
        size_t length = strlen(pyramid);
        const char *tail = "\n... 1 more row (level 21)\n";
        CHECK(length > strlen(tail) && strcmp(pyramid + length - strlen(tail), tail) == 0);
    }
    free(pyramid);

    //  Level 101 keeps no sequence, so its pyramid is computed from
    //  scratch; it must match level 100's apart from the summary line.
    char *kept = s_pyramid(ZFED_FIB_SEQUENCE_MAX);
    char *computed = s_pyramid(ZFED_FIB_SEQUENCE_MAX + 1);
    CHECK(kept && computed);
    if (kept && computed) {
        const char *kept_tail = strstr(kept, "...");
        const char *computed_tail = strstr(computed, "...");
        CHECK(kept_tail && computed_tail);
        if (kept_tail && computed_tail) {
            CHECK(kept_tail - kept == computed_tail - computed);
            CHECK(strncmp(kept, computed, (size_t)(kept_tail - kept)) == 0);
            CHECK_STR(kept_tail, "... 80 more rows (level 100)\n");
            CHECK_STR(computed_tail, "... 81 more rows (level 101)\n");
        }
    }
    free(kept);
    free(computed);
}

static void s_test_pyramid_caps(void)
{
    //  These literals assume the current caps.
    CHECK_INT(ZFED_FIB_PYRAMID_MAX_ROWS, 20);
    CHECK_INT(ZFED_FIB_PYRAMID_MAX_WIDTH, 160);

    char *pyramid = s_pyramid(ZFED_FIB_MAX_LEVEL);
    CHECK(pyramid != NULL);
    if (!pyramid)
        return;
    CHECK_INT(s_check_lines(pyramid), ZFED_FIB_PYRAMID_MAX_ROWS + 1);
    static const char *first_row = "                               0\n";
    CHECK(strncmp(pyramid, first_row, strlen(first_row)) == 0);
    static const char *last_rows =
        "0 1 1 2 3 5 8 13 21 34 55 89 144 233 377 610 987 1597 2584 4181\n"
        "... 99980 more rows (level 100000)\n";
    size_t length = strlen(pyramid);
    CHECK(length > strlen(last_rows) &&
          strcmp(pyramid + length - strlen(last_rows), last_rows) == 0);
    free(pyramid);
}

int main(void)
{
    s_test_rejects();
    s_test_small_levels();
    s_test_beyond_64_bits();
    s_test_sequence_boundary();
    s_test_large_levels();
    s_test_pyramid();
    s_test_pyramid_caps();
    ZFED_TEST_END();
}
