"""alice, bob and carol on the real control plane: RBAC (``edit`` + ``devservers-user``) and the owner policy,
through the SDK, devctl and kubectl. Every refusal here is asserted, so loosening the role or the policy
fails a test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devservers_sdk import DevServerClient
from devservers_sdk.errors import PermissionDeniedError
from devservers_sdk.localcluster.pytest_plugin import wait_for
from tests.tenancy.conftest import People

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _devserver(name: str, owner: str, namespace: str) -> str:
    return json.dumps({"apiVersion": "devservers.io/v1", "kind": "DevServer",
                       "metadata": {"name": name, "namespace": namespace},
                       # A lifetime under cpu-small's 7-day cap, so that an extend is refused for who asks,
                       # never for passing the cap.
                       "spec": {"owner": owner, "flavor": "cpu-small", "lifecycle": {"timeToLive": "2h"}}})


def test_alice_runs_her_devserver_through_the_sdk_devctl_and_kubectl(people: People) -> None:
    with DevServerClient(kubeconfig=people.kubeconfigs["alice"], namespace=people.alice_ns) as alice:
        assert alice.owner == "alice"
        assert "cpu-small" in [flavor.name for flavor in alice.flavors()]
        server = alice.create("mine", flavor="cpu-small", time_to_live="2h", wait=True, timeout=120)
        assert server.spec.owner == "alice"
        assert [s.name for s in alice.list()] == ["mine"]
        assert alice.describe("mine").devserver.name == "mine"
        before = alice.get("mine").status.expires_at
        extended = alice.extend("mine", by="1h")
        assert before is not None and extended.spec.lifecycle.expiration_time is not None
        assert alice.exec("mine", "echo hello").stdout == "hello\n"
        alice.stop("mine", wait=True, timeout=120)
        alice.start("mine", wait=True, timeout=120)

    listed = people.devctl("alice", "list", "-o", "name")
    assert listed.returncode == 0 and listed.stdout.strip() == "devserver.devservers.io/mine", listed
    described = people.devctl("alice", "describe", "mine")
    assert described.returncode == 0 and "alice" in described.stdout, described
    flavors = people.devctl("alice", "flavors")
    assert flavors.returncode == 0 and "cpu-small" in flavors.stdout, flavors
    got = people.kubectl("alice", "get", "devservers", "-o", "name")
    assert got.returncode == 0 and got.stdout.strip() == "devserver.devservers.io/mine", got
    shell = people.kubectl("alice", "exec", "mine-0", "--", "sh", "-c", "echo via-kubectl")
    assert shell.returncode == 0 and shell.stdout == "via-kubectl\n", shell.stderr
    deleted = people.devctl("alice", "delete", "mine", "--wait")
    assert deleted.returncode == 0, deleted


def test_alice_cannot_touch_bobs_namespace(people: People) -> None:
    bob_ns = people.bob_ns
    created = people.kubectl("bob", "apply", "-f", "-", input=_devserver("bobs", "bob", bob_ns))
    assert created.returncode == 0, created.stderr

    with DevServerClient(kubeconfig=people.kubeconfigs["alice"], namespace=bob_ns) as alice:
        for attempt in (lambda: alice.create("intruder", flavor="cpu-small"), lambda: alice.get("bobs"),
                        lambda: alice.list()):
            with pytest.raises(PermissionDeniedError) as refused:
                attempt()
            assert refused.value.status == 403
            assert f"namespace '{bob_ns}'" in str(refused.value) and "Ask your cluster admin" in str(refused.value)

    listed = people.devctl("alice", "-n", bob_ns, "list")
    assert listed.returncode == 1 and listed.stderr.startswith("Error: Permission denied"), listed
    assert f"namespace '{bob_ns}'" in listed.stderr and "Ask your cluster admin" in listed.stderr
    for args in (("get", "devservers"), ("exec", "bobs-0", "--", "true"), ("get", "pods"),
                 ("delete", "devserver", "bobs")):
        result = people.kubectl("alice", "-n", bob_ns, *args)
        assert result.returncode != 0 and "Forbidden" in result.stderr and 'User "alice"' in result.stderr, (
            args, result.stderr)
    # Nothing of hers got in, and bob's is untouched.
    assert people.kubectl("admin", "-n", bob_ns, "get", "devservers", "-o", "name").stdout.strip() == \
        "devserver.devservers.io/bobs"


def test_the_owner_policy_holds_for_alice_and_bob_and_carol_may_hand_over(people: People) -> None:
    shared = people.shared_ns
    # alice cannot create a DevServer owned by bob, in her namespace or a shared one (the real CEL says no).
    for namespace in (people.alice_ns, shared):
        forged = people.kubectl("alice", "apply", "-f", "-", input=_devserver("forged", "bob", namespace))
        assert forged.returncode != 0, forged.stdout
        assert "ValidatingAdmissionPolicy 'devservers-owner'" in forged.stderr
        assert "not 'bob': you can only create DevServers for yourself" in forged.stderr, forged.stderr
    with DevServerClient(kubeconfig=people.kubeconfigs["alice"], namespace=shared, owner="bob") as sdk, \
            pytest.raises(PermissionDeniedError, match="admission policy 'devservers-owner'"):
        sdk.create("forged", flavor="cpu-small")

    made = people.kubectl("alice", "apply", "-f", "-", input=_devserver("hers", "alice", shared))
    assert made.returncode == 0, made.stderr
    # alice cannot give it away; bob cannot change its spec; bob may still annotate it (no spec change).
    handover = people.kubectl("alice", "-n", shared, "patch", "devserver", "hers", "--type=merge",
                              "-p", '{"spec": {"owner": "bob"}}')
    assert handover.returncode != 0 and "spec.owner cannot be changed" in handover.stderr, handover.stderr
    edit = people.kubectl("bob", "-n", shared, "patch", "devserver", "hers", "--type=merge",
                          "-p", '{"spec": {"flavor": "cpu-medium"}}')
    assert edit.returncode != 0, edit.stdout
    assert "belongs to spec.owner 'alice', not to 'bob'" in edit.stderr, edit.stderr
    with DevServerClient(kubeconfig=people.kubeconfigs["bob"], namespace=shared) as bob, \
            pytest.raises(PermissionDeniedError, match="only its owner or a member of devservers:admins"):
        bob.extend("hers", by="1h")
    note = people.kubectl("bob", "-n", shared, "annotate", "devserver", "hers", "example.com/seen-by=bob")
    assert note.returncode == 0, note.stderr
    spec = json.loads(people.kubectl("admin", "-n", shared, "get", "devserver", "hers", "-o", "json").stdout)
    assert spec["spec"]["owner"] == "alice" and spec["spec"]["flavor"] == "cpu-small"

    # carol (devservers:admins) creates for bob, changes alice's spec and hands hers over.
    for_bob = people.kubectl("carol", "apply", "-f", "-", input=_devserver("for-bob", "bob", shared))
    assert for_bob.returncode == 0, for_bob.stderr
    carol_edit = people.kubectl("carol", "-n", shared, "patch", "devserver", "hers", "--type=merge",
                                "-p", '{"spec": {"owner": "bob", "flavor": "cpu-medium"}}')
    assert carol_edit.returncode == 0, carol_edit.stderr
    spec = json.loads(people.kubectl("admin", "-n", shared, "get", "devserver", "hers", "-o", "json").stdout)
    assert spec["spec"]["owner"] == "bob" and spec["spec"]["flavor"] == "cpu-medium"
    # Now bob's: bob may change it, alice no longer may.
    bob_edit = people.kubectl("bob", "-n", shared, "patch", "devserver", "hers", "--type=merge",
                              "-p", '{"spec": {"flavor": "cpu-small"}}')
    assert bob_edit.returncode == 0, bob_edit.stderr
    alice_edit = people.kubectl("alice", "-n", shared, "patch", "devserver", "hers", "--type=merge",
                                "-p", '{"spec": {"flavor": "cpu-medium"}}')
    assert alice_edit.returncode != 0 and "not to 'alice'" in alice_edit.stderr, alice_edit.stderr


def test_e_mail_users_own_servers_under_their_exact_names_with_the_real_cel(people: People, real_control_plane: Any,
                                                                            tmp_path: Path) -> None:
    shared = people.shared_ns
    for user in ("alice@example.com", "alice@evil.example", "user@company.com"):
        people.kubeconfigs[user] = real_control_plane.user_kubeconfig(
            user, [], path=tmp_path / user.replace("@", "-at-"), namespace=shared)
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "e-mail-researchers-edit", "namespace": shared},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                            for user in ("alice@example.com", "alice@evil.example", "user@company.com")]}
    assert people.kubectl("admin", "apply", "-f", "-", input=json.dumps(binding)).returncode == 0
    wait_for(lambda: all(people.kubectl(user, "auth", "can-i", "create", "devservers.devservers.io", "-n",
                                        shared).stdout.strip() == "yes"
                         for user in ("alice@example.com", "alice@evil.example", "user@company.com")),
             timeout=60, message="the e-mail users' edit binding in force")

    # The seed's DevServer, applied as written by the user it names: the policy compares the full e-mail.
    seed = (Path(__file__).resolve().parents[1] / "operator" / "seed_devserver.yaml").read_text()
    seed = (seed.replace("<server-name>", "seed-full").replace("<user-namespace>", shared)
            .replace("<username>", "user").replace("<user>", "user"))
    applied = people.kubectl("user@company.com", "apply", "-f", "-", input=seed)
    assert applied.returncode == 0, applied.stderr
    assert "spec.distributed is ignored" in applied.stderr, applied.stderr  # the real Warn binding's header

    # The SDK's default owner is SelfSubjectReview's name, e-mail and all.
    with DevServerClient(kubeconfig=people.kubeconfigs["alice@example.com"], namespace=shared) as mailed:
        assert mailed.owner == "alice@example.com"
        assert mailed.create("mailed", flavor="cpu-small").spec.owner == "alice@example.com"
    plain = people.kubectl("alice", "apply", "-f", "-", input=_devserver("plain", "alice", shared))
    assert plain.returncode == 0, plain.stderr

    # alice@evil.example is neither alice@example.com nor alice: no create for them, no spec change of theirs.
    for victim, server in (("alice@example.com", "mailed"), ("alice", "plain")):
        forged = people.kubectl("alice@evil.example", "apply", "-f", "-",
                                input=_devserver(f"forged-{server}", victim, shared))
        assert forged.returncode != 0, forged.stdout
        assert "spec.owner must be your user name 'alice@evil.example' exactly" in forged.stderr, forged.stderr
        edit = people.kubectl("alice@evil.example", "-n", shared, "patch", "devserver", server, "--type=merge",
                              "-p", '{"spec": {"image": "evil/image:1"}}')
        assert edit.returncode != 0, edit.stdout
        assert f"belongs to spec.owner '{victim}', not to 'alice@evil.example'" in edit.stderr, edit.stderr
