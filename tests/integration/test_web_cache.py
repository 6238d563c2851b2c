"""The web service's shared cache lists in pages and keeps only what the API answers need."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kubernetes import client

from durable_search.kube.client import KubeClient
from durable_search.kube.config import load_configuration
from durable_search_web.cache import SearchCache
from tests.support.searches import Searches


def test_the_cache_lists_in_pages_then_follows_the_watch(
    api_client: client.ApiClient, isolated_namespace: str, kubeconfig: Path, crds: None
) -> None:
    searches = Searches(api_client, isolated_namespace)
    names = {
        searches.create(
            {
                "query": f"q{n}",
                "providers": [
                    {
                        "name": "p",
                        "url": "http://127.0.0.1:9/?q={query}",
                        "headers": [{"name": "X-Big", "value": "v" * 4000}],
                    }
                ],
            }
        )
        for n in range(5)
    }

    async def scenario() -> None:
        api = KubeClient(await load_configuration(str(kubeconfig)))
        cache = SearchCache(api, isolated_namespace, page_size=2)
        runner = asyncio.create_task(cache.run())
        try:
            await asyncio.wait_for(cache.synced.wait(), 10)
            assert {b["metadata"]["name"] for b in cache.all()} == names
            held = cache.get(next(iter(names)))
            assert held is not None
            assert "managedFields" not in held["metadata"]
            assert held["spec"]["providers"] == [{"name": "p"}]  # not the 4 KB header
            later = await asyncio.to_thread(searches.create, {"query": "later"})
            for _ in range(100):  # the watch delivers it: no re-list
                if cache.get(later) is not None:
                    break
                await asyncio.sleep(0.1)
            assert cache.get(later) is not None
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await api.close()

    asyncio.run(scenario())
