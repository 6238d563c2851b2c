"""Pure helpers for Kubernetes objects as dicts: ordering, slimming, merge patches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from durable_search.api.status import Body


def version_order(candidate: Mapping[str, Any], held: Mapping[str, Any]) -> int:
    """How ``candidate`` compares with ``held`` (the same object seen earlier).

    1: newer, or the object was deleted and re-created under the name; 0: the same version;
    -1: older. resourceVersions are opaque, but etcd's are integers and ordered; where they
    are not integers, any different version counts as newer.
    """
    if candidate["metadata"].get("uid") != held["metadata"].get("uid"):
        return 1
    new = str(candidate["metadata"].get("resourceVersion", ""))
    old = str(held["metadata"].get("resourceVersion", ""))
    if new.isdigit() and old.isdigit():
        return (int(new) > int(old)) - (int(new) < int(old))
    return 0 if new == old else 1


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def without_bookkeeping(body: Mapping[str, Any]) -> Body:
    """``body`` without what only the API server and kubectl need: ``managedFields`` and the
    last-applied annotation. As Python objects these dominate a small object's memory, and the
    operator and web service hold thousands of objects."""
    metadata = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    annotations = metadata.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        metadata["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return {**body, "metadata": metadata}


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before or key not in old:
            patch[key] = value
    return patch


def spec_version(body: Mapping[str, Any]) -> tuple[object, object]:
    """Which spec a body holds: a spec change bumps the generation (the uid: a re-creation)."""
    return body["metadata"].get("uid"), body["metadata"].get("generation")
