"""A vote against lying workers (issue 12, part 2).

With --replicas K every task goes to K workers with distinct identities
(as the broker vouches for them, PROTOCOL.md 3.1) and a value is accepted
only when a strict majority of them agree byte for byte; the votes that
disagree are in the round record with their workers.  --exclude-liars
gives a worker caught in a minority no vote for the rest of the job.
A liar here passes every check a fib result gets: only the vote sees it.
"""

import json
import os
import subprocess
import unittest

import msgpack
import zmq
import zmq.auth

from zfedtest import (Cluster, HostileWorker, behind, binary, figure, fib_outputs, fib_sum, main,
                      wait_for)
from test_binding import lie, records, result_body
from test_security import Keys, curve_status, keygen

LEVEL = 10
TASKS = 4


def liar(task):
    return [result_body(task, "liar", lie(task[6]["fibonacci_level"]))]


def start(cluster, honest=3):
    cluster.start_broker()
    # The liar registers first: the broker's first request is its.
    return behind(cluster, HostileWorker(cluster, liar), [honest])


def votes_of(record, name):
    return [vote for entry in record.get("disagreements", []) for vote in entry["votes"]
            if vote["worker"] == name]


class Vote(unittest.TestCase):

    def test_three_replicas_outvote_a_liar_and_record_it(self):
        with Cluster("replicas-vote") as cluster:
            worker = start(cluster)
            try:
                result = cluster.run_controller(
                    "--job-id", "vote", "--rounds", "2", "--tasks", str(TASKS), "--replicas", "3",
                    "--task-timeout", "2", "--retries", "3", "--aggregate", "sum",
                    "--no-progress", timeout=60)
            finally:
                worker.close()
            self.assertEqual(result.returncode, 0, result.err)
            self.assertGreaterEqual(worker.replies, 1, "the liar was never sent a task")
            summary = cluster.summary("vote")
            self.assertEqual([r["aggregate"] for r in summary["rounds"]],
                             [str(TASKS * fib_sum(LEVEL))] * 2)
            kept = records(cluster, "vote", 2)
            lies = [vote for record in kept for vote in votes_of(record, "liar")]
            # Every vote of the liar's is recorded (a round waits for its
            # replicas); its answers to a task it had voted on are no votes.
            self.assertGreaterEqual(len(lies), 1)
            self.assertLessEqual(len(lies), worker.replies)
            for record in kept:
                self.assertEqual(record["replicas"], 3)
                for entry in record["results"]:
                    self.assertNotEqual(entry["worker"], "liar")
                    self.assertEqual(entry["sum"], str(fib_sum(LEVEL)))
                for entry in record["disagreements"]:
                    self.assertIn(entry["outcome"], ("majority", "against the majority, late"))
                    ids = [vote["worker_id"] for vote in entry["votes"]]
                    self.assertEqual(len(ids), len(set(ids)), "one worker voted twice")
                    against = [vote for vote in entry["votes"] if not vote["with_majority"]]
                    self.assertEqual([vote["worker"] for vote in against], ["liar"])
                    self.assertTrue(against[0]["worker_id"].startswith("peer:"))
            self.assertRegex(result.err, r"peer:\d+ \(worker \"liar\"\) (voted against the "
                                         r"majority of 3 replicas|answered after the majority, "
                                         r"against it)")
            figure("lies outvoted and recorded", len(lies))
            figure("aggregates", ", ".join(r["aggregate"] for r in summary["rounds"]))

    def test_exclude_liars_gives_the_liar_no_more_votes(self):
        with Cluster("replicas-exclude") as cluster:
            worker = start(cluster)
            try:
                result = cluster.run_controller(
                    "--job-id", "exclude", "--rounds", "4", "--tasks", str(TASKS), "--replicas",
                    "3", "--exclude-liars", "--task-timeout", "2", "--retries", "3",
                    "--aggregate", "sum", "--no-progress", timeout=60)
            finally:
                worker.close()
            self.assertEqual(result.returncode, 0, result.err)
            summary = cluster.summary("exclude")
            self.assertEqual([r["aggregate"] for r in summary["rounds"]],
                             [str(TASKS * fib_sum(LEVEL))] * 4)
            kept = records(cluster, "exclude", 4)
            caught = [number for number, record in enumerate(kept) if record["excluded"]]
            self.assertEqual(len(caught), 1, [r["excluded"] for r in kept])
            first = caught[0]
            liar_id = kept[first]["excluded"][0]
            self.assertTrue(any(vote["worker_id"] == liar_id
                                for vote in votes_of(kept[first], "liar")))
            # After the round it was caught in, no vote of the liar's counts
            # (nor is recorded): its results are refused and counted.
            for record in kept[first + 1:]:
                self.assertEqual(votes_of(record, "liar"), [])
                self.assertEqual(record["disagreements"], [])
            refused = sum(record["excluded_results"] for record in kept)
            self.assertGreaterEqual(refused, 1, "the liar was never sent a task again")
            self.assertIn("%s excluded for the rest of the job" % liar_id, result.err)
            figure("round the liar was caught in", first)
            figure("its results refused once excluded (excluded_results)", refused)


    def test_a_replica_that_dies_holding_its_request_loses_nothing(self):
        with Cluster("replicas-die") as cluster:
            cluster.start_broker()
            dier = behind(cluster, HostileWorker(cluster, lambda task: None), [3])
            result = cluster.run_controller(
                "--job-id", "die", "--rounds", "2", "--tasks", str(TASKS), "--replicas", "3",
                "--task-timeout", "2", "--retries", "3", "--aggregate", "sum", "--no-progress",
                timeout=60)
            dier.close()
            self.assertEqual(result.returncode, 0, result.err)
            self.assertEqual(dier.requests, 1)
            summary = cluster.summary("die")
            self.assertEqual([r["aggregate"] for r in summary["rounds"]],
                             [str(TASKS * fib_sum(LEVEL))] * 2)
            for record in records(cluster, "die", 2):
                # Each task once, each by a majority of agreeing replicas.
                self.assertEqual(record["answered"], TASKS)
                self.assertEqual(sorted(r["task"] for r in record["results"]),
                                 list(range(TASKS)))
                self.assertEqual(record["disagreements"], [])
            figure("job with a replica dying at its first request, seconds", "%.2f"
                   % result.elapsed)


    def test_under_curve_replicas_are_distinct_keys(self):
        with Cluster("replicas-curve") as cluster:
            keys = Keys(os.path.join(cluster.dir, "keys"))
            controller = keys.issue("controller", "controllers")
            cluster.start_broker(*keys.broker_args())
            liar_public, _, liar_secret = keygen(keys.workers, "liar")

            def secure(socket):
                public, private = zmq.auth.load_certificate(liar_secret)
                socket.curve_publickey, socket.curve_secretkey = public, private
                socket.curve_serverkey = zmq.auth.load_certificate(keys.broker_public)[0]
            worker = HostileWorker(cluster, liar, curve=secure)
            # Two honest keys, two connections each: four connections, two
            # identities.  A third vote can only be the liar's.
            for name in ("w1", "w2"):
                _, _, secret = keygen(keys.workers, name)
                cluster.start_worker("--concurrency", "2", "--curve-cert", secret,
                                     "--server-key", keys.broker_public)
            wait_for(lambda: curve_status(cluster, keys, controller)["services"]
                     .get("fib", {}).get("workers", 0) == 5, 10, what="5 CURVE workers")
            try:
                result = cluster.run_controller(
                    "--job-id", "keys", "--rounds", "1", "--tasks", str(TASKS), "--replicas", "3",
                    "--task-timeout", "2", "--retries", "3", "--aggregate", "sum",
                    "--no-progress", *keys.peer_args(controller), timeout=60)
            finally:
                worker.close()
            self.assertEqual(result.returncode, 0, result.err)
            record = records(cluster, "keys", 1)[0]
            self.assertEqual(record["aggregate"], str(TASKS * fib_sum(LEVEL)))
            # The liar's votes (the only third key) were outvoted by two
            # distinct keys each time.
            self.assertGreaterEqual(len(record["disagreements"]), 1)
            for entry in record["disagreements"]:
                ids = [vote["worker_id"] for vote in entry["votes"]]
                if entry["outcome"] == "majority":  # else the liar's vote after it
                    self.assertEqual(len(set(ids)), 3, ids)
                self.assertTrue(all(i.startswith("curve:") for i in ids), ids)
                self.assertEqual([v["worker_id"] for v in entry["votes"] if not v["with_majority"]],
                                 ["curve:" + liar_public])
            self.assertTrue(all(e["worker_id"] != "curve:" + liar_public
                                for e in record["results"]))
            figure("lies outvoted by two distinct keys under CURVE", len(record["disagreements"]))


def error_body(task, name, code=422, field="fibonacci_level", text="refused by a hostile worker"):
    return msgpack.packb(["zfed.error", 1, task[2], task[3], task[4], task[5], name, code, field,
                          text], use_bin_type=True)


class Said(object):
    """What a hostile worker was sent: (round, task) -> requests."""

    def __init__(self):
        self.sent = {}

    def count(self, task):
        key = (task[3], task[4])
        self.sent[key] = self.sent.get(key, 0) + 1
        return self.sent[key]

    def most(self):
        return max(self.sent.values()) if self.sent else 0


# A task timeout no test waits for: a replica that is not replaced at once
# would hold its round for a minute, past every harness timeout below.
SLOW = ("--task-timeout", "60", "--round-timeout", "300", "--retries", "1")


def slow_honest(cluster, hostile):
    """The hostile worker registered first, then two honest workers that
    take 300 ms a task: while they work, the hostile one is the only free
    worker, so it is handed replica after replica of the same task."""
    return behind(cluster, hostile, [1, 1], "--delay-ms", "300")


class OneSay(unittest.TestCase):
    """Review j items 2 to 4: one say per identity and task, errors
    included; an answer that is no say is replaced at once; too few
    identities fail the task saying so."""

    def run_beside_slow_workers(self, job_id, answer):
        """A hostile worker answering answer(task, nth request for that
        task) beside two slow honest ones, 2 rounds of K=3: the job must
        end exact, with nothing waiting for the 60 s task timeout.  Returns
        the records, the run and what the hostile worker was sent."""
        with Cluster("replicas-" + job_id) as cluster:
            cluster.start_broker()
            said = Said()
            hostile = HostileWorker(cluster, lambda task: answer(task, said.count(task)))
            worker = slow_honest(cluster, hostile)
            try:
                result = cluster.run_controller(
                    "--job-id", job_id, "--rounds", "2", "--tasks", str(TASKS), "--replicas",
                    "3", "--aggregate", "sum", "--no-progress", *SLOW, timeout=50)
            finally:
                worker.close()
            self.assertEqual(result.returncode, 0, result.err)
            # It was handed several replicas of one task.
            self.assertGreaterEqual(said.most(), 2, said.sent)
            summary = cluster.summary(job_id)
            self.assertEqual([r["aggregate"] for r in summary["rounds"]],
                             [str(TASKS * fib_sum(LEVEL))] * 2)
            kept = records(cluster, job_id, 2)
            for record in kept:
                self.assertEqual(record["answered"], TASKS)
            return kept, result, said

    def test_a_worker_answering_errors_spends_one_replica_per_task(self):
        # Before, two of its 422s on one task spent two of the three
        # replicas and failed the task.
        kept, _, said = self.run_beside_slow_workers(
            "errors", lambda task, nth: [error_body(task, "refuser")])
        for record in kept:
            for entry in record["results"]:
                self.assertNotEqual(entry["worker"], "refuser")
        errors = sum(record["errors"] for record in kept)
        self.assertGreaterEqual(errors, said.most())
        figure("422s from one worker, job still exact (errors counted)", errors)
        figure("most replicas of one task it was sent", said.most())

    def test_an_error_after_a_vote_is_replaced_at_once(self):
        # Before, its error for a task it had voted on was ignored and the
        # replica it held waited for the 60 s task timeout.
        def vote_then_refuse(task, nth):
            if nth == 1:
                return [result_body(task, "voter", fib_outputs(LEVEL))]
            return [error_body(task, "voter")]
        kept, result, said = self.run_beside_slow_workers("after", vote_then_refuse)
        resent = sum(record["resent"] for record in kept)
        refusals = sum(count - 1 for count in said.sent.values())
        # Its errors after a vote were replaced by other replicas.
        self.assertGreaterEqual(resent, 1)
        figure("errors after its vote, each replaced at once (resent)",
               "%d errors, %d replacements, job %.1f s with a 60 s task timeout"
               % (refusals, resent, result.elapsed))

    def test_more_replicas_than_workers_fail_naming_the_identities(self):
        with Cluster("replicas-too-few") as cluster:
            cluster.start_broker()
            cluster.start_worker()
            cluster.wait_workers(1)
            # Its 96 replacements go in milliseconds; then it waits for a
            # resend on silence (other workers may have been busy), and a
            # second task timeout with no new identity fails the task.
            result = cluster.run_controller(
                "--job-id", "few", "--rounds", "1", "--tasks", "2", "--replicas", "3",
                "--task-timeout", "1", "--round-timeout", "300", "--no-progress", timeout=50)
            self.assertEqual(result.returncode, 1, result.err)
            self.assertRegex(result.err, r"only 1 distinct identity answered task \d; a majority "
                                         r"of K=3 needs 2 \(96 replacement replicas, \d+ sends")
            summary = cluster.summary("few")
            self.assertEqual(summary["status"], "failed")
            self.assertRegex(summary["error"], r"quorum of 2 is out of reach: 1 of 2 tasks "
                                                 r"failed \(last: only 1 distinct identity")
            figure("K=3 on 1 worker: fails with the identities named, seconds",
                   "%.2f" % result.elapsed)


class Resume(unittest.TestCase):
    """Review j item 5: a liar excluded before a stop stays excluded after
    --resume (the records' excluded lists are read back)."""

    ROUNDS = 8

    def test_an_excluded_liar_stays_excluded_after_a_kill_and_resume(self):
        with Cluster("replicas-resume") as cluster:
            cluster.start_broker()
            worker = behind(cluster, HostileWorker(cluster, liar), [1, 1], "--delay-ms", "100")
            args = ("--aggregate", "sum", "--no-progress", "--task-timeout", "3")
            try:
                first = cluster.start_controller(
                    "--job-id", "again", "--rounds", str(self.ROUNDS), "--tasks", str(TASKS),
                    "--replicas", "3", "--exclude-liars", *args)
                path = os.path.join(cluster.workdir, "again", "rounds")

                def caught():
                    for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
                        if name.endswith(".json"):
                            with open(os.path.join(path, name)) as handle:
                                try:
                                    if json.load(handle)["excluded"]:
                                        return name
                                except ValueError:
                                    pass  # being written
                    return None
                wait_for(caught, 40, what="a round record that excludes the liar")
                first.kill()
                done = len([n for n in os.listdir(path) if n.endswith(".json")])
                self.assertLess(done, self.ROUNDS, "the job ended before it was killed")
                liar_id = [r for r in records(cluster, "again", done) if r["excluded"]][0][
                    "excluded"][0]
                second = cluster.run_controller("--resume", "again", "--no-progress", timeout=120)
            finally:
                worker.close()
            self.assertEqual(second.returncode, 0, second.err)
            self.assertIn("%s stays excluded" % liar_id, second.err)
            kept = records(cluster, "again", self.ROUNDS)
            after = kept[done:]
            self.assertTrue(after)
            for record in after:
                self.assertEqual(record["excluded"], [], "excluded again after the resume")
                self.assertEqual(votes_of(record, "liar"), [])
                self.assertEqual(record["aggregate"], str(TASKS * fib_sum(LEVEL)))
            refused = sum(record["excluded_results"] for record in after)
            figure("rounds after the resume, liar's results refused there",
                   "%d rounds, %d refused, %.1f s" % (len(after), refused, second.elapsed))


class Usage(unittest.TestCase):

    def run_controller(self, *args):
        return subprocess.run([binary("zfed-controller"), "--connect", "tcp://127.0.0.1:9"] +
                              list(args), capture_output=True, text=True, timeout=30)

    def test_bad_replicas_exit_2_naming_the_field(self):
        cases = [(["--replicas", "0"], "--replicas"), (["--replicas", "16"], "--replicas"),
                 (["--replicas", "three"], "--replicas"), (["--replicas", "-1"], "--replicas"),
                 (["--replicas", "3", "--batch", "4"], "--replicas"),
                 (["--exclude-liars"], "--exclude-liars"),
                 (["--replicas", "2", "--exclude-liars"], "--exclude-liars"),
                 (["--replicas", "3", "--service", "tensoravg"], "--replicas")]
        for args, named in cases:
            result = self.run_controller(*args)
            self.assertEqual(result.returncode, 2, (args, result.stderr))
            self.assertIn(named, result.stderr, args)
        with Cluster("replicas-usage") as cluster:
            for job, named in (({"replicas": 0}, "replicas"), ({"replicas": "3"}, "replicas"),
                               ({"replicas": 3, "exclude_liars": 1}, "exclude_liars")):
                path = os.path.join(cluster.dir, "job.json")
                with open(path, "w") as handle:
                    json.dump(job, handle)
                result = self.run_controller("--job", path, "--workdir", cluster.workdir)
                self.assertEqual(result.returncode, 2, (job, result.stderr))
                self.assertIn("%s: %s:" % (path, named), result.stderr)


if __name__ == "__main__":
    main()
