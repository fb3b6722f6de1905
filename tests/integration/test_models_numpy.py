"""Models between numpy and zfed-model: safetensors files of every dtype
written here (a small writer and reader of the format, written from its
description, and numpy for the values) are read by zfed-model, and files
zfed-model writes are read back here; hostile files are refused with the
tensor and field named.  Then exact aggregation: zfed-model aggregate
against Python's fractions.Fraction, rounded once by a rounding written
here, bit for bit, for every strategy and float dtype, in every input
order."""

import hashlib
import itertools
import json
import math
import os
import random
import shutil
import struct
import subprocess
import tempfile
import unittest
from fractions import Fraction

import numpy

from zfedtest import binary, main, sanitizer_report

MODEL = binary("zfed-model")

# dtype -> numpy type (BF16 travels as its uint16 bits).
NUMPY = {"F64": numpy.float64, "F32": numpy.float32, "F16": numpy.float16, "BF16": numpy.uint16,
         "I64": numpy.int64, "I32": numpy.int32, "I16": numpy.int16, "I8": numpy.int8,
         "U64": numpy.uint64, "U32": numpy.uint32, "U16": numpy.uint16, "U8": numpy.uint8}
# float dtype -> (precision, smallest normal exponent, largest exponent, width)
FORMATS = {"F64": (53, -1022, 1023, 64), "F32": (24, -126, 127, 32),
           "F16": (11, -14, 15, 16), "BF16": (8, -126, 127, 16)}


def write_safetensors(path, tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, numpy array) in data order."""
    header, offset, blobs = {}, 0, []
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, array in tensors:
        raw = numpy.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    """-> (header dict, {name: numpy array}, data bytes)."""
    with open(path, "rb") as handle:
        blob = handle.read()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + length])
    data = blob[8 + length:]
    arrays = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        kind = numpy.dtype(NUMPY[entry["dtype"]]).newbyteorder("<")
        arrays[name] = numpy.frombuffer(data[begin:end], dtype=kind).reshape(entry["shape"])
    return header, arrays, data


def bf16_to_fraction(bits):
    return Fraction(float(numpy.array([int(bits) << 16], dtype=numpy.uint32).view(numpy.float32)[0]))


def as_fraction(dtype, value):
    if dtype == "BF16":
        return bf16_to_fraction(value)
    if dtype in FORMATS:
        return Fraction(float(value))
    return Fraction(int(value))


def round_fraction(value, dtype):
    """The bits of value rounded once to nearest, ties to even (None past the range)."""
    if dtype not in FORMATS:
        result = round(value)  # Fraction rounds half to even
        info = numpy.iinfo(NUMPY[dtype])
        if not info.min <= result <= info.max:
            return None
        return numpy.array([result], dtype=NUMPY[dtype]).view(
            {1: numpy.uint8, 2: numpy.uint16, 4: numpy.uint32, 8: numpy.uint64}[
                numpy.dtype(NUMPY[dtype]).itemsize])[0].item()
    precision, emin, emax, width = FORMATS[dtype]
    if value == 0:
        return 0
    sign = 1 if value < 0 else 0
    magnitude = abs(value)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    while Fraction(2) ** exponent > magnitude:
        exponent -= 1
    while Fraction(2) ** (exponent + 1) <= magnitude:
        exponent += 1
    unit = max(exponent - (precision - 1), emin - (precision - 1))
    scaled = magnitude / Fraction(2) ** unit
    kept = math.floor(scaled)
    rest = scaled - kept
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and kept % 2 == 1):
        kept += 1
    if kept == 2 ** precision:
        kept //= 2
        unit += 1
    top = sign << (width - 1)
    if kept < 2 ** (precision - 1):
        return top | kept
    if unit + precision - 1 > emax:
        return None
    return top | ((unit + precision - 1 + emax) << (precision - 1)) | (kept - 2 ** (precision - 1))


def bits_of(dtype, array):
    """Element bits of a numpy array as Python ints."""
    width = numpy.dtype(NUMPY[dtype]).itemsize
    view = {1: numpy.uint8, 2: numpy.uint16, 4: numpy.uint32, 8: numpy.uint64}[width]
    return [int(b) for b in numpy.ascontiguousarray(array).reshape(-1).view(view)]


def finite_values(dtype, count, rng, base=None):
    """count finite values of dtype: varied exponents, zeros of both signs,
    subnormals, ties with base (an earlier array) where given."""
    if dtype == "BF16":
        out = []
        while len(out) < count:
            bits = rng.getrandbits(16)
            if rng.random() < 0.4:
                bits = (bits & 0x807f) | (rng.choice([0x3f, 0x40, 0x3e, 0x00]) << 7)
            if (bits >> 7) & 0xff != 0xff:
                out.append(bits)
        array = numpy.array(out, dtype=numpy.uint16)
    elif dtype in FORMATS:
        kind = NUMPY[dtype]
        info = numpy.finfo(kind)
        values = []
        for _ in range(count):
            pick = rng.random()
            if pick < 0.05:
                values.append(rng.choice([0.0, -0.0]))
            elif pick < 0.1:
                values.append(float(info.tiny) * rng.random() * rng.choice([1, -1]))  # subnormal
            elif pick < 0.2:
                values.append(rng.uniform(-1, 1) * 2.0 ** rng.randint(-40, 40))
            else:
                values.append(rng.gauss(0, 0.05))
        with numpy.errstate(over="ignore", under="ignore"):
            array = numpy.array(values, dtype=numpy.float64).astype(kind)
        array[~numpy.isfinite(array)] = 1
    else:
        info = numpy.iinfo(NUMPY[dtype])
        array = numpy.array([rng.randint(int(info.min), int(info.max)) for _ in range(count)],
                            dtype=NUMPY[dtype])
    if base is not None:
        ties = numpy.array([rng.random() < 0.1 for _ in range(count)])
        array[ties] = base[ties]
    return array


class Models(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zfed-models-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def run_model(self, *args, expect=0):
        result = subprocess.run([MODEL] + [str(a) for a in args], capture_output=True, text=True,
                                timeout=120)
        report = sanitizer_report(result.stderr)
        self.assertIsNone(report, report)
        self.assertEqual(result.returncode, expect, "%s\n%s" % (args, result.stderr))
        return result

    def info(self, path):
        return json.loads(self.run_model("info", "--json", path).stdout)

    def test_numpy_files_of_every_dtype_read_by_zfed(self):
        rng = random.Random(1)
        tensors = []
        for index, dtype in enumerate(NUMPY):
            shape = [(2, 3), (7,), (), (0, 4), (1, 2, 3, 1)][index % 5]
            count = int(numpy.prod(shape)) if shape else 1
            tensors.append(("layer%d.%s" % (index, dtype.lower()), dtype,
                            finite_values(dtype, count, rng).reshape(shape)))
        path = self.path("numpy.safetensors")
        write_safetensors(path, tensors, metadata={"framework": "numpy", "note": "caf\u00e9"})
        info = self.info(path)
        _, _, data = read_safetensors(path)
        self.assertEqual(info["sha256"], hashlib.sha256(data).hexdigest())
        self.assertEqual(info["bytes"], len(data))
        self.assertEqual(info["metadata"], {"framework": "numpy", "note": "caf\u00e9"})
        self.assertEqual([(t["name"], t["dtype"], t["shape"]) for t in info["tensors"]],
                         [(name, dtype, list(array.shape)) for name, dtype, array in tensors])
        # The data hash, the same through sha256 and through a copy zfed
        # makes (aggregate of one input is the identity, bit for bit).
        sha = self.run_model("sha256", path).stdout.split()[0]
        self.assertEqual(sha, info["sha256"])
        copy = self.path("copy.safetensors")
        self.run_model("aggregate", copy, path, "--strategy", "min")
        _, arrays, copied = read_safetensors(copy)
        self.assertEqual(copied, data)
        self.assertEqual(self.run_model("diff", path, copy).returncode, 0)
        # Unpadded headers (some writers do not pad) read too.
        unpadded = self.path("unpadded.safetensors")
        write_safetensors(unpadded, tensors, pad=False)
        self.assertEqual(self.info(unpadded)["sha256"], info["sha256"])

    def test_zfed_files_read_by_numpy(self):
        specs = ["w%s:%s:3x5" % (dtype.lower(), dtype) for dtype in NUMPY]
        path = self.path("filled.safetensors")
        args = ["create", path, "--fill", "value:3", "--metadata", "round=7"]
        for spec in specs:
            args += ["--tensor", spec]
        self.run_model(*args)
        header, arrays, data = read_safetensors(path)
        self.assertEqual(header["__metadata__"], {"round": "7"})
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
        self.assertEqual((8 + length) % 8, 0)
        self.assertEqual(list(header)[0], "__metadata__")
        self.assertEqual(list(header)[1:], ["w%s" % d.lower() for d in NUMPY])
        for dtype in NUMPY:
            array = arrays["w%s" % dtype.lower()]
            self.assertEqual(array.shape, (3, 5))
            if dtype == "BF16":
                self.assertTrue((array == 0x4040).all())  # 3.0
            else:
                self.assertTrue((array == 3).all(), dtype)
        # value:0.1 rounds once per dtype, as numpy (and the rounding here) do.
        self.run_model("create", path, "--fill", "value:0.1", "--tensor", "a:F16:4",
                       "--tensor", "b:BF16:4", "--tensor", "c:F32:4", "--tensor", "d:F64:4")
        _, arrays, _ = read_safetensors(path)
        self.assertEqual(arrays["a"][0], numpy.float16(0.1))
        self.assertEqual(int(arrays["b"][0]), round_fraction(Fraction(0.1), "BF16"))
        self.assertEqual(arrays["c"][0], numpy.float32(0.1))
        self.assertEqual(arrays["d"][0], 0.1)
        # random: deterministic per seed, floats of about N(0, 0.05).
        big = self.path("big.safetensors")
        self.run_model("create", big, "--size", "4MiB", "--tensors", "3", "--fill", "random:5")
        header, arrays, data = read_safetensors(big)
        self.assertEqual(len(data), 4 << 20)
        self.assertEqual(sorted(arrays), ["layers.0.weight", "layers.1.weight",
                                          "layers.2.weight"])
        values = numpy.concatenate([a.astype(numpy.float64) for a in arrays.values()])
        self.assertLess(abs(values.mean()), 1e-3)
        self.assertAlmostEqual(values.std(), 0.05, delta=2e-3)
        again = self.path("again.safetensors")
        self.run_model("create", again, "--size", "4MiB", "--tensors", "3", "--fill", "random:5")
        self.assertEqual(self.run_model("sha256", big).stdout.split()[0],
                         self.run_model("sha256", again).stdout.split()[0])
        self.assertEqual(self.run_model("sha256", big).stdout.split()[0],
                         hashlib.sha256(data).hexdigest())

    def test_hostile_files_refused_by_name(self):
        good = self.path("good.safetensors")
        write_safetensors(good, [("w", "F32", numpy.ones((2, 2), numpy.float32))])
        with open(good, "rb") as handle:
            blob = handle.read()
        (length,) = struct.unpack("<Q", blob[:8])
        header = blob[8:8 + length]
        cases = {
            "truncated": (blob[:-3], "tensor w: data_offsets [0, 16] run past the end"),
            "trailing": (blob + b"\0", "data: 17 bytes after the header, the tensors cover 16"),
            "huge-length": (struct.pack("<Q", 1 << 40) + blob[8:], "more than 104857600"),
            "bad-dtype": (blob.replace(b'"F32"', b'"BOO"'), "tensor w: dtype 'BOO' is not one"),
            "short": (blob[:5], "shorter than the header length"),
            "duplicate": (None, "duplicate object key"),
            "overlap": (None, "tensor b: data_offsets [2, 6] overlap tensor a's [0, 4]"),
            "shape": (blob.replace(b"[2, 2]", b"[2, 3]"), "hold 16 bytes where dtype F32 and shape"
                      " need 24"),
        }
        dup = b'{"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, ' \
              b'"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}'
        cases["duplicate"] = (struct.pack("<Q", len(dup)) + dup + b"\0", cases["duplicate"][1])
        over = b'{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, ' \
               b'"b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}'
        cases["overlap"] = (struct.pack("<Q", len(over)) + over + b"\0" * 6, cases["overlap"][1])
        self.assertIn(b"[2, 2]", header)
        for name, (content, words) in cases.items():
            path = self.path(name + ".safetensors")
            with open(path, "wb") as handle:
                handle.write(content)
            result = self.run_model("info", path, expect=1)
            self.assertIn(path + ": ", result.stderr, name)
            self.assertIn(words, result.stderr, name)

    def test_usage_errors(self):
        cases = [(["info"], "info: expected one FILE"),
                 (["create", self.path("x"), "--tensor", "w:F33:2"], "dtype 'F33' is not one of"),
                 (["create", self.path("x"), "--tensor", "w:F32:2x"], "shape: expected D1xD2"),
                 (["create", self.path("x"), "--size", "6"], "not a whole number of float32"),
                 (["create", self.path("x"), "--size", "1GB"], "--size: expected bytes"),
                 (["create", self.path("x"), "--tensor", "w:U8:2", "--fill", "value:256"],
                  "not a value of tensor w's dtype U8"),
                 (["create", self.path("x"), "--tensor", "w:U8:2", "--fill", "sparkly"],
                  "--fill: expected zeros, value:X or random:SEED"),
                 (["info", "a", "--strategy", "mean"], "only for aggregate"),
                 (["aggregate", "out", "a", "b", "--weights", "1"], "1 weights for 2 inputs"),
                 (["aggregate", "out", "a", "--strategy", "avg"], "--strategy: expected fedavg"),
                 (["frobnicate"], "unknown command 'frobnicate'"),
                 (["--bogus"], "unknown option '--bogus'")]
        for args, words in cases:
            result = self.run_model(*args, expect=2)
            self.assertIn(words, result.stderr, args)
        self.assertIn("Usage: zfed-model", self.run_model("--help").stdout)
        self.assertIn("zfed-model (zfed)", self.run_model("--version").stdout)

    def test_diff(self):
        a, b, c = self.path("a"), self.path("b"), self.path("c")
        write_safetensors(a, [("w", "F32", numpy.array([1, 2, 3], numpy.float32))])
        write_safetensors(b, [("w", "F32", numpy.array([1, 2.5, 3], numpy.float32))])
        write_safetensors(c, [("w", "F32", numpy.array([1, 2, 3, 4], numpy.float32))])
        result = self.run_model("diff", a, b, expect=1)
        self.assertIn("w: 1 of 3 elements differ, max |a - b| = 0.5 at element 1", result.stdout)
        result = self.run_model("diff", a, c, expect=1)
        self.assertIn("tensor w: shape [4] where A has [3]", result.stdout)
        self.assertIn("identical", self.run_model("diff", a, a).stdout)


class ExactAggregation(unittest.TestCase):
    """zfed-model aggregate against fractions.Fraction, bit for bit."""

    COUNT = 97

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zfed-exact-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def inputs(self, count_inputs, seed, dtypes=("F32", "F64", "F16", "BF16", "I32", "U8")):
        rng = random.Random(seed)
        models = []
        for r in range(count_inputs):
            tensors = []
            for dtype in dtypes:
                base = models[0][len(tensors)][2] if models else None
                tensors.append((dtype.lower(), dtype, finite_values(dtype, self.COUNT, rng, base)))
            models.append(tensors)
        paths = []
        for r, tensors in enumerate(models):
            paths.append(os.path.join(self.dir, "in%d.safetensors" % r))
            write_safetensors(paths[-1], tensors)
        return models, paths

    def aggregate(self, paths, *args):
        out = os.path.join(self.dir, "out.safetensors")
        result = subprocess.run([MODEL, "aggregate", out] + paths + [str(a) for a in args],
                                capture_output=True, text=True, timeout=120)
        self.assertIsNone(sanitizer_report(result.stderr))
        self.assertEqual(result.returncode, 0, result.stderr)
        _, arrays, data = read_safetensors(out)
        return arrays, hashlib.sha256(data).hexdigest()

    def check(self, models, arrays, expected_of):
        """expected_of(dtype, values, keys) -> expected bits of one element."""
        for t, (name, dtype, _) in enumerate(models[0]):
            got = bits_of(dtype, arrays[name])
            for i in range(self.COUNT):
                raw = [bits_of(dtype, m[t][2][i:i + 1])[0] for m in models]
                values = [as_fraction(dtype, m[t][2][i]) for m in models]
                expected = expected_of(dtype, values, raw)
                self.assertEqual(got[i], expected,
                                 "%s element %d: %s -> %#x, expected %#x" % (
                                     dtype, i, [float(v) for v in values], got[i], expected))

    @staticmethod
    def order(dtype, values, raw):
        """Values with their bits sorted as zfed orders them: -0 before +0."""
        width = 8 * numpy.dtype(NUMPY[dtype]).itemsize
        negative_zero = 1 << (width - 1)
        return sorted(zip(values, raw), key=lambda p: (p[0], 0 if (dtype in FORMATS and
                                                                   p[1] == negative_zero) else 1))

    def test_fedavg_mean_sum(self):
        models, paths = self.inputs(5, 11)
        weights = [1, 60000, 7, 2 ** 40 + 3, 12345]
        total = sum(weights)
        arrays, first = self.aggregate(paths, "--weights", ",".join(map(str, weights)))
        self.check(models, arrays, lambda dtype, values, raw: round_fraction(
            sum(w * v for w, v in zip(weights, values)) / total, dtype))
        # Any order of the inputs (weights following), the same bytes.
        for permutation in list(itertools.permutations(range(5)))[1::29]:
            _, again = self.aggregate([paths[p] for p in permutation], "--weights",
                                      ",".join(str(weights[p]) for p in permutation))
            self.assertEqual(again, first)
        arrays, _ = self.aggregate(paths, "--strategy", "mean")
        self.check(models, arrays, lambda dtype, values, raw: round_fraction(
            sum(values) / len(values), dtype))
        # A sum of F32 and F64 (wide ranges) with weights up to 2^20.
        models, paths = self.inputs(4, 12, dtypes=("F32", "F64"))
        weights = [3, 1 << 20, 5, 1]
        arrays, _ = self.aggregate(paths, "--strategy", "sum", "--weights",
                                   ",".join(map(str, weights)))
        self.check(models, arrays, lambda dtype, values, raw: round_fraction(
            sum(w * v for w, v in zip(weights, values)), dtype))

    def test_sum_out_of_range_is_an_error(self):
        path = os.path.join(self.dir, "big.safetensors")
        write_safetensors(path, [("w", "F16", numpy.array([1.0, 60000.0], numpy.float16))])
        out = os.path.join(self.dir, "out.safetensors")
        result = subprocess.run([MODEL, "aggregate", out, path, path, "--strategy", "sum"],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 1)
        self.assertIn("tensor w (from element 0): element 1: 120000 is beyond the largest "
                      "finite F16", result.stderr)
        self.assertFalse(os.path.exists(out))

    def test_median_trimmed_min_max(self):
        for n in (1, 2, 3, 4, 6):
            models, paths = self.inputs(n, 20 + n)

            def median(dtype, values, raw):
                ranked = self.order(dtype, values, raw)
                if n % 2:
                    return ranked[n // 2][1]
                return round_fraction((ranked[n // 2 - 1][0] + ranked[n // 2][0]) / 2, dtype)
            arrays, first = self.aggregate(paths, "--strategy", "median")
            self.check(models, arrays, median)
            _, reversed_order = self.aggregate(paths[::-1], "--strategy", "median")
            self.assertEqual(reversed_order, first)
            for trim in (0.1, 0.25, 0.4):
                cut = min(int(math.floor(trim * n)), (n - 1) // 2)

                def trimmed(dtype, values, raw, cut=cut):
                    ranked = self.order(dtype, values, raw)[cut:n - cut]
                    if len(ranked) == 1:
                        return ranked[0][1]
                    return round_fraction(sum(v for v, _ in ranked) / len(ranked), dtype)
                arrays, _ = self.aggregate(paths, "--strategy", "trimmed-mean", "--trim", trim)
                self.check(models, arrays, trimmed)
            arrays, _ = self.aggregate(paths, "--strategy", "min")
            self.check(models, arrays, lambda d, v, r: self.order(d, v, r)[0][1])
            arrays, _ = self.aggregate(paths, "--strategy", "max")
            self.check(models, arrays, lambda d, v, r: self.order(d, v, r)[-1][1])

    def test_inputs_must_share_a_layout_and_be_finite(self):
        a = os.path.join(self.dir, "a.safetensors")
        b = os.path.join(self.dir, "b.safetensors")
        out = os.path.join(self.dir, "out.safetensors")
        write_safetensors(a, [("fc1.weight", "F32", numpy.zeros((200, 785), numpy.float32))])
        write_safetensors(b, [("fc1.weight", "F32", numpy.zeros((200, 784), numpy.float32))])
        result = subprocess.run([MODEL, "aggregate", out, a, b], capture_output=True, text=True)
        self.assertEqual(result.returncode, 1)
        self.assertIn("input 2 (%s): tensor fc1.weight: shape [200, 784] where input 1 has "
                      "[200, 785]" % b, result.stderr)
        write_safetensors(b, [("fc1.weight", "F32", numpy.full((200, 785), numpy.nan,
                                                               numpy.float32))])
        result = subprocess.run([MODEL, "aggregate", out, a, b], capture_output=True, text=True)
        self.assertEqual(result.returncode, 1)
        self.assertIn("input 2 element 0: NaN", result.stderr)
        result = subprocess.run([MODEL, "aggregate", out, a, b, "--strategy", "median"],
                                capture_output=True, text=True)
        self.assertIn("source 1 element 0: NaN", result.stderr)
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    main()
