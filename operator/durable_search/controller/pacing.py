"""The operator's pacing state: providers' rate limits and origins' Retry-After holds.

The decisions are ``engine.pacing``'s; this module holds its one :class:`~engine.pacing.Pacer`
for the process, reads each SearchProvider's ``spec.rateLimit`` (cached briefly: a GET per
provider every :data:`LIMIT_TTL_SECONDS` at most, never one per request) and tells the HttpTask
worker how long to wait before a send. Which provider a task was made from is the annotation
``durablesearch.dev/search-provider`` the fan-out sets on children of SearchProvider objects
(inline providers have no rate limit). The waiting itself is the worker's: it is neither an
attempt nor a status write.

Standalone, the operator enforces the whole rate. In a ring each member enforces its share
(``engine.pacing.share``: the rate divided by the live members), which is approximate.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from durable_search.api.constants import ANNOTATION_SEARCH_PROVIDER
from durable_search.api.models import RateLimit
from durable_search.engine.pacing import Pacer, hold_seconds, share
from durable_search.kube.api import KubeApi

logger = logging.getLogger("durable_search.pacing")

LIMIT_TTL_SECONDS = 5.0
MAX_CACHED_LIMITS = 1024


class Pacing:
    def __init__(
        self,
        api: KubeApi,
        *,
        clock: Callable[[], float] = time.monotonic,
        members: Callable[[], int] = lambda: 1,
    ) -> None:
        self._api = api
        self.clock = clock
        self._members = members
        self.pacer = Pacer()
        self._limits: OrderedDict[tuple[str, str], tuple[float, RateLimit | None]] = OrderedDict()

    async def delay(
        self,
        namespace: str,
        metadata: Mapping[str, Any],
        origin: str,
        max_wait: float,
        limit: float,
    ) -> float | None:
        """Seconds to wait before sending (a token is reserved), or None: not before ``limit``.

        ``max_wait`` caps a Retry-After hold (the task's ``retry.maxIntervalSeconds``).
        """
        now = self.clock()
        held = self.pacer.held_for((namespace, origin), now, max_wait)
        if held > limit:
            return None
        provider = (metadata.get("annotations") or {}).get(ANNOTATION_SEARCH_PROVIDER)
        if not provider:
            return held
        rate_limit = await self._rate_limit(namespace, str(provider))
        if rate_limit is None:
            return held
        rate = share(rate_limit.requests_per_second, self._members())
        wait = self.pacer.reserve(
            (namespace, str(provider)), rate, rate_limit.burst, now, limit - held
        )
        return None if wait is None else held + wait

    def answered(
        self,
        namespace: str,
        origin: str,
        status_code: int,
        retry_after: float | None,
        max_interval: float,
    ) -> None:
        """Record a 429/503 + Retry-After from ``origin``: its namespace's tasks hold back."""
        seconds = hold_seconds(status_code, retry_after, max_interval)
        if seconds is not None:
            logger.info("%s: holding back requests to %s for %.3gs", namespace, origin, seconds)
            self.pacer.hold((namespace, origin), self.clock() + seconds)

    async def _rate_limit(self, namespace: str, name: str) -> RateLimit | None:
        key = (namespace, name)
        now = self.clock()
        cached = self._limits.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            provider = await self._api.get_provider(namespace, name)
        except Exception as error:  # an API hiccup must not stop the send: no limit this once
            logger.warning("%s/%s: cannot read the SearchProvider's rateLimit: %s", *key, error)
            return cached[1] if cached is not None else None
        limit = RateLimit.parse((provider or {}).get("spec", {}).get("rateLimit"))
        self._limits[key] = (now + LIMIT_TTL_SECONDS, limit)
        self._limits.move_to_end(key)
        while len(self._limits) > MAX_CACHED_LIMITS:
            self._limits.popitem(last=False)
        return limit
