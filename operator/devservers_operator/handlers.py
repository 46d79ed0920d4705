"""kopf's part: settings, the watched objects as in-memory indices, and events turned into reconcile triggers.

Thin by rule: every handler here only records or triggers; ``reconcile.py`` does the work on its own
queue (``workqueue.py`` says why not kopf's change handlers, timers or daemons).

Watched, each through one kopf watch stream:

* DevServers (the watched namespaces, or the cluster) and DevServerFlavors (cluster-scoped);
* StatefulSets and Services labelled ``app.kubernetes.io/managed-by=devservers-operator``, with the
  label selector sent to the API server;
* the ConfigMaps named ``devservers-defaults`` (a field selector sent to the API server: no other
  ConfigMap reaches the operator), whose ``tracking`` key is a namespace's experiment-tracking defaults.

Pods are watched outside kopf (``podwatch.py``: kopf's cost per event, and most pod events are not news),
with the same label selector, so the operator never receives other pods (no cluster-wide pod LIST or
WATCH of everything).

The indices and the pod watch are the caches the reconcile reads instead of GETting. kopf holds every
handler back until all indices are filled from the initial listings, and the reconciler runs nothing until
the pod watch has its first listing, so after a restart the first reconcile of a DevServer already sees its
StatefulSet and pods: nothing is recreated twice and no status flaps to Pending.

No kopf finalizer, no kopf annotations or status: the operator writes ``status`` itself through the API,
and deleting a DevServer is never blocked by an operator that is down (ownerReferences do the cleanup).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from devservers_sdk.contract import (
    API_GROUP,
    API_VERSION,
    DEVSERVER_PLURAL,
    FLAVOR_PLURAL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAME_LABEL,
)
from devservers_sdk.tracking_settings import DEFAULTS_CONFIGMAP

from .metrics import COUNTERS, CountedKube, MetricsServer
from .podwatch import PodWatch
from .reconcile import Key, Reconciler
from .settings import OperatorSettings

__all__ = ["IndexCache", "NoDiffBase", "QuietEventHandlers"]

log = logging.getLogger(__name__)

MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
DEFAULTS_SELECTOR = f"metadata.name={DEFAULTS_CONFIGMAP}"
_OWNED = {MANAGED_BY_LABEL: MANAGED_BY}


class IndexCache:
    """The reconcile's ``Cache``, read from kopf's live indices and the pod watch (see the module docstring)."""

    def __init__(self, indices: dict[str, Any], pods: PodWatch) -> None:
        self._devservers: kopf.Index[Key, dict[str, Any]] = indices["devserver_index"]
        self._flavors: kopf.Index[str, dict[str, Any]] = indices["flavor_index"]
        self._statefulsets: kopf.Index[Key, dict[str, Any]] = indices["statefulset_index"]
        self._services: kopf.Index[Key, dict[str, Any]] = indices["service_index"]
        self._pods = pods
        self._defaults: kopf.Index[str, dict[str, Any]] = indices["defaults_index"]

    @staticmethod
    def _one(index: kopf.Index[Any, dict[str, Any]], key: Any) -> dict[str, Any] | None:
        store = index.get(key)
        return next(iter(store), None) if store else None

    def devserver(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._one(self._devservers, (namespace, name))

    def flavor(self, name: str) -> dict[str, Any] | None:
        return self._one(self._flavors, name)

    def flavor_names(self) -> list[str]:
        return sorted(self._flavors)

    def statefulset(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._one(self._statefulsets, (namespace, name))

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._one(self._services, (namespace, name))

    def pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return self._pods.pods(namespace, name)

    def flavor_users(self, flavor: str) -> list[Key]:
        # A scan, not an index of its own: flavors change rarely, DevServers on every status write, and a
        # second index cost a second kopf handler run on each of their watch events.
        return sorted(
            key
            for key in self._devservers
            if ((self.devserver(*key) or {}).get("spec") or {}).get("flavor") == flavor
        )

    def namespace_defaults(self, namespace: str) -> dict[str, Any] | None:
        return self._one(self._defaults, namespace)

    def devservers_in(self, namespace: str) -> list[Key]:
        return sorted(key for key in self._devservers if key[0] == namespace)


class QuietEventHandlers(logging.Filter):
    """Drops kopf's "Handler 'flavor_event' succeeded." lines: one per event of the handlers that run.

    Failures, and every line of the operator's own loggers, still show.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return not (message.startswith("Handler '") and message.endswith("' succeeded."))


class KopfRetriesAreWarnings(logging.Filter):
    """kopf logs each retry of its own requests (its watch streams, mostly) at ERROR: "Request attempt #1/9
    failed; will retry: GET ... -> APIServerError(...)". It does retry them, as ``AsyncKube`` retries the
    operator's; a blip it absorbs is a WARNING here. Its give-up ("failed; escalating") stays an ERROR.
    """

    LOGGERS = ("kopf._cogs.clients.watching", "kopf.objects")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and "failed; will retry" in record.getMessage():
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


class NoDiffBase(kopf.DiffBaseStorage):
    """Keeps no diff-base: without change handlers nothing reads one.

    kopf builds the "essence" of every object on every watch event (a deep copy of the body, then
    another to strip its progress annotations) for the diffs of ``@kopf.on.create/update`` handlers. This
    operator registers none, so those copies were a fifth of its CPU per event at scale; kopf skips the
    diff when both sides are None.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: kopf.Body) -> Any:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


def _reconciler(memo: Any) -> Reconciler:
    reconciler: Reconciler = memo["reconciler"]
    return reconciler


# -- lifetime --------------------------------------------------------------------------------------------


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **kwargs: Any,
) -> None:
    """Configure kopf, connect the one API client of the process and start the reconciler."""
    operator_settings: OperatorSettings = memo.get("settings") or OperatorSettings.from_env()
    settings.posting.level = logging.INFO
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="devservers.io")
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.batching.worker_limit = None  # never 1: one worker per object, all objects in parallel
    for plural in ("statefulsets", "services"):
        settings.watching.label_selectors[plural] = MANAGED_SELECTOR
    settings.watching.field_selectors["configmaps"] = DEFAULTS_SELECTOR
    for name in KopfRetriesAreWarnings.LOGGERS:
        kopf_logger = logging.getLogger(name)
        if not any(isinstance(f, KopfRetriesAreWarnings) for f in kopf_logger.filters):
            kopf_logger.addFilter(KopfRetriesAreWarnings())
    objects_logger = logging.getLogger("kopf.objects")
    if not any(isinstance(f, QuietEventHandlers) for f in objects_logger.filters):
        objects_logger.addFilter(QuietEventHandlers())
    if not objects_logger.isEnabledFor(logging.DEBUG):
        # kopf's per-object INFO lines are its "Handler ... succeeded" after every handler run: two per watch
        # event, a tenth of the operator's CPU to build and then drop in the filter above. Its warnings
        # and errors still show; DEVSERVERS_LOG_LEVEL=DEBUG shows everything.
        objects_logger.setLevel(logging.WARNING)
    kube = await CountedKube.connect()
    pods = PodWatch(kube, operator_settings.namespaces)
    reconciler = Reconciler(kube, IndexCache(kwargs, pods), operator_settings, ready=pods.synced)
    memo["kube"] = kube
    memo["reconciler"] = reconciler
    memo["pods"] = pods
    pods.start(reconciler.owned_changed)
    if operator_settings.metrics:
        metrics = MetricsServer(operator_settings.metrics)
        await metrics.start()
        memo["metrics"] = metrics
    where = ", ".join(operator_settings.namespaces) or "all namespaces"
    logger.info(f"devservers operator watching {where} on {kube.server} (context {kube.context})")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    pods: PodWatch | None = memo.get("pods")
    if pods is not None:
        await pods.stop()  # first: it would wake the reconciler
    reconciler: Reconciler | None = memo.get("reconciler")
    if reconciler is not None:
        await reconciler.stop()
    kube: CountedKube | None = memo.get("kube")
    if kube is not None:
        await kube.close()
    metrics: MetricsServer | None = memo.get("metrics")
    if metrics is not None:
        await metrics.stop()


# -- indices (the caches) ----------------------------------------------------------------------------


def _key(body: kopf.Body, name: str | None = None) -> Key:
    return (str(body.metadata.namespace), str(name or body.metadata.name))


@kopf.index(API_GROUP, API_VERSION, DEVSERVER_PLURAL)
async def devserver_index(body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
    return {_key(body): dict(body)}


@kopf.index(API_GROUP, API_VERSION, FLAVOR_PLURAL)
async def flavor_index(body: kopf.Body, name: str, **_: Any) -> dict[str, dict[str, Any]]:
    return {name: dict(body)}


def _owner_key(body: kopf.Body, labels: kopf.Labels) -> dict[Key, dict[str, Any]]:
    owner = labels.get(NAME_LABEL)
    return {_key(body, owner): dict(body)} if owner else {}


@kopf.index("apps", "v1", "statefulsets", labels=_OWNED)
async def statefulset_index(body: kopf.Body, labels: kopf.Labels, **_: Any) -> dict[Key, dict[str, Any]]:
    return _owner_key(body, labels)


@kopf.index("", "v1", "services", labels=_OWNED)
async def service_index(body: kopf.Body, labels: kopf.Labels, **_: Any) -> dict[Key, dict[str, Any]]:
    return _owner_key(body, labels)


def _is_defaults(name: str, **_: Any) -> bool:
    # The field selector already keeps every other ConfigMap away; this guards a server that ignores it.
    return name == DEFAULTS_CONFIGMAP


@kopf.index("", "v1", "configmaps", when=_is_defaults)
async def defaults_index(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, dict[str, Any]]:
    return {str(namespace): {"data": dict(body.get("data") or {})}}


# -- events → triggers -----------------------------------------------------------------------------------
#
# The DevServer and owned-object events are handled in the handlers' ``when`` filter, which then answers
# False, so kopf never runs the handler itself. kopf evaluates a filter once per event with the same
# arguments a handler gets, and a filtered-out handler skips its execution machinery (outcome and state
# bookkeeping, the handler's log lines): a seventh of the operator's CPU per watch event, and every
# DevServer cost some fourteen of them before pods left kopf. The work is the same either way (record,
# trigger, return), never a request, so nothing is lost by doing it in the filter; kopf still holds the
# filters back until every index is filled, as it holds handlers.


def _handled_in_filter(kind: str) -> Any:
    def handle(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
        try:
            reconciler = _reconciler(memo)
            if kind == "DevServer":
                outcome = reconciler.devserver_changed(type, body)
            else:
                outcome = reconciler.owned_changed(kind, type, body)
            COUNTERS.event(kind, outcome)
        except Exception:  # a filter that raises makes kopf throttle the object's whole stream
            log.exception("A %s event was not handled", kind)
        return False

    return handle


@kopf.on.event(API_GROUP, API_VERSION, DEVSERVER_PLURAL, when=_handled_in_filter("DevServer"))
async def devserver_event(**_: Any) -> None:
    """Never runs: its filter handles the event (see above)."""


@kopf.on.event(API_GROUP, API_VERSION, FLAVOR_PLURAL)
async def flavor_event(name: str, memo: kopf.Memo, **_: Any) -> None:
    _reconciler(memo).flavor_changed(name)
    COUNTERS.event("DevServerFlavor", "reconcile")


@kopf.on.event("apps", "v1", "statefulsets", labels=_OWNED, when=_handled_in_filter("StatefulSet"))
async def statefulset_event(**_: Any) -> None:
    """Never runs: its filter handles the event (see above)."""


@kopf.on.event("", "v1", "services", labels=_OWNED, when=_handled_in_filter("Service"))
async def service_event(**_: Any) -> None:
    """Never runs: its filter handles the event (see above)."""


@kopf.on.event("", "v1", "configmaps", when=_is_defaults)
async def defaults_event(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    _reconciler(memo).namespace_defaults_changed(str(namespace))
    COUNTERS.event("ConfigMap", "reconcile")
