"""CurveZMQ: encryption, authentication by key, authorization by role.

Every test asserts on what the broker delivered and counted (mmi.status),
not only on log text.  Raw peers use pyzmq's CURVE with certificates that
zfed-keygen wrote.
"""

import os
import shutil
import signal
import subprocess
import sys
import unittest

import msgpack
import zmq
import zmq.auth

from zfedtest import (PYTHON_PACKAGE_DIR, Cluster, MDPC, MDPW, READY, REQUEST, binary, main,
                      task_body, wait_for)

MIB = 1 << 20


def keygen(directory, name):
    result = subprocess.run([binary("zfed-keygen"), "--dir", directory, name],
                            capture_output=True, text=True, check=True)
    public_key, public_path, secret_path = result.stdout.split()
    return public_key, public_path, secret_path


class Keys:
    """A broker key, role directories, and secrets kept apart from them."""

    def __init__(self, root):
        self.root = root
        self.workers = os.path.join(root, "workers")
        self.controllers = os.path.join(root, "controllers")
        self.secrets = os.path.join(root, "secrets")
        for folder in (self.workers, self.controllers, self.secrets):
            os.makedirs(folder, exist_ok=True)
        _, self.broker_public, self.broker_secret = keygen(root, "broker")

    def issue(self, name, role):
        """A key pair whose public half is allowed in role ('workers',
        'controllers' or None); returns the secret file's path."""
        folder = getattr(self, role) if role else self.secrets
        _, public, secret = keygen(folder, name)
        kept = os.path.join(self.secrets, os.path.basename(secret))
        shutil.move(secret, kept)
        return kept

    def broker_args(self):
        return ["--curve-cert", self.broker_secret, "--workers-dir", self.workers,
                "--controllers-dir", self.controllers]

    def peer_args(self, secret):
        return ["--curve-cert", secret, "--server-key", self.broker_public]


def curve_socket(cluster, keys, secret, server_public=None):
    """A raw DEALER speaking CURVE with the given secret certificate."""
    public, private = zmq.auth.load_certificate(secret)
    server, _ = zmq.auth.load_certificate(server_public or keys.broker_public)
    socket = cluster.context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.curve_publickey = public
    socket.curve_secretkey = private
    socket.curve_serverkey = server
    socket.connect(cluster.endpoint)
    return socket


def curve_status(cluster, keys, secret):
    """mmi.status over CURVE, asked with the given (controller) key."""
    socket = curve_socket(cluster, keys, secret)
    try:
        socket.send_multipart([b"", MDPC, b"mmi.status", b""])
        if not socket.poll(5000):
            raise AssertionError("no status over CURVE")
        return msgpack.unpackb(socket.recv_multipart()[3], raw=False)
    finally:
        socket.close()


class Curve(unittest.TestCase):

    def setUp(self):
        self.cluster = Cluster("curve")
        self.keys = Keys(os.path.join(self.cluster.dir, "keys"))
        self.controller_secret = self.keys.issue("controller-1", "controllers")
        self.cluster.start_broker(*self.keys.broker_args())
        # mmi.status over CURVE needs a key too: the controller's.
        self.status_socket = None

    def tearDown(self):
        self.cluster.close()

    def status(self):
        return curve_status(self.cluster, self.keys, self.controller_secret)

    def start_worker(self, secret, server_key=None):
        return self.cluster.start_worker("--curve-cert", secret, "--server-key",
                                         server_key or self.keys.broker_public)

    def wait_workers(self, count):
        wait_for(lambda: self.status()["services"].get("fib", {}).get("workers", 0) == count,
                 10, what="%d CURVE workers" % count)

    def run_job(self, job_id, secret=None, *args):
        return self.cluster.run_controller("--job-id", job_id, "--no-progress",
                                           *self.keys.peer_args(secret or self.controller_secret),
                                           *args)

    def test_authorized_worker_and_controller_complete_a_job(self):
        for index in range(3):
            self.start_worker(self.keys.issue("worker-%d" % index, "workers"))
        self.wait_workers(3)
        result = self.run_job("secure", None, "--rounds", "3")
        self.assertEqual(result.returncode, 0, result.err)
        summary = self.cluster.summary("secure")
        self.assertEqual([r["aggregate"] for r in summary["rounds"]], ["88"] * 3)
        counters = self.status()["counters"]
        self.assertGreaterEqual(counters["auth_accepted"], 4)
        self.assertEqual(counters["auth_refused"], 0)
        self.assertEqual(counters["forbidden"], 0)
        self.assertEqual(counters["replies"], 15)

    def test_unknown_key_never_gets_a_task_nor_injects_a_result(self):
        good = self.start_worker(self.keys.issue("good", "workers"))
        self.wait_workers(1)
        stranger = self.keys.issue("stranger", None)  # in no directory
        rogue_worker = self.start_worker(stranger)
        rogue = curve_socket(self.cluster, self.keys, stranger)
        rogue.send_multipart([b"", MDPW, READY, b"fib"])
        rogue.send_multipart([b"", MDPW, b"\x03", b"\0" * 8, b"",
                              msgpack.packb(["zfed.result", 1, "secure", 0, 0, 0, "rogue", 1,
                                             {"sum": "1", "terms": 10, "last": "34",
                                              "sequence": []}])])
        wait_for(lambda: self.status()["counters"]["auth_refused"] >= 2, 10,
                 what="the broker to refuse the unknown keys")
        result = self.run_job("only-good", None, "--rounds", "2")
        self.assertEqual(result.returncode, 0, result.err)
        summary = self.cluster.summary("only-good")
        workers = {r["worker"] for round_ in summary["rounds"] for r in round_["results"]}
        self.assertEqual(workers, {good.name})
        self.assertNotIn(rogue_worker.name, workers)
        self.assertEqual(self.status()["services"]["fib"]["workers"], 1)
        self.assertEqual(self.status()["counters"]["replies"], 10)
        self.assertFalse(rogue.poll(200), "an unknown key was answered")
        self.assertIn("is in neither the workers' nor the controllers' directory",
                      self.cluster.processes[0].log())

    def test_worker_key_cannot_submit_tasks(self):
        worker_secret = self.keys.issue("worker-x", "workers")
        self.start_worker(worker_secret)
        self.wait_workers(1)
        intruder = curve_socket(self.cluster, self.keys, worker_secret)
        for task in range(3):
            intruder.send_multipart([b"", MDPC, b"fib", task_body("stolen", 0, task, 10)])
        # Each request is refused with a 403 naming the reason, never run.
        for task in range(3):
            self.assertTrue(intruder.poll(5000), "a refused request got no answer")
            frames = intruder.recv_multipart()
            self.assertEqual(frames[:3], [b"", MDPC, b"fib"])
            reply = msgpack.unpackb(frames[3], raw=False)
            self.assertEqual(reply[0], "zfed.error")
            self.assertEqual((reply[2], reply[3], reply[4]), ("stolen", 0, task))
            self.assertEqual(reply[7], 403)
            self.assertIn("forbidden: this key may not submit requests", reply[9])
        counters = self.status()["counters"]
        self.assertEqual(counters["forbidden"], 3)
        self.assertEqual(counters["requests"], 0)
        self.assertEqual(counters["dispatched"], 0)

    def test_controller_key_cannot_register_as_a_worker(self):
        impostor = curve_socket(self.cluster, self.keys, self.controller_secret)
        impostor.send_multipart([b"", MDPW, READY, b"fib"])
        wait_for(lambda: self.status()["counters"]["forbidden"] >= 1, 10,
                 what="the broker to refuse a controller key's READY")
        self.assertEqual(self.status()["services"].get("fib", {}).get("workers", 0), 0)

    def test_plaintext_peer_cannot_talk_to_a_curve_broker(self):
        plain = self.cluster.client()
        plain.send_multipart([b"", MDPW, READY, b"fib"])
        plain.send_multipart([b"", MDPC, b"mmi.service", b"fib"])
        wait_for(lambda: self.status()["counters"]["handshakes_failed"] >= 1, 10,
                 what="the broker to fail the plaintext handshake")
        self.assertFalse(plain.poll(300))
        self.assertEqual(self.status()["counters"]["workers_ready"], 0)

    def test_wrong_server_key_fails_to_connect(self):
        self.start_worker(self.keys.issue("worker-ok", "workers"))
        self.wait_workers(1)
        _, wrong_public, _ = keygen(os.path.join(self.cluster.dir, "other"), "not-the-broker")
        result = self.cluster.run_controller("--job-id", "wrong-key", "--no-progress",
                                             "--curve-cert", self.controller_secret,
                                             "--server-key", wrong_public,
                                             "--rounds", "1", "--round-timeout", "1.5")
        self.assertEqual(result.returncode, 1)
        self.assertIn("only 0 of 5 results", result.err)
        self.assertIn("the CURVE handshake with the broker at %s failed: is --server-key the "
                      "broker's public key" % self.cluster.endpoint, result.err)
        self.assertEqual(self.status()["counters"]["requests"], 0)
        self.assertGreaterEqual(self.status()["counters"]["handshakes_failed"], 1)

    def test_refused_controller_key_is_said_and_the_deadline_kept(self):
        stranger = self.keys.issue("stranger", None)
        result = self.cluster.run_controller("--job-id", "refused", "--no-progress",
                                             *self.keys.peer_args(stranger), "--tasks", "30",
                                             "--rounds", "1", "--round-timeout", "2")
        self.assertEqual(result.returncode, 1, result.err)
        said = ("the broker at %s refused our key (CURVE authentication failed"
                % self.cluster.endpoint)
        self.assertIn(said, result.err)
        self.assertIn("is our public key in the broker's --controllers-dir?", result.err)
        # Warned once, however many tasks could not be sent; the failure
        # repeats it.
        warnings = [line for line in result.err.splitlines() if "WARN" in line and said in line]
        self.assertEqual(len(warnings), 1, result.err)
        self.assertIn("deadline (quorum 30); " + said, result.err)
        self.assertIn(said, self.cluster.summary("refused")["error"])
        # Sends never block: 30 tasks used to cost a second each.
        self.assertLess(result.elapsed, 20)

    def test_sigterm_stops_a_refused_controller_promptly(self):
        stranger = self.keys.issue("stranger", None)
        controller = self.cluster.start_controller("--job-id", "stop", *self.keys.peer_args(
            stranger), "--tasks", "64", "--round-timeout", "120")
        wait_for(lambda: "refused our key" in controller.log(), 20,
                 what="the controller to say its key was refused")
        controller.signal(signal.SIGTERM)
        controller.proc.wait(10)
        self.assertEqual(controller.proc.returncode, 130)

    def test_refused_worker_says_why_once(self):
        stranger = self.keys.issue("stranger", None)
        worker = self.cluster.start_worker("--curve-cert", stranger, "--server-key",
                                           self.keys.broker_public, "--heartbeat-ms", "100",
                                           "--liveness", "3")
        said = "the broker at %s refused our key" % self.cluster.endpoint
        wait_for(lambda: said in worker.log(), 20, what="the worker to say its key was refused")
        self.assertIn("is our public key in the broker's --workers-dir?", worker.log())
        # It keeps trying (the key may be added), quietly.
        wait_for(lambda: self.status()["counters"]["auth_refused"] >= 3, 20,
                 what="several refused attempts")
        self.assertEqual(worker.log().count(said), 1, worker.log())
        self.assertNotIn("broker silent", worker.log())

    def test_worker_refused_after_its_broker_restarts_says_why(self):
        # Once its broker answers, a worker stops polling its link monitor on
        # every wake-up (its events are read at ticks, and it is polled again
        # on a new socket): a handshake refused on a reconnection is still
        # explained.
        # ipc: a TCP port given back can be taken by another test's broker.
        endpoint = "ipc://" + os.path.join(self.cluster.dir, "restarted.sock")
        self.cluster.processes[0].stop()
        fast = ["--heartbeat-ms", "200"]
        broker = self.cluster.start_broker(*fast, *self.keys.broker_args(), endpoint=endpoint)
        secret = self.keys.issue("restarted", "workers")
        worker = self.cluster.start_worker("--curve-cert", secret, "--server-key",
                                           self.keys.broker_public, *fast)
        self.wait_workers(1)
        said = "the broker at %s refused our key" % endpoint
        self.assertNotIn(said, worker.log())
        broker.stop()
        os.remove(os.path.join(self.keys.workers, "restarted.key"))
        self.cluster.start_broker(*fast, *self.keys.broker_args(), endpoint=endpoint)
        wait_for(lambda: said in worker.log(), 20,
                 what="the worker to say its key was refused after the restart")

    def test_worker_key_used_by_a_controller_fails_at_once(self):
        self.start_worker(self.keys.issue("worker-y", "workers"))
        self.wait_workers(1)
        worker_secret = self.keys.issue("worker-z", "workers")
        result = self.run_job("wrong-role", worker_secret, "--rounds", "1", "--round-timeout",
                              "120")
        self.assertEqual(result.returncode, 1, result.err)
        self.assertIn("quorum of 5 is out of reach", result.err)
        self.assertIn("forbidden: this key may not submit requests (it is not in the broker's "
                      "--controllers-dir) (403, from broker)", result.err)
        self.assertLess(result.elapsed, 60)

    def test_controller_key_used_by_a_worker_is_told(self):
        worker = self.start_worker(self.controller_secret)
        wait_for(lambda: "refused our READY" in worker.log(), 20,
                 what="the worker to hear its READY refused")
        self.assertIn("it knows our key, but not as a worker's (is our public key in its "
                      "--workers-dir", worker.log())
        self.assertEqual(self.status()["services"].get("fib", {}).get("workers", 0), 0)

    def test_plaintext_controller_on_a_curve_broker_is_told(self):
        result = self.cluster.run_controller("--job-id", "plain", "--no-progress", "--rounds",
                                             "1", "--round-timeout", "1.5")
        self.assertEqual(result.returncode, 1)
        # libzmq reports it as a mechanism mismatch or without detail;
        # either way the advice is the same.
        self.assertIn("the handshake with the broker at %s failed: it " % self.cluster.endpoint,
                      result.err)
        self.assertIn("CURVE and we do not (give --curve-cert and --server-key)"
                      if "speaks CURVE" in result.err else
                      "may require CURVE (give --curve-cert and --server-key)", result.err)

    def test_curve_controller_on_a_plaintext_broker_is_told(self):
        with Cluster("plain-broker") as plain:
            plain.start_broker()
            # libzmq reports some failed attempts without detail (the broker
            # closed before its greeting was read); reconnects bring the
            # mismatch soon after, so give them a few seconds on a busy machine.
            result = plain.run_controller("--job-id", "curve", "--no-progress", "--rounds", "1",
                                          "--round-timeout", "4",
                                          *self.keys.peer_args(self.controller_secret))
            self.assertEqual(result.returncode, 1)
            self.assertIn("we speak CURVE and it does not", result.err)

    def test_status_with_a_refused_key_says_so(self):
        stranger = self.keys.issue("stranger", None)
        result = subprocess.run([binary("zfed-controller"), "--connect", self.cluster.endpoint,
                                 "--status", *self.keys.peer_args(stranger)],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 1)
        self.assertIn("no status: the broker at %s refused our key" % self.cluster.endpoint,
                      result.stderr)
        self.assertNotIn("within 3000 ms", result.stderr)

    def test_removed_key_is_refused_on_its_next_connection(self):
        secret = self.keys.issue("revoked", "workers")
        worker = self.start_worker(secret)
        self.wait_workers(1)
        refused_before = self.status()["counters"]["auth_refused"]
        os.remove(os.path.join(self.keys.workers, "revoked.key"))
        worker.stop()
        self.wait_workers(0)
        revoked = self.start_worker(secret)
        wait_for(lambda: self.status()["counters"]["auth_refused"] > refused_before, 10,
                 what="the revoked key to be refused")
        wait_for(lambda: "refused our key" in revoked.log(), 10,
                 what="the revoked worker to know it was refused")
        self.assertEqual(self.status()["services"].get("fib", {}).get("workers", 0), 0)
        # Issuing a key works without a restart too.
        self.start_worker(self.keys.issue("fresh", "workers"))
        self.wait_workers(1)


class CurveModels(unittest.TestCase):
    """Blob traffic under CURVE roles (PROTOCOL.md 6.4, MODELS.md 7): a
    worker key fetches from zfed.blob.* services and holds one of its own; a
    controller key publishes blob services; a blob service belongs to its
    key; everything else as for value services."""

    def setUp(self):
        import numpy as np
        sys.path.insert(0, PYTHON_PACKAGE_DIR)
        import zfed
        from zfed import blob as zb
        from zfed import curve as zcurve
        self.np, self.zfed, self.zb = np, zfed, zb
        self.cluster = Cluster("curve-models")
        self.keys = Keys(os.path.join(self.cluster.dir, "keys"))
        self.controller_secret = self.keys.issue("controller-1", "controllers")
        self.worker_secret = self.keys.issue("worker-1", "workers")
        self.cluster.start_broker(*self.keys.broker_args())
        self.curve = zcurve.client_curve(self.controller_secret, self.keys.broker_public)
        self.worker = self.cluster.start_worker("--service", "tensoravg", "--curve-cert",
                                                self.worker_secret, "--server-key",
                                                self.keys.broker_public)
        self.client = zfed.Client(self.cluster.endpoint, curve=self.curve, timeout=60)
        wait_for(lambda: len(self.blob_services()) == 1 and
                 self.status()["services"].get("tensoravg", {}).get("workers") == 1, 10,
                 what="the worker and its blob service")

    def tearDown(self):
        self.client.close()
        self.cluster.close()

    def status(self):
        return Curve.status(self)

    def blob_services(self):
        return sorted(name for name, service in self.status()["services"].items()
                      if name.startswith("zfed.blob.") and service["workers"] > 0)

    def test_a_model_round_trip_under_curve(self):
        from zfed import client as zc
        np = self.np
        model = {"w": np.arange(2 * MIB, dtype=np.float32) * np.float32(0.5),
                 "b": np.ones(3, np.float64)}
        reply = self.client.call("tensoravg", zc.task("curve-m", 0, 0, {"add": 1, "samples": 2}),
                                 model=model)
        self.assertIsNotNone(reply.result, reply.message)
        self.assertFalse(reply.descriptor.inline)  # 8 MiB: by reference both ways
        self.assertTrue(np.array_equal(reply.model["w"], model["w"] + np.float32(1)))
        self.assertEqual(self.client.release(reply), 1)
        counters = self.status()["counters"]
        self.assertEqual(counters["forbidden"], 0)
        # Two blob services: the worker's and the controller key's.
        self.assertEqual(len(self.blob_services()), 2)

    def test_a_worker_key_may_fetch_but_not_submit(self):
        intruder = curve_socket(self.cluster, self.keys, self.worker_secret)
        intruder.send_multipart([b"", MDPC, b"tensoravg", b"\x90"])
        self.assertTrue(intruder.poll(5000))
        frames = intruder.recv_multipart()
        self.assertEqual(msgpack.unpackb(frames[3], raw=False)[7], 403)
        # A fetch from a blob service passes the role check: the holder answers.
        service = self.blob_services()[0]
        intruder.send_multipart([b"", MDPC, service.encode(),
                                 msgpack.packb(["zfed.fetch", 1, bytes(32), 0])])
        self.assertTrue(intruder.poll(5000))
        frames = intruder.recv_multipart()
        self.assertEqual(frames[2], service.encode())
        self.assertEqual(msgpack.unpackb(frames[3], raw=False)[4], 404)
        self.assertEqual(self.status()["counters"]["forbidden"], 1)
        intruder.close()

    def test_a_blob_service_belongs_to_its_key(self):
        service = self.blob_services()[0].encode()
        forbidden = self.status()["counters"]["forbidden"]
        # Another worker key may not register the worker's blob service...
        other = curve_socket(self.cluster, self.keys, self.keys.issue("worker-2", "workers"))
        other.send_multipart([b"", MDPW, READY, service])
        self.assertTrue(other.poll(5000))
        self.assertEqual(other.recv_multipart()[2], b"\x05")  # DISCONNECT
        # ... and the worker's own key may not hold a second one.
        same = curve_socket(self.cluster, self.keys, self.worker_secret)
        same.send_multipart([b"", MDPW, READY, b"zfed.blob." + b"ab" * 16])
        self.assertTrue(same.poll(5000))
        self.assertEqual(same.recv_multipart()[2], b"\x05")
        self.assertEqual(self.status()["counters"]["forbidden"], forbidden + 2)
        self.assertEqual(self.status()["services"][service.decode()]["workers"], 1)
        self.assertIn("register a blob service another key holds",
                      self.cluster.processes[0].log())
        # A controller key may hold several; never a value service.
        holders = []
        for name in (b"zfed.blob." + b"cd" * 16, b"zfed.blob." + b"ef" * 16):
            holders.append(curve_socket(self.cluster, self.keys, self.controller_secret))
            holders[-1].send_multipart([b"", MDPW, READY, name])
        wait_for(lambda: len(self.blob_services()) == 3, 10, what="the controller's two")
        controller = curve_socket(self.cluster, self.keys, self.controller_secret)
        controller.send_multipart([b"", MDPW, READY, b"tensoravg"])
        self.assertTrue(controller.poll(5000))
        self.assertEqual(controller.recv_multipart()[2], b"\x05")
        self.assertEqual(self.status()["services"]["tensoravg"]["workers"], 1)
        for socket in holders + [controller, other, same]:
            socket.close()


class PlaintextBeyondLoopback(unittest.TestCase):

    def test_broker_refuses_plaintext_non_loopback_bind(self):
        result = subprocess.run([binary("zfed-broker"), "--bind", "tcp://0.0.0.0:0"],
                                capture_output=True, text=True, timeout=10)
        self.assertEqual(result.returncode, 2)
        self.assertIn("--bind tcp://0.0.0.0:0: refusing plaintext", result.stderr)
        self.assertIn("--insecure", result.stderr)

    def test_insecure_allows_it(self):
        with Cluster("insecure") as cluster:
            cluster.start_broker("--insecure", endpoint="tcp://0.0.0.0:*")
            self.assertTrue(cluster.endpoint.startswith("tcp://0.0.0.0:"))
            cluster.endpoint = cluster.endpoint.replace("0.0.0.0", "127.0.0.1")
            self.assertEqual(cluster.mmi("mmi.service", b"fib"), b"404")


if __name__ == "__main__":
    main()
