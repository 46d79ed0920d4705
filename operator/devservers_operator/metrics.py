"""What the operator costs, counted as it runs and served as Prometheus text at ``DEVSERVERS_METRICS``.

The cost of an operator at scale is a count before it is a time: watch events handled, reconciles run,
status writes and API requests made, each per DevServer. Counted here, in the process that pays for them,
they need no audit log and no request log to read, and ``bench/operator_scale.py`` scrapes them before and
after each measurement. Counters only (monotonic, reset by a restart), by label:

* ``devservers_operator_watch_events_total{kind, outcome}``: the watch events the operator received, from
  kopf (DevServers, flavors, ConfigMaps) or its own watches (pods, StatefulSets, Services):
  ``outcome="reconcile"`` when one triggered a reconcile, ``"progress"`` when a pod's start only
  progressed (a reconcile a moment later, shared with the events that follow), ``"joined"`` when such
  progress found that reconcile already due (it woke nothing), ``"echo"`` when it was recognised as the
  echo of the operator's own write and dropped, ``"ignored"`` when it could not concern any DevServer,
  ``"unchanged"`` when an event of an owned object changed nothing the operator reads (``ownedwatch.py``:
  counted, cached, and handed to nothing);
* ``devservers_operator_reconciles_total``;
* ``devservers_operator_status_writes_total``;
* ``devservers_operator_api_requests_total{verb, resource}``: every request of the reconciler (kopf's own
  list and watch requests, a handful per resource kind per process, are not in it).

The endpoint is off unless ``DEVSERVERS_METRICS`` names one (``http://0.0.0.0:8081/metrics``): several
operators share a host in tests, where a fixed default port would collide.
"""

from __future__ import annotations

import collections
import logging
import urllib.parse
from typing import Any

import aiohttp.web

from devservers_sdk.kube_async import AsyncKube

__all__ = ["COUNTERS", "CountedKube", "Counters", "MetricsServer"]

log = logging.getLogger(__name__)

_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class Counters:
    """The process's counters (one instance, ``COUNTERS``: kopf runs one operator per process)."""

    def __init__(self) -> None:
        self.watch_events: collections.Counter[tuple[str, str]] = collections.Counter()
        self.api_requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self.reconciles = 0
        self.status_writes = 0

    def event(self, kind: str, outcome: str) -> None:
        self.watch_events[(kind, outcome)] += 1

    def request(self, method: str, path: str, kind: str, *, named: bool) -> None:
        verb = _VERBS.get(method.upper(), method.lower())
        if verb == "get" and not named:
            verb = "list"
        resource = kind + ("/status" if path.rstrip("/").endswith("/status") else "")
        self.api_requests[(verb, resource)] += 1

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines = [
            "# HELP devservers_operator_watch_events_total Watch events received by the operator.",
            "# TYPE devservers_operator_watch_events_total counter",
            *(
                f'devservers_operator_watch_events_total{{kind="{kind}",outcome="{outcome}"}} {count}'
                for (kind, outcome), count in sorted(self.watch_events.items())
            ),
            "# HELP devservers_operator_reconciles_total Reconciles run.",
            "# TYPE devservers_operator_reconciles_total counter",
            f"devservers_operator_reconciles_total {self.reconciles}",
            "# HELP devservers_operator_status_writes_total DevServer status writes.",
            "# TYPE devservers_operator_status_writes_total counter",
            f"devservers_operator_status_writes_total {self.status_writes}",
            "# HELP devservers_operator_api_requests_total API requests of the reconciler.",
            "# TYPE devservers_operator_api_requests_total counter",
            *(
                f'devservers_operator_api_requests_total{{verb="{verb}",resource="{resource}"}} {count}'
                for (verb, resource), count in sorted(self.api_requests.items())
            ),
        ]
        return "\n".join(lines) + "\n"


COUNTERS = Counters()


class CountedKube(AsyncKube):
    """The SDK's client, each request counted in ``COUNTERS`` (exec sessions as ``create Pod/exec``)."""

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        COUNTERS.request(method, path, str(kwargs.get("kind", "")), named=kwargs.get("name") is not None)
        return await super().request(method, path, **kwargs)

    async def exec(self, namespace: str, pod: str, command: Any, **kwargs: Any) -> Any:
        COUNTERS.api_requests[("create", "Pod/exec")] += 1
        return await super().exec(namespace, pod, command, **kwargs)


class MetricsServer:
    """``GET <path>`` on ``host:port`` of the endpoint URL answers ``COUNTERS.render()``."""

    def __init__(self, endpoint: str) -> None:
        parts = urllib.parse.urlsplit(endpoint)  # checked by OperatorSettings.from_env
        self.host, self.port, self.path = parts.hostname or "0.0.0.0", int(parts.port or 0), parts.path or "/metrics"
        self._runner: aiohttp.web.AppRunner | None = None

    async def start(self) -> None:
        async def metrics(_: aiohttp.web.Request) -> aiohttp.web.Response:
            return aiohttp.web.Response(text=COUNTERS.render(), content_type="text/plain", charset="utf-8")

        app = aiohttp.web.Application()
        app.add_routes([aiohttp.web.get(self.path, metrics)])
        self._runner = aiohttp.web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await aiohttp.web.TCPSite(self._runner, self.host, self.port).start()
        log.info("metrics served at http://%s:%d%s", self.host, self.port, self.path)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
