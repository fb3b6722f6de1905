/*  zfed_test_hex - reading the hex test vectors of the schemas/ JSON files, for
    the unit tests that check the C codec against them.
*/
#ifndef ZFED_TEST_HEX_H_INCLUDED
#define ZFED_TEST_HEX_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *data;
    size_t size;
} zfed_test_bytes_t;

static inline int zfed_test_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

//  Hex text into bytes, always with at least one byte allocated so an
//  empty body still has a valid pointer.  0, or -1 on bad or missing hex.
static inline int zfed_test_from_hex(const char *hex, zfed_test_bytes_t *bytes)
{
    size_t length = hex ? strlen(hex) : 0;
    bytes->data = NULL;
    bytes->size = 0;
    if (!hex || length % 2 != 0 || !(bytes->data = malloc(length / 2 + 1)))
        return -1;
    for (size_t index = 0; index < length / 2; index++) {
        int high = zfed_test_hex_digit(hex[2 * index]);
        int low = zfed_test_hex_digit(hex[2 * index + 1]);
        if (high < 0 || low < 0) {
            free(bytes->data);
            bytes->data = NULL;
            return -1;
        }
        bytes->data[index] = (uint8_t)(high << 4 | low);
    }
    bytes->size = length / 2;
    return 0;
}

//  Lower-case hex of data; the caller frees it.
static inline char *zfed_test_to_hex(const void *data, size_t size)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *bytes = data;
    char *hex = malloc(2 * size + 1);
    if (!hex)
        return NULL;
    for (size_t index = 0; index < size; index++) {
        hex[2 * index] = digits[bytes[index] >> 4];
        hex[2 * index + 1] = digits[bytes[index] & 0x0f];
    }
    hex[2 * size] = '\0';
    return hex;
}

//  True when data[0..size) is exactly what expected_hex spells.
static inline bool zfed_test_same_hex(const void *data, size_t size, const char *expected_hex)
{
    char *hex = zfed_test_to_hex(data, size);
    bool same = hex && expected_hex && strcmp(hex, expected_hex) == 0;
    free(hex);
    return same;
}

//  A schemas/ JSON file, or NULL after saying where it does not parse.
static inline json_t *zfed_test_load_json(const char *path)
{
    json_error_t error;
    json_t *root = json_load_file(path, 0, &error);
    if (!root)
        fprintf(stderr, "%s:%d: %s\n", path, error.line, error.text);
    return root;
}

//  A vector's string field, or missing when it has none.
static inline const char *zfed_test_string(const json_t *object, const char *key,
                                           const char *missing)
{
    const char *text = json_string_value(json_object_get(object, key));
    return text ? text : missing;
}

#endif
