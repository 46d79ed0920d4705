"""A tiny Kubernetes-shaped API server on loopback whose next answers a test scripts, for both API clients.

The emulator's fault injection answers *before* handling a request and always with a Status; what it cannot do
is what a gateway in front of a real API server does: answer 502/503 with an HTML page, drop the connection,
or lose the answer of a write the server already committed. This server does those on request, and otherwise
keeps objects in a dict: GET, POST (409 AlreadyExists on a taken name; ``generateName`` honoured) and DELETE,
which is all the retry tests need. Plain HTTP with a bearer token; ``kubeconfig()`` writes the file both
clients load.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.threaded_http import ThreadedHttpServer

__all__ = ["HTML_502", "Answer", "ScriptedApi"]

HTML_502 = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center>nginx</center>\r\n</body></html>"


@dataclass(frozen=True)
class Answer:
    """How to answer the next request that matches ``method`` and contains ``path_part``.

    ``status``/``body``/``content_type``/``retry_after``: the answer (``status`` 0: drop the connection instead).
    ``commit``: handle the request first (a write is applied), then answer as scripted: a lost answer.
    """

    method: str
    path_part: str
    status: int = 0
    body: bytes = b""
    content_type: str = "application/json"
    retry_after: str | None = None
    commit: bool = False


def status_body(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
                       "message": message}).encode()


class ScriptedApi(ThreadedHttpServer):
    """Start with ``with ScriptedApi(tmp_path) as api``; script with ``api.then(Answer(...))``."""

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir
        self.objects: dict[str, dict[str, Any]] = {}  # by object path
        self.script: list[Answer] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request received
        self._versions = itertools.count(1)

    def then(self, *answers: Answer) -> None:
        self.script.extend(answers)

    def count(self, method: str, path_part: str) -> int:
        return sum(1 for m, path in self.requests if m == method and path_part in path)

    def store(self, path: str, obj: dict[str, Any]) -> None:
        self.objects[path] = obj

    # -- serving ------------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path))
        answer = next((a for a in self.script if a.method == request.method and a.path_part in request.path), None)
        if answer is not None:
            self.script.remove(answer)
            if answer.commit:
                self._apply(request.method, request.path, body)
            if not answer.status:
                assert request.transport is not None
                request.transport.abort()  # the client sees the connection drop, no answer
                return web.Response(status=204)
            headers = {"Content-Type": answer.content_type}
            if answer.retry_after is not None:
                headers["Retry-After"] = answer.retry_after
            return web.Response(status=answer.status, body=answer.body, headers=headers)
        code, payload = self._apply(request.method, request.path, body)
        return web.Response(status=code, body=json.dumps(payload).encode(), content_type="application/json")

    def _apply(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if method == "GET":
            found = self.objects.get(path)
            if found is None:
                return 404, json.loads(status_body(404, "NotFound", f'"{path.rsplit("/", 1)[-1]}" not found'))
            return 200, found
        if method == "POST":
            obj = json.loads(body)
            metadata = obj.setdefault("metadata", {})
            if not metadata.get("name"):
                metadata["name"] = f"{metadata.get('generateName', '')}{next(self._versions):05d}"
            target = f"{path}/{metadata['name']}"
            if target in self.objects:
                return 409, json.loads(status_body(409, "AlreadyExists", f'"{metadata["name"]}" already exists'))
            metadata["resourceVersion"] = str(next(self._versions))
            metadata["uid"] = f"uid-{metadata['resourceVersion']}"
            self.objects[target] = obj
            return 201, obj
        if method == "DELETE":
            if self.objects.pop(path, None) is None:
                return 404, json.loads(status_body(404, "NotFound", "not found"))
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        return 405, json.loads(status_body(405, "MethodNotAllowed", method))

    def kubeconfig(self) -> str:
        path = self.workdir / "scripted-kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "scripted",
            "clusters": [{"name": "scripted", "cluster": {"server": self.url}}],
            "users": [{"name": "scripted", "user": {"token": "scripted-token"}}],
            "contexts": [{"name": "scripted", "context": {"cluster": "scripted", "user": "scripted",
                                                           "namespace": "default"}}],
        }))
        return str(path)
