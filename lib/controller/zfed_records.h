/*  zfed_records - what a job keeps: the global state each round carries,
    one durable record per closed round, the best round, and the summary
    (private header).

    A closed round's record is written whole before the round counts (for
    the best round, the summary, the next round's global state) and is
    durable before the next round's record is handed over (zfed_store's
    durability thread makes it so while the next round runs), so a
    controller killed at any moment resumes from the last record and
    finishes with the summary an undisturbed run writes.  Late results
    arrive after their round's record was written; they are counted here
    and land in the summary.
*/
#ifndef ZFED_RECORDS_H_INCLUDED
#define ZFED_RECORDS_H_INCLUDED

#include "core/zfed_durable.h"
#include "zfed/zfed_error.h"
#include "zfed/zfed_job.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_store.h"

#include <jansson.h>
#include <msgpack.h>
#include <stdint.h>

//  The global state the next round's tasks carry: the round whose
//  aggregate it is (-1: the initial value) and its msgpack bytes.
typedef struct {
    int64_t round;
    uint8_t *value;
    size_t size;
} zfed_global_t;

typedef struct _zfed_records_t zfed_records_t;

//  Opens the job's work folder (see zfed_store_open): a new job writes
//  job.json; with resume, every record is read back (zfed_records_next
//  then says where to go on).  NULL with the error: ZFED_E_EXISTS when a
//  new job's folder already holds one, ZFED_E_NO_JOB when a resumed one
//  holds none, ZFED_E_CORRUPT for a record that cannot be trusted.
zfed_records_t *zfed_records_new(const zfed_job_t *job, const zfed_service_t *service, bool resume,
                                 zfed_error_t *error);
void zfed_records_destroy(zfed_records_t **self_p);

//  The job folder.
const char *zfed_records_path(zfed_records_t *self);

//  After a resume: every identity the records' "excluded" lists name (a
//  json array of strings, borrowed; empty for a new job).
const json_t *zfed_records_excluded(zfed_records_t *self);

//  The first round without a record, and the global state it carries.
uint32_t zfed_records_next(zfed_records_t *self);
const zfed_global_t *zfed_records_global(zfed_records_t *self);

//  The global state as {"round": R, "value": ...} (new reference).
json_t *zfed_records_global_json(zfed_records_t *self);

//  A result or error for round, which has closed: counted, never used.
void zfed_records_count_late(zfed_records_t *self, uint32_t round);
//  A reply for another job.
void zfed_records_count_foreign(zfed_records_t *self);

//  A closed round.  record is its whole record (without global_in and
//  global_out, which this adds); aggregate holds dims values, packed by
//  the service as the next global state.  Writes the record to its
//  temporary file, waits until the round before's record is durable,
//  hands this one to the durability thread (zfed_store_flush), then
//  counts the round.  0, or -1 with the reason in error (nothing counted).
int zfed_records_close_round(zfed_records_t *self, uint32_t round, json_t *record,
                             const mpq_t *aggregate, size_t dims, zfed_error_t *error);

//  Model services (schemas/MODELS.md 9): the global is a model file,
//  named in records as zfed_models_json gives it.  set_model_global says
//  which one the job starts from (round -1: the initial model; takes
//  value).  close_model_round is close_round's twin: record is the whole
//  record but global_in and global_out, aggregate the new global's
//  object (borrowed).
void zfed_records_set_model_global(zfed_records_t *self, int64_t round, json_t *value);
int zfed_records_close_model_round(zfed_records_t *self, uint32_t round, json_t *record,
                                   const json_t *aggregate, zfed_error_t *error);
//  A model round's record may be written before its evaluation ends
//  (the next round trains meanwhile): it then has "eval": "pending" and
//  no figures, counts as closed (the next round's global is its
//  aggregate) but competes for the best round only once
//  zfed_records_evaluated adds its figures and writes it again.  Only
//  the last record can be pending; a resumed job evaluates it first.
#define ZFED_RECORDS_EVAL_PENDING "pending"
//  The round whose record is pending, or -1.
int64_t zfed_records_pending(zfed_records_t *self);
//  The pending round's figures (test_accuracy, ..., eval_us): added to
//  its record, which is written again durably; then it counts for the
//  best round and the summary.  0, or -1 with the error.
int zfed_records_evaluated(zfed_records_t *self, const json_t *figures, zfed_error_t *error);
//  After a resume: the last record's global model and its optimiser
//  state ("state", NULL when none), borrowed; NULL when no round closed.
const json_t *zfed_records_model_value(zfed_records_t *self);
const json_t *zfed_records_model_state(zfed_records_t *self);

//  A big round's results file, written through zfed_durable: made durable
//  with its round's record, before it (takes file).
void zfed_records_stage_file(zfed_records_t *self, zfed_durable_t **file_p);
//  --sync round: every record durable before close_round returns.  By
//  default a round's record is durable before the next round's record is
//  handed over (close_round waits for it), and a model round's before
//  close_model_round returns.
void zfed_records_set_sync(zfed_records_t *self, bool sync);
//  --sync group (interval_ms > 0; schemas/WORKDIR.md 1.1): a closed
//  round's record is staged and handed to the durability thread with the
//  records of the rounds that closed after it, at the first close (or
//  tick) interval_ms after the group's first record once the group before
//  is durable, or at the group's ZFED_RECORDS_GROUP_ROUNDS_MAXth record
//  (which waits for the group before): one fsync of the folder, and one
//  journal commit for the records' data, a group instead of a round.  A
//  model round, drain and --sync round hand the open group over at once.
#define ZFED_RECORDS_GROUP_ROUNDS_MAX 1000
void zfed_records_set_group(zfed_records_t *self, uint32_t interval_ms);
//  When the open group is due (INT64_MAX: none is open), on the monotonic
//  clock; tick hands it over if it is due at now_ms.  0, or -1 with the
//  error (the work folder failed: as close_round's).
int64_t zfed_records_due(const zfed_records_t *self);
int zfed_records_tick(zfed_records_t *self, int64_t now_ms, zfed_error_t *error);
//  Waits until everything written is durable (the job's end, however it
//  ends).  0, or -1 with the error naming the file that failed.
int zfed_records_drain(zfed_records_t *self, zfed_error_t *error);

//  The summary, best.json and global.json.  failure is "" or why the job
//  did not complete.  0, or -1 (logged).
int zfed_records_write_summary(zfed_records_t *self, const char *status, const char *failure);

//  Record helpers: a wall-clock time as ISO 8601 UTC with milliseconds,
//  and an exact aggregate as one rational string per value (for resume).
json_t *zfed_records_time_json(int64_t wall_ms);
json_t *zfed_records_exact_json(const mpq_t *values, size_t dims);

//  For the final table and message.
const json_t *zfed_records_summaries(zfed_records_t *self);
const uint64_t *zfed_records_late(zfed_records_t *self);
int64_t zfed_records_best_round(zfed_records_t *self);
const json_t *zfed_records_best_value(zfed_records_t *self);

#endif
