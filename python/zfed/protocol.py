"""zfed protocol v1 codec (zfed.protocol), written from schemas/PROTOCOL.md.

Contents
  * body codec: Task, Result, Error and decode() (sections 7, 8, 9, 12, 13)
  * zfed.batch framing: is_batch(), decode_batch(), encode_batch() (section 8.4)
  * canonical msgpack encoder pack() and strict decoder unpack_strict() (7.2-7.8)
  * type checks: job_id, token, text, bigint, decimal (section 9)
  * decimal helpers: parse_decimal(), format_decimal() (sections 9, 14.6)
  * aggregation strategies over exact fractions (section 14.6)
  * the fib service: params, outputs, validation, global value (section 14)
  * MDP/0.1 frame helpers with the zfed extensions (sections 2, 3)

Model services (schemas/MODELS.md: descriptors, layouts, chunk transfer)
build on this module in zfed.models.

Every refusal raises a subclass of ProtocolError whose text is the reason.
Needs only the standard library: the strict decoder unpack_strict() is hand
written so that it can enforce the v1 limits before allocating, and the
canonical encoder pack_pure() writes what msgpack.packb(obj,
use_bin_type=True) writes.

Fast path.  When msgpack's C extension is importable (Debian's
python3-msgpack), unpack() and pack() use it where it provably gives the
same answer, and the pure code everywhere else:
  * unpack(data) (what decode(), decode_batch() and zfed.models read with)
    decodes with the C unpacker, then accepts the value only if packing it
    again gives `data` byte for byte - so the body is canonical, no map
    merged a duplicate key, no float32 or ext was widened - and a walk over
    its containers finds at most 8 levels, str keys only and at most
    VALUES_MAX values.  Anything else (a refusal, a non-canonical or odd
    body) goes to unpack_strict(), which gives the exact reason.
  * pack(obj) packs with the C packer in strict-types mode (exact list,
    dict, str, bytes, int, float, bool, None only); any other type (tuple,
    PairMap, ExtType, subclasses) or failure falls back to pack_pure(), so
    the bytes and the errors are pack_pure()'s.  schemas/vectors.json,
    batch-vectors.json and model-vectors.json, and random values, are
    checked both ways in tests/integration/test_python_codec.py.
ZFED_PY_CODEC=strict in the environment turns the fast path off.
"""

import math
import os
import re
import struct
import sys
import threading
from fractions import Fraction

try:  # the C extension only: msgpack's pure-Python fallback is no faster than ours
    from msgpack._cmsgpack import Packer as _CPacker
    from msgpack._cmsgpack import unpackb as _c_unpackb
except ImportError:
    _CPacker = _c_unpackb = None

# Python >= 3.11 refuses int <-> str conversions above 4300 digits by default;
# fib sums reach ~20,900 digits and bigint/decimal values 32,768 characters.
if hasattr(sys, "set_int_max_str_digits"):
    _cur = sys.get_int_max_str_digits()
    if _cur and _cur < 40000:
        sys.set_int_max_str_digits(40000)

PROTOCOL_VERSION = 1

KIND_TASK = "zfed.task"
KIND_RESULT = "zfed.result"
KIND_ERROR = "zfed.error"
ELEMENTS = {KIND_TASK: 8, KIND_RESULT: 9, KIND_ERROR: 10}

BODY_MAX = 4 * 1024 * 1024
NESTING_MAX = 8
VALUES_MAX = 1048576  # msgpack values per body, every value at any depth (section 7.2, S4)
MAP_KEYS_MAX = 256
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
JOB_ID_MAX = 64
WORKER_MAX = 128
FIELD_MAX = 64
MESSAGE_MAX = 512
NUMBER_TEXT_MAX = 32768
CODE_MIN, CODE_MAX = 100, 599

# Error codes (section 11)
E_MALFORMED = 400
E_NOT_FOUND = 404
E_TOO_LARGE = 413
E_INVALID_PARAM = 422
E_OVERLOADED = 429
E_INTERNAL = 500
E_UNAVAILABLE = 503
E_EXPIRED = 504
ERROR_NAMES = {400: "malformed", 404: "not_found", 413: "too_large", 422: "invalid_param",
               429: "overloaded", 500: "internal", 503: "unavailable", 504: "expired"}
RETRYABLE_CODES = frozenset((429, 500, 503, 504))


def is_retryable(code):
    """Section 11: unknown codes are never retried."""
    return code in RETRYABLE_CODES


class ProtocolError(ValueError):
    """Base of every refusal raised by this module; str() is the reason."""


class DecodeError(ProtocolError):
    """A body that a v1 decoder must refuse.

    ids is (job_id, round, task_id, attempt) when elements 2-5 of the body
    could still be read (section 16), else None."""

    def __init__(self, reason, ids=None):
        super().__init__(reason)
        self.ids = ids


class EncodeError(ProtocolError):
    """A message that would not be a valid v1 body."""


class MdpError(ProtocolError):
    """A malformed MDP message (to be dropped silently)."""


# ---------------------------------------------------------------------------
# Types (section 9)

_JOB_ID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")
_BIGINT_RE = re.compile(r"0|[1-9][0-9]*")
_DECIMAL_RE = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def is_job_id(value):
    return type(value) is str and _JOB_ID_RE.fullmatch(value) is not None \
        and len(value.encode()) <= JOB_ID_MAX


def is_token(value, max_bytes):
    return type(value) is str and 0 < len(value) <= max_bytes and \
        _TOKEN_RE.fullmatch(value) is not None


def is_text(value, max_bytes=MESSAGE_MAX):
    return type(value) is str and len(value.encode("utf-8", "surrogatepass")) <= max_bytes \
        and _CONTROL_RE.search(value) is None and _valid_utf8(value)


def _valid_utf8(value):
    try:
        value.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def is_bigint(value):
    return type(value) is str and len(value) <= NUMBER_TEXT_MAX and \
        _BIGINT_RE.fullmatch(value) is not None


def is_decimal(value):
    return type(value) is str and len(value) <= NUMBER_TEXT_MAX and value != "-0" and \
        _DECIMAL_RE.fullmatch(value) is not None


def is_u32(value):
    return type(value) is int and 0 <= value <= U32_MAX


def is_u64(value):
    return type(value) is int and 0 <= value <= U64_MAX


def clean_text(text, max_bytes=MESSAGE_MAX):
    """Make any text a valid `text` value (section 16): control bytes become
    '?', and the UTF-8 form is cut to max_bytes at a character boundary."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    text = str(text).encode("utf-8", "replace").decode("utf-8")
    text = _CONTROL_RE.sub("?", text)
    data = text.encode()
    if len(data) > max_bytes:
        data = data[:max_bytes]
        text = data.decode("utf-8", "ignore")  # drops a cut multi-byte character
    return text


def type_name(value):
    """msgpack type name of a decoded value, as used in error messages."""
    if value is None:
        return "nil"
    if type(value) is bool:
        return "bool"
    if type(value) is int:
        return "positive int" if value >= 0 else "negative int"
    if type(value) is float:
        return "float"
    if type(value) is str:
        return "str"
    if isinstance(value, (bytes, bytearray)):
        return "bin"
    if isinstance(value, (dict, PairMap)):
        return "map"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, ExtType):
        return "ext"
    return type(value).__name__


# ---------------------------------------------------------------------------
# Decimals (sections 9 and 14.6)

def parse_bigint(text):
    if not is_bigint(text):
        raise ProtocolError("not a bigint: %s" % _short(text))
    return int(text)


def format_bigint(value):
    if type(value) is not int or value < 0:
        raise ProtocolError("a bigint is a non-negative integer, got %r" % (value,))
    text = str(value)
    if len(text) > NUMBER_TEXT_MAX:
        raise ProtocolError("bigint of %d digits is over %d" % (len(text), NUMBER_TEXT_MAX))
    return text


def parse_decimal(text):
    """Canonical decimal string -> exact Fraction; refuses other spellings."""
    if not is_decimal(text):
        raise ProtocolError("not a canonical decimal: %s" % _short(text))
    neg = text.startswith("-")
    body = text[1:] if neg else text
    whole, _, frac = body.partition(".")
    value = Fraction(int(whole + frac), 10 ** len(frac))
    return -value if neg else value


def format_decimal(value, places=6):
    """Exact number -> canonical decimal string, rounded half away from zero
    to at most `places` fraction digits (section 14.6)."""
    value = Fraction(value)
    scaled = abs(value) * 10 ** places
    units = math.floor(scaled + Fraction(1, 2))  # half rounds up in magnitude
    if units == 0:
        return "0"  # never "-0"
    whole, frac = divmod(units, 10 ** places)
    text = str(whole)
    if frac:
        text += "." + str(frac).rjust(places, "0").rstrip("0")
    if value < 0:
        text = "-" + text
    if len(text) > NUMBER_TEXT_MAX:
        raise ProtocolError("decimal of %d characters is over %d" % (len(text), NUMBER_TEXT_MAX))
    return text


AGGREGATES = ("fedavg", "mean", "median", "trimmed-mean", "min", "max", "sum")


def aggregate(strategy, items, trim=Fraction(1, 10)):
    """items: (value, weight) pairs in task_id order; returns a Fraction.

    fedavg = sum(w*v)/sum(w); mean = plain average; median = middle value,
    or the average of the two middle values; trimmed-mean drops
    floor(n*trim) values from each end (keeping at least one) and averages
    the rest; min, max, sum as named."""
    values = [Fraction(v) for v, _ in items]
    if not values:
        raise ProtocolError("nothing to aggregate")
    if strategy == "fedavg":
        total = sum(Fraction(w) for _, w in items)
        if total == 0:
            raise ProtocolError("fedavg: total weight is 0")
        return sum(Fraction(v) * w for v, w in items) / total
    if strategy == "mean":
        return sum(values) / len(values)
    if strategy == "median":
        ordered = sorted(values)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    if strategy == "trimmed-mean":
        ordered = sorted(values)
        cut = math.floor(len(ordered) * Fraction(trim))
        if 2 * cut >= len(ordered):
            cut = (len(ordered) - 1) // 2
        kept = ordered[cut:len(ordered) - cut]
        return sum(kept) / len(kept)
    if strategy == "min":
        return min(values)
    if strategy == "max":
        return max(values)
    if strategy == "sum":
        return sum(values)
    raise ProtocolError("unknown aggregate strategy %r (one of %s)" % (strategy, ", ".join(AGGREGATES)))


# ---------------------------------------------------------------------------
# msgpack values

class PairMap(list):
    """A msgpack map kept as its (key, value) pairs.  The decoder uses it for
    nested maps whose keys are unhashable or repeated (the codec does not
    check nested maps, section 7.6); the encoder writes it back as a map."""


class ExtType(tuple):
    """msgpack ext value: (code, data)."""

    def __new__(cls, code, data):
        return tuple.__new__(cls, (code, bytes(data)))

    code = property(lambda self: self[0])
    data = property(lambda self: self[1])


def _short(value, limit=60):
    text = clean_text(repr(value) if not isinstance(value, str) else value, 1000)
    return text if len(text) <= limit else text[:limit] + "..."


class _Reader:
    """Strict msgpack reader: one value, checked counts, nesting limit."""

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.values = 0

    def take(self, size):
        if self.end - self.pos < size:
            raise DecodeError("msgpack truncated at offset %d (needs %d bytes, %d left)"
                              % (self.pos, size, self.end - self.pos))
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def uint(self, size):
        return int.from_bytes(self.take(size), "big")

    def sint(self, size):
        return int.from_bytes(self.take(size), "big", signed=True)

    def value(self, level):
        """Reads one value; `level` is the nesting level of its enclosing container."""
        start = self.pos
        b = self.take(1)[0]
        self.values += 1
        if self.values > VALUES_MAX:
            raise DecodeError("msgpack body holds more than %d values" % VALUES_MAX)
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0x80 <= b <= 0x8F:
            return self.map(b & 0x0F, level, start)
        if 0x90 <= b <= 0x9F:
            return self.array(b & 0x0F, level, start)
        if 0xA0 <= b <= 0xBF:
            return self.str(b & 0x1F, start)
        if b == 0xC0:
            return None
        if b == 0xC1:
            raise DecodeError("invalid msgpack byte 0xc1 at %d" % start)
        if b == 0xC2:
            return False
        if b == 0xC3:
            return True
        if b in (0xC4, 0xC5, 0xC6):
            return bytes(self.take(self.uint({0xC4: 1, 0xC5: 2, 0xC6: 4}[b])))
        if b in (0xC7, 0xC8, 0xC9):
            size = self.uint({0xC7: 1, 0xC8: 2, 0xC9: 4}[b])
            code = self.sint(1)
            return ExtType(code, self.take(size))
        if b == 0xCA:
            return struct.unpack(">f", self.take(4))[0]
        if b == 0xCB:
            return struct.unpack(">d", self.take(8))[0]
        if 0xCC <= b <= 0xCF:
            return self.uint(1 << (b - 0xCC))
        if 0xD0 <= b <= 0xD3:
            return self.sint(1 << (b - 0xD0))
        if 0xD4 <= b <= 0xD8:
            code = self.sint(1)
            return ExtType(code, self.take(1 << (b - 0xD4)))
        if 0xD9 <= b <= 0xDB:
            return self.str(self.uint(1 << (b - 0xD9)), start)
        if b in (0xDC, 0xDD):
            return self.array(self.uint(2 if b == 0xDC else 4), level, start)
        return self.map(self.uint(2 if b == 0xDE else 4), level, start)  # 0xde, 0xdf

    def str(self, size, start):
        raw = self.take(size)
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("string at offset %d is not valid UTF-8" % start)

    def _check(self, what, elements, level, start):
        left = self.end - self.pos
        if elements > left:
            raise DecodeError("%s at offset %d claims %d elements but only %d bytes follow"
                              % (what, start, elements, left))
        if level + 1 > NESTING_MAX:
            raise DecodeError("nesting deeper than %d container levels at offset %d"
                              % (NESTING_MAX, start))

    def array(self, count, level, start):
        self._check("array", count, level, start)
        return [self.value(level + 1) for _ in range(count)]

    def map(self, count, level, start):
        self._check("map", 2 * count, level, start)
        pairs = PairMap()
        for _ in range(count):
            key_at = self.pos
            key = self.value(level + 1)
            if type(key) is not str:  # section 7.6: str keys at every depth
                raise DecodeError("map key at byte %d is not a string" % key_at)
            pairs.append((key, self.value(level + 1)))
        return pairs


def unpack_strict(data):
    """Section 7.1, 7.3, 7.7: exactly one msgpack value, limits enforced.
    Maps come back as PairMap (pairs in wire order, duplicates kept)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("body must be bytes, got %s" % type(data).__name__)
    data = bytes(data)
    if not data:
        raise DecodeError("empty body")
    if len(data) > BODY_MAX:
        raise DecodeError("body of %d bytes is over the %d-byte limit" % (len(data), BODY_MAX))
    reader = _Reader(data)
    value = reader.value(0)
    if reader.pos != reader.end:
        raise DecodeError("%d trailing bytes after the body value" % (reader.end - reader.pos))
    return value


# ---------------------------------------------------------------------------
# The fast path (see the module's docstring)

FAST_CODEC = _c_unpackb is not None and os.environ.get("ZFED_PY_CODEC", "") != "strict"
_STRICT = object()  # "the strict path decides"
_SCALARS = frozenset((str, int, float, bool, bytes, type(None)))
_local = threading.local()


def _packer():
    """This thread's C packer (a Packer keeps a buffer: one per thread)."""
    try:
        return _local.packer
    except AttributeError:
        packer = _local.packer = _CPacker(use_bin_type=True, strict_types=True)
        return packer


def _refuse_ext(code, data):
    raise ValueError("ext values take the strict path")


def _scan(container, level):
    """Values inside a container the C unpacker built at nesting `level`
    (elements, keys and values at any depth), or -1 when a container lies
    deeper than NESTING_MAX or a map key is not a str."""
    if type(container) is dict:
        for key in container:
            if type(key) is not str:
                return -1
        count = 2 * len(container)
        items = container.values()
    else:
        count = len(container)
        items = container
    for item in items:
        kind = type(item)
        if kind is list or kind is dict:
            if level == NESTING_MAX:
                return -1
            inner = _scan(item, level + 1)
            if inner < 0:
                return -1
            count += inner
    return count


def _unpack_fast(data):
    """The value of a body by the C unpacker, or _STRICT when the strict
    decoder must decide (a refusal, a non-canonical body, ext, bin keys)."""
    if type(data) is not bytes:
        if not isinstance(data, (bytearray, memoryview)):
            return _STRICT
        data = bytes(data)
    if not 0 < len(data) <= BODY_MAX:
        return _STRICT
    try:
        value = _c_unpackb(data, raw=False, strict_map_key=True, ext_hook=_refuse_ext)
        if _packer().pack(value) != data:
            return _STRICT  # non-canonical, a merged duplicate key, a float32: strict
    except Exception:
        return _STRICT
    kind = type(value)
    if kind is list or kind is dict:
        inner = _scan(value, 1)
        if inner < 0 or inner + 1 > VALUES_MAX:
            return _STRICT
    return value


def unpack(data):
    """One msgpack body -> its value, maps as dicts where their keys allow
    (plain(unpack_strict(data)), by the C unpacker when it agrees); raises
    DecodeError with the strict decoder's reason."""
    if FAST_CODEC:
        value = _unpack_fast(data)
        if value is not _STRICT:
            return value
    return plain(unpack_strict(data))


def _hashable(key):
    try:
        hash(key)
        return True
    except TypeError:
        return False


def plain(value):
    """PairMap trees -> dicts where keys allow it (distinct and hashable);
    other maps stay PairMap so that nothing is lost."""
    if isinstance(value, PairMap):
        pairs = [(plain(k), plain(v)) for k, v in value]
        keys = [k for k, _ in pairs]
        if all(_hashable(k) and not isinstance(k, (list, dict)) for k in keys):
            # True == 1 == 1.0 in Python: only keep a dict if no key collides
            out = {}
            for k, v in pairs:
                out[k] = v
            if len(out) == len(pairs) and all(type(a) is type(b) for a, b in zip(out, keys)):
                return out
        return PairMap(pairs)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------
# Canonical encoder (section 7.8)

def pack(obj):
    """Canonical msgpack bytes of obj (shortest headers, unsigned family for
    non-negative integers, float64 for floats, map key order kept): the C
    packer's for exact built-in types, else pack_pure()'s (the same bytes,
    and pack_pure()'s errors)."""
    if FAST_CODEC:
        try:
            return _packer().pack(obj)
        except Exception:
            pass
    return pack_pure(obj)


def pack_pure(obj):
    """pack() in Python: also PairMap, ExtType, tuples and subclasses."""
    out = bytearray()
    _pack(obj, out)
    return bytes(out)


def _pack(obj, out):
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif type(obj) is int:
        _pack_int(obj, out)
    elif type(obj) is float:
        out.append(0xCB)
        out += struct.pack(">d", obj)
    elif type(obj) is str:
        data = obj.encode("utf-8")
        n = len(data)
        if n < 32:
            out.append(0xA0 | n)
        elif n < 0x100:
            out += bytes((0xD9, n))
        elif n < 0x10000:
            out.append(0xDA)
            out += struct.pack(">H", n)
        elif n < 0x100000000:
            out.append(0xDB)
            out += struct.pack(">I", n)
        else:
            raise EncodeError("string too long")
        out += data
    elif isinstance(obj, ExtType):
        code, data = obj
        n = len(data)
        fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
        if n in fixed:
            out.append(fixed[n])
        elif n < 0x100:
            out += bytes((0xC7, n))
        elif n < 0x10000:
            out.append(0xC8)
            out += struct.pack(">H", n)
        else:
            out.append(0xC9)
            out += struct.pack(">I", n)
        out += struct.pack(">b", code)
        out += data
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        n = len(data)
        if n < 0x100:
            out += bytes((0xC4, n))
        elif n < 0x10000:
            out.append(0xC5)
            out += struct.pack(">H", n)
        else:
            out.append(0xC6)
            out += struct.pack(">I", n)
        out += data
    elif isinstance(obj, (PairMap, dict)):
        pairs = list(obj) if isinstance(obj, PairMap) else list(obj.items())
        n = len(pairs)
        if n < 16:
            out.append(0x80 | n)
        elif n < 0x10000:
            out.append(0xDE)
            out += struct.pack(">H", n)
        else:
            out.append(0xDF)
            out += struct.pack(">I", n)
        for k, v in pairs:
            _pack(k, out)
            _pack(v, out)
    elif isinstance(obj, (list, tuple)):
        n = len(obj)
        if n < 16:
            out.append(0x90 | n)
        elif n < 0x10000:
            out.append(0xDC)
            out += struct.pack(">H", n)
        else:
            out.append(0xDD)
            out += struct.pack(">I", n)
        for v in obj:
            _pack(v, out)
    else:
        raise EncodeError("cannot encode a %s in msgpack" % type(obj).__name__)


def _pack_int(v, out):
    if 0 <= v <= 0x7F:
        out.append(v)
    elif -32 <= v < 0:
        out.append(v & 0xFF)
    elif v > 0:
        if v <= 0xFF:
            out += bytes((0xCC, v))
        elif v <= 0xFFFF:
            out.append(0xCD)
            out += struct.pack(">H", v)
        elif v <= 0xFFFFFFFF:
            out.append(0xCE)
            out += struct.pack(">I", v)
        elif v <= U64_MAX:
            out.append(0xCF)
            out += struct.pack(">Q", v)
        else:
            raise EncodeError("integer %d does not fit in 64 bits" % v)
    else:
        if v >= -0x80:
            out.append(0xD0)
            out += struct.pack(">b", v)
        elif v >= -0x8000:
            out.append(0xD1)
            out += struct.pack(">h", v)
        elif v >= -0x80000000:
            out.append(0xD2)
            out += struct.pack(">i", v)
        elif v >= -2**63:
            out.append(0xD3)
            out += struct.pack(">q", v)
        else:
            raise EncodeError("integer %d does not fit in 64 bits" % v)


def _nesting_ok(value, level):
    """depth(value) + level - 1 <= NESTING_MAX, for `value` at container
    level `level`, stopping at the first container too deep."""
    if isinstance(value, PairMap):
        items = [part for pair in value for part in pair]
    elif isinstance(value, dict):
        items = [key for key in value if type(key) not in _SCALARS]
        items.extend(value.values())
    elif isinstance(value, (list, tuple)) and not isinstance(value, ExtType):
        items = value
    else:
        return True
    if level > NESTING_MAX:
        return False
    for item in items:
        if type(item) not in _SCALARS and not _nesting_ok(item, level + 1):
            return False
    return True


def depth(value):
    """Container levels of a value (a scalar is 0, an empty array 1)."""
    if isinstance(value, (PairMap, dict)):
        pairs = value if isinstance(value, PairMap) else value.items()
        return 1 + max([0] + [max(depth(k), depth(v)) for k, v in pairs])
    if isinstance(value, (list, tuple)) and not isinstance(value, ExtType):
        return 1 + max([0] + [depth(v) for v in value])
    return 0


# ---------------------------------------------------------------------------
# Messages (section 8)

class _Message:
    KIND = None
    FIELDS = ()

    def __init__(self, **kw):
        for name in self.FIELDS:
            setattr(self, name, kw.pop(name))
        if kw:
            raise TypeError("unknown fields: %s" % ", ".join(kw))

    kind = property(lambda self: self.KIND)

    @property
    def ids(self):
        return (self.job_id, self.round, self.task_id, self.attempt)

    def fields(self):
        """Every element by its PROTOCOL.md name (as in vectors.json)."""
        out = {"kind": self.KIND, "version": PROTOCOL_VERSION}
        for name in self.FIELDS:
            out[name] = getattr(self, name)
        return out

    def encode(self):
        """Validates (same rules as the decoder) and encodes canonically."""
        return _encode(self.elements())

    def __eq__(self, other):
        return type(self) is type(other) and self.fields() == other.fields()

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % (n, getattr(self, n)) for n in self.FIELDS))


def _encode(elements):
    """A message's elements -> its canonical body, or EncodeError."""
    try:
        _check_elements(elements)
    except DecodeError as failure:
        raise EncodeError(str(failure))
    data = None
    if FAST_CODEC:
        try:
            data = _packer().pack(elements)
        except Exception:
            pass  # a type the C packer does not take exactly: pack_pure
    if data is None or _scan(elements, 1) < 0:  # (_scan is exact for exact types)
        if not _nesting_ok(elements, 1):
            raise EncodeError("nesting deeper than %d container levels" % NESTING_MAX)
        if data is None:
            data = pack_pure(elements)
    if len(data) > BODY_MAX:
        raise EncodeError("body of %d bytes is over the %d-byte limit" % (len(data), BODY_MAX))
    return data


def result_body(task, worker, compute_us, outputs):
    """The body of the Result answering `task`: Result(job_id=task.job_id,
    round=..., worker=worker, compute_us=..., outputs=...).encode(), without
    building the Result."""
    return _encode([KIND_RESULT, PROTOCOL_VERSION, task.job_id, task.round, task.task_id,
                    task.attempt, worker, compute_us, outputs])


class Task(_Message):
    KIND = KIND_TASK
    FIELDS = ("job_id", "round", "task_id", "attempt", "params", "global_round", "global_value")

    def elements(self):
        return [KIND_TASK, PROTOCOL_VERSION, self.job_id, self.round, self.task_id,
                self.attempt, self.params, [self.global_round, self.global_value]]


class Result(_Message):
    KIND = KIND_RESULT
    FIELDS = ("job_id", "round", "task_id", "attempt", "worker", "compute_us", "outputs")

    def elements(self):
        return [KIND_RESULT, PROTOCOL_VERSION, self.job_id, self.round, self.task_id,
                self.attempt, self.worker, self.compute_us, self.outputs]


class Error(_Message):
    KIND = KIND_ERROR
    FIELDS = ("job_id", "round", "task_id", "attempt", "worker", "code", "field", "message")

    def elements(self):
        return [KIND_ERROR, PROTOCOL_VERSION, self.job_id, self.round, self.task_id,
                self.attempt, self.worker, self.code, self.field, self.message]


_CLASSES = {KIND_TASK: Task, KIND_RESULT: Result, KIND_ERROR: Error}


def _el(index, name):
    return "element %d (%s)" % (index, name)


def _u32(body, index, name):
    value = body[index]
    if not is_u32(value):
        raise DecodeError("%s: expected an unsigned integer below 2^32, got %s"
                          % (_el(index, name), _describe(value)))


def _describe(value):
    if type(value) is int:
        return "%s %d" % (type_name(value), value)
    return type_name(value)


def _string_check(body, index, name, ok, allow_empty=False):
    value = body[index]
    if type(value) is not str:
        raise DecodeError("%s: expected a string, got %s" % (_el(index, name), type_name(value)))
    if (value == "" and allow_empty) or ok(value):
        return
    raise DecodeError("%s: invalid string of %d bytes" % (_el(index, name), len(value.encode())))


def _string_map(body, index, name):
    value = body[index]
    if not isinstance(value, (PairMap, dict)):
        raise DecodeError("%s: expected a map, got %s" % (_el(index, name), type_name(value)))
    pairs = list(value) if isinstance(value, PairMap) else list(value.items())
    if len(pairs) > MAP_KEYS_MAX:
        raise DecodeError("%s: %d keys, at most %d allowed" % (_el(index, name), len(pairs), MAP_KEYS_MAX))
    seen = set()
    for i, (key, _) in enumerate(pairs):
        if type(key) is not str:
            raise DecodeError("%s: key %d is not a string (%s)" % (_el(index, name), i, type_name(key)))
        if key == "":
            raise DecodeError("%s: key %d is not a non-empty string" % (_el(index, name), i))
        if key in seen:
            raise DecodeError("%s: duplicate key '%s'" % (_el(index, name), clean_text(key, 64)))
        seen.add(key)


def _check_elements(body):
    """Sections 7-9 and 13 on a decoded body array; the first failure in
    the order of zfed-protocol.json codec.check_order raises DecodeError."""
    if not _elements_ok(body):
        _check_elements_ordered(body)


def _string_keys_ok(value):
    """A params or outputs dict: at most 256 keys, each a non-empty str
    (a dict's keys are distinct)."""
    if type(value) is not dict or len(value) > MAP_KEYS_MAX:
        return False
    for key in value:
        if type(key) is not str or not key:
            return False
    return True


def _elements_ok(body):
    """True when _check_elements_ordered finds nothing, by the common
    shapes only (exact lists and dicts); False when it must look (it may
    still find nothing)."""
    if type(body) is not list or len(body) < 8:
        return False
    kind, version, job_id, round_, task_id, attempt = body[:6]
    if type(kind) is not str or ELEMENTS.get(kind) != len(body) or type(version) is not int \
            or version != PROTOCOL_VERSION:
        return False
    for number in (round_, task_id, attempt):
        if type(number) is not int or not 0 <= number <= U32_MAX:
            return False
    if not ((job_id == "" and kind == KIND_ERROR) or is_job_id(job_id)):
        return False
    if kind == KIND_TASK:
        glob = body[7]
        if type(glob) is not list or len(glob) != 2:
            return False
        g = glob[0]
        return _string_keys_ok(body[6]) and type(g) is int and -1 <= g <= U32_MAX
    if not is_token(body[6], WORKER_MAX):
        return False
    if kind == KIND_RESULT:
        return is_u64(body[7]) and _string_keys_ok(body[8])
    code, field, message = body[7:]
    return type(code) is int and CODE_MIN <= code <= CODE_MAX and \
        (field == "" or is_token(field, FIELD_MAX)) and type(message) is str and \
        (message == "" or is_text(message, MESSAGE_MAX))


def _check_elements_ordered(body):
    """_check_elements, check by check in the order of zfed-protocol.json
    codec.check_order (after the msgpack structure)."""
    if not isinstance(body, list) or isinstance(body, PairMap) or len(body) < 2:
        raise DecodeError("body must be an array of at least 2 elements (kind, version), got %s"
                          % ("array of %d" % len(body) if isinstance(body, list)
                             and not isinstance(body, PairMap) else type_name(body)))
    kind = body[0]
    if type(kind) is not str:
        raise DecodeError("%s: expected a string, got %s" % (_el(0, "kind"), type_name(kind)))
    if kind not in ELEMENTS:
        raise DecodeError("unknown kind '%s'" % clean_text(kind, 64))
    version = body[1]
    if not is_u32(version):
        raise DecodeError("%s: expected an unsigned integer, got %s" % (_el(1, "version"), _describe(version)))
    if version != PROTOCOL_VERSION:
        raise DecodeError("%s: unsupported version %d, this peer speaks %d"
                          % (_el(1, "version"), version, PROTOCOL_VERSION))
    if len(body) != ELEMENTS[kind]:
        raise DecodeError("%s v1 has %d elements, got %d" % (kind, ELEMENTS[kind], len(body)))
    _string_check(body, 2, "job_id", is_job_id, allow_empty=(kind == KIND_ERROR))
    _u32(body, 3, "round")
    _u32(body, 4, "task_id")
    _u32(body, 5, "attempt")
    if kind == KIND_TASK:
        _string_map(body, 6, "params")
        glob = body[7]
        if not isinstance(glob, (list, tuple)) or isinstance(glob, (PairMap, ExtType)) or len(glob) != 2:
            raise DecodeError("%s: expected an array [global_round, global_value], got %s"
                              % (_el(7, "global"), type_name(glob)))
        g = glob[0]
        if not (type(g) is int and -1 <= g <= U32_MAX):
            raise DecodeError("%s: global_round must be -1 or an unsigned integer below 2^32, got %s"
                              % (_el(7, "global"), _describe(g)))
    elif kind == KIND_RESULT:
        _string_check(body, 6, "worker", lambda v: is_token(v, WORKER_MAX))
        if not is_u64(body[7]):
            raise DecodeError("%s: expected an unsigned integer below 2^64, got %s"
                              % (_el(7, "compute_us"), _describe(body[7])))
        _string_map(body, 8, "outputs")
    else:
        _string_check(body, 6, "worker", lambda v: is_token(v, WORKER_MAX))
        code = body[7]
        if not (type(code) is int and CODE_MIN <= code <= CODE_MAX):
            raise DecodeError("%s: expected an error code from %d to %d, got %s"
                              % (_el(7, "code"), CODE_MIN, CODE_MAX, _describe(code)))
        _string_check(body, 8, "field", lambda v: is_token(v, FIELD_MAX), allow_empty=True)
        _string_check(body, 9, "message", lambda v: is_text(v, MESSAGE_MAX), allow_empty=True)


def _readable_ids(body):
    """Section 16: ids are copied when the body is an array of >= 6 elements
    with a valid job_id and three u32."""
    if isinstance(body, list) and not isinstance(body, PairMap) and len(body) >= 6 \
            and is_job_id(body[2]) and all(is_u32(body[i]) for i in (3, 4, 5)):
        return (body[2], body[3], body[4], body[5])
    return None


def decode(data):
    """Body bytes -> Task, Result or Error; raises DecodeError with the reason
    (the strict decoder's, whichever path read the body)."""
    if FAST_CODEC:
        body = _unpack_fast(data)
        if body is not _STRICT:
            try:
                _check_elements(body)
            except DecodeError:
                pass  # the strict path refuses it, with the ids it can read
            else:
                return _message(body)
    body = unpack_strict(data)
    try:
        _check_elements(body)
    except DecodeError as failure:
        failure.ids = _readable_ids(body)
        raise
    return _message([plain(v) for v in body])


def _message(body):
    """A checked body (plain values) -> its message object."""
    cls = _CLASSES[body[0]]
    values = body[2:]
    if cls is Task:
        values = values[:5] + values[5]
    message = cls.__new__(cls)
    message.__dict__.update(zip(cls.FIELDS, values))
    return message


def reencode(data):
    """Canonical bytes of a valid body (decode, then encode)."""
    return decode(data).encode()


# ---------------------------------------------------------------------------
# zfed.batch (section 8.4): several bodies in one request or reply

KIND_BATCH = "zfed.batch"
BATCH_MAX = 1024
BATCH_ELEMENTS = 3
_KIND_BATCH_BYTES = KIND_BATCH.encode()


def is_batch(data):
    """Section 8.4 recognition, on the raw bytes and before any other check:
    an array header with a count of at least 1, then a complete str (any
    width) equal to "zfed.batch".  A damaged batch is still a batch, so it
    is answered with one "bad batch" error rather than as a bad task."""
    if type(data) is bytes and len(data) > 1 and 0x91 <= data[0] <= 0x9F and \
            0xA0 <= data[1] <= 0xBF and data[1] != 0xA0 | len(_KIND_BATCH_BYTES):
        return False  # the common case: a fixarray whose kind is a fixstr of another length
    head = bytes(memoryview(data)[:32])  # kind and headers fit in 21 bytes
    if not head:
        return False
    lead, pos = head[0], 1
    if 0x90 <= lead <= 0x9F:
        count = lead & 0x0F
    elif lead in (0xDC, 0xDD):
        width = 2 if lead == 0xDC else 4
        if len(head) < pos + width:
            return False
        count = int.from_bytes(head[pos:pos + width], "big")
        pos += width
    else:
        return False
    if count < 1 or pos >= len(head):
        return False
    lead = head[pos]
    pos += 1
    if 0xA0 <= lead <= 0xBF:
        length = lead & 0x1F
    elif 0xD9 <= lead <= 0xDB:
        width = 1 << (lead - 0xD9)
        if len(head) < pos + width:
            return False
        length = int.from_bytes(head[pos:pos + width], "big")
        pos += width
    else:
        return False
    return length == len(_KIND_BATCH_BYTES) and head[pos:pos + length] == _KIND_BATCH_BYTES


def decode_batch(data, max_items=BATCH_MAX):
    """Batch body bytes -> list of item bodies (bytes), in order.  Framing
    only: the items are not decoded (decode() each one).  Raises DecodeError
    with the reason, in the C decoder's order and wording (section 8.4)."""
    body = unpack(data)  # size and structure (sections 7.1, 7.2)
    if not (isinstance(body, list) and not isinstance(body, PairMap) and body
            and type(body[0]) is str and body[0] == KIND_BATCH):
        raise DecodeError("not a %s body" % KIND_BATCH)
    if len(body) != BATCH_ELEMENTS:
        raise DecodeError("%s v1 has %d elements, got %d" % (KIND_BATCH, BATCH_ELEMENTS, len(body)))
    if not is_u32(body[1]) or body[1] != PROTOCOL_VERSION:  # any integer width (7.4)
        raise DecodeError("%s: this peer speaks version %d" % (_el(1, "version"), PROTOCOL_VERSION))
    items = body[2]
    if not isinstance(items, list) or isinstance(items, PairMap):
        raise DecodeError("%s: expected an array" % _el(2, "items"))
    limit = min(max_items, BATCH_MAX)
    if not 1 <= len(items) <= limit:
        raise DecodeError("%s: %d items, 1 to %d allowed" % (_el(2, "items"), len(items), limit))
    for index, item in enumerate(items):
        if type(item) is not bytes:
            raise DecodeError("%s: item %d is not a bin" % (_el(2, "items"), index))
    return items


def batch_size(items):
    """Bytes encode_batch would write for these item bodies: the envelope
    plus each item with its bin header (section 8.4)."""
    def header(length):
        return 2 if length <= 0xFF else 3 if length <= 0xFFFF else 5
    count = len(items)
    envelope = 1 + 1 + len(KIND_BATCH) + 1 + (1 if count <= 15 else 3 if count <= 0xFFFF else 5)
    return envelope + sum(header(len(item)) + len(item) for item in items)


def encode_batch(items):
    """Item bodies (bytes) -> canonical batch body (section 8.4): 1-1024
    items, the whole body within 4 MiB, or EncodeError.  The items are
    wrapped as they are; encode each body first."""
    items = list(items)
    if not 1 <= len(items) <= BATCH_MAX:
        raise EncodeError("a batch holds 1 to %d items, got %d" % (BATCH_MAX, len(items)))
    for index, item in enumerate(items):
        if not isinstance(item, (bytes, bytearray, memoryview)):
            raise EncodeError("batch item %d is a %s, not bytes" % (index, type(item).__name__))
    data = pack([KIND_BATCH, PROTOCOL_VERSION, [bytes(item) for item in items]])
    assert len(data) == batch_size(items)
    if len(data) > BODY_MAX:
        raise EncodeError("body of %d bytes is over the %d-byte limit" % (len(data), BODY_MAX))
    return data


# ---------------------------------------------------------------------------
# The fib service (section 14)

FIB_SERVICE = "fib"
FIB_PARAM = "fibonacci_level"
FIB_LEVEL_MIN = 1
FIB_LEVEL_MAX = 100000
FIB_SEQUENCE_MAX = 100
FIB_INITIAL_GLOBAL = "0"
FIB_OUTPUT_KEYS = ("sum", "terms", "last", "sequence")


def fib_params(level):
    return {FIB_PARAM: level}


def _fib_pair(n):
    """(F(n), F(n+1)) by fast doubling."""
    if n == 0:
        return 0, 1
    a, b = _fib_pair(n >> 1)
    c = a * (2 * b - a)
    d = a * a + b * b
    return (d, c + d) if n & 1 else (c, d)


def fib_terms(level):
    terms, a, b = [], 0, 1
    for _ in range(level):
        terms.append(a)
        a, b = b, a + b
    return terms


def fib_outputs(level):
    """Outputs for level n in the canonical key order: sum = F(n+1) - 1."""
    if not (type(level) is int and FIB_LEVEL_MIN <= level <= FIB_LEVEL_MAX):
        raise ProtocolError("fib level must be an integer from 1 to 100000, got %r" % (level,))
    if level <= FIB_SEQUENCE_MAX:  # the terms are needed anyway: one pass
        terms = fib_terms(level)
        last = terms[-1]  # F(n-1)
        after = last + (last + terms[-2] if level > 1 else 1)  # F(n-1) + F(n)
        return {"sum": str(after - 1), "terms": level, "last": str(last),
                "sequence": [str(t) for t in terms]}
    last, after = _fib_pair(level - 1)  # F(n-1), F(n)
    after += last  # F(n+1)
    return {"sum": str(after - 1), "terms": level, "last": str(last), "sequence": []}


def fib_check_task(params, global_value):
    """Section 14.4, in order: None if the task is fine, else (code, field, message)."""
    for key in params:
        if key != FIB_PARAM:
            field = key if is_token(key, FIELD_MAX) else ""
            return (E_INVALID_PARAM, field, "unknown parameter '%s'" % key)
    if FIB_PARAM not in params:
        return (E_INVALID_PARAM, FIB_PARAM,
                "missing: a fib task needs fibonacci_level, an integer from 1 to 100000")
    level = params[FIB_PARAM]
    is_int = type(level) is int
    if is_int and level < 0:
        return (E_INVALID_PARAM, FIB_PARAM, "must be at least 1, got %d" % level)
    if not is_int:
        return (E_INVALID_PARAM, FIB_PARAM,
                "must be an integer from 1 to 100000, got %s" % type_name(level))
    if level == 0:
        return (E_INVALID_PARAM, FIB_PARAM, "must be at least 1, got 0")
    if level > FIB_LEVEL_MAX:
        return (E_INVALID_PARAM, FIB_PARAM, "must be at most 100000, got %d" % level)
    if type(global_value) is not str:
        return (E_INVALID_PARAM, "global",
                "fib's global value must be a decimal string, got %s" % type_name(global_value))
    return None


def fib_check_outputs(outputs, level):
    """Section 14.5: None if the result is acceptable, else the reason."""
    if not isinstance(outputs, dict):
        return "outputs is not a map"
    for key in outputs:
        if key not in FIB_OUTPUT_KEYS:
            return "unexpected output key '%s'" % clean_text(key, 64)
    terms = outputs.get("terms")
    if type(terms) is not int or terms != level:
        return "terms: expected the integer %d, got %s" % (level, _short(terms))
    for key in ("sum", "last"):
        if key not in outputs or not is_bigint(outputs[key]):
            return "%s: missing or not a bigint" % key
    seq = outputs.get("sequence")
    if not isinstance(seq, list):
        return "sequence: missing or not an array"
    if seq:
        if len(seq) != terms:
            return "sequence: %d entries, expected 0 or %d" % (len(seq), terms)
        if not all(is_bigint(s) for s in seq):
            return "sequence: an entry is not a bigint"
        if sum(int(s) for s in seq) != int(outputs["sum"]):
            return "sequence: entries do not add up to sum"
        if seq[-1] != outputs["last"]:
            return "sequence: last entry differs from last"
    return None


def fib_global(value):
    """The next round's global value: the aggregate as a decimal string."""
    return format_decimal(value, 6)


# ---------------------------------------------------------------------------
# MDP/0.1 frames (sections 2 and 3)

MDPC = b"MDPC01"
MDPW = b"MDPW01"
READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT = b"\x01", b"\x02", b"\x03", b"\x04", b"\x05"
COMMAND_NAMES = {READY: "READY", REQUEST: "REQUEST", REPLY: "REPLY",
                 HEARTBEAT: "HEARTBEAT", DISCONNECT: "DISCONNECT"}
HEARTBEAT_MS = 2500
LIVENESS = 3
BACKOFF_INITIAL_MS = 250
BACKOFF_MAX_MS = 8000
CREDIT_MAX = 256
_CREDIT_RE = re.compile(rb"credit=([0-9]{1,6})")


def is_service_name(name):
    if isinstance(name, str):
        name = name.encode("ascii", "replace")
    return 1 <= len(name) <= 255 and all(0x20 <= c <= 0x7E for c in name)  # RFC 7: printable


def _service_bytes(service):
    data = service.encode() if isinstance(service, str) else bytes(service)
    if not is_service_name(data):
        raise MdpError("invalid service name %r" % (data,))
    return data


def client_request(service, body):
    """Controller -> broker frames (as sent on a DEALER)."""
    return [b"", MDPC, _service_bytes(service), bytes(body)]


def parse_client_reply(frames):
    """Broker -> controller; returns (service, body).  The zfed controller
    drops replies that do not have exactly one body frame (section 2.1)."""
    if len(frames) != 4:
        raise MdpError("client reply has %d frames, expected 4" % len(frames))
    if frames[0] != b"" or frames[1] != MDPC:
        raise MdpError("client reply: bad frame 0 or header")
    return bytes(frames[2]).decode("ascii", "replace"), bytes(frames[3])


# Tickets and stamps (section 3.1): a client puts a ticket frame in front
# of a request's body; the zfed broker answers with a stamp frame (the
# ticket and the identity it vouches answered) in front of the reply's body.
TICKET_PREFIX = b"zfed.ticket"
STAMP_PREFIX = b"zfed.stamp"
TICKET_FRAME_SIZE = len(TICKET_PREFIX) + 8
STAMP_IDENTITY_MAX = 64
TICKET_MAX = (1 << 64) - 1


def ticket_frame(ticket):
    """The 19-byte ticket frame of an unsigned 64-bit ticket."""
    if not isinstance(ticket, int) or isinstance(ticket, bool) or not 0 <= ticket <= TICKET_MAX:
        raise MdpError("ticket must be an unsigned 64-bit integer, got %r" % (ticket,))
    return TICKET_PREFIX + ticket.to_bytes(8, "big")


def is_ticket_frame(frame):
    frame = bytes(frame)
    return len(frame) == TICKET_FRAME_SIZE and frame.startswith(TICKET_PREFIX)


def parse_stamp(frame):
    """A reply's first body frame -> (ticket, identity) when it is a stamp
    of the section 3.1 shape, else None (a body, not a stamp)."""
    frame = bytes(frame)
    head = len(STAMP_PREFIX) + 8
    if not frame.startswith(STAMP_PREFIX) or not head + 1 <= len(frame) <= head + \
            STAMP_IDENTITY_MAX:
        return None
    identity = frame[head:]
    if not all(0x20 <= c <= 0x7E for c in identity):
        return None
    return int.from_bytes(frame[len(STAMP_PREFIX):head], "big"), identity.decode("ascii")


def worker_ready(service, credit=1):
    if service.startswith("mmi.") if isinstance(service, str) else service.startswith(b"mmi."):
        raise MdpError("workers must not register mmi.* services")
    frames = [b"", MDPW, READY, _service_bytes(service)]
    if credit > 1:
        frames.append(b"credit=%d" % min(int(credit), 999999))
    return frames


def worker_reply(address, body):
    address = bytes(address)
    if not 1 <= len(address) <= 255:
        raise MdpError("address of %d bytes" % len(address))
    return [b"", MDPW, REPLY, address, b"", bytes(body)]


def worker_heartbeat():
    return [b"", MDPW, HEARTBEAT]


def worker_disconnect():
    return [b"", MDPW, DISCONNECT]


def parse_ready_offers(frame):
    """READY frame 4 -> (credit, compact) (section 3): offers key=value
    separated by single spaces, at most 64 bytes; an empty, overlong or
    ill-formed list (an empty offer, a key twice) offers nothing (1, False);
    unknown keys are ignored; a bad or missing credit offer means 1."""
    frame = b"" if frame is None else bytes(frame)
    if not 1 <= len(frame) <= OFFERS_MAX:
        return 1, False
    credit, compact, seen = 1, False, set()
    for offer in frame.split(b" "):
        key = offer.split(b"=", 1)[0] + b"=" if b"=" in offer else None
        if not offer or (key in seen and key in (b"credit=", b"compact=")):
            return 1, False
        if key == b"credit=":
            m = _CREDIT_RE.fullmatch(offer)
            credit = min(int(m.group(1)), CREDIT_MAX) if m and int(m.group(1)) else 1
        elif key == b"compact=":
            compact = offer == COMPACT_OFFER
        seen.add(key)
    return credit, compact


def parse_ready_credit(frame):
    """READY frame 4 -> credit (missing/empty/malformed/0 mean 1; cap 256)."""
    return parse_ready_offers(frame)[0]


# Compact frames (section 3.2): between a zfed broker and a zfed worker that
# agreed in READY, REQUEST and REPLY are one frame ("zfwc", command,
# address length, address) and the body frames.
COMPACT_MAGIC = b"zfwc"
COMPACT_OFFER = b"compact=1"
COMPACT_HEAD = 6
OFFERS_MAX = 64


def compact_frame(command, address):
    """The compact frame of REQUEST or REPLY with a 1-255 byte address."""
    address = bytes(address)
    if command not in (REQUEST, REPLY) or not 1 <= len(address) <= 255:
        raise MdpError("compact frame: command %r, address of %d bytes" % (command, len(address)))
    return COMPACT_MAGIC + command + bytes([len(address)]) + address


def _compact_head(frames, command, magic, size, what):
    """What both compact legs check first (sections 3.2, 3.3): the magic,
    the head's fixed size and the command; -> (frames as bytes, head)."""
    frames = [bytes(f) for f in frames]
    if not frames or not frames[0].startswith(magic):
        raise MdpError("not a %s" % what)
    head = frames[0]
    if len(head) < size:
        raise MdpError("%s shorter than its %d-byte head" % (what, size))
    if head[4:5] != command:
        raise MdpError("compact frame command 0x%02x, expected 0x%02x" % (head[4], command[0]))
    return frames, head


def parse_compact(frames, command):
    """A compact message -> (address, body_frames); command is the one this
    side may receive (REQUEST at a worker, REPLY at the broker).  Raises
    MdpError for every malformed shape of section 3.2."""
    frames, head = _compact_head(frames, command, COMPACT_MAGIC, COMPACT_HEAD, "compact frame")
    if head[5] == 0 or len(head) != COMPACT_HEAD + head[5]:
        raise MdpError("compact frame of %d bytes with address length %d" % (len(head), head[5]))
    if len(frames) < 2:
        raise MdpError("compact %s with no body frame" % COMMAND_NAMES[command])
    return head[COMPACT_HEAD:], frames[1:]


# Compact client frames (section 3.3): between a zfed client and a zfed
# broker whose mmi.status says "compact_clients": true, a request or reply is
# one frame ("zfcc", command, flags, ticket, service length, service, and in
# a stamped reply the identity's length and the identity) and the body frames.
CLIENT_COMPACT_MAGIC = b"zfcc"
CLIENT_COMPACT_HEAD = 15
CLIENT_COMPACT_TICKET = 0x01


def compact_client_frame(command, service, ticket=None, identity=None):
    """The compact client frame of a REQUEST (client to broker) or a REPLY
    (broker to client); ticket None for none; identity (1-64 printable
    bytes) only in a REPLY with a ticket, where it is required."""
    service = _service_bytes(service)
    stamp = command == REPLY and ticket is not None
    if identity is not None:
        identity = identity.encode("ascii") if isinstance(identity, str) else bytes(identity)
    if command not in (REQUEST, REPLY) or (identity is not None) != stamp:
        raise MdpError("compact client frame: command %r, identity %r" % (command, identity))
    if ticket is not None and not 0 <= ticket <= TICKET_MAX:
        raise MdpError("ticket %r is not a 64-bit unsigned integer" % (ticket,))
    frame = (CLIENT_COMPACT_MAGIC + command +
             bytes([CLIENT_COMPACT_TICKET if ticket is not None else 0]) +
             (ticket or 0).to_bytes(8, "big") + bytes([len(service)]) + service)
    if stamp:
        if not 1 <= len(identity) <= STAMP_IDENTITY_MAX or \
                not all(0x20 <= c <= 0x7E for c in identity):
            raise MdpError("stamp identity %r" % (identity,))
        frame += bytes([len(identity)]) + identity
    return frame


def parse_compact_client(frames, command):
    """A compact client message -> (service, ticket, identity, body_frames);
    command is the one this side may receive (REQUEST at the broker, REPLY
    at a client); ticket None when it has none, identity (str) only in a
    stamped REPLY.  Raises MdpError for every malformed shape of 3.3."""
    frames, head = _compact_head(frames, command, CLIENT_COMPACT_MAGIC, CLIENT_COMPACT_HEAD,
                                 "compact client frame")
    flags, ticket, length = head[5], int.from_bytes(head[6:14], "big"), head[14]
    if flags & ~CLIENT_COMPACT_TICKET:
        raise MdpError("compact client frame flags 0x%02x" % flags)
    if not flags and ticket:
        raise MdpError("compact client frame with a ticket but not its flag")
    if length == 0:
        raise MdpError("compact client frame with an empty service")
    end, identity = CLIENT_COMPACT_HEAD + length, None
    if command == REPLY and flags:
        if len(head) <= end or not 1 <= head[end] <= STAMP_IDENTITY_MAX:
            raise MdpError("compact client REPLY stamp identity length")
        identity = head[end + 1:end + 1 + head[end]]
        end += 1 + head[end]
    if len(head) != end:
        raise MdpError("compact client frame of %d bytes, its lengths say %d" % (len(head), end))
    service = head[CLIENT_COMPACT_HEAD:CLIENT_COMPACT_HEAD + length]
    if not is_service_name(service):
        raise MdpError("invalid service name %r" % (service,))
    if identity is not None and not all(0x20 <= c <= 0x7E for c in identity):
        raise MdpError("stamp identity %r is not printable ASCII" % (identity,))
    if len(frames) < 2:
        raise MdpError("compact client %s with no body frame" % COMMAND_NAMES[command])
    return (service.decode("ascii"), ticket if flags else None,
            identity.decode("ascii") if identity is not None else None, frames[1:])


def parse_broker_message(frames):
    """Broker -> worker message on the worker's DEALER.  Returns
    (command, address, body_frames); raises MdpError for shapes that must be
    dropped.  For REQUEST, body_frames is every frame after frame 4 (the
    worker answers 400 unless there is exactly one)."""
    frames = [bytes(f) for f in frames]
    if len(frames) < 3 or frames[0] != b"" or frames[1] != MDPW or len(frames[2]) != 1:
        raise MdpError("not an MDP worker message")
    cmd = frames[2]
    if cmd in (HEARTBEAT, DISCONNECT):
        if len(frames) != 3:
            raise MdpError("%s with extra frames" % COMMAND_NAMES[cmd])
        return cmd, None, []
    if cmd == REQUEST:
        if len(frames) < 6:
            raise MdpError("REQUEST with %d frames" % len(frames))
        address = frames[3]
        if not 1 <= len(address) <= 255:
            raise MdpError("REQUEST address of %d bytes" % len(address))
        if frames[4] != b"":
            raise MdpError("REQUEST frame 4 is not empty")
        return cmd, address, frames[5:]
    raise MdpError("command 0x%02x not expected from a broker" % cmd[0])


__all__ = [n for n in dir() if not n.startswith("_")]
