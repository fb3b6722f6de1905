"""A small MDP client (zfed.client): send zfed tasks, with a model when the
service is a model service, and read the replies - result models included,
inline or fetched by reference.  For tests, tools and experiments; jobs
are run by the C controller (zfed.controller).

    with zfed.Client(endpoint) as client:
        reply = client.call("tensoravg", task, model=global_model)
        reply.result.outputs["samples"], reply.model["w"]
        client.release(reply)              # a result held by reference

With tickets=True (a zfed-broker only, PROTOCOL.md 3.1) every request
carries a ticket and every reply must come back stamped: call() then takes
only the reply to its own request, refuses one that names another task,
and says who answered (Reply.worker_id: "curve:KEY" under CURVE, "peer:N"
in plaintext, as the broker vouches).  tickets="auto" asks the broker
first (mmi.status, as the C controller does) and uses tickets only when
its status says "stamps": true.

With compact=True (a broker whose mmi.status says "compact_clients": true,
PROTOCOL.md 3.3) requests go as one compact client frame and the body;
compact="auto" asks the broker first.  Replies are read in either form.
"""

import os
import time

import zmq

from . import blob as zb
from . import models as zm
from . import protocol as zp


class Reply:
    """A decoded reply: result or error, and for a model result its
    descriptor and model (views over the data frame or the fetched data)."""

    def __init__(self, message, descriptor=None, model=None, frames=None):
        self.message = message
        self.descriptor = descriptor
        self.model = model
        self.frames = frames
        self.ticket = None     # with tickets: the request's ticket ...
        self.worker_id = None  # ... and the identity the broker vouches answered

    @property
    def result(self):
        return self.message if self.message.KIND == zp.KIND_RESULT else None

    @property
    def error(self):
        return self.message if self.message.KIND == zp.KIND_ERROR else None


class Client:
    def __init__(self, endpoint, curve=None, context=None, timeout=30.0, tickets=False,
                 compact=False):
        self.endpoint = endpoint
        self.curve = curve
        self.context = context or zmq.Context.instance()
        self.timeout = timeout
        if tickets not in (True, False, "auto"):
            raise ValueError('tickets must be True, False or "auto", got %r' % (tickets,))
        if compact not in (True, False, "auto"):
            raise ValueError('compact must be True, False or "auto", got %r' % (compact,))
        self.tickets = tickets
        self.compact = False  # the status question goes in MDP/0.1
        self._last_ticket = 0  # tickets run from 1, one per request, never reused
        self._tickets_sent = False  # a ticket has gone out: replies may be stamped
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.linger = 0
        if curve is not None:
            curve.apply(self.socket)
        self.socket.connect(endpoint)
        self.fetcher = zb.Fetcher(endpoint, curve, self.context)
        self._blobs = None
        if tickets == "auto" or compact == "auto":
            status = self.broker_status()
            if tickets == "auto":
                self.tickets = status.get("stamps") is True
            if compact == "auto":
                compact = status.get("compact_clients") is True
        self.compact = compact

    def broker_stamps(self, timeout=3.0):
        """Whether the broker stamps replies: its mmi.status is a map with
        "stamps": true (PROTOCOL.md 3.1 and 5).  501, another body or no
        answer within timeout: False."""
        return self.broker_status(timeout).get("stamps") is True

    def broker_status(self, timeout=3.0):
        """The broker's mmi.status map; {} for 501, another body or no
        answer within timeout."""
        self.send("mmi.status", [b""])
        deadline = time.monotonic() + timeout
        while True:
            try:
                service, bodies = self.receive(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
            if service != "mmi.status":
                continue
            try:
                status = zp.unpack(bodies[0].bytes) if len(bodies) == 1 else None
            except zp.ProtocolError:
                return {}
            return status if isinstance(status, dict) else {}

    def close(self):
        self.fetcher.close()
        if self._blobs is not None:
            self._blobs.close()
        self.socket.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def blobs(self):
        """This client's blob service (started on first use): it serves
        global models larger than 4 MiB."""
        if self._blobs is None:
            self._blobs = zb.BlobServer(self.endpoint, curve=self.curve,
                                        context=self.context).start()
        return self._blobs

    def send(self, service, bodies, ticket=None):
        """Sends one request; with a ticket (int), its ticket frame goes in
        front of the body (in compact mode, into the compact frame)."""
        if self.compact:
            head = [zp.compact_client_frame(zp.REQUEST, service, ticket)]
        else:
            head = [b"", zp.MDPC, service.encode()]
            if ticket is not None:
                head.append(zp.ticket_frame(ticket))
        self.socket.send_multipart(head + list(bodies), copy=False)
        self._tickets_sent = self._tickets_sent or ticket is not None

    def next_ticket(self):
        self._last_ticket += 1
        return self._last_ticket

    def receive(self, timeout=None):
        """(service, body frames) of the next reply."""
        timeout = self.timeout if timeout is None else timeout
        if not self.socket.poll(timeout * 1000):
            raise TimeoutError("no reply within %.1f s" % timeout)
        frames = self.socket.recv_multipart(copy=False)
        if self.compact and frames[0].bytes.startswith(zp.CLIENT_COMPACT_MAGIC):
            # The compact frame's stamp is handed on in section 3.1's form,
            # in front of the body frames, as an MDP/0.1 reply has it.  (The
            # parse is shown whether a body follows, not the body itself:
            # a model's data frame is not copied.)
            service, ticket, identity, _ = zp.parse_compact_client(
                [frames[0].bytes] + [b""] * (len(frames) > 1), zp.REPLY)
            if identity is not None and not self._tickets_sent:
                raise zp.MdpError("a stamped compact reply, and no ticket was sent")
            stamp = [] if identity is None else [zmq.Frame(
                zp.STAMP_PREFIX + ticket.to_bytes(8, "big") + identity.encode("ascii"))]
            return service, stamp + frames[1:]
        if len(frames) < 4 or frames[0].bytes != b"" or frames[1].bytes != zp.MDPC:
            raise zp.MdpError("not an MDP client reply")
        return frames[2].bytes.decode("ascii", "replace"), frames[3:]

    def global_descriptor(self, model, chunk=zm.CHUNK_DEFAULT):
        """(descriptor, data frames) of a global model: inline up to 4 MiB,
        else published on this client's blob service."""
        model = zm.as_model(model)
        if model.nbytes <= zm.INLINE_MAX:
            descriptor, data = zm.describe(model, chunk=chunk)
            return descriptor, [data]
        return self.blobs.publish(model, chunk), []

    def call(self, service, task, model=None, timeout=None):
        """Sends a zfed.Task (for a model service with its global model:
        a model to send, or a Descriptor already published) and returns the
        Reply for it."""
        data = []
        if model is not None:
            if isinstance(model, zm.Descriptor):
                descriptor = model
            else:
                descriptor, data = self.global_descriptor(model)
            task.global_value = descriptor.elements()
        ticket = self.next_ticket() if self.tickets else None
        self.send(service, [task.encode()] + data, ticket)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            _, bodies = self.receive(max(0.0, deadline - time.monotonic()))
            if ticket is None:
                reply = self.read(bodies)
                if reply.message.ids == task.ids or reply.message.job_id == "":
                    return reply
                continue
            stamp = zp.parse_stamp(bodies[0].bytes) if bodies else None
            if stamp is None:
                raise zp.MdpError("a reply without the broker's stamp: tickets need a "
                                  "zfed-broker (Client(tickets=False) for a plain one)")
            if stamp[0] != ticket:
                continue  # the late reply of an earlier request
            if len(bodies) < 2:
                raise zp.MdpError("a stamped reply with no body (from %s)" % stamp[1])
            reply = self.read(bodies[1:])
            reply.ticket, reply.worker_id = stamp
            named = reply.message.ids
            if named != task.ids and reply.message.job_id != "":
                raise zp.ProtocolError("the reply to task %s (ticket %d) names task %s: %s "
                                       "answered another task" % (task.ids, ticket, named,
                                                                  reply.worker_id))
            return reply

    def read(self, bodies):
        """Reply body frames -> Reply; a model result's data is read whole
        (from its data frame, or fetched from its holder)."""
        message = zp.decode(bodies[0].bytes)
        if message.KIND != zp.KIND_RESULT or "model" not in message.outputs:
            return Reply(message, frames=bodies)
        descriptor = zm.check_descriptor(message.outputs["model"], "result")
        if descriptor.inline:
            if len(bodies) != 2:
                raise zm.ModelError("data", "an inline result without its data frame")
            model = zm.decode_model(descriptor, bodies[1])
        else:
            model = zm.decode_model(descriptor, self.fetcher.fetch(descriptor))
        if descriptor.sha256 is not None and zm.sha256(zm.model_data(model)) != \
                bytes(descriptor.sha256):
            raise zm.ModelError("sha256", "the result's data does not match its sha256")
        return Reply(message, descriptor, model, bodies)

    def release(self, reply):
        """zfed.release for a result held by reference -> the holder's count."""
        if reply.descriptor is None or reply.descriptor.inline:
            return 0
        return self.fetcher.release(reply.descriptor.source, [reply.descriptor.id])


def task(job_id, round_, task_id, params, global_value=None, global_round=-1, attempt=0):
    """A zfed.Task with these fields (global_value set by Client.call for a
    model)."""
    return zp.Task(job_id=job_id, round=round_, task_id=task_id, attempt=attempt,
                   params=params, global_round=global_round, global_value=global_value)


def random_id():
    return os.urandom(zm.ID_BYTES)
