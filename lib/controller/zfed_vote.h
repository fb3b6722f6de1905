/*  zfed_vote - replicated tasks: a value is accepted only when a strict
    majority of the task's replicas agree on it byte for byte (private
    header).

    With --replicas K (K > 1) every task goes to K workers.  Each result
    the service accepts is a vote of the identity the broker vouched for
    (PROTOCOL.md 3.1): one say per identity and task, a vote or an error
    that spends a replica, so K votes are K distinct workers (distinct
    CURVE keys under CURVE).  Votes are equal
    when the SHA-256 of their outputs, as the worker packed them, is equal.
    Once floor(K / 2) + 1 votes agree the task is done with that value;
    when K votes are in and none has that many the task fails (no
    majority).  Every vote that differs from the decided value, before or
    after the decision, is recorded as a disagreement naming the workers;
    with --exclude-liars its identity is excluded for the rest of the job:
    its later results are refused (counted, never votes) and the copy
    sent again.
*/
#ifndef ZFED_VOTE_H_INCLUDED
#define ZFED_VOTE_H_INCLUDED

#include "controller/zfed_round_private.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

//  Most replicas a task may have (votes are kept per task).
#define ZFED_VOTE_REPLICAS_MAX 15

//  What a vote did.
typedef enum {
    ZFED_VOTE_COUNTED = 0, //  kept; no majority yet
    ZFED_VOTE_DECIDED,     //  a majority agrees: *winner_p is the value's result
    ZFED_VOTE_SPLIT        //  K votes in, no majority: the task fails
} zfed_vote_outcome_t;

//  The job's excluded identities, shared by its rounds.
typedef struct _zfed_liars_t zfed_liars_t;
zfed_liars_t *zfed_liars_new(void);
void zfed_liars_destroy(zfed_liars_t **self_p);
bool zfed_liars_has(const zfed_liars_t *self, const char *identity);
size_t zfed_liars_size(const zfed_liars_t *self);

//  Whether identity has a say on task index (a vote, or an error that
//  spends a replica): false (with *why) when it is excluded, or has had
//  its say on this task already, either way.
bool zfed_vote_allowed(const zfed_round_env_t *self, const round_t *round, uint32_t index,
                       const char *identity, const char **why);

//  identity spent one of the task's replicas with an error: its say on
//  the task (task->spent counts them).  0, or -1 out of memory.
int zfed_vote_spend(zfed_round_env_t *self, round_t *round, uint32_t index, const char *identity);

//  --resume: the identities earlier rounds' records name as excluded
//  (their "excluded" lists, a json array of strings) stay excluded.
void zfed_vote_restore(zfed_round_env_t *self, const json_t *excluded);

//  Adds the vote of round->identity (*message_p is taken).  On
//  ZFED_VOTE_DECIDED, *winner_p is the first agreeing vote's result, to
//  accept (its identity in *winner_id), taken out of the votes.
zfed_vote_outcome_t zfed_vote_add(zfed_round_env_t *self, round_t *round, uint32_t index,
                                  zfed_msg_t **message_p, zfed_msg_t **winner_p,
                                  char winner_id[ZFED_STAMP_IDENTITY_MAX + 1]);

//  A result for a task already decided: compared with the decision, and a
//  disagreement recorded (and its worker excluded) when it differs.
void zfed_vote_late(zfed_round_env_t *self, round_t *round, uint32_t index,
                    const zfed_msg_t *message);

//  Frees a task's votes.
void zfed_vote_clear(task_t *task);

//  The round record's parts: {"replicas", "disagreements", "excluded",
//  "excluded_results"} added to record.
void zfed_vote_describe(const zfed_round_env_t *self, const round_t *round, json_t *record);

#endif
