"""The Kubernetes objects a DevServer becomes, as complete desired manifests built by pure functions.

Why complete objects: the peer project strategic-merge-patched a partial Deployment, and a merge can never
remove anything, so a GPU flavor changed to a CPU one kept ``nvidia.com/gpu`` and old tolerations stayed.
Every builder here returns the *whole* object the operator wants, with nothing empty-but-present, for the
operator to apply by replace or server-side apply (force, one field manager), so what is absent here is
absent on the server. The builders do no I/O and import neither kubernetes nor kopf: the operator reads,
calls a builder, applies the result, and derives status (``status.py``).

Per DevServer ``<name>`` in namespace ``<ns>`` (names fit, see ``contract.MAX_NAME_LENGTH``):

* StatefulSet ``<name>``: 1 pod, or ``worldSize`` pods in distributed mode, or 0 while stopped (the
  ``devservers.io/desired-state`` annotation); ``Parallel`` pod management, so ranks start together and a
  torchrun group does not wait for rank 0 to be Ready; home PVCs ``home-<name>-<rank>`` from a claim
  template kept when scaled to 0 (stop keeps homes) and deleted with the StatefulSet (delete removes them).
* headless Service ``<name>``: stable DNS ``<name>-<rank>.<name>.<ns>.svc.<cluster domain>``, published
  before readiness so rank 0's name exists for the torchrun rendezvous.

Immutable parts: a StatefulSet's ``selector``, ``serviceName``, ``podManagementPolicy`` and
``volumeClaimTemplates`` cannot be updated. The selector uses only values that never change (not the
owner); a change of the home size (``persistentHomeSize``, else the flavor's ``defaultHomeSize``, else the
operator's default: ``home_size_for``) changes the claim templates, and ``immutable_changes`` tells
the operator to delete the StatefulSet with ``propagationPolicy: Orphan`` (pods and home PVCs stay and
are adopted) and create it again.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .checkpoint_hook import POD_UID_ENV, hook_command, termination_grace
from .contract import (
    APP_LABEL,
    APP_LABEL_VALUE,
    CONTAINER_NAME,
    DEVSERVER_KIND,
    GROUP_VERSION,
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAME_LABEL,
    NCCL_KEY_PATTERN,
    OWNER_LABEL,
    RANK_LABEL,
    RESTARTED_AT_ANNOTATION,
    env_name_problem,
)
from .errors import InvalidSpecError
from .lifecycle import desired_stopped
from .models import (
    GPU_RESOURCE,
    NPROCS_AUTO,
    DevServer,
    DevServerFlavor,
    DevServerFlavorSpec,
    TrackingSpec,
)
from .quantities import format_bytes, parse_quantity
from .tracking_settings import effective_tracking, tracking_env
from .views import world_size

__all__ = [
    "CONTAINER_NAME",
    "DEFAULT_HOME_SIZE",
    "DEFAULT_IMAGE",
    "DEFAULT_SHM_SIZE",
    "HOME_VOLUME",
    "KEEP_ALIVE_COMMAND",
    "MANAGED_BY",
    "MASTER_PORT_NAME",
    "MAX_AUTO_NPROCS",
    "RESERVED_ENV",
    "SPOT_PLATFORMS",
    "DesiredObjects",
    "OperatorConfig",
    "SpotPlacement",
    "build_objects",
    "build_service",
    "build_statefulset",
    "capacity_placement",
    "desired_replicas",
    "distributed_env",
    "gpu_count",
    "home_size_for",
    "image_for",
    "immutable_changes",
    "labels_for",
    "master_addr",
    "nprocs_per_node",
    "owner_label_value",
    "owner_reference",
    "rank_count",
    "selector_for",
    "shm_size_for",
]

HOME_VOLUME = "home"
DEFAULT_HOME_SIZE = "10Gi"
"""The operator's default home volume (``DEVSERVERS_DEFAULT_HOME_SIZE``) when neither the DevServer nor its
flavor says."""
SHM_VOLUME = "dshm"
SHARED_VOLUME = "shared"
MASTER_PORT_NAME = "torch-master"

DEFAULT_IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
DEFAULT_SHM_SIZE = "2Gi"
"""``/dev/shm`` for a flavor without a memory size. PyTorch DataLoader workers pass batches through it;
Docker's 64Mi default makes them die with "bus error"."""

KEEP_ALIVE_COMMAND: tuple[str, ...] = (
    "/bin/sh",
    "-c",
    # `sleep & wait` rather than `sleep`: a shell runs its trap only between commands, so a foreground
    # sleep would hold SIGTERM for up to an hour and every stop would wait for the grace period.
    "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done",
)

# Requests without a limit are allowed for these; anything else (GPUs and other extended resources) must
# have a limit equal to its request, or the apiserver refuses the pod.
_OVERCOMMITTABLE = ("cpu", "memory", "ephemeral-storage")
_NCCL_KEY = re.compile(NCCL_KEY_PATTERN)

RESERVED_ENV = frozenset(
    {
        "PET_NNODES",
        "PET_NPROC_PER_NODE",
        "PET_NODE_RANK",
        "PET_MASTER_ADDR",
        "PET_MASTER_PORT",
        "MASTER_ADDR",
        "MASTER_PORT",
        "NNODES",
        "NODE_RANK",
        "NPROC_PER_NODE",
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "DEVSERVER_NAME",
        "DEVSERVER_OWNER",
        "DEVSERVER_MODE",
        "HOME",
    }
)
"""Names the operator sets (or deliberately leaves to torchrun): never taken from user settings."""


# -- spot capacity -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpotPlacement:
    """How one platform marks spot nodes: the label to select them by, and the taint spot pools commonly
    carry so that only pods that asked for spot land there (tolerated, never required)."""

    node_selector: Mapping[str, str]
    toleration: Mapping[str, str]


SPOT_PLATFORMS: Mapping[str, SpotPlacement] = {
    # EKS managed node groups label every node with its capacity type; teams taint their spot groups with
    # the same key so on-demand work stays off them.
    "eks": SpotPlacement(
        node_selector={"eks.amazonaws.com/capacityType": "SPOT"},
        toleration={"key": "eks.amazonaws.com/capacityType", "operator": "Equal", "value": "SPOT",
                    "effect": "NoSchedule"},
    ),
    # Karpenter labels the nodes it launches with the capacity type it bought, and provisions spot for a
    # pod that requires the label; NodePools that offer spot often taint it with the same key.
    "karpenter": SpotPlacement(
        node_selector={"karpenter.sh/capacity-type": "spot"},
        toleration={"key": "karpenter.sh/capacity-type", "operator": "Equal", "value": "spot",
                    "effect": "NoSchedule"},
    ),
}
"""Spot mappings by ``DEVSERVERS_SPOT_PLATFORM``. The interruption taints (``aws-node-termination-handler/
spot-itn``, ``karpenter.sh/disrupted``) are deliberately *not* tolerated: they are how a pod learns to move."""


def capacity_placement(
    flavor_spec: DevServerFlavorSpec, config: OperatorConfig
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The node selector and tolerations a flavor's capacity type adds to its pods (empty for on-demand).

    A flavor's own ``capacitySelector`` replaces the platform's label (and adds no toleration: the flavor's
    ``tolerations`` say what its nodes need).
    """
    if flavor_spec.capacity_selector is not None:
        return dict(flavor_spec.capacity_selector), []
    if flavor_spec.capacity_type != "spot":
        return {}, []
    placement = SPOT_PLATFORMS[config.spot_platform]
    return dict(placement.node_selector), [dict(placement.toleration)]


# -- configuration ---------------------------------------------------------------------------------------


_ENV_VARIABLES = {
    "default_image": "DEVSERVERS_DEFAULT_IMAGE",
    "home_path": "DEVSERVERS_HOME_PATH",
    "shared_path": "DEVSERVERS_SHARED_PATH",
    "master_port": "DEVSERVERS_MASTER_PORT",
    "shm_size": "DEVSERVERS_SHM_SIZE",
    "run_as_user": "DEVSERVERS_RUN_AS_USER",
    "run_as_group": "DEVSERVERS_RUN_AS_GROUP",
    "fs_group": "DEVSERVERS_FS_GROUP",
    "command": "DEVSERVERS_CONTAINER_COMMAND",
    "home_storage_class": "DEVSERVERS_HOME_STORAGE_CLASS",
    "default_home_size": "DEVSERVERS_DEFAULT_HOME_SIZE",
    "cluster_domain": "DEVSERVERS_CLUSTER_DOMAIN",
    "termination_grace_seconds": "DEVSERVERS_TERMINATION_GRACE_SECONDS",
    "spot_platform": "DEVSERVERS_SPOT_PLATFORM",
}
_INT_SETTINGS = ("master_port", "run_as_user", "run_as_group", "fs_group", "termination_grace_seconds")


@dataclass(frozen=True)
class OperatorConfig:
    """Cluster-wide settings of the objects the operator builds. ``from_env`` documents the variables.

    Attributes:
        default_image: image when neither the DevServer nor its flavor names one.
        home_path: where the home volume is mounted; ``HOME`` and the working directory.
        shared_path: where ``sharedVolumeClaimName`` is mounted.
        master_port: torchrun rendezvous port on rank 0 (``MASTER_PORT``), named in the Service.
        shm_size: size of ``/dev/shm``; None: half the flavor's memory, or ``DEFAULT_SHM_SIZE``.
        run_as_user, run_as_group, fs_group: the non-root identity of every pod.
        command: the container's keep-alive command (the image's entrypoint is not used: a dev server
            must stay up with nothing running).
        home_storage_class: storage class of home PVCs; None: the cluster default.
        default_home_size: the home volume of a DevServer that sets no ``persistentHomeSize`` and whose
            flavor sets no ``defaultHomeSize``; ``"0"`` or None: no persistent home by default.
        cluster_domain: the cluster's DNS domain, for ``MASTER_ADDR``.
        termination_grace_seconds: how long a stopping pod's processes get after SIGTERM (at least the
            DevServer's checkpoint hook timeout plus a margin, whichever is longer).
        spot_platform: which mapping of ``SPOT_PLATFORMS`` turns ``capacityType: spot`` into a node
            selector and a toleration: ``karpenter`` or ``eks`` (managed node groups).
    """

    default_image: str = DEFAULT_IMAGE
    home_path: str = "/home/dev"
    shared_path: str = "/shared"
    master_port: int = 29500
    shm_size: str | None = None
    run_as_user: int = 1000
    run_as_group: int = 1000
    fs_group: int = 1000
    command: tuple[str, ...] = KEEP_ALIVE_COMMAND
    home_storage_class: str | None = None
    default_home_size: str | None = DEFAULT_HOME_SIZE
    cluster_domain: str = "cluster.local"
    termination_grace_seconds: int = 30
    spot_platform: str = "karpenter"

    def __post_init__(self) -> None:
        for name in ("home_path", "shared_path"):
            path = getattr(self, name)
            if not path.startswith("/") or path.rstrip("/") in ("", "/dev/shm", "/dev", "/proc", "/sys"):
                raise ValueError(f"{name} {path!r} must be an absolute path outside /dev, /proc and /sys")
        if self.home_path.rstrip("/") == self.shared_path.rstrip("/"):
            raise ValueError(f"home_path and shared_path are both {self.home_path!r}; they must differ")
        if not 0 < self.master_port < 65536:
            raise ValueError(f"master_port {self.master_port} must be between 1 and 65535")
        if self.default_home_size is not None:
            try:
                negative = parse_quantity(self.default_home_size) < 0
            except ValueError as exc:
                raise ValueError(f"default_home_size {self.default_home_size!r}: {exc}") from None
            if negative:
                raise ValueError(f"default_home_size {self.default_home_size!r} must be a size such as 10Gi, "
                                 "or 0 for no persistent home")
        if self.shm_size is not None and parse_quantity(self.shm_size) <= 0:
            raise ValueError(f"shm_size {self.shm_size!r} must be a positive quantity, e.g. 8Gi")
        for name in ("run_as_user", "run_as_group", "fs_group"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a non-root id (> 0), got {getattr(self, name)}")
        if not self.command:
            raise ValueError("command is empty; the container needs a keep-alive command")
        if not self.default_image or any(c.isspace() for c in self.default_image):
            raise ValueError(
                f"default_image {self.default_image!r} must be an image reference without spaces"
            )
        if self.termination_grace_seconds < 0:
            raise ValueError("termination_grace_seconds must not be negative")
        if self.spot_platform not in SPOT_PLATFORMS:
            raise ValueError(f"spot_platform {self.spot_platform!r} is not one of "
                             f"{', '.join(sorted(SPOT_PLATFORMS))}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorConfig:
        """Read the settings from ``DEVSERVERS_*`` variables (default: ``os.environ``); unset or empty ones
        keep the defaults.

        ``DEVSERVERS_DEFAULT_IMAGE`` (``pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime``),
        ``DEVSERVERS_HOME_PATH`` (``/home/dev``), ``DEVSERVERS_SHARED_PATH`` (``/shared``),
        ``DEVSERVERS_MASTER_PORT`` (29500), ``DEVSERVERS_SHM_SIZE`` (half the flavor's memory, else 2Gi),
        ``DEVSERVERS_RUN_AS_USER``/``_RUN_AS_GROUP``/``_FS_GROUP`` (1000),
        ``DEVSERVERS_CONTAINER_COMMAND`` (a shell-quoted command; default the keep-alive loop),
        ``DEVSERVERS_HOME_STORAGE_CLASS`` (the cluster default), ``DEVSERVERS_DEFAULT_HOME_SIZE``
        (``10Gi``; ``0``: no persistent home unless asked for), ``DEVSERVERS_CLUSTER_DOMAIN``
        (``cluster.local``), ``DEVSERVERS_TERMINATION_GRACE_SECONDS`` (30), ``DEVSERVERS_SPOT_PLATFORM``
        (``karpenter``, or ``eks``).

        Raises:
            ValueError: a variable is set to something unusable; the message names it.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for attribute, key in _ENV_VARIABLES.items():
            raw = (environ.get(key) or "").strip()
            if not raw:
                continue
            if attribute in _INT_SETTINGS:
                try:
                    values[attribute] = int(raw)
                except ValueError:
                    raise ValueError(f"{key}={raw!r} is not a whole number") from None
            elif attribute == "command":
                try:
                    values[attribute] = tuple(shlex.split(raw))
                except ValueError as exc:
                    raise ValueError(f"{key}={raw!r} is not a shell-quoted command: {exc}") from None
            else:
                values[attribute] = raw
        try:
            return cls(**values)
        except ValueError as exc:
            names = ", ".join(_ENV_VARIABLES[name] for name in values)
            raise ValueError(f"invalid operator setting ({names}): {exc}") from exc


# -- identity --------------------------------------------------------------------------------------------


def labels_for(devserver: DevServer) -> dict[str, str]:
    """The labels of every object and pod of a DevServer (``devctl list`` and the SDK select on them)."""
    return {
        APP_LABEL: APP_LABEL_VALUE,
        INSTANCE_LABEL: devserver.name,
        MANAGED_BY_LABEL: MANAGED_BY,
        NAME_LABEL: devserver.name,
        OWNER_LABEL: owner_label_value(devserver.spec.owner),
    }


_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_OWNER_HASH_LENGTH = 10
_LOOKS_HASHED = re.compile(rf".*-[0-9a-f]{{{_OWNER_HASH_LENGTH}}}")


def owner_label_value(owner: str) -> str:
    """The ``devservers.io/owner`` label value for ``spec.owner``: one rule, so two owners never share one.

    An owner that is already a label value (at most 63 letters, digits, ``-``, ``_``, ``.``, alphanumeric at
    both ends) is the label as it is: ``alice`` labels ``alice``. Any other owner is sanitised (every run of
    other characters becomes ``-``, the ends trimmed to alphanumerics, cut to 52 characters) and gets ``-``
    and the first 10 hex digits of the SHA-256 of the owner: ``alice@example.com`` labels
    ``alice-example.com-<hash>``. So does an owner that already ends like that (``-`` and 10 hex digits),
    so that nobody can pick a user name that equals another owner's sanitised label.

    Example:
        >>> owner_label_value("alice")
        'alice'
        >>> owner_label_value("alice@example.com")
        'alice-example.com-ff8d9819fc'
    """
    if len(owner) <= 63 and _LABEL_VALUE.fullmatch(owner) and not _LOOKS_HASHED.fullmatch(owner):
        return owner
    digest = hashlib.sha256(owner.encode()).hexdigest()[:_OWNER_HASH_LENGTH]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", owner)
    readable = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", readable[:63 - _OWNER_HASH_LENGTH - 1])
    return f"{readable}-{digest}" if readable else digest


def selector_for(devserver: DevServer) -> dict[str, str]:
    """The StatefulSet's and Service's selector: only values fixed for the object's lifetime.

    A StatefulSet selector cannot be changed, so it must not hold the owner or anything else a spec
    update could change; ``app.kubernetes.io/name`` keeps it from matching another app's pods that
    happen to carry ``devservers.io/name``.
    """
    return {APP_LABEL: APP_LABEL_VALUE, NAME_LABEL: devserver.name}


def owner_reference(devserver: DevServer) -> dict[str, Any]:
    """The controller ownerReference that makes the DevServer's deletion cascade to the object.

    Raises:
        ValueError: the DevServer has no uid (it was not read from the API server).
    """
    uid = devserver.metadata.uid
    if not uid:
        raise ValueError(
            f"DevServer '{devserver.name}' has no metadata.uid; read it from the API server first"
        )
    return {
        "apiVersion": GROUP_VERSION,
        "kind": DEVSERVER_KIND,
        "name": devserver.name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _namespace(devserver: DevServer) -> str:
    if not devserver.namespace:
        raise ValueError(f"DevServer '{devserver.name}' has no namespace; its objects need one")
    return devserver.namespace


def _metadata(devserver: DevServer) -> dict[str, Any]:
    return {
        "name": devserver.name,
        "namespace": _namespace(devserver),
        "labels": labels_for(devserver),
        "ownerReferences": [owner_reference(devserver)],
    }


# -- the pieces of the pod -------------------------------------------------------------------------------


def _flavor_spec(flavor: DevServerFlavor | DevServerFlavorSpec) -> DevServerFlavorSpec:
    return flavor.spec if isinstance(flavor, DevServerFlavor) else flavor


def image_for(
    devserver: DevServer, flavor: DevServerFlavor | DevServerFlavorSpec, config: OperatorConfig
) -> str:
    """``spec.image``, else the flavor's ``defaultImage``, else the operator's default image."""
    return devserver.spec.image or _flavor_spec(flavor).default_image or config.default_image


def rank_count(devserver: DevServer) -> int:
    """How many pods the server has when running: ``worldSize`` in distributed mode, else 1 (``views``)."""
    return world_size(devserver)


def desired_replicas(devserver: DevServer) -> int:
    """The StatefulSet's replicas: 0 while the desired state is Stopped, else ``rank_count``."""
    return 0 if desired_stopped(devserver) else rank_count(devserver)


def shm_size_for(flavor: DevServerFlavor | DevServerFlavorSpec, config: OperatorConfig) -> str:
    """The ``/dev/shm`` size limit: the configured size, else half the flavor's memory, else 2Gi.

    Half, because a memory-backed emptyDir is charged to the pod's memory limit: a larger one could only
    turn a DataLoader "bus error" into an OOM kill.
    """
    if config.shm_size is not None:
        return config.shm_size
    resources = _flavor_spec(flavor).resources
    memory = resources.limits.get("memory") or resources.requests.get("memory")
    if memory is None:
        return DEFAULT_SHM_SIZE
    half = int(parse_quantity(memory) / 2)
    mebibyte = 1024**2
    if half >= mebibyte:
        half -= half % mebibyte
    return format_bytes(Decimal(max(half, 1)))


def _resources(flavor_spec: DevServerFlavorSpec) -> dict[str, Any]:
    requests = dict(flavor_spec.resources.requests)
    limits = dict(flavor_spec.resources.limits)
    for resource, amount in requests.items():
        if resource not in _OVERCOMMITTABLE:
            limits.setdefault(resource, amount)
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


MAX_AUTO_NPROCS = 1024
"""The most processes per pod ``nprocsPerNode: auto`` resolves to."""


def gpu_count(flavor: DevServerFlavor | DevServerFlavorSpec | None) -> int:
    """NVIDIA GPUs per pod of a flavor (limits, else requests); 0 for a CPU flavor or none."""
    if flavor is None:
        return 0
    resources = _flavor_spec(flavor).resources
    amount = resources.limits.get(GPU_RESOURCE) or resources.requests.get(GPU_RESOURCE)
    return int(parse_quantity(amount)) if amount is not None else 0


def _has_gpu(flavor_spec: DevServerFlavorSpec) -> bool:
    return gpu_count(flavor_spec) > 0


def nprocs_per_node(devserver: DevServer, flavor: DevServerFlavor | DevServerFlavorSpec | None) -> int:
    """Processes per pod for torchrun: ``distributed.nprocsPerNode``, with ``auto`` (and a standalone server)
    resolved to the flavor's GPU count, or 1 for a CPU-only flavor."""
    distributed = devserver.spec.distributed
    if (
        devserver.spec.mode == "distributed"
        and distributed is not None
        and distributed.nprocs_per_node != NPROCS_AUTO
    ):
        return int(distributed.nprocs_per_node)
    # Capped: a flavor may ask for 1e400 GPUs (a whole number the API accepts); no machine has more than this,
    # and the number goes into status.nprocsPerNode, an integer the API server must be able to store.
    return max(1, min(gpu_count(flavor), MAX_AUTO_NPROCS))


def master_addr(devserver: DevServer, config: OperatorConfig) -> str:
    """Rank 0's stable DNS name through the headless Service: ``<name>-0.<name>.<ns>.svc.<domain>``."""
    name = devserver.name
    return f"{name}-0.{name}.{_namespace(devserver)}.svc.{config.cluster_domain}"


def _nccl_settings(devserver: DevServer) -> list[tuple[str, str]]:
    distributed = devserver.spec.distributed
    settings = distributed.nccl_settings if distributed is not None else {}
    checked = []
    for key, value in sorted(settings.items()):
        if key in RESERVED_ENV:
            raise InvalidSpecError(
                f"DevServer '{devserver.name}': spec.distributed.ncclSettings may not set {key}; the "
                "operator sets the torchrun variables itself",
                field="spec.distributed.ncclSettings",
                kind=DEVSERVER_KIND,
                name=devserver.name,
            )
        if not _NCCL_KEY.fullmatch(key) or env_name_problem(key) is not None:
            raise InvalidSpecError(
                f"DevServer '{devserver.name}': spec.distributed.ncclSettings may not set {key}; only NCCL "
                "variables are allowed (upper case, starting with NCCL_, e.g. NCCL_DEBUG), and not the "
                "NCCL_*_PLUGIN ones, which load a library",
                field="spec.distributed.ncclSettings",
                kind=DEVSERVER_KIND,
                name=devserver.name,
            )
        if "\0" in str(value):
            raise InvalidSpecError(
                f"DevServer '{devserver.name}': spec.distributed.ncclSettings.{key} contains a NUL character, "
                "which no environment variable can hold; remove it",
                field=f"spec.distributed.ncclSettings.{key}",
                kind=DEVSERVER_KIND,
                name=devserver.name,
            )
        checked.append((key, str(value)))
    return checked


def distributed_env(
    devserver: DevServer, config: OperatorConfig, flavor: DevServerFlavor | DevServerFlavorSpec | None = None
) -> list[dict[str, Any]]:
    """The environment contract of DESIGN.md, so a bare ``torchrun train.py`` works on every rank.

    Every server gets ``DEVSERVER_NAME``, ``DEVSERVER_OWNER`` and ``DEVSERVER_MODE``. A standalone one with
    several GPUs also gets ``PET_NPROC_PER_NODE`` and ``NPROC_PER_NODE`` (its GPU count), so that
    ``torchrun --standalone train.py`` starts one process per GPU. A distributed one
    also gets ``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK`` (the pod's index label),
    ``PET_MASTER_ADDR``, ``PET_MASTER_PORT`` (torchrun reads its options from ``PET_*``), the same five
    without the prefix for scripts, and the user's ``NCCL_*`` settings. Never ``RANK``/``WORLD_SIZE``:
    torchrun sets per-process values, and a node-level one would be wrong for every process but one.

    Raises:
        InvalidSpecError: an ``ncclSettings`` key is not an ``NCCL_*`` variable (e.g. ``LD_PRELOAD``,
            ``MASTER_ADDR``); the message names it. The models refuse these too; this guards objects
            that bypassed them.
    """
    env: list[dict[str, Any]] = [
        {"name": "DEVSERVER_NAME", "value": devserver.name},
        {"name": "DEVSERVER_OWNER", "value": devserver.spec.owner},
        {"name": "DEVSERVER_MODE", "value": devserver.spec.mode},
    ]
    distributed = devserver.spec.distributed
    nprocs = str(nprocs_per_node(devserver, flavor))
    if devserver.spec.mode != "distributed" or distributed is None:
        if gpu_count(flavor) > 1:
            env.extend({"name": name, "value": nprocs} for name in ("PET_NPROC_PER_NODE", "NPROC_PER_NODE"))
        return env
    nccl = _nccl_settings(devserver)
    rank = {"valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": f"metadata.labels['{RANK_LABEL}']"}}}
    contract: list[tuple[str, dict[str, Any]]] = [
        ("NNODES", {"value": str(distributed.world_size)}),
        ("NPROC_PER_NODE", {"value": nprocs}),
        ("NODE_RANK", rank),
        ("MASTER_ADDR", {"value": master_addr(devserver, config)}),
        ("MASTER_PORT", {"value": str(config.master_port)}),
    ]
    for prefix in ("PET_", ""):
        env.extend({"name": prefix + name, **source} for name, source in contract)
    env.extend({"name": key, "value": value} for key, value in nccl)
    return env


def home_size_for(
    devserver: DevServer, flavor: DevServerFlavor | DevServerFlavorSpec | None, config: OperatorConfig
) -> str | None:
    """The persistent home volume of each pod, or None for none (an ``emptyDir``, lost at every stop).

    ``persistentHomeSize`` when set (``"0"``: the explicit opt-out), else the flavor's ``defaultHomeSize``,
    else the operator's ``default_home_size``: a home is kept unless someone chose otherwise, because a
    file that vanishes on stop is lost work.
    """
    flavor_spec = _flavor_spec(flavor) if flavor is not None else None
    for size in (
        devserver.spec.persistent_home_size,
        flavor_spec.default_home_size if flavor_spec is not None else None,
        config.default_home_size,
    ):
        if size is not None:
            return size if parse_quantity(size) > 0 else None
    return None


def _volumes(
    devserver: DevServer, flavor_spec: DevServerFlavorSpec, config: OperatorConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = [{"name": HOME_VOLUME, "mountPath": config.home_path}]
    if home_size_for(devserver, flavor_spec, config) is None:
        volumes.append({"name": HOME_VOLUME, "emptyDir": {}})
    volumes.append(
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm_size_for(flavor_spec, config)}}
    )
    mounts.append({"name": SHM_VOLUME, "mountPath": "/dev/shm"})
    claim = devserver.spec.shared_volume_claim_name
    if claim is not None:
        volumes.append({"name": SHARED_VOLUME, "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": SHARED_VOLUME, "mountPath": config.shared_path})
    return volumes, mounts


def _container(
    devserver: DevServer,
    flavor_spec: DevServerFlavorSpec,
    config: OperatorConfig,
    mounts: list[dict[str, Any]],
    tracking: TrackingSpec,
) -> dict[str, Any]:
    image = image_for(devserver, flavor_spec, config)
    env = [
        {"name": "HOME", "value": config.home_path},
        *distributed_env(devserver, config, flavor_spec),
        *tracking_env(devserver, tracking, flavor=devserver.spec.flavor, image=image),
    ]
    hook = devserver.spec.lifecycle.checkpoint
    if hook is not None:
        env.append({"name": POD_UID_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}})
    if not _has_gpu(flavor_spec):
        # CUDA images set NVIDIA_VISIBLE_DEVICES=all; on a GPU node with the NVIDIA runtime that hands every
        # GPU of the node to a CPU pod, outside the scheduler's accounting. "void" exposes none.
        env.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"})
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(config.command),
        "workingDir": config.home_path,
        "env": env,
        "volumeMounts": mounts,
        # Ready means a shell can be opened: the pod is Ready once one exec has worked. A startup probe
        # runs until its first success and never again, where a readiness probe would exec into every pod
        # every few seconds for its whole life (at a thousand pods, hundreds of execs a second on the
        # nodes for nothing). Every second at first, because users wait on that first success; five
        # minutes of failures (an image without `true`) before the kubelet gives up on the container.
        "startupProbe": {
            "exec": {"command": ["true"]},
            "periodSeconds": 1,
            "timeoutSeconds": 5,
            "failureThreshold": 300,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if devserver.spec.mode == "distributed":
        container["ports"] = [
            {"name": MASTER_PORT_NAME, "containerPort": config.master_port, "protocol": "TCP"}
        ]
    resources = _resources(flavor_spec)
    if resources:
        container["resources"] = resources
    if hook is not None:
        container["lifecycle"] = {"preStop": {"exec": {"command": hook_command(hook, by_operator=False)}}}
    return container


def build_statefulset(
    devserver: DevServer,
    flavor: DevServerFlavor | DevServerFlavorSpec,
    config: OperatorConfig,
    *,
    replicas: int | None = None,
    tracking: TrackingSpec | None = None,
) -> dict[str, Any]:
    """The complete StatefulSet ``<name>`` for a DevServer (see the module docstring).

    Args:
        devserver: as read from the server (uid and namespace are required).
        flavor: its flavor (object or spec).
        config: the operator's settings.
        replicas: override the replica count; None: ``desired_replicas(devserver)``.
        tracking: the experiment tracking to inject (``tracking_settings.effective_tracking`` of the
            DevServer and its namespace's defaults); None: the DevServer's own ``spec.tracking``.

    Raises:
        ValueError: no uid or namespace; ``InvalidSpecError`` for a forbidden ``ncclSettings`` key.
    """
    flavor_spec = _flavor_spec(flavor)
    volumes, mounts = _volumes(devserver, flavor_spec, config)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        # Service links put <SERVICE>_PORT variables for every Service of the namespace into each pod: O(N)
        # env with thousands of DevServers, and a Service named "pet-master" would inject PET_MASTER_PORT.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": termination_grace(devserver.spec.lifecycle.checkpoint,
                                                           config.termination_grace_seconds),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": config.run_as_user,
            "runAsGroup": config.run_as_group,
            "fsGroup": config.fs_group,
            # Chown volumes only when their root has the wrong owner, not recursively on every start.
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            _container(devserver, flavor_spec, config, mounts,
                       tracking if tracking is not None else effective_tracking(devserver, None))
        ],
        "volumes": volumes,
    }
    capacity_selector, capacity_tolerations = capacity_placement(flavor_spec, config)
    node_selector = {**flavor_spec.node_selector, **capacity_selector}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    tolerations = [
        toleration.model_dump(mode="json", by_alias=True, exclude_none=True)
        for toleration in flavor_spec.tolerations
    ]
    tolerations += [toleration for toleration in capacity_tolerations if toleration not in tolerations]
    if tolerations:
        pod_spec["tolerations"] = tolerations
    template_metadata: dict[str, Any] = {"labels": labels_for(devserver)}
    restarted_at = devserver.metadata.annotations.get(RESTARTED_AT_ANNOTATION)
    if restarted_at:
        template_metadata["annotations"] = {RESTARTED_AT_ANNOTATION: restarted_at}
    spec: dict[str, Any] = {
        "replicas": desired_replicas(devserver) if replicas is None else replicas,
        "serviceName": devserver.name,
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": selector_for(devserver)},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        # ControllerRevisions are etcd objects too; a dev server never rolls back through history.
        "revisionHistoryLimit": 2,
        "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Retain", "whenDeleted": "Delete"},
        "template": {"metadata": template_metadata, "spec": pod_spec},
    }
    if spec["replicas"] < 0:
        raise ValueError(f"replicas must not be negative, got {spec['replicas']}")
    size = home_size_for(devserver, flavor_spec, config)
    if size is not None:
        claim_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
        }
        if config.home_storage_class is not None:
            claim_spec["storageClassName"] = config.home_storage_class
        # Only fixed labels: claim templates are immutable, and the controller adds the selector's labels.
        # The StatefulSet controller creates each claim with the template's metadata, so the claim is born
        # with the DevServer as a second, non-controller owner: the set's ``whenDeleted: Delete`` alone
        # would let a mere ``kubectl delete statefulset`` delete the homes, while with the DevServer as an
        # owner the garbage collector keeps them until the DevServer goes. The uid never changes for the
        # DevServer's life, so the immutable template can hold it.
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {
                    "name": HOME_VOLUME,
                    "labels": {**selector_for(devserver), MANAGED_BY_LABEL: MANAGED_BY},
                    "ownerReferences": [owner_reference(devserver) | {"controller": False}],
                },
                "spec": claim_spec,
            }
        ]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _metadata(devserver), "spec": spec}


def build_service(devserver: DevServer, config: OperatorConfig | None = None) -> dict[str, Any]:
    """The headless Service ``<name>``: per-rank DNS names, published before the pods are Ready.

    ``publishNotReadyAddresses`` matters: torchrun on rank 1 resolves rank 0's name while rank 0 is
    still starting, and a Service that waits for readiness has no record for it yet.
    """
    port = (config or OperatorConfig()).master_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(devserver),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector_for(devserver),
            "ports": [{"name": MASTER_PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


@dataclass(frozen=True)
class DesiredObjects:
    """Everything the operator applies for one DevServer."""

    statefulset: dict[str, Any]
    service: dict[str, Any]


def build_objects(
    devserver: DevServer,
    flavor: DevServerFlavor | DevServerFlavorSpec,
    config: OperatorConfig,
    *,
    tracking: TrackingSpec | None = None,
) -> DesiredObjects:
    """The StatefulSet and Service of a DevServer, built together (``tracking`` as in ``build_statefulset``)."""
    return DesiredObjects(
        statefulset=build_statefulset(devserver, flavor, config, tracking=tracking),
        service=build_service(devserver, config),
    )


def _storage(value: Any) -> Any:
    try:
        return parse_quantity(value)
    except ValueError:
        return value


def _claim_templates(spec: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    # The apiserver adds apiVersion, kind, volumeMode and status to each template; compare what we set.
    found = []
    for claim in spec.get("volumeClaimTemplates") or []:
        claim_spec = claim.get("spec") or {}
        found.append(
            (
                (claim.get("metadata") or {}).get("name"),
                tuple(claim_spec.get("accessModes") or ()),
                _storage(((claim_spec.get("resources") or {}).get("requests") or {}).get("storage")),
                claim_spec.get("storageClassName"),
            )
        )
    return found


def immutable_changes(live: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """The fields of a StatefulSet that differ but cannot be updated in place (empty: replace works).

    When this is not empty, delete the live StatefulSet with ``propagationPolicy: Orphan`` (its pods and
    home PVCs stay) and create ``desired``, which adopts them. A ``storageClassName`` the server filled
    in is not a change.
    """
    live_spec, desired_spec = live.get("spec") or {}, desired.get("spec") or {}
    changed = []
    for key in ("serviceName", "podManagementPolicy"):
        if live_spec.get(key, "OrderedReady" if key == "podManagementPolicy" else None) != desired_spec.get(
            key
        ):
            changed.append(f"spec.{key}")
    if (live_spec.get("selector") or {}) != (desired_spec.get("selector") or {}):
        changed.append("spec.selector")
    live_claims, desired_claims = _claim_templates(live_spec), _claim_templates(desired_spec)
    if len(live_claims) != len(desired_claims) or any(
        old[:3] != new[:3] or (new[3] is not None and old[3] != new[3])
        for old, new in zip(live_claims, desired_claims, strict=True)
    ):
        changed.append("spec.volumeClaimTemplates")
    return changed
