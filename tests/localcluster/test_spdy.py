"""SPDY/3.1 framing, header compression and sessions (``node/spdy.py``), our client against our server.

Interoperability with the Go implementation (client-go over moby/spdystream) is tested in
``test_kubelet_api.py``; here the byte layouts are pinned down from the spec, and the session behaviours
(replies, half-close, reset, ping, refusals) are driven over a socket pair or a real aiohttp upgrade.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from devservers_sdk.localcluster.node import spdy


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


# -- constants and frames ----------------------------------------------------------------------------


def test_dictionary_is_the_spdy3_one() -> None:
    # The SPDY/3 draft's dictionary is 1423 bytes; its digest pins every byte.
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == (
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
    )
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"utf-,*,enq=0.")


def test_control_and_data_frame_layout() -> None:
    ping = spdy.encode_control_frame(spdy.PING, 0, struct.pack(">I", 7))
    assert ping == bytes([0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 7])
    data = spdy.encode_data_frame(5, b"abc", fin=True)
    assert data == bytes([0, 0, 0, 5, 0x01, 0, 0, 3]) + b"abc"
    assert spdy.encode_data_frame(0x7FFFFFFF, b"")[:4] == b"\x7f\xff\xff\xff"
    with pytest.raises(ValueError, match="24-bit"):
        spdy.encode_data_frame(1, b"x" * (spdy.MAX_LENGTH + 1))


async def _frames_of(raw: bytes) -> list[Any]:
    reader = asyncio.StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    frames = []
    while (frame := await spdy.read_frame(reader)) is not None:
        frames.append(frame)
    return frames


def test_reading_frames_back() -> None:
    raw = (
        spdy.encode_control_frame(spdy.RST_STREAM, 0, struct.pack(">II", 3, spdy.CANCEL))
        + spdy.encode_data_frame(3, b"payload", fin=True)
        + spdy.encode_control_frame(spdy.SETTINGS, 1, struct.pack(">I", 0))
    )
    frames = run(_frames_of(raw))
    assert frames == [
        spdy.ControlFrame(spdy.RST_STREAM, 0, struct.pack(">II", 3, spdy.CANCEL)),
        spdy.DataFrame(3, spdy.FLAG_FIN, b"payload"),
        spdy.ControlFrame(spdy.SETTINGS, 1, b"\x00\x00\x00\x00"),
    ]


def test_refused_version_and_truncation() -> None:
    spdy2 = struct.pack(">HHI", 0x8000 | 2, spdy.PING, 4) + b"\x00\x00\x00\x01"
    with pytest.raises(spdy.SpdyProtocolError, match="unsupported SPDY version 2"):
        run(_frames_of(spdy2))
    with pytest.raises(spdy.SpdyProtocolError, match="middle of a SPDY frame"):
        run(_frames_of(spdy.encode_data_frame(1, b"abcdef")[:-2]))
    with pytest.raises(spdy.SpdyProtocolError, match="frame header"):
        run(_frames_of(b"\x80\x03"))


# -- header blocks -----------------------------------------------------------------------------------


def test_header_block_layout() -> None:
    block = spdy.encode_header_block({"StreamType": "error", "Multi": ["a", "b"]})
    assert block == (
        b"\x00\x00\x00\x02"
        + b"\x00\x00\x00\x0astreamtype\x00\x00\x00\x05error"
        + b"\x00\x00\x00\x05multi\x00\x00\x00\x03a\x00b"
    )
    assert spdy.decode_header_block(block) == {"streamtype": ["error"], "multi": ["a", "b"]}
    with pytest.raises(spdy.SpdyProtocolError, match="truncated"):
        spdy.decode_header_block(block[:-1])


def test_header_compression_is_one_stream_per_direction() -> None:
    compressor, decompressor = spdy.HeaderCompressor(), spdy.HeaderDecompressor()
    headers = {"streamtype": ["stdout"], "port": ["8080"], "requestid": ["0"]}
    first = compressor.compress(headers)
    second = compressor.compress(headers)
    # The zlib header announces the preset dictionary by its Adler-32, as the spec requires.
    assert first[0] & 0x0F == 8 and first[1] & 0x20
    assert struct.unpack(">I", first[2:6])[0] == zlib.adler32(spdy.DICTIONARY)
    # The second block refers back to the first: it is smaller, and only the same stream can inflate it.
    assert len(second) < len(first)
    assert decompressor.decompress(first) == headers
    assert decompressor.decompress(second) == headers
    with pytest.raises(spdy.SpdyProtocolError):
        spdy.HeaderDecompressor().decompress(second)


# -- sessions over a socket pair ---------------------------------------------------------------------


@asynccontextmanager
async def session_pair(
    accept: Callable[[spdy.SpdyStream], str | None] | None = None,
) -> AsyncIterator[tuple[spdy.SpdySession, spdy.SpdySession]]:
    a, b = socket.socketpair()
    client_reader, client_writer = await asyncio.open_connection(sock=a)
    server_reader, server_writer = await asyncio.open_connection(sock=b)
    client = spdy.SpdySession(client_reader, client_writer, server=False)
    server = spdy.SpdySession(server_reader, server_writer, server=True, accept=accept)
    client.start()
    server.start()
    try:
        yield client, server
    finally:
        await client.close()
        await server.close()


def test_streams_carry_data_both_ways_with_half_close() -> None:
    async def scenario() -> None:
        async with session_pair() as (client, server):
            stream = await client.open_stream({"streamType": "stdin", "port": ["1", "2"]})
            accepted = await server.next_stream()
            assert accepted is not None and accepted.id == stream.id == 1
            assert accepted.header("streamtype") == "stdin" and accepted.headers["port"] == ["1", "2"]
            big = bytes(range(256)) * 5000  # more than one frame's worth
            await stream.write(big)
            await stream.close()
            assert await accepted.read_all() == big
            # Our half is closed, the server's is not: it can still answer.
            await accepted.write(b"answer")
            await accepted.close()
            assert await stream.read_all() == b"answer"
            with pytest.raises(ConnectionResetError):
                await stream.write(b"too late")
            second = await client.open_stream({"streamType": "stdout"})
            assert second.id == 3
            assert client.open_streams == 1  # the first is done on both sides

    run(scenario())


def test_ping_both_ways() -> None:
    async def scenario() -> None:
        async with session_pair() as (client, server):
            assert await client.ping() >= 0
            assert await server.ping() >= 0

    run(scenario())


def test_refused_stream_is_reset_and_the_session_goes_on() -> None:
    def accept(stream: spdy.SpdyStream) -> str | None:
        return None if stream.header("streamType") == "data" else "bad stream type"

    async def scenario() -> None:
        async with session_pair(accept) as (client, server):
            with pytest.raises(ConnectionResetError, match="refused"):
                await client.open_stream({"streamType": "bogus"})
            good = await client.open_stream({"streamType": "data"})
            accepted = await server.next_stream()
            assert accepted is not None and accepted.id == good.id

    run(scenario())


def test_reset_mid_stream_wakes_the_reader_and_stops_the_writer() -> None:
    async def scenario() -> None:
        async with session_pair() as (client, server):
            stream = await client.open_stream({"streamType": "data"})
            accepted = await server.next_stream()
            assert accepted is not None
            reading = asyncio.create_task(accepted.read())
            await asyncio.sleep(0)
            stream.reset()
            assert await reading == b""
            assert accepted.reset_status == spdy.CANCEL
            with pytest.raises(ConnectionResetError, match="reset"):
                await accepted.write(b"x")
            # The connection is still good for other streams.
            assert await client.ping() >= 0

    run(scenario())


def test_settings_and_window_update_are_ignored_and_bad_ids_reset() -> None:
    async def scenario() -> None:
        a, b = socket.socketpair()
        raw_reader, raw_writer = await asyncio.open_connection(sock=a)
        server_reader, server_writer = await asyncio.open_connection(sock=b)
        server = spdy.SpdySession(server_reader, server_writer, server=True)
        server.start()
        compressor, decompressor = spdy.HeaderCompressor(), spdy.HeaderDecompressor()
        raw_writer.write(spdy.encode_control_frame(spdy.SETTINGS, 0, struct.pack(">III", 1, 4, 100)))
        raw_writer.write(spdy.encode_control_frame(spdy.WINDOW_UPDATE, 0, struct.pack(">II", 1, 65536)))
        # An even id is the server's to use: the client may not open it.
        raw_writer.write(
            spdy.encode_control_frame(
                spdy.SYN_STREAM, 0, struct.pack(">IIBB", 2, 0, 0, 0) + compressor.compress({"a": "b"})
            )
        )
        raw_writer.write(
            spdy.encode_control_frame(
                spdy.SYN_STREAM, 0, struct.pack(">IIBB", 1, 0, 0, 0) + compressor.compress({"a": "c"})
            )
        )
        raw_writer.write(spdy.encode_control_frame(spdy.PING, 0, struct.pack(">I", 9)))
        rst = await spdy.read_frame(raw_reader)
        assert rst == spdy.ControlFrame(spdy.RST_STREAM, 0, struct.pack(">II", 2, spdy.PROTOCOL_ERROR))
        reply = await spdy.read_frame(raw_reader)
        assert isinstance(reply, spdy.ControlFrame) and reply.kind == spdy.SYN_REPLY
        assert struct.unpack(">I", reply.payload[:4])[0] == 1
        assert decompressor.decompress(reply.payload[4:]) == {}
        pong = await spdy.read_frame(raw_reader)
        assert pong == spdy.ControlFrame(spdy.PING, 0, struct.pack(">I", 9))
        accepted = await server.next_stream()
        assert accepted is not None and accepted.headers == {"a": ["c"]}
        raw_writer.write(spdy.encode_control_frame(spdy.GOAWAY, 0, struct.pack(">II", 1, 0)))
        assert await server.next_stream() is None
        raw_writer.close()
        await server.close()

    run(scenario())


# -- the HTTP upgrade ----------------------------------------------------------------------------------


@asynccontextmanager
async def upgrade_server() -> AsyncIterator[int]:
    async def handler(request: web.Request) -> web.StreamResponse:
        supported = ["v4.channel.k8s.io", "v3.channel.k8s.io"]
        refusal = spdy.handshake_error(request, supported)
        if refusal is not None:
            return refusal
        upgraded = await spdy.upgrade(request, supported)
        stream = await upgraded.session.next_stream()
        assert stream is not None
        await stream.write(f"{upgraded.protocol} {await stream.read_all()!r}".encode())
        await stream.close()
        await upgraded.session.close(grace=5)
        return upgraded.response

    app = web.Application()
    app.router.add_post("/echo", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port
    finally:
        await runner.cleanup()


def test_upgrade_negotiates_the_clients_first_supported_protocol() -> None:
    async def scenario() -> None:
        async with upgrade_server() as port:
            session, protocol = await spdy.dial(
                "127.0.0.1", port, "/echo", ["v5.channel.k8s.io", "v3.channel.k8s.io", "v4.channel.k8s.io"]
            )
            assert protocol == "v3.channel.k8s.io"
            stream = await session.open_stream({"streamType": "stdin"})
            await stream.write(b"hello")
            await stream.close()
            assert await stream.read_all() == b"v3.channel.k8s.io b'hello'"
            await session.close(grace=5)

    run(scenario())


def test_upgrade_refusals() -> None:
    async def scenario() -> None:
        async with upgrade_server() as port:
            with pytest.raises(spdy.UpgradeRefused) as info:
                await spdy.dial("127.0.0.1", port, "/echo", ["v2.channel.k8s.io"])
            assert info.value.status == 403
            assert "unable to negotiate protocol" in info.value.body
            assert info.value.headers["x-accepted-stream-protocol-versions"] == "v4.channel.k8s.io"
            with pytest.raises(spdy.UpgradeRefused) as info:
                await spdy.dial("127.0.0.1", port, "/echo", [])
            assert info.value.status == 400
            assert "X-Stream-Protocol-Version does not exist" in info.value.body

    run(scenario())
