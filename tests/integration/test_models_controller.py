"""The controller's model rounds (MODELS.md 9, 10, 13) with real brokers,
workers and controllers: tensoravg jobs whose global model is computed
here on its own, from the initial file and the adds, with fractions and
numpy (a rounding written in test_models_numpy.py), for every strategy;
the same job with differently delayed workers gives the same sha256;
results of the wrong shape, dtype, names, order or with a NaN are refused
and named in the record; keep_models policies; a resume after kill -9
between rounds ends with the sha256 of an undisturbed run; a 256 MiB model
by reference in bounded controller memory; a worker killed while the
round aggregates costs a new pass, never a torn model."""

import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import unittest
from fractions import Fraction

import msgpack
import numpy as np

from test_models_numpy import NUMPY, as_fraction, round_fraction
from test_python_model_services import rounded_add
from zfedtest import PYTHON_PACKAGE_DIR, Cluster, PlainWorker, main, wait_for

sys.path.insert(0, PYTHON_PACKAGE_DIR)
from zfed import models as zm  # noqa: E402
from zfed import safetensors as st  # noqa: E402

MIB = 1 << 20
#  A layout with every kind of float, an integer tensor, and tensors at
#  offsets that are no multiple of their element size (after the F16).
LAYOUT = [("h.f16", "F16", (3,)), ("w.f32", "F32", (4, 5)), ("b.f64", "F64", (6,)),
          ("r.bf16", "BF16", (5,)), ("n.i32", "I32", (4,))]
ADDS = [1, 2, -3, 4, 0]
SAMPLES = [1, 2, 3, 1, 4]
TASK_PARAMS = [{"add": a, "samples": s} for a, s in zip(ADDS, SAMPLES)]


# ---------------------------------------------------------------------------
# The expected models, computed here

def initial_model(seed, layout=LAYOUT):
    rng = np.random.default_rng(seed)
    arrays, dtypes = {}, {}
    for name, dtype, shape in layout:
        if dtype == "BF16":
            array = zm.f32_to_bf16(rng.normal(size=shape).astype(np.float32))
        elif dtype in ("F64", "F32", "F16"):
            array = rng.normal(size=shape).astype(NUMPY[dtype])
        else:
            array = rng.integers(-50, 50, size=shape).astype(NUMPY[dtype])
        arrays[name], dtypes[name] = np.asarray(array), dtype
    return arrays, dtypes


def save(path, arrays, dtypes):
    st.save(path, zm.Model(list(arrays.items()), dtypes=dtypes))


def load(path):
    model = st.load(path)
    return {name: np.array(model[name]) for name in model}


def tensoravg(arrays, dtypes, add):
    """MODELS.md 11: add in each tensor's dtype."""
    out = {}
    for name, array in arrays.items():
        dtype = dtypes[name]
        if dtype == "F64":
            out[name] = array + np.float64(add)
        elif dtype == "F32":
            out[name] = (array + np.float32(add)).astype(np.float32)
        elif dtype == "F16":
            a = np.float32(rounded_add(add, "F16"))
            out[name] = (array.astype(np.float32) + a).astype(np.float16)
        elif dtype == "BF16":
            a = np.float32(rounded_add(add, "BF16"))
            out[name] = zm.f32_to_bf16(zm.bf16_to_f32(array) + a)
        else:
            out[name] = (array.astype(object) + int(add)).astype(array.dtype)
    return out


def fractions(array, dtype):
    return [as_fraction(dtype, value) for value in array.ravel()]


def from_fractions(values, dtype, shape):
    bits = [round_fraction(value, dtype) for value in values]
    assert None not in bits, "an aggregate past the dtype's range"
    width = np.dtype(NUMPY[dtype]).itemsize
    unsigned = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[width]
    return np.array(bits, dtype=unsigned).view(NUMPY[dtype]).reshape(shape)


def trim_count(trim, n):
    return min(int(math.floor(trim * n)), (n - 1) // 2)


def elementwise(results, dtypes, combine):
    """combine(list of each result's Fraction) -> Fraction, per element."""
    out = {}
    for name, array in results[0].items():
        columns = [fractions(result[name], dtypes[name]) for result in results]
        values = [combine([column[i] for column in columns]) for i in range(array.size)]
        out[name] = from_fractions(values, dtypes[name], array.shape)
    return out


def as_float64(array):
    """Values as float64 (BF16 from its bits)."""
    if array.dtype == np.uint16:
        return zm.bf16_to_f32(array).astype(np.float64)
    return np.asarray(array, np.float64)


def krum_select(results, f, m):
    """Multi-Krum over float64 vectors of every element (Blanchard et al.)."""
    vectors = [np.concatenate([as_float64(r[name]).ravel() for name in r]) for r in results]
    n = len(vectors)
    scores = []
    for i in range(n):
        distances = sorted(float(np.sum((vectors[i] - vectors[j]) ** 2))
                           for j in range(n) if j != i)
        scores.append(sum(distances[:n - f - 2]))
    return sorted(range(n), key=lambda i: (scores[i], i))[:m]


def optimiser_step(kind, x, dtypes, average, state, lr, beta1, beta2, tau):
    """One server step in float64, as MODELS.md 10 writes it, m and v kept
    as float32; average: the exact fedavg (Fractions per tensor)."""
    out = {}
    for name, array in x.items():
        dtype = dtypes[name]
        if dtype not in ("F64", "F32", "F16", "BF16"):
            out[name] = from_fractions(average[name], dtype, array.shape)
            continue
        m, v = state.setdefault(name, (np.zeros(array.size, np.float32),
                                       np.full(array.size, np.float32(tau * tau), np.float32)))
        now = fractions(array, dtype)
        new = []
        for i in range(array.size):
            x64 = float(now[i])
            delta = float(average[name][i]) - x64  # the average rounded once to float64
            if kind == "fedavgm":
                m[i] = np.float32(beta1 * float(m[i]) + delta)
                step = lr * float(m[i])
            else:
                m[i] = np.float32(beta1 * float(m[i]) + (1 - beta1) * delta)
                square, before = delta * delta, float(v[i])
                if kind == "fedadam":
                    v[i] = np.float32(beta2 * before + (1 - beta2) * square)
                else:
                    sign = 1.0 if before > square else -1.0 if before < square else 0.0
                    v[i] = np.float32(before - (1 - beta2) * square * sign)
                step = lr * float(m[i]) / (math.sqrt(float(v[i])) + tau)
            new.append(Fraction(x64 + step))
        out[name] = from_fractions(new, dtype, array.shape)
    return out


def expected_job(strategy, x, dtypes, rounds, params, trim=0.2, krum=(1, 2), opt=None):
    """The global after each round, computed here."""
    state, models = {}, []
    for _ in range(rounds):
        results = [tensoravg(x, dtypes, p["add"]) for p in params]
        weights = [p["samples"] for p in params]
        n = len(results)
        if strategy == "fedavg":
            x = elementwise(results, dtypes,
                            lambda e: sum(w * v for w, v in zip(weights, e)) / sum(weights))
        elif strategy == "mean":
            x = elementwise(results, dtypes, lambda e: sum(e) / n)
        elif strategy == "sum":
            x = elementwise(results, dtypes, lambda e: sum(e))
        elif strategy == "median":
            x = elementwise(results, dtypes, lambda e: sorted(e)[n // 2] if n % 2 else
                            (sorted(e)[n // 2 - 1] + sorted(e)[n // 2]) / 2)
        elif strategy == "trimmed-mean":
            k = trim_count(trim, n)
            x = elementwise(results, dtypes,
                            lambda e: sum(sorted(e)[k:n - k]) / (n - 2 * k))
        elif strategy in ("min", "max"):
            pick = min if strategy == "min" else max
            x = elementwise(results, dtypes, lambda e: pick(e))
        elif strategy == "krum":
            chosen = krum_select(results, *krum)
            x = elementwise([results[i] for i in chosen], dtypes,
                            lambda e: sum(e) / len(chosen))
        else:
            average = {}
            for name, array in x.items():
                columns = [fractions(r[name], dtypes[name]) for r in results]
                average[name] = [sum(w * c[i] for w, c in zip(weights, columns)) / sum(weights)
                                 for i in range(array.size)]
            x = optimiser_step(strategy, x, dtypes, average, state, **opt)
        models.append(x)
    return models


def write_json(path, value):
    with open(path, "w") as handle:
        json.dump(value, handle)


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def same(actual, expected):
    return list(actual) == list(expected) and all(
        actual[name].shape == expected[name].shape and
        actual[name].tobytes() == expected[name].tobytes() for name in expected)


def file_sha256(path):
    model = st.load(path)
    return hashlib.sha256(zm.model_data(model)).hexdigest()


# ---------------------------------------------------------------------------

class ModelRounds(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster("models-controller")
        cls.cluster.start_broker()
        # C workers and a Python one: the same service, the same numbers.
        for index in range(2):
            cls.cluster.start_worker("--service", "tensoravg", "--concurrency", "3",
                                     name="tavg-%d" % index)
        cls.cluster.start_py_worker("zfed.services:tensoravg", "--concurrency", "2",
                                    name="py-tavg")
        cls.cluster.wait_workers(8, service="tensoravg")
        cls.initial = os.path.join(cls.cluster.dir, "initial.safetensors")
        cls.x0, cls.dtypes = initial_model(7)
        save(cls.initial, cls.x0, cls.dtypes)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def job_file(self, **settings):
        path = os.path.join(self.cluster.dir, "%s.json" % settings["job_id"])
        settings.setdefault("service", "tensoravg")
        settings.setdefault("initial_model", self.initial)
        settings.setdefault("task_params", TASK_PARAMS)
        settings.setdefault("tasks", len(settings["task_params"]))
        settings.setdefault("round_timeout", 60)
        with open(path, "w") as handle:
            json.dump(settings, handle)
        return path

    def run_job(self, *args, **settings):
        result = self.cluster.run_controller("--job", self.job_file(**settings), "--no-progress",
                                             *args, timeout=240)
        self.assertEqual(result.returncode, 0, result.err[-3000:])
        return result

    def folder(self, job_id):
        return os.path.join(self.cluster.workdir, job_id)

    def record(self, job_id, number):
        return self.cluster.read_json(job_id, "rounds/round-%06d.json" % number)

    def test_every_strategy_against_numpy(self):
        optimisers = {"fedavgm": dict(lr=0.7, beta1=0.8, beta2=0.0, tau=0.0),
                      "fedadam": dict(lr=0.05, beta1=0.9, beta2=0.99, tau=1e-3),
                      "fedyogi": dict(lr=0.05, beta1=0.85, beta2=0.9, tau=1e-2)}
        for strategy in ("fedavg", "mean", "sum", "median", "trimmed-mean", "min", "max",
                         "krum", "fedavgm", "fedadam", "fedyogi"):
            with self.subTest(strategy=strategy):
                job_id = "strategy-" + strategy
                params = TASK_PARAMS
                settings = {"job_id": job_id, "rounds": 2, "aggregate": strategy,
                            "keep_models": "all", "trim": 0.2}
                if strategy == "krum":
                    # Task 2 lies: far from everyone else, never selected.
                    params = [dict(p) for p in TASK_PARAMS]
                    params[2]["add"] = 900
                    settings.update(krum_f=1, krum_m=2, task_params=params)
                opt = optimisers.get(strategy)
                if opt:
                    settings.update(server_lr=opt["lr"], beta1=opt["beta1"])
                    if strategy != "fedavgm":
                        settings.update(beta2=opt["beta2"], tau=opt["tau"])
                self.run_job(**settings)
                want = expected_job(strategy, self.x0, self.dtypes, 2, params, trim=0.2,
                                    opt=opt)
                folder = self.folder(job_id)
                for number in range(2):
                    got = load(os.path.join(folder, "models/round-%06d.safetensors" % number))
                    self.assertTrue(same(got, want[number]),
                                    "round %d: %r\nwant %r" % (number, got, want[number]))
                self.assertTrue(same(load(os.path.join(folder, "model.safetensors")), want[1]))
                record = self.record(job_id, 1)
                self.assertEqual(record["aggregate"]["sha256"],
                                 file_sha256(os.path.join(folder, "model.safetensors")))
                self.assertEqual(record["aggregate"]["file"], "models/round-000001.safetensors")
                self.assertEqual(record["aggregate"]["tensors"], len(LAYOUT))
                self.assertEqual(record["answered"], 5)
                if strategy == "krum":
                    selected = [r["task"] for r in record["results"] if r["selected"]]
                    self.assertEqual(len(selected), 2)
                    self.assertNotIn(2, selected)
                if opt:
                    self.assertEqual(sorted(record["state"]), ["m"] if strategy == "fedavgm"
                                     else ["m", "v"])
                    job = self.cluster.read_json(job_id, "job.json")
                    self.assertEqual(job["server_lr"], opt["lr"])
                # Records hold metadata, never the numbers of a model; the
                # update norm is ||result - global|| over every element.
                for result in record["results"]:
                    self.assertEqual(result["size"], record["aggregate"]["size"])
                    self.assertTrue(result["inline"])
                    self.assertEqual(len(result["sha256"]), 64)
                    update = tensoravg(want[0], self.dtypes, params[result["task"]]["add"])
                    norm = math.sqrt(sum(float(np.sum((as_float64(update[name]) -
                                                       as_float64(want[0][name])) ** 2))
                                         for name in update))
                    self.assertAlmostEqual(result["update_norm"], norm, delta=1e-9 * norm)

    def test_inline_results_past_inline_memory_are_read_from_the_work_folder(self):
        self.run_job(job_id="in-memory", rounds=2)
        self.run_job(job_id="spilled", rounds=2, inline_memory=0)
        self.assertEqual(self.cluster.read_json("spilled", "job.json")["inline_memory"], 0)
        for name in ("in-memory", "spilled"):
            results = self.record(name, 1)["results"]
            self.assertEqual([r.get("spilled", False) for r in results], [name == "spilled"] * 5)
        self.assertEqual(self.cluster.summary("spilled")["final_global"]["value"]["sha256"],
                         self.cluster.summary("in-memory")["final_global"]["value"]["sha256"])
        self.assertFalse([name for name in os.listdir(os.path.join(self.folder("spilled"),
                                                                   "models"))
                          if name.startswith(".spill")])

    def test_keep_models_policies(self):
        params = [{"add": 1, "samples": 1}, {"add": 3, "samples": 1}]
        expect = {"none": [], "best": ["round-000000.safetensors"],
                  "last:2": ["round-000002.safetensors", "round-000003.safetensors"],
                  "all": ["initial.safetensors"] + ["round-%06d.safetensors" % r
                                                    for r in range(4)]}
        for policy, files in expect.items():
            with self.subTest(policy=policy):
                job_id = "keep-" + policy.replace(":", "")
                self.run_job(job_id=job_id, rounds=4, task_params=params, keep_models=policy,
                             select="results:max")
                folder = self.folder(job_id)
                self.assertEqual(sorted(os.listdir(os.path.join(folder, "models"))), files)
                self.assertEqual(os.listdir(os.path.join(folder, "state")), [])
                summary = self.cluster.summary(job_id)
                final = summary["final_global"]["value"]
                self.assertEqual(final["file"], "models/round-000003.safetensors")
                self.assertEqual(file_sha256(os.path.join(folder, "model.safetensors")),
                                 final["sha256"])
                best = summary["best_round"]  # every round has all results: the first
                self.assertEqual(best, 0)
                self.assertEqual(file_sha256(os.path.join(folder, "best_model.safetensors")),
                                 self.record(job_id, best)["aggregate"]["sha256"])

    def test_resume_after_kill_9_gives_the_same_model(self):
        settings = dict(rounds=4, aggregate="fedadam", server_lr=0.1, keep_models="none")
        self.run_job(job_id="resume-whole", **settings)
        whole = self.cluster.summary("resume-whole")["final_global"]["value"]["sha256"]
        # The same job on a cluster of its own, whose one worker (tensoravg
        # in numpy, as the strategies test checks it) answers rounds 0 and 1
        # only: the controller is killed in round 2, its first two records
        # on disk, then resumed with real workers.
        stuck = __import__("threading").Event()

        def handler(frames):
            task = msgpack.unpackb(frames[0], raw=False)
            _, _, job_id, round_, task_id, attempt, params, (_, global_value) = task
            if round_ >= 2:
                stuck.wait(60)
            descriptor = zm.check_descriptor(global_value, "global")
            model = zm.decode_model(descriptor, frames[1])
            dtypes = {name: model.dtype(name) for name in model}
            out = zm.Model(list(tensoravg({n: np.array(a) for n, a in model.items()}, dtypes,
                                          params["add"]).items()), dtypes=dtypes)
            data = zm.model_data(out)
            result = zm.Descriptor(os.urandom(32), None, data.nbytes, zm.CHUNK_DEFAULT,
                                   out.layout())
            return [msgpack.packb(["zfed.result", 1, job_id, round_, task_id, attempt, "numpy",
                                   1, {"model": result.elements(), "samples": params["samples"]}],
                                  use_bin_type=True), bytes(data)]

        with Cluster("models-resume") as cluster:
            cluster.start_broker()
            worker = PlainWorker(cluster, b"tensoravg", 2500, handler=handler)
            cluster.wait_workers(1, service="tensoravg")
            job = os.path.join(cluster.dir, "job.json")
            write_json(job, dict(settings, job_id="resume-killed", service="tensoravg",
                                 initial_model=self.initial, task_params=TASK_PARAMS, tasks=5,
                                 round_timeout=60))
            controller = cluster.start_controller("--job", job, "--no-progress")
            folder = os.path.join(cluster.workdir, "resume-killed")
            wait_for(lambda: os.path.exists(os.path.join(folder, "rounds/round-000001.json")), 60,
                     what="round 1's record")
            controller.signal(signal.SIGKILL)
            wait_for(lambda: not controller.alive(), 10, what="the controller to die")
            stuck.set()
            worker.close()
            self.assertEqual(sorted(os.listdir(os.path.join(folder, "rounds"))),
                             ["round-000000.json", "round-000001.json"])
            cluster.start_worker("--service", "tensoravg", "--concurrency", "5")
            cluster.wait_workers(5, service="tensoravg")
            result = cluster.run_controller("--resume", "resume-killed", "--no-progress",
                                            timeout=240)
            self.assertEqual(result.returncode, 0, result.err[-3000:])
            summary = cluster.summary("resume-killed")
            self.assertEqual(summary["rounds_completed"], 4)
            self.assertEqual(summary["final_global"]["value"]["sha256"], whole)
            self.assertEqual(file_sha256(os.path.join(folder, "model.safetensors")), whole)

    def test_resume_refuses_a_model_file_that_changed(self):
        self.run_job(job_id="resume-tampered", rounds=1, keep_models="all")
        folder = self.folder("resume-tampered")
        # Pretend round 1 never closed, and damage round 0's model.
        path = os.path.join(folder, "models/round-000000.safetensors")
        model = load(path)
        model["w.f32"][0, 0] += 1
        save(path, model, self.dtypes)
        job = read_json(os.path.join(folder, "job.json"))
        job["rounds"] = 2
        write_json(os.path.join(folder, "job.json"), job)
        result = self.cluster.run_controller("--resume", "resume-tampered", "--no-progress")
        self.assertEqual(result.returncode, 1, result.err)
        self.assertIn("does not match the sha256", result.err)

    def test_settings_are_checked(self):
        nan = os.path.join(self.cluster.dir, "nan.safetensors")
        arrays = {name: array.copy() for name, array in self.x0.items()}
        arrays["b.f64"][4] = np.nan
        save(nan, arrays, self.dtypes)
        cases = [({"initial_model": "/nonexistent.safetensors"}, "initial_model"),
                 ({"initial_model": nan}, "initial_model: tensor b.f64 element 4 [4]: NaN"),
                 ({"initial_model": None}, "initial_model: tensoravg needs a model to start"),
                 ({"aggregate": "krum", "krum_f": 2}, "krum_f: Krum with krum_f 2 needs more"),
                 ({"server_lr": 0.1}, "server_lr: only fedavgm, fedadam and fedyogi"),
                 ({"aggregate": "fedavgm", "tau": 0.1}, "tau: fedavgm keeps no second"),
                 ({"chunk": 1000}, "chunk: expected an integer from 65536"),
                 ({"keep_models": "some"}, "keep_models: expected none, best, last:N"),
                 ({"batch": 2}, "batch: model tasks travel one per request")]
        for index, (change, words) in enumerate(cases):
            with self.subTest(change=change):
                settings = {"job_id": "bad-%d" % index, "rounds": 1}
                settings.update(change)
                path = self.job_file(**settings)
                if change.get("initial_model", 1) is None:
                    data = read_json(path)
                    del data["initial_model"]
                    write_json(path, data)
                result = self.cluster.run_controller("--job", path)
                self.assertEqual(result.returncode, 2, result.err)
                self.assertIn(words, result.err)
                self.assertFalse(os.path.exists(self.folder("bad-%d" % index)))
        # A value service refuses the model settings, naming them.
        result = self.cluster.run_controller("--service", "vecavg", "--keep-models", "all")
        self.assertEqual(result.returncode, 2)
        self.assertIn("--keep-models: a setting of model services; vecavg is a value service",
                      result.err)


class DelayedWorkers(unittest.TestCase):
    """The same job twice, the workers' answers in opposite orders: the
    global models are the same bytes (exact aggregation, task order)."""

    def run_with_delays(self, name, delays):
        with Cluster(name) as cluster:
            cluster.start_broker()
            env = os.environ.get("ZFED_TEST_DELAY_MS")
            os.environ["ZFED_TEST_DELAY_MS"] = ",".join("%d:%d" % d for d in delays.items())
            try:
                cluster.start_py_worker("py_services:tensoravg_delayed", "--concurrency", "5")
            finally:
                if env is None:
                    del os.environ["ZFED_TEST_DELAY_MS"]
                else:
                    os.environ["ZFED_TEST_DELAY_MS"] = env
            cluster.wait_workers(5, service="tensoravg")
            initial = os.path.join(cluster.dir, "initial.safetensors")
            save(initial, *initial_model(3))
            job = os.path.join(cluster.dir, "job.json")
            write_json(job, {"job_id": "delayed", "service": "tensoravg",
                             "initial_model": initial, "rounds": 2, "tasks": 5,
                             "task_params": TASK_PARAMS})
            result = cluster.run_controller("--job", job, "--no-progress", timeout=120)
            self.assertEqual(result.returncode, 0, result.err)
            record = cluster.read_json("delayed", "rounds/round-000000.json")
            order = sorted(record["results"], key=lambda r: r["latency_us"])
            return (cluster.summary("delayed")["final_global"]["value"]["sha256"],
                    [r["task"] for r in order])

    def test_arrival_order_does_not_change_the_model(self):
        first, order_a = self.run_with_delays("delay-up", {t: 100 * t for t in range(5)})
        second, order_b = self.run_with_delays("delay-down", {t: 100 * (4 - t) for t in range(5)})
        # On a loaded machine neighbours may swap; the runs must still have
        # answered in different orders (the first task came first in one,
        # last in the other) for the equal models to mean something.
        self.assertLess(order_a.index(0), order_a.index(4), order_a)
        self.assertLess(order_b.index(4), order_b.index(0), order_b)
        self.assertEqual(first, second)


class LateResultsReleased(unittest.TestCase):
    """Results held by reference that come back late or twice are released
    at once (MODELS.md 9), not left to expire at their holder: task 1 is
    answered after longer than its task timeout, so it goes again and both
    copies come back, the second after its round closed."""

    def test_a_late_copy_held_by_reference_is_released(self):
        rounds = 3
        with Cluster("late-release") as cluster:
            cluster.start_broker()
            os.environ["ZFED_TEST_DELAY_MS"] = "1:1500"
            try:
                # A long hold, so nothing is expired: only released.
                worker = cluster.start_py_worker("py_services:tensoravg_delayed",
                                                 "--concurrency", "3", "--hold-ms", "600000")
            finally:
                del os.environ["ZFED_TEST_DELAY_MS"]
            cluster.wait_workers(3, service="tensoravg")
            # 5 MiB of F32: over the 4 MiB inline limit, so held by reference.
            initial = os.path.join(cluster.dir, "initial.safetensors")
            save(initial, *initial_model(5, [("w", "F32", (1280, 1024))]))
            job = os.path.join(cluster.dir, "job.json")
            write_json(job, {"job_id": "late", "service": "tensoravg", "initial_model": initial,
                             "rounds": rounds, "tasks": 2, "task_timeout": 0.5, "retries": 1,
                             "task_params": TASK_PARAMS[:2]})
            result = cluster.run_controller("--job", job, "--no-progress", timeout=120)
            self.assertEqual(result.returncode, 0, result.err)
            late = cluster.summary("late")["late_total"]
            # Every round's task 1 went twice; the copies of rounds 0 and 1
            # came back during the next round (the last one's after the job).
            self.assertGreaterEqual(late, rounds - 1)
            worker.signal(signal.SIGTERM)
            worker.proc.wait(10)
            found = re.search(r"results held by reference: (\d+), (\d+) released, "
                              r"(\d+) expired, (\d+) still held", worker.log())
            self.assertIsNotNone(found, worker.log())
            held, released, expired, still = map(int, found.groups())
            self.assertEqual(expired, 0)
            self.assertEqual(held, released + still)
            # The results aggregated and every late copy the controller saw.
            self.assertGreaterEqual(released, 2 * rounds + late, worker.log())
            self.assertLessEqual(still, 1, worker.log())  # the last round's late copy


class RefusedResults(unittest.TestCase):
    """A worker that answers with wrong models: each is refused (counted
    invalid, its first difference named in the round record), never
    reshaped; the one good result makes the round."""

    MODES = {0: "good", 1: "shape", 2: "dtype", 3: "names", 4: "order", 5: "nan", 6: "inf",
             7: "no data frame"}

    def handler(self, frames):
        task = msgpack.unpackb(frames[0], raw=False)
        _, _, job_id, round_, task_id, attempt, params, (_, global_value) = task
        descriptor = zm.check_descriptor(global_value, "global")
        model = zm.decode_model(descriptor, frames[1])
        arrays = {name: np.array(model[name]) for name in model}
        dtypes = {name: model.dtype(name) for name in model}
        arrays = tensoravg(arrays, dtypes, params["add"])
        mode = self.MODES[task_id]
        names = list(arrays)
        if mode == "shape":
            arrays["w.f32"] = arrays["w.f32"].reshape(5, 4)
        elif mode == "dtype":
            arrays["b.f64"] = arrays["b.f64"].astype(np.float32)
            dtypes["b.f64"] = "F32"
        elif mode == "names":
            arrays["b.bias"] = arrays.pop("b.f64")
            dtypes["b.bias"] = dtypes.pop("b.f64")
            names[names.index("b.f64")] = "b.bias"
        elif mode == "order":
            names[1], names[2] = names[2], names[1]
        elif mode in ("nan", "inf"):
            arrays["w.f32"][2, 3] = np.nan if mode == "nan" else -np.inf
        result = zm.Model([(name, arrays[name]) for name in names], dtypes=dtypes)
        data = zm.model_data(result)
        out = zm.Descriptor(os.urandom(32), None, data.nbytes, zm.CHUNK_DEFAULT, result.layout())
        body = msgpack.packb(["zfed.result", 1, job_id, round_, task_id, attempt, "liar", 1,
                              {"model": out.elements(), "samples": params["samples"]}],
                             use_bin_type=True)
        return [body] if mode == "no data frame" else [body, bytes(data)]

    def test_wrong_models_are_refused_and_named(self):
        with Cluster("models-refused") as cluster:
            cluster.start_broker()
            worker = PlainWorker(cluster, b"tensoravg", 2500, handler=self.handler)
            cluster.wait_workers(1, service="tensoravg")
            initial = os.path.join(cluster.dir, "initial.safetensors")
            x0, dtypes = initial_model(5)
            save(initial, x0, dtypes)
            params = [{"add": 2, "samples": 1 + t} for t in self.MODES]
            job = os.path.join(cluster.dir, "job.json")
            write_json(job, {"job_id": "refused", "service": "tensoravg",
                             "initial_model": initial, "rounds": 1, "tasks": len(params),
                             "task_params": params, "quorum": 1, "retries": 0,
                             "round_timeout": 10, "grace": 10})
            result = cluster.run_controller("--job", job, "--no-progress")
            worker.close()
            self.assertEqual(result.returncode, 0, result.err)
            record = cluster.read_json("refused", "rounds/round-000000.json")
            self.assertEqual([r["task"] for r in record["results"]], [0])
            self.assertEqual(record["missing"], list(range(1, len(params))))
            self.assertEqual(record["invalid"], len(params) - 1)
            reasons = {r["task"]: r["reason"] for r in record["refused"]}
            self.assertIn("tensor w.f32: shape [5, 4] where the global has [4, 5]", reasons[1])
            self.assertIn("tensor b.f64: dtype F32 where the global has F64", reasons[2])
            self.assertIn("name b.bias where the global has b.f64", reasons[3])
            self.assertIn("name b.f64 where the global has w.f32", reasons[4])
            self.assertIn("tensor w.f32 element 13 [2, 3]: NaN", reasons[5])
            self.assertIn("tensor w.f32 element 13 [2, 3]: -Inf", reasons[6])
            self.assertIn("data", reasons[7])
            want = expected_job("fedavg", x0, dtypes, 1, params[:1])[0]
            got = load(os.path.join(cluster.workdir, "refused", "model.safetensors"))
            self.assertTrue(same(got, want))


def big_model(path, mib, seed=11):
    """A float32 model of `mib` MiB in three tensors, its values multiples
    of 1/1024 (so sums of a few of them with small adds are exact in
    float64 and numpy can check a fedavg of any size)."""
    rng = np.random.default_rng(seed)
    count = mib * MIB // 4
    sizes = [count // 4, count // 2, count - count // 4 - count // 2]
    arrays = {"layer%d" % i: (rng.integers(-4096, 4096, size=n) / 1024).astype(np.float32)
              for i, n in enumerate(sizes)}
    save(path, arrays, {name: "F32" for name in arrays})
    return arrays


def peak_rss(process):
    """Waits for a subprocess.Popen: its exit status and peak RSS in bytes,
    from /proc/PID/status VmHWM, read until it exits (rusage would count
    the memory of the Python process it was forked from)."""
    peak = 0
    while process.poll() is None:
        try:
            with open("/proc/%d/status" % process.pid) as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.02)
    return process.returncode, peak


class LargeModels(unittest.TestCase):
    """By reference (over 4 MiB): chunks through the broker both ways."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster("models-large")
        # Short heartbeats and request lifetime: a dead holder is noticed
        # within seconds, and fetches sent to it fail instead of waiting.
        cls.cluster.start_broker("--heartbeat-ms", "500", "--request-ttl", "3")
        cls.workers = [cls.cluster.start_worker("--service", "tensoravg", "--heartbeat-ms", "500",
                                                name="big-%d" % i) for i in range(4)]
        cls.cluster.wait_workers(4, service="tensoravg")

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def job(self, job_id, initial, **settings):
        path = os.path.join(self.cluster.dir, job_id + ".json")
        job = {"job_id": job_id, "service": "tensoravg", "initial_model": initial, "rounds": 1,
               "tasks": 3, "round_timeout": 120,
               "task_params": [{"add": 0.5, "samples": 1}, {"add": 1.25, "samples": 1},
                               {"add": -2, "samples": 2}]}
        job.update(settings)
        write_json(path, job)
        return path

    def test_a_256_mib_round_in_bounded_memory(self):
        initial = os.path.join(self.cluster.dir, "m256.safetensors")
        x = big_model(initial, 256)
        argv = self.cluster.controller_argv("--job", self.job("big-256", initial), "--no-progress")
        log_path = os.path.join(self.cluster.dir, "big-256.log")
        with open(log_path, "w") as log:
            process = subprocess.Popen(argv, stderr=log)
            code, rss = peak_rss(process)
        with open(log_path) as log:
            self.assertEqual(code, 0, log.read()[-3000:])
        self.assertGreater(rss, 0)
        # fedavg with weights 1, 1, 2: every sum is exact in float64 and the
        # division by 4 too, so numpy rounds once, as the controller must.
        got = load(os.path.join(self.cluster.workdir, "big-256", "model.safetensors"))
        for name, array in x.items():
            want = ((array.astype(np.float64) + 0.5) + (array.astype(np.float64) + 1.25) +
                    2 * (array.astype(np.float64) - 2)) / 4
            self.assertTrue(np.array_equal(got[name], want.astype(np.float32)), name)
        record = self.cluster.read_json("big-256", "rounds/round-000000.json")
        self.assertEqual([r["inline"] for r in record["results"]], [False] * 3)
        self.assertEqual(record["aggregate"]["size"], 256 * MIB)
        # Three results of 256 MiB went through, a few chunks at a time:
        # at most the fetch window (8 chunks of 4 MiB) and one more each.
        self.assertLessEqual(record["pass"]["held_peak_bytes"], 3 * 9 * 4 * MIB)
        # (A sanitizer's shadow memory and quarantine of freed frames would
        # make this figure the sanitizer's, not the controller's.)
        if os.environ.get("ZFED_SANITIZED") not in ("1", "ON", "true"):
            self.assertLess(rss, 256 * MIB, "controller peak RSS %d MiB" % (rss // MIB))

    SAME_PARAMS = [{"add": 1, "samples": 1}] * 4

    def undisturbed(self):
        """The sha256 of four equal results of the 128 MiB model, once."""
        cls = type(self)
        if not hasattr(cls, "undisturbed_sha256"):
            cls.killing_model = os.path.join(self.cluster.dir, "m128.safetensors")
            big_model(cls.killing_model, 128, seed=3)
            result = self.cluster.run_controller(
                "--job", self.job("undisturbed", cls.killing_model, tasks=4,
                                  task_params=self.SAME_PARAMS),
                "--no-progress", timeout=240)
            self.assertEqual(result.returncode, 0, result.err[-3000:])
            cls.undisturbed_sha256 = \
                self.cluster.summary("undisturbed")["final_global"]["value"]["sha256"]
        return cls.undisturbed_sha256

    def kill_a_holder_mid_pass(self, job_id, **settings):
        """Runs a job, kills one worker once its first pass began; the log
        and the round's record."""
        want = self.undisturbed()
        argv = self.cluster.controller_argv(
            "--job", self.job(job_id, self.killing_model, tasks=4, task_params=self.SAME_PARAMS,
                              **settings), "--no-progress", "-v")
        process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "aggregation pass 1 over" in line:
                break
        victim = [w for w in self.workers if w.alive()][0]
        victim.kill()
        lines.extend(process.stderr)
        process.wait(240)
        process.stderr.close()
        log = "".join(lines)
        self.assertEqual(process.returncode, 0, log[-3000:])
        # A worker in its place for the next test.
        self.workers.remove(victim)
        self.workers.append(self.cluster.start_worker("--service", "tensoravg", "--heartbeat-ms",
                                                      "500", name=victim.name + "-again"))
        self.cluster.wait_workers(4, service="tensoravg")
        record = self.cluster.read_json(job_id, "rounds/round-000000.json")
        self.assertGreaterEqual(record["pass"]["passes"], 2, log[-3000:])
        self.assertIn("lost while aggregating", log)
        self.assertEqual(record["aggregate"]["sha256"], want)
        return record

    def test_a_holder_killed_below_the_quorum(self):
        # All four are needed: the lost one's task goes again and the round
        # aggregates from the start once it is back.
        record = self.kill_a_holder_mid_pass("killed-all", retries=2)
        self.assertEqual(record["answered"], 4)
        self.assertGreaterEqual(record["resent"], 1)

    def test_a_holder_killed_above_the_quorum(self):
        # Three of four suffice: the pass starts again without the lost one
        # (four equal results or three: the same model).
        record = self.kill_a_holder_mid_pass("killed-some", quorum=3, grace=30)
        self.assertEqual(record["answered"], 3)
        self.assertEqual(len(record["missing"]), 1)
        self.assertEqual(record["resent"], 0)

if __name__ == "__main__":
    main()
