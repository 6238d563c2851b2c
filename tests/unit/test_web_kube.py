"""The web service's road to Kubernetes: refusals mapped to problems once, the shared watch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from durable_search.errors import (
    ApiError,
    ConflictError,
    KubeApiError,
    NotFoundError,
    RefusedError,
)
from durable_search_web import api
from durable_search_web.access import PUBLIC, Route
from durable_search_web.cache import BACKOFF_SECONDS, SearchCache
from durable_search_web.problems import kube_problem
from tests.unit.test_web_app import app_with_fakes

ClientFactory = Callable[[web.Application], Any]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RefusedError("bad", 400), 400),
        (ApiError("who?", 401), 401),
        (ApiError("no", 403), 403),
        (NotFoundError("gone"), 404),
        (ConflictError("changed"), 409),
        (RefusedError("too big", 413), 502),
        (RefusedError("invalid", 422), 422),
        (ApiError("slow down", 429), 502),
        (ApiError("broken", 500), 502),
    ],
)
def test_a_refusal_keeps_its_status_where_the_client_can_act_on_it_else_502(
    error: KubeApiError, status: int
) -> None:
    problem = kube_problem(error)
    assert problem.status == status
    assert problem.detail == f"Kubernetes API: {error.message}"
    assert problem.headers == ({"WWW-Authenticate": "Bearer"} if status == 401 else {})


async def test_a_refusal_no_view_decides_on_is_answered_as_a_problem(
    aiohttp_client: ClientFactory,
) -> None:
    async def refused(_: web.Request) -> web.Response:
        raise RefusedError('Search.durablesearch.dev "x" is invalid', 422)

    app, _ = app_with_fakes()
    api.setup_routes(app, (Route("GET", "/api/refused", refused, PUBLIC, "refused"),))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    response = await client.get("/api/refused")
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    assert (await response.json())["detail"] == (
        'Kubernetes API: Search.durablesearch.dev "x" is invalid'
    )


def search(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"u-{name}", "resourceVersion": version}}


class ScriptedKube:
    """Lists and watch requests as scripted, in order; then a watch that waits forever."""

    def __init__(
        self, lists: list[list[tuple[list[Any], str]]], watches: list[list[Any] | Exception]
    ) -> None:
        self.lists = lists
        self.watches = watches
        self.watched_from: list[str] = []
        self.idle = asyncio.Event()

    async def list_pages(self, path: str, *, page: int) -> AsyncIterator[tuple[list[Any], str]]:
        for items, version in self.lists.pop(0):
            yield items, version

    async def watch(
        self, path: str, resource_version: str, *, timeout_seconds: int
    ) -> AsyncIterator[Any]:
        self.watched_from.append(resource_version)
        if not self.watches:
            self.idle.set()
            await asyncio.Event().wait()
        script = self.watches.pop(0)
        if isinstance(script, Exception):
            raise script
        for event in script:
            yield event


async def run_until_idle(
    kube: ScriptedKube, backoff: tuple[float, ...] = BACKOFF_SECONDS
) -> SearchCache:
    cache = SearchCache(kube, "ns", page_size=1, backoff=backoff)  # type: ignore[arg-type]
    runner = asyncio.create_task(cache.run())
    try:
        await asyncio.wait_for(kube.idle.wait(), 5)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return cache


async def test_the_watch_follows_bookmarks_and_relists_at_once_when_its_version_expired(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = ScriptedKube(
        lists=[
            [([search("a", "1")], "3"), ([search("b", "2")], "3")],  # two pages
            [([search("a", "1"), search("c", "4")], "9")],  # b went while the watch was away
            [([search("a", "1")], "12")],
        ],
        watches=[
            [
                {"type": "ADDED", "object": search("c", "4")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "5"}}},
            ],  # then the server's timeout ends it: watch on from the bookmark
            [{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}],
            ApiError("too old resource version", 410),  # the watch request itself refused
        ],
    )
    with caplog.at_level(logging.INFO, logger="durable_search_web.cache"):
        cache = await run_until_idle(kube)
    assert kube.watched_from == ["3", "5", "9", "12"]
    assert [s["metadata"]["name"] for s in cache.all()] == ["a"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # no backoff


async def test_any_other_watch_failure_backs_off_then_relists(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = ScriptedKube(
        lists=[[([search("a", "1")], "3")], [([search("a", "1")], "7")]],
        watches=[
            [{"type": "ERROR", "object": {"code": 500, "message": "etcd went away"}}],
        ],
    )
    with caplog.at_level(logging.INFO, logger="durable_search_web.cache"):
        await run_until_idle(kube, backoff=(0.01,))
    assert kube.watched_from == ["3", "7"]
    assert any("re-listing in 0.01s" in r.getMessage() for r in caplog.records)
