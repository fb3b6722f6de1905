"""Interop of the C and Python sides on model jobs (issue 13): the same
tensoravg job run by the C controller three times, on C zfed-worker
processes only, on a mix of C and Python zfed-py-worker processes serving
one service, and on Python workers only, gets the same aggregate (sha256)
every round; and zfed.Job (the Python front-end) driving C workers gets the
command line's models.  Models: every dtype inline, float tensors of 6 MiB
by reference both ways, BF16 and F16 tensors; adds that are exact and adds
whose rounding into BF16 (through binary32 or directly) differs.

Already covered elsewhere, and not repeated here: value services (fib,
vecavg) on Python workers against C workers through the C controller
(test_python_package ValueServices); zfed.Job driving C fib workers
(test_python_controller); one tensoravg task at a time, C worker against
Python worker, byte for byte (test_c_model_services)."""

import hashlib
import os
import sys
import unittest

import numpy as np

from zfedtest import PYTHON_PACKAGE_DIR, Cluster, binary, main

sys.path.insert(0, PYTHON_PACKAGE_DIR)
import zfed  # noqa: E402
from zfed import models as zm  # noqa: E402
from zfed import safetensors as st  # noqa: E402

MIB = 1 << 20
ROUNDS = 2
# Credit 1 everywhere and as many tasks as workers at least: the broker
# hands waiting workers requests in turn, so every worker gets tasks; the
# records say which did, and the test checks it.
C_WORKERS = 2
PY_WORKERS = 2
TASKS = 6

EXACT_ADDS = [1, 2, -3, 4, 0, 7]
# Float adds for float-only models: decimals, and values whose rounding into
# BF16 needs care: 1 + 2^-8 + 2^-30 is 1 + 2^-8 (a BF16 tie, to even: 1) in
# binary32 but 1 + 2^-7 rounded once from binary64.
FLOAT_ADDS = [0.5, -1.25, 0.1, 1 + 2**-8 + 2**-30, -(1 + 2**-8 + 2**-40), 1e-3]
SAMPLES = [1, 2, 3, 1, 4, 5]

EVERY_DTYPE = [("h.f16", "F16", (3,)), ("w.f32", "F32", (4, 5)), ("b.f64", "F64", (6,)),
               ("r.bf16", "BF16", (5,)), ("n.i64", "I64", (2,)), ("n.i32", "I32", (4,)),
               ("n.i16", "I16", (3,)), ("n.i8", "I8", (2,)), ("n.u64", "U64", (2,)),
               ("n.u32", "U32", ()), ("n.u16", "U16", (3,)), ("n.u8", "U8", (0, 2))]
# 6 MiB and a bit: by reference (over 4 MiB) both ways, in 2 chunks.
LARGE = [("fc1.weight", "F32", (1536, 1024)), ("fc1.bias", "BF16", (1001,)),
         ("fc2.weight", "F16", (77, 13)), ("fc2.bias", "F64", (9,))]


def make_model(layout, seed):
    rng = np.random.default_rng(seed)
    model = zm.Model.empty(zm.make_layout(layout))
    for name, dtype, shape in layout:
        array = model[name]
        if dtype == "BF16":
            array[...] = zm.f32_to_bf16(rng.normal(size=shape).astype(np.float32))
        elif dtype in zm.FLOAT_DTYPES:
            array[...] = rng.normal(size=shape)
        else:
            array[...] = rng.integers(0, 50, size=shape)
    return model


def data_sha256(model):
    return hashlib.sha256(zm.model_data(model)).hexdigest()


class MixedWorkers(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cluster = cluster = Cluster("py-interop")
        cls.endpoints = {}
        for kind, c_count, py_count in (("c", C_WORKERS + PY_WORKERS, 0),
                                        ("mixed", C_WORKERS, PY_WORKERS),
                                        ("py", 0, C_WORKERS + PY_WORKERS)):
            endpoint = cluster.start_broker(name="broker-" + kind).endpoint
            for index in range(c_count):
                cluster.start_worker("--service", "tensoravg", endpoint=endpoint,
                                     name="%s-c%d" % (kind, index))
            for index in range(py_count):
                cluster.start_py_worker("zfed.services:tensoravg", endpoint=endpoint,
                                        name="%s-py%d" % (kind, index))
            cls.endpoints[kind] = endpoint
        for endpoint in cls.endpoints.values():
            cluster.wait_workers(C_WORKERS + PY_WORKERS, service="tensoravg",
                                 endpoint=endpoint, timeout=30)
        cls.models = {}
        for name, layout, seed in (("every-dtype", EVERY_DTYPE, 1), ("large", LARGE, 2),
                                   ("floats", EVERY_DTYPE[:4], 3)):
            path = os.path.join(cluster.dir, name + ".safetensors")
            st.save(path, make_model(layout, seed))
            cls.models[name] = path

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def job(self, model, adds):
        return {"service": "tensoravg", "rounds": ROUNDS, "tasks": TASKS,
                "initial_model": self.models[model], "round_timeout": 120,
                "task_params": [{"add": a, "samples": s} for a, s in zip(adds, SAMPLES)]}

    def run_on(self, kind, job_id, settings):
        path = os.path.join(self.cluster.dir, job_id + ".json")
        with open(path, "w") as handle:
            import json
            json.dump(settings, handle)
        result = self.cluster.run_controller("--job", path, "--job-id", job_id, "--no-progress",
                                             endpoint=self.endpoints[kind], timeout=240)
        self.assertEqual(result.returncode, 0, result.err[-3000:])
        return self.outcome(job_id)

    def outcome(self, job_id):
        """(each round's aggregate sha256, the workers that answered)."""
        summary = self.cluster.summary(job_id)
        self.assertEqual(summary["status"], "completed", summary)
        digests, workers = [], set()
        for number in range(ROUNDS):
            record = self.cluster.read_json(job_id, "rounds/round-%06d.json" % number)
            self.assertEqual(record["answered"], TASKS)
            digests.append(record["aggregate"]["sha256"])
            workers |= {r["worker"] for r in record["results"]}
        self.assertEqual(summary["final_global"]["value"]["sha256"], digests[-1])
        # The record's sha256 is the model file's.
        final = st.load(os.path.join(self.cluster.workdir, job_id, "model.safetensors"))
        self.assertEqual(data_sha256(final), digests[-1])
        return digests, workers

    def same_everywhere(self, name, model, adds, inline):
        settings = self.job(model, adds)
        outcomes = {kind: self.run_on(kind, "%s-%s" % (name, kind), settings)
                    for kind in ("c", "mixed", "py")}
        digests = {kind: outcome[0] for kind, outcome in outcomes.items()}
        self.assertEqual(digests["mixed"], digests["c"], name)
        self.assertEqual(digests["py"], digests["c"], name)
        self.assertEqual(len(set(digests["c"])), ROUNDS)  # every round moved the model
        kinds = {kind: {worker.split("-")[1][:-1] for worker in outcome[1]}
                 for kind, outcome in outcomes.items()}
        self.assertEqual(kinds, {"c": {"c"}, "mixed": {"c", "py"}, "py": {"py"}}, outcomes)
        record = self.cluster.read_json("%s-mixed" % name, "rounds/round-000001.json")
        self.assertEqual({r["inline"] for r in record["results"]}, {inline}, record)

    def test_every_dtype_inline(self):
        self.same_everywhere("inline", "every-dtype", EXACT_ADDS, inline=True)

    def test_float_adds_inline(self):
        self.same_everywhere("floats", "floats", FLOAT_ADDS, inline=True)

    def test_by_reference_past_4_mib(self):
        self.same_everywhere("large", "large", FLOAT_ADDS, inline=False)

    def test_the_python_front_end_drives_c_workers(self):
        settings = self.job("large", FLOAT_ADDS)
        command_line, _ = self.run_on("c", "front-cli", settings)
        seen = []
        result = zfed.Job(job_id="front-py", connect=self.endpoints["c"],
                          workdir=self.cluster.workdir, controller=binary("zfed-controller"),
                          stderr=False, on_round=lambda record, model: seen.append(
                              (record["round"], record["aggregate"]["sha256"],
                               data_sha256(model))), **settings).run()
        self.assertTrue(result.ok, result.stderr)
        self.assertEqual(result.status, "completed")
        self.assertEqual([r for r, _, _ in seen], list(range(ROUNDS)))
        self.assertEqual([d for _, d, _ in seen], command_line)
        self.assertEqual([d for _, _, d in seen], command_line)  # the models handed over
        digests, workers = self.outcome("front-py")
        self.assertEqual(digests, command_line)
        self.assertTrue(all(w.startswith("c-c") for w in workers), workers)


if __name__ == "__main__":
    main()
