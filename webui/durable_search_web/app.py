"""The web service's app factory: the page, the API, health, metrics, and the shared watch.

``create_app(config)`` builds everything; the Kubernetes client and the shared watch live in a
``cleanup_ctx`` so they start with the app and stop with it. How it reaches Kubernetes
(``connect``) and the one clock it reads (``clock``) are parameters, the real ones by default.
Static assets ship inside the wheel (``durable_search_web/static``) and the page uses relative
URLs only, so it works behind any host, port or path prefix.

Every request goes through the same middlewares, outermost first: problems (every error is
``application/problem+json``, a Kubernetes API refusal no handler decided on is mapped once by
``problems.kube_problem``, an unexpected error is a bare 500 that reveals nothing), headers,
origin (who the client is, ``X-Forwarded-*`` from trusted proxies only: ``forwarded.py``), and
access (the route's declared permissions, ``access.py``, then the start rate), so no handler
runs before its caller is known and allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from importlib import resources

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from durable_search.errors import KubeApiError
from durable_search.kube.api import KubeApi
from durable_search_web import forwarded
from durable_search_web.access import GET_METRICS, PUBLIC, Access, Route
from durable_search_web.api import ROUTES, setup_routes
from durable_search_web.auth import Authorizer
from durable_search_web.cache import SearchCache
from durable_search_web.clock import SYSTEM_CLOCK, Clock
from durable_search_web.config import (
    ACCESS,
    AUTHORIZER,
    CACHE,
    CALLER,
    CLOCK,
    CONFIG,
    LONG_POLLS,
    MAX_REQUEST_BYTES,
    METRICS,
    ORIGIN,
    START_LIMITER,
    WebConfig,
    WebMetrics,
)
from durable_search_web.limits import LongPollSlots, StartLimiter
from durable_search_web.openapi import openapi_document
from durable_search_web.problems import ProblemError, kube_problem, problem_response

logger = logging.getLogger("durable_search_web")
STATIC = resources.files("durable_search_web") / "static"

# The page's own policy: scripts, styles and frames from this origin only, nothing inline.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# A watch that has seen nothing (no event, no bookmark, no relist) for this long is stuck.
WATCH_STALE_SECONDS = 600

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Opens the Kubernetes API for --kubeconfig (None: in-cluster, or the default kubeconfig).
Connect = Callable[[str | None], Awaitable[KubeApi]]


def create_app(
    config: WebConfig, *, connect: Connect = KubeApi.connect, clock: Clock = SYSTEM_CLOCK
) -> web.Application:
    app = web.Application(
        client_max_size=MAX_REQUEST_BYTES,
        middlewares=[problems_middleware, headers_middleware, origin_middleware, access_middleware],
    )
    app[CONFIG] = config
    app[CLOCK] = clock
    app[METRICS] = WebMetrics()
    app[START_LIMITER] = StartLimiter(config.start_rate, config.start_burst)
    app[LONG_POLLS] = LongPollSlots(config.max_long_polls)
    app.cleanup_ctx.append(partial(kubernetes_context, connect=connect))
    setup_routes(app, SERVICE_ROUTES)
    static = app.router.add_static(
        "/static/", path=str(STATIC), name="static", append_version=False
    )
    for route in static:
        app[ACCESS][route] = PUBLIC
    setup_routes(app, ROUTES)
    return app


async def kubernetes_context(
    app: web.Application, connect: Connect = KubeApi.connect
) -> AsyncIterator[None]:
    """The API client and the one shared watch, for the app's lifetime."""
    config, clock = app[CONFIG], app[CLOCK]
    api = await connect(config.kubeconfig)
    cache = SearchCache(api.client, config.namespace, clock=clock)
    app[CACHE] = cache
    app[AUTHORIZER] = Authorizer(
        config.auth, api, config.namespace, config.watcher_users, clock=clock
    )
    watch = asyncio.create_task(cache.run(), name="search-watch")
    try:
        yield
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await api.close()


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route.resource
    label = route.canonical if route is not None else "unmatched"
    try:
        response = await handler(request)
    except ProblemError as problem:
        response = problem_response(problem.status, problem.detail, problem.headers)
    except KubeApiError as error:
        mapped = kube_problem(error)
        response = problem_response(mapped.status, mapped.detail, mapped.headers)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        detail = (
            error.text
            if error.text and not error.text.startswith(str(error.status))
            else error.reason
        )
        if error.status == 413:
            detail = f"the request body is larger than {MAX_REQUEST_BYTES} bytes"
        elif error.status == 405:
            detail = f"{request.method} is not allowed on {request.path}"
        elif error.status == 404:
            detail = f"no route {request.path}"
        headers = {k: v for k, v in error.headers.items() if k.lower() == "allow"}
        response = problem_response(error.status, detail, headers)
    except Exception:
        # Never aiohttp's text/plain page, and never a traceback: the log has it.
        logger.exception("%s %s failed", request.method, request.path)
        response = problem_response(500, "internal error: see the web service's log")
    request.app[METRICS].requests.labels(route=label, status=str(response.status)).inc()
    return response


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """How the client reached us and who it is (forwarded headers from trusted proxies only)."""
    headers = {name: request.headers.getall(name, []) for name in forwarded.FORWARDED_HEADERS}
    try:
        request[ORIGIN] = forwarded.resolve(
            request.remote,
            request.scheme,
            request.host,
            headers,
            request.app[CONFIG].trusted_proxies,
        )
    except forwarded.ForwardedError as error:
        raise ProblemError(400, str(error)) from None
    return await handler(request)


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The route's declared :class:`Access`, checked before its handler runs."""
    if request.match_info.http_exception is not None:
        return await handler(request)  # no such route or method: aiohttp's 404/405
    access = request.app[ACCESS].get(request.match_info.route)
    if access is None:
        logger.error("route %s has no access declaration: refused", request.match_info.route)
        raise ProblemError(500, "internal error: see the web service's log")
    # Authentication first: a caller without a valid token learns nothing, not even a 429.
    request[CALLER] = await request.app[AUTHORIZER].authorize(request, access)
    if access.start:
        limiter = request.app[START_LIMITER]
        wait = limiter.retry_after(request[ORIGIN].client, request.app[CLOCK].monotonic())
        if wait:
            request.app[METRICS].refused.labels(limit="start_rate").inc()
            raise ProblemError(
                429,
                f"more than {limiter.burst} starts at {limiter.rate:g}/s from this client",
                {"Retry-After": str(wait)},
            )
    return await handler(request)


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path == "/" or request.path.startswith("/static/"):
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    return response


async def index(_: web.Request) -> web.Response:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-cache"})


async def healthz(request: web.Request) -> web.Response:
    cache = request.app[CACHE]
    idle = request.app[CLOCK].monotonic() - cache.last_contact
    if cache.synced.is_set() and idle > WATCH_STALE_SECONDS:
        return web.Response(status=503, text=f"the search watch has been silent for {idle:.0f}s\n")
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    if not request.app[CACHE].synced.is_set():
        return web.Response(status=503, text="the search watch has not synced yet\n")
    return web.Response(text="ok\n")


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS]
    registry.cached_searches.set(len(request.app[CACHE]))
    return web.Response(
        body=generate_latest(registry.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[CONFIG].auth))


# The page, the probes and the reference are open (probes carry no token); /metrics needs
# `get` on the non-resource URL /metrics in client mode, as Prometheus scrapers are granted.
SERVICE_ROUTES: tuple[Route, ...] = (
    Route("GET", "/", index, PUBLIC, "page"),
    Route("GET", "/healthz", healthz, PUBLIC, "healthz"),
    Route("GET", "/readyz", readyz, PUBLIC, "readyz"),
    Route("GET", "/metrics", metrics, Access((GET_METRICS,)), "metrics"),
    Route("GET", "/api/openapi.json", openapi, PUBLIC, "openapi"),
)
