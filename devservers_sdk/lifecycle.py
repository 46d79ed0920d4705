"""When a DevServer expires, when it is idle, and what the operator should do about it now.

Why a module of pure functions: the peer project swept a full LIST of every DevServer each minute to find
expired ones, and never stopped idle ones at all. Here each DevServer carries its own deadlines, computed
from its spec, its flavor and the signals of activity, and ``plan`` answers two questions for one object:
*what to do now* and *when to look again* (``requeue_after``), so the operator schedules a wake-up per
object and does no sweeps. No I/O happens here, so every rule is unit-tested with plain datetimes.

The rules, in the words of the issue and the model descriptions:

* **Expiry** (deletes the DevServer and its home volumes): the earlier of ``lifecycle.expirationTime``
  and creation + ``lifecycle.timeToLive``, capped at creation + the flavor's ``maxTimeToLive``. The
  flavor's maximum is also the lifetime of a DevServer that sets neither. ``ExpiringSoon`` (a condition
  and one Event) comes ``warning_lead`` before the deadline.
* **Extend** moves the deadline to ``max(current deadline, now) + by`` (what ``DevServerClient.extend``
  writes to ``spec.lifecycle.expirationTime``) and *refuses*, with ``LifetimeLimitError``, to pass the
  flavor's cap: silently clamping would leave someone believing they have two more hours.
* **One rule for every front end**: a lifetime asked for at create (``timeToLive``, ``expirationTime``) or
  by extend that passes the flavor's ``maxTimeToLive`` is *refused* by the SDK (``check_requested_lifetime``,
  ``extend``), with a message naming the flavor's maximum; devctl, the magics and the widgets all go through
  it. Only a raw write that skips the SDK is capped by the operator, and ``lifetime`` then says so. A server
  created without a lifetime lives the flavor's maximum, and ``lifetime(...).describe`` says that too, so
  front ends print it at create.
* **Idle** (stops: StatefulSet to zero replicas, DevServer and home volumes kept): with ``autoShutdown``
  and an idle timeout (``lifecycle.idleTimeout``, else the flavor's ``defaultIdleTimeout``), a server
  whose last activity is older than the timeout is stopped. Activity is the latest of the SDK's
  ``devservers.io/last-activity`` annotation, an in-pod probe report, the last pod start (so ``start``
  after an idle stop does not stop the server again at once), the last activity already recorded in
  status, and creation. **The probe is the only witness of work started with nohup, a notebook kernel or
  a training job**, so a server is only stopped on a *fresh, successful* probe that saw nothing: a probe
  that failed, or that never ran, leaves the server running (condition Idle Unknown, ``probe_wanted``).
  That also keeps the probe cheap at scale: the operator execs into a pod only once its annotation-based
  idle deadline has passed, not on a timer for every server.
* **GPU utilisation** (stops, like idle; dstack's ``utilization_policy``): with
  ``lifecycle.minGpuUtilization: {percent, window}``, a server whose busiest GPU stayed below ``percent`` in
  every probe for ``window`` is stopped, even with a shell open: GPUs are the bill, and a shell left open
  over the weekend holds them. ``track_gpu_use`` keeps "below since" (``status.gpuLowSince``, so a restart of
  the operator does not restart the window); a pod restart or one busy reading resets it. Like the idle stop,
  it needs a fresh successful probe that read the GPUs, and it is warned ahead (``gpu_warning``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from . import views
from .activity import ACTIVITY_SOURCES, rfc3339
from .contract import ACTIVITY_ANNOTATION, ACTIVITY_SOURCE_ANNOTATION, DESIRED_STATE_ANNOTATION
from .durations import format_duration, format_span, parse_duration
from .errors import LifetimeLimitError
from .models import DevServer, DevServerFlavorSpec, DevServerSpec, MinGpuUtilization
from .next_steps import NextStep

__all__ = [
    "CLOCK_SKEW",
    "CPU_ACTIVE_CORES",
    "DEADLINE_BEFORE_CREATION",
    "DEFAULT_PROBE_MAX_AGE",
    "DEFAULT_WARNING_LEAD",
    "DESIRED_STATE_ANNOTATION",
    "GPU_ACTIVE_PERCENT",
    "PROBE_RETRY",
    "STOPPED_REASON_IDLE",
    "STOPPED_REASON_LOW_GPU",
    "STOPPED_REASON_REQUESTED",
    "Action",
    "Activity",
    "Decision",
    "GpuReading",
    "Lifetime",
    "LifetimeLimitError",
    "ProbeReport",
    "check_requested_lifetime",
    "desired_stopped",
    "expires_at",
    "extend",
    "home_note",
    "home_summary",
    "idle_timeout",
    "last_activity",
    "lifetime",
    "lifetime_cap",
    "plan",
    "track_gpu_use",
]


STOPPED_REASON_IDLE = "Idle"
STOPPED_REASON_REQUESTED = "Requested"
STOPPED_REASON_LOW_GPU = "LowGpuUtilization"

DEFAULT_WARNING_LEAD = timedelta(minutes=15)
DEFAULT_PROBE_MAX_AGE = timedelta(minutes=5)
"""A probe report older than this no longer proves the server idle *now*."""
PROBE_RETRY = timedelta(minutes=1)
"""How soon to look again when a server looks idle but no usable probe confirms it."""
CLOCK_SKEW = timedelta(minutes=5)
"""An activity annotation further in the future than this is ignored: a clock may be a little off, but a
hand-written ``2099-01-01T00:00:00Z`` must not make a server immune to idle shutdown."""

CPU_ACTIVE_CORES = 0.1
"""CPU use (cores, averaged over the probe window) that counts as work; an idle shell stays far below."""
GPU_ACTIVE_PERCENT = 5.0
"""GPU utilisation (percent, busiest GPU) that counts as work."""

Action = Literal["none", "warn_expiring", "expire", "stop_idle", "stop_low_gpu", "hold"]

DEADLINE_BEFORE_CREATION = "DeadlineBeforeCreation"
"""The reason of a DevServer whose ``expirationTime`` had passed before it was created: a mistake (the seed's
own example carries ``2024-01-15T18:00:00Z``), not an expiry. The operator runs nothing and deletes nothing,
and the status says so (phase ``Expired``) until the date is moved to the future."""


# -- expiry ----------------------------------------------------------------------------------------------


def _require_aware(moment: datetime, what: str) -> None:
    # Comparing naive and aware datetimes raises deep inside min(); say which argument is wrong instead.
    if moment.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware (e.g. datetime.now(UTC)), got {moment.isoformat()}")


def lifetime_cap(*, created_at: datetime, flavor_spec: DevServerFlavorSpec | None) -> datetime | None:
    """Creation + the flavor's ``maxTimeToLive``: the latest any deadline may be; None without a maximum."""
    _require_aware(created_at, "created_at")
    return views.lifetime_cap(created_at=created_at, max_time_to_live=_maximum(flavor_spec))


def _maximum(flavor_spec: DevServerFlavorSpec | None) -> str | None:
    return flavor_spec.max_time_to_live if flavor_spec is not None else None


def expires_at(
    spec: DevServerSpec, *, created_at: datetime, flavor_spec: DevServerFlavorSpec | None
) -> datetime | None:
    """When the DevServer is to be deleted, or None if never.

    The earlier of ``expirationTime`` and ``created_at + timeToLive``, capped at ``created_at`` + the
    flavor's ``maxTimeToLive``; a DevServer that sets neither lives exactly the flavor's maximum. The rule
    itself is ``views.deadline``, which the front ends' ``views.expires_at`` applies too.
    """
    _require_aware(created_at, "created_at")
    return views.deadline(created_at=created_at, expiration_time=spec.lifecycle.expiration_time,
                          time_to_live=spec.lifecycle.time_to_live, max_time_to_live=_maximum(flavor_spec))


@dataclass(frozen=True)
class Lifetime:
    """When a DevServer is deleted, and which rule decided it (for what front ends print).

    Attributes:
        expires_at: the deadline, or None if it never expires.
        source: ``"expirationTime"``, ``"timeToLive"``, ``"flavor maximum"`` (nothing asked for, or what was
            asked for passes the cap) or ``"none"``.
        flavor: the flavor's name.
        maximum: the flavor's ``maxTimeToLive`` as written, or None.
        capped: a lifetime was asked for, but the flavor's maximum cuts it short.
    """

    expires_at: datetime | None
    source: Literal["expirationTime", "timeToLive", "flavor maximum", "none"]
    flavor: str
    maximum: str | None
    capped: bool = False

    def describe(self, now: datetime) -> str:
        """``expires at 2026-12-14T03:40:00Z (in 7d), the maximum lifetime of flavor 'cpu-small'``."""
        if self.expires_at is None:
            return f"never expires (flavor '{self.flavor}' sets no maximum lifetime)"
        left = self.expires_at - now
        when = f"expires at {rfc3339(self.expires_at)} (in {format_span(left)})" if left > timedelta(0) \
            else f"expired at {rfc3339(self.expires_at)}"
        if self.capped:
            return f"{when}: capped at the maximum lifetime of flavor '{self.flavor}' ({self.maximum})"
        if self.source == "flavor maximum":
            return f"{when}, the maximum lifetime of flavor '{self.flavor}' ({self.maximum}), as none was asked for"
        return when


def lifetime(spec: DevServerSpec, *, created_at: datetime, flavor_spec: DevServerFlavorSpec | None) -> Lifetime:
    """The deadline of ``expires_at`` with the rule that set it."""
    deadline = expires_at(spec, created_at=created_at, flavor_spec=flavor_spec)
    maximum = flavor_spec.max_time_to_live if flavor_spec is not None else None
    cap = lifetime_cap(created_at=created_at, flavor_spec=flavor_spec)
    lifecycle = spec.lifecycle
    asked: list[tuple[datetime, Literal["expirationTime", "timeToLive"]]] = []
    if lifecycle.expiration_time is not None:
        asked.append((lifecycle.expiration_time, "expirationTime"))
    if lifecycle.time_to_live is not None:
        asked.append((created_at + parse_duration(lifecycle.time_to_live), "timeToLive"))
    if deadline is None:
        return Lifetime(None, "none", spec.flavor, maximum)
    if not asked:
        return Lifetime(deadline, "flavor maximum", spec.flavor, maximum)
    earliest, source = min(asked, key=lambda pair: pair[0])
    if cap is not None and earliest > cap:
        return Lifetime(deadline, "flavor maximum", spec.flavor, maximum, capped=True)
    return Lifetime(deadline, source, spec.flavor, maximum)


def check_requested_lifetime(
    spec: DevServerSpec, *, now: datetime, flavor_spec: DevServerFlavorSpec | None, name: str | None = None
) -> None:
    """Refuse a new DevServer whose ``timeToLive`` or ``expirationTime`` passes its flavor's maximum.

    Raises:
        LifetimeLimitError: the message names what was asked, the flavor and its ``maxTimeToLive``.
    """
    _require_aware(now, "now")
    cap = lifetime_cap(created_at=now, flavor_spec=flavor_spec)
    if cap is None:
        return
    assert flavor_spec is not None and flavor_spec.max_time_to_live is not None
    label = f"DevServer '{name}'" if name else "the DevServer"
    maximum = flavor_spec.max_time_to_live
    lifecycle = spec.lifecycle
    asked: list[tuple[datetime, str, str]] = []
    if lifecycle.time_to_live is not None:
        asked.append((now + parse_duration(lifecycle.time_to_live), f"a lifetime of {lifecycle.time_to_live}",
                      "spec.lifecycle.timeToLive"))
    if lifecycle.expiration_time is not None:
        asked.append((lifecycle.expiration_time, f"expiry at {rfc3339(lifecycle.expiration_time)}",
                      "spec.lifecycle.expirationTime"))
    # The earlier request is the one that applies; only refuse when even that one passes the cap.
    if asked and (requested := min(asked, key=lambda pair: pair[0]))[0] > cap:
        raise LifetimeLimitError(
            f"{label} asks for {requested[1]}, more than the maximum lifetime of its flavor '{spec.flavor}' "
            f"({maximum}); ask for at most {maximum}, or leave the lifetime out to get exactly {maximum}",
            cap=cap,
            requested=requested[0],
            name=name,
            field=requested[2],
        )


def extend(
    spec: DevServerSpec,
    *,
    created_at: datetime,
    now: datetime,
    by: timedelta,
    flavor_spec: DevServerFlavorSpec | None,
    name: str | None = None,
) -> datetime:
    """The new deadline after extending by ``by``: ``max(current deadline, now) + by``.

    Write it to ``spec.lifecycle.expirationTime`` and drop ``timeToLive`` (the earlier of the two would
    otherwise still apply), as ``DevServerClient.extend`` does.

    Raises:
        ValueError: ``by`` is not positive.
        LifetimeLimitError: the new deadline would pass creation + the flavor's ``maxTimeToLive``. The
            message gives the cap, the most that can still be added, and what to do instead.
    """
    _require_aware(now, "now")
    label = f"DevServer '{name}'" if name else "the DevServer"
    if by <= timedelta(0):
        raise ValueError(f"cannot extend {label} by {by}: the extension must be positive, e.g. 2h")
    current = expires_at(spec, created_at=created_at, flavor_spec=flavor_spec)
    requested = max(current or now, now) + by
    cap = lifetime_cap(created_at=created_at, flavor_spec=flavor_spec)
    if cap is not None and requested > cap:
        assert flavor_spec is not None and flavor_spec.max_time_to_live is not None
        room = cap - max(current or now, now)
        left = (
            f"at most {format_duration(room)} more can be added"
            if room >= timedelta(seconds=1)
            else "it is already at that limit"
        )
        raise LifetimeLimitError(
            f"cannot extend {label} by {format_duration(by)}: that passes the maximum lifetime of its flavor "
            f"'{spec.flavor}' ({flavor_spec.max_time_to_live}, ends at {rfc3339(cap)}); {left}. Ask an admin "
            "for a flavor with a longer maxTimeToLive, or create a new server",
            cap=cap,
            requested=requested,
            name=name,
        )
    return requested


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def home_summary(spec: DevServerSpec, home_size: str | None) -> str:
    """The home volume in a few words, for describe: ``10Gi per rank``, ``none (...)``, or where it comes from."""
    size = home_size if home_size is not None else spec.persistent_home_size
    if size is None:
        return "the flavor's or the operator's default (not reported yet)"
    if size in ("0", "") or (size.isdigit() and int(size) == 0):
        return "none (persistentHomeSize 0: files in the home are lost at every stop)"
    source = "" if spec.persistent_home_size is not None else " (default)"
    return f"{size} per rank{source}"


def home_note(spec: DevServerSpec, home_size: str | None) -> str:
    """What a stop keeps, in words no front end may contradict: never "kept" for a server with no home.

    Args:
        spec: the DevServer's spec (an explicit ``persistentHomeSize: "0"`` is known before any report).
        home_size: the operator's ``status.homeSize`` (None: not reported yet).
    """
    if home_size is None and spec.persistent_home_size is not None:
        home_size = spec.persistent_home_size
    if home_size is None:
        return "its home volumes, if it has any, are kept"
    if home_size in ("0", "") or (home_size.isdigit() and int(home_size) == 0):
        return "it has no persistent home (persistentHomeSize 0), so files in its home are lost"
    return "its home volumes are kept"


# -- activity --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuReading:
    """One GPU of one rank as ``nvidia-smi`` reported it (memory in MiB; None where it said [N/A])."""

    rank: int
    index: int
    utilization: float
    memory_used_mib: float | None = None
    memory_total_mib: float | None = None


@dataclass(frozen=True)
class ProbeReport:
    """What one in-pod probe saw, as the operator parsed it. Only ``observed_at`` is required.

    Attributes:
        observed_at: when the probe ran (timezone-aware).
        error: why the probe failed (exec refused, command missing, timeout); None when it worked.
            A failed report proves nothing either way.
        interactive_sessions: terminals, shells and notebook kernels open in the pod.
        cpu_seconds: CPU seconds the container consumed during ``window_seconds``.
        window_seconds: the length of that measurement.
        gpu_utilization: utilisation of the busiest GPU in percent; None without ``nvidia-smi``.
        gpus: every GPU read, per rank (for ``status.gpus``).
    """

    observed_at: datetime
    error: str | None = None
    interactive_sessions: int = 0
    cpu_seconds: float | None = None
    window_seconds: float | None = None
    gpu_utilization: float | None = None
    gpus: tuple[GpuReading, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def cpu_cores(self) -> float | None:
        if self.cpu_seconds is None or not self.window_seconds or self.window_seconds <= 0:
            return None
        return self.cpu_seconds / self.window_seconds

    def active_signal(self) -> str | None:
        """The signal that shows work (``session``, ``gpu``, ``cpu``), or None when it saw none or failed."""
        if not self.ok:
            return None
        if self.interactive_sessions > 0:
            return "session"
        if self.gpu_utilization is not None and self.gpu_utilization >= GPU_ACTIVE_PERCENT:
            return "gpu"
        cores = self.cpu_cores
        if cores is not None and cores >= CPU_ACTIVE_CORES:
            return "cpu"
        return None

    def describe(self) -> str:
        if not self.ok:
            return f"the in-pod probe failed: {self.error}"
        parts = [f"{self.interactive_sessions} interactive session(s)"]
        if self.cpu_cores is not None:
            parts.append(f"{self.cpu_cores:.2f} CPU cores")
        if self.gpu_utilization is not None:
            parts.append(f"GPU {self.gpu_utilization:.0f}%")
        return "the in-pod probe saw " + ", ".join(parts)

    @classmethod
    def combine(cls, reports: Iterable[ProbeReport]) -> ProbeReport | None:
        """One report for a server from one report per rank: busy if any rank is busy, failed if any failed.

        A failure anywhere makes the whole report failed, because an unprobed rank may be the busy one.
        ``observed_at`` is the oldest, so freshness is judged by the stalest rank.
        """
        reports = list(reports)
        if not reports:
            return None
        failures = [f"{report.error}" for report in reports if report.error is not None]
        cores = [c for c in (r.cpu_cores for r in reports) if c is not None]
        gpus = [r.gpu_utilization for r in reports if r.gpu_utilization is not None]
        return cls(
            observed_at=min(report.observed_at for report in reports),
            error="; ".join(failures) if failures else None,
            interactive_sessions=sum(report.interactive_sessions for report in reports),
            cpu_seconds=max(cores) if cores else None,
            window_seconds=1.0 if cores else None,
            gpu_utilization=max(gpus) if gpus else None,
            gpus=tuple(reading for report in reports for reading in report.gpus),
        )


def track_gpu_use(
    policy: MinGpuUtilization | None,
    low_since: datetime | None,
    probe: ProbeReport | None,
    *,
    started_at: datetime | None = None,
) -> datetime | None:
    """Since when every GPU has stayed below ``policy.percent`` (``status.gpuLowSince``), after ``probe``.

    None without a policy, after a reading at or above the threshold, or when the pods started after the
    low stretch began (a restarted server gets a whole window again). A failed probe, or one without GPU
    readings, changes nothing: it proves neither use nor idleness.
    """
    if policy is None:
        return None
    if low_since is not None and started_at is not None and started_at > low_since:
        low_since = None
    if probe is None or not probe.ok or probe.gpu_utilization is None:
        return low_since
    if probe.gpu_utilization >= policy.percent:
        return None
    if started_at is not None and probe.observed_at < started_at:
        return low_since
    return low_since or probe.observed_at


_SOURCE_TEXT = {
    "sdk": "a command or shell run on it (devctl, notebook or SDK)",
    "exec": "a command run on it (devctl, notebook or SDK)",
    "shell": "a shell on it (devctl shell)",
    "ssh": "an SSH session (devctl ssh-proxy)",
    "port-forward": "an open port-forward (devctl port-forward, jupyter)",
    "session": "an interactive session (in-pod probe)",
    "gpu": "GPU use (in-pod probe)",
    "cpu": "CPU use (in-pod probe)",
    "start": "the pods starting",
    "creation": "creation",
}
_SOURCE_PRIORITY = {**dict.fromkeys(ACTIVITY_SOURCES, 5), "sdk": 5, "session": 4, "gpu": 3, "cpu": 2, "start": 1, "creation": 0}


class Activity(NamedTuple):
    """The latest moment of activity and the signal that reported it (what ``status.lastActivitySource``
    shows): ``sdk``, ``session``, ``gpu``, ``cpu``, ``start`` or ``creation``."""

    at: datetime
    source: str

    def describe(self) -> str:
        return f"{_SOURCE_TEXT.get(self.source, self.source)} at {rfc3339(self.at)}"


def _parse_annotation_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None  # unreadable: ignored, it cannot make a server idle or busy by itself
    return moment if moment.tzinfo is not None else None


def last_activity(
    annotations: Mapping[str, str],
    probe: ProbeReport | None,
    *,
    created_at: datetime,
    now: datetime,
    started_at: datetime | None = None,
    previous: Activity | None = None,
) -> Activity:
    """The latest activity among every signal; creation when there is nothing else.

    Args:
        annotations: the DevServer's annotations (``devservers.io/last-activity``, RFC 3339).
        probe: the latest in-pod probe report; counts only when it succeeded and saw work.
        created_at: the DevServer's creationTimestamp.
        now: the current time; an annotation up to ``CLOCK_SKEW`` ahead counts as now, beyond it is ignored.
        started_at: when the pods last started (e.g. the latest pod ``startTime``): a restart is activity.
        previous: ``status.lastActivityTime``/``lastActivitySource``, so probe findings survive restarts.
    """
    _require_aware(created_at, "created_at")
    _require_aware(now, "now")
    candidates = [Activity(created_at, "creation")]
    annotated = _parse_annotation_time(annotations.get(ACTIVITY_ANNOTATION))
    if annotated is not None and annotated <= now + CLOCK_SKEW:
        source = annotations.get(ACTIVITY_SOURCE_ANNOTATION)
        candidates.append(Activity(min(annotated, now), source if source in ACTIVITY_SOURCES else "sdk"))
    if probe is not None:
        signal = probe.active_signal()
        if signal is not None:
            candidates.append(Activity(min(probe.observed_at, now), signal))
    if started_at is not None:
        candidates.append(Activity(min(started_at, now), "start"))
    if previous is not None and previous.at <= now + CLOCK_SKEW:
        candidates.append(Activity(min(previous.at, now), previous.source))
    return max(candidates, key=lambda activity: (activity.at, _SOURCE_PRIORITY.get(activity.source, 0)))


def idle_timeout(spec: DevServerSpec, flavor_spec: DevServerFlavorSpec | None) -> timedelta | None:
    """The idle timeout that applies, or None when idle servers are not stopped."""
    if not spec.lifecycle.auto_shutdown:
        return None
    seconds = spec.lifecycle.idle_timeout
    if seconds is None and flavor_spec is not None:
        seconds = flavor_spec.default_idle_timeout
    return timedelta(seconds=seconds) if seconds is not None else None


def desired_stopped(devserver: DevServer) -> bool:
    """Whether ``devservers.io/desired-state`` asks for the server to be stopped (``views.desired_state``)."""
    return views.desired_state(devserver.metadata.annotations) == "Stopped"


# -- the decision ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What to do with one DevServer now, and when to look at it again.

    Attributes:
        action: ``expire`` (delete the DevServer), ``stop_idle`` (set the desired-state annotation to
            Stopped, which scales the StatefulSet to 0), ``warn_expiring`` (emit the ExpiringSoon Event),
            ``hold`` (the deadline had passed before the DevServer was created: run nothing, delete
            nothing, report phase Expired with reason ``DEADLINE_BEFORE_CREATION``) or ``none``.
        reason, message: for the Event of the action and the status (CamelCase reason, one sentence).
        requeue_after: seconds until the next deadline at which the answer may change (the operator
            schedules its next look then); None when nothing is scheduled. Independent of the action:
            the operator's own write after an action triggers a new look anyway.
        expires_at: the deadline (for ``status.expiresAt``).
        activity: the last activity (for ``status.lastActivityTime``/``lastActivitySource``).
        idle: the Idle condition as ``(status, reason, message)``.
        expiring_soon: whether the deadline is within the warning lead (or past).
        warning: the ExpiringSoon Event message when one is due now, whatever the action (a server
            stopped for idleness still gets its warning); None once the previous status already says
            ExpiringSoon, so the Event is emitted once per deadline, not per reconcile.
        idle_deadline: when the server becomes idle if nothing happens; None when idle stops do not apply.
        probe_wanted: the server looks idle but no fresh successful probe confirms it; probe and plan again.
        gpu_deadline: when ``minGpuUtilization`` stops the server if its GPUs stay below the threshold.
        gpu_warning: the warning to give (once per low stretch) that the GPU policy will stop the server.
    """

    action: Action
    reason: str
    message: str
    requeue_after: float | None
    expires_at: datetime | None
    activity: Activity
    idle: tuple[Literal["True", "False", "Unknown"], str, str]
    expiring_soon: bool = False
    warning: str | None = None
    idle_deadline: datetime | None = None
    probe_wanted: bool = False
    gpu_deadline: datetime | None = None
    gpu_warning: str | None = None


def _previous_activity(devserver: DevServer) -> Activity | None:
    status = devserver.status
    if status.last_activity_time is None or status.last_activity_time.tzinfo is None:
        return None
    return Activity(status.last_activity_time, status.last_activity_source or "sdk")


def _until(moment: datetime, now: datetime) -> str:
    return format_duration(max(moment - now, timedelta(0)))


def plan(
    devserver: DevServer,
    *,
    now: datetime,
    flavor_spec: DevServerFlavorSpec | None,
    probe: ProbeReport | None = None,
    started_at: datetime | None = None,
    warning_lead: timedelta = DEFAULT_WARNING_LEAD,
    probe_max_age: timedelta = DEFAULT_PROBE_MAX_AGE,
    gpu_low_since: datetime | None = None,
) -> Decision:
    """Decide what the lifecycle asks of ``devserver`` at ``now``.

    Priority: hold > expire > stop_idle > stop_low_gpu > warn. Each rule is a step of its own (``_expiry_step``,
    ``_idle_step``, ``_gpu_step``); ``_decide`` weighs what they found.

    Args:
        devserver: as read from the server (metadata, spec, annotations, the previous status).
        now: the current time (timezone-aware).
        flavor_spec: its flavor's spec, or None when the flavor is missing (no cap, no default timeout).
        probe: the latest in-pod probe report (``ProbeReport.combine`` for several ranks), if any.
        started_at: when its pods last started (see ``status.latest_pod_start``).
        warning_lead: how long before expiry the ExpiringSoon warning comes.
        probe_max_age: how old a probe report may be and still confirm idleness.
        gpu_low_since: since when the GPUs stayed below ``lifecycle.minGpuUtilization`` (``track_gpu_use``).

    Raises:
        ValueError: ``now`` is naive, or the DevServer has no creationTimestamp (not read from a server).
    """
    _require_aware(now, "now")
    created_at = devserver.metadata.creation_timestamp
    if created_at is None:
        raise ValueError(
            f"DevServer '{devserver.name}' has no metadata.creationTimestamp; plan() needs the object as "
            "stored by the API server"
        )
    deadline = expires_at(devserver.spec, created_at=created_at, flavor_spec=flavor_spec)
    activity = last_activity(
        devserver.metadata.annotations,
        probe,
        created_at=created_at,
        now=now,
        started_at=started_at,
        previous=_previous_activity(devserver),
    )
    if devserver.metadata.deletion_timestamp is not None:
        return Decision(
            action="none",
            reason="Terminating",
            message=f"DevServer '{devserver.name}' is being deleted",
            requeue_after=None,
            expires_at=deadline,
            activity=activity,
            idle=("False", "Terminating", "the server is being deleted"),
        )
    expiry = _expiry_step(devserver, deadline, now=now, warning_lead=warning_lead)
    idle = _idle_step(devserver, activity, probe, now=now, flavor_spec=flavor_spec, probe_max_age=probe_max_age)
    gpu = _gpu_step(devserver, probe, gpu_low_since, now=now, warning_lead=warning_lead,
                    probe_max_age=probe_max_age)
    return _decide(devserver, created_at=created_at, now=now, flavor_spec=flavor_spec, activity=activity,
                   expiry=expiry, idle=idle, gpu=gpu, probe=probe, gpu_low_since=gpu_low_since)


IdleCondition = tuple[Literal["True", "False", "Unknown"], str, str]


@dataclass(frozen=True)
class _ExpiryStep:
    """What the deadline says now: whether it is near (or past), when to look again, and the warning due."""

    deadline: datetime | None
    expiring_soon: bool = False
    wakeup: datetime | None = None
    warning: str | None = None


def _expiry_step(devserver: DevServer, deadline: datetime | None, *, now: datetime,
                 warning_lead: timedelta) -> _ExpiryStep:
    if deadline is None:
        return _ExpiryStep(None)
    expiring_soon = now >= deadline - warning_lead
    warning = None
    if expiring_soon:
        # Once per deadline, not per reconcile: the previous status already saying ExpiringSoon means it was given.
        previous = devserver.status.condition("ExpiringSoon")
        if previous is None or previous.status != "True":
            warning = (
                f"DevServer '{devserver.name}' will be deleted with its home volumes at {rfc3339(deadline)} (in "
                f"{_until(deadline, now)}); extend it with: "
                f"{NextStep('extend', devserver.name, {'time': '2h'}).devctl()}"
            )
    return _ExpiryStep(deadline, expiring_soon, deadline if expiring_soon else deadline - warning_lead, warning)


@dataclass(frozen=True)
class _IdleStep:
    """The Idle condition now, and whether the idle rule stops the server."""

    idle: IdleCondition
    deadline: datetime | None = None
    probe_wanted: bool = False
    stop: bool = False
    wakeup: datetime | None = None


def _idle_step(devserver: DevServer, activity: Activity, probe: ProbeReport | None, *, now: datetime,
               flavor_spec: DevServerFlavorSpec | None, probe_max_age: timedelta) -> _IdleStep:
    # Only a running server can become idle; a stopped one keeps the state of its stop.
    spec = devserver.spec
    timeout = idle_timeout(spec, flavor_spec)
    if desired_stopped(devserver):
        if devserver.status.stopped_reason == STOPPED_REASON_IDLE:
            previous = devserver.status.condition("Idle")
            return _IdleStep(("True", "IdleTimeout", previous.message if previous else "stopped after being idle"))
        return _IdleStep(("False", "Stopped", "the server is stopped; idle shutdown does not apply"))
    if not spec.lifecycle.auto_shutdown:
        return _IdleStep(("False", "AutoShutdownDisabled",
                          f"lifecycle.autoShutdown is false; last activity: {activity.describe()}"))
    if timeout is None:
        return _IdleStep(("False", "NoIdleTimeout",
                          "neither lifecycle.idleTimeout nor the flavor's defaultIdleTimeout is set; last activity: "
                          f"{activity.describe()}"))
    deadline = activity.at + timeout
    if now < deadline:
        return _IdleStep(
            ("False", "Active", f"last activity: {activity.describe()}; stops at {rfc3339(deadline)} if idle until "
             f"then (idle timeout {format_duration(timeout)})"),
            deadline=deadline, wakeup=deadline)
    # Only a probe that saw nothing confirms idleness: one that saw work is where the idle clock restarted,
    # so once the timeout has passed since then it is as old as the timeout and proves nothing about now.
    fresh = (probe is not None and probe.ok and probe.active_signal() is None
             and now - probe.observed_at <= probe_max_age)
    idle_for = format_duration(now - activity.at)
    if fresh:
        assert probe is not None
        return _IdleStep(
            ("True", "IdleTimeout", f"idle for {idle_for} (idle timeout {format_duration(timeout)}): last activity: "
             f"{activity.describe()}; {probe.describe()}"),
            deadline=deadline, stop=True)
    if probe is not None and not probe.ok:
        why = probe.describe()
    elif probe is None:
        why = "no recent in-pod probe"
    else:
        why = f"the last in-pod probe is from {rfc3339(probe.observed_at)}"
    return _IdleStep(
        ("Unknown", "IdleUnconfirmed", f"no activity recorded for {idle_for} (last: {activity.describe()}), but "
         f"{why}; not stopping until a probe confirms the server is idle"),
        deadline=deadline, probe_wanted=True, wakeup=now + PROBE_RETRY)


@dataclass(frozen=True)
class _GpuStep:
    """What ``minGpuUtilization`` says now: when it stops the server, the warning due, whether it stops it now."""

    deadline: datetime | None = None
    warning: str | None = None
    stop: bool = False
    wakeup: datetime | None = None


def _gpu_step(devserver: DevServer, probe: ProbeReport | None, gpu_low_since: datetime | None, *, now: datetime,
              warning_lead: timedelta, probe_max_age: timedelta) -> _GpuStep:
    # A utilisation floor: stop once every GPU stayed below it for the window, whatever else is open.
    policy = devserver.spec.lifecycle.min_gpu_utilization
    if policy is None or gpu_low_since is None or desired_stopped(devserver):
        return _GpuStep()
    window = parse_duration(policy.window)
    deadline = gpu_low_since + window
    lead = min(warning_lead, window / 2)
    fresh_low = (
        probe is not None
        and probe.ok
        and probe.gpu_utilization is not None
        and probe.gpu_utilization < policy.percent
        and now - probe.observed_at <= probe_max_age
    )
    if now >= deadline and fresh_low:
        return _GpuStep(deadline, stop=True)
    if now < deadline - lead:
        return _GpuStep(deadline, wakeup=deadline - lead)
    name = devserver.name
    warning = (
        f"DevServer '{name}' will be stopped at {rfc3339(max(deadline, now))} (in "
        f"{_until(deadline, now)}): its GPUs have stayed below {policy.percent}% since "
        f"{rfc3339(gpu_low_since)} (lifecycle.minGpuUtilization: {policy.percent}% for {policy.window}). "
        f"Use them, or stop it yourself with: {NextStep('stop', name).devctl()}"
    )
    return _GpuStep(deadline, warning=warning, wakeup=deadline)


def _decide(devserver: DevServer, *, created_at: datetime, now: datetime, flavor_spec: DevServerFlavorSpec | None,
            activity: Activity, expiry: _ExpiryStep, idle: _IdleStep, gpu: _GpuStep, probe: ProbeReport | None,
            gpu_low_since: datetime | None) -> Decision:
    """The action the steps' findings call for, by priority: hold > expire > stop_idle > stop_low_gpu > warn."""
    name, spec, deadline = devserver.name, devserver.spec, expiry.deadline
    wakeups = [wakeup for wakeup in (expiry.wakeup, idle.wakeup, gpu.wakeup) if wakeup is not None]
    requeue_after = max(0.0, math.ceil((min(wakeups) - now).total_seconds())) if wakeups else None

    def decision(action: Action, reason: str, message: str) -> Decision:
        return Decision(
            action=action,
            reason=reason,
            message=message,
            requeue_after=requeue_after,
            expires_at=deadline,
            activity=activity,
            idle=idle.idle,
            expiring_soon=expiry.expiring_soon,
            warning=expiry.warning,
            idle_deadline=idle.deadline,
            probe_wanted=idle.probe_wanted,
            gpu_deadline=gpu.deadline,
            gpu_warning=gpu.warning,
        )

    expiration = spec.lifecycle.expiration_time
    if expiration is not None and expiration <= created_at:
        return Decision(
            action="hold",
            reason=DEADLINE_BEFORE_CREATION,
            message=f"spec.lifecycle.expirationTime {rfc3339(expiration)} had already passed when DevServer "
            f"'{name}' was created at {rfc3339(created_at)}, so nothing runs and nothing is deleted; set a "
            "future expirationTime, or remove it and use timeToLive",
            requeue_after=None,
            expires_at=deadline,
            activity=activity,
            idle=("False", DEADLINE_BEFORE_CREATION, "nothing runs: the deadline is before creation"),
            expiring_soon=True,
        )
    if deadline is not None and now >= deadline:
        return Decision(
            action="expire",
            reason="Expired",
            message=f"DevServer '{name}' expired at {rfc3339(deadline)} "
            f"({_lifetime_source(spec, flavor_spec)}); deleting it with its home volumes",
            requeue_after=None,
            expires_at=deadline,
            activity=activity,
            idle=idle.idle,
            expiring_soon=True,
        )
    if idle.stop:
        return decision(
            "stop_idle",
            STOPPED_REASON_IDLE,
            f"Stopping DevServer '{name}': {idle.idle[2]}. "
            f"{_sentence(home_note(spec, devserver.status.home_size))}; resume it with: "
            f"{NextStep('start', name).devctl()}",
        )
    if gpu.stop:
        policy = spec.lifecycle.min_gpu_utilization
        assert policy is not None and gpu_low_since is not None and probe is not None
        return decision(
            "stop_low_gpu",
            STOPPED_REASON_LOW_GPU,
            f"Stopping DevServer '{name}': its GPUs stayed below {policy.percent}% from "
            f"{rfc3339(gpu_low_since)} for the whole window of {policy.window} (lifecycle.minGpuUtilization; "
            f"last reading: busiest GPU {probe.gpu_utilization:.0f}%). Its home volumes are kept; resume it with: "
            f"{NextStep('start', name).devctl()}",
        )
    if expiry.warning is not None:
        return decision("warn_expiring", "ExpiringSoon", expiry.warning)
    if expiry.expiring_soon:
        assert deadline is not None
        return decision("none", "ExpiringSoon", f"DevServer '{name}' expires at {rfc3339(deadline)}")
    message = f"DevServer '{name}' " + (
        f"expires at {rfc3339(deadline)}" if deadline is not None else "has no expiry"
    )
    return decision("none", "Scheduled" if deadline is not None else "NoExpiry", message)


def _lifetime_source(spec: DevServerSpec, flavor_spec: DevServerFlavorSpec | None) -> str:
    lifecycle, parts = spec.lifecycle, []
    if lifecycle.expiration_time is not None:
        parts.append(f"expirationTime {rfc3339(lifecycle.expiration_time)}")
    if lifecycle.time_to_live is not None:
        parts.append(f"timeToLive {lifecycle.time_to_live}")
    if flavor_spec is not None and flavor_spec.max_time_to_live is not None:
        parts.append(f"flavor maximum {flavor_spec.max_time_to_live}")
    return ", ".join(parts)
