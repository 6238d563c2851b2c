"""The ring's pure decisions: ring keys, ownership, liveness of Leases, fair and stable shares."""

from __future__ import annotations

import datetime
import uuid
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_search.engine.ring import (
    Shares,
    lease_body,
    live_members,
    member_of_lease,
    owner_of,
    ring_key,
)

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 12, 2, 1, 0, tzinfo=datetime.UTC)
KEYS = [str(uuid.UUID(int=n * 7919 + 1)) for n in range(6000)]


def test_a_child_is_placed_by_its_controller_owner() -> None:
    child = {
        "metadata": {
            "uid": "child",
            "ownerReferences": [
                {"uid": "other", "controller": False},
                {"uid": "search", "controller": True},
            ],
        }
    }
    assert ring_key(child) == "search"
    assert ring_key({"metadata": {"uid": "search"}}) == "search"


def test_no_members_own_nothing() -> None:
    assert owner_of("k", ()) is None


def test_shares_are_fair_within_a_few_percent() -> None:
    for members in (("a", "b"), ("a", "b", "c")):
        counts = Counter(owner_of(key, members) for key in KEYS)
        expected = len(KEYS) / len(members)
        assert set(counts) == set(members)
        for member in members:
            assert abs(counts[member] - expected) < 0.06 * expected, counts


def test_a_join_moves_only_what_the_newcomer_takes() -> None:
    before = Shares("a", ("a", "b"))
    after = Shares("a", ("a", "b", "c"))
    gained = [key for key in KEYS if after.owns(key) and not before.owns(key)]
    lost = [key for key in KEYS if before.owns(key) and not after.owns(key)]
    assert not gained, "a member never gains when another joins"
    assert all(owner_of(key, after.members) == "c" for key in lost)
    # and b loses only to c too: nothing moves between the members that stayed
    for key in KEYS:
        old, new = owner_of(key, before.members), owner_of(key, after.members)
        assert new in (old, "c")


def test_a_leave_hands_out_only_the_leavers_keys() -> None:
    for key in KEYS[:1000]:
        old = owner_of(key, ("a", "b", "c"))
        new = owner_of(key, ("a", "c"))
        if old != "b":
            assert new == old


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6, unique=True), st.text())
def test_every_member_agrees_on_the_owner_whatever_order_it_lists(
    members: list[str], key: str
) -> None:
    assert owner_of(key, members) == owner_of(key, list(reversed(members)))
    assert owner_of(key, members) in members


def test_a_lease_is_live_until_its_duration_passes_and_never_when_leaving() -> None:
    lease = lease_body("ring", "a", NOW, lease_seconds=15)
    member = member_of_lease(lease)
    assert member is not None and member.identity == "a"
    assert member.live(NOW + datetime.timedelta(seconds=14))
    assert not member.live(NOW + datetime.timedelta(seconds=15))
    leaving = member_of_lease(lease_body("ring", "a", NOW, leaving=True))
    assert leaving is not None and not leaving.live(NOW)


def test_live_members_are_sorted_and_skip_lapsed_and_foreign_leases() -> None:
    old = NOW - datetime.timedelta(seconds=60)
    leases = [
        lease_body("ring", "c", NOW),
        lease_body("ring", "a", NOW),
        lease_body("ring", "b", old),
        {"metadata": {"name": "kube-scheduler"}, "spec": {}},
    ]
    assert live_members(leases, NOW) == ("a", "c")


def test_a_members_share_of_a_rate() -> None:
    from durable_search.engine.pacing import share

    assert share(2.0, len(Shares("a", ("a", "b")).members)) == 1.0
    assert share(2.0, len(Shares("a", ()).members)) == 2.0


def test_a_members_lease_lives_in_a_named_namespace_never_a_pattern(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from durable_search.controller.config import OperatorConfig

    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.delenv("POD_NAME", raising=False)
    assert OperatorConfig(namespaces=("team-*", "ops")).lease_namespace("default") == "ops"
    assert OperatorConfig(namespaces=("team-*",)).lease_namespace("default") == "default"
    assert OperatorConfig().lease_namespace("default") == "default"
    monkeypatch.setenv("POD_NAMESPACE", "durable-search")
    assert OperatorConfig(namespaces=("ops",)).lease_namespace("default") == "durable-search"
    monkeypatch.setenv("POD_NAME", "operator-7d9f-abcde")
    assert OperatorConfig().member_identity() == "operator-7d9f-abcde"
    assert OperatorConfig(identity="m1").member_identity() == "m1"
