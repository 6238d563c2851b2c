"""The Search worker: one coroutine per unfinished Search.

A thin loop over :func:`engine.search.decide`: read the newest body and what the store knows of
the children, ask what to do, do it (the I/O lives here: providers, plan, children, writes).
Status is written at most once per pass, guarded by resourceVersion; Events are emitted only
after that write lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from durable_search.api.constants import HTTPTASK_PLURAL, SEARCH_PLURAL
from durable_search.api.models import ProviderSpec, SearchSpec
from durable_search.api.status import Body, Key, search_finished
from durable_search.api.timestamps import parse_time
from durable_search.controller.events import EventRecorder
from durable_search.controller.metrics import METRICS
from durable_search.controller.store import ObjectStore
from durable_search.engine import fanin, ring, search
from durable_search.engine.fanout import SearchRef, child_manifest, owned_by, plan_results
from durable_search.errors import ConflictError, NotFoundError, RefusedError
from durable_search.kube.api import KubeApi
from durable_search.kube.client import ApiError
from durable_search.kube.objects import spec_version, without_bookkeeping

logger = logging.getLogger("durable_search.search")


async def _no_one(_: Body) -> None:
    return None


@dataclass(frozen=True)
class SearchContext:
    api: KubeApi
    searches: ObjectStore
    tasks: ObjectStore
    events: EventRecorder
    clock: Callable[[], dt.datetime]
    # Called with each child the Search creates, so its worker starts from the create's
    # answer instead of waiting for the watch to deliver it.
    child_created: Callable[[Body], Awaitable[None]] = _no_one
    # In a ring: the member creating children, named in each as the holder of its first claim.
    claimed_by: str | None = None


async def run_search(ctx: SearchContext, key: Key) -> None:
    """Drive one Search from Pending to a finished phase (and its TTL deletion)."""
    last_progress: dt.datetime | None = None
    parsed: tuple[object, SearchSpec] | None = None
    while True:
        body = ctx.searches.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        if parsed is None or parsed[0] != spec_version(body):
            # Parsed once per generation: only a spec change bumps it.
            parsed = (spec_version(body), SearchSpec.parse(body["spec"]))
        spec = parsed[1]
        status: Mapping[str, Any] = body.get("status") or {}
        metadata = body["metadata"]
        ref = SearchRef(metadata["name"], metadata["namespace"], metadata["uid"])
        generation = int(metadata.get("generation") or 1)
        now = ctx.clock()
        decision = search.decide(
            spec, status, _children_of(ctx, ref, status), generation, now, last_progress
        )

        if isinstance(decision, search.Done):
            return
        if isinstance(decision, search.Wait):
            timeout = (decision.until - now).total_seconds() if decision.until else None
            await ctx.searches.changed(key, timeout)
        elif isinstance(decision, search.Start):
            await _start(ctx, body, ref, spec, generation, now)
            last_progress = now
        elif isinstance(decision, search.Recover):
            await _recover(ctx, body, ref, spec, status, decision.names, now)
        elif isinstance(decision, search.Stop):
            await _terminate_children(ctx, ref, status)
            await _write(ctx, body, decision.status)
        else:
            await _write(ctx, body, decision.status)
            last_progress = now


async def _start(
    ctx: SearchContext,
    body: Body,
    ref: SearchRef,
    spec: SearchSpec,
    generation: int,
    now: dt.datetime,
) -> None:
    """Record the plan and create the children, at once: neither waits for the other.

    Children are named from the plan deterministically, so if the plan's write fails (or the
    operator dies) the next pass plans the same names and adopts the children already made.
    """
    resolved = await _resolve(ctx.api, ref.namespace, spec, names=None)
    planned = fanin.start(
        body.get("status") or {}, plan_results(ref, spec, resolved), generation, now
    )
    written, refused = await asyncio.gather(
        _write(ctx, body, planned), _create_children(ctx, ref, spec, resolved, planned, now)
    )
    if refused and written is not None:
        await _write(ctx, written, fanin.children_refused(planned, refused))


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
            resolved[name] = ProviderSpec.parse(name, item["spec"], from_object=True)
        return resolved
    wanted = names if names is not None else spec.provider_refs
    for name in wanted:
        if name in resolved:
            continue
        provider = await api.get_provider(namespace, name)
        resolved[name] = (
            ProviderSpec.parse(name, provider["spec"], from_object=True) if provider else None
        )
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
) -> dict[str, str]:
    """Create the children; the API server's refusals by child name (a quota, a policy).

    Each is named as the plan in ``status`` recorded it, which may be an older naming than
    today's: a child made under another name would never be found, and recovered again and
    again.
    """
    started = parse_time(status.get("startTime")) or now
    recorded = {
        r["name"]: r["httpTaskName"] for r in status.get("results") or () if r.get("httpTaskName")
    }
    manifests = [
        child_manifest(ref, spec, provider, started=started, now=now, name=recorded.get(name))
        for name, provider in resolved.items()
        if provider is not None
    ]
    refusals = await asyncio.gather(*(_create_child(ctx, m) for m in manifests))
    return {
        m["metadata"]["name"]: refusal
        for m, refusal in zip(manifests, refusals, strict=True)
        if refusal is not None
    }


async def _create_child(ctx: SearchContext, manifest: Mapping[str, Any]) -> str | None:
    """Create one child; the API server's reason when it refuses to (never to be retried)."""
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    if ctx.claimed_by is not None:
        manifest = ring.with_claim(manifest, ctx.claimed_by)
    try:
        created = await ctx.api.create(HTTPTASK_PLURAL, namespace, manifest)
    except RefusedError as error:
        return error.message
    except ApiError as error:
        if error.status != 403:  # 403: a quota or an admission policy; the rest may pass
            raise
        return error.message
    if created is not None:
        METRICS.children_created.inc()
        await ctx.child_created(created)
        return None
    # The name is taken: ours from before a restart, or someone else's (checked by owner uid).
    with contextlib.suppress(NotFoundError):
        ctx.tasks.put_read(without_bookkeeping(await ctx.api.get(HTTPTASK_PLURAL, namespace, name)))
    return None


def _children_of(ctx: SearchContext, ref: SearchRef, status: Mapping[str, Any]) -> search.Children:
    """What the store holds of the planned children: the Search's own, others', unknown."""
    own: dict[str, Mapping[str, Any]] = {}
    foreign: set[str] = set()
    unknown: set[str] = set()
    for result in status.get("results") or ():
        name = result.get("httpTaskName")
        if not name:
            continue
        child = ctx.tasks.get((ref.namespace, name))
        if child is None:
            if not result.get("outcome"):
                unknown.add(name)
        elif owned_by(child, ref.uid):
            own[name] = child.get("status") or {}
        else:
            foreign.add(name)
    return search.Children(own, frozenset(foreign), frozenset(unknown))


async def _recover(
    ctx: SearchContext,
    body: Body,
    ref: SearchRef,
    spec: SearchSpec,
    status: Mapping[str, Any],
    names: Sequence[str],
    now: dt.datetime,
) -> None:
    """Find planned children the store lacks (after a restart), and create the missing ones.

    Each is looked up by the name the plan recorded, never listed by label: the cost stays
    the same however many objects the namespace holds.
    """
    missing = []
    for name in names:
        try:
            ctx.tasks.put_read(
                without_bookkeeping(await ctx.api.get(HTTPTASK_PLURAL, ref.namespace, name))
            )
        except NotFoundError:
            missing.append(name)
    if not missing:
        return
    providers = [r["name"] for r in status.get("results") or () if r.get("httpTaskName") in missing]
    resolved = await _resolve(ctx.api, ref.namespace, spec, names=providers)
    refused = await _create_children(ctx, ref, spec, resolved, status, now)
    vanished = {name for name, provider in resolved.items() if provider is None}
    if vanished or refused:
        updated = fanin.children_refused(fanin.providers_vanished(status, vanished), refused)
        await _write(ctx, body, updated)


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


async def fail_internal(ctx: SearchContext, key: Key, message: str) -> None:
    """Give up on a Search our own code keeps failing on: it ends Failed (reason Internal)."""
    body = await ctx.api.get(SEARCH_PLURAL, *key)
    status = body.get("status") or {}
    if search_finished(status):
        return
    await _terminate_children(ctx, SearchRef(key[1], key[0], body["metadata"]["uid"]), status)
    await _write(ctx, body, fanin.internal_failure(status, message, ctx.clock()))


def _name_of(body: Mapping[str, Any]) -> str:
    return str(body["metadata"]["name"])
