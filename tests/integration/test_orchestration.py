"""Search orchestration end to end: the real API server, the operator process, local sites."""

from __future__ import annotations

import itertools
import subprocess
import time

from kubernetes import client

from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, VERSION
from durable_search.api.timestamps import parse_time
from durable_search.engine.page import output_html, text_body
from tests.support.demo import DemoSite
from tests.support.fixtures import Kubectl
from tests.support.processes import free_port
from tests.support.searches import Searches, create_provider
from tests.support.waiting import eventually

FAST_RETRY = {"maxAttempts": 3, "initialIntervalSeconds": 0.2, "backoffCoefficient": 1}


def test_the_samples_scenario_completes_with_no_results_for_the_failures(
    searches: Searches, demo_site: DemoSite
) -> None:
    name = searches.create(
        {
            "query": "durable functions",
            "providers": [
                {"name": "found", "url": demo_site.url("found-1")},
                {"name": "missing", "url": demo_site.url("missing-1", status=404)},
                {
                    "name": "unreachable",
                    "url": f"http://127.0.0.1:{free_port()}/?q={{query}}",
                    "retry": FAST_RETRY,
                },
            ],
        }
    )
    body = searches.wait(name)
    status = body["status"]
    assert status["phase"] == "Completed"
    assert status["progress"] == "3/3"
    assert status["duration"]
    outcomes = {r["name"]: (r["outcome"], r.get("statusCode")) for r in status["results"]}
    assert outcomes == {
        "found": ("Succeeded", 200),
        "missing": ("HttpError", 404),
        "unreachable": ("TransportError", None),
    }
    assert searches.result(body, "unreachable")["attempts"] == 3
    condition = status["conditions"][0]
    assert (condition["type"], condition["status"]) == ("Succeeded", "True")

    children = searches.children(name)
    # No finalizers anywhere: a killed operator can never leave these stuck in deletion.
    assert "finalizers" not in body["metadata"]
    assert all("finalizers" not in child["metadata"] for child in children.values())
    bodies = {c["metadata"]["name"]: text_body(c["status"]) for c in children.values()}
    html = output_html(status["results"], bodies)
    pages = html.split("<hr/>")
    assert len(pages) == 3
    assert "Results for <b>durable functions</b>" in pages[0]
    assert pages[1] == pages[2] == "<h1>No Results</h1>"


def test_202_and_location_are_polled_with_retry_after_until_200(
    searches: Searches, demo_site: DemoSite
) -> None:
    name = searches.create(
        {
            "query": "async",
            "providers": [
                {"name": "news", "url": demo_site.url("async-1", **{"async": 3, "retryafter": 1})}
            ],
        }
    )
    body = searches.wait(name)
    assert searches.result(body, "news")["outcome"] == "Succeeded"
    task = searches.children(name)["news"]["status"]
    assert task["attempts"] == 1
    assert task["pollCount"] == 3
    log = task["attemptLog"]
    assert [entry.get("statusCode") for entry in log] == [202, 202, 202, 200]
    gaps = [
        (parse_time(b["startTime"]) - parse_time(a["startTime"])).total_seconds()  # type: ignore[operator]
        for a, b in itertools.pairwise(log)
    ]
    assert all(gap >= 0.9 for gap in gaps), gaps  # Retry-After: 1 was honoured
    stats = demo_site.stats()
    assert stats["hits"]["async-1"] == 1  # the first request was sent once
    assert stats["polls"]["async-1"] == 3


def test_503_with_retry_after_then_200(searches: Searches, demo_site: DemoSite) -> None:
    name = searches.create(
        {
            "query": "flaky",
            "providers": [{"name": "flaky", "url": demo_site.url("flaky-1", fail=1, retryafter=1)}],
        }
    )
    result = searches.result(searches.wait(name), "flaky")
    assert (result["outcome"], result["statusCode"], result["attempts"]) == ("Succeeded", 200, 2)
    log = searches.children(name)["flaky"]["status"]["attemptLog"]
    assert [e["statusCode"] for e in log] == [503, 200]
    gap = parse_time(log[1]["startTime"]) - parse_time(log[0]["startTime"])  # type: ignore[operator]
    assert gap.total_seconds() >= 0.9


def test_500s_exhaust_the_retries(searches: Searches, demo_site: DemoSite) -> None:
    name = searches.create(
        {
            "query": "broken",
            "providers": [
                {
                    "name": "broken",
                    "url": demo_site.url("broken-1", status=500),
                    "retry": FAST_RETRY,
                }
            ],
        }
    )
    result = searches.result(searches.wait(name), "broken")
    assert (result["outcome"], result["statusCode"], result["attempts"]) == ("HttpError", 500, 3)
    assert demo_site.stats()["hits"]["broken-1"] == 3


def test_a_slow_provider_hits_the_deadline_and_the_search_still_completes(
    searches: Searches, demo_site: DemoSite
) -> None:
    started = time.monotonic()
    name = searches.create(
        {
            "query": "slow",
            "deadlineSeconds": 2,
            "providers": [
                {"name": "slow", "url": demo_site.url("slow-1", delay=30)},
                {"name": "fast", "url": demo_site.url("fast-1")},
            ],
        }
    )
    body = searches.wait(name, timeout=20)
    assert time.monotonic() - started < 10
    assert body["status"]["phase"] == "Completed"
    assert searches.result(body, "slow")["outcome"] == "TimedOut"
    assert searches.result(body, "fast")["outcome"] == "Succeeded"


def test_a_query_with_reserved_and_non_ascii_characters_arrives_intact(
    searches: Searches, demo_site: DemoSite
) -> None:
    query = "café & crème #1 = 100% ünïcödé/日本?"
    name = searches.create(
        {"query": query, "providers": [{"name": "echo", "url": demo_site.url("encode-1")}]}
    )
    searches.wait(name)
    assert demo_site.stats()["queries"]["encode-1"] == [query]


def test_provider_refs_and_all_providers_of_the_namespace(
    searches: Searches, demo_site: DemoSite, api_client: client.ApiClient, namespace: str
) -> None:
    for provider in ("alpha", "beta"):
        create_provider(api_client, namespace, provider, demo_site.url(f"refs-{provider}"))
    by_ref = searches.wait(searches.create({"query": "q", "providerRefs": ["beta", "nowhere"]}))
    assert {r["name"]: r["outcome"] for r in by_ref["status"]["results"]} == {
        "beta": "Succeeded",
        "nowhere": "ProviderNotFound",
    }
    everyone = searches.wait(searches.create({"query": "q"}))
    assert [r["name"] for r in everyone["status"]["results"]] == ["alpha", "beta"]
    assert everyone["status"]["phase"] == "Completed"


def test_no_provider_at_all_fails_the_search_with_a_reason(searches: Searches) -> None:
    body = searches.wait(searches.create({"query": "lonely"}))
    assert body["status"]["phase"] == "Failed"
    assert body["status"]["conditions"][0]["reason"] == "NoProviders"


def test_terminate_mid_flight_cancels_the_request(searches: Searches, demo_site: DemoSite) -> None:
    name = searches.create(
        {
            "query": "forever",
            "providers": [
                {"name": "hang", "url": demo_site.url("hang-1", hang=1)},
                {"name": "quick", "url": demo_site.url("quick-1")},
            ],
        }
    )
    eventually(lambda: demo_site.stats()["hits"].get("hang-1") == 1, message="request sent")
    searches.patch_spec(name, {"terminate": True})
    body = searches.wait(name)
    assert body["status"]["phase"] == "Terminated"
    assert searches.result(body, "hang")["outcome"] == "Terminated"
    eventually(
        lambda: demo_site.stats()["closed"].get("hang-1") == 1,
        message="the server saw the connection close",
    )
    eventually(
        lambda: searches.children(name)["hang"].get("status", {}).get("phase") == "Terminated",
        message="the child records Terminated",
    )


def test_deleting_a_search_deletes_its_httptasks(
    searches: Searches, demo_site: DemoSite, api_client: client.ApiClient, namespace: str
) -> None:
    name = searches.create(
        {"query": "bye", "providers": [{"name": "a", "url": demo_site.url("del-1")}]}
    )
    searches.wait(name)
    assert len(searches.children(name)) == 1
    searches.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "searches", name)

    def children_gone() -> bool:
        listed = searches.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, HTTPTASK_PLURAL
        )
        return not listed["items"]

    eventually(children_gone, message="the garbage collector deletes the HttpTasks")


def test_ttl_after_finished_deletes_the_search(searches: Searches, demo_site: DemoSite) -> None:
    name = searches.create(
        {
            "query": "short-lived",
            "ttlSecondsAfterFinished": 1,
            "providers": [{"name": "a", "url": demo_site.url("ttl-1")}],
        }
    )
    searches.wait(name)
    eventually(lambda: searches.gone(name), timeout=15, message="deleted after its TTL")


def test_an_httptask_works_on_its_own(
    searches: Searches, demo_site: DemoSite, api_client: client.ApiClient, namespace: str
) -> None:
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        HTTPTASK_PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "HttpTask",
            "metadata": {"name": "solo"},
            "spec": {
                "request": {
                    "method": "POST",
                    "url": f"{demo_site.base}/search?q=solo&key=solo-1",
                    "body": "hello",
                }
            },
        },
    )

    def finished() -> bool:
        task = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, HTTPTASK_PLURAL, "solo"
        )
        return (task.get("status") or {}).get("phase") == "Succeeded"

    eventually(finished, message="the standalone HttpTask succeeds")
    task = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, HTTPTASK_PLURAL, "solo")
    assert task["status"]["response"]["statusCode"] == 200
    assert "solo" in (text_body(task["status"]) or "")  # markup may be stored as base64


def test_kubectl_get_searches_shows_the_columns(
    searches: Searches, demo_site: DemoSite, kubectl: Kubectl, namespace: str
) -> None:
    name = searches.create(
        {"query": "columns", "providers": [{"name": "a", "url": demo_site.url("col-1")}]}
    )
    searches.wait(name)
    table = kubectl("get", "searches", "-n", namespace).splitlines()
    assert table[0].split() == ["NAME", "QUERY", "PHASE", "PROGRESS", "AGE", "DURATION"]
    row = table[1].split()
    assert row[0] == name and row[1] == "columns" and row[2] == "Completed" and row[3] == "1/1"

    # `kubectl get searches -w` prints the header and the rows, then follows changes.
    watcher = subprocess.Popen(
        ["kubectl", f"--kubeconfig={kubectl.kubeconfig}", "get", "srch", "-n", namespace, "-w"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        header = watcher.stdout.readline().split()
        assert header == ["NAME", "QUERY", "PHASE", "PROGRESS", "AGE", "DURATION"]
        assert watcher.stdout.readline().split()[:4] == [name, "columns", "Completed", "1/1"]
    finally:
        watcher.terminate()
        watcher.wait(5)
