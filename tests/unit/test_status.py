"""The durable contract's readers (``api.status``): how far an object has got, and its status
read as its shape, before and after the operator wrote one."""

from __future__ import annotations

from typing import Any

import pytest

from durable_search.api.constants import SearchPhase, TaskPhase
from durable_search.api.status import (
    search_finished,
    search_phase,
    search_status,
    status_of,
    task_phase,
    task_status,
)


@pytest.mark.parametrize("status", [{}, {"phase": None}, {"phase": ""}])
def test_an_object_without_a_phase_yet_is_pending(status: dict[str, Any]) -> None:
    assert task_phase(status) is TaskPhase.PENDING
    assert search_phase(status) is SearchPhase.PENDING
    assert not search_finished(status)


@pytest.mark.parametrize(
    ("phase", "finished"),
    [
        (TaskPhase.PENDING, False),
        (TaskPhase.RUNNING, False),
        (TaskPhase.POLLING, False),
        (TaskPhase.SUCCEEDED, True),
        (TaskPhase.FAILED, True),
        (TaskPhase.TERMINATED, True),
    ],
)
def test_a_task_phase_is_read_from_its_written_name(phase: TaskPhase, finished: bool) -> None:
    assert task_phase({"phase": phase.value}) is phase
    assert task_phase({"phase": phase.value}).finished is finished


@pytest.mark.parametrize(
    ("phase", "finished"),
    [
        (SearchPhase.PENDING, False),
        (SearchPhase.RUNNING, False),
        (SearchPhase.COMPLETED, True),
        (SearchPhase.FAILED, True),
        (SearchPhase.TERMINATED, True),
    ],
)
def test_a_search_is_finished_once_completed_failed_or_terminated(
    phase: SearchPhase, finished: bool
) -> None:
    assert search_phase({"phase": phase.value}) is phase
    assert search_finished({"phase": phase.value}) is finished


def test_a_phase_no_version_of_the_operator_writes_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="Polling"):
        search_phase({"phase": "Polling"})  # a task's phase, never a Search's
    with pytest.raises(ValueError, match="Completed"):
        task_phase({"phase": "Completed"})  # a Search's phase, never a task's


@pytest.mark.parametrize("body", [{"metadata": {"name": "x"}}, {"status": None}, {"status": {}}])
def test_an_object_the_operator_has_not_written_to_has_an_empty_status(
    body: dict[str, Any],
) -> None:
    assert status_of(body) == {}
    assert search_status(body) == {}
    assert task_status(body) == {}
    assert search_phase(search_status(body)) is SearchPhase.PENDING


def test_the_typed_readers_give_the_status_as_written() -> None:
    search = {
        "status": {
            "phase": "Completed",
            "results": [{"name": "bing", "httpTaskName": "s-bing", "outcome": "Succeeded"}],
        }
    }
    task = {"status": {"phase": "Succeeded", "response": {"statusCode": 200, "body": "<p/>"}}}
    assert search_status(search)["results"][0]["httpTaskName"] == "s-bing"
    assert task_status(task)["response"]["statusCode"] == 200
