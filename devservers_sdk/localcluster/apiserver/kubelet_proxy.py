"""``pods/exec``, ``attach``, ``portforward`` and ``log``: proxied to the node's kubelet API, as kube-apiserver does.

The API server runs none of these itself. It checks what the pod registry checks (the container name, that
the pod has a node), finds the node's kubelet (``GetConnectionInfo``: the Node's InternalIP, the address type
the real control plane here is started with, at ``status.daemonEndpoints.kubeletEndpoint.Port``), and sends
the request on with the path and query ``pkg/registry/core/pod/strategy.go`` builds:

* ``/exec/{ns}/{pod}/{container}?command=..&input=1&output=1&error=1&tty=1`` (the channels renamed, ``1``
  only when true, keys sorted as ``url.Values.Encode`` sorts them), ``/attach/...`` the same without
  ``command``, ``/portForward/{ns}/{pod}?port=8080,9090`` (the ``ports`` list joined);
* ``/containerLogs/{ns}/{pod}/{container}?follow=true&previous=true&timestamps=true&sinceSeconds=..&
  sinceTime=<RFC 3339, seconds>&tailLines=..&limitBytes=..`` (no query at all without options).

Exec, attach and port-forward are upgrades (``UpgradeAwareHandler.tryUpgrade``): the request, less the
client's credentials, is written to a fresh TLS connection to the kubelet (the API server's kubelet client
certificate presented, the kubelet's serving certificate verified against the cluster CA); a 101 is passed
to the client and from then on bytes are copied both ways until either side closes, so SPDY/3.1, WebSocket
v1 to v5 and SPDY tunnelled in a WebSocket all go through untouched. That is what a 1.37 API server does for
a node declaring ``ExtendWebSocketsToKubelet`` (the node agent's default); it would translate v5 WebSockets
into SPDY itself for a node that does not, which this emulator does not do (its node always declares it).
A kubelet's refusal (status >= 400) is echoed to the client as it came; any other non-101 answer is a 500
``invalid upgrade response: status code N``; a request that is not an upgrade is a 400 ``Upgrade request
required``; a kubelet that cannot be reached is a 500 with Go's words (``error dialing backend: dial tcp
127.0.0.1:10250: connect: connection refused``) and no reason, as ``ErrorToAPIStatus`` gives a plain error.

Logs are a plain GET (``LocationStreamer``): the body is streamed as ``text/plain`` as it comes; a kubelet
answer outside 200-206 becomes what ``GenericHttpResponseChecker`` makes of it (400 BadRequest and 500
InternalError carrying the kubelet's text, others ``NewGenericServerResponse`` naming ``pods/log``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from . import errors
from .errors import StatusError

log = logging.getLogger(__name__)

DEFAULT_KUBELET_PORT = 10250
# --kubelet-preferred-address-types of the real control plane here (runner.py).
PREFERRED_ADDRESS_TYPES = ("InternalIP",)
_HEAD_LIMIT = 64 * 1024
_CHUNK = 256 * 1024
# Client bytes buffered toward the kubelet before the client's connection stops being read.
_HIGH_WATER = 1024 * 1024
_DIAL_TIMEOUT = 30.0
_MAX_ERROR_BODY = 50000  # genericHttpResponseChecker's maxReadLength
# Headers that belong to the hop to the API server, not to the one to the kubelet.
_NOT_FORWARDED = {"authorization", "host", "content-length", "transfer-encoding", "x-forwarded-for"}


@dataclass(frozen=True)
class KubeletLocation:
    """Where a node's kubelet API listens (``client.ConnectionInfo``)."""

    node: str
    host: str
    port: int

    def url(self, path_and_query: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}{path_and_query}"


def kubelet_location(node: dict[str, Any]) -> KubeletLocation:
    """The kubelet API address of ``node``: its preferred address and advertised port (10250 when unset)."""
    status = node.get("status") or {}
    addresses = status.get("addresses") or []
    host = next((a.get("address") for kind in PREFERRED_ADDRESS_TYPES for a in addresses
                 if a.get("type") == kind and a.get("address")), None)
    if host is None:
        known = " ".join(f"{{{a.get('type')} {a.get('address')}}}" for a in addresses)
        raise StatusError(500, "", f"no preferred addresses found; known addresses: [{known}]")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0
    return KubeletLocation(node["metadata"]["name"], host, port if port > 0 else DEFAULT_KUBELET_PORT)


# -- what the registry checks, and the kubelet URL it builds ----------------------------------------


def container_names(pod: dict[str, Any]) -> list[str]:
    """Every container of the pod in ``VisitContainers`` order: init, regular, ephemeral."""
    spec = pod.get("spec") or {}
    return [c.get("name", "") for kind in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(kind) or []]


def validate_container(pod: dict[str, Any], container: str | None) -> str:
    """``validateContainer``: the named container must exist; unnamed, the pod must have exactly one."""
    name = pod["metadata"]["name"]
    regular = (pod.get("spec") or {}).get("containers") or []
    if not container:
        if len(regular) == 1:
            return str(regular[0]["name"])
        if not regular:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        raise errors.bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(container_names(pod))}]"
        )
    if container not in container_names(pod):
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    return container


def query_bool(value: str | None) -> bool:
    """The query parameter conversion of a bool: absent, ``0`` and ``false`` (any case) are false."""
    return value is not None and not (value == "0" or value.lower() == "false")


def _encode(params: list[tuple[str, str]]) -> str:
    # url.Values.Encode: keys sorted, each key's values in their order.
    ordered = sorted(params, key=lambda kv: kv[0])
    return f"?{urlencode(ordered)}" if ordered else ""


def stream_path(pod: dict[str, Any], subresource: str, query: Any) -> str:
    """``ExecLocation``/``AttachLocation``/``PortForwardLocation``: the kubelet path and query."""
    meta = pod["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if subresource == "portforward":
        ports: list[str] = []
        for value in query.getall("ports", []):
            for part in value.split(","):
                if not part.strip().lstrip("+-").isdigit():
                    raise errors.bad_request(f'strconv.ParseInt: parsing "{part}": invalid syntax')
                ports.append(str(int(part)))
        return f"/portForward/{namespace}/{name}" + _encode([("port", ",".join(ports))] if ports else [])
    container = validate_container(pod, query.get("container"))
    params = [(channel, "1") for option, channel in (("stdin", "input"), ("stdout", "output"),
                                                      ("stderr", "error"), ("tty", "tty"))
              if query_bool(query.get(option))]
    if subresource == "exec":
        params += [("command", c) for c in query.getall("command", [])]
    return f"/{subresource}/{namespace}/{name}/{container}" + _encode(params)


def log_path(pod: dict[str, Any], options: Mapping[str, Any], container: str) -> str:
    """``LogLocation``'s path and query, from options already validated (``pod_logs.parse_log_query``)."""
    meta = pod["metadata"]
    params: list[tuple[str, str]] = []
    for option, key in (("follow", "follow"), ("previous", "previous"), ("timestamps", "timestamps")):
        if options.get(option):
            params.append((key, "true"))
    if options.get("since_seconds") is not None:
        params.append(("sinceSeconds", str(options["since_seconds"])))
    if options.get("since_time") is not None:
        params.append(("sinceTime", _rfc3339_seconds(options["since_time"])))
    if options.get("tail_lines") is not None:
        params.append(("tailLines", str(options["tail_lines"])))
    if options.get("limit_bytes") is not None:
        params.append(("limitBytes", str(options["limit_bytes"])))
    # strategy.go would add stream=All under PodLogsQuerySplitStreams, but the v1.37.2 server built here sends
    # no stream parameter (tests/localcluster/test_pod_proxy.py pins what it sends), and neither do we.
    # LogLocation adds them in this order and encodes them sorted.
    return f"/containerLogs/{meta['namespace']}/{meta['name']}/{container}" + _encode(params)


def _rfc3339_seconds(text: str) -> str:
    """``metav1.Time.Format(time.RFC3339)``: UTC, whole seconds."""
    from ..node.pod_logs import parse_rfc3339_ns

    seconds = parse_rfc3339_ns(text) // 1_000_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# -- the proxy -------------------------------------------------------------------------------------------


def _dial_error(location: KubeletLocation, exc: BaseException) -> str:
    """Go's words for a failed dial: ``dial tcp 127.0.0.1:10250: connect: connection refused``."""
    code = getattr(exc, "errno", None)
    if isinstance(exc, ssl.SSLError):
        reason = f"tls: {exc.reason or exc}".lower()
        return f"dial tcp {location.host}:{location.port}: {reason}"
    if isinstance(exc, TimeoutError):
        return f"dial tcp {location.host}:{location.port}: i/o timeout"
    reason = os.strerror(code).lower() if code else str(exc)
    return f"dial tcp {location.host}:{location.port}: connect: {reason}"


class _ClientFeed:
    """Takes aiohttp's place as the client connection's parser: every byte goes straight to the kubelet.

    When the kubelet's side has more than ``_HIGH_WATER`` unsent, the client's connection stops being read
    until it drains (there is no flow control in SPDY, so this is what keeps a fast uploader bounded).
    """

    def __init__(self, client: asyncio.Transport, backend: asyncio.StreamWriter, done: asyncio.Event) -> None:
        self._client = client
        self._backend = backend
        self._done = done
        self._paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._backend.is_closing():
            return False, b""
        self._backend.write(data)
        if not self._paused and self._backend.transport.get_write_buffer_size() > _HIGH_WATER:
            self._paused = True
            self._client.pause_reading()
            asyncio.get_running_loop().create_task(self._resume())
        return False, b""

    async def _resume(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._backend.drain()
        self._paused = False
        if not self._client.is_closing():
            with contextlib.suppress(RuntimeError):
                self._client.resume_reading()

    def feed_eof(self) -> None:
        # The client is gone: io.Copy returned, and the proxy closes both connections.
        self._done.set()


class KubeletProxy:
    """The API server's kubelet client: TLS to the kubelet API, with its client certificate.

    ``ssl_context`` is the API server's (client certificate, cluster CA); ``None`` dials without
    verifying and presents nothing, as an API server started without the ``--kubelet-*`` TLS flags.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        return self.ssl_context if self.ssl_context is not None else False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- exec, attach, port-forward --------------------------------------------------------------------

    async def upgrade(self, request: web.Request, location: KubeletLocation, path: str) -> web.StreamResponse:
        """Relay an upgrade request to ``path`` on the kubelet (see the module docstring)."""
        if "upgrade" not in ",".join(request.headers.getall("Connection", [])).lower():
            raise errors.bad_request("Upgrade request required")
        try:
            async with asyncio.timeout(_DIAL_TIMEOUT):
                reader, writer = await asyncio.open_connection(
                    location.host, location.port, ssl=self._ssl(), limit=_CHUNK,
                    server_hostname=location.host if self.ssl_context else None)
        except (OSError, TimeoutError) as exc:
            raise StatusError(500, "", f"error dialing backend: {_dial_error(location, exc)}") from None
        try:
            writer.write(self._request_head(request, path))
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
                raise StatusError(500, "", f"error reading the kubelet's answer: {exc or 'unexpected EOF'}") from None
            status, reason, headers = _parse_head(head)
            if status != 101:
                return await self._refused(reader, status, reason, headers)
            return await self._relay(request, reader, writer, status, reason, headers)
        finally:
            writer.close()

    def _request_head(self, request: web.Request, path: str) -> bytes:
        lines = [f"{request.method} {path} HTTP/1.1", f"Host: {request.host}"]
        for name, value in request.headers.items():
            if name.lower() not in _NOT_FORWARDED:
                lines.append(f"{name}: {value}")
        # utilnet.AppendForwardedForHeader: the client's address after any the request already carried.
        forwarded = [v for v in request.headers.getall("X-Forwarded-For", [])]
        if request.remote:
            forwarded.append(request.remote)
        if forwarded:
            lines.append(f"X-Forwarded-For: {', '.join(forwarded)}")
        if request.method != "GET":
            lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")

    async def _refused(self, reader: asyncio.StreamReader, status: int, reason: str,
                       headers: list[tuple[str, str]]) -> web.Response:
        if status < 400:
            raise StatusError(500, "", f"invalid upgrade response: status code {status}")
        # The kubelet's refusal goes back to the client as it came (backendHTTPResponse.Write).
        length = next((v for k, v in headers if k.lower() == "content-length"), None)
        body = b""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                body = await (reader.readexactly(int(length)) if length is not None else reader.read(_MAX_ERROR_BODY))
        response = web.Response(status=status, reason=reason or None, body=body)
        for name, value in headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                response.headers.add(name, value)
        response.force_close()
        return response

    async def _relay(self, request: web.Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     status: int, reason: str, headers: list[tuple[str, str]]) -> web.StreamResponse:
        client = request.transport
        assert client is not None
        client_gone = asyncio.Event()
        # Every byte the client sends from here on is the upgraded protocol's: take them before the 101 can
        # reach the client (it sends nothing before it has read the 101).
        request.protocol.set_parser(_ClientFeed(client, writer, client_gone))  # type: ignore[arg-type]
        response = web.StreamResponse(status=status, reason=reason or None)
        for name, value in headers:
            if name.lower() not in ("date", "server", "content-length", "transfer-encoding"):
                response.headers.add(name, value)
        await response.prepare(request)
        copy = asyncio.create_task(self._copy_to_client(request, reader))
        gone = asyncio.create_task(client_gone.wait())
        try:
            # One direction ending ends the session (the proxy's two io.Copy and its deferred Closes).
            await asyncio.wait({copy, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (copy, gone):
                task.cancel()
            await asyncio.gather(copy, gone, return_exceptions=True)
            writer.close()
            request.protocol.force_close()
            client.close()
        return response

    @staticmethod
    async def _copy_to_client(request: web.Request, reader: asyncio.StreamReader) -> None:
        client = request.transport
        while client is not None and not client.is_closing():
            data = await reader.read(_CHUNK)
            if not data:
                return
            client.write(data)
            await request.writer.drain()

    # -- logs ------------------------------------------------------------------------------------------

    async def logs(self, request: web.Request, location: KubeletLocation, path: str,
                   pod_name: str) -> web.StreamResponse:
        """``LocationStreamer`` for ``pods/log``: stream the kubelet's answer, or map its refusal."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl()), auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=_DIAL_TIMEOUT),
            )
        url = location.url(path)
        try:
            upstream = await self._session.get(url, allow_redirects=False)
        except aiohttp.ClientConnectorError as exc:
            cause = exc.os_error if exc.os_error is not None else exc
            raise StatusError(500, "", f'Get "{url}": {_dial_error(location, cause)}') from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StatusError(500, "", f'Get "{url}": {exc or "timeout"}') from None
        try:
            if not 200 <= upstream.status <= 206:
                body = (await upstream.content.read(_MAX_ERROR_BODY)).decode("utf-8", "replace")
                raise _log_refusal(upstream.status, body, pod_name)
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            try:
                await _copy_body(request, upstream, response)
                await response.write_eof()
            except ConnectionError:
                log.debug("logs: client went away")
            return response
        finally:
            upstream.close()


async def _copy_body(request: web.Request, upstream: aiohttp.ClientResponse, response: web.StreamResponse) -> None:
    while True:
        try:
            # A follow on a silent container waits here: wake up now and then to see if the client left.
            async with asyncio.timeout(1.0):
                data = await upstream.content.readany()
        except TimeoutError:
            if request.transport is None or request.transport.is_closing():
                return
            continue
        if not data:
            return
        await response.write(data)


def _log_refusal(code: int, body: str, pod_name: str) -> StatusError:
    """``GenericHttpResponseChecker.Check``."""
    if code == 500:
        return StatusError(500, "InternalError", f"Internal error occurred: {body}",
                           details={"causes": [{"message": body}]})
    if code == 400:
        return errors.bad_request(body)
    reasons = {
        404: ("NotFound", "the server could not find the requested resource"),
        401: ("Unauthorized", "the server has asked for the client to provide credentials"),
        403: ("Forbidden", body),
        405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
        409: ("Conflict", "the server reported a conflict"),
        422: ("Invalid", "the server rejected our request due to an error in our request"),
        429: ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
        503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
        504: ("Timeout", "the server was unable to return a response in the time allotted, but may still be "
                         "processing the request"),
    }
    reason, message = reasons.get(code, ("", f"the server responded with the status code {code} but did not "
                                             "return more information"))
    if code > 500 and code not in reasons:
        reason = "InternalError"
        message = f'an error on the server ("{body}") has prevented the request from succeeding'
    # NewGenericServerResponse with an empty verb: "( pods/log name)".
    return StatusError(code, reason, f"{message} ( pods/log {pod_name})",
                       details={"name": pod_name, "kind": "pods/log"})


def _parse_head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise StatusError(500, "", f"malformed HTTP response {status_line!r}")
    headers = []
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers

