"""The status query (zfed-controller --status, 8/MMI mmi.status) against a
broker with a known load, and the controller's live progress line."""

import json
import os
import pty
import re
import select
import subprocess
import unittest

from zfedtest import MDPC, Cluster, ScriptedWorker, binary, main, task_body, wait_for


class Status(unittest.TestCase):

    def test_status_reports_a_known_load(self):
        with Cluster("status") as cluster:
            cluster.start_broker()
            holders = [ScriptedWorker(cluster, credit=1, name="holder-%d" % i) for i in range(2)]
            cluster.wait_workers(2)
            client = cluster.client()
            for task in range(5):  # 2 go to the holders, 3 wait in the queue
                client.send_multipart([b"", MDPC, b"fib", task_body("load", 0, task, 10)])
            for holder in holders:
                holder.wait_held(1)
            result = subprocess.run([binary("zfed-controller"), "--connect", cluster.endpoint,
                                     "--status", "--json"], capture_output=True, text=True,
                                    timeout=30)
            self.assertEqual(result.returncode, 0, result.stderr)
            status = json.loads(result.stdout)
            self.assertEqual(status["services"]["fib"],
                             {"workers": 2, "idle": 0, "queued": 3, "in_flight": 2})
            self.assertEqual(status["counters"]["requests"], 5)
            self.assertEqual(status["counters"]["dispatched"], 2)
            self.assertEqual(status["workers"], 2)
            holders[0].reply(0, 0, 0)
            wait_for(lambda: cluster.status()["counters"]["replies"] == 1, 10,
                     what="the reply to be counted")
            human = subprocess.run([binary("zfed-controller"), "--connect", cluster.endpoint,
                                    "--status"], capture_output=True, text=True, timeout=30)
            self.assertEqual(human.returncode, 0, human.stderr)
            self.assertRegex(human.stdout, r"\nfib +2 +0 +2 +2\n")  # one queued task moved on
            self.assertIn("requests 5, done 1, failed 0", human.stdout)
            for holder in holders:
                holder.close()

    def test_status_of_an_absent_broker_fails_clearly(self):
        result = subprocess.run([binary("zfed-controller"), "--connect", "tcp://127.0.0.1:9",
                                 "--status"], capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 1)
        self.assertIn("no status from tcp://127.0.0.1:9", result.stderr)


class LiveProgress(unittest.TestCase):

    def test_live_line_on_a_terminal_plain_lines_otherwise(self):
        with Cluster("live") as cluster:
            cluster.start_broker()
            cluster.start_worker("--delay-ms", "150")
            cluster.wait_workers(1)
            argv = cluster.controller_argv("--job-id", "tty", "--rounds", "2", "--tasks", "3")
            leader, follower = pty.openpty()
            process = subprocess.Popen(argv, stdout=follower, stderr=subprocess.DEVNULL)
            os.close(follower)
            output = b""
            while True:
                ready, _, _ = select.select([leader], [], [], 30)
                if not ready:
                    break
                try:
                    chunk = os.read(leader, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            process.wait(30)
            os.close(leader)
            self.assertEqual(process.returncode, 0)
            text = output.decode("utf-8", "replace")
            self.assertIn("\r\x1b[Kround 0 (1/2): ", text)  # the live line, rewritten
            self.assertRegex(text, r"round 1 \(2/2\): 3/3 results")
            # Not a terminal: no control characters at all.
            plain = cluster.run_controller("--job-id", "pipe", "--rounds", "1", "--tasks", "2")
            self.assertEqual(plain.returncode, 0, plain.err)
            self.assertNotIn("\x1b", plain.out)
            self.assertNotIn("\r", plain.out)


if __name__ == "__main__":
    main()
