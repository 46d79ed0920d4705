"""The dashboard's aiohttp application: routes, the guard in front of them, and ``serve()``.

The guard, because a page on any web site can make the browser send requests to 127.0.0.1:

* **Only this machine.** The server binds 127.0.0.1, and refuses a ``Host`` other than
  ``127.0.0.1:<port>`` or ``localhost:<port>`` (a DNS-rebinding page would send its own host name).
* **A token.** ``serve()`` prints (and opens) a URL with a random token; that first request gets the
  token as a cookie (HttpOnly, SameSite=Strict) and is redirected to the same page without it, so the
  token leaves the address bar and the history. Every other request without the cookie is a 401.
* **Same-origin writes only.** SameSite does not stop another port of 127.0.0.1 (the same *site*), so a
  write (any method but GET and HEAD) must carry ``Origin: http://<our host>`` and, when the browser sends
  it, ``Sec-Fetch-Site: same-origin``; and a JSON body, which no HTML form can send without a preflight.
* **No inline code.** A Content-Security-Policy allows scripts and styles from this server only.

Handlers call the SDK in worker threads (its client is synchronous) and turn ``DevServerError`` into a
JSON answer with the SDK's message, and the form input it concerns when it names a field.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import secrets
import threading
import webbrowser
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from . import forms, pages
from .live import LiveList, row

if TYPE_CHECKING:
    from devservers_sdk import DevServerClient

__all__ = ["COOKIE", "Dashboard", "serve"]

COOKIE = "devservers_ui"
STATIC = Path(__file__).with_name("static")
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_HEARTBEAT = 15.0
_FIRST_PICTURE_WAIT = 10.0
_LOG_TAIL = 1000
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _status_for(exc: Exception) -> int:
    from devservers_sdk import errors

    for kind, status in ((errors.InvalidSpecError, 422), (errors.NotFoundError, 404),
                         (errors.AlreadyExistsError, 409), (errors.ConflictError, 409),
                         (errors.PermissionDeniedError, 403), (errors.AuthenticationError, 401),
                         (errors.DevServerNotReadyError, 409)):
        if isinstance(exc, kind):
            return status
    return 502


def _problem(exc: Exception) -> web.Response:
    from devservers_sdk import InvalidSpecError

    body: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, InvalidSpecError) and exc.field:
        body["errors"] = {forms._input_for(exc.field): str(exc)}
    return web.json_response(body, status=_status_for(exc))


class Dashboard:
    """The dashboard of one user: their kubeconfig, the namespaces shown, the token of this run.

    Args:
        make_client: a ``DevServerClient`` for a namespace (``None``: the kubeconfig's); each is made once.
        all_namespaces: show every namespace (the user may list them) instead of the client's.
        token: the secret of the first URL; default a fresh random one.
    """

    def __init__(self, make_client: Callable[[str | None], DevServerClient], *, all_namespaces: bool = False,
                 token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(32)
        self._make_client = make_client
        default = make_client(None)
        self.namespace = default.namespace
        self.context = default.context
        self._clients: dict[str, DevServerClient] = {default.namespace: default}
        self._lock = threading.Lock()
        self.all_namespaces = all_namespaces
        self.live = LiveList(default, all_namespaces=all_namespaces)
        self.port: int | None = None
        # JupyterLab forwards this dashboard holds open (one per DevServer), closed when it stops.
        self._forwards: dict[tuple[str, str], Any] = {}

    def client(self, namespace: str) -> DevServerClient:
        with self._lock:
            if namespace not in self._clients:
                self._clients[namespace] = self._make_client(namespace)
            return self._clients[namespace]

    @property
    def default_client(self) -> DevServerClient:
        return self._clients[self.namespace]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}?{urlencode({'token': self.token})}"

    def jupyter_available(self) -> bool:
        return callable(getattr(self.default_client, "jupyter", None))

    # -- the application -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self.list_page)
        app.router.add_get("/events", self.events)
        app.router.add_get("/new", self.new_page)
        app.router.add_post("/api/validate", self.validate)
        app.router.add_post("/api/servers", self.create)
        app.router.add_get("/servers/{namespace}/{name}", self.server_page)
        app.router.add_get("/servers/{namespace}/{name}/details", self.details)
        app.router.add_get("/servers/{namespace}/{name}/logs", self.logs)
        app.router.add_post("/api/servers/{namespace}/{name}/{action}", self.act)
        app.router.add_static("/static", STATIC, show_index=False)
        app.on_startup.append(self._start_live)
        app.on_shutdown.append(self._stop_live)
        return app

    async def _start_live(self, app: web.Application) -> None:
        self.live.start()

    async def _stop_live(self, app: web.Application) -> None:
        self.live.stop()
        with self._lock:
            forwards, self._forwards = list(self._forwards.values()), {}
        for forward in forwards:
            await asyncio.to_thread(forward.close)

    def _open_jupyter(self, namespace: str, name: str) -> str:
        """Start (or find) JupyterLab in the DevServer and forward a local port to it; the URL to open.

        A new forward each time: the old one may point at a pod that has since been replaced.
        """
        client = self.client(namespace)
        server = client.jupyter(name)
        forward = client.port_forward(name, server.port)
        with self._lock:
            old = self._forwards.pop((namespace, name), None)
            self._forwards[(namespace, name)] = forward
        if old is not None:
            old.close()
        return str(server.url(forward.address))

    def _allowed_hosts(self, request: web.Request) -> set[str]:
        port = self.port or (request.url.port or 80)
        return {f"127.0.0.1:{port}", f"localhost:{port}"}

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await self._checked(request, handler)
        for header, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        return response

    async def _checked(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if host not in self._allowed_hosts(request):
            return web.Response(status=403, text=f"This dashboard answers only at 127.0.0.1:{self.port}.\n")
        offered = request.query.get("token")
        if offered is not None and hmac.compare_digest(offered.encode(), self.token.encode()):
            query = {key: value for key, value in request.query.items() if key != "token"}
            target = request.path + (f"?{urlencode(query)}" if query else "")
            response = web.Response(status=303, headers={"Location": target})
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
            return response
        cookie = request.cookies.get(COOKIE, "")
        if not hmac.compare_digest(cookie.encode(), self.token.encode()):
            return web.Response(status=401, text="Open the dashboard with the URL `devctl ui` printed: it carries "
                                                 "the token that lets this browser in.\n")
        if request.method not in _SAFE_METHODS:
            refusal = self._cross_origin_refusal(request)
            if refusal is not None:
                return web.json_response({"error": refusal}, status=403)
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:
            from devservers_sdk import DevServerError

            if not isinstance(exc, DevServerError):
                raise
            if request.path.startswith("/api/"):
                return _problem(exc)
            return web.Response(status=_status_for(exc), content_type="text/html",
                                text=pages.error_page("Cannot show this page", str(exc)))

    def _cross_origin_refusal(self, request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if origin is None or origin != f"http://{request.headers.get('Host')}":
            return f"Refused a write from another origin ({origin or 'no Origin header'})."
        fetch_site = request.headers.get("Sec-Fetch-Site")
        if fetch_site is not None and fetch_site != "same-origin":
            return f"Refused a write from another site (Sec-Fetch-Site: {fetch_site})."
        if request.content_type != "application/json":
            return "Writes must send JSON (Content-Type: application/json)."
        return None

    # -- pages -----------------------------------------------------------------------------------------

    def _where(self) -> str:
        scope = "all namespaces" if self.all_namespaces else f"namespace {self.namespace}"
        return f"Context {self.context or 'default'}, {scope}"

    async def list_page(self, request: web.Request) -> web.StreamResponse:
        await self.live.listed(_FIRST_PICTURE_WAIT)
        rows = self.live.sorted_rows()
        namespaces = sorted({item["namespace"] for item in rows} | {self.namespace})
        html = pages.list_page(rows, namespaces=namespaces, where=self._where(), error=self.live.error)
        return web.Response(text=html, content_type="text/html")

    async def new_page(self, request: web.Request) -> web.StreamResponse:
        flavors = await asyncio.to_thread(self.default_client.flavors)
        return web.Response(text=pages.new_page(flavors, namespace=self.namespace), content_type="text/html")

    async def _describe(self, request: web.Request) -> tuple[Any, dict[str, Any]]:
        client = self.client(request.match_info["namespace"])
        description = await asyncio.to_thread(client.describe, request.match_info["name"])
        return description, row(description.devserver)

    async def server_page(self, request: web.Request) -> web.StreamResponse:
        (description, item), flavors = await asyncio.gather(
            self._describe(request), asyncio.to_thread(self.default_client.flavors))
        html = pages.server_page(description, item, flavors=flavors, default_namespace=self.namespace,
                                 jupyter=self.jupyter_available())
        return web.Response(text=html, content_type="text/html")

    async def details(self, request: web.Request) -> web.StreamResponse:
        description, item = await self._describe(request)
        return web.Response(text=pages.details(description, item), content_type="text/html")

    # -- live streams ----------------------------------------------------------------------------------

    @staticmethod
    async def _event_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        for header, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        await response.prepare(request)
        await response.write(b"retry: 1000\n\n")
        return response

    @staticmethod
    async def _send(response: web.StreamResponse, event: str, data: Any) -> None:
        await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

    @staticmethod
    def _row_message(kind: str, item: dict[str, Any]) -> dict[str, Any]:
        return {"type": kind, "key": f"{item['namespace']}/{item['name']}", "namespace": item["namespace"],
                "phase": item["phase"], "html": pages.list_row(item), "row": item}

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events of the list: a snapshot, then each change (``?key=ns/name``: one server's)."""
        only = request.query.get("key")
        subscriber = self.live.subscribe()
        response = await self._event_stream(request)
        try:
            if self.live.error:
                await self._send(response, "failure", {"message": self.live.error})
            if only is None:
                await self._send(response, "snapshot", {"rows": [self._row_message("ADDED", item)
                                                                  for item in self.live.sorted_rows()]})
            while not subscriber.dropped:
                try:
                    async with asyncio.timeout(_HEARTBEAT):
                        message = await subscriber.queue.get()
                except TimeoutError:
                    await response.write(b": still here\n\n")
                    continue
                if message["type"] == "ERROR":
                    await self._send(response, "failure", {"message": message["message"]})
                elif message["type"] == "SYNCED":
                    await self._send(response, "recovered", {})
                    if only is None:
                        await self._send(response, "snapshot", {"rows": [self._row_message("ADDED", item)
                                                                          for item in message["rows"]]})
                else:
                    change = self._row_message(message["type"], message["row"])
                    if only is None or change["key"] == only:
                        await self._send(response, "change", change)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.live.unsubscribe(subscriber)
        return response

    async def logs(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events of one rank's log lines (``?rank=N&follow=1``), ending with ``end``."""
        try:
            rank = int(request.query.get("rank", "0"))
        except ValueError:
            return web.json_response({"error": "rank must be a whole number"}, status=400)
        follow = request.query.get("follow") == "1"
        client = self.client(request.match_info["namespace"])
        name = request.match_info["name"]
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        leaving = threading.Event()

        def read() -> None:
            from devservers_sdk import DevServerError

            try:
                lines = client.logs(name, rank=rank, follow=follow, tail=_LOG_TAIL)
                try:
                    for line in lines:
                        loop.call_soon_threadsafe(queue.put_nowait, ("line", line))
                        if leaving.is_set():
                            return
                finally:
                    lines.close()
                loop.call_soon_threadsafe(queue.put_nowait, ("end", ""))
            except DevServerError as exc:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(queue.put_nowait, ("failure", str(exc)))
            except RuntimeError:  # the loop closed: the dashboard is shutting down
                pass

        # A thread of its own: a followed log can last hours and must not hold one of the shared workers.
        threading.Thread(target=read, name=f"devservers-ui-logs-{name}", daemon=True).start()
        response = await self._event_stream(request)
        try:
            while True:
                try:
                    async with asyncio.timeout(_HEARTBEAT):
                        kind, text = await queue.get()
                except TimeoutError:
                    await response.write(b": still here\n\n")
                    continue
                await self._send(response, kind, {"line": text} if kind == "line" else {"message": text})
                if kind != "line":
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            leaving.set()
        return response

    # -- writes ----------------------------------------------------------------------------------------

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="The body is not JSON.") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="The body must be a JSON object.")
        return body

    async def validate(self, request: web.Request) -> web.StreamResponse:
        form = await self._json(request)
        errors = await asyncio.to_thread(forms.form_errors, self.default_client, form)
        return web.json_response({"errors": errors})

    async def create(self, request: web.Request) -> web.StreamResponse:
        form = await self._json(request)
        client = self.default_client
        errors = await asyncio.to_thread(forms.form_errors, client, form)
        if errors:
            return web.json_response({"errors": errors}, status=422)
        name, arguments, _ = forms.create_arguments(form)
        server = await asyncio.to_thread(lambda: client.create(name, **arguments))
        return web.json_response({"url": pages.server_path(server.namespace or client.namespace, server.name)},
                                 status=201)

    async def act(self, request: web.Request) -> web.StreamResponse:
        client = self.client(request.match_info["namespace"])
        name, action = request.match_info["name"], request.match_info["action"]
        body = await self._json(request)
        calls: dict[str, Callable[[], Any]] = {
            "extend": lambda: client.extend(name, by=str(body.get("by") or "")),
            "stop": lambda: client.stop(name),
            "start": lambda: client.start(name),
            "flavor": lambda: client.update(name, flavor=str(body.get("flavor") or "")),
            "delete": lambda: client.delete(name),
        }
        if action == "jupyter" and self.jupyter_available():
            url = await asyncio.to_thread(self._open_jupyter, request.match_info["namespace"], name)
            return web.json_response({"ok": True, "url": url})
        if action not in calls:
            raise web.HTTPNotFound(text=f"No action {action!r}; try one of {', '.join(calls)}.")
        if action == "delete" and body.get("confirm") != name:
            return web.json_response({"error": f"Deleting needs the confirmation {{\"confirm\": \"{name}\"}}."},
                                     status=400)
        if action == "extend" and not body.get("by"):
            return web.json_response({"error": "Say how much longer, e.g. 2h."}, status=422)
        result = await asyncio.to_thread(calls[action])
        answer: dict[str, Any] = {"ok": True}
        if result is not None:
            answer["row"] = row(result)
        return web.json_response(answer)


async def _run(dashboard: Dashboard, port: int, ready: Callable[[str], None]) -> None:
    runner = web.AppRunner(dashboard.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    try:
        await site.start()
    except OSError as exc:
        from devservers_sdk import ConfigurationError

        await runner.cleanup()
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigurationError(f"The dashboard cannot listen on 127.0.0.1:{port} ({why}): choose another "
                                 f"port with --port, or leave it out for any free one.") from exc
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    dashboard.port = sockets[0].getsockname()[1] if sockets else port
    ready(dashboard.url())
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def serve(dashboard: Dashboard, *, port: int = 0, open_browser: bool = True,
          announce: Callable[[str], None] = print) -> None:
    """Serve the dashboard on 127.0.0.1 until interrupted; ``announce`` gets the URL with the token."""

    def ready(url: str) -> None:
        announce(url)
        if open_browser:
            webbrowser.open(url)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(dashboard, port, ready))
