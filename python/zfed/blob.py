"""Models by reference (MODELS.md sections 6 and 7): blob services that
hold models and serve their chunks, and the fetcher that reads them.

BlobStore holds models (id -> data) for a hold time or until released and
answers zfed.fetch / zfed.release bodies; a data frame is a slice of the
held memory, sent without a copy.  The worker runtime serves its store
from its own I/O loop; BlobServer serves one from a thread of its own (for
a client or a controller that publishes a global model).

Fetcher reads a model by reference through the broker as an MDP client:
at most `window` fetches outstanding, each chunk checked against its own
fetch (id, index, length), a fetch unanswered for its timeout sent again
(at most 3 times), 429 fetched again after a back-off, any other code, a
broker error or an exhausted fetch failing the whole transfer.  Only a
whole model is returned (and its sha256 checked when the descriptor has
one).
"""

import hashlib
import logging
import os
import threading
import time

import numpy as np
import zmq

from . import models as zm
from . import protocol as zp
from ._mdp import Loop, WorkerConnection

BUSY_BACKOFF_MS = 100
BUSY_BACKOFF_MAX_MS = 2000
BLOB_CREDIT_DEFAULT = 8


class TransferError(Exception):
    """A model could not be fetched whole; str() says why."""


class BlobStore:
    """Held models: id -> (data, chunk, expiry).  Thread-safe: the compute
    threads hold results, the I/O thread serves and expires them."""

    def __init__(self, hold_ms=zm.HOLD_MS_DEFAULT, hold_bytes=None):
        self.hold_ms = hold_ms
        self.hold_bytes = hold_bytes
        self._held = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.served = 0
        self.held = 0  # ids taken in, for the worker's last word
        self.released = 0
        self.expired = 0

    @property
    def held_bytes(self):
        return self._bytes

    def __contains__(self, id_):
        with self._lock:
            return bytes(id_) in self._held

    def __len__(self):
        with self._lock:
            return len(self._held)

    def hold(self, id_, data, chunk=zm.CHUNK_DEFAULT, hold_ms=None):
        """Keeps data fetchable under id; False when over the hold budget."""
        view = zm.byte_view(data)
        hold_ms = self.hold_ms if hold_ms is None else hold_ms
        with self._lock:
            previous = self._held.pop(bytes(id_), None)
            if previous is not None:
                self._bytes -= previous[0].nbytes
            if self.hold_bytes is not None and self._bytes + view.nbytes > self.hold_bytes:
                return False
            self._held[bytes(id_)] = (view, chunk, time.monotonic() + hold_ms / 1000.0)
            self._bytes += view.nbytes
            if previous is None:
                self.held += 1
        return True

    def release(self, ids):
        """Forgets these ids; returns how many were held."""
        count = 0
        with self._lock:
            for id_ in ids:
                entry = self._held.pop(bytes(id_), None)
                if entry is not None:
                    self._bytes -= entry[0].nbytes
                    count += 1
        self.released += count
        return count

    def expire(self, now):
        with self._lock:
            old = [i for i, (_, _, until) in self._held.items() if until <= now]
            for id_ in old:
                self._bytes -= self._held.pop(id_)[0].nbytes
        self.expired += len(old)

    def publish(self, model, service, chunk=zm.CHUNK_DEFAULT, id=None, digest=True,
                hold_ms=None):
        """Holds a model and returns its by-reference Descriptor (a global's
        id is its sha256; a result may pass a random id)."""
        model = zm.as_model(model)
        data = zm.model_data(model)
        digest_bytes = zm.sha256(data) if digest else None
        id = bytes(id if id is not None else digest_bytes if digest else os.urandom(zm.ID_BYTES))
        descriptor = zm.Descriptor(id, digest_bytes, data.nbytes, chunk, model.layout(), service)
        zm.check_descriptor(descriptor.elements())
        if not self.hold(id, data, chunk, hold_ms):
            raise MemoryError("over the hold budget of %d bytes" % self.hold_bytes)
        return descriptor

    def answer(self, bodies):
        """Request body frames -> reply frames (MODELS.md section 6)."""
        if len(bodies) != 1:
            return [zm.encode_transfer(zm.Chunk(bytes(zm.ID_BYTES), 0, zm.CHUNK_MALFORMED,
                                                "a fetch is exactly one frame"))]
        try:
            message = zm.decode_transfer(bodies[0].bytes if hasattr(bodies[0], "bytes")
                                         else bytes(bodies[0]))
        except zm.ModelError as failure:
            return [zm.encode_transfer(zm.Chunk(bytes(zm.ID_BYTES), 0, zm.CHUNK_MALFORMED,
                                                "bad fetch: %s" % failure))]
        if isinstance(message, zm.Release):
            return [zm.encode_transfer(zm.Released(self.release(message.ids)))]
        if not isinstance(message, zm.Fetch):
            return [zm.encode_transfer(zm.Chunk(bytes(zm.ID_BYTES), 0, zm.CHUNK_MALFORMED,
                                                "expected zfed.fetch or zfed.release, got %s"
                                                % message.KIND))]
        with self._lock:
            entry = self._held.get(bytes(message.id))
        if entry is None:
            return [zm.encode_transfer(zm.Chunk(message.id, message.index, zm.CHUNK_NOT_FOUND,
                                                "no model with this id here"))]
        view, chunk, _ = entry
        chunks = -(-view.nbytes // chunk)
        if message.index >= chunks:
            return [zm.encode_transfer(zm.Chunk(message.id, message.index,
                                                zm.CHUNK_OUT_OF_RANGE,
                                                "chunk %d of a model of %d chunks"
                                                % (message.index, chunks)))]
        start = message.index * chunk
        self.served += 1
        return [zm.encode_transfer(zm.Chunk(message.id, message.index, zm.CHUNK_OK)),
                view[start:start + chunk]]


class BlobServer:
    """A BlobStore served as an MDP worker from a thread of its own.

        with BlobServer(endpoint) as server:
            descriptor = server.publish(model)   # source = server.service
    """

    def __init__(self, endpoint, service=None, curve=None, credit=BLOB_CREDIT_DEFAULT,
                 heartbeat_ms=zp.HEARTBEAT_MS, liveness=zp.LIVENESS, hold_ms=zm.HOLD_MS_DEFAULT,
                 hold_bytes=None, log=None, context=None):
        self.service = service or zm.new_blob_service()
        self.store = BlobStore(hold_ms, hold_bytes)
        self.log = log or logging.getLogger("zfed.blob")
        self.loop = Loop(endpoint, self.log, heartbeat_ms, liveness, curve, context)
        self.connection = self.loop.add(WorkerConnection(self.loop, self.service, self.service,
                                                         self._on_request, credit))
        self.loop.timers.append(self.store.expire)
        self._thread = threading.Thread(target=self.loop.run, name=self.service, daemon=True)

    def _on_request(self, connection, generation, address, bodies):
        connection.reply(generation, address, self.store.answer(bodies))

    def start(self):
        self._thread.start()
        return self

    def publish(self, model, chunk=zm.CHUNK_DEFAULT, **kwargs):
        return self.store.publish(model, self.service, chunk, **kwargs)

    def close(self):
        self.loop.stop()
        if self._thread.is_alive():
            self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


class Fetcher:
    """Reads models by reference through the broker (one DEALER, used by
    one thread at a time)."""

    def __init__(self, endpoint, curve=None, context=None, window=zm.FETCH_WINDOW,
                 timeout_ms=zm.FETCH_TIMEOUT_MS, resends=zm.FETCH_TRIES, log=None):
        self.endpoint = endpoint
        self.curve = curve
        self.context = context or zmq.Context.instance()
        self.window = window
        self.timeout = timeout_ms / 1000.0
        self.resends = resends
        self.log = log or logging.getLogger("zfed.fetch")
        self.socket = None
        self.dropped = 0   # replies that matched no outstanding fetch
        self.fetches = 0   # fetches sent, resends included

    def _open(self):
        if self.socket is None:
            socket = self.context.socket(zmq.DEALER)
            socket.linger = 0
            if self.curve is not None:
                self.curve.apply(socket)
            socket.connect(self.endpoint)
            self.socket = socket
        return self.socket

    def close(self):
        if self.socket is not None:
            self.socket.close(0)
            self.socket = None

    def request(self, service, message, timeout=None):
        """One transfer request (e.g. a zfed.release) and its reply message."""
        socket = self._open()
        socket.send_multipart(zp.client_request(service, zm.encode_transfer(message)))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not socket.poll(left * 1000):
                raise TransferError("%s: no answer from %s" % (message.KIND, service))
            frames = socket.recv_multipart()
            reply = self._reply(frames, service)
            if isinstance(reply, TransferError):
                raise reply
            if reply is not None and not isinstance(reply, zm.Chunk):
                return reply
            self.dropped += 1

    def release(self, service, ids, timeout=None):
        """zfed.release -> the number of ids the holder still had."""
        reply = self.request(service, zm.Release(ids), timeout)
        if not isinstance(reply, zm.Released):
            raise TransferError("expected zfed.released, got %s" % reply.KIND)
        return reply.count

    def _reply(self, frames, service):
        """Client reply frames -> transfer message, a TransferError for a
        broker error, or None for something to drop."""
        if len(frames) < 4 or frames[0] != b"" or frames[1] != zp.MDPC \
                or frames[2] != service.encode():
            return None
        body = frames[3]
        try:
            message = zm.decode_transfer(body)
        except zm.ModelError:
            try:
                error = zp.decode(body)
            except zp.DecodeError:
                return None
            if error.KIND == zp.KIND_ERROR:
                return TransferError("the broker answered %d: %s" % (error.code, error.message))
            return None
        if isinstance(message, zm.Chunk):
            message.data = frames[4] if len(frames) == 5 else None
            message.frames = len(frames) - 3
        return message

    def fetch(self, descriptor, out=None):
        """Descriptor by reference -> its data as a numpy uint8 array
        (whole, sha256 checked when given); TransferError otherwise."""
        size = descriptor.size
        buffer = out if out is not None else np.empty(size, np.uint8)
        service = descriptor.source
        chunks = descriptor.chunks
        socket = self._open()
        outstanding = {}  # index -> [deadline, resends, busy_backoff_ms]
        waiting = {}      # index -> time to fetch again after a 429
        next_index, whole = 0, 0
        # The digest follows the chunks that have arrived in order, so that
        # hashing (which releases the GIL) overlaps the rest of the transfer.
        digest = hashlib.sha256() if descriptor.sha256 is not None else None
        arrived, hashed = set(), 0
        started = time.monotonic()

        def send(index, resends=0, backoff=BUSY_BACKOFF_MS):
            socket.send_multipart(zp.client_request(service, zm.encode_transfer(
                zm.Fetch(descriptor.id, index))))
            self.fetches += 1
            outstanding[index] = [time.monotonic() + self.timeout, resends, backoff]

        while whole < chunks:
            now = time.monotonic()
            for index in [i for i, at in waiting.items() if at <= now]:
                state = waiting.pop(index)
                send(index, 0, state[1])
            while next_index < chunks and len(outstanding) + len(waiting) < self.window:
                send(next_index)
                next_index += 1
            now = time.monotonic()
            for index, state in list(outstanding.items()):
                if state[0] <= now:
                    if state[1] >= self.resends:
                        raise TransferError("chunk %d of %s unanswered after %d sends"
                                            % (index, service, state[1] + 1))
                    self.log.warning("fetch of chunk %d from %s timed out; sending it again",
                                     index, service)
                    send(index, state[1] + 1, state[2])
            deadlines = [s[0] for s in outstanding.values()] + [at[0] for at in waiting.values()]
            left = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 0.0
            if not socket.poll(left * 1000):
                continue
            frames = socket.recv_multipart(copy=False)
            reply = self._reply([f.bytes if i < 4 else f for i, f in enumerate(frames)], service)
            if isinstance(reply, TransferError):
                raise reply
            if not isinstance(reply, zm.Chunk) or reply.id != bytes(descriptor.id) \
                    or reply.index not in outstanding:
                self.dropped += 1
                continue
            index = reply.index
            if reply.code == zm.CHUNK_BUSY:
                backoff = outstanding.pop(index)[2]
                waiting[index] = (time.monotonic() + backoff / 1000.0,
                                  min(backoff * 2, BUSY_BACKOFF_MAX_MS))
                continue
            if reply.code != zm.CHUNK_OK:
                raise TransferError("chunk %d from %s: %d %s" % (index, service, reply.code,
                                                                 reply.text))
            start, end = descriptor.chunk_range(index)
            data = reply.data
            if data is None or reply.frames != 2 or len(data) != end - start:
                self.dropped += 1  # wrong length: dropped, the fetch times out
                continue
            del outstanding[index]
            buffer[start:end] = np.frombuffer(data.buffer, np.uint8)
            whole += 1
            if digest is not None:
                arrived.add(index)
                while hashed in arrived:
                    arrived.discard(hashed)
                    first, last = descriptor.chunk_range(hashed)
                    digest.update(buffer[first:last])
                    hashed += 1
        if digest is not None and digest.digest() != bytes(descriptor.sha256):
            raise TransferError("the model fetched from %s does not match its sha256" % service)
        self.log.debug("fetched %d bytes in %d chunks from %s in %.1f ms", size, chunks, service,
                       (time.monotonic() - started) * 1000)
        return buffer


class ModelCache:
    """The last few global models, by id, fetched once however many tasks
    ask for them at the same time (MODELS.md section 8: keep the last
    global)."""

    def __init__(self, entries=2):
        self.entries = entries
        self._models = {}       # id -> Model, oldest first
        self._pending = {}      # id -> threading.Event
        self._lock = threading.Lock()
        self.hits = 0
        self.fetched = 0

    def get(self, id_):
        with self._lock:
            return self._get(bytes(id_))

    def _get(self, id_):
        model = self._models.pop(id_, None)
        if model is not None:
            self._models[id_] = model  # most recent last
        return model

    def put(self, id_, model):
        with self._lock:
            self._models.pop(bytes(id_), None)
            self._models[bytes(id_)] = model
            while len(self._models) > self.entries:
                self._models.pop(next(iter(self._models)))

    def get_or_fetch(self, descriptor, fetch):
        """The cached model for descriptor.id, or fetch(descriptor) -> Model
        (once, even when several threads ask at once)."""
        id_ = bytes(descriptor.id)
        while True:
            with self._lock:
                model = self._get(id_)
                if model is not None:
                    self.hits += 1
                    return model
                event = self._pending.get(id_)
                if event is None:
                    event = self._pending[id_] = threading.Event()
                    break
            event.wait()
        try:
            model = fetch(descriptor)
            self.fetched += 1
            self.put(id_, model)
            return model
        finally:
            with self._lock:
                del self._pending[id_]
            event.set()
