#!/usr/bin/python3
"""What binding a reply to its request costs (PROTOCOL.md 3.1), on the
small-task path: zfed-bench-load against zfed's real broker and fib
workers, with and without a ticket on every request (the broker then
stamps each reply, the client checks each stamp), alternated in one run so
both see the same machine.

    bench/binding_bench.py [--build DIR] [--workers N] [--pairs P]

Prints, per mode (a 5-task round's latency; a stream of 256 in flight),
the median of P runs each way and the ratio with tickets / without.
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
            for _ in range(args.pairs):
                for tickets in (False, True):
                    out = subprocess.run([load, "--connect", endpoint] + argv +
                                         (["--tickets"] if tickets else []),
                                         capture_output=True, text=True, timeout=120, check=True)
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    if result.get("errors"):
                        sys.exit("%s: %d errors" % (name, result["errors"]))
                    runs[tickets].append(pick(result))
            plain, bound = statistics.median(runs[False]), statistics.median(runs[True])
            print("%-26s without %10.1f   with tickets %10.1f   ratio %.3f"
                  % (name, plain, bound, bound / plain))
    finally:
        for process in (worker, broker):
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
