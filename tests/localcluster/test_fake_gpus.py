"""Fake GPUs on the local node: ``LocalCluster(gpus=N)`` and ``serve --gpus N`` make a Node that offers
``nvidia.com/gpu`` with NVIDIA's labels, as a GPU node does, and every local Node says it is the local cluster."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client, config

from devservers_sdk.localcluster import LocalCluster


def _node(kubeconfig: str) -> client.V1Node:
    api = client.CoreV1Api(config.new_client_from_config(kubeconfig))
    deadline = time.monotonic() + 30
    while not (nodes := api.list_node().items) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert nodes, "the node did not register within 30 s"
    return nodes[0]


def test_local_cluster_gpus_are_capacity_and_labels() -> None:
    with LocalCluster(gpus=4) as cluster:
        node = _node(cluster.kubeconfig)
        assert node.status.capacity["nvidia.com/gpu"] == "4" and node.status.allocatable["nvidia.com/gpu"] == "4"
        labels = node.metadata.labels
        assert labels["nvidia.com/gpu.present"] == "true" and labels["nvidia.com/gpu.count"] == "4"
        assert labels["devservers.io/local-cluster"] == "true"
    with LocalCluster() as plain:
        labels = _node(plain.kubeconfig).metadata.labels
        assert "nvidia.com/gpu.present" not in labels and labels["devservers.io/local-cluster"] == "true"
    with pytest.raises(ValueError, match="gpus must be 0 or more"):
        LocalCluster(gpus=-1)


@pytest.mark.emulator_only
def test_serve_takes_gpus(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen([sys.executable, "-m", "devservers_sdk.localcluster", "serve", "--kubeconfig",
                                str(kubeconfig), "--state-dir", str(tmp_path / "state"), "--gpus", "8"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not kubeconfig.exists():
            assert process.poll() is None and time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.05)
        assert _node(str(kubeconfig)).status.capacity["nvidia.com/gpu"] == "8"
    finally:
        process.terminate()
        process.wait(timeout=30)
