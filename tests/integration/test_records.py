"""Records of big rounds: results a line each in their own file
(WORKDIR.md 3.1), the same fields as inline results, and resume across them."""

import json
import os
import unittest

from zfedtest import Cluster, fib_last, fib_sum, main

INLINE_MAX = 1000  # ZFED_RESULTS_INLINE_MAX
# Inline results' keys in their order (s_result_entry): the file's lines have the same.
RESULT_KEYS = ["task", "worker", "worker_id", "attempt", "compute_us", "latency_us", "level",
               "sum", "terms", "last"]


class BigRounds(unittest.TestCase):

    def setUp(self):
        self.cluster = Cluster("records")
        self.cluster.start_broker()
        # A name that needs escaping in JSON: a quote and a backslash.
        self.cluster.start_worker("--credit", "8", name='w"\\x')
        self.cluster.start_worker("--credit", "8")
        self.cluster.wait_workers(2)

    def tearDown(self):
        self.cluster.close()

    def lines(self, job_id, name):
        with open(os.path.join(self.cluster.workdir, job_id, name), encoding="utf-8") as handle:
            return handle.read().splitlines()

    def test_big_round_keeps_every_result_in_its_own_file(self):
        tasks = INLINE_MAX + 7
        levels = [1 + task % 97 for task in range(tasks)]  # sums beyond 64 bits too (F(95)...)
        result = self.cluster.run_controller(
            "--job-id", "big", "--rounds", "1", "--levels", ",".join(map(str, levels)),
            "--batch", "4", timeout=120)
        self.assertEqual(result.returncode, 0, result.err)
        record = self.cluster.read_json("big", "rounds/round-000000.json")
        self.assertNotIn("results", record)
        self.assertEqual(record["results_file"], "rounds/round-000000.results.ndjson")
        self.assertEqual(record["answered"], tasks)
        lines = self.lines("big", record["results_file"])
        self.assertEqual(len(lines), tasks)
        entries = [json.loads(line) for line in lines]
        self.assertEqual([e["task"] for e in entries], list(range(tasks)))
        for entry, level in zip(entries, levels):
            self.assertEqual(list(entry), RESULT_KEYS)
            self.assertEqual((entry["level"], entry["terms"]), (level, level))
            self.assertEqual(entry["sum"], str(fib_sum(level)))
            self.assertEqual(entry["last"], str(fib_last(level)))
        self.assertIn('w"\\x', {e["worker"] for e in entries})
        # worker_id is who the broker vouches for (plaintext: peer:N), one
        # per worker, as inline results have it.
        identities = {(e["worker"], e["worker_id"]) for e in entries}
        self.assertTrue(all(i.startswith("peer:") for _, i in identities), identities)
        self.assertEqual(len(identities), len({e["worker"] for e in entries}), identities)
        self.assertEqual(len({i for _, i in identities}), len(identities), identities)
        # The aggregate is the exact weighted mean of every result.
        weighted = sum(fib_sum(level) * level for level in levels)
        self.assertEqual(record["aggregate_exact"], [
            _fraction(weighted, sum(levels))])
        summary = self.cluster.summary("big")
        self.assertEqual(summary["rounds"][0]["results_file"], record["results_file"])
        self.assertEqual(summary["rounds"][0]["answered"], tasks)
        self.assertNotIn("results", summary["rounds"][0])
        self.assertIn("%d/%d" % (tasks, tasks), result.out)

        # A small round keeps its results inline, with the same fields.
        small = self.cluster.run_controller("--job-id", "small", "--rounds", "1", "--levels",
                                            "10,20,30")
        self.assertEqual(small.returncode, 0, small.err)
        inline = self.cluster.read_json("small", "rounds/round-000000.json")["results"]
        self.assertEqual([list(e) for e in inline], [RESULT_KEYS] * 3)
        self.assertEqual(list(self.cluster.summary("small")["rounds"][0]["results"][0]),
                         [k for k in RESULT_KEYS if k not in ("compute_us", "latency_us")])

        # Resume after a big round: its record is read back for the global.
        job_file = os.path.join(self.cluster.workdir, "big", "job.json")
        with open(job_file) as handle:
            job = json.load(handle)
        job["rounds"] = 2
        with open(job_file, "w") as handle:
            json.dump(job, handle)
        resumed = self.cluster.run_controller("--resume", "big", timeout=120)
        self.assertEqual(resumed.returncode, 0, resumed.err)
        self.assertIn("resuming at round 2 of 2", resumed.out)
        second = self.cluster.read_json("big", "rounds/round-000001.json")
        self.assertEqual(second["global_in"], record["global_out"])
        self.assertEqual(len(self.lines("big", second["results_file"])), tasks)
        self.assertEqual([r["round"] for r in self.cluster.summary("big")["rounds"]], [0, 1])

    def test_big_round_with_few_results_keeps_them_inline(self):
        # More tasks than a record holds inline, but the round closes at a
        # quorum below it: the results (rendered as lines on arrival) are
        # inline again, with the same fields and values.
        tasks, quorum = INLINE_MAX + 500, 600
        result = self.cluster.run_controller("--job-id", "few", "--rounds", "1", "--tasks",
                                             str(tasks), "--level", "30", "--quorum", str(quorum),
                                             "--grace", "0", timeout=120)
        self.assertEqual(result.returncode, 0, result.err)
        record = self.cluster.read_json("few", "rounds/round-000000.json")
        self.assertNotIn("results_file", record)
        self.assertEqual(record["answered"], quorum)
        self.assertEqual(len(record["results"]), quorum)
        self.assertEqual(len(record["missing"]), tasks - quorum)
        for entry in record["results"]:
            self.assertEqual(list(entry), RESULT_KEYS)
            self.assertEqual((entry["level"], entry["sum"], entry["last"]),
                             (30, str(fib_sum(30)), str(fib_last(30))))
        self.assertEqual(record["aggregate_exact"], [str(fib_sum(30))])


def _fraction(numerator, denominator):
    from math import gcd
    divisor = gcd(numerator, denominator)
    numerator, denominator = numerator // divisor, denominator // divisor
    return str(numerator) if denominator == 1 else "%d/%d" % (numerator, denominator)


if __name__ == "__main__":
    main()
