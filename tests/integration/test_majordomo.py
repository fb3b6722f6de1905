"""zfed-broker against plain Majordomo peers (RFC 7, MDP/0.1): clients and
workers written here from the RFC, shaped like the reference API (zguide's
mdcliapi/mdwrkapi), never zfed's own.  What the reference peers hit: long
multi-frame messages answered instead of dropped, service names with
spaces, and workers that are silent while they compute.
"""

import msgpack
import signal
import unittest

from zfedtest import (Cluster, MDPC, MDPW, READY, DISCONNECT, PlainWorker, main, mdp_request,
                      task_body, wait_for)

# Short heartbeats keep the tests quick; the work below lasts several
# expiries.  liveness 2 x 300 ms: a silent worker counts as dead after 0.6 s.
HEARTBEAT_MS = 300
LIVENESS = 2
TIMING = ["--heartbeat-ms", str(HEARTBEAT_MS), "--liveness", str(LIVENESS)]
MAX_BODY_FRAMES = 4


def error_of(frames):
    """The zfed.error body of a broker refusal."""
    assert len(frames) == 4, frames
    error = msgpack.unpackb(frames[3], raw=False)
    assert error[0] == "zfed.error" and error[6] == "broker", error
    return error


class BodyFrames(unittest.TestCase):
    """However many body frames: at most 4 are forwarded intact, more get a
    413 (requests) or have their client told so (replies); none is silence."""

    def setUp(self):
        self.cluster = Cluster("mdp-frames")
        self.broker = self.cluster.start_broker(*TIMING)

    def tearDown(self):
        self.cluster.close()

    def test_requests_with_too_many_body_frames_get_413(self):
        for count in (5, 12, 13, 20, 100):
            with self.subTest(body_frames=count):
                frames = mdp_request(self.cluster, b"echo", [b"part"] * count)
                self.assertEqual(frames[:3], [b"", MDPC, b"echo"])
                error = error_of(frames)
                self.assertEqual(error[7], 413)
                self.assertIn("too many body frames: %d, the broker forwards at most 4" % count,
                              error[9])
        counters = self.cluster.status()["counters"]
        self.assertEqual(counters["malformed"], 5)
        self.assertEqual(counters["requests"], 0)

    def test_multi_frame_bodies_are_forwarded_intact(self):
        worker = PlainWorker(self.cluster, b"echo", HEARTBEAT_MS,
                             handler=lambda frames: frames[::-1])
        try:
            self.cluster.wait_workers(1, service="echo")
            for body in ([b"task", b"\x00" * 70000], [b"a", b"", b"c", b"d" * 5000]):
                frames = mdp_request(self.cluster, b"echo", body)
                self.assertEqual(frames, [b"", MDPC, b"echo"] + body[::-1])
                self.assertEqual(worker.requests[-1], body)
        finally:
            worker.close()

    def test_replies_with_too_many_body_frames_are_answered_413(self):
        counts = iter([5, 11, 20])
        worker = PlainWorker(self.cluster, b"many", HEARTBEAT_MS,
                             handler=lambda frames: [b"r"] * next(counts, 1))
        try:
            self.cluster.wait_workers(1, service="many")
            for count in (5, 11, 20):
                frames = mdp_request(self.cluster, b"many", [b"task"])
                error = error_of(frames)
                self.assertEqual(error[7], 413)
                self.assertIn("the worker's reply has %d body frames" % count, error[9])
            # The worker broke no rule of RFC 7: it keeps its registration
            # and its next reply, of one frame, goes through.
            self.assertEqual(mdp_request(self.cluster, b"many", [b"task"]),
                             [b"", MDPC, b"many", b"r"])
            self.assertEqual(worker.disconnects, 0)
            counters = self.cluster.status()["counters"]
            self.assertEqual(counters["malformed"], 3)
            self.assertEqual(counters["replies"], 1)
            self.assertEqual(counters["failed"], 3)
            self.assertIn("reply refused", self.broker.log())
        finally:
            worker.close()

    def test_ready_with_too_many_frames_gets_disconnect(self):
        for extra in (1, 2, 12, 30):
            with self.subTest(extra_frames=extra):
                rogue = self.cluster.client()
                rogue.send_multipart([b"", MDPW, READY, b"fib", b"credit=2"] + [b"x"] * extra)
                self.assertTrue(rogue.poll(5000))
                self.assertEqual(rogue.recv_multipart(), [b"", MDPW, DISCONNECT])
                rogue.close()
        self.assertEqual(self.cluster.status()["workers"], 0)
        self.assertIn("READY needs exactly one valid service frame", self.broker.log())


class ServiceNames(unittest.TestCase):
    """RFC 7: a service name is a printable string.  zfed takes 1-255 bytes of
    0x20-0x7E, spaces included, and refuses anything else out loud."""

    def test_a_name_with_spaces_is_served(self):
        with Cluster("mdp-names") as cluster:
            cluster.start_broker(*TIMING)
            worker = PlainWorker(cluster, b"my service", HEARTBEAT_MS,
                                 handler=lambda frames: [b"done " + frames[0]])
            try:
                cluster.wait_workers(1, service="my service")
                self.assertEqual(cluster.mmi("mmi.service", b"my service"), b"200")
                self.assertEqual(cluster.mmi("mmi.service", b"my  service"), b"404")
                self.assertEqual(mdp_request(cluster, b"my service", [b"x"]),
                                 [b"", MDPC, b"my service", b"done x"])
            finally:
                worker.close()

    def test_invalid_names_are_refused_loudly(self):
        with Cluster("mdp-bad-names") as cluster:
            broker = cluster.start_broker(*TIMING)
            for name in (b"tab\there", b"caf\xc3\xa9", b"", b"n" * 256):
                with self.subTest(name=name[:20]):
                    rogue = cluster.client()
                    rogue.send_multipart([b"", MDPW, READY, name])
                    self.assertTrue(rogue.poll(5000))
                    self.assertEqual(rogue.recv_multipart(), [b"", MDPW, DISCONNECT])
                    rogue.close()
                    frames = mdp_request(cluster, name, [b"body"])
                    self.assertEqual(frames[2], name)
                    error = error_of(frames)
                    self.assertEqual(error[7], 400)
                    self.assertIn("invalid service name", error[9])
            self.assertEqual(cluster.status()["workers"], 0)
            self.assertIn("invalid MDPW01 message, disconnecting its sender", broker.log())


class BusyWorkers(unittest.TestCase):
    """A worker on the reference API sends nothing while it computes.  The
    broker keeps its request for --busy-timeout of silence, not for
    heartbeat x liveness, so tasks longer than that work."""

    WORK_S = 2.0  # more than three expiries of 0.6 s

    def test_long_task_from_a_worker_that_is_silent_while_busy(self):
        with Cluster("mdp-busy") as cluster:
            broker = cluster.start_broker(*TIMING)
            worker = PlainWorker(cluster, b"slow", HEARTBEAT_MS, work_s=self.WORK_S,
                                 handler=lambda frames: [b"slow " + frames[0]])
            try:
                cluster.wait_workers(1, service="slow")
                for index in range(2):
                    body = b"task %d" % index
                    frames = mdp_request(cluster, b"slow", [body], timeout=30)
                    self.assertEqual(frames, [b"", MDPC, b"slow", b"slow " + body])
                counters = cluster.status()["counters"]
                self.assertEqual(counters["workers_expired"], 0)
                self.assertEqual(counters["redispatched"], 0)
                self.assertEqual(worker.disconnects, 0)
                self.assertNotIn("heartbeats while it works", broker.log())
            finally:
                worker.close()

    def test_busy_timeout_still_bounds_the_silence(self):
        # --busy-timeout 1: a worker silent for longer while busy is dropped
        # and its request fails (one attempt allowed) long before it ends.
        with Cluster("mdp-busy-timeout") as cluster:
            broker = cluster.start_broker(*TIMING, "--busy-timeout", "1", "--max-attempts", "1")
            worker = PlainWorker(cluster, b"slow", HEARTBEAT_MS, work_s=3 * self.WORK_S)
            try:
                cluster.wait_workers(1, service="slow")
                error = error_of(mdp_request(cluster, b"slow", [b"task"], timeout=30))
                self.assertEqual(error[7], 503)
                self.assertIn("busy and silent for", broker.log())
                self.assertEqual(cluster.status()["counters"]["workers_expired"], 1)
            finally:
                worker.close()

    def test_busy_timeout_zero_expires_busy_workers_like_idle_ones(self):
        with Cluster("mdp-busy-zero") as cluster:
            broker = cluster.start_broker(*TIMING, "--busy-timeout", "0", "--max-attempts", "1")
            worker = PlainWorker(cluster, b"slow", HEARTBEAT_MS, work_s=self.WORK_S)
            try:
                cluster.wait_workers(1, service="slow")
                error = error_of(mdp_request(cluster, b"slow", [b"task"], timeout=30))
                self.assertEqual(error[7], 503)
                self.assertIn("silent for %d heartbeats" % LIVENESS, broker.log())
            finally:
                worker.close()

    def test_a_worker_that_heartbeats_while_busy_is_expired_promptly(self):
        # Once a worker has heartbeated while working it is held to
        # heartbeat x liveness: when it falls silent mid-task it is dropped
        # in well under the busy timeout, and its request goes elsewhere.
        with Cluster("mdp-busy-beats") as cluster:
            broker = cluster.start_broker(*TIMING, "--busy-timeout", "600")
            stalled = cluster.start_worker("--delay-ms", "60000", *TIMING)
            cluster.wait_workers(1)
            client = cluster.client()
            client.send_multipart([b"", MDPC, b"fib", task_body("beat", 0, 0, 10)])
            wait_for(lambda: "heartbeats while it works" in broker.log(), 10,
                     what="the broker to see the worker heartbeat while busy")
            # Stopped, not killed: its connection stays open (a killed
            # worker's closes, and the broker drops it at once for that).
            stalled.signal(signal.SIGSTOP)
            healthy = cluster.start_worker(*TIMING)
            self.assertTrue(client.poll(20000), "the request was not re-dispatched")
            result = msgpack.unpackb(client.recv_multipart()[3], raw=False)
            self.assertEqual(result[0], "zfed.result")
            self.assertIn("silent for %d heartbeats" % LIVENESS, broker.log())
            self.assertTrue(healthy.alive())
            stalled.kill()


if __name__ == "__main__":
    main()
