"""``devctl list``'s fast path (``devservers_sdk.lightweight_read``): taken when it can be, invisible otherwise.

Each comparison runs devctl twice on one cluster with two kubeconfigs that differ only in the user entry:
a bearer token, which the fast path handles, and an exec credential plugin handing out the same token,
which it leaves to the SDK's client. Same identity, context name and server, and the renderer's clock
frozen: every byte devctl prints must be the same, in every format and for every failure.

The cluster is a private emulator without kubelet or operator (``tests/sdk/fast_list_scene.py``), so the
statuses are written there (every column has something to show) and the faults injected here disturb no other
test. That the fast path resolves namespace, context and owner as the client does is the SDK's own question:
``tests/sdk/test_lightweight_read_listing.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from devctl_support import Outcome, devctl_env, run_runner

from devservers_sdk.errors import FullClientRequired
from devservers_sdk.kube import DEVSERVERS, Kube
from devservers_sdk.lightweight_read import list_devservers
from devservers_sdk.localcluster import tls
from devservers_sdk.localcluster.apiserver.faults import FaultSettings
from devservers_sdk.settings import load_kubeconfig
from tests.sdk.fast_list_scene import EMPTY, HOME, OTHER, Scene, running_scene

pytestmark = [pytest.mark.emulator_only, pytest.mark.slow]

HEAVY = ("kubernetes", "urllib3", "pydantic", "pydantic_core", "devservers_sdk.client", "devservers_sdk.models")

# devctl in a subprocess with the renderer's clock frozen at argv[1]; the heavy modules it loaded go to argv[2].
FROZEN_DEVCTL = """
import json, sys
from datetime import datetime
import devservers_cli.render
devservers_cli.render._now = lambda: datetime.fromisoformat(sys.argv[1])
from devservers_cli.main import cli
try:
    cli(sys.argv[3:], prog_name="devctl")
finally:
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in {heavy} or name in {heavy})
    with open(sys.argv[2], "w") as report:
        json.dump(loaded, report)
""".format(heavy=repr(set(HEAVY)))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    with running_scene(tmp_path_factory.mktemp("fast-list")) as made:
        yield made


@pytest.fixture
def frozen(scene: Scene, monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The renderer's clock, stopped at ``scene.now`` for devctl run in this process."""
    import devservers_cli.render

    monkeypatch.setattr(devservers_cli.render, "_now", lambda: scene.now)
    return scene.now


def devctl(mode: str, kubeconfig: Path, *args: str, now: datetime, **env: str) -> tuple[Outcome, list[str] | None]:
    """devctl's outcome, and in a subprocess the heavy modules it imported (``None`` in this process)."""
    if mode == "runner":
        return run_runner(list(args), env=devctl_env(str(kubeconfig))), None
    report = kubeconfig.with_suffix(".modules.json")
    result = subprocess.run([sys.executable, "-c", FROZEN_DEVCTL, now.isoformat(), str(report), *args],
                            env=devctl_env(str(kubeconfig), **env), capture_output=True, text=True, timeout=180,
                            stdin=subprocess.DEVNULL)
    return Outcome(result.returncode, result.stdout, result.stderr), json.loads(report.read_text())


# -- same output --------------------------------------------------------------------------------------------

LISTS = [(), ("-o", "wide"), ("-o", "name"), ("-A",), ("-A", "-o", "wide"), ("--owner", "alice"),
         ("-A", "--owner", "carol", "-o", "wide"), ("--owner", "nobody"), ("-n", EMPTY), ("-n", EMPTY, "-o", "name"),
         ("-n", OTHER, "-o", "wide")]


@pytest.mark.parametrize("mode", ["runner", "process"])
@pytest.mark.parametrize("args", LISTS, ids=lambda args: " ".join(args) or "table")
def test_fast_path_prints_what_the_client_prints(scene: Scene, frozen: datetime, mode: str,
                                                  args: tuple[str, ...]) -> None:
    runs = scene.plugin_runs()
    fast, fast_modules = devctl(mode, scene.token, "list", *args, now=frozen)
    full, full_modules = devctl(mode, scene.exec, "list", *args, now=frozen)
    assert fast.exit_code == 0, str(fast)
    assert (fast.exit_code, fast.stdout, fast.stderr) == (full.exit_code, full.stdout, full.stderr), \
        f"fast path:\n{fast}\nclient:\n{full}"
    assert scene.plugin_runs() > runs, "the exec kubeconfig must have gone through the client"
    if mode == "process":
        assert fast_modules == [], "the fast path imported what it exists to avoid"
        assert full_modules is not None and "kubernetes" in full_modules


def test_the_table_reads_the_objects_and_the_models_defaults(scene: Scene, frozen: datetime) -> None:
    table = run_runner(["list", "-A", "-o", "wide"], env=devctl_env(str(scene.token)))
    header, *rows = [re.split(r"\s{2,}", line) for line in table.stdout.splitlines()]
    assert header == ["NAMESPACE", "NAME", "OWNER", "FLAVOR", "MODE", "PHASE", "READY", "EXPIRES IN", "AGE", "IMAGE",
                      "IDLE", "GPU USE", "COST", "MESSAGE"], table.stdout
    assert rows == [
        [HOME, "alpha", "alice", "cpu-small", "standalone", "Running", "1/1", "3h39m", "20m", "(flavor default)",
         "23m", "-", "-", "1/1 pods ready"],
        # no `distributed` section: the model's world size of 2
        [HOME, "beta", "bob", "cpu-small", "distributed", "Pending", "0/2", "-", "20m", "python:3.11", "-", "-", "-"],
        [HOME, "delta", "alice", "cpu-small", "standalone", "Stopped", "0/0", "-", "20m", "(flavor default)", "-",
         "-", "-", "Stopped=True (IdleTimeout)"],
        [HOME, "gamma", "alice", "cpu-large", "distributed", "Starting", "1/3", "4h39m", "20m", "(flavor default)",
         "-", "-", "-", "1/3 pods ready"],
        [OTHER, "epsilon", "carol", "gpu-small", "standalone", "Failed", "0/1", "expired", "20m", "(flavor default)",
         "-", "-", "-", "ImagePullBackOff"],
    ], table.stdout


# -- same failures ------------------------------------------------------------------------------------------

def _dead_server(scene: Scene, user: dict[str, Any], name: str) -> Path:
    return scene.variant(name, user=user, cluster={"server": "https://127.0.0.1:9"})


def _other_ca(scene: Scene, user: dict[str, Any], name: str) -> Path:
    import base64

    return scene.variant(name, user=user, cluster={
        "certificate-authority-data": base64.b64encode(tls.generate().ca_pem).decode()})


FAILURES = {
    "unreachable": (_dead_server, ("Error: Cannot reach the cluster of context 'devservers-local' at "
                                   "https://127.0.0.1:9: connection refused", "devctl local up")),
    "untrusted certificate": (_other_ca, ("Error: Cannot reach the cluster of context 'devservers-local'",
                                          "TLS certificate verification failed")),
}


@pytest.mark.parametrize("mode", ["runner", "process"])
@pytest.mark.parametrize("failure", list(FAILURES))
def test_unreachable_clusters_fail_in_the_same_words(scene: Scene, frozen: datetime, mode: str,
                                                     failure: str) -> None:
    make, fragments = FAILURES[failure]
    slug = f"{failure.replace(' ', '-')}-{mode}"
    fast, _ = devctl(mode, make(scene, {"token": scene.cluster.token}, f"{slug}-token"), "list", now=frozen)
    full, _ = devctl(mode, make(scene, scene.exec_user(scene.cluster.token), f"{slug}-exec"), "list", now=frozen)
    _same_error(fast, full, *fragments)


@pytest.mark.parametrize("mode", ["runner", "process"])
def test_a_rejected_token_fails_in_the_same_words(scene: Scene, frozen: datetime, mode: str) -> None:
    fast, _ = devctl(mode, scene.variant(f"wrong-{mode}-token", user={"token": "wrong"}), "list", now=frozen)
    full, _ = devctl(mode, scene.variant(f"wrong-{mode}-exec", user=scene.exec_user("wrong")), "list", now=frozen)
    _same_error(fast, full, "Error: The cluster rejected the credentials of context 'devservers-local' "
                            "(401 Unauthorized)")


@pytest.mark.parametrize("mode", ["runner", "process"])
def test_a_failing_server_fails_in_the_same_words(scene: Scene, frozen: datetime, mode: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # One try: with the client's retries the message counts the seconds spent, which differ from run to run.
    monkeypatch.setenv("DEVSERVERS_RETRY_ATTEMPTS", "1")
    scene.cluster.set_faults(FaultSettings(error=1.0))
    try:
        fast, _ = devctl(mode, scene.token, "list", now=frozen, DEVSERVERS_RETRY_ATTEMPTS="1")
        full, _ = devctl(mode, scene.exec, "list", now=frozen, DEVSERVERS_RETRY_ATTEMPTS="1")
    finally:
        scene.cluster.set_faults(FaultSettings())
    _same_error(fast, full, "500", "injected fault")


def _same_error(fast: Outcome, full: Outcome, *fragments: str) -> None:
    assert fast.exit_code == 1 and fast.stdout == "", str(fast)
    assert (fast.exit_code, fast.stdout, fast.stderr) == (full.exit_code, full.stdout, full.stderr), \
        f"fast path:\n{fast}\nclient:\n{full}"
    assert "Traceback" not in fast.stderr
    for fragment in fragments:
        assert fragment in fast.stderr, str(fast)


# -- what the fast path reads, and what it leaves to the client ---------------------------------------------

def test_files_beside_the_kubeconfig_and_client_certificates(scene: Scene, frozen: datetime) -> None:
    """tokenFile and certificate-authority relative to the kubeconfig, inline client certificates: all read."""
    import base64

    folder = scene.directory / "files"
    folder.mkdir()
    (folder / "token").write_text(scene.cluster.token)
    document = yaml.safe_load(scene.token.read_text())
    cluster = document["clusters"][0]["cluster"]
    (folder / "ca.crt").write_bytes(base64.b64decode(cluster.pop("certificate-authority-data")))
    cluster["certificate-authority"] = "ca.crt"
    client = tls.generate()  # the emulator does not ask for a client certificate, but it is loaded and offered
    document["users"][0]["user"] = {"tokenFile": "token",
                                    "client-certificate-data": base64.b64encode(client.cert_pem).decode(),
                                    "client-key-data": base64.b64encode(client.key_pem).decode()}
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    assert [m["metadata"]["name"] for m in list_devservers(kubeconfig=path).items] == \
           ["alpha", "beta", "delta", "gamma"]
    same = run_runner(["list", "-o", "wide"], env=devctl_env(str(path)))
    assert same == run_runner(["list", "-o", "wide"], env=devctl_env(str(scene.token)))


def test_exec_credentials_are_left_to_the_client(scene: Scene) -> None:
    runs = scene.plugin_runs()
    with pytest.raises(FullClientRequired, match="exec"):
        list_devservers(kubeconfig=scene.exec)
    assert scene.plugin_runs() == runs, "the fast path must not run credential plugins"
    listed = run_runner(["list", "-o", "name"], env=devctl_env(str(scene.exec)))
    assert listed.exit_code == 0 and "devserver.devservers.io/alpha" in listed.stdout
    assert scene.plugin_runs() > runs


def test_objects_the_models_refuse_are_left_to_the_client(scene: Scene, frozen: datetime) -> None:
    """A lower-case NCCL key, which only the models refuse: the client fails, so the fast path hands over."""
    kube = Kube(load_kubeconfig(str(scene.token)))
    try:
        kube.create(DEVSERVERS, {"apiVersion": "devservers.io/v1", "kind": "DevServer",
                                 "metadata": {"name": "odd", "namespace": EMPTY},
                                 "spec": {"owner": "dave", "flavor": "cpu-small", "mode": "distributed",
                                          "distributed": {"ncclSettings": {"NCCL_debug": "INFO"}}}}, namespace=EMPTY)
        with pytest.raises(FullClientRequired, match="'odd': NCCL settings"):
            list_devservers(kubeconfig=scene.token, namespace=EMPTY)
        fast = run_runner(["list", "-n", EMPTY], env=devctl_env(str(scene.token)))
        full = run_runner(["list", "-n", EMPTY], env=devctl_env(str(scene.exec)))
        _same_error(fast, full, "DevServer 'odd' in namespace 'fast-empty' cannot be read by this SDK")
    finally:
        kube.delete(DEVSERVERS, "odd", namespace=EMPTY)
        kube.close()
