"""What one client may cost: starts per second (a token bucket each), long-polls at once.

Every start writes a Search (and a watcher HttpTask) to etcd, so anonymous callers could fill
it: starts are limited per client, ``--start-rate`` a second with bursts of ``--start-burst``,
and a start past that is a 429 whose ``Retry-After`` says when a token is back. The buckets are
kept for at most ``MAX_CLIENTS`` clients, least recently seen first out: a bucket evicted that
way is the one that has had the longest to refill, so forgetting it forgives little. IPv6
clients are counted per /64, the block one subscriber is usually given.

Each waiting long-poll holds a connection and a little memory; ``--max-long-polls`` caps them,
and the one past the cap is a 503 with ``Retry-After`` (which the watcher HttpTasks treat as
"still running"). Zero turns either limit off.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from durable_search_web.bounded import BoundedTtlMap

MAX_CLIENTS = 10_000
IPV6_CLIENT_PREFIX = 64


@dataclass(frozen=True)
class Bucket:
    tokens: float
    updated: float  # monotonic seconds


def take(bucket: Bucket | None, rate: float, burst: int, now: float) -> tuple[Bucket, float]:
    """Take one token: the bucket afterwards, and 0 (allowed) or the seconds until one is back."""
    tokens = float(burst) if bucket is None else bucket.tokens
    if bucket is not None:
        tokens = min(float(burst), tokens + (now - bucket.updated) * rate)
    if tokens >= 1:
        return Bucket(tokens - 1, now), 0.0
    return Bucket(tokens, now), (1 - tokens) / rate


def client_key(address: str) -> str:
    """The rate limit's key for a client address: itself, or its /64 for IPv6."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, IPV6_CLIENT_PREFIX), strict=False))
    return str(parsed)


class StartLimiter:
    def __init__(self, rate: float, burst: int, capacity: int = MAX_CLIENTS) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self._buckets: BoundedTtlMap[str, Bucket] = BoundedTtlMap(capacity)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def retry_after(self, client: str, now: float) -> int:
        """0 when ``client`` may start now (a token is taken), else whole seconds to wait."""
        if not self.enabled:
            return 0
        key = client_key(client)
        bucket, wait = take(self._buckets.get(key, now), self.rate, self.burst, now)
        # A bucket is full again after burst / rate seconds: past that it carries nothing.
        self._buckets.put(key, bucket, now + self.burst / self.rate)
        return math.ceil(wait) if wait > 0 else 0

    def __len__(self) -> int:
        return len(self._buckets)


class LongPollSlots:
    """A counter of waiting long-polls with a cap (0: none)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.waiting = 0

    def acquire(self) -> bool:
        if self.limit and self.waiting >= self.limit:
            return False
        self.waiting += 1
        return True

    def release(self) -> None:
        self.waiting = max(self.waiting - 1, 0)
