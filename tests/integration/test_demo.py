"""scripts/run_local.sh, the demo a newcomer runs first: it must work, show
the pyramids and the table, and leave no process behind (also on Ctrl-C)."""

import os
import re
import signal
import subprocess
import time
import unittest

from zfedtest import SOURCE_DIR, main, wait_for

SCRIPT = os.path.join(SOURCE_DIR, "scripts", "run_local.sh")


def leftovers(endpoint):
    """zfed processes still attached to the demo's broker endpoint."""
    found = subprocess.run(["pgrep", "-f", "zfed-.*%s" % re.escape(endpoint)],
                           capture_output=True, text=True)
    return found.stdout.split()


class Demo(unittest.TestCase):

    def run_demo(self, *args, workers="3", timeout=240):
        env = dict(os.environ, WORKERS=workers)
        return subprocess.run([SCRIPT, "--workdir", self.workdir] + list(args),
                              capture_output=True, text=True, timeout=timeout, env=env)

    def setUp(self):
        self.workdir = "/tmp/zfed-demo-test-%d" % os.getpid()

    def tearDown(self):
        subprocess.run(["rm", "-rf", self.workdir])

    def endpoint(self, stderr):
        match = re.search(r"broker on (tcp://\S+),", stderr)
        self.assertIsNotNone(match, stderr)
        return match.group(1)

    def test_demo_runs_and_cleans_up(self):
        result = self.run_demo("--rounds", "2", "--job-id", "demo")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("0 1 1 2 3 5 8 13 21 34", result.stdout)   # a pyramid's last row
        self.assertIn("fibonacci_level 10: sum 88", result.stdout)
        self.assertIn("round 1 (2/2): 3/3 results", result.stdout)
        self.assertIn("best round: 0", result.stdout)
        self.assertTrue(os.path.exists(os.path.join(self.workdir, "demo", "summary.json")))
        self.assertEqual(leftovers(self.endpoint(result.stderr)), [])

    def test_demo_with_curve(self):
        result = self.run_demo("--curve", "--rounds", "1", "--job-id", "secure")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("CURVE on", result.stderr)
        self.assertIn("round 0 (1/1): 3/3 results", result.stdout)
        self.assertEqual(leftovers(self.endpoint(result.stderr)), [])

    def test_ctrl_c_stops_everything(self):
        env = dict(os.environ, WORKERS="2")
        demo = subprocess.Popen([SCRIPT, "--workdir", self.workdir, "--job-id", "long",
                                 "--rounds", "100000", "--level", "50000"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, env=env)
        rounds = os.path.join(self.workdir, "long", "rounds")
        wait_for(lambda: os.path.isdir(rounds) and len(os.listdir(rounds)) >= 1, 120,
                 what="the demo's first round")
        os.killpg(demo.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, stderr = demo.communicate(timeout=20)
        self.assertEqual(demo.returncode, 130, stderr)
        endpoint = self.endpoint(stderr)
        time.sleep(0.2)
        self.assertEqual(leftovers(endpoint), [])


if __name__ == "__main__":
    main()
