/*  zfed-split - writes the site shards of a federated job from a labelled
    image set (Fashion-MNIST by default): OUT/SITE/train-*-ubyte.gz per site,
    and OUT/split.json saying how they were made.

    The data of a federated job stays at its sites; this is the tool that
    plays the part of the world and decides, reproducibly, who holds what.
    The splitting itself is lib/ml/zfed_split.c; this program reads the set,
    writes the shards (IDX, gzip: a shard folder loads like the dataset) and
    the description (method, seed, the source files with their size and
    SHA-256, and per site its sample count, its shard's SHA-256, which the
    controller checks every result against, and its class histogram).
*/
#include "core/zfed_cli.h"
#include "ml/zfed_dataset.h"
#include "ml/zfed_split.h"
#include "zfed/zfed_sha256.h"
#include "zfed/zfed_util.h"
#include "zfed/zfed_version.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROGRAM        "zfed-split"
#define ERROR_SIZE     512
#define SITE_NAME_MAX  64
#define SITE_PREFIX    "site-"
#define DEFAULT_SITES  5
#define DEFAULT_METHOD "iid"
#define SPLIT_FILE     "split.json"
#define SPLIT_FORMAT   "zfed.split/1"

typedef struct {
    const char *data;
    const char *out;
    const char *sites_text;
    zfed_split_spec_t spec;
    uint64_t seed;
    uint32_t samples;
    uint32_t sites;
    char (*names)[SITE_NAME_MAX + 1];
} s_options_t;

static void s_usage(void)
{
    printf("Usage: " PROGRAM " [OPTION]... OUT\n"
           "Write federated site shards of a labelled image set into OUT/SITE/ and OUT/" SPLIT_FILE
           ".\n"
           "\n"
           "  --data DIR        the set's folder, with train-images-idx3-ubyte(.gz) and\n"
           "                    train-labels-idx1-ubyte(.gz) (default\n"
           "                    " ZFED_DATASET_FASHION_MNIST ")\n"
           "  --sites N|A,B,..  N sites named site-0 .. site-N-1, or these names\n"
           "                    (default 5)\n"
           "  --method M        iid (default), labels:K (McMahan et al.: sorted by label,\n"
           "                    cut into K x sites shards, K shards per site) or\n"
           "                    dirichlet:ALPHA (per class, proportions over the sites drawn\n"
           "                    from Dirichlet(ALPHA); small ALPHA, skewed sites)\n"
           "  --seed S          the split's seed (default 0): same seed, same bytes\n"
           "  --samples N       split a random subset of N samples (default all)\n"
           "  --log-level L     error, warn, info or debug\n"
           "  -v, --verbose     same as --log-level debug\n"
           "  -q, --quiet       same as --log-level warn\n"
           "  -h, --help        show this help and exit\n"
           "  -V, --version     show the version and exit\n"
           "\n"
           "Each OUT/SITE/ gets train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz\n"
           "(zfed-worker --data OUT/SITE loads it); " SPLIT_FILE
           " records the method, seed, source\n"
           "files (bytes, SHA-256) and each site's count, shard SHA-256 (of its pixels then\n"
           "labels) and class histogram.  Prints one line per site.  Exit status: 0\n"
           "written, 1 failure, 2 bad usage.\n");
}

//  --sites: a count, or names (safe as folder names, no repeats).
static void s_parse_sites(s_options_t *options)
{
    const char *text = options->sites_text;
    uint32_t count;
    if (zfed_parse_u32(text, 1, ZFED_SPLIT_MAX_SITES, &count) == 0) {
        options->names = calloc(count, sizeof *options->names);
        if (!options->names)
            zfed_cli_fail(PROGRAM, "--sites: out of memory");
        for (uint32_t s = 0; s < count; s++)
            snprintf(options->names[s], sizeof options->names[s], SITE_PREFIX "%u", s);
        options->sites = count;
        return;
    }
    if (*text >= '0' && *text <= '9' && !strchr(text, ','))
        zfed_cli_fail(PROGRAM, "--sites: expected 1 to %d sites, got '%s'", ZFED_SPLIT_MAX_SITES,
                      text);
    count = 1;
    for (const char *at = text; *at; at++)
        count += *at == ',';
    if (count > ZFED_SPLIT_MAX_SITES)
        zfed_cli_fail(PROGRAM, "--sites: %u names, at most %d", count, ZFED_SPLIT_MAX_SITES);
    options->names = calloc(count, sizeof *options->names);
    if (!options->names)
        zfed_cli_fail(PROGRAM, "--sites: out of memory");
    const char *at = text;
    for (uint32_t s = 0; s < count; s++) {
        const char *end = strchr(at, ',');
        size_t length = end ? (size_t)(end - at) : strlen(at);
        if (length > SITE_NAME_MAX)
            zfed_cli_fail(PROGRAM, "--sites: name %u is longer than %d characters", s + 1,
                          SITE_NAME_MAX);
        memcpy(options->names[s], at, length);
        options->names[s][length] = '\0';
        if (!zfed_is_safe_name(options->names[s], SITE_NAME_MAX))
            zfed_cli_fail(PROGRAM,
                          "--sites: name '%s': 1 to %d characters of A-Z a-z 0-9 . _ - not "
                          "starting with '.'",
                          options->names[s], SITE_NAME_MAX);
        for (uint32_t other = 0; other < s; other++)
            if (strcmp(options->names[other], options->names[s]) == 0)
                zfed_cli_fail(PROGRAM, "--sites: '%s' is named twice", options->names[s]);
        at = end ? end + 1 : at + length;
    }
    options->sites = count;
}

static void s_parse(int argc, char **argv, s_options_t *options)
{
    enum { DATA = 0x100, SITES, METHOD, SEED, SAMPLES };
    static const struct option table[] = {
        {"data", required_argument, NULL, DATA},
        {"sites", required_argument, NULL, SITES},
        {"method", required_argument, NULL, METHOD},
        {"seed", required_argument, NULL, SEED},
        {"samples", required_argument, NULL, SAMPLES},
        ZFED_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    *options = (s_options_t){.data = ZFED_DATASET_FASHION_MNIST, .sites_text = "5"};
    char error[ERROR_SIZE];
    const char *method = DEFAULT_METHOD;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ZFED_CLI_COMMON_SHORT, table, NULL)) != -1) {
        switch (option) {
        case DATA:
            options->data = optarg;
            break;
        case SITES:
            options->sites_text = optarg;
            break;
        case METHOD:
            method = optarg;
            break;
        case SEED:
            options->seed = zfed_cli_u64(PROGRAM, "--seed", optarg, 0, UINT64_MAX);
            break;
        case SAMPLES:
            options->samples = zfed_cli_u32(PROGRAM, "--samples", optarg, 1, UINT32_MAX);
            break;
        default:
            if (zfed_cli_common_or_fail(PROGRAM, argc, argv, option, optarg, s_usage))
                exit(ZFED_EXIT_OK);
        }
    }
    if (optind != argc - 1)
        zfed_cli_fail(PROGRAM, optind >= argc ? "OUT is missing" : "one OUT at a time");
    options->out = argv[optind];
    if (zfed_split_parse(&options->spec, method, error, sizeof error) != 0)
        zfed_cli_fail(PROGRAM, "--%s", error);
    s_parse_sites(options);
}

//  {"path", "bytes", "sha256"} of a file; NULL (with a message) on error.
static json_t *s_describe_file(const char *path)
{
    uint8_t digest[ZFED_SHA256_SIZE];
    uint64_t size;
    if (zfed_sha256_file(path, digest, &size) != 0) {
        fprintf(stderr, "%s: cannot read %s: %s\n", PROGRAM, path, strerror(errno));
        return NULL;
    }
    char hex[ZFED_SHA256_HEX_SIZE];
    zfed_sha256_hex(digest, hex);
    return json_pack("{s:s, s:I, s:s}", "path", path, "bytes", (json_int_t)size, "sha256", hex);
}

//  Copies site s's samples out of the set and writes them to OUT/NAME/.
static int s_write_site(const s_options_t *options, const zfed_dataset_t *set,
                        const uint32_t *members, uint32_t size, const char *name,
                        uint32_t histogram[ZFED_DATASET_CLASSES], char sha256[ZFED_SHA256_HEX_SIZE])
{
    char dir[PATH_MAX], error[ERROR_SIZE];
    if (snprintf(dir, sizeof dir, "%s/%s", options->out, name) >= (int)sizeof dir) {
        fprintf(stderr, "%s: %s/%s: path too long\n", PROGRAM, options->out, name);
        return -1;
    }
    if (zfed_mkdir_p(dir) != 0) {
        fprintf(stderr, "%s: cannot create %s: %s\n", PROGRAM, dir, strerror(errno));
        return -1;
    }
    uint8_t *images = malloc((size_t)size * ZFED_DATASET_PIXELS);
    uint8_t *labels = malloc(size);
    if (!images || !labels) {
        free(images);
        free(labels);
        fprintf(stderr, "%s: out of memory for %u samples\n", PROGRAM, size);
        return -1;
    }
    for (uint32_t i = 0; i < size; i++) {
        memcpy(images + (size_t)i * ZFED_DATASET_PIXELS,
               zfed_dataset_images(set) + (size_t)members[i] * ZFED_DATASET_PIXELS,
               ZFED_DATASET_PIXELS);
        labels[i] = zfed_dataset_labels(set)[members[i]];
    }
    zfed_dataset_t *shard = zfed_dataset_new(size, images, labels, error, sizeof error);
    if (!shard || zfed_dataset_write(shard, dir, ZFED_DATASET_TRAIN, error, sizeof error) != 0) {
        fprintf(stderr, "%s: %s\n", PROGRAM, error);
        zfed_dataset_destroy(&shard);
        return -1;
    }
    zfed_dataset_histogram(shard, histogram);
    zfed_sha256_hex(zfed_dataset_sha256(shard), sha256);
    zfed_dataset_destroy(&shard);
    return 0;
}

static json_t *s_histogram_json(const uint32_t histogram[ZFED_DATASET_CLASSES])
{
    json_t *array = json_array();
    for (int c = 0; c < ZFED_DATASET_CLASSES; c++)
        json_array_append_new(array, json_integer(histogram[c]));
    return array;
}

int main(int argc, char **argv)
{
    s_options_t options;
    s_parse(argc, argv, &options);
    char error[ERROR_SIZE];
    int status = ZFED_EXIT_FAILED;
    uint32_t *members = NULL, *offsets = NULL;
    json_t *description = NULL;
    zfed_dataset_t *set = zfed_dataset_load(options.data, ZFED_DATASET_TRAIN, error, sizeof error);
    if (!set) {
        fprintf(stderr, "%s: %s\n", PROGRAM, error);
        goto done;
    }
    uint32_t count = zfed_dataset_count(set);
    members = malloc(((size_t)count + 1) * sizeof *members);
    offsets = malloc(((size_t)options.sites + 1) * sizeof *offsets);
    if (!members || !offsets) {
        fprintf(stderr, "%s: out of memory\n", PROGRAM);
        goto done;
    }
    uint32_t attempts;
    if (zfed_split_assign(&options.spec, zfed_dataset_labels(set), count, ZFED_DATASET_CLASSES,
                          options.samples, options.sites, options.seed, members, offsets, &attempts,
                          error, sizeof error) != 0) {
        fprintf(stderr, "%s: %s\n", PROGRAM, error);
        goto done;
    }
    json_t *images = s_describe_file(zfed_dataset_images_path(set));
    json_t *labels = images ? s_describe_file(zfed_dataset_labels_path(set)) : NULL;
    if (!labels) {
        json_decref(images);
        goto done;
    }
    json_t *sites = json_array();
    description =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:i, s:{s:o, s:o, s:I}, s:o}", "format", SPLIT_FORMAT,
                  "generator", PROGRAM " " ZFED_VERSION_STRING, "method", options.spec.text, "seed",
                  (json_int_t)options.seed, "samples", (json_int_t)offsets[options.sites],
                  "attempts", (int)attempts, "source", "images", images, "labels", labels, "count",
                  (json_int_t)count, "sites", sites);
    if (!description) {
        fprintf(stderr, "%s: out of memory\n", PROGRAM);
        goto done;
    }
    for (uint32_t s = 0; s < options.sites; s++) {
        uint32_t histogram[ZFED_DATASET_CLASSES];
        char sha256[ZFED_SHA256_HEX_SIZE];
        uint32_t size = offsets[s + 1] - offsets[s];
        if (s_write_site(&options, set, members + offsets[s], size, options.names[s], histogram,
                         sha256) != 0)
            goto done;
        json_array_append_new(sites,
                              json_pack("{s:s, s:s, s:I, s:s, s:o}", "name", options.names[s],
                                        "folder", options.names[s], "count", (json_int_t)size,
                                        "sha256", sha256, "classes", s_histogram_json(histogram)));
        printf("%s %u", options.names[s], size);
        for (int c = 0; c < ZFED_DATASET_CLASSES; c++)
            printf("%s%u", c ? "," : " ", histogram[c]);
        printf("\n");
    }
    char path[PATH_MAX];
    char *text = json_dumps(description, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    snprintf(path, sizeof path, "%s/" SPLIT_FILE, options.out);
    if (!text || zfed_write_file_durable(path, text, strlen(text)) != 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", PROGRAM, path, strerror(errno));
        free(text);
        goto done;
    }
    free(text);
    status = ZFED_EXIT_OK;
done:
    json_decref(description);
    free(members);
    free(offsets);
    free(options.names);
    zfed_dataset_destroy(&set);
    return status;
}
