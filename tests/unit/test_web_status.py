"""The Durable-style status document (``durable_search_web.status``) in each phase."""

from __future__ import annotations

from typing import Any

import pytest

from durable_search_web.status import status_document

CREATED = "2026-01-31T12:00:00Z"
URLS = {
    "statusQueryGetUri": "http://web/api/searches/s-1",
    "resultGetUri": "http://web/api/searches/s-1/result",
    "terminatePostUri": "http://web/api/searches/s-1/terminate",
    "purgeHistoryDeleteUri": "http://web/api/searches/s-1",
}
RESULTS = [
    {"name": "wiki", "httpTaskName": "s-1-wiki", "outcome": "Succeeded", "statusCode": 200},
    {"name": "bing", "httpTaskName": "s-1-bing", "outcome": "TimedOut"},
]


def search(status: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "s-1", "creationTimestamp": CREATED, "resourceVersion": "7"},
        "spec": {
            "query": "durable functions",
            "providers": [{"name": "wiki", "url": "https://w.example/?q={query}"}],
            "providerRefs": ["bing"],
        },
    }
    if status is not None:
        body["status"] = status
    return body


def test_a_pending_search_has_its_input_no_output_and_its_creation_as_last_update() -> None:
    document = status_document(search(), URLS)
    assert document == {
        "id": "s-1",
        "instanceId": "s-1",
        "name": "Search",
        "runtimeStatus": "Pending",
        "input": {"query": "durable functions", "providers": ["wiki", "bing"]},
        "customStatus": {"progress": "", "duration": None, "results": [], "conditions": []},
        "output": None,
        "createdTime": CREATED,
        "lastUpdatedTime": CREATED,
        **URLS,
    }


def test_a_running_search_shows_its_progress_but_no_output_yet() -> None:
    status = {
        "phase": "Running",
        "progress": "1/2",
        "startTime": "2026-01-31T12:00:01.250Z",
        "results": RESULTS[:1],
        "conditions": [
            {"type": "Running", "status": "True", "lastTransitionTime": "2026-01-31T12:00:02Z"}
        ],
    }
    document = status_document(search(status), URLS)
    assert document["runtimeStatus"] == "Running"
    assert document["output"] is None
    assert document["customStatus"] == {
        "progress": "1/2",
        "duration": None,
        "results": RESULTS[:1],
        "conditions": status["conditions"],
    }
    assert document["createdTime"] == CREATED
    assert document["lastUpdatedTime"] == "2026-01-31T12:00:02.000Z"  # the latest time written


@pytest.mark.parametrize("phase", ["Completed", "Failed", "Terminated"])
def test_a_finished_search_outputs_its_summary_and_was_last_updated_when_it_ended(
    phase: str,
) -> None:
    status = {
        "phase": phase,
        "progress": "2/2",
        "duration": "4.2s",
        "startTime": "2026-01-31T12:00:01Z",
        "completionTime": "2026-01-31T12:00:05.200Z",
        "results": RESULTS,
        "conditions": [
            {"type": phase, "status": "True", "lastTransitionTime": "2026-01-31T12:00:05Z"}
        ],
    }
    document = status_document(search(status), URLS)
    assert document["runtimeStatus"] == phase
    assert document["output"] == {
        "progress": "2/2",
        "duration": "4.2s",
        "results": RESULTS,
        "conditions": status["conditions"],
    }
    assert document["customStatus"] == document["output"]
    assert document["createdTime"] == CREATED
    assert document["lastUpdatedTime"] == "2026-01-31T12:00:05.200Z"
