"""Lifecycle per object: extend moves the deadline, expiry warns then deletes, idle servers stop (home kept)
and start again, and a busy one is left alone. The operator's idle clock is scaled (see conftest)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devservers_sdk.localcluster.pytest_plugin import wait_for
from tests.operator.conftest import OperatedNamespace, rfc3339

pytestmark = pytest.mark.slow

DESIRED_STATE = "devservers.io/desired-state"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_extend_moves_expires_at(operated: OperatedNamespace) -> None:
    created = operated.create("ext", lifecycle={"timeToLive": "2h"})
    born = _parse(created["metadata"]["creationTimestamp"])
    server = operated.wait_phase("ext", "Running", check=lambda s: bool(s["status"].get("expiresAt")))
    assert _parse(server["status"]["expiresAt"]) == born + timedelta(hours=2)

    # What DevServerClient.extend writes: a new expirationTime, and no timeToLive.
    later = born + timedelta(hours=5)
    operated.patch("ext", {"spec": {"lifecycle": {"expirationTime": rfc3339(later), "timeToLive": None}}})
    server = operated.wait_phase("ext", "Running", check=lambda s: s["status"].get("expiresAt") == rfc3339(later))
    expiring = next(c for c in server["status"]["conditions"] if c["type"] == "ExpiringSoon")
    assert expiring["status"] == "False" and rfc3339(later) in expiring["message"]


def test_expiry_warns_once_then_deletes_everything(operated: OperatedNamespace) -> None:
    # Long enough for the pod to run first: on the real control plane a home claim is provisioned, bound and
    # authorized for the node before the pod starts, which took more than 5 s on a busy machine.
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    operated.create("brief", persistentHomeSize="1Gi", lifecycle={"expirationTime": rfc3339(deadline)})
    # Within the 15-minute warning lead at once: the condition and one Event.
    server = operated.wait_phase(
        "brief",
        "Running",
        check=lambda s: any(
            c["type"] == "ExpiringSoon" and c["status"] == "True" for c in s["status"]["conditions"]
        ),
    )
    assert _parse(server["status"]["expiresAt"]) == deadline.replace(microsecond=0)
    assert operated.claims("brief"), "the home volume exists before expiry"
    operated.wait_gone("brief", timeout=90)
    # A real API server may serve the deletion before the Event that announced it.
    wait_for(lambda: "Expired" in operated.event_reasons("brief"), timeout=60, message="the Expired Event")
    reasons = operated.event_reasons("brief")
    assert reasons.count("ExpiringSoon") == 1, reasons
    # Deletion cascades through ownerReferences and the claim retention policy.
    operated.wait_for_nothing_left("brief")


def _stopped_for_idle(server: dict[str, Any]) -> bool:
    status = server["status"]
    return status.get("stoppedReason") == "Idle" and not status.get("pods")


def test_idle_server_stops_keeping_its_home_and_starts_again(operated: OperatedNamespace) -> None:
    # Auto shutdown off until the home holds the file: the idle clock (3 s on the scaled clock) runs from the pod's
    # start, so on a loaded machine the server could be stopped before the test ever saw it Running.
    operated.create("sleepy", persistentHomeSize="1Gi", lifecycle={"idleTimeout": 60, "autoShutdown": False})
    operated.wait_phase("sleepy", "Running")
    operated.exec("sleepy-0", "echo kept > /home/dev/work.txt")
    operated.patch("sleepy", {"spec": {"lifecycle": {"autoShutdown": True}}})

    server = operated.wait_phase("sleepy", "Stopped", check=_stopped_for_idle, timeout=120)
    assert server["metadata"]["annotations"][DESIRED_STATE] == "Stopped"
    idle = next(c for c in server["status"]["conditions"] if c["type"] == "Idle")
    assert idle["status"] == "True" and idle["reason"] == "IdleTimeout"
    assert "the in-pod probe saw 0 interactive session(s)" in idle["message"], idle
    assert server["status"]["stoppedAt"] and "devctl start sleepy" in server["status"]["message"]
    assert operated.statefulset("sleepy").spec.replicas == 0
    assert [claim.metadata.name for claim in operated.claims("sleepy")] == ["home-sleepy-0"]
    wait_for(lambda: "IdleStop" in operated.event_reasons("sleepy"), timeout=60, message="the IdleStop Event")

    # `devctl start` writes desired-state Running; keep it up for the read-back this time.
    operated.patch(
        "sleepy",
        {
            "metadata": {"annotations": {DESIRED_STATE: "Running"}},
            "spec": {"lifecycle": {"autoShutdown": False}},
        },
    )
    server = operated.wait_phase("sleepy", "Running")
    assert server["status"].get("stoppedReason") is None
    assert operated.exec("sleepy-0", "cat /home/dev/work.txt").strip() == "kept"


def test_busy_server_is_not_stopped(operated: OperatedNamespace) -> None:
    operated.create("busy", lifecycle={"idleTimeout": 60})
    operated.wait_phase("busy", "Running")
    # Work started in the background (nohup-style): only the in-pod probe can see it.
    # It outlasts the wait: work that stopped before a slow probe (a busy machine) saw it would read as idle.
    operated.exec("busy-0", "nohup timeout 150 sh -c 'while :; do :; done' >/dev/null 2>&1 &")
    server = operated.wait_phase(
        "busy", "Running", check=lambda s: s["status"].get("lastActivitySource") == "cpu", timeout=120
    )
    idle = next(c for c in server["status"]["conditions"] if c["type"] == "Idle")
    assert idle["status"] == "False" and idle["reason"] == "Active"
    assert server["metadata"].get("annotations", {}).get(DESIRED_STATE) != "Stopped"


def test_a_failing_probe_never_stops_a_server(operated: OperatedNamespace) -> None:
    # The container never runs (image pull fails), so the in-pod probe cannot run either.
    operated.create("blind", image="registry.invalid/x:1", lifecycle={"idleTimeout": 60})

    def unconfirmed(server: dict[str, Any]) -> bool:
        idle = next((c for c in server["status"]["conditions"] if c["type"] == "Idle"), {})
        return idle.get("reason") == "IdleUnconfirmed" and "the in-pod probe failed" in idle.get(
            "message", ""
        )

    server = operated.wait_phase("blind", "Failed", check=unconfirmed, timeout=120)
    idle = next(c for c in server["status"]["conditions"] if c["type"] == "Idle")
    assert idle["status"] == "Unknown" and "not stopping until a probe confirms" in idle["message"], idle
    assert server["metadata"].get("annotations", {}).get(DESIRED_STATE) != "Stopped"
    assert "IdleStop" not in operated.event_reasons("blind")
