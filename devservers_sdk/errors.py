"""Errors people can act on: one tree, one mapping from API statuses, one sentence per next step.

Every error the SDK raises is a ``DevServerError``; catching that one class is enough for a front end
(``devctl`` prints ``Error: <message>`` and exits 1, the magics raise ``UsageError``). Messages are whole
sentences that name the object and say what to do next, because that line is all the user sees::

    DevServerError
    ├── ConfigurationError          no kubeconfig, unknown context, credentials the client cannot load
    │   └── KubeconfigUnreadableError  a file that is no kubeconfig (``path``; ``devctl local up`` may move it
    │                                  aside)
    ├── ClusterUnreachableError     connection refused, timeout, DNS, TLS (names context and server), or a
    │   │                           connection that kept dropping until the retries ran out
    │   └── WatchDropped            a watch stream broke mid-stream: watch again from the last version seen
    ├── AuthenticationError         401: the server rejected the credentials (invalid or expired), or 403 for
    │                               system:anonymous: none were sent (a failed credential plugin)
    ├── PermissionDeniedError       403: RBAC says no, or an admission policy (its message says why)
    │   └── NamespaceTerminatingError  403 from NamespaceLifecycle: nothing new in a namespace being deleted
    ├── NotFoundError               404
    │   ├── DevServerNotFoundError
    │   └── FlavorNotFoundError     lists the flavors that exist
    ├── AlreadyExistsError          409 AlreadyExists: the name is taken
    ├── ConflictError               409 Conflict: someone else changed the object meanwhile
    ├── InvalidSpecError            422 from the server, or the SDK's own validation (``.field``); a ValueError
    │   └── LifetimeLimitError      an extension past the flavor's ``maxTimeToLive`` (``cap``, ``requested``)
    ├── ServerError                 5xx and statuses the SDK does not expect
    │   ├── ClusterFailingError     5xx or 429 on every try until the retries ran out (``attempts``, ``elapsed``)
    │   └── WatchExpired            410 Gone on a watch: list again and watch from there
    ├── DevServerNotReadyError      no running pod to exec into (yet)
    ├── WaitTimeoutError            ``wait`` ran out of time; a TimeoutError
    ├── WaitCancelledError          a ``Cancellation`` stopped the wait (the DevServer is left as it is)
    ├── DevServerFailedError        the DevServer reached phase Failed while being waited for
    ├── ExecError                   a command failed to start, or exited non-zero with ``check=True``
    ├── NotDistributedError         ``launch`` on a standalone DevServer (it needs ``mode: distributed``)
    ├── LaunchFailedError           a rank of a launch failed; the others were stopped (``rank``, ``tail``)
    │   └── LaunchTimeoutError      the launch outran its ``timeout``; a TimeoutError
    └── TrackingUnavailableError    a tracking tool is configured but not installed in the pod's Python

Three signals are not errors of the SDK and never reach a user; they live here so that every exception class
has one home (tests/sdk/test_error_tree.py holds the package to that)::

    Exception
    ├── FullClientRequired          ``lightweight_read``: this read needs ``DevServerClient`` (argument: why)
    ├── NotPlain                    ``kubeconfig_yaml``: not the plain YAML it reads; read it with PyYAML
    └── TryFailed                   ``kube_core``: one try of a request failed (``.error``); the retry loop of
                                    ``kube``/``kube_async`` raises ``.error`` or tries again

API statuses are mapped in exactly one place, ``error_from_api``; both API clients reach it through
``kube_core.error_from_status``, which reads the body (a Status, or a gateway's HTML page), and chain the
original with ``raise ... from``, so ``--debug`` still shows the wire error. When a client retried a request
until its ``RetryPolicy`` ran out, ``cluster_kept_failing`` words the give-up: which server, what it kept
answering, how many tries over how long, and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .next_steps import FrontEnd, NextStep

__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "ClusterFailingError",
    "ClusterUnreachableError",
    "ConfigurationError",
    "ConflictError",
    "DevServerError",
    "DevServerFailedError",
    "DevServerNotFoundError",
    "DevServerNotReadyError",
    "ExecError",
    "FlavorNotFoundError",
    "FullClientRequired",
    "InvalidSpecError",
    "KubeconfigUnreadableError",
    "LaunchFailedError",
    "LaunchTimeoutError",
    "LifetimeLimitError",
    "NamespaceTerminatingError",
    "NotDistributedError",
    "NotFoundError",
    "NotPlain",
    "PermissionDeniedError",
    "ServerError",
    "TrackingUnavailableError",
    "TryFailed",
    "WaitCancelledError",
    "WaitTimeoutError",
    "WatchDropped",
    "WatchExpired",
    "cluster_kept_failing",
    "error_from_api",
]

DEVSERVER_KIND = "DevServer"
FLAVOR_KIND = "DevServerFlavor"


class DevServerError(Exception):
    """The root of every error the SDK raises.

    Attributes:
        message: the whole sentence shown to the user (also ``str(error)``), its next step in devctl's
            syntax.
        problem: the sentence without the next step.
        next_step: what to run next (``next_steps.NextStep``), or ``None``; ``render`` writes it in a
            front end's syntax after ``lead`` (e.g. "Extend it with").
        status: the HTTP status when the error came from the API server, else ``None``.
        reason: the API server's ``reason`` (``NotFound``, ``AlreadyExists``...), else ``None``.
        kind, name, namespace: the object concerned, when there is one.
    """

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None,
                 kind: str | None = None, name: str | None = None, namespace: str | None = None,
                 next_step: NextStep | None = None, lead: str = "Next, run") -> None:
        self.problem = message
        self.next_step = next_step
        self.lead = lead
        self.message = self.render("devctl")
        super().__init__(self.message)
        self.status = status
        self.reason = reason
        self.kind = kind
        self.name = name
        self.namespace = namespace

    def render(self, front_end: FrontEnd) -> str:
        """The message with its next step in ``devctl``, ``magic`` or ``python`` syntax."""
        if self.next_step is None:
            return self.problem
        return f"{self.problem.rstrip()} {self.lead}: {self.next_step.render(front_end)}"

    def __str__(self) -> str:
        return self.message


class ConfigurationError(DevServerError):
    """The client cannot be configured: no kubeconfig, an unknown context, unusable credentials."""


class ClusterUnreachableError(DevServerError):
    """The API server could not be reached (refused, timed out, DNS, TLS)."""

    def __init__(self, message: str, *, context: str | None = None, server: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.context = context
        self.server = server


class AuthenticationError(DevServerError):
    """The server rejected the credentials (HTTP 401): invalid or expired token or certificate."""


class PermissionDeniedError(DevServerError):
    """The credentials are valid but not allowed to do this (HTTP 403)."""


class NamespaceTerminatingError(PermissionDeniedError):
    """A create in a namespace that is being deleted (403 from the NamespaceLifecycle admission plugin).

    No access an admin could grant helps: the namespace and everything in it are going away.
    """


class NotFoundError(DevServerError):
    """An object does not exist (HTTP 404)."""


class DevServerNotFoundError(NotFoundError):
    """The named DevServer does not exist in the namespace."""


class FlavorNotFoundError(NotFoundError):
    """The named DevServerFlavor does not exist; ``available`` lists those that do."""

    def __init__(self, message: str, *, available: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.available = list(available)


class AlreadyExistsError(DevServerError):
    """An object of that name already exists (HTTP 409 AlreadyExists)."""


class ConflictError(DevServerError):
    """The object changed between read and write (HTTP 409 Conflict); retrying usually works."""


class InvalidSpecError(DevServerError, ValueError):
    """A spec is invalid: refused by the server (HTTP 422) or by the SDK before sending it.

    Attributes:
        field: the offending field as a dotted path in CRD spelling (``spec.lifecycle.timeToLive``),
            or ``None`` when the server did not name one.
    """

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field = field


class ServerError(DevServerError):
    """The API server failed (5xx) or answered with a status the SDK does not expect."""


class ClusterFailingError(ServerError):
    """The API server answered 5xx or 429 to every try of a request, until the SDK's retries ran out.

    Attributes:
        attempts: how many times the request was sent.
        elapsed: seconds from the first try to the give-up.
        server: the API server's URL.
    """

    def __init__(self, message: str, *, attempts: int, elapsed: float, server: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.attempts = attempts
        self.elapsed = elapsed
        self.server = server


class DevServerNotReadyError(DevServerError):
    """The DevServer exists but has no running pod for the requested rank."""


class WaitTimeoutError(DevServerError, TimeoutError):
    """``wait`` gave up; ``phase`` is the phase it was stuck in, ``last`` the last object seen."""

    def __init__(self, message: str, *, phase: str | None = None, last: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.phase = phase
        self.last = last


class WaitCancelledError(DevServerError):
    """A ``Cancellation`` stopped a wait; nothing was undone (a DevServer being created stays)."""


class DevServerFailedError(DevServerError):
    """The DevServer reached phase ``Failed``; ``devserver`` is the object as last seen."""

    def __init__(self, message: str, *, devserver: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.devserver = devserver


class ExecError(DevServerError):
    """A command could not be started, or exited non-zero with ``check=True``.

    Attributes:
        result: the ``ExecResult`` (``args``, ``returncode``, ``stdout``, ``stderr``).
    """

    def __init__(self, message: str, *, result: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.result = result

    @property
    def returncode(self) -> int | None:
        return getattr(self.result, "returncode", None)


class NotDistributedError(DevServerError):
    """``launch`` was asked to run on a standalone DevServer (it needs ``mode: distributed``)."""


class LaunchFailedError(DevServerError):
    """A rank of a launch failed (exited non-zero, or its connection was lost); the others were stopped.

    Attributes:
        rank: the node rank (pod index) that failed first, or ``None`` (e.g. for a timeout).
        returncode: its exit status (``-1``: no status was reported).
        worker_exitcode: the exit code of the failing worker process, from torchrun's report, if found.
        tail: the last lines the failing rank printed (stdout and stderr, in order) before torchrun's own
            failure report, i.e. the script's last words.
        returncodes: every rank's exit status as far as known (stopped ranks: what they reported, else
            ``-15``).
    """

    def __init__(self, message: str, *, rank: int | None = None, returncode: int | None = None,
                 worker_exitcode: int | None = None, tail: Sequence[str] = (),
                 returncodes: Mapping[int, int | None] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.rank = rank
        self.returncode = returncode
        self.worker_exitcode = worker_exitcode
        self.tail = list(tail)
        self.returncodes = dict(returncodes or {})


class LaunchTimeoutError(LaunchFailedError, TimeoutError):
    """The launch ran longer than its ``timeout`` and every rank was stopped."""


class TrackingUnavailableError(DevServerError):
    """A tracking tool is configured but its library is not installed in the pod's Python."""


class KubeconfigUnreadableError(ConfigurationError):
    """A kubeconfig file exists but is no kubeconfig: bad YAML, binary bytes, or not a mapping.

    ``devctl local up`` may repair it: it moves the file aside (``path``) and writes a new one.
    """

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message, next_step=NextStep("local up"),
                         lead="or let the local cluster move it aside and write a new one")
        self.path = path


class WatchDropped(ClusterUnreachableError):
    """The connection of a watch stream broke mid-stream: watch again from the last resourceVersion seen."""


class LifetimeLimitError(InvalidSpecError):
    """An extension would take a DevServer past its flavor's ``maxTimeToLive``; nothing was changed.

    A ``DevServerError`` and a ``ValueError``. Attributes ``cap`` (the latest allowed deadline) and
    ``requested`` (the deadline asked for).
    """

    def __init__(self, message: str, *, cap: datetime, requested: datetime, name: str | None = None,
                 field: str = "spec.lifecycle.expirationTime") -> None:
        super().__init__(message, field=field, kind="DevServer", name=name)
        self.cap = cap
        self.requested = requested


class WatchExpired(ServerError):
    """The watch's resourceVersion is too old (410 Gone): list again and watch from there."""


# -- signals inside the SDK (never shown to users) ------------------------------------------------------

class FullClientRequired(Exception):
    """This read needs ``DevServerClient``: the argument says why (for tests and debugging; users never see it)."""


class NotPlain(Exception):
    """The text is not in the plain style this module reads: read it with PyYAML."""


class TryFailed(Exception):
    """One try of an API request failed: the mapped ``error``, and what the retry loop needs to decide.

    Built by ``kube_core.status_failure`` and ``kube_core.transport_failure``; judged by ``kube_core.Retries``.
    """

    def __init__(self, error: DevServerError, *, transient: bool = False, maybe_applied: bool = False,
                 conflict: bool = False, timed_out: bool = False, retry_after: float | None = None,
                 detail: str = "") -> None:
        super().__init__(str(error))
        self.error = error
        self.transient = transient  # another try may well succeed
        self.maybe_applied = maybe_applied  # the server may have acted on it before failing
        self.conflict = conflict  # 409 Conflict: the write was refused as a whole
        self.timed_out = timed_out
        self.retry_after = retry_after
        self.detail = detail  # the server's message, for the give-up error


# -- the status table ---------------------------------------------------------------------------------

# A resource the server does not serve: a Status with this message from a built-in group's handler, or the
# plain-text "404 page not found" of kube-apiserver's fall-through handler, which answers for every group it
# does not know and for every unknown resource of a CRD group (devservers.io before or without our CRDs).
_MISSING_API = ("the server could not find the requested resource", "404 page not found")
# RBAC's denial of a request that carried no credentials at all (anonymous authentication is on by default).
_ANONYMOUS_DENIAL = 'User "system:anonymous" cannot'
# How kube-apiserver words a ValidatingAdmissionPolicy's denial (any reason: 403, 422...).
_POLICY_DENIAL = re.compile(
    r"ValidatingAdmissionPolicy '(?P<policy>[^']+)'(?: with binding '[^']+')? denied request: (?P<message>.*)",
    re.DOTALL,
)


def describe_object(kind: str, name: str | None, namespace: str | None) -> str:
    """``DevServer 'mydev' in namespace 'alice'``, or less when parts are unknown."""
    text = f"{kind} '{name}'" if name else f"{kind} objects"
    if namespace:
        text += f" in namespace '{namespace}'"
    return text


# kube-apiserver's cause, without a field, when a type, enum, required or length error kept it from running a
# CRD's CEL rules. It adds nothing the other causes do not say, and "<nil>" reads like a crash: the SDK drops it.
_CEL_SKIPPED = re.compile(r"(, |\n?\* )?<nil>: Invalid value: null: some validation rules were not checked because the "
                          r"object was invalid; correct the existing errors to complete validation")


def _first_field(message: str, causes: Iterable[dict[str, Any]] | None) -> str | None:
    for cause in causes or ():
        if cause.get("field") and cause["field"] != "<nil>":
            return str(cause["field"])
    match = re.search(r"is invalid: ([A-Za-z][\w.\[\]\-/]*):", message)
    return match.group(1) if match else None


def flavor_not_found(name: str, available: Sequence[str], **kwargs: Any) -> FlavorNotFoundError:
    """The error for an unknown flavor, listing the ones that exist."""
    if available:
        return FlavorNotFoundError(f"Flavor '{name}' does not exist. Available flavors: "
                                   f"{', '.join(sorted(available))}.", available=available, kind=FLAVOR_KIND,
                                   name=name, next_step=NextStep("flavors"), lead="See them with", **kwargs)
    hint = "No flavors are installed on this cluster; ask your cluster admin to create some " \
           "(e.g. kubectl apply -f examples/flavors/)"
    return FlavorNotFoundError(f"Flavor '{name}' does not exist. {hint}", available=available,
                               kind=FLAVOR_KIND, name=name, **kwargs)


def devserver_not_found(name: str, namespace: str | None, **kwargs: Any) -> DevServerNotFoundError:
    where = f" in namespace '{namespace}'" if namespace else ""
    return DevServerNotFoundError(f"DevServer '{name}' not found{where}.", next_step=NextStep("list"),
                                  lead="List yours with", kind=DEVSERVER_KIND, name=name, namespace=namespace,
                                  **kwargs)


def error_from_api(status: int, reason: str, message: str, *, kind: str, name: str, namespace: str,
                   causes: Iterable[dict[str, Any]] | None = None, context: str | None = None) -> DevServerError:
    """Map one failed API call to the error a user can act on.

    Args:
        status: the HTTP status (``0`` is never passed here: transport failures are
            ``ClusterUnreachableError``, built by ``kube.py``).
        reason: the ``reason`` of the server's ``Status`` (``NotFound``, ``AlreadyExists``, ``Conflict``...).
        message: the ``message`` of the server's ``Status``.
        kind: the kind of object the call was about (``DevServer``, ``DevServerFlavor``, ``Pod``...).
        name: its name, or ``""`` for a collection.
        namespace: its namespace, or ``""`` for a cluster-scoped object.
        causes: ``details.causes`` of the Status, to name the invalid field of a 422.
        context: the kubeconfig context in use, named in authentication errors.

    Returns:
        The ``DevServerError`` subclass for the status, with the server's fields attached.

    Example:
        >>> str(error_from_api(404, "NotFound", 'devservers.devservers.io "mydev" not found',
        ...                    kind="DevServer", name="mydev", namespace="alice"))
        "DevServer 'mydev' not found in namespace 'alice'. List yours with: devctl list"
    """
    common: dict[str, Any] = {"status": status, "reason": reason, "kind": kind, "name": name or None,
                              "namespace": namespace or None}
    what = describe_object(kind, name, namespace)
    detail = message.strip() or reason or f"HTTP {status}"
    via = f" of context '{context}'" if context else ""
    if status == 403 and _ANONYMOUS_DENIAL in message:
        # The client sent no credentials (e.g. its exec plugin failed: an expired SSO login), so RBAC judged
        # system:anonymous: asking an admin for access would not help, logging in would.
        return AuthenticationError(
            f"The cluster received no credentials{via} and treated the request as system:anonymous (403 "
            f"Forbidden: {detail}): the kubeconfig's token, certificate or credential plugin gave none. Log in "
            f"again or fetch a fresh kubeconfig (for the local cluster: devctl local up), then retry.", **common)
    if status == 401:
        return AuthenticationError(
            f"The cluster rejected the credentials{via} (401 Unauthorized): the token or certificate is "
            f"invalid or has expired. Log in again or fetch a fresh kubeconfig (for the local cluster: "
            f"devctl local up), then retry.", **common)
    policy = _POLICY_DENIAL.search(message)
    if policy is not None and status in (403, 422, 400, 401, 413):
        # An admission policy's own words say what to change; RBAC advice would send the user astray.
        said = policy.group("message").strip().rstrip(".")
        text = f"{what} was refused by the cluster's admission policy '{policy.group('policy')}': {said}."
        if status == 403:
            return PermissionDeniedError(text, **common)
        named = re.match(r"(?:spec|metadata)(?:\.[\w\[\]-]+)+", said)
        return InvalidSpecError(text, field=named.group(0) if named else None, **common)
    if status == 403 and (any(c.get("reason") == "NamespaceTerminating" for c in causes or ())
                          or "because it is being terminated" in message):
        # kube-apiserver's NamespaceLifecycle admission: RBAC allowed it, the namespace is being deleted.
        return NamespaceTerminatingError(
            f"Namespace '{namespace}' is being deleted, so {what} cannot be created in it ({detail}). "
            f"Use another namespace with --namespace, or wait until it is gone and create it again.", **common)
    if status == 403:
        return PermissionDeniedError(
            f"Permission denied for {what}: {detail}. Ask your cluster admin for access to DevServers "
            f"in this namespace, or use another namespace with --namespace.", **common)
    if status == 404:
        if message.strip() in _MISSING_API:
            return NotFoundError(
                f"The cluster does not serve {kind} objects: the devservers CRDs are not installed. "
                f"Install them with: kubectl apply -f crds/", **common)
        if kind == DEVSERVER_KIND and name:
            return devserver_not_found(name, namespace or None, status=status, reason=reason)
        if kind == FLAVOR_KIND and name:
            return FlavorNotFoundError(f"Flavor '{name}' does not exist.", next_step=NextStep("flavors"),
                                       lead="See the available flavors with", **common)
        if kind == "Namespace" or (reason == "NotFound" and f'namespaces "{namespace}" not found' in message):
            return NotFoundError(
                f"Namespace '{namespace or name}' does not exist. Pick another with --namespace, or "
                f"create it with: kubectl create namespace {namespace or name}", **common)
        return NotFoundError(f"{what} not found ({detail}).", **common)
    if status == 409:
        if reason == "AlreadyExists":
            if kind == DEVSERVER_KIND:
                return AlreadyExistsError(f"{what} already exists.", next_step=NextStep("delete", name),
                                          lead="Pick another name, or delete it first with", **common)
            return AlreadyExistsError(f"{what} already exists. Pick another name, or delete the existing one "
                                      f"first.", **common)
        return ConflictError(
            f"{what} was changed by someone else while this request was in flight ({detail}). "
            f"Retry the command.", **common)
    if status == 422 or status == 400:
        field = _first_field(message, causes)
        detail = _CEL_SKIPPED.sub("", detail).strip()
        label = "was refused by the server" if status == 422 else "was rejected as a bad request"
        return InvalidSpecError(f"{what} {label}: {detail}. Fix the spec and retry.", field=field, **common)
    if status == 429:
        return ServerError(f"The cluster is overloaded and throttled the request for {what} ({detail}). "
                           f"Retry in a moment.", **common)
    if status >= 500:
        return ServerError(
            f"The cluster failed to handle the request for {what} ({status} {reason}: {detail}). "
            f"Retry; if it keeps failing, ask your cluster admin to check the API server.", **common)
    return ServerError(f"Unexpected answer from the cluster for {what} ({status} {reason}: {detail}).",
                       **common)


def _seconds(elapsed: float) -> str:
    return f"{elapsed:.1f}s" if elapsed < 10 else f"{elapsed:.0f}s"


def cluster_kept_failing(last: DevServerError, *, server: str | None, attempts: int, elapsed: float,
                         statuses: Sequence[int] = (), detail: str = "") -> DevServerError:
    """The error for a request retried until the retry policy ran out, built from the last failure.

    A status failure (5xx, 429) becomes a ``ClusterFailingError``; a dropped or timed-out connection stays a
    ``ClusterUnreachableError`` (callers that wait out network trouble catch that class). Either way the
    message says that the cluster, not the request, is the problem, and that trying later is the fix.

    Args:
        last: the mapped error of the last try.
        server: the API server's URL.
        attempts: tries made, the first included.
        elapsed: seconds from the first try to the give-up.
        statuses: the HTTP statuses answered, in order (empty for connection failures).
        detail: the server's own message in its last answer.

    Example:
        >>> last = error_from_api(503, "ServiceUnavailable", "etcd leader changed", kind="DevServer", name="",
        ...                       namespace="alice")
        >>> print(cluster_kept_failing(last, server="https://k8s:6443", attempts=5, elapsed=8.2,
        ...                            statuses=[503] * 5, detail="etcd leader changed"))
        ... # doctest: +NORMALIZE_WHITESPACE
        The API server at https://k8s:6443 kept answering 503 after 5 attempts over 8.2s (DevServer objects in
        namespace 'alice': etcd leader changed); try again later or check the cluster.
    """
    where = f"The API server at {server}" if server else "The API server"
    tries = f"after {attempts} attempts over {_seconds(elapsed)}"
    if isinstance(last, ClusterUnreachableError):
        # "Cannot reach the cluster of context 'x' at URL: <cause>. <advice>." -> <cause>
        cause = last.message.split(": ", 1)[-1].split(". ", 1)[0]
        return ClusterUnreachableError(f"{where} kept failing {tries} ({cause}); try again later or check that "
                                       f"the cluster is up and reachable (network, VPN).",
                                       context=last.context, server=last.server or server)
    seen = list(dict.fromkeys(statuses or ([last.status] if last.status else [])))
    answers = " and ".join(str(status) for status in seen) or "errors"
    what = describe_object(last.kind or "object", last.name, last.namespace)
    about = f"{what}: {detail.strip()}" if detail.strip() else what
    return ClusterFailingError(f"{where} kept answering {answers} {tries} ({about}); try again later or check "
                               f"the cluster.", attempts=attempts, elapsed=elapsed, server=server,
                               status=last.status, reason=last.reason, kind=last.kind, name=last.name,
                               namespace=last.namespace)
