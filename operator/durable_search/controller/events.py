"""Kubernetes Events for the transitions a user cares about (``kubectl describe`` shows them).

Posted in the background after the status write they describe has landed; a failure to post
is logged and never blocks or fails the orchestration.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from durable_search.api import timestamps
from durable_search.api.timestamps import format_time
from durable_search.kube.api import KubeApi

logger = logging.getLogger("durable_search.events")
COMPONENT = "durable-search-operator"


class EventRecorder:
    def __init__(
        self, api: KubeApi | None, clock: Callable[[], dt.datetime] = timestamps.now
    ) -> None:
        self._api = api
        self._clock = clock
        self._pending: set[asyncio.Task[None]] = set()

    def post(
        self, body: Mapping[str, Any], reason: str, message: str, *, warning: bool = False
    ) -> None:
        if self._api is None:
            return
        task = asyncio.create_task(self._post(body, reason, message, warning))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(
        self, body: Mapping[str, Any], reason: str, message: str, warning: bool
    ) -> None:
        assert self._api is not None
        metadata = body["metadata"]
        stamp = format_time(self._clock(), millis=False)
        event = {
            "metadata": {
                "generateName": f"{metadata['name'][:200]}.",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": body["apiVersion"],
                "kind": body["kind"],
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "reason": str(reason),
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self._api.create_event(metadata["namespace"], event)
        except Exception as error:  # Events are best-effort by design
            logger.warning("could not post Event %s for %s: %s", reason, metadata["name"], error)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
