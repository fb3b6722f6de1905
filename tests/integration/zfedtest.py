"""zfedtest: start real zfed brokers, workers and controllers on loopback.

Shared by the integration tests.  Every process gets its own temporary
folder and free port (the broker binds tcp://127.0.0.1:* and reports the
port it got), so tests never collide with each other or with a broker the
user is running.  Everything started is stopped when the cluster closes.

Besides the C programs, it offers two MDP peers written straight from
schemas/PROTOCOL.md, for situations the C worker will not produce on
purpose: ScriptedWorker (holds requests and answers them when and how a
test says) and raw DEALER/ROUTER sockets for malformed traffic.
"""

import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import msgpack
import zmq

BUILD_DIR = os.environ.get("ZFED_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PYTHON = "/usr/bin/python3"
# The zfed Python package of this source tree, for processes that import it.
PYTHON_PACKAGE_DIR = os.path.join(SOURCE_DIR, "python")

MDPC = b"MDPC01"
MDPW = b"MDPW01"
READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT = b"\x01", b"\x02", b"\x03", b"\x04", b"\x05"


# Every process a test starts dies with the test process, whatever ends it
# (a failed setUp that skips tearDown, a ctest timeout that kills us).
_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# Clusters still open when the interpreter exits are closed then.
_OPEN_CLUSTERS = []


@atexit.register
def _close_leftovers():
    for cluster in list(_OPEN_CLUSTERS):
        try:
            cluster.close(keep=True)
        except AssertionError:
            pass


def binary(name):
    return os.path.join(BUILD_DIR, name)


def fib_sum(level):
    """Sum of F(0)..F(level-1), computed here independently of zfed."""
    a, b, total = 0, 1, 0
    for _ in range(level):
        total += a
        a, b = b, a + b
    return total


def fib_last(level):
    a, b = 0, 1
    for _ in range(level - 1):
        a, b = b, a + b
    return a


def task_body(job_id, round_, task, level, attempt=0, global_round=-1, global_value="0"):
    return msgpack.packb(["zfed.task", 1, job_id, round_, task, attempt,
                          {"fibonacci_level": level}, [global_round, global_value]],
                         use_bin_type=True)


def fib_outputs(level, sum_override=None):
    sequence = []
    if level <= 100:
        a, b = 0, 1
        for _ in range(level):
            sequence.append(str(a))
            a, b = b, a + b
    total = fib_sum(level) if sum_override is None else sum_override
    if sum_override is not None:
        sequence = []  # a made-up sum cannot come with a consistent sequence
    return {"sum": str(total), "terms": level, "last": str(fib_last(level)), "sequence": sequence}


# What sanitizers and valgrind print when they catch something.
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:", "ThreadSanitizer")


def _only_library_leaks(text):
    """A LeakSanitizer report of what libraries keep for themselves, not of
    ours: every block either an *indirect* leak allocated inside libzmq
    (its own objects pointing at each other, a pipe pair and its messages
    torn down at exit while the peer never read), or allocated inside
    libcrypto with no frame outside it (OpenSSL's per-thread state of a
    compute thread the exit overtook; libcrypto has no frame pointers, so
    the stack stops there).  A direct leak with a frame of ours is never
    excused; zfed_sha256, our one caller of libcrypto, is checked for
    leaks by its unit test."""
    if any(mark in text for mark in ("ERROR: AddressSanitizer", "runtime error:",
                                      "ThreadSanitizer")):
        return False
    blocks = re.findall(r"^(?:Direct|Indirect) leak of .*?(?=^\s*$)", text, re.M | re.S)
    if not blocks or "ERROR: LeakSanitizer" not in text:
        return False
    for block in blocks:
        frames = re.findall(r"^\s*#[1-9]\d* .*$", block, re.M)
        if not frames:
            return False
        if block.startswith("Indirect") and "libzmq.so" in frames[0]:
            continue
        if all("libcrypto.so" in frame for frame in frames):
            continue
        return False
    return True


def sanitizer_report(text):
    if _only_library_leaks(text):
        return None
    for mark in SANITIZER_MARKS:
        if mark in text:
            return text[max(0, text.index(mark) - 200):text.index(mark) + 2000]
    return None


# A stop is prompt when it comes well before anything the process would
# otherwise wait for (a task's delay, a heartbeat, a deadline).  Tests that
# check promptness make every such wait 10 s or more, so this bound tells a
# prompt stop from a slow one even on a loaded machine and under the
# sanitizers, which slow the programs several times over.
PROMPT_S = 5.0


def figure(name, value, unit=""):
    """Reports a measured figure on stderr (ctest -V shows it), for the
    tables in docs/RELIABILITY.md and docs/SECURITY.md."""
    sys.stderr.write("FIGURE %s: %s%s\n" % (name, value, (" " + unit) if unit else ""))


def rss_kb(pid, field="VmRSS"):
    """A process's resident memory (VmRSS), or its peak (VmHWM), in KiB."""
    with open("/proc/%d/status" % pid) as handle:
        return int(next(line for line in handle if line.startswith(field)).split()[1])


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


class Process:
    """A started program with its log file."""

    def __init__(self, name, argv, log_path, stdout=None, env=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=stdout or self._log, stderr=self._log,
                                     env=env, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        # A process the test kills on purpose is not expected to exit cleanly.
        self.expect_clean_exit = True

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def signal(self, signum):
        if self.alive():
            if signum in (signal.SIGKILL, signal.SIGSTOP):
                self.expect_clean_exit = False
            os.kill(self.proc.pid, signum)

    def kill(self):
        self.signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout=5.0):
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGCONT)
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log(self):
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")


class Cluster:
    """Brokers, workers and controllers for one test, cleaned up on close."""

    def __init__(self, name="zfed", wrapper=None):
        self.dir = tempfile.mkdtemp(prefix="zfedtest-%s-" % name)
        # A command every program runs under (valgrind in test_valgrind).
        self.wrapper = list(wrapper or [])
        self.workdir = os.path.join(self.dir, "jobs")
        self.processes = []
        self.context = zmq.Context()
        self.endpoint = None
        self._count = 0
        _OPEN_CLUSTERS.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(keep=exc[0] is not None)

    def close(self, keep=False):
        if self not in _OPEN_CLUSTERS:
            return  # closed already
        _OPEN_CLUSTERS.remove(self)
        problems = []
        for process in reversed(self.processes):
            code = process.stop()
            report = sanitizer_report(process.log())
            if report:
                problems.append("%s: sanitizer report:\n%s" % (process.name, report))
            elif process.expect_clean_exit and code not in (0, 130, -signal.SIGTERM):
                problems.append("%s exited with status %s:\n%s"
                                % (process.name, code, process.log()[-2000:]))
        self.context.destroy(linger=0)
        if problems:
            keep = True
        if keep or os.environ.get("ZFED_KEEP"):
            sys.stderr.write("zfedtest: logs kept in %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise AssertionError("\n".join(problems))

    def _name(self, prefix):
        self._count += 1
        return "%s-%d" % (prefix, self._count)

    def start(self, name, argv, stdout=None, env=None):
        argv = [part.replace("{name}", name) for part in self.wrapper] + argv
        process = Process(name, argv, os.path.join(self.dir, name + ".log"), stdout, env)
        self.processes.append(process)
        return process

    def private_endpoint(self):
        """An ipc endpoint in this cluster's folder, made its endpoint: no
        worker of another test (or of a benchmark on the same machine)
        reconnecting to a reused TCP port can join it."""
        self.endpoint = "ipc://%s/broker.ipc" % self.dir
        return self.endpoint

    def scripted_broker(self):
        """A ROUTER bound at private_endpoint(), for a test that plays the
        broker to real workers."""
        router = self.context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.bind(self.private_endpoint())
        return router

    def start_broker(self, *args, endpoint="tcp://127.0.0.1:*", name=None):
        name = name or self._name("broker")
        endpoint_file = os.path.join(self.dir, name + ".endpoint")
        process = self.start(name, [binary("zfed-broker"), "--bind", endpoint,
                                    "--endpoint-file", endpoint_file] + list(args))
        wait_for(lambda: os.path.exists(endpoint_file) or not process.alive(), 10,
                 what="the broker to bind")
        if not process.alive():
            raise AssertionError("broker did not start:\n" + process.log())
        with open(endpoint_file) as handle:
            self.endpoint = handle.readline().strip()
        process.endpoint = self.endpoint
        return process

    def start_worker(self, *args, name=None, endpoint=None):
        name = name or self._name("worker")
        return self.start(name, [binary("zfed-worker"), "--connect", endpoint or self.endpoint,
                                 "--name", name] + list(args))

    def start_py_worker(self, target, *args, name=None, endpoint=None, python=PYTHON):
        """zfed-py-worker (python3 -m zfed.worker from this source tree)
        serving TARGET (MODULE:FUNCTION); tests/integration is on its path."""
        name = name or self._name("py-worker")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [PYTHON_PACKAGE_DIR, os.path.dirname(os.path.abspath(__file__))]))
        return self.start(name, [python, "-m", "zfed.worker", target, "--connect",
                                 endpoint or self.endpoint, "--name", name] + list(args),
                          env=env)

    def controller_argv(self, *args, endpoint=None):
        return [binary("zfed-controller"), "--connect", endpoint or self.endpoint,
                "--workdir", self.workdir] + list(args)

    def run_controller(self, *args, timeout=60, endpoint=None):
        started = time.monotonic()
        wrapper = [part.replace("{name}", "controller-run") for part in self.wrapper]
        result = subprocess.run(wrapper + self.controller_argv(*args, endpoint=endpoint),
                                capture_output=True, timeout=timeout)
        result.elapsed = time.monotonic() - started
        result.out = result.stdout.decode("utf-8", "replace")
        result.err = result.stderr.decode("utf-8", "replace")
        report = sanitizer_report(result.err)
        if report:
            raise AssertionError("controller: sanitizer report:\n" + report)
        return result

    def start_controller(self, *args, name=None, endpoint=None):
        name = name or self._name("controller")
        return self.start(name, self.controller_argv(*args, endpoint=endpoint),
                          stdout=subprocess.DEVNULL)

    def summary(self, job_id):
        return self.read_json(job_id, "summary.json")

    def read_json(self, job_id, name):
        with open(os.path.join(self.workdir, job_id, name)) as handle:
            return json.load(handle)

    def client(self, endpoint=None):
        socket = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(endpoint or self.endpoint)
        return socket

    def mmi(self, service, body=b"", timeout=5.0, endpoint=None):
        socket = self.client(endpoint)
        try:
            socket.send_multipart([b"", MDPC, service.encode(), body])
            if not socket.poll(int(timeout * 1000)):
                raise AssertionError("no answer from %s" % service)
            frames = socket.recv_multipart()
            assert frames[:3] == [b"", MDPC, service.encode()], frames
            return frames[3]
        finally:
            socket.close()

    def status(self, endpoint=None):
        return msgpack.unpackb(self.mmi("mmi.status", endpoint=endpoint), raw=False)

    def wait_workers(self, count, service="fib", timeout=10.0, endpoint=None):
        def ready():
            services = self.status(endpoint)["services"]
            return services.get(service, {}).get("workers", 0) >= count
        wait_for(ready, timeout, what="%d %s workers to register" % (count, service))


class ScriptedWorker:
    """An MDP worker whose every answer the test decides.

    It registers with credit (a zfed extension) so the broker may hand it
    several requests at once; requests are kept in `held` until the test
    answers them with reply()/reply_error(), or forever.  Heartbeats are
    sent from a background thread, so the broker keeps it registered.
    """

    def __init__(self, cluster, credit=16, service="fib", name="scripted", auto=None):
        self.name = name
        self.auto = auto  # callable(task) -> outputs dict or None to hold
        self.socket = cluster.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(cluster.endpoint)
        self.lock = threading.Lock()
        self.held = []  # (address, decoded task)
        self.received = []
        self.running = True
        frames = [b"", MDPW, READY, service.encode()]
        if credit > 1:
            frames.append(b"credit=%d" % credit)
        self.socket.send_multipart(frames)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        try:
            self._serve()
        except zmq.ZMQError:
            pass  # the test ended and its context went away

    def _serve(self):
        next_beat = time.monotonic() + 1.0
        while self.running:
            if self.socket.poll(50):
                with self.lock:
                    frames = self.socket.recv_multipart()
                    if frames[2] == REQUEST:
                        task = msgpack.unpackb(frames[5], raw=False)
                        self.received.append(task)
                        outputs = self.auto(task) if self.auto else None
                        if outputs is not None:
                            self._send(frames[3], task, outputs)
                        else:
                            self.held.append((frames[3], task))
            if time.monotonic() >= next_beat:
                with self.lock:
                    self.socket.send_multipart([b"", MDPW, HEARTBEAT])
                next_beat = time.monotonic() + 1.0

    def _send(self, address, task, outputs, error=None):
        if error:
            body = ["zfed.error", 1, task[2], task[3], task[4], task[5], self.name] + list(error)
        else:
            body = ["zfed.result", 1, task[2], task[3], task[4], task[5], self.name, 1, outputs]
        self.socket.send_multipart([b"", MDPW, REPLY, address, b"",
                                    msgpack.packb(body, use_bin_type=True)])

    def wait_held(self, count, timeout=10.0):
        wait_for(lambda: len(self.held) >= count, timeout, what="%d held requests" % count)

    def take(self, round_, task, attempt):
        """Removes and returns the held request for (round, task, attempt)."""
        with self.lock:
            for index, (address, body) in enumerate(self.held):
                if (body[3], body[4], body[5]) == (round_, task, attempt):
                    del self.held[index]
                    return address, body
        raise AssertionError("no held request for round %d task %d attempt %d"
                             % (round_, task, attempt))

    def reply(self, round_, task, attempt, outputs=None):
        address, body = self.take(round_, task, attempt)
        if outputs is None:
            outputs = fib_outputs(body[6]["fibonacci_level"])
        with self.lock:
            self._send(address, body, outputs)

    def reply_error(self, round_, task, attempt, code, field, message):
        address, body = self.take(round_, task, attempt)
        with self.lock:
            self._send(address, body, None, (code, field, message))

    def close(self):
        self.running = False
        self.thread.join(2)
        self.socket.close()


class HostileWorker:
    """An MDP worker whose answer to each request is answer(task) -> a list
    of body frames (one reply), or None to die holding it, run on its own
    thread with heartbeats.  With frames, answer(task, frames) also gets
    the request's frames (a model task's data frame is frames[6])."""

    def __init__(self, cluster, answer, service=b"fib", curve=None, frames=False):
        self.socket = cluster.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if curve:
            curve(self.socket)
        self.socket.connect(cluster.endpoint)
        self.socket.send_multipart([b"", MDPW, READY, service])
        self.answer = answer
        self.with_frames = frames
        self.replies = 0
        self.requests = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            while self.running:
                if not self.socket.poll(200):
                    self.socket.send_multipart([b"", MDPW, HEARTBEAT])
                    continue
                frames = self.socket.recv_multipart()
                if frames[2] != REQUEST:
                    continue
                self.requests += 1
                task = msgpack.unpackb(frames[5], raw=False)
                body = self.answer(task, frames) if self.with_frames else self.answer(task)
                if body is None:  # it dies holding the request
                    self.running = False
                    self.socket.close()
                    return
                self.socket.send_multipart([b"", MDPW, REPLY, frames[3], b""] + body)
                self.replies += 1
        except zmq.ZMQError:
            pass

    def close(self, disconnect=False):
        """Stops serving; with disconnect, says so to the broker first (it
        forgets the worker at once instead of after its heartbeats)."""
        self.running = False
        self.thread.join(2)
        if disconnect and not self.socket.closed:
            self.socket.send_multipart([b"", MDPW, DISCONNECT])
            self.socket.setsockopt(zmq.LINGER, 1000)
        self.socket.close()


def behind(cluster, hostile, honest, *worker_args, service="fib"):
    """Starts honest zfed workers (one process per item of honest, each its
    --concurrency) once the hostile worker has registered, so the broker's
    first request is the hostile one's; waits for them all.  Returns
    hostile."""
    cluster.wait_workers(1, service=service)
    for concurrency in honest:
        cluster.start_worker("--concurrency", str(concurrency), *worker_args)
    cluster.wait_workers(1 + sum(honest), service=service)
    return hostile


class PlainWorker:
    """A plain MDP/0.1 worker shaped like the reference worker API (zguide's
    mdwrkapi), written here from RFC 7: one thread that polls for a
    request, sends HEARTBEAT only from that loop, and computes inside it, so
    it is silent while it works.  READY has four frames (no credit), and
    DISCONNECT makes it register again on a new socket.

    handler(body_frames) -> reply body frames; work_s seconds of silence
    are spent before each reply.  Every message received is kept in
    `received` (frames), every REQUEST's body frames in `requests`.
    """

    def __init__(self, cluster, service, heartbeat_ms, work_s=0.0, handler=None,
                 ready_frames=None):
        self.cluster = cluster
        self.service = service
        self.heartbeat_s = heartbeat_ms / 1000.0
        self.work_s = work_s
        self.handler = handler or (lambda frames: frames)
        self.ready_frames = ready_frames or [b"", MDPW, READY, service]
        self.received = []
        self.requests = []
        self.replies = 0
        self.disconnects = 0
        self.running = True
        self.socket = None
        self._connect()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _connect(self):
        if self.socket is not None:
            self.socket.close()
        self.socket = self.cluster.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(self.cluster.endpoint)
        self.socket.send_multipart(self.ready_frames)
        self.heartbeat_at = time.monotonic() + self.heartbeat_s

    def _loop(self):
        try:
            while self.running:
                if self.socket.poll(int(self.heartbeat_s * 1000)):
                    frames = self.socket.recv_multipart()
                    self.received.append(frames)
                    if frames[2] == REQUEST:
                        self.requests.append(frames[5:])
                        time.sleep(self.work_s)  # computing: nothing is sent
                        reply = self.handler(frames[5:])
                        self.socket.send_multipart([b"", MDPW, REPLY, frames[3], b""] + reply)
                        self.replies += 1
                    elif frames[2] == DISCONNECT:
                        self.disconnects += 1
                        self._connect()
                        continue
                if time.monotonic() >= self.heartbeat_at:
                    self.socket.send_multipart([b"", MDPW, HEARTBEAT])
                    self.heartbeat_at = time.monotonic() + self.heartbeat_s
        except zmq.ZMQError:
            pass  # the test ended and its context went away

    def close(self):
        self.running = False
        self.thread.join(self.work_s + 2)
        self.socket.close()


def mdp_request(cluster, service, body_frames, timeout=10.0):
    """A plain MDP/0.1 client request; returns the reply's frames."""
    socket = cluster.client()
    try:
        socket.send_multipart([b"", MDPC, service] + list(body_frames))
        if not socket.poll(int(timeout * 1000)):
            raise AssertionError("no reply from %r within %.0f s" % (service, timeout))
        return socket.recv_multipart()
    finally:
        socket.close()


def main():
    # Sockets left to Context.destroy() are closed there; the warnings only
    # add noise to the test output.
    import warnings
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2)


class PlainMajordomoBroker:
    """A plain 7/MDP broker written from RFC 7 alone, for interop tests: one
    ROUTER; workers READY, get REQUESTs, REPLY, HEARTBEAT and DISCONNECT;
    clients' requests are queued per service and go to that service's idle
    workers in turn.  No zfed extension: body frames are forwarded as they
    are (a ticket too), no stamp, no batch handling.  mmi.* requests are
    answered "501" (RFC 8 says a broker may implement none of them), or
    mmi.status with status when it is given (a zfed-broker older than
    stamps answered it with a map)."""

    HEARTBEAT_S = 1.0

    def __init__(self, status=None):
        self.status = status
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = "tcp://127.0.0.1:%d" % port
        self.services = {}  # name -> {"requests": [...], "idle": [...]}
        self.workers = {}  # identity -> service name
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _service(self, name):
        return self.services.setdefault(name, {"requests": [], "idle": []})

    def _dispatch(self, service):
        while service["requests"] and service["idle"]:
            worker = service["idle"].pop(0)
            client, body = service["requests"].pop(0)
            self.router.send_multipart([worker, b"", MDPW, b"\x02", client, b""] + body)

    def _drop_worker(self, identity):
        name = self.workers.pop(identity, None)
        if name is not None and identity in self.services[name]["idle"]:
            self.services[name]["idle"].remove(identity)

    def _worker(self, sender, frames):
        command = frames[0] if frames else b""
        if command == b"\x01" and len(frames) >= 2:  # READY service
            self.workers[sender] = frames[1].decode()
            service = self._service(self.workers[sender])
            service["idle"].append(sender)
            self._dispatch(service)
        elif command == b"\x03" and sender in self.workers and len(frames) >= 4:
            client, body = frames[1], frames[3:]  # REPLY client "" body...
            name = self.workers[sender]
            self.router.send_multipart([client, b"", MDPC, name.encode()] + body)
            service = self._service(name)
            service["idle"].append(sender)
            self._dispatch(service)
        elif command == b"\x05":  # DISCONNECT
            self._drop_worker(sender)
        elif command != b"\x04":  # anything but a HEARTBEAT: RFC 7 says disconnect
            if sender in self.workers:
                self.router.send_multipart([sender, b"", MDPW, b"\x05"])
            self._drop_worker(sender)

    def _loop(self):
        beat = time.monotonic() + self.HEARTBEAT_S
        while not self._stop.is_set():
            if self.router.poll(50):
                frames = self.router.recv_multipart()
                sender = frames[0]
                if len(frames) >= 4 and frames[1] == b"" and frames[2] == MDPC:
                    service, body = frames[3], frames[4:]
                    if service == b"mmi.status" and self.status is not None:
                        self.router.send_multipart([sender, b"", MDPC, service, self.status])
                    elif service.startswith(b"mmi."):
                        self.router.send_multipart([sender, b"", MDPC, service, b"501"])
                    elif body:
                        self.requests += 1
                        queue = self._service(service.decode())
                        queue["requests"].append((sender, body))
                        self._dispatch(queue)
                elif len(frames) >= 4 and frames[1] == b"" and frames[2] == MDPW:
                    self._worker(sender, frames[3:])
            if time.monotonic() >= beat:
                beat = time.monotonic() + self.HEARTBEAT_S
                for worker in list(self.workers):
                    self.router.send_multipart([worker, b"", MDPW, b"\x04"])

    def idle_workers(self, service="fib"):
        return len(self.services.get(service, {}).get("idle", []))

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.router.close()
        self.context.term()
