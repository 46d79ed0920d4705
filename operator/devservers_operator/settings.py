"""The operator's own settings, from ``DEVSERVERS_*`` environment variables with documented defaults.

Two groups: what the *objects* look like (image, home path, ports, identity...) is
``devservers_sdk.manifests.OperatorConfig.from_env``; how the *operator* behaves (which namespaces, how
early it warns, how it probes and paces its work) is here. Both read the same environment, so a Deployment
sets them side by side. Unset or empty variables keep the defaults.

=========================================  ===============================  ================================
variable                                   default                          meaning
=========================================  ===============================  ================================
``DEVSERVERS_NAMESPACES``                  (the whole cluster)              namespaces to watch, comma-
                                                                            separated; empty or ``*``: all
``DEVSERVERS_WARNING_LEAD``                ``15m``                          ExpiringSoon this long before
                                                                            expiry (a duration)
``DEVSERVERS_PROBE_INTERVAL``              ``1m``                           at most one in-pod idle probe
                                                                            per server this often
``DEVSERVERS_PROBE_WINDOW``                ``1``                            seconds of CPU sampling
``DEVSERVERS_PROBE_TIMEOUT``               ``20``                           seconds a probe may take
``DEVSERVERS_MAX_CONCURRENT_RECONCILES``   ``100``                          DevServers reconciled at once
``DEVSERVERS_RECONCILE_DEBOUNCE``          ``0.1``                          seconds a burst of events is
                                                                            gathered into one reconcile
``DEVSERVERS_LIVENESS``                    ``http://0.0.0.0:8080/healthz``  kopf's liveness endpoint;
                                                                            empty: none
``DEVSERVERS_IDLE_TIMEOUT_SCALE``          ``1``                            multiplies idle timeouts; tests
                                                                            and demos (0.05: 60 s is 3 s)
``DEVSERVERS_METRICS``                     (none)                           the counters in Prometheus
                                                                            text (``metrics``), e.g.
                                                                            ``http://0.0.0.0:8081/metrics``
=========================================  ===============================  ================================
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from devservers_sdk.durations import parse_duration
from devservers_sdk.lifecycle import DEFAULT_WARNING_LEAD
from devservers_sdk.manifests import OperatorConfig

__all__ = ["OperatorSettings"]

DEFAULT_LIVENESS = "http://0.0.0.0:8080/healthz"


def _number(
    environ: Mapping[str, str], key: str, default: float, *, minimum: float, strictly: bool = False
) -> float:
    raw = (environ.get(key) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a number") from None
    if value < minimum or (strictly and value == minimum):
        raise ValueError(f"{key}={raw!r} must be {'more than' if strictly else 'at least'} {minimum:g}")
    return value


def _endpoint(environ: Mapping[str, str], key: str) -> str | None:
    raw = (environ.get(key) or "").strip()
    if not raw:
        return None
    parts = urllib.parse.urlsplit(raw)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or port is None:
        raise ValueError(f"{key}={raw!r} must be an http URL with a port, e.g. http://0.0.0.0:8081/metrics")
    return raw


def _duration(environ: Mapping[str, str], key: str, default: timedelta) -> timedelta:
    raw = (environ.get(key) or "").strip()
    if not raw:
        return default
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise ValueError(f"{key}={raw!r}: {exc}") from None


@dataclass(frozen=True)
class OperatorSettings:
    """How the operator runs; see the module docstring for the variables and defaults.

    Attributes:
        namespaces: namespaces to watch; empty: the whole cluster.
        warning_lead: how long before expiry the ExpiringSoon warning comes.
        probe_interval: the shortest time between two in-pod probes of one server.
        probe_window: seconds over which the probe measures CPU use.
        probe_timeout: seconds one probe may take before it counts as failed.
        max_concurrent_reconciles: DevServers reconciled at once (API pressure vs. latency).
        debounce: seconds events for one DevServer are gathered before it is reconciled.
        liveness: kopf's liveness endpoint URL, or None.
        idle_timeout_scale: factor applied to idle timeouts (tests and demos).
        metrics: the URL the counters are served at, or None.
        objects: the settings of the objects built for each DevServer.
    """

    namespaces: tuple[str, ...] = ()
    warning_lead: timedelta = DEFAULT_WARNING_LEAD
    probe_interval: timedelta = timedelta(minutes=1)
    probe_window: float = 1.0
    probe_timeout: float = 20.0
    max_concurrent_reconciles: int = 100
    debounce: float = 0.1
    liveness: str | None = DEFAULT_LIVENESS
    idle_timeout_scale: float = 1.0
    metrics: str | None = None
    objects: OperatorConfig = field(default_factory=OperatorConfig)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Read the ``DEVSERVERS_*`` variables (default ``os.environ``).

        Raises:
            ValueError: a variable holds something unusable; the message names it.
        """
        environ = os.environ if environ is None else environ
        raw_namespaces = (environ.get("DEVSERVERS_NAMESPACES") or "").strip()
        namespaces = tuple(
            sorted(
                {part.strip() for part in raw_namespaces.split(",") if part.strip() and part.strip() != "*"}
            )
        )
        liveness = environ.get("DEVSERVERS_LIVENESS")
        return cls(
            namespaces=namespaces,
            warning_lead=_duration(environ, "DEVSERVERS_WARNING_LEAD", DEFAULT_WARNING_LEAD),
            probe_interval=_duration(environ, "DEVSERVERS_PROBE_INTERVAL", timedelta(minutes=1)),
            probe_window=_number(environ, "DEVSERVERS_PROBE_WINDOW", 1.0, minimum=0, strictly=True),
            probe_timeout=_number(environ, "DEVSERVERS_PROBE_TIMEOUT", 20.0, minimum=1),
            max_concurrent_reconciles=int(
                _number(environ, "DEVSERVERS_MAX_CONCURRENT_RECONCILES", 100, minimum=1)
            ),
            debounce=_number(environ, "DEVSERVERS_RECONCILE_DEBOUNCE", 0.1, minimum=0),
            liveness=DEFAULT_LIVENESS if liveness is None else (liveness.strip() or None),
            idle_timeout_scale=_number(
                environ, "DEVSERVERS_IDLE_TIMEOUT_SCALE", 1.0, minimum=0, strictly=True
            ),
            metrics=_endpoint(environ, "DEVSERVERS_METRICS"),
            objects=OperatorConfig.from_env(environ),
        )
