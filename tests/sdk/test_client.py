"""DevServerClient against the local cluster: validation, CRUD, lifecycle verbs, wait, describe and logs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from devservers_sdk.client import DevServerClient
from devservers_sdk.contract import ACTIVITY_ANNOTATION, DESIRED_STATE_ANNOTATION
from devservers_sdk.errors import (
    AlreadyExistsError,
    DevServerFailedError,
    DevServerNotFoundError,
    FlavorNotFoundError,
    InvalidSpecError,
    LifetimeLimitError,
    WaitTimeoutError,
)
from devservers_sdk.kube import DEVSERVERS, Kube
from devservers_sdk.localcluster.pytest_plugin import wait_for
from devservers_sdk.models import MAX_NAME_LENGTH, DevServer, DevServerSpec

SetStatus = Callable[[str, dict[str, Any]], Any]


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- settings through the client --------------------------------------------------------------------------

def test_namespace_and_owner_resolution(crds: str, namespace_kubeconfig: str, namespace: str, admin_user: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVSERVERS_NAMESPACE", raising=False)
    monkeypatch.delenv("DEVSERVERS_OWNER", raising=False)
    client = DevServerClient(kubeconfig=namespace_kubeconfig)
    assert client.namespace == namespace  # from the kubeconfig context
    assert client.owner == admin_user  # from SelfSubjectReview
    monkeypatch.setenv("DEVSERVERS_NAMESPACE", "from-env")
    monkeypatch.setenv("DEVSERVERS_OWNER", "env-owner")
    client = DevServerClient(kubeconfig=namespace_kubeconfig)
    assert (client.namespace, client.owner) == ("from-env", "env-owner")
    client = DevServerClient(kubeconfig=namespace_kubeconfig, namespace="explicit", owner="bob")
    assert (client.namespace, client.owner) == ("explicit", "bob")
    assert "explicit" in repr(client)


# -- validation before any round trip ---------------------------------------------------------------------

@pytest.fixture
def offline(kubeconfig: str, tmp_path: Path) -> DevServerClient:
    """A client whose cluster is unreachable: anything it raises was decided before a round trip."""
    document = yaml.safe_load(Path(kubeconfig).read_text())
    document["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
    path = tmp_path / "offline"
    path.write_text(yaml.safe_dump(document))
    return DevServerClient(kubeconfig=str(path), owner="alice")


@pytest.mark.parametrize(("kwargs", "field", "phrases"), [
    ({"name": "x" * (MAX_NAME_LENGTH + 1)}, "metadata.name", [f"the limit is {MAX_NAME_LENGTH}"]),
    ({"name": "My_Dev"}, "metadata.name", ["lowercase letters"]),
    ({"time_to_live": "8"}, "spec.lifecycle.timeToLive", ["add a unit", "30m, 4h, 1h30m, 2d"]),
    ({"time_to_live": "4 hours"}, "spec.lifecycle.timeToLive", ["30m, 4h, 1h30m, 2d"]),
    ({"idle_timeout": 10}, "spec.lifecycle.idleTimeout", ["at least 1m"]),
    ({"idle_timeout": "soon"}, "spec.lifecycle.idleTimeout", ["30m"]),
    ({"expiration_time": "2030-01-01T00:00:00"}, "spec.lifecycle.expirationTime", ["time zone"]),
    # The seed's example date: a deadline that passed before the server would exist is refused, not sent.
    ({"expiration_time": "2024-01-15T18:00:00Z"}, "spec.lifecycle.expirationTime",
     ["expirationTime 2024-01-15T18:00:00Z is in the past; use timeToLive or a future time"]),
    ({"world_size": 2}, "spec.mode", ["DevServer 'mydev' is standalone, but world size "
                                      "(spec.distributed.worldSize) only applies to a distributed DevServer",
                                      "--flavor cpu-small --distributed --world-size 2"]),
    ({"mode": "distributed", "nccl_settings": {"DEBUG": "INFO"}}, "spec.distributed.ncclSettings.DEBUG",
     ["NCCL_"]),
    ({"mode": "distributed", "world_size": 0}, "spec.distributed.worldSize", ["greater than or equal to 1"]),
    ({"home_size": "lots"}, "spec.persistentHomeSize", ["100Gi"]),
    ({"image": "has space"}, "spec.image", ["without spaces"]),
])
def test_create_validates_before_sending(offline: DevServerClient, kwargs: dict[str, Any], field: str,
                                         phrases: list[str]) -> None:
    arguments = {"name": "mydev", "flavor": "cpu-small", **kwargs}
    with pytest.raises(InvalidSpecError) as caught:
        offline.create(arguments.pop("name"), **arguments)
    assert caught.value.field == field
    for phrase in phrases:
        assert phrase in str(caught.value)


def test_a_typed_spec_goes_alone(offline: DevServerClient) -> None:
    spec = DevServerSpec.from_options(owner="alice", flavor="cpu-small")
    with pytest.raises(InvalidSpecError) as both:
        offline.create("mydev", spec, time_to_live="4h", mode="distributed")
    assert both.value.field == "spec" and "spec= and also mode, time_to_live" in str(both.value)
    with pytest.raises(InvalidSpecError) as neither:
        offline.create("mydev")
    assert neither.value.field == "spec.flavor" and "pass flavor=... (see flavors())" in str(neither.value)
    past = DevServerSpec.model_validate({"owner": "alice", "flavor": "cpu-small",
                                         "lifecycle": {"expirationTime": "2024-01-15T18:00:00Z"}})
    with pytest.raises(InvalidSpecError, match="expirationTime 2024-01-15T18:00:00Z is in the past"):
        offline.create("mydev", spec=past)


def test_create_from_a_typed_spec_sends_what_the_keywords_send(client: DevServerClient) -> None:
    options: dict[str, Any] = {"flavor": "cpu-small", "mode": "distributed", "world_size": 3, "backend": "gloo",
                               "time_to_live": "4h", "idle_timeout": "30m"}
    by_keywords = client.create("keywords", **options)
    by_spec = client.create("typed", spec=DevServerSpec.from_options(owner=client.owner, **options))
    assert by_spec.spec == by_keywords.spec
    assert by_spec.spec.distributed is not None and by_spec.spec.distributed.world_size == 3


def test_unknown_flavor_lists_the_existing_ones(client: DevServerClient) -> None:
    with pytest.raises(FlavorNotFoundError) as caught:
        client.create("mydev", flavor="cpu-huge")
    assert {"cpu-small", "gpu-small"} <= set(caught.value.available)
    assert "Flavor 'cpu-huge' does not exist. Available flavors: " in str(caught.value)
    assert "cpu-small" in str(caught.value)
    with pytest.raises(DevServerNotFoundError):
        client.get("mydev")  # nothing was created


# -- CRUD --------------------------------------------------------------------------------------------------

def test_flavors(client: DevServerClient) -> None:
    flavors = {flavor.name: flavor for flavor in client.flavors()}
    assert {"cpu-small", "cpu-medium", "cpu-large", "gpu-small", "gpu-large"} <= set(flavors)
    assert flavors["cpu-small"].cpu == "1" and flavors["gpu-small"].gpus >= 1
    assert list(flavors) == sorted(flavors)


def test_create_get_list_delete(client: DevServerClient, namespace: str, admin_user: str) -> None:
    created = client.create("mydev", flavor="cpu-small", image="python:3.12", time_to_live="4h",
                            idle_timeout="30m", home_size="10Gi", auto_shutdown=False)
    assert isinstance(created, DevServer)
    assert (created.name, created.namespace, created.spec.owner) == ("mydev", namespace, admin_user)
    assert created.spec.lifecycle.time_to_live == "4h" and created.spec.lifecycle.idle_timeout == 1800
    assert created.spec.lifecycle.auto_shutdown is False and created.spec.persistent_home_size == "10Gi"
    fetched = client.get("mydev")
    assert fetched.spec == created.spec and fetched.metadata.uid == created.metadata.uid
    with pytest.raises(AlreadyExistsError, match="already exists"):
        client.create("mydev", flavor="cpu-small")
    client.create("ddp", flavor="cpu-small", mode="distributed", world_size=3, backend="gloo",
                  nccl_settings={"NCCL_DEBUG": "INFO"}, time_to_live=timedelta(hours=1, minutes=30))
    ddp = client.get("ddp")
    assert ddp.spec.distributed is not None and ddp.spec.distributed.world_size == 3
    assert ddp.spec.lifecycle.time_to_live == "1h30m"
    assert [server.name for server in client.list()] == ["ddp", "mydev"]
    client.delete("mydev")
    with pytest.raises(DevServerNotFoundError, match="not found in namespace"):
        client.get("mydev")
    with pytest.raises(DevServerNotFoundError):
        client.delete("mydev")
    assert [server.name for server in client.list()] == ["ddp"]


def test_list_by_owner_and_across_namespaces(crds: str, cluster: Any, namespace: str,
                                             namespace_kubeconfig: str, kube: Kube) -> None:
    alice = DevServerClient(kubeconfig=namespace_kubeconfig, owner="alice")
    bob = DevServerClient(kubeconfig=namespace_kubeconfig, owner="bob")
    alice.create("a1", flavor="cpu-small")
    bob.create("b1", flavor="cpu-small")
    other_namespace = f"{namespace}-other"
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": other_namespace}}, kind="Namespace")
    try:
        DevServerClient(kubeconfig=namespace_kubeconfig, namespace=other_namespace, owner="alice").create(
            "a2", flavor="cpu-small")
        assert [s.name for s in alice.list(owner="alice")] == ["a1"]
        assert [s.name for s in alice.list(owner=alice.owner)] == ["a1"]
        everywhere = [(s.namespace, s.name) for s in alice.list(owner="alice", all_namespaces=True)]
        assert (namespace, "a1") in everywhere and (other_namespace, "a2") in everywhere
        assert all(s.spec.owner == "alice" for s in alice.list(owner="alice", all_namespaces=True))
    finally:
        kube.request("DELETE", f"/api/v1/namespaces/{other_namespace}", kind="Namespace")


def test_update(client: DevServerClient) -> None:
    client.create("mydev", flavor="cpu-small")
    updated = client.update("mydev", flavor="cpu-medium", image="python:3.13")
    assert (updated.spec.flavor, updated.spec.image) == ("cpu-medium", "python:3.13")
    assert client.get("mydev").spec.flavor == "cpu-medium"
    with pytest.raises(FlavorNotFoundError, match="cpu-small"):
        client.update("mydev", flavor="nope")
    with pytest.raises(InvalidSpecError, match="Nothing to update"):
        client.update("mydev")
    with pytest.raises(InvalidSpecError) as caught:
        client.update("mydev", image="bad image")
    assert caught.value.field == "spec.image"
    with pytest.raises(DevServerNotFoundError):
        client.update("ghost", image="python:3.13")


def test_extend_from_time_to_live(client: DevServerClient) -> None:
    created = client.create("mydev", flavor="cpu-small", time_to_live="4h")
    assert created.metadata.creation_timestamp is not None
    extended = client.extend("mydev", by="1h")
    assert extended.spec.lifecycle.time_to_live is None
    assert extended.spec.lifecycle.expiration_time == created.metadata.creation_timestamp + timedelta(hours=5)
    again = client.extend("mydev", by=timedelta(minutes=30))
    assert again.spec.lifecycle.expiration_time == created.metadata.creation_timestamp + timedelta(hours=5,
                                                                                                  minutes=30)
    with pytest.raises(InvalidSpecError, match="30m, 4h"):
        client.extend("mydev", by="forever")


def test_extend_is_refused_past_the_flavor_maximum_naming_it(client: DevServerClient) -> None:
    """One rule (issue 14): past the cap is refused, with the cap; what extend writes is what applies."""
    client.create("atmax", flavor="cpu-small")  # no lifetime asked: exactly the flavor's 7d
    lifetime = client.lifetime("atmax")
    assert lifetime.source == "flavor maximum" and lifetime.maximum == "7d"
    assert "the maximum lifetime of flavor 'cpu-small' (7d), as none was asked for" in \
        lifetime.describe(datetime.now(UTC))
    with pytest.raises(LifetimeLimitError, match=r"maximum lifetime of its flavor 'cpu-small' \(7d.*already at"):
        client.extend("atmax", by="2h")
    created = client.create("short", flavor="cpu-small", time_to_live="1h")
    assert created.metadata.creation_timestamp is not None
    with pytest.raises(LifetimeLimitError, match=r"flavor 'cpu-small' \(7d"):
        client.extend("short", by="10d")
    extended = client.extend("short", by="2h")
    deadline = created.metadata.creation_timestamp + timedelta(hours=3)
    assert extended.spec.lifecycle.expiration_time == deadline
    assert client.lifetime(extended).expires_at == deadline


def test_create_past_the_flavor_maximum_is_refused_naming_it(client: DevServerClient) -> None:
    with pytest.raises(LifetimeLimitError, match=r"a lifetime of 8d, more than the maximum lifetime of its "
                                                 r"flavor 'cpu-small' \(7d\); ask for at most 7d") as caught:
        client.create("long", flavor="cpu-small", time_to_live="8d")
    assert caught.value.field == "spec.lifecycle.timeToLive"
    with pytest.raises(LifetimeLimitError, match="flavor 'cpu-small' \\(7d\\)"):
        client.create("late", flavor="cpu-small", expiration_time=datetime.now(UTC) + timedelta(days=30))
    with pytest.raises(DevServerNotFoundError):
        client.get("long")
    assert client.create("exact", flavor="cpu-small", time_to_live="7d").spec.lifecycle.time_to_live == "7d"


def test_stop_and_start_set_the_desired_state(client: DevServerClient) -> None:
    client.create("mydev", flavor="cpu-small")
    assert client.stop("mydev").metadata.annotations[DESIRED_STATE_ANNOTATION] == "Stopped"
    assert client.get("mydev").metadata.annotations[DESIRED_STATE_ANNOTATION] == "Stopped"
    assert client.start("mydev").metadata.annotations[DESIRED_STATE_ANNOTATION] == "Running"
    with pytest.raises(DevServerNotFoundError):
        client.stop("ghost")


# -- wait (watch, not poll) --------------------------------------------------------------------------------

def operator_script(set_status: SetStatus, steps: dict[str | None, dict[str, Any]]) -> Callable[[DevServer], None]:
    """An on_progress callback that plays the operator: on seeing phase P, write status steps[P]."""
    seen: list[str | None] = []

    def on_progress(server: DevServer) -> None:
        phase = server.status.phase
        seen.append(phase)
        if phase in steps:
            set_status(server.name, steps.pop(phase))

    on_progress.seen = seen  # type: ignore[attr-defined]
    return on_progress


def test_wait_follows_the_watch_to_running(client: DevServerClient, set_status: SetStatus) -> None:
    client.create("mydev", flavor="cpu-small")
    progress = operator_script(set_status, {None: {"phase": "Pending"}, "Pending": {"phase": "Starting"},
                                                 "Starting": {"phase": "Running", "readyReplicas": 1}})
    server = client.wait("mydev", timeout=20, on_progress=progress)
    assert server.status.phase == "Running" and server.status.ready_replicas == 1
    assert progress.seen == [None, "Pending", "Starting", "Running"]  # type: ignore[attr-defined]


def test_create_and_wait(client: DevServerClient, set_status: SetStatus) -> None:
    progress = operator_script(set_status, {None: {"phase": "Running"}})
    server = client.create("mydev", flavor="cpu-small", wait=True, timeout=20, on_progress=progress)
    assert server.status.phase == "Running"


def test_wait_times_out_naming_phase_and_condition(client: DevServerClient, set_status: SetStatus) -> None:
    client.create("mydev", flavor="cpu-small")
    condition = {"type": "Ready", "status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes have enough nvidia.com/gpu", "lastTransitionTime": "2025-01-01T00:00:00Z"}
    set_status("mydev", {"phase": "Pending", "conditions": [condition]})
    with pytest.raises(WaitTimeoutError) as caught:
        client.wait("mydev", timeout=1)
    message = str(caught.value)
    assert "did not reach phase Running within 1s: it is still Pending" in message
    assert "Ready=False (Unschedulable): 0/1 nodes have enough nvidia.com/gpu" in message
    assert "devctl describe mydev" in message
    assert caught.value.phase == "Pending"


def test_wait_without_operator_says_so(client: DevServerClient) -> None:
    client.create("mydev", flavor="cpu-small")
    with pytest.raises(WaitTimeoutError, match=r"no phase yet .is the devservers operator running"):
        client.wait("mydev", timeout=1)


def test_wait_raises_when_failed(client: DevServerClient, set_status: SetStatus) -> None:
    client.create("mydev", flavor="cpu-small")
    progress = operator_script(set_status, {None: {"phase": "Failed", "message": "image pull failed"}})
    with pytest.raises(DevServerFailedError, match="DevServer 'mydev' failed: image pull failed") as caught:
        client.wait("mydev", timeout=20, on_progress=progress)
    assert caught.value.devserver.status.phase == "Failed"
    assert client.wait("mydev", for_phase="Failed", timeout=5).status.phase == "Failed"


def test_wait_when_deleted_meanwhile(client: DevServerClient) -> None:
    client.create("mydev", flavor="cpu-small")

    def delete_it(server: DevServer) -> None:
        client.delete(server.name)

    with pytest.raises(DevServerNotFoundError, match="deleted while waiting for phase Running"):
        client.wait("mydev", timeout=20, on_progress=delete_it)
    with pytest.raises(DevServerNotFoundError):
        client.wait("ghost", timeout=1)


def test_delete_and_wait_for_finalizers(client: DevServerClient, kube: Kube, namespace: str) -> None:
    client.create("mydev", flavor="cpu-small")
    kube.patch(DEVSERVERS, "mydev", {"metadata": {"finalizers": ["devservers.io/test"]}}, namespace=namespace)
    outcome: list[BaseException | None] = []

    def delete() -> None:
        try:
            client.delete("mydev", wait=True, timeout=20)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=delete)
    thread.start()
    wait_for(lambda: client.get("mydev").metadata.deletion_timestamp is not None, message="deletion started")
    assert thread.is_alive() and not outcome, "delete(wait=True) must wait for the finalizer"
    kube.patch(DEVSERVERS, "mydev", {"metadata": {"finalizers": None}}, namespace=namespace)
    thread.join(20)
    assert outcome == [None]
    with pytest.raises(DevServerNotFoundError):
        client.get("mydev")


def test_delete_wait_times_out(client: DevServerClient, kube: Kube, namespace: str) -> None:
    client.create("mydev", flavor="cpu-small")
    kube.patch(DEVSERVERS, "mydev", {"metadata": {"finalizers": ["devservers.io/test"]}}, namespace=namespace)
    try:
        with pytest.raises(WaitTimeoutError, match="did not go away within 1s"):
            client.delete("mydev", wait=True, timeout=1)
    finally:
        kube.patch(DEVSERVERS, "mydev", {"metadata": {"finalizers": None}}, namespace=namespace)


# -- describe, logs, activity ------------------------------------------------------------------------------

def test_describe(client: DevServerClient, running_devserver: Callable[..., str], kube: Kube,
                  namespace: str) -> None:
    name = running_devserver("ddp", replicas=2)
    description = client.describe(name)
    assert description.devserver.name == "ddp" and description.devserver.status.phase == "Running"
    assert [(pod.name, pod.rank, pod.phase) for pod in description.pods] == [("ddp-0", 0, "Running"),
                                                                             ("ddp-1", 1, "Running")]
    assert all(pod.ready and pod.restarts == 0 and pod.ip for pod in description.pods)
    reasons = {(event.object, event.reason) for event in description.events}
    assert ("Pod/ddp-0", "Started") in reasons and ("Pod/ddp-1", "Scheduled") in reasons
    times = [event.last_seen for event in description.events]
    assert times == sorted(times)  # type: ignore[type-var]
    assert len(client.describe(name, events=2).events) == 2


def test_logs(client: DevServerClient, running_devserver: Callable[..., str]) -> None:
    name = running_devserver("box", command=["sh", "-c", "echo one; echo twø; exec sleep 3600"])
    wait_for(lambda: list(client.logs(name)) == ["one", "twø"], message="both lines logged")
    assert list(client.logs(name, tail=1)) == ["twø"]
    followed = client.logs(name, follow=True)
    assert next(followed) == "one" and next(followed) == "twø"
    followed.close()
    with pytest.raises(DevServerNotFoundError):
        list(client.logs("ghost"))


def test_exec_records_activity(client: DevServerClient, running_devserver: Callable[..., str]) -> None:
    name = running_devserver()
    assert ACTIVITY_ANNOTATION not in client.get(name).metadata.annotations
    before = datetime.now(UTC).replace(microsecond=0)
    client.exec(name, ["true"])
    stamp = parse(client.get(name).metadata.annotations[ACTIVITY_ANNOTATION])
    assert before <= stamp <= datetime.now(UTC)
