"""The ``durable-search`` command: one entry point for every process and tool of the project."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from durable_search import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="durable-search",
        description="Durable HTTP fan-out/fan-in orchestrations on Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from durable_search.commands import cluster, demo_site, manage, operator, start, up, web

    for command in (start, manage, operator, web, up, demo_site, cluster):
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
