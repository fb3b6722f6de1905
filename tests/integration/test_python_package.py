"""The zfed Python package (python/): it installs into a fresh venv without
the network and imports; its version is the C programs'; zfed-py-worker
serves Python functions to the C controller through the C broker with what
the C worker has (same results and aggregates, errors that name the
exception, site routing, heartbeats while a function computes, reconnects,
clean SIGTERM, CURVE)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from zfedtest import (PYTHON, PYTHON_PACKAGE_DIR, SOURCE_DIR, Cluster, binary, fib_sum, main,
                      wait_for)

sys.path.insert(0, PYTHON_PACKAGE_DIR)
import zfed  # noqa: E402
from zfed import client as zc  # noqa: E402

VECAVG_TASKS = [{"vector": [1, 2.5, -3], "samples": 1}, {"vector": [3, 2, 1e-3], "samples": 2},
                {"vector": [0, 7, 0.1], "samples": 5}]


def c_version():
    out = subprocess.run([binary("zfed-controller"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    return re.search(r"(\d+\.\d+\.\d+)", out).group(1)


class Package(unittest.TestCase):

    def test_installs_into_a_fresh_venv_without_the_network(self):
        root = tempfile.mkdtemp(prefix="zfed-venv-")
        try:
            # A copy, so the in-tree build leaves nothing in the source tree.
            source = shutil.copytree(PYTHON_PACKAGE_DIR, os.path.join(root, "src"),
                                     ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                   "__pycache__"))
            venv = os.path.join(root, "venv")
            subprocess.run([PYTHON, "-m", "venv", "--system-site-packages", venv], check=True,
                           timeout=120)
            pip = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q",
                                  "--no-index", "--no-build-isolation", source],
                                 capture_output=True, text=True, timeout=300)
            self.assertEqual(pip.returncode, 0, pip.stdout + pip.stderr)
            python = os.path.join(venv, "bin", "python")
            probe = subprocess.run(
                [python, "-c", "import zfed, zfed.worker, zfed.models, zfed.safetensors, "
                 "zfed.controller; print(zfed.__version__, zfed.PROTOCOL_VERSION, "
                 "zfed.__file__)"], capture_output=True, text=True, timeout=60, cwd=root)
            self.assertEqual(probe.returncode, 0, probe.stderr)
            version, protocol, where = probe.stdout.split()
            self.assertTrue(where.startswith(venv), where)  # the installed copy
            self.assertEqual(version, c_version())
            with open(os.path.join(SOURCE_DIR, "include", "zfed", "zfed_msg.h")) as header:
                c_protocol = re.search(r"#define ZFED_PROTOCOL_VERSION (\d+)",
                                       header.read()).group(1)
            self.assertEqual(protocol, c_protocol)
            script = os.path.join(venv, "bin", "zfed-py-worker")
            shown = subprocess.run([script, "--version"], capture_output=True, text=True,
                                   timeout=60)
            self.assertEqual(shown.returncode, 0, shown.stderr)
            self.assertIn(c_version(), shown.stdout)
            # The installed console script serves a job of the C controller.
            with Cluster("venv") as cluster:
                cluster.start_broker()
                cluster.start("venv-worker", [script, "zfed.services:fib", "--connect",
                                              cluster.endpoint, "--name", "venv-worker"])
                cluster.wait_workers(1)
                result = cluster.run_controller("--job-id", "venv", "--rounds", "2",
                                                "--levels", "10,30", "--no-progress")
                self.assertEqual(result.returncode, 0, result.err)
                rounds = cluster.summary("venv")["rounds"]
                self.assertEqual([r["sum"] for r in rounds[1]["results"]],
                                 [str(fib_sum(10)), str(fib_sum(30))])
                self.assertEqual({r["worker"] for r in rounds[1]["results"]}, {"venv-worker"})
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def test_source_version_is_the_c_version(self):
        self.assertEqual(zfed.__version__, c_version())
        with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as handle:
            self.assertIn("project(zfed VERSION %s " % zfed.__version__, handle.read())

    def test_bad_targets_are_refused_with_exit_2(self):
        env = dict(os.environ, PYTHONPATH=PYTHON_PACKAGE_DIR + os.pathsep +
                   os.path.dirname(os.path.abspath(__file__)))
        for target, words in (("py_services:undecorated", "decorate it with @zfed.service"),
                              ("py_services:nothing", "has no attribute 'nothing'"),
                              ("no_such_module:f", "No module named"),
                              ("py_services", "expected MODULE:FUNCTION")):
            run = subprocess.run([PYTHON, "-m", "zfed.worker", target], env=env,
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(run.returncode, 2, run.stderr)
            self.assertIn(words, run.stderr)


class ValueServices(unittest.TestCase):
    """Python workers and C workers give the C controller the same results."""

    def run_jobs(self, cluster, prefix):
        fib = cluster.run_controller("--job-id", prefix + "-fib", "--rounds", "3", "--levels",
                                     "10,100,1000", "--aggregate", "mean", "--no-progress")
        self.assertEqual(fib.returncode, 0, fib.err)
        path = os.path.join(cluster.dir, prefix + "-vecavg.json")
        with open(path, "w") as handle:
            import json
            json.dump({"service": "vecavg", "rounds": 3, "tasks": 3,
                       "task_params": VECAVG_TASKS}, handle)
        vec = cluster.run_controller("--job-id", prefix + "-vecavg", "--job", path,
                                     "--no-progress")
        self.assertEqual(vec.returncode, 0, vec.err)
        out = {}
        for job in ("fib", "vecavg"):
            summary = cluster.summary("%s-%s" % (prefix, job))
            self.assertEqual(summary["status"], "completed")
            out[job] = [(cluster.read_json("%s-%s" % (prefix, job), "rounds/round-%06d.json"
                                           % r["round"])["aggregate_exact"], r["aggregate"],
                         [{k: v for k, v in x.items() if k not in ("worker", "worker_id")}
                          for x in r["results"]]) for r in summary["rounds"]]
            workers = {x["worker"] for r in summary["rounds"] for x in r["results"]}
            out[job + "-workers"] = workers
        return out

    def test_python_workers_give_the_c_controller_the_c_workers_aggregates(self):
        with Cluster("py-values") as cluster:
            cluster.start_broker()
            python = [cluster.start_py_worker("zfed.services:fib", "--credit", "2",
                                              name="py-fib"),
                      cluster.start_py_worker("zfed.services:vecavg", "--concurrency", "2",
                                              name="py-vec")]
            cluster.wait_workers(1)
            cluster.wait_workers(2, service="vecavg")
            from_python = self.run_jobs(cluster, "py")
            self.assertEqual(from_python["fib-workers"], {"py-fib"})
            self.assertEqual(from_python["vecavg-workers"], {"py-vec.0", "py-vec.1"})
            for process in python:
                self.assertEqual(process.stop(), 0, process.log())
            cluster.start_worker()
            cluster.start_worker("--service", "vecavg")
            cluster.wait_workers(1)
            cluster.wait_workers(1, service="vecavg")
            from_c = self.run_jobs(cluster, "c")
            self.assertEqual(from_python["fib"], from_c["fib"])
            self.assertEqual(from_python["vecavg"], from_c["vecavg"])

    def test_refusals_match_the_c_workers(self):
        # The same bad task to a C worker and to a Python one: same code,
        # field and message.
        cases = [("fib", {"fibonacci_level": 0}, "0"), ("fib", {"level": 5}, "0"),
                 ("fib", {"fibonacci_level": 5}, "1.50"),
                 ("vecavg", {"vector": [1, 2], "samples": 1}, [0.0, 0.0, 0.0]),
                 ("vecavg", {"vector": [], "samples": 1}, [0.0])]
        with Cluster("py-refusals") as cluster:
            cluster.start_broker()
            cluster.start_worker("--register-as", "c-fib")
            cluster.start_worker("--service", "vecavg", "--register-as", "c-vecavg")
            cluster.start_py_worker("zfed.services:fib")
            cluster.start_py_worker("zfed.services:vecavg")
            for service in ("c-fib", "c-vecavg", "fib", "vecavg"):
                cluster.wait_workers(1, service=service)
            with zfed.Client(cluster.endpoint, timeout=20) as client:
                for index, (service, params, global_value) in enumerate(cases):
                    task = zc.task("refuse", 0, index, params, global_value)
                    c_side = client.call("c-" + service, task).error
                    py_side = client.call(service, task).error
                    self.assertIsNotNone(c_side, params)
                    self.assertIsNotNone(py_side, params)
                    self.assertEqual((py_side.code, py_side.field, py_side.message),
                                     (c_side.code, c_side.field, c_side.message))


class Runtime(unittest.TestCase):

    def setUp(self):
        self.cluster = Cluster("py-runtime")

    def tearDown(self):
        self.cluster.close()

    def test_a_raising_service_gets_an_error_and_the_worker_keeps_serving(self):
        cluster = self.cluster
        cluster.start_broker()
        worker = cluster.start_py_worker("py_services:flaky", "--site", "site-a", name="flaky")
        cluster.wait_workers(1, service="flaky@site-a")
        self.assertEqual(cluster.mmi("mmi.service", b"flaky@site-a"), b"200")
        self.assertEqual(cluster.mmi("mmi.service", b"flaky"), b"404")
        with zfed.Client(cluster.endpoint) as client:
            raised = client.call("flaky@site-a", zc.task("j", 0, 0, {"mode": "raise"})).error
            self.assertEqual((raised.code, raised.field, raised.task_id), (500, "", 0))
            self.assertIn("ZeroDivisionError", raised.message)
            self.assertIn("by zero", raised.message)  # the exception's own text
            refused = client.call("flaky@site-a", zc.task("j", 0, 1, {"mode": "param"})).error
            self.assertEqual((refused.code, refused.field, refused.message),
                             (422, "level", "must be at least 1, got 0"))
            answer = client.call("flaky@site-a", zc.task("j", 4, 2, {}, None, 3, attempt=1))
            self.assertEqual(answer.result.outputs,
                             {"site": "site-a", "round": 4, "task": 2, "job": "j",
                              "attempt": 1, "worker": "flaky"})
            # A task's "site" parameter must be ours; the function sees it in ctx.
            answer = client.call("flaky@site-a", zc.task("j", 4, 5, {"site": "site-a"}))
            self.assertEqual(answer.result.outputs["site"], "site-a")
            elsewhere = client.call("flaky@site-a", zc.task("j", 4, 6, {"site": "site-b"}))
            self.assertEqual((elsewhere.error.code, elsewhere.error.field), (422, "site"))
            self.assertIn("site-b", elsewhere.error.message)
            # Two body frames: 400 naming no task, and still serving.
            client.send("flaky@site-a", [zc.task("j", 0, 3, {}).encode(), b"extra"])
            _, bodies = client.receive()
            bad = zfed.protocol.decode(bodies[0].bytes)
            self.assertEqual((bad.code, bad.job_id), (400, ""))
            self.assertIn("exactly one frame", bad.message)
        self.assertTrue(worker.alive())
        self.assertIn("ZeroDivisionError", worker.log())  # the traceback is logged

    def test_sigterm_stops_cleanly_even_while_a_function_runs(self):
        self.sigterm_while_computing(2)  # on a compute thread

    def test_sigterm_stops_cleanly_while_a_function_runs_on_the_io_thread(self):
        self.sigterm_while_computing(1)  # one thread: the function runs on the I/O thread

    def sigterm_while_computing(self, connections):
        cluster = self.cluster
        cluster.start_broker()
        worker = cluster.start_py_worker("py_services:flaky", "--concurrency", str(connections),
                                         "-v")
        cluster.wait_workers(connections, service="flaky")
        client = zfed.Client(cluster.endpoint)
        try:
            client.send("flaky", [zc.task("j", 0, 0, {"mode": "sleep", "seconds": 60}).encode()])
            wait_for(lambda: cluster.status()["services"]["flaky"]["in_flight"] == 1,
                     what="the task to be dispatched")
            def gone(counters):
                # A DISCONNECT counts as "left".  When the busy connection's
                # DISCONNECT makes the broker hand its request to the other
                # one, which has said goodbye too but whose DISCONNECT the
                # broker has not read yet, that one is dropped as unroutable.
                return counters["workers_left"] + counters["unroutable"]
            before = gone(cluster.status()["counters"])
            worker.signal(signal.SIGTERM)
            worker.proc.wait(10)
            self.assertEqual(worker.proc.returncode, 0, worker.log())
            # DISCONNECT on every connection: the broker knows long before
            # it would expire them (7.5 s).
            deadline = time.monotonic() + 5
            while True:
                status = cluster.status()
                if gone(status["counters"]) - before == connections:
                    break
                self.assertLess(time.monotonic(), deadline, "%d connection(s) gone:\n%s"
                                % (gone(status["counters"]) - before, worker.log()))
                time.sleep(0.05)
            self.assertGreaterEqual(status["counters"]["workers_left"], 1)
            self.assertEqual(status["counters"]["workers_expired"], 0)
            self.assertNotIn("flaky", {s for s, v in status["services"].items()
                                       if v["workers"]})
            self.assertIn("stopped after", worker.log())
            self.assertEqual("computing on the I/O thread" in worker.log(), connections == 1)
        finally:
            client.close()

    def test_heartbeats_go_on_while_a_long_function_computes(self):
        # On the I/O thread (the watchdog heartbeats), then on a compute thread.
        for threads in ("1", "2"):
            with self.subTest(threads=threads):
                self.heartbeats_while_computing(threads)
                self.cluster.close()
                self.cluster = Cluster("py-runtime")

    def heartbeats_while_computing(self, threads):
        cluster = self.cluster
        # No busy allowance: a worker silent while it computes would expire.
        cluster.start_broker("--heartbeat-ms", "200", "--liveness", "4", "--busy-timeout", "0")
        worker = cluster.start_py_worker("py_services:flaky", "--heartbeat-ms", "200",
                                         "--liveness", "4", "--threads", threads)
        cluster.wait_workers(1, service="flaky")
        self.assertEqual("computing on the I/O thread" in worker.log(), threads == "1")
        with zfed.Client(cluster.endpoint) as client:
            # 3 s is 15 heartbeat intervals, almost 4 times the 800 ms expiry.
            answer = client.call("flaky", zc.task("j", 0, 0, {"mode": "sleep", "seconds": 3}))
            self.assertIsNotNone(answer.result)
        counters = cluster.status()["counters"]
        self.assertEqual(counters["workers_expired"], 0)
        self.assertEqual(counters["redispatched"], 0)
        self.assertEqual(counters["dispatched"], 1)
        self.assertNotIn("registering again", worker.log())  # nor did it miss the broker's

    def test_reconnects_to_a_broker_that_comes_back(self):
        cluster = self.cluster
        broker = cluster.start_broker("--heartbeat-ms", "100")
        endpoint = cluster.endpoint
        worker = cluster.start_py_worker("zfed.services:fib", "--heartbeat-ms", "100")
        cluster.wait_workers(1)
        broker.kill()
        cluster.start_broker("--heartbeat-ms", "100", endpoint=endpoint)
        cluster.wait_workers(1, timeout=20)
        result = cluster.run_controller("--job-id", "back", "--rounds", "1", "--no-progress")
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("registering again", worker.log())

    def test_curve_keys_in_czmq_format(self):
        from test_security import Keys, curve_socket
        cluster = self.cluster
        keys = Keys(os.path.join(cluster.dir, "keys"))
        controller = keys.issue("controller-1", "controllers")
        cluster.start_broker(*keys.broker_args())
        cluster.start_py_worker("zfed.services:fib", *keys.peer_args(
            keys.issue("py-worker", "workers")), name="py-curve")
        # A key the broker does not know never registers.
        stranger = cluster.start_py_worker("zfed.services:fib", *keys.peer_args(
            keys.issue("stranger", None)), name="py-stranger")

        def registered():
            socket = curve_socket(cluster, keys, controller)
            try:
                socket.send_multipart([b"", b"MDPC01", b"mmi.status", b""])
                if not socket.poll(5000):
                    return None
                import msgpack
                status = msgpack.unpackb(socket.recv_multipart()[3], raw=False)
                return status if status["services"].get("fib", {}).get("workers") else None
            finally:
                socket.close()
        status = wait_for(registered, 10, what="the CURVE worker")
        self.assertEqual(status["services"]["fib"]["workers"], 1)
        result = cluster.run_controller("--job-id", "secure", "--rounds", "2", "--no-progress",
                                        *keys.peer_args(controller))
        self.assertEqual(result.returncode, 0, result.err)
        workers = {r["worker"] for r in cluster.summary("secure")["rounds"][0]["results"]}
        self.assertEqual(workers, {"py-curve"})
        wait_for(lambda: registered()["counters"]["auth_refused"] >= 1, 10,
                 what="the stranger to be refused")
        self.assertTrue(stranger.alive())


if __name__ == "__main__":
    main()
