"""The names and rules every part of devservers agrees on, in one module that imports nothing heavy.

Why a module of its own: the API group, the kinds, the labels and annotations the operator and the SDK
read on each other's objects, and the name rules were written out in several places (the client, the
manifest builder, the lifecycle rules, the magics, the operator, and ``devctl list``'s fast path), and the
copies were held together only by tests comparing them. The models cannot be their home: ``models``
imports pydantic, and ``lightweight_read`` (``devctl list`` without pydantic or the ``kubernetes`` client)
and the magics' summaries must not pay for it. So they live here, and ``models``, ``manifests``,
``client``, ``lifecycle``, ``status``, ``lightweight_read``, the front ends and the operator import them.
The same goes for the environment variables no user may set (``env_name_problem``): the models, the manifest
builder, launch and the fast path apply that one rule.

Only the standard library: the import contract ``contract-stays-light`` (``.importlinter``) forbids
pydantic, ``kubernetes`` and aiohttp here, directly or through another module.

What a rule needs pydantic for (a ``Literal``, a ``Field(ge=...)``) stays in ``models``, written with these
constants; ``tests/sdk/test_lightweight_read.py`` holds the fast path's reading against the models'.
"""

from __future__ import annotations

import re

__all__ = [
    "ACTIVITY_ANNOTATION",
    "ACTIVITY_SOURCE_ANNOTATION",
    "API_GROUP",
    "API_VERSION",
    "APP_LABEL",
    "APP_LABEL_VALUE",
    "BACKENDS",
    "CHILD_NAME_TEMPLATES",
    "CONDITION_STATUSES",
    "CONTAINER_NAME",
    "CONTRACT_ENV",
    "CREATE_TOKEN_ANNOTATION",
    "DEFAULT_WORLD_SIZE",
    "DESIRED_STATE_ANNOTATION",
    "DEVSERVER_KIND",
    "DEVSERVER_PLURAL",
    "FLAVOR_KIND",
    "FLAVOR_PLURAL",
    "GROUP_VERSION",
    "INSTANCE_LABEL",
    "KUBERNETES_NAME_LIMIT",
    "LOADER_ENV",
    "LOCAL_CLUSTER_LABEL",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "MAX_CHECKPOINT_TIMEOUT",
    "MAX_IDLE_TIMEOUT",
    "MAX_NAME_LENGTH",
    "MAX_NCCL_SETTINGS",
    "MAX_NCCL_VALUE_LENGTH",
    "MAX_WORLD_SIZE",
    "MIN_IDLE_TIMEOUT",
    "MODES",
    "NAME_LABEL",
    "NAME_PATTERN",
    "NCCL_KEY_PATTERN",
    "OWNER_LABEL",
    "PHASES",
    "RANK_LABEL",
    "RESTARTED_AT_ANNOTATION",
    "env_name_problem",
    "validate_name",
]

# -- the API ---------------------------------------------------------------------------------------------

API_GROUP = "devservers.io"
API_VERSION = "v1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"
"""A DevServer's ``apiVersion``."""
DEVSERVER_KIND = "DevServer"
DEVSERVER_PLURAL = "devservers"
FLAVOR_KIND = "DevServerFlavor"
FLAVOR_PLURAL = "devserverflavors"

MODES = ("standalone", "distributed")
"""``spec.mode``; the first is the default."""
BACKENDS = ("nccl", "gloo")
"""``spec.distributed.backend``; the first is the default."""
PHASES = ("Pending", "Starting", "Running", "Interrupted", "Stopping", "Stopped", "Failed", "Expired", "Terminating")
"""``status.phase`` (see ``status``, which derives it)."""
CONDITION_STATUSES = ("True", "False", "Unknown")
CONTAINER_NAME = "devserver"
"""The one container of a DevServer's pods: exec, logs and the operator's probe address it by name."""

# -- labels and annotations ------------------------------------------------------------------------------

NAME_LABEL = "devservers.io/name"
"""On every object and pod of DevServer X: ``X``. The SDK finds a server's pods by it; the operator maps an
owned object's event back to its DevServer by it."""
OWNER_LABEL = "devservers.io/owner"
"""``spec.owner`` as a label value (``manifests.owner_label_value``)."""
RANK_LABEL = "apps.kubernetes.io/pod-index"
"""Set on each pod by the StatefulSet controller (Kubernetes >= 1.28): its ordinal, i.e. its node rank."""
APP_LABEL = "app.kubernetes.io/name"
APP_LABEL_VALUE = "devserver"
INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "devservers-operator"
LOCAL_CLUSTER_LABEL = "devservers.io/local-cluster"
"""Set to "true" on every Node of the local cluster (``devservers_sdk.localcluster``, which may not import
the SDK and so names it itself), whose hints then apply."""

DESIRED_STATE_ANNOTATION = "devservers.io/desired-state"
"""``Stopped`` or ``Running`` (absent: Running); ``DevServerClient.stop``/``start`` write it, and so does
the operator when it stops an idle server, so that ``start`` resumes either kind of stop."""
RESTARTED_AT_ANNOTATION = "devservers.io/restarted-at"
"""On the DevServer: copied into the pod template, so changing it rolls the pods (like ``kubectl rollout
restart``'s ``kubectl.kubernetes.io/restartedAt``) without any other change."""
ACTIVITY_ANNOTATION = "devservers.io/last-activity"
"""When the SDK last saw the server used (RFC 3339, UTC); the idle rule counts it (see ``activity``)."""
ACTIVITY_SOURCE_ANNOTATION = "devservers.io/last-activity-source"
"""What the latest SDK activity was (``exec``, ``shell``, ``ssh``, ``port-forward``), for ``describe``."""
CREATE_TOKEN_ANNOTATION = "devservers.io/create-token"
"""Stamped on a named object before a create is first tried, so a retried create recognises its own
object (see ``kube``)."""

# -- names -----------------------------------------------------------------------------------------------

KUBERNETES_NAME_LIMIT = 63
"""DNS labels, hostnames and label values."""
_REVISION_HASH_LENGTH = 10  # StatefulSet's hash is a safe-encoded uint32 in decimal: at most 10 characters

MAX_WORLD_SIZE = 1000
"""The most pods a distributed DevServer may have; it bounds the ordinal in child names to 3 digits."""
DEFAULT_WORLD_SIZE = 2
"""``spec.distributed.worldSize`` when a distributed DevServer does not say."""

CHILD_NAME_TEMPLATES: dict[str, str] = {
    "StatefulSet pod name and hostname": "{name}-{ordinal}",
    "pod label controller-revision-hash": "{name}-{revision_hash}",
    "home PersistentVolumeClaim": "home-{name}-{ordinal}",
    "headless Service": "{name}",
}
"""Every child name or label value derived from a DevServer name that must fit in 63 characters."""


def _longest_child_overhead() -> int:
    return max(
        len(template.format(name="", ordinal=MAX_WORLD_SIZE - 1, revision_hash="x" * _REVISION_HASH_LENGTH))
        for template in CHILD_NAME_TEMPLATES.values()
    )


MAX_NAME_LENGTH = KUBERNETES_NAME_LIMIT - _longest_child_overhead()
"""The longest DevServer name whose every child name still fits Kubernetes' 63-character limit (52)."""

NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1035 label: the headless Service named after the DevServer must start with a letter."""


def validate_name(name: str) -> str:
    """Check a DevServer name against the Kubernetes rules of every object made from it.

    Returns:
        The name, unchanged.

    Raises:
        ValueError: the name is empty, too long for its child objects, or not a DNS-1035 label; the
            message says which rule and what to write instead.
    """
    if not name:
        raise ValueError('DevServer name is empty: use lowercase letters, digits and "-", e.g. "alice-dev"')
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f'DevServer name "{name}" is {len(name)} characters; the limit is {MAX_NAME_LENGTH} so that pod '
            f"and volume names fit Kubernetes' {KUBERNETES_NAME_LIMIT}-character limit"
        )
    if not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(
            f'DevServer name "{name}" is invalid: use lowercase letters, digits and "-", starting with a '
            f'letter and ending with a letter or digit, e.g. "alice-dev"'
        )
    return name


# -- bounds of the spec ----------------------------------------------------------------------------------

MIN_IDLE_TIMEOUT = 60
"""The shortest idle timeout, in seconds (``lifecycle.idleTimeout``, a flavor's ``defaultIdleTimeout``)."""
MAX_IDLE_TIMEOUT = 365 * 24 * 3600
"""The longest idle timeout, in seconds (a year); ``autoShutdown: false`` is the way to say "never"."""

NCCL_KEY_PATTERN = r"^NCCL_[A-Z0-9_]+$"
MAX_NCCL_SETTINGS = 64
"""At most this many ``ncclSettings``; NCCL reads a few dozen variables, and the bound keeps the CRD's CEL
rule over the keys within the apiserver's cost budget."""
MAX_NCCL_VALUE_LENGTH = 4096

MAX_CHECKPOINT_TIMEOUT = 3600
"""The longest a checkpoint hook may run (an hour): the pods' termination grace period is stretched to cover
it, and a spot node gives two minutes."""


# -- environment variables a user may not set ------------------------------------------------------------

CONTRACT_ENV = frozenset({
    "MASTER_ADDR", "MASTER_PORT", "NNODES", "NODE_RANK", "NPROC_PER_NODE", "RANK", "WORLD_SIZE",
    "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE", "ROLE_RANK", "ROLE_WORLD_SIZE",
    "HOME", "PATH",
})  # fmt: skip
"""The distributed contract (DESIGN.md) and what torchrun sets per process: never taken from a user. With
``_CONTRACT_PREFIXES`` (``PET_*``, ``TORCHELASTIC_*``, ``DEVSERVER_*``, ``DEVSERVERS_*``)."""
_CONTRACT_PREFIXES = ("PET_", "TORCHELASTIC_", "DEVSERVER_", "DEVSERVERS_")

LOADER_ENV = frozenset({
    "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONINSPECT", "PYTHONUSERBASE", "PYTHONWARNINGS",
    "PYTHONBREAKPOINT", "PYTHONEXECUTABLE", "PYTHONPLATLIBDIR", "BASH_ENV", "ENV", "GCONV_PATH",
    "CUDA_INJECTION64_PATH", "NODE_OPTIONS", "PERL5OPT", "PERL5LIB", "RUBYOPT", "JAVA_TOOL_OPTIONS",
})  # fmt: skip
"""Variables that make a program load code before the user's own: ``PYTHONSTARTUP`` runs a file,
``PYTHONWARNINGS`` and ``PYTHONBREAKPOINT`` import modules, ``PYTHONUSERBASE`` adds ``.pth`` files,
``BASH_ENV`` is sourced by every non-interactive bash, ``GCONV_PATH`` and ``CUDA_INJECTION64_PATH`` load
shared objects. With ``_LOADER_PREFIXES`` (every ``LD_*`` of the dynamic loader, ``LD_PRELOAD``,
``LD_LIBRARY_PATH`` and ``LD_AUDIT`` included) and ``NCCL_*_PLUGIN`` (NCCL loads the named library)."""
_LOADER_PREFIXES = ("LD_", "DYLD_")


def env_name_problem(name: str) -> str | None:
    """Why a user may not set the environment variable ``name``, or None when they may.

    One rule for every place a user's variables reach a process: ``ncclSettings`` (the models, the CRD's
    rule and the operator's manifest builder) and ``launch``'s ``env``.

    Returns:
        ``"contract"`` for a variable of the distributed contract or torchrun (``MASTER_ADDR``, ``PET_*``,
        ``RANK``...), ``"loader"`` for one that loads code into the process (``LD_PRELOAD``,
        ``PYTHONPATH``, ``NCCL_NET_PLUGIN``...), else None.
    """
    if name in CONTRACT_ENV or name.startswith(_CONTRACT_PREFIXES):
        return "contract"
    if name in LOADER_ENV or name.startswith(_LOADER_PREFIXES) or (
            name.startswith("NCCL_") and name.endswith("_PLUGIN")):
        return "loader"
    return None
