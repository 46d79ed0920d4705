"""Benchmark of ``DevServerClient.launch`` beside torchrun started by hand with ``kubectl exec``.

Run: ``.venv/bin/python bench/launch.py [--repeat 3]``

Starts its own local cluster (in a separate process, so the client does not share a GIL with the server) and
the operator, creates a distributed DevServer (worldSize 2, nprocsPerNode 2, gloo), copies the scripts into
both ranks, then for two jobs (``hello.py``: one line per worker; ``train_ddp.py --epochs 3``: the DDP example)
alternates:

* ``launch()``: time for the call to return (every rank started), to the first output line of each rank,
  and to the end of the job (``wait()``);
* by hand: two ``kubectl exec <pod> -- python3 -m torch.distributed.run ...`` processes started at once
  (what a user would type in two terminals), with the same times measured on their output;
* ``devctl launch``: the command a user types (``python -m devservers_cli``), timed from its start, so its
  numbers include devctl's own start-up and the import of the SDK.

The overhead of ``launch()`` is the difference of the medians with the hand-made run. All run the same
torchrun on the same pods; most of a job's time is the import of torch in every process, on a 2-CPU machine
shared by 6 processes.
"""

from __future__ import annotations

import sys

if sys.path and sys.path[0] == __file__.rpartition("/")[0]:
    del sys.path[0]  # bench/operator.py would shadow the standard library's operator module

import argparse
import os
import secrets
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devservers_sdk.client import DevServerClient  # noqa: E402
from devservers_sdk.localcluster.pytest_plugin import wait_established  # noqa: E402

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
NAME = "bench"
FLAVOR = """
apiVersion: devservers.io/v1
kind: DevServerFlavor
metadata: {name: bench-tiny}
spec:
  resources: {requests: {cpu: 250m, memory: 512Mi}}
"""
HELLO = b"""import os, sys
sys.stdout.write("hello from worker %s of node %s\\n" % (os.environ["RANK"], os.environ["GROUP_RANK"]))
"""
JOBS = {"hello.py (1 line per worker)": ["hello.py"], "train_ddp.py --epochs 3": ["train_ddp.py", "--epochs", "3"]}


def kubectl(kubeconfig: str, *args: str, input_text: str | None = None) -> None:
    subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], input=input_text, text=True, check=True,
                   capture_output=True, timeout=120)


def start_cluster(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    kubeconfig = directory / "kubeconfig"
    # The pods' PATH is the cluster's: this interpreter (with torch) first, as an image would have it.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "devservers_sdk.localcluster", "serve", "--kubeconfig",
                                str(kubeconfig), "--state-dir", str(directory / "state")], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not kubeconfig.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the local cluster did not start")
        time.sleep(0.05)
    return process, str(kubeconfig)


def start_operator(kubeconfig: str, log: Path, master_port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT)]),
           "DEVSERVERS_LIVENESS": "", "DEVSERVERS_MASTER_PORT": str(master_port)}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "devservers_operator"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def by_hand(kubeconfig: str, namespace: str, args: list[str]) -> tuple[dict[int, float], float]:
    """Both ranks' torchrun through two concurrent ``kubectl exec``: first-line times and the total."""
    start = time.monotonic()
    first: dict[int, float] = {}
    processes = {rank: subprocess.Popen([KUBECTL, "--kubeconfig", kubeconfig, "-n", namespace, "exec",
                                         f"{NAME}-{rank}", "--", "python3", "-m", "torch.distributed.run", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for rank in (0, 1)}

    def read(rank: int) -> None:
        stream = processes[rank].stdout
        assert stream is not None
        for _ in stream:
            first.setdefault(rank, time.monotonic() - start)

    readers = [threading.Thread(target=read, args=(rank,)) for rank in processes]
    for reader in readers:
        reader.start()
    codes = [process.wait() for process in processes.values()]
    for reader in readers:
        reader.join()
    if any(codes):
        raise SystemExit(f"kubectl exec failed: {codes}")
    return first, time.monotonic() - start


def with_launch(client: DevServerClient, args: list[str]) -> tuple[float, dict[int, float], float]:
    """The same through ``launch()``: time to return, first-line times and the total."""
    start = time.monotonic()
    first: dict[int, float] = {}
    handle = client.launch(NAME, args, on_output=lambda rank, stream, line: first.setdefault(
        rank, time.monotonic() - start))
    returned = time.monotonic() - start
    codes = handle.wait()
    if any(codes.values()):
        raise SystemExit(f"launch failed: {codes}\n{handle.logs()}")
    return returned, first, time.monotonic() - start


def with_devctl(kubeconfig: str, namespace: str, args: list[str]) -> tuple[dict[int, float], float]:
    """The same through ``devctl launch`` as a process: first-line times per rank (from its ``[rank N]``
    prefixes, stdout or stderr) and the total."""
    env = {**os.environ, "KUBECONFIG": kubeconfig,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "cli"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.monotonic()
    first: dict[int, float] = {}
    process = subprocess.Popen([sys.executable, "-m", "devservers_cli", "-n", namespace, "launch", NAME, "--", *args],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def read(stream: IO[str]) -> None:
        for line in stream:
            if line.startswith("[rank "):
                first.setdefault(int(line[6:line.index("]")]), time.monotonic() - start)

    readers = [threading.Thread(target=read, args=(stream,)) for stream in (process.stdout, process.stderr)]
    for reader in readers:
        reader.start()
    code = process.wait()
    for reader in readers:
        reader.join()
    if code:
        raise SystemExit(f"devctl launch failed with exit code {code}")
    return first, time.monotonic() - start


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f} ms (min {min(values) * 1000:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as temporary:
        directory = Path(temporary)
        cluster, kubeconfig = start_cluster(directory)
        operator = None
        try:
            kubectl(kubeconfig, "apply", "-f", str(ROOT / "crds"))
            wait_established(kubeconfig, "devservers.devservers.io", "devserverflavors.devservers.io")
            kubectl(kubeconfig, "apply", "-f", "-", input_text=FLAVOR)
            namespace = f"bench-{secrets.token_hex(3)}"
            kubectl(kubeconfig, "apply", "-f", "-", input_text=f"apiVersion: v1\nkind: Namespace\nmetadata: "
                                                                 f"{{name: {namespace}}}\n")
            operator = start_operator(kubeconfig, directory / "operator.log", 29000 + secrets.randbelow(900))
            client = DevServerClient(kubeconfig=kubeconfig, namespace=namespace, owner="bench")
            client.create(NAME, flavor="bench-tiny", mode="distributed", world_size=2, nprocs_per_node=2,
                          backend="gloo", wait=True, timeout=180)
            for rank in (0, 1):
                client.exec(NAME, ["/bin/sh", "-c", "cat > hello.py"], rank=rank, stdin=HELLO, check=True)
                client.exec(NAME, ["/bin/sh", "-c", "cat > train_ddp.py"], rank=rank, check=True,
                            stdin=(ROOT / "examples" / "distributed" / "train_ddp.py").read_bytes())
            print(f"DevServer {NAME}: 2 ranks x 2 processes, gloo, on a local cluster; {options.repeat} runs each, "
                  f"alternating; median (min)\n")
            print(f"{'job / measure':<44} {'launch()':<24} {'kubectl exec x2 by hand':<24} {'overhead':<10} "
                  f"devctl launch")
            for job, args in JOBS.items():
                returned: list[float] = []
                sdk_first: dict[int, list[float]] = {0: [], 1: []}
                hand_first: dict[int, list[float]] = {0: [], 1: []}
                cli_first: dict[int, list[float]] = {0: [], 1: []}
                sdk_total: list[float] = []
                hand_total: list[float] = []
                cli_total: list[float] = []
                for _ in range(options.repeat):
                    back, first, total = with_launch(client, args)
                    returned.append(back)
                    sdk_total.append(total)
                    for rank in (0, 1):
                        sdk_first[rank].append(first[rank])
                    first, total = by_hand(kubeconfig, namespace, args)
                    hand_total.append(total)
                    for rank in (0, 1):
                        hand_first[rank].append(first[rank])
                    first, total = with_devctl(kubeconfig, namespace, args)
                    cli_total.append(total)
                    for rank in (0, 1):
                        cli_first[rank].append(first[rank])
                print(job)
                print(f"  {'launch() returns (all ranks started)':<42} {fmt(returned):<24}")
                for rank in (0, 1):
                    extra = (statistics.median(sdk_first[rank]) - statistics.median(hand_first[rank])) * 1000
                    print(f"  {f'first output line of rank {rank}':<42} {fmt(sdk_first[rank]):<24} "
                          f"{fmt(hand_first[rank]):<24} {f'{extra:+.0f} ms':<10} {fmt(cli_first[rank])}")
                extra = (statistics.median(sdk_total) - statistics.median(hand_total)) * 1000
                print(f"  {'whole job (until every rank exited)':<42} {fmt(sdk_total):<24} {fmt(hand_total):<24} "
                      f"{f'{extra:+.0f} ms':<10} {fmt(cli_total)}")
        finally:
            if operator is not None:
                operator.terminate()
                operator.wait(30)
            cluster.terminate()
            cluster.wait(30)


if __name__ == "__main__":
    main()
