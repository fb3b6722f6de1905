"""The throughput path: zfed.batch requests through a real broker to workers
that announce credit, and batch error replies from the broker."""

import unittest

from zfedtest import Cluster, main


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


if __name__ == "__main__":
    main()
