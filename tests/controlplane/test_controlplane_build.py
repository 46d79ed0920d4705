"""Building the control plane: the cache is reused without Go, a missing or old Go is one clear error, and a
failed build leaves nothing that could be mistaken for binaries."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from devservers_sdk.localcluster.controlplane import build, gomod, pins
from devservers_sdk.localcluster.controlplane.build import (
    ControlPlaneBinaries,
    ControlPlaneBuildError,
    GoToolchainError,
    ensure_binaries,
)


def _fake_go(folder: Path, script: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    go = folder / "go"
    go.write_text("#!/bin/sh\n" + script)
    go.chmod(go.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return go


def test_cached_binaries_are_reused_without_running_go(binaries: ControlPlaneBinaries, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "go-was-called"
    _fake_go(tmp_path / "bin", f'echo "$@" >> {calls}\nexit 1\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    cache_dir = binaries.kube_apiserver.parent.parent

    again = ensure_binaries(cache_dir=cache_dir)

    assert again == binaries
    assert not calls.exists(), f"ensure_binaries ran go although the cache was complete: {calls.read_text()}"
    for path in again.all().values():
        assert os.access(path, os.X_OK), f"{path} is not an executable file"


def test_missing_go_is_one_line_naming_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    with pytest.raises(GoToolchainError) as raised:
        ensure_binaries(cache_dir=tmp_path / "cache")

    message = str(raised.value)
    assert "\n" not in message
    assert "Go is not installed" in message and ">= 1.26" in message, message
    assert not list((tmp_path / "cache").glob("kubernetes-*")), "a failed build left a binaries folder"


def test_old_go_is_one_line_naming_both_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "calls"
    _fake_go(tmp_path / "bin", f'echo "$@" >> {calls}\n'
                               'if [ "$1" = version ]; then echo "go version go1.21.4 linux/amd64"; exit 0; fi\n'
                               'exit 3\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))

    with pytest.raises(GoToolchainError) as raised:
        ensure_binaries(cache_dir=tmp_path / "cache")

    message = str(raised.value)
    assert "\n" not in message
    assert "Go 1.21.4" in message and "1.26" in message and "GOTOOLCHAIN" in message, message
    assert "build" not in calls.read_text(), "go build ran with a Go that is too old"


def test_failed_build_names_its_log_and_leaves_no_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    _fake_go(tmp_path / "bin", 'if [ "$1" = version ]; then echo "go version go1.99.0 linux/amd64"; exit 0; fi\n'
                               'echo "half a binary" > "$7"\n'
                               'echo "k8s.io/kubernetes/cmd/kube-apiserver"\n'
                               'echo "pkg/foo.go:12:3: undefined: bar" >&2\nexit 2\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    cache = tmp_path / "cache"

    with pytest.raises(ControlPlaneBuildError) as raised:
        ensure_binaries(cache_dir=cache)

    message = str(raised.value)
    assert "kube-apiserver" in message and "undefined: bar" in message and "build-kubernetes.log" in message
    leftovers = [path.name for path in cache.iterdir() if path.name not in (".lock", "build-kubernetes.log")]
    assert leftovers == [], f"a failed build left {leftovers} in the cache"


def test_the_stamp_changes_with_the_pinned_sources(tmp_path: Path) -> None:
    module = tmp_path / "module"
    shutil.copytree(pins.KUBERNETES_MODULE, module)
    target = build._Target("kubernetes", module, {"kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver"},
                           ("-s", "-w"))
    before = target.stamp()
    assert before == build._Target(target.name, module, target.packages, target.ldflags).stamp()

    (module / "go.sum").write_text((module / "go.sum").read_text() + "example.com/x v1.0.0 h1:AAAA=\n")
    assert target.stamp() != before, "a go.sum change must force a rebuild"
    assert build._Target(target.name, module, target.packages, ("-s",)).stamp() != target.stamp(), \
        "a flag change must force a rebuild"


@pytest.mark.skipif(shutil.which("go") is None, reason="needs go to read k8s.io/kubernetes's own go.mod")
def test_the_committed_replace_list_is_the_staging_set_of_the_pinned_release() -> None:
    committed = (pins.KUBERNETES_MODULE / "go.mod").read_text()
    version = pins.required_version(committed, "k8s.io/kubernetes")
    real = gomod.download_go_mod("k8s.io/kubernetes", version)

    staging = gomod.staging_modules(real)
    assert {"k8s.io/api", "k8s.io/client-go", "k8s.io/streaming", "k8s.io/cri-streaming"} <= set(staging)
    generated = gomod.kubernetes_go_mod(version, real)
    replace_block = generated[generated.index("replace ("):]
    assert replace_block in committed, (
        "go/kubernetes/go.mod is stale: run python -m devservers_sdk.localcluster.controlplane.gomod " + version)
