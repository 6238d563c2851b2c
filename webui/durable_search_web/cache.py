"""One shared watch of the namespace's Searches, an in-memory cache, and change notification.

Every status request and every long-poll is answered from here: however many clients wait, the
API server sees one list and one watch. A waiter holds the Search's current *change event*;
each change sets it and installs a fresh one, so a waiter wakes exactly when its Search changes.
The watch resumes from its last resourceVersion, uses bookmarks, and re-lists on 410 Gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import watch as k8s_watch

from durable_search.api.constants import GROUP, SEARCH_PLURAL, VERSION
from durable_search.kube.objects import version_order, without_bookkeeping

logger = logging.getLogger("durable_search_web.cache")
Body = dict[str, Any]

WATCH_TIMEOUT_SECONDS = 240
LIST_PAGE = 500
_BACKOFF = (0.5, 1, 2, 5, 10)


class SearchCache:
    def __init__(
        self, api_client: k8s.ApiClient, namespace: str, page_size: int = LIST_PAGE
    ) -> None:
        self._custom = k8s.CustomObjectsApi(api_client)
        self.namespace = namespace
        self._page_size = page_size
        self._items: dict[str, Body] = {}
        self._changes: dict[str, asyncio.Event] = {}
        self.changed_at: dict[str, float] = {}  # monotonic time of each Search's last change
        self._resource_version = ""
        self.synced = asyncio.Event()
        self.last_contact = time.monotonic()  # list, event or bookmark: the watch is alive

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
            self.changed_at[name] = time.monotonic()
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
                delay = _BACKOFF[min(failures, len(_BACKOFF) - 1)]
                failures += 1
                logger.warning("watch of searches failed (%s); re-listing in %ss", error, delay)
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        # In pages: one response holding every Search would set the process's peak memory.
        fresh: dict[str, Body] = {}
        token = ""
        while True:
            page = await self._custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                SEARCH_PLURAL,
                limit=self._page_size,
                _continue=token,
            )
            for item in page.get("items", []):
                fresh[item["metadata"]["name"]] = compact(item)
            token = page["metadata"].get("continue") or ""
            if not token:
                break
        gone = self._items.keys() - fresh.keys()
        self._items = fresh
        self._resource_version = page["metadata"]["resourceVersion"]
        for name in list(self._changes):
            if name in gone or name in fresh:
                self._notify(name)
        self.last_contact = time.monotonic()
        self.synced.set()

    async def _watch(self) -> bool:
        """One watch request; True to continue from where it ended, False to re-list."""
        watcher = k8s_watch.Watch()
        stream = watcher.stream(
            self._custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            SEARCH_PLURAL,
            resource_version=self._resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
        )
        try:
            async for event in stream:
                self.last_contact = time.monotonic()
                kind = event["type"]
                body = event["object"]
                if kind == "ERROR":
                    logger.info("watch expired (%s); re-listing", body.get("message"))
                    return False
                if isinstance(body, dict):
                    version = body.get("metadata", {}).get("resourceVersion")
                    if version:
                        self._resource_version = version
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    self.remove(body["metadata"]["name"])
                else:
                    self.put(body)
        finally:
            watcher.stop()
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
