"""Benchmark of the local cluster: start-up, create and LIST latency at 1,000 objects, concurrent watches.

Run: ``.venv/bin/python bench/localcluster.py [--objects 1000] [--watches 200] [--control-plane both]``

``--control-plane emulator|kubernetes|both`` measures our emulator, the real control plane (etcd and the kube-*
binaries, cached by ``python -m devservers_sdk.localcluster build``) with our node agent, or both side by side
in one run on the same machine. "start-up until a pod runs" starts a fresh cluster (fresh state dir), creates one
pod and waits until the node reports it Running.

Targets (issue 2, the emulator's): start < 0.5 s, LIST of 1,000 objects < 50 ms median, 200 concurrent watches
while staying responsive. Requests go over one keep-alive HTTPS connection so the figures are the server's,
not a client library's connection set-up.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devservers_sdk.localcluster import LocalCluster


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


class Client:
    """A minimal keep-alive HTTPS client for the cluster, reading credentials from its kubeconfig."""

    def __init__(self, kubeconfig: str) -> None:
        config = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self.token = user.get("token")
        self.url = cluster["server"]
        host, port = self.url.removeprefix("https://").split(":")
        self.context = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        if user.get("client-certificate-data"):
            # The real control plane authenticates by client certificate; ssl loads one from files only.
            with tempfile.TemporaryDirectory() as scratch:
                cert, key = Path(scratch) / "c.crt", Path(scratch) / "c.key"
                cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
                key.write_bytes(base64.b64decode(user["client-key-data"]))
                self.context.load_cert_chain(cert, key)
        self.connection = http.client.HTTPSConnection(host, int(port), context=self.context)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {**self.headers, "Content-Type": "application/json", "Accept": "application/json"}
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()


def bench_startup(rounds: int) -> dict[str, float]:
    in_process = []
    for _ in range(rounds):
        started = time.perf_counter()
        cluster = LocalCluster().start()
        in_process.append(time.perf_counter() - started)
        cluster.stop()
    subprocess_times = []
    for _ in range(max(1, rounds // 2)):
        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = Path(tmp) / "kubeconfig"
            started = time.perf_counter()
            process = subprocess.Popen([sys.executable, "-m", "devservers_sdk.localcluster", "serve",
                                        "--kubeconfig", str(kubeconfig), "--state-dir", str(Path(tmp) / "state")],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while not kubeconfig.exists():
                if process.poll() is not None:
                    raise SystemExit(f"localcluster serve exited with {process.returncode} before it was ready")
                time.sleep(0.005)
            subprocess_times.append(time.perf_counter() - started)
            process.terminate()
            process.wait(10)
    return {"in_process_median_s": statistics.median(in_process),
            "subprocess_median_s": statistics.median(subprocess_times)}


def bench_create_and_list(client: Client, namespace: str, count: int) -> dict[str, float]:
    client.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    create_times = []
    for index in range(count):
        body = {"metadata": {"name": f"cm-{index:05d}", "labels": {"bench": "true", "shard": str(index % 10)}},
                "data": {"payload": "x" * 256, "index": str(index)}}
        started = time.perf_counter()
        status, _ = client.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)
        create_times.append(time.perf_counter() - started)
        assert status == 201, status
    list_times, sizes = [], []
    for _ in range(30):
        started = time.perf_counter()
        status, payload = client.request("GET", f"/api/v1/namespaces/{namespace}/configmaps")
        list_times.append(time.perf_counter() - started)
        assert status == 200
        sizes.append(len(payload))
    # Kubernetes adds its own objects to every namespace (kube-root-ca.crt): count only ours.
    assert sum(item["metadata"]["name"].startswith("cm-") for item in json.loads(payload)["items"]) == count
    selector_times = []
    for _ in range(30):
        started = time.perf_counter()
        client.request("GET", f"/api/v1/namespaces/{namespace}/configmaps?labelSelector=shard%3D3")
        selector_times.append(time.perf_counter() - started)
    return {
        "create_p50_ms": percentile(create_times, 50) * 1000,
        "create_p99_ms": percentile(create_times, 99) * 1000,
        "creates_per_s": count / sum(create_times),
        "list_median_ms": statistics.median(list_times) * 1000,
        "list_p99_ms": percentile(list_times, 99) * 1000,
        "list_bytes": float(sizes[-1]),
        "list_selector_median_ms": statistics.median(selector_times) * 1000,
    }


def bench_watches(kubeconfig: str, namespace: str, watches: int) -> dict[str, float]:
    client = Client(kubeconfig)
    client.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    ready = threading.Event()
    results: dict[str, Any] = {}

    async def run() -> None:
        connector = aiohttp.TCPConnector(ssl=client.context, limit=0)
        async with aiohttp.ClientSession(connector=connector, headers=client.headers) as session:
            arrivals: list[list[float]] = [[] for _ in range(watches)]
            opened = 0
            opened_all = asyncio.Event()

            async def watch(index: int) -> None:
                nonlocal opened
                url = f"{client.url}/api/v1/namespaces/{namespace}/configmaps?watch=true&timeoutSeconds=120"
                async with session.get(url) as response:
                    opened += 1
                    if opened == watches:
                        opened_all.set()
                    async for line in response.content:
                        event = json.loads(line)
                        # Only ours: a real cluster adds kube-root-ca.crt to every new namespace.
                        if event["type"] == "ADDED" and event["object"]["metadata"]["name"].startswith("w-"):
                            arrivals[index].append(time.perf_counter())
                        if len(arrivals[index]) >= 20:
                            return

            tasks = [asyncio.create_task(watch(i)) for i in range(watches)]
            async with asyncio.timeout(60):
                await opened_all.wait()
            await asyncio.sleep(0.2)
            ready.set()
            sent: list[float] = results.setdefault("sent", [])
            async with asyncio.timeout(120):
                await asyncio.gather(*tasks)
            fanout = [max(a[i] for a in arrivals) - sent[i] for i in range(20)]
            results["fanout_p50_ms"] = percentile(fanout, 50) * 1000
            results["fanout_max_ms"] = max(fanout) * 1000

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    ready.wait(90)
    get_times = []
    for index in range(20):
        results.setdefault("sent", []).append(time.perf_counter())
        status, _ = client.request("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                                   {"metadata": {"name": f"w-{index}"}, "data": {"i": str(index)}})
        assert status == 201
        started = time.perf_counter()
        client.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/w-{index}")
        get_times.append(time.perf_counter() - started)
        time.sleep(0.05)
    thread.join(180)
    return {"watches": float(watches), "event_fanout_p50_ms": results["fanout_p50_ms"],
            "event_fanout_max_ms": results["fanout_max_ms"],
            "get_p50_ms_while_watched": percentile(get_times, 50) * 1000,
            "get_max_ms_while_watched": max(get_times) * 1000}


def bench_until_a_pod_runs(control_plane: str, rounds: int) -> dict[str, float]:
    """A fresh cluster (fresh state dir) until the node reports one pod Running, median of ``rounds``."""
    times = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            cluster = LocalCluster(state_dir=Path(tmp) / "state", control_plane=control_plane).start()
            try:
                client = Client(cluster.kubeconfig)
                pod = {"metadata": {"name": "first"},
                       "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "60"]}]}}
                while True:  # a real control plane's default ServiceAccount may lag a moment
                    status, _ = client.request("POST", "/api/v1/namespaces/default/pods", pod)
                    if status == 201:
                        break
                    time.sleep(0.05)
                while True:
                    _, payload = client.request("GET", "/api/v1/namespaces/default/pods/first")
                    if json.loads(payload).get("status", {}).get("phase") == "Running":
                        break
                    time.sleep(0.02)
                times.append(time.perf_counter() - started)
            finally:
                cluster.stop()
    return {"start_until_pod_running_median_s": statistics.median(times)}


TARGETS = {"in_process_median_s": ("<", 0.5), "list_median_ms": ("<", 50.0), "watches": (">=", 200.0)}


def measure(control_plane: str, args: argparse.Namespace) -> dict[str, float]:
    figures: dict[str, float] = {}
    if control_plane == "emulator":
        figures.update(bench_startup(args.startup_rounds))
    figures.update(bench_until_a_pod_runs(control_plane, max(1, args.startup_rounds // 2)))
    with LocalCluster(control_plane=control_plane) as cluster:
        figures.update(bench_create_and_list(Client(cluster.kubeconfig), "bench-list", args.objects))
        figures.update(bench_watches(cluster.kubeconfig, "bench-watch", args.watches))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--watches", type=int, default=200)
    parser.add_argument("--startup-rounds", type=int, default=6)
    parser.add_argument("--control-plane", choices=("emulator", "kubernetes", "both"), default="emulator")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    planes = ["emulator", "kubernetes"] if args.control_plane == "both" else [args.control_plane]
    results = {plane: measure(plane, args) for plane in planes}
    keys = list(dict.fromkeys(key for figures in results.values() for key in figures))
    print(f"{'figure':34}" + "".join(f"{plane:>14}" for plane in planes) + "  target (emulator)")
    for key in keys:
        row = "".join(f"{results[p][key]:14.3f}" if key in results[p] else f"{'-':>14}" for p in planes)
        mark = ""
        target, value = TARGETS.get(key), results.get("emulator", {}).get(key)
        if target and value is not None:
            op, bound = target
            ok = value < bound if op == "<" else value >= bound
            mark = f"{op} {bound:g}  {'ok' if ok else 'MISSED'}"
        print(f"{key:34}{row}  {mark}")


if __name__ == "__main__":
    main()
