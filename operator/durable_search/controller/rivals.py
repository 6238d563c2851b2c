"""Not running beside a rival operator; a standalone operator's own Lease.

At start an operator writes its Lease and lists the others' (``engine.rivals`` decides which
conflict). Beside a live rival it steps aside (deletes its Lease, so two that start together do
not wait on each other) and waits for the rival's Lease to go: deleted on a graceful stop, or
lapsed after a kill. A rival still renewing after a Lease's duration is a real one: the operator
refuses to start, saying which.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable

from durable_search.engine import rivals
from durable_search.engine.ring import ALL_NAMESPACES, DEFAULT_LEASE_SECONDS, MODE_LABEL
from durable_search.engine.rivals import Mode
from durable_search.errors import ApiError, OperatorConflictError
from durable_search.kube.api import KubeApi

logger = logging.getLogger("durable_search.rivals")

Step = Callable[[], Awaitable[None]]


async def wait_until_alone(
    api: KubeApi,
    namespace: str,
    mine: Mode,
    my_lease: str,
    *,
    write_own: Step,
    remove_own: Step,
    clock: Callable[[], dt.datetime],
    wait_seconds: float = DEFAULT_LEASE_SECONDS + 5,
    poll_seconds: float = 1.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Return once this operator's Lease is written and no rival's is live; else raise.

    Raises :class:`OperatorConflictError` when a rival is still live after ``wait_seconds``.
    """
    deadline = clock() + dt.timedelta(seconds=wait_seconds)
    told = False
    while True:
        await write_own()
        leases = await api.list_leases(namespace, MODE_LABEL)
        for name in rivals.forgotten(leases, clock()):
            logger.info("deleting Lease %s: lapsed long ago (its operator was killed)", name)
            await api.delete_lease(namespace, name)
        found = rivals.rivals(leases, mine, my_lease, clock())
        if not found:
            return
        await remove_own()
        described = "; ".join(rival.describe() for rival in found)
        if clock() >= deadline:
            raise OperatorConflictError(
                f"{mine.describe()} cannot run beside {described} in namespace {namespace}: "
                "each would send every request. Stop it, or run every operator of these "
                "namespaces with the same --ring"
            )
        if not told:
            logger.warning(
                "waiting up to %.0fs for %s to stop (a Lease lapses %ss after its last renewal)",
                wait_seconds,
                described,
                DEFAULT_LEASE_SECONDS,
            )
            told = True
        await sleep(poll_seconds * random.uniform(0.5, 1.5))  # jitter: two that start together part


class StandaloneLease:
    """The Lease a standalone operator renews, so that no ring starts beside it."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        identity: str,
        watched: tuple[str, ...],
        clock: Callable[[], dt.datetime],
        *,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        renew_seconds: float = 5.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.identity = identity
        self.watched = watched
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.name = rivals.standalone_lease_name(identity)
        self.mode = Mode(None, watched or (ALL_NAMESPACES,))

    async def renew(self) -> None:
        body = rivals.standalone_lease(
            self.identity, self.clock(), self.watched, lease_seconds=self.lease_seconds
        )
        await self.api.write_lease(self.namespace, body)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                await self.renew()
            except Exception as error:
                logger.warning("could not renew Lease %s: %s", self.name, error)

    async def leave(self) -> None:
        try:
            await self.api.delete_lease(self.namespace, self.name)
        except Exception as error:
            logger.warning("could not delete Lease %s: %s", self.name, error)


async def hold_standalone_lease(lease: StandaloneLease) -> StandaloneLease | None:
    """The standalone Lease written once no ring is live beside it; None without Lease rights."""
    try:
        await wait_until_alone(
            lease.api,
            lease.namespace,
            lease.mode,
            lease.name,
            write_own=lease.renew,
            remove_own=lease.leave,
            clock=lease.clock,
        )
    except ApiError as error:
        if error.status != 403:
            raise
        logger.warning(
            "no rights on Leases in %s (%s): a ring started beside this standalone operator "
            "would not be noticed; grant get, list, create, update and delete on leases",
            lease.namespace,
            error.message,
        )
        return None
    return lease
