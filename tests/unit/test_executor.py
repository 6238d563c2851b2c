"""One exchange through a fake client (the executor's seam): redirects, credentials, redaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import httpx
import pytest

from durable_search.api.models import ResponsePolicy
from durable_search.engine.httptask import FailureKind, HttpAnswer, NoAnswer
from durable_search.errors import BlockedError, InvalidRequestError
from durable_search.http.client import IncomingResponse, OutgoingRequest
from durable_search.http.executor import (
    REDACTED,
    PreparedRequest,
    Redactor,
    RequestHeader,
    origin_of,
    perform,
)

SECRET = "s3cr3t-value-42"


class FakeClient:
    """Answers from a script keyed by URL; records every request it was asked to send."""

    def __init__(self, answers: dict[str, IncomingResponse | Exception]) -> None:
        self.answers = answers
        self.sent: list[OutgoingRequest] = []

    async def send(
        self, request: OutgoingRequest, *, timeout: float, max_body_bytes: int
    ) -> IncomingResponse:
        self.sent.append(request)
        answer = self.answers[request.url]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def aclose(self) -> None:
        return None


def response(
    code: int = 200,
    body: bytes = b"page",
    headers: Sequence[tuple[str, str]] = (),
    reason: str = "OK",
) -> IncomingResponse:
    return IncomingResponse(code, reason, httpx.Headers(list(headers)), body, False, None)


def request(url: str, *headers: RequestHeader) -> PreparedRequest:
    return PreparedRequest("GET", url, headers, None, origin_of(url))


async def run(
    client: FakeClient, prepared: PreparedRequest, **policy: object
) -> HttpAnswer | NoAnswer:
    exchange = await perform(
        client,
        prepared,
        timeout=5,
        max_redirects=5,
        response_policy=ResponsePolicy(**policy),  # type: ignore[arg-type]
        clock=lambda: dt.datetime.now(dt.UTC),
    )
    return exchange.result


async def test_credentials_by_name_or_source_never_cross_origins() -> None:
    client = FakeClient(
        {
            "https://a.example/": response(302, headers=[("location", "https://b.example/")]),
            "https://b.example/": response(),
        }
    )
    prepared = request(
        "https://a.example/",
        RequestHeader("Authorization", "Basic literal"),
        RequestHeader("Cookie", "session=1"),
        RequestHeader("Proxy-Authorization", "Basic p"),
        RequestHeader("X-Api-Key", SECRET, secret=True),
        RequestHeader("Accept", "text/html"),
    )
    await run(client, prepared)
    first, second = (dict(r.headers) for r in client.sent)
    assert set(first) == {"Authorization", "Cookie", "Proxy-Authorization", "X-Api-Key", "Accept"}
    assert set(second) == {"Accept"}


async def test_an_echoed_secret_is_redacted_from_body_headers_and_reason() -> None:
    echoed = f'{{"headers": {{"x-api-key": "{SECRET}"}}}} and %s' % SECRET.replace("-", "%2D")
    client = FakeClient(
        {
            "https://a.example/": response(
                200, echoed.encode(), [("x-echo", SECRET)], reason=f"OK {SECRET}"
            )
        }
    )
    prepared = request("https://a.example/", RequestHeader("X-Api-Key", SECRET, secret=True))
    answer = await run(client, prepared, keep_headers=("x-echo",))
    assert isinstance(answer, HttpAnswer)
    assert SECRET not in answer.body.text and REDACTED in answer.body.text
    assert answer.headers["x-echo"] == REDACTED
    assert SECRET not in answer.reason


def test_a_body_cut_in_the_middle_of_a_secret_loses_its_start_too() -> None:
    redactor = Redactor([SECRET])
    assert redactor.redact_bytes(b"page " + SECRET[:9].encode(), cut_at_end=True) == (
        b"page " + REDACTED.encode()
    )
    assert redactor.redact_bytes(b"tiny", cut_at_end=True) == b"tiny"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (BlockedError("blocked: 10.0.0.1"), FailureKind.BLOCKED),
        (InvalidRequestError("bad header"), FailureKind.INVALID),
    ],
)
async def test_exchange_errors_become_outcomes_of_their_kind(
    error: Exception, kind: FailureKind
) -> None:
    result = await run(FakeClient({"https://a.example/": error}), request("https://a.example/"))
    assert isinstance(result, NoAnswer) and result.kind is kind


async def test_the_watchers_trusted_path_is_the_first_hop_only() -> None:
    client = FakeClient(
        {
            "http://web/api/searches/s": response(302, headers=[("location", "http://web/other")]),
            "http://web/other": response(),
        }
    )
    prepared = PreparedRequest("GET", "http://web/api/searches/s", (), None, "", open_path=True)
    await run(client, prepared)
    assert [r.open_path for r in client.sent] == [True, False]


class Stopwatch:
    """A monotonic clock that moves only when an answer takes its time."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class SlowClient(FakeClient):
    """Every answer takes ``seconds`` on the stopwatch; records the timeout each hop was given."""

    def __init__(
        self, answers: dict[str, IncomingResponse | Exception], stopwatch: Stopwatch, seconds: float
    ) -> None:
        super().__init__(answers)
        self.stopwatch = stopwatch
        self.seconds = seconds
        self.timeouts: list[float] = []

    async def send(
        self, request: OutgoingRequest, *, timeout: float, max_body_bytes: int
    ) -> IncomingResponse:
        self.timeouts.append(timeout)
        self.stopwatch.now += self.seconds
        return await super().send(request, timeout=timeout, max_body_bytes=max_body_bytes)


async def test_each_redirect_hop_gets_only_what_is_left_of_the_exchanges_timeout() -> None:
    stopwatch = Stopwatch()
    client = SlowClient(
        {
            "https://a.example/": response(302, headers=[("location", "https://a.example/b")]),
            "https://a.example/b": response(302, headers=[("location", "https://a.example/c")]),
            "https://a.example/c": response(),
        },
        stopwatch,
        seconds=1.5,
    )
    exchange = await perform(
        client,
        request("https://a.example/"),
        timeout=5,
        max_redirects=5,
        response_policy=ResponsePolicy(),
        clock=lambda: dt.datetime(2026, 1, 31, tzinfo=dt.UTC),
        monotonic=stopwatch,
    )
    assert client.timeouts == [5, 3.5, 2.0]
    assert exchange.duration_ms == 4500  # every hop counted
    assert exchange.started == dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
