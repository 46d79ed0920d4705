"""``client.port_forward``: a local TCP port whose connections reach a port of a DevServer's pod.

Each local connection gets its own ``pods/portforward`` WebSocket (``Kube.port_forward``), relayed by a
thread of its own with the same non-blocking loop as exec, so a slow or stuck connection never holds up
another and 50 browsers' worth of parallel requests are 50 independent streams. A connection the pod
refuses (nothing listening yet, a crashed server) is reported through ``on_error`` and closed; the
forward itself keeps listening, unlike ``kubectl port-forward``, which gives up on the first refusal.

The pod is looked up once, at start; a connection that finds it gone (restarted, rescheduled) looks it up
again, so a forward survives ``devctl stop``/``start`` of a single-pod server.

While the forward is open it records activity on the DevServer (``activity.ActivityHeartbeat``): a
forwarded JupyterLab or TensorBoard in use is a server in use.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple

from ..activity import ActivityHeartbeat
from ..errors import DevServerError, InvalidSpecError, NotFoundError

if TYPE_CHECKING:
    from ..kube import ExecSession
    from .target import ConnectClient

log = logging.getLogger(__name__)

DATA_CHANNEL, ERROR_CHANNEL = 0, 1
_BACKLOG_LIMIT = 4 * 1024 * 1024
_RECV_SIZE = 256 * 1024

ErrorCallback = Callable[[str], None]


class LocalAddress(NamedTuple):
    """Where a forward listens: ``(host, port)``, usable wherever a socket address is."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """``http://host:port`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _log_error(message: str) -> None:
    log.warning("%s", message)


class PortForward:
    """A listening local socket that forwards every connection to ``remote_port`` of one pod.

    Use it as a context manager (``DevServerClient.port_forward`` returns one, started): entering gives
    the ``LocalAddress``; leaving stops listening and hangs up every open connection.

    Attributes:
        address: the local ``(host, port)`` it listens on.
        connections: how many connections it has accepted so far.
        errors: the messages of connections that failed (the pod refused, the stream broke).
    """

    def __init__(self, client: ConnectClient, name: str, remote_port: int, *, local_port: int = 0,
                 rank: int = 0, address: str = "127.0.0.1", on_error: ErrorCallback | None = None) -> None:
        if not isinstance(remote_port, int) or not 0 < remote_port < 65536:
            raise InvalidSpecError(f"remote_port must be a TCP port (1-65535), got {remote_port!r}.",
                                   field="remote_port")
        if not isinstance(local_port, int) or not 0 <= local_port < 65536:
            raise InvalidSpecError(f"local_port must be 0 (any free port) or a TCP port, got {local_port!r}.",
                                   field="local_port")
        self._client = client
        self.name = name
        self.remote_port = remote_port
        self.rank = rank
        self._on_error = on_error or _log_error
        self._pod = client.running_pod(name, rank)
        self._listener = self._listen(address, local_port)
        host, port = self._listener.getsockname()[:2]
        self.address = LocalAddress(host, port)
        self.connections = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._sessions: set[ExecSession] = set()
        self._closed = threading.Event()
        self._heartbeat = ActivityHeartbeat(lambda: client.record_activity(name, "port-forward")).__enter__()
        self._acceptor = threading.Thread(target=self._accept, name=f"port-forward-{port}", daemon=True)
        self._acceptor.start()

    def _listen(self, address: str, port: int) -> socket.socket:
        try:
            infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise InvalidSpecError(f"Cannot listen on address {address!r}: {exc.strerror}. Use an IP address such "
                                   f"as 127.0.0.1 or 0.0.0.0.", field="address") from exc
        family, _, _, _, sockaddr = infos[0]
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(sockaddr)
            listener.listen(128)
        except OSError as exc:
            listener.close()
            if exc.errno == errno.EADDRINUSE:
                raise InvalidSpecError(f"Local port {port} on {address} is already in use. Pick another, or 0 for "
                                       f"any free port.", field="local_port") from exc
            raise InvalidSpecError(f"Cannot listen on {address}:{port}: {exc.strerror}.", field="address") from exc
        return listener

    # -- the life of a connection --------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), name="port-forward-conn", daemon=True).start()

    def _open(self) -> ExecSession:
        kube, namespace = self._client.kube, self._client.namespace
        try:
            return kube.port_forward(namespace, self._pod, self.remote_port)
        except NotFoundError:
            self._pod = self._client.running_pod(self.name, self.rank)  # restarted under another name
            return kube.port_forward(namespace, self._pod, self.remote_port)

    def _serve(self, conn: socket.socket) -> None:
        try:
            try:
                session = self._open()
            except DevServerError as exc:
                self._report(str(exc))
                return
            with self._lock:
                if self._closed.is_set():
                    session.close()
                    return
                self._sessions.add(session)
            try:
                failure = _relay(conn, session)
            except (OSError, DevServerError) as exc:
                failure = f"the connection broke: {exc}"
            finally:
                session.close()
                with self._lock:
                    self._sessions.discard(session)
            if failure:
                self._report(f"Port-forward {self.address.port} -> DevServer '{self.name}' rank {self.rank} port "
                             f"{self.remote_port}: {failure}")
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _report(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)
        with contextlib.suppress(Exception):  # a faulty callback must not end the forward
            self._on_error(message)

    # -- lifetime ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening and hang up every open connection."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            with contextlib.suppress(OSError):
                session.sock.shutdown(socket.SHUT_RDWR)  # the relay thread wakes up and closes it
        self._acceptor.join(5)
        self._heartbeat.__exit__(None, None, None)

    @property
    def closed(self) -> bool:
        """Whether ``close`` has run (the forward no longer listens)."""
        return self._closed.is_set()

    def wait(self) -> None:
        """Block until ``close`` (from another thread or a signal handler), e.g. in ``devctl port-forward``."""
        while not self._closed.wait(3600):
            pass

    def __enter__(self) -> LocalAddress:
        return self.address

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _relay(conn: socket.socket, session: ExecSession) -> str | None:
    """Copy both ways until either side ends; return the kubelet's error text, if it sent one."""
    prefix_left = {DATA_CHANNEL: 2, ERROR_CHANNEL: 2}
    error = b""
    reading = True
    conn.setblocking(True)
    local = conn.fileno()
    while not session.closed:
        fds = [local] if reading and session.backlog < _BACKLOG_LIMIT else []
        messages, ready = session.pump(None, read_fds=fds)
        if local in ready:
            try:
                data = conn.recv(_RECV_SIZE)
            except ConnectionError:
                data = b""
            if not data:
                # The channel protocol has no half-close: the local side is done, so is the stream.
                reading = False
                break
            session.send(DATA_CHANNEL, data)
        for channel, payload in messages:
            skip = prefix_left.get(channel, 0)
            if skip:
                taken = min(skip, len(payload))
                prefix_left[channel] = skip - taken
                payload = payload[taken:]
            if not payload:
                continue
            if channel == DATA_CHANNEL:
                try:
                    conn.sendall(payload)
                except OSError:
                    return None  # the local client left
            elif channel == ERROR_CHANNEL:
                error += payload
    if error:
        return error.decode("utf-8", "replace").strip()
    return None

