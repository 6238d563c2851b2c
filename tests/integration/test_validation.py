"""Bad specs are rejected by the API server with a message that says what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.fixtures import Kubectl

REPO = Path(__file__).resolve().parents[2]
GOOD_PROVIDER = {"name": "wiki", "url": "http://127.0.0.1:1/search?q={query}"}


def search(spec: dict[str, Any], name: str = "bad") -> str:
    return json.dumps(
        {
            "apiVersion": "durablesearch.dev/v1alpha1",
            "kind": "Search",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "spec.query: Required value"),
        ({"query": ""}, "spec.query: Invalid value"),
        ({"query": "x" * 513}, "spec.query: Too long"),
        (
            {"query": "q", "providers": [{"name": "w", "url": "http://example.org/search"}]},
            "must contain {query}",
        ),
        (
            {"query": "q", "providers": [{"name": "w", "url": "ftp://example.org/{query}"}]},
            "must be an http:// or https:// URL",
        ),
        (
            {"query": "q", "providers": [{"name": "Not_A_Label", "url": GOOD_PROVIDER["url"]}]},
            "spec.providers[0].name",
        ),
        (
            {"query": "q", "providers": [dict(GOOD_PROVIDER, name=f"p{i}") for i in range(17)]},
            "Too many: 17: must have at most 16 items",
        ),
        ({"query": "q", "deadlineSeconds": 0}, "spec.deadlineSeconds"),
        ({"query": "q", "providers": [dict(GOOD_PROVIDER, method="TRACE")]}, "Unsupported value"),
        (
            {
                "query": "q",
                "providers": [
                    dict(
                        GOOD_PROVIDER,
                        headers=[
                            {
                                "name": "X",
                                "value": "v",
                                "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                            }
                        ],
                    )
                ],
            },
            "give exactly one of value or valueFrom",
        ),
    ],
)
def test_invalid_searches_are_rejected_with_a_message(
    kubectl: Kubectl, crds: None, namespace: str, spec: dict[str, Any], message: str
) -> None:
    result = kubectl.run("apply", "-n", namespace, "-f", "-", input=search(spec))
    assert result.returncode != 0, result.stdout
    assert message in result.stderr, result.stderr


def test_the_spec_is_immutable_except_a_one_way_terminate(
    kubectl: Kubectl, crds: None, namespace: str
) -> None:
    spec = {"query": "fixed", "providers": [GOOD_PROVIDER]}
    kubectl("apply", "-n", namespace, "-f", "-", input=search(spec, "frozen"))
    changed = kubectl.run(
        "apply", "-n", namespace, "-f", "-", input=search({**spec, "query": "changed"}, "frozen")
    )
    assert changed.returncode != 0
    assert "spec is immutable: only terminate may change" in changed.stderr
    kubectl(
        "patch",
        "search",
        "frozen",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"terminate": true}}',
    )
    undo = kubectl.run(
        "patch",
        "search",
        "frozen",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"terminate": false}}',
    )
    assert undo.returncode != 0
    assert "terminate cannot be set back to false" in undo.stderr


def test_an_httptask_url_must_be_http(kubectl: Kubectl, crds: None, namespace: str) -> None:
    task = {
        "apiVersion": "durablesearch.dev/v1alpha1",
        "kind": "HttpTask",
        "metadata": {"name": "bad"},
        "spec": {"request": {"url": "file:///etc/passwd"}},
    }
    result = kubectl.run("apply", "-n", namespace, "-f", "-", input=json.dumps(task))
    assert result.returncode != 0
    assert "must be an http:// or https:// URL" in result.stderr


@pytest.mark.parametrize(
    ("request_spec", "message"),
    [
        ({"url": "http://127.0.0.1:99999/"}, ("spec.request.url", "the port must be from 1 to")),
        ({"url": "http://user:pw@127.0.0.1/"}, ("spec.request.url", "must be a URL the operator")),
        (
            {
                "url": "http://127.0.0.1/",
                "headers": [{"name": "X-A"}],
            },
            ("spec.request.headers[0]", "give exactly one of value or valueFrom"),
        ),
        (
            {
                "url": "http://127.0.0.1/",
                "auth": {
                    "oauth2ClientCredentials": {
                        "tokenUrl": "ftp://127.0.0.1/token",
                        "clientId": {"secretKeyRef": {"name": "s", "key": "id"}},
                        "clientSecret": {"secretKeyRef": {"name": "s", "key": "secret"}},
                    }
                },
            },
            (
                "spec.request.auth.oauth2ClientCredentials.tokenUrl",
                "must be an http:// or https:// URL",
            ),
        ),
    ],
)
def test_an_httptask_spec_rule_refuses_with_its_path(
    kubectl: Kubectl,
    crds: None,
    namespace: str,
    request_spec: dict[str, Any],
    message: tuple[str, str],
) -> None:
    task = {
        "apiVersion": "durablesearch.dev/v1alpha1",
        "kind": "HttpTask",
        "metadata": {"name": "ruled"},
        "spec": {"request": request_spec},
    }
    result = kubectl.run("apply", "-n", namespace, "-f", "-", input=json.dumps(task))
    assert result.returncode != 0, result.stdout
    path, reason = message
    assert f"{path}: Invalid value" in result.stderr, result.stderr
    assert reason in result.stderr, result.stderr


def test_an_httptask_poll_interval_floor_stays_below_its_ceiling(
    kubectl: Kubectl, crds: None, namespace: str
) -> None:
    task = {
        "apiVersion": "durablesearch.dev/v1alpha1",
        "kind": "HttpTask",
        "metadata": {"name": "polls"},
        "spec": {
            "request": {"url": "http://127.0.0.1/"},
            "async": {"minPollIntervalSeconds": 5, "maxPollIntervalSeconds": 1},
        },
    }
    result = kubectl.run("apply", "-n", namespace, "-f", "-", input=json.dumps(task))
    assert result.returncode != 0, result.stdout
    assert "spec.async: Invalid value" in result.stderr, result.stderr
    assert "minPollIntervalSeconds must not exceed maxPollIntervalSeconds" in result.stderr


def test_kubectl_explain_documents_the_fields(kubectl: Kubectl, crds: None) -> None:
    explained = kubectl("explain", "search.spec.providerRefs")
    assert "every SearchProvider of the namespace" in explained
    assert "maxAttempts" in kubectl("explain", "httptask.spec.retry")


def test_every_example_is_valid_against_the_crds(
    kubectl: Kubectl, crds: None, namespace: str
) -> None:
    # Server-side dry run: validated by the real API server, never created, nothing fetched.
    for folder in (
        REPO / "manifests/examples",
        REPO / "manifests/examples/internet",
        REPO / "manifests/examples/capabilities",
    ):
        result = kubectl.run("apply", "--dry-run=server", "-n", namespace, "-f", str(folder))
        assert result.returncode == 0, result.stderr
        assert "created (server dry run)" in result.stdout
