"""The Search worker (``controller.searches``) against an in-memory API: children by recorded name.

A Search planned by an older operator recorded its children under the naming of the day
(``a-b-c`` for Search ``a`` and provider ``b-c``, before names carried the uid's hash). The
worker must keep finding them by the recorded name, and re-create a lost one under it too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

from durable_search.api.constants import HTTPTASK_PLURAL, PROVIDER_PLURAL, SEARCH_PLURAL
from durable_search.controller.searches import SearchContext, run_search
from durable_search.controller.store import ObjectStore
from durable_search.engine.fanout import SearchRef, owner_reference
from durable_search.engine.names import child_name
from durable_search.errors import NotFoundError

NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)
UID = "uid-a"
OLD_NAME = "a-b-c"  # Search "a", provider "b-c", as named before the uid's hash
MAX_CALLS = 50  # far more than one Search needs: past it, the worker is looping


class FakeApi:
    """Objects by (plural, name) in one namespace; every call counted."""

    def __init__(self, objects: Mapping[tuple[str, str], dict[str, Any]]) -> None:
        self.objects = dict(objects)
        self.calls: list[tuple[str, str, str]] = []
        self.created: list[str] = []

    def _count(self, verb: str, plural: str, name: str) -> None:
        self.calls.append((verb, plural, name))
        if len(self.calls) > MAX_CALLS:
            raise AssertionError(f"the worker loops: {self.calls[-6:]}")

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        self._count("get", plural, name)
        try:
            return self.objects[plural, name]
        except KeyError:
            raise NotFoundError(f"{plural} {name!r} not found") from None

    async def get_provider(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._count("get", PROVIDER_PLURAL, name)
        return self.objects.get((PROVIDER_PLURAL, name))

    async def create(
        self, plural: str, namespace: str, body: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        name = body["metadata"]["name"]
        self._count("create", plural, name)
        if (plural, name) in self.objects:
            return None
        self.created.append(name)
        # The child runs at once and succeeds (its worker is not under test here).
        created = {
            **body,
            "metadata": {**body["metadata"], "uid": f"uid-{name}", "resourceVersion": "1"},
            "status": {"phase": "Succeeded", "outcome": "Succeeded", "attempts": 1},
        }
        self.objects[plural, name] = created
        return created

    async def write_status(
        self, plural: str, body: Mapping[str, Any], status: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._count("write_status", plural, body["metadata"]["name"])
        version = str(int(body["metadata"]["resourceVersion"]) + 1)
        written = {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
        written["status"] = dict(status)
        self.objects[plural, body["metadata"]["name"]] = written
        return written

    async def patch(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._count("patch", plural, name)
        return self.objects[plural, name]


class NoEvents:
    def post(self, *args: Any, **kwargs: Any) -> None:
        return None


def search_planned_under_the_old_naming() -> dict[str, Any]:
    return {
        "apiVersion": "durablesearch.dev/v1alpha1",
        "kind": "Search",
        "metadata": {
            "name": "a",
            "namespace": "ns",
            "uid": UID,
            "generation": 1,
            "resourceVersion": "5",
        },
        "spec": {"query": "q", "providerRefs": ["b-c"], "deadlineSeconds": 60},
        "status": {
            "phase": "Running",
            "startTime": "2026-12-01T12:00:00Z",
            "observedGeneration": 1,
            "progress": "0/1",
            "results": [{"name": "b-c", "httpTaskName": OLD_NAME, "attempts": 0}],
        },
    }


def old_child() -> dict[str, Any]:
    return {
        "apiVersion": "durablesearch.dev/v1alpha1",
        "kind": "HttpTask",
        "metadata": {
            "name": OLD_NAME,
            "namespace": "ns",
            "uid": "uid-old-child",
            "resourceVersion": "3",
            "ownerReferences": [owner_reference(SearchRef("a", "ns", UID), controller=True)],
        },
        "spec": {"request": {"url": "http://b-c.example/?q=q"}},
        "status": {"phase": "Succeeded", "outcome": "Succeeded", "attempts": 1},
    }


def provider() -> dict[str, Any]:
    return {"metadata": {"name": "b-c"}, "spec": {"url": "http://b-c.example/?q={query}"}}


async def run(api: FakeApi, tasks: ObjectStore) -> dict[str, Any]:
    searches = ObjectStore()
    searches.put(api.objects[SEARCH_PLURAL, "a"])
    ctx = SearchContext(
        api=api,  # type: ignore[arg-type]
        searches=searches,
        tasks=tasks,
        events=NoEvents(),  # type: ignore[arg-type]
        clock=lambda: NOW,
    )
    await asyncio.wait_for(run_search(ctx, ("ns", "a")), 5)
    return api.objects[SEARCH_PLURAL, "a"]["status"]


async def test_a_child_recorded_under_the_old_naming_is_folded_in_not_made_again() -> None:
    api = FakeApi(
        {
            (SEARCH_PLURAL, "a"): search_planned_under_the_old_naming(),
            (PROVIDER_PLURAL, "b-c"): provider(),
            (HTTPTASK_PLURAL, OLD_NAME): old_child(),
        }
    )
    tasks = ObjectStore()
    tasks.put(old_child())  # the watch delivered it
    status = await run(api, tasks)
    assert (status["phase"], status["results"][0]["outcome"]) == ("Completed", "Succeeded")
    assert status["results"][0]["httpTaskName"] == OLD_NAME
    assert api.created == []


async def test_after_a_restart_the_old_child_is_looked_up_by_its_recorded_name() -> None:
    api = FakeApi(
        {
            (SEARCH_PLURAL, "a"): search_planned_under_the_old_naming(),
            (PROVIDER_PLURAL, "b-c"): provider(),
            (HTTPTASK_PLURAL, OLD_NAME): old_child(),
        }
    )
    status = await run(api, ObjectStore())  # the store has not seen the child yet
    assert (status["phase"], status["results"][0]["outcome"]) == ("Completed", "Succeeded")
    assert ("get", HTTPTASK_PLURAL, OLD_NAME) in api.calls
    assert api.created == []


async def test_a_lost_child_recorded_under_the_old_naming_is_made_again_under_that_name() -> None:
    api = FakeApi(
        {
            (SEARCH_PLURAL, "a"): search_planned_under_the_old_naming(),
            (PROVIDER_PLURAL, "b-c"): provider(),
        }
    )
    status = await run(api, ObjectStore())
    assert api.created == [OLD_NAME], f"not {child_name('a', 'b-c', UID)}: the plan names it"
    assert (status["phase"], status["results"][0]["outcome"]) == ("Completed", "Succeeded")
