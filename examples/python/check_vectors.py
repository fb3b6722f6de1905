#!/usr/bin/python3
"""Checks the zfed.protocol codec (python/zfed/protocol.py) against schemas/vectors.json and schemas/batch-vectors.json.

    /usr/bin/python3 examples/python/check_vectors.py [--vectors FILE] [--batch-vectors FILE] [-v]

Valid vectors must decode to their "fields" and re-encode to their bytes (or
to canonical_hex when the vector is not canonical); invalid vectors must be
refused.  Valid batch vectors must decode (decode_batch) to exactly their
"items", whose kinds must be the "item_kinds" the body decoder finds, and
re-encode (encode_batch) to their canonical bytes; invalid ones must be
refused; is_batch must agree with every batch vector's "is_batch".  For
invalid vectors the C decoder's reason (error_contains) is only compared for
information.  When msgpack-python is importable, the canonical bytes are also
compared with msgpack.packb(obj, use_bin_type=True).
Exit status: 0 when every vector agrees, 1 otherwise, 2 on bad usage.
"""

import argparse
import json
import os
import sys

# The zfed package of this source tree (python/), else an installed one.
_PACKAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python")
if os.path.isdir(os.path.join(_PACKAGE, "zfed")):
    sys.path.insert(0, os.path.abspath(_PACKAGE))
import zfed.protocol as zp  # noqa: E402

try:
    import msgpack
except ImportError:  # optional cross-check only
    msgpack = None

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VECTORS = os.path.normpath(os.path.join(HERE, "..", "..", "schemas", "vectors.json"))
DEFAULT_BATCH_VECTORS = os.path.normpath(os.path.join(HERE, "..", "..", "schemas",
                                                      "batch-vectors.json"))


def jsonable(value):
    """Decoded values as the vectors write them (JSON)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def check(vector):
    """Returns (ok, detail, reason_matches)."""
    data = bytes.fromhex(vector["hex"])
    if vector["valid"]:
        try:
            msg = zp.decode(data)
        except zp.ProtocolError as failure:
            return False, "refused: %s" % failure, None
        if msg.KIND != "zfed." + vector["kind"]:
            return False, "decoded as %s" % msg.KIND, None
        fields = jsonable(msg.fields())
        if fields != vector["fields"]:
            return False, "fields differ: %r" % fields, None
        expected = bytes.fromhex(vector.get("canonical_hex", vector["hex"]))
        try:
            again = msg.encode()
        except zp.ProtocolError as failure:
            return False, "re-encode refused: %s" % failure, None
        if again != expected:
            return False, "re-encoded to %s" % again.hex(), None
        if vector["canonical"] and again != data:
            return False, "canonical vector not reproduced byte for byte", None
        if msgpack is not None:
            ref = msgpack.packb(msgpack.unpackb(data, raw=False, strict_map_key=False),
                                use_bin_type=True)
            if ref != again:
                return False, "differs from msgpack.packb: %s" % ref.hex(), None
        return True, "ok", None
    try:
        msg = zp.decode(data)
    except zp.DecodeError as failure:
        return True, "refused: %s" % failure, vector["error_contains"] in str(failure)
    return False, "accepted as %r" % (msg,), None


def item_kind(data):
    """What an item body holds, as batch-vectors.json names it."""
    try:
        return zp.decode(data).KIND[len("zfed."):]
    except zp.DecodeError:
        return "batch" if zp.is_batch(data) else None


def check_batch(vector):
    """Returns (ok, detail, reason_matches) for a batch vector."""
    data = bytes.fromhex(vector["hex"])
    if zp.is_batch(data) != vector["is_batch"]:
        return False, "is_batch says %s" % zp.is_batch(data), None
    if vector["valid"]:
        try:
            items = zp.decode_batch(data)
        except zp.ProtocolError as failure:
            return False, "refused: %s" % failure, None
        if [item.hex() for item in items] != vector["items"]:
            return False, "items differ", None
        kinds = [item_kind(item) for item in items]
        if kinds != vector["item_kinds"]:
            return False, "item kinds differ: %r" % kinds, None
        expected = bytes.fromhex(vector.get("canonical_hex", vector["hex"]))
        try:
            again = zp.encode_batch(items)
        except zp.ProtocolError as failure:
            return False, "re-encode refused: %s" % failure, None
        if again != expected:
            return False, "re-encoded to %s" % again.hex(), None
        if msgpack is not None:
            ref = msgpack.packb(msgpack.unpackb(data, raw=False), use_bin_type=True)
            if ref != again:
                return False, "differs from msgpack.packb: %s" % ref.hex(), None
        return True, "ok (%d items)" % len(items), None
    try:
        items = zp.decode_batch(data)
    except zp.DecodeError as failure:
        return True, "refused: %s" % failure, vector["error_contains"] in str(failure)
    return False, "accepted with %d items" % len(items), None


def load(path):
    try:
        with open(path) as handle:
            return json.load(handle)["vectors"]
    except (OSError, ValueError, KeyError) as failure:
        print("check_vectors: cannot read %s: %s" % (path, failure), file=sys.stderr)
        return None


def run(label, vectors, checker, verbose):
    """Checks every vector; prints the tally; returns the names that disagree."""
    failed, same_reason, invalid = [], 0, 0
    for vector in vectors:
        ok, detail, reason_match = checker(vector)
        if not vector["valid"]:
            invalid += 1
            same_reason += bool(reason_match)
        if not ok:
            failed.append(vector["name"])
        if verbose or not ok:
            print("%-4s %-40s %s" % ("ok" if ok else "FAIL", vector["name"], detail))
    valid = len(vectors) - invalid
    print("%d %s: %d valid, %d invalid; %d agree, %d disagree"
          % (len(vectors), label, valid, invalid, len(vectors) - len(failed), len(failed)))
    print("invalid %s whose C reason (error_contains) also appears in ours: %d of %d"
          % (label, same_reason, invalid))
    return failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1].strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", default=DEFAULT_VECTORS, help="vectors.json (default %(default)s)")
    parser.add_argument("--batch-vectors", default=DEFAULT_BATCH_VECTORS,
                        help="batch-vectors.json (default %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per vector")
    args = parser.parse_args()
    vectors = load(args.vectors)
    batch_vectors = load(args.batch_vectors)
    if vectors is None or batch_vectors is None:
        return 2
    failed = run("vectors", vectors, check, args.verbose)
    failed += run("batch vectors", batch_vectors, check_batch, args.verbose)
    if failed:
        print("disagreeing: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
