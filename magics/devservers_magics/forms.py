"""The widgets' logic without the widgets: form values to ``create`` arguments, flavors to option labels,
DevServers to list rows.

``widgets.py`` only copies values between these and ipywidgets, so everything that decides something is
tested here with plain data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .summaries import age_text, expires_at, is_stopped, phase_text, ready_text, remaining_text

if TYPE_CHECKING:
    from devservers_sdk.models import DevServer, DevServerFlavor

__all__ = [
    "MODES",
    "CreateValues",
    "RowView",
    "create_arguments",
    "flavor_label",
    "flavor_options",
    "progress_text",
    "row_view",
    "shows_distributed_fields",
    "widget_message",
]

MODES = ("standalone", "distributed")


@dataclass(frozen=True)
class CreateValues:
    """What the create form holds, as the user typed it (blank text means "not given")."""

    name: str = ""
    flavor: str | None = None
    image: str = ""
    mode: str = "standalone"
    world_size: int | None = None
    nprocs_per_node: int | None = None
    time_to_live: str = ""
    idle_timeout: str = ""
    wait: bool = True


def create_arguments(values: CreateValues) -> tuple[str, dict[str, Any]]:
    """The name and keyword arguments of ``DevServerClient.create`` for these form values.

    Blank fields are left out (the flavor's defaults apply); an idle timeout of only digits is seconds. A
    world size or processes per node is passed on whatever the mode: the SDK refuses them in standalone
    mode (``DevServerSpec.from_options``), as devctl and ``%devserver create`` do. The form itself reports
    none while those fields are hidden (``CreateForm.values``).

    Raises:
        ValueError: no name, no flavor, or an unknown mode; the message says what to fill in.
    """
    name = values.name.strip()
    if not name:
        raise ValueError("Give the DevServer a name, e.g. alice-dev.")
    if not values.flavor:
        raise ValueError("Choose a flavor.")
    if values.mode not in MODES:
        raise ValueError(f"Mode must be standalone or distributed, not {values.mode!r}.")
    kwargs: dict[str, Any] = {"flavor": values.flavor, "mode": values.mode, "wait": values.wait}
    if values.image.strip():
        kwargs["image"] = values.image.strip()
    if values.world_size is not None:
        kwargs["world_size"] = values.world_size
    if values.nprocs_per_node is not None:
        kwargs["nprocs_per_node"] = values.nprocs_per_node
    if values.time_to_live.strip():
        kwargs["time_to_live"] = values.time_to_live.strip()
    idle = values.idle_timeout.strip()
    if idle:
        kwargs["idle_timeout"] = int(idle) if idle.isdigit() else idle
    return name, kwargs


def shows_distributed_fields(mode: str) -> bool:
    """World size and processes per node are shown for distributed mode only."""
    return mode == "distributed"


def flavor_label(flavor: DevServerFlavor) -> str:
    """``"gpu-small: 8 CPU, 32Gi, 1 GPU"``: the resources of each pod, as the dropdown shows them."""
    resources = [
        f"{flavor.cpu} CPU" if flavor.cpu else "",
        flavor.memory or "",
        f"{flavor.gpus} GPU" if flavor.gpus else "",
    ]
    shown = ", ".join(part for part in resources if part)
    return f"{flavor.name}: {shown}" if shown else flavor.name


def flavor_options(flavors: Iterable[DevServerFlavor]) -> list[tuple[str, str]]:
    """``(label, name)`` pairs for a dropdown, in the order given (the SDK sorts by name)."""
    return [(flavor_label(flavor), flavor.name) for flavor in flavors]


@dataclass(frozen=True)
class RowView:
    """One line of the DevServer list: the columns of ``%devserver list``, the operator's message, and
    which of Stop/Start the row offers."""

    name: str
    owner: str
    flavor: str
    mode: str
    phase: str
    ready: str
    expires_in: str
    age: str
    message: str
    deadline: datetime | None
    created: datetime | None
    toggle: str  # "Stop" or "Start": the action the Stop/Start button offers


def row_view(server: DevServer, *, now: datetime | None = None) -> RowView:
    deadline = expires_at(server)
    return RowView(
        name=server.name,
        owner=server.spec.owner,
        flavor=server.spec.flavor,
        mode=server.spec.mode,
        phase=phase_text(server),
        ready=ready_text(server),
        expires_in=remaining_text(deadline, now=now),
        age=age_text(server, now=now),
        message=widget_message(server.status.message or ""),
        deadline=deadline,
        created=server.metadata.creation_timestamp,
        toggle="Start" if is_stopped(server) else "Stop",
    )


# The SDK's sentences end with the devctl command to run next; in the widget, its own button is the next step.
_NAME = r"([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)"  # a DevServer name, without the sentence's punctuation
# Its options: those of the hints that take a value (never ending in the sentence's "."), then bare switches.
_FLAGS = r"(?: (?:--(?:by|time|flavor|namespace)|-n)[ =][^\s,;]*[^\s,;.]| --?[a-zA-Z][-a-z]*)*"
_WIDGET_ACTIONS = (
    (re.compile(rf"\bdevctl extend {_NAME}{_FLAGS}"), r"press Extend on the row of \1"),
    (re.compile(rf"\bdevctl start {_NAME}{_FLAGS}"), r"press Start on the row of \1"),
    (re.compile(rf"\bdevctl stop {_NAME}{_FLAGS}"), r"press Stop on the row of \1"),
    (re.compile(rf"\bdevctl delete {_NAME}{_FLAGS}"), r"press Delete on the row of \1"),
    (re.compile(rf"\bdevctl list{_FLAGS}"), "press Refresh"),
    (re.compile(r"\bdevctl flavors\b"), "open the Flavor list"),
    (re.compile(r"\bdevctl (describe|logs|wait|update) "), r"%devserver \1 "),
)


def widget_message(message: str) -> str:
    """The SDK's sentence with its ``devctl`` hints pointing at the widget's own buttons (``press Extend``),
    or at the ``%devserver`` magic when the widget has no button for it (describe, logs)."""
    for pattern, replacement in _WIDGET_ACTIONS:
        message = pattern.sub(replacement, message)
    return message


def progress_text(server: DevServer) -> str:
    """``"mydev: Starting, 0/1 ready"`` (with the operator's message when it gives one)."""
    if server.status.phase is None:
        return f"{server.name}: created, waiting for the operator"
    text = f"{server.name}: {phase_text(server)}, {ready_text(server)} ready"
    return f"{text} ({server.status.message})" if server.status.message else text
