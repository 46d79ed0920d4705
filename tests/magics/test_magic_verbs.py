"""Every ``%devserver`` verb in a real IPython shell against the platform: what it returns, how it shows,
and that SDK errors arrive as exactly ``UsageError``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from devservers_magics.tables import DevServerTable, FlavorTable
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from devservers_sdk.client import DevServerClient, DevServerDescription
from devservers_sdk.contract import DESIRED_STATE_ANNOTATION
from devservers_sdk.models import DevServer, DevServerFlavor
from tests.magics.magic_support import READY_TIMEOUT, CellRun, wait_until

SAMPLE_FLAVORS = ["cpu-large", "cpu-medium", "cpu-small", "gpu-large", "gpu-medium", "gpu-small", "gpu-small-spot"]


def rendered(shell: Any, obj: Any) -> tuple[str, str]:
    """The plain text and the HTML the shell's formatters produce (a terminal shell only emits the text)."""
    formatters = shell.display_formatter.formatters
    html = obj._repr_html_() if hasattr(obj, "_repr_html_") else formatters["text/html"].lookup(obj)(obj)
    return formatters["text/plain"](obj), html


def magic(shell: Any, line: str) -> Any:
    return shell.run_line_magic("devserver", line)


def usage_error(shell: Any, line: str) -> str:
    with pytest.raises(UsageError) as caught:
        magic(shell, line)
    assert type(caught.value) is UsageError
    return str(caught.value)


def test_flavors_returns_the_sdk_flavors_as_a_table(shell: Any) -> None:
    flavors = magic(shell, "flavors")
    assert isinstance(flavors, FlavorTable)
    assert all(isinstance(flavor, DevServerFlavor) for flavor in flavors)
    assert [flavor.name for flavor in flavors] == SAMPLE_FLAVORS
    text = str(flavors).splitlines()
    assert text[0].split() == ["NAME", "CPU", "MEMORY", "GPUS", "MAX", "TTL", "IDLE", "AFTER", "DESCRIPTION"]
    assert text[3].split()[:6] == ["cpu-small", "1", "2Gi", "0", "7d", "4h"]
    html = flavors._repr_html_()
    assert html.count("<tr>") == 1 + len(SAMPLE_FLAVORS) and "gpu-small" in html


def test_a_bare_verb_line_shows_one_table_and_an_assignment_shows_nothing(
    shell: Any, client: DevServerClient, run_cell: Callable[[str], CellRun]
) -> None:
    client.create("shown", flavor="cpu-small")
    with capture_output() as shown:
        result = shell.run_cell("%devserver list", store_history=True)
    assert isinstance(result.result, DevServerTable)
    # The magic displays nothing itself; the shell's displayhook shows the returned table, once.
    assert shown.outputs == []
    assert shown.stdout.count("NAME  ") == 1 and "shown" in shown.stdout
    text, html = rendered(shell, result.result)
    assert "shown" in text and "<table" in html
    with capture_output() as assigned:
        result = shell.run_cell("servers = %devserver list", store_history=True)
    assert result.result is None and assigned.outputs == [] and assigned.stdout == ""
    servers = shell.user_ns["servers"]
    assert isinstance(servers, DevServerTable) and [s.name for s in servers] == ["shown"]
    assert isinstance(servers[0], DevServer)


def test_create_returns_the_devserver_and_it_is_displayed_richly(shell: Any, client: DevServerClient) -> None:
    server = magic(
        shell, "create mydev --flavor cpu-small --time 4h --idle-timeout 30m --image pytorch/pytorch:2.5.1"
    )
    assert isinstance(server, DevServer)
    assert (server.name, server.spec.flavor, server.spec.image) == (
        "mydev",
        "cpu-small",
        "pytorch/pytorch:2.5.1",
    )
    assert (server.spec.lifecycle.time_to_live, server.spec.lifecycle.idle_timeout) == ("4h", 1800)
    stored = client.get("mydev")
    assert stored.spec.owner == client.owner and stored.spec.mode == "standalone"
    text, html = rendered(shell, server)
    assert text.startswith("DevServer mydev\n") and "cpu-small" in text
    assert "<table" in html and "mydev" in html


def test_create_distributed_with_nccl_settings(shell: Any, client: DevServerClient) -> None:
    magic(
        shell,
        "create ddp --flavor cpu-small --distributed --world-size 3 --nprocs-per-node 2 --backend gloo "
        "--nccl NCCL_DEBUG=INFO --no-auto-shutdown --home-size 1Gi",
    )
    spec = client.get("ddp").spec
    assert spec.mode == "distributed" and spec.distributed is not None
    assert (spec.distributed.world_size, spec.distributed.nprocs_per_node, spec.distributed.backend) == (
        3,
        2,
        "gloo",
    )
    assert spec.distributed.nccl_settings == {"NCCL_DEBUG": "INFO"}
    assert spec.lifecycle.auto_shutdown is False and spec.persistent_home_size == "1Gi"


def test_create_wait_prints_progress_and_returns_the_running_server(
    shell: Any, client: DevServerClient, run_cell: Callable[[str], CellRun]
) -> None:
    run = run_cell(f"server = %devserver create waited --flavor cpu-small --wait --timeout {READY_TIMEOUT}")
    assert run.error is None, run.stderr.text
    assert shell.user_ns["server"].status.phase == "Running"
    *lines, lifetime = run.stdout.text.splitlines()
    assert lines and lines[-1].startswith("waited: Running, 1/1 ready"), lines
    assert len(lines) == len(set(lines))  # one line per change, no repeats
    # The default lifetime is said at create (issue 14): the flavor's maximum, as no --time was given.
    assert re.fullmatch(r"DevServer 'waited' expires at \S+Z \(in (6d23h|7d)\), the maximum lifetime of flavor "
                        r"'cpu-small' \(7d\), as none was asked for\.", lifetime), lifetime


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "create taken --flavor cpu-small",
            "already exists. Pick another name, or delete it first with: %devserver delete taken",
        ),
        ("create other --flavor nope", "Flavor 'nope' does not exist. Available flavors: cpu-large"),
        ("create other --flavor cpu-small --time 8", "Invalid time_to_live"),
        # Refused, as devctl and the widgets refuse it (the magic used to make such a server distributed).
        ("create x --flavor cpu-small --world-size 2",
         "DevServer 'x' is standalone, but world size (spec.distributed.worldSize) only applies to a distributed "
         "DevServer: make it distributed, or leave it out. To make it distributed: %devserver create x --flavor "
         "cpu-small --distributed --world-size 2"),
        ("create other --flavor cpu-small --time 8d",
         "asks for a lifetime of 8d, more than the maximum lifetime of its flavor 'cpu-small' (7d)"),
        ("create Bad_Name --flavor cpu-small", 'DevServer name "Bad_Name" is invalid'),
        ("describe ghost", "DevServer 'ghost' not found in namespace"),
        ("delete ghost", "List yours with: %devserver list"),
        ("extend taken --time forever", "Invalid by"),
        ("update taken", "Nothing to update"),
        ("logs taken --rank 3", "has no pod for rank 3"),
    ],
)
def test_sdk_errors_become_exactly_usage_error(
    shell: Any, client: DevServerClient, line: str, expected: str
) -> None:
    client.create("taken", flavor="cpu-small")
    assert expected in usage_error(shell, line)


def test_parse_errors_and_unknown_verbs_are_usage_errors(shell: Any) -> None:
    assert "required: -f/--flavor" in usage_error(shell, "create nameless")
    assert "Unknown verb 'frobnicate'" in usage_error(shell, "frobnicate")
    assert "%%devserver run NAME as the first line" in usage_error(shell, "run mydev")
    with pytest.raises(UsageError, match="not a cell magic"):
        shell.run_cell_magic("devserver", "list", "print(1)")
    assert "KEY=VALUE" in usage_error(shell, "create x --flavor cpu-small --nccl NCCL_DEBUG")


def test_describe_returns_the_description(shell: Any, client: DevServerClient) -> None:
    client.create("described", flavor="cpu-small")
    description = magic(shell, "describe described")
    assert isinstance(description, DevServerDescription) and description.devserver.name == "described"
    text, html = rendered(shell, description)
    assert "Pods:" in text and "Events:" in text
    assert "<table" in html


def test_extend_pushes_the_expiry_back(shell: Any, client: DevServerClient) -> None:
    client.create("short", flavor="cpu-small", time_to_live="1h")
    before = datetime.now(UTC)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert magic(shell, "extend short --time 2h") is None  # one sentence, not a whole describe table
    expiry = client.get("short").spec.lifecycle.expiration_time
    assert expiry is not None
    assert (
        before + timedelta(hours=3) - timedelta(minutes=2) < expiry < datetime.now(UTC) + timedelta(hours=3)
    )
    # The time as the ExpiringSoon condition writes it (RFC 3339), and how long that is from now.
    assert out.getvalue().startswith(f"DevServer 'short' now expires at {expiry:%Y-%m-%dT%H:%M:%SZ} (in ")
    assert out.getvalue().rstrip().endswith(("(in 3h).", "(in 2h59m)."))
    with contextlib.redirect_stdout(io.StringIO()):
        magic(shell, "extend short")
    default = client.get("short").spec.lifecycle.expiration_time
    assert default is not None and default - expiry == timedelta(hours=1)


def test_update_changes_flavor_and_image(shell: Any, client: DevServerClient) -> None:
    client.create("grow", flavor="cpu-small")
    server = magic(shell, "update grow --flavor cpu-medium --image python:3.12")
    assert (server.spec.flavor, server.spec.image) == ("cpu-medium", "python:3.12")
    assert client.get("grow").spec.flavor == "cpu-medium"


def test_stop_and_start_set_the_desired_state(shell: Any, client: DevServerClient) -> None:
    client.create("pausable", flavor="cpu-small")
    assert magic(shell, "stop pausable").metadata.annotations[DESIRED_STATE_ANNOTATION] == "Stopped"
    assert magic(shell, "start pausable").metadata.annotations[DESIRED_STATE_ANNOTATION] == "Running"


def test_stop_wait_and_start_wait_follow_the_operator(shell: Any, client: DevServerClient) -> None:
    client.create("cycle", flavor="cpu-small", wait=True, timeout=READY_TIMEOUT)
    assert magic(shell, f"stop cycle --wait --timeout {READY_TIMEOUT}").status.phase == "Stopped"
    assert client.describe("cycle").pods == [] or all(
        pod.phase != "Running" for pod in client.describe("cycle").pods
    )
    assert magic(shell, f"start cycle --wait --timeout {READY_TIMEOUT}").status.phase == "Running"


def test_wait_returns_when_the_phase_is_reached(
    shell: Any, client: DevServerClient, run_cell: Callable[[str], CellRun]
) -> None:
    client.create("waiter", flavor="cpu-small")
    run = run_cell(f"w = %devserver wait waiter --timeout {READY_TIMEOUT}")
    assert run.error is None, run.stderr.text
    assert shell.user_ns["w"].status.phase == "Running" and "waiter: Running" in run.stdout.text


def test_delete_prints_and_returns_nothing(
    shell: Any, client: DevServerClient, run_cell: Callable[[str], CellRun]
) -> None:
    client.create("doomed", flavor="cpu-small")
    client.create("doomed-too", flavor="cpu-small")
    run = run_cell("%devserver delete doomed doomed-too --wait --timeout 60")
    assert run.error is None and run.result.result is None
    assert run.stdout.text == "DevServer 'doomed' deleted.\nDevServer 'doomed-too' deleted.\n"
    assert [s.name for s in client.list()] == []


def test_list_filters_by_owner_and_namespace(
    shell: Any, client: DevServerClient, platform: Any, namespace: str
) -> None:
    client.create("mine", flavor="cpu-small")
    with DevServerClient(namespace=namespace, kubeconfig=platform.kubeconfig, owner="bob") as bob:
        bob.create("bobs", flavor="cpu-small")
    assert [s.name for s in magic(shell, "list")] == ["bobs", "mine"]
    assert [s.name for s in magic(shell, "list --mine")] == ["mine"]
    assert [s.name for s in magic(shell, "list --owner bob")] == ["bobs"]
    assert {(s.namespace, s.name) for s in magic(shell, "list -A")} >= {
        (namespace, "bobs"),
        (namespace, "mine"),
    }
    assert magic(shell, "list -n default --owner nobody-at-all") == []


def test_namespace_option_and_config_traitlets(shell: Any, client: DevServerClient, platform: Any) -> None:
    magics = shell.magics_manager.registry["DevServerMagics"]
    client.create("here", flavor="cpu-small")
    assert magics.client().namespace == client.namespace
    other = magic(shell, "list -n kube-system")
    assert isinstance(other, DevServerTable) and other == []
    shell.run_line_magic("config", "DevServerMagics.context = 'no-such-context'")
    try:
        assert "no-such-context" in usage_error(shell, "list")
    finally:
        shell.run_line_magic("config", "DevServerMagics.context = None")
    assert [s.name for s in magic(shell, "list")] == ["here"]


def test_logs_print_the_pods_log(
    shell: Any, client: DevServerClient, run_cell: Callable[[str], CellRun]
) -> None:
    client.create("logged", flavor="cpu-small", wait=True, timeout=READY_TIMEOUT)
    client.exec("logged", "echo from-exec")  # exec output is not the container log; the log may be empty
    run = run_cell("%devserver logs logged --tail 5")
    assert run.error is None, run.stderr.text
    assert run.result.result is None
    log = list(client.logs("logged", tail=5))
    # The keep-alive command writes no log: an empty cell output would read as a hang.
    assert log == [] and run.stdout.text == "No output yet from container 'devserver' of pod 'logged-0'.\n"


def test_ui_returns_the_widget_for_the_configured_client(shell: Any, client: DevServerClient) -> None:
    from devservers_magics.widgets import DevServerUI

    client.create("listed", flavor="cpu-small")
    ui = magic(shell, "ui")
    try:
        assert isinstance(ui, DevServerUI)
        assert ui.servers.names == ["listed"]
        assert [value for _, value in ui.form._flavor.options] == SAMPLE_FLAVORS
    finally:
        ui.close()


def test_ui_all_lists_everyones_devservers_with_their_owner(
    shell: Any, client: DevServerClient, platform: Any, namespace: str
) -> None:
    client.create("mine", flavor="cpu-small")
    with DevServerClient(namespace=namespace, kubeconfig=platform.kubeconfig, owner="someone-else") as other:
        other.create("theirs", flavor="cpu-small")
    ui, everyone = magic(shell, "ui"), magic(shell, "ui --all")
    try:
        assert ui.servers.names == ["mine"] and "owner" not in ui.servers.row("mine").cells
        assert everyone.servers.names == ["mine", "theirs"]
        assert everyone.servers.row("theirs").cells["owner"] == "someone-else"
    finally:
        ui.close()
        everyone.close()


def test_bare_magic_prints_a_summary(shell: Any, run_cell: Callable[[str], CellRun]) -> None:
    run = run_cell("%devserver")
    for verb in (
        "flavors",
        "list",
        "create",
        "describe",
        "delete",
        "extend",
        "update",
        "stop",
        "start",
        "logs",
        "ui",
        "run",
        "shell",
    ):
        assert f"\n  {verb} " in run.stdout.text
    help_run = run_cell("%devserver create --help")
    assert (
        "--flavor FLAVOR" in help_run.stdout.text
        and "Example: server = %devserver create" in help_run.stdout.text
    )


def test_wait_progress_is_printed_while_waiting(
    shell: Any, client: DevServerClient, run_cell: Callable[[str], CellRun]
) -> None:
    client.create("slowpoke", flavor="cpu-small")
    run = run_cell("%devserver wait slowpoke --for Stopped --timeout 1")
    assert isinstance(run.error, UsageError) and "did not reach phase Stopped within 1s" in str(run.error)
    assert run.stdout.text.startswith("slowpoke: ")
    wait_until(
        lambda: client.get("slowpoke").status.phase == "Running",
        timeout=READY_TIMEOUT,
        message="the operator to run slowpoke",
    )


def test_logs_follow_ends_quietly_on_interrupt(
    shell: Any, client: DevServerClient, run_cell: Callable[[str], CellRun]
) -> None:
    client.create("followed", flavor="cpu-small", wait=True, timeout=READY_TIMEOUT)
    interrupt = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    interrupt.start()
    started = time.monotonic()
    try:
        run = run_cell("%devserver logs followed -f")
    finally:
        interrupt.cancel()
    assert 1.0 < time.monotonic() - started < 90  # until the interrupt, and not forever
    assert run.error is None and run.result.result is None  # following stops; no KeyboardInterrupt report
