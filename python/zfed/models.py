"""Models on the wire (schemas/MODELS.md): dtypes, layouts, the zfed.model
descriptor, the chunk transfer messages, and numpy models that are views
over the bytes that carried them.

A *model* is an ordered map from tensor name to tensor.  Here it is a
`Model`: a dict of numpy arrays (model order = insertion order) that also
knows each tensor's zfed dtype (BF16 has no numpy type: its arrays are
uint16 views holding the raw bits, see bf16_to_f32 / f32_to_bf16) and, when
its arrays share one contiguous buffer in layout order, that buffer.

Zero copy, both ways:
  * decode_model(descriptor, frame) puts read-only np.frombuffer views over
    the frame's memory (a zmq.Frame received with copy=False, a memoryview,
    an mmap); nothing is copied, and the arrays keep the frame alive.
  * model_data(model) is the memory to send as the data frame: the model's
    own buffer when its arrays already lie end to end in one buffer (a
    Model from Model.empty / empty_like, or a decoded one), else one new
    contiguous buffer the arrays are copied into once (never through
    msgpack).

Every refusal raises ModelError; its `reason` is the class of the fault
named in schemas/model-vectors.json (the element or rule that failed) and
str() the text for people.
"""

import hashlib
import math
import os
import re

import numpy as np

from . import protocol as zp

KIND_MODEL = "zfed.model"
KIND_FETCH = "zfed.fetch"
KIND_CHUNK = "zfed.chunk"
KIND_RELEASE = "zfed.release"
KIND_RELEASED = "zfed.released"
TRANSFER_ELEMENTS = {KIND_FETCH: 4, KIND_CHUNK: 6, KIND_RELEASE: 3, KIND_RELEASED: 3}
DESCRIPTOR_ELEMENTS = 8

ID_BYTES = 32
NAME_MAX = 255
DIMS_MAX = 16
TENSORS_MAX = 100000
MODEL_SIZE_MAX = 1 << 40
INLINE_MAX = 4 * 1024 * 1024
CHUNK_MIN = 65536
CHUNK_MAX = 64 * 1024 * 1024
CHUNK_DEFAULT = 4 * 1024 * 1024
RELEASE_IDS_MAX = 1024
CHUNK_TEXT_MAX = 512
FETCH_WINDOW = 4
FETCH_TIMEOUT_MS = 10000
FETCH_TRIES = 3
HOLD_MS_DEFAULT = 600000
BLOB_PREFIX = "zfed.blob."

# zfed.chunk codes (MODELS.md section 6) and the worker's 507 (section 7).
CHUNK_OK = 200
CHUNK_MALFORMED = 400
CHUNK_NOT_FOUND = 404
CHUNK_OUT_OF_RANGE = 416
CHUNK_BUSY = 429
CHUNK_CODES = (CHUNK_OK, CHUNK_MALFORMED, CHUNK_NOT_FOUND, CHUNK_OUT_OF_RANGE, CHUNK_BUSY)
E_INSUFFICIENT_STORAGE = 507

# MODELS.md section 2: safetensors names -> little-endian numpy dtypes.
# BF16 travels as its raw bits: numpy has no bfloat16, so a uint16 view.
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
_NUMPY_TO_ZFED = {"f8": "F64", "f4": "F32", "f2": "F16", "i8": "I64", "i4": "I32",
                  "i2": "I16", "i1": "I8", "u8": "U64", "u4": "U32", "u2": "U16", "u1": "U8"}
_BLOB_RE = re.compile(r"zfed\.blob\.[0-9a-f]{32}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class ModelError(zp.ProtocolError):
    """A descriptor, layout, model or transfer message that must be refused.
    reason: the fault's class (model-vectors.json), e.g. "offset", "dtype"."""

    def __init__(self, reason, text):
        super().__init__(text)
        self.reason = reason


def itemsize(dtype):
    return DTYPES[dtype].itemsize


def zfed_dtype(array):
    """The zfed dtype name of a numpy array's dtype (uint16 is U16: BF16 is
    only ever known from a hint)."""
    kind = array.dtype
    name = _NUMPY_TO_ZFED.get("%s%d" % (kind.kind, kind.itemsize))
    if name is None or kind.kind not in "fiu":
        raise ModelError("dtype", "numpy dtype %s has no zfed dtype (%s)"
                         % (kind, ", ".join(DTYPES)))
    return name


def is_blob_service(name):
    return type(name) is str and _BLOB_RE.fullmatch(name) is not None


def new_blob_service():
    """A fresh blob service name: zfed.blob. and 128 random bits in hex."""
    return BLOB_PREFIX + os.urandom(16).hex()


def is_tensor_name(name):
    if type(name) is not str or _CONTROL_RE.search(name):
        return False
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return 1 <= size <= NAME_MAX


def sha256(data):
    """SHA-256 of a model's data (bytes, memoryview, zmq.Frame, array)."""
    return hashlib.sha256(byte_view(data)).digest()


# ---------------------------------------------------------------------------
# Tensors and layouts (section 3)

class Tensor:
    """One layout entry: name, dtype, shape, offset, nbytes."""

    __slots__ = ("name", "dtype", "shape", "offset", "nbytes")

    def __init__(self, name, dtype, shape, offset, nbytes):
        self.name, self.dtype, self.shape = name, dtype, tuple(shape)
        self.offset, self.nbytes = offset, nbytes

    def elements(self):
        return [self.name, self.dtype, list(self.shape), self.offset, self.nbytes]

    @property
    def end(self):
        return self.offset + self.nbytes

    def __eq__(self, other):
        return isinstance(other, Tensor) and self.elements() == other.elements()

    def __repr__(self):
        return "Tensor(%r, %s, %s, offset=%d, nbytes=%d)" % (
            self.name, self.dtype, list(self.shape), self.offset, self.nbytes)


def make_layout(entries):
    """[(name, dtype, shape), ...] -> the layout: offsets end to end."""
    layout, offset = [], 0
    for name, dtype, shape in entries:
        nbytes = math.prod(shape) * itemsize(dtype)
        layout.append(Tensor(name, dtype, shape, offset, nbytes))
        offset += nbytes
    check_layout([t.elements() for t in layout])
    return layout


def layout_size(layout):
    return layout[-1].end if layout else 0


def check_layout(value):
    """A decoded layout (array of 5-element arrays) -> [Tensor]; every rule
    of MODELS.md section 3, the first failure raised."""
    if not _is_array(value):
        raise ModelError("tensors", "tensors: expected an array, got %s" % zp.type_name(value))
    if len(value) > TENSORS_MAX:
        raise ModelError("tensors", "tensors: %d entries, at most %d" % (len(value), TENSORS_MAX))
    layout, names, offset = [], set(), 0
    for index, entry in enumerate(value):
        where = "tensor %d" % index
        if not _is_array(entry) or len(entry) != 5:
            raise ModelError("tensor", "%s: expected an array [name, dtype, shape, offset, nbytes]"
                             % where)
        name, dtype, shape, start, nbytes = entry
        if not is_tensor_name(name):
            raise ModelError("name", "%s: name must be 1-%d bytes of UTF-8 without control "
                             "characters" % (where, NAME_MAX))
        where = "tensor %s" % zp.clean_text(name, 64)
        if name in names:
            raise ModelError("duplicate", "%s: the name appears twice" % where)
        names.add(name)
        if type(dtype) is not str or dtype not in DTYPES:
            raise ModelError("dtype", "%s: dtype must be one of %s" % (where, " ".join(DTYPES)))
        if not _is_array(shape) or len(shape) > DIMS_MAX or \
                not all(zp.is_u64(d) for d in shape):
            raise ModelError("shape", "%s: shape must be an array of 0-%d unsigned integers"
                             % (where, DIMS_MAX))
        if not zp.is_u64(start) or start != offset:
            raise ModelError("offset", "%s: offset %s, expected %d (tensors lie end to end)"
                             % (where, zp._short(start), offset))
        expected = math.prod(shape) * itemsize(dtype)
        if not zp.is_u64(nbytes) or nbytes != expected:
            raise ModelError("nbytes", "%s: nbytes %s, but shape %s of %s is %d bytes"
                             % (where, zp._short(nbytes), list(shape), dtype, expected))
        layout.append(Tensor(name, dtype, shape, start, nbytes))
        offset += nbytes
    return layout


def layout_difference(layout, expected):
    """None when the layouts are equal (section 3), else the first
    difference, worded as the controller's records word it."""
    for index, (got, want) in enumerate(zip(layout, expected)):
        if got.name != want.name:
            return "tensor %d is %s where the global has %s" % (index, got.name, want.name)
        for what in ("dtype", "shape"):
            a, b = getattr(got, what), getattr(want, what)
            if a != b:
                show = (lambda v: list(v)) if what == "shape" else (lambda v: v)
                return "tensor %s: %s %s where the global has %s" % (got.name, what, show(a),
                                                                     show(b))
    if len(layout) != len(expected):
        return "%d tensors where the global has %d" % (len(layout), len(expected))
    return None


def _is_array(value):
    return isinstance(value, list) and not isinstance(value, zp.PairMap)


# ---------------------------------------------------------------------------
# The model descriptor (section 4)

class Descriptor:
    """A zfed.model descriptor.  source "" is inline (the data frame follows
    the body), else the blob service holding the data."""

    __slots__ = ("id", "sha256", "size", "chunk", "tensors", "source")

    def __init__(self, id, sha256, size, chunk, tensors, source=""):
        self.id, self.sha256, self.size, self.chunk = id, sha256, size, chunk
        self.tensors, self.source = list(tensors), source

    @property
    def inline(self):
        return self.source == ""

    @property
    def chunks(self):
        return -(-self.size // self.chunk)

    def chunk_range(self, index):
        start = index * self.chunk
        return start, min(start + self.chunk, self.size)

    def elements(self):
        """The msgpack value (bins as bytes), ready for zfed.protocol.pack."""
        return [KIND_MODEL, zp.PROTOCOL_VERSION, bytes(self.id),
                None if self.sha256 is None else bytes(self.sha256), self.size, self.chunk,
                [t.elements() for t in self.tensors], self.source]

    def encode(self):
        return zp.pack(self.elements())

    def fields(self):
        """As model-vectors.json writes them."""
        return {"id": bytes(self.id).hex(),
                "sha256": None if self.sha256 is None else bytes(self.sha256).hex(),
                "size": self.size, "chunk": self.chunk,
                "tensors": [t.elements() for t in self.tensors], "source": self.source}

    def __repr__(self):
        return "Descriptor(id=%s, size=%d, chunk=%d, %d tensors, source=%r)" % (
            bytes(self.id).hex()[:12], self.size, self.chunk, len(self.tensors), self.source)


def check_descriptor(value, role=None):
    """A decoded descriptor value -> Descriptor (MODELS.md section 4).
    role "global": also its id must be its sha256 (section 4); "result" or
    None: any id."""
    if not _is_array(value):
        raise ModelError("descriptor", "a model descriptor is an array, got %s"
                         % zp.type_name(value))
    if len(value) < 2 or type(value[0]) is not str or value[0] != KIND_MODEL:
        raise ModelError("kind", "element 0 (kind): expected \"%s\"" % KIND_MODEL)
    if not zp.is_u32(value[1]) or value[1] != zp.PROTOCOL_VERSION:
        raise ModelError("version", "element 1 (version): this peer speaks version %d"
                         % zp.PROTOCOL_VERSION)
    if len(value) != DESCRIPTOR_ELEMENTS:
        raise ModelError("elements", "%s v1 has %d elements, got %d"
                         % (KIND_MODEL, DESCRIPTOR_ELEMENTS, len(value)))
    _, _, id_, digest, size, chunk, tensors, source = value
    if type(id_) is not bytes or len(id_) != ID_BYTES:
        raise ModelError("id", "element 2 (id): expected a bin of %d bytes" % ID_BYTES)
    if digest is not None and (type(digest) is not bytes or len(digest) != ID_BYTES):
        raise ModelError("sha256", "element 3 (sha256): expected a bin of %d bytes or nil"
                         % ID_BYTES)
    if not zp.is_u64(size) or size > MODEL_SIZE_MAX:
        raise ModelError("size", "element 4 (size): expected an unsigned integer up to 2^40")
    if not zp.is_u32(chunk) or not CHUNK_MIN <= chunk <= CHUNK_MAX:
        raise ModelError("chunk", "element 5 (chunk): expected %d to %d bytes, got %s"
                         % (CHUNK_MIN, CHUNK_MAX, zp._short(chunk)))
    layout = check_layout(tensors)
    if layout_size(layout) != size:
        raise ModelError("size", "element 4 (size): %d bytes, but the layout's tensors end at %d"
                         % (size, layout_size(layout)))
    if type(source) is not str or (source != "" and not is_blob_service(source)):
        raise ModelError("source", "element 7 (source): expected \"\" or zfed.blob. and 32 "
                         "lowercase hex digits")
    if source == "" and size > INLINE_MAX:
        raise ModelError("inline", "a model of %d bytes (over %d) must travel by reference"
                         % (size, INLINE_MAX))
    if source != "" and size <= INLINE_MAX:
        raise ModelError("inline", "a model of %d bytes (at most %d) must travel inline"
                         % (size, INLINE_MAX))
    if role == "global" and (digest is None or digest != id_):
        raise ModelError("global_id", "a global model's id must be its sha256")
    return Descriptor(id_, digest, size, chunk, layout, source)


def check_data(descriptor, data):
    """MODELS.md section 5: an inline descriptor comes with exactly one data
    frame of `size` bytes (data), one by reference with none (data None)."""
    if descriptor.inline and data is None:
        raise ModelError("data", "an inline model comes with its data frame")
    if not descriptor.inline and data is not None:
        raise ModelError("data", "a model by reference comes without a data frame")
    if data is not None and len(byte_view(data)) != descriptor.size:
        raise ModelError("data", "the data frame is %d bytes, the model %d"
                         % (len(byte_view(data)), descriptor.size))


def decode_descriptor(data, role=None):
    """Descriptor bytes (one msgpack value) -> Descriptor."""
    return check_descriptor(_unpack(data), role)


def _unpack(data):
    try:
        return zp.unpack(data)
    except zp.DecodeError as failure:
        raise ModelError("msgpack", str(failure))


# ---------------------------------------------------------------------------
# Chunk transfer messages (section 6)

class Fetch:
    KIND = KIND_FETCH

    def __init__(self, id, index):
        self.id, self.index = id, index

    def elements(self):
        return [KIND_FETCH, zp.PROTOCOL_VERSION, bytes(self.id), self.index]

    def fields(self):
        return {"id": bytes(self.id).hex(), "index": self.index}


class Chunk:
    """A zfed.chunk reply; with code 200 a data frame of the chunk follows."""
    KIND = KIND_CHUNK

    def __init__(self, id, index, code, text=""):
        self.id, self.index, self.code, self.text = id, index, code, text

    def elements(self):
        return [KIND_CHUNK, zp.PROTOCOL_VERSION, bytes(self.id), self.index, self.code,
                zp.clean_text(self.text, CHUNK_TEXT_MAX)]

    def fields(self):
        return {"id": bytes(self.id).hex(), "index": self.index, "code": self.code,
                "text": self.text}


class Release:
    KIND = KIND_RELEASE

    def __init__(self, ids):
        self.ids = list(ids)

    def elements(self):
        return [KIND_RELEASE, zp.PROTOCOL_VERSION, [bytes(i) for i in self.ids]]

    def fields(self):
        return {"ids": [bytes(i).hex() for i in self.ids]}


class Released:
    KIND = KIND_RELEASED

    def __init__(self, count):
        self.count = count

    def elements(self):
        return [KIND_RELEASED, zp.PROTOCOL_VERSION, self.count]

    def fields(self):
        return {"count": self.count}


_TRANSFER_CLASSES = {KIND_FETCH: Fetch, KIND_CHUNK: Chunk, KIND_RELEASE: Release,
                     KIND_RELEASED: Released}


def encode_transfer(message):
    """Validates (as the decoder would) and packs canonically."""
    data = zp.pack(message.elements())
    decode_transfer(data)
    return data


def _check_id(value, where):
    if type(value) is not bytes or len(value) != ID_BYTES:
        raise ModelError("id", "%s: expected a bin of %d bytes" % (where, ID_BYTES))


def decode_transfer(data):
    """Body bytes -> Fetch, Chunk, Release or Released (MODELS.md section 6)."""
    body = _unpack(data)
    if not _is_array(body) or len(body) < 2 or type(body[0]) is not str \
            or body[0] not in TRANSFER_ELEMENTS:
        raise ModelError("kind", "not a zfed.fetch, zfed.chunk, zfed.release or zfed.released "
                         "body")
    kind = body[0]
    if not zp.is_u32(body[1]) or body[1] != zp.PROTOCOL_VERSION:
        raise ModelError("version", "element 1 (version): this peer speaks version %d"
                         % zp.PROTOCOL_VERSION)
    if len(body) != TRANSFER_ELEMENTS[kind]:
        raise ModelError("elements", "%s v1 has %d elements, got %d"
                         % (kind, TRANSFER_ELEMENTS[kind], len(body)))
    if kind in (KIND_FETCH, KIND_CHUNK):
        _check_id(body[2], "element 2 (id)")
        if not zp.is_u32(body[3]):
            raise ModelError("index", "element 3 (index): expected an unsigned integer below 2^32")
        if kind == KIND_FETCH:
            return Fetch(body[2], body[3])
        code, text = body[4], body[5]
        if not (type(code) is int and zp.CODE_MIN <= code <= zp.CODE_MAX):
            raise ModelError("code", "element 4 (code): expected a code from 100 to 599")
        if not zp.is_text(text, CHUNK_TEXT_MAX) and text != "":
            raise ModelError("text", "element 5 (text): at most %d bytes without control "
                             "characters" % CHUNK_TEXT_MAX)
        return Chunk(body[2], body[3], code, text)
    if kind == KIND_RELEASE:
        ids = body[2]
        if not _is_array(ids) or not 1 <= len(ids) <= RELEASE_IDS_MAX:
            raise ModelError("ids", "element 2 (ids): expected an array of 1 to %d ids"
                             % RELEASE_IDS_MAX)
        for index, value in enumerate(ids):
            _check_id(value, "element 2 (ids): id %d" % index)
        return Release(ids)
    if not zp.is_u32(body[2]):
        raise ModelError("count", "element 2 (count): expected an unsigned integer below 2^32")
    return Released(body[2])


# ---------------------------------------------------------------------------
# numpy models

class Model(dict):
    """name -> numpy array, in model order, with each tensor's zfed dtype.

    buffer: when set, the bytes every array is a view of, in layout order
    (then model_data() sends it as it is)."""

    def __init__(self, arrays=(), dtypes=None, buffer=None):
        super().__init__(arrays)
        hints = dict(dtypes or {})
        self.dtypes = {name: hints.get(name) or zfed_dtype(array) for name, array in self.items()}
        self.buffer = buffer

    def __setitem__(self, name, array):
        super().__setitem__(name, array)
        self.buffer = None  # no longer known to be one buffer in order

    def layout(self):
        return make_layout((name, self.dtype(name), array.shape) for name, array in self.items())

    def dtype(self, name):
        """The zfed dtype of tensor `name` (BF16 only when it was named so)."""
        array = self[name]
        hint = self.dtypes.get(name)
        if hint is not None and DTYPES[hint] == array.dtype:
            return hint
        return zfed_dtype(array)

    @property
    def nbytes(self):
        return sum(array.nbytes for array in self.values())

    @classmethod
    def empty(cls, layout):
        """Writable arrays over one new contiguous buffer, in layout order:
        fill them and model_data() sends that buffer without a copy."""
        buffer = np.empty(layout_size(layout), np.uint8)
        arrays = [(t.name, buffer[t.offset:t.end].view(DTYPES[t.dtype]).reshape(t.shape))
                  for t in layout]
        return cls(arrays, {t.name: t.dtype for t in layout}, buffer)


def empty_like(model):
    return Model.empty(model.layout() if isinstance(model, Model) else
                       as_model(model).layout())


def as_model(arrays, dtypes=None):
    """A Model from a Model or any mapping of name -> array-like; dtypes
    (name -> zfed dtype) names BF16 tensors (uint16 arrays)."""
    if isinstance(arrays, Model) and not dtypes:
        return arrays
    hints = dict(getattr(arrays, "dtypes", {}) or {})
    hints.update(dtypes or {})
    items = []
    for name, array in arrays.items():
        array = np.asarray(array)
        want = hints.get(name)
        if want is not None:
            target = DTYPES[want]
            if array.dtype != target:
                if want == "BF16" and array.dtype.kind != "f":
                    raise ModelError("dtype", "tensor %s: BF16 wants float values or a uint16 "
                                     "array of raw bfloat16 bits, got %s" % (name, array.dtype))
                # Rounded once to nearest, ties to even (numpy's casts do the same).
                array = to_bf16(array) if want == "BF16" else array.astype(target)
        elif array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        items.append((name, array))
    buffer = arrays.buffer if isinstance(arrays, Model) else None
    return Model(items, hints, buffer)


def _address(array):
    return array.__array_interface__["data"][0]


def _one_buffer(model):
    """The model's bytes without a copy when its arrays lie end to end, in
    order and C-contiguous, inside one buffer; else None."""
    arrays = list(model.values())
    if not arrays:
        return memoryview(b"")
    base = model.buffer
    if base is None:
        return None
    view = byte_view(base)
    start = _address(np.frombuffer(view, np.uint8)) if view.nbytes else 0
    offset = 0
    for name, array in model.items():
        if array.dtype != DTYPES[model.dtype(name)] or not array.flags.c_contiguous or \
                (array.nbytes and _address(array) != start + offset):
            return None
        offset += array.nbytes
    if offset > view.nbytes:
        return None
    return view[:offset]


def model_data(model):
    """The model's data as one contiguous little-endian buffer: its own
    buffer when the arrays already lie in it end to end (no copy), else a
    new one with each array copied in once."""
    model = as_model(model)
    data = _one_buffer(model)
    if data is not None:
        return data
    packed = Model.empty(model.layout())
    for name, array in model.items():
        np.copyto(packed[name], array, casting="no")
    model.buffer = packed.buffer
    return memoryview(packed.buffer)


def byte_view(data):
    """A read-only byte memoryview of a zmq.Frame, bytes, mmap or buffer."""
    buffer = getattr(data, "buffer", None)  # zmq.Frame
    view = memoryview(buffer if buffer is not None else data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def decode_model(descriptor, data, writable=False):
    """Descriptor + its data (a zmq.Frame, memoryview, bytes, mmap, numpy
    array) -> Model of views over that memory: nothing is copied.  The
    arrays are read-only unless writable is asked (and the memory allows)."""
    view = byte_view(data)
    if view.nbytes != descriptor.size:
        raise ModelError("data", "the data is %d bytes, the descriptor says %d"
                         % (view.nbytes, descriptor.size))
    flat = np.frombuffer(view, np.uint8)
    arrays = []
    for t in descriptor.tensors:
        array = flat[t.offset:t.end].view(DTYPES[t.dtype]).reshape(t.shape)
        if not writable:
            array.flags.writeable = False
        arrays.append((t.name, array))
    return Model(arrays, {t.name: t.dtype for t in descriptor.tensors}, flat)


def describe(model, source="", id=None, chunk=CHUNK_DEFAULT, digest=True):
    """(Descriptor, data) for a model: data is model_data(model); id
    defaults to the sha256 (a global's rule) or random bytes when digest is
    False.  source "" is inline, which needs size <= 4 MiB."""
    model = as_model(model)
    data = model_data(model)
    digest_bytes = sha256(data) if digest else None
    if id is None:
        id = digest_bytes if digest_bytes is not None else os.urandom(ID_BYTES)
    descriptor = Descriptor(bytes(id), digest_bytes, data.nbytes, chunk, model.layout(), source)
    check_descriptor(descriptor.elements())
    return descriptor, data


def non_finite(model):
    """(tensor name, flat element index) of the first NaN or infinity in a
    float tensor, or None (MODELS.md 9.3: such results are refused)."""
    step = 1 << 20
    for name, array in model.items():
        dtype = model.dtype(name)
        if dtype not in FLOAT_DTYPES or array.size == 0:
            continue
        flat = array.reshape(-1)
        for start in range(0, flat.size, step):
            part = flat[start:start + step]
            bad = (part & 0x7F80) == 0x7F80 if dtype == "BF16" else ~np.isfinite(part)
            if bad.any():
                return name, start + int(np.argmax(bad))
    return None


def bf16_to_f32(bits):
    """Raw bfloat16 bits (uint16) -> float32 values (exact)."""
    bits = np.asarray(bits, dtype="<u2")
    return (bits.astype("<u4") << np.uint32(16)).view("<f4")


def f32_to_bf16(values):
    """float32 values -> raw bfloat16 bits, rounded to nearest, ties to
    even; NaN stays NaN."""
    given = np.asarray(values, dtype="<f4")
    values = given.reshape(-1)
    bits = values.view("<u4")
    # Only NaNs (fixed below) come near 2^32, so uint32 cannot overflow here.
    lsb = (bits >> np.uint32(16)) & np.uint32(1)
    out = ((bits + np.uint32(0x7FFF) + lsb) >> np.uint32(16)).astype("<u2")
    nan = np.isnan(values)
    if nan.any():
        out[nan] = ((bits[nan] >> np.uint32(16)) | np.uint32(0x40)).astype("<u2")
    return out.reshape(given.shape)


def to_bf16(values):
    """Float values of any width -> raw bfloat16 bits, rounded once to
    nearest, ties to even (as the C side's zfed_f64_to_bf16).  Float64 is
    first rounded to odd into binary32 (truncated, the last bit set when
    anything was dropped), which keeps every tie and near-tie of the final
    rounding as it was (24 bits >= 8 + 2), so f32_to_bf16 then rounds once
    in effect; rounding to nearest twice would not: 1 + 2^-8 + 2^-30 is
    1 + 2^-8 in binary32, a tie that goes to 1, where once it is 1 + 2^-7."""
    values = np.asarray(values)
    if values.dtype != np.float64 and values.dtype.kind == "f" and values.itemsize <= 4:
        return f32_to_bf16(values)  # float16 and float32 widen exactly
    wide = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        narrow = wide.astype(np.float32)  # to nearest; an overflow is mended below
        back = narrow.astype(np.float64)
        inexact = (back != wide) & ~np.isnan(wide)
        away = inexact & (np.abs(back) > np.abs(wide))
    bits = narrow.reshape(-1).view("<u4").copy()
    # Rounded away from zero: one step back (same sign, magnitude minus one).
    bits[away.reshape(-1)] -= np.uint32(1)
    bits[inexact.reshape(-1)] |= np.uint32(1)
    return f32_to_bf16(bits.view("<f4")).reshape(wide.shape)


__all__ = [n for n in dir() if not n.startswith("_")]
