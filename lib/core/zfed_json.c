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
    //  By hand: snprintf cost more than the rest of a result's line.
    char text[24];
    char *end = text + sizeof text, *digit = end;
    uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
    do {
        *--digit = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (value < 0)
        *--digit = '-';
    return msgpack_sbuffer_write(out, digit, (size_t)(end - digit));
}

int zfed_json_text_string(msgpack_sbuffer *out, const char *text, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    if (msgpack_sbuffer_write(out, "\"", 1) != 0)
        return -1;
    size_t plain = 0; //  start of the run of bytes copied as they are
    for (size_t index = 0; index < size; index++) {
        unsigned char byte = (unsigned char)text[index];
        if (byte >= 0x20 && byte != '"' && byte != '\\')
            continue;
        char escape[6] = {'\\', 'u', '0', '0', hex[byte >> 4], hex[byte & 15]};
        size_t length = 6;
        const char *shorthand = byte == '"'    ? "\\\""
                                : byte == '\\' ? "\\\\"
                                : byte == '\n' ? "\\n"
                                : byte == '\t' ? "\\t"
                                : byte == '\r' ? "\\r"
                                : byte == '\b' ? "\\b"
                                : byte == '\f' ? "\\f"
                                               : NULL;
        if (shorthand) {
            memcpy(escape, shorthand, 2);
            length = 2;
        }
        if (msgpack_sbuffer_write(out, text + plain, index - plain) != 0 ||
            msgpack_sbuffer_write(out, escape, length) != 0)
            return -1;
        plain = index + 1;
    }
    if (msgpack_sbuffer_write(out, text + plain, size - plain) != 0)
        return -1;
    return msgpack_sbuffer_write(out, "\"", 1);
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
    //  Two digits a division: "00" to "99".
    static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                "25262728293031323334353637383940414243444546474849"
                                "50515253545556575859606162636465666768697071727374"
                                "75767778798081828384858687888990919293949596979899";
    char text[ZFED_JSON_INT_MAX];
    char *end = text + sizeof text, *digit = end;
    uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
    while (magnitude >= 100) {
        unsigned pair = (unsigned)(magnitude % 100);
        magnitude /= 100;
        digit -= 2;
        memcpy(digit, pairs + 2 * pair, 2);
    }
    if (magnitude >= 10) {
        digit -= 2;
        memcpy(digit, pairs + 2 * magnitude, 2);
    } else
        *--digit = (char)('0' + magnitude);
    if (value < 0)
        *--digit = '-';
    size_t length = (size_t)(end - digit);
    memcpy(at, digit, length);
    return at + length;
}

//  As zfed_json_text_string escapes: ", \ and control characters.
char *zfed_json_put_string(char *at, const char *text, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    *at++ = '"';
    for (size_t index = 0; index < size; index++) {
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

char *zfed_json_file_text(const json_t *value, size_t *size)
{
    int digits = s_digits_needed(value, 1);
    char *text =
        json_dumps(value, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(digits));
    if (!text)
        return NULL;
    size_t length = strlen(text);
    //  A trailing newline makes the files friendly to cat and diff.
    char *with_newline = realloc(text, length + 2);
    if (!with_newline) {
        free(text);
        return NULL;
    }
    with_newline[length] = '\n';
    with_newline[length + 1] = '\0';
    *size = length + 1;
    return with_newline;
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
