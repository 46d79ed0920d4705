"""The one module that talks to the ``kubernetes`` client: transport, credentials and error mapping.

Everything above this module speaks manifests (plain dicts) and the SDK's models; everything below it is
the official client. Three decisions shape it:

* **Lazy import.** ``import kubernetes`` costs a quarter of a second; ``devctl --help`` has a budget of
  0.25 s for everything. The package is imported inside ``Kube.api`` on the first request, never at import
  of ``devservers_sdk``.
* **Raw requests, not generated methods.** Requests go through the client's ``ApiClient`` (so kubeconfig
  loading, CA bundles, client certificates, exec/OIDC token refresh and proxies are the official ones),
  but bodies are JSON-decoded here instead of through the generated pydantic models: the SDK wants
  manifests anyway, and decoding 500 DevServers through generic models would be slower than kubectl.
* **Exec without threads.** ``pods/exec`` speaks the ``v5.channel.k8s.io`` WebSocket protocol (with
  ``v4`` as fallback). The handshake is done by ``websocket-client`` (what ``kubernetes.stream`` uses);
  the session then runs on the non-blocking socket in a select loop, sending and receiving in the same
  thread. A blocking writer would deadlock against ``cat`` (it cannot read our stdin while we are not
  reading its stdout), a writer thread would share one TLS object between threads, and
  ``kubernetes.stream.ws_client.WSClient`` accumulates output by string concatenation and offers no
  timeout on connect. The same loop serves ``exec`` (collect), ``exec_stream`` (yield) and ``shell``
  (a terminal). Throughput is the client's CPU, so copies are counted: stdin frames point into the
  caller's bytes (over TLS the masking key is zero, see ``_frame``), and large output frames are received
  in place, straight into ``exec``'s result buffers. ``bench/sdk.py`` measures it against kubectl.

What this module shares with ``kube_async`` (the operator's asyncio client) lives in ``kube_core``: the
``Resource`` descriptors and their paths, the one reading of a failed answer (``error_from_status``), and
the retry rules below (``safety_of``, ``Retries``). Both clients have the same verbs: ``get``, ``list``,
``create``, ``replace``, ``patch``, ``delete``, each taking a ``Resource`` first.

Every failure leaves this module as a ``DevServerError`` (``errors.error_from_api`` for API statuses,
``ClusterUnreachableError`` for the network and TLS, ``ConfigurationError`` for the kubeconfig), chained
with ``raise ... from`` to the original exception. Every request carries a timeout.

Retries (``RetryPolicy``: 5 tries within 30 s by default, pauses doubling from 0.5 s with jitter). A real
control plane answers 500 during an etcd leader change, 429 under priority and fairness, drops connections
when an apiserver behind a load balancer restarts. What is retried depends on whether sending the request
again can do harm, decided per request (``Safety``):

* **Reads** (GET, LIST, the connect of a watch or a log stream, SelfSubjectReview): on 5xx, 429, a
  dropped connection, a read timeout.
* **Idempotent writes**: a merge patch (setting the same fields twice is setting them once), a PUT, a
  JSON patch of only ``replace`` operations, a DELETE. Retried like reads, and also on 409 Conflict when
  the write has no ``resourceVersion`` precondition: such a write is a pure set, so it is simply applied
  again. With a precondition (any patch carrying ``metadata.resourceVersion``, a strategic merge included, is
  such a write), 409 goes to the caller, who must re-read and decide (``client.extend`` does).
  A DELETE that gets 404 after a try that may have reached the server (5xx, dropped connection) succeeded.
* **Creates** (POST of a named object) may have been committed before a 5xx or a dropped connection, so
  they are never simply repeated: ``create`` stamps the object with a random token
  (``CREATE_TOKEN_ANNOTATION``, kept on the object) before the first try, and a retry answered 409
  AlreadyExists is success only when the object found carries that same token; otherwise the name really was
  taken. A ``generateName`` create has no name to find again, so it is retried only on 429 or 409 Conflict,
  which refuse a request before anything is done.
* **Never retried**: 4xx other than 429 and 409 Conflict (a 400/403/404/422 will not change by asking again),
  other patches (strategic merge, JSON patch with ``add``, ``remove``...) except on 429 and 409 Conflict, exec
  sessions (the command may have started), and connection failures before anything was sent (refused, DNS, TLS): urllib3 already retries
  those once, and waiting longer would only delay the message that the cluster is down or misconfigured.
* A read timeout is retried once at most: a server too slow to answer in time gets no faster when every
  client asks twice as often.

``Retry-After`` (429, 503) is honoured: the pause is at least what the server asked for, and a pause that
would pass the policy's total time ends the retries at once. When they run out, the error says so
(``errors.cluster_kept_failing``): ``The API server at https://... kept answering 503 after 5 attempts over
7.9s (...); try again later or check the cluster.``

Watches (``follow``): a stream that ends or is cut resumes from the last resourceVersion seen (events and
bookmarks); a 410 Gone lists again and reports what changed meanwhile as events, as client-go's reflector does.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import io
import json
import logging
import math
import os
import select
import struct
import sys
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import (
    AlreadyExistsError,
    ClusterUnreachableError,
    ConfigurationError,
    DevServerError,
    DevServerNotReadyError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    WaitCancelledError,
    WatchDropped,
    WatchExpired,
)
from .kube_core import (
    APPLY_PATCH,
    CONFIGMAPS,
    CREATE_TOKEN_ANNOTATION,
    DEVSERVERS,
    EVENTS,
    FLAVORS,
    JSON_PATCH,
    MERGE_PATCH,
    NODES,
    PODS,
    PVCS,
    SECRETS,
    SELF_SUBJECT_REVIEWS,
    SERVICES,
    STATEFULSETS,
    UNSETTLED,
    Resource,
    Retries,
    RetryPolicy,
    Safety,
    TryFailed,
    create_settles,
    error_from_status,
    exception_chain,
    exec_exit_code,
    not_json,
    safety_of,
    stamp_create,
    status_failure,
    transport_failure,
    url,
    watch_event,
    watch_query,
    why_unreachable,
)
from .settings import KubeconfigInfo

if TYPE_CHECKING:
    import socket

    from kubernetes.client import ApiClient

    from .cancellation import Cancellation

# ssl, socket and urllib.parse are imported where used: `import devservers_sdk` stays cheap for `devctl --help`.

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
"""Seconds a single API request may take (connect and read), unless the caller says otherwise."""
CONNECT_TIMEOUT = 10.0
FOLLOW_STREAM_SECONDS = 300
"""The longest single watch stream of an endless ``follow`` (the API server may end it sooner)."""
# Re-exported: callers name resources, patch types and the policy through ``kube`` as before.
__all__ = [
    "APPLY_PATCH",
    "CONFIGMAPS",
    "CREATE_TOKEN_ANNOTATION",
    "DEFAULT_TIMEOUT",
    "DEVSERVERS",
    "EVENTS",
    "FLAVORS",
    "JSON_PATCH",
    "MERGE_PATCH",
    "NODES",
    "PODS",
    "PVCS",
    "SECRETS",
    "SELF_SUBJECT_REVIEWS",
    "SERVICES",
    "STATEFULSETS",
    "ExecSession",
    "Kube",
    "Resource",
    "RetryPolicy",
    "Safety",
]


# -- the client ------------------------------------------------------------------------------------------

class Kube:
    """A connection to one cluster, as a kubeconfig context describes it.

    Args:
        info: the resolved kubeconfig (``settings.load_kubeconfig``).
        timeout: seconds allowed per request (connect is capped at 10 s).
        retry: how transient failures are retried (see the module docstring); default
            ``RetryPolicy.from_env()``.
    """

    def __init__(self, info: KubeconfigInfo, *, timeout: float = DEFAULT_TIMEOUT,
                 retry: RetryPolicy | None = None) -> None:
        self.info = info
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy.from_env()
        self._api: ApiClient | None = None

    # -- plumbing ------------------------------------------------------------------------------------

    @property
    def api(self) -> ApiClient:
        """The official ``ApiClient`` for the context, built on first use."""
        if self._api is None:
            import urllib3
            from kubernetes.client import ApiClient, Configuration
            from kubernetes.config import ConfigException, kube_config

            configuration = Configuration()
            try:
                kube_config.load_kube_config(config_file=os.pathsep.join(self.info.paths),
                                             context=self.info.context, client_configuration=configuration,
                                             persist_config=False)
            except ConfigException as exc:
                raise ConfigurationError(
                    f"Cannot use context '{self.info.context}' of the kubeconfig ({self.info.path}): {exc}. "
                    f"If its credentials expired, log in again or fetch a fresh kubeconfig.") from exc
            # One quick retry on connect errors; everything else is `_retrying`'s, which knows what is safe.
            # Without respect_retry_after_header=False, urllib3 would take a 429 with Retry-After for a
            # retry of its own and, with no status retries left, raise it as a connection error.
            configuration.retries = urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0, other=0,
                                                  respect_retry_after_header=False)
            self._api = ApiClient(configuration)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    def _timeout(self, timeout: float | None) -> tuple[float, float]:
        total = timeout or self.timeout
        return (min(CONNECT_TIMEOUT, total), total)

    def unreachable(self, exc: BaseException, timeout: float | None = None) -> ClusterUnreachableError:
        """The ``ClusterUnreachableError`` for a transport failure, naming context and server."""
        why, advice = why_unreachable(exc, timeout or self.timeout)
        return ClusterUnreachableError(
            f"Cannot reach the cluster of context '{self.info.context}' at {self.info.server or '?'}: {why}. "
            f"{advice}.", context=self.info.context, server=self.info.server)

    def api_error(self, status: int, body: bytes | str | None, *, kind: str, name: str | None,
                  namespace: str | None) -> DevServerError:
        """The SDK's error for a failed answer (``kube_core.error_from_status``, naming this context)."""
        return error_from_status(status, body, kind=kind, name=name, namespace=namespace,
                                 context=self.info.context)

    def _headers(self, method: str, path: str, *, accept: str = "application/json",
                 content_type: str | None = None) -> dict[str, str]:
        api = self.api
        headers: dict[str, str] = {**api.default_headers, "Accept": accept, "User-Agent": "devservers-sdk"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            api.update_params_for_auth(headers, [], ["BearerToken"], path, method, None)
        except Exception as exc:  # an exec/OIDC credential plugin failed: the kubeconfig is unusable
            raise ConfigurationError(
                f"Cannot get credentials for context '{self.info.context}': {exc}. Log in again or fetch a "
                f"fresh kubeconfig.") from exc
        return headers

    def _url(self, path: str, query: Sequence[tuple[str, Any]] | None) -> str:
        return url(self.api.configuration.host, path, query)

    def _transport_failure(self, exc: BaseException, timeout: float | None) -> TryFailed:
        """A network failure of one try: transient once a connection was made, final before that."""
        import ssl

        import urllib3

        chain = exception_chain(exc)
        not_connected = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError,
                         urllib3.exceptions.NameResolutionError, urllib3.exceptions.SSLError, ssl.SSLError,
                         ConnectionRefusedError)
        return transport_failure(
            self.unreachable(exc, timeout), connected=not any(isinstance(e, not_connected) for e in chain),
            timed_out=any(isinstance(e, urllib3.exceptions.ReadTimeoutError | TimeoutError) for e in chain))

    def _status_failure(self, status: int, body: bytes | str | None, retry_after: str | None, *, kind: str,
                        name: str | None, namespace: str | None) -> TryFailed:
        return status_failure(status, body, retry_after, kind=kind, name=name, namespace=namespace,
                              context=self.info.context)

    def _retrying(self, attempt: Callable[[], T], *, safety: Safety,
                  settle: Callable[[DevServerError], Any] | None = None) -> T:
        """Run ``attempt`` until it succeeds, fails for good, or the policy runs out (``kube_core.Retries``).

        Args:
            attempt: one try; raises ``TryFailed``.
            safety: what may be retried.
            settle: asked about a final failure that follows a try which may have been applied: returns
                the result that failure stands for (a DELETE's 404, a create's AlreadyExists for our own
                object), or ``UNSETTLED``.
        """
        retries = Retries(self.retry, safety=safety, server=self.info.server)
        while True:
            try:
                return attempt()
            except TryFailed as failure:
                verdict = retries.after(failure)
                if verdict.pause is None:
                    assert verdict.error is not None
                    if verdict.settle and settle is not None:
                        settled = settle(verdict.error)
                        if settled is not UNSETTLED:
                            return settled
                    raise verdict.error from verdict.cause
                log.debug("%s; try %d of %d again in %.2fs", failure.error, retries.tries + 1,
                          self.retry.attempts, verdict.pause)
                self.retry.sleep(verdict.pause)

    def _send_once(self, method: str, path: str, *, query: Sequence[tuple[str, Any]] | None, body: Any,
                   content_type: str | None, request_timeout: tuple[float, float | None], kind: str,
                   name: str | None, namespace: str | None) -> Any:
        """Send one request and return the urllib3 response (status 2xx), or raise ``TryFailed``."""
        import urllib3

        headers = self._headers(method, path, content_type=content_type or ("application/json" if body is not None
                                                                            else None))
        url = self._url(path, query)
        try:
            response = self.api.rest_client.request(method, url, headers=headers, body=body,
                                                    _request_timeout=request_timeout)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._transport_failure(exc, request_timeout[1]) from exc
        except Exception as exc:
            from kubernetes.client.exceptions import ApiException

            if isinstance(exc, ApiException):
                if not exc.status:  # the client's wrapping of a TLS failure: nothing was sent
                    raise TryFailed(self.unreachable(exc, request_timeout[1])) from exc
                answer_headers = getattr(exc, "headers", None)
                retry_after = answer_headers.get("Retry-After") if answer_headers is not None else None
                raise self._status_failure(exc.status, exc.body, retry_after, kind=kind, name=name,
                                           namespace=namespace) from exc
            raise
        raw = response.response
        if not 200 <= response.status <= 299:
            try:
                data = raw.read()
            except (urllib3.exceptions.HTTPError, OSError):
                data = b""
            finally:
                raw.release_conn()
            raise self._status_failure(response.status, data, raw.headers.get("Retry-After"), kind=kind, name=name,
                                       namespace=namespace)
        return raw

    def _send(self, method: str, path: str, *, query: Sequence[tuple[str, Any]] | None = None, body: Any = None,
              content_type: str | None = None, timeout: float | tuple[float, float | None] | None = None,
              kind: str, name: str | None = None, namespace: str | None = None, safety: Safety = "read") -> Any:
        """Send a request, retried as its ``safety`` allows, and return the urllib3 response (status 2xx).

        For streams (watch, logs): only the connect is retried; the caller reads the body.

        Raises:
            DevServerError: the mapped API status or transport failure.
        """
        request_timeout = timeout if isinstance(timeout, tuple) else self._timeout(timeout)
        return self._retrying(lambda: self._send_once(method, path, query=query, body=body,
                                                      content_type=content_type, request_timeout=request_timeout,
                                                      kind=kind, name=name, namespace=namespace), safety=safety)

    def request(self, method: str, path: str, *, query: Sequence[tuple[str, Any]] | None = None, body: Any = None,
                content_type: str | None = None, timeout: float | None = None, kind: str,
                name: str | None = None, namespace: str | None = None, safety: Safety | None = None,
                settle: Callable[[DevServerError], Any] | None = None) -> Any:
        """One JSON request, retried as its safety allows; returns the decoded body (``None`` when empty).

        Args:
            safety: what may be retried (``Safety``); default: judged from the method, body and content type.
            settle: see ``_retrying``.

        Raises:
            DevServerError: the mapped API status or transport failure (after the retries, if any).
        """
        import urllib3

        request_timeout = self._timeout(timeout)

        def once() -> Any:
            raw = self._send_once(method, path, query=query, body=body, content_type=content_type,
                                  request_timeout=request_timeout, kind=kind, name=name, namespace=namespace)
            try:
                data = raw.read()
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise self._transport_failure(exc, request_timeout[1]) from exc
            finally:
                raw.release_conn()
            if not data:
                return None
            try:
                return json.loads(data)
            except ValueError as exc:
                raise not_json(method, path, data) from exc

        return self._retrying(once, safety=safety or safety_of(method, body, content_type), settle=settle)

    # -- objects -------------------------------------------------------------------------------------

    def get(self, resource: Resource, name: str, *, namespace: str | None = None,
            timeout: float | None = None) -> dict[str, Any]:
        """GET one object as a manifest."""
        return self.request("GET", resource.path(namespace, name), kind=resource.kind, name=name,
                            namespace=namespace, timeout=timeout)

    def list(self, resource: Resource, *, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        """LIST objects (``namespace=None`` lists across namespaces); returns the List manifest."""
        query = [("labelSelector", label_selector), ("fieldSelector", field_selector)]
        return self.request("GET", resource.path(namespace), query=query, kind=resource.kind,
                            namespace=namespace, timeout=timeout)

    def create(self, resource: Resource, manifest: dict[str, Any], *, namespace: str | None = None,
               timeout: float | None = None) -> dict[str, Any]:
        """POST a new object into ``namespace`` (default: the manifest's); returns it as stored.

        A named object is stamped with ``CREATE_TOKEN_ANNOTATION`` (a random token, or the one the manifest
        already carries), so that a retry answered AlreadyExists can tell our own earlier try, committed
        before its answer was lost, from a name someone else took (module docstring, "Retries").

        Raises:
            AlreadyExistsError: the name is taken by an object this call did not create.
        """
        metadata = manifest.get("metadata") or {}
        name = metadata.get("name")
        namespace = namespace or metadata.get("namespace")
        path = resource.path(namespace)
        query = [("fieldValidation", "Strict")]
        if not name:  # generateName: a second try would make a second object
            return self.request("POST", path, body=manifest, kind=resource.kind, namespace=namespace,
                                timeout=timeout, query=query, safety="once")
        body, token = stamp_create(manifest)

        def ours(error: DevServerError) -> Any:
            if not isinstance(error, AlreadyExistsError):
                return UNSETTLED
            try:
                existing = self.get(resource, name, namespace=namespace, timeout=timeout)
            except NotFoundError:  # created by our try, then deleted by someone: the name is free again
                return UNSETTLED
            except PermissionDeniedError:  # may create but not read (the operator's StatefulSets): say taken
                return UNSETTLED
            return existing if create_settles(existing, token) else UNSETTLED

        created: dict[str, Any] = self.request("POST", path, body=body, kind=resource.kind, name=name,
                                               namespace=namespace, timeout=timeout, query=query,
                                               safety="create", settle=ours)
        return created

    def replace(self, resource: Resource, manifest: dict[str, Any], *, namespace: str | None = None,
                timeout: float | None = None) -> dict[str, Any]:
        """PUT the complete object; returns it as stored.

        What ``manifest`` omits is gone afterwards. With ``metadata.resourceVersion`` the write is
        conditional (a 409 goes to the caller); without, it is a pure set, retried like a read.
        """
        metadata = manifest.get("metadata") or {}
        name, namespace = metadata["name"], namespace or metadata.get("namespace")
        return self.request("PUT", resource.path(namespace, name), body=manifest,
                            query=[("fieldValidation", "Strict")], kind=resource.kind, name=name,
                            namespace=namespace, timeout=timeout)

    def patch(self, resource: Resource, name: str, patch: Any, *, namespace: str | None = None,
              content_type: str = MERGE_PATCH, subresource: str | None = None,
              timeout: float | None = None) -> dict[str, Any]:
        """PATCH an object (JSON merge patch unless told otherwise); returns it as stored."""
        return self.request("PATCH", resource.path(namespace, name, subresource), body=patch,
                            content_type=content_type, kind=resource.kind, name=name, namespace=namespace,
                            timeout=timeout)

    def delete(self, resource: Resource, name: str, *, namespace: str | None = None,
               propagation: str = "Background", missing_ok: bool = False,
               timeout: float | None = None) -> dict[str, Any] | None:
        """DELETE an object; returns the server's answer (the object, or a Status).

        Raises:
            NotFoundError: it does not exist, unless ``missing_ok`` (then ``None``). A 404 after a try that
                may have reached the server is that try's success, and returns ``None``.
        """
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}

        def gone(error: DevServerError) -> Any:
            # 404 after a try that may have reached the server: that try deleted it.
            return None if isinstance(error, NotFoundError) else UNSETTLED

        try:
            result: dict[str, Any] | None = self.request("DELETE", resource.path(namespace, name), body=body,
                                                         kind=resource.kind, name=name, namespace=namespace,
                                                         timeout=timeout, settle=gone)
        except NotFoundError:
            if missing_ok:
                return None
            raise
        return result

    def watch(self, resource: Resource, *, namespace: str | None = None, field_selector: str | None = None,
              label_selector: str | None = None, resource_version: str | None = None,
              timeout_seconds: int = 60, cancel: Cancellation | None = None,
              ) -> Generator[tuple[str, dict[str, Any]], None, None]:
        """Watch events (``ADDED``, ``MODIFIED``, ``DELETED``, ``BOOKMARK``) as ``(type, object)``.

        The server ends the stream after ``timeout_seconds``; the read timeout is 5 s longer, so a silent
        dead connection cannot block the caller forever. The connect is retried like any read; what happens
        to the stream after that is the caller's to handle (``follow`` does).

        Args:
            cancel: stops the stream from another thread: its socket is shut down, so a blocked read
                returns at once (see ``cancellation.py``).

        Raises:
            WatchExpired: the resourceVersion is too old; list again.
            WatchDropped: the connection broke mid-stream; watch again from the last resourceVersion.
            WaitCancelledError: ``cancel`` was cancelled.
            DevServerError: any other failure.
        """
        import urllib3

        _raise_if_cancelled(cancel, resource)
        query = watch_query(field_selector=field_selector, label_selector=label_selector,
                            resource_version=resource_version, timeout_seconds=timeout_seconds)
        try:
            raw = self._send("GET", resource.path(namespace), query=query, kind=resource.kind, namespace=namespace,
                             timeout=(min(CONNECT_TIMEOUT, self.timeout), timeout_seconds + 5.0))
        except DevServerError as exc:
            if exc.status == 410:
                raise WatchExpired(f"The watch on {resource.plural} expired: {exc}", status=410) from exc
            raise
        buffer = b""
        interrupt = cancel.on_cancel(lambda: _shut_down(raw)) if cancel is not None else contextlib.nullcontext()
        try:
            with interrupt:
                for chunk in raw.stream(64 * 1024, decode_content=True):
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            _raise_if_cancelled(cancel, resource)
                            yield self._watch_event(line, resource, namespace)
                _raise_if_cancelled(cancel, resource)
                if buffer.strip():
                    yield self._watch_event(buffer, resource, namespace)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            _raise_if_cancelled(cancel, resource)
            error = self.unreachable(exc, timeout_seconds + 5.0)
            raise WatchDropped(error.message, context=error.context, server=error.server) from exc
        finally:
            if cancel is not None and cancel.cancelled:
                with contextlib.suppress(Exception):
                    raw.close()  # shut down mid-stream: never back into the pool
            raw.release_conn()

    def follow(self, resource: Resource, *, namespace: str | None = None, field_selector: str | None = None,
               label_selector: str | None = None, resource_version: str | None = None,
               seen: Iterable[dict[str, Any]] = (), timeout: float | None,
               cancel: Cancellation | None = None) -> Generator[tuple[str, dict[str, Any]], None, None]:
        """Events for ``timeout`` seconds, across the ends of watch streams (a list-then-watch loop).

        Without ``resource_version`` it starts with a LIST, whose items come first as ``ADDED``. A stream
        that ends (the server's timeout, a load balancer, a dropped connection) is resumed from the last
        resourceVersion seen, bookmarks included; a 410 Gone lists again and yields the difference from
        what was known as ``ADDED``, ``MODIFIED`` and ``DELETED`` events. The caller may stop at any time.

        Args:
            resource_version: where to start watching, e.g. that of the caller's own GET or LIST.
            seen: the objects the caller already knows at ``resource_version``, so that a relist can
                report their deletion.
            timeout: seconds to follow for; ``None``: until the caller stops or ``cancel`` is cancelled
                (each stream then lasts at most ``FOLLOW_STREAM_SECONDS``).
            cancel: stops following from another thread, at once (``WaitCancelledError``).

        Raises:
            WaitCancelledError: ``cancel`` was cancelled.
            DevServerError: a request failed for good (after its retries), or the stream kept dropping
                (more than the policy's attempts in a row without an event).
        """
        policy = self.retry
        deadline = policy.clock() + (math.inf if timeout is None else timeout)

        def pause(seconds: float) -> None:
            if cancel is None:
                policy.sleep(seconds)
            elif cancel.sleep(seconds):
                _raise_if_cancelled(cancel, resource)
        known = {_object_key(obj): obj for obj in seen}
        version = resource_version
        drops = 0
        while (remaining := deadline - policy.clock()) > 0:
            _raise_if_cancelled(cancel, resource)
            if version is None:
                listing = self.list(resource, namespace=namespace, label_selector=label_selector,
                                    field_selector=field_selector)
                version = str((listing.get("metadata") or {}).get("resourceVersion") or "") or None
                yield from _relisted(known, listing.get("items") or [])
                if version is None:  # a server that cannot say where its list stands: nothing to resume from
                    raise ServerError(f"The cluster listed {resource.plural} without a resourceVersion; "
                                      f"cannot watch them.")
                continue
            started, events = policy.clock(), 0
            try:
                for event, obj in self.watch(resource, namespace=namespace, field_selector=field_selector,
                                             label_selector=label_selector, resource_version=version,
                                             timeout_seconds=max(1, math.ceil(min(remaining, FOLLOW_STREAM_SECONDS))),
                                             cancel=cancel):
                    events += 1
                    drops = 0
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or "") or version
                    if event == "DELETED":
                        known.pop(_object_key(obj), None)
                    elif event != "BOOKMARK":
                        known[_object_key(obj)] = obj
                    yield event, obj
                    if policy.clock() >= deadline:
                        return
            except WatchExpired:
                version = None
                continue
            except WatchDropped:
                drops += 1
                if drops >= policy.attempts:
                    raise
                pause(min(policy.pause(drops), max(0.0, deadline - policy.clock())))
                continue
            if not events and policy.clock() - started < 1.0:
                # A stream ended at once, with nothing in it: do not come straight back.
                drops += 1
                pause(min(policy.pause(drops), max(0.0, deadline - policy.clock())))

    def _watch_event(self, line: bytes, resource: Resource, namespace: str | None) -> tuple[str, dict[str, Any]]:
        return watch_event(line, resource, namespace, context=self.info.context, server=self.info.server)

    # -- pods ----------------------------------------------------------------------------------------

    def logs(self, namespace: str, pod: str, *, container: str | None = None, follow: bool = False,
             tail: int | None = None, timeout: float | None = None,
             previous: bool = False) -> Generator[bytes, None, None]:
        """Chunks of a pod's log as they arrive; with ``follow`` the stream ends when the container does.

        A followed stream has no read timeout (it may legitimately be silent for hours); closing the
        iterator closes the connection.
        """
        import urllib3

        query = [("container", container), ("follow", "true" if follow else None), ("tailLines", tail),
                 ("previous", "true" if previous else None)]
        read_timeout: float | None = None if follow else (timeout or self.timeout)
        connect = min(CONNECT_TIMEOUT, timeout or self.timeout)
        raw = self._send("GET", PODS.path(namespace, pod, "log"), query=query, kind="Pod", name=pod,
                         namespace=namespace, timeout=(connect, read_timeout))
        try:
            yield from raw.stream(64 * 1024, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self.unreachable(exc, read_timeout) from exc
        finally:
            raw.release_conn()

    def exec(self, namespace: str, pod: str, command: Sequence[str], *, container: str | None = None,
             stdin: bool = False, tty: bool = False, timeout: float | None = None) -> ExecSession:
        """Open a ``pods/exec`` session (the command starts at once).

        Args:
            stdin: open the stdin channel.
            tty: allocate a terminal (stderr is then merged into stdout by the kubelet).
            timeout: seconds allowed for the connection and handshake.
        """
        query: list[tuple[str, Any]] = [("command", part) for part in command]
        query += [("container", container), ("stdin", "true" if stdin else None), ("stdout", "true"),
                  ("stderr", None if tty else "true"), ("tty", "true" if tty else None)]
        return self._channels(PODS.path(namespace, pod, "exec"), query, [V5_PROTOCOL, V4_PROTOCOL],
                              pod=pod, namespace=namespace, timeout=timeout)

    def port_forward(self, namespace: str, pod: str, port: int, *, timeout: float | None = None) -> ExecSession:
        """Open a ``pods/portforward`` stream to one TCP port of a pod (one connection to the pod).

        The ``v4.channel.k8s.io`` WebSocket protocol the Python client speaks: channel 0 carries the data,
        channel 1 the kubelet's error text; each starts with the port number (two bytes, little endian).
        One WebSocket per connection, so connections never wait behind each other's frames.
        """
        return self._channels(PODS.path(namespace, pod, "portforward"), [("ports", port)], [V4_PROTOCOL],
                              pod=pod, namespace=namespace, timeout=timeout)

    def _channels(self, path: str, query: Sequence[tuple[str, Any]], subprotocols: Sequence[str], *, pod: str,
                  namespace: str, timeout: float | None) -> ExecSession:
        """The WebSocket handshake of a channel protocol (exec, port-forward), then a non-blocking session."""
        import ssl

        from websocket import WebSocket, WebSocketBadStatusException, WebSocketException

        configuration = self.api.configuration
        headers = self._headers("GET", path)
        url = self._url(path, query).replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        sslopt: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED if configuration.verify_ssl else ssl.CERT_NONE}
        if configuration.verify_ssl:
            if configuration.ssl_ca_cert:
                sslopt["ca_certs"] = configuration.ssl_ca_cert
            if configuration.assert_hostname is not None:
                sslopt["check_hostname"] = configuration.assert_hostname
        if configuration.cert_file:
            sslopt["certfile"] = configuration.cert_file
        if configuration.key_file:
            sslopt["keyfile"] = configuration.key_file
        if configuration.tls_server_name:
            sslopt["server_hostname"] = configuration.tls_server_name
        options: dict[str, Any] = {"header": [f"Authorization: {headers['authorization']}"]
                                   if "authorization" in headers else [],
                                   "subprotocols": list(subprotocols),
                                   "timeout": min(CONNECT_TIMEOUT, timeout or self.timeout)}
        if configuration.proxy:
            from kubernetes.stream.ws_client import websocket_proxycare

            options = websocket_proxycare(options, configuration, url, headers)
        websocket = WebSocket(sslopt=sslopt, skip_utf8_validation=True)
        try:
            websocket.connect(url, **options)
        except WebSocketBadStatusException as exc:
            websocket.shutdown()
            body = exc.resp_body.decode(errors="replace") if isinstance(exc.resp_body, bytes) else str(exc.resp_body)
            if "container not found" in body:
                # The node's answer for a container that is not running at this moment (starting again after a
                # restart, or its pod being replaced by a rollout): a state to wait out, not a bad request.
                raise DevServerNotReadyError(
                    f"Pod '{pod}' in namespace '{namespace}' has no running container right now (it is starting, "
                    f"restarting or being replaced). Wait until it is Running and try again.",
                    status=exc.status_code, kind="Pod", name=pod, namespace=namespace) from exc
            raise self.api_error(exc.status_code, exc.resp_body, kind="Pod", name=pod,
                                 namespace=namespace) from exc
        except (WebSocketException, OSError) as exc:
            websocket.shutdown()
            raise self.unreachable(exc, options["timeout"]) from exc
        sock = websocket.sock
        if sock is None:
            raise self.unreachable(ConnectionResetError("the connection closed during the WebSocket handshake"))
        sock.settimeout(None)
        sock.setblocking(False)
        return ExecSession(sock, protocol=websocket.subprotocol or "", unreachable=self.unreachable)

    # -- identity ------------------------------------------------------------------------------------

    def whoami(self) -> str | None:
        """The username the server sees for our credentials (SelfSubjectReview), or ``None`` if not served."""
        # A real apiserver ignores the review's metadata; the name is there for servers that insist on one.
        body = {"apiVersion": SELF_SUBJECT_REVIEWS.api_version, "kind": SELF_SUBJECT_REVIEWS.kind,
                "metadata": {"name": "devservers-sdk-whoami"}}
        try:
            review = self.request("POST", SELF_SUBJECT_REVIEWS.path(None), body=body,
                                  kind=SELF_SUBJECT_REVIEWS.kind, safety="read")  # a question, not a write
        except (NotFoundError, PermissionDeniedError):
            return None
        username = ((review or {}).get("status") or {}).get("userInfo", {}).get("username")
        return str(username) if username else None


def _shut_down(raw: Any) -> None:
    """Make a read blocked on ``raw`` (a urllib3 response, in another thread) return now."""
    try:
        raw.shutdown()  # urllib3 >= 2.3: shuts the socket's read side, which wakes a blocked read
    except (AttributeError, ValueError, RuntimeError):
        raw.close()


def _raise_if_cancelled(cancel: Cancellation | None, resource: Resource) -> None:
    if cancel is not None and cancel.cancelled:
        raise WaitCancelledError(f"Stopped watching {resource.plural}: the wait was cancelled.")


def _object_key(obj: dict[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _relisted(known: dict[tuple[str, str], dict[str, Any]],
              items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The events that turn ``known`` into ``items`` (a fresh LIST); updates ``known`` in place."""
    current = {_object_key(item): item for item in items}
    events: list[tuple[str, dict[str, Any]]] = []
    for key in [key for key in known if key not in current]:
        events.append(("DELETED", known.pop(key)))
    for key, item in current.items():
        before = known.get(key)
        if before is not None and (before.get("metadata") or {}).get("uid") != (item.get("metadata") or {}).get("uid"):
            # Deleted and made again under its name while the watch was down: two objects, as a watch says.
            events.append(("DELETED", before))
            before = None
        if before is None:
            events.append(("ADDED", item))
        elif (before.get("metadata") or {}).get("resourceVersion") != (item.get("metadata") or {}).get(
                "resourceVersion"):
            events.append(("MODIFIED", item))
        known[key] = item
    return events


# -- pods/exec over WebSocket ----------------------------------------------------------------------------

V5_PROTOCOL = "v5.channel.k8s.io"
V4_PROTOCOL = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_RECV_SIZE = 256 * 1024
_FRAME_SIZE = 256 * 1024
_SEND_SIZE = 64 * 1024
_REFILL_BELOW = 1024 * 1024
_DIRECT_RECEIVE = 8 * 1024
_RECV_BUDGET = 4 * 1024 * 1024  # per pump, so that a chatty command cannot starve its stdin


_MASKS: dict[int, bytes] = {}


def _mask_table(key_byte: int) -> bytes:
    table = _MASKS.get(key_byte)
    if table is None:
        table = _MASKS[key_byte] = bytes(b ^ key_byte for b in range(256))
    return table


def _frame_header(opcode: int, length: int) -> bytes:
    if length < 126:
        return struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    if length < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)


def _frame(opcode: int, payload: bytes, *, prefix: bytes = b"", mask: bool = True) -> tuple[bytes, bytes]:
    """One client frame (RFC 6455 §5.2) carrying ``prefix + payload``, as (head, masked payload).

    Client frames are always marked masked. Masking exists so that a hostile script cannot choose the
    bytes an intermediary sees on the wire (§10.3); inside TLS nobody on the path sees them at all, so
    over ``wss://`` the key is zero and the payload goes out without being copied (``mask=False``) -- for
    100 MB of stdin, masking would be a third of the client's work. Over plain ``ws://`` the key is a
    random byte repeated four times, which makes masking one ``bytes.translate``.
    The two parts are queued separately to save a copy of the payload.
    """
    if not mask:
        return _frame_header(opcode, len(prefix) + len(payload)) + b"\0\0\0\0" + prefix, payload
    key_byte = os.urandom(1)[0]
    table = _mask_table(key_byte)
    head = _frame_header(opcode, len(prefix) + len(payload)) + bytes((key_byte,)) * 4 + prefix.translate(table)
    return head, payload.translate(table)


Message = tuple[int, bytes | bytearray]
"""``(channel, data)``; large stdout/stderr frames arrive as the ``bytearray`` they were received into."""


@dataclass
class _Incoming:
    """A large data frame being received in place (``view``, without the channel byte).

    ``data`` is its own buffer, or ``None`` when it is received straight into the channel's sink, in
    which case ``base`` is the sink's exported buffer, released when the frame is complete.
    """

    channel: int
    data: bytearray | None
    view: memoryview
    filled: int
    base: memoryview | None = None


@dataclass
class _Source:
    """A payload being framed as the socket drains: already masked with ``key``."""

    channel: int
    key: int
    data: memoryview
    position: int = 0


def _wait(read_fds: Sequence[int], write_fds: Sequence[int], timeout: float | None) -> tuple[list[int], list[int]]:
    """select(2) semantics without its 1024-descriptor ceiling (a long-lived notebook can pass it) on Linux.

    Elsewhere ``select`` stays: macOS's poll(2) does not work on terminals, which ``shell`` waits on.
    """
    if not hasattr(select, "poll") or sys.platform == "darwin":
        readable, writable, _ = select.select(list(read_fds), list(write_fds), [], timeout)
        return list(readable), list(writable)
    poller = select.poll()
    for fd in {*read_fds, *write_fds}:
        poller.register(fd, (select.POLLIN if fd in read_fds else 0) | (select.POLLOUT if fd in write_fds else 0))
    events = poller.poll(None if timeout is None else math.ceil(timeout * 1000))
    done = select.POLLHUP | select.POLLERR | select.POLLNVAL  # readable, so that the read reports it
    return ([fd for fd, event in events if event & (select.POLLIN | done) and fd in read_fds],
            [fd for fd, event in events if event & (select.POLLOUT | done) and fd in write_fds])


class ExecSession:
    """One running ``pods/exec`` command: channels in, channels out, and the final status.

    Drive it with ``pump``: it sends what is queued, waits for input (from the server and from any
    extra file descriptors, e.g. a terminal), and returns the ``(channel, bytes)`` messages received.
    The session is over when ``closed`` is true; ``exit_code`` then tells how the command ended.
    """

    def __init__(self, sock: socket.socket, *, protocol: str, unreachable: Any) -> None:
        import ssl

        self.sock = sock
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._mask = not self._tls
        self._would_block = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError)
        self.protocol = protocol
        self._unreachable = unreachable
        self._out: collections.deque[bytes | memoryview] = collections.deque()
        self._out_bytes = 0
        self._out_offset = 0
        self._source: _Source | None = None
        self._close_after_source = False
        self._in = bytearray()
        self._buffer = bytearray(_RECV_SIZE)
        self._view = memoryview(self._buffer)
        self._needed = 2
        self._large: _Incoming | None = None
        self.sinks: dict[int, io.BytesIO] = {}
        """Channels collected into a buffer instead of returned by ``pump`` (``exec`` uses this for output:
        large frames are then received straight into it, and ``getvalue()`` costs no copy)."""
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self.closed = False
        self.status: dict[str, Any] | None = None
        self.error_text = ""

    # -- sending -----------------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Bytes queued but not yet handed to the socket."""
        source = self._source
        return self._out_bytes + (len(source.data) - source.position if source is not None else 0)

    @property
    def can_close_stdin(self) -> bool:
        return self.protocol == V5_PROTOCOL

    def send(self, channel: int, data: bytes) -> None:
        """Queue data for a channel (split into frames of at most 256 KiB)."""
        if self.closed:
            return
        prefix = bytes((channel,))
        if len(data) <= _FRAME_SIZE:
            self._queue(*_frame(_OP_BINARY, bytes(data), prefix=prefix, mask=self._mask))
            return
        for start in range(0, len(data), _FRAME_SIZE):
            self._queue(*_frame(_OP_BINARY, bytes(data[start:start + _FRAME_SIZE]), prefix=prefix,
                                mask=self._mask))

    def send_all(self, channel: int, data: bytes, *, then_close: bool = False) -> None:
        """Queue a whole payload for a channel, framed lazily as the socket drains.

        Over TLS the frames point into ``data`` itself (no copy); over plain ``ws://`` it is masked once,
        one ``translate`` with one random key for all its frames.

        Args:
            then_close: half-close the channel after the payload (v5), e.g. end of stdin.
        """
        if self.closed:
            return
        key = os.urandom(1)[0] if self._mask else 0
        masked = data.translate(_mask_table(key)) if key else data
        self._source = _Source(channel, key, memoryview(masked))
        self._close_after_source = then_close
        self._refill()

    def _refill(self) -> None:
        source = self._source
        while source is not None and self._out_bytes < _REFILL_BELOW:
            piece = source.data[source.position:source.position + _FRAME_SIZE]
            source.position += len(piece)
            head = _frame_header(_OP_BINARY, len(piece) + 1) + bytes((source.key,)) * 4
            self._queue(head + bytes((source.channel ^ source.key,)), piece)
            if source.position >= len(source.data):
                self._source = source = None
                if self._close_after_source:
                    self.close_stdin()

    def close_stdin(self) -> None:
        """Tell the command its stdin is at end of file (v5 only; v4 has no way to say it)."""
        if self.can_close_stdin and not self.closed:
            self._queue(*_frame(_OP_BINARY, bytes([CLOSE, STDIN]), mask=self._mask))

    def resize(self, width: int, height: int) -> None:
        """Tell the terminal of a TTY session its new size."""
        self.send(RESIZE, json.dumps({"Width": width, "Height": height}).encode())

    # -- the loop ----------------------------------------------------------------------------------

    def pump(self, timeout: float | None, *, read_fds: Sequence[int] = (),
             hungry: bool = False) -> tuple[list[Message], list[int]]:
        """Send, wait up to ``timeout`` seconds, receive.

        Args:
            timeout: the longest wait for something to happen (``None``: no limit).
            read_fds: other descriptors to wait on (a terminal, a pipe feeding stdin).
            hungry: the caller has more to send: return as soon as the queue has drained instead of
                waiting for the server (which may have nothing to say until it gets more input).

        Returns:
            The messages received, and those of ``read_fds`` that are readable.
        """
        messages: list[Message] = []
        if self.closed:
            return messages, []
        self._flush()
        if hungry and not self._out and self._source is None:
            timeout = 0.0
        if self._pending():
            ready_fds = _wait(read_fds, (), 0.0)[0] if read_fds else []
            self._receive(messages)
            return messages, ready_fds
        sock_fd = self.sock.fileno()
        wanted_write = [sock_fd] if self._out or self._source is not None else []
        try:
            readable, writable = _wait([sock_fd, *read_fds], wanted_write, timeout)
        except InterruptedError:  # a signal (SIGWINCH); the caller loops
            return messages, []
        if writable:
            self._flush()
        if sock_fd in readable:
            self._receive(messages)
        return messages, [fd for fd in readable if fd != sock_fd]

    def _pending(self) -> bool:
        return self._tls and self.sock.pending() > 0  # type: ignore[attr-defined]

    def _queue(self, *parts: bytes | memoryview) -> None:
        for part in parts:
            if part:
                self._out.append(part)
                self._out_bytes += len(part)

    def _unsent(self) -> bytes:
        """What must still go out before a close frame: the rest of a frame already begun, nothing more."""
        data = bytes(self._out[0][self._out_offset:]) if self._out and self._out_offset else b""
        self._out.clear()
        self._source = None
        self._out_bytes = self._out_offset = 0
        return data

    def _flush(self) -> None:
        # After a "would block", TLS wants the very same bytes again: the head of the queue does not move.
        while not self.closed:
            if self._source is not None and self._out_bytes < _REFILL_BELOW:
                self._refill()
            if not self._out:
                return
            head, offset = self._out[0], self._out_offset
            try:
                with memoryview(head) as view:
                    sent = self.sock.send(view[offset:offset + _SEND_SIZE])
            except self._would_block:
                return
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                    self._finish()
                    return
                raise self._unreachable(exc) from exc
            self._out_bytes -= sent
            if offset + sent >= len(head):
                self._out.popleft()
                self._out_offset = 0
            else:
                self._out_offset = offset + sent

    def _receive(self, messages: list[Message]) -> None:
        received = 0
        while not self.closed and received < _RECV_BUDGET:
            large = self._large
            target = large.view[large.filled:] if large is not None else self._view
            try:
                count = self.sock.recv_into(target)
            except self._would_block:
                break
            except OSError as exc:
                if exc.errno == errno.ECONNRESET:
                    self._finish()
                    break
                raise self._unreachable(exc) from exc
            if not count:
                self._finish()
                break
            received += count
            if large is not None:
                large.filled += count
                if large.filled == len(large.view):
                    self._large = None
                    large.view.release()
                    if large.base is not None:
                        large.base.release()
                    if large.data is not None:
                        self._deliver(large.channel, large.data, messages)
                    self._parse(messages)
            else:
                self._in += self._view[:count]
                if len(self._in) >= self._needed:
                    self._parse(messages)

    def _parse(self, messages: list[Message]) -> None:
        buffer = self._in
        self._needed = 2
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    self._needed = 4
                    return
                length, offset = struct.unpack_from("!H", buffer, 2)[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    self._needed = 10
                    return
                length, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
            if second & 0x80:  # servers never mask; tolerate it anyway
                offset += 4
            opcode, fin = first & 0x0F, first & 0x80 != 0
            whole_data_frame = fin and opcode in (_OP_TEXT, _OP_BINARY) and length and not second & 0x80
            if len(buffer) < offset + length:
                if whole_data_frame and length >= _DIRECT_RECEIVE and len(buffer) == offset:
                    self._needed = offset + 1  # the channel byte, then the rest goes in place
                elif whole_data_frame and length >= _DIRECT_RECEIVE:
                    # A big frame: receive the rest of it in place, into the channel's sink if it has one,
                    # else into a buffer of its own (no copies beyond the one TLS decryption makes).
                    self._large = self._receive_in_place(buffer[offset], length - 1, buffer[offset + 1:])
                    del buffer[:]
                else:
                    self._needed = offset + length
                return
            if whole_data_frame:
                # The common case, a whole message in one frame: copy the data out once.
                channel = buffer[offset]
                with memoryview(buffer) as view:
                    data_bytes = bytes(view[offset + 1:offset + length])
                del buffer[:offset + length]
                self._deliver(channel, data_bytes, messages)
                continue
            if second & 0x80:
                key = buffer[offset - 4:offset]
                payload = bytes(b ^ key[i % 4] for i, b in enumerate(buffer[offset:offset + length]))
            else:
                with memoryview(buffer) as view:
                    payload = bytes(view[offset:offset + length])
            del buffer[:offset + length]
            self._frame_received(fin, opcode, payload, messages)
            if self.closed:
                return

    def _receive_in_place(self, channel: int, size: int, already: bytearray) -> _Incoming:
        sink = self.sinks.get(channel)
        if sink is None:
            data = bytearray(size)
            data[:len(already)] = already
            return _Incoming(channel, data, memoryview(data), len(already))
        start = sink.seek(0, io.SEEK_END)
        sink.seek(start + size - 1)
        sink.write(b"\0")  # grow the sink to hold the frame, then receive into that space
        base = sink.getbuffer()
        view = base[start:start + size]
        view[:len(already)] = already
        return _Incoming(channel, None, view, len(already), base)

    def _frame_received(self, fin: bool, opcode: int, payload: bytes, messages: list[Message]) -> None:
        if opcode == _OP_PING:
            self._queue(*_frame(_OP_PONG, payload, mask=self._mask))
            return
        if opcode == _OP_PONG:
            return
        if opcode == _OP_CLOSE:
            with contextlib.suppress(OSError, ValueError):
                self.sock.setblocking(True)
                self.sock.settimeout(1.0)
                self.sock.sendall(self._unsent() + b"".join(_frame(_OP_CLOSE, payload[:2], mask=self._mask)))
            self._finish()
            return
        if opcode in (_OP_TEXT, _OP_BINARY):
            self._fragment_opcode = opcode
            self._fragments = [payload]
        else:
            self._fragments.append(payload)
        if not fin:
            return
        message = b"".join(self._fragments)
        self._fragments = []
        if message:
            self._deliver(message[0], message[1:], messages)

    def _deliver(self, channel: int, data: bytes | bytearray, messages: list[Message]) -> None:
        if channel == CLOSE:
            return  # the server half-closed a channel: nothing to do, the status follows
        if channel == ERROR:
            self._on_status(data)
        sink = self.sinks.get(channel)
        if sink is not None:
            sink.seek(0, io.SEEK_END)
            sink.write(data)
            return
        messages.append((channel, data))

    def _on_status(self, data: bytes | bytearray) -> None:
        try:
            status = json.loads(data)
        except ValueError:
            status = None
        if isinstance(status, dict):
            self.status = status
        else:
            self.error_text += data.decode("utf-8", "replace")

    def _finish(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def close(self) -> None:
        """Hang up (the server then kills the command)."""
        if not self.closed:
            with contextlib.suppress(OSError):
                self.sock.setblocking(True)
                self.sock.settimeout(1.0)
                self.sock.sendall(self._unsent() + b"".join(_frame(_OP_CLOSE, struct.pack("!H", 1000),
                                                                   mask=self._mask)))
            self._finish()

    # -- the outcome -------------------------------------------------------------------------------

    @property
    def exit_code(self) -> int | None:
        """0 on success, the command's code on a non-zero exit, ``None`` if it never reported one."""
        return exec_exit_code(self.status)

    @property
    def failure(self) -> str | None:
        """Why the command could not run (e.g. not found in the image), when it did not report an exit code."""
        if self.exit_code is not None:
            return None
        if self.status is not None:
            return str(self.status.get("message") or self.status.get("reason") or "unknown failure")
        return self.error_text.strip() or None
