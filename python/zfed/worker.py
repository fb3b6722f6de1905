"""zfed-py-worker: serve a Python function as a zfed service (zfed.worker).

    zfed-py-worker MODULE:FUNCTION --connect EP [--site NAME] [OPTION]...
    python3 -m zfed.worker MODULE:FUNCTION ...

MODULE is an importable module or a path to a .py file; FUNCTION a function
decorated with @zfed.service (zfed.service).  What the C worker does, this
does (PROTOCOL.md 4, 16; MODELS.md 6-8):

  * one I/O thread owns every socket: --concurrency MDP workers (each with
    --credit) and, for a model service, one blob service; the functions run
    on --threads compute threads, so heartbeats go on while they compute;
  * reconnects with back-off after broker silence or DISCONNECT;
  * answers every REQUEST with exactly one REPLY: a result, or an error
    (400 unreadable, 422 ParamError, 500 any other exception - the worker
    keeps serving - 413 too large, 503 global model not fetched, 507 result
    not held); zfed.batch requests item by item (value services);
  * model services: the global model inline or fetched by reference in
    chunks (4 outstanding) and cached by id; results inline up to 4 MiB,
    else held and served from the worker's blob service until released or
    --hold-ms after the reply;
  * --site NAME registers SERVICE@NAME, the MDP service the controller
    addresses a site's tasks to; a task's "site" parameter must be NAME
    (else 422) and reaches the function as ctx.site, not in its params;
  * SIGTERM/SIGINT: DISCONNECT on every connection, exit 0.
"""

import argparse
import importlib
import importlib.util
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback

from . import blob as zb
from . import models as zm
from . import protocol as zp
from ._mdp import Loop, Stopped, WorkerConnection
from ._version import __version__
from .curve import CurveError, client_curve
from .service import Context, ParamError, Service, ServiceError

PROGRAM = "zfed-py-worker"
CONCURRENCY_MAX = 4096
THREADS_MAX = 1024
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SITE_MAX = 64
SERVICE_ERROR_CODES = (400, 413, 422, 429, 500, 503, 504, 507)


class Config:
    """Everything a WorkerRuntime needs; defaults as the C worker's."""

    def __init__(self, **kw):
        self.endpoint = kw.pop("endpoint", "tcp://127.0.0.1:5555")
        self.site = kw.pop("site", None)
        self.name = kw.pop("name", None) or "%s-%d" % (socket.gethostname(), os.getpid())
        self.concurrency = kw.pop("concurrency", 1)
        self.threads = kw.pop("threads", None) or self.concurrency
        self.credit = kw.pop("credit", 1)
        self.heartbeat_ms = kw.pop("heartbeat_ms", zp.HEARTBEAT_MS)
        self.liveness = kw.pop("liveness", zp.LIVENESS)
        self.curve = kw.pop("curve", None)
        self.hold_ms = kw.pop("hold_ms", zm.HOLD_MS_DEFAULT)
        self.hold_bytes = kw.pop("hold_bytes", None)
        self.blob_credit = kw.pop("blob_credit", zb.BLOB_CREDIT_DEFAULT)
        self.fetch_timeout_ms = kw.pop("fetch_timeout_ms", zm.FETCH_TIMEOUT_MS)
        self.chunk = kw.pop("chunk", zm.CHUNK_DEFAULT)
        if kw:
            raise TypeError("unknown settings: %s" % ", ".join(kw))


def registered_name(service_name, site):
    """The MDP service a worker registers: SERVICE, or SERVICE@SITE."""
    return service_name if not site else "%s@%s" % (service_name, site)


class WorkerRuntime:
    """Serves one Service until stop()."""

    def __init__(self, svc, config, log=None):
        if not isinstance(svc, Service):
            raise TypeError("%r is not a zfed service: decorate it with @zfed.service(NAME)"
                            % (svc,))
        self.service = svc
        self._is_model, self._function = svc.is_model, svc.function  # per task: no lookups
        self.config = config
        self.log = log or logging.getLogger("zfed.worker")
        self.loop = Loop(config.endpoint, self.log, config.heartbeat_ms, config.liveness,
                         config.curve)
        self.mdp_service = registered_name(svc.name, config.site)
        if not zp.is_service_name(self.mdp_service):
            raise ValueError("'%s' is not a valid MDP service name" % self.mdp_service)
        # One compute thread for a value service: the function runs on the
        # I/O thread itself (Loop.run_inline: no hand-offs, the watchdog
        # heartbeats meanwhile).  A model service keeps its pool, so that
        # its blob service answers fetches while it computes.
        self.inline = self.loop.inline = config.threads == 1 and not svc.is_model
        handler = self._on_request_inline if self.inline else self._on_request
        for index in range(config.concurrency):
            name = config.name if config.concurrency == 1 else "%s.%d" % (config.name, index)
            self.loop.add(WorkerConnection(self.loop, self.mdp_service, name, handler,
                                           config.credit, zero_copy_data=svc.is_model))
        self.store = None
        self.cache = None
        if svc.is_model:
            self.store = zb.BlobStore(config.hold_ms, config.hold_bytes)
            self.blob_service = zm.new_blob_service()
            self.loop.add(WorkerConnection(self.loop, self.blob_service, self.blob_service,
                                           self._on_blob_request, config.blob_credit))
            self.loop.timers.append(self.store.expire)
            self.cache = zb.ModelCache()
        self._jobs = queue.SimpleQueue()
        self._service_log = logging.getLogger("zfed.service").getChild(svc.name)
        self._local = threading.local()
        self.served = 0
        self.failed = 0
        self._threads = [] if self.inline else [
            threading.Thread(target=self._compute, name="compute-%d" % i, daemon=True)
            for i in range(config.threads)]

    # -- I/O thread -----------------------------------------------------------
    def run(self):
        for thread in self._threads:
            thread.start()
        self.log.info("serving %s (%s service %s) with %d connection(s), %s",
                      self.mdp_service, self.service.kind, self.service.__name__,
                      self.config.concurrency, "computing on the I/O thread" if self.inline
                      else "%d compute thread(s)" % self.config.threads)
        try:
            self.loop.run()
        finally:
            self.log.info("stopped after %d requests (%d answered with an error)",
                          self.served, self.failed)
            if self.store is not None:
                self.log.info("results held by reference: %d, %d released, %d expired, "
                              "%d still held", self.store.held, self.store.released,
                              self.store.expired, len(self.store))

    def stop(self):
        """Thread-safe and signal-safe; a function running on the I/O thread
        finishes first (from a signal handler, see stop_from_signal)."""
        self.loop.stop()

    def stop_from_signal(self):
        """stop() for a signal handler: when the handler interrupted the
        function on the I/O thread (run() called from the main thread), the
        function is unwound (zfed._mdp.Stopped) and its task abandoned, as a
        compute thread's is."""
        self.loop.stop()
        self.loop.raise_if_computing()

    def _on_request(self, connection, generation, address, bodies):
        self._jobs.put((connection, generation, address, bodies))

    def _on_request_inline(self, connection, generation, address, bodies):
        if self.loop.busy:  # read by the watchdog while a function runs: after it
            self.loop.call_soon(lambda: self._on_request_inline(connection, generation,
                                                                address, bodies))
            return
        if self.loop.stopping:
            return  # abandoned, as a stopping pool abandons what it holds
        frames = self.loop.run_inline(self._answer_safely, bodies, connection.name)
        self.served += 1
        connection.reply(generation, address, frames)

    def _on_blob_request(self, connection, generation, address, bodies):
        connection.reply(generation, address, self.store.answer(bodies))

    # -- compute threads --------------------------------------------------------
    def _compute(self):
        while True:
            connection, generation, address, bodies = self._jobs.get()
            frames = self._answer_safely(bodies, connection.name)
            self.served += 1
            self.loop.reply_soon(connection, generation, address, frames)

    def _answer_safely(self, bodies, worker):
        try:
            return self.answer(bodies, worker)
        except (Stopped, KeyboardInterrupt):
            raise  # the worker is stopping: the task is abandoned
        except BaseException as failure:  # never leave a request unanswered
            self.log.exception("%s: answering a request failed", worker)
            return [self._error(None, worker, zp.E_INTERNAL, "",
                                "%s: %s" % (type(failure).__name__, failure))]

    def _error(self, ids, worker, code, field, message):
        job_id, round_, task_id, attempt = ids or ("", 0, 0, 0)
        if code != zp.E_MALFORMED or ids:
            self.failed += 1
        field = field if zp.is_token(field, zp.FIELD_MAX) else ""
        return zp.Error(job_id=job_id, round=round_, task_id=task_id, attempt=attempt,
                        worker=worker, code=code, field=field,
                        message=zp.clean_text(message)).encode()

    def answer(self, bodies, worker):
        """REQUEST body frames -> REPLY body frames (PROTOCOL.md 16, MODELS.md 8)."""
        data = None
        if self._is_model and len(bodies) == 2:
            data = bodies[1]
        elif len(bodies) != 1:
            return [self._error(None, worker, zp.E_MALFORMED, "",
                                "a zfed task body is exactly one frame" if not
                                self.service.is_model else
                                "a model task is one body frame and at most one data frame")]
        body = bodies[0]
        if type(body) is not bytes:  # a zmq.Frame, a memoryview
            body = body.bytes if hasattr(body, "bytes") else bytes(body)
        if zp.is_batch(body):
            if data is not None:
                return [self._error(None, worker, zp.E_MALFORMED, "",
                                    "a zfed.batch has no data frame")]
            return [self._answer_batch(body, worker)]
        return self._answer_task(body, data, worker)

    def _answer_batch(self, body, worker):
        try:
            items = zp.decode_batch(body)
        except zp.DecodeError as failure:
            return self._error(None, worker, zp.E_MALFORMED, "", "bad batch: %s" % failure)
        if self.service.is_model:
            replies = []
            for item in items:
                try:
                    ids = zp.decode(item).ids
                except zp.DecodeError as failure:
                    ids = failure.ids
                replies.append(self._error(ids, worker, zp.E_MALFORMED, "",
                                           "model services cannot be batched; send each "
                                           "task alone"))
            return zp.encode_batch(replies)
        replies = [self._answer_task(item, None, worker)[0] for item in items]
        for index in reversed(range(len(replies))):
            if zp.batch_size(replies) <= zp.BODY_MAX:
                break
            if zp.decode(replies[index]).KIND == zp.KIND_RESULT:
                replies[index] = self._error(zp.decode(items[index]).ids, worker,
                                             zp.E_TOO_LARGE, "",
                                             "the batch's results do not fit in a %d-byte "
                                             "body; send this task alone" % zp.BODY_MAX)
        return zp.encode_batch(replies)

    def _answer_task(self, body, data, worker):
        try:
            task = zp.decode(body)
        except zp.DecodeError as failure:
            return [self._error(failure.ids, worker, zp.E_MALFORMED, "",
                                "bad task: %s" % failure)]
        if task.KIND != zp.KIND_TASK:
            return [self._error(task.ids, worker, zp.E_MALFORMED, "",
                                "expected zfed.task, got %s" % task.KIND)]
        ctx = Context(self.config.site, task, worker, self.service.name, self._service_log)
        started = time.perf_counter_ns()
        try:
            task.params = self._site_params(task.params)
            if self._is_model:
                return self._run_model(task, data, ctx, worker, started)
            if data is not None:
                raise ServiceError(zp.E_MALFORMED, "a value task has no data frame")
            outputs = self._function(task.params, task.global_value, ctx)
            if not isinstance(outputs, dict):
                raise TypeError("the service returned %s, not an outputs dict"
                                % type(outputs).__name__)
            return [self._result(task, worker, started, outputs)]
        except ParamError as failure:
            self.log.info("%s: task %s/%d/%d refused: %s: %s", worker, task.job_id, task.round,
                          task.task_id, failure.field, failure.text)
            return [self._error(task.ids, worker, zp.E_INVALID_PARAM, failure.field,
                                failure.text)]
        except ServiceError as failure:
            return [self._error(task.ids, worker, failure.code, failure.field, failure.text)]
        except Exception as failure:
            self.log.warning("%s: task %s/%d/%d failed: %s\n%s", worker, task.job_id,
                             task.round, task.task_id, failure, traceback.format_exc().rstrip())
            return [self._error(task.ids, worker, zp.E_INTERNAL, "",
                                "%s: %s" % (type(failure).__name__, failure))]

    def _site_params(self, params):
        """A site's tasks carry their site in params["site"]: it must be
        ours, and the function gets it as ctx.site, not among its params."""
        site = self.config.site
        if not site or not isinstance(params, dict) or "site" not in params:
            return params
        if params["site"] != site:
            raise ParamError("site", "this worker serves site %s, the task is for site %s"
                             % (site, zp.clean_text(str(params["site"]), 64)))
        return {k: v for k, v in params.items() if k != "site"}

    def _result(self, task, worker, started, outputs):
        compute_us = (time.perf_counter_ns() - started) // 1000
        try:
            return zp.result_body(task, worker, compute_us, outputs)
        except zp.EncodeError as failure:
            if "over the" in str(failure):
                raise ServiceError(zp.E_TOO_LARGE, "the result does not fit in a %d-byte body"
                                   % zp.BODY_MAX)
            raise ServiceError(zp.E_INTERNAL, "the service's outputs are not a valid result: "
                               "%s" % failure)

    # -- model services ---------------------------------------------------------
    def _fetcher(self):
        fetcher = getattr(self._local, "fetcher", None)
        if fetcher is None:
            fetcher = self._local.fetcher = zb.Fetcher(
                self.config.endpoint, self.config.curve, timeout_ms=self.config.fetch_timeout_ms,
                log=self.log)
        return fetcher

    def _global_model(self, task, data):
        try:
            descriptor = zm.check_descriptor(task.global_value, "global")
        except zm.ModelError as failure:
            raise ServiceError(zp.E_MALFORMED, "bad model: %s" % failure, "global")
        try:
            zm.check_data(descriptor, data)
        except zm.ModelError as failure:
            raise ServiceError(zp.E_MALFORMED, str(failure), "global")
        if data is not None:
            cached = self.cache.get(descriptor.id)
            if cached is not None:
                return descriptor, cached
            if zm.sha256(data) != descriptor.sha256:  # MODELS.md 8.2: 503, sent again
                raise ServiceError(zp.E_UNAVAILABLE, "cannot fetch the global model: its data "
                                   "does not match its sha256")
            model = zm.decode_model(descriptor, data)
            self.cache.put(descriptor.id, model)
            return descriptor, model

        def fetch(desc):
            return zm.decode_model(desc, self._fetcher().fetch(desc))
        try:
            return descriptor, self.cache.get_or_fetch(descriptor, fetch)
        except zb.TransferError as failure:
            raise ServiceError(zp.E_UNAVAILABLE, "cannot fetch the global model: %s" % failure)

    def _run_model(self, task, data, ctx, worker, started):
        descriptor, model = self._global_model(task, data)
        returned = self.service.function(task.params, model, ctx)
        if not isinstance(returned, tuple) or len(returned) not in (2, 3):
            raise TypeError("a model service returns (model, weight, metrics), got %s"
                            % type(returned).__name__)
        new, weight, metrics = returned if len(returned) == 3 else returned + (None,)
        if type(weight) is not int or not 0 <= weight <= zp.U64_MAX:
            raise TypeError("the weight (samples) must be an integer from 0 to 2^64-1, got %r"
                            % (weight,))
        metrics = dict(metrics or {})
        for key in ("model", "samples"):
            if key in metrics:
                raise TypeError("metrics may not use the output key '%s'" % key)
        new = zm.as_model(new, {t.name: t.dtype for t in descriptor.tensors})
        difference = zm.layout_difference(new.layout(), descriptor.tensors)
        if difference:
            raise ValueError("the returned model's layout differs from the global's: %s"
                             % difference)
        bad = zm.non_finite(new)
        if bad:
            raise ValueError("tensor %s: element %d is not finite" % bad)
        out = zm.model_data(new)
        inline = out.nbytes <= zm.INLINE_MAX
        result_id = os.urandom(zm.ID_BYTES)
        # As the C worker does: an inline result carries its sha256, one held
        # by reference none (MODELS.md 4: "when the sender computed it"):
        # hashing it would cost a pass over the whole model before the reply.
        digest = zm.sha256(out) if inline else None
        result = zm.Descriptor(result_id, digest, out.nbytes, self.config.chunk,
                               new.layout(), "" if inline else self.blob_service)
        outputs = {"model": result.elements(), "samples": weight}
        outputs.update(metrics)
        body = self._result(task, worker, started, outputs)
        if inline:
            return [body, out]
        if not self.store.hold(result_id, out, self.config.chunk):
            raise ServiceError(zm.E_INSUFFICIENT_STORAGE,
                               "cannot hold a result of %d bytes within --hold-bytes %d"
                               % (out.nbytes, self.config.hold_bytes))
        return [body]


# ---------------------------------------------------------------------------
# Command line

def load_service(spec):
    """MODULE:FUNCTION (MODULE a module name or a .py path) -> Service."""
    module_name, sep, function_name = spec.rpartition(":")
    if not sep or not module_name or not function_name:
        raise ValueError("expected MODULE:FUNCTION, got '%s'" % spec)
    if module_name.endswith(".py") or os.sep in module_name:
        path = os.path.abspath(module_name)
        name = "zfed_service_" + os.path.splitext(os.path.basename(path))[0]
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or not os.path.isfile(path):
            raise ValueError("cannot load %s" % module_name)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        loader_spec.loader.exec_module(module)
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
    function = getattr(module, function_name, None)
    if function is None:
        raise ValueError("%s has no attribute '%s'" % (module_name, function_name))
    if not isinstance(function, Service):
        raise ValueError("%s:%s is not a zfed service: decorate it with @zfed.service(NAME)"
                         % (module_name, function_name))
    return function


def _bounded(low, high):
    def parse(text):
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError("expected an integer, got '%s'" % text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError("must be from %d to %d, got %d" % (low, high, value))
        return value
    return parse


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Serve a Python function as a zfed service from a Majordomo "
        "broker (MDP/0.1).",
        epilog="SIGINT or SIGTERM stops it cleanly.  Exit status: 0 on a clean stop, 1 on "
        "failure, 2 on bad usage.")
    parser.add_argument("target", metavar="MODULE:FUNCTION",
                        help="a function decorated with @zfed.service (MODULE: a module name or "
                        "a .py file)")
    parser.add_argument("--connect", default="tcp://127.0.0.1:5555", metavar="EP",
                        help="broker endpoint (default %(default)s)")
    parser.add_argument("--site", metavar="NAME",
                        help="the site this worker serves: registers SERVICE@NAME")
    parser.add_argument("--name", help="name reported in results (default HOST-PID; .N per "
                        "connection)")
    parser.add_argument("--concurrency", type=_bounded(1, CONCURRENCY_MAX), default=1,
                        metavar="N", help="Majordomo workers in this process (default 1)")
    parser.add_argument("--threads", type=_bounded(1, THREADS_MAX), metavar="N",
                        help="compute threads (default: concurrency)")
    parser.add_argument("--credit", type=_bounded(1, zp.CREDIT_MAX), default=1, metavar="N",
                        help="requests each worker may hold at once (default 1 = strict "
                        "MDP/0.1)")
    parser.add_argument("--heartbeat-ms", type=_bounded(10, 600000), default=zp.HEARTBEAT_MS,
                        metavar="N", help="heartbeat interval, must match the broker's "
                        "(default %(default)s)")
    parser.add_argument("--liveness", type=_bounded(1, 100), default=zp.LIVENESS, metavar="N",
                        help="silent intervals before the broker counts as gone (default "
                        "%(default)s)")
    parser.add_argument("--hold-ms", type=_bounded(1, 2**31 - 1), default=zm.HOLD_MS_DEFAULT,
                        metavar="N", help="how long a result held by reference stays "
                        "fetchable unless released (default %(default)s)")
    parser.add_argument("--hold-bytes", type=_bounded(1, 2**62), metavar="N",
                        help="results held at once, in bytes (default: no limit); a result "
                        "beyond it is answered 507")
    parser.add_argument("--fetch-timeout-ms", type=_bounded(1, 600000),
                        default=zm.FETCH_TIMEOUT_MS, metavar="N",
                        help="a chunk fetch unanswered this long is sent again (default "
                        "%(default)s)")
    parser.add_argument("--chunk", type=_bounded(zm.CHUNK_MIN, zm.CHUNK_MAX),
                        default=zm.CHUNK_DEFAULT, metavar="BYTES",
                        help="chunk size of results held by reference (default %(default)s)")
    parser.add_argument("--curve-cert", metavar="FILE",
                        help="our CURVE certificate (the _secret file)")
    parser.add_argument("--server-key", metavar="KEY",
                        help="the broker's public key: 40 Z85 characters or a certificate file")
    parser.add_argument("--log-level", choices=("error", "warn", "info", "debug"),
                        default="info", help="(default %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="same as --log-level debug")
    parser.add_argument("-q", "--quiet", action="store_true", help="same as --log-level warn")
    parser.add_argument("-V", "--version", action="version",
                        version="%s %s (zfed protocol %d)" % (PROGRAM, __version__,
                                                              zp.PROTOCOL_VERSION))
    args = parser.parse_args(argv)
    if args.site is not None and not (zp.is_job_id(args.site) and len(args.site) <= SITE_MAX):
        parser.error("--site: 1-64 characters of A-Z a-z 0-9 . _ - not starting with '.'")
    if args.name is not None and not zp.is_token(args.name, zp.WORKER_MAX - 6):
        parser.error("--name: 1-122 printable ASCII characters without space")
    if (args.curve_cert is None) != (args.server_key is None):
        parser.error("--curve-cert and --server-key go together")
    return parser, args


def _logger(level):
    log = logging.getLogger("zfed")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s " + PROGRAM + " [%(levelname)s] "
                                           "%(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel({"error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
                  "debug": logging.DEBUG}[level])
    log.propagate = False
    return log


def main(argv=None):
    parser, args = parse_args(sys.argv[1:] if argv is None else argv)
    level = "debug" if args.verbose else "warn" if args.quiet else args.log_level
    log = _logger(level)
    try:
        svc = load_service(args.target)
        curve = client_curve(args.curve_cert, args.server_key)
        config = Config(endpoint=args.connect, site=args.site, name=args.name,
                        concurrency=args.concurrency, threads=args.threads, credit=args.credit,
                        heartbeat_ms=args.heartbeat_ms, liveness=args.liveness, curve=curve,
                        hold_ms=args.hold_ms, hold_bytes=args.hold_bytes,
                        fetch_timeout_ms=args.fetch_timeout_ms, chunk=args.chunk)
        runtime = WorkerRuntime(svc, config, log.getChild("worker"))
    except (ValueError, ImportError, CurveError, OSError) as failure:
        parser.error(str(failure))
    except Exception as failure:  # the module failed while importing
        sys.stderr.write("%s: cannot load %s: %s: %s\n" % (PROGRAM, args.target,
                                                           type(failure).__name__, failure))
        return EXIT_FAILED

    def on_signal(signum, frame):
        runtime.stop_from_signal()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    runtime.run()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
