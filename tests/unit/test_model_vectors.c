/*  test_model_vectors - schemas/model-vectors.json against the C codec.

    The vectors were encoded by msgpack-python (schemas/tools/
    make_model_vectors.py), independently of zfed_descriptor and
    zfed_transfer.  Valid descriptor and transfer vectors: decode, compare
    each field, re-encode and compare byte for byte with the canonical
    bytes.  Invalid ones: refused, with the reason's class (the text before
    the first colon) the vector's.  Data vectors: each tensor's values read
    from its offset.  Frames vectors: a task's body and data frames checked
    together.  Last, the limits zfed-protocol.json states for models.
*/
#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_model.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_sha256.h"
#include "zfed/zfed_transfer.h"
#include "zfed_test.h"
#include "zfed_test_hex.h"

#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VECTORS_PATH  ZFED_SOURCE_DIR "/schemas/model-vectors.json"
#define PROTOCOL_PATH ZFED_SOURCE_DIR "/schemas/zfed-protocol.json"

//  Vectors the generator promises, so a truncated file cannot pass.
#define VECTORS_MIN 70

static int s_passed[4]; //  per kind of vector: descriptor, transfer, data, frames

static bool s_class_is(const char *name, const char *reason, const char *expected)
{
    size_t length = strcspn(reason, ":");
    bool same = strlen(expected) == length && strncmp(reason, expected, length) == 0;
    if (!same)
        fprintf(stderr, "%s: refused as '%s', the vector's class is '%s'\n", name, reason,
                expected);
    return same;
}

static bool s_same_hex(const char *name, const char *what, const void *data, size_t size,
                       const char *expected)
{
    bool same = expected && zfed_test_same_hex(data, size, expected);
    if (!same) {
        char *hex = zfed_test_to_hex(data, size);
        fprintf(stderr, "%s: %s\n  got:      %s\n  expected: %s\n", name, what, hex ? hex : "?",
                expected ? expected : "(none)");
        free(hex);
    }
    return same;
}

static long long s_int(const json_t *object, const char *key)
{
    return (long long)json_integer_value(json_object_get(object, key));
}

//  The fields of a valid descriptor vector against what was read.
static void s_check_descriptor_fields(const char *name, const json_t *fields,
                                      const zfed_descriptor_t *d)
{
    CHECK(s_same_hex(name, "id", d->id, ZFED_MODEL_ID_SIZE, zfed_test_string(fields, "id", "")));
    const json_t *sha = json_object_get(fields, "sha256");
    CHECK(d->has_sha256 == !json_is_null(sha));
    if (d->has_sha256)
        CHECK(s_same_hex(name, "sha256", d->sha256, ZFED_MODEL_ID_SIZE, json_string_value(sha)));
    CHECK_INT(d->size, s_int(fields, "size"));
    CHECK_INT(d->chunk, s_int(fields, "chunk"));
    CHECK_STR(d->source, zfed_test_string(fields, "source", "?"));
    const json_t *tensors = json_object_get(fields, "tensors");
    REQUIRE_INT(zfed_layout_size(d->layout), json_array_size(tensors));
    for (size_t index = 0; index < json_array_size(tensors); index++) {
        const json_t *entry = json_array_get(tensors, index);
        const zfed_tensor_t *tensor = zfed_layout_tensor(d->layout, index);
        CHECK_STR(tensor->name, json_string_value(json_array_get(entry, 0)));
        CHECK_STR(zfed_dtype_name(tensor->dtype), json_string_value(json_array_get(entry, 1)));
        const json_t *shape = json_array_get(entry, 2);
        CHECK_INT(tensor->ndim, json_array_size(shape));
        for (size_t dim = 0; dim < json_array_size(shape) && dim < tensor->ndim; dim++)
            CHECK_INT(tensor->shape[dim], json_integer_value(json_array_get(shape, dim)));
        CHECK_INT(tensor->offset, json_integer_value(json_array_get(entry, 3)));
        CHECK_INT(tensor->nbytes, json_integer_value(json_array_get(entry, 4)));
    }
    CHECK_INT(zfed_descriptor_chunks(d), (d->size + d->chunk - 1) / d->chunk);
}

static zfed_descriptor_role_t s_role(const json_t *vector)
{
    const char *role = zfed_test_string(vector, "role", "result");
    return strcmp(role, "global") == 0 ? ZFED_DESCRIPTOR_GLOBAL : ZFED_DESCRIPTOR_RESULT;
}

static void s_descriptor_vector(const char *name, const json_t *vector,
                                const zfed_test_bytes_t *bytes, bool valid)
{
    zfed_descriptor_t d;
    char reason[512] = "";
    int rc =
        zfed_descriptor_decode(bytes->data, bytes->size, s_role(vector), &d, reason, sizeof reason);
    if (!valid) {
        CHECK(rc != 0);
        CHECK(d.layout == NULL);
        if (rc != 0)
            CHECK(s_class_is(name, reason, zfed_test_string(vector, "reason", "?")));
        zfed_descriptor_clear(&d);
        s_passed[0] += rc != 0;
        return;
    }
    if (rc != 0)
        fprintf(stderr, "%s: refused: %s\n", name, reason);
    REQUIRE(rc == 0);
    s_check_descriptor_fields(name, json_object_get(vector, "fields"), &d);
    const char *canonical = zfed_test_string(vector, "canonical_hex", NULL);
    if (!canonical)
        canonical = zfed_test_string(vector, "hex", "");
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    CHECK(zfed_descriptor_encode(&d, &buffer) == 0);
    CHECK(s_same_hex(name, "re-encoded", buffer.data, buffer.size, canonical));
    //  The same descriptor built from its parts packs to the same bytes.
    zfed_descriptor_t built;
    REQUIRE(zfed_descriptor_set(&built, d.id, d.has_sha256 ? d.sha256 : NULL, d.layout, d.chunk,
                                d.source, s_role(vector), reason, sizeof reason) == 0);
    CHECK(zfed_descriptor_encode(&built, &buffer) == 0);
    CHECK(s_same_hex(name, "built", buffer.data, buffer.size, canonical));
    zfed_descriptor_clear(&built);
    msgpack_sbuffer_destroy(&buffer);
    zfed_descriptor_clear(&d);
    zfed_descriptor_clear(&d); //  idempotent
    s_passed[0]++;
}

static void s_encode_transfer(const zfed_transfer_t *t, msgpack_sbuffer *buffer)
{
    char text[ZFED_CHUNK_TEXT_MAX + 1];
    uint8_t ids[ZFED_RELEASE_IDS_MAX][ZFED_MODEL_ID_SIZE];
    size_t cursor = 0, count = 0;
    switch (t->kind) {
    case ZFED_TRANSFER_FETCH:
        CHECK(zfed_transfer_encode_fetch(buffer, t->id, t->index) == 0);
        break;
    case ZFED_TRANSFER_CHUNK:
        memcpy(text, t->text.data, t->text.size);
        text[t->text.size] = '\0';
        CHECK(zfed_transfer_encode_chunk(buffer, t->id, t->index, t->code, text) == 0);
        break;
    case ZFED_TRANSFER_RELEASE:
        while (count < ZFED_RELEASE_IDS_MAX && zfed_transfer_next_id(t, &cursor, ids[count]) == 0)
            count++;
        CHECK_INT(count, t->count);
        CHECK(zfed_transfer_encode_release(buffer, (const uint8_t(*)[ZFED_MODEL_ID_SIZE])ids,
                                           count) == 0);
        break;
    case ZFED_TRANSFER_RELEASED:
        CHECK(zfed_transfer_encode_released(buffer, t->count) == 0);
        break;
    }
}

static void s_check_transfer_fields(const char *name, const json_t *fields,
                                    const zfed_transfer_t *t)
{
    CHECK_STR(zfed_transfer_kind_name(t->kind), zfed_test_string(fields, "kind", "?"));
    if (t->kind == ZFED_TRANSFER_FETCH || t->kind == ZFED_TRANSFER_CHUNK) {
        CHECK(
            s_same_hex(name, "id", t->id, ZFED_MODEL_ID_SIZE, zfed_test_string(fields, "id", "")));
        CHECK_INT(t->index, s_int(fields, "index"));
    }
    if (t->kind == ZFED_TRANSFER_CHUNK) {
        CHECK_INT(t->code, s_int(fields, "code"));
        const char *text = zfed_test_string(fields, "text", "?");
        CHECK(t->text.size == strlen(text) && memcmp(t->text.data, text, t->text.size) == 0);
    }
    if (t->kind == ZFED_TRANSFER_RELEASE) {
        const json_t *ids = json_object_get(fields, "ids");
        CHECK_INT(t->count, json_array_size(ids));
        size_t cursor = 0;
        uint8_t id[ZFED_MODEL_ID_SIZE];
        for (size_t index = 0; index < json_array_size(ids); index++) {
            REQUIRE(zfed_transfer_next_id(t, &cursor, id) == 0);
            CHECK(s_same_hex(name, "release id", id, sizeof id,
                             json_string_value(json_array_get(ids, index))));
        }
        CHECK(zfed_transfer_next_id(t, &cursor, id) != 0);
    }
    if (t->kind == ZFED_TRANSFER_RELEASED)
        CHECK_INT(t->count, s_int(fields, "count"));
}

static void s_transfer_vector(const char *name, const json_t *vector,
                              const zfed_test_bytes_t *bytes, bool valid)
{
    zfed_transfer_t t;
    char reason[512] = "";
    int rc = zfed_transfer_decode(bytes->data, bytes->size, &t, reason, sizeof reason);
    if (!valid) {
        CHECK(rc != 0);
        if (rc != 0)
            CHECK(s_class_is(name, reason, zfed_test_string(vector, "reason", "?")));
        s_passed[1] += rc != 0;
        return;
    }
    if (rc != 0)
        fprintf(stderr, "%s: refused: %s\n", name, reason);
    REQUIRE(rc == 0);
    CHECK(zfed_transfer_is(bytes->data, bytes->size));
    s_check_transfer_fields(name, json_object_get(vector, "fields"), &t);
    const char *canonical = zfed_test_string(vector, "canonical_hex", NULL);
    if (!canonical)
        canonical = zfed_test_string(vector, "hex", "");
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    s_encode_transfer(&t, &buffer);
    CHECK(s_same_hex(name, "re-encoded", buffer.data, buffer.size, canonical));
    msgpack_sbuffer_destroy(&buffer);
    s_passed[1]++;
}

//  Each tensor's elements read from the data, against the vector's values.
static void s_data_vector(const char *name, const json_t *vector)
{
    zfed_test_bytes_t descriptor, data;
    REQUIRE(zfed_test_from_hex(zfed_test_string(vector, "descriptor_hex", NULL), &descriptor) == 0);
    REQUIRE(zfed_test_from_hex(zfed_test_string(vector, "data_hex", NULL), &data) == 0);
    zfed_descriptor_t d;
    char reason[512];
    REQUIRE(zfed_descriptor_decode(descriptor.data, descriptor.size, ZFED_DESCRIPTOR_GLOBAL, &d,
                                   reason, sizeof reason) == 0);
    CHECK(zfed_descriptor_check_data(&d, true, data.size, reason, sizeof reason) == 0);
    uint8_t digest[ZFED_MODEL_ID_SIZE];
    CHECK(zfed_sha256(data.data, data.size, digest) == 0);
    CHECK(memcmp(digest, d.sha256, sizeof digest) == 0);
    const json_t *values = json_object_get(vector, "values");
    const json_t *bf16_bits = json_object_get(vector, "bf16_bits");
    for (size_t index = 0; index < zfed_layout_size(d.layout); index++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(d.layout, index);
        const json_t *expected = json_object_get(values, tensor->name);
        REQUIRE(json_is_array(expected));
        CHECK_INT(json_array_size(expected), tensor->count);
        for (size_t element = 0; element < tensor->count; element++) {
            double got = zfed_dtype_get_f64(tensor->dtype, data.data + tensor->offset, element);
            double want = json_number_value(json_array_get(expected, element));
            if (got != want)
                fprintf(stderr, "%s: tensor %s element %zu is %.17g, expected %.17g\n", name,
                        tensor->name, element, got, want);
            CHECK(got == want);
            if (tensor->dtype == ZFED_DTYPE_BF16) {
                uint16_t bits;
                memcpy(&bits, data.data + tensor->offset + 2 * element, sizeof bits);
                CHECK_INT(bits, json_integer_value(json_array_get(bf16_bits, element)));
            }
        }
    }
    zfed_descriptor_clear(&d);
    free(descriptor.data);
    free(data.data);
    s_passed[2]++;
}

//  A task's frames: the body decodes, its global value is a descriptor,
//  and the data frames are what the descriptor says.
static void s_frames_vector(const char *name, const json_t *vector, bool valid)
{
    const json_t *frames = json_object_get(vector, "frames");
    REQUIRE(json_array_size(frames) >= 1);
    zfed_test_bytes_t body, data = {NULL, 0};
    REQUIRE(zfed_test_from_hex(json_string_value(json_array_get(frames, 0)), &body) == 0);
    bool has_data = json_array_size(frames) == 2;
    if (has_data)
        REQUIRE(zfed_test_from_hex(json_string_value(json_array_get(frames, 1)), &data) == 0);
    char reason[512] = "";
    zfed_msg_t *task = zfed_msg_decode(body.data, body.size, reason, sizeof reason);
    REQUIRE(task != NULL);
    REQUIRE(zfed_msg_kind(task) == ZFED_MSG_TASK);
    zfed_descriptor_t d;
    REQUIRE(zfed_descriptor_read(zfed_msg_global_object(task), ZFED_DESCRIPTOR_GLOBAL, &d, reason,
                                 sizeof reason) == 0);
    int rc = zfed_descriptor_check_data(&d, has_data, data.size, reason, sizeof reason);
    if (valid)
        CHECK(rc == 0);
    else {
        CHECK(rc != 0);
        if (rc != 0)
            CHECK(s_class_is(name, reason, zfed_test_string(vector, "reason", "?")));
    }
    if (valid && has_data) {
        uint8_t digest[ZFED_MODEL_ID_SIZE];
        CHECK(zfed_sha256(data.data, data.size, digest) == 0 &&
              memcmp(digest, d.id, sizeof digest) == 0);
    }
    s_passed[3] += valid ? rc == 0 : rc != 0;
    zfed_descriptor_clear(&d);
    zfed_msg_destroy(&task);
    free(body.data);
    free(data.data);
}

static void test_vectors(void)
{
    json_t *root = zfed_test_load_json(VECTORS_PATH);
    REQUIRE(root != NULL);
    CHECK_INT(s_int(root, "protocol_version"), ZFED_PROTOCOL_VERSION);
    const json_t *vectors = json_object_get(root, "vectors");
    const json_t *classes = json_object_get(root, "reasons");
    CHECK(json_array_size(vectors) >= VECTORS_MIN);
    size_t index;
    const json_t *vector;
    json_array_foreach(vectors, index, vector)
    {
        const char *name = zfed_test_string(vector, "name", "?");
        const char *what = zfed_test_string(vector, "what", "?");
        bool valid = json_is_true(json_object_get(vector, "valid"));
        if (!valid)
            CHECK(json_object_get(classes, zfed_test_string(vector, "reason", "?")) != NULL);
        if (strcmp(what, "data") == 0) {
            s_data_vector(name, vector);
            continue;
        }
        if (strcmp(what, "frames") == 0) {
            s_frames_vector(name, vector, valid);
            continue;
        }
        zfed_test_bytes_t bytes;
        REQUIRE(zfed_test_from_hex(zfed_test_string(vector, "hex", NULL), &bytes) == 0);
        if (strcmp(what, "descriptor") == 0)
            s_descriptor_vector(name, vector, &bytes, valid);
        else if (strcmp(what, "transfer") == 0)
            s_transfer_vector(name, vector, &bytes, valid);
        else {
            fprintf(stderr, "%s: unknown kind of vector '%s'\n", name, what);
            CHECK(false);
        }
        free(bytes.data);
    }
    fprintf(stderr, "passed: %d descriptor, %d transfer, %d data, %d frames vectors\n", s_passed[0],
            s_passed[1], s_passed[2], s_passed[3]);
    CHECK_INT(s_passed[0] + s_passed[1] + s_passed[2] + s_passed[3], json_array_size(vectors));
    json_decref(root);
}

//  Beyond the vectors: what the encoders refuse, chunk ranges, names.
static void test_edges(void)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    uint8_t id[ZFED_MODEL_ID_SIZE] = {1};
    CHECK(zfed_transfer_encode_chunk(&buffer, id, 0, 99, "") != 0);
    CHECK(zfed_transfer_encode_chunk(&buffer, id, 0, 200, "line\nbreak") != 0);
    CHECK(zfed_transfer_encode_release(&buffer, NULL, 0) != 0);
    CHECK(zfed_transfer_encode_chunk(&buffer, id, 7, 404, "gone") == 0);
    zfed_transfer_t t;
    char reason[256];
    REQUIRE(zfed_transfer_decode(buffer.data, buffer.size, &t, reason, sizeof reason) == 0);
    CHECK(t.kind == ZFED_TRANSFER_CHUNK && t.index == 7 && t.code == 404);
    //  One trailing byte.
    REQUIRE(msgpack_sbuffer_write(&buffer, "\xc0", 1) == 0);
    CHECK(zfed_transfer_decode(buffer.data, buffer.size, &t, reason, sizeof reason) != 0);
    CHECK(strncmp(reason, "msgpack:", 8) == 0);
    CHECK(!zfed_transfer_is("\x91\xa3zfe", 5));
    msgpack_sbuffer_destroy(&buffer);

    uint64_t offset = 0;
    size_t length = 0;
    CHECK_INT(zfed_chunk_count(0, ZFED_CHUNK_MIN), 0);
    CHECK_INT(zfed_chunk_count(ZFED_CHUNK_MIN + 1, ZFED_CHUNK_MIN), 2);
    CHECK(zfed_chunk_range(ZFED_CHUNK_MIN + 1, ZFED_CHUNK_MIN, 1, &offset, &length) == 0);
    CHECK(offset == ZFED_CHUNK_MIN && length == 1);
    CHECK(zfed_chunk_range(ZFED_CHUNK_MIN + 1, ZFED_CHUNK_MIN, 2, &offset, &length) != 0);

    char name[ZFED_BLOB_SERVICE_SIZE], other[ZFED_BLOB_SERVICE_SIZE];
    REQUIRE(zfed_blob_service_random(name) == 0);
    REQUIRE(zfed_blob_service_random(other) == 0);
    CHECK(zfed_blob_service_valid(name, strlen(name)));
    CHECK(strcmp(name, other) != 0);
    CHECK(!zfed_blob_service_valid("zfed.blob.0123", 14));

    //  A layout too big to travel inline must name a source.
    zfed_layout_t *layout = zfed_layout_new();
    uint64_t shape[1] = {ZFED_MODEL_INLINE_MAX + 1};
    REQUIRE(zfed_layout_add(layout, "w", ZFED_DTYPE_U8, shape, 1, reason, sizeof reason) == 0);
    zfed_descriptor_t d;
    CHECK(zfed_descriptor_set(&d, id, NULL, layout, ZFED_CHUNK_DEFAULT, "", ZFED_DESCRIPTOR_RESULT,
                              reason, sizeof reason) != 0);
    CHECK(strncmp(reason, "inline:", 7) == 0);
    CHECK(zfed_descriptor_set(&d, id, NULL, layout, ZFED_CHUNK_DEFAULT, name,
                              ZFED_DESCRIPTOR_GLOBAL, reason, sizeof reason) != 0);
    CHECK(strncmp(reason, "global_id:", 10) == 0);
    REQUIRE(zfed_descriptor_set(&d, id, NULL, layout, ZFED_CHUNK_DEFAULT, name,
                                ZFED_DESCRIPTOR_RESULT, reason, sizeof reason) == 0);
    CHECK_INT(zfed_descriptor_chunks(&d), 2);
    CHECK(zfed_descriptor_check_data(&d, true, d.size, reason, sizeof reason) != 0);
    CHECK(zfed_descriptor_check_data(&d, false, 0, reason, sizeof reason) == 0);
    zfed_descriptor_t copy;
    REQUIRE(zfed_descriptor_copy(&copy, &d) == 0);
    CHECK(copy.layout != d.layout &&
          zfed_layout_equal(copy.layout, d.layout, "x", reason, sizeof reason));
    zfed_descriptor_clear(&copy);
    zfed_descriptor_clear(&d);
    zfed_layout_destroy(&layout);
}

static void test_protocol_json(void)
{
    json_t *root = zfed_test_load_json(PROTOCOL_PATH);
    REQUIRE(root != NULL);
    const json_t *models = json_object_get(root, "models");
    REQUIRE(json_is_object(models));
    const json_t *limits = json_object_get(models, "limits");
    CHECK_INT(s_int(limits, "inline_max_bytes"), ZFED_MODEL_INLINE_MAX);
    CHECK_INT(s_int(limits, "chunk_min_bytes"), ZFED_CHUNK_MIN);
    CHECK_INT(s_int(limits, "chunk_max_bytes"), ZFED_CHUNK_MAX);
    CHECK_INT(s_int(limits, "chunk_default_bytes"), ZFED_CHUNK_DEFAULT);
    CHECK_INT(s_int(limits, "tensor_name_max_bytes"), ZFED_TENSOR_NAME_MAX);
    CHECK_INT(s_int(limits, "dimensions_max"), ZFED_TENSOR_DIMS_MAX);
    CHECK_INT(s_int(limits, "tensors_max"), ZFED_LAYOUT_TENSORS_MAX);
    CHECK_INT(s_int(limits, "release_ids_max"), ZFED_RELEASE_IDS_MAX);
    CHECK_INT(s_int(limits, "chunk_text_max_bytes"), ZFED_CHUNK_TEXT_MAX);
    CHECK_INT(s_int(limits, "id_bytes"), ZFED_MODEL_ID_SIZE);
    const json_t *kinds = json_object_get(models, "messages");
    const char *names[] = {ZFED_KIND_MODEL, ZFED_KIND_FETCH, ZFED_KIND_CHUNK, ZFED_KIND_RELEASE,
                           ZFED_KIND_RELEASED};
    const size_t elements[] = {8, 4, 6, 3, 3};
    for (size_t index = 0; index < sizeof names / sizeof names[0]; index++) {
        const json_t *kind = NULL;
        size_t at;
        const json_t *message;
        json_array_foreach(kinds, at, message)
        {
            if (strcmp(zfed_test_string(message, "kind", ""), names[index]) == 0)
                kind = message;
        }
        CHECK(kind != NULL);
        if (kind)
            CHECK_INT(json_array_size(json_object_get(kind, "elements")), elements[index]);
    }
    json_decref(root);
}

int main(void)
{
    ZFED_TEST_RUN(test_vectors);
    ZFED_TEST_RUN(test_edges);
    ZFED_TEST_RUN(test_protocol_json);
    ZFED_TEST_END();
}
