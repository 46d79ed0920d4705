"""What a DevServer costs: the flavor's price per pod-hour, counted only while pods run, and the ledger.

Why this shape: a status that changed every minute would cost a write per server per minute. Running time is
kept as *stretches* instead: ``status.cost`` holds the total of the closed stretches and the start of the open
one, so it changes only when pods start or stop or the price changes (``account``), and anyone can compute the
figure of any moment (``cost_at``). It is in the status, so it survives operator restarts; a server stopped
while the operator was down is counted until the operator sees it stopped (at most the time it was down).

The **ledger** keeps the figures after a DevServer is deleted, for ``devctl cost``: one ConfigMap
``devservers-cost-ledger`` per namespace, labelled ``app.kubernetes.io/managed-by=devservers-operator``, with
one key per DevServer (its uid) holding a small JSON document (``LedgerEntry``). The operator writes it when a
stretch closes (a stop, a price change) and when the DevServer is deleted, never on a create: the open stretch
is in the status until then. A server deleted while no operator ran, and never stopped before, is therefore
missing from it (its status went with it). Its bounds:

* at most ``LEDGER_MAX_ENTRIES`` (300) DevServers per namespace; past that, the entries of deleted servers
  are dropped oldest deletion first (live servers are never dropped: their status has their figures anyway);
* entries of servers deleted more than ``LEDGER_RETENTION`` (90 days) ago are dropped;
* at most ``LEDGER_MAX_STRETCHES`` (20) closed stretches per server; older ones are folded into one
  (``--since`` then spreads a folded stretch's cost evenly over its time).

That keeps a ledger under about 300 x 2 KB = 600 KB, inside a ConfigMap's 1 MiB.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: `devctl list`'s columns read status.cost without pydantic
    from .models import CostStatus

__all__ = [
    "LEDGER_MAX_ENTRIES",
    "LEDGER_MAX_STRETCHES",
    "LEDGER_NAME",
    "LEDGER_RETENTION",
    "CostRow",
    "LedgerEntry",
    "Price",
    "Stretch",
    "account",
    "cost_at",
    "cost_report",
    "format_money",
    "parse_price",
    "prune_ledger",
]

LEDGER_NAME = "devservers-cost-ledger"
LEDGER_MAX_ENTRIES = 300
LEDGER_MAX_STRETCHES = 20
LEDGER_RETENTION = timedelta(days=90)
_HOUR = Decimal(3600)
_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class Price:
    """A price per pod-hour: an exact decimal and an optional currency code."""

    per_hour: Decimal
    currency: str | None = None


def parse_price(text: str | None) -> Price | None:
    """``"2.50"`` or ``"32.77 USD"`` (``DevServerFlavor.spec.costPerHour``) as a ``Price``; None for None.

    Raises:
        ValueError: not a decimal with an optional currency code.
    """
    if text is None:
        return None
    amount, _, currency = str(text).strip().partition(" ")
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise ValueError(f'"{text}" is not a price: write a decimal and an optional currency, e.g. "2.50 USD"') from None
    if not value.is_finite() or value < 0:
        raise ValueError(f'"{text}" is not a price: it must be a decimal of 0 or more, e.g. "2.50 USD"')
    return Price(value, currency.strip() or None)


def format_money(amount: Decimal, currency: str | None = None) -> str:
    """Two decimals (four under one unit, so a minute of a cheap flavor is not 0.00), then the currency."""
    places = Decimal("0.01") if abs(amount) >= 1 or amount == 0 else Decimal("0.0001")
    text = str(amount.quantize(places))
    return f"{text} {currency}" if currency else text


def _decimal(text: str | None) -> Decimal:
    try:
        return Decimal(text or "0")
    except InvalidOperation:
        return Decimal(0)


def _seconds(start: datetime, end: datetime) -> Decimal:
    return Decimal(max(0, round((end - start).total_seconds())))


def cost_at(cost: CostStatus | Mapping[str, Any] | None, now: datetime) -> tuple[Decimal, Decimal]:
    """``(amount, pod_seconds)`` of ``status.cost`` at ``now``: the closed stretches plus the open one so far.

    ``cost`` is the model or the status as the server sends it (camelCase), for renderers without pydantic.
    """
    if cost is None:
        return Decimal(0), Decimal(0)
    if isinstance(cost, Mapping):
        per_hour, accumulated = str(cost.get("perHour") or "0"), str(cost.get("accumulated") or "0")
        pod_seconds, running = Decimal(int(cost.get("podSeconds") or 0)), int(cost.get("runningPods") or 0)
        since = _parse(cost["since"]) if cost.get("since") else None
    else:
        per_hour, accumulated = cost.per_hour, cost.accumulated
        pod_seconds, running, since = Decimal(cost.pod_seconds), cost.running_pods, cost.since
    amount = _decimal(accumulated)
    if running > 0 and since is not None:
        seconds = _seconds(since, now) * running
        amount += _decimal(per_hour) * seconds / _HOUR
        pod_seconds += seconds
    return amount.quantize(_PLACES), pod_seconds


@dataclass(frozen=True)
class Stretch:
    """A closed stretch of running time: from, to, pods running, and what it cost."""

    start: datetime
    end: datetime
    pods: int
    amount: Decimal

    def to_json(self) -> list[Any]:
        return [_stamp(self.start), _stamp(self.end), self.pods, str(self.amount)]

    @classmethod
    def from_json(cls, value: Any) -> Stretch:
        start, end, pods, amount = value
        return cls(_parse(start), _parse(end), int(pods), Decimal(str(amount)))


def account(
    previous: CostStatus | None, *, price: Price | None, running_pods: int, now: datetime
) -> tuple[CostStatus | None, Stretch | None]:
    """The new ``status.cost`` after observing ``running_pods`` at ``now``, and the stretch it closed, if any.

    A stretch closes when the number of running pods or the price changes (a stop, a start, a flavor update)
    and a new one opens at ``now`` when pods run. Without a price and without history there is nothing to
    count (None).
    """
    from .models import CostStatus

    if previous is None and (price is None or running_pods == 0):
        return None, None
    per_hour = str(price.per_hour) if price is not None else (previous.per_hour if previous else "0")
    currency = price.currency if price is not None else (previous.currency if previous else None)
    running = running_pods if price is not None else 0
    if previous is not None and previous.running_pods == running and previous.per_hour == per_hour and (
        running == 0 or previous.since is not None
    ):
        if previous.currency == currency:
            return previous, None
        return previous.model_copy(update={"currency": currency}), None
    closed: Stretch | None = None
    accumulated = _decimal(previous.accumulated) if previous else Decimal(0)
    pod_seconds = previous.pod_seconds if previous else 0
    if previous is not None and previous.running_pods > 0 and previous.since is not None:
        seconds = _seconds(previous.since, now) * previous.running_pods
        amount = (_decimal(previous.per_hour) * seconds / _HOUR).quantize(_PLACES)
        accumulated += amount
        pod_seconds += int(seconds)
        closed = Stretch(previous.since, now, previous.running_pods, amount)
    status = CostStatus(
        per_hour=per_hour,
        currency=currency,
        accumulated=str(accumulated.quantize(_PLACES)),
        pod_seconds=pod_seconds,
        running_pods=running,
        since=now if running > 0 else None,
    )
    return status, closed


# -- the ledger ------------------------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


@dataclass(frozen=True)
class LedgerEntry:
    """One DevServer in the ledger: who, which flavor, its cost status, its closed stretches, and when it went."""

    uid: str
    name: str
    namespace: str
    owner: str
    flavor: str
    cost: CostStatus
    stretches: tuple[Stretch, ...] = ()
    updated: datetime | None = None
    deleted: datetime | None = None

    def with_stretch(self, stretch: Stretch | None) -> LedgerEntry:
        if stretch is None:
            return self
        stretches = (*self.stretches, stretch)
        if len(stretches) > LEDGER_MAX_STRETCHES:
            first, second, *rest = stretches
            folded = Stretch(first.start, second.end, max(first.pods, second.pods), first.amount + second.amount)
            stretches = (folded, *rest)
        return replace(self, stretches=stretches)

    def to_json(self) -> str:
        document: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "owner": self.owner,
            "flavor": self.flavor,
            "cost": self.cost.model_dump(mode="json", by_alias=True, exclude_none=True),
            "stretches": [stretch.to_json() for stretch in self.stretches],
        }
        if self.updated is not None:
            document["updated"] = _stamp(self.updated)
        if self.deleted is not None:
            document["deleted"] = _stamp(self.deleted)
        return json.dumps(document, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, uid: str, text: str) -> LedgerEntry | None:
        """The entry, or None when the text is not one (a hand edit): it is then ignored, never fatal."""
        from pydantic import ValidationError

        from .models import CostStatus

        try:
            document = json.loads(text)
            return cls(
                uid=uid,
                name=str(document["name"]),
                namespace=str(document.get("namespace", "")),
                owner=str(document.get("owner", "")),
                flavor=str(document.get("flavor", "")),
                cost=CostStatus.model_validate(document["cost"]),
                stretches=tuple(Stretch.from_json(item) for item in document.get("stretches") or []),
                updated=_parse(document["updated"]) if document.get("updated") else None,
                deleted=_parse(document["deleted"]) if document.get("deleted") else None,
            )
        except (ValueError, KeyError, TypeError, InvalidOperation, ValidationError):
            return None


def prune_ledger(entries: Mapping[str, LedgerEntry], *, now: datetime) -> dict[str, LedgerEntry]:
    """The entries within the bounds of the module docstring (oldest deleted ones go first)."""
    kept = {
        uid: entry
        for uid, entry in entries.items()
        if entry.deleted is None or now - entry.deleted <= LEDGER_RETENTION
    }
    deleted = sorted((entry.deleted, uid) for uid, entry in kept.items() if entry.deleted is not None)
    while len(kept) > LEDGER_MAX_ENTRIES and deleted:
        kept.pop(deleted.pop(0)[1])
    return kept


# -- the report ------------------------------------------------------------------------------------------


@dataclass
class CostRow:
    """One line of ``devctl cost``: an owner's servers of one flavor (and currency)."""

    owner: str
    flavor: str
    currency: str | None
    servers: set[str] = field(default_factory=set)
    deleted: int = 0
    pod_seconds: Decimal = Decimal(0)
    amount: Decimal = Decimal(0)

    @property
    def pod_hours(self) -> Decimal:
        return (self.pod_seconds / _HOUR).quantize(Decimal("0.01"))

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "flavor": self.flavor,
            "currency": self.currency,
            "servers": len(self.servers),
            "deletedServers": self.deleted,
            "podHours": str(self.pod_hours),
            "cost": str(self.amount.quantize(Decimal("0.0001"))),
        }


def _overlap(start: datetime, end: datetime, since: datetime | None) -> Decimal:
    """The share of ``[start, end]`` after ``since`` (1 without ``since``)."""
    if since is None or start >= since:
        return Decimal(1)
    if end <= since:
        return Decimal(0)
    total = (end - start).total_seconds()
    return Decimal(1) if total <= 0 else Decimal(str((end - since).total_seconds() / total))


def _entry_figures(entry: LedgerEntry, *, now: datetime, since: datetime | None) -> tuple[Decimal, Decimal]:
    """``(amount, pod_seconds)`` of one entry, only what ran after ``since`` when given."""
    end = entry.deleted or now
    if since is None:
        return cost_at(entry.cost, end)
    amount, pod_seconds = Decimal(0), Decimal(0)
    for stretch in entry.stretches:
        share = _overlap(stretch.start, stretch.end, since)
        amount += stretch.amount * share
        pod_seconds += _seconds(stretch.start, stretch.end) * stretch.pods * share
    cost = entry.cost
    if cost.running_pods > 0 and cost.since is not None:
        start = max(cost.since, since)
        if end > start:
            seconds = _seconds(start, end) * cost.running_pods
            amount += _decimal(cost.per_hour) * seconds / _HOUR
            pod_seconds += seconds
    return amount, pod_seconds


def cost_report(
    entries: Iterable[LedgerEntry], *, now: datetime, since: datetime | None = None, owner: str | None = None
) -> list[CostRow]:
    """Rows per owner, flavor and currency, sorted; live servers' entries should carry their current status."""
    rows: dict[tuple[str, str, str | None], CostRow] = {}
    for entry in entries:
        if owner is not None and entry.owner != owner:
            continue
        amount, pod_seconds = _entry_figures(entry, now=now, since=since)
        if since is not None and entry.deleted is not None and entry.deleted < since:
            continue
        key = (entry.owner, entry.flavor, entry.cost.currency)
        row = rows.setdefault(key, CostRow(entry.owner, entry.flavor, entry.cost.currency))
        row.servers.add(f"{entry.namespace}/{entry.uid}")
        row.deleted += 1 if entry.deleted is not None else 0
        row.amount += amount
        row.pod_seconds += pod_seconds
    return [rows[key] for key in sorted(rows, key=lambda k: (k[0], k[1], k[2] or ""))]
