"""The ``pods/exec`` subresource: the remotecommand protocols, run as local processes.

kubectl (1.31+, WebSockets by default) and ``kubernetes.stream.stream`` talk to the API server's exec
endpoint with a WebSocket whose subprotocol multiplexes channels; a real API server forwards SPDY clients,
and translates v5 WebSockets, to the kubelet's SPDY endpoint. Those clients only work if the framing, the
negotiation and the end-of-session status match what a real cluster sends, so this module mirrors the
upstream code paths (verified against kubernetes/kubernetes and k8s.io/cri-streaming sources). One
session (process, pty, resize, exit status) runs under either transport, an :class:`ExecChannels`:
:class:`WebSocketChannels` or :class:`SpdyChannels`.

* Negotiation. A request offering ``v5.channel.k8s.io`` anywhere in ``Sec-WebSocket-Protocol`` is served
  in v5 (by the kubelet when its Node declares ``ExtendWebSocketsToKubelet``, else by the API server's
  ``proxy.StreamTranslatorHandler``, which only speaks v5). Any other request is proxied to the kubelet
  (``cri/streaming/remotecommand/websocket.go``), which accepts the
  client's first offer among ``channel.k8s.io``, ``base64.channel.k8s.io``, ``v4.channel.k8s.io`` and
  ``v4.base64.channel.k8s.io``, or no subprotocol at all (binary v1). ``v2``/``v3`` exist only for
  SPDY, so they are refused here as on a real node. kubectl offers only v5; the Python client offers
  ``v5.channel.k8s.io,v4.channel.k8s.io``.
* Framing. Every message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 error (status),
  4 resize (a stream of ``{"Width": w, "Height": h}`` JSON values). v5 adds ``[255, n]``: the client
  half-closes channel n (``[255, 0]`` = end of stdin). base64 flavours prefix the ASCII digit of the
  channel and base64-encode the payload. The Go server reads text and binary frames alike, and so do we.
* Start. The server sends one empty message on the lowest writable channel (stdout, else stderr, else
  error) as soon as the connection is up. With ``tty`` the kubelet ignores ``stderr`` (it is merged
  into the terminal), and a request with none of stdin/stdout/stderr is a 400.
* End. v4/v5 write a JSON ``metav1.Status`` on channel 3 (``{"metadata":{},"status":"Success"}``, or
  ``reason: NonZeroExitCode`` with the code in ``details.causes[0].message``); v1 writes only the
  failure message as text. The message differs by path: the kubelet says "command terminated with
  non-zero exit code: error executing command [sh -c exit 2], exit code 2", while the v5 translator
  re-wraps client-go's decoding: "... non-zero exit code: command terminated with exit code 2".
  v5 then closes stdin/resize, sends a WebSocket close and waits for the client's close (so output
  still in flight is not reset away); that is what ``WebSocketResponse.close`` does.

Processes run in their own session: a client that goes away gets its process group killed, and a TTY
session gets a real pty as its controlling terminal so that ^C typed by the user becomes SIGINT through
the line discipline.

SPDY (``remotecommand`` v4 to v1 over ``node/spdy.py``: one stream per channel, told apart by the
``streamType`` header, v4 reporting a JSON Status on the error stream and older versions only a failure's
message) is served by the kubelet API (``kubelet_api.py``), where either API server sends it; the kubelet API
hands WebSocket upgrades to :func:`serve_exec`, which answers anything else with a Status asking for
WebSockets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import signal
import struct
import subprocess
import termios
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from ..apiserver import errors
from . import spdy

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V1 = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
# What the kubelet accepts over SPDY, in its order of preference (remotecommand.SupportedStreamingProtocols).
SPDY_PROTOCOLS = [V4, V3, V2, V1]
# What the kubelet's own WebSocket server accepts; the API server handles v5 before proxying.
_KUBELET_PROTOCOLS = frozenset({V4, V4_BASE64, V1, V1_BASE64})

# Large reads keep the per-frame Python overhead negligible next to the copying (100 MB `cat` bench).
_CHUNK = 256 * 1024
_PIPE_SIZE = 1024 * 1024
# golang.org/x/net/websocket's DefaultMaxPayloadBytes, the limit the real servers apply to a message.
_MAX_MESSAGE = 32 * 1024 * 1024
# How long the v5 translator waits for the client to close after the status (proxy/websocket.go).
_FINISH_TIMEOUT = 15 * 60.0
# kubectl sends the terminal size right after the upgrade; give it this long to arrive so the
# process starts with the right size (``stty size`` as its first action must see it).
_FIRST_RESIZE_WAIT = 0.5
# After the process exits, output is drained until EOF; a background child that keeps the pipe open
# but writes nothing for this long no longer holds the session open.
_IDLE_AFTER_EXIT = 1.0
# How long a SPDY client has to open its streams (DefaultStreamCreationTimeout).
_SPDY_STREAM_CREATION_TIMEOUT = 30.0
# After the status, how long the client has to hang up before the connection is closed under it.
_SPDY_CLOSE_GRACE = 15.0
_PREFIXES = [bytes((n,)) for n in range(256)]
# Makes the pty the controlling terminal without ``preexec_fn`` (unsafe with threads): a session
# leader that opens a tty without O_NOCTTY acquires it. ``$0`` is the pty path, ``$@`` the argv.
_CTTY_SHIM = 'exec "$@" <>"$0" >&0 2>&0'


class LaunchSpec(Protocol):
    """How to start a process inside a container (provided by the kubelet's ``launch_spec``)."""

    @property
    def argv_prefix(self) -> Sequence[str]: ...

    @property
    def env(self) -> Mapping[str, str]: ...

    @property
    def cwd(self) -> str: ...


@dataclass(frozen=True)
class ExecOptions:
    """``PodExecOptions`` as decoded from the query string."""

    command: list[str]
    container: str | None
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def query_bool(value: str | None) -> bool:
    """The API server's query-parameter bool: absent, ``0`` and ``false`` (any case) are false.

    Anything else, the empty string included, is true (``Convert_Slice_string_To_bool``), so the
    Python client's ``True``/``False`` and kubectl's ``true`` both work.
    """
    if value is None:
        return False
    return not (value == "0" or value.lower() == "false")


def parse_exec_query(query: Mapping[str, str]) -> ExecOptions:
    """Decode the exec query (repeated ``command=``, ``container``, ``stdin`` ...)."""
    getall = getattr(query, "getall", None)
    command = (
        list(getall("command", []))
        if getall is not None
        else ([query["command"]] if "command" in query else [])
    )
    return ExecOptions(
        command=command,
        container=query.get("container") or None,
        stdin=query_bool(query.get("stdin")),
        stdout=query_bool(query.get("stdout")),
        stderr=query_bool(query.get("stderr")),
        tty=query_bool(query.get("tty")),
    )


def negotiate_protocol(offers: Iterable[str]) -> str | None:
    """The subprotocol a real cluster would pick, ``""`` for none offered, ``None`` if unacceptable."""
    offered = [p.strip() for header in offers for p in header.split(",") if p.strip()]
    if not offered:
        return ""
    if V5 in offered:
        return V5
    for protocol in offered:
        if protocol in _KUBELET_PROTOCOLS:
            return protocol
    return None


def _status_response(err: errors.StatusError) -> web.Response:
    return web.json_response(err.to_status(), status=err.code, headers=err.headers)


async def serve_exec(
    request: web.Request,
    *,
    launch: LaunchSpec,
    command: list[str],
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
    on_started: Callable[[int], None] | None = None,
) -> web.StreamResponse:
    """Upgrade ``request`` to a remotecommand WebSocket and run ``command`` in ``launch``'s container.

    ``on_started`` receives the pid right after the spawn (so the kubelet can tie it to the pod).
    Errors before the upgrade are answered as ``metav1.Status``; after it, on channel 3.
    """
    stderr = stderr and not tty
    if not (stdin or stdout or stderr):
        return _status_response(errors.bad_request("you must specify at least 1 of stdin, stdout, stderr"))
    upgrade = request.headers.get("Upgrade", "").strip().lower()
    if upgrade != "websocket":
        return _status_response(
            errors.bad_request(
                f"exec over {request.headers.get('Upgrade') or 'plain HTTP'} is not supported by the local "
                f"cluster: it serves the remotecommand protocol over WebSockets only ({V5}, {V4}, {V1} and "
                "base64 variants). Use kubectl >= 1.31 without KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false, "
                "or kubernetes.stream.stream() with the Python client."
            )
        )
    if request.method != "GET":
        return _status_response(
            errors.method_not_allowed(f"a WebSocket upgrade must use GET, not {request.method}")
        )
    protocol = negotiate_protocol(request.headers.getall("Sec-WebSocket-Protocol", []))
    if protocol is None:
        offered = ", ".join(request.headers.getall("Sec-WebSocket-Protocol", []))
        return _status_response(
            errors.bad_request(
                f"none of the requested WebSocket subprotocols ({offered}) is supported: use {V5}, {V4}, "
                f"{V4_BASE64}, {V1} or {V1_BASE64} (v2/v3 exist only for SPDY)"
            )
        )
    ws = web.WebSocketResponse(
        protocols=(protocol,) if protocol else (),
        compress=False,
        max_msg_size=_MAX_MESSAGE,
        timeout=_FINISH_TIMEOUT,
        writer_limit=_PIPE_SIZE,
        decode_text=False,
    )
    if not ws.can_prepare(request).ok:
        return _status_response(errors.bad_request("malformed WebSocket upgrade request"))
    await ws.prepare(request)
    await run_exec(
        WebSocketChannels(ws, protocol),
        launch=launch,
        command=command,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        tty=tty,
        on_started=on_started,
    )
    return ws


async def run_exec(
    channels: ExecChannels,
    *,
    launch: LaunchSpec,
    command: list[str],
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
    on_started: Callable[[int], None] | None = None,
) -> None:
    """Run ``command`` in ``launch``'s container for a client already connected through ``channels``.

    ``stderr`` must already be false with ``tty`` (the terminal merges it). Returns once the status is
    reported and the channels are closed, or the client went away (then the process group is killed).
    """
    await _ExecSession(channels, launch, command, stdin, stdout, stderr, tty, on_started).run()


class _PipeSink(asyncio.BaseProtocol):
    """Flow control for a write pipe (``drain`` waits while the transport's buffer is full)."""

    def __init__(self) -> None:
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self.lost = False

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._waiter = None

    async def drain(self) -> None:
        if self.lost:
            raise BrokenPipeError(errno.EPIPE, "stdin closed")
        if self._paused:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            if self.lost:
                raise BrokenPipeError(errno.EPIPE, "stdin closed")


class _EofOnEio(asyncio.StreamReaderProtocol):
    """Reads a pty master: EIO (the last slave holder closed it) is the terminal's end of file.

    Passing the error on would lose output still buffered in the StreamReader, which raises a pending
    exception before returning buffered data.
    """

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            exc = None
        super().connection_lost(exc)


class _Stdin:
    """The process's stdin: the write end of a pipe, or the pty master."""

    def __init__(self, transport: asyncio.WriteTransport, sink: _PipeSink, *, closable: bool) -> None:
        self._transport = transport
        self._sink = sink
        self._closable = closable
        self.closed = False

    async def write(self, data: bytes | memoryview) -> None:
        if self.closed or self._sink.lost or not data:
            return
        self._transport.write(data)
        try:
            await self._sink.drain()
        except OSError:
            # The process closed its stdin or exited; like a pipe, further input goes nowhere.
            self.closed = True

    def close(self) -> None:
        # On a pty, input and output share the master: closing it would hang up the terminal, and a
        # terminal has no end-of-file short of the user typing ^D, so the half-close is ignored.
        if self._closable and not self.closed:
            self.closed = True
            self._transport.close()

    def abort(self) -> None:
        self.closed = True
        self._transport.close()


class _ResizeDecoder:
    """Decodes the resize channel, a byte stream of JSON ``TerminalSize`` values (like json.Decoder)."""

    def __init__(self, apply: Callable[[int, int], None]) -> None:
        self._apply = apply
        self._buffer = ""
        self._decoder = json.JSONDecoder()
        self._broken = False

    def feed(self, data: bytes | memoryview) -> None:
        if self._broken:
            return
        self._buffer += bytes(data).decode("utf-8", "replace")
        while True:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = ""
                return
            try:
                value, end = self._decoder.raw_decode(text)
            except json.JSONDecodeError:
                # Possibly a value split across frames; the Go decoder gives up on garbage, so do we
                # once the buffer cannot be a plausible size message any more.
                if len(text) > 4096:
                    log.warning("exec: undecodable resize stream, ignoring further resizes")
                    self._broken = True
                self._buffer = text
                return
            self._buffer = text[end:]
            if isinstance(value, dict):
                # encoding/json matches field names case-insensitively.
                fields = {str(k).lower(): v for k, v in value.items()}
                width, height = fields.get("width"), fields.get("height")
                # The kubelet skips sizes with a zero dimension (HandleResizing).
                if isinstance(width, int) and isinstance(height, int) and width >= 1 and height >= 1:
                    self._apply(min(width, 0xFFFF), min(height, 0xFFFF))


class InputSink(Protocol):
    """Where a transport delivers what the client sends."""

    async def feed_stdin(self, data: bytes | memoryview) -> None: ...

    def close_stdin(self) -> None: ...

    def feed_resize(self, data: bytes | memoryview) -> None: ...


class ExecChannels(Protocol):
    """The client's end of a remotecommand session: WebSocket channels, or SPDY streams.

    Channels are numbered as on the WebSocket (1 stdout, 2 stderr, 3 error); each transport maps them.
    """

    @property
    def translated(self) -> bool:
        """True for v5 WebSockets, whose messages the API server's stream translator words."""
        ...

    async def begin(self, first: int) -> None: ...

    async def send(self, channel: int, data: bytes) -> None: ...

    async def pump_input(self, sink: InputSink) -> None:
        """Deliver the client's input to ``sink``; return when the client has gone away."""
        ...

    async def report(self, status: dict[str, Any]) -> None:
        """Send the final ``metav1.Status`` as the protocol wants it, then close."""
        ...

    async def close(self) -> None: ...


class WebSocketChannels:
    """The remotecommand WebSocket protocols (see the module docstring)."""

    def __init__(self, ws: web.WebSocketResponse, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.base64 = protocol in (V1_BASE64, V4_BASE64)

    @property
    def translated(self) -> bool:
        return self.protocol == V5

    async def begin(self, first: int) -> None:
        await self.send(first, b"")

    async def send(self, channel: int, data: bytes) -> None:
        if self.base64:
            await self.ws.send_str(chr(48 + channel) + base64.b64encode(data).decode("ascii"))
        else:
            await self.ws.send_bytes(_PREFIXES[channel] + data)

    async def pump_input(self, sink: InputSink) -> None:
        """Demultiplex client frames until the client closes the connection."""
        stream_close = self.protocol == V5
        while True:
            msg = await self.ws.receive()
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    return
                continue
            data: bytes = msg.data
            if not data:
                continue
            channel = data[0]
            if stream_close and channel == CLOSE:
                if len(data) == 2 and data[1] == STDIN:
                    sink.close_stdin()
                continue
            if self.base64:
                channel -= 48
                try:
                    payload: bytes | memoryview = base64.b64decode(data[1:], validate=True)
                except ValueError:
                    log.warning("exec: invalid base64 frame on channel %d ignored", channel)
                    continue
            else:
                payload = memoryview(data)[1:]
            if channel == STDIN:
                await sink.feed_stdin(payload)
            elif channel == RESIZE:
                sink.feed_resize(payload)

    async def report(self, status: dict[str, Any]) -> None:
        # Like the translator's finish(): report, then close and let the client close its side once it
        # has read everything.
        if self.protocol in (V5, V4, V4_BASE64):
            await self.send(ERROR, json.dumps(status, separators=(",", ":")).encode())
        elif status["status"] != "Success":
            await self.send(ERROR, status["message"].encode())
        await self.ws.close()

    async def close(self) -> None:
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close()


class SpdyChannels:
    """The remotecommand protocols over SPDY streams (the kubelet's ``createHTTPStreamStreams``).

    The client opens one stream per channel, told apart by their ``streamType`` header. v4 reports the
    end as a JSON ``metav1.Status`` on the error stream; v1 to v3 write only a failure's message there.
    v2 and v1 have no resize stream.
    """

    def __init__(
        self, session: spdy.SpdySession, protocol: str, streams: Mapping[str, spdy.SpdyStream]
    ) -> None:
        self.session = session
        self.protocol = protocol
        self.streams = dict(streams)
        self._by_channel = {
            channel: self.streams[kind]
            for channel, kind in ((STDOUT, "stdout"), (STDERR, "stderr"), (ERROR, "error"))
            if kind in self.streams
        }

    @property
    def translated(self) -> bool:
        return False

    async def begin(self, first: int) -> None:
        return None  # a SPDY client needs no first message: its streams were replied to already

    async def send(self, channel: int, data: bytes) -> None:
        stream = self._by_channel.get(channel)
        if stream is not None and data:
            await stream.write(data)

    async def pump_input(self, sink: InputSink) -> None:
        async def copy_stdin(stream: spdy.SpdyStream) -> None:
            while chunk := await stream.read():
                await sink.feed_stdin(chunk)
            sink.close_stdin()

        async def copy_resize(stream: spdy.SpdyStream) -> None:
            while chunk := await stream.read():
                sink.feed_resize(chunk)

        tasks = []
        if "stdin" in self.streams:
            tasks.append(asyncio.create_task(copy_stdin(self.streams["stdin"])))
        if "resize" in self.streams:
            tasks.append(asyncio.create_task(copy_resize(self.streams["resize"])))
        for kind in ("error", "stdout", "stderr"):
            if kind in self.streams:
                self.streams[kind].discard_input()
        try:
            await self.session.peer_closed.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def report(self, status: dict[str, Any]) -> None:
        error = self.streams.get("error")
        if error is not None:
            if self.protocol == V4:
                # The kubelet's own status type has no metadata field (cri-streaming's streamStatus).
                kubelet_status = {k: v for k, v in status.items() if k != "metadata"}
                await error.write(json.dumps(kubelet_status, separators=(",", ":")).encode())
            elif status["status"] != "Success":
                await error.write(status["message"].encode())
        await self.close()

    async def close(self) -> None:
        # FIN on every stream, then wait for the client to hang up: it does as soon as it has read the
        # status, and closing first could reset output still in flight.
        for stream in self.streams.values():
            with contextlib.suppress(ConnectionError):
                await stream.close()
        await self.session.close(grace=_SPDY_CLOSE_GRACE)


SPDY_STREAM_TYPES = frozenset({"error", "stdin", "stdout", "stderr", "resize"})


async def accept_spdy_streams(
    session: spdy.SpdySession,
    protocol: str,
    *,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
    timeout: float = _SPDY_STREAM_CREATION_TIMEOUT,
) -> dict[str, spdy.SpdyStream]:
    """Wait for the streams a remotecommand client opens (error, then one per requested channel).

    Raises ``TimeoutError`` when they do not all arrive in time, ``ConnectionResetError`` when the client
    hangs up first.
    """
    expected = 1 + stdin + stdout + stderr + (tty and protocol in (V4, V3))
    streams: dict[str, spdy.SpdyStream] = {}
    async with asyncio.timeout(timeout):
        while len(streams) < expected:
            stream = await session.next_stream()
            if stream is None:
                raise ConnectionResetError("the client closed the connection before opening its streams")
            kind = stream.header("streamType") or ""
            if kind in SPDY_STREAM_TYPES:
                streams[kind] = stream
            else:
                log.warning("exec: unexpected SPDY stream type %r ignored", kind)
                stream.discard_input()
    return streams


class _ExecSession:
    def __init__(
        self,
        channels: ExecChannels,
        launch: LaunchSpec,
        command: list[str],
        stdin: bool,
        stdout: bool,
        stderr: bool,
        tty: bool,
        on_started: Callable[[int], None] | None,
    ) -> None:
        self.channels = channels
        self.launch = launch
        self.command = command
        self.want_stdin, self.want_stdout, self.want_stderr, self.tty = stdin, stdout, stderr, tty
        self.on_started = on_started
        self.stdin: _Stdin | None = None
        self.outputs: list[tuple[int, asyncio.StreamReader]] = []
        self.transports: list[asyncio.BaseTransport] = []
        self.fds: list[int] = []
        self.master_fd: int | None = None
        self.sized = asyncio.Event()
        self.resize = _ResizeDecoder(self._set_winsize)
        self.idle_since: dict[int, float | None] = {}
        self.proc: asyncio.subprocess.Process | None = None

    # -- what the client sends -----------------------------------------------------------------

    async def feed_stdin(self, data: bytes | memoryview) -> None:
        self.sized.set()
        if self.stdin is not None and self.want_stdin:
            await self.stdin.write(data)

    def close_stdin(self) -> None:
        if self.stdin is not None:
            self.stdin.close()

    def feed_resize(self, data: bytes | memoryview) -> None:
        self.resize.feed(data)

    async def pump_input(self) -> None:
        await self.channels.pump_input(self)

    async def send(self, channel: int, data: bytes) -> None:
        await self.channels.send(channel, data)

    async def pump_output(self, channel: int, reader: asyncio.StreamReader, forward: bool) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.idle_since[channel] = loop.time()
            data = await reader.read(_CHUNK)
            self.idle_since[channel] = None
            if not data:
                return
            if forward:
                await self.send(channel, data)

    # -- process -------------------------------------------------------------------------------

    def _set_winsize(self, width: int, height: int) -> None:
        self.sized.set()
        if self.master_fd is not None:
            # The kernel delivers SIGWINCH to the foreground process group on a change.
            fcntl.ioctl(self.master_fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def _pipe(self) -> tuple[int, int]:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        return read_fd, write_fd

    async def _connect_reader(self, fd: int) -> asyncio.StreamReader:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_CHUNK)
        transport, _ = await loop.connect_read_pipe(
            lambda: _EofOnEio(reader), os.fdopen(fd, "rb", buffering=0)
        )
        self.transports.append(transport)
        return reader

    async def _connect_stdin(self, fd: int, *, closable: bool) -> _Stdin:
        loop = asyncio.get_running_loop()
        transport, sink = await loop.connect_write_pipe(_PipeSink, os.fdopen(fd, "wb", buffering=0))
        self.transports.append(transport)
        return _Stdin(transport, sink, closable=closable)

    def _argv(self) -> list[str]:
        if not self.command:
            raise ValueError("no command specified")
        argv = [*self.launch.argv_prefix, *self.command]
        # Resolve here so a missing binary is an exec failure (as with runc) in both modes, not the
        # shim shell's exit status 127.
        if "/" not in argv[0] and shutil.which(argv[0], path=self.launch.env.get("PATH", os.defpath)) is None:
            raise FileNotFoundError(errno.ENOENT, f'exec: "{argv[0]}": executable file not found in $PATH')
        return argv

    async def _spawn_pipes(self) -> asyncio.subprocess.Process:
        child: dict[str, Any] = {}
        for name, wanted, is_input in (
            ("stdin", self.want_stdin, True),
            ("stdout", self.want_stdout, False),
            ("stderr", self.want_stderr, False),
        ):
            if not wanted:
                child[name] = subprocess.DEVNULL
                continue
            read_fd, write_fd = self._pipe()
            ours, theirs = (write_fd, read_fd) if is_input else (read_fd, write_fd)
            self.fds.append(theirs)
            child[name] = theirs
            if is_input:
                self.stdin = await self._connect_stdin(ours, closable=True)
            else:
                self.outputs.append(
                    (STDOUT if name == "stdout" else STDERR, await self._connect_reader(ours))
                )
        try:
            return await asyncio.create_subprocess_exec(
                *self._argv(),
                env=dict(self.launch.env),
                cwd=self.launch.cwd,
                start_new_session=True,
                **child,
            )
        finally:
            self._close_fds()

    async def _open_pty(self) -> str:
        master, slave = os.openpty()
        self.master_fd = master
        self.fds.append(slave)
        self.stdin = await self._connect_stdin(os.dup(master), closable=False)
        self.outputs.append((STDOUT, await self._connect_reader(os.dup(master))))
        return os.ttyname(slave)

    async def _spawn_pty(self, tty_path: str) -> asyncio.subprocess.Process:
        slave = self.fds[-1]
        try:
            return await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                _CTTY_SHIM,
                tty_path,
                *self._argv(),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=dict(self.launch.env),
                cwd=self.launch.cwd,
                start_new_session=True,
            )
        finally:
            # The master sees EOF (EIO) only once no process holds the slave, so drop ours now.
            self._close_fds()

    def _close_fds(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    # -- session -------------------------------------------------------------------------------

    async def run(self) -> None:
        input_task: asyncio.Task[None] | None = None
        output_tasks: dict[asyncio.Task[None], int] = {}
        try:
            first = STDOUT if self.want_stdout else STDERR if self.want_stderr else ERROR
            await self.channels.begin(first)
            try:
                if self.tty:
                    tty_path = await self._open_pty()
                    input_task = asyncio.create_task(self.pump_input())
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_FIRST_RESIZE_WAIT):
                            await self.sized.wait()
                    if input_task.done():
                        return
                    self.proc = await self._spawn_pty(tty_path)
                else:
                    self.proc = await self._spawn_pipes()
                    input_task = asyncio.create_task(self.pump_input())
            except (OSError, ValueError) as exc:
                await self._finish(self._internal_error(exc), input_task)
                return
            if self.on_started is not None:
                try:
                    self.on_started(self.proc.pid)
                except Exception:
                    log.exception("exec: on_started callback failed for pid %d", self.proc.pid)
            output_tasks = {
                asyncio.create_task(self.pump_output(ch, reader, ch != STDOUT or self.want_stdout)): ch
                for ch, reader in self.outputs
            }
            exit_task = asyncio.create_task(self.proc.wait())
            await asyncio.wait({exit_task, input_task}, return_when=asyncio.FIRST_COMPLETED)
            if not exit_task.done():
                # The client hung up (or ^C'd kubectl) while the command runs: kill what it started.
                self._kill()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await exit_task
                return
            await self._drain(output_tasks, input_task)
            if input_task.done():
                return  # nobody left to report to
            await self._finish(self._exit_status(exit_task.result()), input_task)
        except ConnectionError as exc:
            # Writes to a client that vanished; nothing left to tell it.
            log.debug("exec: connection lost: %s", exc)
        finally:
            self._kill()
            for task in [*output_tasks, *([input_task] if input_task else [])]:
                task.cancel()
            await asyncio.gather(*output_tasks, *([input_task] if input_task else []), return_exceptions=True)
            if self.stdin is not None:
                self.stdin.abort()
            for transport in self.transports:
                transport.close()
            self._close_fds()
            if self.master_fd is not None:
                os.close(self.master_fd)
                self.master_fd = None
            await self.channels.close()

    async def _drain(
        self, output_tasks: dict[asyncio.Task[None], int], input_task: asyncio.Task[None]
    ) -> None:
        """Forward the output left after the exit, until EOF or until only idle holders remain."""
        loop = asyncio.get_running_loop()
        pending = set(output_tasks)
        while pending and not input_task.done():
            _, pending = await asyncio.wait(pending, timeout=0.1)
            now = loop.time()
            idle = [self.idle_since.get(output_tasks[task]) for task in pending]
            # A pump waiting on a slow client is busy, not idle: only silent pipes are given up on.
            if pending and all(since is not None and now - since >= _IDLE_AFTER_EXIT for since in idle):
                break
        for task in pending:
            task.cancel()

    async def _finish(self, status: dict[str, Any], input_task: asyncio.Task[None] | None) -> None:
        # Stop reading input, then report and close.
        if input_task is not None:
            input_task.cancel()
            await asyncio.gather(input_task, return_exceptions=True)
        await self.channels.report(status)

    def _exit_status(self, returncode: int) -> dict[str, Any]:
        if returncode == 0:
            return {"metadata": {}, "status": "Success"}
        # Container runtimes report a death by signal N as 128+N.
        code = returncode if returncode > 0 else 128 - returncode
        if self.channels.translated:
            detail = f"command terminated with exit code {code}"
        else:
            detail = f"error executing command [{' '.join(self.command)}], exit code {code}"
        return {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: {detail}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }

    def _internal_error(self, exc: Exception) -> dict[str, Any]:
        reason = str(exc)
        if isinstance(exc, OSError) and exc.strerror:
            reason = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        cause = f"error executing command in container: failed to exec in container: {reason}"
        message = f"Internal error occurred: {cause}"
        if self.channels.translated:
            # The translator turns the kubelet's status into an error and wraps it once more.
            cause, message = message, f"Internal error occurred: {message}"
        return {
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "details": {"causes": [{"message": cause}]},
            "code": 500,
        }
