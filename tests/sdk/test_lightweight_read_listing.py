"""The fast read path's listing (``devservers_sdk.lightweight_read.list_devservers``) on a cluster: namespace,
context, owner and order resolved as ``DevServerClient`` resolves them, whatever the environment says.

The scene is a private emulator of this module's own (``fast_list_scene``); devctl's output over both paths
is ``tests/cli/test_devctl_list_fast_path.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from devservers_sdk.client import DevServerClient
from devservers_sdk.errors import FullClientRequired
from devservers_sdk.lightweight_read import list_devservers
from tests.sdk.fast_list_scene import EMPTY, HOME, OTHER, Scene, running_scene

pytestmark = pytest.mark.emulator_only


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    with running_scene(tmp_path_factory.mktemp("fast-list")) as made:
        yield made


def test_the_listing_is_the_clients(scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    """Namespace, context, owner and sorting resolved as ``DevServerClient`` resolves them."""
    for key in ("DEVSERVERS_NAMESPACE", "DEVSERVERS_CONTEXT", "DEVSERVERS_OWNER", "KUBECONFIG"):
        monkeypatch.delenv(key, raising=False)
    cases: list[tuple[dict[str, str], dict[str, Any]]] = [
        ({}, {}), ({}, {"all_namespaces": True}), ({}, {"owner": "alice"}), ({}, {"namespace": OTHER}),
        ({"DEVSERVERS_NAMESPACE": OTHER}, {}), ({"DEVSERVERS_NAMESPACE": OTHER}, {"namespace": HOME}),
        ({"DEVSERVERS_NAMESPACE": EMPTY}, {"all_namespaces": True, "owner": "bob"}),
    ]
    for environment, arguments in cases:
        with monkeypatch.context() as patch:
            for key, value in environment.items():
                patch.setenv(key, value)
            listing = list_devservers(kubeconfig=scene.token, **arguments)
            with DevServerClient(kubeconfig=scene.token, namespace=arguments.get("namespace")) as client:
                expected = client.list(owner=arguments.get("owner"), all_namespaces=bool(arguments.get("all_namespaces")))
                assert listing.namespace == client.namespace and listing.context == client.context
        assert [(m["metadata"]["namespace"], m["metadata"]["name"]) for m in listing.items] == \
               [(s.namespace, s.name) for s in expected], (environment, arguments)


def test_a_context_chosen_by_the_environment(scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    document = yaml.safe_load(scene.token.read_text())
    document["contexts"].insert(0, {"name": "elsewhere", "context": {"cluster": "nowhere", "user": "nobody"}})
    document["clusters"].append({"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}})
    document["users"].append({"name": "nobody", "user": {"token": "x"}})
    document["current-context"] = "elsewhere"
    path = scene.directory / "two-contexts.kubeconfig"
    path.write_text(yaml.safe_dump(document))
    monkeypatch.setenv("DEVSERVERS_CONTEXT", "devservers-local")
    listing = list_devservers(kubeconfig=path)
    assert listing.context == "devservers-local" and [m["metadata"]["name"] for m in listing.items][:1] == ["alpha"]
    with pytest.raises(FullClientRequired, match="ConnectionRefused"):
        list_devservers(kubeconfig=path, context="elsewhere")
