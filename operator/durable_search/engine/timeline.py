"""A Search's timeline (pure): what each exchange did and when, for the page to draw.

Every HttpTask records its last 10 exchanges in ``status.attemptLog`` (``{attempt, poll?,
startTime, durationMs, statusCode | error}``, written by ``engine.httptask``). Between two
entries the task waited: for a retry's backoff or ``Retry-After`` before an attempt, for the
poll interval (or ``Retry-After``) before a poll. An unfinished task also names the action it
has claimed and when it is due (``nextAttemptTime``/``nextPollTime``): a wait until then, and
past it, the exchange in flight. All times are offsets in milliseconds from the Search's
start, so lanes line up; the document is bounded by the Search's 16 providers, the watcher,
and 10 entries each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from durable_search.api.constants import TaskPhase
from durable_search.api.status import search_phase
from durable_search.api.timestamps import parse_time

Json = dict[str, Any]
_UNFINISHED = frozenset(p.value for p in TaskPhase if not p.finished)


def _offset(moment: dt.datetime, origin: dt.datetime) -> int:
    return max(0, round((moment - origin).total_seconds() * 1000))


def _entry_segment(entry: Mapping[str, Any], origin: dt.datetime) -> Json | None:
    started = parse_time(entry.get("startTime"))
    if started is None:
        return None
    start = _offset(started, origin)
    is_poll = "poll" in entry
    segment: Json = {
        "kind": "poll" if is_poll else "attempt",
        "number": int((entry.get("poll") if is_poll else entry.get("attempt")) or 1),
        "startMs": start,
        "endMs": start + max(0, int(entry.get("durationMs") or 0)),
    }
    if entry.get("statusCode") is not None:
        segment["statusCode"] = int(entry["statusCode"])
    if entry.get("error"):
        segment["error"] = str(entry["error"])[:200]
    return segment


def lane(
    name: str, role: str, task: Mapping[str, Any] | None, origin: dt.datetime, now: dt.datetime
) -> Json:
    """One task's segments in order: exchanges, the waits between them, and what is due."""
    status = (task or {}).get("status") or {}
    phase = str(status.get("phase") or TaskPhase.PENDING.value)
    segments: list[Json] = []
    for entry in status.get("attemptLog") or ():
        segment = _entry_segment(entry, origin)
        if segment is None:
            continue
        if segments and segment["startMs"] > segments[-1]["endMs"]:
            segments.append(
                {
                    "kind": "wait",
                    "for": segment["kind"],
                    "startMs": segments[-1]["endMs"],
                    "endMs": segment["startMs"],
                }
            )
        segments.append(segment)
    finished = phase not in _UNFINISHED
    if task is not None and not finished:
        segments.extend(_pending(task, status, segments, origin, now))
    result: Json = {
        "name": name,
        "role": role,
        "phase": phase,
        "outcome": status.get("outcome"),
        "attempts": int(status.get("attempts") or 0),
        "polls": int(status.get("pollCount") or 0),
        "segments": segments,
    }
    # attemptLog keeps the last 10: say so when earlier exchanges are not drawn.
    logged = len(status.get("attemptLog") or ())
    result["truncated"] = logged < result["attempts"] + result["polls"]
    return result


def _pending(
    task: Mapping[str, Any],
    status: Mapping[str, Any],
    segments: list[Json],
    origin: dt.datetime,
    now: dt.datetime,
) -> list[Json]:
    """The claimed action of an unfinished task: waiting until it is due, then in flight."""
    kind = "poll" if status.get("nextPollTime") else "attempt"
    due = parse_time(status.get("nextPollTime") or status.get("nextAttemptTime"))
    if segments:
        last_end = int(segments[-1]["endMs"])
    else:
        begun = parse_time(status.get("startTime")) or parse_time(
            (task.get("metadata") or {}).get("creationTimestamp")
        )
        last_end = _offset(begun or now, origin)
    now_ms = _offset(now, origin)
    due_ms = _offset(due, origin) if due is not None else last_end
    pending: list[Json] = []
    if due_ms > last_end:
        pending.append(
            {
                "kind": "wait",
                "for": kind,
                "startMs": last_end,
                "endMs": due_ms,  # past now while still waiting: the page draws it ahead
            }
        )
    if now_ms >= due_ms:
        pending.append(
            {"kind": "inflight", "for": kind, "startMs": max(due_ms, last_end), "endMs": now_ms}
        )
    return pending


def timeline(
    search: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]],
    watcher: Mapping[str, Any] | None,
    now: dt.datetime,
) -> Json:
    """The timeline of ``search``: ``tasks`` are its children by HttpTask name."""
    status = search.get("status") or {}
    created = parse_time(search["metadata"].get("creationTimestamp")) or now
    origin = parse_time(status.get("startTime")) or created
    origin = min(origin, created)
    finished_at = parse_time(status.get("completionTime"))
    phase = search_phase(status)
    lanes = [
        lane(
            str(result.get("name")),
            "provider",
            tasks.get(str(result.get("httpTaskName") or "")),
            origin,
            now,
        )
        for result in status.get("results") or ()
    ]
    if watcher is not None:
        lanes.append(lane("watcher", "watcher", watcher, origin, now))
    end = _offset(finished_at if finished_at and phase.finished else now, origin)
    end = max([end, *(int(s["endMs"]) for ln in lanes for s in ln["segments"])])
    return {
        "id": search["metadata"]["name"],
        "runtimeStatus": phase.value,
        "startTime": origin.isoformat().replace("+00:00", "Z"),
        "endMs": end,
        "lanes": lanes,
    }


def _seconds(ms: int) -> str:
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def describe_lane(lane: Mapping[str, Any]) -> str:
    """One lane in words, for the terminal: ``+0.1 s attempt 1 → 503 (40 ms), wait 1.0 s, ...``."""
    parts: list[str] = []
    for segment in lane["segments"]:
        length = _seconds(int(segment["endMs"]) - int(segment["startMs"]))
        if segment["kind"] == "wait":
            parts.append(f"wait {length}")
        elif segment["kind"] == "inflight":
            parts.append(f"{segment['for']} in flight {length}")
        else:
            answer = segment.get("statusCode") or segment.get("error") or "no answer"
            at = _seconds(int(segment["startMs"]))
            parts.append(f"+{at} {segment['kind']} {segment['number']} → {answer} ({length})")
    if lane.get("truncated"):
        parts.insert(0, "…")
    return ", ".join(parts) if parts else "nothing yet"
