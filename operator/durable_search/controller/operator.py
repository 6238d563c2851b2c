"""``durable-search operator``: the composition root, wiring kopf to the runtime.

Everything the operator runs is built and stopped here: the API client, the shared HTTP client,
the admission guard, credentials, the stores and workers, the health server and kopf itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading

import kopf

from durable_search.api.timestamps import now
from durable_search.controller.admission import AdmissionGuard
from durable_search.controller.claims import Claims
from durable_search.controller.config import OperatorConfig
from durable_search.controller.credentials import Credentials
from durable_search.controller.events import EventRecorder
from durable_search.controller.handlers import registry_for, settings_for
from durable_search.controller.health import start_health_server
from durable_search.controller.membership import Membership
from durable_search.controller.pacing import Pacing
from durable_search.controller.rivals import (
    StandaloneLease,
    hold_standalone_lease,
    wait_until_alone,
)
from durable_search.controller.runtime import Runtime
from durable_search.controller.searches import SearchContext
from durable_search.controller.store import ObjectStore
from durable_search.controller.tasks import TaskContext
from durable_search.controller.watcher import WEB_AUDIENCE, WatcherPath
from durable_search.engine import ring
from durable_search.engine.ring import ALL_NAMESPACES
from durable_search.engine.rivals import Mode
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
    client_settings = http_settings(config)
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
    watched = () if config.all_namespaces else namespaces
    membership = await join_ring(api, config, watched)
    standalone = await hold_standalone(api, config, watched) if membership is None else None
    runtime = build_runtime(api, http, credentials, watcher, membership)
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
    announce(config, namespaces)
    await guard.check()
    guarding = asyncio.create_task(guard.run(), name="admission-guard")
    expiring = asyncio.create_task(runtime.ttl.run(), name="ttl-after-finished")
    presence = keep_lease(membership, standalone, runtime)
    # kopf cancels every task of the loop when it stops, our workers too: a ring member drains
    # before kopf is told to stop, so what is in flight can be recorded and released.
    kopf_stop = asyncio.Event() if stop_flag is not None else None
    stopping = asyncio.create_task(
        relay_stop(stop_flag, kopf_stop, ready, membership, runtime, config.drain_seconds),
        name="stop-when-asked",
    )
    try:
        await kopf.operator(
            registry=registry,
            settings=settings,
            standalone=True,
            clusterwide=config.all_namespaces,
            namespaces=() if config.all_namespaces else namespaces,
            stop_flag=kopf_stop,
            ready_flag=ready,
        )
    finally:
        await cancel(stopping, guarding, expiring, presence)
        await runtime.stop()
        for lease in (membership, standalone):
            if lease is not None:
                await lease.leave()
        await http.aclose()
        if health is not None:
            await health.cleanup()
        await api.close()


def keep_lease(
    membership: Membership | None, standalone: StandaloneLease | None, runtime: Runtime
) -> asyncio.Task[None] | None:
    """The task renewing this operator's Lease (a ring member's also follows the ring)."""
    if membership is not None:
        return asyncio.create_task(membership.run(runtime.on_ring_change), name="ring")
    if standalone is not None:
        return asyncio.create_task(standalone.run(), name="standalone-lease")
    return None


def announce(config: OperatorConfig, namespaces: tuple[str, ...]) -> None:
    logger.info(
        "watching %s; SSRF allow-list: cidrs=%s hosts=%s; watcher path: %s; ring: %s",
        "all namespaces" if config.all_namespaces else ", ".join(namespaces),
        list(config.allow_cidrs) or "none",
        list(config.allow_hosts) or "none",
        config.watcher_base_url or "none",
        f"{config.ring} as {config.member_identity()}" if config.ring else "none (standalone)",
    )


async def cancel(*tasks: asyncio.Task[None] | None) -> None:
    for task in tasks:
        if task is None:
            continue
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def http_settings(config: OperatorConfig) -> ClientSettings:
    return ClientSettings(
        policy=AddressPolicy.from_strings(config.allow_cidrs),
        allow_hosts=frozenset(h.lower() for h in config.allow_hosts),
        max_connections=config.max_connections,
        max_connections_per_host=config.max_connections_per_host,
        open_path_enabled=bool(config.watcher_base_url),
    )


async def join_ring(
    api: KubeApi, config: OperatorConfig, watched: tuple[str, ...]
) -> Membership | None:
    """With ``--ring``: this member's Lease written, no rival beside it, the others learnt."""
    if not config.ring:
        return None
    membership = Membership(
        api,
        config.ring,
        config.member_identity(),
        config.lease_namespace(context_namespace()),
        now,
        watched=watched,
    )
    await wait_until_alone(
        api,
        membership.namespace,
        Mode(config.ring, watched or (ALL_NAMESPACES,)),
        ring.lease_name(config.ring, membership.identity),
        write_own=membership.join,
        remove_own=membership.leave,
        clock=now,
    )
    return membership


async def hold_standalone(
    api: KubeApi, config: OperatorConfig, watched: tuple[str, ...]
) -> StandaloneLease | None:
    """Standalone: this operator's Lease written once no ring runs beside it."""
    lease = StandaloneLease(
        api, config.lease_namespace(context_namespace()), config.member_identity(), watched, now
    )
    return await hold_standalone_lease(lease)


def build_runtime(
    api: KubeApi,
    http: SharedHttpClient,
    credentials: Credentials,
    watcher: WatcherPath | None,
    membership: Membership | None,
) -> Runtime:
    task_store, search_store = ObjectStore(), ObjectStore()

    def members() -> int:
        # In a ring each member paces its share of a provider's rate (approximate).
        return max(1, len(membership.shares.members)) if membership is not None else 1

    return Runtime(
        TaskContext(
            api=api,
            store=task_store,
            http=http,
            credentials=credentials,
            clock=now,
            watcher=watcher,
            pacing=Pacing(api, members=members),
        ),
        SearchContext(
            api=api,
            searches=search_store,
            tasks=task_store,
            events=EventRecorder(api, now),
            clock=now,
        ),
        Claims(membership) if membership is not None else None,
    )


async def relay_stop(
    stop_flag: asyncio.Event | None,
    kopf_stop: asyncio.Event | None,
    ready: asyncio.Event,
    membership: Membership | None,
    runtime: Runtime,
    drain_seconds: float,
) -> None:
    """Set ``kopf_stop`` once ``stop_flag`` is set, after a ring member's drain."""
    if stop_flag is None or kopf_stop is None:
        return
    await ready.wait()
    # kopf takes SIGINT/SIGTERM for itself at start (and then cancels everything at once):
    # take them back, so a signal sets our stop flag and the drain runs first.
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop_flag.set)
    await stop_flag.wait()
    if membership is not None:
        await leave_ring(membership, runtime, drain_seconds)
    kopf_stop.set()


async def leave_ring(membership: Membership, runtime: Runtime, drain_seconds: float) -> None:
    """Stop taking work, let exchanges in flight be recorded and released, for a bounded time.

    The Lease is still renewed while draining (marked as leaving): the others honour this
    member's claims until it deletes the Lease, after the workers left are cancelled.
    """
    logger.info("leaving ring %s: draining for at most %ss", membership.ring, drain_seconds)
    await membership.mark_leaving()
    await runtime.release_all()
    if not await runtime.drained(drain_seconds):
        logger.warning("ring %s: drain timed out; cancelling what is left", membership.ring)
        # Now, not when kopf stops: kopf gives the loop's tasks 5 s more before it cancels
        # them, and an exchange finishing then would be recorded past the drain.
        await runtime.stop()


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
