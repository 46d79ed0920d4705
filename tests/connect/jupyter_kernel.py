"""A kernel of a JupyterLab server driven the way the browser drives it: REST to start it, the
``/api/kernels/<id>/channels`` WebSocket (Jupyter's JSON message format) to run code."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any

import websocket


def api(base: str, token: str, path: str, *, method: str = "GET", body: Any = None) -> Any:
    request = urllib.request.Request(f"{base}{path}?token={token}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


class Kernel:
    """One kernel and one open channels connection (a notebook tab)."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token
        self.id = api(base, token, "/api/kernels", method="POST", body={"name": "python3"})["id"]
        self.session = uuid.uuid4().hex
        url = base.replace("http://", "ws://", 1) + f"/api/kernels/{self.id}/channels?token={token}"
        self.ws = websocket.create_connection(url, timeout=60)

    def send(self, code: str) -> str:
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": self.session, "msg_type": "execute_request",
                       "version": "5.3", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        return msg_id

    def output(self, msg_id: str, *, timeout: float = 120) -> str:
        """The stdout of a request, once the kernel is idle again."""
        text = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if (message.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                text += content["text"]
            elif kind == "error":
                raise AssertionError(f"the kernel raised {content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return text
        raise AssertionError(f"no answer from kernel {self.id} within {timeout}s")

    def run(self, code: str) -> str:
        return self.output(self.send(code))

    def disconnect(self) -> None:
        self.ws.close()
