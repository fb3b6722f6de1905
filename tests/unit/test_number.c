/*  test_number - canonical decimal text for bigint and decimal values.

    Expected texts are written out literally: a round trip through our own
    parser and formatter alone would pass even if both were wrong the same
    way.
*/
#include "zfed/zfed_number.h"
#include "zfed_test.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

//  A recognisable value that a failed parse must leave in place.
#define SENTINEL 42

//  Length of a string literal, counting any embedded NULs.
#define LITERAL_LENGTH(literal) (sizeof(literal) - 1)

//  True when text[0..length) is refused as a bigint and value is untouched.
static bool s_bigint_rejects(const char *text, size_t length)
{
    mpz_t value;
    mpz_init_set_ui(value, SENTINEL);
    int rc = zfed_bigint_parse(text, length, value);
    bool untouched = mpz_cmp_ui(value, SENTINEL) == 0;
    mpz_clear(value);
    return rc == -1 && untouched;
}

static bool s_decimal_rejects(const char *text, size_t length)
{
    mpq_t value;
    mpq_init(value);
    mpq_set_ui(value, SENTINEL, 1);
    int rc = zfed_decimal_parse(text, length, value);
    bool untouched =
        mpz_cmp_ui(mpq_numref(value), SENTINEL) == 0 && mpz_cmp_ui(mpq_denref(value), 1) == 0;
    mpq_clear(value);
    //  zfed_decimal_valid refuses exactly what the parser refuses.
    return rc == -1 && untouched && !zfed_decimal_valid(text, length);
}

#define CHECK_BIGINT_REJECTS(literal)  CHECK(s_bigint_rejects(literal, LITERAL_LENGTH(literal)))
#define CHECK_DECIMAL_REJECTS(literal) CHECK(s_decimal_rejects(literal, LITERAL_LENGTH(literal)))

//  Parses text as a bigint and formats it back; NULL if either step fails.
static char *s_bigint_round_trip(const char *text, size_t length)
{
    mpz_t value;
    mpz_init(value);
    char *back = NULL;
    if (zfed_bigint_parse(text, length, value) == 0)
        back = zfed_bigint_format(value);
    mpz_clear(value);
    return back;
}

//  Parses text as a decimal and formats it back with as many fraction
//  digits as the text has, which must reproduce it exactly.
static char *s_decimal_round_trip(const char *text, size_t length, bool *exact)
{
    const char *point = memchr(text, '.', length);
    unsigned digits = point ? (unsigned)(length - (size_t)(point - text) - 1) : 0;
    mpq_t value;
    mpq_init(value);
    char *back = NULL;
    if (zfed_decimal_parse(text, length, value) == 0 && zfed_decimal_valid(text, length))
        back = zfed_decimal_format(value, digits, exact);
    mpq_clear(value);
    return back;
}

#define CHECK_BIGINT_ROUND_TRIP(literal)                                                           \
    do {                                                                                           \
        char *back_ = s_bigint_round_trip(literal, LITERAL_LENGTH(literal));                       \
        CHECK_STR(back_, literal);                                                                 \
        free(back_);                                                                               \
    } while (0)

#define CHECK_DECIMAL_ROUND_TRIP(literal)                                                          \
    do {                                                                                           \
        bool exact_ = false;                                                                       \
        char *back_ = s_decimal_round_trip(literal, LITERAL_LENGTH(literal), &exact_);             \
        CHECK_STR(back_, literal);                                                                 \
        CHECK(exact_);                                                                             \
        free(back_);                                                                               \
    } while (0)

//  Formats numerator/denominator with the given fraction digits.
static char *s_format_ratio(long numerator, unsigned long denominator, unsigned digits, bool *exact)
{
    mpq_t value;
    mpq_init(value);
    mpq_set_si(value, numerator, denominator);
    mpq_canonicalize(value);
    char *text = zfed_decimal_format(value, digits, exact);
    mpq_clear(value);
    return text;
}

//  exact_ starts as the opposite of what we expect so that a formatter
//  that never writes it fails the check.
#define CHECK_FORMAT(numerator, denominator, digits, expected, expected_exact)                     \
    do {                                                                                           \
        bool exact_ = !(expected_exact);                                                           \
        char *text_ = s_format_ratio(numerator, denominator, digits, &exact_);                     \
        CHECK_STR(text_, expected);                                                                \
        CHECK_INT(exact_, expected_exact);                                                         \
        free(text_);                                                                               \
    } while (0)

//  count copies of fill after an optional prefix, NUL-terminated.
static char *s_make_text(const char *prefix, char fill, size_t count)
{
    size_t prefix_length = strlen(prefix);
    char *text = malloc(prefix_length + count + 1);
    if (!text)
        return NULL;
    memcpy(text, prefix, prefix_length);
    memset(text + prefix_length, fill, count);
    text[prefix_length + count] = '\0';
    return text;
}

static void s_test_bigint_parse(void)
{
    mpz_t value;
    mpz_init(value);

    CHECK_INT(zfed_bigint_parse("0", 1, value), 0);
    CHECK(mpz_cmp_ui(value, 0) == 0);
    CHECK_INT(zfed_bigint_parse("88", 2, value), 0);
    CHECK(mpz_cmp_ui(value, 88) == 0);
    //  2^64: past any machine integer.
    CHECK_INT(zfed_bigint_parse("18446744073709551616", 20, value), 0);
    mpz_t expected;
    mpz_init(expected);
    mpz_ui_pow_ui(expected, 2, 64);
    CHECK(mpz_cmp(value, expected) == 0);
    mpz_clear(expected);

    //  The length is explicit: only the first three characters count, and
    //  a buffer with no NUL at all is fine.
    CHECK_INT(zfed_bigint_parse("12345", 3, value), 0);
    CHECK(mpz_cmp_ui(value, 123) == 0);
    const char unterminated[3] = {'9', '0', '1'};
    CHECK_INT(zfed_bigint_parse(unterminated, sizeof(unterminated), value), 0);
    CHECK(mpz_cmp_ui(value, 901) == 0);

    mpz_clear(value);

    CHECK_BIGINT_REJECTS("");
    CHECK_BIGINT_REJECTS("00");
    CHECK_BIGINT_REJECTS("01");
    CHECK_BIGINT_REJECTS("007");
    CHECK_BIGINT_REJECTS("+1");
    CHECK_BIGINT_REJECTS("-1");
    CHECK_BIGINT_REJECTS("-0");
    CHECK_BIGINT_REJECTS(" 1");
    CHECK_BIGINT_REJECTS("1 ");
    CHECK_BIGINT_REJECTS("1\n");
    CHECK_BIGINT_REJECTS("1.");
    CHECK_BIGINT_REJECTS("1.0");
    CHECK_BIGINT_REJECTS("1.5");
    CHECK_BIGINT_REJECTS("1e3");
    CHECK_BIGINT_REJECTS("0x10");
    CHECK_BIGINT_REJECTS("12a");
    CHECK_BIGINT_REJECTS("1,000");
    CHECK_BIGINT_REJECTS("1\0");
    CHECK_BIGINT_REJECTS("1\0"
                         "2");
    CHECK_BIGINT_REJECTS("\0"
                         "1");
    CHECK(s_bigint_rejects(NULL, 0));
    CHECK(s_bigint_rejects(NULL, 1));
}

static void s_test_bigint_format(void)
{
    mpz_t value;
    mpz_init(value);

    char *text = zfed_bigint_format(value);
    CHECK_STR(text, "0");
    free(text);

    mpz_set_ui(value, 34);
    text = zfed_bigint_format(value);
    CHECK_STR(text, "34");
    free(text);

    mpz_ui_pow_ui(value, 10, 30);
    text = zfed_bigint_format(value);
    CHECK_STR(text, "1000000000000000000000000000000");
    free(text);

    mpz_set_si(value, -1);
    CHECK(zfed_bigint_format(value) == NULL);

    mpz_clear(value);

    CHECK_BIGINT_ROUND_TRIP("0");
    CHECK_BIGINT_ROUND_TRIP("7");
    CHECK_BIGINT_ROUND_TRIP("10");
    CHECK_BIGINT_ROUND_TRIP("18446744073709551615");
    CHECK_BIGINT_ROUND_TRIP("18446744073709551616");
    CHECK_BIGINT_ROUND_TRIP("573147844013817084100");
    CHECK_BIGINT_ROUND_TRIP("99999999999999999999999999999999999999999999999999");
}

static void s_test_bigint_limits(void)
{
    //  Exactly ZFED_NUMBER_MAX_CHARS digits: accepted and reproduced.
    char *longest = s_make_text("1", '0', ZFED_NUMBER_MAX_CHARS - 1);
    REQUIRE(longest != NULL);
    if (longest) {
        mpz_t value, expected;
        mpz_inits(value, expected, NULL);
        CHECK_INT(zfed_bigint_parse(longest, ZFED_NUMBER_MAX_CHARS, value), 0);
        mpz_ui_pow_ui(expected, 10, ZFED_NUMBER_MAX_CHARS - 1);
        CHECK(mpz_cmp(value, expected) == 0);
        char *back = zfed_bigint_format(value);
        REQUIRE(back != NULL);
        CHECK_INT(back ? strlen(back) : 0, ZFED_NUMBER_MAX_CHARS);
        CHECK(back && strcmp(back, longest) == 0);
        free(back);
        mpz_clears(value, expected, NULL);
    }
    free(longest);

    //  The largest value that fits: all nines.
    char *nines = s_make_text("", '9', ZFED_NUMBER_MAX_CHARS);
    REQUIRE(nines != NULL);
    if (nines) {
        char *back = s_bigint_round_trip(nines, ZFED_NUMBER_MAX_CHARS);
        CHECK(back && strcmp(back, nines) == 0);
        free(back);
    }
    free(nines);

    //  One more character is refused, even though it is a valid number.
    char *too_long = s_make_text("1", '0', ZFED_NUMBER_MAX_CHARS);
    REQUIRE(too_long != NULL);
    if (too_long)
        CHECK(s_bigint_rejects(too_long, ZFED_NUMBER_MAX_CHARS + 1));
    free(too_long);
}

static void s_test_decimal_parse(void)
{
    mpq_t value, expected;
    mpq_inits(value, expected, NULL);

    CHECK_INT(zfed_decimal_parse("0", 1, value), 0);
    CHECK(mpq_sgn(value) == 0);

    CHECK_INT(zfed_decimal_parse("-7", 2, value), 0);
    mpq_set_si(expected, -7, 1);
    CHECK(mpq_equal(value, expected));

    CHECK_INT(zfed_decimal_parse("1.5", 3, value), 0);
    mpq_set_si(expected, 3, 2);
    CHECK(mpq_equal(value, expected));

    CHECK_INT(zfed_decimal_parse("-0.5", 4, value), 0);
    mpq_set_si(expected, -1, 2);
    CHECK(mpq_equal(value, expected));

    CHECK_INT(zfed_decimal_parse("0.001", 5, value), 0);
    mpq_set_si(expected, 1, 1000);
    CHECK(mpq_equal(value, expected));

    CHECK_INT(zfed_decimal_parse("123.456", 7, value), 0);
    mpq_set_si(expected, 15432, 125);
    CHECK(mpq_equal(value, expected));

    CHECK_INT(zfed_decimal_parse("-10.25", 6, value), 0);
    mpq_set_si(expected, -41, 4);
    CHECK(mpq_equal(value, expected));

    //  Explicit length: "2.5" out of "2.50" is canonical even though the
    //  whole buffer would not be.
    CHECK_INT(zfed_decimal_parse("2.50", 3, value), 0);
    mpq_set_si(expected, 5, 2);
    CHECK(mpq_equal(value, expected));
    const char unterminated[4] = {'-', '0', '.', '2'};
    CHECK_INT(zfed_decimal_parse(unterminated, sizeof(unterminated), value), 0);
    mpq_set_si(expected, -1, 5);
    CHECK(mpq_equal(value, expected));

    mpq_clears(value, expected, NULL);

    CHECK_DECIMAL_REJECTS("");
    CHECK_DECIMAL_REJECTS("-");
    CHECK_DECIMAL_REJECTS("-0");
    CHECK_DECIMAL_REJECTS("-0.0");
    CHECK_DECIMAL_REJECTS("0.0");
    CHECK_DECIMAL_REJECTS("01");
    CHECK_DECIMAL_REJECTS("-01");
    CHECK_DECIMAL_REJECTS("00.5");
    CHECK_DECIMAL_REJECTS("+1");
    CHECK_DECIMAL_REJECTS("--1");
    CHECK_DECIMAL_REJECTS(" 1");
    CHECK_DECIMAL_REJECTS("1 ");
    CHECK_DECIMAL_REJECTS("- 1");
    CHECK_DECIMAL_REJECTS("1.");
    CHECK_DECIMAL_REJECTS("-1.");
    CHECK_DECIMAL_REJECTS(".5");
    CHECK_DECIMAL_REJECTS("-.5");
    CHECK_DECIMAL_REJECTS(".");
    CHECK_DECIMAL_REJECTS("1.50");
    CHECK_DECIMAL_REJECTS("1.0");
    CHECK_DECIMAL_REJECTS("10.00");
    CHECK_DECIMAL_REJECTS("1..5");
    CHECK_DECIMAL_REJECTS("1.2.3");
    CHECK_DECIMAL_REJECTS("1.-5");
    CHECK_DECIMAL_REJECTS("1e5");
    CHECK_DECIMAL_REJECTS("1,5");
    CHECK_DECIMAL_REJECTS("0x1");
    CHECK_DECIMAL_REJECTS("inf");
    CHECK_DECIMAL_REJECTS("nan");
    CHECK_DECIMAL_REJECTS("1/2");
    CHECK_DECIMAL_REJECTS("1.5\0");
    CHECK_DECIMAL_REJECTS("1.\0"
                          "5");
    CHECK_DECIMAL_REJECTS("\0"
                          "1");
    CHECK(s_decimal_rejects(NULL, 0));
    CHECK(s_decimal_rejects(NULL, 3));
}

static void s_test_decimal_format(void)
{
    //  The cases aggregates hit with ZFED_DECIMAL_FRACTION_DIGITS.
    CHECK_FORMAT(1, 3, ZFED_DECIMAL_FRACTION_DIGITS, "0.333333", false);
    CHECK_FORMAT(2, 3, ZFED_DECIMAL_FRACTION_DIGITS, "0.666667", false);
    CHECK_FORMAT(-2, 3, ZFED_DECIMAL_FRACTION_DIGITS, "-0.666667", false);
    CHECK_FORMAT(1, 2, ZFED_DECIMAL_FRACTION_DIGITS, "0.5", true);
    CHECK_FORMAT(7, 1, ZFED_DECIMAL_FRACTION_DIGITS, "7", true);
    CHECK_FORMAT(-7, 1, ZFED_DECIMAL_FRACTION_DIGITS, "-7", true);
    CHECK_FORMAT(0, 1, ZFED_DECIMAL_FRACTION_DIGITS, "0", true);
    CHECK_FORMAT(88, 10, ZFED_DECIMAL_FRACTION_DIGITS, "8.8", true);
    CHECK_FORMAT(-1, 8, ZFED_DECIMAL_FRACTION_DIGITS, "-0.125", true);
    CHECK_FORMAT(1, 1000000, ZFED_DECIMAL_FRACTION_DIGITS, "0.000001", true);

    //  Half away from zero, both signs.
    CHECK_FORMAT(5, 2, 0, "3", false);
    CHECK_FORMAT(-5, 2, 0, "-3", false);
    CHECK_FORMAT(3, 2, 0, "2", false);
    CHECK_FORMAT(-3, 2, 0, "-2", false);
    CHECK_FORMAT(1, 8, 2, "0.13", false);
    CHECK_FORMAT(-1, 8, 2, "-0.13", false);
    CHECK_FORMAT(1, 2000000, 6, "0.000001", false);
    CHECK_FORMAT(-1, 2000000, 6, "-0.000001", false);
    //  Just under the half rounds down.
    CHECK_FORMAT(49, 100, 0, "0", false);
    CHECK_FORMAT(-49, 100, 0, "0", false);
    CHECK_FORMAT(124, 1000, 2, "0.12", false);

    //  Tiny values round to zero, which never carries a sign.
    CHECK_FORMAT(-1, 10000000, 6, "0", false);
    CHECK_FORMAT(1, 10000000, 6, "0", false);
    CHECK_FORMAT(-1, 3, 0, "0", false);

    //  Rounding carries into the integer part and drops the point.
    CHECK_FORMAT(999999, 1000000, 5, "1", false);
    CHECK_FORMAT(-19999995, 10000000, 6, "-2", false);
    CHECK_FORMAT(95, 100, 1, "1", false);

    //  Trailing zeros after rounding are stripped, not printed.
    CHECK_FORMAT(1001, 10000, 3, "0.1", false);
    CHECK_FORMAT(3, 2, 6, "1.5", true);
    CHECK_FORMAT(3, 2, 1, "1.5", true);

    //  Exact binary fractions need many digits; one fewer is inexact.
    CHECK_FORMAT(1, 1024, 10, "0.0009765625", true);
    CHECK_FORMAT(1, 1024, 9, "0.000976563", false);
    CHECK_FORMAT(1, 1024, 20, "0.0009765625", true);

    //  A NULL exact is allowed.
    char *text = s_format_ratio(1, 3, 2, NULL);
    CHECK_STR(text, "0.33");
    free(text);

    //  A fraction_digits no canonical number could hold is refused rather
    //  than computing a 10^4e9 scale.
    text = s_format_ratio(1, 3, ZFED_NUMBER_MAX_CHARS + 1, NULL);
    CHECK(text == NULL);
    free(text);
    text = s_format_ratio(1, 3, (unsigned)-1, NULL);
    CHECK(text == NULL);
    free(text);

    CHECK_DECIMAL_ROUND_TRIP("0");
    CHECK_DECIMAL_ROUND_TRIP("-1");
    CHECK_DECIMAL_ROUND_TRIP("0.5");
    CHECK_DECIMAL_ROUND_TRIP("-0.5");
    CHECK_DECIMAL_ROUND_TRIP("0.000001");
    CHECK_DECIMAL_ROUND_TRIP("-0.000001");
    CHECK_DECIMAL_ROUND_TRIP("123.456");
    CHECK_DECIMAL_ROUND_TRIP("100.01");
    CHECK_DECIMAL_ROUND_TRIP("573147844013817084100");
    CHECK_DECIMAL_ROUND_TRIP("-573147844013817084100.999999999999999999999");
}

static void s_test_decimal_limits(void)
{
    //  "-" and ZFED_NUMBER_MAX_CHARS - 1 nines: the longest negative value.
    char *longest = s_make_text("-", '9', ZFED_NUMBER_MAX_CHARS - 1);
    REQUIRE(longest != NULL);
    if (longest) {
        bool exact = false;
        char *back = s_decimal_round_trip(longest, ZFED_NUMBER_MAX_CHARS, &exact);
        CHECK(back && strcmp(back, longest) == 0);
        CHECK(exact);
        free(back);
    }
    free(longest);

    //  "0." and then digits up to the limit: a long exact fraction.
    char *fraction = s_make_text("0.", '3', ZFED_NUMBER_MAX_CHARS - 2);
    REQUIRE(fraction != NULL);
    if (fraction) {
        bool exact = false;
        char *back = s_decimal_round_trip(fraction, ZFED_NUMBER_MAX_CHARS, &exact);
        CHECK(back && strcmp(back, fraction) == 0);
        CHECK(exact);
        free(back);

        //  Rounded to the usual six digits it is no longer exact.
        mpq_t value;
        mpq_init(value);
        CHECK_INT(zfed_decimal_parse(fraction, ZFED_NUMBER_MAX_CHARS, value), 0);
        char *rounded = zfed_decimal_format(value, ZFED_DECIMAL_FRACTION_DIGITS, &exact);
        CHECK_STR(rounded, "0.333333");
        CHECK(!exact);
        free(rounded);
        mpq_clear(value);
    }
    free(fraction);

    //  One character over the limit is refused.
    char *too_long = s_make_text("-", '9', ZFED_NUMBER_MAX_CHARS);
    REQUIRE(too_long != NULL);
    if (too_long)
        CHECK(s_decimal_rejects(too_long, ZFED_NUMBER_MAX_CHARS + 1));
    free(too_long);

    //  Formatting a value far past the limit still works: the limit is
    //  on what we accept, and aggregates are checked by their producers.
    mpq_t huge;
    mpq_init(huge);
    mpz_ui_pow_ui(mpq_numref(huge), 10, ZFED_NUMBER_MAX_CHARS);
    mpq_neg(huge, huge);
    bool exact = false;
    char *text = zfed_decimal_format(huge, ZFED_DECIMAL_FRACTION_DIGITS, &exact);
    REQUIRE(text != NULL);
    CHECK_INT(text ? strlen(text) : 0, ZFED_NUMBER_MAX_CHARS + 2);
    CHECK(text && text[0] == '-' && text[1] == '1' &&
          strspn(text + 2, "0") == ZFED_NUMBER_MAX_CHARS);
    CHECK(exact);
    free(text);
    mpq_clear(huge);
}

//  value given as "p/q"; expected as the exact double.
static void s_check_nearest(const char *value, double expected)
{
    mpq_t q;
    mpq_init(q);
    CHECK_INT(mpq_set_str(q, value, 10), 0);
    mpq_canonicalize(q);
    double got = zfed_mpq_to_double(q);
    CHECK(got == expected);
    if (got != expected)
        fprintf(stderr, "  %s: got %.17g, expected %.17g\n", value, got, expected);
    mpq_clear(q);
}

static void s_test_nearest_double(void)
{
    //  mpq_get_d truncates this one to 1.2499999999999998.
    s_check_nearest("16888498602639359/13510798882111488", 1.25);
    s_check_nearest("1/3", 1.0 / 3.0);
    s_check_nearest("-2/3", -2.0 / 3.0);
    s_check_nearest("0", 0.0);
    s_check_nearest("5/2", 2.5);
    //  Ties between two doubles go to the even mantissa: 2^53 + 1 lies
    //  halfway between 2^53 and 2^53 + 2; 2^53 + 3 between +2 and +4.
    s_check_nearest("9007199254740993", 9007199254740992.0);
    s_check_nearest("9007199254740995", 9007199254740996.0);
    s_check_nearest("-9007199254740993", -9007199254740992.0);
    //  Just above a tie rounds up.
    s_check_nearest("18014398509481987/2", 9007199254740994.0);
}

//  zfed_bigint_parse_u64 takes exactly what zfed_bigint_parse takes, up to
//  19 digits, with the same value; everything else it refuses untouched.
static void s_test_bigint_parse_u64(void)
{
#define U64_CASE(literal)                                                                          \
    {                                                                                              \
        literal, LITERAL_LENGTH(literal)                                                           \
    }
    static const struct {
        const char *text;
        size_t length;
    } cases[] = {U64_CASE("0"),
                 U64_CASE("7"),
                 U64_CASE("10"),
                 U64_CASE("88"),
                 U64_CASE("1234567890123456789"),
                 U64_CASE("9999999999999999999"),
                 U64_CASE("00"),
                 U64_CASE("01"),
                 U64_CASE(""),
                 U64_CASE("-1"),
                 U64_CASE("+1"),
                 U64_CASE("1a"),
                 U64_CASE("a1"),
                 U64_CASE(" 1"),
                 U64_CASE("1 "),
                 U64_CASE("1.0"),
                 U64_CASE("12345678901234567890"),
                 U64_CASE("1\0"),
                 U64_CASE("/"),
                 U64_CASE(":"),
                 U64_CASE("9:"),
                 U64_CASE("0/")};
#undef U64_CASE
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        const char *text = cases[index].text;
        size_t length = cases[index].length;
        uint64_t small = SENTINEL;
        int rc = zfed_bigint_parse_u64(text, length, &small);
        mpz_t wide;
        mpz_init(wide);
        int wide_rc = length <= 19 ? zfed_bigint_parse(text, length, wide) : -1;
        CHECK_INT(rc, wide_rc);
        if (rc == 0)
            CHECK(mpz_cmp_ui(wide, (unsigned long)small) == 0);
        else
            CHECK(small == SENTINEL);
        mpz_clear(wide);
    }
    uint64_t small = 0;
    CHECK_INT(zfed_bigint_parse_u64("9999999999999999999", 19, &small), 0);
    CHECK(small == 9999999999999999999ULL);
    CHECK_INT(zfed_bigint_parse_u64(NULL, 1, &small), -1);
}

int main(void)
{
    s_test_nearest_double();
    s_test_bigint_parse();
    s_test_bigint_parse_u64();
    s_test_bigint_format();
    s_test_bigint_limits();
    s_test_decimal_parse();
    s_test_decimal_format();
    s_test_decimal_limits();
    ZFED_TEST_END();
}
