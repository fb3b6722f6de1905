/*  zfed_dataset - a labelled image set of the MNIST family: N images of
    28x28 u8 pixels and N labels 0..9 (private header).

    A folder holds one set as the MNIST files name it:
    PREFIX-images-idx3-ubyte and PREFIX-labels-idx1-ubyte, each gzip-compressed
    (".gz", looked for first) or plain, PREFIX "train" for a training set (a
    site's shard is one) or "t10k" for the test set.  Loading checks what the
    trainer relies on, once: 28x28 images, labels 0..9, as many labels as
    images.  The images and labels are the files' own buffers, not copies.

    A set's SHA-256 is the digest of its N x 784 pixel bytes followed by its
    N label bytes, in sample order: the content, whatever the files'
    compression.  zfed-split records each shard's in split.json and a site's
    worker reports its own with every result (schemas/SERVICES.md, mlp), so
    the controller knows which data a result was trained on.
*/
#ifndef ZFED_DATASET_H_INCLUDED
#define ZFED_DATASET_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define ZFED_DATASET_ROWS    28
#define ZFED_DATASET_COLS    28
#define ZFED_DATASET_PIXELS  (ZFED_DATASET_ROWS * ZFED_DATASET_COLS)
#define ZFED_DATASET_CLASSES 10
//  The two sets of a folder.
#define ZFED_DATASET_TRAIN "train"
#define ZFED_DATASET_TEST  "t10k"
//  Where Debian's dataset-fashion-mnist puts them.
#define ZFED_DATASET_FASHION_MNIST "/usr/share/datasets/fashion-mnist"

typedef struct _zfed_dataset_t zfed_dataset_t;

//  Loads the PREFIX set of folder dir.  NULL with "FILE: FIELD: reason"
//  (or "DIR: ..." when a file is missing) in error.
zfed_dataset_t *zfed_dataset_load(const char *dir, const char *prefix, char *error,
                                  size_t error_size);

//  Loads an images file and a labels file.
zfed_dataset_t *zfed_dataset_load_files(const char *images_path, const char *labels_path,
                                        char *error, size_t error_size);

//  A set from memory: count images of ZFED_DATASET_PIXELS bytes and count
//  labels, both malloc'd; the set owns them from now on (also on failure,
//  when it frees them).  NULL when a label is out of range.
zfed_dataset_t *zfed_dataset_new(uint32_t count, uint8_t *images, uint8_t *labels, char *error,
                                 size_t error_size);

void zfed_dataset_destroy(zfed_dataset_t **self_p);

uint32_t zfed_dataset_count(const zfed_dataset_t *self);
//  count x ZFED_DATASET_PIXELS bytes, row-major, and count labels.
const uint8_t *zfed_dataset_images(const zfed_dataset_t *self);
const uint8_t *zfed_dataset_labels(const zfed_dataset_t *self);
//  The files it was loaded from ("" for a set made in memory).
const char *zfed_dataset_images_path(const zfed_dataset_t *self);
const char *zfed_dataset_labels_path(const zfed_dataset_t *self);

//  The set's SHA-256 (above): ZFED_SHA256_SIZE bytes, computed once when
//  the set was made.
const uint8_t *zfed_dataset_sha256(const zfed_dataset_t *self);

//  Samples per class.
void zfed_dataset_histogram(const zfed_dataset_t *self, uint32_t counts[ZFED_DATASET_CLASSES]);

//  Writes the set into dir (which must exist) as PREFIX-images-idx3-ubyte.gz
//  and PREFIX-labels-idx1-ubyte.gz, so the folder loads with
//  zfed_dataset_load.  Returns 0, or -1 with the reason in error.
int zfed_dataset_write(const zfed_dataset_t *self, const char *dir, const char *prefix, char *error,
                       size_t error_size);

#endif
