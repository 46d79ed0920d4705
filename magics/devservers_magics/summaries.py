"""What a person wants to read about a DevServer at a glance: phase, ready ranks, time left, age.

Shared by the tables (``%devserver list``) and the widgets (the list's rows), so both say the same thing.
Pure functions of the SDK's models and a ``now``; nothing here talks to the cluster. The SDK is imported
inside each function: ``%load_ext devservers_magics`` loads this module and must not load the SDK.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devservers_sdk.models import DevServer

__all__ = [
    "age_text",
    "expires_at",
    "is_stopped",
    "phase_text",
    "ready_text",
    "remaining_text",
    "span_text",
]


def expires_at(server: DevServer, *, max_time_to_live: str | None = None) -> datetime | None:
    """When the DevServer will be deleted: the SDK's one view of it (``devservers_sdk.views.expires_at``)."""
    from devservers_sdk import views

    return views.expires_at(server, max_time_to_live=max_time_to_live)


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
    """Ready ranks out of those wanted, e.g. ``"1/2"`` (``devservers_sdk.views.ready_text``)."""
    from devservers_sdk import views

    return views.ready_text(server)


def phase_text(server: DevServer) -> str:
    """The phase, or ``"-"`` while the operator has reported none."""
    return server.status.phase or "-"


def is_stopped(server: DevServer) -> bool:
    """Whether the user asked it to stop (or the operator stopped it): then Start, not Stop, is offered."""
    from devservers_sdk import views

    asked = views.desired_state(server.metadata.annotations)
    return asked == "Stopped" or (server.status.phase in ("Stopped", "Stopping") and asked != "Running")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def span_text(delta: timedelta, *, parts: int = 2) -> str:
    """A length of time in its largest ``parts`` units, spaced: ``"3h 59m"``, ``"2d"``, ``"45s"``."""
    from devservers_sdk.durations import format_span

    return format_span(delta, units=parts, separator=" ")
