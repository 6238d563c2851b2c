"""``Retry-After`` parsing: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""

from __future__ import annotations

import datetime as dt
import email.utils


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait from ``now``, or ``None`` when absent or unparseable. Never negative."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max((when - now).total_seconds(), 0.0)


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
