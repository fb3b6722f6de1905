#!/usr/bin/python3
"""zfed's model rounds against a bare libzmq baseline, in one run on loopback
(issue 10's targets).

    scripts/bench.sh --models            1 GiB model, 5 workers, 3 rounds each
    scripts/bench.sh --models --quick    256 MiB, 2 rounds

Large: a float32 model of --model-mib MiB in 4 tensors, tensoravg, fedavg,
5 tasks on 5 zfed-worker processes (one MDP worker each), through the real
zfed-broker and zfed-controller.  The round time is the controller's own
(its records' duration_us: from the first send to the record, the
aggregation pass included).  The baseline (bench/baseline.c --mode model)
moves the same bytes over the same four hops with nothing but libzmq: each
task's model out in chunks (client -> broker -> worker), then each task's
model back (worker -> broker -> client), 4 chunks in flight per task.
Peak RSS of the broker, the controller and each worker (VmHWM).

Small: 10,000 float32 parameters, 5 tasks, tensoravg rounds against today's
vecavg rounds of 10,000-value vectors, the same broker and workers' layout;
the median round time of each.

Targets: large round <= 1.5x baseline; broker RSS <= 256 MiB; controller and
each worker <= 3x the model size; small-model round <= 1.3x vecavg.
"""

import argparse
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
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MIB = 1 << 20
TASKS = 5
CHUNK = 4 * MIB
SMALL_PARAMS = 10000


def vm_hwm(pid):
    """Peak RSS of a live process, bytes."""
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_of(pid):
    """CPU-seconds (user + system) and minor page faults of a live process."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return {"cpu_s": 0.0, "user_s": 0.0, "sys_s": 0.0, "minflt": 0}
    tick = os.sysconf("SC_CLK_TCK")
    user, system = int(fields[11]) / tick, int(fields[12]) / tick
    return {"cpu_s": user + system, "user_s": user, "sys_s": system, "minflt": int(fields[7])}


def children_usage():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime, usage.ru_minflt


def usage_since(before):
    """CPU of the children reaped since children_usage() gave before."""
    after = children_usage()
    user, system = after[0] - before[0], after[1] - before[1]
    return {"cpu_s": user + system, "user_s": user, "sys_s": system,
            "minflt": after[2] - before[2]}


def load_average():
    return os.getloadavg()


class Processes:
    """Started processes, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, folder):
        self.folder = folder
        self.started = []

    def start(self, name, argv):
        log = open(os.path.join(self.folder, name + ".log"), "w")
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log,
                                   start_new_session=True)
        process.name = name
        self.started.append(process)
        return process

    def broker(self, argv, name):
        endpoint_file = os.path.join(self.folder, name + ".endpoint")
        process = self.start(name, argv + ["--endpoint-file", endpoint_file])
        deadline = time.monotonic() + 10
        while not (os.path.exists(endpoint_file) and os.path.getsize(endpoint_file)):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(name + " did not start")
            time.sleep(0.01)
        with open(endpoint_file) as handle:
            return process, handle.readline().strip()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Bench:

    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.dir = tempfile.mkdtemp(prefix="zfed-bench-models-")
        self.figures = {}
        self.tasks = args.tasks

    def binary(self, name):
        for folder in (self.build, os.path.join(self.build, "bench")):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                return path
        raise SystemExit("models.py: %s not found in %s (scripts/build.sh first)"
                         % (name, self.build))

    def wait_workers(self, endpoint, service, count):
        """Until the broker has count workers for service (mmi.status)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = subprocess.run([self.binary("zfed-controller"), "--status", "--json",
                                     "--connect", endpoint], capture_output=True, text=True)
            try:
                services = json.loads(status.stdout).get("services", {})
                if services.get(service, {}).get("workers", 0) >= count:
                    return
            except ValueError:
                pass
            time.sleep(0.1)
        raise RuntimeError("%d %s workers did not register" % (count, service))

    def controller(self, endpoint, job, job_id):
        """Runs a job to its end; its round durations (s) and peak RSS."""
        path = os.path.join(self.dir, job_id + ".json")
        with open(path, "w") as handle:
            json.dump(job, handle)
        workdir = os.path.join(self.dir, "jobs")
        log = open(os.path.join(self.dir, job_id + ".log"), "w")
        process = subprocess.Popen([self.binary("zfed-controller"), "--job", path, "--connect",
                                    endpoint, "--workdir", workdir, "--job-id", job_id,
                                    "--no-progress", "-q"], stderr=log)
        peak = 0
        before = children_usage()
        while process.poll() is None:
            peak = max(peak, vm_hwm(process.pid))
            time.sleep(0.02)
        self.last_controller_cpu = usage_since(before)
        if process.returncode != 0:
            raise RuntimeError("%s failed (%s):\n%s" % (job_id, process.returncode,
                               open(log.name).read()[-2000:]))
        rounds = []
        for number in range(job["rounds"]):
            with open(os.path.join(workdir, job_id, "rounds", "round-%06d.json" % number)) as f:
                record = json.load(f)
            rounds.append((record["duration_us"] / 1e6, record))
        shutil.rmtree(os.path.join(workdir, job_id), ignore_errors=True)
        return rounds, peak

    # -- large model --------------------------------------------------------

    def baseline_large(self, model_bytes, rounds):
        with Processes(self.dir) as procs:
            broker, endpoint = procs.broker([self.binary("zfed-bench-baseline"), "broker",
                                             "--bind", "tcp://127.0.0.1:*"], "baseline-broker")
            workers = procs.start("baseline-workers", [
                self.binary("zfed-bench-baseline"), "workers", "--connect", endpoint,
                "--count", str(self.tasks), "--threads", "2", "--credit", "4",
                "--bulk-bytes", str(CHUNK)])
            time.sleep(0.5)
            before = children_usage()
            load = subprocess.run([self.binary("zfed-bench-baseline"), "load", "--connect",
                                   endpoint, "--mode", "model", "--tasks", str(self.tasks),
                                   "--rounds", str(rounds), "--warmup-rounds", "1",
                                   "--model-bytes", str(model_bytes), "--chunk", str(CHUNK),
                                   "--timeout", "120"], capture_output=True, text=True)
            if load.returncode != 0:
                raise RuntimeError("baseline load failed:\n" + load.stderr[-2000:])
            load_cpu = usage_since(before)
            result = json.loads(load.stdout)
            return {"round_s": result["latency_us"]["p50"] / 1e6,
                    "cpu": {"broker": cpu_of(broker.pid), "workers": cpu_of(workers.pid),
                            "client": load_cpu},
                    "cpu_rounds": rounds + 1, "loadavg": load_average(),
                    "rounds_s": [result["latency_us"]["p50"] / 1e6],
                    "broker_rss": vm_hwm(broker.pid), "workers_rss": vm_hwm(workers.pid)}

    def zfed_large(self, model_mib, rounds):
        model = os.path.join(self.dir, "large.safetensors")
        subprocess.run([self.binary("zfed-model"), "create", model, "--size", "%dMiB" % model_mib,
                        "--tensors", "4", "--fill", "random:1"], check=True,
                       stdout=subprocess.DEVNULL)
        with Processes(self.dir) as procs:
            broker, endpoint = procs.broker([self.binary("zfed-broker"), "-q", "--bind",
                                             "tcp://127.0.0.1:*"], "zfed-broker")
            workers = [procs.start("zfed-worker-%d" % i, [
                self.binary("zfed-worker"), "-q", "--service", "tensoravg", "--connect",
                endpoint, "--name", "bench-%d" % i]) for i in range(self.tasks)]
            self.wait_workers(endpoint, "tensoravg", self.tasks)
            job = {"service": "tensoravg", "initial_model": model, "rounds": rounds,
                   "tasks": self.tasks, "round_timeout": 600, "keep_models": "none",
                   "task_params": [{"add": 0.25 * (t + 1), "samples": t + 1}
                                   for t in range(self.tasks)]}
            rounds_out, controller_rss = self.controller(endpoint, job, "large")
            cpu = {"broker": cpu_of(broker.pid), "controller": self.last_controller_cpu}
            for i, worker in enumerate(workers):
                cpu["worker-%d" % i] = cpu_of(worker.pid)
            os.unlink(model)
            return {"cpu": cpu, "cpu_rounds": rounds, "loadavg": load_average(),
                    "rounds_s": [duration for duration, _ in rounds_out],
                    "round_s": statistics.median(d for d, _ in rounds_out),
                    "pass_s": statistics.median(r["pass"]["duration_us"] / 1e6
                                                for _, r in rounds_out),
                    "held_peak": max(r["pass"]["held_peak_bytes"] for _, r in rounds_out),
                    "broker_rss": vm_hwm(broker.pid), "controller_rss": controller_rss,
                    "workers_rss": [vm_hwm(w.pid) for w in workers]}

    # -- small model --------------------------------------------------------

    def small(self, rounds):
        model = os.path.join(self.dir, "small.safetensors")
        subprocess.run([self.binary("zfed-model"), "create", model, "--tensor",
                        "w:F32:%d" % SMALL_PARAMS, "--fill", "random:2"], check=True,
                       stdout=subprocess.DEVNULL)
        out = {}
        with Processes(self.dir) as procs:
            _, endpoint = procs.broker([self.binary("zfed-broker"), "-q", "--bind",
                                        "tcp://127.0.0.1:*"], "small-broker")
            for i in range(TASKS):
                procs.start("small-tavg-%d" % i, [self.binary("zfed-worker"), "-q", "--service",
                                                  "tensoravg", "--connect", endpoint])
                procs.start("small-vec-%d" % i, [self.binary("zfed-worker"), "-q", "--service",
                                                 "vecavg", "--connect", endpoint])
            self.wait_workers(endpoint, "tensoravg", TASKS)
            self.wait_workers(endpoint, "vecavg", TASKS)
            vector = [0.001 * (i % 1000) for i in range(SMALL_PARAMS)]
            jobs = {
                "tensoravg": {"service": "tensoravg", "initial_model": model, "rounds": rounds,
                              "tasks": TASKS, "keep_models": "none",
                              "task_params": [{"add": 0.5 * t, "samples": t + 1}
                                              for t in range(TASKS)]},
                "vecavg": {"service": "vecavg", "rounds": rounds, "tasks": TASKS,
                           "task_params": [{"vector": vector, "samples": t + 1}
                                           for t in range(TASKS)]},
            }
            for name, job in jobs.items():
                durations, _ = self.controller(endpoint, job, "small-" + name)
                # The first round pays for connections and caches: not counted.
                out[name] = statistics.median(d for d, _ in durations[1:])
        return out

    # -- report -------------------------------------------------------------

    def report_zfed_only(self, zfed, model_bytes):
        print("zfed rounds (s): %s; pass (median) %.2f s" % (
            ", ".join("%.2f" % r for r in zfed["rounds_s"]), zfed["pass_s"]))
        print("peak RSS (MiB): broker %.0f, controller %.0f (%.2fx model), worker worst %.0f "
              "(%.2fx model)" % (zfed["broker_rss"] / MIB, zfed["controller_rss"] / MIB,
                                 zfed["controller_rss"] / model_bytes,
                                 max(zfed["workers_rss"]) / MIB,
                                 max(zfed["workers_rss"]) / model_bytes))
        for name, cpu in zfed["cpu"].items():
            print("CPU-s per round, %s: %.1f (system %.1f, %.0fk faults)" % (
                name, cpu["cpu_s"] / zfed["cpu_rounds"], cpu["sys_s"] / zfed["cpu_rounds"],
                cpu["minflt"] / zfed["cpu_rounds"] / 1e3))
        print("load average (1 min): %.1f" % zfed["loadavg"][0])
        json.dump({"zfed": zfed, "model_mib": model_bytes // MIB},
                  open(os.path.join(self.dir, "models.json"), "w"), indent=1)

    @staticmethod
    def cpu_rows(base, zfed):
        """CPU-seconds per round of each side's processes (whole run / its rounds)."""
        def per_round(side, names):
            return sum(side["cpu"][n]["cpu_s"] for n in names) / side["cpu_rounds"]
        workers = [n for n in zfed["cpu"] if n.startswith("worker-")]
        rows = [("CPU-s per round, all processes",
                 "%.1f" % per_round(base, base["cpu"]),
                 "%.1f" % per_round(zfed, zfed["cpu"]),
                 "%.2fx" % (per_round(zfed, zfed["cpu"]) / per_round(base, base["cpu"])),
                 "", None),
                ("  broker", "%.1f" % per_round(base, ["broker"]),
                 "%.1f" % per_round(zfed, ["broker"]), "", "", None),
                ("  controller / client", "%.1f" % per_round(base, ["client"]),
                 "%.1f (sys %.1f)" % (per_round(zfed, ["controller"]),
                                      zfed["cpu"]["controller"]["sys_s"] / zfed["cpu_rounds"]),
                 "", "", None),
                ("  workers (all)", "%.1f" % per_round(base, ["workers"]),
                 "%.1f (sys %.1f, %.0fk faults)" % (
                     per_round(zfed, workers),
                     sum(zfed["cpu"][n]["sys_s"] for n in workers) / zfed["cpu_rounds"],
                     sum(zfed["cpu"][n]["minflt"] for n in workers) / zfed["cpu_rounds"] / 1e3),
                 "", "", None),
                ("load average (1 min) after each side", "%.1f" % base["loadavg"][0],
                 "%.1f" % zfed["loadavg"][0], "", "", None)]
        return rows

    def run(self):
        args = self.args
        model_mib = args.model_mib
        model_bytes = model_mib * MIB
        print("machine: %s, %d CPUs, %s; Python %s" % (
            platform.platform(), os.cpu_count(), platform.processor() or platform.machine(),
            platform.python_version()))
        print("large model: %d MiB float32 (4 tensors), %d tasks, %d rounds each\n"
              % (model_mib, self.tasks, args.rounds))
        base = self.baseline_large(model_bytes, args.rounds) if args.baseline else None
        zfed = self.zfed_large(model_mib, args.rounds)
        if not base:
            self.report_zfed_only(zfed, model_bytes)
            return
        small = self.small(args.small_rounds) if args.small_rounds else None
        ratio = zfed["round_s"] / base["round_s"]
        worst_worker = max(zfed["workers_rss"])
        rows = [
            ("large round (s)", "%.2f" % base["round_s"], "%.2f (%s)" % (
                zfed["round_s"], ", ".join("%.2f" % r for r in zfed["rounds_s"])),
             "%.2fx" % ratio, "<= 1.5x", ratio <= 1.5),
            ("  of which the aggregation pass (s)", "", "%.2f" % zfed["pass_s"], "", "", None),
            ("broker peak RSS (MiB)", "%.0f" % (base["broker_rss"] / MIB),
             "%.0f" % (zfed["broker_rss"] / MIB), "", "<= 256", zfed["broker_rss"] <= 256 * MIB),
            ("controller peak RSS (MiB)", "", "%.0f (%.2fx model)" % (
                zfed["controller_rss"] / MIB, zfed["controller_rss"] / model_bytes), "",
             "<= 3x model", zfed["controller_rss"] <= 3 * model_bytes),
            ("  chunks held at most (MiB)", "", "%.0f" % (zfed["held_peak"] / MIB), "", "", None),
            ("worker peak RSS, worst (MiB)", "%.0f (all 5)" % (base["workers_rss"] / MIB),
             "%.0f (%.2fx model)" % (worst_worker / MIB, worst_worker / model_bytes), "",
             "<= 3x model", worst_worker <= 3 * model_bytes),
        ]
        if small:
            rows.append(("small round (ms)", "vecavg %.2f" % (small["vecavg"] * 1e3),
                         "tensoravg %.2f" % (small["tensoravg"] * 1e3),
                         "%.2fx" % (small["tensoravg"] / small["vecavg"]), "<= 1.3x",
                         small["tensoravg"] / small["vecavg"] <= 1.3))
        rows += self.cpu_rows(base, zfed)
        widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
        header = ("figure", "baseline", "zfed", "ratio", "target")
        widths = [max(w, len(h)) for w, h in zip(widths, header)]
        line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, header))
        print(line + "  met")
        for row in rows:
            met = "" if row[5] is None else ("yes" if row[5] else "NO")
            print("  ".join("%-*s" % (w, c) for w, c in zip(widths, row[:5])) + "  " + met)
        json.dump({"baseline": base, "zfed": zfed, "small": small, "model_mib": model_mib},
                  open(os.path.join(self.dir, "models.json"), "w"), indent=1)
        print("\nfigures: %s" % os.path.join(self.dir, "models.json"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    parser.add_argument("--quick", action="store_true", help="256 MiB, 2 rounds")
    parser.add_argument("--model-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="zfed's large rounds only")
    parser.add_argument("--tasks", type=int, default=TASKS,
                        help="tasks (and workers) of the large model's rounds")
    parser.add_argument("--small-rounds", type=int, default=30, help="0: no small-model run")
    args = parser.parse_args()
    if args.quick:
        args.model_mib, args.rounds, args.small_rounds = 256, 2, 15
    Bench(args).run()


if __name__ == "__main__":
    main()
