"""The demo search site served from a background thread, for tests that need real providers."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

from aiohttp import web

from durable_search.demo.site import create_app


class DemoSite:
    """A real aiohttp server on loopback (the demo site unless ``app`` says otherwise);
    ``stats()`` says what each ``key`` received."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        app: Callable[[], web.Application] = create_app,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self._ssl = ssl_context
        self._app = app
        self._requested_port = port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self) -> DemoSite:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port, ssl_context=self._ssl)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        asyncio.run_coroutine_threadsafe(self._cancel_leftovers(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def application(self) -> web.Application:
        """The running app (for sites whose state a test reads in-process, e.g. over TLS)."""
        assert self._runner is not None
        return self._runner.app

    async def _cancel_leftovers(self) -> None:
        """Handlers still sleeping (a provider that never answers) end with the site."""
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    @property
    def base(self) -> str:
        return f"{'https' if self._ssl else 'http'}://{self.host}:{self.port}"

    def url(self, key: str, **switches: Any) -> str:
        """A provider URL template for this site, with ``{query}`` and the given switches."""
        extra = "".join(f"&{name}={value}" for name, value in switches.items())
        return f"{self.base}/search?q={{query}}&key={key}{extra}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base}/stats", timeout=5) as response:
            result: dict[str, Any] = json.load(response)
            return result
