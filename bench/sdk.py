"""Benchmark of the SDK beside kubectl, on a local cluster this script starts (in its own process).

Run: ``.venv/bin/python bench/sdk.py [--objects 500] [--megabytes 100] [--repeat 5]``

Prints ``import devservers_sdk`` time, ``list()`` of N DevServers against ``kubectl get devservers -o json``,
exec round-trip latency against ``kubectl exec``, and the throughput of ``exec(["cat"], stdin=100 MB)``
against ``kubectl exec -i ... cat`` fed from a pipe. Targets (issue 3): exec throughput >= kubectl's;
list no slower than 1.5x kubectl.

The cluster runs in a separate process so that the client under test does not share a GIL with the
server. SDK figures are for a client that is already connected (what a script or notebook sees after its
first call); the ``list`` row also shows a cold run in a fresh interpreter, the fair comparison with a
kubectl process. Runs of the SDK and kubectl alternate, and the best of ``--repeat`` is reported beside the
median, because shared machines are noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devservers_sdk.client import DevServerClient  # noqa: E402
from devservers_sdk.contract import NAME_LABEL  # noqa: E402
from devservers_sdk.kube import PODS  # noqa: E402
from devservers_sdk.localcluster.pytest_plugin import wait_established  # noqa: E402

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
NAMESPACE = "bench"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sample(fn: Callable[[], object], repeat: int) -> list[float]:
    return [timed(fn) for _ in range(repeat)]


def row(label: str, sdk: list[float], kubectl: list[float] | None, unit: str = "ms", scale: float = 1000.0,
        note: str = "") -> None:
    def fmt(values: list[float]) -> str:
        return f"{min(values) * scale:8.1f} {unit} (median {statistics.median(values) * scale:.1f})"

    other = fmt(kubectl) if kubectl else ""
    print(f"{label:<34} {fmt(sdk):<30} {other:<30} {note}")


def kubectl(kubeconfig: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], check=True, **kwargs)  # type: ignore[call-overload]


def import_times(repeat: int) -> tuple[list[float], list[float]]:
    code = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"

    def run(module: str) -> float:
        out = subprocess.run([sys.executable, "-c", code.format(module)], capture_output=True, text=True,
                             check=True, cwd=ROOT)
        return float(out.stdout)

    return [run("devservers_sdk") for _ in range(repeat)], [run("devservers_sdk.client") for _ in range(repeat)]


def start_cluster(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    kubeconfig = directory / "kubeconfig"
    process = subprocess.Popen([sys.executable, "-m", "devservers_sdk.localcluster", "serve", "--kubeconfig",
                                str(kubeconfig), "--state-dir", str(directory / "state")], cwd=ROOT,
                               stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not kubeconfig.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the local cluster did not start")
        time.sleep(0.05)
    return process, str(kubeconfig)


def seed(kubeconfig: str, objects: int, directory: Path) -> None:
    kubectl(kubeconfig, "apply", "-f", str(ROOT / "crds"), stdout=subprocess.DEVNULL)
    wait_established(kubeconfig, "devservers.devservers.io")
    kubectl(kubeconfig, "apply", "-f", str(ROOT / "examples" / "flavors"), stdout=subprocess.DEVNULL)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    kubectl(kubeconfig, "apply", "-f", "-", input=yaml.safe_dump(namespace).encode(), stdout=subprocess.DEVNULL)
    items = [{"apiVersion": "devservers.io/v1", "kind": "DevServer",
              "metadata": {"name": f"dev-{i:04d}", "namespace": NAMESPACE},
              "spec": {"owner": f"user{i % 17}", "flavor": "cpu-small", "image": "pytorch/pytorch:2.5.1",
                       "lifecycle": {"timeToLive": "8h", "idleTimeout": 3600}}} for i in range(objects)]
    path = directory / "devservers.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    kubectl(kubeconfig, "create", "-f", str(path), stdout=subprocess.DEVNULL)


def start_exec_pod(client: DevServerClient, kubeconfig: str) -> str:
    name = "exec-target"
    client.create(name, flavor="cpu-small")
    labels = {NAME_LABEL: name}
    statefulset = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": NAMESPACE},
                   "spec": {"replicas": 1, "serviceName": name, "selector": {"matchLabels": labels},
                            "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                                {"name": "main", "image": "local", "command": ["sleep", "infinity"]}]}}}}
    kubectl(kubeconfig, "apply", "-f", "-", input=yaml.safe_dump(statefulset).encode(), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pods = client.kube.list(PODS, namespace=NAMESPACE, label_selector=f"{NAME_LABEL}={name}")["items"]
        if pods and (pods[0].get("status") or {}).get("phase") == "Running":
            return name
        time.sleep(0.1)
    raise SystemExit("the exec pod did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"{'':<34} {'SDK':<30} {'kubectl':<30}")
    package, client_module = import_times(args.repeat)
    row("import devservers_sdk", package, None)
    row("import devservers_sdk.client", client_module, None)

    with tempfile.TemporaryDirectory(prefix="bench-sdk-") as tmp:
        directory = Path(tmp)
        process, kubeconfig = start_cluster(directory)
        try:
            seed(kubeconfig, args.objects, directory)
            client = DevServerClient(kubeconfig=kubeconfig, namespace=NAMESPACE, owner="bench")
            assert len(client.list()) == args.objects
            get = [KUBECTL, "--kubeconfig", kubeconfig, "get", "devservers.devservers.io", "-n", NAMESPACE,
                   "-o", "json"]
            subprocess.run(get, check=True, stdout=subprocess.DEVNULL)  # warm kubectl's discovery cache
            sdk_list: list[float] = []
            kubectl_list: list[float] = []
            cold: list[float] = []
            cold_code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                         f"from devservers_sdk.client import DevServerClient; "
                         f"DevServerClient(kubeconfig={kubeconfig!r}, namespace={NAMESPACE!r}).list()")
            for _ in range(args.repeat):
                sdk_list.append(timed(client.list))
                kubectl_list.append(timed(lambda: subprocess.run(get, check=True, stdout=subprocess.DEVNULL)))
                cold.append(timed(lambda: subprocess.run([sys.executable, "-c", cold_code], check=True)))
            ratio = min(sdk_list) / min(kubectl_list)
            row(f"list() of {args.objects} DevServers", sdk_list, kubectl_list,
                note=f"{ratio:.2f}x kubectl (target <= 1.5x)")
            row("  same, cold: new python process", cold, kubectl_list,
                note=f"{min(cold) / min(kubectl_list):.2f}x kubectl")

            name = start_exec_pod(client, kubeconfig)
            pod = f"{name}-0"
            client.exec(name, ["true"])
            sdk_exec, kubectl_exec = [], []
            for _ in range(max(args.repeat, 10)):
                sdk_exec.append(timed(lambda: client.exec(name, ["true"], check=True)))
                kubectl_exec.append(timed(lambda: kubectl(kubeconfig, "exec", "-n", NAMESPACE, pod, "--", "true")))
            row("exec round trip (`true`)", sdk_exec, kubectl_exec,
                note=f"{min(sdk_exec) / min(kubectl_exec):.2f}x kubectl")

            size = args.megabytes * 1024 * 1024
            data = os.urandom(1024 * 1024) * args.megabytes
            source = directory / "payload"
            source.write_bytes(data)
            sdk_rate, kubectl_rate = [], []
            for _ in range(max(3, args.repeat // 2)):
                seconds = timed(lambda: client.exec(name, ["cat"], stdin=data, text=False, check=True))
                sdk_rate.append(size / seconds)
                with open(source, "rb") as payload:
                    feeder = subprocess.Popen(["cat"], stdin=payload, stdout=subprocess.PIPE)  # a pipe, not a file
                    start = time.perf_counter()
                    kubectl(kubeconfig, "exec", "-i", "-n", NAMESPACE, pod, "--", "cat", stdin=feeder.stdout,
                            stdout=subprocess.DEVNULL)
                    kubectl_rate.append(size / (time.perf_counter() - start))
                    feeder.wait()
            best_sdk, best_kubectl = max(sdk_rate), max(kubectl_rate)
            print(f"{f'exec cat, {args.megabytes} MB stdin':<34} {best_sdk / 1e6:8.1f} MB/s (median "
                  f"{statistics.median(sdk_rate) / 1e6:.1f})   {best_kubectl / 1e6:8.1f} MB/s (median "
                  f"{statistics.median(kubectl_rate) / 1e6:.1f})   {best_sdk / best_kubectl:.2f}x kubectl "
                  f"(target >= 1x)")
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
