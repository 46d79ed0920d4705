"""Expiry, extension and idle decisions: per-object deadlines computed from plain datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devservers_sdk.contract import ACTIVITY_ANNOTATION, DESIRED_STATE_ANNOTATION
from devservers_sdk.errors import DevServerError, InvalidSpecError
from devservers_sdk.lifecycle import (
    PROBE_RETRY,
    Activity,
    LifetimeLimitError,
    ProbeReport,
    desired_stopped,
    expires_at,
    extend,
    idle_timeout,
    last_activity,
    plan,
)
from devservers_sdk.models import DevServer, DevServerFlavorSpec, DevServerSpec, LifecycleSpec

CREATED = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def spec(**lifecycle: Any) -> DevServerSpec:
    return DevServerSpec(owner="alice", flavor="gpu-small", lifecycle=LifecycleSpec(**lifecycle))


def flavor(**fields: Any) -> DevServerFlavorSpec:
    return DevServerFlavorSpec(**fields)


def devserver(
    *,
    lifecycle: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    deleting: bool = False,
) -> DevServer:
    metadata: dict[str, Any] = {
        "name": "mydev",
        "namespace": "alice",
        "uid": "u-1",
        "generation": 1,
        "creationTimestamp": "2025-01-31T12:00:00Z",
        "annotations": annotations or {},
    }
    if deleting:
        metadata["deletionTimestamp"] = "2025-01-31T13:00:00Z"
    return DevServer.from_manifest(
        {
            "apiVersion": "devservers.io/v1",
            "kind": "DevServer",
            "metadata": metadata,
            "spec": {"owner": "alice", "flavor": "gpu-small", "lifecycle": lifecycle or {}},
            "status": status or {},
        }
    )


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def quiet_probe(at: datetime) -> ProbeReport:
    return ProbeReport(
        observed_at=at, interactive_sessions=0, cpu_seconds=0.05, window_seconds=5.0, gpu_utilization=0.0
    )


# -- expiry ----------------------------------------------------------------------------------------------


def test_no_lifetime_and_no_flavor_maximum_means_no_expiry() -> None:
    assert expires_at(spec(), created_at=CREATED, flavor_spec=None) is None
    assert expires_at(spec(), created_at=CREATED, flavor_spec=flavor()) is None


def test_time_to_live_counts_from_creation() -> None:
    assert expires_at(spec(time_to_live="4h"), created_at=CREATED, flavor_spec=None) == CREATED + 4 * HOUR


def test_the_earlier_of_expiration_time_and_time_to_live_applies() -> None:
    early = CREATED + 2 * HOUR
    assert (
        expires_at(spec(expiration_time=early, time_to_live="4h"), created_at=CREATED, flavor_spec=None)
        == early
    )
    late = CREATED + 6 * HOUR
    assert (
        expires_at(spec(expiration_time=late, time_to_live="4h"), created_at=CREATED, flavor_spec=None)
        == CREATED + 4 * HOUR
    )


def test_the_flavor_maximum_caps_every_deadline_and_applies_when_none_is_set() -> None:
    capped = flavor(max_time_to_live="24h")
    assert expires_at(spec(time_to_live="2d"), created_at=CREATED, flavor_spec=capped) == CREATED + 24 * HOUR
    assert (
        expires_at(spec(expiration_time=CREATED + 30 * HOUR), created_at=CREATED, flavor_spec=capped)
        == CREATED + 24 * HOUR
    )
    assert expires_at(spec(), created_at=CREATED, flavor_spec=capped) == CREATED + 24 * HOUR
    assert expires_at(spec(time_to_live="1h"), created_at=CREATED, flavor_spec=capped) == CREATED + HOUR


def test_naive_datetimes_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        expires_at(spec(time_to_live="1h"), created_at=datetime(2025, 1, 31), flavor_spec=None)


# -- extend ----------------------------------------------------------------------------------------------


def test_extend_adds_to_the_current_deadline() -> None:
    new = extend(
        spec(time_to_live="4h"), created_at=CREATED, now=CREATED + HOUR, by=2 * HOUR, flavor_spec=None
    )
    assert new == CREATED + 6 * HOUR


def test_extend_after_the_deadline_counts_from_now() -> None:
    now = CREATED + 5 * HOUR
    assert (
        extend(spec(time_to_live="4h"), created_at=CREATED, now=now, by=HOUR, flavor_spec=None) == now + HOUR
    )


def test_extend_of_a_server_without_deadline_counts_from_now() -> None:
    now = CREATED + HOUR
    assert extend(spec(), created_at=CREATED, now=now, by=HOUR, flavor_spec=None) == now + HOUR


def test_extend_up_to_the_flavor_maximum_is_allowed() -> None:
    capped = flavor(max_time_to_live="24h")
    new = extend(
        spec(time_to_live="20h"), created_at=CREATED, now=CREATED + HOUR, by=4 * HOUR, flavor_spec=capped
    )
    assert new == CREATED + 24 * HOUR
    # Written as expirationTime (timeToLive dropped, as DevServerClient.extend does), it is the deadline.
    assert expires_at(spec(expiration_time=new), created_at=CREATED, flavor_spec=capped) == new


def test_extend_beyond_the_flavor_maximum_is_refused_with_the_way_out() -> None:
    capped = flavor(max_time_to_live="24h")
    with pytest.raises(LifetimeLimitError) as caught:
        extend(
            spec(time_to_live="20h"),
            created_at=CREATED,
            now=CREATED + HOUR,
            by=6 * HOUR,
            flavor_spec=capped,
            name="mydev",
        )
    error = caught.value
    message = str(error)
    assert "cannot extend DevServer 'mydev' by 6h" in message
    assert "maximum lifetime of its flavor 'gpu-small' (24h, ends at 2025-02-01T12:00:00Z)" in message
    assert "at most 4h more can be added" in message
    assert "Ask an admin" in message and "create a new server" in message
    assert isinstance(error, InvalidSpecError) and isinstance(error, ValueError)
    assert isinstance(error, DevServerError)
    assert error.field == "spec.lifecycle.expirationTime"
    assert error.cap == CREATED + 24 * HOUR
    assert error.requested == CREATED + 26 * HOUR


def test_extend_at_the_limit_says_so() -> None:
    capped = flavor(max_time_to_live="24h")
    with pytest.raises(LifetimeLimitError, match="already at that limit"):
        extend(spec(), created_at=CREATED, now=CREATED + HOUR, by=MINUTE, flavor_spec=capped)


def test_extend_by_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        extend(spec(), created_at=CREATED, now=CREATED, by=timedelta(0), flavor_spec=None)


# -- activity --------------------------------------------------------------------------------------------


def test_without_any_signal_the_last_activity_is_creation() -> None:
    assert last_activity({}, None, created_at=CREATED, now=CREATED + HOUR) == (CREATED, "creation")


def test_the_sdk_annotation_counts() -> None:
    at = CREATED + 10 * MINUTE
    found = last_activity({ACTIVITY_ANNOTATION: stamp(at)}, None, created_at=CREATED, now=CREATED + HOUR)
    assert found == Activity(at, "sdk")
    # Users read it in the Idle condition: plain words, no annotation names (issue 22).
    assert found.describe().startswith("a command or shell run on it (devctl, notebook or SDK) at ")
    assert "annotation" not in found.describe() and "devctl/SDK" not in found.describe()


def test_unreadable_or_far_future_annotations_are_ignored_and_small_skew_is_now() -> None:
    now = CREATED + HOUR
    for value in ("yesterday", "2099-01-01T00:00:00Z", "2025-01-31T12:30:00"):  # the last has no zone
        assert (
            last_activity({ACTIVITY_ANNOTATION: value}, None, created_at=CREATED, now=now).source
            == "creation"
        )
    skewed = stamp(now + 2 * MINUTE)
    assert last_activity({ACTIVITY_ANNOTATION: skewed}, None, created_at=CREATED, now=now) == (now, "sdk")


def test_a_probe_counts_only_when_it_worked_and_saw_work() -> None:
    now = CREATED + HOUR
    at = now - MINUTE
    busy = ProbeReport(observed_at=at, interactive_sessions=1)
    assert last_activity({}, busy, created_at=CREATED, now=now) == (at, "session")
    gpu = ProbeReport(observed_at=at, gpu_utilization=87.0)
    assert last_activity({}, gpu, created_at=CREATED, now=now) == (at, "gpu")
    cpu = ProbeReport(observed_at=at, cpu_seconds=3.0, window_seconds=5.0)
    assert last_activity({}, cpu, created_at=CREATED, now=now) == (at, "cpu")
    assert last_activity({}, quiet_probe(at), created_at=CREATED, now=now).source == "creation"
    failed = ProbeReport(observed_at=at, error="exec: nvidia-smi: not found", interactive_sessions=3)
    assert last_activity({}, failed, created_at=CREATED, now=now).source == "creation"


def test_pod_starts_and_the_recorded_status_count() -> None:
    now = CREATED + 3 * HOUR
    annotation = {ACTIVITY_ANNOTATION: stamp(CREATED + HOUR)}
    started = CREATED + 2 * HOUR
    assert last_activity(annotation, None, created_at=CREATED, now=now, started_at=started) == (
        started,
        "start",
    )
    previous = Activity(CREATED + 150 * MINUTE, "gpu")
    assert (
        last_activity(annotation, None, created_at=CREATED, now=now, started_at=started, previous=previous)
        == previous
    )


def test_probe_reports_of_several_ranks_combine_conservatively() -> None:
    at = CREATED + HOUR
    assert ProbeReport.combine([]) is None
    combined = ProbeReport.combine(
        [quiet_probe(at), ProbeReport(observed_at=at - MINUTE, gpu_utilization=90.0)]
    )
    assert combined is not None
    assert combined.active_signal() == "gpu" and combined.observed_at == at - MINUTE
    failed = ProbeReport.combine([quiet_probe(at), ProbeReport(observed_at=at, error="timeout")])
    assert failed is not None and not failed.ok and failed.active_signal() is None


def test_idle_timeout_comes_from_the_spec_then_the_flavor_and_needs_auto_shutdown() -> None:
    assert idle_timeout(spec(idle_timeout=600), flavor(default_idle_timeout=3600)) == timedelta(seconds=600)
    assert idle_timeout(spec(), flavor(default_idle_timeout=3600)) == HOUR
    assert idle_timeout(spec(), flavor()) is None
    assert idle_timeout(spec(), None) is None
    assert idle_timeout(spec(idle_timeout=600, auto_shutdown=False), flavor(default_idle_timeout=60)) is None


def test_desired_state_is_read_from_the_sdk_annotation() -> None:
    assert desired_stopped(devserver(annotations={DESIRED_STATE_ANNOTATION: "Stopped"}))
    assert desired_stopped(devserver(annotations={DESIRED_STATE_ANNOTATION: "stopped"}))
    assert not desired_stopped(devserver(annotations={DESIRED_STATE_ANNOTATION: "Running"}))
    assert not desired_stopped(devserver())


# -- plan: expiry ----------------------------------------------------------------------------------------


def test_nothing_to_do_and_nothing_scheduled_without_deadlines() -> None:
    decision = plan(devserver(), now=CREATED + HOUR, flavor_spec=None)
    assert decision.action == "none"
    assert decision.requeue_after is None
    assert decision.expires_at is None
    assert decision.idle[:2] == ("False", "NoIdleTimeout")


def test_the_next_look_is_when_the_warning_is_due() -> None:
    decision = plan(devserver(lifecycle={"timeToLive": "4h"}), now=CREATED + HOUR, flavor_spec=None)
    assert decision.action == "none"
    assert decision.expires_at == CREATED + 4 * HOUR
    assert decision.requeue_after == (3 * HOUR - 15 * MINUTE).total_seconds()
    assert not decision.expiring_soon


def test_a_warning_comes_fifteen_minutes_before_expiry_once() -> None:
    server = devserver(lifecycle={"timeToLive": "4h"})
    now = CREATED + 4 * HOUR - 10 * MINUTE
    decision = plan(server, now=now, flavor_spec=None)
    assert decision.action == "warn_expiring"
    assert decision.reason == "ExpiringSoon"
    assert "2025-01-31T16:00:00Z" in decision.message and "devctl extend mydev" in decision.message
    assert decision.expiring_soon
    assert decision.warning == decision.message
    assert decision.requeue_after == (10 * MINUTE).total_seconds()
    warned = devserver(
        lifecycle={"timeToLive": "4h"},
        status={"conditions": [{"type": "ExpiringSoon", "status": "True", "reason": "ExpiringSoon"}]},
    )
    again = plan(warned, now=now + MINUTE, flavor_spec=None)
    assert again.action == "none" and again.expiring_soon and again.warning is None


def test_a_custom_warning_lead() -> None:
    server = devserver(lifecycle={"timeToLive": "4h"})
    assert (
        plan(server, now=CREATED + 3 * HOUR, flavor_spec=None, warning_lead=2 * HOUR).action
        == "warn_expiring"
    )


def test_at_the_deadline_the_server_expires() -> None:
    decision = plan(devserver(), now=CREATED + 24 * HOUR, flavor_spec=flavor(max_time_to_live="24h"))
    assert decision.action == "expire"
    assert decision.reason == "Expired"
    assert "flavor maximum 24h" in decision.message
    assert decision.requeue_after is None


def test_a_server_being_deleted_needs_nothing() -> None:
    decision = plan(
        devserver(lifecycle={"timeToLive": "1h"}, deleting=True), now=CREATED + 2 * HOUR, flavor_spec=None
    )
    assert decision.action == "none" and decision.requeue_after is None


def test_plan_needs_the_stored_object() -> None:
    server = devserver()
    server.metadata.creation_timestamp = None
    with pytest.raises(ValueError, match="creationTimestamp"):
        plan(server, now=CREATED, flavor_spec=None)


# -- plan: idle ------------------------------------------------------------------------------------------


def test_an_active_server_is_looked_at_again_when_it_would_become_idle() -> None:
    server = devserver(
        lifecycle={"idleTimeout": 3600}, annotations={ACTIVITY_ANNOTATION: stamp(CREATED + 10 * MINUTE)}
    )
    decision = plan(server, now=CREATED + 30 * MINUTE, flavor_spec=None)
    assert decision.action == "none"
    assert decision.idle_deadline == CREATED + 70 * MINUTE
    assert decision.requeue_after == (40 * MINUTE).total_seconds()
    assert decision.idle[:2] == ("False", "Active")
    assert decision.activity == (CREATED + 10 * MINUTE, "sdk")
    assert not decision.probe_wanted


def test_an_idle_server_confirmed_by_a_fresh_probe_is_stopped() -> None:
    server = devserver(
        lifecycle={"idleTimeout": 3600}, annotations={ACTIVITY_ANNOTATION: stamp(CREATED + 10 * MINUTE)}
    )
    now = CREATED + 2 * HOUR
    decision = plan(server, now=now, flavor_spec=None, probe=quiet_probe(now - MINUTE))
    assert decision.action == "stop_idle"
    assert decision.reason == "Idle"
    assert decision.idle[:2] == ("True", "IdleTimeout")
    assert "last activity: a command or shell run on it" in decision.message
    assert "2025-01-31T12:10:00Z" in decision.message
    assert "devctl start mydev" in decision.message


@pytest.mark.parametrize(
    "probe",
    [
        None,
        ProbeReport(observed_at=CREATED + 2 * HOUR - MINUTE, error="exec failed: container not running"),
        quiet_probe(CREATED + HOUR),  # stale: an hour old
    ],
    ids=["absent", "failing", "stale"],
)
def test_a_failing_absent_or_stale_probe_never_stops_a_server(probe: ProbeReport | None) -> None:
    server = devserver(lifecycle={"idleTimeout": 600})
    decision = plan(server, now=CREATED + 2 * HOUR, flavor_spec=None, probe=probe)
    assert decision.action == "none"
    assert decision.probe_wanted
    assert decision.idle[:2] == ("Unknown", "IdleUnconfirmed")
    assert "not stopping" in decision.idle[2]
    assert decision.requeue_after == PROBE_RETRY.total_seconds()
    if probe is not None and probe.error:
        assert "exec failed" in decision.idle[2]


def test_a_probe_that_sees_work_restarts_the_idle_clock() -> None:
    server = devserver(lifecycle={"idleTimeout": 600})
    now = CREATED + 2 * HOUR
    busy = ProbeReport(observed_at=now - MINUTE, cpu_seconds=20.0, window_seconds=5.0)
    decision = plan(server, now=now, flavor_spec=None, probe=busy)
    assert decision.action == "none"
    assert decision.activity == (now - MINUTE, "cpu")
    assert decision.idle_deadline == now + 9 * MINUTE
    assert not decision.probe_wanted


def test_a_probe_that_saw_work_as_long_ago_as_the_timeout_is_asked_again_not_taken_for_idle() -> None:
    # A short idle timeout, within the probe's maximum age: the probe that saw a busy kernel a timeout ago is
    # where the clock restarted; it says nothing about now.
    server = devserver(lifecycle={"idleTimeout": 60})
    now = CREATED + 2 * HOUR
    busy = ProbeReport(observed_at=now - timedelta(seconds=61), interactive_sessions=1, window_seconds=1.0)
    decision = plan(server, now=now, flavor_spec=None, probe=busy)
    assert decision.action == "none"
    assert decision.probe_wanted
    assert decision.idle[:2] == ("Unknown", "IdleUnconfirmed")


@pytest.mark.parametrize(("source", "shown"), [("ssh", "ssh"), ("port-forward", "port-forward"),
                                              (None, "sdk"), ("made-up", "sdk")])
def test_the_sdk_activity_names_what_it_was(source: str | None, shown: str) -> None:
    annotations = {ACTIVITY_ANNOTATION: stamp(CREATED + 10 * MINUTE)}
    if source is not None:
        annotations["devservers.io/last-activity-source"] = source
    server = devserver(lifecycle={"idleTimeout": 3600}, annotations=annotations)
    decision = plan(server, now=CREATED + 30 * MINUTE, flavor_spec=None)
    assert decision.activity == (CREATED + 10 * MINUTE, shown)
    if source == "ssh":
        assert "an SSH session" in decision.idle[2]


def test_auto_shutdown_off_never_stops() -> None:
    server = devserver(lifecycle={"idleTimeout": 600, "autoShutdown": False})
    decision = plan(server, now=CREATED + 10 * HOUR, flavor_spec=None, probe=quiet_probe(CREATED + 10 * HOUR))
    assert decision.action == "none"
    assert decision.idle[:2] == ("False", "AutoShutdownDisabled")
    assert decision.requeue_after is None


def test_the_flavor_default_idle_timeout_applies() -> None:
    now = CREATED + 2 * HOUR
    decision = plan(
        devserver(), now=now, flavor_spec=flavor(default_idle_timeout=3600), probe=quiet_probe(now)
    )
    assert decision.action == "stop_idle"


def test_a_stopped_server_is_not_stopped_again() -> None:
    now = CREATED + 5 * HOUR
    stopped = devserver(lifecycle={"idleTimeout": 600}, annotations={DESIRED_STATE_ANNOTATION: "Stopped"})
    decision = plan(stopped, now=now, flavor_spec=None, probe=quiet_probe(now))
    assert decision.action == "none" and decision.requeue_after is None
    assert decision.idle[:2] == ("False", "Stopped")
    idle_stopped = devserver(
        lifecycle={"idleTimeout": 600},
        annotations={DESIRED_STATE_ANNOTATION: "Stopped"},
        status={
            "phase": "Stopped",
            "stoppedReason": "Idle",
            "conditions": [{"type": "Idle", "status": "True", "reason": "IdleTimeout", "message": "idle 2h"}],
        },
    )
    assert plan(idle_stopped, now=now, flavor_spec=None).idle == ("True", "IdleTimeout", "idle 2h")


def test_starting_again_after_an_idle_stop_restarts_the_idle_clock() -> None:
    now = CREATED + 5 * HOUR
    resumed = devserver(
        lifecycle={"idleTimeout": 600},
        annotations={DESIRED_STATE_ANNOTATION: "Running", ACTIVITY_ANNOTATION: stamp(CREATED + HOUR)},
    )
    decision = plan(resumed, now=now, flavor_spec=None, probe=quiet_probe(now), started_at=now - MINUTE)
    assert decision.action == "none"
    assert decision.activity.source == "start"


def test_activity_recorded_in_status_survives_an_operator_restart() -> None:
    now = CREATED + 5 * HOUR
    server = devserver(
        lifecycle={"idleTimeout": 3600},
        status={"lastActivityTime": stamp(now - 10 * MINUTE), "lastActivitySource": "gpu"},
    )
    decision = plan(server, now=now, flavor_spec=None, probe=quiet_probe(now))
    assert decision.action == "none"
    assert decision.activity == (now - 10 * MINUTE, "gpu")


def test_expiry_wins_over_idle_and_idle_over_the_warning() -> None:
    now = CREATED + 4 * HOUR
    both = devserver(lifecycle={"idleTimeout": 600, "timeToLive": "4h"})
    assert plan(both, now=now, flavor_spec=None, probe=quiet_probe(now)).action == "expire"
    soon = now - 5 * MINUTE
    decision = plan(both, now=soon, flavor_spec=None, probe=quiet_probe(soon))
    assert decision.action == "stop_idle"
    assert decision.expiring_soon
    assert decision.warning is not None and "devctl extend mydev" in decision.warning  # not lost to the stop
    assert decision.requeue_after == (5 * MINUTE).total_seconds()


# -- a deadline before creation (the seed's expirationTime: "2024-01-15T18:00:00Z") ----------------------


def test_seed_example_deadline_before_creation_holds_instead_of_expiring() -> None:
    # The seed's example sets both an expirationTime that had long passed and a timeToLive: the earlier
    # applies, and it was before the server existed. That is a mistake to report, not an expiry to act on.
    server = devserver(lifecycle={"expirationTime": "2024-01-15T18:00:00Z", "timeToLive": "4h"})
    decision = plan(server, now=CREATED + MINUTE, flavor_spec=None)
    assert decision.action == "hold"
    assert decision.reason == "DeadlineBeforeCreation"
    assert "2024-01-15T18:00:00Z" in decision.message and "2025-01-31T12:00:00Z" in decision.message
    assert "use timeToLive" in decision.message
    assert decision.expires_at == datetime(2024, 1, 15, 18, 0, tzinfo=UTC)
    assert decision.requeue_after is None  # nothing will change by itself: only an edit does


def test_a_deadline_moved_to_the_future_lets_the_server_run() -> None:
    later = devserver(lifecycle={"expirationTime": stamp(CREATED + 2 * HOUR)})
    assert plan(later, now=CREATED + MINUTE, flavor_spec=None).action == "none"


def test_normal_expiry_of_a_server_that_ran_is_unchanged() -> None:
    # A deadline after creation that has passed since: the server is deleted, as before.
    server = devserver(lifecycle={"expirationTime": stamp(CREATED + HOUR)})
    decision = plan(server, now=CREATED + 2 * HOUR, flavor_spec=None)
    assert decision.action == "expire" and decision.reason == "Expired"
