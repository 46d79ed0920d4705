"""``DevServerClient``: every DevServer operation, named after its kubectl verb.

The CLI, the magics and scripts all go through this class, so it validates before it sends (an unknown
flavor lists those that exist, a bad duration shows the accepted forms, a long name states the limit)
and raises only ``DevServerError`` subclasses whose message says what to do next.

Conventions shared with the operator (it creates the objects, this client finds and drives them):

* **Pods.** The pods of DevServer ``X`` carry the label ``devservers.io/name=X``; the rank of a pod is its
  label ``apps.kubernetes.io/pod-index`` (set by the StatefulSet controller: the operator creates the
  StatefulSet ``X`` whose pods are ``X-<rank>``), else that ordinal of its name on a cluster older than
  Kubernetes 1.28 (``views.pod_rank``). ``exec``, ``shell`` and ``logs`` take the pods of the name label
  and pick the rank among them, and use the first container unless told otherwise.
* **Activity.** ``exec``, ``exec_stream`` and ``shell`` set the annotation ``devservers.io/last-activity``
  (RFC 3339, UTC) on the DevServer when they start, every minute while they last, and when they end
  (JSON merge patch, best effort; see ``activity.py``). The idle policy must count it as activity.
* **Stop and start.** ``stop`` sets the annotation ``devservers.io/desired-state: Stopped`` and ``start``
  sets it to ``Running``. The operator scales the StatefulSet to zero (keeping the DevServer and its home
  volumes) while it is ``Stopped``, reports phase ``Stopped``, and runs the pods again on ``Running``
  (absent means ``Running``). An idle shutdown by the operator should set the same annotation to
  ``Stopped``, so that ``start`` is how a user resumes either way.
* **Extend.** ``extend(name, by=...)`` writes ``spec.lifecycle.expirationTime = max(current expiry, now)
  + by``, where the current expiry is ``status.expiresAt``, else the earlier of ``expirationTime`` and
  ``creationTimestamp + timeToLive``. The operator applies the earlier of expirationTime and creation +
  timeToLive and caps it by the flavor's ``maxTimeToLive``, so ``extend`` also removes a ``timeToLive``
  that would otherwise cut the extension short.
"""

from __future__ import annotations

import builtins
import codecs
import contextlib
import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal

from . import errors
from . import exec as exec_
from . import lifecycle as lifecycle_rules
from .activity import activity_patch, rfc3339
from .cancellation import Cancellation
from .contract import (
    CONTAINER_NAME,
    DESIRED_STATE_ANNOTATION,
    NAME_LABEL,
    validate_name,
)
from .durations import parse_duration
from .errors import (
    DevServerFailedError,
    DevServerNotFoundError,
    DevServerNotReadyError,
    InvalidSpecError,
    NotFoundError,
    PermissionDeniedError,
    WaitCancelledError,
    WaitTimeoutError,
)
from .exec import ExecResult, ExecStream, StdinSource
from .kube import (
    CONFIGMAPS,
    DEVSERVERS,
    EVENTS,
    FLAVORS,
    MERGE_PATCH,
    PODS,
    ExecSession,
    Kube,
    RetryPolicy,
)
from .launch import LaunchHandle, OutputCallback
from .models import DevServer, DevServerFlavor, DevServerFlavorSpec, DevServerSpec, TrackingSpec
from .next_steps import NextStep
from .settings import load_kubeconfig, resolve_namespace, resolve_owner
from .tracking import git_commit
from .tracking_settings import DEFAULTS_CONFIGMAP, effective_tracking, parse_defaults, tracking_destinations
from .views import pod_rank, pod_ready, pod_running

if TYPE_CHECKING:
    from .checkpoint import CheckpointListing
    from .connect.files import TransferResult
    from .connect.jupyter import JupyterServer
    from .connect.portforward import PortForward
    from .connect.ssh import SshConfigResult
    from .cost import CostRow

__all__ = [
    "DevServerClient",
    "DevServerDescription",
    "EventSummary",
    "ExecResult",
    "ExecStream",
    "PodSummary",
]

DEFAULT_WAIT_TIMEOUT = 300.0

Progress = Callable[[DevServer], None]


# -- results ---------------------------------------------------------------------------------------------

@dataclass
class PodSummary:
    """One pod of a DevServer, as ``describe`` shows it."""

    name: str
    rank: int | None
    phase: str
    ready: bool
    restarts: int
    node: str | None = None
    ip: str | None = None
    started_at: datetime | None = None
    message: str | None = None


@dataclass
class EventSummary:
    """One Kubernetes Event about a DevServer or one of its pods."""

    type: str
    reason: str
    message: str
    object: str
    count: int = 1
    last_seen: datetime | None = None


@dataclass
class DevServerDescription:
    """Everything ``describe`` gathers: the DevServer, its pods (rank order) and recent events (oldest first)."""

    devserver: DevServer
    pods: list[PodSummary] = field(default_factory=list)
    events: list[EventSummary] = field(default_factory=list)
    tracking: dict[str, dict[str, str]] = field(default_factory=dict)
    """Where the pods' experiment runs go, per tool (``mlflow``, ``wandb``): URI or project, experiment or
    entity, the Secret's name (never its value), and ``from``: ``DevServer`` or ``namespace defaults``."""
    max_time_to_live: str | None = None
    """The flavor's ``maxTimeToLive`` (None: no maximum, or the flavor is gone), so that the expiry shown
    before the operator reports it is capped as the operator caps it (``views.expires_at``)."""


# -- helpers ---------------------------------------------------------------------------------------------

def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def _invalid_from_validation(exc: Exception, name: str) -> InvalidSpecError:
    """The first error of a pydantic ``ValidationError``, with its field in CRD spelling."""
    problems = exc.errors() if hasattr(exc, "errors") else []
    if not problems:
        return InvalidSpecError(f"DevServer '{name}' is invalid: {exc}", kind="DevServer", name=name)
    first = problems[0]
    # Every caller validates a manifest (camelCase), so the location is already in CRD spelling; turning
    # it into camelCase again would mangle map keys (ncclSettings.LD_PRELOAD became ncclSettings.LDPRELOAD).
    path = ".".join(str(part) for part in first.get("loc", ()) if not isinstance(part, int) and part != "[key]")
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    return InvalidSpecError(f"DevServer '{name}' is invalid: {path}: {message}{more}.", field=path or None,
                            kind="DevServer", name=name)


def _duration(value: str | timedelta, *, field_name: str, argument: str, name: str) -> timedelta:
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise InvalidSpecError(f"{argument} must be longer than zero, e.g. 30m, 4h, 1h30m, 2d.",
                                   field=field_name, kind="DevServer", name=name)
        return value
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidSpecError(f"Invalid {argument} for DevServer '{name}': {exc}.", field=field_name,
                               kind="DevServer", name=name) from exc


def _spec_options(options: dict[str, Any], name: str) -> dict[str, Any]:
    """``create``'s keyword shortcuts for ``DevServerSpec.from_options``: they need a flavor."""
    if not options["flavor"]:
        raise InvalidSpecError(f"DevServer '{name}' needs a flavor: pass flavor=... (see flavors()) or a whole "
                               f"spec=DevServerSpec(...).", field="spec.flavor", kind="DevServer", name=name)
    return options


def _require_spec_alone(spec: DevServerSpec, options: dict[str, Any], name: str) -> None:
    """A typed spec says everything: a keyword shortcut beside it would be silently ignored, so refuse it."""
    if not isinstance(spec, DevServerSpec):
        raise InvalidSpecError(f"spec must be a DevServerSpec (e.g. DevServerSpec.from_options(...)), got "
                               f"{type(spec).__name__}.", field="spec", kind="DevServer", name=name)
    defaults = {"mode": "standalone", "auto_shutdown": True}
    given = [key for key, value in options.items() if value is not None and value != defaults.get(key)]
    if given:
        raise InvalidSpecError(f"create got spec= and also {', '.join(given)} for DevServer '{name}': put them in "
                               f"the spec (DevServerSpec.from_options takes the same options), or leave spec out.",
                               field="spec", kind="DevServer", name=name)


# -- the client ------------------------------------------------------------------------------------------

class DevServerClient:
    """Create, inspect, use and delete DevServers in one namespace of one cluster.

    Args:
        namespace: the namespace to work in; default ``DEVSERVERS_NAMESPACE``, then the kubeconfig
            context's namespace, then ``default``.
        context: the kubeconfig context; default ``DEVSERVERS_CONTEXT``, then ``current-context``.
        kubeconfig: the kubeconfig path; default ``KUBECONFIG``, then ``~/.kube/config``.
        owner: the owner recorded on new DevServers; default ``DEVSERVERS_OWNER``, then the user name the
            cluster reports for the credentials (SelfSubjectReview), then the kubeconfig user.
        request_timeout: seconds allowed for each API request.
        retry: how requests the cluster fails transiently (5xx, 429, dropped connections) are retried;
            default ``RetryPolicy()`` (5 tries within 30 s), or ``DEVSERVERS_RETRY_ATTEMPTS`` and
            ``DEVSERVERS_RETRY_TOTAL`` from the environment. ``RetryPolicy.never()`` turns retries off.

    Raises:
        ConfigurationError: no kubeconfig, or an unknown context. Nothing is sent to the cluster until a
            method needs it.

    Example:
        >>> client = DevServerClient(namespace="alice")  # doctest: +SKIP
        >>> server = client.create("mydev", flavor="cpu-small", time_to_live="4h", wait=True)  # doctest: +SKIP
        >>> client.exec("mydev", ["python", "-c", "print(6 * 7)"]).stdout  # doctest: +SKIP
        '42\\n'
    """

    def __init__(self, *, namespace: str | None = None, context: str | None = None,
                 kubeconfig: str | os.PathLike[str] | None = None, owner: str | None = None,
                 request_timeout: float = 30.0, retry: RetryPolicy | None = None) -> None:
        self._info = load_kubeconfig(kubeconfig, context)
        self.namespace = resolve_namespace(namespace, self._info)
        self.context = self._info.context
        self.server = self._info.server
        self._owner = owner
        self._kube = Kube(self._info, timeout=request_timeout, retry=retry)

    def __repr__(self) -> str:
        return f"DevServerClient(context={self.context!r}, namespace={self.namespace!r})"

    def close(self) -> None:
        """Release the connections (the client can still be used afterwards; it reconnects)."""
        self._kube.close()

    def __enter__(self) -> DevServerClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def kube(self) -> Kube:
        """The API client underneath, for what the DevServer methods do not cover (its pods, say)."""
        return self._kube

    @property
    def owner(self) -> str:
        """Who new DevServers belong to (resolved on first use; may ask the cluster who we are).

        Raises:
            ConfigurationError: nothing names an owner.
        """
        if self._owner is None:
            self._owner = resolve_owner(None, whoami=self._kube.whoami, info=self._info)
        return self._owner

    def whoami(self) -> str | None:
        """The user name the cluster sees for these credentials, or ``None`` if it does not say.

        Returns:
            The SelfSubjectReview user name, e.g. ``alice@example.com``.

        Raises:
            ClusterUnreachableError, AuthenticationError: the cluster cannot be asked.

        Example:
            >>> DevServerClient().whoami()  # doctest: +SKIP
            'localcluster-admin'
        """
        return self._kube.whoami()

    # -- flavors -------------------------------------------------------------------------------------

    def flavors(self) -> builtins.list[DevServerFlavor]:
        """The DevServerFlavors installed on the cluster, sorted by name.

        Returns:
            Each flavor, with ``.cpu``, ``.memory``, ``.gpus`` and its ``spec``.

        Raises:
            NotFoundError: the CRDs are not installed.
            DevServerError: the cluster cannot be reached or refuses.

        Example:
            >>> [f.name for f in DevServerClient().flavors()]  # doctest: +SKIP
            ['cpu-small', 'gpu-small']
        """
        items = self._kube.list(FLAVORS).get("items") or []
        flavors = [DevServerFlavor.from_manifest(_typed(item, FLAVORS)) for item in items]
        return sorted(flavors, key=lambda flavor: flavor.name)

    def _require_flavor(self, flavor: str) -> DevServerFlavor:
        try:
            return DevServerFlavor.from_manifest(_typed(self._kube.get(FLAVORS, flavor), FLAVORS))
        except NotFoundError as exc:
            if exc.kind != FLAVORS.kind or exc.name != flavor:
                raise
            available = [f.name for f in self.flavors()]
            raise errors.flavor_not_found(flavor, available) from exc

    # -- CRUD ----------------------------------------------------------------------------------------

    def create(self, name: str, spec: DevServerSpec | None = None, *, flavor: str | None = None,
               image: str | None = None, mode: Literal["standalone", "distributed"] = "standalone",
               world_size: int | None = None, nprocs_per_node: int | Literal["auto"] | None = None,
               backend: Literal["nccl", "gloo"] | None = None,
               nccl_settings: dict[str, str] | None = None, home_size: str | None = None,
               shared_volume: str | None = None, time_to_live: str | timedelta | None = None,
               idle_timeout: int | str | timedelta | None = None, auto_shutdown: bool = True,
               expiration_time: datetime | str | None = None, wait: bool = False,
               timeout: float = DEFAULT_WAIT_TIMEOUT, on_progress: Progress | None = None,
               cancel: Cancellation | None = None,
               tracking: TrackingSpec | Mapping[str, Any] | None = None) -> DevServer:
        """Create a DevServer (and optionally wait until it runs).

        Give either a typed ``spec`` or the keyword shortcuts (``flavor=`` and the options below), which
        ``DevServerSpec.from_options`` turns into one: every front end goes through it, so they all refuse
        the same input with the same sentence. Everything is validated before the DevServer is sent: the
        name, the durations and the spec rules locally, then the flavor against the cluster.

        Args:
            name: the DevServer name (lowercase letters, digits, ``-``; at most ``MAX_NAME_LENGTH``).
            spec: the whole spec, e.g. ``DevServerSpec(owner=client.owner, flavor="cpu-small")`` or
                ``DevServerSpec.from_options(...)``; then none of the options from ``flavor`` to ``tracking``.
            flavor: the DevServerFlavor that sizes each pod (see ``flavors()``); required without ``spec``.
            image: the container image; default: the flavor's ``defaultImage``.
            mode: ``"standalone"`` (one pod) or ``"distributed"`` (a torchrun group).
            world_size: pods in the group (distributed only; default 2). This and the next three options
                need ``mode="distributed"``: without it they are refused (``InvalidSpecError`` on ``spec.mode``).
            nprocs_per_node: processes per pod (distributed only; default 1); ``"auto"``: one per GPU of the
                flavor, or 1 for a CPU flavor.
            backend: ``"nccl"`` or ``"gloo"`` (distributed only; default nccl).
            nccl_settings: extra ``NCCL_*`` environment variables (distributed only).
            home_size: size of the persistent home volume of each pod, e.g. ``"100Gi"``; None: the flavor's
                ``defaultHomeSize``, else the operator's default; ``"0"``: no persistent home.
            shared_volume: an existing PersistentVolumeClaim to mount at ``/shared``.
            time_to_live: lifetime from creation, e.g. ``"4h"``, ``"1h30m"``, ``"2d"``, or a ``timedelta``.
            idle_timeout: stop after this much inactivity: seconds, ``"30m"`` or a ``timedelta`` (≥ 1 min).
            auto_shutdown: whether the idle timeout applies.
            expiration_time: absolute deletion time (aware ``datetime`` or RFC 3339 string).
            wait: wait until phase ``Running`` before returning.
            timeout: seconds to wait when ``wait`` is true.
            on_progress: called with the DevServer on every change while waiting.
            cancel: stops the wait from another thread (``WaitCancelledError``); the DevServer stays.
            tracking: MLflow and W&B settings (``spec.tracking``), e.g. ``{"mlflow": {"trackingUri":
                "https://mlflow.example.com", "credentialsSecret": "mlflow-creds"}}``; None: the namespace's
                defaults (ConfigMap ``devservers-defaults``), if any. Credentials are Secret names, never values.

        Returns:
            The DevServer as created (or as running, with ``wait=True``).

        Raises:
            InvalidSpecError: a rule is broken (``.field`` names it, e.g. ``spec.lifecycle.timeToLive``);
                ``LifetimeLimitError`` when the lifetime asked for passes the flavor's ``maxTimeToLive``.
            FlavorNotFoundError: no such flavor; the message lists the existing ones.
            AlreadyExistsError: the name is taken in the namespace.
            WaitTimeoutError, DevServerFailedError, WaitCancelledError: with ``wait=True``.

        Example:
            >>> client.create("mydev", flavor="gpu-small", time_to_live="8h", home_size="100Gi")  # doctest: +SKIP
            >>> client.create("ddp", flavor="gpu-large", mode="distributed", world_size=2,  # doctest: +SKIP
            ...               nprocs_per_node=8, wait=True, on_progress=lambda s: print(s.status.phase))
            >>> spec = DevServerSpec.from_options(owner=client.owner, flavor="cpu-small", time_to_live="4h")
            >>> client.create("mydev", spec=spec)  # doctest: +SKIP
        """
        options = {"flavor": flavor, "image": image, "mode": mode, "world_size": world_size,
                   "nprocs_per_node": nprocs_per_node, "backend": backend, "nccl_settings": nccl_settings,
                   "home_size": home_size, "shared_volume": shared_volume, "time_to_live": time_to_live,
                   "idle_timeout": idle_timeout, "auto_shutdown": auto_shutdown,
                   "expiration_time": expiration_time, "tracking": tracking}
        try:
            validate_name(name)
        except ValueError as exc:
            raise InvalidSpecError(f"{exc}.", field="metadata.name", kind="DevServer", name=name) from exc
        if spec is None:
            spec = DevServerSpec.from_options(owner=self.owner, name=name, **_spec_options(options, name))
        else:
            _require_spec_alone(spec, options, name)
            spec.require_new_deadline(now=datetime.now(UTC), name=name)
        manifest = {"apiVersion": DEVSERVERS.api_version, "kind": DEVSERVERS.kind,
                    "metadata": {"name": name, "namespace": self.namespace},
                    "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True)}
        try:
            devserver = DevServer.from_manifest(manifest)
        except ValueError as exc:
            raise _invalid_from_validation(exc, name) from exc
        flavor_object = self._require_flavor(devserver.spec.flavor)
        lifecycle_rules.check_requested_lifetime(devserver.spec, now=datetime.now(UTC),
                                                 flavor_spec=flavor_object.spec, name=name)
        created = self._kube.create(DEVSERVERS, devserver.to_manifest(), namespace=self.namespace)
        if wait:
            return self.wait(name, timeout=timeout, on_progress=on_progress, cancel=cancel)
        return DevServer.from_manifest(created)

    def check_create(self, name: str, *, flavor: str, image: str | None = None,
                     mode: Literal["standalone", "distributed"] = "standalone", world_size: int | None = None,
                     nprocs_per_node: int | Literal["auto"] | None = None,
                     backend: Literal["nccl", "gloo"] | None = None,
                     nccl_settings: dict[str, str] | None = None, home_size: str | None = None,
                     shared_volume: str | None = None, time_to_live: str | timedelta | None = None,
                     idle_timeout: int | str | timedelta | None = None, auto_shutdown: bool = True,
                     expiration_time: datetime | str | None = None,
                     tracking: TrackingSpec | Mapping[str, Any] | None = None) -> builtins.list[InvalidSpecError]:
        """Every rule ``create`` would refuse these arguments for, without sending anything.

        ``create`` stops at the first problem; a form wants them all at once, each beside its field. The
        flavor is not looked up (a form offers only those that exist); ``create`` still checks it.

        Args:
            name, flavor, ...: as for ``create``.

        Returns:
            One ``InvalidSpecError`` per problem, whose ``.field`` is the CRD path (``metadata.name``,
            ``spec.lifecycle.timeToLive``, ``spec.distributed.worldSize``...); empty when ``create`` would send.

        Example:
            >>> [e.field for e in client.check_create("Bad_Name", flavor="cpu-small", time_to_live="8")]  # doctest: +SKIP
            ['metadata.name', 'spec.lifecycle.timeToLive']
        """
        problems: builtins.list[InvalidSpecError] = []
        try:
            validate_name(name)
        except ValueError as exc:
            problems.append(InvalidSpecError(f"{exc}.", field="metadata.name", kind="DevServer", name=name))
        return problems + DevServerSpec.option_problems(
            owner=self.owner, name=name, flavor=flavor, image=image, mode=mode, world_size=world_size,
            nprocs_per_node=nprocs_per_node, backend=backend, nccl_settings=nccl_settings, home_size=home_size,
            shared_volume=shared_volume, time_to_live=time_to_live, idle_timeout=idle_timeout,
            auto_shutdown=auto_shutdown, expiration_time=expiration_time, tracking=tracking)

    def get(self, name: str) -> DevServer:
        """Read one DevServer, status included.

        Args:
            name: the DevServer name.

        Returns:
            The DevServer.

        Raises:
            DevServerNotFoundError: no such DevServer in the namespace.

        Example:
            >>> client.get("mydev").status.phase  # doctest: +SKIP
            'Running'
        """
        return self._devserver(self._kube.get(DEVSERVERS, name, namespace=self.namespace))

    def list(self, *, owner: str | None = None, all_namespaces: bool = False) -> builtins.list[DevServer]:
        """List DevServers, sorted by namespace and name.

        Args:
            owner: only those whose ``spec.owner`` is this (``None``: everyone's). Pass ``client.owner``
                for your own.
            all_namespaces: list every namespace instead of the client's.

        Returns:
            The DevServers.

        Raises:
            PermissionDeniedError: e.g. listing all namespaces without the right.

        Example:
            >>> [s.name for s in client.list(owner=client.owner)]  # doctest: +SKIP
            ['mydev']
        """
        listing = self._kube.list(DEVSERVERS, namespace=None if all_namespaces else self.namespace)
        servers = [self._devserver(item) for item in listing.get("items") or []]
        if owner is not None:
            servers = [server for server in servers if server.spec.owner == owner]
        return sorted(servers, key=lambda server: (server.namespace or "", server.name))

    def watch(self, *, owner: str | None = None, all_namespaces: bool = False, timeout: float | None = None,
              cancel: Cancellation | None = None) -> Generator[tuple[str, DevServer], None, None]:
        """Follow the DevServers as they change, whoever changes them: ``(event, DevServer)`` pairs.

        The DevServers that exist come first, each as ``ADDED``; then every change as ``ADDED``,
        ``MODIFIED`` or ``DELETED`` (with the object as last seen). Streams the API server ends or drops are
        resumed where they stopped, and an expired one lists again and reports the difference, so nothing is
        missed or repeated as new. ``LiveDevServers`` runs this in a thread and keeps the current set.

        Args:
            owner: only those whose ``spec.owner`` is this (``None``: everyone's).
            all_namespaces: every namespace instead of the client's.
            timeout: seconds to follow for; ``None``: until the generator is closed or ``cancel`` fires.
            cancel: stops it from another thread at once (``WaitCancelledError``); Ctrl-C stops it in the
                main thread.

        Raises:
            WaitCancelledError: ``cancel`` was cancelled.
            DevServerError: the cluster cannot be asked, or refuses (after the retries).

        Example:
            >>> for event, server in client.watch(owner=client.owner):  # doctest: +SKIP
            ...     print(event, server.name, server.status.phase)
        """
        shown: set[tuple[str, str]] = set()
        events = self._kube.follow(DEVSERVERS, namespace=None if all_namespaces else self.namespace,
                                   timeout=timeout, cancel=cancel)
        with contextlib.closing(events):
            for event, obj in events:
                if event == "BOOKMARK":
                    continue
                server = self._devserver(obj)
                key = (server.namespace or "", server.name)
                if owner is not None and server.spec.owner != owner:
                    if key not in shown:
                        continue
                    event = "DELETED"  # no longer one of the owner's: gone from their view
                if event == "DELETED":
                    shown.discard(key)
                else:
                    shown.add(key)
                yield event, server

    def cost_report(self, *, all_namespaces: bool = False, owner: str | None = None,
                    since: str | timedelta | None = None) -> builtins.list[CostRow]:
        """What DevServers cost, per owner and flavor, deleted ones included (``devctl cost``).

        Live servers are counted from their ``status.cost`` up to now; deleted ones from the namespace's cost
        ledger, the ConfigMap the operator keeps (its bounds are in ``devservers_sdk.cost``).

        Args:
            all_namespaces: every namespace instead of the client's.
            owner: only this owner's servers.
            since: only the running time after ``now - since`` (e.g. ``"7d"``); None: everything recorded.

        Returns:
            One ``CostRow`` per owner, flavor and currency, sorted.

        Raises:
            InvalidSpecError: ``since`` is not a duration.
            PermissionDeniedError: e.g. reading every namespace without the right.

        Example:
            >>> for row in client.cost_report(since="7d"):  # doctest: +SKIP
            ...     print(row.owner, row.flavor, row.amount, row.currency)
        """
        from .cost import LEDGER_NAME, LedgerEntry, cost_report

        window = None
        if since is not None:
            window = since if isinstance(since, timedelta) else None
            if window is None:
                try:
                    window = parse_duration(str(since))
                except ValueError as exc:
                    raise InvalidSpecError(f"Invalid since {since!r}: {exc}; e.g. 7d, 24h.", field="since") from exc
        now = datetime.now(UTC)
        namespace = None if all_namespaces else self.namespace
        if namespace is None:
            ledgers = self._kube.list(CONFIGMAPS, namespace=None,
                                      field_selector=f"metadata.name={LEDGER_NAME}").get("items") or []
        else:
            try:
                ledgers = [self._kube.get(CONFIGMAPS, LEDGER_NAME, namespace=namespace)]
            except NotFoundError:
                ledgers = []
        entries: dict[str, LedgerEntry] = {}
        for ledger in ledgers:
            for uid, text in ((ledger.get("data")) or {}).items():
                entry = LedgerEntry.from_json(uid, text)
                if entry is not None:
                    entries[uid] = entry
        live = {server.metadata.uid or server.name: server for server in self.list(all_namespaces=all_namespaces)}
        for uid, entry in list(entries.items()):
            if uid not in live and entry.deleted is None:
                # Deleted while no operator was there to close its books: count it until its last record.
                entries[uid] = LedgerEntry(**{**entry.__dict__, "deleted": entry.updated or now})
        for uid, server in live.items():
            if server.status.cost is None:
                continue
            recorded = entries.get(uid)
            entries[uid] = LedgerEntry(uid=uid, name=server.name, namespace=server.namespace or "",
                                       owner=server.spec.owner, flavor=server.spec.flavor, cost=server.status.cost,
                                       stretches=recorded.stretches if recorded else ())
        return cost_report(entries.values(), now=now, since=now - window if window is not None else None,
                           owner=owner)

    def describe(self, name: str, *, events: int = 20) -> DevServerDescription:
        """The DevServer with its pods and the recent events about it and them.

        Args:
            name: the DevServer name.
            events: how many recent events to keep (newest are kept, shown oldest first).

        Returns:
            A ``DevServerDescription``.

        Raises:
            DevServerNotFoundError: no such DevServer.

        Example:
            >>> for event in client.describe("mydev").events:  # doctest: +SKIP
            ...     print(event.reason, event.message)
        """
        devserver = self.get(name)
        pods = [_pod_summary(pod) for pod in self._pods(name)]
        found: builtins.list[EventSummary] = []
        for involved in [name, *(pod.name for pod in pods)]:
            listing = self._kube.list(EVENTS, namespace=self.namespace,
                                      field_selector=f"involvedObject.name={involved}")
            found.extend(_event_summary(event) for event in listing.get("items") or []
                         if (event.get("involvedObject") or {}).get("kind") in ("DevServer", "Pod", "StatefulSet"))
        epoch = datetime.min.replace(tzinfo=UTC)
        found.sort(key=lambda event: event.last_seen or epoch)
        flavor = self._flavor_spec_or_none(devserver.spec.flavor)
        return DevServerDescription(devserver=devserver, pods=pods, events=found[-events:] if events else [],
                                    tracking=self._tracking_destinations(devserver),
                                    max_time_to_live=flavor.max_time_to_live if flavor is not None else None)

    def _tracking_destinations(self, devserver: DevServer) -> dict[str, dict[str, str]]:
        """Where runs go: the DevServer's own tools, else its namespace's defaults (as the operator decides)."""
        defaults = None
        try:
            configmap = self._kube.get(CONFIGMAPS, DEFAULTS_CONFIGMAP, namespace=self.namespace)
            defaults, _ = parse_defaults(configmap.get("data"), namespace=self.namespace)
        except (NotFoundError, PermissionDeniedError):
            pass  # no defaults, or not readable by this user: the DevServer's own settings still show
        own = tracking_destinations(devserver.spec.tracking)
        shown = tracking_destinations(effective_tracking(devserver, defaults))
        for tool, where in shown.items():
            where["from"] = "DevServer" if tool in own else f"namespace defaults (ConfigMap {DEFAULTS_CONFIGMAP})"
        return shown

    def update(self, name: str, *, flavor: str | None = None, image: str | None = None) -> DevServer:
        """Change the flavor and/or image of a DevServer; the operator rolls its pods.

        Args:
            name: the DevServer name.
            flavor: the new flavor (checked to exist first).
            image: the new image.

        Returns:
            The DevServer as updated.

        Raises:
            InvalidSpecError: nothing to change, or an invalid value.
            FlavorNotFoundError: no such flavor.
            DevServerNotFoundError: no such DevServer.

        Example:
            >>> client.update("mydev", flavor="gpu-large")  # doctest: +SKIP
        """
        changes = {key: value for key, value in (("flavor", flavor), ("image", image)) if value is not None}
        if not changes:
            raise InvalidSpecError(f"Nothing to update on DevServer '{name}': name a new flavor and/or image.",
                                   kind="DevServer", name=name, lead="For example",
                                   next_step=NextStep("update", name, {"flavor": "..."}))
        current = self.get(name)
        try:
            DevServer.from_manifest({**current.to_manifest(), "spec": {**current.to_manifest()["spec"], **changes}})
        except ValueError as exc:
            raise _invalid_from_validation(exc, name) from exc
        if flavor is not None:
            self._require_flavor(flavor)
        return self._patch(name, {"spec": changes})

    def extend(self, name: str, *, by: str | timedelta) -> DevServer:
        """Push a DevServer's expiry back: new expiry = max(current expiry, now) + ``by``.

        The new deadline is written to ``spec.lifecycle.expirationTime`` (and a ``timeToLive`` is removed,
        since the earlier of the two would apply). Passing the flavor's ``maxTimeToLive`` is refused with
        ``LifetimeLimitError``, which names the maximum and how much can still be added.

        Args:
            name: the DevServer name.
            by: how much longer, e.g. ``"2h"`` or ``timedelta(hours=2)``.

        Returns:
            The DevServer as updated.

        Raises:
            InvalidSpecError: ``by`` is not a positive duration.
            LifetimeLimitError: the new deadline would pass the flavor's maximum lifetime (an InvalidSpecError).
            DevServerNotFoundError: no such DevServer.

        Example:
            >>> client.extend("mydev", by="2h").spec.lifecycle.expiration_time  # doctest: +SKIP
        """
        delta = _duration(by, field_name="spec.lifecycle.expirationTime", argument="by", name=name)
        # A read-modify-write: the patch carries the resourceVersion it was computed from, and a 409 means
        # "read again and recompute". One more case: our own earlier try was committed but its answer lost
        # (the transport retried it into a 409); re-applying would then extend twice, so a re-read that
        # already shows the deadline we wrote is our success.
        attempts = max(3, self._kube.retry.attempts)
        written: str | None = None
        for attempt in range(attempts):
            manifest = self._kube.get(DEVSERVERS, name, namespace=self.namespace)
            lifecycle = (manifest.get("spec") or {}).get("lifecycle") or {}
            if written is not None and lifecycle.get("expirationTime") == written \
                    and lifecycle.get("timeToLive") is None:
                return self._devserver(manifest)
            now = datetime.now(UTC)
            server = self._devserver(manifest)
            created_at = server.metadata.creation_timestamp or now
            # The rule of lifecycle.extend: past the flavor's maximum is refused, naming it, so what this
            # writes is exactly the deadline describe and list then show.
            written = rfc3339(lifecycle_rules.extend(server.spec, created_at=created_at, now=now, by=delta,
                                                     flavor_spec=self._flavor_spec_or_none(server.spec.flavor),
                                                     name=name))
            patch = {"metadata": {"resourceVersion": manifest["metadata"].get("resourceVersion")},
                     "spec": {"lifecycle": {"expirationTime": written, "timeToLive": None}}}
            try:
                return self._patch(name, patch)
            except errors.ConflictError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _flavor_spec_or_none(self, flavor: str) -> DevServerFlavorSpec | None:
        try:
            return DevServerFlavor.from_manifest(_typed(self._kube.get(FLAVORS, flavor), FLAVORS)).spec
        except NotFoundError:  # a deleted flavor caps nothing (the operator reports it missing)
            return None

    def lifetime(self, server: DevServer | str) -> lifecycle_rules.Lifetime:
        """When a DevServer will be deleted and which rule decided it: what it asked for, or its flavor's
        maximum (``Lifetime.describe`` words it, e.g. for what ``devctl create`` prints).

        Args:
            server: the DevServer, or its name.

        Raises:
            DevServerNotFoundError: no such DevServer.
        """
        devserver = self.get(server) if isinstance(server, str) else server
        created_at = devserver.metadata.creation_timestamp or datetime.now(UTC)
        return lifecycle_rules.lifetime(devserver.spec, created_at=created_at,
                                        flavor_spec=self._flavor_spec_or_none(devserver.spec.flavor))

    def stop(self, name: str, *, wait: bool = False, timeout: float = DEFAULT_WAIT_TIMEOUT) -> DevServer:
        """Stop a DevServer: its pods go away, the DevServer and its home volumes stay.

        Sets the annotation ``devservers.io/desired-state: Stopped`` (see the module docstring).

        Args:
            name: the DevServer name.
            wait: wait until the operator reports phase ``Stopped``.
            timeout: seconds to wait.

        Returns:
            The DevServer.

        Raises:
            DevServerNotFoundError: no such DevServer.
            WaitTimeoutError: with ``wait=True``.

        Example:
            >>> client.stop("mydev")  # doctest: +SKIP
        """
        server = self._patch(name, {"metadata": {"annotations": {DESIRED_STATE_ANNOTATION: "Stopped"}}})
        return self.wait(name, for_phase="Stopped", timeout=timeout) if wait else server

    def start(self, name: str, *, wait: bool = False, timeout: float = DEFAULT_WAIT_TIMEOUT,
              cancel: Cancellation | None = None) -> DevServer:
        """Start a stopped DevServer again (annotation ``devservers.io/desired-state: Running``).

        Args:
            name: the DevServer name.
            wait: wait until phase ``Running``.
            timeout: seconds to wait.
            cancel: stops the wait from another thread (``WaitCancelledError``).

        Returns:
            The DevServer.

        Raises:
            DevServerNotFoundError: no such DevServer.
            WaitTimeoutError, DevServerFailedError, WaitCancelledError: with ``wait=True``.

        Example:
            >>> client.start("mydev", wait=True)  # doctest: +SKIP
        """
        server = self._patch(name, {"metadata": {"annotations": {DESIRED_STATE_ANNOTATION: "Running"}}})
        return self.wait(name, timeout=timeout, cancel=cancel) if wait else server

    def delete(self, name: str, *, wait: bool = False, timeout: float = DEFAULT_WAIT_TIMEOUT) -> None:
        """Delete a DevServer with its pods and volumes.

        Args:
            name: the DevServer name.
            wait: wait until it is gone (finalizers done).
            timeout: seconds to wait.

        Raises:
            DevServerNotFoundError: no such DevServer.
            WaitTimeoutError: with ``wait=True``, still there after ``timeout``.

        Example:
            >>> client.delete("mydev", wait=True)  # doctest: +SKIP
        """
        self._kube.delete(DEVSERVERS, name, namespace=self.namespace)
        if wait:
            try:
                self.wait(name, for_phase=None, timeout=timeout)
            except DevServerNotFoundError:
                return

    # -- wait ----------------------------------------------------------------------------------------

    def wait(self, name: str, *, for_phase: str | None = "Running", timeout: float = DEFAULT_WAIT_TIMEOUT,
             on_progress: Progress | None = None, cancel: Cancellation | None = None) -> DevServer:
        """Wait until a DevServer reaches a phase, watching it (no polling).

        Args:
            name: the DevServer name.
            for_phase: the phase to wait for (``Running``, ``Stopped``...). ``None`` waits until it is
                deleted (it then raises ``DevServerNotFoundError``, which ``delete(wait=True)`` expects).
            timeout: seconds before giving up.
            on_progress: called with the DevServer at the start and on every change.
            cancel: stops the wait from another thread at once (Ctrl-C stops one in the main thread).

        Returns:
            The DevServer in the wanted phase.

        Raises:
            WaitCancelledError: ``cancel`` was cancelled; the DevServer is left as it is.
            DevServerFailedError: it reached ``Failed``, or ``Expired`` (its deadline was before its creation),
                unless that is what was asked for.
            DevServerNotFoundError: it does not exist, or was deleted while waiting.
            WaitTimeoutError: ``timeout`` passed; the message gives the phase and last condition.

        Example:
            >>> client.wait("mydev", timeout=600, on_progress=lambda s: print(s.status.phase))  # doctest: +SKIP
        """
        deadline = time.monotonic() + timeout
        manifest = self._kube.get(DEVSERVERS, name, namespace=self.namespace)
        last = self._devserver(manifest)
        if on_progress is not None:
            on_progress(last)
        if self._reached(last, for_phase):
            return last
        # follow() resumes cut watches from the last resourceVersion and relists after a 410; a relist that
        # no longer finds the DevServer reports it DELETED, since it starts from this GET's object.
        events = self._kube.follow(DEVSERVERS, namespace=self.namespace, field_selector=f"metadata.name={name}",
                                   resource_version=manifest["metadata"].get("resourceVersion"), seen=[manifest],
                                   timeout=max(0.0, deadline - time.monotonic()), cancel=cancel)
        with contextlib.closing(events), self._cancelled_wait(last, for_phase):
            # returning early closes the watch's connection at once
            for event, obj in events:
                if event == "BOOKMARK":
                    continue
                if event == "DELETED":
                    raise errors.devserver_not_found(name, self.namespace) if for_phase is None else \
                        DevServerNotFoundError(
                            f"DevServer '{name}' was deleted while waiting for phase {for_phase}.",
                            kind="DevServer", name=name, namespace=self.namespace)
                current = self._devserver(obj)
                if on_progress is not None and current.model_dump() != last.model_dump():
                    on_progress(current)
                last = current
                if self._reached(last, for_phase):
                    return last
        raise self._timeout_error(last, for_phase, timeout)

    @staticmethod
    @contextlib.contextmanager
    def _cancelled_wait(server: DevServer, for_phase: str | None) -> Iterator[None]:
        """Word a cancelled wait for the DevServer waited for."""
        try:
            yield
        except WaitCancelledError as exc:
            goal = f"phase {for_phase}" if for_phase else "its deletion"
            raise WaitCancelledError(
                f"Stopped waiting for DevServer '{server.name}' to reach {goal}; it is left as it is.",
                kind="DevServer", name=server.name, namespace=server.namespace) from exc

    @staticmethod
    def _reached(server: DevServer, for_phase: str | None) -> bool:
        phase = server.status.phase
        if for_phase is not None and phase == for_phase:
            return True
        if phase in ("Failed", "Expired") and for_phase != phase:
            # Expired here means its deadline had passed before it was created: it will not run by itself.
            reason = server.status.message or _last_condition(server) or "no reason given"
            what = "failed" if phase == "Failed" else "is Expired"
            raise DevServerFailedError(
                f"DevServer '{server.name}' {what}: {reason}.", next_step=NextStep("describe", server.name),
                lead="See what happened with", devserver=server, kind="DevServer", name=server.name,
                namespace=server.namespace)
        return False

    @staticmethod
    def _timeout_error(server: DevServer, for_phase: str | None, timeout: float) -> WaitTimeoutError:
        phase = server.status.phase
        goal = f"reach phase {for_phase}" if for_phase else "go away"
        state = f"it is still {phase}" if phase else "it has no phase yet (is the devservers operator running?)"
        condition = _last_condition(server)
        detail = f"; last condition: {condition.rstrip('.')}" if condition else ""
        if phase == "Pending" and for_phase:
            # Waiting gave up, the server did not: say so, and why in words when the operator found out.
            degraded = server.status.condition("Degraded")
            why = (f"; {server.status.message.rstrip('.')}" if degraded is not None and degraded.status == "True"
                   and server.status.message else "")
            return WaitTimeoutError(
                f"DevServer '{server.name}' did not {goal} within {timeout:g}s: {state}{detail}{why}. It stays "
                "Pending (the wait ending changes nothing) and starts when the cluster can run it, unless you "
                "delete it.",
                next_step=NextStep("describe", server.name), lead="See what is happening with", phase=phase,
                last=server, kind="DevServer", name=server.name, namespace=server.namespace)
        return WaitTimeoutError(
            f"DevServer '{server.name}' did not {goal} within {timeout:g}s: {state}{detail}.",
            next_step=NextStep("describe", server.name), lead="See what is happening with", phase=phase,
            last=server, kind="DevServer", name=server.name, namespace=server.namespace)

    # -- exec, shell, logs ---------------------------------------------------------------------------

    def exec(self, name: str, command: str | Sequence[str], *, rank: int = 0,
             stdin: StdinSource | None = None, timeout: float | None = None, check: bool = False,
             text: bool = True, container: str | None = None) -> ExecResult:
        """Run a command in a DevServer's pod and collect its output, like ``subprocess.run``.

        Args:
            name: the DevServer name.
            command: an argv list, or a string run by ``/bin/sh -c``.
            rank: which pod of a distributed DevServer (0 for standalone).
            stdin: input for the command: ``bytes``, ``str``, a binary or text file (a pipe or socket is
                forwarded as data arrives), or an iterable of ``bytes``. End of input is sent after it.
                ``None``: the command gets no stdin.
            timeout: seconds before the command is killed and ``ExecError`` raised (``None``: no limit).
            check: raise ``ExecError`` if the command exits non-zero.
            text: decode output as UTF-8 into ``str`` (``False``: ``bytes``).
            container: the container (default: the pod's first).

        Returns:
            An ``ExecResult`` with ``args``, ``returncode``, ``stdout`` and ``stderr``.

        Raises:
            DevServerNotFoundError: no such DevServer.
            DevServerNotReadyError: no running pod for that rank.
            ExecError: the command could not start, timed out, or failed with ``check=True``.

        Example:
            >>> client.exec("mydev", ["nvidia-smi", "-L"], check=True).stdout  # doctest: +SKIP
            >>> client.exec("mydev", ["tar", "xz", "-C", "/tmp"], stdin=open("data.tgz", "rb"))  # doctest: +SKIP
        """
        return exec_.run(self._open_session, command, devserver=name, find_pod=lambda: self.running_pod(name, rank),
                         record_activity=lambda: self.record_activity(name, "exec"), stdin=stdin,
                         timeout=timeout, check=check, text=text, container=container)

    def exec_stream(self, name: str, command: str | Sequence[str], *, rank: int = 0,
                    stdin: StdinSource | None = None, timeout: float | None = None, check: bool = False,
                    text: bool = True, container: str | None = None) -> ExecStream:
        """Run a command and get its output as it arrives.

        The command starts at once (errors such as a missing DevServer are raised here); iterate the
        result for ``(stream, chunk)`` pairs, then read its ``returncode``.

        Args:
            name, command, rank, stdin, container: as for ``exec``.
            timeout: seconds before the command is killed and ``ExecError`` raised while iterating.
            check: raise ``ExecError`` at the end of the iteration if the command exited non-zero.
            text: yield ``str`` chunks (UTF-8, split safely across chunks) instead of ``bytes``.

        Returns:
            An ``ExecStream`` (iterable, context manager).

        Raises:
            DevServerNotFoundError, DevServerNotReadyError: as for ``exec``.
            ExecError: while iterating: the command could not start, timed out, or failed with ``check``.

        Example:
            >>> with client.exec_stream("mydev", "python train.py") as run:  # doctest: +SKIP
            ...     for stream, chunk in run:
            ...         print(chunk, end="")
            >>> run.returncode  # doctest: +SKIP
            0
        """
        return exec_.stream(self._open_session, command, devserver=name,
                            find_pod=lambda: self.running_pod(name, rank),
                            record_activity=lambda: self.record_activity(name, "exec"), stdin=stdin,
                            timeout=timeout, check=check, text=text, container=container)

    def shell(self, name: str, *, rank: int = 0, command: str | Sequence[str] | None = None,
              container: str | None = None, stdin: IO[Any] | None = None, stdout: IO[Any] | None = None,
              activity: str = "shell") -> int:
        """Attach this terminal to a shell in a DevServer's pod, until the shell exits.

        The terminal is put in raw mode (every key goes to the remote shell, ^C included) and restored
        afterwards; window size changes are forwarded. Without a terminal, input and output are plain
        streams (like ``kubectl exec -i``).

        Args:
            name: the DevServer name.
            rank: which pod.
            command: what to run (default: an interactive ``bash``, else ``sh``, with the container's
                environment, PATH included).
            container: the container (default: the pod's first).
            stdin, stdout: the streams to attach (default: ``sys.stdin`` and ``sys.stdout``).
            activity: what the DevServer's activity record calls this session (``ssh`` for ssh-proxy).

        Returns:
            The exit status of the shell.

        Raises:
            DevServerNotFoundError, DevServerNotReadyError: as for ``exec``.
            ExecError: the shell could not start.

        Example:
            >>> raise SystemExit(client.shell("mydev"))  # doctest: +SKIP
        """
        return exec_.attach(self._open_session, command, devserver=name,
                            find_pod=lambda: self.running_pod(name, rank),
                            record_activity=lambda: self.record_activity(name, activity), container=container,
                            stdin=stdin, stdout=stdout)

    def logs(self, name: str, *, rank: int = 0, follow: bool = False, tail: int | None = None,
             container: str | None = None, previous: bool = False) -> Generator[str, None, None]:
        """The log lines of a DevServer's pod (without their newline), optionally following new ones.

        Args:
            name: the DevServer name.
            rank: which pod.
            follow: keep yielding lines as they are written, until the container stops (or the iterator is
                closed).
            tail: only the last ``tail`` lines.
            container: the container (default: the pod's first).
            previous: the log of the container's previous run (after a crash or restart), as
                ``kubectl logs --previous``.

        Returns:
            A generator of lines (``close()`` it to stop following).

        Raises:
            DevServerNotFoundError: no such DevServer.
            DevServerNotReadyError: no pod for that rank.

        Example:
            >>> for line in client.logs("mydev", follow=True, tail=10):  # doctest: +SKIP
            ...     print(line)
        """
        pod = self._pod_name(name, rank, running=False)
        chunks = self._kube.logs(self.namespace, pod, container=container, follow=follow, tail=tail,
                                 previous=previous)
        return _lines(chunks)

    @staticmethod
    def no_logs_message(name: str, *, rank: int = 0, container: str | None = None) -> str:
        """What a front end says when ``logs`` yielded nothing: silence reads as a hang or a bug.

        Example:
            >>> DevServerClient.no_logs_message("mydev", rank=1)
            "No output yet from container 'devserver' of pod 'mydev-1'."
        """
        return f"No output yet from container '{container or CONTAINER_NAME}' of pod '{name}-{rank}'."

    # -- internals -----------------------------------------------------------------------------------

    def _devserver(self, manifest: dict[str, Any]) -> DevServer:
        try:
            return DevServer.from_manifest(_typed(manifest, DEVSERVERS))
        except ValueError as exc:  # stored by another client, or by a newer CRD than this SDK knows
            metadata = manifest.get("metadata") or {}
            error = _invalid_from_validation(exc, str(metadata.get("name")))
            raise InvalidSpecError(
                f"DevServer '{metadata.get('name')}' in namespace '{metadata.get('namespace')}' cannot be read by "
                f"this SDK ({error.message.split(': ', 1)[-1].rstrip('.')}). Upgrade devservers, or fix the "
                f"object with: kubectl edit devserver {metadata.get('name')}", field=error.field,
                kind="DevServer", name=metadata.get("name"), namespace=metadata.get("namespace")) from exc

    def _patch(self, name: str, patch: dict[str, Any]) -> DevServer:
        return self._devserver(self._kube.patch(DEVSERVERS, name, patch, namespace=self.namespace,
                                                content_type=MERGE_PATCH))

    def record_activity(self, name: str, source: str | None = None) -> None:
        """Mark the DevServer as in use now: its idle timeout counts from this moment.

        ``source`` names what was used (``exec``, ``port-forward``...), shown by ``describe``.
        """
        self._kube.patch(DEVSERVERS, name, activity_patch(source=source), namespace=self.namespace, timeout=10.0)

    def _open_session(self, pod: str, argv: Sequence[str], /, *, container: str | None = None,
                      stdin: bool = False, tty: bool = False, timeout: float | None = None) -> ExecSession:
        return self._kube.exec(self.namespace, pod, argv, container=container, stdin=stdin, tty=tty,
                               timeout=timeout)

    def _pods(self, name: str) -> builtins.list[dict[str, Any]]:
        listing = self._kube.list(PODS, namespace=self.namespace, label_selector=f"{NAME_LABEL}={name}")
        pods = listing.get("items") or []
        return sorted(pods, key=lambda pod: (rank if (rank := pod_rank(pod)) is not None else 1 << 30,
                                             pod["metadata"]["name"]))

    def _pod_name(self, name: str, rank: int, *, running: bool) -> str:
        pods = [pod for pod in self._pods(name) if pod_rank(pod) == rank]
        live = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
        usable = [pod for pod in live if pod_running(pod)] if running else live
        if usable:
            return str(usable[0]["metadata"]["name"])
        server = self.get(name)  # raises DevServerNotFoundError when that is the problem
        phase = server.status.phase or "not reported"
        step, lead = NextStep("wait", name), "Wait for it with"
        if phase == "Stopped":
            hint, step, lead = "it is stopped.", NextStep("start", name), "Start it with"
        elif live:
            pod_phase = (live[0].get("status") or {}).get("phase") or "unknown"
            hint = f"its pod {live[0]['metadata']['name']} is {pod_phase}."
        else:
            ranks = sorted(r for r in (pod_rank(p) for p in self._pods(name)) if r is not None)
            known = f" (ranks present: {', '.join(map(str, ranks))})" if ranks else ""
            hint = f"phase {phase}{known}."
        state = "running pod" if running else "pod"
        raise DevServerNotReadyError(f"DevServer '{name}' has no {state} for rank {rank}: {hint}", next_step=step,
                                     lead=lead, kind="DevServer", name=name, namespace=self.namespace)

    def running_pod(self, name: str, rank: int = 0) -> str:
        """The name of the pod of ``rank`` that runs now (phase Running, not being deleted).

        Raises:
            DevServerNotFoundError: no DevServer of that name.
            DevServerNotReadyError: no such pod; the message says why (stopped, still starting, which ranks
                exist) and the next step.
        """
        return self._pod_name(name, rank, running=True)

    # -- connect: port-forward, files ---------------------------------------------------------------

    def port_forward(self, name: str, remote_port: int, *, local_port: int = 0, rank: int = 0,
                     address: str = "127.0.0.1", on_error: Callable[[str], None] | None = None) -> PortForward:
        """Forward a local TCP port to ``remote_port`` of a DevServer's pod, for as long as a ``with`` lasts.

        Many connections at once are fine (each gets its own stream). A connection the pod refuses (nothing
        listens on ``remote_port`` yet) is closed and reported through ``on_error``; the forward keeps
        listening. While it is open, the DevServer counts as in use (idle shutdown waits).

        Args:
            name: the DevServer name.
            remote_port: the port in the pod.
            local_port: the local port (0: any free one; read it from the address).
            rank: which pod of a distributed DevServer.
            address: the local address to listen on (``0.0.0.0`` to share it with your network).
            on_error: called with a one-line message for each failed connection (default: a log warning).

        Returns:
            A started ``PortForward``; ``with`` gives its ``LocalAddress`` ``(host, port)`` (``.url``).

        Raises:
            DevServerNotFoundError, DevServerNotReadyError: as for ``exec``.
            InvalidSpecError: a bad port, or the local port is taken.

        Example:
            >>> with client.port_forward("mydev", 6006) as (host, port):  # doctest: +SKIP
            ...     urllib.request.urlopen(f"http://{host}:{port}/").read()
        """
        from .connect.portforward import PortForward

        return PortForward(self, name, remote_port, local_port=local_port, rank=rank, address=address,
                           on_error=on_error)

    def copy_to(self, name: str, source: str | os.PathLike[str], destination: str, *, rank: int = 0,
                all_ranks: bool = False) -> TransferResult:
        """Copy a local file or directory into a DevServer, keeping modes and modification times.

        As ``cp -r``: into ``destination`` when it is a directory in the pod (or ends with ``/``), else
        to ``destination`` itself. ``~`` is the pod's home.

        Args:
            name: the DevServer name.
            source: a local file, directory or symlink.
            destination: the path in the pod.
            rank: which pod; ``all_ranks``: every pod of a distributed DevServer.

        Returns:
            A ``TransferResult`` (files, bytes sent, ranks, the path it went to).

        Raises:
            InvalidSpecError: ``source`` does not exist.
            DevServerNotFoundError, DevServerNotReadyError: as for ``exec``.
            ExecError: the pod could not unpack it (a read-only path, no ``tar`` in the image).

        Example:
            >>> client.copy_to("mydev", "data/", "~/data")  # doctest: +SKIP
        """
        from .connect.files import copy_to

        return copy_to(self, name, source, destination, rank=rank, all_ranks=all_ranks)

    def copy_from(self, name: str, source: str, destination: str | os.PathLike[str], *,
                  rank: int = 0) -> TransferResult:
        """Copy a file or directory of a DevServer to this machine, keeping modes and modification times.

        Into ``destination`` when it is a local directory, else to ``destination`` itself (whose
        directory must exist). Paths in the archive that would leave it are refused.

        Raises:
            InvalidSpecError: the local directory does not exist.
            ExecError: no such path in the pod.

        Example:
            >>> client.copy_from("mydev", "~/runs/exp1", "./exp1")  # doctest: +SKIP
        """
        from .connect.files import copy_from

        return copy_from(self, name, source, destination, rank=rank)

    def sync(self, name: str, source: str | os.PathLike[str], destination: str | None = None, *,
             ranks: Iterable[int] | None = None) -> TransferResult:
        """Upload a working directory to every rank, sending only what changed since the last sync.

        ``.git`` and what ``.gitignore`` ignores stay here; nothing in the pod is ever deleted.

        Args:
            name: the DevServer name.
            source: the local directory.
            destination: the directory in the pods (default ``~/<name of source>``).
            ranks: which ranks (default: all).

        Returns:
            A ``TransferResult``; ``bytes_sent == 0`` when everything was already there.

        Example:
            >>> client.sync("ddp", ".")  # doctest: +SKIP
        """
        from .connect.files import sync

        return sync(self, name, source, destination, ranks=ranks)

    def ssh_config(self, names: Sequence[str] | None = None, *, identity: str | os.PathLike[str] | None = None,
                   install: bool = False) -> SshConfigResult:
        """Write ssh ``Host`` entries for DevServers: ``NAME.devserver``, and ``NAME-<rank>.devserver`` per rank.

        Each entry reaches the server through ``devctl ssh-proxy`` (``sshd -i`` in the pod over exec; no
        port is opened). Makes ``~/.ssh/devservers_ed25519`` on first use (or uses ``identity``), pins each
        running rank's host key in ``~/.ssh/devservers/known_hosts``, and writes
        ``~/.ssh/devservers/hosts/NAME.conf``. See ``connect/ssh.py``.

        Args:
            names: the DevServers (default: every one in the namespace).
            identity: a private key to use instead of the default one.
            install: add the ``Include`` line for these files at the top of ``~/.ssh/config`` (once).

        Returns:
            An ``SshConfigResult`` (hosts, files, pinned hosts, the Include line, notes).

        Raises:
            DevServerNotFoundError: a named DevServer does not exist.
            ConfigurationError: no ``ssh-keygen`` here, or ``identity`` does not exist.

        Example:
            >>> client.ssh_config(["mydev"], install=True).hosts  # doctest: +SKIP
            ['mydev.devserver']
        """
        from .connect.ssh import ssh_config

        return ssh_config(self, names, identity=identity, install=install)

    def ssh_proxy(self, host: str, *, identity: str | os.PathLike[str] | None = None) -> int:
        """Relay this process's stdin and stdout to ``sshd -i`` in the pod ``host`` names (ssh's ProxyCommand).

        Args:
            host: ``NAME.devserver`` (rank 0) or ``NAME-<rank>.devserver``.
            identity: the private key whose public half the pod must accept.

        Returns:
            The exit status of sshd (127: the image has no sshd; the message says what to install).
        """
        from .connect.ssh import proxy

        return proxy(self, host, identity=identity)

    def jupyter(self, name: str, *, rank: int = 0, port: int | None = None,
                python: str = "python3") -> JupyterServer:
        """Start JupyterLab in a DevServer, or find the one already running there.

        It runs in the pod with the home as root directory and a generated token, and keeps running after
        this call (stop it with ``jupyter_stop``). Reach it through a forward::

            server = client.jupyter("mydev")
            with client.port_forward("mydev", server.port) as address:
                print(server.url(address))

        Args:
            name: the DevServer name.
            rank: which pod.
            port: the port in the pod (default: a free one; ignored when one is already running).
            python: the image's Python that has JupyterLab (a name on the pod's PATH, or a path).

        Returns:
            A ``JupyterServer`` (port, token, ``url(address)``, whether it was reused).

        Raises:
            DevServerNotFoundError, DevServerNotReadyError: as for ``exec``.
            ExecError: JupyterLab is not in the image (the message says what to install), or did not start.
        """
        from .connect.jupyter import start

        return start(self, name, rank=rank, port=port, python=python)

    def jupyter_stop(self, name: str, *, rank: int = 0) -> bool:
        """Stop the JupyterLab ``jupyter`` started in a DevServer; ``False`` if none was running."""
        from .connect.jupyter import stop

        return stop(self, name, rank=rank)

    # -- launch --------------------------------------------------------------------------------------

    def checkpoints(self, name: str, *, rank: int = 0, directory: str | None = None) -> CheckpointListing:
        """The complete checkpoints ``CheckpointManager`` saved on one rank, oldest first.

        Reads the ``checkpoint.json`` of every ``step-*`` directory with ``cat`` in the pod (the image needs
        only a shell, not this package). Under DDP rank 0 holds them; a sharded layout lives in a directory
        every rank sees.

        Args:
            name: the DevServer name.
            rank: the pod to look in.
            directory: the checkpoint directory in the pod (default: ``$DEVSERVERS_CHECKPOINT_DIR``, else
                ``~/checkpoints``, as ``CheckpointManager`` chooses).

        Returns:
            A ``CheckpointListing``: the directory looked in and the checkpoints (step, time, size, layout).

        Raises:
            DevServerNotFoundError: no such DevServer.
            DevServerNotReadyError: no running pod for that rank.

        Example:
            >>> client.checkpoints("ddp").latest.step  # doctest: +SKIP
            40
        """
        from .checkpoint import (
            CHECKPOINT_DIR_ENV,
            DEFAULT_CHECKPOINT_DIR,
            MANIFEST_NAME,
            CheckpointListing,
            parse_listing,
        )

        default = DEFAULT_CHECKPOINT_DIR.replace("~", "$HOME", 1)
        script = (f'd="${{1:-${{{CHECKPOINT_DIR_ENV}:-{default}}}}}"; case "$d" in "~"*) d="$HOME${{d#"~"}}";; '
                  f'esac; echo "$d"; for f in "$d"/step-*/{MANIFEST_NAME}; do [ -f "$f" ] && cat "$f" && echo; '
                  f'done; true')
        result = self.exec(name, ["sh", "-c", script, "devservers-checkpoints", directory or ""], rank=rank,
                           timeout=60, check=True)
        looked_in, _, listing = str(result.stdout).partition("\n")
        return CheckpointListing(directory=looked_in, rank=rank, checkpoints=parse_listing(listing, looked_in))

    def launch(self, name: str, command: str | Sequence[str] = (), *,
               nprocs_per_node: int | Literal["auto", "cpu", "gpu"] | None = None,
               env: dict[str, str] | None = None, workdir: str | os.PathLike[str] | None = None,
               cwd: str | None = None, timeout: float | None = None,
               on_output: OutputCallback | None = None, resume: bool = False,
               checkpoint_dir: str | None = None, source: str | None = None) -> LaunchHandle:
        """Run ``torchrun`` on every rank of a distributed DevServer at once (see ``launch.py``).

        Each pod runs ``python -m torch.distributed.run [--nproc-per-node N] <command>`` over its own exec
        session; torchrun takes the rest from the pods' ``PET_*`` environment. The call returns once every
        rank has started. If a rank fails, the others are stopped; an interrupt during ``wait()`` or the
        iteration stops them all. Each launch records activity on the DevServer.

        Args:
            name: the DevServer (``mode: distributed``, phase Running, every rank Ready).
            command: the script and its arguments: ``"train.py --epochs 3"``, ``["train.py", "--lr", "0.1"]``,
                ``"python train.py"``, ``"-m pkg.train"``; another program (``"bash run.sh"``) runs as is.
                With ``source``: only the script's arguments (default: none).
            nprocs_per_node: processes per pod instead of the DevServer's ``nprocsPerNode`` (or ``"gpu"``).
            env: extra environment variables for every process (not the ``PET_*``/``MASTER_*``/``NODE_RANK``
                contract, nor ``LD_PRELOAD``-style ones).
            workdir: a local directory (your code) to upload to every rank first, as ``sync`` does (only what
                changed; ``.git`` and what ``.gitignore`` ignores stay here), into ``~/<its name>``; the
                command then runs there, so ``workdir=".", command="train.py"`` runs your ``train.py``.
            cwd: the directory of the pods to run in (default: the uploaded ``workdir``, else the home).
            timeout: seconds after which every rank is stopped and ``wait()`` raises ``LaunchTimeoutError``.
            on_output: called as ``on_output(rank, stream, line)`` for every line, from a reader thread.
            resume: continue from the newest complete checkpoint on rank 0 (``checkpoints``): every process
                gets ``DEVSERVERS_RESUME_FROM`` (its directory) and ``DEVSERVERS_RESUME_STEP``, which
                ``CheckpointManager.resume()`` loads; with none yet, the script starts from the beginning
                (``handle.resumed_from`` is None).
            checkpoint_dir: where the script's checkpoints are (default ``~/checkpoints``); passed on as
                ``DEVSERVERS_CHECKPOINT_DIR``.
            source: the text of a Python script to run instead of a file in the pods (a notebook cell): it is
                written to every rank at one absolute path once the ranks are ready (``launch.write_script``),
                and ``command`` is then only its arguments.

        Returns:
            A ``LaunchHandle``: iterate it for ``(rank, stream, line)``, ``wait()`` for ``{rank: returncode}``,
            ``logs(rank=...)``, ``cancel()``; a context manager that stops what still runs on exit.

        Raises:
            DevServerNotFoundError: no such DevServer.
            NotDistributedError: a standalone DevServer (use ``exec``/``shell``).
            DevServerNotReadyError: not Running, or some ranks not Ready (the message names them).
            InvalidSpecError: a bad command, ``env`` name, ``nprocs_per_node``, ``cwd`` or ``timeout``, or a
                ``workdir`` that is not a local directory.
            ExecError: ``source`` could not be written in the pods.

        Example:
            >>> with client.launch("ddp", "train.py --epochs 3") as run:  # doctest: +SKIP
            ...     for rank, stream, line in run:
            ...         print(f"[rank {rank}] {line}")
            ...     run.wait()
            {0: 0, 1: 0}
        """
        from .launch import LaunchTarget, launch

        if workdir is not None:
            if not os.path.isdir(workdir):
                raise InvalidSpecError(
                    f"workdir {str(workdir)!r} is not a directory on this machine: workdir is your code, uploaded "
                    f"to every rank before the launch.", field="workdir", kind="DevServer", name=name,
                    next_step=NextStep("launch", name, {"cwd": str(workdir)}),
                    lead="To run in a directory of the pods instead, use cwd")
            cwd = cwd or self.sync(name, workdir).remote_path
        # The upload leaves .git at home, so the commit of the synced code travels with the launch: the
        # tracked run records it (tracking.start_run).
        commit = git_commit(workdir) if workdir is not None else None
        target = LaunchTarget(
            name=name, namespace=self.namespace, read=lambda: self.get(name), pods=lambda: self._pods(name),
            open_session=self._open_session, record_activity=lambda: self.record_activity(name),
            checkpoints=lambda directory: self.checkpoints(name, rank=0, directory=directory))
        return launch(target, command, nprocs_per_node=nprocs_per_node, env=env, workdir=cwd,
                      timeout=timeout, on_output=on_output, resume=resume, checkpoint_dir=checkpoint_dir,
                      git_commit=commit, source=source)


# -- module helpers --------------------------------------------------------------------------------------

def _typed(manifest: dict[str, Any], resource: Any) -> dict[str, Any]:
    """Items of a List carry no apiVersion/kind on every server; the models want them."""
    if "kind" not in manifest or "apiVersion" not in manifest:
        manifest = {**manifest, "apiVersion": resource.api_version, "kind": resource.kind}
    return manifest


def _pod_summary(pod: dict[str, Any]) -> PodSummary:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    waiting = next((c["state"]["waiting"] for c in containers if (c.get("state") or {}).get("waiting")), None)
    message = (waiting or {}).get("reason") or status.get("message") or status.get("reason")
    return PodSummary(
        name=pod["metadata"]["name"], rank=pod_rank(pod), phase=status.get("phase") or "Unknown",
        ready=pod_ready(pod),
        restarts=sum(int(c.get("restartCount") or 0) for c in containers),
        node=(pod.get("spec") or {}).get("nodeName"), ip=status.get("podIP"),
        started_at=_parse_time(status.get("startTime")), message=message)


def _event_summary(event: dict[str, Any]) -> EventSummary:
    involved = event.get("involvedObject") or {}
    last = event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get("creationTimestamp")
    return EventSummary(type=event.get("type") or "Normal", reason=event.get("reason") or "",
                        message=(event.get("message") or "").strip(),
                        object=f"{involved.get('kind', '?')}/{involved.get('name', '?')}",
                        count=int(event.get("count") or 1), last_seen=_parse_time(last))


def _last_condition(server: DevServer) -> str | None:
    conditions = server.status.conditions
    if not conditions:
        return None
    epoch = datetime.min.replace(tzinfo=UTC)
    failing = [c for c in conditions if c.status != "True"] or conditions
    latest = max(failing, key=lambda c: _parse_time(c.last_transition_time) or epoch)
    text = f"{latest.type}={latest.status}"
    if latest.reason:
        text += f" ({latest.reason})"
    return text + (f": {latest.message}" if latest.message else "")


def _lines(chunks: Iterator[bytes]) -> Generator[str, None, None]:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    try:
        for chunk in chunks:
            pending += decoder.decode(chunk)
            *complete, pending = pending.split("\n")
            yield from complete
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()

