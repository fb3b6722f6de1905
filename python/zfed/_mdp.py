"""MDP/0.1 worker connections and the one I/O loop that owns them.

PROTOCOL.md sections 2-4: each WorkerConnection is one DEALER registered
for one service (READY, with the zfed credit frame when credit > 1); it
heartbeats when it has sent nothing for an interval, counts any well-formed
message from the broker as a sign of life, and on DISCONNECT or broker
silence closes its socket and registers again on a new one after a
back-off (250 ms doubling to 8 s, reset by the first sign of life after a
READY).  Requests received on a socket that has since been closed are
abandoned: their replies carry the socket's generation and are dropped.

The Loop runs in one thread and is the only user of its sockets.  Other
threads hand it work with call_soon() and reply_soon(), which wake its poll
through a pipe (only when it is polling: a loop that is awake sees them
anyway).

run_inline(function) runs a function on the loop thread itself, which
saves the two thread hand-offs per task of a compute pool (with one
compute thread, the pool only adds them).  While it runs, the loop's
watchdog thread looks after the sockets: every timer check it reads what
the broker sent (a sign of life; requests wait for the loop) and sends the
heartbeats that are due, so heartbeats go on while the function computes.
The sockets change hands under Loop.lock, which the loop thread holds at
all times except inside run_inline (ZeroMQ allows a socket to move between
threads behind a full memory barrier, which a lock is).  stop() during
run_inline lets the function finish, or, from a signal handler on the loop
thread, raise_if_computing() unwinds it with Stopped.

Per message the loop does as little as it can in Python: frames are
received as bytes (a copy costs less than a zmq.Frame and its .bytes),
except the data frames of a model task (zero-copy); frames are sent one by
one with plain int flags; timers run every quarter heartbeat interval, not
per message (PROTOCOL.md 4).
"""

import collections
import os
import threading
import time

import zmq

from . import protocol as zp

SEND_TIMEOUT_MS = 1000  # a reply that cannot be queued within a second: reconnect
CLOSE_LINGER_MS = 500
READ_BUDGET = 256  # messages read from one socket before the others get a turn
WAKE_READ = 4096
# Plain ints: pyzmq's enum flags cost an enum operation per use.
_SNDMORE = int(zmq.SNDMORE)
_NOBLOCK = int(zmq.NOBLOCK)
_RCVMORE = int(zmq.RCVMORE)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
# pyzmq's Socket.send is a Python wrapper (routing_id, group: not used here)
# over its backend's; replies call the backend's directly.
_SEND = zmq.backend.Socket.send if issubclass(zmq.Socket, zmq.backend.Socket) else zmq.Socket.send
REQUEST_BODY_AT = 5  # frames of a REQUEST before its body: "", MDPW01, 0x02, address, ""
WATCHDOG_JOIN_S = 5


class Stopped(BaseException):
    """Raised into a function that run_inline runs when the loop is told to
    stop from a signal handler (BaseException: services catch Exception)."""


class WorkerConnection:
    """One MDP worker: a service name, a credit and a request handler.

    handler(connection, generation, address, bodies) is called in the loop
    thread for every REQUEST (bodies: the frames after the empty frame, the
    first as bytes and, with zero_copy_data, the others as zmq.Frames
    received without a copy); answer with reply(generation, address, frames)
    from the loop thread (reply_soon from another)."""

    def __init__(self, loop, service, name, handler, credit=1, zero_copy_data=False):
        self.loop = loop
        self.service = service
        self.name = name
        self.handler = handler
        self.credit = credit
        self.zero_copy_data = zero_copy_data
        self.socket = None
        self.generation = 0
        self.backoff_ms = zp.BACKOFF_INITIAL_MS
        self.reopen_at = None
        self.awaiting_life = False
        self.last_heard = self.last_sent = 0.0
        self.requests = 0
        self.replies = 0

    # -- life cycle ---------------------------------------------------------
    def open(self, now):
        loop = self.loop
        socket = loop.context.socket(zmq.DEALER)
        socket.linger = 0
        socket.sndtimeo = SEND_TIMEOUT_MS
        if loop.curve is not None:
            loop.curve.apply(socket)
        socket.connect(loop.endpoint)
        self.socket = socket
        self.generation += 1
        self.reopen_at = None
        self.awaiting_life = True
        self.last_heard = now
        loop.changed = True
        self._send(zp.worker_ready(self.service, self.credit), now)
        loop.log.info("%s: READY for %s on %s%s", self.name, self.service, loop.endpoint,
                      " (credit %d)" % self.credit if self.credit > 1 else "")

    def _close(self):
        if self.socket is not None:
            self.socket.close(0)
            self.socket = None
            self.loop.changed = True

    def reconnect(self, why, now):
        """Closes the socket without a word and opens a new one after the
        current back-off, which then doubles."""
        self._close()
        self.loop.log.warning("%s: %s; registering again in %d ms", self.name, why,
                              self.backoff_ms)
        self.reopen_at = now + self.backoff_ms / 1000.0
        self.loop.timer_at(self.reopen_at)
        self.backoff_ms = min(self.backoff_ms * 2, zp.BACKOFF_MAX_MS)

    def disconnect(self):
        """Clean stop: DISCONNECT, then close (PROTOCOL.md 4)."""
        if self.socket is None:
            return
        try:  # within the send timeout: a full queue still gets it through
            self.socket.send_multipart(zp.worker_disconnect())
            self.socket.linger = CLOSE_LINGER_MS
            self.loop.log.debug("%s: DISCONNECT sent", self.name)
        except zmq.ZMQError as failure:
            self.loop.log.warning("%s: DISCONNECT not sent: %s", self.name, failure)
        self.socket.close()
        self.socket = None

    # -- traffic ------------------------------------------------------------
    def _send(self, frames, now, copy=True):
        self.socket.send_multipart(frames, copy=copy)
        self.last_sent = now

    def reply(self, generation, address, frames):
        """Sends a REPLY if the request came on the socket still open."""
        if generation != self.generation or self.socket is None:
            self.loop.log.debug("%s: reply for a closed connection abandoned", self.name)
            return False
        socket = self.socket
        try:
            _SEND(socket, b"", _SNDMORE)
            _SEND(socket, zp.MDPW, _SNDMORE)
            _SEND(socket, zp.REPLY, _SNDMORE)
            _SEND(socket, address, _SNDMORE)
            _SEND(socket, b"", _SNDMORE)
            last = len(frames) - 1
            for index, frame in enumerate(frames):  # big frames go without a copy
                _SEND(socket, frame, _SNDMORE if index < last else 0, copy=False)
        except zmq.Again:  # (a multipart message is queued whole or not at all)
            self.reconnect("a reply could not be queued within %d ms" % SEND_TIMEOUT_MS,
                           self.loop.now)
            return False
        self.last_sent = self.loop.now
        self.replies += 1
        return True

    def _receive(self):
        """One whole message (the socket is readable): frames as bytes, the
        data frames of a model REQUEST as zmq.Frames."""
        socket = self.socket
        recv, more = socket.recv, socket.getsockopt
        frames = [recv(_NOBLOCK)]
        if not self.zero_copy_data:
            while more(_RCVMORE):
                frames.append(recv(_NOBLOCK))
            return frames
        while more(_RCVMORE):
            frames.append(recv(_NOBLOCK, copy=len(frames) <= REQUEST_BODY_AT))
        return frames

    def on_readable(self, now, drain=False):
        """Reads what is queued on the socket: one message, and with credit
        more than 1 (or drain) up to READ_BUDGET while more are waiting (one
        REQUEST at a time is the strict MDP case: no second look needed)."""
        for _ in range(READ_BUDGET):
            try:
                frames = self._receive()
            except zmq.Again:
                return
            self._on_message(frames, now)
            if (self.credit == 1 and not drain) or self.socket is None or \
                    not self.socket.getsockopt(_EVENTS) & _POLLIN:
                return

    def _on_message(self, frames, now):
        count = len(frames)
        if count < 3 or frames[0] != b"" or frames[1] != zp.MDPW or len(frames[2]) != 1:
            self.loop.log.warning("%s: dropped a malformed message from the broker", self.name)
            return
        command = frames[2]
        if command == zp.REQUEST:
            if count < 6 or not 1 <= len(frames[3]) <= 255 or frames[4] != b"":
                self.loop.log.warning("%s: dropped a malformed REQUEST", self.name)
                return
        elif command not in zp.COMMAND_NAMES:
            self.loop.log.warning("%s: dropped an unknown command 0x%02x", self.name, command[0])
            return
        elif command in (zp.HEARTBEAT, zp.DISCONNECT) and count != 3:
            self.loop.log.warning("%s: dropped a %s with extra frames", self.name,
                                  zp.COMMAND_NAMES[command])
            return
        self.last_heard = now
        if command == zp.DISCONNECT:
            self.reconnect("DISCONNECT from the broker", now)
            return
        if self.awaiting_life:
            self.awaiting_life = False
            self.backoff_ms = zp.BACKOFF_INITIAL_MS
        if command == zp.REQUEST:
            self.requests += 1
            self.handler(self, self.generation, frames[3], frames[REQUEST_BODY_AT:])
        elif command != zp.HEARTBEAT:
            self.loop.log.warning("%s: unexpected %s from the broker ignored", self.name,
                                  zp.COMMAND_NAMES[command])

    # -- timers -------------------------------------------------------------
    def tick(self, now):
        loop = self.loop
        if self.socket is None:
            if self.reopen_at is not None and now >= self.reopen_at:
                self.open(now)
            return
        if now - self.last_heard > loop.expiry:
            self.reconnect("broker silent for %d ms" % ((now - self.last_heard) * 1000), now)
            return
        if now - self.last_sent >= loop.interval:
            try:
                self._send(zp.worker_heartbeat(), now)
            except zmq.Again:
                self.reconnect("a heartbeat could not be queued", now)


class Loop:
    """One thread's poll over its connections, timers and wake-ups."""

    def __init__(self, endpoint, log, heartbeat_ms=zp.HEARTBEAT_MS, liveness=zp.LIVENESS,
                 curve=None, context=None):
        self.endpoint = endpoint
        self.log = log
        self.interval = heartbeat_ms / 1000.0
        self.expiry = self.interval * liveness
        self.check = self.interval / 4  # PROTOCOL.md 4: timers every quarter interval
        self.curve = curve
        # A context of its own, terminated when the loop ends, so that the
        # DISCONNECTs of a clean stop are flushed (linger) before we exit.
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.connections = []
        self.timers = []  # callables(now) run at every check
        self.changed = True
        self.now = time.monotonic()  # as of the last wake-up
        self.next_check = self.now
        self._calls = collections.deque()
        self._replies = collections.deque()
        self._polling = False
        self.inline = False  # set by a user of run_inline: the watchdog starts with the loop
        self.lock = threading.Lock()  # the sockets' owner: see the module's docstring
        self._busy_since = None       # set while run_inline runs a function
        self._watchdog = None
        self._watchdog_wake = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stopping = False
        self.thread = None

    @property
    def wake_fd(self):
        return self._wake_w

    def add(self, connection):
        self.connections.append(connection)
        return connection

    def call_soon(self, function):
        """Thread-safe: runs function() in the loop thread, soon."""
        self._calls.append(function)
        if self._polling:
            self.wake()

    def reply_soon(self, connection, generation, address, frames):
        """Thread-safe: connection.reply(generation, address, frames) in the
        loop thread, soon (a compute thread's answer)."""
        self._replies.append((connection, generation, address, frames))
        if self._polling:  # else the loop is awake and empties the queue before polling
            self.wake()

    def timer_at(self, when):
        """The next check runs no later than `when` (a reconnect's back-off)."""
        self.next_check = min(self.next_check, when)

    def wake(self):
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the loop wakes anyway

    def stop(self):
        """Thread-safe and signal-safe."""
        self._stopping = True
        self.wake()

    @property
    def stopping(self):
        return self._stopping

    @property
    def busy(self):
        """True while run_inline runs a function (the watchdog has the sockets)."""
        return self._busy_since is not None

    def raise_if_computing(self):
        """From a signal handler: Stopped when the handler interrupted a
        function that run_inline runs on this (the main) thread."""
        if self._busy_since is not None and threading.current_thread() is self.thread:
            raise Stopped()

    def run_inline(self, function, *args):
        """function(*args) on the loop thread, the watchdog keeping the
        connections alive meanwhile; only from the loop thread."""
        if self._watchdog is None:
            self._start_watchdog()
        self.lock.release()
        try:
            self._busy_since = time.monotonic()
            if self._stopping:  # a signal before busy was set did not raise: we do
                raise Stopped()
            return function(*args)
        finally:
            self._busy_since = None
            self.lock.acquire()
            self.now = time.monotonic()

    def _watch(self):
        """The watchdog: at every timer check during a long run_inline,
        what the loop would do: read (requests are deferred by their
        handler, which sees busy), heartbeat, expire."""
        while not self._stopping:
            self._watchdog_wake.wait(self.check)
            if self._busy_since is None or self._stopping:
                continue
            if not self.lock.acquire(timeout=self.check):
                continue
            try:
                if self._busy_since is None or self._stopping:
                    continue
                self.now = now = time.monotonic()
                for connection in self.connections:
                    socket = connection.socket
                    if socket is not None and socket.getsockopt(_EVENTS) & _POLLIN:
                        connection.on_readable(now, drain=True)
                if now >= self.next_check:
                    self._tick(now)
            except Exception:  # the watchdog must outlive a bad tick
                self.log.exception("watchdog check failed")
            finally:
                self.lock.release()

    def _start_watchdog(self):
        self._watchdog = threading.Thread(target=self._watch, name="zfed-watchdog", daemon=True)
        self._watchdog.start()

    def _stop_watchdog(self):
        if self._watchdog is not None:
            self._watchdog_wake.set()
            self._watchdog.join(WATCHDOG_JOIN_S)

    def _poller(self):
        """What zmq_poll watches (the wake pipe, then every open socket) and
        socket -> connection."""
        by_socket = {c.socket: c for c in self.connections if c.socket is not None}
        items = [(self._wake_r, _POLLIN)] + [(socket, _POLLIN) for socket in by_socket]
        self.changed = False
        return items, by_socket

    def run(self):
        self.thread = threading.current_thread()
        self.lock.acquire()
        self.now = time.monotonic()
        for connection in self.connections:
            connection.open(self.now)
        self.next_check = self.now + self.check
        if self.inline and self._watchdog is None:
            self._start_watchdog()  # now, not on the first task's path
        items, by_socket = self._poller()
        wake_r = self._wake_r
        try:
            while not self._stopping:
                if self.changed:
                    items, by_socket = self._poller()
                # Set before the last look at the queues (reply_soon reads it
                # after appending), so a reply is never left waiting a whole poll.
                self._polling = True
                if self._replies or self._calls:
                    timeout = 0
                else:  # whole ms, rounded up: a timer is never polled for in a spin
                    timeout = max(0, int((self.next_check - time.monotonic()) * 1000) + 1)
                events = zmq.zmq_poll(items, timeout)
                self._polling = False
                self.now = now = time.monotonic()
                for item, _ in events:
                    if item == wake_r:
                        self._drain_wake()
                    else:
                        connection = by_socket.get(item)
                        if connection is not None and connection.socket is item:
                            connection.on_readable(now)
                self._run_calls()
                if now >= self.next_check:
                    self._tick(now)
        except Stopped:
            pass  # stop() from a signal handler, in the middle of a function
        finally:
            self._stopping = True
            self._stop_watchdog()
            self._run_calls()
            for connection in self.connections:
                connection.disconnect()
            if self._own_context:
                self.context.term()
            os.close(self._wake_r)
            os.close(self._wake_w)
            self.lock.release()

    def _tick(self, now):
        self.next_check = now + self.check
        for connection in self.connections:
            connection.tick(now)
        for timer in self.timers:
            timer(now)

    def _drain_wake(self):
        try:
            os.read(self._wake_r, WAKE_READ)  # one read: more bytes only wake us again
        except BlockingIOError:
            pass

    def _run_calls(self):
        replies = self._replies
        while replies:
            connection, generation, address, frames = replies.popleft()
            try:
                connection.reply(generation, address, frames)
            except Exception:  # a bad reply must not stop the loop
                self.log.exception("%s: sending a reply failed", connection.name)
        while self._calls:
            function = self._calls.popleft()
            try:
                function()
            except Exception:  # a bad callback must not stop the loop
                self.log.exception("loop callback failed")
