"""safetensors files with numpy, no other dependency (zfed.safetensors).

The format (https://github.com/huggingface/safetensors): 8 bytes of
little-endian u64 N, then N bytes of JSON header (an object: tensor name ->
{"dtype", "shape", "data_offsets": [begin, end]}, and an optional
"__metadata__" object of strings), then the data.  Offsets count from the
start of the data; tensors may not overlap and must cover it without holes.

zfed's model order is the tensors' data-offset order (MODELS.md section 3),
so load() returns them in that order and save() writes them in model order:
a model loaded and saved again keeps its bytes.  BF16 tensors are uint16
arrays of raw bfloat16 bits (zfed.models.bf16_to_f32 converts them).

    model = load("model.safetensors")          # memory-mapped, read-only views
    save("out.safetensors", model, metadata={"round": "3"})
"""

import json
import mmap
import os
import struct

import numpy as np

from .models import DTYPES, Model, ModelError, as_model, model_data

HEADER_MAX = 100 * 1024 * 1024  # as the reference implementation
_ALIGN = 8


class SafetensorsError(ModelError):
    def __init__(self, text):
        super().__init__("safetensors", text)


def _parse_header(head, total):
    """Header bytes -> ([(name, dtype, shape, begin, end)] in offset order,
    metadata); checks every entry against a data section of `total` bytes."""
    try:
        header = json.loads(bytes(head).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as failure:
        raise SafetensorsError("header is not JSON: %s" % failure)
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsError("__metadata__ must be an object of strings")
    entries = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError("tensor %s: expected dtype, shape and data_offsets" % name)
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            raise SafetensorsError("tensor %s: dtype %s is not one zfed carries (%s)"
                                   % (name, dtype, " ".join(DTYPES)))
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise SafetensorsError("tensor %s: shape must be a list of non-negative integers"
                                   % name)
        if not (isinstance(offsets, list) and len(offsets) == 2 and
                all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1] <= total):
            raise SafetensorsError("tensor %s: data_offsets %r outside the %d data bytes"
                                   % (name, offsets, total))
        nbytes = int(np.prod(shape, dtype=object)) * DTYPES[dtype].itemsize
        if offsets[1] - offsets[0] != nbytes:
            raise SafetensorsError("tensor %s: %d bytes between its offsets, shape %s of %s "
                                   "is %d" % (name, offsets[1] - offsets[0], shape, dtype, nbytes))
        entries.append((name, dtype, tuple(shape), offsets[0], offsets[1]))
    entries.sort(key=lambda e: (e[3], e[4]))
    end = 0
    for name, _, _, begin, stop in entries:
        if begin != end:
            raise SafetensorsError("tensor %s starts at %d: %s before it" % (
                name, begin, "a hole" if begin > end else "overlaps the tensor"))
        end = stop
    if end != total:
        raise SafetensorsError("the tensors end at byte %d of %d data bytes" % (end, total))
    return entries, metadata


def loads(data):
    """safetensors bytes (bytes, memoryview, mmap) -> (Model, metadata);
    the arrays are read-only views over `data`."""
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if view.nbytes < 8:
        raise SafetensorsError("%d bytes: too short for a header" % view.nbytes)
    (size,) = struct.unpack("<Q", view[:8])
    if size > min(HEADER_MAX, view.nbytes - 8):
        raise SafetensorsError("header of %d bytes does not fit" % size)
    body = view[8 + size:]
    entries, metadata = _parse_header(view[8:8 + size], body.nbytes)
    flat = np.frombuffer(body, np.uint8)
    arrays = []
    for name, dtype, shape, begin, end in entries:
        array = flat[begin:end].view(DTYPES[dtype]).reshape(shape)
        array.flags.writeable = False
        arrays.append((name, array))
    return Model(arrays, {e[0]: e[1] for e in entries}, flat), metadata


def load(path, with_metadata=False):
    """Memory-maps a safetensors file -> Model (read-only arrays over the
    map; nothing is read until used).  with_metadata: (Model, metadata)."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    try:
        model, metadata = loads(mapped)
    except ModelError as failure:
        raise SafetensorsError("%s: %s" % (path, failure))
    return (model, metadata) if with_metadata else model


def header_bytes(model, metadata=None):
    """The 8-byte length and the JSON header for a model, padded with
    spaces to a multiple of 8 bytes as the reference writer does."""
    header = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorsError("metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    for tensor in model.layout():
        header[tensor.name] = {"dtype": tensor.dtype, "shape": list(tensor.shape),
                               "data_offsets": [tensor.offset, tensor.end]}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-(8 + len(text)) % _ALIGN)
    return struct.pack("<Q", len(text)) + text


def dumps(model, metadata=None, dtypes=None):
    """Model (or name -> array mapping) -> safetensors bytes."""
    model = as_model(model, dtypes)
    return header_bytes(model, metadata) + bytes(model_data(model))


def save(path, model, metadata=None, dtypes=None):
    """Writes a safetensors file whole or not at all (PATH.tmp, fsync,
    rename).  Each array's memory goes to the file as it is (a copy only
    for a non-contiguous array)."""
    model = as_model(model, dtypes)
    temp = "%s.tmp" % path
    with open(temp, "wb") as handle:
        handle.write(header_bytes(model, metadata))
        for array in model.values():
            flat = np.ascontiguousarray(array).reshape(-1)
            if flat.nbytes:
                handle.write(memoryview(flat).cast("B"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
