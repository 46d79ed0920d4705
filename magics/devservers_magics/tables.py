"""How SDK objects look in a notebook (HTML tables) and in a terminal IPython (aligned plain text).

Lists come back from the magics as ``DevServerTable`` / ``FlavorTable``: real ``list`` subclasses holding the
SDK's own objects, with ``_repr_html_`` and ``_repr_pretty_``. So ``servers = %devserver list`` gives a list
of ``DevServer`` to index and filter, and a bare ``%devserver list`` shows one table, once (IPython displays
a line magic's return value; the magic itself displays nothing).

Single objects (``DevServer``, ``DevServerDescription``) are returned as they are. Their HTML and text forms
are registered with the shell's display formatters *by name* (``for_type_by_name``) when the extension
loads, so loading it imports no SDK module and ``client.get("mydev")`` renders the same way.

Only the standard library is imported here: the extension must load in well under 0.3 s.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .summaries import age_text, expires_at, phase_text, ready_text, remaining_text, span_text

if TYPE_CHECKING:
    from IPython.lib.pretty import RepresentationPrinter

    from devservers_sdk.client import DevServerDescription
    from devservers_sdk.models import DevServer, DevServerFlavor

__all__ = [
    "DevServerTable",
    "FlavorTable",
    "description_html",
    "description_text",
    "devserver_html",
    "devserver_text",
    "duration_text",
    "html_table",
    "text_table",
]

_STYLE = "border-collapse:collapse;font-family:var(--jp-code-font-family,monospace);font-size:90%"
_CELL = "padding:2px 10px;text-align:left;border-bottom:1px solid #ddd"
# Names, sizes and headers stay on one line ("cpu-/large" helps nobody); only free text wraps.
_NO_WRAP = ";white-space:nowrap"
_WRAPPING_COLUMNS = frozenset({"description", "message"})


def text_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns aligned with two spaces, upper-case headers, as kubectl prints them."""
    lines = [[header.upper() for header in headers], *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def html_table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, caption: str = "") -> str:
    """A plain HTML table; every cell is escaped."""
    styles = [_CELL if header in _WRAPPING_COLUMNS else _CELL + _NO_WRAP for header in headers]
    head = "".join(f'<th style="{_CELL}{_NO_WRAP}">{html.escape(header)}</th>' for header in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td style="{style}">{html.escape(str(cell))}</td>' for style, cell in zip(styles, row, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    title = (
        f'<caption style="text-align:left;font-weight:bold">{html.escape(caption)}</caption>'
        if caption
        else ""
    )
    return f'<table style="{_STYLE}">{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def duration_text(seconds: int | None) -> str:
    """Seconds as people read them (``14400`` is ``"4h"``, ``5400`` is ``"1h 30m"``); ``"-"`` for none."""
    if seconds is None:
        return "-"
    return span_text(timedelta(seconds=seconds))


# -- lists -------------------------------------------------------------------------------------------

_SERVER_COLUMNS = ("name", "owner", "flavor", "mode", "phase", "ready", "expires in", "age")
_FLAVOR_COLUMNS = ("name", "cpu", "memory", "gpus", "max ttl", "idle after", "description")


def _server_row(server: DevServer, now: datetime) -> list[str]:
    return [
        server.name,
        server.spec.owner,
        server.spec.flavor,
        server.spec.mode,
        phase_text(server),
        ready_text(server),
        remaining_text(expires_at(server), now=now),
        age_text(server, now=now),
    ]


def _flavor_row(flavor: DevServerFlavor) -> list[str]:
    return [
        flavor.name,
        flavor.cpu or "-",
        flavor.memory or "-",
        str(flavor.gpus),
        flavor.spec.max_time_to_live or "-",
        duration_text(flavor.spec.default_idle_timeout),
        flavor.spec.description or "",
    ]


def _gpu_use(server: DevServer) -> str:
    """Each GPU's last utilisation, ranks as ``0:3%,5% 1:...`` when there are several."""
    by_rank: dict[int, list[str]] = {}
    for gpu in sorted(server.status.gpus or [], key=lambda g: (g.rank, g.index)):
        by_rank.setdefault(gpu.rank, []).append(f"{gpu.utilization:.0f}%")
    if not by_rank:
        return "-"
    if list(by_rank) == [0]:
        return ",".join(by_rank[0])
    return " ".join(f"{rank}:{','.join(values)}" for rank, values in by_rank.items())


def _cost(server: DevServer, now: datetime) -> str:
    from devservers_sdk.cost import cost_at, format_money

    cost = server.status.cost
    return "-" if cost is None else format_money(cost_at(cost, now)[0], cost.currency)


class DevServerTable(list["DevServer"]):
    """The DevServers ``%devserver list`` found: a list of SDK ``DevServer`` objects shown as one table.

    GPU use and cost so far are columns when some server has them (a GPU server, a flavor with a price).
    """

    def _columns(self) -> tuple[str, ...]:
        extra = tuple(name for name, shown in (("gpu use", any(s.status.gpus for s in self)),
                                               ("cost", any(s.status.cost for s in self))) if shown)
        return _SERVER_COLUMNS + extra

    def _rows(self) -> list[list[str]]:
        now = datetime.now(UTC)
        columns = self._columns()
        extra = {"gpu use": lambda server: _gpu_use(server), "cost": lambda server: _cost(server, now)}
        return [_server_row(server, now) + [extra[name](server) for name in columns[len(_SERVER_COLUMNS):]]
                for server in self]

    def _repr_html_(self) -> str:
        if not self:
            return (
                "<p>No DevServers. Create one with <code>%devserver create NAME --flavor FLAVOR</code>.</p>"
            )
        return html_table(self._columns(), self._rows())

    def _repr_pretty_(self, p: RepresentationPrinter, cycle: bool) -> None:
        p.text(str(self))

    def __str__(self) -> str:
        if not self:
            return "No DevServers. Create one with: %devserver create NAME --flavor FLAVOR"
        return text_table(self._columns(), self._rows())

    def __repr__(self) -> str:
        return f"DevServerTable({[server.name for server in self]!r})"


class FlavorTable(list["DevServerFlavor"]):
    """What ``%devserver flavors`` found: a list of SDK ``DevServerFlavor`` objects shown as a table."""

    def _repr_html_(self) -> str:
        if not self:
            return "<p>No flavors are installed on this cluster.</p>"
        return html_table(_FLAVOR_COLUMNS, [_flavor_row(flavor) for flavor in self])

    def _repr_pretty_(self, p: RepresentationPrinter, cycle: bool) -> None:
        p.text(str(self))

    def __str__(self) -> str:
        if not self:
            return "No flavors are installed on this cluster."
        return text_table(_FLAVOR_COLUMNS, [_flavor_row(flavor) for flavor in self])

    def __repr__(self) -> str:
        return f"FlavorTable({[flavor.name for flavor in self]!r})"


# -- one DevServer -----------------------------------------------------------------------------------


def _fields(server: DevServer, now: datetime, max_time_to_live: str | None) -> list[tuple[str, str]]:
    spec, status = server.spec, server.status
    deadline = expires_at(server, max_time_to_live=max_time_to_live)
    expiry = (
        f"in {remaining_text(deadline, now=now)} ({deadline:%Y-%m-%d %H:%M UTC})" if deadline else "never"
    )
    if deadline is not None and deadline <= now:
        expiry = f"expired ({deadline:%Y-%m-%d %H:%M UTC})"
    rows = [
        ("namespace", server.namespace or "-"),
        ("owner", spec.owner),
        ("flavor", spec.flavor),
        ("image", spec.image or "(the flavor's default)"),
        ("mode", spec.mode),
    ]
    if spec.mode == "distributed" and spec.distributed is not None:
        rows.append(
            (
                "world size",
                f"{spec.distributed.world_size} x {spec.distributed.nprocs_per_node} procs "
                f"({spec.distributed.backend})",
            )
        )
    rows += [
        ("phase", phase_text(server)),
        ("ready", ready_text(server)),
        ("expires", expiry),
        ("idle timeout", _idle_text(server)),
        ("age", age_text(server, now=now)),
    ]
    from devservers_sdk.lifecycle import home_summary

    rows.append(("home", home_summary(spec, status.home_size)))
    if status.stopped_reason:
        rows.append(("stopped", status.stopped_reason))
    if status.message:
        rows.append(("message", status.message))
    return rows


def _idle_text(server: DevServer) -> str:
    lifecycle = server.spec.lifecycle
    if not lifecycle.auto_shutdown:
        return "off (no idle shutdown)"
    return duration_text(lifecycle.idle_timeout) if lifecycle.idle_timeout else "the flavor's default"


def _conditions(server: DevServer) -> list[list[str]]:
    return [[c.type, c.status, c.reason, c.message] for c in server.status.conditions]


def devserver_text(server: DevServer, p: RepresentationPrinter | None = None, cycle: bool = False, *,
                   max_time_to_live: str | None = None) -> str:
    """A DevServer as aligned ``key  value`` lines (also an IPython pretty printer); ``max_time_to_live`` is its
    flavor's, when known (``DevServerDescription``), for the expiry shown before the operator reports one."""
    now = datetime.now(UTC)
    fields = _fields(server, now, max_time_to_live)
    width = max(len(key) for key, _ in fields)
    lines = [f"DevServer {server.name}"] + [f"  {key.ljust(width)}  {value}" for key, value in fields]
    conditions = _conditions(server)
    if conditions:
        lines += ["", _indent(text_table(("condition", "status", "reason", "message"), conditions))]
    text = "\n".join(lines)
    if p is not None:
        p.text(text)
    return text


def devserver_html(server: DevServer, *, max_time_to_live: str | None = None) -> str:
    now = datetime.now(UTC)
    parts = [html_table(("field", "value"), _fields(server, now, max_time_to_live), caption=f"DevServer {server.name}")]
    conditions = _conditions(server)
    if conditions:
        parts.append(html_table(("condition", "status", "reason", "message"), conditions))
    return "".join(parts)


def _pod_rows(description: DevServerDescription) -> list[list[str]]:
    return [
        [
            pod.name,
            "-" if pod.rank is None else str(pod.rank),
            pod.phase,
            "yes" if pod.ready else "no",
            str(pod.restarts),
            pod.node or "-",
            pod.message or "",
        ]
        for pod in description.pods
    ]


def _event_rows(description: DevServerDescription, now: datetime) -> list[list[str]]:
    rows = []
    for event in description.events:
        seen = f"{span_text(now - event.last_seen, parts=1)} ago" if event.last_seen else "-"
        rows.append([seen, event.type, event.reason, event.object, event.message])
    return rows


_POD_COLUMNS = ("pod", "rank", "phase", "ready", "restarts", "node", "message")
_EVENT_COLUMNS = ("last seen", "type", "reason", "object", "message")


def description_text(
    description: DevServerDescription, p: RepresentationPrinter | None = None, cycle: bool = False
) -> str:
    """``%devserver describe``: the DevServer, its pods and recent events (also an IPython pretty printer)."""
    now = datetime.now(UTC)
    sections = [devserver_text(description.devserver, max_time_to_live=description.max_time_to_live)]
    pods = _pod_rows(description)
    sections.append("Pods:\n" + (_indent(text_table(_POD_COLUMNS, pods)) if pods else "  none"))
    events = _event_rows(description, now)
    sections.append("Events:\n" + (_indent(text_table(_EVENT_COLUMNS, events)) if events else "  none"))
    text = "\n\n".join(sections)
    if p is not None:
        p.text(text)
    return text


def description_html(description: DevServerDescription) -> str:
    now = datetime.now(UTC)
    pods, events = _pod_rows(description), _event_rows(description, now)
    return "".join(
        [
            devserver_html(description.devserver, max_time_to_live=description.max_time_to_live),
            html_table(_POD_COLUMNS, pods, caption="Pods") if pods else "<p><b>Pods:</b> none</p>",
            html_table(_EVENT_COLUMNS, events, caption="Events") if events else "<p><b>Events:</b> none</p>",
        ]
    )


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


# -- registration with IPython -------------------------------------------------------------------------

_BY_NAME: tuple[tuple[str, str, Any, Any], ...] = (
    ("devservers_sdk.models", "DevServer", devserver_html, devserver_text),
    ("devservers_sdk.client", "DevServerDescription", description_html, description_text),
)


def register_formatters(shell: Any) -> None:
    """Teach the shell's display formatters the SDK's single objects, by name (no SDK import)."""
    formatters = shell.display_formatter.formatters
    for module, name, to_html, to_text in _BY_NAME:
        formatters["text/html"].for_type_by_name(module, name, to_html)
        formatters["text/plain"].for_type_by_name(module, name, to_text)


def unregister_formatters(shell: Any) -> None:
    formatters = shell.display_formatter.formatters
    for module, name, _, _ in _BY_NAME:
        for mime in ("text/html", "text/plain"):
            formatters[mime].pop(f"{module}.{name}", None)
