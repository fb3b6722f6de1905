"""zfed-worker, zfed-broker and zfed-controller answer libzmq's getpid()
calls without a system call (core/zfed_pid.h).

libzmq asks getpid() on every signal between its threads (to notice a
fork): nine system calls a task in a worker on the strict path.  The
programs define getpid() as zfed_pid(), which asks the kernel once.
Shown here with strace attached to a running broker and worker, and
around the controller, over a real job: each makes at most a couple of
getpid system calls however many tasks it serves, where a Python loop
calling os.getpid() through libc shows every call (so the trace does
see them).  Skipped where strace is missing or cannot trace.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import unittest

from zfedtest import Cluster, main, wait_for

STRACE = shutil.which("strace")
TASKS = 200
#  Attached after start-up, when the answer is known: none is expected;
#  libc or czmq asking once through their own aliases would be no harm.
AT_MOST = 2


def strace_works():
    if not STRACE:
        return False
    return subprocess.run([STRACE, "-o", os.devnull, "true"], capture_output=True).returncode == 0


def getpid_calls(path):
    with open(path) as handle:
        return sum(1 for line in handle if re.search(r"\bgetpid\(\)", line))


@unittest.skipIf(not strace_works(), "strace is missing or cannot trace here")
class Getpid(unittest.TestCase):

    @staticmethod
    def traced_env():
        """LeakSanitizer cannot run under ptrace (a sanitizer build's
        programs end with its fatal error there): off for the traced
        controller only; the other tests check for leaks."""
        options = os.environ.get("ASAN_OPTIONS", "")
        return dict(os.environ, ASAN_OPTIONS=(options + ":" if options else "") + "detect_leaks=0")

    def attach(self, process, path):
        """strace on a running program: its getpid system calls from now on."""
        tracer = subprocess.Popen([STRACE, "-f", "-q", "-e", "trace=getpid", "-o", path, "-p",
                                   str(process.pid)], stderr=subprocess.PIPE)
        # Attached once strace has written its output file (it opens it first).
        try:
            wait_for(lambda: os.path.exists(path) or tracer.poll() is not None, 10,
                     what="strace to attach")
        except AssertionError:
            tracer.kill()
            raise
        if tracer.poll() is not None:
            self.skipTest("strace cannot attach here: %s" % tracer.stderr.read().decode()[-200:])
        return tracer

    def test_no_getpid_per_task(self):
        with Cluster("getpid") as cluster:
            traces = os.path.join(cluster.dir, "strace")
            os.makedirs(traces)
            broker = cluster.start_broker(endpoint=cluster.private_endpoint())
            worker = cluster.start_worker("--threads", "0", "--credit", "1")
            cluster.wait_workers(1, timeout=30)
            paths = {name: os.path.join(traces, name + ".trace")
                     for name in ("broker", "worker", "controller")}
            tracers = [self.attach(broker, paths["broker"]), self.attach(worker, paths["worker"])]
            try:
                result = subprocess.run(
                    [STRACE, "-f", "-q", "-e", "trace=getpid", "-o", paths["controller"]] +
                    cluster.controller_argv("--job-id", "getpid", "--rounds", "1", "--tasks",
                                            str(TASKS), "--level", "10", "-q"),
                    capture_output=True, timeout=120, env=self.traced_env())
            finally:
                for tracer in tracers:
                    tracer.send_signal(signal.SIGINT)  # detaches; the programs run on
                for tracer in tracers:
                    tracer.wait(10)
            # libc's getpid, traced the same way: every call is seen.
            paths["libc"] = os.path.join(traces, "libc.trace")
            subprocess.run([STRACE, "-f", "-q", "-e", "trace=getpid", "-o", paths["libc"],
                            sys.executable, "-c",
                            "import os\nfor _ in range(%d): os.getpid()" % TASKS], check=True)
            self.assertEqual(result.returncode, 0, result.stderr[-2000:])
            self.assertEqual(cluster.summary("getpid")["status"], "completed")
            counts = {name: getpid_calls(path) for name, path in paths.items()}
            self.assertGreaterEqual(counts["libc"], TASKS, counts)
            for name in ("broker", "worker", "controller"):
                self.assertLessEqual(counts[name], AT_MOST, counts)


if __name__ == "__main__":
    main()
