"""Functional waits: poll a condition until it holds or a generous timeout passes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


def eventually(check: Callable[[], bool], timeout: float = 30.0, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not true within {timeout}s: {message}")


async def eventually_async(
    check: Callable[[], Awaitable[bool]], within: float = 30.0, message: str = ""
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not true within {within}s: {message}")
