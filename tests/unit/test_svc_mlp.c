/*  test_svc_mlp - the mlp service (SERVICES.md) on its own: its params
    and their refusals (each naming its field), the global's layout checked
    tensor by tensor, round 0's model, a task trained on a small shard of
    Fashion-MNIST (deterministic, its weight the shard's size, the shard
    told apart per site), the controller's check of a result's outputs,
    and the evaluation hook against lib/ml's own evaluation.
*/
#include "ml/zfed_mlp.h"
#include "zfed/zfed_json.h"
#include "zfed/zfed_model.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_sha256.h"
#include "zfed_test.h"
#include "zfed_test_fashion.h"

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define SHARD 600

static const zfed_service_t *s_service(void)
{
    return zfed_service_find("mlp");
}

//  A JSON text as msgpack, decoded into unpacked (NULL on a bad text).
typedef struct {
    msgpack_sbuffer buffer;
    msgpack_unpacked unpacked;
} s_packed_t;

static const msgpack_object *s_pack(s_packed_t *packed, const char *text)
{
    msgpack_sbuffer_init(&packed->buffer);
    msgpack_unpacked_init(&packed->unpacked);
    json_t *json = json_loads(text, 0, NULL);
    if (!json)
        return NULL;
    msgpack_packer packer;
    msgpack_packer_init(&packer, &packed->buffer, msgpack_sbuffer_write);
    char reason[128];
    int rc = zfed_json_pack(json, &packer, reason, sizeof reason);
    json_decref(json);
    size_t offset = 0;
    if (rc != 0 || msgpack_unpack_next(&packed->unpacked, packed->buffer.data, packed->buffer.size,
                                       &offset) != MSGPACK_UNPACK_SUCCESS)
        return NULL;
    return &packed->unpacked.data;
}

static void s_unpack(s_packed_t *packed)
{
    msgpack_unpacked_destroy(&packed->unpacked);
    msgpack_sbuffer_destroy(&packed->buffer);
}

static void test_params_refused_by_field(void)
{
    const zfed_service_t *service = s_service();
    REQUIRE(service && service->kind == ZFED_SERVICE_MODEL && service->train &&
            service->open_data && service->evaluate && service->seed_param);
    struct {
        const char *params, *field, *text;
    } cases[] = {
        {"{\"lr\": 0}", "lr", "0, expected a finite number above 0"},
        {"{\"lr\": \"big\"}", "lr", "must be a finite number, got str"},
        {"{\"batch_size\": 0}", "batch_size", "must be an integer from 1 to 65536"},
        {"{\"local_epochs\": 1001}", "local_epochs", "must be an integer from 1 to 1000"},
        {"{\"momentum\": 1}", "momentum", "1, expected at least 0 and below 1"},
        {"{\"weight_decay\": -1}", "weight_decay", "-1, expected a finite number >= 0"},
        {"{\"hidden\": 200}", "hidden",
         "must be an array of layer sizes, e.g. [200, 200], got positive int"},
        {"{\"hidden\": [200, 0]}", "hidden", "layer 2 has 0 units, expected 1 to 4096"},
        {"{\"hidden\": [200, \"a\"]}", "hidden", "layer 2: a size is a positive integer, got str"},
        {"{\"hidden\": []}", "hidden", "0 hidden layers, expected 1 to 8"},
        {"{\"seed\": -1}", "seed", "must be an integer from 0 to 18446744073709551615"},
        {"{\"learning_rate\": 0.1}", "learning_rate", "unknown parameter 'learning_rate'"},
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        s_packed_t packed;
        const msgpack_object *params = s_pack(&packed, cases[index].params);
        REQUIRE(params);
        zfed_fault_t fault = {0};
        CHECK(service->check_params(params, &fault) != 0);
        CHECK_INT(fault.code, ZFED_ERR_INVALID_PARAM);
        CHECK_STR(fault.field, cases[index].field);
        CHECK_STR(fault.text, cases[index].text);
        s_unpack(&packed);
    }
    s_packed_t packed;
    zfed_fault_t fault = {0};
    CHECK(service->check_params(s_pack(&packed, service->default_params), &fault) == 0);
    s_unpack(&packed);
}

//  Round 0's model has the layout hidden asks for, is the job seed's and
//  is refused (naming the tensor) by params that ask for another.
static void test_initial_model_and_layout_checks(void)
{
    const zfed_service_t *service = s_service();
    s_packed_t packed;
    const msgpack_object *params = s_pack(&packed, "{\"hidden\": [20, 10]}");
    zfed_fault_t fault = {0};
    zfed_model_t *model = NULL, *again = NULL, *other = NULL;
    REQUIRE(service->initial_model(params, 7, &model, &fault) == 0);
    REQUIRE(service->initial_model(params, 7, &again, &fault) == 0);
    REQUIRE(service->initial_model(params, 8, &other, &fault) == 0);
    const zfed_layout_t *layout = zfed_model_layout(model);
    const char *names[] = {"fc1.weight", "fc1.bias",   "fc2.weight",
                           "fc2.bias",   "fc3.weight", "fc3.bias"};
    uint64_t rows[] = {20, 20, 10, 10, 10, 10};
    REQUIRE(zfed_layout_size(layout) == 6);
    for (size_t t = 0; t < 6; t++) {
        const zfed_tensor_t *tensor = zfed_layout_tensor(layout, t);
        CHECK_STR(tensor->name, names[t]);
        CHECK(tensor->dtype == ZFED_DTYPE_F32);
        CHECK_INT(tensor->shape[0], rows[t]);
        CHECK_INT(tensor->ndim, t % 2 ? 1 : 2);
    }
    CHECK_INT(zfed_layout_tensor(layout, 0)->shape[1], 784);
    CHECK(memcmp(zfed_model_data(model), zfed_model_data(again), zfed_model_nbytes(model)) == 0);
    CHECK(memcmp(zfed_model_data(model), zfed_model_data(other), zfed_model_nbytes(model)) != 0);
    CHECK(service->check_global(params, layout, &fault) == 0);
    s_unpack(&packed);

    struct {
        const char *params, *text;
    } cases[] = {
        {"{\"hidden\": [21, 10]}", "tensor fc1.weight has shape [20, 784]; hidden [21, 10] needs "
                                   "[21, 784]"},
        {"{\"hidden\": [20]}",
         "the model has 6 tensors; hidden [20] needs 4 (fc1.weight to fc2.bias)"},
        {"{\"hidden\": [20, 10, 5]}", "tensor fc3.weight has shape [10, 10]; hidden [20, 10, 5] "
                                      "needs [5, 10]"},
        {"{}", "tensor fc1.weight has shape [20, 784]; hidden [200, 200] needs [200, 784]"},
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        params = s_pack(&packed, cases[index].params);
        fault = (zfed_fault_t){0};
        CHECK(service->check_global(params, layout, &fault) != 0);
        CHECK_INT(fault.code, ZFED_ERR_INVALID_PARAM);
        CHECK_STR(fault.field, "global");
        CHECK_STR(fault.text, cases[index].text);
        s_unpack(&packed);
    }
    zfed_model_destroy(&model);
    zfed_model_destroy(&again);
    zfed_model_destroy(&other);
}

//  The first count samples of set, as a set of their own.
static zfed_dataset_t *s_head(const zfed_dataset_t *set, uint32_t first, uint32_t count)
{
    uint8_t *images = malloc((size_t)count * ZFED_DATASET_PIXELS);
    uint8_t *labels = malloc(count);
    if (!images || !labels) {
        free(images);
        free(labels);
        return NULL;
    }
    memcpy(images, zfed_dataset_images(set) + (size_t)first * ZFED_DATASET_PIXELS,
           (size_t)count * ZFED_DATASET_PIXELS);
    memcpy(labels, zfed_dataset_labels(set) + first, count);
    char error[128];
    return zfed_dataset_new(count, images, labels, error, sizeof error);
}

//  One task's outputs map, decoded.
typedef struct {
    msgpack_sbuffer buffer;
    msgpack_unpacked unpacked;
    zfed_model_t *model;
    uint64_t weight;
} s_trained_t;

static int s_train(const msgpack_object *params, const zfed_task_ctx_t *ctx,
                   const zfed_model_t *global, s_trained_t *out, zfed_fault_t *fault)
{
    msgpack_sbuffer_init(&out->buffer);
    msgpack_unpacked_init(&out->unpacked);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &out->buffer, msgpack_sbuffer_write);
    out->model = NULL;
    int rc = s_service()->train(params, ctx, global, &out->model, &out->weight, &packer, fault);
    size_t offset = 0;
    if (rc == 0)
        msgpack_unpack_next(&out->unpacked, out->buffer.data, out->buffer.size, &offset);
    return rc;
}

static void s_trained_clear(s_trained_t *trained)
{
    zfed_model_destroy(&trained->model);
    msgpack_unpacked_destroy(&trained->unpacked);
    msgpack_sbuffer_destroy(&trained->buffer);
}

static double s_output(const s_trained_t *trained, const char *key)
{
    const msgpack_object *map = &trained->unpacked.data;
    for (uint32_t i = 0; map->type == MSGPACK_OBJECT_MAP && i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0 &&
            kv->val.type == MSGPACK_OBJECT_FLOAT64)
            return kv->val.via.f64;
    }
    return NAN;
}

static void test_train_evaluate_and_outputs(void)
{
    zfed_dataset_t *train = NULL, *test = NULL;
    if (!zfed_test_fashion_mnist(&train, &test))
        return;
    const zfed_service_t *service = s_service();
    zfed_dataset_t *shard = s_head(train, 0, SHARD);
    zfed_dataset_t *eval = s_head(test, 0, 2000);
    REQUIRE(shard && eval);
    s_packed_t packed;
    const msgpack_object *params = s_pack(&packed, "{\"hidden\": [32], \"seed\": 3}");
    zfed_fault_t fault = {0};
    zfed_model_t *global = NULL;
    REQUIRE(service->initial_model(params, 1, &global, &fault) == 0);

    //  No data: the worker's fault, named.
    zfed_task_ctx_t ctx = {.site = "a", .job_id = "j", .round = 2, .worker = "w"};
    s_trained_t first, second, other_site, other_round;
    CHECK(s_train(params, &ctx, global, &first, &fault) != 0);
    CHECK_INT(fault.code, ZFED_ERR_INTERNAL);
    CHECK_STR(fault.field, "data");
    s_trained_clear(&first);

    ctx.data = shard;
    REQUIRE(s_train(params, &ctx, global, &first, &fault) == 0);
    ctx.attempt = 1; //  a task sent again trains the same
    REQUIRE(s_train(params, &ctx, global, &second, &fault) == 0);
    ctx.site = "b";
    REQUIRE(s_train(params, &ctx, global, &other_site, &fault) == 0);
    ctx.site = "a";
    ctx.round = 3;
    REQUIRE(s_train(params, &ctx, global, &other_round, &fault) == 0);
    size_t nbytes = zfed_model_nbytes(global);
    CHECK_INT(first.weight, SHARD);
    //  The shard's digest, as its pixels then labels hash.
    uint8_t digest[ZFED_SHA256_SIZE];
    zfed_sha256_t *hash = zfed_sha256_new();
    REQUIRE(hash);
    CHECK(zfed_sha256_update(hash, zfed_dataset_images(shard),
                             (size_t)SHARD * ZFED_DATASET_PIXELS) == 0);
    CHECK(zfed_sha256_update(hash, zfed_dataset_labels(shard), SHARD) == 0);
    CHECK(zfed_sha256_final(hash, digest) == 0);
    zfed_sha256_destroy(&hash);
    CHECK(memcmp(zfed_dataset_sha256(shard), digest, sizeof digest) == 0);
    char hex[ZFED_SHA256_HEX_SIZE];
    const msgpack_object *sent = zfed_map_get(&first.unpacked.data, ZFED_OUTPUT_DATA_SHA256);
    REQUIRE(sent && sent->type == MSGPACK_OBJECT_STR);
    CHECK(sent->via.str.size == 2 * ZFED_SHA256_SIZE &&
          memcmp(sent->via.str.ptr, zfed_sha256_hex(digest, hex), 2 * ZFED_SHA256_SIZE) == 0);
    CHECK(memcmp(zfed_model_data(first.model), zfed_model_data(second.model), nbytes) == 0);
    CHECK(memcmp(zfed_model_data(first.model), zfed_model_data(other_site.model), nbytes) != 0);
    CHECK(memcmp(zfed_model_data(first.model), zfed_model_data(other_round.model), nbytes) != 0);
    CHECK(memcmp(zfed_model_data(first.model), zfed_model_data(global), nbytes) != 0);
    double loss = s_output(&first, "train_loss"), accuracy = s_output(&first, "train_accuracy");
    CHECK(isfinite(loss) && loss > 0 && loss < 3);
    CHECK(accuracy > 0.2 && accuracy <= 1);

    //  The evaluation hook is lib/ml's evaluation, and training helped.
    json_t *before = json_object(), *after = json_object();
    REQUIRE(service->evaluate(params, global, eval, before, &fault) == 0);
    REQUIRE(service->evaluate(params, first.model, eval, after, &fault) == 0);
    zfed_mlp_arch_t arch = {.hidden_layers = 1, .hidden = {32}};
    zfed_mlp_result_t direct;
    char error[128];
    REQUIRE(zfed_mlp_evaluate(&arch, zfed_model_data(first.model), zfed_dataset_images(eval),
                              zfed_dataset_labels(eval), 2000, NULL, &direct, error,
                              sizeof error) == 0);
    CHECK(json_real_value(json_object_get(after, "test_accuracy")) == direct.accuracy);
    CHECK(json_real_value(json_object_get(after, "test_loss")) == direct.loss);
    CHECK_INT(json_integer_value(json_object_get(after, "test_samples")), 2000);
    CHECK(json_real_value(json_object_get(after, "test_accuracy")) >
          json_real_value(json_object_get(before, "test_accuracy")) + 0.2);
    json_decref(before);
    json_decref(after);

    //  A layout that does not fit the params is refused before training.
    s_packed_t wide;
    const msgpack_object *wide_params = s_pack(&wide, "{\"hidden\": [33]}");
    s_trained_t refused;
    fault = (zfed_fault_t){0};
    CHECK(s_train(wide_params, &ctx, global, &refused, &fault) != 0);
    CHECK_STR(fault.field, "global");
    s_trained_clear(&refused);
    s_unpack(&wide);

    //  A step too large: the task's lr, named.
    s_packed_t huge;
    const msgpack_object *huge_params = s_pack(&huge, "{\"hidden\": [32], \"lr\": 1e30}");
    fault = (zfed_fault_t){0};
    CHECK(s_train(huge_params, &ctx, global, &refused, &fault) != 0);
    CHECK_INT(fault.code, ZFED_ERR_INVALID_PARAM);
    CHECK_STR(fault.field, "lr");
    s_trained_clear(&refused);
    s_unpack(&huge);

    //  Work past the bound is refused unrun (413), naming what to change:
    //  1,863,690 weights x 600 samples allow 894 epochs.
    s_packed_t many_packed;
    const msgpack_object *many =
        s_pack(&many_packed, "{\"hidden\": [1024, 1024], \"local_epochs\": 1000}");
    zfed_model_t *big = NULL;
    REQUIRE(service->initial_model(many, 1, &big, &fault) == 0);
    fault = (zfed_fault_t){0};
    CHECK(s_train(many, &ctx, big, &refused, &fault) != 0);
    CHECK_INT(fault.code, ZFED_ERR_TOO_LARGE);
    CHECK_STR(fault.field, "local_epochs");
    CHECK(strstr(fault.text, "at most 894 epochs here") != NULL);
    s_trained_clear(&refused);
    zfed_model_destroy(&big);
    s_unpack(&many_packed);
    //  On all 60,000 images one epoch of [4096, 4096] (20 M weights) is
    //  already too much: the hidden sizes are named.
    s_packed_t wide_packed;
    const msgpack_object *widest = s_pack(&wide_packed, "{\"hidden\": [4096, 4096]}");
    REQUIRE(service->initial_model(widest, 1, &big, &fault) == 0);
    ctx.data = train;
    fault = (zfed_fault_t){0};
    CHECK(s_train(widest, &ctx, big, &refused, &fault) != 0);
    CHECK_INT(fault.code, ZFED_ERR_TOO_LARGE);
    CHECK_STR(fault.field, "hidden");
    CHECK(strstr(fault.text, "smaller hidden layers") != NULL);
    ctx.data = shard;
    s_trained_clear(&refused);
    zfed_model_destroy(&big);
    s_unpack(&wide_packed);

    s_trained_clear(&first);
    s_trained_clear(&second);
    s_trained_clear(&other_site);
    s_trained_clear(&other_round);
    zfed_model_destroy(&global);
    s_unpack(&packed);
    zfed_dataset_destroy(&shard);
    zfed_dataset_destroy(&eval);
    zfed_dataset_destroy(&train);
    zfed_dataset_destroy(&test);
}

static void test_result_outputs_checked(void)
{
#define DIGEST                                                                                     \
    "\"data_sha256\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\""
    const zfed_service_t *service = s_service();
    s_packed_t params_packed;
    const msgpack_object *params = s_pack(&params_packed, "{}");
    struct {
        const char *outputs, *field; //  field NULL: accepted
    } cases[] = {
        {"{\"model\": null, " DIGEST
         ", \"samples\": 5, \"train_loss\": 0.5, \"train_accuracy\": 0.75}",
         NULL},
        {"{\"model\": null, " DIGEST
         ", \"samples\": 0, \"train_loss\": 0.5, \"train_accuracy\": 0.75}",
         "samples"},
        {"{\"model\": null, " DIGEST ", \"train_loss\": 0.5, \"train_accuracy\": 0.75}", "samples"},
        {"{\"model\": null, " DIGEST
         ", \"samples\": 5, \"train_loss\": -0.5, \"train_accuracy\": 0.75}",
         "train_loss"},
        {"{\"model\": null, " DIGEST
         ", \"samples\": 5, \"train_loss\": 0.5, \"train_accuracy\": 1.5}",
         "train_accuracy"},
        {"{\"model\": null, " DIGEST ", \"samples\": 5, \"train_loss\": 0.5}", "train_accuracy"},
        {"{\"model\": null, " DIGEST
         ", \"samples\": 5, \"train_loss\": 0.5, \"train_accuracy\": 0.75, "
         "\"x\": 1}",
         "x"},
        {"{\"model\": null, \"samples\": 5, \"train_loss\": 0.5, \"train_accuracy\": 0.75}",
         "data_sha256"},
        {"{\"model\": null, \"data_sha256\": \"ab\", \"samples\": 5, \"train_loss\": 0.5, "
         "\"train_accuracy\": 0.75}",
         "data_sha256"},
        {"{\"model\": null, \"data_sha256\": 7, \"samples\": 5, \"train_loss\": 0.5, "
         "\"train_accuracy\": 0.75}",
         "data_sha256"},
        //  Upper-case hex is not the form zfed writes.
        {"{\"model\": null, \"data_sha256\": "
         "\"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855\", \"samples\": 5, "
         "\"train_loss\": 0.5, \"train_accuracy\": 0.75}",
         "data_sha256"},
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        s_packed_t packed;
        const msgpack_object *outputs = s_pack(&packed, cases[index].outputs);
        REQUIRE(outputs);
        zfed_fault_t fault = {0};
        int rc = service->check_metrics(params, outputs, &fault);
        if (!cases[index].field)
            CHECK(rc == 0);
        else {
            CHECK(rc != 0);
            CHECK_STR(fault.field, cases[index].field);
        }
        s_unpack(&packed);
    }
    s_unpack(&params_packed);
#undef DIGEST
}

static void test_open_data_names_the_folder(void)
{
    const zfed_service_t *service = s_service();
    void *data = NULL;
    zfed_fault_t fault = {0};
    CHECK(service->open_data("/nonexistent/zfed-shard", ZFED_DATA_TRAIN, &data, &fault) != 0);
    CHECK(data == NULL);
    CHECK_STR(fault.field, "data");
    CHECK(strstr(fault.text, "/nonexistent/zfed-shard") != NULL);
    //  The evaluation role reads the t10k files of a folder.
    REQUIRE(service->open_data(ZFED_DATASET_FASHION_MNIST, ZFED_DATA_EVAL, &data, &fault) == 0);
    CHECK_INT(zfed_dataset_count(data), 10000);
    service->close_data(&data);
    CHECK(data == NULL);
}

int main(void)
{
    ZFED_TEST_RUN(test_params_refused_by_field);
    ZFED_TEST_RUN(test_initial_model_and_layout_checks);
    ZFED_TEST_RUN(test_train_evaluate_and_outputs);
    ZFED_TEST_RUN(test_result_outputs_checked);
    ZFED_TEST_RUN(test_open_data_names_the_folder);
    ZFED_TEST_END();
}
