"""Bad input: garbage frames to the broker and to a worker, bad flags."""

import os
import subprocess
import unittest

import msgpack
import zmq

from zfedtest import (Cluster, MDPC, MDPW, READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT,
                      binary, main, task_body, wait_for)


# Every message a misbehaving or broken peer might send the broker, with the
# answer it gets (section 6.3 of PROTOCOL.md): a message that claims MDPW01
# earns its sender a DISCONNECT (RFC 7: treat the peer as invalid), one that
# claims MDPC01 and has a service frame an error 400 under that service, and
# only one with no MDP header at all is dropped with no answer.
DROPPED = [
    [b"x"],
    [b""],
    [b"", b""],
    [b"junk", MDPC, b"fib", b"body"],            # first frame not empty
    [b"", b"MDPX01", b"fib", b"body"],           # unknown protocol header
    [b"", MDPC],                                 # no service frame to answer under
    [b""] * 40,                                  # far too many frames, no header
]
ANSWERED_400 = [
    ([b"", MDPC, b"fib"], "needs a service frame and at least one body frame"),
    ([b"", MDPC, b"s" * 256, b"body"], "invalid service name"),
    ([b"", MDPC, b"tab\there", b"body"], "invalid service name"),
    ([b"", MDPC, "caf\u00e9".encode(), b"body"], "invalid service name"),
]
DISCONNECTED = [
    [b"", MDPW],                                 # no command
    [b"", MDPW, b"\x09"],                        # unknown command
    [b"", MDPW, b"\x01\x01", b"fib"],            # two-byte command
    [b"", MDPW, READY],                          # READY without service
    [b"", MDPW, READY, b"a", b"b", b"c"],        # READY with too many frames
    [b"", MDPW, READY, b"fib", b"credit=2"] + [b"x"] * 20,   # ... far too many
    [b"", MDPW, READY, b"tab\there"],            # READY, invalid service name
    [b"", MDPW, READY, b"s" * 256],              # READY, service name too long
    [b"", MDPW, REPLY, b"addr"],                 # REPLY too short
    [b"", MDPW, REPLY, b"", b"", b"body"],       # REPLY with empty address
    [b"", MDPW, REPLY, b"12345678", b"x", b"b"], # REPLY without delimiter
    [b"", MDPW, HEARTBEAT, b"extra"],            # HEARTBEAT with a payload
    [b"", MDPW, REPLY, b"12345678", b"", b"b"],  # REPLY from a worker that never said READY
]


class BrokerGarbage(unittest.TestCase):

    def test_broker_answers_garbage_and_keeps_serving(self):
        with Cluster("garbage") as cluster:
            broker = cluster.start_broker()
            for _ in range(2):
                cluster.start_worker()
            cluster.wait_workers(2)
            # Dropped: nothing comes back.  Messages of one connection are
            # handled in order, so the MMI answer sent last is the first
            # reply only if none of these got one.
            peer = cluster.client()
            for message in DROPPED:
                peer.send_multipart(message)
            peer.send_multipart([b"", MDPC, b"mmi.service", b"fib"])
            self.assertTrue(peer.poll(5000))
            self.assertEqual(peer.recv_multipart(), [b"", MDPC, b"mmi.service", b"200"])
            for message, words in ANSWERED_400:
                client = cluster.client()
                client.send_multipart(message)
                self.assertTrue(client.poll(5000), message)
                frames = client.recv_multipart()
                self.assertEqual(frames[:3], [b"", MDPC, message[2]], message)
                error = msgpack.unpackb(frames[3], raw=False)
                self.assertEqual((error[0], error[6], error[7]), ("zfed.error", "broker", 400))
                self.assertIn(words, error[9])
                self.assertTrue(error[9].startswith("invalid request: "), error[9])
            for message in DISCONNECTED:
                rogue = cluster.client()
                rogue.send_multipart(message)
                self.assertTrue(rogue.poll(5000), message)
                self.assertEqual(rogue.recv_multipart(), [b"", MDPW, DISCONNECT], message)
            # A worker that says READY twice is disconnected (RFC 7).
            rogue = cluster.client()
            rogue.send_multipart([b"", MDPW, READY, b"fib"])
            rogue.send_multipart([b"", MDPW, READY, b"fib"])
            self.assertTrue(rogue.poll(5000))
            self.assertEqual(rogue.recv_multipart(), [b"", MDPW, DISCONNECT])
            # A worker may not register in the broker's own namespace.
            mmi_worker = cluster.client()
            mmi_worker.send_multipart([b"", MDPW, READY, b"mmi.service"])
            self.assertTrue(mmi_worker.poll(5000))
            self.assertEqual(mmi_worker.recv_multipart(), [b"", MDPW, DISCONNECT])
            # A body that is not msgpack reaches a worker, which answers 400.
            client = cluster.client()
            client.send_multipart([b"", MDPC, b"fib", b"\xc1 not msgpack"])
            self.assertTrue(client.poll(5000))
            frames = client.recv_multipart()
            error = msgpack.unpackb(frames[3], raw=False)
            self.assertEqual(error[0], "zfed.error")
            self.assertEqual(error[7], 400)

            result = cluster.run_controller("--job-id", "after-garbage", "--rounds", "2")
            self.assertEqual(result.returncode, 0, result.err)
            self.assertTrue(broker.alive())
            counters = cluster.status()["counters"]
            # Every invalid envelope counted once; the stranger's REPLY is
            # also a stale reply.
            self.assertEqual(counters["malformed"],
                             len(DROPPED) + len(ANSWERED_400) + len(DISCONNECTED) - 1)
            self.assertEqual(counters["stale_replies"], 1)
            self.assertGreaterEqual(counters["unexpected"], 3)
            self.assertEqual(counters["failed"], len(ANSWERED_400))
            log = broker.log()
            self.assertIn("message dropped", log)
            self.assertIn("invalid MDPW01 message, disconnecting its sender", log)

    def test_mmi(self):
        with Cluster("mmi") as cluster:
            cluster.start_broker()
            self.assertEqual(cluster.mmi("mmi.service", b"fib"), b"404")
            cluster.start_worker()
            cluster.wait_workers(1)
            self.assertEqual(cluster.mmi("mmi.service", b"fib"), b"200")
            self.assertEqual(cluster.mmi("mmi.service", b"nothing"), b"404")
            self.assertEqual(cluster.mmi("mmi.unknown", b"x"), b"501")
            status = cluster.status()
            self.assertEqual(status["services"]["fib"]["workers"], 1)
            self.assertEqual(status["services"]["fib"]["idle"], 1)


class WorkerGarbage(unittest.TestCase):
    """A fake broker feeds a real worker garbage; it must keep serving."""

    def test_worker_survives_garbage(self):
        with Cluster("worker-garbage") as cluster:
            router = cluster.context.socket(zmq.ROUTER)
            router.setsockopt(zmq.LINGER, 0)
            port = router.bind_to_random_port("tcp://127.0.0.1")
            endpoint = "tcp://127.0.0.1:%d" % port
            worker = cluster.start_worker(endpoint=endpoint)
            self.assertTrue(router.poll(10000))
            identity, *ready = router.recv_multipart()
            # RFC 7's READY and zfed's one offer (compact frames, which
            # this broker never accepts: it speaks MDP/0.1 below).
            self.assertEqual(ready, [b"", MDPW, READY, b"fib", b"compact=1"])

            def request(body, address=b"client-1", extra=None):
                frames = [identity, b"", MDPW, REQUEST, address, b""] + [body] + (extra or [])
                router.send_multipart(frames)

            def next_reply():
                while True:
                    self.assertTrue(router.poll(10000), "worker went quiet")
                    frames = router.recv_multipart()
                    if frames[3] == REPLY:
                        return frames
                    self.assertEqual(frames[3], HEARTBEAT)

            # Envelopes the worker must drop without a reply.
            for frames in ([b"", MDPW], [b"junk", MDPW, REQUEST], [b"", b"MDPC01", b"fib", b"x"],
                           [b"", MDPW, REQUEST, b"addr"], [b"", MDPW, b"\x07"],
                           [b"", MDPW, REQUEST, b"", b"", b"body"], [b""] * 30):
                router.send_multipart([identity] + frames)
            # Bodies the worker must answer with an error naming the problem.
            cases = [
                (b"", 400, ""),
                (b"\x92\x01", 400, ""),
                (msgpack.packb(["zfed.task", 2, "j", 0, 0, 0, {}, [-1, "0"]]), 400, ""),
                (msgpack.packb(["zfed.result", 1, "j", 0, 0, 0, "w", 1, {}]), 400, ""),
                (task_body("j", 0, 1, 0), 422, "fibonacci_level"),
                (task_body("j", 0, 2, -3), 422, "fibonacci_level"),
                (task_body("j", 0, 3, 100001), 422, "fibonacci_level"),
                (task_body("j", 0, 4, "10"), 422, "fibonacci_level"),
                (task_body("j", 0, 5, 10.0), 422, "fibonacci_level"),
                (msgpack.packb(["zfed.task", 1, "j", 0, 6, 0, {}, [-1, "0"]]), 422,
                 "fibonacci_level"),
                (msgpack.packb(["zfed.task", 1, "j", 0, 7, 0, {"fibonacci_level": 5, "x": 1},
                                [-1, "0"]]), 422, "x"),
                (msgpack.packb(["zfed.task", 1, "j", 0, 8, 0, {"fibonacci_level": 5}, [-1, 3]]),
                 422, "global"),
            ]
            for index, (body, code, field) in enumerate(cases):
                request(body, address=b"addr-%d" % index)
                frames = next_reply()
                self.assertEqual(frames[4], b"addr-%d" % index, "address must be echoed")
                error = msgpack.unpackb(frames[6], raw=False)
                self.assertEqual(error[0], "zfed.error", error)
                self.assertEqual(error[7], code, error)
                self.assertEqual(error[8], field, error)
            # Two body frames: refused with an error, not a crash.
            request(task_body("j", 0, 9, 10), extra=[b"second"])
            self.assertEqual(msgpack.unpackb(next_reply()[6], raw=False)[7], 400)
            # A batch: one reply body per item, in order, good or bad.
            batch = msgpack.packb(["zfed.batch", 1, [task_body("j", 1, 0, 10),
                                                     task_body("j", 1, 1, 0), b"\xc1"]],
                                  use_bin_type=True)
            request(batch, address=b"batch")
            frames = next_reply()
            reply = msgpack.unpackb(frames[6], raw=False)
            self.assertEqual(reply[:2], ["zfed.batch", 1])
            items = [msgpack.unpackb(item, raw=False) for item in reply[2]]
            self.assertEqual([item[0] for item in items],
                             ["zfed.result", "zfed.error", "zfed.error"])
            self.assertEqual(items[0][8]["sum"], "88")
            self.assertEqual((items[1][4], items[1][7], items[1][8]), (1, 422, "fibonacci_level"))
            self.assertEqual(items[2][7], 400)
            # An unreadable batch: one error body.
            request(msgpack.packb(["zfed.batch", 1, []]), address=b"empty-batch")
            error = msgpack.unpackb(next_reply()[6], raw=False)
            self.assertEqual((error[0], error[7]), ("zfed.error", 400))
            self.assertIn("bad batch", error[9])
            # And it still works.
            request(task_body("j", 3, 4, 10), address=b"final")
            frames = next_reply()
            self.assertEqual(frames[4], b"final")
            result = msgpack.unpackb(frames[6], raw=False)
            self.assertEqual(result[:6], ["zfed.result", 1, "j", 3, 4, 0])
            self.assertEqual(result[8]["sum"], "88")
            self.assertTrue(worker.alive())
            self.assertIn("dropped a message", worker.log())
            router.close()


class Flags(unittest.TestCase):
    """Every program: --help, --version, and bad flags named with exit 2."""

    def run_program(self, program, *args):
        return subprocess.run([binary(program)] + list(args), capture_output=True, timeout=30,
                              text=True)

    def test_help_and_version(self):
        for program in ("zfed-broker", "zfed-worker", "zfed-controller"):
            for flag in ("--help", "-h"):
                result = self.run_program(program, flag)
                self.assertEqual(result.returncode, 0)
                self.assertIn("Usage: " + program, result.stdout)
            result = self.run_program(program, "--version")
            self.assertEqual(result.returncode, 0)
            self.assertRegex(result.stdout, program + r" \(zfed\) \d+\.\d+\.\d+")

    def test_bad_flags_exit_2_and_name_the_flag(self):
        cases = [
            ("zfed-broker", ["--heartbeat-ms", "0"], "--heartbeat-ms"),
            ("zfed-broker", ["--max-queue", "x"], "--max-queue"),
            ("zfed-broker", ["--nope"], "--nope"),
            ("zfed-broker", ["--bind"], "--bind"),
            ("zfed-broker", ["stray"], "stray"),
            ("zfed-worker", ["--concurrency", "0"], "--concurrency"),
            ("zfed-worker", ["--credit", "-1"], "--credit"),
            ("zfed-worker", ["--service", "nope"], "--service"),
            ("zfed-worker", ["--name", "has space"], "--name"),
            ("zfed-worker", ["--curve-cert", "x"], "--server-key"),
            ("zfed-controller", ["--rounds", "0"], "--rounds"),
            ("zfed-controller", ["--rounds", "5x"], "--rounds"),
            ("zfed-controller", ["--tasks", ""], "--tasks"),
            ("zfed-controller", ["--level", "0"], "--level"),
            ("zfed-controller", ["--level", "100001"], "--level"),
            ("zfed-controller", ["--level", "ten"], "--level"),
            ("zfed-controller", ["--levels", "1,x"], "--levels"),
            ("zfed-controller", ["--levels", "1,2", "--tasks", "3"], "--levels"),
            ("zfed-controller", ["--schedule", "1,2", "--rounds", "3"], "--schedule"),
            ("zfed-controller", ["--quorum", "1.5"], "--quorum"),
            ("zfed-controller", ["--quorum", "9"], "quorum"),
            ("zfed-controller", ["--round-timeout", "-1"], "--round-timeout"),
            ("zfed-controller", ["--grace", "abc"], "--grace"),
            ("zfed-controller", ["--retries", "1000"], "--retries"),
            ("zfed-controller", ["--aggregate", "avg"], "--aggregate"),
            ("zfed-controller", ["--trim", "0.5"], "--trim"),
            ("zfed-controller", ["--select", "speed:max"], "select"),
            ("zfed-controller", ["--select", "aggregate:up"], "select"),
            ("zfed-controller", ["--job-id", "../x"], "--job-id"),
            ("zfed-controller", ["--job", "/nonexistent/job.json"], "--job"),
            ("zfed-controller", ["--resume", "a", "--rounds", "3"], "--resume"),
            ("zfed-controller", ["--bogus"], "--bogus"),
        ]
        for program, args, named in cases:
            result = self.run_program(program, *args)
            self.assertEqual(result.returncode, 2, (program, args, result.stderr))
            self.assertIn(named, result.stderr, (program, args))
            self.assertEqual(result.stdout, "", (program, args))

    def test_bad_job_file_names_the_field(self):
        with Cluster("jobfile") as cluster:
            cases = [
                ('{"rounds": 0}', "rounds"),
                ('{"rounds": "5"}', "rounds"),
                ('{"tasks": 3, "task_params": [{"fibonacci_level": 1}]}', "task_params"),
                ('{"params": {"fibonacci_level": 0}}', "fibonacci_level"),
                ('{"params": {"fibonacci_level": "10"}}', "fibonacci_level"),
                ('{"params": {"fibonaci_level": 10}}', "fibonaci_level"),
                ('{"aggregate": "avg"}', "aggregate"),
                ('{"quorum": 1.5}', "quorum"),
                ('{"colour": "red"}', "colour"),
                ('{"rounds": 5,}', "line 1"),
                ('[1, 2]', "object"),
            ]
            for index, (text, named) in enumerate(cases):
                path = os.path.join(cluster.dir, "bad-%d.json" % index)
                with open(path, "w") as handle:
                    handle.write(text)
                result = self.run_program("zfed-controller", "--job", path,
                                          "--workdir", cluster.workdir)
                self.assertEqual(result.returncode, 2, (text, result.stderr))
                self.assertIn(named, result.stderr, text)
                self.assertIn(path, result.stderr, text)


if __name__ == "__main__":
    main()
