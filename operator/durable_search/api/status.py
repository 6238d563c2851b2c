"""The durable contract's shapes: what the operator writes in ``status``, typed.

The CRD schemas (``api.schema``) say what the API server accepts; these ``TypedDict``s say the
same to the type checker, so every layer that reads or writes a status (engine, controller,
web, CLI) names its fields once and mypy catches a misspelt one. All are ``total=False``: a
status is built up over a task's life, and a field is absent until it means something.

``Body`` (an object as the API serves it), ``Key`` (namespace, name) and ``Metadata`` (an
object's ``metadata``, as far as we read or write it) are defined here once;
``task_phase`` and ``search_phase`` are the one way to ask "how far has it got?", and
``search_status`` / ``task_status`` read an object's status as its shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

from durable_search.api.constants import SearchPhase, TaskPhase

Body = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)


class OwnerReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class Metadata(TypedDict, total=False):
    """An object's ``metadata``: what we write when creating one, and what we read back."""

    name: str
    namespace: str
    uid: str
    resourceVersion: str
    generation: int
    creationTimestamp: str
    deletionTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    ownerReferences: list[OwnerReference]


class Condition(TypedDict, total=False):
    type: str
    status: str  # True, False, Unknown
    reason: str
    message: str
    lastTransitionTime: str


class AttemptRecord(TypedDict, total=False):
    """One attempt or poll in ``attemptLog``."""

    attempt: int
    poll: int
    startTime: str
    durationMs: int
    statusCode: int
    error: str


class HeaderRecord(TypedDict):
    name: str
    value: str


class ResponseRecord(TypedDict, total=False):
    """The latest HTTP answer, as kept (never overwritten by a later error)."""

    statusCode: int
    headers: list[HeaderRecord]
    body: str
    bodyBytes: int
    truncated: bool
    encoding: str  # utf-8 or base64
    contentEncoding: str  # the coding the body is kept in, undecoded


# ``spec.outputs`` evaluated over the final answer: name to value, every value a string.
Outputs = dict[str, str]


class Claim(TypedDict, total=False):
    """In an operator ring: who may send an HttpTask's next request ("" released)."""

    holder: str


class HttpTaskStatus(TypedDict, total=False):
    phase: str
    outcome: str  # an api.constants.Outcome
    message: str
    outputs: Outputs
    attempts: int
    attemptLog: list[AttemptRecord]
    response: ResponseRecord
    location: str
    pollCount: int
    nextPollTime: str
    nextAttemptTime: str
    lastError: str
    startTime: str
    completionTime: str
    observedGeneration: int
    conditions: list[Condition]
    claim: Claim


class SearchResult(TypedDict, total=False):
    """One provider's entry in a Search's ``results``."""

    name: str
    httpTaskName: str
    outcome: str
    statusCode: int
    attempts: int
    durationMs: int
    message: str
    outputs: Outputs  # the HttpTask's status.outputs


class SearchStatus(TypedDict, total=False):
    phase: str
    progress: str
    duration: str
    startTime: str
    completionTime: str
    observedGeneration: int
    results: list[SearchResult]
    conditions: list[Condition]


def task_phase(status: Mapping[str, Any]) -> TaskPhase:
    return TaskPhase(status.get("phase") or TaskPhase.PENDING)


def search_phase(status: Mapping[str, Any]) -> SearchPhase:
    return SearchPhase(status.get("phase") or SearchPhase.PENDING)


def search_finished(status: Mapping[str, Any]) -> bool:
    return search_phase(status).finished


def status_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """An object's status, ``{}`` before the operator wrote one."""
    status: Mapping[str, Any] = body.get("status") or {}
    return status


def search_status(body: Mapping[str, Any]) -> SearchStatus:
    """A Search's status as its shape (what the operator wrote; ``{}`` before it wrote one)."""
    return cast(SearchStatus, status_of(body))


def task_status(body: Mapping[str, Any]) -> HttpTaskStatus:
    """An HttpTask's status as its shape (what the operator wrote; ``{}`` before it wrote one)."""
    return cast(HttpTaskStatus, status_of(body))
