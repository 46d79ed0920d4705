"""The kubelet's own HTTPS API: what a real kube-apiserver proxies ``pods/exec``, ``attach``, ``log`` and
``portforward`` to.

The API server never runs these itself: it dials the node's InternalIP at
``status.daemonEndpoints.kubeletEndpoint.Port`` and forwards the client's request (SPDY or WebSocket, as
the client spoke it, or SPDY translated from a v5 WebSocket). So this server speaks everything a 1.37 API
server may send, mirrored from ``pkg/kubelet/server/server.go`` and ``k8s.io/cri-streaming``:

* ``GET /healthz`` answers ``ok``.
* ``GET /containerLogs/{ns}/{pod}/{container}`` with ``follow``, ``previous``, ``timestamps``,
  ``sinceSeconds``, ``sinceTime``, ``tailLines`` (and the legacy ``tail``, ``all`` meaning no limit),
  ``limitBytes``; served by :mod:`pod_logs`.
* ``/exec/{ns}/{pod}[/{uid}]/{container}?command=..&input=1&output=1&error=1&tty=1`` (GET or POST): the
  API server names the channels ``input``, ``output`` and ``error``, and only ``1`` means true. Over SPDY
  (``X-Stream-Protocol-Version`` v4/v3/v2/``channel.k8s.io``, one stream per channel by ``streamType``) or
  over WebSocket (v1, v4 and their base64 flavours, and v5, which a 1.36+ API server may forward as is);
  the session itself is :mod:`pod_exec`'s, whatever carries it.
* ``/attach/...``, same parameters: the container's output from now on, read from its log (the containers
  here write their output to CRI log files and have no console), until the container exits; then a
  Success status. Containers get no stdin pipe, so what a client types is dropped, as a runtime drops
  input for a container that did not ask for stdin; ``tty`` is ignored (there is no terminal).
* ``/portForward/{ns}/{pod}[/{uid}]``: SPDY ``portforward.k8s.io``, where the client opens an error and a
  data stream per connection (``port`` and ``requestID`` headers; without a requestID the pair is found
  from the stream ids, as the kubelet does), each pair one TCP connection to the pod's IP; a refused
  connection is reported on that pair's error stream and the session goes on. Over WebSocket
  (``?port=8080,9090``; ``v4.channel.k8s.io``, its base64 flavour, or none), two channels per port, each
  opened with the port as a little-endian uint16, one connection per port for the session. SPDY tunnelled
  in a WebSocket (``SPDY/3.1+portforward.k8s.io``, what a 1.36+ API server forwards when the node declares
  it) is unwrapped and served as SPDY.

Authentication is the TLS layer's: the caller's ``ssl.SSLContext`` decides whether a client certificate
(the API server's ``--kubelet-client-certificate``) is required. Nothing is authorized per request.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import errno
import logging
import os
import socket
import ssl
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from ..apiserver import errors
from . import pod_exec, pod_logs, spdy

log = logging.getLogger(__name__)

PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
TUNNELED_PORT_FORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
_WS_PORT_FORWARD_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io")
_STREAM_CREATION_TIMEOUT = 30.0
_CHUNK = 256 * 1024
_POLL = 0.1
_CONNECT_TIMEOUT = 10.0


class NodeRuntime(Protocol):
    """What the kubelet API needs from the node (``Kubelet`` implements it)."""

    def launch_spec(self, namespace: str, pod_name: str, container: str) -> pod_exec.LaunchSpec:
        """How to run a process in a running container; ``StatusError`` (400) when it is not running."""
        ...

    def track_process(self, namespace: str, pod_name: str, pid: int) -> None:
        """Tie an exec'd process to its pod, so that it dies with the pod."""
        ...

    def log_path(self, namespace: str, pod_name: str, container: str, previous: bool = False) -> Path:
        """The container's CRI log; ``StatusError`` when there is none to read."""
        ...

    def container_running(self, namespace: str, pod_name: str, container: str) -> bool: ...

    def pod_uid(self, namespace: str, pod_name: str) -> str:
        """The UID of a pod this node runs; ``StatusError`` (404) for a pod it does not run."""
        ...

    def pod_ip(self, namespace: str, pod_name: str) -> str:
        """The pod's IP, where port-forward connects; ``StatusError`` when it has none yet."""
        ...


def _status_response(err: errors.StatusError) -> web.Response:
    return web.json_response(err.to_status(), status=err.code, headers=err.headers)


def _text_error(status: int, message: str) -> web.Response:
    # go-restful's WriteError: the error's text, as plain text.
    return web.Response(status=status, text=message)


class _StreamOptions:
    """``remotecommand.NewOptions``: the channels an exec or attach asks for."""

    def __init__(self, query: Mapping[str, str]) -> None:
        self.tty = query.get("tty") == "1"
        self.stdin = query.get("input") == "1"
        self.stdout = query.get("output") == "1"
        # A terminal merges stderr into its output.
        self.stderr = query.get("error") == "1" and not self.tty

    @property
    def error(self) -> str | None:
        if not (self.stdin or self.stdout or self.stderr):
            return "you must specify at least 1 of stdin, stdout, stderr"
        return None


class KubeletAPIServer:
    """The kubelet API over HTTPS, on ``host:port`` (port 0 picks a free one; read :attr:`port` after
    :meth:`start`)."""

    def __init__(
        self, runtime: NodeRuntime, *, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext
    ) -> None:
        self.runtime = runtime
        self.host = host
        self._requested_port = port
        self._ssl_context = ssl_context
        self._runner: web.AppRunner | None = None
        self._site: web.SockSite | None = None
        self.port = 0
        # Streaming sessions by "<verb> <transport> <protocol>" (``exec websocket v5.channel.k8s.io``,
        # ``exec spdy v4.channel.k8s.io``): what the API server chose to send, for tests and diagnostics.
        self.sessions: collections.Counter[str] = collections.Counter()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._container_logs)
        for verb in ("exec", "attach"):
            handler = self._exec if verb == "exec" else self._attach
            for path in (
                f"/{verb}/{{namespace}}/{{pod}}/{{container}}",
                f"/{verb}/{{namespace}}/{{pod}}/{{uid}}/{{container}}",
            ):
                app.router.add_route("GET", path, handler)
                app.router.add_route("POST", path, handler)
        for path in ("/portForward/{namespace}/{pod}", "/portForward/{namespace}/{pod}/{uid}"):
            app.router.add_route("GET", path, self._port_forward)
            app.router.add_route("POST", path, self._port_forward)
        return app

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno, f"kubelet API cannot listen on {self.host}:{self._requested_port}: {exc.strerror}"
            ) from exc
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.SockSite(self._runner, sock, ssl_context=self._ssl_context)
        await self._site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    # -- handlers ----------------------------------------------------------------------------------

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _count(self, verb: str, request: web.Request) -> None:
        if request.headers.get("Upgrade", "").strip().lower() == "websocket":
            offers = _websocket_offers(request)
            if verb == "portforward":
                protocol = TUNNELED_PORT_FORWARD_PROTOCOL if TUNNELED_PORT_FORWARD_PROTOCOL in offers else (
                    next((p for p in offers if p in _WS_PORT_FORWARD_PROTOCOLS), ""))
            else:
                protocol = pod_exec.negotiate_protocol(offers) or ""
            self.sessions[f"{verb} websocket {protocol}".rstrip()] += 1
            return
        supported = [PORT_FORWARD_PROTOCOL] if verb == "portforward" else pod_exec.SPDY_PROTOCOLS
        offered = spdy.offered_protocols(request.headers.getall(spdy.HEADER_PROTOCOL_VERSION, []))
        self.sessions[f"{verb} spdy {spdy.negotiate(offered, supported) or ''}".rstrip()] += 1

    def _check_uid(self, request: web.Request) -> None:
        namespace, pod = request.match_info["namespace"], request.match_info["pod"]
        uid = self.runtime.pod_uid(namespace, pod)
        wanted = request.match_info.get("uid")
        if wanted and wanted != uid:
            raise errors.StatusError(404, "NotFound", f'pod "{pod}" with UID {wanted} not found on this node')

    async def _container_logs(self, request: web.Request) -> web.StreamResponse:
        namespace, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        query: dict[str, str] = dict(request.query)
        # The kubelet's compatibility with the old "tail" parameter ("all" means no limit).
        tail = query.pop("tail", None)
        if tail and tail != "all":
            query["tailLines"] = tail
        # The kubelet answers in text (go-restful's WriteError), literal JSON included; the API server makes
        # a Status of it (GenericHttpResponseChecker), so the text is what kubectl ends up showing.
        try:
            options = pod_logs.parse_log_query(query, pod_name=pod)
        except errors.StatusError as err:
            if err.code == 422:
                return _text_error(422, '{"message": "Invalid request."}')
            return _text_error(400, '{"message": "Unable to decode query."}')
        try:
            self.runtime.pod_uid(namespace, pod)
        except errors.StatusError:
            return _text_error(404, f'pod "{pod}" does not exist')
        try:
            self.runtime.log_path(namespace, pod, container, options["previous"])
        except errors.StatusError as err:
            return _text_error(400, err.message)
        source = pod_logs.ContainerLogSource(self.runtime, namespace, pod, container)
        return await pod_logs.serve_logs(request, source=source, **options)

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        namespace, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        options = _StreamOptions(request.query)
        if options.error:
            return _text_error(400, options.error)
        command = request.query.getall("command", [])
        try:
            self._check_uid(request)
            launch = self.runtime.launch_spec(namespace, pod, container)
        except errors.StatusError as err:
            return _status_response(err)

        def on_started(pid: int) -> None:
            self.runtime.track_process(namespace, pod, pid)

        self._count("exec", request)

        if request.headers.get("Upgrade", "").strip().lower() == "websocket":
            return await pod_exec.serve_exec(
                request,
                launch=launch,
                command=command,
                stdin=options.stdin,
                stdout=options.stdout,
                stderr=options.stderr,
                tty=options.tty,
                on_started=on_started,
            )
        refusal = spdy.handshake_error(request, pod_exec.SPDY_PROTOCOLS)
        if refusal is not None:
            return refusal
        upgraded = await spdy.upgrade(request, pod_exec.SPDY_PROTOCOLS)
        channels = await _spdy_channels(upgraded, options)
        if channels is None:
            return upgraded.response
        await pod_exec.run_exec(
            channels,
            launch=launch,
            command=command,
            stdin=options.stdin,
            stdout=options.stdout,
            stderr=options.stderr,
            tty=options.tty,
            on_started=on_started,
        )
        return upgraded.response

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        namespace, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        options = _StreamOptions(request.query)
        if options.error:
            return _text_error(400, options.error)
        try:
            self._check_uid(request)
            if not self.runtime.container_running(namespace, pod, container):
                raise errors.bad_request(f'container "{container}" in pod "{pod}" is not running')
            path = self.runtime.log_path(namespace, pod, container)
        except errors.StatusError as err:
            return _status_response(err)
        source = pod_logs.ContainerLogSource(self.runtime, namespace, pod, container)
        self._count("attach", request)
        channels: pod_exec.ExecChannels
        if request.headers.get("Upgrade", "").strip().lower() == "websocket":
            opened = await _open_websocket(request)
            if isinstance(opened, web.Response):
                return opened
            ws, protocol = opened
            channels = pod_exec.WebSocketChannels(ws, protocol)
            response: web.StreamResponse = ws
        else:
            refusal = spdy.handshake_error(request, pod_exec.SPDY_PROTOCOLS)
            if refusal is not None:
                return refusal
            upgraded = await spdy.upgrade(request, pod_exec.SPDY_PROTOCOLS)
            response = upgraded.response
            spdy_channels = await _spdy_channels(upgraded, options)
            if spdy_channels is None:
                return response
            channels = spdy_channels
        await _AttachSession(channels, source, path, options).run()
        return response

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        namespace, pod = request.match_info["namespace"], request.match_info["pod"]
        try:
            self._check_uid(request)
            uid = self.runtime.pod_uid(namespace, pod)
        except errors.StatusError as err:
            return _status_response(err)
        forwarder = _Forwarder(self.runtime, namespace, pod, uid)
        self._count("portforward", request)
        if request.headers.get("Upgrade", "").strip().lower() == "websocket":
            if TUNNELED_PORT_FORWARD_PROTOCOL in _websocket_offers(request):
                return await _serve_tunneled_port_forward(request, forwarder)
            return await _serve_websocket_port_forward(request, forwarder)
        refusal = spdy.handshake_error(request, [PORT_FORWARD_PROTOCOL])
        if refusal is not None:
            return refusal
        upgraded = await spdy.upgrade(request, [PORT_FORWARD_PROTOCOL], accept=_accept_port_forward_stream)
        await _serve_spdy_port_forward(upgraded.session, forwarder)
        return upgraded.response


async def _spdy_channels(upgraded: spdy.Upgraded, options: _StreamOptions) -> pod_exec.SpdyChannels | None:
    """Wait for the client's remotecommand streams; None (the session closed) if they do not come."""
    try:
        streams = await pod_exec.accept_spdy_streams(
            upgraded.session,
            upgraded.protocol,
            stdin=options.stdin,
            stdout=options.stdout,
            stderr=options.stderr,
            tty=options.tty,
        )
    except (TimeoutError, ConnectionError) as exc:
        log.warning("remotecommand: %s", exc or "timed out waiting for the client to create streams")
        await upgraded.session.close()
        return None
    return pod_exec.SpdyChannels(upgraded.session, upgraded.protocol, streams)


# -- WebSocket helpers -------------------------------------------------------------------------------


def _websocket_offers(request: web.Request) -> list[str]:
    return [
        p.strip()
        for h in request.headers.getall("Sec-WebSocket-Protocol", [])
        for p in h.split(",")
        if p.strip()
    ]


async def _open_websocket(request: web.Request) -> tuple[web.WebSocketResponse, str] | web.Response:
    protocol = pod_exec.negotiate_protocol(request.headers.getall("Sec-WebSocket-Protocol", []))
    if protocol is None:
        offered = ", ".join(request.headers.getall("Sec-WebSocket-Protocol", []))
        return _text_error(400, f"none of the requested WebSocket subprotocols ({offered}) is supported")
    ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), compress=False, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        return _text_error(400, "malformed WebSocket upgrade request")
    await ws.prepare(request)
    return ws, protocol


# -- attach --------------------------------------------------------------------------------------------


class _DroppedInput:
    """The attach session's input sink: a container without a stdin pipe takes no input."""

    async def feed_stdin(self, data: bytes | memoryview) -> None:
        return None

    def close_stdin(self) -> None:
        return None

    def feed_resize(self, data: bytes | memoryview) -> None:
        return None


class _AttachSession:
    """Streams a running container's new output (from its CRI log) until it exits."""

    def __init__(
        self, channels: pod_exec.ExecChannels, source: pod_logs.LogSource, path: Path, options: _StreamOptions
    ) -> None:
        self.channels = channels
        self.source = source
        self.path = path
        self.options = options

    async def run(self) -> None:
        options = self.options
        first = pod_exec.STDOUT if options.stdout else pod_exec.STDERR if options.stderr else pod_exec.ERROR
        input_task: asyncio.Task[None] | None = None
        follow_task: asyncio.Task[None] | None = None
        try:
            await self.channels.begin(first)
            input_task = asyncio.create_task(self.channels.pump_input(_DroppedInput()))
            follow_task = asyncio.create_task(self._follow())
            await asyncio.wait({input_task, follow_task}, return_when=asyncio.FIRST_COMPLETED)
            if input_task.done() or follow_task.exception() is not None:
                return  # the client went away (or could not be written to)
            input_task.cancel()
            await asyncio.gather(input_task, return_exceptions=True)
            await self.channels.report({"metadata": {}, "status": "Success"})
        except ConnectionError as exc:
            log.debug("attach: connection lost: %s", exc)
        finally:
            for task in (input_task, follow_task):
                if task is not None:
                    task.cancel()
            await asyncio.gather(
                *(t for t in (input_task, follow_task) if t is not None), return_exceptions=True
            )
            await self.channels.close()

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        fd = await loop.run_in_executor(None, os.open, self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            # The kubelet writes whole records, so the end of the file is a record boundary.
            offset = os.fstat(fd).st_size
            pending = b""
            stopping = False
            while True:
                data = await loop.run_in_executor(None, os.pread, fd, _CHUNK, offset)
                if data:
                    offset += len(data)
                    pending += data
                    cut = pending.rfind(b"\n") + 1
                    records, pending = pending[:cut], pending[cut:]
                    await self._send_records(records)
                    continue
                if stopping:
                    return
                if not self.source.container_running():
                    stopping = True  # one more read for what it wrote last
                    continue
                await asyncio.sleep(_POLL)
        finally:
            os.close(fd)

    async def _send_records(self, records: bytes) -> None:
        out: dict[int, list[bytes]] = {pod_exec.STDOUT: [], pod_exec.STDERR: []}
        for line in records.split(b"\n")[:-1]:
            fields = line.split(b" ", 3)
            if len(fields) < 3 or fields[1] not in (b"stdout", b"stderr"):
                continue
            channel = pod_exec.STDOUT if fields[1] == b"stdout" else pod_exec.STDERR
            text = fields[3] if len(fields) == 4 else b""
            partial = fields[2].split(b":", 1)[0] == b"P"
            out[channel].append(text if partial else text + b"\n")
        if out[pod_exec.STDOUT] and self.options.stdout:
            await self.channels.send(pod_exec.STDOUT, b"".join(out[pod_exec.STDOUT]))
        if out[pod_exec.STDERR]:
            if self.options.stderr:
                await self.channels.send(pod_exec.STDERR, b"".join(out[pod_exec.STDERR]))
            elif self.options.tty and self.options.stdout:
                await self.channels.send(pod_exec.STDOUT, b"".join(out[pod_exec.STDERR]))


# -- port-forward ----------------------------------------------------------------------------------------


class _Forwarder:
    """``PortForward``: one TCP connection to the pod for one client connection."""

    def __init__(self, runtime: NodeRuntime, namespace: str, pod: str, uid: str) -> None:
        self.runtime = runtime
        self.namespace = namespace
        self.pod = pod
        self.uid = uid

    def error_message(self, port: int, reason: str) -> str:
        # The kubelet's wording; the "pod" it names is the runtime's sandbox, the pod's UID here.
        return f"error forwarding port {port} to pod {self.uid}, uid : {reason}"

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the pod's port; ``OSError`` with a message in the runtime's words when refused."""
        try:
            ip = self.runtime.pod_ip(self.namespace, self.pod)
        except errors.StatusError as err:
            raise OSError(errno.EHOSTUNREACH, err.message) from None
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                return await asyncio.open_connection(ip, port, limit=_CHUNK)
        except (OSError, TimeoutError) as exc:
            # asyncio words a refusal "Connect call failed (...)"; Go says "connection refused".
            code = exc.errno if isinstance(exc, OSError) else None
            reason = os.strerror(code) if code else str(exc) or "i/o timeout"
            raise OSError(
                getattr(exc, "errno", None) or errno.ETIMEDOUT,
                f"failed to connect to {ip}:{port} inside the pod: dial tcp4 {ip}:{port}: connect: {reason.lower()}",
            ) from None


async def _copy_to_pod(read: Any, writer: asyncio.StreamWriter) -> None:
    """Client to pod until the client half-closes; then half-close toward the pod."""
    while chunk := await read():
        writer.write(chunk)
        await writer.drain()
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()


def _accept_port_forward_stream(stream: spdy.SpdyStream) -> str | None:
    """``httpStreamReceived``: a port-forward stream needs a valid ``port`` and ``streamType``."""
    port = stream.header("port")
    if not port:
        return 'the "port" header is required'
    if not port.isdigit() or not 0 < int(port) < 65536:
        return f"unable to parse {port!r} as a port"
    kind = stream.header("streamType")
    if not kind:
        return 'the "streamType" header is required'
    if kind not in ("error", "data"):
        return f"invalid stream type {kind!r}"
    return None


async def _serve_spdy_port_forward(session: spdy.SpdySession, forwarder: _Forwarder) -> None:
    pairs: dict[str, dict[str, spdy.SpdyStream]] = {}
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Any) -> None:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def expire(request_id: str) -> None:
        await asyncio.sleep(_STREAM_CREATION_TIMEOUT)
        pair = pairs.pop(request_id, None)
        if pair is not None and "error" in pair:
            with contextlib.suppress(ConnectionError):
                await pair["error"].write(f"timed out waiting for streams of request {request_id}".encode())
                await pair["error"].close()

    try:
        while (stream := await session.next_stream()) is not None:
            kind = stream.header("streamType") or ""
            request_id = stream.header("requestID")
            if not request_id:
                # Old clients: the error stream is opened first, its data stream two ids later.
                request_id = str(stream.id if kind == "error" else stream.id - 2)
            pair = pairs.get(request_id)
            if pair is None:
                pair = pairs[request_id] = {}
                spawn(expire(request_id))
            if kind in pair:
                message = f"error processing stream for request {request_id}: {kind} stream already assigned"
                if "error" in pair:
                    with contextlib.suppress(ConnectionError):
                        await pair["error"].write(message.encode())
                stream.reset()
                continue
            pair[kind] = stream
            if "data" in pair and "error" in pair:
                del pairs[request_id]
                spawn(_forward_spdy_pair(forwarder, pair["data"], pair["error"]))
    finally:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()


async def _forward_spdy_pair(forwarder: _Forwarder, data: spdy.SpdyStream, error: spdy.SpdyStream) -> None:
    error.discard_input()
    port = int(data.header("port") or 0)
    try:
        reader, writer = await forwarder.connect(port)
    except OSError as exc:
        message = forwarder.error_message(port, exc.strerror or str(exc))
        log.debug("port-forward: %s", message)
        with contextlib.suppress(ConnectionError):
            await error.write(message.encode())
            await error.close()
        data.reset()
        return
    to_pod = asyncio.create_task(_copy_to_pod(data.read, writer))
    try:
        while chunk := await reader.read(_CHUNK):
            await data.write(chunk)
        with contextlib.suppress(ConnectionError):
            await data.close()
            await error.close()
    except ConnectionError:
        pass  # the client reset the stream: the connection is over
    finally:
        to_pod.cancel()
        await asyncio.gather(to_pod, return_exceptions=True)
        writer.close()
        if not data.local_closed:
            data.reset()
        if not error.local_closed:
            error.reset()


async def _serve_websocket_port_forward(request: web.Request, forwarder: _Forwarder) -> web.StreamResponse:
    ports: list[int] = []
    values = request.query.getall("port", []) + request.query.getall("ports", [])
    if not values:
        return _text_error(400, 'query parameter "port" is required')
    for value in values:
        if not value:
            return _text_error(400, 'query parameter "port" cannot be empty')
        for part in value.split(","):
            if not part.strip().isdigit() or not 0 < int(part) < 65536:
                return _text_error(400, f"unable to parse {value!r} as a port")
            ports.append(int(part))
    offers = _websocket_offers(request)
    protocol = next((p for p in offers if p in _WS_PORT_FORWARD_PROTOCOLS), None)
    if offers and protocol is None:
        return _text_error(
            400, f"none of the requested WebSocket subprotocols ({', '.join(offers)}) is supported"
        )
    ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), compress=False, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        return _text_error(400, "malformed WebSocket upgrade request")
    await ws.prepare(request)
    encoded = protocol == "v4.base64.channel.k8s.io"
    send_lock = asyncio.Lock()

    async def send(channel: int, data: bytes) -> None:
        async with send_lock:
            if encoded:
                await ws.send_str(chr(48 + channel) + base64.b64encode(data).decode("ascii"))
            else:
                await ws.send_bytes(bytes((channel,)) + data)

    inputs = [asyncio.Queue[bytes | None]() for _ in ports]

    async def pump_input() -> None:
        async for msg in ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT) or not msg.data:
                continue
            raw: bytes = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
            channel = raw[0] - 48 if encoded else raw[0]
            payload = base64.b64decode(raw[1:]) if encoded else raw[1:]
            if channel % 2 == 0 and channel // 2 < len(inputs) and payload:
                inputs[channel // 2].put_nowait(payload)
        for queue in inputs:
            queue.put_nowait(None)

    async def forward(index: int, port: int) -> None:
        try:
            reader, writer = await forwarder.connect(port)
        except OSError as exc:
            await send(index * 2 + 1, forwarder.error_message(port, exc.strerror or str(exc)).encode())
            return
        queue = inputs[index]

        async def read() -> bytes:
            return await queue.get() or b""

        to_pod = asyncio.create_task(_copy_to_pod(read, writer))
        try:
            while chunk := await reader.read(_CHUNK):
                await send(index * 2, chunk)
        finally:
            to_pod.cancel()
            await asyncio.gather(to_pod, return_exceptions=True)
            writer.close()

    input_task = asyncio.create_task(pump_input())
    try:
        for index, port in enumerate(ports):
            prefix = struct.pack("<H", port)
            await send(index * 2, prefix)
            await send(index * 2 + 1, prefix)
        forwards: asyncio.Future[Any] = asyncio.gather(
            *(forward(i, p) for i, p in enumerate(ports)), return_exceptions=True
        )
        # The session lasts until every port's connection is over, or the client hangs up.
        await asyncio.wait({input_task, forwards}, return_when=asyncio.FIRST_COMPLETED)
        forwards.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forwards
    except ConnectionError as exc:
        log.debug("port-forward: connection lost: %s", exc)
    finally:
        input_task.cancel()
        await asyncio.gather(input_task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


async def _serve_tunneled_port_forward(request: web.Request, forwarder: _Forwarder) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=(TUNNELED_PORT_FORWARD_PROTOCOL,), compress=False, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        return _text_error(400, "malformed WebSocket upgrade request")
    await ws.prepare(request)
    reader = asyncio.StreamReader(limit=2**20)

    async def pump() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                reader.feed_data(msg.data)
        reader.feed_eof()

    pump_task = asyncio.create_task(pump())
    writer = spdy.MessageWriter(ws.send_bytes, ws.close)
    session = spdy.SpdySession(reader, writer, server=True, accept=_accept_port_forward_stream)
    session.start()
    try:
        await _serve_spdy_port_forward(session, forwarder)
    finally:
        pump_task.cancel()
        await asyncio.gather(pump_task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await ws.close()
    return ws
