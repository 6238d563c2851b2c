"""Which HTTP client the executor should use: throughput and CPU per request, measured.

    .venv/bin/python -m bench.http_clients --requests 3000 --concurrency 30

Three clients fetch the same local page (a 50 ms answer, like a search site) at the same
concurrency: httpx on its default transport, httpx over aiohttp's transport (what the operator
uses: ``SharedHttpClient``, SSRF guard included), and aiohttp alone. The server runs in another
process, so the CPU figure is the client's own.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.report import emit
from durable_search.http.addresses import AddressPolicy
from durable_search.http.client import ClientSettings, OutgoingRequest, SharedHttpClient
from tests.support.processes import free_port

SERVER = """
import asyncio, sys
from aiohttp import web
async def page(request):
    await asyncio.sleep(0.05)
    return web.Response(text="<p>" + "result " * 200 + "</p>", content_type="text/html")
app = web.Application(); app.router.add_get("/search", page)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(
    fetch: Callable[[], Awaitable[int]], requests: int, concurrency: int
) -> dict[str, float]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> int:
        async with semaphore:
            return await fetch()

    await asyncio.gather(*(one() for _ in range(concurrency)))  # warm the pools
    cpu, wall = cpu_seconds(), time.monotonic()
    codes = await asyncio.gather(*(one() for _ in range(requests)))
    elapsed, used = time.monotonic() - wall, cpu_seconds() - cpu
    assert set(codes) == {200}, set(codes)
    return {"requests_per_second": requests / elapsed, "cpu_ms_per_request": used * 1000 / requests}


async def measure(url: str, requests: int, concurrency: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(
        trust_env=False, limits=httpx.Limits(max_connections=100)
    ) as plain:

        async def with_httpx() -> int:
            return (await plain.get(url)).status_code

        results["httpx default transport"] = await run(with_httpx, requests, concurrency)

    shared = SharedHttpClient(
        ClientSettings(
            policy=AddressPolicy.from_strings(["127.0.0.0/8"]), max_connections_per_host=100
        )
    )
    try:

        async def with_shared() -> int:
            response = await shared.send(
                OutgoingRequest("GET", url, []), timeout=30, max_body_bytes=262144
            )
            return response.status_code

        results["httpx over aiohttp (SharedHttpClient, guarded)"] = await run(
            with_shared, requests, concurrency
        )
    finally:
        await shared.aclose()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def with_aiohttp() -> int:
            async with session.get(url) as response:
                await response.read()
                return response.status

        results["aiohttp alone"] = await run(with_aiohttp, requests, concurrency)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        time.sleep(1.5)
        results = asyncio.run(
            measure(f"http://127.0.0.1:{port}/search", args.requests, args.concurrency)
        )
    finally:
        server.terminate()
        server.wait()
    report = {"requests": args.requests, "concurrency": args.concurrency, "clients": results}
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
