"""``%devserver ui``: a create form and a list of DevServers with per-row actions, over an injected client.

Shaped like ipywidgets' ``interact``: each part is a box subclass with private child widgets and handlers
named ``_on_<widget>_<event>``. What a handler decides comes from the pure functions of ``forms.py``.

The list tells the truth: it is drawn from ``LiveDevServers`` (the SDK's watch, in a background thread),
not from what the last click returned, so a ``devctl stop`` in a terminal or the operator's idle stop shows
within a second. Refresh lists again at once (after the cluster was unreachable, say).

The kernel is never held: a create runs in a background thread (``Create`` returns at once), shows its
progress in the status line and offers Cancel, which stops *waiting* through the SDK's ``Cancellation``;
the DevServer stays and the list shows it. Code cells and tests use ``form.submit()``, which clicks and
then waits for the create to finish, so a notebook run top to bottom stays in order.

Errors never reach the kernel: a widget callback that raises only lands in the kernel log, where nobody
looks, so every handler catches and writes the SDK's sentence (with its ``devctl`` hint turned into the
widget's own button, ``widget_message``) to its status area instead.

Layout: field labels are widgets of their own in one fixed-width column (a widget's ``description`` puts
some labels, ToggleButtons' among them, above the control); buttons are as wide as their labels (``width:
auto``); status lines sit under the controls and wrap; a row's actions live in a box of fixed width in which
the delete confirmation replaces the buttons, so confirming never moves a column.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
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
    widget_message,
)
from .summaries import remaining_text, span_text

if TYPE_CHECKING:
    from devservers_sdk.cancellation import Cancellation
    from devservers_sdk.client import DevServerClient
    from devservers_sdk.errors import DevServerError
    from devservers_sdk.live import LiveDevServers
    from devservers_sdk.models import DevServer

__all__ = ["CreateForm", "DevServerList", "DevServerUI", "ServerRow"]

_LABEL_WIDTH = "120px"
_FIELD_WIDTH = "300px"
_STATUS_WIDTH = "640px"
# Columns of the list, as ``%devserver list`` has them (Owner only when the list is not just yours); the
# actions box is wide enough for either its three buttons or the delete confirmation. With JupyterLab's file
# browser open at 1280 px, a notebook output is about 815 px wide: the row fits, and on anything narrower the
# actions wrap under the cells rather than being cut off.
_COLUMNS = (
    ("name", "Name", "130px"),
    ("owner", "Owner", "120px"),
    ("flavor", "Flavor", "85px"),
    ("mode", "Mode", "85px"),
    ("phase", "Phase", "75px"),
    ("ready", "Ready", "45px"),
    ("expires", "Expires in", "80px"),
    ("age", "Age", "40px"),
)
_ACTIONS_WIDTH = "270px"


class _Status(widgets.HTML):
    """A status line under the controls: progress, a result, or an error in red; long text wraps.

    ``text`` is the message without markup."""

    def __init__(self) -> None:
        super().__init__(value="", layout=widgets.Layout(max_width=_STATUS_WIDTH))
        self.text = ""
        self.is_error = False

    def show(self, text: str, *, error: bool = False) -> None:
        self.text, self.is_error = text, error
        color = "#b00020" if error else "inherit"
        self.value = (
            f'<div style="color:{color};white-space:normal;overflow-wrap:anywhere;line-height:1.4">'
            f"{html.escape(text)}</div>"
            if text
            else ""
        )


def _button(description: str, **kwargs: Any) -> widgets.Button:
    """A button as wide as its label (ipywidgets' fixed default cuts "Extend 1h" to "Extend ...")."""
    return widgets.Button(
        description=description, layout=widgets.Layout(width="auto", flex="0 0 auto"), **kwargs
    )


def _labelled(label: str, control: widgets.Widget) -> widgets.HBox:
    """``control`` with its label in the form's label column."""
    return widgets.HBox(
        [widgets.Label(label, layout=widgets.Layout(width=_LABEL_WIDTH, flex="0 0 auto")), control]
    )


def _field() -> widgets.Layout:
    return widgets.Layout(width=_FIELD_WIDTH)


def _error_text(exc: BaseException) -> str:
    from devservers_sdk.errors import DevServerError

    if isinstance(exc, DevServerError | ValueError):
        return f"Error: {widget_message(str(exc))}"
    return f"Unexpected error: {type(exc).__name__}: {exc}"


@contextmanager
def _reported(status: _Status, button: widgets.Button | None = None) -> Iterator[None]:
    """Run a widget action: button disabled meanwhile, any error written to the status area."""
    if button is not None:
        button.disabled = True
    try:
        yield
    except Exception as exc:  # a widget must not raise into the kernel log; say what happened instead
        status.show(_error_text(exc), error=True)
    finally:
        if button is not None:
            button.disabled = False


class CreateForm(widgets.VBox):
    """Name, flavor (with its resources), image, mode (world size and processes revealed for distributed),
    time to live, idle timeout, "wait until ready", Create (and Cancel while waiting) and a status line.

    A create runs in a background thread: the kernel stays free, and Cancel stops waiting (the DevServer
    stays). After a successful create the form is cleared for the next one.

    Args:
        client: the ``DevServerClient`` to create with (its namespace is where DevServers go).
        on_created: called (from the create's thread) with the new DevServer after a successful create.
    """

    def __init__(
        self, client: DevServerClient, *, on_created: Callable[[DevServer], None] | None = None
    ) -> None:
        self._client = client
        self._on_created = on_created
        self._name = widgets.Text(placeholder="e.g. alice-dev", layout=_field())
        self._flavor = widgets.Dropdown(options=[], layout=_field())
        self._image = widgets.Text(placeholder="the flavor's default image", layout=_field())
        self._mode = widgets.ToggleButtons(options=list(MODES), value="standalone")
        self._world_size = widgets.BoundedIntText(
            value=2, min=1, max=1000, layout=widgets.Layout(width="90px")
        )
        self._nprocs = widgets.BoundedIntText(value=1, min=1, max=1024, layout=widgets.Layout(width="90px"))
        self._distributed = widgets.VBox(
            [_labelled("World size", self._world_size), _labelled("Procs per pod", self._nprocs)],
            layout=widgets.Layout(display="none"),
        )
        self._ttl = widgets.Text(placeholder="e.g. 4h, 1h30m (blank: flavor's limit)", layout=_field())
        self._idle = widgets.Text(placeholder="e.g. 30m (blank: flavor's default)", layout=_field())
        self._wait = widgets.Checkbox(description="Wait until ready", value=True, indent=False)
        self._create = _button("Create", button_style="primary", icon="plus")
        self._cancel = _button("Cancel", icon="times", tooltip="Stop waiting; the DevServer stays")
        self._cancel.layout.display = "none"
        self._status = _Status()
        self._task: threading.Thread | None = None
        self._cancellation: Cancellation | None = None
        self._mode.observe(self._on_mode_change, names="value")
        self._create.on_click(self._on_create_click)
        self._cancel.on_click(self._on_cancel_click)
        super().__init__(
            [
                widgets.HTML("<b>New DevServer</b>"),
                _labelled("Name", self._name),
                _labelled("Flavor", self._flavor),
                _labelled("Image", self._image),
                _labelled("Mode", self._mode),
                self._distributed,
                _labelled("Time to live", self._ttl),
                _labelled("Idle timeout", self._idle),
                _labelled("", self._wait),
                _labelled("", widgets.HBox([self._create, self._cancel])),
                self._status,
            ]
        )
        self.load_flavors()

    # -- for code cells and tests -------------------------------------------------------------------

    @property
    def status(self) -> str:
        """The status line as text."""
        return self._status.text

    @property
    def busy(self) -> bool:
        """Whether a create is under way."""
        return self._task is not None and self._task.is_alive()

    @property
    def values(self) -> CreateValues:
        """The form's current values; a hidden field (world size and processes per node outside distributed
        mode) is not one."""
        shown = shows_distributed_fields(self._mode.value)
        return CreateValues(
            name=self._name.value,
            flavor=self._flavor.value,
            image=self._image.value,
            mode=self._mode.value,
            world_size=self._world_size.value if shown else None,
            nprocs_per_node=self._nprocs.value if shown else None,
            time_to_live=self._ttl.value,
            idle_timeout=self._idle.value,
            wait=self._wait.value,
        )

    def fill(self, **values: Any) -> None:
        """Set fields by ``CreateValues`` name, as typing would: ``form.fill(name="demo", wait=False)``."""
        fields = self._fields()
        unknown = set(values) - set(fields)
        if unknown:
            raise TypeError(f"unknown fields {sorted(unknown)}; the fields are {sorted(fields)}")
        for key, value in values.items():
            fields[key].value = value

    def submit(self, timeout: float | None = None) -> None:
        """Press Create, then wait up to ``timeout`` seconds for the create to finish (a click returns at
        once; a code cell wants the result before its next line)."""
        self._create.click()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds for a create under way (if any) to finish."""
        task = self._task
        if task is not None:
            task.join(timeout)

    def cancel(self) -> None:
        """Press Cancel: stop waiting for the DevServer being created (it stays)."""
        self._cancel.click()

    def load_flavors(self) -> None:
        """Fill the flavor dropdown from the cluster, each flavor labelled with its resources; the first
        is chosen, so the form is ready to submit with a name alone."""
        with _reported(self._status):
            self._flavor.options = flavor_options(self._client.flavors())
            if not self._flavor.options:
                self._status.show(
                    "No flavors are installed on this cluster; ask your cluster admin.", error=True
                )
            self._choose_default_flavor()

    def reset(self) -> None:
        """Clear the fields for the next DevServer ("wait until ready" keeps its choice)."""
        self.fill(
            name="",
            image="",
            mode="standalone",
            world_size=2,
            nprocs_per_node=1,
            time_to_live="",
            idle_timeout="",
        )
        self._choose_default_flavor()

    def close(self) -> None:
        if self._cancellation is not None:
            self._cancellation.cancel()
        super().close()

    # -- handlers -----------------------------------------------------------------------------------

    def _fields(self) -> dict[str, widgets.ValueWidget]:
        return {
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

    def _choose_default_flavor(self) -> None:
        options = self._flavor.options
        if options:
            self._flavor.value = options[0][1]

    def _on_mode_change(self, change: dict[str, Any]) -> None:
        self._distributed.layout.display = "" if shows_distributed_fields(change["new"]) else "none"

    def _on_create_click(self, button: widgets.Button) -> None:
        from devservers_sdk.cancellation import Cancellation

        if self.busy:
            return
        with _reported(self._status):
            name, kwargs = create_arguments(self.values)
            cancellation = Cancellation()
            if kwargs["wait"]:
                kwargs["on_progress"] = lambda server: self._status.show(f"{progress_text(server)}...")
                kwargs["cancel"] = cancellation
                self._cancel.layout.display = ""
            self._create.disabled = True
            self._cancellation = cancellation
            self._status.show(f"Creating {name}...")
            self._task = threading.Thread(
                target=self._create_in_background,
                args=(name, kwargs),
                name=f"devserver-create-{name}",
                daemon=True,
            )
            self._task.start()

    def _create_in_background(self, name: str, kwargs: dict[str, Any]) -> None:
        from devservers_sdk.errors import WaitCancelledError

        try:
            server = self._client.create(name, **kwargs)
        except WaitCancelledError:
            self._status.show(
                f"Stopped waiting for {name}. It is still being created: follow it in the list."
            )
        except Exception as exc:  # shown in the form, never raised into the kernel log
            self._status.show(_error_text(exc), error=True)
        else:
            self.reset()
            if kwargs["wait"]:
                self._status.show(f"{progress_text(server)}. Run code on it with: %%devserver run {name}")
            else:
                self._status.show(f"Created {name}; it is starting (follow it in the list).")
            if self._on_created is not None:
                self._on_created(server)
        finally:
            self._cancel.layout.display = "none"
            self._cancel.disabled = False
            self._create.disabled = False

    def _on_cancel_click(self, button: widgets.Button) -> None:
        if self._cancellation is not None and self.busy:
            button.disabled = True
            self._cancellation.cancel()


class ServerRow(widgets.VBox):
    """One DevServer in the list: the columns of ``%devserver list``, its actions, and the operator's
    message on a line of its own under them when there is one.

    The buttons are attributes so that code cells (and tests) can press them: ``row.extend_button.click()``.
    Delete only reveals the confirmation (in place of the buttons); "Yes, delete" deletes.
    """

    def __init__(self, view: RowView, *, owner_column: bool = True) -> None:
        self.server_name = view.name
        self.resource_version: str | None = None
        self.deadline = view.deadline
        self.created = view.created
        self._cells = {
            key: widgets.HTML(layout=widgets.Layout(width=width, flex="0 0 auto", overflow="hidden"))
            for key, _, width in _columns(owner_column)
        }
        self.extend_button = _button("Extend 1h", icon="clock-o")
        self.toggle_button = _button("Stop", icon="stop")
        self.delete_button = _button("Delete", button_style="danger", icon="trash")
        self.confirm_button = _button("Yes, delete", button_style="danger")
        self.cancel_button = _button("Cancel")
        self._buttons = widgets.HBox([self.extend_button, self.toggle_button, self.delete_button])
        self._confirmation = widgets.HBox(
            [widgets.HTML("Really delete?"), self.confirm_button, self.cancel_button],
            layout=widgets.Layout(display="none"),
        )
        self._message = widgets.HTML(layout=widgets.Layout(display="none", max_width="1030px"))
        actions = widgets.HBox(
            [self._buttons, self._confirmation], layout=widgets.Layout(width=_ACTIONS_WIDTH, flex="0 0 auto")
        )
        cells = widgets.HBox([*self._cells.values(), actions], layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([cells, self._message])
        self.update(view)

    @property
    def cells(self) -> dict[str, str]:
        """What the row shows, as text (for code cells and tests)."""
        return {
            **{key: html.unescape(_cell_text(cell.value)) for key, cell in self._cells.items()},
            "name": self.server_name,
            "message": html.unescape(_cell_text(self._message.value)),
            "toggle": self.toggle_button.description,
        }

    @property
    def confirming(self) -> bool:
        return self._confirmation.layout.display != "none"

    def update(self, view: RowView) -> None:
        self.deadline, self.created = view.deadline, view.created
        texts = {
            "name": view.name,
            "owner": view.owner,
            "flavor": view.flavor,
            "mode": view.mode,
            "phase": view.phase,
            "ready": view.ready,
            "expires": view.expires_in,
            "age": view.age,
        }
        for key, text in texts.items():
            if key not in self._cells:
                continue
            value = _cell_html(text, bold=key == "name")
            if self._cells[key].value != value:
                self._cells[key].value = value
        message = _cell_html(view.message, muted=True) if view.message else ""
        if self._message.value != message:
            self._message.value = message
            self._message.layout.display = "" if message else "none"
        if self.toggle_button.description != view.toggle:
            self.toggle_button.description = view.toggle
            self.toggle_button.icon = "play" if view.toggle == "Start" else "stop"

    def tick(self, now: datetime) -> None:
        self._cells["expires"].value = _cell_html(remaining_text(self.deadline, now=now))
        if self.created is not None:
            created = self.created if self.created.tzinfo else self.created.replace(tzinfo=UTC)
            self._cells["age"].value = _cell_html(span_text(max(now - created, timedelta(0)), parts=1))

    def ask_confirmation(self, asking: bool) -> None:
        self._confirmation.layout.display = "" if asking else "none"
        self._buttons.layout.display = "none" if asking else ""


def _columns(owner_column: bool) -> tuple[tuple[str, str, str], ...]:
    return tuple(column for column in _COLUMNS if owner_column or column[0] != "owner")


def _older(version: str | None, than: str | None) -> bool:
    """Whether resourceVersion ``version`` is older than ``than``. Kubernetes says they are opaque; every
    server we know counts up (etcd's revision), and anything else is taken as new."""
    if version is None or than is None or not version.isdigit() or not than.isdigit():
        return False
    return int(version) < int(than)


def _cell_html(text: str, *, bold: bool = False, muted: bool = False) -> str:
    """One cell: on one line, cut with an ellipsis if too long, the whole text in its tooltip."""
    escaped = html.escape(text)
    style = "white-space:nowrap;overflow:hidden;text-overflow:ellipsis"
    if muted:
        style = "white-space:normal;color:var(--jp-ui-font-color2,#666);font-size:90%"
    shown = f"<b>{escaped}</b>" if bold else escaped
    return f'<div title="{escaped}" style="{style}">{shown}</div>'


def _cell_text(value: str) -> str:
    """The text of ``_cell_html``'s markup (its tooltip holds it whole)."""
    start = value.find('title="')
    if start < 0:
        return ""
    start += len('title="')
    return value[start : value.index('"', start)]


class DevServerList(widgets.VBox):
    """Your DevServers, as the cluster has them now: name, owner, flavor, mode, phase, ready ranks, a
    countdown to expiry, age and the operator's message; Extend 1h, Stop/Start and Delete (with
    confirmation) on each row, and Refresh.

    Rows follow a watch (``LiveDevServers``), whoever changes the DevServers.

    Args:
        client: the ``DevServerClient`` to list and act with.
        mine: list only the client owner's DevServers (``False``: everyone's in the namespace).
        follow: keep the rows current from a watch (``False``: only Refresh and the actions update them).
    """

    def __init__(self, client: DevServerClient, *, mine: bool = True, follow: bool = True) -> None:
        self._client = client
        self._mine = mine
        self._refresh = _button("Refresh", icon="refresh")
        self._status = _Status()
        self._rows: dict[str, ServerRow] = {}
        self._lock = threading.RLock()
        self._table = widgets.VBox()
        self._live: LiveDevServers | None = None
        self._live_error = ""
        header = widgets.HBox(
            [
                widgets.HTML(f"<b>{title}</b>", layout=widgets.Layout(width=width, flex="0 0 auto"))
                for _, title, width in _columns(not mine)
            ]
        )
        self._refresh.on_click(self._on_refresh_click)
        super().__init__(
            [
                widgets.HBox(
                    [widgets.HTML("<b>Your DevServers</b>" if mine else "<b>DevServers</b>"), self._refresh]
                ),
                header,
                self._table,
                self._status,
            ]
        )
        self.refresh()
        if follow:
            self._follow()

    # -- for code cells and tests -------------------------------------------------------------------

    @property
    def status(self) -> str:
        return self._status.text

    @property
    def names(self) -> list[str]:
        with self._lock:
            return list(self._rows)

    @property
    def following(self) -> bool:
        """Whether a watch keeps the rows current."""
        return self._live is not None and self._live.running

    def row(self, name: str) -> ServerRow:
        """The row of DevServer ``name`` (``KeyError`` if it is not listed)."""
        with self._lock:
            return self._rows[name]

    def refresh(self) -> None:
        """List again (what Refresh does)."""
        self._refresh.click()

    def tick(self, now: datetime | None = None) -> None:
        """Count the expiry countdowns down (and ages up) without asking the cluster."""
        moment = now or datetime.now(UTC)
        with self._lock:
            rows = list(self._rows.values())
        for row in rows:
            row.tick(moment)

    def close(self) -> None:
        if self._live is not None:
            self._live.close(timeout=0)
        super().close()

    # -- following the cluster ----------------------------------------------------------------------

    def _owner(self) -> str | None:
        return self._client.owner if self._mine else None

    def _follow(self) -> None:
        from devservers_sdk.live import LiveDevServers

        with _reported(self._status):
            self._live = LiveDevServers(
                self._client, owner=self._owner(), on_event=self._on_live_event, on_error=self._on_live_error
            ).start()

    def _on_live_event(self, event: str, server: DevServer) -> None:
        with self._lock:
            if event == "DELETED":
                row = self._rows.pop(server.name, None)
                if row is not None:
                    self._table.children = tuple(self._rows.values())
                    row.close()
                    # Only into an empty status line: the watch's news must not replace what the user's last
                    # action said ("Deleting NAME."), which it did or not depending on which thread ran first.
                    if not self._rows and not self._status.text:
                        self._status.show("No DevServers yet: create one above.")
                return
            self._place(server, datetime.now(UTC))
        if self._status.text == "No DevServers yet: create one above.":
            self._status.show("")

    def _on_live_error(self, error: DevServerError | None) -> None:
        if error is not None:
            self._live_error = f"Error: {widget_message(str(error))} (The list keeps trying.)"
            self._status.show(self._live_error, error=True)
        elif self._live_error and self._status.text == self._live_error:
            self._live_error = ""
            self._status.show("")

    # -- handlers -----------------------------------------------------------------------------------

    def _on_refresh_click(self, button: widgets.Button) -> None:
        with _reported(self._status, button):
            servers = self._client.list(owner=self._owner())
            self._show(servers)
            self._status.show("" if servers else "No DevServers yet: create one above.")

    def _on_extend_click(self, name: str, button: widgets.Button) -> None:
        with _reported(self._status, button):
            server = self._client.extend(name, by="1h")
            self._place(server, datetime.now(UTC))
            left = row_view(server).expires_in
            self._status.show(f"Extended {name} by 1h: it now expires in {left}.")

    def _on_toggle_click(self, name: str, button: widgets.Button) -> None:
        with _reported(self._status, button):
            if button.description == "Start":
                server = self._client.start(name)
                self._status.show(f"Starting {name}.")
            else:
                from devservers_sdk.lifecycle import home_note  # never "kept" for a server without a home

                server = self._client.stop(name)
                self._status.show(f"Stopping {name}: its pods go; {home_note(server.spec, server.status.home_size)}.")
            self._place(server, datetime.now(UTC))

    def _confirming(self, name: str, asking: bool) -> None:
        with self._lock:
            row = self._rows.get(name)  # the watch may have taken it away meanwhile
        if row is not None:
            row.ask_confirmation(asking)

    def _on_delete_click(self, name: str, button: widgets.Button) -> None:
        self._confirming(name, True)
        self._status.show(f"Delete {name} with its pods and volumes? Confirm or cancel.")

    def _on_cancel_click(self, name: str, button: widgets.Button) -> None:
        self._confirming(name, False)
        self._status.show("")

    def _on_confirm_click(self, name: str, button: widgets.Button) -> None:
        with _reported(self._status, button):
            self._confirming(name, False)
            self._client.delete(name)
            self._status.show(f"Deleting {name}.")
            if not self.following:
                self._show(self._client.list(owner=self._owner()))

    def show(self, server: DevServer) -> None:
        """Show ``server`` now, as a call returned it (the watch's later news of it replaces this)."""
        self._place(server, datetime.now(UTC))

    def _place(self, server: DevServer, now: datetime) -> None:
        """Show ``server`` in its row (a new row, in name order, if it had none), unless the row already
        shows a later version of it (an action's answer can arrive after the watch's news)."""
        with self._lock:
            view = row_view(server, now=now)
            row = self._rows.get(server.name)
            if row is not None:
                if not _older(server.metadata.resource_version, row.resource_version):
                    row.resource_version = server.metadata.resource_version
                    row.update(view)
                return
            row = ServerRow(view, owner_column=not self._mine)
            row.resource_version = server.metadata.resource_version
            row.extend_button.on_click(partial(self._on_extend_click, server.name))
            row.toggle_button.on_click(partial(self._on_toggle_click, server.name))
            row.delete_button.on_click(partial(self._on_delete_click, server.name))
            row.confirm_button.on_click(partial(self._on_confirm_click, server.name))
            row.cancel_button.on_click(partial(self._on_cancel_click, server.name))
            self._rows[server.name] = row
            self._rows = dict(sorted(self._rows.items()))
            self._table.children = tuple(self._rows.values())

    def _show(self, servers: list[DevServer]) -> None:
        """Show exactly ``servers`` (a fresh list)."""
        now = datetime.now(UTC)
        with self._lock:
            wanted = {server.name for server in servers}
            for name in [name for name in self._rows if name not in wanted]:
                self._rows.pop(name).close()
            for server in servers:
                self._place(server, now)
            self._table.children = tuple(self._rows.values())


class DevServerUI(widgets.VBox):
    """``%devserver ui``: the create form above the list of your DevServers.

    Args:
        client: the ``DevServerClient`` both use.
        countdown_interval: seconds between countdown updates (no cluster call); ``None``: no timer.
        follow: keep the list current from a watch.
        mine: list only your DevServers (``False``: everyone's in the namespace, with an Owner column).

    Example:
        >>> DevServerUI(DevServerClient(namespace="ml"))  # doctest: +SKIP
    """

    def __init__(
        self,
        client: DevServerClient,
        *,
        countdown_interval: float | None = 30.0,
        follow: bool = True,
        mine: bool = True,
    ) -> None:
        self.servers = DevServerList(client, follow=follow, mine=mine)
        # A new DevServer shows at once, from the create's answer; the watch keeps its row current.
        self.form = CreateForm(client, on_created=self.servers.show)
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
        self.form.close()
        self.servers.close()
        super().close()
