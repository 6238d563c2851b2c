"""``durable-search operator``: reconcile Searches and execute HttpTasks."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from durable_search.commands.common import add_common_flags, configure_logging
from durable_search.controller.config import OperatorConfig, parse_list
from durable_search.errors import DurableSearchError

# kopf imports the Kubernetes client libraries when they are installed, only to recognise their
# model objects, which we never hand it: about 60 MiB of generated models in the operator.
CLIENT_LIBRARIES = ("kubernetes", "kubernetes_asyncio", "pykube")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("operator", help="run the operator (kopf)")
    add_common_flags(parser)
    parser.add_argument(
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="namespace to watch (repeatable; env DURABLE_SEARCH_NAMESPACES, comma-separated, "
        "'*' = all); default: the context's namespace",
    )
    parser.add_argument("--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument(
        "--allow-cidr",
        action="append",
        dest="allow_cidrs",
        metavar="CIDR",
        help="open a non-global address range in the SSRF guard (repeatable; env "
        "DURABLE_SEARCH_ALLOW_CIDRS)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        dest="allow_hosts",
        metavar="HOST",
        help="open a host name in the SSRF guard (repeatable; env DURABLE_SEARCH_ALLOW_HOSTS)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=int(os.environ.get("DURABLE_SEARCH_HEALTH_PORT", "0")) or None,
        help="serve /healthz, /readyz and /metrics on this port (env DURABLE_SEARCH_HEALTH_PORT)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=int(os.environ.get("DURABLE_SEARCH_MAX_CONNECTIONS", "512")),
        help="open connections to all sites together (env DURABLE_SEARCH_MAX_CONNECTIONS)",
    )
    parser.add_argument(
        "--max-connections-per-host",
        type=int,
        default=int(os.environ.get("DURABLE_SEARCH_MAX_CONNECTIONS_PER_HOST", "16")),
        help="open connections to one site, so a stalled site cannot starve the others "
        "(env DURABLE_SEARCH_MAX_CONNECTIONS_PER_HOST)",
    )
    parser.add_argument(
        "--watcher-base-url",
        default=os.environ.get("DURABLE_SEARCH_WATCHER_BASE_URL") or None,
        metavar="URL",
        help="the web service's base URL: watchers' polls of <URL>/api/searches/{id} take the "
        "trusted path past the SSRF guard (env DURABLE_SEARCH_WATCHER_BASE_URL)",
    )
    parser.add_argument(
        "--ring",
        default=os.environ.get("DURABLE_SEARCH_RING") or None,
        metavar="NAME",
        help="share the work with the other operators of this ring through Leases "
        "(env DURABLE_SEARCH_RING); default: standalone, one operator does everything",
    )
    parser.add_argument(
        "--identity",
        default=os.environ.get("DURABLE_SEARCH_IDENTITY") or None,
        metavar="ID",
        help="this member's name in the ring (env DURABLE_SEARCH_IDENTITY); default: the Pod's "
        "name (POD_NAME), else host and pid",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=float(os.environ.get("DURABLE_SEARCH_DRAIN_SECONDS", "25")),
        help="on SIGTERM, how long a ring member lets exchanges in flight finish before it "
        "cancels them (env DURABLE_SEARCH_DRAIN_SECONDS)",
    )
    parser.set_defaults(handler=run)


def config_from(args: argparse.Namespace) -> OperatorConfig:
    namespaces = parse_list(args.namespaces, "DURABLE_SEARCH_NAMESPACES")
    all_namespaces = args.all_namespaces or "*" in namespaces
    return OperatorConfig(
        kubeconfig=args.kubeconfig,
        namespaces=() if all_namespaces else namespaces,
        all_namespaces=all_namespaces,
        allow_cidrs=parse_list(args.allow_cidrs, "DURABLE_SEARCH_ALLOW_CIDRS"),
        allow_hosts=parse_list(args.allow_hosts, "DURABLE_SEARCH_ALLOW_HOSTS"),
        health_port=args.health_port,
        max_connections=args.max_connections,
        max_connections_per_host=args.max_connections_per_host,
        watcher_base_url=args.watcher_base_url,
        ring=args.ring,
        identity=args.identity,
        drain_seconds=args.drain_seconds,
    )


def without_client_libraries() -> None:
    """Make ``import kubernetes`` (and the others) fail in this process, unless imported."""
    for name in CLIENT_LIBRARIES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format)
    config = config_from(args)
    without_client_libraries()
    # Imported here, not at the top: every other command starts without kopf.
    from durable_search.controller.operator import run_operator

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_operator(config, stop_flag=stop)

    try:
        asyncio.run(main())
    except DurableSearchError as error:  # CRDs missing, a rival operator, no kubeconfig
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
