"""``durable-search list | get | rerun | terminate | purge``: managing Searches from a terminal.

The same verbs as the web API (``PUT``/rerun/purge/terminate), through the Kubernetes API with
the user's own kubeconfig, on ``durable_search.kube`` (the one road to Kubernetes). What is
written and what a purge selects is decided in ``engine.management``, shared with the web.

Exit codes: 0 done, 1 the API server refused or the Search is not in a state for it (the
message says which), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
import yaml

from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, SEARCH_PLURAL, SearchPhase
from durable_search.api.status import Body, search_phase, search_status
from durable_search.api.timestamps import format_duration, now, parse_time
from durable_search.commands.common import add_common_flags
from durable_search.commands.progress import progress_lines
from durable_search.engine import management, timeline
from durable_search.engine.names import watcher_name
from durable_search.errors import (
    CommandError,
    ConflictError,
    KubeApiError,
    NotFoundError,
    UsageError,
)
from durable_search.kube.api import KubeApi, custom_path
from durable_search.kube.config import context_namespace
from durable_search.kube.objects import without_bookkeeping

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_PHASES = {p.value.lower(): p for p in SearchPhase}
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
# The commands read the time through a clock they are given (the real one by default), so their
# logic runs the same under a fixed time in tests.
Clock = Callable[[], dt.datetime]


# -- the parsers ----------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = _command(subparsers, "list", "list Searches, newest first", run_list)
    listing.add_argument("--status", help="comma list of phases, e.g. Completed,Failed")
    listing.add_argument("-o", "--output", choices=["text", "json"], default="text")

    get = _command(subparsers, "get", "show one Search and its providers", run_get)
    get.add_argument("id", help="the Search's name")
    get.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")

    rerun = _command(subparsers, "rerun", "run a Search again under a new id", run_rerun)
    rerun.add_argument("id", help="the Search to run again")

    terminate = _command(subparsers, "terminate", "stop a running Search", run_terminate)
    terminate.add_argument("id", help="the Search to stop")
    terminate.add_argument(
        "--reason", help="why (at most 256 characters): shown in the Search's condition"
    )

    purge = _command(subparsers, "purge", "delete finished Searches by filter", run_purge)
    purge.add_argument("--status", help="comma list of finished phases, e.g. Failed,Terminated")
    purge.add_argument(
        "--older-than", metavar="DURATION", help="created longer ago than this: 90s, 30m, 2h, 7d"
    )


def _command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    handler: Callable[[KubeApi, str, argparse.Namespace], Awaitable[int]],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    add_common_flags(parser)
    parser.add_argument("--namespace", "-n", help="default: the kubeconfig context's namespace")
    parser.set_defaults(handler=lambda args: _run(handler, args))
    return parser


def _run(
    handler: Callable[[KubeApi, str, argparse.Namespace], Awaitable[int]], args: argparse.Namespace
) -> int:
    """Run one command on a fresh client; every expected failure becomes a message and a code."""

    async def main() -> int:
        api = await KubeApi.connect(args.kubeconfig)
        try:
            namespace = args.namespace or context_namespace(args.kubeconfig)
            return await handler(api, namespace, args)
        finally:
            await api.close()

    try:
        return asyncio.run(main())
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KubeApiError as error:
        print(f"error: the Kubernetes API refused: {error.message}", file=sys.stderr)
        return EXIT_FAILED
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        print(f"error: cannot reach the Kubernetes API server: {error}", file=sys.stderr)
        return EXIT_FAILED


# -- argument parsing (pure) ----------------------------------------------------------------


def parse_statuses(raw: str | None) -> frozenset[SearchPhase] | None:
    if raw is None:
        return None
    phases = set()
    for part in raw.split(","):
        phase = _PHASES.get(part.strip().lower())
        if phase is None:
            names = ", ".join(p.value for p in SearchPhase)
            raise UsageError(f"unknown status {part.strip()!r}: use {names}")
        phases.add(phase)
    return frozenset(phases)


def parse_duration(raw: str) -> dt.timedelta:
    """``90s``, ``30m``, ``2h``, ``7d``, ``1h30m``: a positive duration."""
    match = _DURATION.fullmatch(raw.strip())
    if not raw.strip() or match is None or not any(match.groups()):
        raise UsageError(f"--older-than {raw!r} is not a duration like 90s, 30m, 2h, 7d or 1h30m")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def purge_filter(args: argparse.Namespace, moment: dt.datetime) -> management.PurgeFilter:
    """What ``purge``'s ``--status`` and ``--older-than`` select at ``moment``.

    A usage error when they select nothing to filter on, or a phase that is never purged.
    """
    statuses = parse_statuses(args.status)
    older = parse_duration(args.older_than) if args.older_than is not None else None
    selection = management.PurgeFilter(
        statuses=statuses, created_to=moment - older if older is not None else None
    )
    if selection.empty:
        raise UsageError("purge needs a filter: --status, --older-than, or both")
    unfinished = sorted(p.value for p in statuses or () if not p.finished)
    if unfinished:
        raise UsageError(f"{', '.join(unfinished)} Searches are never purged")
    return selection


# -- the commands ---------------------------------------------------------------------------


async def _list_searches(api: KubeApi, namespace: str) -> list[Body]:
    items, _version = await api.client.list_all(custom_path(SEARCH_PLURAL, namespace))
    return items


async def _get_search(api: KubeApi, namespace: str, name: str) -> Body:
    try:
        return await api.get(SEARCH_PLURAL, namespace, name)
    except NotFoundError:
        raise CommandError(f"no Search {name!r} in namespace {namespace}") from None


async def run_list(
    api: KubeApi, namespace: str, args: argparse.Namespace, clock: Clock = now
) -> int:
    statuses = parse_statuses(args.status)
    items = await _list_searches(api, namespace)
    if statuses is not None:
        items = [s for s in items if search_phase(search_status(s)) in statuses]
    items.sort(
        key=lambda s: (s["metadata"].get("creationTimestamp") or "", s["metadata"]["name"]),
        reverse=True,
    )
    if args.output == "json":
        print(json.dumps({"items": [without_bookkeeping(s) for s in items]}, indent=2))
        return EXIT_OK
    if not items:
        print(f"no Searches in namespace {namespace}", file=sys.stderr)
        return EXIT_OK
    print(search_table(items, clock()))
    return EXIT_OK


def search_table(items: Sequence[Mapping[str, Any]], moment: dt.datetime) -> str:
    """The `list` table: kubectl's columns for Searches, ages reckoned at ``moment``."""
    rows = [("NAME", "QUERY", "PHASE", "PROGRESS", "AGE", "DURATION")]
    for search in items:
        status = search.get("status") or {}
        query = str((search.get("spec") or {}).get("query") or "")
        created = parse_time(search["metadata"].get("creationTimestamp"))
        age = format_duration((moment - created).total_seconds()) if created else ""
        rows.append(
            (
                str(search["metadata"]["name"]),
                query if len(query) <= 40 else query[:39] + "…",
                search_phase(search_status(search)).value,
                str(status.get("progress") or ""),
                age,
                str(status.get("duration") or ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


async def run_get(
    api: KubeApi, namespace: str, args: argparse.Namespace, clock: Clock = now
) -> int:
    search = await _get_search(api, namespace, args.id)
    if args.output == "json":
        print(json.dumps(without_bookkeeping(search), indent=2))
        return EXIT_OK
    if args.output == "yaml":
        print(yaml.safe_dump(without_bookkeeping(search), sort_keys=False, allow_unicode=True))
        return EXIT_OK
    children = await _children(api, namespace, search)
    lines = progress_lines(search, children)
    spec = search.get("spec") or {}
    metadata = search["metadata"]
    lines.insert(1, f"  query:   {spec.get('query')}")
    lines.insert(2, f"  created: {metadata.get('creationTimestamp')}")
    original = (metadata.get("labels") or {}).get(management.LABEL_RERUN_OF)
    if original:
        lines.insert(3, f"  rerun of: {original}")
    for condition in (search.get("status") or {}).get("conditions") or ():
        if condition.get("message"):
            lines.append(f"  {condition.get('type')}: {condition.get('message')}")
    drawn = timeline.timeline(search, children, await _watcher_of(api, namespace, search), clock())
    if drawn["lanes"]:
        lines.append("  timeline (from each HttpTask's attemptLog, offsets from the start):")
        width = max(len(str(lane["name"])) for lane in drawn["lanes"])
        for lane in drawn["lanes"]:
            lines.append(f"    {lane['name']:<{width}}  {timeline.describe_lane(lane)}")
    print("\n".join(lines))
    return EXIT_OK


async def _children(api: KubeApi, namespace: str, search: Mapping[str, Any]) -> dict[str, Body]:
    """The HttpTasks the Search's results record, by name (read one by one: no LIST)."""
    found: dict[str, Body] = {}
    for result in (search.get("status") or {}).get("results") or ():
        name = result.get("httpTaskName")
        if not name:
            continue
        try:
            found[name] = await api.get(HTTPTASK_PLURAL, namespace, name)
        except NotFoundError:
            continue
    return found


async def _watcher_of(api: KubeApi, namespace: str, search: Mapping[str, Any]) -> Body | None:
    try:
        task = await api.get(HTTPTASK_PLURAL, namespace, watcher_name(search["metadata"]["name"]))
    except NotFoundError:
        return None
    uid = search["metadata"]["uid"]
    owned = any(
        ref.get("uid") == uid for ref in (task.get("metadata") or {}).get("ownerReferences") or ()
    )
    return task if owned else None


async def run_rerun(api: KubeApi, namespace: str, args: argparse.Namespace) -> int:
    original = await _get_search(api, namespace, args.id)
    watcher = await _watcher_of(api, namespace, original)
    base = management.watcher_base_of(watcher, args.id) if watcher is not None else None
    name = management.new_search_name()
    created = await api.client.post(
        custom_path(SEARCH_PLURAL, namespace), management.rerun_manifest(original, name)
    )
    print(f"search.{GROUP}/{name} created in {namespace} (a rerun of {args.id})")
    if base is not None:
        await api.client.post(
            custom_path(HTTPTASK_PLURAL, namespace), management.watcher_manifest(created, base)
        )
        print(f"with a watcher polling {base}/api/searches/{name}")
    print(f"follow it: durable-search get {name} -n {namespace}")
    return EXIT_OK


async def run_terminate(api: KubeApi, namespace: str, args: argparse.Namespace) -> int:
    reason = args.reason or None
    if reason is not None:
        problem = management.terminate_reason_problem(reason)
        if problem:
            raise UsageError(f"--reason: {problem}")
    search = await _get_search(api, namespace, args.id)
    phase = search_phase(search_status(search))
    if phase.finished:
        raise CommandError(f"Search {args.id!r} already finished ({phase.value})")
    await api.patch(SEARCH_PLURAL, namespace, args.id, management.terminate_patch(reason))
    suffix = f": {reason}" if reason else ""
    print(f"search.{GROUP}/{args.id} terminating{suffix}")
    return EXIT_OK


async def run_purge(
    api: KubeApi, namespace: str, args: argparse.Namespace, clock: Clock = now
) -> int:
    selection = purge_filter(args, clock())
    chosen = management.purge_selection(await _list_searches(api, namespace), selection)
    deleted = 0
    for name, uid in chosen:
        try:
            await api.client.delete(
                custom_path(SEARCH_PLURAL, namespace, name),
                {"propagationPolicy": "Background", "preconditions": {"uid": uid}},
            )
        except (NotFoundError, ConflictError):
            continue  # gone already, or re-created under the name since: not ours to delete
        deleted += 1
        print(f"search.{GROUP}/{name} deleted")
    print(f"purged {deleted} Search{'es' if deleted != 1 else ''} in {namespace}")
    return EXIT_OK
