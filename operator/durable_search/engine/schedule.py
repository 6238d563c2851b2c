"""When to retry and when to poll: exponential backoff, ``Retry-After``, the poll interval."""

from __future__ import annotations

from durable_search.api.models import AsyncPolicy, RetryPolicy
from durable_search.engine.retry_after import clamp

# Retry-After is honoured on these answers (RFC 9110: "Too Many Requests", "Service Unavailable").
RETRY_AFTER_CODES = frozenset({429, 503})


def backoff_delay(policy: RetryPolicy, failed_attempt: int) -> float:
    """Delay after attempt ``failed_attempt`` (1-based) failed: initial x coefficient^(n-1)."""
    delay = policy.initial_interval_seconds * policy.backoff_coefficient ** (failed_attempt - 1)
    return min(delay, policy.max_interval_seconds)


def retry_delay(
    policy: RetryPolicy, failed_attempt: int, status_code: int | None, retry_after: float | None
) -> float:
    """The wait before the next attempt; ``Retry-After`` on 429/503 wins, capped by the policy."""
    if status_code in RETRY_AFTER_CODES and retry_after is not None:
        return clamp(retry_after, 0.0, policy.max_interval_seconds)
    return backoff_delay(policy, failed_attempt)


def poll_delay(policy: AsyncPolicy, retry_after: float | None) -> float:
    """The wait before the next poll: ``Retry-After`` clamped to [min, max], else the minimum."""
    if retry_after is None:
        return policy.min_poll_interval_seconds
    return clamp(retry_after, policy.min_poll_interval_seconds, policy.max_poll_interval_seconds)
