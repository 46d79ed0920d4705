"""The pure parts of issue 20: nprocsPerNode auto, the Pending explanation, the GPU utilisation floor, the cost
arithmetic and its ledger, and the fake ``nvidia-smi`` read back by the operator's probe parser."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from devservers_operator.probe import parse_probe

from devservers_sdk.contract import LOCAL_CLUSTER_LABEL
from devservers_sdk.cost import (
    LEDGER_MAX_ENTRIES,
    LEDGER_MAX_STRETCHES,
    LEDGER_RETENTION,
    CostRow,
    LedgerEntry,
    Price,
    Stretch,
    account,
    cost_at,
    cost_report,
    format_money,
    parse_price,
    prune_ledger,
)
from devservers_sdk.lifecycle import ProbeReport, plan, track_gpu_use
from devservers_sdk.localcluster.node.fake_gpus import FakeGpus, write_reading
from devservers_sdk.manifests import MAX_AUTO_NPROCS, OperatorConfig, build_statefulset, nprocs_per_node
from devservers_sdk.models import CostStatus, DevServer, DevServerFlavor, MinGpuUtilization
from devservers_sdk.status import derive_status, explain_unschedulable

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CREATED = NOW - timedelta(hours=1)


def flavor(gpus: int, **spec: Any) -> DevServerFlavor:
    limits = {"cpu": "1", **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    return DevServerFlavor.from_manifest({"apiVersion": "devservers.io/v1", "kind": "DevServerFlavor",
                                          "metadata": {"name": f"f{gpus}"},
                                          "spec": {"resources": {"limits": limits}, **spec}})


def devserver(*, status: dict[str, Any] | None = None, annotations: dict[str, str] | None = None,
              **spec: Any) -> DevServer:
    return DevServer.from_manifest({
        "apiVersion": "devservers.io/v1", "kind": "DevServer",
        "metadata": {"name": "mydev", "namespace": "alice", "uid": "u-1", "generation": 1,
                     "creationTimestamp": CREATED.strftime("%Y-%m-%dT%H:%M:%SZ"), "annotations": annotations or {}},
        "spec": {"owner": "alice", "flavor": "f", **spec},
        "status": status or {},
    })


def env_of(server: DevServer, flavor_: DevServerFlavor) -> dict[str, str]:
    container = build_statefulset(server, flavor_, OperatorConfig())["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", "") for item in container["env"]}


# -- nprocsPerNode: auto -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("gpus", "expected"), [(4, 4), (8, 8), (0, 1)])
def test_auto_is_the_flavors_gpu_count_or_one(gpus: int, expected: int) -> None:
    server = devserver(mode="distributed", distributed={"worldSize": 2, "nprocsPerNode": "auto"})
    assert nprocs_per_node(server, flavor(gpus)) == expected
    env = env_of(server, flavor(gpus))
    assert env["PET_NPROC_PER_NODE"] == env["NPROC_PER_NODE"] == str(expected)


def test_auto_stays_a_storable_number_for_an_absurd_flavor() -> None:
    server = devserver(mode="distributed", distributed={"nprocsPerNode": "auto"})
    absurd = DevServerFlavor.from_manifest({"apiVersion": "devservers.io/v1", "kind": "DevServerFlavor",
                                            "metadata": {"name": "huge"},
                                            "spec": {"resources": {"requests": {"nvidia.com/gpu": "1e400"}}}})
    assert nprocs_per_node(server, absurd) == MAX_AUTO_NPROCS


def test_a_number_is_kept_and_a_standalone_server_with_gpus_gets_torchrun_hints() -> None:
    fixed = devserver(mode="distributed", distributed={"nprocsPerNode": 2})
    assert env_of(fixed, flavor(8))["PET_NPROC_PER_NODE"] == "2"
    solo = env_of(devserver(), flavor(4))
    assert solo["PET_NPROC_PER_NODE"] == solo["NPROC_PER_NODE"] == "4" and "PET_NNODES" not in solo
    assert "PET_NPROC_PER_NODE" not in env_of(devserver(), flavor(1))  # one GPU: nothing to spread


@pytest.mark.parametrize("bad", [0, "all", True, -1])
def test_nprocs_per_node_refuses_what_is_neither_a_count_nor_auto(bad: Any) -> None:
    with pytest.raises(ValueError, match="nprocs"):
        devserver(mode="distributed", distributed={"nprocsPerNode": bad})


# -- Pending, in words ---------------------------------------------------------------------------------


def node(*, gpus: int = 0, labels: dict[str, str] | None = None, local: bool = True) -> dict[str, Any]:
    all_labels = {"kubernetes.io/hostname": "n", **({LOCAL_CLUSTER_LABEL: "true"} if local else {}), **(labels or {})}
    allocatable = {"cpu": "64", **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    return {"metadata": {"name": "n", "labels": all_labels}, "status": {"allocatable": allocatable}}


def pending_pod(*, gpus: int = 0, selector: dict[str, str] | None = None) -> dict[str, Any]:
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    return {
        "metadata": {"name": "mydev-0", "labels": {"apps.kubernetes.io/pod-index": "0"}},
        "spec": {"containers": [{"name": "devserver", "resources": {"limits": limits}}],
                 **({"nodeSelector": selector} if selector else {})},
        "status": {"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}]},
    }


def test_no_node_with_gpus_on_the_local_cluster_names_the_remedy() -> None:
    reason, text = explain_unschedulable(pending_pod(gpus=1), [node()]) or ("", "")
    assert reason == "NoNodeOffersResource"
    assert text == "no node offers nvidia.com/gpu; the local cluster has none (start it with --gpus N)"
    _, elsewhere = explain_unschedulable(pending_pod(gpus=1), [node(local=False)]) or ("", "")
    assert elsewhere == "no node offers nvidia.com/gpu"


def test_too_many_gpus_for_any_node_and_a_selector_nothing_matches() -> None:
    _, text = explain_unschedulable(pending_pod(gpus=16), [node(gpus=8)]) or ("", "")
    assert text == "no node offers 16 nvidia.com/gpu; the most on one node is 8 (start the local cluster with --gpus 16)"
    reason, text = explain_unschedulable(pending_pod(selector={"pool": "a100"}), [node(local=False)]) or ("", "")
    assert (reason, text) == ("NoMatchingNode", "no node has the labels pool=a100 that the flavor's nodeSelector asks for")
    _, text = explain_unschedulable(pending_pod(selector={"nvidia.com/gpu.present": "true"}), [node()]) or ("", "")
    assert text.endswith("(start it with --gpus N, which sets nvidia.com/gpu.present=true)"), text


def test_gpus_that_exist_but_are_in_use_are_no_fault_of_the_cluster() -> None:
    assert explain_unschedulable(pending_pod(gpus=4, selector={"pool": "x"}), [node(gpus=8, labels={"pool": "x"})]) \
        is None


def test_an_unschedulable_server_stays_pending_with_degraded_true() -> None:
    server = devserver()
    statefulset = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1}}
    status = derive_status(server, statefulset=statefulset, pods=[pending_pod(gpus=1)], now=NOW, expires_at=None,
                           desired_stopped=False, nodes=[node()])
    degraded = status.condition("Degraded")
    assert status.phase == "Pending" and degraded is not None and degraded.status == "True"
    assert degraded.reason == "NoNodeOffersResource"
    assert "pod mydev-0 cannot be scheduled: no node offers nvidia.com/gpu" in (status.message or "")
    assert "devctl delete mydev" in (status.message or "")
    without_nodes = derive_status(server, statefulset=statefulset, pods=[pending_pod(gpus=1)], now=NOW,
                                  expires_at=None, desired_stopped=False)
    assert (without_nodes.condition("Degraded") or degraded).status == "False"


# -- the GPU utilisation floor ---------------------------------------------------------------------------

POLICY = {"minGpuUtilization": {"percent": 10, "window": "1h"}}


def reading(at: datetime, percent: float) -> ProbeReport:
    return ProbeReport(observed_at=at, interactive_sessions=1, cpu_seconds=0, window_seconds=1,
                       gpu_utilization=percent)


def test_low_since_starts_at_the_first_low_reading_and_ends_at_a_busy_one() -> None:
    policy = MinGpuUtilization(percent=10, window="1h")
    start = NOW - timedelta(hours=2)
    low = track_gpu_use(policy, None, reading(start, 3))
    assert low == start
    assert track_gpu_use(policy, low, reading(NOW, 4)) == start
    assert track_gpu_use(policy, low, reading(NOW, 50)) is None
    assert track_gpu_use(policy, low, ProbeReport(observed_at=NOW, error="exec refused")) == start
    assert track_gpu_use(policy, low, reading(NOW, 3), started_at=NOW - timedelta(minutes=1)) == NOW
    assert track_gpu_use(None, low, reading(NOW, 3)) is None


def test_gpus_low_for_the_window_stop_the_server_even_with_a_shell_open() -> None:
    server = devserver(lifecycle=POLICY)
    at_3 = plan(server, now=NOW, flavor_spec=None, probe=reading(NOW, 3), gpu_low_since=NOW - timedelta(hours=1))
    assert at_3.action == "stop_low_gpu" and at_3.reason == "LowGpuUtilization"
    assert "below 10%" in at_3.message and "devctl start mydev" in at_3.message
    # 50 %: never low, so nothing to stop.
    busy = reading(NOW, 50)
    low_since = track_gpu_use(server.spec.lifecycle.min_gpu_utilization, None, busy)
    assert plan(server, now=NOW, flavor_spec=None, probe=busy, gpu_low_since=low_since).action == "none"


def test_the_stop_is_warned_ahead_and_scheduled() -> None:
    server = devserver(lifecycle=POLICY)
    early = plan(server, now=NOW, flavor_spec=None, probe=reading(NOW, 3), gpu_low_since=NOW - timedelta(minutes=10))
    assert early.action == "none" and early.gpu_warning is None
    assert early.requeue_after == timedelta(minutes=35).total_seconds()  # the warning, 15 min ahead of the stop
    soon = plan(server, now=NOW, flavor_spec=None, probe=reading(NOW, 3), gpu_low_since=NOW - timedelta(minutes=50))
    assert soon.action == "none" and soon.gpu_warning is not None
    assert "will be stopped at 2026-05-01T12:10:00Z" in soon.gpu_warning and "devctl stop mydev" in soon.gpu_warning
    stale = plan(server, now=NOW, flavor_spec=None, probe=reading(NOW - timedelta(hours=1), 3),
                 gpu_low_since=NOW - timedelta(hours=2))
    assert stale.action == "none", "a stale reading proves nothing about now"


def test_a_server_stopped_for_its_gpus_says_so() -> None:
    server = devserver(lifecycle=POLICY, annotations={"devservers.io/desired-state": "Stopped"})
    decision = plan(devserver(lifecycle=POLICY), now=NOW, flavor_spec=None, probe=reading(NOW, 3),
                    gpu_low_since=NOW - timedelta(hours=1))
    status = derive_status(server, statefulset=None, pods=[], now=NOW, expires_at=None, desired_stopped=True,
                           lifecycle=decision)
    assert status.stopped_reason == "LowGpuUtilization"
    assert "because its GPUs stayed below lifecycle.minGpuUtilization" in (status.message or "")


# -- cost ----------------------------------------------------------------------------------------------


def test_prices_parse_exactly_and_refuse_nonsense() -> None:
    assert parse_price("32.77 USD") == Price(Decimal("32.77"), "USD")
    assert parse_price("2.5") == Price(Decimal("2.5"), None)
    with pytest.raises(ValueError, match="not a price"):
        parse_price("cheap")
    with pytest.raises(ValueError, match="costPerHour"):
        flavor(0, costPerHour="2,50 EUR")
    assert flavor(0, costPerHour=2.5).spec.cost_per_hour == "2.5"
    assert (format_money(Decimal("1234.5"), "EUR"), format_money(Decimal("0.00123"))) == ("1234.50 EUR", "0.0012")


def test_running_time_is_counted_in_stretches_and_stopped_time_is_free() -> None:
    price = Price(Decimal(36), "EUR")  # 0.01 a pod-second
    start = NOW
    cost, closed = account(None, price=price, running_pods=2, now=start)
    assert cost is not None and closed is None and cost.since == start and cost.running_pods == 2
    assert cost_at(cost, start + timedelta(seconds=100)) == (Decimal("2.000000"), 200)
    same, none = account(cost, price=price, running_pods=2, now=start + timedelta(seconds=50))
    assert same == cost and none is None, "nothing changed: nothing to write"
    stopped, closed = account(cost, price=price, running_pods=0, now=start + timedelta(seconds=100))
    assert stopped is not None and closed == Stretch(start, start + timedelta(seconds=100), 2, Decimal("2.000000"))
    assert cost_at(stopped, start + timedelta(days=3)) == (Decimal("2.000000"), 200)
    # A price change closes the stretch at the old price.
    again, _ = account(stopped, price=price, running_pods=1, now=start + timedelta(seconds=200))
    dearer, closed = account(again, price=Price(Decimal(72), "EUR"), running_pods=1,
                             now=start + timedelta(seconds=300))
    assert closed is not None and closed.amount == Decimal("1.000000") and dearer is not None
    assert cost_at(dearer, start + timedelta(seconds=400)) == (Decimal("5.000000"), 400)
    # As the server sends it (camelCase), for renderers without pydantic.
    assert cost_at(dearer.model_dump(mode="json", by_alias=True), start + timedelta(seconds=400))[0] == Decimal(5)
    assert account(None, price=None, running_pods=1, now=start) == (None, None)


def entry(uid: str, *, deleted: datetime | None = None, owner: str = "alice", amount: str = "1",
          stretches: tuple[Stretch, ...] = ()) -> LedgerEntry:
    cost = CostStatus(per_hour="3600", currency="EUR", accumulated=amount, pod_seconds=int(Decimal(amount)))
    return LedgerEntry(uid=uid, name=uid, namespace="team", owner=owner, flavor="gpu", cost=cost,
                       stretches=stretches, updated=NOW, deleted=deleted)


def test_the_ledger_reads_back_what_it_wrote_and_stays_bounded() -> None:
    stretch = Stretch(NOW - timedelta(hours=1), NOW, 1, Decimal("3600"))
    original = entry("u1", deleted=NOW, stretches=(stretch,))
    assert LedgerEntry.from_json("u1", original.to_json()) == original
    assert LedgerEntry.from_json("u1", "{not json") is None and LedgerEntry.from_json("u1", '{"name": 1}') is None
    grown = original
    for index in range(LEDGER_MAX_STRETCHES + 5):
        at = NOW + timedelta(hours=index)
        grown = grown.with_stretch(Stretch(at, at + timedelta(minutes=30), 1, Decimal(1)))
    assert len(grown.stretches) == LEDGER_MAX_STRETCHES
    assert sum((s.amount for s in grown.stretches), Decimal(0)) == Decimal(3600 + LEDGER_MAX_STRETCHES + 5)

    old = {f"old{i}": entry(f"old{i}", deleted=NOW - LEDGER_RETENTION - timedelta(days=1)) for i in range(3)}
    deleted = {f"d{i}": entry(f"d{i}", deleted=NOW - timedelta(minutes=i)) for i in range(LEDGER_MAX_ENTRIES)}
    live = {f"live{i}": entry(f"live{i}") for i in range(5)}
    kept = prune_ledger({**old, **deleted, **live}, now=NOW)
    assert len(kept) == LEDGER_MAX_ENTRIES and set(live) <= set(kept) and not set(old) & set(kept)
    assert f"d{LEDGER_MAX_ENTRIES - 1}" not in kept, "the longest-deleted go first"


def test_the_report_groups_by_owner_and_flavor_and_spreads_a_stretch_over_since() -> None:
    two_hours = Stretch(NOW - timedelta(hours=2), NOW, 1, Decimal("7200"))
    rows = cost_report([entry("a", amount="7200", stretches=(two_hours,)), entry("b", amount="10", deleted=NOW),
                        entry("c", owner="bob", amount="5")], now=NOW)
    assert [(r.owner, r.flavor, len(r.servers), r.deleted, r.amount) for r in rows] == [
        ("alice", "gpu", 2, 1, Decimal("7210")), ("bob", "gpu", 1, 0, Decimal("5"))]
    recent = cost_report([entry("a", amount="7200", stretches=(two_hours,))], now=NOW, since=NOW - timedelta(hours=1))
    assert recent[0].amount == Decimal("3600") and recent[0].pod_hours == Decimal("1.00")
    assert cost_report([entry("c", owner="bob")], now=NOW, owner="alice") == []
    assert isinstance(rows[0], CostRow) and rows[0].to_json()["cost"] == "7210.0000"


# -- the fake nvidia-smi, read by the operator's probe parser -----------------------------------------------


def test_the_fake_nvidia_smi_reports_what_the_test_wrote(tmp_path: Path) -> None:
    gpus = FakeGpus(tmp_path, 8)
    gpus.install()
    assert gpus.labels()["nvidia.com/gpu.present"] == "true"
    env = gpus.container_env(pod_uid="uid-1", container="c", namespace="ns", pod_name="p-0", wanted=2,
                             path=os.environ.get("PATH", ""))
    other = gpus.container_env(pod_uid="uid-2", container="c", namespace="ns", pod_name="q-0", wanted=2, path="")
    assert (env["LOCALCLUSTER_GPUS"], other["LOCALCLUSTER_GPUS"]) == ("0,1", "2,3")
    write_reading(tmp_path, 42, memory_used_mib=1000, gpu=1)
    write_reading(tmp_path, 7)

    def smi(*args: str) -> str:
        return subprocess.run(["nvidia-smi", *args], env=env, capture_output=True, text=True, check=True,
                              timeout=30).stdout

    query = smi("--query-gpu=index,utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits")
    assert query.splitlines() == ["0, 7, 0, 81920", "1, 42, 1000, 81920"]
    report = parse_probe("sessions=0\ncpu_ticks=0\nwindow=1\n" + "".join(f"gpu={line}\n" for line in query.splitlines()),
                         observed_at=NOW, rank=3)
    assert report.gpu_utilization == 42 and [(g.rank, g.index, g.utilization, g.memory_used_mib) for g in report.gpus] \
        == [(3, 0, 7.0, 0.0), (3, 1, 42.0, 1000.0)]
    write_reading(tmp_path, 55, pod=("ns", "p-0"))
    assert smi("--query-gpu=utilization.gpu", "--format=csv,noheader,nounits").split() == ["55", "55"]
    assert len(smi("-L").splitlines()) == 2
    gpus.release("uid-1")
    assert gpus.allocate("uid-3/c", 3) == [0, 1, 4]


# -- shown by every front end ----------------------------------------------------------------------------


def gpu_server() -> DevServer:
    readings = [{"rank": rank, "index": index, "utilization": 3.0 + 10 * rank, "memoryUsedMib": 512.0,
                 "memoryTotalMib": 81920.0, "observedAt": "2026-05-01T11:59:00Z"} for rank in (0, 1) for index in (0, 1)]
    cost = {"perHour": "3600", "currency": "EUR", "accumulated": "10", "podSeconds": 10, "runningPods": 2,
            "since": "2026-05-01T11:59:00Z"}
    return devserver(mode="distributed", distributed={"worldSize": 2, "nprocsPerNode": "auto"},
                     status={"phase": "Running", "gpus": readings, "cost": cost, "nprocsPerNode": 2})


def test_the_magics_list_and_the_dashboard_show_gpu_use_and_cost() -> None:
    from devservers_magics.tables import DevServerTable
    from devservers_ui.pages import details

    from devservers_sdk.client import DevServerDescription

    table = str(DevServerTable([gpu_server()]))
    header, row = table.splitlines()
    assert header.split()[-3:] == ["GPU", "USE", "COST"] and "0:3%,3% 1:13%,13%" in row and "EUR" in row
    assert "COST" not in str(DevServerTable([devserver()])), "no cost, no column"
    page = details(DevServerDescription(gpu_server()),
                   {"phase": "Running", "ready": "2/2", "expiresAt": None, "resourceVersion": "7"})
    assert "rank 1 GPU 0: 13%, 512 of 81920 MiB" in page and "Cost so far" in page and "EUR" in page
    assert "auto (2)" in page
