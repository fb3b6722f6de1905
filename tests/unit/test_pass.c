/*  test_pass - the aggregation pass against the same strategies computed
    over whole tensors at once: a layout that puts elements across chunk
    edges (an F32 tensor at an odd offset, U8 and F16 between), results in
    memory and by reference at three chunk sizes (the pass's, a smaller
    one that does not divide it, one larger than the model), chunks handed
    in shuffled order, so the bytes can only match if windows, runs and
    chunk assembly are right.  Also: the read-ahead bound, Krum with a
    liar, a server optimiser over two steps through its state files, and
    every way a pass drops a result.
*/
#include "controller/zfed_pass.h"
#include "controller/zfed_window.h"
#include "zfed/zfed_exact.h"
#include "zfed/zfed_safetensors.h"
#include "zfed/zfed_sha256.h"
#include "zfed_test.h"
#include "zfed_test_fs.h"
#include "zfed_test_model.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define SOURCES    5
#define PASS_CHUNK 512
//  The big layout's window (elements past zfed_combine's block of 32,768).
#define BIG_CHUNK (1 << 20)
#define REQUESTS  4096

static char s_dir[256];
static char s_global_path[300];
static char s_out_path[300];
static zfed_layout_t *s_layout;
static zfed_model_t *s_global;
static zfed_model_t *s_results[SOURCES];
static const uint64_t s_weights[SOURCES] = {3, 1, 4, 1, 5};
//  Chunk size of each result: 0 in memory.
static uint64_t s_chunks[SOURCES] = {0, PASS_CHUNK, 300, 1 << 20, 0};
static uint64_t s_pass_chunk = PASS_CHUNK;

static void s_layout_make(void)
{
    char error[256];
    s_layout = zfed_layout_new();
    const uint64_t a[] = {3}, b[] = {25, 40}, c[] = {7}, z[] = {0}, d[] = {300}, e[] = {50},
                   f[] = {101}, g[] = {};
    REQUIRE(zfed_layout_add(s_layout, "a.f16", ZFED_DTYPE_F16, a, 1, error, sizeof error) == 0);
    REQUIRE(zfed_layout_add(s_layout, "b.f32", ZFED_DTYPE_F32, b, 2, error, sizeof error) == 0);
    REQUIRE(zfed_layout_add(s_layout, "c.u8", ZFED_DTYPE_U8, c, 1, error, sizeof error) == 0);
    REQUIRE(zfed_layout_add(s_layout, "z.empty", ZFED_DTYPE_F32, z, 1, error, sizeof error) == 0);
    REQUIRE(zfed_layout_add(s_layout, "d.f64", ZFED_DTYPE_F64, d, 1, error, sizeof error) == 0);
    REQUIRE(zfed_layout_add(s_layout, "e.i32", ZFED_DTYPE_I32, e, 1, error, sizeof error) == 0);
    REQUIRE(zfed_layout_add(s_layout, "f.bf16", ZFED_DTYPE_BF16, f, 1, error, sizeof error) == 0);
    REQUIRE(zfed_layout_add(s_layout, "g.scalar", ZFED_DTYPE_F32, g, 0, error, sizeof error) == 0);
}

//  Values near center (floats), small integers (so sums stay in range).
static zfed_model_t *s_model(uint64_t seed, double center, double spread)
{
    zfed_layout_t *layout = zfed_layout_dup(s_layout);
    zfed_model_t *model = zfed_model_new(&layout);
    uint64_t state = seed;
    for (size_t t = 0; t < zfed_layout_size(s_layout); t++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(s_layout, t);
        uint8_t *data = zfed_model_tensor_data(model, t);
        for (uint64_t i = 0; i < tensor->count; i++) {
            if (zfed_dtype_is_float(tensor->dtype))
                zfed_dtype_set_f64(tensor->dtype, data, i,
                                   center + zfed_test_normal(&state, spread));
            else
                zfed_dtype_set_f64(tensor->dtype, data, i, (double)(zfed_test_random(&state) % 40));
        }
    }
    return model;
}

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/zfed-test-pass-%d", (int)getpid());
    zfed_test_remove_tree(s_dir);
    REQUIRE(mkdir(s_dir, 0755) == 0);
    snprintf(s_global_path, sizeof s_global_path, "%s/global.safetensors", s_dir);
    snprintf(s_out_path, sizeof s_out_path, "%s/out.safetensors", s_dir);
    s_layout_make();
    s_global = s_model(1, 0.0, 1.0);
    char error[256];
    REQUIRE(zfed_safetensors_save(s_global_path, s_global, NULL, error, sizeof error) == 0);
    for (size_t r = 0; r < SOURCES; r++)
        s_results[r] = s_model(100 + r, 0.5, 1.0);
}

//  ---------------------------------------------------------------------
//  A fake fetcher, as zfed_fetcher behaves: a transfer keeps at most
//  WINDOW chunks fetched and not freed; fetches are answered in shuffled
//  order.

#define WINDOW 4

typedef struct {
    size_t source;
    uint64_t index;
    unsigned generation;
} request_t;

typedef struct {
    bool running;
    unsigned generation;
    uint64_t next;
    uint64_t chunks;
    unsigned taken; //  fetched and not freed
} transfer_t;

static transfer_t s_transfers[SOURCES];
static zfed_model_t *const *s_serving; //  the results the fake serves
static request_t s_requests[REQUESTS];
static size_t s_pending;
static size_t s_most_pending;
static unsigned s_most_taken;
static uint64_t s_state = 7;
static int s_fail_source = -1;  //  a source whose transfer cannot start
static int s_short_source = -1; //  a source whose chunk 1 is short

static void s_refill(size_t source)
{
    transfer_t *transfer = &s_transfers[source];
    while (transfer->running && transfer->taken < WINDOW && transfer->next < transfer->chunks) {
        REQUIRE(s_pending < REQUESTS);
        s_requests[s_pending++] = (request_t){source, transfer->next++, transfer->generation};
        transfer->taken++;
    }
    if (transfer->taken > s_most_taken)
        s_most_taken = transfer->taken;
    if (s_pending > s_most_pending)
        s_most_pending = s_pending;
}

static int s_start(void *hint, size_t source, uint64_t first)
{
    (void)hint;
    if ((int)source == s_fail_source)
        return -1;
    transfer_t *transfer = &s_transfers[source];
    REQUIRE(!transfer->running);
    uint64_t size = zfed_model_nbytes(s_serving[source]);
    *transfer = (transfer_t){.running = true,
                             .generation = transfer->generation + 1,
                             .next = first,
                             .chunks = (size + s_chunks[source] - 1) / s_chunks[source]};
    s_refill(source);
    return 0;
}

static void s_cancel(void *hint, size_t source)
{
    (void)hint;
    s_transfers[source].running = false;
    size_t kept = 0;
    for (size_t i = 0; i < s_pending; i++)
        if (s_requests[i].source != source)
            s_requests[kept++] = s_requests[i];
    s_pending = kept;
}

typedef struct {
    size_t source;
    unsigned generation;
} chunk_hint_t;

static void s_free(void *data, void *hint)
{
    chunk_hint_t *chunk = hint;
    transfer_t *transfer = &s_transfers[chunk->source];
    if (transfer->running && transfer->generation == chunk->generation) {
        transfer->taken--;
        s_refill(chunk->source);
    }
    free(chunk);
    free(data);
}

//  Answers one pending fetch at random: a malloc'ed copy of the chunk.
static void s_answer_one(zfed_pass_t *pass)
{
    size_t pick = (size_t)(zfed_test_random(&s_state) % s_pending);
    request_t request = s_requests[pick];
    s_requests[pick] = s_requests[--s_pending];
    uint64_t size = zfed_model_nbytes(s_serving[request.source]);
    uint64_t chunk = s_chunks[request.source];
    uint64_t offset = request.index * chunk;
    size_t length = (size_t)(size - offset < chunk ? size - offset : chunk);
    if ((int)request.source == s_short_source && request.index == 1)
        length--;
    uint8_t *copy = malloc(length ? length : 1);
    memcpy(copy, (const uint8_t *)zfed_model_data(s_serving[request.source]) + offset, length);
    chunk_hint_t *hint = malloc(sizeof *hint);
    *hint = (chunk_hint_t){request.source, request.generation};
    zfed_pass_chunk(pass, request.source, request.index, copy, length, s_free, hint);
}

static zfed_pass_settings_t s_settings(zfed_agg_strategy_t strategy)
{
    return (zfed_pass_settings_t){.strategy = strategy,
                                  .trim = 0.2,
                                  .krum_f = 1,
                                  .krum_m = 2,
                                  .chunk = s_pass_chunk,
                                  .layout = s_layout,
                                  .global_path = s_global_path,
                                  .out_path = s_out_path};
}

//  Runs a pass over results to its end; returns its status, *pass_p kept.
static zfed_pass_status_t s_run(const zfed_pass_settings_t *settings, zfed_model_t *const *results,
                                size_t count, zfed_pass_t **pass_p)
{
    zfed_pass_source_t sources[SOURCES];
    for (size_t r = 0; r < count; r++)
        sources[r] = (zfed_pass_source_t){.weight = s_weights[r],
                                          .data = s_chunks[r] ? NULL : zfed_model_data(results[r]),
                                          .chunk = s_chunks[r]};
    zfed_pass_fetch_t fetch = {NULL, s_start, s_cancel};
    char reason[ZFED_PASS_REASON_MAX];
    s_pending = s_most_pending = s_most_taken = 0;
    s_serving = results;
    zfed_pass_t *pass = zfed_pass_new(settings, sources, count, &fetch, reason, sizeof reason);
    if (!pass)
        fprintf(stderr, "pass: %s\n", reason);
    REQUIRE(pass);
    zfed_pass_status_t status;
    while ((status = zfed_pass_step(pass)) == ZFED_PASS_WAITING) {
        REQUIRE(s_pending > 0); //  waiting means something was asked for
        s_answer_one(pass);
    }
    *pass_p = pass;
    return status;
}

//  ---------------------------------------------------------------------
//  References, whole tensors at a time

static zfed_model_t *s_reference_exact(zfed_model_t *const *results, size_t count,
                                       const uint64_t *weights, uint64_t divisor)
{
    zfed_layout_t *layout = zfed_layout_dup(s_layout);
    zfed_model_t *out = zfed_model_new(&layout);
    zfed_exact_t *acc = zfed_exact_new(zfed_layout_elements(s_layout) + 1);
    char error[256];
    for (size_t t = 0; t < zfed_layout_size(s_layout); t++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(s_layout, t);
        for (size_t r = 0; r < count; r++)
            REQUIRE(zfed_exact_fold(acc, tensor->first, zfed_model_tensor_data(results[r], t),
                                    tensor->dtype, tensor->count, weights ? weights[r] : 1, error,
                                    sizeof error) == 0);
        REQUIRE(zfed_exact_round(acc, tensor->first, tensor->count, divisor, tensor->dtype,
                                 zfed_model_tensor_data(out, t), error, sizeof error) == 0);
    }
    zfed_exact_destroy(&acc);
    return out;
}

static zfed_model_t *s_reference_reduce(zfed_agg_strategy_t strategy, double trim)
{
    zfed_layout_t *layout = zfed_layout_dup(s_layout);
    zfed_model_t *out = zfed_model_new(&layout);
    zfed_reduce_t *reduce = zfed_reduce_new();
    char error[256];
    for (size_t t = 0; t < zfed_layout_size(s_layout); t++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(s_layout, t);
        const void *sources[SOURCES];
        for (size_t r = 0; r < SOURCES; r++)
            sources[r] = zfed_model_tensor_data(s_results[r], t);
        void *into = zfed_model_tensor_data(out, t);
        size_t n = (size_t)tensor->count;
        int rc = strategy == ZFED_AGG_MEDIAN
                     ? zfed_reduce_median(reduce, sources, SOURCES, tensor->dtype, n, into, error,
                                          sizeof error)
                 : strategy == ZFED_AGG_TRIMMED_MEAN
                     ? zfed_reduce_trimmed_mean(reduce, sources, SOURCES, tensor->dtype, n, trim,
                                                into, error, sizeof error)
                 : strategy == ZFED_AGG_MIN
                     ? zfed_reduce_min(reduce, sources, SOURCES, tensor->dtype, n, into, error,
                                       sizeof error)
                     : zfed_reduce_max(reduce, sources, SOURCES, tensor->dtype, n, into, error,
                                       sizeof error);
        REQUIRE(rc == 0);
    }
    zfed_reduce_destroy(&reduce);
    return out;
}

//  The pass's output file equals want, and its digest is want's.
static void s_check_output(zfed_pass_t *pass, const zfed_model_t *want)
{
    char error[256];
    zfed_model_t *got = zfed_safetensors_load(s_out_path, NULL, error, sizeof error);
    REQUIRE(got);
    CHECK(zfed_layout_equal(zfed_model_layout(got), s_layout, "the layout", error, sizeof error));
    REQUIRE(zfed_model_nbytes(got) == zfed_model_nbytes(want));
    CHECK(memcmp(zfed_model_data(got), zfed_model_data(want), zfed_model_nbytes(want)) == 0);
    uint8_t digest[ZFED_SHA256_SIZE];
    zfed_sha256(zfed_model_data(want), zfed_model_nbytes(want), digest);
    CHECK(memcmp(zfed_pass_sha256(pass), digest, sizeof digest) == 0);
    CHECK(zfed_pass_size(pass) == zfed_model_nbytes(want));
    zfed_model_destroy(&got);
}

//  ||result - global|| in float64 over every element.
static double s_reference_norm(const zfed_model_t *result)
{
    double sum = 0;
    for (size_t t = 0; t < zfed_layout_size(s_layout); t++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(s_layout, t);
        for (uint64_t i = 0; i < tensor->count; i++) {
            double d = zfed_dtype_get_f64(tensor->dtype, zfed_model_tensor_data(result, t), i) -
                       zfed_dtype_get_f64(tensor->dtype, zfed_model_tensor_data(s_global, t), i);
            sum += d * d;
        }
    }
    return sqrt(sum);
}

//  ---------------------------------------------------------------------
//  Tests

static void s_test_windows_tile(void)
{
    zfed_windows_t *windows = zfed_windows_new(s_layout, PASS_CHUNK);
    REQUIRE(windows);
    uint64_t size = zfed_layout_nbytes(s_layout), at = 0, elements = 0;
    CHECK(zfed_windows_count(windows) == (size + PASS_CHUNK - 1) / PASS_CHUNK);
    for (uint64_t i = 0; i < zfed_windows_count(windows); i++) {
        const zfed_window_t *window = zfed_windows_get(windows, i);
        REQUIRE(window);
        CHECK(window->start == at);
        CHECK(zfed_windows_start(windows, i) == at);
        CHECK(window->start >= i * PASS_CHUNK && window->start < i * PASS_CHUNK + 8);
        CHECK(window->end - window->start <= zfed_windows_max_span(windows));
        uint64_t bytes = 0;
        for (size_t r = 0; r < window->runs; r++) {
            const zfed_run_t *run = &window->run[r];
            const zfed_tensor_t *tensor = zfed_layout_tensor(s_layout, run->tensor);
            CHECK(run->offset == bytes);
            CHECK(tensor->offset + run->first * zfed_dtype_size(tensor->dtype) ==
                  window->start + run->offset);
            bytes += run->count * zfed_dtype_size(tensor->dtype);
        }
        CHECK(window->start + bytes == window->end);
        elements += window->elements;
        at = window->end;
    }
    CHECK(at == size);
    CHECK(zfed_windows_start(windows, zfed_windows_count(windows)) == size);
    CHECK(elements == zfed_layout_elements(s_layout));
    //  Out of order access gives the same windows.
    const zfed_window_t *third = zfed_windows_get(windows, 3);
    uint64_t start = third->start;
    zfed_windows_get(windows, 0);
    CHECK(zfed_windows_get(windows, 3)->start == start);
    zfed_windows_destroy(&windows);
}

static void s_test_exact_strategies(void)
{
    const zfed_agg_strategy_t strategies[] = {ZFED_AGG_FEDAVG, ZFED_AGG_MEAN, ZFED_AGG_SUM,
                                              ZFED_AGG_FEDAVG};
    uint64_t total = 0;
    for (size_t r = 0; r < SOURCES; r++)
        total += s_weights[r];
    uint64_t mixed[SOURCES];
    memcpy(mixed, s_chunks, sizeof mixed);
    for (size_t k = 0; k < 4; k++) {
        //  The last time, every result by reference at the pass's chunk:
        //  windows of 512 bytes, read from the frames in place.
        for (size_t r = 0; r < SOURCES; r++)
            s_chunks[r] = k == 3 ? s_pass_chunk : mixed[r];
        zfed_pass_settings_t settings = s_settings(strategies[k]);
        zfed_pass_t *pass = NULL;
        CHECK_INT(s_run(&settings, s_results, SOURCES, &pass), ZFED_PASS_DONE);
        zfed_model_t *want = s_reference_exact(s_results, SOURCES,
                                               strategies[k] == ZFED_AGG_FEDAVG ? s_weights : NULL,
                                               strategies[k] == ZFED_AGG_FEDAVG ? total
                                               : strategies[k] == ZFED_AGG_MEAN ? SOURCES
                                                                                : 1);
        s_check_output(pass, want);
        for (size_t r = 0; r < SOURCES; r++) {
            double norm = s_reference_norm(s_results[r]);
            CHECK(fabs(zfed_pass_norm(pass, r) - norm) <= 1e-12 * norm);
        }
        //  Every chunk handed in was freed, no transfer stalled at its
        //  window, and the chunks held stayed within the windows.
        CHECK(zfed_pass_held_bytes(pass) == 0);
        CHECK(zfed_pass_held_peak(pass) <=
              2 * WINDOW * s_pass_chunk + WINDOW * 300 + (uint64_t)WINDOW * (2 << 20));
        CHECK(s_most_taken <= WINDOW);
        for (size_t r = 0; r < SOURCES; r++)
            CHECK(!s_transfers[r].running);
        zfed_pass_destroy(&pass);
        zfed_model_destroy(&want);
    }
    memcpy(s_chunks, mixed, sizeof mixed);
}

//  The update norms are the same bits with and without AVX2 (and the
//  model too: zfed_exact's paths agree).
static void s_test_norms_without_simd(void)
{
    zfed_pass_settings_t settings = s_settings(ZFED_AGG_FEDAVG);
    zfed_pass_t *fast = NULL, *plain = NULL;
    CHECK_INT(s_run(&settings, s_results, SOURCES, &fast), ZFED_PASS_DONE);
    zfed_exact_set_simd(false);
    CHECK_INT(s_run(&settings, s_results, SOURCES, &plain), ZFED_PASS_DONE);
    zfed_exact_set_simd(true);
    for (size_t r = 0; r < SOURCES; r++) {
        double a = zfed_pass_norm(fast, r), b = zfed_pass_norm(plain, r);
        CHECK(memcmp(&a, &b, sizeof a) == 0);
    }
    CHECK(memcmp(zfed_pass_sha256(fast), zfed_pass_sha256(plain), ZFED_SHA256_SIZE) == 0);
    zfed_pass_destroy(&fast);
    zfed_pass_destroy(&plain);
}

static void s_test_reductions(void)
{
    const zfed_agg_strategy_t strategies[] = {ZFED_AGG_MEDIAN, ZFED_AGG_TRIMMED_MEAN, ZFED_AGG_MIN,
                                              ZFED_AGG_MAX};
    for (size_t k = 0; k < 4; k++) {
        zfed_pass_settings_t settings = s_settings(strategies[k]);
        zfed_pass_t *pass = NULL;
        CHECK_INT(s_run(&settings, s_results, SOURCES, &pass), ZFED_PASS_DONE);
        zfed_model_t *want = s_reference_reduce(strategies[k], settings.trim);
        s_check_output(pass, want);
        zfed_pass_destroy(&pass);
        zfed_model_destroy(&want);
    }
}

static void s_test_krum_excludes_a_liar(void)
{
    zfed_model_t *results[SOURCES];
    for (size_t r = 0; r < SOURCES; r++)
        results[r] = s_results[r];
    zfed_model_t *liar = s_model(999, 50.0, 1.0);
    results[2] = liar; //  by reference, at a chunk size that does not divide
    zfed_pass_settings_t settings = s_settings(ZFED_AGG_KRUM);
    zfed_pass_t *pass = NULL;
    CHECK_INT(s_run(&settings, results, SOURCES, &pass), ZFED_PASS_DONE);
    CHECK(!zfed_pass_selected(pass, 2));
    size_t chosen[2], count = 0;
    for (size_t r = 0; r < SOURCES; r++)
        if (zfed_pass_selected(pass, r) && count < 2)
            chosen[count++] = r;
    REQUIRE(count == 2);
    CHECK(zfed_pass_krum_score(pass, 2) > zfed_pass_krum_score(pass, chosen[0]));
    zfed_model_t *pair[2] = {results[chosen[0]], results[chosen[1]]};
    zfed_model_t *want = s_reference_exact(pair, 2, NULL, 2);
    s_check_output(pass, want);
    zfed_pass_destroy(&pass);
    zfed_model_destroy(&want);
    zfed_model_destroy(&liar);
}

//  Two fedadam steps through state files, against the formulas applied
//  over whole tensors.
static void s_test_optimiser(void)
{
    char m1[320], v1[320], m2[320], v2[320];
    snprintf(m1, sizeof m1, "%s/m1.safetensors", s_dir);
    snprintf(v1, sizeof v1, "%s/v1.safetensors", s_dir);
    snprintf(m2, sizeof m2, "%s/m2.safetensors", s_dir);
    snprintf(v2, sizeof v2, "%s/v2.safetensors", s_dir);
    zfed_pass_settings_t settings = s_settings(ZFED_AGG_FEDADAM);
    zfed_opt_defaults(ZFED_OPT_FEDADAM, &settings.opt);
    settings.opt.lr = 0.5;
    uint64_t total = 0;
    for (size_t r = 0; r < SOURCES; r++)
        total += s_weights[r];
    //  The reference state and model, whole.
    uint64_t floats = 0;
    for (size_t t = 0; t < zfed_layout_size(s_layout); t++)
        if (zfed_dtype_is_float(zfed_layout_tensor(s_layout, t)->dtype))
            floats += zfed_layout_tensor(s_layout, t)->count;
    float *m = malloc(floats * sizeof *m), *v = malloc(floats * sizeof *v);
    zfed_opt_init(&settings.opt, m, v, floats);
    zfed_layout_t *layout = zfed_layout_dup(s_layout);
    zfed_model_t *x = zfed_model_new(&layout);
    memcpy(zfed_model_data(x), zfed_model_data(s_global), zfed_model_nbytes(x));
    char error[256];
    for (int step = 0; step < 2; step++) {
        settings.m_in = step ? m1 : NULL;
        settings.v_in = step ? v1 : NULL;
        settings.m_out = step ? m2 : m1;
        settings.v_out = step ? v2 : v1;
        if (step) //  the pass reads x from the current global's file
            REQUIRE(zfed_safetensors_save(s_global_path, x, NULL, error, sizeof error) == 0);
        zfed_pass_t *pass = NULL;
        CHECK_INT(s_run(&settings, s_results, SOURCES, &pass), ZFED_PASS_DONE);
        zfed_model_t *average = s_reference_exact(s_results, SOURCES, s_weights, total);
        zfed_exact_t *acc = zfed_exact_new(zfed_layout_elements(s_layout) + 1);
        uint64_t at = 0;
        for (size_t t = 0; t < zfed_layout_size(s_layout); t++) {
            const zfed_tensor_t *tensor = zfed_layout_tensor(s_layout, t);
            void *xt = zfed_model_tensor_data(x, t);
            if (!zfed_dtype_is_float(tensor->dtype)) {
                memcpy(xt, zfed_model_tensor_data(average, t), tensor->nbytes);
                continue;
            }
            size_t n = (size_t)tensor->count;
            double *a64 = malloc((n + 1) * sizeof *a64), *x64 = malloc((n + 1) * sizeof *x64);
            for (size_t r = 0; r < SOURCES; r++)
                zfed_exact_fold(acc, tensor->first, zfed_model_tensor_data(s_results[r], t),
                                tensor->dtype, n, s_weights[r], error, sizeof error);
            REQUIRE(zfed_exact_round(acc, tensor->first, n, total, ZFED_DTYPE_F64, a64, error,
                                     sizeof error) == 0);
            for (size_t i = 0; i < n; i++)
                x64[i] = zfed_dtype_get_f64(tensor->dtype, xt, i);
            REQUIRE(zfed_opt_step(&settings.opt, x64, a64, ZFED_DTYPE_F64, m + at, v + at, n, error,
                                  sizeof error) == 0);
            for (size_t i = 0; i < n; i++)
                zfed_dtype_set_f64(tensor->dtype, xt, i, x64[i]);
            at += n;
            free(a64);
            free(x64);
        }
        s_check_output(pass, x);
        //  The state written is the reference state.
        zfed_model_t *mf = zfed_safetensors_load(settings.m_out, NULL, error, sizeof error);
        zfed_model_t *vf = zfed_safetensors_load(settings.v_out, NULL, error, sizeof error);
        REQUIRE(mf && vf);
        CHECK(zfed_model_nbytes(mf) == floats * sizeof(float));
        CHECK(memcmp(zfed_model_data(mf), m, floats * sizeof(float)) == 0);
        CHECK(memcmp(zfed_model_data(vf), v, floats * sizeof(float)) == 0);
        uint8_t digest[ZFED_SHA256_SIZE];
        zfed_sha256(m, floats * sizeof(float), digest);
        CHECK(memcmp(zfed_pass_state_sha256(pass, 'm'), digest, sizeof digest) == 0);
        zfed_sha256(v, floats * sizeof(float), digest);
        CHECK(memcmp(zfed_pass_state_sha256(pass, 'v'), digest, sizeof digest) == 0);
        zfed_model_destroy(&mf);
        zfed_model_destroy(&vf);
        zfed_exact_destroy(&acc);
        zfed_model_destroy(&average);
        zfed_pass_destroy(&pass);
    }
    //  Put the global back for the other tests.
    REQUIRE(zfed_safetensors_save(s_global_path, s_global, NULL, error, sizeof error) == 0);
    zfed_model_destroy(&x);
    free(m);
    free(v);
}

//  A pass that drops a result leaves no output and says which and why.
static void s_expect_drop(zfed_pass_t *pass, zfed_pass_status_t status, size_t source, bool refused,
                          const char *words)
{
    CHECK_INT(status, ZFED_PASS_DROPPED);
    bool was_refused = !refused;
    CHECK_INT(zfed_pass_dropped(pass, &was_refused), source);
    CHECK(was_refused == refused);
    if (!strstr(zfed_pass_reason(pass), words))
        fprintf(stderr, "reason: %s\n", zfed_pass_reason(pass));
    CHECK(strstr(zfed_pass_reason(pass), words) != NULL);
    zfed_pass_destroy(&pass);
    CHECK(access(s_out_path, F_OK) != 0);
    char temporary[320];
    snprintf(temporary, sizeof temporary, "%s.tmp", s_out_path);
    CHECK(access(temporary, F_OK) != 0);
}

static void s_test_drops(void)
{
    unlink(s_out_path);
    zfed_model_t *results[SOURCES];
    for (size_t r = 0; r < SOURCES; r++)
        results[r] = s_results[r];
    //  A NaN deep in result 3 (by reference): refused, named.
    zfed_model_t *bad = s_model(103, 0.5, 1.0);
    const zfed_tensor_t *d = zfed_layout_find(s_layout, "d.f64", NULL);
    double nan = NAN; //  the tensor is not aligned for a double: copied in
    memcpy((uint8_t *)zfed_model_data(bad) + d->offset + 250 * sizeof nan, &nan, sizeof nan);
    results[3] = bad;
    zfed_pass_settings_t settings = s_settings(ZFED_AGG_FEDAVG);
    zfed_pass_t *pass = NULL;
    zfed_pass_status_t status = s_run(&settings, results, SOURCES, &pass);
    s_expect_drop(pass, status, 3, true, "tensor d.f64 element 250 [250]: NaN");
    //  A short chunk: refused.
    s_short_source = 2;
    status = s_run(&settings, s_results, SOURCES, &pass);
    s_expect_drop(pass, status, 2, true, "chunk 1 has");
    s_short_source = -1;
    //  Fetches that cannot be made: lost.
    s_fail_source = 1;
    status = s_run(&settings, s_results, SOURCES, &pass);
    s_expect_drop(pass, status, 1, false, "cannot start");
    s_fail_source = -1;
    //  A transfer that fails mid-pass: lost, and the chunks held freed.
    zfed_pass_source_t sources[SOURCES];
    for (size_t r = 0; r < SOURCES; r++)
        sources[r] =
            (zfed_pass_source_t){.weight = s_weights[r],
                                 .data = s_chunks[r] ? NULL : zfed_model_data(s_results[r]),
                                 .chunk = s_chunks[r]};
    zfed_pass_fetch_t fetch = {NULL, s_start, s_cancel};
    char reason[ZFED_PASS_REASON_MAX];
    s_pending = 0;
    s_serving = s_results;
    pass = zfed_pass_new(&settings, sources, SOURCES, &fetch, reason, sizeof reason);
    REQUIRE(pass);
    for (int i = 0; i < 6 && zfed_pass_step(pass) == ZFED_PASS_WAITING; i++)
        s_answer_one(pass);
    zfed_pass_fail(pass, 3, false, "the holder is gone");
    s_expect_drop(pass, zfed_pass_step(pass), 3, false, "the holder is gone");
    s_pending = 0;
    zfed_model_destroy(&bad);
}

static void s_test_refusals(void)
{
    zfed_pass_fetch_t fetch = {NULL, s_start, s_cancel};
    zfed_pass_source_t sources[SOURCES];
    for (size_t r = 0; r < SOURCES; r++)
        sources[r] = (zfed_pass_source_t){.weight = 0, .data = zfed_model_data(s_results[r])};
    char reason[ZFED_PASS_REASON_MAX];
    zfed_pass_settings_t settings = s_settings(ZFED_AGG_FEDAVG);
    CHECK(zfed_pass_new(&settings, sources, SOURCES, &fetch, reason, sizeof reason) == NULL);
    CHECK(strstr(reason, "samples add up to 0") != NULL);
    settings = s_settings(ZFED_AGG_KRUM);
    settings.krum_f = 2; //  5 results: Krum needs n > 2f + 2
    CHECK(zfed_pass_new(&settings, sources, SOURCES, &fetch, reason, sizeof reason) == NULL);
    CHECK(strstr(reason, "krum") != NULL);
    settings = s_settings(ZFED_AGG_SUM);
    CHECK(zfed_pass_new(&settings, sources, 0, &fetch, reason, sizeof reason) == NULL);
    settings.global_path = "/nonexistent/global.safetensors";
    CHECK(zfed_pass_new(&settings, sources, SOURCES, &fetch, reason, sizeof reason) == NULL);
    CHECK(strstr(reason, "the current global") != NULL);
}

//  Windows of more elements than a block of the exact accumulator (32,768),
//  and tensors across blocks: the same checks on a bigger layout.
static void s_test_blocks(void)
{
    char error[256];
    zfed_layout_t *small = s_layout;
    zfed_model_t *global = s_global, *results[SOURCES];
    memcpy(results, s_results, sizeof results);
    s_layout = zfed_layout_new();
    const uint64_t a[] = {100003}, b[] = {5}, c[] = {70000}, d[] = {3000};
    REQUIRE(zfed_layout_add(s_layout, "a", ZFED_DTYPE_F32, a, 1, error, sizeof error) == 0);
    REQUIRE(zfed_layout_add(s_layout, "b", ZFED_DTYPE_F16, b, 1, error, sizeof error) == 0);
    REQUIRE(zfed_layout_add(s_layout, "c", ZFED_DTYPE_F32, c, 1, error, sizeof error) == 0);
    REQUIRE(zfed_layout_add(s_layout, "d", ZFED_DTYPE_I32, d, 1, error, sizeof error) == 0);
    s_global = s_model(2, 0.0, 1.0);
    REQUIRE(zfed_safetensors_save(s_global_path, s_global, NULL, error, sizeof error) == 0);
    for (size_t r = 0; r < SOURCES; r++)
        s_results[r] = s_model(200 + r, 0.5, 1.0);
    uint64_t chunks[SOURCES];
    memcpy(chunks, s_chunks, sizeof chunks);
    const uint64_t big[SOURCES] = {0, BIG_CHUNK, 0, 2 * BIG_CHUNK, 0};
    memcpy(s_chunks, big, sizeof big);
    s_pass_chunk = BIG_CHUNK;
    s_test_exact_strategies();
    s_test_optimiser();
    s_pass_chunk = PASS_CHUNK;
    memcpy(s_chunks, chunks, sizeof chunks);
    for (size_t r = 0; r < SOURCES; r++)
        zfed_model_destroy(&s_results[r]);
    zfed_model_destroy(&s_global);
    zfed_layout_destroy(&s_layout);
    s_layout = small;
    s_global = global;
    memcpy(s_results, results, sizeof results);
    REQUIRE(zfed_safetensors_save(s_global_path, s_global, NULL, error, sizeof error) == 0);
}

int main(void)
{
    s_setup();
    ZFED_TEST_RUN(s_test_windows_tile);
    ZFED_TEST_RUN(s_test_exact_strategies);
    ZFED_TEST_RUN(s_test_norms_without_simd);
    ZFED_TEST_RUN(s_test_reductions);
    ZFED_TEST_RUN(s_test_krum_excludes_a_liar);
    ZFED_TEST_RUN(s_test_optimiser);
    ZFED_TEST_RUN(s_test_drops);
    ZFED_TEST_RUN(s_test_refusals);
    ZFED_TEST_RUN(s_test_blocks);
    for (size_t r = 0; r < SOURCES; r++)
        zfed_model_destroy(&s_results[r]);
    zfed_model_destroy(&s_global);
    zfed_layout_destroy(&s_layout);
    zfed_test_remove_tree(s_dir);
    ZFED_TEST_END();
}
