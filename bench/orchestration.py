"""End-to-end Search latency and Kubernetes API writes per Search.

    .venv/bin/python -m bench.orchestration --searches 20 --providers 3 --latency 0.05

Each Search fans out to ``--providers`` inline providers on the local demo site answering in
``--latency`` seconds. End-to-end time is from the create call returning to the client seeing
``phase: Completed`` on a watch; overhead is that minus the provider latency. API writes are
the API server's own ``apiserver_request_total`` for write verbs, before and after.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from bench.environment import Environment, environment
from bench.report import emit
from durable_search.api.constants import GROUP, SEARCH_PLURAL, VERSION

RESULTS = Path(__file__).resolve().parent / "results"


class CompletionWatcher:
    """One watch on every Search of the namespace; records when each one completes."""

    def __init__(self, env: Environment) -> None:
        self._custom = client.CustomObjectsApi(env.api)
        self._namespace = env.namespace
        self._done: dict[str, float] = {}
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        version: str | None = None  # resume each watch where the last one ended, never re-list
        while not self._stop:
            stream = watch.Watch().stream(
                self._custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self._namespace,
                SEARCH_PLURAL,
                resource_version=version,
                timeout_seconds=30,
            )
            try:
                for event in stream:
                    body = event["object"]
                    version = body["metadata"]["resourceVersion"]
                    phase = (body.get("status") or {}).get("phase")
                    if phase in ("Completed", "Failed", "Terminated"):
                        name = body["metadata"]["name"]
                        with self._lock:
                            self._done.setdefault(name, time.monotonic())
                            self._event(name).set()
            except client.ApiException as error:
                if error.status != 410:
                    raise
                version = None  # expired: start over from a fresh list

    def _event(self, name: str) -> threading.Event:
        return self._events.setdefault(name, threading.Event())

    def wait(self, name: str, timeout: float = 60) -> float:
        with self._lock:
            event = self._event(name)
        if not event.wait(timeout):
            raise TimeoutError(f"{name} did not complete within {timeout}s")
        return self._done[name]

    def stop(self) -> None:
        self._stop = True


def run_one(env: Environment, watcher: CompletionWatcher, providers: int, latency: float) -> float:
    custom = client.CustomObjectsApi(env.api)
    name = f"b-{uuid.uuid4().hex[:10]}"
    spec = {
        "query": "benchmark",
        "providers": [
            {"name": f"p{i}", "url": env.site.url(f"bench-{i}", delay=latency)}
            for i in range(providers)
        ],
    }
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Search",
        "metadata": {"name": name},
        "spec": spec,
    }
    started = time.monotonic()
    custom.create_namespaced_custom_object(GROUP, VERSION, env.namespace, SEARCH_PLURAL, body)
    return watcher.wait(name) - started


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "p50": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))],
        "max": ordered[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--searches", type=int, default=20)
    parser.add_argument("--providers", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    with environment() as env:
        watcher = CompletionWatcher(env)
        for _ in range(args.warmup):
            run_one(env, watcher, args.providers, args.latency)
        before = env.apiserver_writes()
        began = time.monotonic()
        with ThreadPoolExecutor(args.concurrency) as pool:
            durations = list(
                pool.map(
                    lambda _: run_one(env, watcher, args.providers, args.latency),
                    range(args.searches),
                )
            )
        elapsed = time.monotonic() - began
        time.sleep(2)  # let trailing writes (Events) land before counting
        after = env.apiserver_writes()
        watcher.stop()
    writes: Counter[tuple[str, str, str]] = after - before
    per_search = {
        f"{verb} {resource}{'/' + sub if sub else ''}": count / args.searches
        for (verb, resource, sub), count in sorted(writes.items())
    }
    total = sum(writes.values()) / args.searches
    report: dict[str, Any] = {
        "searches": args.searches,
        "providers": args.providers,
        "provider_latency_s": args.latency,
        "concurrency": args.concurrency,
        "end_to_end_s": summarize(durations),
        "overhead_s": summarize([d - args.latency for d in durations]),
        "searches_per_second": args.searches / elapsed,
        "api_writes_per_search": total,
        "api_writes_by_kind_per_search": per_search,
        "note": "etcd on disk with fsync on; client-side timing to a watch event",
    }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
