"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for.

kubectl does not format objects itself: it sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``
and prints whatever columns the apiserver returns (hiding ``priority > 0`` columns unless ``-o wide``).
So the emulator must build the same tables the real server builds:

* built-in kinds use the hand-written printers of ``pkg/printers/internalversion`` (always generated with
  ``Wide: true``; kubectl drops the priority-1 cells itself);
* built-in kinds without a printer (Role, CustomResourceDefinition, ...) use the default convertor:
  ``Name`` and ``Created At`` (an RFC 3339 date);
* custom resources use the CRD's ``additionalPrinterColumns`` (evaluated with Kubernetes JSONPath),
  after ``Name``; a CRD without columns gets an ``Age`` column from ``.metadata.creationTimestamp``.

Ages follow apimachinery's ``duration.HumanDuration`` ("90s", "3m12s", "5h4m", "3d4h", "2y30d").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from devservers_sdk.localcluster.apiserver import jsonpath
from devservers_sdk.localcluster.apiserver.schema import go_float

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources "
    "may allow a client to request the generation of an appropriate name automatically. Name is primarily "
    "intended for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
CREATED_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this "
    "value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. "
    "Null for lists. "
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)

# API groups that kube-apiserver itself serves; kinds in any other group are custom resources.
BUILTIN_GROUPS = frozenset(
    {
        "", "apps", "batch", "autoscaling", "policy", "rbac.authorization.k8s.io", "storage.k8s.io",
        "coordination.k8s.io", "events.k8s.io", "networking.k8s.io", "discovery.k8s.io", "node.k8s.io",
        "scheduling.k8s.io", "certificates.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io",
        "admissionregistration.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
        "flowcontrol.apiserver.k8s.io", "resource.k8s.io", "internal.apiserver.k8s.io",
        "storagemigration.k8s.io",
    }
)  # fmt: skip


# --- time -----------------------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """apimachinery ``duration.HumanDuration``: about two significant units, "<invalid>" if in the future."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``metav1.Time`` or ``MicroTime``) as an aware datetime; None if unusable."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        return None
    text = value.upper().replace("Z", "+00:00")
    fraction = re.search(r"\.(\d+)", text)
    if fraction and len(fraction.group(1)) > 6:
        # Python keeps microseconds only; nanosecond timestamps are legal RFC 3339.
        text = text.replace(fraction.group(0), "." + fraction.group(1)[:6])
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _since(value: Any, now: datetime) -> str:
    moment = parse_time(value)
    if moment is None:
        return "<unknown>"
    return human_duration((now - moment).total_seconds())


def _created_at(obj: dict[str, Any]) -> str:
    moment = parse_time(_get(obj, "metadata", "creationTimestamp"))
    if moment is None:
        return "0001-01-01T00:00:00Z"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- small accessors --------------------------------------------------------------------------------------


def _get(obj: Any, *keys: str | int, default: Any = None) -> Any:
    for key in keys:
        if isinstance(key, int):
            if not isinstance(obj, list) or not -len(obj) <= key < len(obj):
                return default
            obj = obj[key]
        elif isinstance(obj, dict) and key in obj:
            obj = obj[key]
        else:
            return default
    return default if obj is None else obj


def _list(obj: Any, *keys: str) -> list[Any]:
    value = _get(obj, *keys)
    return value if isinstance(value, list) else []


def _dict(obj: Any, *keys: str) -> dict[str, Any]:
    value = _get(obj, *keys)
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _format_labels(labels: dict[str, Any]) -> str:
    # labels.FormatLabels: sorted k=v pairs, "<none>" when empty.
    if not labels:
        return "<none>"
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def _selector_string(selector: Any) -> str:
    """metav1.LabelSelectorAsSelector(...).String(); "" for an empty or missing selector."""
    if not isinstance(selector, dict):
        return ""
    requirements: list[tuple[str, str]] = []
    for key, value in _dict(selector, "matchLabels").items():
        requirements.append((key, f"{key}={value}"))
    for expression in _list(selector, "matchExpressions"):
        key = _get(expression, "key", default="")
        operator = _get(expression, "operator", default="")
        values = sorted(str(v) for v in _list(expression, "values"))
        if operator == "In":
            requirements.append((key, f"{key} in ({','.join(values)})"))
        elif operator == "NotIn":
            requirements.append((key, f"{key} notin ({','.join(values)})"))
        elif operator == "Exists":
            requirements.append((key, key))
        elif operator == "DoesNotExist":
            requirements.append((key, f"!{key}"))
    return ",".join(text for _, text in sorted(requirements, key=lambda item: item[0]))


def _format_selector(selector: Any) -> str:
    # metav1.FormatLabelSelector: like the selector string, but "<none>" when it selects everything.
    return _selector_string(selector) or "<none>"


def _containers(template_spec: dict[str, Any]) -> tuple[str, str]:
    containers = _list(template_spec, "containers")
    names = ",".join(str(_get(c, "name", default="")) for c in containers)
    images = ",".join(str(_get(c, "image", default="")) for c in containers)
    return names, images


def _access_modes(modes: list[Any]) -> str:
    short = {
        "ReadWriteOnce": "RWO",
        "ReadOnlyMany": "ROX",
        "ReadWriteMany": "RWX",
        "ReadWriteOncePod": "RWOP",
    }
    return ",".join(abbrev for mode, abbrev in short.items() if mode in modes)


# --- column definitions -------------------------------------------------------------------------------------


def column(
    name: str, type_: str = "string", *, fmt: str = "", description: str = "", priority: int = 0
) -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


NAME = column("Name", fmt="name", description=NAME_DESCRIPTION)
AGE = column("Age", description=CREATED_DESCRIPTION)


def _wide(name: str, description: str = "") -> dict[str, Any]:
    return column(name, description=description, priority=1)


_CONTAINERS = _wide("Containers", "Names of each container in the template.")
_IMAGES = _wide("Images", "Images referenced by each container in the template.")

_Printer = Callable[[dict[str, Any], datetime], list[Any]]


# --- printers for built-in kinds ----------------------------------------------------------------------------


def _is_restartable_init(container: dict[str, Any] | None) -> bool:
    # Sidecar containers: init containers with restartPolicy Always.
    return bool(container) and _get(container, "restartPolicy") == "Always"


def _pod_row(pod: dict[str, Any], now: datetime) -> tuple[list[Any], list[dict[str, Any]]]:
    spec, status = _dict(pod, "spec"), _dict(pod, "status")
    phase = _get(status, "phase", default="")
    reason = _get(status, "reason") or phase
    conditions = _list(status, "conditions")
    for condition in conditions:
        if _get(condition, "type") == "PodScheduled" and _get(condition, "reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {_get(c, "name"): c for c in _list(spec, "initContainers")}
    total = len(_list(spec, "containers")) + sum(1 for c in init_specs.values() if _is_restartable_init(c))
    ready = restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    def later(current: datetime | None, state: Any) -> datetime | None:
        finished = parse_time(_get(state, "terminated", "finishedAt"))
        if finished is not None and (current is None or finished > current):
            return finished
        return current

    initializing = False
    init_statuses = _list(status, "initContainerStatuses")
    for index, container in enumerate(init_statuses):
        count = _int(_get(container, "restartCount"))
        restarts += count
        last_restart = later(last_restart, _get(container, "lastState"))
        sidecar = _is_restartable_init(init_specs.get(_get(container, "name")))
        if sidecar:
            sidecar_restarts += count
            last_sidecar_restart = later(last_sidecar_restart, _get(container, "lastState"))
        terminated = _get(container, "state", "terminated")
        waiting = _get(container, "state", "waiting")
        if terminated is not None and _int(_get(terminated, "exitCode")) == 0:
            continue
        if sidecar and _get(container, "started") is True:
            if _get(container, "ready") is True:
                ready += 1
            continue
        if terminated is not None:
            if _get(terminated, "reason"):
                reason = "Init:" + _get(terminated, "reason")
            elif _int(_get(terminated, "signal")):
                reason = f"Init:Signal:{_int(_get(terminated, 'signal'))}"
            else:
                reason = f"Init:ExitCode:{_int(_get(terminated, 'exitCode'))}"
        elif waiting is not None and _get(waiting, "reason") and _get(waiting, "reason") != "PodInitializing":
            reason = "Init:" + _get(waiting, "reason")
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    initialized = any(_get(c, "type") == "Initialized" and _get(c, "status") == "True" for c in conditions)
    if not initializing or initialized:
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for container in reversed(_list(status, "containerStatuses")):
            restarts += _int(_get(container, "restartCount"))
            last_restart = later(last_restart, _get(container, "lastState"))
            waiting = _get(container, "state", "waiting")
            terminated = _get(container, "state", "terminated")
            if waiting is not None and _get(waiting, "reason"):
                reason = _get(waiting, "reason")
            elif terminated is not None and _get(terminated, "reason"):
                reason = _get(terminated, "reason")
            elif terminated is not None:
                signal = _int(_get(terminated, "signal"))
                reason = f"Signal:{signal}" if signal else f"ExitCode:{_int(_get(terminated, 'exitCode'))}"
            elif _get(container, "ready") is True and _get(container, "state", "running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(_get(c, "type") == "Ready" and _get(c, "status") == "True" for c in conditions)
            reason = "Running" if pod_ready else "NotReady"

    if _get(pod, "metadata", "deletionTimestamp") is not None:
        if _get(status, "reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"

    pod_ips = _list(status, "podIPs")
    pod_ip = _get(pod_ips, 0, "ip") or _get(status, "podIP") or "<none>"
    gates = _list(spec, "readinessGates")
    readiness = "<none>"
    if gates:
        by_type = {_get(c, "type"): _get(c, "status") for c in reversed(conditions)}
        passed = sum(1 for gate in gates if by_type.get(_get(gate, "conditionType")) == "True")
        readiness = f"{passed}/{len(gates)}"
    cells = [
        _get(pod, "metadata", "name", default=""),
        f"{ready}/{total}",
        reason,
        restarts_text,
        _since(_get(pod, "metadata", "creationTimestamp"), now),
        pod_ip,
        _get(spec, "nodeName") or "<none>",
        _get(status, "nominatedNodeName") or "<none>",
        readiness,
    ]
    row_conditions: list[dict[str, Any]] = []
    if phase == "Succeeded":
        row_conditions = [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Succeeded",
                "message": "The pod has completed successfully.",
            }
        ]
    elif phase == "Failed":
        row_conditions = [
            {"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}
        ]
    return cells, row_conditions


def _name(obj: dict[str, Any]) -> str:
    return str(_get(obj, "metadata", "name", default=""))


def _age(obj: dict[str, Any], now: datetime) -> str:
    return _since(_get(obj, "metadata", "creationTimestamp"), now)


def _print_statefulset(obj: dict[str, Any], now: datetime) -> list[Any]:
    desired = _int(_get(obj, "spec", "replicas", default=1))
    names, images = _containers(_dict(obj, "spec", "template", "spec"))
    return [
        _name(obj),
        f"{_int(_get(obj, 'status', 'readyReplicas'))}/{desired}",
        _age(obj, now),
        names,
        images,
    ]


def _print_deployment(obj: dict[str, Any], now: datetime) -> list[Any]:
    desired = _int(_get(obj, "spec", "replicas", default=1))
    status = _dict(obj, "status")
    names, images = _containers(_dict(obj, "spec", "template", "spec"))
    return [
        _name(obj),
        f"{_int(_get(status, 'readyReplicas'))}/{desired}",
        _int(_get(status, "updatedReplicas")),
        _int(_get(status, "availableReplicas")),
        _age(obj, now),
        names,
        images,
        _selector_string(_get(obj, "spec", "selector")),
    ]


def _print_replicaset(obj: dict[str, Any], now: datetime) -> list[Any]:
    status = _dict(obj, "status")
    names, images = _containers(_dict(obj, "spec", "template", "spec"))
    return [
        _name(obj),
        _int(_get(obj, "spec", "replicas", default=1)),
        _int(_get(status, "replicas")),
        _int(_get(status, "readyReplicas")),
        _age(obj, now),
        names,
        images,
        _format_selector(_get(obj, "spec", "selector")),
    ]


def _service_external_ip(spec: dict[str, Any], status: dict[str, Any]) -> str:
    kind = _get(spec, "type", default="ClusterIP")
    external = [str(ip) for ip in _list(spec, "externalIPs")]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        ingress = sorted(
            {
                str(_get(i, "ip") or _get(i, "hostname"))
                for i in _list(status, "loadBalancer", "ingress")
                if _get(i, "ip") or _get(i, "hostname")
            }
        )
        if external:
            return ",".join(ingress + external)
        return ",".join(ingress) if ingress else "<pending>"
    if kind == "ExternalName":
        return str(_get(spec, "externalName", default=""))
    return "<unknown>"


def _print_service(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj, "spec")
    cluster_ip = _get(spec, "clusterIPs", 0) or _get(spec, "clusterIP") or "<none>"
    ports = []
    for port in _list(spec, "ports"):
        protocol = _get(port, "protocol", default="TCP")
        node_port = _int(_get(port, "nodePort"))
        number = _int(_get(port, "port"))
        ports.append(f"{number}:{node_port}/{protocol}" if node_port > 0 else f"{number}/{protocol}")
    return [
        _name(obj),
        _get(spec, "type", default="ClusterIP"),
        cluster_ip,
        _service_external_ip(spec, _dict(obj, "status")),
        ",".join(ports) or "<none>",
        _age(obj, now),
        _format_labels(_dict(spec, "selector")),
    ]


def _print_endpoints(obj: dict[str, Any], now: datetime) -> list[Any]:
    subsets = _list(obj, "subsets")
    if not subsets:
        return [_name(obj), "<none>", _age(obj, now)]
    shown: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [str(_get(a, "ip", default="")) for a in _list(subset, "addresses")]
        ports = _list(subset, "ports") or [None]
        for port in ports:
            count += len(addresses)
            for ip in addresses:
                if len(shown) < 3:
                    shown.append(
                        ip
                        if port is None
                        else (f"[{ip}]" if ":" in ip else ip) + f":{_int(_get(port, 'port'))}"
                    )
    text = ",".join(shown)
    if count > 3:
        text = f"{text} + {count - 3} more..."
    return [_name(obj), text, _age(obj, now)]


def _print_namespace(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), _get(obj, "status", "phase", default=""), _age(obj, now)]


def _print_configmap(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), len(_dict(obj, "data")) + len(_dict(obj, "binaryData")), _age(obj, now)]


def _print_secret(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), _get(obj, "type", default="Opaque"), len(_dict(obj, "data")), _age(obj, now)]


def _print_serviceaccount(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), len(_list(obj, "secrets")), _age(obj, now)]


def _print_pvc(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = _dict(obj, "spec"), _dict(obj, "status")
    phase = (
        "Terminating"
        if _get(obj, "metadata", "deletionTimestamp") is not None
        else _get(status, "phase", default="")
    )
    volume = _get(spec, "volumeName", default="")
    capacity = access = ""
    if volume:
        capacity = str(_get(status, "capacity", "storage", default=""))
        access = _access_modes(_list(status, "accessModes"))
    storage_class = (
        _get(obj, "metadata", "annotations", "volume.beta.kubernetes.io/storage-class")
        or _get(spec, "storageClassName")
        or ""
    )
    return [
        _name(obj),
        phase,
        volume,
        capacity,
        access,
        storage_class,
        _get(spec, "volumeAttributesClassName") or "<unset>",
        _age(obj, now),
        _get(spec, "volumeMode") or "<unset>",
    ]


def _print_pv(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = _dict(obj, "spec"), _dict(obj, "status")
    claim = _dict(spec, "claimRef")
    claim_text = f"{_get(claim, 'namespace', default='')}/{_get(claim, 'name', default='')}" if claim else ""
    phase = (
        "Terminating"
        if _get(obj, "metadata", "deletionTimestamp") is not None
        else _get(status, "phase", default="")
    )
    storage_class = (
        _get(obj, "metadata", "annotations", "volume.beta.kubernetes.io/storage-class")
        or _get(spec, "storageClassName")
        or ""
    )
    return [
        _name(obj),
        str(_get(spec, "capacity", "storage", default="0")),
        _access_modes(_list(spec, "accessModes")),
        _get(spec, "persistentVolumeReclaimPolicy", default=""),
        phase,
        claim_text,
        storage_class,
        _get(spec, "volumeAttributesClassName") or "<unset>",
        _get(status, "reason", default=""),
        _age(obj, now),
        _get(spec, "volumeMode") or "<unset>",
    ]


def _print_node(obj: dict[str, Any], now: datetime) -> list[Any]:
    status = _dict(obj, "status")
    states: list[str] = []
    for condition in _list(status, "conditions"):
        if _get(condition, "type") == "Ready":
            states = ["Ready" if _get(condition, "status") == "True" else "NotReady"]
    if not states:
        states = ["Unknown"]
    if _get(obj, "spec", "unschedulable") is True:
        states.append("SchedulingDisabled")
    roles: set[str] = set()
    for key, value in _dict(obj, "metadata", "labels").items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/") :]:
            roles.add(key[len("node-role.kubernetes.io/") :])
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    addresses = _list(status, "addresses")

    def address(kind: str) -> str:
        return next((str(_get(a, "address")) for a in addresses if _get(a, "type") == kind), "<none>")

    info = _dict(status, "nodeInfo")
    return [
        _name(obj),
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",
        _age(obj, now),
        _get(info, "kubeletVersion", default=""),
        address("InternalIP"),
        address("ExternalIP"),
        _get(info, "osImage") or "<unknown>",
        _get(info, "kernelVersion") or "<unknown>",
        _get(info, "containerRuntimeVersion") or "<unknown>",
    ]


def _print_event(obj: dict[str, Any], now: datetime) -> list[Any]:
    # events.k8s.io/v1 stores the same Event under different field names.
    modern = "regarding" in obj or "note" in obj
    involved = _dict(obj, "regarding" if modern else "involvedObject")
    first_key, last_key, count_key, source_key = (
        ("deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedCount", "deprecatedSource")
        if modern
        else ("firstTimestamp", "lastTimestamp", "count", "source")
    )
    first = _since(_get(obj, first_key), now) if _get(obj, first_key) else _since(_get(obj, "eventTime"), now)
    last = _since(_get(obj, last_key), now) if _get(obj, last_key) else first
    count = _int(_get(obj, count_key))
    series = _get(obj, "series")
    if isinstance(series, dict):
        last = _since(_get(series, "lastObservedTime"), now)
        count = _int(_get(series, "count"))
    elif count == 0:
        count = 1
    kind = str(_get(involved, "kind", default="")).lower()
    target = f"{kind}/{_get(involved, 'name')}" if _get(involved, "name") else kind
    component = _get(obj, source_key, "component") or _get(obj, "reportingController") or ""
    instance = _get(obj, source_key, "host") or _get(obj, "reportingInstance") or ""
    source = f"{component}, {instance}" if instance else component
    return [
        last,
        _get(obj, "type", default=""),
        _get(obj, "reason", default=""),
        target,
        _get(involved, "fieldPath", default=""),
        source,
        str(_get(obj, "note" if modern else "message", default="")).strip(),
        first,
        count,
        _name(obj),
    ]


def _print_lease(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), _get(obj, "spec", "holderIdentity", default=""), _age(obj, now)]


def _print_controllerrevision(obj: dict[str, Any], now: datetime) -> list[Any]:
    controller = "<none>"
    for ref in _list(obj, "metadata", "ownerReferences"):
        if _get(ref, "controller") is True:
            group = str(_get(ref, "apiVersion", default="")).rpartition("/")[0]
            kind = str(_get(ref, "kind", default=""))
            qualified = f"{kind}.{group}" if group else kind
            controller = (
                f"{qualified.lower()}/{_get(ref, 'name', default='')}" if kind else str(_get(ref, "name"))
            )
            break
    return [_name(obj), controller, _int(_get(obj, "revision")), _age(obj, now)]


def _print_resourcequota(obj: dict[str, Any], now: datetime) -> list[Any]:
    hard, used = _dict(obj, "status", "hard"), _dict(obj, "status", "used")
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        entry = f"{resource}: {used.get(resource, '0')}/{hard[resource]}"
        (limits if resource.split(".")[0] == "limits" and "." in resource else requests).append(entry)
    return [_name(obj), ", ".join(requests), ", ".join(limits), _age(obj, now)]


def _print_pdb(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj, "spec")
    min_available = _get(spec, "minAvailable")
    max_unavailable = _get(spec, "maxUnavailable")
    return [
        _name(obj),
        "N/A" if min_available is None else str(min_available),
        "N/A" if max_unavailable is None else str(max_unavailable),
        _int(_get(obj, "status", "disruptionsAllowed")),
        _age(obj, now),
    ]


def _print_priorityclass(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [
        _name(obj),
        _int(_get(obj, "value")),
        _get(obj, "globalDefault") is True,
        _age(obj, now),
        _get(obj, "preemptionPolicy", default=""),
    ]


def _print_storageclass(obj: dict[str, Any], now: datetime) -> list[Any]:
    annotations = _dict(obj, "metadata", "annotations")
    default = any(
        annotations.get(key) == "true"
        for key in (
            "storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class",
        )
    )
    return [
        _name(obj) + (" (default)" if default else ""),
        _get(obj, "provisioner", default=""),
        _get(obj, "reclaimPolicy", default="Delete"),
        _get(obj, "volumeBindingMode", default="Immediate"),
        _get(obj, "allowVolumeExpansion") is True,
        _age(obj, now),
    ]


def _subjects(obj: dict[str, Any]) -> tuple[str, str, str]:
    users, groups, accounts = [], [], []
    for subject in _list(obj, "subjects"):
        kind, name = _get(subject, "kind"), str(_get(subject, "name", default=""))
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            accounts.append(f"{_get(subject, 'namespace', default='')}/{name}")
    return ", ".join(users), ", ".join(groups), ", ".join(accounts)


def _print_binding(obj: dict[str, Any], now: datetime) -> list[Any]:
    role = f"{_get(obj, 'roleRef', 'kind', default='')}/{_get(obj, 'roleRef', 'name', default='')}"
    return [_name(obj), role, _age(obj, now), *_subjects(obj)]


def _print_webhooks(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), len(_list(obj, "webhooks")), _age(obj, now)]


def _print_vap(obj: dict[str, Any], now: datetime) -> list[Any]:
    param_kind = _dict(obj, "spec", "paramKind")
    param = (
        f"{_get(param_kind, 'apiVersion', default='')}/{_get(param_kind, 'kind', default='')}"
        if param_kind
        else "<unset>"
    )
    return [_name(obj), len(_list(obj, "spec", "validations")), param, _age(obj, now)]


def _print_vapb(obj: dict[str, Any], now: datetime) -> list[Any]:
    ref = _dict(obj, "spec", "paramRef")
    param = "<unset>"
    if ref.get("name"):
        param = f"{ref.get('namespace') or '*'}/{ref['name']}"
    elif isinstance(ref.get("selector"), dict):
        param = _selector_string(ref["selector"])
    return [_name(obj), _get(obj, "spec", "policyName", default=""), param, _age(obj, now)]


_POD_COLUMNS = [
    NAME,
    column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    column("Status", description="The aggregate status of the containers in this pod."),
    column(
        "Restarts",
        description="Restarts of the pod's containers and how long ago the last one restarted.",
    ),
    AGE,
    _wide("IP", "IP address allocated to the pod."),
    _wide("Node", "The node the pod is scheduled onto."),
    _wide("Nominated Node", "The node the scheduler has nominated for the pod."),
    _wide("Readiness Gates", "Readiness gates that hold or pass for the pod."),
]

_BINDING_COLUMNS = [
    NAME,
    column("Role", description="The role the binding refers to."),
    AGE,
    _wide("Users", "Users in the binding"),
    _wide("Groups", "Groups in the binding"),
    _wide("ServiceAccounts", "ServiceAccounts in the binding"),
]
_WEBHOOK_COLUMNS = [
    NAME,
    column(
        "Webhooks",
        "integer",
        description="Webhooks indicates the number of webhooks registered in this configuration",
    ),
    AGE,
]

# (group, kind) -> (column definitions, row printer). Pods are special-cased for row conditions.
PRINTERS: dict[tuple[str, str], tuple[list[dict[str, Any]], _Printer]] = {
    ("apps", "StatefulSet"): (
        [NAME, column("Ready", description="Number of the pod with ready state"), AGE, _CONTAINERS, _IMAGES],
        _print_statefulset,
    ),
    ("apps", "Deployment"): (
        [
            NAME,
            column("Ready", description="Number of the pod with ready state"),
            column(
                "Up-to-date",
                description="Pods that run the desired template.",
            ),
            column(
                "Available",
                description="Pods ready for at least minReadySeconds.",
            ),
            AGE,
            _CONTAINERS,
            _IMAGES,
            _wide("Selector", "Label selector for pods."),
        ],
        _print_deployment,
    ),
    ("apps", "ReplicaSet"): (
        [
            NAME,
            column("Desired", "integer", description="Replicas is the number of desired pods."),
            column(
                "Current", "integer", description="Replicas is the most recently observed number of replicas."
            ),
            column("Ready", "integer", description="The number of ready replicas for this replica set."),
            AGE,
            _CONTAINERS,
            _IMAGES,
            _wide("Selector", "Label selector for pods."),
        ],
        _print_replicaset,
    ),
    ("apps", "ControllerRevision"): (
        [
            NAME,
            column("Controller", description="Controller of the object"),
            column(
                "Revision", description="Revision indicates the revision of the state represented by Data."
            ),
            AGE,
        ],
        _print_controllerrevision,
    ),
    ("", "Service"): (
        [
            NAME,
            column("Type", description="Type determines how the Service is exposed."),
            column("Cluster-IP", description="The IP address of the service."),
            column(
                "External-IP",
                description="External addresses of the service.",
            ),
            column("Port(s)", description="The list of ports that are exposed by this service."),
            AGE,
            _wide(
                "Selector", "Route service traffic to pods with label keys and values matching this selector."
            ),
        ],
        _print_service,
    ),
    ("", "Endpoints"): (
        [NAME, column("Endpoints", description="The set of all endpoints."), AGE],
        _print_endpoints,
    ),
    ("", "Namespace"): (
        [NAME, column("Status", description="The status of the namespace"), AGE],
        _print_namespace,
    ),
    ("", "ConfigMap"): (
        [NAME, column("Data", description="Data contains the configuration data."), AGE],
        _print_configmap,
    ),
    ("", "Secret"): (
        [
            NAME,
            column("Type", description="Used to facilitate programmatic handling of secret data."),
            column("Data", description="Data contains the secret data."),
            AGE,
        ],
        _print_secret,
    ),
    ("", "ServiceAccount"): (
        [
            NAME,
            column(
                "Secrets",
                description="Secrets the service account lists.",
            ),
            AGE,
        ],
        _print_serviceaccount,
    ),
    ("", "PersistentVolumeClaim"): (
        [
            NAME,
            column("Status", description="Phase represents the current phase of PersistentVolumeClaim."),
            column("Volume", description="The binding reference to the PersistentVolume backing this claim."),
            column("Capacity", description="The actual resources of the underlying volume."),
            column("Access Modes", description="The actual access modes the volume backing the PVC has."),
            column("StorageClass", description="StorageClass of the pvc"),
            column("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
            AGE,
            _wide("VolumeMode", "Defines what type of volume is required by the claim."),
        ],
        _print_pvc,
    ),
    ("", "PersistentVolume"): (
        [
            NAME,
            column("Capacity", description="The actual capacity of the volume."),
            column("Access Modes", description="The ways the volume can be mounted."),
            column("Reclaim Policy", description="What happens to the volume when released from its claim."),
            column(
                "Status",
                description="Phase indicates if a volume is available, bound to a claim, or released.",
            ),
            column("Claim", description="The claim the volume is bound to."),
            column("StorageClass", description="StorageClass of the pv"),
            column("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
            column("Reason", description="A brief CamelCase string that describes any failure."),
            AGE,
            _wide(
                "VolumeMode",
                "Filesystem or Block.",
            ),
        ],
        _print_pv,
    ),
    ("", "Node"): (
        [
            NAME,
            column("Status", description="The status of the node"),
            column("Roles", description="The roles of the node"),
            AGE,
            column("Version", description="Kubelet Version reported by the node."),
            _wide("Internal-IP", "List of addresses reachable to the node."),
            _wide("External-IP", "List of addresses reachable to the node."),
            _wide("OS-Image", "OS Image reported by the node."),
            _wide("Kernel-Version", "Kernel Version reported by the node."),
            _wide("Container-Runtime", "ContainerRuntime Version reported by the node."),
        ],
        _print_node,
    ),
    ("", "ResourceQuota"): (
        [
            NAME,
            column(
                "Request",
                description="Request represents a minimum amount of cpu/memory that a container may consume.",
            ),
            column(
                "Limit",
                description="Limits of cpu/memory that a container may use.",
            ),
            AGE,
        ],
        _print_resourcequota,
    ),
    ("coordination.k8s.io", "Lease"): (
        [
            NAME,
            column(
                "Holder", description="holderIdentity contains the identity of the holder of a current lease."
            ),
            AGE,
        ],
        _print_lease,
    ),
    ("policy", "PodDisruptionBudget"): (
        [
            NAME,
            column("Min Available", description="The minimum number of pods that must be available."),
            column("Max Unavailable", description="The maximum number of pods that may be unavailable."),
            column(
                "Allowed Disruptions",
                "integer",
                description="Calculated number of pods that may be disrupted at this time.",
            ),
            AGE,
        ],
        _print_pdb,
    ),
    ("scheduling.k8s.io", "PriorityClass"): (
        [
            NAME,
            column("Value", "integer", description="The value of this priority class."),
            column(
                "Global-Default", "boolean", description="Whether this priority class is the cluster default."
            ),
            AGE,
            column("PreemptionPolicy", description="The policy for preempting pods with lower priority."),
        ],
        _print_priorityclass,
    ),
    ("storage.k8s.io", "StorageClass"): (
        [
            NAME,
            column("Provisioner", description="Provisioner indicates the type of the provisioner."),
            column("ReclaimPolicy", description="The reclaim policy of dynamically provisioned volumes."),
            column("VolumeBindingMode", description="When volumes should be provisioned and bound."),
            column("AllowVolumeExpansion", description="Whether the storage class allows volume expansion."),
            AGE,
        ],
        _print_storageclass,
    ),
    ("rbac.authorization.k8s.io", "RoleBinding"): (_BINDING_COLUMNS, _print_binding),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): (_BINDING_COLUMNS, _print_binding),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): (_WEBHOOK_COLUMNS, _print_webhooks),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): (_WEBHOOK_COLUMNS, _print_webhooks),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): (
        [
            NAME,
            column(
                "Validations",
                "integer",
                description="Number of validation rules in this policy",
            ),
            column(
                "ParamKind",
                description="ParamKind specifies the kind of resources used to parameterize this policy",
            ),
            AGE,
        ],
        _print_vap,
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): (
        [
            NAME,
            column(
                "PolicyName",
                description="PolicyName indicates the policy definition which the policy binding binded to",
            ),
            column(
                "ParamRef",
                description="ParamRef indicates the param resource which sets the configration param",
            ),
            AGE,
        ],
        _print_vapb,
    ),
}

_EVENT_COLUMNS = [
    column(
        "Last Seen", description="The time at which the most recent occurrence of this event was recorded."
    ),
    column("Type", description="Type of this event (Normal, Warning)."),
    column(
        "Reason", description="A short, machine understandable string that gives the reason for this event."
    ),
    column("Object", description="The object that this event is about."),
    _wide("Subobject", "The field of the involved object the event is about."),
    _wide("Source", "The component reporting this event."),
    column("Message", description="A human-readable description of the status of this operation."),
    _wide("First Seen", "The time at which the event was first recorded."),
    _wide("Count", "The number of times this event has occurred."),
    column("Name", fmt="name", description=NAME_DESCRIPTION, priority=1),
]
PRINTERS[("", "Event")] = (_EVENT_COLUMNS, _print_event)
PRINTERS[("events.k8s.io", "Event")] = (_EVENT_COLUMNS, _print_event)


# --- custom resources ---------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    # client-go jsonpath prints maps and lists as JSON and scalars with fmt.Sprint.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _custom_cell(column_type: str, value: Any, now: datetime) -> Any:
    if value is None:
        return None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if column_type == "string":
        return _text(value)
    if column_type == "integer":
        return int(value) if is_number else None
    if column_type == "number":
        return float(value) if is_number else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":
        if not isinstance(value, str):
            return None
        if value in ("", "null"):
            return "<unknown>"
        moment = parse_time(value)
        return "<invalid>" if moment is None else human_duration((now - moment).total_seconds())
    return None


def custom_columns(printer_columns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Column definitions for a CRD version; the ``Age`` default mirrors serveDefaultColumnsIfEmpty."""
    definitions = [NAME]
    for spec in printer_columns or [
        {
            "name": "Age",
            "type": "date",
            "jsonPath": ".metadata.creationTimestamp",
            "description": CREATED_DESCRIPTION,
        }
    ]:
        path = spec.get("jsonPath", "")
        definitions.append(
            column(
                spec.get("name", ""),
                spec.get("type", "string"),
                fmt=spec.get("format", ""),
                description=spec.get("description")
                or f"Custom resource definition column (in JSONPath format): {path}",
                priority=int(spec.get("priority", 0) or 0),
            )
        )
    return definitions


def _custom_row(obj: dict[str, Any], printer_columns: Sequence[dict[str, Any]], now: datetime) -> list[Any]:
    specs = printer_columns or [{"type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    cells: list[Any] = [_name(obj)]
    for spec in specs:
        try:
            found = jsonpath.evaluate(spec.get("jsonPath", ""), obj)
        except jsonpath.JSONPathError:
            found = []
        cells.append(_custom_cell(spec.get("type", "string"), found[0], now) if found else None)
    return cells


# --- assembling the Table -----------------------------------------------------------------------------------

_DEFAULT_COLUMNS = [NAME, column("Created At", "date", description=CREATED_DESCRIPTION)]


def _row_object(obj: dict[str, Any], include_object: str) -> Any:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table_for(
    objects: list[dict[str, Any]],
    *,
    kind: str,
    group: str,
    printer_columns: Sequence[dict[str, Any]] = (),
    include_object: str = "Metadata",
    list_meta: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The ``meta.k8s.io/v1`` Table the apiserver returns for ``objects`` (a list or a single get).

    ``include_object`` is the request's ``includeObject`` (None | Metadata | Object, default Metadata);
    ``list_meta`` carries resourceVersion/continue/remainingItemCount into the table's metadata.
    """
    now = now or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    cell_rows: list[tuple[dict[str, Any], list[Any], list[dict[str, Any]]]]
    if printer_columns or group not in BUILTIN_GROUPS:
        definitions = custom_columns(printer_columns)
        cell_rows = [(obj, _custom_row(obj, printer_columns, now), []) for obj in objects]
    elif (group, kind) == ("", "Pod"):
        definitions = _POD_COLUMNS
        cell_rows = [(obj, *_pod_row(obj, now)) for obj in objects]
    elif (group, kind) in PRINTERS:
        definitions, printer = PRINTERS[(group, kind)]
        cell_rows = [(obj, printer(obj, now), []) for obj in objects]
    else:
        definitions = _DEFAULT_COLUMNS
        cell_rows = [(obj, [_name(obj), _created_at(obj)], []) for obj in objects]
    for obj, cells, conditions in cell_rows:
        row: dict[str, Any] = {"cells": cells, "object": _row_object(obj, include_object)}
        if conditions:
            row["conditions"] = conditions
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(list_meta or {}),
        "columnDefinitions": [dict(d) for d in definitions],
        "rows": rows,
    }
