"""Where a write of our kinds costs the API server more than a schema-less one.

    .venv/bin/python -m bench.write_cost [--writes 200]

The same creates and status writes as ``bench.compare``'s limits (two watchers attached), for:

- ``schemaless``: a custom resource with no schema at all;
- ``schema_without_rules``: the HttpTask's OpenAPI schema with every CEL rule
  (``x-kubernetes-validations``) removed, in a bench group (no admission policy matches it);
- ``schema_with_rules``: the HttpTask's whole schema, in the bench group;
- ``httptask``: our HttpTask itself, with the admission policies installed as the chart does.

The differences between neighbours say what the schema, its CEL rules and the admission
policies each cost per write (CPU of kube-apiserver + etcd, and latency).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from bench.compare import BENCH_GROUP, BLOB_CRD, apply_manifests, write_kinds, write_limits
from bench.environment import Environment, environment
from bench.kube import Kube
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


async def run(env: Environment, writes: int, in_flight: int) -> dict[str, Any]:
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
        figures: dict[str, Any] = await write_limits(
            env, kube, "costs", writes, writes * 5, in_flight, kinds
        )
    finally:
        await kube.close()
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
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with environment(namespace="bench") as env:
        apply_manifests(env, crds())
        report = asyncio.run(run(env, args.writes, args.in_flight))
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
