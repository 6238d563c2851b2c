"""The Search's decision: its guards in order, and a fan-in that writes little."""

from __future__ import annotations

import datetime as dt
from typing import Any

from durable_search.api.models import SearchSpec
from durable_search.engine import fanin
from durable_search.engine import search as decide_search
from durable_search.engine.search import PROGRESS_INTERVAL, Children, decide

NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)
SPEC = SearchSpec(query="q", deadline_seconds=60)


def planned(*names: str) -> dict[str, Any]:
    results = [{"name": n, "httpTaskName": f"s-{n}", "attempts": 0} for n in names]
    return dict(fanin.start({}, results, 1, NOW))  # type: ignore[arg-type]


def done(outcome: str = "Succeeded") -> dict[str, Any]:
    return {"phase": "Succeeded", "outcome": outcome, "attempts": 1}


def test_the_guards_in_order() -> None:
    status = planned("a", "b")
    assert isinstance(decide(SPEC, {}, Children({}), 1, NOW), decide_search.Start)
    terminated = SearchSpec(query="q", terminate=True)
    assert isinstance(decide(terminated, status, Children({}), 1, NOW), decide_search.Stop)
    unknown = Children({}, unknown=frozenset({"s-a"}))
    assert decide(SPEC, status, unknown, 1, NOW) == decide_search.Recover(("s-a",))
    late = NOW + dt.timedelta(seconds=63)
    stopped = decide(SPEC, status, Children({}), 1, late)
    assert isinstance(stopped, decide_search.Stop)
    assert stopped.status["phase"] == "Completed"  # the deadline completes, it does not fail
    finished = {**status, "phase": "Completed"}
    assert isinstance(decide(SPEC, finished, Children({}), 1, NOW), decide_search.Done)


def test_the_last_outcome_is_written_at_once_and_progress_at_most_every_interval() -> None:
    status = planned("a", "b")
    just_now = NOW + dt.timedelta(seconds=1)
    one = Children({"s-a": done()})
    waiting = decide(SPEC, status, one, 1, just_now, last_progress=NOW)
    assert waiting == decide_search.Wait(NOW + PROGRESS_INTERVAL)
    later = decide(SPEC, status, one, 1, NOW + PROGRESS_INTERVAL, last_progress=NOW)
    assert isinstance(later, decide_search.Record) and later.status["progress"] == "1/2"
    both = decide(SPEC, status, Children({"s-a": done(), "s-b": done()}), 1, just_now, NOW)
    assert isinstance(both, decide_search.Record) and both.status["phase"] == "Completed"
    after_restart = decide(SPEC, status, one, 1, just_now, last_progress=None)
    assert isinstance(after_restart, decide_search.Record)


def test_a_name_held_by_a_foreign_object_ends_that_provider_invalid() -> None:
    status = planned("a")
    decision = decide(SPEC, status, Children({}, foreign=frozenset({"s-a"})), 1, NOW, NOW)
    assert isinstance(decision, decide_search.Record)
    (result,) = decision.status["results"]
    assert result["outcome"] == "Invalid" and "NameConflict" in result["message"]


def test_a_search_planned_under_an_older_naming_keeps_its_recorded_children() -> None:
    # "a-b-c": Search "a", provider "b-c", named before child names carried the uid's hash.
    planned_then = [{"name": "b-c", "httpTaskName": "a-b-c", "attempts": 0}]
    status = dict(fanin.start({}, planned_then, 1, NOW))  # type: ignore[arg-type]
    lost = decide(SPEC, status, Children({}, unknown=frozenset({"a-b-c"})), 1, NOW)
    assert lost == decide_search.Recover(("a-b-c",))  # looked up by the recorded name
    found = decide(SPEC, status, Children({"a-b-c": done()}), 1, NOW, NOW)
    assert isinstance(found, decide_search.Record)
    assert found.status["phase"] == "Completed"
    assert found.status["results"][0]["outcome"] == "Succeeded"
