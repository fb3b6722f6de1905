#!/usr/bin/python3
"""The Fashion-MNIST 2NN, federated: each site a Python worker training in
PyTorch (fmnist_site.py), the C controller aggregating, on one machine.

    examples/torch/run.py [--build build] [--sites 5] [--rounds 10] ...

1. zfed-split writes each site's shard (an IID split of the training set);
2. a zfed-broker on loopback, and one zfed-py-worker per site:
   zfed-py-worker fmnist_site:train --connect EP --site site-K;
3. zfed-controller --service mlp --split shards/split.json --eval-data DATA
   runs the rounds: round r's task of site K goes to mlp@site-K, the
   controller aggregates (fedavg, exact) and scores every round's model
   on the test set, and keeps the best as best_model.safetensors;
4. best_model.safetensors is loaded into a torch nn.Module, scored on the
   same test set here, and compared with what the controller reported.

Exit status 0 when the job completed and both accuracies agree."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
DATA = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist

try:
    import zfed  # installed (python/README.md)
except ImportError:  # or this source tree's
    sys.path.insert(0, os.path.join(SOURCE, "python"))
    import zfed
from zfed import safetensors  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.environ.get("ZFED_BUILD_DIR",
                                                          os.path.join(SOURCE, "build")),
                        help="folder of zfed-broker, zfed-controller and zfed-split "
                             "(default: build/ of this tree; else found on PATH)")
    parser.add_argument("--data", default=DATA, help="Fashion-MNIST's folder (default %s)" % DATA)
    parser.add_argument("--eval-data", help="the test set's folder (default: --data)")
    parser.add_argument("--sites", type=int, default=5, help="sites (default 5)")
    parser.add_argument("--samples", type=int, default=0,
                        help="training images split over the sites (default all 60,000)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="the split's and the model's seed")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch threads per worker (default 1)")
    parser.add_argument("--workdir", help="where shards, logs and the job go (default: a "
                                          "temporary folder, removed unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", help="write the outcome to this file as JSON")
    return parser.parse_args()


def program(build, name):
    path = os.path.join(build, name)
    return path if os.access(path, os.X_OK) else (shutil.which(name) or path)


def wait_for_services(endpoint, services, timeout=60):
    """Until the broker knows a worker of every service (mmi.service)."""
    import zmq
    context = zmq.Context.instance()
    deadline = time.monotonic() + timeout
    for service in services:
        while True:
            socket = context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            socket.connect(endpoint)
            socket.send_multipart([b"", b"MDPC01", b"mmi.service", service.encode()])
            answer = socket.recv_multipart()[-1] if socket.poll(2000) else b""
            socket.close()
            if answer == b"200":
                break
            if time.monotonic() > deadline:
                raise SystemExit("run.py: no worker for %s after %d s" % (service, timeout))
            time.sleep(0.1)


def reported_accuracy(folder, best):
    """The test accuracy the controller scored the best round's model at:
    the best round's record's test_accuracy (WORKDIR.md)."""
    with open(os.path.join(folder, "rounds", "round-%06d.json" % best["round"])) as handle:
        record = json.load(handle)
    if "test_accuracy" not in record:
        raise SystemExit("run.py: round %d's record has no test_accuracy" % best["round"])
    return record["test_accuracy"]


def main():
    args = parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="zfed-torch-")
    os.makedirs(work, exist_ok=True)
    sites = ["site-%d" % k for k in range(1, args.sites + 1)]
    processes = []
    try:
        # 1. The shards.
        shards = os.path.join(work, "shards")
        split = [program(args.build, "zfed-split"), "--data", args.data, "--sites",
                 ",".join(sites), "--seed", str(args.seed), "-q", shards]
        if args.samples:
            split[1:1] = ["--samples", str(args.samples)]
        subprocess.run(split, check=True)
        # 2. The broker and one Python worker per site.
        endpoint_file = os.path.join(work, "broker.endpoint")
        logs = os.path.join(work, "logs")
        os.makedirs(logs, exist_ok=True)

        def start(name, argv, env=None):
            log = open(os.path.join(logs, name + ".log"), "w")
            processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                              env=env))
            log.close()

        start("broker", [program(args.build, "zfed-broker"), "--bind", "tcp://127.0.0.1:*",
                         "--endpoint-file", endpoint_file])
        deadline = time.monotonic() + 10
        while not os.path.exists(endpoint_file) and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(endpoint_file) as handle:
            endpoint = handle.readline().strip()
        env = dict(os.environ, FMNIST_SHARDS=shards, OMP_NUM_THREADS=str(args.torch_threads),
                   PYTHONPATH=os.pathsep.join(
                       [HERE, os.path.dirname(os.path.dirname(zfed.__file__))] +
                       ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
        for site in sites:
            # zfed-py-worker fmnist_site:train --site SITE, as python3 -m zfed.worker.
            start(site, [sys.executable, "-m", "zfed.worker", "fmnist_site:train", "--connect",
                         endpoint, "--site", site, "--name", "torch-" + site], env=env)
        wait_for_services(endpoint, ["mlp@" + site for site in sites])
        # 3. The job, run by the C controller.
        job_id = "fmnist-torch"
        params = {"lr": args.lr, "batch_size": args.batch_size,
                  "local_epochs": args.local_epochs, "seed": args.seed}
        controller = [program(args.build, "zfed-controller"), "--connect", endpoint,
                      "--workdir", os.path.join(work, "jobs"), "--job-id", job_id,
                      "--service", "mlp", "--split", os.path.join(shards, "split.json"),
                      "--eval-data", args.eval_data or args.data, "--rounds", str(args.rounds),
                      "--params", json.dumps(params), "--seed", str(args.seed),
                      "--select", "test_accuracy:max", "--round-timeout", "600",
                      "--no-progress"]
        started = time.monotonic()
        job = subprocess.run(controller)
        seconds = time.monotonic() - started
        folder = os.path.join(work, "jobs", job_id)
        if job.returncode != 0:
            raise SystemExit("run.py: zfed-controller exited %d (logs in %s)"
                             % (job.returncode, work))
        with open(os.path.join(folder, "best.json")) as handle:
            best = json.load(handle)
        reported = reported_accuracy(folder, best)
        # 4. The best model, back in torch, scored here.
        import torch
        import fmnist_site
        torch.set_num_threads(args.torch_threads)
        with open(os.path.join(folder, "job.json")) as handle:
            hidden = json.load(handle)["params"].get("hidden", [200, 200])
        net = fmnist_site.Net(hidden)
        state = safetensors.load(os.path.join(folder, "best_model.safetensors"))
        net.load_state_dict({name: torch.tensor(state[name]) for name in state})
        images, labels = fmnist_site.read_set(args.eval_data or args.data, "t10k")
        correct, count = fmnist_site.accuracy(net, images, labels)
        outcome = {"job_dir": folder, "sites": sites, "rounds": args.rounds,
                   "best_round": best["round"], "controller_accuracy": reported,
                   "torch_accuracy": correct / count, "test_images": count,
                   "seconds": round(seconds, 2)}
        print("best round %d: test accuracy %.4f (controller) %.4f (torch, %d images); "
              "%d rounds in %.1f s" % (best["round"], reported, correct / count, count,
                                      args.rounds, seconds))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(outcome, handle, indent=2)
        return 0 if correct / count == reported else 1
    finally:
        for process in reversed(processes):  # the workers, then the broker
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        if not args.workdir and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            print("run.py: kept %s" % work)


if __name__ == "__main__":
    sys.exit(main())
