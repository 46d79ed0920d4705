"""The ``%devserver ui`` widgets in plain Python against the platform: ``.click()``, values, status areas.

Every error is provoked for real (a taken name, a bad duration, an unreachable cluster, an object deleted
behind the widget's back) and must end up in a status area, never raised.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from devservers_magics.widgets import CreateForm, DevServerList, DevServerUI, _cell_html

from devservers_sdk.client import DevServerClient
from devservers_sdk.contract import DESIRED_STATE_ANNOTATION
from devservers_sdk.errors import DevServerNotFoundError
from tests.magics.magic_support import READY_TIMEOUT, wait_until


@pytest.fixture
def ui(client: DevServerClient) -> Iterator[DevServerUI]:
    widget = DevServerUI(client, countdown_interval=None)
    yield widget
    widget.close()


@pytest.fixture
def unreachable(platform: Any, tmp_path: Path) -> Iterator[DevServerClient]:
    """A client whose kubeconfig points at a port where nothing listens."""
    document = yaml.safe_load(Path(platform.kubeconfig).read_text())
    document["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    with DevServerClient(kubeconfig=str(path), namespace="nowhere", owner="alice", request_timeout=3) as sdk:
        yield sdk


def test_the_flavor_dropdown_is_filled_from_the_cluster_with_resources(ui: DevServerUI) -> None:
    options = dict(ui.form._flavor.options)
    assert options["cpu-small: 1 CPU, 2Gi"] == "cpu-small"
    assert options["gpu-small: 8 CPU, 32Gi, 1 GPU"] == "gpu-small"
    assert len(options) == 7  # the six sizes of examples/flavors and gpu-small-spot


def test_choosing_distributed_reveals_world_size_and_processes(ui: DevServerUI) -> None:
    form = ui.form
    assert form._distributed.layout.display == "none"
    form._mode.value = "distributed"
    assert form._distributed.layout.display == ""
    assert form.values.mode == "distributed" and form.values.world_size == 2
    form._mode.value = "standalone"
    assert form._distributed.layout.display == "none"
    # A hidden field is no input: back in standalone mode the form reports no world size to refuse.
    assert form.values.world_size is None and form.values.nprocs_per_node is None


def test_create_without_waiting_then_the_list_shows_it(ui: DevServerUI, client: DevServerClient) -> None:
    form = ui.form
    form._name.value = "from-form"
    form._flavor.value = "cpu-small"
    form._ttl.value = "2h"
    form._idle.value = "45m"
    form._wait.value = False
    form.submit()
    assert form.status == "Created from-form; it is starting (follow it in the list)."
    assert not form._create.disabled
    spec = client.get("from-form").spec
    assert (spec.flavor, spec.lifecycle.time_to_live, spec.lifecycle.idle_timeout) == (
        "cpu-small",
        "2h",
        2700,
    )
    # The form is cleared for the next one, and the list shows the new DevServer from its watch.
    assert (form.values.name, form.values.time_to_live, form.values.idle_timeout) == ("", "", "")
    assert form.values.flavor == "cpu-large" and form.values.wait is False
    wait_until(lambda: ui.servers.names == ["from-form"], timeout=60, message="the new row")


def test_the_flavor_dropdown_starts_with_a_flavor_chosen(ui: DevServerUI) -> None:
    assert ui.form.values.flavor == "cpu-large"  # the first, by name: a name is all the form needs


def test_create_distributed_from_the_form(ui: DevServerUI, client: DevServerClient) -> None:
    ui.form.fill(
        name="group", flavor="cpu-small", mode="distributed", world_size=3, nprocs_per_node=2, wait=False
    )
    ui.form.submit()
    assert ui.form.status == "Created group; it is starting (follow it in the list).", ui.form.status
    distributed = client.get("group").spec.distributed
    assert distributed is not None and (distributed.world_size, distributed.nprocs_per_node) == (3, 2)


def test_create_and_wait_shows_progress_with_the_button_disabled(
    ui: DevServerUI, client: DevServerClient
) -> None:
    form = ui.form
    seen: list[tuple[str, bool]] = []
    form._status.observe(lambda change: seen.append((form.status, form._create.disabled)), names="value")
    form.fill(name="waited", flavor="cpu-small", wait=True)
    form.submit()
    assert form.status.startswith("waited: Running, 1/1 ready"), form.status
    assert form.status.endswith(". Run code on it with: %%devserver run waited")
    assert seen[0] == ("Creating waited...", True)
    assert any(text.startswith("waited: ") and text.endswith("...") for text, _ in seen[1:-1])  # progress
    assert all(disabled for _, disabled in seen), seen  # disabled during the whole call
    assert not form._create.disabled  # and enabled again afterwards
    assert form._cancel.layout.display == "none"  # Cancel only shows while waiting
    assert client.get("waited").status.phase == "Running"
    wait_until(
        lambda: "waited" in ui.servers.names and ui.servers.row("waited").cells["phase"] == "Running",
        timeout=60,
        message="the row of waited, Running",
    )


def test_a_create_waiting_for_a_gpu_returns_at_once_and_cancel_stops_the_wait(
    ui: DevServerUI, client: DevServerClient
) -> None:
    form = ui.form
    form.fill(name="gpu-wanted", flavor="gpu-small", wait=True)
    form._create.click()  # what a click does: returns while the create goes on in the background
    assert form.busy and form._create.disabled and form._cancel.layout.display == ""
    wait_until(
        lambda: "not scheduled" in form.status or "Pending" in form.status,
        timeout=READY_TIMEOUT,
        message="progress: the pod waiting for a GPU node",
    )
    form.cancel()
    form.join(30)
    assert not form.busy, "the create's thread went on after Cancel"
    assert form.status == "Stopped waiting for gpu-wanted. It is still being created: follow it in the list."
    assert not form._create.disabled and form._cancel.layout.display == "none"
    assert client.get("gpu-wanted").status.phase == "Pending"  # Cancel stops waiting, nothing else
    wait_until(lambda: "gpu-wanted" in ui.servers.names, timeout=60, message="the row of gpu-wanted")
    row = ui.servers.row("gpu-wanted")
    wait_until(
        lambda: "scheduled" in row.cells["message"] and row.cells["message"],
        timeout=60,
        message="the scheduler's reason on the row",
    )
    assert "devctl" not in row.cells["message"], row.cells["message"]  # the widget's own words


def test_a_stop_from_elsewhere_shows_in_the_list_without_a_click(
    ui: DevServerUI, client: DevServerClient, platform: Any, namespace: str
) -> None:
    client.create("outside", flavor="cpu-small", wait=True, timeout=READY_TIMEOUT)
    wait_until(lambda: "outside" in ui.servers.names, timeout=60, message="the row of outside")
    row = ui.servers.row("outside")
    with DevServerClient(namespace=namespace, kubeconfig=platform.kubeconfig) as terminal:
        terminal.stop("outside")  # what devctl stop does, from another process's point of view
    wait_until(lambda: row.cells["toggle"] == "Start", timeout=60, message="Start offered")
    wait_until(lambda: row.cells["phase"] == "Stopped", timeout=READY_TIMEOUT, message="phase Stopped")
    # The operator's message, with its devctl hint turned into the row's own button.
    wait_until(lambda: "press Start on the row of outside" in row.cells["message"], timeout=60,
               message=f"the stop message with the widget's hint (row: {row.cells})")
    assert "devctl" not in row.cells["message"]


def test_rows_have_the_columns_of_the_list_magic(ui: DevServerUI, client: DevServerClient) -> None:
    client.create("columns", flavor="cpu-small", mode="distributed", world_size=2)
    wait_until(lambda: "columns" in ui.servers.names, timeout=60, message="the row of columns")
    cells = ui.servers.row("columns").cells
    assert "owner" not in cells  # "Your DevServers": the column would repeat your name on every row
    assert (cells["flavor"], cells["mode"]) == ("cpu-small", "distributed")
    everyone = DevServerList(client, mine=False, follow=False)
    try:
        assert everyone.row("columns").cells["owner"] == client.owner
    finally:
        everyone.close()
    assert cells["ready"] in ("0/2", "1/2", "2/2")
    assert cells["age"][-1] in "sm" and cells["age"][:-1].isdigit(), cells["age"]
    wait_until(
        lambda: ui.servers.row("columns").cells["message"] != "",
        timeout=READY_TIMEOUT,
        message="the operator's message on the row",
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "Error: Give the DevServer a name"),
        ({"name": "bad_name"}, 'Error: DevServer name "bad_name" is invalid'),
        ({"name": "ok", "time_to_live": "8"}, "Error: Invalid time_to_live"),
        ({"name": "ok", "idle_timeout": "10s"}, "it must be at least 1m"),
        ({"name": "taken"}, "Error: DevServer 'taken' in namespace"),
    ],
)
def test_create_errors_appear_in_the_status_area(
    ui: DevServerUI, client: DevServerClient, fields: dict[str, str], message: str
) -> None:
    client.create("taken", flavor="cpu-small")
    ui.form.fill(flavor="cpu-small", wait=False, **fields)
    ui.form.submit()  # raises nothing
    assert message in ui.form.status and ui.form._status.is_error
    assert "color:#b00020" in ui.form._status.value
    assert not ui.form._create.disabled


def test_an_unreachable_cluster_is_reported_not_raised(unreachable: DevServerClient) -> None:
    form = CreateForm(unreachable)
    servers = DevServerList(unreachable)
    try:
        assert form.status.startswith("Error: ") and "127.0.0.1:9" in form.status
        assert servers.status.startswith("Error: ") and "127.0.0.1:9" in servers.status
        assert servers.names == []
        form.fill(name="x")
        form.submit()
        assert form.status.startswith("Error: ")  # no flavor could be chosen
    finally:
        form.close()
        servers.close()


def test_rows_show_phase_ready_and_countdown(ui: DevServerUI, client: DevServerClient) -> None:
    client.create("counted", flavor="cpu-small", time_to_live="2h", wait=True, timeout=READY_TIMEOUT)
    ui.servers.refresh()
    row = ui.servers.row("counted")
    assert row.cells["phase"] == "Running" and row.cells["ready"] == "1/1"
    assert row.cells["expires"] in ("2h", "1h 59m")
    assert row.deadline is not None
    ui.servers.tick(now=row.deadline - timedelta(minutes=5, seconds=30))
    assert row.cells["expires"] == "5m 30s"
    ui.servers.tick(now=row.deadline + timedelta(seconds=1))
    assert row.cells["expires"] == "expired"


def test_extend_one_hour(ui: DevServerUI, client: DevServerClient) -> None:
    client.create("extendable", flavor="cpu-small", time_to_live="1h")
    ui.servers.refresh()
    row = ui.servers.row("extendable")
    before = row.deadline
    assert before is not None
    row.extend_button.click()
    assert ui.servers.status.startswith("Extended extendable by 1h"), ui.servers.status
    expiry = client.get("extendable").spec.lifecycle.expiration_time
    assert expiry is not None and abs((expiry - before) - timedelta(hours=1)) < timedelta(seconds=5)
    assert row.deadline is not None and abs(row.deadline - expiry) < timedelta(seconds=5)
    assert row.cells["expires"] in ("2h", "1h 59m")
    assert not row.extend_button.disabled


def test_stop_then_start(ui: DevServerUI, client: DevServerClient) -> None:
    client.create("toggled", flavor="cpu-small", wait=True, timeout=READY_TIMEOUT)
    ui.servers.refresh()
    row = ui.servers.row("toggled")
    assert row.cells["toggle"] == "Stop"
    row.toggle_button.click()
    assert client.get("toggled").metadata.annotations[DESIRED_STATE_ANNOTATION] == "Stopped"
    assert row.cells["toggle"] == "Start" and ui.servers.status.startswith("Stopping toggled")
    # No Refresh: the row follows the cluster.
    wait_until(lambda: row.cells["phase"] == "Stopped", timeout=READY_TIMEOUT, message="the row to say Stopped")
    row.toggle_button.click()
    assert client.get("toggled").metadata.annotations[DESIRED_STATE_ANNOTATION] == "Running"
    assert row.cells["toggle"] == "Stop"
    wait_until(lambda: row.cells["phase"] == "Running", timeout=READY_TIMEOUT, message="the row to say Running")


def test_stop_never_says_a_missing_home_is_kept(ui: DevServerUI, client: DevServerClient) -> None:
    """Issue 14: "its home volumes stay" was said of a server without a persistent home."""
    client.create("homeless", flavor="cpu-small", home_size="0")
    client.create("homed", flavor="cpu-small", wait=True, timeout=READY_TIMEOUT)  # the default home
    ui.servers.refresh()
    ui.servers.row("homeless").toggle_button.click()
    assert ui.servers.status == ("Stopping homeless: its pods go; it has no persistent home (persistentHomeSize 0), "
                                 "so files in its home are lost.")
    ui.servers.row("homed").toggle_button.click()
    assert ui.servers.status == "Stopping homed: its pods go; its home volumes are kept."


def test_delete_asks_for_confirmation(ui: DevServerUI, client: DevServerClient) -> None:
    client.create("kept", flavor="cpu-small")
    client.create("doomed", flavor="cpu-small")
    ui.servers.refresh()
    row = ui.servers.row("doomed")
    row.delete_button.click()
    assert row.confirming and "Confirm or cancel" in ui.servers.status
    row.cancel_button.click()
    assert not row.confirming
    assert {s.name for s in client.list()} == {"doomed", "kept"}
    row.delete_button.click()
    row.confirm_button.click()
    assert ui.servers.status == "Deleting doomed."
    wait_until(lambda: ui.servers.names == ["kept"], timeout=60, message="the row of doomed to go")
    assert [s.name for s in client.list()] == ["kept"]


def test_row_actions_on_a_vanished_devserver_report_the_error(
    ui: DevServerUI, client: DevServerClient
) -> None:
    client.create("vanishing", flavor="cpu-small")
    ui.servers.refresh()
    row = ui.servers.row("vanishing")
    client.delete("vanishing", wait=True, timeout=60)
    with pytest.raises(DevServerNotFoundError):
        client.get("vanishing")
    row.extend_button.click()
    assert ui.servers.status.startswith("Error: DevServer 'vanishing' not found"), ui.servers.status
    row.toggle_button.click()
    assert ui.servers.status.startswith("Error: DevServer 'vanishing' not found")
    assert not row.extend_button.disabled and not row.toggle_button.disabled


def test_refresh_lists_only_your_devservers(
    ui: DevServerUI, client: DevServerClient, platform: Any, namespace: str
) -> None:
    assert ui.servers.names == [] and "No DevServers yet" in ui.servers.status
    client.create("mine", flavor="cpu-small")
    with DevServerClient(namespace=namespace, kubeconfig=platform.kubeconfig, owner="someone-else") as other:
        other.create("theirs", flavor="cpu-small")
    ui.servers._refresh.click()
    assert ui.servers.names == ["mine"] and ui.servers.status == ""


def test_the_countdown_timer_ticks(client: DevServerClient) -> None:
    created = time.monotonic()
    client.create("ticking", flavor="cpu-small", time_to_live="1h")
    widget = DevServerUI(client, countdown_interval=0.05)
    try:
        row = widget.servers.row("ticking")
        row._cells["expires"].value = _cell_html("stale")
        assert row.cells["expires"] == "stale"
        wait_until(lambda: row.cells["expires"] != "stale", timeout=60, message="the countdown to tick")
        # An hour less the time since the create (however long a loaded machine took), to the second.
        shown = row.cells["expires"]
        parts = re.fullmatch(r"(?:1h)|(?:(\d+)m (\d+)s)", shown)
        assert parts is not None, f"expires shows {shown!r}"
        left = 3600 if shown == "1h" else int(parts[1]) * 60 + int(parts[2])
        assert 3600 - (time.monotonic() - created) - 2 <= left <= 3600, shown
    finally:
        widget.close()
    assert widget._stop_ticking.is_set()
    assert datetime.now(UTC) < (row.deadline or datetime.now(UTC)) + timedelta(hours=1)
