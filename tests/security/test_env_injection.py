"""No user setting reaches a process's environment as a distributed-contract or code-loading variable.

A user sets environment variables in two places: ``spec.distributed.ncclSettings`` (every pod) and
``launch(env=...)`` (every torchrun process). Each is checked at every layer it crosses, and each layer is
tested on its own, including the ones that only matter when another was skipped:

* the SDK's models and ``launch.validate_env`` (one rule: ``models.env_name_problem``);
* the CRD (a CEL rule over the keys, ``maxProperties``, a value pattern), for raw API calls and kubectl;
* the operator's manifest builder, for an object stored before the CRD had its rule (an upgrade).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client
from pydantic import ValidationError

from devservers_sdk import DevServerClient, InvalidSpecError
from devservers_sdk.launch import validate_env
from devservers_sdk.localcluster.pytest_plugin import wait_for
from devservers_sdk.manifests import OperatorConfig, build_objects, distributed_env
from devservers_sdk.models import CONTRACT_ENV, LOADER_ENV, DevServer, DevServerFlavorSpec, DistributedSpec
from tests.security.secured_platform import DEPLOY, SecuredPlatform, kubectl

GROUP, VERSION, PLURAL = "devservers.io", "v1", "devservers"
CONTRACT_IN_PODS = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT",
                    "MASTER_ADDR", "MASTER_PORT", "NNODES", "NODE_RANK", "NPROC_PER_NODE")
# Every name of the two families, plus the prefixes' members a list would miss.
FORBIDDEN_NAMES = sorted(CONTRACT_ENV | LOADER_ENV | {
    "PET_MAX_RESTARTS", "TORCHELASTIC_RUN_ID", "DEVSERVER_NAME", "DEVSERVERS_OWNER", "LD_PRELOAD",
    "LD_LIBRARY_PATH", "LD_AUDIT", "LD_BIND_NOW", "DYLD_INSERT_LIBRARIES", "NCCL_NET_PLUGIN",
    "NCCL_TUNER_PLUGIN", "NCCL_PROFILER_PLUGIN"})
forbidden_names = st.sampled_from(FORBIDDEN_NAMES) | st.from_regex(
    r"LD_[A-Z0-9_]{0,8}|PET_[A-Z0-9_]{0,8}|NCCL_[A-Z0-9_]{0,8}_PLUGIN", fullmatch=True)


def distributed(nccl: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DevServer",
            "metadata": {"name": "ddp", "namespace": "team", "uid": "7b0e5c3a-0000-4000-8000-000000000001"},
            "spec": {"owner": "alice", "flavor": "cpu-small", "mode": "distributed",
                     "distributed": {"worldSize": 2, "backend": "gloo", "ncclSettings": nccl}}}


# -- the SDK ---------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(name=forbidden_names)
def test_no_forbidden_name_is_an_nccl_setting(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DistributedSpec(nccl_settings={name: "x"})
    assert caught.value.errors()[0]["loc"][0] == "nccl_settings"


@settings(max_examples=200, deadline=None)
@given(name=forbidden_names)
def test_launch_refuses_every_forbidden_name(name: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        validate_env({"OK_NAME": "1", name: "x"})
    assert caught.value.field == "env" and name in str(caught.value)


@pytest.mark.parametrize("name", ["LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONWARNINGS", "PYTHONUSERBASE",
                                  "BASH_ENV", "CUDA_INJECTION64_PATH", "NCCL_NET_PLUGIN"])
def test_launch_names_the_loader_variable_and_the_fix(name: str) -> None:
    with pytest.raises(InvalidSpecError, match=f"launch refuses to set {name}: it would load code into every "
                                               "process") as caught:
        validate_env({name: "/tmp/x"})
    assert "Install what you need in the image" in str(caught.value)


def test_ordinary_settings_still_pass() -> None:
    assert validate_env({"OMP_NUM_THREADS": "4", "NCCL_DEBUG": "INFO", "TOKENIZERS_PARALLELISM": "false"})
    assert DistributedSpec(nccl_settings={"NCCL_DEBUG": "INFO", "NCCL_SOCKET_IFNAME": "eth0"}).nccl_settings


@settings(max_examples=100, deadline=None)
@given(name=forbidden_names)
def test_the_operators_builder_refuses_what_bypassed_the_model(name: str) -> None:
    # model_construct skips validation, as an object stored before a rule existed would.
    server = DevServer.from_manifest(distributed({}))
    assert server.spec.distributed is not None
    server.spec.distributed = DistributedSpec.model_construct(world_size=2, nprocs_per_node=1, backend="gloo",
                                                              nccl_settings={"NCCL_DEBUG": "INFO", name: "x"})
    with pytest.raises(InvalidSpecError) as caught:
        build_objects(server, DevServerFlavorSpec(), OperatorConfig())
    assert caught.value.field == "spec.distributed.ncclSettings" and name in str(caught.value)


def test_the_builder_refuses_a_nul_in_a_value() -> None:
    server = DevServer.from_manifest(distributed({}))
    assert server.spec.distributed is not None
    server.spec.distributed = DistributedSpec.model_construct(world_size=2, nprocs_per_node=1, backend="gloo",
                                                              nccl_settings={"NCCL_DEBUG": "IN\0FO"})
    with pytest.raises(InvalidSpecError, match="NUL") as caught:
        distributed_env(server, OperatorConfig())
    assert caught.value.field == "spec.distributed.ncclSettings.NCCL_DEBUG"


def test_user_settings_come_after_the_contract_and_never_repeat_it() -> None:
    server = DevServer.from_manifest(distributed({"NCCL_DEBUG": "INFO", "NCCL_IB_DISABLE": "1"}))
    env = build_objects(server, DevServerFlavorSpec(), OperatorConfig()).statefulset["spec"]["template"]["spec"][
        "containers"][0]["env"]
    names = [item["name"] for item in env]
    assert len(names) == len(set(names)), names  # with duplicates, the last one would win
    assert set(CONTRACT_IN_PODS) <= set(names)
    assert not set(names) & {"RANK", "WORLD_SIZE", "LOCAL_RANK"}
    assert max(names.index(n) for n in CONTRACT_IN_PODS) < names.index("NCCL_DEBUG")


# -- the API server and the operator ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def alice_in_team(secured: SecuredPlatform) -> Iterator[client.CustomObjectsApi]:
    """Alice's custom-objects API, and the namespace team she writes to."""
    with secured.api() as admin:
        client.CoreV1Api(admin).create_namespace({"metadata": {"name": "team"}})
    api = client.CustomObjectsApi(secured.api("alice"))
    yield api
    api.api_client.close()


@pytest.mark.parametrize(("nccl", "field", "says"), [
    ({"LD_PRELOAD": "/tmp/evil.so"}, "spec.distributed.ncclSettings", "keys must be NCCL_ variables"),
    ({"MASTER_ADDR": "attacker"}, "spec.distributed.ncclSettings", "keys must be NCCL_ variables"),
    ({"PET_NNODES": "64"}, "spec.distributed.ncclSettings", "keys must be NCCL_ variables"),
    ({"NCCL_NET_PLUGIN": "/tmp/evil"}, "spec.distributed.ncclSettings", "not NCCL_*_PLUGIN"),
    ({"NCCL_DEBUG": "IN\0FO"}, "spec.distributed.ncclSettings.NCCL_DEBUG", "should match"),
    ({f"NCCL_X{i}": "1" for i in range(65)}, "spec.distributed.ncclSettings", "must have at most 64 items"),
])
def test_the_api_server_refuses_raw_writes(alice_in_team: client.CustomObjectsApi, nccl: dict[str, str],
                                           field: str, says: str) -> None:
    with pytest.raises(client.ApiException) as caught:
        alice_in_team.create_namespaced_custom_object(GROUP, VERSION, "team", PLURAL, distributed(nccl))
    status = json.loads(caught.value.body)
    assert caught.value.status == 422
    assert field in [cause["field"] for cause in status["details"]["causes"]], status
    assert says in status["message"]


def test_the_sdk_refuses_before_sending(secured: SecuredPlatform) -> None:
    sdk = DevServerClient(kubeconfig=secured.kubeconfigs["alice"], namespace="team")
    try:
        before = secured.request_counts().get("create devservers", 0)
        with pytest.raises(InvalidSpecError) as caught:
            sdk.create("ddp", flavor="cpu-small", mode="distributed", nccl_settings={"LD_PRELOAD": "/x.so"})
        assert caught.value.field == "spec.distributed.ncclSettings.LD_PRELOAD"
        assert secured.request_counts().get("create devservers", 0) == before
    finally:
        sdk.close()


def test_an_object_stored_before_the_rule_is_refused_by_the_operator(
        secured: SecuredPlatform, alice_in_team: client.CustomObjectsApi, tmp_path: Path) -> None:
    # An upgrade: the object was admitted by an older CRD without the rule; the new CRD does not
    # re-validate stored objects, so the operator is the last line.
    crds = [doc for doc in yaml.safe_load_all((DEPLOY / "crds.yaml").read_text()) if doc]
    crd = next(doc for doc in crds if doc["metadata"]["name"] == "devservers.devservers.io")
    nccl_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "distributed"]["properties"]["ncclSettings"]
    nccl_schema.pop("x-kubernetes-validations")
    old = tmp_path / "old-crd.yaml"
    old.write_text(yaml.safe_dump(crd))
    kubectl(secured.admin_kubeconfig, "apply", "-f", str(old))
    try:
        alice_in_team.create_namespaced_custom_object(
            GROUP, VERSION, "team", PLURAL, distributed({"NCCL_DEBUG": "INFO", "LD_PRELOAD": "/tmp/evil.so"}))
    finally:
        kubectl(secured.admin_kubeconfig, "apply", "-f", str(DEPLOY / "crds.yaml"))
    # The SDK cannot read the object either (its model refuses it), so read the status raw.
    failed = wait_for(lambda: _failed(alice_in_team, "ddp"), timeout=60, message="ddp to be marked Failed")
    assert "ncclSettings" in failed["message"] and "LD_PRELOAD" in failed["message"], failed
    assert failed["conditions"][0]["reason"] == "InvalidSpec"
    with secured.api() as admin:
        apps = client.AppsV1Api(admin)
        assert apps.list_namespaced_stateful_set("team").items == []
        pods = client.CoreV1Api(admin).list_namespaced_pod("team").items
    assert not [pod for pod in pods if any(e.name == "LD_PRELOAD" for c in pod.spec.containers for e in c.env or [])]


def _failed(api: client.CustomObjectsApi, name: str) -> dict[str, Any] | None:
    status: dict[str, Any] = api.get_namespaced_custom_object(GROUP, VERSION, "team", PLURAL, name).get("status") or {}
    return status if status.get("phase") == "Failed" else None
