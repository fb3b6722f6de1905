"""Sites bound to their data (issue 11, the reviewer's findings).

A site's result says which data it was trained on (data_sha256, the
SHA-256 of the shard's pixels then labels) and how many samples weigh it;
zfed-split wrote both for every site into split.json, and the controller
holds each result of a job with a split against its site's entry
(schemas/SERVICES.md, "Sites bound to their data"):

- a hostile Majordomo peer of site beta that claims 10^9 samples (with
  beta's digest, which it read from the split) is refused, counted and
  named in the round record, and the job's model is byte for byte the
  model of the same job without it;
- real C workers started with another site's shard, or with a shard of
  another split, train and answer, and their results are refused naming
  the site whose shard it was, or saying it is no shard of the split.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import unittest

import numpy as np

from zfedtest import (PYTHON_PACKAGE_DIR, SOURCE_DIR, Cluster, HostileWorker, binary, figure,
                      main, wait_for)
from test_binding import records, result_body

sys.path.insert(0, PYTHON_PACKAGE_DIR)
from zfed import models as zm  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE_DIR, "bench"))
import mlp_data  # noqa: E402

SITES = ("alpha", "beta", "gamma", "delta", "epsilon")
SAMPLES = 300
PARAMS = '{"hidden": [16]}'
CLAIMED = 10 ** 9


def split(out, sites, seed):
    result = subprocess.run([binary("zfed-split"), "--sites", ",".join(sites), "--samples",
                             str(SAMPLES * len(sites)), "--seed", str(seed), "-q", out],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError("zfed-split: " + result.stderr)
    with open(os.path.join(out, "split.json")) as handle:
        return os.path.join(out, "split.json"), json.load(handle)


def claim_everything(digest):
    """A beta worker's answer: the global model back, weighed 10^9, with
    beta's own digest (the split is no secret) and plausible metrics."""
    def answer(task, frames):
        model = zm.decode_model(zm.check_descriptor(task[7][1]), frames[6])
        descriptor, data = zm.describe(model, digest=False)
        outputs = {"model": descriptor.elements(), "samples": CLAIMED, "data_sha256": digest,
                   "train_loss": 1.0, "train_accuracy": 0.5}
        return [result_body(task, "hostile", outputs), bytes(data)]
    return answer


class Sites(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cluster = cls.cluster = Cluster("sites")
        cls.split, cls.description = split(os.path.join(cluster.dir, "shards"), SITES, 1)
        cls.entries = {site["name"]: site for site in cls.description["sites"]}
        cls.other, _ = split(os.path.join(cluster.dir, "other"), ("elsewhere",), 2)
        # Each test starts the workers of its own sites: the broker hands
        # a site's request to its worker idle longest, so a test's order of
        # registration is its own.
        cls.seasons, _ = split(os.path.join(cluster.dir, "seasons"), ("north", "south"), 3)
        cluster.start_broker()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def worker(self, site, data, name):
        self.cluster.start_worker("--service", "mlp", "--site", site, "--data", data, name=name)

    def shard(self, site):
        return os.path.join(self.cluster.dir, "shards", site)

    def job(self, job_id, *args, **kwargs):
        return self.cluster.run_controller(
            "--service", "mlp", "--split", self.split, "--job-id", job_id, "--params", PARAMS,
            "--seed", "5", "--no-progress", *args, **kwargs)

    def test_split_json_gives_each_shards_digest_and_count(self):
        # Computed here from the shard files, with gzip and numpy alone.
        for site in SITES:
            images, labels = mlp_data.load_set(self.shard(site), "train")
            digest = hashlib.sha256(np.ascontiguousarray(images, np.uint8).tobytes() +
                                    np.ascontiguousarray(labels, np.uint8).tobytes())
            self.assertEqual(self.entries[site]["sha256"], digest.hexdigest(), site)
            self.assertEqual(self.entries[site]["count"], len(labels), site)
        self.assertEqual(len({e["sha256"] for e in self.entries.values()}), len(SITES))

    def test_a_site_claiming_more_samples_is_refused_and_the_aggregate_is_unchanged(self):
        cluster = self.cluster
        # The liar registers first: beta's first request is its.
        hostile = HostileWorker(cluster, claim_everything(self.entries["beta"]["sha256"]),
                                service=b"mlp@beta", frames=True)
        cluster.wait_workers(1, service="mlp@beta", timeout=30)
        self.worker("alpha", self.shard("alpha"), "alpha-w")
        self.worker("beta", self.shard("beta"), "beta-w")
        cluster.wait_workers(2, service="mlp@beta", timeout=30)
        cluster.wait_workers(1, service="mlp@alpha", timeout=30)
        common = ("--sites", "alpha,beta", "--rounds", "2", "--task-timeout", "2",
                  "--retries", "6", "--round-timeout", "120")
        try:
            attacked = self.job("attacked", *common, timeout=180)
        finally:
            hostile.close(disconnect=True)
        self.assertEqual(attacked.returncode, 0, attacked.err)
        self.assertGreaterEqual(hostile.replies, 1, "the liar was never sent a task")
        wait_for(lambda: cluster.status()["services"].get("mlp@beta", {}).get("workers") == 1,
                 30, what="the broker to forget the liar")
        honest = self.job("honest", *common, timeout=180)
        self.assertEqual(honest.returncode, 0, honest.err)
        kept = records(cluster, "attacked", 2)
        refused = [entry for record in kept for entry in record["refused"]]
        self.assertGreaterEqual(len(refused), 1)
        self.assertEqual(sum(record["invalid"] for record in kept), len(refused))
        for entry in refused:
            self.assertEqual((entry["task"], entry["worker"]), (1, "hostile"))
            self.assertIn("site beta: samples: %d claimed, the split gives the site %d"
                          % (CLAIMED, SAMPLES), entry["reason"])
        for record in kept:
            self.assertEqual(sorted((e["site"], e["worker"], e["samples"])
                                    for e in record["results"]),
                             [("alpha", "alpha-w", SAMPLES), ("beta", "beta-w", SAMPLES)])
        self.assertIn("result from hostile refused: site beta: samples: %d claimed" % CLAIMED,
                      attacked.err)
        # The aggregate: the same bytes as the job the liar never saw.
        for name in ("model.safetensors", "best_model.safetensors"):
            with open(os.path.join(cluster.workdir, "attacked", name), "rb") as a, \
                    open(os.path.join(cluster.workdir, "honest", name), "rb") as b:
                self.assertEqual(hashlib.sha256(a.read()).hexdigest(),
                                 hashlib.sha256(b.read()).hexdigest(), name)
        self.assertEqual(sum(record["invalid"] for record in records(cluster, "honest", 2)), 0)
        figure("claims of %d samples refused" % CLAIMED, len(refused))

    def test_a_worker_with_the_wrong_shard_is_refused_naming_whose_it_is(self):
        cluster = self.cluster
        # delta's worker holds gamma's shard; epsilon's a shard of another
        # split.  gamma's worker starts once both were refused, so the
        # round closes on its result (quorum 1, no grace) with both in it.
        self.worker("delta", self.shard("gamma"), "delta-w")
        self.worker("epsilon", os.path.join(cluster.dir, "other", "elsewhere"), "epsilon-w")
        cluster.wait_workers(1, service="mlp@delta", timeout=30)
        cluster.wait_workers(1, service="mlp@epsilon", timeout=30)
        controller = cluster.start_controller(
            "--service", "mlp", "--split", self.split, "--job-id", "wrong", "--params", PARAMS,
            "--sites", "gamma,delta,epsilon", "--quorum", "1", "--grace", "0", "--rounds", "1",
            "--task-timeout", "600", "--round-timeout", "600", "--no-progress", name="wrong")
        wait_for(lambda: "result from epsilon-w refused" in controller.log() and
                 "result from delta-w refused" in controller.log(), 120,
                 what="both wrong shards refused")
        self.worker("gamma", self.shard("gamma"), "gamma-w")
        wait_for(lambda: not controller.alive(), 120, what="the job to end")
        self.assertEqual(controller.stop(), 0, controller.log())
        log = controller.log()
        self.assertIn("result from delta-w refused: site delta: trained on site gamma's shard "
                      "(data_sha256 %s...), not its own (%s...): is the worker's --data the "
                      "shard of its --site?" % (self.entries["gamma"]["sha256"][:12],
                                                self.entries["delta"]["sha256"][:12]), log)
        self.assertIn("result from epsilon-w refused: site epsilon: trained on data that is no "
                      "shard of the split", log)
        record = records(cluster, "wrong", 1)[0]
        self.assertEqual([(e["site"], e["worker"]) for e in record["results"]],
                         [("gamma", "gamma-w")])
        self.assertEqual(sorted((e["task"], e["worker"]) for e in record["refused"]),
                         [(1, "delta-w"), (2, "epsilon-w")])
        self.assertEqual(record["invalid"], 2)
        # Each worker says at its start which data it holds.
        for process in cluster.processes:
            if process.name == "delta-w":
                self.assertIn("sha256 %s" % self.entries["gamma"]["sha256"], process.log())

    def test_a_resumed_job_holds_its_results_against_its_split_copy(self):
        cluster = self.cluster
        for site in ("north", "south"):
            self.worker(site, os.path.join(cluster.dir, "seasons", site), site + "-w")
            cluster.wait_workers(1, service="mlp@" + site, timeout=30)
        # The split the job names goes away after the start: the job
        # folder's copy is what a resumed job reads.
        gone = os.path.join(cluster.dir, "gone")
        os.makedirs(gone, exist_ok=True)
        shutil.copy(self.seasons, gone)
        controller = cluster.start_controller(
            "--service", "mlp", "--split", os.path.join(gone, "split.json"), "--job-id",
            "resumed", "--params", PARAMS, "--rounds", "40", "--no-progress", name="resumed")
        folder = os.path.join(cluster.workdir, "resumed")
        wait_for(lambda: os.path.exists(os.path.join(folder, "rounds", "round-000001.json")),
                 120, what="round 1")
        controller.signal(signal.SIGINT)
        wait_for(lambda: not controller.alive(), 60, what="the interrupted job to end")
        self.assertEqual(controller.stop(), 130, controller.log())
        shutil.rmtree(gone)
        # A copy without south's digest: the resumed job refuses it.
        copy = os.path.join(folder, "split.json")
        with open(copy) as handle:
            kept = json.load(handle)
        broken = json.loads(json.dumps(kept))
        del broken["sites"][1]["sha256"]
        with open(copy, "w") as handle:
            json.dump(broken, handle)
        result = cluster.run_controller("--resume", "resumed")
        self.assertEqual(result.returncode, 2, result.err)
        self.assertIn("split: %s: site south has no sha256" % copy, result.err)
        with open(copy, "w") as handle:
            json.dump(kept, handle)
        result = cluster.run_controller("--resume", "resumed", "--no-progress", timeout=240)
        self.assertEqual(result.returncode, 0, result.err)
        kept_records = records(cluster, "resumed", 40)
        self.assertEqual(sum(record["invalid"] for record in kept_records), 0)
        self.assertEqual({e["samples"] for r in kept_records for e in r["results"]}, {SAMPLES})

    def test_a_worker_given_its_split_refuses_the_wrong_shard_at_start(self):
        def start(site, data):
            return subprocess.run([binary("zfed-worker"), "--service", "mlp", "--site", site,
                                   "--data", data, "--split", self.split, "--connect",
                                   self.cluster.endpoint], capture_output=True, text=True,
                                  timeout=60)
        wrong = start("delta", self.shard("gamma"))
        self.assertEqual(wrong.returncode, 2, wrong.stderr)
        self.assertIn("zfed-worker: --split: the data (sha256 %s..., %d samples) is site gamma's "
                      "shard in %s, not site delta's (%s...)"
                      % (self.entries["gamma"]["sha256"][:12], SAMPLES, self.split,
                         self.entries["delta"]["sha256"][:12]), wrong.stderr)
        foreign = start("epsilon", os.path.join(self.cluster.dir, "other", "elsewhere"))
        self.assertEqual(foreign.returncode, 2, foreign.stderr)
        self.assertIn("is no shard of %s (site epsilon's is" % self.split, foreign.stderr)
        unknown = start("zeta", self.shard("gamma"))
        self.assertEqual(unknown.returncode, 2, unknown.stderr)
        self.assertIn("--split: %s lists no site zeta" % self.split, unknown.stderr)
        # Its own shard: it starts and serves (a site of the seasons split:
        # another test's wrong workers are this split's only ones).
        checked = self.cluster.start_worker(
            "--service", "mlp", "--site", "north", "--data",
            os.path.join(self.cluster.dir, "seasons", "north"), "--split", self.seasons,
            name="north-checked")
        wait_for(lambda: "--data is site north's shard in %s" % self.seasons in checked.log(),
                 30, what="the check to pass")
        self.cluster.wait_workers(1, service="mlp@north", timeout=30)

    def test_the_watch_names_every_site_without_workers(self):
        # alpha answers; nowhere-1 and nowhere-2 have no worker.  Without a
        # split the names are free (and nothing is checked against data).
        sites = ("--service", "mlp", "--params", PARAMS, "--sites", "alpha,nowhere-1,nowhere-2",
                 "--rounds", "1", "--no-progress")
        self.worker("alpha", self.shard("alpha"), "alpha-watched")
        self.cluster.wait_workers(1, service="mlp@alpha", timeout=30)
        result = self.cluster.run_controller(*sites, "--fail-fast", timeout=120)
        self.assertEqual(result.returncode, 1, result.err)
        self.assertIn("no worker is registered for services 'mlp@nowhere-1', 'mlp@nowhere-2' "
                      "at %s (start one for each site with zfed-worker --service mlp --site "
                      "SITE)" % self.cluster.endpoint, result.err)
        self.assertNotIn("'mlp@alpha'", result.err)
        # 60 of them: as many named as a line holds, and how many more.
        many = ",".join("nowhere-%d" % number for number in range(60))
        result = self.cluster.run_controller("--service", "mlp", "--params", PARAMS, "--sites",
                                             "alpha," + many, "--rounds", "1", "--fail-fast",
                                             "--no-progress", timeout=120)
        self.assertEqual(result.returncode, 1, result.err)
        self.assertRegex(result.err, r"no worker is registered for services 'mlp@nowhere-0', "
                                     r"'mlp@nowhere-1', .*'mlp@nowhere-\d+' and \d+ more at ")
        line = next(line for line in result.err.splitlines() if " more at " in line)
        named = len(re.findall(r"'mlp@nowhere-\d+'", line))
        more = int(re.search(r"and (\d+) more at", result.err).group(1))
        self.assertEqual(named + more, 60, result.err)
        # One site without workers: named alone, with how to start one.
        result = self.cluster.run_controller("--service", "mlp", "--params", PARAMS, "--sites",
                                             "alpha,nowhere-3", "--rounds", "1", "--fail-fast",
                                             "--no-progress", timeout=120)
        self.assertEqual(result.returncode, 1, result.err)
        self.assertIn("no worker is registered for service 'mlp@nowhere-3' at %s (start one "
                      "with zfed-worker --service mlp --site nowhere-3)"
                      % self.cluster.endpoint, result.err)

    def test_a_split_without_shard_digests_is_refused_naming_the_site(self):
        old = dict(self.description)
        old["sites"] = [dict(site) for site in self.description["sites"]]
        del old["sites"][1]["sha256"]
        path = os.path.join(self.cluster.dir, "old-split.json")
        with open(path, "w") as handle:
            json.dump(old, handle)
        result = self.cluster.run_controller("--service", "mlp", "--split", path, "--rounds", "1")
        self.assertEqual(result.returncode, 2, result.err)
        self.assertIn("split: %s: site beta has no sha256" % path, result.err)


if __name__ == "__main__":
    main()
