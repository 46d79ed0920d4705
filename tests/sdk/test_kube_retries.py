"""The SDK's retries, provoked for real on a private local cluster (so its faults reach no other test).

Two sources of trouble, both on the wire:

* the local cluster's fault injection (``LocalCluster.set_faults``): 500s, 429s with ``Retry-After`` and
  409s answered *before* the request is handled, cut watch streams, compaction that makes resumed
  watches 410 Gone. Its request counters (``request_counts``) say exactly how many tries went out;
* a TLS proxy in front of the cluster that forwards a request and then loses its answer (a 504 from a
  gateway, or a dropped connection) once the cluster has already committed the write. The fault injector
  cannot do that, and it is the case that makes creates dangerous to retry.

Pauses between tries go through the policy's ``sleep`` and ``clock``: the tests record them (and let a
fake clock run) instead of measuring time.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from devservers_sdk.client import DevServerClient
from devservers_sdk.contract import CREATE_TOKEN_ANNOTATION
from devservers_sdk.errors import (
    AlreadyExistsError,
    ClusterFailingError,
    ConfigurationError,
    ConflictError,
    DevServerNotFoundError,
    InvalidSpecError,
    NotFoundError,
    ServerError,
)
from devservers_sdk.kube import DEVSERVERS, Kube, Resource, RetryPolicy
from devservers_sdk.localcluster import tls
from devservers_sdk.localcluster.cluster import LocalCluster
from devservers_sdk.localcluster.pytest_plugin import wait_established
from devservers_sdk.settings import load_kubeconfig
from tests.threaded_http import ThreadedHttpServer

pytestmark = pytest.mark.emulator_only

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).with_name("kubectl"))
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")


# -- fixtures ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def flaky() -> Iterator[LocalCluster]:
    """A cluster of this module's own (no kubelet: only the API is under test), with the CRDs."""
    with LocalCluster(kubelet=False) as cluster:
        subprocess.run([KUBECTL, "--kubeconfig", cluster.kubeconfig, "apply", "-f", str(ROOT / "crds")],
                       check=True, capture_output=True, timeout=120)
        wait_established(cluster.kubeconfig, "devservers.devservers.io")
        yield cluster


@pytest.fixture
def faulty(flaky: LocalCluster) -> Iterator[LocalCluster]:
    """The module's cluster, with its faults switched off again after each test (not ``cluster``: that is the
    cluster of every other SDK test, which fixtures such as ``namespace`` and ``crds`` build on)."""
    try:
        yield flaky
    finally:
        flaky.set_faults("")


@dataclass
class FakeTime:
    """The policy's clock and sleep: pauses are recorded and move the clock, nothing waits."""

    now: float = 1000.0
    pauses: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def policy(fake: FakeTime, **overrides: Any) -> RetryPolicy:
    return RetryPolicy(sleep=fake.sleep, clock=fake.clock, **overrides)


def transport(kubeconfig: str, retry: RetryPolicy) -> Kube:
    return Kube(load_kubeconfig(kubeconfig), retry=retry)


def counted(cluster: LocalCluster, before: dict[str, int], key: str) -> int:
    return cluster.request_counts().get(key, 0) - before.get(key, 0)


def injected(cluster: LocalCluster, before: dict[str, int]) -> dict[str, int]:
    """Faults injected since ``before`` (the cluster's counters add up over the whole module)."""
    now = cluster.fault_counts()
    return {key: now[key] - before.get(key, 0) for key in now}


def devserver(name: str) -> dict[str, Any]:
    return {"apiVersion": "devservers.io/v1", "kind": "DevServer", "metadata": {"name": name},
            "spec": {"owner": "alice", "flavor": "cpu-small"}}


def configmap(name: str, value: str = "0") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"value": value}}


# -- reads -------------------------------------------------------------------------------------------------

def test_reads_succeed_under_30_percent_500s(faulty: LocalCluster) -> None:
    fake = FakeTime()
    kube = transport(faulty.kubeconfig, policy(fake, attempts=8))
    kube.create(CONFIGMAPS, configmap("read-me"), namespace="default")
    faulty.set_faults("error=0.3,seed=7")
    before, faults_before = faulty.request_counts(), faulty.fault_counts()
    for _ in range(40):
        assert kube.get(CONFIGMAPS, "read-me", namespace="default")["data"] == {"value": "0"}
        assert any(item["metadata"]["name"] == "read-me"
                   for item in kube.list(CONFIGMAPS, namespace="default")["items"])
    errors = injected(faulty, faults_before)["500"]
    assert errors >= 10, errors  # the faults really hit
    # Every injected 500 cost exactly one more try, and nothing else was sent.
    sent = counted(faulty, before, "get configmaps") + counted(faulty, before, "list configmaps")
    assert sent == 80 + errors
    assert len(fake.pauses) == errors

    without = transport(faulty.kubeconfig, RetryPolicy.never())
    with pytest.raises(ServerError, match="500"):
        for _ in range(40):
            without.get(CONFIGMAPS, "read-me", namespace="default")


def test_throttled_reads_wait_as_long_as_retry_after_says(faulty: LocalCluster) -> None:
    fake = FakeTime()
    kube = transport(faulty.kubeconfig, policy(fake, attempts=4, backoff=0.01))
    faulty.set_faults("throttle=1,retry_after=3")
    with pytest.raises(ClusterFailingError) as caught:
        kube.list(CONFIGMAPS, namespace="default")
    # The policy's own pauses would be at most 0.01, 0.02, 0.04 s.
    assert fake.pauses == [3.0, 3.0, 3.0]
    assert caught.value.attempts == 4 and caught.value.status == 429

    # A Retry-After longer than what is left of the total is not waited for: give up at once.
    short = FakeTime()
    with pytest.raises(ServerError, match="throttled") as first:
        transport(faulty.kubeconfig, policy(short, total=2)).list(CONFIGMAPS, namespace="default")
    assert short.pauses == [] and not isinstance(first.value, ClusterFailingError)


def test_giving_up_names_the_server_the_answers_and_the_time(faulty: LocalCluster) -> None:
    fake = FakeTime()
    kube = transport(faulty.kubeconfig, policy(fake))
    faulty.set_faults("error=1")
    before = faulty.request_counts()
    with pytest.raises(ClusterFailingError) as caught:
        kube.get(DEVSERVERS, "mydev", namespace="alice")
    error = caught.value
    assert counted(faulty, before, "get devservers") == 5 == error.attempts
    assert error.elapsed == pytest.approx(sum(fake.pauses))
    message = str(error)
    assert message.startswith(f"The API server at {faulty.url} kept answering 500 after 5 attempts over ")
    assert "DevServer 'mydev' in namespace 'alice'" in message and "etcdserver: leader changed" in message
    assert message.endswith("try again later or check the cluster.")
    # Pauses double from 0.5 s, each between half and all of its ceiling.
    for pause, ceiling in zip(fake.pauses, [0.5, 1, 2, 4], strict=True):
        assert ceiling / 2 <= pause <= ceiling


def test_total_time_bounds_the_retries(faulty: LocalCluster) -> None:
    fake = FakeTime()
    kube = transport(faulty.kubeconfig, policy(fake, attempts=100, total=10))
    faulty.set_faults("error=1")
    with pytest.raises(ClusterFailingError) as caught:
        kube.get(DEVSERVERS, "mydev", namespace="alice")
    assert caught.value.elapsed <= 10 and sum(fake.pauses) <= 10
    assert caught.value.attempts < 10


def test_devctl_says_the_cluster_is_failing(faulty: LocalCluster) -> None:
    faulty.set_faults("error=1")
    # This checkout's devctl, not the one the environment installed (a worktree beside the installed clone).
    env = {**os.environ, "DEVSERVERS_RETRY_ATTEMPTS": "3",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "cli"), str(ROOT)])}
    result = subprocess.run([sys.executable, "-m", "devservers_cli", "list", "--kubeconfig", faulty.kubeconfig,
                             "-n", "alice"], capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert result.returncode == 1, result
    assert result.stderr.startswith(f"Error: The API server at {faulty.url} kept answering 500 after 3 "
                                    f"attempts over "), result.stderr
    assert "try again later or check the cluster" in result.stderr
    assert "Traceback" not in result.stderr


# -- what is never retried ---------------------------------------------------------------------------------

def test_client_errors_are_sent_once(faulty: LocalCluster) -> None:
    fake = FakeTime()
    kube = transport(faulty.kubeconfig, policy(fake))
    created = kube.create(DEVSERVERS, devserver("once"), namespace="default")
    before = faulty.request_counts()
    with pytest.raises(DevServerNotFoundError):
        kube.get(DEVSERVERS, "ghost", namespace="default")
    with pytest.raises(AlreadyExistsError):
        kube.create(DEVSERVERS, devserver("once"), namespace="default")
    bad = devserver("bad")
    bad["spec"]["mode"] = "huge"
    with pytest.raises(InvalidSpecError):
        kube.create(DEVSERVERS, bad, namespace="default")
    with pytest.raises(InvalidSpecError):
        kube.list(DEVSERVERS, namespace="default", label_selector="a in (")
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "spec": {"image": "a:1"}}
    kube.patch(DEVSERVERS, "once", stale, namespace="default")
    with pytest.raises(ConflictError):
        kube.patch(DEVSERVERS, "once", stale, namespace="default")
    with pytest.raises(DevServerNotFoundError):
        kube.delete(DEVSERVERS, "ghost", namespace="default")
    assert counted(faulty, before, "get devservers") == 1
    assert counted(faulty, before, "create devservers") == 2
    assert counted(faulty, before, "list devservers") == 1
    assert counted(faulty, before, "patch devservers") == 2
    assert counted(faulty, before, "delete devservers") == 1
    assert fake.pauses == []


def test_a_conditional_write_leaves_its_409_to_the_caller(faulty: LocalCluster) -> None:
    fake = FakeTime()
    kube = transport(faulty.kubeconfig, policy(fake))
    created = kube.create(CONFIGMAPS, configmap("guarded"), namespace="default")
    faulty.set_faults("conflict=1")
    before = faulty.request_counts()
    guarded = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "data": {"value": "1"}}
    with pytest.raises(ConflictError):
        kube.patch(CONFIGMAPS, "guarded", guarded, namespace="default")
    assert counted(faulty, before, "patch configmaps") == 1


def test_a_generate_name_create_is_not_repeated_after_a_500(faulty: LocalCluster) -> None:
    fake = FakeTime()
    kube = transport(faulty.kubeconfig, policy(fake))
    faulty.set_faults("error=1")
    before = faulty.request_counts()
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}
    with pytest.raises(ServerError) as caught:
        kube.create(CONFIGMAPS, manifest, namespace="default")
    assert not isinstance(caught.value, ClusterFailingError)
    assert counted(faulty, before, "create configmaps") == 1


# -- idempotent writes -------------------------------------------------------------------------------------

def test_pure_sets_are_applied_again_after_409_and_500(faulty: LocalCluster) -> None:
    fake = FakeTime()
    kube = transport(faulty.kubeconfig, policy(fake, attempts=10))
    kube.create(CONFIGMAPS, configmap("setme"), namespace="default")
    faulty.set_faults("conflict=0.3,error=0.2,seed=3")
    before, faults_before = faulty.request_counts(), faulty.fault_counts()
    for value in range(20):
        patched = kube.patch(CONFIGMAPS, "setme", {"data": {"value": str(value)}}, namespace="default")
        assert patched["data"] == {"value": str(value)}
    faults = injected(faulty, faults_before)
    assert faults["409"] >= 3 and faults["500"] >= 3, faults
    assert counted(faulty, before, "patch configmaps") == 20 + faults["409"] + faults["500"]


# -- answers lost after the write was committed -------------------------------------------------------------

class LosingProxy(ThreadedHttpServer):
    """A TLS reverse proxy to the cluster that can lose the answer of requests it has forwarded.

    ``lose(method, path_part, how)`` arms it for the next matching request: it is forwarded, the cluster
    handles it, and the client gets ``how``: ``"504"`` (a gateway that timed out) or ``"reset"`` (the
    connection dropped before any answer).
    """

    def __init__(self, upstream: LocalCluster, workdir: Path) -> None:
        super().__init__()
        self.upstream = upstream
        self.workdir = workdir
        self.certificate = tls.generate()
        self.armed: list[tuple[str, str, str]] = []
        self.lost = 0
        self._session: aiohttp.ClientSession | None = None

    def lose(self, method: str, path_part: str, how: str) -> None:
        self.armed.append((method, path_part, how))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {key: value for key, value in request.headers.items()
                   if key.lower() in ("authorization", "content-type", "accept")}
        async with self._session.request(request.method, self.upstream.url + request.path_qs, data=body or None,
                                         headers=headers) as answer:
            payload = await answer.read()
            status, content_type = answer.status, answer.headers.get("Content-Type", "application/json")
        for armed in self.armed:
            method, path_part, how = armed
            if request.method == method and path_part in request.path:
                self.armed.remove(armed)
                self.lost += 1
                if how == "reset":
                    assert request.transport is not None
                    request.transport.abort()  # the client sees the connection drop, no answer
                    return web.Response(status=204)
                return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                          "reason": "Timeout", "code": 504,
                                          "message": "the gateway timed out waiting for the API server"},
                                         status=504)
        return web.Response(status=status, body=payload, headers={"Content-Type": content_type})

    def _ssl_context(self) -> ssl.SSLContext:
        return self.certificate.server_context(self.workdir / "proxy-pki")

    async def _open(self) -> None:
        upstream_ca = ssl.create_default_context(cadata=self.upstream.runtime.certificate.ca_pem.decode())  # type: ignore[union-attr]
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=upstream_ca))

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def kubeconfig(self) -> str:
        import base64

        document = yaml.safe_load(Path(self.upstream.kubeconfig).read_text())
        cluster = document["clusters"][0]["cluster"]
        cluster["server"] = self.url
        cluster["certificate-authority-data"] = base64.b64encode(self.certificate.ca_pem).decode()
        path = self.workdir / "proxy-kubeconfig"
        path.write_text(yaml.safe_dump(document))
        return str(path)


@pytest.fixture
def proxy(faulty: LocalCluster, tmp_path: Path) -> Iterator[LosingProxy]:
    with LosingProxy(faulty, tmp_path) as losing:
        yield losing


@pytest.mark.parametrize("how", ["504", "reset"])
def test_a_create_whose_answer_was_lost_is_not_duplicated(faulty: LocalCluster, proxy: LosingProxy,
                                                          how: str) -> None:
    fake = FakeTime()
    kube = transport(proxy.kubeconfig(), policy(fake))
    name = f"lost-{how}"
    proxy.lose("POST", "/devservers", how)
    before = faulty.request_counts()
    created = kube.create(DEVSERVERS, devserver(name), namespace="default")
    assert proxy.lost == 1
    assert counted(faulty, before, "create devservers") == 2  # committed, then retried into AlreadyExists
    assert created["metadata"]["name"] == name
    token = created["metadata"]["annotations"][CREATE_TOKEN_ANNOTATION]
    items = transport(faulty.kubeconfig, RetryPolicy.never()).list(DEVSERVERS, namespace="default")["items"]
    assert [item["metadata"]["uid"] for item in items if item["metadata"]["name"] == name] == \
        [created["metadata"]["uid"]]
    assert len(token) == 16


def test_a_name_taken_by_someone_else_is_still_already_exists(faulty: LocalCluster, proxy: LosingProxy) -> None:
    theirs = transport(faulty.kubeconfig, RetryPolicy.never()).create(DEVSERVERS, devserver("taken"),
                                                                       namespace="default")
    fake = FakeTime()
    proxy.lose("POST", "/devservers", "504")  # this try is refused (the name is taken), then its answer is lost
    with pytest.raises(AlreadyExistsError, match="DevServer 'taken'"):
        transport(proxy.kubeconfig(), policy(fake)).create(DEVSERVERS, devserver("taken"), namespace="default")
    assert proxy.lost == 1 and len(fake.pauses) == 1
    kept = transport(faulty.kubeconfig, RetryPolicy.never()).get(DEVSERVERS, "taken", namespace="default")
    assert kept["metadata"]["uid"] == theirs["metadata"]["uid"]


def test_a_delete_whose_answer_was_lost_succeeds(faulty: LocalCluster, proxy: LosingProxy) -> None:
    fake = FakeTime()
    kube = transport(proxy.kubeconfig(), policy(fake))
    kube.create(CONFIGMAPS, configmap("doomed"), namespace="default")
    proxy.lose("DELETE", "/configmaps/doomed", "504")
    before = faulty.request_counts()
    assert kube.delete(CONFIGMAPS, "doomed", namespace="default") is None
    assert counted(faulty, before, "delete configmaps") == 2
    with pytest.raises(NotFoundError):
        kube.get(CONFIGMAPS, "doomed", namespace="default")


def test_client_create_through_a_lossy_gateway(faulty: LocalCluster, proxy: LosingProxy) -> None:
    """The whole client path (flavor check, create) through the proxy and 20 % 500s: one DevServer."""
    subprocess.run([KUBECTL, "--kubeconfig", faulty.kubeconfig, "apply", "-f",
                    str(ROOT / "examples" / "flavors" / "cpu-small.yaml")], check=True, capture_output=True,
                   timeout=60)
    faulty.set_faults("error=0.2,seed=11")
    proxy.lose("POST", "/devservers", "reset")
    client = DevServerClient(kubeconfig=proxy.kubeconfig(), namespace="default", owner="alice",
                             retry=RetryPolicy(backoff=0.01, attempts=8))
    server = client.create("viaproxy", flavor="cpu-small")
    assert server.name == "viaproxy"
    faulty.set_faults("")
    assert [s.name for s in client.list()].count("viaproxy") == 1


def test_extend_whose_answer_was_lost_extends_once(faulty: LocalCluster, proxy: LosingProxy) -> None:
    """The committed patch is retried into a 409 (its own write moved the resourceVersion): no second hour."""
    deadline = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    manifest = devserver("stretch")
    manifest["spec"]["lifecycle"] = {"expirationTime": deadline.strftime("%Y-%m-%dT%H:%M:%SZ")}
    transport(faulty.kubeconfig, RetryPolicy.never()).create(DEVSERVERS, manifest, namespace="default")
    client = DevServerClient(kubeconfig=proxy.kubeconfig(), namespace="default", owner="alice",
                             retry=RetryPolicy(backoff=0.01))
    proxy.lose("PATCH", "/devservers/stretch", "504")
    before = faulty.request_counts()
    extended = client.extend("stretch", by="1h")
    assert proxy.lost == 1 and counted(faulty, before, "patch devservers") == 2
    assert extended.spec.lifecycle.expiration_time == deadline + timedelta(hours=1)
    assert client.get("stretch").spec.lifecycle.expiration_time == deadline + timedelta(hours=1)


# -- watches ------------------------------------------------------------------------------------------------

def test_follow_resumes_cut_watches_without_losing_events(faulty: LocalCluster) -> None:
    kube = transport(faulty.kubeconfig, RetryPolicy(backoff=0.05))
    start = kube.create(CONFIGMAPS, configmap("ticker"), namespace="default")
    faulty.set_faults("watch_cut=0.2,seed=5")
    before = faulty.request_counts()
    events = kube.follow(CONFIGMAPS, namespace="default", field_selector="metadata.name=ticker",
                         resource_version=start["metadata"]["resourceVersion"], seen=[start], timeout=30)
    seen: list[str] = []

    def writer() -> None:
        for value in range(1, 6):
            time.sleep(0.3)  # longer than a stream lives: every change comes on a resumed stream
            kube.patch(CONFIGMAPS, "ticker", {"data": {"value": str(value)}}, namespace="default")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for event, obj in events:
            if event == "MODIFIED":
                seen.append(obj["data"]["value"])
            if seen[-1:] == ["5"]:
                break
    finally:
        events.close()
        thread.join()
    assert seen == ["1", "2", "3", "4", "5"]
    assert counted(faulty, before, "watch configmaps") >= 3  # resumed, not one long stream
    assert counted(faulty, before, "list configmaps") == 0  # resumed from the resourceVersion, no relist


def test_follow_relists_after_410_and_reports_what_went(faulty: LocalCluster) -> None:
    kube = transport(faulty.kubeconfig, RetryPolicy(backoff=0.05))
    gone = kube.create(CONFIGMAPS, configmap("gone"), namespace="default")
    stays = kube.create(CONFIGMAPS, configmap("stays"), namespace="default")
    version = stays["metadata"]["resourceVersion"]
    kube.delete(CONFIGMAPS, "gone", namespace="default")
    kube.patch(CONFIGMAPS, "stays", {"data": {"value": "1"}}, namespace="default")
    kube.create(CONFIGMAPS, configmap("new"), namespace="default")
    runtime = faulty.runtime
    assert runtime is not None
    faulty.call(runtime.api.store.compact)  # the history after `version` is gone: resuming there is 410
    before = faulty.request_counts()
    events = kube.follow(CONFIGMAPS, namespace="default", resource_version=version, seen=[gone, stays],
                         timeout=30)
    changes: dict[str, str] = {}
    for event, obj in events:
        if event != "BOOKMARK":
            changes[obj["metadata"]["name"]] = event
        if {"gone", "stays", "new"} <= set(changes):
            break
    events.close()
    assert changes["gone"] == "DELETED" and changes["stays"] == "MODIFIED" and changes["new"] == "ADDED"
    assert counted(faulty, before, "list configmaps") == 1


def test_wait_rides_out_cut_watches_and_500s(faulty: LocalCluster) -> None:
    kube = transport(faulty.kubeconfig, RetryPolicy(backoff=0.05))
    kube.create(DEVSERVERS, devserver("waited"), namespace="default")
    client = DevServerClient(kubeconfig=faulty.kubeconfig, namespace="default",
                             retry=RetryPolicy(backoff=0.05, attempts=8))
    faulty.set_faults("error=0.2,watch_cut=0.3,seed=2")
    faults_before = faulty.fault_counts()

    def operator() -> None:
        time.sleep(1.5)
        kube.patch(DEVSERVERS, "waited", {"status": {"phase": "Running"}}, namespace="default",
                   subresource="status")

    thread = threading.Thread(target=operator)
    thread.start()
    try:
        assert client.wait("waited", timeout=30).status.phase == "Running"
    finally:
        thread.join()
    assert injected(faulty, faults_before)["watch_cut"] >= 2


def test_retry_settings_from_the_environment() -> None:
    assert RetryPolicy.from_env({}) == RetryPolicy()
    assert RetryPolicy.from_env({"DEVSERVERS_RETRY_ATTEMPTS": "1", "DEVSERVERS_RETRY_TOTAL": "4.5"}) == \
        RetryPolicy(attempts=1, total=4.5)
    with pytest.raises(ConfigurationError, match="DEVSERVERS_RETRY_ATTEMPTS='many' is not a number"):
        RetryPolicy.from_env({"DEVSERVERS_RETRY_ATTEMPTS": "many"})
    with pytest.raises(ConfigurationError, match="at least 1"):
        RetryPolicy.from_env({"DEVSERVERS_RETRY_ATTEMPTS": "0"})
