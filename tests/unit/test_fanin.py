"""Fan-in: results, progress, phases, and the joined output."""

from __future__ import annotations

import datetime as dt
from typing import Any

from durable_search.api.models import ProviderSpec, SearchSpec
from durable_search.engine import fanin
from durable_search.engine.fanout import SearchRef, plan_results
from durable_search.engine.names import child_name
from durable_search.engine.page import output_html

NOW = dt.datetime(2026, 11, 26, 8, 0, 0, tzinfo=dt.UTC)
REF = SearchRef("s1", "ns", "uid-1")
A, B, C = (child_name("s1", p, "uid-1") for p in "abc")


def later(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def started(providers: dict[str, ProviderSpec | None]) -> dict[str, Any]:
    spec = SearchSpec(query="q")
    return fanin.start({}, plan_results(REF, spec, providers), 1, NOW)


def provider(name: str) -> ProviderSpec:
    return ProviderSpec(name=name, url=f"http://{name}.example/?q={{query}}")


def child(outcome: str | None, code: int | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"attempts": 1, "phase": "Running"}
    if outcome:
        status.update(outcome=outcome, phase="Succeeded" if code else "Failed")
    if code:
        status["response"] = {"statusCode": code}
    return status


def test_no_providers_fails_the_search_with_a_reason() -> None:
    status = started({})
    assert status["phase"] == "Failed"
    assert status["conditions"][0]["reason"] == "NoProviders"


def test_fan_in_completes_only_when_every_provider_has_an_outcome() -> None:
    status = started({"a": provider("a"), "b": provider("b"), "c": provider("c")})
    partial = fanin.fan_in(status, {A: child("Succeeded", 200), B: child(None)}, 1, later(1))
    assert (partial["phase"], partial["progress"]) == ("Running", "1/3")
    done = fanin.fan_in(
        partial,
        {B: child("HttpError", 404), C: child("TransportError")},
        1,
        later(2),
    )
    assert (done["phase"], done["progress"], done["duration"]) == ("Completed", "3/3", "2.0s")
    assert [r["outcome"] for r in done["results"]] == ["Succeeded", "HttpError", "TransportError"]
    assert done["results"][1]["statusCode"] == 404
    assert "statusCode" not in done["results"][2]
    condition = done["conditions"][0]
    assert (condition["status"], condition["message"]) == (
        "True",
        "1 of 3 providers returned results",
    )


def test_a_recorded_outcome_is_never_rewritten_by_a_partial_view() -> None:
    status = started({"a": provider("a"), "b": provider("b")})
    status = fanin.fan_in(status, {A: child("Succeeded", 200)}, 1, later(1))
    again = fanin.fan_in(status, {}, 1, later(2))  # a cache that lost the child
    assert again["results"][0]["outcome"] == "Succeeded"
    assert again["progress"] == "1/2"


def test_terminate_and_expire_close_the_unfinished_providers() -> None:
    status = started({"a": provider("a"), "b": provider("b")})
    status = fanin.fan_in(status, {A: child("Succeeded", 200)}, 1, later(1))
    terminated = fanin.terminate(status, later(2), "terminated on request")
    assert terminated["phase"] == "Terminated"
    assert [r["outcome"] for r in terminated["results"]] == ["Succeeded", "Terminated"]
    expired = fanin.expire(status, 30, later(31))
    assert expired["phase"] == "Completed"
    assert expired["results"][1]["outcome"] == "TimedOut"
    assert expired["conditions"][0]["reason"] == "DeadlineExceeded"


def test_transitions_name_the_events_users_care_about() -> None:
    running = started({"a": provider("a")})
    assert fanin.transition({}, running) is None  # a start is in status; no Event write
    done = fanin.fan_in(running, {A: child("Succeeded", 200)}, 1, later(1))
    change = fanin.transition(running, done)
    assert change is not None and change.reason == "Completed" and not change.warning
    assert fanin.transition(done, done) is None
    terminated = fanin.terminate(running, later(1), "terminated on request")
    change = fanin.transition(running, terminated)
    assert change is not None and change.reason == "Terminated" and change.warning


def test_a_fold_that_changes_nothing_returns_the_same_status() -> None:
    status = started({"a": provider("a"), "b": provider("b")})
    assert fanin.fan_in(status, {A: child(None)}, 1, later(1)) == status


def test_a_finished_childs_summary_folds_exactly_like_the_child() -> None:
    from durable_search.controller.runtime import finished_summary
    from durable_search.engine.httptask import result_summary

    full = {
        "apiVersion": "durablesearch.dev/v1alpha1",
        "kind": "HttpTask",
        "metadata": {
            "name": A,
            "namespace": "ns",
            "uid": "u",
            "resourceVersion": "7",
            "managedFields": [{"manager": "x"}],
        },
        "spec": {"request": {"url": "http://a/"}},
        "status": {
            "phase": "Succeeded",
            "outcome": "Succeeded",
            "attempts": 2,
            "message": "200 OK",
            "startTime": "2026-11-26T08:00:00.000Z",
            "completionTime": "2026-11-26T08:00:01.500Z",
            "response": {"statusCode": 200, "body": "<p>page</p>" * 100},
            "attemptLog": [{"attempt": 1}, {"attempt": 2}],
        },
    }
    summary = finished_summary(full)
    assert result_summary(summary["status"]) == result_summary(full["status"])
    assert "spec" not in summary
    assert "body" not in summary["status"]["response"]
    assert "managedFields" not in summary["metadata"]


def test_children_recorded_under_an_older_naming_are_found_by_the_recorded_name() -> None:
    # Planned before child names carried the uid's hash (an operator upgraded mid-Search):
    # Search "a" recorded "a-b-c" for provider "b-c". Today's name is another one.
    status = fanin.start({}, [{"name": "b-c", "httpTaskName": "a-b-c", "attempts": 0}], 1, NOW)
    today = child_name("a", "b-c", "uid-a")
    assert today != "a-b-c"
    # A child under today's name was never recorded: nothing of it is folded in.
    assert fanin.fan_in(status, {today: child("Succeeded", 200)}, 1, later(1)) == status
    done = fanin.fan_in(status, {"a-b-c": child("Succeeded", 200)}, 1, later(1))
    assert (done["phase"], done["progress"]) == ("Completed", "1/1")
    (result,) = done["results"]
    assert (result["httpTaskName"], result["outcome"]) == ("a-b-c", "Succeeded")
    page = output_html(done["results"], {"a-b-c": "<p>b-c</p>", today: "<p>other</p>"})
    assert page == "<p>b-c</p>"
