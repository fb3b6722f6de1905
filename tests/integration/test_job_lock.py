"""Two controllers on one job (issue 12, part 6): the job folder is locked for
the controller's life, so a second one, whether `--resume J` while J runs
or a second start with the same job id, says "job J is running (pid N)"
and exits 1 without sending a task or writing a file.

The first controller's tasks are held by a ScriptedWorker until the test
lets them go, so "while J runs" is a state the test controls, not a race
against the clock.
"""

import os
import subprocess
import unittest

from zfedtest import Cluster, ScriptedWorker, figure, fib_outputs, main, wait_for

JOB = ["--rounds", "2", "--tasks", "2", "--round-timeout", "60", "--no-progress"]


def answer(task):
    return fib_outputs(task[6]["fibonacci_level"])


def leftovers(folder):
    """Temporaries of durable writes left anywhere in a job folder."""
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.join(root, name) for name in names if ".tmp" in name]
    return found


class TwoControllers(unittest.TestCase):

    def setUp(self):
        self.cluster = Cluster("job-lock")
        self.cluster.start_broker()
        self.worker = ScriptedWorker(self.cluster)
        self.cluster.wait_workers(1)

    def tearDown(self):
        self.worker.close()
        self.cluster.close()

    def requests(self):
        return self.cluster.status()["counters"]["requests"]

    def test_resume_while_running_is_refused(self):
        first = self.cluster.start_controller("--job-id", "J", *JOB)
        self.worker.wait_held(2)  # J runs: round 0 is out, its tasks held
        sent = self.requests()
        for args in (["--resume", "J"], ["--job-id", "J"] + JOB):
            with self.subTest(args=args[:2]):
                second = self.cluster.run_controller(*args)
                self.assertEqual(second.returncode, 1, second.err)
                self.assertIn("job J is running (pid %d)" % first.pid, second.err)
                figure("second controller (%s)" % " ".join(args[:2]),
                       "exit %d in %.2f s: %s" % (second.returncode, second.elapsed,
                                                 second.err.strip().split("ERROR: ")[-1]))
        # Nothing went out for the second controller, nothing was written.
        self.assertEqual(self.requests(), sent)
        self.assertFalse(os.path.exists(os.path.join(self.cluster.workdir, "J", "rounds",
                                                     "round-000000.json")))
        self.worker.auto = answer
        for task in (0, 1):
            self.worker.reply(0, task, 0)
        self.assertEqual(first.proc.wait(60), 0, first.log())
        summary = self.cluster.summary("J")
        self.assertEqual(summary["status"], "completed")
        self.assertEqual([len(r["results"]) for r in summary["rounds"]], [2, 2])
        self.assertEqual(self.requests(), 4)  # 2 rounds x 2 tasks, and no more
        self.assertEqual(leftovers(os.path.join(self.cluster.workdir, "J")), [])
        # Once it has ended, the job is free again: resuming it changes nothing.
        resumed = self.cluster.run_controller("--resume", "J", "--no-progress")
        self.assertEqual(resumed.returncode, 0, resumed.err)
        self.assertEqual(self.requests(), 4)

    def test_two_starts_with_one_job_id(self):
        self.worker.auto = None
        for attempt in range(3):
            job_id = "race-%d" % attempt
            argv = self.cluster.controller_argv("--job-id", job_id, *JOB)
            pair = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    for _ in range(2)]
            # The loser ends at once; the winner runs until its tasks are let go.
            wait_for(lambda: any(p.poll() is not None for p in pair), 30,
                     what="one of the two controllers to give way")
            loser = next(p for p in pair if p.poll() is not None)
            winner = next(p for p in pair if p is not loser)
            err = loser.stderr.read().decode()
            self.assertEqual(loser.returncode, 1, err)
            self.assertIn("job %s is running (pid %d)" % (job_id, winner.pid), err)
            self.assertNotIn("No such file or directory", err)
            self.worker.wait_held(2)
            self.worker.auto = answer  # round 1 answers itself
            for task in (0, 1):
                self.worker.reply(0, task, 0)
            self.assertEqual(winner.wait(60), 0, winner.stderr.read().decode())
            winner.stderr.close()
            loser.stderr.close()
            self.worker.auto = None
            summary = self.cluster.summary(job_id)
            self.assertEqual([len(r["results"]) for r in summary["rounds"]], [2, 2])
        self.assertEqual(self.requests(), 3 * 4)


if __name__ == "__main__":
    main()
