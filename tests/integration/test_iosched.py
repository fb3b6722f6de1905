"""The worker's libzmq I/O thread runs as SCHED_BATCH (lib/transport/zfed_iosched.h).

A woken thread normally preempts the one that woke it: a worker answering
a burst of requests switched to its I/O thread after every reply, and
each reply left on its own wake-up.  zfed-worker asks libzmq to start its
I/O threads as SCHED_BATCH (fair share, no wake-up preemption), so the
replies of a burst queue and leave together.  Shown here: the policy is
on the I/O threads only (the worker's own thread and its compute threads
keep the default), and a worker so scheduled still answers a burst of
queued requests, every one with its own address, and keeps heartbeating
through and after it.
"""

import os
import shutil
import subprocess
import time
import unittest

import msgpack

from zfedtest import (Cluster, binary, MDPW, READY, REQUEST, REPLY, HEARTBEAT, main, task_body,
                      wait_for)

SCHED_OTHER = 0
SCHED_FIFO = 1
SCHED_BATCH = 3
TIMEOUT = 20
HEARTBEAT_MS = 100
CREDIT = 8


def threads(pid):
    """{thread id: (name, scheduling policy)} of a live process, from /proc
    (stat's field 41 is the policy; the name, in parentheses, comes first)."""
    found = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as handle:
                stat = handle.read()
        except OSError:
            continue  # the thread ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(tid)] = (name, int(fields[41 - 3]))
    return found


class Policies(unittest.TestCase):

    def policies(self, *worker_args):
        with Cluster("iosched") as cluster:
            cluster.start_broker(endpoint=cluster.private_endpoint())
            worker = cluster.start_worker(*worker_args)
            cluster.wait_workers(1)
            found = threads(worker.pid)
            worker.stop()
        return worker.pid, found

    def check(self, pid, found, compute_threads):
        io = [policy for name, policy in found.values() if name.startswith("ZMQbg/IO")]
        self.assertTrue(io, found)
        self.assertEqual(io, [SCHED_BATCH] * len(io), found)
        # The worker's own thread (its id is the process's) keeps the default.
        self.assertEqual(found[pid][1], SCHED_OTHER, found)
        others = [policy for tid, (name, policy) in found.items() if not name.startswith("ZMQbg/")]
        self.assertEqual(others, [SCHED_OTHER] * len(others), found)
        self.assertGreaterEqual(len(others), 1 + compute_threads, found)

    def test_inline(self):
        pid, found = self.policies("--threads", "0", "--credit", str(CREDIT))
        self.check(pid, found, 0)

    def test_compute_threads_keep_the_default(self):
        pid, found = self.policies("--threads", "2")
        self.check(pid, found, 2)

    def test_controller(self):
        """zfed-controller's too (a window of requests in a burst); it
        waits here for a worker that never comes."""
        with Cluster("iosched-controller") as cluster:
            cluster.start_broker(endpoint=cluster.private_endpoint())
            controller = cluster.start_controller("--job-id", "waits", "--tasks", "5")
            wait_for(lambda: any(name.startswith("ZMQbg/IO")
                                 for name, _ in threads(controller.pid).values()),
                     10, what="the controller's I/O thread")
            found = threads(controller.pid)
            controller.stop()
        self.check(controller.pid, found, 0)


    def test_a_policy_given_with_chrt_is_kept(self):
        """Started under SCHED_FIFO (chrt -f 10), the worker keeps it on
        every thread and serves: libzmq aborted the process when asked for
        SCHED_BATCH in such a thread (priority 10 is not one SCHED_BATCH
        takes), so the request is made only from SCHED_OTHER."""
        chrt = shutil.which("chrt")
        if not chrt or subprocess.run([chrt, "-f", "10", "true"]).returncode != 0:
            self.skipTest("chrt -f needs chrt and CAP_SYS_NICE")
        with Cluster("iosched-fifo") as cluster:
            cluster.start_broker(endpoint=cluster.private_endpoint())
            worker = cluster.start("fifo-worker", [chrt, "-f", "10", binary("zfed-worker"),
                                                   "--connect", cluster.endpoint, "--name",
                                                   "fifo", "--threads", "0"])
            cluster.wait_workers(1)
            found = threads(worker.pid)
            result = cluster.run_controller("--job-id", "fifo", "--tasks", "5", "--no-progress")
            self.assertEqual(result.returncode, 0, result.err)
            self.assertTrue(worker.alive(), worker.log())
            worker.stop()
        self.assertTrue(any(name.startswith("ZMQbg/IO") for name, _ in found.values()), found)
        self.assertEqual({policy for _, policy in found.values()}, {SCHED_FIFO}, found)


class Burst(unittest.TestCase):
    """A test broker queues a burst of requests at once; every one is
    answered, and heartbeats keep coming through and after it."""

    def answers(self, router, identity, count, deadline):
        replies, beats = {}, []
        while len(replies) < count:
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, "only %d of %d replies" % (len(replies), count))
            if not router.poll(int(left * 1000)):
                continue
            frames = router.recv_multipart()
            self.assertEqual(frames[0], identity)
            if frames[1:] == [b"", MDPW, HEARTBEAT]:
                beats.append(time.monotonic())
                continue
            self.assertEqual(frames[1:4], [b"", MDPW, REPLY], frames)
            self.assertEqual(frames[5], b"", frames)
            self.assertNotIn(frames[4], replies, "two replies to one request")
            replies[frames[4]] = msgpack.unpackb(frames[6], raw=False)
        return replies, beats

    def test_burst_answered_and_heartbeats_go_on(self):
        with Cluster("iosched-burst") as cluster:
            router = cluster.scripted_broker()
            worker = cluster.start_worker("--threads", "0", "--credit", str(CREDIT),
                                          "--no-compact", "--heartbeat-ms", str(HEARTBEAT_MS))
            self.assertTrue(router.poll(TIMEOUT * 1000), "no READY")
            ready = router.recv_multipart()
            identity = ready[0]
            self.assertEqual(ready[1:4], [b"", MDPW, READY], ready)
            rounds, deadline = 5, time.monotonic() + TIMEOUT
            for wave in range(rounds):
                # A burst of CREDIT requests queued before the worker reads
                # any, each with its own client address.
                addresses = [b"client-%d-%d" % (wave, index) for index in range(CREDIT)]
                for index, address in enumerate(addresses):
                    body = task_body("burst", wave, index, 12 + index)
                    router.send_multipart([identity, b"", MDPW, REQUEST, address, b"", body])
                replies, _ = self.answers(router, identity, CREDIT, deadline)
                self.assertEqual(sorted(replies), sorted(addresses))
                for address, result in replies.items():
                    index = addresses.index(address)
                    self.assertEqual(result[0], "zfed.result", result)
                    self.assertEqual(result[3], wave, result)
                    self.assertEqual(result[4], index, result)
            # Heartbeats go on after the bursts: at least 3 in 20 intervals
            # (we send ours, as a broker must, so the worker does not judge
            # us silent and start over).
            beats, until = [], time.monotonic() + 20 * HEARTBEAT_MS / 1000
            while time.monotonic() < until:
                router.send_multipart([identity, b"", MDPW, HEARTBEAT])
                if router.poll(HEARTBEAT_MS // 2):
                    frames = router.recv_multipart()
                    if frames[1:] == [b"", MDPW, HEARTBEAT]:
                        beats.append(time.monotonic())
            self.assertGreaterEqual(len(beats), 3, "heartbeats after the bursts: %r" % beats)
            self.assertTrue(worker.alive())
            worker.stop()
            router.close()


if __name__ == "__main__":
    main()
