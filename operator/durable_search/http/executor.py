"""One exchange of an HttpTask: a request (or a poll) and its redirects, to one recorded result.

Credentials never travel further than the task's original origin: headers whose values came
from Secrets or token sources, and ``Authorization``, ``Cookie`` and ``Proxy-Authorization``
whatever their source, are sent only to the origin of the original request — a redirect or a
``Location`` to another origin never carries them. Whatever the site sends back is cut to the
schema's bounds, and every resolved secret value is redacted from what is kept (a site that
echoes our headers must not get them stored in status). The whole exchange, redirects and body
included, shares one timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from durable_search.api.models import ResponsePolicy
from durable_search.engine.bounds import (
    HEADER_VALUE_MAX,
    HEADERS_BUDGET,
    LOCATION_MAX,
    MESSAGE_MAX,
    cut,
)
from durable_search.engine.httptask import Exchange, FailureKind, HttpAnswer, NoAnswer
from durable_search.errors import (
    BlockedError,
    ExchangeError,
    ExchangeTimeoutError,
    InvalidRequestError,
    TransportError,
)
from durable_search.http.body import store_body
from durable_search.http.client import HttpClient, IncomingResponse, OutgoingRequest
from durable_search.http.tls import TlsMaterial

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
NEVER_KEPT_HEADERS = frozenset({"set-cookie", "authorization", "proxy-authorization", "cookie"})
# Credentials by their name: never sent across origins, whether literal or from a Secret.
ORIGIN_BOUND_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
REDACTED = "[redacted]"
# Shorter secret values would redact ordinary text; they are still never sent cross-origin.
MIN_REDACTED_LENGTH = 4


@dataclass(frozen=True)
class RequestHeader:
    name: str
    value: str
    secret: bool = False  # from a Secret or a token source: origin-bound, redacted if echoed

    @property
    def origin_bound(self) -> bool:
        return self.secret or self.name.lower() in ORIGIN_BOUND_HEADERS


@dataclass(frozen=True)
class PreparedRequest:
    """A request ready to send: secrets resolved, kept only in memory for this exchange."""

    method: str
    url: str
    headers: Sequence[RequestHeader]
    body: bytes | None
    origin: str  # scheme://host:port of the task's original request
    open_path: bool = False  # the watcher's trusted path (first hop only)
    # The body came from a Secret or a ConfigMap: redacted if echoed, never sent cross-origin.
    body_secret: bool = False
    tls: TlsMaterial | None = None  # the task's own TLS settings (its origin only)

    @property
    def secrets(self) -> tuple[str, ...]:
        values = [h.value for h in self.headers if h.secret]
        if self.body_secret and self.body:
            # Bytes that are not UTF-8 cannot appear as sent in a stored text field.
            with contextlib.suppress(UnicodeDecodeError):
                values.append(self.body.decode("utf-8"))
        return tuple(values)


def origin_of(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    except ValueError:
        return ""
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


async def perform(
    client: HttpClient,
    request: PreparedRequest,
    *,
    timeout: float,
    max_redirects: int,
    response_policy: ResponsePolicy,
    clock: Callable[[], dt.datetime],
    location_headers: Sequence[str] = ("location",),
    monotonic: Callable[[], float] = time.monotonic,
) -> Exchange:
    """Send ``request`` and follow its redirects, all within ``timeout`` seconds: each hop is
    given what is left of it. ``clock`` stamps the exchange's start; ``monotonic`` measures
    its duration and the time left."""
    started = clock()
    begun = monotonic()
    url, method, body = request.url, request.method, request.body
    redactor = Redactor(request.secrets)
    try:
        async with asyncio.timeout(timeout):
            for hop in range(max_redirects + 1):
                headers = _headers_for(request, url)
                same_origin = origin_of(url) == request.origin
                if request.body_secret and body is not None and not same_origin:
                    raise BlockedError(
                        "blocked: a redirect to another origin would carry the body read from "
                        f"bodyFrom ({redactor.redact(cut(url, 512))})"
                    )
                remaining = max(timeout - (monotonic() - begun), 0.001)
                response = await client.send(
                    OutgoingRequest(
                        method,
                        url,
                        headers,
                        body,
                        request.open_path and hop == 0,
                        request.tls if same_origin else None,
                    ),
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
                        f"more than {max_redirects} redirects (last to "
                        f"{redactor.redact(cut(location, 512))})"
                    )
                try:
                    url = urljoin(url, location)
                except ValueError:
                    raise TransportError(
                        f"a redirect to an unusable Location: {redactor.redact(cut(location, 512))}"
                    ) from None
                if response.status_code == 303 or (
                    response.status_code in (301, 302) and method == "POST"
                ):
                    method = "GET" if method != "HEAD" else "HEAD"
                    body = None
    except TimeoutError:
        result: HttpAnswer | NoAnswer = NoAnswer(
            f"no answer within {timeout:g}s", FailureKind.TIMEOUT
        )
    except ExchangeError as error:
        result = no_answer(error, redactor)
    else:
        result = _answer(response, response_policy, redactor, location_headers)
    duration_ms = int((monotonic() - begun) * 1000)
    return Exchange(result=result, url=url, started=started, duration_ms=duration_ms)


def no_answer(error: ExchangeError, redactor: Redactor | None = None) -> NoAnswer:
    """The engine's record of an exchange that ended in ``error``."""
    if isinstance(error, ExchangeTimeoutError):
        kind = FailureKind.TIMEOUT
    elif isinstance(error, BlockedError):
        kind = FailureKind.BLOCKED
    elif isinstance(error, InvalidRequestError):
        kind = FailureKind.INVALID
    else:
        kind = FailureKind.TRANSPORT
    return NoAnswer(redactor.redact(error.message) if redactor else error.message, kind)


def _headers_for(request: PreparedRequest, url: str) -> list[tuple[str, str]]:
    same_origin = origin_of(url) == request.origin
    return [(h.name, h.value) for h in request.headers if same_origin or not h.origin_bound]


def _answer(
    response: IncomingResponse,
    policy: ResponsePolicy,
    redactor: Redactor,
    location_headers: Sequence[str] = ("location",),
) -> HttpAnswer:
    kept = {
        name: redactor.redact(cut(response.headers[name], HEADER_VALUE_MAX))
        for name in policy.keep_headers
        if name not in NEVER_KEPT_HEADERS and name in response.headers
    }
    body = store_body(
        redactor.redact_bytes(response.body, cut_at_end=response.more),
        declared_size=response.declared_size,
        max_bytes=policy.max_body_bytes,
        more=response.more,
        undecoded=response.undecoded,
    )
    # The status URL: the first of the task's async.locationHeaders the answer carries.
    location = next(
        (response.headers[name] for name in location_headers if name in response.headers), None
    )
    note = response.note or (
        f"body kept as received (Content-Encoding: {cut(response.undecoded, 64)})"
        if response.undecoded
        else None
    )
    return HttpAnswer(
        status_code=response.status_code,
        reason=redactor.redact(cut(response.reason, MESSAGE_MAX)),
        headers=kept,
        body=body,
        # Longer than the schema allows: the engine refuses to follow it (never a cut URL).
        location=redactor.redact(location)
        if location and len(location) <= LOCATION_MAX
        else location,
        retry_after=cut(response.headers.get("retry-after") or "", 64) or None,
        note=note,
        seen_headers=_seen_headers(response, redactor),
    )


def _seen_headers(response: IncomingResponse, redactor: Redactor) -> dict[str, str]:
    """What CEL sees as ``response.headers``: every header but cookies and credentials,
    lower-case (repeated ones joined by commas), redacted, within HEADERS_BUDGET bytes."""
    seen: dict[str, str] = {}
    room = HEADERS_BUDGET
    for name, value in response.headers.items():
        name = name.lower()
        if name in NEVER_KEPT_HEADERS:
            continue
        value = redactor.redact(cut(value, HEADER_VALUE_MAX))
        room -= len(name) + len(value)
        if room < 0:
            break
        seen[name] = value
    return seen


class Redactor:
    """Replaces every resolved secret value (as sent, URL-encoded, JSON-escaped) with a mark."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_REDACTED_LENGTH:
                forms.update({secret, quote(secret, safe=""), _json_escaped(secret)})
        # Longest first, so a form containing another is replaced whole.
        self._forms = sorted(forms, key=len, reverse=True)
        self._byte_forms = [form.encode() for form in self._forms]

    def redact(self, value: str) -> str:
        for form in self._forms:
            value = value.replace(form, REDACTED)
        return value

    def redact_bytes(self, value: bytes, *, cut_at_end: bool = False) -> bytes:
        for form in self._byte_forms:
            value = value.replace(form, REDACTED.encode())
        if cut_at_end:
            # A body cut at the cap may end in the first bytes of a secret: drop them too.
            for form in self._byte_forms:
                for length in range(min(len(form) - 1, len(value)), MIN_REDACTED_LENGTH - 1, -1):
                    if value.endswith(form[:length]):
                        value = value[:-length] + REDACTED.encode()
                        break
        return value


def _json_escaped(text: str) -> str:
    return json.dumps(text)[1:-1]
