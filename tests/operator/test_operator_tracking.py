"""Experiment tracking through the operator: a namespace's defaults (ConfigMap devservers-defaults) reach a
DevServer that sets nothing, its own setting wins where both are set, a change of the defaults reaches the pods,
credentials travel only as secretKeyRef, and a missing Secret is a condition, not a pod that cannot start."""

from __future__ import annotations

from typing import Any

import pytest

from devservers_sdk.localcluster.pytest_plugin import wait_for
from tests.operator.conftest import OperatedNamespace

pytestmark = pytest.mark.slow

WANDB_KEY = "wandb-key-" + "7" * 30
TOKEN = "mlflow-token-" + "3" * 30


def defaults(mlflow_uri: str, project: str) -> str:
    return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: devservers-defaults}}
data:
  tracking: |
    mlflow: {{trackingUri: "{mlflow_uri}", credentialsSecret: mlflow-team}}
    wandb: {{project: {project}, apiKeySecret: wandb-team}}
"""


def secrets(operated: OperatedNamespace) -> None:
    operated.kubectl("create", "secret", "generic", "wandb-team", f"--from-literal=WANDB_API_KEY={WANDB_KEY}")
    operated.kubectl("create", "secret", "generic", "mlflow-team", f"--from-literal=MLFLOW_TRACKING_TOKEN={TOKEN}")


def pod_env(operated: OperatedNamespace, name: str) -> dict[str, dict[str, Any]]:
    statefulset = operated.statefulset(name)
    assert statefulset is not None, f"no StatefulSet {name}"
    container = statefulset.spec.template.spec.containers[0]
    return {item.name: operated.core.api_client.sanitize_for_serialization(item) for item in container.env}


def value(env: dict[str, dict[str, Any]], name: str) -> str | None:
    return (env.get(name) or {}).get("value")


def test_namespace_defaults_apply_and_the_devservers_own_setting_wins(operated: OperatedNamespace) -> None:
    secrets(operated)
    operated.kubectl("apply", "-f", "-", input_text=defaults("http://mlflow.team.example:5000", "team-a"))
    operated.create("plain")
    operated.create("own", tracking={"mlflow": {"trackingUri": "http://127.0.0.1:5999", "experiment": "mine"}})
    operated.wait_phase("plain", "Running", timeout=90)
    operated.wait_phase("own", "Running", timeout=90)

    plain = pod_env(operated, "plain")
    assert value(plain, "MLFLOW_TRACKING_URI") == "http://mlflow.team.example:5000"
    assert value(plain, "MLFLOW_EXPERIMENT_NAME") == "plain"
    assert plain["MLFLOW_TRACKING_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-team"
    assert value(plain, "WANDB_PROJECT") == "team-a"
    assert plain["WANDB_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "wandb-team", "key": "WANDB_API_KEY"}}

    # Its own MLflow section wins whole (the team's credentials do not follow it to its own server); W&B,
    # which it does not set, still comes from the namespace.
    own = pod_env(operated, "own")
    assert value(own, "MLFLOW_TRACKING_URI") == "http://127.0.0.1:5999"
    assert value(own, "MLFLOW_EXPERIMENT_NAME") == "mine"
    assert "MLFLOW_TRACKING_TOKEN" not in own
    assert value(own, "WANDB_PROJECT") == "team-a"

    # The key reaches the process through the Secret, and only there: no copy in the DevServer.
    assert operated.exec("plain-0", "printf %s \"$WANDB_API_KEY\"") == WANDB_KEY
    assert WANDB_KEY not in str(operated.get("plain")) and TOKEN not in str(operated.get("plain"))

    # A change of the namespace's defaults reaches the DevServers that use them (the ConfigMap is watched).
    operated.kubectl("apply", "-f", "-", input_text=defaults("http://mlflow.team.example:5000", "team-b"))
    wait_for(lambda: value(pod_env(operated, "plain"), "WANDB_PROJECT") == "team-b", timeout=60,
             message="the new default project in plain's pod template")
    assert value(pod_env(operated, "own"), "WANDB_PROJECT") == "team-b"


def test_a_missing_secret_is_a_condition_and_the_server_starts_once_it_exists(operated: OperatedNamespace) -> None:
    operated.create("keyless", tracking={"wandb": {"project": "p", "apiKeySecret": "wandb-later"}})
    server = operated.wait_phase("keyless", "Failed", timeout=60)
    degraded = next(c for c in server["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "TrackingSecretNotFound", degraded
    assert (f"Secret 'wandb-later' (tracking.wandb.apiKeySecret) does not exist in namespace '{operated.namespace}'"
            in degraded["message"]), degraded
    assert "kubectl create secret generic wandb-later" in degraded["message"]
    # No pod that could never start: nothing is created while the Secret is missing.
    assert operated.statefulset("keyless") is None and operated.pods("keyless") == []

    # A Secret without the key is named as such.
    operated.kubectl("create", "secret", "generic", "wandb-later", "--from-literal=api-key=x")
    operated.wait_phase("keyless", "Failed", timeout=60,
                    check=lambda s: "has no key WANDB_API_KEY" in str(s["status"].get("message")))
    operated.kubectl("delete", "secret", "wandb-later")
    operated.kubectl("create", "secret", "generic", "wandb-later", f"--from-literal=WANDB_API_KEY={WANDB_KEY}")
    operated.wait_phase("keyless", "Running", timeout=120)
    assert operated.exec("keyless-0", "printf %s \"$WANDB_API_KEY\"") == WANDB_KEY


def test_invalid_namespace_defaults_are_a_condition_naming_the_configmap(operated: OperatedNamespace) -> None:
    operated.kubectl("create", "configmap", "devservers-defaults", "--from-literal=tracking=wandb: {project: p}")
    operated.create("odd")
    server = operated.wait_phase("odd", "Failed", timeout=60)
    degraded = next(c for c in server["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "InvalidNamespaceDefaults", degraded
    assert "ConfigMap 'devservers-defaults'" in degraded["message"] and "wandb.apiKeySecret" in degraded["message"]
    operated.kubectl("delete", "configmap", "devservers-defaults")
    operated.wait_phase("odd", "Running", timeout=90)
