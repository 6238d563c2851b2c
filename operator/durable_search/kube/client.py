"""A lean async Kubernetes client: JSON over one pooled aiohttp session.

Why not ``kubernetes_asyncio``'s generated client for the hot path: per call it serializes
through its models, deserializes every answer twice, and its aiohttp session is built with
``trust_env=True``, which makes aiohttp read ``~/.netrc`` and the proxy environment in a thread
pool for every request. Profiled under load, that was most of the operator's CPU outside kopf.
The configuration is ``kube.kubeconfig``'s (kubeconfig, in-cluster token rotation, exec
plugins): the client asks it for the Authorization header at every request, so rotation keeps
working.

Answers are plain dicts; refusals the callers decide on are ``durable_search.errors``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncGenerator, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp

from durable_search.api.status import Body
from durable_search.errors import ApiError as ApiError  # importable from here: refusal's type
from durable_search.errors import ConflictError, KubeApiError, NotFoundError, RefusedError
from durable_search.kube.kubeconfig import Connection

MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"


def ssl_context(connection: Connection, *, client_cert: bool) -> ssl.SSLContext | bool:
    if not connection.host.startswith("https"):
        return False
    context = ssl.create_default_context(cafile=connection.ca_file)
    if client_cert and connection.cert_file:
        context.load_cert_chain(connection.cert_file, keyfile=connection.key_file)
    if not connection.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Pool:
    """One aiohttp session (connections, TLS) shared by every identity of a client."""

    def __init__(self, configuration: Connection, connections: int, client_cert: bool) -> None:
        self._ssl = ssl_context(configuration, client_cert=client_cert)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=self._connections),
                trust_env=False,
                # Objects can be up to 1.5 MiB: a watch line must fit the read buffer.
                read_bufsize=2**21,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class KubeClient:
    """Requests as the configured identity, or as a caller's bearer token (``as_token``)."""

    def __init__(
        self,
        configuration: Connection,
        *,
        connections: int = 100,
        token: str | None = None,
        pool: _Pool | None = None,
    ) -> None:
        self.configuration = configuration
        self.server = configuration.host.rstrip("/")
        self._token = token
        self._owns_pool = pool is None
        self._pool = pool or _Pool(configuration, connections, client_cert=token is None)
        self._token_pool: _Pool | None = None

    def as_token(self, token: str) -> KubeClient:
        """A client that authenticates with ``token`` only, on connections of its own kind.

        Those connections present no client certificate (the API server would take the
        certificate's identity over the token's); they are shared by every token and closed
        with this client, not with the one returned.
        """
        if self._token_pool is None:
            self._token_pool = _Pool(self.configuration, 100, client_cert=False)
        return KubeClient(self.configuration, token=token, pool=self._token_pool)

    def _session(self) -> aiohttp.ClientSession:
        return self._pool.session()

    async def close(self) -> None:
        if self._owns_pool:
            await self._pool.close()
        if self._token_pool is not None:
            await self._token_pool.close()

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": JSON}
        if content_type:
            headers["Content-Type"] = content_type
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        else:
            authorization = await self.configuration.authorization()
            if authorization:
                headers["Authorization"] = authorization
        return headers

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        timeout: float | None = 60,
    ) -> Body:
        url = self.server + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v not in (None, "")})
        data = json.dumps(body) if body is not None else None
        headers = await self._headers(content_type if data is not None else None)
        async with self._session().request(
            method,
            url,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            server_hostname=self.configuration.server_name,
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise refusal(response.status, text, response.reason)
        result: Body = json.loads(text) if text else {}
        return result

    async def get(self, path: str, **query: Any) -> Body:
        return await self.request("GET", path, query=query)

    async def post(self, path: str, body: Any) -> Body:
        return await self.request("POST", path, body)

    async def merge_patch(self, path: str, patch: Any) -> Body:
        return await self.request("PATCH", path, patch, content_type=MERGE_PATCH)

    async def delete(self, path: str, options: Any = None) -> Body:
        return await self.request("DELETE", path, options)

    async def list_all(self, path: str, *, page: int = 500, **query: Any) -> tuple[list[Body], str]:
        """Every item, listed in pages; and the list's resourceVersion (to watch from)."""
        items: list[Body] = []
        version = ""
        async for listed, page_version in self.list_pages(path, page=page, **query):
            items.extend(listed)
            version = page_version
        return items, version

    async def list_pages(
        self, path: str, *, page: int = 500, **query: Any
    ) -> AsyncGenerator[tuple[list[Body], str], None]:
        """The list page by page as it arrives, each with the list's resourceVersion: for a
        caller that keeps less of each item than the API serves (its peak is one page)."""
        token = ""
        while True:
            answer = await self.get(path, limit=page, **{"continue": token}, **query)
            metadata = answer.get("metadata") or {}
            yield answer.get("items") or [], str(metadata.get("resourceVersion") or "")
            token = metadata.get("continue") or ""
            if not token:
                return

    async def watch(
        self, path: str, resource_version: str, *, timeout_seconds: int = 240, **query: Any
    ) -> AsyncGenerator[Body, None]:
        """One watch request's events (bookmarks included); ends when the server ends it."""
        parameters = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": timeout_seconds,
            **query,
        }
        url = f"{self.server}{path}?{urlencode(parameters)}"
        headers = await self._headers(None)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30)
        async with self._session().get(
            url, headers=headers, timeout=timeout, server_hostname=self.configuration.server_name
        ) as response:
            if response.status >= 400:
                raise refusal(response.status, await response.text(), response.reason)
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)


def refusal(status: int, text: str, reason: str | None) -> KubeApiError:
    """The API server's answer as the error callers decide on, with its own message."""
    try:
        message = str(json.loads(text).get("message") or reason or status)
    except (ValueError, AttributeError):
        message = str(reason or status)
    message = message[:512]
    if status == 404:
        return NotFoundError(message)
    if status == 409:
        return ConflictError(message)
    if status in (400, 413, 422):
        return RefusedError(message, status)
    return ApiError(message, status)


def answered_status(error: KubeApiError) -> int:
    """The HTTP status the API server answered with ``error`` (0: not one of its answers)."""
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, RefusedError | ApiError):
        return error.status
    return 0


def is_transient(error: BaseException) -> bool:
    """The API server is unreachable or busy (try again), rather than refusing for good."""
    if isinstance(error, aiohttp.ClientError | OSError | asyncio.TimeoutError | ConflictError):
        return True
    return isinstance(error, ApiError) and (error.status == 429 or error.status >= 500)
