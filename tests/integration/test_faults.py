"""Faults injected into real processes: killed and stalled workers, a killed and
restarted broker, a killed controller, signals, floods.  Nothing is lost,
nothing is counted twice.

Heartbeats are shortened (100 ms x 3) so a dead worker is noticed in about
0.3 s; every wait is on an event (a file, a counter, a process exit), with
generous timeouts, never on a bare sleep that a slow machine could outrun.
"""

import json
import os
import resource
import signal
import time
import unittest

import msgpack
import zmq

from zfedtest import (Cluster, MDPC, MDPW, PROMPT_S, READY, DISCONNECT, REQUEST, main,
                      rss_kb, task_body, wait_for)

HEARTBEAT = ["--heartbeat-ms", "100", "--liveness", "3"]


def rounds_view(summary):
    """What must not depend on faults: per round, the accepted results and
    the aggregate (not which worker answered, nor how long it took)."""
    return [([(r["task"], r["level"], r["sum"], r["terms"], r["last"]) for r in round_["results"]],
             round_["aggregate"]) for round_ in summary["rounds"]]


def round_written(cluster, job_id, number):
    return os.path.exists(os.path.join(cluster.workdir, job_id, "rounds",
                                       "round-%06d.json" % number))


class WorkerFaults(unittest.TestCase):

    def setUp(self):
        self.cluster = Cluster("worker-faults")
        self.broker = self.cluster.start_broker(*HEARTBEAT)

    def tearDown(self):
        self.cluster.close()

    def test_worker_killed_mid_task_is_redispatched_by_the_broker(self):
        # The victim registers first, so the broker gives it the first task,
        # which it will never finish.
        victim = self.cluster.start_worker("--delay-ms", "60000", *HEARTBEAT)
        self.cluster.wait_workers(1)
        for _ in range(2):
            self.cluster.start_worker(*HEARTBEAT)
        self.cluster.wait_workers(3)
        # No controller retries: only the broker can save the task.
        controller = self.cluster.start_controller("--job-id", "kill", "--rounds", "3",
                                                   "--tasks", "3", "--retries", "0",
                                                   "--round-timeout", "30")
        wait_for(lambda: self.cluster.status()["services"]["fib"]["in_flight"] >= 1
                 and self.cluster.status()["counters"]["replies"] >= 2, 10,
                 what="the victim to hold a task")
        # A busy worker is expired after heartbeat x liveness only once it
        # has shown it heartbeats while working (else it could be a plain
        # MDP worker, which gets the busy timeout); zfed's workers show it
        # within an interval or so.
        wait_for(lambda: "heartbeats while it works" in self.broker.log(), 10,
                 what="the broker to see the victim heartbeat while busy")
        killed_at = time.monotonic()
        victim.kill()
        wait_for(lambda: not controller.alive(), 30, what="the job to finish")
        recovered_in = time.monotonic() - killed_at
        self.assertEqual(controller.proc.returncode, 0, controller.log())
        summary = self.cluster.summary("kill")
        self.assertEqual(summary["status"], "completed")
        for round_ in summary["rounds"]:
            self.assertEqual(len(round_["results"]), 3)  # nothing lost
            self.assertEqual(round_["duplicates"], 0)    # nothing twice
            self.assertEqual(round_["aggregate"], "88")
        counters = self.cluster.status()["counters"]
        self.assertEqual(counters["workers_expired"], 1)
        self.assertEqual(counters["redispatched"], 1)
        # The kernel closes a killed process's connection, and the broker
        # drops its worker at once (a stalled one's stays open: it expires
        # after heartbeat x liveness, test_majordomo checks that path).
        self.assertIn("gone: its connection closed", self.broker.log())
        durations = sorted(r["duration_ms"] for r in summary["rounds"])
        print("\nworker killed mid-task: job done %.2f s after the kill; slowest round %d ms, "
              "fastest %d ms; 0 lost, 0 twice" % (recovered_in, durations[-1], durations[0]))

    def test_controller_retry_covers_a_broker_that_cannot_redispatch(self):
        # With --max-attempts 1 the broker gives up on a request whose worker
        # died (503); the controller sends the task again.
        self.cluster.close()
        self.cluster = Cluster("no-redispatch")
        broker = self.cluster.start_broker(*HEARTBEAT, "--max-attempts", "1")
        victim = self.cluster.start_worker("--delay-ms", "60000", *HEARTBEAT)
        self.cluster.wait_workers(1)
        self.cluster.start_worker(*HEARTBEAT)
        self.cluster.wait_workers(2)
        controller = self.cluster.start_controller("--job-id", "retry", "--rounds", "2",
                                                   "--tasks", "2", "--retries", "2",
                                                   "--round-timeout", "30")
        wait_for(lambda: self.cluster.status()["services"]["fib"]["in_flight"] >= 1
                 and self.cluster.status()["counters"]["replies"] >= 1, 10,
                 what="the victim to hold a task")
        wait_for(lambda: "heartbeats while it works" in broker.log(), 10,
                 what="the broker to see the victim heartbeat while busy")
        victim.kill()
        wait_for(lambda: not controller.alive(), 30, what="the job to finish")
        self.assertEqual(controller.proc.returncode, 0, controller.log())
        summary = self.cluster.summary("retry")
        round0 = summary["rounds"][0]
        self.assertEqual(len(round0["results"]), 2)
        self.assertEqual(round0["duplicates"], 0)
        self.assertEqual(round0["errors"], 1)  # the broker's 503
        self.assertEqual(sorted(r["attempt"] for r in round0["results"]), [0, 1])
        self.assertEqual(self.cluster.status()["counters"]["failed"], 1)

    def test_stalled_worker_round_closes_and_its_answer_counts_late(self):
        # A stopped worker stays registered (its heartbeats are only missed
        # after 7.5 s with default timing), takes a task and sits on it.
        self.cluster.close()
        self.cluster = Cluster("stall")
        self.cluster.start_broker()
        straggler = self.cluster.start_worker()
        self.cluster.wait_workers(1)
        for _ in range(4):
            self.cluster.start_worker()
        self.cluster.wait_workers(5)
        straggler.signal(signal.SIGSTOP)
        job = os.path.join(self.cluster.dir, "stall.json")
        with open(job, "w") as handle:
            # Round 0 is quick; the rest are heavy enough to still be running
            # when the straggler's answer arrives.
            json.dump({"rounds": 12, "tasks": 5, "quorum": 4, "grace": 0.2, "retries": 0,
                       "round_params": [{"fibonacci_level": 10}] +
                                       [{"fibonacci_level": 60000}] * 11}, handle)
        controller = self.cluster.start_controller("--job-id", "stall", "--job", job)
        wait_for(lambda: round_written(self.cluster, "stall", 0), 20, what="round 0 to close")
        straggler.signal(signal.SIGCONT)
        straggler.expect_clean_exit = True
        wait_for(lambda: not controller.alive(), 60, what="the job to finish")
        self.assertEqual(controller.proc.returncode, 0, controller.log())
        summary = self.cluster.summary("stall")
        round0 = summary["rounds"][0]
        self.assertEqual(len(round0["results"]), 4)
        self.assertEqual(len(round0["missing"]), 1)
        self.assertEqual(round0["late"], 1)
        self.assertEqual(round0["aggregate"], "88")
        self.assertEqual(summary["late_total"], 1)

    def test_sigterm_on_a_busy_worker_hands_its_task_back(self):
        busy = self.cluster.start_worker("--delay-ms", "60000", *HEARTBEAT)
        self.cluster.wait_workers(1)
        self.cluster.start_worker(*HEARTBEAT)
        self.cluster.wait_workers(2)
        controller = self.cluster.start_controller("--job-id", "term", "--rounds", "1",
                                                   "--tasks", "2", "--retries", "0")
        wait_for(lambda: self.cluster.status()["services"]["fib"]["in_flight"] >= 1
                 and self.cluster.status()["counters"]["replies"] >= 1, 10,
                 what="the busy worker to hold a task")
        started = time.monotonic()
        busy.signal(signal.SIGTERM)
        busy.proc.wait(30)
        self.assertLess(time.monotonic() - started, PROMPT_S)
        self.assertEqual(busy.proc.returncode, 0)
        wait_for(lambda: not controller.alive(), 10, what="the job to finish")
        self.assertEqual(controller.proc.returncode, 0)
        self.assertEqual(len(self.cluster.summary("term")["rounds"][0]["results"]), 2)
        self.assertEqual(self.cluster.status()["counters"]["workers_left"], 1)


class BrokerRestart(unittest.TestCase):

    def test_broker_killed_and_restarted_on_the_same_endpoint(self):
        with Cluster("broker-restart") as cluster:
            broker = cluster.start_broker(*HEARTBEAT)
            endpoint = cluster.endpoint
            for _ in range(3):
                cluster.start_worker(*HEARTBEAT, "--delay-ms", "50")
            cluster.wait_workers(3)
            undisturbed = cluster.run_controller("--job-id", "calm", "--rounds", "8",
                                                 "--tasks", "3", "--no-progress")
            self.assertEqual(undisturbed.returncode, 0, undisturbed.err)

            controller = cluster.start_controller("--job-id", "restart", "--rounds", "8",
                                                  "--tasks", "3", "--task-timeout", "0.5",
                                                  "--retries", "40", "--round-timeout", "60")
            wait_for(lambda: round_written(cluster, "restart", 2), 20, what="round 2")
            broker.kill()
            killed_at = time.monotonic()
            cluster.start_broker(*HEARTBEAT, endpoint=endpoint)
            wait_for(lambda: not controller.alive(), 60, what="the job to finish")
            self.assertEqual(controller.proc.returncode, 0, controller.log())
            summary = cluster.summary("restart")
            self.assertEqual(summary["status"], "completed")
            self.assertEqual(rounds_view(summary), rounds_view(cluster.summary("calm")))
            # The workers came back to the new broker by themselves.
            cluster.wait_workers(3)
            durations = sorted(r["duration_ms"] for r in summary["rounds"])
            print("\nbroker restart: job finished %.2f s after the kill; slowest round %d ms, "
                  "median %d ms; results equal to the undisturbed run"
                  % (time.monotonic() - killed_at, durations[-1], durations[len(durations) // 2]))


class ControllerFaults(unittest.TestCase):

    def setUp(self):
        self.cluster = Cluster("controller-faults")
        self.cluster.start_broker(*HEARTBEAT)
        for _ in range(3):
            self.cluster.start_worker(*HEARTBEAT, "--delay-ms", "30")
        self.cluster.wait_workers(3)
        self.job = ["--rounds", "10", "--levels", "10,20,30", "--no-progress"]
        undisturbed = self.cluster.run_controller("--job-id", "calm", *self.job)
        self.assertEqual(undisturbed.returncode, 0, undisturbed.err)
        self.calm = self.cluster.summary("calm")

    def tearDown(self):
        self.cluster.close()

    def test_controller_killed_then_resumed(self):
        controller = self.cluster.start_controller("--job-id", "crash", *self.job)
        wait_for(lambda: round_written(self.cluster, "crash", 3), 20, what="round 3")
        controller.kill()
        rounds_done = len(os.listdir(os.path.join(self.cluster.workdir, "crash", "rounds")))
        self.assertLess(rounds_done, 10)
        resumed = self.cluster.run_controller("--resume", "crash")
        self.assertEqual(resumed.returncode, 0, resumed.err)
        self.assertIn("resuming at round", resumed.out)
        summary = self.cluster.summary("crash")
        self.assertEqual(summary["status"], "completed")
        self.assertEqual(rounds_view(summary), rounds_view(self.calm))
        self.assertEqual(summary["best_round"], self.calm["best_round"])
        self.assertEqual(summary["final_global"], self.calm["final_global"])

    def test_sigint_stops_within_a_second_and_resume_finishes(self):
        controller = self.cluster.start_controller("--job-id", "ctrl-c", *self.job)
        wait_for(lambda: round_written(self.cluster, "ctrl-c", 1), 20, what="round 1")
        started = time.monotonic()
        controller.signal(signal.SIGINT)
        controller.proc.wait(30)
        self.assertLess(time.monotonic() - started, PROMPT_S)
        self.assertEqual(controller.proc.returncode, 130)
        interrupted = self.cluster.summary("ctrl-c")
        self.assertEqual(interrupted["status"], "interrupted")
        resumed = self.cluster.run_controller("--resume", "ctrl-c")
        self.assertEqual(resumed.returncode, 0, resumed.err)
        self.assertEqual(rounds_view(self.cluster.summary("ctrl-c")), rounds_view(self.calm))

    def test_resuming_a_completed_job_changes_nothing(self):
        before = self.cluster.summary("calm")
        resumed = self.cluster.run_controller("--resume", "calm")
        self.assertEqual(resumed.returncode, 0, resumed.err)
        self.assertEqual(rounds_view(self.cluster.summary("calm")), rounds_view(before))

    def test_corrupt_record_is_reported_never_half_read(self):
        controller = self.cluster.start_controller("--job-id", "torn", *self.job)
        wait_for(lambda: round_written(self.cluster, "torn", 4), 20, what="round 4")
        controller.kill()
        path = os.path.join(self.cluster.workdir, "torn", "rounds", "round-000002.json")
        with open(path, "r+") as handle:
            text = handle.read()
            handle.seek(0)
            handle.write(text[:len(text) // 2])
            handle.truncate()
        resumed = self.cluster.run_controller("--resume", "torn")
        self.assertEqual(resumed.returncode, 1)
        self.assertIn("round-000002.json is corrupt", resumed.err)


class Signals(unittest.TestCase):

    def test_broker_sigterm_stops_cleanly_and_tells_workers(self):
        with Cluster("broker-term") as cluster:
            # Heartbeats far apart: a broker that only looked at signals
            # between them would take 40 s to stop.
            slow = ["--heartbeat-ms", "40000"]
            broker = cluster.start_broker(*slow)
            worker = cluster.start_worker(*slow)
            cluster.wait_workers(1)
            started = time.monotonic()
            broker.signal(signal.SIGTERM)
            broker.proc.wait(30)
            self.assertLess(time.monotonic() - started, PROMPT_S)
            self.assertEqual(broker.proc.returncode, 0)
            wait_for(lambda: "broker sent DISCONNECT" in worker.log(), 5,
                     what="the worker to hear DISCONNECT")
            started = time.monotonic()
            worker.signal(signal.SIGINT)
            worker.proc.wait(30)
            self.assertLess(time.monotonic() - started, PROMPT_S)
            self.assertEqual(worker.proc.returncode, 0)


class Floods(unittest.TestCase):

    def test_queue_bound_and_request_expiry(self):
        with Cluster("flood") as cluster:
            broker = cluster.start_broker("--max-queue", "100", "--request-ttl", "1")
            client = cluster.client()
            for index in range(500):
                client.send_multipart([b"", MDPC, b"nobody", task_body("flood", 0, index, 10)])
            codes = {}
            for _ in range(500):
                self.assertTrue(client.poll(10000), "a request got no answer")
                reply = msgpack.unpackb(client.recv_multipart()[3], raw=False)
                self.assertEqual(reply[0], "zfed.error")
                codes[reply[7]] = codes.get(reply[7], 0) + 1
            # 100 queued then expired (504); the other 400 refused at once (429).
            self.assertEqual(codes, {429: 400, 504: 100})
            counters = cluster.status()["counters"]
            self.assertEqual(counters["rejected"], 400)
            self.assertEqual(counters["expired"], 100)
            self.assertEqual(cluster.status()["services"], {})  # forgotten once idle
            self.assertTrue(broker.alive())

    def test_worker_and_service_limits(self):
        with Cluster("limits") as cluster:
            cluster.start_broker("--max-workers", "2", "--max-services", "2")
            cluster.start_worker()
            cluster.start_worker()
            cluster.wait_workers(2)
            third = cluster.client()
            third.send_multipart([b"", MDPW, READY, b"fib"])
            self.assertTrue(third.poll(5000))
            self.assertEqual(third.recv_multipart(), [b"", MDPW, DISCONNECT])
            client = cluster.client()
            client.send_multipart([b"", MDPC, b"other", task_body("x", 0, 0, 10)])
            client.send_multipart([b"", MDPC, b"third", task_body("x", 0, 1, 10)])
            self.assertTrue(client.poll(5000))
            reply = msgpack.unpackb(client.recv_multipart()[3], raw=False)
            self.assertEqual((reply[4], reply[7]), (1, 429))
            self.assertIn("limit of services", reply[9])
            result = cluster.run_controller("--job-id", "ok", "--rounds", "1", "--tasks", "2")
            self.assertEqual(result.returncode, 0, result.err)

    def test_restarted_worker_reusing_its_identity_is_not_locked_out(self):
        with Cluster("identity") as cluster:
            cluster.start_broker()
            first = cluster.context.socket(zmq.DEALER)
            first.setsockopt(zmq.ROUTING_ID, b"fixed-identity")
            first.setsockopt(zmq.LINGER, 0)
            first.connect(cluster.endpoint)
            first.send_multipart([b"", MDPW, READY, b"fib"])
            cluster.wait_workers(1)
            first.close()  # dies without a word
            second = cluster.context.socket(zmq.DEALER)
            second.setsockopt(zmq.ROUTING_ID, b"fixed-identity")
            second.setsockopt(zmq.LINGER, 0)
            second.connect(cluster.endpoint)
            # If the broker still knows the identity (the old connection's
            # close not seen yet), this READY is a second one, answered by
            # DISCONNECT, and registering again then works; once it has
            # seen the close, the READY registers at once.
            second.send_multipart([b"", MDPW, READY, b"fib"])
            if second.poll(1000):
                self.assertEqual(second.recv_multipart(), [b"", MDPW, DISCONNECT])
                second.send_multipart([b"", MDPW, READY, b"fib"])
            cluster.wait_workers(1)
            client = cluster.client()
            client.send_multipart([b"", MDPC, b"fib", task_body("id", 0, 0, 10)])
            self.assertTrue(second.poll(5000), "the restarted worker got no task")
            frames = second.recv_multipart()
            self.assertEqual(frames[2], REQUEST)

    def test_huge_frame_costs_the_sender_its_connection_only(self):
        with Cluster("huge") as cluster:
            broker = cluster.start_broker()
            cluster.start_worker()
            cluster.wait_workers(1)
            sender = cluster.client()
            sender.send_multipart([b"", MDPC, b"fib", b"\0" * (100 << 20)])
            wait_for(lambda: cluster.status()["counters"]["connections_closed"] >= 1, 20,
                     what="the broker to drop the connection")
            self.assertIn("message over --max-message", broker.log())
            result = cluster.run_controller("--job-id", "after", "--rounds", "1")
            self.assertEqual(result.returncode, 0, result.err)
            # The 100 MB never landed in the broker's memory.
            self.assertLess(rss_kb(broker.pid, "VmHWM"), 64 * 1024)


if __name__ == "__main__":
    main()
