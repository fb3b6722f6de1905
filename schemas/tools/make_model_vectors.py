#!/usr/bin/python3
"""Regenerates schemas/model-vectors.json, the test vectors of MODELS.md:
model descriptors, the chunk transfer bodies (zfed.fetch, zfed.chunk,
zfed.release, zfed.released), a model's data decoded tensor by tensor, and
the frames of model tasks.

    /usr/bin/python3 schemas/tools/make_model_vectors.py > schemas/model-vectors.json

Needs only Python 3 and the msgpack module (Debian: python3-msgpack): the
bodies are encoded here with msgpack-python and struct, independently of
zfed's encoders; canonical ones are exactly msgpack.packb(obj,
use_bin_type=True), others are assembled byte by byte.  Every invalid
vector breaks exactly one rule, so its reason class does not depend on the
order a decoder checks in.  The Python package checks the file in
tests/integration/test_python_models.py; the C side will check the same
file.
"""

import hashlib
import json
import struct
import sys

import msgpack

BLOB = "zfed.blob." + "0123456789abcdef" * 2
MIB = 1 << 20
SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
         "U64": 8, "U32": 4, "U16": 2, "U8": 1}
PACK = {"F64": "<d", "F32": "<f", "F16": "<e", "I64": "<q", "I32": "<i", "I16": "<h",
        "I8": "<b", "U64": "<Q", "U32": "<I", "U16": "<H", "U8": "<B"}

REASONS = {
    "msgpack": "not one structurally valid msgpack value (PROTOCOL.md 7.2)",
    "descriptor": "a descriptor that is not an array",
    "kind": "element 0 is not the kind named (zfed.model; for bodies one of the four "
            "transfer kinds)",
    "version": "element 1 is not the integer 1 (any integer width is accepted)",
    "elements": "the wrong number of elements for the kind",
    "id": "an id that is not a bin of 32 bytes",
    "sha256": "sha256 neither nil nor a bin of 32 bytes",
    "size": "size not a u64 of at most 2^40, or not the end of the layout",
    "chunk": "chunk not a u32 from 65,536 to 67,108,864",
    "tensors": "tensors not an array of at most 100,000 entries",
    "tensor": "an entry that is not an array of 5 elements",
    "name": "a tensor name that is not 1-255 bytes of UTF-8 without control characters",
    "duplicate": "two tensors with one name",
    "dtype": "a dtype that is not one of MODELS.md section 2 (names are case-sensitive)",
    "shape": "a shape that is not an array of 0-16 u64",
    "offset": "an offset other than the end of the previous tensor (0 for the first)",
    "nbytes": "nbytes other than product(shape) x size(dtype), computed without overflow",
    "source": "source neither \"\" nor zfed.blob. and 32 lowercase hex digits",
    "inline": "inline (source \"\") over 4 MiB, or by reference at 4 MiB or less",
    "global_id": "a global model (role global) whose id is not its sha256, or has no sha256",
    "index": "a chunk index that is not a u32",
    "code": "a chunk code that is not an integer from 100 to 599",
    "text": "a chunk text over 512 bytes or with control characters",
    "ids": "release ids not an array of 1 to 1024 elements",
    "count": "a released count that is not a u32",
    "data": "a data frame missing, unexpected, or of another length than size",
}


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def sha(data):
    return hashlib.sha256(data).digest()


def layout(entries):
    out, offset = [], 0
    for name, dtype, shape in entries:
        count = 1
        for dim in shape:
            count *= dim
        nbytes = count * SIZES[dtype]
        out.append([name, dtype, list(shape), offset, nbytes])
        offset += nbytes
    return out, offset


def descriptor(tensors, id_=None, digest=None, size=None, chunk=4 * MIB, source=""):
    if tensors and isinstance(tensors[0], tuple):
        entries, end = layout(tensors)
    else:  # entries written out, e.g. to break a rule
        entries = tensors
        end = size if size is not None else entries[-1][3] + entries[-1][4] if entries else 0
    return ["zfed.model", 1, id_ if id_ is not None else b"\x11" * 32, digest,
            end if size is None else size, chunk, entries, source]


def fields(desc):
    return {"id": desc[2].hex(), "sha256": None if desc[3] is None else desc[3].hex(),
            "size": desc[4], "chunk": desc[5], "tensors": desc[6], "source": desc[7]}


VECTORS = []


def valid(name, what, value, note, role=None, hex_=None, extra=None):
    vector = {"name": name, "what": what, "valid": True}
    if role:
        vector["role"] = role
    vector["note"] = note
    data = hex_ if hex_ is not None else pack(value)
    vector["hex"] = data.hex()
    vector["canonical"] = data == pack(value)
    if not vector["canonical"]:
        vector["canonical_hex"] = pack(value).hex()
    if what == "descriptor":
        vector["fields"] = fields(value)
    else:
        vector["fields"] = transfer_fields(value)
    vector.update(extra or {})
    VECTORS.append(vector)


def invalid(name, what, data, reason, note, role=None):
    assert reason in REASONS, reason
    vector = {"name": name, "what": what, "valid": False}
    if role:
        vector["role"] = role
    vector["note"] = note
    vector["hex"] = (data if isinstance(data, bytes) else pack(data)).hex()
    vector["reason"] = reason
    VECTORS.append(vector)


def transfer_fields(body):
    kind = body[0]
    if kind == "zfed.fetch":
        return {"kind": kind, "id": body[2].hex(), "index": body[3]}
    if kind == "zfed.chunk":
        return {"kind": kind, "id": body[2].hex(), "index": body[3], "code": body[4],
                "text": body[5]}
    if kind == "zfed.release":
        return {"kind": kind, "ids": [i.hex() for i in body[2]]}
    return {"kind": kind, "count": body[2]}


def every_dtype_data():
    """One tensor of each dtype, values exactly representable in JSON and in
    the dtype; BF16 given as raw bits and as values."""
    spec = [("f64", "F64", (2,), [1.5, -0.1]),
            ("f32", "F32", (2, 2), [0.5, -1.0, 3.25, 1e-3]),
            ("f16", "F16", (3,), [1.5, -2.0, 65504.0]),
            ("bf16", "BF16", (2,), [1.0, -2.5]),
            ("i64", "I64", (), [-(2**53)]),
            ("i32", "I32", (2,), [-2147483648, 2147483647]),
            ("i16", "I16", (1,), [-300]),
            ("i8", "I8", (3,), [-128, 0, 127]),
            ("u64", "U64", (1,), [2**53]),
            ("u32", "U32", (1,), [4294967295]),
            ("u16", "U16", (2,), [0, 65535]),
            ("u8", "U8", (0, 4), [])]
    data, values = b"", {}
    for name, dtype, _, items in spec:
        if dtype == "BF16":
            bits = [struct.unpack("<I", struct.pack("<f", v))[0] >> 16 for v in items]
            data += b"".join(struct.pack("<H", b) for b in bits)
        else:
            data += b"".join(struct.pack(PACK[dtype], v) for v in items)
        if dtype == "F32":
            items = [struct.unpack("<f", struct.pack("<f", v))[0] for v in items]
        if dtype == "F16":
            items = [struct.unpack("<e", struct.pack("<e", v))[0] for v in items]
        values[name] = items
    tensors = [(name, dtype, shape) for name, dtype, shape, _ in spec]
    return tensors, data, values


def descriptors():
    w = [("w", "F32", (2, 3))]
    w_data = struct.pack("<6f", 0, 1, 2, 3, 4, 5)
    glob = descriptor(w, sha(w_data), sha(w_data))
    valid("global-inline-f32", "descriptor", glob, "A global model of one 2x3 F32 tensor, "
          "inline: its id is its sha256 (of the 24 data bytes 0.0 ... 5.0).", role="global",
          extra={"data_hex": w_data.hex()})
    big = [("fc1.weight", "F32", (1024, 1024)), ("fc1.bias", "F32", (1024,))]
    valid("result-by-reference", "descriptor",
          descriptor(big, b"\x42" * 32, None, source=BLOB),
          "A result of 4,198,400 bytes (over 4 MiB) held by a worker's blob service: any id, "
          "no sha256, 2 chunks of 4 MiB.", role="result")
    tensors, data, _ = every_dtype_data()
    valid("every-dtype", "descriptor", descriptor(tensors, sha(data), sha(data)),
          "One tensor of each of the 12 dtypes, a scalar (shape []) and a tensor with a 0 "
          "dimension (0 bytes); offsets end to end without padding, so some tensors are not "
          "aligned to their element size.", role="global")
    valid("empty-model", "descriptor", descriptor([], sha(b""), sha(b""), size=0),
          "A model of no tensors: 0 bytes, inline (an empty data frame), 0 chunks.",
          role="global")
    valid("sixteen-dimensions", "descriptor",
          descriptor([("t", "U8", (1,) * 15 + (3,))]),
          "16 dimensions, the most a shape may have.", role="result")
    valid("chunk-limits", "descriptor",
          descriptor([("a", "I8", (5 * MIB,))], source=BLOB, chunk=65536),
          "The smallest chunk (65,536 bytes): 80 chunks.", role="result")
    valid("chunk-largest", "descriptor",
          descriptor([("a", "I8", (5 * MIB,))], source=BLOB, chunk=64 * MIB),
          "The largest chunk (67,108,864 bytes): one chunk for the whole 5 MiB.", role="result")
    valid("utf8-names", "descriptor",
          descriptor([("couche.poids/\u00e9", "F64", (1,)), ("\u5c42.bias", "F64", (1,))]),
          "Names are UTF-8 (any code point but controls), kept byte for byte.", role="result")
    valid("inline-at-4mib", "descriptor", descriptor([("x", "U8", (4 * MIB,))]),
          "Exactly 4,194,304 bytes: the largest model that travels inline (and must).",
          role="result")
    value = descriptor(w, sha(w_data), sha(w_data))
    # version as int8 (d0 01) and size as uint64 (cf ...): any width is accepted.
    raw = pack(value)
    head = pack(value[:1])[1:]  # the kind string
    body = b"\x98" + head + b"\xd0\x01" + pack(value[2]) + pack(value[3]) + \
        b"\xcf" + struct.pack(">Q", 24) + b"".join(pack(v) for v in value[5:])
    assert len(body) != len(raw)
    valid("noncanonical-widths", "descriptor", value, "version as int8 (d0 01) and size as "
          "uint64 (cf ...): receivers accept every integer width.", role="global", hex_=body)

    def bad(name, value, reason, note, role="result"):
        invalid(name, "descriptor", value, reason, note, role)

    base = descriptor(w)
    bad("not-an-array", {"kind": "zfed.model"}, "descriptor", "A map is not a descriptor.")
    bad("truncated", pack(base)[:-3], "msgpack", "The last bytes are missing.")
    bad("wrong-kind", ["zfed.modle"] + base[1:], "kind", "Kind is spelled wrong.")
    bad("version-2", base[:1] + [2] + base[2:], "version", "Only version 1 exists.")
    bad("seven-elements", base[:7], "elements", "The source is missing.")
    bad("id-31-bytes", base[:2] + [b"\x11" * 31] + base[3:], "id", "An id is 32 bytes.")
    bad("id-as-str", base[:2] + ["1" * 32] + base[3:], "id", "An id is a bin, not a str.")
    bad("sha256-16-bytes", base[:3] + [b"\x22" * 16] + base[4:], "sha256",
        "sha256 is 32 bytes or nil.")
    bad("size-not-layout-end", base[:4] + [25] + base[5:], "size",
        "size 25, but the only tensor ends at 24.")
    bad("size-over-2-40", descriptor([("a", "U8", (2**40 + 1,))], source=BLOB), "size",
        "A model of 2^40 + 1 bytes is over the limit.")
    bad("chunk-too-small", base[:5] + [65535] + base[6:], "chunk", "65,535 bytes.")
    bad("chunk-too-large", base[:5] + [64 * MIB + 1] + base[6:], "chunk", "67,108,865 bytes.")
    bad("tensors-a-map", base[:6] + [{"w": 1}] + base[7:], "tensors",
        "tensors is an array of entries.")
    bad("entry-of-four", descriptor([["w", "F32", [2, 3], 0]], size=24), "tensor",
        "An entry has 5 elements.")
    bad("empty-name", descriptor([("", "F32", (1,))]), "name", "Names have 1-255 bytes.")
    bad("name-with-newline", descriptor([("a\nb", "F32", (1,))]), "name",
        "Control characters are not allowed in names.")
    bad("name-256-bytes", descriptor([("n" * 256, "U8", (1,))]), "name",
        "256 bytes is one too many.")
    bad("duplicate-names", descriptor([("w", "F32", (1,)), ("w", "F32", (1,))]), "duplicate",
        "Names are distinct within a model.")
    bad("dtype-lowercase", descriptor([["w", "f32", [2], 0, 8]], size=8), "dtype",
        "dtype names are case-sensitive: F32, not f32.")
    bad("dtype-f8", descriptor([["w", "F8_E4M3", [2], 0, 2]], size=2), "dtype",
        "A safetensors dtype zfed does not carry.")
    bad("shape-17-dims", descriptor([["t", "U8", [1] * 17, 0, 1]], size=1), "shape",
        "At most 16 dimensions.")
    bad("shape-negative", descriptor([["t", "U8", [-1], 0, 0]], size=0), "shape",
        "Dimensions are unsigned.")
    bad("offset-gap", descriptor([["a", "U8", [4], 0, 4], ["b", "U8", [4], 8, 4]], size=12),
        "offset", "Tensor b starts at 8, not at 4 where a ends: no padding.")
    bad("offset-first-not-0", descriptor([["a", "U8", [4], 1, 4]], size=5), "offset",
        "The first tensor starts at 0.")
    bad("nbytes-wrong", descriptor([["a", "F32", [4], 0, 15]], size=15), "nbytes",
        "4 F32 elements are 16 bytes.")
    bad("nbytes-overflow", descriptor([["a", "F64", [2**32, 2**32, 2], 0, 0]], size=0),
        "nbytes", "product(shape) x 8 = 2^68 does not fit in 64 bits (a wrapping product "
        "would give 0).")
    bad("source-uppercase-hex", descriptor(big, source="zfed.blob." + "0123456789ABCDEF" * 2),
        "source", "The hex digits are lowercase.")
    bad("source-a-service", descriptor(big, source="fib"), "source",
        "A source is a blob service name.")
    bad("inline-over-4mib", descriptor(big), "inline",
        "4,198,400 bytes cannot travel inline.")
    bad("reference-under-4mib", descriptor(w, source=BLOB), "inline",
        "24 bytes must travel inline.")
    bad("global-without-sha256", descriptor(w, sha(w_data), None), "global_id",
        "A global's id is its sha256, so it has one.", role="global")
    bad("global-id-not-sha256", descriptor(w, b"\x11" * 32, sha(w_data)), "global_id",
        "The id differs from the sha256.", role="global")


def transfers():
    id_ = bytes(range(32))
    valid("fetch-first-chunk", "transfer", ["zfed.fetch", 1, id_, 0], "Chunk 0 of model id_.")
    valid("fetch-index-u32-max", "transfer", ["zfed.fetch", 1, id_, 2**32 - 1],
          "The largest index (the holder answers 416 for a model with fewer chunks).")
    valid("fetch-version-int8", "transfer", ["zfed.fetch", 1, id_, 3],
          "Version as int8 (d0 01).", hex_=b"\x94" + pack("zfed.fetch") + b"\xd0\x01" +
          pack(id_) + pack(3))
    valid("chunk-200", "transfer", ["zfed.chunk", 1, id_, 0, 200, ""],
          "The chunk follows in a data frame.")
    valid("chunk-404", "transfer", ["zfed.chunk", 1, id_, 5, 404, "no model with this id here"],
          "Released, expired or never held.")
    valid("chunk-416", "transfer", ["zfed.chunk", 1, id_, 9, 416, "chunk 9 of 2"],
          "Index past the last chunk.")
    valid("chunk-429", "transfer", ["zfed.chunk", 1, id_, 1, 429, ""], "Try again later.")
    valid("release-one", "transfer", ["zfed.release", 1, [id_]], "One id.")
    valid("release-three", "transfer",
          ["zfed.release", 1, [id_, b"\x00" * 32, b"\xff" * 32]], "Three ids.")
    valid("released-0", "transfer", ["zfed.released", 1, 0], "None was held.")
    valid("released-2", "transfer", ["zfed.released", 1, 2], "Two were held.")

    def bad(name, value, reason, note):
        invalid(name, "transfer", value, reason, note)

    bad("unknown-kind", ["zfed.fetched", 1, id_, 0], "kind", "Not a transfer kind.")
    bad("fetch-version-2", ["zfed.fetch", 2, id_, 0], "version", "Only version 1.")
    bad("fetch-five-elements", ["zfed.fetch", 1, id_, 0, 0], "elements",
        "zfed.fetch has 4 elements.")
    bad("fetch-id-33-bytes", ["zfed.fetch", 1, id_ + b"\x00", 0], "id", "Ids are 32 bytes.")
    bad("fetch-negative-index", ["zfed.fetch", 1, id_, -1], "index", "Indexes are unsigned.")
    bad("fetch-index-2-32", ["zfed.fetch", 1, id_, 2**32], "index", "Indexes are u32.")
    bad("chunk-code-99", ["zfed.chunk", 1, id_, 0, 99, ""], "code", "Codes are 100-599.")
    bad("chunk-code-600", ["zfed.chunk", 1, id_, 0, 600, ""], "code", "Codes are 100-599.")
    bad("chunk-text-control", ["zfed.chunk", 1, id_, 0, 404, "gone\x01"], "text",
        "No control characters in text.")
    bad("chunk-text-513-bytes", ["zfed.chunk", 1, id_, 0, 404, "x" * 513], "text",
        "At most 512 bytes.")
    bad("release-no-ids", ["zfed.release", 1, []], "ids", "1 to 1024 ids.")
    bad("release-1025-ids", ["zfed.release", 1, [id_] * 1025], "ids", "1 to 1024 ids.")
    bad("release-id-as-str", ["zfed.release", 1, ["x" * 32]], "id", "Ids are bins.")
    bad("released-negative", ["zfed.released", 1, -1], "count", "Counts are unsigned.")


def data_and_frames():
    tensors, data, values = every_dtype_data()
    desc = descriptor(tensors, sha(data), sha(data))
    VECTORS.append({
        "name": "data-every-dtype", "what": "data", "valid": True,
        "note": "The every-dtype model's data: decode each tensor from its offset in its dtype "
                "(little-endian).  values: each tensor's elements in row-major order (BF16 as "
                "the float32 its bits stand for: bf16_bits gives the bits).",
        "descriptor_hex": pack(desc).hex(), "data_hex": data.hex(), "values": values,
        "bf16_bits": [struct.unpack("<H", data[o:o + 2])[0]
                      for o in range(desc[6][3][3], desc[6][3][3] + 4, 2)]})
    w_data = struct.pack("<6f", 0, 1, 2, 3, 4, 5)
    glob = descriptor([("w", "F32", (2, 3))], sha(w_data), sha(w_data))
    task = pack(["zfed.task", 1, "job-m", 0, 0, 0, {"add": 1.0, "samples": 3}, [-1, glob]])
    ref = descriptor([("a", "I8", (5 * MIB,))], sha(b"x"), sha(b"x"), source=BLOB)
    ref_task = pack(["zfed.task", 1, "job-m", 0, 1, 0, {"add": 1.0, "samples": 3}, [-1, ref]])

    def frames(name, parts, ok, note, reason=None):
        vector = {"name": name, "what": "frames", "valid": ok, "note": note,
                  "frames": [p.hex() for p in parts]}
        if reason:
            vector["reason"] = reason
        VECTORS.append(vector)

    frames("task-inline-model", [task, w_data], True, "A tensoravg task with its global model "
           "inline: the body frame, then one data frame of exactly size bytes.")
    frames("task-by-reference", [ref_task], True, "A task whose global model is fetched from "
           "its source: the body frame alone.")
    frames("task-inline-without-data", [task], False, "An inline descriptor needs its data "
           "frame (400).", "data")
    frames("task-inline-data-too-short", [task, w_data[:-1]], False, "The data frame is 23 "
           "bytes for a size of 24 (400).", "data")
    frames("task-by-reference-with-data", [ref_task, b"\x00" * 16], False, "A model by "
           "reference has no data frame (400).", "data")


def main():
    descriptors()
    transfers()
    data_and_frames()
    names = [v["name"] for v in VECTORS]
    assert len(names) == len(set(names)), "duplicate vector names"
    document = {
        "description": "Test vectors of schemas/MODELS.md (protocol v1 model services). "
        "what: descriptor (hex: one msgpack value, a zfed.model descriptor; role: global or "
        "result, since a global's id must be its sha256), transfer (hex: one body, zfed.fetch, "
        "zfed.chunk, zfed.release or zfed.released), data (a descriptor and its data with each "
        "tensor's values) or frames (the body and data frames of one model task, hex each). "
        "valid: whether a decoder must accept it.  Valid descriptor and transfer vectors have "
        "fields (bins as hex) and canonical (whether hex is the canonical encoding; else "
        "canonical_hex is).  Invalid vectors have reason: the class of the one rule they "
        "break, from reasons (the text of a decoder's refusal is its own).  Generated by "
        "schemas/tools/make_model_vectors.py with msgpack-python; do not edit by hand.",
        "protocol": "zfed",
        "protocol_version": 1,
        "reasons": REASONS,
        "vectors": VECTORS,
    }
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
