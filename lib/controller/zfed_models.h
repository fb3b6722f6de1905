/*  zfed_models - the model files of a job's work folder (private header).

        models/initial.safetensors       the model round 0 starts from
        models/round-NNNNNN.safetensors  round NNNNNN's aggregate (the
                                         global of round NNNNNN + 1)
        state/round-NNNNNN.m.safetensors the server optimiser's state after
        state/round-NNNNNN.v.safetensors round NNNNNN (fedavgm: m only)
        model.safetensors                the final global model
        best_model.safetensors           the best round's aggregate

    (schemas/WORKDIR.md.)  The current global model and its state always
    stay while a round needs them; the other round files go as the job's
    keep_models policy says, once the record of the round that replaced
    them is durable.  model.safetensors and best_model.safetensors are hard
    links where the file system has them (no copy of a big model), copies
    otherwise; every file is written whole or not at all.

    A model file is named in records by its name relative to the job
    folder, its SHA-256 (of the data, as on the wire), size and tensor
    count; a resumed job checks the file against its record before it
    trusts it.
*/
#ifndef ZFED_MODELS_H_INCLUDED
#define ZFED_MODELS_H_INCLUDED

#include "zfed/zfed_error.h"
#include "zfed/zfed_job.h"
#include "zfed/zfed_model.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_sha256.h"

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#define ZFED_MODELS_NAME_MAX 64

#define ZFED_MODELS_FINAL "model.safetensors"
#define ZFED_MODELS_BEST  "best_model.safetensors"

//  One model file (and, for the server optimisers, its state files).
typedef struct {
    int64_t round; //  whose aggregate it is; -1: the initial model
    char name[ZFED_MODELS_NAME_MAX];
    uint8_t sha256[ZFED_SHA256_SIZE];
    uint64_t size;
    size_t tensors;
    bool has_state;
    char m_name[ZFED_MODELS_NAME_MAX]; //  "" when the optimiser keeps none
    char v_name[ZFED_MODELS_NAME_MAX]; //  "" for fedavgm
    uint8_t m_sha256[ZFED_SHA256_SIZE];
    uint8_t v_sha256[ZFED_SHA256_SIZE];
} zfed_model_file_t;

typedef struct _zfed_models_t zfed_models_t;

//  The model files of the job in folder path (models/ and state/ are
//  created).  NULL with the error.
zfed_models_t *zfed_models_new(const char *path, const zfed_job_t *job,
                               const zfed_service_t *service, zfed_error_t *error);
void zfed_models_destroy(zfed_models_t **self_p);

//  A new job: writes models/initial.safetensors from the job's
//  initial_model (streamed, hashed) or the service's initial_model hook
//  (the first task's params and the job's seed), and makes it current.
//  0, or -1 with the error (ZFED_E_INVALID naming initial_model when the
//  file or the service's model cannot be used).
int zfed_models_start(zfed_models_t *self, zfed_error_t *error);

//  A resumed job: the current model is the one round's record names
//  (zfed_models_json's object; state as zfed_models_state_json's, or
//  NULL; round -1: the initial model), checked against its SHA-256;
//  best_round is the records' best round.  0, or -1 with ZFED_E_CORRUPT.
int zfed_models_resume(zfed_models_t *self, int64_t round, const json_t *model, const json_t *state,
                       int64_t best_round, zfed_error_t *error);

const zfed_model_file_t *zfed_models_current(const zfed_models_t *self);
//  The current model's layout (every result must have it).
const zfed_layout_t *zfed_models_layout(const zfed_models_t *self);
//  Absolute path of a name relative to the job folder (buffer of PATH_MAX).
char *zfed_models_path(const zfed_models_t *self, const char *name, char *path);

//  The names round's pass writes: its model and (for the optimisers)
//  state files, m and v ("" when not kept).
void zfed_models_round_names(const zfed_models_t *self, uint32_t round, zfed_model_file_t *file);

//  Round's record is durable: next (its aggregate) becomes current, the
//  files the keep policy does not keep go, best_model.safetensors follows
//  best_round (-1: none yet).  0, or -1 with the error (the job goes on
//  only after 0: a model it cannot keep is a failure).
int zfed_models_advance(zfed_models_t *self, const zfed_model_file_t *next, int64_t best_round,
                        zfed_error_t *error);

//  A round evaluated after the round that followed it advanced (its
//  evaluation overlapped the next round's training, or a resumed job's
//  pending round): best_model.safetensors follows best_round, which may
//  be that round, and keep_models best drops the best before.  0 or -1.
int zfed_models_set_best(zfed_models_t *self, int64_t best_round, zfed_error_t *error);

//  The job ends: model.safetensors is the current model; when it
//  completed, a round file the policy does not keep goes too.  0 or -1.
int zfed_models_finish(zfed_models_t *self, bool completed, zfed_error_t *error);

//  {"sha256": HEX, "file": NAME, "size": N, "tensors": T} (new reference),
//  and {"m": {"sha256", "file"}, "v": ...} for the state (json null when
//  there is none).
json_t *zfed_models_json(const zfed_model_file_t *file);
json_t *zfed_models_state_json(const zfed_model_file_t *file);

#endif
