"""``examples/main_job.sh``, the README's main job, runs end to end, twice, without touching a real kubeconfig.

With ``DEVSERVERS_TEST_BACKEND=kubernetes`` it runs as ``main_job.sh --kubernetes``: on a real control plane.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from devctl_support import DEVCTL, REPO, devctl_env

from devservers_sdk.localcluster.controlplane.build import default_cache_dir
from devservers_sdk.localcluster.pytest_plugin import backend

pytestmark = pytest.mark.slow


def main_job() -> list[str]:
    return ["bash", str(REPO / "examples" / "main_job.sh"), *(["--kubernetes"] if backend() == "kubernetes" else [])]


def test_main_job_runs_twice_and_restores_the_kubeconfig(tmp_path: Path) -> None:
    state, kubeconfig = tmp_path / "state", tmp_path / "config"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "mine", "clusters": [], "users": [],
        "contexts": [{"name": "mine", "context": {"cluster": "nowhere", "user": "me"}}]}))
    before = kubeconfig.read_text()
    env = devctl_env(str(kubeconfig), DEVSERVERS_STATE_DIR=str(state))
    try:
        for _ in range(2):
            result = subprocess.run(main_job(), env=env, cwd=tmp_path,
                                    capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "\nmydev-0\n" in result.stdout and "\nddp-1 1 2\n" in result.stdout
            assert result.stdout.rstrip().endswith("main job: done")
            assert yaml.safe_load(kubeconfig.read_text()) == yaml.safe_load(before)
    finally:
        subprocess.run([*DEVCTL, "local", "down", "--purge"], env=env, capture_output=True, timeout=180)


def test_main_job_keeps_to_the_state_directory_without_kubeconfig(tmp_path: Path) -> None:
    state, home = tmp_path / "state", tmp_path / "home"
    home.mkdir()
    # A new HOME would also mean an empty cache of the real control plane's binaries (a build of many minutes):
    # keep this machine's, through the variable that moves it.
    cache = str(default_cache_dir().parent)
    env = devctl_env(None, DEVSERVERS_STATE_DIR=str(state), HOME=str(home), DEVSERVERS_CONTROL_PLANE_CACHE=cache)
    try:
        result = subprocess.run(main_job(), env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"added to {state / 'user.kubeconfig'}" in result.stdout
        assert not (home / ".kube").exists()
    finally:
        subprocess.run([*DEVCTL, "local", "down", "--purge"], env=env, capture_output=True, timeout=180)
