/*  test_safetensors - the safetensors reader and writer.

    Round trips of every dtype through memory and files (whole, and
    streamed in uneven chunks); then hostile files, each refused with a
    message naming the tensor and the field: truncated files, huge or
    lying header lengths, bad JSON, duplicate names, unknown dtypes and
    fields, bad shapes, offsets that overlap, leave gaps, or disagree with
    the shape, trailing bytes, bad metadata.  Files go to a fresh
    temporary folder, removed at the end.
*/
#define _GNU_SOURCE //  memmem
#include "zfed/zfed_safetensors.h"
#include "zfed_test.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_dir[64];

//  A file from header text and data_size bytes of data (value i % 251).
static uint8_t *s_file(const char *json, size_t data_size, size_t *size)
{
    size_t length = strlen(json);
    *size = 8 + length + data_size;
    uint8_t *bytes = malloc(*size);
    for (int i = 0; i < 8; i++)
        bytes[i] = (uint8_t)((uint64_t)length >> (8 * i));
    memcpy(bytes + 8, json, length);
    for (size_t i = 0; i < data_size; i++)
        bytes[8 + length + i] = (uint8_t)(i % 251);
    return bytes;
}

//  Decoding json with data_size bytes fails with exactly expected.
static void s_refused(const char *json, size_t data_size, const char *expected)
{
    size_t size;
    uint8_t *bytes = s_file(json, data_size, &size);
    char error[512] = "";
    json_t *metadata = NULL;
    zfed_model_t *model = zfed_safetensors_decode(bytes, size, &metadata, error, sizeof error);
    CHECK(model == NULL && metadata == NULL);
    if (strcmp(error, expected) != 0)
        fprintf(stderr, "for %s\n", json);
    CHECK_STR(error, expected);
    zfed_model_destroy(&model);
    free(bytes);
}

//  One tensor of each dtype, odd shapes included.
static zfed_model_t *s_every_dtype(void)
{
    zfed_layout_t *layout = zfed_layout_new();
    char error[256], name[32];
    for (int d = 0; d < ZFED_DTYPE_COUNT; d++) {
        snprintf(name, sizeof name, "t%d.%s", d, zfed_dtype_name((zfed_dtype_t)d));
        uint64_t shape[3] = {2, 3, (uint64_t)d + 1};
        CHECK(zfed_layout_add(layout, name, (zfed_dtype_t)d, shape, (size_t)(d % 4), error,
                              sizeof error) == 0);
    }
    CHECK(zfed_layout_add(layout, "empty", ZFED_DTYPE_F32, (uint64_t[]){0, 5}, 2, error,
                          sizeof error) == 0);
    CHECK(zfed_layout_add(layout, "quote\"back\\slash \xc3\xa9", ZFED_DTYPE_U8, (uint64_t[]){3}, 1,
                          error, sizeof error) == 0);
    zfed_model_t *model = zfed_model_new(&layout);
    uint8_t *data = zfed_model_data(model);
    for (uint64_t i = 0; i < zfed_model_nbytes(model); i++)
        data[i] = (uint8_t)(i * 37 + 11);
    return model;
}

static bool s_same_model(const zfed_model_t *a, const zfed_model_t *b)
{
    char diff[256];
    if (!zfed_layout_equal(zfed_model_layout(a), zfed_model_layout(b), "the original", diff,
                           sizeof diff)) {
        fprintf(stderr, "layout: %s\n", diff);
        return false;
    }
    return zfed_model_nbytes(a) == zfed_model_nbytes(b) &&
           memcmp(zfed_model_data(a), zfed_model_data(b), zfed_model_nbytes(a)) == 0;
}

static void test_round_trip(void)
{
    zfed_model_t *model = s_every_dtype();
    json_t *metadata = json_pack("{s:s, s:s}", "format", "pt", "round", "7");
    char error[512];
    size_t size;
    uint8_t *bytes = zfed_safetensors_encode(model, metadata, &size, error, sizeof error);
    CHECK(bytes != NULL);
    uint64_t length = 0;
    for (int i = 7; i >= 0; i--)
        length = (length << 8) | bytes[i];
    CHECK((8 + length) % 8 == 0);
    CHECK(size == 8 + length + zfed_model_nbytes(model));
    CHECK(bytes[8] == '{' && (bytes[8 + length - 1] == ' ' || bytes[8 + length - 1] == '}'));
    //  Metadata first, then the tensors in model order.
    static const char start[] = "{\"__metadata__\":{\"format\":\"pt\",\"round\":\"7\"},\"t0.F64\":";
    CHECK(memcmp(bytes + 8, start, sizeof start - 1) == 0);
    CHECK(memmem(bytes + 8, length,
                 "\"t1.F32\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}",
                 58) != NULL);
    json_t *back_metadata = NULL;
    zfed_model_t *back = zfed_safetensors_decode(bytes, size, &back_metadata, error, sizeof error);
    CHECK(back && s_same_model(back, model));
    CHECK(back_metadata && json_equal(back_metadata, metadata));
    json_decref(back_metadata);
    zfed_model_destroy(&back);
    free(bytes);

    //  Through a file, whole.
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", s_dir);
    CHECK(zfed_safetensors_save(path, model, NULL, error, sizeof error) == 0);
    back = zfed_safetensors_load(path, &back_metadata, error, sizeof error);
    CHECK(back && s_same_model(back, model) && back_metadata == NULL);
    zfed_model_destroy(&back);

    //  Streamed in chunks of 1, 2, 3, ... bytes, then read back in ranges.
    zfed_safetensors_writer_t *writer =
        zfed_safetensors_create(path, zfed_model_layout(model), metadata, error, sizeof error);
    CHECK(writer != NULL);
    const uint8_t *data = zfed_model_data(model);
    uint64_t nbytes = zfed_model_nbytes(model), done = 0;
    for (size_t chunk = 1; done < nbytes; chunk++) {
        size_t take = nbytes - done < chunk ? (size_t)(nbytes - done) : chunk;
        CHECK(zfed_safetensors_write(writer, data + done, take, error, sizeof error) == 0);
        done += take;
    }
    CHECK(zfed_safetensors_written(writer) == nbytes);
    CHECK(zfed_safetensors_write(writer, data, 1, error, sizeof error) == -1);
    CHECK(strstr(error, "1 more bytes after") != NULL);
    CHECK(zfed_safetensors_finish(&writer, error, sizeof error) == 0 && writer == NULL);
    zfed_safetensors_t *file = zfed_safetensors_open(path, error, sizeof error);
    CHECK(file != NULL);
    CHECK(zfed_layout_equal(zfed_safetensors_layout(file), zfed_model_layout(model), NULL, error,
                            sizeof error));
    CHECK(json_equal((json_t *)zfed_safetensors_metadata(file), metadata));
    CHECK(zfed_safetensors_data_offset(file) % 8 == 0);
    uint8_t part[40];
    CHECK(zfed_safetensors_read(file, 13, part, sizeof part, error, sizeof error) == 0);
    CHECK(memcmp(part, data + 13, sizeof part) == 0);
    CHECK(zfed_safetensors_read(file, nbytes - 1, part, 2, error, sizeof error) == -1);
    CHECK(strstr(error, "past the data") != NULL);
    CHECK(zfed_safetensors_read(file, nbytes, part, 0, error, sizeof error) == 0);
    zfed_safetensors_close(&file);
    zfed_safetensors_close(&file);
    CHECK(file == NULL);
    unlink(path);
    json_decref(metadata);
    zfed_model_destroy(&model);
}

static int s_entries(void)
{
    DIR *dir = opendir(s_dir);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)))
        count += entry->d_name[0] != '.';
    closedir(dir);
    return count;
}

static void test_writer_failures(void)
{
    zfed_model_t *model = s_every_dtype();
    char path[128], error[512];
    snprintf(path, sizeof path, "%s/kept.safetensors", s_dir);
    CHECK(zfed_safetensors_save(path, model, NULL, error, sizeof error) == 0);
    //  Finishing short of the data fails, keeps the previous file.
    zfed_safetensors_writer_t *writer =
        zfed_safetensors_create(path, zfed_model_layout(model), NULL, error, sizeof error);
    CHECK(zfed_safetensors_write(writer, "abc", 3, error, sizeof error) == 0);
    CHECK(zfed_safetensors_finish(&writer, error, sizeof error) == -1 && writer == NULL);
    CHECK(strstr(error, "only 3 of the model's") != NULL);
    CHECK(s_entries() == 1);
    zfed_model_t *back = zfed_safetensors_load(path, NULL, error, sizeof error);
    CHECK(back && s_same_model(back, model));
    zfed_model_destroy(&back);
    writer = zfed_safetensors_create(path, zfed_model_layout(model), NULL, error, sizeof error);
    zfed_safetensors_abandon(&writer);
    zfed_safetensors_abandon(&writer);
    CHECK(s_entries() == 1);
    //  Metadata must be strings.
    json_t *bad = json_pack("{s:i}", "epoch", 3);
    CHECK(zfed_safetensors_create(path, zfed_model_layout(model), bad, error, sizeof error) ==
          NULL);
    CHECK(strstr(error, "__metadata__: value of 'epoch' is not a string") != NULL);
    json_decref(bad);
    snprintf(path, sizeof path, "%s/no/folder.safetensors", s_dir);
    CHECK(zfed_safetensors_save(path, model, NULL, error, sizeof error) == -1);
    CHECK(strstr(error, "No such file or directory") != NULL);
    snprintf(path, sizeof path, "%s/kept.safetensors", s_dir);
    unlink(path);
    zfed_model_destroy(&model);
}

static void test_order(void)
{
    //  Header order is not data order: the layout follows the data.
    const char *json = "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                       "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                       "\"y\":{\"dtype\":\"F32\",\"shape\":[1,0],\"data_offsets\":[4,4]},"
                       "\"a\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]}}   ";
    size_t size;
    uint8_t *bytes = s_file(json, 6, &size);
    char error[256];
    zfed_model_t *model = zfed_safetensors_decode(bytes, size, NULL, error, sizeof error);
    CHECK(model != NULL);
    if (model) {
        const zfed_layout_t *layout = zfed_model_layout(model);
        CHECK_INT(zfed_layout_size(layout), 4);
        CHECK_STR(zfed_layout_tensor(layout, 0)->name, "a");
        CHECK_STR(zfed_layout_tensor(layout, 1)->name, "z"); //  ties keep header order
        CHECK_STR(zfed_layout_tensor(layout, 2)->name, "y");
        CHECK_STR(zfed_layout_tensor(layout, 3)->name, "b");
        CHECK(((uint8_t *)zfed_model_tensor_data(model, 3))[1] == 5);
    }
    zfed_model_destroy(&model);
    free(bytes);
    //  An empty model is a valid file.
    bytes = s_file("{}", 0, &size);
    model = zfed_safetensors_decode(bytes, size, NULL, error, sizeof error);
    CHECK(model && zfed_layout_size(zfed_model_layout(model)) == 0);
    zfed_model_destroy(&model);
    free(bytes);
}

#define T(fields) "{\"w\":{" fields "}}"
#define GOOD      "\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]"

static void test_hostile(void)
{
    s_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 15,
              "tensor w: data_offsets [0, 16] run past the end of the data (15 bytes): "
              "truncated file?");
    s_refused(T(GOOD), 17, "data: 17 bytes after the header, the tensors cover 16");
    s_refused("[1,2]", 0, "header: does not start with '{'");
    s_refused(" {}", 0, "header: does not start with '{'");
    s_refused("{\"w\":", 0,
              "header: not valid JSON (line 1 column 5: unexpected token near end of file)");
    s_refused("{\"w\":{" GOOD "},\"w\":{" GOOD "}}", 32,
              "header: not valid JSON (line 1 column 60: duplicate object key near '\"w\"')");
    s_refused(T("\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]"), 2,
              "tensor w: dtype 'BOOL' is not one of F64, F32, F16, BF16, I64, I32, I16, I8, U64, "
              "U32, U16, U8");
    s_refused(T("\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,2]"), 2,
              "tensor w: dtype (not a string) is not one of F64, F32, F16, BF16, I64, I32, I16, "
              "I8, U64, U32, U16, U8");
    s_refused(T("\"dtype\":\"F32\",\"shape\":[2,-2],\"data_offsets\":[0,16]"), 16,
              "tensor w: shape[1] is not a non-negative integer");
    s_refused(T("\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]"), 8,
              "tensor w: shape[0] is not a non-negative integer");
    s_refused(T("\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]"), 8,
              "tensor w: shape is not an array");
    s_refused(T("\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"
                "\"data_offsets\":[0,1]"),
              1, "tensor w: shape has 17 dimensions, at most 16");
    s_refused(T("\"dtype\":\"F32\",\"data_offsets\":[0,8]"), 8, "tensor w: shape is missing");
    s_refused(T("\"shape\":[2],\"data_offsets\":[0,8]"), 8, "tensor w: dtype is missing");
    s_refused(T("\"dtype\":\"F32\",\"shape\":[2]"), 8, "tensor w: data_offsets is missing");
    s_refused(T(GOOD ",\"offset\":3"), 16, "tensor w: unknown field 'offset'");
    s_refused(T("\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16,32]"), 16,
              "tensor w: data_offsets is not [BEGIN, END] (integers)");
    s_refused(T("\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[\"0\",16]"), 16,
              "tensor w: data_offsets is not [BEGIN, END] (integers)");
    s_refused(T("\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,0]"), 16,
              "tensor w: data_offsets [16, 0] end before they begin");
    s_refused(T("\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]"), 12,
              "tensor w: data_offsets [0, 12] hold 12 bytes where dtype F32 and shape need 16");
    s_refused("{\"w\":3}", 0, "tensor w: not an object");
    s_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
              "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}",
              6, "tensor b: data_offsets [2, 6] overlap tensor a's [0, 4]");
    s_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
              "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
              4, "tensor b: data_offsets [0, 4] overlap tensor a's [0, 4]");
    s_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
              "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[5,9]}}",
              9, "tensor b: data_offsets [5, 9] leave a gap of 1 bytes before them");
    s_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[1,5]}}", 5,
              "tensor a: data_offsets [1, 5] leave a gap of 1 bytes before them");
    s_refused("{\"big\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],"
              "\"data_offsets\":[0,0]}}",
              0, "tensor big: shape [4294967296, 4294967296] has more elements than 2^64");
    s_refused("{\"big\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],"
              "\"data_offsets\":[0,0]}}",
              0,
              "header: not valid JSON (line 1 column 50: too big integer near "
              "'99999999999999999999')");
    s_refused("{\"a\\u0001\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
              "tensor 0: name 'a\\x01' holds a control character");
    s_refused("{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
              "tensor 0: name '' is empty");
    s_refused("{\"__metadata__\":{\"a\":1}}", 0, "__metadata__: value of 'a' is not a string");
    s_refused("{\"__metadata__\":[]}", 0, "__metadata__: not an object");
    s_refused("{\"a\\u0000b\":{}}", 0,
              "header: not valid JSON (line 1 column 11: NUL byte in object key not supported "
              "near '\"a\\u0000b\"')");

    //  The length field itself.
    char error[256];
    uint8_t short_file[5] = {0};
    CHECK(zfed_safetensors_decode(short_file, sizeof short_file, NULL, error, sizeof error) ==
          NULL);
    CHECK_STR(error, "file: 5 bytes, shorter than the header length");
    uint8_t huge[16] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'};
    CHECK(zfed_safetensors_decode(huge, sizeof huge, NULL, error, sizeof error) == NULL);
    CHECK_STR(error, "header: length 9223372036854775808, more than 104857600");
    uint8_t lying[16] = {9, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    CHECK(zfed_safetensors_decode(lying, 10, NULL, error, sizeof error) == NULL);
    CHECK_STR(error, "header: length 9 runs past the end (10 bytes)");
    //  Whitespace after the JSON (padding) is fine; anything else is not.
    s_refused("{} x", 0, "header: not valid JSON (line 1 column 4: end of file expected near 'x')");
}

//  The same checks on files, with the path in front; and the tensor limit.
static void test_files(void)
{
    char path[128], error[512];
    snprintf(path, sizeof path, "%s/truncated.safetensors", s_dir);
    size_t size;
    uint8_t *bytes = s_file(T(GOOD), 16, &size);
    FILE *out = fopen(path, "wb");
    fwrite(bytes, 1, size - 3, out);
    fclose(out);
    CHECK(zfed_safetensors_open(path, error, sizeof error) == NULL);
    char expected[256];
    snprintf(expected, sizeof expected,
             "%s: tensor w: data_offsets [0, 16] run past the end of the data (13 bytes): "
             "truncated file?",
             path);
    CHECK_STR(error, expected);
    CHECK(zfed_safetensors_load(path, NULL, error, sizeof error) == NULL);
    unlink(path);
    free(bytes);
    CHECK(zfed_safetensors_open(s_dir, error, sizeof error) == NULL);
    CHECK(strstr(error, "not a regular file") != NULL);
    CHECK(zfed_safetensors_open("/nonexistent/x.safetensors", error, sizeof error) == NULL);
    CHECK(strstr(error, "No such file or directory") != NULL);

    //  100,000 tensors are fine, one more is not.
    size_t capacity = 120u << 20, used = 0;
    char *json = malloc(capacity);
    used += (size_t)sprintf(json, "{");
    for (int i = 0; i <= ZFED_LAYOUT_TENSORS_MAX; i++)
        used += (size_t)sprintf(
            json + used, "%s\"t%d\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
            i ? "," : "", i, i, i + 1);
    sprintf(json + used, "}");
    s_refused(json, ZFED_LAYOUT_TENSORS_MAX + 1, "header: 100001 tensors, more than 100000");
    //  Without the last tensor it decodes.
    char *last = strstr(json, ",\"t100000\"");
    strcpy(last, "}");
    bytes = s_file(json, ZFED_LAYOUT_TENSORS_MAX, &size);
    zfed_model_t *model = zfed_safetensors_decode(bytes, size, NULL, error, sizeof error);
    CHECK(model && zfed_layout_size(zfed_model_layout(model)) == ZFED_LAYOUT_TENSORS_MAX);
    zfed_model_destroy(&model);
    free(bytes);
    free(json);
}

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/zfed-test-safetensors-XXXXXX");
    if (!mkdtemp(s_dir))
        return 1;
    test_round_trip();
    test_writer_failures();
    test_order();
    test_hostile();
    test_files();
    rmdir(s_dir);
    ZFED_TEST_END();
}
