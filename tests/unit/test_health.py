"""The operator's liveness probe against a fake API server and a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from durable_search.controller.health import LIVENESS_CACHE_SECONDS, health_app

ClientFactory = Callable[[web.Application], Any]


class FakeApi:
    def __init__(self) -> None:
        self.asked = 0
        self.down = False

    async def version(self) -> dict[str, Any]:
        self.asked += 1
        if self.down:
            raise ConnectionError("connection refused")
        return {"major": "1"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_liveness_asks_the_api_server_once_per_cache_period_and_never_caches_a_failure(
    aiohttp_client: ClientFactory,
) -> None:
    api, clock = FakeApi(), Clock()
    client: TestClient[Any, Any] = await aiohttp_client(
        health_app(api, asyncio.Event(), clock)  # type: ignore[arg-type]
    )

    async def healthz_at(now: float) -> int:
        clock.now = now
        return (await client.get("/healthz")).status

    assert await healthz_at(0.0) == 200  # the first probe asks, however early
    assert await healthz_at(LIVENESS_CACHE_SECONDS) == 200
    assert api.asked == 1
    assert await healthz_at(LIVENESS_CACHE_SECONDS + 0.5) == 200
    assert api.asked == 2
    api.down = True
    assert await healthz_at(LIVENESS_CACHE_SECONDS + 11) == 503
    assert await healthz_at(LIVENESS_CACHE_SECONDS + 11) == 503
    assert api.asked == 4


async def test_readiness_follows_the_watches_flag(aiohttp_client: ClientFactory) -> None:
    ready = asyncio.Event()
    client: TestClient[Any, Any] = await aiohttp_client(
        health_app(FakeApi(), ready, Clock())  # type: ignore[arg-type]
    )
    assert (await client.get("/readyz")).status == 503
    ready.set()
    assert (await client.get("/readyz")).status == 200
