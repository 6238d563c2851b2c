"""The token cache: one fetch per lifetime, bounded, lifetimes clamped."""

from __future__ import annotations

import math

import pytest

from durable_search.controller.credentials import (
    MAX_CACHED_TOKENS,
    MAX_TOKEN_LIFETIME_SECONDS,
    TokenCache,
    clamp_lifetime,
)
from tests.unit.test_credentials import credentials


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("claimed", "cached"),
    [
        (math.inf, MAX_TOKEN_LIFETIME_SECONDS),
        (-math.inf, 0.0),
        (math.nan, 0.0),
        (-5.0, 0.0),
        (10**9, MAX_TOKEN_LIFETIME_SECONDS),
        (600.0, 600.0),
    ],
)
def test_lifetimes_are_clamped(claimed: float, cached: float) -> None:
    assert clamp_lifetime(claimed) == cached


async def test_an_infinite_expires_in_is_refetched_within_the_hour() -> None:
    clock, fetched = Clock(), []

    async def fetch() -> tuple[str, float]:
        fetched.append(clock.now)
        return f"token-{len(fetched)}", math.inf

    cache = TokenCache(clock)
    assert await cache.get("k", fetch) == "token-1"
    clock.now += MAX_TOKEN_LIFETIME_SECONDS - 120
    assert await cache.get("k", fetch) == "token-1"
    clock.now += 120
    assert await cache.get("k", fetch) == "token-2"


async def test_the_cache_forgets_the_least_recently_used_past_its_bound() -> None:
    cache = TokenCache(Clock(), max_entries=3)

    async def fetch() -> tuple[str, float]:
        return "t", 600.0

    for audience in ("a", "b", "c", "d", "e"):
        await cache.get(audience, fetch)
    assert len(cache) == 3


async def test_the_operators_token_cache_holds_at_most_max_cached_tokens_sources() -> None:
    """The cache ``Credentials`` builds for itself, by default: bounded, the oldest forgotten."""
    assert MAX_CACHED_TOKENS == 1024  # the README's figure
    tokens = (await credentials(installed=True)).tokens

    async def fetch() -> tuple[str, float]:
        return "t", 600.0

    for audience in range(MAX_CACHED_TOKENS + 1):
        await tokens.get(("ns", "sa", f"audience-{audience}"), fetch)
    assert len(tokens) == MAX_CACHED_TOKENS
    fetched = []

    async def fetch_again() -> tuple[str, float]:
        fetched.append(1)
        return "t", 600.0

    await tokens.get(("ns", "sa", f"audience-{MAX_CACHED_TOKENS}"), fetch_again)  # the newest
    assert fetched == []
    await tokens.get(("ns", "sa", "audience-0"), fetch_again)  # the oldest, forgotten
    assert fetched == [1]
