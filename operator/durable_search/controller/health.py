"""The operator's health endpoints: ``/healthz`` (the API server answers us), ``/readyz``
(the watches have started) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from durable_search.controller.metrics import METRICS
from durable_search.kube.api import KubeApi

LIVENESS_CACHE_SECONDS = 10


def health_app(
    api: KubeApi, ready: asyncio.Event, clock: Callable[[], float] = time.monotonic
) -> web.Application:
    """The endpoints; ``clock`` (monotonic seconds) times how long a liveness answer holds."""
    last_ok = -math.inf

    async def healthz(_: web.Request) -> web.Response:
        # Liveness that tests something real: the API server answers us (cached for 10 s).
        nonlocal last_ok
        if clock() - last_ok > LIVENESS_CACHE_SECONDS:
            try:
                async with asyncio.timeout(5):
                    await api.version()
            except Exception as error:
                return web.Response(status=503, text=f"kubernetes API unreachable: {error}\n")
            last_ok = clock()
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if not ready.is_set():
            return web.Response(status=503, text="watches not started\n")
        return web.Response(text="ok\n")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(METRICS.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def start_health_server(
    host: str,
    port: int,
    api: KubeApi,
    ready: asyncio.Event,
    clock: Callable[[], float] = time.monotonic,
) -> web.AppRunner:
    runner = web.AppRunner(health_app(api, ready, clock), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
