"""Status writes send the RFC 7386 merge patch; held objects drop the API's bookkeeping."""

from __future__ import annotations

from durable_search.kube.objects import merge_patch, without_bookkeeping


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


def test_bookkeeping_is_dropped_from_held_objects() -> None:
    body = {
        "metadata": {
            "name": "s",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "1"},
        },
        "spec": {"query": "q"},
    }
    slim = without_bookkeeping(body)
    assert slim["metadata"] == {"name": "s", "annotations": {"keep": "1"}}
    assert slim["spec"] == body["spec"]
    assert "managedFields" in body["metadata"], "the original is left alone"
