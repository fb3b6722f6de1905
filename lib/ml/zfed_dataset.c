/*  zfed_dataset - MNIST-family image sets on top of zfed_idx.  */
#include "ml/zfed_dataset.h"
#include "ml/zfed_idx.h"
#include "ml/zfed_ml_error.h"
#include "zfed/zfed_sha256.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IMAGES_DIMS 3
#define LABELS_DIMS 1
#define IMAGES_NAME "%s/%s-images-idx3-ubyte"
#define LABELS_NAME "%s/%s-labels-idx1-ubyte"
#define GZIP_SUFFIX ".gz"

struct _zfed_dataset_t {
    zfed_idx_t *images;
    zfed_idx_t *labels;
    char images_path[PATH_MAX];
    char labels_path[PATH_MAX];
    uint8_t sha256[ZFED_SHA256_SIZE];
};

//  Finds DIR/NAME.gz or DIR/NAME (in that order) into path.
static int s_find(const char *format, const char *dir, const char *prefix, char *path,
                  size_t path_size, char *error, size_t error_size)
{
    char base[PATH_MAX];
    if (snprintf(base, sizeof base, format, dir, prefix) >= (int)sizeof base ||
        snprintf(path, path_size, "%s" GZIP_SUFFIX, base) >= (int)path_size) {
        zfed_ml_error(error, error_size, "%s: path too long", dir);
        return -1;
    }
    if (access(path, F_OK) == 0)
        return 0;
    snprintf(path, path_size, "%s", base);
    if (access(path, F_OK) == 0)
        return 0;
    zfed_ml_error(error, error_size, "%s: neither %s" GZIP_SUFFIX " nor %s: %s", dir, base, base,
                  strerror(errno));
    return -1;
}

//  Checks what the trainer relies on; takes ownership of both files.
static zfed_dataset_t *s_new(zfed_idx_t *images, zfed_idx_t *labels, const char *images_path,
                             const char *labels_path, char *error, size_t error_size)
{
    zfed_dataset_t *self = calloc(1, sizeof *self);
    if (!self) {
        zfed_ml_error(error, error_size, "out of memory");
        zfed_idx_destroy(&images);
        zfed_idx_destroy(&labels);
        return NULL;
    }
    self->images = images;
    self->labels = labels;
    snprintf(self->images_path, sizeof self->images_path, "%s", images_path);
    snprintf(self->labels_path, sizeof self->labels_path, "%s", labels_path);
    const char *shown_images = *images_path ? images_path : "images";
    const char *shown_labels = *labels_path ? labels_path : "labels";
    if (zfed_idx_dim(images, 1) != ZFED_DATASET_ROWS ||
        zfed_idx_dim(images, 2) != ZFED_DATASET_COLS) {
        zfed_ml_error(error, error_size, "%s: dims: %ux%u images, expected %dx%d", shown_images,
                      zfed_idx_dim(images, 1), zfed_idx_dim(images, 2), ZFED_DATASET_ROWS,
                      ZFED_DATASET_COLS);
        goto err;
    }
    if (zfed_idx_count(images) != zfed_idx_count(labels)) {
        zfed_ml_error(error, error_size, "%s: dim 0 (items): %u labels, but %s has %u images",
                      shown_labels, zfed_idx_count(labels), shown_images, zfed_idx_count(images));
        goto err;
    }
    const uint8_t *label = zfed_idx_data(labels);
    for (uint32_t i = 0; i < zfed_idx_count(labels); i++)
        if (label[i] >= ZFED_DATASET_CLASSES) {
            zfed_ml_error(error, error_size, "%s: data: label %u at item %u, expected 0 to %d",
                          shown_labels, label[i], i, ZFED_DATASET_CLASSES - 1);
            goto err;
        }
    //  The content's digest: pixels, then labels.
    uint32_t count = zfed_idx_count(labels);
    zfed_sha256_t *hash = zfed_sha256_new();
    bool hashed =
        hash &&
        zfed_sha256_update(hash, zfed_idx_data(images), (size_t)count * ZFED_DATASET_PIXELS) == 0 &&
        zfed_sha256_update(hash, label, count) == 0 && zfed_sha256_final(hash, self->sha256) == 0;
    zfed_sha256_destroy(&hash);
    if (!hashed) {
        zfed_ml_error(error, error_size, "out of memory hashing the set");
        goto err;
    }
    return self;

err:
    zfed_dataset_destroy(&self);
    return NULL;
}

zfed_dataset_t *zfed_dataset_load_files(const char *images_path, const char *labels_path,
                                        char *error, size_t error_size)
{
    zfed_idx_t *images = zfed_idx_read(images_path, IMAGES_DIMS, error, error_size);
    if (!images)
        return NULL;
    zfed_idx_t *labels = zfed_idx_read(labels_path, LABELS_DIMS, error, error_size);
    if (!labels) {
        zfed_idx_destroy(&images);
        return NULL;
    }
    return s_new(images, labels, images_path, labels_path, error, error_size);
}

zfed_dataset_t *zfed_dataset_load(const char *dir, const char *prefix, char *error,
                                  size_t error_size)
{
    char images_path[PATH_MAX], labels_path[PATH_MAX];
    if (s_find(IMAGES_NAME, dir, prefix, images_path, sizeof images_path, error, error_size) != 0 ||
        s_find(LABELS_NAME, dir, prefix, labels_path, sizeof labels_path, error, error_size) != 0)
        return NULL;
    return zfed_dataset_load_files(images_path, labels_path, error, error_size);
}

zfed_dataset_t *zfed_dataset_new(uint32_t count, uint8_t *images, uint8_t *labels, char *error,
                                 size_t error_size)
{
    uint32_t image_dims[IMAGES_DIMS] = {count, ZFED_DATASET_ROWS, ZFED_DATASET_COLS};
    zfed_idx_t *image_set = zfed_idx_new(IMAGES_DIMS, image_dims, images, error, error_size);
    if (!image_set) {
        free(images);
        free(labels);
        return NULL;
    }
    zfed_idx_t *label_set = zfed_idx_new(LABELS_DIMS, &count, labels, error, error_size);
    if (!label_set) {
        zfed_idx_destroy(&image_set);
        free(labels);
        return NULL;
    }
    return s_new(image_set, label_set, "", "", error, error_size);
}

void zfed_dataset_destroy(zfed_dataset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_idx_destroy(&(*self_p)->images);
    zfed_idx_destroy(&(*self_p)->labels);
    free(*self_p);
    *self_p = NULL;
}

uint32_t zfed_dataset_count(const zfed_dataset_t *self)
{
    return zfed_idx_count(self->labels);
}

const uint8_t *zfed_dataset_images(const zfed_dataset_t *self)
{
    return zfed_idx_data(self->images);
}

const uint8_t *zfed_dataset_labels(const zfed_dataset_t *self)
{
    return zfed_idx_data(self->labels);
}

const char *zfed_dataset_images_path(const zfed_dataset_t *self)
{
    return self->images_path;
}

const char *zfed_dataset_labels_path(const zfed_dataset_t *self)
{
    return self->labels_path;
}

const uint8_t *zfed_dataset_sha256(const zfed_dataset_t *self)
{
    return self->sha256;
}

void zfed_dataset_histogram(const zfed_dataset_t *self, uint32_t counts[ZFED_DATASET_CLASSES])
{
    memset(counts, 0, ZFED_DATASET_CLASSES * sizeof *counts);
    const uint8_t *label = zfed_dataset_labels(self);
    for (uint32_t i = 0; i < zfed_dataset_count(self); i++)
        counts[label[i]]++;
}

int zfed_dataset_write(const zfed_dataset_t *self, const char *dir, const char *prefix, char *error,
                       size_t error_size)
{
    char path[PATH_MAX];
    uint32_t count = zfed_dataset_count(self);
    uint32_t image_dims[IMAGES_DIMS] = {count, ZFED_DATASET_ROWS, ZFED_DATASET_COLS};
    if (snprintf(path, sizeof path, IMAGES_NAME GZIP_SUFFIX, dir, prefix) >= (int)sizeof path) {
        zfed_ml_error(error, error_size, "%s: path too long", dir);
        return -1;
    }
    if (zfed_idx_write(path, IMAGES_DIMS, image_dims, zfed_dataset_images(self), error,
                       error_size) != 0)
        return -1;
    snprintf(path, sizeof path, LABELS_NAME GZIP_SUFFIX, dir, prefix);
    return zfed_idx_write(path, LABELS_DIMS, &count, zfed_dataset_labels(self), error, error_size);
}
