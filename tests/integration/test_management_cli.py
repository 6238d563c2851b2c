"""`durable-search list | get | rerun | terminate | purge` as a user runs them, against the real
control plane and operator (and the web service, for a rerun's watcher)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes import client

from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, VERSION
from tests.support.cli import run_cli
from tests.support.demo import DemoSite
from tests.support.processes import WebProcess
from tests.support.searches import Searches, create_provider

RERUN_OF = "durablesearch.dev/rerun-of"


def cli(kubeconfig: Path, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    command, *rest = args
    return run_cli(kubeconfig, namespace, command, *rest)


@pytest.fixture
def fast(api_client: client.ApiClient, namespace: str, demo_site: DemoSite) -> str:
    return create_provider(api_client, namespace, "site", demo_site.url("mcli-site"))


@pytest.fixture
def stuck(api_client: client.ApiClient, namespace: str, demo_site: DemoSite) -> str:
    return create_provider(api_client, namespace, "stuck", demo_site.url("mcli-stuck", hang=1))


def running(body: dict[str, object]) -> bool:
    return (body.get("status") or {}).get("phase") == "Running"  # type: ignore[union-attr]


def test_list_and_get_show_searches_newest_first_filtered_in_every_format(
    searches: Searches, kubeconfig: Path, namespace: str, fast: str, stuck: str
) -> None:
    done = searches.create({"query": "done one", "providerRefs": [fast]}, name="a-done")
    busy = searches.create({"query": "busy one", "providerRefs": [stuck]}, name="b-busy")
    searches.wait(done)
    searches.wait(busy, until=running)

    listed = cli(kubeconfig, namespace, "list")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "QUERY", "PHASE", "PROGRESS", "AGE", "DURATION"]
    assert [row.split()[0] for row in rows] == [busy, done]  # newest first
    assert "Completed" in rows[1] and "1/1" in rows[1]
    only = cli(kubeconfig, namespace, "list", "--status", "completed")
    assert [row.split()[0] for row in only.stdout.splitlines()[1:]] == [done]
    as_json = json.loads(
        cli(kubeconfig, namespace, "list", "--status", "Running", "-o", "json").stdout
    )
    assert [item["metadata"]["name"] for item in as_json["items"]] == [busy]
    assert "managedFields" not in as_json["items"][0]["metadata"]
    bad = cli(kubeconfig, namespace, "list", "--status", "Finished")
    assert bad.returncode == 2 and "unknown status 'Finished'" in bad.stderr

    shown = cli(kubeconfig, namespace, "get", done)
    assert shown.returncode == 0, shown.stderr
    assert f"{done}: Completed 1/1" in shown.stdout
    assert "query:   done one" in shown.stdout
    assert "site  ✔ Succeeded 200" in shown.stdout
    timeline = shown.stdout.split("timeline (from each HttpTask's attemptLog", 1)[1]
    assert "site  +" in timeline and "attempt 1 → 200" in timeline
    assert (
        json.loads(cli(kubeconfig, namespace, "get", done, "-o", "json").stdout)["status"]["phase"]
        == "Completed"
    )
    assert yaml.safe_load(cli(kubeconfig, namespace, "get", busy, "-o", "yaml").stdout)["spec"] == {
        "query": "busy one",
        "providerRefs": [stuck],
    }
    missing = cli(kubeconfig, namespace, "get", "nope")
    assert missing.returncode == 1
    assert f"no Search 'nope' in namespace {namespace}" in missing.stderr
    searches.patch_spec(busy, {"terminate": True})


def test_terminate_with_a_reason_and_refusals_with_clear_exit_codes(
    searches: Searches, kubeconfig: Path, namespace: str, stuck: str
) -> None:
    busy = searches.create({"query": "stop", "providerRefs": [stuck]})
    searches.wait(busy, until=running)
    too_long = cli(kubeconfig, namespace, "terminate", busy, "--reason", "x" * 257)
    assert too_long.returncode == 2 and "longer than 256" in too_long.stderr
    stopped = cli(kubeconfig, namespace, "terminate", busy, "--reason", "changed my mind")
    assert stopped.returncode == 0, stopped.stderr
    assert f"{busy} terminating: changed my mind" in stopped.stdout
    body = searches.wait(busy)
    assert body["status"]["phase"] == "Terminated"
    assert body["status"]["conditions"][0]["message"] == "terminated on request: changed my mind"
    again = cli(kubeconfig, namespace, "terminate", busy)
    assert again.returncode == 1
    assert "already finished (Terminated)" in again.stderr


def test_purge_deletes_finished_searches_by_status_and_age_never_running_ones(
    searches: Searches, kubeconfig: Path, namespace: str, fast: str, stuck: str
) -> None:
    for usage in ([], ["--older-than", "soon"], ["--status", "Running"]):
        result = cli(kubeconfig, namespace, "purge", *usage)
        assert result.returncode == 2, (usage, result.stderr)
    assert "needs a filter" in cli(kubeconfig, namespace, "purge").stderr
    done = [searches.create({"query": f"old {i}", "providerRefs": [fast]}) for i in range(2)]
    busy = searches.create({"query": "busy", "providerRefs": [stuck]})
    for name in done:
        searches.wait(name)
    searches.wait(busy, until=running)
    young = cli(kubeconfig, namespace, "purge", "--older-than", "1h")
    assert young.returncode == 0 and "purged 0 Searches" in young.stdout
    purged = cli(kubeconfig, namespace, "purge", "--status", "Completed", "--older-than", "0s")
    assert purged.returncode == 0, purged.stderr
    assert "purged 2 Searches" in purged.stdout
    remaining = [
        s["metadata"]["name"]
        for s in searches.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "searches"
        )["items"]
    ]
    assert remaining == [busy]
    searches.patch_spec(busy, {"terminate": True})


def test_rerun_runs_again_with_a_watcher_when_the_original_had_one(
    web: WebProcess,
    web_namespace: str,
    kubeconfig: Path,
    api_client: client.ApiClient,
    demo_site: DemoSite,
) -> None:
    provider = create_provider(
        api_client, web_namespace, f"mcli-{uuid.uuid4().hex[:6]}", demo_site.url("mcli-rerun")
    )
    searches = Searches(api_client, web_namespace)
    with httpx.Client(base_url=web.base, trust_env=False, timeout=30) as http:
        original = http.post("/api/searches", json={"query": "again", "providers": [provider]})
    original_id = original.json()["id"]
    searches.wait(original_id)
    result = cli(kubeconfig, web_namespace, "rerun", original_id)
    assert result.returncode == 0, result.stderr
    assert f"(a rerun of {original_id})" in result.stdout
    new_id = result.stdout.split()[0].split("/")[1]
    assert f"with a watcher polling {web.base}/api/searches/{new_id}" in result.stdout
    rerun = searches.wait(new_id)
    assert rerun["status"]["phase"] == "Completed"
    assert rerun["metadata"]["labels"][RERUN_OF] == original_id
    assert rerun["spec"] == searches.get(original_id)["spec"]
    custom = client.CustomObjectsApi(api_client)
    watcher = f"{new_id}--watcher"

    def watcher_status() -> dict[str, object]:
        task = custom.get_namespaced_custom_object(
            GROUP, VERSION, web_namespace, HTTPTASK_PLURAL, watcher
        )
        return task.get("status") or {}  # type: ignore[no-any-return]

    deadline = time.monotonic() + 30
    while watcher_status().get("phase") != "Succeeded":
        assert time.monotonic() < deadline, watcher_status()
        time.sleep(0.2)
    assert watcher_status()["response"]["statusCode"] == 200  # type: ignore[index]
    missing = cli(kubeconfig, web_namespace, "rerun", "s-000000000000")
    assert missing.returncode == 1 and "no Search" in missing.stderr
