"""Interop: Python peers written from schemas/ alone (examples/python) work
with zfed's C programs in both directions, and their codec agrees with the
schema's hex vectors."""

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


if __name__ == "__main__":
    main()
