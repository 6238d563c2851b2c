"""A web service clock that moves only when a test says so (``durable_search_web.clock``)."""

from __future__ import annotations

import datetime as dt

from durable_search_web.clock import Clock

START = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)


class FakeClock(Clock):
    """Monotonic and wall time, moved together by ``advance``."""

    def __init__(self) -> None:
        self.elapsed = 0.0

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds

    def monotonic(self) -> float:
        return 1000.0 + self.elapsed

    def now(self) -> dt.datetime:
        return START + dt.timedelta(seconds=self.elapsed)
