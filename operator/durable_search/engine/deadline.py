"""Deadlines: when a Search, an HttpTask, and a Search's child must have finished.

- a Search's deadline runs from its ``startTime`` (the first status the operator wrote), so a
  Search not started yet has none;
- an HttpTask's runs from its creation, so a restarted operator never grants it more time;
- a child HttpTask carries what is left of its Search's deadline when it is created, so the
  child times out on its own even if the Search's worker is gone.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from durable_search.api.models import HttpTaskSpec, SearchSpec
from durable_search.api.timestamps import parse_time


def search_deadline(spec: SearchSpec, status: Mapping[str, Any]) -> dt.datetime | None:
    """When the Search's providers time out; None before it has started."""
    started = parse_time(status.get("startTime"))
    return started + dt.timedelta(seconds=spec.deadline_seconds) if started else None


def task_deadline(spec: HttpTaskSpec, created: dt.datetime) -> dt.datetime:
    """When the HttpTask times out, created at ``created``."""
    return created + dt.timedelta(seconds=spec.deadline_seconds)


def child_deadline_seconds(spec: SearchSpec, started: dt.datetime, now: dt.datetime) -> int:
    """A child's ``deadlineSeconds`` if created at ``now``: what is left of the Search's, >= 1."""
    remaining = spec.deadline_seconds - (now - started).total_seconds()
    return max(math.ceil(remaining), 1)
