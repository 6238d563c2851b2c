"""Per-provider progress lines for the terminal, from a Search and its HttpTasks (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_SYMBOLS = {
    "Succeeded": "✔",
    "HttpError": "✖",
    "TransportError": "✖",
    "TimedOut": "⏱",
    "Blocked": "⛔",
    "ProviderNotFound": "?",
    "Terminated": "■",
    "ConditionNotMet": "∅",
    "Invalid": "!",
}
OUTPUT_SHOWN = 60  # characters of each output value on a progress line


def provider_state(result: Mapping[str, Any], child: Mapping[str, Any] | None) -> str:
    """One provider's state in a few words."""
    outcome = result.get("outcome")
    if outcome:
        parts = [f"{_SYMBOLS.get(outcome, '·')} {outcome}"]
        if result.get("statusCode"):
            parts.append(str(result["statusCode"]))
        if result.get("durationMs") is not None:
            parts.append(f"{result['durationMs']} ms")
        attempts = int(result.get("attempts") or 0)
        if attempts > 1:
            parts.append(f"{attempts} attempts")
        for name, value in (result.get("outputs") or {}).items():
            shown = value if len(value) <= OUTPUT_SHOWN else f"{value[: OUTPUT_SHOWN - 1]}…"
            parts.append(f"{name}={shown}")
        if outcome != "Succeeded" and result.get("message"):
            parts.append(f"({result['message']})")
        return " ".join(parts)
    status = (child or {}).get("status") or {}
    phase = status.get("phase")
    if phase == "Polling":
        return f"… polling ({status.get('pollCount', 1)})"
    if phase == "Running" and int(status.get("attempts") or 1) > 1:
        return f"… retrying (attempt {status['attempts']})"
    return "… requesting"


def progress_lines(
    search: Mapping[str, Any], children: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """A header line and one line per provider; ``children`` is keyed by HttpTask name."""
    status = search.get("status") or {}
    phase = status.get("phase") or "Pending"
    header = f"{search['metadata']['name']}: {phase} {status.get('progress', '')}".rstrip()
    if status.get("duration"):
        header += f" in {status['duration']}"
    results = status.get("results") or []
    width = max((len(r["name"]) for r in results), default=0)
    lines = [header]
    for result in results:
        child = children.get(result.get("httpTaskName") or "")
        lines.append(f"  {result['name']:<{width}}  {provider_state(result, child)}")
    return lines
