"""``--auth client``: each call carries the caller's token; cached reads are authorized per user."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client

from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, VERSION
from tests.support.demo import DemoSite
from tests.support.fixtures import Kubectl
from tests.support.kubeconfigs import kubeconfig_with_token, token_for
from tests.support.processes import OperatorProcess, WebProcess
from tests.support.searches import Searches, create_provider
from tests.support.waiting import eventually

PROBLEM = "application/problem+json"


@pytest.fixture
def client_auth_web(
    crds: None, kubeconfig: Path, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> Iterator[WebProcess]:
    process = WebProcess(kubeconfig, tmp_path / "web.log", namespace, ["--auth=client"]).start()
    try:
        yield process
    finally:
        process.stop()


def test_client_mode_authenticates_and_authorizes_each_caller(
    client_auth_web: WebProcess, kubectl: Kubectl, namespace: str, api_client: client.ApiClient
) -> None:
    reader = token_for(kubectl, namespace, "reader", ("get,list", "searches.durablesearch.dev"))
    nobody = token_for(kubectl, namespace, "nobody")
    writer = token_for(
        kubectl,
        namespace,
        "writer",
        ("get,list,create,patch", "searches.durablesearch.dev"),
        ("create,get", "httptasks.durablesearch.dev"),
        ("get,list", "searchproviders.durablesearch.dev"),
    )
    starter = token_for(
        kubectl,
        namespace,
        "starter",
        ("create", "searches.durablesearch.dev"),
        ("create", "httptasks.durablesearch.dev"),
    )
    with httpx.Client(base_url=client_auth_web.base, trust_env=False, timeout=30) as http:
        anonymous = http.get("/api/searches")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"
        assert anonymous.headers["Content-Type"].startswith("application/problem+json")

        forged = http.get("/api/searches", headers={"Authorization": "Bearer not-a-token"})
        assert forged.status_code == 401, forged.text

        denied = http.get("/api/searches", headers={"Authorization": f"Bearer {nobody}"})
        assert denied.status_code == 403
        assert "not allowed to list searches" in denied.json()["detail"]

        as_reader = {"Authorization": f"Bearer {reader}"}
        assert http.get("/api/searches", headers=as_reader).status_code == 200
        refused = http.post("/api/searches", json={"query": "x"}, headers=as_reader)
        assert refused.status_code == 403
        # Refused before anything is looked up or written (the route declares `create`).
        assert "not allowed to create searches" in refused.json()["detail"]
        # What the web does read or write goes with the caller's token: the starter may start
        # but not read SearchProviders (the web service itself may), and the API server says so.
        as_starter = {"Authorization": f"Bearer {starter}"}
        unread = http.post(
            "/api/searches", json={"query": "x", "providers": ["any"]}, headers=as_starter
        )
        assert unread.status_code == 403, unread.text
        assert "forbidden" in unread.json()["detail"].lower()

        as_writer = {"Authorization": f"Bearer {writer}"}
        started = http.post("/api/searches", json={"query": "mine"}, headers=as_writer)
        assert started.status_code == 202, started.text
        search_id = started.json()["id"]
        # The starter's refused POST above shows API calls carry the caller's identity.
        body = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            "durablesearch.dev", "v1alpha1", namespace, "searches", search_id
        )
        assert body["spec"] == {
            "query": "mine",
            "ttlSecondsAfterFinished": 86400,  # --default-ttl-seconds; no schema defaults
        }
        status = http.get(f"/api/searches/{search_id}", headers=as_reader)
        assert status.status_code in (200, 202)
        assert (
            http.get(
                f"/api/searches/{search_id}", headers={"Authorization": f"Bearer {nobody}"}
            ).status_code
            == 403
        )


# -- authorize first, on every route ---------------------------------------------------------


@pytest.fixture
def start_client_web(
    crds: None, kubeconfig: Path, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> Iterator[Callable[..., WebProcess]]:
    started: list[WebProcess] = []

    def start(*args: str) -> WebProcess:
        log = tmp_path / f"web-{len(started)}.log"
        process = WebProcess(kubeconfig, log, namespace, ["--auth=client", *args])
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def finished_and_running_searches(searches: Searches, demo_site: DemoSite) -> tuple[str, str]:
    """A Failed Search (no providers at all) and one whose only provider never answers."""
    finished = searches.create({"query": "done", "providerRefs": ["nobody-has-this"]})
    running = searches.create(
        {"query": "busy", "providers": [{"name": "p", "url": demo_site.url("auth-stuck", hang=1)}]}
    )
    searches.wait(finished)
    searches.wait(running, until=lambda b: (b.get("status") or {}).get("phase") == "Running")
    return finished, running


def test_client_mode_authorizes_before_any_lookup_so_strangers_learn_nothing(
    client_auth_web: WebProcess,
    kubectl: Kubectl,
    namespace: str,
    searches: Searches,
    demo_site: DemoSite,
) -> None:
    finished, running = finished_and_running_searches(searches, demo_site)
    nobody = token_for(kubectl, namespace, "stranger")
    routes = [
        ("GET", "/api/searches/{id}"),
        ("GET", "/api/searches/{id}?timeoutSeconds=5"),
        ("GET", "/api/searches/{id}/result"),
        ("GET", "/api/searches/{id}/results/p"),
        ("GET", "/api/searches/{id}/watcher"),
        ("POST", "/api/searches/{id}/terminate"),
        ("DELETE", "/api/searches/{id}"),
        ("GET", "/api/GetResult?id={id}"),
        ("PUT", "/api/searches/{id}"),
        ("POST", "/api/searches/{id}/rerun"),
        ("GET", "/api/searches/{id}/timeline"),
        ("POST", "/api/searches/{id}/terminate?reason=enough"),
        ("DELETE", "/api/searches?runtimeStatus=Completed&x={id}"),
    ]
    credentials: list[tuple[dict[str, str], int]] = [
        ({}, 401),
        ({"Authorization": "Bearer not-a-token"}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        ({"Authorization": f"Bearer {nobody}"}, 403),
    ]
    with httpx.Client(base_url=client_auth_web.base, trust_env=False, timeout=30) as http:
        for method, template in routes:
            for headers, status in credentials:
                answers = set()
                for search_id in (finished, running, "s-000000000000", "Not_A_Name"):
                    response = http.request(method, template.format(id=search_id), headers=headers)
                    assert response.status_code == status, (method, template, search_id, headers)
                    assert response.headers["Content-Type"].startswith(PROBLEM)
                    answers.add(response.json()["detail"].replace(search_id, "ID"))
                # The same answer whether the Search exists, is finished, running or absent.
                assert len(answers) == 1, (method, template, answers)
    assert searches.get(running)["spec"].get("terminate", False) is False
    assert searches.get(finished)


def authentication_errors(kubectl: Kubectl) -> float:
    """Bearer tokens the API server could not authenticate, so far."""
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if line.startswith('authentication_attempts{result="error"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_client_mode_caches_an_unauthenticated_token_briefly(
    client_auth_web: WebProcess, kubectl: Kubectl
) -> None:
    junk = {"Authorization": f"Bearer junk-{uuid.uuid4().hex}"}
    before = authentication_errors(kubectl)
    with httpx.Client(base_url=client_auth_web.base, trust_env=False, timeout=30) as http:
        for path in ["/api/searches", "/api/searches/s-000000000000", "/api/providers"] * 7:
            assert http.get(path, headers=junk).status_code == 401
    # One review for the token, not one per request (every junk token costs the API server).
    assert authentication_errors(kubectl) - before <= 1


def test_client_mode_metrics_need_a_token_allowed_to_get_metrics(
    client_auth_web: WebProcess, kubectl: Kubectl, namespace: str
) -> None:
    nobody = token_for(kubectl, namespace, "no-metrics")
    scraper = token_for(kubectl, namespace, "scraper")
    role = f"durable-search-test-metrics-{namespace}"
    kubectl("create", "clusterrole", role, "--verb=get", "--non-resource-url=/metrics")
    try:
        kubectl(
            "create",
            "clusterrolebinding",
            role,
            f"--clusterrole={role}",
            f"--serviceaccount={namespace}:scraper",
        )
        with httpx.Client(base_url=client_auth_web.base, trust_env=False, timeout=30) as http:
            assert http.get("/metrics").status_code == 401
            denied = http.get("/metrics", headers={"Authorization": f"Bearer {nobody}"})
            assert denied.status_code == 403
            assert "/metrics" in denied.json()["detail"]
            scraped = http.get("/metrics", headers={"Authorization": f"Bearer {scraper}"})
            assert scraped.status_code == 200
            assert "durable_search_web_requests_total" in scraped.text
            # Liveness, readiness, the page and the API reference stay open (probes have no token).
            for path in ("/healthz", "/readyz", "/", "/api/openapi.json", "/static/app.js"):
                assert http.get(path).status_code == 200, path
    finally:
        kubectl.run("delete", "clusterrolebinding", role)
        kubectl.run("delete", "clusterrole", role)


def test_the_operators_watcher_token_reads_one_status_and_nothing_else(
    start_client_web: Callable[..., WebProcess],
    client_auth_web: WebProcess,
    kubectl: Kubectl,
    namespace: str,
    searches: Searches,
    demo_site: DemoSite,
) -> None:
    finished, running = finished_and_running_searches(searches, demo_site)
    token_for(kubectl, namespace, "op")
    token_for(kubectl, namespace, "intruder")
    audience = "durable-search-web"
    op = kubectl("create", "token", "op", "-n", namespace, f"--audience={audience}").strip()
    intruder = kubectl(
        "create", "token", "intruder", "-n", namespace, f"--audience={audience}"
    ).strip()
    op_for_the_api = kubectl("create", "token", "op", "-n", namespace).strip()
    web = start_client_web(f"--watcher-user=system:serviceaccount:{namespace}:op")
    as_op = {"Authorization": f"Bearer {op}"}
    with httpx.Client(base_url=web.base, trust_env=False, timeout=30) as http:
        assert http.get(f"/api/searches/{finished}", headers=as_op).status_code == 200
        watching = http.get(f"/api/searches/{running}", params={"timeoutSeconds": 1}, headers=as_op)
        assert watching.status_code == 202, watching.text
        assert watching.headers["Location"].endswith(f"/api/searches/{running}?timeoutSeconds=1")
        # Only that route, only for reading.
        for method, path in [
            ("GET", "/api/searches"),
            ("GET", f"/api/searches/{finished}/result"),
            ("GET", f"/api/searches/{finished}/watcher"),
            ("POST", f"/api/searches/{running}/terminate"),
            ("DELETE", f"/api/searches/{finished}"),
            ("POST", "/api/searches"),
            ("GET", "/api/providers"),
            ("GET", "/metrics"),
        ]:
            response = http.request(method, path, headers=as_op, json={"query": "x"})
            assert response.status_code == 401, (method, path, response.text)
        # A token with that audience for anyone else is nobody's.
        stranger = http.get(
            f"/api/searches/{finished}", headers={"Authorization": f"Bearer {intruder}"}
        )
        assert stranger.status_code == 401
        # The operator's token for the API server is an ordinary caller's: its RBAC decides.
        ordinary = http.get(
            f"/api/searches/{finished}", headers={"Authorization": f"Bearer {op_for_the_api}"}
        )
        assert ordinary.status_code == 403
    # Without --watcher-user no watcher token is accepted.
    with httpx.Client(base_url=client_auth_web.base, trust_env=False, timeout=30) as http:
        assert http.get(f"/api/searches/{finished}", headers=as_op).status_code == 401
    assert searches.get(running)["spec"].get("terminate", False) is False


def test_in_client_mode_the_watcher_rides_the_long_poll_on_the_operators_own_token(
    api_client: client.ApiClient,
    isolated_namespace: str,
    kubeconfig: Path,
    kubectl: Kubectl,
    demo_site: DemoSite,
    tmp_path: Path,
) -> None:
    ns = isolated_namespace
    # The operator runs as a ServiceAccount of its own, as in a cluster, so it can mint a
    # token for itself with audience durable-search-web (the web checks it with a TokenReview).
    kubectl("create", "serviceaccount", "op", "-n", ns)
    kubectl(
        "create",
        "clusterrolebinding",
        f"op-{ns}",
        "--clusterrole=cluster-admin",
        f"--serviceaccount={ns}:op",
    )
    operator_kubeconfig = kubeconfig_with_token(
        kubeconfig, kubectl("create", "token", "op", "-n", ns).strip(), tmp_path / "op.kubeconfig"
    )
    writer = token_for(
        kubectl,
        ns,
        "writer",
        ("get,list,create", "searches.durablesearch.dev"),
        ("create,get", "httptasks.durablesearch.dev"),
        ("get,list", "searchproviders.durablesearch.dev"),
    )
    create_provider(api_client, ns, "site", demo_site.url("client-watch", delay=0.3))
    web = WebProcess(
        kubeconfig,
        tmp_path / "web.log",
        ns,
        ["--auth=client", f"--watcher-user=system:serviceaccount:{ns}:op"],
    ).start()
    try:
        operator = OperatorProcess(
            operator_kubeconfig,
            tmp_path / "operator.log",
            [f"--namespace={ns}", "--allow-cidr=127.0.0.0/8", f"--watcher-base-url={web.base}"],
        ).start()
        try:
            with httpx.Client(base_url=web.base, trust_env=False, timeout=30) as http:
                started = http.post(
                    "/api/searches",
                    json={"query": "watched", "providers": ["site"]},
                    headers={"Authorization": f"Bearer {writer}"},
                )
                assert started.status_code == 202, started.text
                search_id = started.json()["id"]
            searches = Searches(api_client, ns)
            searches.wait(search_id)

            def watcher() -> dict[str, object]:
                task: dict[str, object] = searches.custom.get_namespaced_custom_object(
                    GROUP, VERSION, ns, HTTPTASK_PLURAL, f"{search_id}--watcher"
                )
                return task

            eventually(
                lambda: (watcher().get("status") or {}).get("phase") == "Succeeded",  # type: ignore[union-attr]
                timeout=60,
                message="the watcher finished",
            )
            status = watcher()["status"]
            assert status["response"]["statusCode"] == 200, status  # type: ignore[index]
        finally:
            operator.stop()
    finally:
        web.stop()
        kubectl("delete", "clusterrolebinding", f"op-{ns}")
