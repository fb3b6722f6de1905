"""Run zfed jobs from Python (zfed.controller): a front-end over the C
controller, zfed-controller, which keeps the one implementation of rounds,
quorum, exact aggregation, records and resume.

    import zfed

    def each_round(record, model):       # model: Model (numpy views) or None
        print(record["round"], record["aggregate"])

    result = zfed.run_job(service="vecavg", rounds=5, tasks=3,
                          task_params=[...], connect="tcp://127.0.0.1:5555",
                          on_round=each_round)
    result.status, result.summary["best_round"], result.job_dir

Job(...) takes the keys of a job file (schemas/JOB.md) as keyword arguments
and writes them to a job file; run() starts `zfed-controller --job FILE`
and calls on_round(record, model) once per closed round, in round order,
with the round record (WORKDIR.md section 3, a dict) and, for a model
service, the round's aggregate memory-mapped from
models/round-NNNNNN.safetensors (None when the round has none).

The rounds are followed in the work folder: a round record appears
atomically (the controller renames it into place) before the next round
starts, so polling rounds/ sees every round exactly once, whole.  The
source of rounds is one class (FolderRounds) so that a machine-readable
event stream from the controller can replace the poll without touching
the callbacks.

zfed-controller is found from the `controller` argument, else
$ZFED_BUILD_DIR/zfed-controller, else on PATH.
"""

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from . import protocol as zp

CONTROLLER = "zfed-controller"
POLL_S = 0.05
EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
STDERR_TAIL = 50
# The keys of a job file (JOB.md section 2), in the order written; others
# follow in the order given.
JOB_KEYS = ("job_id", "service", "connect", "workdir", "rounds", "tasks", "params",
            "task_params", "round_params", "quorum", "round_timeout", "grace", "task_timeout",
            "retries", "batch", "window", "aggregate", "trim", "select", "curve_cert",
            "server_key")
DEFAULT_WORKDIR = "/tmp/zfed/jobs"


class JobError(Exception):
    """The controller refused the job (bad settings: exit 2) or could not
    be started; str() is its message."""


def find_controller(path=None):
    """The zfed-controller program: path, $ZFED_BUILD_DIR, then PATH."""
    if path:
        if not os.access(path, os.X_OK):
            raise JobError("%s is not an executable program" % path)
        return path
    build = os.environ.get("ZFED_BUILD_DIR")
    if build and os.access(os.path.join(build, CONTROLLER), os.X_OK):
        return os.path.join(build, CONTROLLER)
    found = shutil.which(CONTROLLER)
    if not found:
        raise JobError("cannot find %s: give controller=PATH, set ZFED_BUILD_DIR, or put it "
                       "on PATH" % CONTROLLER)
    return found


def new_job_id():
    """job-YYYYMMDD-HHMMSS-XXXX (UTC), as the C controller names jobs."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return "job-%s-%s" % (now.strftime("%Y%m%d-%H%M%S"), os.urandom(2).hex())


def round_record_path(job_dir, number):
    return os.path.join(job_dir, "rounds", "round-%06d.json" % number)


def round_model_path(job_dir, number):
    return os.path.join(job_dir, "models", "round-%06d.safetensors" % number)


def load_round_model(job_dir, number):
    """The round's aggregate model, memory-mapped, or None when the round
    wrote none (a value service)."""
    path = round_model_path(job_dir, number)
    if not os.path.exists(path):
        return None
    from . import safetensors
    return safetensors.load(path)


class FolderRounds:
    """Round records as they appear in a job's work folder.

    poll() returns the records of the rounds that closed since the last
    call, in order: round N's record is read only once round N-1's was, so
    a gap never skips a round.  Records appear whole (written to NAME.tmp
    and renamed), so a file that exists is complete."""

    def __init__(self, job_dir, first=0):
        self.job_dir = job_dir
        self.next = first

    def poll(self):
        records = []
        while True:
            path = round_record_path(self.job_dir, self.next)
            try:
                with open(path, encoding="utf-8") as handle:
                    record = json.load(handle)
            except FileNotFoundError:
                return records
            records.append(record)
            self.next += 1


class JobResult:
    """What a run left: status ("completed", "failed", "interrupted"),
    the controller's exit code, summary.json as a dict (None when the
    controller wrote none), and the paths."""

    def __init__(self, job_id, returncode, job_dir, job_file, summary, stderr):
        self.job_id = job_id
        self.returncode = returncode
        self.job_dir = job_dir
        self.job_file = job_file
        self.summary = summary
        self.stderr = stderr

    @property
    def status(self):
        if self.summary is not None:
            return self.summary.get("status")
        return {EXIT_COMPLETED: "completed", EXIT_FAILED: "failed",
                EXIT_INTERRUPTED: "interrupted"}.get(self.returncode, "failed")

    @property
    def ok(self):
        return self.returncode == EXIT_COMPLETED

    @property
    def error(self):
        return (self.summary or {}).get("error")

    @property
    def rounds_dir(self):
        return os.path.join(self.job_dir, "rounds")

    def record(self, number):
        with open(round_record_path(self.job_dir, number), encoding="utf-8") as handle:
            return json.load(handle)

    def model(self, number):
        return load_round_model(self.job_dir, number)

    def __repr__(self):
        return "JobResult(%s: %s, exit %d, %s)" % (self.job_id, self.status, self.returncode,
                                                   self.job_dir)


class Job:
    """A job for zfed-controller: settings as in a job file (JOB.md).

    on_round(record, model) is called for every closed round; an exception
    it raises interrupts the controller (it writes its summary as
    interrupted) and is raised again from run()."""

    def __init__(self, on_round=None, controller=None, job_file=None, stdout=None,
                 stderr=None, extra_args=(), poll_s=POLL_S, **settings):
        # Keys are checked by the controller, which names a bad one (exit 2,
        # JobError), so keys it learns later need nothing here.
        self.settings = {k: v for k, v in settings.items() if v is not None}
        self.settings.setdefault("job_id", new_job_id())
        if not zp.is_job_id(self.settings["job_id"]):
            raise JobError("job_id: 1-64 characters of A-Z a-z 0-9 . _ - not starting with '.'")
        self.settings.setdefault("workdir", DEFAULT_WORKDIR)
        self.on_round = on_round
        self.controller = controller
        self.job_file = job_file
        self.stdout = stdout
        self.stderr = stderr
        self.extra_args = list(extra_args)
        self.poll_s = poll_s
        self.process = None

    @property
    def job_id(self):
        return self.settings["job_id"]

    @property
    def job_dir(self):
        return os.path.join(self.settings["workdir"], self.job_id)

    def write(self, path=None):
        """Writes the job file (JSON, keys in JOB.md order); returns its path."""
        path = path or self.job_file
        if path is None:
            folder = tempfile.mkdtemp(prefix="zfed-job-")
            path = os.path.join(folder, "%s.json" % self.job_id)
        ordered = {k: self.settings[k] for k in JOB_KEYS if k in self.settings}
        ordered.update((k, v) for k, v in self.settings.items() if k not in ordered)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(ordered, handle, indent=2)
            handle.write("\n")
        self.job_file = path
        return path

    def argv(self):
        return [find_controller(self.controller), "--job", self.job_file, "--no-progress"] + \
            self.extra_args

    def run(self):
        """Runs the job to its end; returns a JobResult (raises JobError
        when the controller refuses the settings)."""
        temporary = self.job_file is None
        if temporary or not os.path.exists(self.job_file):
            self.write()
        try:
            result = self._run(self.argv(), FolderRounds(self.job_dir))
        finally:
            if temporary:  # the job folder's job.json records what ran
                shutil.rmtree(os.path.dirname(self.job_file), ignore_errors=True)
                self.job_file = os.path.join(self.job_dir, "job.json")
        result.job_file = self.job_file
        return result

    def _run(self, argv, rounds):
        tail = []
        try:
            self.process = subprocess.Popen(argv, stdout=self.stdout or subprocess.DEVNULL,
                                            stderr=subprocess.PIPE)
        except OSError as failure:
            raise JobError("cannot start %s: %s" % (argv[0], failure))
        reader = threading.Thread(target=self._tee, args=(self.process.stderr, tail),
                                  daemon=True)
        reader.start()
        failure = None
        try:
            while True:
                done = self.process.poll() is not None
                for record in rounds.poll():  # after the exit too: the last rounds
                    if self.on_round is not None and failure is None:
                        try:
                            model = load_round_model(self.job_dir, record["round"])
                            self.on_round(record, model)
                        except BaseException as raised:
                            failure = raised
                            self._interrupt()
                if done:
                    break
                time.sleep(self.poll_s)
        except BaseException as raised:  # KeyboardInterrupt while waiting
            failure = failure or raised
            self._interrupt()
            self.process.wait()
        reader.join(5)
        returncode = self.process.returncode
        stderr = "".join(tail)
        if returncode == EXIT_USAGE and failure is None:
            raise JobError(stderr.strip() or "%s exited with status 2" % argv[0])
        if failure is not None:
            raise failure
        return JobResult(self.job_id, returncode, self.job_dir,
                         os.path.join(self.job_dir, "job.json"), self._summary(), stderr)

    def _interrupt(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # it writes its summary, exit 130

    def _tee(self, pipe, tail):
        out = self.stderr if self.stderr is not None else sys.stderr
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace")
            tail.append(line)
            del tail[:-STDERR_TAIL]
            if out is not False:
                out.write(line)
                out.flush()
        pipe.close()

    def _summary(self):
        try:
            with open(os.path.join(self.job_dir, "summary.json"), encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None


def run_job(on_round=None, **settings):
    """Job(**settings, on_round=...).run()."""
    return Job(on_round=on_round, **settings).run()


def resume_job(job_id, workdir=DEFAULT_WORKDIR, on_round=None, controller=None, connect=None,
               stderr=None, extra_args=()):
    """zfed-controller --resume JOB_ID: on_round is called for the rounds
    that close from now on (those recorded before are in the folder)."""
    job = Job(on_round=on_round, controller=controller, stderr=stderr, job_id=job_id,
              workdir=workdir)
    argv = [find_controller(controller), "--resume", job_id, "--workdir", workdir,
            "--no-progress"]
    if connect:
        argv += ["--connect", connect]
    rounds = FolderRounds(job.job_dir)
    rounds.poll()  # what was there before the resume
    return job._run(argv + list(extra_args), rounds)
