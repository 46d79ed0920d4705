"""operator/deploy: what a platform team applies must be accepted by the API server and be least-privilege."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from devservers_sdk.localcluster.pytest_plugin import ClusterHandle
from tests.platform_fixture import apply_crds_and_flavors

REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")


@pytest.fixture(scope="module")
def rendered() -> str:
    result = subprocess.run([KUBECTL, "kustomize", str(REPO / "operator" / "deploy")], capture_output=True,
                            text=True, timeout=60, check=True)
    return result.stdout


@pytest.fixture(scope="module")
def documents(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def test_kustomization_applies_with_server_side_dry_run(cluster: ClusterHandle, rendered: str) -> None:
    # As on a real cluster, a dry run cannot admit objects into a namespace or of a kind that does not exist
    # yet: the CRDs and the operator's namespace go first.
    apply_crds_and_flavors(cluster.kubeconfig)
    subprocess.run([KUBECTL, "--kubeconfig", cluster.kubeconfig, "apply", "-f",
                    str(REPO / "operator" / "deploy" / "namespace.yaml")], check=True, capture_output=True, timeout=60)
    result = subprocess.run([KUBECTL, "--kubeconfig", cluster.kubeconfig, "apply", "--dry-run=server", "-f", "-"],
                            input=rendered, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("deployment.apps/devservers-operator" in line and "(server dry run)" in line for line in lines)
    assert any("clusterrole.rbac.authorization.k8s.io/devservers-user" in line for line in lines)
    assert any("validatingadmissionpolicy.admissionregistration.k8s.io/devservers-owner" in line for line in lines)
    assert any("validatingadmissionpolicybinding.admissionregistration.k8s.io/devservers-owner" in line
               for line in lines)
    # A dry run must not have created anything.
    check = subprocess.run([KUBECTL, "--kubeconfig", cluster.kubeconfig, "-n", "devservers-system", "get",
                            "deployment", "devservers-operator"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 1 and "NotFound" in check.stderr


def test_deploy_contains_everything_a_platform_team_needs(documents: list[dict[str, Any]]) -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in documents}
    for expected in [("CustomResourceDefinition", "devservers.devservers.io"),
                     ("CustomResourceDefinition", "devserverflavors.devservers.io"),
                     ("Namespace", "devservers-system"), ("ServiceAccount", "devservers-operator"),
                     ("ClusterRole", "devservers-operator"), ("ClusterRoleBinding", "devservers-operator"),
                     ("Deployment", "devservers-operator"), ("ClusterRole", "devservers-user"),
                     ("DevServerFlavor", "cpu-small"), ("DevServerFlavor", "gpu-large"),
                     ("ValidatingAdmissionPolicy", "devservers-owner"),
                     ("ValidatingAdmissionPolicyBinding", "devservers-owner")]:
        assert expected in kinds
    user_role = next(d for d in documents if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "devservers-user")
    assert user_role["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert any("pods/exec" in rule["resources"] for rule in user_role["rules"])


def _pod_specs(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = []
    for doc in documents:
        if doc["kind"] == "Pod":
            specs.append(doc["spec"])
        elif doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            specs.append(doc["spec"]["template"]["spec"])
        elif doc["kind"] == "CronJob":
            specs.append(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return specs


# Verbs that let a role grant itself more (RBAC's privilege-escalation checks do not apply to them), and
# roles that are wildcards under another name.
_ESCALATING_VERBS = {"escalate", "bind", "impersonate"}
_WILDCARD_ROLES = {"cluster-admin", "admin", "edit", "system:masters"}


def test_no_wildcards_privileges_host_paths_or_host_networking(documents: list[dict[str, Any]]) -> None:
    problems = []
    for doc in documents:
        what = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in ("ClusterRole", "Role"):
            if doc.get("aggregationRule"):
                problems.append(f"{what} aggregates other roles (a wildcard by label)")
            for rule in doc.get("rules", []):
                for field in ("verbs", "resources", "apiGroups", "nonResourceURLs", "resourceNames"):
                    if any("*" in entry for entry in rule.get(field, [])):
                        problems.append(f"{what} has a wildcard in {field}")
                if _ESCALATING_VERBS & set(rule.get("verbs", [])):
                    problems.append(f"{what} may {', '.join(sorted(_ESCALATING_VERBS & set(rule['verbs'])))}")
        if doc["kind"] in ("ClusterRoleBinding", "RoleBinding") and doc["roleRef"]["name"] in _WILDCARD_ROLES:
            problems.append(f"{what} grants the built-in role {doc['roleRef']['name']}")
        if doc["kind"] == "PersistentVolume" and "hostPath" in doc.get("spec", {}):
            problems.append(f"{what} is a hostPath volume")
    for spec in _pod_specs(documents):
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            problems.append("a pod shares the host's namespaces")
        for volume in spec.get("volumes", []):
            if "hostPath" in volume:
                problems.append(f"a pod mounts hostPath {volume['hostPath'].get('path')}")
        for container in spec.get("containers", []) + spec.get("initContainers", []) + \
                spec.get("ephemeralContainers", []):
            context = container.get("securityContext", {})
            if context.get("privileged") or context.get("allowPrivilegeEscalation", True):
                problems.append(f"container {container['name']} may be privileged or escalate privileges")
            if "ALL" not in context.get("capabilities", {}).get("drop", []) or context.get("capabilities", {}).get("add"):
                problems.append(f"container {container['name']} keeps or adds Linux capabilities")
            if any(port.get("hostPort") for port in container.get("ports", [])):
                problems.append(f"container {container['name']} binds a port of the host's network")
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            problems.append("a pod may run as root")
    assert not problems, "\n".join(problems)


def _owner_policy_problems(documents: list[dict[str, Any]]) -> list[str]:
    # A policy switched to Warn or Ignore, or narrowed to fewer operations, would still apply cleanly:
    # only this check notices that the owner could be forged again.
    policies = [d for d in documents if d["kind"] == "ValidatingAdmissionPolicy"
                and d["metadata"]["name"] == "devservers-owner"]
    bindings = [d for d in documents if d["kind"] == "ValidatingAdmissionPolicyBinding"
                and d["spec"].get("policyName") == "devservers-owner"]
    if not policies or not bindings:
        return ["the devservers-owner policy or its binding is missing"]
    spec, binding = policies[0]["spec"], bindings[0]["spec"]
    problems = []
    if spec.get("failurePolicy") != "Fail":
        problems.append("the owner policy does not fail closed (failurePolicy is not Fail)")
    if not any({"CREATE", "UPDATE"} <= set(rule.get("operations", [])) and "devservers.io" in rule["apiGroups"]
               and "devservers" in rule["resources"] for rule in spec["matchConstraints"]["resourceRules"]):
        problems.append("the owner policy does not match CREATE and UPDATE of devservers")
    if binding.get("validationActions") != ["Deny"] or binding.get("matchResources"):
        problems.append("the owner policy's binding does not deny everywhere")
    return problems


def test_the_owner_policy_is_shipped_enforcing(documents: list[dict[str, Any]]) -> None:
    assert _owner_policy_problems(documents) == []
    weakened = copy.deepcopy(documents)
    for doc in weakened:
        if doc["kind"] == "ValidatingAdmissionPolicyBinding":
            doc["spec"]["validationActions"] = ["Warn"]
        if doc["kind"] == "ValidatingAdmissionPolicy":
            doc["spec"]["failurePolicy"] = "Ignore"
    assert len(_owner_policy_problems(weakened)) == 2


def test_the_static_check_catches_what_it_claims_to(documents: list[dict[str, Any]]) -> None:
    # Guard against a check that passes vacuously: feed it a manifest with every forbidden thing.
    bad = [{"kind": "ClusterRole", "metadata": {"name": "x"}, "rules": [{"apiGroups": ["*"], "resources": ["*"],
                                                                        "verbs": ["*"]}]},
           {"kind": "ClusterRole", "metadata": {"name": "urls"}, "rules": [
               {"nonResourceURLs": ["/metrics*"], "verbs": ["get", "impersonate"]}]},
           {"kind": "ClusterRoleBinding", "metadata": {"name": "b"}, "roleRef": {"name": "cluster-admin"}},
           {"kind": "Deployment", "metadata": {"name": "y"}, "spec": {"template": {"spec": {
               "hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
               "containers": [{"name": "c", "securityContext": {"privileged": True}}]}}}},
           {"kind": "CronJob", "metadata": {"name": "z"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {
               "securityContext": {"runAsNonRoot": True},
               "containers": [{"name": "cron", "ports": [{"hostPort": 80}], "securityContext": {
                   "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}}]}}}}}}]
    with pytest.raises(AssertionError) as caught:
        test_no_wildcards_privileges_host_paths_or_host_networking(bad)
    message = str(caught.value)
    for expected in ("wildcard in verbs", "host's namespaces", "hostPath /", "privileged", "may run as root",
                     "ClusterRole/urls has a wildcard in nonResourceURLs", "ClusterRole/urls may impersonate",
                     "grants the built-in role cluster-admin", "container cron binds a port of the host",
                     "container cron keeps or adds Linux capabilities"):
        assert expected in message, message


def test_generated_deploy_files_are_fresh() -> None:
    sys.path.insert(0, str(REPO / "tools"))
    import build_deploy

    stale = [str(path.relative_to(REPO)) for path, text in build_deploy.render().items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"{stale} are stale: run .venv/bin/python tools/build_deploy.py"
