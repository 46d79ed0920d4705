"""``devservers_sdk.kube_async`` over the real wire: plain dicts in and out, API errors mapped to the SDK's
error classes, whole-object replace, and exec with exit codes."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from devservers_sdk.errors import (
    AlreadyExistsError,
    DevServerNotFoundError,
    ExecError,
    FlavorNotFoundError,
    NotFoundError,
)
from devservers_sdk.kube_async import CONFIGMAPS, DEVSERVERS, FLAVORS, PODS, PVCS, SERVICES, AsyncKube
from devservers_sdk.localcluster.pytest_plugin import wait_for
from tests.operator.conftest import kubectl

T = TypeVar("T")


def run(kubeconfig: str, body: Callable[[AsyncKube], Awaitable[T]]) -> T:
    async def main() -> T:
        kube = await AsyncKube.connect(kubeconfig=kubeconfig)
        try:
            return await body(kube)
        finally:
            await kube.close()

    return asyncio.run(main())


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]},
    }


def test_missing_objects_map_to_the_sdk_errors(crds: str, namespace: str) -> None:
    async def body(kube: AsyncKube) -> None:
        with pytest.raises(DevServerNotFoundError, match="devctl list"):
            await kube.get(DEVSERVERS, "nope", namespace=namespace)
        with pytest.raises(FlavorNotFoundError):
            await kube.get(FLAVORS, "nope")
        with pytest.raises(NotFoundError):
            await kube.get(PVCS, "nope", namespace=namespace)
        await kube.delete(PODS, "nope", namespace=namespace, missing_ok=True)  # a missing object may be fine
        with pytest.raises(NotFoundError):
            await kube.delete(PODS, "nope", namespace=namespace)
        with pytest.raises(ValueError, match="all namespaces"):
            await kube.list(PODS, namespace=None)
        assert (await kube.list(PODS, namespace=namespace, label_selector="app=none"))["items"] == []
        flavors = {flavor["metadata"]["name"] for flavor in (await kube.list(FLAVORS))["items"]}
        assert {"cpu-small", "gpu-large"} <= flavors

    run(crds, body)


def test_create_replace_and_exec(crds: str, namespace: str) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc", "namespace": namespace, "labels": {"a": "1"}},
        "spec": {"clusterIP": "None", "selector": {"app": "x"}, "ports": [{"name": "p", "port": 80}]},
    }

    async def services(kube: AsyncKube) -> dict[str, Any]:
        await kube.create(SERVICES, service)
        with pytest.raises(AlreadyExistsError):
            await kube.create(SERVICES, service)
        smaller = {**service, "spec": {**service["spec"], "selector": {}}}
        return await kube.replace(SERVICES, smaller)

    replaced = run(crds, services)
    assert not replaced["spec"].get("selector")  # replace removes what the manifest omits

    kubectl(crds, "-n", namespace, "run", "box", "--image=busybox", "--", "sleep", "3600")

    def running() -> bool:
        async def phase(kube: AsyncKube) -> str:
            pods = (await kube.list(PODS, namespace=namespace, label_selector="run=box"))["items"]
            return str(pods[0]["status"].get("phase")) if pods else ""

        return run(crds, phase) == "Running"

    wait_for(running, message="the pod to run")

    async def execs(kube: AsyncKube) -> tuple[subprocess.CompletedProcess[bytes], ...]:
        ok = await kube.exec(namespace, "box", ["sh", "-c", "echo out; echo err >&2"])
        failed = await kube.exec(namespace, "box", ["sh", "-c", "exit 3"])
        with pytest.raises(NotFoundError):
            await kube.exec(namespace, "ghost", ["true"])
        with pytest.raises(ExecError):
            await kube.exec(namespace, "box", ["sleep", "5"], timeout=0.5)
        return ok, failed

    ok, failed = run(crds, execs)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, b"out\n", b"err\n")
    assert failed.returncode == 3


def test_watch_streams_events_from_a_listed_version(crds: str, namespace: str) -> None:
    async def body(kube: AsyncKube) -> tuple[str, str]:
        listed = await kube.list(CONFIGMAPS, namespace=namespace)
        version = listed["metadata"]["resourceVersion"]
        await kube.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched"}},
                          namespace=namespace)
        events = kube.watch(CONFIGMAPS, namespace=namespace, field_selector="metadata.name=watched",
                            resource_version=version, timeout_seconds=30)
        async for kind, obj in events:
            if kind != "BOOKMARK":
                await events.aclose()
                return kind, obj["metadata"]["name"]
        raise AssertionError("the watch ended without an event for the ConfigMap created")

    assert run(crds, body) == ("ADDED", "watched")
