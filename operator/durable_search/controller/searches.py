"""The Search worker: one coroutine per unfinished Search (or finished one awaiting its TTL).

Each pass is a guard clause over the newest body, in this order: gone, finished (TTL), asked to
terminate, not yet started (resolve providers, record the plan, create the children), past its
deadline, otherwise fold the children into the status. Status is written once per pass, guarded
by resourceVersion; Events are emitted only after that write lands.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from durable_search.api.constants import (
    HTTPTASK_PLURAL,
    LABEL_SEARCH_UID,
    SEARCH_PLURAL,
    Outcome,
)
from durable_search.api.models import ProviderSpec, SearchSpec
from durable_search.api.timestamps import parse_time
from durable_search.controller.events import EventRecorder
from durable_search.controller.metrics import METRICS
from durable_search.controller.store import Key, ObjectStore
from durable_search.engine import fanin
from durable_search.engine.fanout import SearchRef, child_manifest, plan_results
from durable_search.kubeapi import ConflictError, KubeApi, NotFoundError

logger = logging.getLogger("durable_search.search")
Body = dict[str, Any]

# Children carry the Search's deadline themselves; the Search enforces it too, a little later,
# in case a child cannot (its worker is gone, its object was edited).
DEADLINE_GRACE = dt.timedelta(seconds=2)


@dataclass(frozen=True)
class SearchContext:
    api: KubeApi
    searches: ObjectStore
    tasks: ObjectStore
    events: EventRecorder
    clock: Callable[[], dt.datetime]
    batch_seconds: float = 0.05  # let sibling outcomes arriving together share one write


async def run_search(ctx: SearchContext, key: Key) -> None:
    """Drive one Search from Pending to a finished phase (and its TTL deletion)."""
    children_listed = False
    while True:
        body = ctx.searches.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        spec = SearchSpec.parse(body["spec"])
        status: Mapping[str, Any] = body.get("status") or {}
        metadata = body["metadata"]
        ref = SearchRef(metadata["name"], metadata["namespace"], metadata["uid"])
        generation = int(metadata.get("generation") or 1)
        now = ctx.clock()

        if fanin.is_finished(status):
            if not await _await_ttl(ctx, key, body, spec, status, now):
                return
            continue

        if spec.terminate:
            await _terminate_children(ctx, ref, status)
            await _write(ctx, body, fanin.terminate(status, now, "terminated on request"))
            continue

        if not status.get("phase"):
            resolved = await _resolve(ctx.api, ref.namespace, spec, names=None)
            planned = fanin.start(status, plan_results(ref, spec, resolved), generation, now)
            written = await _write(ctx, body, planned)
            if written is not None:
                await _create_children(ctx, ref, spec, resolved, planned, now)
            continue

        if not children_listed:
            # After a restart the watch may not have delivered every child yet: list them once.
            selector = f"{LABEL_SEARCH_UID}={ref.uid}"
            for child in await ctx.api.list_children(ref.namespace, selector):
                ctx.tasks.put(child)
            children_listed = True
        if await _recreate_missing_children(ctx, body, ref, spec, status, now):
            continue

        deadline = fanin.deadline_of(status, spec.deadline_seconds)
        if deadline is not None and now >= deadline + DEADLINE_GRACE:
            await _terminate_children(ctx, ref, status)
            await _write(ctx, body, fanin.expire(status, spec.deadline_seconds, now))
            continue

        children = {
            name: (ctx.tasks.get((ref.namespace, name)) or {}).get("status") or {}
            for name in _child_names(status)
        }
        folded = fanin.fan_in(status, children, generation, now)
        if folded != status:
            await _write(ctx, body, folded)
            continue

        timeout = (deadline + DEADLINE_GRACE - now).total_seconds() if deadline else None
        if await ctx.searches.changed(key, timeout):
            await asyncio.sleep(ctx.batch_seconds)


async def _await_ttl(
    ctx: SearchContext,
    key: Key,
    body: Body,
    spec: SearchSpec,
    status: Mapping[str, Any],
    now: dt.datetime,
) -> bool:
    """Wait for (or carry out) the TTL deletion; False when there is nothing left to do."""
    completed = parse_time(status.get("completionTime"))
    if spec.ttl_seconds_after_finished is None or completed is None:
        return False
    expires = completed + dt.timedelta(seconds=spec.ttl_seconds_after_finished)
    if now >= expires:
        metadata = body["metadata"]
        await ctx.api.delete(
            SEARCH_PLURAL, metadata["namespace"], metadata["name"], metadata["uid"]
        )
        logger.info(
            "%s/%s: deleted %ss after it finished (ttl)", *key, spec.ttl_seconds_after_finished
        )
        return False
    await ctx.searches.changed(key, (expires - now).total_seconds())
    return True


async def _resolve(
    api: KubeApi, namespace: str, spec: SearchSpec, names: Sequence[str] | None
) -> dict[str, ProviderSpec | None]:
    """Providers by name: inline ones, then ``providerRefs``, else every SearchProvider.

    ``names`` limits the lookup (re-creating specific children after a restart).
    """
    resolved: dict[str, ProviderSpec | None] = {p.name: p for p in spec.providers}
    if spec.uses_all_namespace_providers and names is None:
        listed = await api.list_providers(namespace)
        for item in sorted(listed, key=_name_of):
            name = item["metadata"]["name"]
            resolved[name] = ProviderSpec.parse(name, item["spec"])
        return resolved
    wanted = names if names is not None else spec.provider_refs
    for name in wanted:
        if name in resolved:
            continue
        provider = await api.get_provider(namespace, name)
        resolved[name] = ProviderSpec.parse(name, provider["spec"]) if provider else None
    if names is not None:
        return {name: resolved.get(name) for name in names}
    return resolved


async def _create_children(
    ctx: SearchContext,
    ref: SearchRef,
    spec: SearchSpec,
    resolved: Mapping[str, ProviderSpec | None],
    status: Mapping[str, Any],
    now: dt.datetime,
) -> None:
    started = parse_time(status.get("startTime")) or now
    creations = [
        _create_child(ctx, child_manifest(ref, spec, provider, started=started, now=now))
        for provider in resolved.values()
        if provider is not None
    ]
    await asyncio.gather(*creations)


async def _create_child(ctx: SearchContext, manifest: Mapping[str, Any]) -> None:
    namespace = manifest["metadata"]["namespace"]
    created = await ctx.api.create(HTTPTASK_PLURAL, namespace, manifest)
    if created is not None:
        METRICS.children_created.inc()
        ctx.tasks.put(created)


async def _recreate_missing_children(
    ctx: SearchContext,
    body: Body,
    ref: SearchRef,
    spec: SearchSpec,
    status: Mapping[str, Any],
    now: dt.datetime,
) -> bool:
    """Create children the plan names but the cluster lacks (a crash between plan and create).

    True when the status was rewritten (a provider vanished meanwhile) and the pass must restart.
    """
    missing = [
        result["name"]
        for result in status.get("results") or ()
        if result.get("httpTaskName")
        and not result.get("outcome")
        and ctx.tasks.get((ref.namespace, result["httpTaskName"])) is None
    ]
    if not missing:
        return False
    resolved = await _resolve(ctx.api, ref.namespace, spec, names=missing)
    await _create_children(ctx, ref, spec, resolved, status, now)
    vanished = {name for name, provider in resolved.items() if provider is None}
    if not vanished:
        return False
    results = [
        {
            **r,
            "outcome": Outcome.PROVIDER_NOT_FOUND.value,
            "message": f'SearchProvider "{r["name"]}" was deleted before its request was made',
        }
        if r["name"] in vanished
        else r
        for r in status.get("results") or ()
    ]
    await _write(ctx, body, {**status, "results": results})
    return True


async def _terminate_children(
    ctx: SearchContext, ref: SearchRef, status: Mapping[str, Any]
) -> None:
    """Set ``spec.terminate`` on every unfinished child: their workers cancel in-flight requests."""

    async def stop(name: str) -> None:
        try:
            await ctx.api.patch(HTTPTASK_PLURAL, ref.namespace, name, {"spec": {"terminate": True}})
        except NotFoundError:
            return

    pending = [
        r["httpTaskName"]
        for r in status.get("results") or ()
        if r.get("httpTaskName") and not r.get("outcome")
    ]
    await asyncio.gather(*(stop(name) for name in pending))


def _child_names(status: Mapping[str, Any]) -> list[str]:
    return [r["httpTaskName"] for r in status.get("results") or () if r.get("httpTaskName")]


async def _write(ctx: SearchContext, body: Body, status: Mapping[str, Any]) -> Body | None:
    """Write ``status``; on a conflict refresh the store (the next pass decides again)."""
    old: Mapping[str, Any] = body.get("status") or {}
    if status == old:
        return body
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    try:
        written = await ctx.api.write_status(SEARCH_PLURAL, body, status)
    except NotFoundError:
        ctx.searches.remove(key, body["metadata"].get("uid"))
        return None
    except ConflictError:
        try:
            ctx.searches.put(await ctx.api.get(SEARCH_PLURAL, *key))
        except NotFoundError:
            ctx.searches.remove(key, body["metadata"].get("uid"))
        return None
    METRICS.status_writes.labels(kind="Search").inc()
    ctx.searches.put(written)
    change = fanin.transition(old, status)
    if change is not None:
        ctx.events.post(written, change.reason, change.message, warning=change.warning)
    return written


def _name_of(body: Mapping[str, Any]) -> str:
    return str(body["metadata"]["name"])
