"""Compact client frames between the controller and the broker
(PROTOCOL.md 3.3, issue 14).

The controller reads "compact_clients": true in the broker's mmi.status
and from then on sends each request as one zfcc frame and its body; the
broker answers each request in the form it came.  Shown here: a job's
results are the same, byte for byte, as over MDP/0.1 and every one is
stamped; a plain MDP/0.1 client of the same broker sees only MDP/0.1; a
broker with --no-compact (or a controller with it) keeps the controller on
MDP/0.1; malformed compact client frames at the broker are dropped and
counted while it keeps serving; what the C broker and controller put on
the wire is zfed-protocol.json's compact_client_frame vectors; and the C
controller drops malformed compact replies.
"""

import json
import os
import sys
import unittest

import msgpack
import zmq

from zfedtest import (PYTHON_PACKAGE_DIR, Cluster, MDPC, MDPW, REPLY, REQUEST,
                      fib_last, fib_sum, main, task_body, wait_for)

from test_compact import RawWorker  # noqa: E402

sys.path.insert(0, PYTHON_PACKAGE_DIR)
import zfed  # noqa: E402

TIMEOUT = 20
SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas")
NEGOTIATED = "takes compact client frames: requests go compact"
T0, T1 = bytes(8), (1).to_bytes(8, "big")


def private(cluster):
    """An ipc endpoint in the cluster's folder (no stray worker of another
    run can join it, as one could on a reused TCP port)."""
    return "ipc://%s/broker.ipc" % cluster.dir


def head(command, service, ticket=None, identity=None):
    """A compact client frame, written here from the table of section 3.3
    (not with zfed.protocol: the vectors below check both)."""
    service = service.encode()
    frame = b"zfcc" + command + bytes([1 if ticket is not None else 0])
    frame += (ticket or 0).to_bytes(8, "big") + bytes([len(service)]) + service
    if identity is not None:
        frame += bytes([len(identity)]) + identity.encode()
    return frame


def vectors():
    """zfed-protocol.json's compact_client_frame vectors by name."""
    with open(os.path.join(SCHEMAS, "zfed-protocol.json")) as handle:
        found = json.load(handle)["mdp"]["extensions"]["compact_client_frame"]["vectors"]
    return {vector["name"]: bytes.fromhex(vector["hex"]) for vector in found}


def ticket_frame(number):
    return b"zfed.ticket" + number.to_bytes(8, "big")


def results_view(cluster, job_id):
    """Every round's (task, level, sum, last) and aggregate."""
    return [([(r["task"], r["level"], r["sum"], r["last"]) for r in round_["results"]],
             round_["aggregate"]) for round_ in cluster.summary(job_id)["rounds"]]


def raw_worker(cluster, service=b"cmp"):
    """An MDP/0.1 worker socket (its READY offers nothing), driven frame
    by frame."""
    return RawWorker(cluster, service=service, offer=None)


def receive(socket, what):
    if not socket.poll(TIMEOUT * 1000):
        raise AssertionError("no reply: " + what)
    return socket.recv_multipart()


class Negotiated(unittest.TestCase):
    """The C controller and the C broker agree on compact client frames."""

    def test_job_compact_results_exact_plain_client_mdp(self):
        with Cluster("compact-clients") as cluster:
            cluster.start_broker(endpoint=private(cluster))
            cluster.start_worker("--credit", "8", "--threads", "0")
            cluster.start_worker()
            cluster.wait_workers(2)
            status = cluster.status()
            self.assertIs(status["compact_clients"], True)
            self.assertEqual(list(status)[:3], ["version", "stamps", "compact_clients"])
            args = ["--rounds", "2", "--tasks", "40", "--levels",
                    ",".join(str(5 + i) for i in range(40)), "--no-progress"]
            compact = cluster.run_controller("--job-id", "compact", *args)
            self.assertEqual(compact.returncode, 0, compact.err)
            self.assertIn(NEGOTIATED, compact.err)
            counters = cluster.status()["counters"]
            # Every task request came compact (mmi.service questions of a
            # watch, should a round go quiet, would come compact too).
            self.assertGreaterEqual(counters["requests"], 80)
            self.assertGreaterEqual(counters["compact_requests"], counters["requests"])
            self.assertEqual(counters["malformed"], 0)
            # The same job in MDP/0.1: the same results, byte for byte.
            plain = cluster.run_controller("--job-id", "plain", "--no-compact", *args)
            self.assertEqual(plain.returncode, 0, plain.err)
            self.assertNotIn(NEGOTIATED, plain.err)
            self.assertEqual(cluster.status()["counters"]["compact_requests"],
                             counters["compact_requests"], "--no-compact sent compact")
            self.assertEqual(results_view(cluster, "compact"), results_view(cluster, "plain"))
            for round_ in cluster.summary("compact")["rounds"]:
                self.assertEqual(len(round_["results"]), 40)
                for result in round_["results"]:
                    self.assertEqual(result["sum"], str(fib_sum(result["level"])))
                    self.assertEqual(result["last"], str(fib_last(result["level"])))
                    # The stamp came in the compact frame: vouched identity.
                    self.assertRegex(result["worker_id"], r"^peer:\d+$")
            # A plain MDP/0.1 client of the same broker: MDP/0.1 replies,
            # stamped in their own frame (section 3.1).
            client = cluster.client()
            try:
                body = task_body("raw", 0, 0, 12)
                client.send_multipart([b"", MDPC, b"fib", ticket_frame(9), body])
                reply = receive(client, "the plain client's task")
                self.assertEqual(reply[:3], [b"", MDPC, b"fib"])
                self.assertEqual(len(reply), 5, reply)
                self.assertEqual(reply[3][:18], b"zfed.stamp" + (9).to_bytes(8, "big"))
                self.assertEqual(msgpack.unpackb(reply[4], raw=False)[0], "zfed.result")
                client.send_multipart([b"", MDPC, b"fib", task_body("raw", 0, 1, 7)])
                self.assertEqual(receive(client, "unticketed")[:3], [b"", MDPC, b"fib"])
            finally:
                client.close()

    def test_no_compact_broker_controller_falls_back(self):
        with Cluster("compact-clients-off") as cluster:
            broker = cluster.start_broker("--no-compact", endpoint=private(cluster))
            cluster.start_worker("--credit", "4")
            cluster.wait_workers(1)
            self.assertIs(cluster.status()["compact_clients"], False)
            result = cluster.run_controller("--job-id", "off", "--rounds", "1", "--tasks", "20",
                                            "--no-progress")
            self.assertEqual(result.returncode, 0, result.err)
            self.assertNotIn(NEGOTIATED, result.err)
            counters = cluster.status()["counters"]
            self.assertEqual((counters["compact_requests"], counters["malformed"]), (0, 0))
            self.assertEqual(len(cluster.summary("off")["rounds"][0]["results"]), 20)
            # Such a broker takes no compact client frame: by the MDP rules
            # its frame 0 is not empty, dropped and counted.
            client = cluster.client()
            try:
                client.send_multipart([head(REQUEST, "fib", 1), task_body("x", 0, 0, 5)])
                wait_for(lambda: cluster.status()["counters"]["malformed"] == 1, 10,
                         what="the zfcc frame counted malformed")
                client.send_multipart([b"", MDPC, b"fib", task_body("x", 0, 1, 5)])
                self.assertEqual(receive(client, "MDP after zfcc")[:3], [b"", MDPC, b"fib"])
            finally:
                client.close()
            self.assertIn("first frame must be empty", broker.log())


    def test_a_broker_replaced_mid_job_by_one_without_compact(self):
        """The controller agreed compact frames with the broker it probed;
        that broker dies and one started with --no-compact (as an older
        zfed-broker would) takes its endpoint: the controller goes MDP/0.1
        once the connection is lost, re-sends what the new broker dropped,
        and the job's results equal an undisturbed run's."""
        heartbeat = ["--heartbeat-ms", "100", "--liveness", "3"]
        with Cluster("compact-clients-swap") as cluster:
            endpoint = private(cluster)
            broker = cluster.start_broker(*heartbeat, endpoint=endpoint)
            for _ in range(2):
                cluster.start_worker(*heartbeat, "--delay-ms", "50")
            cluster.wait_workers(2)
            job = ["--rounds", "6", "--tasks", "3", "--no-progress"]
            calm = cluster.run_controller("--job-id", "calm", *job)
            self.assertEqual(calm.returncode, 0, calm.err)
            controller = cluster.start_controller("--job-id", "swap", *job, "--task-timeout",
                                                  "0.5", "--retries", "40", "--round-timeout",
                                                  "60")
            rounds = os.path.join(cluster.workdir, "swap", "rounds")
            wait_for(lambda: os.path.exists(os.path.join(rounds, "round-000001.json")), 20,
                     what="round 1")
            broker.kill()
            cluster.start_broker(*heartbeat, "--no-compact", endpoint=endpoint)
            wait_for(lambda: not controller.alive(), 60, what="the job to finish")
            self.assertEqual(controller.proc.returncode, 0, controller.log())
            self.assertIn(NEGOTIATED, controller.log())
            self.assertIn("requests go MDP/0.1 from now on", controller.log())
            self.assertEqual(results_view(cluster, "swap"), results_view(cluster, "calm"))
            # What reached the new broker after the switch came as MDP/0.1.
            counters = cluster.status()["counters"]
            self.assertEqual(counters["compact_requests"], 0)
            self.assertGreater(counters["requests"], 0)


class PythonClient(unittest.TestCase):
    """zfed.Client(compact="auto") reads the status map as the controller
    does, and speaks compact to a broker that takes it, MDP/0.1 otherwise."""

    def call(self, cluster, **options):
        before = cluster.status()["counters"]["compact_requests"]
        with zfed.Client(cluster.endpoint, tickets="auto", **options) as client:
            task = zfed.client.task("py", 0, 3, {"fibonacci_level": 11}, "0")
            reply = client.call("fib", task, timeout=TIMEOUT)
            compact = client.compact
        self.assertEqual(reply.result.outputs["sum"], str(fib_sum(11)))
        self.assertRegex(reply.worker_id, r"^peer:\d+$")
        return compact, cluster.status()["counters"]["compact_requests"] - before

    def test_auto(self):
        with Cluster("compact-clients-python") as cluster:
            cluster.start_broker(endpoint=private(cluster))
            cluster.start_worker()
            cluster.wait_workers(1)
            self.assertEqual(self.call(cluster, compact="auto"), (True, 1))
            self.assertEqual(self.call(cluster), (False, 0))
            # A ticket of the caller's own choosing (not next_ticket()):
            # its stamped compact reply is taken all the same.
            with zfed.Client(cluster.endpoint, compact=True) as client:
                client.send("fib", [task_body("own", 0, 0, 9)], ticket=77)
                service, frames = client.receive(TIMEOUT)
            self.assertEqual(service, "fib")
            self.assertEqual(frames[0].bytes[:18], b"zfed.stamp" + (77).to_bytes(8, "big"))
        with Cluster("compact-clients-python-off") as cluster:
            cluster.start_broker("--no-compact", endpoint=private(cluster))
            cluster.start_worker()
            cluster.wait_workers(1)
            self.assertEqual(self.call(cluster, compact="auto"), (False, 0))


class BrokerRefuses(unittest.TestCase):
    """Compact client frames that break section 3.3 are dropped with no
    answer and counted malformed; the sender's next request is served."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster("compact-clients-hostile")
        cls.broker = cls.cluster.start_broker(endpoint=private(cls.cluster))

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def test_each_refused_broker_keeps_serving(self):
        cluster = self.cluster
        worker = raw_worker(cluster)
        client = cluster.client()
        try:
            cluster.wait_workers(1, service="cmp")
            bad = [[b"zfcc", b"b"],                                         # magic only
                   [b"zfcc\x02\x01" + T1, b"b"],                             # 14 bytes
                   [head(REPLY, "cmp", 1, "peer:1"), b"b"],                 # a REPLY
                   [b"zfcc\x04\x00" + T0 + b"\x03cmp", b"b"],               # command 0x04
                   [b"zfcc\x02\x02" + T0 + b"\x03cmp", b"b"],               # unknown flag
                   [b"zfcc\x02\x00" + T1 + b"\x03cmp", b"b"],               # ticket, no flag
                   [b"zfcc\x02\x00" + T0 + b"\x00", b"b"],                  # empty service
                   [b"zfcc\x02\x01" + T1 + b"\x04cmp", b"b"],               # length over
                   [b"zfcc\x02\x01" + T1 + b"\x02cmp", b"b"],               # length under
                   [b"zfcc\x02\x01" + T1 + b"\xffcmp", b"b"],               # 255 in 18
                   [b"zfcc\x02\x01" + T1 + b"\x03c\x00p", b"b"],            # NUL in service
                   [b"zfcc\x02\x01" + T1 + b"\x03c\xc3\xa9", b"b"],         # UTF-8
                   [head(REQUEST, "cmp", 1) + b"\x06peer:1", b"b"],         # an identity
                   [head(REQUEST, "cmp", 1)],                               # no body
                   [head(REQUEST, "mmi.status")]]                           # MMI, no body
            before = cluster.status()["counters"]
            for frames in bad:
                client.send_multipart(frames)
            # Then a good one on the same connection: its answer is the
            # first thing back, so none of the bad ones was answered.
            client.send_multipart([head(REQUEST, "cmp", 5), b"task"])
            request = worker.receive()
            self.assertEqual(request[:3], [b"", MDPW, REQUEST])
            self.assertEqual(request[5:], [b"task"], "the worker leg is MDP/0.1 for this worker")
            worker.socket.send_multipart([b"", MDPW, REPLY, request[3], b"", b"answer"])
            reply = receive(client, "the good compact request")
            self.assertEqual(len(reply), 2, reply)
            # Stamped with the worker's connection: "peer:N", I = its length.
            prefix = head(REPLY, "cmp", 5)
            self.assertEqual(reply[0][:len(prefix)], prefix, reply[0])
            identity = reply[0][len(prefix) + 1:]
            self.assertEqual(reply[0][len(prefix)], len(identity))
            self.assertRegex(identity.decode(), r"^peer:\d+$")
            self.assertEqual(reply[1], b"answer")
            after = cluster.status()["counters"]
            self.assertEqual(after["malformed"] - before["malformed"], len(bad))
            self.assertEqual(after["compact_requests"] - before["compact_requests"], 1)
            self.assertEqual(after["requests"] - before["requests"], 1)
            self.assertIn("compact client frame", self.broker.log())
            self.assertTrue(self.broker.alive())
        finally:
            client.close()
            worker.close()

    def test_body_frames_as_mdp(self):
        # More than 4 body frames: 413, answered compact and stamped
        # broker (the vector); a ticket-shaped first body frame is body.
        cluster = self.cluster
        client = cluster.client()
        worker = raw_worker(cluster, service=b"frames")
        try:
            cluster.wait_workers(1, service="frames")
            client.send_multipart([head(REQUEST, "fib", 1)] + [b"x"] * 5)
            reply = receive(client, "413")
            self.assertEqual(reply[0], vectors()["reply-fib-ticket-1-broker"])
            error = msgpack.unpackb(reply[1], raw=False)
            self.assertEqual(error[0], "zfed.error")
            self.assertIn(413, error)
            client.send_multipart([head(REQUEST, "frames"), ticket_frame(3), b"task"])
            request = worker.receive()
            self.assertEqual(request[5:], [ticket_frame(3), b"task"])
            worker.socket.send_multipart([b"", MDPW, REPLY, request[3], b"", b"r"])
            self.assertEqual(receive(client, "unticketed"), [head(REPLY, "frames"), b"r"])
        finally:
            client.close()
            worker.close()

    def test_mmi_in_compact_form(self):
        client = self.cluster.client()
        try:
            client.send_multipart([vectors()["request-mmi-status"], b""])
            reply = receive(client, "mmi.status")
            self.assertEqual(reply[0], vectors()["reply-mmi-status-no-stamp"])
            self.assertIs(msgpack.unpackb(reply[1], raw=False)["compact_clients"], True)
            client.send_multipart([head(REQUEST, "mmi.service", 4), b"nobody"])
            self.assertEqual(receive(client, "mmi.service"),
                             [head(REPLY, "mmi.service", 4, "broker"), b"404"])
            client.send_multipart([head(REQUEST, "mmi.nothing"), b""])
            self.assertEqual(receive(client, "mmi.nothing"), [head(REPLY, "mmi.nothing"), b"501"])
        finally:
            client.close()


class Curve(unittest.TestCase):
    """Under CURVE a compact request is judged by its key's roles as the
    MDP/0.1 one (PROTOCOL.md 6.4), and stamps name the worker's key."""

    def test_roles_and_stamps(self):
        from test_security import Keys, curve_socket
        with Cluster("compact-clients-curve") as cluster:
            keys = Keys(os.path.join(cluster.dir, "keys"))
            controller_secret = keys.issue("controller-1", "controllers")
            worker_secret = keys.issue("worker-1", "workers")
            cluster.start_broker(*keys.broker_args(), endpoint=private(cluster))
            cluster.start_worker(*keys.peer_args(worker_secret))
            asker = curve_socket(cluster, keys, controller_secret)
            intruder = curve_socket(cluster, keys, worker_secret)
            try:
                def workers():
                    asker.send_multipart([head(REQUEST, "mmi.service"), b"fib"])
                    return receive(asker, "mmi.service")[1] == b"200"
                wait_for(workers, 10, what="the CURVE worker")
                result = cluster.run_controller("--job-id", "curve", "--rounds", "1", "--tasks",
                                                "6", "--no-progress",
                                                *keys.peer_args(controller_secret))
                self.assertEqual(result.returncode, 0, result.err)
                self.assertIn(NEGOTIATED, result.err)
                ids = {r["worker_id"] for r in cluster.summary("curve")["rounds"][0]["results"]}
                self.assertEqual(len(ids), 1)
                self.assertRegex(ids.pop(), r"^curve:.{40}$")
                # A worker key may not submit: 403, compact, stamped broker.
                intruder.send_multipart([head(REQUEST, "fib", 8), task_body("stolen", 0, 2, 9)])
                reply = receive(intruder, "403")
                self.assertEqual(reply[0], head(REPLY, "fib", 8, "broker"))
                error = msgpack.unpackb(reply[1], raw=False)
                self.assertEqual((error[0], error[4], error[7]), ("zfed.error", 2, 403))
                # but may ask MMI questions, in compact form too.
                intruder.send_multipart([head(REQUEST, "mmi.status"), b""])
                status = msgpack.unpackb(receive(intruder, "status")[1], raw=False)
                self.assertEqual(status["counters"]["forbidden"], 1)
            finally:
                asker.close()
                intruder.close()


class FakeBroker:
    """A ROUTER that answers the controller's probe with a status map and
    hands its task requests to the test."""

    def __init__(self, cluster, status):
        self.socket = cluster.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        cluster.endpoint = private(cluster)
        self.socket.bind(cluster.endpoint)
        self.status = msgpack.packb(status, use_bin_type=True)

    def next_task(self):
        """(routing id, frames) of the next request that is no MMI one."""
        while self.socket.poll(TIMEOUT * 1000):
            frames = self.socket.recv_multipart()
            sender, rest = frames[0], frames[1:]
            if rest[:3] == [b"", MDPC, b"mmi.status"]:
                self.socket.send_multipart([sender, b"", MDPC, b"mmi.status", self.status])
            elif rest[0][:4] == b"zfcc" and rest[0][15:].startswith(b"mmi."):
                service = rest[0][15:].decode()
                self.socket.send_multipart([sender, head(REPLY, service), b"200"])
            else:
                return sender, rest
        raise AssertionError("no request from the controller")


class ControllerWire(unittest.TestCase):
    """What the C controller sends and takes (lib/client)."""

    def test_request_is_the_vector_and_bad_replies_are_dropped(self):
        with Cluster("compact-clients-controller") as cluster:
            broker = FakeBroker(cluster, {"version": "test", "stamps": True,
                                          "compact_clients": True})
            controller = cluster.start_controller("--job-id", "wire", "--rounds", "1",
                                                  "--tasks", "1", "--level", "10",
                                                  "--round-timeout", "60")
            sender, frames = broker.next_task()
            # Its first task request: ticket 1 for service fib, the vector.
            self.assertEqual(len(frames), 2, frames)
            self.assertEqual(frames[0], vectors()["request-fib-ticket-1"])
            task = msgpack.unpackb(frames[1], raw=False)
            self.assertEqual(task[0], "zfed.task")
            result = msgpack.packb(["zfed.result", 1, task[2], task[3], task[4], task[5], "w", 1,
                                    {"sum": str(fib_sum(10)), "terms": 10,
                                     "last": str(fib_last(10)),
                                     "sequence": ["0", "1", "1", "2", "3", "5", "8", "13", "21",
                                                  "34"]}], use_bin_type=True)
            bad = [[b"zfcc\x03\x01" + T1, result],                               # 14 bytes
                   [head(REQUEST, "fib", 1), result],                            # a REQUEST
                   [b"zfcc\x03\x03" + T1 + b"\x03fib\x06peer:7", result],        # unknown flag
                   [head(REPLY, "fib", 1), result],                              # no identity
                   [head(REPLY, "fib", 1) + b"\x00", result],                    # identity 0
                   [head(REPLY, "fib", 1) + b"\x07peer:7", result],              # length over
                   [head(REPLY, "fib", 1, "peer\n7"), result],                   # control byte
                   [head(REPLY, "fib", 1, "peer:7")],                            # no body
                   [head(REPLY, "fib", 1, "peer:7"), result, b"x"]]              # 2 body frames
            for frames in bad:
                broker.socket.send_multipart([sender] + frames)
            broker.socket.send_multipart([sender, vectors()["reply-fib-ticket-1-peer-3"], result])
            wait_for(lambda: not controller.alive(), TIMEOUT, what="the controller to finish")
            self.assertEqual(controller.stop(), 0, controller.log())
            log = controller.log()
            self.assertIn(NEGOTIATED, log)
            self.assertEqual(log.count("dropped a malformed reply"), len(bad), log)
            round_ = cluster.summary("wire")["rounds"][0]
            self.assertEqual([(r["task"], r["worker_id"]) for r in round_["results"]],
                             [(0, "peer:3")])

    def test_no_compact_without_the_key(self):
        # A zfed-broker older than compact client frames (no key): MDP/0.1.
        with Cluster("compact-clients-older") as cluster:
            broker = FakeBroker(cluster, {"version": "0.0.9", "stamps": True})
            controller = cluster.start_controller("--job-id", "old", "--rounds", "1",
                                                  "--tasks", "1", "--level", "3")
            sender, frames = broker.next_task()
            self.assertEqual(frames[:4], [b"", MDPC, b"fib", ticket_frame(1)])
            controller.stop()


if __name__ == "__main__":
    main()
