"""Experiment tracking end to end: the DDP example launched with ``devctl launch`` on a 2-pod DevServer whose
tracking was set with ``devctl create --mlflow ... --wandb-project ...``, recorded by a real MLflow tracking
server (the ``mlflow`` package, SQLite, on loopback) and by W&B in offline mode, then read back.

The local cluster's pods are processes of this machine, so they reach the loopback server. The server sits
behind a small proxy that refuses any request without the token of the Secret ``mlflow-creds``: the runs
arriving at all proves the credentials reached the script through the Secret. The token and the W&B key are
then searched for everywhere a person or a log shipper would look, as tests/security/test_secrets.py does
for kubeconfig tokens, and must be found nowhere.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devservers_sdk.client import DevServerClient
from devservers_sdk.localcluster.pytest_plugin import create_test_namespace, wait_for
from tests.cli.devctl_support import Outcome, make_devctl
from tests.launch.conftest import EXAMPLE, FLAVOR, READY_TIMEOUT, kubectl
from tests.platform_fixture import Platform
from tests.security.test_secrets import leaks

pytestmark = pytest.mark.slow

TOKEN = "mlflow-token-" + "5" * 32
WANDB_KEY = "wandb-key-" + "8" * 30
EPOCHS = 4
EXPERIMENT = "ddp-tracking"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- a real MLflow server behind a token check ---------------------------------------------------------------

@dataclass
class TokenProxy:
    """Forwards to the MLflow server only what carries ``Authorization: Bearer <TOKEN>``; counts both kinds."""

    backend: str
    port: int = field(default_factory=_free_port)
    allowed: int = 0
    refused: list[str] = field(default_factory=list)

    def start(self) -> None:
        from aiohttp import ClientSession, web

        async def forward(request: web.Request) -> web.StreamResponse:
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.refused.append(f"{request.method} {request.path_qs}")
                return web.Response(status=401, text="missing or wrong token")
            self.allowed += 1
            body = await request.read()
            headers = {key: value for key, value in request.headers.items()
                       if key.lower() in ("content-type", "accept")}
            async with ClientSession() as session, session.request(
                    request.method, self.backend + request.path_qs, data=body, headers=headers) as answer:
                return web.Response(status=answer.status, body=await answer.read(),
                                    content_type=answer.content_type)

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", forward)
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert started.wait(30), "the token proxy did not start"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


@dataclass
class MlflowServer:
    uri: str
    proxy: TokenProxy
    log: Path


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server`` with a SQLite store on a free loopback port (one worker), stopped afterwards."""
    home = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log = home / "server.log"
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
               "--default-artifact-root", str(home / "artifacts")]
    with log.open("wb") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=home,
                                  start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    proxy = TokenProxy(uri)
    try:
        def healthy() -> bool:
            assert server.poll() is None, f"mlflow server exited {server.returncode}:\n{log.read_text()[-3000:]}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    pass
            except OSError:
                return False
            from mlflow import MlflowClient
            try:
                MlflowClient(tracking_uri=uri).search_experiments()
            except Exception:
                return False
            return True

        # A cold start imports a great deal (Flask, SQLAlchemy, the migrations); generous for a busy machine.
        wait_for(healthy, timeout=240, interval=1, message="the MLflow server to answer")
        proxy.start()
        yield MlflowServer(uri, proxy, log)
    finally:
        if getattr(proxy, "_thread", None) is not None:
            proxy.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(30)


# -- one launch, read back by both tools ---------------------------------------------------------------------

@dataclass
class Launched:
    namespace: str
    kubeconfig: str
    client: DevServerClient
    devctl: Any
    outcome: Outcome
    describe: str
    commit: str
    image: str


def _git_checkout(folder: Path) -> str:
    folder.mkdir()
    shutil.copyfile(EXAMPLE, folder / "train_ddp.py")
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run([*git, "add", "train_ddp.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the DDP example"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def launched(launch_platform: Platform, mlflow_server: MlflowServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    kubeconfig = launch_platform.kubeconfig
    namespace = create_test_namespace(kubeconfig, "tracking-launch")
    client = DevServerClient(namespace=namespace, kubeconfig=kubeconfig)
    devctl = make_devctl("process", kubeconfig)
    try:
        kubectl(kubeconfig, "-n", namespace, "create", "secret", "generic", "mlflow-creds",
                f"--from-literal=MLFLOW_TRACKING_TOKEN={TOKEN}")
        kubectl(kubeconfig, "-n", namespace, "create", "secret", "generic", "wandb-key",
                f"--from-literal=WANDB_API_KEY={WANDB_KEY}")
        created = devctl("-n", namespace, "create", "ddp", "--flavor", FLAVOR, "--time", "1h", "--distributed",
                         "--world-size", "2", "--nprocs-per-node", "2", "--backend", "gloo",
                         "--mlflow", f"http://127.0.0.1:{mlflow_server.proxy.port}", "--mlflow-secret",
                         "mlflow-creds", "--mlflow-experiment", EXPERIMENT, "--wandb-project", "ddp-offline",
                         "--wandb-secret", "wandb-key", "--wait", "--timeout", str(int(READY_TIMEOUT)))
        assert created.exit_code == 0, str(created)
        checkout = tmp_path_factory.mktemp("code") / "project"
        commit = _git_checkout(checkout)
        outcome = devctl("-n", namespace, "launch", "ddp", "--workdir", str(checkout), "-e", "WANDB_MODE=offline",
                         "--", "python", "train_ddp.py", "--epochs", str(EPOCHS))
        assert outcome.exit_code == 0, str(outcome)
        describe = devctl("-n", namespace, "describe", "ddp")
        assert describe.exit_code == 0, str(describe)
        image = client.get("ddp").spec.image or _pod_image(client)
        yield Launched(namespace, kubeconfig, client, devctl, outcome, describe.stdout, commit, image)
    finally:
        kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)
        client.close()


def _pod_image(client: DevServerClient) -> str:
    pods = client._pods("ddp")
    return str(pods[0]["spec"]["containers"][0]["image"])


def _printed_losses(stdout: str) -> list[float]:
    # Global rank 0's lines; with several processes per pod, launch also names the node ("[rank 0 node 0]").
    return [float(loss) for loss in re.findall(r"^\[rank 0(?: node 0)?\] epoch \d+ loss ([\d.]+)$", stdout,
                                               re.MULTILINE)]


def test_mlflow_gets_one_run_from_rank_0_with_the_loss_per_epoch_and_where_it_came_from(
        launched: Launched, mlflow_server: MlflowServer) -> None:
    from mlflow import MlflowClient

    mlflow = MlflowClient(tracking_uri=mlflow_server.uri)  # straight to the server, not through the proxy
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, "the experiment named by --mlflow-experiment was not created"
    runs = mlflow.search_runs([experiment.experiment_id])
    assert len(runs) == 1, f"one run per launch (rank 0 only), got {len(runs)}"
    run = runs[0]
    assert run.info.status == "FINISHED"

    history = sorted(mlflow.get_metric_history(run.info.run_id, "loss"), key=lambda metric: metric.step)
    assert [metric.step for metric in history] == list(range(1, EPOCHS + 1))
    losses = [metric.value for metric in history]
    assert losses[-1] < losses[0], losses
    printed = _printed_losses(launched.outcome.stdout)
    assert [round(loss, 4) for loss in losses] == printed, (losses, printed)

    tags = run.data.tags
    group = tags.get("devservers.run_group", "")
    assert re.fullmatch(r"ddp-[0-9a-f]{8}", group), tags
    expected = {
        "devservers.devserver": "ddp", "devservers.namespace": launched.namespace,
        "devservers.owner": launched.client.owner, "devservers.flavor": FLAVOR, "devservers.image": launched.image,
        "devservers.world_size": "2", "devservers.nprocs_per_node": "2", "devservers.processes": "4",
        "devservers.git_commit": launched.commit, "mlflow.source.git.commit": launched.commit,
    }
    assert {key: tags.get(key) for key in expected} == expected, tags
    assert run.data.params.get("epochs") == str(EPOCHS) and run.data.params.get("backend") == "gloo"

    # The credentials were used: every request the pods made carried the Secret's token.
    assert mlflow_server.proxy.allowed > 0 and mlflow_server.proxy.refused == [], mlflow_server.proxy.refused


def _wandb_records(transaction_log: bytes) -> list[Any]:
    """The records of a W&B run file (``run-<id>.wandb``): after a 7-byte header, LevelDB's log format (32 KiB
    blocks of chunks: CRC32, length, type FULL/FIRST/MIDDLE/LAST), each whole record a protobuf ``Record``."""
    from wandb.proto import wandb_internal_pb2

    block, position, pending, records = 32768, 7, b"", []
    while position + 7 <= len(transaction_log):
        if block - position % block < 7:  # a block's tail too short for a chunk header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", transaction_log[position:position + 7])
        position += 7
        pending += transaction_log[position:position + length]
        position += length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_wandb_offline_leaves_the_run_in_the_home_with_metrics_config_and_group(launched: Launched) -> None:
    listing = launched.client.exec("ddp", ["/bin/sh", "-c", "cd && ls -d wandb/offline-run-*/run-*.wandb"],
                                   rank=0, check=True).stdout
    files = [line for line in str(listing).splitlines() if line]
    assert len(files) == 1, f"one offline run in rank 0's home, found {files}"

    def finished_records() -> list[Any] | None:
        # W&B's service process writes the file; the run's exit record is the last it writes.
        encoded = launched.client.exec("ddp", ["/bin/sh", "-c", f"cd && base64 {files[0]}"], rank=0,
                                       check=True).stdout
        found = _wandb_records(base64.b64decode(str(encoded)))
        return found if any(record.WhichOneof("record_type") == "exit" for record in found) else None

    records = wait_for(finished_records, timeout=60, interval=1, message=f"the exit record in {files[0]}")
    kinds = [record.WhichOneof("record_type") for record in records]
    runs = [record.run for record in records if record.WhichOneof("record_type") == "run"]
    assert runs, kinds
    run = runs[0]
    assert run.project == "ddp-offline"
    assert re.fullmatch(r"ddp-[0-9a-f]{8}", run.run_group), run.run_group
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["epochs"] == EPOCHS and config["lr"] == 0.1
    assert config["devservers"]["devserver"] == "ddp" and config["devservers"]["run_group"] == run.run_group
    assert config["devservers"]["git_commit"] == launched.commit
    history = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
               for record in records if record.WhichOneof("record_type") == "history"]
    losses = [step["loss"] for step in history if "loss" in step]
    assert [step["_step"] for step in history if "loss" in step] == list(range(1, EPOCHS + 1)), (kinds, history)
    assert [round(loss, 4) for loss in losses] == _printed_losses(launched.outcome.stdout)
    # No other rank started a run.
    others = launched.client.exec("ddp", ["/bin/sh", "-c", "cd && ls -d wandb/offline-run-* 2>/dev/null | wc -l"],
                                  rank=1, check=True).stdout
    assert str(others).strip() == "0"


def test_credentials_come_from_their_secret_and_are_found_nowhere_else(
        launched: Launched, launch_platform: Platform, mlflow_server: MlflowServer) -> None:
    def get(*args: str) -> str:
        return kubectl(launched.kubeconfig, "-n", launched.namespace, "get", *args, "-o", "json").stdout

    statefulset = json.loads(get("statefulset", "ddp"))
    env = {item["name"]: item for item in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-creds"
    assert env["WANDB_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "wandb-key", "key": "WANDB_API_KEY"}
    describe_yaml = launched.devctl("-n", launched.namespace, "describe", "ddp", "-o", "yaml")
    assert "Tracking:" in launched.describe and EXPERIMENT in launched.describe
    assert "Secret mlflow-creds" in launched.describe and "Secret wandb-key" in launched.describe

    from mlflow import MlflowClient

    places = {
        "the DevServer": get("devserver", "ddp"),
        "the StatefulSet": json.dumps(statefulset),
        "the pods": get("pods"),
        "the Events": get("events"),
        "devctl describe": launched.describe,
        "devctl describe -o yaml": describe_yaml.stdout + describe_yaml.stderr,
        "devctl launch's output": launched.outcome.stdout + launched.outcome.stderr,
        "the operator's log": launch_platform.operator_log.read_text(errors="replace")
        if launch_platform.operator_log.exists() else "",
    }
    mlflow = MlflowClient(tracking_uri=mlflow_server.uri)
    for experiment in mlflow.search_experiments():
        for run in mlflow.search_runs([experiment.experiment_id]):
            places[f"the MLflow run {run.info.run_id}"] = json.dumps({"tags": run.data.tags,
                                                                      "params": run.data.params})
    found = leaks({"the MLflow token": TOKEN, "the W&B key": WANDB_KEY}, places)
    assert found == [], found
    assert all(places[where] for where in ("the DevServer", "the StatefulSet", "devctl describe")), \
        "a place searched was empty, so the search proved nothing"

