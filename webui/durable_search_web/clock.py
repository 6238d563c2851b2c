"""The web service's time, read nowhere else.

``monotonic()`` times waits, expiries and rates; ``now()`` (UTC) is what timestamps are compared
with (a token's ``exp``, a timeline's offsets). ``create_app`` takes one clock and shares it
through the ``CLOCK`` key with the cache, the authorizer and the handlers; tests pass one they
move by hand.
"""

from __future__ import annotations

import datetime as dt
import time

from durable_search.api import timestamps


class Clock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> dt.datetime:
        return timestamps.now()


SYSTEM_CLOCK = Clock()
