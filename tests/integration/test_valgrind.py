"""valgrind memcheck over one end-to-end job: broker, workers and controller.

Passes when no process has an invalid read or write, a use of uninitialised
memory, or a leak valgrind calls "definitely lost".  Skipped in sanitizer
builds (ASan and valgrind do not mix) and where valgrind is missing.
"""

import glob
import os
import re
import shutil
import unittest

from zfedtest import Cluster, main

VALGRIND = shutil.which("valgrind")


@unittest.skipIf(os.environ.get("ZFED_SANITIZED") in ("1", "ON", "true"), "sanitizer build")
@unittest.skipIf(not VALGRIND, "valgrind is not installed")
class Memcheck(unittest.TestCase):

    def test_end_to_end_job_under_memcheck(self):
        cluster = Cluster("valgrind")
        log_dir = os.path.join(cluster.dir, "valgrind")
        os.makedirs(log_dir)
        cluster.wrapper = [VALGRIND, "--tool=memcheck", "--leak-check=full",
                           "--errors-for-leak-kinds=definite", "--error-exitcode=99",
                           "--log-file=%s/{name}.%%p.log" % log_dir]
        try:
            cluster.start_broker()
            for _ in range(2):
                cluster.start_worker()
            cluster.wait_workers(2, timeout=60)
            result = cluster.run_controller("--job-id", "memcheck", "--rounds", "3",
                                            "--levels", "10,200,3000", timeout=300)
            self.assertEqual(result.returncode, 0, result.err)
            self.assertEqual(cluster.summary("memcheck")["status"], "completed")
        finally:
            cluster.close(keep=True)
        logs = glob.glob(os.path.join(log_dir, "*.log"))
        self.assertEqual(len(logs), 4, logs)  # broker, 2 workers, controller
        for path in logs:
            with open(path) as handle:
                text = handle.read()
            summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
            self.assertIsNotNone(summary, path)
            self.assertEqual(summary.group(1), "0", "%s:\n%s" % (path, text[-4000:]))
            lost = re.search(r"definitely lost: ([\d,]+) bytes", text)
            if lost:  # absent when nothing at all leaked
                self.assertEqual(lost.group(1), "0", "%s:\n%s" % (path, text[-4000:]))
        shutil.rmtree(cluster.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
