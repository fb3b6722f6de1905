"""Poisoned global state (issue 12, part 5): a value that is valid on its own
but makes the next round's global value impossible, and honest inputs that
overflowed in the worker.

- fib: a worker answers with a well-formed sum of 32,768 digits (the most
  a bigint may have).  It used to pass, the aggregate then outgrew the
  global value's 32,768-character limit and every honest worker answered
  the next round 422.  Now a sum no level-L sequence can have is refused,
  counted (invalid) and logged, and the job completes with the honest
  aggregate.
- vecavg: finite inputs of 1.7e308 made (global + vector) / 2 overflow to
  infinity in the worker and a valid job failed; now it completes with
  the exact midpoints.
"""

import json
import os
import unittest

import msgpack

from zfedtest import Cluster, HostileWorker, behind, figure, fib_outputs, fib_sum, main

FORGED_DIGITS = 32768


class Forger(HostileWorker):
    """An MDP worker that answers every fib task with a valid-looking sum of
    32,768 digits (right terms, right last term, no sequence)."""

    def __init__(self, cluster):
        super().__init__(cluster, self._forge)

    @staticmethod
    def _forge(task):
        outputs = fib_outputs(task[6]["fibonacci_level"])
        outputs["sum"] = "9" * FORGED_DIGITS
        outputs["sequence"] = []
        body = ["zfed.result", 1, task[2], task[3], task[4], task[5], "forger", 1, outputs]
        return [msgpack.packb(body, use_bin_type=True)]

    @property
    def forged(self):
        return self.replies


class PoisonedFib(unittest.TestCase):

    def test_a_sum_too_big_for_its_level_is_refused_and_counted(self):
        with Cluster("poison-fib") as cluster:
            cluster.start_broker()
            # The forger registers first: the broker's first task is its.
            forger = behind(cluster, Forger(cluster), [1] * 4)
            try:
                result = cluster.run_controller(
                    "--job-id", "poison", "--rounds", "3", "--tasks", "5", "--retries", "5",
                    "--task-timeout", "0.5", "--aggregate", "sum", "--no-progress", timeout=60)
            finally:
                forger.close()
            self.assertEqual(result.returncode, 0, result.err)
            self.assertGreaterEqual(forger.forged, 1)
            summary = cluster.summary("poison")
            # Every round aggregated the honest sums only: 5 x 88.
            self.assertEqual([r["aggregate"] for r in summary["rounds"]], [str(5 * 88)] * 3)
            records = [cluster.read_json("poison", os.path.join("rounds", "round-%06d.json" % r))
                       for r in range(3)]
            # Each forged result was refused and counted in its round's record.
            self.assertEqual(sum(r["invalid"] for r in records), forger.forged)
            figure("32,768-digit sums refused (invalid in the records)", forger.forged)
            figure("aggregates", ", ".join(r["aggregate"] for r in summary["rounds"]))
            self.assertTrue(all(r["sum"] == str(fib_sum(10)) for record in records
                                for r in record["results"]))
            self.assertNotIn("forger", [r["worker"] for record in records
                                        for r in record["results"]])
            self.assertIn("result from forger refused: sum: has 32768 digits: more than the sum "
                          "of the first 10 Fibonacci numbers can be (2 digits)", result.err)


class OverflowingVecavg(unittest.TestCase):

    def test_finite_inputs_near_the_largest_double_complete(self):
        with Cluster("poison-vecavg") as cluster:
            cluster.start_broker()
            for _ in range(3):
                cluster.start_worker("--service", "vecavg")
            cluster.wait_workers(3, service="vecavg")
            vectors = [[1.7e308, -1.7e308, 1.0e308], [1.7e308, -1.7e308, -1.0e308],
                       [1.6e308, -1.6e308, 1.7e308]]
            job = {"service": "vecavg", "rounds": 4, "tasks": 3, "aggregate": "mean",
                   "task_params": [{"vector": vector, "samples": 1} for vector in vectors]}
            path = os.path.join(cluster.dir, "huge.json")
            with open(path, "w") as handle:
                json.dump(job, handle)
            result = cluster.run_controller("--job-id", "huge", "--job", path, "--no-progress")
            self.assertEqual(result.returncode, 0, result.err)

            # The same steps here, without overflow: halves first.
            def midpoint(a, b):
                return a / 2 + b / 2

            def mean(values):
                return sum(v / len(values) for v in values)
            global_ = [0.0, 0.0, 0.0]
            expected = []
            for _ in range(4):
                steps = [[midpoint(g, v) for g, v in zip(global_, vector)] for vector in vectors]
                global_ = [mean([step[i] for step in steps]) for i in range(3)]
                expected.append(global_)
            rounds = cluster.summary("huge")["rounds"]
            for got, want in zip([r["aggregate"] for r in rounds], expected):
                for value, reference in zip(got, want):
                    self.assertTrue(abs(value) < float("inf"))
                    self.assertAlmostEqual(value / reference, 1.0, places=12)
            # Round 1 is where the worker used to reach infinity: 0.83e308 +
            # 1.7e308 > 1.797e308.
            self.assertGreater(rounds[1]["aggregate"][0], 1.2e308)
            self.assertGreater(rounds[3]["aggregate"][0], 1.5e308)
            figure("vecavg aggregates near the largest double, round 3",
                   ", ".join("%.6g" % value for value in rounds[3]["aggregate"]))


if __name__ == "__main__":
    main()
