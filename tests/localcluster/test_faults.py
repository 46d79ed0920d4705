"""Fault injection: the emulator can play a flaky API server, and says how often it did."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client, config, watch

from devservers_sdk.localcluster import LocalCluster
from devservers_sdk.localcluster.apiserver.faults import FaultSettings

pytestmark = pytest.mark.emulator_only


@pytest.fixture(scope="module")
def flaky() -> Iterator[LocalCluster]:
    # A cluster of its own: faults must not leak into other tests' cluster.
    with LocalCluster(kubelet=False) as cluster:
        yield cluster


@pytest.fixture
def core(flaky: LocalCluster) -> Iterator[client.CoreV1Api]:
    flaky.set_faults(FaultSettings())
    api = client.CoreV1Api(config.new_client_from_config(flaky.kubeconfig))
    yield api
    flaky.set_faults(FaultSettings())
    api.api_client.close()


def test_settings_parse_and_refuse_nonsense() -> None:
    parsed = FaultSettings.parse("error=0.05, throttle=0.02,conflict=0.01,latency=0.01,watch_cut=5,seed=3")
    assert (parsed.error, parsed.throttle, parsed.conflict, parsed.latency, parsed.watch_cut, parsed.seed) == \
        (0.05, 0.02, 0.01, 0.01, 5.0, 3)
    for bad, says in (("errors=0.1", "unknown fault setting"), ("error=lots", "needs a number"),
                      ("error=2", "between 0 and 1"), ("latency=-1", "must not be negative")):
        with pytest.raises(ValueError, match=says):
            FaultSettings.parse(bad)


def test_errors_and_throttling_hit_resources_not_discovery(flaky: LocalCluster, core: client.CoreV1Api) -> None:
    flaky.set_faults("error=1")
    with pytest.raises(client.ApiException) as failed:
        core.list_namespace()
    assert failed.value.status == 500 and "injected fault" in failed.value.body
    # Discovery is never faulted: clients cache it and we would be testing their cache.
    assert client.CoreApi(core.api_client).get_api_versions().versions == ["v1"]

    flaky.set_faults("throttle=1,retry_after=1")
    with pytest.raises(client.ApiException) as throttled:
        core.list_namespace()
    assert throttled.value.status == 429
    assert throttled.value.headers["Retry-After"] == "1"

    flaky.set_faults(FaultSettings())
    assert any(ns.metadata.name == "default" for ns in core.list_namespace().items)
    counts = flaky.fault_counts()
    assert counts["500"] >= 1 and counts["429"] >= 1


def test_conflicts_hit_writes_only(flaky: LocalCluster, core: client.CoreV1Api) -> None:
    flaky.set_faults("conflict=1")
    assert core.read_namespace("default").metadata.name == "default"
    with pytest.raises(client.ApiException) as conflicted:
        core.create_namespaced_config_map("default", {"metadata": {"name": "racy"}})
    assert conflicted.value.status == 409 and "Conflict" in conflicted.value.body
    flaky.set_faults(FaultSettings())
    with pytest.raises(client.ApiException) as missing:
        core.read_namespaced_config_map("racy", "default")
    assert missing.value.status == 404, "a refused write must not have been stored"


def test_a_share_of_requests_fails_and_the_rest_succeed(flaky: LocalCluster, core: client.CoreV1Api) -> None:
    flaky.set_faults("error=0.3,seed=7")
    outcomes = []
    for _ in range(200):
        try:
            core.read_namespace("default")
            outcomes.append(True)
        except client.ApiException as exc:
            assert exc.status == 500
            outcomes.append(False)
    failures = outcomes.count(False)
    assert 30 <= failures <= 90, failures  # 30% of 200, with generous room for chance


def test_watches_are_cut_and_history_compacted(flaky: LocalCluster, core: client.CoreV1Api) -> None:
    flaky.set_faults("watch_cut=0.5")
    started = time.monotonic()
    # One raw watch response read to its end (the client's Watch.stream would silently reconnect).
    response = core.list_namespace(watch=True, _preload_content=False, _request_timeout=30)
    lines = [line for line in response.data.splitlines() if line.strip()]
    assert time.monotonic() - started < 5, "the watch stream should have been cut"
    assert lines and b'"ADDED"' in lines[0], "the initial ADDED events arrive before the cut"

    old = core.list_namespace().metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "after-old-rv"}})
    flaky.set_faults("compact_every=0.5")
    deadline = time.monotonic() + 10
    while flaky.fault_counts().get("compaction", 0) == 0:
        assert time.monotonic() < deadline, "no compaction happened"
        time.sleep(0.1)
    with pytest.raises(client.ApiException) as gone:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=old,
                                      timeout_seconds=5):
            pass
    assert gone.value.status == 410
