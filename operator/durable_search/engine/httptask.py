"""The HttpTask state machine: what to do next, and the status each exchange leads to.

Every non-terminal status names exactly one *claimed* action and when it is due:

- no status yet: attempt 1, due at once (creating the object claimed it);
- ``phase: Running``: attempt ``attempts``, due at ``nextAttemptTime``;
- ``phase: Polling``: poll ``pollCount`` of ``location``, due at ``nextPollTime``.

The status that records an exchange's outcome also claims the next action, so a request is
only ever sent for an action a status write has already claimed (durability invariant 1), and
an operator that restarts resends at most the one action that was claimed when it died
(invariant 2), at the time recorded (invariant 3). ``response`` is replaced only by a newer HTTP
answer, never cleared by an error (invariant 4).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urljoin

from durable_search.api.constants import CONDITION_SUCCEEDED, Outcome, TaskPhase
from durable_search.api.models import HttpTaskSpec
from durable_search.api.timestamps import format_time, parse_time
from durable_search.engine.conditions import set_condition
from durable_search.engine.retry_after import parse_retry_after
from durable_search.engine.schedule import poll_delay, retry_delay

ATTEMPT_LOG_LIMIT = 10
Status = dict[str, Any]


class ActionKind(StrEnum):
    ATTEMPT = "Attempt"
    POLL = "Poll"


# -- decisions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    """The task has finished; nothing is left to do."""


@dataclass(frozen=True)
class Wait:
    until: dt.datetime


@dataclass(frozen=True)
class Send:
    kind: ActionKind
    number: int
    url: str
    timeout: float


@dataclass(frozen=True)
class Finish:
    """Write this final status without sending anything (terminate, deadline)."""

    status: Status


Decision = Done | Wait | Send | Finish


# -- exchange results (what the executor reports) ------------------------------------------


@dataclass(frozen=True)
class StoredBody:
    text: str
    encoding: str  # "utf-8" or "base64"
    size: int  # bytes the server sent (or as many as were read before the cap)
    truncated: bool


@dataclass(frozen=True)
class HttpAnswer:
    status_code: int
    reason: str
    headers: Mapping[str, str]  # lower-case names, only those the policy keeps
    body: StoredBody
    location: str | None = None
    retry_after: str | None = None


@dataclass(frozen=True)
class TransportFailure:
    message: str
    timed_out: bool = False
    blocked: bool = False


@dataclass(frozen=True)
class Exchange:
    result: HttpAnswer | TransportFailure
    url: str  # the URL that gave the answer (after redirects)
    started: dt.datetime
    duration_ms: int


# -- reading the status ---------------------------------------------------------------------


def deadline_of(spec: HttpTaskSpec, created: dt.datetime) -> dt.datetime:
    return created + dt.timedelta(seconds=spec.deadline_seconds)


def phase_of(status: Mapping[str, Any]) -> TaskPhase:
    return TaskPhase(status.get("phase") or TaskPhase.PENDING)


def decide(
    spec: HttpTaskSpec, status: Mapping[str, Any], created: dt.datetime, now: dt.datetime
) -> Decision:
    """The next step for a task, from its spec and status alone (level-triggered)."""
    phase = phase_of(status)
    if phase.finished:
        return Done()
    if spec.terminate:
        return Finish(
            _finished(
                status,
                spec,
                phase=TaskPhase.TERMINATED,
                outcome=Outcome.TERMINATED,
                message="terminated on request",
                now=now,
            )
        )
    deadline = deadline_of(spec, created)
    if now >= deadline:
        return Finish(
            _finished(
                status,
                spec,
                phase=TaskPhase.FAILED,
                outcome=Outcome.TIMED_OUT,
                message=f"deadline of {spec.deadline_seconds:g}s exceeded",
                now=now,
            )
        )
    if phase is TaskPhase.POLLING:
        kind, number = ActionKind.POLL, int(status.get("pollCount") or 1)
        url = str(status["location"])
        due = parse_time(status.get("nextPollTime")) or now
    else:
        kind, number = ActionKind.ATTEMPT, max(int(status.get("attempts") or 1), 1)
        url = spec.request.url
        due = parse_time(status.get("nextAttemptTime")) or now
    if due > now:
        return Wait(min(due, deadline))
    remaining = (deadline - now).total_seconds()
    return Send(kind, number, url, timeout=min(spec.attempt_timeout_seconds, remaining))


# -- recording an exchange ------------------------------------------------------------------


def after_exchange(
    spec: HttpTaskSpec,
    status: Mapping[str, Any],
    created: dt.datetime,
    sent: Send,
    exchange: Exchange,
    now: dt.datetime,
) -> Status:
    """The status that records ``exchange`` and claims the next action (or finishes)."""
    new = _with_log(status, sent, exchange)
    new.setdefault("startTime", format_time(exchange.started))
    result = exchange.result
    deadline = deadline_of(spec, created)

    if isinstance(result, TransportFailure):
        new["lastError"] = result.message
        if result.blocked:
            return _finished(
                new,
                spec,
                phase=TaskPhase.FAILED,
                outcome=Outcome.BLOCKED,
                message=result.message,
                now=now,
            )
        outcome = Outcome.TIMED_OUT if result.timed_out else Outcome.TRANSPORT_ERROR
        if sent.kind is ActionKind.POLL and sent.number < spec.async_.max_polls:
            due = now + dt.timedelta(seconds=poll_delay(spec.async_, None))
            return _claim_poll(
                new,
                spec,
                str(status["location"]),
                sent.number + 1,
                due,
                deadline,
                f"poll {sent.number} failed: {result.message}",
                now,
            )
        if (
            sent.kind is ActionKind.ATTEMPT
            and spec.retry.on_transport_errors
            and sent.number < spec.retry.max_attempts
        ):
            due = now + dt.timedelta(seconds=retry_delay(spec.retry, sent.number, None, None))
            if due < deadline:
                return _claim_attempt(
                    new,
                    sent.number + 1,
                    due,
                    f"attempt {sent.number} failed: {result.message}",
                    now,
                )
        return _finished(
            new, spec, phase=TaskPhase.FAILED, outcome=outcome, message=result.message, now=now
        )

    new.pop("lastError", None)
    if result.status_code == 202 and result.location and spec.async_.enabled:
        location = urljoin(exchange.url, result.location)
        number = sent.number + 1 if sent.kind is ActionKind.POLL else 1
        if number > spec.async_.max_polls:
            return _finished(
                new,
                spec,
                phase=TaskPhase.FAILED,
                outcome=Outcome.TIMED_OUT,
                message=f"still 202 after {spec.async_.max_polls} polls",
                now=now,
            )
        wait = poll_delay(spec.async_, parse_retry_after(result.retry_after, now))
        due = now + dt.timedelta(seconds=wait)
        return _claim_poll(
            new, spec, location, number, due, deadline, f"202 Accepted: polling {location}", now
        )

    # Any other answer is kept as the latest response, replacing only an older answer.
    new["response"] = _response_json(result)
    retryable = result.status_code in spec.retry.on_status_codes
    if retryable and sent.kind is ActionKind.POLL and sent.number < spec.async_.max_polls:
        wait = poll_delay(spec.async_, parse_retry_after(result.retry_after, now))
        due = now + dt.timedelta(seconds=wait)
        return _claim_poll(
            new,
            spec,
            str(status["location"]),
            sent.number + 1,
            due,
            deadline,
            f"poll {sent.number} answered {result.status_code}",
            now,
        )
    if retryable and sent.kind is ActionKind.ATTEMPT and sent.number < spec.retry.max_attempts:
        retry_after = parse_retry_after(result.retry_after, now)
        wait = retry_delay(spec.retry, sent.number, result.status_code, retry_after)
        due = now + dt.timedelta(seconds=wait)
        if due < deadline:
            return _claim_attempt(
                new,
                sent.number + 1,
                due,
                f"attempt {sent.number} answered {result.status_code}",
                now,
            )
    outcome = Outcome.SUCCEEDED if result.status_code == 200 else Outcome.HTTP_ERROR
    message = f"{result.status_code} {result.reason}".strip()
    return _finished(
        new, spec, phase=TaskPhase.SUCCEEDED, outcome=outcome, message=message, now=now
    )


# -- status building ------------------------------------------------------------------------


def _with_log(status: Mapping[str, Any], sent: Send, exchange: Exchange) -> Status:
    new: Status = {k: v for k, v in status.items() if k not in ("nextAttemptTime", "nextPollTime")}
    entry: dict[str, Any] = {
        "attempt": sent.number
        if sent.kind is ActionKind.ATTEMPT
        else int(status.get("attempts") or 1),
        "startTime": format_time(exchange.started),
        "durationMs": exchange.duration_ms,
    }
    if sent.kind is ActionKind.POLL:
        entry["poll"] = sent.number
    if isinstance(exchange.result, HttpAnswer):
        entry["statusCode"] = exchange.result.status_code
    else:
        entry["error"] = exchange.result.message[:512]
    new["attemptLog"] = [*list(status.get("attemptLog") or ()), entry][-ATTEMPT_LOG_LIMIT:]
    if sent.kind is ActionKind.ATTEMPT:
        new["attempts"] = sent.number
    return new


def _claim_attempt(
    new: Status, number: int, due: dt.datetime, message: str, now: dt.datetime
) -> Status:
    message = f"{message}; attempt {number} at {format_time(due)}"
    new.update(
        phase=TaskPhase.RUNNING.value,
        attempts=number,
        nextAttemptTime=format_time(due),
        message=message,
    )
    new.pop("location", None)
    new.pop("pollCount", None)
    new["conditions"] = set_condition(
        new.get("conditions"),
        type=CONDITION_SUCCEEDED,
        status="Unknown",
        reason="Retrying",
        message=message,
        now=now,
    )
    return new


def _claim_poll(
    new: Status,
    spec: HttpTaskSpec,
    location: str,
    number: int,
    due: dt.datetime,
    deadline: dt.datetime,
    message: str,
    now: dt.datetime,
) -> Status:
    if due >= deadline:
        return _finished(
            new,
            spec,
            phase=TaskPhase.FAILED,
            outcome=Outcome.TIMED_OUT,
            message=f"deadline of {spec.deadline_seconds:g}s reached while polling {location}",
            now=now,
        )
    new.update(
        phase=TaskPhase.POLLING.value,
        location=location,
        pollCount=number,
        nextPollTime=format_time(due),
        message=message,
    )
    new["conditions"] = set_condition(
        new.get("conditions"),
        type=CONDITION_SUCCEEDED,
        status="Unknown",
        reason="Polling",
        message=message,
        now=now,
    )
    return new


def _finished(
    status: Mapping[str, Any],
    spec: HttpTaskSpec,
    *,
    phase: TaskPhase,
    outcome: Outcome,
    message: str,
    now: dt.datetime,
) -> Status:
    new: Status = {k: v for k, v in status.items() if k not in ("nextAttemptTime", "nextPollTime")}
    new.update(
        phase=phase.value,
        outcome=outcome.value,
        message=message,
        completionTime=format_time(now),
    )
    new.setdefault("attempts", max(int(status.get("attempts") or 0), 0))
    new["conditions"] = set_condition(
        status.get("conditions"),
        type=CONDITION_SUCCEEDED,
        status="True" if outcome is Outcome.SUCCEEDED else "False",
        reason=outcome.value,
        message=message,
        now=now,
    )
    return new


def _response_json(answer: HttpAnswer) -> dict[str, Any]:
    return {
        "statusCode": answer.status_code,
        "headers": [{"name": k, "value": v} for k, v in sorted(answer.headers.items())],
        "body": answer.body.text,
        "bodyBytes": answer.body.size,
        "truncated": answer.body.truncated,
        "encoding": answer.body.encoding,
    }


def result_summary(status: Mapping[str, Any]) -> dict[str, Any]:
    """What a Search records about a finished (or running) task in its ``results`` entry."""
    summary: dict[str, Any] = {"attempts": int(status.get("attempts") or 0)}
    if status.get("outcome"):
        summary["outcome"] = status["outcome"]
    response = status.get("response")
    if response and phase_of(status) is TaskPhase.SUCCEEDED:
        summary["statusCode"] = response["statusCode"]
    started = parse_time(status.get("startTime"))
    completed = parse_time(status.get("completionTime"))
    if started and completed:
        summary["durationMs"] = max(int((completed - started).total_seconds() * 1000), 0)
    if status.get("message"):
        summary["message"] = str(status["message"])[:1024]
    return summary
