/*  zfed_fib_levels - "10" and "10,20,30" as fib parameters.  */
#include "services/zfed_fib_levels.h"
#include "zfed/zfed_fib.h"
#include "zfed/zfed_util.h"

#include <stdio.h>
#include <string.h>

#define PARAM_LEVEL "fibonacci_level"
//  Longest level text looked at ("100000" and some room for a typo).
#define LEVEL_TEXT_MAX 32

static json_t *s_level_object(uint32_t level)
{
    return json_pack("{s:I}", PARAM_LEVEL, (json_int_t)level);
}

static int s_parse(const char *text, size_t length, uint32_t *level)
{
    char copy[LEVEL_TEXT_MAX];
    if (length == 0 || length >= sizeof copy)
        return -1;
    memcpy(copy, text, length);
    copy[length] = '\0';
    return zfed_parse_u32(copy, 1, ZFED_FIB_MAX_LEVEL, level);
}

json_t *zfed_fib_level_params(const char *text, zfed_error_t *error)
{
    uint32_t level;
    if (!text || s_parse(text, strlen(text), &level) != 0) {
        zfed_error_set(error, ZFED_E_INVALID, "", "expected a level from 1 to %d, got '%s'",
                       ZFED_FIB_MAX_LEVEL, text ? text : "");
        return NULL;
    }
    json_t *params = s_level_object(level);
    if (!params)
        zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
    return params;
}

json_t *zfed_fib_level_list(const char *text, zfed_error_t *error)
{
    json_t *list = json_array();
    if (!list || !text) {
        json_decref(list);
        zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
        return NULL;
    }
    //  Every comma separates two items: nothing is skipped.
    size_t item = 1;
    for (const char *start = text;; item++) {
        const char *comma = strchr(start, ',');
        size_t length = comma ? (size_t)(comma - start) : strlen(start);
        uint32_t level;
        if (length == 0) {
            zfed_error_set(error, ZFED_E_INVALID, "",
                           "item %zu of '%s' is empty: expected levels from 1 to %d separated "
                           "by single commas",
                           item, text, ZFED_FIB_MAX_LEVEL);
            goto err;
        }
        if (s_parse(start, length, &level) != 0) {
            zfed_error_set(error, ZFED_E_INVALID, "",
                           "item %zu: expected a level from 1 to %d, got '%.*s'", item,
                           ZFED_FIB_MAX_LEVEL,
                           (int)(length < LEVEL_TEXT_MAX ? length : LEVEL_TEXT_MAX), start);
            goto err;
        }
        if (json_array_append_new(list, s_level_object(level)) != 0) {
            zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
            goto err;
        }
        if (!comma)
            break;
        start = comma + 1;
    }
    return list;
err:
    json_decref(list);
    return NULL;
}
