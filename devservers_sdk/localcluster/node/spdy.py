"""SPDY/3.1 as Kubernetes speaks it: the framing, the header compression and a session, server and client.

The API server reaches a kubelet's ``exec``, ``attach`` and ``portForward`` over SPDY whenever its client
spoke SPDY, and translates v5 WebSocket exec into SPDY too, so a node has to speak it. No maintained Python
implementation exists; this one covers exactly what Kubernetes uses (moby/spdystream under
``k8s.io/streaming/pkg/httpstream/spdy``), checked against that code:

* **Frames.** A control frame is ``1 | version 3 (15 bits) | type (16) | flags (8) | length (24) | payload``;
  a data frame is ``0 | stream id (31) | flags (8) | length (24) | data``, FIN (0x01) ending the sender's
  half of the stream. SYN_STREAM, SYN_REPLY, RST_STREAM, PING, GOAWAY and HEADERS are handled; SETTINGS and
  WINDOW_UPDATE are read and ignored, as spdystream does: there is no flow control, so a reader that stops
  reading stops the whole connection (both sides buffer a bounded amount, then wait).
* **Headers.** A block is ``uint32 count`` then length-prefixed lowercase names and values (several values
  joined by NUL), compressed by one zlib stream per direction that lives as long as the connection, primed
  with the SPDY/3 dictionary and sync-flushed per frame. Every block received must be inflated, even for a
  stream that is refused, or the two zlib streams fall out of step.
* **Streams.** The client opens odd ids, the server even ones, each larger than the last; every stream a
  peer opens is answered with SYN_REPLY (or reset when refused) before any data goes out on it. Closing a
  stream sends an empty DATA frame with FIN; resetting sends RST_STREAM (CANCEL).
* **Pings** with the peer's parity are echoed; ours are matched to their waiter.
* **Upgrade.** ``GET`` (or ``POST``) with ``Connection: Upgrade``, ``Upgrade: SPDY/3.1`` and the offered
  sub-protocols in ``X-Stream-Protocol-Version``; the server answers ``101 Switching Protocols`` naming the
  chosen one (the client's first offer that the server supports), ``400`` without the header and ``403``
  with ``X-Accepted-Stream-Protocol-Versions`` when nothing matches (``httpstream.Handshake``).

A session ends gracefully with GOAWAY once the peer has closed, so that nothing in flight is reset away.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

log = logging.getLogger(__name__)

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
# RST_STREAM status codes.
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 1, 2, 3, 5, 6
# GOAWAY status codes.
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR = 0, 1

MAX_LENGTH = 0xFFFFFF
UPGRADE = "SPDY/3.1"
HEADER_PROTOCOL_VERSION = "X-Stream-Protocol-Version"
HEADER_ACCEPTED_VERSIONS = "X-Accepted-Stream-Protocol-Versions"

# Data goes out in frames of at most this size (the format allows 16 MiB; the peer buffers whole frames).
_CHUNK = 256 * 1024
# Buffered unread data per stream before the connection's reader waits for the stream's consumer.
_STREAM_BUFFER = 1024 * 1024
_REPLY_TIMEOUT = 30.0

# The SPDY/3 header dictionary (draft-mbelshe-httpbis-spdy-00, section 2.6.10.1): length-prefixed words,
# then a run of status codes, reason phrases, dates and common values.
_DICTIONARY_WORDS = (
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


DICTIONARY = (
    b"".join(struct.pack(">I", len(word)) + word.encode() for word in _DICTIONARY_WORDS)
    + _DICTIONARY_TAIL.encode()
)

Headers = dict[str, list[str]]


class SpdyProtocolError(Exception):
    """The peer sent something that is not SPDY/3.1; the connection cannot continue."""


# -- frames ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlFrame:
    kind: int
    flags: int
    payload: bytes


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    flags: int
    data: bytes


def encode_control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise ValueError(f"SPDY control frame of {len(payload)} bytes exceeds the 24-bit length")
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def encode_data_frame(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
    if len(data) > MAX_LENGTH:
        raise ValueError(f"SPDY data frame of {len(data)} bytes exceeds the 24-bit length")
    return struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> ControlFrame | DataFrame | None:
    """The next frame, or None at a clean end of stream (between frames)."""
    try:
        head = await reader.readexactly(8)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise SpdyProtocolError("connection closed in the middle of a SPDY frame header") from None
        return None
    first, second = struct.unpack(">II", head)
    flags, length = second >> 24, second & 0xFFFFFF
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise SpdyProtocolError("connection closed in the middle of a SPDY frame") from None
    if first & 0x80000000:
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise SpdyProtocolError(f"unsupported SPDY version {version} (only 3 is spoken)")
        return ControlFrame(kind, flags, payload)
    return DataFrame(first & 0x7FFFFFFF, flags, payload)


# -- header blocks -----------------------------------------------------------------------------------


def encode_header_block(headers: Mapping[str, Iterable[str] | str]) -> bytes:
    parts = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        raw_name = name.lower().encode()
        value = values if isinstance(values, str) else "\x00".join(values)
        raw_value = value.encode()
        parts += [struct.pack(">I", len(raw_name)), raw_name, struct.pack(">I", len(raw_value)), raw_value]
    return b"".join(parts)


def decode_header_block(block: bytes) -> Headers:
    view = memoryview(block)

    def take(size: int, what: str) -> bytes:
        nonlocal view
        if len(view) < size:
            raise SpdyProtocolError(f"truncated SPDY header block (reading {what})")
        chunk, view = bytes(view[:size]), view[size:]
        return chunk

    (count,) = struct.unpack(">I", take(4, "the count"))
    headers: Headers = {}
    for _ in range(count):
        (name_length,) = struct.unpack(">I", take(4, "a name length"))
        name = take(name_length, "a name").decode("utf-8", "replace").lower()
        (value_length,) = struct.unpack(">I", take(4, "a value length"))
        value = take(value_length, "a value").decode("utf-8", "replace")
        headers.setdefault(name, []).extend(value.split("\x00"))
    return headers


class HeaderCompressor:
    """One direction's zlib stream; blocks must be compressed in the order their frames are sent."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def compress(self, headers: Mapping[str, Iterable[str] | str]) -> bytes:
        return self._zlib.compress(encode_header_block(headers)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(zdict=DICTIONARY)

    def decompress(self, data: bytes) -> Headers:
        try:
            block = self._zlib.decompress(data)
        except zlib.error as exc:
            raise SpdyProtocolError(f"undecodable SPDY header block: {exc}") from None
        return decode_header_block(block)


# -- streams and sessions ------------------------------------------------------------------------------


class ByteWriter(Protocol):
    """Where a session writes (``asyncio.StreamWriter`` fits)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


class MessageWriter:
    """A :class:`ByteWriter` over a message transport, e.g. the WebSocket of ``SPDY/3.1+portforward.k8s.io``
    tunnelling (each flush becomes one binary message).

    Writes are flushed in the background in order, so frames the session writes without draining (replies,
    pongs, resets) still go out.
    """

    def __init__(
        self, send: Callable[[bytes], Awaitable[None]], close: Callable[[], Awaitable[object]]
    ) -> None:
        self._send = send
        self._close = close
        self._pending: list[bytes] = []
        self._flushing: asyncio.Task[None] | None = None
        self._closed = False

    def write(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionResetError("the tunnel is closed")
        self._pending.append(data)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            data, self._pending = b"".join(self._pending), []
            try:
                await self._send(data)
            except Exception as exc:  # the transport is gone: so is the session
                log.debug("spdy: tunnel write failed: %s", exc)
                self._closed = True
                self._pending.clear()

    async def drain(self) -> None:
        if self._flushing is not None:
            await asyncio.shield(self._flushing)
        if self._closed:
            raise ConnectionResetError("the tunnel is closed")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            flushing = self._flushing

            async def finish() -> None:
                if flushing is not None:
                    await asyncio.gather(flushing, return_exceptions=True)
                with contextlib.suppress(Exception):
                    await self._close()

            asyncio.get_running_loop().create_task(finish())


class SpdyStream:
    """One bidirectional stream: ``read``/``write`` like a socket, ``close`` half-closes, ``reset`` aborts."""

    def __init__(self, session: SpdySession, stream_id: int, headers: Headers) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.reset_status: int | None = None
        self.remote_closed = False
        self.local_closed = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._discard = False
        self._replied: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def header(self, name: str) -> str | None:
        """The first value of a header, as Go's ``http.Header.Get`` gives it."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    async def read(self, limit: int = _CHUNK) -> bytes:
        """Up to ``limit`` bytes; ``b""`` once the peer has closed or reset its side."""
        while not self._chunks:
            if self.remote_closed or self.reset_status is not None:
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        if len(chunk) > limit:
            self._chunks.appendleft(chunk[limit:])
            chunk = chunk[:limit]
        self._buffered -= len(chunk)
        if self._buffered <= _STREAM_BUFFER:
            self._drained.set()
        return chunk

    async def read_all(self) -> bytes:
        parts = []
        while chunk := await self.read():
            parts.append(chunk)
        return b"".join(parts)

    def discard_input(self) -> None:
        """Drop whatever the peer sends on this stream (so nobody reading it cannot stall the connection)."""
        self._discard = True
        self._chunks.clear()
        self._buffered = 0
        self._drained.set()

    async def write(self, data: bytes) -> None:
        if self.reset_status is not None:
            raise ConnectionResetError(f"SPDY stream {self.id} was reset (status {self.reset_status})")
        if self.local_closed:
            raise ConnectionResetError(f"SPDY stream {self.id} is closed for writing")
        view = memoryview(data)
        for start in range(0, len(view), _CHUNK):
            self.session.send(encode_data_frame(self.id, bytes(view[start : start + _CHUNK])))
            await self.session.drain()

    async def close(self) -> None:
        """Half-close: tell the peer nothing more will be written (an empty DATA frame with FIN)."""
        if self.local_closed or self.reset_status is not None or self.session.transport_closed:
            self.local_closed = True
            return
        self.local_closed = True
        self.session.send(encode_data_frame(self.id, b"", fin=True))
        self.session.forget_if_done(self)
        await self.session.drain()

    def reset(self, status: int = CANCEL) -> None:
        both_closed = self.local_closed and self.remote_closed
        if self.reset_status is None and not both_closed and not self.session.transport_closed:
            self.session.send(encode_control_frame(RST_STREAM, 0, struct.pack(">II", self.id, status)))
        self._on_reset(status)

    # -- driven by the session's reader --

    async def _deliver(self, data: bytes) -> None:
        if self._discard or not data or self.reset_status is not None:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        self._readable.set()
        if self._buffered > _STREAM_BUFFER:
            self._drained.clear()
            await self._drained.wait()

    def _on_remote_fin(self) -> None:
        self.remote_closed = True
        self._readable.set()
        self.session.forget_if_done(self)

    def _on_reset(self, status: int) -> None:
        if self.reset_status is None:
            self.reset_status = status
        self.remote_closed = self.local_closed = True
        self._readable.set()
        self._drained.set()
        if not self._replied.done():
            self._replied.set_exception(
                ConnectionResetError(f"SPDY stream {self.id} was refused (status {status})")
            )
            self._replied.exception()  # retrieved here: nobody may be waiting for the reply any more
        self.session.forget_if_done(self)


class SpdySession:
    """One SPDY connection over a byte stream, in the server or the client role.

    Streams the peer opens are passed to ``accept``: it returns None to accept (the session answers
    SYN_REPLY and queues the stream for :meth:`next_stream`) or a reason to refuse (RST_STREAM). Call
    :meth:`start` (or await :meth:`run`) to begin reading.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: ByteWriter,
        *,
        server: bool,
        accept: Callable[[SpdyStream], str | None] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.server = server
        self._accept = accept
        self._compressor = HeaderCompressor()
        self._decompressor = HeaderDecompressor()
        self._streams: dict[int, SpdyStream] = {}
        self._next_id = 2 if server else 1
        self._next_ping = 2 if server else 1
        self._last_peer_id = 0
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._incoming: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self._drain_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.peer_closed = asyncio.Event()  # EOF, error or GOAWAY: the peer opens nothing more
        self.goaway_received = False
        self.goaway_sent = False
        self.transport_closed = False

    # -- writing --

    def send(self, frame: bytes) -> None:
        """Queue one encoded frame (synchronously, so frames keep the order their headers were compressed in)."""
        if self.transport_closed:
            raise ConnectionResetError("the SPDY connection is closed")
        self._writer.write(frame)

    async def drain(self) -> None:
        async with self._drain_lock:
            await self._writer.drain()

    def _send_control(self, kind: int, flags: int, payload: bytes) -> None:
        self.send(encode_control_frame(kind, flags, payload))

    def _send_headers_frame(
        self, kind: int, prefix: bytes, headers: Mapping[str, Iterable[str] | str], fin: bool
    ) -> None:
        # Compress and send in one synchronous step: the peer inflates blocks in arrival order.
        block = self._compressor.compress(headers)
        self._send_control(kind, FLAG_FIN if fin else 0, prefix + block)

    # -- streams --

    async def open_stream(
        self,
        headers: Mapping[str, Iterable[str] | str],
        *,
        fin: bool = False,
        timeout: float = _REPLY_TIMEOUT,
    ) -> SpdyStream:
        """Open a stream and wait for the peer's SYN_REPLY (``ConnectionResetError`` if it refuses)."""
        if self.goaway_received or self.transport_closed:
            raise ConnectionResetError("the SPDY connection is going away: no new streams")
        stream_id = self._next_id
        self._next_id += 2
        normalized = {k.lower(): ([v] if isinstance(v, str) else list(v)) for k, v in headers.items()}
        stream = SpdyStream(self, stream_id, normalized)
        self._streams[stream_id] = stream
        # Priority 0 and slot 0: nobody in Kubernetes sets them.
        self._send_headers_frame(SYN_STREAM, struct.pack(">IIBB", stream_id, 0, 0, 0), normalized, fin)
        stream.local_closed = fin
        await self.drain()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(stream._replied)
        except TimeoutError:
            stream.reset()
            raise TimeoutError(f"no SYN_REPLY for SPDY stream {stream_id} within {timeout}s") from None
        return stream

    async def next_stream(self) -> SpdyStream | None:
        """The next stream the peer opened and we accepted; None once the peer opens no more."""
        return await self._incoming.get()

    def forget_if_done(self, stream: SpdyStream) -> None:
        if stream.local_closed and stream.remote_closed and self._streams.get(stream.id) is stream:
            del self._streams[stream.id]

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    # -- session control --

    async def ping(self, timeout: float = 10.0) -> float:
        """Round-trip time of a PING, in seconds."""
        loop = asyncio.get_running_loop()
        ping_id = self._next_ping
        self._next_ping = ping_id + 2 if ping_id < 0x7FFFFFFD else (2 if self.server else 1)
        waiter: asyncio.Future[None] = loop.create_future()
        self._pings[ping_id] = waiter
        started = loop.time()
        try:
            self._send_control(PING, 0, struct.pack(">I", ping_id))
            await self.drain()
            async with asyncio.timeout(timeout):
                await waiter
        finally:
            self._pings.pop(ping_id, None)
        return loop.time() - started

    def goaway(self, status: int = GOAWAY_OK) -> None:
        if not self.goaway_sent and not self.transport_closed:
            self.goaway_sent = True
            self._send_control(GOAWAY, 0, struct.pack(">II", self._last_peer_id, status))

    async def close(self, *, grace: float = 0.0) -> None:
        """GOAWAY, then (after up to ``grace`` seconds for the peer to hang up or go away) close."""
        with contextlib.suppress(ConnectionError):
            self.goaway()
            await self.drain()
        if grace > 0:
            # The peer hangs up, or says GOAWAY too (spdystream's Close), once it has read everything.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self.peer_closed.wait()
        self._close_transport()

    def _close_transport(self) -> None:
        if not self.transport_closed:
            self.transport_closed = True
            with contextlib.suppress(Exception):
                self._writer.close()
        for stream in list(self._streams.values()):
            stream._on_reset(CANCEL)
        self._streams.clear()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="spdy session")
        return self._task

    async def run(self) -> None:
        """Read frames until the peer closes the connection."""
        try:
            while True:
                frame = await read_frame(self._reader)
                if frame is None:
                    break
                if isinstance(frame, DataFrame):
                    await self._on_data(frame)
                else:
                    self._on_control(frame)
        except SpdyProtocolError as exc:
            log.warning("spdy: %s; closing the connection", exc)
            with contextlib.suppress(ConnectionError):
                self.goaway(GOAWAY_PROTOCOL_ERROR)
        except (ConnectionError, OSError) as exc:
            log.debug("spdy: connection lost: %s", exc)
        finally:
            self.peer_closed.set()
            for stream in list(self._streams.values()):
                if not stream.remote_closed:
                    stream._on_remote_fin()
            self._incoming.put_nowait(None)
            for waiter in self._pings.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionResetError("the SPDY connection closed"))

    async def _on_data(self, frame: DataFrame) -> None:
        stream = self._streams.get(frame.stream_id)
        if stream is None or stream.remote_closed:
            return  # spdystream drops data for streams it no longer knows
        await stream._deliver(frame.data)
        if frame.flags & FLAG_FIN:
            stream._on_remote_fin()

    def _on_control(self, frame: ControlFrame) -> None:
        payload = frame.payload
        if frame.kind == SYN_STREAM:
            if len(payload) < 10:
                raise SpdyProtocolError("short SYN_STREAM frame")
            stream_id = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            headers = self._decompressor.decompress(payload[10:])
            self._on_syn_stream(stream_id, frame.flags, headers)
        elif frame.kind == SYN_REPLY:
            if len(payload) < 4:
                raise SpdyProtocolError("short SYN_REPLY frame")
            stream_id = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            headers = self._decompressor.decompress(payload[4:])
            stream = self._streams.get(stream_id)
            if stream is not None and not stream._replied.done():
                for name, values in headers.items():
                    stream.headers.setdefault(name, []).extend(values)
                stream._replied.set_result(None)
                if frame.flags & FLAG_FIN:
                    stream._on_remote_fin()
        elif frame.kind == RST_STREAM:
            if len(payload) < 8:
                raise SpdyProtocolError("short RST_STREAM frame")
            stream_id, status = struct.unpack(">II", payload[:8])
            stream = self._streams.pop(stream_id & 0x7FFFFFFF, None)
            if stream is not None:
                stream._on_reset(status)
        elif frame.kind == PING:
            if len(payload) < 4:
                raise SpdyProtocolError("short PING frame")
            (ping_id,) = struct.unpack(">I", payload[:4])
            if ping_id % 2 != self._next_ping % 2:
                self._send_control(PING, 0, payload[:4])
            else:
                waiter = self._pings.get(ping_id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        elif frame.kind == GOAWAY:
            self.goaway_received = True
            self.peer_closed.set()
            self._incoming.put_nowait(None)
        elif frame.kind == HEADERS:
            if len(payload) < 4:
                raise SpdyProtocolError("short HEADERS frame")
            stream_id = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            headers = self._decompressor.decompress(payload[4:])
            stream = self._streams.get(stream_id)
            if stream is not None:
                for name, values in headers.items():
                    stream.headers.setdefault(name, []).extend(values)
                if frame.flags & FLAG_FIN:
                    stream._on_remote_fin()
        # SETTINGS, WINDOW_UPDATE and unknown control frames are ignored, as spdystream does.

    def _on_syn_stream(self, stream_id: int, flags: int, headers: Headers) -> None:
        peer_parity = 1 if self.server else 0
        if stream_id == 0 or stream_id % 2 != peer_parity or stream_id <= self._last_peer_id:
            self.send(encode_control_frame(RST_STREAM, 0, struct.pack(">II", stream_id, PROTOCOL_ERROR)))
            return
        self._last_peer_id = stream_id
        if self.goaway_sent or self.goaway_received:
            self.send(encode_control_frame(RST_STREAM, 0, struct.pack(">II", stream_id, REFUSED_STREAM)))
            return
        stream = SpdyStream(self, stream_id, headers)
        stream._replied.set_result(None)
        self._streams[stream_id] = stream
        reason = self._accept(stream) if self._accept is not None else None
        if reason is not None:
            log.debug("spdy: stream %d refused: %s", stream_id, reason)
            stream.reset(CANCEL)
            return
        self._send_headers_frame(SYN_REPLY, struct.pack(">I", stream_id), {}, False)
        if flags & FLAG_UNIDIRECTIONAL:
            stream.local_closed = True
        if flags & FLAG_FIN:
            stream._on_remote_fin()
        self._incoming.put_nowait(stream)


# -- HTTP upgrade ----------------------------------------------------------------------------------


def offered_protocols(values: Iterable[str]) -> list[str]:
    """``X-Stream-Protocol-Version`` values, comma-separated or repeated, in the client's order."""
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


def negotiate(offered: Iterable[str], supported: Iterable[str]) -> str | None:
    """The client's first offer the server supports (``httpstream.Handshake``)."""
    supported = list(supported)
    for protocol in offered:
        if protocol in supported:
            return protocol
    return None


def is_spdy_upgrade(request: web.BaseRequest) -> bool:
    connection = ",".join(request.headers.getall("Connection", [])).lower()
    return "upgrade" in connection and UPGRADE.lower() in request.headers.get("Upgrade", "").lower()


class _UpgradedWriter:
    """Writes to the connection an aiohttp request was upgraded on."""

    def __init__(self, request: web.BaseRequest) -> None:
        self._request = request

    def write(self, data: bytes) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the upgraded connection is closed")
        transport.write(data)

    async def drain(self) -> None:
        await self._request.writer.drain()

    def close(self) -> None:
        self._request.protocol.force_close()
        transport = self._request.transport
        if transport is not None:
            transport.close()


class _FeedParser:
    """Stands in for aiohttp's payload parser: every byte after the upgrade goes to a StreamReader."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self._reader.feed_eof()


def handshake_error(request: web.BaseRequest, supported: list[str]) -> web.Response | None:
    """The response ``httpstream.Handshake`` and the SPDY upgrader give to a request they cannot take."""
    if not is_spdy_upgrade(request):
        return web.Response(
            status=400,
            text=f"unable to upgrade: missing upgrade headers in request: {dict(request.headers)!r}\n",
        )
    values = request.headers.getall(HEADER_PROTOCOL_VERSION, [])
    if not values:
        return web.Response(
            status=400,
            text=f"unable to upgrade: header {HEADER_PROTOCOL_VERSION} does not exist in request with "
            f"{len(request.headers)} headers\n",
        )
    offered = offered_protocols(values)
    if not offered:
        return web.Response(
            status=400,
            text=f"unable to upgrade: header {HEADER_PROTOCOL_VERSION} contains {values}, but no valid protocols\n",
        )
    if negotiate(offered, supported) is None:
        response = web.Response(
            status=403,
            text=f"unable to upgrade: unable to negotiate protocol: client supports [{' '.join(offered)}], "
            f"server accepts [{' '.join(supported)}]\n",
        )
        for protocol in supported:
            response.headers.add(HEADER_ACCEPTED_VERSIONS, protocol)
        return response
    return None


@dataclass(frozen=True)
class Upgraded:
    session: SpdySession
    protocol: str
    response: web.StreamResponse  # what the aiohttp handler returns once it is done with the session


async def upgrade(
    request: web.BaseRequest,
    supported: list[str],
    *,
    accept: Callable[[SpdyStream], str | None] | None = None,
) -> Upgraded:
    """Answer 101 and run a server session on the connection (call :func:`handshake_error` first).

    The handler keeps running until it is done with the session, closes it, then returns
    ``Upgraded.response``; the connection is never reused for HTTP.
    """
    protocol = negotiate(offered_protocols(request.headers.getall(HEADER_PROTOCOL_VERSION, [])), supported)
    assert protocol is not None, "call handshake_error() before upgrade()"
    reader = asyncio.StreamReader(limit=2**20)
    # From here on every byte the client sends is SPDY: take it before the 101 can reach the client.
    request.protocol.set_parser(_FeedParser(reader))  # type: ignore[arg-type]
    response = web.StreamResponse(
        status=101,
        headers={"Connection": "Upgrade", "Upgrade": UPGRADE, HEADER_PROTOCOL_VERSION: protocol},
    )
    await response.prepare(request)
    session = SpdySession(reader, _UpgradedWriter(request), server=True, accept=accept)
    session.start()
    return Upgraded(session, protocol, response)


class UpgradeRefused(Exception):
    """The server answered the SPDY upgrade with something other than 101."""

    def __init__(self, status: int, headers: Mapping[str, str], body: str) -> None:
        super().__init__(f"SPDY upgrade refused with HTTP {status}: {body.strip()}")
        self.status = status
        self.headers = headers
        self.body = body


async def dial(
    host: str,
    port: int,
    path: str,
    protocols: list[str],
    *,
    ssl_context: ssl.SSLContext | None = None,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
) -> tuple[SpdySession, str]:
    """Client role: upgrade ``path`` on ``host:port`` to SPDY offering ``protocols``; returns the session
    (already reading) and the protocol the server chose. Raises :class:`UpgradeRefused` otherwise."""
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context, limit=2**20)
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Connection: Upgrade",
        f"Upgrade: {UPGRADE}",
        "Content-Length: 0",
    ]
    lines += [f"{HEADER_PROTOCOL_VERSION}: {p}" for p in protocols]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        writer.close()
        raise ConnectionResetError(f"no HTTP response to the SPDY upgrade of {path}") from exc
    status_line, *header_lines = raw.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    response_headers: dict[str, str] = {}
    for line in header_lines:
        if ":" in line:
            name, _, value = line.partition(":")
            response_headers.setdefault(name.strip().lower(), value.strip())
    if status != 101:
        body = b""
        length = response_headers.get("content-length")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                body = await (reader.readexactly(int(length)) if length else reader.read(65536))
        writer.close()
        raise UpgradeRefused(status, response_headers, body.decode("utf-8", "replace"))
    chosen = response_headers.get(HEADER_PROTOCOL_VERSION.lower(), "")
    session = SpdySession(reader, writer, server=False)
    session.start()
    return session, chosen
