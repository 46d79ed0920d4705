"""An aiohttp server on a loop of its own thread, for tests that drive a synchronous client against it.

The test's thread blocks in the client while this loop answers, so the server cannot share the test's loop;
and the thread's loop is stopped and joined on exit, so no loop outlives the module (tests/conftest.py fails a
module that leaves one running).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Self

from aiohttp import web

__all__ = ["ThreadedHttpServer"]


class ThreadedHttpServer:
    """Subclasses answer in ``_handle``; ``with Server(...) as server`` serves on ``server.url``.

    ``_ssl_context()`` makes it HTTPS; ``_open()``/``_close()`` set up and tear down what ``_handle`` needs on
    the server's loop (a client session, say).
    """

    def __init__(self) -> None:
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def _ssl_context(self) -> ssl.SSLContext | None:
        return None

    async def _open(self) -> None:
        return None

    async def _close(self) -> None:
        return None

    async def _start(self) -> None:
        await self._open()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = self._ssl_context()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context).start()
        self.url = f"{'https' if context else 'http'}://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _stop(self) -> None:
        await self._close()
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
