/*  test_mlp - zfed's seeded generator (zfed_rng) and its MLP (zfed_mlp):
    layout and validation, the gradient against finite differences, the SGD
    step against torch.optim.SGD's formulas, determinism, and a small real
    training on Fashion-MNIST (Debian's dataset-fashion-mnist) that must
    reach well above chance.
*/
#include "ml/zfed_dataset.h"
#include "ml/zfed_mlp.h"
#include "ml/zfed_rng.h"
#include "zfed_test.h"
#include "zfed_test_fashion.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_SIZE 512
#define PIXELS     ZFED_MLP_INPUTS

//  ---------------------------------------------------------------------
//  zfed_rng

static void s_test_rng(void)
{
    //  Reference values from an independent implementation of splitmix64
    //  and xoshiro256** (Python big integers).
    zfed_rng_t rng;
    zfed_rng_seed(&rng, 0);
    CHECK(rng.state[0] == 0xe220a8397b1dcdafull);
    CHECK(rng.state[3] == 0xf88bb8a8724c81ecull);
    CHECK(zfed_rng_next(&rng) == 0x99ec5f36cb75f2b4ull);
    CHECK(zfed_rng_next(&rng) == 0xbf6e1f784956452aull);
    CHECK(zfed_rng_next(&rng) == 0x1a5f849d4933e6e0ull);

    //  below() stays below and covers the range; double() is in [0, 1).
    zfed_rng_seed(&rng, 42);
    uint32_t seen[7] = {0};
    bool in_range = true;
    for (int i = 0; i < 7000; i++) {
        uint64_t value = zfed_rng_below(&rng, 7);
        in_range = in_range && value < 7;
        seen[value < 7 ? value : 0]++;
        double unit = zfed_rng_double(&rng);
        in_range = in_range && unit >= 0.0 && unit < 1.0;
    }
    CHECK(in_range);
    for (int v = 0; v < 7; v++)
        CHECK(seen[v] > 850 && seen[v] < 1150);
    CHECK(zfed_rng_below(&rng, 1) == 0);

    //  A shuffle is a permutation, and the seed fixes it.
    uint32_t a[100], b[100];
    for (uint32_t i = 0; i < 100; i++)
        a[i] = b[i] = i;
    zfed_rng_t one, two;
    zfed_rng_seed(&one, 7);
    zfed_rng_seed(&two, 7);
    zfed_rng_shuffle(&one, a, 100);
    zfed_rng_shuffle(&two, b, 100);
    CHECK(memcmp(a, b, sizeof a) == 0);
    uint32_t sum = 0, moved = 0;
    for (uint32_t i = 0; i < 100; i++) {
        sum += a[i];
        moved += a[i] != i;
    }
    CHECK_INT(sum, 4950);
    CHECK(moved > 90);

    //  Normal: mean 0, variance 1; Gamma(k): mean k, variance k.
    zfed_rng_seed(&rng, 1);
    double total = 0, squares = 0;
    const int draws = 40000;
    for (int i = 0; i < draws; i++) {
        double x = zfed_rng_normal(&rng);
        total += x;
        squares += x * x;
    }
    CHECK(fabs(total / draws) < 0.03);
    CHECK(fabs(squares / draws - 1.0) < 0.05);
    const double shapes[] = {0.05, 0.3, 1.0, 2.5, 20.0};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        double k = shapes[s], mean = 0, var = 0;
        bool finite = true;
        for (int i = 0; i < draws; i++) {
            double log_value = zfed_rng_log_gamma(&rng, k);
            finite = finite && isfinite(log_value);
            double value = exp(log_value);
            mean += value;
            var += value * value;
        }
        mean /= draws;
        var = var / draws - mean * mean;
        CHECK(finite);
        if (fabs(mean - k) > 0.05 * k || fabs(var - k) > 0.15 * k)
            fprintf(stderr, "  gamma(%g): mean %g variance %g\n", k, mean, var);
        CHECK(fabs(mean - k) <= 0.05 * k);
        CHECK(fabs(var - k) <= 0.15 * k);
    }
}

//  ---------------------------------------------------------------------
//  Layout and validation

static bool s_error_is(int rc, const char *error, const char *want)
{
    bool ok = rc == -1 && strstr(error, want) == error;
    if (!ok)
        fprintf(stderr, "  expected an error starting '%s', got rc %d '%s'\n", want, rc, error);
    return ok;
}

static void s_test_layout(void)
{
    zfed_mlp_arch_t arch;
    zfed_mlp_arch_default(&arch);
    CHECK_INT(zfed_mlp_param_count(&arch), 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10);
    zfed_mlp_tensor_t tensors[ZFED_MLP_MAX_TENSORS];
    CHECK_INT(zfed_mlp_tensors(&arch, tensors), 6);
    const char *names[] = {"fc1.weight", "fc1.bias",   "fc2.weight",
                           "fc2.bias",   "fc3.weight", "fc3.bias"};
    const uint32_t shapes[6][2] = {{200, 784}, {200, 0}, {200, 200}, {200, 0}, {10, 200}, {10, 0}};
    size_t offset = 0;
    for (int t = 0; t < 6; t++) {
        CHECK_STR(tensors[t].name, names[t]);
        CHECK_INT(tensors[t].ndims, t % 2 ? 1 : 2);
        CHECK_INT(tensors[t].shape[0], shapes[t][0]);
        if (t % 2 == 0)
            CHECK_INT(tensors[t].shape[1], shapes[t][1]);
        CHECK_INT(tensors[t].offset, offset);
        offset += tensors[t].count;
    }
    char text[64];
    CHECK_STR(zfed_mlp_arch_format(&arch, text, sizeof text), "200,200");

    //  Eight hidden layers: fc1 .. fc9.
    char error[ERROR_SIZE] = "";
    CHECK(zfed_mlp_arch_parse(&arch, "1,2,3,4,5,6,7,4096", error, sizeof error) == 0);
    CHECK_INT(zfed_mlp_tensors(&arch, tensors), 18);
    CHECK_STR(tensors[16].name, "fc9.weight");
    CHECK_INT(tensors[16].shape[1], 4096);
    CHECK_INT(tensors[0].shape[0], 1);
    CHECK_STR(zfed_mlp_arch_format(&arch, text, sizeof text), "1,2,3,4,5,6,7,4096");

    const char *bad_arch[] = {
        "", "0", "4097", "200,,200", "200,", "a", "-1", "1,2,3,4,5,6,7,8,9", "99999999999"};
    for (size_t i = 0; i < sizeof bad_arch / sizeof *bad_arch; i++)
        CHECK(s_error_is(zfed_mlp_arch_parse(&arch, bad_arch[i], error, sizeof error), error,
                         "hidden: "));
    zfed_mlp_arch_t hand = {.hidden_layers = 0};
    CHECK(s_error_is(zfed_mlp_arch_check(&hand, error, sizeof error), error, "hidden: 0"));

    zfed_mlp_sgd_t sgd, bad;
    zfed_mlp_sgd_default(&sgd);
    CHECK(zfed_mlp_sgd_check(&sgd, error, sizeof error) == 0);
#define BAD_SGD(statement, want)                                                                   \
    do {                                                                                           \
        bad = sgd;                                                                                 \
        statement;                                                                                 \
        CHECK(s_error_is(zfed_mlp_sgd_check(&bad, error, sizeof error), error, want));             \
    } while (0)
    BAD_SGD(bad.lr = 0, "lr: 0");
    BAD_SGD(bad.lr = -0.1, "lr: ");
    BAD_SGD(bad.lr = NAN, "lr: ");
    BAD_SGD(bad.lr = INFINITY, "lr: ");
    BAD_SGD(bad.batch_size = 0, "batch_size: 0");
    BAD_SGD(bad.batch_size = ZFED_MLP_MAX_BATCH + 1, "batch_size: 65537");
    BAD_SGD(bad.local_epochs = 0, "local_epochs: 0");
    BAD_SGD(bad.local_epochs = ZFED_MLP_MAX_EPOCHS + 1, "local_epochs: 1001");
    BAD_SGD(bad.momentum = 1.0, "momentum: 1");
    BAD_SGD(bad.momentum = -0.5, "momentum: -0.5");
    BAD_SGD(bad.momentum = NAN, "momentum: ");
    BAD_SGD(bad.weight_decay = -1e-4, "weight_decay: ");
    BAD_SGD(bad.weight_decay = INFINITY, "weight_decay: ");
    BAD_SGD(bad.threads = 0, "threads: 0");
    BAD_SGD(bad.threads = ZFED_MLP_MAX_THREADS + 1, "threads: 65");
    bad = sgd;
    bad.momentum = 0.99;
    bad.weight_decay = 5e-4;
    CHECK(zfed_mlp_sgd_check(&bad, error, sizeof error) == 0);
}

//  ---------------------------------------------------------------------
//  Gradient and steps on synthetic data

static void s_random_data(uint64_t seed, uint32_t count, uint8_t *images, uint8_t *labels)
{
    zfed_rng_t rng;
    zfed_rng_seed(&rng, seed);
    for (size_t i = 0; i < (size_t)count * PIXELS; i++)
        images[i] = (uint8_t)zfed_rng_below(&rng, 256);
    for (uint32_t i = 0; i < count; i++)
        labels[i] = (uint8_t)zfed_rng_below(&rng, ZFED_MLP_CLASSES);
}

//  The mean loss at params, from the gradient function's own forward pass.
static double s_loss(const zfed_mlp_arch_t *arch, const float *params, const uint8_t *images,
                     const uint8_t *labels, uint32_t count, float *scratch)
{
    double loss = NAN;
    CHECK(zfed_mlp_gradient(arch, params, images, labels, count, scratch, &loss, NULL, 0) == 0);
    return loss;
}

static void s_test_gradient(void)
{
    char error[ERROR_SIZE];
    zfed_mlp_arch_t arch;
    CHECK(zfed_mlp_arch_parse(&arch, "6,5", error, sizeof error) == 0);
    size_t n = zfed_mlp_param_count(&arch);
    enum { COUNT = 4 };
    uint8_t images[COUNT * PIXELS], labels[COUNT];
    s_random_data(3, COUNT, images, labels);
    float *params = malloc(n * sizeof *params), *grad = malloc(n * sizeof *grad);
    float *scratch = malloc(n * sizeof *scratch);
    //  Larger weights than the default so every layer's gradient matters.
    zfed_mlp_init(&arch, 11, params);
    for (size_t i = 0; i < n; i++)
        params[i] *= 3.0f;
    double loss;
    CHECK(zfed_mlp_gradient(&arch, params, images, labels, COUNT, grad, &loss, error,
                            sizeof error) == 0);
    CHECK(isfinite(loss) && loss > 0);

    //  Central differences in float32 with step h; a parameter whose
    //  perturbation moves a ReLU input across 0 would disagree, so the
    //  test reports how many agree and demands nearly all.
    const float h = 1e-3f;
    size_t checked = 0, agreed = 0, nonzero = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float saved = params[i];
        params[i] = saved + h;
        double up = s_loss(&arch, params, images, labels, COUNT, scratch);
        params[i] = saved - h;
        double down = s_loss(&arch, params, images, labels, COUNT, scratch);
        params[i] = saved;
        double numeric = (up - down) / (2.0 * (double)h);
        double error_abs = fabs(numeric - grad[i]);
        double tolerance = 2e-3 + 0.02 * fabs(numeric);
        checked++;
        agreed += error_abs <= tolerance;
        nonzero += grad[i] != 0.0f;
        if (error_abs > worst)
            worst = error_abs;
    }
    fprintf(stderr, "  gradient check: %zu of %zu agree (%zu non-zero), worst difference %.2g\n",
            agreed, checked, nonzero, worst);
    CHECK(agreed >= checked - checked / 200);
    CHECK(nonzero > n / 4);

    //  All-zero parameters: every logit 0, loss ln 10, the bias gradient
    //  of the last layer the mean of softmax - onehot.
    memset(params, 0, n * sizeof *params);
    CHECK(zfed_mlp_gradient(&arch, params, images, labels, COUNT, grad, &loss, NULL, 0) == 0);
    CHECK(fabs(loss - log(10.0)) < 1e-6);
    const float *last_bias = grad + n - ZFED_MLP_CLASSES;
    for (int j = 0; j < ZFED_MLP_CLASSES; j++) {
        double expected = 0.1;
        for (int r = 0; r < COUNT; r++)
            expected -= (labels[r] == j) / (double)COUNT;
        CHECK(fabs(last_bias[j] - expected) < 1e-6);
    }
    free(params);
    free(grad);
    free(scratch);
}

//  zfed_mlp_train with one full batch per epoch against the same steps
//  written out from zfed_mlp_gradient and torch.optim.SGD's formulas.
static void s_test_sgd_steps(void)
{
    char error[ERROR_SIZE];
    zfed_mlp_arch_t arch;
    CHECK(zfed_mlp_arch_parse(&arch, "16,8", error, sizeof error) == 0);
    size_t n = zfed_mlp_param_count(&arch);
    enum { COUNT = 24 };
    uint8_t images[COUNT * PIXELS], labels[COUNT];
    s_random_data(5, COUNT, images, labels);
    float *start = malloc(n * sizeof(float)), *trained = malloc(n * sizeof(float));
    float *expected = malloc(n * sizeof(float)), *grad = malloc(n * sizeof(float));
    float *buffer = malloc(n * sizeof(float));
    zfed_mlp_init(&arch, 2, start);

    const struct {
        double momentum, weight_decay;
        uint32_t epochs;
    } cases[] = {{0, 0, 3}, {0.9, 0, 3}, {0, 0.01, 3}, {0.5, 0.05, 4}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        zfed_mlp_sgd_t sgd;
        zfed_mlp_sgd_default(&sgd);
        sgd.lr = 0.1;
        sgd.batch_size = COUNT;
        sgd.local_epochs = cases[c].epochs;
        sgd.momentum = cases[c].momentum;
        sgd.weight_decay = cases[c].weight_decay;
        memcpy(trained, start, n * sizeof(float));
        zfed_mlp_result_t result;
        CHECK(zfed_mlp_train(&arch, trained, images, labels, COUNT, &sgd, &result, error,
                             sizeof error) == 0);
        CHECK_INT(result.samples, COUNT);

        memcpy(expected, start, n * sizeof(float));
        double loss = 0;
        for (uint32_t step = 0; step < cases[c].epochs; step++) {
            CHECK(zfed_mlp_gradient(&arch, expected, images, labels, COUNT, grad, &loss, NULL, 0) ==
                  0);
            for (size_t i = 0; i < n; i++) {
                float g = grad[i] + (float)sgd.weight_decay * expected[i];
                if (sgd.momentum != 0) {
                    buffer[i] = step == 0 ? g : (float)sgd.momentum * buffer[i] + g;
                    g = buffer[i];
                }
                expected[i] -= (float)sgd.lr * g;
            }
        }
        //  The last epoch's loss is the loss before its step.
        CHECK(fabs(result.loss - loss) < 1e-5);
        double worst = 0;
        for (size_t i = 0; i < n; i++)
            worst = fmax(worst, fabs((double)trained[i] - expected[i]));
        if (worst > 1e-5)
            fprintf(stderr, "  momentum %g, weight decay %g: worst difference %g\n",
                    cases[c].momentum, cases[c].weight_decay, worst);
        CHECK(worst <= 1e-5);
    }
    free(start);
    free(trained);
    free(expected);
    free(grad);
    free(buffer);
}

static void s_test_determinism(void)
{
    char error[ERROR_SIZE];
    zfed_mlp_arch_t arch;
    zfed_mlp_arch_default(&arch);
    size_t n = zfed_mlp_param_count(&arch);
    enum { COUNT = 300 };
    uint8_t *images = malloc(COUNT * PIXELS), labels[COUNT];
    s_random_data(9, COUNT, images, labels);
    float *runs[4];
    zfed_mlp_sgd_t sgd;
    zfed_mlp_sgd_default(&sgd);
    sgd.local_epochs = 2;
    sgd.momentum = 0.5; //  the buffered path; the others run fused
    const uint64_t seeds[4] = {1, 1, 2, 1};
    const uint64_t init_seeds[4] = {4, 4, 4, 5};
    for (int r = 0; r < 4; r++) {
        runs[r] = malloc(n * sizeof(float));
        zfed_mlp_init(&arch, init_seeds[r], runs[r]);
        sgd.seed = seeds[r];
        zfed_mlp_result_t result;
        CHECK(zfed_mlp_train(&arch, runs[r], images, labels, COUNT, &sgd, &result, error,
                             sizeof error) == 0);
    }
    CHECK(memcmp(runs[0], runs[1], n * sizeof(float)) == 0);
    CHECK(memcmp(runs[0], runs[2], n * sizeof(float)) != 0); //  another shuffle
    CHECK(memcmp(runs[0], runs[3], n * sizeof(float)) != 0); //  another start

    //  The fused plain-SGD path, on two threads, twice.
    float *fused[2];
    sgd.momentum = 0;
    sgd.threads = 2;
    for (int r = 0; r < 2; r++) {
        fused[r] = malloc(n * sizeof(float));
        zfed_mlp_init(&arch, 4, fused[r]);
        zfed_mlp_result_t result;
        CHECK(zfed_mlp_train(&arch, fused[r], images, labels, COUNT, &sgd, &result, error,
                             sizeof error) == 0);
    }
    CHECK(memcmp(fused[0], fused[1], n * sizeof(float)) == 0);

    //  Init: within nn.Linear's bounds, seeded.
    zfed_mlp_tensor_t tensors[ZFED_MLP_MAX_TENSORS];
    size_t count = zfed_mlp_tensors(&arch, tensors);
    float *init = runs[3];
    zfed_mlp_init(&arch, 4, init);
    for (size_t t = 0; t < count; t++) {
        double bound = 1.0 / sqrt((double)tensors[t - t % 2].shape[1]), largest = 0, sum = 0;
        for (size_t i = 0; i < tensors[t].count; i++) {
            largest = fmax(largest, fabs(init[tensors[t].offset + i]));
            sum += init[tensors[t].offset + i];
        }
        CHECK(largest <= bound);
        if (tensors[t].count > 1000) {
            CHECK(largest > 0.99 * bound);
            CHECK(fabs(sum / tensors[t].count) < 0.05 * bound);
        }
    }
    zfed_mlp_init(&arch, 4, runs[2]);
    CHECK(memcmp(init, runs[2], n * sizeof(float)) == 0);
    for (int r = 0; r < 4; r++)
        free(runs[r]);
    free(fused[0]);
    free(fused[1]);
    free(images);
}

static void s_test_refusals(void)
{
    char error[ERROR_SIZE] = "";
    zfed_mlp_arch_t arch;
    zfed_mlp_arch_default(&arch);
    size_t n = zfed_mlp_param_count(&arch);
    float *params = calloc(n, sizeof(float));
    uint8_t images[3 * PIXELS] = {0}, labels[3] = {1, 10, 2};
    zfed_mlp_sgd_t sgd;
    zfed_mlp_sgd_default(&sgd);
    zfed_mlp_result_t result = {0};
    CHECK(s_error_is(
        zfed_mlp_train(&arch, params, images, labels, 3, &sgd, &result, error, sizeof error), error,
        "data: label 10 at sample 1"));
    CHECK(s_error_is(
        zfed_mlp_train(&arch, params, images, labels, 0, &sgd, &result, error, sizeof error), error,
        "data: no samples"));
    CHECK(s_error_is(
        zfed_mlp_evaluate(&arch, params, images, labels, 3, NULL, &result, error, sizeof error),
        error, "data: label 10"));
    sgd.lr = -1;
    labels[1] = 0;
    CHECK(s_error_is(
        zfed_mlp_train(&arch, params, images, labels, 3, &sgd, &result, error, sizeof error), error,
        "lr: -1"));
    //  A batch too wide for the workspace bound.
    zfed_mlp_sgd_default(&sgd);
    CHECK(zfed_mlp_arch_parse(&arch, "4096,4096,4096,4096,4096,4096,4096,4096", error,
                              sizeof error) == 0);
    sgd.batch_size = ZFED_MLP_MAX_BATCH;
    uint32_t many = ZFED_MLP_MAX_BATCH;
    uint8_t *many_images = calloc(many, PIXELS), *many_labels = calloc(many, 1);
    float *big = calloc(zfed_mlp_param_count(&arch), sizeof(float));
    CHECK(s_error_is(zfed_mlp_train(&arch, big, many_images, many_labels, many, &sgd, &result,
                                    error, sizeof error),
                     error, "batch_size: 65536 samples of these layers need"));
    bool untouched = true; //  a refused call leaves the parameters alone
    for (size_t i = 0; i < n; i++)
        untouched = untouched && params[i] == 0.0f;
    CHECK(untouched);
    free(big);
    free(many_images);
    free(many_labels);
    free(params);
}

//  ---------------------------------------------------------------------
//  A real training

static void s_test_fashion_mnist(void)
{
    char error[ERROR_SIZE] = "";
    zfed_dataset_t *train, *test;
    if (!zfed_test_fashion_mnist(&train, &test))
        return;
    zfed_mlp_arch_t arch;
    zfed_mlp_arch_default(&arch);
    float *params = malloc(zfed_mlp_param_count(&arch) * sizeof(float));
    zfed_mlp_init(&arch, 0, params);
    zfed_mlp_result_t before, trained, after;
    const uint32_t samples = 1000;
    float *logits = malloc((size_t)zfed_dataset_count(test) * ZFED_MLP_CLASSES * sizeof(float));
    CHECK(zfed_mlp_evaluate(&arch, params, zfed_dataset_images(test), zfed_dataset_labels(test),
                            zfed_dataset_count(test), NULL, &before, error, sizeof error) == 0);
    zfed_mlp_sgd_t sgd;
    zfed_mlp_sgd_default(&sgd);
    //  Plain SGD at lr 0.05 needs about 20 epochs of 1,000 images to settle
    //  (numpy and torch alike); momentum 0.9 gets there in 10 (about 76 %).
    sgd.local_epochs = 10;
    sgd.lr = 0.01;
    sgd.momentum = 0.9;
    CHECK(zfed_mlp_train(&arch, params, zfed_dataset_images(train), zfed_dataset_labels(train),
                         samples, &sgd, &trained, error, sizeof error) == 0);
    CHECK(zfed_mlp_evaluate(&arch, params, zfed_dataset_images(test), zfed_dataset_labels(test),
                            zfed_dataset_count(test), logits, &after, error, sizeof error) == 0);
    fprintf(stderr,
            "  1,000 images, 10 epochs: train loss %.3f accuracy %.3f; test loss %.3f -> %.3f, "
            "accuracy %.3f -> %.3f\n",
            trained.loss, trained.accuracy, before.loss, after.loss, before.accuracy,
            after.accuracy);
    CHECK_INT(trained.samples, samples);
    CHECK_INT(after.samples, 10000);
    CHECK(after.accuracy >= 0.60);
    CHECK(after.loss < before.loss);
    CHECK(trained.accuracy > 0.6 && trained.accuracy <= 1.0);
    //  The logits agree with the accuracy reported.
    uint32_t correct = 0;
    for (uint32_t r = 0; r < zfed_dataset_count(test); r++) {
        const float *z = logits + (size_t)r * ZFED_MLP_CLASSES;
        uint32_t best = 0;
        for (uint32_t j = 1; j < ZFED_MLP_CLASSES; j++)
            best = z[j] > z[best] ? j : best;
        correct += best == zfed_dataset_labels(test)[r];
    }
    CHECK(fabs(correct / 10000.0 - after.accuracy) < 1e-12);
    free(logits);
    free(params);
    zfed_dataset_destroy(&train);
    zfed_dataset_destroy(&test);
}

int main(void)
{
    s_test_rng();
    s_test_layout();
    s_test_gradient();
    s_test_sgd_steps();
    s_test_determinism();
    s_test_refusals();
    s_test_fashion_mnist();
    ZFED_TEST_END();
}
