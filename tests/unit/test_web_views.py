"""The API's views in the real app (``create_app``), over an in-memory API server and a clock
the test moves: what each route answers and what it writes. The same routes against a real
control plane are in tests/integration/test_web_api.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from durable_search.api.constants import (
    API_VERSION,
    HTTPTASK_KIND,
    HTTPTASK_PLURAL,
    PROVIDER_PLURAL,
    SEARCH_KIND,
    SEARCH_PLURAL,
)
from durable_search.engine.names import watcher_name
from durable_search.kube.api import KubeApi, custom_path
from durable_search_web.app import WATCH_STALE_SECONDS, create_app
from durable_search_web.config import WebConfig
from tests.support.clocks import FakeClock
from tests.support.fake_kube import FakeKube

ClientFactory = Callable[[web.Application], Any]
SEARCHES = custom_path(SEARCH_PLURAL, "ns")
TASKS = custom_path(HTTPTASK_PLURAL, "ns")
PROVIDERS = custom_path(PROVIDER_PLURAL, "ns")
WATCHER_BASE = "http://web.example"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kube(clock: FakeClock) -> FakeKube:
    kube = FakeKube(clock.now)
    kube.add(
        PROVIDERS, {"metadata": {"name": "bing"}, "spec": {"url": "https://b.example/?q={query}"}}
    )
    return kube


@pytest.fixture
def start_app(
    aiohttp_client: ClientFactory, kube: FakeKube, clock: FakeClock
) -> Callable[..., Any]:
    async def start(**settings: Any) -> TestClient[Any, Any]:
        async def connect(kubeconfig: str | None) -> KubeApi:
            return KubeApi(kube)  # type: ignore[arg-type]

        config = WebConfig(namespace="ns", watcher_base_url=WATCHER_BASE, **settings)
        client: TestClient[Any, Any] = await aiohttp_client(
            create_app(config, connect=connect, clock=clock)
        )
        return client

    return start


@pytest.fixture
async def client(start_app: Callable[..., Any]) -> TestClient[Any, Any]:
    started: TestClient[Any, Any] = await start_app()
    return started


def search(name: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": SEARCH_KIND,
        "metadata": {"name": name},
        "spec": {"query": "durable", "providerRefs": ["bing"]},
    }
    if status is not None:
        body["status"] = status
    return body


def page(owner: dict[str, Any], name: str, html: str) -> dict[str, Any]:
    """An HttpTask ``owner`` controls, finished with ``html`` as its kept body."""
    return {
        "apiVersion": API_VERSION,
        "kind": HTTPTASK_KIND,
        "metadata": {
            "name": name,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": SEARCH_KIND,
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"request": {"url": "https://b.example/"}},
        "status": {"phase": "Succeeded", "response": {"statusCode": 200, "body": html}},
    }


def url(client: TestClient[Any, Any], path: str) -> str:
    return str(client.make_url(path))


# -- start ----------------------------------------------------------------------------------


async def test_a_start_creates_the_search_and_its_watcher_and_answers_where_to_poll(
    client: TestClient[Any, Any], kube: FakeKube
) -> None:
    response = await client.post(
        "/api/searches", json={"query": "durable functions", "providers": ["bing"]}
    )
    assert response.status == 202
    body = await response.json()
    name = body["id"]
    assert re.fullmatch(r"s-[0-9a-f]{12}", name)
    base = url(client, f"/api/searches/{name}")
    assert body == {
        "id": name,
        "statusQueryGetUri": base,
        "resultGetUri": f"{base}/result",
        "terminatePostUri": f"{base}/terminate",
        "purgeHistoryDeleteUri": base,
    }
    assert response.headers["Location"] == base
    assert response.headers["Retry-After"] == "1"
    created = kube.at(SEARCHES, name)
    assert created is not None
    assert created["spec"] == {
        "query": "durable functions",
        "providerRefs": ["bing"],
        "ttlSecondsAfterFinished": 86_400,
    }
    assert "durablesearch.dev/input" in created["metadata"]["annotations"]
    watcher = kube.at(TASKS, watcher_name(name))
    assert watcher is not None
    assert watcher["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert watcher["spec"]["request"]["url"] == (
        f"{WATCHER_BASE}/api/searches/{name}?timeoutSeconds=30"
    )


async def test_a_start_naming_an_unknown_provider_creates_nothing(
    client: TestClient[Any, Any], kube: FakeKube
) -> None:
    before = set(kube.objects)
    response = await client.post("/api/searches", json={"query": "q", "providers": ["nope"]})
    assert response.status == 400
    assert "unknown provider 'nope'" in (await response.json())["detail"]
    assert set(kube.objects) == before


async def test_a_client_past_its_start_burst_is_told_when_a_start_is_allowed_again(
    start_app: Callable[..., Any], clock: FakeClock
) -> None:
    client = await start_app(start_rate=0.5, start_burst=1)
    start = {"query": "q", "watcher": False}
    assert (await client.post("/api/searches", json=start)).status == 202
    refused = await client.post("/api/searches", json=start)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "2"
    clock.advance(2)
    assert (await client.post("/api/searches", json=start)).status == 202


# -- status ---------------------------------------------------------------------------------


async def test_a_running_search_is_202_with_where_and_when_to_poll_again(
    client: TestClient[Any, Any], kube: FakeKube
) -> None:
    running = kube.add(SEARCHES, search("s-running", {"phase": "Running", "progress": "0/1"}))
    response = await client.get("/api/searches/s-running")
    assert response.status == 202
    assert response.headers["Location"] == url(client, "/api/searches/s-running")
    assert response.headers["Retry-After"] == "1"
    assert response.headers["ETag"] == f'"{running["metadata"]["resourceVersion"]}"'
    document = await response.json()
    assert document["runtimeStatus"] == "Running"
    assert document["output"] is None


async def test_a_finished_search_is_200_with_its_output(
    client: TestClient[Any, Any], kube: FakeKube
) -> None:
    results = [{"name": "bing", "httpTaskName": "s-done-bing", "outcome": "Succeeded"}]
    kube.add(SEARCHES, search("s-done", {"phase": "Completed", "results": results}))
    response = await client.get("/api/searches/s-done")
    assert response.status == 200
    assert "Location" not in response.headers
    document = await response.json()
    assert document["runtimeStatus"] == "Completed"
    assert document["output"]["results"] == results


async def test_an_unknown_search_is_404(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/searches/s-nothere")
    assert response.status == 404
    assert response.content_type == "application/problem+json"


async def test_a_long_poll_answers_as_soon_as_the_search_changes(
    client: TestClient[Any, Any], kube: FakeKube
) -> None:
    kube.add(SEARCHES, search("s-poll", {"phase": "Running"}))
    polling = asyncio.create_task(client.get("/api/searches/s-poll?timeoutSeconds=30"))
    await asyncio.sleep(0.05)
    assert not polling.done()
    await kube.merge_patch(f"{SEARCHES}/s-poll", {"status": {"phase": "Completed"}})
    response = await asyncio.wait_for(polling, 5)
    assert response.status == 200
    assert (await response.json())["runtimeStatus"] == "Completed"


# -- result ---------------------------------------------------------------------------------


async def test_the_result_of_a_running_search_is_202(
    client: TestClient[Any, Any], kube: FakeKube
) -> None:
    kube.add(SEARCHES, search("s-running", {"phase": "Running"}))
    response = await client.get("/api/searches/s-running/result")
    assert response.status == 202
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["runtimeStatus"] == "Running"


async def test_the_result_of_a_completed_search_is_its_pages_joined_by_rules(
    client: TestClient[Any, Any], kube: FakeKube
) -> None:
    results = [
        {"name": "bing", "httpTaskName": "s-done-bing", "outcome": "Succeeded"},
        {"name": "ddg", "httpTaskName": "s-done-ddg", "outcome": "Succeeded"},
    ]
    done = kube.add(SEARCHES, search("s-done", {"phase": "Completed", "results": results}))
    kube.add(TASKS, page(done, "s-done-bing", "<p>bing</p>"))
    kube.add(TASKS, page(done, "s-done-ddg", "<p>ddg</p>"))
    response = await client.get("/api/searches/s-done/result")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert await response.text() == "<p>bing</p><hr/><p>ddg</p>"
    assert response.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"


async def test_a_failed_search_has_no_result(client: TestClient[Any, Any], kube: FakeKube) -> None:
    kube.add(SEARCHES, search("s-failed", {"phase": "Failed"}))
    response = await client.get("/api/searches/s-failed/result")
    assert response.status == 400
    assert "is Failed" in (await response.json())["detail"]


# -- terminate ------------------------------------------------------------------------------


async def test_terminating_a_running_search_asks_the_operator_to_stop_it(
    client: TestClient[Any, Any], kube: FakeKube
) -> None:
    kube.add(SEARCHES, search("s-running", {"phase": "Running"}))
    response = await client.post("/api/searches/s-running/terminate?reason=enough")
    assert response.status == 202
    assert await response.json() == {"id": "s-running", "terminating": True}
    spec = kube.at(SEARCHES, "s-running")["spec"]
    assert spec["terminate"] is True
    assert spec["terminateReason"] == "enough"


async def test_terminating_a_finished_search_is_410_and_writes_nothing(
    client: TestClient[Any, Any], kube: FakeKube
) -> None:
    kube.add(SEARCHES, search("s-done", {"phase": "Completed"}))
    response = await client.post("/api/searches/s-done/terminate")
    assert response.status == 410
    assert "terminate" not in kube.at(SEARCHES, "s-done")["spec"]


# -- liveness -------------------------------------------------------------------------------


async def test_the_service_is_unhealthy_once_the_watch_has_been_silent_too_long(
    client: TestClient[Any, Any], kube: FakeKube, clock: FakeClock
) -> None:
    async def status_of(path: str, want: int) -> None:
        for _ in range(100):
            if (await client.get(path)).status == want:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{path} never answered {want}")

    await status_of("/readyz", 200)
    assert (await client.get("/healthz")).status == 200
    clock.advance(WATCH_STALE_SECONDS + 1)
    assert (await client.get("/healthz")).status == 503
    kube.add(SEARCHES, search("s-new"))  # an event: the watch is alive again
    await status_of("/healthz", 200)
