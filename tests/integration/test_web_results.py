"""The result routes read exactly the children a Search recorded, and only its own.

No operator watches this namespace: the test writes the Search's status and its children by
hand, as a tenant with write access to HttpTasks could, to show what the web trusts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from durable_search.api.constants import (
    API_VERSION,
    GROUP,
    HTTPTASK_PLURAL,
    LABEL_SEARCH_UID,
    SEARCH_PLURAL,
    VERSION,
)
from tests.support.fixtures import Kubectl
from tests.support.processes import WebProcess
from tests.support.searches import Searches


@pytest.fixture
def iso_web(
    crds: None, kubeconfig: Path, isolated_namespace: str, tmp_path: Path
) -> Iterator[WebProcess]:
    process = WebProcess(kubeconfig, tmp_path / "web.log", isolated_namespace).start()
    try:
        yield process
    finally:
        process.stop()


ROUTE_CALLS = 10
"""Calls of each result route: one LIST per call (the old way) is far past the tolerance."""


def child(name: str, labels_uid: str, owner: dict[str, Any] | None, body: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {LABEL_SEARCH_UID: labels_uid}}
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": API_VERSION,
        "kind": "HttpTask",
        "metadata": metadata,
        "spec": {"request": {"url": "http://127.0.0.1:9/?q=x"}},
        "_status": {
            "phase": "Succeeded",
            "outcome": "Succeeded",
            "attempts": 1,
            "response": {
                "statusCode": 200,
                "headers": [],
                "body": body,
                "bodyBytes": len(body),
                "truncated": False,
                "encoding": "utf-8",
            },
        },
    }


def owner(search: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Search",
        "name": search["metadata"]["name"],
        "uid": search["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def httptask_lists(kubectl: Kubectl) -> float:
    """LIST requests for HttpTasks the API server has served so far."""
    total = 0.0
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if (
            line.startswith("apiserver_request_total{")
            and 'resource="httptasks"' in line
            and 'verb="LIST"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_result_routes_get_the_recorded_child_by_name_and_only_if_the_search_owns_it(
    iso_web: WebProcess,
    api_client: client.ApiClient,
    isolated_namespace: str,
    kubectl: Kubectl,
) -> None:
    ns = isolated_namespace
    custom = client.CustomObjectsApi(api_client)
    searches = Searches(api_client, ns)
    victim = searches.get(searches.create({"query": "victim", "providerRefs": ["p", "q"]}, "vic"))
    other = searches.get(searches.create({"query": "tenant", "providerRefs": ["z"]}, "tenant"))
    uid = victim["metadata"]["uid"]
    tasks = [
        child("vic-p", uid, owner(victim), "<p>genuine</p>"),
        # A tenant's task under the name the Search recorded, labelled as the victim's child
        # but owned by the tenant's own Search: never the victim's result.
        child("vic-q", uid, owner(other), "<p>forged</p>"),
        # Labelled as the victim's child, owned by it even, but never recorded: never read.
        child("vic-extra", uid, owner(victim), "<p>unrecorded</p>"),
    ]
    for task in tasks:
        status = task.pop("_status")
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, HTTPTASK_PLURAL, task)
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, HTTPTASK_PLURAL, task["metadata"]["name"], {"status": status}
        )
    results = [
        {"name": name, "httpTaskName": f"vic-{name}", "outcome": "Succeeded", "attempts": 1}
        for name in ("p", "q")
    ]
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        ns,
        SEARCH_PLURAL,
        "vic",
        {"status": {"phase": "Completed", "progress": "2/2", "results": results}},
    )
    lists_before = httptask_lists(kubectl)
    with httpx.Client(base_url=iso_web.base, trust_env=False, timeout=30) as http:
        for _ in range(100):
            if http.get("/api/searches/vic").status_code == 200:
                break
        for _ in range(ROUTE_CALLS):
            genuine = http.get("/api/searches/vic/results/p")
            assert genuine.status_code == 200
            assert genuine.text == "<p>genuine</p>"
            forged = http.get("/api/searches/vic/results/q")
            assert forged.status_code == 200
            assert "forged" not in forged.text
            assert "No Results" in forged.text
            joined = http.get("/api/searches/vic/result")
            assert joined.status_code == 200
            assert "<p>genuine</p>" in joined.text
            assert "forged" not in joined.text and "unrecorded" not in joined.text
        lists = httptask_lists(kubectl) - lists_before
    # Each child is read by the name the Search recorded: no LIST of every child and its body.
    # The counter is the API server's, for every client: the controller-manager's quota and
    # garbage-collector informers may list now and then, so a stray LIST or two is tolerated.
    # Listing per route, the old way, would make one per call: 3 * ROUTE_CALLS = 30 at least.
    assert lists < 3, f"{lists:.0f} LISTs of HttpTasks during {3 * ROUTE_CALLS} result calls"
