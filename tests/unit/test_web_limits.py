"""Per-client start buckets, long-poll slots and the bounded map they live in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from durable_search_web.bounded import BoundedTtlMap, token_key
from durable_search_web.limits import Bucket, LongPollSlots, StartLimiter, client_key, take


def test_a_bucket_allows_the_burst_then_one_start_per_interval() -> None:
    limiter = StartLimiter(rate=0.5, burst=3)
    assert [limiter.retry_after("192.0.2.1", 0.0) for _ in range(3)] == [0, 0, 0]
    assert limiter.retry_after("192.0.2.1", 0.0) == 2  # one token back in 2 s
    assert limiter.retry_after("192.0.2.2", 0.0) == 0  # another client, another bucket
    assert limiter.retry_after("192.0.2.1", 2.0) == 0
    assert limiter.retry_after("192.0.2.1", 2.1) == 2


def test_a_rate_of_zero_turns_the_limit_off() -> None:
    limiter = StartLimiter(rate=0, burst=1)
    assert all(limiter.retry_after("192.0.2.1", 0.0) == 0 for _ in range(100))
    assert len(limiter) == 0


def test_ipv6_clients_share_a_bucket_per_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("192.0.2.1") == "192.0.2.1"


def test_buckets_are_bounded_however_many_clients_come() -> None:
    limiter = StartLimiter(rate=1, burst=1, capacity=100)
    for n in range(10_000):
        limiter.retry_after(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", 0.0)
    assert len(limiter) == 100


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    st.floats(min_value=0.01, max_value=100),
    st.integers(min_value=1, max_value=50),
    st.lists(st.floats(min_value=0, max_value=10), max_size=60),
)
def test_no_more_starts_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket: Bucket | None = None
    now = allowed = 0.0
    for gap in gaps:
        now += gap
        bucket, wait = take(bucket, rate, burst, now)
        allowed += wait == 0
        assert wait == 0 or 0 < wait <= 1 / rate + 1e-9
    assert allowed <= burst + rate * now + 1e-6


def test_long_poll_slots_cap_the_waiters() -> None:
    slots = LongPollSlots(2)
    assert slots.acquire() and slots.acquire()
    assert not slots.acquire()
    slots.release()
    assert slots.acquire()
    assert all(LongPollSlots(0).acquire() for _ in range(100))  # 0: no cap


def test_the_bounded_map_forgets_the_least_recently_used_and_the_expired() -> None:
    cache: BoundedTtlMap[str, int] = BoundedTtlMap(2)
    cache.put("a", 1, expires=10)
    cache.put("b", 2, expires=10)
    assert cache.get("a", now=0) == 1  # a is now the most recent
    cache.put("c", 3, expires=10)
    assert cache.get("b", now=0) is None and cache.get("a", now=0) == 1
    assert cache.get("c", now=10) is None  # expired
    assert len(cache) == 1


def test_tokens_are_keyed_by_a_hash() -> None:
    assert token_key("secret") != "secret" and len(token_key("secret")) == 64
    assert token_key("\udc80") == token_key("\udc80")  # lone surrogates do not raise
