/*  zfed_json - JSON <-> msgpack, and durable JSON files.  */
#include "zfed/zfed_json.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_util.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_pack(const json_t *value, msgpack_packer *packer, int depth, char *reason,
                  size_t reason_size)
{
    //  Containers count, as in zfed_msgpack_check: at most ZFED_NESTING_MAX
    //  levels of arrays and objects.
    if ((json_is_object(value) || json_is_array(value)) && depth >= ZFED_NESTING_MAX) {
        snprintf(reason, reason_size, "nested deeper than %d levels", ZFED_NESTING_MAX);
        return -1;
    }
    switch (json_typeof(value)) {
    case JSON_OBJECT: {
        if (msgpack_pack_map(packer, json_object_size(value)) != 0)
            return -1;
        const char *key;
        json_t *member;
        json_object_foreach((json_t *)value, key, member)
        {
            size_t length = strlen(key);
            if (msgpack_pack_str(packer, length) != 0 ||
                msgpack_pack_str_body(packer, key, length) != 0 ||
                s_pack(member, packer, depth + 1, reason, reason_size) != 0)
                return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        if (msgpack_pack_array(packer, json_array_size(value)) != 0)
            return -1;
        size_t index;
        json_t *member;
        json_array_foreach(value, index, member)
        {
            if (s_pack(member, packer, depth + 1, reason, reason_size) != 0)
                return -1;
        }
        return 0;
    }
    case JSON_STRING: {
        size_t length = json_string_length(value);
        return msgpack_pack_str(packer, length) ||
                       msgpack_pack_str_body(packer, json_string_value(value), length)
                   ? -1
                   : 0;
    }
    case JSON_INTEGER:
        return msgpack_pack_int64(packer, json_integer_value(value));
    case JSON_REAL:
        return msgpack_pack_double(packer, json_real_value(value));
    case JSON_TRUE:
        return msgpack_pack_true(packer);
    case JSON_FALSE:
        return msgpack_pack_false(packer);
    case JSON_NULL:
        return msgpack_pack_nil(packer);
    }
    snprintf(reason, reason_size, "unknown JSON type");
    return -1;
}

int zfed_json_pack(const json_t *value, msgpack_packer *packer, char *reason, size_t reason_size)
{
    char ignored[8];
    if (!reason || reason_size == 0) {
        reason = ignored;
        reason_size = sizeof ignored;
    }
    snprintf(reason, reason_size, "out of memory");
    return s_pack(value, packer, 0, reason, reason_size);
}

static json_t *s_from_msgpack(const msgpack_object *object, int depth)
{
    if ((object->type == MSGPACK_OBJECT_ARRAY || object->type == MSGPACK_OBJECT_MAP) &&
        depth >= ZFED_NESTING_MAX)
        return NULL;
    switch (object->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(object->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (object->via.u64 > (uint64_t)INT64_MAX) {
            char text[24];
            snprintf(text, sizeof text, "%" PRIu64, object->via.u64);
            return json_string(text);
        }
        return json_integer((json_int_t)object->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)object->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(object->via.f64);
    case MSGPACK_OBJECT_STR:
        //  msgpack-c leaves ptr NULL for an empty string.
        return object->via.str.size ? json_stringn(object->via.str.ptr, object->via.str.size)
                                    : json_string("");
    case MSGPACK_OBJECT_ARRAY: {
        json_t *array = json_array();
        for (uint32_t index = 0; array && index < object->via.array.size; index++) {
            json_t *member = s_from_msgpack(&object->via.array.ptr[index], depth + 1);
            if (!member || json_array_append_new(array, member) != 0) {
                json_decref(array);
                return NULL;
            }
        }
        return array;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *map = json_object();
        for (uint32_t index = 0; map && index < object->via.map.size; index++) {
            const msgpack_object_kv *pair = &object->via.map.ptr[index];
            if (pair->key.type != MSGPACK_OBJECT_STR) {
                json_decref(map);
                return NULL;
            }
            char *key = pair->key.via.str.size
                            ? strndup(pair->key.via.str.ptr, pair->key.via.str.size)
                            : strdup("");
            json_t *member = s_from_msgpack(&pair->val, depth + 1);
            int rc = key && member ? json_object_set_new(map, key, member) : -1;
            if (rc != 0 && !key)
                json_decref(member);
            free(key);
            if (rc != 0) {
                json_decref(map);
                return NULL;
            }
        }
        return map;
    }
    default:
        return NULL;
    }
}

json_t *zfed_json_from_msgpack(const msgpack_object *object)
{
    return s_from_msgpack(object, 0);
}

//  Most significant digits a double needs to read back as itself.
#define REAL_DIGITS_MAX 17

//  The fewest significant digits that still read every real in value back
//  exactly: "0.1" stays 0.1 instead of jansson's 0.10000000000000001,
//  while a value that needs 17 digits gets them (records feed --resume,
//  which must rebuild the exact state).
static int s_digits_needed(const json_t *value, int needed)
{
    if (json_is_real(value)) {
        //  Fewer digits must not turn 30.0 into 3e+01 either.
        double number = json_real_value(value);
        char text[48];
        snprintf(text, sizeof text, "%.*g", REAL_DIGITS_MAX, number);
        bool exponent = strchr(text, 'e') != NULL;
        for (int digits = needed; digits < REAL_DIGITS_MAX; digits++) {
            snprintf(text, sizeof text, "%.*g", digits, number);
            if (strtod(text, NULL) == number && (exponent || !strchr(text, 'e')))
                return digits;
        }
        return REAL_DIGITS_MAX;
    }
    size_t index;
    const char *key;
    json_t *child;
    if (json_is_array(value))
        json_array_foreach(value, index, child) needed = s_digits_needed(child, needed);
    else if (json_is_object(value))
        json_object_foreach((json_t *)value, key, child) needed = s_digits_needed(child, needed);
    return needed;
}

int zfed_json_text_raw(msgpack_sbuffer *out, const char *text)
{
    return msgpack_sbuffer_write(out, text, strlen(text));
}

int zfed_json_text_int(msgpack_sbuffer *out, int64_t value)
{
    char *at = zfed_json_text_reserve(out, ZFED_JSON_INT_MAX);
    if (!at)
        return -1;
    zfed_json_text_commit(out, zfed_json_put_int(at, value));
    return 0;
}

int zfed_json_text_string(msgpack_sbuffer *out, const char *text, size_t size)
{
    //  One escaper: zfed_json_put_string's, into room reserved for the
    //  longest spelling (every byte a \u00XX escape).
    if (size > (SIZE_MAX - 2) / 6)
        return -1;
    char *at = zfed_json_text_reserve(out, ZFED_JSON_STRING_MAX(size));
    if (!at)
        return -1;
    zfed_json_text_commit(out, zfed_json_put_string(at, text, size));
    return 0;
}

char *zfed_json_text_reserve(msgpack_sbuffer *out, size_t size)
{
    if (out->alloc - out->size < size) {
        size_t grown = out->alloc ? out->alloc : MSGPACK_SBUFFER_INIT_SIZE;
        while (grown - out->size < size) {
            if (grown > SIZE_MAX / 2)
                return NULL;
            grown *= 2;
        }
        char *data = realloc(out->data, grown);
        if (!data)
            return NULL;
        out->data = data;
        out->alloc = grown;
    }
    return out->data + out->size;
}

void zfed_json_text_commit(msgpack_sbuffer *out, const char *end)
{
    out->size = (size_t)(end - out->data);
}

char *zfed_json_put_int(char *at, int64_t value)
{
    //  Two digits a division: "00" to "99", written in place from the last
    //  digit back once the length is known (a scratch text and its copy
    //  were a third of it).
    static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                "25262728293031323334353637383940414243444546474849"
                                "50515253545556575859606162636465666768697071727374"
                                "75767778798081828384858687888990919293949596979899";
    uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
    if (value < 0)
        *at++ = '-';
    size_t length = 1;
    for (uint64_t bound = 10; length < 20 && magnitude >= bound; bound *= 10)
        length++;
    char *end = at + length, *digit = end;
    while (magnitude >= 100) {
        unsigned pair = (unsigned)(magnitude % 100);
        magnitude /= 100;
        digit -= 2;
        memcpy(digit, pairs + 2 * pair, 2);
    }
    if (magnitude >= 10)
        memcpy(digit - 2, pairs + 2 * magnitude, 2);
    else
        digit[-1] = (char)('0' + magnitude);
    return end;
}

//  Whether none of a word's eight bytes needs an escape: none below 0x20,
//  none '"' or '\\' (the exact "some byte below n" test for n <= 128, and
//  the zero-byte test after an xor).
#define JSON_BYTES_ONES  0x0101010101010101ULL
#define JSON_BYTES_HIGHS 0x8080808080808080ULL
static bool s_word_plain(uint64_t word)
{
    uint64_t quote = word ^ (JSON_BYTES_ONES * '"');
    uint64_t backslash = word ^ (JSON_BYTES_ONES * '\\');
    uint64_t any = ((word - JSON_BYTES_ONES * 0x20) & ~word) |
                   ((quote - JSON_BYTES_ONES) & ~quote) |
                   ((backslash - JSON_BYTES_ONES) & ~backslash);
    return (any & JSON_BYTES_HIGHS) == 0;
}

//  Escapes ", \ and control characters (upper-case hex, as jansson
//  writes the records: one spelling in records and results files).
char *zfed_json_put_string(char *at, const char *text, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    *at++ = '"';
    //  Eight plain bytes at a time while there are (names and digits
    //  mostly are), then a byte at a time.
    size_t index = 0;
    for (uint64_t word; size - index >= sizeof word; index += sizeof word, at += sizeof word) {
        memcpy(&word, text + index, sizeof word);
        if (!s_word_plain(word))
            break;
        memcpy(at, &word, sizeof word);
    }
    for (; index < size; index++) {
        unsigned char byte = (unsigned char)text[index];
        if (byte >= 0x20 && byte != '"' && byte != '\\') {
            *at++ = (char)byte;
            continue;
        }
        *at++ = '\\';
        switch (byte) {
        case '"':
        case '\\':
            *at++ = (char)byte;
            break;
        case '\n':
            *at++ = 'n';
            break;
        case '\t':
            *at++ = 't';
            break;
        case '\r':
            *at++ = 'r';
            break;
        case '\b':
            *at++ = 'b';
            break;
        case '\f':
            *at++ = 'f';
            break;
        default:
            *at++ = 'u';
            *at++ = '0';
            *at++ = '0';
            *at++ = hex[byte >> 4];
            *at++ = hex[byte & 15];
        }
    }
    *at++ = '"';
    return at;
}

//  The files' text is jansson's json_dumps with JSON_INDENT(FILE_INDENT),
//  JSON_PRESERVE_ORDER and JSON_REAL_PRECISION (test_util holds the two
//  byte for byte), written here without its snprintf per integer and its
//  callback per token: a round record cost ~190,000 instructions through
//  json_dumps, the most of what the controller does between two rounds.
#define FILE_INDENT 2
//  Deeper than any record; a guard for the stack, not a format rule.
#define FILE_DEPTH_MAX 1024

static int s_file_indent(msgpack_sbuffer *out, int depth)
{
    static const char line[] = "\n                                ";
    size_t count = (size_t)depth * FILE_INDENT + 1;
    const char *text = line;
    while (count > 0) {
        size_t step = count < sizeof line - 1 ? count : sizeof line - 1;
        if (msgpack_sbuffer_write(out, text, step) != 0)
            return -1;
        count -= step;
        text = line + 1; //  the newline once, then spaces
    }
    return 0;
}

//  As jansson's jsonp_dtostr: "%.*g", ".0" when that reads as an integer,
//  the exponent without '+' and leading zeros.
static int s_file_real(msgpack_sbuffer *out, double number, int digits)
{
    char text[64];
    int length = snprintf(text, sizeof text - 3, "%.*g", digits, number);
    if (length < 0 || length >= (int)sizeof text - 3)
        return -1;
    if (!strchr(text, '.') && !strchr(text, 'e')) {
        memcpy(text + length, ".0", 3);
        length += 2;
    }
    char *start = strchr(text, 'e');
    if (start) {
        start++;
        char *end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, (size_t)length - (size_t)(end - text) + 1);
            length -= (int)(end - start);
        }
    }
    return msgpack_sbuffer_write(out, text, (size_t)length);
}

//  s_file_value's digits before any real was met: the reals' digits are
//  the whole file's (s_digits_needed), so the first real met stops the
//  pass, and the file is written again once they are known.  A file
//  without reals (a fib record) is walked once.
#define DIGITS_UNKNOWN 0
#define FILE_HAS_REALS (-2)

static int s_file_value(msgpack_sbuffer *out, const json_t *value, int depth, int digits)
{
    if (depth > FILE_DEPTH_MAX)
        return -1;
    int rc = 0; //  a child's failure, passed up as it came
    switch (json_typeof(value)) {
    case JSON_NULL:
        return zfed_json_text_raw(out, "null");
    case JSON_TRUE:
        return zfed_json_text_raw(out, "true");
    case JSON_FALSE:
        return zfed_json_text_raw(out, "false");
    case JSON_INTEGER:
        return zfed_json_text_int(out, json_integer_value(value));
    case JSON_REAL:
        if (digits == DIGITS_UNKNOWN)
            return FILE_HAS_REALS;
        return s_file_real(out, json_real_value(value), digits);
    case JSON_STRING:
        return zfed_json_text_string(out, json_string_value(value), json_string_length(value));
    case JSON_ARRAY: {
        size_t count = json_array_size(value);
        if (count == 0)
            return zfed_json_text_raw(out, "[]");
        if (zfed_json_text_raw(out, "[") != 0 || s_file_indent(out, depth + 1) != 0)
            return -1;
        for (size_t index = 0; index < count; index++)
            if ((rc = s_file_value(out, json_array_get(value, index), depth + 1, digits)) != 0 ||
                (index + 1 < count
                     ? zfed_json_text_raw(out, ",") != 0 || s_file_indent(out, depth + 1) != 0
                     : s_file_indent(out, depth) != 0))
                return rc ? rc : -1;
        return zfed_json_text_raw(out, "]");
    }
    case JSON_OBJECT: {
        void *iter = json_object_iter((json_t *)value);
        if (!iter)
            return zfed_json_text_raw(out, "{}");
        if (zfed_json_text_raw(out, "{") != 0 || s_file_indent(out, depth + 1) != 0)
            return -1;
        while (iter) {
            void *next = json_object_iter_next((json_t *)value, iter);
            const char *key = json_object_iter_key(iter);
            if (zfed_json_text_string(out, key, strlen(key)) != 0 ||
                zfed_json_text_raw(out, ": ") != 0 ||
                (rc = s_file_value(out, json_object_iter_value(iter), depth + 1, digits)) != 0 ||
                (next ? zfed_json_text_raw(out, ",") != 0 || s_file_indent(out, depth + 1) != 0
                      : s_file_indent(out, depth) != 0))
                return rc ? rc : -1;
            iter = next;
        }
        return zfed_json_text_raw(out, "}");
    }
    default:
        return -1;
    }
}

char *zfed_json_file_text(const json_t *value, size_t *size)
{
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    int rc = s_file_value(&out, value, 0, DIGITS_UNKNOWN);
    if (rc == FILE_HAS_REALS) {
        out.size = 0;
        rc = s_file_value(&out, value, 0, s_digits_needed(value, 1));
    }
    //  A trailing newline makes the files friendly to cat and diff.
    if (rc != 0 || msgpack_sbuffer_write(&out, "\n", 2) != 0) {
        msgpack_sbuffer_destroy(&out);
        return NULL;
    }
    *size = out.size - 1; //  the NUL after the newline is not the file's
    return msgpack_sbuffer_release(&out);
}

int zfed_json_write_durable(const char *path, const json_t *value)
{
    size_t size = 0;
    char *text = zfed_json_file_text(value, &size);
    if (!text)
        return -1;
    int rc = zfed_write_file_durable(path, text, size);
    free(text);
    return rc;
}
