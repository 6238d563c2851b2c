"""Durability: kill -9 and restart, resourceVersion conflicts, cancellation on delete.

Each test runs its own operator on an isolated namespace, so killing it disturbs nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from kubernetes import client

from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, VERSION
from tests.support.demo import DemoSite
from tests.support.processes import OperatorProcess
from tests.support.searches import Searches
from tests.support.waiting import eventually

LOOPBACK = "--allow-cidr=127.0.0.0/8"


def child_status(searches: Searches, name: str, provider: str) -> dict[str, object]:
    children = searches.children(name)
    return dict(children[provider].get("status") or {}) if provider in children else {}


def test_kill_while_polling_resumes_the_polls_without_resending_the_first_request(
    api_client: client.ApiClient,
    isolated_namespace: str,
    demo_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    searches = Searches(api_client, isolated_namespace)
    operator = start_operator(isolated_namespace, LOOPBACK)
    name = searches.create(
        {
            "query": "durable",
            "providers": [
                {"name": "job", "url": demo_site.url("kill-poll", **{"async": 4, "retryafter": 1})}
            ],
        }
    )
    eventually(
        lambda: child_status(searches, name, "job").get("pollCount") == 2,
        message="polling has begun",
    )
    operator.kill()
    status = child_status(searches, name, "job")
    assert status["phase"] == "Polling"
    assert status["location"]
    assert status["nextPollTime"]

    start_operator(isolated_namespace, LOOPBACK)
    body = searches.wait(name, timeout=30)
    assert body["status"]["phase"] == "Completed"
    assert searches.result(body, "job")["outcome"] == "Succeeded"
    stats = demo_site.stats()
    assert stats["hits"]["kill-poll"] == 1, "the first request is never sent again"
    assert stats["polls"]["kill-poll"] in (4, 5), "polling resumed (at most one poll repeated)"


def test_kill_while_a_retry_waits_resumes_at_the_recorded_time(
    api_client: client.ApiClient,
    isolated_namespace: str,
    demo_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    searches = Searches(api_client, isolated_namespace)
    operator = start_operator(isolated_namespace, LOOPBACK)
    name = searches.create(
        {
            "query": "retry",
            "providers": [
                {"name": "flaky", "url": demo_site.url("kill-retry", fail=1, retryafter=3)}
            ],
        }
    )
    eventually(
        lambda: child_status(searches, name, "flaky").get("attempts") == 2,
        message="attempt 2 is claimed",
    )
    operator.kill()
    status = child_status(searches, name, "flaky")
    assert status["phase"] == "Running"
    assert status["nextAttemptTime"]

    start_operator(isolated_namespace, LOOPBACK)
    body = searches.wait(name, timeout=30)
    result = searches.result(body, "flaky")
    assert (result["outcome"], result["attempts"]) == ("Succeeded", 2)
    log = searches.children(name)["flaky"]["status"]["attemptLog"]
    assert [e["statusCode"] for e in log] == [503, 200]
    assert demo_site.stats()["hits"]["kill-retry"] == 2, "attempt 1 was not sent again"


def test_a_conflict_on_the_record_rereads_and_records_once(
    api_client: client.ApiClient,
    isolated_namespace: str,
    demo_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    searches = Searches(api_client, isolated_namespace)
    operator = start_operator(isolated_namespace, LOOPBACK)
    name = searches.create(
        {
            "query": "conflict",
            "providers": [{"name": "slow", "url": demo_site.url("conflict-1", delay=1.5)}],
        }
    )
    eventually(lambda: demo_site.stats()["hits"].get("conflict-1") == 1, message="request sent")
    # Change the object while its request is in flight: the operator's resourceVersion is stale.
    task_name = searches.children(name)["slow"]["metadata"]["name"]
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        isolated_namespace,
        HTTPTASK_PLURAL,
        task_name,
        {"metadata": {"labels": {"touched": "yes"}}},
    )
    body = searches.wait(name, timeout=30)
    result = searches.result(body, "slow")
    assert (result["outcome"], result["attempts"]) == ("Succeeded", 1)
    assert demo_site.stats()["hits"]["conflict-1"] == 1
    assert f"{task_name}: 409 recording Attempt 1; re-reading" in operator.log.read_text()


def test_deleting_a_search_cancels_its_request_in_flight(
    api_client: client.ApiClient,
    isolated_namespace: str,
    demo_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    searches = Searches(api_client, isolated_namespace)
    start_operator(isolated_namespace, LOOPBACK)
    name = searches.create(
        {
            "query": "doomed",
            "providers": [{"name": "hang", "url": demo_site.url("delete-hang", hang=1)}],
        }
    )
    eventually(lambda: demo_site.stats()["hits"].get("delete-hang") == 1, message="request sent")
    searches.custom.delete_namespaced_custom_object(
        GROUP, VERSION, isolated_namespace, "searches", name
    )
    eventually(
        lambda: demo_site.stats()["closed"].get("delete-hang") == 1,
        message="the server saw the connection close",
    )
