"""CEL on real answers: successCondition, outputs, completeWhen and locationHeaders, checks first.

The real API server and operator, a loopback JSON site (``tests.support.json_site``), and the
web service for what a Search shows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client

from tests.support.demo import DemoSite
from tests.support.fixtures import Kubectl
from tests.support.json_site import create_app
from tests.support.processes import OperatorProcess, WebProcess
from tests.support.searches import Searches, create_provider
from tests.support.tasks import create_task, wait_task

FAST_POLLS = {"minPollIntervalSeconds": 0.1, "maxPollIntervalSeconds": 1}


@pytest.fixture(scope="module")
def json_site() -> Iterator[DemoSite]:
    site = DemoSite(app=create_app).start()
    try:
        yield site
    finally:
        site.stop()


def key() -> str:
    return uuid.uuid4().hex[:10]


def task(
    api_client: client.ApiClient, namespace: str, spec: dict[str, Any], timeout: float = 60
) -> dict[str, Any]:
    name = f"t-{key()}"
    create_task(api_client, namespace, name, {"deadlineSeconds": 60, **spec})
    return wait_task(api_client, namespace, name, timeout)


def reason(status: dict[str, Any]) -> str:
    return str(next(c for c in status["conditions"] if c["type"] == "Succeeded")["reason"])


def test_a_search_judges_each_provider_by_its_condition_and_carries_its_outputs(
    api_client: client.ApiClient,
    web_namespace: str,
    web: WebProcess,
    json_site: DemoSite,
) -> None:
    ns = web_namespace
    searches = Searches(api_client, ns)
    counted = create_provider(
        api_client,
        ns,
        "counted",
        f"{json_site.base}/search?q={{query}}&key=counted-{key()}&hits=3",
        successCondition="response.json.hits > 0",
        outputs=[
            {"name": "hits", "expression": "response.json.hits"},
            {"name": "first", "expression": "response.json.items[0].title"},
            {"name": "ids", "expression": "response.json.items.map(i, i.id)"},
        ],
    )
    inline_empty = {
        "name": "empty",
        "url": f"{json_site.base}/search?q={{query}}&key=empty-{key()}&hits=0",
        "successCondition": "response.json.hits > 0",
        "outputs": [{"name": "hits", "expression": "response.json.hits"}],
    }
    # Both ways in: a SearchProvider's fields as defaults, and an inline provider's.
    name = searches.create({"query": "café", "providerRefs": [counted]})
    other = searches.create({"query": "café", "providers": [inline_empty]})
    body = searches.wait(name)
    found = searches.result(body, "counted")
    assert found["outcome"] == "Succeeded", found
    assert found["outputs"] == {"hits": "3", "first": "result 0 for café", "ids": "[0,1,2]"}
    child = searches.children(name)["counted"]
    assert child["status"]["outputs"] == found["outputs"]
    assert child["spec"]["successCondition"] == "response.json.hits > 0"

    body = searches.wait(other)
    empty = searches.result(body, "empty")
    assert empty["outcome"] == "ConditionNotMet", empty
    assert empty["statusCode"] == 200
    assert empty["outputs"] == {"hits": "0"}
    assert "successCondition is false" in empty["message"]
    child = searches.children(other)["empty"]
    assert (child["status"]["phase"], child["status"]["attempts"]) == ("Succeeded", 1)
    assert reason(child["status"]) == "ConditionNotMet"
    assert body["status"]["phase"] == "Completed"

    with httpx.Client(base_url=web.base, trust_env=False, timeout=30) as http:
        status = http.get(f"/api/searches/{name}").json()
        (result,) = status["output"]["results"]
        assert result["outputs"] == found["outputs"]
        status = http.get(f"/api/searches/{other}").json()
        assert status["output"]["results"][0]["outputs"] == {"hits": "0"}
        page = http.get(f"/api/searches/{other}/result")
        assert page.status_code == 200
        assert page.text == "<h1>No Results</h1>"
        page = http.get(f"/api/searches/{other}/results/empty")
        assert page.text == "<h1>No Results</h1>"
        page = http.get(f"/api/searches/{name}/result")
        assert '"hits": 3' in page.text


def test_an_expression_that_does_not_compile_ends_invalid_before_any_request(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    json_site: DemoSite,
) -> None:
    k = f"invalid-{key()}"
    done = task(
        api_client,
        namespace,
        {
            "request": {"url": f"{json_site.base}/search?key={k}&hits=1"},
            "successCondition": "response.json.hits > 0",
            "outputs": [{"name": "bad", "expression": "response.json.hits +"}],
        },
    )
    status = done["status"]
    assert (status["phase"], status["outcome"]) == ("Failed", "Invalid")
    assert reason(status) == "InvalidExpression"
    assert "spec.outputs[bad]" in status["message"]
    assert "Syntax error" in status["message"]
    assert json_site.stats().get(k, 0) == 0  # nothing was sent
    assert "attemptLog" not in status


def test_the_schema_refuses_expressions_past_1024_characters_and_bad_output_names(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    base = {"request": {"url": "http://127.0.0.1:9/"}}
    for spec in (
        {**base, "successCondition": "true && " * 200 + "true"},
        {**base, "outputs": [{"name": "1st", "expression": "1"}]},
        {**base, "outputs": [{"name": f"o{i}", "expression": "1"} for i in range(17)]},
    ):
        with pytest.raises(client.ApiException) as refused:
            create_task(api_client, namespace, f"t-{key()}", spec)
        assert refused.value.status == 422


def test_an_evaluation_error_makes_the_condition_false_with_the_error_in_the_message(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    json_site: DemoSite,
) -> None:
    done = task(
        api_client,
        namespace,
        {
            "request": {"url": f"{json_site.base}/search?key=eval-{key()}&hits=2"},
            "successCondition": "response.json.total > 0",
        },
    )
    status = done["status"]
    assert (status["phase"], status["outcome"]) == ("Succeeded", "ConditionNotMet")
    assert "successCondition could not be evaluated" in status["message"]
    assert "total" in status["message"]
    assert status["attempts"] == 1  # not retried


def test_a_202_with_operation_location_is_polled_until_complete_when_holds(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    json_site: DemoSite,
) -> None:
    k = f"op-{key()}"
    done = task(
        api_client,
        namespace,
        {
            "request": {"method": "POST", "url": f"{json_site.base}/start?key={k}&running=1"},
            "async": {
                **FAST_POLLS,
                "locationHeaders": ["Azure-AsyncOperation", "Operation-Location", "Location"],
                "completeWhen": "response.json.status == 'succeeded'",
            },
            "outputs": [{"name": "resource", "expression": "response.json.resourceId"}],
        },
    )
    status = done["status"]
    assert (status["phase"], status["outcome"]) == ("Succeeded", "Succeeded"), status
    assert status["pollCount"] == 2  # 200 running, then 200 succeeded
    assert status["location"] == f"{json_site.base}/operations/{k}?running=1"
    assert status["outputs"] == {"resource": f"res-operations/{k}"}
    stats = json_site.stats()
    assert (stats[k], stats[f"operations/{k}"]) == (1, 2)
    codes = [entry.get("statusCode") for entry in status["attemptLog"]]
    assert codes == [202, 200, 200]


def test_a_200_with_status_monitor_is_polled_on_the_request_url_itself(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    json_site: DemoSite,
) -> None:
    k = f"mon-{key()}"
    url = f"{json_site.base}/monitor?key={k}&running=2"
    done = task(
        api_client,
        namespace,
        {
            "request": {"url": url},
            "async": {**FAST_POLLS, "completeWhen": "response.json.status != 'running'"},
            "successCondition": "response.json.status == 'succeeded'",
        },
    )
    status = done["status"]
    assert (status["phase"], status["outcome"]) == ("Succeeded", "Succeeded"), status
    assert (status["pollCount"], status["location"]) == (2, url)
    assert json_site.stats()[k] == 3


def test_a_start_naming_a_provider_whose_expression_does_not_compile_is_a_400(
    api_client: client.ApiClient, web_namespace: str, web: WebProcess, json_site: DemoSite
) -> None:
    broken = create_provider(
        api_client,
        web_namespace,
        f"broken-{key()}",
        f"{json_site.base}/search?q={{query}}&key=broken",
        successCondition="response.json.hits >",
    )
    with httpx.Client(base_url=web.base, trust_env=False, timeout=30) as http:
        answer = http.post("/api/searches", json={"query": "x", "providers": [broken]})
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    detail = answer.json()["detail"]
    assert "InvalidExpression" in detail and "spec.successCondition" in detail


def test_kubectl_explain_documents_the_cel_fields(kubectl: Kubectl, crds: None) -> None:
    condition = kubectl("explain", "httptask.spec.successCondition")
    assert "ConditionNotMet" in condition and "response.json" in condition
    assert "Operation-Location" in kubectl("explain", "httptask.spec.async.locationHeaders")
    assert "still running" in kubectl("explain", "searchprovider.spec.async.completeWhen")
    assert "status.outputs" in kubectl("explain", "search.spec.providers.outputs")
    assert "4 KiB" in kubectl("explain", "httptask.spec.outputs.expression")


def test_an_expression_that_would_run_for_hours_is_refused_not_run(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    json_site: DemoSite,
) -> None:
    hostile = "response.json.items.all(i, (response.body + response.body).contains(response.body))"
    done = task(
        api_client,
        namespace,
        {
            "request": {"url": f"{json_site.base}/search?key=cost-{key()}&hits=2000"},
            "successCondition": hostile,
            "outputs": [{"name": "hits", "expression": "response.json.hits"}],
        },
        timeout=30,
    )
    status = done["status"]
    assert (status["phase"], status["outcome"]) == ("Succeeded", "ConditionNotMet")
    assert "cost too much" in status["message"]
    assert status["outputs"] == {"hits": "2000"}  # the rest of the budget still served
    assert operator.alive()
