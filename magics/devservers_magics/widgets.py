"""``%devserver ui``: a create form and a list of DevServers with per-row actions, over an injected client.

Shaped like ipywidgets' ``interact``: each part is a box subclass with private child widgets and handlers
named ``_on_<widget>_<event>``. A handler disables its button, makes one SDK call, and re-enables the button
in ``finally``. What a handler decides comes from the pure functions of ``forms.py``.

Errors never reach the kernel: a widget callback that raises only lands in the kernel log, where nobody
looks, so every handler catches and writes the SDK's sentence (or the unexpected exception) to its status
area instead.

Calls are synchronous, like the magics: ``Create`` with "wait until ready" holds the kernel until the
DevServer runs (progress is shown meanwhile), as a ``%devserver create --wait`` cell would.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .forms import (
    MODES,
    CreateValues,
    RowView,
    create_arguments,
    flavor_options,
    progress_text,
    row_view,
    shows_distributed_fields,
)
from .summaries import remaining_text

if TYPE_CHECKING:
    from devservers_sdk.client import DevServerClient
    from devservers_sdk.models import DevServer

__all__ = ["CreateForm", "DevServerList", "DevServerUI", "ServerRow"]

_LABEL_STYLE = {"description_width": "120px"}
_COLUMN_WIDTHS = {"name": "200px", "phase": "100px", "ready": "60px", "expires": "110px"}


class _Status(widgets.HTML):
    """A status line: progress, a result, or an error in red. ``text`` is the message without markup."""

    def __init__(self) -> None:
        super().__init__(value="")
        self.text = ""
        self.is_error = False

    def show(self, text: str, *, error: bool = False) -> None:
        self.text, self.is_error = text, error
        color = "#b00020" if error else "inherit"
        self.value = f'<span style="color:{color}">{html.escape(text)}</span>' if text else ""


def _field() -> widgets.Layout:
    return widgets.Layout(width="420px")


@contextmanager
def _reported(status: _Status, button: widgets.Button | None = None) -> Iterator[None]:
    """Run a widget action: button disabled meanwhile, any error written to the status area."""
    from devservers_sdk.errors import DevServerError

    if button is not None:
        button.disabled = True
    try:
        yield
    except (DevServerError, ValueError) as exc:
        status.show(f"Error: {exc}", error=True)
    except Exception as exc:  # a widget must not raise into the kernel log; say what happened instead
        status.show(f"Unexpected error: {type(exc).__name__}: {exc}", error=True)
    finally:
        if button is not None:
            button.disabled = False


class CreateForm(widgets.VBox):
    """Name, flavor (with its resources), image, mode (world size and processes revealed for distributed),
    time to live, idle timeout, "wait until ready", a Create button and a status line.

    Args:
        client: the ``DevServerClient`` to create with (its namespace is where DevServers go).
        on_created: called with the new DevServer after a successful create.
    """

    def __init__(
        self, client: DevServerClient, *, on_created: Callable[[DevServer], None] | None = None
    ) -> None:
        self._client = client
        self._on_created = on_created
        self._name = widgets.Text(
            description="Name", placeholder="e.g. alice-dev", style=_LABEL_STYLE, layout=_field()
        )
        self._flavor = widgets.Dropdown(description="Flavor", options=[], style=_LABEL_STYLE, layout=_field())
        self._image = widgets.Text(
            description="Image", placeholder="the flavor's default image", style=_LABEL_STYLE, layout=_field()
        )
        self._mode = widgets.ToggleButtons(
            description="Mode", options=list(MODES), value="standalone", style=_LABEL_STYLE
        )
        self._world_size = widgets.BoundedIntText(
            description="World size", value=2, min=1, max=1000, style=_LABEL_STYLE
        )
        self._nprocs = widgets.BoundedIntText(
            description="Procs per pod", value=1, min=1, max=1024, style=_LABEL_STYLE
        )
        self._distributed = widgets.VBox(
            [self._world_size, self._nprocs], layout=widgets.Layout(display="none")
        )
        self._ttl = widgets.Text(
            description="Time to live",
            placeholder="e.g. 4h, 1h30m (blank: flavor's limit)",
            style=_LABEL_STYLE,
            layout=_field(),
        )
        self._idle = widgets.Text(
            description="Idle timeout",
            placeholder="e.g. 30m (blank: flavor's default)",
            style=_LABEL_STYLE,
            layout=_field(),
        )
        self._wait = widgets.Checkbox(description="Wait until ready", value=True, indent=False)
        self._create = widgets.Button(description="Create", button_style="primary", icon="plus")
        self._status = _Status()
        self._mode.observe(self._on_mode_change, names="value")
        self._create.on_click(self._on_create_click)
        super().__init__(
            [
                widgets.HTML("<b>New DevServer</b>"),
                self._name,
                self._flavor,
                self._image,
                self._mode,
                self._distributed,
                self._ttl,
                self._idle,
                self._wait,
                widgets.HBox([self._create, self._status]),
            ]
        )
        self.load_flavors()

    # -- for code cells and tests -------------------------------------------------------------------

    @property
    def status(self) -> str:
        """The status line as text."""
        return self._status.text

    @property
    def values(self) -> CreateValues:
        """The form's current values."""
        return CreateValues(
            name=self._name.value,
            flavor=self._flavor.value,
            image=self._image.value,
            mode=self._mode.value,
            world_size=self._world_size.value,
            nprocs_per_node=self._nprocs.value,
            time_to_live=self._ttl.value,
            idle_timeout=self._idle.value,
            wait=self._wait.value,
        )

    def fill(self, **values: Any) -> None:
        """Set fields by ``CreateValues`` name, as typing would: ``form.fill(name="demo", wait=False)``."""
        fields = {
            "name": self._name,
            "flavor": self._flavor,
            "image": self._image,
            "mode": self._mode,
            "world_size": self._world_size,
            "nprocs_per_node": self._nprocs,
            "time_to_live": self._ttl,
            "idle_timeout": self._idle,
            "wait": self._wait,
        }
        unknown = set(values) - set(fields)
        if unknown:
            raise TypeError(f"unknown fields {sorted(unknown)}; the fields are {sorted(fields)}")
        for key, value in values.items():
            fields[key].value = value

    def submit(self) -> None:
        """Press Create."""
        self._create.click()

    def load_flavors(self) -> None:
        """Fill the flavor dropdown from the cluster, each flavor labelled with its resources."""
        with _reported(self._status):
            self._flavor.options = flavor_options(self._client.flavors())
            if not self._flavor.options:
                self._status.show(
                    "No flavors are installed on this cluster; ask your cluster admin.", error=True
                )

    # -- handlers -----------------------------------------------------------------------------------

    def _on_mode_change(self, change: dict[str, Any]) -> None:
        self._distributed.layout.display = "" if shows_distributed_fields(change["new"]) else "none"

    def _on_create_click(self, button: widgets.Button) -> None:
        with _reported(self._status, button):
            name, kwargs = create_arguments(self.values)
            self._status.show(f"Creating {name}...")
            if kwargs["wait"]:
                kwargs["on_progress"] = lambda server: self._status.show(progress_text(server))
            server = self._client.create(name, **kwargs)
            if kwargs["wait"]:
                self._status.show(f"{progress_text(server)}. Run code on it with: %%devserver run {name}")
            else:
                self._status.show(f"Created {name}; it is starting.")
            if self._on_created is not None:
                self._on_created(server)


class ServerRow(widgets.HBox):
    """One DevServer in the list: name, phase, ready ranks, time left, and its actions.

    The buttons are attributes so that code cells (and tests) can press them: ``row.extend_button.click()``.
    Delete only reveals Confirm and Cancel; Confirm deletes.
    """

    def __init__(self, view: RowView) -> None:
        self.server_name = view.name
        self.deadline = view.deadline
        self._name = widgets.HTML(f"<b>{html.escape(view.name)}</b>", layout=widgets.Layout(width="200px"))
        self._phase = widgets.HTML(layout=widgets.Layout(width=_COLUMN_WIDTHS["phase"]))
        self._ready = widgets.HTML(layout=widgets.Layout(width=_COLUMN_WIDTHS["ready"]))
        self._expires = widgets.HTML(layout=widgets.Layout(width=_COLUMN_WIDTHS["expires"]))
        self.extend_button = widgets.Button(
            description="Extend 1h", icon="clock-o", layout=widgets.Layout(width="100px")
        )
        self.toggle_button = widgets.Button(layout=widgets.Layout(width="80px"))
        self.delete_button = widgets.Button(
            description="Delete", button_style="danger", icon="trash", layout=widgets.Layout(width="90px")
        )
        self.confirm_button = widgets.Button(description=f"Delete {view.name}", button_style="danger")
        self.cancel_button = widgets.Button(description="Cancel")
        self._confirmation = widgets.HBox(
            [widgets.HTML("Really delete?"), self.confirm_button, self.cancel_button],
            layout=widgets.Layout(display="none"),
        )
        super().__init__(
            [
                self._name,
                self._phase,
                self._ready,
                self._expires,
                self.extend_button,
                self.toggle_button,
                self.delete_button,
                self._confirmation,
            ]
        )
        self.update(view)

    @property
    def cells(self) -> dict[str, str]:
        """What the row shows, as text (for code cells and tests)."""
        return {
            "name": self.server_name,
            "phase": self._phase.value,
            "ready": self._ready.value,
            "expires": self._expires.value,
            "toggle": self.toggle_button.description,
        }

    @property
    def confirming(self) -> bool:
        return self._confirmation.layout.display != "none"

    def update(self, view: RowView) -> None:
        self.deadline = view.deadline
        self._phase.value, self._ready.value = html.escape(view.phase), view.ready
        self._expires.value = view.expires_in
        self.toggle_button.description = view.toggle
        self.toggle_button.icon = "play" if view.toggle == "Start" else "stop"

    def tick(self, now: datetime) -> None:
        self._expires.value = remaining_text(self.deadline, now=now)

    def ask_confirmation(self, asking: bool) -> None:
        self._confirmation.layout.display = "" if asking else "none"
        self.delete_button.layout.display = "none" if asking else ""


class DevServerList(widgets.VBox):
    """Your DevServers with phase, ready ranks and a countdown to expiry; Extend 1h, Stop/Start, Delete
    (with confirmation) on each row, and Refresh.

    Args:
        client: the ``DevServerClient`` to list and act with.
        mine: list only the client owner's DevServers (``False``: everyone's in the namespace).
    """

    def __init__(self, client: DevServerClient, *, mine: bool = True) -> None:
        self._client = client
        self._mine = mine
        self._refresh = widgets.Button(description="Refresh", icon="refresh")
        self._status = _Status()
        self._rows: dict[str, ServerRow] = {}
        self._table = widgets.VBox()
        header = widgets.HBox(
            [
                widgets.HTML(f"<b>{title}</b>", layout=widgets.Layout(width=width))
                for title, width in (
                    ("Name", _COLUMN_WIDTHS["name"]),
                    ("Phase", _COLUMN_WIDTHS["phase"]),
                    ("Ready", _COLUMN_WIDTHS["ready"]),
                    ("Expires in", _COLUMN_WIDTHS["expires"]),
                )
            ]
        )
        self._refresh.on_click(self._on_refresh_click)
        super().__init__(
            [
                widgets.HBox([widgets.HTML("<b>Your DevServers</b>"), self._refresh]),
                header,
                self._table,
                self._status,
            ]
        )
        self.refresh()

    # -- for code cells and tests -------------------------------------------------------------------

    @property
    def status(self) -> str:
        return self._status.text

    @property
    def names(self) -> list[str]:
        return list(self._rows)

    def row(self, name: str) -> ServerRow:
        """The row of DevServer ``name`` (``KeyError`` if it is not listed)."""
        return self._rows[name]

    def refresh(self) -> None:
        """List again (what Refresh does)."""
        self._refresh.click()

    def tick(self, now: datetime | None = None) -> None:
        """Count the expiry countdowns down without asking the cluster."""
        moment = now or datetime.now(UTC)
        for row in self._rows.values():
            row.tick(moment)

    # -- handlers -----------------------------------------------------------------------------------

    def _on_refresh_click(self, button: widgets.Button) -> None:
        with _reported(self._status, button):
            owner = self._client.owner if self._mine else None
            servers = self._client.list(owner=owner)
            self._show(servers)
            self._status.show("" if servers else "No DevServers yet: create one above.")

    def _on_extend_click(self, name: str, button: widgets.Button) -> None:
        with _reported(self._status, button):
            server = self._client.extend(name, by="1h")
            self._rows[name].update(row_view(server))
            self._status.show(f"Extended {name} by 1h: it expires in {self._rows[name].cells['expires']}.")

    def _on_toggle_click(self, name: str, button: widgets.Button) -> None:
        with _reported(self._status, button):
            if button.description == "Start":
                server = self._client.start(name)
                self._status.show(f"Starting {name}.")
            else:
                server = self._client.stop(name)
                self._status.show(f"Stopping {name}: its pods go, its home volumes stay.")
            self._rows[name].update(row_view(server))

    def _on_delete_click(self, name: str, button: widgets.Button) -> None:
        self._rows[name].ask_confirmation(True)
        self._status.show(f"Delete {name} with its pods and volumes? Confirm or cancel.")

    def _on_cancel_click(self, name: str, button: widgets.Button) -> None:
        self._rows[name].ask_confirmation(False)
        self._status.show("")

    def _on_confirm_click(self, name: str, button: widgets.Button) -> None:
        with _reported(self._status, button):
            self._client.delete(name)
            self._rows[name].ask_confirmation(False)
            self._status.show(f"Deleting {name}.")
            self._show(self._client.list(owner=self._client.owner if self._mine else None))

    def _show(self, servers: list[DevServer]) -> None:
        now = datetime.now(UTC)
        rows: dict[str, ServerRow] = {}
        for server in servers:
            view = row_view(server, now=now)
            row = self._rows.get(server.name)
            if row is None:
                row = ServerRow(view)
                row.extend_button.on_click(partial(self._on_extend_click, server.name))
                row.toggle_button.on_click(partial(self._on_toggle_click, server.name))
                row.delete_button.on_click(partial(self._on_delete_click, server.name))
                row.confirm_button.on_click(partial(self._on_confirm_click, server.name))
                row.cancel_button.on_click(partial(self._on_cancel_click, server.name))
            else:
                row.update(view)
            rows[server.name] = row
        for name, row in self._rows.items():
            if name not in rows:
                row.close()
        self._rows = rows
        self._table.children = tuple(rows.values())


class DevServerUI(widgets.VBox):
    """``%devserver ui``: the create form above the list of your DevServers.

    Args:
        client: the ``DevServerClient`` both use.
        countdown_interval: seconds between countdown updates (no cluster call); ``None``: no timer.

    Example:
        >>> DevServerUI(DevServerClient(namespace="ml"))  # doctest: +SKIP
    """

    def __init__(self, client: DevServerClient, *, countdown_interval: float | None = 30.0) -> None:
        self.servers = DevServerList(client)
        self.form = CreateForm(client, on_created=lambda server: self.servers.refresh())
        title = widgets.HTML(f"<h3>DevServers in namespace {html.escape(client.namespace)}</h3>")
        super().__init__([title, self.form, widgets.HTML("<hr>"), self.servers])
        self._stop_ticking = threading.Event()
        if countdown_interval:
            threading.Thread(
                target=self._tick, args=(countdown_interval,), name="devserver-ui-countdown", daemon=True
            ).start()

    def _tick(self, interval: float) -> None:
        while not self._stop_ticking.wait(interval):
            try:
                self.servers.tick()
            except Exception:  # a closed widget, a kernel shutting down: the countdown just stops
                return

    def close(self) -> None:
        self._stop_ticking.set()
        super().close()
