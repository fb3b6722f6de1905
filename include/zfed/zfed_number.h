/*  zfed_number - exact numbers as decimal text.

    Values that can outgrow 64 bits (Fibonacci sums, aggregates of them)
    travel on the wire and sit in files as decimal strings, so every peer and
    every JSON parser reads them exactly.  Two textual types exist (see
    schemas/PROTOCOL.md, "Types"):

    bigint   a non-negative integer: "0" or [1-9][0-9]*
    decimal  a signed number: -?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?  written
             with no trailing fractional zeros and never as "-0"
*/
#ifndef ZFED_NUMBER_H_INCLUDED
#define ZFED_NUMBER_H_INCLUDED

#include <stdio.h> //  before gmp.h, which then declares gmp_printf and friends
#include <gmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Longest accepted textual number, in characters.  F(100000) has 20,899
//  digits; this leaves room for sums and aggregates of it.
#define ZFED_NUMBER_MAX_CHARS 32768

//  Fraction digits kept when an aggregate is not a whole number.
#define ZFED_DECIMAL_FRACTION_DIGITS 6

//  Parse text[0..length) as a canonical bigint into an initialised mpz.
//  Returns 0, or -1 (value untouched) for anything else, including
//  leading zeros, signs, spaces and empty text.
int zfed_bigint_parse(const char *text, size_t length, mpz_t value);

//  The same for a bigint of at most 19 digits (it fits 64 bits), without
//  GMP.  Returns 0, or -1 for anything else, a longer one included.
int zfed_bigint_parse_u64(const char *text, size_t length, uint64_t *value);

//  Decimal text of a non-negative integer; the caller frees it with free().
//  Returns NULL if value is negative or on allocation failure.
char *zfed_bigint_format(const mpz_t value);

//  Parse text[0..length) as a canonical decimal into an initialised mpq.
int zfed_decimal_parse(const char *text, size_t length, mpq_t value);

//  Whether text[0..length) is what zfed_decimal_parse accepts, without
//  GMP or allocation: for a reader that only checks the spelling.
bool zfed_decimal_valid(const char *text, size_t length);

//  Decimal text of value, rounded half away from zero to at most
//  fraction_digits digits after the point, trailing zeros removed.  *exact
//  (if not NULL) says whether the text equals value exactly.  The caller
//  frees the result with free().  NULL on allocation failure.
char *zfed_decimal_format(const mpq_t value, unsigned fraction_digits, bool *exact);

//  The double nearest to value (ties to even), as IEEE 754 rounding of an
//  exact result would give; GMP's mpq_get_d truncates towards zero
//  instead, which would make peers in other languages disagree by one ulp.
//  Magnitudes beyond DBL_MAX give +-infinity.
double zfed_mpq_to_double(const mpq_t value);

//  Longest number shown whole to people; longer ones are abbreviated.
#define ZFED_NUMBER_DISPLAY_MAX 24

//  For people: text itself when at most max characters, else its first 12
//  and last 6 integer digits and the digit count, "123456789012...537500
//  (20899 digits)".  Caller frees; NULL on allocation failure.
char *zfed_number_abbreviate(const char *text, size_t max);

#ifdef __cplusplus
}
#endif

#endif
