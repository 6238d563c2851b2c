"""The Durable-style status document of a Search (pure: a function of the Search object).

Durable Functions' status API answers ``{instanceId, runtimeStatus, input, output,
customStatus, createdTime, lastUpdatedTime}``; we keep those names (``id`` too) so clients of
the sample keep working. ``output`` stays small (per-provider summaries): the pages themselves
are served by the result routes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from durable_search.api.status import search_phase, search_status
from durable_search.api.timestamps import format_time, parse_time


def etag(search: Mapping[str, Any]) -> str:
    return f'"{search["metadata"]["resourceVersion"]}"'


def last_updated(search: Mapping[str, Any]) -> str:
    status = search_status(search)
    candidates = [status.get("completionTime"), status.get("startTime")]
    candidates += [c.get("lastTransitionTime") for c in status.get("conditions") or ()]
    times = [t for t in (parse_time(c) for c in candidates if c) if t is not None]
    created = search["metadata"]["creationTimestamp"]
    return format_time(max(times)) if times else str(created)


def status_document(search: Mapping[str, Any], urls: Mapping[str, str]) -> dict[str, Any]:
    """The status JSON for ``GET /api/searches/{id}`` (``urls`` are the absolute route URLs)."""
    spec = search.get("spec") or {}
    status = search_status(search)
    phase = search_phase(status)
    results = status.get("results") or []
    summary = {
        "progress": status.get("progress", ""),
        "duration": status.get("duration"),
        "results": results,
        "conditions": status.get("conditions") or [],
    }
    document: dict[str, Any] = {
        "id": search["metadata"]["name"],
        "instanceId": search["metadata"]["name"],
        "name": "Search",
        "runtimeStatus": phase.value,
        "input": {
            "query": spec.get("query"),
            "providers": [p["name"] for p in spec.get("providers") or ()]
            + list(spec.get("providerRefs") or ()),
        },
        "customStatus": summary,
        "output": summary if phase.finished else None,
        "createdTime": search["metadata"]["creationTimestamp"],
        "lastUpdatedTime": last_updated(search),
    }
    document.update(urls)
    return document
