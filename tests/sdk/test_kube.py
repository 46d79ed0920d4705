"""The transport: every failure becomes a DevServerError, provoked for real wherever the emulator can.

Statuses the emulator answers (401, 404, 409, 422, 400) are provoked over the wire; network failures are
real too (a closed port, a server that never answers, a wrong CA, a name that does not resolve). 403 and
5xx cannot be provoked on the emulator (no RBAC, no faults) and are covered by ``test_errors``' table.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from devservers_sdk import kube as kube_module
from devservers_sdk.client import DevServerClient
from devservers_sdk.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ClusterUnreachableError,
    ConfigurationError,
    ConflictError,
    DevServerNotFoundError,
    DevServerNotReadyError,
    FlavorNotFoundError,
    InvalidSpecError,
    NotFoundError,
    WatchExpired,
)
from devservers_sdk.kube import DEVSERVERS, FLAVORS, PODS, ExecSession, Kube, Resource, _relisted
from devservers_sdk.localcluster.pytest_plugin import wait_for
from devservers_sdk.settings import load_kubeconfig


def kubeconfig_with(path: Path, source: str, *, server: str | None = None, token: str | None = None,
                    ca_pem: bytes | None = None, user: dict[str, Any] | None = None) -> str:
    document = yaml.safe_load(Path(source).read_text())
    cluster = document["clusters"][0]["cluster"]
    if server is not None:
        cluster["server"] = server
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    if token is not None:
        document["users"][0]["user"] = {"token": token}
    if user is not None:
        document["users"][0]["user"] = user
    path.write_text(yaml.safe_dump(document))
    return str(path)


def transport(path: str, **kwargs: Any) -> Kube:
    return Kube(load_kubeconfig(path), **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- statuses over the wire -------------------------------------------------------------------------------

def test_bad_token_is_authentication_error(kubeconfig: str, tmp_path: Path) -> None:
    kube = transport(kubeconfig_with(tmp_path / "kc", kubeconfig, token="expired-or-forged"))
    with pytest.raises(AuthenticationError) as caught:
        kube.list(DEVSERVERS, namespace="default")
    assert caught.value.status == 401
    assert "context 'devservers-local'" in str(caught.value) and "expired" in str(caught.value)


def test_failing_credential_plugin_is_authentication_error(kubeconfig: str, tmp_path: Path) -> None:
    """An exec credential plugin that fails (e.g. an expired SSO login) leaves the request without a token."""
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "false",
                     "interactiveMode": "Never"}}
    kube = transport(kubeconfig_with(tmp_path / "kc", kubeconfig, user=user))
    with pytest.raises(AuthenticationError, match="Log in again"):
        kube.list(DEVSERVERS, namespace="default")


def test_statuses_over_the_wire(crds: str, kube: Kube, namespace: str) -> None:
    """Walk the table on the live server: 404 (object, flavor, API), 409 (both kinds), 422, 400."""
    with pytest.raises(DevServerNotFoundError, match=f"DevServer 'ghost' not found in namespace '{namespace}'"):
        kube.get(DEVSERVERS, "ghost", namespace=namespace)
    with pytest.raises(FlavorNotFoundError, match="Flavor 'ghost' does not exist"):
        kube.get(FLAVORS, "ghost")
    with pytest.raises(NotFoundError, match="CRDs are not installed"):
        kube.list(Resource("devservers.io", "v1", "gadgets", "Gadget"), namespace=namespace)

    manifest = {"apiVersion": "devservers.io/v1", "kind": "DevServer", "metadata": {"name": "dup"},
                "spec": {"owner": "alice", "flavor": "cpu-small"}}
    created = kube.create(DEVSERVERS, manifest, namespace=namespace)
    with pytest.raises(AlreadyExistsError, match="devctl delete dup") as exists:
        kube.create(DEVSERVERS, manifest, namespace=namespace)
    assert exists.value.status == 409

    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "spec": {"image": "a:1"}}
    kube.patch(DEVSERVERS, "dup", stale, namespace=namespace)
    with pytest.raises(ConflictError, match="changed by someone else"):
        kube.patch(DEVSERVERS, "dup", stale, namespace=namespace)

    bad = {**manifest, "metadata": {"name": "bad"}, "spec": {"owner": "alice", "flavor": "cpu-small", "mode": "huge"}}
    with pytest.raises(InvalidSpecError) as invalid:
        kube.create(DEVSERVERS, bad, namespace=namespace)
    assert invalid.value.status == 422 and invalid.value.field == "spec.mode"

    with pytest.raises(InvalidSpecError, match="bad request") as bad_request:
        kube.list(DEVSERVERS, namespace=namespace, label_selector="a in (")
    assert bad_request.value.status == 400


# -- the network ----------------------------------------------------------------------------------------

def test_connection_refused(kubeconfig: str, tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{free_port()}"
    path = kubeconfig_with(tmp_path / "kc", kubeconfig, server=server)
    with pytest.raises(ClusterUnreachableError) as caught:
        DevServerClient(kubeconfig=path).list()
    message = str(caught.value)
    assert f"context 'devservers-local' at {server}" in message
    assert "connection refused" in message and "devctl local up" in message
    assert caught.value.__cause__ is not None  # chained with raise ... from
    assert (caught.value.context, caught.value.server) == ("devservers-local", server)


def test_exec_connection_refused(kubeconfig: str, tmp_path: Path) -> None:
    kube = transport(kubeconfig_with(tmp_path / "kc", kubeconfig, server=f"https://127.0.0.1:{free_port()}"))
    with pytest.raises(ClusterUnreachableError, match="connection refused"):
        kube.exec("default", "pod", ["true"])


def test_wrong_certificate_authority(kubeconfig: str, tmp_path: Path) -> None:
    from devservers_sdk.localcluster import tls

    path = kubeconfig_with(tmp_path / "kc", kubeconfig, ca_pem=tls.generate().ca_pem)
    with pytest.raises(ClusterUnreachableError, match="TLS certificate verification failed") as caught:
        transport(path).list(DEVSERVERS, namespace="default")
    assert "fresh kubeconfig" in str(caught.value)
    with pytest.raises(ClusterUnreachableError, match="TLS certificate verification failed"):
        transport(path).exec("default", "pod", ["true"])


def test_server_that_never_answers_times_out(kubeconfig: str, tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections in the kernel, never speaks TLS
        path = kubeconfig_with(tmp_path / "kc", kubeconfig, server=f"https://127.0.0.1:{silent.getsockname()[1]}")
        with pytest.raises(ClusterUnreachableError, match=r"timed out after 0\.5s"):
            transport(path, timeout=0.5).list(DEVSERVERS, namespace="default")


def test_unresolvable_host(kubeconfig: str, tmp_path: Path) -> None:
    path = kubeconfig_with(tmp_path / "kc", kubeconfig, server="https://cluster.does-not-exist.invalid:6443")
    with pytest.raises(ClusterUnreachableError, match=r"does not resolve \(DNS\)"):
        transport(path).list(DEVSERVERS, namespace="default")


def test_kubeconfig_the_client_cannot_load(kubeconfig: str, tmp_path: Path) -> None:
    document = yaml.safe_load(Path(kubeconfig).read_text())
    document["contexts"][0]["context"]["cluster"] = "missing"
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigurationError, match="Cannot use context 'devservers-local'"):
        transport(str(path)).list(DEVSERVERS, namespace="default")


# -- identity, watch, exec handshake ----------------------------------------------------------------------

def test_whoami(cluster: Any, kubeconfig: str, admin_user: str, tmp_path: Path) -> None:
    assert transport(kubeconfig).whoami() == admin_user
    if cluster.local is None:
        pytest.skip("minting an identity needs our local cluster (emulator or real control plane)")
    path = cluster.local.user_kubeconfig("carol@example.com", ["ml"], path=tmp_path / "carol")
    assert transport(path).whoami() == "carol@example.com"
    # The owner is the name the API server reports, exactly (issue 14): never cut to the part before the @.
    assert DevServerClient(kubeconfig=path).owner == "carol@example.com"


def test_watch_yields_events(kube: Kube, namespace: str) -> None:
    listing = kube.list(DEVSERVERS, namespace=namespace)
    version = listing["metadata"]["resourceVersion"]
    manifest = {"apiVersion": "devservers.io/v1", "kind": "DevServer", "metadata": {"name": "w"},
                "spec": {"owner": "alice", "flavor": "cpu-small"}}
    kube.create(DEVSERVERS, manifest, namespace=namespace)
    events = kube.watch(DEVSERVERS, namespace=namespace, resource_version=version, timeout_seconds=5)
    kind, obj = next(event for event in events if event[0] != "BOOKMARK")
    events.close()
    assert (kind, obj["metadata"]["name"]) == ("ADDED", "w")


def test_watch_error_events_are_mapped(kube: Kube) -> None:
    expired = json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                                      "message": "too old resource version: 1 (5)"}}).encode()
    with pytest.raises(WatchExpired):
        kube._watch_event(expired, DEVSERVERS, "ns")
    failure = json.dumps({"type": "ERROR", "object": {"code": 500, "reason": "InternalError",
                                                      "message": "boom"}}).encode()
    with pytest.raises(Exception, match="boom"):
        kube._watch_event(failure, DEVSERVERS, "ns")


def test_a_relist_reports_an_object_made_again_under_its_name_as_deleted_and_added() -> None:
    def server(uid: str, version: str) -> dict[str, Any]:
        return {"metadata": {"namespace": "ns", "name": "a", "uid": uid, "resourceVersion": version}}

    known = {("ns", "a"): server("old", "1")}
    events = _relisted(known, [server("new", "5")])
    assert [(kind, obj["metadata"]["uid"]) for kind, obj in events] == [("DELETED", "old"), ("ADDED", "new")]
    assert known == {("ns", "a"): server("new", "5")}
    assert _relisted(known, [server("new", "6")]) == [("MODIFIED", server("new", "6"))]


def test_exec_into_missing_pod_is_not_found(kube: Kube, namespace: str) -> None:
    with pytest.raises(NotFoundError, match="Pod 'ghost'"):
        kube.exec(namespace, "ghost", ["true"])
    with pytest.raises(NotFoundError):
        kube.get(PODS, "ghost", namespace=namespace)


def test_exec_into_a_container_that_is_not_running_says_to_wait(kube: Kube, namespace: str) -> None:
    """A rollout or a restart takes the container away under an exec; the node answers "container not found".
    A loaded trial's workload stopped there, told the pod "was rejected as a bad request. Fix the spec"."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "done"},
           "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}
    kube.create(PODS, pod, namespace=namespace)
    wait_for(lambda: (kube.get(PODS, "done", namespace=namespace).get("status") or {}).get("phase") == "Succeeded",
             message="pod done to finish")
    with pytest.raises(DevServerNotReadyError, match=r"Pod 'done' .* has no running container right now"):
        kube.exec(namespace, "done", ["true"])


# -- the WebSocket framing, against a scripted peer -------------------------------------------------------

def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    length = len(payload)
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return struct.pack("!BB", first, length) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", first, 126, length) + payload
    return struct.pack("!BBQ", first, 127, length) + payload


def read_client_frame(sock: socket.socket) -> tuple[int, bytes]:
    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = sock.recv(count - len(data))
            assert chunk, "peer closed"
            data += chunk
        return data

    first, second = exactly(2)
    assert second & 0x80, "client frames must be masked"
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", exactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", exactly(8))[0]
    key = exactly(4)
    payload = exactly(length)
    return first & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def test_exec_session_framing_against_a_scripted_peer() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    session = ExecSession(ours, protocol=kube_module.V5_PROTOCOL, unreachable=lambda exc: exc)
    big = bytes(range(256)) * 400  # > 64 KiB: an 8-byte length
    peer_got: list[tuple[int, bytes]] = []

    def peer() -> None:
        peer_got.append(read_client_frame(theirs))  # stdin
        peer_got.append(read_client_frame(theirs))  # close stdin
        theirs.sendall(server_frame(0x9, b"hb"))  # ping: must be answered
        peer_got.append(read_client_frame(theirs))
        theirs.sendall(server_frame(0x2, b"\x01hel", fin=False) + server_frame(0x0, b"lo"))  # fragmented stdout
        theirs.sendall(server_frame(0x2, b"\x02" + big))
        theirs.sendall(server_frame(0x2, bytes([255, 1])))  # v5: server closed stdout
        status = {"status": "Failure", "reason": "NonZeroExitCode",
                  "details": {"causes": [{"reason": "ExitCode", "message": "7"}]}}
        theirs.sendall(server_frame(0x2, b"\x03" + json.dumps(status).encode()))
        theirs.sendall(server_frame(0x8, struct.pack("!H", 1000)))
        peer_got.append(read_client_frame(theirs))  # the close reply

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    session.send(kube_module.STDIN, b"input")
    session.close_stdin()
    received: list[tuple[int, bytes]] = []
    while not session.closed:
        messages, _ = session.pump(5.0)
        received.extend(messages)
    thread.join(5)
    assert peer_got[0] == (0x2, b"\x00input")
    assert peer_got[1] == (0x2, bytes([255, 0]))
    assert peer_got[2] == (0xA, b"hb")
    assert peer_got[3][0] == 0x8
    assert received[0] == (1, b"hello")
    assert received[1] == (2, big)
    assert session.exit_code == 7 and session.failure is None


def test_exec_session_reports_failures_without_exit_code() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    session = ExecSession(ours, protocol=kube_module.V5_PROTOCOL, unreachable=lambda exc: exc)
    status = {"status": "Failure", "reason": "InternalError",
              "message": 'exec: "nope": executable file not found in $PATH'}
    theirs.sendall(server_frame(0x2, b"\x03" + json.dumps(status).encode()))
    theirs.close()
    while not session.closed:
        session.pump(5.0)
    assert session.exit_code is None
    assert session.failure is not None and "executable file not found" in session.failure
