"""Fan-out: the plan of a Search's children, and each child's manifest."""

from __future__ import annotations

import datetime as dt

from durable_search.api.models import ProviderSpec, SearchSpec
from durable_search.engine import fanin
from durable_search.engine.fanout import SearchRef, child_manifest, plan_results
from durable_search.engine.names import child_name

NOW = dt.datetime(2026, 11, 26, 8, 0, 0, tzinfo=dt.UTC)
REF = SearchRef("s1", "ns", "uid-1")


def later(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def provider(name: str) -> ProviderSpec:
    return ProviderSpec(name=name, url=f"http://{name}.example/?q={{query}}")


def test_the_plan_names_children_deterministically_and_records_missing_refs() -> None:
    plan = plan_results(REF, SearchSpec(query="q"), {"a": provider("a"), "gone": None})
    status = fanin.start({}, plan, 1, NOW)
    assert status["phase"] == "Running"
    assert status["results"][0] == {
        "name": "a",
        "httpTaskName": child_name("s1", "a", "uid-1"),
        "attempts": 0,
    }
    assert status["results"][1]["outcome"] == "ProviderNotFound"
    assert status["progress"] == "1/2"


def test_child_manifest_encodes_the_query_and_carries_the_remaining_deadline() -> None:
    spec = SearchSpec.parse(
        {
            "query": "café & crème",
            "deadlineSeconds": 60,
            "overrides": {"attemptTimeoutSeconds": 5, "maxAttempts": 2},
        }
    )
    site = ProviderSpec.parse(
        "wiki",
        {"url": "http://w/?q={query}", "attemptTimeoutSeconds": 9, "retry": {"maxAttempts": 5}},
    )
    manifest = child_manifest(REF, spec, site, started=NOW, now=later(20))
    assert manifest["metadata"]["name"] == child_name("s1", "wiki", "uid-1")
    assert manifest["metadata"]["ownerReferences"][0]["controller"] is True
    assert manifest["spec"]["request"]["url"] == "http://w/?q=caf%C3%A9%20%26%20cr%C3%A8me"
    assert manifest["spec"]["deadlineSeconds"] == 40
    assert manifest["spec"]["attemptTimeoutSeconds"] == 5  # the override tightens
    assert manifest["spec"]["retry"]["maxAttempts"] == 2
