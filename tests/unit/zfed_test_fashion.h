/*  zfed_test_fashion - Debian's Fashion-MNIST for the unit tests that use
    real data (dataset-fashion-mnist, which scripts/install-deps.sh installs).
*/
#ifndef ZFED_TEST_FASHION_H_INCLUDED
#define ZFED_TEST_FASHION_H_INCLUDED

#include "ml/zfed_dataset.h"
#include "zfed_test.h"

#include <stdbool.h>

//  Loads the training and test sets; false (a failed check, both NULL)
//  when either is missing.
static inline bool zfed_test_fashion_mnist(zfed_dataset_t **train, zfed_dataset_t **test)
{
    char error[512] = "";
    *train = zfed_dataset_load(ZFED_DATASET_FASHION_MNIST, ZFED_DATASET_TRAIN, error, sizeof error);
    *test = *train ? zfed_dataset_load(ZFED_DATASET_FASHION_MNIST, ZFED_DATASET_TEST, error,
                                       sizeof error)
                   : NULL;
    CHECK(*train && *test);
    if (*train && *test)
        return true;
    fprintf(stderr, "  Fashion-MNIST: %s (scripts/install-deps.sh installs it)\n", error);
    zfed_dataset_destroy(train);
    zfed_dataset_destroy(test);
    return false;
}

#endif
