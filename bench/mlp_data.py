"""IDX reading and the 2NN's shapes for the Python sides of the MLP
benchmark (bench/numpy_mlp.py, bench/torch_mlp.py) and the tests that
check zfed's C trainer from outside it.  Plain Python and numpy: nothing
here uses zfed's code."""

import gzip
import os

import numpy as np

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
IDX_U8 = 0x08


def read_idx(path):
    """The u8 array of an IDX file, gzip-compressed or plain."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] or data[1] or data[2] != IDX_U8:
        raise ValueError("%s: not a u8 IDX file" % path)
    ndims = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndims)]
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndims)
    return payload.reshape(dims)


def find(folder, prefix, kind):
    """FOLDER/PREFIX-KIND-ubyte.gz, or the plain file."""
    base = os.path.join(folder, "%s-%s-ubyte" % (prefix, kind))
    return base + ".gz" if os.path.exists(base + ".gz") else base


def load_set(folder, prefix="train"):
    """(images N x 784 u8, labels N u8) of a folder's train or t10k set."""
    images = read_idx(find(folder, prefix, "images-idx3"))
    labels = read_idx(find(folder, prefix, "labels-idx1"))
    return images.reshape(len(images), -1), labels


def layer_sizes(hidden):
    """[784, h1, ..., 10]."""
    return [784] + list(hidden) + [10]


def split_params(flat, hidden):
    """The raw float32 buffer zfed-bench-mlp --save writes, as
    [(weight [out, in], bias [out]), ...] in nn.Linear layout."""
    sizes, layers, offset = layer_sizes(hidden), [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        weight = flat[offset:offset + fan_in * fan_out].reshape(fan_out, fan_in)
        offset += fan_in * fan_out
        bias = flat[offset:offset + fan_out]
        offset += fan_out
        layers.append((weight, bias))
    if offset != len(flat):
        raise ValueError("%d parameters for hidden sizes %s, expected %d" %
                         (len(flat), hidden, offset))
    return layers


def forward(layers, images):
    """Logits of images (u8) through ReLU layers, in float32 numpy."""
    x = images.astype(np.float32) / 255
    for index, (weight, bias) in enumerate(layers):
        x = x @ weight.T + bias
        if index + 1 < len(layers):
            x = np.maximum(x, 0)
    return x
