#!/usr/bin/python3
"""zfed benchmark: zfed's real broker, workers and controller against a bare
libzmq baseline (bench/baseline.c), measured in the same run on loopback.

    scripts/bench.sh                 the full grid (about 2 minutes)
    scripts/bench.sh --quick         a smaller grid, under a minute
    scripts/bench.sh --scale         also 1,000 worker sockets, a 100,000-task
                                     round, 64 services, broker memory
    scripts/bench.sh --curve         also zfed with CurveZMQ

For every number of workers N and every load it starts a broker and N
worker sockets (spread over at most 5 processes, the same layout for both
systems), drives them, and stops them:

    round5     rounds of 5 tasks       round latency p50/p99 (and tasks/s)
    round1000  rounds of 1,000 tasks   round latency and tasks/s
    stream     256 tasks kept in flight tasks/s and per-task latency

and, on zfed's strict path with 5 workers, the demo job itself (5 rounds of
5 tasks at level 10, run_local.sh's job) from the controller's own summary:
its duration from start to the last record, process start excluded.

Systems: the baseline with one task per worker (credit 1) and with 8 in
flight per worker (credit 8); zfed over strict MDP (credit 1) and over its
fast path (workers announce credit 8).  zfed's rounds are run by
zfed-controller itself (round times from its own records), its stream by
zfed-bench-load (libzfed's client and codec).  Every zfed row is reported
as a ratio of the baseline row with the same N, load and credit.
"""

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICKS = os.sysconf("SC_CLK_TCK")
MAX_PROCESSES = 5
STREAM_OUTSTANDING = 256
CONTROLLER_WINDOW = 4096  # zfed-controller's default --window


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return 0
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def cpu_seconds(pids):
    """User + system CPU of live processes, from /proc."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICKS


def rss_peak_kb(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmHWM"):
                return int(line.split()[1])
    return 0


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


class Stack:
    """A broker and its workers for one system; stopped on exit."""

    def __init__(self, bench, system, workers):
        self.bench = bench
        self.system = system
        self.workers = workers
        self.processes = []
        self.endpoint = None

    def start(self, argv, **kwargs):
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True, **kwargs)
        self.processes.append(process)
        return process

    def __enter__(self):
        endpoint_file = os.path.join(self.bench.dir, "endpoint-%d" % time.monotonic_ns())
        credit = self.system["credit"]
        if self.system["kind"] == "baseline":
            broker = [self.bench.binary("zfed-bench-baseline"), "broker", "--bind",
                      "tcp://127.0.0.1:*", "--endpoint-file", endpoint_file]
        else:
            broker = [self.bench.binary("zfed-broker"), "-q", "--bind", "tcp://127.0.0.1:*",
                      "--endpoint-file", endpoint_file] + self.bench.broker_security(self.system)
        self.broker = self.start(broker)
        deadline = time.monotonic() + 10
        while not (os.path.exists(endpoint_file) and os.path.getsize(endpoint_file)):
            if time.monotonic() > deadline or self.broker.poll() is not None:
                raise RuntimeError("%s broker did not start" % self.system["name"])
            time.sleep(0.01)
        with open(endpoint_file) as handle:
            self.endpoint = handle.readline().strip()
        processes = min(self.workers, MAX_PROCESSES)
        for index in range(processes):
            count = self.workers // processes + (1 if index < self.workers % processes else 0)
            if self.system["kind"] == "baseline":
                argv = [self.bench.binary("zfed-bench-baseline"), "workers", "--connect",
                        self.endpoint, "--count", str(count), "--credit", str(credit)]
            else:
                argv = [self.bench.binary("zfed-worker"), "-q", "--connect", self.endpoint,
                        "--concurrency", str(count), "--threads", "0", "--credit", str(credit),
                        "--name", "bench-%d" % index] + self.bench.peer_security(self.system,
                                                                                 "worker")
            self.start(argv)
        self.bench.wait_ready(self)
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def pids(self):
        return [process.pid for process in self.processes if process.poll() is None]


class Bench:

    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.dir = tempfile.mkdtemp(prefix="zfed-bench-")
        self.rows = []
        self.demo = None
        self.keys = None
        if args.curve:
            self.make_keys()

    def binary(self, name):
        for folder in (self.build, os.path.join(self.build, "bench")):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                return path
        raise SystemExit("bench: %s not built in %s" % (name, self.build))

    # -- CURVE -------------------------------------------------------------

    def make_keys(self):
        keys = os.path.join(self.dir, "keys")
        for role in ("workers", "controllers"):
            os.makedirs(os.path.join(keys, role))
        keygen = self.binary("zfed-keygen")
        subprocess.run([keygen, "--dir", keys, "broker"], check=True, capture_output=True)
        subprocess.run([keygen, "--dir", os.path.join(keys, "workers"), "worker"], check=True,
                       capture_output=True)
        subprocess.run([keygen, "--dir", os.path.join(keys, "controllers"), "controller"],
                       check=True, capture_output=True)
        self.keys = keys

    def broker_security(self, system):
        if not system.get("curve"):
            return []
        return ["--curve-cert", os.path.join(self.keys, "broker.key_secret"), "--workers-dir",
                os.path.join(self.keys, "workers"), "--controllers-dir",
                os.path.join(self.keys, "controllers")]

    def peer_security(self, system, role):
        if not system.get("curve"):
            return []
        folder = "workers" if role == "worker" else "controllers"
        return ["--curve-cert", os.path.join(self.keys, folder, role + ".key_secret"),
                "--server-key", os.path.join(self.keys, "broker.key")]

    # -- readiness ------------------------------------------------------------

    def wait_ready(self, stack):
        """zfed: until the broker reports every worker; baseline: the load
        tool's own warm-up covers it, after a short settle."""
        if stack.system["kind"] == "baseline":
            time.sleep(0.3)
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = subprocess.run(
                [self.binary("zfed-controller"), "--connect", stack.endpoint, "--status",
                 "--json"] + self.peer_security(stack.system, "controller"),
                capture_output=True, text=True)
            if status.returncode == 0:
                services = json.loads(status.stdout).get("services", {})
                if sum(s.get("workers", 0) for s in services.values()) >= stack.workers:
                    return
            time.sleep(0.1)
        raise RuntimeError("workers did not register")

    # -- loads ----------------------------------------------------------------

    def run_baseline_load(self, stack, load):
        argv = [self.binary("zfed-bench-baseline"), "load", "--connect", stack.endpoint]
        if load["mode"] == "stream":
            argv += ["--mode", "stream", "--outstanding", str(STREAM_OUTSTANDING), "--seconds",
                     str(load["seconds"])]
        else:
            argv += ["--mode", "round", "--tasks", str(load["tasks"]), "--rounds",
                     str(load["rounds"]), "--warmup-rounds", str(load["warmup"])]
            if load.get("big"):
                # As zfed-controller's default --window: requests in flight at once.
                argv += ["--window", str(CONTROLLER_WINDOW)]
        argv += ["--batch", str(stack.system.get("batch", 1))]
        return self.measure(stack, argv, lambda out: json.loads(out.strip().splitlines()[-1]))

    def run_zfed_load(self, stack, load):
        if load["mode"] == "stream":
            argv = [self.binary("zfed-bench-load"), "--connect", stack.endpoint, "--mode",
                    "stream", "--outstanding", str(STREAM_OUTSTANDING), "--seconds",
                    str(load["seconds"]), "--batch", str(stack.system.get("batch", 1))
                    ] + self.peer_security(stack.system, "controller")
            return self.measure(stack, argv, lambda out: json.loads(out.strip().splitlines()[-1]))
        # Rounds: the real controller, round times from its own records.
        job_id = "bench-%d" % time.monotonic_ns()
        workdir = os.path.join(self.dir, "jobs")
        argv = [self.binary("zfed-controller"), "--connect", stack.endpoint, "--workdir",
                workdir, "--job-id", job_id, "--rounds", str(load["rounds"] + load["warmup"]),
                "--tasks", str(load["tasks"]), "--level", "10", "--no-progress", "-q",
                "--round-timeout", "120", "--batch", str(stack.system.get("batch", 1))
                ] + self.peer_security(stack.system, "controller") + self.sync_argv()

        def parse(_):
            with open(os.path.join(workdir, job_id, "summary.json")) as handle:
                summary = json.load(handle)
            durations = []
            for number in range(load["warmup"], load["rounds"] + load["warmup"]):
                with open(os.path.join(workdir, job_id, "rounds",
                                       "round-%06d.json" % number)) as handle:
                    durations.append(json.load(handle)["duration_us"])
            if summary["status"] != "completed":
                raise RuntimeError("controller job %s" % summary["status"])
            seconds = sum(durations) / 1e6
            return {"tasks": load["tasks"] * load["rounds"], "seconds": seconds,
                    "tasks_per_s": load["tasks"] * load["rounds"] / seconds,
                    "latency_us": {"p50": percentile(durations, 0.5),
                                   "p99": percentile(durations, 0.99)},
                    "measured_tasks": load["tasks"] * (load["rounds"] + load["warmup"])}
        return self.measure(stack, argv, parse)

    def measure(self, stack, argv, parse):
        """Runs one load tool against a stack; adds CPU per task: broker and
        workers (from /proc) plus the load side (this process's children
        rusage, which only the load tool adds to while it runs)."""
        pids = stack.pids()
        cpu_before = cpu_seconds(pids)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        process = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        wall = time.monotonic() - started
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_stack = cpu_seconds(pids) - cpu_before
        cpu_load = (children_after.ru_utime - children_before.ru_utime +
                    children_after.ru_stime - children_before.ru_stime)
        if process.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (os.path.basename(argv[0]),
                                                       process.returncode, process.stderr[-500:]))
        result = parse(process.stdout)
        if "measured_tasks" in result:
            #  Rounds: every task the run drove, warm-up included.
            tasks = result["measured_tasks"]
            cpu = cpu_stack + cpu_load
        else:
            #  Stream: the tool measures a window after its warm-up; count
            #  the window's share of the stack's CPU and the tool's own.
            tasks = result["tasks"]
            cpu = cpu_stack * min(1.0, result["seconds"] / wall) + result.get("cpu_s", cpu_load)
        result["cpu_us_per_task"] = cpu * 1e6 / max(1, tasks)
        #  The load side alone: for zfed's rounds, the controller's CPU.
        result["load_cpu_us_per_task"] = cpu_load * 1e6 / max(1, tasks)
        result["load_user_us_per_task"] = (children_after.ru_utime -
                                           children_before.ru_utime) * 1e6 / max(1, tasks)
        result["load_sys_us_per_task"] = (children_after.ru_stime -
                                          children_before.ru_stime) * 1e6 / max(1, tasks)
        result["wall_s"] = wall
        return result

    # -- the grid ---------------------------------------------------------------

    def systems(self):
        systems = [
            {"name": "baseline", "kind": "baseline", "credit": 1},
            {"name": "zfed", "kind": "zfed", "credit": 1, "against": "baseline"},
            {"name": "baseline-credit8", "kind": "baseline", "credit": 8},
            {"name": "zfed-credit8", "kind": "zfed", "credit": 8, "against": "baseline-credit8"},
            {"name": "baseline-batch8", "kind": "baseline", "credit": 8, "batch": 8},
            {"name": "zfed-batch8", "kind": "zfed", "credit": 8, "batch": 8,
             "against": "baseline-batch8"},
        ]
        if self.args.curve:
            systems.append({"name": "zfed-curve-credit8", "kind": "zfed", "credit": 8,
                            "curve": True, "against": "baseline-credit8"})
            systems.append({"name": "zfed-curve-batch8", "kind": "zfed", "credit": 8, "batch": 8,
                            "curve": True, "against": "baseline-batch8"})
        return systems

    def loads(self):
        quick = self.args.quick
        return [
            {"name": "round5", "mode": "round", "tasks": 5, "rounds": 100 if quick else 300,
             "warmup": 20},
            {"name": "round1000", "mode": "round", "tasks": 1000, "rounds": 3 if quick else 10,
             "warmup": 1},
            {"name": "stream", "mode": "stream", "seconds": 1.0 if quick else 3.0},
        ]

    def run_grid(self):
        workers = [int(n) for n in self.args.workers.split(",")]
        for count in workers:
            for system in self.systems():
                with Stack(self, system, count) as stack:
                    for load in self.loads():
                        runner = (self.run_baseline_load if system["kind"] == "baseline"
                                  else self.run_zfed_load)
                        try:
                            result = runner(stack, load)
                        except (RuntimeError, subprocess.TimeoutExpired) as error:
                            print("bench: %s, %d workers, %s: %s" % (system["name"], count,
                                                                      load["name"], error),
                                  file=sys.stderr)
                            continue
                        row = {"system": system["name"], "workers": count, "load": load["name"],
                               "tasks_per_s": round(result["tasks_per_s"], 1),
                               "p50_us": result["latency_us"]["p50"],
                               "p99_us": result["latency_us"]["p99"],
                               "cpu_us_per_task": round(result["cpu_us_per_task"], 1),
                               "against": system.get("against", "")}
                        self.rows.append(row)
                        self.progress(row)
                    if system["name"] == "zfed" and count == 5:
                        self.demo = self.run_demo(stack)
        self.add_ratios()

    def run_demo(self, stack):
        """The demo job, repeated: durations from each run's summary.json
        (controller created to summary written: connecting, job.json, five
        rounds, every record fsynced)."""
        workdir = os.path.join(self.dir, "demo-jobs")
        durations = []
        for run in range(5 if self.args.quick else 20):
            job_id = "demo-%d" % run
            subprocess.run([self.binary("zfed-controller"), "--connect", stack.endpoint,
                            "--workdir", workdir, "--job-id", job_id, "--no-progress", "-q"],
                           check=True, timeout=120)
            with open(os.path.join(workdir, job_id, "summary.json")) as handle:
                summary = json.load(handle)
            if summary["status"] != "completed":
                raise RuntimeError("demo job %s" % summary["status"])
            durations.append(summary["duration_ms"])
        demo = {"runs": len(durations), "p50_ms": statistics.median(durations),
                "max_ms": max(durations)}
        print("  demo job (5 rounds x 5 tasks, 5 workers): p50 %d ms, max %d ms over %d runs"
              % (demo["p50_ms"], demo["max_ms"], demo["runs"]), file=sys.stderr, flush=True)
        return demo

    def progress(self, row):
        print("  %-20s N=%-3d %-9s %10.0f tasks/s  p50 %7d us  p99 %7d us  cpu %6.1f us/task"
              % (row["system"], row["workers"], row["load"], row["tasks_per_s"], row["p50_us"],
                 row["p99_us"], row["cpu_us_per_task"]), file=sys.stderr, flush=True)

    def add_ratios(self):
        index = {(r["system"], r["workers"], r["load"]): r for r in self.rows}
        for row in self.rows:
            base = index.get((row["against"], row["workers"], row["load"]))
            row["throughput_ratio"] = (round(row["tasks_per_s"] / base["tasks_per_s"], 2)
                                       if base and base["tasks_per_s"] else "")
            row["latency_ratio"] = (round(row["p50_us"] / base["p50_us"], 2)
                                    if base and base["p50_us"] else "")

    # -- like for like ------------------------------------------------------------

    LIKE_PATHS = (
        # path, credit, batch: zfed and the baseline both run exactly this.
        ("strict", 1, 1),
        ("credit8", 8, 1),
        ("batch8", 8, 8),
    )

    def like_loads(self):
        quick = self.args.quick
        return [
            {"name": "stream", "mode": "stream", "seconds": 1.0 if quick else 3.0},
            {"name": "round%d" % self.args.like_tasks, "mode": "round",
             "tasks": self.args.like_tasks, "rounds": 1, "warmup": 1 if not quick else 0,
             "big": True},
            {"name": "round5", "mode": "round", "tasks": 5, "rounds": 100 if quick else 300,
             "warmup": 20},
        ]

    def run_like(self):
        """Every zfed path against the baseline doing the same (credit with
        credit, batch with batch), the same workers, in one run: the stream
        from the load generators, rounds through the real zfed-controller
        (times from its round records) against the baseline's load tool.
        Each pair runs back to back, baseline first, for every repeat; the
        load average is taken beside every cell."""
        count = int(self.args.workers.split(",")[0])
        self.like = []
        for repeat in range(self.args.repeat):
            for path, credit, batch in self.LIKE_PATHS:
                for kind in ("baseline", "zfed"):
                    system = {"name": "%s-%s" % (kind, path), "kind": kind, "credit": credit,
                              "batch": batch}
                    with Stack(self, system, count) as stack:
                        for load in self.like_loads():
                            runner = (self.run_baseline_load if kind == "baseline"
                                      else self.run_zfed_load)
                            try:
                                result = runner(stack, load)
                            except (RuntimeError, subprocess.TimeoutExpired) as error:
                                print("bench: %s %s: %s" % (system["name"], load["name"], error),
                                      file=sys.stderr)
                                continue
                            row = {"path": path, "kind": kind, "workers": count,
                                   "load": load["name"], "repeat": repeat,
                                   "tasks_per_s": round(result["tasks_per_s"], 1),
                                   "p50_us": result["latency_us"]["p50"],
                                   "cpu_us_per_task": round(result["cpu_us_per_task"], 2),
                                   "load_cpu_us_per_task":
                                       round(result["load_cpu_us_per_task"], 2),
                                   "wall_s": round(result["wall_s"], 3),
                                   "round_s": round(result["seconds"], 3),
                                   "loadavg": round(os.getloadavg()[0], 2)}
                            self.like.append(row)
                            print("  %-16s %-11s %9.0f tasks/s  p50 %8d us  cpu %6.2f us/task"
                                  "  (load side %5.2f)  wall %6.2f s  loadavg %.2f"
                                  % (system["name"], load["name"], row["tasks_per_s"],
                                     row["p50_us"], row["cpu_us_per_task"],
                                     row["load_cpu_us_per_task"], row["wall_s"],
                                     row["loadavg"]), file=sys.stderr, flush=True)

    def like_table(self):
        """Medians over the repeats; zfed/baseline ratios."""
        cells = {}
        for row in self.like:
            cells.setdefault((row["path"], row["load"], row["kind"]), []).append(row)

        def median(rows, key):
            return statistics.median(r[key] for r in rows) if rows else 0
        table = []
        for path, _, _ in self.LIKE_PATHS:
            for load in self.like_loads():
                zfed = cells.get((path, load["name"], "zfed"), [])
                base = cells.get((path, load["name"], "baseline"), [])
                if not zfed or not base:
                    continue
                entry = {"path": path, "load": load["name"],
                         "zfed_tasks_per_s": median(zfed, "tasks_per_s"),
                         "baseline_tasks_per_s": median(base, "tasks_per_s"),
                         "zfed_p50_us": median(zfed, "p50_us"),
                         "baseline_p50_us": median(base, "p50_us"),
                         "zfed_cpu_us": median(zfed, "cpu_us_per_task"),
                         "baseline_cpu_us": median(base, "cpu_us_per_task"),
                         "controller_cpu_us": (median(zfed, "load_cpu_us_per_task")
                                               if load["mode"] == "round" else ""),
                         "controller_wall_s": (median(zfed, "wall_s")
                                               if load.get("big") else ""),
                         "zfed_round_s": median(zfed, "round_s") if load.get("big") else "",
                         "loadavg": "%.1f-%.1f" % (min(r["loadavg"] for r in zfed + base),
                                                   max(r["loadavg"] for r in zfed + base))}
                entry["ratio"] = round(entry["zfed_tasks_per_s"] /
                                       max(1e-9, entry["baseline_tasks_per_s"]), 2)
                entry["p50_ratio"] = round(entry["zfed_p50_us"] /
                                           max(1e-9, entry["baseline_p50_us"]), 2)
                table.append(entry)
        return table

    def print_like(self, table):
        print("zfed like for like, %s, %d CPUs, %s, %s workers, %d repeat(s) (medians)"
              % (platform.node(), os.cpu_count(), time.strftime("%Y-%m-%d %H:%M"),
                 self.like[0]["workers"] if self.like else "?", self.args.repeat))
        self.print_sync()
        print()
        print("| path | load | zfed tasks/s | baseline tasks/s | ratio | zfed p50 us | "
              "baseline p50 us | p50 ratio | CPU us/task zfed | baseline | controller CPU "
              "us/task | controller wall s | loadavg |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for e in table:
            print("| %s | %s | %.0f | %.0f | **%.2f** | %d | %d | %.2f | %.1f | %.1f | %s | %s | %s |"
                  % (e["path"], e["load"], e["zfed_tasks_per_s"], e["baseline_tasks_per_s"],
                     e["ratio"], e["zfed_p50_us"], e["baseline_p50_us"], e["p50_ratio"],
                     e["zfed_cpu_us"], e["baseline_cpu_us"],
                     "%.2f" % e["controller_cpu_us"] if e["controller_cpu_us"] != "" else "",
                     "%.2f (round %.2f)" % (e["controller_wall_s"], e["zfed_round_s"])
                     if e["controller_wall_s"] != "" else "", e["loadavg"]))
        index = {(e["path"], e["load"]): e for e in table}
        big = "round%d" % self.args.like_tasks
        print()
        print("Targets (through the controller, %s):" % big)
        for path, target in (("strict", 0.9), ("credit8", 0.8), ("batch8", 0.5)):
            e = index.get((path, big))
            if e:
                print("  %-8s %.2fx the like-for-like baseline (target >= %.1f): %s"
                      % (path, e["ratio"], target, "met" if e["ratio"] >= target else "NOT met"))
        e = index.get(("batch8", big))
        if e:
            print("  controller CPU per task, batch path: %.2f us (target <= 2): %s"
                  % (e["controller_cpu_us"], "met" if e["controller_cpu_us"] <= 2 else "NOT met"))
        for path, _, _ in self.LIKE_PATHS:
            e = index.get((path, "round5"))
            if e:
                print("  5-task round, %-8s p50 %.3f ms = %.2fx the baseline's (target <= 1.2)"
                      % (path, e["zfed_p50_us"] / 1000, e["p50_ratio"]))

    def write_like_csv(self, path, table):
        fields = ["path", "load", "zfed_tasks_per_s", "baseline_tasks_per_s", "ratio",
                  "zfed_p50_us", "baseline_p50_us", "p50_ratio", "zfed_cpu_us",
                  "baseline_cpu_us", "controller_cpu_us", "controller_wall_s", "zfed_round_s",
                  "loadavg"]
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            for entry in table:
                writer.writerow({key: entry.get(key, "") for key in fields})

    # -- scale ------------------------------------------------------------------

    def run_scale(self):
        """1,000 worker sockets (10 processes x 100) and 63 more on other
        services (64 in all), a 100,000-task round; against 16 workers.
        Both over strict MDP and over the fast path (credit 8, batch 8)."""
        results = {}
        for path, credit, batch in (("strict", 1, 1), ("fast", 8, 8)):
            for count, processes in ((16, 4), (1000, 10)):
                key = "%s-%d" % (path, count)
                results[key] = self.scale_run(count, processes, credit, batch)
                print("  scale, %s path: %d fib workers (+63 on other services, %d services): "
                      "%d-task round in %.2f s, %.0f tasks/s, broker peak RSS %.1f MB"
                      % (path, count, results[key]["services"], self.args.scale_tasks,
                         results[key]["round_s"], results[key]["tasks_per_s"],
                         results[key]["broker_peak_rss_mb"]), file=sys.stderr, flush=True)
        results["bytes_per_queued_task"] = self.queued_task_bytes()
        return results

    def scale_run(self, count, processes, credit, batch):
        system = {"name": "zfed", "kind": "zfed", "credit": credit, "batch": batch}
        stack = Stack(self, system, count)  # started by hand: extra services
        endpoint_file = os.path.join(self.dir, "scale-endpoint-%d" % time.monotonic_ns())
        broker = stack.start([self.binary("zfed-broker"), "-q", "--bind", "tcp://127.0.0.1:*",
                              "--endpoint-file", endpoint_file])
        while not (os.path.exists(endpoint_file) and os.path.getsize(endpoint_file)):
            time.sleep(0.01)
        with open(endpoint_file) as handle:
            stack.endpoint = handle.readline().strip()
        for index in range(processes):
            stack.start([self.binary("zfed-worker"), "-q", "--connect", stack.endpoint,
                         "--concurrency", str(count // processes), "--threads", "0",
                         "--credit", str(credit), "--name", "scale-%d" % index])
        stack.start([self.binary("zfed-worker"), "-q", "--connect", stack.endpoint,
                     "--concurrency", "63", "--threads", "0", "--register-as", "other-{i}",
                     "--name", "other"])
        stack.workers = count + 63
        try:
            self.wait_ready(stack)
            status = json.loads(subprocess.run(
                [self.binary("zfed-controller"), "--connect", stack.endpoint, "--status",
                 "--json"], capture_output=True, text=True).stdout)
            load = {"name": "scale", "mode": "round", "tasks": self.args.scale_tasks,
                    "rounds": 1, "warmup": 0}
            result = self.run_zfed_load(stack, load)
            return {"tasks_per_s": round(result["tasks_per_s"], 1),
                    "round_s": round(result["seconds"], 2), "services": len(status["services"]),
                    "broker_peak_rss_mb": round(rss_peak_kb(broker.pid) / 1024, 1)}
        finally:
            stack.__exit__(None, None, None)

    def queued_task_bytes(self):
        """Broker RSS growth per request queued for a service nobody serves."""
        import zmq
        import msgpack
        endpoint_file = os.path.join(self.dir, "queue-endpoint")
        broker = subprocess.Popen([self.binary("zfed-broker"), "-q", "--bind",
                                   "tcp://127.0.0.1:*", "--endpoint-file", endpoint_file],
                                  stderr=subprocess.DEVNULL)
        try:
            while not (os.path.exists(endpoint_file) and os.path.getsize(endpoint_file)):
                time.sleep(0.01)
            with open(endpoint_file) as handle:
                endpoint = handle.readline().strip()
            context = zmq.Context()
            client = context.socket(zmq.DEALER)
            client.setsockopt(zmq.SNDHWM, 0)
            client.connect(endpoint)
            count = 100000
            bodies = [msgpack.packb(["zfed.task", 1, "queue", 0, i, 0, {"fibonacci_level": 10},
                                     [-1, "0"]]) for i in range(count)]
            probe = context.socket(zmq.DEALER)
            probe.connect(endpoint)

            def queued():
                probe.send_multipart([b"", b"MDPC01", b"mmi.status", b""])
                return msgpack.unpackb(probe.recv_multipart()[3])["counters"]["queued"]
            queued()
            before = rss_kb(broker.pid)
            for body in bodies:
                client.send_multipart([b"", b"MDPC01", b"nobody", body])
            while queued() < count:
                time.sleep(0.05)
            after = rss_kb(broker.pid)
            context.destroy(linger=0)
            per_task = (after - before) * 1024 / count
            print("  queue: %d requests queued, broker RSS %d -> %d KB, %.0f bytes per queued "
                  "task (body %d bytes)" % (count, before, after, per_task, len(bodies[0])),
                  file=sys.stderr, flush=True)
            return round(per_task)
        finally:
            broker.send_signal(signal.SIGTERM)
            broker.wait(10)

    # -- output -------------------------------------------------------------------

    def write_csv(self, path):
        fields = ["system", "workers", "load", "tasks_per_s", "p50_us", "p99_us",
                  "cpu_us_per_task", "against", "throughput_ratio", "latency_ratio"]
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({key: row.get(key, "") for key in fields})

    def sync_argv(self):
        """--sync for the controller's rounds (--sync group is not the default:
        a crash may run more rounds again, schemas/WORKDIR.md 1.1)."""
        return ["--sync", self.args.sync] if self.args.sync else []

    def print_sync(self):
        if self.args.sync:
            print("zfed-controller's rounds with --sync %s%s" % (
                self.args.sync, " (NOT the default: records made durable in groups, "
                "schemas/WORKDIR.md 1.1)" if self.args.sync == "group" else ""))

    def print_table(self):
        print("zfed benchmark, %s, %d CPUs, %s" % (platform.node(), os.cpu_count(),
                                                   time.strftime("%Y-%m-%d %H:%M")))
        self.print_sync()
        print()
        print("| system | workers | load | tasks/s | p50 us | p99 us | CPU us/task | "
              "zfed/baseline tasks/s | zfed/baseline p50 |")
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
        for row in self.rows:
            print("| %s | %d | %s | %.0f | %d | %d | %.1f | %s | %s |"
                  % (row["system"], row["workers"], row["load"], row["tasks_per_s"],
                     row["p50_us"], row["p99_us"], row["cpu_us_per_task"],
                     row["throughput_ratio"], row["latency_ratio"]))

    def print_targets(self, scale):
        index = {(r["system"], r["workers"], r["load"]): r for r in self.rows}

        def cell(system, workers, load):
            return index.get((system, workers, load))
        print()
        print("Targets (ratios measured in this run):")
        fast = cell("zfed-batch8", 5, "stream") or cell("zfed-credit8", 5, "stream")
        credit = cell("zfed-credit8", 5, "stream")
        strict = cell("zfed", 5, "stream")
        round5 = cell("zfed", 5, "round5")
        zguide_mdp = 9800  # zguide's Majordomo broker, async client, 5 workers (issue figure)
        if fast:
            print("  fast path (%s), 5 workers, stream: %.2fx its like-for-like baseline (target >= 0.8); "
                  "%.1fx zguide MDP's 9,800/s (target >= 6)"
                  % (fast["system"], fast["throughput_ratio"] or 0,
                     fast["tasks_per_s"] / zguide_mdp))
        if credit and credit is not fast:
            print("    (credit alone, one task per request: %.2fx)" % (credit["throughput_ratio"]
                                                                       or 0))
        if strict:
            print("  strict MDP, 5 workers, stream: %.2fx the one-task-per-worker baseline "
                  "(target >= 0.9)" % (strict["throughput_ratio"] or 0))
        if round5:
            print("  5-task round, 5 workers: p50 %.3f ms (target < 1 ms), %.2fx the baseline's "
                  "round (target <= 1.3)" % (round5["p50_us"] / 1000, round5["latency_ratio"]
                                             or 0))
        if self.demo:
            print("  demo job, 5 rounds of 5 tasks, 5 workers: p50 %d ms, max %d ms over %d runs "
                  "(target < 50 ms)" % (self.demo["p50_ms"], self.demo["max_ms"],
                                        self.demo["runs"]))
        if scale:
            for path in ("strict", "fast"):
                big, small = scale.get(path + "-1000"), scale.get(path + "-16")
                if big and small:
                    print("  1,000 workers, %s path: %d-task round at %.2fx the 16-worker rate "
                          "(target >= 0.7), broker peak RSS %.1f MB (target < 100 MB), %d services"
                          % (path, self.args.scale_tasks,
                             big["tasks_per_s"] / small["tasks_per_s"],
                             big["broker_peak_rss_mb"], big["services"]))
            print("  broker memory per queued task: %d bytes" % scale["bytes_per_queued_task"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--quick", action="store_true", help="smaller grid, under a minute")
    parser.add_argument("--sync", choices=("overlap", "round", "group"),
                        help="zfed-controller's --sync in the round cells (labelled in the "
                        "output; default: the controller's default, overlap)")
    parser.add_argument("--workers", help="comma-separated worker counts")
    parser.add_argument("--curve", action="store_true", help="add zfed with CurveZMQ")
    parser.add_argument("--scale", action="store_true",
                        help="add the 1,000-worker, 100,000-task scale run")
    parser.add_argument("--scale-tasks", type=int, default=100000)
    parser.add_argument("--like", action="store_true",
                        help="only the like-for-like table: strict, credit 8, batch 8, each "
                             "against the baseline doing the same, rounds through the controller")
    parser.add_argument("--like-tasks", type=int, default=100000,
                        help="tasks in the like-for-like big round (default 100000)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="like-for-like: runs of every pair (medians reported)")
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "bench.csv"),
                        help="CSV file to write")
    args = parser.parse_args()
    if not args.workers:
        args.workers = "5" if args.like else "1,5,16" if args.quick else "1,2,5,16,64"
    bench = Bench(args)
    try:
        if args.like:
            print("bench: like for like, %s workers; progress on stderr" % args.workers,
                  file=sys.stderr)
            bench.run_like()
            table = bench.like_table()
            bench.print_like(table)
            out = args.out.replace("bench.csv", "like.csv") if args.out.endswith(
                "bench.csv") else args.out
            bench.write_like_csv(out, table)
            print("\nCSV: %s" % out)
            return
        print("bench: workers %s, %s grid; progress on stderr" %
              (args.workers, "quick" if args.quick else "full"), file=sys.stderr)
        bench.run_grid()
        scale = bench.run_scale() if args.scale else None
        bench.print_table()
        bench.print_targets(scale)
        bench.write_csv(args.out)
        print("\nCSV: %s" % args.out)
    finally:
        shutil.rmtree(bench.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
