"""spec.lifecycle.checkpoint runs on every rank before the stops the system starts (idle stop, expiry), once
per stop; its outcome goes to an Event and status.lastCheckpoint; a hook that hangs is cut at its timeout and
the stop goes on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devservers_sdk.contract import DESIRED_STATE_ANNOTATION
from devservers_sdk.localcluster.pytest_plugin import wait_for
from tests.operator.conftest import OperatedNamespace, rfc3339

# Each test's bounded waits (a start, then a stop or a move, then Events) add up to more than the suite's 120 s
# on a loaded real plane.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

SAVE = ["sh", "-c", "echo saved-by-hook >> $HOME/hook.log && echo checkpoint written"]


def stopped(server: dict[str, Any]) -> bool:
    return server["status"].get("stoppedReason") == "Idle" and not server["status"].get("pods")


def event_messages(operated: OperatedNamespace, name: str, reason: str) -> list[str]:
    return [event.message for event in operated.events(name) if event.reason == reason]


def test_the_hook_runs_on_every_rank_before_an_idle_stop_once(operated: OperatedNamespace) -> None:
    # Auto shutdown off until both ranks run: the idle clock (3 s on the scaled clock) runs from the pods' start, so
    # on a loaded machine a rank that came up late would miss the idle stop's hook.
    operated.create("saver", mode="distributed", distributed={"worldSize": 2, "backend": "gloo"},
                persistentHomeSize="1Gi",
                lifecycle={"idleTimeout": 60, "autoShutdown": False,
                           "checkpoint": {"command": SAVE, "timeoutSeconds": 20}})
    operated.wait_phase("saver", "Running", timeout=120)
    grace = operated.statefulset("saver").spec.template.spec.termination_grace_period_seconds
    assert grace == 30, "the grace period covers the hook's 20 s and a margin"
    operated.patch("saver", {"spec": {"lifecycle": {"autoShutdown": True}}})

    server = operated.wait_phase("saver", "Stopped", check=stopped, timeout=120)
    outcome = server["status"]["lastCheckpoint"]
    assert (outcome["trigger"], outcome["succeeded"]) == ("IdleStop", True), outcome
    assert [(r["rank"], r["exitCode"], r["timedOut"]) for r in outcome["ranks"]] == [(0, 0, False), (1, 0, False)]
    assert all("checkpoint written" in r["outputTail"] for r in outcome["ranks"]), outcome
    wait_for(lambda: event_messages(operated, "saver", "CheckpointSaved"), timeout=60, message="a CheckpointSaved Event")
    assert "before the idle stop" in event_messages(operated, "saver", "CheckpointSaved")[0]

    operated.patch("saver", {"metadata": {"annotations": {DESIRED_STATE_ANNOTATION: "Running"}},
                         "spec": {"lifecycle": {"autoShutdown": False}}})
    operated.wait_phase("saver", "Running", timeout=120)
    for rank in (0, 1):  # the pods' preStop saw the operator's marker and did not run the hook again
        assert operated.exec(f"saver-{rank}", "cat $HOME/hook.log").splitlines() == ["saved-by-hook"]


def test_a_hanging_hook_is_cut_at_its_timeout_and_the_stop_goes_on(operated: OperatedNamespace) -> None:
    operated.create("hangs", lifecycle={"idleTimeout": 60, "checkpoint": {"command": ["sleep", "600"],
                                                                      "timeoutSeconds": 2}})
    operated.wait_phase("hangs", "Running", timeout=120)
    server = operated.wait_phase("hangs", "Stopped", check=stopped, timeout=120)
    outcome = server["status"]["lastCheckpoint"]
    assert (outcome["trigger"], outcome["succeeded"]) == ("IdleStop", False), outcome
    [rank] = outcome["ranks"]
    assert rank["timedOut"] is True and "exitCode" not in rank, rank
    assert rank["durationSeconds"] < 60, rank
    wait_for(lambda: event_messages(operated, "hangs", "CheckpointFailed"), timeout=60, message="CheckpointFailed")
    message = event_messages(operated, "hangs", "CheckpointFailed")[0]
    assert "rank 0 timed out after 2s" in message and "stopping anyway" in message, message


def test_the_hook_runs_before_expiry(operated: OperatedNamespace) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    operated.create("expires", lifecycle={"expirationTime": rfc3339(deadline),
                                      "checkpoint": {"command": SAVE, "timeoutSeconds": 10}})
    operated.wait_phase("expires", "Running", timeout=60)
    operated.wait_gone("expires", timeout=120)
    wait_for(lambda: {"CheckpointSaved", "Expired"} <= set(operated.event_reasons("expires")), timeout=60,
             message="the CheckpointSaved and Expired Events")
    events = {event.reason: event for event in operated.events("expires")}
    assert "before expiry" in events["CheckpointSaved"].message
    saved_at = events["CheckpointSaved"].last_timestamp or events["CheckpointSaved"].event_time
    expired_at = events["Expired"].last_timestamp or events["Expired"].event_time
    assert saved_at <= expired_at


def test_the_hook_runs_once_before_a_flavor_change_restarts_the_pods(operated: OperatedNamespace) -> None:
    operated.create("resized", persistentHomeSize="1Gi",
                lifecycle={"autoShutdown": False, "checkpoint": {"command": SAVE, "timeoutSeconds": 10}})
    operated.wait_phase("resized", "Running", timeout=120)
    operated.patch("resized", {"spec": {"flavor": "cpu-medium"}})
    server = operated.wait_phase("resized", "Running", timeout=120, check=lambda s: (
        (s["status"].get("lastCheckpoint") or {}).get("trigger") == "Restart"
        and s["status"].get("observedGeneration") == s["metadata"]["generation"]))
    assert server["status"]["lastCheckpoint"]["succeeded"] is True
    wait_for(lambda: event_messages(operated, "resized", "CheckpointSaved"), timeout=60, message="CheckpointSaved")
    assert "before the pods restart" in event_messages(operated, "resized", "CheckpointSaved")[0]
    wait_for(lambda: operated.statefulset("resized").status.current_revision
             == operated.statefulset("resized").status.update_revision, timeout=60, message="the rollout")
    assert len(event_messages(operated, "resized", "CheckpointSaved")) == 1
    assert operated.exec("resized-0", "cat $HOME/hook.log").splitlines() == ["saved-by-hook"]
