"""Fan-in: a Search's status from its plan and its children, and the joined output page.

A result that has an outcome is a recorded fact and is never rewritten, so a fan-in computed
from an incomplete view of the children (a cache still filling after a restart) can only add
outcomes, never lose one: progress never goes backwards.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from durable_search.api.constants import (
    CONDITION_SUCCEEDED,
    NO_RESULTS_HTML,
    RESULT_SEPARATOR,
    Outcome,
    Reason,
    SearchPhase,
)
from durable_search.api.timestamps import format_duration, format_time, parse_time
from durable_search.engine.bounds import MESSAGE_MAX, cut
from durable_search.engine.conditions import set_condition
from durable_search.engine.httptask import result_summary

Status = dict[str, Any]


@dataclass(frozen=True)
class Transition:
    """A phase change a user cares about, for an Event once the status write has landed."""

    reason: Reason
    message: str
    warning: bool = False


def progress_of(results: Sequence[Mapping[str, Any]]) -> str:
    done = sum(1 for r in results if r.get("outcome"))
    return f"{done}/{len(results)}"


def start(
    status: Mapping[str, Any],
    results: list[dict[str, Any]],
    generation: int,
    now: dt.datetime,
) -> Status:
    """The first status of a Search: Running with its plan, or Failed when it has no provider."""
    new: Status = dict(status)
    new.update(
        startTime=format_time(now),
        observedGeneration=generation,
        results=results,
        progress=progress_of(results),
    )
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
    results = []
    for result in status.get("results") or ():
        merged = dict(result)
        name = result.get("httpTaskName") or ""
        child = children.get(name)
        # Only outcomes are folded in: copying a running child's attempts would cost a write
        # per retry, and the child itself shows them.
        if not merged.get("outcome") and child is not None and child.get("outcome"):
            merged.update(result_summary(child))
        elif not merged.get("outcome") and name in foreign:
            merged.update(
                outcome=Outcome.INVALID.value,
                message=f"{Reason.NAME_CONFLICT}: HttpTask {name!r} exists and is not this "
                "Search's own (its owner's uid differs)",
            )
        results.append(merged)
    new: Status = dict(status)
    new.update(results=results, progress=progress_of(results), observedGeneration=generation)
    new["conditions"] = _running_condition(status, results, now)
    return _complete_if_done(new, now)


def _running_condition(
    status: Mapping[str, Any], results: Sequence[Mapping[str, Any]], now: dt.datetime
) -> list[dict[str, Any]]:
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
    results = [
        {
            **r,
            "outcome": Outcome.PROVIDER_NOT_FOUND.value,
            "message": f'SearchProvider "{r["name"]}" was deleted before its request was made',
        }
        if r["name"] in names and not r.get("outcome")
        else r
        for r in status.get("results") or ()
    ]
    return {**status, "results": results, "progress": progress_of(results)}


def children_refused(status: Mapping[str, Any], refused: Mapping[str, str]) -> Status:
    """Children the API server refused to create (a quota, a policy): those providers are
    Invalid with its reason, instead of being created again and again."""
    results = [
        {
            **r,
            "outcome": Outcome.INVALID.value,
            "message": cut(
                f"{Reason.INVALID_REQUEST}: the API server refused the HttpTask: "
                f"{refused[r['httpTaskName']]}",
                MESSAGE_MAX,
            ),
        }
        if r.get("httpTaskName") in refused and not r.get("outcome")
        else r
        for r in status.get("results") or ()
    ]
    return {**status, "results": results, "progress": progress_of(results)}


def internal_failure(status: Mapping[str, Any], message: str, now: dt.datetime) -> Status:
    """Give up on a Search our own code keeps failing on: Failed, reason Internal."""
    return _finish(
        dict(status), SearchPhase.FAILED, Reason.INTERNAL, f"internal error: {message}", now
    )


def deadline_of(status: Mapping[str, Any], deadline_seconds: float) -> dt.datetime | None:
    started = parse_time(status.get("startTime"))
    return started + dt.timedelta(seconds=deadline_seconds) if started else None


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


def output_html(results: Sequence[Mapping[str, Any]], bodies: Mapping[str, str | None]) -> str:
    """The sample's GetResult: each provider's page, or "No Results", joined by ``<hr/>``."""
    return RESULT_SEPARATOR.join(
        provider_html(r, bodies.get(r.get("httpTaskName") or "")) for r in results
    )


def provider_html(result: Mapping[str, Any], body: str | None) -> str:
    if result.get("outcome") == Outcome.SUCCEEDED and body is not None:
        return body
    return NO_RESULTS_HTML


def text_body(child_status: Mapping[str, Any]) -> str | None:
    """A child's stored body when it is text (binary bodies are not pages).

    Markup is often stored as base64 (``http.body``: cheaper than JSON-escaping every ``<``),
    so a base64 body that decodes to UTF-8 text is text too.
    """
    response = child_status.get("response") or {}
    body = response.get("body")
    if body is None or response.get("contentEncoding"):
        return None
    if response.get("encoding", "utf-8") == "utf-8":
        return str(body)
    try:
        raw = base64.b64decode(str(body), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return None if "\x00" in text else text


def _close_pending(
    status: Mapping[str, Any],
    outcome: Outcome,
    phase: SearchPhase,
    reason: Reason,
    message: str,
    now: dt.datetime,
) -> Status:
    results = []
    for result in status.get("results") or ():
        closed = dict(result)
        if not closed.get("outcome"):
            closed.update(outcome=outcome.value, message=message)
        results.append(closed)
    new: Status = dict(status)
    new.update(results=results, progress=progress_of(results))
    return _finish(new, phase, reason, message, now)


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


def is_finished(status: Mapping[str, Any]) -> bool:
    phase = status.get("phase")
    return phase is not None and SearchPhase(phase).finished
