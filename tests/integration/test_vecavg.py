"""The second service, vecavg: vectors averaged element-wise with fedavg, and
shapes checked at both ends, never bent to fit."""

import json
import os
import unittest
from fractions import Fraction

from zfedtest import Cluster, ScriptedWorker, main, wait_for

TASKS = [{"vector": [1, 2, 3], "samples": 1},
         {"vector": [3, 2, 1], "samples": 2},
         {"vector": [0, 0, 0], "samples": 1}]


def job_file(cluster, name, **settings):
    path = os.path.join(cluster.dir, name + ".json")
    with open(path, "w") as handle:
        json.dump(dict({"service": "vecavg"}, **settings), handle)
    return path


class VecAvg(unittest.TestCase):

    def setUp(self):
        self.cluster = Cluster("vecavg")
        self.cluster.start_broker()

    def tearDown(self):
        self.cluster.close()

    def test_fedavg_of_vectors_converges_on_the_weighted_mean(self):
        for _ in range(3):
            self.cluster.start_worker("--service", "vecavg")
        self.cluster.wait_workers(3, service="vecavg")
        path = job_file(self.cluster, "converge", rounds=6, tasks=3, task_params=TASKS)
        result = self.cluster.run_controller("--job-id", "converge", "--job", path)
        self.assertEqual(result.returncode, 0, result.err)
        summary = self.cluster.summary("converge")
        # Every task moves the global weights halfway to its vector; fedavg
        # weights by samples.  Computed here exactly, independently.
        model = [Fraction(0)] * 3
        total = sum(task["samples"] for task in TASKS)
        for round_ in summary["rounds"]:
            model = [sum(task["samples"] * (model[i] + task["vector"][i]) / 2 for task in TASKS)
                     / total for i in range(3)]
            self.assertEqual(round_["aggregate"], [float(value) for value in model])
            self.assertEqual([r["dims"] for r in round_["results"]], [3, 3, 3])
        mean = [sum(t["samples"] * t["vector"][i] for t in TASKS) / total for i in range(3)]
        self.assertTrue(all(abs(a - b) < 0.05 for a, b in zip(model, mean)))
        self.assertEqual(summary["best"]["metric"], "results")  # no scalar aggregate
        record = self.cluster.read_json("converge", "rounds/round-000000.json")
        self.assertEqual(record["global_in"], {"round": -1, "value": [0.0, 0.0, 0.0]})

    def test_result_of_the_wrong_shape_is_refused_naming_worker_and_task(self):
        worker = ScriptedWorker(self.cluster, credit=16, service="vecavg", name="reshaper")
        self.cluster.wait_workers(1, service="vecavg")
        path = job_file(self.cluster, "shape", rounds=1, tasks=2, task_params=TASKS[:2],
                        task_timeout=0.5, retries=1)
        controller = self.cluster.start_controller("--job-id", "shape", "--job", path)
        worker.wait_held(2)
        worker.reply(0, 0, 0, {"weights": [0.5, 1.0, 1.5], "samples": 1})
        worker.reply(0, 1, 0, {"weights": [1.5, 1.0], "samples": 2})  # one value short
        worker.wait_held(1)  # the controller sends task 1 again
        worker.reply(0, 1, 1, {"weights": [1.5, 1.0, 0.5], "samples": 2})
        wait_for(lambda: not controller.alive(), 15, what="the job to finish")
        self.assertEqual(controller.proc.returncode, 0, controller.log())
        round_ = self.cluster.summary("shape")["rounds"][0]
        self.assertEqual(round_["invalid"], 1)
        self.assertEqual([r["attempt"] for r in round_["results"]], [0, 1])
        self.assertIn("task 1: result from reshaper refused: weights: has 2 values; the task's "
                      "vector has 3", controller.log())
        worker.close()

    def test_task_whose_vector_does_not_fit_the_model_is_refused_by_the_worker(self):
        self.cluster.start_worker("--service", "vecavg")
        self.cluster.wait_workers(1, service="vecavg")
        # The model takes its shape from the first task (3 values).
        path = job_file(self.cluster, "misfit", rounds=1, tasks=2,
                        task_params=[TASKS[0], {"vector": [1, 2], "samples": 1}])
        result = self.cluster.run_controller("--job-id", "misfit", "--job", path)
        self.assertEqual(result.returncode, 1)
        self.assertIn("global: the global weights have 3 values but this task's vector has 2",
                      result.err)


if __name__ == "__main__":
    main()
