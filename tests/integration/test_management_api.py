"""The management routes on the real stack: PUT (idempotent start), waitForCompletionSeconds,
rerun, purge by filter, terminate with a reason, and the timeline the page draws."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client

from durable_search.api.constants import (
    GROUP,
    HTTPTASK_PLURAL,
    PROVIDER_PLURAL,
    SEARCH_PLURAL,
    VERSION,
)
from tests.support.demo import DemoSite
from tests.support.fixtures import Kubectl
from tests.support.kubeconfigs import token_for
from tests.support.processes import WebProcess
from tests.support.searches import create_provider

PROBLEM = "application/problem+json"
INPUT = "durablesearch.dev/input"
RERUN_OF = "durablesearch.dev/rerun-of"


@pytest.fixture
def http(web: WebProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web.base, trust_env=False, timeout=70) as session:
        yield session


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def provider_factory(
    api_client: client.ApiClient, web_namespace: str, custom: client.CustomObjectsApi
) -> Iterator[Any]:
    made: list[str] = []

    def make(url: str) -> str:
        made.append(create_provider(api_client, web_namespace, f"m-{uuid.uuid4().hex[:8]}", url))
        return made[-1]

    yield make
    for name in made:
        custom.delete_namespaced_custom_object(GROUP, VERSION, web_namespace, PROVIDER_PLURAL, name)


@pytest.fixture
def fast(provider_factory: Any, demo_site: DemoSite) -> str:
    return str(provider_factory(demo_site.url("m-fast")))


@pytest.fixture
def stuck(provider_factory: Any, demo_site: DemoSite) -> str:
    return str(provider_factory(demo_site.url("m-stuck", hang=1)))


def wait_finished(http: httpx.Client, search_id: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = http.get(f"/api/searches/{search_id}", params={"timeoutSeconds": 5})
        if response.status_code == 200:
            return response
    raise AssertionError(f"{search_id} did not finish")


def get_search(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, SEARCH_PLURAL, name
    )
    return found


def problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM)
    return str(response.json()["detail"])


# -- PUT ------------------------------------------------------------------------------------


def test_put_starts_under_the_clients_id_once_whatever_the_repeats(
    http: httpx.Client,
    web: WebProcess,
    custom: client.CustomObjectsApi,
    web_namespace: str,
    fast: str,
    provider_factory: Any,
    demo_site: DemoSite,
) -> None:
    other = provider_factory(demo_site.url("m-other"))
    search_id = f"order-{uuid.uuid4().hex[:8]}"
    body = {"query": "café & crème", "providers": [fast, other]}
    created = http.put(f"/api/searches/{search_id}", json=body)
    assert created.status_code == 202, created.text
    assert created.json()["id"] == search_id
    assert created.headers["Location"] == f"{web.base}/api/searches/{search_id}"
    first = get_search(custom, web_namespace, search_id)
    assert json.loads(first["metadata"]["annotations"][INPUT]) == {
        "providers": sorted([fast, other]),
        "query": "café & crème",
        "watcher": True,
    }
    # The same input again (providers in another order): the status, never a second run.
    again = http.put(f"/api/searches/{search_id}", json={**body, "providers": [other, fast]})
    assert again.status_code in (200, 202), again.text
    assert again.json()["id"] == search_id
    wait_finished(http, search_id)
    finished = http.put(f"/api/searches/{search_id}", json=body)
    assert finished.status_code == 200
    assert finished.json()["runtimeStatus"] == "Completed"
    assert finished.headers["ETag"]
    assert (
        get_search(custom, web_namespace, search_id)["metadata"]["uid"] == first["metadata"]["uid"]
    )
    # Another input under the id: 409, and nothing changes.
    assert "another input" in problem(
        http.put(f"/api/searches/{search_id}", json={"query": "other"}), 409
    )
    assert "another input" in problem(
        http.put(f"/api/searches/{search_id}", json={**body, "watcher": False}), 409
    )
    # Ids that are not DNS-1123 labels.
    for bad in ("Upper", "a" * 64, "dots.in.it", "-dash"):
        assert "DNS-1123" in problem(http.put(f"/api/searches/{bad}", json=body), 400)
    assert problem(http.put(f"/api/searches/{search_id}", content=b"query"), 415)


def test_put_refuses_an_id_taken_by_a_search_no_start_request_made(
    http: httpx.Client, custom: client.CustomObjectsApi, web_namespace: str, fast: str
) -> None:
    name = f"kubectl-{uuid.uuid4().hex[:8]}"
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        web_namespace,
        SEARCH_PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Search",
            "metadata": {"name": name},
            "spec": {"query": "mine", "providerRefs": [fast]},
        },
    )
    detail = problem(
        http.put(f"/api/searches/{name}", json={"query": "mine", "providers": [fast]}), 409
    )
    assert "not made by a start request" in detail


# -- waitForCompletionSeconds ---------------------------------------------------------------


def test_post_waits_for_completion_and_answers_200_with_the_final_status(
    http: httpx.Client, fast: str, stuck: str
) -> None:
    done = http.post(
        "/api/searches",
        params={"waitForCompletionSeconds": 20},
        json={"query": "quick", "providers": [fast]},
    )
    assert done.status_code == 200, done.text
    assert done.json()["runtimeStatus"] == "Completed"
    assert done.json()["output"]["results"][0]["outcome"] == "Succeeded"
    began = time.monotonic()
    waiting = http.post(
        "/api/searches",
        params={"waitForCompletionSeconds": 1.5},
        json={"query": "slow", "providers": [stuck]},
    )
    elapsed = time.monotonic() - began
    assert waiting.status_code == 202, waiting.text
    assert 1.4 <= elapsed < 10
    assert waiting.headers["Location"].endswith(f"/api/searches/{waiting.json()['id']}")
    http.post(f"/api/searches/{waiting.json()['id']}/terminate")
    for bad in ("61", "-1", "soon", "²"):
        detail = problem(
            http.post(
                "/api/searches", params={"waitForCompletionSeconds": bad}, json={"query": "x"}
            ),
            400,
        )
        assert "waitForCompletionSeconds" in detail


# -- rerun ----------------------------------------------------------------------------------


def test_rerun_copies_the_spec_but_terminate_with_a_watcher_when_the_original_had_one(
    http: httpx.Client, custom: client.CustomObjectsApi, web_namespace: str, fast: str, stuck: str
) -> None:
    original = http.post("/api/searches", json={"query": "again", "providers": [fast]}).json()["id"]
    wait_finished(http, original)
    rerun = http.post(f"/api/searches/{original}/rerun")
    assert rerun.status_code == 202, rerun.text
    new_id = rerun.json()["id"]
    assert new_id != original
    assert rerun.headers["Location"].endswith(f"/api/searches/{new_id}")
    copied = get_search(custom, web_namespace, new_id)
    assert copied["metadata"]["labels"][RERUN_OF] == original
    assert copied["spec"] == get_search(custom, web_namespace, original)["spec"]
    assert wait_finished(http, new_id).json()["runtimeStatus"] == "Completed"
    watcher = custom.get_namespaced_custom_object(
        GROUP, VERSION, web_namespace, HTTPTASK_PLURAL, f"{new_id}--watcher"
    )
    assert watcher["spec"]["request"]["url"].endswith(f"/api/searches/{new_id}?timeoutSeconds=30")
    assert watcher["metadata"]["ownerReferences"][0]["uid"] == copied["metadata"]["uid"]

    # A terminated, unwatched Search: the rerun runs (terminate is not copied), unwatched.
    unwatched = http.post(
        "/api/searches", json={"query": "stop me", "providers": [stuck], "watcher": False}
    ).json()["id"]
    assert (
        http.post(f"/api/searches/{unwatched}/terminate", params={"reason": "no"}).status_code
        == 202
    )
    assert wait_finished(http, unwatched).json()["runtimeStatus"] == "Terminated"
    second = http.post(f"/api/searches/{unwatched}/rerun").json()["id"]
    spec = get_search(custom, web_namespace, second)["spec"]
    assert "terminate" not in spec and "terminateReason" not in spec
    assert http.get(f"/api/searches/{second}/watcher").status_code == 404
    running = http.get(f"/api/searches/{second}", params={"timeoutSeconds": 5})
    assert running.json()["runtimeStatus"] in ("Pending", "Running")
    http.post(f"/api/searches/{second}/terminate")
    assert problem(http.post("/api/searches/s-000000000000/rerun"), 404)


# -- purge by filter ------------------------------------------------------------------------


def test_purge_by_filter_deletes_only_finished_searches_it_selects(
    http: httpx.Client, custom: client.CustomObjectsApi, web_namespace: str, fast: str, stuck: str
) -> None:
    time.sleep(1.1)  # the filter's second holds none of the earlier tests' Searches
    since = dt.datetime.now(dt.UTC).replace(microsecond=0)
    finished = [
        http.post("/api/searches", json={"query": f"old {i}", "providers": [fast]}).json()["id"]
        for i in range(2)
    ]
    running = http.post("/api/searches", json={"query": "busy", "providers": [stuck]}).json()["id"]
    for search_id in finished:
        wait_finished(http, search_id)
    from_ = since.isoformat().replace("+00:00", "Z")
    assert "at least one filter" in problem(http.delete("/api/searches"), 400)
    assert problem(http.delete("/api/searches", params={"runtimeStatus": "Done"}), 400)
    nothing = http.delete(
        "/api/searches", params={"createdTimeFrom": from_, "runtimeStatus": "Failed"}
    )
    assert nothing.json() == {"instancesDeleted": 0}
    # Running is asked for too: never deleted, not counted.
    purged = http.delete(
        "/api/searches",
        params={"createdTimeFrom": from_, "runtimeStatus": "Completed,Running,Pending"},
    )
    assert purged.status_code == 200
    assert purged.json() == {"instancesDeleted": 2}
    for search_id in finished:
        assert http.get(f"/api/searches/{search_id}").status_code == 404
    assert get_search(custom, web_namespace, running)["metadata"]["name"] == running
    assert http.get(f"/api/searches/{running}").status_code == 202
    http.post(f"/api/searches/{running}/terminate")


# -- terminate with a reason ----------------------------------------------------------------


def test_terminate_with_a_reason_shows_it_in_the_condition_and_the_schema_guards_it(
    http: httpx.Client,
    custom: client.CustomObjectsApi,
    web_namespace: str,
    kubectl: Kubectl,
    stuck: str,
) -> None:
    search_id = http.post("/api/searches", json={"query": "halt", "providers": [stuck]}).json()[
        "id"
    ]
    assert "256" in problem(
        http.post(f"/api/searches/{search_id}/terminate", params={"reason": "x" * 257}), 400
    )
    assert "control" in problem(
        http.post(f"/api/searches/{search_id}/terminate", params={"reason": "a\nb"}), 400
    )
    answer = http.post(
        f"/api/searches/{search_id}/terminate", params={"reason": "wrong query, sorry"}
    )
    assert answer.status_code == 202, answer.text
    status = wait_finished(http, search_id).json()
    assert status["runtimeStatus"] == "Terminated"
    condition = status["output"]["conditions"][0]
    assert condition["message"] == "terminated on request: wrong query, sorry"
    spec = get_search(custom, web_namespace, search_id)["spec"]
    assert spec["terminateReason"] == "wrong query, sorry"
    # Once terminating, the reason is history.
    changed = kubectl.run(
        "patch",
        "search",
        search_id,
        "-n",
        web_namespace,
        "--type=merge",
        "-p",
        '{"spec":{"terminateReason":"another"}}',
    )
    assert changed.returncode != 0
    assert "terminateReason cannot change once terminate is true" in changed.stderr
    # The CRD: a reason only together with terminate: true.
    lone = kubectl.run(
        "create",
        "-n",
        web_namespace,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Search",
                "metadata": {"name": f"why-{uuid.uuid4().hex[:6]}"},
                "spec": {"query": "q", "terminateReason": "just because"},
            }
        ),
    )
    assert lone.returncode != 0
    assert "terminateReason is only allowed together with terminate: true" in lone.stderr


# -- the timeline ---------------------------------------------------------------------------


def test_the_timeline_draws_retries_waits_and_polls_at_their_offsets(
    http: httpx.Client, provider_factory: Any, demo_site: DemoSite
) -> None:
    flaky = provider_factory(demo_site.url(f"m-flaky-{uuid.uuid4().hex[:4]}", fail=1, retryafter=1))
    polling = provider_factory(demo_site.url("m-async", **{"async": 2, "retryafter": 1}))
    search_id = http.post(
        "/api/searches", json={"query": "timeline", "providers": [flaky, polling]}
    ).json()["id"]
    wait_finished(http, search_id)
    # The watcher's last answer lands just after the Search finishes.
    deadline = time.monotonic() + 20
    while http.get(f"/api/searches/{search_id}/watcher").json()["phase"] != "Succeeded":
        assert time.monotonic() < deadline, "the watcher did not finish"
        time.sleep(0.2)
    response = http.get(f"/api/searches/{search_id}/timeline")
    assert response.status_code == 200, response.text
    assert len(response.content) < 16_384  # bounded: 10 entries per lane at most
    document = response.json()
    lanes = {lane["name"]: lane for lane in document["lanes"]}
    kinds = [(s["kind"], s.get("statusCode")) for s in lanes[flaky]["segments"]]
    assert kinds == [("attempt", 503), ("wait", None), ("attempt", 200)]
    wait = lanes[flaky]["segments"][1]
    assert wait["endMs"] - wait["startMs"] >= 900  # Retry-After: 1
    kinds = [(s["kind"], s.get("statusCode")) for s in lanes[polling]["segments"]]
    assert kinds == [("attempt", 202), ("wait", None), ("poll", 202), ("wait", None), ("poll", 200)]
    for lane in lanes.values():
        starts = [s["startMs"] for s in lane["segments"]]
        assert starts == sorted(starts)
        assert all(s["endMs"] <= document["endMs"] for s in lane["segments"])
    watcher = lanes["watcher"]
    assert watcher["role"] == "watcher"
    assert watcher["segments"][0]["kind"] == "attempt"
    assert watcher["segments"][-1]["statusCode"] == 200
    assert problem(http.get("/api/searches/s-000000000000/timeline"), 404)


# -- client mode: the caller's own rights ---------------------------------------------------


def test_in_client_mode_rerun_and_purge_act_with_the_callers_own_rights(
    crds: None,
    kubeconfig: Any,
    namespace: str,
    operator: Any,
    tmp_path: Any,
    kubectl: Kubectl,
    api_client: client.ApiClient,
    custom: client.CustomObjectsApi,
    demo_site: DemoSite,
) -> None:
    provider = create_provider(api_client, namespace, "site", demo_site.url("m-client"))
    searches_ = "searches.durablesearch.dev"
    tasks = "httptasks.durablesearch.dev"
    providers = "searchproviders.durablesearch.dev"
    starter = token_for(
        kubectl,
        namespace,
        "starter",
        ("get,list,create", searches_),
        ("get,create", tasks),
        ("get", providers),
    )
    rerunner = token_for(
        kubectl, namespace, "rerunner", ("get,list,create", searches_), ("get", tasks)
    )
    lister = token_for(kubectl, namespace, "lister", ("get,list", searches_))
    purger = token_for(kubectl, namespace, "purger", ("get,list,delete", searches_))
    web = WebProcess(kubeconfig, tmp_path / "web.log", namespace, ["--auth=client"]).start()

    def count() -> int:
        listed = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, SEARCH_PLURAL)
        return len(listed["items"])

    try:
        with httpx.Client(base_url=web.base, trust_env=False, timeout=70) as http:
            as_ = lambda token: {"Authorization": f"Bearer {token}"}  # noqa: E731
            body = {"query": "mine", "providers": [provider]}
            started = http.post("/api/searches", json=body, headers=as_(starter))
            assert started.status_code == 202, started.text
            watched = started.json()["id"]
            unwatched = http.post(
                "/api/searches", json={**body, "watcher": False}, headers=as_(starter)
            ).json()["id"]
            before = count()
            # The original has a watcher: a caller who may not create HttpTasks is refused
            # before anything is created.
            refused = http.post(f"/api/searches/{watched}/rerun", headers=as_(rerunner))
            assert "create httptasks" in problem(refused, 403)
            assert count() == before
            rerun = http.post(f"/api/searches/{unwatched}/rerun", headers=as_(rerunner))
            assert rerun.status_code == 202, rerun.text
            assert count() == before + 1
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                finished = http.get(
                    "/api/searches", params={"runtimeStatus": "Completed"}, headers=as_(lister)
                ).json()["items"]
                if len(finished) == 3:
                    break
                time.sleep(0.2)
            assert problem(
                http.delete(
                    "/api/searches", params={"runtimeStatus": "Completed"}, headers=as_(lister)
                ),
                403,
            )
            purged = http.delete(
                "/api/searches", params={"runtimeStatus": "Completed"}, headers=as_(purger)
            )
            assert purged.json() == {"instancesDeleted": 3}, purged.text
    finally:
        web.stop()
