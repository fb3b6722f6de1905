"""Quorum, deadlines, retries, late and duplicate results."""

import time
import unittest

from zfedtest import Cluster, ScriptedWorker, fib_outputs, main, wait_for


class Quorum(unittest.TestCase):

    def setUp(self):
        self.cluster = Cluster("quorum")
        self.cluster.start_broker()

    def tearDown(self):
        self.cluster.close()

    def test_quorum_met_with_two_of_five_never_answered(self):
        # Two workers take a task each and never answer; three real ones do.
        silent = ScriptedWorker(self.cluster, credit=1, name="silent")
        silent2 = ScriptedWorker(self.cluster, credit=1, name="silent2")
        self.cluster.wait_workers(2)
        for _ in range(3):
            self.cluster.start_worker()
        self.cluster.wait_workers(5)
        result = self.cluster.run_controller("--job-id", "q", "--rounds", "1", "--quorum", "3",
                                             "--grace", "0.3", "--retries", "0",
                                             "--round-timeout", "20")
        self.assertEqual(result.returncode, 0, result.err)
        round_ = self.cluster.summary("q")["rounds"][0]
        self.assertEqual(len(round_["results"]), 3)
        self.assertEqual(len(round_["missing"]), 2)
        self.assertEqual(round_["aggregate"], "88")
        self.assertEqual(len(silent.held) + len(silent2.held), 2)
        # Closed by the grace period, long before the round deadline.
        self.assertLess(result.elapsed, 10)
        silent.close()
        silent2.close()

    def test_quorum_as_a_fraction(self):
        silent = ScriptedWorker(self.cluster, credit=1, name="silent")
        self.cluster.wait_workers(1)
        for _ in range(4):
            self.cluster.start_worker()
        self.cluster.wait_workers(5)
        result = self.cluster.run_controller("--job-id", "f", "--rounds", "1", "--quorum", "0.8",
                                             "--grace", "0", "--retries", "0")
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(len(self.cluster.summary("f")["rounds"][0]["results"]), 4)
        silent.close()

    def test_impossible_quorum_fails_at_the_deadline(self):
        # No worker at all: the round cannot reach its quorum.
        result = self.cluster.run_controller("--job-id", "never", "--round-timeout", "1.5",
                                             "--retries", "0")
        self.assertEqual(result.returncode, 1)
        self.assertIn("only 0 of 5 results by the 1.5 s deadline", result.err)
        # "In about its timeout": not before it, and not long after.
        self.assertGreaterEqual(result.elapsed, 1.4)
        self.assertLess(result.elapsed, 6)
        summary = self.cluster.summary("never")
        self.assertEqual(summary["status"], "failed")
        self.assertEqual(summary["rounds_completed"], 0)
        self.assertIn("deadline", summary["error"])

    def test_failed_job_keeps_completed_rounds(self):
        # Round 0 completes; round 1 finds no worker and fails.
        worker = ScriptedWorker(self.cluster, credit=8,
                                auto=lambda task: fib_outputs(10) if task[3] == 0 else None)
        self.cluster.wait_workers(1)
        result = self.cluster.run_controller("--job-id", "half", "--rounds", "3",
                                             "--round-timeout", "1", "--retries", "0")
        self.assertEqual(result.returncode, 1)
        summary = self.cluster.summary("half")
        self.assertEqual(summary["status"], "failed")
        self.assertEqual(summary["rounds_completed"], 1)
        self.assertIn("round 1", summary["error"])
        worker.close()

    def test_errors_make_the_quorum_unreachable_early(self):
        # Every answer is a permanent error: the job fails without waiting
        # for the 30 s deadline.
        worker = ScriptedWorker(self.cluster, credit=8)
        self.cluster.wait_workers(1)
        controller = self.cluster.start_controller("--job-id", "errors", "--rounds", "1",
                                                   "--tasks", "3", "--quorum", "2",
                                                   "--round-timeout", "30")
        worker.wait_held(3)
        for task in range(3):
            worker.reply_error(0, task, 0, 422, "fibonacci_level", "made up for the test")
        controller.expect_clean_exit = False  # it is meant to fail
        wait_for(lambda: not controller.alive(), 10, what="the controller to give up")
        self.assertEqual(controller.proc.returncode, 1)
        self.assertIn("out of reach", self.cluster.summary("errors")["error"])
        self.assertIn("made up for the test", controller.log())
        worker.close()


class LateAndDuplicate(unittest.TestCase):

    def setUp(self):
        self.cluster = Cluster("late")
        self.cluster.start_broker()

    def tearDown(self):
        self.cluster.close()

    def test_duplicate_and_late_are_counted_not_aggregated(self):
        worker = ScriptedWorker(self.cluster, credit=16)
        self.cluster.wait_workers(1)
        controller = self.cluster.start_controller(
            "--job-id", "dup", "--rounds", "2", "--tasks", "2", "--task-timeout", "0.3",
            "--retries", "1", "--round-timeout", "20")
        # Both tasks are sent, then sent again after 0.3 s without answers.
        worker.wait_held(4)
        wrong = fib_outputs(10, sum_override=1000000)
        # Task 0: the retry answers first; the first attempt's answer (with a
        # different sum) is a duplicate and must not change the aggregate.
        worker.reply(0, 0, 1)
        worker.reply(0, 0, 0, wrong)
        # Task 1: the retry closes the round; the first attempt comes late.
        worker.reply(0, 1, 1)
        worker.reply(0, 1, 0, wrong)
        # Round 1 is answered as it comes (held ones too, whatever the race).
        worker.auto = lambda task: fib_outputs(10)

        def answer_the_rest():
            for _, body in list(worker.held):
                worker.reply(body[3], body[4], body[5])
            return not controller.alive()
        wait_for(answer_the_rest, 15, what="the controller to finish")
        self.assertEqual(controller.proc.returncode, 0, controller.log())
        summary = self.cluster.summary("dup")
        round0 = summary["rounds"][0]
        self.assertEqual(round0["duplicates"], 1)
        self.assertEqual(round0["late"], 1)
        self.assertEqual(summary["late_total"], 1)
        self.assertEqual(round0["aggregate"], "88")
        self.assertEqual([r["sum"] for r in round0["results"]], ["88", "88"])
        self.assertEqual([r["attempt"] for r in round0["results"]], [1, 1])
        record = self.cluster.read_json("dup", "rounds/round-000000.json")
        self.assertEqual(record["resent"], 2)
        worker.close()

    def test_result_that_does_not_fit_its_task_is_refused(self):
        # terms must equal the task's fibonacci_level: a reshaped answer is
        # refused (and the task retried), never bent into shape.
        worker = ScriptedWorker(self.cluster, credit=16)
        self.cluster.wait_workers(1)
        controller = self.cluster.start_controller(
            "--job-id", "shape", "--rounds", "1", "--tasks", "1", "--task-timeout", "0.5",
            "--retries", "1", "--round-timeout", "20")
        worker.wait_held(1)
        worker.reply(0, 0, 0, fib_outputs(9))
        worker.wait_held(1)  # the retry
        worker.reply(0, 0, 1)
        wait_for(lambda: not controller.alive(), 15, what="the controller to finish")
        self.assertEqual(controller.proc.returncode, 0, controller.log())
        round0 = self.cluster.summary("shape")["rounds"][0]
        self.assertEqual(round0["invalid"], 1)
        self.assertEqual(round0["results"][0]["attempt"], 1)
        self.assertIn("terms", controller.log())
        worker.close()


class Window(unittest.TestCase):

    def test_window_bounds_what_a_round_puts_in_the_broker(self):
        # One slow worker and 20 tasks with --window 3: the broker never
        # holds more than 3 of the round's requests (queued or in flight),
        # and every task is still answered.  Without the window all 20
        # would sit in its queue at once.
        with Cluster("window") as cluster:
            cluster.start_broker()
            cluster.start_worker("--delay-ms", "40")
            cluster.wait_workers(1)
            controller = cluster.start_controller("--job-id", "win", "--rounds", "1",
                                                  "--tasks", "20", "--window", "3",
                                                  "--no-progress")
            held = []
            while controller.alive():
                service = cluster.status()["services"].get("fib", {})
                held.append(service.get("queued", 0) + service.get("in_flight", 0))
                time.sleep(0.02)
            self.assertEqual(controller.stop(), 0, controller.log())
            self.assertLessEqual(max(held), 3, held)
            self.assertGreaterEqual(max(held), 2, held)  # the window was used
            summary = cluster.summary("win")
            self.assertEqual(len(summary["rounds"][0]["results"]), 20)
            self.assertEqual(cluster.read_json("win", "job.json")["window"], 3)


if __name__ == "__main__":
    main()
