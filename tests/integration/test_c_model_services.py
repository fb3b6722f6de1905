"""Model services on the C worker (MODELS.md 8, 11), driven by zfed.Client
through the C broker: tensoravg inline and by reference, the cache of the
last global, the hold budget and time, sites, workers killed mid-fetch and
mid-hold, C and Python workers giving byte-identical results, and hostile
input that never brings the worker down."""

import hashlib
import os
import signal
import sys
import threading
import time
import unittest

import msgpack
import numpy as np
import zmq

import test_python_model_services as python_models
from test_python_model_services import every_dtype, expected_tensoravg
from zfedtest import MDPC, MDPW, PYTHON_PACKAGE_DIR, READY, Cluster, main, wait_for

sys.path.insert(0, PYTHON_PACKAGE_DIR)
import zfed  # noqa: E402
from zfed import blob as zb  # noqa: E402
from zfed import client as zc  # noqa: E402
from zfed import models as zm  # noqa: E402
from zfed import protocol as zp  # noqa: E402

MIB = 1 << 20
HEARTBEAT_MS = 200  # short, so a killed worker is noticed within a second or two


def f32_model(mib, seed=1, tensors=3):
    """A float32 model of about mib MiB in a few tensors, one buffer."""
    count = mib * MIB // 4
    sizes = [count // tensors] * (tensors - 1)
    sizes.append(count - sum(sizes))
    model = zm.Model.empty(zm.make_layout([("layer%d.weight" % i, "F32", (n,))
                                           for i, n in enumerate(sizes)]))
    rng = np.random.default_rng(seed)
    for name in model:
        model[name][...] = rng.standard_normal(model[name].shape, dtype=np.float32)
    return model


def data_sha256(model):
    return hashlib.sha256(zm.model_data(model)).hexdigest()


def same_model(test, got, want):
    for name in want:
        test.assertTrue(np.array_equal(np.asarray(got[name]), np.asarray(want[name])), name)


class GatedHolder:
    """A blob service by hand: registers, heartbeats, and answers fetches
    from a BlobStore only while its gate is open (else it keeps them), or
    with forged replies when `forge` says how."""

    def __init__(self, cluster, service=None):
        self.service = service or zm.new_blob_service()
        self.store = zb.BlobStore()
        self.gate = threading.Event()
        self.forge = None  # "length", "id", "index" or None
        self.kept = []
        self.seen = 0
        self.socket = cluster.context.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(cluster.endpoint)
        self.socket.send_multipart([b"", MDPW, READY, self.service.encode(), b"credit=8"])
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _answer(self, address, bodies):
        frames = self.store.answer(bodies)
        if self.forge and len(frames) == 2:
            header = msgpack.unpackb(frames[0])
            if self.forge == "length":
                frames[1] = bytes(frames[1])[:-1]
            elif self.forge == "id":
                header[2] = bytes(32)
            elif self.forge == "index":
                header[3] += 1
            frames[0] = msgpack.packb(header, use_bin_type=True)
        self.socket.send_multipart([b"", MDPW, b"\x03", address, b""] + list(frames))

    def _loop(self):
        last = 0.0
        while self.running:
            if time.monotonic() - last > HEARTBEAT_MS / 1000.0:
                self.socket.send_multipart([b"", MDPW, b"\x04"])
                last = time.monotonic()
            if self.gate.is_set():
                while self.kept:
                    self._answer(*self.kept.pop(0))
            if not self.socket.poll(20):
                continue
            frames = self.socket.recv_multipart()
            if len(frames) >= 6 and frames[2] == b"\x02":
                self.seen += 1
                if self.gate.is_set():
                    self._answer(frames[3], frames[5:])
                else:
                    self.kept.append((frames[3], frames[5:]))

    def publish(self, model):
        return self.store.publish(model, self.service)

    def close(self):
        self.running = False
        self.thread.join(5)
        self.socket.close(0)


class CModelServices(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cluster = cls.cluster = Cluster("c-models")
        cluster.start_broker("--heartbeat-ms", str(HEARTBEAT_MS))
        beat = ["--heartbeat-ms", str(HEARTBEAT_MS)]
        cls.worker = cluster.start_worker("--service", "tensoravg", "--concurrency", "2",
                                          "--credit", "2", *beat, name="c-tavg")
        cluster.start_worker("--service", "tensoravg", "--site", "tight", "--hold-bytes",
                             "6MiB", *beat, name="c-tight")
        cluster.start_worker("--service", "tensoravg", "--site", "brief", "--hold-ms", "200",
                             *beat, name="c-brief")
        cluster.start_worker("--service", "tensoravg", "--site", "c", *beat, name="c-site")
        cluster.start_py_worker("zfed.services:tensoravg", "--site", "py", *beat, name="py-site")
        cluster.start_worker("--service", "tensoravg", "--site", "hostile", "--fetch-timeout-ms",
                             "300", *beat, name="c-hostile")
        cluster.wait_workers(2, service="tensoravg")
        for site in ("tight", "brief", "c", "py", "hostile"):
            cluster.wait_workers(1, service="tensoravg@" + site)
        cls.client = zfed.Client(cluster.endpoint, timeout=60)
        cls.client._blobs = zb.BlobServer(cluster.endpoint, heartbeat_ms=HEARTBEAT_MS).start()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.cluster.close()

    def call(self, service, task_id, params, model, job="cm"):
        return self.client.call(service, zc.task(job, 0, task_id, params), model=model)

    def test_every_dtype_inline(self):
        model = every_dtype(np.random.default_rng(3))
        for add in (3, 2.0):
            reply = self.call("tensoravg", int(add), {"add": add, "samples": 5}, model)
            self.assertIsNotNone(reply.result, reply.message)
            self.assertEqual(reply.result.worker.split(".")[0], "c-tavg")
            self.assertEqual(set(reply.result.outputs), {"model", "samples"})
            self.assertEqual(reply.result.outputs["samples"], 5)
            self.assertTrue(reply.descriptor.inline)
            self.assertEqual(len(reply.frames), 2)
            self.assertEqual(reply.descriptor.tensors, model.layout())
            self.assertIsNotNone(reply.descriptor.sha256)
            same_model(self, reply.model, expected_tensoravg(model, add))

    def test_by_reference_both_ways_cached_and_released(self):
        model = f32_model(64, seed=2)
        blobs = self.client.blobs
        served = blobs.store.served
        published = blobs.publish(model)
        reply = self.call("tensoravg", 0, {"add": 0.25, "samples": 2}, published)
        self.assertIsNotNone(reply.result, reply.message)
        self.assertFalse(reply.descriptor.inline)
        self.assertTrue(zm.is_blob_service(reply.descriptor.source))
        self.assertEqual(reply.descriptor.chunks, 16)
        self.assertEqual(blobs.store.served - served, 16)  # one fetch of every chunk
        same_model(self, reply.model, expected_tensoravg(model, 0.25))
        # The same global again: the worker has it by id and fetches nothing.
        again = self.call("tensoravg", 1, {"add": 0.25, "samples": 2}, published)
        self.assertIsNotNone(again.result, again.message)
        self.assertEqual(blobs.store.served - served, 16)
        self.assertNotEqual(again.descriptor.id, reply.descriptor.id)
        self.assertEqual(again.descriptor.sha256, reply.descriptor.sha256)
        # Released: once found, then not; a fetch after it is refused 404.
        self.assertEqual(self.client.release(reply), 1)
        self.assertEqual(self.client.release(reply), 0)
        with self.assertRaises(zb.TransferError) as caught:
            self.client.fetcher.fetch(reply.descriptor)
        self.assertIn("404", str(caught.exception))
        self.assertEqual(self.client.release(again), 1)
        blobs.store.release([published.id])

    def test_two_tasks_at_once_fetch_the_global_once(self):
        model = f32_model(8, seed=4)
        blobs = self.client.blobs
        published = blobs.publish(model)
        served = blobs.store.served
        for task in (10, 11):
            self.client.send("tensoravg", [zc.task("once", 0, task, {"add": 1, "samples": 1},
                                                   published.elements()).encode()])
        replies = []
        while len(replies) < 2:
            _, bodies = self.client.receive()
            replies.append(self.client.read(bodies))
        for reply in replies:
            self.assertIsNotNone(reply.result, reply.message)
            same_model(self, reply.model, expected_tensoravg(model, 1))
            self.client.release(reply)
        self.assertEqual(blobs.store.served - served, published.chunks)
        blobs.store.release([published.id])

    def test_256_mib_round(self):
        model = f32_model(256, seed=5, tensors=4)
        started = time.monotonic()
        reply = self.call("tensoravg", 0, {"add": 1.5, "samples": 3}, model, job="big")
        self.assertIsNotNone(reply.result, reply.message)
        self.assertEqual(reply.descriptor.size, 256 * MIB)
        self.assertEqual(reply.descriptor.chunks, 64)
        same_model(self, reply.model, expected_tensoravg(model, 1.5))
        self.assertEqual(self.client.release(reply), 1)
        sys.stderr.write("256 MiB round: %.2f s\n" % (time.monotonic() - started))

    def test_c_and_python_workers_give_the_same_bytes(self):
        inline = every_dtype(np.random.default_rng(9))
        large = f32_model(6, seed=9)
        for model, add in ((inline, 3), (inline, 2.0), (large, 0.5), (large, -1.25)):
            digests = {}
            for site in ("c", "py"):
                reply = self.call("tensoravg@" + site, 0,
                                  {"add": add, "samples": 4, "site": site}, model)
                self.assertIsNotNone(reply.result, reply.message)
                digests[site] = data_sha256(reply.model)
                # The C worker hashes inline results only (MODELS.md 4: optional).
                if reply.descriptor.sha256 is not None:
                    self.assertEqual(bytes(reply.descriptor.sha256).hex(), digests[site])
                elif site == "c":
                    self.assertFalse(reply.descriptor.inline)
                self.client.release(reply)
            self.assertEqual(digests["c"], digests["py"], "add %r" % add)

    def test_every_16_bit_float_with_adds_that_round_twice_elsewhere(self):
        """Every finite BF16 and F16 value plus adds whose rounding into the
        dtype through binary32 differs from rounding once (MODELS.md 11):
        the C and the Python worker give the same bits, the bits of the
        add rounded once and the sum rounded once."""
        patterns = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
        bf16 = patterns[np.isfinite(zm.bf16_to_f32(patterns))]
        f16 = patterns[np.isfinite(patterns.view(np.float16))]
        layouts = {"BF16": [("x.bf16", "BF16", bf16.shape)], "F16": [("x.f16", "F16", f16.shape)]}
        adds = {"BF16": [1 + 2**-8 + 2**-30,        # binary32: 1 + 2^-8, a tie, to 1
                         -(1 + 2**-8 + 2**-40),
                         2**-7 * (1 + 2**-8) + 2**-40,   # the same tie 7 binades down
                         2**-134 + 2**-160,         # half the smallest subnormal, and a bit
                         2**60 + 2**36 + 1, 0.1],   # an integer past 2^53
                "F16": [1 + 2**-11 + 2**-30, -(1 + 2**-11 + 2**-40),
                        2**-25 + 2**-50, 4 + 2**-9 + 2**-32, 0.1]}
        for dtype, layout in layouts.items():
            model = zm.Model.empty(zm.make_layout(layout))
            model[layout[0][0]][...] = bf16 if dtype == "BF16" else f16.view(np.float16)
            for index, add in enumerate(adds[dtype]):
                replies = {site: self.call("tensoravg@" + site, index,
                                           {"add": add, "samples": 1, "site": site}, model)
                           for site in ("c", "py")}
                for site, reply in replies.items():
                    self.assertIsNotNone(reply.result, "%s %r: %s" % (site, add, reply.message))
                self.assertEqual(data_sha256(replies["py"].model),
                                 data_sha256(replies["c"].model), "%s add %r" % (dtype, add))
                same_model(self, replies["c"].model, expected_tensoravg(model, add))

    def test_site_is_checked_and_taken_out(self):
        model = {"w": np.zeros(4, np.float32)}
        ok = self.call("tensoravg@c", 0, {"add": 1, "samples": 1, "site": "c"}, model)
        self.assertIsNotNone(ok.result, ok.message)
        wrong = self.call("tensoravg@c", 1, {"add": 1, "samples": 1, "site": "elsewhere"}, model)
        self.assertEqual((wrong.error.code, wrong.error.field), (422, "site"))
        self.assertIn("serves site c", wrong.error.message)
        # Without --site the key is just unknown.
        other = self.call("tensoravg", 2, {"add": 1, "samples": 1, "site": "c"}, model)
        self.assertEqual((other.error.code, other.error.field), (422, "site"))
        self.assertIn("unknown parameter 'site'", other.error.message)

    # The hold budget (507) and the hold time, as the Python worker's tests
    # check them: the C workers of sites tight and brief have the same flags.
    big_task = python_models.ModelServices.big_task
    test_a_result_beyond_the_hold_budget_is_answered_507 = \
        python_models.ModelServices.test_a_result_beyond_the_hold_budget_is_answered_507
    test_a_result_never_released_expires_after_the_hold_time = \
        python_models.ModelServices.test_a_result_never_released_expires_after_the_hold_time

    def refused(self, bodies, service="tensoravg@hostile"):
        self.client.send(service, bodies)
        _, frames = self.client.receive()
        self.assertEqual(len(frames), 1)
        body = frames[0].bytes
        if zp.is_batch(body):
            items = zp.decode_batch(body)
            self.assertEqual(len(items), 1)
            body = items[0]
        return zp.decode(body)

    def test_hostile_input_is_refused_and_the_worker_stays(self):
        small = {"w": np.arange(4, dtype=np.float32)}
        descriptor, data = zm.describe(small)
        data = bytes(data)
        params = {"add": 1, "samples": 1}
        task = zc.task("hostile", 0, 0, params, descriptor.elements()).encode()
        elements = descriptor.elements()
        elements[6][0][3] = 4  # the first tensor at offset 4
        forged = bytearray(data)
        forged[0] ^= 1
        cases = [
            # An inline descriptor without its data frame, or with a short one.
            ([task], 400, "global", "comes with its data frame"),
            ([task, data[:-1]], 400, "global", "the data frame is 15 bytes"),
            # A data frame after a value that is no descriptor.
            ([zc.task("hostile", 0, 0, params, "0").encode(), data], 400, "global",
             "bad model: descriptor"),
            ([task, data, b"x"], 400, "", "at most one data frame"),
            ([zp.encode_batch([task])], 400, "", "cannot be batched"),
            ([zc.task("hostile", 0, 0, params, elements).encode(), data], 400, "global",
             "bad model: offset"),
            ([task, bytes(forged)], 503, "", "does not match its sha256"),
            ([b"\x93\xc1"], 400, "", "bad task"),
        ]
        for bodies, code, field, text in cases:
            message = self.refused(bodies)
            self.assertEqual(message.KIND, zp.KIND_ERROR, text)
            self.assertEqual((message.code, message.field), (code, field), message.message)
            self.assertIn(text, message.message)
        # A global by reference from a service that holds no such id.
        holder = self.client.blobs
        unknown = zm.Descriptor(bytes(range(32)), bytes(range(32)), 6 * MIB, zm.CHUNK_DEFAULT,
                                f32_model(6).layout(), holder.service)
        message = self.refused([zc.task("hostile", 0, 1, {"add": 1, "samples": 1},
                                        unknown.elements()).encode()])
        self.assertEqual(message.code, 503)
        self.assertIn("cannot fetch the global model", message.message)
        self.assertIn("404", message.message)
        # A holder that forges its replies: short chunks, foreign ids, wrong
        # indices are dropped; the fetch times out and the task is 503.
        gated = GatedHolder(self.cluster)
        try:
            self.cluster.wait_workers(1, service=gated.service)
            model = f32_model(6, seed=11)
            published = gated.publish(model)
            gated.gate.set()
            for forge in ("length", "id", "index"):
                gated.forge = forge
                message = self.refused([zc.task("hostile", 0, 2, {"add": 1, "samples": 1},
                                                published.elements()).encode()])
                self.assertEqual(message.code, 503, forge)
                self.assertIn("unanswered after 4 sends", message.message)
            gated.forge = None
            ok = self.call("tensoravg@hostile", 3, {"add": 1, "samples": 1}, published)
            self.assertIsNotNone(ok.result, ok.message)
            same_model(self, ok.model, expected_tensoravg(model, 1))
            self.client.release(ok)
        finally:
            gated.close()
        for process in self.cluster.processes:
            if process.name == "c-hostile":
                self.assertTrue(process.alive(), process.log()[-2000:])


class KilledWorkers(unittest.TestCase):
    """kill -9 of a C worker mid-fetch and mid-hold: the task runs again
    on another worker, and nothing torn is ever used or returned."""

    def setUp(self):
        self.cluster = Cluster("c-models-kill")
        self.cluster.start_broker("--heartbeat-ms", str(HEARTBEAT_MS))
        self.client = zfed.Client(self.cluster.endpoint, timeout=60)
        # The client's blob service beats in time with this broker.
        self.client._blobs = zb.BlobServer(self.cluster.endpoint,
                                           heartbeat_ms=HEARTBEAT_MS).start()

    def tearDown(self):
        self.client.close()
        self.cluster.close()

    def start(self, name):
        worker = self.cluster.start_worker("--service", "tensoravg", "--heartbeat-ms",
                                           str(HEARTBEAT_MS), name=name)
        worker.expect_clean_exit = False
        return worker

    def test_killed_mid_fetch_costs_a_rerun(self):
        gated = GatedHolder(self.cluster)
        try:
            self.cluster.wait_workers(1, service=gated.service)
            model = f32_model(16, seed=6)
            published = gated.publish(model)
            first = self.start("victim")
            self.cluster.wait_workers(1, service="tensoravg")
            self.client.send("tensoravg", [zc.task("kill", 0, 0, {"add": 2, "samples": 1},
                                                   published.elements()).encode()])
            wait_for(lambda: gated.seen >= 1, 10, what="the worker to start fetching")
            # Killed once the broker knows it heartbeats while it works (else a
            # worker silent on its first task gets the busy allowance).
            broker_log = self.cluster.processes[0]
            wait_for(lambda: "(tensoravg) heartbeats while it works" in broker_log.log(), 10,
                     what="the broker to see the worker heartbeat while busy")
            first.signal(signal.SIGKILL)
            second = self.start("heir")
            gated.gate.set()  # the fetches of the dead worker are answered to nobody
            _, bodies = self.client.receive()
            reply = self.client.read(bodies)
            self.assertIsNotNone(reply.result, reply.message)
            self.assertEqual(reply.result.worker, second.name)
            same_model(self, reply.model, expected_tensoravg(model, 2))
            self.client.release(reply)
            self.assertGreaterEqual(self.cluster.status()["counters"]["redispatched"], 1)
        finally:
            gated.close()

    def test_killed_mid_hold_costs_a_rerun(self):
        holder = self.start("holder")
        self.cluster.wait_workers(1, service="tensoravg")
        model = f32_model(8, seed=7)
        task = zc.task("hold", 0, 0, {"add": 1, "samples": 1})
        descriptor, data = self.client.global_descriptor(model)
        task.global_value = descriptor.elements()
        self.client.send("tensoravg", [task.encode()] + data)
        _, bodies = self.client.receive()
        result = zp.decode(bodies[0].bytes)
        self.assertEqual(result.KIND, zp.KIND_RESULT)
        held = zm.check_descriptor(result.outputs["model"], "result")
        self.assertFalse(held.inline)
        holder.signal(signal.SIGKILL)
        # Its result is gone with it: the fetch fails, whole or not at all.
        fetcher = zb.Fetcher(self.cluster.endpoint, timeout_ms=500, resends=1)
        with self.assertRaises(zb.TransferError):
            fetcher.fetch(held)
        fetcher.close()
        # The task again (the next attempt), on a worker that is alive.
        heir = self.start("heir")
        wait_for(lambda: self.cluster.status()["services"].get("tensoravg", {}).get("workers")
                 == 1, 10, what="the killed worker to expire")
        again = self.client.call("tensoravg", zc.task("hold", 0, 0, {"add": 1, "samples": 1},
                                                      attempt=1), model=descriptor)
        self.assertIsNotNone(again.result, again.message)
        self.assertEqual(again.result.worker, heir.name)
        same_model(self, again.model, expected_tensoravg(model, 1))
        self.client.release(again)


if __name__ == "__main__":
    main()
