"""examples/torch, run small: two sites of 500 Fashion-MNIST training
images each (zfed-split shards), each a zfed-py-worker training the 2NN in
PyTorch (one torch thread; two local epochs of batches of 10 at lr 0.1 a
round), the C controller aggregating three rounds and
scoring each round's model on the 10,000 test images; the best model,
loaded back into a torch nn.Module, scores well above chance, and exactly
what the controller reported."""

import json
import os
import subprocess
import tempfile
import unittest

from zfedtest import BUILD_DIR, PYTHON, SOURCE_DIR, binary, main

RUN = os.path.join(SOURCE_DIR, "examples", "torch", "run.py")
DATA = "/usr/share/datasets/fashion-mnist"


def controller_has_sites():
    shown = subprocess.run([binary("zfed-controller"), "--help"], capture_output=True, text=True)
    return "--eval-data" in shown.stdout and "--split" in shown.stdout


class TorchExample(unittest.TestCase):

    @unittest.skipUnless(controller_has_sites(), "zfed-controller has no --split/--eval-data yet")
    def test_two_sites_three_rounds(self):
        with tempfile.TemporaryDirectory(prefix="zfed-torch-test-") as work:
            out = os.path.join(work, "outcome.json")
            run = subprocess.run([PYTHON, RUN, "--build", BUILD_DIR, "--data", DATA,
                                  "--sites", "2", "--samples", "1000", "--rounds", "3",
                                  "--lr", "0.1", "--batch-size", "10", "--local-epochs", "2",
                                  "--torch-threads", "1",
                                  "--workdir", work, "--json", out],
                                 capture_output=True, text=True, timeout=240)
            logs = run.stdout + run.stderr
            for name in sorted(os.listdir(os.path.join(work, "logs"))) if run.returncode else []:
                with open(os.path.join(work, "logs", name)) as handle:
                    logs += "\n== %s\n%s" % (name, handle.read()[-2000:])
            self.assertEqual(run.returncode, 0, logs)
            with open(out) as handle:
                outcome = json.load(handle)
            self.assertEqual(outcome["test_images"], 10000)
            self.assertGreater(outcome["torch_accuracy"], 0.6, outcome)  # chance: 0.1
            self.assertEqual(outcome["torch_accuracy"], outcome["controller_accuracy"])
            self.assertIn(outcome["best_round"], (0, 1, 2))
            folder = outcome["job_dir"]
            for number in range(3):
                with open(os.path.join(folder, "rounds", "round-%06d.json" % number)) as handle:
                    record = json.load(handle)
                self.assertEqual(record["answered"], 2)
                # Each site's task reached that site's torch worker.
                self.assertEqual(sorted((r["site"], r["worker"]) for r in record["results"]),
                                 [("site-1", "torch-site-1"), ("site-2", "torch-site-2")])
                self.assertEqual([r["samples"] for r in record["results"]], [500, 500])


if __name__ == "__main__":
    main()
