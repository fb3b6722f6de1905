"""bench/python_worker.py runs end to end on a small load: both workers
serve the controller's job, CPU per task and the ratio are printed, and the
model round trip comes back right (the C side when zfed-worker has
tensoravg, else a message saying it was skipped)."""

import json
import os
import subprocess
import tempfile
import unittest

from zfedtest import BUILD_DIR, PYTHON, SOURCE_DIR, main


class PythonWorkerBench(unittest.TestCase):

    def test_a_small_run(self):
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "figures.json")
            run = subprocess.run([PYTHON, os.path.join(SOURCE_DIR, "bench", "python_worker.py"),
                                  "--build", BUILD_DIR, "--tasks", "300", "--repeat", "1",
                                  "--model-mib", "8", "--model-repeat", "1", "--json", out],
                                 capture_output=True, text=True, timeout=240)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            with open(out) as handle:
                figures = json.load(handle)
        small = figures["small"]["controller"]
        for system in ("c", "python"):
            self.assertEqual(small[system]["tasks"], 300)
            self.assertGreater(small[system]["cpu_us_per_task"], 0)
        self.assertIn("ratio python/c", run.stdout)
        model = figures["model"]
        self.assertGreater(model["python"]["seconds"], 0)
        # The worker holds the global and its result, not a third copy (8 MiB
        # models: the interpreter's own noise is a fraction of one).
        self.assertLess(model["python"]["peak_over_idle_models"], 2.9)
        if "c" in model:
            self.assertIn("ratio", model)
        else:
            self.assertIn("C side is skipped", run.stdout)


if __name__ == "__main__":
    main()
