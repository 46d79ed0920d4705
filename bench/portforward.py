"""Benchmark of port-forward: ``devctl port-forward`` (the SDK's forward) beside ``kubectl port-forward``.

Run: ``.venv/bin/python bench/portforward.py [--control-plane emulator|kubernetes] [--megabytes 100]
[--concurrent 50] [--repeat 3]``

On a local cluster this script starts in a process of its own, one pod runs ``python -m http.server``
with a file of ``--megabytes``. Both forwards run as processes (``devctl port-forward NAME :PORT`` and
``kubectl port-forward pod/NAME-0 :PORT``), to the same pod, in the same run, alternating; the HTTP client
is this script. Printed per forward: how many of ``--concurrent`` simultaneous GETs succeeded and how long
the batch took, and the throughput of the big download (best of ``--repeat``, median beside it).
Targets (issue 16): all concurrent requests succeed; throughput set beside kubectl's.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devservers_sdk.client import DevServerClient  # noqa: E402
from devservers_sdk.contract import NAME_LABEL  # noqa: E402
from devservers_sdk.kube import PODS  # noqa: E402
from devservers_sdk.localcluster.pytest_plugin import wait_established  # noqa: E402

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
NAMESPACE = "bench"
NAME = "web"


def start_cluster(directory: Path, control_plane: str) -> tuple[subprocess.Popen[bytes], str]:
    kubeconfig = directory / "kubeconfig"
    process = subprocess.Popen([sys.executable, "-m", "devservers_sdk.localcluster", "serve", "--kubeconfig",
                                str(kubeconfig), "--state-dir", str(directory / "state"), "--control-plane",
                                control_plane], cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not kubeconfig.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the local cluster did not start")
        time.sleep(0.1)
    return process, str(kubeconfig)


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> None:
    subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], check=True, input=stdin, text=True,
                   stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_web_pod(client: DevServerClient, kubeconfig: str, megabytes: int) -> tuple[str, int]:
    """A DevServer-labelled StatefulSet pod (no operator needed) serving a file of ``megabytes``."""
    kubectl(kubeconfig, "apply", "-f", str(ROOT / "crds"))
    wait_established(kubeconfig, "devservers.devservers.io")
    kubectl(kubeconfig, "apply", "-f", str(ROOT / "examples" / "flavors"))
    kubectl(kubeconfig, "create", "namespace", NAMESPACE)
    deadline = time.monotonic() + 60
    while True:  # a real control plane serves a new namespace's service account a moment later
        try:
            client.create(NAME, flavor="cpu-small")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    labels = f'{{"{NAME_LABEL}": "{NAME}"}}'
    kubectl(kubeconfig, "apply", "-n", NAMESPACE, "-f", "-", stdin=f"""
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {NAME}}}
spec:
  replicas: 1
  serviceName: {NAME}
  selector: {{matchLabels: {labels}}}
  template:
    metadata: {{labels: {labels}}}
    spec:
      containers: [{{name: main, image: local, command: [sleep, infinity]}}]
""")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods = client.kube.list(PODS, namespace=NAMESPACE, label_selector=f"{NAME_LABEL}={NAME}")["items"]
        if pods and (pods[0].get("status") or {}).get("phase") == "Running":
            break
        time.sleep(0.2)
    else:
        raise SystemExit("the web pod did not start")
    port = free_port()
    client.exec(NAME, f"mkdir -p /tmp/pf-bench-{port} && cd /tmp/pf-bench-{port} && "
                      f"head -c {megabytes * 1024 * 1024} /dev/urandom > big && echo ok > small && "
                      f"setsid -f {sys.executable} -m http.server {port} --bind 0.0.0.0 >/dev/null 2>&1", check=True)
    return f"{NAME}-0", port


def start_forward(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"127\.0\.0\.1:(\d+)", line)
    if not found:
        process.kill()
        raise SystemExit(f"{argv[0]}: no 'Forwarding from' line, got {line!r}")
    return process, int(found.group(1))


def get(port: int, path: str) -> int:
    """GET through the forward; the number of body bytes (raises on failure)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        total = 0
        while chunk := response.read(1024 * 1024):
            total += len(chunk)
        return total
    finally:
        connection.close()


def ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            get(port, "/small")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def concurrent(port: int, count: int) -> tuple[int, float]:
    def one(_: int) -> bool:
        try:
            return get(port, "/small") == 3
        except OSError:
            return False

    start = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        succeeded = sum(pool.map(one, range(count)))
    return succeeded, time.perf_counter() - start


def throughput(port: int, megabytes: int) -> float:
    start = time.perf_counter()
    size = get(port, "/big")
    elapsed = time.perf_counter() - start
    assert size == megabytes * 1024 * 1024, size
    return megabytes / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--control-plane", choices=["emulator", "kubernetes"], default="emulator")
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-portforward-") as tmp:
        cluster, kubeconfig = start_cluster(Path(tmp), args.control_plane)
        try:
            client = DevServerClient(kubeconfig=kubeconfig, namespace=NAMESPACE)
            pod, port = start_web_pod(client, kubeconfig, args.megabytes)
            env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONPATH": os.pathsep.join(
                [str(ROOT), str(ROOT / "cli"), os.environ.get("PYTHONPATH", "")])}
            forwards = {
                "devctl port-forward": [sys.executable, "-m", "devservers_cli", "-n", NAMESPACE, "port-forward",
                                        NAME, f":{port}"],
                "kubectl port-forward": [KUBECTL, "-n", NAMESPACE, "port-forward", f"pod/{pod}", f":{port}"],
            }
            results: dict[str, dict[str, list[float]]] = {label: {"ok": [], "batch": [], "mbps": []}
                                                          for label in forwards}
            for _ in range(args.repeat):
                for label, argv in forwards.items():
                    process, local = start_forward(argv, env)
                    try:
                        ready(local)
                        succeeded, batch = concurrent(local, args.concurrent)
                        results[label]["ok"].append(succeeded)
                        results[label]["batch"].append(batch)
                        results[label]["mbps"].append(throughput(local, args.megabytes))
                    finally:
                        process.terminate()
                        process.wait(10)
            print(f"port-forward, {args.control_plane} control plane, {os.cpu_count()} CPUs, "
                  f"{args.repeat} runs each, alternating")
            print(f"{'':<22} {'concurrent GETs ok':<22} {'batch time':<24} {args.megabytes} MB download")
            for label, figures in results.items():
                ok = f"{min(figures['ok']):.0f}/{args.concurrent} (worst run)"
                batch = (f"{min(figures['batch']) * 1000:.0f} ms "
                         f"(median {statistics.median(figures['batch']) * 1000:.0f})")
                mbps = f"{max(figures['mbps']):.1f} MB/s (median {statistics.median(figures['mbps']):.1f})"
                print(f"{label:<22} {ok:<22} {batch:<24} {mbps}")
            sdk, kube = (statistics.median(results[label]["mbps"]) for label in forwards)
            print(f"target: {args.concurrent}/{args.concurrent} concurrent GETs succeed; throughput beside kubectl: "
                  f"devctl/kubectl = {sdk / kube:.2f}x (medians)")
        finally:
            cluster.terminate()
            cluster.wait(60)


if __name__ == "__main__":
    main()
