"""zfed's services written in Python (zfed.services), to serve with
zfed-py-worker or to read as examples:

    zfed-py-worker zfed.services:fib        PROTOCOL.md 14.1-14.4
    zfed-py-worker zfed.services:vecavg     PROTOCOL.md 14.7
    zfed-py-worker zfed.services:tensoravg  MODELS.md 11 (a model service)

They check their inputs in the C workers' order and with their wording, so
a job gets the same results (and the same aggregates) from Python workers
as from C ones.
"""

import math

import numpy as np

from . import models as zm
from . import protocol as zp
from .service import ParamError, service

VECTOR_MAX = 65536
SAMPLES_MAX_TENSORAVG = 2**53


def _unknown(params, known):
    for key in params:
        if key not in known:
            raise ParamError(key if zp.is_token(key, zp.FIELD_MAX) else "",
                             "unknown parameter '%s'" % zp.clean_text(key, 64))


@service(zp.FIB_SERVICE)
def fib(params, global_value, ctx):
    """The first fibonacci_level Fibonacci terms, their sum and the last."""
    refusal = zp.fib_check_task(params, global_value)
    if refusal is not None:
        _, field, message = refusal
        raise ParamError(field, message)
    if not zp.is_decimal(global_value):
        raise ParamError("global", "fib's global value must be a decimal string, got a string "
                         "that is not a canonical decimal")
    return zp.fib_outputs(params[zp.FIB_PARAM])


def _is_number(value):
    return (type(value) is int) or (type(value) is float and math.isfinite(value))


def _check_vector(value, field, what=None):
    if not isinstance(value, list) or not 1 <= len(value) <= VECTOR_MAX:
        raise ParamError(field, "must be an array of 1 to %d numbers, got %s" % (
            VECTOR_MAX, "an empty or oversized array" if isinstance(value, list)
            else zp.type_name(value)))
    for index, entry in enumerate(value):
        if not _is_number(entry):
            raise ParamError(field, "entry %d must be a finite number, got %s"
                             % (index, zp.type_name(entry)))


@service("vecavg")
def vecavg(params, global_value, ctx):
    """Moves the global weights halfway towards the task's vector."""
    _unknown(params, ("vector", "samples"))
    if "vector" not in params:
        raise ParamError("vector", "missing: an array of numbers")
    vector = params["vector"]
    _check_vector(vector, "vector")
    samples_rule = "an integer of at least 1 (the task's weight in fedavg)"
    if "samples" not in params:
        raise ParamError("samples", "missing: " + samples_rule)
    samples = params["samples"]
    if type(samples) is not int or not 1 <= samples <= zp.U64_MAX:
        raise ParamError("samples", "must be: " + samples_rule)
    _check_vector(global_value, "global")
    if len(global_value) != len(vector):
        raise ParamError("global", "the global weights have %d values but this task's vector "
                         "has %d; shapes are never changed to fit"
                         % (len(global_value), len(vector)))
    weights = [(float(g) + float(v)) / 2 for g, v in zip(global_value, vector)]
    return {"weights": weights, "samples": samples}


def _dtype_add(array, dtype, add, out):
    """out[...] = x + add in the tensor's dtype (MODELS.md 11): F64 and F32
    in their own precision, straight into `out` (no temporary the size of
    the tensor), F16 and BF16 through binary32, integers exactly (in
    range)."""
    if dtype == "F64":
        np.add(array, np.float64(add), out=out)
    elif dtype == "F32":
        np.add(array, np.float32(add), out=out)
    else:
        out[...] = _add_through_wider(array, dtype, add)


def _add_through_wider(array, dtype, add):
    # As the C worker: add rounded once from binary64 to the dtype (numpy's
    # float64 -> float16 cast does; zm.to_bf16 for BF16), the sum in
    # binary32, rounded to the dtype.  That second rounding is the only one
    # of the sum: a sum of two 16-bit floats rounded to binary32 and then to
    # the dtype is the sum rounded once, as 24 >= 2 * 11 + 2 bits.
    if dtype == "F16":
        a = np.float32(np.float16(add))
        return (array.astype(np.float32) + a).astype(np.float16)
    if dtype == "BF16":
        a = zm.bf16_to_f32(zm.to_bf16(np.float64(add)))
        return zm.f32_to_bf16(zm.bf16_to_f32(array) + a)
    info = np.iinfo(zm.DTYPES[dtype])
    if array.size == 0:
        return array
    low, high = int(array.min()) + add, int(array.max()) + add
    if low < info.min or high > info.max:
        raise ParamError("add", "%s + %d leaves the range of %s" % (dtype, add, dtype))
    if dtype == "U64":  # no wider integer type: add or subtract in uint64
        return array + np.uint64(add) if add >= 0 else array - np.uint64(-add)
    return (array.astype(np.int64) + np.int64(add)).astype(zm.DTYPES[dtype])


@service("tensoravg", kind="model")
def tensoravg(params, model, ctx):
    """Adds `add` to every element of every tensor; weight = samples."""
    _unknown(params, ("add", "samples"))
    add = params.get("add")
    if "add" not in params:
        raise ParamError("add", "missing: a finite number")
    if not _is_number(add):
        raise ParamError("add", "must be a finite number, got %s" % zp.type_name(add))
    samples = params.get("samples")
    if "samples" not in params:
        raise ParamError("samples", "missing: an integer from 0 to 2^53")
    if type(samples) is not int or not 0 <= samples <= SAMPLES_MAX_TENSORAVG:
        raise ParamError("samples", "must be an integer from 0 to 2^53")
    layout = model.layout()
    if any(t.dtype not in zm.FLOAT_DTYPES for t in layout) and \
            not (type(add) is int or float(add).is_integer()):
        raise ParamError("add", "an integer tensor needs an integer add, got %r" % add)
    out = zm.Model.empty(layout)  # one buffer: the result is sent without a copy
    for tensor in layout:
        # A float tensor takes add as a binary64 (an integer rounded to
        # nearest first, as the C worker reads it), an integer one exactly.
        _dtype_add(model[tensor.name], tensor.dtype,
                   float(add) if tensor.dtype in zm.FLOAT_DTYPES else int(add), out[tensor.name])
    return out, samples, None
