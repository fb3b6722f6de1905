/*  zfed_services - the service registry and helpers service files share.

    Adding a service: write lib/zfed_svc_NAME.c defining a zfed_service_t,
    declare it below and add it to s_registry.  Nothing else changes.
*/
#include "zfed/zfed_service.h"
#include "zfed/zfed_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const zfed_service_t zfed_service_fib;
extern const zfed_service_t zfed_service_vecavg;
extern const zfed_service_t zfed_service_tensoravg;
extern const zfed_service_t zfed_service_mlp;

static const zfed_service_t *const s_registry[] = {
    &zfed_service_fib, &zfed_service_vecavg, &zfed_service_tensoravg, &zfed_service_mlp, NULL,
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

uint64_t zfed_service_cost(const zfed_service_t *service, const msgpack_object *params)
{
    return service->cost ? service->cost(params) : 0;
}

uint64_t zfed_service_cost_add(uint64_t total, uint64_t cost)
{
    return total > UINT64_MAX - cost ? UINT64_MAX : total + cost;
}

bool zfed_service_cost_allowed(const zfed_service_t *service, uint64_t total)
{
    return !service->cost || total <= service->max_request_cost;
}

void zfed_service_cost_fault(const zfed_service_t *service, uint64_t total, size_t tasks,
                             zfed_fault_t *fault)
{
    zfed_fault_set(fault, ZFED_ERR_TOO_LARGE, "",
                   "this request asks %s for %llu units of work in %zu task(s) (%s, summed); one "
                   "request may ask for at most %llu: send fewer tasks per request",
                   service->name, (unsigned long long)total, tasks,
                   service->cost_unit ? service->cost_unit : "its own unit",
                   (unsigned long long)service->max_request_cost);
}

//  Length of the UTF-8 sequence starting at text (1..4), or 0 when the
//  bytes there are not well-formed UTF-8.
static size_t s_utf8_sequence(const unsigned char *text)
{
    unsigned char lead = text[0];
    size_t extra;
    if (lead < 0x80)
        return 1;
    else if (lead >= 0xc2 && lead <= 0xdf)
        extra = 1;
    else if (lead >= 0xe0 && lead <= 0xef)
        extra = 2;
    else if (lead >= 0xf0 && lead <= 0xf4)
        extra = 3;
    else
        return 0;
    for (size_t next = 1; next <= extra; next++)
        if ((text[next] & 0xc0) != 0x80)
            return 0;
    //  Overlong, surrogate and out-of-range forms.
    if ((lead == 0xe0 && text[1] < 0xa0) || (lead == 0xed && text[1] > 0x9f) ||
        (lead == 0xf0 && text[1] < 0x90) || (lead == 0xf4 && text[1] > 0x8f))
        return 0;
    return extra + 1;
}

void zfed_fault_set(zfed_fault_t *fault, uint32_t code, const char *field, const char *format, ...)
{
    fault->code = code;
    //  A fault becomes a zfed.error body, whose field is a token and whose
    //  text is UTF-8 without control characters.  Texts often quote what a
    //  peer sent, so both are made to fit here rather than trusted.
    snprintf(fault->field, sizeof fault->field, "%s",
             field && zfed_is_token(field, ZFED_FIELD_MAX) ? field : "");
    char raw[ZFED_ERROR_TEXT_MAX * 2];
    va_list args;
    va_start(args, format);
    vsnprintf(raw, sizeof raw, format, args);
    va_end(args);
    size_t in = 0, out = 0;
    while (raw[in] && out < ZFED_ERROR_TEXT_MAX) {
        const unsigned char *at = (const unsigned char *)raw + in;
        size_t length = *at < 0x20 || *at == 0x7f ? 0 : s_utf8_sequence(at);
        if (length == 0) {
            fault->text[out++] = '?';
            in++;
        } else if (out + length <= ZFED_ERROR_TEXT_MAX) {
            memcpy(fault->text + out, at, length);
            out += length;
            in += length;
        } else
            break; //  never cut a character in half
    }
    fault->text[out] = '\0';
}

int zfed_sample_init(zfed_sample_t *sample, size_t dims)
{
    sample->dims = 0;
    sample->weight = 0;
    sample->small = false;
    sample->small_value = 0;
    sample->values = calloc(dims ? dims : 1, sizeof(mpq_t));
    if (!sample->values)
        return -1;
    for (size_t index = 0; index < dims; index++)
        mpq_init(sample->values[index]);
    sample->dims = dims;
    return 0;
}

void zfed_sample_set_u64(zfed_sample_t *sample, uint64_t value, uint64_t weight)
{
    sample->dims = 1;
    sample->values = NULL;
    sample->weight = weight;
    sample->small = true;
    sample->small_value = value;
}

int zfed_sample_expand(zfed_sample_t *sample)
{
    if (!sample->small)
        return 0;
    mpq_t *values = malloc(sizeof *values);
    if (!values)
        return -1;
    mpq_init(values[0]);
    //  Through mpz_import: an unsigned long may be narrower than 64 bits.
    mpz_import(mpq_numref(values[0]), 1, 1, sizeof sample->small_value, 0, 0, &sample->small_value);
    sample->values = values;
    sample->small = false;
    return 0;
}

void zfed_sample_clear(zfed_sample_t *sample)
{
    for (size_t index = 0; sample->values && index < sample->dims; index++)
        mpq_clear(sample->values[index]);
    free(sample->values);
    sample->values = NULL;
    sample->dims = 0;
    sample->small = false;
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
            //  Named in the field only when it is a short token; a key
            //  with a NUL byte must not pass for the part before it.
            bool has_nul = memchr(key->via.str.ptr, '\0', key->via.str.size) != NULL;
            char field[ZFED_FIELD_MAX + 1] = "";
            if (!has_nul && key->via.str.size <= ZFED_FIELD_MAX)
                snprintf(field, sizeof field, "%.*s", (int)key->via.str.size, key->via.str.ptr);
            if (has_nul)
                zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, "",
                               "unknown %s: a name with a NUL byte in it", what);
            else
                zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, field, "unknown %s '%.*s'", what,
                               (int)(key->via.str.size > 64 ? 64 : key->via.str.size),
                               key->via.str.ptr);
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
