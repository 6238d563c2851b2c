"""Where a write of our kinds costs the API server more than a schema-less one.

    .venv/bin/python -m bench.write_cost [--writes 200]

The same creates and status writes as ``bench.compare``'s limits (two watchers attached), for:

- ``schemaless``: a custom resource with no schema at all;
- ``schema_without_rules``: the HttpTask's OpenAPI schema with every CEL rule
  (``x-kubernetes-validations``) removed, in a bench group (no admission policy matches it);
- ``schema_with_rules``: the HttpTask's whole schema, in the bench group;
- ``httptask``: our HttpTask itself, with the admission policies installed as the chart does.

The differences between neighbours say what the schema, its CEL rules and the admission
policies each cost per write (CPU of kube-apiserver + etcd, and latency). ``by_verb`` then
spends the CPU of creates and of status writes apart (all creates in flight first, then a status
write to each object), in rounds over the kinds, which tells whether a status write pays for
the spec's rules.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from bench.compare import (
    BENCH_GROUP,
    BLOB_CRD,
    apply_manifests,
    bounded,
    task_object,
    task_status,
    write_kinds,
    write_limits,
)
from bench.environment import Environment, environment
from bench.kube import CpuMeter, Kube
from bench.report import emit

ROOT = Path(__file__).resolve().parent.parent


def without_rules(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: without_rules(v) for k, v in node.items() if k != "x-kubernetes-validations"}
    if isinstance(node, list):
        return [without_rules(v) for v in node]
    return node


def bench_crd(kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    plural = f"{kind.lower()}s"
    crd = copy.deepcopy(BLOB_CRD)
    crd["metadata"]["name"] = f"{plural}.bench.durablesearch.dev"
    crd["spec"]["names"] = {"kind": kind, "plural": plural, "singular": kind.lower()}
    crd["spec"]["versions"][0]["schema"] = {"openAPIV3Schema": schema}
    return crd


def crds() -> list[dict[str, Any]]:
    httptask = yaml.safe_load((ROOT / "crds" / "httptasks.yaml").read_text())
    schema = httptask["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return [
        BLOB_CRD,
        bench_crd("PlainTask", without_rules(schema)),
        bench_crd("RuledTask", schema),
    ]


async def by_verb(
    env: Environment,
    kube: Kube,
    kinds: dict[str, tuple[str, str]],
    count: int,
    in_flight: int,
    rounds: int,
) -> dict[str, Any]:
    """CPU ms (kube-apiserver + etcd) per create and per status write, spent apart, per kind.

    ``rounds`` rounds, the kinds in a rotated order each time, and the median round per kind:
    one pass per kind in a fixed order mistook the API server's own drift (startup work, a
    neighbour on the host) for a difference between kinds.
    """
    pids = env.plane.state().pids  # type: ignore[union-attr]
    meter = CpuMeter({"apiserver": pids["kube-apiserver"], "etcd": pids["etcd"]})
    spent: dict[str, dict[str, list[float]]] = {
        label: {"create": [], "status": []} for label in kinds
    }
    labels = list(kinds)
    # Two watchers per kind, as the operator and a client would be.
    watchers = [
        asyncio.create_task(kube.watch(path, lambda event: None))
        for path, _ in kinds.values()
        for _ in range(2)
    ]
    for round_ in range(rounds):
        for label in labels[round_ % len(labels) :] + labels[: round_ % len(labels)]:
            path, kind = kinds[label]
            names = [f"v-{uuid.uuid4().hex[:12]}" for _ in range(count)]

            async def create(name: str, path: str = path, kind: str = kind) -> float:
                await kube.request("POST", path, task_object(kind, name))
                return 0.0

            async def write_status(name: str, path: str = path) -> float:
                await kube.request(
                    "PATCH",
                    f"{path}/{name}/status",
                    {"status": task_status()},
                    content_type="application/merge-patch+json",
                )
                return 0.0

            meter.start()
            await bounded(in_flight, [functools.partial(create, name) for name in names])
            spent[label]["create"].append(sum(meter.stop().values()) * 1000 / count)
            meter.start()
            await bounded(in_flight, [functools.partial(write_status, name) for name in names])
            spent[label]["status"].append(sum(meter.stop().values()) * 1000 / count)
    for watcher in watchers:
        watcher.cancel()
    figures: dict[str, Any] = {}
    for label, verbs in spent.items():
        create_ms = statistics.median(verbs["create"])
        status_ms = statistics.median(verbs["status"])
        figures[label] = {
            "cpu_ms_per_create": round(create_ms, 2),
            "cpu_ms_per_status_write": round(status_ms, 2),
            "cpu_ms_per_write": round((create_ms + status_ms) / 2, 2),
            "rounds_create_ms": [round(v, 2) for v in verbs["create"]],
            "rounds_status_ms": [round(v, 2) for v in verbs["status"]],
        }
    plain = figures["schemaless"]
    for label in kinds:
        for verb in ("cpu_ms_per_create", "cpu_ms_per_status_write", "cpu_ms_per_write"):
            figures[label][f"{verb}_vs_schemaless"] = round(figures[label][verb] / plain[verb], 2)
    return figures


async def run(
    env: Environment, writes: int, in_flight: int, rounds: int, by_verb_only: bool = False
) -> dict[str, Any]:
    kube = Kube(env.plane)
    try:
        await kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": "costs"}})
        base = f"/apis/{BENCH_GROUP}/namespaces/costs"
        ours = write_kinds("costs")
        kinds = {
            "schemaless": ours["schemaless"],
            "schema_without_rules": (f"{base}/plaintasks", "PlainTask"),
            "schema_with_rules": (f"{base}/ruledtasks", "RuledTask"),
            "httptask": ours["httptask"],
        }
        figures: dict[str, Any] = (
            {}
            if by_verb_only
            else await write_limits(env, kube, "costs", writes, writes * 5, in_flight, kinds)
        )
        figures["by_verb"] = await by_verb(env, kube, kinds, writes * 2, in_flight, rounds)
    finally:
        await kube.close()
    if by_verb_only:
        return figures
    figures.pop("httptask_write_cost_ratio", None)
    plain = figures["schemaless"]["cpu_ms_per_write"]
    figures["cpu_per_write_vs_schemaless"] = {
        label: round(figures[label]["cpu_ms_per_write"] / plain, 2) for label in kinds
    }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--writes", type=int, default=200, help="sequential writes per kind")
    parser.add_argument("--in-flight", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the by-verb figures")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--by-verb-only", action="store_true", help="only the by-verb figures")
    args = parser.parse_args()
    with environment(namespace="bench") as env:
        apply_manifests(env, crds())
        report = asyncio.run(run(env, args.writes, args.in_flight, args.rounds, args.by_verb_only))
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
