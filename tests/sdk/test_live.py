"""Following the DevServers of a namespace: ``DevServerClient.watch`` and ``LiveDevServers``.

Changes are made by a second client, as a terminal's ``devctl`` would, and must reach the follower without
anyone asking; waits are bounded and say what was still missing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devservers_sdk import Cancellation, DevServer, LiveDevServers, WaitCancelledError
from devservers_sdk.client import DevServerClient
from devservers_sdk.localcluster.pytest_plugin import wait_for


@pytest.fixture
def other(client: DevServerClient, namespace_kubeconfig: str) -> Iterator[DevServerClient]:
    """Someone else at work on the same namespace (another terminal)."""
    with DevServerClient(kubeconfig=namespace_kubeconfig, owner="bob") as sdk:
        yield sdk


def test_watch_starts_with_what_exists_then_reports_every_change(
        client: DevServerClient, other: DevServerClient, set_status: Callable[[str, dict[str, Any]], Any]) -> None:
    client.create("first", flavor="cpu-small")
    cancel = Cancellation()
    seen: list[tuple[str, str, str | None]] = []
    done = threading.Event()

    def follow() -> None:
        try:
            for event, server in client.watch(cancel=cancel):
                seen.append((event, server.name, server.status.phase))
        except WaitCancelledError:
            done.set()

    threading.Thread(target=follow, daemon=True).start()
    wait_for(lambda: ("ADDED", "first", None) in seen, message="the existing DevServer as ADDED")
    other.create("second", flavor="cpu-small")
    set_status("first", {"phase": "Running"})
    other.delete("second")
    wait_for(lambda: {("ADDED", "second", None), ("MODIFIED", "first", "Running")} <= set(seen)
             and any(event == "DELETED" and name == "second" for event, name, _ in seen),
             message=f"the create, status change and delete (seen: {seen})")
    cancel.cancel()
    assert done.wait(30), "watch() went on after cancel()"


def test_watch_of_one_owner_leaves_out_the_others(client: DevServerClient, other: DevServerClient) -> None:
    client.create("mine", flavor="cpu-small")
    other.create("bobs", flavor="cpu-small")
    events = client.watch(owner=client.owner, timeout=1)
    names = {server.name for _, server in events}
    assert names == {"mine"}


def test_live_devservers_follow_changes_made_elsewhere_and_stop_when_closed(
        client: DevServerClient, other: DevServerClient, set_status: Callable[[str, dict[str, Any]], Any]) -> None:
    events: list[tuple[str, str]] = []
    live = LiveDevServers(client, on_event=lambda event, server: events.append((event, server.name)))
    with live:
        other.create("elsewhere", flavor="cpu-small")
        wait_for(lambda: live.get("elsewhere") is not None, message="the new DevServer followed")
        set_status("elsewhere", {"phase": "Stopped"})

        def stopped() -> DevServer | None:
            server = live.get("elsewhere")
            return server if server is not None and server.status.phase == "Stopped" else None

        wait_for(stopped, message="phase Stopped followed")
        other.delete("elsewhere")
        wait_for(lambda: live.get("elsewhere") is None and not live.servers, message="the delete followed")
        assert ("DELETED", "elsewhere") in events
        assert live.error is None
    assert not live.running, "the thread outlived close()"


def test_live_devservers_report_a_cluster_they_cannot_reach(tmp_path: Any, namespace_kubeconfig: str) -> None:
    import yaml

    document = yaml.safe_load(Path(namespace_kubeconfig).read_text())
    document["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    errors: list[Any] = []
    with DevServerClient(kubeconfig=str(path), request_timeout=3) as unreachable, \
            LiveDevServers(unreachable, on_error=errors.append) as live:
        wait_for(lambda: errors, message="the failure reported")
        assert "Cannot reach the cluster" in str(errors[0])
        assert live.running, "one failure must not end the follower"
    assert not live.running
