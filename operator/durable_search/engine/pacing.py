"""Pacing: a SearchProvider's ``rateLimit`` and the holds a 429/503 + Retry-After puts on an origin.

Pure: every function takes ``now`` (seconds on any monotonic scale); ``controller.pacing`` keeps
the state in the operator and does the waiting. Nothing here is persisted: after a restart the
buckets start full and the holds are forgotten, which at worst lets one burst through.

- A provider's bucket is a *reservation* token bucket: each request takes a token at once, even
  one not yet there, and is told how long to wait for it. Concurrent requests therefore queue in
  order, ``1 / requestsPerSecond`` apart after the burst, without polling. A request that would
  wait past its deadline takes nothing (it will end TimedOut, not spend another's slot).
- A hold is per (namespace, origin): a 429 or 503 with ``Retry-After`` from an origin holds back
  every task of that namespace bound for it until then. Each held task waits at most its own
  ``retry.maxIntervalSeconds`` for a hold, as its own retry would.

In a ring of operators each member enforces its share, the rate divided by the
live members (burst at least 1): approximate, since members do not see each other's buckets.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TypeVar

# Buckets and holds kept at most (least recently used forgotten first): keys are chosen by users.
MAX_KEYS = 4096
_V = TypeVar("_V")


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: int  # the most tokens it holds
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: int, now: float) -> TokenBucket:
        return cls(rate, max(burst, 1), float(max(burst, 1)), now)

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait_for(self, now: float) -> float:
        """Seconds until one more token would be there (0 if one is), reserving nothing."""
        self.refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def reserve(self, now: float, limit: float = math.inf) -> float | None:
        """Take a token; the seconds to wait for it, or None (nothing taken) if past ``limit``."""
        wait = self.wait_for(now)
        if wait > limit:
            return None
        self.tokens -= 1
        return wait

    def reconfigure(self, rate: float, burst: int, now: float) -> None:
        """New limits from an edited provider: the tokens (or debt) carry over, capped."""
        self.refill(now)
        self.rate, self.burst = rate, max(burst, 1)
        self.tokens = min(self.tokens, float(self.burst))


def share(rate: float, members: int) -> float:
    """One ring member's part of a provider's rate (the whole rate standalone)."""
    return rate / max(members, 1)


class Pacer:
    """Buckets by provider and holds by origin, with ``now`` passed to every call."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._max_keys = max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()
        self._holds: OrderedDict[Hashable, float] = OrderedDict()

    # -- rate limits ------------------------------------------------------------------------

    def reserve(
        self, provider: Hashable, rate: float, burst: int, now: float, limit: float = math.inf
    ) -> float | None:
        """Seconds to wait for ``provider``'s next token (taken), or None past ``limit``."""
        bucket = self._buckets.get(provider)
        if bucket is None:
            bucket = TokenBucket.full(rate, burst, now)
            self._buckets[provider] = bucket
        elif (bucket.rate, bucket.burst) != (rate, max(burst, 1)):
            bucket.reconfigure(rate, burst, now)
        self._buckets.move_to_end(provider)
        self._trim(self._buckets)
        return bucket.reserve(now, limit)

    # -- holds ------------------------------------------------------------------------------

    def hold(self, origin: Hashable, until: float) -> None:
        """Hold ``origin`` back until ``until`` (a later hold wins; an earlier one is ignored)."""
        if until > self._holds.get(origin, -math.inf):
            self._holds[origin] = until
        self._holds.move_to_end(origin)
        self._trim(self._holds)

    def held_for(self, origin: Hashable, now: float, max_wait: float) -> float:
        """Seconds a task bound for ``origin`` waits now: the hold left, at most ``max_wait``."""
        until = self._holds.get(origin)
        if until is None:
            return 0.0
        if until <= now:
            del self._holds[origin]
            return 0.0
        return min(until - now, max(max_wait, 0.0))

    def _trim(self, table: OrderedDict[Hashable, _V]) -> None:
        while len(table) > self._max_keys:
            table.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets) + len(self._holds)


def hold_seconds(status_code: int, retry_after: float | None, max_interval: float) -> float | None:
    """How long an answer holds its origin back: 429/503 with a Retry-After, clamped."""
    if status_code not in (429, 503) or retry_after is None or retry_after <= 0:
        return None
    return min(retry_after, max(max_interval, 0.0))
