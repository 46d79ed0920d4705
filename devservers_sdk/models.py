"""The DevServer and DevServerFlavor resources as pydantic models: the contract every other part speaks.

Attributes are snake_case; their camelCase aliases (generated, ``world_size`` is ``worldSize``) are the CRD
field names. Python code constructs models with the snake_case names (``LifecycleSpec(time_to_live="4h")``,
which type-checks); manifests use camelCase; ``populate_by_name`` accepts either. Serialise with
``model_dump(mode="json", by_alias=True, exclude_none=True)`` (``to_manifest`` does), so an unset field is
absent rather than ``null``.

``crds.py`` generates the CRDs from these classes, so a rule written here is enforced twice: by the SDK
before anything is sent (with a message that says what to write instead) and by the apiserver for
``kubectl apply``. The rules a structural schema cannot express are enforced here only, and listed in
the ``crds`` module docstring. Specs refuse unknown fields (a typo such as ``worldsize`` is an error that
names it); statuses and object metadata ignore them, because the server may know more than this SDK.

Name budget: a DevServer ``<name>`` becomes a StatefulSet whose pods are ``<name>-<ordinal>``, whose pods
carry the label ``controller-revision-hash: <name>-<hash>`` (the hash is up to 10 characters), and whose
home volumes are PersistentVolumeClaims ``home-<name>-<ordinal>``. Pod names double as hostnames and the
label value is a label value, so all of them must fit in 63 characters; the headless Service ``<name>``
needs a DNS-1035 label (starting with a letter). ``contract.CHILD_NAME_TEMPLATES`` lists these and
``contract.MAX_NAME_LENGTH`` is derived from the longest (today the revision-hash label: 63 - 11 = 52). The
apiserver would accept a 60-character DevServer and then fail every pod, far from the user's command.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AliasGenerator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    JsonValue,
    StrictBool,
    StrictInt,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from devservers_sdk.activity import rfc3339
from devservers_sdk.contract import (
    API_GROUP,
    API_VERSION,
    CHILD_NAME_TEMPLATES,
    CONTRACT_ENV,
    DEFAULT_WORLD_SIZE,
    DEVSERVER_KIND,
    DEVSERVER_PLURAL,
    FLAVOR_KIND,
    FLAVOR_PLURAL,
    GROUP_VERSION,
    LOADER_ENV,
    MAX_CHECKPOINT_TIMEOUT,
    MAX_IDLE_TIMEOUT,
    MAX_NAME_LENGTH,
    MAX_NCCL_SETTINGS,
    MAX_NCCL_VALUE_LENGTH,
    MAX_WORLD_SIZE,
    MIN_IDLE_TIMEOUT,
    NAME_PATTERN,
    NCCL_KEY_PATTERN,
    env_name_problem,
    validate_name,
)
from devservers_sdk.durations import DURATION_ADVICE, DURATION_PATTERN, format_duration, parse_duration
from devservers_sdk.errors import InvalidSpecError
from devservers_sdk.next_steps import NextStep
from devservers_sdk.quantities import QUANTITY_PATTERN, parse_quantity

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "CHILD_NAME_TEMPLATES",
    "CONTRACT_ENV",
    "DEVSERVER_KIND",
    "DEVSERVER_PLURAL",
    "FLAVOR_KIND",
    "FLAVOR_PLURAL",
    "GPU_RESOURCE",
    "IGNORED_FIELDS",
    "LOADER_ENV",
    "MAX_CHECKPOINT_TIMEOUT",
    "MAX_IDLE_TIMEOUT",
    "MAX_LIFETIME",
    "MAX_NAME_LENGTH",
    "MAX_NCCL_SETTINGS",
    "MAX_OWNER_LENGTH",
    "MAX_WORLD_SIZE",
    "NAME_PATTERN",
    "NPROCS_AUTO",
    "OWNER_PATTERN",
    "PRICE_PATTERN",
    "CheckpointHook",
    "CheckpointOutcome",
    "Condition",
    "CostStatus",
    "DevServer",
    "DevServerFlavor",
    "DevServerFlavorSpec",
    "DevServerSpec",
    "DevServerStatus",
    "DistributedSpec",
    "FlavorResources",
    "GpuUse",
    "IgnoredField",
    "Interruption",
    "LifecycleSpec",
    "MinGpuUtilization",
    "MlflowTracking",
    "ObjectMeta",
    "RankCheckpoint",
    "Toleration",
    "TrackingSpec",
    "WandbTracking",
    "env_name_problem",
    "validate_name",
]

GPU_RESOURCE = "nvidia.com/gpu"

MAX_LIFETIME = timedelta(days=3650)
"""The longest ``timeToLive`` and ``maxTimeToLive`` (ten years)."""

_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
MAX_OWNER_LENGTH = 256
"""The longest ``spec.owner``: a user name as the API server reports it; e-mail addresses reach 254."""
OWNER_PATTERN = r"^[^\s\x00-\x1f\x7f]([^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"
"""A user name as the API server reports it (``kubectl auth whoami``): any printable text without
surrounding spaces, e.g. ``alice``, ``alice@example.com``, ``system:serviceaccount:ml:builder``."""
_OWNER_ADVICE = (
    "spec.owner must be your Kubernetes user name as `kubectl auth whoami` shows it, e.g. alice@example.com: "
    f"1 to {MAX_OWNER_LENGTH} characters, no control characters and no spaces at either end"
)
_IMAGE_PATTERN = r"^\S+$"
MAX_IMAGE_LENGTH = 1024
"""Longer than any registry host, repository path, tag and digest together (repository names stop at 255)."""
MAX_DURATION_LENGTH = 64


# --- field types: one validator with a readable message, and the same rule as a schema for the CRD ----


def _cel_string(text: str) -> str:
    """``text`` as a CEL single-quoted string literal (for a regular expression in a CRD rule)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class _Matches:
    """``Annotated`` metadata: a regular-expression rule with a readable error, and the same rule as
    ``pattern``/``maxLength`` in the JSON schema (pydantic's own ``pattern=`` only says "should match '^...$'").

    With ``cel_rule`` the CRD states the rule as a CEL rule whose message is the same advice, instead of a
    ``pattern``, whose refusal reads ``spec.flavor in body should match '^[a-z0-9]([-a-z0-9]*...$'``. A CEL
    rule on a string needs ``max_length``, or its cost estimate exceeds the API server's budget. Used for what
    researchers write at the top of a DevServer; values inside maps keep ``pattern`` (a rule per value costs
    the rule's price times the map's unbounded size).
    """

    pattern: str
    what: str
    advice: str
    max_length: int | None = None
    cel_rule: bool = False

    def _check(self, value: str) -> str:
        if self.max_length is not None and len(value) > self.max_length:
            raise ValueError(
                f'"{value}" is not a valid {self.what}: it is {len(value)} characters, at most {self.max_length}'
            )
        if not re.fullmatch(self.pattern, value):
            raise ValueError(f'"{value}" is not a valid {self.what}: {self.advice}')
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if self.max_length is not None:
            json_schema["maxLength"] = self.max_length
        if self.cel_rule:
            assert self.max_length is not None, "a CEL rule on a string needs a maxLength"
            json_schema["x-kubernetes-validations"] = [
                {"rule": f"self.matches({_cel_string(self.pattern)})", "message": f"is not a valid {self.what}: {self.advice}"}
            ]
        else:
            json_schema["pattern"] = self.pattern
        return json_schema


_LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_QUALIFIED_NAME_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_NATIVE_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def _qualified_name_problem(key: str) -> str | None:
    """Why ``key`` is not a Kubernetes qualified name (a label key: ``[prefix/]name``), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not re.fullmatch(_SUBDOMAIN_PATTERN, prefix)):
        return "its prefix (before /) must be a DNS subdomain such as example.com"
    if not name or len(name) > 63 or not re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", name):
        return (
            "its name (after any prefix/) must be 1 to 63 letters, digits, '-', '_' or '.', starting and "
            "ending with a letter or digit"
        )
    return None


def _check_label_key(key: str) -> str:
    problem = _qualified_name_problem(key)
    if problem is not None:
        raise ValueError(f'"{key}" is not a valid label key: {problem}, e.g. "nvidia.com/gpu.present"')
    return key


def _check_resource_name(name: str) -> str:
    # The apiserver's validateContainerResourceName: a native name, or an extended one with a domain.
    if "/" not in name:
        if name in _NATIVE_RESOURCES or name.startswith("hugepages-"):
            return name
        raise ValueError(
            f'"{name}" is not a container resource: use cpu, memory, ephemeral-storage, hugepages-<size>, or '
            "an extended resource with a domain, e.g. nvidia.com/gpu"
        )
    problem = _qualified_name_problem(name)
    if problem is not None or name.startswith("requests."):
        raise ValueError(
            f'"{name}" is not a valid extended resource name: '
            f"{problem or 'it must not start with requests.'}, e.g. nvidia.com/gpu"
        )
    return name


def _is_extended_resource(name: str) -> bool:
    return "/" in name and not name.startswith("kubernetes.io/")


def _whole(amount: Decimal) -> bool:
    # Not `amount % 1`: for 1e400 (a quantity the API server accepts) that raises InvalidOperation, which
    # pydantic does not turn into a validation error, and reading such a flavor crashed the operator.
    return amount == amount.to_integral_value()


_Subdomain = Annotated[
    str,
    _Matches(
        _SUBDOMAIN_PATTERN,
        what="Kubernetes name",
        advice='use lowercase letters, digits, "-" and ".", starting and ending with a letter or digit, '
        'e.g. "gpu-small"',
        max_length=253,
        cel_rule=True,
    ),
]


def _check_owner(value: str) -> str:
    if not value or len(value) > MAX_OWNER_LENGTH or not re.fullmatch(OWNER_PATTERN, value):
        raise ValueError(f"{json.dumps(value)} is not a valid owner: it {_OWNER_ADVICE.removeprefix('spec.owner ')}")
    return value


_Owner = Annotated[
    str,
    AfterValidator(_check_owner),
    WithJsonSchema({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_OWNER_LENGTH,
        "x-kubernetes-validations": [{"rule": f"self.matches({_cel_string(OWNER_PATTERN)})",
                                      "message": _OWNER_ADVICE}],
    }),
]
_LabelKey = Annotated[str, AfterValidator(_check_label_key)]
_LabelValue = Annotated[
    str,
    _Matches(
        _LABEL_VALUE_PATTERN,
        what="label value",
        advice='use letters, digits, "-", "_" and ".", starting and ending with a letter or digit, or nothing',
        max_length=63,
    ),
]
_TolerationKey = Annotated[
    str,
    AfterValidator(_check_label_key),
    WithJsonSchema({"type": "string", "pattern": _QUALIFIED_NAME_PATTERN, "maxLength": 317}),
]
_ResourceName = Annotated[str, AfterValidator(_check_resource_name)]
_Image = Annotated[
    str,
    _Matches(
        _IMAGE_PATTERN,
        what="image",
        advice='write an image reference without spaces, e.g. "pytorch/pytorch:2.5.1"',
        max_length=MAX_IMAGE_LENGTH,
        cel_rule=True,
    ),
]


def _check_duration(value: str) -> str:
    if len(value) > MAX_DURATION_LENGTH:
        raise ValueError(f'"{value[:20]}..." is {len(value)} characters; a duration is at most {MAX_DURATION_LENGTH}: '
                         f"{DURATION_ADVICE}")
    # Bounded so that creation time + lifetime stays a date: "999999999d" parses, and made every
    # reconcile of its DevServer fail with OverflowError (found by tests/fuzz).
    if parse_duration(value) > MAX_LIFETIME:
        raise ValueError(f'"{value}" is longer than {MAX_LIFETIME.days} days; delete the DevServer by hand if it '
                         "must live longer")
    return value


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _no_timestamp_number(value: Any) -> Any:
    # pydantic would read 9, and "0", as seconds since 1970 (and a bare date as midnight); the API server
    # refuses anything but an RFC 3339 date-time string.
    if isinstance(value, int | float):
        raise ValueError("must be an RFC 3339 time with a time zone, e.g. 2025-01-31T18:00:00Z, not a number")
    if isinstance(value, str) and not _RFC3339.fullmatch(value.strip()):
        raise ValueError(f"must be an RFC 3339 time with a timezone, e.g. 2025-01-31T18:00:00Z, not {value!r}")
    return value


# Kept as the string the user wrote ("1h30m", not 5400): the object should read back as it was applied.
_Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    WithJsonSchema({
        "type": "string",
        "maxLength": MAX_DURATION_LENGTH,
        "x-kubernetes-validations": [{"rule": f"self.matches({_cel_string(DURATION_PATTERN)})",
                                      "message": f"is not a duration of more than zero: {DURATION_ADVICE}"}],
    }),
]


def _quantity_text(value: Any) -> Any:
    # YAML turns `cpu: 2` into an int; Kubernetes quantities accept both, and we store the string form.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _check_non_negative_quantity(value: str) -> str:
    if parse_quantity(value) < 0:
        raise ValueError(f'quantity "{value}" is negative; resources are counted from zero up')
    return value


def _check_positive_quantity(value: str) -> str:
    if parse_quantity(value) <= 0:
        raise ValueError(f'quantity "{value}" must be more than zero, e.g. 100Gi')
    return value


_QUANTITY_SCHEMA = WithJsonSchema(
    {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": QUANTITY_PATTERN,
        "x-kubernetes-int-or-string": True,
    }
)
_Quantity = Annotated[
    str, BeforeValidator(_quantity_text), AfterValidator(_check_non_negative_quantity), _QUANTITY_SCHEMA
]
_PositiveQuantity = Annotated[
    str, BeforeValidator(_quantity_text), AfterValidator(_check_positive_quantity), _QUANTITY_SCHEMA
]


def _check_nccl_key(key: str) -> str:
    if not re.fullmatch(NCCL_KEY_PATTERN, key):
        raise ValueError(
            f'"{key}" is not an NCCL setting: keys are NCCL environment variables such as NCCL_DEBUG or '
            f"NCCL_SOCKET_IFNAME (upper case, starting with NCCL_)"
        )
    if env_name_problem(key) == "loader":
        raise ValueError(
            f'"{key}" makes NCCL load a library into every process, which a DevServer may not choose; '
            "ask your cluster admin to set it in the image"
        )
    return key


def _check_env_value(value: str) -> str:
    # A NUL cannot be passed to execve: the container would never start, far from the user's command.
    if "\0" in value:
        raise ValueError("an environment variable value cannot contain a NUL character (\\0)")
    return value


_NcclKey = Annotated[str, AfterValidator(_check_nccl_key)]
_NcclValue = Annotated[
    str,
    Field(max_length=MAX_NCCL_VALUE_LENGTH),
    AfterValidator(_check_env_value),
    WithJsonSchema({"type": "string", "maxLength": MAX_NCCL_VALUE_LENGTH, "pattern": "^[^\\x00]*$"}),
]
# The CRD's own guard for what bypasses the SDK; CEL, because a structural schema cannot constrain map keys.
_NCCL_KEYS_RULE: dict[str, JsonValue] = {
    "rule": "self.all(k, k.startsWith('NCCL_') && !k.endsWith('_PLUGIN'))",
    "message": "keys must be NCCL_ variables such as NCCL_DEBUG, and not NCCL_*_PLUGIN: the operator sets "
    "the torchrun variables (MASTER_ADDR, PET_*, ...) itself, and variables that load code (LD_PRELOAD, "
    "PYTHONPATH, NCCL_NET_PLUGIN) are not allowed",
}


# camelCase as validation and serialization aliases, not `alias=`: type checkers then see the snake_case
# names in __init__, so `LifecycleSpec(time_to_live="4h")` type-checks without the pydantic mypy plugin.
_CAMEL_CASE = AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel)


class _Spec(BaseModel):
    """Base of what users write: unknown fields are typos, and typos are errors naming the field."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=_CAMEL_CASE, extra="forbid")


class _Observed(BaseModel):
    """Base of what the server reports: tolerate fields a newer operator or apiserver adds."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=_CAMEL_CASE, extra="ignore")


@dataclass(frozen=True)
class IgnoredField:
    """A field accepted but without effect: what is said about it, and when it is set.

    Attributes:
        message: the sentence of the API warning, the ``FieldsIgnored`` condition and ``devctl describe``.
        reason: the condition's reason when it is the only one.
        rule: CEL over ``object`` that holds when the field is *not* ignored (the warning policy's expression).
    """

    message: str
    reason: str
    rule: str


IGNORED_FIELDS: dict[str, IgnoredField] = {
    "spec.distributed": IgnoredField(
        message="spec.distributed is ignored because spec.mode is standalone: set mode: distributed to run a "
        "torchrun group, or remove distributed",
        reason="DistributedNeedsDistributedMode",
        rule="object.spec.mode == 'distributed' || !has(object.spec.distributed)",
    ),
    "spec.enableSSH": IgnoredField(
        message="spec.enableSSH is ignored: SSH needs no switch and opens no port (devctl ssh-config NAME, then "
        "ssh NAME.devserver), so remove enableSSH",
        reason="EnableSSHHasNoEffect",
        rule="!has(object.spec.enableSSH)",
    ),
}
"""Fields accepted but without effect (``DevServerSpec.ignored_fields``, the warning policy in ``crds.py``)."""


# --- DevServer ------------------------------------------------------------------------------------------

NPROCS_AUTO = "auto"


def _check_nprocs(value: Any) -> Any:
    # bool is an int to Python; "4" from a form or a CLI flag means 4.
    if isinstance(value, bool):
        raise ValueError('must be a whole number of processes >= 1, or "auto"')
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int):
        if value < 1:
            raise ValueError(
                f'must be greater than or equal to 1, got {value}; or "auto" (one process per GPU of the flavor)'
            )
        return value
    if value == NPROCS_AUTO:
        return value
    raise ValueError(
        f'must be a whole number of processes >= 1, or "auto" (one per GPU of the flavor), not {value!r}'
    )


# An int or "auto": one schema for the server (minimum applies to integers, the pattern to strings).
_NprocsPerNode = Annotated[
    int | str,
    BeforeValidator(_check_nprocs),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "minimum": 1,
            "pattern": "^auto$",
            "x-kubernetes-int-or-string": True,
        }
    ),
]




class DistributedSpec(_Spec):
    """How a distributed DevServer's pods form one torchrun group."""

    world_size: StrictInt = Field(
        default=DEFAULT_WORLD_SIZE,
        ge=1,
        le=MAX_WORLD_SIZE,
        description="Number of pods (torchrun nodes), each a copy of the flavor. Pod i has rank i and the "
        "stable DNS name <name>-<i>.<name>.<namespace>.svc; pod 0 is the rendezvous master.",
    )
    nprocs_per_node: _NprocsPerNode = Field(
        default=1,
        description="Processes torchrun starts on each pod, usually one per GPU of the flavor; auto: the "
        "flavor's GPU count, or 1 for a CPU-only flavor (the operator resolves it and shows it in "
        "status.nprocsPerNode). Exported as PET_NPROC_PER_NODE so that a bare `torchrun train.py` picks it up.",
    )
    backend: Literal["nccl", "gloo"] = Field(
        default="nccl",
        description="torch.distributed backend: nccl for GPU flavors, gloo for CPU-only ones.",
    )
    nccl_settings: dict[_NcclKey, _NcclValue] = Field(
        default_factory=dict,
        max_length=MAX_NCCL_SETTINGS,
        description="Extra NCCL environment variables for every pod, e.g. NCCL_DEBUG: INFO. Keys must be "
        'NCCL_ variables (upper case), not NCCL_*_PLUGIN; values are strings, so quote numbers ("1").',
        json_schema_extra={"x-kubernetes-validations": [_NCCL_KEYS_RULE]},
    )


class MinGpuUtilization(_Spec):
    """A utilisation floor: GPUs idling below it for a whole window stop the server (dstack's utilization_policy)."""

    percent: StrictInt = Field(
        ge=1, le=100, description="Utilisation of the busiest GPU (percent) that counts as use, e.g. 10."
    )
    window: _Duration = Field(
        description="How long every GPU must stay below percent before the server stops, e.g. 1h, 30m."
    )


class CheckpointHook(_Spec):
    """A command run on every rank before any stop the system starts, so training state reaches the home."""

    command: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1,
        description='The command and its arguments, run in each pod\'s working directory, e.g. ["python", '
        '"save.py"] or ["sh", "-c", "kill -USR1 $(cat train.pid); sleep 20"].',
    )
    timeout_seconds: StrictInt = Field(
        default=60,
        ge=1,
        le=MAX_CHECKPOINT_TIMEOUT,
        description="Seconds the command may run on a rank before it is cut off and the stop goes on. The pods' "
        "terminationGracePeriodSeconds is raised to cover it.",
    )


class LifecycleSpec(_Spec):
    """When a DevServer stops by itself (idle) or is deleted (expiry)."""

    idle_timeout: StrictInt | None = Field(
        default=None,
        ge=MIN_IDLE_TIMEOUT,
        le=MAX_IDLE_TIMEOUT,
        description="Seconds without activity after which the server is stopped (its pods removed, its home "
        "volumes and the DevServer kept), when autoShutdown is true. Unset: the flavor's defaultIdleTimeout.",
    )
    auto_shutdown: StrictBool = Field(
        default=True,
        description="Stop the server after idleTimeout of inactivity. false keeps it running until it expires "
        "or is deleted.",
    )
    expiration_time: Annotated[AwareDatetime, BeforeValidator(_no_timestamp_number)] | None = Field(
        default=None,
        description="Absolute time (RFC 3339 with a time zone, e.g. 2025-01-31T18:00:00Z) at which the "
        "DevServer and its volumes are deleted. If timeToLive is also set, the earlier deadline applies.",
    )
    time_to_live: _Duration | None = Field(
        default=None,
        description="Lifetime counted from creation, after which the DevServer and its volumes are deleted: "
        "a number followed by s, m, h or d, e.g. 30m, 4h, 1h30m, 2d. Capped by the flavor's maxTimeToLive.",
    )
    min_gpu_utilization: MinGpuUtilization | None = Field(
        default=None,
        description="Stop (never delete) the server when every GPU of every rank stayed below percent for "
        "window, even with a shell open, e.g. {percent: 10, window: 1h}. Unset: GPU use never stops it.",
    )
    checkpoint: CheckpointHook | None = Field(
        default=None,
        description="A command run on every rank before a stop the system starts: idle stop, expiry, a change "
        "that restarts the pods (flavor, image), and an eviction or a drained or reclaimed spot node (as a "
        "preStop hook). Its outcome goes to an Event and status.lastCheckpoint; a hook that fails or hangs "
        "never blocks the stop.",
    )


_TRACKING_URI_PATTERN = r"^(https?://[^/@\s]+(/\S*)?|file:/\S*|databricks(://[^/@\s]+)?)$"
_TrackingUri = Annotated[
    str,
    _Matches(
        _TRACKING_URI_PATTERN,
        what="MLflow tracking URI",
        advice="write http(s)://host[:port][/path], file:/path or databricks, without a user or password "
        "(credentials go in credentialsSecret), e.g. https://mlflow.example.com",
        max_length=2048,
    ),
]
# W&B refuses these characters in project and entity names.
_WANDB_NAME_PATTERN = r"^[^/\\#?%:\s]+$"
_WandbName = Annotated[
    str,
    _Matches(
        _WANDB_NAME_PATTERN,
        what="W&B project or entity name",
        advice="use letters, digits, '-', '_' and '.', without spaces or any of / \\ # ? % :",
        max_length=128,
    ),
]
_ExperimentName = Annotated[
    str,
    _Matches(r"^\S(.*\S)?$", what="MLflow experiment name", advice="write a name without leading or "
             "trailing spaces, e.g. team-llm", max_length=500),
]


class MlflowTracking(_Spec):
    """Where an MLflow client in the DevServer's pods sends runs."""

    tracking_uri: _TrackingUri = Field(
        description="MLflow tracking server, exported as MLFLOW_TRACKING_URI, e.g. https://mlflow.example.com. "
        "Never with a user or password in it: those go in credentialsSecret.",
    )
    experiment: _ExperimentName | None = Field(
        default=None,
        description="Exported as MLFLOW_EXPERIMENT_NAME. Unset: the DevServer's name.",
    )
    credentials_secret: _Subdomain | None = Field(
        default=None,
        description="Secret in the DevServer's namespace whose keys MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN, become those variables in the pods (by "
        "secretKeyRef: the values never appear in the DevServer). Unset: no credentials.",
    )


class WandbTracking(_Spec):
    """Where a Weights & Biases client in the DevServer's pods sends runs."""

    project: _WandbName = Field(description="W&B project, exported as WANDB_PROJECT.")
    entity: _WandbName | None = Field(
        default=None, description="W&B team or user, exported as WANDB_ENTITY. Unset: the key's default entity."
    )
    api_key_secret: _Subdomain = Field(
        description="Secret in the DevServer's namespace whose key WANDB_API_KEY becomes that variable in the "
        "pods (by secretKeyRef: the key never appears in the DevServer).",
    )


class TrackingSpec(_Spec):
    """Experiment tracking for the DevServer's pods. A tool set here replaces the namespace's default for
    that tool (the devservers-defaults ConfigMap) as a whole; a tool set in neither is not configured."""

    mlflow: MlflowTracking | None = Field(default=None, description="MLflow tracking server and credentials.")
    wandb: WandbTracking | None = Field(default=None, description="Weights & Biases project and API key.")


class DevServerSpec(_Spec):
    """What a researcher asks for: whose server, which size, which image, and how long it may live."""

    owner: _Owner = Field(
        description="Who the server belongs to: the user name the API server knows them by (what `kubectl auth "
        "whoami` shows, e.g. alice@example.com). Only that user may create or change it (the owner policy). "
        "Children are labelled devservers.io/owner with it, sanitised where it is not a label value (see "
        "devservers_sdk.manifests.owner_label_value).",
    )
    flavor: _Subdomain = Field(
        description="Name of the DevServerFlavor (cluster-scoped) that sizes each pod: CPU, memory, GPUs, "
        "node placement, default image and lifetime limits. List them with: kubectl get devserverflavors",
    )
    image: _Image | None = Field(
        default=None,
        description="Container image for the pods. Unset: the flavor's defaultImage.",
    )
    mode: Literal["standalone", "distributed"] = Field(
        default="standalone",
        description="standalone: one pod. distributed: distributed.worldSize pods wired for torchrun.",
    )
    distributed: DistributedSpec | None = Field(
        default=None,
        description="torchrun group settings, used when mode is distributed (defaults apply when it is omitted "
        "there). Beside mode: standalone it is accepted and ignored, with a warning and the FieldsIgnored "
        "condition, so switching mode is a one-word edit.",
    )
    persistent_home_size: _Quantity | None = Field(
        default=None,
        description="Size of the persistent home volume of each pod (a Kubernetes quantity, e.g. 100Gi). It "
        "survives stops and is deleted with the DevServer. Unset: the flavor's defaultHomeSize, else the "
        'operator\'s default (DEVSERVERS_DEFAULT_HOME_SIZE, 10Gi). "0": no persistent home (an empty '
        "directory that is lost at every stop).",
    )
    shared_volume_claim_name: _Subdomain | None = Field(
        default=None,
        description="Name of an existing PersistentVolumeClaim in the same namespace, mounted at /shared "
        "on every pod.",
    )
    enable_ssh: StrictBool | None = Field(
        default=None,
        validation_alias="enableSSH",
        serialization_alias="enableSSH",
        description="Accepted for the seed's examples and ignored, with a warning and the FieldsIgnored "
        "condition: SSH needs no switch and opens no port (devctl ssh-config NAME, then ssh NAME.devserver).",
    )
    lifecycle: LifecycleSpec = Field(
        default_factory=LifecycleSpec,
        description="Idle shutdown and expiry.",
    )
    tracking: TrackingSpec | None = Field(
        default=None,
        description="MLflow and Weights & Biases settings injected into the pods. Unset: the namespace's "
        "defaults (ConfigMap devservers-defaults), if any.",
    )

    def ignored_fields(self) -> dict[str, str]:
        """The fields this spec sets that have no effect, each with a sentence saying why and what to do.

        The operator reports them in the ``FieldsIgnored`` condition, the API server warns about them on
        every write (``IGNORED_FIELDS``' rules, a ValidatingAdmissionPolicy in Warn mode), and ``devctl
        describe`` shows them.
        """
        ignored: dict[str, str] = {}
        if self.mode != "distributed" and self.distributed is not None:
            ignored["spec.distributed"] = IGNORED_FIELDS["spec.distributed"].message
        if self.enable_ssh is not None:
            ignored["spec.enableSSH"] = IGNORED_FIELDS["spec.enableSSH"].message
        return ignored

    @model_validator(mode="after")
    def _default_distributed_section(self) -> DevServerSpec:
        if self.mode == "distributed" and self.distributed is None:
            self.distributed = DistributedSpec()
        return self

    @classmethod
    def from_options(
        cls,
        *,
        owner: str,
        flavor: str,
        image: str | None = None,
        mode: Literal["standalone", "distributed"] = "standalone",
        world_size: int | None = None,
        nprocs_per_node: int | Literal["auto"] | None = None,
        backend: Literal["nccl", "gloo"] | None = None,
        nccl_settings: Mapping[str, str] | None = None,
        home_size: str | None = None,
        shared_volume: str | None = None,
        time_to_live: str | timedelta | None = None,
        idle_timeout: int | str | timedelta | None = None,
        auto_shutdown: bool = True,
        expiration_time: datetime | str | None = None,
        tracking: TrackingSpec | Mapping[str, Any] | None = None,
        name: str = "NAME",
    ) -> DevServerSpec:
        """The spec for the keyword shortcuts every front end offers (``DevServerClient.create`` documents
        each); the one place that turns options into a spec, so devctl, the magics and the widgets refuse
        the same input with the same sentence.

        Durations are written ``30m``, ``4h``, ``1h30m``, ``2d`` (or a ``timedelta``; the idle timeout also
        as seconds); ``expiration_time`` is an aware ``datetime`` or RFC 3339 text, and must be in the
        future. ``world_size``, ``nprocs_per_node``, ``backend`` and ``nccl_settings`` need
        ``mode="distributed"``: given without it they are refused, not dropped and not taken to mean it.

        Args:
            owner: the user the DevServer belongs to (``DevServerClient.owner``).
            name: the DevServer's name, for the messages only.

        Returns:
            The validated spec.

        Raises:
            InvalidSpecError: the first problem; ``.field`` is its CRD path (``spec.lifecycle.idleTimeout``).
        """
        spec = _spec_from_options(cls, None, owner=owner, flavor=flavor, image=image, mode=mode,
                                  world_size=world_size, nprocs_per_node=nprocs_per_node, backend=backend,
                                  nccl_settings=nccl_settings, home_size=home_size, shared_volume=shared_volume,
                                  time_to_live=time_to_live, idle_timeout=idle_timeout, auto_shutdown=auto_shutdown,
                                  expiration_time=expiration_time, tracking=tracking, name=name)
        assert spec is not None
        return spec

    @classmethod
    def option_problems(cls, **options: Any) -> list[InvalidSpecError]:
        """Every problem ``from_options`` would refuse these options for (it stops at the first), in the order
        of the fields: what a form shows beside each of its inputs. Empty when ``from_options`` succeeds."""
        problems: list[InvalidSpecError] = []
        _spec_from_options(cls, problems, **options)
        return problems

    def require_new_deadline(self, *, now: datetime, name: str = "NAME") -> None:
        """Refuse an ``expirationTime`` that has passed: the operator would hold such a new server (phase
        Expired, DeadlineBeforeCreation), so it is said before anything is sent.

        Raises:
            InvalidSpecError: on ``spec.lifecycle.expirationTime``.
        """
        if self.lifecycle.expiration_time is not None:
            _require_future(self.lifecycle.expiration_time, now=now, name=name)


# -- options to a spec (DevServerSpec.from_options) -------------------------------------------------------

# The keyword of each distributed option -> how a sentence names it, in the order they are listed.
_DISTRIBUTED_OPTIONS = {
    "world_size": ("worldSize", "world size"),
    "nprocs_per_node": ("nprocsPerNode", "processes per node"),
    "backend": ("backend", "backend"),
    "nccl_settings": ("ncclSettings", "NCCL settings"),
}


def _option_duration(value: str | timedelta, *, field: str, argument: str, name: str) -> timedelta:
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise InvalidSpecError(f"{argument} must be longer than zero, e.g. 30m, 4h, 1h30m, 2d.",
                                   field=field, kind=DEVSERVER_KIND, name=name)
        return value
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidSpecError(f"Invalid {argument} for DevServer '{name}': {exc}.", field=field,
                               kind=DEVSERVER_KIND, name=name) from exc


def _idle_seconds(value: int | str | timedelta, name: str) -> int:
    field = "spec.lifecycle.idleTimeout"
    if isinstance(value, bool):
        raise InvalidSpecError("idle_timeout must be seconds, a duration such as 30m, or a timedelta.",
                               field=field, kind=DEVSERVER_KIND, name=name)
    if isinstance(value, int):
        seconds = value
    else:
        seconds = int(_option_duration(value, field=field, argument="idle_timeout", name=name).total_seconds())
    if seconds < MIN_IDLE_TIMEOUT:
        least = format_duration(timedelta(seconds=MIN_IDLE_TIMEOUT))
        raise InvalidSpecError(f"idle_timeout for DevServer '{name}' is {seconds}s; it must be at least {least} "
                               f"({MIN_IDLE_TIMEOUT} seconds).", field=field, kind=DEVSERVER_KIND, name=name)
    return seconds


def _require_future(moment: datetime, *, now: datetime, name: str) -> None:
    if moment <= now:
        raise InvalidSpecError(f"expirationTime {rfc3339(moment)} is in the past; use timeToLive or a future "
                               f"time (DevServer '{name}').", field="spec.lifecycle.expirationTime",
                               kind=DEVSERVER_KIND, name=name)


def _expiration(value: datetime | str, name: str) -> datetime:
    moment: datetime | None = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidSpecError(f"expiration_time for DevServer '{name}' must be an RFC 3339 time with a time "
                               f"zone, e.g. 2025-01-31T18:00:00Z (got {value!r}).",
                               field="spec.lifecycle.expirationTime", kind=DEVSERVER_KIND, name=name)
    _require_future(moment, now=datetime.now(UTC), name=name)
    return moment


def _distributed_without_mode(given: dict[str, Any], *, flavor: str, name: str) -> InvalidSpecError:
    labels = [_DISTRIBUTED_OPTIONS[key][1] for key in _DISTRIBUTED_OPTIONS if key in given]
    listed = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"
    fields = ", ".join(f"spec.distributed.{_DISTRIBUTED_OPTIONS[key][0]}" for key in _DISTRIBUTED_OPTIONS
                       if key in given)
    one = len(labels) == 1
    world_size, nprocs = given.get("world_size"), given.get("nprocs_per_node")
    # The step repeats the sizes given, so it is the command to run; the rest the sentence names.
    step = NextStep("create", name, {
        "flavor": flavor or "...", "distributed": True,
        **({"world-size": world_size} if isinstance(world_size, int) and not isinstance(world_size, bool) else {}),
        **({"nprocs-per-node": nprocs} if isinstance(nprocs, int | str) and not isinstance(nprocs, bool) else {}),
    })
    return InvalidSpecError(
        f"DevServer '{name}' is standalone, but {listed} ({fields}) only appl{'ies' if one else 'y'} to a "
        f"distributed DevServer: make it distributed, or leave {'it' if one else 'them'} out.",
        field="spec.mode", kind=DEVSERVER_KIND, name=name, next_step=step, lead="To make it distributed")


def _validation_problems(exc: ValidationError, name: str) -> list[tuple[str, str]]:
    """``(field, message)`` of each error of a spec's validation, the field in CRD spelling under ``spec``."""
    problems = []
    for problem in exc.errors():
        # The options are given in camelCase, so the location is already in CRD spelling; turning it into
        # camelCase again would mangle map keys (ncclSettings.LD_PRELOAD would become ncclSettings.LDPRELOAD).
        path = ".".join(["spec", *(str(part) for part in problem.get("loc", ())
                                   if not isinstance(part, int) and part != "[key]")])
        message = str(problem.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append((path, message))
    return problems


def _spec_from_options(cls: type[DevServerSpec], problems: list[InvalidSpecError] | None, *, owner: str,
                       flavor: str, image: str | None = None, mode: str = "standalone",
                       world_size: int | None = None, nprocs_per_node: int | str | None = None,
                       backend: str | None = None, nccl_settings: Mapping[str, str] | None = None,
                       home_size: str | None = None, shared_volume: str | None = None,
                       time_to_live: str | timedelta | None = None,
                       idle_timeout: int | str | timedelta | None = None, auto_shutdown: bool = True,
                       expiration_time: datetime | str | None = None,
                       tracking: TrackingSpec | Mapping[str, Any] | None = None,
                       name: str = "NAME") -> DevServerSpec | None:
    """``from_options`` (``problems`` None: raise the first problem) and ``option_problems`` (collect them all)."""

    def attempt(check: Callable[[], Any]) -> Any:
        """``check()``, or None once its problem is collected (raised when not collecting)."""
        if problems is None:
            return check()
        try:
            return check()
        except InvalidSpecError as exc:
            problems.append(exc)
            return None

    lifecycle: dict[str, Any] = {"autoShutdown": auto_shutdown}
    if time_to_live is not None:
        ttl = attempt(lambda: _option_duration(time_to_live, field="spec.lifecycle.timeToLive",
                                               argument="time_to_live", name=name))
        if ttl is not None:
            lifecycle["timeToLive"] = time_to_live if isinstance(time_to_live, str) else format_duration(ttl)
    if idle_timeout is not None:
        seconds = attempt(lambda: _idle_seconds(idle_timeout, name))
        if seconds is not None:
            lifecycle["idleTimeout"] = seconds
    if expiration_time is not None:
        moment = attempt(lambda: _expiration(expiration_time, name))
        if moment is not None:
            lifecycle["expirationTime"] = rfc3339(moment)
    given = {key: value for key, value in (("world_size", world_size), ("nprocs_per_node", nprocs_per_node),
                                           ("backend", backend), ("nccl_settings", nccl_settings))
             if value is not None}
    if given and mode != "distributed":
        error = _distributed_without_mode(given, flavor=flavor, name=name)
        if problems is None:
            raise error
        problems.append(error)
        given = {}
    if isinstance(tracking, TrackingSpec):
        tracking = tracking.model_dump(mode="json", by_alias=True, exclude_none=True)
    distributed = {_DISTRIBUTED_OPTIONS[key][0]: value for key, value in given.items()}
    spec: dict[str, Any] = {"owner": owner, "flavor": flavor, "mode": mode, "lifecycle": lifecycle}
    optional = {"image": image, "persistentHomeSize": home_size, "sharedVolumeClaimName": shared_volume,
                "distributed": distributed or None, "tracking": dict(tracking) if tracking else None}
    spec.update({key: value for key, value in optional.items() if value is not None})
    try:
        return cls.model_validate(spec)
    except ValidationError as exc:
        found = _validation_problems(exc, name)
        if problems is None:
            (path, message), more = found[0], len(found) - 1
            extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
            raise InvalidSpecError(f"DevServer '{name}' is invalid: {path}: {message}{extra}.", field=path,
                                   kind=DEVSERVER_KIND, name=name) from exc
        problems.extend(InvalidSpecError(f"DevServer '{name}' is invalid: {path}: {message}.", field=path,
                                         kind=DEVSERVER_KIND, name=name) for path, message in found)
        return None


class Condition(_Observed):
    """One observation about a DevServer, in the shape of Kubernetes' metav1.Condition."""

    type: str = Field(description="What is observed, e.g. Ready, Expiring, Stopped.")
    status: Literal["True", "False", "Unknown"] = Field(description="Whether it holds.")
    reason: str = Field(default="", description="Why, as one CamelCase word, e.g. PodsReady, IdleTimeout.")
    message: str = Field(default="", description="Why, as a sentence for people.")
    last_transition_time: datetime | None = Field(default=None, description="When status last changed.")
    observed_generation: int | None = Field(
        default=None,
        description="The metadata.generation this was computed from.",
    )


class Interruption(_Observed):
    """The last time the system took a server's pods away (an eviction, a drained or reclaimed node)."""

    time: datetime = Field(description="When the operator saw the interruption.")
    reason: str = Field(
        description="Evicted (the eviction API: kubectl drain, a spot termination handler, Karpenter), "
        "NodeTainted (a NoExecute taint), Preempted, TerminatedByNode or NodeLost.",
    )
    message: str = Field(default="", description="What happened, for people.")
    pods: list[str] = Field(default_factory=list, description="The pods that were taken, in rank order.")
    nodes: list[str] = Field(default_factory=list, description="The nodes they ran on.")
    pod_uids: list[str] = Field(default_factory=list, description="Their uids: each pod is counted once.")


class GpuUse(_Observed):
    """One GPU of one rank, as ``nvidia-smi`` in the pod last reported it."""

    rank: int = Field(description="The pod's rank.")
    index: int = Field(description="The GPU's index within the pod, as nvidia-smi numbers it.")
    utilization: float = Field(description="Utilisation in percent.")
    memory_used_mib: float | None = Field(default=None, description="Memory in use, MiB.")
    memory_total_mib: float | None = Field(default=None, description="Memory of the GPU, MiB.")
    observed_at: datetime = Field(description="When it was read.")


class CostStatus(_Observed):
    """What the server has cost so far: closed stretches of running time, plus the stretch running now.

    The total at a moment ``t`` is ``accumulated + perHour * runningPods * (t - since)``: the operator writes
    it only when a stretch opens or closes (pods start or stop, the price changes), not every minute.
    """

    per_hour: str = Field(description="The flavor's costPerHour (per pod) counted in the open stretch.")
    currency: str | None = Field(default=None, description="The flavor's currency, e.g. USD.")
    accumulated: str = Field(default="0", description="Cost of the closed stretches (a decimal).")
    pod_seconds: int = Field(default=0, description="Pod-seconds of the closed stretches.")
    running_pods: int = Field(default=0, description="Pods running in the open stretch (0: none open).")
    since: datetime | None = Field(default=None, description="When the open stretch began.")


class RankCheckpoint(_Observed):
    """How the checkpoint hook went on one rank."""

    rank: int = Field(description="The rank (pod ordinal).")
    exit_code: int | None = Field(default=None, description="Its exit code; none when it could not run or timed out.")
    timed_out: bool = Field(default=False, description="Cut off at timeoutSeconds.")
    duration_seconds: float = Field(default=0, description="How long it ran.")
    output_tail: str = Field(default="", description="The last lines of its output (stdout and stderr).")


class CheckpointOutcome(_Observed):
    """The last run of ``spec.lifecycle.checkpoint`` the operator started, before a stop."""

    trigger: str = Field(description="Which stop it ran before: IdleStop, Expiry or Restart.")
    time: datetime = Field(description="When it started.")
    succeeded: bool = Field(description="Every rank exited 0 within the timeout.")
    duration_seconds: float = Field(description="How long the slowest rank took.")
    ranks: list[RankCheckpoint] = Field(default_factory=list, description="Each rank's outcome.")


class DevServerStatus(_Observed):
    """What the operator observed; written only through the status subresource."""

    phase: (
        Literal["Pending", "Starting", "Running", "Interrupted", "Stopping", "Stopped", "Failed", "Expired",
                "Terminating"]
        | None
    ) = Field(
        default=None,
        description="Summary of the pods' state. Interrupted: the system took pods away (eviction, a "
        "drained or reclaimed node) and they are coming back on other nodes with their homes. Expired: its "
        "expirationTime was before its creation; nothing runs until the date moves to the future.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Detailed observations, one per type (Ready, Expiring, Stopped, ...).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the status reflects."
    )
    ready_replicas: int | None = Field(default=None, description="Pods that are ready.")
    replicas: int | None = Field(default=None, description="Pods that should be running.")
    pods: list[str] = Field(default_factory=list, description="Pod names, in rank order.")
    expires_at: datetime | None = Field(
        default=None,
        description="When the DevServer will be deleted (the earlier of expirationTime and creation + "
        "timeToLive).",
    )
    last_activity_time: datetime | None = Field(default=None, description="When activity was last seen.")
    last_activity_source: str | None = Field(
        default=None,
        description="Which signal last counted as activity (e.g. a shell session or a kernel).",
    )
    stopped_reason: str | None = Field(
        default=None, description="Why the server is stopped, e.g. IdleTimeout."
    )
    stopped_at: datetime | None = Field(default=None, description="When it was stopped.")
    home_size: str | None = Field(
        default=None,
        description='The persistent home volume each pod has, as the operator built it (e.g. 10Gi); "0": none, '
        "so files in the home are lost at every stop. Unset: not reported yet.",
    )
    message: str | None = Field(default=None, description="Human-readable summary of the current state.")
    interruptions: int | None = Field(
        default=None, description="How many times the system took the server's pods away (see lastInterruption)."
    )
    last_interruption: Interruption | None = Field(default=None, description="The latest interruption.")
    nprocs_per_node: int | None = Field(
        default=None,
        description="Processes per pod torchrun starts (spec.distributed.nprocsPerNode, auto resolved), as "
        "PET_NPROC_PER_NODE says.",
    )
    gpus: list[GpuUse] | None = Field(
        default=None,
        description="Per rank and GPU: utilisation and memory as nvidia-smi last read them (unset: no reading).",
    )
    gpu_low_since: datetime | None = Field(
        default=None,
        description="Since when every GPU stayed below lifecycle.minGpuUtilization.percent (unset: it did not).",
    )
    cost: CostStatus | None = Field(default=None, description="Cost so far, at the flavor's costPerHour.")
    last_checkpoint: CheckpointOutcome | None = Field(
        default=None, description="How the checkpoint hook went the last time the operator ran it before a stop."
    )

    def condition(self, type: str) -> Condition | None:
        """The condition of that type, or None if the operator has not reported one."""
        return next((condition for condition in self.conditions if condition.type == type), None)


class ObjectMeta(_Observed):
    """The part of Kubernetes object metadata the SDK reads; the rest is ignored, not lost on the server."""

    name: str
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    def to_manifest(self) -> dict[str, Any]:
        """What a client sends: the server owns uid, resourceVersion, generation and the timestamps."""
        manifest: dict[str, Any] = {"name": self.name}
        if self.namespace is not None:
            manifest["namespace"] = self.namespace
        if self.labels:
            manifest["labels"] = dict(self.labels)
        if self.annotations:
            manifest["annotations"] = dict(self.annotations)
        return manifest


class _Resource(BaseModel):
    """Shared envelope handling: apiVersion and kind are checked, not stored (the class says them)."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=_CAMEL_CASE, extra="forbid")
    _kind: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _check_type_meta(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        api_version, kind = data.pop("apiVersion", GROUP_VERSION), data.pop("kind", cls._kind)
        if kind != cls._kind or api_version != GROUP_VERSION:
            raise ValueError(
                f"expected a {cls._kind} manifest (apiVersion: {GROUP_VERSION}, kind: {cls._kind}), "
                f"got apiVersion: {api_version}, kind: {kind}"
            )
        return data


class DevServer(_Resource):
    """A personal PyTorch dev server: one pod, or a torchrun group of pods."""

    _kind: ClassVar[str] = DEVSERVER_KIND

    metadata: ObjectMeta
    spec: DevServerSpec
    status: DevServerStatus = Field(default_factory=DevServerStatus)

    @field_validator("metadata")
    @classmethod
    def _name_fits_children(cls, metadata: ObjectMeta) -> ObjectMeta:
        validate_name(metadata.name)
        return metadata

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> DevServer:
        """Read a manifest or an object from the API server (status included, unknown metadata ignored).

        Raises:
            pydantic.ValidationError: a rule is broken; ``errors()`` locates each one (e.g.
                ``("spec", "distributed", "worldSize")``). It is a ``ValueError``.
        """
        return cls.model_validate(manifest)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest to create or replace this DevServer with: no status, no server-owned metadata."""
        return {
            "apiVersion": GROUP_VERSION,
            "kind": DEVSERVER_KIND,
            "metadata": self.metadata.to_manifest(),
            "spec": self.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        }

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace


# --- DevServerFlavor ------------------------------------------------------------------------------------


class Toleration(_Spec):
    """A Kubernetes toleration, so a flavor's pods may run on tainted (e.g. GPU) nodes."""

    key: _TolerationKey | None = Field(
        default=None, description="Taint key, e.g. nvidia.com/gpu. Empty with operator Exists: every taint."
    )
    operator: Literal["Exists", "Equal"] = Field(
        default="Equal", description="Equal: the taint's value must equal value. Exists: any value."
    )
    value: _LabelValue | None = Field(default=None, description="Taint value to match when operator is Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match. Empty: every effect."
    )
    toleration_seconds: StrictInt | None = Field(
        default=None,
        description="With effect NoExecute: how long the pod stays after the taint appears. Empty: forever.",
    )

    @model_validator(mode="after")
    def _kubernetes_toleration_rules(self) -> Toleration:
        # apiserver pod validation rules; checked here so a bad flavor fails on apply, not on every pod.
        if self.operator == "Exists" and self.value:
            raise ValueError(f'toleration value "{self.value}" must be empty when operator is Exists')
        if not self.key and self.operator != "Exists":
            raise ValueError("a toleration without a key must use operator: Exists (it matches every taint)")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds only applies to effect: NoExecute")
        return self


class FlavorResources(_Spec):
    """Requests and limits for each pod, as in a container's resources (quantities such as 4, 500m, 16Gi)."""

    requests: dict[_ResourceName, _Quantity] = Field(
        default_factory=dict,
        description="Resources reserved for each pod, e.g. cpu: 4, memory: 16Gi.",
    )
    limits: dict[_ResourceName, _Quantity] = Field(
        default_factory=dict,
        description="Most each pod may use, e.g. memory: 16Gi, nvidia.com/gpu: 1. GPUs go here.",
    )

    @model_validator(mode="after")
    def _requests_within_limits(self) -> FlavorResources:
        for resource, request in self.requests.items():
            limit = self.limits.get(resource)
            if limit is not None and parse_quantity(request) > parse_quantity(limit):
                raise ValueError(
                    f"requests.{resource} ({request}) is more than limits.{resource} ({limit}); "
                    "Kubernetes refuses pods that request more than their limit"
                )
        for section, values in (("requests", self.requests), ("limits", self.limits)):
            gpus = values.get(GPU_RESOURCE)
            if gpus is not None and not _whole(parse_quantity(gpus)):
                raise ValueError(f"{section}.{GPU_RESOURCE} ({gpus}) must be a whole number of GPUs")
            for resource, amount in values.items():
                if _is_extended_resource(resource) and not _whole(parse_quantity(amount)):
                    raise ValueError(f"{section}.{resource} ({amount}) must be a whole number: extended "
                                     "resources are counted in units")
        for resource, request in self.requests.items():
            limit = self.limits.get(resource)
            if _is_extended_resource(resource) and limit is not None and parse_quantity(request) != parse_quantity(limit):
                raise ValueError(
                    f"requests.{resource} ({request}) differs from limits.{resource} ({limit}); Kubernetes does "
                    "not overcommit extended resources: set the same number, or only the limit"
                )
        return self


PRICE_PATTERN = r"^[0-9]{1,9}(\.[0-9]{1,6})?( [A-Z]{3})?$"


def _price_text(value: Any) -> Any:
    # YAML reads `costPerHour: 2.5` as a float; the API stores the text, so keep what was meant.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format(Decimal(str(value)), "f")
    return value


_Price = Annotated[
    str,
    BeforeValidator(_price_text),
    _Matches(
        PRICE_PATTERN,
        what="price",
        advice='write a decimal with up to 6 decimals and an optional 3-letter currency code, e.g. "2.50" '
        'or "32.77 USD"',
    ),
]


class DevServerFlavorSpec(_Spec):
    """A size on the menu: what each pod gets, where it runs, and the lifetime rules that come with it."""

    resources: FlavorResources = Field(
        default_factory=FlavorResources,
        description="CPU, memory and GPUs for each pod. Empty: no requests or limits (best effort).",
    )
    node_selector: dict[_LabelKey, _LabelValue] = Field(
        default_factory=dict,
        description='Node labels the pods must run on, e.g. nvidia.com/gpu.present: "true".',
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        description="Taints the pods tolerate, e.g. nvidia.com/gpu:NoSchedule on GPU nodes.",
    )
    capacity_type: Literal["on-demand", "spot"] | None = Field(
        default=None,
        description="on-demand (also when unset), or spot: cheaper capacity the cloud may reclaim with two minutes' notice. The "
        "operator adds the node selector and toleration its platform uses for spot (EKS managed node groups "
        "or Karpenter, the operator setting DEVSERVERS_SPOT_PLATFORM), unless capacitySelector names others.",
    )
    capacity_selector: dict[_LabelKey, _LabelValue] | None = Field(
        default=None,
        description="Node labels that select this flavor's capacity type, used instead of the operator's "
        'platform mapping, e.g. node.example.com/lifecycle: "spot". Unset: the mapping (nothing for on-demand).',
    )
    description: str | None = Field(
        default=None, description="One line for the menu, e.g. '1 GPU, 8 CPU, 32Gi'."
    )
    default_image: _Image | None = Field(
        default=None,
        description="Image for DevServers of this flavor that do not name one.",
    )
    max_time_to_live: _Duration | None = Field(
        default=None,
        description="Longest lifetime a DevServer of this flavor may ask for (e.g. 24h); also its lifetime when "
        "it sets none. Unset: no limit.",
    )
    default_idle_timeout: StrictInt | None = Field(
        default=None,
        ge=MIN_IDLE_TIMEOUT,
        le=MAX_IDLE_TIMEOUT,
        description="Seconds of inactivity before a DevServer of this flavor stops, unless it sets "
        "lifecycle.idleTimeout. Unset: idle servers are not stopped.",
    )
    default_home_size: _PositiveQuantity | None = Field(
        default=None,
        description="Persistent home volume per pod for DevServers of this flavor that set no "
        "persistentHomeSize, e.g. 100Gi. Unset: the operator's default (DEVSERVERS_DEFAULT_HOME_SIZE).",
    )
    cost_per_hour: _Price | None = Field(
        default=None,
        description="What one pod of this flavor costs per hour of running, a decimal with an optional "
        'currency code, e.g. "2.50" or "32.77 USD". Stopped time is free. Unset: no cost is counted.',
    )


class DevServerFlavor(_Resource):
    """A cluster-wide DevServer size chosen by name in ``DevServer.spec.flavor``."""

    _kind: ClassVar[str] = FLAVOR_KIND

    metadata: ObjectMeta
    spec: DevServerFlavorSpec = Field(default_factory=DevServerFlavorSpec)

    @field_validator("metadata")
    @classmethod
    def _name_is_a_subdomain(cls, metadata: ObjectMeta) -> ObjectMeta:
        # The API server refuses any other flavor name; say so before the round trip.
        if len(metadata.name) > 253 or not re.fullmatch(_SUBDOMAIN_PATTERN, metadata.name):
            raise ValueError(
                f'DevServerFlavor name "{metadata.name}" is invalid: use lowercase letters, digits, "-" and ".", '
                'starting and ending with a letter or digit, e.g. "gpu-small"'
            )
        return metadata

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> DevServerFlavor:
        """Read a flavor manifest or API object.

        Raises:
            pydantic.ValidationError: a rule is broken; ``errors()`` locates each one.
        """
        return cls.model_validate(manifest)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest to create or replace this flavor with (cluster-scoped: no namespace)."""
        metadata = self.metadata.to_manifest()
        metadata.pop("namespace", None)
        return {
            "apiVersion": GROUP_VERSION,
            "kind": FLAVOR_KIND,
            "metadata": metadata,
            "spec": self.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        }

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def cpu(self) -> str | None:
        """CPU per pod as written (requests, else limits), e.g. "4" or "500m"; None if unset."""
        return self._resource("cpu")

    @property
    def memory(self) -> str | None:
        """Memory per pod as written (requests, else limits), e.g. "16Gi"; None if unset."""
        return self._resource("memory")

    @property
    def capacity_type(self) -> str:
        """``spot`` or ``on-demand`` (what an unset ``capacityType`` means)."""
        return self.spec.capacity_type or "on-demand"

    @property
    def gpus(self) -> int:
        """NVIDIA GPUs per pod (limits, else requests); 0 for a CPU flavor."""
        count = self.spec.resources.limits.get(GPU_RESOURCE) or self.spec.resources.requests.get(GPU_RESOURCE)
        return int(parse_quantity(count)) if count is not None else 0

    def _resource(self, name: str) -> str | None:
        return self.spec.resources.requests.get(name) or self.spec.resources.limits.get(name)
