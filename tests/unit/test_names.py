"""Child names: deterministic, within the API's limits, and each Search's own."""

from __future__ import annotations

from durable_search.engine.names import child_name, label_value, watcher_name


def test_names_fit_the_api_limits_and_never_collide_with_the_watcher() -> None:
    long_name = "s" * 250
    assert len(child_name(long_name, "wiki", "uid")) <= 253
    assert child_name(long_name, "wiki", "uid") != child_name(long_name, "news", "uid")
    assert watcher_name("s1") == "s1--watcher" != child_name("s1", "watcher", "uid")
    value = label_value("x" * 100)
    assert len(value) <= 63 and value[-1].isalnum()


def test_searches_whose_names_and_providers_concatenate_alike_get_different_children() -> None:
    # Search "a" with provider "b-c" and Search "a-b" with provider "c" once shared "a-b-c".
    assert child_name("a", "b-c", "uid-of-a") != child_name("a-b", "c", "uid-of-a-b")


def test_the_name_is_stable_for_one_search_and_differs_for_a_recreated_one() -> None:
    assert child_name("s", "wiki", "uid-1") == child_name("s", "wiki", "uid-1")
    assert child_name("s", "wiki", "uid-1") != child_name("s", "wiki", "uid-2")
