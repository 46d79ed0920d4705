"""ValidatingAdmissionPolicy in the emulator, and the CEL subset behind it and behind CRD rules.

Policies here guard ConfigMaps in namespaces labelled ``admission-test``, on a cluster of this module's
own: a policy binds cluster-wide, and must not refuse other tests' writes.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from devservers_sdk.localcluster import LocalCluster
from devservers_sdk.localcluster.apiserver.cel import CelCompileError, CelEvalError, compile_expression

pytestmark = pytest.mark.emulator_only

KUBECTL = str(Path(sys.executable).parent / "kubectl")
GROUP = "admissionregistration.k8s.io"


# -- the CEL subset, pure ------------------------------------------------------------------------------------

OBJECT = {"metadata": {"name": "cm", "labels": {"team": "ml"}},
          "data": {"owner": "alice", "size": "3"}, "spec": {"replicas": 3, "ratio": 0.5, "tags": ["a", "b"]}}
ACTIVATION = {"object": OBJECT, "oldObject": None,
              "request": {"operation": "CREATE", "userInfo": {"username": "alice@example.com",
                                                              "groups": ["devservers:admins"]}}}


def evaluate(source: str) -> Any:
    return compile_expression(source, declared=("object", "oldObject", "request")).evaluate(ACTIVATION)


@pytest.mark.parametrize(("source", "expected"), [
    ("true && !false", True),
    ("null == oldObject", True),
    ("'a' + \"b\" + r'\\n'", "ab\\n"),
    ("'\\u00e9\\x41\\n'", "éA\n"),
    ("0x10 + 1", 17),
    ("1.5 + 0.25", 1.75),
    ("object.data.owner == 'alice'", True),
    ("object.metadata.labels['team']", "ml"),
    ("object.spec.tags[1]", "b"),
    ("has(object.data.owner) && !has(object.data.missing)", True),
    ("'devservers:admins' in request.userInfo.groups", True),
    ("'owner' in object.data && !('x' in object.data)", True),
    ("size(object.spec.tags) + object.data.owner.size() + size(object.data)", 9),
    ("request.userInfo.username.startsWith(object.data.owner + '@')", True),
    ("'alice'.endsWith('ce') && 'alice'.contains('lic') && 'alice'.matches('^a.i')", True),
    ("matches('abc', 'b')", True),
    ("[1, 2] + [3] == [1, 2, 3] && {'a': 1} == {'a': 1}", True),
    ("request.operation == 'CREATE' ? 'new' : 'changed'", "new"),
    ("object.spec.tags.all(t, t.size() == 1) && object.spec.tags.exists(t, t == 'b')", True),
    ("object.data.exists_one(k, k.startsWith('o'))", True),
    ("1 == 1.0 && 1 != 'a' && !(1 == true)", True),
    ("7 / -2 == -3 && -7 % 3 == -1 && 2 * 3 - 1 == 5", True),
    ("1 < 2 && 'a' < 'b' && 2.5 >= 2", True),
    ("int('12') + int(2.9) == 14 && string(3) + string(true) == '3true'", True),
    # && and || are commutative in CEL: an error on one side is absorbed when the other side decides.
    ("object.data.missing == 'x' || true", True),
    ("false && object.data.missing == 'x'", False),
    ("object.spec.tags.exists(t, t.missing == 1 || t == 'a')", True),
])
def test_the_subset_evaluates_as_cel_does(source: str, expected: Any) -> None:
    assert evaluate(source) == expected


@pytest.mark.parametrize(("source", "says"), [
    ("object.data.missing", "no such key: missing"),
    ("object.spec.tags[5]", "index out of bounds: 5"),
    ("1 + 1.0", "no such overload: _+_(int, double)"),
    ("'a' + 1", "no such overload"),
    ("9223372036854775807 + 1", "integer overflow"),
    ("1 / 0", "division by zero"),
    ("!'a'", "no such overload: !_(string)"),
    ("object.data.owner.startsWith(1)", "no such overload"),
    ("1 < 'a'", "no such overload"),
    ("true ? object.data.missing : 1", "no such key"),
    ("object.data.owner.matches(object.data.owner + '(?=x)')", "not RE2"),
])
def test_evaluation_errors_say_what_cel_says(source: str, says: str) -> None:
    with pytest.raises(CelEvalError, match=re.escape(says)):
        evaluate(source)


@pytest.mark.parametrize(("source", "says"), [
    ("object.", "1:8: Syntax error: mismatched input '<EOF>' expecting IDENTIFIER"),
    ("object.data ==", "expecting an expression"),
    ("unknown == 1", "1:1: undeclared reference to 'unknown'"),
    ("nope(1)", "undeclared reference to 'nope'"),
    ("object.data.map(k, k)", "function 'map' is outside the local cluster's CEL subset"),
    ("object.data.owner.lowerAscii()", "function 'lowerAscii' is outside"),
    ("1u", "unsigned integers are outside"),
    ("b'x'", "bytes literals are outside"),
    ("'''x'''", "triple-quoted strings are outside"),
    ("'unterminated", "unterminated string"),
    ("has(object)", "invalid argument to has() macro"),
    ("size(1, 2)", "found no matching overload for 'size' applied to 2 argument(s)"),
    ("object.data.owner.matches('(')", "invalid regular expression"),
    ("if == 1", "reserved identifier 'if'"),
    ("(" * 101 + "1" + ")" * 101, "nests more than 100 levels"),
    ("+".join(["1"] * 300), "nests more than 250 levels"),
    ("", "mismatched input '<EOF>'"),
])
def test_what_is_not_cel_or_not_in_the_subset_fails_to_compile(source: str, says: str) -> None:
    with pytest.raises(CelCompileError) as caught:
        compile_expression(source, declared=("object",))
    assert says in str(caught.value)
    assert str(caught.value).startswith("ERROR: <input>:")


def test_a_runaway_expression_hits_the_cost_budget() -> None:
    program = compile_expression("object.all(a, object.all(b, object.all(c, a + b + c >= 0)))", declared=("object",))
    with pytest.raises(CelEvalError, match="cost limit exceeded"):
        program.evaluate({"object": list(range(200))})


def test_variables_are_declared_names_only() -> None:
    with pytest.raises(CelCompileError, match="undefined field 'typo'"):
        compile_expression("variables.typo", declared=("variables",), variable_names=("isOwner",))
    assert compile_expression("variables.isOwner", declared=("variables",), variable_names=("isOwner",))


# -- policies on a cluster -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[LocalCluster]:
    with LocalCluster(kubelet=False) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def users(emulator: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Kubeconfigs for admin, alice and bob (bob is in the group "reviewers")."""
    folder = tmp_path_factory.mktemp("users")
    return {"admin": emulator.kubeconfig,
            "alice": emulator.kubeconfig_for(folder / "alice", token=emulator.add_user("alice")),
            "bob": emulator.kubeconfig_for(folder / "bob", token=emulator.add_user("bob", ["reviewers"]))}


def api(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(kubeconfig)


@pytest.fixture
def namespace(users: dict[str, str]) -> Iterator[str]:
    name = f"adm-{secrets.token_hex(3)}"
    with api(users["admin"]) as admin:
        client.CoreV1Api(admin).create_namespace({"metadata": {"name": name, "labels": {"admission-test": "true"}}})
    yield name


def policy(name: str, validations: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    match = spec.pop("matchConstraints", {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                             "operations": ["CREATE", "UPDATE"],
                                                             "resources": ["configmaps"]}]})
    return {"apiVersion": f"{GROUP}/v1", "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
            "spec": {"matchConstraints": match, "validations": validations, **spec}}


def binding(name: str, policy_name: str, actions: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    spec.setdefault("matchResources", {"namespaceSelector": {"matchLabels": {"admission-test": "true"}}})
    return {"apiVersion": f"{GROUP}/v1", "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
            "spec": {"policyName": policy_name, "validationActions": ["Deny"] if actions is None else actions,
                     **spec}}


@pytest.fixture
def install(users: dict[str, str]) -> Iterator[Any]:
    """Create policies and bindings (as the admin); every one is deleted after the test."""
    created: list[tuple[str, str]] = []
    admin = api(users["admin"])
    registration = client.AdmissionregistrationV1Api(admin)

    def install(*objects: dict[str, Any]) -> None:
        for obj in objects:
            if obj["kind"] == "ValidatingAdmissionPolicy":
                registration.create_validating_admission_policy(obj)
            else:
                registration.create_validating_admission_policy_binding(obj)
            created.append((obj["kind"], obj["metadata"]["name"]))

    yield install
    for kind, name in reversed(created):
        if kind == "ValidatingAdmissionPolicy":
            registration.delete_validating_admission_policy(name)
        else:
            registration.delete_validating_admission_policy_binding(name)
    admin.close()


def configmap(name: str, data: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}},
            "data": data or {}}


def create_as(kubeconfig: str, namespace: str, body: dict[str, Any]) -> Any:
    with api(kubeconfig) as user:
        return client.CoreV1Api(user).create_namespaced_config_map(namespace, body)


def refusal(kubeconfig: str, namespace: str, body: dict[str, Any]) -> client.ApiException:
    with pytest.raises(client.ApiException) as caught:
        create_as(kubeconfig, namespace, body)
    return caught.value


OWNER_RULE = {"expression": "object.data.owner == request.userInfo.username", "reason": "Forbidden",
              "messageExpression": "'data.owner must be your user name \\'' + request.userInfo.username + "
                                   "'\\', not \\'' + object.data.owner + '\\''"}


def test_a_denial_is_answered_as_kube_apiserver_answers_it(users: dict[str, str], namespace: str,
                                                            install: Any) -> None:
    install(policy("owner.example.com", [OWNER_RULE]), binding("owner-binding", "owner.example.com"))
    assert create_as(users["alice"], namespace, configmap("mine", {"owner": "alice"})).metadata.name == "mine"
    denied = refusal(users["alice"], namespace, configmap("forged", {"owner": "bob"}))
    status = json.loads(denied.body)
    text = ("ValidatingAdmissionPolicy 'owner.example.com' with binding 'owner-binding' denied request: "
            "data.owner must be your user name 'alice', not 'bob'")
    assert denied.status == 403
    assert status["reason"] == "Forbidden" and status["code"] == 403
    assert status["message"] == f'configmaps "forged" is forbidden: {text}'
    assert status["details"] == {"name": "forged", "kind": "configmaps", "causes": [{"message": text}]}
    # The same policy, the other user: the identity comes from the bearer token, not from the object.
    assert create_as(users["bob"], namespace, configmap("bobs", {"owner": "bob"}))


def test_without_a_reason_the_denial_is_422_and_without_a_message_it_names_the_expression(
        users: dict[str, str], namespace: str, install: Any) -> None:
    install(policy("small.example.com", [{"expression": "size(object.data) <= 1"}]),
            binding("small-binding", "small.example.com"))
    denied = refusal(users["alice"], namespace, configmap("big", {"a": "1", "b": "2"}))
    status = json.loads(denied.body)
    assert denied.status == 422 and status["reason"] == "Invalid"
    assert status["message"].endswith("denied request: failed expression: size(object.data) <= 1")


def test_message_expression_falls_back_to_message_when_it_fails(users: dict[str, str], namespace: str,
                                                                install: Any) -> None:
    install(policy("fallback.example.com", [{"expression": "has(object.data.owner)", "message": "set data.owner",
                                             "messageExpression": "'no owner in ' + object.data.missing"}]),
            binding("fallback-binding", "fallback.example.com"))
    denied = refusal(users["alice"], namespace, configmap("nameless"))
    assert json.loads(denied.body)["message"].endswith("denied request: set data.owner")


def test_evaluation_errors_follow_the_failure_policy(users: dict[str, str], namespace: str, install: Any) -> None:
    install(policy("strict.example.com", [{"expression": "object.data.owner == 'alice'"}]),
            policy("lenient.example.com", [{"expression": "object.data.team == 'ml'"}], failurePolicy="Ignore"),
            binding("strict-binding", "strict.example.com"), binding("lenient-binding", "lenient.example.com"))
    denied = refusal(users["alice"], namespace, configmap("ownerless", {"team": "ml"}))
    assert json.loads(denied.body)["message"].endswith(
        "denied request: expression 'object.data.owner == 'alice'' resulted in error: no such key: owner")
    # data.team is missing: an error, which the lenient policy ignores.
    assert create_as(users["alice"], namespace, configmap("teamless", {"owner": "alice"}))


def test_matching_by_operation_resource_subresource_and_selectors(users: dict[str, str], namespace: str,
                                                                   install: Any) -> None:
    never = [{"expression": "false", "message": "refused"}]
    install(policy("create-only.example.com", never, matchConstraints={
                "resourceRules": [{"apiGroups": [""], "apiVersions": ["*"], "operations": ["CREATE"],
                                   "resources": ["configmaps"], "resourceNames": ["guarded"]}]}),
            binding("create-only-binding", "create-only.example.com"),
            policy("labelled.example.com", never, matchConstraints={
                "resourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"],
                                   "resources": ["configmaps"]}],
                "objectSelector": {"matchLabels": {"locked": "true"}}}),
            binding("labelled-binding", "labelled.example.com"))
    with api(users["alice"]) as alice:
        core = client.CoreV1Api(alice)
        assert "refused" in refusal(users["alice"], namespace, configmap("guarded")).body
        core.create_namespaced_config_map(namespace, configmap("free"))  # another name: not matched
        # UPDATE is not in the first policy's operations.
        core.patch_namespaced_config_map("free", namespace, {"data": {"x": "1"}})
        assert "refused" in refusal(users["alice"], namespace, configmap("locked", labels={"locked": "true"})).body
        core.create_namespaced_config_map(namespace, configmap("open", labels={"locked": "false"}))
        # Secrets are not configmaps; an unlabelled namespace is outside the binding's namespaceSelector.
        core.create_namespaced_secret(namespace, {"metadata": {"name": "s", "labels": {"locked": "true"}}})
        other = f"plain-{secrets.token_hex(3)}"
        with api(users["admin"]) as admin:
            client.CoreV1Api(admin).create_namespace({"metadata": {"name": other}})
        core.create_namespaced_config_map(other, configmap("locked", labels={"locked": "true"}))


def test_subresources_are_matched_only_when_named(users: dict[str, str], install: Any) -> None:
    # Status writes of a custom resource are not "devices" writes: a policy names "devices/status" to see them.
    install(policy("no-spec-writes.example.com", [{"expression": "false", "message": "main resource"}],
                   matchConstraints={"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                        "operations": ["UPDATE"], "resources": ["deployments"]}]}),
            binding("no-spec-writes", "no-spec-writes.example.com", matchResources={}))
    with api(users["admin"]) as admin:
        apps = client.AppsV1Api(admin)
        body = {"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
        apps.create_namespaced_deployment("default", body)
        apps.patch_namespaced_deployment_status("web", "default", {"status": {"observedGeneration": 1}})
        with pytest.raises(client.ApiException) as caught:
            apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 2}})
        assert caught.value.status == 422 and "main resource" in caught.value.body
        apps.delete_namespaced_deployment("web", "default")


def test_match_conditions_and_variables(users: dict[str, str], namespace: str, install: Any) -> None:
    install(policy("reviewers.example.com",
                   [{"expression": "variables.isReviewer || object.data.size() <= 1", "reason": "Forbidden",
                     "messageExpression": "variables.who + ' may store one key only'"}],
                   matchConditions=[{"name": "not-exempt", "expression": "!has(object.data.exempt)"}],
                   variables=[{"name": "who", "expression": "request.userInfo.username"},
                              {"name": "isReviewer", "expression": "'reviewers' in request.userInfo.groups"}]),
            binding("reviewers-binding", "reviewers.example.com"))
    denied = refusal(users["alice"], namespace, configmap("two", {"a": "1", "b": "2"}))
    assert json.loads(denied.body)["message"].endswith("denied request: alice may store one key only")
    create_as(users["alice"], namespace, configmap("exempt", {"a": "1", "exempt": "yes"}))
    create_as(users["bob"], namespace, configmap("two", {"a": "1", "b": "2"}))


def test_warn_and_audit_bindings_do_not_refuse(users: dict[str, str], namespace: str, install: Any) -> None:
    install(policy("advice.example.com", [{"expression": "has(object.data.owner)", "message": "set data.owner"}]),
            binding("advice-binding", "advice.example.com", ["Warn", "Audit"]))
    (tmp := Path(users["admin"]).parent / f"cm-{secrets.token_hex(3)}.yaml").write_text(
        yaml.safe_dump(configmap("advised")))
    result = subprocess.run([KUBECTL, "--kubeconfig", users["alice"], "-n", namespace, "apply", "-f", str(tmp)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert ("Warning: Validation failed for ValidatingAdmissionPolicy 'advice.example.com' with binding "
            "'advice-binding': set data.owner") in result.stderr


def test_kubectl_apply_changes_a_policy_with_a_strategic_merge_patch(users: dict[str, str], tmp_path: Path) -> None:
    # kubectl apply patches a built-in kind with a strategic merge patch; the emulator answered 415 for
    # policies (kube-apiserver accepts it), so a changed policy could not be applied again.
    manifest = tmp_path / "policy.yaml"
    first = policy("smp.example.com", [{"expression": "true", "message": "first"}])
    manifest.write_text(yaml.safe_dump(first))
    run = [KUBECTL, "--kubeconfig", users["admin"], "apply", "-f", str(manifest)]
    try:
        assert subprocess.run(run, capture_output=True, text=True, timeout=60).returncode == 0
        first["spec"]["validations"][0]["message"] = "second"
        manifest.write_text(yaml.safe_dump(first))
        result = subprocess.run(run, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "validatingadmissionpolicy.admissionregistration.k8s.io/smp.example.com configured" in result.stdout
        with api(users["admin"]) as admin:
            stored = client.AdmissionregistrationV1Api(admin).read_validating_admission_policy("smp.example.com")
        assert stored.spec.validations[0].message == "second"
    finally:
        subprocess.run([KUBECTL, "--kubeconfig", users["admin"], "delete", "-f", str(manifest)], capture_output=True,
                       timeout=60)


def test_kubectl_shows_the_denial_also_for_a_server_side_dry_run(users: dict[str, str], namespace: str,
                                                                 install: Any, tmp_path: Path) -> None:
    install(policy("owner.example.com", [OWNER_RULE]), binding("owner-binding", "owner.example.com"))
    manifest = tmp_path / "forged.yaml"
    manifest.write_text(yaml.safe_dump(configmap("forged", {"owner": "bob"})))
    for extra in ([], ["--dry-run=server"]):
        result = subprocess.run([KUBECTL, "--kubeconfig", users["alice"], "-n", namespace, "apply", "-f",
                                 str(manifest), *extra], capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert ('Error from server (Forbidden): error when creating "' in result.stderr
                and "configmaps \"forged\" is forbidden: ValidatingAdmissionPolicy 'owner.example.com' with "
                    "binding 'owner-binding' denied request: data.owner must be your user name 'alice', not 'bob'"
                in result.stderr), result.stderr


def test_policies_are_validated_when_stored(users: dict[str, str]) -> None:
    with api(users["admin"]) as admin:
        registration = client.AdmissionregistrationV1Api(admin)
        bad_policies = [
            (policy("syntax.example.com", [{"expression": "object.data.owner =="}]),
             "spec.validations[0].expression: Invalid value: \"object.data.owner ==\": compilation failed: "
             "ERROR: <input>:1:21: Syntax error"),
            (policy("subset.example.com", [{"expression": "object.data.all(k, k.lowerAscii() == k)"}]),
             "compilation failed: ERROR: <input>:1:22: function 'lowerAscii' is outside the local cluster's "
             "CEL subset"),
            (policy("notbool.example.com", [{"expression": "'yes'"}]), "must evaluate to bool"),
            (policy("message.example.com", [{"expression": "true", "messageExpression": "1"}]),
             "spec.validations[0].messageExpression: Invalid value: \"1\": must evaluate to string"),
            (policy("reason.example.com", [{"expression": "true", "reason": "Teapot"}]),
             'spec.validations[0].reason: Unsupported value: "Teapot"'),
            (policy("empty.example.com", []), "spec.validations: Required value"),
            (policy("norules.example.com", [{"expression": "true"}], matchConstraints={}),
             "spec.matchConstraints.resourceRules: Required value"),
            (policy("authz.example.com", [{"expression": "authorizer.group('').check('get')"}]),
             "'authorizer' is outside what the local cluster supports"),
            (policy("params.example.com", [{"expression": "true"}],
                    paramKind={"apiVersion": "v1", "kind": "ConfigMap"}), "spec.paramKind: Forbidden"),
        ]
        for body, says in bad_policies:
            with pytest.raises(client.ApiException) as caught:
                registration.create_validating_admission_policy(body)
            assert caught.value.status == 422 and says in json.loads(caught.value.body)["message"], \
                (body["metadata"]["name"], caught.value.body)
        for body, says in [(binding("both", "p", ["Deny", "Warn"]), "must not contain both Deny and Warn"),
                           (binding("none", "p", []), "spec.validationActions: Required value"),
                           (binding("typo", "p", ["Reject"]), 'Unsupported value: "Reject"')]:
            with pytest.raises(client.ApiException) as caught:
                registration.create_validating_admission_policy_binding(body)
            assert caught.value.status == 422 and says in json.loads(caught.value.body)["message"]


def test_stored_policies_get_the_servers_defaults(users: dict[str, str], install: Any) -> None:
    install(policy("defaults.example.com", [{"expression": "true"}]))
    with api(users["admin"]) as admin:
        stored = client.AdmissionregistrationV1Api(admin).read_validating_admission_policy("defaults.example.com")
    assert stored.spec.failure_policy == "Fail"
    assert stored.spec.match_constraints.match_policy == "Equivalent"
    assert stored.spec.match_constraints.resource_rules[0].scope == "*"


def test_policies_do_not_apply_to_policies(users: dict[str, str], install: Any) -> None:
    # A policy that refuses everything must not be able to lock itself (or its binding) in place.
    install(policy("lockdown.example.com", [{"expression": "false"}], matchConstraints={
        "resourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"]}]}),
        binding("lockdown-binding", "lockdown.example.com", matchResources={}))
    with api(users["admin"]) as admin:
        registration = client.AdmissionregistrationV1Api(admin)
        stored = registration.read_validating_admission_policy("lockdown.example.com")
        stored.metadata.labels = {"still": "editable"}
        registration.replace_validating_admission_policy("lockdown.example.com", stored)
        with pytest.raises(client.ApiException) as caught:
            client.CoreV1Api(admin).create_namespaced_config_map("default", configmap("blocked"))
        assert caught.value.status == 422


# -- CRD validation rules ----------------------------------------------------------------------------------


def test_crd_rules_are_compiled_when_stored_and_enforced_on_writes(users: dict[str, str]) -> None:
    def crd(rule: str) -> dict[str, Any]:
        spec_schema = {"type": "object", "properties": {"env": {"type": "object", "maxProperties": 8,
                                                                "additionalProperties": {"type": "string"},
                                                                "x-kubernetes-validations": [
                                                                    {"rule": rule, "message": "env keys must start "
                                                                     "with APP_"}]}}}
        return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "gadgets.admission.example.com"},
                "spec": {"group": "admission.example.com", "scope": "Namespaced",
                         "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget",
                                   "listKind": "GadgetList"},
                         "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                             "openAPIV3Schema": {"type": "object", "properties": {"spec": spec_schema}}}}]}}

    with api(users["admin"]) as admin:
        extensions = client.ApiextensionsV1Api(admin)
        with pytest.raises(client.ApiException) as caught:
            extensions.create_custom_resource_definition(crd("self.all(k, k.split('_')[0] == 'APP')"))
        message = json.loads(caught.value.body)["message"]
        assert caught.value.status == 422
        assert "x-kubernetes-validations[0].rule: Invalid value" in message
        assert "compilation failed: ERROR: <input>:1:15: function 'split' is outside" in message, message
        extensions.create_custom_resource_definition(crd("self.all(k, k.startsWith('APP_'))"))
        custom = client.CustomObjectsApi(admin)

        def gadget(env: dict[str, str]) -> dict[str, Any]:
            return {"apiVersion": "admission.example.com/v1", "kind": "Gadget",
                    "metadata": {"name": f"g-{secrets.token_hex(3)}"}, "spec": {"env": env}}

        try:
            for _ in range(50):
                try:
                    custom.create_namespaced_custom_object("admission.example.com", "v1", "default", "gadgets",
                                                           gadget({"APP_MODE": "fast"}))
                    break
                except client.ApiException as exc:  # the CRD is served a moment after it is stored
                    if exc.status != 404:
                        raise
            with pytest.raises(client.ApiException) as caught:
                custom.create_namespaced_custom_object("admission.example.com", "v1", "default", "gadgets",
                                                       gadget({"APP_MODE": "fast", "LD_PRELOAD": "/x.so"}))
            assert caught.value.status == 422
            assert 'spec.env: Invalid value: "object": env keys must start with APP_' in \
                json.loads(caught.value.body)["message"]
        finally:
            extensions.delete_custom_resource_definition("gadgets.admission.example.com")
