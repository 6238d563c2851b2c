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

The spec's CEL (``engine.judging``) is checked before anything is sent (a spec whose expression
does not compile ends ``Invalid``, ``InvalidExpression``) and answers three questions about an
answer: is the operation complete (``async.completeWhen``: a 2xx it calls incomplete is polled
like a 202), did it succeed (``successCondition``), and what are its ``outputs``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast
from urllib.parse import urljoin

from durable_search.api.constants import CONDITION_SUCCEEDED, Outcome, Reason, TaskPhase
from durable_search.api.models import HttpTaskSpec
from durable_search.api.status import (
    AttemptRecord,
    HttpTaskStatus,
    ResponseRecord,
    SearchResult,
    task_phase,
)
from durable_search.api.timestamps import format_time, parse_time
from durable_search.engine import cel, judging
from durable_search.engine.bounds import (
    LAST_ERROR_MAX,
    LOCATION_MAX,
    LOG_ERROR_MAX,
    MESSAGE_MAX,
    STATUS_BUDGET,
    cut,
    fit_headers,
    fit_status,
)
from durable_search.engine.conditions import set_condition
from durable_search.engine.deadline import task_deadline
from durable_search.engine.retry_after import parse_retry_after
from durable_search.engine.schedule import poll_delay, retry_delay

ATTEMPT_LOG_LIMIT = 10
Status = HttpTaskStatus


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
    content_encoding: str | None = None  # the coding the body is kept in, undecoded


@dataclass(frozen=True)
class HttpAnswer:
    status_code: int
    reason: str
    headers: Mapping[str, str]  # lower-case names, only those the policy keeps
    body: StoredBody
    location: str | None = None  # the status URL: the first of async.locationHeaders present
    retry_after: str | None = None
    note: str | None = None  # something the user should know about how it was kept
    # What CEL sees as response.headers: every header received but credentials and cookies
    # (lower-case names, redacted, bounded); never stored.
    seen_headers: Mapping[str, str] = field(default_factory=dict)

    def view(self) -> cel.ResponseView:
        body = self.body
        headers = {**self.headers, **self.seen_headers}
        return judging.view(
            self.status_code,
            headers,
            body.text,
            body.encoding,
            body.truncated,
            body.content_encoding,
        )


class FailureKind(StrEnum):
    TRANSPORT = "TransportError"  # on the wire or the far side: retried
    TIMEOUT = "TimedOut"  # no answer within the attempt's timeout: retried
    BLOCKED = "Blocked"  # refused before sending: never retried
    INVALID = "Invalid"  # cannot be sent as written (our side of the wire): never retried


@dataclass(frozen=True)
class NoAnswer:
    """The exchange ended without a usable HTTP answer."""

    message: str
    kind: FailureKind = FailureKind.TRANSPORT
    reason: str = Reason.INVALID_REQUEST  # for INVALID: which fault on our side


@dataclass(frozen=True)
class Exchange:
    result: HttpAnswer | NoAnswer
    url: str  # the URL that gave the answer (after redirects)
    started: dt.datetime
    duration_ms: int


@dataclass(frozen=True)
class Claim:
    """The next action a status claims: what, which number, when, and where for a poll."""

    kind: ActionKind
    number: int
    due: dt.datetime
    location: str | None = None


# -- reading the status ---------------------------------------------------------------------


def decide(
    spec: HttpTaskSpec, status: Mapping[str, Any], created: dt.datetime, now: dt.datetime
) -> Decision:
    """The next step for a task, from its spec and status alone (level-triggered)."""
    phase = task_phase(status)
    if phase.finished:
        return Done()
    if spec.terminate:
        return Finish(
            _finished(
                status,
                phase=TaskPhase.TERMINATED,
                outcome=Outcome.TERMINATED,
                message="terminated on request",
                now=now,
            )
        )
    try:  # before the first request: a spec that cannot be judged is never sent
        judging.compile_spec(spec)
    except cel.InvalidExpression as error:
        return Finish(_invalid_expression(status, error, now))
    deadline = task_deadline(spec, created)
    if now >= deadline:
        return Finish(
            _finished(
                status,
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
    budget: int = STATUS_BUDGET,
) -> Status:
    """The status that records ``exchange`` and claims the next action (or finishes).

    The result fits in ``budget`` stored bytes (see ``engine.bounds``), whatever the site sent.
    """
    new = _with_log(status, sent, exchange)
    new.setdefault("startTime", format_time(exchange.started))
    result = exchange.result
    if isinstance(result, NoAnswer):
        return fit_status(_after_failure(new, spec, status, created, sent, result, now), budget)
    try:
        expressions = judging.compile_spec(spec)
    except cel.InvalidExpression as error:  # decide() refuses these before sending
        return fit_status(_invalid_expression(new, error, now), budget)
    if result.status_code == 202 and result.location and spec.async_.enabled:
        return fit_status(_after_accepted(new, spec, created, sent, exchange, result, now), budget)
    # Built once per answer, and only when an expression will read it (it parses the JSON).
    judge = judging.Judge(expressions, result.view()) if expressions.any else None
    running = None
    if spec.async_.enabled and judge is not None and 200 <= result.status_code < 300:
        running = _still_running(judge)
    if running is not None:
        new = _after_running(new, spec, status, created, sent, exchange, result, running, now)
    else:
        new = _after_answer(new, spec, status, created, sent, result, judge, now)
    return fit_status(new, budget)


def _still_running(judge: judging.Judge) -> str | None:
    """Why ``completeWhen`` calls this 2xx answer incomplete, or None when it is complete."""
    if judge.expressions.complete_when is None:
        return None
    complete, error = judge.complete()
    if complete:
        return None
    return f"completeWhen could not be evaluated: {error}" if error else "completeWhen is false"


def _invalid_expression(
    status: Mapping[str, Any], error: cel.InvalidExpression, now: dt.datetime
) -> Status:
    return _finished(
        status,
        phase=TaskPhase.FAILED,
        outcome=Outcome.INVALID,
        message=f"invalid expression: {error.message}",
        now=now,
        reason=Reason.INVALID_EXPRESSION,
    )


def _after_failure(
    new: Status,
    spec: HttpTaskSpec,
    status: Mapping[str, Any],
    created: dt.datetime,
    sent: Send,
    failure: NoAnswer,
    now: dt.datetime,
) -> Status:
    """No answer: retry or poll again if the policy allows, else finish with the failure."""
    new["lastError"] = cut(failure.message, LAST_ERROR_MAX)
    if failure.kind is FailureKind.BLOCKED:
        return _finished(
            new, phase=TaskPhase.FAILED, outcome=Outcome.BLOCKED, message=failure.message, now=now
        )
    if failure.kind is FailureKind.INVALID:
        return _finished(
            new,
            phase=TaskPhase.FAILED,
            outcome=Outcome.INVALID,
            message=failure.message,
            now=now,
            reason=failure.reason,
        )
    retried = sent.kind is ActionKind.POLL or spec.retry.on_transport_errors
    claim = _next_claim(spec, status, created, sent, now) if retried else None
    if claim is not None:
        return _claim(new, spec, created, claim, f"{_what(sent)} failed: {failure.message}", now)
    outcome = Outcome.TIMED_OUT if failure.kind is FailureKind.TIMEOUT else Outcome.TRANSPORT_ERROR
    return _finished(new, phase=TaskPhase.FAILED, outcome=outcome, message=failure.message, now=now)


def _after_accepted(
    new: Status,
    spec: HttpTaskSpec,
    created: dt.datetime,
    sent: Send,
    exchange: Exchange,
    accepted: HttpAnswer,
    now: dt.datetime,
) -> Status:
    """202 + a status URL (the first of ``locationHeaders``): poll it, waiting Retry-After."""
    assert accepted.location is not None
    location = _resolved(exchange.url, accepted.location)
    return _poll_again(new, spec, created, sent, accepted, location, "202 Accepted", now)


def _after_running(
    new: Status,
    spec: HttpTaskSpec,
    status: Mapping[str, Any],
    created: dt.datetime,
    sent: Send,
    exchange: Exchange,
    answer: HttpAnswer,
    why: str,
    now: dt.datetime,
) -> Status:
    """A 2xx that ``completeWhen`` calls incomplete (a 200-with-status monitor): poll again.

    The status URL is the one this answer names, else the one being polled, else the request's
    own URL when it is a GET (a monitor polled where it was asked). A POST that names none
    cannot be polled: its answer is final, and the condition for completion is not met.
    """
    what = f"{answer.status_code}, {why}"
    if answer.location:
        location = _resolved(exchange.url, answer.location)
    elif sent.kind is ActionKind.POLL and status.get("location"):
        location = str(status["location"])
    elif spec.request.method == "GET":
        location = spec.request.url
    else:
        new.pop("lastError", None)
        new["response"] = _response_json(answer)
        headers = ", ".join(spec.async_.location_headers) or "status URL"
        message = (
            f"{what}, and there is nothing to poll: no {headers} header, and the request is "
            f"a {spec.request.method}, not a GET"
        )
        return _finished(
            new,
            phase=TaskPhase.SUCCEEDED,
            outcome=Outcome.CONDITION_NOT_MET,
            message=message,
            now=now,
        )
    return _poll_again(new, spec, created, sent, answer, location, what, now)


def _resolved(base: str, reference: str) -> str:
    try:
        return urljoin(base, reference)
    except ValueError:
        return ""


def _poll_again(
    new: Status,
    spec: HttpTaskSpec,
    created: dt.datetime,
    sent: Send,
    answer: HttpAnswer,
    location: str,
    what: str,
    now: dt.datetime,
) -> Status:
    """Claim the next poll of ``location`` (an answer that is not final yet)."""
    new.pop("lastError", None)
    if not location or len(location) > LOCATION_MAX:
        new["response"] = _response_json(answer)
        length = len(answer.location or location)
        message = f"{answer.status_code} with a status URL that cannot be followed ({length} chars)"
        return _finished(
            new, phase=TaskPhase.SUCCEEDED, outcome=Outcome.HTTP_ERROR, message=message, now=now
        )
    claim = _next_claim(
        spec, new, created, sent, now, retry_after=answer.retry_after, location=location
    )
    if claim is None:
        state = "202" if answer.status_code == 202 else "running"
        message = f"still {state} after {spec.async_.max_polls} polls ({what})"
        return _finished(
            new, phase=TaskPhase.FAILED, outcome=Outcome.TIMED_OUT, message=message, now=now
        )
    return _claim(new, spec, created, claim, f"{what}: polling {location}", now)


def _after_answer(
    new: Status,
    spec: HttpTaskSpec,
    status: Mapping[str, Any],
    created: dt.datetime,
    sent: Send,
    answer: HttpAnswer,
    judge: judging.Judge | None,
    now: dt.datetime,
) -> Status:
    """A final-looking answer: kept as the latest response; retried if its code says so.

    A final answer is judged by ``successCondition`` (without one: a 200 is Succeeded, any
    other code HttpError, the sample's rule); a condition given and false is ConditionNotMet,
    an evaluation error counting as false. Outputs are evaluated over every final answer.
    """
    new.pop("lastError", None)
    new["response"] = _response_json(answer)
    if answer.status_code in spec.retry.on_status_codes:
        claim = _next_claim(
            spec,
            status,
            created,
            sent,
            now,
            status_code=answer.status_code,
            retry_after=answer.retry_after,
        )
        if claim is not None:
            message = f"{_what(sent)} answered {answer.status_code}"
            return _claim(new, spec, created, claim, message, now)
    notes = [answer.note] if answer.note else []
    given = judge is not None and judge.expressions.success is not None
    if judge is None:
        held = answer.status_code == 200
    else:
        held, error = judge.succeeded()
        if error:
            notes.append(f"successCondition could not be evaluated: {error}")
        elif not held and given:
            notes.append("successCondition is false")
        if judge.expressions.outputs:
            new["outputs"], problems = judge.outputs()
            notes.extend(problems)
    if held:
        outcome = Outcome.SUCCEEDED
    else:
        outcome = Outcome.CONDITION_NOT_MET if given else Outcome.HTTP_ERROR
    message = "; ".join([f"{answer.status_code} {answer.reason}".strip(), *notes])
    return _finished(new, phase=TaskPhase.SUCCEEDED, outcome=outcome, message=message, now=now)


def _next_claim(
    spec: HttpTaskSpec,
    status: Mapping[str, Any],
    created: dt.datetime,
    sent: Send,
    now: dt.datetime,
    *,
    status_code: int | None = None,
    retry_after: str | None = None,
    location: str | None = None,
) -> Claim | None:
    """The action after ``sent``, if the policy allows one more; else None.

    ``location`` is a status URL the answer just named: the next action polls it (poll 1 after
    an attempt, the next poll after a poll). Without one, a poll polls ``status``'s location
    again and an attempt is retried. Polls are claimed while ``maxPolls`` allows (``_claim``
    checks the deadline when one is recorded); an attempt is retried only if it would start
    before the deadline, so the last answer stays the outcome.
    """
    asked = parse_retry_after(retry_after, now)  # seconds the server asked us to wait
    if location is not None or sent.kind is ActionKind.POLL:
        number = sent.number + 1 if sent.kind is ActionKind.POLL else 1
        if number > spec.async_.max_polls:
            return None
        due = now + dt.timedelta(seconds=poll_delay(spec.async_, asked))
        url = location if location is not None else str(status["location"])
        return Claim(ActionKind.POLL, number, due, url)
    if sent.number >= spec.retry.max_attempts:
        return None
    due = now + dt.timedelta(seconds=retry_delay(spec.retry, sent.number, status_code, asked))
    if due >= task_deadline(spec, created):
        return None
    return Claim(ActionKind.ATTEMPT, sent.number + 1, due)


def unrecordable(attempted: Mapping[str, Any], refusal: str, now: dt.datetime) -> Status:
    """The status to write when the API server refused ``attempted``: no body, no headers.

    Recorded once as outcome Invalid (TooLargeToRecord), so the request is not sent again as if
    nothing had happened.
    """
    kept = {k: v for k, v in attempted.items() if k not in ("response", "location", "lastError")}
    kept["attemptLog"] = [
        {k: v for k, v in entry.items() if k != "error"}
        for entry in attempted.get("attemptLog") or ()
    ]
    message = f"the API server refused to record the answer: {refusal}"
    return _finished(
        kept,
        phase=TaskPhase.FAILED,
        outcome=Outcome.INVALID,
        message=message,
        now=now,
        reason=Reason.TOO_LARGE_TO_RECORD,
    )


def internal_failure(status: Mapping[str, Any], message: str, now: dt.datetime) -> Status:
    """Give up on a task our own code keeps failing on (outcome Invalid, reason Internal)."""
    return _finished(
        status,
        phase=TaskPhase.FAILED,
        outcome=Outcome.INVALID,
        message=f"internal error: {message}",
        now=now,
        reason=Reason.INTERNAL,
    )


# -- status building ------------------------------------------------------------------------


def _what(sent: Send) -> str:
    return f"{'poll' if sent.kind is ActionKind.POLL else 'attempt'} {sent.number}"


def _unclaimed(status: Mapping[str, Any]) -> Status:
    """A copy of ``status`` without the times of the action it claimed."""
    kept = {k: v for k, v in status.items() if k not in ("nextAttemptTime", "nextPollTime")}
    return cast(Status, kept)


def _with_log(status: Mapping[str, Any], sent: Send, exchange: Exchange) -> Status:
    new = _unclaimed(status)
    entry: AttemptRecord = {
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
        entry["error"] = cut(exchange.result.message, LOG_ERROR_MAX)
    new["attemptLog"] = [*list(status.get("attemptLog") or ()), entry][-ATTEMPT_LOG_LIMIT:]
    if sent.kind is ActionKind.ATTEMPT:
        new["attempts"] = sent.number
    return new


def _claim(
    new: Status,
    spec: HttpTaskSpec,
    created: dt.datetime,
    claim: Claim,
    message: str,
    now: dt.datetime,
) -> Status:
    """Record ``claim`` as the next action; a poll due past the deadline ends the task."""
    if claim.kind is ActionKind.POLL:
        if claim.due >= task_deadline(spec, created):
            message = (
                f"deadline of {spec.deadline_seconds:g}s reached while polling {claim.location}"
            )
            return _finished(
                new, phase=TaskPhase.FAILED, outcome=Outcome.TIMED_OUT, message=message, now=now
            )
        new["phase"] = TaskPhase.POLLING.value
        new["location"] = str(claim.location)
        new["pollCount"] = claim.number
        new["nextPollTime"] = format_time(claim.due)
        reason = Reason.POLLING
    else:
        message = f"{message}; attempt {claim.number} at {format_time(claim.due)}"
        new["phase"] = TaskPhase.RUNNING.value
        new["attempts"] = claim.number
        new["nextAttemptTime"] = format_time(claim.due)
        new.pop("location", None)
        new.pop("pollCount", None)
        reason = Reason.RETRYING
    message = cut(message, MESSAGE_MAX)
    new["message"] = message
    new["conditions"] = set_condition(
        new.get("conditions"),
        type=CONDITION_SUCCEEDED,
        status="Unknown",
        reason=reason,
        message=message,
        now=now,
    )
    return new


def _finished(
    status: Mapping[str, Any],
    *,
    phase: TaskPhase,
    outcome: Outcome,
    message: str,
    now: dt.datetime,
    reason: str | None = None,
) -> Status:
    message = cut(message, MESSAGE_MAX)
    new = _unclaimed(status)
    new["phase"] = phase.value
    new["outcome"] = outcome.value
    new["message"] = message
    new["completionTime"] = format_time(now)
    new.setdefault("attempts", max(int(status.get("attempts") or 0), 0))
    new["conditions"] = set_condition(
        status.get("conditions"),
        type=CONDITION_SUCCEEDED,
        status="True" if outcome is Outcome.SUCCEEDED else "False",
        reason=reason or outcome.value,
        message=message,
        now=now,
    )
    return new


def _response_json(answer: HttpAnswer) -> ResponseRecord:
    response: ResponseRecord = {
        "statusCode": answer.status_code,
        "headers": fit_headers(
            [{"name": k, "value": v} for k, v in sorted(answer.headers.items())]
        ),
        "body": answer.body.text,
        "bodyBytes": answer.body.size,
        "truncated": answer.body.truncated,
        "encoding": answer.body.encoding,
    }
    if answer.body.content_encoding:
        response["contentEncoding"] = cut(answer.body.content_encoding, 64)
    return response


def result_summary(status: Mapping[str, Any]) -> SearchResult:
    """What a Search records about a finished (or running) task in its ``results`` entry."""
    summary: SearchResult = {"attempts": int(status.get("attempts") or 0)}
    if status.get("outcome"):
        summary["outcome"] = str(status["outcome"])
    response = status.get("response")
    if response and task_phase(status) is TaskPhase.SUCCEEDED:
        summary["statusCode"] = int(response["statusCode"])
    started = parse_time(status.get("startTime"))
    completed = parse_time(status.get("completionTime"))
    if started and completed:
        summary["durationMs"] = max(int((completed - started).total_seconds() * 1000), 0)
    if status.get("message"):
        summary["message"] = cut(str(status["message"]), MESSAGE_MAX)
    if status.get("outputs"):
        summary["outputs"] = dict(status["outputs"])
    return summary
