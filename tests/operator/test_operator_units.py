"""The operator's pure parts: the probe's parser (and the script on this machine), the settings from the
environment, the work queue's debounce, deadlines, serialisation and backoff, and which status writes may
wait."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from devservers_operator.metrics import Counters
from devservers_operator.probe import parse_probe, probe_command
from devservers_operator.reconcile import _pod_news, progress_only
from devservers_operator.settings import OperatorSettings
from devservers_operator.workqueue import WorkQueue

NOW = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
T = TypeVar("T")


# -- probe -----------------------------------------------------------------------------------------------


def test_probe_output_is_parsed_into_a_report() -> None:
    report = parse_probe(
        "sessions=1\nkernels=1\ncpu_ticks=50\nclk_tck=100\nwindow=1\ngpu=3 71 \n", observed_at=NOW
    )
    assert report.ok and report.interactive_sessions == 2 and report.cpu_cores == 0.5
    assert report.gpu_utilization == 71.0 and report.active_signal() == "session"


def test_idle_probe_output_shows_no_activity() -> None:
    report = parse_probe("sessions=0\nkernels=0\ncpu_ticks=1\nclk_tck=100\nwindow=1\n", observed_at=NOW)
    assert report.ok and report.gpu_utilization is None and report.active_signal() is None


@pytest.mark.parametrize(("stdout", "returncode"), [("garbage", 0), ("sessions=x\n", 0), ("", 127)])
def test_a_broken_probe_is_a_failed_report_never_an_idle_one(stdout: str, returncode: int) -> None:
    report = parse_probe(stdout, observed_at=NOW, returncode=returncode, stderr="sh: not found")
    assert not report.ok and report.active_signal() is None and report.error


def test_probe_script_runs_under_posix_sh_and_sees_cpu_work() -> None:
    busy = subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"])
    try:
        result = subprocess.run(probe_command(0.5), capture_output=True, text=True, timeout=20)
    finally:
        busy.kill()
        busy.wait()
    report = parse_probe(result.stdout, observed_at=NOW, returncode=result.returncode, stderr=result.stderr)
    assert report.ok, report.error
    assert report.window_seconds == 0.5 and report.cpu_cores is not None and report.cpu_cores >= 0.3, report


# -- settings --------------------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = OperatorSettings.from_env({})
    assert settings.namespaces == () and settings.warning_lead == timedelta(minutes=15)
    assert settings.probe_interval == timedelta(minutes=1) and settings.idle_timeout_scale == 1.0
    assert settings.liveness == "http://0.0.0.0:8080/healthz" and settings.max_concurrent_reconciles > 1
    assert settings.objects.default_image.startswith("pytorch/pytorch")


def test_settings_from_environment() -> None:
    settings = OperatorSettings.from_env(
        {
            "DEVSERVERS_NAMESPACES": " ml, alice ,ml",
            "DEVSERVERS_WARNING_LEAD": "1h",
            "DEVSERVERS_PROBE_INTERVAL": "30s",
            "DEVSERVERS_LIVENESS": "",
            "DEVSERVERS_DEFAULT_IMAGE": "img:1",
            "DEVSERVERS_IDLE_TIMEOUT_SCALE": "0.5",
        }
    )
    assert settings.namespaces == ("alice", "ml") and settings.warning_lead == timedelta(hours=1)
    assert settings.probe_interval == timedelta(seconds=30) and settings.liveness is None
    assert settings.objects.default_image == "img:1" and settings.idle_timeout_scale == 0.5
    assert OperatorSettings.from_env({"DEVSERVERS_NAMESPACES": "*"}).namespaces == ()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DEVSERVERS_WARNING_LEAD", "15"),
        ("DEVSERVERS_PROBE_WINDOW", "0"),
        ("DEVSERVERS_MAX_CONCURRENT_RECONCILES", "many"),
        ("DEVSERVERS_MASTER_PORT", "0"),
        ("DEVSERVERS_METRICS", "0.0.0.0:8081"),
        ("DEVSERVERS_METRICS", "https://0.0.0.0:8081/metrics"),
    ],
)
def test_bad_settings_name_the_variable(key: str, value: str) -> None:
    with pytest.raises(ValueError, match="DEVSERVERS_"):
        OperatorSettings.from_env({key: value})


# -- work queue ------------------------------------------------------------------------------------------


class _VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer whenever nothing is ready to run.

    The queue's debounce, deadlines and backoff are loop times, so these tests read them exactly, however
    busy the machine: on the real clock, a loop stalled for a fraction of a second (two cores, other suites
    running) fired a timer late, and a test that slept 0.4 s to let a reconcile run found it had not.
    """

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def _run_once(self) -> None:
        ready, scheduled = self._ready, self._scheduled  # type: ignore[attr-defined]
        if not ready and scheduled:
            self._now = max(self._now, scheduled[0].when())
        super()._run_once()  # type: ignore[misc]


def _run(main: Coroutine[Any, Any, T]) -> T:
    loop = _VirtualClockLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


def test_a_burst_of_triggers_is_one_reconcile() -> None:
    async def main() -> list[str]:
        calls: list[str] = []

        async def work(key: str) -> float | None:
            calls.append(key)
            return None

        queue: WorkQueue[str] = WorkQueue(work, debounce=0.05)
        for _ in range(50):
            queue.trigger("a")
        queue.trigger("b")
        await asyncio.sleep(0.2)
        await queue.stop()
        return calls

    assert sorted(_run(main())) == ["a", "b"]


def test_one_reconcile_per_key_at_a_time_and_a_trigger_during_it_runs_once_more() -> None:
    async def main() -> tuple[int, int]:
        running = peak = runs = 0

        async def work(key: str) -> float | None:
            nonlocal running, peak, runs
            running += 1
            peak = max(peak, running)
            runs += 1
            await asyncio.sleep(0.1)
            running -= 1
            return None

        queue: WorkQueue[str] = WorkQueue(work, debounce=0.0)
        queue.trigger("a")
        await asyncio.sleep(0.02)
        for _ in range(5):
            queue.trigger("a")  # during the run
        await asyncio.sleep(0.4)
        await queue.stop()
        return peak, runs

    assert _run(main()) == (1, 2)


def test_the_earliest_deadline_wins_and_a_requeue_comes_back() -> None:
    async def main() -> tuple[list[float], float | None]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        seen: list[float] = []

        async def work(key: str) -> float | None:
            seen.append(round(loop.time() - start, 1))
            return 0.2 if len(seen) == 1 else None

        queue: WorkQueue[str] = WorkQueue(work, debounce=0.0)
        queue.schedule("a", 5.0)
        queue.schedule("a", 0.1)  # earlier: wins
        queue.schedule("a", 3.0)  # later: ignored
        await asyncio.sleep(0.5)
        left = queue.due_in("a")
        await queue.stop()
        return seen, left

    seen, left = _run(main())
    assert seen == [0.1, 0.3] and left is None


def test_failures_back_off_and_forget_drops_the_key() -> None:
    async def main() -> tuple[int, float | None, float | None]:
        async def work(key: str) -> float | None:
            raise RuntimeError("API down")

        queue: WorkQueue[str] = WorkQueue(work, debounce=0.0)
        queue.trigger("a")
        await asyncio.sleep(0.05)
        first = queue.due_in("a")
        queue.forget("a")
        after = queue.due_in("a")
        await queue.stop()
        return queue.errors, first, after

    errors, first, after = _run(main())
    assert errors == 1 and first is not None and 0.8 < first <= 1.0 and after is None


# -- status writes that may wait ---------------------------------------------------------------------


def _status(phase: str | None, message: str = "", **fields: object) -> dict[str, object]:
    conditions = fields.pop("conditions", [{"type": "Degraded", "status": "False", "reason": "AsExpected"}])
    status: dict[str, object] = {
        "phase": phase,
        "message": message,
        "observedGeneration": 1,
        "conditions": conditions,
    }
    status.update(fields)
    return {k: v for k, v in status.items() if v is not None}


def test_progress_on_the_way_up_may_wait() -> None:
    pending = _status("Pending", "waiting for the pods of rank 0 to be created")
    assert progress_only(
        pending, _status("Pending", "pod mydev-0 is not scheduled: waiting for the scheduler")
    )
    assert progress_only(pending, _status("Starting", "0/1 pods ready; mydev-0 is ContainerCreating"))
    assert progress_only(_status("Starting", "0/2 pods ready"), _status("Starting", "1/2 pods ready"))
    # The pod's start is activity, but on the way up it is the progress itself.
    assert progress_only(
        _status("Pending", lastActivityTime="2026-01-01T00:00:00Z", lastActivitySource="creation"),
        _status("Starting", lastActivityTime="2026-01-01T00:00:09Z", lastActivitySource="start"),
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (_status(None), _status("Pending")),  # the first status acknowledges the object
        (_status("Starting"), _status("Running")),
        (_status("Running"), _status("Starting")),
        (_status("Pending"), _status("Failed")),
        (_status("Starting"), _status("Stopping")),
        (_status("Pending"), _status("Pending", observedGeneration=2)),  # a spec change is acknowledged
        (_status("Pending"), _status("Pending", expiresAt="2026-01-01T00:00:00Z")),  # extend shows at once
        (  # activity recorded by a client is news, even on the way up
            _status("Starting", lastActivityTime="2026-01-01T00:00:00Z", lastActivitySource="start"),
            _status("Starting", lastActivityTime="2026-01-01T00:00:09Z", lastActivitySource="sdk"),
        ),
        (
            _status("Pending"),
            _status(
                "Pending", conditions=[{"type": "Degraded", "status": "True", "reason": "FlavorNotFound"}]
            ),
        ),
        (
            _status("Starting"),
            _status(
                "Starting",
                conditions=[
                    {"type": "Degraded", "status": "False", "reason": "AsExpected"},
                    {"type": "ExpiringSoon", "status": "True", "reason": "ExpiresSoon"},
                ],
            ),
        ),
    ],
)
def test_news_is_written_at_once(old: dict[str, object], new: dict[str, object]) -> None:
    assert not progress_only(old, new)


# -- API errors the operator must tell apart ------------------------------------------------------------


def test_a_create_in_a_terminating_namespace_is_not_a_permission_problem() -> None:
    """kube-apiserver's NamespaceLifecycle answer, as the real control plane sent it to the operator when a
    test's namespace was deleted under a DevServer: a 403 no admin can fix, which the reconcile drops."""
    from devservers_sdk.errors import NamespaceTerminatingError, PermissionDeniedError, error_from_api

    message = ('statefulsets.apps "img" is forbidden: unable to create new content in namespace team because '
               "it is being terminated")
    causes = [{"reason": "NamespaceTerminating", "message": "namespace team is being terminated",
               "field": "metadata.namespace"}]
    error = error_from_api(403, "Forbidden", message, kind="StatefulSet", name="img", namespace="team",
                           causes=causes)
    assert isinstance(error, NamespaceTerminatingError) and isinstance(error, PermissionDeniedError)
    assert "Namespace 'team' is being deleted" in str(error) and "Ask your cluster admin" not in str(error)
    rbac = error_from_api(403, "Forbidden", 'statefulsets.apps "img" is forbidden: User "x" cannot create',
                          kind="StatefulSet", name="img", namespace="team")
    assert type(rbac) is PermissionDeniedError and "Ask your cluster admin" in str(rbac)


# -- what the operator costs ----------------------------------------------------------------------------


def test_counters_render_as_prometheus_text() -> None:
    counters = Counters()
    counters.event("Pod", "progress")
    counters.event("Pod", "progress")
    counters.request("PATCH", "/apis/devservers.io/v1/namespaces/ns/devservers/x/status", "DevServer", named=True)
    counters.request("GET", "/api/v1/nodes", "Node", named=False)
    counters.status_writes += 1
    lines = counters.render().splitlines()
    assert 'devservers_operator_watch_events_total{kind="Pod",outcome="progress"} 2' in lines
    assert 'devservers_operator_api_requests_total{verb="patch",resource="DevServer/status"} 1' in lines
    assert 'devservers_operator_api_requests_total{verb="list",resource="Node"} 1' in lines
    assert "devservers_operator_status_writes_total 1" in lines
    assert OperatorSettings.from_env({"DEVSERVERS_METRICS": "http://127.0.0.1:9/metrics"}).metrics


def _pod(phase: str = "Pending", *, conditions: list[dict[str, str]] | None = None,
         waiting: str | None = None, **meta: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "restartCount": 0, "ready": False,
                                 "state": {"waiting": {"reason": waiting}} if waiting else {"running": {}}}
    return {"metadata": {"name": "x-0", "ownerReferences": [{"controller": True, "uid": "s"}], **meta},
            "status": {"phase": phase, "conditions": conditions or [], "containerStatuses": [container]}}


def test_a_pod_on_its_way_up_is_progress_and_trouble_is_news() -> None:
    assert not _pod_news(_pod(waiting="ContainerCreating"))
    assert not _pod_news(_pod("Running", conditions=[{"type": "Ready", "status": "False"}]))
    assert _pod_news(_pod("Running", conditions=[{"type": "Ready", "status": "True"}]))
    assert _pod_news(_pod(waiting="ImagePullBackOff"))
    assert _pod_news(_pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]))
    assert _pod_news(_pod("Running", deletionTimestamp="2026-01-01T00:00:00Z"))
    assert _pod_news(_pod("Failed"))
    orphan = _pod("Running")
    orphan["metadata"]["ownerReferences"] = []
    assert _pod_news(orphan)
