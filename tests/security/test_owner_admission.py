"""The owner of a DevServer cannot be forged: ``operator/deploy/owner-policy.yaml``, enforced by the API server.

Everyone here reaches the cluster with a token of their own, the way a real cluster authenticates them:
alice and bob are plain users, carol is in ``devservers:admins``, and the operator runs as its
ServiceAccount. The policy is the deployed YAML, evaluated by the emulator's admission.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from devservers_sdk import DevServerClient, PermissionDeniedError
from devservers_sdk.manifests import owner_label_value
from tests.cli.devctl_support import devctl_env, run_process
from tests.security.secured_platform import SecuredPlatform, kubectl

pytestmark = pytest.mark.emulator_only

GROUP, VERSION, PLURAL = "devservers.io", "v1", "devservers"
POLICY_SAYS = "ValidatingAdmissionPolicy 'devservers-owner' with binding 'devservers-owner' denied request: "


@pytest.fixture(scope="module")
def namespace(secured: SecuredPlatform) -> str:
    with secured.api() as admin:
        client.CoreV1Api(admin).create_namespace({"metadata": {"name": "team"}})
    return "team"


@pytest.fixture(scope="module")
def sdk(secured: SecuredPlatform, namespace: str) -> Iterator[dict[str, DevServerClient]]:
    clients = {user: DevServerClient(kubeconfig=secured.kubeconfigs[user], namespace=namespace)
               for user in ("alice", "bob", "carol", "operator", "alice@example.com", "alice@evil.example")}
    yield clients
    for each in clients.values():
        each.close()


def manifest(name: str, owner: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DevServer", "metadata": {"name": name},
            "spec": {"owner": owner, "flavor": "cpu-small", **spec}}


def custom(secured: SecuredPlatform, user: str) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(secured.api(user))


def refused(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(client.ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body)


def test_alice_creates_her_own_and_the_operator_reconciles_it(sdk: dict[str, DevServerClient]) -> None:
    # The SDK fills in the owner from the identity the cluster reports (alice): no owner argument.
    created = sdk["alice"].create("alices", flavor="cpu-small")
    assert created.spec.owner == "alice"
    # Status is written by the operator through the status subresource, which the policy does not match.
    running = sdk["alice"].wait("alices", for_phase="Running", timeout=90)
    assert running.status.observed_generation == running.metadata.generation


def test_alice_cannot_create_a_devserver_for_bob(secured: SecuredPlatform, namespace: str,
                                                 sdk: dict[str, DevServerClient], tmp_path: Path) -> None:
    expected = (POLICY_SAYS + "spec.owner must be your user name 'alice' exactly (as kubectl auth whoami shows "
                "it), not 'bob': you can only create DevServers for yourself. Leave the owner unset (devctl and "
                "the SDK fill in yours) or ask a member of devservers:admins to create it for you")
    # The raw API, skipping every check of the SDK: the API server itself refuses.
    status, body = refused(lambda: custom(secured, "alice").create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest("forged", "bob")))
    assert status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == f'devservers.devservers.io "forged" is forbidden: {expected}'
    # The SDK says the same, as its error class for a 403, without RBAC advice that would not help.
    forger = DevServerClient(kubeconfig=secured.kubeconfigs["alice"], namespace=namespace, owner="bob")
    with pytest.raises(PermissionDeniedError) as caught:
        forger.create("forged", flavor="cpu-small")
    forger.close()
    assert str(caught.value) == (f"DevServer 'forged' in namespace '{namespace}' was refused by the cluster's "
                                 f"admission policy 'devservers-owner': {expected.split(POLICY_SAYS)[1]}.")
    # devctl: one line, exit 1, the policy's words.
    outcome = run_process(["create", "forged", "--flavor", "cpu-small", "-n", namespace],
                          env=devctl_env(secured.kubeconfigs["alice"], DEVSERVERS_OWNER="bob"))
    assert outcome.exit_code == 1, outcome
    assert outcome.stderr.strip().startswith("Error: DevServer 'forged'") and \
        "spec.owner must be your user name 'alice'" in outcome.stderr, outcome
    assert "Traceback" not in outcome.stderr
    # kubectl, including a server-side dry run (admission runs for dry runs too).
    path = tmp_path / "forged.yaml"
    path.write_text(yaml.safe_dump(manifest("forged", "bob")))
    for extra in ([], ["--dry-run=server"]):
        result = kubectl(secured.kubeconfigs["alice"], "-n", namespace, "apply", "-f", str(path), *extra,
                         check=False)
        assert result.returncode == 1 and "Error from server (Forbidden)" in result.stderr, result.stderr
        assert "spec.owner must be your user name 'alice'" in result.stderr
    assert [s.name for s in sdk["carol"].list()].count("forged") == 0


def test_the_owner_cannot_be_changed_on_update(secured: SecuredPlatform, namespace: str,
                                               sdk: dict[str, DevServerClient]) -> None:
    sdk["alice"].create("handover", flavor="cpu-small")
    api = custom(secured, "alice")
    current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "handover")
    current["spec"]["owner"] = "bob"
    status, body = refused(lambda: api.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                                         "handover", current))
    assert status == 403
    assert body["message"].endswith(POLICY_SAYS + "spec.owner cannot be changed (from 'alice' to 'bob'): put the "
                                    "old owner back; only a member of devservers:admins can hand a DevServer over")
    status, _ = refused(lambda: api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "handover",
                                                                   {"spec": {"owner": "alice-2"}}))
    assert status == 403
    # Her own spec changes go through.
    sdk["alice"].update("handover", image="pytorch/pytorch:2.5.1")


def test_bob_cannot_change_the_spec_of_alices_server(secured: SecuredPlatform, namespace: str,
                                                     sdk: dict[str, DevServerClient]) -> None:
    sdk["alice"].create("not-bobs", flavor="cpu-small")
    with pytest.raises(PermissionDeniedError) as caught:
        sdk["bob"].update("not-bobs", image="evil/image:1")
    assert "spec of DevServer 'not-bobs' belongs to spec.owner 'alice', not to 'bob'" in str(caught.value)
    # Metadata is not the spec: labels and annotations stay RBAC's business (and the garbage collector's).
    custom(secured, "bob").patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "not-bobs",
                                                          {"metadata": {"labels": {"reviewed-by": "bob"}}})
    assert sdk["alice"].get("not-bobs").spec.image is None


def test_an_admin_acts_for_anyone(secured: SecuredPlatform, namespace: str,
                                  sdk: dict[str, DevServerClient]) -> None:
    api = custom(secured, "carol")
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest("for-bob", "bob"))
    api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "for-bob", {"spec": {"image": "x/y:1"}})
    api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "for-bob", {"spec": {"owner": "alice"}})
    assert sdk["alice"].get("for-bob").spec.owner == "alice"
    # ...and the new owner may now change it, the old one not.
    sdk["alice"].update("for-bob", image="x/y:2")
    with pytest.raises(PermissionDeniedError):
        sdk["bob"].update("for-bob", image="x/y:3")


def test_an_email_login_owns_its_full_name_not_its_local_part(secured: SecuredPlatform, namespace: str,
                                                             tmp_path: Path) -> None:
    assert secured.cluster is not None
    token = secured.cluster.add_user("dave@example.com")
    kubeconfig = secured.cluster.kubeconfig_for(tmp_path / "dave", token=token)
    dave = DevServerClient(kubeconfig=kubeconfig, namespace=namespace)
    try:
        assert dave.create("daves", flavor="cpu-small").spec.owner == "dave@example.com"
        # "The part before @" is somebody else's name: nothing is derived from the login any more.
        for other in ("dave", "da"):
            impostor = DevServerClient(kubeconfig=kubeconfig, namespace=namespace, owner=other)
            with pytest.raises(PermissionDeniedError,
                               match=re.escape("spec.owner must be your user name 'dave@example.com' exactly")):
                impostor.create("not-daves", flavor="cpu-small")
            impostor.close()
    finally:
        dave.close()


def test_the_operator_still_writes_with_the_policy_installed(secured: SecuredPlatform, namespace: str,
                                                             sdk: dict[str, DevServerClient]) -> None:
    # An idle stop is the operator's own write to the DevServer (an annotation), then status updates.
    sdk["alice"].create("idler", flavor="cpu-small", idle_timeout=60)
    stopped = sdk["alice"].wait("idler", for_phase="Stopped", timeout=120)
    assert stopped.status.stopped_reason == "Idle"
    # Its ServiceAccount is exempt, so a future operator that migrates a spec field is not locked out;
    # the same write from bob is refused.
    operator = custom(secured, "operator")
    operator.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "idler",
                                            {"spec": {"image": "migrated/image:2"}})
    status, _ = refused(lambda: custom(secured, "bob").patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "idler", {"spec": {"image": "bob/image:2"}}))
    assert status == 403
    log = secured.log()
    assert "Traceback" not in log and "refused by the cluster's admission policy" not in log


# -- e-mail owners: what the API server calls the user, compared exactly ------------------------------------


def test_an_e_mail_user_owns_what_she_creates_under_her_full_name(sdk: dict[str, DevServerClient],
                                                                 secured: SecuredPlatform, namespace: str) -> None:
    # The SDK's default owner is the name SelfSubjectReview reports (kubectl auth whoami), e-mail and all.
    created = sdk["alice@example.com"].create("mailed", flavor="cpu-small")
    assert created.spec.owner == "alice@example.com"
    running = sdk["alice@example.com"].wait("mailed", for_phase="Running", timeout=90)
    # Children carry the owner label in its one documented form: sanitised, with a hash of the full name.
    pods = client.CoreV1Api(secured.api()).list_namespaced_pod(namespace, label_selector="devservers.io/name=mailed")
    assert [pod.metadata.labels["devservers.io/owner"] for pod in pods.items] == [owner_label_value("alice@example.com")]
    assert running.spec.owner == "alice@example.com"


@pytest.mark.parametrize("victim", ["alice@example.com", "alice"])
def test_alice_at_evil_example_cannot_act_as_the_owner_of_alices_servers(secured: SecuredPlatform, namespace: str,
                                                                          sdk: dict[str, DevServerClient],
                                                                          victim: str) -> None:
    # The policy used to accept "the part of the user name before @": alice@evil.example passed for alice.
    name = "victim-" + ("mail" if "@" in victim else "plain")
    custom(secured, "carol").create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                             manifest(name, victim))
    evil = custom(secured, "alice@evil.example")
    status, body = refused(lambda: evil.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest(name + "-forged", victim)))
    assert status == 403 and "spec.owner must be your user name 'alice@evil.example' exactly" in body["message"]
    status, body = refused(lambda: evil.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": {"image": "evil/image:1"}}))
    assert status == 403
    assert f"belongs to spec.owner '{victim}', not to 'alice@evil.example'" in body["message"]
    with pytest.raises(PermissionDeniedError):
        sdk["alice@evil.example"].update(name, image="evil/image:1")
    assert sdk["carol"].get(name).spec.image is None
