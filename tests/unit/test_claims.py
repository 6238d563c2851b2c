"""Claims in a ring: two members taking over the same claim at once, against a guarded write."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from durable_search.controller.claims import Claims
from durable_search.engine import ring
from durable_search.errors import ConflictError


class Members:
    """The members whose claims hold: their Leases are fresh (a dead member's is gone)."""

    def __init__(self, identity: str, live: set[str]) -> None:
        self.identity = identity
        self.live = live

    def holds_claims(self, identity: str) -> bool:
        return identity in self.live


class GuardedApi:
    """Status writes guarded by resourceVersion, as the API server's: a stale one is a 409."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.writes = 0

    async def write_status(
        self, plural: str, body: Mapping[str, Any], status: Mapping[str, Any]
    ) -> dict[str, Any]:
        await asyncio.sleep(0)  # both members have decided before either write lands
        version = self.body["metadata"]["resourceVersion"]
        if body["metadata"]["resourceVersion"] != version:
            raise ConflictError("the object has been modified; please apply your changes again")
        self.writes += 1
        metadata = {**body["metadata"], "resourceVersion": str(int(version) + 1)}
        self.body = {**body, "metadata": metadata, "status": dict(status)}
        return self.body


def task_claimed_by(holder: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "t",
            "namespace": "ns",
            "resourceVersion": "7",
            "annotations": {ring.CLAIMED_BY_ANNOTATION: holder},
        },
        "status": {"phase": "Running", "attempts": 1, "claim": {"holder": holder}},
    }


def member(identity: str) -> Claims:
    return Claims(Members(identity, {"m1", "m2"}))  # type: ignore[arg-type]


async def test_of_two_members_taking_over_a_dead_members_claim_exactly_one_wins() -> None:
    task = task_claimed_by("dead")
    api = GuardedApi(task)
    members = [member("m1"), member("m2")]
    assert all(isinstance(m.verdict(task), ring.TakeOver) for m in members)
    written = await asyncio.gather(*(m.take_over(api, task, "dead") for m in members))  # type: ignore[arg-type]
    winners = [body for body in written if body is not None]
    assert len(winners) == 1, "exactly one guarded write lands"
    assert api.writes == 1
    holder = winners[0]["status"]["claim"]["holder"]
    assert api.body["status"]["claim"] == {"holder": holder}
    # The winner sends; the loser, re-reading, waits for the winner to release or to die.
    for m in members:
        expected = ring.Hold if m.me == holder else ring.WaitForRelease
        assert isinstance(m.verdict(api.body), expected), m.me


async def test_a_live_members_claim_is_not_taken_over_but_a_released_one_is() -> None:
    assert isinstance(member("m2").verdict(task_claimed_by("m1")), ring.WaitForRelease)
    assert isinstance(member("m2").verdict(task_claimed_by("")), ring.TakeOver)
