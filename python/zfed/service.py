"""Services written as Python functions (zfed.service).

    import zfed

    @zfed.service("vecavg2")                       # a value service
    def average(params, global_value, ctx):
        if "vector" not in params:
            raise zfed.ParamError("vector", "missing: an array of numbers")
        return {"weights": [...], "samples": params["samples"]}

    @zfed.service("mlp")                           # a model service
    def train(params, model, ctx):
        new = zfed.empty_like(model)               # one buffer: sent without a copy
        ...
        return new, samples, {"loss": 0.25}

A function whose second parameter is named `model` is a model service
(MODELS.md): it gets the global model as a dict of read-only numpy arrays
and returns (model, weight, metrics): the new model (any name -> array
mapping of the global's layout), its weight (the "samples" output, an
integer >= 0) and a dict of further outputs (or None).  Any other function
is a value service (PROTOCOL.md 10, 14): it gets the global value as
decoded msgpack and returns its outputs dict.  kind="model" or
kind="value" says it explicitly.

Raising ParamError(field, text) answers the task with error 422 naming the
field; any other exception answers 500 with the exception's type and text,
and the worker goes on serving.
"""

import inspect
import logging

from . import protocol as zp

KIND_VALUE = "value"
KIND_MODEL = "model"
SERVICE_MAX = 255


class ParamError(Exception):
    """A task's parameter (or its global value: field "global") is missing,
    mistyped or out of range: the worker answers 422 naming `field`."""

    def __init__(self, field, text):
        super().__init__(text)
        self.field = field
        self.text = text


class ServiceError(Exception):
    """The function answers the task with an error of its own choosing
    (a code from 400 to 599 other than 422, e.g. 503 for a passing fault)."""

    def __init__(self, code, text, field=""):
        super().__init__(text)
        if not (type(code) is int and 400 <= code <= 599):
            raise ValueError("an error code is 400-599, got %r" % (code,))
        self.code, self.text, self.field = code, text, field


class Service:
    """A decorated function with its MDP service name and kind."""

    def __init__(self, function, name, kind):
        self.function = function
        self.name = name
        self.kind = kind
        self.__name__ = getattr(function, "__name__", name)
        self.__doc__ = getattr(function, "__doc__", None)

    @property
    def is_model(self):
        return self.kind == KIND_MODEL

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)

    def __repr__(self):
        return "<zfed %s service %r: %s>" % (self.kind, self.name, self.__name__)


def _infer_kind(function):
    try:
        names = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return KIND_VALUE
    return KIND_MODEL if len(names) >= 2 and names[1] == "model" else KIND_VALUE


def service(name, kind=None):
    """Decorator: makes a function the zfed service `name` (an MDP service
    name: 1-255 printable ASCII characters without space or '@', not
    mmi.* or zfed.*)."""
    if not zp.is_service_name(name) or "@" in name or name.startswith(("mmi.", "zfed.")) \
            or len(name) > SERVICE_MAX:
        raise ValueError("service name %r: 1-255 printable ASCII characters without space "
                         "or '@', not mmi.* or zfed.*" % (name,))
    if kind not in (None, KIND_VALUE, KIND_MODEL):
        raise ValueError("kind must be %r or %r" % (KIND_VALUE, KIND_MODEL))

    def wrap(function):
        return Service(function, name, kind or _infer_kind(function))
    return wrap


class Context:
    """What a service call knows besides its inputs.

    site: the --site the worker serves (None when it has none); job_id,
    round, task (task_id), attempt, global_round: from the task; worker:
    the MDP worker's name; service: the service name; log: a
    logging.Logger for this task's messages."""

    __slots__ = ("site", "job_id", "round", "task", "attempt", "global_round", "worker",
                 "service", "log")

    def __init__(self, site, task, worker, service_name, logger=None):
        self.site = site
        self.job_id, self.round, self.task = task.job_id, task.round, task.task_id
        self.attempt, self.global_round = task.attempt, task.global_round
        self.worker, self.service = worker, service_name
        base = logger or logging.getLogger("zfed.service")
        self.log = base.getChild(service_name) if logger is None else base

    @property
    def task_id(self):
        return self.task

    @property
    def logger(self):
        return self.log

    def __repr__(self):
        return "Context(job %s, round %d, task %d, attempt %d, site %r)" % (
            self.job_id, self.round, self.task, self.attempt, self.site)
