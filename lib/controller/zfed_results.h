/*  zfed_results - the results of a big round, a line of JSON each, beside
    its record (WORKDIR.md 3.1) (private header).

    A round record holds its results inline up to ZFED_RESULTS_INLINE_MAX;
    past that, building and indenting one JSON tree of every result (and
    freeing it) cost more than the round itself, so the results go to
    rounds/round-NNNNNN.results.ndjson, written straight from the decoded
    replies as text, and the record names the file.
*/
#ifndef ZFED_RESULTS_H_INCLUDED
#define ZFED_RESULTS_H_INCLUDED

#include "controller/zfed_round_private.h"

//  Accepted results a round record holds inline, at most.
#define ZFED_RESULTS_INLINE_MAX 1000

//  Appends task index's line (its accepted, still decoded result) to out.
//  0, or -1 when out of memory.
int zfed_results_line(const zfed_round_env_t *self, const round_t *round, uint32_t index,
                      msgpack_sbuffer *out);

//  Room for tasks lines in lines (empty), reserved at once on huge pages
//  (zfed_huge) rather than grown by doubling, which touched twice the
//  final size in fresh pages.  A guess: lines past it grow as before.
void zfed_results_reserve(msgpack_sbuffer *lines, uint32_t tasks);

//  Writes round's accepted results, in task order, one JSON object a line
//  (the keys of a record's results[i]), to path's temporary file: the
//  lines rendered on acceptance, or rendered now.  It is made durable
//  with the round's record, and renamed before it (zfed_records_stage_file).
//  0, or -1 with errno set (nothing left behind).
int zfed_results_write(const zfed_round_env_t *self, const round_t *round, const char *path);

#endif
