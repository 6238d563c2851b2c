"""A lean async Kubernetes client for load generation: aiohttp with the admin certificate.

The benchmarks measure the control plane and the operator, so the load generator must cost
little CPU on the same two cores: plain JSON over one pooled aiohttp session, no models.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from durable_search.api.status import Body
from durable_search.cluster.controlplane import ControlPlane
from durable_search.cluster.pki import Pki

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: PTH123, SIM115
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class CpuMeter:
    """CPU seconds spent by named processes between ``start`` and ``stop``."""

    pids: dict[str, int]
    _start: dict[str, float] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        self.spent = {name: cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()}
        return self.spent


class Kube:
    def __init__(self, plane: ControlPlane, connections: int = 64) -> None:
        state = plane.state()
        assert state is not None
        pki = Pki(plane.state_dir / "pki")
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self.server = state.server
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=connections),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Body:
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self._session.request(
            method, self.server + path, data=data, headers=headers
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {text[:300]}")
            result: Body = json.loads(text) if text else {}
            return result

    async def timed(self, method: str, path: str, body: Any = None, **kw: Any) -> float:
        began = time.perf_counter()
        await self.request(method, path, body, **kw)
        return time.perf_counter() - began

    async def watch(
        self, path: str, on_event: Callable[[Body], None], resource_version: str = ""
    ) -> None:
        """Stream ``?watch=1`` events of ``path`` to ``on_event`` until cancelled."""
        version = resource_version
        while True:
            query = (
                f"?watch=1&allowWatchBookmarks=true&timeoutSeconds=240&resourceVersion={version}"
            )
            with contextlib.suppress(aiohttp.ClientPayloadError, asyncio.TimeoutError):
                async with self._session.get(self.server + path + query) as response:
                    async for line in response.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        meta = (event.get("object") or {}).get("metadata") or {}
                        version = meta.get("resourceVersion", version)
                        if event.get("type") == "ERROR":
                            version = ""
                            break
                        if event.get("type") != "BOOKMARK":
                            on_event(event)

    async def stream_events(self, path: str) -> AsyncIterator[Body]:
        queue: asyncio.Queue[Body] = asyncio.Queue()
        task = asyncio.create_task(self.watch(path, queue.put_nowait))
        try:
            while True:
                yield await queue.get()
        finally:
            task.cancel()
