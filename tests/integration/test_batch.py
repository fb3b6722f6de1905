"""The throughput path: zfed.batch requests through a real broker to workers
that announce credit, and batch error replies from the broker."""

import json
import os
import unittest

from zfedtest import Cluster, fib_sum, main

BODY_MAX = 4 * 1024 * 1024


class Batches(unittest.TestCase):

    def test_batched_job_equals_the_plain_one(self):
        with Cluster("batch") as cluster:
            cluster.start_broker()
            for _ in range(3):
                cluster.start_worker("--credit", "4", "--threads", "0")
            cluster.wait_workers(3)
            args = ["--rounds", "3", "--tasks", "20", "--levels",
                    ",".join(str(10 + i) for i in range(20)), "--no-progress"]
            plain = cluster.run_controller("--job-id", "plain", *args)
            batched = cluster.run_controller("--job-id", "batched", "--batch", "8", *args)
            self.assertEqual(plain.returncode, 0, plain.err)
            self.assertEqual(batched.returncode, 0, batched.err)

            def view(job):
                return [([(r["task"], r["sum"]) for r in round_["results"]], round_["aggregate"])
                        for round_ in cluster.summary(job)["rounds"]]
            self.assertEqual(view("batched"), view("plain"))
            self.assertEqual(cluster.read_json("batched", "job.json")["batch"], 8)
            # 3 rounds of 20 tasks in batches of 8: 3 requests a round.
            counters = cluster.status()["counters"]
            self.assertEqual(counters["requests"], 3 * 20 + 3 * 3)

    def test_inline_workers_never_wait_for_their_timers(self):
        # Drained --threads 0 workers wait on their connections' descriptors
        # alone: a wake-up lost there would leave a request until the next
        # tick, a quarter of the 60 s heartbeat here, far past the task
        # timeout (no retries) that a working stack never comes near.
        with Cluster("inline") as cluster:
            cluster.start_broker("--heartbeat-ms", "60000")
            for credit in ("1", "4"):
                cluster.start_worker("--credit", credit, "--threads", "0", "--heartbeat-ms",
                                     "60000")
            cluster.wait_workers(2)
            for batch in ("1", "8"):
                job = "inline-" + batch
                result = cluster.run_controller("--job-id", job, "--rounds", "3", "--tasks", "100",
                                                "--level", "10", "--no-progress", "--retries",
                                                "0", "--round-timeout", "10", "--batch", batch)
                self.assertEqual(result.returncode, 0, result.err)
                self.assertEqual(cluster.summary(job)["status"], "completed")

    def test_broker_answers_a_batch_with_a_batch_of_errors(self):
        # No worker, a short queue lifetime: the broker expires the batch and
        # answers every task of it, so the controller fails early, naming
        # them, instead of waiting for its deadline.
        with Cluster("batch-errors") as cluster:
            cluster.start_broker("--request-ttl", "0.3", "--heartbeat-ms", "100")
            result = cluster.run_controller("--job-id", "expired", "--rounds", "1", "--tasks",
                                            "3", "--batch", "3", "--retries", "0",
                                            "--round-timeout", "20")
            self.assertEqual(result.returncode, 1)
            self.assertLess(result.elapsed, 10)
            summary = cluster.summary("expired")
            self.assertIn("3 of 3 tasks failed", summary["error"])
            self.assertIn("504", summary["error"])

    def test_results_that_outgrow_one_body_are_sent_again_alone(self):
        # Level 12,000 results are about 5 KB each (sum and last term, 2,508
        # digits each): 1,000 of them do not fit in one 4 MiB batch reply,
        # while their work (1.44e11 level squared) is within what one
        # request may ask of fib.  The worker answers the overflow 413 item
        # by item, and the controller sends those tasks again alone even
        # with no retries allowed.
        with Cluster("batch-overflow") as cluster:
            cluster.start_broker()
            for _ in range(2):
                cluster.start_worker("--credit", "2")
            cluster.wait_workers(2)
            tasks, level = 1000, 12000
            result = cluster.run_controller("--job-id", "big", "--rounds", "1", "--tasks",
                                            str(tasks), "--level", str(level), "--batch",
                                            str(tasks), "--retries", "0", "--no-progress",
                                            timeout=120)
            self.assertEqual(result.returncode, 0, result.err)
            record = cluster.read_json("big", os.path.join("rounds", "round-000000.json"))
            self.assertEqual(len(record["results"]), tasks)
            self.assertGreater(record["errors"], 0)
            self.assertEqual(record["resent"], record["errors"])
            self.assertTrue(record["error_list"])
            for error in record["error_list"]:
                self.assertEqual((error["code"], error["attempt"]), (413, 0))
            expected = str(fib_sum(level))
            self.assertEqual({r["sum"] for r in cluster.summary("big")["rounds"][0]["results"]},
                             {expected})
            self.assertIn("send this task alone", result.err)

    def test_tasks_too_big_to_travel_together_are_split(self):
        # vecavg tasks of 60,000 floats carry a 540 KB vector and 540 KB of
        # global weights (zeros in round 0): 8 of them are over 4 MiB, and so
        # are 4, so the controller splits each round's group down to pairs.
        with Cluster("batch-split") as cluster:
            cluster.start_broker()
            for _ in range(2):
                cluster.start_worker("--service", "vecavg", "--credit", "2")
            cluster.wait_workers(2, service="vecavg")
            size = 60000
            job = {"service": "vecavg", "rounds": 2, "tasks": 8, "batch": 8,
                   "task_params": [{"vector": [float(i)] * size, "samples": 1}
                                   for i in range(8)]}
            path = os.path.join(cluster.dir, "split.json")
            with open(path, "w") as handle:
                json.dump(job, handle)
            before = cluster.status()["counters"]["requests"]
            result = cluster.run_controller("--job-id", "split", "--job", path, "--no-progress",
                                            timeout=120)
            self.assertEqual(result.returncode, 0, result.err)
            # 8/MMI status questions are not requests: only the job's count.
            requests = cluster.status()["counters"]["requests"] - before
            self.assertEqual(requests, 2 * 4)
            rounds = cluster.summary("split")["rounds"]
            self.assertEqual([len(r["results"]) for r in rounds], [8, 8])
            # fedavg of round 0: every task moves zeros halfway to its vector.
            self.assertEqual(rounds[0]["aggregate"][0], sum(i / 2 for i in range(8)) / 8)


if __name__ == "__main__":
    main()
