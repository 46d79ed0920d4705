"""The operator's RBAC in ``operator/deploy`` is exactly enough: every grant used, no request refused.

On the real control plane the operator is the pod of the shipped Deployment, authenticated by its projected
ServiceAccount token, so every request it makes is authorized by ``operator-rbac.yaml`` and recorded in the
API server's audit log. The workload below makes it do everything it does (create with a home volume and a
shared claim, heal a deleted StatefulSet and Service and a tampered Service, roll a flavor change, recreate
for an immutable change, replace a pod stuck on an old template, look up a missing flavor, explain a pod no
node can take from the Nodes, warn, expire, probe and stop an idle server, start it again, delete, and keep
the cost ledger of each start, stop and delete, since the sample flavors have a price); then every (group, resource, verb) the roles grant
must appear among its requests, and none of its requests may have been refused.

The checker itself is tested on synthetic audit logs, so that a rule added to or removed from the roles
is known to fail it.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devservers_sdk.localcluster.pytest_plugin import wait_for
from tests.operator.conftest import OperatedNamespace, rfc3339
from tests.operator.rbac_audit import granted, problems, read_deploy, used
from tests.platform_fixture import DEPLOY, OPERATOR_NAME, OPERATOR_NAMESPACE, OPERATOR_USER, DeployedOperator

DESIRED_STATE = "devservers.io/desired-state"
APPLIED_HASH = "devservers.io/applied-hash"


def _shipped_grants() -> set[tuple[str, str, str]]:
    return granted(read_deploy(DEPLOY / "operator-rbac.yaml"), namespace=OPERATOR_NAMESPACE,
                   service_account=OPERATOR_NAME)


# -- the checker, on synthetic audit logs --------------------------------------------------------------------


def _event(verb: str, resource: str, *, group: str = "", code: int = 200, user: str = OPERATOR_USER,
           subresource: str | None = None, decision: str = "allow") -> str:
    ref: dict[str, Any] = {"resource": resource, "namespace": "team", "name": "x", "apiVersion": "v1"}
    if group:
        ref["apiGroup"] = group
    if subresource:
        ref["subresource"] = subresource
    return json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                       "stage": "ResponseComplete", "verb": verb, "user": {"username": user},
                       "objectRef": ref, "responseStatus": {"metadata": {}, "code": code},
                       "annotations": {"authorization.k8s.io/decision": decision}})


ROLE = [
    {"kind": "ClusterRole", "metadata": {"name": "op"}, "rules": [
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["create", "watch"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
    ]},
    {"kind": "ClusterRoleBinding", "metadata": {"name": "op"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "op"},
     "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_NAME, "namespace": OPERATOR_NAMESPACE}]},
    # Not bound to the operator: never counted.
    {"kind": "ClusterRole", "metadata": {"name": "other"},
     "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]},
]
LOG = [
    _event("create", "statefulsets", group="apps"),
    _event("watch", "statefulsets", group="apps"),
    _event("get", "pods", subresource="exec"),  # a WebSocket exec: RBAC "get", then "create" in the registry
    _event("delete", "pods", user="alice"),  # somebody else's request
    json.dumps({"kind": "Event", "verb": "get", "user": {"username": OPERATOR_USER},
                "requestURI": "/apis", "stage": "ResponseComplete", "responseStatus": {"code": 200}}),
]


def _check(role: list[dict[str, Any]], log: list[str]) -> list[str]:
    grants = granted(role, namespace=OPERATOR_NAMESPACE, service_account=OPERATOR_NAME)
    return problems(grants, used(log, user=OPERATOR_USER))


def test_the_checker_passes_a_role_that_is_exactly_what_was_used() -> None:
    assert _check(ROLE, LOG) == []


def test_the_checker_fails_a_rule_nobody_used() -> None:
    role = json.loads(json.dumps(ROLE))
    role[0]["rules"].append({"apiGroups": [""], "resources": ["services"], "verbs": ["get", "delete"]})
    assert _check(role, LOG) == ["granted but never used: delete services", "granted but never used: get services"]
    role = json.loads(json.dumps(ROLE))
    role[0]["rules"][0]["verbs"].append("patch")
    assert _check(role, LOG) == ["granted but never used: patch apps/statefulsets"]


def test_the_checker_fails_a_request_that_was_refused() -> None:
    """A rule removed from the role shows up as the operator's 403s (and the grant no longer being listed)."""
    role = json.loads(json.dumps(ROLE))
    role[0]["rules"][0]["verbs"] = ["watch"]
    refused = [*LOG[:1], _event("create", "statefulsets", group="apps", code=403, decision="forbid"), *LOG[1:]]
    found = _check(role, refused)
    assert len(found) == 1 and found[0].startswith("refused (403): create statefulsets x in namespace team")


def test_an_admission_refusal_is_not_an_rbac_problem() -> None:
    """NamespaceLifecycle's 403 (a create in a namespace being deleted) was authorized: not counted."""
    terminating = [*LOG, _event("create", "statefulsets", group="apps", code=403, decision="allow")]
    assert _check(ROLE, terminating) == []


def test_the_shipped_role_parses_into_named_permissions() -> None:
    grants = _shipped_grants()
    assert ("devservers.io", "devservers/status", "patch") in grants
    assert all(group != "*" and resource != "*" and verb != "*" for group, resource, verb in grants)


# -- the operator on the real control plane ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_operator_uses_every_permission_it_is_granted_and_is_refused_none(
    real_control_plane: Any, operated: OperatedNamespace, operator: DeployedOperator, tmp_path: Path
) -> None:
    audit_log = Path(real_control_plane.real.control_plane.audit_log)

    # A missing flavor: the operator GETs it once (not in its cache), then the flavor watch brings it.
    operated.create("lost", flavor="no-such-flavor")
    operated.wait_phase("lost", "Failed")
    operated.delete("lost")

    # A home volume (born owned by the DevServer too: the claim template carries it) and a shared claim (GET).
    operated.kubectl("apply", "-f", "-", input_text=f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: team-data, namespace: {operated.namespace}}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
""")
    operated.create("main", persistentHomeSize="1Gi", sharedVolumeClaimName="team-data")
    operated.wait_phase("main", "Running", timeout=90)
    wait_for(lambda: all(len(c.metadata.owner_references or []) == 2 for c in operated.claims("main")),
             timeout=60, message="the home claim owned by the StatefulSet and the DevServer")

    # Tracking: the namespace's defaults ConfigMap is watched (list, watch); a Secret it names is read for its
    # keys (get): missing first, then there.
    operated.kubectl("create", "configmap", "devservers-defaults",
                 "--from-literal=tracking=wandb: {project: team, apiKeySecret: wandb-team}")
    operated.create("tracked")
    operated.wait_phase("tracked", "Failed", timeout=60,
                    check=lambda s: "Secret 'wandb-team'" in str(s["status"].get("message")))
    operated.kubectl("create", "secret", "generic", "wandb-team", "--from-literal=WANDB_API_KEY=not-a-real-key")
    operated.wait_phase("tracked", "Running", timeout=120)
    operated.delete("tracked")

    # Healing: StatefulSet and Service deleted, created again.
    old_uid = operated.statefulset("main").metadata.uid
    operated.apps.delete_namespaced_stateful_set("main", operated.namespace, propagation_policy="Orphan")
    operated.core.delete_namespaced_service("main", operated.namespace)
    wait_for(lambda: (s := operated.statefulset("main")) is not None and s.metadata.uid != old_uid
             and operated.service("main") is not None, timeout=60, message="StatefulSet and Service recreated")
    # A Service edited while the operator was away (no hash of what it applied) is replaced on its return.
    operator.stop()
    operated.kubectl("annotate", "service", "main", f"{APPLIED_HASH}-")
    operator.start()

    def service_annotations() -> dict[str, str]:
        service = operated.service("main")
        return dict((service.metadata.annotations or {}) if service is not None else {})

    wait_for(lambda: APPLIED_HASH in service_annotations(), timeout=60, message="the edited Service replaced")

    # A flavor change rolls the StatefulSet (replace); a home size change cannot: delete (orphan), create.
    operated.patch("main", {"spec": {"flavor": "cpu-medium"}})
    operated.wait_phase("main", "Running", timeout=90,
                    check=lambda s: s["status"].get("observedGeneration") == 2)
    operated.patch("main", {"spec": {"persistentHomeSize": "2Gi"}})
    operated.wait_phase("main", "Running", timeout=90,
                    check=lambda s: s["status"].get("observedGeneration") == 3)

    # A stray pod with the DevServer's labels that its StatefulSet will never adopt (its name is no rank of
    # it) is deleted by the operator.
    labels = {key: value for key, value in operated.pods("main")[0].metadata.labels.items()
              if key in ("app.kubernetes.io/managed-by", "devservers.io/name")}
    operated.core.create_namespaced_pod(operated.namespace, {
        "metadata": {"name": "main-stray", "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}})

    def stray_left() -> bool:
        pods = operated.core.list_namespaced_pod(operated.namespace, field_selector="metadata.name=main-stray").items
        return any(not pod.metadata.deletion_timestamp for pod in pods)

    wait_for(lambda: not stray_left(), timeout=60, message="the operator to delete the stray pod main-stray")

    # A pod stuck on an old template (its image never pulls) is replaced once the image is fixed. On the real
    # control plane the StatefulSet controller does that itself (the operator only does it where a controller
    # would wait for the pod to be Ready, as the emulator's did).
    operated.create("stuck", image="registry.invalid/x:1")
    operated.wait_phase("stuck", "Failed", timeout=60)
    operated.patch("stuck", {"spec": {"image": "python:3.12"}})
    operated.wait_phase("stuck", "Running", timeout=90)

    # A pod no node can take (gpu-large's 768Gi): the operator lists the Nodes to say why.
    operated.create("huge", flavor="gpu-large")
    operated.wait_phase("huge", "Pending", timeout=60,
                    check=lambda s: any(c["type"] == "Scheduled" and c["reason"] == "Unschedulable"
                                        for c in s["status"].get("conditions") or []))
    operated.delete("huge")

    # Idle: probed in the pod (exec), stopped (the desired-state annotation), started again by its owner.
    operated.create("sleepy", lifecycle={"idleTimeout": 60})  # 3 s on the test operator's scaled clock
    operated.wait_phase("sleepy", "Stopped", timeout=90, check=lambda s: s["status"].get("stoppedReason") == "Idle")
    operated.patch("sleepy", {"metadata": {"annotations": {DESIRED_STATE: "Running"}},
                          "spec": {"lifecycle": {"autoShutdown": False}}})
    operated.wait_phase("sleepy", "Running", timeout=90)

    # Expiry: warned (Event, condition), then deleted by the operator.
    operated.create("brief", lifecycle={"expirationTime": rfc3339(datetime.now(UTC) + timedelta(seconds=5))})
    operated.wait_gone("brief", timeout=60)

    # A plain delete: the garbage collector does the rest.
    operated.delete("main")
    operated.wait_gone("main")

    grants = _shipped_grants()

    def findings() -> list[str]:
        with audit_log.open() as lines:
            return problems(grants, used(lines, user=OPERATOR_USER))

    # The audit backend writes each event once its response is complete: give the last ones a moment.
    deadline = time.monotonic() + 30
    while (found := findings()) and time.monotonic() < deadline:
        time.sleep(1)
    if found:
        kept = tmp_path / "audit.log"  # the cluster's state dir goes with the session
        shutil.copyfile(audit_log, kept)
        pytest.fail("operator/deploy/operator-rbac.yaml does not match what the operator did:\n  "
                    + "\n  ".join(found) + f"\n(audit log: {kept})")
