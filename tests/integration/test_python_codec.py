"""zfed.protocol's fast path (msgpack's C extension) against its strict
path: on every body of schemas/vectors.json, batch-vectors.json and
model-vectors.json, on damaged copies of them, on non-canonical bodies and
on random values, the two decoders give the same value or the same refusal
(reason and ids), and the two encoders the same bytes or the same error."""

import json
import os
import random
import struct
import sys
import unittest
from contextlib import contextmanager

from zfedtest import SOURCE_DIR, main

sys.path.insert(0, os.path.join(SOURCE_DIR, "python"))
from zfed import models as zm  # noqa: E402
from zfed import protocol as zp  # noqa: E402

SCHEMAS = os.path.join(SOURCE_DIR, "schemas")
SEED = 20261201
MUTANTS_PER_BODY = 25
RANDOM_VALUES = 3000


@contextmanager
def strict_codec():
    saved = zp.FAST_CODEC
    zp.FAST_CODEC = False
    try:
        yield
    finally:
        zp.FAST_CODEC = saved


def typed(value):
    """A value with its types spelled out, so that 1 == 1.0 == True and
    dict == PairMap do not hide a difference."""
    if isinstance(value, zp.PairMap):
        return ("pairs", [(typed(k), typed(v)) for k, v in value])
    if isinstance(value, dict):
        return ("map", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, zp.ExtType):
        return ("ext", value.code, value.data)
    if isinstance(value, list):
        return ("array", [typed(v) for v in value])
    if isinstance(value, float) and value != value:
        return ("float", "nan", struct.pack(">d", value))
    return (type(value).__name__, value)


def outcome(function, *args):
    """(typed result) or ("refused", exception type, text, ids)."""
    try:
        result = function(*args)
    except Exception as failure:
        return ("refused", type(failure).__name__, str(failure), getattr(failure, "ids", None),
                getattr(failure, "reason", None))
    if hasattr(result, "fields"):  # a message, a descriptor, a transfer message
        return ("message", type(result).__name__, typed(result.fields()))
    if isinstance(result, list) and result and isinstance(result[0], bytes):
        return ("items", result)
    return typed(result)


def vector_bodies():
    """(name, bytes) of every msgpack body in the three vector files."""
    bodies = []
    for name in ("vectors.json", "batch-vectors.json", "model-vectors.json"):
        with open(os.path.join(SCHEMAS, name)) as handle:
            document = json.load(handle)
        for vector in document["vectors"]:
            for key in ("hex", "canonical_hex", "descriptor_hex"):
                if key in vector:
                    bodies.append(("%s %s %s" % (name, vector["name"], key),
                                   bytes.fromhex(vector[key])))
            for index, frame in enumerate(vector.get("frames", [])[:1]):
                bodies.append(("%s %s frame %d" % (name, vector["name"], index),
                               bytes.fromhex(frame)))
            for index, item in enumerate(vector.get("items", [])):
                bodies.append(("%s %s item %d" % (name, vector["name"], index),
                               bytes.fromhex(item)))
    return bodies


def mutants(data, rng):
    """Damaged copies: a byte changed, bytes cut, inserted or appended."""
    out = []
    for _ in range(MUTANTS_PER_BODY):
        copy = bytearray(data)
        choice = rng.randrange(5)
        at = rng.randrange(len(copy)) if copy else 0
        if choice == 0 and copy:
            copy[at] = rng.randrange(256)
        elif choice == 1 and copy:
            copy[at] ^= 1 << rng.randrange(8)
        elif choice == 2:
            del copy[at:]
        elif choice == 3:
            copy[at:at] = bytes([rng.randrange(256)])
        else:
            copy += bytes([rng.randrange(256)])
        out.append(bytes(copy))
    return out


class Decoders(unittest.TestCase):

    def setUp(self):
        self.assertTrue(zp.FAST_CODEC, "msgpack's C extension (python3-msgpack) is needed "
                        "for the fast path these tests compare")

    def same_both_ways(self, name, data):
        for function in (zp.unpack, zp.decode, zp.decode_batch, zm.decode_transfer,
                         zm.decode_descriptor):
            fast = outcome(function, data)
            with strict_codec():
                strict = outcome(function, data)
            self.assertEqual(fast, strict, "%s: %s differs" % (name, function.__name__))

    def test_every_vector_body(self):
        bodies = vector_bodies()
        self.assertGreater(len(bodies), 150)
        for name, data in bodies:
            self.same_both_ways(name, data)

    def test_damaged_vector_bodies(self):
        rng = random.Random(SEED)
        for name, data in vector_bodies():
            for index, mutant in enumerate(mutants(data, rng)):
                self.same_both_ways("%s mutant %d (%s)" % (name, index, mutant.hex()), mutant)

    def test_bodies_the_fast_path_hands_to_the_strict_one(self):
        task = zp.Task(job_id="j", round=0, task_id=1, attempt=0, params={"a": 1},
                       global_round=-1, global_value=None).encode()
        strict = {
            "float32 in params": task.replace(b"\x81\xa1a\x01", b"\x81\xa1a\xca\x3f\x80\x00\x00"),
            "uint8 for a fixint": task.replace(b"\x81\xa1a\x01", b"\x81\xa1a\xcc\x01"),
            "str8 for a fixstr": task.replace(b"\x81\xa1a\x01", b"\x81\xd9\x01a\x01"),
            "duplicate top-level key": task.replace(b"\x81\xa1a\x01",
                                                    b"\x82\xa1a\x01\xa1a\x02"),
            "duplicate nested key": task.replace(b"\x81\xa1a\x01",
                                                 b"\x81\xa1a\x82\xa1b\x01\xa1b\x02"),
            "bin key nested": task.replace(b"\x81\xa1a\x01", b"\x81\xa1a\x81\xc4\x01b\x01"),
            "ext in params": task.replace(b"\x81\xa1a\x01", b"\x81\xa1a\xd4\x05\x01"),
            "nine levels": task.replace(b"\x81\xa1a\x01", b"\x81\xa1a" + b"\x91" * 6 + b"\x90"),
            "trailing byte": task + b"\x00",
        }
        fast = {
            "the task": task,
            "eight levels": task.replace(b"\x81\xa1a\x01", b"\x81\xa1a" + b"\x91" * 5 + b"\x90"),
        }
        for name, data in list(strict.items()) + list(fast.items()):
            self.assertIs(zp._unpack_fast(data) is zp._STRICT, name in strict, name)
            self.same_both_ways(name, data)
        # The nested duplicate is kept, as the C codec keeps it (PROTOCOL.md 7.6).
        params = zp.decode(strict["duplicate nested key"]).params
        self.assertEqual(list(params["a"]), [("b", 1), ("b", 2)])

    def test_the_value_limit_is_counted_on_the_fast_path(self):
        # 1,048,576 values in all: the body array, its elements, the nested ones.
        inner = [None] * (zp.VALUES_MAX - 4)
        ok = zp.pack(["x", [inner]])  # the body, "x", [inner], inner and its elements
        self.assertIsNot(zp._unpack_fast(ok), zp._STRICT)
        over = zp.pack(["x", [inner + [None]]])
        self.assertIs(zp._unpack_fast(over), zp._STRICT)
        with self.assertRaises(zp.DecodeError) as caught:
            zp.unpack(over)
        self.assertIn("more than %d values" % zp.VALUES_MAX, str(caught.exception))


_pool = random.Random(SEED - 1)
TEXT = "".join(_pool.choice("aé€😀\x00 z") for _ in range(70000))  # 1-4 UTF-8 bytes each
BLOB = bytes(_pool.randrange(256) for _ in range(70000))


def random_value(rng, level=0):
    kind = rng.randrange(15 if level < 3 else 9 if level < 12 else 8)
    if kind == 14:  # a chain around the nesting limit
        value = random_value(rng, 12)
        for _ in range(rng.randrange(5, 11)):
            value = [value] if rng.random() < 0.5 else {"n": value}
        return value
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        edge = rng.choice([0, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 2**32 - 1, 2**32,
                           2**63, 2**64 - 1, 2**64, -1, -32, -33, -128, -129, -2**15 - 1,
                           -2**31 - 1, -2**63, -2**63 - 1])
        return edge + rng.choice([0, 0, 1, -1])
    if kind == 3:
        return rng.choice([0.0, -0.0, 1.5, 1e300, float("inf"), float("nan"), rng.random()])
    if kind == 4:
        size = rng.choice([0, 1, 31, 32, 255, 256, 65535, 65536])
        start = rng.randrange(len(TEXT))
        return (TEXT[start:] + TEXT)[:size]
    if kind == 5:
        start = rng.randrange(len(BLOB))
        return (BLOB[start:] + BLOB)[:rng.choice([0, 1, 255, 256, 70000])]
    if kind == 6:
        return rng.choice([bytearray(b"ab"), memoryview(b"cd"), "\ud800", 1 + 2j, object(),
                           zp.ExtType(3, b"x" * rng.choice([1, 2, 3, 16, 17]))])
    if kind == 7:
        return rng.choice([True, False]) if rng.random() < 0.5 else 7
    count = rng.choice([0, 1, 2, 15, 16, 17] if level < 2 else [0, 1, 2, 3])
    if kind in (8, 9):
        return [random_value(rng, level + 1) for _ in range(count)]
    if kind == 10:
        return tuple(random_value(rng, level + 1) for _ in range(min(count, 3)))
    if kind == 11:
        return zp.PairMap((random_value(rng, level + 1), random_value(rng, level + 1))
                          for _ in range(min(count, 3)))
    keys = ["k%d" % i for i in range(count)] + ([1, (2, 3)] if rng.random() < 0.1 else [])
    return {key: random_value(rng, level + 1) for key in keys}


def packed(function, value):
    try:
        return ("bytes", function(value))
    except Exception as failure:
        return ("error", type(failure).__name__)


class Encoders(unittest.TestCase):

    def test_every_valid_vector_packs_the_same(self):
        for name, data in vector_bodies():
            try:
                with strict_codec():
                    value = zp.unpack(data)
            except zp.DecodeError:
                continue
            self.assertEqual(zp.pack(value), zp.pack_pure(value), name)
            pairs = zp.unpack_strict(data)  # maps as PairMap: pack_pure's own case
            self.assertEqual(zp.pack(pairs), zp.pack_pure(pairs), name)

    def test_random_values_pack_the_same(self):
        rng = random.Random(SEED)
        for index in range(RANDOM_VALUES):
            value = random_value(rng)
            fast = packed(zp.pack, value)
            self.assertEqual(fast, packed(zp.pack_pure, value), "value %d: %r" % (index, value))
            if fast[0] == "bytes" and len(fast[1]) <= zp.BODY_MAX:
                self.same_decoded(fast[1], "value %d" % index)

    def same_decoded(self, data, name):
        fast = outcome(zp.unpack, data)
        with strict_codec():
            self.assertEqual(fast, outcome(zp.unpack, data), name)

    def test_messages_encode_the_same(self):
        rng = random.Random(SEED + 1)
        for index in range(RANDOM_VALUES // 3):
            outputs = {"k%d" % i: random_value(rng, 1) for i in range(rng.randrange(4))}
            if rng.random() < 0.1:
                outputs[rng.choice(["", 3])] = 1
            result = zp.Result(job_id=rng.choice(["j", "", ".x", "a" * 65]), round=0,
                               task_id=rng.choice([0, 2**32, -1]), attempt=0,
                               worker=rng.choice(["w", "w x"]), compute_us=5, outputs=outputs)
            fast = outcome(result.encode)
            with strict_codec():
                self.assertEqual(fast, outcome(result.encode), "result %d: %r" % (index, result))


class CompactFrames(unittest.TestCase):
    """The Python codec of READY offers and compact frames (PROTOCOL.md 3,
    3.2) against zfed-protocol.json, which test_mdp checks the C codec
    against too."""

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(SCHEMAS, "zfed-protocol.json")) as handle:
            cls.extensions = json.load(handle)["mdp"]["extensions"]

    def test_ready_offers(self):
        examples = self.extensions["ready_offers"]["examples"]
        self.assertGreaterEqual(len(examples), 8)
        for text, expected in examples.items():
            self.assertEqual(zp.parse_ready_offers(text.encode()),
                             (expected["credit"], expected["compact"]), text)
        self.assertEqual(zp.parse_ready_offers(b"compact=1 " + b"x" * 54), (1, True))
        self.assertEqual(zp.parse_ready_offers(b"compact=1 " + b"x" * 55), (1, False))
        self.assertEqual(zp.parse_ready_credit(b"credit=8"), 8)
        self.assertEqual(zp.parse_ready_credit(b"credit=4 "), 1)

    def test_vectors(self):
        vectors = self.extensions["compact_frame"]["vectors"]
        self.assertGreaterEqual(len(vectors), 3)
        for vector in vectors:
            command = bytes([vector["command"]])
            address = bytes.fromhex(vector["address"])
            frame = zp.compact_frame(command, address)
            self.assertEqual(frame.hex(), vector["hex"], vector["name"])
            self.assertEqual(zp.parse_compact([frame, b"body"], command),
                             (address, [b"body"]))

    def test_refusals(self):
        address = bytes(7) + b"\x01"
        for frames, command in (([b"zfwc\x03", b"b"], zp.REPLY),
                                ([b"zfwc\x03\xff" + address, b"b"], zp.REPLY),
                                ([b"zfwc\x03\x00", b"b"], zp.REPLY),
                                ([b"zfwc\x03\x09" + address, b"b"], zp.REPLY),
                                ([b"zfwc\x02\x08" + address, b"b"], zp.REPLY),
                                ([b"zfwc\x03\x08" + address, b"b"], zp.REQUEST),
                                ([b"zfwc\x03\x08" + address], zp.REPLY),
                                ([b"", zp.MDPW, zp.REPLY, address, b"", b"b"], zp.REPLY)):
            with self.assertRaises(zp.MdpError, msg=repr(frames)):
                zp.parse_compact(frames, command)
        for command, size in ((zp.HEARTBEAT, 8), (zp.REPLY, 0), (zp.REPLY, 256)):
            with self.assertRaises(zp.MdpError):
                zp.compact_frame(command, bytes(size))



class CompactClientFrames(unittest.TestCase):
    """The Python codec of compact client frames (PROTOCOL.md 3.3) against
    zfed-protocol.json's compact_client_frame vectors, which test_mdp
    checks the C codec against too, and every refusal of section 3.3."""

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(SCHEMAS, "zfed-protocol.json")) as handle:
            cls.spec = json.load(handle)["mdp"]["extensions"]["compact_client_frame"]

    def test_vectors(self):
        vectors = self.spec["vectors"]
        self.assertGreaterEqual(len(vectors), 6)
        for vector in vectors:
            command = bytes([vector["command"]])
            frame = zp.compact_client_frame(command, vector["service"], vector["ticket"],
                                            vector.get("identity"))
            self.assertEqual(frame.hex(), vector["hex"], vector["name"])
            self.assertEqual(zp.parse_compact_client([frame, b"body", b"data"], command),
                             (vector["service"], vector["ticket"], vector.get("identity"),
                              [b"body", b"data"]), vector["name"])
        # Every field the layout names, at its offset.
        self.assertEqual([field["offset"] for field in self.spec["layout"]][:6],
                         [0, 4, 5, 6, 14, 15])

    def test_refusals(self):
        t1, t0 = (1).to_bytes(8, "big"), bytes(8)
        request, reply = b"zfcc" + zp.REQUEST, b"zfcc" + zp.REPLY
        for frames, command, what in (
                ([b"zfcc", b"b"], zp.REQUEST, "magic only"),
                ([request + b"\x01" + t1, b"b"], zp.REQUEST, "14 bytes"),
                ([request + b"\x01" + t1 + b"\x03fib", b"b"], zp.REPLY, "REQUEST at a client"),
                ([reply + b"\x00" + t0 + b"\x03fib", b"b"], zp.REQUEST, "REPLY at the broker"),
                ([b"zfcc\x04\x00" + t0 + b"\x03fib", b"b"], zp.REQUEST, "command 0x04"),
                ([request + b"\x02" + t0 + b"\x03fib", b"b"], zp.REQUEST, "flag 0x02"),
                ([request + b"\x00" + t1 + b"\x03fib", b"b"], zp.REQUEST, "ticket, no flag"),
                ([request + b"\x00" + t0 + b"\x00", b"b"], zp.REQUEST, "service length 0"),
                ([request + b"\x01" + t1 + b"\x04fib", b"b"], zp.REQUEST, "one byte short"),
                ([request + b"\x01" + t1 + b"\x02fib", b"b"], zp.REQUEST, "one byte over"),
                ([request + b"\x01" + t1 + b"\x03f\x1fb", b"b"], zp.REQUEST, "0x1f in service"),
                ([request + b"\x01" + t1 + b"\x03fib"], zp.REQUEST, "no body"),
                ([reply + b"\x01" + t1 + b"\x03fib", b"b"], zp.REPLY, "stamp, no identity"),
                ([reply + b"\x01" + t1 + b"\x03fib\x00", b"b"], zp.REPLY, "identity 0"),
                ([reply + b"\x01" + t1 + b"\x03fib\x41" + b"w" * 65, b"b"], zp.REPLY,
                 "identity 65"),
                ([reply + b"\x01" + t1 + b"\x03fib\x06peer\n3", b"b"], zp.REPLY,
                 "newline in identity"),
                ([reply + b"\x00" + t0 + b"\x03fib\x06peer:3", b"b"], zp.REPLY,
                 "identity without the flag"),
                ([b"zfwc\x02\x08" + t1, b"b"], zp.REQUEST, "the worker leg's frame"),
                ([b"", zp.MDPC, b"fib", b"b"], zp.REQUEST, "an MDP request")):
            with self.assertRaises(zp.MdpError, msg=what):
                zp.parse_compact_client(frames, command)
        for args in ((zp.HEARTBEAT, "fib"), (zp.REQUEST, ""), (zp.REQUEST, "x" * 256),
                     (zp.REQUEST, "fib", 1, "peer:1"), (zp.REPLY, "fib", 1),
                     (zp.REPLY, "fib", None, "peer:1"), (zp.REPLY, "fib", 1, "w" * 65),
                     (zp.REQUEST, "fib", 1 << 64)):
            with self.assertRaises(zp.MdpError, msg=repr(args)):
                zp.compact_client_frame(*args)


if __name__ == "__main__":
    main()
