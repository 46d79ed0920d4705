"""``examples/main_job.sh``, the README's main job, runs end to end, twice, without touching a real kubeconfig."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from devctl_support import DEVCTL, REPO, devctl_env

pytestmark = [pytest.mark.slow, pytest.mark.emulator_only]


def test_main_job_runs_twice_and_restores_the_kubeconfig(tmp_path: Path) -> None:
    state, kubeconfig = tmp_path / "state", tmp_path / "config"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "mine", "clusters": [], "users": [],
        "contexts": [{"name": "mine", "context": {"cluster": "nowhere", "user": "me"}}]}))
    before = kubeconfig.read_text()
    env = devctl_env(str(kubeconfig), DEVSERVERS_STATE_DIR=str(state))
    try:
        for _ in range(2):
            result = subprocess.run(["bash", str(REPO / "examples" / "main_job.sh")], env=env, cwd=tmp_path,
                                    capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "\nmydev-0\n" in result.stdout and "\nddp-1 1 2\n" in result.stdout
            assert result.stdout.rstrip().endswith("main job: done")
            assert yaml.safe_load(kubeconfig.read_text()) == yaml.safe_load(before)
    finally:
        subprocess.run([*DEVCTL, "local", "down"], env=env, capture_output=True, timeout=120)


def test_main_job_keeps_to_the_state_directory_without_kubeconfig(tmp_path: Path) -> None:
    state, home = tmp_path / "state", tmp_path / "home"
    home.mkdir()
    env = devctl_env(None, DEVSERVERS_STATE_DIR=str(state), HOME=str(home))
    try:
        result = subprocess.run(["bash", str(REPO / "examples" / "main_job.sh")], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"added to {state / 'user.kubeconfig'}" in result.stdout
        assert not (home / ".kube").exists()
    finally:
        subprocess.run([*DEVCTL, "local", "down"], env=env, capture_output=True, timeout=120)
