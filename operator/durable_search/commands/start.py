"""``durable-search start "QUERY"``: create a Search and, with ``--wait``, follow it to the end.

Exit codes: 0 Completed, 1 Failed or Terminated, 2 usage, 3 timed out waiting (the Search goes
on running). Progress goes to stderr when ``-o json`` keeps stdout for the result.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO, cast

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from durable_search.api.constants import (
    API_VERSION,
    GROUP,
    HTTPTASK_PLURAL,
    LABEL_SEARCH_UID,
    SEARCH_KIND,
    SEARCH_PLURAL,
    VERSION,
    SearchPhase,
)
from durable_search.commands.common import add_common_flags
from durable_search.commands.progress import progress_lines
from durable_search.engine.fanin import output_html, text_body

EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3


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
    api_client, namespace = _connect(args.kubeconfig, args.namespace)
    custom = client.CustomObjectsApi(api_client)
    name = f"s-{secrets.token_hex(6)}"
    spec: dict[str, Any] = {"query": args.query}
    if args.providers:
        spec["providerRefs"] = list(dict.fromkeys(args.providers))
    body = {
        "apiVersion": API_VERSION,
        "kind": SEARCH_KIND,
        "metadata": {"name": name},
        "spec": spec,
    }
    try:
        created = cast(
            dict[str, Any],
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, SEARCH_PLURAL, body),
        )
    except ApiException as error:
        print(f"error: the API server refused the Search: {_reason(error)}", file=sys.stderr)
        return EXIT_USAGE if error.status in (400, 422) else EXIT_FAILED
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
    final = _follow(custom, namespace, created, args.timeout, log)
    if final is None:
        print(f"timed out after {args.timeout:g}s; the Search goes on running", file=sys.stderr)
        return EXIT_TIMEOUT
    children = _children(custom, namespace, final)
    if args.output == "json":
        result = dict(final)
        result["output"] = output_html(
            final["status"].get("results") or [],
            {n: text_body(c.get("status") or {}) for n, c in children.items()},
        )
        print(json.dumps(result, indent=2))
    phase = SearchPhase(final["status"]["phase"])
    return EXIT_COMPLETED if phase is SearchPhase.COMPLETED else EXIT_FAILED


def _connect(kubeconfig: str | None, namespace: str | None) -> tuple[client.ApiClient, str]:
    try:
        config.load_kube_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        _contexts, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
        default_namespace = (active or {}).get("context", {}).get("namespace") or "default"
    except config.ConfigException:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        default_namespace = "default"
    return client.ApiClient(), namespace or default_namespace


def _follow(
    custom: client.CustomObjectsApi,
    namespace: str,
    search: Mapping[str, Any],
    timeout: float,
    log: TextIO,
) -> Mapping[str, Any] | None:
    """Stream the Search's changes, printing per-provider progress, until it finishes."""
    deadline = time.monotonic() + timeout
    name = search["metadata"]["name"]
    printer = _ProgressPrinter(log)
    latest: Mapping[str, Any] = search
    while time.monotonic() < deadline:
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            SEARCH_PLURAL,
            field_selector=f"metadata.name={name}",
            timeout_seconds=max(1, min(int(deadline - time.monotonic()), 2)),
        )
        for event in stream:
            latest = event["object"]
            printer.show(progress_lines(latest, _children(custom, namespace, latest)))
            if (latest.get("status") or {}).get("phase") in _FINISHED:
                printer.done()
                return latest
        printer.show(progress_lines(latest, _children(custom, namespace, latest)))
    printer.done()
    return None


_FINISHED = {p.value for p in SearchPhase if p.finished}


def _children(
    custom: client.CustomObjectsApi, namespace: str, search: Mapping[str, Any]
) -> dict[str, Mapping[str, Any]]:
    if not (search.get("status") or {}).get("results"):
        return {}
    uid = search["metadata"]["uid"]
    listed = cast(
        dict[str, Any],
        custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, HTTPTASK_PLURAL, label_selector=f"{LABEL_SEARCH_UID}={uid}"
        ),
    )
    return {item["metadata"]["name"]: item for item in listed.get("items", [])}


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


def _reason(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "").get("message", error.reason))
    except (TypeError, ValueError):
        return str(error.reason)
