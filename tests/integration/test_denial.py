"""Denial of service (issue 12, part 4): no single peer can starve or exhaust
the broker or a worker.  Every case is a hostile peer (Python, written
from schemas/PROTOCOL.md) against the real programs, and every test
asserts what happened: counts, records, CPU time, RSS, exit status.
"""

import os
import time
import unittest

import msgpack

from zfedtest import Cluster, MDPC, figure, main, task_body, wait_for

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def batch_body(bodies):
    return msgpack.packb(["zfed.batch", 1, list(bodies)], use_bin_type=True)


class Work(unittest.TestCase):
    """Bound the work one request may ask for: fib's cost is the level
    squared, ZFED_FIB_MAX_REQUEST_COST (2e11, about a second of one core)
    per request."""

    def test_a_batch_asking_for_minutes_of_work_is_refused_unrun(self):
        with Cluster("costly-batch") as cluster:
            cluster.start_broker()
            worker = cluster.start_worker("--credit", "2")
            cluster.wait_workers(1)
            before = cpu_seconds(worker.pid)
            # 1,024 tasks at level 100,000: 57 s of one core if computed.
            client = cluster.client()
            bodies = [task_body("costly", 0, task, 100000) for task in range(1024)]
            started = time.monotonic()
            client.send_multipart([b"", MDPC, b"fib", batch_body(bodies)])
            self.assertTrue(client.poll(30000), "no answer to the batch")
            elapsed = time.monotonic() - started
            frames = client.recv_multipart()
            items = msgpack.unpackb(frames[3], raw=False)[2]
            replies = [msgpack.unpackb(item, raw=False) for item in items]
            self.assertEqual(len(replies), 1024)
            self.assertEqual({(r[0], r[7]) for r in replies}, {("zfed.error", 413)})
            self.assertEqual([r[4] for r in replies], list(range(1024)))
            self.assertIn("10240000000000 units of work in 1024 task(s)", replies[0][9])
            self.assertIn("send fewer tasks per request", replies[0][9])
            used = cpu_seconds(worker.pid) - before
            figure("costly batch answered in", "%.3f" % elapsed, "s")
            figure("worker CPU for the costly batch", "%.2f" % used, "s")
            self.assertLess(used, 2.0)  # not 57 s: nothing was computed
            self.assertIn("refusing a batch of 1024 tasks unrun", worker.log())
            # The worker still serves: one task at that level alone is fine.
            client.send_multipart([b"", MDPC, b"fib", task_body("costly", 0, 0, 100000)])
            self.assertTrue(client.poll(30000))
            reply = msgpack.unpackb(client.recv_multipart()[3], raw=False)
            self.assertEqual(reply[0], "zfed.result")

    def test_the_controller_refuses_such_a_job_before_sending(self):
        with Cluster("costly-job") as cluster:
            cluster.start_broker()
            result = cluster.run_controller("--job-id", "costly", "--tasks", "1024", "--batch",
                                            "1024", "--level", "100000")
            self.assertEqual(result.returncode, 2, result.err)
            self.assertIn("--batch: 1024 tasks per request ask fib for 10240000000000 units of "
                          "work", result.err)
            self.assertIn("use a batch of 20 or fewer", result.err)
            self.assertEqual(cluster.status()["counters"]["requests"], 0)
            self.assertFalse(os.path.exists(os.path.join(cluster.workdir, "costly")))
            # Within the limit it runs: 20 at the top level, or 1,000 at 14,000.
            for tasks, level in ((20, 100000), (1000, 14000)):
                ok = cluster.run_controller("--job-id", "ok-%d" % tasks, "--tasks", str(tasks),
                                            "--batch", str(tasks), "--level", str(level),
                                            "--rounds", "1", "--round-timeout", "1",
                                            "--no-progress")
                self.assertNotEqual(ok.returncode, 2, ok.err)  # no worker: exit 1, not 2
                self.assertNotIn("units of work", ok.err)


if __name__ == "__main__":
    main()
