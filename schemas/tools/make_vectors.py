#!/usr/bin/python3
"""Regenerates schemas/vectors.json and schemas/batch-vectors.json, the zfed
protocol v1 test vectors.

    /usr/bin/python3 schemas/tools/make_vectors.py > schemas/vectors.json

The message vectors go to standard output; the zfed.batch vectors are written
to schemas/batch-vectors.json (next to this folder; --batch-out FILE to put
them elsewhere), a separate file so that readers of vectors.json are not
affected by the batch kind.

Needs only Python 3 and the msgpack module (Debian: python3-msgpack).  The
bodies are encoded here with msgpack-python, independently of zfed's C
encoder; canonical bodies are exactly msgpack.packb(obj, use_bin_type=True).
Non-canonical and invalid bodies are assembled byte by byte.

Before printing, every vector is checked against a small reference decoder
written from schemas/PROTOCOL.md (section 7 to 9): valid ones must decode to
their "fields" and invalid ones must be refused, or this script exits 1.
The C side (tests/unit/test_vectors.c) checks the same vectors against
zfed_msg_decode, zfed_msg_encode and the zfed_msg_new_* constructors, and
tests/unit/test_batch.c the batch vectors against zfed_batch_decode and
zfed_batch_encode.
"""

import argparse
import json
import os
import re
import struct
import sys

import msgpack

KINDS = {"task": "zfed.task", "result": "zfed.result", "error": "zfed.error"}
KIND_BATCH = "zfed.batch"
BATCH_MAX = 1024
BATCH_OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                          "batch-vectors.json"))
ELEMENTS = {"zfed.task": 8, "zfed.result": 9, "zfed.error": 10}
BODY_MAX = 4 << 20
NESTING_MAX = 8
VALUES_MAX = 1048576
MAP_KEYS_MAX = 256
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
JOB_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
TOKEN = re.compile(r"[\x21-\x7e]+")


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


#  Raw msgpack pieces, for encodings packb never produces.
def raw_uint(value, width):
    head = {1: 0xCC, 2: 0xCD, 4: 0xCE, 8: 0xCF}[width]
    return bytes([head]) + value.to_bytes(width, "big")


def raw_int(value, width):
    head = {1: 0xD0, 2: 0xD1, 4: 0xD2, 8: 0xD3}[width]
    return bytes([head]) + value.to_bytes(width, "big", signed=True)


def raw_str8(text):
    data = text.encode()
    return bytes([0xD9, len(data)]) + data


def raw_bin16(data):
    return b"\xc5" + struct.pack(">H", len(data)) + data


def raw_array16(count):
    return b"\xdc" + struct.pack(">H", count)


def raw_array32(count):
    return b"\xdd" + struct.pack(">I", count)


def raw_map16(count):
    return b"\xde" + struct.pack(">H", count)


def raw_array(count):
    return bytes([0x90 | count]) if count < 16 else b"\xdc" + struct.pack(">H", count)


def raw_float32(value):
    return b"\xca" + struct.pack(">f", value)


#  ---------------------------------------------------------------------
#  Messages as Python values, and their "fields" as the vectors show them


def task(job_id, rnd, task_id, attempt, params, global_round, global_value):
    obj = ["zfed.task", 1, job_id, rnd, task_id, attempt, params, [global_round, global_value]]
    fields = {"kind": "zfed.task", "version": 1, "job_id": job_id, "round": rnd,
              "task_id": task_id, "attempt": attempt, "params": params,
              "global_round": global_round, "global_value": global_value}
    return obj, fields


def result(job_id, rnd, task_id, attempt, worker, compute_us, outputs):
    obj = ["zfed.result", 1, job_id, rnd, task_id, attempt, worker, compute_us, outputs]
    fields = {"kind": "zfed.result", "version": 1, "job_id": job_id, "round": rnd,
              "task_id": task_id, "attempt": attempt, "worker": worker,
              "compute_us": compute_us, "outputs": outputs}
    return obj, fields


def error(job_id, rnd, task_id, attempt, worker, code, field, message):
    obj = ["zfed.error", 1, job_id, rnd, task_id, attempt, worker, code, field, message]
    fields = {"kind": "zfed.error", "version": 1, "job_id": job_id, "round": rnd,
              "task_id": task_id, "attempt": attempt, "worker": worker, "code": code,
              "field": field, "message": message}
    return obj, fields


def fib_outputs(level):
    """The fib service's outputs for a level, computed independently of zfed."""
    terms, a, b = [], 0, 1
    for _ in range(level):
        terms.append(a)
        a, b = b, a + b
    return {"sum": str(sum(terms)), "terms": level, "last": str(terms[-1]),
            "sequence": [str(term) for term in terms] if level <= 100 else []}


def nested(levels, leaf):
    for _ in range(levels):
        leaf = [leaf]
    return leaf


#  ---------------------------------------------------------------------
#  Reference decoder (from PROTOCOL.md), used only to check the vectors


class Map(list):
    """A msgpack map as its list of (key, value) pairs, duplicates kept."""


def depth(value):
    if isinstance(value, Map):
        return 1 + max([0] + [max(depth(k), depth(v)) for k, v in value])
    if isinstance(value, list):
        return 1 + max([0] + [depth(v) for v in value])
    return 0


def count_values(value):
    """PROTOCOL.md 7.2 S4: every msgpack value at any depth, keys included."""
    if isinstance(value, Map):
        return 1 + sum(count_values(k) + count_values(v) for k, v in value)
    if isinstance(value, list):
        return 1 + sum(count_values(v) for v in value)
    return 1


def plain(value):
    if isinstance(value, Map):
        return {k: plain(v) for k, v in value}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def is_uint(value, maximum):
    return type(value) is int and 0 <= value <= maximum


def check_keys_everywhere(value):
    """PROTOCOL.md 7.2 S7: every map key at any depth is a str."""
    if isinstance(value, Map):
        for key, item in value:
            if type(key) is not str:
                raise ValueError("map key is not a string")
            check_keys_everywhere(item)
    elif isinstance(value, list):
        for item in value:
            check_keys_everywhere(item)


def check_string_map(value, what):
    if not isinstance(value, Map):
        raise ValueError(what + ": not a map")
    if len(value) > MAP_KEYS_MAX:
        raise ValueError(what + ": too many keys")
    keys = [k for k, _ in value]
    if any(type(k) is not str or k == "" for k in keys) or len(set(keys)) != len(keys):
        raise ValueError(what + ": keys must be distinct non-empty strings")


def check_text(value, what, maximum, token, allow_empty):
    if type(value) is not str:
        raise ValueError(what + ": not a string")
    size = len(value.encode())
    if value == "" and allow_empty:
        return
    if size == 0 or size > maximum:
        raise ValueError(what + ": bad length")
    if token and not TOKEN.fullmatch(value):
        raise ValueError(what + ": not a token")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(what + ": control character")


def reference_decode(data):
    """Returns the fields of a valid v1 body, or raises ValueError."""
    if not data or len(data) > BODY_MAX:
        raise ValueError("empty or too large")
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=False,
                               object_pairs_hook=Map)
    except Exception as failure:  # truncated, trailing bytes, 0xc1, bad UTF-8 anywhere...
        raise ValueError("not one msgpack value: %r" % failure)
    if depth(body) > NESTING_MAX:
        raise ValueError("too deep")
    if count_values(body) > VALUES_MAX:
        raise ValueError("too many values")
    check_keys_everywhere(body)
    if not isinstance(body, list) or isinstance(body, Map) or len(body) < 2:
        raise ValueError("not an array")
    kind = body[0]
    if type(kind) is not str or kind not in ELEMENTS:
        raise ValueError("unknown kind")
    if not is_uint(body[1], U32_MAX) or body[1] != 1:
        raise ValueError("unsupported version")
    if len(body) != ELEMENTS[kind]:
        raise ValueError("wrong element count")
    job_id = body[2]
    if type(job_id) is not str or not (
            JOB_ID.fullmatch(job_id) or (kind == "zfed.error" and job_id == "")):
        raise ValueError("bad job_id")
    for index in (3, 4, 5):
        if not is_uint(body[index], U32_MAX):
            raise ValueError("bad element %d" % index)
    if kind == "zfed.task":
        check_string_map(body[6], "params")
        glob = body[7]
        if not isinstance(glob, list) or isinstance(glob, Map) or len(glob) != 2:
            raise ValueError("bad global")
        if not (glob[0] == -1 and type(glob[0]) is int) and not is_uint(glob[0], U32_MAX):
            raise ValueError("bad global_round")
        return task(job_id, body[3], body[4], body[5], plain(body[6]), glob[0],
                    plain(glob[1]))[1]
    check_text(body[6], "worker", 128, True, False)
    if kind == "zfed.result":
        if not is_uint(body[7], U64_MAX):
            raise ValueError("bad compute_us")
        check_string_map(body[8], "outputs")
        return result(job_id, body[3], body[4], body[5], body[6], body[7], plain(body[8]))[1]
    if not is_uint(body[7], 599) or body[7] < 100:
        raise ValueError("bad code")
    check_text(body[8], "field", 64, True, True)
    check_text(body[9], "message", 512, False, True)
    return error(job_id, body[3], body[4], body[5], body[6], body[7], body[8], body[9])[1]


#  ---------------------------------------------------------------------
#  The vectors

VECTORS = []


def valid(name, kind, message, note, raw=None):
    obj, fields = message
    canonical = pack(obj)
    vector = {"name": name, "kind": kind, "valid": True, "note": note,
              "hex": (raw if raw is not None else canonical).hex()}
    if raw is not None and raw != canonical:
        vector["canonical"] = False
        vector["canonical_hex"] = canonical.hex()
    else:
        vector["canonical"] = True
    vector["fields"] = fields
    VECTORS.append(vector)


def invalid(name, kind, data, error_contains, note):
    VECTORS.append({"name": name, "kind": kind, "valid": False, "note": note, "hex": data.hex(),
                    "error_contains": error_contains})


LEVEL10 = {"fibonacci_level": 10}
EXAMPLE_TASK = task("demo-1", 0, 0, 0, LEVEL10, -1, "0")
EXAMPLE_RESULT = result("demo-1", 0, 0, 0, "w1", 62, fib_outputs(10))


def build():
    #  Tasks: the first round, a late round (same shape), a retry, limits.
    valid("task-round-0", "task", EXAMPLE_TASK,
          "First round: no round has closed, so global_round is -1 and fib's global value is "
          "\"0\". The body of the worked example in PROTOCOL.md.")
    valid("task-round-99", "task", task("demo-1", 99, 4, 0, LEVEL10, 98, "88"),
          "Round 99 carries round 98's aggregate; same shape as round 0.")
    valid("task-retry-fractional-global", "task",
          task("demo-1", 3, 2, 1, {"fibonacci_level": 150}, 2, "12345.678901"),
          "Second attempt (attempt 1); global value is a decimal with a fraction.")
    valid("task-generic-params-and-global", "task",
          task("a.b_c-D9", 7, 1000000, 0,
               {"zeta": 1, "alpha": [1, 2, 3], "nested": {"k": "v"}, "neg": -40, "big": 300,
                "flag": True},
               0, {"w": [1.5, -2.25], "ok": False, "none": None}),
          "The codec is service-agnostic: params is any string-keyed map (key order kept), "
          "global_value any msgpack value.")
    valid("task-upper-limits", "task",
          task("J" * 64, U32_MAX, U32_MAX, U32_MAX, {"fibonacci_level": 100000}, U32_MAX,
               "0"),
          "64-character job id (str8 form) and every 32-bit field at 2^32-1.")

    #  Results: with and without the sequence.
    valid("result-level-10-with-sequence", "result", EXAMPLE_RESULT,
          "fib level 10 (<= 100 terms): the sequence is sent. The reply of the worked example.")
    valid("result-level-150-no-sequence", "result",
          result("demo-1", 1, 3, 1, "host-4242.3", 14, fib_outputs(150)),
          "fib level 150 (> 100 terms): sequence is present but empty.")
    valid("result-large-compute-us", "result",
          result("demo-1", 0, 1, 0, "w2", 2**40 + 7, fib_outputs(1)),
          "compute_us is 64-bit (uint64 form); level 1 has the single term \"0\".")

    #  Errors: with and without field, empty job id, broker-made, limits.
    valid("error-with-field", "error",
          error("demo-1", 0, 2, 0, "w1", 422, "fibonacci_level",
                "must be at most 100000, got 100001"),
          "A worker refusing a parameter names it in field.")
    valid("error-without-field-empty-job-id", "error",
          error("", 0, 0, 0, "w1", 400, "", "bad task: invalid msgpack byte 0xc1 at 0"),
          "A worker that could not read the task at all: empty job_id, zeros, empty field.")
    valid("error-from-broker", "error",
          error("demo-1", 2, 1, 0, "broker", 503, "",
                "request lost its worker 3 times; giving up"),
          "The broker's own error reply: worker is \"broker\", ids copied from the task.")
    valid("error-message-512-bytes-utf8", "error",
          error("demo-1", 0, 0, 0, "w1", 500, "", "\u00e9" * 256),
          "message at its limit: 512 bytes (256 two-byte UTF-8 characters), str16 form.")
    valid("error-empty-message", "error", error("demo-1", 4, 0, 3, "w1", 429, "", ""),
          "field and message may both be empty.")

    #  Accepted, but not canonical: re-encoding gives canonical_hex.
    obj = EXAMPLE_TASK[0]
    head = pack(obj[:3])[1:]  # fixarray header dropped: kind, version, job_id
    params = pack(LEVEL10)
    glob = pack([-1, "0"])
    valid("noncanonical-round-uint32", "task", task("demo-1", 5, 0, 0, LEVEL10, -1, "0"),
          "round 5 written as uint32 (ce 00000005).",
          raw=b"\x98" + head + raw_uint(5, 4) + pack(0) + pack(0) + params + glob)
    valid("noncanonical-global-round-int64", "task", EXAMPLE_TASK,
          "global_round -1 written as int64 (d3 ffffffffffffffff).",
          raw=b"\x98" + head + pack(0) * 3 + params + b"\x92" + raw_int(-1, 8) + pack("0"))
    valid("noncanonical-positive-signed-int8", "task", task("demo-1", 0, 7, 0, LEVEL10, -1, "0"),
          "task_id 7 in the signed int8 form (d0 07): still a non-negative integer.",
          raw=b"\x98" + head + pack(0) + raw_int(7, 1) + pack(0) + params + glob)
    valid("noncanonical-str8-and-uint16", "task", EXAMPLE_TASK,
          "job_id in str8 form (d9 06 ...) and fibonacci_level 10 as uint16 (cd 000a).",
          raw=b"\x98" + pack("zfed.task") + pack(1) + raw_str8("demo-1") + pack(0) * 3 +
          b"\x81" + pack("fibonacci_level") + raw_uint(10, 2) + glob)
    valid("noncanonical-array32-map16-headers", "task", EXAMPLE_TASK,
          "Body array as array32 (dd 00000008), params as map16 (de 0001).",
          raw=raw_array32(8) + head + pack(0) * 3 + raw_map16(1) + pack("fibonacci_level") +
          pack(10) + glob)
    r = EXAMPLE_RESULT[0]
    valid("noncanonical-result-compute-us-uint64", "result", EXAMPLE_RESULT,
          "compute_us 62 as uint64 (cf 000000000000003e).",
          raw=b"\x99" + pack(r[:7])[1:] + raw_uint(62, 8) + pack(r[8]))
    valid("noncanonical-float32-in-params", "task",
          task("demo-1", 0, 0, 0, {"rate": 0.25, "scale": -1.5}, -1, "0"),
          "Floats in params written as float32 (ca 3e800000, ca bfc00000). Accepted; the "
          "canonical form (and what the C codec forwards) has each as float64 (cb ...).",
          raw=b"\x98" + head + pack(0) * 3 + b"\x82" + pack("rate") + raw_float32(0.25) +
          pack("scale") + raw_float32(-1.5) + glob)

    #  Limits of the body structure, accepted.
    valid("task-nesting-8-levels-empty-innermost", "task",
          task("demo-1", 0, 0, 0, LEVEL10, -1, nested(5, [])),
          "global_value is 6 nested arrays, the innermost empty: with the body and global "
          "arrays that is exactly 8 levels. Empty containers count as a level.")
    valid("task-params-nested-maps-8-levels", "task",
          task("demo-1", 0, 0, 0, {"a": {"b": {"c": {"d": {"e": {"f": {}}}}}}}, -1, "0"),
          "params (level 2) holding maps down to level 8, the last one empty. Keys never "
          "count as a level.")
    valid("task-params-256-keys", "task",
          task("demo-1", 0, 0, 0, {"k%03d" % index: index for index in range(256)}, -1, "0"),
          "params at its limit of 256 keys (map16 form), in the order given.")
    valid("task-nested-utf8-strings", "task",
          task("demo-1", 0, 0, 0, {"caf\u00e9": {"\u65e5\u672c": ["\U0001f600", ""]}}, -1,
               "0"),
          "Multi-byte UTF-8 in a params key, a nested key (the empty string is a valid "
          "nested value) and a 4-byte character.")
    valid("error-message-c1-control", "error",
          error("demo-1", 0, 1, 0, "w1", 500, "", "a\u0085b\u009fc"),
          "message with C1 controls U+0085 and U+009F (c2 85, c2 9f): text forbids only the "
          "bytes 0x00-0x1f and 0x7f.")
    valid("result-worker-128-bytes", "result",
          result("demo-1", 0, 0, 0, "w" * 128, 1, fib_outputs(1)),
          "worker name at its limit of 128 bytes.")
    valid("error-field-64-bytes", "error",
          error("demo-1", 0, 0, 0, "w1", 422, "f" * 64, "unknown parameter"),
          "field at its limit of 64 bytes.")

    #  Invalid bodies.  error_contains is a substring of zfed_msg_decode's reason.
    good = pack(obj)
    invalid("truncated-mid-string", "task", good[:15], "msgpack truncated",
            "The round-0 task cut after 15 bytes, inside its job_id string.")
    invalid("truncated-mid-container", "task", good[:-3], "claims 2 elements but only 0 bytes",
            "The round-0 task without its last 3 bytes: the global array header is left "
            "with nothing behind it.")
    invalid("empty-body", "task", b"", "empty body", "A zero-length body frame.")
    invalid("trailing-bytes", "task", good + b"\xc0", "1 trailing bytes",
            "A valid task followed by one more msgpack value (nil).")
    invalid("reserved-byte-c1", "task", b"\x92\xc1\x01", "invalid msgpack byte 0xc1",
            "0xc1 is never valid msgpack.")
    invalid("array-claims-more-than-bytes", "task", raw_array32(0x7FFFFFFF) + pack("zfed.task"),
            "claims 2147483647 elements",
            "array32 header promising 2^31-1 elements with 10 bytes behind it.")
    invalid("map-claims-more-than-bytes", "task",
            b"\x98" + head + pack(0) * 3 + raw_map16(0xFFFF) + pack("fibonacci_level"),
            "claims 131070 elements",
            "params map16 header promising 65535 pairs (131070 values).")
    invalid("nesting-too-deep", "task",
            pack(task("demo-1", 0, 0, 0, LEVEL10, -1, nested(7, 1))[0]),
            "nesting deeper than 8",
            "global_value nested 7 arrays deep: with the body and global arrays that is 9 "
            "levels (8 allowed).")
    invalid("body-not-array", "task", pack({"kind": "zfed.task"}), "body must be an array",
            "The body is a map.")
    invalid("body-one-element", "task", pack(["zfed.task"]), "body must be an array",
            "An array too short to hold kind and version.")
    invalid("unknown-kind", "task", pack(["zfed.job"] + obj[1:]), "unknown kind 'zfed.job'",
            "kind is not one of the three.")
    invalid("kind-as-bin", "task", pack([b"zfed.task"] + obj[1:]),
            "element 0 (kind): expected a string, got bin", "kind must be str, not bin.")
    invalid("wrong-version", "task", pack(obj[:1] + [2] + obj[2:]),
            "element 1 (version): unsupported version 2, this peer speaks 1",
            "version 2 is not spoken by a v1 peer.")
    invalid("version-as-str", "task", pack(obj[:1] + ["1"] + obj[2:]),
            "element 1 (version): expected an unsigned integer, got str",
            "version must be the integer 1, not a string.")
    invalid("version-negative", "task", pack(obj[:1] + [-1] + obj[2:]),
            "element 1 (version): expected an unsigned integer, got negative int",
            "A negative version is not an unsigned integer.")
    invalid("version-as-float", "task", pack(obj[:1] + [1.0] + obj[2:]),
            "element 1 (version): expected an unsigned integer, got float",
            "1.0 is a float, not the integer 1.")
    invalid("task-7-elements", "task", pack(obj[:7]), "zfed.task v1 has 8 elements, got 7",
            "A task without its global element.")
    invalid("result-10-elements", "result", pack(r + [0]), "zfed.result v1 has 9 elements, got 10",
            "A result with one element too many.")
    invalid("round-as-str", "task", pack(obj[:3] + ["0"] + obj[4:]),
            "element 3 (round): expected an unsigned integer", "round must be an integer.")
    invalid("round-as-float", "task", pack(obj[:3] + [0.0] + obj[4:]),
            "element 3 (round): expected an unsigned integer", "0.0 is a float, not an integer.")
    invalid("round-2-pow-32", "task", pack(obj[:3] + [2**32] + obj[4:]),
            "element 3 (round): expected an unsigned integer below 2^32", "round is 32-bit.")
    invalid("attempt-negative", "task", pack(obj[:5] + [-1] + obj[6:]),
            "element 5 (attempt): expected an unsigned integer", "attempt must be >= 0.")
    invalid("params-as-array", "task", pack(obj[:6] + [[10]] + obj[7:]),
            "element 6 (params): expected a map, got array", "params must be a map.")
    invalid("params-duplicate-key", "task",
            b"\x98" + head + pack(0) * 3 + b"\x82" + pack("fibonacci_level") + pack(10) +
            pack("fibonacci_level") + pack(11) + glob,
            "duplicate key 'fibonacci_level'", "The same key twice in params.")
    invalid("params-empty-key", "task", pack(obj[:6] + [{"": 1}] + obj[7:]),
            "key 0 is not a non-empty string", "Map keys must be non-empty strings.")
    invalid("params-integer-key", "task", pack(obj[:6] + [{1: 1}] + obj[7:]),
            "is not a string", "Map keys must be strings.")
    invalid("params-nested-integer-key", "task",
            pack(obj[:6] + [{"fibonacci_level": 10, "x": {"a": {1: 2}}}] + obj[7:]),
            "is not a string", "Map keys must be strings at every depth (rule S7).")
    invalid("global-not-pair", "task", pack(obj[:7] + [[-1]]),
            "element 7 (global): expected an array [global_round, global_value]",
            "global must be a 2-element array.")
    invalid("global-round-minus-2", "task", pack(obj[:7] + [[-2, "0"]]),
            "global_round must be -1 or an unsigned integer",
            "-1 is the only negative global_round.")
    invalid("job-id-bad-chars", "task", pack(obj[:2] + ["demo/1"] + obj[3:]),
            "element 2 (job_id): invalid string", "'/' is not allowed in a job id.")
    invalid("job-id-leading-dot", "task", pack(obj[:2] + [".demo"] + obj[3:]),
            "element 2 (job_id): invalid string", "A job id must not start with '.'.")
    invalid("job-id-65-chars", "task", pack(obj[:2] + ["J" * 65] + obj[3:]),
            "element 2 (job_id): invalid string of 65 bytes", "64 characters at most.")
    invalid("task-empty-job-id", "task", pack(obj[:2] + [""] + obj[3:]),
            "element 2 (job_id): invalid string of 0 bytes",
            "Only an error may carry an empty job_id.")
    invalid("job-id-as-bin", "task", pack(obj[:2] + [b"demo-1"] + obj[3:]),
            "element 2 (job_id): expected a string, got bin", "job_id must be str, not bin.")
    invalid("result-worker-with-space", "result", pack(r[:6] + ["w 1"] + r[7:]),
            "element 6 (worker): invalid string", "Worker names have no spaces.")
    invalid("result-worker-empty", "result", pack(r[:6] + [""] + r[7:]),
            "element 6 (worker): invalid string of 0 bytes", "Worker names are not empty.")
    invalid("result-compute-us-negative", "result", pack(r[:7] + [-5] + r[8:]),
            "element 7 (compute_us): expected an unsigned integer", "compute_us is unsigned.")
    invalid("result-outputs-as-array", "result", pack(r[:8] + [["88"]]),
            "element 8 (outputs): expected a map, got array", "outputs must be a map.")
    e = error("demo-1", 0, 2, 0, "w1", 422, "fibonacci_level", "x")[0]
    invalid("error-code-99", "error", pack(e[:7] + [99] + e[8:]),
            "element 7 (code): expected an error code from 100 to 599", "Codes run 100..599.")
    invalid("error-code-600", "error", pack(e[:7] + [600] + e[8:]),
            "element 7 (code): expected an error code from 100 to 599", "Codes run 100..599.")
    invalid("error-field-with-space", "error", pack(e[:8] + ["fibonacci level"] + e[9:]),
            "element 8 (field): invalid string", "field is a token: no spaces.")
    invalid("error-message-control-char", "error", pack(e[:9] + ["line\nbreak"]),
            "element 9 (message): invalid string", "No control characters in message.")
    invalid("error-message-513-bytes", "error", pack(e[:9] + ["m" * 513]),
            "element 9 (message): invalid string of 513 bytes", "512 bytes at most.")
    invalid("error-field-65-bytes", "error", pack(e[:8] + ["f" * 65] + e[9:]),
            "element 8 (field): invalid string of 65 bytes", "64 bytes at most.")
    invalid("result-worker-129-bytes", "result", pack(r[:6] + ["w" * 129] + r[7:]),
            "element 6 (worker): invalid string of 129 bytes", "128 bytes at most.")
    invalid("params-257-keys", "task",
            pack(obj[:6] + [{"k%03d" % index: index for index in range(257)}] + obj[7:]),
            "element 6 (params): 257 keys, at most 256 allowed", "params holds 256 keys at most.")
    invalid("nesting-too-deep-empty-innermost", "task",
            pack(task("demo-1", 0, 0, 0, LEVEL10, -1, nested(6, []))[0]),
            "nesting deeper than 8",
            "global_value is 7 nested arrays, the innermost empty: 9 levels. An empty "
            "container still counts.")
    #  UTF-8 is checked in every string, at any depth (the pre-scan).
    bad_utf8 = pack(task("demo-1", 0, 0, 0, LEVEL10, -1, ["ok", "\x01"])[0])
    invalid("nested-string-invalid-utf8", "task", bad_utf8.replace(b"\xa1\x01", b"\xa1\xff"),
            "is not valid UTF-8",
            "A string inside global_value holding the byte 0xff, which is never UTF-8.")
    bad_key = pack(obj[:6] + [{"\x01": 1}] + obj[7:])
    invalid("params-key-overlong-utf8", "task",
            bad_key.replace(b"\xa1\x01", b"\xa2\xc0\xaf"),
            "is not valid UTF-8", "A params key with an overlong encoding of '/' (c0 af).")
    bad_text = pack(e[:9] + ["\x01\x01\x01"])
    invalid("error-message-surrogate", "error",
            bad_text.replace(b"\xa3\x01\x01\x01", b"\xa3\xed\xa0\x80"),
            "is not valid UTF-8", "A message holding an encoded surrogate (ed a0 80, U+D800).")


def check():
    failures = 0
    for vector in VECTORS:
        data = bytes.fromhex(vector["hex"])
        try:
            fields = reference_decode(data)
            refused = None
        except ValueError as failure:
            fields, refused = None, str(failure)
        if vector["valid"]:
            canonical = bytes.fromhex(vector.get("canonical_hex", vector["hex"]))
            if fields != vector["fields"] or pack(msgpack.unpackb(data)) != canonical:
                print("valid vector %s: %s" % (vector["name"], refused or "fields differ"),
                      file=sys.stderr)
                failures += 1
        elif refused is None:
            print("invalid vector %s: accepted" % vector["name"], file=sys.stderr)
            failures += 1
    names = [vector["name"] for vector in VECTORS]
    if len(set(names)) != len(names):
        print("duplicate vector names", file=sys.stderr)
        failures += 1
    return failures


#  ---------------------------------------------------------------------
#  zfed.batch vectors (PROTOCOL.md 8.4), written to their own file


def reference_batch_decode(data):
    """The item bodies of a valid batch, or raises ValueError.  Framing only:
    the items are bytes, whatever they hold."""
    if not data or len(data) > BODY_MAX:
        raise ValueError("empty or too large")
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=False, object_pairs_hook=Map)
    except Exception as failure:
        raise ValueError("not one msgpack value: %r" % failure)
    if depth(body) > NESTING_MAX:
        raise ValueError("too deep")
    check_keys_everywhere(body)
    if not isinstance(body, list) or isinstance(body, Map) or not body or \
            type(body[0]) is not str or body[0] != KIND_BATCH:
        raise ValueError("not a batch")
    if len(body) != 3:
        raise ValueError("wrong element count")
    if not is_uint(body[1], U32_MAX) or body[1] != 1:
        raise ValueError("unsupported version")
    items = body[2]
    if not isinstance(items, list) or isinstance(items, Map):
        raise ValueError("items is not an array")
    if not 1 <= len(items) <= BATCH_MAX:
        raise ValueError("%d items" % len(items))
    if any(type(item) is not bytes for item in items):
        raise ValueError("an item is not a bin")
    return items


def item_kind(data):
    """What an item holds, for information: task, result, error, batch (a
    nested batch, which no peer accepts as an item), or None (not a valid
    body)."""
    try:
        return reference_decode(data)["kind"][len("zfed."):]
    except ValueError:
        pass
    try:
        reference_batch_decode(data)
        return "batch"
    except ValueError:
        return None


def recognised(data):
    """PROTOCOL.md 8.4 recognition: the raw bytes start with an array of at
    least one element whose first is the str "zfed.batch", whatever follows."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    try:
        count = unpacker.read_array_header()
        kind = unpacker.unpack()
    except Exception:  # not an array, truncated, bad UTF-8...
        return False
    return count >= 1 and type(kind) is str and kind == KIND_BATCH


BATCH_VECTORS = []


def batch_pack(items):
    return pack([KIND_BATCH, 1, list(items)])


def valid_batch(name, items, note, raw=None):
    canonical = batch_pack(items)
    vector = {"name": name, "valid": True, "note": note,
              "hex": (raw if raw is not None else canonical).hex(), "is_batch": True}
    if raw is not None and raw != canonical:
        vector["canonical"] = False
        vector["canonical_hex"] = canonical.hex()
    else:
        vector["canonical"] = True
    vector["items"] = [item.hex() for item in items]
    vector["item_kinds"] = [item_kind(item) for item in items]
    BATCH_VECTORS.append(vector)


def invalid_batch(name, data, error_contains, note):
    BATCH_VECTORS.append({"name": name, "valid": False, "note": note, "hex": data.hex(),
                          "is_batch": recognised(data), "error_contains": error_contains})


def build_batches():
    task0 = pack(EXAMPLE_TASK[0])
    tasks = [pack(task("demo-1", 2, index, 0, {"fibonacci_level": level}, 1, "88")[0])
             for index, level in enumerate((10, 20, 150))]
    replies = [
        pack(result("demo-1", 2, 0, 0, "w1", 62, fib_outputs(10))[0]),
        pack(error("demo-1", 2, 1, 0, "w1", 422, "fibonacci_level",
                   "must be at least 1, got 0")[0]),
        pack(result("demo-1", 2, 2, 0, "w1", 75, fib_outputs(150))[0]),
        pack(error("", 0, 0, 0, "w1", 400, "", "bad task: invalid msgpack byte 0xc1 at 0")[0]),
    ]
    kind = pack(KIND_BATCH)

    valid_batch("batch-one-task", [task0],
                "The smallest batch: one item, the round-0 task of the worked example "
                "(PROTOCOL.md 17). Item bodies are msgpack bin (bin8 here).")
    valid_batch("batch-three-tasks", tasks,
                "A request batch: three tasks of one round, as the C controller sends them "
                "with --batch 3 (task_id order, same round and global state, different params).")
    valid_batch("batch-reply-results-and-errors", replies,
                "A reply batch mixing zfed.result and zfed.error bodies: item i answers item i "
                "of the request; item 3 answers an unreadable task (empty job_id).")
    valid_batch("batch-bin16-item", [pack(result("demo-1", 0, 0, 0, "w1", 9,
                                                 fib_outputs(100))[0])],
                "An item over 255 bytes (a level-100 result with its sequence) takes the "
                "bin16 form (c5 HHHH).")
    valid_batch("batch-1024-items", [b"\x90"] * BATCH_MAX,
                "At the limit of 1024 items (array16 header dc 0400). The framing does not "
                "look inside the items: each here is an empty array, which a worker would "
                "answer with error 400.")
    valid_batch("batch-unreadable-items", [task0, b"\xc1", pack(EXAMPLE_RESULT[0]), b""],
                "Readable framing, bad items: 0xc1, a zfed.result where a task belongs, and an "
                "empty bin. The batch is accepted; a worker answers items 1-3 with error 400 "
                "(bad task; expected zfed.task, got zfed.result; bad task).")
    valid_batch("batch-nested-batch-item", [batch_pack([task0])],
                "An item that is itself a batch. Batches do not nest: the framing accepts it "
                "(items are opaque), but a worker answers the item with error 400 "
                "(unknown kind 'zfed.batch') and a controller counts such a reply item invalid.")
    valid_batch("batch-noncanonical-version-uint8", [task0],
                "version 1 written as uint8 (cc 01). Accepted; the canonical form is the "
                "fixint 01.",
                raw=b"\x93" + kind + raw_uint(1, 1) + b"\x91" + pack(task0))
    valid_batch("batch-noncanonical-headers", [task0, replies[1]],
                "kind as str8 (d9 0a ...), the items array as array16 (dc 0002) and the first "
                "item as bin16 (c5 002c): every width is accepted; the canonical form uses the "
                "shortest headers.",
                raw=b"\x93" + raw_str8(KIND_BATCH) + pack(1) + raw_array16(2) + raw_bin16(task0)
                + pack(replies[1]))
    valid_batch("batch-noncanonical-version-int8", [task0],
                "version 1 written as int8 (d0 01): the signed family is accepted too "
                "(PROTOCOL.md 7.4).",
                raw=b"\x93" + kind + raw_int(1, 1) + b"\x91" + pack(task0))
    invalid_batch("batch-negative-version", b"\x93" + kind + raw_int(-1, 1) + b"\x91" + pack(task0),
                  "element 1 (version): this peer speaks version 1",
                  "version -1 (d0 ff) is an integer, but not 1.")

    good = batch_pack([task0])
    invalid_batch("batch-wrong-version", pack([KIND_BATCH, 2, [task0]]),
                  "element 1 (version): this peer speaks version 1",
                  "version 2 is not spoken by a v1 peer.")
    invalid_batch("batch-version-as-str", pack([KIND_BATCH, "1", [task0]]),
                  "element 1 (version): this peer speaks version 1",
                  "version must be the integer 1, not a string.")
    invalid_batch("batch-no-items", pack([KIND_BATCH, 1, []]),
                  "element 2 (items): 0 items, 1 to 1024 allowed", "A batch holds at least one item.")
    invalid_batch("batch-1025-items", pack([KIND_BATCH, 1, [b"\x90"] * (BATCH_MAX + 1)]),
                  "element 2 (items): 1025 items, 1 to 1024 allowed",
                  "One item over the limit of 1024.")
    invalid_batch("batch-2-elements", pack([KIND_BATCH, 1]), "zfed.batch v1 has 3 elements, got 2",
                  "A batch without its items.")
    invalid_batch("batch-4-elements", pack([KIND_BATCH, 1, [task0], 0]),
                  "zfed.batch v1 has 3 elements, got 4", "A batch with one element too many.")
    invalid_batch("batch-kind-only", pack([KIND_BATCH]), "zfed.batch v1 has 3 elements, got 1",
                  "Just the kind.")
    invalid_batch("batch-item-not-bin", pack([KIND_BATCH, 1, [task0, "zfed.task"]]),
                  "element 2 (items): item 1 is not a bin",
                  "Item 1 is a str: items are bin, never str.")
    invalid_batch("batch-item-inline-array", pack([KIND_BATCH, 1, [EXAMPLE_TASK[0]]]),
                  "element 2 (items): item 0 is not a bin",
                  "The task written inline as an array: each item must be the body's bytes "
                  "wrapped in a bin.")
    invalid_batch("batch-items-not-array", pack([KIND_BATCH, 1, task0]),
                  "element 2 (items): expected an array",
                  "The single task body as element 2, not inside an array.")
    invalid_batch("batch-not-a-batch", task0, "not a zfed.batch body",
                  "A zfed.task body is not a batch.")
    invalid_batch("batch-kind-as-bin", pack([KIND_BATCH.encode(), 1, [task0]]),
                  "not a zfed.batch body", "kind must be str, not bin.")
    invalid_batch("batch-truncated", good[:-10], "msgpack truncated",
                  "The one-task batch without its last 10 bytes: the item's bin is cut short.")
    invalid_batch("batch-trailing-bytes", good + b"\xc0", "1 trailing bytes",
                  "A valid batch followed by one more msgpack value (nil).")
    invalid_batch("batch-empty-body", b"", "empty body", "A zero-length body frame.")


def check_batches():
    failures = 0
    for vector in BATCH_VECTORS:
        data = bytes.fromhex(vector["hex"])
        try:
            items, refused = reference_batch_decode(data), None
        except ValueError as failure:
            items, refused = None, str(failure)
        if vector["is_batch"] != recognised(data) or (vector["valid"] and not recognised(data)):
            print("batch vector %s: is_batch is wrong" % vector["name"], file=sys.stderr)
            failures += 1
        if vector["valid"]:
            canonical = bytes.fromhex(vector.get("canonical_hex", vector["hex"]))
            expected = [bytes.fromhex(item) for item in vector["items"]]
            if items != expected or batch_pack(items) != canonical:
                print("valid batch vector %s: %s" % (vector["name"], refused or "items differ"),
                      file=sys.stderr)
                failures += 1
        elif refused is None:
            print("invalid batch vector %s: accepted" % vector["name"], file=sys.stderr)
            failures += 1
    names = [vector["name"] for vector in BATCH_VECTORS]
    if len(set(names)) != len(names):
        print("duplicate batch vector names", file=sys.stderr)
        failures += 1
    return failures


def write_batch_vectors(path):
    document = {
        "description": (
            "zfed protocol v1 test vectors for zfed.batch (see PROTOCOL.md 8.4). Each vector "
            "is one batch body. hex: the body bytes. valid: whether a v1 decoder must accept "
            "the batch framing. is_batch: whether a receiver recognises the body as a batch "
            "(its raw bytes start with an array of at least one element whose first is the "
            "str zfed.batch), which decides how a worker answers it: a recognised batch that "
            "does not decode gets one 'bad batch' error, anything else is read as a single "
            "body. For valid vectors, items holds the hex of each item body in "
            "order, canonical says whether hex is the canonical encoding (when it is not, "
            "canonical_hex is what a canonical encoder produces for the same items), and "
            "item_kinds says, for information, what each item holds: task, result, error, "
            "batch (a nested batch, which peers refuse as an item) or null (not a valid body; "
            "the framing accepts any bytes). For invalid vectors, error_contains is a "
            "substring of the reason zfed's C decoder (zfed_batch_decode) gives (other "
            "decoders only need to refuse the body). Generated by "
            "schemas/tools/make_vectors.py with msgpack-python; do not edit by hand."),
        "protocol": "zfed",
        "protocol_version": 1,
        "kind": KIND_BATCH,
        "vectors": BATCH_VECTORS,
    }
    with open(path, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")


def main():
    parser = argparse.ArgumentParser(description="Regenerates the zfed test vectors.")
    parser.add_argument("--batch-out", default=BATCH_OUT, metavar="FILE",
                        help="where the zfed.batch vectors go (default %(default)s)")
    args = parser.parse_args()
    build()
    build_batches()
    if check() != 0 or check_batches() != 0:
        return 1
    write_batch_vectors(args.batch_out)
    document = {
        "description": (
            "zfed protocol v1 test vectors (see PROTOCOL.md). Each vector is one message body. "
            "hex: the body bytes. kind: the message kind the vector is about (task, result or "
            "error). valid: whether a v1 decoder must accept it. For valid vectors, fields "
            "holds every decoded element by its PROTOCOL.md name (params, outputs and "
            "global_value as JSON; bigints and decimals are JSON strings), and canonical says "
            "whether hex is the canonical encoding; when it is not, canonical_hex is what a "
            "canonical encoder produces for the same fields. For invalid vectors, "
            "error_contains is a substring of the reason zfed's C decoder gives (other "
            "decoders only need to refuse the body). Generated by schemas/tools/make_vectors.py "
            "with msgpack-python; do not edit by hand."),
        "protocol": "zfed",
        "protocol_version": 1,
        "vectors": VECTORS,
    }
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
