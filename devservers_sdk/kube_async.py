"""The asyncio twin of ``kube.py``, for the operator: the same verbs, resources, errors and retries.

Why a second module: the operator runs on kopf's event loop, and a blocking HTTP call there stalls every
watch and every other DevServer (the peer project's flavor sweeper did exactly that). ``kubernetes.aio``
brings the official configuration loading (kubeconfig, in-cluster service-account tokens that rotate,
exec credential plugins such as ``aws eks get-token``) and an aiohttp session with the right TLS
context; requests are then sent raw, as in ``kube.py``: bodies are JSON in and JSON out, never the
generated models, which would cost more CPU than the whole reconcile.

Everything the two clients must agree on is ``kube_core``'s: the ``Resource`` descriptors and paths, the
one reading of a failed answer (``error_from_status``), and when a request may be sent again (``safety_of``,
``Retries`` under a ``RetryPolicy``). This module only sends bytes and sleeps with ``asyncio.sleep``.

Rules this module keeps:

* **One client per process.** ``AsyncKube.connect`` is called once (kopf's startup handler) and closed at
  cleanup; it owns one aiohttp connection pool.
* **Namespaced reads only** for pods and events: ``list`` refuses to list them across namespaces.
* **Complete objects** (``replace``, a PUT of the whole object): what the desired manifest omits is gone
  afterwards (a GPU flavor changed to a CPU one loses its GPU limit). Not server-side apply: it removes
  only fields this manager set itself, so a hand edit (``kubectl edit`` adding a toleration) would stay;
  and not a strategic merge, which removes nothing (the peer project's bug).
* **Transient failures are retried here**, as the SDK's blocking client retries them: an etcd leader change
  (500), API priority and fairness (429 with ``Retry-After``), a gateway's 502/503/504 (often an HTML page,
  not a Status), a connection reset. Each retry is logged at INFO, one line, no traceback; a reconcile fails
  only when the policy runs out, and the work queue then logs a WARNING and tries again later. A named create
  is retried only because its ``CREATE_TOKEN_ANNOTATION`` tells its own earlier, committed try from a name
  taken; an Event (``generateName``) only on 429; exec never.
* **Every failure is a ``DevServerError``**: API statuses through ``kube_core.error_from_status``, the network
  as ``ClusterUnreachableError``, the kubeconfig as ``ConfigurationError``; chained with ``raise ... from``.
  Every request has a timeout.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp

from .errors import (
    AlreadyExistsError,
    ClusterUnreachableError,
    ConfigurationError,
    DevServerError,
    ExecError,
    NotFoundError,
    PermissionDeniedError,
    WatchDropped,
    WatchExpired,
)
from .kube_core import (
    CONFIGMAPS,
    DEVSERVERS,
    EVENTS,
    FLAVORS,
    MERGE_PATCH,
    NODES,
    PODS,
    PVCS,
    SECRETS,
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

if TYPE_CHECKING:
    from kubernetes.aio.client import ApiClient

__all__ = [
    "CONFIGMAPS",
    "DEFAULT_TIMEOUT",
    "DEVSERVERS",
    "EVENTS",
    "FIELD_MANAGER",
    "FLAVORS",
    "NODES",
    "PODS",
    "PVCS",
    "SECRETS",
    "SERVICES",
    "STATEFULSETS",
    "AsyncKube",
    "Resource",
    "RetryPolicy",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
"""Seconds one request may take (connect is capped at 10 s)."""
CONNECT_TIMEOUT = 10.0
FIELD_MANAGER = "devservers-operator"

_EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
_STDOUT, _STDERR, _ERROR, _CLOSE = 1, 2, 3, 255
_SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class AsyncKube:
    """An asyncio connection to one cluster. Build it with ``await AsyncKube.connect()``.

    Args:
        api: a ``kubernetes.aio`` ``ApiClient`` whose configuration holds the server and credentials.
        timeout: seconds per request.
        context: the kubeconfig context (or ``in-cluster``), named in errors.
        retry: how transient failures are retried (``kube_core.RetryPolicy``); default
            ``RetryPolicy.from_env()``. Its ``clock`` is used; its ``sleep`` is not (it would block the loop).
        sleep: how to pause between tries (tests pass their own).
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        context: str = "in-cluster",
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api = api
        self.timeout = timeout
        self.context = context
        self.retry = retry if retry is not None else RetryPolicy.from_env()
        self._sleep = sleep

    # -- lifetime ------------------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> AsyncKube:
        """Load in-cluster credentials inside a pod (unless a kubeconfig is named), else the kubeconfig.

        Precedence: ``kubeconfig`` argument > ``KUBECONFIG`` > in-cluster service account >
        ``~/.kube/config``.

        Raises:
            ConfigurationError: neither works; the message says what was tried.
        """
        from kubernetes.aio.client import ApiClient, Configuration
        from kubernetes.aio.config import ConfigException, load_incluster_config, load_kube_config

        configuration = Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG") or None
        in_cluster = (
            path is None
            and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
            and os.path.exists(_SERVICE_ACCOUNT_TOKEN)
        )
        try:
            if in_cluster:
                load_incluster_config(client_configuration=configuration)  # refreshes the rotating token
                name = "in-cluster"
            else:
                first = path.split(os.pathsep)[0] if path else None
                loader = await load_kube_config(
                    config_file=first,
                    context=context,
                    client_configuration=configuration,
                    persist_config=False,
                )
                name = loader.current_context["name"]
                user = getattr(loader, "_user", None)
                if user is not None and "exec" in user:
                    # Exec plugins (aws eks get-token) issue tokens that expire in minutes: refresh them.
                    async def refresh(config: Any) -> None:
                        await loader.load_from_exec_plugin()
                        config.api_key["BearerToken"] = loader.token

                    configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]
        except (ConfigException, OSError) as exc:
            where = f"kubeconfig {path}" if path else "the in-cluster service account or ~/.kube/config"
            raise ConfigurationError(
                f"Cannot load cluster credentials from {where}: {exc}. Set KUBECONFIG, or run the operator "
                "in a pod with a service account."
            ) from exc
        # aiohttp-retry would replay any method, writes included: retries are ours, judged per request.
        configuration.retries = None
        return cls(ApiClient(configuration), timeout=timeout, context=name, retry=retry, sleep=sleep)

    async def close(self) -> None:
        await self.api.close()

    @property
    def server(self) -> str:
        return str(self.api.configuration.host)

    # -- plumbing ------------------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        rest = self.api.rest_client
        if rest.pool_manager is None:
            rest.pool_manager = rest._create_pool_manager()
        session: aiohttp.ClientSession = rest.pool_manager
        return session

    async def _headers(self, method: str, path: str, *, content_type: str | None) -> dict[str, str]:
        headers = {**self.api.default_headers, "Accept": "application/json", "User-Agent": FIELD_MANAGER}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            await self.api.update_params_for_auth(headers, [], ["BearerToken"], path, method, None)
        except Exception as exc:  # a credential plugin failed: nothing this process can fix
            raise ConfigurationError(
                f"Cannot get credentials for context '{self.context}': {exc}. Check the kubeconfig or the "
                "operator's service account."
            ) from exc
        return headers

    def _url(self, path: str, query: Sequence[tuple[str, Any]] | None) -> str:
        return url(self.server, path, query)

    def unreachable(self, exc: BaseException, timeout: float | None = None) -> ClusterUnreachableError:
        why, _ = why_unreachable(exc, timeout)
        return ClusterUnreachableError(
            f"Cannot reach the cluster of context '{self.context}' at {self.server}: {why}. "
            "Check that the API server is up and reachable from the operator.",
            context=self.context,
            server=self.server,
        )

    def _transport_failure(self, exc: BaseException, timeout: float | None) -> TryFailed:
        """A network failure of one try: transient once a connection was made, final before that."""
        import ssl

        chain = exception_chain(exc)
        not_connected = (
            aiohttp.ClientConnectorError,  # refused, DNS, TLS (ClientSSLError is one)
            aiohttp.ConnectionTimeoutError,
            ssl.SSLError,
            ConnectionRefusedError,
        )
        return transport_failure(
            self.unreachable(exc, timeout),
            connected=not any(isinstance(e, not_connected) for e in chain),
            timed_out=any(isinstance(e, TimeoutError) for e in chain),
        )

    async def _respond(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] | None,
        body: Any,
        content_type: str | None,
        timeout: aiohttp.ClientTimeout,
        kind: str,
        name: str | None,
        namespace: str | None,
    ) -> Any:
        """One try, up to a 2xx answer whose body is not read yet (the ``RESTResponse``), or ``TryFailed``."""
        headers = await self._headers(method, path, content_type=content_type)
        try:
            response = await self.api.rest_client.request(
                method, self._url(path, query), headers=headers, body=body, _request_timeout=timeout
            )
            if 200 <= response.status <= 299:
                return response
            data = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._transport_failure(exc, timeout.total or timeout.sock_read) from exc
        raise status_failure(
            response.status,
            data,
            response.headers.get("Retry-After"),
            kind=kind,
            name=name,
            namespace=namespace,
            context=self.context,
        )

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] | None,
        body: Any,
        content_type: str | None,
        timeout: float,
        kind: str,
        name: str | None,
        namespace: str | None,
    ) -> Any:
        """One try: the decoded body (``None`` when empty), or ``TryFailed``."""
        client_timeout = aiohttp.ClientTimeout(total=timeout, connect=min(CONNECT_TIMEOUT, timeout))
        response = await self._respond(
            method,
            path,
            query=query,
            body=body,
            content_type=content_type,
            timeout=client_timeout,
            kind=kind,
            name=name,
            namespace=namespace,
        )
        try:
            data = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._transport_failure(exc, timeout) from exc
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise not_json(method, path, data) from exc

    async def _retrying(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        safety: Safety,
        what: str,
        settle: Callable[[DevServerError], Awaitable[Any]] | None = None,
    ) -> T:
        """``kube.Kube._retrying`` on the event loop: the same ``kube_core.Retries``, paused with asyncio."""
        retries = Retries(self.retry, safety=safety, server=self.server)
        while True:
            try:
                return await attempt()
            except TryFailed as failure:
                verdict = retries.after(failure)
                if verdict.pause is None:
                    assert verdict.error is not None
                    if verdict.settle and settle is not None:
                        settled = await settle(verdict.error)
                        if settled is not UNSETTLED:
                            return settled
                    raise verdict.error from verdict.cause
                # One line, no traceback: a blip the retry absorbs is news, not an error.
                log.info(
                    "%s failed (%s); try %d of %d in %.2fs",
                    what,
                    _first_sentence(failure.error),
                    retries.tries + 1,
                    self.retry.attempts,
                    verdict.pause,
                )
                await self._sleep(verdict.pause)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | None = None,
        kind: str,
        name: str | None = None,
        namespace: str | None = None,
        safety: Safety | None = None,
        settle: Callable[[DevServerError], Awaitable[Any]] | None = None,
    ) -> Any:
        """One JSON request, retried as its safety allows; returns the decoded body (``None`` when empty).

        Args:
            safety: what may be retried (``kube_core.Safety``); default: judged from method, body and type.
            settle: asked about a final failure after a try that may have been applied: returns what that
                failure stands for, or ``kube_core.UNSETTLED``.

        Raises:
            DevServerError: the mapped API status, or ``ClusterUnreachableError`` for the network (after the
                retries, if any).
        """
        if body is not None and content_type is None:
            content_type = "application/json"
        total = timeout or self.timeout

        async def once() -> Any:
            return await self._send_once(
                method,
                path,
                query=query,
                body=body,
                content_type=content_type,
                timeout=total,
                kind=kind,
                name=name,
                namespace=namespace,
            )

        return await self._retrying(
            once,
            safety=safety or safety_of(method, body, content_type),
            what=f"{method} {path}",
            settle=settle,
        )

    # -- generic verbs (as ``kube.Kube``'s) --------------------------------------------------------------

    async def get(
        self, resource: Resource, name: str, *, namespace: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """GET one object as a manifest."""
        result: dict[str, Any] = await self.request(
            "GET",
            resource.path(namespace, name),
            kind=resource.kind,
            name=name,
            namespace=namespace,
            timeout=timeout,
        )
        return result

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """LIST objects, page by page; returns one List manifest holding every page's items (as ``Kube.list``).

        Pods and events require a namespace, or for pods a label selector: every pod of a cluster is far
        more than anything here needs (the operator's cluster-wide pod watch lists only its own pods).
        """
        unbounded = resource.kind == EVENTS.kind or (resource.kind == PODS.kind and not label_selector)
        if namespace is None and unbounded:
            raise ValueError(
                f"listing {resource.plural} across all namespaces is not allowed here; name one"
                + (" or select by label" if resource.kind == PODS.kind else "")
            )
        items: builtins.list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query = [
                ("labelSelector", label_selector),
                ("fieldSelector", field_selector),
                ("limit", limit),
                ("continue", token),
            ]
            page = await self.request(
                "GET",
                resource.path(namespace),
                query=query,
                kind=resource.kind,
                namespace=namespace,
                timeout=timeout,
            )
            items.extend(page.get("items") or [])
            metadata = dict(page.get("metadata") or {})
            token = metadata.pop("continue", None) or None
            if not token:
                return {**page, "metadata": metadata, "items": items}

    async def create(
        self,
        resource: Resource,
        manifest: dict[str, Any],
        *,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """POST a new object (field validation Strict) into ``namespace`` or the manifest's; returns it as stored.

        A named object is stamped with ``CREATE_TOKEN_ANNOTATION`` (``kube_core.stamp_create``): a retry
        answered AlreadyExists is then success only when the object found carries this call's token. A
        ``generateName`` create (an Event) is retried only on 429, which the server sends before acting.

        Raises:
            AlreadyExistsError: the name is taken by an object this call did not create.
        """
        metadata = manifest.get("metadata") or {}
        name = metadata.get("name")
        namespace = namespace or metadata.get("namespace")
        path = resource.path(namespace)
        query = [("fieldManager", FIELD_MANAGER), ("fieldValidation", "Strict")]
        if not name:
            once: dict[str, Any] = await self.request(
                "POST",
                path,
                body=manifest,
                query=query,
                kind=resource.kind,
                namespace=namespace,
                timeout=timeout,
                safety="once",
            )
            return once
        body, token = stamp_create(manifest)

        async def ours(error: DevServerError) -> Any:
            if not isinstance(error, AlreadyExistsError):
                return UNSETTLED
            try:
                existing = await self.get(resource, name, namespace=namespace, timeout=timeout)
            except NotFoundError:  # created by our try, then deleted by someone: the name is free again
                return UNSETTLED
            except PermissionDeniedError:  # may create but not read (the operator's StatefulSets): say taken
                return UNSETTLED
            return existing if create_settles(existing, token) else UNSETTLED

        created: dict[str, Any] = await self.request(
            "POST",
            path,
            body=body,
            query=query,
            kind=resource.kind,
            name=name,
            namespace=namespace,
            timeout=timeout,
            safety="create",
            settle=ours,
        )
        return created

    async def replace(
        self,
        resource: Resource,
        manifest: dict[str, Any],
        *,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """PUT the complete object; returns it as stored.

        Without ``metadata.resourceVersion`` the update is unconditional (StatefulSets and Services allow
        it): the operator owns the whole spec, so there is nothing to merge and no conflict to retry. Every
        field absent from ``manifest`` is absent afterwards, whoever set it: a GPU flavor changed to a CPU
        one loses its GPU limit, node selector and tolerations, and a hand edit of the spec is undone.
        """
        metadata = manifest.get("metadata") or {}
        name, namespace = metadata["name"], namespace or metadata.get("namespace")
        result: dict[str, Any] = await self.request(
            "PUT",
            resource.path(namespace, name),
            body=manifest,
            query=[("fieldManager", FIELD_MANAGER), ("fieldValidation", "Strict")],
            kind=resource.kind,
            name=name,
            namespace=namespace,
            timeout=timeout,
        )
        return result

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """PATCH (JSON merge patch unless told otherwise); returns the object as stored."""
        result: dict[str, Any] = await self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            body=patch,
            content_type=content_type,
            kind=resource.kind,
            name=name,
            namespace=namespace,
            timeout=timeout,
        )
        return result

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        propagation: str = "Background",
        missing_ok: bool = False,
        timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """DELETE an object; returns the server's answer.

        Raises:
            NotFoundError: it does not exist, unless ``missing_ok`` (then ``None``). A 404 after a try that
                may have reached the server is that try's success, and returns ``None``.
        """
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}

        async def gone(error: DevServerError) -> Any:
            return None if isinstance(error, NotFoundError) else UNSETTLED

        try:
            result: dict[str, Any] | None = await self.request(
                "DELETE",
                resource.path(namespace, name),
                body=body,
                kind=resource.kind,
                name=name,
                namespace=namespace,
                timeout=timeout,
                settle=gone,
            )
        except NotFoundError:
            if missing_ok:
                return None
            raise
        return result

    async def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        field_selector: str | None = None,
        label_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int = 60,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Watch events (``ADDED``, ``MODIFIED``, ``DELETED``, ``BOOKMARK``) as ``(type, object)``, as ``Kube.watch``.

        The server ends the stream after ``timeout_seconds``; a silence 5 s longer ends it here. The connect is
        retried like any read; what happens to the stream after that is the caller's.

        Raises:
            WatchExpired: the resourceVersion is too old; list again.
            WatchDropped: the connection broke mid-stream; watch again from the last resourceVersion.
            DevServerError: any other failure.
        """
        path = resource.path(namespace)
        query = watch_query(
            field_selector=field_selector,
            label_selector=label_selector,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
        )
        read_timeout = timeout_seconds + 5.0
        stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=min(CONNECT_TIMEOUT, self.timeout), sock_read=read_timeout
        )

        async def connect() -> Any:
            return await self._respond(
                "GET",
                path,
                query=query,
                body=None,
                content_type=None,
                timeout=stream_timeout,
                kind=resource.kind,
                name=None,
                namespace=namespace,
            )

        try:
            response = await self._retrying(connect, safety="read", what=f"WATCH {path}")
        except DevServerError as exc:
            if exc.status == 410:
                raise WatchExpired(f"The watch on {resource.plural} expired: {exc}", status=410) from exc
            raise
        raw: aiohttp.ClientResponse = response.response
        buffer = b""
        try:
            # Not ``async for line in raw.content``: its readline refuses lines past 128 KiB, and one event of
            # a large object is one line.
            async for chunk in raw.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield watch_event(line, resource, namespace, context=self.context, server=self.server)
            if buffer.strip():
                yield watch_event(buffer, resource, namespace, context=self.context, server=self.server)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            error = self.unreachable(exc, read_timeout)
            raise WatchDropped(error.message, context=error.context, server=error.server) from exc
        finally:
            raw.release()

    # -- reads with a rule of their own ------------------------------------------------------------------

    async def secret_keys(self, namespace: str, name: str) -> set[str] | None:
        """The keys of a Secret, or None when it does not exist; its values are dropped at once, unread.

        The operator reports a Secret that pods would fail to read as a condition on their DevServer; it
        needs nothing more than the key names for that.
        """
        try:
            secret = await self.get(SECRETS, name, namespace=namespace)
        except NotFoundError:
            return None
        keys = set((secret.get("data") or {}).keys())
        del secret
        return keys

    # -- exec ----------------------------------------------------------------------------------------

    async def exec(
        self,
        namespace: str,
        pod: str,
        command: Sequence[str],
        *,
        container: str | None = None,
        timeout: float = 30.0,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a short command in a pod and collect its output (no stdin, no terminal).

        Returns:
            A ``CompletedProcess`` with ``returncode``, ``stdout`` and ``stderr`` (bytes).

        Raises:
            ExecError: the command could not be run (not found in the image, container not running) or
                gave no exit status before ``timeout``.
            DevServerError: the API refused the exec (e.g. 404 for a pod that is gone).
        """
        path = PODS.path(namespace, pod, "exec")
        query: builtins.list[tuple[str, Any]] = [("command", part) for part in command]
        query += [
            ("stdout", True),
            ("stderr", True),
            ("stdin", False),
            ("tty", False),
            ("container", container),
        ]
        url = self._url(path, query).replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        headers = await self._headers("GET", path, content_type=None)
        stdout, stderr = bytearray(), bytearray()
        status: dict[str, Any] | None = None
        what = f"exec in pod '{pod}' of namespace '{namespace}'"
        try:
            async with asyncio.timeout(timeout):
                async with self._session().ws_connect(
                    url, headers=headers, protocols=_EXEC_PROTOCOLS, autoping=True, max_msg_size=0
                ) as ws:
                    async for message in ws:
                        if message.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                            break
                        data = message.data if isinstance(message.data, bytes) else message.data.encode()
                        if not data:
                            continue
                        channel, payload = data[0], data[1:]
                        if channel == _STDOUT:
                            stdout += payload
                        elif channel == _STDERR:
                            stderr += payload
                        elif channel == _ERROR and payload:
                            try:
                                status = json.loads(payload)
                            except ValueError:
                                status = {"status": "Failure", "message": payload.decode("utf-8", "replace")}
        except aiohttp.WSServerHandshakeError as exc:
            raise error_from_status(
                exc.status, exc.message, kind="Pod", name=pod, namespace=namespace, context=self.context
            ) from exc
        except TimeoutError as exc:
            raise ExecError(
                f"The {what} gave no answer within {timeout:g}s.", name=pod, namespace=namespace
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self.unreachable(exc) from exc
        returncode = exec_exit_code(status)
        if returncode is None:
            why = (status or {}).get("message") or "the connection closed without an exit status"
            raise ExecError(
                f"The {what} could not run {builtins.list(command)!r}: {why}.", name=pod, namespace=namespace
            )
        return subprocess.CompletedProcess(builtins.list(command), returncode, bytes(stdout), bytes(stderr))


def _first_sentence(error: DevServerError) -> str:
    return error.message.split(". ", 1)[0].rstrip(".")
