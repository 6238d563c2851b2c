"""``durable-search web``: the single-page app and the Durable-style HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from aiohttp import web

from durable_search.commands.common import add_common_flags, configure_logging


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("web", help="run the web service (page and HTTP API)")
    add_common_flags(parser)
    env = os.environ.get
    parser.add_argument(
        "--namespace",
        default=env("DURABLE_SEARCH_NAMESPACE"),
        help="where Searches are created and read (env DURABLE_SEARCH_NAMESPACE; "
        "default: the context's namespace)",
    )
    parser.add_argument(
        "--host",
        default=env("DURABLE_SEARCH_HOST", "127.0.0.1"),
        help="listen address (env DURABLE_SEARCH_HOST)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env("DURABLE_SEARCH_PORT", "8080")),
        help="listen port (env DURABLE_SEARCH_PORT)",
    )
    parser.add_argument(
        "--watcher-base-url",
        default=env("DURABLE_SEARCH_WATCHER_BASE_URL"),
        help="how the operator reaches this service (env "
        "DURABLE_SEARCH_WATCHER_BASE_URL; default: the listen address)",
    )
    parser.add_argument(
        "--auth",
        choices=["serviceaccount", "client"],
        default=env("DURABLE_SEARCH_AUTH", "serviceaccount"),
        help="whose identity API calls use (env DURABLE_SEARCH_AUTH)",
    )
    parser.add_argument(
        "--default-ttl-seconds",
        type=int,
        default=int(env("DURABLE_SEARCH_DEFAULT_TTL_SECONDS", "86400")),
        help="ttlSecondsAfterFinished of the Searches this service starts; 0: none, kept "
        "until purged (env DURABLE_SEARCH_DEFAULT_TTL_SECONDS; default a day)",
    )
    parser.add_argument(
        "--start-rate",
        type=float,
        default=float(env("DURABLE_SEARCH_START_RATE", "5")),
        help="starts per second per client, past the burst (429); 0: unlimited "
        "(env DURABLE_SEARCH_START_RATE)",
    )
    parser.add_argument(
        "--start-burst",
        type=int,
        default=int(env("DURABLE_SEARCH_START_BURST", "20")),
        help="starts a client may make at once (env DURABLE_SEARCH_START_BURST)",
    )
    parser.add_argument(
        "--max-long-polls",
        type=int,
        default=int(env("DURABLE_SEARCH_MAX_LONG_POLLS", "10000")),
        help="long-polls waiting at once, past which 503 + Retry-After; 0: unlimited "
        "(env DURABLE_SEARCH_MAX_LONG_POLLS)",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        dest="trusted_proxies",
        metavar="CIDR",
        help="peers whose X-Forwarded-For/-Proto/-Host/-Prefix are honoured (repeatable; env "
        "DURABLE_SEARCH_TRUSTED_PROXIES, comma-separated; default: none)",
    )
    parser.add_argument(
        "--watcher-user",
        action="append",
        dest="watcher_users",
        metavar="USER",
        help="with --auth client: whose tokens for audience durable-search-web may read a "
        "status, e.g. system:serviceaccount:NS:OPERATOR-SA (repeatable; env "
        "DURABLE_SEARCH_WATCHER_USERS, comma-separated)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from durable_search.controller.config import parse_list
    from durable_search.kube.config import context_namespace
    from durable_search_web.app import create_app
    from durable_search_web.auth import AuthMode
    from durable_search_web.config import WebConfig
    from durable_search_web.forwarded import parse_networks

    configure_logging(args.log_level, args.log_format)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    try:
        config = WebConfig(
            namespace=args.namespace or context_namespace(),
            host=args.host,
            port=args.port,
            watcher_base_url=args.watcher_base_url,
            auth=AuthMode(args.auth),
            kubeconfig=args.kubeconfig,
            default_ttl_seconds=args.default_ttl_seconds,
            start_rate=args.start_rate,
            start_burst=args.start_burst,
            max_long_polls=args.max_long_polls,
            trusted_proxies=parse_networks(
                parse_list(args.trusted_proxies, "DURABLE_SEARCH_TRUSTED_PROXIES")
            ),
            watcher_users=frozenset(parse_list(args.watcher_users, "DURABLE_SEARCH_WATCHER_USERS")),
        )
    except ValueError as error:
        print(f"durable-search web: {error}", file=sys.stderr)
        return 2

    async def main() -> None:
        runner = web.AppRunner(create_app(config), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, config.host, config.port).start()
        print(
            f"Durable Search web: http://{config.host}:{config.port}/ (namespace "
            f"{config.namespace}, auth {config.auth})",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())
    return 0
