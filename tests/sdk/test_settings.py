"""Where kubeconfig, context, namespace and owner come from: explicit > environment > kubeconfig > default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from devservers_sdk.errors import ConfigurationError
from devservers_sdk.settings import (
    CONTEXT_ENV,
    NAMESPACE_ENV,
    OWNER_ENV,
    load_kubeconfig,
    resolve_namespace,
    resolve_owner,
)


def write(path: Path, contexts: dict[str, dict[str, Any]], current: str | None = None,
          clusters: dict[str, str] | None = None) -> Path:
    document: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": s}} for n, s in (clusters or {"c1": "https://one"}).items()],
        "users": [{"name": "u1", "user": {"token": "t"}}],
        "contexts": [{"name": n, "context": c} for n, c in contexts.items()],
    }
    if current:
        document["current-context"] = current
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (NAMESPACE_ENV, OWNER_ENV, CONTEXT_ENV, "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_explicit_path_and_current_context(tmp_path: Path) -> None:
    path = write(tmp_path / "kc", {"a": {"cluster": "c1", "user": "u1", "namespace": "ml"}}, current="a")
    info = load_kubeconfig(path)
    assert (info.context, info.cluster, info.server, info.user, info.namespace) == ("a", "c1", "https://one", "u1",
                                                                                    "ml")
    assert info.path == str(path)


def test_kubeconfig_env_list_merges_first_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write(tmp_path / "one", {"a": {"cluster": "c1", "user": "u1", "namespace": "first"}}, current="a")
    second = write(tmp_path / "two", {"a": {"cluster": "c1", "user": "u1", "namespace": "second"},
                                      "b": {"cluster": "c1", "user": "u1"}}, current="b")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "missing"), str(first), str(second)]))
    info = load_kubeconfig()
    assert info.context == "a" and info.namespace == "first"
    assert info.paths == (str(first), str(second))
    assert load_kubeconfig(context="b").namespace is None


def test_context_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "kc", {"a": {"cluster": "c1"}, "b": {"cluster": "c1"}, "c": {"cluster": "c1"}},
                 current="a")
    assert load_kubeconfig(path).context == "a"
    monkeypatch.setenv(CONTEXT_ENV, "b")
    assert load_kubeconfig(path).context == "b"
    assert load_kubeconfig(path, "c").context == "c"


def test_no_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"No kubeconfig found \(looked at .*nope\).*devctl local up"):
        load_kubeconfig(tmp_path / "nope")
    with pytest.raises(ConfigurationError, match=r"\.kube/config"):
        load_kubeconfig()


def test_unknown_context_lists_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "kc", {"a": {"cluster": "c1"}, "b": {"cluster": "c1"}}, current="a")
    with pytest.raises(ConfigurationError, match=r"Context 'zzz' is not in the kubeconfig .*known contexts: a, b"):
        load_kubeconfig(path, "zzz")


def test_no_current_context(tmp_path: Path) -> None:
    path = write(tmp_path / "kc", {"a": {"cluster": "c1"}})
    with pytest.raises(ConfigurationError, match="selects no context"):
        load_kubeconfig(path)


def test_unreadable_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text("{ this is: [not yaml")
    with pytest.raises(ConfigurationError, match=r"is not valid YAML \(.* at line 1, column 21\)") as caught:
        load_kubeconfig(path)
    assert "\n" not in str(caught.value)
    path.write_text("- a list")
    with pytest.raises(ConfigurationError, match="is not a kubeconfig"):
        load_kubeconfig(path)


def test_namespace_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_ns = load_kubeconfig(write(tmp_path / "a", {"a": {"cluster": "c1", "namespace": "ctx-ns"}}, current="a"))
    without = load_kubeconfig(write(tmp_path / "b", {"a": {"cluster": "c1"}}, current="a"))
    assert resolve_namespace(None, without) == "default"
    assert resolve_namespace(None, with_ns) == "ctx-ns"
    monkeypatch.setenv(NAMESPACE_ENV, "env-ns")
    assert resolve_namespace(None, with_ns) == "env-ns"
    assert resolve_namespace("arg-ns", with_ns) == "arg-ns"


def test_owner_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = load_kubeconfig(write(tmp_path / "kc", {"a": {"cluster": "c1", "user": "kube-user"}}, current="a"))
    asked: list[bool] = []

    def whoami(answer: str | None) -> Any:
        def ask() -> str | None:
            asked.append(True)
            return answer
        return ask

    assert resolve_owner(None, whoami=whoami(None), info=info) == "kube-user"
    assert resolve_owner(None, whoami=whoami("alice@example.com"), info=info) == "alice@example.com"
    monkeypatch.setenv(OWNER_ENV, "env-owner")
    asked.clear()
    assert resolve_owner(None, whoami=whoami("server"), info=info) == "env-owner"
    assert resolve_owner("arg-owner", whoami=whoami("server"), info=info) == "arg-owner"
    assert not asked, "the cluster is only asked when nothing closer decides"


def test_owner_required() -> None:
    with pytest.raises(ConfigurationError, match="DEVSERVERS_OWNER"):
        resolve_owner(None, whoami=lambda: None, info=None)


@pytest.mark.parametrize("username", [
    "alice", "alice@example.com", "system:serviceaccount:ml:builder", "arn:aws:sts::123:assumed-role/Dev/alice.smith",
    "Jane Doe",
])
def test_the_default_owner_is_the_user_name_the_cluster_reports_exactly(username: str) -> None:
    # The owner policy compares spec.owner with the requesting user's name exactly: a default owner cut down
    # to "the part before @" was refused by it, and let alice@evil.example pass for alice.
    assert resolve_owner(None, whoami=lambda: username, info=None) == username
