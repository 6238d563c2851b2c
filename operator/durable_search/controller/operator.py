"""``durable-search operator``: the composition root, wiring kopf to the runtime.

Everything the operator runs is built and stopped here: the API client, the shared HTTP client,
the admission guard, credentials, the stores and workers, the health server and kopf itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import kopf

from durable_search.api.timestamps import now
from durable_search.controller.admission import AdmissionGuard
from durable_search.controller.config import OperatorConfig
from durable_search.controller.credentials import Credentials
from durable_search.controller.events import EventRecorder
from durable_search.controller.handlers import registry_for, settings_for
from durable_search.controller.health import start_health_server
from durable_search.controller.pacing import Pacing
from durable_search.controller.runtime import Runtime
from durable_search.controller.searches import SearchContext
from durable_search.controller.store import ObjectStore
from durable_search.controller.tasks import TaskContext
from durable_search.controller.watcher import WEB_AUDIENCE, WatcherPath
from durable_search.http.addresses import AddressPolicy
from durable_search.http.client import ClientSettings, SharedHttpClient
from durable_search.kube.api import KubeApi
from durable_search.kube.config import context_namespace

logger = logging.getLogger("durable_search.operator")


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
    client_settings = ClientSettings(
        policy=AddressPolicy.from_strings(config.allow_cidrs),
        allow_hosts=frozenset(h.lower() for h in config.allow_hosts),
        max_connections=config.max_connections,
        max_connections_per_host=config.max_connections_per_host,
        open_path_enabled=bool(config.watcher_base_url),
    )
    http = SharedHttpClient(client_settings)
    guard = AdmissionGuard(api)
    credentials = Credentials(api, http, client_settings, guard)
    credentials.identity = await own_service_account(api)
    watcher = (
        WatcherPath.for_base(
            config.watcher_base_url, lambda: credentials.operator_token(WEB_AUDIENCE)
        )
        if config.watcher_base_url
        else None
    )
    task_store, search_store = ObjectStore(), ObjectStore()
    runtime = Runtime(
        TaskContext(
            api=api,
            store=task_store,
            http=http,
            credentials=credentials,
            clock=now,
            watcher=watcher,
            pacing=Pacing(api),
        ),
        SearchContext(
            api=api,
            searches=search_store,
            tasks=task_store,
            events=EventRecorder(api, now),
            clock=now,
        ),
    )
    registry = registry_for(runtime, explicit_kubeconfig=bool(config.kubeconfig))
    settings = settings_for(
        scan_namespaces=config.all_namespaces or config.follows_namespace_patterns
    )
    ready = ready_flag or asyncio.Event()
    health = (
        await start_health_server(config.health_host, config.health_port, api, ready)
        if config.health_port
        else None
    )
    logger.info(
        "watching %s; SSRF allow-list: cidrs=%s hosts=%s; watcher path: %s",
        "all namespaces" if config.all_namespaces else ", ".join(namespaces),
        list(config.allow_cidrs) or "none",
        list(config.allow_hosts) or "none",
        config.watcher_base_url or "none",
    )
    await guard.check()
    guarding = asyncio.create_task(guard.run(), name="admission-guard")
    expiring = asyncio.create_task(runtime.ttl.run(), name="ttl-after-finished")
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
        for background in (guarding, expiring):
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
        await runtime.stop()
        await http.aclose()
        if health is not None:
            await health.cleanup()
        await api.close()


async def own_service_account(api: KubeApi) -> tuple[str, str] | None:
    """(namespace, name) of the ServiceAccount the operator runs as, if it runs as one."""
    try:
        username = await api.whoami()
    except Exception as error:  # an older or stricter API server: no watcher token then
        logger.warning("could not learn the operator's own identity: %s", error)
        return None
    prefix, _, rest = username.partition("system:serviceaccount:")
    namespace, _, name = rest.partition(":")
    if prefix or not namespace or not name:
        logger.info("running as %s (not a ServiceAccount): watcher polls carry no token", username)
        return None
    return namespace, name
