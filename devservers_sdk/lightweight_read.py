"""``devctl list`` without the ``kubernetes`` client or pydantic: one HTTPS GET with the standard library.

Why: a whole ``devctl list`` used to cost about 340 ms, of which ~90 ms was importing ``kubernetes`` and
~150 ms importing pydantic and the models, against ~60 ms for ``kubectl get devservers`` (issue 5 asks
for at most 1.5x). Listing needs neither: this module reads the kubeconfig (``kubeconfig_yaml`` for the
plain style kubeconfig writers use, which saves importing PyYAML; PyYAML with libyaml's C loader for anything
else), resolves context and namespace by the rules of ``settings``, sends one GET over ``ssl`` and a socket,
and returns the DevServers as the manifests the server sent, for ``devctl``'s renderer.
``http.client`` is not used on purpose: its ``email`` header parser costs ~10 ms to import, a sixth of
the budget, and a ``Connection: close`` GET needs only a status line, headers and a body.

It is a fast path, never a second behaviour. Whatever it cannot do exactly as ``DevServerClient.list``
does, it refuses with ``FullClientRequired``, and the caller repeats the read with the client:

* credentials other than a bearer token and client certificates (``exec`` plugins, ``auth-provider``,
  basic auth), proxies (``proxy-url`` or ``*_proxy`` in the environment), ``insecure-skip-tls-verify``
  (urllib3 prints a warning the fast path would not);
* every kubeconfig problem, every transport failure and every answer but 200, so that error messages,
  the mapping of statuses and retries stay in one place (``settings``, ``kube``, ``errors``). A failure
  costs one more request: ``CONNECT_TIMEOUT`` more when nothing accepts the connection, ``READ_TIMEOUT``
  more when a server accepts it and then stays silent (an API server whose etcd is down does that; the
  client's own 30 s then follow, so the fast path gives up well before the client would);
* an object the models would refuse or read differently (``check_readable``): the client raises
  ``InvalidSpecError`` for it, and so must ``devctl list``.

The import contract ``lightweight-read-stays-light`` (``.importlinter``) keeps ``kubernetes``, urllib3
and pydantic out of this module, directly or indirectly.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from .contract import (
    BACKENDS,
    CONDITION_STATUSES,
    DEVSERVER_KIND,
    DEVSERVER_PLURAL,
    GROUP_VERSION,
    MAX_CHECKPOINT_TIMEOUT,
    MAX_NCCL_SETTINGS,
    MAX_NCCL_VALUE_LENGTH,
    MAX_WORLD_SIZE,
    MIN_IDLE_TIMEOUT,
    MODES,
    NCCL_KEY_PATTERN,
    PHASES,
    env_name_problem,
    validate_name,
)
from .errors import FullClientRequired, NotPlain
from .settings import CONTEXT_ENV, KubeconfigInfo, kubeconfig_paths, resolve_namespace

# A healthy API server answers a list in well under a second; a silent one is the client's to report.
READ_TIMEOUT = 8.0

if TYPE_CHECKING:
    import ssl

__all__ = ["CONNECT_TIMEOUT", "FullClientRequired", "Listing", "check_readable", "list_devservers"]

# The DevServer resource and the models' rules that ``check_readable`` applies come from ``contract`` (no
# pydantic there). tests/sdk/test_lightweight_read.py holds check_readable against DevServer.from_manifest on a
# corpus of odd objects, including each bound on both sides.
DEVSERVERS_PATH = f"/apis/{GROUP_VERSION}"
_NCCL_KEY = re.compile(NCCL_KEY_PATTERN)
FIELDS = {
    "": {"apiVersion", "kind", "metadata", "spec", "status"},
    "spec": {"owner", "flavor", "image", "mode", "distributed", "persistentHomeSize", "sharedVolumeClaimName",
             "enableSSH", "lifecycle", "tracking"},
    "spec.distributed": {"worldSize", "nprocsPerNode", "backend", "ncclSettings"},
    "spec.lifecycle": {"idleTimeout", "autoShutdown", "expirationTime", "timeToLive", "minGpuUtilization",
                       "checkpoint"},
}
# RFC 3339 as the API server writes it. pydantic and datetime.fromisoformat agree on this form; an object
# with any other spelling goes to the client, which decides.
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
DECIMAL_PATTERN = re.compile(r"[0-9]{1,15}(\.[0-9]{1,12})?")

CONNECT_TIMEOUT = 3.0
"""Seconds to connect before leaving the read to the client (which then waits its own 10 s per try):
a healthy API server connects in milliseconds, and a dead one should not be waited for twice in full."""

_MAX_LINE = 65536


# Records are NamedTuples: a frozen dataclass costs ~0.5 ms to define, a NamedTuple a quarter of that, and
# this module is imported by every `devctl list`.
class Listing(NamedTuple):
    """DevServers as the server sent them, filtered and sorted as ``DevServerClient.list`` does.

    Attributes:
        namespace: the namespace the client would work in (named by "No DevServers found in ...").
        context: the kubeconfig context used.
        items: the DevServer manifests, sorted by namespace and name.
    """

    namespace: str
    context: str
    items: list[dict[str, Any]]


def list_devservers(*, namespace: str | None = None, context: str | None = None,
                    kubeconfig: str | os.PathLike[str] | None = None, owner: str | None = None,
                    all_namespaces: bool = False, timeout: float = READ_TIMEOUT) -> Listing:
    """List DevServers as ``DevServerClient(...).list(owner=..., all_namespaces=...)`` would, as manifests.

    Args:
        namespace, context, kubeconfig: as for ``DevServerClient`` (same defaults, same precedence).
        owner: only those whose ``spec.owner`` is this.
        all_namespaces: every namespace instead of the resolved one.
        timeout: seconds allowed for each read from the server.

    Returns:
        The ``Listing``.

    Raises:
        FullClientRequired: the client must do this read (see the module docstring); never a
            ``DevServerError``.

    Example:
        >>> [m["metadata"]["name"] for m in list_devservers(owner="alice").items]  # doctest: +SKIP
        ['mydev']
    """
    target = _Target.load(kubeconfig, context)
    resolved = resolve_namespace(namespace, target.info)
    path = DEVSERVERS_PATH + ("" if all_namespaces else f"/namespaces/{_quote(resolved)}") + f"/{DEVSERVER_PLURAL}"
    document = _decode(target.get(path, timeout=timeout))
    items = (document.get("items") or []) if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise FullClientRequired("the answer is not a list of DevServers")
    for item in items:
        check_readable(item)
    if owner is not None:
        items = [item for item in items if item["spec"]["owner"] == owner]
    items.sort(key=lambda item: (item["metadata"].get("namespace") or "", item["metadata"]["name"]))
    return Listing(namespace=resolved, context=target.info.context, items=items)


def _quote(segment: str) -> str:
    from urllib.parse import quote

    return quote(segment, safe="")


def _decode(body: bytes) -> Any:
    import json

    try:
        return json.loads(body)
    except ValueError as exc:
        raise FullClientRequired(f"the answer is not JSON ({exc})") from exc


# -- the kubeconfig, read as the kubernetes client reads it ----------------------------------------------

class _Entry(NamedTuple):
    """A named kubeconfig entry and the file it came from (relative paths in it are relative to that file)."""

    value: dict[str, Any]
    source: Path


def _merged(documents: list[tuple[Path, dict[str, Any]]], section: str, key: str) -> dict[str, _Entry]:
    """Entries by name, the first file that names one winning (kubectl's and the kubernetes client's rule)."""
    found: dict[str, _Entry] = {}
    for path, document in documents:
        entries = document.get(section) or []
        if not isinstance(entries, list):
            raise FullClientRequired(f"{section} of {path} is not a list")
        for entry in entries:
            if isinstance(entry, dict) and entry.get("name") is not None:
                value = entry.get(key) or {}
                if not isinstance(value, dict):
                    raise FullClientRequired(f"{section} entry {entry['name']!r} is not a mapping")
                found.setdefault(str(entry["name"]), _Entry(value, path))
    return found


def _read_documents(kubeconfig: str | os.PathLike[str] | None) -> list[tuple[Path, dict[str, Any]]]:
    existing = [path for path in kubeconfig_paths(kubeconfig) if path.is_file()]
    if not existing:
        raise FullClientRequired("no kubeconfig")
    documents = []
    for path in existing:
        try:
            document = _parse(path.read_bytes()) or {}
        except OSError as exc:
            raise FullClientRequired(f"cannot read {path}: {exc}") from exc
        if not isinstance(document, dict):
            raise FullClientRequired(f"{path} is not a mapping")
        documents.append((path, document))
    return documents


def _parse(data: bytes) -> Any:
    """The YAML document: ``kubeconfig_yaml`` for the plain style every writer uses, else PyYAML."""
    from .kubeconfig_yaml import load

    try:
        return load(data.decode("ascii"))
    except (UnicodeDecodeError, NotPlain):
        pass
    import yaml

    try:
        return yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise FullClientRequired(f"not YAML: {exc}") from exc


def _environment_proxy(scheme: str) -> bool:
    """Whether the kubernetes client would take a proxy from the environment for this scheme.

    It asks ``urllib.request.getproxies()`` (then ``no_proxy`` may still bypass it; here any proxy counts).
    On Linux that function reads only ``*_proxy`` variables, read here directly because importing
    ``urllib.request`` costs ~15 ms; elsewhere it also reads the system's settings, so it is called.
    """
    if sys.platform.startswith("linux"):
        wanted = {f"{scheme}_proxy", "all_proxy"}
        return any(value and name.lower() in wanted for name, value in os.environ.items())
    from urllib.request import getproxies

    proxies = getproxies()
    return bool(proxies.get(scheme) or proxies.get("all"))


def _file_or_data(entry: _Entry, key: str, *, base: Path) -> tuple[bytes | None, str | None]:
    """``key-data`` (base64, preferred when present) or the file ``key``, resolved against ``base``."""
    import base64
    import binascii

    data = entry.value.get(f"{key}-data")
    if f"{key}-data" in entry.value:  # then the file is ignored, even when the data is empty
        if not data:
            return None, None
        try:
            return base64.b64decode(str(data), validate=True), None
        except (binascii.Error, ValueError) as exc:
            raise FullClientRequired(f"{key}-data is not base64") from exc
    path = entry.value.get(key)
    if path is None:
        return None, None
    return None, os.path.normpath(os.path.join(base, str(path)))


class _Target(NamedTuple):
    """Where to send the request and with which credentials."""

    info: KubeconfigInfo
    scheme: str
    host: str
    port: int
    netloc: str
    prefix: str
    server_name: str | None
    ca: tuple[bytes | None, str | None]
    client_certificate: tuple[bytes | None, str | None]
    client_key: tuple[bytes | None, str | None]
    token: str | None

    @classmethod
    def load(cls, kubeconfig: str | os.PathLike[str] | None, context: str | None) -> _Target:
        documents = _read_documents(kubeconfig)
        contexts = _merged(documents, "contexts", "context")
        clusters = _merged(documents, "clusters", "cluster")
        users = _merged(documents, "users", "user")
        current = next((str(d["current-context"]) for _, d in documents if d.get("current-context")), "")
        chosen = context or os.environ.get(CONTEXT_ENV) or current
        if not chosen or chosen not in contexts:
            raise FullClientRequired(f"no context {chosen!r}")
        entry = contexts[chosen].value
        cluster_name, user_name = str(entry.get("cluster") or ""), entry.get("user")
        if cluster_name not in clusters:
            raise FullClientRequired(f"no cluster {cluster_name!r}")
        cluster = clusters[cluster_name]
        if user_name and str(user_name) not in users:
            raise FullClientRequired(f"no user {user_name!r}")
        user = users[str(user_name)] if user_name else _Entry({}, cluster.source)
        info = KubeconfigInfo(paths=tuple(str(path) for path, _ in documents), context=chosen, cluster=cluster_name,
                              server=str(cluster.value.get("server") or ""), user=str(user_name or ""),
                              namespace=str(entry["namespace"]) if entry.get("namespace") else None)
        return cls._connect_to(info, cluster, user)

    @classmethod
    def _connect_to(cls, info: KubeconfigInfo, cluster: _Entry, user: _Entry) -> _Target:
        from urllib.parse import urlsplit

        unsupported = {"exec", "auth-provider", "username", "password"} & set(user.value)
        if unsupported:
            raise FullClientRequired(f"credentials by {', '.join(sorted(unsupported))}")
        if cluster.value.get("insecure-skip-tls-verify"):
            raise FullClientRequired("insecure-skip-tls-verify")
        try:
            url = urlsplit(info.server.rstrip("/"))
            port = url.port or (443 if url.scheme == "https" else 80)
        except ValueError as exc:
            raise FullClientRequired(f"server URL {info.server!r}") from exc
        if url.scheme not in ("https", "http") or not url.hostname or url.query or url.fragment or url.username:
            raise FullClientRequired(f"server URL {info.server!r}")
        if "proxy-url" in cluster.value or _environment_proxy(url.scheme):
            raise FullClientRequired("a proxy")
        token = cls._token(user)
        # As the kubernetes client does: the cluster's file is the base of certificate paths, even the user's.
        base = cluster.source.parent.absolute()
        https = url.scheme == "https"
        server_name = cluster.value.get("tls-server-name")
        nothing: tuple[bytes | None, str | None] = (None, None)
        return cls(info=info, scheme=url.scheme, host=url.hostname, port=port, netloc=url.netloc, prefix=url.path,
                   server_name=str(server_name) if server_name else None,
                   ca=_file_or_data(cluster, "certificate-authority", base=base) if https else nothing,
                   client_certificate=_file_or_data(user, "client-certificate", base=base) if https else nothing,
                   client_key=_file_or_data(user, "client-key", base=base) if https else nothing,
                   token=token)

    @staticmethod
    def _token(user: _Entry) -> str | None:
        """``token``, else the content of ``tokenFile`` (relative to the user's file), taken as is."""
        if "token" in user.value:
            token = user.value["token"]
        elif "tokenFile" in user.value:
            path = os.path.normpath(os.path.join(user.source.parent.absolute(), str(user.value["tokenFile"])))
            try:
                token = Path(path).read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise FullClientRequired(f"cannot read tokenFile {path}") from exc
        else:
            return None
        if not token:
            return None
        # The client sends the token verbatim: one with a line break fails there, so it must fail the same way.
        if not isinstance(token, str) or not token.isprintable() or token != token.strip():
            raise FullClientRequired("a token the client would send differently")
        return token

    # -- the request ---------------------------------------------------------------------------------

    def get(self, path: str, *, timeout: float) -> bytes:
        """GET ``path`` and return the body of a 200 answer."""
        import socket

        # An ASCII host name as bytes: as text, socket and ssl would import the idna codec (~1.5 ms) to
        # encode it, which leaves ASCII unchanged anyway.
        host, server_name = (name.encode() if name.isascii() else name for name in
                             (self.host, self.server_name or self.host))
        try:
            address: Any = (host, self.port)  # typeshed wants a str host; bytes work (see above)
            with socket.create_connection(address, timeout=min(CONNECT_TIMEOUT, timeout)) as raw:
                raw.settimeout(timeout)
                if self.scheme == "https":
                    with self._tls().wrap_socket(raw, server_hostname=server_name) as tls:
                        return self._exchange(tls, path)
                return self._exchange(raw, path)
        except (OSError, ValueError) as exc:  # ssl.SSLError and timeouts are OSErrors
            raise FullClientRequired(f"GET {path}: {type(exc).__name__}: {exc}") from exc

    def _tls(self) -> ssl.SSLContext:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
        ca_data, ca_file = self.ca
        if ca_data is not None:
            context.load_verify_locations(cadata=ca_data.decode("ascii"))
        elif ca_file is not None:
            context.load_verify_locations(cafile=ca_file)
        else:
            context.load_default_certs()  # what urllib3 does without a certificate authority
        if self.client_certificate != (None, None):  # a key without a certificate is ignored, as by urllib3
            with _as_files(self.client_certificate, self.client_key) as (certificate, key):
                assert certificate is not None
                context.load_cert_chain(certificate, key)
        return context

    def _exchange(self, connection: Any, path: str) -> bytes:
        lines = [f"GET {self.prefix}{path} HTTP/1.1", f"Host: {self.netloc}", "User-Agent: devservers-sdk",
                 "Accept: application/json", "Connection: close"]
        if self.token:
            lines.append(f"Authorization: Bearer {self.token}")
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        with connection.makefile("rb") as stream:
            return _response_body(stream)


@contextlib.contextmanager
def _as_files(*sources: tuple[bytes | None, str | None]) -> Iterator[list[str | None]]:
    """Paths for ``load_cert_chain``, which reads only files: inline data goes to a private directory, removed
    as soon as the context holds it."""
    if all(data is None for data, _ in sources):
        yield [path for _, path in sources]
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="devservers-") as directory:  # mode 0700
        paths: list[str | None] = []
        for index, (data, path) in enumerate(sources):
            if data is not None:
                path = os.path.join(directory, str(index))
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                    handle.write(data)
            paths.append(path)
        yield paths


def _response_body(stream: BinaryIO) -> bytes:
    """The body of a 200 answer to a ``Connection: close`` request (identity or chunked transfer)."""
    status = stream.readline(_MAX_LINE).split(None, 2)
    if len(status) < 2 or not status[0].startswith(b"HTTP/1."):
        raise FullClientRequired("not an HTTP/1 answer")
    if status[1] != b"200":
        raise FullClientRequired(f"HTTP {status[1].decode('latin-1')}")
    headers: dict[str, str] = {}
    while (line := stream.readline(_MAX_LINE)) not in (b"\r\n", b"\n"):
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise FullClientRequired("the answer's headers are cut short or malformed")
        headers[name.strip().lower()] = value.strip()
    if headers.get("content-encoding", "identity").lower() != "identity":
        raise FullClientRequired(f"content encoding {headers['content-encoding']}")
    transfer = headers.get("transfer-encoding", "identity").lower()
    if transfer == "chunked":
        return b"".join(_chunks(stream))
    if transfer != "identity":
        raise FullClientRequired(f"transfer encoding {transfer}")
    if "content-length" not in headers:
        return stream.read()
    length = int(headers["content-length"])
    body = stream.read(length)
    if len(body) != length:
        raise FullClientRequired("the answer was cut short")
    return body


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while size := int(stream.readline(_MAX_LINE).split(b";", 1)[0], 16):
        chunk = stream.read(size)
        if len(chunk) != size or stream.readline(_MAX_LINE) not in (b"\r\n", b"\n"):
            raise FullClientRequired("a chunk of the answer was cut short")
        yield chunk


# -- would the models read this DevServer as the table does? ---------------------------------------------

def check_readable(item: Any) -> None:
    """Refuse a DevServer that ``DevServer.from_manifest`` would refuse, or read differently from its manifest.

    The rules are the models': those only they enforce (see the ``crds`` module docstring), and the enums
    and bounds the CRD repeats, because the API server does not validate a stored object again when its CRD
    becomes stricter. Fields the models require may not be ``null``; integers and timestamps must be in the
    spelling both readers agree on (anything else is left to the client, which decides).

    Raises:
        FullClientRequired: naming the DevServer and the part the models would object to.
    """
    problem = _problem(item)
    if problem:
        metadata = item.get("metadata") if isinstance(item, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        raise FullClientRequired(f"DevServer {name!r}: {problem}")


def _problem(item: Any) -> str | None:
    if not isinstance(item, dict) or not set(item) <= FIELDS[""]:
        return "unexpected fields"
    if item.get("apiVersion", GROUP_VERSION) != GROUP_VERSION or \
            item.get("kind", DEVSERVER_KIND) != DEVSERVER_KIND:
        return "not a DevServer"
    metadata, spec, status = item.get("metadata"), item.get("spec"), item.get("status", {})
    if not isinstance(metadata, dict) or not isinstance(spec, dict) or not isinstance(status, dict):
        return "metadata, spec or status is not a mapping"
    return _metadata_problem(metadata) or _spec_problem(spec) or _status_problem(status)


def _metadata_problem(metadata: dict[str, Any]) -> str | None:
    name = metadata.get("name")
    if not isinstance(name, str) or _name_problem(name):
        return "name"
    if not all(_optional(metadata, key, str) for key in ("namespace", "uid", "resourceVersion")) or \
            not _optional(metadata, "generation", int) or \
            not _times(metadata, "creationTimestamp", "deletionTimestamp") or \
            not all(_strings(metadata.get(key, {})) for key in ("labels", "annotations")):
        return "metadata"
    return None


def _name_problem(name: str) -> bool:
    try:
        validate_name(name)
    except ValueError:
        return True
    return False


def _spec_problem(spec: dict[str, Any]) -> str | None:
    if not set(spec) <= FIELDS["spec"]:
        return "unexpected spec fields"
    if not isinstance(spec.get("owner"), str) or not isinstance(spec.get("flavor"), str) or \
            spec.get("mode", MODES[0]) not in MODES:
        return "owner, flavor or mode"
    if not _optional(spec, "image", str) or not _optional(spec, "sharedVolumeClaimName", str):
        return "image or shared volume"
    if not _optional(spec, "enableSSH", bool):
        return "enableSSH"
    if spec.get("tracking") is not None:
        # Its rules (URIs without credentials, Secret names, per-tool shapes) are the models' alone; copying
        # them here would be a third version. The few servers that set it are read by the client.
        return "tracking"
    if spec.get("persistentHomeSize") is not None and not _non_negative_quantity(spec["persistentHomeSize"]):
        return "persistentHomeSize"
    return _distributed_problem(spec) or _lifecycle_problem(spec.get("lifecycle", {}))


def _distributed_problem(spec: dict[str, Any]) -> str | None:
    distributed = spec.get("distributed")
    if distributed is None:
        return None
    if not isinstance(distributed, dict) or \
            not set(distributed) <= FIELDS["spec.distributed"] or \
            not _bounded(distributed, "worldSize", 1, MAX_WORLD_SIZE) or \
            not (distributed.get("nprocsPerNode") == "auto" or _bounded(distributed, "nprocsPerNode", 1)) or \
            distributed.get("backend", BACKENDS[0]) not in BACKENDS:
        return "distributed"
    settings = distributed.get("ncclSettings", {})
    if not isinstance(settings, dict) or len(settings) > MAX_NCCL_SETTINGS or not all(
            isinstance(key, str) and _NCCL_KEY.fullmatch(key) and env_name_problem(key) is None
            and isinstance(value, str) and len(value) <= MAX_NCCL_VALUE_LENGTH and "\0" not in value
            for key, value in settings.items()):
        return "NCCL settings"
    return None


def _lifecycle_problem(lifecycle: Any) -> str | None:
    if not isinstance(lifecycle, dict) or not set(lifecycle) <= FIELDS["spec.lifecycle"] or \
            not isinstance(lifecycle.get("autoShutdown", True), bool) or \
            (lifecycle.get("idleTimeout") is not None and not _bounded(lifecycle, "idleTimeout", MIN_IDLE_TIMEOUT)):
        return "lifecycle"
    if not _times(lifecycle, "expirationTime"):  # _TIMESTAMP wants a time zone, as the model does here
        return "expirationTime"
    if lifecycle.get("timeToLive") is not None and not _duration(lifecycle["timeToLive"]):
        return "timeToLive"
    policy = lifecycle.get("minGpuUtilization")
    if policy is not None and (not isinstance(policy, dict) or set(policy) != {"percent", "window"} or
                               not _bounded(policy, "percent", 1, 100) or not _duration(policy["window"])):
        return "minGpuUtilization"
    hook = lifecycle.get("checkpoint")
    if hook is not None and not (
            isinstance(hook, dict) and set(hook) <= {"command", "timeoutSeconds"} and
            isinstance(hook.get("command"), list) and hook["command"] and
            all(isinstance(part, str) and part for part in hook["command"]) and
            _bounded(hook, "timeoutSeconds", 1, MAX_CHECKPOINT_TIMEOUT)):
        return "checkpoint"
    return None


def _status_problem(status: dict[str, Any]) -> str | None:
    if status.get("phase") is not None and status["phase"] not in PHASES:
        return "phase"
    if not all(_optional(status, key, str) for key in ("message", "lastActivitySource", "stoppedReason")) or \
            not all(_optional(status, key, int)
                    for key in ("readyReplicas", "replicas", "observedGeneration", "interruptions")) or \
            not _interruption_ok(status.get("lastInterruption")) or \
            not _times(status, "expiresAt", "lastActivityTime", "stoppedAt", "gpuLowSince"):
        return "status"
    if not _gpus_readable(status.get("gpus")) or not _cost_readable(status.get("cost")):
        return "gpus or cost"
    pods, conditions = status.get("pods", []), status.get("conditions", [])
    if not isinstance(pods, list) or not all(isinstance(pod, str) for pod in pods) or \
            not isinstance(conditions, list):
        return "status"
    for condition in conditions:
        if not isinstance(condition, dict) or not isinstance(condition.get("type"), str) or \
                condition.get("status") not in CONDITION_STATUSES or \
                not all(isinstance(condition.get(key, ""), str) for key in ("reason", "message")) or \
                not _times(condition, "lastTransitionTime") or not _optional(condition, "observedGeneration", int):
            return "conditions"
    return None


def _interruption_ok(interruption: Any) -> bool:
    """Absent, or shaped as the model reads it (anything else goes to the client, which decides)."""
    if interruption is None:
        return True
    return isinstance(interruption, dict) and isinstance(interruption.get("reason"), str) and \
        isinstance(interruption.get("time"), str) and _times(interruption, "time") and \
        all(isinstance(interruption.get(key, []), list) for key in ("pods", "nodes", "podUids"))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _gpus_readable(gpus: Any) -> bool:
    """``status.gpus`` as the columns read it: rank, index and utilisation numbers."""
    return gpus is None or (isinstance(gpus, list) and all(
        isinstance(gpu, dict) and _bounded(gpu, "rank", 0) and _bounded(gpu, "index", 0)
        and _number(gpu.get("utilization")) and _times(gpu, "observedAt") for gpu in gpus))


def _cost_readable(cost: Any) -> bool:
    """``status.cost`` as ``devservers_sdk.cost.cost_at`` reads it: decimals as text, counts, a time."""
    if cost is None:
        return True
    if not isinstance(cost, dict) or not _bounded(cost, "podSeconds", 0) or not _bounded(cost, "runningPods", 0) or \
            not _times(cost, "since") or not _optional(cost, "currency", str):
        return False
    return all(isinstance(cost.get(key, "0"), str) and DECIMAL_PATTERN.fullmatch(cost.get(key, "0"))
               for key in ("perHour", "accumulated"))


def _optional(mapping: dict[str, Any], key: str, kind: type) -> bool:
    """Absent, null, or of that type (``bool`` is no ``int`` here, as for pydantic's strict integers)."""
    value = mapping.get(key)
    return value is None or (isinstance(value, kind) and not (kind is int and isinstance(value, bool)))


def _bounded(mapping: dict[str, Any], key: str, low: int, high: int | None = None) -> bool:
    """Absent (the model's default applies), or an integer within the bounds."""
    if key not in mapping:
        return True
    value = mapping[key]
    return isinstance(value, int) and not isinstance(value, bool) and low <= value and (high is None or value <= high)


def _times(mapping: dict[str, Any], *keys: str) -> bool:
    return all(mapping.get(key) is None or (isinstance(mapping[key], str) and _TIMESTAMP.fullmatch(mapping[key]))
               for key in keys)


def _strings(mapping: Any) -> bool:
    return isinstance(mapping, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())


def _duration(value: Any) -> bool:
    from .durations import parse_duration

    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


def _non_negative_quantity(value: Any) -> bool:
    from .quantities import parse_quantity

    try:
        return parse_quantity(value) >= 0
    except ValueError:
        return False
