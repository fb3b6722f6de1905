#!/usr/bin/python3
"""Builds the fuzz seed corpus from schemas/vectors.json and
schemas/batch-vectors.json.

    /usr/bin/python3 tests/fuzz/make_corpus.py

msg/: every test vector body, valid and invalid, and every zfed.batch
vector body (fuzz_msg also runs the batch decoder).
mdp/: Majordomo messages as fuzz_mdp reads them (frames, each a length
byte and its bytes), one per command shape and side, with vector bodies.
The output is committed; rerun this after changing the vectors.
"""

import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "..", "schemas", "vectors.json")
BATCH_VECTORS = os.path.join(HERE, "..", "..", "schemas", "batch-vectors.json")


def frames(*parts):
    out = bytearray()
    for part in parts:
        assert len(part) < 256
        out.append(len(part))
        out += part
    return bytes(out)


def main():
    with open(VECTORS) as handle:
        vectors = json.load(handle)["vectors"]
    with open(BATCH_VECTORS) as handle:
        batch_vectors = json.load(handle)["vectors"]
    assert not {v["name"] for v in vectors} & {v["name"] for v in batch_vectors}
    for folder in ("msg", "mdp"):
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
    }
    for name, data in shapes.items():
        with open(os.path.join(HERE, "corpus", "mdp", name + ".bin"), "wb") as handle:
            handle.write(data)
    print("msg: %d seeds, mdp: %d seeds" % (len(vectors) + len(batch_vectors), len(shapes)))


if __name__ == "__main__":
    main()
