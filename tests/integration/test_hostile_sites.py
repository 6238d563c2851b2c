"""Sites that answer the way an attacker's would, and tenants that name what is not theirs.

Each test here pins one finding of the security review (README, Security): the operator must
stay within its memory, record a writable status for any answer, send each claimed request
once, keep nothing of one task's exchange for another's, and never hand a credential to a
site it was not meant for. The sites are local (``tests/support/hostile.py``).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from kubernetes import client

from durable_search.api.constants import GROUP, VERSION
from durable_search.engine.bounds import STATUS_BUDGET, go_json_size
from durable_search.engine.names import child_name
from durable_search.engine.page import text_body
from tests.support import hostile
from tests.support.demo import DemoSite
from tests.support.processes import OperatorProcess, WebProcess
from tests.support.schema_bounds import status_schema, violations
from tests.support.searches import Searches
from tests.support.tasks import create_task, wait_task
from tests.support.waiting import eventually

SECRET_VALUE = "tenant-b-api-key-90210"


@pytest.fixture(scope="module")
def hostile_site() -> Iterator[DemoSite]:
    hostile.zeros_gzipped_twice()  # build the bombs before any operator waits on them
    site = DemoSite(app=hostile.create_app).start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def elsewhere() -> Iterator[DemoSite]:
    """Another origin (another port) that records what reaches it."""
    site = DemoSite(app=hostile.create_app).start()
    try:
        yield site
    finally:
        site.stop()


def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def peak_rss_mib(process: OperatorProcess) -> float:
    assert process.process is not None
    for line in Path(f"/proc/{process.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def secret(api_client: client.ApiClient, namespace: str, name: str, data: dict[str, bytes]) -> None:
    client.CoreV1Api(api_client).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name),
            data={k: base64.b64encode(v).decode() for k, v in data.items()},
        ),
    )


# -- answers that would exhaust or confuse the operator -------------------------------------


def test_compression_bombs_are_cut_at_the_cap_and_the_operators_memory_stays_flat(
    api_client: client.ApiClient,
    isolated_namespace: str,
    hostile_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    operator = start_operator(isolated_namespace, "--allow-cidr=127.0.0.0/8")
    before = peak_rss_mib(operator)
    for name in ("gzip-gzip", "bomb", "bomb-inner"):
        create_task(
            api_client,
            isolated_namespace,
            name,
            {"request": {"url": f"{hostile_site.base}/{name}"}, "retry": {"maxAttempts": 1}},
        )
    tasks = {
        n: wait_task(api_client, isolated_namespace, n) for n in ("gzip-gzip", "bomb", "bomb-inner")
    }
    grown = peak_rss_mib(operator) - before
    # Before the fix: +720 MiB for the first, +1.4 GiB for the other two.
    assert grown < 96, f"the operator's peak RSS grew by {grown:.0f} MiB"
    for name, task in tasks.items():
        assert task["status"]["outcome"] == "Succeeded", (name, task["status"])
        assert len(base64.b64decode(task["status"]["response"]["body"])) <= 262144, name
    # Two layers are not decoded: the 980 bytes are kept as they came, and the coding said.
    double = tasks["gzip-gzip"]["status"]
    assert base64.b64decode(double["response"]["body"]) == hostile.zeros_gzipped_twice()
    assert double["response"]["contentEncoding"] == "gzip, gzip"
    assert "kept as received" in double["message"]
    # One layer is decoded, and cut at maxBodyBytes.
    assert tasks["bomb"]["status"]["response"]["truncated"] is True
    assert tasks["bomb-inner"]["status"]["response"]["truncated"] is True
    assert hostile_site.stats()["hits"] == {"/gzip-gzip": 1, "/bomb": 1, "/bomb-inner": 1}


@pytest.mark.parametrize(
    ("path", "keep"),
    [
        ("reason", []),  # an 8,000-character reason phrase
        ("headers", [f"x-long-{n}" for n in range(32)]),  # long header lines, kept
        ("controls", []),  # 256 KiB of control characters: 1.5 MiB once JSON-escaped
        ("brackets", []),  # 512 KiB of "<": 3 MiB once JSON-escaped
    ],
)
def test_answers_too_large_to_store_as_sent_are_stored_within_bounds_and_asked_once(
    api_client: client.ApiClient,
    namespace: str,
    searches: Searches,
    hostile_site: DemoSite,
    path: str,
    keep: list[str],
) -> None:
    create_task(
        api_client,
        namespace,
        f"big-{path}",
        {
            "request": {"url": f"{hostile_site.base}/{path}?key={namespace}-{path}"},
            "retry": {"maxAttempts": 1},
            "response": {"maxBodyBytes": 524288, "keepHeaders": keep},
        },
    )
    task = wait_task(api_client, namespace, f"big-{path}")
    status = task["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert violations(status, status_schema("httptasks.yaml")) == []
    assert go_json_size(status) <= STATUS_BUDGET
    assert hostile_site.stats()["hits"][f"{namespace}-{path}"] == 1, "asked more than once"


def test_a_retry_after_that_only_looks_like_a_number_is_ignored_not_fatal(
    api_client: client.ApiClient, namespace: str, searches: Searches, hostile_site: DemoSite
) -> None:
    create_task(
        api_client,
        namespace,
        "odd-retry-after",
        {
            "request": {"url": f"{hostile_site.base}/retry-after?key={namespace}-ra"},
            "retry": {"maxAttempts": 2, "initialIntervalSeconds": 0.2},
        },
    )
    task = wait_task(api_client, namespace, "odd-retry-after")
    assert (task["status"]["outcome"], task["status"]["attempts"]) == ("Succeeded", 2)


@pytest.mark.parametrize("pool", ["guarded", "allow-host"])
def test_no_cookie_set_for_one_task_comes_back_on_another(
    pool: str,
    request: pytest.FixtureRequest,
    api_client: client.ApiClient,
    hostile_site: DemoSite,
) -> None:
    # By a host name, not 127.0.0.1: aiohttp's default jar ignores cookies from IP addresses,
    # so only a name shows that neither aiohttp's jar nor httpx's keeps the site's cookie.
    # Through the guarded pool (the session's operator opens 127.0.0.0/8) and through the
    # open one an operator's --allow-host gives the name.
    if pool == "guarded":
        namespace: str = request.getfixturevalue("searches").namespace
    else:
        namespace = request.getfixturevalue("isolated_namespace")
        request.getfixturevalue("start_operator")(namespace, "--allow-host=localhost")
    base = f"http://localhost:{hostile_site.port}"
    create_task(
        api_client,
        namespace,
        "tenant-a",
        {"request": {"url": f"{base}/set-cookie?tenant=a&key={namespace}-a"}},
    )
    assert wait_task(api_client, namespace, "tenant-a")["status"]["outcome"] == "Succeeded"
    create_task(
        api_client,
        namespace,
        "tenant-b",
        {"request": {"url": f"{base}/echo?key={namespace}-b"}},
    )
    assert wait_task(api_client, namespace, "tenant-b")["status"]["outcome"] == "Succeeded"
    assert "cookie" not in hostile_site.stats()["headers"][f"{namespace}-b"][0]


# -- requests the client refuses: an outcome, never a crash loop ----------------------------


def test_requests_the_http_client_refuses_end_invalid_once_without_restarts(
    api_client: client.ApiClient,
    isolated_namespace: str,
    hostile_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    operator = start_operator(isolated_namespace, "--allow-cidr=127.0.0.0/8")
    secret(
        api_client,
        isolated_namespace,
        "odd",
        {"latin1": "café".encode("latin-1"), "newline": b"a\r\nInjected: yes"},
    )
    url = f"{hostile_site.base}/echo?key={isolated_namespace}"
    specs = {
        # Passes the schema (a URL, a host name), but no IDNA codec accepts it.
        "bad-idna": {"request": {"url": "http://xn--a.example/?q=1"}},
        "not-utf8": {
            "request": {
                "url": url,
                "headers": [
                    {
                        "name": "X-Key",
                        "valueFrom": {"secretKeyRef": {"name": "odd", "key": "latin1"}},
                    }
                ],
            }
        },
        "crlf": {
            "request": {
                "url": url,
                "headers": [
                    {
                        "name": "X-Key",
                        "valueFrom": {"secretKeyRef": {"name": "odd", "key": "newline"}},
                    }
                ],
            }
        },
        "missing": {
            "request": {
                "url": url,
                "headers": [
                    {"name": "X-Key", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}
                ],
            }
        },
    }
    for name, spec in specs.items():
        create_task(api_client, isolated_namespace, name, spec)
    for name in specs:
        status = wait_task(api_client, isolated_namespace, name)["status"]
        assert (status["phase"], status["outcome"], status["attempts"]) == ("Failed", "Invalid", 1)
        assert status["conditions"][0]["reason"] == "InvalidRequest", (name, status["message"])
    log = operator.log.read_text()
    assert "failed; retrying" not in log, "a worker was restarted"
    assert "café" not in log and "Injected" not in log
    assert isolated_namespace not in hostile_site.stats()["hits"], "a refused request was sent"


def test_the_schema_refuses_urls_and_header_values_no_client_can_send(
    api_client: client.ApiClient, namespace: str
) -> None:
    bad = {
        "two-ports": {"request": {"url": "http://127.0.0.1:80:80/"}},
        "port-range": {"request": {"url": "http://example.org:99999/"}},
        "userinfo": {"request": {"url": "http://user:pw@example.org/"}},
        "non-ascii": {
            "request": {"url": "http://a.example/", "headers": [{"name": "X", "value": "café"}]}
        },
        "crlf": {
            "request": {
                "url": "http://a.example/",
                "headers": [{"name": "X", "value": "a\r\nB: c"}],
            }
        },
    }
    for name, spec in bad.items():
        with pytest.raises(client.ApiException) as refused:
            create_task(api_client, namespace, name, spec)
        assert refused.value.status == 422, name


# -- children that are the Search's own ------------------------------------------------------


def test_searches_whose_names_and_providers_concatenate_alike_keep_their_own_children(
    api_client: client.ApiClient, namespace: str, searches: Searches, hostile_site: DemoSite
) -> None:
    url = f"{hostile_site.base}/echo?key={namespace}-{{query}}"
    first = searches.create({"query": "one", "providers": [{"name": "b-c", "url": url}]}, name="a")
    second = searches.create({"query": "two", "providers": [{"name": "c", "url": url}]}, name="a-b")
    for name in (first, second):
        assert searches.wait(name)["status"]["results"][0]["outcome"] == "Succeeded"
    hits = hostile_site.stats()["hits"]
    assert (hits[f"{namespace}-one"], hits[f"{namespace}-two"]) == (1, 1)
    names = {
        searches.children(n)[p]["metadata"]["name"] for n, p in ((first, "b-c"), (second, "c"))
    }
    assert len(names) == 2


def test_an_object_already_under_a_childs_name_is_not_adopted(
    api_client: client.ApiClient,
    isolated_namespace: str,
    hostile_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    searches = Searches(api_client, isolated_namespace)
    name = searches.create(
        {
            "query": "squat",
            "providers": [{"name": "p", "url": f"{hostile_site.base}/echo?q={{query}}&key=squat"}],
        }
    )
    uid = searches.get(name)["metadata"]["uid"]
    # A tenant creates the child's name first, with a status of its own choosing to fold in.
    squatted = child_name(name, "p", uid)
    create_task(
        api_client,
        isolated_namespace,
        squatted,
        {"request": {"url": f"{hostile_site.base}/echo?key=squatter"}, "deadlineSeconds": 600},
    )
    start_operator(isolated_namespace, "--allow-cidr=127.0.0.0/8")
    result = searches.result(searches.wait(name), "p")
    assert result["outcome"] == "Invalid"
    assert "NameConflict" in result["message"]
    squatter = wait_task(api_client, isolated_namespace, squatted)
    assert squatter["spec"].get("terminate") is not True, "the Search terminated a foreign task"
    assert "squat" not in hostile_site.stats()["hits"]


# -- credentials go where they were meant to, and are never stored ---------------------------


def test_literal_credentials_never_follow_a_redirect_to_another_origin(
    api_client: client.ApiClient,
    namespace: str,
    searches: Searches,
    hostile_site: DemoSite,
    elsewhere: DemoSite,
) -> None:
    onward = f"{elsewhere.base}/echo?key=onward"
    create_task(
        api_client,
        namespace,
        "literal-credentials",
        {
            "request": {
                "url": f"{hostile_site.base}/redirect?key={namespace}-hop"
                f"&to={quote(onward, safe='')}",
                "headers": [
                    {"name": "Authorization", "value": "Bearer literal-token"},
                    {"name": "Cookie", "value": "session=literal"},
                    {"name": "Proxy-Authorization", "value": "Basic bGl0ZXJhbA=="},
                    {"name": "Accept", "value": "application/json"},
                ],
            }
        },
    )
    assert (
        wait_task(api_client, namespace, "literal-credentials")["status"]["outcome"] == "Succeeded"
    )
    assert hostile_site.stats()["headers"][f"{namespace}-hop"][0]["authorization"]
    arrived = elsewhere.stats()["headers"]["onward"][0]
    assert {"authorization", "cookie", "proxy-authorization"}.isdisjoint(arrived)
    assert arrived["accept"] == "application/json"


def test_a_secret_a_site_echoes_back_is_redacted_from_status_and_the_result_routes(
    api_client: client.ApiClient,
    namespace: str,
    searches: Searches,
    hostile_site: DemoSite,
    kubectl: Any,
    kubeconfig: Path,
    tmp_path: Path,
) -> None:
    secret(api_client, namespace, "keyed", {"key": SECRET_VALUE.encode()})
    web = WebProcess(kubeconfig, tmp_path / "web.log", namespace).start()
    try:
        name = searches.create(
            {
                "query": "echo",
                "providers": [
                    {
                        "name": "echo",
                        "url": f"{hostile_site.base}/echo?q={{query}}&key={namespace}-echo",
                        "headers": [
                            {
                                "name": "X-Api-Key",
                                "valueFrom": {"secretKeyRef": {"name": "keyed", "key": "key"}},
                            }
                        ],
                        "response": {"keepHeaders": ["x-echo", "content-type"]},
                    }
                ],
            }
        )
        body = searches.wait(name)
        assert searches.result(body, "echo")["outcome"] == "Succeeded"
        assert hostile_site.stats()["headers"][f"{namespace}-echo"][0]["x-api-key"] == SECRET_VALUE
        child = searches.children(name)["echo"]
        page = text_body(child["status"]) or ""
        assert "[redacted]" in page and SECRET_VALUE not in page
        everything = kubectl("get", "searches,httptasks,events", "-n", namespace, "-o", "json")
        assert SECRET_VALUE not in everything
        assert SECRET_VALUE not in json.dumps(child)
        for route in (f"/api/searches/{name}/result", f"/api/searches/{name}/results/echo"):
            with urllib.request.urlopen(f"{web.base}{route}", timeout=10) as answer:
                served = answer.read().decode()
            assert "[redacted]" in served and SECRET_VALUE not in served, route
    finally:
        web.stop()


# -- the watcher's trusted path ------------------------------------------------------------


def test_only_a_searchs_own_watcher_reaches_the_web_service_past_the_guard(
    api_client: client.ApiClient,
    isolated_namespace: str,
    kubeconfig: Path,
    tmp_path: Path,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    """The web service sits on 127.0.0.1, which the guard refuses; providers live on 127.0.0.3."""
    site = DemoSite(host="127.0.0.3", app=hostile.create_app).start()
    web = WebProcess(kubeconfig, tmp_path / "web.log", isolated_namespace).start()
    try:
        start_operator(
            isolated_namespace, "--allow-cidr=127.0.0.3/32", f"--watcher-base-url={web.base}"
        )
        start_search = quote(f"{web.base}/api/StartSearch?q=pwned", safe="")
        provider = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SearchProvider",
            "metadata": {"name": "redir"},
            "spec": {"url": f"{site.base}/redirect?q={{query}}&key=redir&to={start_search}"},
        }
        custom(api_client).create_namespaced_custom_object(
            GROUP, VERSION, isolated_namespace, "searchproviders", provider
        )
        request = urllib.request.Request(
            f"{web.base}/api/searches",
            data=json.dumps({"query": "q", "providers": ["redir"]}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            started = json.load(answer)["id"]
        searches = Searches(api_client, isolated_namespace)
        result = searches.result(searches.wait(started), "redir")
        assert result["outcome"] == "Blocked", result
        assert site.stats()["hits"]["redir"] == 1

        def watcher_finished() -> bool:
            with urllib.request.urlopen(f"{web.base}/api/searches/{started}/watcher") as answer:
                watcher = json.load(answer)
            return bool(watcher["phase"] == "Succeeded" and watcher["statusCode"] == 200)

        eventually(watcher_finished, timeout=60, message="the watcher rode the long-poll to 200")
        # A task that merely points at the status route is not a watcher: it is guarded.
        create_task(
            api_client,
            isolated_namespace,
            "impostor",
            {"request": {"url": f"{web.base}/api/searches/{started}"}},
        )
        assert wait_task(api_client, isolated_namespace, "impostor")["status"]["outcome"] == (
            "Blocked"
        )
        listed = custom(api_client).list_namespaced_custom_object(
            GROUP, VERSION, isolated_namespace, "searches"
        )
        assert [s["spec"]["query"] for s in listed["items"]] == ["q"], "StartSearch was reached"
    finally:
        web.stop()
        site.stop()


# -- the operator's own guard ----------------------------------------------------------------


def test_without_the_admission_policies_no_secret_is_read_and_no_token_minted(
    api_client: client.ApiClient,
    isolated_namespace: str,
    hostile_site: DemoSite,
    kubectl: Any,
    admission: Any,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    secret(api_client, isolated_namespace, "keyed", {"key": SECRET_VALUE.encode()})
    kubectl("delete", "validatingadmissionpolicybinding", "durable-search-httptasks")
    try:
        # The binding is gone: an admin's task naming a Secret is admitted, and must be withheld.
        start_operator(isolated_namespace, "--allow-cidr=127.0.0.0/8")
        header = {"name": "X-Key", "valueFrom": {"secretKeyRef": {"name": "keyed", "key": "key"}}}
        create_task(
            api_client,
            isolated_namespace,
            "unguarded",
            {
                "request": {
                    "url": f"{hostile_site.base}/echo?key={isolated_namespace}",
                    "headers": [header],
                }
            },
        )
        status = wait_task(api_client, isolated_namespace, "unguarded")["status"]
        assert (status["outcome"], status["attempts"]) == ("Blocked", 1)
        assert "admission policies not installed" in status["message"]
        assert isolated_namespace not in hostile_site.stats()["hits"]
    finally:
        admission.install()


def test_no_token_is_minted_for_the_api_servers_own_audience(
    api_client: client.ApiClient,
    isolated_namespace: str,
    hostile_site: DemoSite,
    admission: Any,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    client.CoreV1Api(api_client).create_namespaced_service_account(
        isolated_namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="caller"))
    )
    start_operator(isolated_namespace, "--allow-cidr=127.0.0.0/8")
    # The admin is an operator user, so admission lets it ask; the operator still refuses.
    create_task(
        api_client,
        isolated_namespace,
        "api-audience",
        {
            "request": {
                "url": f"{hostile_site.base}/echo?key={isolated_namespace}",
                "auth": {
                    "serviceAccountToken": {
                        "serviceAccountName": "caller",
                        "audience": admission.api_audience,
                    }
                },
            }
        },
    )
    status = wait_task(api_client, isolated_namespace, "api-audience")["status"]
    assert status["outcome"] == "Blocked" and "never minted" in status["message"]
    assert isolated_namespace not in hostile_site.stats()["hits"]


def test_a_child_the_api_server_refuses_to_create_is_an_outcome_not_a_loop(
    api_client: client.ApiClient,
    isolated_namespace: str,
    hostile_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    client.CoreV1Api(api_client).create_namespaced_resource_quota(
        isolated_namespace,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="tight"),
            spec=client.V1ResourceQuotaSpec(hard={"count/httptasks.durablesearch.dev": "1"}),
        ),
    )
    time.sleep(2)  # the quota controller fills in its usage
    start_operator(isolated_namespace, "--allow-cidr=127.0.0.0/8")
    searches = Searches(api_client, isolated_namespace)
    url = f"{hostile_site.base}/echo?key={isolated_namespace}-{{query}}"
    name = searches.create(
        {"query": "q", "providers": [{"name": "a", "url": url}, {"name": "b", "url": url}]}
    )
    body = searches.wait(name)
    assert body["status"]["phase"] == "Completed"
    outcomes = sorted(r["outcome"] for r in body["status"]["results"])
    assert outcomes == ["Invalid", "Succeeded"]
    refused = next(r for r in body["status"]["results"] if r["outcome"] == "Invalid")
    assert "exceeded quota" in refused["message"]
