/*  zfed-model - looks at, makes, compares and aggregates safetensors models.

    Every command streams: models of several GiB go through in chunks of
    CHUNK_BYTES, never whole in memory.
*/
#include "zfed/zfed_exact.h"
#include "zfed/zfed_reduce.h"
#include "zfed/zfed_safetensors.h"
#include "zfed/zfed_sha256.h"
#include "zfed/zfed_util.h"
#include "core/zfed_cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRAM "zfed-model"
//  Bytes of one tensor read, made or aggregated at a time.
#define CHUNK_BYTES (4u << 20)
#define TENSORS_MAX 4096 //  --tensor flags, and --tensors for --size
#define INPUTS_MAX  1024
#define ERROR_SIZE  512
//  Spread of --fill random floats: about N(0, 0.05), like a model's weights.
#define RANDOM_SIGMA 0.05

static void s_usage(void)
{
    printf(
        "Usage: " PROGRAM " COMMAND [OPTION]... FILE...\n"
        "Look at, make, compare and aggregate models in safetensors files.\n"
        "\n"
        "Commands:\n"
        "  info FILE          tensors (name, dtype, shape, bytes), totals, metadata and the\n"
        "                     sha256 of the tensor data; --json for one JSON object\n"
        "  sha256 FILE...     sha256 of each file's tensor data (the bytes after the\n"
        "                     header: the same whatever the header's padding or metadata)\n"
        "  create FILE        write a model of the tensors given by --tensor, or of --size\n"
        "                     bytes in --tensors float32 tensors, filled as --fill says\n"
        "  diff A B           compare two models: the first layout difference, or per\n"
        "                     tensor the elements that differ and the largest |a - b|\n"
        "  aggregate OUT IN...  combine models of one layout element-wise with --strategy,\n"
        "                     exactly, rounded once into each tensor's dtype\n"
        "\n"
        "Options:\n"
        "  --tensor NAME:DTYPE:SHAPE  (create) a tensor; SHAPE is D1xD2x... (\"\" for a scalar,\n"
        "                     a 0 dimension for an empty tensor); repeat for more\n"
        "  --size BYTES       (create) total float32 bytes, with suffix KiB, MiB, GiB, TiB\n"
        "  --tensors K        (create) split --size into K tensors (default 1)\n"
        "  --fill HOW         (create) zeros (default), value:X (every element X, rounded\n"
        "                     once; integers must be exact) or random:SEED (floats about\n"
        "                     N(0, 0.05), integers uniform; the same for a seed whatever\n"
        "                     the chunking)\n"
        "  --metadata KEY=VALUE  (create) a __metadata__ entry; repeat for more\n"
        "  --strategy NAME    (aggregate) fedavg (weighted mean), mean, sum, median,\n"
        "                     trimmed-mean, min or max (default fedavg)\n"
        "  --weights W,W,...  (aggregate) one weight per input for fedavg and sum (integers\n"
        "                     from 0; default 1 each)\n"
        "  --trim F           (aggregate) fraction cut from each end by trimmed-mean\n"
        "                     (default 0.1)\n"
        "  --json             (info) print JSON\n"
        "  -h, --help         show this help and exit\n"
        "  -V, --version      show the version and exit\n"
        "\n"
        "Examples:\n"
        "  " PROGRAM " create m.safetensors --tensor fc1.weight:F32:200x784 --fill random:1\n"
        "  " PROGRAM " create big.safetensors --size 1GiB --tensors 8 --fill random:7\n"
        "  " PROGRAM " aggregate avg.safetensors a.safetensors b.safetensors --weights 3,1\n"
        "\n"
        "Exit status: 0 done (diff: identical), 1 failure (diff: different), 2 bad usage.\n");
}

typedef struct {
    const char *tensors[TENSORS_MAX];
    size_t tensor_count;
    uint64_t size;
    uint64_t size_tensors;
    const char *fill;
    json_t *metadata;
    const char *strategy;
    const char *weights;
    double trim;
    bool json;
} s_options_t;

static int s_fail(const char *format, ...) __attribute__((format(printf, 1, 2)));

static int s_fail(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, PROGRAM ": ");
    vfprintf(stderr, format, args);
    fprintf(stderr, "\n");
    va_end(args);
    return ZFED_EXIT_FAILED;
}

//  Reads tensor's bytes [offset, offset + size) of its data.
static int s_read(zfed_safetensors_t *file, const zfed_tensor_t *tensor, uint64_t offset,
                  void *buffer, size_t size, const char *path)
{
    char error[ERROR_SIZE];
    if (zfed_safetensors_read(file, tensor->offset + offset, buffer, size, error, sizeof error) !=
        0)
        return s_fail("%s: %s", path, error);
    return 0;
}

static int s_data_sha256(zfed_safetensors_t *file, const char *path, char *hex)
{
    uint8_t digest[ZFED_SHA256_SIZE];
    if (zfed_sha256_file_range(path, zfed_safetensors_data_offset(file),
                               zfed_layout_nbytes(zfed_safetensors_layout(file)), digest) != 0)
        return s_fail("%s: read: %s", path, strerror(errno));
    zfed_sha256_hex(digest, hex);
    return 0;
}

static zfed_safetensors_t *s_open(const char *path)
{
    char error[ERROR_SIZE];
    zfed_safetensors_t *file = zfed_safetensors_open(path, error, sizeof error);
    if (!file)
        s_fail("%s", error);
    return file;
}

// --------------------------------------------------------------------------
//  info, sha256

static int s_info(const char *path, const s_options_t *options)
{
    zfed_safetensors_t *file = s_open(path);
    if (!file)
        return ZFED_EXIT_FAILED;
    char hex[ZFED_SHA256_HEX_SIZE];
    if (s_data_sha256(file, path, hex) != 0) {
        zfed_safetensors_close(&file);
        return ZFED_EXIT_FAILED;
    }
    const zfed_layout_t *layout = zfed_safetensors_layout(file);
    const json_t *metadata = zfed_safetensors_metadata(file);
    size_t count = zfed_layout_size(layout);
    if (options->json) {
        json_t *tensors = json_array();
        for (size_t index = 0; index < count; index++) {
            const zfed_tensor_t *tensor = zfed_layout_tensor(layout, index);
            json_t *shape = json_array();
            for (uint32_t dim = 0; dim < tensor->ndim; dim++)
                json_array_append_new(shape, json_integer((json_int_t)tensor->shape[dim]));
            json_array_append_new(tensors,
                                  json_pack("{s:s, s:s, s:o, s:I, s:I}", "name", tensor->name,
                                            "dtype", zfed_dtype_name(tensor->dtype), "shape", shape,
                                            "offset", (json_int_t)tensor->offset, "nbytes",
                                            (json_int_t)tensor->nbytes));
        }
        json_t *info =
            json_pack("{s:s, s:I, s:I, s:I, s:s, s:o, s:o}", "file", path, "elements",
                      (json_int_t)zfed_layout_elements(layout), "bytes",
                      (json_int_t)zfed_layout_nbytes(layout), "data_offset",
                      (json_int_t)zfed_safetensors_data_offset(file), "sha256", hex, "tensors",
                      tensors, "metadata", metadata ? json_deep_copy(metadata) : json_object());
        char *text = json_dumps(info, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text);
        free(text);
        json_decref(info);
    } else {
        printf("%s: %zu tensors, %" PRIu64 " elements, %" PRIu64 " bytes of data\n", path, count,
               zfed_layout_elements(layout), zfed_layout_nbytes(layout));
        printf("sha256 %s\n", hex);
        for (size_t index = 0; index < count; index++) {
            const zfed_tensor_t *tensor = zfed_layout_tensor(layout, index);
            char shape[ZFED_TENSOR_DIMS_MAX * 22 + 8];
            printf("  %-32s %-4s %-24s %" PRIu64 " bytes\n", tensor->name,
                   zfed_dtype_name(tensor->dtype),
                   zfed_shape_format(tensor->shape, tensor->ndim, shape, sizeof shape),
                   tensor->nbytes);
        }
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)metadata, key, value)
        {
            printf("metadata %s=%s\n", key, json_string_value(value));
        }
    }
    zfed_safetensors_close(&file);
    return ZFED_EXIT_OK;
}

static int s_sha256(char **paths, int count)
{
    int rc = ZFED_EXIT_OK;
    for (int index = 0; index < count; index++) {
        zfed_safetensors_t *file = s_open(paths[index]);
        char hex[ZFED_SHA256_HEX_SIZE];
        if (!file || s_data_sha256(file, paths[index], hex) != 0)
            rc = ZFED_EXIT_FAILED;
        else
            printf("%s  %s\n", hex, paths[index]);
        zfed_safetensors_close(&file);
    }
    return rc;
}

// --------------------------------------------------------------------------
//  create

static zfed_layout_t *s_layout_from_flags(const s_options_t *options)
{
    zfed_layout_t *layout = zfed_layout_new();
    char error[ERROR_SIZE];
    if (options->size) {
        uint64_t elements = options->size / 4, tensors = options->size_tensors;
        for (uint64_t index = 0; index < tensors; index++) {
            uint64_t count = elements / tensors + (index < elements % tensors ? 1 : 0);
            char name[48];
            snprintf(name, sizeof name, "layers.%" PRIu64 ".weight", index);
            if (zfed_layout_add(layout, name, ZFED_DTYPE_F32, &count, 1, error, sizeof error) != 0)
                zfed_cli_fail(PROGRAM, "--size: %s", error);
        }
        return layout;
    }
    for (size_t index = 0; index < options->tensor_count; index++) {
        const char *spec = options->tensors[index];
        const char *first = strchr(spec, ':');
        const char *second = first ? strchr(first + 1, ':') : NULL;
        if (!second)
            zfed_cli_fail(PROGRAM, "--tensor: expected NAME:DTYPE:SHAPE, got '%s'", spec);
        char name[ZFED_TENSOR_NAME_MAX + 2], dtype_text[16];
        snprintf(name, sizeof name, "%.*s", (int)(first - spec), spec);
        snprintf(dtype_text, sizeof dtype_text, "%.*s", (int)(second - first - 1), first + 1);
        zfed_dtype_t dtype;
        if (zfed_dtype_parse(dtype_text, &dtype) != 0)
            zfed_cli_fail(PROGRAM, "--tensor %s: dtype '%s' is not one of %s", spec, dtype_text,
                          zfed_dtype_list());
        uint64_t shape[ZFED_TENSOR_DIMS_MAX + 1];
        size_t ndim = 0;
        const char *cursor = second + 1;
        while (*cursor) {
            char digits[24];
            size_t length = strspn(cursor, "0123456789");
            if (length == 0 || length >= sizeof digits || ndim > ZFED_TENSOR_DIMS_MAX)
                zfed_cli_fail(PROGRAM,
                              "--tensor %s: shape: expected D1xD2x... of at most %d "
                              "dimensions",
                              spec, ZFED_TENSOR_DIMS_MAX);
            memcpy(digits, cursor, length);
            digits[length] = '\0';
            if (zfed_parse_u64(digits, 0, UINT64_MAX, &shape[ndim++]) != 0)
                zfed_cli_fail(PROGRAM, "--tensor %s: shape: '%s' is too large", spec, digits);
            cursor += length;
            if (*cursor == 'x' && cursor[1])
                cursor++;
            else if (*cursor)
                zfed_cli_fail(PROGRAM, "--tensor %s: shape: expected D1xD2x..., got '%s'", spec,
                              second + 1);
        }
        if (zfed_layout_add(layout, name, dtype, shape, ndim, error, sizeof error) != 0)
            zfed_cli_fail(PROGRAM, "--tensor %s: %s", spec, error);
    }
    return layout;
}

typedef enum { FILL_ZEROS, FILL_VALUE, FILL_RANDOM } s_fill_kind_t;

typedef struct {
    s_fill_kind_t kind;
    double value;
    uint64_t seed;
} s_fill_t;

static s_fill_t s_parse_fill(const char *text)
{
    s_fill_t fill = {FILL_ZEROS, 0, 0};
    if (!text || strcmp(text, "zeros") == 0)
        return fill;
    if (strncmp(text, "value:", 6) == 0) {
        char *end = NULL;
        fill.kind = FILL_VALUE;
        fill.value = strtod(text + 6, &end);
        if (end == text + 6 || *end || !isfinite(fill.value))
            zfed_cli_fail(PROGRAM, "--fill: value:X needs a finite number, got '%s'", text);
        return fill;
    }
    if (strncmp(text, "random:", 7) == 0) {
        fill.kind = FILL_RANDOM;
        if (zfed_parse_u64(text + 7, 0, UINT64_MAX, &fill.seed) != 0)
            zfed_cli_fail(PROGRAM, "--fill: random:SEED needs an integer seed, got '%s'", text);
        return fill;
    }
    zfed_cli_fail(PROGRAM, "--fill: expected zeros, value:X or random:SEED, got '%s'", text);
}

static uint64_t s_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

//  Element index of the model's elements under seed, stored at out[at].
static void s_random_element(uint64_t seed, uint64_t index, zfed_dtype_t dtype, uint8_t *out,
                             size_t at)
{
    uint64_t bits = s_mix(seed * 0x9e3779b97f4a7c15ULL + index + 1);
    if (!zfed_dtype_is_float(dtype)) {
        memcpy(out + at * zfed_dtype_size(dtype), &bits, zfed_dtype_size(dtype));
        return;
    }
    //  Four 16-bit uniforms: their sum is close to normal.
    double sum = 0;
    for (int part = 0; part < 4; part++)
        sum += (double)((bits >> (16 * part)) & 0xffff) / 65536.0;
    zfed_dtype_set_f64(dtype, out, at, (sum - 2.0) * RANDOM_SIGMA * 1.7320508075688772);
}

static int s_create(const char *path, const s_options_t *options)
{
    if (!options->size && options->tensor_count == 0)
        zfed_cli_fail(PROGRAM, "create needs --tensor NAME:DTYPE:SHAPE or --size BYTES");
    if (options->size && options->tensor_count)
        zfed_cli_fail(PROGRAM, "--size and --tensor do not go together");
    s_fill_t fill = s_parse_fill(options->fill);
    zfed_layout_t *layout = s_layout_from_flags(options);
    for (size_t index = 0; fill.kind == FILL_VALUE && index < zfed_layout_size(layout); index++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(layout, index);
        uint64_t bits;
        if (zfed_dtype_set_f64(tensor->dtype, &bits, 0, fill.value) != 0)
            zfed_cli_fail(PROGRAM, "--fill %s: not a value of tensor %s's dtype %s", options->fill,
                          tensor->name, zfed_dtype_name(tensor->dtype));
    }
    char error[ERROR_SIZE];
    zfed_safetensors_writer_t *writer =
        zfed_safetensors_create(path, layout, options->metadata, error, sizeof error);
    uint8_t *buffer = calloc(1, CHUNK_BYTES);
    int rc = writer && buffer ? ZFED_EXIT_OK : s_fail("%s", writer ? "out of memory" : error);
    for (size_t index = 0; rc == ZFED_EXIT_OK && index < zfed_layout_size(layout); index++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(layout, index);
        size_t size = zfed_dtype_size(tensor->dtype);
        uint64_t per_chunk = CHUNK_BYTES / size;
        for (uint64_t done = 0; rc == ZFED_EXIT_OK && done < tensor->count; done += per_chunk) {
            uint64_t n = tensor->count - done < per_chunk ? tensor->count - done : per_chunk;
            for (uint64_t i = 0; fill.kind != FILL_ZEROS && i < n; i++) {
                if (fill.kind == FILL_VALUE)
                    zfed_dtype_set_f64(tensor->dtype, buffer, i, fill.value);
                else
                    s_random_element(fill.seed, tensor->first + done + i, tensor->dtype, buffer, i);
            }
            if (zfed_safetensors_write(writer, buffer, n * size, error, sizeof error) != 0)
                rc = s_fail("%s", error);
        }
    }
    if (rc == ZFED_EXIT_OK && zfed_safetensors_finish(&writer, error, sizeof error) != 0)
        rc = s_fail("%s", error);
    zfed_safetensors_abandon(&writer);
    free(buffer);
    zfed_layout_destroy(&layout);
    return rc;
}

// --------------------------------------------------------------------------
//  diff

static int s_diff(const char *path_a, const char *path_b)
{
    zfed_safetensors_t *a = s_open(path_a), *b = a ? s_open(path_b) : NULL;
    if (!a || !b) {
        zfed_safetensors_close(&a);
        return ZFED_EXIT_FAILED;
    }
    const zfed_layout_t *layout = zfed_safetensors_layout(a);
    char diff[ERROR_SIZE], reference[64];
    snprintf(reference, sizeof reference, "A");
    int rc = ZFED_EXIT_OK;
    if (!zfed_layout_equal(zfed_safetensors_layout(b), layout, reference, diff, sizeof diff)) {
        printf("layouts differ: B: %s\n", diff);
        rc = ZFED_EXIT_FAILED;
        goto done;
    }
    uint8_t *left = malloc(CHUNK_BYTES), *right = malloc(CHUNK_BYTES);
    for (size_t index = 0; left && right && index < zfed_layout_size(layout); index++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(layout, index);
        size_t size = zfed_dtype_size(tensor->dtype);
        uint64_t per_chunk = CHUNK_BYTES / size, differ = 0, where = 0;
        double largest = 0;
        for (uint64_t done = 0; done < tensor->count; done += per_chunk) {
            uint64_t n = tensor->count - done < per_chunk ? tensor->count - done : per_chunk;
            if (s_read(a, tensor, done * size, left, n * size, path_a) != 0 ||
                s_read(b, tensor, done * size, right, n * size, path_b) != 0) {
                rc = ZFED_EXIT_FAILED;
                goto free;
            }
            for (uint64_t i = 0; i < n; i++) {
                if (memcmp(left + i * size, right + i * size, size) == 0)
                    continue;
                double gap = fabs(zfed_dtype_get_f64(tensor->dtype, left, i) -
                                  zfed_dtype_get_f64(tensor->dtype, right, i));
                //  The largest gap, or the first NaN (which stays).
                if (differ++ == 0 || (!isnan(largest) && (isnan(gap) || gap > largest))) {
                    largest = gap;
                    where = done + i;
                }
            }
        }
        if (differ) {
            printf("%s: %" PRIu64 " of %" PRIu64 " elements differ, max |a - b| = %.9g at element "
                   "%" PRIu64 "\n",
                   tensor->name, differ, tensor->count, largest, where);
            rc = ZFED_EXIT_FAILED;
        }
    }
    if (!left || !right)
        rc = s_fail("out of memory");
    else if (rc == ZFED_EXIT_OK)
        printf("identical: %zu tensors, %" PRIu64 " bytes\n", zfed_layout_size(layout),
               zfed_layout_nbytes(layout));
free:
    free(left);
    free(right);
done:
    zfed_safetensors_close(&a);
    zfed_safetensors_close(&b);
    return rc;
}

// --------------------------------------------------------------------------
//  aggregate

typedef enum {
    AGG_FEDAVG,
    AGG_MEAN,
    AGG_SUM,
    AGG_MEDIAN,
    AGG_TRIMMED,
    AGG_MIN,
    AGG_MAX
} s_strategy_t;

static s_strategy_t s_parse_strategy(const char *name)
{
    static const char *names[] = {"fedavg", "mean", "sum", "median", "trimmed-mean", "min", "max"};
    for (size_t index = 0; index < sizeof names / sizeof *names; index++)
        if (name && strcmp(name, names[index]) == 0)
            return (s_strategy_t)index;
    zfed_cli_fail(PROGRAM,
                  "--strategy: expected fedavg, mean, sum, median, trimmed-mean, min "
                  "or max, got '%s'",
                  name ? name : "");
}

//  One chunk of every input -> one chunk of the output.
static int s_aggregate_chunk(s_strategy_t strategy, zfed_exact_t *acc, zfed_reduce_t *reduce,
                             uint8_t **chunks, size_t inputs, const uint64_t *weights,
                             uint64_t divisor, double trim, zfed_dtype_t dtype, size_t n,
                             uint8_t *out, char *error, size_t error_size)
{
    const void *const *sources = (const void *const *)chunks;
    switch (strategy) {
    case AGG_MEDIAN:
        return zfed_reduce_median(reduce, sources, inputs, dtype, n, out, error, error_size);
    case AGG_TRIMMED:
        return zfed_reduce_trimmed_mean(reduce, sources, inputs, dtype, n, trim, out, error,
                                        error_size);
    case AGG_MIN:
        return zfed_reduce_min(reduce, sources, inputs, dtype, n, out, error, error_size);
    case AGG_MAX:
        return zfed_reduce_max(reduce, sources, inputs, dtype, n, out, error, error_size);
    default:
        break;
    }
    zfed_exact_reset(acc);
    for (size_t r = 0; r < inputs; r++) {
        size_t bad;
        zfed_finite_t kind = zfed_dtype_check_finite(dtype, chunks[r], n, &bad);
        if (kind != ZFED_FINITE) {
            snprintf(error, error_size, "input %zu element %zu: %s", r + 1, bad,
                     zfed_finite_name(kind));
            return -1;
        }
        if (zfed_exact_fold(acc, 0, chunks[r], dtype, n, strategy == AGG_MEAN ? 1 : weights[r],
                            error, error_size) != 0)
            return -1;
    }
    return zfed_exact_round(acc, 0, n, divisor, dtype, out, error, error_size);
}

static int s_aggregate(char **paths, int count, const s_options_t *options)
{
    const char *out_path = paths[0];
    size_t inputs = (size_t)count - 1;
    if (inputs < 1 || inputs > INPUTS_MAX)
        zfed_cli_fail(PROGRAM, "aggregate: expected OUT and 1 to %d inputs", INPUTS_MAX);
    s_strategy_t strategy = s_parse_strategy(options->strategy ? options->strategy : "fedavg");
    uint64_t weights[INPUTS_MAX];
    for (size_t r = 0; r < inputs; r++)
        weights[r] = 1;
    if (options->weights) {
        if (strategy != AGG_FEDAVG && strategy != AGG_SUM)
            zfed_cli_fail(PROGRAM, "--weights: only for fedavg and sum");
        char *list = strdup(options->weights), *save = NULL;
        size_t given = 0;
        for (char *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
            if (given == inputs)
                zfed_cli_fail(PROGRAM, "--weights: more weights than the %zu inputs", inputs);
            weights[given++] = zfed_cli_u64(PROGRAM, "--weights", item, 0, UINT64_MAX);
        }
        free(list);
        if (given != inputs)
            zfed_cli_fail(PROGRAM, "--weights: %zu weights for %zu inputs", given, inputs);
    }
    uint64_t divisor = strategy == AGG_MEAN ? inputs : 1;
    if (strategy == AGG_FEDAVG) {
        divisor = 0;
        for (size_t r = 0; r < inputs; r++)
            if (__builtin_add_overflow(divisor, weights[r], &divisor))
                zfed_cli_fail(PROGRAM, "--weights: the total is past 2^64");
        if (divisor == 0)
            zfed_cli_fail(PROGRAM, "--weights: the total weight is 0");
    }
    zfed_safetensors_t *files[INPUTS_MAX] = {0};
    uint8_t *chunks[INPUTS_MAX] = {0};
    int rc = ZFED_EXIT_OK;
    char error[ERROR_SIZE], diff[ERROR_SIZE];
    for (size_t r = 0; rc == ZFED_EXIT_OK && r < inputs; r++) {
        files[r] = s_open(paths[r + 1]);
        chunks[r] = malloc(CHUNK_BYTES);
        if (!files[r] || !chunks[r])
            rc = ZFED_EXIT_FAILED;
        else if (r > 0 && !zfed_layout_equal(zfed_safetensors_layout(files[r]),
                                             zfed_safetensors_layout(files[0]), "input 1", diff,
                                             sizeof diff))
            rc = s_fail("input %zu (%s): %s", r + 1, paths[r + 1], diff);
    }
    const zfed_layout_t *layout = rc == ZFED_EXIT_OK ? zfed_safetensors_layout(files[0]) : NULL;
    zfed_safetensors_writer_t *writer =
        layout ? zfed_safetensors_create(out_path, layout, NULL, error, sizeof error) : NULL;
    if (layout && !writer)
        rc = s_fail("%s", error);
    uint64_t chunk_elements = CHUNK_BYTES / 8;
    zfed_exact_t *acc = zfed_exact_new(chunk_elements);
    zfed_reduce_t *reduce = zfed_reduce_new();
    uint8_t *out = malloc(CHUNK_BYTES);
    if (rc == ZFED_EXIT_OK && (!acc || !reduce || !out))
        rc = s_fail("out of memory");
    for (size_t index = 0; rc == ZFED_EXIT_OK && index < zfed_layout_size(layout); index++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(layout, index);
        size_t size = zfed_dtype_size(tensor->dtype);
        for (uint64_t done = 0; rc == ZFED_EXIT_OK && done < tensor->count;
             done += chunk_elements) {
            size_t n = (size_t)(tensor->count - done < chunk_elements ? tensor->count - done
                                                                      : chunk_elements);
            for (size_t r = 0; rc == ZFED_EXIT_OK && r < inputs; r++)
                if (s_read(files[r], tensor, done * size, chunks[r], n * size, paths[r + 1]) != 0)
                    rc = ZFED_EXIT_FAILED;
            if (rc == ZFED_EXIT_OK &&
                s_aggregate_chunk(strategy, acc, reduce, chunks, inputs, weights, divisor,
                                  options->trim, tensor->dtype, n, out, error, sizeof error) != 0)
                rc = s_fail("tensor %s (from element %" PRIu64 "): %s", tensor->name, done, error);
            if (rc == ZFED_EXIT_OK &&
                zfed_safetensors_write(writer, out, n * size, error, sizeof error) != 0)
                rc = s_fail("%s", error);
        }
    }
    if (rc == ZFED_EXIT_OK && zfed_safetensors_finish(&writer, error, sizeof error) != 0)
        rc = s_fail("%s", error);
    zfed_safetensors_abandon(&writer);
    zfed_exact_destroy(&acc);
    zfed_reduce_destroy(&reduce);
    free(out);
    for (size_t r = 0; r < inputs; r++) {
        zfed_safetensors_close(&files[r]);
        free(chunks[r]);
    }
    return rc;
}

// --------------------------------------------------------------------------

enum {
    OPT_TENSOR = 256,
    OPT_SIZE,
    OPT_TENSORS,
    OPT_FILL,
    OPT_METADATA,
    OPT_STRATEGY,
    OPT_WEIGHTS,
    OPT_TRIM,
    OPT_JSON,
};

//  Options that belong to one command only.
static void s_only_for(const char *command, const char *wanted, bool given, const char *flag)
{
    if (given && strcmp(command, wanted) != 0)
        zfed_cli_fail(PROGRAM, "%s: only for %s", flag, wanted);
}

int main(int argc, char **argv)
{
    static const struct option flags[] = {
        {"tensor", required_argument, NULL, OPT_TENSOR},
        {"size", required_argument, NULL, OPT_SIZE},
        {"tensors", required_argument, NULL, OPT_TENSORS},
        {"fill", required_argument, NULL, OPT_FILL},
        {"metadata", required_argument, NULL, OPT_METADATA},
        {"strategy", required_argument, NULL, OPT_STRATEGY},
        {"weights", required_argument, NULL, OPT_WEIGHTS},
        {"trim", required_argument, NULL, OPT_TRIM},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    s_options_t options = {.trim = 0.1, .size_tensors = 0};
    bool trim_given = false;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":hV", flags, NULL)) != -1) {
        switch (option) {
        case OPT_TENSOR:
            if (options.tensor_count == TENSORS_MAX)
                zfed_cli_fail(PROGRAM, "--tensor: at most %d", TENSORS_MAX);
            options.tensors[options.tensor_count++] = optarg;
            break;
        case OPT_SIZE:
            options.size = zfed_cli_bytes(PROGRAM, "--size", optarg, 4, ZFED_MODEL_BYTES_MAX);
            if (options.size % 4)
                zfed_cli_fail(PROGRAM, "--size: %s is not a whole number of float32 values",
                              optarg);
            break;
        case OPT_TENSORS:
            options.size_tensors = zfed_cli_u64(PROGRAM, "--tensors", optarg, 1, TENSORS_MAX);
            break;
        case OPT_FILL:
            options.fill = optarg;
            break;
        case OPT_METADATA: {
            const char *equals = strchr(optarg, '=');
            if (!equals || equals == optarg)
                zfed_cli_fail(PROGRAM, "--metadata: expected KEY=VALUE, got '%s'", optarg);
            if (!options.metadata)
                options.metadata = json_object();
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)(equals - optarg), optarg);
            json_t *value = json_string(equals + 1);
            if (!value || json_object_set_new(options.metadata, key, value) != 0)
                zfed_cli_fail(PROGRAM, "--metadata: '%s' is not UTF-8", optarg);
            break;
        }
        case OPT_STRATEGY:
            options.strategy = optarg;
            break;
        case OPT_WEIGHTS:
            options.weights = optarg;
            break;
        case OPT_TRIM:
            if (zfed_parse_double(optarg, 0.0, 0.5, &options.trim) != 0 || options.trim >= 0.5)
                zfed_cli_fail(PROGRAM, "--trim: expected a fraction in [0, 0.5), got '%s'", optarg);
            trim_given = true;
            break;
        case OPT_JSON:
            options.json = true;
            break;
        case 'h':
            s_usage();
            return ZFED_EXIT_OK;
        case 'V':
            zfed_cli_version(PROGRAM);
            return ZFED_EXIT_OK;
        default:
            zfed_cli_bad_option(PROGRAM, argc, argv, option);
        }
    }
    if (optind >= argc)
        zfed_cli_fail(PROGRAM, "COMMAND is missing (info, sha256, create, diff, aggregate)");
    const char *command = argv[optind];
    char **files = argv + optind + 1;
    int file_count = argc - optind - 1;
    bool create_flags = options.tensor_count || options.size || options.size_tensors ||
                        options.fill || options.metadata;
    s_only_for(command, "create", create_flags,
               "--tensor, --size, --tensors, --fill and --metadata");
    s_only_for(command, "aggregate", options.strategy || options.weights || trim_given,
               "--strategy, --weights and --trim");
    s_only_for(command, "info", options.json, "--json");
    if (options.size && !options.size_tensors)
        options.size_tensors = 1;
    if (options.size_tensors && !options.size)
        zfed_cli_fail(PROGRAM, "--tensors: goes with --size");
    int rc;
    if (strcmp(command, "info") == 0) {
        if (file_count != 1)
            zfed_cli_fail(PROGRAM, "info: expected one FILE");
        rc = s_info(files[0], &options);
    } else if (strcmp(command, "sha256") == 0) {
        if (file_count < 1)
            zfed_cli_fail(PROGRAM, "sha256: expected FILE...");
        rc = s_sha256(files, file_count);
    } else if (strcmp(command, "create") == 0) {
        if (file_count != 1)
            zfed_cli_fail(PROGRAM, "create: expected one FILE");
        rc = s_create(files[0], &options);
    } else if (strcmp(command, "diff") == 0) {
        if (file_count != 2)
            zfed_cli_fail(PROGRAM, "diff: expected two FILEs");
        rc = s_diff(files[0], files[1]);
    } else if (strcmp(command, "aggregate") == 0) {
        if (file_count < 2)
            zfed_cli_fail(PROGRAM, "aggregate: expected OUT and at least one input");
        rc = s_aggregate(files, file_count, &options);
    } else {
        zfed_cli_fail(PROGRAM, "unknown command '%s' (info, sha256, create, diff, aggregate)",
                      command);
    }
    json_decref(options.metadata);
    return rc;
}
