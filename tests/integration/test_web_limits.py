"""The web service's limits against the real stack: start rate, long-poll cap, trusted proxies, TTL.

Every client here is on loopback; distinct clients are distinct source addresses (127.0.0.2,
127.0.0.3...), which Linux routes like 127.0.0.1, so "per client" and "only from a trusted
proxy" are tested on real peer addresses.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, SEARCH_PLURAL, VERSION
from tests.support.demo import DemoSite
from tests.support.processes import OperatorProcess, WebProcess
from tests.support.searches import create_provider
from tests.support.waiting import eventually

PROBLEM = "application/problem+json"
StartWeb = Callable[..., WebProcess]


@pytest.fixture
def start_web(
    crds: None,
    kubeconfig: Path,
    web_namespace: str,
    operator: OperatorProcess,
    tmp_path: Path,
) -> Iterator[StartWeb]:
    """Web services of the test's own, with its flags, in the module's namespace."""
    started: list[WebProcess] = []

    def start(*args: str) -> WebProcess:
        log = tmp_path / f"web-{len(started)}.log"
        process = WebProcess(kubeconfig, log, web_namespace, list(args))
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def http_from(web: WebProcess, source: str = "127.0.0.1") -> httpx.Client:
    """A client whose connections come from ``source`` (a loopback address)."""
    return httpx.Client(
        base_url=web.base,
        trust_env=False,
        timeout=70,
        transport=httpx.HTTPTransport(local_address=source),
    )


@pytest.fixture
def provider(api_client: client.ApiClient, web_namespace: str, demo_site: DemoSite) -> str:
    name = f"p-{uuid.uuid4().hex[:8]}"
    return create_provider(api_client, web_namespace, name, demo_site.url("limits-fast"))


@pytest.fixture
def stuck_provider(api_client: client.ApiClient, web_namespace: str, demo_site: DemoSite) -> str:
    name = f"p-{uuid.uuid4().hex[:8]}"
    return create_provider(api_client, web_namespace, name, demo_site.url("limits-stuck", hang=1))


def start_search(http: httpx.Client, provider: str, **extra: Any) -> httpx.Response:
    return http.post("/api/searches", json={"query": "limits", "providers": [provider], **extra})


# -- start rate ------------------------------------------------------------------------------


def test_starts_are_rate_limited_per_client_with_429_and_retry_after(
    start_web: StartWeb, provider: str
) -> None:
    web = start_web("--start-rate=0.5", "--start-burst=3", "--trusted-proxy=127.0.0.2/32")
    with http_from(web) as first, http_from(web, "127.0.0.3") as second:
        for _ in range(3):
            assert start_search(first, provider, watcher=False).status_code == 202
        limited = start_search(first, provider, watcher=False)
        assert limited.status_code == 429, limited.text
        assert limited.headers["Content-Type"].startswith(PROBLEM)
        assert 1 <= int(limited.headers["Retry-After"]) <= 2
        assert first.get("/api/StartSearch", params={"q": "x"}).status_code == 429
        # Reads are not starts; a forged X-Forwarded-For from an untrusted peer changes nothing.
        assert first.get("/api/searches").status_code == 200
        spoofed = first.post(
            "/api/searches",
            json={"query": "x", "providers": [provider], "watcher": False},
            headers={"X-Forwarded-For": "198.51.100.7"},
        )
        assert spoofed.status_code == 429
        # Another client has its own bucket.
        assert start_search(second, provider, watcher=False).status_code == 202
    # Behind the trusted proxy, each forwarded client has its own bucket too.
    with http_from(web, "127.0.0.2") as proxy:
        for client_address in ("198.51.100.1", "198.51.100.2"):
            forwarded = {"X-Forwarded-For": f"{client_address}, 127.0.0.2"}
            for _ in range(3):
                response = proxy.post(
                    "/api/searches",
                    json={"query": "x", "providers": [provider], "watcher": False},
                    headers=forwarded,
                )
                assert response.status_code == 202, (client_address, response.text)
            again = proxy.post(
                "/api/searches",
                json={"query": "x", "providers": [provider], "watcher": False},
                headers=forwarded,
            )
            assert again.status_code == 429


# -- the long-poll cap -----------------------------------------------------------------------


def hold_long_polls(web: WebProcess, search_id: str, etag: str, count: int, seconds: float) -> Any:
    """``count`` long-polls waiting on ``search_id`` for ``seconds``, in a thread of their own."""

    async def crowd() -> list[int]:
        async with httpx.AsyncClient(base_url=web.base, trust_env=False, timeout=70) as session:

            async def poll() -> int:
                response = await session.get(
                    f"/api/searches/{search_id}",
                    params={"timeoutSeconds": seconds},
                    headers={"If-None-Match": etag},
                )
                return response.status_code

            return list(await asyncio.gather(*(poll() for _ in range(count))))

    pool = ThreadPoolExecutor(1)
    future = pool.submit(asyncio.run, crowd())
    pool.shutdown(wait=False)
    return future


def long_polls_waiting(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("durable_search_web_long_polls "):
            return float(line.split()[1])
    raise AssertionError("no long-poll gauge")


def running(http: httpx.Client, search_id: str) -> httpx.Response:
    response = None
    while response is None or response.json()["runtimeStatus"] != "Running":
        response = http.get(f"/api/searches/{search_id}")
        time.sleep(0.05)
    return response


def test_long_polls_past_the_cap_get_503_with_retry_after(
    start_web: StartWeb, stuck_provider: str
) -> None:
    web = start_web("--max-long-polls=3")
    with http_from(web) as http:
        started = start_search(http, stuck_provider, watcher=False)
        search_id = started.json()["id"]
        etag = running(http, search_id).headers["ETag"]
        crowd = hold_long_polls(web, search_id, etag, 3, 4)
        eventually(lambda: long_polls_waiting(http) == 3, message="three long-polls wait")
        refused = http.get(
            f"/api/searches/{search_id}",
            params={"timeoutSeconds": 10},
            headers={"If-None-Match": etag},
        )
        assert refused.status_code == 503, refused.text
        assert refused.headers["Content-Type"].startswith(PROBLEM)
        assert int(refused.headers["Retry-After"]) >= 1
        # A plain status read needs no slot.
        assert http.get(f"/api/searches/{search_id}").status_code == 202
        assert crowd.result(30) == [202, 202, 202]
        again = http.get(
            f"/api/searches/{search_id}",
            params={"timeoutSeconds": 0.5},
            headers={"If-None-Match": etag},
        )
        assert again.status_code == 202
        http.post(f"/api/searches/{search_id}/terminate")


def test_the_watcher_treats_503_as_still_running_and_rides_on_to_the_200(
    start_web: StartWeb,
    api_client: client.ApiClient,
    web_namespace: str,
    stuck_provider: str,
    demo_site: DemoSite,
) -> None:
    web = start_web("--max-long-polls=2")
    slow = create_provider(
        api_client,
        web_namespace,
        f"p-{uuid.uuid4().hex[:8]}",
        demo_site.url("limits-slow", delay=3),
    )
    custom = client.CustomObjectsApi(api_client)
    with http_from(web) as http:
        # Two long-polls on a Search that never finishes hold every slot for 6 s...
        blocker = start_search(http, stuck_provider, watcher=False).json()["id"]
        etag = running(http, blocker).headers["ETag"]
        crowd = hold_long_polls(web, blocker, etag, 2, 6)
        eventually(lambda: long_polls_waiting(http) == 2, message="every slot is taken")
        # ...so the watcher of this one is refused with 503 at first.
        watched = start_search(http, slow).json()["id"]
        task_name = f"{watched}--watcher"
        spec = custom.get_namespaced_custom_object(
            GROUP, VERSION, web_namespace, HTTPTASK_PLURAL, task_name
        )["spec"]
        assert 503 in spec["retry"]["onStatusCodes"]

        def watcher_status() -> dict[str, Any]:
            task = custom.get_namespaced_custom_object(
                GROUP, VERSION, web_namespace, HTTPTASK_PLURAL, task_name
            )
            return dict(task.get("status") or {})

        eventually(
            lambda: watcher_status().get("phase") in ("Succeeded", "Failed"),
            timeout=60,
            message="the watcher finishes",
        )
        status = watcher_status()
        codes = [entry.get("statusCode") for entry in status["attemptLog"]]
        assert 503 in codes, status
        assert (status["phase"], status["outcome"]) == ("Succeeded", "Succeeded"), status
        assert status["response"]["statusCode"] == 200
        assert crowd.result(30) == [202, 202]
        http.post(f"/api/searches/{blocker}/terminate")


# -- trusted proxies -------------------------------------------------------------------------

FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "search.example",
    "X-Forwarded-Prefix": "/durable",
}


def test_forwarded_headers_are_honoured_only_from_a_trusted_proxy_and_only_when_valid(
    start_web: StartWeb, provider: str
) -> None:
    web = start_web("--trusted-proxy=127.0.0.2/32")
    body = {"query": "proxied", "providers": [provider], "watcher": False}
    with http_from(web) as direct:
        # From anyone else the headers are ignored: URLs name the address actually reached.
        hostile = direct.post(
            "/api/searches",
            json=body,
            headers={"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "alert(1)//"},
        )
        assert hostile.status_code == 202
        assert hostile.headers["Location"].startswith(f"{web.base}/api/searches/")
        plain = direct.post("/api/searches", json=body, headers=FORWARDED)
        assert plain.json()["statusQueryGetUri"].startswith(f"{web.base}/api/")
    with http_from(web, "127.0.0.2") as proxy:
        proxied = proxy.post("/api/searches", json=body, headers=FORWARDED)
        assert proxied.status_code == 202
        assert proxied.headers["Location"].startswith("https://search.example/durable/api/")
        search_id = proxied.json()["id"]
        status = proxy.get(f"/api/searches/{search_id}", headers=FORWARDED)
        assert status.json()["resultGetUri"] == (
            f"https://search.example/durable/api/searches/{search_id}/result"
        )
        for bad in (
            {"X-Forwarded-Proto": "javascript"},
            {"X-Forwarded-Host": "evil.example/path"},
            {"X-Forwarded-Host": "a b"},
            {"X-Forwarded-Prefix": "//evil.example"},
            {"X-Forwarded-Prefix": "/../x"},
            {"X-Forwarded-For": "not-an-address"},
        ):
            refused = proxy.post("/api/searches", json=body, headers=bad)
            assert refused.status_code == 400, (bad, refused.text)
            assert refused.headers["Content-Type"].startswith(PROBLEM)
            assert next(iter(bad)) in refused.json()["detail"]


# -- the default TTL -------------------------------------------------------------------------


def test_web_started_searches_get_the_default_ttl_and_0_means_none(
    start_web: StartWeb, api_client: client.ApiClient, web_namespace: str, provider: str
) -> None:
    custom = client.CustomObjectsApi(api_client)

    def spec_of(name: str) -> dict[str, Any]:
        body = custom.get_namespaced_custom_object(
            GROUP, VERSION, web_namespace, SEARCH_PLURAL, name
        )
        return dict(body["spec"])

    short = start_web("--default-ttl-seconds=1")
    with http_from(short) as http:
        search_id = start_search(http, provider, watcher=False).json()["id"]
        compat_id = http.get("/api/StartSearch", params={"q": "ttl"}).json()["id"]
        assert spec_of(search_id)["ttlSecondsAfterFinished"] == 1
        assert spec_of(compat_id)["ttlSecondsAfterFinished"] == 1

        def deleted() -> bool:
            return http.get(f"/api/searches/{search_id}").status_code == 404

        eventually(deleted, timeout=30, message="the finished Search is deleted by its TTL")
    forever = start_web("--default-ttl-seconds=0")
    with http_from(forever) as http:
        search_id = start_search(http, provider, watcher=False).json()["id"]
        assert "ttlSecondsAfterFinished" not in spec_of(search_id)
