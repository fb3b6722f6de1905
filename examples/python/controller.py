#!/usr/bin/python3
"""zfed controller in Python: runs a fib job through a zfed broker (MDP client).

    /usr/bin/python3 examples/python/controller.py --connect tcp://127.0.0.1:5555 \\
        --rounds 3 --tasks 5 --level 10 --out summary.json

Each round sends all its tasks at once, collects results until the round
closes (PROTOCOL.md section 15), aggregates the accepted results exactly and
hands the aggregate to the next round as its global state (section 10).
With --batch N the first send of the tasks goes N per request as zfed.batch
bodies (section 8.4); resends always go one task at a time.
Exit status: 0 job completed, 1 job failed (quorum not met / unreachable),
2 bad usage, 130 interrupted.
"""

import argparse
import json
import math
import os
import random
import signal
import string
import sys
import time
from fractions import Fraction

import zmq

# The zfed package of this source tree (python/), else an installed one.
_PACKAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python")
if os.path.isdir(os.path.join(_PACKAGE, "zfed")):
    sys.path.insert(0, os.path.abspath(_PACKAGE))
import zfed.protocol as zp  # noqa: E402

OPEN, ACCEPTED, FAILED = "open", "accepted", "failed"


def abbreviate(number, keep=12):
    """Long numbers shortened for progress lines (the JSON keeps them whole)."""
    whole = number.split(".")[0].lstrip("-")
    if len(whole) <= 3 * keep:
        return number
    return "%s...%s (%d digits)" % (number[:keep], whole[-keep:], len(whole))


class Interrupted(Exception):
    pass


def _on_signal(signum, frame):
    raise Interrupted()


class TaskState:
    __slots__ = ("task_id", "level", "sends", "last_send", "state", "result", "error", "batched")

    def __init__(self, task_id, level):
        self.task_id = task_id
        self.level = level
        self.sends = 0
        self.last_send = 0.0
        self.state = OPEN
        self.result = None
        self.error = None
        self.batched = False  # newest attempt travelled in a zfed.batch


class Controller:
    def __init__(self, args):
        self.args = args
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.connect(args.connect)
        self.rounds = []          # summary entries, one per started round
        self.counters = {"other_job": 0, "unmatched_errors": 0, "dropped_frames": 0,
                         "requests": 0}

    def log(self, level, text):
        if level == "debug" and not self.args.verbose:
            return
        if level == "info" and self.args.quiet:
            return
        sys.stderr.write("%s controller [%s] %s\n" % (time.strftime("%H:%M:%S"), level, text))

    def progress(self, text):
        if not self.args.no_progress:
            print(text, flush=True)

    # -- sending -----------------------------------------------------------
    def task_body(self, rnd, t, global_round, global_value):
        return zp.Task(job_id=self.args.job_id, round=rnd, task_id=t.task_id, attempt=t.sends,
                       params=zp.fib_params(t.level), global_round=global_round,
                       global_value=global_value).encode()

    def send(self, rnd, t, global_round, global_value):
        """One task alone: first sends without --batch, and every resend."""
        self.send_group(rnd, [t], global_round, global_value)

    def send_group(self, rnd, group, global_round, global_value):
        """Tasks in one request: a plain zfed.task for one, a zfed.batch for
        several (section 8.4).  A group too big for one 4 MiB body is split
        in halves down to single tasks (section 15.1); only a single task
        over the limit raises zp.EncodeError."""
        bodies = [self.task_body(rnd, t, global_round, global_value) for t in group]
        if len(bodies) > 1 and zp.batch_size(bodies) > zp.BODY_MAX:
            half = len(group) // 2
            self.send_group(rnd, group[:half], global_round, global_value)
            self.send_group(rnd, group[half:], global_round, global_value)
            return
        body = bodies[0] if len(bodies) == 1 else zp.encode_batch(bodies)
        self.sock.send_multipart(zp.client_request(self.args.service, body))
        self.counters["requests"] += 1
        now = time.monotonic()
        for t in group:
            t.sends += 1
            t.last_send = now
            t.batched = len(group) > 1

    # -- one round ----------------------------------------------------------
    def run_round(self, rnd, global_round, global_value):
        args = self.args
        tasks = [TaskState(i, args.level_list[i]) for i in range(args.tasks)]
        entry = {"round": rnd, "global": [global_round, global_value], "status": "running",
                 "results": [], "aggregate": None, "accepted": 0, "failed": 0,
                 "duplicates": 0, "late": 0, "invalid": 0, "errors": 0, "resends": 0}
        self.rounds.append(entry)
        started = time.monotonic()
        deadline = started + args.round_timeout
        outcome = None
        for first in range(0, len(tasks), args.batch):
            group = tasks[first:first + args.batch]
            try:
                self.send_group(rnd, group, global_round, global_value)
            except zp.EncodeError as failure:
                outcome = "cannot build tasks %d to %d (%s)" % (first, first + len(group) - 1,
                                                               failure)
                break
        quorum_at = None
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while outcome is None:
            now = time.monotonic()
            # resend unanswered tasks after task_timeout (section 15, attempts)
            wake = deadline
            for t in tasks:
                if t.state == OPEN and t.sends <= args.retries:
                    due = t.last_send + args.task_timeout
                    if now >= due:
                        self.log("debug", "round %d task %d: no answer, resending (attempt %d)"
                                 % (rnd, t.task_id, t.sends))
                        self.send(rnd, t, global_round, global_value)
                        entry["resends"] += 1
                        due = t.last_send + args.task_timeout
                    wake = min(wake, due)
            if quorum_at is not None:
                wake = min(wake, quorum_at + args.grace)
            timeout_ms = max(0, int(math.ceil((wake - time.monotonic()) * 1000)))
            if poller.poll(timeout_ms):
                while True:
                    try:
                        frames = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.handle(frames, rnd, tasks, entry, global_round, global_value)
            # closing / failing rules (section 15)
            now = time.monotonic()
            accepted = sum(t.state == ACCEPTED for t in tasks)
            failed = sum(t.state == FAILED for t in tasks)
            if accepted >= args.quorum_n and quorum_at is None:
                quorum_at = now
            if accepted == args.tasks:
                outcome = "closed"
            elif accepted >= args.quorum_n and (accepted + failed == args.tasks
                                                 or now >= quorum_at + args.grace):
                outcome = "closed"
            elif args.tasks - failed < args.quorum_n:
                outcome = "quorum unreachable (%d of %d tasks failed, quorum %d)" \
                          % (failed, args.tasks, args.quorum_n)
            elif now >= deadline:
                outcome = "closed" if accepted >= args.quorum_n else \
                    "round deadline (%g s) passed with %d of %d results, quorum %d" \
                    % (args.round_timeout, accepted, args.tasks, args.quorum_n)
        entry["duration_ms"] = int((time.monotonic() - started) * 1000)
        entry["accepted"] = sum(t.state == ACCEPTED for t in tasks)
        entry["failed"] = sum(t.state == FAILED for t in tasks)
        entry["results"] = [{"task": t.task_id, "level": t.level, "sum": t.result.outputs["sum"],
                             "worker": t.result.worker, "attempt": t.result.attempt}
                            for t in tasks if t.state == ACCEPTED]
        entry["task_errors"] = [{"task": t.task_id, "code": t.error.code, "field": t.error.field,
                                 "message": t.error.message, "worker": t.error.worker}
                                for t in tasks if t.state == FAILED and t.error is not None]
        if outcome != "closed":
            entry["status"] = "failed"
            return None, outcome
        # aggregate accepted results in task_id order (value sum, weight terms)
        items = [(int(t.result.outputs["sum"]), t.result.outputs["terms"])
                 for t in tasks if t.state == ACCEPTED]
        value = zp.aggregate(args.aggregate, items, args.trim)
        entry["aggregate"] = zp.fib_global(value)
        entry["status"] = "closed"
        return entry["aggregate"], None

    # -- replies --------------------------------------------------------------
    def handle(self, frames, rnd, tasks, entry, global_round, global_value):
        try:
            _service, body = zp.parse_client_reply(frames)
        except zp.MdpError as failure:
            self.counters["dropped_frames"] += 1
            self.log("warn", "dropped a reply: %s" % failure)
            return
        if not zp.is_batch(body):
            self.handle_body(body, rnd, tasks, entry, global_round, global_value)
            return
        # A batch reply (section 15.2): each item is handled as if it had
        # come alone, matched by its own ids, never by its position.
        try:
            items = zp.decode_batch(body)
        except zp.DecodeError as failure:
            entry["invalid"] += 1
            self.log("warn", "undecodable batch reply: %s" % failure)
            return
        for item in items:
            if zp.is_batch(item):
                entry["invalid"] += 1  # batches do not nest
                self.log("warn", "a batch inside a batch reply refused")
                continue
            self.handle_body(item, rnd, tasks, entry, global_round, global_value)

    def handle_body(self, body, rnd, tasks, entry, global_round, global_value):
        try:
            msg = zp.decode(body)
        except zp.DecodeError as failure:
            entry["invalid"] += 1
            self.log("warn", "undecodable reply: %s" % failure)
            return
        if msg.KIND == zp.KIND_TASK:
            entry["invalid"] += 1
            self.log("warn", "a task came back as a reply")
            return
        if msg.KIND == zp.KIND_ERROR and msg.job_id == "":
            self.counters["unmatched_errors"] += 1
            self.log("warn", "error %d from %s matched to no task: %s" % (msg.code, msg.worker, msg.message))
            return
        if msg.job_id != self.args.job_id:
            self.counters["other_job"] += 1
            return
        if msg.round < rnd:
            self.rounds[msg.round]["late"] += 1
            self.log("debug", "late %s for round %d task %d" % (msg.KIND, msg.round, msg.task_id))
            return
        if msg.round > rnd or msg.task_id >= len(tasks):
            entry["invalid"] += 1
            self.log("warn", "reply for round %d task %d refused" % (msg.round, msg.task_id))
            return
        t = tasks[msg.task_id]
        if msg.KIND == zp.KIND_RESULT:
            reason = zp.fib_check_outputs(msg.outputs, t.level)
            if reason is not None:
                entry["invalid"] += 1
                self.log("warn", "invalid result for task %d from %s: %s" % (t.task_id, msg.worker, reason))
                return
            if t.state == ACCEPTED:
                entry["duplicates"] += 1
                return
            t.state, t.result = ACCEPTED, msg  # also overrides an earlier failure
            self.log("debug", "round %d task %d: result from %s (attempt %d)"
                     % (rnd, t.task_id, msg.worker, msg.attempt))
            return
        # zfed.error
        entry["errors"] += 1
        self.log("info", "round %d task %d: error %d from %s, field '%s': %s"
                 % (rnd, t.task_id, msg.code, msg.worker, msg.field, msg.message))
        if t.state != OPEN or msg.attempt != t.sends - 1:
            return  # only the newest attempt's error acts
        t.error = msg
        # 413 for a task that travelled in a batch: the batch's results did
        # not fit together; the task goes again alone, whatever the retries
        # (alone it cannot get that answer again; section 15.1).
        if (msg.code == zp.E_TOO_LARGE and t.batched) or \
                (zp.is_retryable(msg.code) and t.sends <= self.args.retries):
            self.send(rnd, t, global_round, global_value)
            entry["resends"] += 1
        else:
            t.state = FAILED

    # -- the job ----------------------------------------------------------------
    def run(self):
        args = self.args
        global_round, global_value = -1, zp.FIB_INITIAL_GLOBAL
        reason = None
        for rnd in range(args.rounds):
            aggregate, reason = self.run_round(rnd, global_round, global_value)
            entry = self.rounds[-1]
            if reason is not None:
                self.progress("round %d: FAILED (%s)" % (rnd, reason))
                break
            self.progress("round %d: %d/%d results, aggregate %s (%s)%s"
                          % (rnd, entry["accepted"], args.tasks, abbreviate(aggregate), args.aggregate,
                             "" if not entry["duplicates"] else ", %d duplicates" % entry["duplicates"]))
            global_round, global_value = rnd, aggregate
        return reason

    def summary(self, reason):
        closed = [e for e in self.rounds if e["status"] == "closed"]
        best = None
        for e in closed:  # aggregate:max, earliest round wins ties
            if best is None or zp.parse_decimal(e["aggregate"]) > zp.parse_decimal(best["aggregate"]):
                best = e
        out = {"job_id": self.args.job_id,
               "status": "completed" if reason is None else "failed",
               "service": self.args.service,
               "aggregate_strategy": self.args.aggregate,
               "tasks": self.args.tasks,
               "quorum": self.args.quorum_n,
               "batch": self.args.batch,
               "rounds": self.rounds,
               "best_round": None if best is None else best["round"],
               "counters": self.counters}
        if reason is not None:
            out["reason"] = reason
        return out


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="controller.py",
        description="Run a federated fib job through a zfed broker (Majordomo MDP/0.1).",
        epilog="Exit status: 0 job completed, 1 job failed, 2 bad usage, 130 interrupted.")
    parser.add_argument("--connect", default="tcp://127.0.0.1:5555", metavar="EP",
                        help="broker endpoint (default %(default)s)")
    parser.add_argument("--service", default=zp.FIB_SERVICE, help="service (only fib is understood)")
    parser.add_argument("--rounds", type=int, default=5, metavar="N", help="rounds (default 5)")
    parser.add_argument("--tasks", type=int, default=None, metavar="N",
                        help="tasks per round (default 5, or the number of --levels)")
    parser.add_argument("--level", type=int, default=None, metavar="N",
                        help="fibonacci_level of every task (default 10)")
    parser.add_argument("--levels", default=None, metavar="A,B,...", help="one fibonacci_level per task")
    parser.add_argument("--quorum", default=None, metavar="N|F",
                        help="results needed to close a round: a count, or a fraction of the tasks "
                             "(0 < F <= 1, rounded up); default all tasks")
    parser.add_argument("--round-timeout", type=float, default=30.0, metavar="S",
                        help="seconds before a round without its quorum fails the job (default 30)")
    parser.add_argument("--grace", type=float, default=1.0, metavar="S",
                        help="seconds to wait for more results once the quorum is in (default 1)")
    parser.add_argument("--task-timeout", type=float, default=None, metavar="S",
                        help="seconds before an unanswered task is sent again "
                             "(default round timeout / (retries + 1))")
    parser.add_argument("--retries", type=int, default=1, metavar="N",
                        help="times a task may be sent again, 0-100 (default 1)")
    parser.add_argument("--batch", type=int, default=1, metavar="N",
                        help="tasks per request, 1-1024 (default 1): more sends them N at a time "
                             "as zfed.batch bodies, which the workers must understand")
    parser.add_argument("--aggregate", default="fedavg", choices=zp.AGGREGATES,
                        help="aggregation strategy (default fedavg)")
    parser.add_argument("--trim", default="0.1", metavar="F",
                        help="fraction trimmed from each end by trimmed-mean (default 0.1)")
    parser.add_argument("--job-id", default=None, metavar="ID", help="job id (default job-DATE-TIME-XXXX)")
    parser.add_argument("--out", default=None, metavar="FILE", help="write the JSON summary to FILE")
    parser.add_argument("--no-progress", action="store_true", help="no per-round lines on stdout")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings only on stderr")
    args = parser.parse_args(argv)

    if args.service != zp.FIB_SERVICE:
        parser.error("only the fib service is understood by this controller")
    if not 1 <= args.rounds <= 1000000:
        parser.error("--rounds must be from 1 to 1000000")
    if args.levels is not None and args.level is not None:
        parser.error("--level and --levels are exclusive")
    if args.levels is not None:
        try:
            levels = [int(x) for x in args.levels.split(",")]
        except ValueError:
            parser.error("--levels wants integers separated by commas")
        if args.tasks is None:
            args.tasks = len(levels)
        elif args.tasks != len(levels):
            parser.error("--tasks %d but --levels has %d entries" % (args.tasks, len(levels)))
    else:
        if args.tasks is None:
            args.tasks = 5
        levels = [10 if args.level is None else args.level] * max(args.tasks, 0)
    if not 1 <= args.tasks <= 1000000:
        parser.error("--tasks must be from 1 to 1000000")
    for lv in levels:
        if not zp.FIB_LEVEL_MIN <= lv <= zp.FIB_LEVEL_MAX:
            parser.error("fib levels run from 1 to 100000, got %d" % lv)
    args.level_list = levels
    if args.quorum is None:
        args.quorum_n = args.tasks
    else:
        try:
            if any(c in args.quorum for c in ".eE/"):
                frac = Fraction(args.quorum)
                if not 0 < frac <= 1:
                    raise ValueError
                args.quorum_n = max(1, math.ceil(frac * args.tasks))
            else:
                args.quorum_n = int(args.quorum)
        except (ValueError, ZeroDivisionError):
            parser.error("--quorum wants a count or a fraction in (0, 1]")
        if not 1 <= args.quorum_n <= args.tasks:
            parser.error("--quorum must be from 1 to the number of tasks (%d)" % args.tasks)
    if not 0 <= args.retries <= 100:
        parser.error("--retries must be from 0 to 100")
    if not 1 <= args.batch <= zp.BATCH_MAX:
        parser.error("--batch must be from 1 to %d" % zp.BATCH_MAX)
    if not args.round_timeout > 0:
        parser.error("--round-timeout must be > 0")
    if not args.grace >= 0:
        parser.error("--grace must be >= 0")
    if args.task_timeout is None:
        args.task_timeout = args.round_timeout / (args.retries + 1)
    elif not args.task_timeout > 0:
        parser.error("--task-timeout must be > 0")
    try:
        args.trim = Fraction(args.trim)
        if not 0 <= args.trim < Fraction(1, 2):
            raise ValueError
    except (ValueError, ZeroDivisionError):
        parser.error("--trim must be a fraction from 0 to below 0.5")
    if args.job_id is None:
        args.job_id = "job-%s-%s" % (time.strftime("%Y%m%d-%H%M%S"),
                                     "".join(random.choice(string.ascii_lowercase + string.digits)
                                             for _ in range(4)))
    if not zp.is_job_id(args.job_id):
        parser.error("--job-id must be 1-64 of A-Z a-z 0-9 . _ - and not start with '.'")
    return args


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    controller = Controller(args)
    status = 0
    try:
        reason = controller.run()
    except Interrupted:
        reason, status = "interrupted", 130
    summary = controller.summary(reason)
    if reason is not None and status == 0:
        status = 1
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(summary, handle, indent=2)
            handle.write("\n")
    if reason is None:
        controller.progress("job %s completed: %d rounds, best round %s"
                            % (args.job_id, args.rounds, summary["best_round"]))
    else:
        controller.log("error", "job %s failed: %s" % (args.job_id, reason))
    controller.sock.close(0)
    return status


if __name__ == "__main__":
    sys.exit(main())
