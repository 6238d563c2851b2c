"""One shared watch of the namespace's Searches, an in-memory cache, and change notification.

Every status request and every long-poll is answered from here: however many clients wait, the
API server sees one list and one watch. A waiter holds the Search's current *change event*;
each change sets it and installs a fresh one, so a waiter wakes exactly when its Search changes.
The watch resumes from its last resourceVersion, uses bookmarks, and re-lists at once on 410 Gone
(after a backoff on any other failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from durable_search.api.constants import SEARCH_PLURAL
from durable_search.api.status import Body
from durable_search.errors import ApiError
from durable_search.kube.api import custom_path
from durable_search.kube.client import KubeClient
from durable_search.kube.objects import version_order, without_bookkeeping
from durable_search_web.clock import SYSTEM_CLOCK, Clock

logger = logging.getLogger("durable_search_web.cache")

WATCH_TIMEOUT_SECONDS = 240
LIST_PAGE = 500
GONE = 410  # the resourceVersion is too old to watch from: list again
BACKOFF_SECONDS = (0.5, 1, 2, 5, 10)  # after the 1st, 2nd, ... failure in a row


class SearchCache:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        page_size: int = LIST_PAGE,
        *,
        clock: Clock = SYSTEM_CLOCK,
        backoff: tuple[float, ...] = BACKOFF_SECONDS,
    ) -> None:
        self._client = client
        self._clock = clock
        self._backoff = backoff
        self.namespace = namespace
        self._path = custom_path(SEARCH_PLURAL, namespace)
        self._page_size = page_size
        self._items: dict[str, Body] = {}
        self._changes: dict[str, asyncio.Event] = {}
        self.changed_at: dict[str, float] = {}  # monotonic time of each Search's last change
        self._resource_version = ""
        self.synced = asyncio.Event()
        self.last_contact = clock.monotonic()  # list, event or bookmark: the watch is alive

    # -- reading -----------------------------------------------------------------------------

    def get(self, name: str) -> Body | None:
        return self._items.get(name)

    def all(self) -> list[Body]:
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def change_event(self, name: str) -> asyncio.Event:
        """The event the next change of ``name`` (or its deletion) will set."""
        event = self._changes.get(name)
        if event is None:
            event = self._changes[name] = asyncio.Event()
        return event

    # -- writing -----------------------------------------------------------------------------

    def put(self, body: Mapping[str, Any]) -> None:
        """Cache ``body`` unless an equal or newer version is held; notify its waiters."""
        name = body["metadata"]["name"]
        held = self._items.get(name)
        if held is not None and version_order(body, held) <= 0:
            return
        self._items[name] = compact(body)
        self._notify(name)

    def remove(self, name: str) -> None:
        self._items.pop(name, None)
        self._notify(name)

    def _notify(self, name: str) -> None:
        if name in self._items:
            self.changed_at[name] = self._clock.monotonic()
        else:
            self.changed_at.pop(name, None)
        event = self._changes.pop(name, None)
        if event is not None:
            event.set()

    # -- the watch ---------------------------------------------------------------------------

    async def run(self) -> None:
        """List, then watch from the list's resourceVersion, forever (cancel to stop)."""
        failures = 0
        while True:
            try:
                await self._list()
                failures = 0
                while await self._watch():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as error:
                delay = self._backoff[min(failures, len(self._backoff) - 1)]
                failures += 1
                logger.warning("watch of searches failed (%s); re-listing in %ss", error, delay)
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        # In pages, each slimmed as it comes: one response holding every Search (or every page
        # in full) would set the process's peak memory.
        fresh: dict[str, Body] = {}
        version = ""
        pages = self._client.list_pages(self._path, page=self._page_size)
        async for items, page_version in pages:
            for item in items:
                fresh[item["metadata"]["name"]] = compact(item)
            version = page_version
        gone = self._items.keys() - fresh.keys()
        self._items = fresh
        self._resource_version = version
        for name in list(self._changes):
            if name in gone or name in fresh:
                self._notify(name)
        self.last_contact = self._clock.monotonic()
        self.synced.set()

    async def _watch(self) -> bool:
        """One watch request; True to continue from where it ended, False to re-list."""
        events = self._client.watch(
            self._path, self._resource_version, timeout_seconds=WATCH_TIMEOUT_SECONDS
        )
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    self.last_contact = self._clock.monotonic()
                    if not self._apply(event):
                        return False
        except ApiError as error:
            if error.status != GONE:
                raise
            logger.info("watch expired (%s); re-listing", error.message)
            return False
        return True

    def _apply(self, event: Mapping[str, Any]) -> bool:
        """Fold one watch event into the cache; False when the watch expired (re-list)."""
        kind = event.get("type")
        body = event.get("object") or {}
        if kind == "ERROR":
            if body.get("code") == GONE:
                logger.info("watch expired (%s); re-listing", body.get("message"))
                return False
            raise ApiError(str(body.get("message") or "watch error"), int(body.get("code") or 0))
        version = (body.get("metadata") or {}).get("resourceVersion")
        if version:
            self._resource_version = version
        if kind == "BOOKMARK":
            return True
        if kind == "DELETED":
            self.remove(body["metadata"]["name"])
        else:
            self.put(body)
        return True


def compact(body: Mapping[str, Any]) -> Body:
    """What the API answers need of a Search: no bookkeeping, inline providers by name only.

    Thousands of Searches are held at once, and as Python objects a Search's managedFields and
    inline provider specs outweigh everything the status document uses.
    """
    slim = without_bookkeeping(body)
    spec = dict(slim.get("spec") or {})
    if spec.get("providers"):
        spec["providers"] = [{"name": p.get("name")} for p in spec["providers"]]
    slim["spec"] = spec
    return slim
