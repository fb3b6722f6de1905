#!/usr/bin/python3
"""Issue 11's federated targets, measured in one run (not a test):

  1. IID: the 2NN (784-200-200-10, lr 0.05, batch 32, 1 local epoch) on
     5 sites of an IID split of Fashion-MNIST's 60,000 images, fedavg, one
     --rounds job (default 20): test accuracy per round, against
     centralised training of the same model and recipe on all 60,000
     images for the same total epochs (zfed-bench-mlp: round r of 5 sites
     x 1 epoch over a fifth of the data each is one epoch of the data);
     and the same with server momentum (fedavgm, server lr 1, beta1 0.5);
  2. non-IID labels:2 (McMahan et al.: 2 classes per site): fedavg,
     fedavgm (beta1 0.9, as Hsu et al. 2019, and 0.5) and fedadam (server
     lr 0.01), --noniid-rounds rounds each, accuracy per round beside the
     IID runs';
  3. time: the IID job's wall time and the share of it spent outside
     training (transfer, aggregation, evaluation, records): 1 - the sum
     over rounds of the slowest site's compute time / the job's wall time;
     the rest split into what the records say (aggregation pass,
     evaluation, the round's wait beyond its slowest training).  The job
     runs as the controller runs it by default (round r's model evaluated
     while round r + 1 trains) and with --eval-inline (evaluated between
     rounds, every site waiting), back to back, and with --baseline DIR
     also with DIR's zfed-controller (another build: "before");
     --time-only runs just these IID jobs (--repeat N times each,
     interleaved);
  4. a site's local epoch: zfed's C trainer vs numpy (OpenBLAS) and
     PyTorch CPU on the same 12,000 images, 1 thread each (what a site's
     worker runs on), median of --timed epochs; and the C trainer with
     plain loops in place of OpenBLAS (what OpenBLAS is worth).

    bench/mlp_bench.sh --fl [--rounds 20] [--noniid-rounds 20] [--out FILE]
    bench/mlp_bench.sh --fl --time-only [--repeat 2] [--baseline BUILD_DIR]

Every process runs on this machine: 5 site workers, the broker and the
controller share its cores (the load is printed: other users' too).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FASHION = "/usr/share/datasets/fashion-mnist"
PYTHON = "/usr/bin/python3"
sys.path.insert(0, HERE)
from mlp_bench import environment, run_lines  # noqa: E402


def load():
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


class Cluster:
    """A broker and one worker per site of each split, in a folder."""

    def __init__(self, build, work):
        self.build, self.work, self.processes = build, work, []
        endpoint_file = os.path.join(work, "endpoint")
        self.start("broker", [self.program("zfed-broker"), "--bind", "tcp://127.0.0.1:*",
                              "--endpoint-file", endpoint_file])
        for _ in range(200):
            if os.path.exists(endpoint_file) and os.path.getsize(endpoint_file):
                break
            time.sleep(0.05)
        with open(endpoint_file) as handle:
            self.endpoint = handle.readline().strip()

    def program(self, name):
        return os.path.join(self.build, name)

    def start(self, name, argv):
        log = open(os.path.join(self.work, name + ".log"), "w")
        self.processes.append(subprocess.Popen(argv, stdout=log, stderr=log))

    def split(self, name, method, sites):
        """zfed-split shards named NAME-0.. with one worker each."""
        out = os.path.join(self.work, name)
        names = ["%s-%d" % (name, index) for index in range(sites)]
        subprocess.run([self.program("zfed-split"), "--sites", ",".join(names), "--method",
                        method, "--seed", "0", out], check=True, capture_output=True)
        for site in names:
            self.start(site, [self.program("zfed-worker"), "--connect", self.endpoint,
                              "--service", "mlp", "--site", site, "--data",
                              os.path.join(out, site), "--name", site])
        return os.path.join(out, "split.json")

    def job(self, job_id, split, rounds, *args, controller=None):
        started = time.monotonic()
        result = subprocess.run(
            [controller or self.program("zfed-controller"), "--connect", self.endpoint, "--workdir",
             os.path.join(self.work, "jobs"), "--job-id", job_id, "--service", "mlp",
             "--split", split, "--eval-data", FASHION, "--select", "test_accuracy:max",
             "--rounds", str(rounds), "--round-timeout", "600", "--no-progress"] + list(args),
            capture_output=True, text=True)
        wall = time.monotonic() - started
        if result.returncode != 0:
            sys.exit("fl_bench: job %s failed:\n%s" % (job_id, result.stderr))
        folder = os.path.join(self.work, "jobs", job_id)
        with open(os.path.join(folder, "summary.json")) as handle:
            summary = json.load(handle)
        records = []
        for name in sorted(os.listdir(os.path.join(folder, "rounds"))):
            with open(os.path.join(folder, "rounds", name)) as handle:
                records.append(json.load(handle))
        return {"wall_s": wall, "accuracy": [r["test_accuracy"] for r in summary["rounds"]],
                "loss": [r["test_loss"] for r in summary["rounds"]], "records": records}

    def close(self):
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def time_shares(run, inline):
    """Where the IID job's wall time went, in seconds.  Inline, every
    round's evaluation is outside its round (duration_us ends when the
    pass wrote the model) and before the next; pipelined, it overlaps the
    next round (its CPU time then slows the sites' training: compute_us
    says so) and only the last round's is waited for alone."""
    records = run["records"]
    training = sum(max(e["compute_us"] for e in r["results"]) for r in records) / 1e6
    rounds = sum(r["duration_us"] for r in records) / 1e6
    aggregation = sum(r["pass"]["duration_us"] for r in records) / 1e6
    evaluations = [r["eval_us"] / 1e6 for r in records]
    waited = sum(evaluations) if inline else evaluations[-1]
    return {"wall_s": run["wall_s"], "training_s": training, "rounds_s": rounds,
            "aggregation_s": aggregation, "evaluation_s": waited,
            "evaluation_overlapped_s": sum(evaluations) - waited,
            "rounds_beyond_training_s": rounds - training - aggregation,
            "outside_rounds_s": run["wall_s"] - rounds - waited,
            "outside_training_share": 1 - training / run["wall_s"]}


def print_shares(label, shares):
    print("%s: %.1f s wall; training (slowest site per round) %.1f s; outside training "
          "%.1f %%" % (label, shares["wall_s"], shares["training_s"],
                       100 * shares["outside_training_share"]))
    print("  aggregation passes %.3f s, evaluation waited for %.3f s (%.3f s more overlapped "
          "the next round), rounds beyond their slowest training and aggregation %.3f s, "
          "outside rounds (start, records, between rounds) %.3f s" % (
              shares["aggregation_s"], shares["evaluation_s"], shares["evaluation_overlapped_s"],
              shares["rounds_beyond_training_s"], shares["outside_rounds_s"]))


def time_only(args, work, loads):
    """The IID fedavg job, pipelined, inline and (--baseline) another
    build's controller, interleaved --repeat times."""
    cluster = Cluster(args.build, work)
    kinds = [("pipelined", [], None), ("--eval-inline", ["--eval-inline"], None)]
    if args.baseline:
        kinds.append(("baseline", [], os.path.join(args.baseline, "zfed-controller")))
    results = {label: [] for label, _, _ in kinds}
    try:
        iid = cluster.split("iid", "iid", args.sites)
        for repeat in range(args.repeat):
            for label, extra, controller in kinds:
                run = cluster.job("iid-%s-%d" % (label.strip("-"), repeat), iid, args.rounds,
                                  *extra, controller=controller)
                run["shares"] = time_shares(run, label != "pipelined")
                run["load"] = load()
                results[label].append(run)
    finally:
        cluster.close()
    loads["end"] = load()
    print("zfed federated benchmark, time only: IID, %d sites, %d rounds" % (args.sites,
                                                                           args.rounds))
    print("machine: %s, %d cores; load average (1, 5, 15 min): %s" % (
        platform.processor() or platform.machine(), os.cpu_count(),
        "; ".join("%s %s" % item for item in loads.items())))
    reference = results["--eval-inline"][0]
    for label, runs in results.items():
        for number, run in enumerate(runs):
            same = (run["accuracy"] == reference["accuracy"] and
                    run["loss"] == reference["loss"])
            print_shares("%s #%d (load after: %s; figures %s inline's)" % (
                label, number, run["load"], "equal to" if same else "DIFFER from"),
                run["shares"])
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({label: [{"wall_s": r["wall_s"], "shares": r["shares"], "load": r["load"],
                                "accuracy": r["accuracy"]} for r in runs]
                       for label, runs in results.items()} | {"load": loads}, handle, indent=2)
        print("\nresults: %s" % args.out)
    shutil.rmtree(work, ignore_errors=True)


def epoch_times(build, site, timed):
    systems = [("C zfed (OpenBLAS)", [os.path.join(build, "bench", "zfed-bench-mlp"),
                                      "--threads", "1", "--test", "none"]),
               ("numpy (OpenBLAS)", [PYTHON, os.path.join(HERE, "numpy_mlp.py"), "--threads",
                                     "1"]),
               ("PyTorch CPU", [PYTHON, os.path.join(HERE, "torch_mlp.py"), "--threads", "1"]),
               ("C plain loops", [os.path.join(build, "bench", "zfed-bench-mlp-loops"),
                                  "--test", "none"])]
    samples = {label: [] for label, _ in systems}
    for _ in range(2):  # interleaved: a neighbour's burst touches every system
        for label, command in systems:
            lines = run_lines(command + ["--train", site, "--epochs", str(timed + 1)],
                              env=environment())
            samples[label] += [line["seconds"] for line in lines[1:]]
    return {label: {"median_s": statistics.median(values), "min_s": min(values)}
            for label, values in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--noniid-rounds", type=int, default=20)
    parser.add_argument("--sites", type=int, default=5)
    parser.add_argument("--timed", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--time-only", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--baseline", default=None)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="zfed-fl-bench-")
    loads = {"start": load()}
    if args.time_only:
        return time_only(args, work, loads)
    cluster = Cluster(args.build, work)
    try:
        iid = cluster.split("iid", "iid", args.sites)
        noniid = cluster.split("lab", "labels:2", args.sites)
        runs = {"iid fedavg": cluster.job("iid-fedavg", iid, args.rounds)}
        inline = cluster.job("iid-fedavg-inline", iid, args.rounds, "--eval-inline")
        runs["iid fedavgm b.5"] = cluster.job("iid-fedavgm", iid, args.rounds, "--aggregate",
                                              "fedavgm", "--beta1", "0.5")
        loads["after iid"] = load()
        for name, extra in (("fedavg", []),
                            ("fedavgm b.9", ["--aggregate", "fedavgm", "--beta1", "0.9"]),
                            ("fedavgm b.5", ["--aggregate", "fedavgm", "--beta1", "0.5"]),
                            ("fedadam", ["--aggregate", "fedadam", "--server-lr", "0.01"])):
            runs["labels:2 " + name] = cluster.job("lab-" + name.replace(" ", "-"), noniid,
                                                   args.noniid_rounds, *extra)
        loads["after non-iid"] = load()
    finally:
        cluster.close()
    centralised = run_lines([os.path.join(args.build, "bench", "zfed-bench-mlp"), "--train",
                             FASHION, "--test", FASHION, "--epochs", str(args.rounds)])
    epochs = epoch_times(args.build, os.path.join(work, "iid", "iid-0"), args.timed)
    loads["end"] = load()
    shares = time_shares(runs["iid fedavg"], False)
    inline_shares = time_shares(inline, True)

    print("zfed federated benchmark: 2NN, lr 0.05, batch 32, 1 local epoch, %d sites" %
          args.sites)
    print("machine: %s, %d cores; load average (1, 5, 15 min): %s" % (
        platform.processor() or platform.machine(), os.cpu_count(),
        "; ".join("%s %s" % item for item in loads.items())))
    print()
    print("test accuracy per round (10,000 test images); centralised: epoch r+1 on 60,000")
    names = list(runs)
    print("%5s %12s " % ("round", "centralised") + " ".join("%17s" % n for n in names))
    for index in range(max(len(r["accuracy"]) for r in runs.values())):
        cells = ["%17s" % ("%.4f" % runs[n]["accuracy"][index]
                           if index < len(runs[n]["accuracy"]) else "") for n in names]
        central = centralised[index]["test_accuracy"] if index < len(centralised) else None
        print("%5d %12s " % (index, "%.4f" % central if central else "") + " ".join(cells))
    for name in ("iid fedavg", "iid fedavgm b.5"):
        accuracy = runs[name]["accuracy"]
        for rounds in sorted({10, args.rounds}):
            if rounds <= len(accuracy) and rounds <= len(centralised):
                central = centralised[rounds - 1]["test_accuracy"]
                print("after %d rounds: %s %.4f, centralised %d epochs %.4f: %+.2f points" % (
                    rounds, name, accuracy[rounds - 1], rounds, central,
                    100 * (accuracy[rounds - 1] - central)))
    for name in names:
        accuracy = runs[name]["accuracy"]
        print("%-18s final %.4f, best %.4f (round %d)" % (
            name, accuracy[-1], max(accuracy), accuracy.index(max(accuracy))))
    print()
    print_shares("IID job, %d rounds, evaluation while the next round trains" % args.rounds,
                 shares)
    print_shares("the same job with --eval-inline, next (figures %s)" % (
        "equal" if inline["accuracy"] == runs["iid fedavg"]["accuracy"] else "DIFFER"),
        inline_shares)
    print()
    print("a site's local epoch (12,000 images), 1 thread, median of %d:" % (2 * args.timed))
    numpy = epochs["numpy (OpenBLAS)"]["median_s"]
    for label, figures in epochs.items():
        print("  %-18s %7.3f s (min %.3f)  %.2fx numpy" % (label, figures["median_s"],
                                                          figures["min_s"],
                                                          figures["median_s"] / numpy))
    result = {"runs": {n: {k: v for k, v in r.items() if k != "records"} for n, r in runs.items()},
              "centralised": centralised, "time": shares, "time_inline": inline_shares,
              "epoch": epochs, "load": loads}
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)
        print("\nresults: %s" % args.out)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
