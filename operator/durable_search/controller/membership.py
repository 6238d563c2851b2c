"""A member of an operator ring: its own Lease, renewed, and the live members it sees.

The member writes ``<ring>-<identity>`` every ``renew_seconds`` and lists the ring's Leases
every ``poll_seconds``; a change of the live members is handed to ``on_change`` with the shares
before and after (``engine.ring`` decides who owns what). A member whose own renewal has not
succeeded within its Lease's duration counts itself out (it fences itself): the others may
already have taken its objects over.

Leaving is two steps, so nothing in flight is sent twice: :meth:`Membership.mark_leaving`
(the others stop giving it objects but still honour its claims), then, after the drain,
:meth:`Membership.leave` deletes the Lease (its remaining claims may then be taken over at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from durable_search.controller.metrics import METRICS
from durable_search.engine import ring
from durable_search.engine.ring import Member, Shares
from durable_search.kube.api import KubeApi

logger = logging.getLogger("durable_search.ring")

OnChange = Callable[[Shares, Shares], Awaitable[None]]


class Membership:
    def __init__(
        self,
        api: KubeApi,
        ring_name: str,
        identity: str,
        namespace: str,
        clock: Callable[[], dt.datetime],
        *,
        lease_seconds: int = ring.DEFAULT_LEASE_SECONDS,
        renew_seconds: float = 5.0,
        poll_seconds: float = 1.0,
        watched: tuple[str, ...] = (),
    ) -> None:
        self.api = api
        self.ring = ring_name
        self.identity = identity
        self.namespace = namespace
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.poll_seconds = poll_seconds
        self.watched = watched  # the namespaces the member works in; () for every one
        self.leaving = False
        self.shares = Shares(identity, ())
        self._members: dict[str, Member] = {}
        self._renewed: dt.datetime | None = None

    # -- what the others may ask -------------------------------------------------------------

    def holds_claims(self, identity: str) -> bool:
        """Whether ``identity``'s claims must still be honoured: its Lease exists and is fresh.

        A leaving member is no longer given objects, but it is still draining what it has in
        flight: its claims hold until it deletes its Lease or the Lease lapses.
        """
        if identity == self.identity:
            return True
        member = self._members.get(identity)
        if member is None or member.renewed is None:
            return False
        return self.clock() < member.renewed + dt.timedelta(seconds=member.lease_seconds)

    # -- the Lease ---------------------------------------------------------------------------

    async def join(self) -> None:
        """Write this member's Lease and learn the others (before any object is taken)."""
        await self._renew()
        await self._refresh()

    async def run(self, on_change: OnChange) -> None:
        """Renew and watch the ring until cancelled; ``on_change`` sees every new snapshot."""
        next_renew = self.clock() + dt.timedelta(seconds=self.renew_seconds)
        while True:
            await asyncio.sleep(self.poll_seconds)
            if self.clock() >= next_renew:
                try:
                    await self._renew()
                except Exception as error:
                    logger.warning("could not renew Lease %s: %s", self._lease_name, error)
                next_renew = self.clock() + dt.timedelta(seconds=self.renew_seconds)
            before = self.shares
            try:
                await self._refresh()
            except Exception as error:
                logger.warning("could not list the ring's Leases: %s", error)
                self._fence_if_stale()
            if self.shares != before:
                logger.info(
                    "ring %s: members %s (was %s)",
                    self.ring,
                    ", ".join(self.shares.members) or "none",
                    ", ".join(before.members) or "none",
                )
                await on_change(before, self.shares)

    async def mark_leaving(self) -> None:
        self.leaving = True
        with contextlib.suppress(Exception):
            await self._renew()
        self.shares = self._without_me()

    async def leave(self) -> None:
        try:
            await self.api.delete_lease(self.namespace, self._lease_name)
        except Exception as error:
            logger.warning("could not delete Lease %s: %s", self._lease_name, error)

    # -- internals ---------------------------------------------------------------------------

    @property
    def _lease_name(self) -> str:
        return ring.lease_name(self.ring, self.identity)

    async def _renew(self) -> None:
        now = self.clock()
        body = ring.lease_body(
            self.ring,
            self.identity,
            now,
            lease_seconds=self.lease_seconds,
            leaving=self.leaving,
            namespaces=self.watched,
        )
        if await self.api.write_lease(self.namespace, body):
            self._renewed = now  # else someone else wrote it: next round

    async def _refresh(self) -> None:
        leases = await self.api.list_leases(self.namespace, f"{ring.RING_LABEL}={self.ring}")
        self._members = {
            member.identity: member
            for member in (ring.member_of_lease(lease) for lease in leases)
            if member is not None
        }
        self._update(leases)

    def _update(self, leases: Sequence[Mapping[str, Any]]) -> None:
        now = self.clock()
        members = set(ring.live_members(leases, now))
        members.discard(self.identity)
        if not self.leaving and self._fresh(now):
            members.add(self.identity)
        shares = Shares(self.identity, tuple(sorted(members)))
        self.shares = shares
        METRICS.ring_members.set(len(shares.members))

    def _fresh(self, now: dt.datetime) -> bool:
        if self._renewed is None:
            return False
        # A margin of a third of the Lease: stop before the others may take over.
        margin = dt.timedelta(seconds=self.lease_seconds * 2 / 3)
        return now < self._renewed + margin

    def _fence_if_stale(self) -> None:
        if self.identity in self.shares.members and not self._fresh(self.clock()):
            logger.error("ring %s: own Lease not renewed in time; taking no work", self.ring)
            self.shares = self._without_me()

    def _without_me(self) -> Shares:
        return Shares(self.identity, tuple(m for m in self.shares.members if m != self.identity))
