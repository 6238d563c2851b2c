"""The app's wiring against fakes at its own seams (cache, authorizer): fast checks only.

The behaviour against the real stack is in tests/integration/test_web_*.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from durable_search_web import api
from durable_search_web.access import PUBLIC, SERVICE, Access, Caller, Route
from durable_search_web.app import SERVICE_ROUTES, create_app
from durable_search_web.auth import AuthMode
from durable_search_web.config import ACCESS, AUTHORIZER, CACHE, WebConfig
from durable_search_web.openapi import openapi_document
from durable_search_web.problems import ProblemError

ClientFactory = Callable[[web.Application], Any]
SEARCH = {
    "metadata": {
        "name": "s-1",
        "namespace": "ns",
        "uid": "u-1",
        "resourceVersion": "7",
        "creationTimestamp": "2026-01-31T12:00:00Z",
    },
    "spec": {"query": "q"},
    "status": {"phase": "Running"},
}


class FakeCache:
    namespace = "ns"

    def __init__(self) -> None:
        self.synced = asyncio.Event()
        self.synced.set()
        self.last_contact = time.monotonic()
        self.changed_at: dict[str, float] = {}
        self._items = {"s-1": SEARCH}

    def get(self, name: str) -> Any:
        return self._items.get(name)

    def all(self) -> list[Any]:
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def change_event(self, name: str) -> asyncio.Event:
        return asyncio.Event()


class FakeAuthorizer:
    """Refuses everything but public routes, like --auth client without a token."""

    def __init__(self) -> None:
        self.asked: list[Access] = []

    async def authorize(self, request: web.Request, access: Access) -> Caller:
        self.asked.append(access)
        if access.public:
            return SERVICE
        raise ProblemError(401, "a bearer token is required (--auth client)")


def app_with_fakes(config: WebConfig | None = None) -> tuple[web.Application, FakeAuthorizer]:
    app = create_app(config or WebConfig(namespace="ns"))
    authorizer = FakeAuthorizer()

    async def fakes(app: web.Application) -> AsyncIterator[None]:
        app[CACHE] = FakeCache()  # type: ignore[assignment]
        app[AUTHORIZER] = authorizer  # type: ignore[assignment]
        yield

    app.cleanup_ctx.clear()
    app.cleanup_ctx.append(fakes)
    return app, authorizer


def test_every_route_declares_its_access_and_every_api_route_is_documented() -> None:
    app, _ = app_with_fakes()
    declared = app[ACCESS]
    for resource in app.router.resources():
        for route in resource:
            assert route in declared, f"{route.method} {resource.canonical} has no Access"
    documented = {
        operation["operationId"]
        for item in openapi_document()["paths"].values()
        for operation in item.values()
    }
    assert {r.name for r in (*api.ROUTES, *SERVICE_ROUTES)} == documented
    paths = openapi_document()["paths"]
    for route in (*api.ROUTES, *SERVICE_ROUTES):
        assert paths[route.path][route.method.lower()]["operationId"] == route.name
        if not route.access.public:
            assert {"401", "403"} <= set(paths[route.path][route.method.lower()]["responses"])


def test_client_mode_documents_the_bearer_scheme_on_all_but_public_routes() -> None:
    document = openapi_document(AuthMode.CLIENT)
    assert document["security"] == [{"bearer": []}]
    public = {r.path for r in SERVICE_ROUTES if r.access.public}
    for path, item in document["paths"].items():
        for operation in item.values():
            assert (operation.get("security") == []) is (path in public), path
    assert "security" not in openapi_document(AuthMode.SERVICE_ACCOUNT)


async def test_no_handler_runs_before_its_access_is_checked(
    aiohttp_client: ClientFactory,
) -> None:
    app, authorizer = app_with_fakes()
    client: TestClient[Any, Any] = await aiohttp_client(app)
    for method, path in [
        ("POST", "/api/searches/s-1/terminate"),
        ("DELETE", "/api/searches/s-1"),
        ("DELETE", "/api/searches/s-nothere"),
        ("GET", "/api/searches/Not_A_Name"),
        ("GET", "/metrics"),
    ]:
        response = await client.request(method, path)
        assert response.status == 401, (method, path)
        assert response.content_type == "application/problem+json"
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/api/nothing")).status == 404  # no route: nothing to authorize
    assert all(a.public or a.permissions for a in authorizer.asked)


async def test_a_route_without_a_declaration_is_refused_not_run(
    aiohttp_client: ClientFactory,
) -> None:
    ran = []

    async def unchecked(_: web.Request) -> web.Response:
        ran.append(True)
        return web.Response(text="ran")

    app, _ = app_with_fakes()
    app.router.add_get("/api/unchecked", unchecked)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    response = await client.get("/api/unchecked")
    assert response.status == 500
    assert response.content_type == "application/problem+json"
    assert ran == []


async def test_an_unexpected_error_is_a_bare_problem_500(aiohttp_client: ClientFactory) -> None:
    async def broken(_: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app, _ = app_with_fakes()
    api.setup_routes(app, (Route("GET", "/api/broken", broken, PUBLIC, "broken"),))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    response = await client.get("/api/broken")
    assert response.status == 500
    assert response.content_type == "application/problem+json"
    assert "secret" not in await response.text()


@pytest.mark.parametrize("peer_is_trusted", [True, False])
async def test_forwarded_headers_follow_the_trusted_proxies(
    aiohttp_client: ClientFactory, peer_is_trusted: bool
) -> None:
    from durable_search_web.forwarded import parse_networks

    trusted = parse_networks(["127.0.0.1/32"] if peer_is_trusted else ["10.0.0.0/8"])
    app, _ = app_with_fakes(WebConfig(namespace="ns", trusted_proxies=trusted))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    response = await client.get(
        "/healthz", headers={"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "x"}
    )
    assert response.status == (400 if peer_is_trusted else 200)
