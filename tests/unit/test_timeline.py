"""The timeline the page draws, from attemptLog entries as engine.httptask writes them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from durable_search.engine.timeline import describe_lane, timeline

pytestmark = pytest.mark.unit
START = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def at(ms: int) -> str:
    moment = START + dt.timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def task(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "t", "creationTimestamp": at(0)}, "status": status}


SEARCH = {
    "metadata": {"name": "s-1", "creationTimestamp": at(0)},
    "status": {
        "phase": "Running",
        "startTime": at(0),
        "results": [
            {"name": "flaky", "httpTaskName": "s-1-flaky"},
            {"name": "async", "httpTaskName": "s-1-async"},
        ],
    },
}


def test_retries_and_polls_are_drawn_in_order_with_the_waits_between() -> None:
    flaky = task(
        {
            "phase": "Succeeded",
            "outcome": "Succeeded",
            "attempts": 2,
            "attemptLog": [
                {"attempt": 1, "startTime": at(10), "durationMs": 40, "statusCode": 503},
                {"attempt": 2, "startTime": at(1050), "durationMs": 30, "statusCode": 200},
            ],
        }
    )
    polling = task(
        {
            "phase": "Polling",
            "attempts": 1,
            "pollCount": 1,
            "nextPollTime": at(3000),
            "attemptLog": [
                {"attempt": 1, "startTime": at(20), "durationMs": 10, "statusCode": 202},
                {
                    "attempt": 1,
                    "poll": 1,
                    "startTime": at(1030),
                    "durationMs": 5,
                    "statusCode": 202,
                },
            ],
        }
    )
    document = timeline(
        SEARCH, {"s-1-flaky": flaky, "s-1-async": polling}, None, START + dt.timedelta(seconds=2)
    )
    first, second = document["lanes"]
    assert [(s["kind"], s["startMs"], s["endMs"]) for s in first["segments"]] == [
        ("attempt", 10, 50),
        ("wait", 50, 1050),
        ("attempt", 1050, 1080),
    ]
    assert first["segments"][0]["statusCode"] == 503
    assert [(s["kind"], s.get("for"), s["startMs"], s["endMs"]) for s in second["segments"]] == [
        ("attempt", None, 20, 30),
        ("wait", "poll", 30, 1030),
        ("poll", None, 1030, 1035),
        ("wait", "poll", 1035, 3000),  # due after now: still waiting
    ]
    assert document["endMs"] == 3000
    assert not first["truncated"]


def test_an_exchange_past_its_due_time_is_in_flight_and_a_lost_log_is_flagged() -> None:
    running = task({"phase": "Running", "attempts": 12, "nextAttemptTime": at(500)})
    watcher = task(
        {
            "phase": "Polling",
            "attempts": 1,
            "pollCount": 3,
            "attemptLog": [
                {"attempt": 1, "startTime": at(5), "durationMs": 30000, "statusCode": 202}
            ],
        }
    )
    document = timeline(SEARCH, {"s-1-flaky": running}, watcher, START + dt.timedelta(seconds=1))
    flaky, missing, watching = document["lanes"]
    assert [(s["kind"], s["startMs"], s["endMs"]) for s in flaky["segments"]] == [
        ("wait", 0, 500),
        ("inflight", 500, 1000),
    ]
    assert flaky["truncated"]
    assert missing["segments"] == [] and missing["phase"] == "Pending"
    assert watching["role"] == "watcher" and watching["segments"][0]["endMs"] == 30005
    assert watching["truncated"]  # 1 logged of 4 exchanges


def test_a_lane_reads_as_words_in_the_terminal() -> None:
    flaky = task(
        {
            "phase": "Succeeded",
            "attempts": 2,
            "attemptLog": [
                {"attempt": 1, "startTime": at(10), "durationMs": 40, "statusCode": 503},
                {"attempt": 2, "startTime": at(1050), "durationMs": 30, "statusCode": 200},
            ],
        }
    )
    document = timeline(SEARCH, {"s-1-flaky": flaky}, None, START)
    assert describe_lane(document["lanes"][0]) == (
        "+10 ms attempt 1 → 503 (40 ms), wait 1.0 s, +1.1 s attempt 2 → 200 (30 ms)"
    )
    assert describe_lane(document["lanes"][1]) == "nothing yet"
