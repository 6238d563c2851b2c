"""Not beside a rival: which Leases conflict, and the wait at start (a fake API, a fake clock)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest

from durable_search.controller.rivals import wait_until_alone
from durable_search.engine import rivals
from durable_search.engine.ring import lease_body
from durable_search.engine.rivals import Mode, namespaces_overlap, standalone_lease
from durable_search.errors import OperatorConflictError

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 12, 2, 7, 0, tzinfo=dt.UTC)
ALL = ("*",)


def ring_lease(ring: str, identity: str, at: dt.datetime, ns: tuple[str, ...] = ()) -> Any:
    return lease_body(ring, identity, at, namespaces=ns)


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        (("team-a",), ("team-a", "x"), True),
        (("team-a",), ("team-b",), False),
        (("team-*",), ("team-b",), True),
        (("team-*",), ("other",), False),
        (("team-*",), ("t?am-*",), True),  # two patterns: assumed
        (("!kube-*",), ("team-b",), True),  # an exclusion: assumed
        (ALL, ("anything",), True),
    ],
)
def test_namespaces_overlap_by_name_or_pattern(
    a: tuple[str, ...], b: tuple[str, ...], overlap: bool
) -> None:
    assert namespaces_overlap(a, b) is overlap
    assert namespaces_overlap(b, a) is overlap


def test_a_ring_conflicts_with_a_live_standalone_operator_and_another_ring_not_its_own() -> None:
    leases = [
        standalone_lease("solo", NOW - dt.timedelta(seconds=3), ("team-a",)),
        ring_lease("blue", "b1", NOW, ("team-a",)),
        ring_lease("green", "g1", NOW, ("team-a",)),
        ring_lease("green", "g2", NOW, ("team-b",)),  # elsewhere: no conflict
    ]
    me = Mode("green", ("team-a",))
    found = rivals.rivals(leases, me, "green-me", NOW)
    assert [rival.lease for rival in found] == ["durable-search-standalone-solo", "blue-b1"]
    assert "renewed 3s ago" in found[0].describe()
    solo = Mode(None, ("team-a",))
    found = rivals.rivals(leases, solo, "durable-search-standalone-solo", NOW)
    assert [rival.lease for rival in found] == ["blue-b1", "green-g1"]


def test_lapsed_leases_are_no_rivals_and_long_lapsed_ones_are_forgotten() -> None:
    lapsed = ring_lease("blue", "b1", NOW - dt.timedelta(seconds=16))
    long_ago = standalone_lease("old", NOW - dt.timedelta(minutes=10), ALL)
    assert rivals.rivals([lapsed, long_ago], Mode("green", ALL), "green-me", NOW) == []
    assert rivals.rivals([lapsed], Mode(None, ALL), "x", NOW - dt.timedelta(seconds=2)) != []
    assert rivals.forgotten([lapsed, long_ago], NOW) == ["durable-search-standalone-old"]


def test_a_leaving_ring_member_is_still_a_rival_while_it_drains() -> None:
    leaving = lease_body("blue", "b1", NOW, leaving=True)
    assert [r.holder for r in rivals.rivals([leaving], Mode(None, ALL), "solo", NOW)] == ["b1"]


class FakeApi:
    """Leases in memory; ``renewing`` ones are renewed whenever they are listed."""

    def __init__(self, clock: list[dt.datetime]) -> None:
        self.clock = clock
        self.leases: dict[str, dict[str, Any]] = {}
        self.renewing: set[str] = set()
        self.deleted: list[str] = []

    async def list_leases(self, namespace: str, selector: str) -> list[Mapping[str, Any]]:
        for name in self.renewing & set(self.leases):
            self.leases[name]["spec"]["renewTime"] = self.clock[0].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return list(self.leases.values())

    async def delete_lease(self, namespace: str, name: str) -> None:
        self.deleted.append(name)
        self.leases.pop(name, None)


async def start(api: FakeApi, clock: list[dt.datetime], mine: Mode, my_lease: str) -> float:
    """Run the wait with a clock that moves with each sleep; the seconds it waited."""
    own = standalone_lease("me", NOW, ALL) if mine.ring is None else lease_body("g", "me", NOW)

    async def write_own() -> None:
        api.leases[my_lease] = own

    async def remove_own() -> None:
        api.leases.pop(my_lease, None)

    async def sleep(seconds: float) -> None:
        clock[0] += dt.timedelta(seconds=seconds)

    await wait_until_alone(
        api,  # type: ignore[arg-type]
        "ns",
        mine,
        my_lease,
        write_own=write_own,
        remove_own=remove_own,
        clock=lambda: clock[0],
        sleep=sleep,
    )
    return (clock[0] - NOW).total_seconds()


async def test_a_killed_rivals_lease_is_waited_out_then_the_operator_starts() -> None:
    clock = [NOW]
    api = FakeApi(clock)
    api.leases["blue-b1"] = ring_lease("blue", "b1", NOW - dt.timedelta(seconds=10))
    waited = await start(api, clock, Mode(None, ALL), "durable-search-standalone-me")
    assert 5 <= waited <= 8  # until its Lease lapsed, 15 s after its last renewal
    assert "durable-search-standalone-me" in api.leases


async def test_a_live_rival_is_refused_with_its_name_and_the_operator_leaves_no_lease() -> None:
    clock = [NOW]
    api = FakeApi(clock)
    api.leases["durable-search-standalone-solo"] = standalone_lease("solo", NOW, ALL)
    api.renewing.add("durable-search-standalone-solo")
    with pytest.raises(OperatorConflictError) as raised:
        await start(api, clock, Mode("green", ALL), "green-me")
    assert "ring green cannot run beside a standalone operator (solo" in raised.value.message
    assert "--ring" in raised.value.message
    assert "green-me" not in api.leases


async def test_forgotten_leases_are_deleted_at_start() -> None:
    clock = [NOW]
    api = FakeApi(clock)
    api.leases["blue-old"] = ring_lease("blue", "old", NOW - dt.timedelta(hours=1))
    assert await start(api, clock, Mode(None, ALL), "durable-search-standalone-me") == 0
    assert api.deleted == ["blue-old"]
