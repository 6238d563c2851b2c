"""Fan-in: a Search's status from its plan and its children.

A result that has an outcome is a recorded fact and is never rewritten, so a fan-in computed
from an incomplete view of the children (a cache still filling after a restart) can only add
outcomes, never lose one: progress never goes backwards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from durable_search.api.constants import (
    CONDITION_SUCCEEDED,
    Outcome,
    Reason,
    SearchPhase,
)
from durable_search.api.status import Condition, SearchResult, SearchStatus
from durable_search.api.timestamps import format_duration, format_time, parse_time
from durable_search.engine.bounds import MESSAGE_MAX, cut
from durable_search.engine.conditions import set_condition
from durable_search.engine.httptask import result_summary

Status = SearchStatus


@dataclass(frozen=True)
class Transition:
    """A phase change a user cares about, for an Event once the status write has landed."""

    reason: Reason
    message: str
    warning: bool = False


def progress_of(results: Sequence[Mapping[str, Any]]) -> str:
    done = sum(1 for r in results if r.get("outcome"))
    return f"{done}/{len(results)}"


def _copy(status: Mapping[str, Any]) -> Status:
    return cast(Status, dict(status))


def _with_results(status: Mapping[str, Any], results: list[SearchResult]) -> Status:
    new = _copy(status)
    new["results"] = results
    new["progress"] = progress_of(results)
    return new


def _mark(
    status: Mapping[str, Any],
    which: Callable[[SearchResult], bool],
    outcome: Outcome,
    message: Callable[[SearchResult], str],
) -> Status:
    """Give every unfinished result ``which`` selects ``outcome`` and its ``message``."""
    results: list[SearchResult] = []
    for result in cast(list[SearchResult], status.get("results") or []):
        marked = SearchResult(**result)
        if not marked.get("outcome") and which(marked):
            marked["outcome"] = outcome.value
            marked["message"] = cut(message(marked), MESSAGE_MAX)
        results.append(marked)
    return _with_results(status, results)


def start(
    status: Mapping[str, Any],
    results: list[SearchResult],
    generation: int,
    now: dt.datetime,
) -> Status:
    """The first status of a Search: Running with its plan, or Failed when it has no provider."""
    new = _with_results(status, results)
    new["startTime"] = format_time(now)
    new["observedGeneration"] = generation
    if not results:
        message = (
            "no providers: give spec.providers or spec.providerRefs, or create a SearchProvider"
        )
        return _finish(new, SearchPhase.FAILED, Reason.NO_PROVIDERS, message, now)
    new["phase"] = SearchPhase.RUNNING.value
    new["conditions"] = _running_condition(status, results, now)
    return _complete_if_done(new, now)


def fan_in(
    status: Mapping[str, Any],
    children: Mapping[str, Mapping[str, Any]],
    generation: int,
    now: dt.datetime,
    foreign: frozenset[str] = frozenset(),
) -> Status:
    """Fold the children's statuses (by HttpTask name) into a running Search's results.

    ``children`` holds only the Search's own children; ``foreign`` names planned children whose
    name is taken by an object the Search does not own: those providers end Invalid.
    """
    results: list[SearchResult] = []
    for result in cast(list[SearchResult], status.get("results") or []):
        merged = SearchResult(**result)
        child = children.get(result.get("httpTaskName") or "")
        # Only outcomes are folded in: copying a running child's attempts would cost a write
        # per retry, and the child itself shows them.
        if not merged.get("outcome") and child is not None and child.get("outcome"):
            merged.update(result_summary(child))
        results.append(merged)
    new = _mark(
        _with_results(status, results),
        lambda r: r.get("httpTaskName", "") in foreign,
        Outcome.INVALID,
        lambda r: (
            f"{Reason.NAME_CONFLICT}: HttpTask {r.get('httpTaskName')!r} exists and is "
            "not this Search's own (its owner's uid differs)"
        ),
    )
    new["observedGeneration"] = generation
    new["conditions"] = _running_condition(status, new.get("results") or [], now)
    return _complete_if_done(new, now)


def _running_condition(
    status: Mapping[str, Any], results: Sequence[Mapping[str, Any]], now: dt.datetime
) -> list[Condition]:
    # One wording for the start and for every fold, so a fold that changes nothing writes nothing.
    finished = sum(1 for r in results if r.get("outcome"))
    return set_condition(
        status.get("conditions"),
        type=CONDITION_SUCCEEDED,
        status="Unknown",
        reason=Reason.RUNNING,
        message=f"{finished} of {len(results)} providers finished",
        now=now,
    )


def terminate(status: Mapping[str, Any], now: dt.datetime, message: str) -> Status:
    """Stop the Search: unfinished providers are recorded as Terminated."""
    return _close_pending(
        status, Outcome.TERMINATED, SearchPhase.TERMINATED, Reason.TERMINATED, message, now
    )


def expire(status: Mapping[str, Any], deadline_seconds: float, now: dt.datetime) -> Status:
    """The Search's own deadline passed: unfinished providers time out, the Search completes."""
    message = f"deadline of {deadline_seconds:g}s exceeded"
    return _close_pending(
        status, Outcome.TIMED_OUT, SearchPhase.COMPLETED, Reason.DEADLINE_EXCEEDED, message, now
    )


def providers_vanished(status: Mapping[str, Any], names: Collection[str]) -> Status:
    """Providers deleted after the plan named them but before their child was created."""
    return _mark(
        status,
        lambda r: r.get("name") in names,
        Outcome.PROVIDER_NOT_FOUND,
        lambda r: f'SearchProvider "{r.get("name")}" was deleted before its request was made',
    )


def children_refused(status: Mapping[str, Any], refused: Mapping[str, str]) -> Status:
    """Children the API server refused to create (a quota, a policy): those providers are
    Invalid with its reason, instead of being created again and again."""
    return _mark(
        status,
        lambda r: r.get("httpTaskName") in refused,
        Outcome.INVALID,
        lambda r: (
            f"{Reason.INVALID_REQUEST}: the API server refused the HttpTask: "
            f"{refused[r.get('httpTaskName', '')]}"
        ),
    )


def internal_failure(status: Mapping[str, Any], message: str, now: dt.datetime) -> Status:
    """Give up on a Search our own code keeps failing on: Failed, reason Internal."""
    return _finish(
        _copy(status), SearchPhase.FAILED, Reason.INTERNAL, f"internal error: {message}", now
    )


def transition(old: Mapping[str, Any], new: Mapping[str, Any]) -> Transition | None:
    """The Event to emit for a status change, if the phase changed in a way users care about."""
    before, after = old.get("phase"), new.get("phase")
    if before == after:
        return None
    condition: Mapping[str, Any] = next(
        (c for c in new.get("conditions", ()) if c["type"] == CONDITION_SUCCEEDED), {}
    )
    message = str(condition.get("message", ""))
    if after == SearchPhase.RUNNING:
        return None  # visible in status; an Event per start would only cost a write
    if after == SearchPhase.COMPLETED:
        reason = Reason(condition.get("reason", Reason.COMPLETED))
        return Transition(reason, f"{message} ({new.get('duration', '')})".strip())
    if after == SearchPhase.FAILED:
        return Transition(Reason(condition.get("reason", Reason.NO_PROVIDERS)), message, True)
    if after == SearchPhase.TERMINATED:
        return Transition(Reason.TERMINATED, message, True)
    return None


def _close_pending(
    status: Mapping[str, Any],
    outcome: Outcome,
    phase: SearchPhase,
    reason: Reason,
    message: str,
    now: dt.datetime,
) -> Status:
    closed = _mark(status, lambda _: True, outcome, lambda _: message)
    return _finish(closed, phase, reason, message, now)


def _complete_if_done(new: Status, now: dt.datetime) -> Status:
    results = new.get("results") or []
    if any(not r.get("outcome") for r in results):
        return new
    succeeded = sum(1 for r in results if r.get("outcome") == Outcome.SUCCEEDED)
    message = f"{succeeded} of {len(results)} providers returned results"
    return _finish(new, SearchPhase.COMPLETED, Reason.COMPLETED, message, now)


def _finish(
    new: Status, phase: SearchPhase, reason: Reason, message: str, now: dt.datetime
) -> Status:
    new["phase"] = phase.value
    new["completionTime"] = format_time(now)
    started = parse_time(new.get("startTime")) or now
    new["duration"] = format_duration((now - started).total_seconds())
    new["conditions"] = set_condition(
        new.get("conditions"),
        type=CONDITION_SUCCEEDED,
        status="True" if phase is SearchPhase.COMPLETED else "False",
        reason=reason,
        message=message,
        now=now,
    )
    return new
