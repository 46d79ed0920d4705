"""GPU servers on the local cluster's fake GPUs: nprocsPerNode auto, Pending explained in words, GPU use in the
status and the minGpuUtilization stop, and what a server costs, across an operator restart and a stop/start.

The operator tests' node has 8 fake GPUs (``NODE_CAPACITY``): the node agent advertises them and puts an
``nvidia-smi`` on the GPU pods' PATH whose readings the test sets (``LocalCluster.set_gpu_utilization``). The
flavors here are small in CPU and memory so that they fit next to the other tests' servers; the operator's
clock is scaled (``DEVSERVERS_IDLE_TIMEOUT_SCALE=0.05``: a 2m window is 6 s) and it probes every second.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from devservers_cli.main import cli

from devservers_sdk.client import DevServerClient
from devservers_sdk.cost import LEDGER_NAME, cost_at
from devservers_sdk.localcluster.pytest_plugin import ClusterHandle, wait_for
from devservers_sdk.models import CostStatus
from tests.operator.conftest import OperatedNamespace, kubectl
from tests.platform_fixture import this_python_first_on_path

pytestmark = pytest.mark.slow

PRICE_PER_HOUR = Decimal(3600)  # one unit a pod-second: the cost in units is the pod-seconds run


def _flavor(name: str, gpus: int, *, cost: str | None = None, selector: dict[str, str] | None = None) -> str:
    limits = {"cpu": "100m", "memory": "256Mi", **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    spec: dict[str, Any] = {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": limits}}
    if cost:
        spec["costPerHour"] = cost
    if selector:
        spec["nodeSelector"] = selector
    return json.dumps({"apiVersion": "devservers.io/v1", "kind": "DevServerFlavor", "metadata": {"name": name},
                       "spec": spec})


@pytest.fixture(scope="module")
def flavors(crds: str) -> Iterator[None]:
    documents = [
        _flavor("test-gpu-4", 4, cost=f"{PRICE_PER_HOUR} EUR"),
        _flavor("test-gpu-8", 8),
        _flavor("test-gpu-16", 16),
        _flavor("test-cpu-auto", 0),
        _flavor("test-no-such-pool", 0, selector={"pool": "no-such-pool"}),
    ]
    for document in documents:
        kubectl(crds, "apply", "-f", "-", input=document)
    yield
    for name in ("test-gpu-4", "test-gpu-8", "test-gpu-16", "test-cpu-auto", "test-no-such-pool"):
        kubectl(crds, "delete", "devserverflavor", name, "--ignore-not-found", check=False)


@pytest.fixture
def gpus(cluster: ClusterHandle, flavors: None) -> Iterator[Any]:
    """The local cluster whose fake GPUs the test reads out; every reading back to 0 % afterwards."""
    if cluster.local is None:
        pytest.skip("needs the local cluster's fake GPUs")
    yield cluster.local
    cluster.local.set_gpu_utilization(0)


def _env(operated: OperatedNamespace, pod: str, name: str) -> str:
    return operated.exec(pod, f'printf %s "${name}"')


def test_nprocs_per_node_auto_resolves_to_the_flavors_gpus(operated: OperatedNamespace, gpus: Any) -> None:
    operated.create("four", flavor="test-gpu-4", mode="distributed",
                distributed={"worldSize": 2, "nprocsPerNode": "auto", "backend": "gloo"})
    operated.create("cpu", flavor="test-cpu-auto", mode="distributed",
                distributed={"worldSize": 1, "nprocsPerNode": "auto", "backend": "gloo"})
    four = operated.wait_phase("four", "Running", timeout=120)
    # 2 x 4 + 8 GPUs asked of a node with 8: "eight" waits for "four" to be deleted, and that is no fault of
    # the cluster's (the node offers 8): Pending, but not Degraded.
    operated.create("eight", flavor="test-gpu-8", mode="distributed",
                distributed={"worldSize": 1, "nprocsPerNode": "auto", "backend": "gloo"})
    operated.wait_phase("eight", "Pending", timeout=60,
                    check=lambda s: any(c["type"] == "Scheduled" and c["reason"] == "Unschedulable"
                                        for c in s["status"].get("conditions") or []))
    assert _degraded(operated, "eight")["status"] == "False", _degraded(operated, "eight")
    assert four["status"]["nprocsPerNode"] == 4
    for pod in ("four-0", "four-1"):
        assert _env(operated, pod, "PET_NPROC_PER_NODE") == "4" and _env(operated, pod, "NPROC_PER_NODE") == "4"
        listed = operated.exec(pod, "nvidia-smi -L").splitlines()
        assert len(listed) == 4 and all("Localcluster-Fake-GPU" in line for line in listed), listed
    cpu = operated.wait_phase("cpu", "Running", timeout=120)
    assert cpu["status"]["nprocsPerNode"] == 1 and _env(operated, "cpu-0", "PET_NPROC_PER_NODE") == "1"
    assert operated.exec("cpu-0", "command -v nvidia-smi || echo none").strip() == "none"  # no GPUs, no nvidia-smi

    operated.delete("four")
    eight = operated.wait_phase("eight", "Running", timeout=120)
    assert eight["status"]["nprocsPerNode"] == 8 and _env(operated, "eight-0", "PET_NPROC_PER_NODE") == "8"
    assert len(operated.exec("eight-0", "nvidia-smi -L").splitlines()) == 8


def test_a_standalone_multi_gpu_server_gets_the_torchrun_hints(operated: OperatedNamespace, gpus: Any) -> None:
    operated.create("solo", flavor="test-gpu-4")
    operated.wait_phase("solo", "Running", timeout=120)
    assert _env(operated, "solo-0", "PET_NPROC_PER_NODE") == "4" and _env(operated, "solo-0", "PET_NNODES") == ""


@pytest.fixture
def pods_use_this_python() -> Iterator[None]:
    """The emulator's pods take PATH from this process when they start: this interpreter (with torch) first, as
    an image's Python (the real plane's node agent has it first already, see tests/launch/conftest.py)."""
    with this_python_first_on_path():
        yield


@pytest.mark.parametrize(("flavor", "world_size"), [("test-gpu-4", 2), ("test-gpu-8", 1)])
def test_launch_starts_one_process_per_fake_gpu(operated: OperatedNamespace, gpus: Any, tmp_path: Path, flavor: str,
                                                world_size: int, pods_use_this_python: None) -> None:
    (tmp_path / "show.py").write_text(
        "import os\nprint(f\"rank={os.environ['RANK']} world={os.environ['WORLD_SIZE']} "
        "local={os.environ['LOCAL_WORLD_SIZE']}\", flush=True)\n")
    operated.create("group", flavor=flavor, mode="distributed",
                distributed={"worldSize": world_size, "nprocsPerNode": "auto", "backend": "gloo"})
    operated.wait_phase("group", "Running", timeout=120)
    with DevServerClient(kubeconfig=operated.kubeconfig, namespace=operated.namespace) as client:
        handle = client.launch("group", ["show.py"], workdir=tmp_path)  # no --nproc-per-node: PET_* says it
        with handle:
            list(handle)
            codes = handle.wait(timeout=180)
    output = handle.logs()
    assert codes == dict.fromkeys(range(world_size), 0), output
    seen = re.findall(r"rank=(\d+) world=(\d+) local=(\d+)", output)
    assert sorted(int(rank) for rank, _, _ in seen) == list(range(8)), output
    assert {(world, local) for _, world, local in seen} == {("8", str(8 // world_size))}, output


def _degraded(operated: OperatedNamespace, name: str) -> dict[str, Any]:
    return operated.condition(name, "Degraded")


def test_pending_is_explained_in_words(operated: OperatedNamespace, gpus: Any) -> None:
    operated.create("huge", flavor="test-gpu-16")
    operated.create("nowhere", flavor="test-no-such-pool")
    huge = operated.wait_phase("huge", "Pending", timeout=90,
                           check=lambda s: any(c["type"] == "Degraded" and c["status"] == "True"
                                               for c in s["status"].get("conditions") or []))
    message = huge["status"]["message"]
    assert "no node offers 16 nvidia.com/gpu; the most on one node is 8 (start the local cluster with --gpus 16)" \
        in message, message
    assert "devctl delete huge" in message
    degraded = _degraded(operated, "huge")
    assert degraded["reason"] == "NoNodeOffersResource" and "16 nvidia.com/gpu" in degraded["message"]
    # The scheduler's own words stay in the Scheduled condition. A real scheduler may first have said the home's
    # claim was not bound yet; its next attempt, once the claim binds, names the GPUs.
    wait_for(lambda: "Insufficient nvidia.com/gpu" in operated.condition("huge", "Scheduled").get("message", ""),
             timeout=90, message="the scheduler's 'Insufficient nvidia.com/gpu' in the Scheduled condition")

    operated.wait_phase("nowhere", "Pending", timeout=90, check=lambda s: _degraded(operated, "nowhere").get("status") == "True")
    degraded = _degraded(operated, "nowhere")
    assert degraded["reason"] == "NoMatchingNode", degraded
    assert "no node has the labels pool=no-such-pool that the flavor's nodeSelector asks for" in degraded["message"]
    wait_for(lambda: "NoMatchingNode" in operated.event_reasons("nowhere"), timeout=60, message="the Warning Event")


def _low_since(operated: OperatedNamespace, name: str) -> str | None:
    return operated.status(name).get("gpuLowSince")


def test_gpus_below_the_floor_for_the_window_stop_the_server(operated: OperatedNamespace, gpus: Any) -> None:
    policy = {"minGpuUtilization": {"percent": 10, "window": "2m"}}  # 6 s on the scaled clock
    gpus.set_gpu_utilization(3, memory_used_mib=512, pod=(operated.namespace, "idle-0"))
    gpus.set_gpu_utilization(50, memory_used_mib=2048, pod=(operated.namespace, "busy-0"))
    operated.create("idle", flavor="test-gpu-4", lifecycle=policy)
    operated.create("busy", flavor="test-gpu-4", lifecycle=policy)
    operated.wait_phase("busy", "Running", timeout=120, check=lambda s: bool(s["status"].get("gpus")))
    # A shell left open does not keep GPUs that sit idle.
    stopped = operated.wait_phase("idle", "Stopped", timeout=120)
    assert stopped["status"]["stoppedReason"] == "LowGpuUtilization", stopped["status"]
    assert "GPUs stayed below lifecycle.minGpuUtilization" in stopped["status"]["message"]
    wait_for(lambda: "LowGpuUtilizationStop" in operated.event_reasons("idle"), timeout=60, message="the stop Event")
    warning = next(e for e in operated.events("idle") if e.reason == "LowGpuUtilization")
    assert "will be stopped" in warning.message and "below 10%" in warning.message, warning.message
    assert operated.statefulset("idle").spec.replicas == 0

    busy = operated.get("busy") or {}
    status = busy["status"]
    assert status["phase"] == "Running" and status.get("gpuLowSince") is None, status
    readings = status["gpus"]
    assert [(g["rank"], g["index"], g["utilization"], g["memoryUsedMib"], g["memoryTotalMib"]) for g in readings] \
        == [(0, index, 50.0, 2048.0, 81920.0) for index in range(4)]
    assert all(g["observedAt"] for g in readings)
    assert "LowGpuUtilization" not in operated.event_reasons("busy")

    # describe shows the per-rank use and the cost so far.
    described = CliRunner().invoke(cli, ["describe", "busy", "--kubeconfig", operated.kubeconfig, "-n", operated.namespace])
    assert described.exit_code == 0, described.output
    gpu_lines = [line.split() for line in described.output.split("GPUs:\n", 1)[1].splitlines()[1:5]]
    assert [line[:3] for line in gpu_lines] == [["0", str(index), "50%"] for index in range(4)], described.output
    assert "Cost:" in described.output and "EUR so far" in described.output, described.output
    wide = CliRunner().invoke(cli, ["list", "-o", "wide", "--kubeconfig", operated.kubeconfig, "-n", operated.namespace])
    assert "50%,50%,50%,50%" in wide.output, wide.output


def _cost(operated: OperatedNamespace, name: str) -> CostStatus:
    return CostStatus.model_validate(operated.status(name)["cost"])


def _wait_running_counted(operated: OperatedNamespace, name: str) -> float:
    operated.wait_phase(name, "Running", timeout=120, check=lambda s: (s["status"].get("cost") or {}).get("runningPods") == 1)
    return time.monotonic()


def _wait_stopped_counted(operated: OperatedNamespace, name: str) -> None:
    operated.wait_phase(name, "Stopped", timeout=120, check=lambda s: (s["status"].get("cost") or {}).get("runningPods") == 0)


def test_cost_counts_running_time_across_a_restart_and_a_stop(operated: OperatedNamespace, gpus: Any) -> None:
    operated.create("paid", flavor="test-gpu-4")
    started = _wait_running_counted(operated, "paid")
    operated.operator.restart()  # the open stretch lives in the status: nothing is lost or counted twice
    time.sleep(3)  # running time to pay for: the measured quantity, not a wait for a condition
    operated.patch("paid", {"metadata": {"annotations": {"devservers.io/desired-state": "Stopped"}}})
    first = time.monotonic() - started
    _wait_stopped_counted(operated, "paid")
    after_stop = _cost(operated, "paid")
    stopped_for = time.monotonic()
    time.sleep(2)  # stopped time is free: the figure must not move
    assert cost_at(_cost(operated, "paid"), datetime.now(UTC)) == cost_at(after_stop, datetime.now(UTC))

    operated.patch("paid", {"metadata": {"annotations": {"devservers.io/desired-state": "Running"}}})
    restarted = _wait_running_counted(operated, "paid")
    assert restarted - stopped_for >= 2
    time.sleep(2)
    operated.patch("paid", {"metadata": {"annotations": {"devservers.io/desired-state": "Stopped"}}})
    second = time.monotonic() - restarted
    _wait_stopped_counted(operated, "paid")
    final = _cost(operated, "paid")
    measured = first + second
    amount, pod_seconds = cost_at(final, datetime.now(UTC))
    assert final.currency == "EUR" and amount == pod_seconds * PRICE_PER_HOUR / 3600
    # The operator counts from the pod running (a little before the test sees Ready) to the stop it is told.
    assert measured - 4 <= float(pod_seconds) <= measured + 8, (float(pod_seconds), measured)

    # The report, while the server exists and after it is deleted (from the ledger).
    def report() -> dict[str, Any]:
        result = CliRunner().invoke(cli, ["cost", "-o", "json", "--kubeconfig", operated.kubeconfig, "-n", operated.namespace])
        assert result.exit_code == 0, result.output
        rows = json.loads(result.output)["rows"]
        return next(row for row in rows if row["flavor"] == "test-gpu-4")

    live = report()
    assert (live["owner"], live["servers"], live["currency"]) == ("alice", 1, "EUR")
    table = CliRunner().invoke(cli, ["cost", "--kubeconfig", operated.kubeconfig, "-n", operated.namespace])
    assert table.exit_code == 0, table.output
    header, *rows = [line.split() for line in table.output.splitlines()]
    assert header == ["OWNER", "FLAVOR", "SERVERS", "POD-HOURS", "COST"], table.output
    assert rows[0][:3] == ["alice", "test-gpu-4", "1"] and rows[-1][0] == "TOTAL", table.output
    assert f"{amount.quantize(Decimal('0.01'))} EUR" in table.output
    assert Decimal(live["cost"]) == amount.quantize(Decimal("0.0001"))
    operated.delete("paid")
    operated.wait_gone("paid")
    wait_for(lambda: report()["deletedServers"] == 1, timeout=60, message="the deleted server in the ledger")
    gone = report()
    assert Decimal(gone["cost"]) == amount.quantize(Decimal("0.0001")), gone
    client = DevServerClient(kubeconfig=operated.kubeconfig, namespace=operated.namespace)
    with client:
        assert client.cost_report(owner="nobody") == []
        recent = client.cost_report(since="1h")
    assert any(row.flavor == "test-gpu-4" and row.amount == amount for row in recent)
    ledger = operated.core.read_namespaced_config_map(LEDGER_NAME, operated.namespace)
    assert ledger.metadata.labels["app.kubernetes.io/managed-by"] == "devservers-operator"
