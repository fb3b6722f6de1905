"""zfed.models and zfed.safetensors (the Python package, from this source
tree): the codec agrees with schemas/model-vectors.json, models go to and
from the wire without copies, and safetensors files round-trip."""

import json
import math
import os
import struct
import sys
import tempfile
import unittest
from fractions import Fraction

import numpy as np
import zmq

from test_models_numpy import round_fraction
from zfedtest import SOURCE_DIR, main

sys.path.insert(0, os.path.join(SOURCE_DIR, "python"))
from zfed import models as zm  # noqa: E402
from zfed import protocol as zp  # noqa: E402
from zfed import safetensors as st  # noqa: E402

VECTORS = os.path.join(SOURCE_DIR, "schemas", "model-vectors.json")
ALL_DTYPES = list(zm.DTYPES)


def every_dtype_model(seed=7):
    """A Model of one tensor per dtype, random values, one buffer."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 5), (7,), (), (9,), (4, 1, 3), (2, 0), (1,), (6,), (2, 2), (5,), (3,), (8,)]
    model = zm.Model.empty(zm.make_layout(
        ("t_%s" % dtype.lower(), dtype, shape) for dtype, shape in zip(ALL_DTYPES, shapes)))
    for name, array in model.items():
        dtype = model.dtype(name)
        if dtype == "BF16":
            array[...] = zm.f32_to_bf16(rng.normal(size=array.shape).astype(np.float32))
        elif dtype in zm.FLOAT_DTYPES:
            array[...] = rng.normal(size=array.shape)
        else:
            info = np.iinfo(array.dtype)
            array[...] = rng.integers(info.min, info.max, size=array.shape, dtype=array.dtype,
                                      endpoint=True)
    return model


class ModelVectors(unittest.TestCase):
    """Every vector of schemas/model-vectors.json, valid ones decoded and
    re-encoded, invalid ones refused with their reason class."""

    @classmethod
    def setUpClass(cls):
        with open(VECTORS) as handle:
            cls.document = json.load(handle)
        cls.vectors = cls.document["vectors"]

    def of(self, what):
        chosen = [v for v in self.vectors if v["what"] == what]
        self.assertTrue(chosen, what)
        return chosen

    def test_the_file_is_what_its_generator_writes(self):
        import subprocess
        made = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "schemas", "tools",
                                                            "make_model_vectors.py")],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(made.returncode, 0, made.stderr)
        self.assertEqual(json.loads(made.stdout), self.document,
                         "schemas/model-vectors.json is stale: run make_model_vectors.py")

    def test_every_invalid_vector_names_a_known_reason(self):
        for vector in self.vectors:
            if not vector["valid"]:
                self.assertIn(vector["reason"], self.document["reasons"], vector["name"])

    def test_descriptors(self):
        for vector in self.of("descriptor"):
            with self.subTest(vector["name"]):
                data = bytes.fromhex(vector["hex"])
                if vector["valid"]:
                    descriptor = zm.decode_descriptor(data, vector.get("role"))
                    self.assertEqual(descriptor.fields(), vector["fields"])
                    self.assertEqual(descriptor.encode().hex(),
                                     vector.get("canonical_hex", vector["hex"]))
                else:
                    with self.assertRaises(zm.ModelError) as caught:
                        zm.decode_descriptor(data, vector.get("role"))
                    self.assertEqual(caught.exception.reason, vector["reason"],
                                     str(caught.exception))

    def test_transfer_bodies(self):
        for vector in self.of("transfer"):
            with self.subTest(vector["name"]):
                data = bytes.fromhex(vector["hex"])
                if vector["valid"]:
                    message = zm.decode_transfer(data)
                    self.assertEqual(dict(message.fields(), kind=message.KIND),
                                     vector["fields"])
                    self.assertEqual(zm.encode_transfer(message).hex(),
                                     vector.get("canonical_hex", vector["hex"]))
                else:
                    with self.assertRaises(zm.ModelError) as caught:
                        zm.decode_transfer(data)
                    self.assertEqual(caught.exception.reason, vector["reason"],
                                     str(caught.exception))

    def test_data_decodes_to_the_listed_values(self):
        for vector in self.of("data"):
            descriptor = zm.decode_descriptor(bytes.fromhex(vector["descriptor_hex"]), "global")
            data = bytes.fromhex(vector["data_hex"])
            self.assertEqual(zm.sha256(data), descriptor.sha256)
            model = zm.decode_model(descriptor, data)
            self.assertEqual(list(model), list(vector["values"]))
            for name, values in vector["values"].items():
                array = model[name]
                if model.dtype(name) == "BF16":
                    self.assertEqual(array.tolist(), vector["bf16_bits"])
                    array = zm.bf16_to_f32(array)
                self.assertEqual(array.reshape(-1).tolist(), values, name)

    def test_frames_of_model_tasks(self):
        for vector in self.of("frames"):
            with self.subTest(vector["name"]):
                frames = [bytes.fromhex(f) for f in vector["frames"]]
                task = zp.decode(frames[0])
                descriptor = zm.check_descriptor(task.global_value, "global")
                data = frames[1] if len(frames) == 2 else None
                if vector["valid"]:
                    zm.check_data(descriptor, data)
                else:
                    with self.assertRaises(zm.ModelError) as caught:
                        zm.check_data(descriptor, data)
                    self.assertEqual(caught.exception.reason, vector["reason"])


class ZeroCopy(unittest.TestCase):

    def test_every_dtype_round_trips_through_zmq_without_a_copy(self):
        model = every_dtype_model()
        descriptor, data = zm.describe(model)
        # Sending: the data frame is the model's own buffer.
        self.assertTrue(np.shares_memory(np.frombuffer(data, np.uint8), model.buffer))
        context = zmq.Context()
        try:
            a, b = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
            a.bind("inproc://models")
            b.connect("inproc://models")
            a.send_multipart([descriptor.encode(), data], copy=False)
            frames = b.recv_multipart(copy=False)
            received = zm.decode_descriptor(frames[0].bytes, "global")
            decoded = zm.decode_model(received, frames[1])
            frame_bytes = np.frombuffer(frames[1].buffer, np.uint8)
            self.assertEqual(list(decoded), list(model))
            for name, array in decoded.items():
                with self.subTest(name):
                    self.assertEqual(decoded.dtype(name), model.dtype(name))
                    self.assertEqual(array.shape, model[name].shape)
                    self.assertTrue(np.array_equal(array, model[name], equal_nan=True))
                    self.assertFalse(array.flags.writeable)
                    if array.nbytes:
                        self.assertTrue(np.shares_memory(array, frame_bytes), name)
            # Decoded again as it is (a relay), the frame is sent as it came.
            self.assertTrue(np.shares_memory(np.frombuffer(zm.model_data(decoded), np.uint8),
                                             frame_bytes))
            with self.assertRaises(ValueError):
                decoded["t_f32"][0] = 1.0
            a.close()
            b.close()
        finally:
            context.term()

    def test_separate_arrays_are_packed_into_one_buffer_once(self):
        arrays = {"w": np.arange(12, dtype=np.float32).reshape(3, 4),
                  "b": np.arange(3, dtype=np.float64)[::-1]}  # not contiguous
        data = zm.model_data(arrays)
        self.assertEqual(data.nbytes, 48 + 24)
        self.assertFalse(np.shares_memory(np.frombuffer(data, np.uint8), arrays["w"]))
        back = zm.decode_model(zm.describe(arrays)[0], data)
        self.assertTrue(np.array_equal(back["b"], [2, 1, 0]))

    def test_bf16_rounds_to_nearest_even_like_torch(self):
        values = np.array([1.0, 1.00390625, 1.01171875, -3.14159, 65504.0, 1e-40, 3.4e38,
                           np.inf, -np.inf], np.float32)
        bits = zm.f32_to_bf16(values)
        # 1 + 2^-8 is halfway between 1 and 1 + 2^-7: to even (1.0); 1 + 3*2^-8 up.
        self.assertEqual(bits[:3].tolist(), [0x3F80, 0x3F80, 0x3F82])
        self.assertTrue(np.array_equal(zm.bf16_to_f32(zm.f32_to_bf16(zm.bf16_to_f32(bits))),
                                       zm.bf16_to_f32(bits)))
        self.assertTrue(np.isnan(zm.bf16_to_f32(zm.f32_to_bf16(np.float32(np.nan)))))
        try:
            import torch
        except ImportError:
            return
        expected = torch.tensor(values).to(torch.bfloat16).view(torch.int16).numpy()
        self.assertEqual(bits.view(np.int16).tolist(), expected.tolist())

    def test_float64_rounds_once_into_bf16(self):
        """zm.to_bf16 against an exact rounding (test_models_numpy's, on
        fractions): ties and near-ties that rounding through binary32
        first would move, subnormals, the range's edge, signed zeros."""
        rng = np.random.default_rng(5)
        ties = [(1 + 2**-8) * 2.0**e for e in (-140, -130, -126, -20, 0, 7, 120)]
        values = [1 + 2**-8 + 2**-30, -(1 + 2**-8 + 2**-40), 1 + 2**-8 - 2**-30,
                  1 + 3 * 2**-8 - 2**-35, 2**-134 + 2**-160, 2**-134, -2**-150, 2**-170,
                  0.0, -0.0, 0.1, 3.3895313892515355e38, 3.3961775292304e38, 3.4e38, 1e39,
                  -1e300, 2.0**60 + 2.0**36]
        for tie in ties:
            values += [tie, tie + tie * 2**-30, tie - tie * 2**-30, -tie - tie * 2**-40]
        values += list(rng.normal(size=500) * 2.0 ** rng.integers(-140, 128, size=500))
        values += list(rng.integers(0, 1 << 63, size=500).view(np.float64))  # any bits
        values = [v for v in values if np.isfinite(v)]
        got = zm.to_bf16(np.array(values)).tolist()
        for value, bits in zip(values, got):
            want = round_fraction(Fraction(value), "BF16")
            want = 0x7F80 | (0x8000 if value < 0 else 0) if want is None else want
            if value == 0:
                want = 0x8000 if math.copysign(1, value) < 0 else 0
            self.assertEqual(bits, want, "%r (%s)" % (value, value.hex()))
        # One rounding where binary32 first gives another answer.
        self.assertEqual(int(zm.to_bf16(np.float64(1 + 2**-8 + 2**-30))), 0x3F81)
        self.assertEqual(int(zm.f32_to_bf16(np.float32(1 + 2**-8 + 2**-30))), 0x3F80)
        self.assertEqual(zm.to_bf16(np.array([np.inf, -np.inf])).tolist(), [0x7F80, 0xFF80])
        self.assertTrue(np.isnan(zm.bf16_to_f32(zm.to_bf16(np.float64(np.nan)))))
        # Narrower floats widen exactly, and a float64 array for a BF16
        # tensor is rounded once too.
        self.assertEqual(zm.to_bf16(np.float32(1.00390625)).tolist(), 0x3F80)
        model = zm.as_model({"w": np.array([1 + 2**-8 + 2**-30])}, {"w": "BF16"})
        self.assertEqual(model["w"].tolist(), [0x3F81])

    def test_non_finite_elements_are_found(self):
        model = every_dtype_model()
        self.assertIsNone(zm.non_finite(model))
        bad = zm.Model.empty(model.layout())
        zm.model_data(bad)  # (a fresh buffer of zeros below)
        for name in bad:
            bad[name][...] = 0
        bad["t_bf16"].reshape(-1)[1] = 0x7F80  # +inf in bfloat16
        self.assertEqual(zm.non_finite(bad), ("t_bf16", 1))


class Safetensors(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zfed-st-")

    def tearDown(self):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_every_dtype_round_trips_memory_mapped(self):
        model = every_dtype_model()
        path = os.path.join(self.dir, "m.safetensors")
        st.save(path, model, metadata={"round": "3"})
        loaded, metadata = st.load(path, with_metadata=True)
        self.assertEqual(metadata, {"round": "3"})
        self.assertEqual(list(loaded), list(model))
        self.assertEqual(loaded.dtypes, model.dtypes)
        for name in model:
            self.assertTrue(np.array_equal(loaded[name], model[name]), name)
            self.assertFalse(loaded[name].flags.writeable)
        # The arrays are views of the file's map, in layout order: the data
        # goes to the wire as it lies in the file.
        self.assertEqual(bytes(zm.model_data(loaded)), bytes(zm.model_data(model)))
        import mmap
        self.assertIsInstance(loaded.buffer.base.obj, mmap.mmap)
        for name, array in loaded.items():
            if array.nbytes:
                self.assertTrue(np.shares_memory(array, loaded.buffer), name)
        self.assertTrue(np.shares_memory(np.frombuffer(zm.model_data(loaded), np.uint8),
                                         loaded.buffer))
        # Saved again, the bytes are the same.
        again = os.path.join(self.dir, "again.safetensors")
        st.save(again, loaded, metadata={"round": "3"})
        with open(path, "rb") as a, open(again, "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_a_file_written_by_hand_loads_in_offset_order(self):
        # As another writer might lay it out: keys not in offset order, a
        # header padded with spaces, F16 and BF16 data.
        f16 = np.array([1.5, -2.0], np.float16).tobytes()
        bf16 = struct.pack("<2H", 0x3F80, 0xC020)
        header = {"b": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 8]},
                  "a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
                  "__metadata__": {"format": "pt"}}
        text = json.dumps(header).encode() + b"    "
        path = os.path.join(self.dir, "hand.safetensors")
        with open(path, "wb") as handle:
            handle.write(struct.pack("<Q", len(text)) + text + f16 + bf16)
        model = st.load(path)
        self.assertEqual(list(model), ["a", "b"])
        self.assertEqual(model["a"].tolist(), [1.5, -2.0])
        self.assertEqual(zm.bf16_to_f32(model["b"]).tolist(), [1.0, -2.5])
        self.assertEqual(model.dtypes, {"a": "F16", "b": "BF16"})

    def test_broken_files_are_refused(self):
        cases = {
            "hole": {"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                     "b": {"dtype": "U8", "shape": [2], "data_offsets": [3, 5]}},
            "overlap": {"a": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]},
                        "b": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}},
            "dtype": {"a": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}},
            "length": {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}},
        }
        for name, header in cases.items():
            with self.subTest(name):
                text = json.dumps(header).encode()
                with self.assertRaises(st.SafetensorsError):
                    st.loads(struct.pack("<Q", len(text)) + text + b"\0" * 5)
        with self.assertRaises(st.SafetensorsError):
            st.loads(b"\xff" * 16)


if __name__ == "__main__":
    main()
