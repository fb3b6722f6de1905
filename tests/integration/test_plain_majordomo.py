"""zfed-controller through a plain Majordomo broker (issue 12, interop).

The broker here is RFC 7 and nothing more (zfedtest.PlainMajordomoBroker):
it forwards body frames as they are and stamps nothing.  The controller
asks mmi.status at start, gets 501, says once that nothing is vouched
for, sends its requests without tickets and matches each reply by the
(round, task, attempt) it names (PROTOCOL.md 3.1).  --replicas needs a
stamp's identity: against this broker it fails before sending anything.
"""

import unittest

import msgpack

from zfedtest import (Cluster, HostileWorker, PlainMajordomoBroker, fib_outputs, fib_sum, main,
                      wait_for)

WARNING = ("does not stamp replies (not a zfed-broker): results are matched by the task ids "
           "they name, with no identity vouched for; --replicas needs a zfed-broker")
WORKERS = 3


class PlainBroker(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.broker = PlainMajordomoBroker()
        cls.cluster = Cluster("plain-mdp")
        cls.cluster.endpoint = cls.broker.endpoint
        for _ in range(WORKERS):
            cls.cluster.start_worker()
        wait_for(lambda: cls.broker.idle_workers() >= WORKERS, 10,
                 what="the workers to register with the plain broker")

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()
        cls.broker.close()

    def run_job(self, job_id, *args):
        result = self.cluster.run_controller("--job-id", job_id, "--rounds", "3", "--tasks", "6",
                                             "--level", "10", "--round-timeout", "10",
                                             "--no-progress", *args)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(result.err.count(WARNING), 1, result.err)
        self.assertIn("the broker at %s %s" % (self.broker.endpoint, WARNING), result.err)
        summary = self.cluster.summary(job_id)
        self.assertEqual(summary["status"], "completed")
        self.assertEqual(len(summary["rounds"]), 3)
        for round_ in summary["rounds"]:
            self.assertEqual(round_["aggregate"], "88")
            self.assertEqual([r["task"] for r in round_["results"]], list(range(6)))
            self.assertEqual(round_["invalid"], 0)
            # Nobody vouched for who answered: no identity in the records.
            for entry in round_["results"]:
                self.assertIsNone(entry["worker_id"])
                self.assertTrue(entry["worker"].startswith("worker-"))
        record = self.cluster.read_json(job_id, "rounds/round-000000.json")
        self.assertEqual(record["aggregate"], "88")
        return result

    def test_fib_job_runs_with_a_warning_and_no_tickets(self):
        before = self.broker.requests
        self.run_job("plain")
        # One request per task, no retries: no 400 for a forwarded ticket.
        self.assertEqual(self.broker.requests - before, 18)

    def test_batch_job_runs(self):
        before = self.broker.requests
        self.run_job("plain-batch", "--batch", "3")
        self.assertEqual(self.broker.requests - before, 6)

    def test_replicas_fail_before_anything_is_sent(self):
        before = self.broker.requests
        result = self.cluster.run_controller("--job-id", "plain-replicas", "--rounds", "1",
                                             "--tasks", "3", "--replicas", "3", "--no-progress")
        self.assertEqual(result.returncode, 1, result.err)
        self.assertIn("--replicas 3 needs a zfed-broker: the broker at %s does not stamp replies"
                      % self.broker.endpoint, result.err)
        self.assertEqual(self.broker.requests, before)


class OldZfedBroker(unittest.TestCase):
    """Mixed versions: a zfed-broker from before stamps answered mmi.status
    with a status map too, but forwarded tickets to its workers.  Only the
    map's "stamps": true makes the controller send tickets (PROTOCOL.md
    3.1); without it the job runs in plain mode."""

    def test_a_status_without_the_stamps_flag_means_plain_mode(self):
        old_status = msgpack.packb({"version": "0.0.9", "uptime_ms": 5, "workers": 2,
                                    "services": {}, "counters": {}}, use_bin_type=True)
        broker = PlainMajordomoBroker(status=old_status)
        try:
            with Cluster("plain-old-zfed") as cluster:
                cluster.endpoint = broker.endpoint
                for _ in range(2):
                    cluster.start_worker()
                wait_for(lambda: broker.idle_workers() >= 2, 10, what="the workers to register")
                before = broker.requests
                result = cluster.run_controller("--job-id", "old", "--rounds", "2", "--tasks",
                                                "4", "--level", "10", "--round-timeout", "10",
                                                "--no-progress")
                self.assertEqual(result.returncode, 0, result.err)
                self.assertIn("the broker at %s %s" % (broker.endpoint, WARNING), result.err)
                self.assertIn('answered mmi.status without "stamps": true (a zfed-broker older '
                              'than stamps, version 0.0.9)', result.err)
                summary = cluster.summary("old")
                self.assertEqual([r["aggregate"] for r in summary["rounds"]], ["88", "88"])
                # No ticket went to a worker (it would have answered 400).
                self.assertEqual(broker.requests - before, 8)
                self.assertEqual(sum(r["errors"] for r in summary["rounds"]), 0)
        finally:
            broker.close()


class StampShapedFrame(unittest.TestCase):
    """Review j item 7: the C client reads a stamp only once it has sent a
    ticket.  In plain mode it sends none, so a worker's reply of two body
    frames, the first shaped like a stamp, is two body frames (dropped),
    not a stamp and a body."""

    def test_a_plain_client_never_takes_a_frame_for_a_stamp(self):
        broker = PlainMajordomoBroker()
        try:
            with Cluster("plain-stamp-shaped") as cluster:
                cluster.endpoint = broker.endpoint
                turn = [0]

                def shaped(task):
                    turn[0] += 1
                    body = msgpack.packb(["zfed.result", 1, task[2], task[3], task[4], task[5],
                                          "shaped", 1, fib_outputs(10)], use_bin_type=True)
                    if turn[0] == 1:
                        return [b"zfed.stamp" + (1).to_bytes(8, "big") + b"peer:1", body]
                    return [body]
                worker = HostileWorker(cluster, shaped)
                wait_for(lambda: broker.idle_workers() >= 1, 10, what="the worker to register")
                try:
                    result = cluster.run_controller(
                        "--job-id", "shaped", "--rounds", "1", "--tasks", "2", "--level", "10",
                        "--task-timeout", "0.5", "--retries", "3", "--no-progress")
                finally:
                    worker.close()
                self.assertEqual(result.returncode, 0, result.err)
                self.assertIn("dropped a malformed reply: several body frames", result.err)
                record = cluster.read_json("shaped", "rounds/round-000000.json")
                self.assertEqual(record["answered"], 2)
                self.assertEqual(record["resent"], 1)
        finally:
            broker.close()


class PlainBrokerForgery(unittest.TestCase):
    """Without a stamp, what a reply names is all there is: it must name a
    request still outstanding, of its kind (a batch only for a batch)."""

    def test_forged_batch_and_unsent_attempt_are_refused(self):
        broker = PlainMajordomoBroker()
        try:
            with Cluster("plain-forge") as cluster:
                cluster.endpoint = broker.endpoint
                turn = [0]

                def forge(task):
                    # Odd turns: a batch of results for every task, to one
                    # plain request; even turns: its task at an attempt
                    # never sent.
                    turn[0] += 1

                    def body(task_id, attempt):
                        return msgpack.packb(["zfed.result", 1, task[2], task[3], task_id,
                                              attempt, "forger", 1,
                                              {"sum": "1", "terms": 10, "last": "1",
                                               "sequence": ["0"] * 9 + ["1"]}],
                                             use_bin_type=True)
                    if turn[0] % 2:
                        items = [body(t, task[5]) for t in range(5)]
                        return [msgpack.packb(["zfed.batch", 1, items], use_bin_type=True)]
                    return [body(task[4], task[5] + 5)]
                forger = HostileWorker(cluster, forge)
                wait_for(lambda: broker.idle_workers() >= 1, 10, what="the forger to register")
                for _ in range(4):
                    cluster.start_worker()
                wait_for(lambda: broker.idle_workers() >= 5, 10, what="the workers to register")
                try:
                    result = cluster.run_controller(
                        "--job-id", "forge", "--rounds", "2", "--tasks", "5", "--retries", "5",
                        "--task-timeout", "0.5", "--aggregate", "sum", "--no-progress")
                finally:
                    forger.close()
                self.assertEqual(result.returncode, 0, result.err)
                self.assertGreaterEqual(forger.replies, 2, "the forger was never sent a task")
                summary = cluster.summary("forge")
                self.assertEqual([r["aggregate"] for r in summary["rounds"]],
                                 [str(5 * fib_sum(10))] * 2)
                self.assertEqual(sum(r["invalid"] for r in summary["rounds"]), forger.replies)
                self.assertIn("a reply naming no request outstanding from (not vouched: plain "
                              "broker) refused", result.err)
        finally:
            broker.close()


if __name__ == "__main__":
    main()
