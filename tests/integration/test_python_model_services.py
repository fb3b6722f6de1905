"""Model services (MODELS.md), Python to Python through the C broker: a
zfed-py-worker serving tensoravg (section 11) and other model services,
fed by zfed.Client: models inline (one data frame, read without a copy) and
by reference (fetched in chunks from blob services both ways, cached by
id, held until released or for --hold-ms, 507 over --hold-bytes)."""

import math
import os
import sys
import unittest
from fractions import Fraction

import numpy as np

from test_models_numpy import round_fraction
from zfedtest import PYTHON_PACKAGE_DIR, Cluster, main, wait_for

sys.path.insert(0, PYTHON_PACKAGE_DIR)
import zfed  # noqa: E402
from zfed import blob as zb  # noqa: E402
from zfed import client as zc  # noqa: E402
from zfed import models as zm  # noqa: E402
import zfed.services  # noqa: E402
import zfed.worker  # noqa: E402

MIB = 1 << 20


def rounded_add(add, dtype):
    """add (a float64; an integer rounded to one first) rounded once into a
    16-bit float dtype, by test_models_numpy's exact rounding, as a float."""
    bits = round_fraction(Fraction(float(add)), dtype)
    if bits is None:
        return math.copysign(math.inf, add)
    if dtype == "BF16":
        return float(zm.bf16_to_f32(np.uint16(bits)))
    return float(np.uint16(bits).view(np.float16))


def expected_tensoravg(model, add):
    """MODELS.md 11, computed here with numpy on its own."""
    out = {}
    for name, array in model.items():
        dtype = model.dtype(name)
        if dtype == "F64":
            out[name] = array + np.float64(add)
        elif dtype == "F32":
            out[name] = (array + np.float32(add)).astype(np.float32)
        elif dtype == "F16":
            out[name] = (array.astype(np.float32) + np.float32(rounded_add(add, "F16"))) \
                .astype(np.float16)
        elif dtype == "BF16":
            a = np.float32(rounded_add(add, "BF16"))
            out[name] = zm.f32_to_bf16(zm.bf16_to_f32(array) + a)
        else:
            out[name] = np.asarray(array.astype(object) + int(add)).astype(array.dtype)
    return out


def every_dtype(rng):
    layout = zm.make_layout([("w.f64", "F64", (3, 4)), ("w.f32", "F32", (5,)),
                             ("w.f16", "F16", (2, 3)), ("w.bf16", "BF16", (7,)),
                             ("n.i64", "I64", (2,)), ("n.i32", "I32", ()),
                             ("n.i16", "I16", (3,)), ("n.i8", "I8", (4,)),
                             ("n.u64", "U64", (2,)), ("n.u32", "U32", (1,)),
                             ("n.u16", "U16", (2,)), ("n.u8", "U8", (0, 2))])
    model = zm.Model.empty(layout)
    for tensor in layout:
        array = model[tensor.name]
        if tensor.dtype == "BF16":
            array[...] = zm.f32_to_bf16(rng.normal(size=array.shape).astype(np.float32))
        elif tensor.dtype in zm.FLOAT_DTYPES:
            array[...] = rng.normal(size=array.shape)
        else:
            array[...] = rng.integers(0, 100, size=array.shape)
    return model


class ModelServices(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster("py-models")
        cluster = cls.cluster
        cluster.start_broker()
        cls.worker = cluster.start_py_worker("zfed.services:tensoravg", "--concurrency", "2",
                                             "--credit", "2", name="py-tavg")
        # A site with a small hold budget, one with a short hold.
        cluster.start_py_worker("zfed.services:tensoravg", "--site", "tight", "--hold-bytes",
                                str(6 * MIB), name="py-tight")
        cluster.start_py_worker("zfed.services:tensoravg", "--site", "brief", "--hold-ms",
                                "200", name="py-brief")
        cluster.start_py_worker("py_services:scale", name="py-scale")
        cluster.start_py_worker("py_services:broken_model", name="py-broken")
        cluster.wait_workers(2, service="tensoravg")
        cluster.wait_workers(1, service="tensoravg@tight")
        cluster.wait_workers(1, service="tensoravg@brief")
        cluster.wait_workers(1, service="scale")
        cluster.wait_workers(1, service="broken-model")
        cls.client = zfed.Client(cluster.endpoint, timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.cluster.close()

    def test_every_dtype_inline_both_ways(self):
        model = every_dtype(np.random.default_rng(1))
        reply = self.client.call("tensoravg", zc.task("inline", 0, 0, {"add": 3, "samples": 7}),
                                 model=model)
        self.assertIsNotNone(reply.result, reply.message)
        self.assertEqual(reply.result.outputs["samples"], 7)
        self.assertEqual(set(reply.result.outputs), {"model", "samples"})
        self.assertTrue(reply.descriptor.inline)
        self.assertEqual(len(reply.frames), 2)  # the body and one data frame
        self.assertEqual(reply.descriptor.tensors, model.layout())
        want = expected_tensoravg(model, 3)
        frame = np.frombuffer(reply.frames[1].buffer, np.uint8)
        for name, array in reply.model.items():
            self.assertEqual(reply.model.dtype(name), model.dtype(name))
            self.assertTrue(np.array_equal(array, want[name]), name)
            if array.nbytes:  # the result's arrays are views of its data frame
                self.assertTrue(np.shares_memory(array, frame), name)

    def test_separate_arrays_and_metrics(self):
        model = {"a": np.arange(6, dtype=np.float32).reshape(2, 3),
                 "b": np.ones(4, np.float64)}
        reply = self.client.call("scale", zc.task("scale", 1, 0, {"factor": 2.5, "samples": 3},
                                                  global_round=0), model=model)
        self.assertEqual(reply.result.outputs["factor"], 2.5)
        self.assertEqual(reply.result.outputs["samples"], 3)
        self.assertEqual(reply.model["a"].tolist(), (np.arange(6) * 2.5).reshape(2, 3).tolist())

    def test_refusals(self):
        model = {"w": np.zeros(4, np.float32)}
        cases = [({"add": "x", "samples": 1}, 422, "add"),
                 ({"add": 1.0}, 422, "samples"),
                 ({"add": 1.0, "samples": 1, "lr": 3}, 422, "lr")]
        for index, (params, code, field) in enumerate(cases):
            error = self.client.call("tensoravg", zc.task("refuse", 0, index, params),
                                     model=model).error
            self.assertEqual((error.code, error.field), (code, field), error.message)
        broken = self.client.call("broken-model", zc.task("refuse", 0, 9, {}), model=model).error
        self.assertEqual(broken.code, 500)
        self.assertIn("layout differs from the global", broken.message)
        # A value where a descriptor belongs: 400 naming the global.
        bad = self.client.call("tensoravg", zc.task("refuse", 0, 10, {"add": 1, "samples": 1},
                                                    global_value="0")).error
        self.assertEqual((bad.code, bad.field), (400, "global"))
        # An inline descriptor without its data frame.
        descriptor, _ = zm.describe(model)
        self.client.send("tensoravg", [zc.task("refuse", 0, 11, {"add": 1, "samples": 1},
                                               descriptor.elements()).encode()])
        _, bodies = self.client.receive()
        error = zfed.protocol.decode(bodies[0].bytes)
        self.assertEqual((error.code, error.task_id), (400, 11))
        self.assertIn("data frame", error.message)

    def test_a_raising_model_service_is_answered_500_and_the_worker_serves_on(self):
        # scale without its "factor": a KeyError on a compute thread.
        model = {"w": np.arange(3, dtype=np.float32)}
        for task_id in range(3):  # every time, and the worker is still there
            error = self.client.call("scale", zc.task("raise", 0, task_id, {"samples": 1}),
                                     model=model).error
            self.assertIsNotNone(error)
            self.assertEqual((error.code, error.field, error.task_id), (500, "", task_id))
            self.assertIn("KeyError", error.message)
            self.assertIn("factor", error.message)
        reply = self.client.call("scale", zc.task("raise", 0, 3, {"factor": 2.0}), model=model)
        self.assertIsNotNone(reply.result, reply.message)
        self.assertEqual(reply.model["w"].tolist(), [0.0, 2.0, 4.0])

    def test_a_large_model_goes_by_reference_in_chunks_and_is_released(self):
        rng = np.random.default_rng(2)
        # 6 MiB + a bit: 2 chunks of 4 MiB each way.
        model = zm.Model.empty(zm.make_layout([("big", "F32", (1536 * 1024 + 3,)),
                                               ("small", "F64", (5,))]))
        model["big"][...] = rng.normal(size=model["big"].shape)
        model["small"][...] = np.arange(5)
        blobs = self.client.blobs
        served = blobs.store.served
        reply = self.client.call("tensoravg", zc.task("ref", 0, 0, {"add": 0.5, "samples": 2}),
                                 model=model)
        self.assertIsNotNone(reply.result, reply.message)
        self.assertEqual(blobs.store.served - served, 2)  # the worker fetched 2 chunks
        self.assertFalse(reply.descriptor.inline)
        self.assertTrue(zm.is_blob_service(reply.descriptor.source))
        self.assertEqual(reply.descriptor.chunks, 2)
        self.assertEqual(len(reply.frames), 1)
        want = expected_tensoravg(model, 0.5)
        for name in model:
            self.assertTrue(np.array_equal(reply.model[name], want[name]), name)
        # A second task with the same global: the worker has it (cached by id).
        published = blobs.publish(model)  # the same id: the model's sha256
        self.assertEqual(published.id, zm.sha256(zm.model_data(model)))
        again = self.client.call("tensoravg", zc.task("ref", 0, 1, {"add": 0.5, "samples": 2}),
                                 model=published)
        self.assertIsNotNone(again.result, again.message)
        self.assertEqual(blobs.store.served - served, 2)  # nothing fetched again
        self.assertNotEqual(again.descriptor.id, reply.descriptor.id)  # results differ
        # Released once it is read: a second release finds nothing, a fetch 404.
        self.assertEqual(self.client.release(reply), 1)
        self.assertEqual(self.client.release(reply), 0)
        with self.assertRaises(zb.TransferError) as caught:
            self.client.fetcher.fetch(reply.descriptor)
        self.assertIn("404", str(caught.exception))
        self.assertEqual(self.client.release(again), 1)

    def test_no_copy_of_the_model_beyond_the_result(self):
        """tracemalloc sees numpy's allocations: answering a model task
        allocates the result (and, by reference, the buffer the chunks are
        assembled in), nothing the size of the model besides."""
        import tracemalloc
        runtime = zfed.worker.WorkerRuntime(
            zfed.services.tensoravg, zfed.worker.Config(endpoint=self.cluster.endpoint,
                                                        name="traced"))
        for what, tensor_bytes, copies in (("inline", 4 * MIB, 1), ("by reference", 24 * MIB, 2)):
            with self.subTest(what):
                model = zm.Model.empty(zm.make_layout([("w", "F32", (tensor_bytes // 4,))]))
                model["w"][...] = np.arange(model["w"].size) % 1000
                descriptor, data = self.client.global_descriptor(model)
                task = zc.task("traced", 0, 0, {"add": 2.0, "samples": 1},
                               descriptor.elements())
                bodies = [task.encode()] + [bytes(memoryview(d)) for d in data]
                tracemalloc.start()
                try:
                    frames = runtime.answer(bodies, "traced")
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
                result = zfed.protocol.decode(frames[0])
                self.assertEqual(result.KIND, zfed.protocol.KIND_RESULT, result)
                # A copy more would be a whole model more; chunk frames and
                # the finiteness check's 1 MiB steps are well below that.
                self.assertLess(peak, (copies + 0.5) * tensor_bytes, what)
                self.assertGreaterEqual(peak, copies * tensor_bytes, what)
                if what == "inline":
                    out = zm.decode_model(zm.check_descriptor(result.outputs["model"]), frames[1])
                    self.assertEqual(float(out["w"][999]), 999 + 2.0)
                else:
                    runtime.store.release([bytes(result.outputs["model"][2])])

    def big_task(self, service, task_id):
        model = zm.Model.empty(zm.make_layout([("w", "U8", (5 * MIB,))]))
        model["w"][...] = 7
        return self.client.call(service, zc.task("hold", 0, task_id, {"add": 1, "samples": 1}),
                                model=model)

    def test_a_result_beyond_the_hold_budget_is_answered_507(self):
        first = self.big_task("tensoravg@tight", 0)
        self.assertIsNotNone(first.result, first.message)
        self.assertEqual(int(first.model["w"][0]), 8)
        # While it is held, a second result would pass --hold-bytes.
        second = self.big_task("tensoravg@tight", 1)
        self.assertIsNotNone(second.error)
        self.assertEqual((second.error.code, second.error.task_id), (507, 1))
        self.assertIn("--hold-bytes", second.error.message)
        self.assertEqual(self.client.release(first), 1)
        third = self.big_task("tensoravg@tight", 2)
        self.assertIsNotNone(third.result, third.message)
        self.assertEqual(self.client.release(third), 1)

    def test_a_result_never_released_expires_after_the_hold_time(self):
        held = self.big_task("tensoravg@brief", 0)
        self.assertIsNotNone(held.result, held.message)

        def gone():
            try:
                self.client.fetcher.fetch(held.descriptor)
            except zb.TransferError as failure:
                return "404" in str(failure)
            return False
        wait_for(gone, 20, interval=0.1, what="the held result to expire")
        self.assertEqual(self.client.release(held), 0)


if __name__ == "__main__":
    main()
