"""Faults only a real control plane can have: kube-apiserver, then etcd, killed and restarted mid-workload.

The seeded workload of ``workload.py`` (creates, updates, extends, stops, starts, deletes, marker files written
into homes) runs in three parts on the real control plane with the operator running throughout. Between the
parts, first kube-apiserver and then etcd is SIGKILLed; while each is away, the SDK and devctl must say so in
one sentence, quickly, rather than hang; then it is started again on the same data and the workload goes on.
At the end everything must converge to the plan with nothing lost: every marker kept, no orphan, no duplicate.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from devservers_sdk.errors import DevServerError, NotFoundError
from devservers_sdk.kube import DEVSERVERS, FLAVORS, NODES, PODS, Resource, RetryPolicy
from tests.reliability.workload import (
    FLAVOR_CPU,
    NAMESPACE,
    Platform,
    converge,
    plan,
    read_markers,
    run_workload,
)

pytestmark = pytest.mark.slow

SEED = 9
OPS = 30
MAX_LIVE = 8
DEVCTL = str(Path(sys.executable).with_name("devctl"))
# What an impatient user allows before deciding the tool hangs; the SDK's default retries end within 30 s.
ANSWER_WITHIN = 60.0
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
SERVED_ANNOTATION = "devservers.io/test-served-at"


def outage_is_reported(platform: Platform, component: str) -> None:
    """While ``component`` is down, the SDK and devctl fail fast with one sentence about the API server."""
    client = platform.client(retry=RetryPolicy(attempts=2, total=5))
    started = time.monotonic()
    with pytest.raises(DevServerError) as failed:
        client.list()
    sdk_seconds = time.monotonic() - started
    client.close()
    message = str(failed.value)
    assert "API server" in message or "cluster" in message, message
    assert "\n" not in message.strip(), message
    assert sdk_seconds < ANSWER_WITHIN, f"the SDK took {sdk_seconds:.0f}s to say {message!r}"

    started = time.monotonic()
    result = subprocess.run([DEVCTL, "--kubeconfig", platform.cluster.kubeconfig, "-n", NAMESPACE, "list"],
                            capture_output=True, text=True, timeout=ANSWER_WITHIN + 30)
    devctl_seconds = time.monotonic() - started
    assert result.returncode == 1, (component, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert devctl_seconds < ANSWER_WITHIN, f"devctl took {devctl_seconds:.0f}s to say {lines[0]!r}"


def wait_until_served(platform: Platform, timeout: float = 240.0) -> None:
    """Until the API server answers a DevServer list, a read of one object and a write: all three, because a
    list can come from its watch cache while it has not reached etcd again. A restarted etcd took it over 30 s
    to reach on a loaded machine, and the workload's first read then timed out as if the outage went on.
    Then a GET of each kind the workload reads by name: kube-apiserver keeps a storage per resource, each
    reconnecting to etcd on its own backoff, and in loaded trials the flavors' still hung a GET for 30 s,
    and the pods' an exec for 10 s, after the namespace's answered. And a GET of each Node: exec and logs read
    the pod's Node for its kubelet's address, through the nodes' own storage; in a loaded trial its etcd client
    still refused 47 s after etcd was back, and the workload's exec failed with a 500 after 10 s."""
    client = platform.client(retry=RetryPolicy.never())
    kube = platform.kube()
    kube.retry = RetryPolicy.never()
    deadline = time.monotonic() + timeout
    last: Any = None
    step = "list DevServers"
    try:
        while time.monotonic() < deadline:
            try:
                step = "list DevServers"
                client.list()
                step = f"read namespace {NAMESPACE}"
                kube.get(NAMESPACES, NAMESPACE)
                step = f"write an annotation of namespace {NAMESPACE}"
                stamp = {"metadata": {"annotations": {SERVED_ANNOTATION: str(time.time())}}}
                kube.patch(NAMESPACES, NAMESPACE, stamp)
                for flavor in sorted(FLAVOR_CPU):
                    step = f"read DevServerFlavor {flavor}"
                    kube.get(FLAVORS, flavor)
                for kind in (DEVSERVERS, PODS):  # exec reads the pod first
                    step = f"read a {kind.kind} by name"
                    with contextlib.suppress(NotFoundError):  # a 404 is an answer from etcd too
                        kube.get(kind, "never-created", namespace=NAMESPACE)
                step = "list Nodes"
                for node in kube.list(NODES).get("items") or []:
                    step = f"read Node {node['metadata']['name']} (exec reads it)"
                    kube.get(NODES, node["metadata"]["name"])
                return
            except DevServerError as exc:
                last = exc
                time.sleep(0.5)
    finally:
        client.close()
        kube.close()
    raise AssertionError(f"the API server did not serve again within {timeout:.0f}s: could not {step}: {last}")


@pytest.mark.timeout(900)
def test_api_server_and_etcd_restarts_lose_nothing(kubernetes_binaries: Any, tmp_path: Path) -> None:
    operations, expected = plan(SEED, OPS, max_live=MAX_LIVE)
    thirds = [operations[: OPS // 3], operations[OPS // 3 : 2 * OPS // 3], operations[2 * OPS // 3 :]]
    with Platform(tmp_path, control_plane="kubernetes") as platform:
        cluster = platform.cluster
        assert cluster.real is not None
        control_plane = cluster.real.control_plane
        client = platform.client()
        run_workload(client, thirds[0], expected, seed=SEED)

        control_plane.stop_component("kube-apiserver", kill=True)
        outage_is_reported(platform, "kube-apiserver")
        control_plane.start_component("kube-apiserver")
        wait_until_served(platform)
        run_workload(client, thirds[1], expected, seed=SEED)

        control_plane.stop_component("etcd", kill=True)
        outage_is_reported(platform, "etcd")
        control_plane.start_component("etcd")
        wait_until_served(platform)
        run_workload(client, thirds[2], expected, seed=SEED)

        assert platform.operator.process is not None and platform.operator.process.poll() is None, (
            "the operator died while the control plane was away:\n" + platform.operator.tail())
        end = converge(platform.kube(), expected, timeout=240)
        assert not end.problems, end.problems
        read_markers(client, expected, end)
        client.close()
        planned = sum(len(e.markers) for e in expected.values())
        assert planned > 0
        assert (end.markers_kept, end.markers_lost) == (planned, []), end.markers_lost
