"""Both API clients (``kube.Kube`` and the operator's ``kube_async.AsyncKube``) against the same transient
trouble, on the wire: a 503, a gateway's HTML 502, a dropped connection, a write whose answer was lost.

They share one core (``kube_core``), so every test here runs once per client and expects the same outcome:
the same answer, the same number of requests, the same error. The server is ``tests/scripted_api.py``;
pauses go through fake clocks and sleeps (recorded, never waited).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devservers_sdk.errors import AlreadyExistsError, ClusterFailingError, ServerError
from devservers_sdk.kube import Kube
from devservers_sdk.kube_async import AsyncKube
from devservers_sdk.kube_core import CONFIGMAPS, CREATE_TOKEN_ANNOTATION, EVENTS, RetryPolicy
from devservers_sdk.settings import load_kubeconfig
from tests.scripted_api import HTML_502, Answer, ScriptedApi, status_body

CM_PATH = "/api/v1/namespaces/default/configmaps"


@dataclass
class FakeTime:
    now: float = 1000.0
    pauses: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def clock(self) -> float:
        return self.now


class Client:
    """One of the two clients, called the same way: ``client.call("get", CONFIGMAPS, "x", namespace=...)``."""

    def __init__(self, which: str, kubeconfig: str, time: FakeTime, **policy: Any) -> None:
        self.which = which
        self.kubeconfig = kubeconfig
        self.time = time
        self.policy = RetryPolicy(sleep=time.sleep, clock=time.clock, **policy)

    def call(self, verb: str, *args: Any, **kwargs: Any) -> Any:
        if self.which == "sync":
            kube = Kube(load_kubeconfig(self.kubeconfig), retry=self.policy)
            try:
                return getattr(kube, verb)(*args, **kwargs)
            finally:
                kube.close()

        async def main() -> Any:
            kube = await AsyncKube.connect(kubeconfig=self.kubeconfig, retry=self.policy,
                                           sleep=self.time.async_sleep)
            try:
                return await getattr(kube, verb)(*args, **kwargs)
            finally:
                await kube.close()

        return asyncio.run(main())


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ScriptedApi]:
    with ScriptedApi(tmp_path) as scripted:
        yield scripted


@pytest.fixture(params=["sync", "async"])
def make_client(request: pytest.FixtureRequest, api: ScriptedApi) -> Callable[..., Client]:
    def make(**policy: Any) -> Client:
        return Client(request.param, api.kubeconfig(), FakeTime(), **policy)

    return make


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}


def event() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "mydev.", "namespace": "default"},
            "involvedObject": {"kind": "DevServer", "name": "mydev"}, "reason": "Started", "message": "m"}


def test_a_read_outlasts_a_503_and_a_gateways_html_502(api: ScriptedApi, make_client: Callable[..., Client]) -> None:
    api.store(f"{CM_PATH}/cfg", configmap("cfg"))
    api.then(Answer("GET", "/configmaps/cfg", 503, status_body(503, "ServiceUnavailable", "etcd leader changed"),
                    retry_after="2"),
             Answer("GET", "/configmaps/cfg", 502, HTML_502, content_type="text/html"))
    client = make_client()
    got = client.call("get", CONFIGMAPS, "cfg", namespace="default")
    assert got["data"] == {"k": "v"}
    assert api.count("GET", "/configmaps/cfg") == 3
    assert len(client.time.pauses) == 2 and client.time.pauses[0] >= 2.0  # Retry-After honoured


def test_dropped_connections_are_retried_for_a_read(api: ScriptedApi, make_client: Callable[..., Client]) -> None:
    """Two drops in a row. aiohttp itself sends an idempotent request again once, at once, after a drop; the
    second drop is then ours to retry. urllib3 is told not to (``read=0``), so both are ours. Either way each
    drop costs one request and the read succeeds."""
    api.store(f"{CM_PATH}/cfg", configmap("cfg"))
    api.then(Answer("GET", "/configmaps/cfg", 0), Answer("GET", "/configmaps/cfg", 0))
    client = make_client()
    assert client.call("get", CONFIGMAPS, "cfg", namespace="default")["metadata"]["name"] == "cfg"
    assert api.count("GET", "/configmaps/cfg") == 3
    assert len(client.time.pauses) == (2 if client.which == "sync" else 1)


def test_a_gateway_that_keeps_failing_is_named_in_the_give_up(api: ScriptedApi,
                                                              make_client: Callable[..., Client]) -> None:
    api.then(*[Answer("GET", "/configmaps/cfg", 502, HTML_502, content_type="text/html")] * 3)
    with pytest.raises(ClusterFailingError) as caught:
        make_client(attempts=3).call("get", CONFIGMAPS, "cfg", namespace="default")
    assert caught.value.attempts == 3 and caught.value.status == 502
    assert str(caught.value).startswith(f"The API server at {api.url} kept answering 502 after 3 attempts")
    assert "502 Bad Gateway" in str(caught.value.__cause__ or caught.value)


def test_an_event_is_not_created_twice_after_an_ambiguous_502(api: ScriptedApi,
                                                              make_client: Callable[..., Client]) -> None:
    """A ``generateName`` create has no name to find again: after a 502 that came once the server had
    committed it, a second try would make a second Event. It is sent once and the 502 reported."""
    api.then(Answer("POST", "/events", 502, HTML_502, content_type="text/html", commit=True))
    client = make_client()
    with pytest.raises(ServerError) as caught:
        client.call("create", EVENTS, event(), namespace="default")
    assert caught.value.status == 502 and not isinstance(caught.value, ClusterFailingError)
    assert api.count("POST", "/events") == 1 and client.time.pauses == []
    assert len([path for path in api.objects if "/events/" in path]) == 1  # the one the server committed


def test_an_event_is_sent_again_after_a_429(api: ScriptedApi, make_client: Callable[..., Client]) -> None:
    api.then(Answer("POST", "/events", 429, status_body(429, "TooManyRequests", "slow down"), retry_after="1"))
    client = make_client()
    created = client.call("create", EVENTS, event(), namespace="default")
    assert created["metadata"]["name"].startswith("mydev.")
    assert api.count("POST", "/events") == 2
    assert len([path for path in api.objects if "/events/" in path]) == 1


@pytest.mark.parametrize("lost", ["504", "reset"])
def test_a_named_create_whose_answer_was_lost_is_settled_by_its_token(
        api: ScriptedApi, make_client: Callable[..., Client], lost: str) -> None:
    answer = Answer("POST", "/configmaps", 0, commit=True) if lost == "reset" else \
        Answer("POST", "/configmaps", 504, status_body(504, "Timeout", "gateway timeout"), commit=True)
    api.then(answer)
    created = make_client().call("create", CONFIGMAPS, configmap("mine"), namespace="default")
    assert api.count("POST", "/configmaps") == 2  # committed, then retried into AlreadyExists
    stored = api.objects[f"{CM_PATH}/mine"]
    assert created["metadata"]["uid"] == stored["metadata"]["uid"]
    assert created["metadata"]["annotations"][CREATE_TOKEN_ANNOTATION] == \
        stored["metadata"]["annotations"][CREATE_TOKEN_ANNOTATION]


def test_a_named_create_does_not_take_over_someone_elses_object(api: ScriptedApi,
                                                                make_client: Callable[..., Client]) -> None:
    theirs = configmap("taken")
    theirs["metadata"].update(uid="theirs", annotations={CREATE_TOKEN_ANNOTATION: "someone-else"})
    api.store(f"{CM_PATH}/taken", theirs)
    api.then(Answer("POST", "/configmaps", 504, status_body(504, "Timeout", "gateway timeout")))
    with pytest.raises(AlreadyExistsError, match="ConfigMap 'taken'"):
        make_client().call("create", CONFIGMAPS, configmap("taken"), namespace="default")
    assert api.count("POST", "/configmaps") == 2
    assert api.objects[f"{CM_PATH}/taken"]["metadata"]["uid"] == "theirs"


def test_a_delete_whose_answer_was_lost_succeeds(api: ScriptedApi, make_client: Callable[..., Client]) -> None:
    api.store(f"{CM_PATH}/doomed", configmap("doomed"))
    api.then(Answer("DELETE", "/configmaps/doomed", 503, HTML_502, content_type="text/html", commit=True))
    assert make_client().call("delete", CONFIGMAPS, "doomed", namespace="default") is None
    assert api.count("DELETE", "/configmaps/doomed") == 2 and f"{CM_PATH}/doomed" not in api.objects


def test_the_operators_client_logs_a_retried_blip_as_one_info_line(api: ScriptedApi,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    api.store(f"{CM_PATH}/cfg", configmap("cfg"))
    api.then(Answer("GET", "/configmaps/cfg", 502, HTML_502, content_type="text/html"))
    client = Client("async", api.kubeconfig(), FakeTime())
    with caplog.at_level(logging.DEBUG, logger="devservers_sdk"):
        client.call("get", CONFIGMAPS, "cfg", namespace="default")
    retried = [r for r in caplog.records if r.name == "devservers_sdk.kube_async"]
    assert [r.levelno for r in retried] == [logging.INFO], caplog.text
    assert retried[0].exc_info is None
    assert f"GET {CM_PATH}/cfg failed" in retried[0].getMessage() and "502" in retried[0].getMessage()
    assert "try 2 of 5" in retried[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_create_that_may_not_read_back_reports_the_name_taken(api: ScriptedApi,
                                                                make_client: Callable[..., Client]) -> None:
    """The operator may create StatefulSets but not GET them (its RBAC): after a lost answer it cannot check
    the token, so the AlreadyExists stands, and its reconcile replaces the object as it does for any."""
    api.then(Answer("POST", "/configmaps", 504, status_body(504, "Timeout", "gateway timeout"), commit=True),
             Answer("GET", "/configmaps/mine", 403, status_body(403, "Forbidden", "cannot get configmaps")))
    with pytest.raises(AlreadyExistsError, match="ConfigMap 'mine'"):
        make_client().call("create", CONFIGMAPS, configmap("mine"), namespace="default")
    assert api.count("POST", "/configmaps") == 2 and api.count("GET", "/configmaps/mine") == 1
