"""A site that answers the way an attacker's would: bombs, floods, echoes, cookies, redirects.

Every route records what it received (``/stats``), so a test can prove a request was sent once,
or that a header never arrived. Compressed payloads are built once per process (``payloads``).
"""

from __future__ import annotations

import functools
import gzip
import json
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from aiohttp import web

ZEROS = 512 * 1024 * 1024


@functools.cache
def zeros_gzipped_once() -> bytes:
    """512 MiB of zeros, gzipped once: about 522 KB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    return b"".join(compressor.compress(block) for _ in range(ZEROS // len(block))) + (
        compressor.flush()
    )


@functools.cache
def zeros_gzipped_twice() -> bytes:
    """The same, gzipped again: under a kilobyte."""
    return gzip.compress(zeros_gzipped_once(), 9)


@dataclass
class HostileState:
    hits: Counter[str] = field(default_factory=Counter)
    headers: defaultdict[str, list[dict[str, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )


STATE = web.AppKey("state", HostileState)


def create_app() -> web.Application:
    app = web.Application()
    app[STATE] = HostileState()
    for path, handler in ROUTES.items():
        app.router.add_route("*", path, handler)
    app.router.add_get("/stats", stats)
    return app


def _record(request: web.Request) -> str:
    key = request.query.get("key", request.path)
    state = request.app[STATE]
    state.hits[key] += 1
    state.headers[key].append({k.lower(): v for k, v in request.headers.items()})
    return key


async def gzip_twice_declared_twice(request: web.Request) -> web.Response:
    _record(request)
    return web.Response(body=zeros_gzipped_twice(), headers={"Content-Encoding": "gzip, gzip"})


async def gzip_bomb(request: web.Request) -> web.Response:
    _record(request)
    return web.Response(body=zeros_gzipped_once(), headers={"Content-Encoding": "gzip"})


async def gzip_twice_declared_once(request: web.Request) -> web.Response:
    _record(request)
    return web.Response(body=zeros_gzipped_twice(), headers={"Content-Encoding": "gzip"})


async def long_reason(request: web.Request) -> web.Response:
    _record(request)
    return web.Response(status=500, reason="R" * 8000, text="error page")


async def many_long_headers(request: web.Request) -> web.Response:
    _record(request)
    headers = {f"x-long-{n}": f"{n:02d}" + "<" * 7898 for n in range(90)}
    return web.Response(text="headers", headers=headers)


async def control_characters(request: web.Request) -> web.Response:
    _record(request)
    return web.Response(body=b"\x01" * (256 * 1024), content_type="text/plain")


async def angle_brackets(request: web.Request) -> web.Response:
    _record(request)
    return web.Response(body=b"<" * (512 * 1024), content_type="text/html")


async def set_cookie(request: web.Request) -> web.Response:
    _record(request)
    response = web.Response(text="cookie set")
    response.set_cookie("tenant", request.query.get("tenant", "a"), path="/")
    return response


async def echo(request: web.Request) -> web.Response:
    """Echo every request header back, in the body and in a header."""
    _record(request)
    seen = dict(request.headers)
    return web.Response(
        text=json.dumps({"headers": seen}),
        content_type="application/json",
        headers={"X-Echo": "; ".join(f"{k}={v}" for k, v in seen.items())},
        reason="OK " + ",".join(seen.values())[:200],
    )


async def redirect(request: web.Request) -> web.Response:
    _record(request)
    raise web.HTTPFound(request.query["to"])


async def odd_retry_after(request: web.Request) -> web.Response:
    """503 with a Retry-After Python's str.isdigit() takes for a number, then 200."""
    key = _record(request)
    if request.app[STATE].hits[key] == 1:
        return web.Response(status=503, text="busy", headers={"Retry-After": "²"})
    return web.Response(text="fine now")


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"hits": dict(state.hits), "headers": dict(state.headers)})


ROUTES = {
    "/gzip-gzip": gzip_twice_declared_twice,
    "/bomb": gzip_bomb,
    "/bomb-inner": gzip_twice_declared_once,
    "/reason": long_reason,
    "/headers": many_long_headers,
    "/controls": control_characters,
    "/brackets": angle_brackets,
    "/set-cookie": set_cookie,
    "/echo": echo,
    "/redirect": redirect,
    "/retry-after": odd_retry_after,
}
