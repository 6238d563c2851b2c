"""The management decisions shared by the web API and the CLI (engine.management, pure)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from durable_search.api.constants import SearchPhase
from durable_search.api.models import SearchSpec
from durable_search.engine import management
from durable_search.engine.search import terminated_message

pytestmark = pytest.mark.unit


def search(name: str, phase: str | None, created: str, uid: str = "u") -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "uid": uid, "creationTimestamp": created},
        "spec": {"query": "q"},
    }
    if phase:
        body["status"] = {"phase": phase}
    return body


def test_the_canonical_input_ignores_provider_order_and_repeats() -> None:
    one = management.StartInput("café", ("b", "a", "b"), True)
    other = management.StartInput("café", ("a", "b"), True)
    assert one.canonical() == other.canonical()
    assert json.loads(one.canonical()) == {
        "providers": ["a", "b"],
        "query": "café",
        "watcher": True,
    }
    assert one.canonical() != management.StartInput("café", ("a", "b"), False).canonical()
    assert one.canonical() != management.StartInput("cafe", ("a", "b"), True).canonical()


def test_a_start_manifest_keeps_its_input_and_same_start_compares_it() -> None:
    start = management.StartInput("q", ("p",))
    body = management.start_manifest("mine", start, 3600)
    assert body["metadata"]["annotations"][management.ANNOTATION_INPUT] == start.canonical()
    assert body["spec"] == {"query": "q", "providerRefs": ["p"], "ttlSecondsAfterFinished": 3600}
    assert management.same_start(body, start) is True
    assert management.same_start(body, management.StartInput("other", ("p",))) is False
    assert management.same_start(search("k", None, "2026-01-01T00:00:00Z"), start) is None
    assert "ttlSecondsAfterFinished" not in management.start_manifest("x", start, None)["spec"]


def test_a_rerun_copies_the_spec_but_the_run_state_and_names_its_original() -> None:
    original = {
        "metadata": {
            "name": "first",
            "uid": "u1",
            "resourceVersion": "9",
            "annotations": {management.ANNOTATION_INPUT: "{}", "other": "x"},
            "labels": {"team": "a"},
        },
        "spec": {
            "query": "q",
            "providers": [{"name": "inline", "url": "http://x/?q={query}"}],
            "terminate": True,
            "terminateReason": "enough",
            "deadlineSeconds": 30,
        },
        "status": {"phase": "Terminated"},
    }
    rerun = management.rerun_manifest(original, "second")
    assert rerun["metadata"] == {
        "name": "second",
        "labels": {management.LABEL_RERUN_OF: "first"},
        "annotations": {management.ANNOTATION_INPUT: "{}"},
    }
    assert rerun["spec"] == {
        "query": "q",
        "providers": [{"name": "inline", "url": "http://x/?q={query}"}],
        "deadlineSeconds": 30,
    }
    assert "status" not in rerun


def test_the_watcher_polls_the_status_url_and_its_base_can_be_read_back() -> None:
    created = {
        "metadata": {"name": "s-1", "namespace": "ns", "uid": "u"},
        "spec": {"query": "q", "deadlineSeconds": 20},
    }
    watcher = management.watcher_manifest(created, "http://web:8080/", 60)
    assert watcher["spec"]["request"]["url"] == "http://web:8080/api/searches/s-1?timeoutSeconds=30"
    assert watcher["spec"]["deadlineSeconds"] == 80
    assert watcher["metadata"]["ownerReferences"][0]["controller"] is False
    assert management.watcher_base_of(watcher, "s-1") == "http://web:8080"
    assert management.watcher_base_of(watcher, "s-2") is None


@pytest.mark.parametrize(
    ("reason", "problem"),
    [
        ("", None),
        ("x" * 256, None),
        ("x" * 257, "longer"),
        ("a\nb", "control"),
        ("\x85", "control"),
    ],
)
def test_terminate_reasons_are_bounded_and_printable(reason: str, problem: str | None) -> None:
    found = management.terminate_reason_problem(reason)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_the_terminated_condition_carries_the_reason() -> None:
    assert terminated_message(SearchSpec.parse({"query": "q", "terminate": True})) == (
        "terminated on request"
    )
    spec = SearchSpec.parse({"query": "q", "terminate": True, "terminateReason": "wrong query"})
    assert terminated_message(spec) == "terminated on request: wrong query"
    patch = management.terminate_patch("why")
    assert patch == {"spec": {"terminate": True, "terminateReason": "why"}}
    assert management.terminate_patch(None) == {"spec": {"terminate": True}}


def test_a_purge_never_selects_an_unfinished_search_and_every_filter_must_match() -> None:
    items = [
        search("old-done", "Completed", "2026-01-01T00:00:00Z", "u1"),
        search("new-done", "Completed", "2026-03-01T00:00:00Z", "u2"),
        search("old-failed", "Failed", "2026-01-02T00:00:00Z", "u3"),
        search("old-running", "Running", "2026-01-01T00:00:00Z", "u4"),
        search("old-pending", None, "2026-01-01T00:00:00Z", "u5"),
    ]
    before = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    assert management.PurgeFilter().empty
    older = management.PurgeFilter(created_to=before)
    assert management.purge_selection(items, older) == [("old-done", "u1"), ("old-failed", "u3")]
    failed = management.PurgeFilter(statuses=frozenset({SearchPhase.FAILED}))
    assert management.purge_selection(items, failed) == [("old-failed", "u3")]
    running = management.PurgeFilter(statuses=frozenset({SearchPhase.RUNNING, SearchPhase.PENDING}))
    assert management.purge_selection(items, running) == []
    newer = management.PurgeFilter(created_from=before)
    assert management.purge_selection(items, newer) == [("new-done", "u2")]
