"""The dashboard's guard: the token in the first URL becomes a cookie; nothing answers without it; writes from
another origin are refused, by the server and in a real browser (a page on another port of 127.0.0.1 is the
same *site*, so SameSite alone would let its form post carry the cookie)."""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from dashboard_support import RunningDashboard
from playwright.sync_api import expect

from devservers_sdk import DevServerClient


def request(dashboard: RunningDashboard, method: str, path: str, *, headers: dict[str, str] | None = None,
            body: str | None = None) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection("127.0.0.1", dashboard.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        connection.close()


def dashboard_namespace(dashboard: RunningDashboard) -> str:
    found = re.search(r"namespace ([a-z0-9-]+)", request(dashboard, "GET", "/",
                                                        headers={"Cookie": cookie_of(dashboard)})[2])
    assert found, "the list names its namespace"
    return found[1]


def cookie_of(dashboard: RunningDashboard) -> str:
    status, headers, _ = request(dashboard, "GET", f"/?token={dashboard.token}")
    assert status == 303, status
    return headers["set-cookie"].split(";", 1)[0]


def test_the_token_becomes_a_cookie_and_nothing_answers_without_it(dashboard: RunningDashboard, page: Any) -> None:
    for path in ("/", "/new", "/events", "/static/dashboard.js", "/servers/x/y", "/?token=wrong"):
        status, _, text = request(dashboard, "GET", path)
        assert status == 401, (path, status, text)
        assert "URL `devctl ui` printed" in text
    status, _, _ = request(dashboard, "POST", "/api/servers", body="{}",
                           headers={"Content-Type": "application/json", "Origin": dashboard.base})
    assert status == 401

    status, headers, _ = request(dashboard, "GET", f"/new?token={dashboard.token}")
    assert status == 303 and headers["location"] == "/new", headers
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie, cookie
    assert request(dashboard, "GET", "/", headers={"Cookie": cookie.split(";", 1)[0]})[0] == 200

    # Another host name for 127.0.0.1 (how a DNS-rebinding page would reach it) is refused, cookie or not.
    status, _, _ = request(dashboard, "GET", "/", headers={"Cookie": cookie.split(";", 1)[0],
                                                          "Host": f"attacker.example:{dashboard.port}"})
    assert status == 403

    page.goto(dashboard.url)
    expect(page.get_by_role("heading", name="DevServers")).to_be_visible()
    assert page.url == f"{dashboard.base}/", "the token must leave the address bar"
    assert dashboard.token not in page.content()
    assert page.evaluate("document.cookie") == "", "the cookie must be out of the page's scripts' reach"

    # A page for a DevServer that does not exist says so, in the SDK's words.
    answer = page.goto(f"{dashboard.base}/servers/{dashboard_namespace(dashboard)}/ghost")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("alert")).to_contain_text("DevServer 'ghost' not found")


class _Attacker(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        # A text/plain form is the one cross-origin POST a browser sends without a preflight; its body can
        # be made to look like JSON.
        page = f"""<!doctype html><title>innocent</title>
<form id="f" method="POST" action="{self.target}/api/servers" enctype="text/plain">
<input name='{{"name": "evil", "flavor": "cpu-small", "timeToLive": "1h", "x": "' value='"}}'>
</form><script>document.getElementById("f").submit()</script>"""
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(page.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def attacker(dashboard: RunningDashboard) -> Iterator[str]:
    handler = type("Handler", (_Attacker,), {"target": dashboard.base})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_cross_origin_post_is_refused(dashboard: RunningDashboard, ui_kubeconfig: str, attacker: str,
                                        page: Any) -> None:
    cookie = cookie_of(dashboard)
    body = json.dumps({"name": "evil", "flavor": "cpu-small", "timeToLive": "1h"})
    for headers in ({"Origin": "http://127.0.0.1:1"},
                    {"Origin": dashboard.base, "Sec-Fetch-Site": "same-site"},
                    {},  # no Origin at all
                    ):
        status, _, text = request(dashboard, "POST", "/api/servers", body=body,
                                  headers={"Cookie": cookie, "Content-Type": "application/json", **headers})
        assert status == 403, (headers, status, text)
        assert "Refused a write" in json.loads(text)["error"]
    status, _, text = request(dashboard, "POST", "/api/servers", body=body,
                              headers={"Cookie": cookie, "Content-Type": "text/plain", "Origin": dashboard.base})
    assert status == 403 and "JSON" in text

    # The real thing: the browser holds the cookie, then a page on another port posts a form to the dashboard.
    page.goto(dashboard.url)
    expect(page.get_by_role("heading", name="DevServers")).to_be_visible()
    with page.expect_response(lambda response: response.url.endswith("/api/servers")) as answer:
        page.goto(attacker)
    assert answer.value.status == 403
    assert "Refused a write from another origin" in answer.value.text()
    with DevServerClient(kubeconfig=ui_kubeconfig) as client:
        assert [server.name for server in client.list()] == [], "the cross-origin post must create nothing"


def test_a_taken_port_is_one_line_naming_the_fix(tmp_path: Any) -> None:
    import socket
    import subprocess
    import sys

    import yaml

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "ns"}}]}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "devservers_cli", "--kubeconfig", str(kubeconfig), "ui",
                                 "--no-browser", "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: The dashboard cannot listen on 127.0.0.1:{port} (Address already in use): choose another port "
        f"with --port, or leave it out for any free one."), result.stderr
    assert "Traceback" not in result.stderr
