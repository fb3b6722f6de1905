"""The command line bench/numpy_mlp.py and bench/torch_mlp.py share (the
recipe of issue 11: lr 0.05, batch 32, hidden 200,200).  No numpy here:
numpy_mlp.py must set OPENBLAS_NUM_THREADS before numpy loads."""

import argparse


def parser(doc):
    """An argparse parser with the shared options; add more, then parse."""
    made = argparse.ArgumentParser(description=doc.split("\n")[0])
    made.add_argument("--train", required=True, help="folder with train-*-ubyte(.gz)")
    made.add_argument("--test", default=None, help="folder with t10k-*-ubyte(.gz)")
    made.add_argument("--epochs", type=int, default=1)
    made.add_argument("--lr", type=float, default=0.05)
    made.add_argument("--batch-size", type=int, default=32)
    made.add_argument("--hidden", default="200,200")
    made.add_argument("--seed", type=int, default=0)
    made.add_argument("--threads", type=int, default=None)
    return made
