"""Credentials never show up in logs, statuses, events or devctl's output, not even with ``--debug``.

What counts as a secret here: every bearer token (the operator's ServiceAccount token, each user's, the
cluster admin's, and a wrong one a user typed), every client private key, and so the contents of every
kubeconfig. What does not: ``ncclSettings`` and the rest of a spec, which are configuration in plain view
of everyone who may read the DevServer (their docs say not to put secrets there).

The test runs the operator at DEBUG with credentials of both kinds, drives it through success and failure
(a server that runs, a missing flavor, a spec only the operator can refuse, a refused owner, an API server
answering 500s), drives devctl through failures with ``--debug``, then searches everything a person or a
log shipper would see for each secret, raw and base64-encoded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from devservers_sdk import DevServerClient, DevServerError
from devservers_sdk.localcluster.apiserver.faults import FaultSettings
from devservers_sdk.localcluster.pytest_plugin import wait_for
from tests.cli.devctl_support import Outcome, devctl_env, run_process
from tests.security.secured_platform import SecuredPlatform

pytestmark = pytest.mark.emulator_only

OPERATOR_ENV = {"DEVSERVERS_LOG_LEVEL": "DEBUG"}
PLATFORM_OPTIONS = {"client_keys": True}
GROUP, VERSION, PLURAL = "devservers.io", "v1", "devservers"
WRONG_TOKEN = "wrong-token-typed-by-a-user-0123456789abcdef"


def fingerprints(secret: str) -> list[str]:
    """What to look for: the secret, its base64 form, and for a PEM key each full line of its body."""
    found = [secret, base64.b64encode(secret.encode()).decode()]
    body = [line for line in secret.splitlines() if line and not line.startswith("-----")]
    found.extend(line for line in body if len(line) >= 40)
    return found


def leaks(secrets: dict[str, str], places: dict[str, str]) -> list[str]:
    return [f"{name} found in {where}" for name, secret in secrets.items() for where, text in places.items()
            if any(mark in text for mark in fingerprints(secret))]


def test_the_leak_check_finds_what_it_looks_for() -> None:
    # Guard against a search that passes vacuously: plant each form and expect each to be found.
    key = "-----BEGIN PRIVATE KEY-----\n" + "A" * 64 + "\n-----END PRIVATE KEY-----\n"
    secrets = {"token": "tok-" + "x" * 40, "key": key}
    planted = {"log": "Authorization: Bearer tok-" + "x" * 40,
               "status": json.dumps({"message": base64.b64encode(secrets["token"].encode()).decode()}),
               "events": "A" * 64}
    assert sorted(leaks(secrets, planted)) == ["key found in events", "token found in log", "token found in status"]
    assert leaks(secrets, {"clean": "nothing to see"}) == []


@pytest.fixture(scope="module")
def team(secured: SecuredPlatform) -> str:
    with secured.api() as admin:
        client.CoreV1Api(admin).create_namespace({"metadata": {"name": "team"}})
    return "team"


@pytest.fixture(scope="module")
def devctl_outputs(secured: SecuredPlatform, team: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        dict[str, Outcome]]:
    """Drive the operator and devctl through success and failure; return what devctl printed."""
    alice = DevServerClient(kubeconfig=secured.kubeconfigs["alice"], namespace=team)
    raw = client.CustomObjectsApi(secured.api("alice"))

    def create_raw(name: str, **spec: Any) -> None:
        raw.create_namespaced_custom_object(GROUP, VERSION, team, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "DevServer", "metadata": {"name": name},
            "spec": {"owner": "alice", "flavor": "cpu-small", **spec}})

    alice.create("fine", flavor="cpu-small")
    create_raw("no-flavor", flavor="no-such-flavor")
    create_raw("negative-home", persistentHomeSize="-1Gi")  # the CRD's pattern allows it; the model does not
    alice.wait("fine", timeout=90)
    wait_for(lambda: _phase(raw, team, "negative-home") == "Failed", timeout=60, message="negative-home Failed")
    wait_for(lambda: "no-such-flavor" in str(_status(raw, team, "no-flavor").get("message")), timeout=60,
             message="no-flavor to report its missing flavor")
    # A flaky API server while the operator works: its failed requests get logged, with their errors.
    assert secured.cluster is not None
    secured.cluster.set_faults(FaultSettings(error=0.5, seed=7))
    # A 500 is the point here, not a failure of the test.
    with contextlib.suppress(DevServerError):
        alice.stop("fine")

    def operator_failed() -> bool:
        log = secured.log()
        return "Reconciling" in log or "500" in log or "InternalError" in log

    # Give the operator work until one of its requests has failed and been logged: a fixed sleep left it
    # idle through the whole window on a loaded machine, and then there was no failure to search.
    deadline = time.monotonic() + 90
    attempt = 0
    while not operator_failed() and time.monotonic() < deadline:
        with contextlib.suppress(client.ApiException):
            create_raw(f"flaky-{attempt}", distributed={"ncclSettings": {"NCCL_DEBUG": "INFO"}}, mode="distributed")
        attempt += 1
        time.sleep(1)
    secured.cluster.set_faults(FaultSettings())

    folder = tmp_path_factory.mktemp("devctl")
    wrong = yaml.safe_load(Path(secured.kubeconfigs["alice"]).read_text())
    wrong["users"][0]["user"]["token"] = WRONG_TOKEN
    (folder / "wrong").write_text(yaml.safe_dump(wrong))
    alice_env = devctl_env(secured.kubeconfigs["alice"])
    outcomes = {
        "forged owner": run_process(["--debug", "create", "forged", "--flavor", "cpu-small", "-n", team],
                                    env={**alice_env, "DEVSERVERS_OWNER": "bob"}),
        "not found": run_process(["--debug", "describe", "nothing-here", "-n", team], env=alice_env),
        "describe": run_process(["--debug", "describe", "negative-home", "-n", team], env=alice_env),
        "list": run_process(["--debug", "list", "-n", team, "-o", "yaml"], env=alice_env),
        "wrong token": run_process(["--debug", "list", "-n", team], env=devctl_env(str(folder / "wrong"))),
        "bad flavor": run_process(["--debug", "create", "x", "--flavor", "no-such-flavor", "-n", team],
                                  env=alice_env),
    }
    yield outcomes
    alice.close()
    raw.api_client.close()


def _status(api: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name).get("status") or {}


def _phase(api: client.CustomObjectsApi, namespace: str, name: str) -> str | None:
    return _status(api, namespace, name).get("phase")


def test_no_secret_in_logs_statuses_events_or_devctl_output(secured: SecuredPlatform,
                                                            devctl_outputs: dict[str, Outcome]) -> None:
    # The failures did happen (otherwise the search below would prove little).
    assert devctl_outputs["wrong token"].exit_code == 1 and "401" in devctl_outputs["wrong token"].output
    assert devctl_outputs["forged owner"].exit_code == 1 and "Traceback" in devctl_outputs["forged owner"].stderr
    assert devctl_outputs["not found"].exit_code == 1
    assert "Reconciling" in secured.log() or "500" in secured.log() or "InternalError" in secured.log()

    assert secured.cluster is not None
    secrets = {f"{who}'s token": token for who, token in secured.tokens.items()}
    secrets["the cluster admin's token"] = secured.cluster.token
    secrets["the mistyped token"] = WRONG_TOKEN
    secrets.update({f"{who}'s private key": pem for who, pem in secured.key_material.items()})
    assert set(secured.key_material) == {"operator", "alice", "bob", "carol", "alice@example.com", "alice@evil.example"}

    with secured.api() as admin:
        custom, core = client.CustomObjectsApi(admin), client.CoreV1Api(admin)
        devservers = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        events = core.list_event_for_all_namespaces().to_dict()
        pods = core.list_pod_for_all_namespaces().to_dict()
        statefulsets = client.AppsV1Api(admin).list_stateful_set_for_all_namespaces().to_dict()
    assert any(item.get("status", {}).get("phase") == "Failed" for item in devservers["items"])
    assert events["items"], "the operator posted no Events: nothing was searched"
    places = {"the operator's log": secured.log(),
              "DevServer objects and statuses": json.dumps(devservers),
              "Events": json.dumps(events, default=str),
              "pods": json.dumps(pods, default=str),
              "StatefulSets": json.dumps(statefulsets, default=str)}
    places.update({f"devctl output ({what})": outcome.output for what, outcome in devctl_outputs.items()})
    found = leaks(secrets, places)
    assert not found, "\n".join(found)
