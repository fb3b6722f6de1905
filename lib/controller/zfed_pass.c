/*  zfed_pass - one aggregation pass: windows of every result, in order.

    Each result by reference keeps a small ring of the chunks it has been
    handed, from the first one the current window needs (base) on; its
    transfer never has more than `window` chunks fetched and not freed, so
    they all fall in [base, base + window) and the ring never grows.
*/
#include "controller/zfed_pass.h"
#include "controller/zfed_combine.h"
#include "controller/zfed_window.h"
#include "zfed/zfed_safetensors.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *data; //  NULL: not here (yet)
    size_t size;
    zfed_pass_free_fn *free_fn;
    void *hint;
} held_t;

typedef struct {
    zfed_pass_source_t source;
    bool remote;
    bool active;     //  read in the current sweep
    uint64_t chunks; //  by reference: its chunk count
    held_t *ring;    //  chunk j at ring[j % capacity]
    size_t capacity;
    uint64_t base; //  first chunk still needed
    bool started;  //  its transfer runs (from base)
    uint8_t *assembly;
    double norm;
    double score;
    bool selected;
} source_t;

typedef enum { SWEEP_COMBINE = 0, SWEEP_KRUM_MEAN } sweep_t;

struct _zfed_pass_t {
    zfed_pass_settings_t settings;
    char out_path[PATH_MAX];
    char m_out[PATH_MAX];
    char v_out[PATH_MAX];
    zfed_pass_fetch_t fetch;
    zfed_windows_t *windows;
    zfed_combine_t *combine;
    source_t *sources;
    size_t count;
    uint64_t size; //  of the model
    uint64_t total_weight;
    sweep_t sweep;
    uint64_t window; //  next window to combine
    bool optimiser;
    bool has_v;
    //  The current global (x) and the optimiser state, read window by
    //  window; the new ones, written window by window.
    zfed_safetensors_t *global;
    zfed_safetensors_t *m_in, *v_in;
    zfed_layout_t *state_layout;
    zfed_safetensors_writer_t *out, *m_writer, *v_writer;
    zfed_sha256_t *sha256;
    zfed_sha256_t *m_sha256, *v_sha256; //  of the state written
    uint8_t m_digest[ZFED_SHA256_SIZE], v_digest[ZFED_SHA256_SIZE];
    uint8_t *global_window;
    uint8_t *out_window;
    float *m, *v;
    zfed_krum_t *krum;
    //  Per window: the active sources' bytes, weights and ids.
    const uint8_t **views;
    uint64_t *weights;
    size_t *ids;
    zfed_pass_status_t status;
    size_t dropped;
    bool refused;
    char reason[ZFED_PASS_REASON_MAX];
    uint8_t digest[ZFED_SHA256_SIZE];
    uint64_t held;
    uint64_t held_peak;
};

//  ---------------------------------------------------------------------
//  Faults

static zfed_pass_status_t s_drop(zfed_pass_t *self, size_t source, bool refused, const char *reason)
{
    if (self->status == ZFED_PASS_WAITING) {
        self->status = ZFED_PASS_DROPPED;
        self->dropped = source;
        self->refused = refused;
        snprintf(self->reason, sizeof self->reason, "%s", reason);
    }
    return self->status;
}

static zfed_pass_status_t s_fail(zfed_pass_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static zfed_pass_status_t s_fail(zfed_pass_t *self, const char *format, ...)
{
    if (self->status == ZFED_PASS_WAITING) {
        self->status = ZFED_PASS_FAILED;
        va_list args;
        va_start(args, format);
        vsnprintf(self->reason, sizeof self->reason, format, args);
        va_end(args);
    }
    return self->status;
}

void zfed_pass_fail(zfed_pass_t *self, size_t source, bool refused, const char *format, ...)
{
    if (source >= self->count || !self->sources[source].active)
        return;
    char reason[ZFED_PASS_REASON_MAX];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    s_drop(self, source, refused, reason);
}

//  ---------------------------------------------------------------------
//  Chunks of results by reference

static void s_release(zfed_pass_t *self, held_t *held)
{
    if (!held->data)
        return;
    self->held -= held->size;
    if (held->free_fn)
        held->free_fn((void *)held->data, held->hint);
    *held = (held_t){0};
}

//  Forgets every chunk and fetch of a source; it starts again at chunk 0.
static void s_reset_source(zfed_pass_t *self, size_t index)
{
    source_t *source = &self->sources[index];
    if (!source->remote)
        return;
    if (self->fetch.cancel && source->started)
        self->fetch.cancel(self->fetch.hint, index);
    source->started = false;
    for (size_t slot = 0; slot < source->capacity; slot++)
        s_release(self, &source->ring[slot]);
    source->base = 0;
}

static size_t s_chunk_length(const source_t *source, uint64_t size, uint64_t index)
{
    uint64_t offset = index * source->source.chunk;
    uint64_t left = size - offset;
    return (size_t)(left < source->source.chunk ? left : source->source.chunk);
}

void zfed_pass_chunk(zfed_pass_t *self, size_t index, uint64_t chunk, const void *data, size_t size,
                     zfed_pass_free_fn *free_fn, void *hint)
{
    held_t arrived = {data, size, free_fn, hint};
    self->held += size;
    source_t *source = index < self->count ? &self->sources[index] : NULL;
    if (!source || !source->remote || !source->active || !source->started || chunk < source->base) {
        s_release(self, &arrived); //  late, after a reset, or never asked for
        return;
    }
    held_t *slot = &source->ring[chunk % source->capacity];
    if (chunk >= source->base + source->capacity || chunk >= source->chunks || slot->data) {
        char reason[128];
        snprintf(reason, sizeof reason,
                 "chunk %" PRIu64 " came outside its transfer's window (chunks %" PRIu64
                 " to %" PRIu64 ")",
                 chunk, source->base, source->base + source->capacity - 1);
        s_release(self, &arrived);
        s_drop(self, index, false, reason);
        return;
    }
    if (size != s_chunk_length(source, self->size, chunk)) {
        char reason[128];
        snprintf(reason, sizeof reason, "chunk %" PRIu64 " has %zu bytes where %zu were due", chunk,
                 size, s_chunk_length(source, self->size, chunk));
        s_release(self, &arrived);
        s_drop(self, index, true, reason);
        return;
    }
    *slot = arrived;
    if (self->held > self->held_peak)
        self->held_peak = self->held;
}

//  Starts the transfers not running yet, each from the first chunk the
//  pass needs.
static void s_start_transfers(zfed_pass_t *self)
{
    for (size_t index = 0; index < self->count && self->status == ZFED_PASS_WAITING; index++) {
        source_t *source = &self->sources[index];
        if (!source->remote || !source->active || source->started || source->base >= source->chunks)
            continue;
        if (self->fetch.start(self->fetch.hint, index, source->base) != 0) {
            s_drop(self, index, false, "cannot start reading it");
            return;
        }
        source->started = true;
    }
}

//  The source's bytes of window, or NULL when they have not all arrived.
static const uint8_t *s_view(zfed_pass_t *self, source_t *source, const zfed_window_t *window)
{
    if (!source->remote)
        return source->source.data + window->start;
    uint64_t chunk = source->source.chunk;
    uint64_t first = window->start / chunk, last = (window->end - 1) / chunk;
    for (uint64_t j = first; j <= last; j++)
        if (!source->ring[j % source->capacity].data)
            return NULL;
    const held_t *head = &source->ring[first % source->capacity];
    if (first == last)
        return head->data + (window->start - first * chunk);
    //  Across chunks: copied together.
    uint64_t at = window->start;
    for (uint64_t j = first; j <= last; j++) {
        const held_t *held = &source->ring[j % source->capacity];
        uint64_t from = at - j * chunk;
        uint64_t to = window->end < (j + 1) * chunk ? window->end - j * chunk : chunk;
        memcpy(source->assembly + (at - window->start), held->data + from, to - from);
        at += to - from;
    }
    return source->assembly;
}

//  Frees the chunks no window from `next_start` on needs.
static void s_forget_before(zfed_pass_t *self, source_t *source, uint64_t next_start)
{
    if (!source->remote)
        return;
    uint64_t keep = next_start / source->source.chunk;
    while (source->base < keep) {
        s_release(self, &source->ring[source->base % source->capacity]);
        source->base++;
    }
}

//  ---------------------------------------------------------------------
//  Files

static int s_read(zfed_pass_t *self, zfed_safetensors_t *file, uint64_t offset, void *buffer,
                  size_t size)
{
    char error[ZFED_PASS_REASON_MAX];
    if (zfed_safetensors_read(file, offset, buffer, size, error, sizeof error) != 0) {
        s_fail(self, "%s", error);
        return -1;
    }
    return 0;
}

static int s_write(zfed_pass_t *self, zfed_safetensors_writer_t *writer, const void *data,
                   size_t size)
{
    char error[ZFED_PASS_REASON_MAX];
    if (zfed_safetensors_write(writer, data, size, error, sizeof error) != 0) {
        s_fail(self, "%s", error);
        return -1;
    }
    return 0;
}

static zfed_safetensors_writer_t *s_create(zfed_pass_t *self, const char *path,
                                           const zfed_layout_t *layout)
{
    char error[ZFED_PASS_REASON_MAX];
    zfed_safetensors_writer_t *writer =
        zfed_safetensors_create(path, layout, NULL, error, sizeof error);
    if (!writer)
        s_fail(self, "%s", error);
    return writer;
}

static int s_finish(zfed_pass_t *self, zfed_safetensors_writer_t **writer_p)
{
    char error[ZFED_PASS_REASON_MAX];
    if (*writer_p && zfed_safetensors_finish(writer_p, error, sizeof error) != 0) {
        s_fail(self, "%s", error);
        return -1;
    }
    return 0;
}

//  The optimiser state's layout: the model's float tensors, as F32.
static zfed_layout_t *s_state_layout(const zfed_layout_t *layout, char *error, size_t error_size)
{
    zfed_layout_t *state = zfed_layout_new();
    for (size_t t = 0; state && t < zfed_layout_size(layout); t++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(layout, t);
        if (zfed_dtype_is_float(tensor->dtype) &&
            zfed_layout_add(state, tensor->name, ZFED_DTYPE_F32, tensor->shape, tensor->ndim, error,
                            error_size) != 0)
            zfed_layout_destroy(&state);
    }
    return state;
}

//  Opens a state file and checks it is the state of this model.
static zfed_safetensors_t *s_open_state(zfed_pass_t *self, const char *path)
{
    char error[ZFED_PASS_REASON_MAX], diff[ZFED_PASS_REASON_MAX];
    zfed_safetensors_t *file = zfed_safetensors_open(path, error, sizeof error);
    if (!file) {
        s_fail(self, "optimiser state: %s", error);
        return NULL;
    }
    if (!zfed_layout_equal(zfed_safetensors_layout(file), self->state_layout, "the model's state",
                           diff, sizeof diff)) {
        s_fail(self, "optimiser state %s: %s", path, diff);
        zfed_safetensors_close(&file);
    }
    return file;
}

//  ---------------------------------------------------------------------
//  One window

static uint64_t s_divisor(const zfed_pass_t *self, size_t active)
{
    switch (self->settings.strategy) {
    case ZFED_AGG_SUM:
        return 1;
    case ZFED_AGG_MEAN:
    case ZFED_AGG_KRUM:
        return active;
    default:
        return self->total_weight;
    }
}

static zfed_pass_status_t s_combine(zfed_pass_t *self, const zfed_window_t *window, size_t active)
{
    const zfed_pass_settings_t *settings = &self->settings;
    zfed_agg_strategy_t strategy = settings->strategy;
    size_t span = (size_t)(window->end - window->start);
    char error[ZFED_PASS_REASON_MAX];
    bool first_sweep = self->sweep == SWEEP_COMBINE;
    if (first_sweep) {
        //  Every source's values checked while its update norm against x
        //  accumulates (one read of its bytes).
        if (s_read(self, self->global, window->start, self->global_window, span) != 0)
            return self->status;
        size_t bad = 0;
        if (zfed_combine_norms(self->combine, window, self->views, self->ids, active,
                               self->global_window, &bad, error, sizeof error) != 0)
            return s_drop(self, self->ids[bad], true, error);
    }
    int rc = 0;
    const uint64_t *weights = strategy == ZFED_AGG_FEDAVG || self->optimiser ? self->weights : NULL;
    if (strategy == ZFED_AGG_KRUM && first_sweep)
        rc = zfed_combine_krum(self->combine, self->krum, window, self->views, active, error,
                               sizeof error);
    else if (strategy == ZFED_AGG_MEDIAN || strategy == ZFED_AGG_TRIMMED_MEAN ||
             strategy == ZFED_AGG_MIN || strategy == ZFED_AGG_MAX)
        rc = zfed_combine_reduce(self->combine, strategy, settings->trim, window, self->views,
                                 active, self->out_window, error, sizeof error);
    else if (self->optimiser) {
        uint64_t offset = window->float_first * sizeof(float);
        size_t bytes = (size_t)window->float_elements * sizeof(float);
        if (self->m_in) {
            if (s_read(self, self->m_in, offset, self->m, bytes) != 0 ||
                (self->v_in && s_read(self, self->v_in, offset, self->v, bytes) != 0))
                return self->status;
        } else
            zfed_opt_init(&settings->opt, self->m, self->has_v ? self->v : NULL,
                          (size_t)window->float_elements);
        rc = zfed_combine_step(self->combine, &settings->opt, window, self->views, weights, active,
                               s_divisor(self, active), self->global_window, self->m,
                               self->has_v ? self->v : NULL, self->out_window, error, sizeof error);
        if (rc == 0 && (s_write(self, self->m_writer, self->m, bytes) != 0 ||
                        (self->has_v && s_write(self, self->v_writer, self->v, bytes) != 0)))
            return self->status;
        if (rc == 0 && (zfed_sha256_update(self->m_sha256, self->m, bytes) != 0 ||
                        (self->has_v && zfed_sha256_update(self->v_sha256, self->v, bytes) != 0)))
            return s_fail(self, "SHA-256 failed");
    } else
        rc = zfed_combine_exact(self->combine, window, self->views, weights, active,
                                s_divisor(self, active), self->out_window, error, sizeof error);
    if (rc != 0)
        return s_fail(self, "%s", error);
    if (self->out) {
        if (s_write(self, self->out, self->out_window, span) != 0)
            return self->status;
        if (zfed_sha256_update(self->sha256, self->out_window, span) != 0)
            return s_fail(self, "SHA-256 failed");
    }
    return self->status;
}

//  ---------------------------------------------------------------------
//  Sweeps

static int s_open_outputs(zfed_pass_t *self)
{
    const zfed_pass_settings_t *settings = &self->settings;
    self->out = s_create(self, self->out_path, settings->layout);
    if (!self->out)
        return -1;
    if (self->optimiser) {
        self->m_writer = s_create(self, self->m_out, self->state_layout);
        if (!self->m_writer)
            return -1;
        if (self->has_v && !(self->v_writer = s_create(self, self->v_out, self->state_layout)))
            return -1;
    }
    return 0;
}

//  After Krum's distances: select, then read the selected results again.
static zfed_pass_status_t s_krum_select(zfed_pass_t *self)
{
    size_t m = self->settings.krum_m;
    size_t selected[ZFED_REDUCE_SOURCES_MAX];
    double *scores = calloc(self->count, sizeof *scores);
    char error[ZFED_PASS_REASON_MAX];
    if (!scores)
        return s_fail(self, "out of memory");
    int rc = zfed_krum_select(self->krum, self->settings.krum_f, m, selected, scores, error,
                              sizeof error);
    if (rc == 0) {
        for (size_t i = 0; i < self->count; i++) {
            self->sources[i].score = scores[i];
            self->sources[i].selected = false;
        }
        for (size_t k = 0; k < m; k++)
            self->sources[selected[k]].selected = true;
    }
    free(scores);
    if (rc != 0)
        return s_fail(self, "%s", error);
    for (size_t i = 0; i < self->count; i++) {
        s_reset_source(self, i);
        self->sources[i].active = self->sources[i].selected;
    }
    self->sweep = SWEEP_KRUM_MEAN;
    self->window = 0;
    if (s_open_outputs(self) != 0)
        return self->status;
    return ZFED_PASS_WAITING;
}

static zfed_pass_status_t s_finish_pass(zfed_pass_t *self)
{
    if (s_finish(self, &self->out) != 0 || s_finish(self, &self->m_writer) != 0 ||
        s_finish(self, &self->v_writer) != 0)
        return self->status;
    if (zfed_sha256_final(self->sha256, self->digest) != 0 ||
        (self->optimiser && zfed_sha256_final(self->m_sha256, self->m_digest) != 0) ||
        (self->has_v && zfed_sha256_final(self->v_sha256, self->v_digest) != 0))
        return s_fail(self, "SHA-256 failed");
    for (size_t i = 0; i < self->count; i++) {
        self->sources[i].norm = zfed_combine_norm(self->combine, i);
        s_reset_source(self, i);
    }
    self->status = ZFED_PASS_DONE;
    return self->status;
}

zfed_pass_status_t zfed_pass_step(zfed_pass_t *self)
{
    uint64_t windows = zfed_windows_count(self->windows);
    while (self->status == ZFED_PASS_WAITING) {
        if (self->window == windows) {
            if (self->settings.strategy == ZFED_AGG_KRUM && self->sweep == SWEEP_COMBINE) {
                if (s_krum_select(self) != ZFED_PASS_WAITING)
                    break;
                continue;
            }
            return s_finish_pass(self);
        }
        s_start_transfers(self);
        if (self->status != ZFED_PASS_WAITING)
            break;
        const zfed_window_t *window = zfed_windows_get(self->windows, self->window);
        if (!window)
            return s_fail(self, "out of memory");
        size_t active = 0;
        bool ready = true;
        for (size_t i = 0; i < self->count && ready; i++) {
            source_t *source = &self->sources[i];
            if (!source->active)
                continue;
            const uint8_t *view = s_view(self, source, window);
            if (!view)
                ready = false;
            self->views[active] = view;
            self->weights[active] = source->source.weight;
            self->ids[active] = i;
            active++;
        }
        if (!ready)
            return self->status; //  waiting for chunks
        if (s_combine(self, window, active) != ZFED_PASS_WAITING)
            break;
        uint64_t next_start = zfed_windows_start(self->windows, self->window + 1);
        for (size_t i = 0; i < self->count; i++)
            s_forget_before(self, &self->sources[i], next_start);
        self->window++;
    }
    return self->status;
}

//  ---------------------------------------------------------------------
//  Construction

static int s_check_settings(const zfed_pass_settings_t *settings, size_t count, char *reason,
                            size_t reason_size)
{
    if (count == 0 || count > ZFED_REDUCE_SOURCES_MAX) {
        snprintf(reason, reason_size, "%zu results to aggregate: 1 to %d can be", count,
                 ZFED_REDUCE_SOURCES_MAX);
        return -1;
    }
    if (settings->chunk < ZFED_PASS_CHUNK_MIN) {
        snprintf(reason, reason_size, "chunk: %" PRIu64 " bytes is too small", settings->chunk);
        return -1;
    }
    if (settings->strategy == ZFED_AGG_KRUM) {
        size_t f = settings->krum_f, m = settings->krum_m;
        if (count <= 2 * f + 2 || m < 1 || m > count - f) {
            snprintf(reason, reason_size,
                     "krum: %zu results with krum_f %zu and krum_m %zu (Krum needs more than "
                     "2 f + 2 results and 1 <= m <= n - f)",
                     count, f, m);
            return -1;
        }
    }
    if (zfed_agg_strategy_is_optimiser(settings->strategy) &&
        zfed_opt_check(&settings->opt, reason, reason_size) != 0)
        return -1;
    return 0;
}

static int s_copy_path(char *out, const char *path, char *reason, size_t reason_size)
{
    if (path && snprintf(out, PATH_MAX, "%s", path) < PATH_MAX)
        return 0;
    snprintf(reason, reason_size, "%s", path ? "a path is too long" : "a path is missing");
    return -1;
}

static int s_setup(zfed_pass_t *self, const zfed_pass_source_t *sources, char *reason,
                   size_t reason_size)
{
    const zfed_pass_settings_t *settings = &self->settings;
    const zfed_layout_t *layout = settings->layout;
    self->size = zfed_layout_nbytes(layout);
    //  Windows no larger than any result's chunk (see the header).
    uint64_t window_size = settings->chunk;
    for (size_t i = 0; i < self->count; i++)
        if (!sources[i].data && sources[i].chunk >= ZFED_PASS_CHUNK_MIN &&
            sources[i].chunk < window_size)
            window_size = sources[i].chunk;
    self->windows = zfed_windows_new(layout, window_size);
    self->combine = self->windows ? zfed_combine_new(layout, self->windows, self->count) : NULL;
    self->sources = calloc(self->count, sizeof *self->sources);
    self->views = calloc(self->count, sizeof *self->views);
    self->weights = calloc(self->count, sizeof *self->weights);
    self->ids = calloc(self->count, sizeof *self->ids);
    self->sha256 = zfed_sha256_new();
    uint64_t span = self->windows ? zfed_windows_max_span(self->windows) : 0;
    self->global_window = malloc(span ? span : 1);
    self->out_window = malloc(span ? span : 1);
    if (!self->combine || !self->sources || !self->views || !self->weights || !self->ids ||
        !self->sha256 || !self->global_window || !self->out_window)
        goto nomem;
    if (settings->strategy == ZFED_AGG_KRUM && !(self->krum = zfed_krum_new(self->count)))
        goto nomem;
    for (size_t i = 0; i < self->count; i++) {
        source_t *source = &self->sources[i];
        source->source = sources[i];
        source->active = true;
        if (__builtin_add_overflow(self->total_weight, sources[i].weight, &self->total_weight)) {
            snprintf(reason, reason_size, "the results' samples add up past 2^64");
            return -1;
        }
        if (sources[i].data)
            continue;
        uint64_t chunk = sources[i].chunk;
        if (chunk < ZFED_PASS_CHUNK_MIN) {
            snprintf(reason, reason_size, "result %zu: chunk size %" PRIu64, i, chunk);
            return -1;
        }
        source->remote = true;
        source->chunks = self->size / chunk + (self->size % chunk != 0);
        //  Every chunk fetched and not freed: the transfer's window, and
        //  at least the two chunks one window may need.
        source->capacity = settings->window > 2 ? settings->window : 2;
        source->ring = calloc(source->capacity, sizeof *source->ring);
        source->assembly = malloc(span ? span : 1);
        if (!source->ring || !source->assembly)
            goto nomem;
    }
    if (settings->strategy == ZFED_AGG_FEDAVG || self->optimiser) {
        if (self->total_weight == 0) {
            snprintf(reason, reason_size,
                     "%s cannot aggregate these results: their samples add up to 0",
                     zfed_agg_strategy_name(settings->strategy));
            return -1;
        }
    }
    char error[ZFED_PASS_REASON_MAX];
    self->global = zfed_safetensors_open(settings->global_path, error, sizeof error);
    if (!self->global) {
        snprintf(reason, reason_size, "the current global: %s", error);
        return -1;
    }
    if (self->optimiser) {
        self->state_layout = s_state_layout(layout, error, sizeof error);
        uint64_t floats = zfed_windows_max_float_elements(self->windows);
        self->m = malloc((floats ? floats : 1) * sizeof *self->m);
        self->v = malloc((floats ? floats : 1) * sizeof *self->v);
        self->m_sha256 = zfed_sha256_new();
        self->v_sha256 = zfed_sha256_new();
        if (!self->state_layout || !self->m || !self->v || !self->m_sha256 || !self->v_sha256)
            goto nomem;
        if (settings->m_in && !(self->m_in = s_open_state(self, settings->m_in)))
            goto failed;
        if (self->has_v && settings->v_in && !(self->v_in = s_open_state(self, settings->v_in)))
            goto failed;
        if (self->has_v && (self->m_in != NULL) != (self->v_in != NULL)) {
            snprintf(reason, reason_size, "optimiser state: m and v go together");
            return -1;
        }
    }
    if (settings->strategy != ZFED_AGG_KRUM && s_open_outputs(self) != 0)
        goto failed;
    return 0;
failed:
    snprintf(reason, reason_size, "%s", self->reason);
    return -1;
nomem:
    snprintf(reason, reason_size, "out of memory");
    return -1;
}

zfed_pass_t *zfed_pass_new(const zfed_pass_settings_t *settings, const zfed_pass_source_t *sources,
                           size_t count, const zfed_pass_fetch_t *fetch, char *reason,
                           size_t reason_size)
{
    if (s_check_settings(settings, count, reason, reason_size) != 0)
        return NULL;
    zfed_pass_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(reason, reason_size, "out of memory");
        return NULL;
    }
    self->settings = *settings;
    if (self->settings.window == 0)
        self->settings.window = ZFED_PASS_WINDOW_DEFAULT;
    self->fetch = *fetch;
    self->count = count;
    self->optimiser = zfed_agg_strategy_is_optimiser(settings->strategy);
    self->has_v = self->optimiser && zfed_opt_has_v(settings->opt.kind);
    if (s_copy_path(self->out_path, settings->out_path, reason, reason_size) != 0 ||
        (self->optimiser &&
         (s_copy_path(self->m_out, settings->m_out, reason, reason_size) != 0 ||
          (self->has_v && s_copy_path(self->v_out, settings->v_out, reason, reason_size) != 0))) ||
        s_setup(self, sources, reason, reason_size) != 0) {
        zfed_pass_destroy(&self);
        return NULL;
    }
    //  The settings' paths are the caller's: only the copies are kept.
    self->settings.out_path = self->out_path;
    self->settings.m_out = self->m_out;
    self->settings.v_out = self->v_out;
    self->settings.global_path = self->settings.m_in = self->settings.v_in = NULL;
    return self;
}

void zfed_pass_destroy(zfed_pass_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_pass_t *self = *self_p;
    for (size_t i = 0; self->sources && i < self->count; i++) {
        s_reset_source(self, i);
        free(self->sources[i].ring);
        free(self->sources[i].assembly);
    }
    zfed_safetensors_abandon(&self->out);
    zfed_safetensors_abandon(&self->m_writer);
    zfed_safetensors_abandon(&self->v_writer);
    zfed_safetensors_close(&self->global);
    zfed_safetensors_close(&self->m_in);
    zfed_safetensors_close(&self->v_in);
    zfed_layout_destroy(&self->state_layout);
    zfed_windows_destroy(&self->windows);
    zfed_combine_destroy(&self->combine);
    zfed_krum_destroy(&self->krum);
    zfed_sha256_destroy(&self->sha256);
    zfed_sha256_destroy(&self->m_sha256);
    zfed_sha256_destroy(&self->v_sha256);
    free(self->sources);
    free(self->views);
    free(self->weights);
    free(self->ids);
    free(self->global_window);
    free(self->out_window);
    free(self->m);
    free(self->v);
    free(self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------
//  Results

size_t zfed_pass_dropped(const zfed_pass_t *self, bool *refused)
{
    if (refused)
        *refused = self->refused;
    return self->dropped;
}

const char *zfed_pass_reason(const zfed_pass_t *self)
{
    return self->reason;
}

const uint8_t *zfed_pass_sha256(const zfed_pass_t *self)
{
    return self->digest;
}

const uint8_t *zfed_pass_state_sha256(const zfed_pass_t *self, char which)
{
    return which == 'v' ? self->v_digest : self->m_digest;
}

uint64_t zfed_pass_size(const zfed_pass_t *self)
{
    return self->size;
}

double zfed_pass_norm(const zfed_pass_t *self, size_t source)
{
    return source < self->count ? self->sources[source].norm : NAN;
}

double zfed_pass_krum_score(const zfed_pass_t *self, size_t source)
{
    return source < self->count ? self->sources[source].score : NAN;
}

bool zfed_pass_selected(const zfed_pass_t *self, size_t source)
{
    return source < self->count && self->sources[source].selected;
}

uint64_t zfed_pass_held_bytes(const zfed_pass_t *self)
{
    return self->held;
}

uint64_t zfed_pass_held_peak(const zfed_pass_t *self)
{
    return self->held_peak;
}
