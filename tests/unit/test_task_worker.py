"""The HttpTask worker against fakes at its seams (API, HTTP client, credentials)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

import httpx

from durable_search.api.models import RequestSpec
from durable_search.controller.store import ObjectStore
from durable_search.controller.tasks import TaskContext, run_task
from durable_search.errors import InvalidRequestError, RefusedError
from durable_search.http.client import IncomingResponse, OutgoingRequest
from durable_search.http.executor import RequestHeader

NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)


def task_body() -> dict[str, Any]:
    return {
        "apiVersion": "durablesearch.dev/v1alpha1",
        "kind": "HttpTask",
        "metadata": {
            "name": "t",
            "namespace": "ns",
            "uid": "u",
            "resourceVersion": "1",
            "creationTimestamp": "2026-12-01T12:00:00Z",
        },
        "spec": {"request": {"url": "https://site.example/"}, "retry": {"maxAttempts": 1}},
    }


class FakeApi:
    """Refuses the first ``refusals`` status writes as the API server would (422/413)."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.written: list[Mapping[str, Any]] = []

    async def write_status(
        self, plural: str, body: Mapping[str, Any], status: Mapping[str, Any]
    ) -> dict[str, Any]:
        self.written.append(status)
        if len(self.written) <= self.refusals:
            raise RefusedError("Request entity too large: limit is 3145728", 413)
        version = str(int(body["metadata"]["resourceVersion"]) + 1)
        return {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": version},
            "status": status,
        }


class FakeHttp:
    def __init__(self) -> None:
        self.sent: list[OutgoingRequest] = []

    async def send(
        self, request: OutgoingRequest, *, timeout: float, max_body_bytes: int
    ) -> IncomingResponse:
        self.sent.append(request)
        return IncomingResponse(200, "OK", httpx.Headers(), b"page", False, None)

    async def aclose(self) -> None:
        return None


class FakeCredentials:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    async def headers(self, namespace: str, request: RequestSpec) -> list[RequestHeader]:
        if self.error is not None:
            raise self.error
        return []

    async def body(self, namespace: str, request: RequestSpec) -> tuple[bytes | None, bool]:
        return request.literal_body(), False


def context(api: FakeApi, http: FakeHttp, credentials: FakeCredentials) -> TaskContext:
    store = ObjectStore()
    store.put(task_body())
    return TaskContext(
        api=api,  # type: ignore[arg-type]
        store=store,
        http=http,
        credentials=credentials,  # type: ignore[arg-type]
        clock=lambda: NOW,
    )


async def test_a_status_the_api_server_refuses_is_recorded_once_as_too_large_to_record() -> None:
    api, http = FakeApi(refusals=1), FakeHttp()
    await run_task(context(api, http, FakeCredentials()), ("ns", "t"))
    assert len(http.sent) == 1, "the request was sent again"
    refused, recorded = api.written
    assert "response" in refused and "response" not in recorded
    assert (recorded["phase"], recorded["outcome"]) == ("Failed", "Invalid")
    assert recorded["conditions"][0]["reason"] == "TooLargeToRecord"
    assert "limit is 3145728" in recorded["message"]


async def test_a_request_that_cannot_be_prepared_ends_invalid_without_being_sent() -> None:
    api, http = FakeApi(refusals=0), FakeHttp()
    credentials = FakeCredentials(InvalidRequestError('Secret "k" key "v" is not UTF-8 text'))
    await run_task(context(api, http, credentials), ("ns", "t"))
    assert http.sent == []
    (recorded,) = api.written
    assert (recorded["outcome"], recorded["conditions"][0]["reason"]) == (
        "Invalid",
        "InvalidRequest",
    )


async def test_an_unexpected_error_while_preparing_is_an_internal_outcome_not_a_crash() -> None:
    api, http = FakeApi(refusals=0), FakeHttp()
    await run_task(context(api, http, FakeCredentials(RuntimeError("boom"))), ("ns", "t"))
    (recorded,) = api.written
    assert (recorded["outcome"], recorded["conditions"][0]["reason"]) == ("Invalid", "Internal")
    assert http.sent == []


class HangingHttp(FakeHttp):
    """A site that never answers: the exchange stays in flight until it is cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = asyncio.Event()

    async def send(
        self, request: OutgoingRequest, *, timeout: float, max_body_bytes: int
    ) -> IncomingResponse:
        self.sent.append(request)
        self.in_flight.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")


async def test_a_worker_cancelled_mid_exchange_leaves_no_task_behind() -> None:
    api, http = FakeApi(refusals=0), HangingHttp()
    before = asyncio.all_tasks()
    worker = asyncio.create_task(run_task(context(api, http, FakeCredentials()), ("ns", "t")))
    await asyncio.wait_for(http.in_flight.wait(), 5)
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker
    await asyncio.sleep(0)  # cancelled tasks finish on the loop's next turn
    left = [task for task in asyncio.all_tasks() - before if not task.done()]
    assert left == [], "the exchange and its change waiter end with the worker"
    assert api.written == []
