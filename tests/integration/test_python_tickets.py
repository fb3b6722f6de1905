"""zfed.Client(tickets=True): the Python client binds each reply to its
request the way the C controller does (PROTOCOL.md 3.1).  Against a real
zfed-broker every reply comes back stamped with the request's ticket and
the identity the broker vouches for; a worker that answers with another
task's result is caught and named; a plain MDP broker, which stamps
nothing, is refused with a message that says so; without tickets the
client stays plain MDP."""

import sys
import unittest

import msgpack

from zfedtest import (PYTHON_PACKAGE_DIR, Cluster, HostileWorker, PlainMajordomoBroker,
                      fib_sum, main, wait_for)

sys.path.insert(0, PYTHON_PACKAGE_DIR)
import zfed  # noqa: E402
from zfed import client as zc  # noqa: E402
from zfed import protocol as zp  # noqa: E402


class TicketCodec(unittest.TestCase):

    def test_ticket_and_stamp_bytes_are_those_of_the_protocol(self):
        # PROTOCOL.md 3.1's examples, byte for byte.
        self.assertEqual(zp.ticket_frame(1).hex(), "7a6665642e7469636b6574" "0000000000000001")
        self.assertEqual(zp.parse_stamp(bytes.fromhex(
            "7a6665642e7374616d70" "0000000000000001" "706565723a33")), (1, "peer:3"))
        self.assertEqual(zp.parse_stamp(b"zfed.stamp" + (2 ** 64 - 1).to_bytes(8, "big") +
                                        b"broker"), (2 ** 64 - 1, "broker"))

    def test_frames_of_another_shape_are_not_stamps(self):
        head = b"zfed.stamp" + (7).to_bytes(8, "big")
        self.assertIsNone(zp.parse_stamp(head))                  # no identity
        self.assertIsNone(zp.parse_stamp(head + b"x" * 65))      # identity over 64 bytes
        self.assertIsNone(zp.parse_stamp(head + b"peer:\x01"))   # a control byte
        self.assertIsNone(zp.parse_stamp(b"\x98" + head[1:] + b"peer:1"))  # a msgpack body
        self.assertEqual(zp.parse_stamp(head + b"x" * 64), (7, "x" * 64))
        self.assertTrue(zp.is_ticket_frame(zp.ticket_frame(9)))
        self.assertFalse(zp.is_ticket_frame(zp.ticket_frame(9) + b"\x00"))
        for bad in (-1, 2 ** 64, 1.0, True, "1"):
            with self.assertRaises(zp.MdpError):
                zp.ticket_frame(bad)


class Tickets(unittest.TestCase):

    def setUp(self):
        self.cluster = Cluster("py-tickets")
        self.cluster.start_broker()

    def tearDown(self):
        self.cluster.close()

    def test_replies_are_stamped_with_the_ticket_and_the_vouched_identity(self):
        cluster = self.cluster
        cluster.start_worker()
        cluster.wait_workers(1)
        with zfed.Client(cluster.endpoint, timeout=20, tickets=True) as client:
            answers = [client.call("fib", zc.task("j", 0, task, {"fibonacci_level": 10 + task},
                                                  "0")) for task in range(3)]
            self.assertEqual([reply.ticket for reply in answers], [1, 2, 3])
            for task, reply in enumerate(answers):
                self.assertEqual(reply.result.outputs["sum"], str(fib_sum(10 + task)))
                self.assertRegex(reply.worker_id, r"^peer:[0-9]+$")
            self.assertEqual(len({reply.worker_id for reply in answers}), 1)  # one connection
            # The broker's own answer (a ticket and no body: 400) is stamped
            # "broker", with the request's ticket.
            ticket = client.next_ticket()
            client.send("fib", [], ticket)
            _, bodies = client.receive()
            self.assertEqual(zp.parse_stamp(bodies[0].bytes), (4, "broker"))
            refusal = zp.decode(bodies[1].bytes)
            self.assertEqual(refusal.code, 400)
            self.assertIn("a ticket frame and no body", refusal.message)
        # tickets="auto" asks mmi.status first: this broker says it stamps.
        with zfed.Client(cluster.endpoint, timeout=20, tickets="auto") as auto:
            self.assertIs(auto.tickets, True)
            reply = auto.call("fib", zc.task("j", 0, 0, {"fibonacci_level": 10}, "0"))
            self.assertRegex(reply.worker_id, r"^peer:[0-9]+$")
        # Without tickets the same broker answers plain MDP, as before.
        with zfed.Client(cluster.endpoint, timeout=20) as plain:
            reply = plain.call("fib", zc.task("j", 0, 0, {"fibonacci_level": 10}, "0"))
            self.assertEqual(reply.result.outputs["sum"], str(fib_sum(10)))
            self.assertIsNone(reply.worker_id)

    def test_a_worker_answering_another_task_is_caught_and_named(self):
        cluster = self.cluster

        def forge(task):  # answers every task as task 7
            result = ["zfed.result", 1, task[2], task[3], 7, task[5], "forger", 1,
                      {"sum": "1"}]
            return [msgpack.packb(result)]

        forger = HostileWorker(cluster, forge)
        try:
            cluster.wait_workers(1)
            with zfed.Client(cluster.endpoint, timeout=20, tickets=True) as client:
                with self.assertRaises(zp.ProtocolError) as caught:
                    client.call("fib", zc.task("j", 0, 2, {"fibonacci_level": 10}, "0"))
            text = str(caught.exception)
            self.assertIn("names task", text)
            self.assertRegex(text, r"peer:[0-9]+ answered another task")
            self.assertEqual(forger.requests, 1)
        finally:
            forger.close()


class PlainBroker(unittest.TestCase):

    def test_tickets_through_a_broker_that_does_not_stamp_are_refused_clearly(self):
        broker = PlainMajordomoBroker()
        try:
            with Cluster("py-tickets-plain") as cluster:
                cluster.endpoint = broker.endpoint
                cluster.start_worker()
                wait_for(lambda: broker.idle_workers() >= 1, 10,
                         what="the worker to register with the plain broker")
                with zfed.Client(broker.endpoint, timeout=20, tickets=True) as client:
                    with self.assertRaises(zp.MdpError) as caught:
                        client.call("fib", zc.task("j", 0, 0, {"fibonacci_level": 10}, "0"))
                    self.assertIn("tickets need a zfed-broker", str(caught.exception))
                # "auto" hears 501 to mmi.status and stays plain.
                for tickets in (False, "auto"):
                    with zfed.Client(broker.endpoint, timeout=20, tickets=tickets) as client:
                        self.assertIs(client.tickets, False)
                        reply = client.call("fib",
                                            zc.task("j", 0, 0, {"fibonacci_level": 10}, "0"))
                        self.assertEqual(reply.result.outputs["sum"], str(fib_sum(10)))
                        self.assertIsNone(reply.worker_id)
        finally:
            broker.close()

    def test_auto_reads_the_stamps_flag_of_the_status(self):
        # A status map with a version but no "stamps": true is an older
        # zfed-broker, which forwards tickets to its workers.
        for stamps, expected in ((None, False), (False, False), (True, True)):
            status = {"version": "0.1.0", "uptime_ms": 5, "workers": 0, "services": {},
                      "counters": {}}
            if stamps is not None:
                status["stamps"] = stamps
            broker = PlainMajordomoBroker(status=msgpack.packb(status, use_bin_type=True))
            try:
                with zfed.Client(broker.endpoint, timeout=5, tickets="auto") as client:
                    self.assertIs(client.tickets, expected, status)
            finally:
                broker.close()


if __name__ == "__main__":
    main()
