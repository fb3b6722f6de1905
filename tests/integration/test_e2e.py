"""End to end: a real broker, real workers and the controller run whole jobs."""

import glob
import json
import os
import unittest
from fractions import Fraction

from zfedtest import SOURCE_DIR, Cluster, fib_sum, fib_last, main


def decimal6(value):
    """Fraction -> zfed's decimal text: at most 6 fraction digits, rounded
    half away from zero, trailing zeros dropped."""
    scaled = abs(value) * 10**6
    rounded = int(scaled) + (1 if scaled - int(scaled) >= Fraction(1, 2) else 0)
    text = "%d.%06d" % divmod(rounded, 10**6)
    text = text.rstrip("0").rstrip(".")
    return ("-" if value < 0 and text != "0" else "") + text


class DemoJob(unittest.TestCase):
    """The seed's job: 5 workers, 5 rounds, fibonacci_level 10."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster("e2e")
        cls.cluster.start_broker()
        for _ in range(5):
            cls.cluster.start_worker()
        cls.cluster.wait_workers(5)
        cls.run_result = cls.cluster.run_controller("--job-id", "demo")
        cls.summary = cls.cluster.summary("demo")

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def test_exit_status_and_progress(self):
        self.assertEqual(self.run_result.returncode, 0, self.run_result.err)
        for round_ in range(5):
            self.assertIn("round %d (%d/5): 5/5 results (quorum 5), aggregate 88"
                          % (round_, round_ + 1), self.run_result.out)
        self.assertIn("best round: 0", self.run_result.out)

    def test_summary_rounds(self):
        summary = self.summary
        self.assertEqual(summary["job_id"], "demo")
        self.assertEqual(summary["status"], "completed")
        self.assertEqual(len(summary["rounds"]), 5)
        workers = set()
        for index, round_ in enumerate(summary["rounds"]):
            self.assertEqual(round_["round"], index)
            self.assertEqual([r["task"] for r in round_["results"]], [0, 1, 2, 3, 4])
            for result in round_["results"]:
                self.assertEqual(result["level"], 10)
                self.assertEqual(result["sum"], "88")
                self.assertEqual(result["terms"], 10)
                self.assertEqual(result["last"], "34")
                workers.add(result["worker"])
            self.assertEqual(round_["aggregate"], "88")
            self.assertIsInstance(round_["duration_ms"], int)
            self.assertEqual(round_["late"], 0)
            self.assertEqual(round_["duplicates"], 0)
        # The broker spreads tasks: with 5 idle workers every round uses them all.
        self.assertEqual(len(workers), 5)
        self.assertEqual(summary["best_round"], 0)
        self.assertEqual(summary["best"]["value"], "88")

    def test_work_folder(self):
        folder = os.path.join(self.cluster.workdir, "demo")
        names = sorted(os.listdir(folder))
        self.assertEqual(names, ["best.json", "controller.lock", "global.json", "job.json", "rounds",
                                 "summary.json"])
        rounds = sorted(os.listdir(os.path.join(folder, "rounds")))
        self.assertEqual(rounds, ["round-%06d.json" % r for r in range(5)])
        # The global state chains: round r carries round r-1's aggregate.
        previous = {"round": -1, "value": "0"}
        for name in rounds:
            with open(os.path.join(folder, "rounds", name)) as handle:
                record = json.load(handle)
            self.assertEqual(record["global_in"], previous)
            self.assertEqual(record["global_out"]["value"], "88")
            previous = record["global_out"]
            self.assertEqual(len(record["results"]), 5)
            for result in record["results"]:
                self.assertTrue(result["worker"].startswith("worker-"))
        job = self.cluster.read_json("demo", "job.json")
        self.assertEqual(job["params"], {"fibonacci_level": 10})
        self.assertEqual(job["rounds"], 5)
        self.assertEqual(self.cluster.read_json("demo", "global.json"),
                         {"round": 4, "value": "88"})
        self.assertEqual(self.cluster.read_json("demo", "best.json")["round"], 0)

    def test_existing_job_folder_is_refused(self):
        result = self.cluster.run_controller("--job-id", "demo")
        self.assertEqual(result.returncode, 2)
        self.assertIn("already holds job demo", result.err)


class Parameters(unittest.TestCase):
    """Per-task levels, per-round schedules, every strategy, exact big sums."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster("params")
        cls.cluster.start_broker()
        for _ in range(3):
            cls.cluster.start_worker()
        cls.cluster.wait_workers(3)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def run_job(self, job_id, *args):
        result = self.cluster.run_controller("--job-id", job_id, "--no-progress", *args)
        self.assertEqual(result.returncode, 0, result.err)
        return self.cluster.summary(job_id)

    def test_every_strategy_on_per_task_levels(self):
        levels = [10, 5, 2, 12]
        sums = [Fraction(fib_sum(level)) for level in levels]  # 88, 7, 1, 232
        ordered = sorted(sums)
        expected = {
            "fedavg": sum(s * l for s, l in zip(sums, levels)) / sum(levels),
            "mean": sum(sums) / len(sums),
            "median": (ordered[1] + ordered[2]) / 2,
            "trimmed-mean": (ordered[1] + ordered[2]) / 2,  # --trim 0.25 drops one each end
            "min": ordered[0],
            "max": ordered[-1],
            "sum": sum(sums),
        }
        for strategy, value in expected.items():
            summary = self.run_job("levels-" + strategy, "--levels", "10,5,2,12", "--rounds", "1",
                                   "--aggregate", strategy, "--trim", "0.25")
            round_ = summary["rounds"][0]
            self.assertEqual([r["level"] for r in round_["results"]], levels)
            self.assertEqual([r["sum"] for r in round_["results"]], ["88", "7", "1", "232"])
            self.assertEqual(round_["aggregate"], decimal6(value), strategy)
            self.assertEqual(summary["aggregation"], strategy)

    def test_schedule_and_global_state(self):
        summary = self.run_job("schedule", "--schedule", "10,20,5", "--tasks", "2")
        self.assertEqual([r["aggregate"] for r in summary["rounds"]],
                         [str(fib_sum(10)), str(fib_sum(20)), str(fib_sum(5))])
        self.assertEqual(summary["best_round"], 1)
        record = self.cluster.read_json("schedule", "rounds/round-000002.json")
        self.assertEqual(record["global_in"], {"round": 1, "value": str(fib_sum(20))})

    def test_select_min_and_other_metrics(self):
        summary = self.run_job("select-min", "--schedule", "10,20,5", "--tasks", "2",
                               "--select", "aggregate:min")
        self.assertEqual(summary["best_round"], 2)
        self.assertEqual(summary["best"], {"round": 2, "metric": "aggregate", "direction": "min",
                                           "value": str(fib_sum(5))})
        summary = self.run_job("select-results", "--rounds", "2", "--select", "results:max")
        self.assertEqual(summary["best"]["metric"], "results")
        self.assertEqual(summary["best"]["value"], 5)

    def test_exact_beyond_64_bits(self):
        summary = self.run_job("big", "--levels", "100,1000,10000", "--rounds", "1",
                               "--aggregate", "max")
        results = summary["rounds"][0]["results"]
        for result, level in zip(results, [100, 1000, 10000]):
            self.assertEqual(result["sum"], str(fib_sum(level)))
            self.assertEqual(result["last"], str(fib_last(level)))
        self.assertEqual(summary["rounds"][0]["aggregate"], str(fib_sum(10000)))

    def test_job_file_with_per_task_levels(self):
        path = os.path.join(self.cluster.dir, "job.json")
        with open(path, "w") as handle:
            json.dump({"rounds": 2, "tasks": 3,
                       "task_params": [{"fibonacci_level": 3}, {"fibonacci_level": 4},
                                       {"fibonacci_level": 5}],
                       "aggregate": "sum"}, handle)
        summary = self.run_job("from-file", "--job", path)
        self.assertEqual([r["level"] for r in summary["rounds"][0]["results"]], [3, 4, 5])
        self.assertEqual(summary["rounds"][1]["aggregate"], str(2 + 4 + 7))


class ExampleJobs(unittest.TestCase):
    """Every job file in examples/jobs/ runs to completion as documented."""

    def test_every_example_job_completes(self):
        paths = sorted(glob.glob(os.path.join(SOURCE_DIR, "examples", "jobs", "*.json")))
        self.assertGreater(len(paths), 3)
        with Cluster("examples") as cluster:
            cluster.start_broker()
            for _ in range(5):
                cluster.start_worker()
            for _ in range(3):
                cluster.start_worker("--service", "vecavg")
            cluster.start_worker("--service", "tensoravg", "--concurrency", "4")
            cluster.wait_workers(5)
            cluster.wait_workers(3, service="vecavg")
            cluster.wait_workers(4, service="tensoravg")
            for path in paths:
                name = os.path.basename(path)[:-len(".json")]
                with self.subTest(job=name):
                    with open(path) as handle:
                        job = json.load(handle)
                    result = cluster.run_controller("--job", path, "--job-id", name,
                                                    "--no-progress")
                    self.assertEqual(result.returncode, 0, result.err)
                    summary = cluster.summary(name)
                    self.assertEqual(summary["status"], "completed")
                    self.assertEqual(len(summary["rounds"]), job["rounds"])
                    tasks = job.get("tasks", len(job.get("task_params", [])))
                    for record in summary["rounds"]:
                        # Nothing is slow or lost here, so every task answers.
                        self.assertEqual(len(record["results"]), tasks, record)
                    # The settings as run are a valid job file themselves.
                    echoed = cluster.read_json(name, "job.json")
                    self.assertEqual(echoed["service"], job.get("service", "fib"))


class ManyConnections(unittest.TestCase):
    """One zfed-worker process holding more connections than libzmq's default
    1024 sockets (it used to abort in a czmq assertion): it raises its own
    socket and open-file limits, registers every connection and serves."""

    CONNECTIONS = 1500

    def test_worker_beyond_the_default_socket_limit(self):
        with Cluster("many-connections") as cluster:
            cluster.start_broker()
            worker = cluster.start_worker("--concurrency", str(self.CONNECTIONS),
                                          "--threads", "2")
            cluster.wait_workers(self.CONNECTIONS, timeout=120)
            result = cluster.run_controller("--job-id", "many", "--rounds", "2", "--tasks", "64",
                                            "--no-progress")
            self.assertEqual(result.returncode, 0, result.err)
            self.assertTrue(worker.alive(), worker.log())


if __name__ == "__main__":
    main()
