"""Status writes send the RFC 7386 merge patch between the old and the new status."""

from __future__ import annotations

from durable_search.kubeapi import merge_patch


def test_removed_keys_become_null_and_unchanged_keys_are_left_out() -> None:
    old = {"phase": "Running", "nextAttemptTime": "t", "attempts": 1, "response": {"a": 1, "b": 2}}
    new = {"phase": "Succeeded", "attempts": 1, "response": {"a": 1, "c": 3}}
    assert merge_patch(old, new) == {
        "phase": "Succeeded",
        "nextAttemptTime": None,
        "response": {"b": None, "c": 3},
    }


def test_lists_are_replaced_whole() -> None:
    assert merge_patch({"log": [1, 2]}, {"log": [1, 2, 3]}) == {"log": [1, 2, 3]}
    assert merge_patch({"log": [1]}, {"log": [1]}) == {}
