"""The token cache: one fetch per lifetime, bounded, lifetimes clamped."""

from __future__ import annotations

import math

import pytest

from durable_search.controller.credentials import (
    MAX_TOKEN_LIFETIME_SECONDS,
    TokenCache,
    clamp_lifetime,
)


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
