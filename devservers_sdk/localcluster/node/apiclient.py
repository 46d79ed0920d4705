"""The node agent's only way to the cluster: HTTPS requests and watches against an API server.

A real kubelet never shares memory with the API server: it authenticates as ``system:node:<name>``, reads
through watch-fed caches and writes through ``pods/status``, ``nodes/status``, Leases and Events. The node
agent does the same against either control plane (our emulator or a real kube-apiserver), so what it can
do is exactly what the Node authorizer and NodeRestriction admit.

* :class:`ApiClient` sends one request and maps a ``metav1.Status`` answer to :class:`StatusError`.
* :class:`Informer` keeps a cache of one collection (or one named object, which is how a node may watch
  the ConfigMaps and Secrets its pods use: a cluster-wide watch of those is forbidden to it) from a LIST
  and a resumable WATCH, relisting after ``410 Gone``, and calls its handlers for each change.

Credentials come from a kubeconfig-like :class:`Credentials` (client certificate or bearer token).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from ..apiserver.errors import StatusError

log = logging.getLogger(__name__)

# A watch ends on its own after this long (the server's timeout), and is then resumed from its last
# resourceVersion: long enough to cost nothing, short enough that a half-open connection is noticed.
WATCH_TIMEOUT_SECONDS = 290
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)

EventHandler = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and who we are: a client certificate, or a bearer token."""

    server: str
    ca_pem: bytes
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    token: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        if self.client_cert_pem and self.client_key_pem:
            # ssl loads a certificate chain from files only; the directory lives as long as this call.
            with tempfile.TemporaryDirectory(prefix="node-credentials-") as scratch:
                cert, key = Path(scratch) / "client.crt", Path(scratch) / "client.key"
                key.touch(mode=0o600)
                key.write_bytes(self.client_key_pem)
                cert.write_bytes(self.client_cert_pem)
                context.load_cert_chain(cert, key)
        return context

    @classmethod
    def from_kubeconfig(cls, document: dict[str, Any]) -> Credentials:
        """The current context of a kubeconfig whose credentials are embedded (``*-data`` or token)."""
        import base64

        current = document.get("current-context")
        context = next(c["context"] for c in document["contexts"] if c["name"] == current)
        cluster = next(c["cluster"] for c in document["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in document["users"] if u["name"] == context["user"])

        def data(key: str) -> bytes | None:
            value = user.get(f"{key}-data")
            return base64.b64decode(value) if value else None

        return cls(
            server=cluster["server"],
            ca_pem=base64.b64decode(cluster["certificate-authority-data"]),
            client_cert_pem=data("client-certificate"),
            client_key_pem=data("client-key"),
            token=user.get("token"),
        )


def object_path(
    plural: str, namespace: str | None = None, name: str | None = None, *, group: str = "", version: str = "v1"
) -> str:
    """The REST path of a collection or object, e.g. ``/api/v1/namespaces/ns/pods/name``."""
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if namespace:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{plural}"
    if name:
        base += f"/{quote(name, safe='')}"
    return base


class ApiClient:
    """One aiohttp session to the API server; every method raises :class:`StatusError` on an error status."""

    def __init__(self, credentials: Credentials, *, user_agent: str = "devservers-node") -> None:
        self.credentials = credentials
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    @property
    def server(self) -> str:
        return self.credentials.server

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
            if self.credentials.token:
                headers["Authorization"] = f"Bearer {self.credentials.token}"
            connector = aiohttp.TCPConnector(ssl=self.credentials.ssl_context(), limit=64)
            self._session = aiohttp.ClientSession(
                self.credentials.server, connector=connector, headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        try:
            async with self.session.request(
                method, path, params=params, data=data, headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StatusError(503, "ServiceUnavailable", f"{method} {path}: {exc or type(exc).__name__}") from exc
        if status >= 400:
            raise _status_error(status, payload)
        return json.loads(payload) if payload else {}

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        return await self.request("GET", path, params=params or None)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PUT", path, body=body)

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    async def strategic_merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, body=body, content_type="application/strategic-merge-patch+json")

    async def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.request("DELETE", path, body=body)

    def informer(self, path: str, *, field_selector: str | None = None) -> Informer:
        return Informer(self, path, field_selector=field_selector)


def _status_error(code: int, payload: bytes) -> StatusError:
    try:
        status = json.loads(payload)
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    message = status.get("message") or payload.decode(errors="replace")[:200] or f"HTTP {code}"
    return StatusError(code, status.get("reason") or "Unknown", message, details=status.get("details"))


def _uid(obj: dict[str, Any]) -> str | None:
    uid = obj.get("metadata", {}).get("uid")
    return str(uid) if uid is not None else None


class Informer:
    """A watch-fed cache of one collection; ``synced`` is set after the first LIST."""

    def __init__(self, client: ApiClient, path: str, *, field_selector: str | None = None) -> None:
        self.client = client
        self.path = path
        self.field_selector = field_selector
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self.forbidden = False
        self._handlers: list[EventHandler] = []
        self._task: asyncio.Task[None] | None = None

    def add_handler(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer {self.path}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.items.get((namespace or "", name))

    def values(self) -> Iterable[dict[str, Any]]:
        return list(self.items.values())

    def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        for handler in self._handlers:
            try:
                handler(kind, obj)
            except Exception:
                log.exception("informer %s: handler failed", self.path)

    @staticmethod
    def _key(obj: dict[str, Any]) -> tuple[str, str]:
        meta = obj.get("metadata", {})
        return meta.get("namespace") or "", meta.get("name", "")

    async def _relist(self) -> str:
        params = {"fieldSelector": self.field_selector} if self.field_selector else {}
        listing = await self.client.get(self.path, **params)
        fresh = {self._key(item): item for item in listing.get("items") or []}
        for key, old in list(self.items.items()):
            if key not in fresh:
                del self.items[key]
                self._emit("DELETED", old)
        for key, item in fresh.items():
            previous = self.items.get(key)
            self.items[key] = item
            if previous is not None and _uid(previous) != _uid(item):
                # Deleted and made again under the same name while the watch was down (a StatefulSet's pods): two
                # objects, as a watch would have said. A MODIFIED left the old pod's worker, and its containers,
                # running with nothing to stop them.
                self._emit("DELETED", previous)
                previous = None
            if previous is None:
                self._emit("ADDED", item)
            elif previous.get("metadata", {}).get("resourceVersion") != item["metadata"].get("resourceVersion"):
                self._emit("MODIFIED", item)
        self.synced.set()
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    async def _run(self) -> None:
        failures = 0
        resource_version = ""
        while True:
            try:
                if not resource_version:
                    resource_version = await self._relist()
                resource_version = await self._watch(resource_version)
                failures = 0
            except asyncio.CancelledError:
                raise
            except StatusError as exc:
                if exc.code == 410:
                    resource_version = ""
                    continue
                if exc.code == 403 and not self.synced.is_set():
                    # Not ours to read (the Node authorizer decides): an empty cache, said once.
                    self.forbidden = True
                    self.synced.set()
                    log.info("informer %s: forbidden (%s)", self.path, exc.message)
                    return
                log.debug("informer %s: %s", self.path, exc.message)
                await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)])
                failures += 1
            except Exception as exc:
                log.debug("informer %s: %r", self.path, exc)
                await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)])
                failures += 1

    async def _watch(self, resource_version: str) -> str:
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS),
        }
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        timeout = aiohttp.ClientTimeout(total=None, sock_read=WATCH_TIMEOUT_SECONDS + 30)
        async with self.client.session.get(self.path, params=params, timeout=timeout) as response:
            if response.status >= 400:
                raise _status_error(response.status, await response.read())
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        resource_version = self._apply(json.loads(line), resource_version)
        return resource_version

    def _apply(self, event: dict[str, Any], resource_version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            raise _status_error(int(obj.get("code") or 500), json.dumps(obj).encode())
        new_version = str(obj.get("metadata", {}).get("resourceVersion") or resource_version)
        if kind == "BOOKMARK":
            return new_version
        key = self._key(obj)
        if kind == "DELETED":
            self.items.pop(key, None)
        else:
            self.items[key] = obj
        self._emit(str(kind), obj)
        return new_version
