"""What the API server answers before it proxies exec, attach, logs or port-forward to a kubelet.

Runs on both control planes: for a pod bound to no node, a real kube-apiserver answers itself, without asking
any kubelet (an empty log; a 400 for exec), and the emulator must say the same.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

KUBECTL = str(Path(sys.executable).with_name("kubectl"))


@pytest.fixture
def core(kubeconfig: str) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(kubeconfig))


def unscheduled_pod(core: client.CoreV1Api, namespace: str) -> str:
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "nowhere"},
        # No scheduler will ever bind it: it stays without spec.nodeName.
        "spec": {"schedulerName": "nobody", "containers": [{"name": "main", "image": "busybox"}]},
    })
    return "nowhere"


def test_logs_of_a_pod_without_a_node_are_no_content(core: client.CoreV1Api, namespace: str) -> None:
    name = unscheduled_pod(core, namespace)
    response = core.read_namespaced_pod_log(name, namespace, _preload_content=False)
    assert (response.status, response.data) == (204, b"")
    assert "Content-Type" not in response.headers
    # The container name is still checked.
    with pytest.raises(ApiException) as refused:
        core.read_namespaced_pod_log(name, namespace, container="other")
    assert refused.value.status == 400
    assert f"container other is not valid for pod {name}" in str(refused.value.body)


def test_kubectl_exec_into_a_pod_without_a_node_says_why(kubeconfig: str, core: client.CoreV1Api,
                                                          namespace: str) -> None:
    name = unscheduled_pod(core, namespace)
    result = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "-n", namespace, "exec", name, "--", "true"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"pod {name} does not have a host assigned" in result.stderr
