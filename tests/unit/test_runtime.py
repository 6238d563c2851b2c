"""The event router holds nothing for objects no worker needs; the supervisor gives up well."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from durable_search.api.timestamps import now
from durable_search.controller.events import EventRecorder
from durable_search.controller.runtime import MAX_INTERNAL_FAILURES, Runtime, supervise
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
    assert tasks.signals == 0 and searches.signals == 0
    assert searches.get(("ns", "s1")) is None
    assert tasks.get(("ns", "s1-a")) is None, "nobody folds a finished task in: hold nothing"


async def _no_wait(_: float) -> None:
    return None


async def test_a_worker_our_code_keeps_failing_on_gives_the_object_up() -> None:
    runs: list[int] = []
    given_up: list[str] = []

    async def work() -> None:
        runs.append(1)
        raise KeyError("status")

    async def give_up(message: str) -> None:
        given_up.append(message)

    await supervise("httptask ns/t", work, give_up, sleep=_no_wait)
    assert len(runs) == MAX_INTERNAL_FAILURES
    assert given_up == ["KeyError: 'status'"]


async def test_an_unreachable_api_server_is_waited_out_not_given_up() -> None:
    runs: list[int] = []

    async def work() -> None:
        runs.append(1)
        if len(runs) < 3 * MAX_INTERNAL_FAILURES:
            raise aiohttp.ClientConnectionError("connection refused")

    async def give_up(message: str) -> None:
        raise AssertionError(f"gave up: {message}")

    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    await supervise("search ns/s", work, give_up, sleep=sleep)
    assert len(runs) == 3 * MAX_INTERNAL_FAILURES
    # Looked at again every 2 s or so, not after 10 or 30 s: the work resumes soon after.
    assert max(delays) <= 2 * 1.25 and min(delays[3:]) >= 2 * 0.75
