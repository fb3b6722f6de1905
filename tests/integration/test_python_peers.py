"""Interop: Python peers written from schemas/ alone (examples/python) work
with zfed's C programs in both directions, with and without zfed.batch, and
their codec agrees with the schema's hex vectors."""

import json
import os
import subprocess
import sys
import unittest

from zfedtest import Cluster, SOURCE_DIR, fib_sum, main

PEERS = os.path.join(SOURCE_DIR, "examples", "python")
PYTHON = "/usr/bin/python3"


class PythonPeers(unittest.TestCase):

    def test_codec_agrees_with_the_vectors(self):
        result = subprocess.run([PYTHON, os.path.join(PEERS, "check_vectors.py")],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_codec_counts_values_as_the_c_decoder_does(self):
        # PROTOCOL.md 7.2 S4: at most 1,048,576 msgpack values per body.  A
        # task around a global array of N zeros holds N + 13 values.
        package = os.path.join(SOURCE_DIR, "python")
        sys.path.insert(0, package)
        try:
            import zfed.protocol as zp
        finally:
            sys.path.remove(package)
        self.assertEqual(zp.VALUES_MAX, 1048576)

        def body(zeros):
            return zp.pack(["zfed.task", 1, "many", 1, 2, 3, {"fibonacci_level": 10},
                            [0, [0] * zeros]])

        self.assertEqual(zp.decode(body(zp.VALUES_MAX - 13)).global_value,
                         [0] * (zp.VALUES_MAX - 13))
        with self.assertRaises(zp.DecodeError) as refused:
            zp.decode(body(zp.VALUES_MAX - 12))
        self.assertIn("more than 1048576 values", str(refused.exception))

    def test_python_workers_serve_the_c_controller(self):
        with Cluster("py-workers") as cluster:
            cluster.start_broker()
            for index in range(3):
                cluster.start("py-worker-%d" % index,
                              [PYTHON, os.path.join(PEERS, "worker.py"), "--connect",
                               cluster.endpoint, "--name", "py-worker-%d" % index])
            cluster.wait_workers(3)
            result = cluster.run_controller("--job-id", "py-workers", "--rounds", "3",
                                            "--levels", "10,100,1000")
            self.assertEqual(result.returncode, 0, result.err)
            summary = cluster.summary("py-workers")
            for round_ in summary["rounds"]:
                self.assertEqual([r["sum"] for r in round_["results"]],
                                 [str(fib_sum(level)) for level in (10, 100, 1000)])
            workers = {r["worker"] for round_ in summary["rounds"] for r in round_["results"]}
            self.assertTrue(workers <= {"py-worker-0", "py-worker-1", "py-worker-2"}, workers)
            self.assertEqual(cluster.status()["counters"]["malformed"], 0)

    def test_python_controller_drives_c_workers(self):
        with Cluster("py-controller") as cluster:
            cluster.start_broker()
            for _ in range(3):
                cluster.start_worker()
            cluster.wait_workers(3)
            out = os.path.join(cluster.dir, "summary.json")
            result = subprocess.run([PYTHON, os.path.join(PEERS, "controller.py"), "--connect",
                                     cluster.endpoint, "--job-id", "py-controller", "--rounds",
                                     "3", "--levels", "10,20,30", "--aggregate", "fedavg",
                                     "--out", out], capture_output=True, text=True, timeout=60)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            with open(out) as handle:
                summary = json.load(handle)
            self.assertEqual(summary["status"], "completed")
            sums = [fib_sum(level) for level in (10, 20, 30)]
            for round_ in summary["rounds"]:
                self.assertEqual([r["sum"] for r in round_["results"]], [str(s) for s in sums])
                self.assertTrue(all(r["worker"].startswith("worker-")
                                    for r in round_["results"]))
            # fedavg weighted by terms, as the C controller computes it.
            c_side = cluster.run_controller("--job-id", "c-controller", "--rounds", "1",
                                            "--levels", "10,20,30", "--no-progress")
            self.assertEqual(c_side.returncode, 0, c_side.err)
            self.assertEqual(summary["rounds"][0]["aggregate"],
                             cluster.summary("c-controller")["rounds"][0]["aggregate"])

    def run_python_controller(self, cluster, job_id, *args):
        out = os.path.join(cluster.dir, job_id + ".json")
        result = subprocess.run([PYTHON, os.path.join(PEERS, "controller.py"), "--connect",
                                 cluster.endpoint, "--job-id", job_id, "--out", out,
                                 "--no-progress"] + list(args),
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        with open(out) as handle:
            return json.load(handle)

    def test_c_controller_batches_to_python_workers(self):
        # 9 tasks in batches of 4: two zfed.batch requests and one plain task
        # per round, answered by Python workers item by item.
        levels = (10, 100, 1000, 20, 30, 40, 50, 60, 70)
        with Cluster("py-workers-batch") as cluster:
            cluster.start_broker()
            for index in range(2):
                cluster.start("py-worker-%d" % index,
                              [PYTHON, os.path.join(PEERS, "worker.py"), "--connect",
                               cluster.endpoint, "--name", "py-worker-%d" % index])
            cluster.wait_workers(2)
            before = cluster.status()["counters"]
            result = cluster.run_controller("--job-id", "py-batch", "--rounds", "3", "--batch",
                                            "4", "--levels", ",".join(map(str, levels)),
                                            "--no-progress")
            self.assertEqual(result.returncode, 0, result.err)
            summary = cluster.summary("py-batch")
            self.assertEqual(summary["status"], "completed")
            for round_ in summary["rounds"]:
                self.assertEqual([(r["task"], r["sum"]) for r in round_["results"]],
                                 [(task, str(fib_sum(level)))
                                  for task, level in enumerate(levels)])
                self.assertEqual((round_["errors"], round_["invalid"]), (0, 0))
            workers = {r["worker"] for round_ in summary["rounds"] for r in round_["results"]}
            self.assertTrue(workers <= {"py-worker-0", "py-worker-1"}, workers)
            # Batched indeed: 3 requests a round, not 9 (nothing was resent).
            after = cluster.status()["counters"]
            self.assertEqual(after["requests"] - before["requests"], 3 * 3)
            self.assertEqual(after["replies"] - before["replies"], 3 * 3)
            self.assertEqual(after["malformed"], 0)
            # The same job unbatched gives the same aggregates.
            plain = cluster.run_controller("--job-id", "py-plain", "--rounds", "3", "--levels",
                                           ",".join(map(str, levels)), "--no-progress")
            self.assertEqual(plain.returncode, 0, plain.err)
            self.assertEqual([r["aggregate"] for r in summary["rounds"]],
                             [r["aggregate"] for r in cluster.summary("py-plain")["rounds"]])

    def test_python_controller_batches_to_c_workers(self):
        # 5 tasks in batches of 4: one zfed.batch and one plain task per round.
        levels = "10,20,30,40,50"
        with Cluster("py-controller-batch") as cluster:
            cluster.start_broker()
            for _ in range(2):
                cluster.start_worker("--credit", "2")
            cluster.wait_workers(2)
            before = cluster.status()["counters"]
            summary = self.run_python_controller(cluster, "py-batch", "--rounds", "3",
                                                 "--levels", levels, "--batch", "4")
            after = cluster.status()["counters"]
            self.assertEqual(summary["status"], "completed")
            self.assertEqual(summary["batch"], 4)
            self.assertEqual(summary["counters"]["requests"], 3 * 2)
            self.assertEqual(after["requests"] - before["requests"], 3 * 2)
            for round_ in summary["rounds"]:
                self.assertEqual([(r["task"], r["sum"]) for r in round_["results"]],
                                 [(task, str(fib_sum(int(level))))
                                  for task, level in enumerate(levels.split(","))])
                self.assertEqual((round_["errors"], round_["invalid"], round_["resends"]),
                                 (0, 0, 0))
                self.assertTrue(all(r["worker"].startswith("worker-")
                                    for r in round_["results"]))
            # The C controller, batched the same way, reaches the same
            # aggregate in every round.
            c_side = cluster.run_controller("--job-id", "c-batch", "--rounds", "3", "--levels",
                                            levels, "--batch", "4", "--no-progress")
            self.assertEqual(c_side.returncode, 0, c_side.err)
            self.assertEqual([r["aggregate"] for r in summary["rounds"]],
                             [r["aggregate"] for r in cluster.summary("c-batch")["rounds"]])
            self.assertEqual(cluster.status()["counters"]["malformed"], 0)

    def test_python_worker_answers_an_overflowing_batch_with_413s(self):
        # In-process, with the body limit lowered so that three level-100
        # results (about 2 KB each, with their sequence) do not fit together
        # but two do: the third becomes a 413 naming its task, and the batch
        # keeps its length.
        sys.path.insert(0, PEERS)
        try:
            import worker as py_worker
            import zfed.protocol as zp  # the package worker.py put on the path
        finally:
            sys.path.remove(PEERS)
        peer = py_worker.Worker(py_worker.parse_args(["--name", "py-fit", "-q"]))
        tasks = [zp.Task(job_id="fit", round=0, task_id=index, attempt=0,
                         params={"fibonacci_level": 100}, global_round=-1,
                         global_value="0").encode() for index in range(3)]
        alone = [peer.answer_task(task) for task in tasks]
        saved = zp.BODY_MAX
        # Room for two results and half of a third: compute_us differs from
        # run to run (and its encoding by a few bytes), half a result never.
        zp.BODY_MAX = zp.batch_size(alone[:2]) + len(alone[2]) // 2
        try:
            reply = peer.answer_batch(zp.encode_batch(tasks))
        finally:
            zp.BODY_MAX = saved
        items = [zp.decode(item) for item in zp.decode_batch(reply)]
        self.assertEqual([item.KIND for item in items],
                         [zp.KIND_RESULT, zp.KIND_RESULT, zp.KIND_ERROR])
        self.assertEqual((items[2].code, items[2].task_id, items[2].job_id), (413, 2, "fit"))
        self.assertIn("send this task alone", items[2].message)


if __name__ == "__main__":
    main()
