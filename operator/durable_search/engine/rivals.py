"""Which other operators may not run beside this one: pure decisions over their Leases.

Every operator holds a Lease saying how it runs (label ``durablesearch.dev/mode``: ``standalone``
or ``ring``) and over which namespaces (annotation ``durablesearch.dev/namespaces``). A
standalone operator does all the work of its namespaces, and a ring's members share it: a
standalone operator and a ring, or two rings, over the same namespaces would each send every
request. Two standalone operators are not told apart here (a restarted one would wait for its
own dead predecessor's Lease to lapse): run one replica, as the chart does.

Nothing here reads a clock or the network: the caller passes ``now`` and the Leases it listed.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from durable_search.engine.ring import (
    ALL_NAMESPACES,
    DEFAULT_LEASE_SECONDS,
    MODE_LABEL,
    NAMESPACES_ANNOTATION,
    RING_LABEL,
    encode_namespaces,
    member_of_lease,
    operator_lease,
)

STANDALONE = "standalone"
STANDALONE_LEASE_PREFIX = "durable-search-standalone"
# A Lease lapsed this long is a killed operator's: nobody will renew or delete it but us.
FORGOTTEN_AFTER = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Mode:
    """How an operator runs: standalone (``ring`` is None) or as a member of ``ring``."""

    ring: str | None
    namespaces: tuple[str, ...]  # ("*",) for every namespace

    def describe(self) -> str:
        return f"ring {self.ring}" if self.ring else "a standalone operator"


@dataclass(frozen=True)
class Rival:
    lease: str
    holder: str
    mode: Mode
    renewed_seconds_ago: float | None

    def describe(self) -> str:
        ago = (
            f", renewed {self.renewed_seconds_ago:.0f}s ago"
            if self.renewed_seconds_ago is not None
            else ""
        )
        return (
            f"{self.mode.describe()} ({self.holder}, Lease {self.lease}{ago}) "
            f"over {', '.join(self.mode.namespaces)}"
        )


def decode_namespaces(value: str | None) -> tuple[str, ...]:
    """The namespaces a Lease names; unknown (absent) counts as every namespace."""
    names = tuple(part for part in (value or "").split(",") if part)
    return names or (ALL_NAMESPACES,)


def _is_pattern(namespace: str) -> bool:
    return any(ch in namespace for ch in "*?[")


def namespaces_overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two operators may watch a namespace in common (patterns count conservatively)."""
    if ALL_NAMESPACES in a or ALL_NAMESPACES in b:
        return True
    if any(n.startswith("!") for n in (*a, *b)):
        return True  # an exclusion: assume the rest overlaps
    return any(
        fnmatch.fnmatchcase(x, y)
        or fnmatch.fnmatchcase(y, x)
        or (_is_pattern(x) and _is_pattern(y))  # two patterns: assume a namespace matches both
        for x in a
        for y in b
    )


def mode_of_lease(lease: Mapping[str, Any]) -> Mode | None:
    metadata = lease.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    namespaces = decode_namespaces(annotations.get(NAMESPACES_ANNOTATION))
    if labels.get(MODE_LABEL) == STANDALONE:
        return Mode(None, namespaces)
    if labels.get(RING_LABEL):
        return Mode(str(labels[RING_LABEL]), namespaces)
    return None


def conflicts(mine: Mode, theirs: Mode) -> bool:
    """A standalone operator beside a ring, or two rings, over a namespace in common."""
    if mine.ring == theirs.ring:
        return False  # the same ring shares the work; two standalone operators: see above
    return namespaces_overlap(mine.namespaces, theirs.namespaces)


def rivals(
    leases: Iterable[Mapping[str, Any]], mine: Mode, my_lease: str, now: dt.datetime
) -> list[Rival]:
    """The live operators whose Leases say they may not run beside ``mine``.

    Live: renewed within the Lease's duration, a leaving ring member included (it is still
    draining what it sent).
    """
    found = []
    for lease in leases:
        name = str((lease.get("metadata") or {}).get("name") or "")
        mode = mode_of_lease(lease)
        member = member_of_lease(lease)
        if name == my_lease or mode is None or member is None or not conflicts(mine, mode):
            continue
        if member.renewed is None:
            continue
        if now >= member.renewed + dt.timedelta(seconds=member.lease_seconds):
            continue  # lapsed: that operator is gone
        ago = (now - member.renewed).total_seconds()
        found.append(Rival(name, member.identity, mode, max(ago, 0.0)))
    return found


def standalone_lease_name(identity: str) -> str:
    return f"{STANDALONE_LEASE_PREFIX}-{identity}"


def standalone_lease(
    identity: str,
    now: dt.datetime,
    namespaces: Sequence[str],
    *,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> dict[str, Any]:
    """The Lease a standalone operator renews, so that no ring starts beside it."""
    return operator_lease(
        standalone_lease_name(identity),
        identity,
        now,
        lease_seconds=lease_seconds,
        labels={MODE_LABEL: STANDALONE},
        annotations={NAMESPACES_ANNOTATION: encode_namespaces(namespaces)},
    )


def forgotten(leases: Iterable[Mapping[str, Any]], now: dt.datetime) -> list[str]:
    """The operators' Leases lapsed for longer than :data:`FORGOTTEN_AFTER` (safe to delete)."""
    names = []
    for lease in leases:
        member = member_of_lease(lease)
        if member is None or member.renewed is None or mode_of_lease(lease) is None:
            continue
        lapsed = member.renewed + dt.timedelta(seconds=member.lease_seconds)
        if now >= lapsed + FORGOTTEN_AFTER:
            names.append(str(lease["metadata"]["name"]))
    return names
