"""Where a sequential Search's overhead goes, stage by stage.

    .venv/bin/python -m bench.stages [--searches 30] [--warmup 3]

The same environment and Searches as ``bench.compare``'s sequential phase (etcd on disk,
fsync on; three loopback pages answering in 50 ms). Each Search is created and awaited alone;
its stages are read back from what the operator recorded (millisecond timestamps) and the
client's own clock, all on this one machine:

- ``create``: the client's POST of the Search;
- ``to_plan``: the POST's answer to the plan's ``startTime`` (the watch delivering the Search);
- ``plan_to_first_send``: the plan to the first child's first attempt (the child creates);
- ``sends_spread``: first to last child's first attempt (etcd commits the creates in turn);
- ``http_slowest``: the slowest page's exchange (50 ms of it is the page's own delay);
- ``answer_to_child_done``: an answer in hand to its outcome's ``completionTime``;
- ``last_child_to_search_done``: the last child's outcome to the Search's ``completionTime``
  (the child's status write, then the fan-in's decision);
- ``search_done_to_client``: the fan-in's write and the watch delivering it to the client.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.compare import LATENCY, Completions, page_providers, search_manifest
from bench.environment import Environment, environment
from bench.kube import Kube
from bench.report import emit
from durable_search.api.constants import GROUP, VERSION

STAGES = (
    "create",
    "to_plan",
    "plan_to_first_send",
    "sends_spread",
    "http_slowest",
    "answer_to_child_done",
    "last_child_to_search_done",
    "search_done_to_client",
    "overhead",
)


def _seconds(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _stages_of(
    kube: Kube, namespace: str, name: str, began: float, created: float, done: float
) -> dict[str, float]:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}"
    status = (await kube.request("GET", f"{base}/searches/{name}"))["status"]
    starts, ends, finished = [], [], []
    for result in status["results"]:
        child = await kube.request("GET", f"{base}/httptasks/{result['httpTaskName']}")
        first = child["status"]["attemptLog"][0]
        start = _seconds(first["startTime"])
        starts.append(start)
        ends.append(start + first["durationMs"] / 1000)
        finished.append(_seconds(child["status"]["completionTime"]))
    planned = _seconds(status["startTime"])
    completed = _seconds(status["completionTime"])
    return {
        "create": created - began,
        "to_plan": planned - created,
        "plan_to_first_send": min(starts) - planned,
        "sends_spread": max(starts) - min(starts),
        "http_slowest": max(end - start for start, end in zip(starts, ends, strict=True)),
        "answer_to_child_done": max(f - end for f, end in zip(finished, ends, strict=True)),
        "last_child_to_search_done": completed - max(finished),
        "search_done_to_client": done - completed,
        "overhead": done - began - LATENCY,
    }


async def run(env: Environment, searches: int, warmup: int) -> dict[str, Any]:
    kube = Kube(env.plane)
    completions = Completions(kube, env.namespace)
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{env.namespace}/searches"
    providers = page_providers(env, "stage")
    rows: list[dict[str, float]] = []
    try:
        await asyncio.sleep(1)
        for number in range(warmup + searches):
            body = search_manifest("st", "stages", providers)
            name = body["metadata"]["name"]
            # Wall clock, to compare with the operator's timestamps (same machine); the watch
            # notes the moment it saw the Search finished on the monotonic clock.
            began, began_mono = time.time(), time.perf_counter()
            await kube.request("POST", path, body)
            created = began + time.perf_counter() - began_mono
            done = began + await completions.wait(name) - began_mono
            if number >= warmup:
                rows.append(await _stages_of(kube, env.namespace, name, began, created, done))
    finally:
        completions.stop()
        await kube.close()
    return {
        stage: {
            "p50_ms": round(statistics.median(row[stage] for row in rows) * 1000, 1),
            "max_ms": round(max(row[stage] for row in rows) * 1000, 1),
        }
        for stage in STAGES
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--searches", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with environment(namespace="bench") as env:
        report = asyncio.run(run(env, args.searches, args.warmup))
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
