"""A loopback JSON API for the CEL tests: search results, and two kinds of operation monitors.

Every route counts what it received per ``key`` (``/stats``), so a test can prove that nothing
was sent (an expression checked first) or how many polls a monitor took.

- ``/search?key=K&hits=N&q=...``: ``{"query", "hits": N, "items": [{"id", "title"}...]}``;
- ``/start?key=K&running=R``: ``202`` with ``Operation-Location: /operations/K`` (no
  ``Location``); ``/operations/K`` answers ``200 {"status": "running"}`` R times, then
  ``200 {"status": "succeeded", "resourceId": ...}``;
- ``/monitor?key=K&running=R``: a 200-with-status monitor on its own URL: ``running`` R times,
  then ``succeeded``.
"""

from __future__ import annotations

from collections import Counter

from aiohttp import web

HITS = web.AppKey("hits", Counter[str])


def create_app() -> web.Application:
    app = web.Application()
    app[HITS] = Counter()
    app.router.add_get("/search", search)
    app.router.add_route("*", "/start", start)
    app.router.add_get("/operations/{key}", operation)
    app.router.add_get("/monitor", monitor)
    app.router.add_get("/stats", stats)
    return app


def _count(request: web.Request, key: str) -> int:
    hits = request.app[HITS]
    hits[key] += 1
    return hits[key]


async def search(request: web.Request) -> web.Response:
    _count(request, request.query.get("key", "search"))
    hits = int(request.query.get("hits", "0"))
    query = request.query.get("q", "")
    items = [{"id": i, "title": f"result {i} for {query}"} for i in range(hits)]
    return web.json_response({"query": request.query.get("q", ""), "hits": hits, "items": items})


async def start(request: web.Request) -> web.Response:
    key = request.query.get("key", "start")
    _count(request, key)
    running = request.query.get("running", "1")
    return web.json_response(
        {"status": "accepted"},
        status=202,
        headers={"Operation-Location": f"/operations/{key}?running={running}"},
    )


def _status(request: web.Request, key: str) -> web.Response:
    seen = _count(request, key)
    if seen <= int(request.query.get("running", "1")):
        return web.json_response({"status": "running"})
    return web.json_response({"status": "succeeded", "resourceId": f"res-{key}"})


async def operation(request: web.Request) -> web.Response:
    return _status(request, f"operations/{request.match_info['key']}")


async def monitor(request: web.Request) -> web.Response:
    return _status(request, request.query.get("key", "monitor"))


async def stats(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[HITS]))
