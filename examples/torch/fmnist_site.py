"""One site of the Fashion-MNIST 2NN, trained in PyTorch: the zfed "mlp"
service as a Python function (McMahan et al.'s 2NN: fc1 784->200, fc2
200->200, fc3 200->10, ReLU; plain SGD, with the momentum and weight decay
the task asks for; inputs pixels/255).

    FMNIST_SHARDS=SHARDS zfed-py-worker fmnist_site:train --connect EP --site site-1

SHARDS is a folder zfed-split wrote: SHARDS/SITE/train-images-idx3-ubyte.gz
and train-labels-idx1-ubyte.gz, this site's images, read once per process.
The controller (zfed-controller --service mlp --split SHARDS/split.json)
sends round r's task of site S to mlp@S with the mlp params (every key
written out: hidden, lr, batch_size, local_epochs, momentum, weight_decay,
seed) and the global model named as torch's nn.Linear names it
(fc1.weight [200, 784], fc1.bias [200], ...); the function answers with
the trained model, the shard's size as its weight, the shard's SHA-256
(of its pixel bytes, then its label bytes: the controller checks it
against the split's entry for the site) and the train loss and accuracy
of its last local epoch.  torch's threads: OMP_NUM_THREADS."""

import functools
import gzip
import hashlib
import math
import os
import zlib

import numpy as np
import torch
from torch import nn

import zfed

INPUTS, CLASSES = 784, 10


class Net(nn.Module):
    """784 -> hidden... -> 10 with ReLU between; its state_dict names are
    fc1.weight, fc1.bias, ..., fcK.bias, those of the mlp service."""

    def __init__(self, hidden=(200, 200)):
        super().__init__()
        sizes = [INPUTS] + list(hidden) + [CLASSES]
        self.layers = len(sizes) - 1
        for number in range(self.layers):
            setattr(self, "fc%d" % (number + 1), nn.Linear(sizes[number], sizes[number + 1]))

    def forward(self, x):
        for number in range(1, self.layers + 1):
            x = getattr(self, "fc%d" % number)(x)
            if number < self.layers:
                x = torch.relu(x)
        return x


def read_idx(path):
    """An IDX file (gzip or not) as a numpy array of its shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def read_set(folder, prefix, digest=False):
    """(images as float32 pixels/255 [N, 784], labels int64 [N]) of
    folder/PREFIX-images-idx3-ubyte(.gz) and PREFIX-labels-idx1-ubyte(.gz),
    and with digest the set's SHA-256 (pixels, then labels) in hex."""
    def find(kind):
        for name in ("%s-%s-ubyte.gz" % (prefix, kind), "%s-%s-ubyte" % (prefix, kind)):
            if os.path.exists(os.path.join(folder, name)):
                return os.path.join(folder, name)
        raise FileNotFoundError("%s: no %s-%s-ubyte(.gz)" % (folder, prefix, kind))
    images = read_idx(find("images-idx3")).reshape(-1, INPUTS)
    labels = read_idx(find("labels-idx1"))
    tensors = (torch.tensor(images, dtype=torch.float32) / 255,
               torch.tensor(labels, dtype=torch.int64))
    if digest:
        return tensors + (hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest(),)
    return tensors


@functools.lru_cache(maxsize=1)
def shard(site):
    """This site's training images, read once per process (500, field
    "data", when it has none: schemas/SERVICES.md 2.6)."""
    folder = os.path.join(os.environ.get("FMNIST_SHARDS", "shards"), site or "")
    try:
        return read_set(folder, "train", digest=True)
    except (OSError, ValueError, EOFError) as failure:
        raise zfed.ServiceError(500, "no shard for site %s: %s (FMNIST_SHARDS)"
                                % (site, failure), field="data") from failure


def accuracy(net, images, labels):
    """(correct, count) of net on the set, in batches."""
    correct = 0
    with torch.no_grad():
        for batch in torch.arange(len(labels)).split(4096):
            correct += int((net(images[batch]).argmax(1) == labels[batch]).sum())
    return correct, len(labels)


def load_state(net, model):
    """The global model (name -> numpy array) into net, after checking it is
    the layout the task's hidden sizes ask for (422 naming "global" if not)."""
    want = net.state_dict()
    if list(model) != list(want):
        raise zfed.ParamError("global", "tensors %s where hidden asks for %s"
                              % (list(model), list(want)))
    for name, tensor in want.items():
        if tuple(model[name].shape) != tuple(tensor.shape) or model[name].dtype != np.float32:
            raise zfed.ParamError("global", "tensor %s is %s %s where hidden asks for F32 %s"
                                  % (name, model[name].dtype, list(model[name].shape),
                                     list(tensor.shape)))
    net.load_state_dict({name: torch.tensor(array) for name, array in model.items()})


@zfed.service("mlp")
def train(params, model, ctx):
    hidden = params.get("hidden", [200, 200])
    lr = params.get("lr", 0.05)
    batch_size = params.get("batch_size", 32)
    epochs = params.get("local_epochs", 1)
    net = Net(hidden)
    load_state(net, model)
    images, labels, digest = shard(ctx.site)
    # The shuffle depends on the job's seed, the round and the site, never
    # on the attempt: a task sent again trains to the same model.
    seed = zlib.crc32(("%d/%d/%s" % (params.get("seed", 0), ctx.round, ctx.site)).encode())
    order = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.SGD(net.parameters(), lr=lr, momentum=params.get("momentum", 0),
                                weight_decay=params.get("weight_decay", 0))
    for _ in range(epochs):
        loss_sum, correct = 0.0, 0
        for batch in torch.randperm(len(labels), generator=order).split(batch_size):
            out = net(images[batch])
            loss = nn.functional.cross_entropy(out, labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            loss_sum += loss.item() * len(batch)
            correct += int((out.argmax(1) == labels[batch]).sum())
    if not math.isfinite(loss_sum):
        raise zfed.ParamError("lr", "training diverged at lr %g (train loss %s): try a smaller lr"
                              % (lr, loss_sum))
    ctx.log.info("%s round %d: train loss %.4f, accuracy %.4f", ctx.site, ctx.round,
                 loss_sum / len(labels), correct / len(labels))
    new = {name: tensor.detach().numpy() for name, tensor in net.state_dict().items()}
    return new, len(labels), {"data_sha256": digest, "train_loss": loss_sum / len(labels),
                              "train_accuracy": correct / len(labels)}
