"""Experiment tracking settings: a namespace's defaults, a DevServer's own, and the pod variables they become.

Pure functions, shared by the operator (which injects the variables) and the front ends (which show where
runs go). No I/O and no tracking library: ``tracking.py`` is what a training script calls.

Precedence, per tool: a tool set in the DevServer's ``spec.tracking`` wins over the namespace's default for
that tool *as a whole*; fields are never mixed. Mixing would let a DevServer that names its own tracking
server receive the team's credentials Secret, which was meant for the team's server. A tool set in
neither is not configured.

The namespace's defaults live in the ConfigMap ``devservers-defaults``, key ``tracking``: YAML of the same
shape as ``spec.tracking``::

    apiVersion: v1
    kind: ConfigMap
    metadata: {name: devservers-defaults, namespace: team-a}
    data:
      tracking: |
        mlflow: {trackingUri: "https://mlflow.example.com", credentialsSecret: mlflow-team}
        wandb: {project: team-a, entity: acme, apiKeySecret: wandb-team}

Credentials only ever travel as ``secretKeyRef``: the operator never reads a Secret's values (it checks
which keys exist, to report a missing Secret as a condition instead of a pod that cannot start).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from .models import DevServer, TrackingSpec

__all__ = [
    "DEFAULTS_CONFIGMAP",
    "DEFAULTS_TRACKING_KEY",
    "GIT_COMMIT_ENV",
    "MLFLOW_SECRET_KEYS",
    "RUN_GROUP_ENV",
    "WANDB_SECRET_KEY",
    "RequiredSecret",
    "effective_tracking",
    "parse_defaults",
    "required_secrets",
    "secret_problem",
    "tracking_destinations",
    "tracking_env",
]

DEFAULTS_CONFIGMAP = "devservers-defaults"
"""The ConfigMap of a namespace whose ``tracking`` key holds the namespace's tracking defaults."""
DEFAULTS_TRACKING_KEY = "tracking"

MLFLOW_SECRET_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
"""Keys of ``mlflow.credentialsSecret``, each injected as the variable of the same name when present: a
user and password (MLflow's basic auth) or a token (a bearer token)."""
WANDB_SECRET_KEY = "WANDB_API_KEY"
"""The key of ``wandb.apiKeySecret`` injected as ``WANDB_API_KEY``."""

RUN_GROUP_ENV = "DEVSERVERS_RUN_GROUP"
"""Set by ``launch()`` on every process of one launch (with ``WANDB_RUN_GROUP``): the run-group id."""
GIT_COMMIT_ENV = "DEVSERVERS_GIT_COMMIT"
"""Set by ``launch()`` when it uploads a local working directory that is a git checkout: its commit."""


def parse_defaults(data: Mapping[str, str] | None, *, namespace: str) -> tuple[TrackingSpec | None, str | None]:
    """A namespace's tracking defaults from its ConfigMap's ``data``.

    Returns:
        ``(defaults, None)``; ``(None, None)`` when there are none; ``(None, problem)`` when the ``tracking``
        key is not valid, the problem being a sentence that names the ConfigMap, the field and the fix.
    """
    text = (data or {}).get(DEFAULTS_TRACKING_KEY)
    if not text or not text.strip():
        return None, None
    where = f"ConfigMap '{DEFAULTS_CONFIGMAP}' in namespace '{namespace}', key '{DEFAULTS_TRACKING_KEY}'"
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, f"{where} is not YAML ({str(exc).splitlines()[0]}); fix it with kubectl edit configmap " \
                     f"{DEFAULTS_CONFIGMAP}"
    try:
        return TrackingSpec.model_validate(raw or {}), None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ()))
        return None, (f"{where} is invalid: {field + ': ' if field else ''}{first.get('msg')}; fix it with "
                      f"kubectl edit configmap {DEFAULTS_CONFIGMAP}")


def effective_tracking(devserver: DevServer, defaults: TrackingSpec | None) -> TrackingSpec:
    """The tracking a DevServer gets: per tool, its own section, else the namespace's (see the docstring)."""
    own = devserver.spec.tracking or TrackingSpec()
    fallback = defaults or TrackingSpec()
    return TrackingSpec(mlflow=own.mlflow or fallback.mlflow, wandb=own.wandb or fallback.wandb)


@dataclass(frozen=True)
class RequiredSecret:
    """A Secret the pods read credentials from, and the keys of which at least one must be there."""

    name: str
    field: str
    any_of: tuple[str, ...]


def required_secrets(tracking: TrackingSpec) -> list[RequiredSecret]:
    """The Secrets ``tracking_env`` refers to."""
    found = []
    if tracking.mlflow is not None and tracking.mlflow.credentials_secret:
        found.append(RequiredSecret(tracking.mlflow.credentials_secret, "tracking.mlflow.credentialsSecret",
                                    MLFLOW_SECRET_KEYS))
    if tracking.wandb is not None:
        found.append(RequiredSecret(tracking.wandb.api_key_secret, "tracking.wandb.apiKeySecret",
                                    (WANDB_SECRET_KEY,)))
    return found


def secret_problem(secret: RequiredSecret, keys: set[str] | None, *, namespace: str, devserver: str) -> str | None:
    """Why the pods could not get their credentials from ``secret`` (``keys``: its keys, None if it does not
    exist), as a sentence with the fix; None when it is usable. Never mentions a value."""
    example = " ".join(f"--from-literal={key}=..." for key in secret.any_of[-1:])
    if keys is None:
        return (f"Secret '{secret.name}' ({secret.field}) does not exist in namespace '{namespace}'; create it "
                f"with: kubectl create secret generic {secret.name} -n {namespace} {example}. DevServer "
                f"'{devserver}' starts once it exists")
    if not keys & set(secret.any_of):
        wanted = " or ".join(secret.any_of)
        return (f"Secret '{secret.name}' ({secret.field}) in namespace '{namespace}' has no key {wanted}; add "
                f"one with: kubectl create secret generic {secret.name} -n {namespace} {example} --dry-run=client "
                f"-o yaml | kubectl apply -f -. DevServer '{devserver}' starts once it has")
    return None


def _from_secret(variable: str, secret: str, *, optional: bool) -> dict[str, Any]:
    reference: dict[str, Any] = {"name": secret, "key": variable}
    if optional:
        reference["optional"] = True
    return {"name": variable, "valueFrom": {"secretKeyRef": reference}}


def tracking_env(devserver: DevServer, tracking: TrackingSpec, *, flavor: str, image: str) -> list[dict[str, Any]]:
    """The pod variables of ``tracking`` (empty when no tool is configured).

    MLflow: ``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME`` (default: the DevServer's name) and each of
    ``MLFLOW_SECRET_KEYS`` the Secret holds (optional references: a Secret may hold a token or a user and
    password). W&B: ``WANDB_PROJECT``, ``WANDB_ENTITY`` and ``WANDB_API_KEY`` (required). With either,
    ``DEVSERVER_NAMESPACE``, ``DEVSERVER_FLAVOR`` and ``DEVSERVER_IMAGE``, which ``tracking.start_run``
    tags runs with (the name, owner and shape are in the distributed contract already).
    """
    env: list[dict[str, Any]] = []
    if tracking.mlflow is not None:
        mlflow = tracking.mlflow
        env.append({"name": "MLFLOW_TRACKING_URI", "value": mlflow.tracking_uri})
        env.append({"name": "MLFLOW_EXPERIMENT_NAME", "value": mlflow.experiment or devserver.name})
        if mlflow.credentials_secret:
            env.extend(_from_secret(key, mlflow.credentials_secret, optional=True) for key in MLFLOW_SECRET_KEYS)
    if tracking.wandb is not None:
        wandb = tracking.wandb
        env.append({"name": "WANDB_PROJECT", "value": wandb.project})
        if wandb.entity:
            env.append({"name": "WANDB_ENTITY", "value": wandb.entity})
        env.append(_from_secret(WANDB_SECRET_KEY, wandb.api_key_secret, optional=False))
    if env:
        env.extend([
            {"name": "DEVSERVER_NAMESPACE",
             "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
            {"name": "DEVSERVER_FLAVOR", "value": flavor},
            {"name": "DEVSERVER_IMAGE", "value": image},
        ])
    return env


def tracking_destinations(tracking: TrackingSpec | None) -> dict[str, dict[str, str]]:
    """Where runs go, for people (``devctl describe``, the dashboard): no credential, only Secret names."""
    shown: dict[str, dict[str, str]] = {}
    if tracking is None:
        return shown
    if tracking.mlflow is not None:
        mlflow = tracking.mlflow
        shown["mlflow"] = {"trackingUri": mlflow.tracking_uri}
        if mlflow.experiment:
            shown["mlflow"]["experiment"] = mlflow.experiment
        if mlflow.credentials_secret:
            shown["mlflow"]["credentialsSecret"] = mlflow.credentials_secret
    if tracking.wandb is not None:
        wandb = tracking.wandb
        shown["wandb"] = {"project": wandb.project}
        if wandb.entity:
            shown["wandb"]["entity"] = wandb.entity
        shown["wandb"]["apiKeySecret"] = wandb.api_key_secret
    return shown
