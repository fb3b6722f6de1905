"""zfed.Job / zfed.run_job: the Python front-end over zfed-controller.
It writes the job file, runs the C controller, calls back once per closed
round with the round record (and a model round's aggregate, memory-mapped
from models/round-NNNNNN.safetensors), and returns the summary, the exit
status and the paths; a callback that raises interrupts the job, which
resumes; bad settings raise JobError naming the key."""

import json
import os
import sys
import unittest

import numpy as np

from zfedtest import PYTHON_PACKAGE_DIR, Cluster, binary, fib_sum, main

sys.path.insert(0, PYTHON_PACKAGE_DIR)
import zfed  # noqa: E402
from zfed import models as zm  # noqa: E402

# A stand-in for the C controller's model rounds, until it writes them
# (WORKDIR.md): reads --job, writes each round's aggregate as a
# safetensors file, then its record, each whole (NAME.tmp, rename).
STUB_CONTROLLER = r'''#!/usr/bin/python3
import json, os, sys
sys.path.insert(0, %(package)r)
import numpy as np
from zfed import safetensors
job = json.load(open(sys.argv[sys.argv.index("--job") + 1]))
folder = os.path.join(job["workdir"], job["job_id"])
for sub in ("rounds", "models"):
    os.makedirs(os.path.join(folder, sub), exist_ok=True)
def put(path, text):
    with open(path + ".tmp", "w") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)
put(os.path.join(folder, "job.json"), json.dumps(job))
for r in range(job["rounds"]):
    model = {"w": np.full((2, 3), r + 0.5, np.float32), "b": np.arange(4, dtype=np.int64) + r}
    safetensors.save(os.path.join(folder, "models", "round-%%06d.safetensors" %% r), model)
    put(os.path.join(folder, "rounds", "round-%%06d.json" %% r),
        json.dumps({"round": r, "status": "closed", "aggregate": None}))
put(os.path.join(folder, "summary.json"), json.dumps({"job_id": job["job_id"],
    "status": "completed", "rounds_completed": job["rounds"]}))
'''


class Stop(Exception):
    pass


class PythonController(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster("py-controller-api")
        cls.cluster.start_broker()
        for _ in range(2):
            cls.cluster.start_worker()
        cls.cluster.start_py_worker("zfed.services:vecavg", "--concurrency", "3")
        cls.cluster.wait_workers(2)
        cls.cluster.wait_workers(3, service="vecavg")
        # A second broker whose fib workers take 200 ms a task: a job that
        # cannot be over before a callback stops it.
        fast = cls.cluster.endpoint
        cls.slow = cls.cluster.start_broker().endpoint
        cls.cluster.endpoint = fast
        for _ in range(2):
            cls.cluster.start_worker("--delay-ms", "200", endpoint=cls.slow)
        cls.cluster.wait_workers(2, endpoint=cls.slow)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def settings(self, **more):
        return dict(connect=self.cluster.endpoint, workdir=self.cluster.workdir,
                    controller=binary("zfed-controller"), stderr=False, **more)

    def test_fib_job_on_c_workers_with_a_callback_per_round(self):
        seen = []
        result = zfed.run_job(on_round=lambda record, model: seen.append((record, model)),
                              job_id="py-fib", rounds=4, task_params=[
                                  {"fibonacci_level": 10}, {"fibonacci_level": 20},
                                  {"fibonacci_level": 30}], tasks=3, aggregate="median",
                              **self.settings())
        self.assertTrue(result.ok, result.stderr)
        self.assertEqual((result.returncode, result.status), (0, "completed"))
        self.assertEqual(result.job_dir, os.path.join(self.cluster.workdir, "py-fib"))
        self.assertEqual([record["round"] for record, _ in seen], [0, 1, 2, 3])
        self.assertEqual([model for _, model in seen], [None] * 4)  # a value service
        for record, _ in seen:
            self.assertEqual(record, result.record(record["round"]))
            self.assertEqual(record["aggregate"], str(fib_sum(20)))
            self.assertEqual([r["worker"][:7] for r in record["results"]], ["worker-"] * 3)
        self.assertEqual(result.summary["rounds_completed"], 4)
        with open(result.job_file) as handle:  # what ran, as the controller recorded it
            self.assertEqual(json.load(handle)["aggregate"], "median")

    def test_vecavg_job_on_python_workers_matches_the_command_line(self):
        tasks = [{"vector": [1, 2, 3], "samples": 1}, {"vector": [3, 2, 1], "samples": 2},
                 {"vector": [0.5, 0, -1], "samples": 4}]
        job = zfed.Job(job_id="py-vec", service="vecavg", rounds=3, tasks=3, task_params=tasks,
                       **self.settings())
        aggregates = []
        job.on_round = lambda record, model: aggregates.append(record["aggregate_exact"])
        result = job.run()
        self.assertTrue(result.ok, result.stderr)
        path = os.path.join(self.cluster.dir, "vec.json")
        with open(path, "w") as handle:
            json.dump({"service": "vecavg", "rounds": 3, "tasks": 3, "task_params": tasks},
                      handle)
        direct = self.cluster.run_controller("--job-id", "cli-vec", "--job", path,
                                             "--no-progress")
        self.assertEqual(direct.returncode, 0, direct.err)
        self.assertEqual(aggregates, [
            self.cluster.read_json("cli-vec", "rounds/round-%06d.json" % r)["aggregate_exact"]
            for r in range(3)])

    def test_a_raising_callback_interrupts_the_job_which_resumes(self):
        def stop_after_round_1(record, model):
            if record["round"] == 1:
                raise Stop()
        rounds = 12  # 2.4 s at least, the first two of them before the stop
        with self.assertRaises(Stop):
            zfed.run_job(on_round=stop_after_round_1, job_id="py-stop", rounds=rounds, tasks=2,
                         **dict(self.settings(), connect=self.slow))
        job_dir = os.path.join(self.cluster.workdir, "py-stop")
        with open(os.path.join(job_dir, "summary.json")) as handle:
            summary = json.load(handle)
        self.assertEqual(summary["status"], "interrupted")
        done = summary["rounds_completed"]
        self.assertLess(done, rounds)
        later = []
        result = zfed.resume_job("py-stop", workdir=self.cluster.workdir, connect=self.slow,
                                 controller=binary("zfed-controller"), stderr=False,
                                 on_round=lambda record, model: later.append(record["round"]))
        self.assertTrue(result.ok, result.stderr)
        self.assertEqual(later, list(range(done, rounds)))
        self.assertEqual(result.summary["status"], "completed")

    def test_bad_settings_raise_job_error_naming_the_key(self):
        with self.assertRaises(zfed.JobError) as caught:
            zfed.run_job(job_id="py-bad", rounds=2, quorum=9, tasks=3, **self.settings())
        self.assertIn("quorum", str(caught.exception))
        with self.assertRaises(zfed.JobError) as caught:
            zfed.run_job(job_id="py-bad2", bogus=1, **self.settings())
        self.assertIn("bogus: unknown setting", str(caught.exception))
        self.assertFalse(os.path.exists(os.path.join(self.cluster.workdir, "py-bad")))

    def test_a_failed_job_is_a_result_not_an_exception(self):
        result = zfed.run_job(job_id="py-fails", service="fib", rounds=1, tasks=1,
                              round_timeout=0.3, **dict(self.settings(),
                                                        connect="tcp://127.0.0.1:1"))
        self.assertEqual((result.returncode, result.status), (1, "failed"))
        self.assertIn("deadline", result.error)

    def test_model_rounds_arrive_memory_mapped(self):
        stub = os.path.join(self.cluster.dir, "stub-controller")
        with open(stub, "w") as handle:
            handle.write(STUB_CONTROLLER % {"package": PYTHON_PACKAGE_DIR})
        os.chmod(stub, 0o755)
        seen = []
        result = zfed.run_job(on_round=lambda record, model: seen.append((record, model)),
                              job_id="py-models", service="tensoravg", rounds=3,
                              **dict(self.settings(), controller=stub))
        self.assertTrue(result.ok, result.stderr)
        self.assertEqual([record["round"] for record, _ in seen], [0, 1, 2])
        import mmap
        for record, model in seen:
            r = record["round"]
            self.assertIsInstance(model, zm.Model)
            self.assertEqual(list(model), ["w", "b"])
            self.assertEqual(model["w"].tolist(), np.full((2, 3), r + 0.5).tolist())
            self.assertEqual(model["b"].tolist(), list(range(r, r + 4)))
            self.assertIsInstance(model.buffer.base.obj, mmap.mmap)
            self.assertFalse(model["w"].flags.writeable)
        self.assertEqual(result.model(2)["w"][0, 0], np.float32(2.5))


if __name__ == "__main__":
    main()
