#!/usr/bin/python3
"""The 2NN epoch as a Python user writes it in numpy (float32, OpenBLAS
through numpy's matmul): the yardstick zfed's C trainer is measured
against (issue 11: a site's epoch at most 1.0x this one).

    bench/numpy_mlp.py --train DIR [--test DIR] [--epochs E] [--threads T]

Same model and recipe as zfed-bench-mlp: 784-200-200-10, ReLU, softmax
cross-entropy averaged over the batch, plain SGD with lr 0.05 and batch
32, a fresh shuffle per epoch, the last partial batch kept, weights and
biases uniform in +-1/sqrt(fan_in) (numpy's own generator: the scheme is
the same, the numbers are not).  The images are converted to float32 / 255
once, before the clock starts (what a user does; it favours numpy).
--threads sets OPENBLAS_NUM_THREADS before numpy loads; without it numpy
uses OpenBLAS's default (one thread per core).  Prints one JSON line per
epoch with its seconds, train loss and accuracy, and test accuracy.
"""

import ctypes
import json
import os
import sys
import time

import mlp_args


def blas_threads():
    """The thread count of the OpenBLAS numpy loaded (0 if none is found)."""
    with open("/proc/self/maps") as handle:
        paths = sorted({line.split()[-1] for line in handle if "openblas" in line})
    for path in paths:
        try:
            return int(ctypes.CDLL(path).openblas_get_num_threads())
        except (OSError, AttributeError):
            continue
    return 0


def main():
    parser = mlp_args.parser(__doc__)
    args = parser.parse_args()
    if args.threads:
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import numpy as np  # after OPENBLAS_NUM_THREADS: OpenBLAS reads it once, at load
    import mlp_data

    images, labels = mlp_data.load_set(args.train)
    x_all = images.astype(np.float32) / 255
    y_all = labels.astype(np.int64)
    rng = np.random.default_rng(args.seed)
    sizes = mlp_data.layer_sizes(int(h) for h in args.hidden.split(","))
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / np.sqrt(fan_in)
        weights.append(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32))
        biases.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
    test = mlp_data.load_set(args.test, "t10k") if args.test else None
    n, lr, batch = len(y_all), np.float32(args.lr), args.batch_size
    last = len(weights) - 1
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        order = rng.permutation(n)
        loss_sum, correct = 0.0, 0
        for start in range(0, n, batch):
            index = order[start:start + batch]
            x, y = x_all[index], y_all[index]
            m = len(y)
            activations = [x]
            for layer in range(last + 1):
                z = activations[-1] @ weights[layer].T + biases[layer]
                activations.append(np.maximum(z, 0) if layer < last else z)
            z = activations[-1]
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            p = e / e.sum(axis=1, keepdims=True)
            rows = np.arange(m)
            loss_sum += float(-np.log(p[rows, y]).sum())
            correct += int((p.argmax(axis=1) == y).sum())
            delta = p
            delta[rows, y] -= 1
            delta /= m
            for layer in range(last, -1, -1):
                grad_w = delta.T @ activations[layer]
                grad_b = delta.sum(axis=0)
                if layer:
                    delta = (delta @ weights[layer]) * (activations[layer] > 0)
                weights[layer] -= lr * grad_w
                biases[layer] -= lr * grad_b
        seconds = time.perf_counter() - started
        line = {"epoch": epoch, "seconds": seconds, "samples": n, "train_loss": loss_sum / n,
                "train_accuracy": correct / n, "threads": blas_threads()}
        if test:
            logits = mlp_data.forward(list(zip(weights, biases)), test[0])
            line["test_accuracy"] = float((logits.argmax(axis=1) == test[1]).mean())
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    sys.exit(main())
