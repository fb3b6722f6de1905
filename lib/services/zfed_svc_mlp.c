/*  zfed_svc_mlp - "mlp": a site trains the global multilayer perceptron on
    its own images (issue 11; schemas/MODELS.md 1).

    The model is lib/ml's MLP (784 inputs, ReLU hidden layers, 10 classes,
    softmax cross-entropy, torch-style SGD on OpenBLAS) as the float32
    tensors of PyTorch's nn.Linear state_dict: fc1.weight [h1, 784],
    fc1.bias [h1], ..., fcK.weight [10, hK-1], fcK.bias [10].

    Task params (every key optional; a job gets the defaults written out):
        hidden        array of 1 to 8 sizes, each 1 to 4096 (default [200, 200])
        lr            learning rate, a finite number above 0 (0.05)
        batch_size    1 to 65536 (32)
        local_epochs  1 to 1000 (1)
        momentum      [0, 1) (0)
        weight_decay  a finite number >= 0 (0)
        seed          0 to 2^64-1 (0; a job puts its own seed here)
    Global:         a model of exactly the tensors hidden asks for (else 422,
                    field "global", naming the tensor)
    Result outputs: {"model": DESCRIPTOR, "samples": the shard's size,
                     "data_sha256": the shard's SHA-256 (zfed_dataset.h),
                     "train_loss": NUMBER, "train_accuracy": NUMBER}
                    A job with a split refuses a result whose samples or
                    data_sha256 are not its site's (site_bound).

    A worker holds one site's shard (zfed-worker --data DIR, loaded once by
    open_data); the controller holds the test set (the job's eval_data) and
    scores each round's global model on it (evaluate).

    The work of one task is bounded (docs/SECURITY.md, "bound the work a
    single request may ask for"): the model's weights times the shard's
    samples times local_epochs, the task's weight-sample-epochs (a step
    costs about 3 multiply-adds per weight and sample), may be at most
    MAX_TASK_WORK.  Each field alone has its limit (hidden sizes, epochs,
    batch: 422 naming it); a task within them whose product on this site's
    shard is over the bound is refused before training with 413, naming
    local_epochs (or hidden, when one epoch is already too much).

    Every task is reproducible: its shuffle seed is derived from the
    params' seed, the round and the site (never the attempt, so a task
    sent again trains to the same bytes), and OpenBLAS runs on one thread
    (zfed_mlp.h: the thread count can change a product's rounding).
*/
#include "ml/zfed_dataset.h"
#include "ml/zfed_mlp.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_model.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_sha256.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARAM_HIDDEN       "hidden"
#define PARAM_LR           "lr"
#define PARAM_BATCH_SIZE   "batch_size"
#define PARAM_LOCAL_EPOCHS "local_epochs"
#define PARAM_MOMENTUM     "momentum"
#define PARAM_WEIGHT_DECAY "weight_decay"
#define PARAM_SEED         "seed"
#define OUTPUT_LOSS        "train_loss"
#define OUTPUT_ACCURACY    "train_accuracy"
#define FIELD_GLOBAL       "global"
#define FIELD_DATA         "data"
#define ML_ERROR_MAX       256
//  The most weight-sample-epochs one task may ask for: about 80 local
//  epochs of the 2NN (199,210 weights) on all 60,000 Fashion-MNIST images,
//  minutes of one core.  Past it a task is refused unrun (413).
#define MAX_TASK_WORK 1000000000000ULL
//  "[4096, 4096, ...]" for 8 layers, with room.
#define HIDDEN_TEXT_MAX 96

typedef struct {
    zfed_mlp_arch_t arch;
    zfed_mlp_sgd_t sgd; //  sgd.seed: the params' seed, before a task derives its own
} s_params_t;

//  lib/ml says "FIELD: reason"; a fault keeps the field apart.  A field
//  that is one of the params is the task's fault (422); anything else
//  (memory, the data) is the worker's (500).
static void s_ml_fault(zfed_fault_t *fault, const char *text)
{
    static const char *const params[] = {
        PARAM_HIDDEN,       PARAM_LR, PARAM_BATCH_SIZE, PARAM_MOMENTUM, PARAM_LOCAL_EPOCHS,
        PARAM_WEIGHT_DECAY, NULL};
    const char *colon = strstr(text, ": ");
    char field[ZFED_FIELD_MAX + 1] = "";
    if (colon && (size_t)(colon - text) <= ZFED_FIELD_MAX)
        snprintf(field, sizeof field, "%.*s", (int)(colon - text), text);
    uint32_t code = ZFED_ERR_INTERNAL;
    for (size_t index = 0; params[index]; index++)
        if (strcmp(field, params[index]) == 0)
            code = ZFED_ERR_INVALID_PARAM;
    zfed_fault_set(fault, code, field, "%s", colon ? colon + 2 : text);
}

static char *s_hidden_text(const zfed_mlp_arch_t *arch, char *text, size_t size)
{
    size_t used = (size_t)snprintf(text, size, "[");
    for (uint32_t i = 0; i < arch->hidden_layers && used < size; i++)
        used += (size_t)snprintf(text + used, size - used, "%s%u", i ? ", " : "", arch->hidden[i]);
    if (used < size)
        snprintf(text + used, size - used, "]");
    return text;
}

//  ---------------------------------------------------------------------
//  Params

//  A finite number (an integer is taken as its value) into *out, when
//  the key is there.
static int s_read_number(const msgpack_object *params, const char *key, double *out,
                         zfed_fault_t *fault)
{
    const msgpack_object *value = zfed_map_get(params, key);
    if (!value)
        return 0;
    switch (value->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = (double)value->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (double)value->via.i64;
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (isfinite(value->via.f64)) {
            *out = value->via.f64;
            return 0;
        }
        break;
    default:
        break;
    }
    zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, key, "must be a finite number, got %s",
                   zfed_msgpack_type_name(value->type));
    return -1;
}

//  An unsigned integer from min to max into *out, when the key is there.
static int s_read_uint(const msgpack_object *params, const char *key, uint64_t min, uint64_t max,
                       uint64_t *out, zfed_fault_t *fault)
{
    const msgpack_object *value = zfed_map_get(params, key);
    if (!value)
        return 0;
    if (value->type != MSGPACK_OBJECT_POSITIVE_INTEGER || value->via.u64 < min ||
        value->via.u64 > max) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, key, "must be an integer from %llu to %llu",
                       (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = value->via.u64;
    return 0;
}

static int s_read_hidden(const msgpack_object *params, zfed_mlp_arch_t *arch, zfed_fault_t *fault)
{
    const msgpack_object *value = zfed_map_get(params, PARAM_HIDDEN);
    if (!value)
        return 0;
    if (value->type != MSGPACK_OBJECT_ARRAY) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_HIDDEN,
                       "must be an array of layer sizes, e.g. [200, 200], got %s",
                       zfed_msgpack_type_name(value->type));
        return -1;
    }
    uint32_t sizes[ZFED_MLP_MAX_HIDDEN_LAYERS];
    uint32_t count = value->via.array.size;
    for (uint32_t i = 0; i < count && i < ZFED_MLP_MAX_HIDDEN_LAYERS; i++) {
        const msgpack_object *size = &value->via.array.ptr[i];
        if (size->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_HIDDEN,
                           "layer %u: a size is a positive integer, got %s", i + 1,
                           zfed_msgpack_type_name(size->type));
            return -1;
        }
        sizes[i] = size->via.u64 > UINT32_MAX ? UINT32_MAX : (uint32_t)size->via.u64;
    }
    char error[ML_ERROR_MAX];
    if (zfed_mlp_arch_set(arch, sizes, count, error, sizeof error) != 0) {
        s_ml_fault(fault, error);
        return -1;
    }
    return 0;
}

static int s_read_params(const msgpack_object *params, s_params_t *out, zfed_fault_t *fault)
{
    static const char *const allowed[] = {
        PARAM_HIDDEN,   PARAM_LR,           PARAM_BATCH_SIZE, PARAM_LOCAL_EPOCHS,
        PARAM_MOMENTUM, PARAM_WEIGHT_DECAY, PARAM_SEED,       NULL};
    zfed_mlp_arch_default(&out->arch);
    zfed_mlp_sgd_default(&out->sgd);
    uint64_t batch = out->sgd.batch_size, epochs = out->sgd.local_epochs;
    if (zfed_map_check_keys(params, allowed, "parameter", fault) != 0 ||
        s_read_hidden(params, &out->arch, fault) != 0 ||
        s_read_number(params, PARAM_LR, &out->sgd.lr, fault) != 0 ||
        s_read_uint(params, PARAM_BATCH_SIZE, 1, ZFED_MLP_MAX_BATCH, &batch, fault) != 0 ||
        s_read_uint(params, PARAM_LOCAL_EPOCHS, 1, ZFED_MLP_MAX_EPOCHS, &epochs, fault) != 0 ||
        s_read_number(params, PARAM_MOMENTUM, &out->sgd.momentum, fault) != 0 ||
        s_read_number(params, PARAM_WEIGHT_DECAY, &out->sgd.weight_decay, fault) != 0 ||
        s_read_uint(params, PARAM_SEED, 0, UINT64_MAX, &out->sgd.seed, fault) != 0)
        return -1;
    out->sgd.batch_size = (uint32_t)batch;
    out->sgd.local_epochs = (uint32_t)epochs;
    char error[ML_ERROR_MAX];
    if (zfed_mlp_sgd_check(&out->sgd, error, sizeof error) != 0) {
        s_ml_fault(fault, error);
        return -1;
    }
    return 0;
}

static int s_check_params(const msgpack_object *params, zfed_fault_t *fault)
{
    s_params_t parsed;
    return s_read_params(params, &parsed, fault);
}

//  ---------------------------------------------------------------------
//  The model's tensors

//  The layout hidden asks for, or NULL when memory runs out.
static zfed_layout_t *s_layout(const zfed_mlp_arch_t *arch)
{
    zfed_mlp_tensor_t tensors[ZFED_MLP_MAX_TENSORS];
    size_t count = zfed_mlp_tensors(arch, tensors);
    zfed_layout_t *layout = zfed_layout_new();
    for (size_t t = 0; layout && t < count; t++) {
        uint64_t shape[2] = {tensors[t].shape[0], tensors[t].shape[1]};
        char error[ML_ERROR_MAX];
        if (zfed_layout_add(layout, tensors[t].name, ZFED_DTYPE_F32, shape, tensors[t].ndims, error,
                            sizeof error) != 0)
            zfed_layout_destroy(&layout);
    }
    return layout;
}

//  A layout is the architecture's when it has its tensors, in its order,
//  float32, of its shapes.  0, or -1 + fault naming the first tensor that
//  is not (field: what the layout belongs to).
static int s_check_layout(const zfed_mlp_arch_t *arch, const zfed_layout_t *layout,
                          const char *field, zfed_fault_t *fault)
{
    zfed_mlp_tensor_t tensors[ZFED_MLP_MAX_TENSORS];
    size_t count = zfed_mlp_tensors(arch, tensors);
    char hidden[HIDDEN_TEXT_MAX], got[64], want[64];
    s_hidden_text(arch, hidden, sizeof hidden);
    size_t have = zfed_layout_size(layout);
    for (size_t t = 0; t < count && t < have; t++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(layout, t);
        uint64_t shape[2] = {tensors[t].shape[0], tensors[t].shape[1]};
        bool same_shape = tensor->ndim == tensors[t].ndims && tensor->shape[0] == shape[0] &&
                          (tensor->ndim < 2 || tensor->shape[1] == shape[1]);
        if (strcmp(tensor->name, tensors[t].name) != 0) {
            zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, field,
                           "tensor %zu is %s; hidden %s needs %s there", t, tensor->name, hidden,
                           tensors[t].name);
            return -1;
        }
        if (tensor->dtype != ZFED_DTYPE_F32) {
            zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, field,
                           "tensor %s is %s; mlp trains F32 tensors", tensor->name,
                           zfed_dtype_name(tensor->dtype));
            return -1;
        }
        if (!same_shape) {
            zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, field,
                           "tensor %s has shape %s; hidden %s needs %s", tensor->name,
                           zfed_shape_format(tensor->shape, tensor->ndim, got, sizeof got), hidden,
                           zfed_shape_format(shape, tensors[t].ndims, want, sizeof want));
            return -1;
        }
    }
    if (have != count) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, field,
                       "the model has %zu tensors; hidden %s needs %zu (fc1.weight to fc%zu.bias)",
                       have, hidden, count, count / 2);
        return -1;
    }
    return 0;
}

static int s_check_global(const msgpack_object *params, const zfed_layout_t *layout,
                          zfed_fault_t *fault)
{
    s_params_t parsed;
    if (s_read_params(params, &parsed, fault) != 0)
        return -1;
    return s_check_layout(&parsed.arch, layout, FIELD_GLOBAL, fault);
}

//  Round 0's model: torch's nn.Linear initialisation from the job's seed.
static int s_initial_model(const msgpack_object *params, uint64_t seed, zfed_model_t **model,
                           zfed_fault_t *fault)
{
    s_params_t parsed;
    if (s_read_params(params, &parsed, fault) != 0)
        return -1;
    zfed_layout_t *layout = s_layout(&parsed.arch);
    *model = layout ? zfed_model_new(&layout) : NULL;
    if (!*model) {
        zfed_layout_destroy(&layout);
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory for the initial model");
        return -1;
    }
    zfed_mlp_init(&parsed.arch, seed, zfed_model_data(*model));
    return 0;
}

//  ---------------------------------------------------------------------
//  Training (worker)

//  splitmix64's finaliser: a bijection that scatters every input bit.
static uint64_t s_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

//  FNV-1a, 64 bits: a site's name as a number.
static uint64_t s_name_hash(const char *name)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (const unsigned char *at = (const unsigned char *)name; *at; at++)
        hash = (hash ^ *at) * 0x100000001b3ULL;
    return hash;
}

//  The task's shuffle seed: mix(mix(mix(seed) ^ round) ^ where), where
//  the site's name hashed (or the task number, for a worker without a
//  site).  Not the attempt: a task sent again trains the same.
static uint64_t s_task_seed(uint64_t seed, const zfed_task_ctx_t *ctx)
{
    uint64_t where = ctx->site ? s_name_hash(ctx->site) : s_mix(ctx->task);
    return s_mix(s_mix(s_mix(seed) ^ ctx->round) ^ where);
}

//  The work bound (above) for params on a shard of samples.  0, or -1 +
//  fault (413) naming local_epochs, or hidden when one epoch is too much.
static int s_check_work(const s_params_t *parsed, uint64_t samples, zfed_fault_t *fault)
{
    uint64_t weights = zfed_mlp_param_count(&parsed->arch);
    //  At most 121 M weights x 2^32 samples: a product of two may overflow
    //  64 bits, so it is compared by division.
    uint64_t per_epoch = samples && weights > UINT64_MAX / samples ? UINT64_MAX : weights * samples;
    uint64_t epochs = parsed->sgd.local_epochs;
    if (per_epoch <= MAX_TASK_WORK / epochs)
        return 0;
    char hidden[HIDDEN_TEXT_MAX];
    s_hidden_text(&parsed->arch, hidden, sizeof hidden);
    if (per_epoch <= MAX_TASK_WORK)
        zfed_fault_set(fault, ZFED_ERR_TOO_LARGE, PARAM_LOCAL_EPOCHS,
                       "%llu epochs of hidden %s (%llu weights) on this site's %llu samples is "
                       "%.3g weight-sample-epochs; one task may ask for at most %.3g: at most "
                       "%llu epochs here",
                       (unsigned long long)epochs, hidden, (unsigned long long)weights,
                       (unsigned long long)samples, (double)per_epoch * (double)epochs,
                       (double)MAX_TASK_WORK, (unsigned long long)(MAX_TASK_WORK / per_epoch));
    else
        zfed_fault_set(fault, ZFED_ERR_TOO_LARGE, PARAM_HIDDEN,
                       "one epoch of hidden %s (%llu weights) on this site's %llu samples is "
                       "%.3g weight-sample-epochs; one task may ask for at most %.3g: smaller "
                       "hidden layers",
                       hidden, (unsigned long long)weights, (unsigned long long)samples,
                       (double)per_epoch, (double)MAX_TASK_WORK);
    return -1;
}

static int s_train(const msgpack_object *params, const zfed_task_ctx_t *ctx,
                   const zfed_model_t *global, zfed_model_t **result, uint64_t *weight,
                   msgpack_packer *metrics, zfed_fault_t *fault)
{
    const zfed_dataset_t *shard = ctx->data;
    s_params_t parsed;
    if (s_read_params(params, &parsed, fault) != 0 ||
        s_check_layout(&parsed.arch, zfed_model_layout(global), FIELD_GLOBAL, fault) != 0)
        return -1;
    if (!shard) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, FIELD_DATA,
                       "this worker holds no training data (zfed-worker --data DIR)");
        return -1;
    }
    if (s_check_work(&parsed, zfed_dataset_count(shard), fault) != 0)
        return -1;
    zfed_layout_t *layout = zfed_layout_dup(zfed_model_layout(global));
    zfed_model_t *model = layout ? zfed_model_new(&layout) : NULL;
    if (!model) {
        zfed_layout_destroy(&layout);
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory for a model");
        return -1;
    }
    memcpy(zfed_model_data(model), zfed_model_data(global), zfed_model_nbytes(global));
    parsed.sgd.seed = s_task_seed(parsed.sgd.seed, ctx);
    zfed_mlp_result_t trained;
    char error[ML_ERROR_MAX];
    if (zfed_mlp_train(&parsed.arch, zfed_model_data(model), zfed_dataset_images(shard),
                       zfed_dataset_labels(shard), zfed_dataset_count(shard), &parsed.sgd, &trained,
                       error, sizeof error) != 0) {
        s_ml_fault(fault, error);
        zfed_model_destroy(&model);
        return -1;
    }
    //  A step too large sends the weights to infinity: that is the task's
    //  learning rate, not a fault of the worker, and no resend mends it.
    char where[ML_ERROR_MAX];
    if (!isfinite(trained.loss) || zfed_model_check_finite(model, where, sizeof where) != 0) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, PARAM_LR,
                       "training diverged at lr %g (train loss %g): try a smaller lr",
                       parsed.sgd.lr, trained.loss);
        zfed_model_destroy(&model);
        return -1;
    }
    char digest[ZFED_SHA256_HEX_SIZE];
    zfed_sha256_hex(zfed_dataset_sha256(shard), digest);
    int rc = msgpack_pack_map(metrics, 3);
    rc |= msgpack_pack_str_with_body(metrics, ZFED_OUTPUT_DATA_SHA256,
                                     strlen(ZFED_OUTPUT_DATA_SHA256));
    rc |= msgpack_pack_str_with_body(metrics, digest, strlen(digest));
    rc |= msgpack_pack_str_with_body(metrics, OUTPUT_LOSS, strlen(OUTPUT_LOSS));
    rc |= msgpack_pack_double(metrics, trained.loss);
    rc |= msgpack_pack_str_with_body(metrics, OUTPUT_ACCURACY, strlen(OUTPUT_ACCURACY));
    rc |= msgpack_pack_double(metrics, trained.accuracy);
    if (rc != 0) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory packing the outputs");
        zfed_model_destroy(&model);
        return -1;
    }
    *result = model;
    *weight = trained.samples;
    return 0;
}

//  ---------------------------------------------------------------------
//  Results (controller)

//  A number output from low to high, as the worker sends it (float64).
static int s_check_output(const msgpack_object *outputs, const char *key, double low, double high,
                          zfed_fault_t *fault)
{
    const msgpack_object *value = zfed_map_get(outputs, key);
    bool number =
        value && (value->type == MSGPACK_OBJECT_FLOAT64 || value->type == MSGPACK_OBJECT_FLOAT32);
    if (!number || !isfinite(value->via.f64) || value->via.f64 < low || value->via.f64 > high) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, key, "%s: a number from %g to %g",
                       value ? "must be" : "missing", low, high);
        return -1;
    }
    return 0;
}

static int s_check_metrics(const msgpack_object *params, const msgpack_object *outputs,
                           zfed_fault_t *fault)
{
    static const char *const allowed[] = {ZFED_OUTPUT_MODEL,       ZFED_OUTPUT_SAMPLES,
                                          ZFED_OUTPUT_DATA_SHA256, OUTPUT_LOSS,
                                          OUTPUT_ACCURACY,         NULL};
    s_params_t parsed;
    if (s_read_params(params, &parsed, fault) != 0 ||
        zfed_map_check_keys(outputs, allowed, "output", fault) != 0 ||
        s_check_output(outputs, OUTPUT_LOSS, 0, HUGE_VAL, fault) != 0 ||
        s_check_output(outputs, OUTPUT_ACCURACY, 0, 1, fault) != 0)
        return -1;
    //  Training on nothing says nothing: a site's weight is its samples.
    const msgpack_object *samples = zfed_map_get(outputs, ZFED_OUTPUT_SAMPLES);
    if (!samples || samples->type != MSGPACK_OBJECT_POSITIVE_INTEGER || samples->via.u64 == 0) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, ZFED_OUTPUT_SAMPLES,
                       "%s: the site's sample count, at least 1", samples ? "must be" : "missing");
        return -1;
    }
    //  Which data it was: the controller holds it against the split.
    const msgpack_object *digest = zfed_map_get(outputs, ZFED_OUTPUT_DATA_SHA256);
    uint8_t bytes[ZFED_SHA256_SIZE];
    if (!digest || digest->type != MSGPACK_OBJECT_STR ||
        zfed_sha256_from_hex(digest->via.str.ptr, digest->via.str.size, bytes) != 0) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, ZFED_OUTPUT_DATA_SHA256,
                       "%s: the SHA-256 of the site's shard, %d lower-case hex digits",
                       digest ? "must be" : "missing", 2 * ZFED_SHA256_SIZE);
        return -1;
    }
    return 0;
}

static int s_describe(const msgpack_object *params, const msgpack_object *outputs, json_t *object)
{
    const msgpack_object *loss = zfed_map_get(outputs, OUTPUT_LOSS);
    const msgpack_object *accuracy = zfed_map_get(outputs, OUTPUT_ACCURACY);
    int rc = 0;
    if (loss && loss->type == MSGPACK_OBJECT_FLOAT64)
        rc |= json_object_set_new(object, OUTPUT_LOSS, json_real(loss->via.f64));
    if (accuracy && accuracy->type == MSGPACK_OBJECT_FLOAT64)
        rc |= json_object_set_new(object, OUTPUT_ACCURACY, json_real(accuracy->via.f64));
    return rc == 0 ? 0 : -1;
}

//  ---------------------------------------------------------------------
//  Data: a site's shard, the test set

static int s_open_data(const char *dir, zfed_data_role_t role, void **data, zfed_fault_t *fault)
{
    const char *prefix = role == ZFED_DATA_TRAIN ? ZFED_DATASET_TRAIN : ZFED_DATASET_TEST;
    char error[ML_ERROR_MAX + 64];
    zfed_dataset_t *set = zfed_dataset_load(dir, prefix, error, sizeof error);
    if (!set) {
        zfed_fault_set(fault, ZFED_ERR_INVALID_PARAM, FIELD_DATA, "%s", error);
        return -1;
    }
    uint32_t counts[ZFED_DATASET_CLASSES];
    zfed_dataset_histogram(set, counts);
    char classes[ZFED_DATASET_CLASSES * 12] = "";
    size_t used = 0;
    for (int c = 0; c < ZFED_DATASET_CLASSES && used < sizeof classes; c++)
        used += (size_t)snprintf(classes + used, sizeof classes - used, "%s%u", c ? "," : "",
                                 counts[c]);
    //  A worker says what its site holds; the controller (its test set) is quieter.
    char digest[ZFED_SHA256_HEX_SIZE];
    zfed_log_at(role == ZFED_DATA_TRAIN ? ZFED_LOG_INFO : ZFED_LOG_DEBUG,
                "mlp: %u %s images from %s (per class %s; sha256 %s)", zfed_dataset_count(set),
                role == ZFED_DATA_TRAIN ? "training" : "evaluation", dir, classes,
                zfed_sha256_hex(zfed_dataset_sha256(set), digest));
    *data = set;
    return 0;
}

static void s_close_data(void **data)
{
    zfed_dataset_t *set = *data;
    zfed_dataset_destroy(&set);
    *data = NULL;
}

static void s_data_digest(const void *data, uint8_t digest[ZFED_SHA256_SIZE], uint64_t *count)
{
    memcpy(digest, zfed_dataset_sha256(data), ZFED_SHA256_SIZE);
    *count = zfed_dataset_count(data);
}

static int s_evaluate(const msgpack_object *params, const zfed_model_t *model, const void *data,
                      json_t *metrics, zfed_fault_t *fault)
{
    const zfed_dataset_t *set = data;
    s_params_t parsed;
    if (s_read_params(params, &parsed, fault) != 0 ||
        s_check_layout(&parsed.arch, zfed_model_layout(model), FIELD_GLOBAL, fault) != 0)
        return -1;
    zfed_mlp_result_t scored;
    char error[ML_ERROR_MAX];
    if (zfed_mlp_evaluate(&parsed.arch, zfed_model_data(model), zfed_dataset_images(set),
                          zfed_dataset_labels(set), zfed_dataset_count(set), NULL, &scored, error,
                          sizeof error) != 0) {
        s_ml_fault(fault, error);
        return -1;
    }
    int rc = json_object_set_new(metrics, "test_accuracy", json_real(scored.accuracy));
    rc |= json_object_set_new(metrics, "test_loss", json_real(scored.loss));
    rc |= json_object_set_new(metrics, "test_samples", json_integer((json_int_t)scored.samples));
    if (rc != 0) {
        zfed_fault_set(fault, ZFED_ERR_INTERNAL, "", "out of memory");
        return -1;
    }
    return 0;
}

const zfed_service_t zfed_service_mlp = {
    .name = "mlp",
    .description = "trains a multilayer perceptron (default the 2NN 784-200-200-10) on the "
                   "site's images (--data DIR); weight: the site's samples",
    .default_params = "{\"hidden\": [200, 200], \"lr\": 0.05, \"batch_size\": 32, "
                      "\"local_epochs\": 1, \"momentum\": 0.0, \"weight_decay\": 0.0}",
    .kind = ZFED_SERVICE_MODEL,
    .check_params = s_check_params,
    .describe = s_describe,
    .check_global = s_check_global,
    .train = s_train,
    .initial_model = s_initial_model,
    .check_metrics = s_check_metrics,
    .open_data = s_open_data,
    .close_data = s_close_data,
    .evaluate = s_evaluate,
    .seed_param = true,
    .site_bound = true,
    .data_digest = s_data_digest,
};
