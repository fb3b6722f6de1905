#!/usr/bin/python3
"""Builds the fuzz seed corpus from schemas/vectors.json and
schemas/batch-vectors.json.

    /usr/bin/python3 tests/fuzz/make_corpus.py

msg/: every test vector body, valid and invalid, and every zfed.batch
vector body (fuzz_msg also runs the batch decoder).
mdp/: Majordomo messages as fuzz_mdp reads them (frames, each a length
byte and its bytes), one per command shape and side, with vector bodies.
model/: every vector of model-vectors.json: descriptors, transfer bodies,
and the body frame of each task (fuzz_model reads all three).
safetensors/: small safetensors files of every dtype (values that matter
to the exact accumulator: zeros of both signs, subnormals, extremes),
with metadata and zero-size tensors, and a few broken ones.
The output is committed; rerun this after changing the vectors.
"""

import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "..", "schemas", "vectors.json")
BATCH_VECTORS = os.path.join(HERE, "..", "..", "schemas", "batch-vectors.json")
MODEL_VECTORS = os.path.join(HERE, "..", "..", "schemas", "model-vectors.json")


def frames(*parts):
    out = bytearray()
    for part in parts:
        assert len(part) < 256
        out.append(len(part))
        out += part
    return bytes(out)


DTYPES = {"F64": "d", "F32": "f", "F16": "e", "I64": "q", "I32": "i", "I16": "h", "I8": "b",
          "U64": "Q", "U32": "I", "U16": "H", "U8": "B"}


def safetensors(tensors, metadata=None):
    """tensors: (name, dtype, shape, raw bytes) in data order."""
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def safetensors_seeds():
    floats = [0.0, -0.0, 1.0, -2.5, 5e-324, 1e-310, 1.7976931348623157e308, 0.1]
    halves = [0.0, -0.0, 1.0, -2.5, 6e-8, 65504.0, 0.1, 3.0]
    ints = {"I64": [-2**63, 2**63 - 1, 0, -1], "U64": [2**64 - 1, 0, 1, 2**63],
            "I32": [-2**31, 2**31 - 1, 7, -7], "U32": [2**32 - 1, 0, 5, 9],
            "I16": [-2**15, 2**15 - 1, 0, 3], "U16": [2**16 - 1, 0, 1, 2],
            "I8": [-128, 127, 0, -1], "U8": [255, 0, 1, 128]}
    seeds = {}
    every = []
    for dtype, code in DTYPES.items():
        values = (floats if dtype in ("F64", "F32") else halves if dtype == "F16"
                  else ints[dtype])
        if dtype == "F32":
            values = [v if abs(v) < 3e38 else 3e38 for v in values]
        raw = struct.pack("<%d%s" % (len(values), code), *values)
        every.append((dtype.lower(), dtype, [len(values)], raw))
        seeds["one-" + dtype] = safetensors([("w", dtype, [2, len(values) // 2], raw)])
    bf16 = struct.pack("<6H", 0x0000, 0x8000, 0x3f80, 0x0001, 0x7f7f, 0xc2c8)
    every.append(("bf16", "BF16", [6], bf16))
    seeds["one-BF16"] = safetensors([("w", "BF16", [3, 2], bf16)])
    seeds["every-dtype"] = safetensors(every, {"format": "pt", "round": "3"})
    seeds["empty"] = safetensors([])
    seeds["zero-size"] = safetensors([("z", "F32", [0, 4], b""), ("s", "F64", [], b"\0" * 8)])
    seeds["scalar"] = safetensors([("step", "I64", [], struct.pack("<q", 42))])
    good = seeds["one-F32"]
    seeds["truncated"] = good[:-3]
    seeds["trailing"] = good + b"\0"
    seeds["huge-length"] = struct.pack("<Q", 2**63) + good[8:]
    seeds["bad-dtype"] = good.replace(b'"F32"', b'"BOO"')
    seeds["overlap"] = safetensors([("a", "U8", [4], b"abcd"), ("b", "U8", [4], b"efgh")]).replace(
        b"[4,8]", b"[2,6]")
    return seeds


def main():
    with open(VECTORS) as handle:
        vectors = json.load(handle)["vectors"]
    with open(BATCH_VECTORS) as handle:
        batch_vectors = json.load(handle)["vectors"]
    assert not {v["name"] for v in vectors} & {v["name"] for v in batch_vectors}
    with open(MODEL_VECTORS) as handle:
        model_vectors = json.load(handle)["vectors"]
    for folder in ("msg", "mdp", "safetensors", "model"):
        shutil.rmtree(os.path.join(HERE, "corpus", folder), ignore_errors=True)
        os.makedirs(os.path.join(HERE, "corpus", folder))
    bodies = []
    for vector in vectors:
        body = bytes.fromhex(vector["hex"])
        with open(os.path.join(HERE, "corpus", "msg", vector["name"] + ".bin"), "wb") as handle:
            handle.write(body)
        if vector["valid"] and len(body) < 256:
            bodies.append(body)
    for vector in batch_vectors:
        with open(os.path.join(HERE, "corpus", "msg", vector["name"] + ".bin"), "wb") as handle:
            handle.write(bytes.fromhex(vector["hex"]))
    body = bodies[0]
    shapes = {
        "client-request": frames(b"", b"MDPC01", b"fib", body),
        "client-request-2-bodies": frames(b"", b"MDPC01", b"fib", body, body),
        "mmi-service": frames(b"", b"MDPC01", b"mmi.service", b"fib"),
        "ready": frames(b"", b"MDPW01", b"\x01", b"fib"),
        "ready-credit": frames(b"", b"MDPW01", b"\x01", b"fib", b"credit=8"),
        "request": frames(b"", b"MDPW01", b"\x02", b"\0\0\0\0\0\0\0\x01", b"", body),
        "reply": frames(b"", b"MDPW01", b"\x03", b"\0\0\0\0\0\0\0\x01", b"", bodies[-1]),
        "heartbeat": frames(b"", b"MDPW01", b"\x04"),
        "disconnect": frames(b"", b"MDPW01", b"\x05"),
        "ready-compact": frames(b"", b"MDPW01", b"\x01", b"fib", b"credit=8 compact=1"),
        "compact-request": frames(b"zfwc\x02\x08\0\0\0\0\0\0\0\x01", body),
        "compact-reply": frames(b"zfwc\x03\x08\0\0\0\0\0\0\0\x01", bodies[-1]),
        "compact-client-request": frames(b"zfcc\x02\x01\0\0\0\0\0\0\0\x01\x03fib", body),
        "compact-client-reply": frames(
            b"zfcc\x03\x01\0\0\0\0\0\0\0\x01\x03fib\x06peer:3", bodies[-1]),
        "compact-client-mmi": frames(b"zfcc\x02\0\0\0\0\0\0\0\0\0\x0ammi.status", b""),
    }
    for name, data in shapes.items():
        with open(os.path.join(HERE, "corpus", "mdp", name + ".bin"), "wb") as handle:
            handle.write(data)
    seeds = safetensors_seeds()
    for name, data in seeds.items():
        with open(os.path.join(HERE, "corpus", "safetensors", name + ".bin"), "wb") as handle:
            handle.write(data)
    for vector in model_vectors:
        hexes = ([vector["hex"]] if "hex" in vector else
                 [vector["descriptor_hex"]] if "descriptor_hex" in vector else
                 vector["frames"][:1])
        with open(os.path.join(HERE, "corpus", "model", vector["name"] + ".bin"), "wb") as handle:
            handle.write(bytes.fromhex(hexes[0]))
    print("msg: %d seeds, mdp: %d seeds, safetensors: %d seeds, model: %d seeds"
          % (len(vectors) + len(batch_vectors), len(shapes), len(seeds), len(model_vectors)))


if __name__ == "__main__":
    main()
