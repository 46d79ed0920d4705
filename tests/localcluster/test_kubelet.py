"""The kubelet against the emulator: pods really run, as processes, with the real status shapes.

Each test starts the emulator and its node agent on a fresh event loop (the agent talks to the API over
HTTPS, as on any cluster), creates objects through the in-process API as any client would, and polls with
a deadline for what a user would observe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from devservers_sdk.localcluster.apiserver.api import ClusterAPI
from devservers_sdk.localcluster.apiserver.errors import StatusError
from devservers_sdk.localcluster.cluster import ClusterRuntime
from devservers_sdk.localcluster.node import kubelet as kubelet_module
from devservers_sdk.localcluster.node import sandbox
from devservers_sdk.localcluster.node.kubelet import Kubelet, PodWorker

pytestmark = pytest.mark.emulator_only

PY = sys.executable


class Env:
    def __init__(self, api: ClusterAPI, kubelet: Kubelet, tmp: Path) -> None:
        self.api = api
        self.kubelet = kubelet
        self.tmp = tmp

    def rt(self, plural: str, group: str = "") -> Any:
        rt = self.api.registry.get(group, "v1", plural)
        assert rt is not None
        return rt

    def create(self, plural: str, obj: dict[str, Any], namespace: str | None = "default") -> dict[str, Any]:
        kind = {
            "pods": "Pod",
            "configmaps": "ConfigMap",
            "secrets": "Secret",
            "services": "Service",
            "persistentvolumes": "PersistentVolume",
            "persistentvolumeclaims": "PersistentVolumeClaim",
        }[plural]
        return self.api.create(self.rt(plural), namespace, {"apiVersion": "v1", "kind": kind, **obj})

    def pod(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return self.api.get(self.rt("pods"), namespace, name)

    def run_pod(
        self, name: str, *containers: dict[str, Any], namespace: str = "default", **spec: Any
    ) -> dict[str, Any]:
        full = [{"image": "busybox", **c} for c in containers]
        return self.create(
            "pods", {"metadata": {"name": name}, "spec": {"containers": full, **spec}}, namespace
        )

    def status(self, name: str, container: str | None = None) -> dict[str, Any]:
        status = self.pod(name).get("status", {})
        if container is None:
            return status
        statuses = status.get("containerStatuses", []) + status.get("initContainerStatuses", [])
        return next(s for s in statuses if s["name"] == container)

    def log(self, name: str, container: str, previous: bool = False) -> str:
        path = self.kubelet.log_path("default", name, container, previous=previous)
        return "".join(line.split(" ", 3)[3] for line in path.read_text().splitlines(keepends=True))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.api.list(self.rt("events"), "default")["items"]
            if e["involvedObject"].get("name") == name
        ]

    def delete(self, name: str) -> None:
        self.api.delete(self.rt("pods"), "default", name)

    def exists(self, name: str) -> bool:
        try:
            self.pod(name)
            return True
        except StatusError:
            return False


async def until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (StatusError, StopIteration, KeyError, FileNotFoundError) as exc:
            last = exc
        else:
            if last:
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def ready(status: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def running_ready(env: Env, name: str) -> Callable[[], bool]:
    return lambda: env.status(name).get("phase") == "Running" and ready(env.status(name))


def pid_alive(pid: int) -> bool:
    return sandbox.pid_alive(pid)


@pytest.fixture
def run_scenario(tmp_path: Path) -> Callable[..., None]:
    """Run ``scenario(env)`` against a fresh API + kubelet; the kubelet is stopped afterwards."""

    def run(scenario: Callable[[Env], Awaitable[None]], **kubelet_options: Any) -> None:
        async def main() -> None:
            # Without the controllers (no provisioner, no StatefulSets): each test plays them by hand.
            runtime = ClusterRuntime(
                state_dir=tmp_path / "state", kubelet_options=kubelet_options, controllers=False
            )
            await runtime.start()
            try:
                await scenario(Env(runtime.api, runtime.kubelet, tmp_path))
            finally:
                await runtime.stop()

        asyncio.run(main())

    return run


def test_node_is_registered_ready_with_capacity(run_scenario: Callable[..., None]) -> None:
    async def scenario(env: Env) -> None:
        node = env.api.get(env.rt("nodes"), None, "localcluster")
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == "localcluster"
        assert labels["kubernetes.io/os"] == "linux"
        assert labels["node.kubernetes.io/instance-type"] == "local"
        status = node["status"]
        assert status["capacity"]["nvidia.com/gpu"] == "2"
        assert status["allocatable"]["pods"] == "110"
        assert int(status["capacity"]["cpu"]) == os.cpu_count()
        assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
        ready_condition = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready_condition["status"] == "True" and ready_condition["reason"] == "KubeletReady"
        assert status["nodeInfo"]["kubeletVersion"].startswith("v1.")
        lease = env.api.get(
            env.api.registry.get("coordination.k8s.io", "v1", "leases"), "kube-node-lease", "localcluster"
        )
        assert lease["spec"]["holderIdentity"] == "localcluster"

    run_scenario(scenario, capacity={"nvidia.com/gpu": "2"})


def test_pod_runs_and_logs(run_scenario: Callable[..., None]) -> None:
    async def scenario(env: Env) -> None:
        env.run_pod("hello", {"name": "main", "command": ["sh", "-c", "echo hi; echo oops >&2; sleep 30"]})
        await until(running_ready(env, "hello"), "hello Running and Ready")
        status = env.status("hello")
        assert status["podIP"].startswith("127.") and status["podIP"] != "127.0.0.1"
        assert status["hostIP"] == "127.0.0.1" and status["startTime"] and status["qosClass"] == "BestEffort"
        assert [c["type"] for c in status["conditions"]] == [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ]
        main = env.status("hello", "main")
        assert main["ready"] is True and main["started"] is True and main["restartCount"] == 0
        assert main["containerID"].startswith("local://")
        assert main["image"] == "docker.io/library/busybox:latest"
        assert main["imageID"].startswith("docker.io/library/busybox@sha256:")
        assert "startedAt" in main["state"]["running"]
        await until(
            lambda: "hi\n" in env.log("hello", "main") and "oops\n" in env.log("hello", "main"), "the log"
        )
        raw = env.kubelet.log_path("default", "hello", "main").read_text().splitlines()
        assert any(line.endswith(" stdout F hi") for line in raw)
        assert any(line.endswith(" stderr F oops") for line in raw)
        assert env.kubelet.container_running("default", "hello", "main")
        # Events are written by the node's recorder in the background, as client-go's recorder does.
        wanted = {"Scheduled", "Pulling", "Pulled", "Created", "Started"}
        await until(lambda: wanted <= {e["reason"] for e in env.events("hello")}, f"the events {sorted(wanted)}")
        started = next(e for e in env.events("hello") if e["reason"] == "Started")
        assert started["source"]["component"] == "kubelet"
        assert started["involvedObject"]["fieldPath"] == "spec.containers{main}"

    run_scenario(scenario)


def test_environment(run_scenario: Callable[..., None]) -> None:
    async def scenario(env: Env) -> None:
        env.create("configmaps", {"metadata": {"name": "cfg"}, "data": {"color": "blue", "size": "L"}})
        env.create("secrets", {"metadata": {"name": "sec"}, "stringData": {"token": "s3cret"}})
        env.run_pod(
            "envy",
            {
                "name": "main",
                "command": [PY, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
                "env": [
                    {"name": "GREETING", "value": "hello"},
                    {"name": "MESSAGE", "value": "$(GREETING) world $(NOPE) $$(GREETING)"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {
                        "name": "CPU_LIMIT",
                        "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}},
                    },
                    {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
                    {
                        "name": "OPTIONAL",
                        "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": True}},
                    },
                ],
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}},
            },
            restartPolicy="Never",
        )
        pod = env.pod("envy")
        pod_meta = pod["metadata"]
        await until(lambda: env.status("envy").get("phase") == "Succeeded", "envy Succeeded")
        values = json.loads(env.log("envy", "main"))
        status = env.status("envy")
        assert values["GREETING"] == "hello"
        assert values["MESSAGE"] == "hello world $(NOPE) $(GREETING)"
        assert values["POD_NAME"] == "envy" and values["POD_NS"] == "default"
        assert values["POD_UID"] == pod_meta["uid"]
        assert values["APP"] == ""
        assert values["POD_IP"] == status["podIP"]
        assert values["NODE"] == "localcluster"
        assert values["CPU_LIMIT"] == "250"
        assert values["COLOR"] == "blue" and values["TOKEN"] == "s3cret"
        assert "OPTIONAL" not in values
        assert values["CFG_color"] == "blue" and values["CFG_size"] == "L"
        assert values["HOSTNAME"] == "envy"
        assert values["KUBERNETES_SERVICE_HOST"] and values["KUBERNETES_SERVICE_PORT"].isdigit()
        main = env.status("envy", "main")
        assert main["state"]["terminated"]["reason"] == "Completed"
        assert main["state"]["terminated"]["exitCode"] == 0
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Ready"]["reason"] == "PodCompleted"

    run_scenario(scenario, api_server_url="https://127.0.0.1:6443")


def test_missing_configmap_is_a_config_error_until_it_appears(run_scenario: Callable[..., None]) -> None:
    async def scenario(env: Env) -> None:
        env.run_pod(
            "late",
            {
                "name": "main",
                "command": ["sh", "-c", "echo $VALUE; sleep 30"],
                "env": [{"name": "VALUE", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "v"}}}],
            },
        )
        await until(
            lambda: (
                env.status("late", "main")["state"].get("waiting", {}).get("reason")
                == "CreateContainerConfigError"
            ),
            "CreateContainerConfigError",
        )
        assert env.status("late", "main")["state"]["waiting"]["message"] == 'configmap "later" not found'
        env.create("configmaps", {"metadata": {"name": "later"}, "data": {"v": "arrived"}})
        await until(running_ready(env, "late"), "late Running")
        await until(lambda: env.log("late", "main") == "arrived\n", "the value in the log")

    run_scenario(scenario)


def test_crash_loop_back_off(run_scenario: Callable[..., None]) -> None:
    async def scenario(env: Env) -> None:
        env.run_pod("crash", {"name": "main", "command": ["sh", "-c", "echo run; exit 3"]})
        await until(
            lambda: (
                env.status("crash", "main")["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
            ),
            "CrashLoopBackOff",
        )
        main = env.status("crash", "main")
        assert main["restartCount"] > 0
        assert main["lastState"]["terminated"]["exitCode"] == 3
        assert main["lastState"]["terminated"]["reason"] == "Error"
        assert main["state"]["waiting"]["message"].startswith(
            "back-off 1s restarting failed container=main pod=crash_default("
        )
        assert env.status("crash")["phase"] == "Running"
        await until(lambda: any(e["reason"] == "BackOff" and e["type"] == "Warning" for e in env.events("crash")),
                    "a BackOff warning")
        assert env.log("crash", "main", previous=True) == "run\n"
        # In back-off, lastState is the run that just failed, and both logs name it (as the kubelet does).
        waiting = await until(
            lambda: (s := env.status("crash", "main"))["state"].get("waiting") and s, "a back-off"
        )
        assert env.kubelet.log_path("default", "crash", "main", previous=True) == env.kubelet.log_path(
            "default", "crash", "main"
        )
        assert env.kubelet.log_path("default", "crash", "main").name == f"{waiting['restartCount']}.log"
        await until(lambda: env.status("crash", "main")["restartCount"] >= 3, "more restarts", timeout=60)

    run_scenario(scenario)


def test_restart_policies_and_init_containers(run_scenario: Callable[..., None]) -> None:
    async def scenario(env: Env) -> None:
        env.create(
            "pods",
            {
                "metadata": {"name": "job"},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "volumes": [{"name": "work", "emptyDir": {}}],
                    "initContainers": [
                        {
                            "name": "first",
                            "image": "busybox",
                            "command": ["sh", "-c", "echo one > /work/order"],
                            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                        },
                        {
                            "name": "second",
                            "image": "busybox",
                            "command": ["sh", "-c", "echo two >> /work/order"],
                            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                        },
                    ],
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "command": ["sh", "-c", "cat /work/order"],
                            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                        }
                    ],
                },
            },
        )
        await until(lambda: env.status("job").get("phase") == "Succeeded", "job Succeeded")
        assert env.log("job", "main") == "one\ntwo\n"
        inits = env.status("job")["initContainerStatuses"]
        assert [s["name"] for s in inits] == ["first", "second"]
        assert all(s["state"]["terminated"]["reason"] == "Completed" for s in inits)

        env.run_pod("fails", {"name": "main", "command": ["sh", "-c", "exit 1"]}, restartPolicy="Never")
        await until(lambda: env.status("fails").get("phase") == "Failed", "fails Failed")
        assert env.status("fails", "main")["restartCount"] == 0
        assert env.status("fails", "main")["state"]["terminated"]["exitCode"] == 1

        env.run_pod(
            "deadline",
            {"name": "main", "command": ["sleep", "60"]},
            activeDeadlineSeconds=1,
            terminationGracePeriodSeconds=1,
        )
        await until(lambda: env.status("deadline").get("phase") == "Failed", "deadline Failed")
        assert env.status("deadline")["reason"] == "DeadlineExceeded"

        env.create(
            "pods",
            {
                "metadata": {"name": "with-sidecar"},
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": [
                        {
                            "name": "side",
                            "image": "busybox",
                            "restartPolicy": "Always",
                            "command": ["sleep", "60"],
                        }
                    ],
                    "containers": [
                        {"name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 0.5"]}
                    ],
                },
            },
        )
        await until(lambda: env.status("with-sidecar").get("phase") == "Succeeded", "with-sidecar Succeeded")
        side = env.status("with-sidecar", "side")
        assert "terminated" in side["state"], side

        env.create(
            "pods",
            {
                "metadata": {"name": "bad-init"},
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": [{"name": "init", "image": "busybox", "command": ["false"]}],
                    "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "30"]}],
                },
            },
        )
        await until(lambda: env.status("bad-init").get("phase") == "Failed", "bad-init Failed")
        assert env.status("bad-init", "main")["state"]["waiting"]["reason"] == "PodInitializing"

    run_scenario(scenario)


def test_unschedulable_gpu_pod_waits_for_room(run_scenario: Callable[..., None]) -> None:
    def gpu_pod(name: str, count: int) -> dict[str, Any]:
        return {
            "name": "main",
            "command": ["sleep", "60"],
            "resources": {"limits": {"nvidia.com/gpu": str(count)}},
        }

    async def scenario(env: Env) -> None:
        env.run_pod("holder", gpu_pod("holder", 1))
        await until(running_ready(env, "holder"), "holder Running")
        env.run_pod("big", gpu_pod("big", 2))
        message = (
            "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: "
            "1 No preemption victims found for incoming pod."
        )

        def unschedulable() -> bool:
            conditions = {c["type"]: c for c in env.status("big").get("conditions", [])}
            scheduled = conditions.get("PodScheduled", {})
            return scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable"

        await until(unschedulable, "PodScheduled=False")
        scheduled = next(c for c in env.status("big")["conditions"] if c["type"] == "PodScheduled")
        assert scheduled["message"] == message
        assert env.status("big")["phase"] == "Pending"
        failed = [e for e in env.events("big") if e["reason"] == "FailedScheduling"]
        assert failed and failed[0]["type"] == "Warning" and failed[0]["message"] == message
        assert failed[0]["source"]["component"] == "default-scheduler"
        assert not env.pod("big")["spec"].get("nodeName")
        env.delete("holder")
        await until(running_ready(env, "big"), "big scheduled once the GPU is free")

    run_scenario(scenario, capacity={"nvidia.com/gpu": "2"})


def test_invalid_registry_gives_image_pull_back_off(run_scenario: Callable[..., None]) -> None:
    async def scenario(env: Env) -> None:
        env.run_pod(
            "pull", {"name": "main", "image": "registry.invalid/team/app:1", "command": ["sleep", "5"]}
        )
        await until(
            lambda: (
                env.status("pull", "main")["state"].get("waiting", {}).get("reason") == "ImagePullBackOff"
            ),
            "ImagePullBackOff",
        )
        assert (
            env.status("pull", "main")["state"]["waiting"]["message"]
            == 'Back-off pulling image "registry.invalid/team/app:1"'
        )
        def pull_events_told() -> bool:
            events = env.events("pull")
            return (
                any(e["reason"] == "Failed" and e["message"] == "Error: ErrImagePull" for e in events)
                and any(
                    e["reason"] == "Failed" and e["message"].startswith('Failed to pull image "registry.invalid')
                    for e in events
                )
                and any(e["reason"] == "BackOff" and "Back-off pulling image" in e["message"] for e in events)
            )

        await until(pull_events_told, "the ErrImagePull, Failed to pull and BackOff events")
        assert env.status("pull")["phase"] == "Pending"
        with pytest.raises(StatusError, match="is waiting to start: trying and failing to pull image"):
            env.kubelet.log_path("default", "pull", "main")

    run_scenario(scenario)


def test_deleting_a_pod_kills_its_processes(run_scenario: Callable[..., None]) -> None:
    async def scenario(env: Env) -> None:
        # A background grandchild in its own session must die too.
        env.run_pod(
            "victim",
            {
                "name": "main",
                "command": ["sh", "-c", "setsid sleep 1000 & echo child $!; echo self $$$$; exec sleep 1000"],
            },
            terminationGracePeriodSeconds=5,
        )
        await until(running_ready(env, "victim"), "victim Running")
        log = await until(
            lambda: (text := env.log("victim", "main")).count("\n") >= 2 and text, "pids in the log"
        )
        pids = [int(line.split()[1]) for line in log.splitlines()]
        assert all(pid_alive(pid) for pid in pids)
        started = time.monotonic()
        env.delete("victim")
        await until(lambda: not env.exists("victim"), "the pod to be gone")
        assert time.monotonic() - started < 4, "sleep dies on SIGTERM: no need to wait for the grace period"
        await until(lambda: not any(pid_alive(pid) for pid in pids), "the processes to die")
        await until(
            lambda: any(
                e["reason"] == "Killing" and e["message"] == "Stopping container main" for e in env.events("victim")
            ),
            "the Killing event",
        )

    run_scenario(scenario)


def test_a_stopped_container_never_takes_a_newer_one_for_its_own(
    run_scenario: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel hands a freed namespace's inode number to the next namespace made: a container stopped
    while another starts must not see the newcomer in "its" mount namespace and kill it as a straggler."""
    started = threading.Event()
    scan = sandbox.processes_in_mount_namespace
    old_namespace: list[str] = []

    def slow_scan(namespace: str) -> list[int]:
        # A loaded machine: the stopped container's last sweep runs after the next container has started.
        if namespace in old_namespace:
            started.wait(30)
        return scan(namespace)

    async def scenario(env: Env) -> None:
        env.run_pod("old", {"name": "main", "command": ["sh", "-c", "echo $$$$; exec sleep 1000"]},
                    terminationGracePeriodSeconds=5)
        old_pid = int(await until(lambda: env.log("old", "main").strip(), "old's pid"))
        old_namespace.append(os.readlink(f"/proc/{old_pid}/ns/mnt"))
        monkeypatch.setattr(sandbox, "processes_in_mount_namespace", slow_scan)
        env.delete("old")
        await until(lambda: not pid_alive(old_pid), "old's process to end")
        env.run_pod("new", {"name": "main", "command": ["sh", "-c", "echo $$$$; exec sleep 1000"]})
        new_pid = int(await until(lambda: env.log("new", "main").strip(), "new's pid"))
        await until(running_ready(env, "new"), "new Running")
        new_namespace = os.readlink(f"/proc/{new_pid}/ns/mnt")
        started.set()
        await until(lambda: not env.exists("old"), "old to be gone")
        assert pid_alive(new_pid), f"the new container, in {new_namespace} (the old one was in {old_namespace[0]}), was killed"
        assert env.status("new", "main")["restartCount"] == 0

    run_scenario(scenario)


def test_grace_period_then_sigkill(run_scenario: Callable[..., None]) -> None:
    async def scenario(env: Env) -> None:
        env.run_pod(
            "stubborn",
            {
                "name": "main",
                "command": [
                    "sh",
                    "-c",
                    "trap 'echo got TERM' TERM; echo $$$$; while true; do sleep 0.1; done",
                ],
            },
            terminationGracePeriodSeconds=1,
        )
        await until(running_ready(env, "stubborn"), "stubborn Running")
        pid = int(await until(lambda: env.log("stubborn", "main").strip(), "the pid"))
        started = time.monotonic()
        env.delete("stubborn")
        await until(lambda: not env.exists("stubborn"), "the pod to be gone")
        assert 0.9 < time.monotonic() - started < 5
        assert not pid_alive(pid)

    run_scenario(scenario)


def test_claim_outlives_pods_and_nothing_is_created_on_the_host(run_scenario: Callable[..., None]) -> None:
    mount_path = f"/home/dev-{os.getpid()}-{time.time_ns()}"

    async def scenario(env: Env) -> None:
        pv_dir = env.tmp / "volumes" / "pv-data"
        pv_dir.mkdir(parents=True)
        env.create(
            "persistentvolumes",
            {
                "metadata": {"name": "pv-data"},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "hostPath": {"path": str(pv_dir)},
                },
            },
            namespace=None,
        )
        env.create(
            "persistentvolumeclaims",
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                    "volumeName": "pv-data",
                    "storageClassName": "",
                },
            },
        )
        env.api.patch(
            env.rt("persistentvolumeclaims"),
            "default",
            "data",
            "merge",
            {"status": {"phase": "Bound"}},
            subresource="status",
        )

        def writer_spec(command: str) -> dict[str, Any]:
            return {
                "restartPolicy": "Never",
                "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "data"}}],
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["sh", "-c", command],
                        "workingDir": mount_path,
                        "volumeMounts": [{"name": "home", "mountPath": mount_path}],
                    }
                ],
            }

        env.create("pods", {"metadata": {"name": "writer"}, "spec": writer_spec("echo persisted > x; pwd")})
        await until(lambda: env.status("writer").get("phase") == "Succeeded", "writer Succeeded")
        if env.kubelet.isolation_mode != sandbox.ISOLATION_NONE:
            assert env.log("writer", "main") == f"{mount_path}\n"
        assert (pv_dir / "x").read_text() == "persisted\n"
        env.delete("writer")
        await until(lambda: not env.exists("writer"), "writer gone")
        env.create("pods", {"metadata": {"name": "writer"}, "spec": writer_spec("cat x")})
        await until(lambda: env.status("writer").get("phase") == "Succeeded", "second writer Succeeded")
        assert env.log("writer", "main") == "persisted\n"
        assert not os.path.exists(mount_path), "the mount point must not be created on the host"

    run_scenario(scenario)


def test_pods_resolve_each_other(run_scenario: Callable[..., None]) -> None:
    resolve = textwrap.dedent("""
        import socket, sys, time
        for _ in range(100):
            try:
                print(socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET)[0][4][0]); break
            except OSError:
                time.sleep(0.1)
        print(socket.gethostname())
    """)

    async def scenario(env: Env) -> None:
        for name in ("peer-0", "peer-1"):
            other = "peer-1" if name == "peer-0" else "peer-0"
            env.run_pod(
                name,
                {
                    "name": "main",
                    "command": [
                        "sh",
                        "-c",
                        f'{PY} -c "$0" {other}.peers.default.svc.cluster.local; getent hosts {other}.peers; '
                        "sleep 30",
                        resolve,
                    ],
                },
                hostname=name,
                subdomain="peers",
            )
        for name in ("peer-0", "peer-1"):
            await until(running_ready(env, name), f"{name} Running")
        ips = {name: env.status(name)["podIP"] for name in ("peer-0", "peer-1")}
        assert ips["peer-0"] != ips["peer-1"]
        for name, other in (("peer-0", "peer-1"), ("peer-1", "peer-0")):
            lines = (
                await until(
                    lambda name=name: (t := env.log(name, "main")).count("\n") >= 3 and t, f"{name}'s lookups"
                )
            ).splitlines()
            assert lines[0] == ips[other], "Python resolves the peer's FQDN"
            assert lines[1] == name, "the hostname is the pod's"
            assert lines[2].split()[0] == ips[other], "glibc resolves the peer too (C/C++ programs)"

    run_scenario(scenario)


def test_service_name_resolves_to_a_ready_pod_and_hosts_file_keeps_its_inode(
    run_scenario: Callable[..., None],
) -> None:
    async def scenario(env: Env) -> None:
        hosts = env.kubelet.hosts_path
        inode = hosts.stat().st_ino
        env.create(
            "pods",
            {
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "30"]}]},
            },
        )
        env.create(
            "services",
            {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
        )
        await until(running_ready(env, "web"), "web Running")
        ip = env.status("web")["podIP"]
        await until(
            lambda: f"{ip}\tweb.default.svc.cluster.local web.default.svc web.default\n" in hosts.read_text(),
            "the Service line",
        )
        assert hosts.stat().st_ino == inode

    run_scenario(scenario)


def test_probes(run_scenario: Callable[..., None]) -> None:
    server = (
        "import http.server, os; http.server.HTTPServer((os.environ['POD_IP'], 8080), "
        "http.server.SimpleHTTPRequestHandler).serve_forever()"
    )

    async def scenario(env: Env) -> None:
        env.run_pod(
            "web",
            {
                "name": "main",
                "command": ["sh", "-c", f'sleep 1; exec {PY} -c "{server}"'],
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
            },
        )
        await until(lambda: env.status("web", "main").get("state", {}).get("running"), "web started")
        assert not env.status("web", "main")["ready"], "not ready before the server listens"
        await until(running_ready(env, "web"), "web Ready once the probe passes")
        await until(
            lambda: any(
                e["reason"] == "Unhealthy" and e["message"].startswith('Readiness probe failed: Get "http://')
                for e in env.events("web")
            ),
            "the failed readiness probe's event",
        )

        env.run_pod(
            "sick",
            {
                "name": "main",
                "command": [
                    "sh",
                    "-c",
                    "touch /tmp/healthy-$HOSTNAME; sleep 1; rm /tmp/healthy-$HOSTNAME; sleep 60",
                ],
                "livenessProbe": {
                    "exec": {"command": ["sh", "-c", "test -e /tmp/healthy-$HOSTNAME"]},
                    "periodSeconds": 1,
                    "failureThreshold": 1,
                },
            },
            terminationGracePeriodSeconds=1,
        )
        await until(lambda: env.status("sick", "main")["restartCount"] >= 1, "a liveness restart", timeout=60)
        await until(
            lambda: any(
                e["reason"] == "Killing" and "failed liveness probe, will be restarted" in e["message"]
                for e in env.events("sick")
            ),
            "the liveness Killing event",
        )

        env.run_pod(
            "tcp",
            {
                "name": "main",
                "command": ["sleep", "30"],
                "readinessProbe": {"tcpSocket": {"port": 9}, "periodSeconds": 1},
            },
        )
        await until(
            lambda: any(
                e["reason"] == "Unhealthy" and "connect: connection refused" in e["message"]
                for e in env.events("tcp")
            ),
            "a refused TCP probe",
        )
        assert not env.status("tcp", "main")["ready"]

    run_scenario(scenario)


def test_exec_launch_spec_enters_the_container(run_scenario: Callable[..., None]) -> None:
    # A top-level directory that does not exist on the host: the container gets a new root.
    scratch = f"/lc-scratch-{os.getpid()}-{time.time_ns()}"

    async def scenario(env: Env) -> None:
        env.create("configmaps", {"metadata": {"name": "cfg"}, "data": {"app.conf": "x=1\n"}})
        env.run_pod(
            "box",
            {
                "name": "main",
                "command": ["sh", "-c", f"echo made > {scratch}/f; sleep 60"],
                "workingDir": "/etc/app",
                "volumeMounts": [
                    {"name": "cfg", "mountPath": "/etc/app"},
                    {"name": "scratch", "mountPath": scratch},
                ],
            },
            volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "scratch", "emptyDir": {}}],
        )
        await until(running_ready(env, "box"), "box Running")
        spec = env.kubelet.launch_spec("default", "box", None)
        assert spec.pod_uid == env.pod("box")["metadata"]["uid"]
        process = await asyncio.create_subprocess_exec(
            *spec.argv_prefix,
            "sh",
            "-c",
            f"cat app.conf; hostname; cat {scratch}/f; ls /proc/self/ >/dev/null && echo proc; sleep 60",
            env=spec.env,
            cwd=spec.cwd,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        env.kubelet.track_process("default", "box", process)
        assert process.stdout is not None
        lines = [await asyncio.wait_for(process.stdout.readline(), 10) for _ in range(4)]
        if env.kubelet.isolation_mode != sandbox.ISOLATION_NONE:
            assert lines == [b"x=1\n", b"box\n", b"made\n", b"proc\n"]
            assert not os.path.exists(scratch)
        with pytest.raises(StatusError, match="container nope is not valid for pod box"):
            env.kubelet.launch_spec("default", "box", "nope")
        env.create(
            "pods",
            {
                "metadata": {"name": "elsewhere"},
                "spec": {"schedulerName": "other", "containers": [{"name": "c", "image": "busybox"}]},
            },
        )
        # A pod bound to no node is none of this node's business (it watches only pods bound to it); the API
        # server refuses exec into it before asking any kubelet (tests/localcluster/test_pod_exec.py).
        with pytest.raises(StatusError, match='pods "elsewhere" not found'):
            env.kubelet.launch_spec("default", "elsewhere", None)
        env.delete("box")
        await asyncio.wait_for(process.communicate(), 10)  # the exec'd process dies with the pod

    run_scenario(scenario)


def test_finished_exec_sessions_are_forgotten_and_live_ones_die_with_the_pod(
    run_scenario: Callable[..., None],
) -> None:
    """A long-lived pod used to keep every exec session's pid, and its deletion SIGKILLed whatever held them by then."""

    async def scenario(env: Env) -> None:
        env.run_pod("box", {"name": "main", "command": ["sleep", "60"]})
        await until(running_ready(env, "box"), "box Running")
        spec = env.kubelet.launch_spec("default", "box", None)

        async def exec_in_box(*command: str) -> asyncio.subprocess.Process:
            process = await asyncio.create_subprocess_exec(
                *spec.argv_prefix, *command, env=spec.env, cwd=spec.cwd, start_new_session=True
            )
            env.kubelet.track_process("default", "box", process.pid)
            return process

        finished = await exec_in_box("true")
        assert await asyncio.wait_for(finished.wait(), 10) == 0
        live = await exec_in_box("sleep", "60")
        worker = env.kubelet._by_name[("default", "box")]
        assert {g.pgid for g in worker.exec_groups} == {live.pid}
        env.delete("box")
        assert await asyncio.wait_for(live.wait(), 10) == -9

    run_scenario(scenario)


def test_a_pods_stop_ends_its_start_even_if_a_cancellation_is_swallowed(
    run_scenario: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's wait_for swallows a cancellation that arrives as its awaitable finishes. The lifecycle of a
    pod deleted at that moment went on to start its containers, and the stop waited for them for good: the pod
    stayed Running and terminating, with no Killing event."""
    preparing: list[PodWorker] = []
    prepare = PodWorker._prepare_sandbox

    async def prepare_swallowing_a_cancellation(worker: PodWorker) -> None:
        preparing.append(worker)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)  # until the stop cancels the lifecycle
        await prepare(worker)

    monkeypatch.setattr(PodWorker, "_prepare_sandbox", prepare_swallowing_a_cancellation)

    async def scenario(env: Env) -> None:
        env.run_pod("box", {"name": "main", "command": ["sleep", "600"]})
        await until(lambda: preparing, "the pod's sandbox being prepared")
        env.delete("box")
        await until(lambda: not env.exists("box"), "the pod's deletion to finish")
        assert not preparing[0].containers["main"].process_alive

    run_scenario(scenario)


def test_a_pod_deleted_while_its_container_starts_goes_without_its_grace_period(
    run_scenario: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled between spawning the shim and watching it, the start left a run nobody waited for: the stop sent
    SIGTERM, the shim ended, and the node still waited the whole grace period for the container to exit."""
    starting = threading.Event()
    release = threading.Event()
    read_report = kubelet_module._read_all

    def read_report_once_released(fd: int) -> str:
        starting.set()
        release.wait(120)
        return read_report(fd)

    monkeypatch.setattr(kubelet_module, "_read_all", read_report_once_released)

    async def scenario(env: Env) -> None:
        try:
            env.run_pod("box", {"name": "main", "command": ["sleep", "600"]}, terminationGracePeriodSeconds=600)
            await until(starting.is_set, "the container's shim to start")
            worker = env.kubelet._by_name[("default", "box")]
            env.delete("box")
            await until(lambda: not env.exists("box"), "the pod's deletion to finish, long before its grace period")
            assert not worker.containers["main"].process_alive
        finally:
            release.set()

    run_scenario(scenario)


def test_stop_leaves_no_process(run_scenario: Callable[..., None]) -> None:
    pids: list[int] = []

    async def scenario(env: Env) -> None:
        env.run_pod(
            "a",
            {"name": "main", "command": ["sh", "-c", "sleep 1000 & echo $!; wait"]},
            terminationGracePeriodSeconds=60,
        )
        env.run_pod("b", {"name": "main", "command": ["sh", "-c", "trap '' TERM; echo $$$$; sleep 1000"]})
        for name in ("a", "b"):
            pids.append(int(await until(lambda name=name: env.log(name, "main").strip(), f"{name}'s pid")))
        env.delete("a")  # a deletion with a long grace period under way must not delay the shutdown

    started = time.monotonic()
    run_scenario(scenario)
    assert time.monotonic() - started < 15
    assert pids and not any(pid_alive(pid) for pid in pids)


def test_fallback_mode_without_namespaces(run_scenario: Callable[..., None]) -> None:
    script = textwrap.dedent("""
        import os, socket, sys
        root = os.environ["LOCALCLUSTER_ROOT"]
        print(open(os.path.join(root, "data", "greeting")).read().strip())
        print(socket.gethostbyname(sys.argv[1]))
        print(os.environ["HOME"] == os.path.join(root, "data"))
    """)

    async def scenario(env: Env) -> None:
        assert env.kubelet.isolation_mode == "none"
        env.create("configmaps", {"metadata": {"name": "cfg"}, "data": {"greeting": "hi"}})
        env.run_pod("target", {"name": "main", "command": ["sleep", "30"]}, hostname="target", subdomain="s")
        await until(running_ready(env, "target"), "target Running")
        env.run_pod(
            "probe",
            {
                "name": "main",
                "command": [PY, "-c", script, "target.s.default.svc.cluster.local"],
                "env": [{"name": "HOME", "value": "/data"}],
                "volumeMounts": [{"name": "cfg", "mountPath": "/data"}],
            },
            volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}],
            restartPolicy="Never",
        )
        await until(lambda: env.status("probe").get("phase") in ("Succeeded", "Failed"), "probe finished")
        assert env.log("probe", "main").splitlines() == ["hi", env.status("target")["podIP"], "True"]

    run_scenario(scenario, isolation="none")


def test_nothing_survives_a_sigkilled_cluster(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: the shims take their containers down when the cluster process dies hard."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from devservers_sdk.localcluster.cluster import ClusterRuntime

        async def main():
            runtime = ClusterRuntime(state_dir=Path({str(tmp_path / "state")!r}))
            await runtime.start()
            api, kubelet = runtime.api, runtime.kubelet
            pods = api.registry.get("", "v1", "pods")
            api.create(pods, "default", {{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "orphan"}},
                "spec": {{"containers": [{{"name": "main", "image": "busybox",
                    "command": ["sh", "-c", "setsid sleep 1000 & echo $!; exec sleep 1000"]}}]}}}})
            while True:
                await asyncio.sleep(0.05)
                try:
                    path = kubelet.log_path("default", "orphan", "main")
                    text = path.read_text()
                except Exception:
                    continue
                if text:
                    print(text.split(" ", 3)[3].strip(), flush=True)
                    await asyncio.sleep(1000)

        asyncio.run(main())
    """)
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip().isdigit(), line
        grandchild = int(line)
        assert pid_alive(grandchild)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        deadline = time.monotonic() + 10
        while pid_alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(grandchild)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(10)


def test_image_update_restarts_the_container_and_volumes_follow_configmaps(
    run_scenario: Callable[..., None],
) -> None:
    async def scenario(env: Env) -> None:
        env.create("configmaps", {"metadata": {"name": "cfg"}, "data": {"v": "one"}})
        env.run_pod(
            "up",
            {
                "name": "main",
                "command": ["sh", "-c", "while true; do cat /cfg/v; echo; sleep 0.1; done"],
                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}],
            },
            volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}],
            restartPolicy="Never",
            terminationGracePeriodSeconds=1,
        )
        await until(running_ready(env, "up"), "up Running")
        await until(lambda: "one\n" in env.log("up", "main"), "the first value")
        env.api.patch(env.rt("configmaps"), "default", "cfg", "merge", {"data": {"v": "two"}})
        await until(lambda: "two\n" in env.log("up", "main"), "the updated value in the mounted file")
        env.api.patch(
            env.rt("pods"),
            "default",
            "up",
            "strategic",
            {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}},
        )
        await until(
            lambda: env.status("up", "main")["restartCount"] == 1 and env.status("up", "main")["ready"],
            "a restart with the new image",
        )
        assert env.status("up", "main")["image"] == "docker.io/library/busybox:1.37"
        await until(
            lambda: any("definition changed, will be restarted" in e["message"] for e in env.events("up")),
            "the definition-changed event",
        )

    run_scenario(scenario)


def test_unbound_claim_keeps_the_pod_pending_until_bound(run_scenario: Callable[..., None]) -> None:
    async def scenario(env: Env) -> None:
        env.create(
            "persistentvolumeclaims",
            {
                "metadata": {"name": "later"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            },
        )
        env.run_pod(
            "waits",
            {
                "name": "main",
                "command": ["sh", "-c", "cat /data/f; sleep 30"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            },
            volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "later"}}],
        )
        message = (
            "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 "
            "nodes are available: 1 Preemption is not helpful for scheduling."
        )
        await until(
            lambda: any(
                e["reason"] == "FailedScheduling" and e["message"] == message for e in env.events("waits")
            ),
            "FailedScheduling for the unbound claim",
        )
        assert env.status("waits")["phase"] == "Pending"
        pv_dir = env.tmp / "pv"
        pv_dir.mkdir()
        (pv_dir / "f").write_text("bound\n")
        env.create(
            "persistentvolumes",
            {
                "metadata": {"name": "pv"},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "local": {"path": str(pv_dir)},
                },
            },
            namespace=None,
        )
        claims = env.rt("persistentvolumeclaims")
        claim = env.api.get(claims, "default", "later")
        env.api.update(claims, "default", "later", {**claim, "spec": {**claim["spec"], "volumeName": "pv"}})
        env.api.patch(
            claims, "default", "later", "merge", {"status": {"phase": "Bound"}}, subresource="status"
        )
        await until(running_ready(env, "waits"), "waits Running once the claim is bound")
        await until(lambda: env.log("waits", "main") == "bound\n", "the volume's content")

    run_scenario(scenario)


def test_a_pod_marked_not_ready_by_someone_else_is_made_ready_again(run_scenario: Callable[..., None]) -> None:
    """kube-controller-manager marks the pods of a node it cannot reach not Ready; once the node is back, its
    kubelet writes its own view again. Ours did not, and after an API server outage a DevServer's pods stayed
    unready (and the DevServer Starting) for good, though their containers ran and passed their probes."""

    async def scenario(env: Env) -> None:
        env.run_pod("web", {"name": "main", "command": ["sleep", "60"]})
        await until(running_ready(env, "web"), "web Running and Ready")
        # What the node lifecycle controller's MarkPodsNotReady writes: Ready False, nothing else changed.
        conditions = [
            {**c, "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"} if c["type"] == "Ready" else c
            for c in env.status("web")["conditions"]
        ]
        env.api.patch(env.rt("pods"), "default", "web", "merge", {"status": {"conditions": conditions}},
                      subresource="status")
        await until(running_ready(env, "web"), "web Ready again, written back by its node")
        ready = next(c for c in env.status("web")["conditions"] if c["type"] == "Ready")
        assert ready["lastTransitionTime"] != "2026-01-01T00:00:00Z", ready

    run_scenario(scenario)


def test_an_overdue_deletion_says_where_the_pods_stop_waits(
    run_scenario: Callable[..., None], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A pod left Terminating is all a user sees of a stop that hung, and only the node knows where it waits: a
    loaded trial's restarted operator pod stayed "Running, terminating" for minutes with nothing to go on."""
    monkeypatch.setattr(kubelet_module, "DELETION_OVERDUE_SECONDS", 0.5)
    monkeypatch.setattr(kubelet_module, "DELETION_WATCHDOG_SECONDS", 0.1)
    release = asyncio.Event()
    terminate = PodWorker.terminate

    async def held_terminate(self: PodWorker, grace: float) -> None:
        await release.wait()
        await terminate(self, grace)

    monkeypatch.setattr(PodWorker, "terminate", held_terminate)

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "deletion overdue" in r.getMessage()]

    async def scenario(env: Env) -> None:
        env.run_pod("stuck", {"name": "main", "command": ["sleep", "60"]}, terminationGracePeriodSeconds=1)
        await until(running_ready(env, "stuck"), "stuck Running")
        env.delete("stuck")
        try:
            said = await until(warnings, "a WARNING about the overdue deletion")
        finally:
            release.set()
        assert "default/stuck" in said[0], said
        assert "stop requested: True (grace 1s), terminating: False" in said[0], said
        assert "main alive" in said[0], said
        assert "pod: _run:" in said[0] and "held_terminate:" in said[0], said  # where the pod's task waits
        await until(lambda: not env.exists("stuck"), "stuck deleted once its stop goes on")
        assert len(warnings()) == 1, warnings()  # once per pod, not every sweep

    run_scenario(scenario)
