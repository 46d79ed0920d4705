"""The desired StatefulSet and Service: complete (removals take effect), valid, and the env contract exact."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from devservers_sdk.contract import MAX_NAME_LENGTH, NAME_LABEL, RESTARTED_AT_ANNOTATION
from devservers_sdk.errors import InvalidSpecError
from devservers_sdk.localcluster.apiserver import openapi, strategies
from devservers_sdk.localcluster.apiserver.resources import ResourceRegistry, ResourceType
from devservers_sdk.localcluster.pytest_plugin import wait_for
from devservers_sdk.manifests import (
    DEFAULT_IMAGE,
    KEEP_ALIVE_COMMAND,
    OperatorConfig,
    build_objects,
    build_service,
    build_statefulset,
    distributed_env,
    home_size_for,
    immutable_changes,
    labels_for,
    owner_reference,
    selector_for,
    shm_size_for,
)
from devservers_sdk.models import DevServer, DevServerFlavor, DistributedSpec

CONFIG = OperatorConfig()


def resource_type(api_version: str, kind: str) -> ResourceType:
    found = ResourceRegistry.with_builtins().by_kind(api_version, kind)
    assert found is not None
    return found


STATEFULSET_RT = resource_type("apps/v1", "StatefulSet")
SERVICE_RT = resource_type("v1", "Service")
POD_RT = resource_type("v1", "Pod")


def devserver(name: str = "mydev", annotations: dict[str, str] | None = None, **spec: Any) -> DevServer:
    return DevServer.from_manifest(
        {
            "apiVersion": "devservers.io/v1",
            "kind": "DevServer",
            "metadata": {
                "name": name,
                "namespace": "alice",
                "uid": "6f1c1e8e-0000-4000-8000-000000000001",
                "generation": 1,
                "creationTimestamp": "2025-01-31T12:00:00Z",
                "annotations": annotations or {},
            },
            "spec": {"owner": "alice", "flavor": "cpu-small", **spec},
        }
    )


def flavor(name: str = "cpu-small", **spec: Any) -> DevServerFlavor:
    return DevServerFlavor.from_manifest(
        {
            "apiVersion": "devservers.io/v1",
            "kind": "DevServerFlavor",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


CPU = flavor(resources={"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}})
GPU = flavor(
    "gpu-small",
    resources={
        "requests": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "32Gi", "nvidia.com/gpu": "1"},
    },
    nodeSelector={"nvidia.com/gpu.present": "true"},
    tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    defaultImage="nvcr.io/nvidia/pytorch:24.10-py3",
)


def pod_spec(sts: dict[str, Any]) -> dict[str, Any]:
    return sts["spec"]["template"]["spec"]


def container(sts: dict[str, Any]) -> dict[str, Any]:
    [only] = pod_spec(sts)["containers"]
    return only


def env_of(sts: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container(sts)["env"]}


def empty_fields(obj: Any, path: str = "") -> list[str]:
    """Paths holding {}, [], "" or None; ``emptyDir: {}`` is meaningful (it selects the volume type)."""
    found = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            here = f"{path}.{key}" if path else key
            if value in ({}, [], "", None) and key != "emptyDir":
                found.append(here)
            found.extend(empty_fields(value, here))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            found.extend(empty_fields(value, f"{path}[{index}]"))
    return found


def accepted_by_emulator(sts: dict[str, Any], service: dict[str, Any]) -> None:
    """The objects pass the emulator's strict decoding and validation, and so does the pod they make."""
    assert openapi.unknown_fields("apps", "v1", "StatefulSet", sts) == []
    assert strategies.builtin_decoding_error(STATEFULSET_RT, sts) is None
    assert strategies.validate(STATEFULSET_RT, copy.deepcopy(sts), None, None) == []  # type: ignore[arg-type]
    assert openapi.unknown_fields("", "v1", "Service", service) == []
    assert strategies.builtin_decoding_error(SERVICE_RT, service) is None
    assert strategies.validate(SERVICE_RT, copy.deepcopy(service), None, None) == []  # type: ignore[arg-type]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{sts['metadata']['name']}-0", **sts["spec"]["template"]["metadata"]},
        "spec": copy.deepcopy(pod_spec(sts)),
    }
    assert openapi.unknown_fields("", "v1", "Pod", pod) == []
    assert strategies.validate(POD_RT, pod, None, None) == []  # type: ignore[arg-type]


# -- identity --------------------------------------------------------------------------------------------


def test_labels_name_the_app_the_instance_the_manager_and_the_owner() -> None:
    assert labels_for(devserver()) == {
        "app.kubernetes.io/name": "devserver",
        "app.kubernetes.io/instance": "mydev",
        "app.kubernetes.io/managed-by": "devservers-operator",
        "devservers.io/name": "mydev",
        "devservers.io/owner": "alice",
    }


def test_the_selector_is_a_stable_subset_without_the_owner() -> None:
    server = devserver()
    selector = selector_for(server)
    assert selector.items() <= labels_for(server).items()
    assert "devservers.io/owner" not in selector
    # Another owner (the one mutable label) must not change the immutable StatefulSet selector.
    other = devserver(owner="bob")
    assert selector_for(other) == selector
    sts = build_statefulset(server, CPU, CONFIG)
    assert sts["spec"]["selector"] == {"matchLabels": selector}
    assert sts["spec"]["template"]["metadata"]["labels"] == labels_for(server)
    assert build_service(server)["spec"]["selector"] == selector


def test_the_pods_carry_the_label_the_sdk_finds_them_by() -> None:
    server = devserver()
    template = build_statefulset(server, CPU, CONFIG)["spec"]["template"]
    assert template["metadata"]["labels"][NAME_LABEL] == server.name
    assert selector_for(server)[NAME_LABEL] == server.name


def test_owner_reference_is_a_blocking_controller_reference() -> None:
    server = devserver()
    assert owner_reference(server) == {
        "apiVersion": "devservers.io/v1",
        "kind": "DevServer",
        "name": "mydev",
        "uid": "6f1c1e8e-0000-4000-8000-000000000001",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    objects = build_objects(server, CPU, CONFIG)
    assert objects.statefulset["metadata"]["ownerReferences"] == [owner_reference(server)]
    assert objects.service["metadata"]["ownerReferences"] == [owner_reference(server)]


def test_an_object_without_uid_or_namespace_is_refused() -> None:
    server = devserver()
    no_uid = server.model_copy(update={"metadata": server.metadata.model_copy(update={"uid": None})})
    with pytest.raises(ValueError, match="uid"):
        build_statefulset(no_uid, CPU, CONFIG)
    no_ns = server.model_copy(update={"metadata": server.metadata.model_copy(update={"namespace": None})})
    with pytest.raises(ValueError, match="namespace"):
        build_service(no_ns)


# -- the StatefulSet -------------------------------------------------------------------------------------


def test_a_standalone_server_is_one_parallel_pod_that_keeps_homes_when_stopped() -> None:
    sts = build_statefulset(devserver(), CPU, CONFIG)
    spec = sts["spec"]
    assert sts["metadata"]["name"] == "mydev" and sts["metadata"]["namespace"] == "alice"
    assert spec["replicas"] == 1
    assert spec["serviceName"] == "mydev"
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenScaled": "Retain", "whenDeleted": "Delete"}


def test_a_distributed_server_has_world_size_pods_and_zero_when_stopped() -> None:
    distributed: dict[str, Any] = {"mode": "distributed", "distributed": {"worldSize": 4, "nprocsPerNode": 8}}
    assert build_statefulset(devserver(**distributed), GPU, CONFIG)["spec"]["replicas"] == 4
    stopped = devserver(annotations={"devservers.io/desired-state": "Stopped"}, **distributed)
    assert build_statefulset(stopped, GPU, CONFIG)["spec"]["replicas"] == 0
    running = devserver(annotations={"devservers.io/desired-state": "Running"}, **distributed)
    assert build_statefulset(running, GPU, CONFIG)["spec"]["replicas"] == 4
    assert build_statefulset(running, GPU, CONFIG, replicas=0)["spec"]["replicas"] == 0


def test_the_pod_is_non_root_without_privilege_escalation_or_service_account_token() -> None:
    sts = build_statefulset(devserver(), CPU, CONFIG)
    spec = pod_spec(sts)
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    c = container(sts)
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["command"] == list(KEEP_ALIVE_COMMAND)
    assert c["startupProbe"]["exec"]["command"] == ["true"]
    assert "readinessProbe" not in c  # no exec into every pod every few seconds for its whole life
    assert c["workingDir"] == "/home/dev"
    assert env_of(sts)["HOME"] == "/home/dev"


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:")), 0)
    return bool(mask & (1 << (signum - 1)))


def test_the_keep_alive_command_exits_promptly_on_sigterm() -> None:
    process = subprocess.Popen(list(KEEP_ALIVE_COMMAND))
    try:
        # The shell catches SIGTERM once it has run its `trap`; a SIGTERM before that would kill it by default
        # action, however quick the command. On a loaded machine that can take well over a moment.
        wait_for(lambda: process.poll() is not None or catches(process.pid, signal.SIGTERM), timeout=60,
                 interval=0.02, message="the keep-alive shell to install its SIGTERM trap")
        assert process.poll() is None, "the keep-alive command must keep running"
        process.send_signal(signal.SIGTERM)
        # Promptly means before the sleep ends: a shell that held SIGTERM for its foreground `sleep 3600` would
        # take up to an hour, so a bound of a minute tells the two apart without timing a loaded machine.
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_image_precedence_spec_then_flavor_then_operator() -> None:
    assert container(build_statefulset(devserver(image="me/mine:1"), GPU, CONFIG))["image"] == "me/mine:1"
    assert (
        container(build_statefulset(devserver(), GPU, CONFIG))["image"] == "nvcr.io/nvidia/pytorch:24.10-py3"
    )
    assert container(build_statefulset(devserver(), CPU, CONFIG))["image"] == DEFAULT_IMAGE
    custom = OperatorConfig(default_image="registry.example/pytorch:2.6")
    assert container(build_statefulset(devserver(), CPU, custom))["image"] == "registry.example/pytorch:2.6"


def test_changing_a_gpu_flavor_to_a_cpu_one_leaves_nothing_of_the_gpu() -> None:
    server = devserver()
    gpu = build_statefulset(server, GPU, CONFIG)
    assert container(gpu)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod_spec(gpu)["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod_spec(gpu)["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]

    cpu = build_statefulset(server, CPU, CONFIG)
    assert "nvidia.com/gpu" not in json.dumps(cpu)
    assert "nodeSelector" not in pod_spec(cpu)
    assert "tolerations" not in pod_spec(cpu)
    assert container(cpu)["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"memory": "8Gi"},
    }
    assert empty_fields(cpu) == []
    # The emulator accepts the replacement as an update: only mutable fields changed.
    live = copy.deepcopy(gpu)
    strategies.prepare_for_create(STATEFULSET_RT, live, None)  # type: ignore[arg-type]
    replacement = copy.deepcopy(cpu)
    strategies.prepare_for_update(STATEFULSET_RT, replacement, live, None, None)  # type: ignore[arg-type]
    assert strategies.validate(STATEFULSET_RT, replacement, live, None) == []  # type: ignore[arg-type]
    assert immutable_changes(live, cpu) == []


def test_a_flavor_without_resources_gives_a_pod_without_a_resources_field() -> None:
    sts = build_statefulset(devserver(), flavor("tiny"), CONFIG)
    assert "resources" not in container(sts)
    assert empty_fields(sts) == []


def test_a_gpu_request_without_a_limit_gets_the_limit_the_apiserver_requires() -> None:
    requested_only = flavor("gpu", resources={"requests": {"cpu": "1", "nvidia.com/gpu": "2"}})
    resources = container(build_statefulset(devserver(), requested_only, CONFIG))["resources"]
    assert resources == {"requests": {"cpu": "1", "nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}


def test_cpu_pods_see_no_gpus_and_gpu_pods_leave_it_to_the_device_plugin() -> None:
    assert env_of(build_statefulset(devserver(), CPU, CONFIG))["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert "NVIDIA_VISIBLE_DEVICES" not in env_of(build_statefulset(devserver(), GPU, CONFIG))


def test_a_persistent_home_is_one_claim_per_rank_and_no_empty_dir() -> None:
    sts = build_statefulset(devserver(persistentHomeSize="100Gi"), CPU, CONFIG)
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "home"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "100Gi"}},
    }
    assert "home" not in {volume["name"] for volume in pod_spec(sts)["volumes"]}
    assert {"name": "home", "mountPath": "/home/dev"} in container(sts)["volumeMounts"]
    # Each claim is born owned by the DevServer too (not as its controller: the StatefulSet is), so a
    # deleted StatefulSet leaves the homes and a deleted DevServer takes them.
    assert claim["metadata"]["ownerReferences"] == [
        {"apiVersion": "devservers.io/v1", "kind": "DevServer", "name": "mydev",
         "uid": "6f1c1e8e-0000-4000-8000-000000000001", "controller": False, "blockOwnerDeletion": True}
    ]
    with_class = build_statefulset(
        devserver(persistentHomeSize="100Gi"), CPU, OperatorConfig(home_storage_class="gp3")
    )
    assert with_class["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "gp3"


def test_only_an_explicit_opt_out_leaves_the_home_an_empty_dir() -> None:
    for opted_out in (devserver(persistentHomeSize="0"), devserver(persistentHomeSize=0)):
        sts = build_statefulset(opted_out, CPU, CONFIG)
        assert "volumeClaimTemplates" not in sts["spec"]
        assert {"name": "home", "emptyDir": {}} in pod_spec(sts)["volumes"]
        assert {"name": "home", "mountPath": "/home/dev"} in container(sts)["volumeMounts"]
    # An operator whose default is no home at all: then unset means none too.
    assert "volumeClaimTemplates" not in build_statefulset(devserver(), CPU, OperatorConfig(default_home_size="0"))["spec"]


def _home_claim_size(sts: dict[str, Any]) -> str | None:
    claims = sts["spec"].get("volumeClaimTemplates") or []
    assert all(volume["name"] != "home" for volume in pod_spec(sts)["volumes"]) or not claims
    return claims[0]["spec"]["resources"]["requests"]["storage"] if claims else None


def test_every_devserver_gets_a_persistent_home_by_default() -> None:
    """Issue 14: a file in $HOME vanished on stop/start because no home was asked for."""
    assert CONFIG.default_home_size == "10Gi"
    assert _home_claim_size(build_statefulset(devserver(), CPU, CONFIG)) == "10Gi"
    roomy = flavor(resources={"requests": {"cpu": "2"}}, defaultHomeSize="200Gi")
    assert _home_claim_size(build_statefulset(devserver(), roomy, CONFIG)) == "200Gi"
    assert _home_claim_size(build_statefulset(devserver(persistentHomeSize="5Gi"), roomy, CONFIG)) == "5Gi"
    assert home_size_for(devserver(), roomy, OperatorConfig(default_home_size="1Gi")) == "200Gi"
    assert home_size_for(devserver(), CPU, OperatorConfig(default_home_size="1Gi")) == "1Gi"
    assert home_size_for(devserver(persistentHomeSize="0"), roomy, CONFIG) is None
    assert OperatorConfig.from_env({"DEVSERVERS_DEFAULT_HOME_SIZE": "0"}).default_home_size == "0"
    with pytest.raises(ValueError, match="DEVSERVERS_DEFAULT_HOME_SIZE"):
        OperatorConfig.from_env({"DEVSERVERS_DEFAULT_HOME_SIZE": "-3Gi"})


def test_the_shared_claim_is_mounted_at_shared_only_when_named() -> None:
    sts = build_statefulset(devserver(sharedVolumeClaimName="team-data"), CPU, CONFIG)
    assert {"name": "shared", "persistentVolumeClaim": {"claimName": "team-data"}} in pod_spec(sts)["volumes"]
    assert {"name": "shared", "mountPath": "/shared"} in container(sts)["volumeMounts"]
    without = build_statefulset(devserver(), CPU, CONFIG)
    assert "shared" not in json.dumps(pod_spec(without)["volumes"])
    assert all(mount["mountPath"] != "/shared" for mount in container(without)["volumeMounts"])


def test_dev_shm_is_memory_backed_and_sized_from_the_flavor() -> None:
    sts = build_statefulset(devserver(), CPU, CONFIG)
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}} in pod_spec(sts)["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container(sts)["volumeMounts"]
    assert shm_size_for(flavor(resources={"requests": {"memory": "3Gi"}}), CONFIG) == "1536Mi"
    assert shm_size_for(flavor(), CONFIG) == "2Gi"
    assert shm_size_for(CPU, OperatorConfig(shm_size="16Gi")) == "16Gi"


def test_the_restart_annotation_reaches_the_pod_template() -> None:
    plain = build_statefulset(devserver(), CPU, CONFIG)
    assert "annotations" not in plain["spec"]["template"]["metadata"]
    restarted = build_statefulset(
        devserver(annotations={RESTARTED_AT_ANNOTATION: "2025-01-31T13:00:00Z"}), CPU, CONFIG
    )
    assert restarted["spec"]["template"]["metadata"]["annotations"] == {
        RESTARTED_AT_ANNOTATION: "2025-01-31T13:00:00Z"
    }


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"persistentHomeSize": "50Gi", "sharedVolumeClaimName": "team"},
        {"mode": "distributed", "distributed": {"worldSize": 3, "ncclSettings": {"NCCL_DEBUG": "INFO"}}},
        {"image": "me/mine:1", "persistentHomeSize": "1Ti"},
    ],
)
@pytest.mark.parametrize("the_flavor", [CPU, GPU, flavor("tiny")], ids=["cpu", "gpu", "empty"])
def test_every_variant_passes_the_emulators_strict_decoding_and_validation(
    spec: dict[str, Any], the_flavor: DevServerFlavor
) -> None:
    objects = build_objects(devserver(**spec), the_flavor, CONFIG)
    accepted_by_emulator(objects.statefulset, objects.service)
    assert empty_fields(objects.statefulset) == []
    assert empty_fields(objects.service) == []


def test_the_strict_decoding_check_does_catch_a_misplaced_field() -> None:
    sts = build_statefulset(devserver(), CPU, CONFIG)
    misplaced = copy.deepcopy(sts)
    container(misplaced)["securityContext"]["fsGroupChangePolicy"] = "OnRootMismatch"
    assert openapi.unknown_fields("apps", "v1", "StatefulSet", misplaced) == [
        "spec.template.spec.containers[0].securityContext.fsGroupChangePolicy"
    ]


def test_the_longest_name_fits_every_label() -> None:
    name = "a" * MAX_NAME_LENGTH
    objects = build_objects(devserver(name=name, persistentHomeSize="1Gi"), CPU, CONFIG)
    accepted_by_emulator(objects.statefulset, objects.service)
    assert all(len(value) <= 63 for value in labels_for(devserver(name=name)).values())


# -- the Service -----------------------------------------------------------------------------------------


def test_the_service_is_headless_and_publishes_ranks_before_they_are_ready() -> None:
    service = build_service(devserver(), OperatorConfig(master_port=29400))
    assert service["metadata"]["name"] == "mydev"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["ports"] == [
        {"name": "torch-master", "port": 29400, "targetPort": 29400, "protocol": "TCP"}
    ]


# -- the distributed env contract ------------------------------------------------------------------------

CONTRACT = {"NNODES", "NPROC_PER_NODE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"}


def test_the_env_contract_for_two_nodes_of_two_processes_is_exact() -> None:
    server = devserver(
        mode="distributed",
        distributed={
            "worldSize": 2,
            "nprocsPerNode": 2,
            "backend": "gloo",
            "ncclSettings": {"NCCL_DEBUG": "INFO"},
        },
    )
    env = {item["name"]: item for item in distributed_env(server, CONFIG)}
    assert set(env) == (
        {"DEVSERVER_NAME", "DEVSERVER_OWNER", "DEVSERVER_MODE", "NCCL_DEBUG"}
        | CONTRACT
        | {f"PET_{name}" for name in CONTRACT}
    )
    for prefix in ("PET_", ""):
        assert env[f"{prefix}NNODES"]["value"] == "2"
        assert env[f"{prefix}NPROC_PER_NODE"]["value"] == "2"
        assert env[f"{prefix}MASTER_ADDR"]["value"] == "mydev-0.mydev.alice.svc.cluster.local"
        assert env[f"{prefix}MASTER_PORT"]["value"] == "29500"
        assert env[f"{prefix}NODE_RANK"]["valueFrom"] == {
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
        }
    assert env["NCCL_DEBUG"]["value"] == "INFO"
    assert env["DEVSERVER_MODE"]["value"] == "distributed"
    # torchrun sets per-process ranks; node-level ones would be wrong for every process but one.
    names = set(env_of(build_statefulset(server, CPU, CONFIG)))
    assert not names & {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"}


def test_a_standalone_server_gets_only_its_identity() -> None:
    env = distributed_env(devserver(), CONFIG)
    assert env == [
        {"name": "DEVSERVER_NAME", "value": "mydev"},
        {"name": "DEVSERVER_OWNER", "value": "alice"},
        {"name": "DEVSERVER_MODE", "value": "standalone"},
    ]
    assert not any(
        name.startswith("PET_") or "MASTER" in name
        for name in env_of(build_statefulset(devserver(), CPU, CONFIG))
    )


def test_the_master_address_follows_the_cluster_domain_and_port() -> None:
    server = devserver(mode="distributed")
    config = OperatorConfig(cluster_domain="corp.internal", master_port=23456)
    env = {item["name"]: item.get("value") for item in distributed_env(server, config)}
    assert env["PET_MASTER_ADDR"] == "mydev-0.mydev.alice.svc.corp.internal"
    assert env["MASTER_PORT"] == "23456"


@pytest.mark.parametrize(
    "key",
    ["LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "MASTER_ADDR", "PET_NODE_RANK", "RANK", "nccl_debug"],
)
def test_nccl_settings_cannot_override_the_contract_or_inject_variables(key: str) -> None:
    with pytest.raises(ValidationError, match=key):  # the model refuses it first ...
        DistributedSpec(nccl_settings={key: "x"})
    server = devserver(mode="distributed")
    # ... and the builder refuses an object that bypassed the model (e.g. an old stored object).
    assert server.spec.distributed is not None
    server.spec.distributed = DistributedSpec.model_construct(
        world_size=2, nprocs_per_node=1, backend="nccl", nccl_settings={"NCCL_DEBUG": "INFO", key: "x"}
    )
    with pytest.raises(InvalidSpecError, match=key) as caught:
        distributed_env(server, CONFIG)
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == "spec.distributed.ncclSettings"


# -- configuration ---------------------------------------------------------------------------------------


def test_config_from_an_empty_environment_is_the_documented_default() -> None:
    assert OperatorConfig.from_env({}) == OperatorConfig()
    assert OperatorConfig().default_image == "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"


def test_config_reads_every_setting_from_the_environment() -> None:
    config = OperatorConfig.from_env(
        {
            "DEVSERVERS_DEFAULT_IMAGE": "registry.example/pt:2",
            "DEVSERVERS_HOME_PATH": "/home/researcher",
            "DEVSERVERS_SHARED_PATH": "/data",
            "DEVSERVERS_MASTER_PORT": "29400",
            "DEVSERVERS_SHM_SIZE": "8Gi",
            "DEVSERVERS_RUN_AS_USER": "2000",
            "DEVSERVERS_CONTAINER_COMMAND": "sleep infinity",
            "DEVSERVERS_HOME_STORAGE_CLASS": "gp3",
            "DEVSERVERS_CLUSTER_DOMAIN": "corp.internal",
            "DEVSERVERS_TERMINATION_GRACE_SECONDS": "60",
            "DEVSERVERS_FS_GROUP": "",
        }
    )
    assert config == OperatorConfig(
        default_image="registry.example/pt:2",
        home_path="/home/researcher",
        shared_path="/data",
        master_port=29400,
        shm_size="8Gi",
        run_as_user=2000,
        command=("sleep", "infinity"),
        home_storage_class="gp3",
        cluster_domain="corp.internal",
        termination_grace_seconds=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEVSERVERS_MASTER_PORT", "http"),
        ("DEVSERVERS_MASTER_PORT", "70000"),
        ("DEVSERVERS_RUN_AS_USER", "0"),
        ("DEVSERVERS_HOME_PATH", "home"),
        ("DEVSERVERS_SHM_SIZE", "lots"),
        ("DEVSERVERS_CONTAINER_COMMAND", "sh -c 'unterminated"),
    ],
)
def test_config_refuses_unusable_values_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        OperatorConfig.from_env({variable: value})


# -- immutable fields ------------------------------------------------------------------------------------


def test_immutable_changes_ignore_server_defaults_and_template_changes() -> None:
    desired = build_statefulset(devserver(persistentHomeSize="10Gi"), GPU, CONFIG)
    live = copy.deepcopy(desired)
    strategies.prepare_for_create(STATEFULSET_RT, live, None)  # type: ignore[arg-type]
    live["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = "standard"
    assert immutable_changes(live, build_statefulset(devserver(persistentHomeSize="10Gi"), CPU, CONFIG)) == []


def test_adding_or_resizing_a_persistent_home_needs_a_recreate() -> None:
    live = build_statefulset(devserver(persistentHomeSize="0"), CPU, CONFIG)
    strategies.prepare_for_create(STATEFULSET_RT, live, None)  # type: ignore[arg-type]
    with_home = build_statefulset(devserver(persistentHomeSize="15Gi"), CPU, CONFIG)
    assert immutable_changes(live, with_home) == ["spec.volumeClaimTemplates"]
    # What the emulator (like the apiserver) would answer to a plain replace:
    replacement = copy.deepcopy(with_home)
    strategies.prepare_for_update(STATEFULSET_RT, replacement, live, None, None)  # type: ignore[arg-type]
    assert strategies.validate(STATEFULSET_RT, replacement, live, None) != []  # type: ignore[arg-type]
    bigger = build_statefulset(devserver(persistentHomeSize="20Gi"), CPU, CONFIG)
    assert immutable_changes(with_home, bigger) == ["spec.volumeClaimTemplates"]
