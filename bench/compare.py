"""Durable Search beside its limits, in one run: a non-durable floor, the API server, and us.

    .venv/bin/python -m bench.compare [--sequential 30] [--concurrent 300] [--in-flight 30]

On one local control plane (etcd on disk, fsync on) and three loopback sites answering in
50 ms, it measures, in this order:

1. the floor: asyncio + httpx over aiohttp fetching the three pages, nothing durable;
2. the API server's limits: sequential write latency and writes/s at ``--in-flight`` for a
   schema-less custom resource and for our HttpTask (creates and status writes), with two
   watchers attached as the operator and a client would be, and the CPU each write costs;
3. Durable Search: ``--warmup`` Searches, ``--sequential`` one at a time (overhead = time to
   Completed minus the slowest page), then ``--concurrent`` with ``--in-flight`` at once;
   API writes per Search, and CPU per Search of the operator and of kube-apiserver + etcd.

Everything is printed as JSON with the ratios the performance targets are stated in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport

from bench.environment import Environment, environment
from bench.kube import CpuMeter, Kube
from bench.report import emit
from durable_search.api.constants import GROUP, VERSION

LATENCY = 0.05
PROVIDERS = 3
BLOB_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "blobs.bench.durablesearch.dev"},
    "spec": {
        "group": "bench.durablesearch.dev",
        "scope": "Namespaced",
        "names": {"kind": "Blob", "plural": "blobs", "singular": "blob"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(at(0.9) * 1000, 2),
        "p99_ms": round(at(0.99) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def bounded(in_flight: int, jobs: list[Callable[[], Awaitable[float]]]) -> list[float]:
    gate = asyncio.Semaphore(in_flight)

    async def one(job: Callable[[], Awaitable[float]]) -> float:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


# -- 1. the floor -----------------------------------------------------------------------------


async def floor(env: Environment, sequential: int, concurrent: int, in_flight: int) -> Any:
    urls = [env.site.url(f"floor-{i}", delay=LATENCY).replace("{query}", "x") for i in range(3)]
    async with httpx.AsyncClient(transport=AiohttpTransport(), trust_env=False) as http:

        async def search() -> float:
            began = time.perf_counter()
            await asyncio.gather(*(http.get(url) for url in urls))
            return time.perf_counter() - began

        for _ in range(3):
            await search()
        one_by_one = [await search() for _ in range(sequential)]
        began = time.perf_counter()
        await bounded(in_flight, [search] * concurrent)
        rate = concurrent / (time.perf_counter() - began)
    return {
        "overhead": quantiles([d - LATENCY for d in one_by_one]),
        "searches_per_second": round(rate, 1),
    }


# -- 2. the API server's limits ---------------------------------------------------------------


BENCH_GROUP = "bench.durablesearch.dev/v1"


def apply_manifests(env: Environment, manifests: list[dict[str, Any]]) -> None:
    """``kubectl apply`` each manifest (CRDs for the write limits), then let them be served."""
    for manifest in manifests:
        subprocess.run(
            ["kubectl", f"--kubeconfig={env.plane.kubeconfig}", "apply", "-f", "-"],
            input=json.dumps(manifest),
            text=True,
            check=True,
            capture_output=True,
        )
    time.sleep(2)


def write_kinds(namespace: str) -> dict[str, tuple[str, str]]:
    """The kinds whose writes are measured: label -> (collection path, kind)."""
    return {
        "schemaless": (f"/apis/{BENCH_GROUP}/namespaces/{namespace}/blobs", "Blob"),
        "httptask": (f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/httptasks", "HttpTask"),
    }


async def write_limits(
    env: Environment,
    kube: Kube,
    namespace: str,
    sequential: int,
    concurrent: int,
    in_flight: int,
    kinds: dict[str, tuple[str, str]] | None = None,
) -> Any:
    pids = env.plane.state().pids  # type: ignore[union-attr]
    meter = CpuMeter({"apiserver": pids["kube-apiserver"], "etcd": pids["etcd"]})
    kinds = kinds or write_kinds(namespace)
    figures: dict[str, Any] = {}
    for label, (path, kind) in kinds.items():
        seen: list[object] = []
        watchers = [asyncio.create_task(kube.watch(path, seen.append)) for _ in range(2)]

        def create(kind: str = kind, path: str = path) -> Callable[[], Awaitable[float]]:
            name = f"w-{uuid.uuid4().hex[:12]}"

            async def write() -> float:
                began = time.perf_counter()
                await kube.request("POST", path, task_object(kind, name))
                await kube.request(
                    "PATCH",
                    f"{path}/{name}/status",
                    {"status": task_status()},
                    content_type="application/merge-patch+json",
                )
                return (time.perf_counter() - began) / 2

            return write

        for _ in range(10):
            await create()()
        latencies = [await create()() for _ in range(sequential)]
        meter.start()
        began = time.perf_counter()
        await bounded(in_flight, [create() for _ in range(concurrent)])
        elapsed = time.perf_counter() - began
        spent = meter.stop()
        for watcher in watchers:
            watcher.cancel()
        writes = 2 * concurrent
        figures[label] = {
            "sequential_write": quantiles(latencies),
            "writes_per_second": round(writes / elapsed, 1),
            "cpu_ms_per_write": round(sum(spent.values()) * 1000 / writes, 2),
            "watch_events_seen": len(seen),
        }
    figures["httptask_write_cost_ratio"] = round(
        figures["httptask"]["cpu_ms_per_write"] / figures["schemaless"]["cpu_ms_per_write"], 2
    )
    return figures


def task_object(kind: str, name: str) -> dict[str, Any]:
    group = f"{GROUP}/{VERSION}" if kind == "HttpTask" else BENCH_GROUP
    return {
        "apiVersion": group,
        "kind": kind,
        "metadata": {"name": name},
        "spec": {"request": {"url": "http://127.0.0.1:1/never"}, "terminate": True},
    }


def task_status() -> dict[str, Any]:
    """A finished HttpTask's status, as the operator writes it for a small page."""
    return {
        "phase": "Succeeded",
        "outcome": "Succeeded",
        "attempts": 1,
        "message": "200 OK",
        "startTime": "2026-12-01T00:00:00.000Z",
        "completionTime": "2026-12-01T00:00:00.050Z",
        "attemptLog": [
            {
                "attempt": 1,
                "startTime": "2026-12-01T00:00:00.000Z",
                "durationMs": 50,
                "statusCode": 200,
            }
        ],
        "response": {
            "statusCode": 200,
            "headers": [{"name": "content-type", "value": "text/html"}],
            "body": "PGgyPkR1cmFibGUgU2VhcmNoIGRlbW8gc2l0ZTwvaDI+",
            "bodyBytes": 32,
            "truncated": False,
            "encoding": "base64",
        },
        "conditions": [
            {
                "type": "Succeeded",
                "status": "True",
                "reason": "Succeeded",
                "message": "200 OK",
                "lastTransitionTime": "2026-12-01T00:00:00Z",
            }
        ],
    }


# -- 3. Durable Search ------------------------------------------------------------------------


class Completions:
    """One watch on the namespace's Searches; when each one reached a finished phase."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.done: dict[str, float] = {}
        self._waiters: dict[str, asyncio.Future[float]] = {}
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/searches"
        self._task = asyncio.create_task(kube.watch(path, self._on_event))

    def _on_event(self, event: dict[str, Any]) -> None:
        body = event["object"]
        if (body.get("status") or {}).get("phase") in ("Completed", "Failed", "Terminated"):
            name = body["metadata"]["name"]
            if name not in self.done:
                self.done[name] = time.perf_counter()
                waiter = self._waiters.pop(name, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(self.done[name])

    async def wait(self, name: str, timeout: float = 120) -> float:
        if name in self.done:
            return self.done[name]
        waiter = self._waiters.setdefault(name, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(waiter, timeout)

    def stop(self) -> None:
        self._task.cancel()


def _profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the operator (collapsed stacks: ``py-spy`` is a dev dependency)."""
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", "200"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def page_providers(env: Environment, tag: str) -> list[dict[str, Any]]:
    """Inline providers: the demo site's pages, answering in ``LATENCY`` seconds."""
    return [
        {"name": f"p{i}", "url": env.site.url(f"{tag}-{i}", delay=LATENCY)}
        for i in range(PROVIDERS)
    ]


def search_manifest(prefix: str, query: str, providers: list[dict[str, Any]]) -> dict[str, Any]:
    """A Search over ``providers`` under a fresh name starting with ``prefix``."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Search",
        "metadata": {"name": f"{prefix}-{uuid.uuid4().hex[:12]}"},
        "spec": {"query": query, "providers": providers},
    }


async def searches(
    env: Environment,
    kube: Kube,
    warmup: int,
    sequential: int,
    concurrent: int,
    in_flight: int,
    profile: Path | None = None,
) -> Any:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{env.namespace}/searches"
    completions = Completions(kube, env.namespace)
    providers = page_providers(env, "bench")

    async def search() -> float:
        body = search_manifest("b", "benchmark", providers)
        name = body["metadata"]["name"]
        began = time.perf_counter()
        await kube.request("POST", path, body)
        return await completions.wait(name) - began

    await asyncio.sleep(1)
    for _ in range(warmup):
        await search()
    one_by_one = [await search() for _ in range(sequential)]
    pids = env.plane.state().pids  # type: ignore[union-attr]
    assert env.operator.process is not None
    meter = CpuMeter(
        {
            "operator": env.operator.process.pid,
            "apiserver": pids["kube-apiserver"],
            "etcd": pids["etcd"],
            "controller-manager": pids["kube-controller-manager"],
        }
    )
    before = env.apiserver_writes()
    profiler = _profile(env.operator.process.pid, profile) if profile else None
    meter.start()
    began = time.perf_counter()
    saturated = await bounded(in_flight, [search] * concurrent)
    elapsed = time.perf_counter() - began
    spent = meter.stop()
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(30)
    await asyncio.sleep(2)  # trailing writes (Events) land before counting
    writes = env.apiserver_writes() - before
    completions.stop()
    total_writes = sum(writes.values()) / concurrent
    by_kind = {
        f"{verb} {resource}{'/' + sub if sub else ''}": round(count / concurrent, 2)
        for (verb, resource, sub), count in sorted(writes.items())
    }
    return {
        "sequential": {"overhead": quantiles([d - LATENCY for d in one_by_one])},
        "saturated": {
            "overhead": quantiles([d - LATENCY for d in saturated]),
            "searches_per_second": round(concurrent / elapsed, 1),
        },
        "api_writes_per_search": round(total_writes, 2),
        "api_writes_by_kind_per_search": by_kind,
        "cpu_ms_per_search": {k: round(v * 1000 / concurrent, 2) for k, v in spent.items()},
    }


async def run(env: Environment, args: argparse.Namespace) -> dict[str, Any]:
    kube = Kube(env.plane)
    try:
        report: dict[str, Any] = {}
        if not args.skip_limits:
            print("floor", file=sys.stderr, flush=True)
            report["floor"] = await floor(env, args.sequential, args.concurrent, args.in_flight)
            print("API server limits", file=sys.stderr, flush=True)
            await kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": "limits"}})
            report["apiserver"] = await write_limits(
                env, kube, "limits", args.writes, args.writes * 5, args.in_flight
            )
        print("Durable Search", file=sys.stderr, flush=True)
        report["durable_search"] = await searches(
            env,
            kube,
            args.warmup,
            args.sequential,
            args.concurrent,
            args.in_flight,
            args.profile_operator,
        )
    finally:
        await kube.close()
    if not args.skip_limits:
        report["ratios"] = ratios(report)
    return report


def ratios(report: dict[str, Any]) -> dict[str, float]:
    write_p50 = report["apiserver"]["schemaless"]["sequential_write"]["p50_ms"]
    ceiling = report["apiserver"]["schemaless"]["writes_per_second"]
    ours = report["durable_search"]
    sequential = ours["sequential"]["overhead"]
    return {
        "overhead_p50_per_schemaless_write_p50": round(sequential["p50_ms"] / write_p50, 2),
        "overhead_p99_per_schemaless_write_p50": round(sequential["p99_ms"] / write_p50, 2),
        "searches_per_second_per_write_ceiling_over_9": round(
            ours["saturated"]["searches_per_second"] / (ceiling / 9), 2
        ),
        "httptask_write_cost_per_schemaless": report["apiserver"]["httptask_write_cost_ratio"],
        "overhead_p50_per_floor": round(
            sequential["p50_ms"] / max(report["floor"]["overhead"]["p50_ms"], 0.01), 1
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=30)
    parser.add_argument("--concurrent", type=int, default=300)
    parser.add_argument("--in-flight", type=int, default=30)
    parser.add_argument("--writes", type=int, default=200, help="sequential writes per kind")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--profile-operator", type=Path, help="py-spy the operator during the saturated phase"
    )
    parser.add_argument("--skip-limits", action="store_true", help="only Durable Search")
    args = parser.parse_args()
    with environment(namespace="bench") as env:
        apply_manifests(env, [BLOB_CRD])
        report = asyncio.run(run(env, args))
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
