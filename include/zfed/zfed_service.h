/*  zfed_service - what a kind of task is, seen from both ends.

    A service is one table of functions in one file (lib/zfed_svc_*.c) plus
    one line in lib/zfed_services.c.  The worker side runs a task; the
    controller side checks parameters before sending them and reads results
    into numbers it can aggregate.  Neither side sees ZeroMQ: they get
    msgpack objects that zfed_msg already checked for structure (params and
    outputs are string-keyed maps), and they check the meaning.

    A service is one of two kinds (schemas/MODELS.md 1).  A *value*
    service (fib, vecavg) carries its global value and outputs as msgpack
    values, and its values aggregate as vectors of exact rationals (one
    element for a scalar service such as fib), weighted by the result's
    sample count.  A *model* service (tensoravg, mlp) carries models: the
    worker hands its train hook the whole global model and sends the model
    it returns (inline or held by reference, with its weight as the output
    "samples" and any metrics beside); the controller aggregates tensors.
    The value hooks (run, read_outputs, pack_*, aggregate_*) are NULL in a
    model service, the model hooks NULL in a value service.

    A service that learns from data (mlp) also opens a folder of it once
    per process (open_data): a worker its site's shard (zfed-worker --data
    DIR), the controller the evaluation set (the job's eval_data), which
    its evaluate hook scores every round's global model on.
*/
#ifndef ZFED_SERVICE_H_INCLUDED
#define ZFED_SERVICE_H_INCLUDED

#include "zfed/zfed_model.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_sha256.h"

#include <stdio.h> //  before gmp.h, which then declares gmp_printf and friends
#include <gmp.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Why a task or result was refused: becomes a zfed.error body or a log
//  line.  field names the parameter or output at fault ("" if none).
typedef struct {
    uint32_t code;
    char field[ZFED_FIELD_MAX + 1];
    char text[ZFED_ERROR_TEXT_MAX + 1];
} zfed_fault_t;

void zfed_fault_set(zfed_fault_t *fault, uint32_t code, const char *field, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

//  One result reduced to what aggregation needs.  A small sample (small
//  set, values NULL, dims 1) is one integer from 0 to UINT64_MAX held
//  without GMP: fib's sums of levels up to 92, where an mpq_t's
//  allocations and freeing were a tenth of a result's cost.
typedef struct {
    size_t dims;
    mpq_t *values; //  dims entries, owned (NULL for a small sample)
    uint64_t weight;
    bool small;
    uint64_t small_value;
} zfed_sample_t;

//  Allocates and initialises dims values.  Returns 0 or -1.
int zfed_sample_init(zfed_sample_t *sample, size_t dims);
//  A small sample of one value, value/1: never fails.
void zfed_sample_set_u64(zfed_sample_t *sample, uint64_t value, uint64_t weight);
//  A small sample turned into the general form (values[0] = its value); a
//  general one is left as it is.  0, or -1 when memory runs out (the
//  sample is then unchanged).
int zfed_sample_expand(zfed_sample_t *sample);
void zfed_sample_clear(zfed_sample_t *sample);

typedef enum { ZFED_SERVICE_VALUE = 0, ZFED_SERVICE_MODEL } zfed_service_kind_t;

//  Which data open_data loads: a site's training shard (on a worker) or
//  the set the controller evaluates global models on.
typedef enum { ZFED_DATA_TRAIN = 0, ZFED_DATA_EVAL } zfed_data_role_t;

//  What a model service's train hook knows of its task besides its inputs.
typedef struct {
    const void *data;   //  what open_data loaded (the site's shard), or NULL
    const char *site;   //  the worker's --site, or NULL
    const char *job_id; //  the task's ids
    uint32_t round;
    uint32_t task;
    uint32_t attempt;
    const char *worker; //  the MDP worker's name
} zfed_task_ctx_t;

typedef struct {
    const char *name;        //  MDP service name
    const char *description; //  one line, for --help
    //  Parameters a job gets unless it sets them (a JSON object), or NULL.
    //  Documented in --help and recorded in job.json: never a surprise.
    const char *default_params;

    //  Worker: runs one task and packs its outputs map.  global_value is
    //  the previous round's aggregate (or the initial value when
    //  global_round is -1).  display, when not NULL, may receive a text for
    //  people (fib: the pyramid), freed by the caller.  0, or -1 + fault.
    int (*run)(const msgpack_object *params, int64_t global_round,
               const msgpack_object *global_value, msgpack_packer *outputs, char **display,
               zfed_fault_t *fault);

    //  Controller: checks params before any task is sent.  0 or -1 + fault.
    int (*check_params)(const msgpack_object *params, zfed_fault_t *fault);

    //  Controller: checks a result's outputs against the params it was
    //  asked with and reduces it to a sample (sample is initialised by this
    //  call; the caller clears it on success).  0 or -1 + fault.
    int (*read_outputs)(const msgpack_object *params, const msgpack_object *outputs,
                        zfed_sample_t *sample, zfed_fault_t *fault);

    //  Controller: record fields for one accepted result (fib: level, sum,
    //  terms, last), added to object.  0 or -1.
    int (*describe)(const msgpack_object *params, const msgpack_object *outputs, json_t *object);

    //  Controller, optional: the same fields as describe, as JSON text
    //  members appended to out, each with its leading comma
    //  (",\"level\":10,..."), with zfed_json_text_*: the records of big
    //  rounds are written a line per result without a JSON tree per result
    //  (WORKDIR.md 3.1).  Without it, describe's object is dumped.  0 or -1.
    int (*describe_text)(const msgpack_object *params, const msgpack_object *outputs,
                         msgpack_sbuffer *out);

    //  The global value sent before any round has closed, given the params
    //  of the job's first task so it can have the right shape (fib: "0";
    //  vecavg: zeros as long as the vector), and the aggregate packed as the
    //  next round's global value.  0 or -1.
    int (*pack_initial)(const msgpack_object *params, msgpack_packer *packer);
    int (*pack_aggregate)(const mpq_t *values, size_t dims, msgpack_packer *packer);

    //  The aggregate as JSON for records and selection (fib: a decimal
    //  string), and as one short line for people.  NULL on failure.
    json_t *(*aggregate_json)(const mpq_t *values, size_t dims);
    char *(*aggregate_text)(const mpq_t *values, size_t dims);

    //  True when the aggregate is one number, usable as a selection metric.
    int scalar;

    //  ZFED_SERVICE_VALUE (0, the default) or ZFED_SERVICE_MODEL.
    zfed_service_kind_t kind;

    //  Model services, worker side.  check_global (may be NULL: any
    //  layout) looks at the global model's layout before its data is
    //  fetched: 0, or -1 + fault (422, field "global", naming the tensor).
    int (*check_global)(const msgpack_object *params, const zfed_layout_t *layout,
                        zfed_fault_t *fault);
    //  Runs one task on the whole global model (read-only, shared with
    //  other tasks) and returns a new model of the global's layout in
    //  *result (the caller's), its weight (the output "samples"), and, if
    //  it packs anything into metrics, one map of further outputs (keys
    //  other than "model" and "samples").  Called on a compute thread.
    //  0, or -1 + fault (and no result).
    int (*train)(const msgpack_object *params, const zfed_task_ctx_t *ctx,
                 const zfed_model_t *global, zfed_model_t **result, uint64_t *weight,
                 msgpack_packer *metrics, zfed_fault_t *fault);

    //  Model services, controller side.  check_params (above) checks
    //  params as for a value service.  initial_model builds round 0's model
    //  from the first task's params and a seed (NULL: the job must name an
    //  initial_model file).  check_metrics checks a result's outputs other
    //  than "model" (its "samples" included) against the task's params.
    //  describe (above) adds their record fields.  0, or -1 + fault.
    int (*initial_model)(const msgpack_object *params, uint64_t seed, zfed_model_t **model,
                         zfed_fault_t *fault);
    int (*check_metrics)(const msgpack_object *params, const msgpack_object *outputs,
                         zfed_fault_t *fault);

    //  The work one task asks for, in the service's own unit (fib: the
    //  square of the level, which its kernel's time follows), for params
    //  that check_params accepted; NULL when no task can cost much.  One
    //  request (a batch: its tasks' sum) may ask for at most
    //  max_request_cost: the worker refuses more before computing anything
    //  (413), and the controller refuses a job whose --batch would ask for
    //  more before sending anything.  cost_unit names the unit for people.
    uint64_t (*cost)(const msgpack_object *params);
    uint64_t max_request_cost;
    const char *cost_unit;

    //  Services that learn from data (NULL hooks: the service reads none).
    //  open_data loads the folder dir once, for role, into *data: the
    //  caller's until close_data, read-only meanwhile (compute threads
    //  share it).  0, or -1 + fault (field "data", the reason naming the
    //  file).  evaluate scores a model (of a layout check_global accepts
    //  for params) on EVAL data: adds its figures to metrics (mlp:
    //  "test_accuracy", "test_loss", "test_samples").  0, or -1 + fault.
    //  The controller calls it on a thread of its own (one evaluation at
    //  a time), so it must not depend on the calling thread: a thread
    //  count it needs (OpenBLAS's) it sets on every call.
    int (*open_data)(const char *dir, zfed_data_role_t role, void **data, zfed_fault_t *fault);
    void (*close_data)(void **data);
    int (*evaluate)(const msgpack_object *params, const zfed_model_t *model, const void *data,
                    json_t *metrics, zfed_fault_t *fault);

    //  Set when the service's params take a "seed" its tasks derive their
    //  randomness from: a job puts its own seed there unless the params
    //  set one (schemas/JOB.md), so one seed makes the whole job repeatable.
    bool seed_param;

    //  Set when a result's weight ("samples") is the number of samples of
    //  the data its worker holds (whatever local_epochs: one site, one
    //  count), and its outputs name that data by its SHA-256
    //  (ZFED_OUTPUT_DATA_SHA256).  A job whose sites come from a split
    //  refuses a result whose digest or count is not its site's
    //  (schemas/SERVICES.md, "Sites bound to their data").
    bool site_bound;
    //  A site-bound service's view of what open_data loaded: its SHA-256
    //  (SERVICES.md 1.1) and its sample count, for zfed-worker --split.
    void (*data_digest)(const void *data, uint8_t digest[ZFED_SHA256_SIZE], uint64_t *count);
} zfed_service_t;

//  The output key of a model result's descriptor and of its weight, and
//  the digest of the data it was trained on (64 lower-case hex digits).
#define ZFED_OUTPUT_MODEL       "model"
#define ZFED_OUTPUT_SAMPLES     "samples"
#define ZFED_OUTPUT_DATA_SHA256 "data_sha256"

//  The cost of one task's params (0 for a service with no cost model);
//  sums saturate instead of wrapping.
uint64_t zfed_service_cost(const zfed_service_t *service, const msgpack_object *params);
uint64_t zfed_service_cost_add(uint64_t total, uint64_t cost);
//  True when a request of that total cost may be computed.
bool zfed_service_cost_allowed(const zfed_service_t *service, uint64_t total);
//  The refusal of a request over max_request_cost (413), naming its cost,
//  the limit and the unit.
void zfed_service_cost_fault(const zfed_service_t *service, uint64_t total, size_t tasks,
                             zfed_fault_t *fault);

//  The registered services, NULL-terminated, and lookup by name.
const zfed_service_t *const *zfed_services(void);
const zfed_service_t *zfed_service_find(const char *name);

//  Helpers for service files: find a key in a string-keyed map (NULL if
//  absent), and report the first key not in allowed (NULL-terminated).
const msgpack_object *zfed_map_get(const msgpack_object *map, const char *key);
int zfed_map_check_keys(const msgpack_object *map, const char *const *allowed, const char *what,
                        zfed_fault_t *fault);

//  Decodes bytes known to hold one msgpack value (zfed_msg output) into
//  unpacked, which the caller destroys.  0 or -1.
int zfed_unpack(msgpack_unpacked *unpacked, const uint8_t *data, size_t size);

#ifdef __cplusplus
}
#endif

#endif
