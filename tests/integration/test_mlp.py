"""zfed's C trainer checked from outside C: the parameters it writes, loaded
in numpy by the layout it states (torch's nn.Linear names and shapes), give
the test logits and accuracy it reports; its SGD steps with momentum and
weight decay are torch.optim.SGD's; bad options are refused naming the
field.  Runs bench/zfed-bench-mlp on Debian's Fashion-MNIST."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

from zfedtest import SOURCE_DIR, binary, main, sanitizer_report

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


if __name__ == "__main__":
    main()
