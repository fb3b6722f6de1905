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
import sys
import tempfile
import unittest

import numpy as np

from zfedtest import BUILD_DIR, PYTHON, PYTHON_PACKAGE_DIR, SOURCE_DIR, Cluster, binary, main

sys.path.insert(0, PYTHON_PACKAGE_DIR)
import zfed  # noqa: E402
from zfed import client as zc  # noqa: E402

EXAMPLE = os.path.join(SOURCE_DIR, "examples", "torch")
RUN = os.path.join(EXAMPLE, "run.py")
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


class TorchSite(unittest.TestCase):
    """The example's service alone, against schemas/SERVICES.md 2: what a
    site answers, and its errors naming the field."""

    def test_answers_and_errors(self):
        with Cluster("torch-site") as cluster:
            shards = os.path.join(cluster.dir, "shards")
            split = subprocess.run([binary("zfed-split"), "--sites", "site-1", "--samples",
                                    "100", "-q", shards], capture_output=True, text=True)
            self.assertEqual(split.returncode, 0, split.stderr)
            cluster.start_broker()
            env = dict(os.environ, FMNIST_SHARDS=shards, OMP_NUM_THREADS="1")
            for site in ("site-1", "site-9"):  # site-9 has no shard
                cluster.start(site, [PYTHON, "-m", "zfed.worker", "fmnist_site:train",
                                     "--connect", cluster.endpoint, "--site", site],
                              env=dict(env, PYTHONPATH=os.pathsep.join([PYTHON_PACKAGE_DIR,
                                                                        EXAMPLE])))
                cluster.wait_workers(1, service="mlp@" + site, timeout=60)
            rng = np.random.default_rng(0)
            model = {name: (rng.normal(size=shape) * 0.05).astype(np.float32) for name, shape in (
                ("fc1.weight", (16, 784)), ("fc1.bias", (16,)), ("fc2.weight", (10, 16)),
                ("fc2.bias", (10,)))}
            params = {"hidden": [16], "lr": 0.05, "batch_size": 32, "local_epochs": 1,
                      "momentum": 0.5, "weight_decay": 0.0, "seed": 3}
            with zfed.Client(cluster.endpoint, timeout=60) as client:
                good = client.call("mlp@site-1", zc.task("t", 0, 0, dict(params, site="site-1")),
                                   model=model)
                self.assertIsNotNone(good.result, good.message)
                outputs = good.result.outputs
                self.assertEqual(set(outputs), {"model", "samples", "data_sha256",
                                                "train_loss", "train_accuracy"})
                self.assertEqual(outputs["samples"], 100)
                # torch's digest of its shard is the one zfed-split recorded.
                with open(os.path.join(shards, "split.json")) as handle:
                    entry = json.load(handle)["sites"][0]
                self.assertEqual((outputs["data_sha256"], outputs["samples"]),
                                 (entry["sha256"], entry["count"]))
                self.assertIsInstance(outputs["train_loss"], float)
                self.assertTrue(0 <= outputs["train_accuracy"] <= 1)
                self.assertEqual(list(good.model), list(model))
                self.assertFalse(np.array_equal(good.model["fc1.weight"], model["fc1.weight"]))
                # The same task again (another attempt): the same model.
                again = client.call("mlp@site-1", zc.task("t", 0, 0, params, attempt=1),
                                    model=model)
                self.assertEqual(zfed.models.sha256(zfed.models.model_data(again.model)),
                                 zfed.models.sha256(zfed.models.model_data(good.model)))
                cases = [("mlp@site-1", dict(params, hidden=[17]), 422, "global"),
                         ("mlp@site-1", dict(params, site="site-2"), 422, "site"),
                         ("mlp@site-1", dict(params, lr=1e30), 422, "lr"),
                         ("mlp@site-9", params, 500, "data")]
                for number, (service, bad, code, field) in enumerate(cases, 1):
                    error = client.call(service, zc.task("t", 0, number, bad), model=model).error
                    self.assertIsNotNone(error, bad)
                    self.assertEqual((error.code, error.field), (code, field), error.message)


if __name__ == "__main__":
    main()
