"""The models: every rule accepts good values and refuses bad ones naming the field; manifests round-trip."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from devservers_sdk.contract import MIN_IDLE_TIMEOUT
from devservers_sdk.errors import InvalidSpecError
from devservers_sdk.models import (
    API_GROUP,
    API_VERSION,
    MAX_NAME_LENGTH,
    MAX_WORLD_SIZE,
    DevServer,
    DevServerFlavor,
    DevServerSpec,
    DevServerStatus,
    DistributedSpec,
    LifecycleSpec,
    ObjectMeta,
    validate_name,
)
from devservers_sdk.quantities import QUANTITY_PATTERN, format_bytes, parse_quantity


def manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "devservers.io/v1",
        "kind": "DevServer",
        "metadata": {"name": "alice-dev", "namespace": "alice"},
        "spec": {"owner": "alice", "flavor": "cpu-small", **spec},
    }


def refusal(data: dict[str, Any], cls: type[DevServer] | type[DevServerFlavor] = DevServer) -> dict[str, Any]:
    """The first error of a manifest that must not validate."""
    with pytest.raises(ValidationError) as caught:
        cls.from_manifest(data)
    return dict(caught.value.errors()[0])


# --- names ----------------------------------------------------------------------------------------------


def test_name_limit_leaves_room_for_every_child_name() -> None:
    name = "a" * MAX_NAME_LENGTH
    last_ordinal = MAX_WORLD_SIZE - 1
    children = {
        "pod": f"{name}-{last_ordinal}",
        "controller-revision-hash label": f"{name}-{'9' * 10}",  # fnv32 in decimal: at most 10 digits
        "home volume claim": f"home-{name}-{last_ordinal}",
        "headless service": name,
    }
    assert max(len(child) for child in children.values()) == 63, children
    assert MAX_NAME_LENGTH == 52  # the revision-hash label is the tightest: 63 - len("-") - 10


def test_validate_name_accepts_the_longest_allowed() -> None:
    assert validate_name("a" * MAX_NAME_LENGTH) == "a" * MAX_NAME_LENGTH
    assert validate_name("alice-dev-2") == "alice-dev-2"


def test_validate_name_refuses_too_long_naming_limit_and_reason() -> None:
    name = "a" * (MAX_NAME_LENGTH + 1)
    with pytest.raises(ValueError) as caught:
        validate_name(name)
    assert str(caught.value) == (
        f'DevServer name "{name}" is 53 characters; the limit is 52 so that pod and volume names fit '
        "Kubernetes' 63-character limit"
    )


@pytest.mark.parametrize("name", ["Alice", "1dev", "dev-", "-dev", "dev_x", "dev.x", "dév"])
def test_validate_name_refuses_non_dns1035(name: str) -> None:
    with pytest.raises(ValueError, match='use lowercase letters, digits and "-", starting with a letter'):
        validate_name(name)


def test_validate_name_refuses_empty() -> None:
    with pytest.raises(ValueError, match="empty"):
        validate_name("")


def test_devserver_name_is_checked_when_reading_a_manifest() -> None:
    data = manifest()
    data["metadata"]["name"] = "x" * 60
    error = refusal(data)
    assert error["loc"] == ("metadata",)
    assert "the limit is 52" in error["msg"]


# --- DevServerSpec rules --------------------------------------------------------------------------------

BAD_SPECS: list[tuple[dict[str, Any], tuple[str | int, ...], str]] = [
    ({"owner": ""}, ("spec", "owner"), "not a valid owner"),
    ({"owner": " alice@example.com"}, ("spec", "owner"), "no spaces at either end"),
    ({"owner": "a" * 257}, ("spec", "owner"), "1 to 256 characters"),
    ({"flavor": "GPU_Small"}, ("spec", "flavor"), 'e.g. "gpu-small"'),
    ({"image": "pytorch/pytorch latest"}, ("spec", "image"), "without spaces"),
    ({"image": ""}, ("spec", "image"), "without spaces"),
    ({"mode": "cluster"}, ("spec", "mode"), "'standalone' or 'distributed'"),
    (
        {"mode": "distributed", "distributed": {"worldSize": 0}},
        ("spec", "distributed", "worldSize"),
        "greater than or equal to 1",
    ),
    (
        {"mode": "distributed", "distributed": {"worldSize": -2}},
        ("spec", "distributed", "worldSize"),
        "greater than or equal to 1",
    ),
    (
        {"mode": "distributed", "distributed": {"worldSize": MAX_WORLD_SIZE + 1}},
        ("spec", "distributed", "worldSize"),
        "less than or equal to 1000",
    ),
    (
        {"mode": "distributed", "distributed": {"worldSize": "2"}},
        ("spec", "distributed", "worldSize"),
        "integer",
    ),
    (
        {"mode": "distributed", "distributed": {"worldSize": True}},
        ("spec", "distributed", "worldSize"),
        "integer",
    ),
    (
        {"mode": "distributed", "distributed": {"nprocsPerNode": 0}},
        ("spec", "distributed", "nprocsPerNode"),
        "greater than or equal to 1",
    ),
    (
        {"mode": "distributed", "distributed": {"backend": "mpi"}},
        ("spec", "distributed", "backend"),
        "'nccl'",
    ),
    (
        {"mode": "distributed", "distributed": {"ncclSettings": {"nccl_debug": "INFO"}}},
        ("spec", "distributed", "ncclSettings", "nccl_debug", "[key]"),
        "not an NCCL setting",
    ),
    (
        {"mode": "distributed", "distributed": {"ncclSettings": {"OMP_NUM_THREADS": "4"}}},
        ("spec", "distributed", "ncclSettings", "OMP_NUM_THREADS", "[key]"),
        "starting with NCCL_",
    ),
    (
        {"mode": "distributed", "distributed": {"ncclSettings": {"NCCL_IB_DISABLE": 1}}},
        ("spec", "distributed", "ncclSettings", "NCCL_IB_DISABLE"),
        "valid string",
    ),
    ({"mode": "distributed", "distributed": {"worldsize": 4}}, ("spec", "distributed", "worldsize"), "Extra"),
    ({"persistentHomeSize": "100GB"}, ("spec", "persistentHomeSize"), "e.g. 100Gi"),
    ({"persistentHomeSize": "-1Gi"}, ("spec", "persistentHomeSize"), "is negative"),
    ({"sharedVolumeClaimName": "Team Data"}, ("spec", "sharedVolumeClaimName"), "lowercase"),
    ({"lifecycle": {"idleTimeout": 59}}, ("spec", "lifecycle", "idleTimeout"), "greater than or equal to 60"),
    ({"lifecycle": {"idleTimeout": "1h"}}, ("spec", "lifecycle", "idleTimeout"), "integer"),
    ({"lifecycle": {"autoShutdown": "yes"}}, ("spec", "lifecycle", "autoShutdown"), "boolean"),
    ({"lifecycle": {"timeToLive": ""}}, ("spec", "lifecycle", "timeToLive"), "e.g. 30m, 4h, 1h30m, 2d"),
    (
        {"lifecycle": {"timeToLive": "4 hours"}},
        ("spec", "lifecycle", "timeToLive"),
        'invalid duration "4 hours"',
    ),
    ({"lifecycle": {"timeToLive": "0s"}}, ("spec", "lifecycle", "timeToLive"), "longer than zero"),
    ({"lifecycle": {"timeToLive": 3600}}, ("spec", "lifecycle", "timeToLive"), "valid string"),
    (
        {"lifecycle": {"expirationTime": "2030-01-01T00:00:00"}},
        ("spec", "lifecycle", "expirationTime"),
        "timezone",
    ),
    ({"lifecycle": {"ttl": "4h"}}, ("spec", "lifecycle", "ttl"), "Extra"),
    ({"flavour": "cpu-small"}, ("spec", "flavour"), "Extra"),
]


@pytest.mark.parametrize(("spec", "loc", "message"), BAD_SPECS)
def test_bad_spec_refused_naming_the_field(spec: dict[str, Any], loc: tuple[Any, ...], message: str) -> None:
    error = refusal(manifest(**spec))
    assert error["loc"] == loc
    assert message in error["msg"]


@pytest.mark.parametrize("field", ["owner", "flavor"])
def test_required_fields(field: str) -> None:
    data = manifest()
    del data["spec"][field]
    error = refusal(data)
    assert error["loc"] == ("spec", field)
    assert error["type"] == "missing"


def test_minimal_spec_gets_defaults() -> None:
    spec = DevServer.from_manifest(manifest()).spec
    assert spec.mode == "standalone"
    assert spec.distributed is None
    assert spec.image is None
    assert spec.lifecycle == LifecycleSpec(auto_shutdown=True)
    assert spec.lifecycle.idle_timeout is None and spec.lifecycle.time_to_live is None


def test_distributed_mode_defaults_the_distributed_section() -> None:
    spec = DevServer.from_manifest(manifest(mode="distributed")).spec
    assert spec.distributed == DistributedSpec(
        world_size=2, nprocs_per_node=1, backend="nccl", nccl_settings={}
    )


def test_good_values_accepted() -> None:
    server = DevServer.from_manifest(
        manifest(
            owner="alice.smith_2",
            flavor="gpu.small-2",
            image="registry.example.com/ml/torch:2.5@sha256:abc",
            mode="distributed",
            distributed={
                "worldSize": MAX_WORLD_SIZE,
                "nprocsPerNode": 8,
                "backend": "gloo",
                "ncclSettings": {"NCCL_DEBUG": "INFO", "NCCL_SOCKET_IFNAME": "eth0", "NCCL_P2P_LEVEL": "NVL"},
            },
            persistentHomeSize=1073741824,
            sharedVolumeClaimName="team-data",
            lifecycle={
                "idleTimeout": 60,
                "autoShutdown": False,
                "expirationTime": "2030-01-01T12:00:00+02:00",
                "timeToLive": "1h30m",
            },
        )
    )
    assert server.spec.persistent_home_size == "1073741824"  # YAML ints become the string form
    assert server.spec.lifecycle.time_to_live == "1h30m"  # kept as written, not normalised
    assert server.spec.lifecycle.expiration_time == datetime(2030, 1, 1, 10, tzinfo=UTC)


def test_python_callers_may_use_attribute_names() -> None:
    spec = DevServerSpec(
        owner="alice",
        flavor="cpu-small",
        persistent_home_size="10Gi",
        lifecycle=LifecycleSpec(time_to_live="4h", idle_timeout=600),
    )
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["persistentHomeSize"] == "10Gi"
    assert dumped["lifecycle"] == {"idleTimeout": 600, "autoShutdown": True, "timeToLive": "4h"}


# --- manifests ------------------------------------------------------------------------------------------

FULL_MANIFEST: dict[str, Any] = {
    "apiVersion": "devservers.io/v1",
    "kind": "DevServer",
    "metadata": {
        "name": "alice-dev",
        "namespace": "alice",
        "labels": {"team": "vision"},
        "annotations": {"note": "for the paper"},
    },
    "spec": {
        "owner": "alice",
        "flavor": "gpu-small",
        "image": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        "mode": "distributed",
        "distributed": {
            "worldSize": 4,
            "nprocsPerNode": 1,
            "backend": "nccl",
            "ncclSettings": {"NCCL_DEBUG": "WARN"},
        },
        "persistentHomeSize": "100Gi",
        "sharedVolumeClaimName": "team-data",
        "lifecycle": {
            "idleTimeout": 3600,
            "autoShutdown": True,
            "expirationTime": "2030-01-01T00:00:00Z",
            "timeToLive": "1d12h",
        },
    },
}


def test_manifest_round_trip() -> None:
    assert DevServer.from_manifest(copy.deepcopy(FULL_MANIFEST)).to_manifest() == FULL_MANIFEST


def test_round_trip_of_server_object_drops_what_the_server_owns() -> None:
    data = copy.deepcopy(FULL_MANIFEST)
    data["metadata"].update(
        uid="0f9c", resourceVersion="42", generation=3, creationTimestamp="2025-01-01T00:00:00Z",
        finalizers=["devservers.io/cleanup"], managedFields=[{"manager": "kubectl"}],
    )  # fmt: skip
    data["status"] = {"phase": "Running", "readyReplicas": 4}
    server = DevServer.from_manifest(data)
    assert server.metadata.generation == 3
    assert server.metadata.creation_timestamp == datetime(2025, 1, 1, tzinfo=UTC)
    assert server.status.phase == "Running"
    assert server.to_manifest() == FULL_MANIFEST


def test_to_manifest_omits_unset_fields() -> None:
    data = manifest()
    assert DevServer.from_manifest(data).to_manifest()["spec"] == {
        "owner": "alice",
        "flavor": "cpu-small",
        "mode": "standalone",
        "lifecycle": {"autoShutdown": True},
    }


def test_name_and_namespace_properties() -> None:
    server = DevServer(
        metadata=ObjectMeta(name="bob-dev", namespace="bob"),
        spec=DevServerSpec(owner="bob", flavor="cpu-small"),
    )
    assert (server.name, server.namespace) == ("bob-dev", "bob")
    assert server.status == DevServerStatus()
    assert server.to_manifest()["apiVersion"] == f"{API_GROUP}/{API_VERSION}"


@pytest.mark.parametrize(
    ("key", "value"), [("kind", "Pod"), ("kind", "DevServerFlavor"), ("apiVersion", "devservers.io/v2")]
)
def test_wrong_type_meta_refused(key: str, value: str) -> None:
    data = manifest()
    data[key] = value
    error = refusal(data)
    assert "expected a DevServer manifest (apiVersion: devservers.io/v1, kind: DevServer)" in error["msg"]


def test_top_level_typo_refused() -> None:
    data = manifest()
    data["sepc"] = data.pop("spec")
    with pytest.raises(ValidationError) as caught:
        DevServer.from_manifest(data)
    locs = {tuple(error["loc"]) for error in caught.value.errors()}
    assert locs == {("spec",), ("sepc",)}


# --- status ---------------------------------------------------------------------------------------------


def test_status_tolerates_unknown_fields_and_finds_conditions() -> None:
    status = DevServerStatus.model_validate(
        {
            "phase": "Stopped",
            "newFieldFromAFutureOperator": {"x": 1},
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "Stopped", "message": "idle for 1h",
                 "lastTransitionTime": "2025-01-01T00:00:00Z", "somethingElse": 1},
                {"type": "Expiring", "status": "True"},
            ],
            "pods": ["alice-dev-0"],
            "lastActivitySource": "jupyter kernel",
            "stoppedReason": "IdleTimeout",
            "expiresAt": "2025-01-02T00:00:00Z",
        }
    )  # fmt: skip
    ready = status.condition("Ready")
    assert ready is not None and ready.status == "False" and ready.reason == "Stopped"
    assert status.condition("Expiring") is not None
    assert status.condition("Missing") is None
    assert status.stopped_reason == "IdleTimeout"
    assert status.expires_at == datetime(2025, 1, 2, tzinfo=UTC)


def test_status_phase_and_condition_status_are_enums() -> None:
    with pytest.raises(ValidationError) as caught:
        DevServerStatus.model_validate({"phase": "Exploded"})
    assert caught.value.errors()[0]["loc"] == ("phase",)
    with pytest.raises(ValidationError) as caught:
        DevServerStatus.model_validate({"conditions": [{"type": "Ready", "status": "true"}]})
    assert caught.value.errors()[0]["loc"] == ("conditions", 0, "status")


# --- flavors --------------------------------------------------------------------------------------------


def flavor(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "devservers.io/v1",
        "kind": "DevServerFlavor",
        "metadata": {"name": "f"},
        "spec": spec,
    }


def test_flavor_without_resources_works() -> None:
    bare = DevServerFlavor.from_manifest(flavor())
    assert (bare.cpu, bare.memory, bare.gpus) == (None, None, 0)
    assert bare.spec.resources.requests == {} and bare.spec.resources.limits == {}
    no_spec = DevServerFlavor.from_manifest({"apiVersion": "devservers.io/v1", "kind": "DevServerFlavor",
                                             "metadata": {"name": "tiny"}})  # fmt: skip
    assert no_spec.gpus == 0 and no_spec.name == "tiny"


@pytest.mark.parametrize(
    ("resources", "gpus"),
    [
        ({"limits": {"nvidia.com/gpu": "8"}}, 8),
        ({"limits": {"nvidia.com/gpu": 2}}, 2),
        ({"requests": {"nvidia.com/gpu": "1"}}, 1),
        ({"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}, 1),
        ({"limits": {"cpu": "4"}}, 0),
        ({"limits": {"amd.com/gpu": "1"}}, 0),
    ],
)
def test_gpus_property(resources: dict[str, Any], gpus: int) -> None:
    assert DevServerFlavor.from_manifest(flavor(resources=resources)).gpus == gpus


def test_cpu_and_memory_prefer_requests() -> None:
    loaded = DevServerFlavor.from_manifest(
        flavor(resources={"requests": {"cpu": 2, "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}})
    )
    assert (loaded.cpu, loaded.memory) == ("2", "8Gi")
    limits_only = DevServerFlavor.from_manifest(flavor(resources={"limits": {"cpu": "500m"}}))
    assert limits_only.cpu == "500m"


BAD_FLAVORS: list[tuple[dict[str, Any], tuple[str | int, ...], str]] = [
    (
        {"resources": {"limits": {"cpu": "ten"}}},
        ("spec", "resources", "limits", "cpu"),
        'invalid quantity "ten"',
    ),
    ({"resources": {"limits": {"memory": "-1Gi"}}}, ("spec", "resources", "limits", "memory"), "negative"),
    ({"resources": {"limits": {"cpu": 1.5}}}, ("spec", "resources", "limits", "cpu"), "string"),
    (
        {"resources": {"requests": {"cpu": "8"}, "limits": {"cpu": "4"}}},
        ("spec", "resources"),
        "requests.cpu (8) is more than limits.cpu (4)",
    ),
    ({"resources": {"limits": {"nvidia.com/gpu": "500m"}}}, ("spec", "resources"), "whole number of GPUs"),
    ({"resources": {"limit": {}}}, ("spec", "resources", "limit"), "Extra"),
    (
        {"tolerations": [{"key": "gpu", "operator": "Exists", "value": "x"}]},
        ("spec", "tolerations", 0),
        "empty",
    ),
    ({"tolerations": [{"operator": "Equal", "value": "x"}]}, ("spec", "tolerations", 0), "operator: Exists"),
    (
        {"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 60}]},
        ("spec", "tolerations", 0),
        "NoExecute",
    ),
    ({"tolerations": [{"key": "k", "operator": "In"}]}, ("spec", "tolerations", 0, "operator"), "'Exists'"),
    (
        {"tolerations": [{"key": "k", "effect": "NoRun"}]},
        ("spec", "tolerations", 0, "effect"),
        "'NoSchedule'",
    ),
    ({"maxTimeToLive": "1 week"}, ("spec", "maxTimeToLive"), "e.g. 30m, 4h"),
    ({"maxTimeToLive": ""}, ("spec", "maxTimeToLive"), "e.g. 30m, 4h"),
    ({"defaultIdleTimeout": 10}, ("spec", "defaultIdleTimeout"), "greater than or equal to 60"),
    ({"defaultImage": "a b"}, ("spec", "defaultImage"), "without spaces"),
    ({"nodeSelector": {"gpu": True}}, ("spec", "nodeSelector", "gpu"), "string"),
]


@pytest.mark.parametrize(("spec", "loc", "message"), BAD_FLAVORS)
def test_bad_flavor_refused_naming_the_field(
    spec: dict[str, Any], loc: tuple[Any, ...], message: str
) -> None:
    error = refusal(flavor(**spec), DevServerFlavor)
    assert error["loc"] == loc
    assert message in error["msg"]


def test_flavor_round_trip() -> None:
    data = flavor(
        resources={
            "requests": {"cpu": "8", "memory": "32Gi"},
            "limits": {"memory": "32Gi", "nvidia.com/gpu": "1"},
        },
        nodeSelector={"nvidia.com/gpu.present": "true"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        description="1 GPU",
        defaultImage="pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        maxTimeToLive="24h",
        defaultIdleTimeout=3600,
    )
    assert DevServerFlavor.from_manifest(copy.deepcopy(data)).to_manifest() == data


def test_flavor_refuses_devserver_kind() -> None:
    error = refusal({**flavor(), "kind": "DevServer"}, DevServerFlavor)
    assert "expected a DevServerFlavor manifest" in error["msg"]


# --- quantities -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100Gi", Decimal(100 * 2**30)),
        ("500Mi", Decimal(500 * 2**20)),
        ("1.5", Decimal("1.5")),
        ("250m", Decimal("0.25")),
        ("2", Decimal(2)),
        (2, Decimal(2)),
        ("1e3", Decimal(1000)),
        ("1E-2", Decimal("0.01")),
        ("10G", Decimal(10**10)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("1Ei", Decimal(2**60)),
        ("123456789012345678901234567890Ei", Decimal(123456789012345678901234567890 * 2**60)),
        ("5k", Decimal(5000)),
        (".5", Decimal("0.5")),
        ("-1", Decimal(-1)),
        ("100n", Decimal("1E-7")),
    ],
)
def test_parse_quantity(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "100GB", "1K", "1e1.5", "ten", "1 Gi", " 1", "1.2.3", "--1"])
def test_parse_quantity_refuses_with_example(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_quantity(text)
    assert f'"{text}"' in str(caught.value) and "100Gi" in str(caught.value)


@pytest.mark.parametrize("value", [True, 1.5, None])
def test_parse_quantity_refuses_other_types(value: Any) -> None:
    with pytest.raises(ValueError, match="expected a string"):
        parse_quantity(value)


@pytest.mark.parametrize(
    "text", ["100Gi", "500Mi", "1.5", "250m", "2", "1e3", "10G", "+1", ".5", "1.", "-2Ki"]
)
def test_quantity_pattern_accepts_what_the_parser_accepts(text: str) -> None:
    import re

    parse_quantity(text)
    assert re.fullmatch(QUANTITY_PATTERN, text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal(100 * 2**30), "100Gi"),
        (Decimal(3 * 2**29), "1536Mi"),
        (Decimal(10**10), "10G"),
        (1024, "1Ki"),
        (1000, "1k"),
        (0, "0"),
        (Decimal(1023), "1023"),
        (Decimal("0.5"), "0.5"),
    ],
)
def test_format_bytes(value: Decimal | int, text: str) -> None:
    assert format_bytes(value) == text
    assert parse_quantity(text) == Decimal(value)


# -- options to a spec: the one place the keyword shortcuts become a spec -------------------------------------

def test_from_options_builds_the_spec_the_keywords_describe() -> None:
    spec = DevServerSpec.from_options(owner="alice", flavor="cpu-small", mode="distributed", world_size=3,
                                      nprocs_per_node="auto", nccl_settings={"NCCL_DEBUG": "INFO"},
                                      time_to_live=timedelta(hours=1, minutes=30), idle_timeout="30m",
                                      expiration_time="2099-01-01T00:00:00Z", home_size="0",
                                      tracking={"wandb": {"project": "llm", "apiKeySecret": "wandb-key"}})
    assert spec.model_dump(by_alias=True, exclude_none=True, mode="json") == {
        "owner": "alice", "flavor": "cpu-small", "mode": "distributed", "persistentHomeSize": "0",
        "distributed": {"worldSize": 3, "nprocsPerNode": "auto", "backend": "nccl",
                        "ncclSettings": {"NCCL_DEBUG": "INFO"}},
        "lifecycle": {"timeToLive": "1h30m", "idleTimeout": 1800, "autoShutdown": True,
                      "expirationTime": "2099-01-01T00:00:00Z"},
        "tracking": {"wandb": {"project": "llm", "apiKeySecret": "wandb-key"}},
    }


def test_distributed_options_without_distributed_mode_are_refused_in_each_front_ends_words() -> None:
    with pytest.raises(InvalidSpecError) as refused:
        DevServerSpec.from_options(owner="alice", flavor="cpu-small", world_size=4, backend="gloo",
                                   nccl_settings={"NCCL_DEBUG": "INFO"}, name="x")
    error = refused.value
    assert error.field == "spec.mode"
    assert error.problem == (
        "DevServer 'x' is standalone, but world size, backend and NCCL settings (spec.distributed.worldSize, "
        "spec.distributed.backend, spec.distributed.ncclSettings) only apply to a distributed DevServer: make it "
        "distributed, or leave them out.")
    assert error.render("devctl").endswith(
        "To make it distributed: devctl create x --flavor cpu-small --distributed --world-size 4")
    assert error.render("magic").endswith(
        "To make it distributed: %devserver create x --flavor cpu-small --distributed --world-size 4")
    assert error.render("python").endswith(
        "To make it distributed: client.create('x', flavor='cpu-small', mode=\"distributed\", world_size=4)")


def test_option_problems_lists_every_problem_in_field_order() -> None:
    problems = DevServerSpec.option_problems(owner="alice", flavor="cpu-small", name="x", time_to_live="8",
                                             idle_timeout=MIN_IDLE_TIMEOUT - 1, world_size=2, home_size="lots")
    assert [problem.field for problem in problems] == [
        "spec.lifecycle.timeToLive", "spec.lifecycle.idleTimeout", "spec.mode", "spec.persistentHomeSize"]
    assert f"it must be at least 1m ({MIN_IDLE_TIMEOUT} seconds)" in str(problems[1])
    assert DevServerSpec.option_problems(owner="alice", flavor="cpu-small", idle_timeout=MIN_IDLE_TIMEOUT) == []
