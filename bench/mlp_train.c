/*  zfed-bench-mlp - trains zfed's MLP on one machine, without ZeroMQ: the
    reference trainer of issue 11 and the C side of bench/mlp_bench.sh.

    Loads a training folder (a whole set or a site's shard written by
    zfed-split) and the test set, initialises the parameters like torch's
    nn.Linear (or loads them), trains for --epochs epochs and prints one JSON
    line per epoch:

        {"epoch": E, "seconds": S, "samples": N, "train_loss": ...,
         "train_accuracy": ..., "test_loss": ..., "test_accuracy": ...}

    "seconds" is zfed_mlp_train's wall time for that epoch alone (inputs
    converted from pixels inside it, as a site's task does; loading and
    evaluation excluded).  Epoch e (from 1) is one zfed_mlp_train call with
    seed --seed + e - 1; --one-call instead runs all epochs in one call
    (momentum carried over, as one task with local_epochs E) and prints one
    line.  --save and --logits write raw little-endian float32 (the
    parameters in zfed_mlp_tensors order, the test logits N x 10) for
    checks outside C; --layout prints that order as JSON and exits.
*/
#include "core/zfed_cli.h"
#include "ml/zfed_dataset.h"
#include "ml/zfed_mlp.h"
#include "zfed/zfed_util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRAM    "zfed-bench-mlp"
#define ERROR_SIZE 512
#define MAX_LR     1e6
//  "--test none": train only.
#define NO_TEST "none"

typedef struct {
    const char *train;
    const char *test;
    const char *load;
    const char *save;
    const char *logits;
    zfed_mlp_arch_t arch;
    zfed_mlp_sgd_t sgd;
    uint32_t epochs;
    uint32_t limit;
    uint64_t init_seed;
    bool one_call;
    bool layout;
} s_options_t;

static void s_usage(void)
{
    printf("Usage: " PROGRAM " [OPTION]...\n"
           "Train zfed's MLP (784-H...-10, ReLU, softmax cross-entropy, SGD) on one machine.\n"
           "\n"
           "  --train DIR         training set folder (default " ZFED_DATASET_FASHION_MNIST ")\n"
           "  --test DIR          test set folder (t10k files), or 'none' (default the same)\n"
           "  --limit N           train on the first N samples only\n"
           "  --hidden SIZES      hidden layer sizes (default 200,200)\n"
           "  --epochs E          epochs (default 1)\n"
           "  --lr LR             learning rate (default 0.05)\n"
           "  --batch-size B      minibatch size (default 32)\n"
           "  --momentum M        SGD momentum (default 0)\n"
           "  --weight-decay W    L2 weight decay (default 0)\n"
           "  --seed S            shuffle seed; epoch e uses S + e - 1 (default 0)\n"
           "  --init-seed S       initialisation seed (default 0)\n"
           "  --threads T         OpenBLAS threads (default 1)\n"
           "  --one-call          all epochs in one training call; one line at the end\n"
           "  --load FILE         start from these raw float32 parameters\n"
           "  --save FILE         write the trained parameters (raw float32)\n"
           "  --logits FILE       write the test logits (raw float32, N x 10)\n"
           "  --layout            print the parameter layout as JSON and exit\n"
           "  -h, --help          show this help and exit\n"
           "  -V, --version       show the version and exit\n"
           "\n"
           "Prints one JSON line per epoch.  Exit status: 0 done, 1 failure, 2 bad usage.\n");
}

static double s_double(const char *flag, const char *value, double min, double max)
{
    double parsed;
    if (zfed_parse_double(value, min, max, &parsed) != 0)
        zfed_cli_fail(PROGRAM, "%s: expected a number from %g to %g, got '%s'", flag, min, max,
                      value);
    return parsed;
}

static void s_parse(int argc, char **argv, s_options_t *options)
{
    enum {
        TRAIN = 0x100,
        TEST,
        LIMIT,
        HIDDEN,
        EPOCHS,
        LR,
        BATCH,
        MOMENTUM,
        DECAY,
        SEED,
        INIT,
        THREADS,
        ONE_CALL,
        LOAD,
        SAVE,
        LOGITS,
        LAYOUT
    };
    static const struct option table[] = {
        {"train", required_argument, NULL, TRAIN},
        {"test", required_argument, NULL, TEST},
        {"limit", required_argument, NULL, LIMIT},
        {"hidden", required_argument, NULL, HIDDEN},
        {"epochs", required_argument, NULL, EPOCHS},
        {"lr", required_argument, NULL, LR},
        {"batch-size", required_argument, NULL, BATCH},
        {"momentum", required_argument, NULL, MOMENTUM},
        {"weight-decay", required_argument, NULL, DECAY},
        {"seed", required_argument, NULL, SEED},
        {"init-seed", required_argument, NULL, INIT},
        {"threads", required_argument, NULL, THREADS},
        {"one-call", no_argument, NULL, ONE_CALL},
        {"load", required_argument, NULL, LOAD},
        {"save", required_argument, NULL, SAVE},
        {"logits", required_argument, NULL, LOGITS},
        {"layout", no_argument, NULL, LAYOUT},
        ZFED_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    char error[ERROR_SIZE];
    *options = (s_options_t){
        .train = ZFED_DATASET_FASHION_MNIST, .test = ZFED_DATASET_FASHION_MNIST, .epochs = 1};
    zfed_mlp_arch_default(&options->arch);
    zfed_mlp_sgd_default(&options->sgd);
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ZFED_CLI_COMMON_SHORT, table, NULL)) != -1) {
        switch (option) {
        case TRAIN:
            options->train = optarg;
            break;
        case TEST:
            options->test = optarg;
            break;
        case LIMIT:
            options->limit = zfed_cli_u32(PROGRAM, "--limit", optarg, 1, UINT32_MAX);
            break;
        case HIDDEN:
            if (zfed_mlp_arch_parse(&options->arch, optarg, error, sizeof error) != 0)
                zfed_cli_fail(PROGRAM, "--hidden: %s", error);
            break;
        case EPOCHS:
            options->epochs = zfed_cli_u32(PROGRAM, "--epochs", optarg, 1, ZFED_MLP_MAX_EPOCHS);
            break;
        case LR:
            options->sgd.lr = s_double("--lr", optarg, 0, MAX_LR);
            break;
        case BATCH:
            options->sgd.batch_size =
                zfed_cli_u32(PROGRAM, "--batch-size", optarg, 1, ZFED_MLP_MAX_BATCH);
            break;
        case MOMENTUM:
            options->sgd.momentum = s_double("--momentum", optarg, 0, 1);
            break;
        case DECAY:
            options->sgd.weight_decay = s_double("--weight-decay", optarg, 0, MAX_LR);
            break;
        case SEED:
            options->sgd.seed = zfed_cli_u64(PROGRAM, "--seed", optarg, 0, UINT64_MAX);
            break;
        case INIT:
            options->init_seed = zfed_cli_u64(PROGRAM, "--init-seed", optarg, 0, UINT64_MAX);
            break;
        case THREADS:
            options->sgd.threads =
                zfed_cli_u32(PROGRAM, "--threads", optarg, 1, ZFED_MLP_MAX_THREADS);
            break;
        case ONE_CALL:
            options->one_call = true;
            break;
        case LOAD:
            options->load = optarg;
            break;
        case SAVE:
            options->save = optarg;
            break;
        case LOGITS:
            options->logits = optarg;
            break;
        case LAYOUT:
            options->layout = true;
            break;
        default:
            if (zfed_cli_common_or_fail(PROGRAM, argc, argv, option, optarg, s_usage))
                exit(ZFED_EXIT_OK);
        }
    }
    if (optind != argc)
        zfed_cli_fail(PROGRAM, "unexpected argument '%s'", argv[optind]);
    if (options->one_call)
        options->sgd.local_epochs = options->epochs;
    if (zfed_mlp_sgd_check(&options->sgd, error, sizeof error) != 0)
        zfed_cli_fail(PROGRAM, "%s", error);
}

static void s_print_layout(const zfed_mlp_arch_t *arch)
{
    zfed_mlp_tensor_t tensors[ZFED_MLP_MAX_TENSORS];
    size_t count = zfed_mlp_tensors(arch, tensors);
    printf("[");
    for (size_t t = 0; t < count; t++) {
        printf("%s{\"name\": \"%s\", \"shape\": [%u", t ? ", " : "", tensors[t].name,
               tensors[t].shape[0]);
        if (tensors[t].ndims == 2)
            printf(", %u", tensors[t].shape[1]);
        printf("], \"offset\": %zu, \"count\": %zu}", tensors[t].offset, tensors[t].count);
    }
    printf("]\n");
}

static int s_write_raw(const char *path, const float *values, size_t count)
{
    if (zfed_write_file_durable(path, values, count * sizeof *values) != 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", PROGRAM, path, strerror(errno));
        return -1;
    }
    return 0;
}

static int s_read_raw(const char *path, float *values, size_t count)
{
    size_t size = 0;
    char *bytes = zfed_read_file(path, count * sizeof *values, &size);
    if (!bytes || size != count * sizeof *values) {
        fprintf(stderr, "%s: %s: expected %zu bytes of float32 parameters, got %s\n", PROGRAM, path,
                count * sizeof *values, bytes ? "another size" : strerror(errno));
        free(bytes);
        return -1;
    }
    memcpy(values, bytes, size);
    free(bytes);
    return 0;
}

int main(int argc, char **argv)
{
    s_options_t options;
    s_parse(argc, argv, &options);
    if (options.layout) {
        s_print_layout(&options.arch);
        return ZFED_EXIT_OK;
    }
    char error[ERROR_SIZE];
    int status = ZFED_EXIT_FAILED;
    zfed_dataset_t *train =
        zfed_dataset_load(options.train, ZFED_DATASET_TRAIN, error, sizeof error);
    zfed_dataset_t *test = NULL;
    size_t param_count = zfed_mlp_param_count(&options.arch);
    float *params = malloc(param_count * sizeof *params);
    float *logits = NULL;
    if (!train) {
        fprintf(stderr, "%s: %s\n", PROGRAM, error);
        goto done;
    }
    if (strcmp(options.test, NO_TEST) != 0 &&
        !(test = zfed_dataset_load(options.test, ZFED_DATASET_TEST, error, sizeof error))) {
        fprintf(stderr, "%s: %s\n", PROGRAM, error);
        goto done;
    }
    if (test && options.logits)
        logits = malloc((size_t)zfed_dataset_count(test) * ZFED_MLP_CLASSES * sizeof *logits);
    if (!params || (test && options.logits && !logits)) {
        fprintf(stderr, "%s: out of memory\n", PROGRAM);
        goto done;
    }
    if (options.load) {
        if (s_read_raw(options.load, params, param_count) != 0)
            goto done;
    } else
        zfed_mlp_init(&options.arch, options.init_seed, params);
    uint32_t count = zfed_dataset_count(train);
    if (options.limit && options.limit < count)
        count = options.limit;
    uint32_t calls = options.one_call ? 1 : options.epochs;
    for (uint32_t call = 0; call < calls; call++) {
        zfed_mlp_sgd_t sgd = options.sgd;
        sgd.seed = options.sgd.seed + call;
        zfed_mlp_result_t trained, tested = {0};
        int64_t started = zfed_clock_us();
        if (zfed_mlp_train(&options.arch, params, zfed_dataset_images(train),
                           zfed_dataset_labels(train), count, &sgd, &trained, error,
                           sizeof error) != 0) {
            fprintf(stderr, "%s: %s\n", PROGRAM, error);
            goto done;
        }
        double seconds = (double)(zfed_clock_us() - started) / 1e6;
        bool last = call + 1 == calls;
        if (test && zfed_mlp_evaluate(&options.arch, params, zfed_dataset_images(test),
                                      zfed_dataset_labels(test), zfed_dataset_count(test),
                                      last ? logits : NULL, &tested, error, sizeof error) != 0) {
            fprintf(stderr, "%s: %s\n", PROGRAM, error);
            goto done;
        }
        printf("{\"epoch\": %u, \"seconds\": %.6f, \"samples\": %llu, \"train_loss\": %.6f, "
               "\"train_accuracy\": %.6f",
               options.one_call ? options.epochs : call + 1, seconds,
               (unsigned long long)trained.samples, trained.loss, trained.accuracy);
        if (test)
            printf(", \"test_loss\": %.6f, \"test_accuracy\": %.6f", tested.loss, tested.accuracy);
        printf("}\n");
        fflush(stdout);
    }
    if (options.save && s_write_raw(options.save, params, param_count) != 0)
        goto done;
    if (logits && s_write_raw(options.logits, logits,
                              (size_t)zfed_dataset_count(test) * ZFED_MLP_CLASSES) != 0)
        goto done;
    status = ZFED_EXIT_OK;
done:
    free(logits);
    free(params);
    zfed_dataset_destroy(&train);
    zfed_dataset_destroy(&test);
    return status;
}
