"""The ``pods/log`` subresource: a container's CRI log file served as the kubelet serves it.

``kubectl logs``, the Python client's ``read_namespaced_pod_log`` and kopf read plain text, so what
matters is the exact text and the end-of-stream behaviour. Mirrored from the kubelet
(``pkg/kubelet/kuberuntime/logs/logs.go``) and the API server (``pkg/registry/core/pod/rest/log.go``):

* The file holds CRI records ``<RFC3339Nano> <stdout|stderr> <tag> <text>``; tag ``F`` ends a line,
  ``P`` marks a partial line whose newline was not written, so the pieces join into one line. Records
  that do not parse are skipped. The body is ``text/plain``.
* ``timestamps=true`` prefixes the record's time re-formatted as RFC3339 with exactly nine fractional
  digits (``RFC3339NanoFixed``): ``2026-01-01T00:00:00.123456789Z hello``.
* ``tailLines`` counts from the end of the file, ``limitBytes`` cuts the output (timestamps included)
  mid-line if need be and ends the stream, ``sinceSeconds``/``sinceTime`` drop records older than
  ``max(now - sinceSeconds, sinceTime)``.
* ``follow=true`` keeps reading at end of file (the kubelet wakes on inotify or every second; we poll
  every 100 ms), reopens the path when the file was replaced (rotation) and ends once the container is
  found not running at end of file, after reading what it wrote last.
* Validation is the API server's: a ``tailLines`` below 0 (``kubectl logs --tail=-1`` simply omits
  it), a ``limitBytes`` or ``sinceSeconds`` below 1, or both ``sinceSeconds`` and ``sinceTime``, is a
  422 ``PodLogOptions "<pod>" is invalid``; a value that does not parse is a 400. Booleans follow the
  query conversion (only absent, ``0`` and ``false`` are false).

Deliberate differences: the kubelet counts ``tailLines`` in records and stamps every partial record;
here a logical (joined) line is the unit for both, so a long line split by the runtime is neither cut
by ``tailLines`` nor interrupted by timestamps, and ``sinceTime`` applies to the line's first record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from ..apiserver import errors

log = logging.getLogger(__name__)

_READ = 256 * 1024
_POLL = 0.1


class LogSource(Protocol):
    """One container's logs: where the kubelet writes them and whether it is still running."""

    def log_path(self, previous: bool = False) -> Path: ...

    def container_running(self) -> bool: ...


class KubeletLogs(Protocol):
    """The kubelet's side of :class:`LogSource` for every container it runs."""

    def log_path(self, namespace: str, pod_name: str, container: str, previous: bool = False) -> Path: ...

    def container_running(self, namespace: str, pod_name: str, container: str) -> bool: ...


@dataclass(frozen=True)
class ContainerLogSource:
    """A :class:`LogSource` for one container of a kubelet."""

    kubelet: KubeletLogs
    namespace: str
    pod_name: str
    container: str

    def log_path(self, previous: bool = False) -> Path:
        return self.kubelet.log_path(self.namespace, self.pod_name, self.container, previous=previous)

    def container_running(self) -> bool:
        return self.kubelet.container_running(self.namespace, self.pod_name, self.container)


# -- query ---------------------------------------------------------------------------------------


def _query_bool(value: str | None) -> bool:
    return value is not None and not (value == "0" or value.lower() == "false")


def _query_int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return int(raw, 10)
    except ValueError:
        raise errors.bad_request(
            f'invalid value for query parameter "{name}": strconv.ParseInt: parsing "{raw}": invalid syntax'
        ) from None


def parse_rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time (``Z`` or offset, optional fraction)."""
    if len(text) < 20 or text[10] not in "Tt":
        raise ValueError(text)
    head, rest = text[:19], text[19:]
    fraction = ""
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        fraction, rest = rest[1:end], rest[end:]
        if not fraction:
            raise ValueError(text)
    if rest in ("Z", "z"):
        rest = "+00:00"
    if len(rest) != 6 or rest[0] not in "+-":
        raise ValueError(text)
    seconds = int(datetime.fromisoformat(head + rest).timestamp())
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


_parse_rfc3339_ns = parse_rfc3339_ns  # its earlier, private name


def parse_log_query(query: Mapping[str, str], *, pod_name: str = "") -> dict[str, Any]:
    """Validate a ``pods/log`` query into the keyword arguments of :func:`serve_logs` (minus ``source``).

    ``container`` is not included: resolve it into the :class:`LogSource`.
    """
    options: dict[str, Any] = {
        "follow": _query_bool(query.get("follow")),
        "previous": _query_bool(query.get("previous")),
        "timestamps": _query_bool(query.get("timestamps")),
        "tail_lines": _query_int(query, "tailLines"),
        "limit_bytes": _query_int(query, "limitBytes"),
        "since_seconds": _query_int(query, "sinceSeconds"),
        "since_time": query.get("sinceTime") or None,
    }
    if options["since_time"] is not None:
        try:
            parse_rfc3339_ns(options["since_time"])
        except ValueError:
            raise errors.bad_request(
                f'invalid value for query parameter "sinceTime": parsing time "{options["since_time"]}" '
                'as "2006-01-02T15:04:05Z07:00": not an RFC 3339 time'
            ) from None
    causes = []
    if options["tail_lines"] is not None and options["tail_lines"] < 0:
        causes.append(
            errors.cause(
                "tailLines", f"Invalid value: {options['tail_lines']}: must be greater than or equal to 0"
            )
        )
    if options["limit_bytes"] is not None and options["limit_bytes"] < 1:
        causes.append(
            errors.cause("limitBytes", f"Invalid value: {options['limit_bytes']}: must be greater than 0")
        )
    if options["since_seconds"] is not None and options["since_time"] is not None:
        causes.append(
            errors.cause(
                "",
                "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
                reason="FieldValueForbidden",
            )
        )
    elif options["since_seconds"] is not None and options["since_seconds"] < 1:
        causes.append(
            errors.cause("sinceSeconds", f"Invalid value: {options['since_seconds']}: must be greater than 0")
        )
    if causes:
        raise errors.invalid("PodLogOptions", pod_name, causes)
    return options


# -- CRI records ---------------------------------------------------------------------------------


def _is_partial(record: bytes) -> bool:
    fields = record.split(b" ", 3)
    return len(fields) >= 3 and fields[2].split(b":", 1)[0] == b"P"


def _fixed_timestamp(ts: bytes) -> bytes:
    """``RFC3339NanoFixed``: always nine fractional digits, ``Z`` for UTC."""
    if len(ts) == 30 and ts[19:20] == b"." and ts[29:30] == b"Z":
        return ts
    head, rest = ts[:19], ts[19:]
    fraction = b""
    if rest[:1] == b".":
        end = 1
        while end < len(rest) and rest[end : end + 1].isdigit():
            end += 1
        fraction, rest = rest[1:end], rest[end:]
    if rest in (b"z", b"+00:00", b"-00:00"):
        rest = b"Z"
    return head + b"." + (fraction + b"000000000")[:9] + rest


class _Formatter:
    """Turns CRI records into the text the kubelet streams, applying since/timestamps/limit."""

    def __init__(self, *, timestamps: bool, since_ns: int | None, limit_bytes: int | None) -> None:
        self.timestamps = timestamps
        self.since_ns = since_ns
        self.remaining = limit_bytes
        self.at_line_start = True
        self.include = True
        self._second_cache: tuple[bytes, int] = (b"", 0)

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def _ts_ns(self, ts: bytes) -> int | None:
        head = ts[:19]
        rest = ts[19:]
        fraction = b""
        if rest[:1] == b".":
            end = 1
            while end < len(rest) and rest[end : end + 1].isdigit():
                end += 1
            fraction, rest = rest[1:end], rest[end:]
        key = head + rest
        if self._second_cache[0] != key:
            try:
                zone = "+00:00" if rest in (b"Z", b"z") else rest.decode()
                seconds = int(datetime.fromisoformat(head.decode() + zone).timestamp())
            except ValueError:
                return None
            self._second_cache = (key, seconds)
        return self._second_cache[1] * 1_000_000_000 + int((fraction + b"000000000")[:9])

    def feed(self, records: bytes, *, final_fragment: bool = False) -> bytes:
        """Format ``records`` (complete, newline-terminated, or one unterminated final fragment)."""
        out: list[bytes] = []
        lines = [records] if final_fragment else records.split(b"\n")[:-1]
        for line in lines:
            fields = line.split(b" ", 3)
            if len(fields) < 3 or fields[1] not in (b"stdout", b"stderr") or len(fields[0]) < 20:
                continue  # the kubelet skips records it cannot parse
            ts, tag = fields[0], fields[2]
            partial = tag != b"F" and tag.split(b":", 1)[0] == b"P"
            if self.at_line_start:
                if self.since_ns is not None:
                    ns = self._ts_ns(ts)
                    if ns is None:
                        continue
                    self.include = ns >= self.since_ns
                if self.include and self.timestamps:
                    out.append(_fixed_timestamp(ts) + b" ")
            if self.include:
                if len(fields) == 4:
                    out.append(fields[3])
                if not partial and not final_fragment:
                    out.append(b"\n")
            self.at_line_start = not partial
        data = b"".join(out)
        if self.remaining is not None:
            data = data[: self.remaining]
            self.remaining -= len(data)
        return data


def _tail_offset(fd: int, lines: int | None) -> int:
    """Offset of the first record of the last ``lines`` logical lines (None: the whole file).

    Scans backwards in blocks so huge logs cost only what is shown. An unterminated record at the end
    is being written; it is not counted but is read from its start.
    """
    size = os.fstat(fd).st_size
    if lines is None or size == 0:
        return 0
    block = os.pread(fd, min(size, _READ), size - min(size, _READ))
    buffer_start = size - len(block)
    buffer = block
    last_newline = buffer.rfind(b"\n")
    while last_newline == -1 and buffer_start > 0:
        read = min(buffer_start, _READ)
        buffer_start -= read
        buffer = os.pread(fd, read, buffer_start) + buffer
        last_newline = buffer.rfind(b"\n")
    if last_newline == -1:
        return 0
    end = buffer_start + last_newline + 1  # just after the last complete record
    if lines == 0:
        return end
    record_end = end
    newest = True
    seen = 0
    while True:
        # Find the newline ending the record before the one that ends at record_end.
        cut = buffer.rfind(b"\n", 0, record_end - 1 - buffer_start)
        if cut == -1 and buffer_start > 0:
            read = min(buffer_start, _READ)
            buffer_start -= read
            buffer = os.pread(fd, read, buffer_start) + buffer
            continue
        record_start = buffer_start + cut + 1
        record = buffer[cut + 1 : record_end - buffer_start]
        # A full record that is not the newest one ends a line: the next line starts after it.
        if not newest and not _is_partial(record):
            seen += 1
            if seen == lines:
                return record_end
        newest = False
        if cut == -1:
            return 0
        record_end = record_start
        buffer = buffer[: cut + 1]


# -- serving -------------------------------------------------------------------------------------


class _LogFile:
    """A cursor on the log file that notices rotation (a new file at the path) and truncation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.offset = 0
        self.identity: tuple[int, int] | None = None

    def open(self, tail_lines: int | None) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        st = os.fstat(fd)
        self.fd, self.identity = fd, (st.st_dev, st.st_ino)
        self.offset = _tail_offset(fd, tail_lines)
        return True

    def read(self) -> bytes:
        assert self.fd is not None
        data = os.pread(self.fd, _READ, self.offset)
        self.offset += len(data)
        return data

    def replaced(self, path: Path) -> bool:
        """True when ``path`` now names another file, or ours shrank below what we read."""
        assert self.fd is not None
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        if (st.st_dev, st.st_ino) != self.identity or path != self.path:
            return True
        if st.st_size < self.offset:
            self.offset = 0  # copytruncate: start over on the same file
            return False
        return False

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _status_response(err: errors.StatusError) -> web.Response:
    return web.json_response(err.to_status(), status=err.code, headers=err.headers)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def serve_logs(
    request: web.Request,
    *,
    source: LogSource,
    follow: bool,
    tail_lines: int | None,
    timestamps: bool,
    limit_bytes: int | None,
    since_seconds: int | None,
    since_time: str | None,
    previous: bool,
) -> web.StreamResponse:
    """Stream the container's log as ``text/plain`` (see the module docstring for the semantics)."""
    try:
        path = source.log_path(previous)
    except errors.StatusError as err:
        return _status_response(err)
    since_ns: int | None = None
    if since_seconds is not None:
        since_ns = time.time_ns() - since_seconds * 1_000_000_000
    if since_time is not None:
        since_ns = max(since_ns or 0, parse_rfc3339_ns(since_time))
    formatter = _Formatter(timestamps=timestamps, since_ns=since_ns, limit_bytes=limit_bytes)
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    cursor = _LogFile(path)
    try:
        await _stream(request, response, loop, source, cursor, formatter, follow and not previous, tail_lines)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
    except ConnectionError:
        log.debug("logs: client went away")
    finally:
        cursor.close()
    return response


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    loop: asyncio.AbstractEventLoop,
    source: LogSource,
    cursor: _LogFile,
    formatter: _Formatter,
    follow: bool,
    tail_lines: int | None,
) -> None:
    # File I/O goes to the executor: a log can be large and the event loop serves everyone else.
    while not await loop.run_in_executor(None, cursor.open, tail_lines):
        if not follow or not source.container_running() or _client_gone(request):
            return
        await asyncio.sleep(_POLL)
    pending = b""
    stopping = False
    while True:
        data = await loop.run_in_executor(None, cursor.read)
        if data:
            pending += data
            cut = pending.rfind(b"\n") + 1
            if cut:
                text = formatter.feed(pending[:cut])
                pending = pending[cut:]
                if text:
                    await response.write(text)
                if formatter.exhausted:
                    return
            continue
        if not follow:
            if pending:
                await response.write(formatter.feed(pending, final_fragment=True))
            return
        if stopping or _client_gone(request):
            return
        # Like waitLogs: a container found stopped at EOF gets one more pass for its last words.
        if not source.container_running():
            stopping = True
            continue
        current = cursor.path
        with contextlib.suppress(errors.StatusError):
            current = source.log_path(False)
        if await loop.run_in_executor(None, cursor.replaced, current):
            cursor.close()
            cursor.path = current
            await loop.run_in_executor(None, cursor.open, None)
            pending = b""
            continue
        await asyncio.sleep(_POLL)
