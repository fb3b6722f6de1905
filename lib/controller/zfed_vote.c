/*  zfed_vote - a strict majority of replicas, byte for byte.  */
#include "controller/zfed_vote.h"
#include "controller/zfed_job_private.h"
#include "zfed/zfed_log.h"

#include <czmq.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

//  Disagreements kept in one round record (all are counted in the log).
#define DISAGREEMENTS_KEPT 100

struct _zfed_liars_t {
    zhashx_t *identities; //  identity -> a mark
};

zfed_liars_t *zfed_liars_new(void)
{
    zfed_liars_t *self = calloc(1, sizeof *self);
    if (self)
        self->identities = zhashx_new();
    if (!self || !self->identities) {
        free(self);
        return NULL;
    }
    return self;
}

void zfed_liars_destroy(zfed_liars_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zhashx_destroy(&(*self_p)->identities);
    free(*self_p);
    *self_p = NULL;
}

bool zfed_liars_has(const zfed_liars_t *self, const char *identity)
{
    return self && zhashx_lookup(self->identities, identity) != NULL;
}

size_t zfed_liars_size(const zfed_liars_t *self)
{
    return self ? zhashx_size(self->identities) : 0;
}

//  The votes' digest: of the outputs map as the worker packed it (msgpack
//  is re-packed from the decoded object, which for a canonical body, as
//  every zfed peer writes, is the same bytes).
static void s_digest(const zfed_msg_t *message, uint8_t digest[ZFED_SHA256_SIZE])
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    const msgpack_object *outputs = zfed_msg_outputs_object(message);
    if (outputs)
        msgpack_pack_object(&packer, *outputs);
    zfed_sha256(buffer.data ? buffer.data : "", buffer.size, digest);
    msgpack_sbuffer_destroy(&buffer);
}

bool zfed_vote_allowed(const zfed_round_env_t *self, const round_t *round, uint32_t index,
                       const char *identity, const char **why)
{
    if (zfed_liars_has(self->liars, identity)) {
        *why = "its worker is excluded (--exclude-liars)";
        return false;
    }
    const task_t *task = &round->tasks[index];
    for (uint32_t vote = 0; vote < task->vote_count; vote++)
        if (strcmp(task->votes[vote].worker_id, identity) == 0) {
            *why = "its worker has voted on this task already (one replica per identity)";
            return false;
        }
    for (uint32_t spent = 0; spent < task->spent; spent++)
        if (strcmp(task->spent_by[spent], identity) == 0) {
            *why = "its worker has spent a replica of this task with an error already (one "
                   "replica per identity)";
            return false;
        }
    return true;
}

int zfed_vote_spend(zfed_round_env_t *self, round_t *round, uint32_t index, const char *identity)
{
    task_t *task = &round->tasks[index];
    if (!task->spent_by && !(task->spent_by = calloc(self->job->replicas, sizeof *task->spent_by)))
        return -1;
    if (task->spent >= self->job->replicas)
        return -1; //  cannot happen: the task failed before
    snprintf(task->spent_by[task->spent++], sizeof *task->spent_by, "%s", identity);
    return 0;
}

//  identity joins the job's excluded: true when it was not yet.
static bool s_liars_add(zfed_round_env_t *self, const char *identity)
{
    if (zfed_liars_has(self->liars, identity))
        return false;
    if (!self->liars && !(self->liars = zfed_liars_new()))
        return false;
    //  zhashx keeps its own copy of the key; the item is only a mark.
    static char mark[] = "liar";
    return zhashx_insert(self->liars->identities, identity, mark) == 0;
}

//  Its worker lied: excluded for the rest of the job when asked to.
static void s_exclude(zfed_round_env_t *self, round_t *round, const char *identity)
{
    if (!self->job->exclude_liars || !s_liars_add(self, identity))
        return;
    if (!round->excluded)
        round->excluded = json_array();
    json_array_append_new(round->excluded, json_string(identity));
    zfed_warn("round %u: %s excluded for the rest of the job (--exclude-liars)", round->number,
              identity);
}

static json_t *s_vote_json(const vote_t *vote, const zfed_msg_t *message, bool with_majority)
{
    char hex[ZFED_SHA256_HEX_SIZE];
    return json_pack("{s:s,s:s,s:i,s:s,s:b}", "worker_id", vote->worker_id, "worker",
                     message ? zfed_msg_worker(message) : "", "attempt",
                     message ? (int)zfed_msg_attempt(message) : -1, "sha256",
                     zfed_sha256_hex(vote->digest, hex), "with_majority", with_majority);
}

static void s_record(round_t *round, json_t *entry)
{
    if (!round->disagreements)
        round->disagreements = json_array();
    if (json_array_size(round->disagreements) < DISAGREEMENTS_KEPT)
        json_array_append_new(round->disagreements, entry);
    else
        json_decref(entry);
}

//  A decision (or a split) with any vote unlike the others: recorded with
//  every vote, and the minority excluded when asked.
static void s_record_votes(zfed_round_env_t *self, round_t *round, uint32_t index, bool decided,
                           const zfed_msg_t *winner)
{
    task_t *task = &round->tasks[index];
    bool unanimous = true;
    for (uint32_t vote = 1; vote < task->vote_count; vote++)
        unanimous &= memcmp(task->votes[vote].digest, task->votes[0].digest, ZFED_SHA256_SIZE) == 0;
    if (unanimous && decided)
        return;
    char hex[ZFED_SHA256_HEX_SIZE];
    json_t *votes = json_array();
    for (uint32_t vote = 0; vote < task->vote_count; vote++) {
        const vote_t *item = &task->votes[vote];
        bool with = decided && memcmp(item->digest, task->decided, ZFED_SHA256_SIZE) == 0;
        json_array_append_new(votes,
                              s_vote_json(item, item->message ? item->message : winner, with));
        if (decided && !with) {
            const zfed_msg_t *message = item->message ? item->message : winner;
            zfed_warn("round %u task %u: %s (worker \"%s\") voted against the majority of %u "
                      "replicas",
                      round->number, index, item->worker_id,
                      message ? zfed_msg_worker(message) : "", self->job->replicas);
            s_exclude(self, round, item->worker_id);
        }
    }
    if (!decided)
        zfed_warn("round %u task %u: no majority among %u replicas; the task fails", round->number,
                  index, self->job->replicas);
    s_record(round,
             json_pack("{s:i,s:s,s:o,s:o}", "task", index, "outcome",
                       decided ? "majority" : "no majority", "value_sha256",
                       decided ? json_string(zfed_sha256_hex(task->decided, hex)) : json_null(),
                       "votes", votes));
}

zfed_vote_outcome_t zfed_vote_add(zfed_round_env_t *self, round_t *round, uint32_t index,
                                  zfed_msg_t **message_p, zfed_msg_t **winner_p,
                                  char winner_id[ZFED_STAMP_IDENTITY_MAX + 1])
{
    const zfed_job_t *job = self->job;
    task_t *task = &round->tasks[index];
    if (!task->votes) {
        task->votes = calloc(job->replicas, sizeof *task->votes);
        if (!task->votes) {
            zfed_msg_destroy(message_p);
            return ZFED_VOTE_COUNTED;
        }
    }
    vote_t *vote = &task->votes[task->vote_count++];
    snprintf(vote->worker_id, sizeof vote->worker_id, "%s", round->identity);
    vote->message = *message_p;
    *message_p = NULL;
    s_digest(vote->message, vote->digest);
    uint32_t majority = job->replicas / 2 + 1;
    uint32_t agree = 0, first = 0;
    for (uint32_t other = 0; other < task->vote_count; other++)
        if (memcmp(task->votes[other].digest, vote->digest, ZFED_SHA256_SIZE) == 0 && !agree++)
            first = other;
    if (agree >= majority) {
        memcpy(task->decided, vote->digest, ZFED_SHA256_SIZE);
        *winner_p = task->votes[first].message;
        task->votes[first].message = NULL;
        snprintf(winner_id, ZFED_STAMP_IDENTITY_MAX + 1, "%s", task->votes[first].worker_id);
        s_record_votes(self, round, index, true, *winner_p);
        return ZFED_VOTE_DECIDED;
    }
    if (task->vote_count >= job->replicas) {
        s_record_votes(self, round, index, false, NULL);
        return ZFED_VOTE_SPLIT;
    }
    return ZFED_VOTE_COUNTED;
}

void zfed_vote_late(zfed_round_env_t *self, round_t *round, uint32_t index,
                    const zfed_msg_t *message)
{
    task_t *task = &round->tasks[index];
    if (task->vote_count == 0)
        return; //  decided without votes (replicas 1)
    vote_t late = {{0}, NULL, {0}};
    snprintf(late.worker_id, sizeof late.worker_id, "%s", round->identity);
    s_digest(message, late.digest);
    if (memcmp(late.digest, task->decided, ZFED_SHA256_SIZE) == 0)
        return;
    char hex[ZFED_SHA256_HEX_SIZE];
    zfed_warn("round %u task %u: %s (worker \"%s\") answered after the majority, against it",
              round->number, index, late.worker_id, zfed_msg_worker(message));
    json_t *votes = json_array();
    json_array_append_new(votes, s_vote_json(&late, message, false));
    s_record(round,
             json_pack("{s:i,s:s,s:s,s:o}", "task", index, "outcome", "against the majority, late",
                       "value_sha256", zfed_sha256_hex(task->decided, hex), "votes", votes));
    s_exclude(self, round, late.worker_id);
}

void zfed_vote_clear(task_t *task)
{
    for (uint32_t vote = 0; task->votes && vote < task->vote_count; vote++)
        zfed_msg_destroy(&task->votes[vote].message);
    free(task->votes);
    task->votes = NULL;
    task->vote_count = 0;
    free(task->spent_by);
    task->spent_by = NULL;
    task->spent = 0;
}

void zfed_vote_describe(const zfed_round_env_t *self, const round_t *round, json_t *record)
{
    if (self->job->replicas < 2)
        return;
    json_object_set_new(record, "replicas", json_integer(self->job->replicas));
    json_object_set_new(record, "disagreements",
                        round->disagreements ? json_incref(round->disagreements) : json_array());
    json_object_set_new(record, "excluded",
                        round->excluded ? json_incref(round->excluded) : json_array());
    json_object_set_new(record, "excluded_results",
                        json_integer((json_int_t)round->excluded_results));
}

void zfed_vote_restore(zfed_round_env_t *self, const json_t *excluded)
{
    size_t index;
    const json_t *identity;
    json_array_foreach(excluded, index, identity)
    {
        const char *text = json_string_value(identity);
        if (text && s_liars_add(self, text))
            zfed_info("%s stays excluded (--exclude-liars, in an earlier round's record)", text);
    }
}
