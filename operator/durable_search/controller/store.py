"""In-memory views of the watched objects, fed by kopf's watch events and by our own writes.

Workers read the newest body from here instead of trusting a copy from when they started, and
wait on :meth:`ObjectStore.changed` to wake up when their object (or a Search's child) changes.
A body older than the one held (by ``resourceVersion``) is ignored, so a watch event that
arrives after our own write's response cannot roll a worker back to a stale status.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Coroutine, Mapping
from typing import Any

from durable_search.api.status import Body, Key
from durable_search.kube.objects import version_order


def key_of(body: Mapping[str, Any]) -> Key:
    metadata = body["metadata"]
    return (str(metadata["namespace"]), str(metadata["name"]))


class ObjectStore:
    """Newest known body per object, and a wake-up signal per key.

    A finished object is *retired*: its body is dropped (thousands add up) but its version is
    kept as a floor, so that a watch event older than what we already know — the create's
    ADDED arriving after the outcome we wrote, a slow watch under load — can never bring back
    a finished task as if it had not run (its worker would send the request again).
    """

    def __init__(self) -> None:
        self._bodies: dict[Key, Body] = {}
        self._floors: dict[Key, tuple[str, Body]] = {}  # retired: uid, a metadata-only body
        self._signals: dict[Key, asyncio.Event] = defaultdict(asyncio.Event)

    def get(self, key: Key) -> Body | None:
        return self._bodies.get(key)

    def keys(self) -> list[Key]:
        """The keys whose bodies are held (not the retired ones)."""
        return list(self._bodies)

    @property
    def signals(self) -> int:
        """How many keys hold a change signal (a worker waits, or waited, on each)."""
        return len(self._signals)

    def put(self, body: Body) -> bool:
        """Keep ``body`` if it is not older than what is held (or retired); True when kept."""
        key = key_of(body)
        held = self._bodies.get(key)
        if held is None and key in self._floors:
            uid, floor = self._floors[key]
            if body["metadata"].get("uid") == uid and version_order(body, floor) <= 0:
                return False
            del self._floors[key]
        if held is not None and version_order(body, held) < 0:
            return False
        self._bodies[key] = body
        self.poke(key)
        return True

    def put_read(self, body: Body) -> bool:
        """Keep ``body`` just read from the API server: it is the truth now, even when the
        object was retired at that very version (a finished child a Search looks up)."""
        key = key_of(body)
        floor = self._floors.get(key)
        if floor is not None and floor[0] == body["metadata"].get("uid"):
            if version_order(body, floor[1]) < 0:
                return False
            del self._floors[key]
        return self.put(body)

    def retire(self, body: Body) -> None:
        """Forget ``body``'s object but refuse any version of it not newer than ``body``."""
        key = key_of(body)
        held = self._bodies.get(key)
        newest = held if held is not None and version_order(held, body) > 0 else body
        metadata = newest["metadata"]
        floor = {
            "metadata": {
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            }
        }
        self._floors[key] = (str(metadata.get("uid")), floor)
        self._bodies.pop(key, None)
        self.poke(key)

    def retire_key(self, key: Key) -> None:
        """Retire what is held under ``key``, if anything."""
        held = self._bodies.get(key)
        if held is not None:
            self.retire(held)

    def remove(self, key: Key, uid: str | None = None) -> None:
        """The object is gone (deleted): forget it, its floor too."""
        held = self._bodies.get(key)
        if held is not None and (uid is None or held["metadata"].get("uid") == uid):
            del self._bodies[key]
        floor = self._floors.get(key)
        if floor is not None and (uid is None or floor[0] == uid):
            del self._floors[key]
        self.poke(key)

    def poke(self, key: Key) -> None:
        self._signals[key].set()

    async def changed(self, key: Key, timeout: float | None) -> bool:
        """Wait until ``key`` is poked (True) or ``timeout`` passes (False)."""
        signal = self._signals[key]
        if timeout is not None and timeout <= 0:
            fired = signal.is_set()
        else:
            try:
                async with asyncio.timeout(timeout):
                    await signal.wait()
                fired = True
            except TimeoutError:
                fired = False
        signal.clear()
        return fired

    def forget_signal(self, key: Key) -> None:
        """Drop the wake-up signal of a key no worker waits on (one per object adds up)."""
        self._signals.pop(key, None)


class Workers:
    """At most one running coroutine per key; cancelled on deletion or shutdown."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: dict[Key, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def running(self, key: Key) -> bool:
        task = self._tasks.get(key)
        return task is not None and not task.done()

    def ensure(self, key: Key, work: Coroutine[Any, Any, None]) -> None:
        if self.running(key):
            work.close()
            return
        task = asyncio.create_task(work, name=f"{self._name}:{key[0]}/{key[1]}")
        self._tasks[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))

    def _forget(self, key: Key, done: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is done:
            del self._tasks[key]

    async def cancel(self, key: Key) -> None:
        task = self._tasks.pop(key, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def wait_empty(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for every running coroutine to end; True when none is left."""
        running = [task for task in self._tasks.values() if not task.done()]
        if running:
            await asyncio.wait(running, timeout=seconds)
        return all(task.done() for task in self._tasks.values())

    async def cancel_all(self) -> None:
        for key in list(self._tasks):
            await self.cancel(key)
