"""Shared helpers for the conformance and bad-input suites: clients, raw HTTPS, CRDs, Status checks.

Everything here talks to the cluster only through its kubeconfig, so the suites run unchanged against a
real cluster (``DEVSERVERS_TEST_KUBECONFIG``); only tests marked ``emulator_only`` reach into the emulator.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import secrets
import ssl
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, dynamic
from kubernetes.client.exceptions import ApiException

from devservers_sdk.localcluster.pytest_plugin import wait_for

CONTAINER = {"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}
NOWHERE_NODE = "conformance-no-such-node"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), "")


class RawHTTPS:
    """Plain HTTPS to the API server with the kubeconfig's CA and credentials; sends exactly the bytes given.

    The kubeconfig's user may hold a bearer token (the emulator) or a client certificate (the real control
    plane, whose admin is ``kubernetes-admin`` by certificate). A request that names its own ``token`` goes
    without the certificate, so ``token=""`` is truly anonymous and a wrong token is not rescued by it.
    """

    def __init__(self, kubeconfig: str) -> None:
        with open(kubeconfig) as handle:
            document = yaml.safe_load(handle)
        current = document["current-context"]
        context = next(c["context"] for c in document["contexts"] if c["name"] == current)
        cluster = next(c["cluster"] for c in document["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in document["users"] if u["name"] == context["user"])
        self.token: str = user.get("token", "")
        url = urllib.parse.urlparse(cluster["server"])
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 443
        self.anonymous_ssl = self._context(cluster)
        self.ssl = self._context(cluster)
        certificate, key = _pem(user, "client-certificate"), _pem(user, "client-key")
        if certificate and key:
            # ssl loads a certificate chain only from files: a private directory, removed once loaded.
            with tempfile.TemporaryDirectory() as folder:
                cert_path, key_path = Path(folder, "client.crt"), Path(folder, "client.key")
                cert_path.write_bytes(certificate)
                key_path.touch(mode=0o600)
                key_path.write_bytes(key)
                self.ssl.load_cert_chain(cert_path, key_path)

    @staticmethod
    def _context(cluster: dict[str, Any]) -> ssl.SSLContext:
        context = ssl.create_default_context()
        authority = _pem(cluster, "certificate-authority")
        if authority:
            context.load_verify_locations(cadata=authority.decode())
        return context

    def _connection(self, token: str | None, timeout: float) -> http.client.HTTPSConnection:
        context = self.ssl if token is None else self.anonymous_ssl
        return http.client.HTTPSConnection(self.host, self.port, context=context, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        timeout: float = 30,
    ) -> RawResponse:
        """``body`` may be bytes (sent as is) or any JSON value; ``token=""`` sends no Authorization."""
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        all_headers = {"Accept": "application/json"}
        if body is not None:
            all_headers["Content-Type"] = content_type or "application/json"
        elif content_type:
            all_headers["Content-Type"] = content_type
        bearer = self.token if token is None else token
        if bearer:
            all_headers["Authorization"] = f"Bearer {bearer}"
        all_headers.update(headers or {})
        connection = self._connection(token, timeout)
        try:
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            data = response.read()
            return RawResponse(response.status, dict(response.getheaders()), data)
        finally:
            connection.close()

    def watch_lines(self, path: str, *, timeout: float = 10) -> Iterator[dict[str, Any]]:
        """Stream a watch: yields each event as a dict until the server ends the response."""
        connection = self._connection(None, timeout)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            if response.status != 200:
                raise AssertionError(f"watch answered {response.status}: {response.read()[:500]!r}")
            while True:
                line = response.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            connection.close()


def _pem(section: dict[str, Any], key: str) -> bytes:
    """A kubeconfig's ``<key>-data`` (base64) or ``<key>`` (a file path), as PEM bytes; empty when absent."""
    if section.get(f"{key}-data"):
        return base64.b64decode(section[f"{key}-data"])
    if section.get(key):
        return Path(section[key]).read_bytes()
    return b""


@dataclass
class Clients:
    kubeconfig: str
    api_client: Any = None
    core: Any = None
    apps: Any = None
    custom: Any = None
    ext: Any = None
    raw: RawHTTPS = field(init=False)
    _dynamic: Any = None

    def __post_init__(self) -> None:
        self.api_client = config.new_client_from_config(self.kubeconfig)
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.ext = client.ApiextensionsV1Api(self.api_client)
        self.raw = RawHTTPS(self.kubeconfig)

    @property
    def dynamic(self) -> Any:
        if self._dynamic is None:
            self._dynamic = dynamic.DynamicClient(self.api_client)
        return self._dynamic

    def close(self) -> None:
        self.api_client.close()


@contextlib.contextmanager
def clients_for(kubeconfig: str) -> Iterator[Clients]:
    clients = Clients(kubeconfig)
    try:
        yield clients
    finally:
        clients.close()


# -- errors ----------------------------------------------------------------------------------------


def status_of(exc: ApiException) -> dict[str, Any]:
    """The metav1.Status an ApiException carries, checked for shape."""
    body = json.loads(exc.body)
    assert_status(body, exc.status)
    return body


def assert_status(body: Any, code: int, reason: str | None = None) -> dict[str, Any]:
    assert isinstance(body, dict), body
    assert body.get("kind") == "Status", body
    assert body.get("apiVersion") == "v1", body
    assert body.get("status") == "Failure", body
    assert body.get("code") == code, body
    assert isinstance(body.get("message"), str) and body["message"], body
    if reason is not None:
        assert body.get("reason") == reason, body
    return body


@contextlib.contextmanager
def raises_status(code: int, reason: str | None = None) -> Iterator[dict[str, Any]]:
    """``with raises_status(404, "NotFound") as status:`` - the call must fail with that Status."""
    status: dict[str, Any] = {}
    try:
        yield status
    except ApiException as exc:
        assert exc.status == code, f"expected {code}, got {exc.status}: {exc.body}"
        if exc.body is None:  # kubernetes.watch raises ERROR events as "<reason>: <message>" without a body
            found_reason, _, message = str(exc.reason).partition(": ")
            status.update({"code": exc.status, "reason": found_reason, "message": message})
        else:
            status.update(status_of(exc))
        if reason is not None:
            assert status.get("reason") == reason, status
        return
    pytest.fail(f"expected the call to fail with {code} {reason or ''}")


def cause_fields(status: dict[str, Any]) -> list[str]:
    return [c.get("field", "") for c in (status.get("details") or {}).get("causes") or []]


def gone(fn: Any, *args: Any, **kwargs: Any) -> bool:
    try:
        fn(*args, **kwargs)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def published_root_ca(clients: Clients, namespace: str) -> list[str]:
    """``["kube-root-ca.crt"]`` once the cluster has published that ConfigMap into ``namespace``, or ``[]``
    on a cluster that publishes none (an outside cluster may not). The controller-manager (ours or the real
    one) puts it into every namespace shortly after the namespace is made; ``default`` tells whether it does."""
    name = "kube-root-ca.crt"
    if name not in {c.metadata.name for c in clients.core.list_namespaced_config_map("default").items}:
        return []
    wait_for(
        lambda: name in {c.metadata.name for c in clients.core.list_namespaced_config_map(namespace).items},
        timeout=60,
        message=f"{name} to be published into {namespace}",
    )
    return [name]


# -- CRDs --------------------------------------------------------------------------------------------


def unique_group() -> str:
    return f"t{secrets.token_hex(4)}.conformance.devservers.io"


def crd_body(
    group: str,
    kind: str,
    schema: dict[str, Any],
    *,
    plural: str | None = None,
    versions: list[str] | None = None,
    subresources: dict[str, Any] | None = None,
    scope: str = "Namespaced",
) -> dict[str, Any]:
    plural = plural or f"{kind.lower()}s"
    names = versions or ["v1"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": i == 0,
                    "schema": {"openAPIV3Schema": schema},
                    **({"subresources": subresources} if subresources else {}),
                }
                for i, v in enumerate(names)
            ],
        },
    }


def create_crd(clients: Clients, body: dict[str, Any]) -> dict[str, Any]:
    """Create a CRD and wait until it is Established and its resource answers."""
    clients.ext.create_custom_resource_definition(body)
    spec = body["spec"]
    name = body["metadata"]["name"]

    def established() -> bool:
        crd = clients.ext.read_custom_resource_definition(name)
        conditions = (crd.status.conditions if crd.status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_for(established, timeout=60, message=f"CRD {name} to be Established")
    for version in spec["versions"]:
        path = f"/apis/{spec['group']}/{version['name']}/{spec['names']['plural']}"
        wait_for(
            lambda p=path: clients.raw.request("GET", p).status == 200,
            timeout=60,
            message=f"{path} to be served",
        )
    return body


def delete_crd(clients: Clients, name: str) -> None:
    with contextlib.suppress(ApiException):
        clients.ext.delete_custom_resource_definition(name)


def settle(seconds: float = 0.2) -> None:
    """A short pause, for asserting that something does *not* happen."""
    time.sleep(seconds)
