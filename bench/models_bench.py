#!/usr/bin/python3
"""A big global model to N C workers through the C broker, and back.

    bench/models_bench.py [--build build] [--size 1GiB] [--workers 1,5] [--fetch-results]

For each worker count: a zfed-broker, that many zfed-worker processes
(tensoravg), and zfed-bench-models, which holds a global model of --size
bytes in its own blob service and sends one task per worker; each worker
fetches the model in 4 MiB chunks through the broker, verifies its
SHA-256, adds 0.5 to every element and holds its result; with
--fetch-results the driver reads every result back at once, as a
controller's pass does.  Printed per run: the driver's figures, each
worker's fetch time (from its log), and the peak RSS (VmHWM) of the broker
and of each worker, read from /proc before they stop.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

WORKER_ARGS = os.environ.get("ZFED_WORKER_ARGS", "").split()


def peak_rss_mib(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def run(build, size, workers, fetch_results):
    folder = tempfile.mkdtemp(prefix="zfed-models-bench-")
    endpoint_file = os.path.join(folder, "endpoint")
    logs = []

    def start(name, argv):
        log = open(os.path.join(folder, name + ".log"), "w")
        logs.append(log.name)
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    broker = start("broker", [os.path.join(build, "zfed-broker"), "--bind", "tcp://127.0.0.1:*",
                              "--endpoint-file", endpoint_file, "-q"])
    deadline = time.monotonic() + 10
    while not os.path.exists(endpoint_file) and time.monotonic() < deadline:
        time.sleep(0.02)
    with open(endpoint_file) as handle:
        endpoint = handle.readline().strip()
    procs = [start("worker-%d" % index, [os.path.join(build, "zfed-worker"), "--connect", endpoint,
                                         "--service", "tensoravg", "--name", "w%d" % index] + WORKER_ARGS)
             for index in range(workers)]
    time.sleep(0.5)
    argv = [os.path.join(build, "bench", "zfed-bench-models"), "--connect", endpoint, "--size", str(size),
            "--tasks", str(workers)] + (["--fetch-results"] if fetch_results else [])
    started = time.monotonic()
    driver = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - started
    figures = json.loads(driver.stdout.strip().splitlines()[-1]) if driver.stdout else {}
    figures["driver_rc"] = driver.returncode
    figures["elapsed_s"] = round(elapsed, 2)
    figures["broker_peak_rss_mib"] = round(peak_rss_mib(broker.pid), 1)
    figures["worker_peak_rss_mib"] = [round(peak_rss_mib(p.pid), 1) for p in procs]
    for process in procs + [broker]:
        process.send_signal(signal.SIGTERM)
    for process in procs + [broker]:
        process.wait(10)
    fetches = []
    for name in logs[1:]:
        with open(name) as handle:
            match = re.search(r"fetched global model .* in ([0-9.]+) s \(([0-9]+) MB/s\)",
                              handle.read())
        if match:
            fetches.append({"seconds": float(match.group(1)), "mb_s": int(match.group(2))})
    figures["worker_fetches"] = fetches
    if driver.returncode != 0:
        figures["driver_stderr"] = driver.stderr[-2000:]
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--size", default=str(1 << 30), help="bytes (default 1 GiB)")
    parser.add_argument("--workers", default="1,5")
    parser.add_argument("--fetch-results", action="store_true")
    args = parser.parse_args()
    size = int(args.size)
    for count in [int(n) for n in args.workers.split(",")]:
        figures = run(args.build, size, count, args.fetch_results)
        figures["workers"] = count
        print(json.dumps(figures))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
