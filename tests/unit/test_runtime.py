"""The event router holds nothing for objects no worker needs."""

from __future__ import annotations

import asyncio
from typing import Any

from durable_search.api.timestamps import now
from durable_search.controller.events import EventRecorder
from durable_search.controller.runtime import Runtime
from durable_search.controller.searches import SearchContext
from durable_search.controller.store import ObjectStore
from durable_search.controller.tasks import TaskContext


def finished_task(n: int) -> dict[str, Any]:
    return {
        "apiVersion": "durablesearch.dev/v1alpha1",
        "kind": "HttpTask",
        "metadata": {
            "name": f"s{n}-a",
            "namespace": "ns",
            "uid": f"u{n}",
            "resourceVersion": "5",
            "ownerReferences": [{"kind": "Search", "name": f"s{n}", "controller": True}],
        },
        "spec": {"request": {"url": "http://a/"}},
        "status": {
            "phase": "Succeeded",
            "outcome": "Succeeded",
            "attempts": 1,
            "response": {"statusCode": 200, "body": "<p/>"},
        },
    }


def finished_search(n: int) -> dict[str, Any]:
    return {
        "apiVersion": "durablesearch.dev/v1alpha1",
        "kind": "Search",
        "metadata": {"name": f"s{n}", "namespace": "ns", "uid": f"s{n}", "resourceVersion": "6"},
        "spec": {"query": "q"},
        "status": {"phase": "Completed", "results": []},
    }


def test_finished_objects_leave_no_signal_and_no_search_behind() -> None:
    tasks, searches = ObjectStore(), ObjectStore()
    unused: Any = None  # no worker runs for finished objects: nothing calls these
    runtime = Runtime(
        TaskContext(api=unused, store=tasks, http=unused, credentials=unused, clock=now),
        SearchContext(
            api=unused, searches=searches, tasks=tasks, events=EventRecorder(None), clock=now
        ),
    )

    async def replay() -> None:
        for n in range(100):
            await runtime.on_search_event("ADDED", finished_search(n))
            await runtime.on_task_event("ADDED", finished_task(n))

    asyncio.run(replay())
    assert tasks._signals == {} and searches._signals == {}
    assert searches.get(("ns", "s1")) is None
    summary = tasks.get(("ns", "s1-a"))
    assert summary is not None and "spec" not in summary
