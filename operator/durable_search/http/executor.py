"""One exchange of an HttpTask: a request (or a poll) and its redirects, to one recorded result.

Headers marked ``origin_bound`` (values read from Secrets, bearer tokens from token sources) go
only to the origin of the task's original request: a redirect or a ``Location`` to another
origin never carries them. The whole exchange, redirects and body included, shares one timeout.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from durable_search.api.models import ResponsePolicy
from durable_search.engine.httptask import Exchange, HttpAnswer, TransportFailure
from durable_search.http.body import store_body
from durable_search.http.client import HttpClient, IncomingResponse, OutgoingRequest, TransportError

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
NEVER_KEPT_HEADERS = frozenset({"set-cookie", "authorization", "proxy-authorization", "cookie"})


@dataclass(frozen=True)
class RequestHeader:
    name: str
    value: str
    origin_bound: bool = False  # a secret: sent to the original request's origin only


@dataclass(frozen=True)
class PreparedRequest:
    """A request ready to send: secrets resolved, kept only in memory for this exchange."""

    method: str
    url: str
    headers: Sequence[RequestHeader]
    body: bytes | None
    origin: str  # scheme://host:port of the task's original request


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


async def perform(
    client: HttpClient,
    request: PreparedRequest,
    *,
    timeout: float,
    max_redirects: int,
    response_policy: ResponsePolicy,
    clock: Callable[[], dt.datetime],
) -> Exchange:
    started = clock()
    begun = time.monotonic()
    url, method, body = request.url, request.method, request.body
    try:
        async with asyncio.timeout(timeout):
            for hop in range(max_redirects + 1):
                headers = _headers_for(request, url)
                remaining = max(timeout - (time.monotonic() - begun), 0.001)
                response = await client.send(
                    OutgoingRequest(method, url, headers, body),
                    timeout=remaining,
                    max_body_bytes=response_policy.max_body_bytes,
                )
                location = response.headers.get("location")
                if response.status_code not in REDIRECT_CODES or not location:
                    break
                if hop == max_redirects:
                    if max_redirects == 0:
                        break  # redirects are not followed: the 3xx is the answer
                    raise TransportError(
                        f"more than {max_redirects} redirects (last to {location})"
                    )
                url = urljoin(url, location)
                if response.status_code == 303 or (
                    response.status_code in (301, 302) and method == "POST"
                ):
                    method = "GET" if method != "HEAD" else "HEAD"
                    body = None
    except TimeoutError:
        result: HttpAnswer | TransportFailure = TransportFailure(
            f"no answer within {timeout:g}s", timed_out=True
        )
    except TransportError as error:
        result = TransportFailure(error.message, timed_out=error.timed_out, blocked=error.blocked)
    else:
        result = _answer(response, response_policy)
    duration_ms = int((time.monotonic() - begun) * 1000)
    return Exchange(result=result, url=url, started=started, duration_ms=duration_ms)


def _headers_for(request: PreparedRequest, url: str) -> list[tuple[str, str]]:
    same_origin = origin_of(url) == request.origin
    return [(h.name, h.value) for h in request.headers if same_origin or not h.origin_bound]


def _answer(response: IncomingResponse, policy: ResponsePolicy) -> HttpAnswer:
    kept = {
        name: response.headers[name]
        for name in policy.keep_headers
        if name not in NEVER_KEPT_HEADERS and name in response.headers
    }
    body = store_body(
        response.body,
        declared_size=response.declared_size,
        max_bytes=policy.max_body_bytes,
        more=len(response.body) > policy.max_body_bytes,
    )
    return HttpAnswer(
        status_code=response.status_code,
        reason=response.reason,
        headers=kept,
        body=body,
        location=response.headers.get("location"),
        retry_after=response.headers.get("retry-after"),
    )
