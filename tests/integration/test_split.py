"""zfed-split on Debian's Fashion-MNIST: shards that add up, are disjoint and
cover the set, labels:2 sites that hold at most 2 classes, a split.json that
says what the files hold, the same bytes for the same seed, and usage errors
that name the flag.  The shards are read back with Python's gzip and numpy
(bench/mlp_data.py), not with zfed's reader, each once.  Only the IID split
covers the whole set; the others, whose assertions hold for any number of
samples, split a subset (--samples), which costs a fraction of the time."""

import hashlib
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
SHARD_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")


def split(out, *args):
    result = subprocess.run([binary("zfed-split")] + list(args) + [out], capture_output=True,
                            text=True, timeout=240)
    report = sanitizer_report(result.stderr)
    if report:
        raise AssertionError(report)
    return result


# A sample's key: a random linear form of its 98 pixel words and its
# label, mod 2^64 (odd weights): a multiset of samples is then a sorted
# array of keys and its counts, computed by numpy in milliseconds, where a
# Counter of 785-byte strings took most of a second per 60,000.
WEIGHTS = np.random.default_rng(11).integers(0, 2 ** 62, size=99, dtype=np.uint64) * 2 + 1


def sample_keys(images, labels):
    words = np.ascontiguousarray(images, np.uint8).view(np.uint64)
    with np.errstate(over="ignore"):
        return ((words * WEIGHTS[:98]).sum(axis=1, dtype=np.uint64) +
                labels.astype(np.uint64) * WEIGHTS[98])


def multiset(keys):
    """(distinct keys sorted, their counts): Fashion-MNIST repeats images."""
    return np.unique(keys, return_counts=True)


def samples_of(folder):
    return multiset(sample_keys(*mlp_data.load_set(folder)))


def file_bytes(folder):
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as handle:
                found[os.path.relpath(os.path.join(root, name), folder)] = handle.read()
    return found


class Split(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="zfed-test-split-")
        cls.source = samples_of(FASHION)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def out(self, name):
        return os.path.join(self.dir, name)

    def check_split(self, out, sites, total):
        """The shards against split.json and each other, each read once:
        (description, {site: labels}, the union's multiset)."""
        with open(os.path.join(out, "split.json")) as handle:
            description = json.load(handle)
        self.assertEqual([site["name"] for site in description["sites"]], sites)
        self.assertEqual(description["samples"], total)
        shards, keys = {}, []
        for site in description["sites"]:
            folder = os.path.join(out, site["folder"])
            self.assertEqual(sorted(os.listdir(folder)), sorted(SHARD_FILES))
            images, labels = mlp_data.load_set(folder)
            self.assertEqual(images.shape, (site["count"], 784))
            self.assertEqual(site["classes"], np.bincount(labels, minlength=10).tolist())
            self.assertEqual(site["sha256"],
                             hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest())
            shards[site["name"]] = labels
            keys.append(sample_keys(images, labels))
        self.assertEqual(sum(len(labels) for labels in shards.values()), total)
        # As multisets: nothing appears more often than in the source, and
        # the sizes add up, so the shards are disjoint parts of the set.
        union = multiset(np.concatenate(keys))
        source_keys, source_counts = self.source
        at = np.searchsorted(source_keys, union[0])
        self.assertTrue((at < len(source_keys)).all(), "a sample the set does not have")
        self.assertTrue((source_keys[at] == union[0]).all(), "a sample the set does not have")
        self.assertTrue((union[1] <= source_counts[at]).all(), "a sample in two shards")
        return description, shards, union

    def test_iid_covers_the_set_once(self):
        out = self.out("iid")
        result = split(out, "--sites", "5", "--method", "iid", "--seed", "1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(result.stdout.splitlines()), 5)
        description, shards, union = self.check_split(out, ["site-%d" % s for s in range(5)],
                                                      60000)
        self.assertEqual(int(self.source[1].sum()), 60000)
        # The union is the set, sample for sample.
        for mine, theirs in zip(union, self.source):
            self.assertTrue(np.array_equal(mine, theirs))
        for labels in shards.values():
            self.assertEqual(len(labels), 12000)
            self.assertEqual(len(set(labels.tolist())), 10)
        self.assertEqual(description["method"], "iid")
        self.assertEqual(description["seed"], 1)
        source = description["source"]
        self.assertEqual(source["count"], 60000)
        for kind in ("images", "labels"):
            with open(source[kind]["path"], "rb") as handle:
                data = handle.read()
            self.assertEqual(source[kind]["bytes"], len(data))
            self.assertEqual(source[kind]["sha256"], hashlib.sha256(data).hexdigest())

    def test_labels_2_gives_each_site_two_classes_and_the_seed_fixes_the_bytes(self):
        # The whole set: 10 shards of 6,000, each exactly one class (a
        # subset's classes are not multiples of a shard).
        full = self.out("labels-full")
        result = split(full, "--sites", "5", "--method", "labels:2", "--seed", "7")
        self.assertEqual(result.returncode, 0, result.stderr)
        _, shards, _ = self.check_split(full, ["site-%d" % s for s in range(5)], 60000)
        for labels in shards.values():
            self.assertLessEqual(len(set(labels.tolist())), 2)
        # The bytes follow the seed (any size shows it: 6,000 samples).
        first, second, other = self.out("labels-a"), self.out("labels-b"), self.out("labels-c")
        for out, seed in ((first, "7"), (second, "7"), (other, "8")):
            result = split(out, "--sites", "5", "--method", "labels:2", "--seed", seed,
                           "--samples", "6000")
            self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(file_bytes(first), file_bytes(second))
        self.assertNotEqual(file_bytes(first), file_bytes(other))
        # Ten sites: 20 shards of 3,000, still within one class each.
        ten = self.out("labels-ten")
        self.assertEqual(split(ten, "--sites", "10", "--method", "labels:2").returncode, 0)
        _, shards, _ = self.check_split(ten, ["site-%d" % s for s in range(10)], 60000)
        for labels in shards.values():
            self.assertLessEqual(len(set(labels.tolist())), 2)

    def test_dirichlet_skews_the_sites(self):
        out = self.out("dirichlet")
        result = split(out, "--sites", "north,south,east", "--method", "dirichlet:0.3",
                       "--seed", "3", "--samples", "12000")
        self.assertEqual(result.returncode, 0, result.stderr)
        description, _, _ = self.check_split(out, ["north", "south", "east"], 12000)
        self.assertEqual(description["method"], "dirichlet:0.3")
        # Per class, the split is uneven (Dirichlet(0.3) over 3 sites: a
        # class's largest share is above 60 % for most classes; iid gives
        # each about a third).
        histograms = [site["classes"] for site in description["sites"]]
        skewed = sum(max(column) > 0.6 * sum(column) for column in zip(*histograms))
        self.assertGreaterEqual(skewed, 3)

    def test_a_subset_and_a_shard_loads_like_the_dataset(self):
        out = self.out("subset")
        result = split(out, "--sites", "2", "--samples", "2000", "--seed", "4")
        self.assertEqual(result.returncode, 0, result.stderr)
        _, shards, _ = self.check_split(out, ["site-0", "site-1"], 2000)
        self.assertEqual([len(labels) for labels in shards.values()], [1000, 1000])
        trained = subprocess.run([binary("bench/zfed-bench-mlp"), "--train",
                                  os.path.join(out, "site-0"), "--test", "none"],
                                 capture_output=True, text=True, timeout=120)
        self.assertEqual(trained.returncode, 0, trained.stderr)
        self.assertEqual(json.loads(trained.stdout)["samples"], 1000)

    def test_bad_usage_names_the_flag(self):
        cases = [(["--method", "labels:0"], "--method: labels:K needs K from 1 to 100"),
                 (["--method", "dirichlet:0"], "--method: dirichlet:A needs A from"),
                 (["--method", "shards"], "--method: expected iid, labels:K or dirichlet:A"),
                 (["--sites", "0"], "--sites: expected 1 to 1000 sites, got '0'"),
                 (["--sites", "a,a"], "--sites: 'a' is named twice"),
                 (["--sites", "a,../b"], "--sites: name '../b'"),
                 (["--sites", "a,,b"], "--sites: name ''"),
                 (["--seed", "-1"], "--seed: expected an integer"),
                 (["--samples", "0"], "--samples: expected an integer"),
                 (["--bogus"], "unknown option '--bogus'")]
        for args, message in cases:
            result = split(self.out("bad"), *args)
            self.assertEqual(result.returncode, 2, (args, result.stderr))
            self.assertIn(message, result.stderr, args)
        missing = subprocess.run([binary("zfed-split")], capture_output=True, text=True)
        self.assertEqual(missing.returncode, 2)
        self.assertIn("OUT is missing", missing.stderr)
        too_many = split(self.out("bad"), "--samples", "70000")
        self.assertEqual(too_many.returncode, 1)
        self.assertIn("samples: 70000 asked for, the set has 60000", too_many.stderr)
        no_data = split(self.out("bad"), "--data", self.out("nowhere"))
        self.assertEqual(no_data.returncode, 1)
        self.assertIn("nowhere: neither", no_data.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.out("bad"), "split.json")))
        for flag in ("--help", "--version"):
            shown = subprocess.run([binary("zfed-split"), flag], capture_output=True, text=True)
            self.assertEqual(shown.returncode, 0)
            self.assertIn("zfed-split", shown.stdout)


if __name__ == "__main__":
    main()
