"""The one core of the SDK's two API clients: where a resource lives, what a failed answer means, and whether
a request may be sent again.

``kube.py`` (blocking, on the official client's urllib3 pool, for scripts and front ends) and ``kube_async.py``
(asyncio, on aiohttp, for the operator on kopf's event loop) differ only in how bytes travel. Everything they
must agree on lives here, free of I/O, so that it is written once and tested once:

* **Resources and paths.** ``Resource`` names a kind (group, version, plural, kind, scope) and builds its URL
  path; both clients take one as the first argument of the same verbs (``get``, ``list``, ``create``,
  ``replace``, ``patch``, ``delete``), as lightkube's generic clients do.
* **Statuses to errors.** ``error_from_status`` reads a ``metav1.Status`` body (or whatever a proxy sent
  instead: an HTML 502 page, nothing at all) and hands it to ``errors.error_from_api``, the one table of
  statuses. Before this module each client parsed bodies its own way.
* **Retry safety.** ``safety_of`` judges what sending a request again could do; ``status_failure`` and
  ``transport_failure`` say what one failed try means (transient? maybe applied?); ``Retries`` keeps one
  request's count, pauses and give-up under a ``RetryPolicy``. The clients only sleep (``time.sleep`` or
  ``asyncio.sleep``) and send. The rules themselves are in ``kube.py``'s docstring ("Retries"); in short:
  reads and idempotent writes are retried on 429, 500, 502, 503, 504, dropped connections and one read
  timeout; ``Retry-After`` is honoured within the policy's total time; a named create is retried only
  because its ``CREATE_TOKEN_ANNOTATION`` lets a later AlreadyExists be recognised as its own; anything
  else (a ``generateName`` create, a strategic merge patch, exec) is retried only on 429, which a server
  sends before doing anything.

What this module must not import: ``kubernetes``, ``urllib3``, ``aiohttp`` (each client brings its own).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .contract import (
    API_GROUP,
    API_VERSION,
    CREATE_TOKEN_ANNOTATION,
    DEVSERVER_KIND,
    DEVSERVER_PLURAL,
    FLAVOR_KIND,
    FLAVOR_PLURAL,
)
from .errors import (
    ClusterUnreachableError,
    ConfigurationError,
    DevServerError,
    ServerError,
    TryFailed,
    WatchDropped,
    WatchExpired,
    cluster_kept_failing,
    error_from_api,
)

__all__ = [
    "APPLY_PATCH",
    "CONFIGMAPS",
    "CREATE_TOKEN_ANNOTATION",
    "DEVSERVERS",
    "EVENTS",
    "FLAVORS",
    "JSON_PATCH",
    "MERGE_PATCH",
    "NODES",
    "PODS",
    "PVCS",
    "RETRIED_STATUSES",
    "SECRETS",
    "SELF_SUBJECT_REVIEWS",
    "SERVICES",
    "STATEFULSETS",
    "UNSETTLED",
    "Resource",
    "Retries",
    "RetryPolicy",
    "Safety",
    "TryFailed",
    "create_settles",
    "error_from_status",
    "exec_exit_code",
    "safety_of",
    "stamp_create",
    "status_failure",
    "status_fields",
    "transient",
    "transport_failure",
    "url",
    "watch_event",
    "watch_query",
    "why_unreachable",
]


# -- resources --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API.

    Example:
        >>> STATEFULSETS.path("alice", "mydev", "status")
        '/apis/apps/v1/namespaces/alice/statefulsets/mydev/status'
        >>> FLAVORS.path("ignored", "cpu-small")
        '/apis/devservers.io/v1/devserverflavors/cpu-small'
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        """The URL path of the collection (no ``name``), of one object, or of its ``subresource``.

        ``namespace=None`` on a namespaced kind is the collection across all namespaces; a cluster-scoped
        kind ignores ``namespace``.
        """
        from urllib.parse import quote

        if subresource and not name:
            raise ValueError(f"subresource {subresource!r} of {self.plural} needs an object name")
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base


DEVSERVERS = Resource(API_GROUP, API_VERSION, DEVSERVER_PLURAL, DEVSERVER_KIND)
FLAVORS = Resource(API_GROUP, API_VERSION, FLAVOR_PLURAL, FLAVOR_KIND, namespaced=False)
PODS = Resource("", "v1", "pods", "Pod")
EVENTS = Resource("", "v1", "events", "Event")
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
SERVICES = Resource("", "v1", "services", "Service")
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
SELF_SUBJECT_REVIEWS = Resource("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview",
                                namespaced=False)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def url(server: str, path: str, query: Sequence[tuple[str, Any]] | None = None) -> str:
    """``server`` + ``path`` + the query; pairs whose value is ``None`` are left out."""
    from urllib.parse import urlencode

    pairs = [(key, query_value(value)) for key, value in query or () if value is not None]
    base = server.rstrip("/") + path
    return f"{base}?{urlencode(pairs)}" if pairs else base


# -- statuses ---------------------------------------------------------------------------------------------

def status_fields(body: bytes | str | None) -> tuple[str, str, list[dict[str, Any]]]:
    """(reason, message, causes) of a ``metav1.Status`` body.

    A body that is not a Status (a load balancer's HTML 502 page, plain text, nothing) gives no reason and
    its text, shortened, as the message.
    """
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", "replace")
    try:
        status = json.loads(body) if body else {}
    except ValueError:
        return "", _short(body or ""), []
    if not isinstance(status, dict):
        return "", _short(str(status)), []
    causes = (status.get("details") or {}).get("causes") or []
    return str(status.get("reason") or ""), str(status.get("message") or ""), list(causes)


def error_from_status(status: int, body: bytes | str | None, *, kind: str, name: str | None = None,
                      namespace: str | None = None, context: str | None = None) -> DevServerError:
    """The SDK's error for a failed answer: an HTTP status and its body, about ``kind`` ``name``.

    The one door from the wire to ``errors.error_from_api`` for both clients.

    Example:
        >>> error = error_from_status(502, b"<html>Bad Gateway</html>", kind="Pod", namespace="alice")
        >>> type(error).__name__, error.status, error.reason
        ('ServerError', 502, 'BadGateway')
    """
    reason, message, causes = status_fields(body)
    if not reason:
        # Not a Status (a gateway's page, an empty body): the HTTP phrase in the API's own spelling, so that
        # the message reads "502 BadGateway: <page>" as it reads "503 ServiceUnavailable: ..." from the server.
        from http import HTTPStatus

        with contextlib.suppress(ValueError):
            reason = HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")
    return error_from_api(status, reason, message, kind=kind, name=name or "", namespace=namespace or "",
                          causes=causes, context=context)


def exec_exit_code(status: dict[str, Any] | None) -> int | None:
    """The exit code an exec's error channel reported: 0 for Success, the ExitCode cause, else ``None``."""
    if status is None:
        return None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                return None
    return None


# -- watches --------------------------------------------------------------------------------------------

def watch_query(*, field_selector: str | None, label_selector: str | None, resource_version: str | None,
                timeout_seconds: float) -> list[tuple[str, Any]]:
    """The query of a watch: bookmarks on, the server ending the stream after ``timeout_seconds``."""
    return [("watch", "true"), ("allowWatchBookmarks", "true"), ("fieldSelector", field_selector),
            ("labelSelector", label_selector), ("resourceVersion", resource_version),
            ("timeoutSeconds", max(1, int(timeout_seconds)))]


def watch_event(line: bytes | str, resource: Resource, namespace: str | None, *, context: str | None,
                server: str | None) -> tuple[str, dict[str, Any]]:
    """One line of a watch stream as ``(type, object)``; an ``ERROR`` event raises.

    Raises:
        WatchExpired: 410 Gone, the resourceVersion is too old: list again.
        WatchDropped: the server's end of the stream failed (a retried status): watch again.
        DevServerError: any other status, mapped.
    """
    event = json.loads(line)
    kind, obj = str(event.get("type")), event.get("object") or {}
    if kind == "ERROR":
        code = int(obj.get("code") or 500)
        if code == 410:
            raise WatchExpired(f"The watch on {resource.plural} expired: {obj.get('message')}", status=410)
        if code in RETRIED_STATUSES:  # the server's end of the stream failed, not the watch itself
            raise WatchDropped(f"The watch on {resource.plural} broke ({code}): {obj.get('message')}",
                               context=context, server=server)
        raise error_from_status(code, json.dumps(obj), kind=resource.kind, namespace=namespace, context=context)
    return kind, obj


# -- transport failures -----------------------------------------------------------------------------------

def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: causes, contexts, urllib3's ``reason``, aiohttp's ``os_error``."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([current.__cause__, current.__context__])
        for attribute in ("reason", "os_error"):
            wrapped = getattr(current, attribute, None)
            if isinstance(wrapped, BaseException):
                todo.append(wrapped)
        todo.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))


def exception_chain(exc: BaseException) -> list[BaseException]:
    return list(_exception_chain(exc))


def why_unreachable(exc: BaseException, timeout: float | None) -> tuple[str, str]:
    """(short cause, advice) for a transport failure, found anywhere in the exception chain."""
    import socket
    import ssl

    chain = exception_chain(exc)
    text = " ".join(str(e) for e in chain)
    names = {type(e).__name__ for e in chain}
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or "CERTIFICATE_VERIFY_FAILED" in text:
        return ("TLS certificate verification failed (the kubeconfig's certificate authority does not "
                "match the server)", "Fetch a fresh kubeconfig for this cluster (for the local cluster: "
                "devctl local up)")
    if any(isinstance(e, ssl.SSLError) for e in chain) or "SSLError" in names:
        return (f"TLS handshake failed ({_short(text)})", "Check the server URL and certificate in the kubeconfig")
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return ("connection refused", "Is the cluster running? Start a local one with: devctl local up")
    if (any(isinstance(e, socket.gaierror) for e in chain) or "NameResolutionError" in names
            or "Name or service not known" in text or "name resolution" in text):
        return ("the server's host name does not resolve (DNS)",
                "Check the server URL in the kubeconfig and your network or VPN")
    if (any(isinstance(e, TimeoutError | socket.timeout) for e in chain)
            or {"ConnectTimeoutError", "ReadTimeoutError", "WebSocketTimeoutException"} & names):
        after = f" after {timeout:g}s" if timeout else ""
        return (f"the request timed out{after}", "Check that the cluster is up and reachable (network, VPN)")
    return (_short(text) or type(exc).__name__, "Check that the cluster is running and reachable, or start a "
            "local one with: devctl local up")


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- retries ----------------------------------------------------------------------------------------------

Safety = Literal["read", "write", "conditional", "create", "once"]
"""How safe it is to send a request again (see "Retries" in ``kube.py``'s docstring).

``read``: no effect on the server. ``write``: idempotent and unconditional, a pure set (409 is retried too).
``conditional``: idempotent but with a resourceVersion precondition (409 goes to the caller). ``create``: a
named POST stamped with ``CREATE_TOKEN_ANNOTATION``. ``once``: retried only when the server certainly did
nothing (429).
"""

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Answers that say "not now" rather than "no": throttling, and an API server or a gateway in trouble."""


@dataclass(frozen=True)
class RetryPolicy:
    """How both clients retry requests the cluster failed transiently (``kube.py``'s docstring, "Retries").

    Attributes:
        attempts: tries in all, the first included; 1 never retries.
        total: seconds from the first try after which no new try starts (a try under way is not cut).
        backoff: the pause before the first retry; it doubles for each further one, up to ``max_backoff``.
            Each pause is drawn between half and all of that (jitter, so that clients failed by the same
            blip do not come back in step).
        max_backoff: the longest pause of the doubling (a ``Retry-After`` may ask for longer, within ``total``).
        sleep, clock: how the blocking client pauses, and how both read the time (tests pass their own; the
            asyncio client takes its sleep as an argument of its own).

    Example:
        >>> DevServerClient(retry=RetryPolicy(attempts=3, total=10))  # doctest: +SKIP
        >>> DevServerClient(retry=RetryPolicy.never())  # doctest: +SKIP
    """

    attempts: int = 5
    total: float = 30.0
    backoff: float = 0.5
    max_backoff: float = 8.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts counts the first try too: at least 1, got {self.attempts}")
        if self.total < 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("RetryPolicy times must not be negative")

    @classmethod
    def never(cls) -> RetryPolicy:
        """One try, no retries."""
        return cls(attempts=1)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RetryPolicy:
        """The default policy, with ``DEVSERVERS_RETRY_ATTEMPTS`` and ``DEVSERVERS_RETRY_TOTAL`` (seconds) applied.

        Raises:
            ConfigurationError: a variable is not a number.
        """
        environ = dict(os.environ) if environ is None else environ
        values: dict[str, Any] = {}
        for key, attribute, kind in (("DEVSERVERS_RETRY_ATTEMPTS", "attempts", int),
                                     ("DEVSERVERS_RETRY_TOTAL", "total", float)):
            raw = (environ.get(key) or "").strip()
            if raw:
                try:
                    values[attribute] = kind(raw)
                except ValueError:
                    raise ConfigurationError(f"{key}={raw!r} is not a number; unset it or give e.g. "
                                             f"{key}={5 if kind is int else 30}") from None
        try:
            return cls(**values)
        except ValueError as exc:
            raise ConfigurationError(f"Invalid retry settings from the environment: {exc}") from None

    def pause(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry), without Retry-After."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (retry - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (the apiserver sends seconds; an HTTP date is not honoured)."""
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < math.inf else None


def status_failure(status: int, body: bytes | str | None, retry_after: str | None, *, kind: str,
                   name: str | None, namespace: str | None, context: str | None) -> TryFailed:
    """One try answered with a failed status: its mapped error, and what the retry loop needs to know."""
    reason, message, _ = status_fields(body)
    error = error_from_status(status, body, kind=kind, name=name, namespace=namespace, context=context)
    return TryFailed(error, transient=status in RETRIED_STATUSES, maybe_applied=status >= 500,
                     conflict=status == 409 and reason != "AlreadyExists",
                     retry_after=retry_after_seconds(retry_after), detail=message or reason)


def transport_failure(error: ClusterUnreachableError, *, connected: bool, timed_out: bool = False) -> TryFailed:
    """One try lost to the network.

    Args:
        connected: a connection was made, so the request may have reached the server (and been applied):
            transient. Before that (refused, DNS, TLS) it is final: the client's pool already tried to
            connect, and waiting longer would only delay the message that the cluster is down.
        timed_out: no answer in time (retried once at most).
    """
    if not connected:
        return TryFailed(error)
    return TryFailed(error, transient=True, maybe_applied=True, timed_out=timed_out)


def safety_of(method: str, body: Any, content_type: str | None) -> Safety:
    """The safety of a request that does not say (see ``Safety``)."""
    if method == "GET":
        return "read"
    if method == "PATCH" and isinstance(body, dict) and (body.get("metadata") or {}).get("resourceVersion"):
        # Any patch with a precondition, a strategic merge of a list included: a try that was applied moved
        # the resourceVersion, so sending it again can only be refused (409), never applied twice.
        return "conditional"
    if method in ("PUT", "DELETE") or content_type in (MERGE_PATCH, APPLY_PATCH):
        if method == "DELETE":
            conditional = bool(isinstance(body, dict) and body.get("preconditions"))
        else:
            conditional = bool(isinstance(body, dict) and (body.get("metadata") or {}).get("resourceVersion"))
        return "conditional" if conditional else "write"
    if content_type == JSON_PATCH and isinstance(body, list) and body \
            and all(isinstance(op, dict) and op.get("op") == "replace" for op in body):
        return "write"
    return "once"


def transient(error: BaseException) -> bool:
    """Whether an error that reached a caller says "the cluster, not now" rather than "no".

    True for the network (refused, reset, timed out; a retry policy that ran out on it included) and for the
    statuses retries are for (429, 500, 502, 503, 504): a caller that will try again later (the operator's work
    queue) reports these as one line, not as a failure with a traceback.
    """
    if isinstance(error, ClusterUnreachableError):
        return True
    return isinstance(error, DevServerError) and error.status in RETRIED_STATUSES


def may_retry(safety: Safety, failure: TryFailed) -> bool:
    """Whether a try that failed so may be sent again, by what it is (not by the policy's budget)."""
    if failure.conflict:
        # 409 Conflict refuses a write as a whole. Only a precondition's own verdict belongs to the caller; any
        # other write, even one not safe to repeat once applied, was not applied.
        return safety != "conditional"
    if not failure.transient:
        return False
    if failure.maybe_applied:
        return safety != "once"
    return True


UNSETTLED: Any = object()
"""What a request's ``settle`` returns when a failure does not stand for a success."""


@dataclass(frozen=True)
class Verdict:
    """What to do after a failed try: pause and try again, or (``pause is None``) end with ``error``.

    ``settle``: before ending, ask the request whether the failure stands for its success (an earlier try
    may have been applied: a DELETE's 404, a create's AlreadyExists for its own object).
    """

    pause: float | None
    error: DevServerError | None = None
    cause: BaseException | None = None
    settle: bool = False


class Retries:
    """One request's tries under a ``RetryPolicy``: the clients' loops call ``after`` on each failure.

    Example (the loop of a blocking client)::

        retries = Retries(policy, safety="read", server=server)
        while True:
            try:
                return send_once()
            except TryFailed as failure:
                verdict = retries.after(failure)
                if verdict.pause is None:
                    raise verdict.error from verdict.cause
                time.sleep(verdict.pause)
    """

    def __init__(self, policy: RetryPolicy, *, safety: Safety, server: str | None) -> None:
        self.policy = policy
        self.safety = safety
        self.server = server
        self.start = policy.clock()
        self.tries = 0
        self.statuses: list[int] = []
        self._timeouts = 0
        self._maybe_applied = False

    def after(self, failure: TryFailed) -> Verdict:
        """The verdict on a failed try (counted here: call it once per try)."""
        self.tries += 1
        error = failure.error
        cause = failure.__cause__
        if error.status:
            self.statuses.append(error.status)
        retryable = may_retry(self.safety, failure) and not (failure.timed_out and self._timeouts)
        settle = not retryable and self._maybe_applied
        self._timeouts += failure.timed_out
        self._maybe_applied = self._maybe_applied or failure.maybe_applied
        if not retryable:
            return Verdict(None, error, cause, settle=settle)
        policy = self.policy
        elapsed = policy.clock() - self.start
        pause = max(policy.pause(self.tries), failure.retry_after or 0.0)
        if self.tries >= policy.attempts or elapsed + pause > policy.total:
            if self.tries == 1:
                return Verdict(None, error, cause)
            return Verdict(None, cluster_kept_failing(error, server=self.server, attempts=self.tries,
                                                      elapsed=elapsed, statuses=self.statuses,
                                                      detail=failure.detail), cause or error)
        return Verdict(pause)


# -- creates ----------------------------------------------------------------------------------------------

def stamp_create(manifest: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The manifest with a ``CREATE_TOKEN_ANNOTATION`` (a random token, or the one it already carries)."""
    metadata = dict(manifest.get("metadata") or {})
    annotations = dict(metadata.get("annotations") or {})
    token = annotations.setdefault(CREATE_TOKEN_ANNOTATION, secrets.token_hex(8))
    return {**manifest, "metadata": {**metadata, "annotations": annotations}}, token


def create_settles(existing: dict[str, Any], token: str) -> bool:
    """Whether the object found under a create's name is the one that create made (its token)."""
    found = ((existing.get("metadata") or {}).get("annotations") or {}).get(CREATE_TOKEN_ANNOTATION)
    return bool(found == token)


def not_json(method: str, path: str, data: bytes) -> ServerError:
    """The error for a 2xx answer whose body is not JSON."""
    return ServerError(f"The cluster answered {method} {path} with something that is not JSON: "
                       f"{_short(data.decode('utf-8', 'replace'))}")
