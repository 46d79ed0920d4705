"""The generated CRDs: fresh on disk, structural, and drawing the same lines as the models.

Validation goes through the local cluster's copy of the apiserver's CRD pipeline (prune, default,
validate), so "the server refuses it" here means what ``kubectl apply`` would print.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from devservers_sdk import crds
from devservers_sdk.localcluster.apiserver.jsonpath import evaluate
from devservers_sdk.localcluster.apiserver.schema import apply_defaults, prune, structural_errors, validate
from devservers_sdk.models import MAX_NAME_LENGTH, DevServer, DevServerFlavor

REPO = Path(__file__).resolve().parents[2]
FLAVOR_EXAMPLES = sorted((REPO / "examples" / "flavors").glob("*.yaml"))


def openapi_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


DEVSERVER_SCHEMA = openapi_schema(crds.devserver_crd())
FLAVOR_SCHEMA = openapi_schema(crds.flavor_crd())


def server_causes(schema: dict[str, Any], obj: dict[str, Any]) -> list[dict[str, str]]:
    """What the apiserver does to a write: prune, default, then validate."""
    pruned, _ = prune(schema, obj)
    return validate(schema, apply_defaults(schema, pruned))


def stored(schema: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    pruned, _ = prune(schema, obj)
    return apply_defaults(schema, pruned)


# --- the files ------------------------------------------------------------------------------------------


def test_committed_crds_are_fresh() -> None:
    for name, text in crds.render().items():
        path = REPO / "crds" / name
        assert path.is_file(), f"{path} is missing: run python -m devservers_sdk.crds --write"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale (the models changed): run python -m devservers_sdk.crds --write"
        )


def test_check_names_stale_files_and_write_fixes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crds.main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "devservers.io_devservers.yaml" in err and "devservers.io_devserverflavors.yaml" in err
    assert "python -m devservers_sdk.crds --write" in err

    assert crds.main(["--write", "--dir", str(tmp_path)]) == 0
    assert crds.main(["--check", "--dir", str(tmp_path)]) == 0

    (tmp_path / "devservers.io_devservers.yaml").write_text("# edited by hand\n")
    assert crds.main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "devservers.io_devservers.yaml" in err and "devserverflavors" not in err


def test_render_is_yaml_of_the_crds() -> None:
    rendered = crds.render()
    assert yaml.safe_load(rendered["devservers.io_devservers.yaml"]) == crds.devserver_crd()
    assert yaml.safe_load(rendered["devservers.io_devserverflavors.yaml"]) == crds.flavor_crd()


# --- shape of the CRDs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("crd", [crds.devserver_crd(), crds.flavor_crd()], ids=["devserver", "flavor"])
def test_schemas_are_structural(crd: dict[str, Any]) -> None:
    assert structural_errors(openapi_schema(crd)) == []


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.mark.parametrize("schema", [DEVSERVER_SCHEMA, FLAVOR_SCHEMA], ids=["devserver", "flavor"])
def test_no_json_schema_leftovers(schema: dict[str, Any]) -> None:
    # structural_errors does not know every keyword the apiserver rejects; these it would.
    for node in _walk(schema):
        assert not {"$ref", "$defs", "title", "propertyNames", "const", "examples"} & node.keys(), node
        assert node.get("additionalProperties") is not False
        assert node.get("type") != "null"


def test_every_spec_field_has_a_description() -> None:
    # kubectl explain devserver.spec.<field> shows these.
    for schema in (DEVSERVER_SCHEMA["properties"]["spec"], FLAVOR_SCHEMA["properties"]["spec"]):
        for node in _walk(schema):
            for name, field in (node.get("properties") or {}).items():
                if isinstance(field, dict) and "type" in field:
                    assert field.get("description"), name


def test_devserver_crd_names_scope_and_columns() -> None:
    crd = crds.devserver_crd()
    assert crd["metadata"]["name"] == "devservers.devservers.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["dev"]
    assert crd["spec"]["names"]["categories"] == ["devservers", "all"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column for column in version["additionalPrinterColumns"]}
    assert list(columns)[:5] == ["Owner", "Flavor", "Mode", "Phase", "Ready"]
    # Expires is in the future: kubectl renders a date column as an age, which for a future time is "<invalid>".
    assert columns["Expires"]["type"] == "string" and columns["Age"]["type"] == "date"
    assert columns["Ready"]["type"] == "integer"


def test_flavor_crd_names_scope_and_columns() -> None:
    crd = crds.flavor_crd()
    assert crd["metadata"]["name"] == "devserverflavors.devservers.io"
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["devflavor"]
    assert "subresources" not in crd["spec"]["versions"][0]


@pytest.mark.parametrize(
    ("crd", "obj", "expected"),
    [
        (
            crds.devserver_crd(),
            {
                "metadata": {"name": "d", "creationTimestamp": "2025-01-01T00:00:00Z"},
                "spec": {"owner": "alice", "flavor": "gpu-small", "mode": "distributed", "image": "img"},
                "status": {"phase": "Running", "readyReplicas": 2, "replicas": 2, "expiresAt": "2025-01-02T00:00:00Z"},
            },
            {"Owner": "alice", "Flavor": "gpu-small", "Mode": "distributed", "Phase": "Running", "Ready": 2,
             "Replicas": 2, "Image": "img", "Expires": "2025-01-02T00:00:00Z", "Age": "2025-01-01T00:00:00Z"},
        ),
        (
            crds.flavor_crd(),
            {
                "metadata": {"name": "g"},
                "spec": {"resources": {"requests": {"cpu": "8", "memory": "32Gi"},
                                       "limits": {"nvidia.com/gpu": "1"}},
                         "description": "one GPU", "maxTimeToLive": "24h", "defaultImage": "img",
                         "costPerHour": "1.21 USD"},
            },
            {"CPU": "8", "Memory": "32Gi", "GPU": "1", "Cost/h": "1.21 USD", "Max-TTL": "24h", "Image": "img",
             "Description": "one GPU"},
        ),
    ],
    ids=["devserver", "flavor"],
)  # fmt: skip
def test_printer_columns_find_their_values(
    crd: dict[str, Any], obj: dict[str, Any], expected: dict[str, Any]
) -> None:
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    assert {column["name"]: evaluate(column["jsonPath"], obj) for column in columns} == {
        name: [value] for name, value in expected.items()
    }


# --- the server and the models agree --------------------------------------------------------------------

VALID: dict[str, Any] = {
    "apiVersion": "devservers.io/v1",
    "kind": "DevServer",
    "metadata": {"name": "alice-dev", "namespace": "alice"},
    "spec": {
        "owner": "alice",
        "flavor": "gpu-small",
        "image": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        "mode": "distributed",
        "distributed": {"worldSize": 4, "nprocsPerNode": 8, "backend": "nccl", "ncclSettings": {"NCCL_DEBUG": "INFO"}},
        "persistentHomeSize": "100Gi",
        "sharedVolumeClaimName": "team-data",
        "lifecycle": {"idleTimeout": 3600, "autoShutdown": True, "expirationTime": "2030-01-01T00:00:00Z",
                      "timeToLive": "1h30m"},
    },
}  # fmt: skip


def test_valid_manifest_passes_both() -> None:
    assert server_causes(DEVSERVER_SCHEMA, VALID) == []
    DevServer.from_manifest(VALID)


@pytest.mark.parametrize(
    "spec",
    [
        {"owner": "alice", "flavor": "cpu-small"},
        {"owner": "alice", "flavor": "cpu-small", "mode": "distributed", "distributed": {}},
        {"owner": "alice", "flavor": "cpu-small", "mode": "distributed", "distributed": {"worldSize": 3}},
        {"owner": "alice", "flavor": "cpu-small", "lifecycle": {"idleTimeout": 600}},
        VALID["spec"],
    ],
)
def test_server_defaults_equal_model_defaults(spec: dict[str, Any]) -> None:
    # What the apiserver stores after defaulting is what the SDK would have sent in the first place.
    sent = {**VALID, "spec": spec}
    assert stored(DEVSERVER_SCHEMA, sent)["spec"] == DevServer.from_manifest(sent).to_manifest()["spec"]


def test_server_defaults_equal_model_defaults_for_flavors() -> None:
    for sent in (
        {"apiVersion": "devservers.io/v1", "kind": "DevServerFlavor", "metadata": {"name": "bare"}},
        {"apiVersion": "devservers.io/v1", "kind": "DevServerFlavor", "metadata": {"name": "t"},
         "spec": {"tolerations": [{"key": "k", "effect": "NoSchedule"}], "resources": {"limits": {"cpu": "1"}}}},
    ):  # fmt: skip
        assert (
            stored(FLAVOR_SCHEMA, sent)["spec"] == DevServerFlavor.from_manifest(sent).to_manifest()["spec"]
        )


def _with(path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(VALID)
    *parents, leaf = path.split(".")
    node = obj
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return obj


_DELETE = object()

# (path, bad value, field the apiserver names, loc the model names)
BOTH_REFUSE: list[tuple[str, Any, str, tuple[Any, ...]]] = [
    ("spec.mode", "cluster", "spec.mode", ("spec", "mode")),
    ("spec.distributed.worldSize", -1, "spec.distributed.worldSize", ("spec", "distributed", "worldSize")),
    ("spec.distributed.worldSize", 0, "spec.distributed.worldSize", ("spec", "distributed", "worldSize")),
    ("spec.distributed.worldSize", 1001, "spec.distributed.worldSize", ("spec", "distributed", "worldSize")),
    ("spec.distributed.worldSize", "4", "spec.distributed.worldSize", ("spec", "distributed", "worldSize")),
    ("spec.distributed.nprocsPerNode", 0, "spec.distributed.nprocsPerNode", ("spec", "distributed", "nprocsPerNode")),
    ("spec.distributed.backend", "mpi", "spec.distributed.backend", ("spec", "distributed", "backend")),
    ("spec.distributed.ncclSettings", {"NCCL_IB_DISABLE": 1}, "spec.distributed.ncclSettings.NCCL_IB_DISABLE",
     ("spec", "distributed", "ncclSettings", "NCCL_IB_DISABLE")),
    ("spec.distributed.ncclSettings", {"nccl_debug": "INFO"}, "spec.distributed.ncclSettings",
     ("spec", "distributed", "ncclSettings", "nccl_debug", "[key]")),
    ("spec.distributed.ncclSettings", {"LD_PRELOAD": "/x.so"}, "spec.distributed.ncclSettings",
     ("spec", "distributed", "ncclSettings", "LD_PRELOAD", "[key]")),
    ("spec.distributed.ncclSettings", {"NCCL_NET_PLUGIN": "x"}, "spec.distributed.ncclSettings",
     ("spec", "distributed", "ncclSettings", "NCCL_NET_PLUGIN", "[key]")),
    ("spec.lifecycle.timeToLive", "", "spec.lifecycle.timeToLive", ("spec", "lifecycle", "timeToLive")),
    ("spec.lifecycle.timeToLive", "4 hours", "spec.lifecycle.timeToLive", ("spec", "lifecycle", "timeToLive")),
    ("spec.lifecycle.timeToLive", "0s", "spec.lifecycle.timeToLive", ("spec", "lifecycle", "timeToLive")),
    ("spec.lifecycle.timeToLive", "90", "spec.lifecycle.timeToLive", ("spec", "lifecycle", "timeToLive")),
    ("spec.lifecycle.idleTimeout", 59, "spec.lifecycle.idleTimeout", ("spec", "lifecycle", "idleTimeout")),
    ("spec.lifecycle.autoShutdown", "yes", "spec.lifecycle.autoShutdown", ("spec", "lifecycle", "autoShutdown")),
    ("spec.lifecycle.expirationTime", "next week", "spec.lifecycle.expirationTime",
     ("spec", "lifecycle", "expirationTime")),
    ("spec.persistentHomeSize", "100GB", "spec.persistentHomeSize", ("spec", "persistentHomeSize")),
    ("spec.owner", "", "spec.owner", ("spec", "owner")),
    ("spec.owner", "alice ", "spec.owner", ("spec", "owner")),
    ("spec.owner", "ali\x01ce", "spec.owner", ("spec", "owner")),
    ("spec.owner", "a" * 257, "spec.owner", ("spec", "owner")),
    ("spec.owner", _DELETE, "spec.owner", ("spec", "owner")),
    ("spec.flavor", "GPU_Small", "spec.flavor", ("spec", "flavor")),
    ("spec.flavor", "x" * 254, "spec.flavor", ("spec", "flavor")),
    ("spec.image", "my image", "spec.image", ("spec", "image")),
    ("spec.sharedVolumeClaimName", "Team", "spec.sharedVolumeClaimName", ("spec", "sharedVolumeClaimName")),
    ("metadata.name", "x" * (MAX_NAME_LENGTH + 1), "metadata.name", ("metadata",)),
    ("metadata.name", "1dev", "metadata.name", ("metadata",)),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "field", "loc"), BOTH_REFUSE)
def test_server_and_model_refuse_the_same_values(
    path: str, value: Any, field: str, loc: tuple[Any, ...]
) -> None:
    bad = _with(path, value)
    causes = server_causes(DEVSERVER_SCHEMA, bad)
    assert field in [cause["field"] for cause in causes], causes
    with pytest.raises(ValidationError) as caught:
        DevServer.from_manifest(bad)
    assert caught.value.errors()[0]["loc"] == loc


def test_server_and_model_accept_and_ignore_distributed_section_in_standalone_mode() -> None:
    # The seed writes `mode: standalone  # or distributed` above a `distributed:` block. That shape used to
    # be refused with a `not` schema, which the API server words as "<nil>: Invalid value: "": "spec" must
    # not validate the schema (not)"; it is now accepted, and the section is reported as ignored.
    shaped = _with("spec.mode", "standalone")
    assert server_causes(DEVSERVER_SCHEMA, shaped) == []
    spec = DevServer.from_manifest(shaped).spec
    assert list(spec.ignored_fields()) == ["spec.distributed"]
    shaped["spec"].pop("mode")  # leaving mode out means standalone on both sides
    assert server_causes(DEVSERVER_SCHEMA, shaped) == []
    assert list(DevServer.from_manifest(shaped).spec.ignored_fields()) == ["spec.distributed"]
    assert DevServer.from_manifest(VALID).spec.ignored_fields() == {}


@pytest.mark.parametrize("owner", ["user@company.com", "alice", "system:serviceaccount:ml:builder",
                                   "arn:aws:sts::1:assumed-role/Dev/alice@company.com", "a" * 256])
def test_server_and_model_accept_user_names_as_owners(owner: str) -> None:
    obj = _with("spec.owner", owner)
    assert server_causes(DEVSERVER_SCHEMA, obj) == []
    assert DevServer.from_manifest(obj).spec.owner == owner


def test_no_schema_junctor_reaches_the_crds() -> None:
    # A `not`/`oneOf`/`allOf` failure reads "<nil>: Invalid value: "": "spec" must not validate the schema".
    def keys(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {key for value in node.values() for key in keys(value)}
        if isinstance(node, list):
            return {key for value in node for key in keys(value)}
        return set()

    assert not keys(DEVSERVER_SCHEMA) & {"not", "oneOf", "allOf"}
    assert not keys(FLAVOR_SCHEMA) & {"not", "oneOf", "allOf"}
    with pytest.raises(ValueError, match="'not' has no structural equivalent"):
        crds._structural({"type": "object", "not": {"required": ["x"]}}, {})


def test_server_drops_null_like_the_model_ignores_none() -> None:
    obj = _with("spec.lifecycle.timeToLive", None)
    assert server_causes(DEVSERVER_SCHEMA, obj) == []
    assert "timeToLive" not in stored(DEVSERVER_SCHEMA, obj)["spec"]["lifecycle"]
    assert DevServer.from_manifest(obj).spec.lifecycle.time_to_live is None


MODEL_ONLY: list[tuple[str, Any, tuple[Any, ...]]] = [
    ("spec.distributed.ncclSettings", {"NCCL_debug": "INFO"}, ("spec", "distributed", "ncclSettings", "NCCL_debug", "[key]")),
    ("spec.persistentHomeSize", "-1Gi", ("spec", "persistentHomeSize")),
    ("spec.lifecycle.expirationTime", "2030-01-01T00:00:00", ("spec", "lifecycle", "expirationTime")),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "loc"), MODEL_ONLY)
def test_model_only_rules_documented_in_crds_module(path: str, value: Any, loc: tuple[Any, ...]) -> None:
    # If the server starts enforcing one of these, move it to BOTH_REFUSE and update the crds docstring.
    bad = _with(path, value)
    assert server_causes(DEVSERVER_SCHEMA, bad) == []
    with pytest.raises(ValidationError) as caught:
        DevServer.from_manifest(bad)
    assert caught.value.errors()[0]["loc"] == loc


def test_unknown_spec_field_is_pruned_by_server_and_refused_by_model() -> None:
    typo = _with("spec.lifecycle.ttl", "4h")
    _, dropped = prune(DEVSERVER_SCHEMA, typo)
    assert dropped == ["spec.lifecycle.ttl"]  # kubectl's strict field validation turns this into an error
    with pytest.raises(ValidationError) as caught:
        DevServer.from_manifest(typo)
    assert caught.value.errors()[0]["loc"] == ("spec", "lifecycle", "ttl")


def test_status_written_by_the_operator_validates() -> None:
    obj = copy.deepcopy(VALID)
    obj["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "reason": "PodsReady", "message": "4/4 ready",
                        "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1}],
        "observedGeneration": 1, "readyReplicas": 4, "replicas": 4,
        "pods": [f"alice-dev-{rank}" for rank in range(4)],
        "expiresAt": "2025-01-01T01:30:00Z", "lastActivityTime": "2025-01-01T00:10:00Z",
        "lastActivitySource": "ssh", "message": "running",
    }  # fmt: skip
    assert server_causes(DEVSERVER_SCHEMA, obj) == []
    assert stored(DEVSERVER_SCHEMA, obj)["status"] == obj["status"]
    bad = copy.deepcopy(obj)
    bad["status"]["phase"] = "Exploded"
    # As kube-apiserver: a schema error that blocks CEL (here an enum) skips every rule, and a cause without a
    # field says so.
    assert [cause["field"] for cause in server_causes(DEVSERVER_SCHEMA, bad)] == ["status.phase", "<nil>"]


# --- example flavors ------------------------------------------------------------------------------------


def test_the_example_flavors_exist() -> None:
    assert [path.stem for path in FLAVOR_EXAMPLES] == [
        "cpu-large",
        "cpu-medium",
        "cpu-small",
        "gpu-large",
        "gpu-medium",
        "gpu-small-spot",  # before gpu-small: "-" sorts before "."
        "gpu-small",
    ]


@pytest.mark.parametrize("path", FLAVOR_EXAMPLES, ids=lambda path: path.stem)
def test_example_flavor_loads_and_validates(path: Path) -> None:
    manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    loaded = DevServerFlavor.from_manifest(manifest)
    assert loaded.name == path.stem
    assert loaded.spec.description and loaded.spec.default_image and loaded.spec.max_time_to_live
    assert server_causes(FLAVOR_SCHEMA, manifest) == []
    assert prune(FLAVOR_SCHEMA, manifest)[1] == []
    assert loaded.to_manifest() == stored(FLAVOR_SCHEMA, manifest)  # same as written, plus the defaults
    if path.stem.startswith("gpu"):
        assert loaded.gpus >= 1
        assert loaded.spec.node_selector == {"nvidia.com/gpu.present": "true"}
        assert [(t.key, t.effect) for t in loaded.spec.tolerations] == [("nvidia.com/gpu", "NoSchedule")]
    else:
        assert loaded.gpus == 0


def test_example_flavor_sizes() -> None:
    sizes = {
        path.stem: DevServerFlavor.from_manifest(yaml.safe_load(path.read_text())) for path in FLAVOR_EXAMPLES
    }
    assert [(f.cpu, f.memory, f.gpus) for f in (sizes["cpu-small"], sizes["cpu-medium"], sizes["cpu-large"])] == [
        ("1", "2Gi", 0), ("4", "16Gi", 0), ("16", "64Gi", 0),
    ]  # fmt: skip
    assert (sizes["gpu-small"].cpu, sizes["gpu-small"].memory, sizes["gpu-small"].gpus) == ("8", "32Gi", 1)
    assert sizes["gpu-large"].gpus == 8


def test_bad_flavor_refused_by_server() -> None:
    manifest = yaml.safe_load((REPO / "examples" / "flavors" / "gpu-small.yaml").read_text())
    manifest["spec"]["tolerations"][0]["effect"] = "NoRun"
    manifest["spec"]["maxTimeToLive"] = ""
    manifest["spec"]["resources"]["limits"]["memory"] = "32 GiB"
    fields = {cause["field"] for cause in server_causes(FLAVOR_SCHEMA, manifest)}
    # The enum error blocks the CEL rules (maxTimeToLive's), as on kube-apiserver, which says so under <nil>.
    assert fields == {"spec.tolerations[0].effect", "spec.resources.limits.memory", "<nil>"}
    manifest["spec"]["tolerations"][0]["effect"] = "NoSchedule"
    fields = {cause["field"] for cause in server_causes(FLAVOR_SCHEMA, manifest)}
    assert fields == {"spec.maxTimeToLive", "spec.resources.limits.memory"}


def test_patterns_are_anchored() -> None:
    # The apiserver searches (not fullmatches) with the pattern: an unanchored one would accept "x4hx".
    for schema in (DEVSERVER_SCHEMA, FLAVOR_SCHEMA):
        for node in _walk(schema):
            if "pattern" in node:
                assert re.match(r"^\^.*\$$", node["pattern"]), node["pattern"]
