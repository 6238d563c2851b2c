"""Kubernetes-style conditions: ``lastTransitionTime`` moves only when ``status`` changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, cast

from durable_search.api.status import Condition
from durable_search.api.timestamps import format_time


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    *,
    type: str,
    status: str,
    reason: str,
    message: str,
    now: dt.datetime,
) -> list[Condition]:
    """A copy of ``conditions`` with ``type`` set; other conditions are kept as they are."""
    existing = {c["type"]: cast(Condition, dict(c)) for c in conditions or ()}
    previous = existing.get(type)
    transition = (
        previous["lastTransitionTime"]
        if previous and previous.get("status") == status and previous.get("lastTransitionTime")
        else format_time(now, millis=False)
    )
    existing[type] = {
        "type": type,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    return list(existing.values())
