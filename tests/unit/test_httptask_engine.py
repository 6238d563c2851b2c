"""The HttpTask state machine: claims, retries, polls, deadlines, and what is never lost."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from durable_search.api.models import HttpTaskSpec
from durable_search.api.timestamps import format_time, parse_time
from durable_search.engine import httptask as engine

CREATED = dt.datetime(2026, 11, 26, 8, 0, 0, tzinfo=dt.UTC)
URL = "https://site.example/search?q=x"


def spec(**overrides: Any) -> HttpTaskSpec:
    raw: dict[str, Any] = {"request": {"url": URL}, "deadlineSeconds": 60}
    raw.update(overrides)
    return HttpTaskSpec.parse(raw)


def at(seconds: float) -> dt.datetime:
    return CREATED + dt.timedelta(seconds=seconds)


def answer(
    code: int, *, location: str | None = None, retry_after: str | None = None, body: str = "page"
) -> engine.HttpAnswer:
    return engine.HttpAnswer(
        status_code=code,
        reason="",
        headers={"content-type": "text/html"},
        body=engine.StoredBody(body, "utf-8", len(body), False),
        location=location,
        retry_after=retry_after,
    )


def exchange(
    result: engine.HttpAnswer | engine.NoAnswer, started: float, url: str = URL
) -> engine.Exchange:
    return engine.Exchange(result=result, url=url, started=at(started), duration_ms=10)


def step(
    task: HttpTaskSpec,
    status: dict[str, Any],
    now: float,
    result: engine.HttpAnswer | engine.NoAnswer,
) -> dict[str, Any]:
    """Decide at ``now``; the decision must be a Send; record ``result`` for it."""
    decision = engine.decide(task, status, CREATED, at(now))
    assert isinstance(decision, engine.Send), decision
    return engine.after_exchange(task, status, CREATED, decision, exchange(result, now), at(now))


def test_a_new_task_sends_attempt_one_at_once() -> None:
    decision = engine.decide(spec(), {}, CREATED, at(0))
    assert decision == engine.Send(engine.ActionKind.ATTEMPT, 1, URL, timeout=30)


def test_a_200_finishes_succeeded_with_the_response() -> None:
    status = step(spec(), {}, 0, answer(200))
    assert status["phase"] == "Succeeded"
    assert status["outcome"] == "Succeeded"
    assert status["attempts"] == 1
    assert status["response"]["statusCode"] == 200
    assert status["response"]["body"] == "page"
    assert engine.decide(spec(), status, CREATED, at(1)) == engine.Done()


def test_a_404_is_a_final_answer_recorded_as_http_error() -> None:
    status = step(spec(), {}, 0, answer(404))
    assert (status["phase"], status["outcome"]) == ("Succeeded", "HttpError")
    condition = status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "HttpError")


def test_503_with_retry_after_claims_the_next_attempt_at_that_time() -> None:
    status = step(spec(), {}, 0, answer(503, retry_after="4"))
    assert status["phase"] == "Running"
    assert status["attempts"] == 2
    assert parse_time(status["nextAttemptTime"]) == at(4)
    assert engine.decide(spec(), status, CREATED, at(1)) == engine.Wait(at(4))
    status = step(spec(), status, 4, answer(200))
    assert (status["outcome"], status["attempts"]) == ("Succeeded", 2)
    assert [e["statusCode"] for e in status["attemptLog"]] == [503, 200]


def test_500s_exhaust_the_retries_and_end_in_http_error() -> None:
    task = spec(retry={"maxAttempts": 3, "initialIntervalSeconds": 1, "backoffCoefficient": 2})
    status = step(task, {}, 0, answer(500))
    assert parse_time(status["nextAttemptTime"]) == at(1)
    status = step(task, status, 1, answer(500))
    assert parse_time(status["nextAttemptTime"]) == at(3)  # 1 s, then 2 s
    status = step(task, status, 3, answer(500))
    assert (status["phase"], status["outcome"], status["attempts"]) == ("Succeeded", "HttpError", 3)


def test_transport_errors_are_retried_then_recorded_as_failed() -> None:
    task = spec(retry={"maxAttempts": 2, "initialIntervalSeconds": 1})
    status = step(task, {}, 0, engine.NoAnswer("connection refused"))
    assert status["phase"] == "Running" and status["attempts"] == 2
    status = step(task, status, 1, engine.NoAnswer("connection refused"))
    assert (status["phase"], status["outcome"]) == ("Failed", "TransportError")
    assert status["lastError"] == "connection refused"
    assert "statusCode" not in engine.result_summary(status)


def test_attempt_timeouts_exhausted_end_in_timed_out() -> None:
    task = spec(retry={"maxAttempts": 1})
    status = step(task, {}, 0, engine.NoAnswer("no answer within 30s", engine.FailureKind.TIMEOUT))
    assert status["outcome"] == "TimedOut"


def test_blocked_is_never_retried() -> None:
    status = step(spec(), {}, 0, engine.NoAnswer("blocked: 10.0.0.1", engine.FailureKind.BLOCKED))
    assert (status["phase"], status["outcome"], status["attempts"]) == ("Failed", "Blocked", 1)


def test_202_with_location_is_polled_with_retry_after_until_a_final_answer() -> None:
    task = spec(**{"async": {"minPollIntervalSeconds": 1, "maxPollIntervalSeconds": 10}})
    status = step(task, {}, 0, answer(202, location="/jobs/7", retry_after="3"))
    assert status["phase"] == "Polling"
    assert status["location"] == "https://site.example/jobs/7"  # resolved against the request
    assert status["pollCount"] == 1
    assert parse_time(status["nextPollTime"]) == at(3)
    decision = engine.decide(task, status, CREATED, at(3))
    assert decision == engine.Send(engine.ActionKind.POLL, 1, "https://site.example/jobs/7", 30)
    status = step(task, status, 3, answer(202, location="/jobs/7", retry_after="600"))
    assert status["pollCount"] == 2
    assert parse_time(status["nextPollTime"]) == at(13)  # clamped to maxPollIntervalSeconds
    status = step(task, status, 13, answer(200, body="done"))
    assert (status["outcome"], status["response"]["body"]) == ("Succeeded", "done")
    assert status["attempts"] == 1
    assert [e.get("poll") for e in status["attemptLog"]] == [None, 1, 2]


def test_a_202_without_location_is_a_final_answer() -> None:
    status = step(spec(), {}, 0, answer(202))
    assert (status["phase"], status["outcome"]) == ("Succeeded", "HttpError")


def test_the_poll_limit_ends_in_timed_out() -> None:
    task = spec(**{"async": {"maxPolls": 2, "minPollIntervalSeconds": 0}})
    status = step(task, {}, 0, answer(202, location="/j"))
    status = step(task, status, 0, answer(202, location="/j"))
    status = step(task, status, 0, answer(202, location="/j"))
    assert (status["phase"], status["outcome"]) == ("Failed", "TimedOut")
    assert "2 polls" in status["message"]


def test_a_restart_resumes_the_recorded_poll_instead_of_sending_the_first_request() -> None:
    task = spec()
    status = step(task, {}, 0, answer(202, location="https://site.example/jobs/1", retry_after="5"))
    # A new operator reads only the status: it waits for the recorded time, then polls.
    assert engine.decide(task, status, CREATED, at(2)) == engine.Wait(at(5))
    decision = engine.decide(task, status, CREATED, at(5))
    assert isinstance(decision, engine.Send)
    assert (decision.kind, decision.url) == (engine.ActionKind.POLL, "https://site.example/jobs/1")


def test_the_deadline_bounds_the_attempt_timeout_and_ends_the_task() -> None:
    task = spec(deadlineSeconds=10, attemptTimeoutSeconds=30)
    decision = engine.decide(task, {}, CREATED, at(4))
    assert isinstance(decision, engine.Send) and decision.timeout == 6
    finished = engine.decide(task, {"phase": "Running", "attempts": 2}, CREATED, at(10))
    assert isinstance(finished, engine.Finish)
    assert finished.status["outcome"] == "TimedOut"


def test_a_retry_that_would_start_after_the_deadline_is_not_claimed() -> None:
    task = spec(deadlineSeconds=5, retry={"initialIntervalSeconds": 10})
    status = step(task, {}, 0, answer(503))
    assert (status["phase"], status["outcome"]) == ("Succeeded", "HttpError")


def test_a_later_error_never_overwrites_the_last_response() -> None:
    task = spec(retry={"maxAttempts": 2, "initialIntervalSeconds": 1})
    status = step(task, {}, 0, answer(503, body="busy"))
    status = step(task, status, 1, engine.NoAnswer("reset by peer"))
    assert status["outcome"] == "TransportError"
    assert status["response"]["statusCode"] == 503
    assert status["response"]["body"] == "busy"


def test_terminate_finishes_without_sending() -> None:
    decision = engine.decide(spec(terminate=True), {"phase": "Polling"}, CREATED, at(1))
    assert isinstance(decision, engine.Finish)
    assert (decision.status["phase"], decision.status["outcome"]) == ("Terminated", "Terminated")


def test_the_attempt_log_keeps_the_last_ten() -> None:
    task = spec(**{"async": {"maxPolls": 50, "minPollIntervalSeconds": 0}})
    status = step(task, {}, 0, answer(202, location="/j"))
    for _ in range(12):
        status = step(task, status, 0, answer(202, location="/j"))
    assert len(status["attemptLog"]) == engine.ATTEMPT_LOG_LIMIT
    assert status["attemptLog"][-1]["poll"] == 12


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Terminated"])
def test_finished_tasks_are_done(phase: str) -> None:
    assert engine.decide(spec(), {"phase": phase}, CREATED, at(1)) == engine.Done()


def test_result_summary_reports_duration_from_first_request_to_outcome() -> None:
    status = {
        "phase": "Succeeded",
        "outcome": "Succeeded",
        "attempts": 1,
        "response": {"statusCode": 200},
        "startTime": format_time(at(1)),
        "completionTime": format_time(at(1.25)),
    }
    assert engine.result_summary(status) == {
        "attempts": 1,
        "outcome": "Succeeded",
        "statusCode": 200,
        "durationMs": 250,
    }
