/*  test_vectors - the protocol test vectors (schemas/vectors.json) against
    the C codec.

    The vectors were encoded by msgpack-python (schemas/tools/make_vectors.py),
    independently of zfed_msg.  For every valid vector: decode, compare each
    field, re-encode and compare byte for byte with the canonical bytes, and
    build the same message with the zfed_msg_new_* constructor and compare
    again.  For every invalid vector: decode must fail with a reason that
    contains error_contains.  Last, the limits in schemas/zfed-protocol.json
    must be the ones the code enforces.
*/
#include "zfed/zfed_json.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_number.h"
#include "zfed/zfed_fib.h"
#include "zfed_test.h"
#include "zfed_test_hex.h"

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VECTORS_PATH  ZFED_SOURCE_DIR "/schemas/vectors.json"
#define PROTOCOL_PATH ZFED_SOURCE_DIR "/schemas/zfed-protocol.json"

//  Vectors the generator promises, so a truncated file cannot pass.
#define VECTORS_MIN 50

//  True when data[0..size) is exactly the bytes that expected_hex spells;
//  otherwise says what differs.
static bool s_same_bytes(const char *name, const char *what, const void *data, size_t size,
                         const char *expected_hex)
{
    char *hex = zfed_test_to_hex(data, size);
    bool same = hex && strcmp(hex, expected_hex) == 0;
    if (!same)
        fprintf(stderr, "%s: %s\n  got:      %s\n  expected: %s\n", name, what,
                hex ? hex : "(out of memory)", expected_hex);
    free(hex);
    return same;
}

//  JSON form of one msgpack value held in data[0..size), or NULL.
static json_t *s_json_from_bytes(const uint8_t *data, size_t size)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t offset = 0;
    json_t *json = NULL;
    if (msgpack_unpack_next(&unpacked, (const char *)data, size, &offset) ==
            MSGPACK_UNPACK_SUCCESS &&
        offset == size)
        json = zfed_json_from_msgpack(&unpacked.data);
    msgpack_unpacked_destroy(&unpacked);
    return json;
}

//  True when the msgpack bytes hold the same value as expected.
static bool s_same_value(const char *name, const char *what, const uint8_t *data, size_t size,
                         const json_t *expected)
{
    json_t *actual = s_json_from_bytes(data, size);
    bool same = actual && expected && json_equal(actual, expected);
    if (!same) {
        char *got = actual ? json_dumps(actual, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        char *want = expected ? json_dumps(expected, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        fprintf(stderr, "%s: %s differs\n  got:      %s\n  expected: %s\n", name, what,
                got ? got : "(not convertible)", want ? want : "(missing)");
        free(got);
        free(want);
    }
    json_decref(actual);
    return same;
}

//  Packs a JSON value into buffer (cleared first) with zfed_json_pack.
static int s_pack_json(const json_t *value, msgpack_sbuffer *buffer)
{
    msgpack_sbuffer_clear(buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, buffer, msgpack_sbuffer_write);
    char reason[128];
    if (!value || zfed_json_pack(value, &packer, reason, sizeof reason) != 0) {
        fprintf(stderr, "cannot pack JSON: %s\n", value ? reason : "missing value");
        return -1;
    }
    return 0;
}

static long long s_integer(const json_t *object, const char *key)
{
    return (long long)json_integer_value(json_object_get(object, key));
}

//  The message the fields describe, built with the zfed_msg_new_* constructors.
static zfed_msg_t *s_construct(const json_t *fields)
{
    const char *kind = zfed_test_string(fields, "kind", "(missing)");
    const char *job_id = zfed_test_string(fields, "job_id", "(missing)");
    uint32_t round = (uint32_t)s_integer(fields, "round");
    uint32_t task_id = (uint32_t)s_integer(fields, "task_id");
    uint32_t attempt = (uint32_t)s_integer(fields, "attempt");
    zfed_msg_t *message = NULL;
    msgpack_sbuffer first, second;
    msgpack_sbuffer_init(&first);
    msgpack_sbuffer_init(&second);
    if (strcmp(kind, ZFED_KIND_TASK) == 0) {
        if (s_pack_json(json_object_get(fields, "params"), &first) == 0 &&
            s_pack_json(json_object_get(fields, "global_value"), &second) == 0)
            message = zfed_msg_new_task(job_id, round, task_id, attempt, first.data, first.size,
                                        (int64_t)s_integer(fields, "global_round"), second.data,
                                        second.size);
    } else if (strcmp(kind, ZFED_KIND_RESULT) == 0) {
        if (s_pack_json(json_object_get(fields, "outputs"), &first) == 0)
            message = zfed_msg_new_result(
                job_id, round, task_id, attempt, zfed_test_string(fields, "worker", "(missing)"),
                (uint64_t)s_integer(fields, "compute_us"), first.data, first.size);
    } else if (strcmp(kind, ZFED_KIND_ERROR) == 0)
        message = zfed_msg_new_error(
            job_id, round, task_id, attempt, zfed_test_string(fields, "worker", "(missing)"),
            (uint32_t)s_integer(fields, "code"), zfed_test_string(fields, "field", "(missing)"),
            zfed_test_string(fields, "message", "(missing)"));
    msgpack_sbuffer_destroy(&first);
    msgpack_sbuffer_destroy(&second);
    return message;
}

//  Every decoded field against the vector's fields.
static void s_check_fields(const char *name, const zfed_msg_t *message, const json_t *fields)
{
    const char *kind = zfed_test_string(fields, "kind", "(missing)");
    CHECK_STR(zfed_msg_kind_name(zfed_msg_kind(message)), kind);
    CHECK_INT(s_integer(fields, "version"), ZFED_PROTOCOL_VERSION);
    CHECK_STR(zfed_msg_job_id(message), zfed_test_string(fields, "job_id", "(missing)"));
    CHECK_INT(zfed_msg_round(message), s_integer(fields, "round"));
    CHECK_INT(zfed_msg_task_id(message), s_integer(fields, "task_id"));
    CHECK_INT(zfed_msg_attempt(message), s_integer(fields, "attempt"));
    size_t size;
    const uint8_t *data;
    switch (zfed_msg_kind(message)) {
    case ZFED_MSG_TASK:
        CHECK_INT(zfed_msg_global_round(message), s_integer(fields, "global_round"));
        data = zfed_msg_params(message, &size);
        CHECK(s_same_value(name, "params", data, size, json_object_get(fields, "params")));
        data = zfed_msg_global_value(message, &size);
        CHECK(s_same_value(name, "global_value", data, size,
                           json_object_get(fields, "global_value")));
        break;
    case ZFED_MSG_RESULT:
        CHECK_STR(zfed_msg_worker(message), zfed_test_string(fields, "worker", "(missing)"));
        CHECK_INT(zfed_msg_compute_us(message), s_integer(fields, "compute_us"));
        data = zfed_msg_outputs(message, &size);
        CHECK(s_same_value(name, "outputs", data, size, json_object_get(fields, "outputs")));
        break;
    case ZFED_MSG_ERROR:
        CHECK_STR(zfed_msg_worker(message), zfed_test_string(fields, "worker", "(missing)"));
        CHECK_INT(zfed_msg_error_code(message), s_integer(fields, "code"));
        CHECK_STR(zfed_msg_error_field(message), zfed_test_string(fields, "field", "(missing)"));
        CHECK_STR(zfed_msg_error_text(message), zfed_test_string(fields, "message", "(missing)"));
        break;
    }
}

static void s_check_valid(const char *name, const zfed_test_bytes_t *body, const json_t *vector)
{
    const json_t *fields = json_object_get(vector, "fields");
    const char *canonical_hex = json_string_value(json_object_get(vector, "canonical_hex"));
    bool canonical = json_is_true(json_object_get(vector, "canonical"));
    //  A non-canonical vector must say what the canonical bytes are.
    CHECK(json_is_object(fields));
    CHECK(canonical == (canonical_hex == NULL));
    if (!canonical_hex)
        canonical_hex = json_string_value(json_object_get(vector, "hex"));

    char reason[256];
    zfed_msg_t *message = zfed_msg_decode(body->data, body->size, reason, sizeof reason);
    CHECK(message != NULL);
    if (!message) {
        fprintf(stderr, "%s: refused: %s\n", name, reason);
        return;
    }
    char kind[32];
    snprintf(kind, sizeof kind, "zfed.%s", zfed_test_string(vector, "kind", "(missing)"));
    CHECK_STR(zfed_msg_kind_name(zfed_msg_kind(message)), kind);
    s_check_fields(name, message, fields);

    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    CHECK(zfed_msg_encode(message, &buffer) == 0);
    CHECK(s_same_bytes(name, "re-encoding", buffer.data, buffer.size, canonical_hex));
    zfed_msg_destroy(&message);

    message = s_construct(fields);
    REQUIRE(message != NULL);
    if (message) {
        CHECK(zfed_msg_encode(message, &buffer) == 0);
        CHECK(s_same_bytes(name, "constructor encoding", buffer.data, buffer.size, canonical_hex));
        zfed_msg_destroy(&message);
    } else
        fprintf(stderr, "%s: the constructor refused the fields\n", name);
    msgpack_sbuffer_destroy(&buffer);
}

static void s_check_invalid(const char *name, const zfed_test_bytes_t *body, const json_t *vector)
{
    const char *expected = json_string_value(json_object_get(vector, "error_contains"));
    CHECK(expected != NULL && expected[0] != '\0');
    char reason[256] = "";
    zfed_msg_t *message = zfed_msg_decode(body->data, body->size, reason, sizeof reason);
    CHECK(message == NULL);
    zfed_msg_destroy(&message);
    if (expected && !strstr(reason, expected)) {
        CHECK(strstr(reason, expected) != NULL);
        fprintf(stderr, "%s: reason '%s' lacks '%s'\n", name, reason, expected);
    }
}

static void s_check_vectors(void)
{
    json_t *root = zfed_test_load_json(VECTORS_PATH);
    CHECK(root != NULL);
    if (!root)
        return;
    CHECK_INT(s_integer(root, "protocol_version"), ZFED_PROTOCOL_VERSION);
    const json_t *vectors = json_object_get(root, "vectors");
    CHECK(json_array_size(vectors) >= VECTORS_MIN);
    size_t index, valid = 0, invalid = 0;
    json_t *vector;
    json_array_foreach(vectors, index, vector)
    {
        const char *name = zfed_test_string(vector, "name", "(missing)");
        const char *kind = zfed_test_string(vector, "kind", "(missing)");
        CHECK(strcmp(kind, "task") == 0 || strcmp(kind, "result") == 0 ||
              strcmp(kind, "error") == 0);
        int failures = zfed_test_failures;
        zfed_test_bytes_t body;
        CHECK(zfed_test_from_hex(json_string_value(json_object_get(vector, "hex")), &body) == 0);
        if (body.data && json_is_true(json_object_get(vector, "valid"))) {
            s_check_valid(name, &body, vector);
            valid++;
        } else if (body.data && json_is_false(json_object_get(vector, "valid"))) {
            s_check_invalid(name, &body, vector);
            invalid++;
        } else
            CHECK(!"vector has bad hex or no valid flag");
        free(body.data);
        if (zfed_test_failures > failures)
            fprintf(stderr, "  ^ in vector %s\n", name);
    }
    fprintf(stderr, "%zu valid and %zu invalid vectors checked\n", valid, invalid);
    CHECK(valid > 0 && invalid > 0);
    json_decref(root);
}

//  The limits the machine-readable spec states are the ones the code enforces.
static void s_check_protocol_file(void)
{
    json_t *root = zfed_test_load_json(PROTOCOL_PATH);
    CHECK(root != NULL);
    if (!root)
        return;
    CHECK(json_is_string(json_object_get(root, "description")));
    CHECK_INT(s_integer(json_object_get(root, "protocol"), "version"), ZFED_PROTOCOL_VERSION);
    const json_t *limits = json_object_get(root, "limits");
    CHECK_INT(s_integer(limits, "job_id_max_bytes"), ZFED_JOB_ID_MAX);
    CHECK_INT(s_integer(limits, "worker_name_max_bytes"), ZFED_WORKER_NAME_MAX);
    CHECK_INT(s_integer(limits, "field_max_bytes"), ZFED_FIELD_MAX);
    CHECK_INT(s_integer(limits, "message_max_bytes"), ZFED_ERROR_TEXT_MAX);
    CHECK_INT(s_integer(limits, "body_max_bytes"), ZFED_BODY_MAX);
    CHECK_INT(s_integer(limits, "nesting_max_levels"), ZFED_NESTING_MAX);
    CHECK_INT(s_integer(limits, "values_max"), ZFED_VALUES_MAX);
    CHECK_INT(s_integer(json_object_get(root, "codec"), "max_values"), ZFED_VALUES_MAX);
    CHECK_INT(s_integer(limits, "number_text_max_chars"), ZFED_NUMBER_MAX_CHARS);
    CHECK_INT(s_integer(limits, "fib_level_max"), ZFED_FIB_MAX_LEVEL);
    CHECK_INT(s_integer(limits, "fib_sequence_max_terms"), ZFED_FIB_SEQUENCE_MAX);

    static const struct {
        const char *kind;
        const char *name;
        int elements;
    } kinds[] = {{"task", ZFED_KIND_TASK, 8},
                 {"result", ZFED_KIND_RESULT, 9},
                 {"error", ZFED_KIND_ERROR, 10}};
    const json_t *messages = json_object_get(root, "messages");
    for (size_t index = 0; index < sizeof kinds / sizeof kinds[0]; index++) {
        const json_t *message = json_object_get(messages, kinds[index].kind);
        CHECK_STR(zfed_test_string(message, "kind", "(missing)"), kinds[index].name);
        CHECK_INT(s_integer(message, "elements_count"), kinds[index].elements);
        CHECK_INT(json_array_size(json_object_get(message, "elements")), kinds[index].elements);
    }

    static const int codes[] = {ZFED_ERR_MALFORMED,     ZFED_ERR_FORBIDDEN,
                                ZFED_ERR_NOT_FOUND,     ZFED_ERR_TOO_LARGE,
                                ZFED_ERR_INVALID_PARAM, ZFED_ERR_OVERLOADED,
                                ZFED_ERR_INTERNAL,      ZFED_ERR_UNAVAILABLE,
                                ZFED_ERR_EXPIRED,       ZFED_ERR_INSUFFICIENT_STORAGE};
    const json_t *table = json_object_get(root, "error_codes");
    CHECK_INT(json_array_size(table), sizeof codes / sizeof codes[0]);
    for (size_t index = 0; index < sizeof codes / sizeof codes[0]; index++)
        CHECK_INT(s_integer(json_array_get(table, index), "code"), codes[index]);
    json_decref(root);
}

int main(void)
{
    s_check_vectors();
    s_check_protocol_file();
    ZFED_TEST_END();
}
