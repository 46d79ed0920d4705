"""``devctl list``'s fast path (``devservers_sdk.lightweight_read``): taken when it can be, invisible otherwise.

Each comparison runs devctl twice on one cluster with two kubeconfigs that differ only in the user entry:
a bearer token, which the fast path handles, and an exec credential plugin handing out the same token,
which it leaves to the SDK's client. Same identity, context name and server, and the renderer's clock
frozen: every byte devctl prints must be the same, in every format and for every failure.

The cluster is a private emulator without kubelet or operator, so the statuses are written here (every
column has something to show) and the faults injected here disturb no other test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from devctl_support import Outcome, devctl_env, run_runner

from devservers_sdk.client import DevServerClient
from devservers_sdk.errors import FullClientRequired
from devservers_sdk.kube import DEVSERVERS, Kube, Resource
from devservers_sdk.lightweight_read import list_devservers
from devservers_sdk.localcluster import tls
from devservers_sdk.localcluster.apiserver.faults import FaultSettings
from devservers_sdk.localcluster.cluster import LocalCluster
from devservers_sdk.settings import load_kubeconfig
from tests.platform_fixture import apply_crds_and_flavors

pytestmark = [pytest.mark.emulator_only, pytest.mark.slow]

HOME, OTHER, EMPTY = "fast-home", "fast-other", "fast-empty"
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
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


@dataclass
class Scene:
    cluster: LocalCluster
    directory: Path
    token: Path  # kubeconfig with the admin token: the fast path
    exec: Path  # the same user through an exec plugin: the client's path
    calls: Path  # one line per run of the exec plugins
    now: datetime  # the renderer's clock in every comparison

    def variant(self, name: str, *, user: dict[str, Any] | None = None, cluster: dict[str, Any] | None = None,
                source: Path | None = None) -> Path:
        """A copy of a kubeconfig (the token one by default) with its user replaced or cluster fields changed."""
        document = yaml.safe_load((source or self.token).read_text())
        if user is not None:
            document["users"][0]["user"] = user
        if cluster is not None:
            document["clusters"][0]["cluster"].update(cluster)
        path = self.directory / name
        path.write_text(yaml.safe_dump(document))
        path.chmod(0o600)
        return path

    def exec_user(self, token: str) -> dict[str, Any]:
        """An exec credential plugin that hands out ``token`` and counts its runs in ``calls``."""
        script = self.directory / f"credential-{len(list(self.directory.glob('credential-*')))}.py"
        credential = {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                      "status": {"token": token}}
        script.write_text(f"import json\nwith open({str(self.calls)!r}, 'a') as calls:\n    calls.write('run\\n')\n"
                          f"print(json.dumps({credential!r}))\n")
        return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                         "args": [str(script)]}}

    def plugin_runs(self) -> int:
        return len(self.calls.read_text().splitlines()) if self.calls.exists() else 0


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _populate(kube: Kube, now: datetime) -> None:
    """DevServers that exercise every column, and the defaults a manifest may leave to the model."""
    for namespace in (HOME, OTHER, EMPTY):
        kube.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    servers: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
        (HOME, "alpha", {"owner": "alice", "flavor": "cpu-small", "lifecycle": {"timeToLive": "4h"}},
         {"phase": "Running", "readyReplicas": 1, "replicas": 1, "message": "1/1 pods ready",
          "lastActivityTime": _timestamp(now - timedelta(minutes=3))}),
        # distributed without a `distributed` section: the model's default world size (2) applies
        (HOME, "beta", {"owner": "bob", "flavor": "cpu-small", "mode": "distributed", "image": "python:3.11",
                        "persistentHomeSize": "10Gi"}, {}),
        (HOME, "gamma", {"owner": "alice", "flavor": "cpu-large", "mode": "distributed",
                         "distributed": {"worldSize": 3, "backend": "gloo", "ncclSettings": {"NCCL_DEBUG": "INFO"}},
                         "lifecycle": {"expirationTime": _timestamp(now + timedelta(days=2)), "timeToLive": "1d"}},
         {"phase": "Starting", "readyReplicas": 1, "replicas": 3, "expiresAt": _timestamp(now + timedelta(hours=5)),
          "conditions": [
              {"type": "Ready", "status": "False", "reason": "PodsStarting", "message": "1/3 pods ready",
               "lastTransitionTime": _timestamp(now - timedelta(minutes=2))},
              {"type": "Expiring", "status": "Unknown", "reason": "Soon", "message": "",
               "lastTransitionTime": _timestamp(now - timedelta(minutes=9))}]}),
        (HOME, "delta", {"owner": "alice", "flavor": "cpu-small", "lifecycle": {"autoShutdown": False}},
         {"phase": "Stopped", "readyReplicas": 0, "replicas": 0, "stoppedReason": "IdleTimeout",
          "conditions": [{"type": "Stopped", "status": "True", "reason": "IdleTimeout",
                          "lastTransitionTime": _timestamp(now - timedelta(hours=1))}]}),
        (OTHER, "epsilon", {"owner": "carol", "flavor": "gpu-small",
                            "lifecycle": {"expirationTime": _timestamp(now - timedelta(minutes=1))}},
         {"phase": "Failed", "message": "ImagePullBackOff"}),
    ]
    for namespace, name, spec, status in servers:
        kube.create(DEVSERVERS, {"apiVersion": "devservers.io/v1", "kind": "DevServer",
                                 "metadata": {"name": name, "namespace": namespace}, "spec": spec},
                    namespace=namespace)
        if status:
            kube.patch(DEVSERVERS, name, {"status": status}, namespace=namespace, subresource="status")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    directory = tmp_path_factory.mktemp("fast-list")
    with LocalCluster(kubelet=False) as cluster:
        apply_crds_and_flavors(cluster.kubeconfig)
        kube = Kube(load_kubeconfig(cluster.kubeconfig))
        now = datetime.now(UTC).replace(microsecond=0)
        _populate(kube, now)
        kube.close()
        token = Path(cluster.kubeconfig_for(directory / "token.kubeconfig", namespace=HOME))
        # 20m30s later: every age and deadline is then shown in minutes, whichever second the objects got.
        scene = Scene(cluster, directory, token, token, directory / "plugin-runs",
                      now + timedelta(minutes=20, seconds=30))
        scene.exec = scene.variant("exec.kubeconfig", user=scene.exec_user(cluster.token))
        yield scene


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
