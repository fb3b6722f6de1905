/*  zfed_svc_fib - the "fib" service: the Fibonacci job of the FLARE seed.

    Task params:   {"fibonacci_level": int 1..ZFED_FIB_MAX_LEVEL}
    Result outputs: {"sum": bigint, "terms": int, "last": bigint,
                     "sequence": [bigint...]}   (empty past ZFED_FIB_SEQUENCE_MAX)
    Global value:  decimal string, the previous round's aggregate ("0" before
                   the first round closes).
    Cost:          the level squared (ZFED_FIB_MAX_REQUEST_COST per request).

    A result's sum may not exceed the largest sum its level can have (the
    first L terms add up to F(L+1) - 1): a bigger one, however well formed,
    is refused, which also keeps every aggregate inside the global value's
    limit (ZFED_NUMBER_MAX_CHARS characters).  The largest honest sum has
    20,899 digits; the sum of ZFED_JOB_TASKS_MAX of them 20,905, and every
    other strategy stays within the largest value, plus a point and
    ZFED_DECIMAL_FRACTION_DIGITS digits.  Before, one worker's valid
    32,768-digit sum passed, the aggregate outgrew the limit and every
    honest worker answered the next round's tasks 422.

    The level is named, typed and range-checked at both ends; nothing is
    ever read out of an array position or defaulted behind the user's back.
*/
#include "zfed/zfed_fib.h"
#include "zfed/zfed_json.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_number.h"
#include "zfed/zfed_service.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARAM_LEVEL    "fibonacci_level"
#define OUTPUT_SUM     "sum"
#define OUTPUT_TERMS   "terms"
#define OUTPUT_LAST    "last"
#define OUTPUT_SEQ     "sequence"
#define OUTPUT_FIELDS  4
#define INITIAL_GLOBAL "0"

//  Whether object is the string text.
static bool s_str_is(const msgpack_object *object, const char *text)
{
    size_t length = strlen(text);
    return object->type == MSGPACK_OBJECT_STR && object->via.str.size == length &&
           memcmp(object->via.str.ptr, text, length) == 0;
}

static int s_read_level(const msgpack_object *params, uint32_t *level, zfed_fault_t *fault)
{
    static const char *const allowed[] = {PARAM_LEVEL, NULL};
    //  The params every task has, {PARAM_LEVEL: 1..max}, read at once (a
    //  result reads them again); anything else goes the way that names
    //  what is wrong.
    if (params->type == MSGPACK_OBJECT_MAP && params->via.map.size == 1) {
        const msgpack_object *key = &params->via.map.ptr[0].key;
        const msgpack_object *value = &params->via.map.ptr[0].val;
        if (s_str_is(key, PARAM_LEVEL) && value->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            value->via.u64 >= 1 && value->via.u64 <= ZFED_FIB_MAX_LEVEL) {
            *level = (uint32_t)value->via.u64;
            return 0;
        }
    }
    if (zfed_map_check_keys(params, allowed, "parameter", fault) != 0)
        return -1;
    const msgpack_object *value = zfed_map_get(params, PARAM_LEVEL);
    if (!value) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_LEVEL,
                       "missing: a fib task needs " PARAM_LEVEL ", an integer from 1 to %d",
                       ZFED_FIB_MAX_LEVEL);
        return -1;
    }
    if (value->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_LEVEL, "must be at least 1, got %lld",
                       (long long)value->via.i64);
        return -1;
    }
    if (value->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_LEVEL,
                       "must be an integer from 1 to %d, got %s", ZFED_FIB_MAX_LEVEL,
                       zfed_msgpack_type_name(value->type));
        return -1;
    }
    if (value->via.u64 < 1 || value->via.u64 > ZFED_FIB_MAX_LEVEL) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_LEVEL, "must be %s %d, got %llu",
                       value->via.u64 < 1 ? "at least" : "at most",
                       value->via.u64 < 1 ? 1 : ZFED_FIB_MAX_LEVEL,
                       (unsigned long long)value->via.u64);
        return -1;
    }
    *level = (uint32_t)value->via.u64;
    return 0;
}

static int s_pack_string(msgpack_packer *packer, const char *text)
{
    size_t length = strlen(text);
    return msgpack_pack_str(packer, length) || msgpack_pack_str_body(packer, text, length) ? -1 : 0;
}

static int s_pack_bigint(msgpack_packer *packer, const mpz_t *value)
{
    char *text = zfed_bigint_format(*value);
    if (!text)
        return -1;
    int rc = s_pack_string(packer, text);
    free(text);
    return rc;
}

static int s_pack_outputs(const zfed_fib_t *fib, msgpack_packer *packer)
{
    uint32_t kept = zfed_fib_has_sequence(fib) ? zfed_fib_terms(fib) : 0;
    int rc = msgpack_pack_map(packer, OUTPUT_FIELDS);
    rc |= s_pack_string(packer, OUTPUT_SUM);
    rc |= s_pack_bigint(packer, zfed_fib_sum(fib));
    rc |= s_pack_string(packer, OUTPUT_TERMS);
    rc |= msgpack_pack_uint32(packer, zfed_fib_terms(fib));
    rc |= s_pack_string(packer, OUTPUT_LAST);
    rc |= s_pack_bigint(packer, zfed_fib_last(fib));
    rc |= s_pack_string(packer, OUTPUT_SEQ);
    rc |= msgpack_pack_array(packer, kept);
    for (uint32_t index = 0; index < kept && rc == 0; index++)
        rc |= s_pack_bigint(packer, zfed_fib_term(fib, index));
    return rc == 0 ? 0 : -1;
}

//  Long numbers shortened for people.  Takes ownership of text.
static char *s_shorten(char *text)
{
    char *shortened = text ? zfed_number_abbreviate(text, ZFED_NUMBER_DISPLAY_MAX) : NULL;
    free(text);
    return shortened;
}

//  The pyramid and one line of totals, for a person watching a worker.
static char *s_display(const zfed_fib_t *fib)
{
    char *pyramid = zfed_fib_pyramid(fib);
    char *sum = s_shorten(zfed_bigint_format(*zfed_fib_sum(fib)));
    char *text = NULL;
    if (pyramid && sum) {
        size_t size = strlen(pyramid) + strlen(sum) + 64;
        text = malloc(size);
        if (text)
            snprintf(text, size, "%s" PARAM_LEVEL " %u: sum %s\n", pyramid, zfed_fib_terms(fib),
                     sum);
    }
    free(pyramid);
    free(sum);
    return text;
}

//  The small outputs are packed by hand into one buffer and handed to the
//  packer's writer at once: two writes per string through the packer were
//  half of a level-10 task's run.  Every string is a fixstr (at most 20
//  digits, keys of at most 8 bytes), the level a positive fixint.
_Static_assert(ZFED_FIB_SMALL_MAX < 0x80, "a small level packs as a positive fixint");
#define SMALL_TEXT_MAX 21 //  a fixstr of at most 20 digits
#define SMALL_OUTPUTS_MAX                                                                          \
    (1 + 4 * 9 + 2 * SMALL_TEXT_MAX + 1 + 3 + ZFED_FIB_SMALL_MAX * SMALL_TEXT_MAX)

static uint8_t *s_put_fixstr(uint8_t *at, const char *text, size_t length)
{
    *at++ = (uint8_t)(0xa0 | length);
    memcpy(at, text, length);
    return at + length;
}

//  value as a fixstr of its decimal digits, written in place from the
//  last digit back: no scratch text, no copy (a level-10 result is twelve
//  numbers).
static uint8_t *s_put_u64_text(uint8_t *at, uint64_t value)
{
    size_t length = 1;
    for (uint64_t rest = value; rest >= 10; rest /= 10)
        length++;
    *at++ = (uint8_t)(0xa0 | length);
    uint8_t *end = at + length;
    for (uint8_t *digit = end; digit-- > at; value /= 10)
        *digit = (uint8_t)('0' + value % 10);
    return end;
}

//  The same outputs as s_pack_outputs, for levels whose numbers all fit in
//  64 bits: no GMP, no allocation.
static int s_pack_small_outputs(uint32_t level, msgpack_packer *packer)
{
    uint64_t terms[ZFED_FIB_SMALL_MAX], sum;
    if (zfed_fib_small(level, terms, &sum) != 0)
        return -1;
    uint32_t kept = level <= ZFED_FIB_SEQUENCE_MAX ? level : 0;
    uint8_t bytes[SMALL_OUTPUTS_MAX];
    uint8_t *at = bytes;
    *at++ = 0x80 | OUTPUT_FIELDS;
    at = s_put_fixstr(at, OUTPUT_SUM, strlen(OUTPUT_SUM));
    at = s_put_u64_text(at, sum);
    at = s_put_fixstr(at, OUTPUT_TERMS, strlen(OUTPUT_TERMS));
    *at++ = (uint8_t)level;
    at = s_put_fixstr(at, OUTPUT_LAST, strlen(OUTPUT_LAST));
    at = s_put_u64_text(at, terms[level - 1]);
    at = s_put_fixstr(at, OUTPUT_SEQ, strlen(OUTPUT_SEQ));
    if (kept < 16)
        *at++ = (uint8_t)(0x90 | kept);
    else {
        *at++ = 0xdc;
        *at++ = (uint8_t)(kept >> 8);
        *at++ = (uint8_t)kept;
    }
    for (uint32_t index = 0; index < kept; index++)
        at = s_put_u64_text(at, terms[index]);
    return packer->callback(packer->data, (const char *)bytes, (size_t)(at - bytes)) == 0 ? 0 : -1;
}

static int s_run(const msgpack_object *params, int64_t global_round,
                 const msgpack_object *global_value, msgpack_packer *outputs, char **display,
                 zfed_fault_t *fault)
{
    uint32_t level;
    if (s_read_level(params, &level, fault) != 0)
        return -1;
    //  The global is checked, not used: its spelling, with no GMP value.
    bool decimal = global_value->type == MSGPACK_OBJECT_STR &&
                   zfed_decimal_valid(global_value->via.str.ptr, global_value->via.str.size);
    if (!decimal) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, "global",
                       "fib's global value must be a decimal string, got %s",
                       global_value->type == MSGPACK_OBJECT_STR
                           ? "a string that is not a canonical decimal"
                           : zfed_msgpack_type_name(global_value->type));
        return -1;
    }
    if (level <= ZFED_FIB_SMALL_MAX && !display) {
        if (s_pack_small_outputs(level, outputs) == 0)
            return 0;
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory packing level %u", level);
        return -1;
    }
    zfed_fib_t *fib = zfed_fib_new(level);
    if (!fib) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory computing level %u", level);
        return -1;
    }
    int rc = s_pack_outputs(fib, outputs);
    if (rc != 0)
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory packing level %u", level);
    if (rc == 0 && display)
        *display = s_display(fib);
    zfed_fib_destroy(&fib);
    return rc;
}

static int s_check_params(const msgpack_object *params, zfed_fault_t *fault)
{
    uint32_t level;
    return s_read_level(params, &level, fault);
}

static uint64_t s_cost(const msgpack_object *params)
{
    const msgpack_object *level = zfed_map_get(params, PARAM_LEVEL);
    if (!level || level->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        level->via.u64 > ZFED_FIB_MAX_LEVEL)
        return 0; //  refused by check_params anyway, at no cost
    return level->via.u64 * level->via.u64;
}

//  The outputs' values by name, NULL for one the map lacks.
typedef struct {
    const msgpack_object *sum;
    const msgpack_object *terms;
    const msgpack_object *last;
    const msgpack_object *sequence;
} s_outputs_t;

//  The four output names and where each one found goes.
static const struct {
    const char *name;
    size_t size;
    size_t slot; //  offset of its pointer in s_outputs_t
} s_output_names[] = {
    {OUTPUT_SUM, sizeof OUTPUT_SUM - 1, offsetof(s_outputs_t, sum)},
    {OUTPUT_TERMS, sizeof OUTPUT_TERMS - 1, offsetof(s_outputs_t, terms)},
    {OUTPUT_LAST, sizeof OUTPUT_LAST - 1, offsetof(s_outputs_t, last)},
    {OUTPUT_SEQ, sizeof OUTPUT_SEQ - 1, offsetof(s_outputs_t, sequence)},
};

//  The outputs found in one pass over the map's keys, where zfed_map_get
//  compared strings eleven times a result: the first of a name, as
//  zfed_map_get finds it.  -1 when a key is none of the four (or the
//  outputs are not a map), which zfed_map_check_keys then names.
static int s_find_outputs(const msgpack_object *outputs, s_outputs_t *found)
{
    *found = (s_outputs_t){NULL, NULL, NULL, NULL};
    if (outputs->type != MSGPACK_OBJECT_MAP)
        return -1;
    for (uint32_t index = 0; index < outputs->via.map.size; index++) {
        const msgpack_object_kv *pair = &outputs->via.map.ptr[index];
        if (pair->key.type != MSGPACK_OBJECT_STR)
            return -1;
        const msgpack_object **slot = NULL;
        for (size_t name = 0; !slot && name < sizeof s_output_names / sizeof s_output_names[0];
             name++)
            if (pair->key.via.str.size == s_output_names[name].size &&
                memcmp(pair->key.via.str.ptr, s_output_names[name].name,
                       s_output_names[name].size) == 0)
                slot = (const msgpack_object **)((char *)found + s_output_names[name].slot);
        if (!slot)
            return -1;
        if (!*slot)
            *slot = &pair->val;
    }
    return 0;
}

//  A bigint output: a canonical decimal string.
static int s_read_bigint(const msgpack_object *object, const char *key, mpz_t value,
                         zfed_fault_t *fault)
{
    if (!object) {
        zfed_fault_set(fault, ZFED_ERR_MALFORMED, key, "missing output");
        return -1;
    }
    if (object->type != MSGPACK_OBJECT_STR ||
        zfed_bigint_parse(object->via.str.ptr, object->via.str.size, value) != 0) {
        zfed_fault_set(fault, ZFED_ERR_MALFORMED, key,
                       "must be a non-negative integer as a decimal string, got %s",
                       zfed_msgpack_type_name(object->type));
        return -1;
    }
    return 0;
}

//  The sequence's check without GMP when every term fits 64 bits (levels
//  up to 93; their sum then fits 128 bits): 0 when it holds and agrees with
//  sum and last, -1 otherwise (the exact check then says why).
static int s_check_small_sequence(const msgpack_object *sequence, const mpz_t sum, const mpz_t last)
{
    unsigned __int128 total = 0;
    uint64_t term = 0;
    for (uint32_t index = 0; index < sequence->via.array.size; index++) {
        const msgpack_object *entry = &sequence->via.array.ptr[index];
        if (entry->type != MSGPACK_OBJECT_STR ||
            zfed_bigint_parse_u64(entry->via.str.ptr, entry->via.str.size, &term) != 0)
            return -1;
        total += term; //  at most 93 terms below 2^64: no overflow
    }
    mpz_t wide;
    mpz_init_set_ui(wide, (unsigned long)(uint64_t)(total >> 64));
    mpz_mul_2exp(wide, wide, 64);
    mpz_add_ui(wide, wide, (unsigned long)(uint64_t)total);
    int same = mpz_cmp(wide, sum) == 0 && mpz_cmp_ui(last, (unsigned long)term) == 0;
    mpz_clear(wide);
    return same ? 0 : -1;
}

//  The sequence, when sent, must hold exactly the terms and agree with the
//  sum and last term: cheap checks that catch a confused peer.
static int s_check_sequence(const msgpack_object *sequence, uint32_t terms, const mpz_t sum,
                            const mpz_t last, zfed_fault_t *fault)
{
    if (!sequence || sequence->type != MSGPACK_OBJECT_ARRAY) {
        zfed_fault_set(fault, ZFED_ERR_MALFORMED, OUTPUT_SEQ, "must be an array");
        return -1;
    }
    uint32_t size = sequence->via.array.size;
    if (size == 0)
        return 0;
    if (size != terms) {
        zfed_fault_set(fault, ZFED_ERR_MALFORMED, OUTPUT_SEQ,
                       "has %u entries; must be empty or hold all %u terms", size, terms);
        return -1;
    }
    if (s_check_small_sequence(sequence, sum, last) == 0)
        return 0;
    //  Long terms, or something wrong: exactly, naming what is wrong.
    mpz_t total, term;
    mpz_inits(total, term, NULL);
    int rc = 0;
    for (uint32_t index = 0; index < size && rc == 0; index++) {
        const msgpack_object *entry = &sequence->via.array.ptr[index];
        if (entry->type != MSGPACK_OBJECT_STR ||
            zfed_bigint_parse(entry->via.str.ptr, entry->via.str.size, term) != 0) {
            zfed_fault_set(fault, ZFED_ERR_MALFORMED, OUTPUT_SEQ,
                           "entry %u is not a decimal string", index);
            rc = -1;
        } else
            mpz_add(total, total, term);
    }
    if (rc == 0 && (mpz_cmp(total, sum) != 0 || mpz_cmp(term, last) != 0)) {
        zfed_fault_set(fault, ZFED_ERR_MALFORMED, OUTPUT_SEQ,
                       "does not add up to the reported sum and last term");
        rc = -1;
    }
    mpz_clears(total, term, NULL);
    return rc;
}

//  Decimal digits of a non-negative value (mpz_sizeinbase may say one too
//  many).
static size_t s_digits(const mpz_t value)
{
    size_t digits = mpz_sizeinbase(value, 10);
    if (digits > 1) {
        mpz_t low;
        mpz_init(low);
        mpz_ui_pow_ui(low, 10, digits - 1);
        if (mpz_cmp(value, low) < 0)
            digits--;
        mpz_clear(low);
    }
    return digits;
}

//  The sum no level-L sequence can exceed: F(L+1) - 1.
static int s_check_sum_bound(uint32_t level, const mpz_t sum, zfed_fault_t *fault)
{
    mpz_t largest;
    mpz_init(largest);
    mpz_fib_ui(largest, (unsigned long)level + 1);
    mpz_sub_ui(largest, largest, 1);
    int rc = 0;
    if (mpz_cmp(sum, largest) > 0) {
        zfed_fault_set(fault, ZFED_ERR_MALFORMED, OUTPUT_SUM,
                       "has %zu digits: more than the sum of the first %u Fibonacci numbers can "
                       "be (%zu digits); refused so the aggregate stays within the global value's "
                       "limit",
                       s_digits(sum), level, s_digits(largest));
        rc = -1;
    }
    mpz_clear(largest);
    return rc;
}

//  Highest level whose largest sum, F(level + 1) - 1, fits 64 bits.
#define SMALL_LEVEL_MAX 92

//  F(0) ... F(SMALL_LEVEL_MAX + 1): a level's largest sum read, not
//  computed per result (the loop was 40 instructions a level-10 result,
//  370 at level 92).  test_svc_fib holds every level's bound to it.
// clang-format off
static const uint64_t s_fibonacci[SMALL_LEVEL_MAX + 2] = {
    0u, 1u, 1u, 2u, 3u, 5u, 8u, 13u, 21u, 34u, 55u, 89u, 144u, 233u, 377u, 610u, 987u, 1597u,
    2584u, 4181u, 6765u, 10946u, 17711u, 28657u, 46368u, 75025u, 121393u, 196418u, 317811u,
    514229u, 832040u, 1346269u, 2178309u, 3524578u, 5702887u, 9227465u, 14930352u, 24157817u,
    39088169u, 63245986u, 102334155u, 165580141u, 267914296u, 433494437u, 701408733u, 1134903170u,
    1836311903u, 2971215073u, 4807526976ull, 7778742049ull, 12586269025ull, 20365011074ull,
    32951280099ull, 53316291173ull, 86267571272ull, 139583862445ull, 225851433717ull,
    365435296162ull, 591286729879ull, 956722026041ull, 1548008755920ull, 2504730781961ull,
    4052739537881ull, 6557470319842ull, 10610209857723ull, 17167680177565ull, 27777890035288ull,
    44945570212853ull, 72723460248141ull, 117669030460994ull, 190392490709135ull,
    308061521170129ull, 498454011879264ull, 806515533049393ull, 1304969544928657ull,
    2111485077978050ull, 3416454622906707ull, 5527939700884757ull, 8944394323791464ull,
    14472334024676221ull, 23416728348467685ull, 37889062373143906ull, 61305790721611591ull,
    99194853094755497ull, 160500643816367088ull, 259695496911122585ull, 420196140727489673ull,
    679891637638612258ull, 1100087778366101931ull, 1779979416004714189ull, 2880067194370816120ull,
    4660046610375530309ull, 7540113804746346429ull, 12200160415121876738ull};
// clang-format on

//  A decimal string output of at most 19 digits, as a uint64: 0, or -1.
static int s_small_output(const msgpack_object *object, uint64_t *value)
{
    if (!object || object->type != MSGPACK_OBJECT_STR)
        return -1;
    return zfed_bigint_parse_u64(object->via.str.ptr, object->via.str.size, value);
}

//  The checks of s_read_outputs after terms, in 64-bit arithmetic (the
//  sequence's sum in 128), for results whose numbers are all small:
//  0 when every check holds, with the sum; -1 when this cannot tell
//  (a number too long, or a check failing), and the exact path decides
//  and says why.  It accepts exactly what the exact path accepts: a
//  canonical sum within F(level + 1) - 1, a canonical last, a sequence
//  empty or of level canonical terms adding up to sum and ending in last.
//  GMP's allocations and F(level + 1) per result were half of the check.
static int s_read_small(uint32_t level, const s_outputs_t *outputs, uint64_t *sum)
{
    uint64_t last;
    if (level > SMALL_LEVEL_MAX || s_small_output(outputs->sum, sum) != 0 ||
        s_small_output(outputs->last, &last) != 0)
        return -1;
    if (*sum > s_fibonacci[level + 1] - 1)
        return -1;
    const msgpack_object *sequence = outputs->sequence;
    if (!sequence || sequence->type != MSGPACK_OBJECT_ARRAY)
        return -1;
    if (sequence->via.array.size == 0)
        return 0;
    if (sequence->via.array.size != level)
        return -1;
    unsigned __int128 total = 0;
    uint64_t term = 0;
    for (uint32_t index = 0; index < level; index++) {
        const msgpack_object *entry = &sequence->via.array.ptr[index];
        if (entry->type != MSGPACK_OBJECT_STR ||
            zfed_bigint_parse_u64(entry->via.str.ptr, entry->via.str.size, &term) != 0)
            return -1;
        total += term; //  at most 92 terms below 2^64: no overflow
    }
    return total == *sum && term == last ? 0 : -1;
}

static int s_read_outputs(const msgpack_object *params, const msgpack_object *outputs,
                          zfed_sample_t *sample, zfed_fault_t *fault)
{
    static const char *const allowed[] = {OUTPUT_SUM, OUTPUT_TERMS, OUTPUT_LAST, OUTPUT_SEQ, NULL};
    uint32_t level;
    s_outputs_t found;
    if (s_read_level(params, &level, fault) != 0)
        return -1;
    if (s_find_outputs(outputs, &found) != 0) {
        if (zfed_map_check_keys(outputs, allowed, "output", fault) == 0)
            zfed_fault_set(fault, ZFED_ERR_MALFORMED, "", "outputs must be a map of names");
        return -1;
    }
    const msgpack_object *terms = found.terms;
    if (!terms || terms->type != MSGPACK_OBJECT_POSITIVE_INTEGER || terms->via.u64 != level) {
        zfed_fault_set(fault, ZFED_ERR_MALFORMED, OUTPUT_TERMS,
                       "must be the integer %u (the task's " PARAM_LEVEL ")", level);
        return -1;
    }
    uint64_t small_sum;
    if (s_read_small(level, &found, &small_sum) == 0) {
        zfed_sample_set_u64(sample, small_sum, level);
        return 0;
    }
    mpz_t sum, last;
    mpz_inits(sum, last, NULL);
    int rc = -1;
    if (s_read_bigint(found.sum, OUTPUT_SUM, sum, fault) == 0 &&
        s_check_sum_bound(level, sum, fault) == 0 &&
        s_read_bigint(found.last, OUTPUT_LAST, last, fault) == 0 &&
        s_check_sequence(found.sequence, level, sum, last, fault) == 0) {
        if (zfed_sample_init(sample, 1) == 0) {
            mpq_set_z(sample->values[0], sum);
            sample->weight = level;
            rc = 0;
        } else
            zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory");
    }
    mpz_clears(sum, last, NULL);
    return rc;
}

static json_t *s_string_output(const msgpack_object *outputs, const char *key)
{
    const msgpack_object *object = zfed_map_get(outputs, key);
    if (!object || object->type != MSGPACK_OBJECT_STR)
        return json_null();
    return json_stringn(object->via.str.ptr, object->via.str.size);
}

static int s_describe(const msgpack_object *params, const msgpack_object *outputs, json_t *object)
{
    const msgpack_object *level = zfed_map_get(params, PARAM_LEVEL);
    const msgpack_object *terms = zfed_map_get(outputs, OUTPUT_TERMS);
    int rc = json_object_set_new(object, "level",
                                 level && level->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                                     ? json_integer((json_int_t)level->via.u64)
                                     : json_null());
    rc |= json_object_set_new(object, "sum", s_string_output(outputs, OUTPUT_SUM));
    rc |= json_object_set_new(object, "terms",
                              terms && terms->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                                  ? json_integer((json_int_t)terms->via.u64)
                                  : json_null());
    rc |= json_object_set_new(object, "last", s_string_output(outputs, OUTPUT_LAST));
    return rc == 0 ? 0 : -1;
}

//  describe's fields as text: a positive integer, or null (at most
//  ZFED_JSON_INT_MAX bytes).
static char *s_put_integer(char *at, const msgpack_object *object)
{
    if (object && object->type == MSGPACK_OBJECT_POSITIVE_INTEGER && object->via.u64 <= INT64_MAX)
        return zfed_json_put_int(at, (int64_t)object->via.u64);
    return ZFED_JSON_PUT_LITERAL(at, "null");
}

//  A string, or null.
static char *s_put_string(char *at, const msgpack_object *object)
{
    if (!object || object->type != MSGPACK_OBJECT_STR)
        return ZFED_JSON_PUT_LITERAL(at, "null");
    return zfed_json_put_string(at, object->via.str.ptr, object->via.str.size);
}

//  Bytes s_put_string may write.
static size_t s_string_bound(const msgpack_object *object)
{
    return object && object->type == MSGPACK_OBJECT_STR ? ZFED_JSON_STRING_MAX(object->via.str.size)
                                                        : sizeof "null";
}

//  The members' keys and punctuation.
#define DESCRIBE_KEYS_MAX 40

static int s_describe_text(const msgpack_object *params, const msgpack_object *outputs,
                           msgpack_sbuffer *out)
{
    s_outputs_t found;
    if (s_find_outputs(outputs, &found) != 0) {
        //  Never for an accepted result; as describe reads it, anyway.
        found.sum = zfed_map_get(outputs, OUTPUT_SUM);
        found.terms = zfed_map_get(outputs, OUTPUT_TERMS);
        found.last = zfed_map_get(outputs, OUTPUT_LAST);
    }
    const msgpack_object *level = params->type == MSGPACK_OBJECT_MAP && params->via.map.size == 1
                                      ? &params->via.map.ptr[0].val
                                      : NULL;
    if (!level || !s_str_is(&params->via.map.ptr[0].key, PARAM_LEVEL))
        level = zfed_map_get(params, PARAM_LEVEL);
    char *at =
        zfed_json_text_reserve(out, DESCRIBE_KEYS_MAX + 2 * ZFED_JSON_INT_MAX +
                                        s_string_bound(found.sum) + s_string_bound(found.last));
    if (!at)
        return -1;
    at = ZFED_JSON_PUT_LITERAL(at, ",\"level\":");
    at = s_put_integer(at, level);
    at = ZFED_JSON_PUT_LITERAL(at, ",\"sum\":");
    at = s_put_string(at, found.sum);
    at = ZFED_JSON_PUT_LITERAL(at, ",\"terms\":");
    at = s_put_integer(at, found.terms);
    at = ZFED_JSON_PUT_LITERAL(at, ",\"last\":");
    at = s_put_string(at, found.last);
    zfed_json_text_commit(out, at);
    return 0;
}

static int s_pack_initial(const msgpack_object *params, msgpack_packer *packer)
{
    return s_pack_string(packer, INITIAL_GLOBAL);
}

static char *s_decimal(const mpq_t *values, size_t dims)
{
    if (dims != 1)
        return NULL;
    return zfed_decimal_format(values[0], ZFED_DECIMAL_FRACTION_DIGITS, NULL);
}

static int s_pack_aggregate(const mpq_t *values, size_t dims, msgpack_packer *packer)
{
    char *text = s_decimal(values, dims);
    if (!text)
        return -1;
    //  Never reached with sums bounded by their level (see the top), but
    //  a global value every worker must refuse is never sent.
    if (strlen(text) > ZFED_NUMBER_MAX_CHARS) {
        zfed_error("fib: the aggregate has %zu characters, over the global value's %d",
                   strlen(text), ZFED_NUMBER_MAX_CHARS);
        free(text);
        return -1;
    }
    int rc = s_pack_string(packer, text);
    free(text);
    return rc;
}

static json_t *s_aggregate_json(const mpq_t *values, size_t dims)
{
    char *text = s_decimal(values, dims);
    if (!text)
        return NULL;
    json_t *json = json_string(text);
    free(text);
    return json;
}

static char *s_aggregate_text(const mpq_t *values, size_t dims)
{
    return s_shorten(s_decimal(values, dims));
}

const zfed_service_t zfed_service_fib = {
    .name = "fib",
    .description = "Fibonacci: the first fibonacci_level terms, their sum (exact), count and last",
    .default_params = "{\"" PARAM_LEVEL "\": 10}",
    .run = s_run,
    .check_params = s_check_params,
    .read_outputs = s_read_outputs,
    .describe = s_describe,
    .describe_text = s_describe_text,
    .pack_initial = s_pack_initial,
    .pack_aggregate = s_pack_aggregate,
    .aggregate_json = s_aggregate_json,
    .aggregate_text = s_aggregate_text,
    .scalar = 1,
    .cost = s_cost,
    .max_request_cost = ZFED_FIB_MAX_REQUEST_COST,
    .cost_unit = "the square of " PARAM_LEVEL,
};
