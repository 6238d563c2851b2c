"""The shared HTTP client keeps no cookies, on any of the connection pools it builds.

A site's ``Set-Cookie`` for one tenant's task must never come back on another's request: the
client is shared by every task of the operator. Both layers have a jar of their own (aiohttp's
session and httpx's client), and both are checked, on every pool: the guarded one, the one
``--allow-host`` opens, and one built for a task's own TLS material.

The site is reached as ``localhost``, a host *name*: aiohttp's default jar ignores cookies from
IP addresses, so a test against ``127.0.0.1`` would pass with the jar back in place.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from yarl import URL

from durable_search.http.addresses import AddressPolicy
from durable_search.http.client import ClientSettings, OutgoingRequest, SharedHttpClient
from durable_search.http.tls import TlsMaterial
from tests.support.tls import ScratchCa, server_context

HOST = "localhost"  # resolves to loopback (the machine's /etc/hosts); never an IP literal
LOOPBACK = AddressPolicy.from_strings(["127.0.0.0/8", "::1/128"])


async def _set_cookie(request: web.Request) -> web.Response:
    response = web.Response(text="cookie set")
    response.set_cookie("tenant", request.query.get("tenant", "a"), path="/")
    return response


async def _echo(request: web.Request) -> web.Response:
    return web.json_response({"cookie": request.headers.get("Cookie")})


@dataclass
class Site:
    base: str
    material: TlsMaterial | None = None  # what a task would bring to reach it (https)


async def _serve(tls: tuple[Any, TlsMaterial] | None) -> AsyncIterator[Site]:
    app = web.Application()
    app.router.add_get("/set-cookie", _set_cookie)
    app.router.add_get("/echo", _echo)
    runner = web.AppRunner(app)
    await runner.setup()
    context, material = tls if tls else (None, None)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Site(f"{'https' if tls else 'http'}://{HOST}:{port}", material)
    finally:
        await runner.cleanup()


@pytest.fixture
async def plain_site() -> AsyncIterator[Site]:
    async for site in _serve(None):
        yield site


@pytest.fixture
async def tls_site(tmp_path: Path) -> AsyncIterator[Site]:
    ca = ScratchCa("cookie-test-ca")
    server = ca.issue(HOST, dns=(HOST,), server=True)
    client = ca.issue("tenant", server=False)
    material = TlsMaterial(ca_pem=ca.pem, cert_pem=client.cert_pem, key_pem=client.key_pem)
    async for site in _serve((server_context(server, ca, tmp_path), material)):
        yield site


def _cookie_echoed(answer_body: bytes) -> str | None:
    cookie: str | None = json.loads(answer_body)["cookie"]
    return cookie


# Each way the shared client picks a pool: (settings, whether requests carry TLS material).
POOLS: dict[str, tuple[ClientSettings, bool]] = {
    "guarded": (ClientSettings(policy=LOOPBACK), False),
    "allow-host": (ClientSettings(allow_hosts=frozenset({HOST})), False),
    "own-tls": (ClientSettings(policy=LOOPBACK), True),
}


@pytest.mark.parametrize("pool", list(POOLS))
async def test_a_cookie_one_request_is_set_never_comes_back_on_the_next(
    pool: str, plain_site: Site, tls_site: Site
) -> None:
    settings, with_tls = POOLS[pool]
    site = tls_site if with_tls else plain_site
    shared = SharedHttpClient(settings)
    try:

        async def get(path: str) -> bytes:
            request = OutgoingRequest("GET", f"{site.base}{path}", (), tls=site.material)
            answer = await shared.send(request, timeout=10, max_body_bytes=1 << 16)
            assert answer.status_code == 200
            return answer.body

        await get("/set-cookie?tenant=a")
        assert _cookie_echoed(await get("/echo")) is None
    finally:
        await shared.aclose()


async def test_the_sites_cookie_would_come_back_through_either_default_jar(
    plain_site: Site,
) -> None:
    """The control: reached by this name, aiohttp's and httpx's default jars both keep it."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{plain_site.base}/set-cookie?tenant=a") as answer:
            assert answer.status == 200
        async with session.get(f"{plain_site.base}/echo") as answer:
            assert _cookie_echoed(await answer.read()) == "tenant=a"
    async with httpx.AsyncClient(trust_env=False) as client:
        (await client.get(f"{plain_site.base}/set-cookie?tenant=a")).raise_for_status()
        assert _cookie_echoed((await client.get(f"{plain_site.base}/echo")).content) == "tenant=a"


async def test_every_pool_the_client_builds_has_no_jar_in_aiohttp_or_in_httpx(
    tls_site: Site,
) -> None:
    """Every pool it holds (``pools()``): aiohttp's dummy jar, and httpx keeps nothing."""
    shared = SharedHttpClient(ClientSettings(allow_hosts=frozenset({HOST}), open_path_enabled=True))
    try:
        # A request with its own TLS material is sent through a pool of its own.
        request = OutgoingRequest("GET", f"{tls_site.base}/echo", (), tls=tls_site.material)
        assert (await shared.send(request, timeout=10, max_body_bytes=1 << 16)).status_code == 200
        pools = shared.pools()
        assert len(pools) == 3  # guarded, open, one task's TLS material
        url = f"http://{HOST}/"
        for pool in pools:
            session, client = pool.session, pool.client
            assert isinstance(session, aiohttp.ClientSession)
            assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)
            session.cookie_jar.update_cookies({"tenant": "a"}, response_url=URL(url))
            assert len(session.cookie_jar) == 0

            # httpx: nothing a response sets is kept (its jar's policy refuses it), so nothing
            # is sent. (Only the refusal to keep counts: httpx copies the jar's cookies into a
            # fresh, default-policy jar to build each request, so a refusal to *send* is never
            # consulted.)
            set_by_site = httpx.Response(
                200, headers={"Set-Cookie": "tenant=a; Path=/"}, request=httpx.Request("GET", url)
            )
            client.cookies.extract_cookies(set_by_site)
            assert not list(client.cookies.jar)
            assert "cookie" not in client.build_request("GET", url).headers
    finally:
        await shared.aclose()
