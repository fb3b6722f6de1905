"""Round records made durable off the round's path (schemas/WORKDIR.md 1):
a thread fsyncs and renames them while the next round runs, never more than
one round behind.  A controller killed with kill -9 in the middle of a
many-round job, again and again, resumes to records equal to an undisturbed
run's, no round counted twice; a record that cannot be made durable fails
the job (exit 1) naming the file, and nothing after it lands.  The same
with --sync group, where the records of the rounds closed within
--sync-interval-ms share one fsync (a crash runs more rounds again, never
one twice, never one skipped).
"""

import json
import os
import re
import unittest

from zfedtest import Cluster, main, wait_for

ROUNDS = 240
JOB = ["--rounds", str(ROUNDS), "--levels", "10,20,30", "--no-progress"]
# Long enough for a group to hold several rounds of this job (1-ms rounds),
# short enough for the records on disk to stay well behind the job's end.
GROUP = ["--sync", "group", "--sync-interval-ms", "10"]


def record_view(record):
    """What must not depend on crashes: the round's results and state, not
    who answered when, nor how long it took."""
    view = {key: value for key, value in record.items()
            if key not in ("started_at", "duration_ms", "duration_us", "results")}
    view["results"] = [(r["task"], r["level"], r["sum"], r["terms"], r["last"])
                       for r in record["results"]]
    return view


def rounds_dir(cluster, job_id):
    return os.path.join(cluster.workdir, job_id, "rounds")


def records(cluster, job_id):
    """Every record on disk, checked to be an unbroken run from round 0 of
    complete files (a renamed record is always whole)."""
    folder = rounds_dir(cluster, job_id)
    names = sorted(name for name in os.listdir(folder)
                   if re.fullmatch(r"round-\d{6}\.json", name)
                   and os.path.isfile(os.path.join(folder, name)))
    found = []
    for index, name in enumerate(names):
        assert name == "round-%06d.json" % index, "records are not an unbroken run: %s" % names
        with open(os.path.join(folder, name)) as handle:
            found.append(json.load(handle))
    return found


def temporaries(cluster, job_id):
    found = []
    for folder, _, names in os.walk(os.path.join(cluster.workdir, job_id)):
        found += [os.path.join(folder, name) for name in names if ".tmp." in name]
    return found


class DurableRecords(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster("durable-records")
        cls.cluster.start_broker()
        for _ in range(3):
            cls.cluster.start_worker()
        cls.cluster.wait_workers(3)
        undisturbed = cls.cluster.run_controller("--job-id", "calm", *JOB, timeout=240)
        assert undisturbed.returncode == 0, undisturbed.err
        cls.calm = [record_view(record) for record in records(cls.cluster, "calm")]
        assert len(cls.calm) == ROUNDS

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def test_killed_again_and_again_then_resumed_equals_undisturbed(self):
        self.killed_again_and_again("crash", (30, 100, 170))

    def test_sync_group_killed_again_and_again_then_resumed_equals_undisturbed(self):
        # Earlier kills: the records on disk may be two groups behind the
        # rounds, and the job must not have ended when the target lands.
        self.killed_again_and_again("crash-group", (20, 60, 100), *GROUP)

    def killed_again_and_again(self, job_id, targets, *sync):
        cluster = self.cluster
        controller = cluster.start_controller("--job-id", job_id, *JOB, *sync)
        kills = []
        for target in targets:
            wait_for(lambda: os.path.exists(os.path.join(rounds_dir(cluster, job_id),
                                                         "round-%06d.json" % target))
                     or not controller.alive(), 120, what="round %d's record" % target)
            self.assertTrue(controller.alive(), "the job ended before the kill at %d" % target)
            controller.kill()
            # Whatever the kill interrupted, what is on disk is an unbroken
            # run of whole records, each equal to the undisturbed run's.
            on_disk = [record_view(record) for record in records(cluster, job_id)]
            self.assertGreaterEqual(len(on_disk), target + 1)
            self.assertLess(len(on_disk), ROUNDS)
            self.assertEqual(on_disk, self.calm[:len(on_disk)])
            kills.append(len(on_disk))
            controller = cluster.start_controller("--resume", job_id, "--no-progress", *sync)
        controller.proc.wait(240)
        self.assertEqual(controller.proc.returncode, 0, controller.log())
        summary = cluster.summary(job_id)
        self.assertEqual(summary["status"], "completed")
        # No round counted twice, none skipped.
        self.assertEqual([r["round"] for r in summary["rounds"]], list(range(ROUNDS)))
        self.assertEqual(summary["rounds_completed"], ROUNDS)
        self.assertEqual([record_view(record) for record in records(cluster, job_id)],
                         self.calm)
        calm = cluster.summary("calm")
        self.assertEqual(summary["best_round"], calm["best_round"])
        self.assertEqual(summary["final_global"], calm["final_global"])
        self.assertEqual(temporaries(cluster, job_id), [])
        print("\nkilled with %s records on disk; resumed each time; %d records equal to the "
              "undisturbed run's" % (kills, ROUNDS))

    def test_sync_round_keeps_every_round_durable_before_the_next(self):
        result = self.cluster.run_controller("--job-id", "sync", "--sync", "round", *JOB[:1],
                                             "20", *JOB[2:])
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual([record_view(record) for record in records(self.cluster, "sync")],
                         self.calm[:20])

    def test_sync_group_drains_at_the_end_and_on_sigterm(self):
        # Every record of a closed round is durable at the job's end ...
        result = self.cluster.run_controller("--job-id", "group", *GROUP, *JOB[:1], "40",
                                             *JOB[2:])
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual([record_view(record) for record in records(self.cluster, "group")],
                         self.calm[:40])
        # ... and when SIGTERM interrupts it: the summary lists exactly the
        # records on disk, and --resume goes on from there.
        cluster = self.cluster
        controller = cluster.start_controller("--job-id", "group-term", *JOB, *GROUP)
        wait_for(lambda: os.path.exists(os.path.join(rounds_dir(cluster, "group-term"),
                                                     "round-000030.json"))
                 or not controller.alive(), 120, what="round 30's record")
        controller.proc.terminate()
        controller.proc.wait(60)
        self.assertEqual(controller.proc.returncode, 130, controller.log())
        summary = cluster.summary("group-term")
        self.assertEqual(summary["status"], "interrupted")
        on_disk = [record_view(record) for record in records(cluster, "group-term")]
        self.assertGreaterEqual(len(on_disk), 31)
        self.assertEqual(on_disk, self.calm[:len(on_disk)])
        self.assertEqual([r["round"] for r in summary["rounds"]], list(range(len(on_disk))))
        self.assertEqual(temporaries(cluster, "group-term"), [])

    def failing_job(self, job_id, rounds, blocked, *extra):
        """A job whose round `blocked` record cannot be renamed: its name is
        taken by a folder that is not empty."""
        folder = os.path.join(rounds_dir(self.cluster, job_id), "round-%06d.json" % blocked)
        os.makedirs(folder)
        with open(os.path.join(folder, "squatter"), "w") as handle:
            handle.write("x")
        result = self.cluster.run_controller("--job-id", job_id, "--rounds", str(rounds),
                                             "--levels", "10,20,30", "--no-progress", *extra)
        self.assertEqual(result.returncode, 1, result.err)
        self.assertRegex(result.err, r"round-%06d\.json: rename: (Is a directory|Directory not "
                         r"empty|File exists)" % blocked)
        summary = self.cluster.summary(job_id)
        self.assertEqual(summary["status"], "failed")
        self.assertIn("round-%06d.json: rename: " % blocked, summary["error"])
        # The rounds before landed, whole; nothing after the failure did.
        on_disk = [record_view(record) for record in records(self.cluster, job_id)]
        self.assertEqual(on_disk, self.calm[:blocked])
        self.assertFalse(os.path.exists(os.path.join(rounds_dir(self.cluster, job_id),
                                                     "round-%06d.json" % (blocked + 1))))
        # With --sync group it lists the rounds before the failing group.
        listed = [r["round"] for r in summary["rounds"]]
        if GROUP[1] in extra:
            self.assertEqual(listed, list(range(len(listed))))
            self.assertLessEqual(len(listed), blocked)
        else:
            self.assertEqual(listed, list(range(blocked)))
        self.assertEqual(temporaries(self.cluster, job_id), [])
        # Once the folder takes it again, --resume finishes the job as if
        # nothing had happened.
        os.unlink(os.path.join(folder, "squatter"))
        os.rmdir(folder)
        resumed = self.cluster.run_controller("--resume", job_id)
        self.assertEqual(resumed.returncode, 0, resumed.err)
        self.assertIn("resuming at round %d" % (blocked + 1), resumed.out)
        self.assertEqual([record_view(record) for record in records(self.cluster, job_id)],
                         self.calm[:rounds])
        return result

    def test_a_record_that_cannot_be_made_durable_fails_the_job(self):
        # Found by the next round's close, which waits for it.
        self.failing_job("blocked", 12, 5)

    def test_the_last_record_failing_fails_the_job_at_its_end(self):
        # Found by the wait at the job's end.
        self.failing_job("blocked-last", 6, 5)

    def test_with_sync_round_the_failure_stops_its_own_round(self):
        self.failing_job("blocked-sync", 12, 5, "--sync", "round")

    def test_with_sync_group_a_failure_in_a_group_stops_the_job(self):
        # Found when the next group is handed over, or at the job's end.
        self.failing_job("blocked-group", 12, 5, *GROUP)
        self.failing_job("blocked-group-late", 80, 50, *GROUP)


if __name__ == "__main__":
    main()
