"""The operator and a flaky API server: a blip is retried by its client and logged as one INFO line; an outage
that outlasts the retries fails the reconcile with one WARNING line and a later try; neither shows a traceback.
Only a failure that is not the cluster's (a bug) is logged at ERROR with one.

The operator's pieces as it runs them (``AsyncKube`` under the work queue), against ``tests/scripted_api.py``:
no cluster is needed, so these run the same on either backend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from devservers_operator.handlers import KopfRetriesAreWarnings
from devservers_operator.workqueue import WorkQueue

from devservers_sdk.kube_async import CONFIGMAPS, AsyncKube
from devservers_sdk.kube_core import RetryPolicy
from tests.scripted_api import HTML_502, Answer, ScriptedApi, status_body

KEY = ("default", "mydev")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ScriptedApi]:
    with ScriptedApi(tmp_path) as scripted:
        scripted.store("/api/v1/namespaces/default/configmaps/cfg",
                       {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}})
        yield scripted


async def until(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not predicate():
        assert loop.time() < deadline, f"gave up after 60 s waiting for {what}"
        await asyncio.sleep(0.01)


def reconcile_once(api: ScriptedApi, work: Callable[[AsyncKube], Awaitable[None]], *, failures: int) -> WorkQueue[
        tuple[str, str]]:
    """Run ``work`` once under the work queue, as a reconcile; return the queue once it has counted ``failures``."""
    paused: list[float] = []

    async def no_wait(seconds: float) -> None:
        paused.append(seconds)

    async def main() -> WorkQueue[tuple[str, str]]:
        kube = await AsyncKube.connect(kubeconfig=api.kubeconfig(), retry=RetryPolicy(attempts=3), sleep=no_wait)
        queue: WorkQueue[tuple[str, str]] | None = None

        async def reconcile(key: tuple[str, str]) -> float | None:
            await work(kube)
            return None

        try:
            queue = WorkQueue(reconcile, debounce=0)
            queue.trigger(KEY)
            await until(lambda: queue is not None and queue.runs == 1 and queue.pending == failures,
                        "the reconcile to finish")
            await until(lambda: queue is not None and queue.errors == failures, f"{failures} failure(s)")
            return queue
        finally:
            if queue is not None:
                await queue.stop()
            await kube.close()

    return asyncio.run(main())


async def read_config(kube: AsyncKube) -> None:
    await kube.get(CONFIGMAPS, "cfg", namespace="default")


def test_a_blip_is_one_info_line(api: ScriptedApi, caplog: pytest.LogCaptureFixture) -> None:
    api.then(Answer("GET", "/configmaps/cfg", 502, HTML_502, content_type="text/html"))
    with caplog.at_level(logging.DEBUG):
        queue = reconcile_once(api, read_config, failures=0)
    assert queue.errors == 0 and api.count("GET", "/configmaps/cfg") == 2
    noted = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [(r.name, r.levelname) for r in noted] == [("devservers_sdk.kube_async", "INFO")], caplog.text
    assert noted[0].exc_info is None and "502 BadGateway" in noted[0].getMessage()


def test_an_outage_past_the_retries_is_one_warning_and_a_later_try(api: ScriptedApi,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    api.then(*[Answer("GET", "/configmaps/cfg", 503, status_body(503, "ServiceUnavailable", "etcd is down"))] * 3)
    with caplog.at_level(logging.DEBUG):
        reconcile_once(api, read_config, failures=1)
    assert api.count("GET", "/configmaps/cfg") == 3
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.levelname) for r in warnings] == [("devservers_operator.workqueue", "WARNING")], caplog.text
    assert warnings[0].exc_info is None and "Traceback" not in caplog.text
    message = warnings[0].getMessage()
    assert "Reconciling ('default', 'mydev') failed (attempt 1)" in message
    assert f"The API server at {api.url} kept answering 503 after 3 attempts" in message
    assert "retrying in 1s" in message
    infos = [r for r in caplog.records if r.name == "devservers_sdk.kube_async" and r.levelno == logging.INFO]
    assert len(infos) == 2  # one line per retry


def test_a_bug_is_still_an_error_with_its_traceback(api: ScriptedApi, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(kube: AsyncKube) -> None:
        body = await kube.get(CONFIGMAPS, "cfg", namespace="default")
        body["data"]["missing"]  # a bug: no data in this ConfigMap

    with caplog.at_level(logging.DEBUG):
        reconcile_once(api, broken, failures=1)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.name, r.levelname) for r in errors] == [("devservers_operator.workqueue", "ERROR")], caplog.text
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is KeyError


@pytest.mark.parametrize(("message", "level"), [
    ("Request attempt #1/9 failed; will retry: GET https://k8s/api/v1/pods?watch=true -> APIServerError('etcd')",
     logging.WARNING),
    ("Request attempt #9/9 failed; escalating: GET https://k8s/api/v1/pods?watch=true -> APIServerError('etcd')",
     logging.ERROR),
    ("Handler 'pod_event' failed with an exception. Will retry.", logging.ERROR),
])
def test_kopfs_own_retries_are_warnings_and_its_give_up_an_error(message: str, level: int) -> None:
    record = logging.LogRecord("kopf._cogs.clients.watching", logging.ERROR, __file__, 1, message, None, None)
    assert KopfRetriesAreWarnings().filter(record)
    assert (record.levelno, record.levelname) == (level, logging.getLevelName(level))


def test_a_conflict_is_one_warning_and_a_later_try(api: ScriptedApi, caplog: pytest.LogCaptureFixture) -> None:
    """A write refused by its resourceVersion precondition: the reconcile reads again later, which is no bug."""
    api.then(Answer("PATCH", "/configmaps/cfg", 409, status_body(409, "Conflict", "the object has been modified")))

    async def guarded_write(kube: AsyncKube) -> None:
        await kube.patch(CONFIGMAPS, "cfg", {"metadata": {"resourceVersion": "1"}, "data": {"k": "v"}},
                         namespace="default")

    with caplog.at_level(logging.DEBUG):
        reconcile_once(api, guarded_write, failures=1)
    assert api.count("PATCH", "/configmaps/cfg") == 1  # the precondition's verdict is not retried
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.levelname) for r in warnings] == [("devservers_operator.workqueue", "WARNING")], caplog.text
    assert warnings[0].exc_info is None and "changed by someone else" in warnings[0].getMessage()
