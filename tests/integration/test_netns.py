"""Workers on their own host (a network namespace) lose their link mid-job.

Two workers run in a network namespace joined to the broker's by a veth
pair, two on the broker's loopback.  Mid-job the veth link goes down: the
broker notices the silent workers, hands their tasks to the others and the
rounds keep closing.  When the link comes back the cut-off workers register
again by themselves.  Needs root (as CI has); skipped otherwise.
"""

import os
import shutil
import subprocess
import unittest

from zfedtest import Cluster, binary, main, wait_for

HEARTBEAT = ["--heartbeat-ms", "100", "--liveness", "3"]
IP = shutil.which("ip")


def ip(*args, check=True):
    return subprocess.run([IP] + list(args), capture_output=True, text=True, check=check)


def netns_available():
    if os.geteuid() != 0 or not IP:
        return False
    probe = "zfprobe%d" % os.getpid()
    if ip("netns", "add", probe, check=False).returncode != 0:
        return False
    ip("netns", "del", probe, check=False)
    return True


@unittest.skipIf(not netns_available(), "needs root and iproute2 network namespaces")
class CutOffHost(unittest.TestCase):

    def setUp(self):
        tag = os.getpid() % 10000
        self.namespace = "zfedw%d" % tag
        self.outside = "zfa%d" % tag
        self.inside = "zfb%d" % tag
        subnet = tag % 250
        self.broker_ip = "10.123.%d.1" % subnet
        self.worker_ip = "10.123.%d.2" % subnet
        ip("netns", "add", self.namespace)
        ip("link", "add", self.outside, "type", "veth", "peer", "name", self.inside)
        ip("link", "set", self.inside, "netns", self.namespace)
        ip("addr", "add", self.broker_ip + "/30", "dev", self.outside)
        ip("link", "set", self.outside, "up")
        ip("-n", self.namespace, "addr", "add", self.worker_ip + "/30", "dev", self.inside)
        ip("-n", self.namespace, "link", "set", self.inside, "up")
        ip("-n", self.namespace, "link", "set", "lo", "up")

    def tearDown(self):
        ip("link", "del", self.outside, check=False)
        ip("netns", "del", self.namespace, check=False)

    def test_cut_off_workers_drop_out_and_rejoin(self):
        with Cluster("netns") as cluster:
            insecure = ["--insecure"] if "--insecure" in subprocess.run(
                [binary("zfed-broker"), "--help"], capture_output=True, text=True).stdout else []
            # Loopback for the controller and near workers; the veth address
            # for the far ones.
            broker = cluster.start_broker(*HEARTBEAT, *insecure,
                                          "--bind", "tcp://%s:*" % self.broker_ip)
            with open(os.path.join(cluster.dir, broker.name + ".endpoint")) as handle:
                far = handle.read().split()[1]
            for index in range(2):
                name = "far-%d" % index
                cluster.start(name, ["ip", "netns", "exec", self.namespace, binary("zfed-worker"),
                                     "--connect", far, "--name", name, "--delay-ms", "150",
                                     *HEARTBEAT])
            cluster.wait_workers(2)
            for _ in range(2):
                cluster.start_worker("--delay-ms", "150", *HEARTBEAT)
            cluster.wait_workers(4)

            controller = cluster.start_controller("--job-id", "cut", "--rounds", "12",
                                                  "--tasks", "4", "--quorum", "2",
                                                  "--grace", "0.3", "--retries", "2",
                                                  "--task-timeout", "2", "--round-timeout", "30")
            rounds = os.path.join(cluster.workdir, "cut", "rounds")
            wait_for(lambda: os.path.isdir(rounds) and len(os.listdir(rounds)) >= 2, 30,
                     what="two rounds")
            ip("link", "set", self.outside, "down")
            wait_for(lambda: cluster.status()["services"]["fib"]["workers"] == 2, 10,
                     what="the broker to drop the far workers")
            cut_at = len(os.listdir(rounds))
            wait_for(lambda: len(os.listdir(rounds)) >= cut_at + 2, 30,
                     what="two rounds without the far workers")
            ip("link", "set", self.outside, "up")
            wait_for(lambda: cluster.status()["services"]["fib"]["workers"] == 4, 30,
                     what="the far workers to register again")
            wait_for(lambda: not controller.alive(), 60, what="the job to finish")
            self.assertEqual(controller.proc.returncode, 0, controller.log())
            summary = cluster.summary("cut")
            self.assertEqual(summary["status"], "completed")
            for round_ in summary["rounds"]:
                self.assertGreaterEqual(len(round_["results"]), 2)
                self.assertEqual(round_["aggregate"], "88")
                self.assertEqual(round_["duplicates"], 0)
            counters = cluster.status()["counters"]
            self.assertGreaterEqual(counters["workers_expired"], 2)
            workers = {r["worker"] for round_ in summary["rounds"][-2:]
                       for r in round_["results"]}
            print("\nworkers in the last two rounds: %s" % sorted(workers))


if __name__ == "__main__":
    main()
