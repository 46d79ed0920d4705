"""What a person wants to read about a DevServer at a glance: phase, ready ranks, time left, age.

Shared by the tables (``%devserver list``) and the widgets (the list's rows), so both say the same thing.
Pure functions of the SDK's models and a ``now``; nothing here talks to the cluster.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from devservers_sdk.contract import DESIRED_STATE_ANNOTATION

if TYPE_CHECKING:
    from devservers_sdk.models import DevServer

__all__ = [
    "DESIRED_STATE_ANNOTATION",
    "age_text",
    "expires_at",
    "is_stopped",
    "phase_text",
    "ready_text",
    "remaining_text",
    "span_text",
]



def expires_at(server: DevServer) -> datetime | None:
    """When the DevServer will be deleted: the operator's ``status.expiresAt`` when it is current.

    Until the operator has seen the latest spec (no status, or ``observedGeneration`` behind
    ``generation``, e.g. right after ``extend``) the deadline is computed from the spec as the operator
    will: the earlier of ``lifecycle.expirationTime`` and creation + ``lifecycle.timeToLive`` (the flavor's
    ``maxTimeToLive`` cap, which only the operator applies, is not known here).
    """
    status, generation = server.status, server.metadata.generation
    current = (
        status.observed_generation is None or generation is None or status.observed_generation >= generation
    )
    if status.expires_at is not None and current:
        return _aware(status.expires_at)
    lifecycle = server.spec.lifecycle
    candidates = []
    if lifecycle.expiration_time is not None:
        candidates.append(_aware(lifecycle.expiration_time))
    created = server.metadata.creation_timestamp
    if lifecycle.time_to_live and created is not None:
        from devservers_sdk.durations import parse_duration

        candidates.append(_aware(created) + parse_duration(lifecycle.time_to_live))
    return min(candidates) if candidates else None


def remaining_text(deadline: datetime | None, *, now: datetime | None = None) -> str:
    """``"3h 59m"``, ``"12m 5s"``, ``"expired"``, or ``"never"`` when there is no deadline."""
    if deadline is None:
        return "never"
    left = _aware(deadline) - (now or datetime.now(UTC))
    if left <= timedelta(0):
        return "expired"
    return span_text(left, parts=2)


def age_text(server: DevServer, *, now: datetime | None = None) -> str:
    """Age as kubectl shows it, one unit: ``"45s"``, ``"12m"``, ``"3h"``, ``"2d"``; ``"-"`` if unknown."""
    created = server.metadata.creation_timestamp
    if created is None:
        return "-"
    return span_text(max((now or datetime.now(UTC)) - _aware(created), timedelta(0)), parts=1)


def ready_text(server: DevServer) -> str:
    """Ready ranks out of those wanted, e.g. ``"1/2"``."""
    wanted = server.status.replicas
    if wanted is None:
        distributed = server.spec.distributed
        wanted = distributed.world_size if server.spec.mode == "distributed" and distributed else 1
    return f"{server.status.ready_replicas or 0}/{wanted}"


def phase_text(server: DevServer) -> str:
    """The phase, or ``"-"`` while the operator has reported none."""
    return server.status.phase or "-"


def is_stopped(server: DevServer) -> bool:
    """Whether the user asked it to stop (or the operator stopped it): then Start, not Stop, is offered."""
    if server.metadata.annotations.get(DESIRED_STATE_ANNOTATION) == "Stopped":
        return True
    return (
        server.status.phase in ("Stopped", "Stopping")
        and server.metadata.annotations.get(DESIRED_STATE_ANNOTATION) != "Running"
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def span_text(delta: timedelta, *, parts: int = 2) -> str:
    """A length of time in its largest ``parts`` units: ``"3h 59m"``, ``"2d"``, ``"45s"``."""
    seconds = int(delta.total_seconds())
    values = [
        (seconds // 86400, "d"),
        (seconds % 86400 // 3600, "h"),
        (seconds % 3600 // 60, "m"),
        (seconds % 60, "s"),
    ]
    first = next((index for index, (value, _) in enumerate(values) if value), len(values) - 1)
    return " ".join(f"{value}{unit}" for value, unit in values[first : first + parts] if value) or "0s"
