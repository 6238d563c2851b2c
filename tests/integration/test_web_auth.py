"""``--auth client``: each call carries the caller's token; cached reads are authorized per user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client

from tests.support.fixtures import Kubectl
from tests.support.processes import OperatorProcess, WebProcess


@pytest.fixture
def client_auth_web(
    crds: None, kubeconfig: Path, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> Iterator[WebProcess]:
    process = WebProcess(kubeconfig, tmp_path / "web.log", namespace, ["--auth=client"]).start()
    try:
        yield process
    finally:
        process.stop()


def token_for(kubectl: Kubectl, namespace: str, account: str, *rules: tuple[str, str]) -> str:
    """A ServiceAccount token, with a Role granting ``(verbs, resources)`` pairs if given."""
    kubectl("create", "serviceaccount", account, "-n", namespace)
    for index, (verbs, resources) in enumerate(rules):
        role = f"{account}-{index}"
        kubectl(
            "create", "role", role, f"--verb={verbs}", f"--resource={resources}", "-n", namespace
        )
        kubectl(
            "create",
            "rolebinding",
            role,
            f"--role={role}",
            f"--serviceaccount={namespace}:{account}",
            "-n",
            namespace,
        )
    return kubectl("create", "token", account, "-n", namespace).strip()


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
        assert "forbidden" in refused.json()["detail"].lower()

        as_writer = {"Authorization": f"Bearer {writer}"}
        started = http.post("/api/searches", json={"query": "mine"}, headers=as_writer)
        assert started.status_code == 202, started.text
        search_id = started.json()["id"]
        # The reader's refused POST above shows writes carry the caller's identity.
        body = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            "durablesearch.dev", "v1alpha1", namespace, "searches", search_id
        )
        assert body["spec"] == {"query": "mine"}  # defaults are applied by the operator, not stored
        status = http.get(f"/api/searches/{search_id}", headers=as_reader)
        assert status.status_code in (200, 202)
        assert (
            http.get(
                f"/api/searches/{search_id}", headers={"Authorization": f"Bearer {nobody}"}
            ).status_code
            == 403
        )
