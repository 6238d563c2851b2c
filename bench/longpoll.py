"""Long-poll notify latency, and the web service's memory with many open long-polls.

    .venv/bin/python -m bench.longpoll --searches 50 --open-polls 1000

Latency: for each Search (one provider answering in 300 ms) a client long-polls the status
route (If-None-Match + timeoutSeconds=30) until the 200; the figure is from the Search's
``completionTime`` (stamped by the operator just before its status write) to the client
holding the answer, so it includes the write, the watch delivery and the HTTP answer.
Memory: the web process's RSS before and while ``--open-polls`` long-polls wait on one
running Search (one shared watch serves them all).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from kubernetes import client

from bench.environment import environment
from bench.report import emit
from durable_search.api.constants import GROUP, PROVIDER_PLURAL, VERSION
from durable_search.api.timestamps import parse_time
from tests.support.processes import WebProcess


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def latency_run(base: str, provider: str, searches: int) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=70) as http:
        for _ in range(searches):
            started = await http.post(
                "/api/searches",
                json={"query": "latency", "providers": [provider], "watcher": False},
            )
            search_id = started.json()["id"]
            etag = (await http.get(f"/api/searches/{search_id}")).headers["ETag"]
            while True:
                response = await http.get(
                    f"/api/searches/{search_id}",
                    params={"timeoutSeconds": 30},
                    headers={"If-None-Match": etag},
                )
                answered = time.time()
                etag = response.headers["ETag"]
                if response.status_code == 200:
                    break
            status = (await http.get(f"/api/searches/{search_id}")).json()
            completed = parse_time(status["lastUpdatedTime"])
            assert completed is not None
            latencies.append(answered - completed.timestamp())
    return latencies


async def crowd_run(base: str, provider: str, polls: int, pid: int) -> dict[str, Any]:
    """aiohttp as the crowd's client: httpx's default transport is too slow for 1,000 at once."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        base, connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as http:
        async with http.post(
            "/api/searches", json={"query": "crowd", "providers": [provider], "watcher": False}
        ) as started:
            search_id = (await started.json())["id"]
        while True:
            async with http.get(f"/api/searches/{search_id}", params={"timeoutSeconds": "5"}) as r:
                if (await r.json())["runtimeStatus"] == "Running":
                    etag = r.headers["ETag"]
                    break
        before = rss_mib(pid)

        async def poll() -> int:
            async with http.get(
                f"/api/searches/{search_id}",
                params={"timeoutSeconds": "60"},
                headers={"If-None-Match": etag},
            ) as response:
                await response.read()
                return response.status

        tasks = [asyncio.ensure_future(poll()) for _ in range(polls)]
        waiting = 0.0
        for _ in range(100):
            await asyncio.sleep(0.2)
            async with http.get("/metrics") as r:
                text = await r.text()
            waiting = next(
                float(line.split()[1])
                for line in text.splitlines()
                if line.startswith("durable_search_web_long_polls ")
            )
            if waiting >= polls:
                break
        during = rss_mib(pid)
        began = time.monotonic()
        async with http.post(f"/api/searches/{search_id}/terminate") as r:
            assert r.status == 202
        statuses = await asyncio.gather(*tasks)
        all_answered = time.monotonic() - began
    return {
        "open_long_polls": waiting,
        "rss_before_mib": before,
        "rss_with_polls_mib": during,
        "answered_all_after_change_s": all_answered,
        "statuses": sorted(set(statuses)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--searches", type=int, default=50)
    parser.add_argument("--open-polls", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))

    with environment(namespace="longpoll") as env:
        custom = client.CustomObjectsApi(env.api)
        providers = {}
        for name, url in (
            ("timed", env.site.url("lp-timed", delay=0.3)),
            ("stuck", env.site.url("lp-stuck", hang=1)),
        ):
            custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                env.namespace,
                PROVIDER_PLURAL,
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "SearchProvider",
                    "metadata": {"name": name},
                    "spec": {"url": url},
                },
            )
            providers[name] = name
        log = env.plane.state_dir / f"web-{uuid.uuid4().hex[:6]}.log"
        web = WebProcess(env.plane.kubeconfig, log, env.namespace, log_level="warning").start()
        try:
            assert web.process is not None
            latencies = asyncio.run(latency_run(web.base, "timed", args.searches))
            crowd = asyncio.run(crowd_run(web.base, "stuck", args.open_polls, web.process.pid))
        finally:
            web.stop()
    report = {
        "searches": args.searches,
        "notify_latency_ms": {
            "median": statistics.median(latencies) * 1000,
            "p90": sorted(latencies)[int(len(latencies) * 0.9)] * 1000,
            "worst": max(latencies) * 1000,
        },
        **crowd,
        "note": "completionTime (ms, operator clock) to client answer; same machine clock",
    }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
