/*  test_idx - IDX files through zlib (zfed_idx) and the image sets built on
    them (zfed_dataset): round trips, then hostile files, each refused with
    an error that names the file and the field.

    Files live in a fresh temporary directory (mkdtemp), removed at the end.
    The last test loads Debian's Fashion-MNIST (dataset-fashion-mnist, which
    scripts/install-deps.sh installs).
*/
#include "ml/zfed_dataset.h"
#include "ml/zfed_idx.h"
#include "zfed/zfed_util.h"
#include "zfed_test.h"
#include "zfed_test_fashion.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define ERROR_SIZE 512
#define PIXELS     ZFED_DATASET_PIXELS

static char s_dir[64];

static const char *s_path(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    return path;
}

//  A big-endian IDX header for u8 data: magic then dims.
static size_t s_header(uint8_t *out, uint8_t type, uint32_t ndims, const uint32_t *dims)
{
    out[0] = 0;
    out[1] = 0;
    out[2] = type;
    out[3] = (uint8_t)ndims;
    for (uint32_t i = 0; i < ndims; i++) {
        out[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        out[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        out[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        out[7 + 4 * i] = (uint8_t)dims[i];
    }
    return 4 + 4 * (size_t)ndims;
}

//  Writes a plain (uncompressed) file of header + payload bytes.
static void s_write_plain(const char *name, const uint8_t *bytes, size_t size)
{
    CHECK(zfed_write_file_durable(s_path(name), bytes, size) == 0);
}

//  The file's bytes, malloc'd.
static uint8_t *s_slurp(const char *name, size_t *size)
{
    return (uint8_t *)zfed_read_file(s_path(name), 1u << 30, size);
}

//  True when reading name (ndims) fails with an error holding both the
//  file's path and want.
static bool s_refused(const char *name, uint32_t ndims, const char *want)
{
    char error[ERROR_SIZE] = "";
    zfed_idx_t *idx = zfed_idx_read(s_path(name), ndims, error, sizeof error);
    bool ok = !idx && strstr(error, s_path(name)) && strstr(error, want);
    if (!ok)
        fprintf(stderr, "  %s: expected an error with '%s', got '%s'\n", name, want, error);
    zfed_idx_destroy(&idx);
    return ok;
}

static void s_test_round_trip(void)
{
    char error[ERROR_SIZE];
    uint32_t dims[3] = {3, 2, 5};
    uint8_t data[30];
    for (int i = 0; i < 30; i++)
        data[i] = (uint8_t)(i * 7);
    CHECK(zfed_idx_write(s_path("a.gz"), 3, dims, data, error, sizeof error) == 0);
    zfed_idx_t *idx = zfed_idx_read(s_path("a.gz"), 3, error, sizeof error);
    CHECK(idx != NULL);
    if (idx) {
        CHECK_INT(zfed_idx_ndims(idx), 3);
        CHECK_INT(zfed_idx_count(idx), 3);
        CHECK_INT(zfed_idx_dim(idx, 1), 2);
        CHECK_INT(zfed_idx_dim(idx, 2), 5);
        CHECK_INT(zfed_idx_dim(idx, 3), 0);
        CHECK_INT(zfed_idx_item_size(idx), 10);
        CHECK_INT(zfed_idx_size(idx), 30);
        CHECK(memcmp(zfed_idx_data(idx), data, 30) == 0);
    }
    zfed_idx_destroy(&idx);
    zfed_idx_destroy(&idx); //  idempotent
    //  It is gzip, and the same data gives the same bytes.
    size_t size_a, size_b;
    uint8_t *a = s_slurp("a.gz", &size_a);
    CHECK(a && size_a > 2 && a[0] == 0x1f && a[1] == 0x8b);
    CHECK(zfed_idx_write(s_path("b.gz"), 3, dims, data, error, sizeof error) == 0);
    uint8_t *b = s_slurp("b.gz", &size_b);
    CHECK(a && b && size_a == size_b && memcmp(a, b, size_a) == 0);
    free(a);
    free(b);

    //  A plain file reads the same; so does an empty set.
    uint8_t plain[64];
    size_t header = s_header(plain, ZFED_IDX_TYPE_U8, 3, dims);
    memcpy(plain + header, data, 30);
    s_write_plain("plain", plain, header + 30);
    idx = zfed_idx_read(s_path("plain"), 3, error, sizeof error);
    CHECK(idx && zfed_idx_count(idx) == 3 && memcmp(zfed_idx_data(idx), data, 30) == 0);
    zfed_idx_destroy(&idx);
    uint32_t none = 0;
    CHECK(zfed_idx_write(s_path("empty.gz"), 1, &none, data, error, sizeof error) == 0);
    idx = zfed_idx_read(s_path("empty.gz"), 1, error, sizeof error);
    CHECK(idx && zfed_idx_count(idx) == 0 && zfed_idx_size(idx) == 0);
    zfed_idx_destroy(&idx);
}

static void s_test_hostile(void)
{
    uint8_t bytes[256];
    uint32_t labels_dims[1] = {10};
    uint32_t image_dims[3] = {2, 28, 28};
    memset(bytes, 7, sizeof bytes);

    //  Not there; not IDX; wrong type; wrong dimension count.
    CHECK(s_refused("missing", 1, "No such file"));
    s_write_plain("short", (const uint8_t *)"\0\0", 2);
    CHECK(s_refused("short", 1, "magic: truncated"));
    s_write_plain("text", (const uint8_t *)"hello world, not idx", 20);
    CHECK(s_refused("text", 1, "magic: 0x68656c6c, expected 0x00000801"));
    size_t header = s_header(bytes, 0x0d, 1, labels_dims); //  float32 data
    s_write_plain("float", bytes, header + 40);
    CHECK(s_refused("float", 1, "magic: 0x00000d01"));
    header = s_header(bytes, ZFED_IDX_TYPE_U8, 1, labels_dims);
    s_write_plain("labels", bytes, header + 10);
    CHECK(s_refused("labels", 3, "magic: 0x00000801, expected 0x00000803"));

    //  Header fields out of bounds.
    uint32_t too_many[1] = {ZFED_IDX_MAX_ITEMS + 1};
    header = s_header(bytes, ZFED_IDX_TYPE_U8, 1, too_many);
    s_write_plain("items", bytes, header);
    CHECK(s_refused("items", 1, "dim 0 (items): 10000001, at most 10000000"));
    uint32_t zero_rows[3] = {2, 0, 28};
    header = s_header(bytes, ZFED_IDX_TYPE_U8, 3, zero_rows);
    s_write_plain("rows", bytes, header);
    CHECK(s_refused("rows", 3, "dim 1: 0, expected 1 to 4096"));
    uint32_t huge[3] = {ZFED_IDX_MAX_ITEMS, 4096, 4096};
    header = s_header(bytes, ZFED_IDX_TYPE_U8, 3, huge);
    s_write_plain("huge", bytes, header);
    CHECK(s_refused("huge", 3, "dims: 167772160000000 bytes of data, at most 2147483648"));
    uint8_t cut_dims[6] = {0, 0, 8, 3, 0, 0};
    s_write_plain("dims", cut_dims, sizeof cut_dims);
    CHECK(s_refused("dims", 3, "dims: truncated"));

    //  A header that promises 1.5 GB over 16 bytes of file: refused as
    //  truncated, after reading what is there (not after allocating 1.5 GB).
    uint32_t promise[3] = {2000000, 28, 28};
    header = s_header(bytes, ZFED_IDX_TYPE_U8, 3, promise);
    s_write_plain("promise", bytes, header);
    CHECK(s_refused("promise", 3, "data: truncated (header promises 1568000000 bytes)"));

    //  Fewer or more bytes than the dims say.
    header = s_header(bytes, ZFED_IDX_TYPE_U8, 3, image_dims);
    s_write_plain("few", bytes, header + 100);
    CHECK(s_refused("few", 3, "data: truncated"));
    header = s_header(bytes, ZFED_IDX_TYPE_U8, 1, labels_dims);
    s_write_plain("more", bytes, header + 11);
    CHECK(s_refused("more", 1, "data: bytes after the items the header counts"));
}

static void s_test_hostile_gzip(void)
{
    char error[ERROR_SIZE];
    uint32_t dims[3] = {50, 28, 28};
    size_t size = 50 * PIXELS;
    uint8_t *pixels = malloc(size);
    for (size_t i = 0; i < size; i++)
        pixels[i] = (uint8_t)((i * 2654435761u) >> 13); //  poorly compressible
    CHECK(zfed_idx_write(s_path("good.gz"), 3, dims, pixels, error, sizeof error) == 0);
    size_t length;
    uint8_t *gz = s_slurp("good.gz", &length);
    CHECK(gz && length > 100);

    //  Cut short: in the compressed data, and inside the 8-byte trailer.
    s_write_plain("cut.gz", gz, length / 2);
    CHECK(s_refused("cut.gz", 3, "gzip: unexpected end of file"));
    s_write_plain("trailer.gz", gz, length - 3);
    CHECK(s_refused("trailer.gz", 3, "gzip: unexpected end of file"));
    //  A flipped bit in the payload: the CRC (or the inflater) catches it.
    gz[length / 2] ^= 0x10;
    s_write_plain("flipped.gz", gz, length);
    char flipped_error[ERROR_SIZE] = "";
    zfed_idx_t *idx = zfed_idx_read(s_path("flipped.gz"), 3, flipped_error, sizeof flipped_error);
    CHECK(idx == NULL);
    CHECK(strstr(flipped_error, s_path("flipped.gz")) && strstr(flipped_error, ": gzip: "));
    gz[length / 2] ^= 0x10;
    //  A wrong stored CRC.
    gz[length - 8] ^= 0xff;
    s_write_plain("crc.gz", gz, length);
    CHECK(s_refused("crc.gz", 3, "gzip: incorrect data check"));
    zfed_idx_destroy(&idx);
    free(gz);
    free(pixels);
}

//  A dataset folder written from memory: count images, labels from label().
static void s_write_set(const char *dir, uint32_t count, uint8_t bad_label)
{
    char error[ERROR_SIZE];
    uint8_t *images = malloc((size_t)count * PIXELS);
    uint8_t *labels = malloc(count);
    for (uint32_t i = 0; i < count; i++) {
        memset(images + (size_t)i * PIXELS, (int)i, PIXELS);
        labels[i] = (uint8_t)(i % ZFED_DATASET_CLASSES);
    }
    if (bad_label) {
        uint32_t dims[1] = {count};
        labels[count - 1] = bad_label;
        char path[256];
        snprintf(path, sizeof path, "%s/%s/train-labels-idx1-ubyte.gz", s_dir, dir);
        CHECK(zfed_idx_write(path, 1, dims, labels, error, sizeof error) == 0);
        uint32_t image_dims[3] = {count, 28, 28};
        snprintf(path, sizeof path, "%s/%s/train-images-idx3-ubyte.gz", s_dir, dir);
        CHECK(zfed_idx_write(path, 3, image_dims, images, error, sizeof error) == 0);
        free(images);
        free(labels);
        return;
    }
    zfed_dataset_t *set = zfed_dataset_new(count, images, labels, error, sizeof error);
    CHECK(set != NULL);
    CHECK(set &&
          zfed_dataset_write(set, s_path(dir), ZFED_DATASET_TRAIN, error, sizeof error) == 0);
    zfed_dataset_destroy(&set);
}

static void s_test_dataset(void)
{
    char error[ERROR_SIZE] = "";
    CHECK(zfed_mkdir_p(s_path("set")) == 0);
    s_write_set("set", 25, 0);
    zfed_dataset_t *set = zfed_dataset_load(s_path("set"), ZFED_DATASET_TRAIN, error, sizeof error);
    CHECK(set != NULL);
    if (set) {
        CHECK_INT(zfed_dataset_count(set), 25);
        CHECK_INT(zfed_dataset_images(set)[24 * PIXELS + 5], 24);
        CHECK_INT(zfed_dataset_labels(set)[13], 3);
        uint32_t histogram[ZFED_DATASET_CLASSES];
        zfed_dataset_histogram(set, histogram);
        CHECK_INT(histogram[0], 3);
        CHECK_INT(histogram[9], 2);
        CHECK(strstr(zfed_dataset_images_path(set), "set/train-images-idx3-ubyte.gz"));
    }
    zfed_dataset_destroy(&set);

    //  No such set in the folder.
    set = zfed_dataset_load(s_path("set"), ZFED_DATASET_TEST, error, sizeof error);
    CHECK(!set && strstr(error, "t10k-images-idx3-ubyte"));

    //  Images and labels that disagree on the count.
    CHECK(zfed_mkdir_p(s_path("mismatch")) == 0);
    s_write_set("mismatch", 12, 0);
    uint8_t labels[11] = {0};
    uint32_t dims[1] = {11};
    char labels_path[256];
    snprintf(labels_path, sizeof labels_path, "%s", s_path("mismatch/train-labels-idx1-ubyte.gz"));
    CHECK(zfed_idx_write(labels_path, 1, dims, labels, error, sizeof error) == 0);
    set = zfed_dataset_load(s_path("mismatch"), ZFED_DATASET_TRAIN, error, sizeof error);
    CHECK(!set && strstr(error, labels_path) && strstr(error, "dim 0 (items): 11 labels, but ") &&
          strstr(error, "has 12 images"));

    //  A label past 9.
    CHECK(zfed_mkdir_p(s_path("label")) == 0);
    s_write_set("label", 12, 10);
    set = zfed_dataset_load(s_path("label"), ZFED_DATASET_TRAIN, error, sizeof error);
    CHECK(!set && strstr(error, "train-labels-idx1-ubyte.gz: data: label 10 at item 11"));

    //  Images that are not 28x28 (plain files this time).
    CHECK(zfed_mkdir_p(s_path("shape")) == 0);
    uint8_t bytes[64 + 2 * 32 * 32] = {0};
    uint32_t image_dims[3] = {2, 32, 32};
    size_t header = s_header(bytes, ZFED_IDX_TYPE_U8, 3, image_dims);
    CHECK(zfed_write_file_durable(s_path("shape/train-images-idx3-ubyte"), bytes,
                                  header + 2 * 32 * 32) == 0);
    dims[0] = 2;
    header = s_header(bytes, ZFED_IDX_TYPE_U8, 1, dims);
    CHECK(zfed_write_file_durable(s_path("shape/train-labels-idx1-ubyte"), bytes, header + 2) == 0);
    set = zfed_dataset_load(s_path("shape"), ZFED_DATASET_TRAIN, error, sizeof error);
    CHECK(!set && strstr(error, "shape/train-images-idx3-ubyte: dims: 32x32 images, expected "
                                "28x28"));

    //  From memory, a label out of range frees what it was given.
    uint8_t *images = calloc(2, PIXELS);
    uint8_t *bad = calloc(2, 1);
    bad[1] = 200;
    set = zfed_dataset_new(2, images, bad, error, sizeof error);
    CHECK(!set && strstr(error, "labels: data: label 200 at item 1"));
}

static void s_test_fashion_mnist(void)
{
    zfed_dataset_t *train, *test;
    if (!zfed_test_fashion_mnist(&train, &test))
        return;
    CHECK(train && zfed_dataset_count(train) == 60000);
    CHECK(test && zfed_dataset_count(test) == 10000);
    if (train) {
        uint32_t histogram[ZFED_DATASET_CLASSES];
        zfed_dataset_histogram(train, histogram);
        for (int c = 0; c < ZFED_DATASET_CLASSES; c++)
            CHECK_INT(histogram[c], 6000);
        //  The first training image is an ankle boot (9), the first test
        //  image too.
        CHECK_INT(zfed_dataset_labels(train)[0], 9);
    }
    if (test)
        CHECK_INT(zfed_dataset_labels(test)[0], 9);
    zfed_dataset_destroy(&train);
    zfed_dataset_destroy(&test);
}

static void s_remove_tree(const char *path)
{
    DIR *dir = opendir(path);
    if (!dir) {
        unlink(path);
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(dir)))
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
            char child[512];
            snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
            s_remove_tree(child);
        }
    closedir(dir);
    rmdir(path);
}

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/zfed-test-idx-XXXXXX");
    if (!mkdtemp(s_dir)) {
        perror("mkdtemp");
        return 1;
    }
    s_test_round_trip();
    s_test_hostile();
    s_test_hostile_gzip();
    s_test_dataset();
    s_test_fashion_mnist();
    s_remove_tree(s_dir);
    ZFED_TEST_END();
}
