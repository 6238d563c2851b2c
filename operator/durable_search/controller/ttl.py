"""TTL after finished: one timer queue deletes finished Searches when their TTL has passed.

A finished Search needs nothing from the operator but its deletion, maybe a day later (every
web-started Search has a TTL). A worker and a held body each would grow the operator with every
finished Search; this queue holds a tuple per Search, and one task sleeps until the next is due.

In a ring every member queues every finished Search, but only the Search's owner deletes it when
due; the others look again every :data:`HANDOVER_SECONDS` until the owner's delete is seen (and
the entry forgotten) or the Search became theirs (its owner died or left): a TTL is never lost
with the member that held it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import logging
from collections.abc import Callable

from durable_search.api.constants import SEARCH_PLURAL
from durable_search.kube.api import KubeApi
from durable_search.kube.client import is_transient

logger = logging.getLogger("durable_search.ttl")
RETRY_SECONDS = 5.0
HANDOVER_SECONDS = 5.0

Entry = tuple[dt.datetime, str, str, str]  # due, namespace, name, uid


class TtlQueue:
    def __init__(
        self,
        api: KubeApi,
        clock: Callable[[], dt.datetime],
        owns: Callable[[str], bool] = lambda uid: True,
    ) -> None:
        self._api = api
        self._clock = clock
        self._owns = owns  # by the Search's uid, its ring key
        self._heap: list[Entry] = []
        self._scheduled: dict[tuple[str, str], str] = {}  # (namespace, name) -> uid
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._scheduled)

    def schedule(self, namespace: str, name: str, uid: str, due: dt.datetime) -> None:
        if self._scheduled.get((namespace, name)) == uid:
            return  # the same object, seen again (a re-list after a restart)
        self._scheduled[namespace, name] = uid
        heapq.heappush(self._heap, (due, namespace, name, uid))
        self._wake.set()

    def forget(self, namespace: str, name: str) -> None:
        """The Search is gone (deleted by someone else): its entry is skipped when due."""
        self._scheduled.pop((namespace, name), None)

    async def run(self) -> None:
        while True:
            self._wake.clear()
            timeout = None
            if self._heap:
                timeout = max((self._heap[0][0] - self._clock()).total_seconds(), 0.0)
            if timeout is None or timeout > 0:
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            _due, namespace, name, uid = heapq.heappop(self._heap)
            if self._scheduled.get((namespace, name)) != uid:
                continue
            if not self._owns(uid):
                later = self._clock() + dt.timedelta(seconds=HANDOVER_SECONDS)
                heapq.heappush(self._heap, (later, namespace, name, uid))
                continue
            try:
                await self._api.delete(SEARCH_PLURAL, namespace, name, uid)
            except Exception as error:
                if not is_transient(error):
                    logger.warning(
                        "%s/%s: could not delete after its TTL: %s", namespace, name, error
                    )
                    self._scheduled.pop((namespace, name), None)
                    continue
                retry = self._clock() + dt.timedelta(seconds=RETRY_SECONDS)
                heapq.heappush(self._heap, (retry, namespace, name, uid))
                continue
            self._scheduled.pop((namespace, name), None)
            logger.info("%s/%s: deleted after its TTL (finished)", namespace, name)
