"""devctl create's tracking flags: a flag that needs another is a usage error (exit 2) naming both, before any
cluster call; the help shows an example."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from devservers_cli.main import cli


@pytest.mark.parametrize(("flags", "words"), [
    (["--wandb-project", "llm"], "--wandb-project and --wandb-secret go together"),
    (["--wandb-secret", "wandb-key"], "--wandb-project and --wandb-secret go together"),
    (["--mlflow-secret", "mlflow-creds"], "--mlflow-secret needs --mlflow URI"),
    (["--mlflow-experiment", "e"], "--mlflow-experiment needs --mlflow URI"),
])
def test_a_tracking_flag_without_its_partner_is_a_usage_error(flags: list[str], words: str) -> None:
    # No kubeconfig at all: the error must come before any cluster call.
    result = CliRunner().invoke(cli, ["--kubeconfig", "/nonexistent/kubeconfig", "create", "exp", "--flavor",
                                      "cpu-small", *flags])
    assert result.exit_code == 2, result.output
    assert words in result.output


def test_the_help_shows_the_tracking_flags_with_an_example() -> None:
    result = CliRunner().invoke(cli, ["create", "--help"])
    assert result.exit_code == 0
    assert "--mlflow URI" in result.output and "--wandb-secret SECRET" in result.output
    assert "--mlflow https://mlflow.example.com --mlflow-secret" in result.output
