"""The SSRF guard, Secret headers, token sources, bounded bodies and per-host fairness.

Nothing leaves loopback: the "forbidden" address is 127.0.0.2, where a listener of our own
records any request that leaks through a guard that opens only 127.0.0.1/32.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from kubernetes import client

from tests.support.demo import DemoSite
from tests.support.processes import OperatorProcess
from tests.support.searches import Searches
from tests.support.tasks import create_task, wait_task
from tests.support.waiting import eventually

SECRET_VALUE = "s3cr3t-api-key-value-7731"


@pytest.fixture
def forbidden_site() -> Iterator[DemoSite]:
    site = DemoSite(host="127.0.0.2").start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def other_origin() -> Iterator[DemoSite]:
    site = DemoSite().start()
    try:
        yield site
    finally:
        site.stop()


# -- SSRF ----------------------------------------------------------------------------------


def test_the_guard_blocks_direct_redirected_and_polled_forbidden_addresses(
    api_client: client.ApiClient,
    isolated_namespace: str,
    demo_site: DemoSite,
    forbidden_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    start_operator(isolated_namespace, "--allow-cidr=127.0.0.1/32")
    searches = Searches(api_client, isolated_namespace)
    forbidden = f"http://127.0.0.2:{forbidden_site.port}/search?q=x&key=leak"
    name = searches.create(
        {
            "query": "ssrf",
            "providers": [
                {"name": "direct", "url": forbidden_site.url("leak")},
                {
                    "name": "redirect",
                    "url": demo_site.url("ssrf-redirect", redirect=forbidden.replace("&", "%26")),
                },
                {
                    "name": "location",
                    "url": demo_site.url(
                        "ssrf-location",
                        **{"async": 2, "location": forbidden.replace("&", "%26"), "retryafter": 0},
                    ),
                },
                {
                    "name": "unspecified",
                    "url": f"http://0.0.0.0:{forbidden_site.port}/?q={{query}}",
                },
                {
                    "name": "mapped",
                    "url": f"http://[::ffff:127.0.0.2]:{forbidden_site.port}/?q={{query}}",
                },
                {"name": "allowed", "url": demo_site.url("ssrf-allowed")},
            ],
        }
    )
    body = searches.wait(name)
    outcomes = {r["name"]: r["outcome"] for r in body["status"]["results"]}
    assert outcomes == {
        "direct": "Blocked",
        "redirect": "Blocked",
        "location": "Blocked",
        "unspecified": "Blocked",
        "mapped": "Blocked",
        "allowed": "Succeeded",
    }
    assert "127.0.0.2" in searches.result(body, "direct")["message"]
    assert "0.0.0.0" in searches.result(body, "unspecified")["message"]
    assert forbidden_site.stats()["hits"] == {}, "a request reached the forbidden listener"
    assert demo_site.stats()["hits"]["ssrf-redirect"] == 1  # the allowed first hop was made


def test_allow_host_opens_one_host_name_and_nothing_it_redirects_to(
    api_client: client.ApiClient,
    isolated_namespace: str,
    forbidden_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    start_operator(isolated_namespace, "--allow-cidr=127.0.0.1/32", "--allow-host=127.0.0.2")
    searches = Searches(api_client, isolated_namespace)
    onward = f"http://127.0.0.3:{forbidden_site.port}/search?q=x%26key=onward"
    name = searches.create(
        {
            "query": "hosts",
            "providers": [
                {"name": "opened", "url": forbidden_site.url("host-opened")},
                {"name": "onward", "url": forbidden_site.url("host-onward", redirect=onward)},
            ],
        }
    )
    outcomes = {r["name"]: r["outcome"] for r in searches.wait(name)["status"]["results"]}
    assert outcomes == {"opened": "Succeeded", "onward": "Blocked"}
    hits = forbidden_site.stats()["hits"]
    assert hits.get("host-opened") == 1 and hits.get("host-onward") == 1
    assert "onward" not in hits


# -- Secrets -------------------------------------------------------------------------------


def test_a_secret_header_reaches_the_provider_and_nowhere_else(
    api_client: client.ApiClient,
    namespace: str,
    searches: Searches,
    demo_site: DemoSite,
    other_origin: DemoSite,
    operator: OperatorProcess,
    kubectl: Any,
) -> None:
    client.CoreV1Api(api_client).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="keyed"), string_data={"key": SECRET_VALUE}
        ),
    )
    header = [{"name": "X-Api-Key", "valueFrom": {"secretKeyRef": {"name": "keyed", "key": "key"}}}]
    cross = f"{other_origin.base}/search?q=x%26key=cross-poll"
    cross_redirect = f"{other_origin.base}/search?q=x%26key=cross-redirect"
    name = searches.create(
        {
            "query": "secret",
            "providers": [
                {"name": "same", "url": demo_site.url("secret-same"), "headers": header},
                {
                    "name": "poll",
                    "url": demo_site.url("secret-poll", **{"async": 1, "location": cross}),
                    "headers": header,
                },
                {
                    "name": "hop",
                    "url": demo_site.url("secret-hop", redirect=cross_redirect),
                    "headers": header,
                },
            ],
        }
    )
    body = searches.wait(name)
    assert [r["outcome"] for r in body["status"]["results"]] == ["Succeeded"] * 3
    seen = demo_site.stats()["headers"]
    assert seen["secret-same"][0]["x-api-key"] == SECRET_VALUE
    assert seen["secret-poll"][0]["x-api-key"] == SECRET_VALUE
    crossed = other_origin.stats()["headers"]
    assert "x-api-key" not in crossed["cross-poll"][0], "sent across a cross-origin Location"
    assert "x-api-key" not in crossed["cross-redirect"][0], "sent across a cross-origin redirect"
    # Never in status, events or logs.
    everything = kubectl("get", "searches,httptasks,events", "-n", namespace, "-o", "yaml")
    assert SECRET_VALUE not in everything
    assert SECRET_VALUE not in operator.log.read_text()


# -- Token sources -------------------------------------------------------------------------


def test_a_service_account_token_passes_a_token_review_for_its_audience(
    api_client: client.ApiClient,
    namespace: str,
    searches: Searches,
    demo_site: DemoSite,
) -> None:
    client.CoreV1Api(api_client).create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="caller"))
    )
    audience = "https://api.durablesearch.test"
    create_task(
        api_client,
        namespace,
        "with-identity",
        {
            "request": {
                "url": f"{demo_site.base}/search?q=id&key=sa-token",
                "auth": {
                    "serviceAccountToken": {"serviceAccountName": "caller", "audience": audience}
                },
            }
        },
    )
    task = wait_task(api_client, namespace, "with-identity")
    assert task["status"]["outcome"] == "Succeeded"
    authorization = demo_site.stats()["headers"]["sa-token"][0]["authorization"]
    assert authorization.startswith("Bearer ")
    token = authorization.removeprefix("Bearer ")
    review = client.AuthenticationV1Api(api_client).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=[audience]))
    )
    assert review.status.authenticated is True
    assert review.status.user.username == f"system:serviceaccount:{namespace}:caller"
    wrong = client.AuthenticationV1Api(api_client).create_token_review(
        client.V1TokenReview(
            spec=client.V1TokenReviewSpec(token=token, audiences=["https://other.example"])
        )
    )
    assert not wrong.status.authenticated
    assert token not in str(task)


class TokenEndpoint:
    """A local OAuth 2.0 token endpoint issuing short-lived tokens; counts what it is asked."""

    def __init__(self, lifetime: int) -> None:
        self.lifetime = lifetime
        self.requests: list[dict[str, str]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append(
            {
                "authorization": request.headers.get("Authorization", ""),
                "grant_type": str(form.get("grant_type")),
                "scope": str(form.get("scope")),
            }
        )
        return web.json_response(
            {
                "access_token": f"token-{len(self.requests)}",
                "token_type": "Bearer",
                "expires_in": self.lifetime,
            }
        )

    def start(self) -> TokenEndpoint:
        self._thread.start()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/token", self._token)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", 0).start()
            self.port = self._runner.addresses[0][1]

        asyncio.run_coroutine_threadsafe(serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def test_an_oauth2_token_is_fetched_once_per_lifetime_not_once_per_request(
    api_client: client.ApiClient,
    namespace: str,
    searches: Searches,
    demo_site: DemoSite,
) -> None:
    endpoint = TokenEndpoint(lifetime=3).start()
    try:
        client.CoreV1Api(api_client).create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="oauth"),
                string_data={"id": "durable-client", "secret": "client-secret-123"},
            ),
        )
        auth = {
            "oauth2ClientCredentials": {
                "tokenUrl": f"http://127.0.0.1:{endpoint.port}/token",
                "clientId": {"secretKeyRef": {"name": "oauth", "key": "id"}},
                "clientSecret": {"secretKeyRef": {"name": "oauth", "key": "secret"}},
                "scopes": ["search.read"],
            }
        }

        def fetch(name: str) -> str:
            create_task(
                api_client,
                namespace,
                name,
                {"request": {"url": f"{demo_site.base}/search?q=o&key=oauth-{name}", "auth": auth}},
            )
            assert wait_task(api_client, namespace, name)["status"]["outcome"] == "Succeeded"
            header: str = demo_site.stats()["headers"][f"oauth-{name}"][0]["authorization"]
            return header

        first = [fetch(f"early-{i}") for i in range(4)]
        assert first == ["Bearer token-1"] * 4
        assert len(endpoint.requests) == 1
        time.sleep(3.5)  # past the token's lifetime
        assert fetch("late") == "Bearer token-2"
        assert len(endpoint.requests) == 2
        basic = base64.b64encode(b"durable-client:client-secret-123").decode()
        assert endpoint.requests[0] == {
            "authorization": f"Basic {basic}",
            "grant_type": "client_credentials",
            "scope": "search.read",
        }
    finally:
        endpoint.stop()


# -- Bodies --------------------------------------------------------------------------------


def test_a_5_mib_body_and_a_binary_body_are_stored_within_the_cap(
    api_client: client.ApiClient,
    namespace: str,
    searches: Searches,
    demo_site: DemoSite,
) -> None:
    five_mib = 5 * 1024 * 1024
    create_task(
        api_client,
        namespace,
        "huge",
        {
            "request": {"url": f"{demo_site.base}/search?q=big&key=huge&size={five_mib}"},
            "response": {"maxBodyBytes": 524288},
        },
    )
    create_task(
        api_client,
        namespace,
        "binary",
        {
            "request": {"url": f"{demo_site.base}/search?q=bin&key=bin&size=4000&binary=1"},
            "response": {"maxBodyBytes": 1000},
        },
    )
    huge = wait_task(api_client, namespace, "huge")["status"]["response"]
    assert huge["truncated"] is True
    assert huge["bodyBytes"] == five_mib
    assert huge["encoding"] == "utf-8"
    assert len(huge["body"].encode()) <= 524288
    binary = wait_task(api_client, namespace, "binary")["status"]["response"]
    assert (binary["encoding"], binary["truncated"]) == ("base64", True)
    assert len(base64.b64decode(binary["body"])) == 1000


# -- Fairness ------------------------------------------------------------------------------


def test_one_stalled_host_does_not_delay_the_others(
    api_client: client.ApiClient,
    isolated_namespace: str,
    demo_site: DemoSite,
    other_origin: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    start_operator(
        isolated_namespace,
        "--allow-cidr=127.0.0.0/8",
        "--max-connections=12",
        "--max-connections-per-host=4",
    )
    # More stalled requests than connections in all: without a per-host limit they would
    # take every connection and the healthy host would wait behind them.
    for i in range(15):
        create_task(
            api_client,
            isolated_namespace,
            f"stalled-{i}",
            {
                "request": {"url": f"{other_origin.base}/search?q=s&key=stalled&hang=1"},
                "deadlineSeconds": 60,
            },
        )
    eventually(
        lambda: other_origin.stats()["hits"].get("stalled") == 4,
        message="the stalled host holds its 4 connections",
    )
    started = time.monotonic()
    create_task(
        api_client,
        isolated_namespace,
        "healthy",
        {"request": {"url": f"{demo_site.base}/search?q=h&key=healthy"}},
    )
    task = wait_task(api_client, isolated_namespace, "healthy", timeout=20)
    assert task["status"]["outcome"] == "Succeeded"
    assert time.monotonic() - started < 10
    assert other_origin.stats()["hits"]["stalled"] == 4, "the per-host limit held"
