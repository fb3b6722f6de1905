#!/usr/bin/python3
"""Checks zfed_protocol.py against schemas/vectors.json.

    /usr/bin/python3 examples/python/check_vectors.py [--vectors FILE] [-v]

Valid vectors must decode to their "fields" and re-encode to their bytes (or
to canonical_hex when the vector is not canonical); invalid vectors must be
refused.  For invalid vectors the C decoder's reason (error_contains) is only
compared for information.  When msgpack-python is importable, the canonical
bytes are also compared with msgpack.packb(obj, use_bin_type=True).
Exit status: 0 when every vector agrees, 1 otherwise, 2 on bad usage.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zfed_protocol as zp  # noqa: E402

try:
    import msgpack
except ImportError:  # optional cross-check only
    msgpack = None

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VECTORS = os.path.normpath(os.path.join(HERE, "..", "..", "schemas", "vectors.json"))


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1].strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", default=DEFAULT_VECTORS, help="vectors.json (default %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per vector")
    args = parser.parse_args()
    try:
        with open(args.vectors) as handle:
            document = json.load(handle)
    except (OSError, ValueError) as failure:
        print("check_vectors: cannot read %s: %s" % (args.vectors, failure), file=sys.stderr)
        return 2
    vectors = document["vectors"]
    failed, same_reason, invalid = [], 0, 0
    for vector in vectors:
        ok, detail, reason_match = check(vector)
        if not vector["valid"]:
            invalid += 1
            same_reason += bool(reason_match)
        if not ok:
            failed.append(vector["name"])
        if args.verbose or not ok:
            print("%-4s %-40s %s" % ("ok" if ok else "FAIL", vector["name"], detail))
    valid = len(vectors) - invalid
    print("%d vectors: %d valid, %d invalid; %d agree, %d disagree"
          % (len(vectors), valid, invalid, len(vectors) - len(failed), len(failed)))
    print("invalid vectors whose C reason (error_contains) also appears in ours: %d of %d"
          % (same_reason, invalid))
    if failed:
        print("disagreeing: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
