"""The web service's HTTP API against the real control plane, with the operator running."""

from __future__ import annotations

import asyncio
import logging
import re
import statistics
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from kubernetes import client

from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, PROVIDER_PLURAL, VERSION
from durable_search.api.timestamps import parse_time
from tests.support.demo import DemoSite
from tests.support.fixtures import PROXY_ADDRESS, Kubectl
from tests.support.processes import WebProcess
from tests.support.searches import create_provider
from tests.support.waiting import eventually

logger = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


@pytest.fixture
def http(web: WebProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web.base, trust_env=False, timeout=70) as session:
        yield session


def add_provider(api_client: client.ApiClient, namespace: str, url: str) -> str:
    return create_provider(api_client, namespace, f"p-{uuid.uuid4().hex[:8]}", url)


def start(http: httpx.Client, query: str, providers: list[str], **extra: Any) -> str:
    response = http.post("/api/searches", json={"query": query, "providers": providers, **extra})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_finished(http: httpx.Client, search_id: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = http.get(f"/api/searches/{search_id}", params={"timeoutSeconds": 5})
        if response.status_code == 200:
            return response
    raise AssertionError(f"{search_id} did not finish")


@pytest.fixture
def provider_factory(api_client: client.ApiClient, web_namespace: str) -> Iterator[Any]:
    """SearchProviders for one test, deleted after it (the namespace is shared by the module)."""
    made: list[str] = []

    def make(url: str) -> str:
        made.append(add_provider(api_client, web_namespace, url))
        return made[-1]

    yield make
    for name in made:
        client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
            GROUP, VERSION, web_namespace, PROVIDER_PLURAL, name
        )


@pytest.fixture
def fast(provider_factory: Any, demo_site: DemoSite) -> str:
    return str(provider_factory(demo_site.url("web-fast")))


@pytest.fixture
def slow(provider_factory: Any, demo_site: DemoSite) -> str:
    return str(provider_factory(demo_site.url("web-slow", delay=2)))


@pytest.fixture
def stuck(provider_factory: Any, demo_site: DemoSite) -> str:
    return str(provider_factory(demo_site.url("web-stuck", hang=1)))


# -- start and status -----------------------------------------------------------------------


def test_start_answers_202_with_the_status_location_and_the_sample_uris(
    http: httpx.Client, web: WebProcess, fast: str
) -> None:
    response = http.post("/api/searches", json={"query": "café & crème", "providers": [fast]})
    assert response.status_code == 202
    body = response.json()
    assert re.fullmatch(r"s-[0-9a-f]{12}", body["id"])
    base = f"{web.base}/api/searches/{body['id']}"
    assert response.headers["Location"] == base == body["statusQueryGetUri"]
    assert body["resultGetUri"] == f"{base}/result"
    assert body["terminatePostUri"] == f"{base}/terminate"
    assert body["purgeHistoryDeleteUri"] == base
    # URLs derive from the request: a (trusted) proxy's forwarded host and prefix are honoured.
    forwarded = {
        "X-Forwarded-Host": "search.example",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Prefix": "/durable",
    }
    proxy_transport = httpx.HTTPTransport(local_address=PROXY_ADDRESS)
    with httpx.Client(base_url=web.base, trust_env=False, transport=proxy_transport) as proxy:
        proxied = proxy.post(
            "/api/searches", json={"query": "x", "providers": [fast]}, headers=forwarded
        )
    assert proxied.json()["statusQueryGetUri"].startswith("https://search.example/durable/api/")
    # ...and only a trusted proxy's: from anyone else they are ignored.
    direct = http.post("/api/searches", json={"query": "x", "providers": [fast]}, headers=forwarded)
    assert direct.json()["statusQueryGetUri"].startswith(f"{web.base}/api/")


def test_status_is_202_while_running_and_200_once_finished(http: httpx.Client, slow: str) -> None:
    search_id = start(http, "status codes", [slow])
    running = http.get(f"/api/searches/{search_id}")
    assert running.status_code == 202
    assert running.headers["Location"].endswith(f"/api/searches/{search_id}")
    assert running.headers["Retry-After"] == "1"
    assert running.headers["ETag"].strip('"').isdigit()
    assert running.json()["runtimeStatus"] in ("Pending", "Running")
    assert running.json()["input"] == {"query": "status codes", "providers": [slow]}
    finished = wait_finished(http, search_id)
    document = finished.json()
    assert document["runtimeStatus"] == "Completed"
    assert document["output"]["results"][0]["outcome"] == "Succeeded"
    assert document["createdTime"] and document["lastUpdatedTime"]
    assert http.get("/api/searches/s-000000000000").status_code == 404


def test_long_poll_answers_soon_after_the_search_finishes(http: httpx.Client, slow: str) -> None:
    latencies = []
    for _ in range(3):
        search_id = start(http, "long poll", [slow])
        etag = http.get(f"/api/searches/{search_id}").headers["ETag"]
        response = None
        while response is None or response.status_code == 202:
            response = http.get(
                f"/api/searches/{search_id}",
                params={"timeoutSeconds": 30},
                headers={"If-None-Match": etag},
            )
            etag = response.headers["ETag"]
        answered = time.time()
        completed = parse_time(response.json()["lastUpdatedTime"])
        assert completed is not None
        latencies.append(answered - completed.timestamp())
    logger.warning("long-poll notify latency after completion: %s", latencies)
    assert statistics.median(latencies) < 5  # loose: the figure is measured by bench/longpoll.py


def test_long_poll_times_out_with_202_and_an_old_etag_answers_at_once(
    http: httpx.Client, stuck: str
) -> None:
    search_id = start(http, "patience", [stuck])
    running = None
    while running is None or running.json()["runtimeStatus"] != "Running":
        running = http.get(f"/api/searches/{search_id}", params={"timeoutSeconds": 5})
    # Running with a provider that never answers: nothing changes until the timeout.
    began = time.monotonic()
    timed_out = http.get(
        f"/api/searches/{search_id}",
        params={"timeoutSeconds": 1.5},
        headers={"If-None-Match": running.headers["ETag"]},
    )
    assert timed_out.status_code == 202
    assert timed_out.headers["ETag"] == running.headers["ETag"]
    assert timed_out.headers["Retry-After"] == "0"
    assert 1.4 <= time.monotonic() - began < 10
    began = time.monotonic()
    at_once = http.get(
        f"/api/searches/{search_id}",
        params={"timeoutSeconds": 30},
        headers={"If-None-Match": '"1"'},
    )
    assert at_once.status_code == 202
    assert time.monotonic() - began < 2
    http.post(f"/api/searches/{search_id}/terminate")


def test_the_watcher_rides_the_long_poll_to_the_final_200(
    http: httpx.Client,
    api_client: client.ApiClient,
    web_namespace: str,
    provider_factory: Any,
    demo_site: DemoSite,
) -> None:
    # Two providers finishing seconds apart: the watcher's first long-poll answers 202 at the
    # first one's outcome, then it follows Location until the 200. The first takes 3 s so that
    # the watcher's first request is surely waiting by then, even on a loaded machine.
    quicker = provider_factory(demo_site.url("web-quicker", delay=3))
    slower = provider_factory(demo_site.url("web-slower", delay=8))
    search_id = start(http, "watched", [quicker, slower])
    wait_finished(http, search_id)
    custom = client.CustomObjectsApi(api_client)

    def watcher_done() -> bool:
        task = custom.get_namespaced_custom_object(
            GROUP, VERSION, web_namespace, HTTPTASK_PLURAL, f"{search_id}--watcher"
        )
        return (task.get("status") or {}).get("phase") == "Succeeded"

    eventually(watcher_done, message="the watcher finishes")
    task = custom.get_namespaced_custom_object(
        GROUP, VERSION, web_namespace, HTTPTASK_PLURAL, f"{search_id}--watcher"
    )
    owner = task["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Search", search_id, False)
    assert task["spec"]["request"]["url"].endswith(f"/api/searches/{search_id}?timeoutSeconds=30")
    assert task["status"]["response"]["statusCode"] == 200
    assert task["status"].get("pollCount", 0) >= 1, task["status"]
    assert [e.get("statusCode") for e in task["status"]["attemptLog"]][-1] == 200
    # The fan-in does not count the watcher.
    document = http.get(f"/api/searches/{search_id}").json()
    assert [r["name"] for r in document["output"]["results"]] == [quicker, slower]
    watcher = http.get(f"/api/searches/{search_id}/watcher").json()
    assert (watcher["phase"], watcher["statusCode"]) == ("Succeeded", 200)
    no_watcher = start(http, "unwatched", [quicker], watcher=False)
    assert http.get(f"/api/searches/{no_watcher}/watcher").status_code == 404


# -- results --------------------------------------------------------------------------------


def test_result_routes_are_sandboxed_and_follow_the_samples_codes(
    http: httpx.Client, fast: str, slow: str, stuck: str
) -> None:
    search_id = start(http, "results <b>", [fast, slow])
    running = http.get(f"/api/searches/{search_id}/result")
    assert running.status_code == 202
    assert running.headers["Retry-After"] == "1"
    wait_finished(http, search_id)
    result = http.get(f"/api/searches/{search_id}/result")
    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("text/html")
    assert result.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert result.headers["X-Content-Type-Options"] == "nosniff"
    assert result.text.count("<hr/>") == 1
    assert "Results for <b>results &lt;b&gt;</b>" in result.text
    one = http.get(f"/api/searches/{search_id}/results/{fast}")
    assert one.status_code == 200
    assert one.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert "<hr/>" not in one.text
    assert http.get(f"/api/searches/{search_id}/results/nobody").status_code == 404
    assert http.get("/api/searches/s-ffffffffffff/result").status_code == 404

    terminated = start(http, "cut short", [stuck])
    http.post(f"/api/searches/{terminated}/terminate")
    wait_finished(http, terminated)
    refused = http.get(f"/api/searches/{terminated}/result")
    assert refused.status_code == 400
    assert "Terminated" in refused.json()["detail"]


def test_the_samples_compatibility_routes(http: httpx.Client, fast: str) -> None:
    started = http.get("/api/StartSearch", params={"q": "compat"})
    assert started.status_code == 202
    search_id = started.json()["id"]
    wait_finished(http, search_id)
    result = http.get("/api/GetResult", params={"id": search_id})
    assert result.status_code == 200
    assert result.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert http.get("/api/StartSearch").status_code == 400
    assert http.get("/api/GetResult").status_code == 400


# -- list, terminate, purge -----------------------------------------------------------------


def test_list_is_newest_first_with_filters_and_pagination(http: httpx.Client, fast: str) -> None:
    ids = []
    for n in range(3):
        time.sleep(1.1)  # creationTimestamp has one-second resolution: keep the order strict
        ids.append(start(http, f"listed {n}", [fast]))
    for search_id in ids:
        wait_finished(http, search_id)
    first = http.get("/api/searches", params={"top": 2})
    assert first.status_code == 200
    page = first.json()
    assert [d["id"] for d in page["items"]][:2] == ids[::-1][:2]
    token = page["continuationToken"]
    assert token and first.headers["x-ms-continuation-token"] == token
    second = http.get("/api/searches", params={"top": 2, "continuationToken": token}).json()
    assert second["items"][0]["id"] == ids[0]
    completed = http.get("/api/searches", params={"runtimeStatus": "Completed,Failed", "top": 500})
    assert all(d["runtimeStatus"] in ("Completed", "Failed") for d in completed.json()["items"])
    future = http.get("/api/searches", params={"createdTimeFrom": "2999-01-01T00:00:00Z"})
    assert future.json()["items"] == []
    for bad in (
        {"top": "0"},
        {"top": "501"},
        {"runtimeStatus": "Sleeping"},
        {"createdTimeTo": "yesterday"},
        {"continuationToken": "!!"},
    ):
        response = http.get("/api/searches", params=bad)
        assert response.status_code == 400, bad
        assert response.headers["Content-Type"].startswith(PROBLEM)


def test_terminate_then_purge(http: httpx.Client, stuck: str, fast: str) -> None:
    search_id = start(http, "stop me", [stuck])
    assert http.delete(f"/api/searches/{search_id}").status_code == 409
    assert http.post(f"/api/searches/{search_id}/terminate").status_code == 202
    assert wait_finished(http, search_id).json()["runtimeStatus"] == "Terminated"
    assert http.post(f"/api/searches/{search_id}/terminate").status_code == 410
    purged = http.delete(f"/api/searches/{search_id}")
    assert purged.status_code == 200
    assert purged.json() == {"instancesDeleted": 1}
    assert http.get(f"/api/searches/{search_id}").status_code == 404
    assert http.delete(f"/api/searches/{search_id}").status_code == 404
    assert http.post("/api/searches/s-ffffffffffff/terminate").status_code == 404


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_args", "status", "detail"),
    [
        ({"json": {}}, 400, '"query" is required'),
        ({"json": {"query": ""}}, 400, "must not be empty"),
        ({"json": {"query": "x" * 513}}, 400, "longer than 512"),
        (
            {"json": {"query": "x", "providers": [{"url": "http://evil/?q={query}"}]}},
            400,
            "names only",
        ),
        ({"json": {"query": "x", "providers": ["Not A Name"]}}, 400, "not a SearchProvider name"),
        ({"json": {"query": "x", "providers": ["nobody-here"]}}, 400, "unknown provider"),
        ({"json": {"query": "x", "color": "blue"}}, 400, "unknown field"),
        ({"json": ["query"]}, 400, "JSON object"),
        (
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "not valid JSON",
        ),
        (
            {
                "content": b"query=x",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            415,
            "application/json",
        ),
        (
            {
                "content": b'{"query": "' + b"x" * 20000 + b'"}',
                "headers": {"Content-Type": "application/json"},
            },
            413,
            "larger than",
        ),
    ],
)
def test_bad_start_requests_get_a_problem_with_a_reason(
    http: httpx.Client, request_args: dict[str, Any], status: int, detail: str
) -> None:
    response = http.post("/api/searches", **request_args)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["status"] == status
    assert detail in problem["detail"]


def test_unknown_routes_wrong_methods_and_bad_timeouts(http: httpx.Client) -> None:
    assert http.get("/api/nothing").status_code == 404
    wrong = http.put("/api/searches")
    assert wrong.status_code == 405
    assert wrong.headers["Content-Type"].startswith(PROBLEM)
    assert "PUT is not allowed" in wrong.json()["detail"]
    assert http.get("/api/searches/s-x", params={"timeoutSeconds": "61"}).status_code == 400
    assert http.get("/api/searches/s-x", params={"timeoutSeconds": "soon"}).status_code == 400
    assert http.get("/api/searches/Bad_Name").status_code == 404


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "path", "request_args", "status"),
    [
        ("GET", "/api/searches", {"params": {"top": "\u00b2"}}, 400),  # '²'.isdigit() is True
        ("GET", "/api/searches", {"params": {"top": "\uff11\uff10"}}, 400),  # fullwidth 10
        ("GET", "/api/searches", {"params": {"top": "1" * 5000}}, 400),
        ("GET", "/api/searches/s-x", {"params": {"timeoutSeconds": "1_0"}}, 400),
        ("GET", "/api/searches/s-x", {"params": {"timeoutSeconds": "\u0663"}}, 400),
        ("GET", "/api/searches/s-x", {"params": {"timeoutSeconds": "nan"}}, 400),
        ("GET", "/api/searches/s-x%0A", {}, 404),
        ("POST", "/api/searches", {"content": b"[" * 15000, "headers": JSON}, 400),
        ("POST", "/api/searches", {"content": b'{"a":' * 3000, "headers": JSON}, 400),
        ("POST", "/api/searches", {"content": b'{"query": "\xff"}', "headers": JSON}, 400),
        (
            "POST",
            "/api/searches",
            {
                "content": b'{"query": "x"}',
                "headers": {"Content-Type": "application/json; charset=no-such-charset"},
            },
            415,
        ),
        ("POST", "/api/searches", {"json": {"query": "x", "providers": ["p\n"]}}, 400),
        ("POST", "/api/searches", {"json": {"query": "x", "watcher": None}}, 400),
        ("POST", "/api/searches", {"content": b"1" * 5000, "headers": JSON}, 400),
    ],
)
def test_malformed_input_gets_a_4xx_problem_never_a_500(
    http: httpx.Client, method: str, path: str, request_args: dict[str, Any], status: int
) -> None:
    response = http.request(method, path, **request_args)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM)
    assert response.json()["detail"]


def test_web_started_searches_carry_the_default_ttl(
    http: httpx.Client, api_client: client.ApiClient, web_namespace: str, fast: str
) -> None:
    custom = client.CustomObjectsApi(api_client)
    started = start(http, "kept a day", [fast], watcher=False)
    compat = http.get("/api/StartSearch", params={"q": "kept a day"}).json()["id"]
    for search_id in (started, compat):
        body = custom.get_namespaced_custom_object(
            GROUP, VERSION, web_namespace, "searches", search_id
        )
        assert body["spec"]["ttlSecondsAfterFinished"] == 86400


def test_page_health_readiness_metrics_and_openapi(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert 'src="static/app.js"' in page.text  # relative: works behind any prefix
    assert http.get("/static/app.js").status_code == 200
    assert http.get("/healthz").text == "ok\n"
    assert http.get("/readyz").text == "ok\n"
    assert "durable_search_web_requests_total" in http.get("/metrics").text
    spec = http.get("/api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/api/searches/{id}/result" in spec["paths"]


# -- one watch for every long-poll ----------------------------------------------------------


def watch_requests(kubectl: Kubectl) -> int:
    """WATCH requests on searches the API server is serving right now."""
    text = kubectl("get", "--raw", "/metrics")
    total = 0
    for line in text.splitlines():
        if (
            line.startswith("apiserver_longrunning_requests{")
            and 'resource="searches"' in line
            and 'verb="WATCH"' in line
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_200_concurrent_long_polls_are_served_by_the_one_watch(
    http: httpx.Client,
    web: WebProcess,
    kubectl: Kubectl,
    provider_factory: Any,
    demo_site: DemoSite,
) -> None:
    crowd_site = provider_factory(demo_site.url("web-crowd", delay=5))
    search_id = start(http, "crowd", [crowd_site], watcher=False)  # exactly our 200 waiters
    running = None
    while running is None or running.json()["runtimeStatus"] != "Running":
        running = http.get(f"/api/searches/{search_id}", params={"timeoutSeconds": 5})
    etag = running.headers["ETag"]
    watches_before = watch_requests(kubectl)

    async def crowd() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=250)
        async with httpx.AsyncClient(
            base_url=web.base, trust_env=False, timeout=70, limits=limits
        ) as session:

            async def poll() -> httpx.Response:
                return await session.get(
                    f"/api/searches/{search_id}",
                    params={"timeoutSeconds": 30},
                    headers={"If-None-Match": etag},
                )

            tasks = [asyncio.ensure_future(poll()) for _ in range(200)]
            await asyncio.sleep(1)
            waiting = (await session.get("/metrics")).text
            gauge = re.search(r"^durable_search_web_long_polls (\S+)$", waiting, re.M)
            assert gauge is not None and float(gauge.group(1)) == 200, gauge
            assert watch_requests(kubectl) == watches_before
            return await asyncio.gather(*tasks)

    began = time.monotonic()
    # Its own thread and loop: the suite's other clients may hold an event loop on this one.
    with ThreadPoolExecutor(1) as pool:
        responses = pool.submit(asyncio.run, crowd()).result()
    assert all(r.status_code in (200, 202) for r in responses)
    assert all(r.headers["ETag"] != etag for r in responses), "every poll saw the change"
    assert time.monotonic() - began < 30
