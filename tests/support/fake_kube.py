"""An in-memory API server behind ``KubeClient``'s verbs, for unit tests over ``KubeApi``.

Objects are kept by their path. A create stamps the metadata the API server would (namespace,
uid, resourceVersion, creationTimestamp) and refuses a taken name (409); a merge patch applies
RFC 7386 and honours a ``resourceVersion`` precondition; a delete honours a uid precondition;
every write is an event for the watches of its collection, replayed from the version a watch
starts at. No schema, no admission, no authorization: what the callers rely on, no more.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

from durable_search.api.status import Body
from durable_search.api.timestamps import format_time
from durable_search.errors import ConflictError, NotFoundError


def apply_merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> Body:
    """RFC 7386: ``patch`` applied to ``target`` (a ``None`` value removes the key)."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            result[key] = apply_merge_patch(result.get(key) or {}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


class FakeKube:
    def __init__(
        self, now: Callable[[], dt.datetime] = lambda: dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
    ) -> None:
        self.objects: dict[str, Body] = {}
        self.tokens: list[str] = []  # every token ``as_token`` was given
        self._now = now
        self._version = 100
        self._events: list[tuple[int, str, Body]] = []  # (version, collection path, event)
        self._written = asyncio.Event()

    # -- seeding and reading back, for the tests ---------------------------------------------

    def add(self, collection: str, body: Mapping[str, Any]) -> Body:
        """Store ``body`` in ``collection`` as if created (and announced) now."""
        return self._create(collection, body)

    def at(self, collection: str, name: str) -> Body | None:
        return self.objects.get(f"{collection}/{name}")

    # -- KubeClient's verbs ------------------------------------------------------------------

    def as_token(self, token: str) -> FakeKube:
        self.tokens.append(token)
        return self

    async def close(self) -> None:
        return None

    async def get(self, path: str, **query: Any) -> Body:
        found = self.objects.get(path)
        if found is None:
            raise NotFoundError(f"{path.rsplit('/', 1)[-1]!r} not found")
        return copy.deepcopy(found)

    async def post(self, path: str, body: Any) -> Body:
        return self._create(path, body)

    async def merge_patch(self, path: str, patch: Any) -> Body:
        current = await self.get(path)
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            raise ConflictError("the object has been modified")
        return self._store(path, apply_merge_patch(current, patch), "MODIFIED")

    async def delete(self, path: str, options: Any = None) -> Body:
        current = await self.get(path)
        uid = ((options or {}).get("preconditions") or {}).get("uid")
        if uid is not None and uid != current["metadata"]["uid"]:
            raise ConflictError("precondition failed: uid")
        del self.objects[path]
        self._announce(path, "DELETED", current)
        return {}

    async def list_pages(
        self, path: str, *, page: int = 500, **query: Any
    ) -> AsyncGenerator[tuple[list[Body], str], None]:
        yield (
            [copy.deepcopy(o) for p, o in self.objects.items() if _collection(p) == path],
            str(self._version),
        )

    async def list_all(self, path: str, *, page: int = 500, **query: Any) -> tuple[list[Body], str]:
        items: list[Body] = []
        version = ""
        async for listed, page_version in self.list_pages(path):
            items.extend(listed)
            version = page_version
        return items, version

    async def watch(
        self, path: str, resource_version: str, *, timeout_seconds: int = 240, **query: Any
    ) -> AsyncGenerator[Body, None]:
        """Every event of ``path`` after ``resource_version``, then each as it happens."""
        seen = int(resource_version or 0)
        while True:
            for version, collection, event in self._events:
                if version > seen and collection == path:
                    seen = version
                    yield copy.deepcopy(event)
            await self._written.wait()  # set by the next write

    # -- the server's side -------------------------------------------------------------------

    def _create(self, collection: str, body: Mapping[str, Any]) -> Body:
        name = body["metadata"]["name"]
        path = f"{collection}/{name}"
        if path in self.objects:
            raise ConflictError(f"{name!r} already exists")
        created = copy.deepcopy(dict(body))
        created["metadata"] = {
            **created["metadata"],
            "namespace": collection.split("/namespaces/", 1)[1].split("/", 1)[0],
            "uid": f"uid-{name}",
            "creationTimestamp": format_time(self._now(), millis=False),
        }
        return self._store(path, created, "ADDED")

    def _store(self, path: str, body: Body, kind: str) -> Body:
        self._version += 1
        body["metadata"]["resourceVersion"] = str(self._version)
        self.objects[path] = body
        self._announce(path, kind, body)
        return copy.deepcopy(body)

    def _announce(self, path: str, kind: str, body: Body) -> None:
        if kind == "DELETED":
            self._version += 1
        event = {"type": kind, "object": copy.deepcopy(body)}
        self._events.append((self._version, _collection(path), event))
        self._written.set()
        self._written = asyncio.Event()


def _collection(path: str) -> str:
    return path.rsplit("/", 1)[0]
