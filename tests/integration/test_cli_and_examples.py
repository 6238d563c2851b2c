"""`durable-search start` and `kubectl apply -f manifests/examples/` as a user runs them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.support.cli import run_cli
from tests.support.demo import DemoSite
from tests.support.fixtures import Kubectl
from tests.support.searches import Searches, create_provider

REPO = Path(__file__).resolve().parents[2]
EXAMPLES_PORT = 8090  # the port manifests/examples/ point at (make up serves the site there)


def start(kubeconfig: Path, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(kubeconfig, namespace, "start", *args)


@pytest.fixture
def provider(api_client: client.ApiClient, namespace: str, demo_site: DemoSite) -> str:
    return create_provider(api_client, namespace, "site", demo_site.url("cli-site"))


def test_start_wait_follows_progress_and_exits_zero(
    searches: Searches, kubeconfig: Path, namespace: str, provider: str
) -> None:
    result = start(kubeconfig, namespace, "hello world", "--provider", provider, "--wait")
    assert result.returncode == 0, result.stderr
    assert "created in" in result.stdout
    assert "Completed 1/1" in result.stdout
    assert "site  ✔ Succeeded 200" in result.stdout


def test_start_json_prints_the_search_with_the_joined_output(
    searches: Searches, kubeconfig: Path, namespace: str, provider: str
) -> None:
    result = start(kubeconfig, namespace, "json please", "--wait", "-o", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["status"]["phase"] == "Completed"
    assert "Results for <b>json please</b>" in document["output"]


def test_start_exits_three_when_waiting_times_out(
    searches: Searches,
    kubeconfig: Path,
    namespace: str,
    api_client: client.ApiClient,
    demo_site: DemoSite,
) -> None:
    create_provider(api_client, namespace, "stuck", demo_site.url("cli-stuck", hang=1))
    result = start(kubeconfig, namespace, "patience", "--wait", "--timeout", "2")
    assert result.returncode == 3
    assert "timed out after 2s; the Search goes on running" in result.stderr


def test_start_rejects_bad_usage_with_exit_two(kubeconfig: Path, namespace: str) -> None:
    assert start(kubeconfig, namespace, "").returncode == 2
    assert start(kubeconfig, namespace, "x" * 600).returncode == 2


@pytest.fixture
def examples_site() -> Iterator[DemoSite]:
    try:
        site = DemoSite(port=EXAMPLES_PORT).start()
    except OSError as error:
        pytest.fail(f"port {EXAMPLES_PORT} is taken (is `make up` running?): {error}")
    try:
        yield site
    finally:
        site.stop()


def test_the_examples_run_as_documented(
    searches: Searches, kubectl: Kubectl, namespace: str, examples_site: DemoSite
) -> None:
    kubectl("apply", "-n", namespace, "-f", str(REPO / "manifests/examples"))
    every = searches.wait("cafe-creme", timeout=60)
    assert every["status"]["phase"] == "Completed"
    assert {r["name"]: r["outcome"] for r in every["status"]["results"]} == {
        "flaky": "Succeeded",
        "gone": "HttpError",
        "news": "Succeeded",
        "wiki": "Succeeded",
    }
    sample = searches.wait("sample-scenario", timeout=60)
    assert [r["outcome"] for r in sample["status"]["results"]] == [
        "Succeeded",
        "HttpError",
        "TransportError",
    ]
