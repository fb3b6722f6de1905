"""zfed's C trainer checked from outside C: the parameters it writes, loaded
in numpy by the layout it states (torch's nn.Linear names and shapes), give
the test logits and accuracy it reports; its SGD steps with momentum and
weight decay are torch.optim.SGD's; bad options are refused naming the
field.  Runs bench/zfed-bench-mlp on Debian's Fashion-MNIST.

Federated: the mlp service on C workers of two sites (zfed-split shards of
1,000 images each) driven by the C controller: each site's task reaches
that site's workers only, a site without workers counts against the
quorum, and bad job files (exit 2) and bad tasks (422) name the field."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

from zfedtest import (PYTHON_PACKAGE_DIR, SOURCE_DIR, Cluster, binary, main, sanitizer_report,
                      wait_for)

sys.path.insert(0, PYTHON_PACKAGE_DIR)
import zfed  # noqa: E402
from zfed import client as zc  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE_DIR, "bench"))
import mlp_data  # noqa: E402

FASHION = mlp_data.DEBIAN_FASHION_MNIST


def trainer(*args):
    result = subprocess.run([binary("bench/zfed-bench-mlp")] + list(args), capture_output=True,
                            text=True, timeout=240)
    report = sanitizer_report(result.stderr)
    if report:
        raise AssertionError(report)
    return result


class Mlp(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="zfed-test-mlp-")
        cls.train = mlp_data.load_set(FASHION, "train")
        cls.test = mlp_data.load_set(FASHION, "t10k")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def test_layout_is_torch_state_dict(self):
        result = trainer("--layout", "--hidden", "200,100")
        self.assertEqual(result.returncode, 0, result.stderr)
        layout = json.loads(result.stdout)
        self.assertEqual([(t["name"], t["shape"]) for t in layout],
                         [("fc1.weight", [200, 784]), ("fc1.bias", [200]),
                          ("fc2.weight", [100, 200]), ("fc2.bias", [100]),
                          ("fc3.weight", [10, 100]), ("fc3.bias", [10])])
        offset = 0
        for tensor in layout:
            self.assertEqual(tensor["offset"], offset)
            self.assertEqual(tensor["count"], int(np.prod(tensor["shape"])))
            offset += tensor["count"]

    def test_numpy_computes_the_same_logits_and_accuracy(self):
        params, logits = self.path("params.f32"), self.path("logits.f32")
        result = trainer("--limit", "1000", "--epochs", "3", "--seed", "5", "--init-seed", "6",
                         "--save", params, "--logits", logits)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        self.assertEqual([line["epoch"] for line in lines], [1, 2, 3])
        reported = lines[-1]
        layers = mlp_data.split_params(np.fromfile(params, dtype="<f4"), [200, 200])
        ours = mlp_data.forward(layers, self.test[0])
        theirs = np.fromfile(logits, dtype="<f4").reshape(-1, 10)
        self.assertEqual(theirs.shape, (10000, 10))
        np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4)
        accuracy = float((ours.argmax(axis=1) == self.test[1]).mean())
        self.assertAlmostEqual(accuracy, reported["test_accuracy"], delta=2e-4)
        # And the loss: softmax cross-entropy in float64 from numpy's logits.
        shifted = ours.astype(np.float64) - ours.max(axis=1, keepdims=True)
        loss = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(10000), self.test[1]]
        self.assertAlmostEqual(float(loss.mean()), reported["test_loss"], delta=1e-4)
        self.assertGreater(accuracy, 0.5)

    def run_torch_steps(self, start, count, lr, momentum, weight_decay, steps):
        """steps full-batch torch.optim.SGD steps from start; (params, loss of
        the last step)."""
        import torch
        torch.set_num_threads(1)
        layers = mlp_data.split_params(start.copy(), [32, 16])
        modules = [torch.nn.Linear(w.shape[1], w.shape[0]) for w, _ in layers]
        with torch.no_grad():
            for module, (weight, bias) in zip(modules, layers):
                module.weight.copy_(torch.from_numpy(weight))
                module.bias.copy_(torch.from_numpy(bias))
        model = torch.nn.Sequential(modules[0], torch.nn.ReLU(), modules[1], torch.nn.ReLU(),
                                    modules[2])
        optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                                    weight_decay=weight_decay)
        x = torch.from_numpy(self.train[0][:count].astype(np.float32) / 255)
        y = torch.from_numpy(self.train[1][:count].astype(np.int64))
        for _ in range(steps):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimiser.step()
        flat = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
        return flat, float(loss)

    def test_sgd_steps_are_torch_optim_sgd(self):
        sizes = mlp_data.layer_sizes([32, 16])
        total = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        start = np.random.default_rng(1).uniform(-0.1, 0.1, total).astype("<f4")
        start_path = self.path("start.f32")
        start.tofile(start_path)
        count = 64
        for momentum, weight_decay in ((0, 0), (0.9, 0), (0, 0.01), (0.9, 0.01)):
            with self.subTest(momentum=momentum, weight_decay=weight_decay):
                out = self.path("trained.f32")
                # One batch of all samples: the shuffle cannot change a step.
                result = trainer("--hidden", "32,16", "--limit", str(count), "--batch-size",
                                 str(count), "--epochs", "4", "--one-call", "--lr", "0.1",
                                 "--momentum", str(momentum), "--weight-decay",
                                 str(weight_decay), "--load", start_path, "--save", out,
                                 "--test", "none")
                self.assertEqual(result.returncode, 0, result.stderr)
                ours = np.fromfile(out, dtype="<f4")
                theirs, loss = self.run_torch_steps(start, count, 0.1, momentum, weight_decay, 4)
                np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-5)
                self.assertAlmostEqual(json.loads(result.stdout)["train_loss"], loss, delta=1e-5)

    def test_bad_options_name_the_field(self):
        cases = [(["--hidden", "0"], "hidden: layer 1 has 0 units"),
                 (["--hidden", "200,5000"], "hidden: layer 2 has 5000 units"),
                 (["--hidden", "1,2,3,4,5,6,7,8,9"], "hidden: more than 8 hidden layers"),
                 (["--lr", "0"], "lr: 0, expected a finite number above 0"),
                 (["--batch-size", "0"], "--batch-size: expected an integer from 1 to 65536"),
                 (["--momentum", "1"], "momentum: 1, expected at least 0 and below 1"),
                 (["--weight-decay", "-1"], "--weight-decay: expected a number"),
                 (["--epochs", "1001"], "--epochs: expected an integer from 1 to 1000")]
        for args, message in cases:
            result = trainer(*args)
            self.assertEqual(result.returncode, 2, (args, result.stderr))
            self.assertIn(message, result.stderr, args)
        wrong = self.path("wrong.f32")
        np.zeros(10, dtype="<f4").tofile(wrong)
        result = trainer("--load", wrong, "--test", "none", "--limit", "10")
        self.assertEqual(result.returncode, 1)
        self.assertIn("expected 796840 bytes of float32 parameters", result.stderr)


SITES = ("alpha", "beta")
SITE_SAMPLES = 1000


def split_shards(out, sites=SITES, samples=SITE_SAMPLES, method="iid"):
    """zfed-split shards of samples images per site into out."""
    result = subprocess.run([binary("zfed-split"), "--sites", ",".join(sites), "--samples",
                             str(samples * len(sites)), "--method", method, "--seed", "1", out],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError("zfed-split: " + result.stderr)
    return os.path.join(out, "split.json")


def load_safetensors(path):
    """[(name, array)] of a safetensors file in data order, with numpy only."""
    with open(path, "rb") as handle:
        blob = handle.read()
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + length])
    header.pop("__metadata__", None)
    data = blob[8 + length:]
    dtypes = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4"}
    tensors = []
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=dtypes[entry["dtype"]])
        tensors.append((name, array.reshape(entry["shape"])))
    return tensors


class Federated(unittest.TestCase):
    """Sites: two of them, two C workers for alpha and one for beta."""

    @classmethod
    def setUpClass(cls):
        cluster = cls.cluster = Cluster("mlp-sites")
        cls.split = split_shards(os.path.join(cluster.dir, "shards"))
        cluster.start_broker()
        cls.workers = {}
        for site, count in (("alpha", 2), ("beta", 1)):
            for number in range(count):
                name = "%s-w%d" % (site, number)
                cluster.start_worker("--service", "mlp", "--site", site, "--data",
                                     os.path.join(cluster.dir, "shards", site), name=name)
                cls.workers[name] = site
        cluster.wait_workers(2, service="mlp@alpha", timeout=30)
        cluster.wait_workers(1, service="mlp@beta", timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def run_job(self, job_id, *args, timeout=120):
        result = self.cluster.run_controller("--service", "mlp", "--job-id", job_id,
                                             "--no-progress", *args, timeout=timeout)
        return result

    def rounds(self, job_id):
        folder = os.path.join(self.cluster.workdir, job_id, "rounds")
        return [self.cluster.read_json(job_id, os.path.join("rounds", name))
                for name in sorted(os.listdir(folder))]

    def test_each_site_task_reaches_its_site_only_and_the_model_learns(self):
        result = self.run_job("routed", "--split", self.split, "--rounds", "3", "--seed", "4",
                              "--eval-data", FASHION, "--select", "test_accuracy:max")
        self.assertEqual(result.returncode, 0, result.err)
        summary = self.cluster.summary("routed")
        accuracies = [r["test_accuracy"] for r in summary["rounds"]]
        self.assertEqual([r["test_samples"] for r in summary["rounds"]], [10000] * 3)
        # Ten classes: chance is 0.1.  2,000 images and 3 epochs reach ~0.7.
        self.assertGreater(max(accuracies), 0.5, accuracies)
        self.assertEqual(summary["best"]["metric"], "test_accuracy")
        best = summary["best_round"]
        self.assertEqual(accuracies[best], max(accuracies))
        self.assertEqual(accuracies.index(max(accuracies)), best)
        # best_model.safetensors, read and run by numpy alone.
        layers = load_safetensors(os.path.join(self.cluster.workdir, "routed",
                                               "best_model.safetensors"))
        self.assertEqual([(name, array.shape) for name, array in layers],
                         [("fc1.weight", (200, 784)), ("fc1.bias", (200,)),
                          ("fc2.weight", (200, 200)), ("fc2.bias", (200,)),
                          ("fc3.weight", (10, 200)), ("fc3.bias", (10,))])
        images, labels = mlp_data.load_set(FASHION, "t10k")
        x = images.astype(np.float32) / np.float32(255)
        for number in range(0, len(layers), 2):
            x = x @ layers[number][1].T + layers[number + 1][1]
            if number + 2 < len(layers):
                x = np.maximum(x, 0)
        accuracy = float((x.argmax(axis=1) == labels).mean())
        # float32 sums in another order may flip an image or two.
        self.assertAlmostEqual(accuracy, summary["rounds"][best]["test_accuracy"], delta=3e-4)
        shifted = x.astype(np.float64) - x.max(axis=1, keepdims=True)
        loss = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(labels)), labels]
        self.assertAlmostEqual(float(loss.mean()), summary["rounds"][best]["test_loss"],
                               delta=1e-4)
        record = self.rounds("routed")[best]
        self.assertEqual(record["test_accuracy"], accuracies[best])
        self.assertGreater(record["eval_us"], 0)
        job = self.cluster.read_json("routed", "job.json")
        self.assertEqual(job["sites"], list(SITES))
        self.assertEqual(job["tasks"], 2)
        with open(self.split) as handle:
            self.assertEqual(self.cluster.read_json("routed", "split.json"), json.load(handle))
        seen = set()
        for record in self.rounds("routed"):
            self.assertEqual((record["errors"], record["invalid"]), (0, 0), record["error_list"])
            self.assertEqual(len(record["results"]), 2)
            for entry in record["results"]:
                site = SITES[entry["task"]]
                self.assertEqual(entry["site"], site)
                self.assertEqual(self.workers[entry["worker"]], site, entry)
                self.assertEqual(entry["samples"], SITE_SAMPLES)
                seen.add(entry["worker"])
        self.assertTrue(seen <= set(self.workers))
        # Every task a worker computed was its own site's (worker logs).
        for process in self.cluster.processes:
            if process.name in self.workers:
                self.assertNotIn("the task is for site", process.log())

    def evaluation(self, job_id):
        """Per round: its figures and its model's digest, as records say."""
        return [(r["round"], r["test_accuracy"], r["test_loss"], r["test_samples"],
                 r["aggregate"]["sha256"]) for r in self.rounds(job_id)]

    def test_pipelined_evaluation_equals_inline(self):
        # Default: round r's model is scored while round r + 1 trains.
        args = ("--split", self.split, "--rounds", "3", "--seed", "4", "--eval-data", FASHION,
                "--select", "test_accuracy:max", "--keep-models", "best")
        result = self.run_job("piped", *args)
        self.assertEqual(result.returncode, 0, result.err)
        result = self.run_job("inline", "--eval-inline", *args)
        self.assertEqual(result.returncode, 0, result.err)
        piped, inline = self.evaluation("piped"), self.evaluation("inline")
        self.assertEqual([entry[0] for entry in piped], [0, 1, 2])
        self.assertEqual(piped, inline)  # exact: the same floats
        for job_id in ("piped", "inline"):
            for record in self.rounds(job_id):
                self.assertNotIn("eval", record)  # no round left pending
                self.assertGreater(record["eval_us"], 0)
        summaries = [self.cluster.summary(job_id) for job_id in ("piped", "inline")]
        self.assertEqual([[(r["test_accuracy"], r["test_loss"]) for r in s["rounds"]]
                          for s in summaries], [[e[1:3] for e in inline]] * 2)
        self.assertEqual(summaries[0]["best"], summaries[1]["best"])
        best = [e[1] for e in inline].index(max(e[1] for e in inline))
        self.assertEqual(summaries[0]["best_round"], best)
        files = []
        for job_id in ("piped", "inline"):
            with open(os.path.join(self.cluster.workdir, job_id, "best_model.safetensors"),
                      "rb") as handle:
                files.append(handle.read())
            # keep_models best: the best round's file is the only one left.
            self.assertEqual(os.listdir(os.path.join(self.cluster.workdir, job_id, "models")),
                             ["round-%06d.safetensors" % best])
        self.assertEqual(files[0], files[1])
        # Only the last record can wait for its evaluation: a pending one
        # followed by another is refused, never half-trusted.
        copy = os.path.join(self.cluster.workdir, "pending-first")
        shutil.copytree(os.path.join(self.cluster.workdir, "piped"), copy)
        for name, key, value in (("job.json", "job_id", "pending-first"),
                                 (os.path.join("rounds", "round-000000.json"), "eval", "pending")):
            with open(os.path.join(copy, name)) as handle:
                record = json.load(handle)
            record[key] = value
            with open(os.path.join(copy, name), "w") as handle:
                json.dump(record, handle)
        result = self.cluster.run_controller("--resume", "pending-first", "--no-progress")
        self.assertEqual(result.returncode, 1, result.err)
        self.assertIn("round 0's record waits for its evaluation, yet round 1's record follows it",
                      result.err)

    def test_resume_evaluates_a_round_recorded_before_its_evaluation(self):
        # gamma has no workers: each round waits out the grace period with
        # alpha's and beta's results in, so round r's record stays pending
        # for 1.5 s while round r + 1 runs.
        args = ("--sites", "alpha,beta,gamma", "--quorum", "2", "--grace", "1.5", "--rounds",
                "2", "--seed", "7", "--eval-data", FASHION, "--select", "test_accuracy:max")
        controller = self.cluster.start_controller("--service", "mlp", "--job-id", "killed",
                                                   "--no-progress", *args)
        record = os.path.join(self.cluster.workdir, "killed", "rounds", "round-000000.json")

        def pending():
            try:
                with open(record) as handle:
                    return json.load(handle).get("eval") == "pending"
            except (OSError, ValueError):
                return False
        wait_for(pending, timeout=60, interval=0.01, what="round 0 recorded, evaluation pending")
        controller.kill()
        with open(record) as handle:
            self.assertNotIn("test_accuracy", json.load(handle))
        result = self.cluster.run_controller("--resume", "killed", "--no-progress", timeout=120)
        self.assertEqual(result.returncode, 0, result.err)
        result = self.run_job("whole", *args)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(self.evaluation("killed"), self.evaluation("whole"))
        killed, whole = self.cluster.summary("killed"), self.cluster.summary("whole")
        self.assertEqual([r["test_accuracy"] for r in killed["rounds"]],
                         [r["test_accuracy"] for r in whole["rounds"]])
        self.assertEqual(killed["best"], whole["best"])

    def test_a_site_without_workers_counts_against_the_quorum(self):
        sites = "alpha,beta,gamma"
        result = self.run_job("no-gamma", "--sites", sites, "--quorum", "2", "--rounds", "1",
                              "--grace", "0.2", "--params", '{"hidden": [16]}')
        self.assertEqual(result.returncode, 0, result.err)
        record = self.rounds("no-gamma")[0]
        self.assertEqual(record["missing"], [2])
        self.assertEqual(sorted(e["site"] for e in record["results"]), ["alpha", "beta"])
        # All three needed: the round cannot close, however many of alpha
        # and beta made it by the deadline on a loaded machine (gamma never
        # can: no worker of another site gets its task).
        result = self.run_job("need-gamma", "--sites", sites, "--rounds", "1",
                              "--round-timeout", "1.5", "--params", '{"hidden": [16]}')
        self.assertEqual(result.returncode, 1, result.err)
        self.assertRegex(result.err, r"round 0: only [0-2] of 3 results by the 1\.5 s deadline "
                                     r"\(quorum 3\)")
        summary = self.cluster.summary("need-gamma")
        self.assertIn("of 3 results by the 1.5 s deadline", summary["error"])

    def test_bad_job_files_name_the_field(self):
        folder = os.path.join(self.cluster.dir, "jobs-bad")
        os.makedirs(folder, exist_ok=True)
        not_split = os.path.join(folder, "not-split.json")
        with open(not_split, "w") as handle:
            json.dump({"format": "something else"}, handle)
        cases = [
            ({"sites": ["a", "a"]}, "sites: entry 1: site a is listed twice"),
            ({"sites": ["a b"]}, "sites: entry 0: a site name is 1 to 64 characters"),
            ({"sites": []}, "sites: expected an array of 1 to 4096 site names"),
            ({"sites": ["a", "b"], "tasks": 3}, "tasks: 3 tasks for 2 sites"),
            ({"split": self.split, "sites": ["alpha", "delta"]},
             "sites: site delta is not one of"),
            ({"split": not_split}, "split: %s: not a split description" % not_split),
            ({"split": "missing.json"}, "split: "),
            ({"eval_data": "/nonexistent"}, "eval_data: /nonexistent: neither"),
            ({"sites": ["a"], "params": {"hidden": [0]}}, "hidden (round 0, task 0): layer 1"),
            ({"sites": ["a"], "params": {"lr": -1}}, "lr (round 0, task 0): -1, expected"),
            ({"sites": ["a"], "params": {"site": "a"}}, "site (round 0, task 0): unknown "
                                                        "parameter 'site'"),
            ({"sites": ["a"], "batch": 2}, "batch: a job with sites sends each task to its site"),
            ({"select": "test_accuracy:max"}, "select: test_accuracy needs eval_data"),
            ({"service": "tensoravg", "initial_model": "x", "eval_data": "/tmp"},
             "eval_data: service tensoravg evaluates no model"),
        ]
        for number, (settings, message) in enumerate(cases):
            with self.subTest(settings=settings):
                settings = dict({"service": "mlp"}, **settings)
                path = os.path.join(folder, "job-%d.json" % number)
                with open(path, "w") as handle:
                    json.dump(settings, handle)
                result = self.cluster.run_controller("--job", path, "--round-timeout", "0.5")
                self.assertEqual(result.returncode, 2, (settings, result.err))
                self.assertIn(message, result.err, settings)

    def test_bad_flags_name_the_field(self):
        cases = [(["--params", '{"lr": -1}'], "--params: lr (round 0, task 0): -1, expected"),
                 (["--params", "[1]"], "--params: expected an object"),
                 (["--sites", "a,,b"], "--sites: entry 1: a site name is"),
                 (["--eval-data", "/nonexistent"], "--eval-data: /nonexistent: neither"),
                 (["--select", "test_loss:min"], "--select: test_loss needs eval_data")]
        for args, message in cases:
            with self.subTest(args=args):
                result = self.cluster.run_controller("--service", "mlp", *args)
                self.assertEqual(result.returncode, 2, (args, result.err))
                self.assertIn(message, result.err, args)

    def test_bad_tasks_are_answered_422_naming_the_field(self):
        client = zfed.Client(self.cluster.endpoint, timeout=60)
        try:
            start = {name: np.zeros(shape, np.float32) for name, shape in (
                ("fc1.weight", (8, 784)), ("fc1.bias", (8,)), ("fc2.weight", (10, 8)),
                ("fc2.bias", (10,)))}
            cases = [({"hidden": [8], "site": "beta"}, "site", "serves site alpha"),
                     ({"hidden": [9], "site": "alpha"}, "global", "fc1.weight has shape [8, 784]"),
                     ({"hidden": [8], "lr": 0, "site": "alpha"}, "lr", "expected a finite"),
                     ({"hidden": [8], "batch_size": 0}, "batch_size", "from 1 to 65536"),
                     ({"hidden": [8], "momentum": 2}, "momentum", "below 1"),
                     ({"hidden": [8], "colour": 1}, "colour", "unknown parameter"),
                     # The work a task may ask for: each field bounded.
                     ({"hidden": [8], "local_epochs": 10 ** 6}, "local_epochs",
                      "from 1 to 1000"),
                     ({"hidden": [100000]}, "hidden", "layer 1 has 100000 units, expected 1 "
                                                      "to 4096")]
            for number, (params, field, text) in enumerate(cases):
                with self.subTest(params=params):
                    reply = client.call("mlp@alpha", zc.task("bad", 0, number, params),
                                        model=start)
                    self.assertIsNotNone(reply.error, params)
                    self.assertEqual((reply.error.code, reply.error.field), (422, field))
                    self.assertIn(text, reply.error.message)
            # Within every field's bound, but 1000 epochs of 1,863,690
            # weights on alpha's 1,000 samples is past the work one task
            # may ask for (10^12 weight-sample-epochs): 413 before training.
            sizes = [784, 1024, 1024, 10]
            wide = {}
            for layer in range(3):
                wide["fc%d.weight" % (layer + 1)] = np.zeros((sizes[layer + 1], sizes[layer]),
                                                             np.float32)
                wide["fc%d.bias" % (layer + 1)] = np.zeros(sizes[layer + 1], np.float32)
            reply = client.call("mlp@alpha", zc.task("long", 0, 0, {
                "hidden": [1024, 1024], "local_epochs": 1000, "site": "alpha"}), model=wide)
            self.assertIsNotNone(reply.error)
            self.assertEqual((reply.error.code, reply.error.field), (413, "local_epochs"))
            self.assertIn("1000 epochs of hidden [1024, 1024] (1863690 weights) on this site's "
                          "1000 samples", reply.error.message)
            self.assertIn("at most 536 epochs here", reply.error.message)
            good = client.call("mlp@alpha", zc.task("good", 0, 0, {"hidden": [8],
                                                                  "site": "alpha"}), model=start)
            self.assertIsNotNone(good.result, good.message)
            self.assertEqual(good.result.outputs["samples"], SITE_SAMPLES)
            self.assertEqual(set(good.result.outputs),
                             {"model", "samples", "data_sha256", "train_loss", "train_accuracy"})
        finally:
            client.close()


if __name__ == "__main__":
    main()
