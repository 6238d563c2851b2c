"""schemathesis against ``/api/openapi.json`` on the real stack: no 5xx, every answer as documented.

A real web service subprocess, the session's control plane and operator, a SearchProvider that
answers at once: schemathesis (its CLI, as a subprocess, so its own event loop and workers stay
out of pytest's) runs every check it has (status codes, content types, schemas, headers,
negative data refused, positive data accepted, methods not documented answered 405, and, in
client mode, routes refusing a caller without a token), over its coverage, fuzzing and
stateful phases (the document's links lead from a start to its status, result, terminate...).
Deterministic generation, a fixed number of examples: the same run every time, in about a
minute.

Answers that depend on state the document cannot express are allowed for valid data, per
operation: an unknown provider name is a 400 (the contract's), a finished Search cannot be
terminated (410), a Failed Search has no result (400), a PUT under an id taken by another
input is a 409, a rerun of an unknown id a 404, a purge without any filter a 400, a
terminating Search's reason cannot change (422), and a Search started without a watcher has
none (404 from the start's link to its watcher). Nothing else is relaxed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from tests.support.demo import DemoSite
from tests.support.fixtures import Kubectl
from tests.support.processes import OperatorProcess, WebProcess
from tests.support.searches import create_provider

SCHEMATHESIS = Path(sys.executable).with_name("st")
# Valid input that the state decides about: documented, and accepted as a valid answer.
CONFIG = """
[[operations]]
include-operation-id = ["startSearch", "compatStartSearch"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "429"]

[[operations]]
include-operation-id = "putSearch"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "409", "429"]

[[operations]]
include-operation-id = "rerunSearch"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "429"]

[[operations]]
include-operation-id = "purgeSearches"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403"]

[[operations]]
include-operation-id = "terminateSearch"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "410", "422"]

[[operations]]
include-operation-id = ["getResult", "compatGetResult"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]

# A Search started with "watcher": false has none: the link from a start to its watcher then
# rightly leads to a 404, which is not a created resource gone missing.
[[operations]]
include-operation-id = "getWatcher"
checks.ensure_resource_availability.enabled = false
"""


def run_schemathesis(
    base: str, tmp_path: Path, examples: int, *extra: str
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{base}/api/openapi.json",
        "--checks=all",
        f"--max-examples={examples}",
        "--generation-deterministic",
        "--phases=examples,coverage,fuzzing,stateful",
        "--workers=1",
        "--request-timeout=70",
        "--no-color",
        "--output-truncate=false",
        f"--report-dir={tmp_path / 'report'}",
        *extra,
    ]
    # Loopback only: no proxy from the environment may carry the requests anywhere.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")} | {
        "NO_PROXY": "*",
        "no_proxy": "*",
    }
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
        cwd=tmp_path,  # its crash cache (.schemathesis/) stays out of the repository
    )


@pytest.fixture
def provider(api_client: client.ApiClient, web_namespace: str, demo_site: DemoSite) -> str:
    """The namespace's one SearchProvider: Searches started without providers use it."""
    return create_provider(
        api_client, web_namespace, f"fuzz-{uuid.uuid4().hex[:6]}", demo_site.url("fuzz")
    )


def test_the_api_answers_as_its_openapi_document_says(
    web: WebProcess, provider: str, tmp_path: Path
) -> None:
    result = run_schemathesis(web.base, tmp_path, 40)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert "No issues found" in result.stdout or " passed" in result.stdout, result.stdout


def test_in_client_mode_too_with_a_token_and_without(
    crds: None,
    kubeconfig: Path,
    web_namespace: str,
    operator: OperatorProcess,
    kubectl: Kubectl,
    provider: str,
    tmp_path: Path,
) -> None:
    account = f"fuzzer-{uuid.uuid4().hex[:6]}"
    kubectl("create", "serviceaccount", account, "-n", web_namespace)
    kubectl(
        "create",
        "role",
        account,
        "--verb=get,list,create,patch,delete",
        "--resource=searches.durablesearch.dev,httptasks.durablesearch.dev,"
        "searchproviders.durablesearch.dev",
        "-n",
        web_namespace,
    )
    kubectl(
        "create",
        "rolebinding",
        account,
        f"--role={account}",
        f"--serviceaccount={web_namespace}:{account}",
        "-n",
        web_namespace,
    )
    scraper = f"durable-search-test-{account}-{web_namespace}"  # cluster-scoped: /metrics
    kubectl("create", "clusterrole", scraper, "--verb=get", "--non-resource-url=/metrics")
    kubectl(
        "create",
        "clusterrolebinding",
        scraper,
        f"--clusterrole={scraper}",
        f"--serviceaccount={web_namespace}:{account}",
    )
    token = kubectl("create", "token", account, "-n", web_namespace).strip()
    web = WebProcess(kubeconfig, tmp_path / "web.log", web_namespace, ["--auth=client"]).start()
    try:
        result = run_schemathesis(
            web.base, tmp_path, 15, "--header", f"Authorization: Bearer {token}"
        )
    finally:
        web.stop()
        kubectl.run("delete", "clusterrolebinding", scraper)
        kubectl.run("delete", "clusterrole", scraper)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
