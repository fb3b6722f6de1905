/*  zfed_services - the service registry and helpers service files share.

    Adding a service: write lib/zfed_svc_NAME.c defining a zfed_service_t,
    declare it below and add it to s_registry.  Nothing else changes.
*/
#include "zfed/zfed_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const zfed_service_t zfed_service_fib;

static const zfed_service_t *const s_registry[] = {
    &zfed_service_fib,
    NULL,
};

const zfed_service_t *const *zfed_services(void)
{
    return s_registry;
}

const zfed_service_t *zfed_service_find(const char *name)
{
    for (size_t index = 0; name && s_registry[index]; index++)
        if (strcmp(s_registry[index]->name, name) == 0)
            return s_registry[index];
    return NULL;
}

void zfed_fault_set(zfed_fault_t *fault, uint32_t code, const char *field, const char *format, ...)
{
    fault->code = code;
    snprintf(fault->field, sizeof fault->field, "%s", field ? field : "");
    va_list args;
    va_start(args, format);
    vsnprintf(fault->text, sizeof fault->text, format, args);
    va_end(args);
}

int zfed_sample_init(zfed_sample_t *sample, size_t dims)
{
    sample->dims = 0;
    sample->weight = 0;
    sample->values = calloc(dims ? dims : 1, sizeof(mpq_t));
    if (!sample->values)
        return -1;
    for (size_t index = 0; index < dims; index++)
        mpq_init(sample->values[index]);
    sample->dims = dims;
    return 0;
}

void zfed_sample_clear(zfed_sample_t *sample)
{
    for (size_t index = 0; sample->values && index < sample->dims; index++)
        mpq_clear(sample->values[index]);
    free(sample->values);
    sample->values = NULL;
    sample->dims = 0;
}

const msgpack_object *zfed_map_get(const msgpack_object *map, const char *key)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t length = strlen(key);
    for (uint32_t index = 0; index < map->via.map.size; index++) {
        const msgpack_object *candidate = &map->via.map.ptr[index].key;
        if (candidate->type == MSGPACK_OBJECT_STR && candidate->via.str.size == length &&
            memcmp(candidate->via.str.ptr, key, length) == 0)
            return &map->via.map.ptr[index].val;
    }
    return NULL;
}

int zfed_map_check_keys(const msgpack_object *map, const char *const *allowed, const char *what,
                        zfed_fault_t *fault)
{
    for (uint32_t index = 0; index < map->via.map.size; index++) {
        const msgpack_object *key = &map->via.map.ptr[index].key;
        bool known = false;
        for (size_t name = 0; allowed[name] && !known; name++)
            known = key->via.str.size == strlen(allowed[name]) &&
                    memcmp(key->via.str.ptr, allowed[name], key->via.str.size) == 0;
        if (!known) {
            char field[ZFED_FIELD_MAX + 1];
            snprintf(field, sizeof field, "%.*s", (int)key->via.str.size, key->via.str.ptr);
            //  The field must be a token; a key with spaces is named in the text only.
            bool token = key->via.str.size <= ZFED_FIELD_MAX;
            for (uint32_t at = 0; token && at < key->via.str.size; at++)
                token = key->via.str.ptr[at] > 0x20 && key->via.str.ptr[at] < 0x7f;
            zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, token ? field : "", "unknown %s '%s'",
                           what, field);
            return -1;
        }
    }
    return 0;
}

int zfed_unpack(msgpack_unpacked *unpacked, const uint8_t *data, size_t size)
{
    msgpack_unpacked_init(unpacked);
    size_t offset = 0;
    if (msgpack_unpack_next(unpacked, (const char *)data, size, &offset) !=
            MSGPACK_UNPACK_SUCCESS ||
        offset != size)
        return -1;
    return 0;
}
