"""What a user meets when a command line or a setup is wrong (issue 9,
part 1): every endpoint flag checked at start, fib's level lists read
strictly, --resume's mistakes and flags, the early word on a round that
hears nothing (no broker, no worker for the service), and the small
things: an interrupted quiet job says how to go on, job.json keeps 0.1 as
0.1, latencies are measured in microseconds."""

import json
import os
import signal
import subprocess
import threading
import time
import unittest

import zmq

from zfedtest import MDPC, Cluster, binary, main, wait_for

FORMS = "tcp://HOST:PORT, ipc://PATH or inproc://NAME"


def run(program, *args, timeout=30):
    return subprocess.run([binary(program)] + list(args), capture_output=True, text=True,
                          timeout=timeout)


class Endpoints(unittest.TestCase):

    def check_refused(self, result, flag, given):
        self.assertEqual(result.returncode, 2, result.stderr)
        lines = result.stderr.splitlines()
        # One line that says it all (and the usual pointer to --help); no
        # flood of connect errors, no abort.
        self.assertLessEqual(len(lines), 2, result.stderr)
        self.assertIn("%s: '%s' is not an endpoint" % (flag, given), lines[0])
        self.assertIn(FORMS, lines[0])
        self.assertNotIn("refusing plaintext", result.stderr)

    def test_every_program_checks_its_endpoint_flags_at_start(self):
        for given in ("127.0.0.1:5555", "notanendpoint", "tcp://127.0.0.1", "tcp://h:70000"):
            self.check_refused(run("zfed-worker", "--connect", given), "--connect", given)
            self.check_refused(run("zfed-controller", "--connect", given), "--connect", given)
            self.check_refused(run("zfed-controller", "--connect", given, "--status"),
                               "--connect", given)
            self.check_refused(run("zfed-broker", "--bind", given), "--bind", given)
            self.check_refused(run(os.path.join("bench", "zfed-bench-load"), "--connect", given,
                                   "--mode", "round"), "--connect", given)
            for role, flag in (("broker", "--bind"), ("workers", "--connect"),
                               ("load", "--connect")):
                result = run(os.path.join("bench", "zfed-bench-baseline"), role, flag, given)
                self.check_refused(result, flag, given)

    def test_the_reason_is_specific(self):
        cases = [("zfed-worker", "--connect", "tcp://*:5555", "'*' is for binding"),
                 ("zfed-worker", "--connect", "udp://127.0.0.1:5555",
                  "transport 'udp' is not one zfed speaks"),
                 ("zfed-broker", "--bind", "tcp://127.0.0.1:99999", "(or * for a free one)"),
                 ("zfed-broker", "--bind", "ipc://", "no path")]
        for program, flag, given, reason in cases:
            result = run(program, flag, given)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn(reason, result.stderr)

    def test_a_job_file_endpoint_is_checked_too(self):
        with Cluster("usage-jobfile") as cluster:
            path = os.path.join(cluster.dir, "job.json")
            with open(path, "w") as handle:
                json.dump({"connect": "localhost:5555"}, handle)
            result = run("zfed-controller", "--job", path, "--workdir", cluster.workdir)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn("--job %s: connect: 'localhost:5555' is not an endpoint" % path,
                          result.stderr)

    def test_a_plaintext_wide_bind_still_gets_its_own_reason(self):
        result = run("zfed-broker", "--bind", "tcp://0.0.0.0:5555")
        self.assertEqual(result.returncode, 2)
        self.assertIn("refusing plaintext beyond this host", result.stderr)


class Levels(unittest.TestCase):

    def test_empty_items_are_mistakes(self):
        for flag in ("--levels", "--schedule"):
            for given, item in (("10,,20", 2), ("10,20,", 3), (",10", 1), (",", 1)):
                result = run("zfed-controller", flag, given)
                self.assertEqual(result.returncode, 2, (flag, given, result.stderr))
                self.assertIn("%s: item %d of '%s' is empty" % (flag, item, given),
                              result.stderr)

    def test_the_range_said_is_the_range_taken(self):
        for given in ("-1", "0", "100001", "ten"):
            result = run("zfed-controller", "--level", given)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn("--level: expected a level from 1 to 100000, got '%s'" % given,
                          result.stderr)
        result = run("zfed-controller", "--levels", "10,0,20")
        self.assertEqual(result.returncode, 2)
        self.assertIn("--levels: item 2: expected a level from 1 to 100000, got '0'",
                      result.stderr)


class Resume(unittest.TestCase):

    def test_a_job_that_does_not_exist_is_bad_usage(self):
        with Cluster("usage-resume") as cluster:
            result = run("zfed-controller", "--resume", "no-such-job", "--workdir",
                         cluster.workdir)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn("--resume no-such-job: no job no-such-job in %s" % cluster.workdir,
                          result.stderr)

    def test_only_where_and_how_may_change(self):
        result = run("zfed-controller", "--resume", "a", "--tasks=3")
        self.assertEqual(result.returncode, 2)
        self.assertIn("only where it runs (--connect, --workdir, --curve-cert, --server-key) "
                      "and how (--no-progress, --fail-fast, --no-compact, --eval-inline, --sync, "
                      "--sync-interval-ms, --log-level, -v, -q) "
                      "may change (not --tasks)", result.stderr)
        # What it names it takes: a resumed job told how to run is not
        # refused for it (it then fails only because job a is not there).
        for option in ("--no-progress", "--fail-fast", "--no-compact", "--eval-inline",
                       "--sync=round",
                       "--sync=group", "-q"):
            result = run("zfed-controller", "--resume", "a", option)
            self.assertEqual(result.returncode, 2)
            self.assertNotIn("keeps its own settings", result.stderr)
        result = run("zfed-controller", "--resume", "a", "--sync", "always")
        self.assertEqual(result.returncode, 2)
        self.assertIn("--sync: 'always' is not overlap, round or group", result.stderr)
        result = run("zfed-controller", "--resume", "a", "--sync", "group",
                     "--sync-interval-ms", "5")
        self.assertEqual(result.returncode, 2)
        self.assertNotIn("keeps its own settings", result.stderr)
        result = run("zfed-controller", "--resume", "a", "--sync-interval-ms", "5")
        self.assertEqual(result.returncode, 2)
        self.assertIn("--sync-interval-ms goes with --sync group", result.stderr)
        result = run("zfed-controller", "--sync", "group", "--sync-interval-ms", "0")
        self.assertEqual(result.returncode, 2)
        self.assertIn("--sync-interval-ms", result.stderr)

    def test_resume_takes_the_new_endpoint_however_it_is_spelt(self):
        with Cluster("usage-moved") as cluster:
            # The job first runs against a broker with no worker and fails.
            cluster.start_broker()
            old = cluster.endpoint
            first = cluster.run_controller("--job-id", "moved", "--rounds", "2", "--tasks", "2",
                                           "--round-timeout", "0.5", "--no-progress")
            self.assertEqual(first.returncode, 1, first.err)
            # The broker moves; workers come up at the new one.
            cluster.start_broker()
            new = cluster.endpoint
            self.assertNotEqual(new, old)
            cluster.start_worker(endpoint=new)
            cluster.wait_workers(1, endpoint=new)
            for spelling in (["--connect=" + new], ["--conn", new]):
                argv = [binary("zfed-controller"), "--resume", "moved", "--workdir",
                        cluster.workdir, "--no-progress"] + spelling
                result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
                self.assertEqual(result.returncode, 0, (spelling, result.stderr))
                summary = cluster.summary("moved")
                self.assertEqual(summary["status"], "completed")
                self.assertEqual([r["aggregate"] for r in summary["rounds"]], ["88", "88"])


class EarlyWord(unittest.TestCase):
    """A round that hears nothing says why within about 2 s, and keeps
    waiting for its deadline unless --fail-fast."""

    def test_no_broker_is_said_early_and_the_job_keeps_waiting(self):
        with Cluster("usage-nobroker") as cluster:
            controller = cluster.start_controller("--job-id", "lonely", "--round-timeout", "60",
                                                  endpoint="tcp://127.0.0.1:1")
            started = time.monotonic()
            wait_for(lambda: "no broker answers at tcp://127.0.0.1:1" in controller.log(), 20,
                     what="the controller to say no broker answers")
            self.assertIn("waiting until the round's deadline", controller.log())
            self.assertLess(time.monotonic() - started, 20)
            self.assertTrue(controller.alive())
            controller.signal(signal.SIGTERM)
            controller.proc.wait(10)
            self.assertEqual(controller.proc.returncode, 130)

    def test_fail_fast_fails_at_once(self):
        with Cluster("usage-failfast") as cluster:
            result = cluster.run_controller("--job-id", "quick", "--round-timeout", "120",
                                            "--fail-fast", "--no-progress",
                                            endpoint="tcp://127.0.0.1:1", timeout=60)
            self.assertEqual(result.returncode, 1, result.err)
            self.assertIn("failing at once (--fail-fast); no broker answers at "
                          "tcp://127.0.0.1:1", result.err)
            self.assertLess(result.elapsed, 60)
            self.assertIn("no broker answers", cluster.summary("quick")["error"])

    def test_no_worker_for_the_service_is_said_and_a_late_worker_still_counts(self):
        with Cluster("usage-noworker") as cluster:
            cluster.start_broker()
            cluster.start_worker()  # fib only
            cluster.wait_workers(1)
            job = os.path.join(cluster.dir, "vec.json")
            with open(job, "w") as handle:
                json.dump({"service": "vecavg", "tasks": 2, "rounds": 1, "round_timeout": 120,
                           "params": {"vector": [1.0, 2.0], "samples": 10}}, handle)
            controller = cluster.start_controller("--job-id", "vec", "--job", job)
            wait_for(lambda: "no worker is registered for service 'vecavg'" in controller.log(),
                     20, what="the controller to say no vecavg worker is registered")
            self.assertIn("zfed-worker --service vecavg", controller.log())
            self.assertTrue(controller.alive())
            cluster.start_worker("--service", "vecavg")
            wait_for(lambda: not controller.alive(), 60, what="the job to finish")
            self.assertEqual(controller.proc.returncode, 0, controller.log())
            self.assertEqual(cluster.summary("vec")["status"], "completed")

    def test_the_deadline_failure_says_why(self):
        with Cluster("usage-why") as cluster:
            cluster.start_broker()
            result = cluster.run_controller("--job-id", "why", "--service", "vecavg",
                                            "--round-timeout", "3", "--no-progress",
                                            "--job", self.vector_job(cluster))
            self.assertEqual(result.returncode, 1, result.err)
            self.assertIn("only 0 of 1 results by the 3.0 s deadline", result.err)
            self.assertIn("no worker is registered for service 'vecavg'", result.err)

    def vector_job(self, cluster):
        path = os.path.join(cluster.dir, "one.json")
        with open(path, "w") as handle:
            json.dump({"tasks": 1, "rounds": 1, "params": {"vector": [1.0], "samples": 1}}, handle)
        return path


class PlainBroker(unittest.TestCase):
    """--status against a Majordomo broker that answers mmi.status 501."""

    def test_status_says_501_at_once(self):
        context = zmq.Context()
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        stop = threading.Event()

        def serve():
            while not stop.is_set():
                if router.poll(50):
                    frames = router.recv_multipart()
                    if frames[2:3] == [MDPC] and frames[3].startswith(b"mmi."):
                        router.send_multipart(frames[:4] + [b"501"])

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            result = run("zfed-controller", "--connect", "tcp://127.0.0.1:%d" % port, "--status")
        finally:
            stop.set()
            thread.join(2)
            router.close()
            context.term()
        self.assertEqual(result.returncode, 1)
        self.assertIn("does not implement mmi.status (it answered 501)", result.stderr)
        self.assertNotIn("within 3000 ms", result.stderr)


class Small(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster("usage-small")
        cls.cluster.start_broker()
        for _ in range(2):
            cls.cluster.start_worker()
        cls.cluster.wait_workers(2)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def test_job_json_keeps_short_decimals_short(self):
        result = self.cluster.run_controller("--job-id", "decimals", "--trim", "0.1",
                                             "--quorum", "0.6", "--round-timeout", "2.5",
                                             "--rounds", "1", "--no-progress")
        self.assertEqual(result.returncode, 0, result.err)
        with open(os.path.join(self.cluster.workdir, "decimals", "job.json")) as handle:
            text = handle.read()
        self.assertIn('"trim": 0.1,', text)
        self.assertIn('"quorum": 0.6,', text)
        self.assertIn('"round_timeout": 2.5,', text)
        self.assertNotIn("0000000", text)

    def test_latency_is_measured_in_microseconds(self):
        result = self.cluster.run_controller("--job-id", "latency", "--tasks", "20",
                                             "--rounds", "2", "--no-progress")
        self.assertEqual(result.returncode, 0, result.err)
        latencies = []
        for number in range(2):
            path = os.path.join(self.cluster.workdir, "latency", "rounds",
                                "round-%06d.json" % number)
            with open(path) as handle:
                latencies += [r["latency_us"] for r in json.load(handle)["results"]]
        self.assertEqual(len(latencies), 40)
        self.assertTrue(any(value % 1000 for value in latencies), latencies)

    def test_a_quiet_interrupted_job_says_how_to_go_on(self):
        controller = self.cluster.start_controller("--job-id", "quiet", "--no-progress",
                                                   "--rounds", "100000", "--level", "20000")
        rounds = os.path.join(self.cluster.workdir, "quiet", "rounds")
        wait_for(lambda: os.path.isdir(rounds) and os.listdir(rounds), 30, what="a round")
        controller.signal(signal.SIGINT)
        controller.proc.wait(10)
        self.assertEqual(controller.proc.returncode, 130)
        self.assertIn("job quiet interrupted; continue it with --resume quiet", controller.log())


if __name__ == "__main__":
    main()
