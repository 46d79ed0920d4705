"""Experiment tracking's pure parts: the spec's rules, namespace defaults and precedence, the pod variables
(credentials only by secretKeyRef), the Secret checks, the run's tags, and the optional libraries kept out of
``import devservers_sdk``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from devservers_sdk import tracking
from devservers_sdk.manifests import OperatorConfig, build_statefulset
from devservers_sdk.models import DevServer, DevServerFlavorSpec, MlflowTracking, TrackingSpec, WandbTracking
from devservers_sdk.tracking_settings import (
    MLFLOW_SECRET_KEYS,
    effective_tracking,
    parse_defaults,
    required_secrets,
    secret_problem,
    tracking_destinations,
    tracking_env,
)

ROOT = Path(__file__).resolve().parents[2]
TEAM_DEFAULTS = """
mlflow: {trackingUri: "https://mlflow.team.example", credentialsSecret: mlflow-team}
wandb: {project: team-a, entity: acme, apiKeySecret: wandb-team}
"""


def devserver(**spec: Any) -> DevServer:
    return DevServer.from_manifest({
        "apiVersion": "devservers.io/v1", "kind": "DevServer",
        "metadata": {"name": "mydev", "namespace": "alice", "uid": "6f1c1e8e-0000-4000-8000-000000000001"},
        "spec": {"owner": "alice", "flavor": "cpu-small", **spec},
    })


def env_by_name(env: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in env}


# -- the spec ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("uri", ["https://alice:hunter2@mlflow.example.com", "ftp://mlflow", "http://a b", ""])
def test_a_tracking_uri_with_credentials_or_an_odd_scheme_is_refused_naming_the_field(uri: str) -> None:
    with pytest.raises(ValidationError) as caught:
        devserver(tracking={"mlflow": {"trackingUri": uri}})
    error = caught.value.errors()[0]
    assert error["loc"][-1] == "trackingUri"
    assert "credentialsSecret" in error["msg"] or "at most" in error["msg"]


def test_wandb_needs_its_api_key_secret_and_a_valid_project() -> None:
    with pytest.raises(ValidationError) as caught:
        devserver(tracking={"wandb": {"project": "p"}})
    assert caught.value.errors()[0]["loc"][-1] == "apiKeySecret"
    with pytest.raises(ValidationError, match="W&B project"):
        WandbTracking(project="team/a", api_key_secret="wb")


def test_the_spec_reads_back_in_the_crd_field_names() -> None:
    server = devserver(tracking={"mlflow": {"trackingUri": "http://127.0.0.1:5000", "experiment": "exp",
                                            "credentialsSecret": "mlflow-creds"}})
    assert server.to_manifest()["spec"]["tracking"] == {
        "mlflow": {"trackingUri": "http://127.0.0.1:5000", "experiment": "exp", "credentialsSecret": "mlflow-creds"}}


# -- defaults and precedence ---------------------------------------------------------------------------------

def test_namespace_defaults_apply_to_a_devserver_that_sets_nothing() -> None:
    defaults, problem = parse_defaults({"tracking": TEAM_DEFAULTS}, namespace="alice")
    assert problem is None
    effective = effective_tracking(devserver(), defaults)
    assert effective == defaults


def test_the_devservers_own_tool_wins_whole_and_the_other_tool_still_comes_from_the_namespace() -> None:
    defaults, _ = parse_defaults({"tracking": TEAM_DEFAULTS}, namespace="alice")
    own = devserver(tracking={"mlflow": {"trackingUri": "http://127.0.0.1:5000"}})
    effective = effective_tracking(own, defaults)
    # Not merged field by field: the team's credentials Secret must not follow a user to their own server.
    assert effective.mlflow == MlflowTracking(tracking_uri="http://127.0.0.1:5000")
    assert effective.wandb is not None and effective.wandb.project == "team-a"


@pytest.mark.parametrize(("text", "words"), [
    ("mlflow: [", "is not YAML"),
    ("mlflow: {trackingUri: 'https://u:p@x'}", "mlflow.trackingUri"),
    ("wandb: {project: p}", "wandb.apiKeySecret"),
])
def test_invalid_namespace_defaults_are_one_sentence_naming_the_configmap(text: str, words: str) -> None:
    defaults, problem = parse_defaults({"tracking": text}, namespace="alice")
    assert defaults is None and problem is not None
    assert "ConfigMap 'devservers-defaults' in namespace 'alice'" in problem and words in problem
    assert "kubectl edit configmap devservers-defaults" in problem


def test_no_configmap_or_no_key_means_no_defaults() -> None:
    assert parse_defaults(None, namespace="alice") == (None, None)
    assert parse_defaults({"other": "x"}, namespace="alice") == (None, None)


# -- the pod's variables -------------------------------------------------------------------------------------

def test_credentials_reach_the_pod_only_by_secret_key_ref() -> None:
    defaults, _ = parse_defaults({"tracking": TEAM_DEFAULTS}, namespace="alice")
    server = devserver()
    statefulset = build_statefulset(server, DevServerFlavorSpec(), OperatorConfig(),
                                    tracking=effective_tracking(server, defaults))
    env = env_by_name(statefulset["spec"]["template"]["spec"]["containers"][0]["env"])
    assert env["MLFLOW_TRACKING_URI"]["value"] == "https://mlflow.team.example"
    assert env["MLFLOW_EXPERIMENT_NAME"]["value"] == "mydev"  # default: the DevServer's name
    assert env["WANDB_PROJECT"]["value"] == "team-a" and env["WANDB_ENTITY"]["value"] == "acme"
    for key in MLFLOW_SECRET_KEYS:
        assert env[key] == {"name": key, "valueFrom": {"secretKeyRef": {
            "name": "mlflow-team", "key": key, "optional": True}}}
    assert env["WANDB_API_KEY"] == {"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {
        "name": "wandb-team", "key": "WANDB_API_KEY"}}}
    assert env["DEVSERVER_FLAVOR"]["value"] == "cpu-small"
    assert env["DEVSERVER_IMAGE"]["value"] == statefulset["spec"]["template"]["spec"]["containers"][0]["image"]
    assert env["DEVSERVER_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_without_tracking_the_pod_gets_no_tracking_variables() -> None:
    statefulset = build_statefulset(devserver(), DevServerFlavorSpec(), OperatorConfig())
    names = {item["name"] for item in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert not {name for name in names if name.startswith(("MLFLOW_", "WANDB_", "DEVSERVER_FLAVOR"))}
    assert tracking_env(devserver(), TrackingSpec(), flavor="f", image="i") == []


def test_an_experiment_name_is_used_as_given() -> None:
    server = devserver(tracking={"mlflow": {"trackingUri": "http://m:5000", "experiment": "llm-sweeps"}})
    env = env_by_name(tracking_env(server, effective_tracking(server, None), flavor="f", image="i"))
    assert env["MLFLOW_EXPERIMENT_NAME"]["value"] == "llm-sweeps"
    assert not {"MLFLOW_TRACKING_TOKEN", "WANDB_PROJECT"} & set(env)


# -- Secrets the pods need -----------------------------------------------------------------------------------

def test_a_missing_secret_and_a_secret_without_the_key_are_sentences_with_the_fix() -> None:
    defaults, _ = parse_defaults({"tracking": TEAM_DEFAULTS}, namespace="alice")
    assert defaults is not None
    mlflow, wandb = required_secrets(defaults)
    missing = secret_problem(wandb, None, namespace="alice", devserver="mydev")
    assert missing is not None and "Secret 'wandb-team' (tracking.wandb.apiKeySecret) does not exist" in missing
    assert "kubectl create secret generic wandb-team -n alice --from-literal=WANDB_API_KEY=..." in missing
    keyless = secret_problem(mlflow, {"password"}, namespace="alice", devserver="mydev")
    assert keyless is not None and "has no key MLFLOW_TRACKING_USERNAME or" in keyless
    assert secret_problem(mlflow, {"MLFLOW_TRACKING_TOKEN"}, namespace="alice", devserver="mydev") is None
    assert secret_problem(wandb, {"WANDB_API_KEY"}, namespace="alice", devserver="mydev") is None


def test_describe_shows_where_runs_go_with_secret_names_only() -> None:
    defaults, _ = parse_defaults({"tracking": TEAM_DEFAULTS}, namespace="alice")
    assert tracking_destinations(defaults) == {
        "mlflow": {"trackingUri": "https://mlflow.team.example", "credentialsSecret": "mlflow-team"},
        "wandb": {"project": "team-a", "entity": "acme", "apiKeySecret": "wandb-team"},
    }
    assert tracking_destinations(None) == {}


# -- the run helper, without a tool --------------------------------------------------------------------------

def test_start_run_is_a_no_op_without_configuration_and_on_other_ranks() -> None:
    with tracking.start_run(environ={"DEVSERVER_NAME": "mydev"}) as run:
        run.log({"loss": 1.0}, step=1)
        assert not run.enabled and run.tools == []
    # Rank 1 under torchrun: nothing starts even though MLflow is configured (the URI is never contacted).
    run = tracking.start_run(environ={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "RANK": "1"})
    assert not run.enabled and run.mlflow_run_id is None


def test_tags_say_where_the_run_comes_from(tmp_path: Path) -> None:
    environ = {"DEVSERVER_NAME": "ddp", "DEVSERVER_NAMESPACE": "alice", "DEVSERVER_OWNER": "alice",
               "DEVSERVER_FLAVOR": "cpu-small", "DEVSERVER_IMAGE": "pytorch/pytorch:2.5.1", "NNODES": "2",
               "LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "4", "DEVSERVERS_RUN_GROUP": "ddp-0a1b2c3d"}
    assert tracking.run_tags(environ, workdir=tmp_path) == {
        "devservers.devserver": "ddp", "devservers.namespace": "alice", "devservers.owner": "alice",
        "devservers.flavor": "cpu-small", "devservers.image": "pytorch/pytorch:2.5.1",
        "devservers.world_size": "2", "devservers.nprocs_per_node": "2", "devservers.processes": "4",
        "devservers.run_group": "ddp-0a1b2c3d"}
    # The commit of the code a launch uploaded (the upload leaves .git behind) comes with the launch.
    uploaded = tracking.run_tags({**environ, "DEVSERVERS_GIT_COMMIT": "ab" * 20}, workdir=tmp_path)
    assert uploaded["devservers.git_commit"] == "ab" * 20


def test_the_git_commit_of_a_checkout_is_read_without_git(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "train.py").write_text("print('hi')\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "src").mkdir()
    assert tracking.git_commit(tmp_path / "src") == head
    subprocess.run([*git, "pack-refs", "--all"], check=True)  # the branch now lives in packed-refs only
    assert tracking.git_commit(tmp_path) == head
    assert tracking.run_tags({}, workdir=tmp_path)["devservers.git_commit"] == head
    plain = tmp_path.parent / f"{tmp_path.name}-plain"  # beside the checkout, not in it
    plain.mkdir()
    assert tracking.git_commit(plain) is None


def test_importing_the_sdk_and_the_tracking_module_loads_neither_library() -> None:
    code = ("import sys, devservers_sdk, devservers_sdk.tracking, devservers_sdk.client, devservers_sdk.launch; "
            "print(sorted(m for m in ('mlflow', 'wandb') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"
