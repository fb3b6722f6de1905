"""Revocation that takes effect (issue 12, part 3).

Any change to a key folder (a file added, removed, rewritten or truncated
in place, even with its mtime put back) takes effect for new connections
within 1 s, and a revoked key's live connections are cut within 2 s: the
peer sees its connection close, its registration is gone, and on
reconnecting it is refused.

Raw peers are pyzmq CURVE sockets with a socket monitor, so the test sees
what a peer sees: the handshake accepted or refused, the connection closed.
"""

import os
import time
import unittest

import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from test_security import Keys, curve_socket, curve_status
from zfedtest import Cluster, MDPC, MDPW, READY, figure, main, wait_for

NEW_CONNECTIONS_S = 1.0
CUT_S = 2.0


class Watched:
    """A CURVE DEALER with a monitor: did its handshake succeed, fail for
    authentication, and has its connection been closed since?"""

    def __init__(self, cluster, keys, secret):
        self.socket = curve_socket_unconnected(cluster, keys, secret)
        self.monitor = self.socket.get_monitor_socket()
        self.socket.connect(cluster.endpoint)
        self.events = []

    def _drain(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.monitor.poll(max(1, int(left * 1000))):
                return
            self.events.append((time.monotonic(), recv_monitor_message(self.monitor)["event"]))
            if timeout == 0:
                deadline = 0

    def first(self, event, timeout=10.0):
        """When event was first seen (monotonic), waiting up to timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for at, seen in self.events:
                if seen == event:
                    return at
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._drain(min(left, 0.05))

    def outcome(self, timeout=5.0):
        """'accepted' or 'refused', whichever the handshake ended in first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._drain(0.05)
            for _, seen in self.events:
                if seen == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    return "accepted"
                if seen in (zmq.EVENT_HANDSHAKE_FAILED_AUTH,
                            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                    return "refused"
        return None

    def close(self):
        self.socket.disable_monitor()
        self.monitor.close(0)
        self.socket.close(0)


def curve_socket_unconnected(cluster, keys, secret):
    public, private = zmq.auth.load_certificate(secret)
    server, _ = zmq.auth.load_certificate(keys.broker_public)
    socket = cluster.context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.curve_publickey = public
    socket.curve_secretkey = private
    socket.curve_serverkey = server
    return socket


class Revocation(unittest.TestCase):

    def setUp(self):
        self.cluster = Cluster("revoke")
        self.keys = Keys(os.path.join(self.cluster.dir, "keys"))
        self.controller_secret = self.keys.issue("controller-1", "controllers")
        self.broker = self.cluster.start_broker(*self.keys.broker_args())

    def tearDown(self):
        self.cluster.close()

    def status(self):
        return curve_status(self.cluster, self.keys, self.controller_secret)

    def fib_workers(self):
        return self.status()["services"].get("fib", {}).get("workers", 0)

    def raw_worker(self, secret, workers):
        """A raw CURVE worker registered for fib (then workers in all),
        its monitor's events cleared."""
        raw = Watched(self.cluster, self.keys, secret)
        self.assertEqual(raw.outcome(), "accepted")
        raw.socket.send_multipart([b"", MDPW, READY, b"fib"])
        wait_for(lambda: self.fib_workers() == workers, 10, what="%d workers" % workers)
        raw.events.clear()
        return raw

    def public_file(self, name):
        return os.path.join(self.keys.workers, name + ".key")

    def until(self, secret, wanted, limit):
        """Seconds until a new connection with secret ends as wanted
        ('accepted' or 'refused'); a fresh connection every try."""
        started = time.monotonic()
        while time.monotonic() - started < limit + 5:
            peer = Watched(self.cluster, self.keys, secret)
            try:
                if peer.outcome() == wanted:
                    return time.monotonic() - started
            finally:
                peer.close()
            time.sleep(0.02)
        self.fail("a new connection was never %s" % wanted)

    def test_any_change_takes_effect_for_new_connections_within_a_second(self):
        secret = self.keys.issue("changes", "workers")
        other = self.keys.issue("swapped", None)  # a name as long: a file as long
        path = self.public_file("changes")
        self.until(secret, "accepted", NEW_CONNECTIONS_S)
        with open(path, "rb") as handle:
            original = handle.read()
        # The other key's public half sits with the secrets, in no folder.
        with open(os.path.join(self.keys.secrets, "swapped.key"), "rb") as handle:
            other_text = handle.read()
        self.assertEqual(len(other_text), len(original))  # same size: only content differs
        seen = {}

        def change(name, act, secret_now, wanted):
            act()
            seen[name] = self.until(secret_now, wanted, NEW_CONNECTIONS_S)
            figure("new connections see '%s' after" % name, "%.3f" % seen[name], "s")
            self.assertLess(seen[name], NEW_CONNECTIONS_S, name)

        def truncate():
            with open(path, "r+b") as handle:
                handle.truncate(0)

        def restore():
            with open(path, "r+b") as handle:
                handle.write(original)

        def rewrite_keeping_mtime():
            info = os.stat(path)
            with open(path, "r+b") as handle:  # same inode, same size
                handle.write(other_text)
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))

        # Truncated in place: the folder's mtime does not move.
        change("truncated in place", truncate, secret, "refused")
        change("restored in place", restore, secret, "accepted")
        # Rewritten in place with another key, mtime put back: only the
        # change time tells.  The old key is out, the new one in.
        change("rewritten in place (mtime restored)", rewrite_keeping_mtime, secret, "refused")
        self.assertLess(self.until(other, "accepted", NEW_CONNECTIONS_S), NEW_CONNECTIONS_S)
        change("restored again", restore, secret, "accepted")
        change("removed", lambda: os.remove(path), secret, "refused")
        change("added", lambda: open(path, "wb").write(original), secret, "accepted")
        counters = self.status()["counters"]
        self.assertGreaterEqual(counters["auth_refused"], 3)

    def test_a_revoked_keys_live_connections_are_cut_within_two_seconds(self):
        # A real worker and a raw one (with a monitor) under keys about to
        # be revoked, and a worker whose key stays.
        doomed_secret = self.keys.issue("doomed", "workers")
        raw_secret = self.keys.issue("raw", "workers")
        kept_secret = self.keys.issue("kept", "workers")
        doomed = self.cluster.start_worker("--curve-cert", doomed_secret, "--server-key",
                                           self.keys.broker_public)
        kept = self.cluster.start_worker("--curve-cert", kept_secret, "--server-key",
                                         self.keys.broker_public)
        raw = self.raw_worker(raw_secret, 3)
        revoked_at = time.monotonic()
        os.remove(self.public_file("doomed"))
        os.remove(self.public_file("raw"))
        closed_at = raw.first(zmq.EVENT_DISCONNECTED, timeout=10)
        self.assertIsNotNone(closed_at, "the revoked peer's connection was never closed")
        cut_in = closed_at - revoked_at
        figure("revoked key's live connection closed after", "%.3f" % cut_in, "s")
        self.assertLess(cut_in, CUT_S)
        # Its registration is gone with it, the real worker's too; the kept
        # key's worker still serves.
        wait_for(lambda: self.fib_workers() == 1, 10, what="only the kept worker")
        counters = self.status()["counters"]
        self.assertEqual(counters["revoked"], 2)
        self.assertIn("revoked", self.broker.log())
        # Reconnecting, both are refused at the handshake.
        self.assertIsNotNone(raw.first(zmq.EVENT_HANDSHAKE_FAILED_AUTH, timeout=10))
        wait_for(lambda: "refused our key" in doomed.log(), 10,
                 what="the revoked worker to be refused on reconnecting")
        result = self.cluster.run_controller("--job-id", "after", "--rounds", "1", "--tasks",
                                             "2", "--no-progress",
                                             *self.keys.peer_args(self.controller_secret))
        self.assertEqual(result.returncode, 0, result.err)
        self.assertTrue(kept.alive())
        raw.close()

    def test_a_key_moved_to_the_other_role_is_cut_and_comes_back_in_it(self):
        secret = self.keys.issue("mover", "workers")
        raw = self.raw_worker(secret, 1)
        moved_at = time.monotonic()
        os.rename(self.public_file("mover"), os.path.join(self.keys.controllers, "mover.key"))
        closed_at = raw.first(zmq.EVENT_DISCONNECTED, timeout=10)
        self.assertIsNotNone(closed_at)
        self.assertLess(closed_at - moved_at, CUT_S)
        raw.close()
        # As a controller it is welcome: a status request is answered.
        socket = curve_socket(self.cluster, self.keys, secret)
        socket.send_multipart([b"", MDPC, b"mmi.status", b""])
        self.assertTrue(socket.poll(5000))
        socket.close()
        self.assertEqual(self.fib_workers(), 0)

    def test_a_routing_id_handed_over_is_judged_by_its_new_connection(self):
        """A routing id taken over by a new connection (ROUTER_HANDOVER)
        carries that connection's key and roles: revoking the key of the
        connection it replaced cuts nobody (before: the record kept the
        old key, and the new connection, under a key still valid, was cut
        and refused)."""
        old_secret = self.keys.issue("old", "workers")
        new_secret = self.keys.issue("new", "controllers")

        def ask(socket):
            socket.send_multipart([b"", MDPC, b"mmi.service", b"fib"])
            return socket.poll(5000) and socket.recv_multipart()

        first = curve_socket_unconnected(self.cluster, self.keys, old_secret)
        first.setsockopt(zmq.ROUTING_ID, b"handed-over")
        first.setsockopt(zmq.RECONNECT_IVL, -1)  # handed over, it stays away
        first.connect(self.cluster.endpoint)
        self.assertTrue(ask(first))
        second = Watched.__new__(Watched)
        second.socket = curve_socket_unconnected(self.cluster, self.keys, new_secret)
        second.socket.setsockopt(zmq.ROUTING_ID, b"handed-over")
        second.monitor = second.socket.get_monitor_socket()
        second.events = []
        second.socket.connect(self.cluster.endpoint)
        self.assertTrue(ask(second.socket))
        # Another connection under the old key shows when the broker has
        # acted on its revocation.
        witness = self.raw_worker(old_secret, 1)
        os.remove(self.public_file("old"))
        self.assertIsNotNone(witness.first(zmq.EVENT_DISCONNECTED, timeout=10))
        second.events.clear()
        self.assertTrue(ask(second.socket), "the handed-over connection was refused")
        second._drain(0.5)
        self.assertNotIn(zmq.EVENT_DISCONNECTED, [event for _, event in second.events])
        self.assertEqual(self.status()["counters"]["revoked"], 1)  # the witness only
        witness.close()
        second.close()
        first.close(0)


if __name__ == "__main__":
    main()
