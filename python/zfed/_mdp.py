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
threads hand it work with call_soon(), which wakes its poll through a pipe.
"""

import collections
import os
import threading
import time

import zmq

from . import protocol as zp

SEND_TIMEOUT_MS = 1000  # a reply that cannot be queued within a second: reconnect
CLOSE_LINGER_MS = 500


class WorkerConnection:
    """One MDP worker: a service name, a credit and a request handler.

    handler(connection, generation, address, bodies) is called in the loop
    thread for every REQUEST (bodies: the zmq.Frames after the empty frame,
    received without a copy); answer with reply(generation, address, frames)
    from the loop thread (call_soon from another)."""

    def __init__(self, loop, service, name, handler, credit=1):
        self.loop = loop
        self.service = service
        self.name = name
        self.handler = handler
        self.credit = credit
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
        now = time.monotonic()
        try:
            self._send([b"", zp.MDPW, zp.REPLY, address, b""] + list(frames), now, copy=False)
        except zmq.Again:
            self.reconnect("a reply could not be queued within %d ms" % SEND_TIMEOUT_MS, now)
            return False
        self.replies += 1
        return True

    def on_readable(self, now):
        """Reads what is queued on the socket (a bounded batch)."""
        for _ in range(256):
            if self.socket is None:
                return
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._on_message(frames, now)

    def _on_message(self, frames, now):
        if len(frames) < 3 or frames[0].bytes != b"" or frames[1].bytes != zp.MDPW \
                or len(frames[2].bytes) != 1:
            self.loop.log.warning("%s: dropped a malformed message from the broker", self.name)
            return
        command = frames[2].bytes
        if command in (zp.HEARTBEAT, zp.DISCONNECT) and len(frames) != 3:
            self.loop.log.warning("%s: dropped a %s with extra frames", self.name,
                                  zp.COMMAND_NAMES[command])
            return
        if command == zp.REQUEST and (len(frames) < 6 or not 1 <= len(frames[3].bytes) <= 255
                                      or frames[4].bytes != b""):
            self.loop.log.warning("%s: dropped a malformed REQUEST", self.name)
            return
        if command not in zp.COMMAND_NAMES:
            self.loop.log.warning("%s: dropped an unknown command 0x%02x", self.name, command[0])
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
            self.handler(self, self.generation, frames[3].bytes, frames[5:])
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

    def next_event(self):
        if self.socket is None:
            return self.reopen_at
        return min(self.last_sent + self.loop.interval, self.last_heard + self.loop.expiry)


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
        self._calls = collections.deque()
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
        self.wake()

    def wake(self):
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the loop wakes anyway

    def stop(self):
        """Thread-safe and signal-safe."""
        self._stopping = True
        self.wake()

    def run(self):
        self.thread = threading.current_thread()
        now = time.monotonic()
        for connection in self.connections:
            connection.open(now)
        poller, by_socket = None, {}
        next_check = now
        try:
            while not self._stopping:
                if self.changed or poller is None:
                    poller = zmq.Poller()
                    poller.register(self._wake_r, zmq.POLLIN)
                    by_socket = {c.socket: c for c in self.connections if c.socket is not None}
                    for socket in by_socket:
                        poller.register(socket, zmq.POLLIN)
                    self.changed = False
                now = time.monotonic()
                deadline = next_check
                for connection in self.connections:
                    event = connection.next_event()
                    if event is not None:
                        deadline = min(deadline, event)
                timeout = max(0.0, deadline - now)
                events = poller.poll(timeout * 1000)
                now = time.monotonic()
                for item, _ in events:
                    if item == self._wake_r:
                        self._drain_wake()
                    else:
                        connection = by_socket.get(item)
                        if connection is not None and connection.socket is item:
                            connection.on_readable(now)
                self._run_calls()
                if now >= next_check or any(c.next_event() is not None and
                                            c.next_event() <= now for c in self.connections):
                    for connection in self.connections:
                        connection.tick(now)
                    for timer in self.timers:
                        timer(now)
                    next_check = now + self.check
        finally:
            self._run_calls()
            for connection in self.connections:
                connection.disconnect()
            if self._own_context:
                self.context.term()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _drain_wake(self):
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _run_calls(self):
        while self._calls:
            function = self._calls.popleft()
            try:
                function()
            except Exception:  # a bad callback must not stop the loop
                self.log.exception("loop callback failed")
