"""Python services the integration tests serve with zfed-py-worker
(tests/integration is on the worker's path: py_services:NAME)."""

import time

import numpy as np

import zfed


@zfed.service("flaky")
def flaky(params, global_value, ctx):
    """mode "raise": a ZeroDivisionError; "param": a ParamError naming
    "level"; "sleep": sleeps `seconds` first; else answers."""
    mode = params.get("mode")
    if mode == "raise":
        return {"never": 1 // 0}
    if mode == "param":
        raise zfed.ParamError("level", "must be at least 1, got 0")
    if mode == "sleep":
        time.sleep(params["seconds"])
    ctx.log.info("task %d of round %d at site %s", ctx.task, ctx.round, ctx.site)
    return {"site": ctx.site or "", "round": ctx.round, "task": ctx.task, "job": ctx.job_id,
            "attempt": ctx.attempt, "worker": ctx.worker}


@zfed.service("scale")
def scale(params, model, ctx):
    """A model service that returns separate arrays (packed once) and a
    metric: every tensor times `factor`."""
    factor = params["factor"]
    out = {name: (np.asarray(array, np.float64) * factor).astype(array.dtype)
           for name, array in model.items()}
    return out, params.get("samples", 1), {"factor": factor}


@zfed.service("broken-model")
def broken_model(params, model, ctx):
    """Returns a model of another layout: the worker refuses to send it."""
    return {"other": np.zeros(3, np.float32)}, 1, None


def undecorated(params, global_value, ctx):
    return {}



@zfed.service("tensoravg")
def tensoravg_delayed(params, model, ctx):
    """zfed.services.tensoravg, each task answered after a delay its id
    picks: ZFED_TEST_DELAY_MS="TASK:MS,..." in the worker's environment."""
    import os
    from zfed import services
    plan = dict(item.split(":") for item in
                filter(None, os.environ.get("ZFED_TEST_DELAY_MS", "").split(",")))
    delay = int(plan.get(str(ctx.task), 0))
    if delay:
        time.sleep(delay / 1000.0)
    return services.tensoravg(params, model, ctx)
