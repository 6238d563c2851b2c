"""The one shared HTTP client every HttpTask's requests go through (the executor's seam).

httpx's API over aiohttp's transport (``httpx-aiohttp``): on the 2-core development machine it
costs 0.45 ms of CPU per request against 1.40 ms for httpx's default transport, at the same
throughput (``bench/http_clients.py``; aiohttp alone: 0.18 ms). The SSRF guard sits in the
aiohttp connector's ``socket_factory``, which sees the address actually about to be connected
to, for host names and IP literals alike (aiohttp skips its resolver for literals, so a
resolver-only guard would miss them), on every redirect hop and every poll.

Requests reach an address the guard refuses only through a second, *open* connector, and only
for host names an operator opened with ``--allow-host`` or for the watcher's trusted path (the
executor decides which requests are on it; redirects never are).

Nothing is shared between tasks: there is no cookie jar, in aiohttp or in httpx, so a site's
``Set-Cookie`` for one tenant never comes back on another's request. Bodies are read raw and
decoded by ``http.decoding`` under the body cap, never by httpx's unbounded decoders.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import ipaddress
import socket
import ssl
import urllib.request
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from durable_search.errors import (
    BlockedError,
    ExchangeTimeoutError,
    InvalidRequestError,
    TransportError,
)
from durable_search.http.addresses import AddressPolicy
from durable_search.http.decoding import ACCEPT_ENCODING, BoundedBody, content_codings
from durable_search.http.tls import TlsMaterial, build_context

USER_AGENT = "durable-search/0.1 (+https://durablesearch.dev)"
_READ_CHUNK = 64 * 1024
# Connection pools kept for tasks' own TLS settings (one per distinct material and guard).
MAX_TLS_CLIENTS = 64


class _BlockedAddressError(ConnectionRefusedError):
    """Raised inside the connector when the SSRF guard refuses an address."""


@dataclass(frozen=True)
class OutgoingRequest:
    method: str
    url: str
    headers: Sequence[tuple[str, str]]
    body: bytes | None = None
    open_path: bool = False  # the watcher's trusted path: skip the guard for this one request
    tls: TlsMaterial | None = None  # a task's own CA, client certificate or server name


@dataclass(frozen=True)
class IncomingResponse:
    status_code: int
    reason: str
    headers: httpx.Headers
    body: bytes  # decoded, at most max_body_bytes
    more: bool  # the server sent more than max_body_bytes
    declared_size: int | None  # Content-Length, when the body was not encoded
    undecoded: str | None = None  # the Content-Encoding the body is kept in, undecoded
    note: str | None = None  # why it was kept so


class HttpClient(Protocol):
    """The seam the executor depends on (tests of pure logic can fake it)."""

    async def send(
        self, request: OutgoingRequest, *, timeout: float, max_body_bytes: int
    ) -> IncomingResponse: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class ClientSettings:
    policy: AddressPolicy = field(default_factory=AddressPolicy)
    allow_hosts: frozenset[str] = frozenset()
    max_connections: int = 512
    max_connections_per_host: int = 16
    open_path_enabled: bool = False  # a watcher base URL is configured

    def opens(self, url: str) -> bool:
        """Whether the operator's allow-lists open ``url``'s host (for plain-http token URLs)."""
        host = (urlsplit(url).hostname or "").lower()
        if host in self.allow_hosts:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.policy.allow_cidrs)


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Refuse to keep any cookie a site sets (the protection: tests pin it).

    ``return_ok`` refuses to send too, but httpx 0.28 copies the cookies into a fresh default
    jar for each request, so only ``set_ok`` ever runs: with nothing kept, nothing is sent.
    """

    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False


@dataclass
class Pool:
    """One pool of connections: httpx's API (``client``) over an aiohttp ``session``, whose
    connector holds the connections, the SSRF guard and the TLS context. Neither layer keeps
    cookies. A pool for a task's own TLS material counts the requests using it (``users``) and
    is closed once ``evicted`` and unused."""

    client: httpx.AsyncClient
    session: aiohttp.ClientSession
    users: int = 0
    evicted: bool = False


class SharedHttpClient:
    """httpx over aiohttp with the SSRF guard; one instance per operator process.

    Requests with their own TLS settings (``OutgoingRequest.tls``) go through a pool of their
    own, built once per distinct material (at most :data:`MAX_TLS_CLIENTS`, least recently used
    closed first), with the same guard and limits.
    """

    def __init__(self, settings: ClientSettings = ClientSettings()) -> None:
        self.settings = settings
        self._guarded = self._make_pool(guarded=True)
        needs_open = settings.allow_hosts or settings.open_path_enabled
        self._open = self._make_pool(guarded=False) if needs_open else None
        self._tls_pools: OrderedDict[tuple[str, bool], Pool] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def pools(self) -> list[Pool]:
        """Every pool held now: the guarded one, the open one (``--allow-host`` or the
        watcher's path), and one per task TLS material in use."""
        held = [self._guarded] if self._open is None else [self._guarded, self._open]
        return held + list(self._tls_pools.values())

    def _make_pool(self, *, guarded: bool, ssl_context: ssl.SSLContext | None = None) -> Pool:
        connector = aiohttp.TCPConnector(
            limit=self.settings.max_connections,
            limit_per_host=self.settings.max_connections_per_host,
            socket_factory=self._guarded_socket if guarded else None,
            ttl_dns_cache=30,
            ssl=ssl_context if ssl_context is not None else True,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        client = httpx.AsyncClient(
            transport=AiohttpTransport(client=session),
            trust_env=False,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
            cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
            timeout=None,
        )
        return Pool(client, session)

    def _guarded_socket(self, addr_info: tuple[Any, ...]) -> socket.socket:
        family, kind, proto, _canonical, sockaddr = addr_info
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        refusal = self.settings.policy.refusal(address)
        if refusal is not None:
            raise _BlockedAddressError(f"blocked: {refusal}")
        return socket.socket(family, kind, proto)

    def _is_open(self, request: OutgoingRequest) -> bool:
        if self._open is None:
            return False
        host = (urlsplit(request.url).hostname or "").lower()
        return request.open_path or host in self.settings.allow_hosts

    def _pool_for(self, request: OutgoingRequest) -> Pool:
        return self._open if self._is_open(request) and self._open else self._guarded

    def _tls_pool_for(self, request: OutgoingRequest, material: TlsMaterial) -> Pool:
        key = (material.fingerprint, self._is_open(request))
        entry = self._tls_pools.get(key)
        if entry is None:
            context = build_context(material)  # InvalidRequestError when it is broken
            entry = self._make_pool(guarded=not key[1], ssl_context=context)
            self._tls_pools[key] = entry
            while len(self._tls_pools) > MAX_TLS_CLIENTS:
                _, old = self._tls_pools.popitem(last=False)
                old.evicted = True
                self._close_if_unused(old)
        self._tls_pools.move_to_end(key)
        return entry

    def _close_if_unused(self, entry: Pool) -> None:
        if entry.evicted and entry.users == 0:
            task = asyncio.get_running_loop().create_task(entry.client.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def send(
        self, request: OutgoingRequest, *, timeout: float, max_body_bytes: int
    ) -> IncomingResponse:
        if request.tls is None:
            pool = self._pool_for(request)
            return await self._send(pool.client, request, timeout, max_body_bytes)
        entry = self._tls_pool_for(request, request.tls)
        entry.users += 1
        try:
            return await self._send(entry.client, request, timeout, max_body_bytes)
        finally:
            entry.users -= 1
            self._close_if_unused(entry)

    async def _send(
        self,
        client: httpx.AsyncClient,
        request: OutgoingRequest,
        timeout: float,
        max_body_bytes: int,
    ) -> IncomingResponse:
        scheme = urlsplit(request.url).scheme.lower()
        if scheme not in ("http", "https"):
            raise BlockedError(f"blocked: only http and https URLs are fetched, not {scheme!r}")
        server_name = request.tls.server_name if request.tls else None
        try:
            outgoing = client.build_request(
                request.method,
                request.url,
                headers=list(request.headers),
                content=request.body,
                extensions={"sni_hostname": server_name} if server_name else None,
            )
        except (httpx.InvalidURL, ValueError, TypeError) as error:
            raise InvalidRequestError(f"the request cannot be sent: {_describe(error)}") from None
        try:
            async with asyncio.timeout(timeout):
                response = await client.send(outgoing, stream=True)
                try:
                    body = await _read_bounded(response, max_body_bytes)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise ExchangeTimeoutError(f"no answer within {timeout:g}s") from None
        except (httpx.HTTPError, aiohttp.ClientError, OSError) as error:
            raise _exchange_error(error) from None
        except (ValueError, TypeError, UnicodeError) as error:
            # The transport refused what we asked it to send (a header value it cannot encode).
            raise InvalidRequestError(f"the request cannot be sent: {_describe(error)}") from None
        declared = response.headers.get("content-length")
        return IncomingResponse(
            status_code=response.status_code,
            reason=response.reason_phrase,
            headers=response.headers,
            body=bytes(body.data),
            more=body.more,
            declared_size=int(declared)
            if declared and declared.isascii() and declared.isdigit() and body.coding is None
            else None,
            undecoded=body.undecoded,
            note=body.error,
        )

    async def aclose(self) -> None:
        for pool in self.pools():
            await pool.client.aclose()
        self._tls_pools.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _read_bounded(response: httpx.Response, limit: int) -> BoundedBody:
    """Read the raw stream into at most ``limit`` decoded bytes, then stop reading."""
    body = BoundedBody.for_codings(content_codings(response.headers.get("content-encoding")), limit)
    async for chunk in response.aiter_raw(_READ_CHUNK):
        if not body.feed(chunk):
            break
    return body


def _exchange_error(error: BaseException) -> TransportError | BlockedError | InvalidRequestError:
    for cause in _causes(error):
        blocked = getattr(cause, "os_error", cause)  # aiohttp wraps the socket's error
        if isinstance(blocked, _BlockedAddressError):
            return BlockedError(str(blocked))
        if isinstance(blocked, ssl.SSLError):
            return TransportError(f"TLS handshake failed: {_describe(blocked)}")
        if isinstance(cause, aiohttp.InvalidURL | httpx.InvalidURL | httpx.UnsupportedProtocol):
            return InvalidRequestError(f"the request cannot be sent: {_describe(cause)}")
    return TransportError(_describe(error))


def _causes(error: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _describe(error: BaseException) -> str:
    root = error
    for cause in _causes(error):
        root = cause
    text = str(root) or type(root).__name__
    return f"{type(root).__name__}: {text}" if text != type(root).__name__ else text
