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
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from durable_search.api.constants import HTTPTASK_PLURAL, TaskPhase
from durable_search.api.models import HttpTaskSpec
from durable_search.api.timestamps import parse_time
from durable_search.controller.credentials import CredentialError, Credentials
from durable_search.controller.metrics import METRICS
from durable_search.controller.store import Key, ObjectStore
from durable_search.engine import httptask as engine
from durable_search.http.client import HttpClient
from durable_search.http.executor import PreparedRequest, origin_of, perform
from durable_search.kubeapi import ConflictError, KubeApi, NotFoundError

logger = logging.getLogger("durable_search.httptask")
Body = dict[str, Any]


@dataclass(frozen=True)
class TaskContext:
    api: KubeApi
    store: ObjectStore
    http: HttpClient
    credentials: Credentials
    clock: Callable[[], dt.datetime]


def is_live(body: Mapping[str, Any] | None) -> bool:
    return body is not None and not body["metadata"].get("deletionTimestamp")


async def run_task(ctx: TaskContext, key: Key) -> None:
    """Drive one HttpTask until it finishes, is deleted, or the operator stops."""
    while True:
        body = ctx.store.get(key)
        if not is_live(body) or "spec" not in (body or {}):
            return  # deleted, or finished (the store keeps only a summary of finished tasks)
        assert body is not None
        spec = HttpTaskSpec.parse(body["spec"])
        status: Mapping[str, Any] = body.get("status") or {}
        created = parse_time(body["metadata"]["creationTimestamp"])
        assert created is not None
        now = ctx.clock()
        decision = engine.decide(spec, status, created, now)
        if isinstance(decision, engine.Done):
            return
        if isinstance(decision, engine.Wait):
            await ctx.store.changed(key, (decision.until - now).total_seconds())
        elif isinstance(decision, engine.Finish):
            await _write(ctx, body, decision.status)
        else:
            await _send_and_record(ctx, key, body, spec, created, decision)


async def _send_and_record(
    ctx: TaskContext,
    key: Key,
    body: Body,
    spec: HttpTaskSpec,
    created: dt.datetime,
    sent: engine.Send,
) -> None:
    namespace = key[0]
    try:
        prepared = await _prepare(ctx, namespace, spec, sent)
    except CredentialError as error:
        exchange = engine.Exchange(
            result=engine.TransportFailure(f"credentials: {error}"),
            url=sent.url,
            started=ctx.clock(),
            duration_ms=0,
        )
    else:
        exchange_or_none = await _perform_unless_stopped(ctx, key, body, spec, sent, prepared)
        if exchange_or_none is None:
            return  # terminated or deleted mid-flight: the next decision handles it
        exchange = exchange_or_none
    METRICS.exchanges.labels(kind=sent.kind.value, result=_result_label(exchange)).inc()
    status = body.get("status") or {}
    while True:
        new_status = engine.after_exchange(spec, status, created, sent, exchange, ctx.clock())
        try:
            await _write(ctx, body, new_status, conflict_ok=False)
            return
        except ConflictError:
            logger.debug("%s/%s: 409 recording %s %s; re-reading", *key, sent.kind, sent.number)
            try:
                body = await ctx.api.get(HTTPTASK_PLURAL, *key)
            except NotFoundError:
                return
            ctx.store.put(body)
            status = body.get("status") or {}
            # Record the outcome on the newer object only if it still claims this action;
            # otherwise someone else already moved the task on and our answer is stale.
            if not _claims(status, sent):
                logger.info("%s/%s: dropped a stale outcome after a conflict", *key)
                return
            spec = HttpTaskSpec.parse(body["spec"])


def _claims(status: Mapping[str, Any], sent: engine.Send) -> bool:
    """Whether ``status`` still claims the action ``sent`` performed."""
    phase = engine.phase_of(status)
    if phase.finished:
        return False
    if sent.kind is engine.ActionKind.POLL:
        return phase is TaskPhase.POLLING and int(status.get("pollCount") or 0) == sent.number
    attempt = max(int(status.get("attempts") or 1), 1)
    return phase is not TaskPhase.POLLING and attempt == sent.number


async def _prepare(
    ctx: TaskContext, namespace: str, spec: HttpTaskSpec, sent: engine.Send
) -> PreparedRequest:
    request = spec.request
    headers = await ctx.credentials.headers(namespace, request)
    is_poll = sent.kind is engine.ActionKind.POLL
    return PreparedRequest(
        method="GET" if is_poll else request.method,
        url=sent.url,
        headers=headers,
        body=None if is_poll or request.body is None else request.body.encode(),
        origin=origin_of(request.url),
    )


async def _perform_unless_stopped(
    ctx: TaskContext,
    key: Key,
    body: Body,
    spec: HttpTaskSpec,
    sent: engine.Send,
    prepared: PreparedRequest,
) -> engine.Exchange | None:
    exchange = asyncio.create_task(
        perform(
            ctx.http,
            prepared,
            timeout=sent.timeout,
            max_redirects=spec.max_redirects,
            response_policy=spec.response,
            clock=ctx.clock,
        )
    )
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
        raise
    return exchange.result()


def _terminated(body: Mapping[str, Any] | None) -> bool:
    return bool(body and (body.get("spec") or {}).get("terminate"))


async def _write(
    ctx: TaskContext, body: Body, status: Mapping[str, Any], *, conflict_ok: bool = True
) -> None:
    if status == (body.get("status") or {}):
        return
    try:
        written = await ctx.api.write_status(HTTPTASK_PLURAL, body, status)
    except NotFoundError:
        return
    except ConflictError:
        if not conflict_ok:
            raise
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with contextlib.suppress(NotFoundError):
            ctx.store.put(await ctx.api.get(HTTPTASK_PLURAL, *key))
        return
    METRICS.status_writes.labels(kind="HttpTask").inc()
    ctx.store.put(written)


def _result_label(exchange: engine.Exchange) -> str:
    result = exchange.result
    if isinstance(result, engine.HttpAnswer):
        return str(result.status_code)
    return "blocked" if result.blocked else ("timeout" if result.timed_out else "error")
