"""5-task rounds through the real zfed-controller, the job folder where you say.

    /usr/bin/python3 bench/round5.py --build build-bench [--folder /dev/shm] [--pairs 5]
        [--against /tmp/build-main] [--strace] [--sync round|overlap|group]
        [--sync-interval-ms MS] [--against-sync MODE]

A zfed-broker, one zfed-worker serving 5 tasks at once (--threads 0), then
a job of 20 + --rounds rounds of 5 fib tasks (level 10); prints the p50 and
mean of the records' duration_us after the first 20, and the wall time per
round (the round plus what the controller does between two rounds: the
record, its durability).  Each pair runs the job folder on ext4 (/tmp) and
on --folder (tmpfs by default), and --against another build's programs
beside, alternating, so a noisy machine's drift falls on both.  --strace
counts the controller's fsync, rename and openat calls (strace -c -f).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

WARMUP = 20


def run(build, folder, rounds, strace, extra):
    work = tempfile.mkdtemp(prefix="round5-", dir=folder)
    endpoint_file = os.path.join(work, "endpoint")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    stack = [subprocess.Popen([os.path.join(build, "zfed-broker"), "-q", "--bind",
                               "tcp://127.0.0.1:*", "--endpoint-file", endpoint_file], **quiet)]
    try:
        deadline = time.monotonic() + 10
        while not (os.path.exists(endpoint_file) and open(endpoint_file).read().strip()):
            if time.monotonic() > deadline:
                raise RuntimeError("the broker did not start")
            time.sleep(0.02)
        endpoint = open(endpoint_file).read().strip()
        stack.append(subprocess.Popen([os.path.join(build, "zfed-worker"), "-q", "--connect",
                                       endpoint, "--concurrency", "5", "--threads", "0",
                                       "--name", "w"], **quiet))
        time.sleep(1.0)  # registered (the first round would wait for it anyway)
        argv = [os.path.join(build, "zfed-controller"), "--connect", endpoint, "--workdir",
                os.path.join(work, "jobs"), "--job-id", "j", "--rounds", str(rounds + WARMUP),
                "--tasks", "5", "--level", "10", "--no-progress", "-q",
                "--round-timeout", "120"] + extra
        counts = os.path.join(work, "strace")
        if strace:
            argv = ["strace", "-c", "-f", "-e", "trace=fsync,fdatasync,rename,openat", "-o",
                    counts] + argv
        started = time.monotonic()
        code = subprocess.run(argv).returncode
        wall = time.monotonic() - started
        if code != 0:
            raise RuntimeError("the controller exited %d" % code)
        durations = []
        for number in range(WARMUP, WARMUP + rounds):
            with open(os.path.join(work, "jobs", "j", "rounds",
                                   "round-%06d.json" % number)) as handle:
                durations.append(json.load(handle)["duration_us"] / 1000)
        return {"p50": statistics.median(durations), "mean": statistics.mean(durations),
                "wall": wall * 1000 / (rounds + WARMUP), "load": os.getloadavg()[0],
                "strace": open(counts).read() if strace else ""}
    finally:
        for process in stack:
            process.terminate()
            process.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True)
    parser.add_argument("--against", help="another build folder, run beside --build")
    parser.add_argument("--folder", default="/dev/shm", help="the second job folder's place")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--strace", action="store_true")
    parser.add_argument("--sync", choices=("round", "overlap", "group"))
    parser.add_argument("--sync-interval-ms", type=int,
                        help="with --sync group: the controller's --sync-interval-ms")
    parser.add_argument("--against-sync", choices=("round", "overlap", "group"),
                        help="--against's --sync (default: as --sync); --against may be"
                        " --build itself, to compare two modes of one build")
    args = parser.parse_args()

    def sync_argv(mode):
        argv = ["--sync", mode] if mode else []
        if mode == "group" and args.sync_interval_ms:
            argv += ["--sync-interval-ms", str(args.sync_interval_ms)]
        return argv

    runs = [(args.build, sync_argv(args.sync))]
    if args.against:
        runs.append((args.against, sync_argv(args.against_sync or args.sync)))
    cells = {}
    for _ in range(args.pairs):
        for build, extra in runs:
            label = build + ("" if not extra else " " + " ".join(extra[1::2]))
            for folder in ("/tmp", args.folder):
                result = run(build, folder, args.rounds, args.strace, extra)
                cells.setdefault((label, folder), []).append(result)
                print("%-28s %-9s p50 %6.3f ms  mean %6.3f ms  wall %6.3f ms a round  load %.2f"
                      % (label, folder, result["p50"], result["mean"], result["wall"],
                         result["load"]), flush=True)
                if result["strace"]:
                    print(result["strace"])
    print("\nmedians over %d runs:" % args.pairs)
    for (build, folder), results in cells.items():
        print("%-28s %-9s p50 %6.3f ms  wall %6.3f ms a round  load %.1f-%.1f"
              % (build, folder, statistics.median(r["p50"] for r in results),
                 statistics.median(r["wall"] for r in results),
                 min(r["load"] for r in results), max(r["load"] for r in results)))


if __name__ == "__main__":
    main()
