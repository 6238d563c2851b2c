"""Routes watch events to the stores and keeps one worker per unfinished object.

kopf delivers the events (``handlers.py``); this module decides which worker to start, wake or
cancel. Nothing here is persisted: after a restart kopf re-lists every object and the workers
resume from the statuses alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from durable_search.api.constants import HTTPTASK_PLURAL, SEARCH_KIND, SEARCH_PLURAL
from durable_search.api.models import SearchSpec
from durable_search.api.status import Body, Key, search_finished, status_of, task_phase
from durable_search.controller import searches as search_worker
from durable_search.controller import tasks as task_worker
from durable_search.controller.claims import Claims
from durable_search.controller.metrics import METRICS
from durable_search.controller.searches import SearchContext
from durable_search.controller.store import ObjectStore, Workers, key_of
from durable_search.controller.tasks import TaskContext
from durable_search.controller.ttl import TtlQueue
from durable_search.engine import ring, ttl
from durable_search.engine.ring import Shares
from durable_search.errors import NotFoundError
from durable_search.kube.client import is_transient
from durable_search.kube.objects import without_bookkeeping

logger = logging.getLogger("durable_search.runtime")

_RESTART_BACKOFF = (0.5, 1, 2, 5, 10, 30)
# An unreachable or busy API server: look again every 2 s at most (with jitter, so a thousand
# workers do not come back at once), so the work resumes within seconds of its return.
_TRANSIENT_BACKOFF = (0.5, 1, 2)
# A worker that fails this many times in a row for a reason of its own gives the object up.
MAX_INTERNAL_FAILURES = 5
Work = Callable[[], Awaitable[None]]
GiveUp = Callable[[str], Awaitable[None]]


class Runtime:
    def __init__(
        self, tasks: TaskContext, searches: SearchContext, claims: Claims | None = None
    ) -> None:
        self.task_context = dataclasses.replace(tasks, recorded=self.on_task_written, claims=claims)
        # A child a Search creates starts its worker from the create's answer, not the watch.
        self.search_context = dataclasses.replace(
            searches,
            child_created=self.on_child_created,
            claimed_by=claims.me if claims is not None else None,
        )
        # Every member queues every finished Search's TTL; the owner deletes it when due.
        self.ttl = TtlQueue(searches.api, searches.clock, owns=self._owns_key)
        self.task_workers = Workers("httptask")
        self.search_workers = Workers("search")
        self.claims = claims
        # In a ring: the unfinished objects other members own, by kind and key, with their
        # ring key and claim holder; enough to take them up when the ring changes (no bodies).
        self.elsewhere: dict[tuple[str, Key], tuple[str, str | None]] = {}

    def _owns(self, body: Body) -> bool:
        return self._owns_key(ring.ring_key(body))

    def _owns_key(self, ring_uid: str) -> bool:
        return self.claims is None or self.claims.membership.shares.owns(ring_uid)

    # -- events ------------------------------------------------------------------------------

    async def on_task_event(self, kind: str | None, body: Body) -> None:
        key = key_of(body)
        store = self.task_context.store
        if kind != "DELETED" and not self._owns(body):
            await self._elsewhere(HTTPTASK_PLURAL, key, body, task_phase(status_of(body)).finished)
            if self.task_workers.running(key):
                store.put(without_bookkeeping(body))  # it records what is in flight, releases
            else:
                store.remove(key)
        elif kind == "DELETED":
            store.remove(key, body["metadata"].get("uid"))
            await self.task_workers.cancel(key)
        else:
            finished = task_phase(status_of(body)).finished
            parent = _controller_search(body)
            if not finished:
                kept = store.put(without_bookkeeping(body))  # refused: older than known
                if kept and not body["metadata"].get("deletionTimestamp"):
                    self.task_workers.ensure(
                        key, self._supervised("httptask", store, key, *self._task(key))
                    )
            elif parent is not None and self.search_workers.running(parent):
                store.put(finished_summary(body))  # what the running parent's fan-in reads
            else:
                # Nobody will fold it in (a Search that starts later looks it up): hold no
                # body, only the version that keeps a stale event from reviving it.
                store.retire(body)
        if not self.task_workers.running(key):
            store.forget_signal(key)
        parent = _controller_search(body)
        # A Search without a worker looks its unknown children up when one starts.
        if parent is not None and self.search_workers.running(parent):
            self.search_context.searches.poke(parent)
        METRICS.active_tasks.set(len(self.task_workers))

    async def on_child_created(self, body: Body) -> None:
        await self.on_task_event("ADDED", body)

    async def on_task_written(self, body: Body) -> None:
        await self.on_task_event("MODIFIED", body)

    async def on_search_event(self, kind: str | None, body: Body) -> None:
        key = key_of(body)
        store = self.search_context.searches
        if kind != "DELETED" and not self._owns(body):
            finished = search_finished(body.get("status") or {})
            await self._elsewhere(SEARCH_PLURAL, key, body, finished)
            store.remove(key)
            await self.search_workers.cancel(key)
            if finished:
                self._schedule_ttl(key, body)  # taken over if its owner goes before it is due
        elif kind == "DELETED":
            self.elsewhere.pop((SEARCH_PLURAL, key), None)
            store.remove(key, body["metadata"].get("uid"))
            self.ttl.forget(*key)
            await self.search_workers.cancel(key)
        else:
            status = body.get("status") or {}
            if search_finished(status):
                # Finished for good: nothing will read it again but its TTL; holding thousands
                # costs memory, so the store forgets it and the TTL queue keeps a tuple.
                self._forget_children(body)
                store.retire(body)
                self._schedule_ttl(key, body)
            elif not body["metadata"].get("deletionTimestamp"):
                store.put(without_bookkeeping(body))
                self.search_workers.ensure(
                    key, self._supervised("search", store, key, *self._search(key))
                )
            else:
                store.put(without_bookkeeping(body))
        if not self.search_workers.running(key):
            store.forget_signal(key)
        METRICS.active_searches.set(len(self.search_workers))

    def _schedule_ttl(self, key: Key, body: Body) -> None:
        expires = ttl.expires_at(SearchSpec.parse(body["spec"]), body.get("status") or {})
        if expires is not None and not body["metadata"].get("deletionTimestamp"):
            self.ttl.schedule(*key, str(body["metadata"]["uid"]), expires)

    def _forget_children(self, search: Body) -> None:
        """A finished Search's children are folded in: drop what the store holds of them."""
        namespace = search["metadata"]["namespace"]
        tasks = self.task_context.store
        for result in (search.get("status") or {}).get("results") or ():
            key = (namespace, result.get("httpTaskName") or "")
            if result.get("outcome") and not self.task_workers.running(key):
                tasks.retire_key(key)
                tasks.forget_signal(key)

    # -- the ring ----------------------------------------------------------------------------

    async def _elsewhere(self, plural: str, key: Key, body: Body, finished: bool) -> None:
        """Another member owns ``body``: hold only what taking it up later needs."""
        if finished:
            self.elsewhere.pop((plural, key), None)
            return
        holder = ring.claim_holder(body)
        self.elsewhere[(plural, key)] = (ring.ring_key(body), holder)
        claims = self.claims
        if plural == HTTPTASK_PLURAL and claims is not None and holder == claims.me:
            if self.task_workers.running(key):
                claims.releasing.add(key)  # the worker records what is in flight, then releases
            else:
                # Claimed by us but never ours to run (created just before the ring changed).
                await claims.release(self.task_context.api, body)

    async def on_ring_change(self, before: Shares, after: Shares) -> None:
        """Give up what another member now owns; take up what this one gained."""
        del before
        claims = self.claims
        if claims is None:
            return
        for key in list(self.task_context.store.keys()):
            held = self.task_context.store.get(key)
            lost = held is not None and not after.owns(ring.ring_key(held))
            if lost and self.task_workers.running(key):
                claims.releasing.add(key)
                self.task_context.store.poke(key)
        for key in list(self.search_context.searches.keys()):
            held = self.search_context.searches.get(key)
            if held is not None and not after.owns(ring.ring_key(held)):
                await self._elsewhere(SEARCH_PLURAL, key, held, False)
                self.search_context.searches.remove(key)
                await self.search_workers.cancel(key)
        gained = [
            (plural, key)
            for (plural, key), (ring_uid, _holder) in self.elsewhere.items()
            if after.owns(ring_uid)
        ]
        # Searches first: their workers fold in the children that follow.
        for plural, key in sorted(gained, key=lambda item: item[0] != SEARCH_PLURAL):
            self.elsewhere.pop((plural, key), None)
            claims.releasing.discard(key)
            try:
                body = await self.task_context.api.get(plural, *key)
            except NotFoundError:
                continue
            if plural == SEARCH_PLURAL:
                await self.on_search_event("MODIFIED", body)
            else:
                await self.on_task_event("MODIFIED", body)
        METRICS.owned_objects.labels(kind="HttpTask").set(len(self.task_workers))
        METRICS.owned_objects.labels(kind="Search").set(len(self.search_workers))

    async def release_all(self) -> None:
        """Leaving the ring: every running task records what is in flight, then releases."""
        if self.claims is None:
            return
        for key in list(self.task_context.store.keys()):
            if self.task_workers.running(key):
                self.claims.releasing.add(key)
                self.task_context.store.poke(key)
        for key in list(self.search_context.searches.keys()):
            await self.search_workers.cancel(key)

    async def drained(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the task workers to end; True when none is left."""
        return await self.task_workers.wait_empty(seconds)

    async def stop(self) -> None:
        await self.search_workers.cancel_all()
        await self.task_workers.cancel_all()
        await self.search_context.events.drain()

    # -- workers -----------------------------------------------------------------------------

    def _task(self, key: Key) -> tuple[Work, GiveUp]:
        ctx = self.task_context
        return (
            lambda: task_worker.run_task(ctx, key),
            lambda message: task_worker.fail_internal(ctx, key, message),
        )

    def _search(self, key: Key) -> tuple[Work, GiveUp]:
        ctx = self.search_context
        return (
            lambda: search_worker.run_search(ctx, key),
            lambda message: search_worker.fail_internal(ctx, key, message),
        )

    async def _supervised(
        self, kind: str, store: ObjectStore, key: Key, work: Work, give_up: GiveUp
    ) -> None:
        try:
            await supervise(f"{kind} {key[0]}/{key[1]}", work, give_up)
        finally:
            store.forget_signal(key)
            if kind == "httptask" and self.claims is not None and key in self.claims.releasing:
                self.claims.releasing.discard(key)  # handed over: another member holds it
                store.remove(key)


async def supervise(
    what: str,
    work: Work,
    give_up: GiveUp,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run ``work``; on an unexpected error log it and run it again after a backoff.

    Safe because every worker is level-triggered: a fresh run decides from the object. An
    unreachable API server is waited out; our own code failing on one object
    :data:`MAX_INTERNAL_FAILURES` times in a row ends that object with the reason instead of
    restarting forever (each restart could resend a claimed request).
    """
    failures = internal = 0
    while True:
        try:
            await work()
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            transient = is_transient(error)
            delay = restart_delay(failures, transient)
            failures += 1
            internal = 0 if transient else internal + 1
            if internal >= MAX_INTERNAL_FAILURES:
                message = f"{type(error).__name__}: {error}"[:512]
                logger.exception("%s: giving up after %s failures", what, internal)
                try:
                    await give_up(message)
                except Exception:
                    logger.exception("%s: could not record the failure", what)
                return
            logger.exception("%s failed; retrying in %.1fs", what, delay)
            await sleep(delay)


def restart_delay(failures: int, transient: bool) -> float:
    """How long a worker waits before its next run, after ``failures`` failed runs."""
    if transient:
        base = _TRANSIENT_BACKOFF[min(failures, len(_TRANSIENT_BACKOFF) - 1)]
        return base * random.uniform(0.75, 1.25)  # jitter, not a secret
    return float(_RESTART_BACKOFF[min(failures, len(_RESTART_BACKOFF) - 1)])


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


_SUMMARY_FIELDS = (
    "phase",
    "outcome",
    "attempts",
    "startTime",
    "completionTime",
    "message",
    "outputs",  # at most 4 KiB, and only where spec.outputs asks for them
)
_SUMMARY_METADATA = ("name", "namespace", "uid", "resourceVersion", "ownerReferences", "labels")
