"""``durable-search start "QUERY"``: create a Search and, with ``--wait``, follow it to the end.

Exit codes: 0 Completed, 1 Failed or Terminated, 2 usage, 3 timed out waiting (the Search goes
on running). Progress goes to stderr when ``-o json`` keeps stdout for the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import aiohttp

from durable_search.api.constants import (
    GROUP,
    HTTPTASK_PLURAL,
    LABEL_SEARCH_UID,
    SEARCH_PLURAL,
    SearchPhase,
)
from durable_search.api.status import search_finished, search_phase, search_status
from durable_search.commands.common import add_common_flags
from durable_search.commands.progress import progress_lines
from durable_search.engine import management
from durable_search.engine.page import output_html, text_body
from durable_search.errors import KubeApiError, RefusedError
from durable_search.kube.api import KubeApi, custom_path
from durable_search.kube.config import context_namespace

EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3
# Each watch request lasts at most this long, so the providers' lines (polling, retrying: on
# the HttpTasks, not the Search) are redrawn at least this often.
REFRESH_SECONDS = 2


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("start", help="create a Search and follow its progress")
    add_common_flags(parser)
    parser.add_argument("query", help="what to search for (1 to 512 characters)")
    parser.add_argument(
        "--provider",
        action="append",
        dest="providers",
        default=[],
        metavar="NAME",
        help="a SearchProvider to ask (repeatable; default: every SearchProvider of the namespace)",
    )
    parser.add_argument("--namespace", "-n", help="default: the kubeconfig context's namespace")
    parser.add_argument("--wait", action="store_true", help="follow the Search until it finishes")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (--wait)")
    parser.add_argument("-o", "--output", choices=["text", "json"], default="text")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= len(args.query) <= 512:
        print("error: the query must be 1 to 512 characters", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_run(args))
    except RefusedError as error:
        print(f"error: the API server refused the Search: {error.message}", file=sys.stderr)
        return EXIT_USAGE
    except KubeApiError as error:
        print(f"error: the Kubernetes API refused: {error.message}", file=sys.stderr)
        return EXIT_FAILED
    except (aiohttp.ClientError, OSError) as error:
        print(f"error: cannot reach the Kubernetes API server: {error}", file=sys.stderr)
        return EXIT_FAILED


async def _run(args: argparse.Namespace) -> int:
    api = await KubeApi.connect(args.kubeconfig)
    try:
        return await _start(api, args.namespace or context_namespace(args.kubeconfig), args)
    finally:
        await api.close()


async def _start(api: KubeApi, namespace: str, args: argparse.Namespace) -> int:
    name = management.new_search_name()
    start = management.StartInput(args.query, tuple(args.providers), watcher=False)
    body = management.start_manifest(name, start, None)
    created = await api.client.post(custom_path(SEARCH_PLURAL, namespace), body)
    log = sys.stderr if args.output == "json" else sys.stdout
    if not args.wait:
        if args.output == "json":
            print(json.dumps(created, indent=2))
        else:
            print(f"search.{GROUP}/{name} created in {namespace}")
            print(f"follow it: kubectl get searches -n {namespace} -w")
        return EXIT_COMPLETED
    print(
        f"search.{GROUP}/{name} created in {namespace}; waiting (up to {args.timeout:g}s)", file=log
    )
    final = await _follow(api, namespace, created, args.timeout, log)
    if final is None:
        print(f"timed out after {args.timeout:g}s; the Search goes on running", file=sys.stderr)
        return EXIT_TIMEOUT
    children = await _children(api, namespace, final)
    if args.output == "json":
        result = dict(final)
        result["output"] = output_html(
            final["status"].get("results") or [],
            {n: text_body(c.get("status") or {}) for n, c in children.items()},
        )
        print(json.dumps(result, indent=2))
    phase = search_phase(search_status(final))
    return EXIT_COMPLETED if phase is SearchPhase.COMPLETED else EXIT_FAILED


async def _follow(
    api: KubeApi,
    namespace: str,
    search: Mapping[str, Any],
    timeout: float,
    log: TextIO,
) -> Mapping[str, Any] | None:
    """Watch the Search, printing per-provider progress, until it finishes (None: timed out)."""
    deadline = time.monotonic() + timeout
    name = search["metadata"]["name"]
    printer = _ProgressPrinter(log)
    latest: Mapping[str, Any] = search
    try:
        async with asyncio.timeout(timeout):
            while not search_finished(search_status(latest)):
                remaining = max(1, min(int(deadline - time.monotonic()), REFRESH_SECONDS))
                async for event in api.client.watch(
                    custom_path(SEARCH_PLURAL, namespace),
                    str(latest["metadata"]["resourceVersion"]),
                    timeout_seconds=remaining,
                    fieldSelector=f"metadata.name={name}",
                ):
                    if event.get("type") == "ERROR":
                        break  # e.g. 410 Gone: read it again below
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        latest = event["object"]
                        printer.show(
                            progress_lines(latest, await _children(api, namespace, latest))
                        )
                        if search_finished(search_status(latest)):
                            return latest
                latest = await api.get(SEARCH_PLURAL, namespace, name)
                printer.show(progress_lines(latest, await _children(api, namespace, latest)))
            return latest
    except TimeoutError:
        return None
    finally:
        printer.done()


async def _children(
    api: KubeApi, namespace: str, search: Mapping[str, Any]
) -> dict[str, Mapping[str, Any]]:
    if not (search.get("status") or {}).get("results"):
        return {}
    uid = search["metadata"]["uid"]
    items, _version = await api.client.list_all(
        custom_path(HTTPTASK_PLURAL, namespace), labelSelector=f"{LABEL_SEARCH_UID}={uid}"
    )
    return {item["metadata"]["name"]: item for item in items}


class _ProgressPrinter:
    """Redraws the lines in place on a terminal; prints only changes otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._shown: list[str] = []

    def show(self, lines: list[str]) -> None:
        if lines == self._shown:
            return
        if self._tty and self._shown:
            self._stream.write(f"\x1b[{len(self._shown)}F\x1b[J")
        if self._tty:
            self._stream.write("\n".join(lines) + "\n")
        else:
            for line in lines:
                if line not in self._shown:
                    self._stream.write(line + "\n")
        self._stream.flush()
        self._shown = lines

    def done(self) -> None:
        self._stream.flush()
