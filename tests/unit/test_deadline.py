"""Deadlines: a Search's from its start, an HttpTask's from its creation, a child's what is left."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from durable_search.api.models import HttpTaskSpec, SearchSpec
from durable_search.engine.deadline import child_deadline_seconds, search_deadline, task_deadline

STARTED = dt.datetime(2026, 11, 26, 8, 0, 0, tzinfo=dt.UTC)
SEARCH = SearchSpec(query="q", deadline_seconds=60)


def after(seconds: float) -> dt.datetime:
    return STARTED + dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("status", [{}, {"startTime": None}, {"startTime": ""}])
def test_a_search_not_started_has_no_deadline(status: dict[str, Any]) -> None:
    assert search_deadline(SEARCH, status) is None


def test_a_searchs_deadline_is_its_start_time_plus_its_deadline_seconds() -> None:
    status = {"startTime": "2026-11-26T08:00:00.000Z"}
    assert search_deadline(SEARCH, status) == after(60)
    assert search_deadline(SearchSpec(query="q", deadline_seconds=1.5), status) == after(1.5)


def test_an_httptasks_deadline_runs_from_its_creation() -> None:
    spec = HttpTaskSpec.parse({"request": {"url": "http://a.example/"}, "deadlineSeconds": 10})
    assert task_deadline(spec, STARTED) == after(10)


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (0, 60),  # created as the Search starts: all of it
        (20, 40),
        (59, 1),
    ],
)
def test_a_child_gets_what_is_left_of_the_searchs_deadline(elapsed: float, expected: int) -> None:
    assert child_deadline_seconds(SEARCH, STARTED, after(elapsed)) == expected


@pytest.mark.parametrize(("elapsed", "expected"), [(20.5, 40), (0.001, 60), (58.2, 2)])
def test_a_childs_deadline_rounds_what_is_left_up_to_whole_seconds(
    elapsed: float, expected: int
) -> None:
    # Never less than what is left of the Search's, never a whole second more.
    assert child_deadline_seconds(SEARCH, STARTED, after(elapsed)) == expected


@pytest.mark.parametrize("elapsed", [59.5, 60, 61, 3600])
def test_a_child_created_at_or_past_the_searchs_deadline_still_gets_one_second(
    elapsed: float,
) -> None:
    assert child_deadline_seconds(SEARCH, STARTED, after(elapsed)) == 1
