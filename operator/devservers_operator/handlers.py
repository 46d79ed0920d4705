"""kopf's part: settings, the watched objects as in-memory indices, and events turned into reconcile triggers.

Thin by rule: every handler here only records or triggers; ``reconcile.py`` does the work on its own
queue (``workqueue.py`` says why not kopf's change handlers, timers or daemons).

Watched, each through one kopf watch stream:

* DevServers (the watched namespaces, or the cluster) and DevServerFlavors (cluster-scoped);
* the ConfigMaps named ``devservers-defaults`` (a field selector sent to the API server: no other
  ConfigMap reaches the operator), whose ``tracking`` key is a namespace's experiment-tracking defaults.

What the operator makes (pods, StatefulSets, Services) is watched outside kopf (``ownedwatch.py``: kopf's
cost per event, and most of their events are not news), with the label selector
``app.kubernetes.io/managed-by=devservers-operator`` sent to the API server, so the operator never
receives other objects of those kinds (no cluster-wide pod LIST or WATCH of everything).

The indices and the owned watches are the caches the reconcile reads instead of GETting. kopf holds every
handler back until all indices are filled from the initial listings, and the reconciler runs nothing until
every owned watch has its first listing, so after a restart the first reconcile of a DevServer already
sees its StatefulSet and pods: nothing is recreated twice and no status flaps to Pending.

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
)
from devservers_sdk.tracking_settings import DEFAULTS_CONFIGMAP

from .metrics import COUNTERS, CountedKube, MetricsServer
from .ownedwatch import OwnedWatches
from .reconcile import Key, Reconciler
from .settings import OperatorSettings

__all__ = ["IndexCache", "NoDiffBase", "QuietEventHandlers"]

log = logging.getLogger(__name__)

DEFAULTS_SELECTOR = f"metadata.name={DEFAULTS_CONFIGMAP}"


class IndexCache:
    """The reconcile's ``Cache``, read from kopf's live indices and the owned watches (see the module docstring)."""

    def __init__(self, indices: dict[str, Any], owned: OwnedWatches) -> None:
        self._devservers: kopf.Index[Key, dict[str, Any]] = indices["devserver_index"]
        self._flavors: kopf.Index[str, dict[str, Any]] = indices["flavor_index"]
        self._owned = owned
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
        return self._owned.statefulsets.one(namespace, name)

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._owned.services.one(namespace, name)

    def pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return self._owned.pods.owned(namespace, name)

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
    owned = OwnedWatches(kube, operator_settings.namespaces)
    reconciler = Reconciler(kube, IndexCache(kwargs, owned), operator_settings, ready=owned.synced)
    memo["kube"] = kube
    memo["reconciler"] = reconciler
    memo["owned"] = owned
    owned.start(reconciler.owned_changed)
    if operator_settings.metrics:
        metrics = MetricsServer(operator_settings.metrics)
        await metrics.start()
        memo["metrics"] = metrics
    where = ", ".join(operator_settings.namespaces) or "all namespaces"
    logger.info(f"devservers operator watching {where} on {kube.server} (context {kube.context})")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    owned: OwnedWatches | None = memo.get("owned")
    if owned is not None:
        await owned.stop()  # first: they would wake the reconciler
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


def _is_defaults(name: str, **_: Any) -> bool:
    # The field selector already keeps every other ConfigMap away; this guards a server that ignores it.
    return name == DEFAULTS_CONFIGMAP


@kopf.index("", "v1", "configmaps", when=_is_defaults)
async def defaults_index(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, dict[str, Any]]:
    return {str(namespace): {"data": dict(body.get("data") or {})}}


# -- events → triggers -----------------------------------------------------------------------------------
#
# The DevServer events are handled in the handler's ``when`` filter, which then answers False, so kopf
# never runs the handler itself. kopf evaluates a filter once per event with the same arguments a handler
# gets, and a filtered-out handler skips its execution machinery (outcome and state bookkeeping, the
# handler's log lines): a seventh of the operator's CPU per watch event. The work is the same either way
# (record, trigger, return), never a request, so nothing is lost by doing it in the filter; kopf still
# holds the filters back until every index is filled, as it holds handlers.


def _devserver_in_filter(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    try:
        COUNTERS.event("DevServer", _reconciler(memo).devserver_changed(type, body))
    except Exception:  # a filter that raises makes kopf throttle the object's whole stream
        log.exception("A DevServer event was not handled")
    return False


@kopf.on.event(API_GROUP, API_VERSION, DEVSERVER_PLURAL, when=_devserver_in_filter)
async def devserver_event(**_: Any) -> None:
    """Never runs: its filter handles the event (see above)."""


@kopf.on.event(API_GROUP, API_VERSION, FLAVOR_PLURAL)
async def flavor_event(name: str, memo: kopf.Memo, **_: Any) -> None:
    _reconciler(memo).flavor_changed(name)
    COUNTERS.event("DevServerFlavor", "reconcile")


@kopf.on.event("", "v1", "configmaps", when=_is_defaults)
async def defaults_event(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    _reconciler(memo).namespace_defaults_changed(str(namespace))
    COUNTERS.event("ConfigMap", "reconcile")
