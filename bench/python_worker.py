#!/usr/bin/python3
"""The Python worker against the C worker, in the same run (issue 13).

    /usr/bin/python3 bench/python_worker.py [--build DIR] [--tasks N] [--repeat R]
                                            [--stream S] [--model-mib M] [--json FILE]

DIR holds the C programs (default build/; scripts/bench.sh's optimised
build-bench/ also works).  The Python worker is this tree's python/zfed.

Two measurements, each on one real zfed-broker on loopback:

  small   the small-task stream: one worker (one connection, one compute
          thread, credit 1 unless --credit) serving fib, N tasks of
          fibonacci_level 10 in one round run by the real zfed-controller
          (and, with --stream S, S seconds of zfed-bench-load's stream).
          The worker's CPU per task is the change of utime + stime in
          /proc/PID/stat over the job, after a warm-up job; C and Python
          workers take turns R times, and the medians are compared.
          Target: Python <= 2x C.

  model   a tensoravg task on an M MiB F32 model (default 256), global by
          reference and result by reference: the worker fetches it in
          chunks, adds, holds the result, and the client fetches that back
          (zfed's Fetcher, the same for both workers, into a buffer it
          touched before, so that its own page faults stay out of the
          figure).  Reported: the median wall time of the round trip (task
          sent to the last result byte in), the worker's CPU, and its peak
          RSS over its idle RSS in model sizes (global + result = 2.0 is
          the least a service that returns a new model can hold; a third
          copy would show as 3).  Target: Python <= 1.3x C.  The C side
          runs when `zfed-worker --service tensoravg` exists, and is
          skipped with a message otherwise.

Prints a table and, with --json FILE, writes the figures.  Exit status 0
when the run completed (whether or not a target was met), 1 otherwise.
"""

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PACKAGE = os.path.join(ROOT, "python")
PYTHON = "/usr/bin/python3"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20
SMALL_TARGET = 2.0
MODEL_TARGET = 1.3
WARMUP_TASKS = 500

sys.path.insert(0, PACKAGE)


def cpu_seconds(pid):
    """utime + stime of a live process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss(pid):
    """Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class Bench:

    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.dir = tempfile.mkdtemp(prefix="zfed-pybench-")
        self.processes = []
        self.endpoint = None
        self.broker = None

    def binary(self, name):
        for folder in (self.build, os.path.join(self.build, "bench")):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                return path
        raise SystemExit("python_worker.py: %s is not built in %s" % (name, self.build))

    # -- processes -------------------------------------------------------------

    def start(self, argv, env=None):
        log = open(os.path.join(self.dir, "%s-%d.log" % (os.path.basename(argv[0]),
                                                        len(self.processes))), "wb")
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=env,
                                   start_new_session=True)
        log.close()
        self.processes.append(process)
        return process

    def stop(self, process):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.processes.remove(process)

    def close(self):
        for process in list(self.processes):
            self.stop(process)

    def start_broker(self):
        endpoint_file = os.path.join(self.dir, "endpoint")
        self.broker = self.start([self.binary("zfed-broker"), "-q", "--bind",
                                  "tcp://127.0.0.1:*", "--endpoint-file", endpoint_file])
        deadline = time.monotonic() + 10
        while not (os.path.exists(endpoint_file) and os.path.getsize(endpoint_file)):
            if time.monotonic() > deadline or self.broker.poll() is not None:
                raise RuntimeError("the broker did not start")
            time.sleep(0.01)
        with open(endpoint_file) as handle:
            self.endpoint = handle.readline().strip()

    def workers_of(self, service):
        status = subprocess.run([self.binary("zfed-controller"), "--connect", self.endpoint,
                                 "--status", "--json"], capture_output=True, text=True)
        if status.returncode != 0:
            return 0
        return json.loads(status.stdout).get("services", {}).get(service, {}).get("workers", 0)

    def start_worker(self, system, service, *extra):
        """One worker of `system` (c or python) for service; waits until it
        is registered (and the previous one gone)."""
        if system == "c":
            argv = [self.binary("zfed-worker"), "-q", "--connect", self.endpoint, "--service",
                    service, "--concurrency", "1", "--name", "bench-c"] + list(extra)
            env = None
        else:
            argv = [PYTHON, "-m", "zfed.worker", "zfed.services:" + service, "-q",
                    "--connect", self.endpoint, "--concurrency", "1", "--name",
                    "bench-py"] + list(extra)
            env = dict(os.environ, PYTHONPATH=PACKAGE)
        process = self.start(argv, env)
        deadline = time.monotonic() + 30
        while self.workers_of(service) != 1:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("%s worker for %s did not register (log in %s)"
                                   % (system, service, self.dir))
            time.sleep(0.05)
        return process

    def stop_worker(self, process, service):
        self.stop(process)
        deadline = time.monotonic() + 30  # the broker forgets it (DISCONNECT)
        while self.workers_of(service) != 0 and time.monotonic() < deadline:
            time.sleep(0.05)

    # -- small tasks -------------------------------------------------------------

    def controller_job(self, tasks):
        job_id = "bench-%d" % time.monotonic_ns()
        argv = [self.binary("zfed-controller"), "--connect", self.endpoint, "--workdir",
                os.path.join(self.dir, "jobs"), "--job-id", job_id, "--rounds", "1",
                "--tasks", str(tasks), "--level", str(self.args.level), "--no-progress", "-q",
                "--round-timeout", "600", "--batch", str(self.args.batch)]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError("controller exited %d: %s" % (done.returncode, done.stderr[-500:]))
        with open(os.path.join(self.dir, "jobs", job_id, "summary.json")) as handle:
            summary = json.load(handle)
        if summary.get("status") != "completed":
            raise RuntimeError("job %s" % summary.get("status"))
        return tasks

    def stream_load(self, seconds):
        argv = [self.binary("zfed-bench-load"), "--connect", self.endpoint, "--mode", "stream",
                "--outstanding", "256", "--seconds", str(seconds), "--level",
                str(self.args.level), "--batch", str(self.args.batch)]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError("zfed-bench-load exited %d: %s"
                               % (done.returncode, done.stderr[-500:]))
        return json.loads(done.stdout.strip().splitlines()[-1])["tasks"]

    def small_once(self, system, load):
        worker = self.start_worker(system, "fib", "--credit", str(self.args.credit))
        try:
            self.controller_job(WARMUP_TASKS)
            before = cpu_seconds(worker.pid)
            started = time.monotonic()
            tasks = self.controller_job(self.args.tasks) if load == "controller" \
                else self.stream_load(self.args.stream)
            wall = time.monotonic() - started
            used = cpu_seconds(worker.pid) - before
        finally:
            self.stop_worker(worker, "fib")
        return {"cpu_us_per_task": used * 1e6 / tasks, "tasks": tasks,
                "tasks_per_s": tasks / wall}

    def small(self):
        loads = ["controller"] + (["stream"] if self.args.stream else [])
        out = {}
        for load in loads:
            runs = {"c": [], "python": []}
            for _ in range(self.args.repeat):
                for system in ("c", "python"):
                    runs[system].append(self.small_once(system, load))
            row = {}
            for system, items in runs.items():
                row[system] = {
                    "cpu_us_per_task": statistics.median(r["cpu_us_per_task"] for r in items),
                    "runs_us": [round(r["cpu_us_per_task"], 1) for r in items],
                    "tasks_per_s": statistics.median(r["tasks_per_s"] for r in items),
                    "tasks": items[0]["tasks"]}
            row["ratio"] = row["python"]["cpu_us_per_task"] / row["c"]["cpu_us_per_task"]
            out[load] = row
        return out

    # -- a large model -------------------------------------------------------------

    def model_once(self, system, client, descriptor, model, landing):
        """One round trip.  The client fetches the result into `landing`, a
        buffer it touched before, so that its own page faults (the same for
        both workers) do not blur the figure."""
        import zfed.client as zc
        import zfed.models as zm
        import zfed.protocol as zp
        worker = self.start_worker(system, "tensoravg")
        try:
            time.sleep(0.2)  # settle: the idle RSS once imports are done
            idle_kb = status_kb(worker.pid, "VmRSS")
            peak_known = reset_peak_rss(worker.pid)
            before = cpu_seconds(worker.pid)
            task = zc.task("bench", 0, 0, {"add": 1.0, "samples": 1}, descriptor.elements())
            started = time.monotonic()
            client.send("tensoravg", [task.encode()])
            _, bodies = client.receive(600)
            answer = zp.decode(bodies[0].bytes)
            if answer.KIND != zp.KIND_RESULT:
                raise RuntimeError("%s worker answered %d: %s" % (system, answer.code,
                                                                  answer.message))
            result = zm.check_descriptor(answer.outputs["model"], "result")
            client.fetcher.fetch(result, out=landing)
            wall = time.monotonic() - started
            used = cpu_seconds(worker.pid) - before
            peak_kb = status_kb(worker.pid, "VmHWM") if peak_known else 0
            got = zm.decode_model(result, landing)["w"]
            if not (got[:4] == model["w"][:4] + 1).all() or got[-1] != model["w"][-1] + 1:
                raise RuntimeError("%s worker's result is wrong: %r" % (system, got[:4]))
            client.fetcher.release(result.source, [result.id])
        finally:
            self.stop_worker(worker, "tensoravg")
        return {"seconds": wall, "cpu_s": used,
                "peak_over_idle_models": (peak_kb - idle_kb) * 1024 / landing.nbytes
                if peak_known else None}

    def c_has_tensoravg(self):
        done = subprocess.run([self.binary("zfed-worker"), "--help"], capture_output=True,
                              text=True)
        return "tensoravg" in done.stdout

    def model(self):
        import numpy as np
        import zfed.client as zc
        import zfed.models as zm
        size = self.args.model_mib * MIB
        layout = zm.make_layout([("w", "F32", (size // 4,))])
        model = zm.Model.empty(layout)
        model["w"][...] = np.arange(size // 4, dtype=np.float32) % 1024
        systems = ["python"]
        skipped = None
        if self.c_has_tensoravg():
            systems.insert(0, "c")
        else:
            skipped = "zfed-worker has no tensoravg service yet: the C side is skipped"
        out = {"model_mib": self.args.model_mib}
        with zc.Client(self.endpoint, timeout=600) as client:
            descriptor = client.global_descriptor(model)[0]  # published once, by reference
            runs = {s: [] for s in systems}
            landing = np.ones(size, np.uint8)  # touched: its pages exist
            for _ in range(self.args.model_repeat):
                for system in systems:
                    runs[system].append(self.model_once(system, client, descriptor, model,
                                                        landing))
        for system, items in runs.items():
            out[system] = {
                "seconds": statistics.median(r["seconds"] for r in items),
                "runs_s": [round(r["seconds"], 3) for r in items],
                "cpu_s": statistics.median(r["cpu_s"] for r in items),
                "peak_over_idle_models": max((r["peak_over_idle_models"] or 0) for r in items)}
        if "c" in out:
            out["ratio"] = out["python"]["seconds"] / out["c"]["seconds"]
        else:
            out["skipped"] = skipped
        return out


def report(figures):
    lines = []
    machine = figures["machine"]
    lines.append("zfed Python worker vs C worker (%s, %d CPUs, Python %s)"
                 % (machine["cpu"], machine["cpus"], machine["python"]))
    for load, row in figures.get("small", {}).items():
        lines.append("small tasks (%s, %d tasks, level %d, credit %d, batch %d):"
                     % (load, row["c"]["tasks"], figures["level"], figures["credit"],
                        figures["batch"]))
        for system in ("c", "python"):
            r = row[system]
            lines.append("  %-6s worker CPU %7.1f us/task   (runs %s)  %8.0f tasks/s"
                         % (system, r["cpu_us_per_task"], r["runs_us"], r["tasks_per_s"]))
        lines.append("  ratio python/c %.2fx (target <= %.1fx): %s"
                     % (row["ratio"], SMALL_TARGET, "met" if row["ratio"] <= SMALL_TARGET
                        else "NOT met"))
    model = figures.get("model")
    if model:
        lines.append("model (%d MiB F32, tensoravg, by reference both ways):" % model["model_mib"])
        for system in ("c", "python"):
            if system in model:
                r = model[system]
                lines.append("  %-6s %6.3f s round trip (runs %s)  worker CPU %.2f s  peak RSS "
                             "over idle %.2f models" % (system, r["seconds"], r["runs_s"],
                                                        r["cpu_s"], r["peak_over_idle_models"]))
        if "ratio" in model:
            lines.append("  ratio python/c %.2fx (target <= %.1fx): %s"
                         % (model["ratio"], MODEL_TARGET, "met" if model["ratio"] <= MODEL_TARGET
                            else "NOT met"))
        else:
            lines.append("  " + model["skipped"])
    return "\n".join(lines)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"),
                        help="folder with the programs (default build/)")
    parser.add_argument("--tasks", type=int, default=10000, help="small tasks per job")
    parser.add_argument("--level", type=int, default=10, help="fibonacci_level (default 10)")
    parser.add_argument("--credit", type=int, default=1, help="worker credit (default 1)")
    parser.add_argument("--batch", type=int, default=1, help="tasks per request (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="turns of each worker (default 3)")
    parser.add_argument("--stream", type=float, default=0, metavar="S",
                        help="also S seconds of zfed-bench-load's stream")
    parser.add_argument("--model-mib", type=int, default=256, help="model size (default 256)")
    parser.add_argument("--model-repeat", type=int, default=5, help="model turns (default 5)")
    parser.add_argument("--no-small", action="store_true", help="skip the small tasks")
    parser.add_argument("--no-model", action="store_true", help="skip the model")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = parser.parse_args()
    bench = Bench(args)
    figures = {"machine": {"cpu": cpu_name(), "cpus": os.cpu_count(),
                           "python": platform.python_version()},
               "level": args.level, "credit": args.credit, "batch": args.batch}
    try:
        bench.start_broker()
        if not args.no_small:
            figures["small"] = bench.small()
        if not args.no_model:
            figures["model"] = bench.model()
    except RuntimeError as failure:
        sys.stderr.write("python_worker.py: %s\n" % failure)
        return 1
    finally:
        bench.close()
    print(report(figures))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
