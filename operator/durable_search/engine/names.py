"""Deterministic child names: re-creating a child is idempotent (AlreadyExists is the answer).

A fan-out child is ``<search>-<provider>``; the watcher is ``<search>--watcher``, which no
provider can collide with because a DNS-1123 label never starts with ``-``. Names longer than
the API allows keep a readable prefix and end in a hash of the full name.
"""

from __future__ import annotations

import hashlib

MAX_NAME_LENGTH = 253
MAX_LABEL_VALUE_LENGTH = 63


def _bounded(name: str, limit: int) -> str:
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: limit - 11].rstrip('-.')}-{digest}"


def child_name(search_name: str, provider: str) -> str:
    return _bounded(f"{search_name}-{provider}", MAX_NAME_LENGTH)


def watcher_name(search_name: str) -> str:
    return _bounded(f"{search_name}--watcher", MAX_NAME_LENGTH)


def label_value(value: str) -> str:
    """A label value for ``value`` (names can be longer than a label value may be)."""
    return _bounded(value, MAX_LABEL_VALUE_LENGTH)
