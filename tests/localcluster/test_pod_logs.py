"""``pods/log`` from CRI log files, read by the Python client, kubectl and raw HTTP.

A fake log source stands in for the kubelet: a file we write CRI records into and a "running" flag.
The handler is mounted on a tiny aiohttp app served from a thread so that blocking clients can call it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client
from multidict import MultiDict

from devservers_sdk.localcluster.apiserver import errors
from devservers_sdk.localcluster.node import pod_logs
from tests.localcluster.served_app import ServerThread

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
LOG_PATH = "/api/v1/namespaces/default/pods/box/log"


def cri(
    text: str, *, ts: str = "2026-01-01T00:00:00.123456789Z", stream: str = "stdout", tag: str = "F"
) -> str:
    return f"{ts} {stream} {tag} {text}\n"


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout}s: {message or predicate}")


@dataclass
class FakeLogs:
    """The kubelet's side: one container's current and previous log files."""

    current: Path
    previous_path: Path
    running: bool = True

    def log_path(self, previous: bool = False) -> Path:
        if previous and not self.previous_path.exists():
            raise errors.bad_request('previous terminated container "main" in pod "box" not found')
        return self.previous_path if previous else self.current

    def container_running(self) -> bool:
        return self.running

    def append(self, text: str) -> None:
        with self.current.open("a") as f:
            f.write(text)


class LogsApp:
    def __init__(self, logs: FakeLogs) -> None:
        self.logs = logs
        self.active = 0
        self.app = web.Application()

        async def api(_: web.Request) -> web.Response:
            return web.json_response(
                {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
            )

        async def apis(_: web.Request) -> web.Response:
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

        async def api_v1(_: web.Request) -> web.Response:
            pods = {
                "name": "pods",
                "singularName": "pod",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["get"],
            }
            return web.json_response({"kind": "APIResourceList", "groupVersion": "v1", "resources": [pods]})

        async def get_pod(request: web.Request) -> web.Response:
            return web.json_response(
                {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "metadata": {"name": request.match_info["name"], "namespace": "default", "uid": "uid-1"},
                    "spec": {"containers": [{"name": "main", "image": "local"}]},
                    "status": {"phase": "Running"},
                }
            )

        async def get_log(request: web.Request) -> web.StreamResponse:
            try:
                options = pod_logs.parse_log_query(request.query, pod_name=request.match_info["name"])
            except errors.StatusError as err:
                return web.json_response(err.to_status(), status=err.code)
            self.active += 1
            try:
                return await pod_logs.serve_logs(request, source=self.logs, **options)
            finally:
                self.active -= 1

        self.app.router.add_get("/api", api)
        self.app.router.add_get("/apis", apis)
        self.app.router.add_get("/api/v1", api_v1)
        self.app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", get_pod)
        self.app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", get_log)


@pytest.fixture
def logs(tmp_path: Path) -> FakeLogs:
    fake = FakeLogs(current=tmp_path / "1.log", previous_path=tmp_path / "0.log")
    fake.current.write_text("")
    return fake


@pytest.fixture
def server(logs: FakeLogs) -> Iterator[tuple[ServerThread, LogsApp]]:
    app = LogsApp(logs)
    with ServerThread(app.app) as srv:
        yield srv, app


@pytest.fixture
def core_v1(server: tuple[ServerThread, LogsApp]) -> Iterator[client.CoreV1Api]:
    with client.ApiClient(client.Configuration(host=server[0].url)) as api_client:
        yield client.CoreV1Api(api_client)


@pytest.fixture
def kubectl_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig")}


# -- query validation ----------------------------------------------------------------------------


def test_query_defaults_and_bool_conversion() -> None:
    assert pod_logs.parse_log_query(MultiDict()) == {
        "follow": False,
        "previous": False,
        "timestamps": False,
        "tail_lines": None,
        "limit_bytes": None,
        "since_seconds": None,
        "since_time": None,
    }
    options = pod_logs.parse_log_query(
        MultiDict(follow="True", previous="0", timestamps="", tailLines="0", sinceTime="2026-01-01T00:00:00Z")
    )
    assert options["follow"] is True and options["previous"] is False and options["timestamps"] is True
    assert options["tail_lines"] == 0 and options["since_time"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        (
            {"tailLines": "-1"},
            422,
            'PodLogOptions "box" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0',
        ),
        ({"limitBytes": "0"}, 422, "limitBytes: Invalid value: 0: must be greater than 0"),
        ({"sinceSeconds": "0"}, 422, "sinceSeconds: Invalid value: 0: must be greater than 0"),
        (
            {"sinceSeconds": "5", "sinceTime": "2026-01-01T00:00:00Z"},
            422,
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        ),
        ({"tailLines": "ten"}, 400, 'parsing "ten": invalid syntax'),
        ({"sinceTime": "yesterday"}, 400, 'parsing time "yesterday"'),
    ],
)
def test_query_rejections_mirror_the_api_server(query: dict[str, str], code: int, message: str) -> None:
    with pytest.raises(errors.StatusError) as info:
        pod_logs.parse_log_query(MultiDict(query), pod_name="box")
    assert info.value.code == code
    assert message in info.value.message


# -- formatting ----------------------------------------------------------------------------------


def test_partial_records_join_and_timestamps_are_fixed_width() -> None:
    records = (
        cri("hel", tag="P", ts="2026-01-01T00:00:00.1Z")
        + cri("lo", ts="2026-01-01T00:00:00.2Z")
        + cri("", ts="2026-01-01T00:00:01Z", stream="stderr")
        + cri("x", ts="2026-01-01T02:00:01.123+02:00")
        + "garbage line\n"
    ).encode()
    plain = pod_logs._Formatter(timestamps=False, since_ns=None, limit_bytes=None)
    assert plain.feed(records) == b"hello\n\nx\n"
    stamped = pod_logs._Formatter(timestamps=True, since_ns=None, limit_bytes=None)
    assert stamped.feed(records) == (
        b"2026-01-01T00:00:00.100000000Z hello\n"
        b"2026-01-01T00:00:01.000000000Z \n"
        b"2026-01-01T02:00:01.123000000+02:00 x\n"
    )


def test_since_and_limit_bytes() -> None:
    records = (cri("old", ts="2026-01-01T00:00:00Z") + cri("new", ts="2026-01-01T00:00:10.5Z")).encode()
    since = pod_logs._parse_rfc3339_ns("2026-01-01T00:00:10Z")
    assert pod_logs._Formatter(timestamps=False, since_ns=since, limit_bytes=None).feed(records) == b"new\n"
    limited = pod_logs._Formatter(timestamps=False, since_ns=None, limit_bytes=5)
    assert limited.feed(records) == b"old\nn" and limited.exhausted


records_strategy = st.lists(
    st.tuples(st.sampled_from(["F", "P"]), st.text(alphabet="ab ", max_size=5)), max_size=12
)


@settings(max_examples=200, deadline=None)
@given(records=records_strategy, tail=st.integers(min_value=0, max_value=14), block=st.integers(1, 40))
def test_tail_counts_logical_lines(
    tmp_path_factory: pytest.TempPathFactory, records: list[tuple[str, str]], tail: int, block: int
) -> None:
    path = tmp_path_factory.mktemp("tail") / "0.log"
    path.write_text("".join(cri(text, tag=tag) for tag, text in records))
    # What the lines are: P pieces glued to what follows; an unfinished trailing line is a line too.
    lines: list[str] = []
    open_line = False
    for tag, text in records:
        if open_line:
            lines[-1] += text
        else:
            lines.append(text)
        open_line = tag == "P"
    expected = [line + "\n" for line in lines]
    if open_line:
        expected[-1] = expected[-1][:-1]
    original = pod_logs._READ
    pod_logs._READ = block  # small blocks exercise the backwards scan's refills
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            offset = pod_logs._tail_offset(fd, tail)
        finally:
            os.close(fd)
    finally:
        pod_logs._READ = original
    formatter = pod_logs._Formatter(timestamps=False, since_ns=None, limit_bytes=None)
    got = formatter.feed(path.read_bytes()[offset:]).decode()
    assert got == "".join(expected[max(0, len(expected) - tail) :])


# -- served ----------------------------------------------------------------------------------------


def test_python_client_tail_timestamps_and_limit(core_v1: client.CoreV1Api, logs: FakeLogs) -> None:
    logs.append(cri("one") + cri("two", stream="stderr") + cri("thr", tag="P") + cri("ee"))
    assert core_v1.read_namespaced_pod_log("box", "default") == "one\ntwo\nthree\n"
    assert core_v1.read_namespaced_pod_log("box", "default", tail_lines=2) == "two\nthree\n"
    assert core_v1.read_namespaced_pod_log("box", "default", tail_lines=1, timestamps=True) == (
        "2026-01-01T00:00:00.123456789Z three\n"
    )
    assert core_v1.read_namespaced_pod_log("box", "default", limit_bytes=6) == "one\ntw"
    assert core_v1.read_namespaced_pod_log("box", "default", since_seconds=60) == ""  # all from 2026-01-01
    with pytest.raises(client.ApiException) as info:
        core_v1.read_namespaced_pod_log("box", "default", tail_lines=-1)
    assert info.value.status == 422


def test_content_type_and_previous(server: tuple[ServerThread, LogsApp], logs: FakeLogs) -> None:
    srv, _ = server
    logs.previous_path.write_text(cri("before the restart"))

    async def fetch() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{srv.url}{LOG_PATH}?previous=true") as resp:
                assert resp.headers["Content-Type"] == "text/plain"
                assert await resp.text() == "before the restart\n"
            logs.previous_path.unlink()
            async with session.get(f"{srv.url}{LOG_PATH}?previous=true") as resp:
                assert resp.status == 400
                assert "previous terminated container" in (await resp.json())["message"]

    asyncio.run(fetch())


def test_kubectl_logs(
    server: tuple[ServerThread, LogsApp], logs: FakeLogs, kubectl_env: dict[str, str]
) -> None:
    srv, _ = server
    logs.append(cri("first") + cri("second"))
    out = subprocess.run(
        [KUBECTL, "--server", srv.url, "logs", "box", "--tail=1", "--timestamps"],
        env=kubectl_env,
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert out.stdout == b"2026-01-01T00:00:00.123456789Z second\n"


def test_kubectl_follow_sees_new_lines_and_ends_with_the_container(
    server: tuple[ServerThread, LogsApp], logs: FakeLogs, kubectl_env: dict[str, str]
) -> None:
    srv, _ = server
    logs.append(cri("before"))
    proc = subprocess.Popen(
        [KUBECTL, "--server", srv.url, "logs", "-f", "box"], env=kubectl_env, stdout=subprocess.PIPE
    )
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.extend(iter(proc.stdout.readline, b"")), daemon=True)
    reader.start()
    try:
        wait_until(lambda: received == [b"before\n"], message="the existing line")
        logs.append(cri("after", tag="P"))
        logs.append(cri(" the request"))
        wait_until(lambda: received == [b"before\n", b"after the request\n"], message="the appended line")
        logs.append(cri("last words"))
        logs.running = False
        assert proc.wait(timeout=10) == 0
        reader.join(5)
        assert received[-1] == b"last words\n"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_follow_survives_rotation(server: tuple[ServerThread, LogsApp], logs: FakeLogs) -> None:
    srv, _ = server
    logs.append(cri("old file"))

    async def follow() -> None:
        async with aiohttp.ClientSession() as session, session.get(f"{srv.url}{LOG_PATH}?follow=1") as resp:
            assert await resp.content.readline() == b"old file\n"
            logs.current.rename(logs.current.with_suffix(".log.20260101"))
            logs.append(cri("new file"))
            assert await asyncio.wait_for(resp.content.readline(), 10) == b"new file\n"
            logs.running = False
            assert await asyncio.wait_for(resp.content.read(), 10) == b""

    asyncio.run(follow())


def test_follow_waits_for_the_file_and_stops_when_the_client_leaves(
    server: tuple[ServerThread, LogsApp], logs: FakeLogs
) -> None:
    srv, app = server
    logs.current.unlink()

    async def follow() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{srv.url}{LOG_PATH}?follow=true") as resp,
        ):
            logs.append(cri("created late"))
            assert await asyncio.wait_for(resp.content.readline(), 10) == b"created late\n"
            assert app.active == 1

    asyncio.run(follow())
    wait_until(lambda: app.active == 0, message="the follow handler to notice the client left")
