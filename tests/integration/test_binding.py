"""Results bound to the request that carried them (issue 12, part 1).

A worker used to be able to answer one plain request with a zfed.batch of
forged results for every task of the round and have them all accepted, or
settle another task by naming it; the records named the worker by what it
said.  Now the controller puts a ticket on every request, the broker
stamps the reply with that ticket and the identity it vouches for
(PROTOCOL.md 3.1), and a reply settles only a task its request carried:
everything else is refused, counted invalid and logged with the worker.
"""

import json
import os
import time
import unittest

import msgpack
import zmq

from zfedtest import (Cluster, HostileWorker, MDPC, MDPW, READY, REPLY, REQUEST, behind, figure,
                      fib_outputs, fib_sum, main, task_body, wait_for)
from test_revocation import curve_socket_unconnected
from test_security import Keys, curve_socket, curve_status, keygen

LEVEL = 10
TASKS = 5
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                        "models")


def lie(level):
    """Outputs that pass every check a fib result gets but the truth: the
    terms and last term are right, the sequence adds up to the sum."""
    last = fib_last_term(level)
    return {"sum": str(last), "terms": level, "last": str(last),
            "sequence": ["0"] * (level - 1) + [str(last)]}


def fib_last_term(level):
    a, b = 0, 1
    for _ in range(level - 1):
        a, b = b, a + b
    return a


def result_body(task, name, outputs, task_id=None):
    return msgpack.packb(["zfed.result", 1, task[2], task[3],
                          task[4] if task_id is None else task_id, task[5], name, 1, outputs],
                         use_bin_type=True)


def records(cluster, job_id, rounds):
    return [cluster.read_json(job_id, os.path.join("rounds", "round-%06d.json" % r))
            for r in range(rounds)]


class Forgery(unittest.TestCase):

    def test_forged_batch_and_foreign_task_are_refused_counted_and_logged(self):
        with Cluster("bind-forge") as cluster:
            cluster.start_broker()
            turn = [0]

            def forge(task):
                # Odd turns: a batch of forged results for every task of the
                # round, to one plain request.  Even turns: a result for
                # the next task, not the one sent.
                turn[0] += 1
                if turn[0] % 2:
                    items = [result_body(task, "forger", lie(LEVEL), task_id=t)
                             for t in range(TASKS)]
                    return [msgpack.packb(["zfed.batch", 1, items], use_bin_type=True)]
                return [result_body(task, "forger", lie(LEVEL), task_id=(task[4] + 1) % TASKS)]
            forger = behind(cluster, HostileWorker(cluster, forge), [1] * 4)
            try:
                result = cluster.run_controller(
                    "--job-id", "forge", "--rounds", "3", "--tasks", str(TASKS), "--retries", "5",
                    "--task-timeout", "0.5", "--aggregate", "sum", "--no-progress", timeout=60)
            finally:
                forger.close()
            self.assertEqual(result.returncode, 0, result.err)
            self.assertGreaterEqual(forger.replies, 2, "the forger was never sent a task")
            summary = cluster.summary("forge")
            self.assertEqual([r["aggregate"] for r in summary["rounds"]],
                             [str(TASKS * fib_sum(LEVEL))] * 3)
            kept = records(cluster, "forge", 3)
            # One refusal per forged reply, each in its round's record.
            self.assertEqual(sum(r["invalid"] for r in kept), forger.replies)
            self.assertEqual(sum(r["duplicates"] for r in kept), 0)
            for record in kept:
                for entry in record["results"]:
                    self.assertNotEqual(entry["worker"], "forger")
                    self.assertTrue(entry["worker_id"].startswith("peer:"), entry)
            self.assertRegex(result.err, r"a batch reply to a plain request from peer:\d+ refused")
            self.assertRegex(result.err, r"a zfed.result from peer:\d+ naming job forge round \d+ "
                                         r"task \d+ attempt \d+ refused: its request carried")
            figure("forged replies refused (invalid in the records)", forger.replies)
            figure("aggregates", ", ".join(r["aggregate"] for r in summary["rounds"]))


class ModelForgery(unittest.TestCase):
    """The same rule on the model path: a model result (inline or by
    reference) is bound before its descriptor is read."""

    def test_a_model_result_naming_another_task_is_refused(self):
        with Cluster("bind-models") as cluster:
            cluster.start_broker()

            def forge(task):
                other = (task[4] + 1) % 3
                return [result_body(task, "forger", {"model": [], "samples": 1}, task_id=other)]
            forger = behind(cluster, HostileWorker(cluster, forge, service=b"tensoravg"), [2],
                            "--service", "tensoravg", service="tensoravg")
            job = os.path.join(cluster.dir, "job.json")
            with open(job, "w") as handle:
                json.dump({"job_id": "mforge", "service": "tensoravg", "rounds": 2, "tasks": 3,
                           "initial_model": os.path.join(EXAMPLES, "tensoravg-start.safetensors"),
                           "task_params": [{"add": a, "samples": 10} for a in (1, 2, 3)],
                           "retries": 3, "task_timeout": 1}, handle)
            try:
                result = cluster.run_controller("--job", job, "--no-progress", timeout=60)
            finally:
                forger.close()
            self.assertEqual(result.returncode, 0, result.err)
            self.assertGreaterEqual(forger.replies, 1, "the forger was never sent a task")
            kept = records(cluster, "mforge", 2)
            self.assertEqual(sum(r["invalid"] for r in kept), forger.replies)
            for record in kept:
                self.assertEqual(sorted(e["task"] for e in record["results"]), [0, 1, 2])
                self.assertTrue(all(e["worker"] != "forger" for e in record["results"]))
            self.assertRegex(result.err, r"a zfed.result from peer:\d+ naming job mforge round \d "
                                         r"task \d attempt \d+ refused: its request carried")
            figure("forged model results refused", forger.replies)



def ask(socket, frames, what="a reply"):
    """Sends one message on a client socket and returns the answer's frames
    (an AssertionError naming what was asked if none comes in 10 s)."""
    socket.send_multipart(frames)
    if not socket.poll(10000):
        raise AssertionError("no answer to %s" % (what,))
    return socket.recv_multipart()

class Stamp(unittest.TestCase):
    """The extension on the wire, as a peer in another language sees it."""

    def test_a_ticket_comes_back_as_a_stamp_and_plain_requests_stay_plain(self):
        with Cluster("bind-stamp") as cluster:
            cluster.start_broker()
            cluster.start_worker()
            cluster.wait_workers(1)
            socket = cluster.client()
            ticket = b"zfed.ticket" + (0x0102030405060708).to_bytes(8, "big")
            frames = ask(socket, [b"", MDPC, b"fib", ticket, task_body("j", 0, 3, LEVEL)])
            self.assertEqual(len(frames), 5, frames)
            self.assertEqual(frames[3][:18], b"zfed.stamp" + ticket[11:])
            self.assertRegex(frames[3][18:].decode(), r"^peer:\d+$")
            reply = msgpack.unpackb(frames[4], raw=False)
            self.assertEqual(reply[0:5], ["zfed.result", 1, "j", 0, 3])
            # No ticket, no stamp: plain 7/MDP.
            frames = ask(socket, [b"", MDPC, b"fib", task_body("j", 0, 4, LEVEL)])
            self.assertEqual(len(frames), 4)
            self.assertEqual(msgpack.unpackb(frames[3], raw=False)[4], 4)
            # The broker's own answers are stamped too, as "broker".
            frames = ask(socket, [b"", MDPC, b"fib", ticket])
            self.assertEqual(frames[3], b"zfed.stamp" + ticket[11:] + b"broker")
            self.assertEqual(msgpack.unpackb(frames[4], raw=False)[7], 400)
            socket.close()

    def test_mmi_questions_with_a_ticket_are_answered_and_stamped(self):
        """Review j item 6: the ticket comes off an mmi.* request first, so
        mmi.service with a ticket asks about the service (it answered 404
        for a registered fib, unstamped: the ticket was read as the name)."""
        with Cluster("bind-mmi") as cluster:
            cluster.start_broker()
            cluster.start_worker()
            cluster.wait_workers(1)
            socket = cluster.client()
            ticket = b"zfed.ticket" + (7).to_bytes(8, "big")
            stamp = b"zfed.stamp" + ticket[11:] + b"broker"
            asked = {}
            for service, body in ((b"mmi.service", b"fib"), (b"mmi.service", b"nothing"),
                                  (b"mmi.status", b""), (b"mmi.other", b"x")):
                frames = ask(socket, [b"", MDPC, service, ticket, body], service)
                self.assertEqual(frames[:4], [b"", MDPC, service, stamp], frames)
                self.assertEqual(len(frames), 5, frames)
                asked[(service, body)] = frames[4]
            self.assertEqual(asked[(b"mmi.service", b"fib")], b"200")
            self.assertEqual(asked[(b"mmi.service", b"nothing")], b"404")
            self.assertEqual(asked[(b"mmi.other", b"x")], b"501")
            status = msgpack.unpackb(asked[(b"mmi.status", b"")], raw=False)
            self.assertIs(status["stamps"], True)
            self.assertEqual(status["services"]["fib"]["workers"], 1)
            # A ticket and nothing else is still a request with no body.
            frames = ask(socket, [b"", MDPC, b"mmi.service", ticket])
            self.assertEqual(frames[3], stamp)
            self.assertEqual(msgpack.unpackb(frames[4], raw=False)[7], 400)
            # Without a ticket, as before: plain 8/MMI.
            self.assertEqual(ask(socket, [b"", MDPC, b"mmi.service", b"fib"]),
                             [b"", MDPC, b"mmi.service", b"200"])
            socket.close()
            figure("mmi.service fib with a ticket", asked[(b"mmi.service", b"fib")].decode())

    def test_an_empty_reply_body_is_refused_naming_its_worker(self):
        """Review j item 9: an empty reply body is refused as that, naming
        the identity that sent it (a stamp with no body after it was said
        to lack the broker's stamp).  The zfed broker refuses a REPLY with
        no body frame at all (DISCONNECT); an empty one reaches the
        controller."""
        with Cluster("bind-empty") as cluster:
            cluster.start_broker()
            turn = [0]

            def empty_first(task):
                turn[0] += 1
                if turn[0] == 1:
                    return [b""]
                return [result_body(task, "empty", fib_outputs(task[6]["fibonacci_level"]))]
            worker = behind(cluster, HostileWorker(cluster, empty_first), [1])
            try:
                result = cluster.run_controller("--job-id", "empty", "--rounds", "1", "--tasks",
                                                "3", "--task-timeout", "1", "--retries", "3",
                                                "--no-progress")
            finally:
                worker.close()
            self.assertEqual(result.returncode, 0, result.err)
            self.assertGreaterEqual(turn[0], 1)
            self.assertRegex(result.err, r"an empty reply body from peer:\d+ \(ticket 1\) refused")
            self.assertNotIn("without the broker's stamp", result.err)
            self.assertEqual(records(cluster, "empty", 1)[0]["invalid"], 1)


class CurveIdentity(unittest.TestCase):

    def test_records_name_the_key_the_broker_vouches_for(self):
        with Cluster("bind-curve") as cluster:
            keys = Keys(os.path.join(cluster.dir, "keys"))
            controller = keys.issue("controller", "controllers")
            publics = {}
            cluster.start_broker(*keys.broker_args())
            for name in ("w1", "w2"):
                public, _, secret = keygen(keys.workers, name)
                publics[name] = public
                cluster.start_worker("--curve-cert", secret, "--server-key", keys.broker_public,
                                     "--name", "same-label")
            result = cluster.run_controller("--job-id", "vouched", "--rounds", "2", "--tasks",
                                            "6", "--no-progress", *keys.peer_args(controller))
            self.assertEqual(result.returncode, 0, result.err)
            seen = {entry["worker_id"] for record in records(cluster, "vouched", 2)
                    for entry in record["results"]}
            self.assertTrue(seen, "no results")
            self.assertLessEqual(seen, {"curve:" + key for key in publics.values()})
            figure("worker identities in the records", ", ".join(sorted(seen)))

    def test_a_routing_id_taken_over_by_another_key_is_not_stamped_as_the_first(self):
        """The reviewer's repro: an honest worker key H with a fixed routing
        id holds a ticketed request; a worker with another valid key A
        connects with the same routing id (the broker has ROUTER_HANDOVER)
        and answers that request, whose id it guessed.  The broker used to
        keep H's record for the new connection and stamp the forgery
        curve:H, so A could vote as H.  Now the stamp is the key of the
        connection the reply came on: the takeover retires H's record (its
        request is queued again) and A is only ever stamped curve:A."""
        with Cluster("bind-handover") as cluster:
            keys = Keys(os.path.join(cluster.dir, "keys"))
            controller = keys.issue("controller", "controllers")
            honest_public, _, honest_secret = keygen(keys.workers, "honest")
            attacker_public, _, attacker_secret = keygen(keys.workers, "attacker")
            broker = cluster.start_broker(*keys.broker_args())
            honest = curve_socket_unconnected(cluster, keys, honest_secret)
            honest.setsockopt(zmq.IDENTITY, b"W1")
            honest.setsockopt(zmq.RECONNECT_IVL, 60000)  # no handover back
            honest.connect(cluster.endpoint)
            honest.send_multipart([b"", MDPW, READY, b"fib"])
            wait_for(lambda: curve_status(cluster, keys, controller)["services"]
                     .get("fib", {}).get("workers", 0) == 1, 10, what="the honest worker")
            client = curve_socket(cluster, keys, controller)
            ticket = b"zfed.ticket" + (1).to_bytes(8, "big")
            client.send_multipart([b"", MDPC, b"fib", ticket, task_body("j", 0, 0, LEVEL)])
            self.assertTrue(honest.poll(10000), "the honest worker got no request")
            frames = honest.recv_multipart()
            self.assertEqual(frames[2], REQUEST)
            address = frames[3]  # 8 bytes, sequential: 0000000000000001 here
            attacker = curve_socket_unconnected(cluster, keys, attacker_secret)
            attacker.setsockopt(zmq.IDENTITY, b"W1")
            attacker.connect(cluster.endpoint)
            forged = [b"", MDPW, REPLY, address, b"", b"FORGED"]
            attacker.send_multipart(forged)
            # Then it registers as itself: the request H held comes to it.
            attacker.send_multipart([b"", MDPW, READY, b"fib"])
            poller = zmq.Poller()
            poller.register(client, zmq.POLLIN)
            poller.register(attacker, zmq.POLLIN)
            reply, deadline = None, time.monotonic() + 15
            while reply is None and time.monotonic() < deadline:
                events = dict(poller.poll(200))
                if attacker in events:
                    frames = attacker.recv_multipart()
                    if frames[2] == REQUEST:
                        attacker.send_multipart([b"", MDPW, REPLY, frames[3], b"", b"FORGED"])
                if client in events:
                    reply = client.recv_multipart()
            for socket in (honest, attacker, client):
                socket.close()
            self.assertIsNotNone(reply, "the client got no reply")
            self.assertEqual(reply[3][:18], b"zfed.stamp" + ticket[11:])
            identity = reply[3][18:].decode()
            self.assertNotEqual(identity, "curve:" + honest_public,
                                "a reply from key A was stamped as key H")
            self.assertEqual(identity, "curve:" + attacker_public)
            self.assertEqual(reply[4], b"FORGED")
            log = broker.log()
            self.assertIn("taken over by another key", log)
            figure("stamp of the forged reply on a taken-over routing id", identity[:14] + "...")


if __name__ == "__main__":
    main()
