"""The TTL queue deletes each finished Search once, when due, with its uid as precondition."""

from __future__ import annotations

import asyncio
import datetime as dt

from durable_search.controller import ttl
from durable_search.controller.ttl import TtlQueue

NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)


class FakeApi:
    def __init__(self) -> None:
        self.deleted: list[tuple[str, str, str, str | None]] = []

    async def delete(self, plural: str, namespace: str, name: str, uid: str | None = None) -> None:
        self.deleted.append((plural, namespace, name, uid))


async def test_due_searches_are_deleted_once_and_forgotten_ones_not_at_all() -> None:
    api = FakeApi()
    queue = TtlQueue(api, lambda: NOW)  # type: ignore[arg-type]
    queue.schedule("ns", "done", "u1", NOW - dt.timedelta(seconds=1))
    queue.schedule("ns", "done", "u1", NOW - dt.timedelta(seconds=1))  # seen again: once
    queue.schedule("ns", "gone", "u2", NOW)
    queue.forget("ns", "gone")  # deleted by someone else meanwhile
    queue.schedule("ns", "later", "u3", NOW + dt.timedelta(hours=1))
    runner = asyncio.create_task(queue.run())
    await asyncio.sleep(0.05)
    runner.cancel()
    assert api.deleted == [("searches", "ns", "done", "u1")]
    assert len(queue) == 1  # only "later" is still waiting


async def test_a_member_deletes_only_what_it_owns_and_takes_over_a_due_search_it_gains() -> None:
    api = FakeApi()
    owned = {"mine"}
    clock = [NOW]
    queue = TtlQueue(api, lambda: clock[0], owns=lambda uid: uid in owned)  # type: ignore[arg-type]
    queue.schedule("ns", "a", "mine", NOW - dt.timedelta(seconds=1))
    queue.schedule("ns", "b", "theirs", NOW - dt.timedelta(seconds=1))
    runner = asyncio.create_task(queue.run())
    await asyncio.sleep(0.05)
    assert api.deleted == [("searches", "ns", "a", "mine")]
    assert len(queue) == 1  # "b" waits: its owner deletes it, or it becomes ours
    owned.add("theirs")  # the owner died: the ring gave "b" to this member
    clock[0] = NOW + dt.timedelta(seconds=ttl.HANDOVER_SECONDS)
    queue.schedule("ns", "c", "mine", clock[0])  # wakes the queue
    await asyncio.sleep(0.05)
    runner.cancel()
    assert ("searches", "ns", "b", "theirs") in api.deleted
    assert len(queue) == 0
