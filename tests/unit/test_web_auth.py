"""How long the authorizer trusts what the API server told it, on a clock the test moves."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from aiohttp.web import Request

from durable_search.errors import ApiError
from durable_search_web.access import GET_SEARCHES, Access, Caller, CallerKind
from durable_search_web.auth import (
    UNAUTHENTICATED_TTL_SECONDS,
    WATCHER_AUDIENCE,
    WATCHER_REVIEW_TTL_SECONDS,
    AuthMode,
    Authorizer,
)
from durable_search_web.problems import ProblemError
from tests.support.clocks import FakeClock

WATCHER = "system:serviceaccount:ops:durable-search-operator"
STATUS = Access((GET_SEARCHES,), watcher=True)


class FakeApi:
    """The API server's reviews: every TokenReview authenticates ``WATCHER`` for our audience,
    every access review refuses the token as unauthenticated (401); both counted."""

    def __init__(self) -> None:
        self.token_reviews = 0
        self.access_reviews = 0

    def as_token(self, token: str) -> FakeApi:
        return self

    async def review_token(self, token: str, audiences: list[str]) -> dict[str, Any]:
        self.token_reviews += 1
        return {"authenticated": True, "user": {"username": WATCHER}, "audiences": audiences}

    async def access_review(self, attributes: dict[str, Any]) -> bool:
        self.access_reviews += 1
        raise ApiError("Unauthorized", 401)


def jwt(**claims: Any) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{payload}.c2lnbmF0dXJl"


def bearing(token: str) -> Request:
    return make_mocked_request(
        "GET", "/api/searches/s-1", headers={"Authorization": f"Bearer {token}"}
    )


def authorizer_on(clock: FakeClock, api: FakeApi) -> Authorizer:
    return Authorizer(AuthMode.CLIENT, api, "ns", frozenset({WATCHER}), clock=clock)  # type: ignore[arg-type]


async def test_a_watcher_tokens_review_is_trusted_no_longer_than_the_token_itself() -> None:
    clock, api = FakeClock(), FakeApi()
    authorizer = authorizer_on(clock, api)
    issued = clock.now().timestamp()
    short = jwt(aud=[WATCHER_AUDIENCE], exp=issued + 3)  # expires before the review would
    long = jwt(aud=[WATCHER_AUDIENCE], exp=issued + 3600)

    async def authorize_both() -> None:
        for token in (short, long):
            caller = await authorizer.authorize(bearing(token), STATUS)
            assert caller == Caller(CallerKind.WATCHER, user=WATCHER)

    await authorize_both()
    assert api.token_reviews == 2
    clock.advance(2)
    await authorize_both()
    assert api.token_reviews == 2  # both answered from the cache
    clock.advance(2)  # past the short token's exp, within the review's own TTL
    await authorize_both()
    assert api.token_reviews == 3  # the short one asked again, the long one still cached
    clock.advance(WATCHER_REVIEW_TTL_SECONDS)
    await authorize_both()
    assert api.token_reviews == 5


async def test_a_token_the_api_server_refused_is_refused_unasked_until_its_ttl_passes() -> None:
    clock, api = FakeClock(), FakeApi()
    authorizer = authorizer_on(clock, api)

    async def refused() -> None:
        with pytest.raises(ProblemError) as refusal:
            await authorizer.authorize(bearing("junk-token"), Access((GET_SEARCHES,)))
        assert refusal.value.status == 401

    for _ in range(3):
        await refused()
    clock.advance(UNAUTHENTICATED_TTL_SECONDS - 0.1)
    await refused()
    assert api.access_reviews == 1
    clock.advance(0.1)
    await refused()
    assert api.access_reviews == 2
