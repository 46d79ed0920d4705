"""``python -m devservers_sdk.localcluster serve``: the command a newcomer and ``devctl local up`` run."""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

KUBECTL = str(Path(sys.executable).parent / "kubectl")


def start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    kubeconfig = tmp_path / "config" / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "devservers_sdk.localcluster", "serve", "--kubeconfig", str(kubeconfig),
         "--state-dir", str(tmp_path / "state"), "--node-capacity", "nvidia.com/gpu=2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while not kubeconfig.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"serve did not become ready: {process.communicate()[0]}")
        time.sleep(0.02)
    return process, kubeconfig


@pytest.mark.emulator_only
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_writes_a_private_kubeconfig_requires_the_token_and_stops_cleanly(
        tmp_path: Path, stop_signal: signal.Signals) -> None:
    process, kubeconfig = start(tmp_path)
    try:
        assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        assert cluster["server"].startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())

        # Without credentials a request is system:anonymous, refused as a real server does (403); a token
        # that is not the kubeconfig's is refused as unauthenticated (401).
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{cluster['server']}/api/v1/namespaces", context=context, timeout=10)
        assert refused.value.code == 403
        assert 'User "system:anonymous" cannot list' in json.loads(refused.value.read())["message"]
        wrong = urllib.request.Request(f"{cluster['server']}/api/v1/namespaces",
                                       headers={"Authorization": "Bearer not-the-token"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(wrong, context=context, timeout=10)
        assert refused.value.code == 401
        assert json.loads(refused.value.read())["reason"] == "Unauthorized"

        nodes = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "json"],
                               capture_output=True, text=True, timeout=60, check=True)
        capacity = json.loads(nodes.stdout)["items"][0]["status"]["capacity"]
        assert capacity["nvidia.com/gpu"] == "2"
    finally:
        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    assert not kubeconfig.exists(), "the kubeconfig of a stopped cluster must not be left behind"


@pytest.mark.emulator_only
def test_serve_refuses_a_bad_capacity_with_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "devservers_sdk.localcluster", "serve", "--kubeconfig",
                             str(tmp_path / "kc"), "--node-capacity", "gpus"], capture_output=True, text=True,
                            timeout=30, env={**os.environ})
    assert result.returncode == 2
    assert "--node-capacity expects RESOURCE=QUANTITY" in result.stderr
