"""A small local search site for demos and tests: result pages for a query, with switches.

Every switch is a query parameter, so a SearchProvider's URL template chooses the behaviour:

==================  ===========================================================================
``delay=S``         answer after S seconds (fractions allowed)
``status=N``        answer with status N (e.g. 404, 500)
``fail=N``          the first N requests of this ``key`` and query answer ``failstatus`` (503)
``async=N``         answer 202 + ``Location``; the job answers 202 to the first N-1 polls
``retryafter=S``    ``Retry-After`` on 202/429/503 answers
``size=B``          pad the page to B bytes; ``binary=1`` answers B random-looking bytes
``script=1``        put a ``<script>`` in the page (the web UI must never run it)
``redirect=URL``    answer 302 to URL
``hang=1``          never answer (the request is recorded, and so is its connection closing)
``key=K``           groups requests for ``fail`` and for ``/stats``
==================  ===========================================================================

``GET /stats`` reports what each key received, so tests can prove a request was sent once.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import itertools
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SITE_NAME = "Durable Search demo site"


@dataclass
class SiteState:
    hits: Counter[str] = field(default_factory=Counter)  # key -> requests to /search
    tries: Counter[tuple[str, str]] = field(default_factory=Counter)  # (key, query) -> requests
    polls: Counter[str] = field(default_factory=Counter)  # key -> polls of its jobs
    closed: Counter[str] = field(default_factory=Counter)  # key -> hung requests whose peer left
    queries: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    headers: defaultdict[str, list[dict[str, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    job_ids: itertools.count[int] = field(default_factory=itertools.count)


STATE = web.AppKey("state", SiteState)
SITE = web.AppKey("site_name", str)


def create_app(name: str = SITE_NAME) -> web.Application:
    app = web.Application()
    app[STATE] = SiteState()
    app[SITE] = name
    app.router.add_get("/search", search)
    app.router.add_post("/search", search)
    app.router.add_get("/jobs/{id}", job)
    app.router.add_get("/stats", stats)
    app.router.add_get("/healthz", healthz)
    return app


Params = Mapping[str, str]


def _float(params: Params, name: str, default: float = 0.0) -> float:
    try:
        return float(params.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number\n") from None


def _int(params: Params, name: str, default: int = 0) -> int:
    return int(_float(params, name, default))


async def search(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    params: Params = dict(request.query)
    query = params.get("q", "")
    key = params.get("key", "default")
    state.hits[key] += 1
    state.tries[key, query] += 1
    state.queries[key].append(query)
    state.headers[key].append({k.lower(): v for k, v in request.headers.items()})
    if params.get("hang"):
        # Never answer; notice when the client gives up and closes the connection.
        while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        state.closed[key] += 1
        return web.Response(status=499, text="client closed the connection\n")
    delay = _float(params, "delay")
    if delay:
        await asyncio.sleep(delay)
    retry_after = params.get("retryafter")
    extra = {"Retry-After": retry_after} if retry_after else {}
    if state.tries[key, query] <= _int(params, "fail"):
        return web.Response(
            status=_int(params, "failstatus", 503), text="try again later\n", headers=extra
        )
    redirect = params.get("redirect")
    if redirect:
        raise web.HTTPFound(redirect)
    polls = _int(params, "async")
    if polls:
        job_id = str(next(state.job_ids))
        state.jobs[job_id] = {"remaining": polls - 1, "params": params, "key": key}
        location = params.get("location") or f"/jobs/{job_id}"
        return web.Response(status=202, text="accepted\n", headers={"Location": location, **extra})
    return _page(request.app, params)


async def job(request: web.Request) -> web.Response:
    state = request.app[STATE]
    record = state.jobs.get(request.match_info["id"])
    if record is None:
        raise web.HTTPNotFound(text="no such job\n")
    state.polls[record["key"]] += 1
    if record["remaining"] > 0:
        record["remaining"] -= 1
        retry_after = record["params"].get("retryafter")
        headers = {"Location": str(request.rel_url)}
        if retry_after:
            headers["Retry-After"] = retry_after
        return web.Response(status=202, text="still working\n", headers=headers)
    return _page(request.app, record["params"])


def _page(app: web.Application, params: Params) -> web.Response:
    query = params.get("q", "")
    status = _int(params, "status", 200)
    size = _int(params, "size")
    if params.get("binary"):
        block = hashlib.sha256(query.encode()).digest()
        body = (block * (size // len(block) + 1))[: max(size, 1)]
        return web.Response(status=status, body=body, content_type="application/octet-stream")
    site = html.escape(app[SITE])
    escaped = html.escape(query)
    items = "".join(
        f'<li><a href="https://example.org/{n}">{escaped} result {n}</a></li>' for n in (1, 2, 3)
    )
    script = "<script>window.__leaked = true; document.title = 'pwned';</script>"
    text = f"<h2>{site}</h2><p>Results for <b>{escaped}</b></p><ul>{items}</ul>" + (
        script if params.get("script") else ""
    )
    if status != 200:
        text = f"<h2>{site}</h2><p>{status}: nothing for <b>{escaped}</b></p>"
    if size > len(text.encode()):
        text += "<!--" + "x" * (size - len(text.encode()) - 7) + "-->"
    return web.Response(status=status, text=text, content_type="text/html")


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "hits": dict(state.hits),
            "polls": dict(state.polls),
            "closed": dict(state.closed),
            "queries": dict(state.queries),
            "headers": dict(state.headers),
        }
    )


async def serve(host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(create_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
