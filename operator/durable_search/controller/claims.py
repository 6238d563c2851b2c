"""Claims in a ring: a member sends an HttpTask's next request only while it holds its claim.

Standalone operators have no :class:`Claims` (``TaskContext.claims`` is None) and write nothing
extra. In a ring every outcome a member writes names it (``status.claim.holder``); a child is
created naming its creator (``durablesearch.dev/claimed-by``). Taking a claim over is a status
write guarded by the resourceVersion the verdict was made on, so of two members deciding at
once exactly one wins; the loser re-reads and waits. A member giving an object up writes an
empty holder once the exchange in flight (if any) is recorded: the new owner then takes over
without waiting for a Lease to lapse.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from durable_search.api.constants import HTTPTASK_PLURAL
from durable_search.api.status import Body, HttpTaskStatus, Key, task_status
from durable_search.controller.membership import Membership
from durable_search.controller.metrics import METRICS
from durable_search.engine import ring
from durable_search.errors import ConflictError, NotFoundError
from durable_search.kube.api import KubeApi

logger = logging.getLogger("durable_search.ring")

# How often a worker waiting for another member's release looks again (its Lease may lapse).
RECHECK_SECONDS = 2.0


@dataclass
class Claims:
    membership: Membership
    releasing: set[Key] = field(default_factory=set)

    @property
    def me(self) -> str:
        return self.membership.identity

    def stamp(self, key: Key, status: Mapping[str, Any]) -> HttpTaskStatus:
        """``status`` naming its holder: this member, or nobody once it gives the object up."""
        holder = "" if key in self.releasing else self.me
        return {**cast(HttpTaskStatus, status), **ring.claim_status(holder)}

    def verdict(self, body: Mapping[str, Any]) -> ring.ClaimVerdict:
        return ring.decide_claim(body, self.me, self.membership.holds_claims)

    async def take_over(self, api: KubeApi, body: Body, previous: str | None) -> Body | None:
        """Claim ``body`` for this member; None when another write came first (re-read)."""
        status: HttpTaskStatus = {**task_status(body), **ring.claim_status(self.me)}
        try:
            written = await api.write_status(HTTPTASK_PLURAL, body, status)
        except (ConflictError, NotFoundError):
            return None
        METRICS.claims.labels(action="taken_over").inc()
        logger.info(
            "%s/%s: claim taken over from %s",
            body["metadata"]["namespace"],
            body["metadata"]["name"],
            previous or "nobody",
        )
        return written

    async def release(self, api: KubeApi, body: Body) -> Body | None:
        """Give ``body``'s claim up (when this member holds it); the written body, if any."""
        if ring.claim_holder(body) != self.me:
            return None
        status: HttpTaskStatus = {**task_status(body), **ring.claim_status("")}
        try:
            written = await api.write_status(HTTPTASK_PLURAL, body, status)
        except (ConflictError, NotFoundError):
            return None
        METRICS.claims.labels(action="released").inc()
        return written
