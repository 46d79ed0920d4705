"""Drift and missing dependencies: deleted owned objects come back, an unknown flavor or a missing shared
claim is reported by name (without a retry storm) and recovers when it appears, deletion cascades, and
an operator restart in the middle of changes converges without duplicates or orphans."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from devservers_operator.reconcile import APPLIED_HASH_ANNOTATION as APPLIED_HASH
from kubernetes import client

from devservers_sdk.localcluster.pytest_plugin import ClusterHandle, wait_for
from tests.operator.conftest import OperatedNamespace, OperatorProcess, ready, request_counts, stays

pytestmark = pytest.mark.slow


def test_deleted_statefulset_and_service_are_recreated_and_the_home_survives(
    operated: OperatedNamespace, cluster: ClusterHandle
) -> None:
    before = request_counts(cluster) if cluster.emulator is not None else {}
    operated.create("heal", persistentHomeSize="1Gi")
    operated.wait_phase("heal", "Running")
    operated.exec("heal-0", "echo survived > /home/dev/proof.txt")
    (claim,) = operated.claims("heal")
    # The DevServer co-owns the home claim, so deleting the StatefulSet alone cannot delete it.
    wait_for(
        lambda: (
            {ref.kind for ref in operated.claims("heal")[0].metadata.owner_references or []}
            == {"StatefulSet", "DevServer"}
        ),
        message="the home claim to be owned by the StatefulSet and the DevServer",
    )
    if cluster.emulator is not None:  # born so, from the claim template: nobody patched the claim
        after = request_counts(cluster)
        assert after.get("patch persistentvolumeclaims", 0) == before.get("patch persistentvolumeclaims", 0)
    old_sts, old_svc = operated.statefulset("heal").metadata.uid, operated.service("heal").metadata.uid
    (old_pod,) = operated.pods("heal")

    operated.apps.delete_namespaced_stateful_set("heal", operated.namespace)  # Background: its pods go too
    operated.core.delete_namespaced_service("heal", operated.namespace)

    def recreated() -> bool:
        sts, svc = operated.statefulset("heal"), operated.service("heal")
        return (
            sts is not None
            and svc is not None
            and sts.metadata.uid != old_sts
            and svc.metadata.uid != old_svc
            and not sts.metadata.deletion_timestamp
        )

    wait_for(recreated, timeout=60, message="the StatefulSet and Service to be recreated")
    operated.wait_phase(
        "heal",
        "Running",
        check=lambda s: (
            [(p.metadata.uid != old_pod.metadata.uid, ready(p)) for p in operated.pods("heal")] == [(True, True)]
        ),
    )
    assert [c.metadata.uid for c in operated.claims("heal")] == [claim.metadata.uid]
    assert operated.exec("heal-0", "cat /home/dev/proof.txt").strip() == "survived"


@pytest.fixture
def flavor_name(operated: OperatedNamespace) -> Iterator[str]:
    name = f"tiny-{secrets.token_hex(3)}"
    yield name
    operated.kubectl("delete", "devserverflavor", name, "--ignore-not-found", check=False)


def test_unknown_flavor_is_reported_without_retries_and_recovers_when_created(
    operated: OperatedNamespace, flavor_name: str, cluster: ClusterHandle
) -> None:
    operated.create("early", flavor=flavor_name)
    server = operated.wait_phase("early", "Failed")
    degraded = next(c for c in server["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "FlavorNotFound"
    assert f"Flavor '{flavor_name}' does not exist" in degraded["message"]
    assert "cpu-small" in degraded["message"] and "devctl update early --flavor" in degraded["message"]
    assert operated.statefulset("early") is None
    wait_for(lambda: "FlavorNotFound" in operated.event_reasons("early"), message="a FlavorNotFound Event")

    if cluster.emulator is not None:  # no retry storm: a missing flavor is not polled
        before = request_counts(cluster)
        stays(
            lambda: (
                request_counts(cluster).get("get devserverflavors", 0)
                == before.get("get devserverflavors", 0)
                and request_counts(cluster).get("patch devservers/status", 0)
                <= before.get("patch devservers/status", 0) + 1
            ),
            2.0,
            message="the operator keeps asking for the missing flavor",
        )

    operated.kubectl(
        "apply",
        "-f",
        "-",
        input_text=f"""
apiVersion: devservers.io/v1
kind: DevServerFlavor
metadata: {{name: {flavor_name}}}
spec:
  resources: {{requests: {{cpu: 100m, memory: 128Mi}}}}
""",
    )
    operated.wait_phase("early", "Running")
    # The Event follows the status write (on a real API server, often after the status is read here).
    wait_for(lambda: "Recovered" in operated.event_reasons("early"), timeout=60,
             message="a Recovered Event of DevServer early")


def test_missing_shared_claim_is_named_and_recovers_when_created(operated: OperatedNamespace) -> None:
    operated.create("team", sharedVolumeClaimName="team-data")
    server = operated.wait_phase("team", "Failed")
    degraded = next(c for c in server["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "SharedVolumeClaimNotFound"
    assert (
        "PersistentVolumeClaim 'team-data'" in degraded["message"] and operated.namespace in degraded["message"]
    )

    operated.core.create_namespaced_persistent_volume_claim(
        operated.namespace,
        client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name="team-data"),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
            ),
        ),
    )
    operated.wait_phase("team", "Running", timeout=120)  # a claim to bind and a pod to start, on a busy machine
    operated.exec("team-0", "touch /shared/hello && test -f /shared/hello")


def test_delete_cascades_to_every_owned_object(operated: OperatedNamespace) -> None:
    operated.create("gone", persistentHomeSize="1Gi", mode="distributed", distributed={"worldSize": 2})
    operated.wait_phase("gone", "Running")
    assert len(operated.claims("gone")) == 2
    operated.delete("gone")
    operated.wait_gone("gone")
    operated.wait_for_nothing_left("gone")


def test_operator_restart_in_the_middle_converges_without_duplicates_or_orphans(
    operated: OperatedNamespace, operator: OperatorProcess, cluster: ClusterHandle
) -> None:
    for name in ("keep", "change", "drop"):
        operated.create(name)
    for name in ("keep", "change", "drop"):
        operated.wait_phase(name, "Running")
    uids = {name: operated.statefulset(name).metadata.uid for name in ("keep", "change")}

    operator.stop(kill=True)  # SIGKILL: nothing is cleaned up or finished
    operated.patch("change", {"spec": {"flavor": "cpu-medium"}})
    operated.delete("drop")
    operated.core.delete_namespaced_service("keep", operated.namespace)
    operated.create("fresh")
    before = request_counts(cluster) if cluster.emulator is not None else {}
    operator.start()

    operated.wait_phase(
        "change",
        "Running",
        check=lambda s: (
            s["status"]["observedGeneration"] == 2
            and all(p.spec.containers[0].resources.limits["cpu"] == "4" for p in operated.pods("change"))
        ),
    )
    for name in ("keep", "fresh"):
        operated.wait_phase(name, "Running")
    wait_for(lambda: operated.service("keep") is not None, message="the deleted Service to be recreated")
    operated.wait_gone("drop")
    operated.wait_for_nothing_left("drop")

    # Exactly one StatefulSet and Service per DevServer, the untouched ones not recreated.
    assert operated.statefulset("keep").metadata.uid == uids["keep"]
    assert operated.statefulset("change").metadata.uid == uids["change"]
    statefulsets = sorted(
        s.metadata.name for s in operated.apps.list_namespaced_stateful_set(operated.namespace).items
    )
    services = sorted(s.metadata.name for s in operated.core.list_namespaced_service(operated.namespace).items)
    assert statefulsets == services == ["change", "fresh", "keep"]
    pods = sorted(
        p.metadata.name
        for p in operated.core.list_namespaced_pod(operated.namespace).items
        if not p.metadata.deletion_timestamp
    )
    assert pods == ["change-0", "fresh-0", "keep-0"]
    if cluster.emulator is not None:
        after = request_counts(cluster)
        writes = {
            key: after.get(key, 0) - before.get(key, 0)
            for key in ("update statefulsets", "create statefulsets", "create services")
        }
        # One replace (the changed flavor), one create (the new server), two Services (keep, fresh).
        assert writes == {"update statefulsets": 1, "create statefulsets": 1, "create services": 2}, writes


def test_a_devserver_that_bypassed_validation_fails_once_without_retries(operated: OperatedNamespace) -> None:
    # The CRD's rule refuses LD_PRELOAD and any key not starting with NCCL_ (tests/security); upper case
    # after the prefix is a rule of the models only, so the API accepts this object.
    operated.create("sneaky", mode="distributed", distributed={"ncclSettings": {"NCCL_debug": "INFO"}})
    server = operated.wait_phase("sneaky", "Failed")
    degraded = next(c for c in server["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "InvalidSpec" and "NCCL_debug" in degraded["message"], degraded
    version = server["metadata"]["resourceVersion"]
    stays(
        lambda: (operated.get("sneaky") or {}).get("metadata", {}).get("resourceVersion") == version,
        1.0,
        message="the operator keeps rewriting an invalid DevServer",
    )
    assert operated.statefulset("sneaky") is None


def test_a_statefulset_from_before_the_claim_template_owned_its_claims_is_replaced_in_place(
    operated: OperatedNamespace, operator: OperatorProcess
) -> None:
    """An earlier operator left claim templates without the DevServer's ownerReference (it patched each claim
    instead). They are immutable: the operator's replace must keep them, not be refused, and not recreate."""
    operated.create("legacy", persistentHomeSize="1Gi")
    operated.wait_phase("legacy", "Running")
    operator.stop()
    old = operated.apps.api_client.sanitize_for_serialization(operated.statefulset("legacy"))
    operated.apps.delete_namespaced_stateful_set("legacy", operated.namespace, propagation_policy="Orphan")
    wait_for(lambda: operated.statefulset("legacy") is None, message="the StatefulSet deleted (orphan)")
    metadata = {key: old["metadata"][key] for key in ("name", "labels", "annotations", "ownerReferences")}
    metadata["annotations"][APPLIED_HASH] = "from-an-earlier-operator"
    for template in old["spec"]["volumeClaimTemplates"]:
        del template["metadata"]["ownerReferences"]
    legacy = operated.apps.create_namespaced_stateful_set(
        operated.namespace, {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata, "spec": old["spec"]}
    )
    operator.start()

    def replaced() -> bool:
        sts = operated.statefulset("legacy")
        return sts is not None and (sts.metadata.annotations or {}).get(APPLIED_HASH) != "from-an-earlier-operator"

    wait_for(replaced, timeout=60, message="the earlier operator's StatefulSet replaced by this one")
    sts = operated.statefulset("legacy")
    assert sts.metadata.uid == legacy.metadata.uid, "recreated, not replaced in place"
    assert [t.metadata.owner_references for t in sts.spec.volume_claim_templates] == [None]
    assert "RecreatingStatefulSet" not in operated.event_reasons("legacy")
    operated.wait_phase("legacy", "Running")


def test_an_operator_left_stopped_by_a_failed_test_runs_for_the_next(
    operator: OperatorProcess, crds: str, namespace: str
) -> None:
    """A test that stops the operator and fails before starting it again must fail alone: in a loaded trial every
    later test of the module waited for an operator that was scaled to 0."""
    operator.stop()
    operator.ensure_running()
    created = OperatedNamespace(crds, namespace, operator)
    created.create("after")
    created.wait_phase("after", "Running")
