"""Deterministic child names: re-creating a child is idempotent (AlreadyExists is the answer).

A fan-out child is ``<search>-<provider>-<6 hex of the Search's uid>``. The uid's hash makes the
name the Search's own: without it, Search ``a`` with provider ``b-c`` and Search ``a-b`` with
provider ``c`` would both claim ``a-b-c`` (and a Search deleted and re-created under its name
would meet its predecessor's children). The watcher is ``<search>--watcher``, which no child can
collide with: a child's name ends in hex digits. Names longer than the API allows keep a
readable prefix and end in a hash of the full name. The controller still checks the owner's
uid before it adopts an existing child, and finds children only through the names the Search
recorded in its plan, so Searches planned under an older naming keep their children.
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


def child_name(search_name: str, provider: str, search_uid: str) -> str:
    owner = hashlib.sha256(search_uid.encode()).hexdigest()[:6]
    return _bounded(f"{search_name}-{provider}-{owner}", MAX_NAME_LENGTH)


def watcher_name(search_name: str) -> str:
    return _bounded(f"{search_name}--watcher", MAX_NAME_LENGTH)


def label_value(value: str) -> str:
    """A label value for ``value`` (names can be longer than a label value may be)."""
    return _bounded(value, MAX_LABEL_VALUE_LENGTH)
