"""Conformance through the official client: deletion (finalizers, garbage collection, namespaces) and the
built-in controllers a client observes (StatefulSet, ClusterIP allocation, volumes and PVC protection)."""

from __future__ import annotations

import ipaddress
from typing import Any

from conformance_support import (
    CONTAINER,
    NOWHERE_NODE,
    Clients,
    cause_fields,
    crd_body,
    create_crd,
    delete_crd,
    gone,
    raises_status,
    settle,
    unique_group,
    wait_for,
)
from kubernetes.client.exceptions import ApiException

FINALIZER = "conformance.devservers.io/hold"
STATEFULSET_STATUS_FIELDS = {
    "observedGeneration",
    "replicas",
    "readyReplicas",
    "currentReplicas",
    "updatedReplicas",
    "currentRevision",
    "updateRevision",
    "collisionCount",
    "conditions",
    "availableReplicas",
}


def cm(name: str, **metadata: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **metadata}}


def owned_by(owner: Any, *, block: bool = False) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": owner.metadata.name,
            "uid": owner.metadata.uid,
            "blockOwnerDeletion": block,
        }
    ]


def release(k8s: Clients, name: str, namespace: str) -> None:
    k8s.core.patch_namespaced_config_map(name, namespace, {"metadata": {"finalizers": None}})


# -- finalizers ------------------------------------------------------------------------------------------


def test_finalizer_keeps_object_until_removed(k8s: Clients, namespace: str) -> None:
    k8s.core.create_namespaced_config_map(namespace, cm("held", finalizers=[FINALIZER]))
    # A deletion that cannot complete yet answers with the object, now carrying its deletionTimestamp.
    answer = k8s.core.delete_namespaced_config_map("held", namespace)
    assert answer["kind"] == "ConfigMap" and answer["metadata"]["deletionTimestamp"]
    held = k8s.core.read_namespaced_config_map("held", namespace)
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == [FINALIZER]
    assert held.metadata.deletion_grace_period_seconds == 0
    # Deleting again changes nothing; updates other than new finalizers are still allowed.
    k8s.core.delete_namespaced_config_map("held", namespace)
    again = k8s.core.read_namespaced_config_map("held", namespace)
    assert again.metadata.resource_version == held.metadata.resource_version
    k8s.core.patch_namespaced_config_map("held", namespace, {"data": {"still": "writable"}})
    with raises_status(422, "Invalid") as status:
        k8s.core.patch_namespaced_config_map(
            "held", namespace, {"metadata": {"finalizers": [FINALIZER, "conformance.devservers.io/late"]}}
        )
    assert cause_fields(status) == ["metadata.finalizers"]
    assert "no new finalizers can be added if the object is being deleted" in status["message"]
    release(k8s, "held", namespace)
    assert gone(k8s.core.read_namespaced_config_map, "held", namespace)


def test_namespaced_delete_of_custom_resource_with_finalizer(k8s: Clients, namespace: str) -> None:
    group = unique_group()
    body = crd_body(group, "Gadget", {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    create_crd(k8s, body)
    try:
        k8s.custom.create_namespaced_custom_object(
            group,
            "v1",
            namespace,
            "gadgets",
            {
                "apiVersion": f"{group}/v1",
                "kind": "Gadget",
                "metadata": {"name": "g", "finalizers": [FINALIZER]},
            },
        )
        answer = k8s.custom.delete_namespaced_custom_object(group, "v1", namespace, "gadgets", "g")
        assert answer["metadata"]["deletionTimestamp"]
        k8s.custom.patch_namespaced_custom_object(
            group, "v1", namespace, "gadgets", "g", {"metadata": {"finalizers": []}}
        )
        assert gone(k8s.custom.get_namespaced_custom_object, group, "v1", namespace, "gadgets", "g")
    finally:
        delete_crd(k8s, body["metadata"]["name"])


# -- garbage collection ------------------------------------------------------------------------------


def test_background_propagation_deletes_dependents(k8s: Clients, namespace: str) -> None:
    owner = k8s.core.create_namespaced_config_map(namespace, cm("owner"))
    for name in ("dep-1", "dep-2"):
        k8s.core.create_namespaced_config_map(namespace, cm(name, ownerReferences=owned_by(owner)))
    bystander = k8s.core.create_namespaced_config_map(namespace, cm("bystander"))
    k8s.core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")
    assert gone(k8s.core.read_namespaced_config_map, "owner", namespace)
    wait_for(
        lambda: all(gone(k8s.core.read_namespaced_config_map, n, namespace) for n in ("dep-1", "dep-2")),
        timeout=60,
        message="dependents to be garbage collected",
    )
    assert k8s.core.read_namespaced_config_map("bystander", namespace).metadata.uid == bystander.metadata.uid


def test_dependent_of_missing_owner_is_collected(k8s: Clients, namespace: str) -> None:
    phantom = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "never",
            "uid": "7b0f8a36-0000-4000-8000-000000000000",
        }
    ]
    owner = k8s.core.create_namespaced_config_map(namespace, cm("real-owner"))
    k8s.core.create_namespaced_config_map(namespace, cm("orphan", ownerReferences=phantom))
    k8s.core.create_namespaced_config_map(
        namespace, cm("two-owners", ownerReferences=phantom + owned_by(owner))
    )
    wait_for(
        lambda: gone(k8s.core.read_namespaced_config_map, "orphan", namespace),
        timeout=60,
        message="a dependent whose only owner does not exist to be collected",
    )
    # With one live owner left the dependent stays, minus the dangling reference.
    wait_for(
        lambda: (
            [
                r.name
                for r in k8s.core.read_namespaced_config_map(
                    "two-owners", namespace
                ).metadata.owner_references
                or []
            ]
            == ["real-owner"]
        ),
        timeout=10,
        message="the dangling ownerReference to be removed",
    )


def test_foreground_propagation(k8s: Clients, namespace: str) -> None:
    owner = k8s.core.create_namespaced_config_map(namespace, cm("fg-owner"))
    k8s.core.create_namespaced_config_map(
        namespace, cm("fg-held", finalizers=[FINALIZER], ownerReferences=owned_by(owner, block=True))
    )
    k8s.core.create_namespaced_config_map(
        namespace, cm("fg-free", ownerReferences=owned_by(owner, block=True))
    )
    k8s.core.delete_namespaced_config_map("fg-owner", namespace, propagation_policy="Foreground")
    waiting = k8s.core.read_namespaced_config_map("fg-owner", namespace)
    assert waiting.metadata.deletion_timestamp is not None
    assert "foregroundDeletion" in waiting.metadata.finalizers
    wait_for(
        lambda: gone(k8s.core.read_namespaced_config_map, "fg-free", namespace),
        timeout=60,
        message="the unblocked dependent to be deleted",
    )
    wait_for(
        lambda: k8s.core.read_namespaced_config_map("fg-held", namespace).metadata.deletion_timestamp,
        timeout=60,
        message="the held dependent to be marked for deletion",
    )
    settle()
    assert k8s.core.read_namespaced_config_map("fg-owner", namespace).metadata.deletion_timestamp is not None
    release(k8s, "fg-held", namespace)
    wait_for(
        lambda: gone(k8s.core.read_namespaced_config_map, "fg-owner", namespace),
        timeout=60,
        message="the owner to go once its blocking dependents are gone",
    )
    assert gone(k8s.core.read_namespaced_config_map, "fg-held", namespace)


def test_orphan_propagation(k8s: Clients, namespace: str) -> None:
    owner = k8s.core.create_namespaced_config_map(namespace, cm("or-owner"))
    other = k8s.core.create_namespaced_config_map(namespace, cm("or-other"))
    k8s.core.create_namespaced_config_map(
        namespace, cm("or-dep", ownerReferences=owned_by(owner) + owned_by(other))
    )
    k8s.core.create_namespaced_config_map(namespace, cm("or-only", ownerReferences=owned_by(owner)))
    k8s.core.delete_namespaced_config_map("or-owner", namespace, propagation_policy="Orphan")
    wait_for(
        lambda: gone(k8s.core.read_namespaced_config_map, "or-owner", namespace),
        timeout=60,
        message="the owner to be deleted after orphaning",
    )
    dep = k8s.core.read_namespaced_config_map("or-dep", namespace)
    assert [r.name for r in dep.metadata.owner_references] == ["or-other"]
    only = k8s.core.read_namespaced_config_map("or-only", namespace)
    assert not only.metadata.owner_references
    settle()
    assert k8s.core.read_namespaced_config_map("or-only", namespace).metadata.uid == only.metadata.uid


def test_namespace_deletion_removes_everything_then_itself(k8s: Clients, namespace: str) -> None:
    group = unique_group()
    body = crd_body(group, "Thing", {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    create_crd(k8s, body)
    try:
        k8s.core.create_namespaced_config_map(namespace, cm("c1"))
        k8s.core.create_namespaced_config_map(namespace, cm("c-held", finalizers=[FINALIZER]))
        k8s.core.create_namespaced_secret(namespace, {"metadata": {"name": "s1"}, "stringData": {"k": "v"}})
        k8s.core.create_namespaced_service(
            namespace, {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}
        )
        k8s.custom.create_namespaced_custom_object(
            group,
            "v1",
            namespace,
            "things",
            {"apiVersion": f"{group}/v1", "kind": "Thing", "metadata": {"name": "t1"}},
        )
        k8s.core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": "p1"},
                "spec": {"terminationGracePeriodSeconds": 0, "containers": [CONTAINER]},
            },
        )
        k8s.core.delete_namespace(namespace)
        terminating = k8s.core.read_namespace(namespace)
        assert terminating.status.phase == "Terminating"
        assert terminating.metadata.deletion_timestamp is not None
        with raises_status(403, "Forbidden") as status:
            k8s.core.create_namespaced_config_map(namespace, cm("late"))
        assert "because it is being terminated" in status["message"]
        # The namespace controller deletes kind after kind, in no promised order: wait for all of them.
        wait_for(
            lambda: (
                [c.metadata.name for c in k8s.core.list_namespaced_config_map(namespace).items] == ["c-held"]
                and k8s.core.list_namespaced_secret(namespace).items == []
                and k8s.custom.list_namespaced_custom_object(group, "v1", namespace, "things")["items"] == []
            ),
            timeout=60,
            message="everything but the held configmap (secrets and custom objects included) to be deleted",
        )
        assert k8s.core.read_namespace(namespace).status.phase == "Terminating"
        release(k8s, "c-held", namespace)
        wait_for(
            lambda: gone(k8s.core.read_namespace, namespace),
            timeout=60,
            message="the namespace to disappear once empty",
        )
        assert k8s.core.list_namespaced_pod(namespace).items == []
    finally:
        delete_crd(k8s, body["metadata"]["name"])


# -- StatefulSet controller -----------------------------------------------------------------------------


def sts_body(name: str, replicas: int, *, image: str = "busybox:1.36") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 0, "containers": [{**CONTAINER, "image": image}]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                }
            ],
        },
    }


def test_statefulset_controller(k8s: Clients, namespace: str) -> None:
    k8s.core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    sts = k8s.apps.create_namespaced_stateful_set(namespace, sts_body("web", 3))

    def pods() -> dict[str, Any]:
        return {
            p.metadata.name: p
            for p in k8s.core.list_namespaced_pod(namespace, label_selector="app=web").items
            if p.metadata.deletion_timestamp is None
        }

    wait_for(lambda: sorted(pods()) == ["web-0", "web-1", "web-2"], timeout=60, message="three ordinal pods")
    for name, pod in pods().items():
        assert pod.spec.hostname == name and pod.spec.subdomain == "web"
        [ref] = pod.metadata.owner_references
        assert (ref.kind, ref.name, ref.uid, ref.controller) == ("StatefulSet", "web", sts.metadata.uid, True)
        assert pod.metadata.labels["statefulset.kubernetes.io/pod-name"] == name
        claim = next(v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.name == "data")
        assert claim == f"data-{name}"

    def bound_claims() -> dict[str, Any]:
        claims = {
            c.metadata.name: c for c in k8s.core.list_namespaced_persistent_volume_claim(namespace).items
        }
        return claims if all(c.status.phase == "Bound" for c in claims.values()) else {}

    claims = wait_for(lambda: len(bound_claims()) == 3 and bound_claims(), timeout=60, message="bound claims")
    assert sorted(claims) == ["data-web-0", "data-web-1", "data-web-2"]
    for claim in claims.values():
        volume = k8s.core.read_persistent_volume(claim.spec.volume_name)
        assert (
            volume.spec.claim_ref.name == claim.metadata.name
            and volume.spec.claim_ref.uid == claim.metadata.uid
        )
        assert volume.status.phase == "Bound"
    wait_for(
        lambda: k8s.apps.read_namespaced_stateful_set("web", namespace).status.replicas == 3,
        timeout=60,
        message="status.replicas to reach 3",
    )

    # Scale down removes the highest ordinal and keeps its claim.
    k8s.apps.patch_namespaced_stateful_set_scale("web", namespace, {"spec": {"replicas": 2}})
    wait_for(lambda: sorted(pods()) == ["web-0", "web-1"], timeout=60, message="web-2 to be removed")
    wait_for(lambda: gone(k8s.core.read_namespaced_pod, "web-2", namespace), timeout=60, message="web-2 gone")
    assert "data-web-2" in {
        c.metadata.name for c in k8s.core.list_namespaced_persistent_volume_claim(namespace).items
    }

    # A template change rolls every pod onto the new revision.
    before = {name: pod.metadata.uid for name, pod in pods().items()}
    k8s.apps.patch_namespaced_stateful_set(
        "web", namespace, {"spec": {"template": {"metadata": {"annotations": {"rolled": "yes"}}}}}
    )

    def rolled() -> bool:
        status = k8s.apps.read_namespaced_stateful_set("web", namespace).status
        current = pods()
        return (
            sorted(current) == ["web-0", "web-1"]
            and bool(status.update_revision)
            and all(
                p.metadata.labels.get("controller-revision-hash") == status.update_revision
                and p.metadata.uid != before[n]
                and (p.metadata.annotations or {}).get("rolled") == "yes"
                for n, p in current.items()
            )
        )

    wait_for(rolled, timeout=60, message="pods to be replaced with the new template")
    raw = k8s.raw.request("GET", f"/apis/apps/v1/namespaces/{namespace}/statefulsets/web").json
    assert set(raw["status"]) <= STATEFULSET_STATUS_FIELDS, raw["status"]

    # Scaling to zero removes every pod, and the claims stay.
    k8s.apps.patch_namespaced_stateful_set("web", namespace, {"spec": {"replicas": 0}})
    wait_for(
        lambda: not k8s.core.list_namespaced_pod(namespace, label_selector="app=web").items,
        timeout=60,
        message="every pod to be removed",
    )
    assert len(k8s.core.list_namespaced_persistent_volume_claim(namespace).items) == 3


def test_claims_carry_their_template_metadata_and_keep_a_second_owner(k8s: Clients, namespace: str) -> None:
    """The devservers operator relies on this: its home claims are born owned by the DevServer through the
    template, and that owner keeps a claim when its StatefulSet is deleted."""
    keeper = k8s.core.create_namespaced_config_map(namespace, {"metadata": {"name": "keeper"}})
    second = {"apiVersion": "v1", "kind": "ConfigMap", "name": "keeper", "uid": keeper.metadata.uid,
              "controller": False}
    body = sts_body("kept", 1)
    body["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenScaled": "Retain", "whenDeleted": "Delete"}
    body["spec"]["volumeClaimTemplates"][0]["metadata"] |= {
        "labels": {"tier": "home"}, "annotations": {"note": "from-template"}, "ownerReferences": [second]}
    sts = k8s.apps.create_namespaced_stateful_set(namespace, body)

    def owners() -> dict[str, str]:
        claims = k8s.core.list_namespaced_persistent_volume_claim(namespace, field_selector="metadata.name=data-kept-0")
        return {ref.kind: ref.uid for claim in claims.items for ref in claim.metadata.owner_references or []}

    wait_for(lambda: owners() == {"ConfigMap": keeper.metadata.uid, "StatefulSet": sts.metadata.uid}, timeout=60,
             message="the claim owned by the template's ConfigMap and by the StatefulSet")
    claim = k8s.core.read_namespaced_persistent_volume_claim("data-kept-0", namespace)
    assert claim.metadata.labels == {"tier": "home", "app": "kept"}
    assert (claim.metadata.annotations or {}).get("note") == "from-template"
    assert [ref.controller for ref in claim.metadata.owner_references if ref.kind == "ConfigMap"] == [False]

    k8s.apps.delete_namespaced_stateful_set("kept", namespace, propagation_policy="Background")
    wait_for(lambda: owners() == {"ConfigMap": keeper.metadata.uid}, timeout=60,
             message="the garbage collector to drop the deleted StatefulSet from the claim's owners and keep it")


# -- Services and volumes ---------------------------------------------------------------------------


def test_services_get_cluster_ips(k8s: Clients, namespace: str) -> None:
    first = k8s.core.create_namespaced_service(
        namespace, {"metadata": {"name": "one"}, "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
    )
    second = k8s.core.create_namespaced_service(
        namespace, {"metadata": {"name": "two"}, "spec": {"ports": [{"port": 80}]}}
    )
    headless = k8s.core.create_namespaced_service(
        namespace, {"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}
    )
    for svc in (first, second):
        ip = ipaddress.ip_address(svc.spec.cluster_ip)
        assert ip.version == 4 and svc.spec.cluster_ips == [svc.spec.cluster_ip]
        assert svc.spec.type == "ClusterIP"
    assert first.spec.cluster_ip != second.spec.cluster_ip
    assert headless.spec.cluster_ip == "None" and headless.spec.cluster_ips == ["None"]
    assert first.spec.ports[0].protocol == "TCP" and second.spec.ports[0].target_port == 80
    # An update that does not mention the IP keeps it; changing it is refused.
    patched = k8s.core.patch_namespaced_service("one", namespace, {"metadata": {"labels": {"x": "y"}}})
    assert patched.spec.cluster_ip == first.spec.cluster_ip
    with raises_status(422, "Invalid"):
        k8s.core.patch_namespaced_service(
            "one",
            namespace,
            {"spec": {"clusterIP": second.spec.cluster_ip, "clusterIPs": [second.spec.cluster_ip]}},
        )
    assert k8s.core.read_namespaced_service("headless", namespace).spec.cluster_ip == "None"


def test_pvc_protection(k8s: Clients, namespace: str) -> None:
    claim = k8s.core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "claim"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    assert "kubernetes.io/pvc-protection" in claim.metadata.finalizers
    wait_for(
        lambda: k8s.core.read_namespaced_persistent_volume_claim("claim", namespace).status.phase == "Bound",
        timeout=60,
        message="the claim to bind",
    )
    k8s.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "user"},
            "spec": {
                "nodeName": NOWHERE_NODE,
                "containers": [CONTAINER],
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "claim"}}],
            },
        },
    )
    k8s.core.delete_namespaced_persistent_volume_claim("claim", namespace)
    settle()
    terminating = k8s.core.read_namespaced_persistent_volume_claim("claim", namespace)
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    k8s.core.delete_namespaced_pod("user", namespace, grace_period_seconds=0)
    wait_for(
        lambda: gone(k8s.core.read_namespaced_persistent_volume_claim, "claim", namespace),
        timeout=60,
        message="the claim to go once no pod uses it",
    )
    volume_name = terminating.spec.volume_name

    def volume_released() -> bool:
        try:
            return k8s.core.read_persistent_volume(volume_name).status.phase in ("Released", "Failed")
        except ApiException as exc:
            return exc.status == 404

    wait_for(volume_released, timeout=60, message="the bound volume to be reclaimed")


def test_pvc_protection_ignores_unscheduled_pods(k8s: Clients, namespace: str) -> None:
    k8s.core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "loose"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    # No node carries this label, so the pod is never scheduled; the kubelet could never start it.
    k8s.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "pending"},
            "spec": {
                "nodeSelector": {"conformance.devservers.io/nowhere": "true"},
                "containers": [CONTAINER],
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "loose"}}],
            },
        },
    )
    k8s.core.delete_namespaced_persistent_volume_claim("loose", namespace)
    wait_for(
        lambda: gone(k8s.core.read_namespaced_persistent_volume_claim, "loose", namespace),
        timeout=60,
        message="the claim of an unscheduled pod to be deleted",
    )
    assert not k8s.core.read_namespaced_pod("pending", namespace).spec.node_name
