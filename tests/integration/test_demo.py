"""scripts/run_local.sh, the demo a newcomer runs first: it must work, show
the pyramids and the table, and leave nothing behind: no process (also on
Ctrl-C), no run folder once it succeeded.

The demo runs the programs of the build under test (ZFED_BUILD_DIR, which
ctest sets), so it never rebuilds a tree other tests are using.  Its
processes are found by their process group, never by a pattern over
command lines: under ctest -j other tests' programs may use the very
port the demo's broker had, and a pattern would count them."""

import json
import os
import re
import shutil
import signal
import subprocess
import unittest

from zfedtest import BUILD_DIR, SOURCE_DIR, main, wait_for

SCRIPT = os.path.join(SOURCE_DIR, "scripts", "run_local.sh")


def group_members(pgid):
    """Processes still in the demo's process group."""
    found = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
    return found.stdout.split()


class Demo(unittest.TestCase):

    def start_demo(self, *args, workers="3", env=None):
        env = dict(os.environ, WORKERS=workers, ZFED_BUILD_DIR=BUILD_DIR, **(env or {}))
        env.pop("ZFED_KEEP", None)
        # Its own session and process group, as a terminal would give it.
        return subprocess.Popen([SCRIPT, "--workdir", self.workdir] + list(args),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, env=env)

    def run_demo(self, *args, workers="3", timeout=240, env=None):
        demo = self.start_demo(*args, workers=workers, env=env)
        demo.out, demo.err = demo.communicate(timeout=timeout)
        return demo

    def setUp(self):
        self.workdir = "/tmp/zfed-demo-test-%d" % os.getpid()

    def tearDown(self):
        subprocess.run(["rm", "-rf", self.workdir])

    def run_folder(self, stderr):
        match = re.search(r"\(logs in (/tmp/zfed-demo\.\w+)\)", stderr)
        self.assertIsNotNone(match, stderr)
        return match.group(1)

    def assert_nothing_left(self, demo):
        wait_for(lambda: group_members(demo.pid) == [], 10, what="the demo's processes to end")
        self.assertFalse(os.path.exists(self.run_folder(demo.err)), demo.err)

    def test_demo_runs_and_cleans_up(self):
        demo = self.run_demo("--rounds", "2", "--job-id", "demo")
        self.assertEqual(demo.returncode, 0, demo.err)
        self.assertIn("0 1 1 2 3 5 8 13 21 34", demo.out)   # a pyramid's last row
        self.assertIn("fibonacci_level 10: sum 88", demo.out)
        self.assertIn("round 1 (2/2): 3/3 results", demo.out)
        self.assertIn("best round: 0", demo.out)
        self.assertTrue(os.path.exists(os.path.join(self.workdir, "demo", "summary.json")))
        self.assert_nothing_left(demo)

    def test_demo_with_curve(self):
        demo = self.run_demo("--curve", "--rounds", "1", "--job-id", "secure")
        self.assertEqual(demo.returncode, 0, demo.err)
        self.assertIn("CURVE on", demo.err)
        self.assertIn("round 0 (1/1): 3/3 results", demo.out)
        self.assert_nothing_left(demo)

    def test_a_failed_demo_keeps_its_logs(self):
        demo = self.run_demo("--rounds", "0")
        self.assertEqual(demo.returncode, 2, demo.err)
        folder = self.run_folder(demo.err)
        self.assertIn("run_local.sh: logs of the broker and workers are in " + folder, demo.err)
        self.assertTrue(os.path.isdir(folder))
        subprocess.run(["rm", "-rf", folder])

    def test_federated_demo(self):
        env = {"ZFED_FL_DATA": os.path.join(self.workdir, "fl-data"), "FL_SAMPLES": "1500"}
        demo = self.run_demo("--fl", "--rounds", "2", "--job-id", "fl", workers="3", env=env)
        self.assertEqual(demo.returncode, 0, demo.err)
        lines = re.findall(r"^round (\d) \(\d/2\): 3/3 results .*test accuracy ([0-9.]+), "
                           r"loss ([0-9.]+)", demo.out, re.M)
        self.assertEqual([line[0] for line in lines], ["0", "1"], demo.out)
        self.assertIn("best round: ", demo.out)
        folder = os.path.join(self.workdir, "fl")
        with open(os.path.join(folder, "summary.json")) as handle:
            summary = json.load(handle)
        self.assertEqual(summary["select"], "test_accuracy:max")
        self.assertEqual([round(r["test_accuracy"], 4) for r in summary["rounds"]],
                         [float(line[1]) for line in lines])
        for name in ("best_model.safetensors", "split.json"):
            self.assertTrue(os.path.exists(os.path.join(folder, name)), name)
        if shutil.which("gnuplot"):
            with open(os.path.join(folder, "accuracy.png"), "rb") as handle:
                self.assertEqual(handle.read(8), b"\x89PNG\r\n\x1a\n")
        self.assert_nothing_left(demo)

    def test_help_starts_nothing(self):
        result = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, timeout=30,
                                env=dict(os.environ, ZFED_BUILD_DIR=BUILD_DIR))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("scripts/run_local.sh --curve", result.stdout)
        self.assertIn("zfed-controller's options", result.stdout)
        self.assertIn("--round-timeout S", result.stdout)
        self.assertNotIn("broker on", result.stderr)
        self.assertNotIn("Usage: zfed-controller", result.stdout)

    def test_ctrl_c_stops_everything(self):
        demo = self.start_demo("--job-id", "long", "--rounds", "100000", "--level", "50000",
                               workers="2")
        rounds = os.path.join(self.workdir, "long", "rounds")
        wait_for(lambda: os.path.isdir(rounds) and len(os.listdir(rounds)) >= 1, 120,
                 what="the demo's first round")
        os.killpg(demo.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        demo.out, demo.err = demo.communicate(timeout=60)
        self.assertEqual(demo.returncode, 130, demo.err)
        self.assert_nothing_left(demo)


if __name__ == "__main__":
    main()
