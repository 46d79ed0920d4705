"""The CRD round trip: generated CRDs applied with the real kubectl, DevServers made by the SDK and read back
by kubectl (printer columns), and invalid specs refused by the server with the field named."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devservers_sdk.client import DevServerClient
from devservers_sdk.errors import InvalidSpecError
from devservers_sdk.kube import DEVSERVERS, Kube

ROOT = Path(__file__).resolve().parents[2]
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def test_generated_crds_apply_cleanly(run_kubectl: Kubectl) -> None:
    """Re-applying the generated files is a no-op: what the server stored is what we generated."""
    out = run_kubectl("apply", "-f", str(ROOT / "crds")).stdout
    assert "devservers.devservers.io unchanged" in out and "devserverflavors.devservers.io unchanged" in out
    names = run_kubectl("get", "crd", "-o", "name").stdout.split()
    assert {"customresourcedefinition.apiextensions.k8s.io/devservers.devservers.io",
            "customresourcedefinition.apiextensions.k8s.io/devserverflavors.devservers.io"} <= set(names)


def test_kubectl_reads_what_the_sdk_created(client: DevServerClient, run_kubectl: Kubectl,
                                            set_status: Callable[..., Any], admin_user: str) -> None:
    client.create("mydev", flavor="gpu-small", image="python:3.12", time_to_live="4h")
    set_status("mydev", {"phase": "Running", "readyReplicas": 1, "replicas": 1,
                         "expiresAt": "2099-01-01T00:00:00Z"})
    table = run_kubectl("get", "devservers.devservers.io").stdout.splitlines()
    assert table[0].split() == ["NAME", "OWNER", "FLAVOR", "MODE", "PHASE", "READY", "EXPIRES", "AGE"]
    assert table[1].split()[:6] == ["mydev", admin_user, "gpu-small", "standalone", "Running", "1"]
    wide = run_kubectl("get", "dev", "-o", "wide").stdout.splitlines()  # the short name, with priority columns
    assert "REPLICAS" in wide[0].split() and "IMAGE" in wide[0].split() and "python:3.12" in wide[1]
    stored = json.loads(run_kubectl("get", "devserver", "mydev", "-o", "json").stdout)
    assert stored["spec"]["lifecycle"] == {"autoShutdown": True, "timeToLive": "4h"}
    assert stored["spec"]["mode"] == "standalone"
    assert "devserver.devservers.io/mydev" in run_kubectl("get", "devservers", "-o", "name").stdout


def test_kubectl_get_devservers_shows_only_devservers(client: DevServerClient, run_kubectl: Kubectl) -> None:
    client.create("mydev", flavor="cpu-small")
    table = run_kubectl("get", "devservers").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "OWNER", "FLAVOR"] and len(table) == 2


def manifest(spec: dict[str, Any], name: str = "raw") -> dict[str, Any]:
    return {"apiVersion": "devservers.io/v1", "kind": "DevServer", "metadata": {"name": name},
            "spec": {"owner": "alice", "flavor": "cpu-small", **spec}}


INVALID = [
    ({"mode": "huge"}, "spec.mode", "Unsupported value"),
    ({"lifecycle": {"timeToLive": "8"}}, "spec.lifecycle.timeToLive", "e.g. 30m, 4h, 1h30m, 2d"),
    ({"flavor": "GPU_Large"}, "spec.flavor", 'e.g. "gpu-small"'),
    ({"image": "my image"}, "spec.image", "without spaces"),
    ({"lifecycle": {"idleTimeout": 5}}, "spec.lifecycle.idleTimeout", "greater than or equal to 60"),
    ({"mode": "distributed", "distributed": {"worldSize": 0}}, "spec.distributed.worldSize",
     "greater than or equal to 1"),
    ({"owner": " alice@example.com"}, "spec.owner", "as `kubectl auth whoami` shows it"),
]


@pytest.mark.parametrize(("spec", "field", "why"), INVALID, ids=[row[1] + "-" + row[2][:12] for row in INVALID])
def test_server_refuses_invalid_specs_naming_the_field(run_kubectl: Kubectl, kube: Kube, namespace: str,
                                                      spec: dict[str, Any], field: str, why: str) -> None:
    refused = run_kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest(spec)), check=False)
    assert refused.returncode != 0
    assert field in refused.stderr and why in refused.stderr, refused.stderr
    with pytest.raises(InvalidSpecError) as caught:  # the same, sent raw by the SDK's transport
        kube.create(DEVSERVERS, manifest(spec), namespace=namespace)
    assert caught.value.field == field and caught.value.status == 422


def test_server_refuses_unknown_and_missing_fields(run_kubectl: Kubectl, kube: Kube, namespace: str) -> None:
    typo = manifest({"mode": "distributed", "distributed": {"worldsize": 2}})
    refused = run_kubectl("apply", "-f", "-", input=yaml.safe_dump(typo), check=False)
    assert refused.returncode != 0 and 'unknown field "spec.distributed.worldsize"' in refused.stderr
    missing = {"apiVersion": "devservers.io/v1", "kind": "DevServer", "metadata": {"name": "raw"},
               "spec": {"owner": "alice"}}
    with pytest.raises(InvalidSpecError, match=r"spec\.flavor: Required value") as caught:
        kube.create(DEVSERVERS, missing, namespace=namespace)
    assert caught.value.field == "spec.flavor"
