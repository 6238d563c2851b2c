"""Who in a ring of operators owns an object: pure decisions over Leases and uids.

Each member holds one Lease (``<ring>-<identity>``) and renews it; a member is live while its
Lease is renewed within its duration and not marked as leaving. Objects are spread over the live
members by rendezvous (highest-random-weight) hashing of their *ring key* — the controller
owner's uid, else their own — so a Search and every child of it land on one member, and when a
member joins or leaves only the keys it gains or held move (about 1/N of them), never a
reshuffle of the rest.

Nothing here reads a clock or the network: the caller passes ``now`` and the Leases it listed.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from durable_search.api.status import HttpTaskStatus
from durable_search.api.timestamps import parse_time

RING_LABEL = "durablesearch.dev/ring"
LEAVING_ANNOTATION = "durablesearch.dev/leaving"
DEFAULT_LEASE_SECONDS = 15


def ring_key(body: Mapping[str, Any]) -> str:
    """The uid that places ``body`` on the ring: its controller owner's, else its own."""
    metadata = body.get("metadata") or {}
    for reference in metadata.get("ownerReferences") or ():
        if reference.get("controller") and reference.get("uid"):
            return str(reference["uid"])
    return str(metadata.get("uid") or "")


def _weight(member: str, key: str) -> int:
    digest = hashlib.blake2b(f"{member}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner_of(key: str, members: Sequence[str]) -> str | None:
    """The member that owns ``key`` among ``members`` (None when there are none)."""
    if not members:
        return None
    return max(members, key=lambda member: (_weight(member, key), member))


@dataclass(frozen=True)
class Member:
    """What a member's Lease says about it."""

    identity: str
    renewed: datetime.datetime | None
    lease_seconds: int
    leaving: bool

    def live(self, now: datetime.datetime) -> bool:
        if self.leaving or self.renewed is None:
            return False
        return now < self.renewed + datetime.timedelta(seconds=self.lease_seconds)


def member_of_lease(lease: Mapping[str, Any]) -> Member | None:
    """The member a ring Lease describes, or None for a Lease that is not a member's."""
    spec = lease.get("spec") or {}
    identity = spec.get("holderIdentity")
    if not identity:
        return None
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    renew = spec.get("renewTime") or spec.get("acquireTime")
    return Member(
        identity=str(identity),
        renewed=parse_time(renew) if renew else None,
        lease_seconds=int(spec.get("leaseDurationSeconds") or DEFAULT_LEASE_SECONDS),
        leaving=annotations.get(LEAVING_ANNOTATION) == "true",
    )


def live_members(leases: Iterable[Mapping[str, Any]], now: datetime.datetime) -> tuple[str, ...]:
    """The identities of the live members, sorted (the same list for every member)."""
    members = (member_of_lease(lease) for lease in leases)
    return tuple(sorted({m.identity for m in members if m is not None and m.live(now)}))


def lease_name(ring: str, identity: str) -> str:
    return f"{ring}-{identity}"


def lease_body(
    ring: str,
    identity: str,
    now: datetime.datetime,
    *,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    leaving: bool = False,
    namespaces: Sequence[str] = (),
) -> dict[str, Any]:
    """The Lease a member writes to say it is live (or leaving), over ``namespaces``."""
    return operator_lease(
        lease_name(ring, identity),
        identity,
        now,
        lease_seconds=lease_seconds,
        labels={RING_LABEL: ring, MODE_LABEL: "ring"},
        annotations={
            LEAVING_ANNOTATION: "true" if leaving else "false",
            NAMESPACES_ANNOTATION: encode_namespaces(namespaces),
        },
    )


# -- every operator's Lease --------------------------------------------------------------
# Standalone operators hold one too (``engine.rivals``): how it runs, over which namespaces.

MODE_LABEL = "durablesearch.dev/mode"
NAMESPACES_ANNOTATION = "durablesearch.dev/namespaces"
ALL_NAMESPACES = "*"


def encode_namespaces(namespaces: Sequence[str]) -> str:
    """The namespaces annotation: the names or patterns, comma-separated; "*" for every one."""
    return ",".join(namespaces) if namespaces else ALL_NAMESPACES


def operator_lease(
    name: str,
    identity: str,
    now: datetime.datetime,
    *,
    lease_seconds: int,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "labels": dict(labels), "annotations": dict(annotations)},
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": lease_seconds,
            "renewTime": stamp,
        },
    }


@dataclass(frozen=True)
class Shares:
    """A snapshot of the ring as one member sees it."""

    me: str
    members: tuple[str, ...]

    def owns(self, key: str) -> bool:
        return owner_of(key, self.members) == self.me


# -- claims --------------------------------------------------------------------------------
# Who may send an HttpTask's next request. A child is created claimed by the member that
# creates it (an annotation); every outcome a member writes names it in ``status.claim``; a
# member that gives an object up writes an empty holder (released).

CLAIMED_BY_ANNOTATION = "durablesearch.dev/claimed-by"


def claim_holder(body: Mapping[str, Any]) -> str | None:
    """The member holding ``body``'s next action: a name, "" when released, None if unclaimed."""
    claim = (body.get("status") or {}).get("claim")
    if isinstance(claim, Mapping) and "holder" in claim:
        return str(claim.get("holder") or "")
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    holder = annotations.get(CLAIMED_BY_ANNOTATION)
    return str(holder) if holder else None


class ClaimVerdict:
    """What a member may do with an action it wants to send."""


@dataclass(frozen=True)
class Hold(ClaimVerdict):
    """It holds the claim: send."""


@dataclass(frozen=True)
class TakeOver(ClaimVerdict):
    """Unclaimed, released, or held by a member that is gone: claim it first (a guarded write)."""

    previous: str | None


@dataclass(frozen=True)
class WaitForRelease(ClaimVerdict):
    """A live member still holds it (it may have the request in flight): wait for its release."""

    holder: str


def decide_claim(
    body: Mapping[str, Any], me: str, holds_claims: Callable[[str], bool]
) -> ClaimVerdict:
    """Whether ``me`` may send ``body``'s next action.

    ``holds_claims(holder)``: the holder's Lease exists and is fresh (a leaving member's claims
    still hold while it drains).
    """
    holder = claim_holder(body)
    if holder == me:
        return Hold()
    if not holder or not holds_claims(holder):
        return TakeOver(holder)
    return WaitForRelease(holder)


def claim_status(holder: str) -> HttpTaskStatus:
    """The status fragment naming ``holder`` ("" releases the claim)."""
    return {"claim": {"holder": holder}}


def with_claim(manifest: Mapping[str, Any], holder: str) -> dict[str, Any]:
    """A child's manifest naming ``holder`` as the holder of its first claim."""
    metadata = dict(manifest["metadata"])
    metadata["annotations"] = {**(metadata.get("annotations") or {}), CLAIMED_BY_ANNOTATION: holder}
    return {**manifest, "metadata": metadata}
