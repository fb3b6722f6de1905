#!/usr/bin/python3
"""The 2NN epoch in PyTorch on the CPU (Debian's python3-torch), beside
bench/numpy_mlp.py and zfed's C trainer in bench/mlp_bench.sh.

    bench/torch_mlp.py --train DIR [--test DIR] [--epochs E] [--threads T]
                       [--dataloader]

nn.Linear layers fc1..fc3 (torch's own default initialisation: uniform in
+-1/sqrt(fan_in)), ReLU, nn.CrossEntropyLoss (mean over the batch),
torch.optim.SGD with lr 0.05, batch 32.  By default the batches are taken
by indexing one float32 tensor with a fresh permutation each epoch (what a
user who cares about speed writes); --dataloader uses
DataLoader(TensorDataset, shuffle=True) as the tutorials do, which collates
sample by sample and is slower.  The images become float32 / 255 before
the clock starts.  --threads calls torch.set_num_threads; without it torch
uses its default (one thread per core).  One JSON line per epoch.
"""

import json
import sys
import time

import torch
from torch import nn

import mlp_args
import mlp_data


class MLP(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        sizes = mlp_data.layer_sizes(hidden)
        self.layers = len(sizes) - 1
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            setattr(self, "fc%d" % (index + 1), nn.Linear(fan_in, fan_out))

    def forward(self, x):
        for index in range(1, self.layers + 1):
            x = getattr(self, "fc%d" % index)(x)
            if index < self.layers:
                x = torch.relu(x)
        return x


def main():
    parser = mlp_args.parser(__doc__)
    parser.add_argument("--dataloader", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images, labels = mlp_data.load_set(args.train)
    x_all = torch.from_numpy(images.astype("float32") / 255)
    y_all = torch.from_numpy(labels.astype("int64"))
    model = MLP([int(h) for h in args.hidden.split(",")])
    optimiser = torch.optim.SGD(model.parameters(), lr=args.lr)
    criterion = nn.CrossEntropyLoss()
    test = mlp_data.load_set(args.test, "t10k") if args.test else None
    n = len(y_all)
    loader = None
    if args.dataloader:
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_all, y_all),
                                             batch_size=args.batch_size, shuffle=True)
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        loss_sum, correct = 0.0, 0
        if loader is None:
            order = torch.randperm(n)
            batches = ((x_all[index], y_all[index])
                       for index in torch.split(order, args.batch_size))
        else:
            batches = loader
        for x, y in batches:
            optimiser.zero_grad()
            logits = model(x)
            loss = criterion(logits, y)
            loss.backward()
            optimiser.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(dim=1) == y).sum())
        seconds = time.perf_counter() - started
        line = {"epoch": epoch, "seconds": seconds, "samples": n, "train_loss": loss_sum / n,
                "train_accuracy": correct / n, "threads": torch.get_num_threads()}
        if test:
            with torch.no_grad():
                logits = model(torch.from_numpy(test[0].astype("float32") / 255))
            line["test_accuracy"] = float((logits.argmax(dim=1).numpy() == test[1]).mean())
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    sys.exit(main())
