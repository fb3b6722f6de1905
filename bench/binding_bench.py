#!/usr/bin/python3
"""What binding a reply to its request costs (PROTOCOL.md 3.1), on the
small-task path: zfed-bench-load against zfed's real broker and fib
workers, with and without a ticket on every request (the broker then
stamps each reply, the client checks each stamp), alternated in one run so
both see the same machine.

    bench/binding_bench.py [--build DIR] [--workers N] [--pairs P]

Prints, per mode (a 5-task round's latency; a stream of 256 in flight),
the median of P runs each way, their ratio with tickets / without, and
the median (and range) of the P back-to-back pairs' ratios.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU of a live process, from /proc."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build"))
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="zfed-binding-")
    endpoint = "ipc://%s/broker" % folder
    null = subprocess.DEVNULL
    broker = subprocess.Popen([os.path.join(args.build, "zfed-broker"), "--bind", endpoint, "-q"],
                              stdout=null, stderr=null)
    worker = subprocess.Popen([os.path.join(args.build, "zfed-worker"), "--connect", endpoint,
                               "--concurrency", str(args.workers), "--threads", "0", "-q"],
                              stdout=null, stderr=null)
    load = os.path.join(args.build, "bench", "zfed-bench-load")
    modes = {"round5 p50 latency (us)": (["--mode", "round", "--tasks", "5", "--rounds", "400"],
                                         lambda r: r["latency_us"]["p50"]),
             "stream 256 (tasks/s)": (["--mode", "stream", "--outstanding", "256",
                                       "--seconds", "2"], lambda r: r["tasks_per_s"])}
    try:
        time.sleep(1.0)
        for name, (argv, pick) in modes.items():
            runs = {False: [], True: []}
            cpu = {False: [0.0, 0], True: [0.0, 0]}  # broker + client CPU s, tasks
            for _ in range(args.pairs):
                for tickets in (False, True):
                    before = cpu_seconds(broker.pid)
                    out = subprocess.run([load, "--connect", endpoint] + argv +
                                         (["--tickets"] if tickets else []),
                                         capture_output=True, text=True, timeout=120, check=True)
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    if result.get("errors"):
                        sys.exit("%s: %d errors" % (name, result["errors"]))
                    runs[tickets].append(pick(result))
                    cpu[tickets][0] += cpu_seconds(broker.pid) - before + result["cpu_s"]
                    cpu[tickets][1] += result["tasks"]
            plain, bound = statistics.median(runs[False]), statistics.median(runs[True])
            # Each pair ran back to back: its ratio is the least disturbed
            # by the machine's other load.
            pairs = sorted(b / a for a, b in zip(runs[False], runs[True]))
            print("%-26s without %10.1f   with tickets %10.1f   ratio %.3f   per pair %.3f "
                  "(%.3f-%.3f)" % (name, plain, bound, bound / plain, statistics.median(pairs),
                                   pairs[0], pairs[-1]))
            per_task = {key: 1e6 * spent / max(tasks, 1) for key, (spent, tasks) in cpu.items()}
            print("%-26s broker + client CPU per task: without %.1f us, with tickets %.1f us, "
                  "ratio %.3f" % (name, per_task[False], per_task[True],
                                  per_task[True] / per_task[False]))
    finally:
        for process in (worker, broker):
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
