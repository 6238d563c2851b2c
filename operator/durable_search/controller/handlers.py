"""The kopf registry and settings: the only module with kopf decorators.

Only low-level ``@kopf.on.event`` handlers are registered: they need no progress or diffbase
storage, add no finalizers, and post no Events of their own, so kopf itself writes nothing to
the API (the writes are ours, and counted). kopf runs standalone (no peering): run one replica.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import kopf

from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, SEARCH_PLURAL, VERSION
from durable_search.controller.runtime import Runtime


def registry_for(runtime: Runtime, *, explicit_kubeconfig: bool) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if explicit_kubeconfig or os.environ.get("KUBECONFIG"):
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.event(GROUP, VERSION, HTTPTASK_PLURAL, id="httptask-events", registry=registry)
    async def httptask_event(**kwargs: Any) -> None:
        event = kwargs["event"]
        await runtime.on_task_event(event.get("type"), event["object"])

    @kopf.on.event(GROUP, VERSION, SEARCH_PLURAL, id="search-events", registry=registry)
    async def search_event(**kwargs: Any) -> None:
        event = kwargs["event"]
        await runtime.on_search_event(event.get("type"), event["object"])

    return registry


class NoDiffBase(kopf.DiffBaseStorage):
    """No essence is kept or compared: event handlers never look at diffs.

    kopf's default ``build`` deep-copies every object on every event (status and bodies of up
    to 512 KiB included) only to drop most of it; profiled under load, that was the largest
    single cost inside kopf. Nothing is stored, so nothing is written either.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def settings_for(*, scan_namespaces: bool) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # We post our own Events for the transitions users care about; kopf's would be API writes.
    settings.posting.enabled = False
    # Not used by event handlers, but if a high-level handler is ever added, keep its state
    # under our own prefix rather than kopf's.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.finalizer = f"{GROUP}/kopf-finalizer"
    # Watch streams can hang silently: have the server end them, and the client give up later.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    # An API server that restarts is back within seconds: retry every 2 s at most (kopf's
    # default climbs to 5, 8, 13 and 21 s, and the watch resumes that much later).
    settings.networking.error_backoffs = (0.5, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)
    # List in pages: one response holding every object would set the process's peak memory.
    settings.watching.chunk_size = 500
    # kopf keeps a worker per object (its queue, the last event's body) until it has been idle
    # this long (default 5 s). After a restart every object arrives within seconds, so 5 s
    # meant all of them held at once: RSS 242 MiB against 129 MiB before the restart with
    # 3,000 finished Searches (``bench.memory``); with 0.5 s, 118 MiB. Our events come in
    # bursts a few ms apart, so a worker rarely has to be made twice.
    settings.queueing.idle_timeout = 0.5
    # Scanning needs cluster-wide list rights, which a namespaced install does not grant; it
    # is only needed to follow namespaces matching a pattern (--namespace 'team-*').
    settings.scanning.disabled = not scan_namespaces
    return settings
