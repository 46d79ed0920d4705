"""The server page says where runs go and links to the MLflow server or the W&B project, Secrets by name only."""

from __future__ import annotations

from devservers_ui import pages
from devservers_ui.live import row

from devservers_sdk.client import DevServerDescription
from devservers_sdk.models import DevServer


def description(tracking: dict[str, dict[str, str]]) -> DevServerDescription:
    server = DevServer.from_manifest({
        "apiVersion": "devservers.io/v1", "kind": "DevServer",
        "metadata": {"name": "exp", "namespace": "alice", "resourceVersion": "7"},
        "spec": {"owner": "alice", "flavor": "cpu-small"}})
    return DevServerDescription(devserver=server, tracking=tracking)


def test_the_server_page_links_to_the_experiment_and_the_project() -> None:
    shown = description({
        "mlflow": {"trackingUri": "https://mlflow.example.com", "credentialsSecret": "mlflow-team",
                   "from": "namespace defaults (ConfigMap devservers-defaults)"},
        "wandb": {"project": "llm", "entity": "acme", "apiKeySecret": "wandb-key", "from": "DevServer"}})
    html = pages.details(shown, row(shown.devserver))
    assert '<h2 id="tracking-heading">Experiment tracking</h2>' in html
    assert '<a href="https://mlflow.example.com" rel="noopener noreferrer" target="_blank">' in html
    assert "experiment exp (namespace defaults (ConfigMap devservers-defaults))" in html
    assert '<a href="https://wandb.ai/acme/llm" rel="noopener noreferrer" target="_blank">acme/llm</a>' in html


def test_no_tracking_no_section() -> None:
    shown = description({})
    assert "tracking-heading" not in pages.details(shown, row(shown.devserver))
