"""The pods/eviction subresource as kubectl drain, spot termination handlers and Karpenter use it: the pod is
marked DisruptionTarget (EvictionByEvictionAPI) and deleted gracefully; a PodDisruptionBudget that allows no
disruption refuses with 429; the Eviction must name the pod it is posted to."""

from __future__ import annotations

import threading
from typing import Any

from conformance_support import CONTAINER, Clients, raises_status, wait_for
from kubernetes import client, watch


def running_pod(k8s: Clients, namespace: str, name: str, labels: dict[str, str]) -> None:
    k8s.core.create_namespaced_pod(namespace, {"apiVersion": "v1", "kind": "Pod",
                                               "metadata": {"name": name, "labels": labels},
                                               "spec": {"containers": [CONTAINER]}})

    def ready() -> bool:
        pod = k8s.core.read_namespaced_pod(name, namespace)
        return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])

    wait_for(ready, timeout=60, message=f"pod {name} to be Ready")


def eviction(name: str, **delete_options: Any) -> client.V1Eviction:
    return client.V1Eviction(metadata=client.V1ObjectMeta(name=name),
                             delete_options=client.V1DeleteOptions(**delete_options) if delete_options else None)


def test_an_evicted_pod_is_marked_disruption_target_then_deleted(k8s: Clients, namespace: str) -> None:
    running_pod(k8s, namespace, "victim", {"app": "victim"})
    conditions: list[dict[str, Any]] = []
    stream = watch.Watch()
    started = threading.Event()

    def follow() -> None:
        started.set()
        for event in stream.stream(k8s.core.list_namespaced_pod, namespace, field_selector="metadata.name=victim",
                                   timeout_seconds=60):
            for condition in event["object"].status.conditions or []:
                if condition.type == "DisruptionTarget":
                    conditions.append({"status": condition.status, "reason": condition.reason,
                                       "message": condition.message})
            if event["type"] == "DELETED":
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    started.wait()
    k8s.core.create_namespaced_pod_eviction("victim", namespace, eviction("victim"))
    thread.join(timeout=90)
    stream.stop()
    assert not thread.is_alive(), "the evicted pod was never deleted"
    assert {"status": "True", "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"} in conditions


def test_a_budget_that_allows_no_disruption_refuses_with_429(k8s: Clients, namespace: str) -> None:
    running_pod(k8s, namespace, "guarded", {"app": "guarded"})
    policy = client.PolicyV1Api(k8s.api_client)
    policy.create_namespaced_pod_disruption_budget(namespace, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "keep-one"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}})
    with raises_status(429, "TooManyRequests") as status:
        k8s.core.create_namespaced_pod_eviction("guarded", namespace, eviction("guarded"))
    assert "disruption budget" in status["message"], status
    assert k8s.core.read_namespaced_pod("guarded", namespace).metadata.deletion_timestamp is None


def test_the_eviction_must_name_the_pod_it_is_posted_to(k8s: Clients, namespace: str) -> None:
    running_pod(k8s, namespace, "named", {"app": "named"})
    with raises_status(400, "BadRequest") as status:
        k8s.core.create_namespaced_pod_eviction("named", namespace, eviction("someone-else"))
    assert status["message"] == "name in URL does not match name in Eviction object", status
