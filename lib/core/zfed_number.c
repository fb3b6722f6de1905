/*  zfed_number - exact numbers as canonical decimal text (GMP underneath).

    Parsing is strict on purpose: a value has exactly one spelling, so two
    peers that agree on a number also agree byte for byte on its text, and
    anything else on the wire is a bug we want to see rather than absorb.
*/
#include "zfed/zfed_number.h"

#include <stdlib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define DECIMAL_BASE  10
#define DECIMAL_POINT '.'
#define MINUS_SIGN    '-'

//  mpz_sizeinbase may overshoot by one and mpz_get_str writes a sign and a
//  terminating NUL, so a buffer this much longer than the estimate is
//  always enough.
#define DIGITS_SLACK 2

static bool s_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

//  True when text[0..length) is a canonical unsigned integer: "0" or a
//  non-zero digit followed by digits.  An explicit length means an embedded
//  NUL is just another non-digit.
static bool s_is_canonical_integer(const char *text, size_t length)
{
    if (length == 0)
        return false;
    if (text[0] == '0' && length > 1)
        return false;
    for (size_t index = 0; index < length; index++) {
        if (!s_is_digit(text[index]))
            return false;
    }
    return true;
}

//  Decimal digits of a non-negative value in a malloc'd buffer, so that
//  callers can free() it whatever allocator GMP itself was given.
static char *s_mpz_digits(const mpz_srcptr value)
{
    size_t size = mpz_sizeinbase(value, DECIMAL_BASE) + DIGITS_SLACK;
    char *digits = malloc(size);
    if (!digits)
        return NULL;
    mpz_get_str(digits, DECIMAL_BASE, value);
    return digits;
}

//  Digit index of digits as if it had padding zeros in front of it.
static char s_padded_digit(const char *digits, size_t padding, size_t index)
{
    return index < padding ? '0' : digits[index - padding];
}

_Static_assert(sizeof(unsigned long) >= sizeof(uint64_t),
               "the 64-bit fast path of zfed_bigint_parse needs a 64-bit unsigned long");

//  Digits a uint64 always holds.
#define U64_DIGITS 19

int zfed_bigint_parse_u64(const char *text, size_t length, uint64_t *value)
{
    //  The canonical check and the value in one loop: a result's check
    //  reads a dozen of these.
    if (!text || length == 0 || length > U64_DIGITS || (text[0] == '0' && length > 1))
        return -1;
    uint64_t small = 0;
    for (size_t index = 0; index < length; index++) {
        unsigned digit = (unsigned)(unsigned char)text[index] - '0';
        if (digit > 9)
            return -1;
        small = small * 10 + digit;
    }
    *value = small;
    return 0;
}

int zfed_bigint_parse(const char *text, size_t length, mpz_t value)
{
    if (!text || length > ZFED_NUMBER_MAX_CHARS || !s_is_canonical_integer(text, length))
        return -1;
    //  Up to 19 digits fit in 64 bits: no copy, no GMP parser.  Most of the
    //  numbers a round reads are this small.
    if (length <= U64_DIGITS) {
        uint64_t small = 0;
        for (size_t index = 0; index < length; index++)
            small = small * 10 + (uint64_t)(text[index] - '0');
        mpz_set_ui(value, (unsigned long)small);
        return 0;
    }

    //  mpz_set_str wants a NUL-terminated string and ours may not be one.
    char *copy = malloc(length + 1);
    if (!copy)
        return -1;
    memcpy(copy, text, length);
    copy[length] = '\0';

    //  Parse into a scratch value so that value stays untouched on failure.
    mpz_t parsed;
    mpz_init(parsed);
    int rc = mpz_set_str(parsed, copy, DECIMAL_BASE);
    if (rc == 0)
        mpz_swap(parsed, value);
    mpz_clear(parsed);
    free(copy);
    return rc == 0 ? 0 : -1;
}

char *zfed_bigint_format(const mpz_t value)
{
    if (mpz_sgn(value) < 0)
        return NULL;
    return s_mpz_digits(value);
}

//  A canonical decimal's parts: sign, integer digits, fraction digits.
typedef struct {
    bool negative;
    const char *integer;
    size_t integer_length;
    const char *fraction; //  NULL without a point
    size_t fraction_length;
} s_decimal_t;

//  Splits text[0..length) into parts; false unless it is canonical.
static bool s_decimal_split(const char *text, size_t length, s_decimal_t *parts)
{
    if (!text || length == 0 || length > ZFED_NUMBER_MAX_CHARS)
        return false;

    bool negative = text[0] == MINUS_SIGN;
    const char *cursor = negative ? text + 1 : text;
    size_t remaining = negative ? length - 1 : length;

    const char *point = memchr(cursor, DECIMAL_POINT, remaining);
    size_t integer_length = point ? (size_t)(point - cursor) : remaining;
    size_t fraction_length = point ? remaining - integer_length - 1 : 0;
    const char *fraction = point ? point + 1 : NULL;

    if (!s_is_canonical_integer(cursor, integer_length))
        return false;
    if (point) {
        //  "1." and "1.50" both have a shorter spelling, so neither is
        //  canonical; the fraction must end in a non-zero digit.
        if (fraction_length == 0 || fraction[fraction_length - 1] == '0')
            return false;
        for (size_t index = 0; index < fraction_length; index++) {
            if (!s_is_digit(fraction[index]))
                return false;
        }
    }
    //  Zero has no sign: "-0" would be a second spelling of "0".
    if (negative && !point && integer_length == 1 && cursor[0] == '0')
        return false;
    *parts = (s_decimal_t){negative, cursor, integer_length, fraction, fraction_length};
    return true;
}

bool zfed_decimal_valid(const char *text, size_t length)
{
    s_decimal_t parts;
    return s_decimal_split(text, length, &parts);
}

int zfed_decimal_parse(const char *text, size_t length, mpq_t value)
{
    s_decimal_t parts;
    if (!s_decimal_split(text, length, &parts))
        return -1;
    bool negative = parts.negative;
    const char *cursor = parts.integer, *fraction = parts.fraction;
    size_t integer_length = parts.integer_length, fraction_length = parts.fraction_length;

    //  The value is all the digits as one integer over 10^fraction_length.
    char *digits = malloc(integer_length + fraction_length + 1);
    if (!digits)
        return -1;
    memcpy(digits, cursor, integer_length);
    if (fraction_length > 0)
        memcpy(digits + integer_length, fraction, fraction_length);
    digits[integer_length + fraction_length] = '\0';

    mpq_t parsed;
    mpq_init(parsed);
    int rc = mpz_set_str(mpq_numref(parsed), digits, DECIMAL_BASE);
    free(digits);
    if (rc != 0) {
        mpq_clear(parsed);
        return -1;
    }
    //  fraction_length <= ZFED_NUMBER_MAX_CHARS, so it fits unsigned long.
    mpz_ui_pow_ui(mpq_denref(parsed), DECIMAL_BASE, (unsigned long)fraction_length);
    mpq_canonicalize(parsed);
    if (negative)
        mpq_neg(parsed, parsed);
    mpq_swap(parsed, value);
    mpq_clear(parsed);
    return 0;
}

char *zfed_decimal_format(const mpq_t value, unsigned fraction_digits, bool *exact)
{
    //  10^fraction_digits is computed in full, so an absurd request would
    //  exhaust memory (and GMP aborts rather than fails); no canonical
    //  number can carry that many digits anyway.
    if (fraction_digits > ZFED_NUMBER_MAX_CHARS)
        return NULL;

    char *digits = NULL;
    char *text = NULL;
    mpz_t scaled, remainder;
    mpz_inits(scaled, remainder, NULL);

    //  |value| * 10^fraction_digits, rounded half away from zero: work on
    //  the magnitude so the rounding is symmetric, and add the sign back at
    //  the end.
    mpz_ui_pow_ui(scaled, DECIMAL_BASE, fraction_digits);
    mpz_mul(scaled, scaled, mpq_numref(value));
    mpz_abs(scaled, scaled);
    mpz_tdiv_qr(scaled, remainder, scaled, mpq_denref(value));
    bool is_exact = mpz_sgn(remainder) == 0;
    mpz_mul_2exp(remainder, remainder, 1);
    if (mpz_cmp(remainder, mpq_denref(value)) >= 0)
        mpz_add_ui(scaled, scaled, 1);

    digits = s_mpz_digits(scaled);
    if (!digits)
        goto done;

    //  Left-pad with zeros so there is at least one integer digit before
    //  the point: 5 with 3 digits is "0.005", not ".005".
    size_t digits_length = strlen(digits);
    size_t padded_length =
        digits_length > fraction_digits ? digits_length : (size_t)fraction_digits + 1;
    size_t padding = padded_length - digits_length;
    size_t integer_length = padded_length - fraction_digits;

    //  Trailing fractional zeros are not canonical: drop them, and the
    //  point with them when nothing is left.
    size_t fraction_length = fraction_digits;
    while (fraction_length > 0 &&
           s_padded_digit(digits, padding, integer_length + fraction_length - 1) == '0')
        fraction_length--;

    //  A value that rounds to zero prints as "0" whatever its sign.
    bool negative = mpq_sgn(value) < 0 && mpz_sgn(scaled) != 0;

    //  sign + integer digits + point + fraction digits + NUL
    text = malloc(1 + integer_length + 1 + fraction_length + 1);
    if (!text)
        goto done;
    char *out = text;
    if (negative)
        *out++ = MINUS_SIGN;
    for (size_t index = 0; index < integer_length + fraction_length; index++) {
        if (index == integer_length)
            *out++ = DECIMAL_POINT;
        *out++ = s_padded_digit(digits, padding, index);
    }
    *out = '\0';

    if (exact)
        *exact = is_exact;

done:
    free(digits);
    mpz_clears(scaled, remainder, NULL);
    return text;
}

char *zfed_number_abbreviate(const char *text, size_t max)
{
    enum { HEAD = 12, TAIL = 6, EXTRA = 48 };
    size_t length = strlen(text);
    size_t digits = strcspn(text, ".");
    if (length <= max || digits < HEAD + TAIL)
        return strdup(text);
    char *shortened = malloc(HEAD + TAIL + EXTRA);
    if (shortened)
        snprintf(shortened, HEAD + TAIL + EXTRA, "%.*s...%.*s (%zu digits)", HEAD, text, TAIL,
                 text + digits - TAIL, digits - (text[0] == '-'));
    return shortened;
}

double zfed_mpq_to_double(const mpq_t value)
{
    double truncated = mpq_get_d(value);
    if (!isfinite(truncated))
        return truncated;
    //  The nearest double is the truncated one or its neighbour away from
    //  zero; compare the exact distances.
    double away = nextafter(truncated, mpq_sgn(value) < 0 ? -INFINITY : INFINITY);
    if (!isfinite(away))
        return truncated;
    mpq_t low, high;
    mpq_inits(low, high, NULL);
    mpq_set_d(low, truncated);
    mpq_set_d(high, away);
    mpq_sub(low, value, low);   //  value - truncated
    mpq_sub(high, high, value); //  away - value
    mpq_abs(low, low);
    mpq_abs(high, high);
    int order = mpq_cmp(low, high);
    double nearest = truncated;
    if (order > 0)
        nearest = away;
    else if (order == 0) {
        //  A tie: the one with an even last mantissa bit.
        int exponent;
        double mantissa = frexp(truncated, &exponent);
        double scaled = ldexp(fabs(mantissa), 53);
        if (fmod(scaled, 2.0) != 0.0)
            nearest = away;
    }
    mpq_clears(low, high, NULL);
    return nearest;
}
