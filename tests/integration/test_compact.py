"""Compact frames between zfed's own parts (PROTOCOL.md 3.2, issue 14).

A zfed worker offers compact=1 in its READY; the zfed broker accepts and
sends it each REQUEST as one compact frame and the body, and the worker
answers in kind.  Shown here: the offer is taken (the broker's log and its
workers_compact counter, the worker's count of compact requests), a plain
MDP/0.1 worker serves the same job from the same broker and only ever sees
MDP, a broker started with --no-compact leaves a zfed worker on MDP/0.1,
and malformed or unagreed compact frames, at the broker and at a worker,
are refused without a crash: the broker disconnects the sender and hands
its request to someone else, a worker drops them and keeps serving.
"""

import json
import os
import re
import unittest

import msgpack
import zmq

from zfedtest import (Cluster, MDPC, MDPW, READY, REPLY, REQUEST, DISCONNECT, HEARTBEAT,
                      ScriptedWorker, fib_outputs, main, task_body, wait_for)

MAGIC = b"zfwc"
OFFER = b"compact=1"
TIMEOUT = 20
PLAIN_ANSWER = "the broker sends MDP/0.1 requests to our compact offer"
SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas")


def private(cluster):
    """An ipc endpoint in the cluster's folder: no worker of another test
    (or of a benchmark on the same machine) reconnecting to a reused TCP
    port can join this broker and take tasks the counts below expect."""
    return "ipc://%s/broker.ipc" % cluster.dir


def compact_frame(command, address):
    return MAGIC + bytes([command[0], len(address)]) + address


def stopping_counts(log):
    """(results, compact requests) from a zfed-worker's last stopping line."""
    found = re.findall(r"stopping: (\d+) results, .*; (\d+) requests came as compact frames", log)
    assert found, log[-2000:]
    return int(found[-1][0]), int(found[-1][1])


class RawWorker:
    """A worker socket the test drives frame by frame."""

    def __init__(self, cluster, service=b"cmp", offer=OFFER):
        self.socket = cluster.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(cluster.endpoint)
        ready = [b"", MDPW, READY, service]
        if offer is not None:
            ready.append(offer)
        self.socket.send_multipart(ready)

    def receive(self, timeout=TIMEOUT):
        """The next message that is not a HEARTBEAT."""
        deadline = timeout * 1000
        while self.socket.poll(deadline):
            frames = self.socket.recv_multipart()
            if frames != [b"", MDPW, HEARTBEAT]:
                return frames
        raise AssertionError("the broker sent nothing in %d s" % timeout)

    def close(self, goodbye=False):
        if goodbye:  # leaves the broker's line at once, not when the connection closes
            self.socket.setsockopt(zmq.LINGER, 1000)
            self.socket.send_multipart([b"", MDPW, DISCONNECT])
        self.socket.close()


class Negotiated(unittest.TestCase):
    """One broker, zfed workers that offer compact frames, a plain MDP
    worker beside them, one job across all of them."""

    def test_zfed_workers_compact_plain_worker_mdp(self):
        with Cluster("compact") as cluster:
            broker = cluster.start_broker(endpoint=private(cluster))
            strict = cluster.start_worker()
            credit = cluster.start_worker("--credit", "8", "--threads", "0")
            plain = ScriptedWorker(cluster, credit=1, name="plain-mdp",
                                   auto=lambda task: fib_outputs(task[6]["fibonacci_level"]))
            try:
                cluster.wait_workers(3)
                wait_for(lambda: cluster.status()["counters"]["workers_compact"] == 2, 10,
                         what="both zfed workers accepted with compact frames")
                log = broker.log()
                self.assertEqual(log.count("compact frames;"), 2, log)
                self.assertEqual(cluster.status()["counters"]["workers_ready"], 3)
                # The Python worker's READY offers nothing: plain MDP/0.1.
                self.assertRegex(log, r"ready for fib \(credit 1, MDP/0.1;")
                result = cluster.run_controller("--job-id", "mixed", "--rounds", "2",
                                                "--tasks", "60", "--no-progress")
                self.assertEqual(result.returncode, 0, result.err)
                # Every task the plain worker got was MDP/0.1 (ScriptedWorker
                # reads frames[5] of an MDP REQUEST as the task: a compact
                # message would have broken it), and it did get some.
                self.assertGreater(len(plain.received), 0)
                for task in plain.received:
                    self.assertEqual(task[0], "zfed.task")
                counters = cluster.status()["counters"]
                self.assertEqual(counters["malformed"], 0)
                self.assertGreaterEqual(counters["replies"], 120)
            finally:
                plain.close()
            for worker in (strict, credit):
                worker.stop()
                results, compact = stopping_counts(worker.log())
                self.assertGreater(results, 0, worker.log())
                self.assertEqual(compact, results, worker.log())
                self.assertNotIn(PLAIN_ANSWER, worker.log())
            self.assertEqual(len(cluster.summary("mixed")["rounds"]), 2)

    def test_no_compact_broker_worker_falls_back(self):
        with Cluster("compact-off") as cluster:
            broker = cluster.start_broker("--no-compact", endpoint=private(cluster))
            worker = cluster.start_worker("--credit", "4")
            cluster.wait_workers(1)
            self.assertEqual(cluster.status()["counters"]["workers_compact"], 0)
            result = cluster.run_controller("--job-id", "off", "--rounds", "1", "--tasks", "20",
                                            "--no-progress")
            self.assertEqual(result.returncode, 0, result.err)
            self.assertIn("(credit 4, MDP/0.1: compact refused;", broker.log())
            worker.stop()
            results, compact = stopping_counts(worker.log())
            self.assertEqual((results, compact), (20, 0), worker.log())
            # The operator hears once that the offer got MDP/0.1 (an older
            # zfed-broker would have given credit 1).
            self.assertEqual(worker.log().count(PLAIN_ANSWER), 1, worker.log())

    def test_no_compact_worker(self):
        # (Credit 1 offered nothing a broker could cut: no line either way.)
        with Cluster("compact-worker-off") as cluster:
            broker = cluster.start_broker(endpoint=private(cluster))
            worker = cluster.start_worker("--no-compact")
            cluster.wait_workers(1)
            result = cluster.run_controller("--job-id", "off", "--rounds", "1", "--tasks", "5",
                                            "--no-progress")
            self.assertEqual(result.returncode, 0, result.err)
            self.assertIn("(credit 1, MDP/0.1;", broker.log())
            self.assertEqual(cluster.status()["counters"]["workers_compact"], 0)
            worker.stop()
            self.assertEqual(stopping_counts(worker.log()), (5, 0))


class BrokerRefuses(unittest.TestCase):
    """Compact REPLYs that break section 3.2 earn their sender DISCONNECT;
    the request goes to the next worker, and the broker keeps running."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster("compact-hostile")
        cls.broker = cls.cluster.start_broker(endpoint=private(cls.cluster))

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def refused(self, make_reply, offer=OFFER, what=""):
        cluster = self.cluster
        before = cluster.status()["counters"]
        client = cluster.client()
        bad = RawWorker(cluster, offer=offer)
        good = None
        try:
            body = task_body("hostile", 0, 0, 10)
            client.send_multipart([b"", MDPC, b"cmp", body])
            frames = bad.receive()
            if offer == OFFER:
                self.assertEqual(len(frames), 2, frames)
                self.assertEqual(frames[0][:6], compact_frame(REQUEST, b"")[:5] + b"\x08")
                self.assertEqual(len(frames[0]), 14)
                address = frames[0][6:]
            else:
                self.assertEqual(frames[:3], [b"", MDPW, REQUEST])
                address = frames[3]
            self.assertEqual(frames[-1], body)
            bad.socket.send_multipart(make_reply(address, body))
            self.assertEqual(bad.receive(), [b"", MDPW, DISCONNECT], what)
            after = cluster.status()["counters"]
            self.assertEqual(after["malformed"], before["malformed"] + 1, what)
            # Its request was re-queued: an honest compact worker gets it
            # (the next attempt, same body) and its reply reaches the client.
            good = RawWorker(cluster)
            again = good.receive()
            self.assertEqual(again[-1], body)
            good.socket.send_multipart([compact_frame(REPLY, again[0][6:]), b"answer"])
            self.assertTrue(client.poll(TIMEOUT * 1000), what)
            self.assertEqual(client.recv_multipart(), [b"", MDPC, b"cmp", b"answer"])
            self.assertIn("invalid MDPW01 message, disconnecting its sender", self.broker.log())
        finally:
            client.close()
            bad.close()
            if good:
                good.close(goodbye=True)
        self.assertTrue(self.broker.alive())

    def test_truncated_head(self):
        self.refused(lambda address, body: [b"zfwc\x03", b"result"], what="5-byte head")

    def test_oversize_length(self):
        self.refused(lambda address, body: [b"zfwc\x03\xff" + address, b"result"],
                     what="length 255 in a 14-byte frame")

    def test_short_length(self):
        self.refused(lambda address, body: [b"zfwc\x03\x07" + address, b"result"],
                     what="length 7 for 8 bytes")

    def test_zero_length(self):
        self.refused(lambda address, body: [b"zfwc\x03\x00", b"result"], what="length 0")

    def test_wrong_command(self):
        self.refused(lambda address, body: [compact_frame(REQUEST, address), b"result"],
                     what="REQUEST from a worker")
        self.refused(lambda address, body: [compact_frame(HEARTBEAT, address), b"result"],
                     what="HEARTBEAT as compact")

    def test_no_body(self):
        self.refused(lambda address, body: [compact_frame(REPLY, address)], what="no body")

    def test_not_offered(self):
        # A worker that offered nothing gets MDP, and may not answer compact.
        self.refused(lambda address, body: [compact_frame(REPLY, address), b"result"],
                     offer=None, what="compact without the offer")
        self.refused(lambda address, body: [compact_frame(REPLY, address), b"result"],
                     offer=b"credit=2 compact=2", what="compact=2 is no offer")

    def test_unregistered_sender(self):
        # As an MDP REPLY from no worker: told to start over, counted stale.
        socket = self.cluster.client()
        try:
            before = self.cluster.status()["counters"]
            socket.send_multipart([compact_frame(REPLY, b"\0" * 7 + b"\x01"), b"result"])
            self.assertTrue(socket.poll(TIMEOUT * 1000))
            self.assertEqual(socket.recv_multipart(), [b"", MDPW, DISCONNECT])
            after = self.cluster.status()["counters"]
            self.assertEqual(after["malformed"], before["malformed"])
            self.assertEqual(after["stale_replies"], before["stale_replies"] + 1)
        finally:
            socket.close()


class WorkerRefuses(unittest.TestCase):
    """A zfed-worker against a test broker that sends it bad compact
    REQUESTs: each is dropped and logged, the worker stays up and answers
    the good ones in the form they came in."""

    def serve(self, *worker_args):
        cluster = Cluster("compact-worker")
        router = cluster.context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        cluster.endpoint = private(cluster)
        router.bind(cluster.endpoint)
        worker = cluster.start_worker(*worker_args)
        self.assertTrue(router.poll(TIMEOUT * 1000), "no READY")
        ready = router.recv_multipart()
        return cluster, router, worker, ready

    def answer(self, router, identity, timeout=TIMEOUT):
        deadline = timeout * 1000
        while router.poll(deadline):
            frames = router.recv_multipart()
            self.assertEqual(frames[0], identity)
            if frames[1:] != [b"", MDPW, HEARTBEAT]:
                return frames[1:]
        raise AssertionError("no reply from the worker")

    def test_malformed_requests_dropped(self):
        cluster, router, worker, ready = self.serve("--credit", "2")
        with cluster:
            identity = ready[0]
            self.assertEqual(ready[1:], [b"", MDPW, READY, b"fib", b"credit=2 " + OFFER])
            address = b"\0" * 7 + b"\x05"
            body = task_body("w", 0, 3, 12)
            bad = [[b"zfwc\x02", body],                                # truncated head
                   [b"zfwc\x02\xff" + address, body],                  # oversize length
                   [b"zfwc\x02\x09" + address, body],                  # length one over
                   [compact_frame(REPLY, address), body],              # wrong command
                   [compact_frame(DISCONNECT, address), body],         # no such compact command
                   [compact_frame(REQUEST, address)]]                  # no body
            for frames in bad:
                router.send_multipart([identity] + frames)
            # HEARTBEAT stays MDP/0.1 on a compact connection.
            router.send_multipart([identity, b"", MDPW, HEARTBEAT])
            router.send_multipart([identity, compact_frame(REQUEST, address), body])
            reply = self.answer(router, identity)
            self.assertEqual(reply[0], compact_frame(REPLY, address))
            self.assertEqual(len(reply), 2, reply)
            result = msgpack.unpackb(reply[1], raw=False)
            self.assertEqual(result[0], "zfed.result", result)
            self.assertEqual(result[4], 3)
            # The same worker answers an MDP/0.1 REQUEST in MDP/0.1.
            router.send_multipart([identity, b"", MDPW, REQUEST, b"plain-id", b"", body])
            reply = self.answer(router, identity)
            self.assertEqual(reply[:5], [b"", MDPW, REPLY, b"plain-id", b""])
            self.assertEqual(msgpack.unpackb(reply[5], raw=False)[0], "zfed.result")
            self.assertTrue(worker.alive())
            wait_for(lambda: worker.log().count("dropped a message from the broker") == len(bad),
                     10, what="every bad compact REQUEST logged")
            log = worker.log()
            for reason in ("shorter than its 6-byte head", "6 + its address length",
                           "not REQUEST", "needs a body frame"):
                self.assertIn(reason, log)
            worker.stop()
            self.assertEqual(stopping_counts(worker.log()), (2, 1))
            router.close()

    def test_not_offered_dropped(self):
        cluster, router, worker, ready = self.serve("--no-compact")
        with cluster:
            identity = ready[0]
            self.assertEqual(ready[1:], [b"", MDPW, READY, b"fib"])  # RFC 7's four frames
            body = task_body("w", 0, 1, 10)
            router.send_multipart([identity, compact_frame(REQUEST, b"12345678"), body])
            router.send_multipart([identity, b"", MDPW, REQUEST, b"12345678", b"", body])
            reply = self.answer(router, identity)
            self.assertEqual(reply[:4], [b"", MDPW, REPLY, b"12345678"])
            wait_for(lambda: "which this worker did not offer" in worker.log(), 10,
                     what="the unasked compact REQUEST logged")
            self.assertTrue(worker.alive())
            router.close()



def ticket(number):
    return b"zfed.ticket" + number.to_bytes(8, "big")


def vectors():
    """zfed-protocol.json's compact_frame vectors by name."""
    with open(os.path.join(SCHEMAS, "zfed-protocol.json")) as handle:
        found = json.load(handle)["mdp"]["extensions"]["compact_frame"]["vectors"]
    return {vector["name"]: bytes.fromhex(vector["hex"]) for vector in found}


class Bindings(unittest.TestCase):
    """A compact REPLY is bound to its request exactly as an MDP one
    (PROTOCOL.md 3, 3.1): only the worker that holds the request may
    answer it, once, and the stamp names that worker."""

    def setUp(self):
        self.cluster = Cluster("compact-bindings")
        self.cluster.start_broker(endpoint=private(self.cluster))
        self.client = self.cluster.client()

    def tearDown(self):
        self.client.close()
        self.cluster.close()

    def wait_cmp_workers(self, count):
        self.cluster.wait_workers(count, service="cmp")

    def next_reply(self):
        self.assertTrue(self.client.poll(TIMEOUT * 1000), "no reply reached the client")
        return self.client.recv_multipart()

    def test_forged_and_repeated_replies(self):
        a, b = RawWorker(self.cluster), RawWorker(self.cluster)
        self.wait_cmp_workers(2)
        before = self.cluster.status()["counters"]
        bodies = {1: b"task-one", 2: b"task-two"}
        for number, body in bodies.items():
            self.client.send_multipart([b"", MDPC, b"cmp", ticket(number), body])
        got = {}
        for worker in (a, b):
            frames = worker.receive()
            self.assertEqual(len(frames), 2, frames)
            got[frames[1]] = (worker, frames[0][6:])
        holder_one, address_one = got[b"task-one"]
        holder_two, address_two = got[b"task-two"]
        # The worker holding task two answers task one: a forgery.
        holder_two.socket.send_multipart([compact_frame(REPLY, address_one), b"forged"])
        self.assertEqual(holder_two.receive(), [b"", MDPW, DISCONNECT])
        holder_one.socket.send_multipart([compact_frame(REPLY, address_one), b"answer-one"])
        first = self.next_reply()
        self.assertEqual(first[:3], [b"", MDPC, b"cmp"])
        self.assertEqual(first[4:], [b"answer-one"], first)
        self.assertEqual(first[3][10:18], (1).to_bytes(8, "big"))
        # Task two was re-queued to the honest worker; a repeat of its
        # answer to task one is refused and not forwarded twice.
        again = holder_one.receive()
        self.assertEqual(again, [compact_frame(REQUEST, address_two), b"task-two"])
        holder_one.socket.send_multipart([compact_frame(REPLY, again[0][6:]), b"answer-two"])
        second = self.next_reply()
        self.assertEqual(second[4:], [b"answer-two"], second)
        self.assertEqual(second[3][10:18], (2).to_bytes(8, "big"))
        self.assertEqual(second[3][18:], first[3][18:], "both stamps name the honest worker")
        holder_one.socket.send_multipart([compact_frame(REPLY, address_one), b"answer-one"])
        self.assertEqual(holder_one.receive(), [b"", MDPW, DISCONNECT])
        self.assertFalse(self.client.poll(500), "a reply was forwarded twice")
        after = self.cluster.status()["counters"]
        self.assertEqual(after["replies"] - before["replies"], 2)
        self.assertEqual(after["stale_replies"] - before["stale_replies"], 2)
        for worker in (a, b):
            worker.close()

    def test_credit_out_of_order_and_mixed_forms(self):
        worker = RawWorker(self.cluster, offer=b"credit=3 compact=1")
        self.wait_cmp_workers(1)
        for number in range(3):
            self.client.send_multipart([b"", MDPC, b"cmp", b"task-%d" % number])
        held = {}
        for _ in range(3):
            frames = worker.receive()
            self.assertEqual(len(frames), 2, frames)
            held[frames[1]] = frames[0][6:]
        self.assertEqual(sorted(held), [b"task-0", b"task-1", b"task-2"])
        # Answered last first, and one in MDP/0.1, which an accepted
        # worker may still send (PROTOCOL.md 3.2 rule 3).
        worker.socket.send_multipart([compact_frame(REPLY, held[b"task-2"]), b"two"])
        worker.socket.send_multipart([b"", MDPW, REPLY, held[b"task-0"], b"", b"zero"])
        worker.socket.send_multipart([compact_frame(REPLY, held[b"task-1"]), b"one", b"data"])
        replies = [self.next_reply() for _ in range(3)]
        self.assertEqual(replies, [[b"", MDPC, b"cmp", b"two"], [b"", MDPC, b"cmp", b"zero"],
                                   [b"", MDPC, b"cmp", b"one", b"data"]])
        counters = self.cluster.status()["counters"]
        self.assertEqual(counters["malformed"], 0)
        self.assertEqual(counters["replies"], 3)
        worker.close(goodbye=True)

    def test_reply_with_more_frames_than_forwarded(self):
        # 5 body frames (over the 4 forwarded) and 100 (past what the
        # broker keeps): the client hears 413, the worker stays.
        worker = RawWorker(self.cluster)
        self.wait_cmp_workers(1)
        for count in (5, 100):
            self.client.send_multipart([b"", MDPC, b"cmp", b"task"])
            frames = worker.receive()
            worker.socket.send_multipart([compact_frame(REPLY, frames[0][6:])] + [b"x"] * count)
            reply = self.next_reply()
            error = msgpack.unpackb(reply[3], raw=False)
            self.assertEqual(error[0], "zfed.error", error)
            self.assertIn(413, error, error)
        self.client.send_multipart([b"", MDPC, b"cmp", b"task"])
        frames = worker.receive()
        worker.socket.send_multipart([compact_frame(REPLY, frames[0][6:]), b"fine"])
        self.assertEqual(self.next_reply(), [b"", MDPC, b"cmp", b"fine"])
        worker.close(goodbye=True)


class Restart(unittest.TestCase):
    """The offer is made per connection: a broker restarted mid-job sees
    a zfed worker offer it again, and a compact REPLY that reaches the new
    broker is a stale reply (as an MDP one is), not a malformed message."""

    def test_stale_compact_reply_after_restart(self):
        with Cluster("compact-restart") as cluster:
            endpoint = private(cluster)
            first = cluster.start_broker(endpoint=endpoint)
            compact, plain = RawWorker(cluster), RawWorker(cluster, offer=None)
            client = cluster.client()
            try:
                cluster.wait_workers(2, service="cmp")
                client.send_multipart([b"", MDPC, b"cmp", b"task-1"])
                client.send_multipart([b"", MDPC, b"cmp", b"task-2"])
                held = compact.receive()
                self.assertEqual(len(held), 2, held)
                held_plain = plain.receive()
                self.assertEqual(held_plain[:3], [b"", MDPW, REQUEST])
                first.kill()  # a crash: no goodbye to its workers
                cluster.start_broker(endpoint=endpoint)
                # The DEALERs reconnect by themselves; the replies wait for it.
                compact.socket.send_multipart([compact_frame(REPLY, held[0][6:]), b"late"])
                plain.socket.send_multipart([b"", MDPW, REPLY, held_plain[3], b"", b"late"])
                self.assertEqual(compact.receive(), [b"", MDPW, DISCONNECT])
                self.assertEqual(plain.receive(), [b"", MDPW, DISCONNECT])
                counters = cluster.status()["counters"]
                self.assertEqual((counters["stale_replies"], counters["malformed"]), (2, 0),
                                 "a late compact REPLY counts as a late MDP one")
            finally:
                client.close()
                compact.close()
                plain.close()

    def test_zfed_worker_offers_again_after_restart(self):
        with Cluster("compact-restart-worker") as cluster:
            endpoint = private(cluster)
            first = cluster.start_broker(endpoint=endpoint)
            worker = cluster.start_worker("--credit", "4")
            wait_for(lambda: cluster.status()["counters"]["workers_compact"] == 1, 10,
                     what="the first broker accepting the offer")
            first.stop()
            cluster.start_broker(endpoint=endpoint)
            wait_for(lambda: cluster.status()["counters"]["workers_compact"] == 1, 30,
                     what="the worker offering compact frames to the new broker")
            result = cluster.run_controller("--job-id", "again", "--rounds", "1", "--tasks",
                                            "12", "--no-progress")
            self.assertEqual(result.returncode, 0, result.err)
            self.assertEqual(cluster.status()["counters"]["malformed"], 0)
            worker.stop()
            self.assertEqual(stopping_counts(worker.log()), (12, 12), worker.log())


class WireVectors(unittest.TestCase):
    """What the C broker and worker put on the wire is zfed-protocol.json's
    compact_frame vectors, byte for byte."""

    def test_broker_request_is_the_vector(self):
        with Cluster("compact-vector-broker") as cluster:
            cluster.start_broker(endpoint=private(cluster))
            worker = RawWorker(cluster)
            client = cluster.client()
            try:
                client.send_multipart([b"", MDPC, b"cmp", b"task"])  # the broker's request 1
                self.assertEqual(worker.receive(), [vectors()["request-id-1"], b"task"])
            finally:
                client.close()
                worker.close()

    def test_worker_reply_is_the_vector(self):
        with Cluster("compact-vector-worker") as cluster:
            router = cluster.context.socket(zmq.ROUTER)
            router.setsockopt(zmq.LINGER, 0)
            cluster.endpoint = private(cluster)
            router.bind(cluster.endpoint)
            worker = cluster.start_worker()
            self.assertTrue(router.poll(TIMEOUT * 1000), "no READY")
            identity = router.recv_multipart()[0]
            router.send_multipart([identity, vectors()["request-id-1"], task_body("v", 0, 0, 5)])
            while router.poll(TIMEOUT * 1000):
                frames = router.recv_multipart()
                if frames[1:] != [b"", MDPW, HEARTBEAT]:
                    break
            self.assertEqual(frames[1], vectors()["reply-id-1"])
            self.assertEqual(len(frames), 3, frames)
            worker.stop()
            router.close()


if __name__ == "__main__":
    main()
