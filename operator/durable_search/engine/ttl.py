"""TTL after finished: when a finished Search (and its children with it) is deleted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from durable_search.api.models import SearchSpec
from durable_search.api.timestamps import parse_time


def expires_at(spec: SearchSpec, status: Mapping[str, Any]) -> dt.datetime | None:
    """When the finished Search is due for deletion; None when it never is."""
    completed = parse_time(status.get("completionTime"))
    if spec.ttl_seconds_after_finished is None or completed is None:
        return None
    return completed + dt.timedelta(seconds=spec.ttl_seconds_after_finished)
