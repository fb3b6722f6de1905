/*  test_split - who gets which samples (zfed_split): every method's
    split covers its samples once, is the same for the same seed and not for
    another, and has the shape its method promises; bad methods and
    impossible splits are refused naming the field.  (tests/integration/
    test_split.py runs zfed-split itself on Fashion-MNIST.)
*/
#include "ml/zfed_split.h"
#include "zfed_test.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_SIZE 512
#define CLASSES    10
#define COUNT      6000 //  600 per class, labels i % 10

static uint8_t s_labels[COUNT];

typedef struct {
    uint32_t members[COUNT];
    uint32_t offsets[ZFED_SPLIT_MAX_SITES + 1];
    uint32_t attempts;
} s_split_t;

static int s_assign(const char *method, uint32_t samples, uint32_t sites, uint64_t seed,
                    s_split_t *split, char *error)
{
    zfed_split_spec_t spec;
    if (zfed_split_parse(&spec, method, error, ERROR_SIZE) != 0)
        return -1;
    memset(split, 0, sizeof *split);
    return zfed_split_assign(&spec, s_labels, COUNT, CLASSES, samples, sites, seed, split->members,
                             split->offsets, &split->attempts, error, ERROR_SIZE);
}

//  Each site non-empty, its samples in index order, no sample twice, and
//  (without a subset) every sample somewhere.
static bool s_is_partition(const s_split_t *split, uint32_t sites, uint32_t expected)
{
    static bool seen[COUNT];
    memset(seen, 0, sizeof seen);
    if (split->offsets[0] != 0 || split->offsets[sites] != expected)
        return false;
    for (uint32_t s = 0; s < sites; s++) {
        if (split->offsets[s + 1] <= split->offsets[s])
            return false;
        for (uint32_t i = split->offsets[s]; i < split->offsets[s + 1]; i++) {
            uint32_t sample = split->members[i];
            if (sample >= COUNT || seen[sample] ||
                (i > split->offsets[s] && sample <= split->members[i - 1]))
                return false;
            seen[sample] = true;
        }
    }
    return true;
}

static uint32_t s_classes_of(const s_split_t *split, uint32_t site)
{
    bool present[CLASSES] = {false};
    uint32_t count = 0;
    for (uint32_t i = split->offsets[site]; i < split->offsets[site + 1]; i++)
        if (!present[s_labels[split->members[i]]]) {
            present[s_labels[split->members[i]]] = true;
            count++;
        }
    return count;
}

static void s_test_parse(void)
{
    char error[ERROR_SIZE] = "";
    zfed_split_spec_t spec;
    CHECK(zfed_split_parse(&spec, "iid", error, sizeof error) == 0 &&
          spec.method == ZFED_SPLIT_IID);
    CHECK(zfed_split_parse(&spec, "labels:2", error, sizeof error) == 0 &&
          spec.method == ZFED_SPLIT_LABELS && spec.classes_per_site == 2);
    CHECK(zfed_split_parse(&spec, "dirichlet:0.5", error, sizeof error) == 0 &&
          spec.method == ZFED_SPLIT_DIRICHLET && spec.alpha == 0.5);
    CHECK_STR(spec.text, "dirichlet:0.5");
    const char *bad[] = {"",
                         "IID",
                         "labels",
                         "labels:",
                         "labels:0",
                         "labels:101",
                         "labels:2x",
                         "dirichlet:",
                         "dirichlet:0",
                         "dirichlet:-1",
                         "dirichlet:inf",
                         "dirichlet:nan",
                         "dirichlet:1e9",
                         "shards:2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = zfed_split_parse(&spec, bad[i], error, sizeof error);
        CHECK(rc == -1 && strncmp(error, "method: ", 8) == 0);
    }
}

static void s_test_methods(void)
{
    char error[ERROR_SIZE] = "";
    static s_split_t one, two;

    //  iid: equal parts (the first n mod S one larger), classes mixed.
    CHECK(s_assign("iid", 0, 7, 1, &one, error) == 0);
    CHECK(s_is_partition(&one, 7, COUNT));
    for (uint32_t s = 0; s < 7; s++)
        CHECK_INT(one.offsets[s + 1] - one.offsets[s], COUNT / 7 + (s < COUNT % 7));
    CHECK_INT(s_classes_of(&one, 0), CLASSES);
    CHECK(s_assign("iid", 0, 7, 1, &two, error) == 0);
    CHECK(memcmp(&one, &two, sizeof one) == 0);
    CHECK(s_assign("iid", 0, 7, 2, &two, error) == 0);
    CHECK(memcmp(one.members, two.members, sizeof one.members) != 0);

    //  labels:2 over 5 sites: 10 shards of 600 = one class each.
    CHECK(s_assign("labels:2", 0, 5, 3, &one, error) == 0);
    CHECK(s_is_partition(&one, 5, COUNT));
    for (uint32_t s = 0; s < 5; s++) {
        CHECK_INT(one.offsets[s + 1] - one.offsets[s], 1200);
        CHECK_INT(s_classes_of(&one, s), 2);
    }
    CHECK(s_assign("labels:2", 0, 5, 4, &two, error) == 0);
    CHECK(memcmp(one.members, two.members, sizeof one.members) != 0);
    //  labels:1 over 10 sites: one class per site.
    CHECK(s_assign("labels:1", 0, 10, 3, &one, error) == 0);
    for (uint32_t s = 0; s < 10; s++)
        CHECK_INT(s_classes_of(&one, s), 1);

    //  dirichlet: sizes vary; a small alpha concentrates classes; a large
    //  one is close to iid.
    CHECK(s_assign("dirichlet:0.1", 0, 5, 5, &one, error) == 0);
    CHECK(s_is_partition(&one, 5, COUNT));
    CHECK(one.attempts >= 1);
    uint32_t smallest = COUNT, largest = 0, fewest_classes = CLASSES;
    for (uint32_t s = 0; s < 5; s++) {
        uint32_t size = one.offsets[s + 1] - one.offsets[s];
        smallest = size < smallest ? size : smallest;
        largest = size > largest ? size : largest;
        uint32_t classes = s_classes_of(&one, s);
        fewest_classes = classes < fewest_classes ? classes : fewest_classes;
    }
    CHECK(largest > 2 * smallest);
    CHECK(fewest_classes < CLASSES);
    CHECK(s_assign("dirichlet:1000", 0, 5, 5, &two, error) == 0);
    CHECK(s_is_partition(&two, 5, COUNT));
    for (uint32_t s = 0; s < 5; s++) {
        int size = (int)(two.offsets[s + 1] - two.offsets[s]);
        CHECK(abs(size - 1200) < 120);
        CHECK_INT(s_classes_of(&two, s), CLASSES);
    }
    CHECK(s_assign("dirichlet:0.1", 0, 5, 5, &two, error) == 0);
    CHECK(memcmp(&one, &two, sizeof one) == 0);

    //  A subset: only that many, each once.
    CHECK(s_assign("iid", 1000, 2, 6, &one, error) == 0);
    CHECK(s_is_partition(&one, 2, 1000));
    CHECK_INT(one.offsets[1], 500);
    CHECK(s_assign("labels:2", 1000, 2, 6, &one, error) == 0);
    CHECK(s_is_partition(&one, 2, 1000));
    CHECK(s_assign("dirichlet:0.5", 1000, 3, 6, &one, error) == 0);
    CHECK(s_is_partition(&one, 3, 1000));
}

static void s_test_refusals(void)
{
    char error[ERROR_SIZE] = "";
    static s_split_t split;
    CHECK(s_assign("iid", 0, 0, 1, &split, error) == -1 && strstr(error, "sites: 0") == error);
    CHECK(s_assign("iid", 0, ZFED_SPLIT_MAX_SITES + 1, 1, &split, error) == -1 &&
          strstr(error, "sites: 1001") == error);
    CHECK(s_assign("iid", 5, 6, 1, &split, error) == -1 &&
          strstr(error, "sites: 6 sites for 5 samples") == error);
    CHECK(s_assign("iid", COUNT + 1, 2, 1, &split, error) == -1 &&
          strstr(error, "samples: 6001 asked for") == error);
    CHECK(s_assign("labels:100", 0, 100, 1, &split, error) == -1 &&
          strstr(error, "method: labels:100 over 100 sites needs 10000 shards") == error);
    //  Ten classes at alpha 0.001 cannot feed 50 sites.
    CHECK(s_assign("dirichlet:0.001", 0, 50, 1, &split, error) == -1 &&
          strstr(error, "method: dirichlet:0.001 left a site without samples in 100 draws") ==
              error);
}

int main(void)
{
    for (uint32_t i = 0; i < COUNT; i++)
        s_labels[i] = (uint8_t)(i % CLASSES);
    s_test_parse();
    s_test_methods();
    s_test_refusals();
    ZFED_TEST_END();
}
