"""Retry-After: delta-seconds or an HTTP-date, and the schedules built on it."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from durable_search.api.models import AsyncPolicy, RetryPolicy
from durable_search.engine.retry_after import parse_retry_after
from durable_search.engine.schedule import backoff_delay, poll_delay, retry_delay

NOW = dt.datetime(2026, 11, 26, 8, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        (" 12 ", 12.0),
        ("0", 0.0),
        ("Thu, 26 Nov 2026 08:00:30 GMT", 30.0),
        ("Thu, 26 Nov 2026 07:59:00 GMT", 0.0),  # in the past: at once, never negative
        (None, None),
        ("", None),
        ("soon", None),
        ("-3", None),
        ("1.5", None),  # RFC 9110: delay-seconds is a non-negative integer
    ],
)
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_backoff_grows_geometrically_and_is_capped() -> None:
    policy = RetryPolicy(initial_interval_seconds=1, backoff_coefficient=2, max_interval_seconds=5)
    assert [backoff_delay(policy, n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]


def test_retry_after_wins_on_429_and_503_only() -> None:
    policy = RetryPolicy(initial_interval_seconds=1, max_interval_seconds=30)
    assert retry_delay(policy, 1, 503, 7) == 7
    assert retry_delay(policy, 1, 429, 7) == 7
    assert retry_delay(policy, 1, 500, 7) == 1
    assert retry_delay(policy, 1, 503, 600) == 30  # capped by maxIntervalSeconds


def test_poll_interval_is_clamped_between_min_and_max() -> None:
    policy = AsyncPolicy(min_poll_interval_seconds=1, max_poll_interval_seconds=10)
    assert poll_delay(policy, None) == 1
    assert poll_delay(policy, 0) == 1
    assert poll_delay(policy, 4) == 4
    assert poll_delay(policy, 3600) == 10


@given(st.one_of(st.none(), st.text(max_size=64)))
@example("²")  # a digit to str.isdigit(), not to int()
@example("١٢")
def test_any_retry_after_header_is_a_wait_of_zero_or_more_seconds_or_none(
    value: str | None,
) -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    wait = parse_retry_after(value, now)
    assert wait is None or wait >= 0


@given(st.integers(min_value=0, max_value=10**12))
def test_delta_seconds_are_read_exactly(seconds: int) -> None:
    assert parse_retry_after(str(seconds), dt.datetime(2026, 12, 1, tzinfo=dt.UTC)) == seconds
