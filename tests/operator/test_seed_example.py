"""The seed document's examples, applied with kubectl exactly as the seed writes them, and each way to get
a DevServer wrong through kubectl: what the API server and the operator say about each.

``seed_devserver.yaml`` and ``seed_flavor.yaml`` are the seed's text, byte for byte; only its placeholders
(``<server-name>``, ``<user-namespace>``, ``<user>``, ``<username>``) are filled in. The seed's DevServer is
the first YAML a platform engineer tries, and it combines four surprises: an e-mail owner
(``user@company.com``), ``mode: standalone  # or distributed`` above a ``distributed:`` block, ``enableSSH``,
and an ``expirationTime`` (2024-01-15) that had passed long before the server exists, beside a
``timeToLive``. It must be accepted (with a warning for each field that has no effect), run nothing, delete
nothing, and say why in ``kubectl get`` and ``devctl describe``; moving the date to the future makes it
schedule like any other GPU server.

These run wherever the operator tests run: on the emulator, and with ``DEVSERVERS_TEST_BACKEND=kubernetes``
on the real control plane (real kube-apiserver validation, CEL and admission warnings).
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from devservers_sdk.quantities import parse_quantity
from tests.cli.devctl_support import devctl_env, run_process
from tests.operator.conftest import OperatedNamespace, rfc3339

HERE = Path(__file__).resolve().parent
SEED_DEVSERVER = (HERE / "seed_devserver.yaml").read_text()
SEED_FLAVOR = (HERE / "seed_flavor.yaml").read_text()
UNREADABLE = ("<nil>", "must not validate the schema")
# kube-apiserver's own line when a type, enum, required or length error keeps it from running a CRD's CEL rules
# (apiextensions-apiserver's hasBlockingErr). Any CRD with a CEL rule gets it; it is the one <nil> allowed.
CEL_SKIPPED = ("* <nil>: Invalid value: null: some validation rules were not checked because the object was "
               "invalid; correct the existing errors to complete validation")


def seed_devserver(namespace: str, name: str = "seed-full") -> str:
    """The seed's DevServer with its placeholders filled in, and nothing else changed."""
    return (SEED_DEVSERVER.replace("<server-name>", name).replace("<user-namespace>", namespace)
            .replace("<username>", "user").replace("<user>", "user"))


def condition(server: dict[str, Any], kind: str) -> dict[str, Any]:
    found = next((c for c in server["status"].get("conditions") or [] if c["type"] == kind), None)
    assert found is not None, f"no {kind} condition in {json.dumps(server['status'], indent=1)}"
    return found


def _node_can_hold(operated: OperatedNamespace, flavor: dict[str, Any]) -> bool:
    """Whether some node has the flavor's labels and allocatable room for its requests and GPUs."""
    resources = flavor["spec"].get("resources") or {}
    wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    selector = flavor["spec"].get("nodeSelector") or {}
    for node in operated.core.list_node().items:
        labels = node.metadata.labels or {}
        allocatable = node.status.allocatable or {}
        if all(labels.get(key) == value for key, value in selector.items()) and all(
                parse_quantity(str(allocatable.get(resource, "0"))) >= parse_quantity(str(amount))
                for resource, amount in wanted.items()):
            return True
    return False


def devctl(operated: OperatedNamespace, *args: str) -> Any:
    return run_process([*args, "-n", operated.namespace], env=devctl_env(operated.kubeconfig))


# -- the seed's examples ---------------------------------------------------------------------------------


def test_seed_example_devserver_applied_exactly_as_written(operated: OperatedNamespace) -> None:
    # The seed names a shared claim it assumes the user has: give them one, so only the GPU is missing.
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "user-shared-efs"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    operated.kubectl("apply", "-f", "-", input_text=json.dumps(claim))

    applied = operated.kubectl("apply", "-f", "-", input_text=seed_devserver(operated.namespace), check=False)
    assert applied.returncode == 0, applied.stderr
    assert "devserver.devservers.io/seed-full created" in applied.stdout
    # Accepted, with one API warning (kubectl prints them) for each field that has no effect.
    assert "Warning:" in applied.stderr and "spec.distributed is ignored because spec.mode is standalone" in \
        applied.stderr and "spec.enableSSH is ignored" in applied.stderr, applied.stderr

    # Its expirationTime had passed before it was created: nothing runs, nothing is deleted, and it says why.
    server = operated.wait_phase("seed-full", "Expired", timeout=60)
    assert server["spec"]["owner"] == "user@company.com"
    ready = condition(server, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "DeadlineBeforeCreation")
    assert "2024-01-15T18:00:00Z" in ready["message"] and "timeToLive" in ready["message"]
    ignored = condition(server, "FieldsIgnored")
    assert (ignored["status"], ignored["reason"]) == ("True", "SeveralFieldsIgnored")
    assert operated.statefulset("seed-full") is None and operated.pods("seed-full") == []
    assert operated.get("seed-full") is not None, "a deadline before creation deletes nothing"

    table = operated.kubectl("get", "devservers", "seed-full").stdout
    assert "Expired" in table and "2024-01-15T18:00:00Z" in table and "user@company.com" in table, table
    described = devctl(operated, "describe", "seed-full")
    assert described.exit_code == 0, described
    for words in ("Expired", "DeadlineBeforeCreation", "2024-01-15T18:00:00Z", "spec.distributed is ignored",
                  "spec.enableSSH is ignored"):
        assert words in described.stdout, (words, described.stdout)

    # Moving the date to the future makes it a GPU server like any other: it runs where a node has the
    # flavor's GPUs; on a cluster without them it is Pending, and the status says the scheduler's reason.
    later = rfc3339(datetime.now(UTC) + timedelta(hours=2))
    operated.patch("seed-full", {"spec": {"lifecycle": {"expirationTime": later}}})
    flavor = json.loads(operated.kubectl("get", "devserverflavor", "gpu-large", "-o", "json").stdout)
    if _node_can_hold(operated, flavor):
        operated.wait_phase("seed-full", "Running", timeout=120)
        return
    server = operated.wait_phase("seed-full", "Pending", timeout=90,
                             check=lambda s: condition(s, "Scheduled")["reason"] == "Unschedulable")
    scheduled = condition(server, "Scheduled")
    assert scheduled["status"] == "False" and scheduled["message"], scheduled
    assert condition(server, "Ready")["reason"] == "PodsPending"
    assert server["status"]["expiresAt"] == later  # the earlier deadline now: before creation + 4h
    table = operated.kubectl("get", "devservers", "seed-full").stdout
    assert "Pending" in table, table
    described = devctl(operated, "describe", "seed-full")
    assert "Pending" in described.stdout and "Unschedulable" in described.stdout, described


def test_seed_example_flavor_is_accepted(operated: OperatedNamespace) -> None:
    # A server-side dry run: the session's sample gpu-large flavor stays as the other tests expect it.
    applied = operated.kubectl("apply", "--dry-run=server", "-f", "-", input_text=SEED_FLAVOR, check=False)
    assert applied.returncode == 0, applied.stderr
    assert "devserverflavor.devservers.io/gpu-large" in applied.stdout


# -- a deadline before creation ----------------------------------------------------------------------------


def test_deadline_before_creation_runs_nothing_until_the_date_moves_to_the_future(operated: OperatedNamespace) -> None:
    operated.create("late", lifecycle={"expirationTime": "2024-01-15T18:00:00Z"})
    server = operated.wait_phase("late", "Expired")
    assert condition(server, "ExpiringSoon")["reason"] == "DeadlineBeforeCreation"
    assert server["status"]["expiresAt"] == "2024-01-15T18:00:00Z"
    assert operated.statefulset("late") is None and operated.service("late") is None
    assert "DeadlineBeforeCreation" in operated.event_reasons("late")

    operated.patch("late", {"spec": {"lifecycle": {"expirationTime": rfc3339(datetime.now(UTC) + timedelta(hours=1))}}})
    operated.wait_phase("late", "Running", timeout=90)
    assert "Expired" not in operated.event_reasons("late"), "it was held, never expired"


# -- every refusal names the field and the fix -------------------------------------------------------------

# Each case: the field the refusal must name, the change to the seed's DevServer, and words of the fix it must
# say. CEL rules carry the SDK's own advice; the rest is the API server's wording of a type, enum or bound.
INVALID = {
    "owner-with-a-space-at-the-end": ("spec.owner", {"owner": "user@company.com "}, "kubectl auth whoami"),
    "owner-too-long": ("spec.owner", {"owner": "u" * 250 + "@company.com"}, "256"),
    "owner-missing": ("spec.owner", {"owner": None}, "Required value"),
    "mode-misspelt": ("spec.mode", {"mode": "distribute"}, '"standalone", "distributed"'),
    "world-size-zero": ("spec.distributed.worldSize", {"mode": "distributed", "distributed": {"worldSize": 0}},
                        "greater than or equal to 1"),
    "backend-unknown": ("spec.distributed.backend", {"mode": "distributed", "distributed": {"backend": "mpi"}},
                        '"nccl", "gloo"'),
    "nccl-setting-that-loads-a-library": ("spec.distributed.ncclSettings",
                                          {"mode": "distributed",
                                           "distributed": {"ncclSettings": {"NCCL_NET_PLUGIN": "x.so"}}},
                                          "NCCL_DEBUG"),
    "time-to-live-in-words": ("spec.lifecycle.timeToLive", {"lifecycle": {"timeToLive": "4 hours"}},
                              "e.g. 30m, 4h, 1h30m, 2d"),
    "expiration-time-not-a-time": ("spec.lifecycle.expirationTime", {"lifecycle": {"expirationTime": "next week"}},
                                   "date-time"),
    "idle-timeout-under-a-minute": ("spec.lifecycle.idleTimeout", {"lifecycle": {"idleTimeout": 30}},
                                    "greater than or equal to 60"),
    "home-size-not-a-quantity": ("spec.persistentHomeSize", {"persistentHomeSize": "lots"}, "lots"),
    "flavor-not-a-name": ("spec.flavor", {"flavor": "GPU_Large"}, 'lowercase letters, digits, "-" and "."'),
    "image-with-a-space": ("spec.image", {"image": "company/pytorch dev:latest"}, "without spaces"),
    "enable-ssh-not-a-boolean": ("spec.enableSSH", {"enableSSH": "yes"}, "boolean"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_devserver_refused_naming_the_field(operated: OperatedNamespace, case: str) -> None:
    field, changes, fix = INVALID[case]
    manifest = yaml.safe_load(seed_devserver(operated.namespace, name="invalid"))
    spec = manifest["spec"]
    spec["lifecycle"].pop("expirationTime")
    for key, value in changes.items():
        if value is None:
            spec.pop(key)
        elif isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    result: subprocess.CompletedProcess[str] = operated.kubectl("apply", "-f", "-", input_text=json.dumps(manifest),
                                                            check=False)
    assert result.returncode == 1, result.stdout
    assert field in result.stderr and fix in result.stderr, result.stderr
    for unreadable in UNREADABLE:
        assert unreadable not in result.stderr.replace(CEL_SKIPPED, ""), result.stderr
    assert operated.get("invalid") is None
