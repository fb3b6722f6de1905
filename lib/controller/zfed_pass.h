/*  zfed_pass - one aggregation pass of a model round (private header).

    At a round's close the controller reads the accepted results window
    by window (zfed_window.h: window i is about chunk i of the model), in
    task order, and writes window i of the new global model before it
    reads far past window i of any result (MODELS.md 13).  So the
    controller holds a few chunks per result, whatever the model's size:

        results in memory (inline, at most 4 MiB each): read in place;
        results by reference: the pass has its owner start a transfer per
        result (zfed_fetcher) and is handed each chunk as it arrives, its
        frame taken over without a copy and freed as soon as the pass is
        past it.  The transfer's window (chunks fetched and not yet freed)
        is the read-ahead: a slow result holds back only its own reads.

    The windows are as large as the smallest chunk of any result (at most
    the pass's chunk setting), so one window of a result lies in at most
    two of its chunks, and a window of 4 chunks never stalls.  A window
    in one chunk is read from the frame in place; one across two (an
    element over a chunk edge, or larger chunks than the window) is
    copied together first.

    Each window of each result is checked (every float finite), the window
    is combined (zfed_combine: exact fedavg/mean/sum, median, trimmed
    mean, min, max, Krum, server optimisers), written to the new global
    file in order and hashed; each result's update norm ||x_r - g||
    accumulates against the current global, read from its file.  Krum
    takes two sweeps: distances (and norms) over every result, then the
    mean of the selected ones.  fedavgm, fedadam and fedyogi read their
    state (m, v: F32 files of the model's float tensors) window by window
    and write the next state the same way.

    A pass is one attempt: when a result cannot be used (a chunk refused,
    a transfer failed, a value not finite) the pass stops DROPPED, naming
    the result; its owner then decides (the quorum) and starts a new pass
    without it.  Nothing is ever aggregated in part: the output files are
    only made visible (durably) when the pass is DONE.
*/
#ifndef ZFED_PASS_H_INCLUDED
#define ZFED_PASS_H_INCLUDED

#include "zfed/zfed_aggregate.h"
#include "zfed/zfed_model.h"
#include "zfed/zfed_reduce.h"
#include "zfed/zfed_sha256.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Longest reason text.
#define ZFED_PASS_REASON_MAX 512
//  Chunks of a result fetched and not yet freed, by default.
#define ZFED_PASS_WINDOW_DEFAULT 4
//  Smallest window: every window must hold an element (tests use small
//  ones; jobs use ZFED_CHUNK_MIN and up).
#define ZFED_PASS_CHUNK_MIN 8

typedef struct {
    zfed_agg_strategy_t strategy;
    double trim;                 //  trimmed-mean
    zfed_opt_t opt;              //  fedavgm, fedadam, fedyogi
    uint32_t krum_f;             //  krum: results assumed Byzantine
    uint32_t krum_m;             //  krum: results averaged (1: Krum)
    uint64_t chunk;              //  window size: the new global's chunk
    uint32_t window;             //  the fetcher's window per transfer (0: the default)
    const zfed_layout_t *layout; //  the global's (every result's)
    const char *global_path;     //  the current global's safetensors file
    const char *out_path;        //  where the new global goes
    //  Optimiser state: the files of the current global's state (NULL: the
    //  first step, m = 0 and v = tau^2) and of the new one.
    const char *m_in, *v_in, *m_out, *v_out;
} zfed_pass_settings_t;

//  Where a result's bytes are.
typedef struct {
    uint64_t weight;     //  samples (fedavg)
    const uint8_t *data; //  in memory (the whole model), or NULL: by reference
    uint64_t chunk;      //  by reference: its chunk size
} zfed_pass_source_t;

//  How the pass gets chunks of results by reference.  start begins
//  reading source from chunk first to its last, at most `window` chunks
//  fetched and not yet freed (0: started; -1: cannot, the source is
//  dropped); the chunks come through zfed_pass_chunk, a failure through
//  zfed_pass_fail.  cancel stops a source's transfer (the pass is done
//  with it, starts it again, or stops).
typedef struct {
    void *hint;
    int (*start)(void *hint, size_t source, uint64_t first);
    void (*cancel)(void *hint, size_t source);
} zfed_pass_fetch_t;

//  Called once to free a chunk handed to the pass.
typedef void(zfed_pass_free_fn)(void *data, void *hint);

typedef enum {
    ZFED_PASS_WAITING = 0, //  needs chunks: poll and hand them in
    ZFED_PASS_DONE,        //  the new global is written (and its state)
    ZFED_PASS_DROPPED,     //  a source cannot be used: zfed_pass_dropped
    ZFED_PASS_FAILED       //  the round cannot aggregate: zfed_pass_reason
} zfed_pass_status_t;

typedef struct _zfed_pass_t zfed_pass_t;

//  A pass over count sources (copied), in the order given (task order).
//  NULL with the reason (a bad setting, no sources, Krum's n > 2f + 2,
//  a weight total of 0 for fedavg, a file that cannot be opened).
zfed_pass_t *zfed_pass_new(const zfed_pass_settings_t *settings, const zfed_pass_source_t *sources,
                           size_t count, const zfed_pass_fetch_t *fetch, char *reason,
                           size_t reason_size);
//  Stops (cancelling every fetch), removes any partial output, frees
//  every chunk held.
void zfed_pass_destroy(zfed_pass_t **self_p);

//  Combines every window that is ready, asks for more chunks, and says
//  how things stand.
zfed_pass_status_t zfed_pass_step(zfed_pass_t *self);

//  A chunk of source (its own numbering, size bytes), taken over: free_fn
//  (may be NULL) is called with data and hint once the pass is done with
//  it, also when it is not wanted.  A chunk of the wrong length, or
//  beyond the transfer's window, drops the source.
void zfed_pass_chunk(zfed_pass_t *self, size_t source, uint64_t index, const void *data,
                     size_t size, zfed_pass_free_fn *free_fn, void *hint);

//  The source's transfer failed (holder gone, chunk refused): the pass is
//  DROPPED at its next step.  refused: the holder's answer was bad data,
//  not an absence.
void zfed_pass_fail(zfed_pass_t *self, size_t source, bool refused, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

//  After DROPPED: which source, whether it was refused (invalid data) or
//  lost (a transfer failed), and why.
size_t zfed_pass_dropped(const zfed_pass_t *self, bool *refused);
//  Why the pass dropped a source or failed.
const char *zfed_pass_reason(const zfed_pass_t *self);

//  After DONE: the new global's SHA-256 and size, each source's update
//  norm, and for Krum each source's score and whether it was selected.
const uint8_t *zfed_pass_sha256(const zfed_pass_t *self);
uint64_t zfed_pass_size(const zfed_pass_t *self);
//  The SHA-256 of the state written, which 'm' or 'v' (optimisers).
const uint8_t *zfed_pass_state_sha256(const zfed_pass_t *self, char which);
double zfed_pass_norm(const zfed_pass_t *self, size_t source);
double zfed_pass_krum_score(const zfed_pass_t *self, size_t source);
bool zfed_pass_selected(const zfed_pass_t *self, size_t source);

//  Bytes of chunks held now and at most during the pass (memory bound).
uint64_t zfed_pass_held_bytes(const zfed_pass_t *self);
uint64_t zfed_pass_held_peak(const zfed_pass_t *self);

#endif
