"""The HttpTask worker: one coroutine per unfinished HttpTask, driving the engine's decisions.

The loop reads the newest body, asks :func:`engine.httptask.decide` what to do, and does it:
wait until a recorded time, send the claimed request, or write a final status. Every write is
guarded by the resourceVersion the decision was made on; a 409 means re-read and decide again.
While a request is in flight the worker also watches the object, and cancels the request the
moment the task is terminated or deleted (the server sees the connection close).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from durable_search.api.constants import (
    HTTPTASK_PLURAL,
    SEARCH_KIND,
    SEARCH_PLURAL,
    Reason,
    TaskPhase,
)
from durable_search.api.models import HttpTaskSpec
from durable_search.api.status import Body, Key, task_phase
from durable_search.api.timestamps import parse_time
from durable_search.controller.claims import RECHECK_SECONDS, Claims
from durable_search.controller.credentials import Credentials
from durable_search.controller.metrics import METRICS
from durable_search.controller.pacing import Pacing
from durable_search.controller.store import ObjectStore, key_of
from durable_search.controller.watcher import WatcherPath
from durable_search.engine import bounds, ring
from durable_search.engine import httptask as engine
from durable_search.engine.deadline import task_deadline
from durable_search.engine.retry_after import parse_retry_after
from durable_search.errors import ConflictError, ExchangeError, NotFoundError, RefusedError
from durable_search.http.client import HttpClient
from durable_search.http.executor import (
    PreparedRequest,
    RequestHeader,
    no_answer,
    origin_of,
    perform,
)
from durable_search.kube.api import KubeApi
from durable_search.kube.client import is_transient
from durable_search.kube.objects import spec_version

logger = logging.getLogger("durable_search.httptask")
# Waits between attempts to record an answer while the API server is unreachable.
RECORD_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class TaskContext:
    api: KubeApi
    store: ObjectStore
    http: HttpClient
    credentials: Credentials
    clock: Callable[[], dt.datetime]
    watcher: WatcherPath | None = None
    # Providers' rate limits and origins' Retry-After holds (None: no pacing, unit tests).
    pacing: Pacing | None = None
    # Called with every status this worker wrote, as the watch would deliver it: the parent's
    # fan-in then wakes on the write's answer, not on the watch event that follows it.
    recorded: Callable[[Body], Awaitable[None]] | None = None
    # In a ring: the claims this member holds (None standalone: no claim is written or read).
    claims: Claims | None = None


def is_live(body: Mapping[str, Any] | None) -> bool:
    return body is not None and not body["metadata"].get("deletionTimestamp")


async def run_task(ctx: TaskContext, key: Key) -> None:
    """Drive one HttpTask until it finishes, is deleted, or the operator stops."""
    parsed: tuple[object, HttpTaskSpec] | None = None
    # The action paced last and when (pacing clock) it may go: reserved once per action.
    paced: tuple[tuple[engine.ActionKind, int], float] | None = None
    while True:
        body = ctx.store.get(key)
        if not is_live(body) or "spec" not in (body or {}):
            return  # deleted, or finished (the store keeps only a summary of finished tasks)
        assert body is not None
        if parsed is None or parsed[0] != spec_version(body):
            # Parsed once per generation: only a spec change bumps it.
            parsed = (spec_version(body), HttpTaskSpec.parse(body["spec"]))
        spec = parsed[1]
        status: Mapping[str, Any] = body.get("status") or {}
        created = parse_time(body["metadata"]["creationTimestamp"])
        assert created is not None
        now = ctx.clock()
        decision = engine.decide(spec, status, created, now)
        if isinstance(decision, engine.Done):
            return
        if ctx.claims is not None and key in ctx.claims.releasing:
            # Another member owns it now; what was in flight is recorded: hand it over.
            await _release(ctx, body)
            return
        if isinstance(decision, engine.Wait):
            await ctx.store.changed(key, (decision.until - now).total_seconds())
        elif isinstance(decision, engine.Finish):
            await _write(ctx, body, decision.status)
        else:
            if ctx.claims is not None:
                held = await _hold(ctx, ctx.claims, key, body)
                if held is None:
                    continue  # another member holds it: waited, look again
                body = held
            left = (task_deadline(spec, created) - now).total_seconds()
            action = (decision.kind, decision.number)
            if ctx.pacing is not None and (paced is None or paced[0] != action):
                wait = await ctx.pacing.delay(
                    key[0],
                    body["metadata"],
                    origin_of(decision.url),
                    spec.retry.max_interval_seconds,
                    left,
                )
                # No slot before the deadline: wait for it (the next decision ends TimedOut).
                paced = (action, ctx.pacing.clock() + (left if wait is None else wait))
            if ctx.pacing is not None and paced is not None:
                pause = paced[1] - ctx.pacing.clock()
                if pause > 0:
                    # Neither an attempt nor a write; a terminate or delete still wakes us.
                    await ctx.store.changed(key, max(min(pause, left), 0.001))
                    continue
            paced = None
            await _send_and_record(ctx, key, body, spec, created, decision)


async def _hold(ctx: TaskContext, claims: Claims, key: Key, body: Body) -> Body | None:
    """The body to send on if this member holds the claim (taking it over when it may)."""
    verdict = claims.verdict(body)
    if isinstance(verdict, ring.Hold):
        return body
    if isinstance(verdict, ring.TakeOver):
        written = await claims.take_over(ctx.api, body, verdict.previous)
        if written is not None:
            ctx.store.put(written)
            return written
        with contextlib.suppress(NotFoundError):
            ctx.store.put(await ctx.api.get(HTTPTASK_PLURAL, *key))
        return None
    logger.debug("%s/%s: waiting for %s to release its claim", *key, verdict)
    await ctx.store.changed(key, RECHECK_SECONDS)
    return None


async def _release(ctx: TaskContext, body: Body) -> None:
    assert ctx.claims is not None
    written = await ctx.claims.release(ctx.api, body)
    if written is not None and ctx.recorded is not None:
        await ctx.recorded(written)


async def _send_and_record(
    ctx: TaskContext,
    key: Key,
    body: Body,
    spec: HttpTaskSpec,
    created: dt.datetime,
    sent: engine.Send,
) -> None:
    logger.debug(
        "%s/%s: sending %s %s (rv %s)",
        *key,
        sent.kind,
        sent.number,
        body["metadata"].get("resourceVersion"),
    )
    exchange = await _exchange(ctx, key, body, spec, sent)
    if exchange is None:
        return  # terminated or deleted mid-flight: the next decision handles it
    METRICS.exchanges.labels(kind=sent.kind.value, result=_result_label(exchange)).inc()
    answer = exchange.result
    if ctx.pacing is not None and isinstance(answer, engine.HttpAnswer):
        ctx.pacing.answered(
            key[0],
            origin_of(exchange.url),
            answer.status_code,
            parse_retry_after(answer.retry_after, ctx.clock()),
            spec.retry.max_interval_seconds,
        )
    status = body.get("status") or {}
    while True:
        budget = bounds.status_budget({k: v for k, v in body.items() if k != "status"})
        new_status = engine.after_exchange(
            spec, status, created, sent, exchange, ctx.clock(), budget
        )
        try:
            await _write_patiently(ctx, key, body, new_status)
            logger.debug("%s/%s: recorded %s %s", *key, sent.kind, sent.number)
            return
        except RefusedError as refusal:
            # Never send again as if nothing happened: record that it could not be recorded.
            logger.warning("%s/%s: the API server refused the status: %s", *key, refusal)
            await _write(ctx, body, engine.unrecordable(new_status, refusal.message, ctx.clock()))
            return
        except ConflictError:
            logger.debug("%s/%s: 409 recording %s %s; re-reading", *key, sent.kind, sent.number)
            try:
                body = await ctx.api.get(HTTPTASK_PLURAL, *key)
            except NotFoundError:
                return
            ctx.store.put(body)
            status = body.get("status") or {}
            # Record on the newer object only if it still claims this action; otherwise
            # someone else already moved the task on and our answer is stale.
            if not _claims(status, sent) or not _still_held(ctx, body):
                logger.info("%s/%s: dropped a stale outcome after a conflict", *key)
                return
            spec = HttpTaskSpec.parse(body["spec"])


async def _write_patiently(
    ctx: TaskContext, key: Key, body: Body, status: Mapping[str, Any]
) -> None:
    """Record an answer in hand; while the API server is down or busy, wait and write again.

    Letting the error restart the worker would send the claimed request a second time.
    A 409 or a refusal is for the caller to decide on.
    """
    for attempt in itertools.count():
        try:
            await _write(ctx, body, status, conflict_ok=False)
            return
        except (ConflictError, RefusedError):
            raise
        except Exception as error:
            if not is_transient(error):
                raise
            delay = RECORD_RETRY_DELAYS[min(attempt, len(RECORD_RETRY_DELAYS) - 1)]
            logger.warning("%s/%s: could not record (%s); again in %ss", *key, error, delay)
            await asyncio.sleep(delay)


async def _exchange(
    ctx: TaskContext, key: Key, body: Body, spec: HttpTaskSpec, sent: engine.Send
) -> engine.Exchange | None:
    """Prepare and perform ``sent``; whatever goes wrong becomes the exchange's outcome."""
    started = ctx.clock()
    try:
        prepared = await _prepare(ctx, key, body, spec, sent)
        return await _perform_unless_stopped(ctx, key, spec, sent, prepared)
    except ExchangeError as error:
        failure = no_answer(error)
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        # The Kubernetes API (a Secret, a TokenRequest) did not answer: try again later.
        failure = engine.NoAnswer(f"the Kubernetes API did not answer: {error}")
    except Exception as error:
        # Our side of the wire refused to send it (a library rejecting a value): not retried.
        logger.exception("%s/%s: could not send %s %s", *key, sent.kind, sent.number)
        message = f"the request could not be sent: {type(error).__name__}: {error}"
        failure = engine.NoAnswer(message, engine.FailureKind.INVALID, Reason.INTERNAL)
    return engine.Exchange(result=failure, url=sent.url, started=started, duration_ms=0)


def _still_held(ctx: TaskContext, body: Body) -> bool:
    """In a ring: whether this member still holds ``body``'s claim (another took it over)."""
    return ctx.claims is None or ring.claim_holder(body) == ctx.claims.me


def _claims(status: Mapping[str, Any], sent: engine.Send) -> bool:
    """Whether ``status`` still claims the action ``sent`` performed."""
    phase = task_phase(status)
    if phase.finished:
        return False
    if sent.kind is engine.ActionKind.POLL:
        return phase is TaskPhase.POLLING and int(status.get("pollCount") or 0) == sent.number
    attempt = max(int(status.get("attempts") or 1), 1)
    return phase is not TaskPhase.POLLING and attempt == sent.number


async def _prepare(
    ctx: TaskContext, key: Key, body: Body, spec: HttpTaskSpec, sent: engine.Send
) -> PreparedRequest:
    request = spec.request
    headers = await ctx.credentials.headers(key[0], request)
    is_poll = sent.kind is engine.ActionKind.POLL
    payload, from_source = (None, False) if is_poll else await ctx.credentials.body(key[0], request)
    tls = await ctx.credentials.tls(key[0], request.tls) if request.tls is not None else None
    open_path = await _on_watcher_path(ctx, key, body, sent.url)
    if open_path:
        assert ctx.watcher is not None
        token = await ctx.watcher.token()
        if token:
            headers.append(RequestHeader("Authorization", f"Bearer {token}", secret=True))
    return PreparedRequest(
        method="GET" if is_poll else request.method,
        url=sent.url,
        headers=headers,
        body=payload,
        origin=origin_of(request.url),
        open_path=open_path,
        body_secret=from_source,
        tls=tls,
    )


async def _on_watcher_path(ctx: TaskContext, key: Key, body: Body, url: str) -> bool:
    """Whether this exchange is a watcher's poll of its own Search's status (the trusted path).

    Only ``<watcher base URL>/api/searches/{id}`` for an HttpTask whose ownerReference is that
    Search, by name and uid; anything else goes through the SSRF guard like every other URL.
    """
    if ctx.watcher is None:
        return False
    search = ctx.watcher.search_of(url)
    if search is None:
        return False
    owners = [
        owner.get("uid")
        for owner in body["metadata"].get("ownerReferences") or ()
        if owner.get("kind") == SEARCH_KIND and owner.get("name") == search
    ]
    if not owners:
        return False
    try:
        owner = await ctx.api.get(SEARCH_PLURAL, key[0], search)
    except NotFoundError:
        return False
    return owner["metadata"].get("uid") in owners


async def _perform_unless_stopped(
    ctx: TaskContext,
    key: Key,
    spec: HttpTaskSpec,
    sent: engine.Send,
    prepared: PreparedRequest,
) -> engine.Exchange | None:
    exchange = asyncio.create_task(
        perform(
            ctx.http,
            prepared,
            timeout=sent.timeout,
            max_redirects=0 if prepared.open_path else spec.max_redirects,
            response_policy=spec.response,
            clock=ctx.clock,
            location_headers=spec.async_.location_headers,
        )
    )
    changed: asyncio.Task[bool] | None = None
    try:
        while not exchange.done():
            changed = asyncio.create_task(ctx.store.changed(key, None))
            await asyncio.wait({exchange, changed}, return_when=asyncio.FIRST_COMPLETED)
            if not changed.done():
                changed.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await changed
                continue
            latest = ctx.store.get(key)
            if not is_live(latest) or _terminated(latest):
                exchange.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await exchange
                logger.info("%s/%s: cancelled the request in flight", *key)
                return None
    except asyncio.CancelledError:
        exchange.cancel()
        if changed is not None:
            # Else it would wait for a signal nobody sets again, outliving this worker (and
            # holding up kopf's shutdown, which waits 5 s for the loop's tasks).
            changed.cancel()
        raise
    return exchange.result()


def _terminated(body: Mapping[str, Any] | None) -> bool:
    return bool(body and (body.get("spec") or {}).get("terminate"))


async def _write(
    ctx: TaskContext, body: Body, status: Mapping[str, Any], *, conflict_ok: bool = True
) -> None:
    if ctx.claims is not None:
        status = ctx.claims.stamp(key_of(body), status)
    if status == (body.get("status") or {}):
        return
    try:
        written = await ctx.api.write_status(HTTPTASK_PLURAL, body, status)
    except NotFoundError:
        return
    except RefusedError:
        if not conflict_ok:
            raise
        logger.error("%s/%s: the API server refused a status write", *key_of(body))
        return
    except ConflictError:
        if not conflict_ok:
            raise
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with contextlib.suppress(NotFoundError):
            ctx.store.put(await ctx.api.get(HTTPTASK_PLURAL, *key))
        return
    METRICS.status_writes.labels(kind="HttpTask").inc()
    if ctx.recorded is not None:
        await ctx.recorded(written)
    else:
        ctx.store.put(written)


def _result_label(exchange: engine.Exchange) -> str:
    result = exchange.result
    if isinstance(result, engine.HttpAnswer):
        return str(result.status_code)
    return {
        engine.FailureKind.BLOCKED: "blocked",
        engine.FailureKind.TIMEOUT: "timeout",
        engine.FailureKind.INVALID: "invalid",
    }.get(result.kind, "error")


async def fail_internal(ctx: TaskContext, key: Key, message: str) -> None:
    """Give up on a task our own code keeps failing on: it ends Failed (Invalid, Internal)."""
    body = await ctx.api.get(HTTPTASK_PLURAL, *key)
    status = body.get("status") or {}
    if task_phase(status).finished:
        return
    await _write(ctx, body, engine.internal_failure(status, message, ctx.clock()))
