/*  zfed_mlp - a multilayer perceptron for 28x28 images in 10 classes,
    trained with minibatch SGD (private header).

    784 inputs, 1 to ZFED_MLP_MAX_HIDDEN_LAYERS hidden layers with ReLU
    (default 200, 200: the "2NN" of McMahan et al. 2017), 10 outputs, softmax
    cross-entropy averaged over the batch.  Inputs are pixels / 255 as
    float32, nothing else.

    Parameters live in ONE float32 buffer the caller provides, laid out as
    PyTorch's state_dict of nn.Linear layers fc1..fcK would be: fc1.weight
    [h1, 784] row-major, fc1.bias [h1], fc2.weight [h2, h1], fc2.bias [h2], ...,
    fcK.weight [10, hK-1], fcK.bias [10].  zfed_mlp_tensors lists the
    (name, shape, offset) of each, so the buffer can be a model's tensor data
    as it is, and torch can load it.

    Training follows torch.optim.SGD (no dampening, no Nesterov): for each
    parameter p with gradient g, g += weight_decay * p; with momentum,
    buf = momentum * buf + g (buf = g on the first step) and g = buf; then
    p -= lr * g.  The momentum buffer starts afresh with every call.  Each
    local epoch visits the samples in an order shuffled by zfed_rng seeded
    with seed (a new Fisher-Yates shuffle of 0..n-1 per epoch, drawn from one
    stream), in batches of batch_size with the last, partial batch kept
    (torch's DataLoader with drop_last=False).

    Deterministic: the same parameters, data, options and seed give the same
    bytes.  The matrix products are OpenBLAS's sgemm on `threads` threads
    (default 1), set by every call (openblas_set_num_threads: a setting of
    the whole process), so OPENBLAS_NUM_THREADS and the core count cannot
    change a result; the thread count can (OpenBLAS may split the work of a
    product differently), and so can another CPU family, for which OpenBLAS
    picks other kernels.
*/
#ifndef ZFED_MLP_H_INCLUDED
#define ZFED_MLP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZFED_MLP_INPUTS            784
#define ZFED_MLP_CLASSES           10
#define ZFED_MLP_MAX_HIDDEN_LAYERS 8
#define ZFED_MLP_MAX_HIDDEN_SIZE   4096
#define ZFED_MLP_MAX_LAYERS        (ZFED_MLP_MAX_HIDDEN_LAYERS + 1)
#define ZFED_MLP_MAX_TENSORS       (2 * ZFED_MLP_MAX_LAYERS)
#define ZFED_MLP_MAX_BATCH         65536
#define ZFED_MLP_MAX_EPOCHS        1000
#define ZFED_MLP_MAX_THREADS       64
//  Activations and their gradients for one batch: batch_size times the
//  layer widths.  A bound on what one task may ask of a worker's memory.
#define ZFED_MLP_MAX_WORKSPACE (1ull << 30)
//  "fc9.weight" and its NUL.
#define ZFED_MLP_NAME_MAX 16
//  Evaluation runs forward in batches of this many samples.
#define ZFED_MLP_EVAL_BATCH 1000

//  The default architecture and options (the 2NN, as issue 11 runs it).
#define ZFED_MLP_DEFAULT_HIDDEN     200
#define ZFED_MLP_DEFAULT_LR         0.05
#define ZFED_MLP_DEFAULT_BATCH_SIZE 32
#define ZFED_MLP_DEFAULT_EPOCHS     1

typedef struct {
    uint32_t hidden_layers;                      //  1 .. ZFED_MLP_MAX_HIDDEN_LAYERS
    uint32_t hidden[ZFED_MLP_MAX_HIDDEN_LAYERS]; //  each 1 .. ZFED_MLP_MAX_HIDDEN_SIZE
} zfed_mlp_arch_t;

typedef struct {
    char name[ZFED_MLP_NAME_MAX]; //  "fc1.weight"
    uint32_t ndims;               //  2 for a weight, 1 for a bias
    uint32_t shape[2];            //  [out, in] or [out]
    size_t offset;                //  in float32 elements from the buffer's start
    size_t count;                 //  elements
} zfed_mlp_tensor_t;

typedef struct {
    double lr;             //  > 0, finite
    uint32_t batch_size;   //  1 .. ZFED_MLP_MAX_BATCH
    uint32_t local_epochs; //  1 .. ZFED_MLP_MAX_EPOCHS
    double momentum;       //  [0, 1)
    double weight_decay;   //  >= 0, finite
    uint64_t seed;         //  the shuffle's
    uint32_t threads;      //  OpenBLAS threads, 1 .. ZFED_MLP_MAX_THREADS
} zfed_mlp_sgd_t;

typedef struct {
    uint64_t samples; //  the set's size (a training's fedavg weight)
    double loss;      //  mean cross-entropy per sample
    double accuracy;  //  share of samples whose largest logit is their label
} zfed_mlp_result_t;

//  The 2NN (200, 200) / lr 0.05, batch 32, 1 epoch, no momentum or weight
//  decay, seed 0, 1 thread.
void zfed_mlp_arch_default(zfed_mlp_arch_t *arch);
void zfed_mlp_sgd_default(zfed_mlp_sgd_t *sgd);

//  Sets arch from count hidden sizes; -1 with "hidden: reason".
int zfed_mlp_arch_set(zfed_mlp_arch_t *arch, const uint32_t *sizes, size_t count, char *error,
                      size_t error_size);
//  Parses "200,200"; -1 with "hidden: reason".
int zfed_mlp_arch_parse(zfed_mlp_arch_t *arch, const char *text, char *error, size_t error_size);
//  Checks an arch filled by hand; -1 with "hidden: reason".
int zfed_mlp_arch_check(const zfed_mlp_arch_t *arch, char *error, size_t error_size);
//  "200,200" into text; returns text.
char *zfed_mlp_arch_format(const zfed_mlp_arch_t *arch, char *text, size_t text_size);

//  Checks the options; -1 with "FIELD: reason" (lr, batch_size, local_epochs,
//  momentum, weight_decay, threads).
int zfed_mlp_sgd_check(const zfed_mlp_sgd_t *sgd, char *error, size_t error_size);

//  Float32 elements of the whole parameter buffer of a valid arch.
size_t zfed_mlp_param_count(const zfed_mlp_arch_t *arch);
//  The tensors of a valid arch in state_dict order (2 per layer) into
//  tensors[0 .. ZFED_MLP_MAX_TENSORS); returns how many.
size_t zfed_mlp_tensors(const zfed_mlp_arch_t *arch, zfed_mlp_tensor_t *tensors);

//  Fills params like torch's nn.Linear default: each layer's weight and
//  bias uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn in buffer order
//  from zfed_rng seeded with seed: u = zfed_rng_double, value =
//  (float)((2u - 1) * bound).
void zfed_mlp_init(const zfed_mlp_arch_t *arch, uint64_t seed, float *params);

//  Trains params in place on count samples (images: count x 784 pixels,
//  labels 0..9).  The result is the last local epoch's loss and accuracy,
//  as measured batch by batch during it (before each batch's step),
//  weighted by samples.  -1 with "FIELD: reason" for bad options, an
//  empty set, a label out of range or no memory (params are untouched then).
int zfed_mlp_train(const zfed_mlp_arch_t *arch, float *params, const uint8_t *images,
                   const uint8_t *labels, uint32_t count, const zfed_mlp_sgd_t *sgd,
                   zfed_mlp_result_t *result, char *error, size_t error_size);

//  Loss and accuracy of params over count samples (forward only, in
//  batches of ZFED_MLP_EVAL_BATCH), on one OpenBLAS thread.  With logits
//  not NULL, also writes count x 10 logits there.
int zfed_mlp_evaluate(const zfed_mlp_arch_t *arch, const float *params, const uint8_t *images,
                      const uint8_t *labels, uint32_t count, float *logits,
                      zfed_mlp_result_t *result, char *error, size_t error_size);

//  The gradient of the mean loss over count samples (one batch) at params,
//  into grad (a buffer like params); *loss gets the mean loss.  For tests
//  (finite differences) and for optimisers outside this module.
int zfed_mlp_gradient(const zfed_mlp_arch_t *arch, const float *params, const uint8_t *images,
                      const uint8_t *labels, uint32_t count, float *grad, double *loss, char *error,
                      size_t error_size);

#endif
