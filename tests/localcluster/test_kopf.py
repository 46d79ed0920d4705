"""kopf, run as a real operator process with ``kopf run -m``, against the local cluster.

kopf exercises the emulator the way our own operator will: CRD discovery, LIST then WATCH from the
list's resourceVersion, finalizers, status patches, annotations it stores its progress in, and Events.
The probe's handlers must each run exactly once: a duplicate means a replayed or spurious watch event,
a missing one a lost event.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client, config

from devservers_sdk.localcluster.pytest_plugin import ClusterHandle, wait_for
from tests.localcluster.kopf_probe import GROUP, PLURAL, VERSION

REPO = Path(__file__).resolve().parents[2]

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "gadget", "kind": "Gadget"},
        "versions": [{
            "name": VERSION, "served": True, "storage": True, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"size": {"type": "string"}}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            }}},
        }],
    },
}


@pytest.fixture
def gadget_crd(cluster: ClusterHandle) -> None:
    api_client = config.new_client_from_config(cluster.kubeconfig)
    extensions = client.ApiextensionsV1Api(api_client)
    try:
        extensions.create_custom_resource_definition(CRD)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    # A real API server answers 429 "storage is (re)initializing" for a moment after a CRD is made; kopf logs
    # that as an error, which this test counts. Start it once the resource is served.
    objects = client.CustomObjectsApi(api_client)

    def served() -> bool:
        try:
            objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        except client.ApiException:
            return False
        return True

    wait_for(served, timeout=60, message="the Gadget resource to be served")
    api_client.close()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_kopf_handlers_each_run_exactly_once(cluster: ClusterHandle, namespace: str, gadget_crd: None,
                                              tmp_path: Path) -> None:
    log_path = tmp_path / "handlers.log"
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "KOPF_PROBE_LOG": str(log_path),
           "PYTHONPATH": str(REPO)}
    operator = subprocess.Popen(
        [sys.executable, "-m", "kopf", "run", "--standalone", "-n", namespace, "-m", "tests.localcluster.kopf_probe"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    objects = client.CustomObjectsApi(config.new_client_from_config(cluster.kubeconfig))
    try:
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": "s"}})
        wait_for(lambda: "timer g1" in _lines(log_path) and "create g1 size=s" in _lines(log_path),
                 timeout=60, message="kopf create and timer handlers")
        wait_for(lambda: objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "g1")
                 .get("status", {}).get("seen") == "s", message="status patched by kopf")

        objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "g1", {"spec": {"size": "m"}})
        wait_for(lambda: "update g1 s->m" in _lines(log_path), timeout=60, message="kopf update handler")

        objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "g1")
        wait_for(lambda: "delete g1" in _lines(log_path), timeout=60, message="kopf delete handler")

        def gone() -> bool:
            try:
                objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "g1")
            except client.ApiException as exc:
                return exc.status == 404
            return False

        wait_for(gone, timeout=60, message="kopf to remove its finalizer so the object is deleted")
        # Give a duplicate delivery time to show up before counting.
        wait_for(lambda: True, timeout=1)
        operator.send_signal(signal.SIGINT)
        output, _ = operator.communicate(timeout=60)
    finally:
        if operator.poll() is None:
            operator.kill()
            operator.communicate()
    assert sorted(_lines(log_path)) == sorted(["create g1 size=s", "timer g1", "update g1 s->m", "delete g1"]), output
    assert "Traceback" not in output, output
    # kopf warns when a patch response disagrees with the patch or a watch misbehaves: none may occur.
    assert "[WARNING" not in output and "[ERROR" not in output, output
