"""zfed for Python: write zfed services as Python functions, serve them
with zfed-py-worker, and run jobs through the C controller.

    import zfed

    @zfed.service("mlp")
    def train(params, model, ctx):          # model: name -> numpy array
        ...
        return new_model, samples, {"loss": loss}

    result = zfed.run_job(service="tensoravg", rounds=3, tasks=2, ...,
                          on_round=lambda record, model: ...)

Modules: zfed.protocol (the v1 codec), zfed.models (tensors, descriptors,
chunk transfer), zfed.safetensors, zfed.service, zfed.worker (the runtime
and zfed-py-worker), zfed.blob (blob services and fetching), zfed.client
(a small MDP client), zfed.controller (Job, run_job), zfed.services (fib,
vecavg, tensoravg in Python).
"""

from ._version import __version__
from .protocol import PROTOCOL_VERSION
from .service import Context, ParamError, ServiceError, service

_LAZY = {
    "Job": "controller", "JobResult": "controller", "JobError": "controller",
    "run_job": "controller", "resume_job": "controller",
    "Model": "models", "empty_like": "models", "ModelError": "models",
    "Client": "client",
}


def __getattr__(name):
    """numpy and zmq load only when the parts that need them are used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError("module 'zfed' has no attribute %r" % name)
    import importlib
    value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value
    return value


__all__ = ["__version__", "PROTOCOL_VERSION", "Context", "ParamError", "ServiceError",
           "service"] + sorted(_LAZY)
