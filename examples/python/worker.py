#!/usr/bin/python3
"""zfed worker for the fib service, in Python (MDP/0.1 worker, zfed protocol v1).

    /usr/bin/python3 examples/python/worker.py --connect tcp://127.0.0.1:5555

Registers with READY, heartbeats, answers every REQUEST with exactly one
REPLY (a zfed.result, or a zfed.error: 400 for unreadable tasks, 422 for
refused params or global value, 500 on failure; a zfed.batch of such
replies, item by item, for a zfed.batch of tasks), and registers again on
a new socket after DISCONNECT or broker silence, with back-off
(PROTOCOL.md sections 2-4, 8.4, 14, 16).  SIGINT/SIGTERM: DISCONNECT and exit 0.
Exit status: 0 on a clean stop, 2 on bad usage.
"""

import argparse
import os
import signal
import socket
import sys
import time

import zmq

# The zfed package of this source tree (python/), else an installed one.
_PACKAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python")
if os.path.isdir(os.path.join(_PACKAGE, "zfed")):
    sys.path.insert(0, os.path.abspath(_PACKAGE))
import zfed.protocol as zp  # noqa: E402


class Stop(Exception):
    pass


def _on_signal(signum, frame):
    raise Stop()


def log(args, level, text):
    if level == "debug" and not args.verbose:
        return
    if level == "info" and args.quiet:
        return
    sys.stderr.write("%s worker %s [%s] %s\n" % (time.strftime("%H:%M:%S"), args.name, level, text))
    sys.stderr.flush()


def pyramid(level, out):
    """The --pyramid display (its layout is not part of the protocol): row k
    holds F(0)..F(k-1), centred; levels above 20 print the last row only."""
    terms = [str(t) for t in zp.fib_terms(min(level, zp.FIB_SEQUENCE_MAX))]
    rows = [" ".join(terms[:k]) for k in range(1, len(terms) + 1)]
    if level > 20:
        rows = rows[-1:] if level <= zp.FIB_SEQUENCE_MAX else ["(level %d: %d terms)" % (level, level)]
    width = max(len(r) for r in rows)
    for r in rows:
        out.write(r.center(width).rstrip() + "\n")
    out.flush()


class Worker:
    def __init__(self, args):
        self.args = args
        self.ctx = zmq.Context.instance()
        self.sock = None
        self.interval = args.heartbeat_ms / 1000.0
        self.expiry = self.interval * args.liveness
        self.backoff_ms = zp.BACKOFF_INITIAL_MS
        self.served = 0
        self.registered_at = None

    # -- socket life cycle ------------------------------------------------
    def open(self):
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.args.connect)
        self.send(zp.worker_ready(self.args.service, self.args.credit))
        self.last_heard = time.monotonic()
        log(self.args, "info", "READY for %s on %s (credit %d)" % (self.args.service, self.args.connect,
                                                                   self.args.credit))

    def close(self):
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None

    def send(self, frames):
        self.sock.send_multipart(frames)
        self.last_sent = time.monotonic()

    def wait_backoff(self):
        log(self.args, "info", "registering again in %d ms" % self.backoff_ms)
        time.sleep(self.backoff_ms / 1000.0)
        self.backoff_ms = min(self.backoff_ms * 2, zp.BACKOFF_MAX_MS)

    # -- main loop --------------------------------------------------------
    def run(self):
        self.open()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while True:
            now = time.monotonic()
            next_beat = self.last_sent + self.interval
            deadline = self.last_heard + self.expiry
            timeout = max(0.0, min(next_beat, deadline) - now)
            events = dict(poller.poll(timeout * 1000))
            if self.sock in events:
                # drain what is there, replying as we go
                while True:
                    try:
                        frames = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.last_heard = time.monotonic()
                    if self.handle(frames) == "reconnect":
                        poller.unregister(self.sock)
                        self.close()
                        self.wait_backoff()
                        self.open()
                        poller.register(self.sock, zmq.POLLIN)
                        break
            now = time.monotonic()
            if now - self.last_heard >= self.expiry:
                log(self.args, "warn", "broker silent for %d ms: reconnecting" % ((now - self.last_heard) * 1000))
                poller.unregister(self.sock)
                self.close()  # sending nothing
                self.wait_backoff()
                self.open()
                poller.register(self.sock, zmq.POLLIN)
                continue
            if now - self.last_sent >= self.interval:
                self.send(zp.worker_heartbeat())

    def stop(self):
        if self.sock is not None:
            try:
                self.sock.send_multipart(zp.worker_disconnect(), zmq.NOBLOCK)
                self.sock.setsockopt(zmq.LINGER, 500)
            except zmq.ZMQError:
                pass
            self.sock.close()
            self.sock = None
        log(self.args, "info", "stopped after %d requests" % self.served)

    def handle(self, frames):
        try:
            cmd, address, bodies = zp.parse_broker_message(frames)
        except zp.MdpError as failure:
            log(self.args, "warn", "dropped a malformed message: %s" % failure)
            return None
        if cmd == zp.DISCONNECT:
            log(self.args, "warn", "DISCONNECT from the broker")
            return "reconnect"
        # a REQUEST or HEARTBEAT after READY resets the back-off
        self.backoff_ms = zp.BACKOFF_INITIAL_MS
        if cmd == zp.HEARTBEAT:
            return None
        reply = self.answer(bodies)
        self.send(zp.worker_reply(address, reply))
        self.served += 1
        return None

    # -- request -> reply body ---------------------------------------------
    def error(self, ids, code, field, message):
        job_id, rnd, task_id, attempt = ids or ("", 0, 0, 0)
        return zp.Error(job_id=job_id, round=rnd, task_id=task_id, attempt=attempt,
                        worker=self.args.name, code=code, field=field,
                        message=zp.clean_text(message)).encode()

    def answer(self, bodies):
        if len(bodies) != 1:
            log(self.args, "warn", "request with %d body frames" % len(bodies))
            return self.error(None, zp.E_MALFORMED, "", "a zfed task body is exactly one frame")
        # Recognised on the raw bytes, before any check (section 8.4), as
        # the C worker does: a damaged batch gets one "bad batch" error.
        if zp.is_batch(bodies[0]):
            return self.answer_batch(bodies[0])
        return self.answer_task(bodies[0])

    def answer_batch(self, body):
        """Section 16: a batch of as many replies, item i answering item i as
        if it had come alone; an unreadable batch gets one plain error."""
        try:
            items = zp.decode_batch(body)
        except zp.DecodeError as failure:
            log(self.args, "warn", "bad batch: %s" % failure)
            return self.error(None, zp.E_MALFORMED, "", "bad batch: %s" % failure)
        replies = [self.answer_task(item) for item in items]
        # Results that fit alone may not fit together: from the last item
        # back, a result gives way to error 413 until the batch fits, so
        # every task still gets an answer (PROTOCOL.md 16).
        given_up = 0
        for index in reversed(range(len(replies))):
            if zp.batch_size(replies) <= zp.BODY_MAX:
                break
            if zp.decode(replies[index]).KIND != zp.KIND_RESULT:
                continue
            replies[index] = self.error(zp.decode(items[index]).ids, zp.E_TOO_LARGE, "",
                                        "the batch's results do not fit in a %d-byte body; "
                                        "send this task alone" % zp.BODY_MAX)
            given_up += 1
        if given_up:
            log(self.args, "warn", "a batch's results outgrew one body; %d task(s) answered 413 "
                "to be sent alone" % given_up)
        return zp.encode_batch(replies)

    def answer_task(self, body):
        try:
            msg = zp.decode(body)
        except zp.DecodeError as failure:
            log(self.args, "warn", "bad task: %s" % failure)
            return self.error(failure.ids, zp.E_MALFORMED, "", "bad task: %s" % failure)
        if msg.KIND != zp.KIND_TASK:
            return self.error(msg.ids, zp.E_MALFORMED, "", "expected zfed.task, got %s" % msg.KIND)
        refusal = zp.fib_check_task(msg.params, msg.global_value)
        if refusal is not None:
            code, field, message = refusal
            log(self.args, "info", "task %s/%d/%d refused: %s" % (msg.job_id, msg.round, msg.task_id, message))
            return self.error(msg.ids, code, field, message)
        level = msg.params[zp.FIB_PARAM]
        started = time.perf_counter_ns()
        try:
            outputs = zp.fib_outputs(level)
            if self.args.delay_ms:
                time.sleep(self.args.delay_ms / 1000.0)
            compute_us = (time.perf_counter_ns() - started) // 1000
            body = zp.Result(job_id=msg.job_id, round=msg.round, task_id=msg.task_id,
                             attempt=msg.attempt, worker=self.args.name,
                             compute_us=compute_us, outputs=outputs).encode()
        except MemoryError:
            return self.error(msg.ids, zp.E_INTERNAL, "", "out of memory computing level %d" % level)
        except Exception as failure:  # the service failed on a valid task
            return self.error(msg.ids, zp.E_INTERNAL, "", "fib failed: %s" % failure)
        log(self.args, "debug", "task %s/%d/%d attempt %d level %d -> sum of %d digits"
            % (msg.job_id, msg.round, msg.task_id, msg.attempt, level, len(outputs["sum"])))
        if self.args.pyramid:
            pyramid(level, sys.stdout)
        return body


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="worker.py", description="Serve zfed fib tasks from a Majordomo (MDP/0.1) broker.",
        epilog="Exit status: 0 on a clean stop (SIGINT/SIGTERM), 2 on bad usage.")
    parser.add_argument("--connect", default="tcp://127.0.0.1:5555", metavar="EP",
                        help="broker endpoint (default %(default)s)")
    parser.add_argument("--name", default="%s-%d" % (socket.gethostname(), os.getpid()),
                        help="worker name in results: 1-128 printable ASCII, no space (default HOST-PID)")
    parser.add_argument("--service", default=zp.FIB_SERVICE, help=argparse.SUPPRESS)
    parser.add_argument("--heartbeat-ms", type=int, default=zp.HEARTBEAT_MS, metavar="N",
                        help="heartbeat interval, must match the broker's (default %(default)s)")
    parser.add_argument("--liveness", type=int, default=zp.LIVENESS, metavar="N",
                        help="silent intervals before the broker counts as gone (default %(default)s)")
    parser.add_argument("--credit", type=int, default=1, metavar="N",
                        help="requests the broker may give us at once, 1-256 (default 1 = plain MDP)")
    parser.add_argument("--pyramid", action="store_true", help="print each task's fib pyramid on stdout")
    parser.add_argument("--delay-ms", type=int, default=0, metavar="N",
                        help="extra time per task, to play a straggler (default 0)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings only")
    args = parser.parse_args(argv)
    if not zp.is_token(args.name, zp.WORKER_MAX):
        parser.error("--name must be 1-128 bytes of printable ASCII without space")
    if args.service != zp.FIB_SERVICE:
        parser.error("only the fib service is implemented")
    if args.heartbeat_ms < 1:
        parser.error("--heartbeat-ms must be at least 1")
    if args.liveness < 1:
        parser.error("--liveness must be at least 1")
    if not 1 <= args.credit <= zp.CREDIT_MAX:
        parser.error("--credit must be from 1 to 256")
    if args.delay_ms < 0:
        parser.error("--delay-ms must be >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    worker = Worker(args)
    try:
        worker.run()
    except Stop:
        pass
    finally:
        worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
