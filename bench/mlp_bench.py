#!/usr/bin/python3
"""Issue 11's reference numbers for the MLP, measured in one run:

  1. a site's local epoch: the 2NN (784-200-200-10, lr 0.05, batch 32) over
     the 12,000 images of site-0 of an IID split into 5 (zfed-split),
     in zfed's C trainer (zfed-bench-mlp), in numpy (bench/numpy_mlp.py) and
     in PyTorch on the CPU (bench/torch_mlp.py), on 1 thread each and on
     each library's default thread count; plus the C trainer with plain
     loops instead of OpenBLAS (zfed-bench-mlp-loops);
  2. centralised training: the same model and recipe on all 60,000 images
     for --epochs epochs (default 10), test accuracy after each.

    bench/mlp_bench.sh [--epochs 10] [--runs 2] [--timed 3] [--out FILE]

Every program runs --timed + 1 epochs per run (the first, warm-up epoch is
dropped: torch and numpy allocate and dispatch on it) and --runs runs,
interleaved, so a neighbour's burst of load touches every system; each
figure is the median of its timed epochs, with the minimum beside it.
"seconds" always covers the epoch alone (the data already in memory).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FASHION = "/usr/share/datasets/fashion-mnist"
PYTHON = "/usr/bin/python3"


def run_lines(command, env=None):
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit("mlp_bench: %s failed:\n%s" % (" ".join(command), result.stderr))
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def environment():
    """This environment less any thread settings: each program gets its
    threads from its own flag, or its library's default."""
    return {k: v for k, v in os.environ.items()
            if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    parser.add_argument("--epochs", type=int, default=10, help="centralised epochs")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--timed", type=int, default=3, help="timed epochs per run")
    parser.add_argument("--out", default=None, help="JSON results file")
    args = parser.parse_args()
    c_trainer = os.path.join(args.build, "bench", "zfed-bench-mlp")
    c_loops = os.path.join(args.build, "bench", "zfed-bench-mlp-loops")
    cores = os.cpu_count()

    work = tempfile.mkdtemp(prefix="zfed-mlp-bench-")
    split = os.path.join(work, "split")
    subprocess.run([os.path.join(args.build, "zfed-split"), "--sites", "5", "--method", "iid",
                    "--seed", "0", split], check=True, capture_output=True)
    site = os.path.join(split, "site-0")
    epochs = str(args.timed + 1)

    # (label, library, threads asked (None: the library's default), command)
    systems = [
        ("C zfed (OpenBLAS)", "c", 1, [c_trainer, "--threads", "1"]),
        ("numpy (OpenBLAS)", "numpy", 1, [PYTHON, os.path.join(HERE, "numpy_mlp.py"),
                                          "--threads", "1"]),
        ("PyTorch CPU", "torch", 1, [PYTHON, os.path.join(HERE, "torch_mlp.py"), "--threads",
                                     "1"]),
        ("C zfed (OpenBLAS)", "c", cores, [c_trainer, "--threads", str(cores)]),
        ("numpy (OpenBLAS)", "numpy", None, [PYTHON, os.path.join(HERE, "numpy_mlp.py")]),
        ("PyTorch CPU", "torch", None, [PYTHON, os.path.join(HERE, "torch_mlp.py")]),
    ]
    samples = {index: [] for index in range(len(systems))}
    threads_seen = {}
    for _ in range(args.runs):
        for index, (_, _, threads, command) in enumerate(systems):
            lines = run_lines(command + ["--train", site, "--epochs", epochs],
                              env=environment())
            samples[index] += [line["seconds"] for line in lines[1:]]
            threads_seen[index] = lines[-1].get("threads", threads)
    loops = run_lines([c_loops, "--train", site, "--epochs", "2", "--test", "none"])
    loops_seconds = loops[-1]["seconds"]

    centralised = run_lines([c_trainer, "--train", FASHION, "--test", FASHION, "--epochs",
                             str(args.epochs)])

    rows = []
    for index, (label, library, asked, _) in enumerate(systems):
        rows.append({"system": label, "library": library,
                     "threads": threads_seen[index] if threads_seen[index] else asked,
                     "default": asked is None or library == "c" and asked == 1,
                     "median_s": statistics.median(samples[index]),
                     "min_s": min(samples[index]), "epochs": len(samples[index])})
    numpy_by_threads = {row["threads"]: row["median_s"] for row in rows
                        if row["library"] == "numpy"}

    print("MLP epoch: 2NN 784-200-200-10, lr 0.05, batch 32, 12,000 images (site-0 of an "
          "IID split into 5)")
    print("machine: %s, %d cores, %s; median of %d timed epochs (min beside it)" %
          (platform.processor() or platform.machine(), cores, platform.python_version(),
           args.runs * args.timed))
    print("%-20s %12s %10s %10s %14s" % ("system", "threads", "median s", "min s",
                                       "x numpy (same)"))
    for row in rows:
        reference = numpy_by_threads.get(row["threads"])
        ratio = "%.2fx" % (row["median_s"] / reference) if reference else "-"
        print("%-20s %12s %10.3f %10.3f %14s" % (row["system"], "%d%s" % (
            row["threads"], " (default)" if row["default"] else ""), row["median_s"],
            row["min_s"], ratio))
    print("%-20s %12s %10.3f %10s %14s" % ("C plain loops", "1", loops_seconds, "", "%.2fx" % (
        loops_seconds / numpy_by_threads[1])))
    c_default = next(row for row in rows if row["library"] == "c" and row["default"])
    numpy_default = next(row for row in rows if row["library"] == "numpy" and row["default"])
    torch_default = next(row for row in rows if row["library"] == "torch" and row["default"])
    print("defaults: C %.3f s, numpy %.3f s, torch %.3f s: C/numpy %.2fx, C/torch %.2fx" % (
        c_default["median_s"], numpy_default["median_s"], torch_default["median_s"],
        c_default["median_s"] / numpy_default["median_s"],
        c_default["median_s"] / torch_default["median_s"]))
    print("OpenBLAS over plain loops: %.1fx" % (loops_seconds / rows[0]["median_s"]))
    print()
    print("centralised: 60,000 images, %d epochs, test accuracy per epoch (10,000 images)" %
          args.epochs)
    for line in centralised:
        print("  epoch %2d  %6.3f s  train loss %.4f  test loss %.4f  test accuracy %.4f" % (
            line["epoch"], line["seconds"], line["train_loss"], line["test_loss"],
            line["test_accuracy"]))
    result = {"epoch": rows, "plain_loops_s": loops_seconds, "centralised": centralised}
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)
        print("\nresults: %s" % args.out)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
