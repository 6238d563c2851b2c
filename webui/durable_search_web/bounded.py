"""A bounded map with per-entry expiry: every per-client and per-token memory of the web service.

Anything keyed by what a caller sends (a token, an address) must not grow with the callers: an
attacker can send a new token or come from a new address on every request. This map holds at
most ``capacity`` entries and evicts the least recently used one beyond that; an entry also
lapses at its own deadline. The clock is passed in, so the behaviour is testable without sleeps.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedTtlMap(Generic[K, V]):
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def get(self, key: K, now: float) -> V | None:
        """The live value for ``key`` (and mark it recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, expires: float) -> None:
        self._entries[key] = (value, expires)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


def token_key(token: str) -> str:
    """What the caches key a bearer token by: a hash, never the token itself."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
