/*  zfed_records - global state, round records, best round, summary, resume.  */
#include "controller/zfed_records.h"
#include "controller/zfed_job_private.h"
#include "controller/zfed_store_private.h"
#include "zfed/zfed_json.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_util.h"
#include "zfed/zfed_version.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  --sync group: how soon a due group whose predecessor is still with the
//  durability thread is looked at again by a running round.
#define GROUP_RETRY_MS 2

struct _zfed_records_t {
    const zfed_job_t *job;
    const zfed_service_t *service;
    zfed_store_t *store;
    zfed_global_t global;
    uint32_t next_round;
    //  Per round, for the summary: entries and late counts.
    json_t *summaries;
    uint64_t *late;
    uint64_t foreign;
    //  Best round so far.
    int64_t best_round;
    mpq_t best_aggregate;
    double best_number;
    json_t *best_value;
    int64_t started_wall_ms;
    //  Model services: the global model's record object and state.
    bool models;
    json_t *model_value;
    json_t *model_state;
    //  Resume: the identities earlier rounds excluded (--exclude-liars).
    json_t *excluded;
    //  A model round whose record was written before its evaluation
    //  ended (ZFED_RECORDS_EVAL_PENDING): that record, and its round
    //  (-1: none).  Only the last round can be pending.
    json_t *pending;
    int64_t pending_round;
    //  --sync round: each record durable before the next round starts.
    bool sync;
    //  --sync group: records handed to the durability thread together,
    //  group_ms after the open group's first (0: one group a round), or
    //  later while the group before is not yet durable.  group_rounds:
    //  records staged and not handed over (the group is open while there
    //  are any); group_due_ms: when they are to be (or looked at again);
    //  group_round: the first's round.
    uint32_t group_ms;
    int64_t group_due_ms;
    uint32_t group_round;
    uint32_t group_rounds;
    //  Rounds below this one are known durable (the rest are staged or
    //  with the durability thread).
    uint32_t durable_next;
};

//  ---------------------------------------------------------------------
//  Helpers

//  ISO 8601 UTC with milliseconds; text needs 80 bytes to satisfy the
//  compiler's worst case for every field.
static char *s_iso_time(int64_t wall_ms, char *text, size_t size)
{
    time_t seconds = (time_t)(wall_ms / 1000);
    struct tm parts;
    gmtime_r(&seconds, &parts);
    snprintf(text, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900,
             parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
             (int)(wall_ms % 1000));
    return text;
}

json_t *zfed_records_time_json(int64_t wall_ms)
{
    char text[80];
    return json_string(s_iso_time(wall_ms, text, sizeof text));
}

json_t *zfed_records_exact_json(const mpq_t *values, size_t dims)
{
    json_t *array = json_array();
    for (size_t dim = 0; array && dim < dims; dim++) {
        char *text = mpq_get_str(NULL, 10, values[dim]);
        json_array_append_new(array, json_string(text));
        void (*free_function)(void *, size_t);
        mp_get_memory_functions(NULL, NULL, &free_function);
        free_function(text, strlen(text) + 1);
    }
    return array;
}

static int s_set_global(zfed_records_t *self, int64_t round, const msgpack_sbuffer *packed)
{
    uint8_t *copy = malloc(packed->size);
    if (!copy)
        return -1;
    memcpy(copy, packed->data, packed->size);
    free(self->global.value);
    self->global.value = copy;
    self->global.size = packed->size;
    self->global.round = round;
    return 0;
}

json_t *zfed_records_global_json(zfed_records_t *self)
{
    if (self->models)
        return json_pack("{s:I,s:O}", "round", (json_int_t)self->global.round, "value",
                         self->model_value ? self->model_value : json_null());
    msgpack_unpacked unpacked;
    json_t *value = NULL;
    if (zfed_unpack(&unpacked, self->global.value, self->global.size) == 0)
        value = zfed_json_from_msgpack(&unpacked.data);
    msgpack_unpacked_destroy(&unpacked);
    return json_pack("{s:I,s:o}", "round", (json_int_t)self->global.round, "value",
                     value ? value : json_null());
}

//  The value of the selection metric for a closed round (new reference),
//  and as a number for comparisons.
static json_t *s_metric_value(zfed_records_t *self, const json_t *record, double *number)
{
    const char *key = NULL;
    switch (self->job->metric) {
    case ZFED_METRIC_RESULTS:
        key = "answered";
        break;
    case ZFED_METRIC_DURATION:
        key = "duration_ms";
        break;
    case ZFED_METRIC_TEST_ACCURACY:
    case ZFED_METRIC_TEST_LOSS:
        key = zfed_metric_name(self->job->metric);
        break;
    default:
        *number = 0;
        return json_incref(json_object_get(record, "aggregate"));
    }
    json_t *value = json_object_get(record, key);
    *number = json_number_value(value);
    return json_incref(value ? value : json_null());
}

//  Updates the best round with a closed round's metric; takes value.
static void s_consider_best(zfed_records_t *self, uint32_t round, const mpq_t *aggregate,
                            double number, json_t *value)
{
    bool better;
    if (self->best_round < 0)
        better = true;
    else if (self->job->metric == ZFED_METRIC_AGGREGATE) {
        int order = mpq_cmp(aggregate[0], self->best_aggregate);
        better = self->job->maximize ? order > 0 : order < 0;
    } else
        better = self->job->maximize ? number > self->best_number : number < self->best_number;
    if (!better) {
        json_decref(value);
        return;
    }
    self->best_round = round;
    if (self->job->metric == ZFED_METRIC_AGGREGATE)
        mpq_set(self->best_aggregate, aggregate[0]);
    self->best_number = number;
    json_decref(self->best_value);
    self->best_value = value;
}

//  The summary's view of a round: what the user asked to see.  A big
//  round's results stay in their own file, which the summary names.
static json_t *s_round_summary(const json_t *record)
{
    json_t *file = json_object_get(record, "results_file");
    json_t *results = file ? json_incref(file) : json_array();
    size_t index;
    json_t *entry;
    json_array_foreach(json_object_get(record, "results"), index, entry)
    {
        //  A shallow copy without the times: its values are the record's,
        //  which nothing changes once the round closed.  Built key by key
        //  (a json_copy and two deletes cost twice as much).
        json_t *brief = json_is_object(entry) ? json_object() : json_incref(entry);
        const char *key;
        size_t length;
        json_t *value;
        if (brief && json_is_object(entry))
            json_object_keylen_foreach(entry, key, length, value)
            {
                if (strcmp(key, "latency_us") != 0 && strcmp(key, "compute_us") != 0)
                    json_object_setn_nocheck(brief, key, length, value);
            }
        json_array_append_new(results, brief);
    }
    json_t *summary = json_pack(
        "{s:O,s:I,s:o,s:O,s:O,s:O,s:O,s:O,s:O,s:I}", "round", json_object_get(record, "round"),
        "answered", json_integer_value(json_object_get(record, "answered")),
        file ? "results_file" : "results", results, "aggregate",
        json_object_get(record, "aggregate"), "duration_ms", json_object_get(record, "duration_ms"),
        "missing", json_object_get(record, "missing"), "duplicates",
        json_object_get(record, "duplicates"), "errors", json_object_get(record, "errors"),
        "invalid", json_object_get(record, "invalid"), "late", (json_int_t)0);
    //  The round's model on the job's eval_data, when it has one.
    static const char *const evaluation[] = {"test_accuracy", "test_loss", "test_samples", NULL};
    for (size_t key = 0; summary && evaluation[key]; key++)
        if (json_object_get(record, evaluation[key]))
            json_object_set(summary, evaluation[key], json_object_get(record, evaluation[key]));
    return summary;
}

//  Whether a record waits for its evaluation's figures.
static bool s_eval_pending(const json_t *record)
{
    const char *eval = json_string_value(json_object_get(record, "eval"));
    return eval && strcmp(eval, ZFED_RECORDS_EVAL_PENDING) == 0;
}

//  A round that is on disk counts: best round and summary.  A round whose
//  evaluation is pending is kept, and competes for best once its figures
//  are in (zfed_records_evaluated): rounds compete in order either way.
static void s_count_round(zfed_records_t *self, uint32_t round, const json_t *record,
                          const mpq_t *aggregate)
{
    if (s_eval_pending(record)) {
        json_decref(self->pending);
        self->pending = json_incref((json_t *)record);
        self->pending_round = round;
    } else {
        double number;
        json_t *value = s_metric_value(self, record, &number);
        s_consider_best(self, round, aggregate, number, value);
    }
    json_array_append_new(self->summaries, s_round_summary(record));
    self->next_round = round + 1;
}

//  ---------------------------------------------------------------------
//  Closing rounds and the job

//  A durability failure: the rounds whose records may not have landed
//  are not counted in the summary (the error names the file).
static void s_forget_undurable(zfed_records_t *self)
{
    size_t count = json_array_size(self->summaries);
    while (count > 0) {
        json_t *last = json_array_get(self->summaries, count - 1);
        if (json_integer_value(json_object_get(last, "round")) < (json_int_t)self->durable_next)
            break;
        json_array_remove(self->summaries, --count);
    }
    if (self->next_round > self->durable_next)
        self->next_round = self->durable_next;
}

//  Hands the open group to the durability thread once the groups before
//  it are durable (with wait: durable itself on return).  first is the
//  open group's first round, next the round after its last.
static int s_hand_over(zfed_records_t *self, bool wait, uint32_t first, uint32_t next,
                       zfed_error_t *error)
{
    self->group_rounds = 0;
    if (zfed_store_flush(self->store, wait, error) != 0) {
        s_forget_undurable(self);
        return -1;
    }
    //  The groups before are durable: every round before this group.
    self->durable_next = wait ? next : first;
    return 0;
}

//  Round's record to its temporary file, then handed to the durability
//  thread once the group before is durable (with wait: durable itself on
//  return; with --sync group: with the records of the rounds that closed
//  within group_ms, see zfed_records_tick).  Before the hand-over nothing
//  is counted: a failure changes nothing but the summary's view of the
//  round(s) before (above).
static int s_stage_round(zfed_records_t *self, uint32_t round, const json_t *record, bool wait,
                         zfed_error_t *error)
{
    //  No record, no next round: resuming must never skip one.
    if (zfed_store_stage_round(self->store, round, record) != 0)
        return zfed_error_set(error, ZFED_E_IO, "", "cannot write round %u's record in %s: %s",
                              round, zfed_store_path(self->store), strerror(errno));
    if (self->group_rounds == 0)
        self->group_round = round;
    uint32_t first = self->group_round;
    if (self->group_ms && !wait) {
        int64_t now = zfed_clock_ms();
        if (self->group_rounds == 0)
            self->group_due_ms = now + self->group_ms;
        //  A full group waits for the one before; a due one only goes
        //  when the thread is free (a slow disk makes the groups bigger,
        //  never the rounds slower).
        if (++self->group_rounds < ZFED_RECORDS_GROUP_ROUNDS_MAX &&
            (now < self->group_due_ms || zfed_store_busy(self->store)))
            return 0;
    }
    return s_hand_over(self, wait, first, round + 1, error);
}

int64_t zfed_records_due(const zfed_records_t *self)
{
    return self->group_rounds > 0 ? self->group_due_ms : INT64_MAX;
}

int zfed_records_tick(zfed_records_t *self, int64_t now_ms, zfed_error_t *error)
{
    if (self->group_rounds == 0 || now_ms < self->group_due_ms)
        return 0;
    if (zfed_store_busy(self->store)) {
        self->group_due_ms = now_ms + GROUP_RETRY_MS;
        return 0;
    }
    return s_hand_over(self, false, self->group_round, 0, error);
}

void zfed_records_set_group(zfed_records_t *self, uint32_t interval_ms)
{
    self->group_ms = interval_ms;
    //  One flush of the device a group, not one a record: what makes a
    //  group cheaper than its rounds one by one.  Model rounds are never
    //  grouped (each waits for its record), and their model files keep
    //  their fsyncs.
    zfed_store_set_syncfs(self->store, interval_ms > 0 && !self->models);
}

void zfed_records_stage_file(zfed_records_t *self, zfed_durable_t **file_p)
{
    zfed_store_stage_file(self->store, file_p);
    //  A round's own results file lands before the record that names it.
    zfed_store_barrier(self->store);
}

void zfed_records_set_sync(zfed_records_t *self, bool sync)
{
    self->sync = sync;
}

int zfed_records_drain(zfed_records_t *self, zfed_error_t *error)
{
    self->group_rounds = 0;
    if (zfed_store_flush(self->store, true, error) != 0) {
        s_forget_undurable(self);
        return -1;
    }
    self->durable_next = self->next_round;
    return 0;
}

void zfed_records_count_late(zfed_records_t *self, uint32_t round)
{
    if (round < self->job->rounds)
        self->late[round]++;
}

void zfed_records_count_foreign(zfed_records_t *self)
{
    self->foreign++;
}

int zfed_records_close_round(zfed_records_t *self, uint32_t round, json_t *record,
                             const mpq_t *aggregate, size_t dims, zfed_error_t *error)
{
    //  The aggregate becomes the next round's global state; keep the old
    //  one until the record is safe, so a failed write changes nothing.
    msgpack_sbuffer packed;
    msgpack_sbuffer_init(&packed);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &packed, msgpack_sbuffer_write);
    zfed_global_t before = self->global;
    self->global.value = NULL;
    int rc = self->service->pack_aggregate(aggregate, dims, &packer);
    if (rc == 0)
        rc = s_set_global(self, round, &packed);
    msgpack_sbuffer_destroy(&packed);
    json_t *global_out = rc == 0 ? zfed_records_global_json(self) : NULL;
    zfed_global_t after = self->global;
    self->global = before;
    json_t *global_in = zfed_records_global_json(self);
    if (!global_out || !global_in || json_object_set_new(record, "global_in", global_in) != 0 ||
        json_object_set_new(record, "global_out", global_out) != 0) {
        free(after.value);
        return zfed_error_set(error, ZFED_E_NOMEM, "", "round %u: out of memory", round);
    }
    if (s_stage_round(self, round, record, self->sync, error) != 0) {
        free(after.value);
        return -1;
    }
    free(before.value);
    self->global = after;
    s_count_round(self, round, record, aggregate);
    return 0;
}

void zfed_records_set_model_global(zfed_records_t *self, int64_t round, json_t *value)
{
    json_decref(self->model_value);
    self->model_value = value;
    self->global.round = round;
}

int zfed_records_close_model_round(zfed_records_t *self, uint32_t round, json_t *record,
                                   const json_t *aggregate, zfed_error_t *error)
{
    json_t *global_in = zfed_records_global_json(self);
    json_t *global_out =
        json_pack("{s:I,s:O}", "round", (json_int_t)round, "value", (json_t *)aggregate);
    if (!global_in || !global_out || json_object_set_new(record, "global_in", global_in) != 0 ||
        json_object_set_new(record, "global_out", global_out) != 0)
        return zfed_error_set(error, ZFED_E_NOMEM, "", "round %u: out of memory", round);
    //  Durable before the round's model files are linked and the old
    //  ones removed (zfed_models_advance), as resuming needs.
    if (s_stage_round(self, round, record, true, error) != 0)
        return -1;
    zfed_records_set_model_global(self, round, json_incref((json_t *)aggregate));
    json_decref(self->model_state);
    self->model_state = json_incref(json_object_get(record, "state"));
    s_count_round(self, round, record, NULL);
    return 0;
}

int64_t zfed_records_pending(zfed_records_t *self)
{
    return self->pending_round;
}

int zfed_records_evaluated(zfed_records_t *self, const json_t *figures, zfed_error_t *error)
{
    uint32_t round = (uint32_t)self->pending_round;
    json_t *record = self->pending;
    if (json_object_update(record, (json_t *)figures) != 0 || json_object_del(record, "eval") != 0)
        return zfed_error_set(error, ZFED_E_NOMEM, "", "round %u: out of memory", round);
    //  Written whole in place of the pending one (temporary file, fsync,
    //  rename): a kill leaves one or the other.
    //  ... and durable before best_model.safetensors may follow it, and
    //  before the next round's record (a pending record followed by
    //  another is refused as corrupt).
    if (s_stage_round(self, round, record, true, error) != 0)
        return -1;
    self->pending = NULL;
    self->pending_round = -1;
    //  The summary's entry for the round is the last one.
    json_t *summary = json_array_get(self->summaries, json_array_size(self->summaries) - 1);
    json_t *brief = s_round_summary(record);
    if (summary && brief)
        json_object_update(summary, brief);
    json_decref(brief);
    double number;
    json_t *value = s_metric_value(self, record, &number);
    s_consider_best(self, round, NULL, number, value);
    json_decref(record);
    return 0;
}

const json_t *zfed_records_model_value(zfed_records_t *self)
{
    return self->global.round >= 0 ? self->model_value : NULL;
}

const json_t *zfed_records_model_state(zfed_records_t *self)
{
    return self->model_state;
}

int zfed_records_write_summary(zfed_records_t *self, const char *status, const char *failure)
{
    const zfed_job_t *job = self->job;
    //  Late counts keep growing after a round closes; the summary has the
    //  final figures.
    size_t index;
    json_t *summary;
    uint64_t late_total = 0;
    json_array_foreach(self->summaries, index, summary)
    {
        uint32_t round = (uint32_t)json_integer_value(json_object_get(summary, "round"));
        json_object_set_new(summary, "late", json_integer((json_int_t)self->late[round]));
        late_total += self->late[round];
    }
    char select[48];
    snprintf(select, sizeof select, "%s:%s", zfed_metric_name(job->metric),
             job->maximize ? "max" : "min");
    int64_t finished = zfed_wall_ms();
    json_t *best = self->best_round >= 0
                       ? json_pack("{s:I,s:s,s:s,s:O}", "round", (json_int_t)self->best_round,
                                   "metric", zfed_metric_name(job->metric), "direction",
                                   job->maximize ? "max" : "min", "value", self->best_value)
                       : json_null();
    json_t *root = json_pack(
        "{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:s,s:s,s:O,s:o,s:o,s:o,s:I,s:I,s:o,s:o,s:I}", "job_id",
        job->job_id, "status", status, "zfed_version", ZFED_VERSION_STRING, "service", job->service,
        "rounds_planned", job->rounds, "rounds_completed", (int)json_array_size(self->summaries),
        "tasks_per_round", job->tasks, "aggregation", zfed_agg_strategy_name(job->strategy),
        "select", select, "rounds", self->summaries, "best_round",
        self->best_round >= 0 ? json_integer((json_int_t)self->best_round) : json_null(), "best",
        best, "final_global", zfed_records_global_json(self), "late_total", (json_int_t)late_total,
        "foreign_replies", (json_int_t)self->foreign, "started_at",
        zfed_records_time_json(self->started_wall_ms), "finished_at",
        zfed_records_time_json(finished), "duration_ms",
        (json_int_t)(finished - self->started_wall_ms));
    if (!root)
        return -1;
    if (failure && failure[0])
        json_object_set_new(root, "error", json_string(failure));
    int rc = zfed_store_write(self->store, ZFED_STORE_SUMMARY, root);
    if (rc == 0 && self->best_round >= 0)
        rc = zfed_store_write(self->store, ZFED_STORE_BEST, best);
    json_t *global = zfed_records_global_json(self);
    if (rc == 0)
        rc = zfed_store_write(self->store, ZFED_STORE_GLOBAL, global);
    json_decref(global);
    json_decref(root);
    if (rc != 0)
        zfed_error("cannot write the summary in %s: %s", zfed_store_path(self->store),
                   strerror(errno));
    return rc;
}

//  ---------------------------------------------------------------------
//  Resume

//  Late results arrive after their round's record was written, so the
//  records cannot hold them; the summary written when the controller last
//  stopped (interrupted or failed) can.  Missing after a kill -9: then the
//  late counts before the crash are lost, which only affects counters.
static void s_resume_late_counts(zfed_records_t *self)
{
    char ignored[256];
    json_t *summary = zfed_store_read(self->store, ZFED_STORE_SUMMARY, ignored, sizeof ignored);
    size_t index;
    json_t *round;
    json_array_foreach(json_object_get(summary, "rounds"), index, round)
    {
        json_int_t number = json_integer_value(json_object_get(round, "round"));
        json_int_t late = json_integer_value(json_object_get(round, "late"));
        if (number >= 0 && (uint64_t)number < self->next_round && late > 0)
            self->late[number] = (uint64_t)late;
    }
    json_decref(summary);
}

//  Rebuilds the state after the last durable round record.
static int s_resume(zfed_records_t *self, zfed_error_t *error)
{
    for (uint32_t round = 0; round < self->job->rounds; round++) {
        char reason[ZFED_ERROR_REASON_MAX];
        json_t *record = zfed_store_read_round(self->store, round, reason, sizeof reason);
        if (!record) {
            if (errno == ENOENT)
                break;
            //  Corrupt: reported, never half-read.
            return zfed_error_set(error, ZFED_E_CORRUPT, "", "%s", reason);
        }
        json_t *global = json_object_get(json_object_get(record, "global_out"), "value");
        json_array_extend(self->excluded, json_object_get(record, "excluded"));
        if (self->models) {
            //  A model round: its global is a file, checked by zfed_models.
            if (!json_is_object(global)) {
                json_decref(record);
                return zfed_error_set(error, ZFED_E_CORRUPT, "",
                                      "round %u's record names no global model", round);
            }
            zfed_records_set_model_global(self, round, json_incref(global));
            json_decref(self->model_state);
            self->model_state = json_incref(json_object_get(record, "state"));
            if (self->pending_round >= 0) {
                json_decref(record);
                return zfed_error_set(error, ZFED_E_CORRUPT, "",
                                      "round %" PRId64 "'s record waits for its evaluation, yet "
                                      "round %u's record follows it",
                                      self->pending_round, round);
            }
            s_count_round(self, round, record, NULL);
            json_decref(record);
            continue;
        }
        json_t *exact = json_object_get(record, "aggregate_exact");
        mpq_t aggregate;
        mpq_init(aggregate);
        int rc =
            json_is_array(exact) && json_array_size(exact) >= 1 &&
                    json_is_string(json_array_get(exact, 0)) &&
                    mpq_set_str(aggregate, json_string_value(json_array_get(exact, 0)), 10) == 0
                ? 0
                : -1;
        msgpack_sbuffer packed;
        msgpack_sbuffer_init(&packed);
        msgpack_packer packer;
        msgpack_packer_init(&packer, &packed, msgpack_sbuffer_write);
        if (rc == 0 && global && zfed_json_pack(global, &packer, NULL, 0) == 0)
            rc = s_set_global(self, round, &packed);
        else
            rc = -1;
        msgpack_sbuffer_destroy(&packed);
        if (rc != 0) {
            mpq_clear(aggregate);
            json_decref(record);
            return zfed_error_set(error, ZFED_E_CORRUPT, "",
                                  "round %u's record lacks its aggregate or global state", round);
        }
        mpq_canonicalize(aggregate);
        s_count_round(self, round, record, (const mpq_t *)&aggregate);
        mpq_clear(aggregate);
        json_decref(record);
    }
    s_resume_late_counts(self);
    self->durable_next = self->next_round;
    return 0;
}

//  The state round 0 carries, shaped by the job's first task.
static int s_initial_global(zfed_records_t *self)
{
    uint8_t *params = NULL;
    size_t params_size = 0;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    msgpack_sbuffer packed;
    msgpack_sbuffer_init(&packed);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &packed, msgpack_sbuffer_write);
    int rc = zfed_job_pack_params(self->job, 0, 0, &params, &params_size, NULL);
    if (rc == 0) {
        msgpack_unpacked_destroy(&unpacked);
        rc = zfed_unpack(&unpacked, params, params_size);
    }
    if (rc == 0)
        rc = self->service->pack_initial(&unpacked.data, &packer);
    if (rc == 0)
        rc = s_set_global(self, -1, &packed);
    msgpack_sbuffer_destroy(&packed);
    msgpack_unpacked_destroy(&unpacked);
    free(params);
    return rc;
}

//  ---------------------------------------------------------------------
//  Construction

zfed_records_t *zfed_records_new(const zfed_job_t *job, const zfed_service_t *service, bool resume,
                                 zfed_error_t *error)
{
    zfed_records_t *self = calloc(1, sizeof *self);
    if (!self) {
        zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
        return NULL;
    }
    self->job = job;
    self->service = service;
    self->best_round = -1;
    self->pending_round = -1;
    self->started_wall_ms = zfed_wall_ms();
    mpq_init(self->best_aggregate);
    self->summaries = json_array();
    self->excluded = json_array();
    self->late = calloc(job->rounds, sizeof *self->late);
    self->models = service->kind == ZFED_SERVICE_MODEL;
    self->global.round = -1;
    if (!self->summaries || !self->excluded || !self->late ||
        (!self->models && s_initial_global(self) != 0)) {
        zfed_error_set(error, ZFED_E_NOMEM, "", "out of memory");
        goto err;
    }
    self->store = zfed_store_open(job->workdir, job->job_id, resume, error);
    if (!self->store)
        goto err;
    if (resume) {
        if (s_resume(self, error) != 0)
            goto err;
    } else {
        json_t *settings = zfed_job_to_json(job);
        int rc = settings ? zfed_store_write(self->store, ZFED_STORE_JOB, settings) : -1;
        json_decref(settings);
        //  The split the sites come from, as it was when the job started.
        if (rc == 0 && zfed_job_split(job))
            rc = zfed_store_write(self->store, ZFED_JOB_SPLIT_FILE, zfed_job_split(job));
        if (rc != 0) {
            zfed_error_set(error, ZFED_E_IO, "", "cannot write %s/%s: %s",
                           zfed_store_path(self->store), ZFED_STORE_JOB, strerror(errno));
            goto err;
        }
    }
    return self;
err:
    zfed_records_destroy(&self);
    return NULL;
}

void zfed_records_destroy(zfed_records_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_records_t *self = *self_p;
    zfed_store_destroy(&self->store);
    json_decref(self->summaries);
    json_decref(self->best_value);
    free(self->late);
    free(self->global.value);
    json_decref(self->model_value);
    json_decref(self->model_state);
    json_decref(self->excluded);
    json_decref(self->pending);
    mpq_clear(self->best_aggregate);
    free(self);
    *self_p = NULL;
}

const json_t *zfed_records_excluded(zfed_records_t *self)
{
    return self->excluded;
}

const char *zfed_records_path(zfed_records_t *self)
{
    return zfed_store_path(self->store);
}

uint32_t zfed_records_next(zfed_records_t *self)
{
    return self->next_round;
}

const zfed_global_t *zfed_records_global(zfed_records_t *self)
{
    return &self->global;
}

const json_t *zfed_records_summaries(zfed_records_t *self)
{
    return self->summaries;
}

const uint64_t *zfed_records_late(zfed_records_t *self)
{
    return self->late;
}

int64_t zfed_records_best_round(zfed_records_t *self)
{
    return self->best_round;
}

const json_t *zfed_records_best_value(zfed_records_t *self)
{
    return self->best_value;
}
