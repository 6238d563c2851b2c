"""The Search's decision: what to do next, from its spec, status and children alone.

The controller (``controller.searches``) is a loop over :func:`decide`: it reads the newest
objects, asks what to do, and does it. The order of the guards is the order of precedence:

1. finished: nothing (its TTL deletion is ``controller.ttl``'s, not a worker's);
2. asked to terminate: close every unfinished provider, terminate the children;
3. not started: resolve the providers, record the plan, create the children;
4. a planned child is unknown: look it up (after a restart) or create it again;
5. past the deadline: unfinished providers time out, the Search completes;
6. children finished: fold their outcomes in — at once when the fold finishes the Search, at
   most once per :data:`PROGRESS_INTERVAL` otherwise (a write per outcome would double the
   writes of every Search, and progress is also on the children);
7. otherwise wait for a change, or for the deadline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from durable_search.api.models import SearchSpec
from durable_search.api.status import SearchStatus, search_finished
from durable_search.engine import fanin
from durable_search.engine.deadline import search_deadline

# Children carry the Search's deadline themselves; the Search enforces it too, a little later,
# in case a child cannot (its worker is gone, its object was edited).
DEADLINE_GRACE = dt.timedelta(seconds=2)
PROGRESS_INTERVAL = dt.timedelta(seconds=5)
Status = SearchStatus


@dataclass(frozen=True)
class Done:
    """Nothing is left to do: the Search has finished."""


@dataclass(frozen=True)
class Wait:
    until: dt.datetime | None  # None: until something changes


@dataclass(frozen=True)
class Start:
    """Resolve the providers, record the plan and create the children (I/O: the controller)."""


@dataclass(frozen=True)
class Recover:
    """Planned children the operator does not know: find them, or create them again."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Stop:
    """Write ``status`` (terminated or expired) and terminate the unfinished children."""

    status: Status


@dataclass(frozen=True)
class Record:
    status: Status


Decision = Done | Wait | Start | Recover | Stop | Record


@dataclass(frozen=True)
class Children:
    """What the operator knows of a Search's planned children, by HttpTask name."""

    statuses: Mapping[str, Mapping[str, Any]]  # the Search's own children
    foreign: frozenset[str] = frozenset()  # names held by objects the Search does not own
    unknown: frozenset[str] = frozenset()  # names of unfinished children not seen at all


def terminated_message(spec: SearchSpec) -> str:
    """The Terminated condition's message: the requester's reason, when they gave one."""
    if spec.terminate_reason:
        return f"terminated on request: {spec.terminate_reason}"
    return "terminated on request"


def decide(
    spec: SearchSpec,
    status: Mapping[str, Any],
    children: Children,
    generation: int,
    now: dt.datetime,
    last_progress: dt.datetime | None = None,
) -> Decision:
    if search_finished(status):
        return Done()
    if spec.terminate:
        return Stop(fanin.terminate(status, now, terminated_message(spec)))
    if not status.get("phase"):
        return Start()
    if children.unknown:
        return Recover(tuple(sorted(children.unknown)))
    deadline = search_deadline(spec, status)
    if deadline is not None and now >= deadline + DEADLINE_GRACE:
        return Stop(fanin.expire(status, spec.deadline_seconds, now))
    folded = fanin.fan_in(status, children.statuses, generation, now, foreign=children.foreign)
    if folded != status:
        if search_finished(folded) or last_progress is None:
            return Record(folded)
        due = last_progress + PROGRESS_INTERVAL
        if now >= due:
            return Record(folded)
        return Wait(min(due, deadline + DEADLINE_GRACE) if deadline else due)
    return Wait(deadline + DEADLINE_GRACE if deadline else None)
