"""One ``render()`` for every output format, and the columns of each kind of object.

``-o table`` (the default) and ``-o wide`` print aligned columns as kubectl does; ``json`` and ``yaml``
print the object as the cluster stores it (a ``List`` for several, so ``jq .items`` works as with
kubectl); ``name`` prints ``devserver.devservers.io/NAME`` lines for scripts. A kind may replace the
table with prose (``describe``). Everything here takes SDK objects and returns a string: no I/O, no
cluster, so every format is tested without one.

DevServers render from their manifests (plain dicts in the CRD's spelling): a ``DevServer`` model is
dumped first (``Kind.plain``), and ``devctl list``'s fast path hands over the manifests the server sent
(``devservers_sdk.lightweight_read``) without importing pydantic. One set of column functions serves
both, so the two paths cannot print different tables.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from devservers_sdk import views
from devservers_sdk.contract import MODES
from devservers_sdk.durations import format_age, format_span

if TYPE_CHECKING:
    from devservers_sdk.client import DevServerDescription, EventSummary, PodSummary
    from devservers_sdk.models import DevServer, DevServerFlavor

Manifest = dict[str, Any]

FORMATS = ("table", "wide", "json", "yaml", "name")
NONE = "-"
_GAP = "   "


def _as_given(obj: Any) -> Any:
    return obj


@dataclass(frozen=True)
class Column:
    """A table column: its header and how to read a cell from an object."""

    header: str
    cell: Callable[[Any], str]
    wide_only: bool = False


@dataclass(frozen=True)
class Kind:
    """How one kind of object renders: its kubectl resource name, manifest, columns (or prose)."""

    resource: str
    name: Callable[[Any], str]
    manifest: Callable[[Any], dict[str, Any]]
    columns: tuple[Column, ...] = ()
    namespace: Callable[[Any], str] = field(default=lambda obj: NONE)
    text: Callable[[Any], str] | None = None
    plain: Callable[[Any], Any] = _as_given
    """What the other functions read, made once per object (a DevServer model becomes its manifest)."""


def render(objects: Sequence[Any], output: str, kind: Kind, *, single: bool = False,
           namespaces: bool = False) -> str:
    """Format objects for the terminal or a script.

    Args:
        objects: the objects to show.
        output: one of ``FORMATS``.
        kind: how this kind of object renders.
        single: the command is about one object: json and yaml show it bare instead of in a ``List``.
        namespaces: add a NAMESPACE column (``list -A``).

    Returns:
        The text to print, without a trailing newline ("" for an empty table: the caller says so).
    """
    objects = [kind.plain(obj) for obj in objects]
    if output == "json":
        import json

        return json.dumps(_document(objects, kind, single), indent=2, ensure_ascii=False)
    if output == "yaml":
        import yaml

        return yaml.safe_dump(_document(objects, kind, single), sort_keys=False, allow_unicode=True,
                              width=10_000).rstrip("\n")
    if output == "name":
        return "\n".join(f"{kind.resource}/{kind.name(obj)}" for obj in objects)
    if output not in ("table", "wide"):
        raise ValueError(f"unknown output format {output!r}; expected one of {', '.join(FORMATS)}")
    if kind.text is not None:
        return "\n\n".join(kind.text(obj) for obj in objects)
    columns = [c for c in kind.columns if output == "wide" or not c.wide_only]
    if namespaces:
        columns.insert(0, Column("NAMESPACE", kind.namespace))
    return table([c.header for c in columns], [[c.cell(obj) for c in columns] for obj in objects])


def _document(objects: Sequence[Any], kind: Kind, single: bool) -> dict[str, Any]:
    if single and len(objects) == 1:
        return kind.manifest(objects[0])
    return {"apiVersion": "v1", "kind": "List", "items": [kind.manifest(obj) for obj in objects]}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str = "") -> str:
    """Left-aligned columns separated by three spaces; no trailing blanks. Empty without rows."""
    if not rows:
        return ""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append(indent + _GAP.join(cells).rstrip())
    return "\n".join(lines)


# -- times, as kubectl writes them -----------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(UTC)


def now() -> datetime:
    """The time to word deadlines against (``Lifetime.describe``)."""
    return _now()


def age(moment: datetime | None) -> str:
    """Time since ``moment``, or ``-``."""
    return format_age(_now() - moment) if moment else NONE


def time_left(moment: datetime | None) -> str:
    """Time until ``moment``; ``expired`` once it has passed; ``-`` when there is none."""
    if moment is None:
        return NONE
    left = moment - _now()
    return format_span(left) if left > timedelta(0) else "expired"


def timestamp(moment: datetime | None, *, relative: Callable[[datetime | None], str] | None = None) -> str:
    """``2026-05-09T07:35:25Z (3h ago)``-style: absolute UTC time, with a relative hint when asked."""
    if moment is None:
        return NONE
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{text} ({relative(moment)})" if relative else text


# -- DevServers ------------------------------------------------------------------------------------------

def devserver_manifest(server: DevServer | Manifest) -> Manifest:
    """The DevServer as the cluster stores it (apiVersion and kind first, as kubectl prints them).

    A manifest is returned as it is: it was read from the cluster (``devctl list``'s fast path).
    """
    if isinstance(server, dict):
        return server
    from devservers_sdk.contract import DEVSERVER_KIND, GROUP_VERSION

    body = server.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"apiVersion": GROUP_VERSION, "kind": DEVSERVER_KIND, **body}


def _section(manifest: Manifest, *keys: str) -> dict[str, Any]:
    for key in keys:
        manifest = manifest.get(key) or {}
    return manifest


def _moment(value: str | None) -> datetime | None:
    """A timestamp of a manifest (RFC 3339, as the server and the models' dump write them)."""
    return datetime.fromisoformat(value) if value else None


def expires_at(server: DevServer | Manifest) -> datetime | None:
    """When the DevServer will be deleted: the SDK's one view of it (``views.expires_at``)."""
    return views.expires_at(devserver_manifest(server))


def world_size(server: DevServer | Manifest) -> int:
    return views.world_size(devserver_manifest(server))


def ready(server: DevServer | Manifest) -> str:
    """``ready/wanted`` pods (``views.ready_text``)."""
    return views.ready_text(devserver_manifest(server))


def latest_condition(conditions: Sequence[Manifest]) -> Manifest | None:
    """The condition that explains the state best: the newest not-True one, else the newest."""
    if not conditions:
        return None
    epoch = datetime.min.replace(tzinfo=UTC)
    failing = [c for c in conditions if c.get("status") != "True"] or list(conditions)
    return max(failing, key=lambda c: _moment(c.get("lastTransitionTime")) or epoch)


def status_message(server: DevServer | Manifest) -> str:
    """One sentence on what the DevServer is doing: the operator's message, else its latest condition."""
    status = _section(devserver_manifest(server), "status")
    if status.get("message"):
        return str(status["message"])
    condition = latest_condition(status.get("conditions") or [])
    if condition is None:
        return ""
    return condition.get("message") or \
        f"{condition.get('type')}={condition.get('status')} ({condition.get('reason', '')})"


def gpu_use(server: DevServer | Manifest) -> str:
    """Utilisation of each GPU as last read (``status.gpus``): ``3%,5%``, ranks as ``0:3%,5% 1:...``."""
    readings = _section(devserver_manifest(server), "status").get("gpus") or []
    by_rank: dict[int, list[str]] = {}
    for reading in sorted(readings, key=lambda r: (r.get("rank", 0), r.get("index", 0))):
        by_rank.setdefault(int(reading.get("rank", 0)), []).append(f"{float(reading.get('utilization', 0)):.0f}%")
    if not by_rank:
        return NONE
    if len(by_rank) == 1 and 0 in by_rank:
        return ",".join(by_rank[0])
    return " ".join(f"{rank}:{','.join(values)}" for rank, values in sorted(by_rank.items()))


def cost_so_far(server: DevServer | Manifest) -> str:
    """What the server has cost until now (``status.cost``), e.g. ``1.23 USD``."""
    from devservers_sdk.cost import cost_at, format_money

    cost = _section(devserver_manifest(server), "status").get("cost")
    if not cost:
        return NONE
    amount, _ = cost_at(cost, _now())
    return format_money(amount, cost.get("currency"))


DEVSERVER = Kind(
    resource="devserver.devservers.io",
    plain=devserver_manifest,
    name=lambda m: m["metadata"]["name"],
    namespace=lambda m: m["metadata"].get("namespace") or NONE,
    manifest=_as_given,
    columns=(
        Column("NAME", lambda m: m["metadata"]["name"]),
        Column("OWNER", lambda m: m["spec"]["owner"]),
        Column("FLAVOR", lambda m: m["spec"]["flavor"]),
        Column("MODE", lambda m: m["spec"].get("mode", MODES[0])),
        Column("PHASE", lambda m: _section(m, "status").get("phase") or "Pending"),
        Column("READY", ready),
        Column("EXPIRES IN", lambda m: time_left(expires_at(m))),
        Column("AGE", lambda m: age(_moment(m["metadata"].get("creationTimestamp")))),
        Column("IMAGE", lambda m: m["spec"].get("image") or "(flavor default)", wide_only=True),
        Column("IDLE", lambda m: age(_moment(_section(m, "status").get("lastActivityTime"))), wide_only=True),
        Column("GPU USE", gpu_use, wide_only=True),
        Column("COST", cost_so_far, wide_only=True),
        Column("MESSAGE", status_message, wide_only=True),
    ),
)


# -- flavors ---------------------------------------------------------------------------------------------

def flavor_manifest(flavor: DevServerFlavor) -> dict[str, Any]:
    from devservers_sdk.contract import FLAVOR_KIND, GROUP_VERSION

    body = flavor.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"apiVersion": GROUP_VERSION, "kind": FLAVOR_KIND, **body}


def _seconds(value: int | None) -> str:
    """A configured number of seconds the way it is written in specs: ``4h``, ``1h30m``."""
    from devservers_sdk.durations import format_duration

    return format_duration(timedelta(seconds=value)) if value else NONE


FLAVOR = Kind(
    resource="devserverflavor.devservers.io",
    name=lambda f: f.name,
    manifest=flavor_manifest,
    columns=(
        Column("NAME", lambda f: f.name),
        Column("CPU", lambda f: f.cpu or NONE),
        Column("MEMORY", lambda f: f.memory or NONE),
        Column("GPUS", lambda f: str(f.gpus)),
        Column("CAPACITY", lambda f: f.capacity_type),
        Column("NODE SELECTOR", lambda f: ",".join(f"{k}={v}" for k, v in f.spec.node_selector.items()) or NONE),
        Column("MAX TTL", lambda f: f.spec.max_time_to_live or NONE, wide_only=True),
        Column("IDLE TIMEOUT", lambda f: _seconds(f.spec.default_idle_timeout), wide_only=True),
        Column("IMAGE", lambda f: f.spec.default_image or NONE, wide_only=True),
        Column("COST/HOUR", lambda f: f.spec.cost_per_hour or NONE),
        Column("DESCRIPTION", lambda f: f.spec.description or ""),
    ),
)


def _size(count: int) -> str:
    """Bytes for people: ``512B``, ``3.4KiB``, ``1.2GiB``."""
    amount = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f}{unit}" if unit == "B" else f"{amount:.1f}{unit}"
        amount /= 1024
    return f"{count}B"


def _layout(info: Any) -> str:
    return f"sharded x{info.world_size}" if info.layout == "sharded" else f"rank 0 of {info.world_size}"


def checkpoint_manifest(info: Any) -> Manifest:
    return {"step": info.step, "path": info.path, "time": info.saved_at.isoformat(), "size": info.size,
            "layout": info.layout, "worldSize": info.world_size}


CHECKPOINT = Kind(
    resource="checkpoint",
    name=lambda info: os.path.basename(info.path),
    manifest=checkpoint_manifest,
    columns=(
        Column("STEP", lambda info: str(info.step)),
        Column("SAVED", lambda info: info.saved_at.strftime("%Y-%m-%d %H:%M:%S")),
        Column("SIZE", lambda info: _size(info.size)),
        Column("RANKS", _layout),
        Column("PATH", lambda info: info.path),
    ),
)


# -- describe --------------------------------------------------------------------------------------------

def _fields(pairs: Sequence[tuple[str, str]], indent: str = "") -> str:
    width = max(len(label) for label, _ in pairs) + 2
    return "\n".join(f"{indent}{(label + ':').ljust(width)}{value}" for label, value in pairs)


def _mode(server: DevServer) -> str:
    distributed = server.spec.distributed
    resolved = server.status.nprocs_per_node
    if server.spec.mode != "distributed" or distributed is None:
        return "standalone (1 pod)" + (f", {resolved} processes for torchrun" if resolved and resolved > 1 else "")
    nprocs = distributed.nprocs_per_node
    shown = f"auto = {resolved}" if nprocs == "auto" and resolved else str(nprocs)
    procs = "process" if nprocs == 1 or (nprocs == "auto" and resolved == 1) else "processes"
    return (f"distributed: {distributed.world_size} ranks, {shown} {procs} per rank, "
            f"backend {distributed.backend}")


def _gpus(server: DevServer) -> str | None:
    """``describe``'s GPU section: one line per rank and GPU, with the time it was read."""
    readings = server.status.gpus or []
    if not readings:
        return None
    rows = [[str(r.rank), str(r.index), f"{r.utilization:.0f}%",
             NONE if r.memory_used_mib is None else f"{r.memory_used_mib:.0f} MiB",
             NONE if r.memory_total_mib is None else f"{r.memory_total_mib:.0f} MiB", f"{age(r.observed_at)} ago"]
            for r in readings]
    text = table(["RANK", "GPU", "UTILIZATION", "MEMORY USED", "MEMORY TOTAL", "SEEN"], rows, indent="  ")
    policy = server.spec.lifecycle.min_gpu_utilization
    if policy is not None:
        since = server.status.gpu_low_since
        text += (f"\n  Policy: stop when below {policy.percent}% for {policy.window}; "
                 + (f"below since {timestamp(since, relative=lambda m: f'{age(m)} ago')}" if since else "in use"))
    return text


def _cost(server: DevServer) -> str | None:
    from devservers_sdk.cost import cost_at, format_money

    cost = server.status.cost
    if cost is None:
        return None
    amount, pod_seconds = cost_at(cost, _now())
    running = (f", running {cost.running_pods} pod(s) since {timestamp(cost.since)}"
               if cost.running_pods and cost.since else ", not running (stopped time is free)")
    hours = pod_seconds / 3600
    return (f"{format_money(amount, cost.currency)} so far ({hours:.2f} pod-hours at {cost.per_hour}"
            f"{' ' + cost.currency if cost.currency else ''} per pod-hour{running})")


def _lifecycle(server: DevServer, max_time_to_live: str | None) -> list[tuple[str, str]]:
    lifecycle, status = server.spec.lifecycle, server.status
    idle = _seconds(lifecycle.idle_timeout) if lifecycle.idle_timeout else "the flavor's"
    deadline = views.expires_at(server, max_time_to_live=max_time_to_live)
    rows = [
        ("Expires at", timestamp(deadline, relative=lambda m: "passed" if time_left(m) == "expired"
                                 else f"in {time_left(m)}")),
        ("Time to live", lifecycle.time_to_live or NONE),
        ("Expiration time", timestamp(lifecycle.expiration_time)),
        ("Idle timeout", f"{idle}, auto shutdown {'on' if lifecycle.auto_shutdown else 'off'}"),
        ("Last activity", timestamp(status.last_activity_time, relative=lambda m: f"idle for {age(m)}"
                                    + (f", via {status.last_activity_source}" if status.last_activity_source else ""))),
    ]
    if status.stopped_reason or status.stopped_at:
        rows.append(("Stopped", f"{status.stopped_reason or 'yes'} at {timestamp(status.stopped_at)}"))
    return rows


def _tracking(description: DevServerDescription) -> list[tuple[str, str]]:
    """Where runs go, one line per tool; Secrets by name only."""
    rows = []
    mlflow, wandb = description.tracking.get("mlflow"), description.tracking.get("wandb")
    if mlflow:
        experiment = mlflow.get("experiment") or f"{description.devserver.name} (the DevServer's name)"
        secret = f", credentials from Secret {mlflow['credentialsSecret']}" if mlflow.get("credentialsSecret") else ""
        rows.append(("MLflow", f"{mlflow['trackingUri']} experiment {experiment}{secret}; from {mlflow['from']}"))
    if wandb:
        project = f"{wandb['entity']}/{wandb['project']}" if wandb.get("entity") else wandb["project"]
        rows.append(("W&B", f"project {project}, API key from Secret {wandb['apiKeySecret']}; from {wandb['from']}"))
    return rows


def _pod_row(pod: PodSummary) -> list[str]:
    return [pod.name, NONE if pod.rank is None else str(pod.rank), pod.phase, "yes" if pod.ready else "no",
            str(pod.restarts), pod.node or NONE, pod.ip or NONE, age(pod.started_at), pod.message or ""]


def _event_row(event: EventSummary) -> list[str]:
    count = f" (x{event.count})" if event.count > 1 else ""
    return [age(event.last_seen), event.type, event.reason, event.object, event.message + count]


def describe_text(description: DevServerDescription) -> str:
    """``devctl describe``: spec, status, lifecycle, conditions, pods and recent events."""
    from devservers_sdk.lifecycle import home_summary

    server = description.devserver
    spec, status = server.spec, server.status
    # Beside mode standalone the section is ignored (the FieldsIgnored condition says so): show nothing of it.
    nccl = spec.distributed.nccl_settings if spec.distributed and spec.mode == "distributed" else {}
    overview = [
        ("Name", server.name),
        ("Namespace", server.namespace or NONE),
        ("Owner", spec.owner),
        ("Flavor", spec.flavor),
        ("Image", spec.image or "(flavor default)"),
        ("Mode", _mode(server)),
        *([("NCCL settings", " ".join(f"{k}={v}" for k, v in sorted(nccl.items())))] if nccl else []),
        ("Home volume", home_summary(spec, status.home_size)),
        ("Shared volume", f"{spec.shared_volume_claim_name} at /shared" if spec.shared_volume_claim_name
         else "none"),
        ("Created", timestamp(server.metadata.creation_timestamp, relative=lambda m: f"{age(m)} ago")),
    ]
    generation = server.metadata.generation
    observed = status.observed_generation
    cost = _cost(server)
    state = [
        ("Phase", status.phase or "Pending (no status yet: is the devservers operator running?)"),
        ("Ready", ready(server)),
        ("Message", status.message or NONE),
        ("Observed", NONE if observed is None else f"generation {observed} of {generation}"),
        *([("Cost", cost)] if cost else []),
    ]
    lifecycle = _lifecycle(server, description.max_time_to_live)
    sections = [_fields(overview), "Status:\n" + _fields(state, "  "), "Lifecycle:\n" + _fields(lifecycle, "  ")]
    gpus = _gpus(server)
    if gpus:
        sections.append("GPUs:\n" + gpus)
    tracking = _tracking(description)
    sections.append("Tracking:\n" + (_fields(tracking, "  ") if tracking else "  <none>"))
    conditions = [[c.type, c.status, c.reason or NONE, age(c.last_transition_time), c.message]
                  for c in status.conditions]
    sections.append("Conditions:\n" + (table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], conditions,
                                             indent="  ") or "  <none>"))
    pods = table(["NAME", "RANK", "PHASE", "READY", "RESTARTS", "NODE", "IP", "AGE", "MESSAGE"],
                 [_pod_row(p) for p in description.pods], indent="  ")
    sections.append("Pods:\n" + (pods or "  <none>"))
    events = table(["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
                   [_event_row(e) for e in description.events], indent="  ")
    sections.append("Events:\n" + (events or "  <none>"))
    return "\n\n".join(sections)


def description_manifest(description: DevServerDescription) -> dict[str, Any]:
    """``describe -o json|yaml``: the DevServer, its pods and its recent events in one document."""
    from dataclasses import asdict

    def plain(obj: Any) -> dict[str, Any]:
        return {key: value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value
                for key, value in asdict(obj).items()}

    return {"devserver": devserver_manifest(description.devserver),
            "pods": [plain(p) for p in description.pods],
            "events": [plain(e) for e in description.events],
            "tracking": description.tracking}


DESCRIPTION = Kind(
    resource=DEVSERVER.resource,
    name=lambda d: d.devserver.name,
    manifest=description_manifest,
    text=describe_text,
)
