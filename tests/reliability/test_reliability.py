"""Issue 8, reliability: the seeded workload survives an operator SIGKILLed mid-flight and a flaky API server.

Each test brings up its own local cluster and operator subprocess (``workload.Platform``), never the session's
``platform`` fixture, whose cluster-wide operator would fight this one: the emulator, or with
``DEVSERVERS_TEST_BACKEND=kubernetes`` the real control plane (where the chaos run goes too; injected API
faults and request counts are the emulator's). The size here fits CI (40
operations, 3 kills); ``bench/reliability.py`` runs the full size of the issue (200 operations, 12 kills) and
prints the same figures in a table.

What must hold at the end (``workload.converge`` and ``read_markers``): every surviving DevServer matches the
plan and is Running or Stopped as its desired state says, with its StatefulSet, Service, home claim and
pods as they should be; nothing is orphaned or duplicated; every marker written into a persistent home
is still there. With faults, the end state is the same as without, and the API requests stay within 3 times.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devservers_sdk.localcluster.apiserver.faults import FaultSettings
from devservers_sdk.localcluster.pytest_plugin import REAL_CLUSTER_ENV, backend
from tests.reliability.workload import Report, plan, run_scenario

pytestmark = pytest.mark.slow

OPS = 40
KILLS = 3
MAX_LIVE = 10
CHAOS_SEED = 9  # seeds whose plans use every operation and end with stopped servers holding markers
FAULT_SEED = 4
FAULTS = "error=0.03,throttle=0.01,conflict=0.01,watch_cut=2,compact_every=4"
"""About 5 % of requests fail (500, 429 with Retry-After, 409 on writes); watch streams live 1-3 s; history
is compacted every 4 s, so watches resumed from an old resourceVersion get 410 and list again."""


def show(capsys: pytest.CaptureFixture[str], *reports: Report) -> None:
    with capsys.disabled():
        print()
        for report in reports:
            print(report.line())


def markers_planned(seed: int) -> int:
    return sum(len(expected.markers) for expected in plan(seed, OPS, max_live=MAX_LIVE)[1].values())


@pytest.mark.parametrize("seed", [CHAOS_SEED, FAULT_SEED])
def test_the_plans_exercise_everything(seed: int) -> None:
    ops, expected = plan(seed, OPS, max_live=MAX_LIVE)
    assert {op.kind for op in ops} == {"create", "update", "extend", "stop", "start", "delete", "mark"}
    assert {op.image is not None for op in ops if op.kind == "update"} == {True, False}  # image and flavor
    assert any(e.stopped and e.markers for e in expected.values())  # a marker read back after a start
    assert any(not e.home for e in expected.values()) and any(e.home for e in expected.values())
    assert plan(seed, OPS, max_live=MAX_LIVE) == (ops, expected)  # the seed alone decides


@pytest.mark.timeout(300)
def test_operator_killed_during_the_workload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.environ.get(REAL_CLUSTER_ENV):
        pytest.skip("brings up a local cluster of its own; an outside cluster cannot be had fresh per test")
    report = run_scenario(tmp_path / "chaos", label=f"chaos ({backend()})", seed=CHAOS_SEED, ops=OPS,
                          kills=KILLS, max_live=MAX_LIVE, control_plane=backend())
    show(capsys, report)
    assert report.kills == KILLS and report.operator_starts == KILLS + 1
    assert report.end.problems == [], report.line()
    assert report.end.markers_kept == markers_planned(CHAOS_SEED) > 0
    assert report.end.running + report.end.stopped == len(report.end.summary) > 0


@pytest.mark.emulator_only  # injects faults and counts requests in the emulator
@pytest.mark.timeout(300)
def test_flaky_api_server_converges_to_the_same_end_state(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    baseline = run_scenario(tmp_path / "baseline", label="fault-free", seed=FAULT_SEED, ops=OPS, max_live=MAX_LIVE)
    faulty = run_scenario(tmp_path / "faults", label="faults", seed=FAULT_SEED, ops=OPS, max_live=MAX_LIVE,
                          faults=FaultSettings.parse(f"{FAULTS},seed={FAULT_SEED}"))
    show(capsys, baseline, faulty)
    with capsys.disabled():
        print(f"API requests: {baseline.requests} fault-free, {faulty.requests} with faults "
              f"({faulty.requests / baseline.requests:.2f}x)")
    assert baseline.end.problems == [], baseline.line()
    assert faulty.end.problems == [], faulty.line()
    assert faulty.end.summary == baseline.end.summary
    assert faulty.end.markers_kept == baseline.end.markers_kept == markers_planned(FAULT_SEED) > 0
    for fault in ("500", "429", "409", "watch_cut", "compaction"):
        assert faulty.faults.get(fault, 0) > 0, faulty.faults  # every kind of trouble really happened
    assert faulty.requests <= 3 * baseline.requests, (baseline.requests, faulty.requests)
