"""The object store: newest body wins, and a retired object stays retired."""

from __future__ import annotations

from typing import Any

from durable_search.controller.store import ObjectStore


def body(version: int, uid: str = "u1", phase: str | None = None) -> dict[str, Any]:
    metadata = {"namespace": "ns", "name": "t", "uid": uid, "resourceVersion": str(version)}
    return {"metadata": metadata, "status": {"phase": phase} if phase else {}}


def test_an_older_body_never_replaces_a_newer_one() -> None:
    store = ObjectStore()
    assert store.put(body(5))
    assert not store.put(body(4))
    assert store.get(("ns", "t")) == body(5)


def test_a_stale_event_cannot_revive_a_retired_object() -> None:
    store = ObjectStore()
    store.put(body(3))
    store.retire(body(7, phase="Succeeded"))  # our own write's answer: the task finished
    assert store.get(("ns", "t")) is None
    assert not store.put(body(3)), "the create's ADDED, arriving late, was taken as news"
    assert not store.put(body(7, phase="Succeeded"))
    assert store.put(body(8))  # a genuinely newer version (someone changed it) is news
    assert store.get(("ns", "t")) == body(8)


def test_a_recreated_object_and_a_deletion_clear_the_floor() -> None:
    store = ObjectStore()
    store.retire(body(9))
    assert store.put(body(2, uid="u2")), "a new object under the same name"
    store.retire(body(4, uid="u2"))
    store.remove(("ns", "t"), "u2")
    assert store.put(body(1, uid="u2"))


def test_a_body_read_from_the_api_server_is_kept_even_at_the_retired_version() -> None:
    # A Search looking up a finished child (someone else's under its name) must see it, or it
    # would look it up again and again.
    store = ObjectStore()
    store.retire(body(7, phase="Succeeded"))
    assert store.put_read(body(7, phase="Succeeded"))
    assert store.get(("ns", "t")) == body(7, phase="Succeeded")
    store.retire(body(9, phase="Succeeded"))
    assert not store.put_read(body(8)), "an older read is still older"
