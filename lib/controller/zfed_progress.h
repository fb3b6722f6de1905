/*  zfed_progress - what the controller shows people on stdout (private
    header).

    One line when the job starts, a line per closed round, a final table
    and where the records are.  On a terminal, a live line shows the round
    in progress and is rewritten in place at most every
    ZFED_PROGRESS_LIVE_MS; anywhere else the output is plain lines without
    control characters.  With no stream (--no-progress) nothing is shown.
*/
#ifndef ZFED_PROGRESS_H_INCLUDED
#define ZFED_PROGRESS_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define ZFED_PROGRESS_LIVE_MS 100

typedef struct _zfed_progress_t zfed_progress_t;

//  What the view shows of a round.
typedef struct {
    uint32_t number;
    uint32_t rounds; //  of the job
    uint32_t answered;
    uint32_t tasks;
    uint32_t quorum;
    uint64_t resent;
    uint64_t duplicates;
    uint64_t errors;
    uint64_t refused;
    int64_t elapsed_ms;
    bool quorum_in;
} zfed_progress_round_t;

//  out NULL: a view that shows nothing.  NULL on allocation failure.
zfed_progress_t *zfed_progress_new(FILE *out);
void zfed_progress_destroy(zfed_progress_t **self_p);

//  True when there is somewhere to show things.
bool zfed_progress_enabled(zfed_progress_t *self);
//  True on a terminal: the caller wakes every ZFED_PROGRESS_LIVE_MS to
//  refresh the live line.
bool zfed_progress_live(zfed_progress_t *self);

void zfed_progress_print(zfed_progress_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

//  Rewrites the live line (terminals only, at most every
//  ZFED_PROGRESS_LIVE_MS), and takes it away.
void zfed_progress_live_update(zfed_progress_t *self, const zfed_progress_round_t *round,
                               int64_t now_ms);
void zfed_progress_live_clear(zfed_progress_t *self);

//  The line of a closed round.
void zfed_progress_round_closed(zfed_progress_t *self, const zfed_progress_round_t *round,
                                const char *aggregate, int64_t duration_us);

//  The final table, one row per summary entry (see zfed_records); late
//  holds the late count per round; best_round is marked.
void zfed_progress_table(zfed_progress_t *self, const json_t *summaries, const uint64_t *late,
                         uint32_t tasks, int64_t best_round);

#endif
