"""Fault injection: the flaky API server that operators and clients must survive.

Real control planes answer 500 during etcd leader changes, 429 under API priority and fairness with a
``Retry-After`` header, 409 when a write races another writer, cut watch streams when an apiserver
restarts behind a load balancer, and answer 410 Gone when a client resumes a watch from a compacted
revision. Each of these can be switched on for a share of requests, per test (``LocalCluster.faults``)
or from the command line (``serve --faults error=0.05,watch_cut=5``), and every injected fault is
counted so a test can tell a retry storm from a recovery.

Discovery, OpenAPI and health endpoints are never faulted: clients cache them, and a fault there tests
kubectl's discovery cache rather than our code.
"""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field, fields

from .errors import StatusError


@dataclass
class FaultSettings:
    """Shares are probabilities in [0, 1] applied to each resource request."""

    error: float = 0.0  # 500 InternalError
    throttle: float = 0.0  # 429 TooManyRequests with Retry-After
    conflict: float = 0.0  # 409 Conflict, on writes only (a read cannot conflict)
    latency: float = 0.0  # seconds added to every resource request
    watch_cut: float = 0.0  # end each watch stream after about this many seconds (0: never)
    compact_every: float = 0.0  # compact history this often (seconds), so resumed watches get 410
    retry_after: int = 1
    seed: int | None = None

    @classmethod
    def parse(cls, text: str) -> FaultSettings:
        """``error=0.05,throttle=0.02,conflict=0.01,latency=0.01,watch_cut=5,compact_every=10,seed=1``."""
        settings = cls()
        known = {f.name: f for f in fields(cls)}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep or key not in known:
                raise ValueError(f"unknown fault setting {item!r}; known: {', '.join(sorted(known))} (e.g. error=0.05)")
            try:
                number = float(value)
            except ValueError as exc:
                raise ValueError(f"fault setting {key} needs a number, got {value!r}") from exc
            if key in ("error", "throttle", "conflict") and not 0 <= number <= 1:
                raise ValueError(f"fault setting {key} is a share between 0 and 1, got {number}")
            if number < 0:
                raise ValueError(f"fault setting {key} must not be negative, got {number}")
            setattr(settings, key, int(number) if key in ("retry_after", "seed") else number)
        return settings


@dataclass
class FaultInjector:
    settings: FaultSettings = field(default_factory=FaultSettings)
    injected: collections.Counter[str] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.settings.seed)

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._random = random.Random(settings.seed)

    @property
    def active(self) -> bool:
        s = self.settings
        return any((s.error, s.throttle, s.conflict, s.latency, s.watch_cut, s.compact_every))

    def fault_for(self, verb: str, resource: str, name: str | None) -> StatusError | None:
        """The error to answer this request with, if the dice say so."""
        s = self.settings
        roll = self._random.random()
        if roll < s.error:
            self.injected["500"] += 1
            return StatusError(500, "InternalError", "Internal error occurred: injected fault: etcdserver: "
                                                     "leader changed")
        roll -= s.error
        if roll < s.throttle:
            self.injected["429"] += 1
            return StatusError(429, "TooManyRequests", "injected fault: the server has received too many "
                                                       "requests and has asked us to try again later",
                               details={"retryAfterSeconds": s.retry_after},
                               headers={"Retry-After": str(s.retry_after)})
        roll -= s.throttle
        if verb in ("create", "update", "patch", "delete") and roll < s.conflict:
            self.injected["409"] += 1
            return StatusError(409, "Conflict", f'Operation cannot be fulfilled on {resource} "{name or ""}": '
                                                "injected fault: the object has been modified; please apply your "
                                                "changes to the latest version and try again")
        return None

    def watch_lifetime(self) -> float | None:
        """How long the next watch stream may live before it is cut (jittered), or None."""
        if not self.settings.watch_cut:
            return None
        self.injected["watch_cut"] += 1
        return self.settings.watch_cut * (0.5 + self._random.random())
