"""Per-process CPU per task, zfed against its like-for-like baseline, back to back.

    /usr/bin/python3 bench/procs.py --build build-bench --path batch8 [--tasks 100000]

One stack of each (bench.py's: a broker and 5 worker processes), a warm-up
round and a measured round of --tasks tasks each (zfed through the real
zfed-controller, the baseline's load tool with the controller's window),
and the user and system CPU each process spent, from /proc (the load side
from this process's children), per task driven.  Noisy like every figure
on a shared machine: read the load averages printed beside it.
"""
import argparse
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

PATHS = {"strict": (1, 1), "credit8": (8, 1), "batch8": (8, 8)}


def cpu(pid):
    """(user, system) seconds of a live process."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / B.TICKS, int(fields[12]) / B.TICKS
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(B.ROOT, "build-bench"))
    parser.add_argument("--path", choices=sorted(PATHS), default="batch8")
    parser.add_argument("--tasks", type=int, default=100000)
    parser.add_argument("--sync", choices=("overlap", "round", "group"),
                        help="zfed-controller's --sync (default: the controller's, overlap)")
    args = parser.parse_args()
    credit, batch = PATHS[args.path]
    bench = B.Bench(types.SimpleNamespace(build=args.build, curve=False, quick=False,
                                          like_tasks=args.tasks, sync=args.sync))
    load = {"name": "round", "mode": "round", "tasks": args.tasks, "rounds": 1, "warmup": 1,
            "big": True}
    print("loadavg", " ".join(open("/proc/loadavg").read().split()[:3]))
    for kind in ("baseline", "zfed"):
        system = {"name": kind, "kind": kind, "credit": credit, "batch": batch}
        with B.Stack(bench, system, 5) as stack:
            pids = stack.pids()
            before = {pid: cpu(pid) for pid in pids}
            run = bench.run_baseline_load if kind == "baseline" else bench.run_zfed_load
            result = run(stack, load)
            after = {pid: cpu(pid) for pid in pids}
        tasks = result.get("measured_tasks", 2 * args.tasks)

        def share(group, field):
            return sum(after[pid][field] - before[pid][field] for pid in group) * 1e6 / tasks

        broker, workers = pids[:1], pids[1:]
        load_side = result["load_cpu_us_per_task"]
        total = share(broker, 0) + share(broker, 1) + share(workers, 0) + share(workers, 1)
        print("%-8s %-8s %8.0f tasks/s  CPU us/task: broker %.2f (user %.2f sys %.2f)  "
              "workers %.2f (user %.2f sys %.2f)  %s %.2f (user %.2f sys %.2f)  all %.2f" % (
                  args.path, kind, result["tasks_per_s"], share(broker, 0) + share(broker, 1),
                  share(broker, 0), share(broker, 1), share(workers, 0) + share(workers, 1),
                  share(workers, 0), share(workers, 1),
                  "load tool" if kind == "baseline" else "controller", load_side,
                  result.get("load_user_us_per_task", 0.0), result.get("load_sys_us_per_task", 0.0),
                  total + load_side))
    print("loadavg", " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
