/*  zfed_mlp - a ReLU multilayer perceptron with softmax cross-entropy and
    torch-style SGD, on OpenBLAS.

    One batch, L layers (layer l maps in_l to out_l; W_l is [out_l, in_l]
    row-major as nn.Linear keeps it, so the forward product is X W^T):

      forward    Z_l = A_{l-1} W_l^T + b_l,  A_l = relu(Z_l)  (A_0 = X, no
                 relu on the last layer: its Z is the logits)
      loss       D_L = (softmax(Z_L) - onehot(y)) / B
      backward   for l = L..1:  D_{l-1} = (D_l W_l) * [A_{l-1} > 0]  (l > 1)
                                dW_l = D_l^T A_{l-1},  db_l = column sums of D_l

    Every product is one sgemm.  Plain SGD (no momentum, no weight decay)
    folds the step into the gradient's sgemm: W_l <- W_l - lr D_l^T A_{l-1}
    with alpha -lr and beta 1, straight into the parameters, after D_{l-1}
    has used the old W_l; so no gradient buffer is written or read.  With
    momentum or weight decay the gradient goes to its own buffer first and
    one pass applies torch's update.

    The ReLU mask is read from A (A > 0 exactly when Z > 0), so Z is never
    kept.  ZFED_MLP_PLAIN_LOOPS swaps sgemm for plain C loops: the
    benchmark builds that variant to show what OpenBLAS is worth.
*/
#include "ml/zfed_mlp.h"
#include "ml/zfed_ml_error.h"
#include "ml/zfed_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef ZFED_MLP_PLAIN_LOOPS
#include <cblas.h>
#endif

#define PIXEL_MAX 255.0f

//  What one batch of up to capacity samples needs, allocated once per call.
typedef struct {
    const zfed_mlp_arch_t *arch;
    uint32_t layers;
    uint32_t in[ZFED_MLP_MAX_LAYERS];
    uint32_t out[ZFED_MLP_MAX_LAYERS];
    size_t weight[ZFED_MLP_MAX_LAYERS]; //  offsets into the parameter buffer
    size_t bias[ZFED_MLP_MAX_LAYERS];
    uint32_t capacity;
    float *x;                        //  capacity x 784 inputs
    float *act[ZFED_MLP_MAX_LAYERS]; //  capacity x out_l; act[L-1] holds the logits
    float *delta[2];                 //  capacity x widest layer, ping-pong
    float *sums;                     //  widest layer: column sums of a delta
    uint8_t *y;                      //  capacity labels
} s_work_t;

//  ---------------------------------------------------------------------
//  Architecture and options

void zfed_mlp_arch_default(zfed_mlp_arch_t *arch)
{
    memset(arch, 0, sizeof *arch);
    arch->hidden_layers = 2;
    arch->hidden[0] = ZFED_MLP_DEFAULT_HIDDEN;
    arch->hidden[1] = ZFED_MLP_DEFAULT_HIDDEN;
}

void zfed_mlp_sgd_default(zfed_mlp_sgd_t *sgd)
{
    memset(sgd, 0, sizeof *sgd);
    sgd->lr = ZFED_MLP_DEFAULT_LR;
    sgd->batch_size = ZFED_MLP_DEFAULT_BATCH_SIZE;
    sgd->local_epochs = ZFED_MLP_DEFAULT_EPOCHS;
    sgd->threads = 1;
}

int zfed_mlp_arch_check(const zfed_mlp_arch_t *arch, char *error, size_t error_size)
{
    if (arch->hidden_layers < 1 || arch->hidden_layers > ZFED_MLP_MAX_HIDDEN_LAYERS)
        return zfed_ml_error(error, error_size, "hidden: %u hidden layers, expected 1 to %d",
                             arch->hidden_layers, ZFED_MLP_MAX_HIDDEN_LAYERS);
    for (uint32_t i = 0; i < arch->hidden_layers; i++)
        if (arch->hidden[i] < 1 || arch->hidden[i] > ZFED_MLP_MAX_HIDDEN_SIZE)
            return zfed_ml_error(error, error_size,
                                 "hidden: layer %u has %u units, expected 1 to %d", i + 1,
                                 arch->hidden[i], ZFED_MLP_MAX_HIDDEN_SIZE);
    return 0;
}

int zfed_mlp_arch_set(zfed_mlp_arch_t *arch, const uint32_t *sizes, size_t count, char *error,
                      size_t error_size)
{
    if (count < 1 || count > ZFED_MLP_MAX_HIDDEN_LAYERS)
        return zfed_ml_error(error, error_size, "hidden: %zu hidden layers, expected 1 to %d",
                             count, ZFED_MLP_MAX_HIDDEN_LAYERS);
    zfed_mlp_arch_t candidate = {.hidden_layers = (uint32_t)count};
    memcpy(candidate.hidden, sizes, count * sizeof *sizes);
    if (zfed_mlp_arch_check(&candidate, error, error_size) != 0)
        return -1;
    *arch = candidate;
    return 0;
}

int zfed_mlp_arch_parse(zfed_mlp_arch_t *arch, const char *text, char *error, size_t error_size)
{
    uint32_t sizes[ZFED_MLP_MAX_HIDDEN_LAYERS];
    size_t count = 0;
    const char *at = text ? text : "";
    for (;;) {
        if (*at < '0' || *at > '9')
            return zfed_ml_error(error, error_size,
                                 "hidden: expected sizes separated by commas, got '%s'",
                                 text ? text : "");
        char *end;
        unsigned long value = strtoul(at, &end, 10);
        if (count == ZFED_MLP_MAX_HIDDEN_LAYERS)
            return zfed_ml_error(error, error_size, "hidden: more than %d hidden layers",
                                 ZFED_MLP_MAX_HIDDEN_LAYERS);
        sizes[count++] = value > UINT32_MAX ? UINT32_MAX : (uint32_t)value;
        if (*end == '\0')
            break;
        if (*end != ',')
            return zfed_ml_error(error, error_size,
                                 "hidden: expected sizes separated by commas, got '%s'", text);
        at = end + 1;
    }
    return zfed_mlp_arch_set(arch, sizes, count, error, error_size);
}

char *zfed_mlp_arch_format(const zfed_mlp_arch_t *arch, char *text, size_t text_size)
{
    size_t used = 0;
    if (text_size)
        text[0] = '\0';
    for (uint32_t i = 0; i < arch->hidden_layers && used < text_size; i++) {
        int wrote = snprintf(text + used, text_size - used, "%s%u", i ? "," : "", arch->hidden[i]);
        if (wrote < 0)
            break;
        used += (size_t)wrote;
    }
    return text;
}

int zfed_mlp_sgd_check(const zfed_mlp_sgd_t *sgd, char *error, size_t error_size)
{
    if (!(isfinite(sgd->lr) && sgd->lr > 0))
        return zfed_ml_error(error, error_size, "lr: %g, expected a finite number above 0",
                             sgd->lr);
    if (sgd->batch_size < 1 || sgd->batch_size > ZFED_MLP_MAX_BATCH)
        return zfed_ml_error(error, error_size, "batch_size: %u, expected 1 to %d", sgd->batch_size,
                             ZFED_MLP_MAX_BATCH);
    if (sgd->local_epochs < 1 || sgd->local_epochs > ZFED_MLP_MAX_EPOCHS)
        return zfed_ml_error(error, error_size, "local_epochs: %u, expected 1 to %d",
                             sgd->local_epochs, ZFED_MLP_MAX_EPOCHS);
    if (!(sgd->momentum >= 0 && sgd->momentum < 1))
        return zfed_ml_error(error, error_size, "momentum: %g, expected at least 0 and below 1",
                             sgd->momentum);
    if (!(isfinite(sgd->weight_decay) && sgd->weight_decay >= 0))
        return zfed_ml_error(error, error_size, "weight_decay: %g, expected a finite number >= 0",
                             sgd->weight_decay);
    if (sgd->threads < 1 || sgd->threads > ZFED_MLP_MAX_THREADS)
        return zfed_ml_error(error, error_size, "threads: %u, expected 1 to %d", sgd->threads,
                             ZFED_MLP_MAX_THREADS);
    return 0;
}

//  Layer l's widths: the arch's hidden sizes between 784 inputs and 10
//  outputs.
static uint32_t s_layer_in(const zfed_mlp_arch_t *arch, uint32_t l)
{
    return l == 0 ? ZFED_MLP_INPUTS : arch->hidden[l - 1];
}

static uint32_t s_layer_out(const zfed_mlp_arch_t *arch, uint32_t l)
{
    return l == arch->hidden_layers ? ZFED_MLP_CLASSES : arch->hidden[l];
}

size_t zfed_mlp_tensors(const zfed_mlp_arch_t *arch, zfed_mlp_tensor_t *tensors)
{
    size_t offset = 0, count = 0;
    for (uint32_t l = 0; l <= arch->hidden_layers; l++) {
        uint32_t in = s_layer_in(arch, l), out = s_layer_out(arch, l);
        zfed_mlp_tensor_t *weight = &tensors[count++];
        zfed_mlp_tensor_t *bias = &tensors[count++];
        *weight = (zfed_mlp_tensor_t){
            .ndims = 2, .shape = {out, in}, .offset = offset, .count = (size_t)out * in};
        snprintf(weight->name, sizeof weight->name, "fc%u.weight", l + 1);
        offset += weight->count;
        *bias = (zfed_mlp_tensor_t){.ndims = 1, .shape = {out}, .offset = offset, .count = out};
        snprintf(bias->name, sizeof bias->name, "fc%u.bias", l + 1);
        offset += bias->count;
    }
    return count;
}

size_t zfed_mlp_param_count(const zfed_mlp_arch_t *arch)
{
    zfed_mlp_tensor_t tensors[ZFED_MLP_MAX_TENSORS];
    size_t count = zfed_mlp_tensors(arch, tensors);
    return tensors[count - 1].offset + tensors[count - 1].count;
}

void zfed_mlp_init(const zfed_mlp_arch_t *arch, uint64_t seed, float *params)
{
    zfed_rng_t rng;
    zfed_rng_seed(&rng, seed);
    zfed_mlp_tensor_t tensors[ZFED_MLP_MAX_TENSORS];
    size_t count = zfed_mlp_tensors(arch, tensors);
    for (size_t t = 0; t < count; t++) {
        //  fan_in is the layer's input width, for its bias too (nn.Linear).
        uint32_t fan_in = tensors[t - t % 2].shape[1];
        double bound = 1.0 / sqrt((double)fan_in);
        float *value = params + tensors[t].offset;
        for (size_t i = 0; i < tensors[t].count; i++)
            value[i] = (float)((2.0 * zfed_rng_double(&rng) - 1.0) * bound);
    }
}

//  ---------------------------------------------------------------------
//  Matrix products

//  C = alpha * op(A) op(B) + beta * C, row-major; op transposes when asked.
static void s_gemm(bool trans_a, bool trans_b, uint32_t m, uint32_t n, uint32_t k, float alpha,
                   const float *a, uint32_t lda, const float *b, uint32_t ldb, float beta, float *c,
                   uint32_t ldc)
{
#ifndef ZFED_MLP_PLAIN_LOOPS
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda, b,
                (int)ldb, beta, c, (int)ldc);
#else
    //  What one writes without a BLAS: loops ordered so the innermost one
    //  runs along contiguous rows (and vectorises), C scaled first.
    for (uint32_t i = 0; i < m; i++)
        for (uint32_t j = 0; j < n; j++)
            c[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
    if (!trans_b) {
        //  C[i,:] += alpha A(i,p) B[p,:]
        for (uint32_t i = 0; i < m; i++)
            for (uint32_t p = 0; p < k; p++) {
                float scale = alpha * (trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]);
                const float *row = b + (size_t)p * ldb;
                float *out = c + (size_t)i * ldc;
                for (uint32_t j = 0; j < n; j++)
                    out[j] += scale * row[j];
            }
    } else {
        //  C[i,j] += alpha A[i,:] . B[j,:] (A not transposed in our use)
        for (uint32_t i = 0; i < m; i++)
            for (uint32_t j = 0; j < n; j++) {
                const float *left = a + (size_t)i * lda, *right = b + (size_t)j * ldb;
                float sum = 0.0f;
                for (uint32_t p = 0; p < k; p++)
                    sum += left[p] * right[p];
                c[(size_t)i * ldc + j] += alpha * sum;
            }
    }
#endif
}

static void s_set_threads(uint32_t threads)
{
#ifndef ZFED_MLP_PLAIN_LOOPS
    openblas_set_num_threads((int)threads);
#else
    (void)threads;
#endif
}

//  ---------------------------------------------------------------------
//  Workspace

static void s_work_free(s_work_t *work)
{
    free(work->x);
    for (uint32_t l = 0; l < work->layers; l++)
        free(work->act[l]);
    free(work->delta[0]);
    free(work->delta[1]);
    free(work->sums);
    free(work->y);
    memset(work, 0, sizeof *work);
}

//  Workspace for batches of up to capacity; with_delta for training.
static int s_work_init(s_work_t *work, const zfed_mlp_arch_t *arch, uint32_t capacity,
                       bool with_delta, char *error, size_t error_size)
{
    memset(work, 0, sizeof *work);
    work->arch = arch;
    work->layers = arch->hidden_layers + 1;
    work->capacity = capacity;
    zfed_mlp_tensor_t tensors[ZFED_MLP_MAX_TENSORS];
    zfed_mlp_tensors(arch, tensors);
    uint64_t widths = ZFED_MLP_INPUTS, widest = ZFED_MLP_INPUTS;
    for (uint32_t l = 0; l < work->layers; l++) {
        work->in[l] = s_layer_in(arch, l);
        work->out[l] = s_layer_out(arch, l);
        work->weight[l] = tensors[2 * l].offset;
        work->bias[l] = tensors[2 * l + 1].offset;
        widths += work->out[l];
        if (work->out[l] > widest)
            widest = work->out[l];
    }
    uint64_t bytes = (uint64_t)capacity * (widths + (with_delta ? 2 * widest : 0)) * sizeof(float);
    if (bytes > ZFED_MLP_MAX_WORKSPACE)
        return zfed_ml_error(error, error_size,
                             "batch_size: %u samples of these layers need %llu MiB of workspace, "
                             "at most %llu",
                             capacity, (unsigned long long)(bytes >> 20),
                             (unsigned long long)(ZFED_MLP_MAX_WORKSPACE >> 20));
    bool ok = (work->x = malloc((size_t)capacity * ZFED_MLP_INPUTS * sizeof(float))) &&
              (work->y = malloc(capacity));
    for (uint32_t l = 0; ok && l < work->layers; l++)
        ok = (work->act[l] = malloc((size_t)capacity * work->out[l] * sizeof(float))) != NULL;
    for (int i = 0; ok && with_delta && i < 2; i++)
        ok = (work->delta[i] = malloc((size_t)capacity * widest * sizeof(float))) != NULL;
    if (ok && with_delta)
        ok = (work->sums = malloc(widest * sizeof(float))) != NULL;
    if (!ok) {
        s_work_free(work);
        return zfed_ml_error(error, error_size, "out of memory for a batch of %u", capacity);
    }
    return 0;
}

//  Copies samples order[0..b) (or first..first+b when order is NULL) into
//  the batch's inputs and labels.
static void s_gather(s_work_t *work, const uint8_t *images, const uint8_t *labels,
                     const uint32_t *order, uint32_t first, uint32_t b)
{
    for (uint32_t r = 0; r < b; r++) {
        uint32_t sample = order ? order[r] : first + r;
        const uint8_t *restrict image = images + (size_t)sample * ZFED_MLP_INPUTS;
        float *restrict x = work->x + (size_t)r * ZFED_MLP_INPUTS;
        //  A division, not a multiplication by 1/255: the same float32 as
        //  numpy's astype(float32) / 255.
        for (uint32_t k = 0; k < ZFED_MLP_INPUTS; k++)
            x[k] = (float)image[k] / PIXEL_MAX;
        work->y[r] = labels[sample];
    }
}

//  ---------------------------------------------------------------------
//  Forward, loss, backward

//  The element-wise loops, written branch-free over restrict pointers so
//  the compiler vectorises them (CMakeLists.txt builds this file with the
//  full vectoriser): at batch 32 they were an eighth of an epoch as
//  branches.

static void s_relu(float *restrict z, size_t count)
{
    for (size_t i = 0; i < count; i++)
        z[i] = z[i] > 0.0f ? z[i] : 0.0f;
}

//  gradient *= [activation > 0]
static void s_relu_mask(float *restrict gradient, const float *restrict activation, size_t count)
{
    for (size_t i = 0; i < count; i++)
        gradient[i] = activation[i] > 0.0f ? gradient[i] : 0.0f;
}

//  sums[j] = sum over rows r of m[r, j], rows added in order.
static void s_column_sums(float *restrict sums, const float *restrict m, uint32_t rows,
                          uint32_t cols)
{
    memcpy(sums, m, cols * sizeof *sums);
    for (uint32_t r = 1; r < rows; r++) {
        const float *restrict row = m + (size_t)r * cols;
        for (uint32_t j = 0; j < cols; j++)
            sums[j] += row[j];
    }
}

static void s_forward(s_work_t *work, const float *params, uint32_t b)
{
    const float *input = work->x;
    for (uint32_t l = 0; l < work->layers; l++) {
        uint32_t in = work->in[l], out = work->out[l];
        float *z = work->act[l];
        const float *bias = params + work->bias[l];
        //  Z starts as the bias in every row; sgemm adds A W^T (beta 1).
        for (uint32_t r = 0; r < b; r++)
            memcpy(z + (size_t)r * out, bias, out * sizeof(float));
        s_gemm(false, true, b, out, in, 1.0f, input, in, params + work->weight[l], in, 1.0f, z,
               out);
        if (l + 1 < work->layers)
            s_relu(z, (size_t)b * out);
        input = z;
    }
}

//  Cross-entropy of the batch's logits: adds the summed loss and the count
//  of correct predictions.  With delta not NULL, writes D_L =
//  (softmax - onehot) / b there.
static void s_loss(const s_work_t *work, uint32_t b, float *delta, double *loss_sum,
                   uint64_t *correct)
{
    const float *logits = work->act[work->layers - 1];
    for (uint32_t r = 0; r < b; r++) {
        const float *z = logits + (size_t)r * ZFED_MLP_CLASSES;
        uint32_t best = 0;
        for (uint32_t j = 1; j < ZFED_MLP_CLASSES; j++)
            if (z[j] > z[best])
                best = j; //  the first of equal maxima, as argmax
        float max = z[best], e[ZFED_MLP_CLASSES], sum = 0.0f;
        for (uint32_t j = 0; j < ZFED_MLP_CLASSES; j++)
            sum += e[j] = expf(z[j] - max);
        uint8_t y = work->y[r];
        *loss_sum += (double)(logf(sum) - (z[y] - max));
        *correct += best == y;
        if (delta) {
            float *d = delta + (size_t)r * ZFED_MLP_CLASSES;
            float scale = 1.0f / (float)b;
            for (uint32_t j = 0; j < ZFED_MLP_CLASSES; j++)
                d[j] = (e[j] / sum - (j == y ? 1.0f : 0.0f)) * scale;
        }
    }
}

//  Back-propagates D_L (in work->delta[0]) and writes
//  target_W = alpha dW + beta target_W (and so for b) for every layer:
//  the gradient (alpha 1, beta 0, target a gradient buffer) or the SGD step
//  (alpha -lr, beta 1, target params itself).
static void s_backward(s_work_t *work, const float *params, float *target, float alpha, float beta,
                       uint32_t b)
{
    int current = 0;
    for (uint32_t l = work->layers; l-- > 0;) {
        uint32_t in = work->in[l], out = work->out[l];
        const float *delta = work->delta[current];
        const float *input = l ? work->act[l - 1] : work->x;
        if (l > 0) {
            //  D_{l-1} from the W_l this step started with: before the
            //  fused step below overwrites it.
            float *previous = work->delta[1 - current];
            s_gemm(false, false, b, in, out, 1.0f, delta, out, params + work->weight[l], in, 0.0f,
                   previous, in);
            s_relu_mask(previous, input, (size_t)b * in);
        }
        s_gemm(true, false, out, in, b, alpha, delta, out, input, in, beta,
               target + work->weight[l], in);
        s_column_sums(work->sums, delta, b, out);
        float *bias = target + work->bias[l];
        for (uint32_t j = 0; j < out; j++)
            bias[j] = beta == 0.0f ? alpha * work->sums[j] : beta * bias[j] + alpha * work->sums[j];
        current = 1 - current;
    }
}

//  Labels are the caller's raw bytes here: check them before indexing.
static int s_check_data(const uint8_t *images, const uint8_t *labels, uint32_t count, char *error,
                        size_t error_size)
{
    if (count == 0 || !images || !labels)
        return zfed_ml_error(error, error_size, "data: no samples");
    for (uint32_t i = 0; i < count; i++)
        if (labels[i] >= ZFED_MLP_CLASSES)
            return zfed_ml_error(error, error_size, "data: label %u at sample %u, expected 0 to %d",
                                 labels[i], i, ZFED_MLP_CLASSES - 1);
    return 0;
}

//  ---------------------------------------------------------------------
//  Training, evaluation, gradient

//  torch.optim.SGD's step from the gradient in grad, momentum buffer in
//  buffer (NULL without momentum; first is its first step).
static void s_step(float *restrict params, const float *restrict grad, float *restrict buffer,
                   bool first, size_t count, const zfed_mlp_sgd_t *sgd)
{
    float lr = (float)sgd->lr, momentum = (float)sgd->momentum;
    float decay = (float)sgd->weight_decay;
    for (size_t i = 0; i < count; i++) {
        float g = grad[i];
        if (decay != 0.0f)
            g += decay * params[i];
        if (buffer) {
            buffer[i] = first ? g : momentum * buffer[i] + g;
            g = buffer[i];
        }
        params[i] -= lr * g;
    }
}

int zfed_mlp_train(const zfed_mlp_arch_t *arch, float *params, const uint8_t *images,
                   const uint8_t *labels, uint32_t count, const zfed_mlp_sgd_t *sgd,
                   zfed_mlp_result_t *result, char *error, size_t error_size)
{
    if (zfed_mlp_arch_check(arch, error, error_size) != 0 ||
        zfed_mlp_sgd_check(sgd, error, error_size) != 0 ||
        s_check_data(images, labels, count, error, error_size) != 0)
        return -1;
    uint32_t capacity = sgd->batch_size < count ? sgd->batch_size : count;
    s_work_t work;
    if (s_work_init(&work, arch, capacity, true, error, error_size) != 0)
        return -1;
    bool fused = sgd->momentum == 0.0 && sgd->weight_decay == 0.0;
    size_t param_count = zfed_mlp_param_count(arch);
    float *grad = NULL, *buffer = NULL;
    uint32_t *order = malloc((size_t)count * sizeof *order);
    bool ok = order != NULL;
    if (ok && !fused)
        ok = (grad = malloc(param_count * sizeof *grad)) != NULL;
    if (ok && sgd->momentum != 0.0)
        ok = (buffer = malloc(param_count * sizeof *buffer)) != NULL;
    if (!ok) {
        free(order);
        free(grad);
        s_work_free(&work);
        return zfed_ml_error(error, error_size, "out of memory for %u samples", count);
    }
    s_set_threads(sgd->threads);
    zfed_rng_t rng;
    zfed_rng_seed(&rng, sgd->seed);
    double loss_sum = 0;
    uint64_t correct = 0;
    bool first_step = true;
    for (uint32_t epoch = 0; epoch < sgd->local_epochs; epoch++) {
        for (uint32_t i = 0; i < count; i++)
            order[i] = i;
        zfed_rng_shuffle(&rng, order, count);
        loss_sum = 0;
        correct = 0;
        for (uint32_t start = 0; start < count; start += capacity) {
            uint32_t b = count - start < capacity ? count - start : capacity;
            s_gather(&work, images, labels, order + start, 0, b);
            s_forward(&work, params, b);
            s_loss(&work, b, work.delta[0], &loss_sum, &correct);
            if (fused)
                s_backward(&work, params, params, -(float)sgd->lr, 1.0f, b);
            else {
                s_backward(&work, params, grad, 1.0f, 0.0f, b);
                s_step(params, grad, buffer, first_step, param_count, sgd);
            }
            first_step = false;
        }
    }
    result->samples = count;
    result->loss = loss_sum / count;
    result->accuracy = (double)correct / count;
    free(order);
    free(grad);
    free(buffer);
    s_work_free(&work);
    return 0;
}

int zfed_mlp_evaluate(const zfed_mlp_arch_t *arch, const float *params, const uint8_t *images,
                      const uint8_t *labels, uint32_t count, float *logits,
                      zfed_mlp_result_t *result, char *error, size_t error_size)
{
    if (zfed_mlp_arch_check(arch, error, error_size) != 0 ||
        s_check_data(images, labels, count, error, error_size) != 0)
        return -1;
    uint32_t capacity = count < ZFED_MLP_EVAL_BATCH ? count : ZFED_MLP_EVAL_BATCH;
    s_work_t work;
    if (s_work_init(&work, arch, capacity, false, error, error_size) != 0)
        return -1;
    s_set_threads(1);
    double loss_sum = 0;
    uint64_t correct = 0;
    for (uint32_t start = 0; start < count; start += capacity) {
        uint32_t b = count - start < capacity ? count - start : capacity;
        s_gather(&work, images, labels, NULL, start, b);
        s_forward(&work, params, b);
        s_loss(&work, b, NULL, &loss_sum, &correct);
        if (logits)
            memcpy(logits + (size_t)start * ZFED_MLP_CLASSES, work.act[work.layers - 1],
                   (size_t)b * ZFED_MLP_CLASSES * sizeof(float));
    }
    result->samples = count;
    result->loss = loss_sum / count;
    result->accuracy = (double)correct / count;
    s_work_free(&work);
    return 0;
}

int zfed_mlp_gradient(const zfed_mlp_arch_t *arch, const float *params, const uint8_t *images,
                      const uint8_t *labels, uint32_t count, float *grad, double *loss, char *error,
                      size_t error_size)
{
    if (zfed_mlp_arch_check(arch, error, error_size) != 0 ||
        s_check_data(images, labels, count, error, error_size) != 0)
        return -1;
    if (count > ZFED_MLP_MAX_BATCH)
        return zfed_ml_error(error, error_size, "data: %u samples in one batch, at most %d", count,
                             ZFED_MLP_MAX_BATCH);
    s_work_t work;
    if (s_work_init(&work, arch, count, true, error, error_size) != 0)
        return -1;
    s_set_threads(1);
    double loss_sum = 0;
    uint64_t correct = 0;
    s_gather(&work, images, labels, NULL, 0, count);
    s_forward(&work, params, count);
    s_loss(&work, count, work.delta[0], &loss_sum, &correct);
    s_backward(&work, params, grad, 1.0f, 0.0f, count);
    *loss = loss_sum / count;
    s_work_free(&work);
    return 0;
}
