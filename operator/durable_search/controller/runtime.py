"""Routes watch events to the stores and keeps one worker per unfinished object.

kopf delivers the events (``handlers.py``); this module decides which worker to start, wake or
cancel. Nothing here is persisted: after a restart kopf re-lists every object and the workers
resume from the statuses alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from durable_search.api.constants import SEARCH_KIND, TaskPhase
from durable_search.controller.metrics import METRICS
from durable_search.controller.searches import SearchContext, run_search
from durable_search.controller.store import Key, ObjectStore, Workers, key_of
from durable_search.controller.tasks import TaskContext, run_task
from durable_search.engine.fanin import is_finished
from durable_search.kubeapi import without_bookkeeping

logger = logging.getLogger("durable_search.runtime")
Body = dict[str, Any]

_RESTART_BACKOFF = (0.5, 1, 2, 5, 10, 30)


class Runtime:
    def __init__(self, tasks: TaskContext, searches: SearchContext) -> None:
        self.task_context = tasks
        self.search_context = searches
        self.task_workers = Workers("httptask")
        self.search_workers = Workers("search")

    # -- events ------------------------------------------------------------------------------

    async def on_task_event(self, kind: str | None, body: Body) -> None:
        key = key_of(body)
        store = self.task_context.store
        if kind == "DELETED":
            store.remove(key, body["metadata"].get("uid"))
            await self.task_workers.cancel(key)
        else:
            finished = TaskPhase((body.get("status") or {}).get("phase") or "Pending").finished
            store.put(finished_summary(body) if finished else without_bookkeeping(body))
            if not finished and not body["metadata"].get("deletionTimestamp"):
                self.task_workers.ensure(
                    key, self._supervised("httptask", store, key, self._task(key))
                )
        if not self.task_workers.running(key):
            store.forget_signal(key)
        parent = _controller_search(body)
        # A Search without a worker lists its children when one starts: no need to wake it.
        if parent is not None and self.search_workers.running(parent):
            self.search_context.searches.poke(parent)
        METRICS.active_tasks.set(len(self.task_workers))

    async def on_search_event(self, kind: str | None, body: Body) -> None:
        key = key_of(body)
        store = self.search_context.searches
        if kind == "DELETED":
            store.remove(key, body["metadata"].get("uid"))
            await self.search_workers.cancel(key)
        else:
            spec = body.get("spec") or {}
            needs_worker = not is_finished(body.get("status") or {}) or (
                spec.get("ttlSecondsAfterFinished") is not None
            )
            if not needs_worker:
                # Finished for good: nothing will read it again; holding thousands costs memory.
                store.remove(key, body["metadata"].get("uid"))
            elif not body["metadata"].get("deletionTimestamp"):
                store.put(without_bookkeeping(body))
                self.search_workers.ensure(
                    key, self._supervised("search", store, key, self._search(key))
                )
            else:
                store.put(without_bookkeeping(body))
        if not self.search_workers.running(key):
            store.forget_signal(key)
        METRICS.active_searches.set(len(self.search_workers))

    async def stop(self) -> None:
        await self.search_workers.cancel_all()
        await self.task_workers.cancel_all()
        await self.search_context.events.drain()

    # -- workers -----------------------------------------------------------------------------

    def _task(self, key: Key) -> Callable[[], Awaitable[None]]:
        return lambda: run_task(self.task_context, key)

    def _search(self, key: Key) -> Callable[[], Awaitable[None]]:
        return lambda: run_search(self.search_context, key)

    async def _supervised(
        self, kind: str, store: ObjectStore, key: Key, work: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``work``; on an unexpected error log it and run it again after a backoff.

        Safe because every worker is level-triggered: a fresh run decides from the object.
        """
        failures = 0
        try:
            while True:
                try:
                    await work()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    delay = _RESTART_BACKOFF[min(failures, len(_RESTART_BACKOFF) - 1)]
                    failures += 1
                    logger.exception("%s %s/%s failed; retrying in %ss", kind, *key, delay)
                    await asyncio.sleep(delay)
        finally:
            store.forget_signal(key)


def _controller_search(body: Mapping[str, Any]) -> Key | None:
    for owner in body["metadata"].get("ownerReferences") or ():
        if owner.get("kind") == SEARCH_KIND and owner.get("controller"):
            return (str(body["metadata"]["namespace"]), str(owner["name"]))
    return None


def finished_summary(body: Body) -> Body:
    """What a finished HttpTask's parent needs of it: identity and the outcome's summary.

    The fan-in reads only these fields (``engine.httptask.result_summary``); the body, headers
    and attempt log stay in the API server.
    """
    metadata = body["metadata"]
    status = body.get("status") or {}
    summary = {k: status[k] for k in _SUMMARY_FIELDS if k in status}
    response = status.get("response")
    if response and "statusCode" in response:
        summary["response"] = {"statusCode": response["statusCode"]}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {k: metadata[k] for k in _SUMMARY_METADATA if k in metadata},
        "status": summary,
    }


_SUMMARY_FIELDS = ("phase", "outcome", "attempts", "startTime", "completionTime", "message")
_SUMMARY_METADATA = ("name", "namespace", "uid", "resourceVersion", "ownerReferences", "labels")
