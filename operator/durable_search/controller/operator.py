"""``durable-search operator``: kopf wired to the runtime, plus health and metrics endpoints.

This is the only module with kopf decorators. Only low-level ``@kopf.on.event`` handlers are
registered: they need no progress or diffbase storage, add no finalizers, and post no Events of
their own, so kopf itself writes nothing to the API (the writes are ours, and counted).
kopf runs standalone (no peering): run one replica (the chart uses ``strategy: Recreate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
from aiohttp import web
from kubernetes_asyncio import client as k8s
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, SEARCH_PLURAL, VERSION
from durable_search.api.timestamps import now
from durable_search.controller.credentials import Credentials
from durable_search.controller.events import EventRecorder
from durable_search.controller.metrics import METRICS
from durable_search.controller.runtime import Runtime
from durable_search.controller.searches import SearchContext
from durable_search.controller.store import ObjectStore
from durable_search.controller.tasks import TaskContext
from durable_search.http.addresses import AddressPolicy
from durable_search.http.client import ClientSettings, SharedHttpClient
from durable_search.kubeapi import KubeApi

logger = logging.getLogger("durable_search.operator")


@dataclass(frozen=True)
class OperatorConfig:
    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()  # empty: the context's namespace
    all_namespaces: bool = False
    allow_cidrs: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    health_host: str = "0.0.0.0"
    health_port: int | None = None
    max_connections: int = 512
    max_connections_per_host: int = 16
    extra_settings: dict[str, Any] = field(default_factory=dict)


async def run_operator(
    config: OperatorConfig,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Run until ``stop_flag`` is set (or forever); everything started here is stopped here."""
    if config.kubeconfig:
        os.environ["KUBECONFIG"] = config.kubeconfig  # kopf's own login reads it
    api = await KubeApi.connect(config.kubeconfig)
    try:
        await api.check_served()
    except BaseException:
        await api.close()
        raise
    namespaces = config.namespaces or (context_namespace(),)
    http = SharedHttpClient(
        ClientSettings(
            policy=AddressPolicy.from_strings(config.allow_cidrs),
            allow_hosts=frozenset(h.lower() for h in config.allow_hosts),
            max_connections=config.max_connections,
            max_connections_per_host=config.max_connections_per_host,
        )
    )
    task_store, search_store = ObjectStore(), ObjectStore()
    runtime = Runtime(
        TaskContext(
            api=api,
            store=task_store,
            http=http,
            credentials=Credentials(api.api_client, http),
            clock=now,
        ),
        SearchContext(
            api=api,
            searches=search_store,
            tasks=task_store,
            events=EventRecorder(api.api_client),
            clock=now,
        ),
    )
    registry = _registry(runtime, explicit_kubeconfig=bool(config.kubeconfig))
    patterns = any(ch in ns for ns in namespaces for ch in "*?[")
    settings = _settings(scan_namespaces=config.all_namespaces or patterns)
    ready = ready_flag or asyncio.Event()
    health = await _start_health_server(config, api, ready) if config.health_port else None
    logger.info(
        "watching %s; SSRF allow-list: cidrs=%s hosts=%s",
        "all namespaces" if config.all_namespaces else ", ".join(namespaces),
        list(config.allow_cidrs) or "none",
        list(config.allow_hosts) or "none",
    )
    try:
        await kopf.operator(
            registry=registry,
            settings=settings,
            standalone=True,
            clusterwide=config.all_namespaces,
            namespaces=() if config.all_namespaces else namespaces,
            stop_flag=stop_flag,
            ready_flag=ready,
        )
    finally:
        await runtime.stop()
        await http.aclose()
        if health is not None:
            await health.cleanup()
        await api.close()


def _registry(runtime: Runtime, *, explicit_kubeconfig: bool) -> kopf.OperatorRegistry:
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


def _settings(*, scan_namespaces: bool) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # We post our own Events for the transitions users care about; kopf's would be API writes.
    settings.posting.enabled = False
    # Not used by event handlers, but if a high-level handler is ever added, keep its state
    # under our own prefix rather than kopf's.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.persistence.finalizer = f"{GROUP}/kopf-finalizer"
    # Watch streams can hang silently: have the server end them, and the client give up later.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    # List in pages: one response holding every object would set the process's peak memory.
    settings.watching.chunk_size = 500
    # Scanning needs cluster-wide list rights, which a namespaced install does not grant; it
    # is only needed to follow namespaces matching a pattern (--namespace 'team-*').
    settings.scanning.disabled = not scan_namespaces
    # Level-triggered workers: a short batch window is enough to coalesce bursts.
    settings.batching.batch_window = 0.02
    return settings


def context_namespace() -> str:
    """The kubeconfig context's namespace, else the Pod's, else ``default``."""
    service_account_ns = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    with contextlib.suppress(OSError):
        return service_account_ns.read_text().strip()
    from kubernetes_asyncio.config import kube_config

    with contextlib.suppress(Exception):
        _contexts, active = kube_config.list_kube_config_contexts(os.environ.get("KUBECONFIG"))
        namespace = (active or {}).get("context", {}).get("namespace")
        if namespace:
            return str(namespace)
    return "default"


async def _start_health_server(
    config: OperatorConfig, api: KubeApi, ready: asyncio.Event
) -> web.AppRunner:
    version_api = k8s.VersionApi(api.api_client)
    last_ok = 0.0

    async def healthz(_: web.Request) -> web.Response:
        # Liveness that tests something real: the API server answers us (cached for 10 s).
        nonlocal last_ok
        if time.monotonic() - last_ok > 10:
            try:
                async with asyncio.timeout(5):
                    await version_api.get_code()
            except Exception as error:
                return web.Response(status=503, text=f"kubernetes API unreachable: {error}\n")
            last_ok = time.monotonic()
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if not ready.is_set():
            return web.Response(status=503, text="watches not started\n")
        return web.Response(text="ok\n")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(METRICS.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    assert config.health_port is not None
    await web.TCPSite(runner, config.health_host, config.health_port).start()
    return runner


def parse_list(values: Sequence[str] | None, env: str) -> tuple[str, ...]:
    """Repeated flags, else the comma-separated environment variable beside them."""
    if values:
        return tuple(values)
    raw = os.environ.get(env, "")
    return tuple(v.strip() for v in raw.split(",") if v.strip())
