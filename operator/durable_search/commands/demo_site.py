"""``durable-search demo-site``: run the local demo search site (loopback only by default)."""

from __future__ import annotations

import argparse
import asyncio
import signal

from durable_search.commands.common import configure_logging
from durable_search.demo.site import serve


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo-site", help="run the local demo search site")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    configure_logging("info", "text")

    async def main() -> None:
        runner = await serve(args.host, args.port)
        print(f"demo search site: http://{args.host}:{args.port}/search?q=hello", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())
    return 0
