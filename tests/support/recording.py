"""A site that records every request it receives (arrival time, method, body) and can say 429.

``/record?key=K`` answers 200 with the body it received echoed back (so a test can prove a body
read from a Secret is redacted from status); ``/busy?key=K&after=S[&status=503]`` answers its
first request 429 (or ``status``) with ``Retry-After: S`` and every later one 200. ``/stats``
returns what each key received, with arrival times on this process's ``time.monotonic()`` clock
(the site runs in a thread of the test process, so tests compare them with their own).
"""

from __future__ import annotations

import base64
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    at: float
    method: str
    body: bytes
    headers: dict[str, str]


@dataclass
class RecordingState:
    requests: defaultdict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))


STATE = web.AppKey("recording", RecordingState)


def create_app() -> web.Application:
    app = web.Application()
    app[STATE] = RecordingState()
    app.router.add_route("*", "/record", record)
    app.router.add_route("*", "/busy", busy)
    app.router.add_get("/stats", stats)
    return app


async def _received(request: web.Request) -> tuple[str, Received]:
    body = await request.read()
    key = request.query.get("key", request.path)
    seen = Received(time.monotonic(), request.method, body, dict(request.headers))
    request.app[STATE].requests[key].append(seen)
    return key, seen


async def record(request: web.Request) -> web.Response:
    _, seen = await _received(request)
    return web.Response(body=b"you sent: " + seen.body, content_type="text/plain")


async def busy(request: web.Request) -> web.Response:
    key, _ = await _received(request)
    if len(request.app[STATE].requests[key]) == 1:
        return web.Response(
            status=int(request.query.get("status", "429")),
            text="slow down",
            headers={"Retry-After": request.query.get("after", "2")},
        )
    return web.Response(text="fine now")


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    answer: dict[str, Any] = {
        key: [
            {
                "at": each.at,
                "method": each.method,
                "body": base64.b64encode(each.body).decode(),
                "headers": each.headers,
            }
            for each in received
        ]
        for key, received in state.requests.items()
    }
    return web.json_response(answer)
