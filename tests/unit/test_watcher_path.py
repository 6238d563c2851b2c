"""The watcher's trusted path matches exactly ``<base>/api/searches/{id}`` and nothing else."""

from __future__ import annotations

import pytest

from durable_search.controller.watcher import WatcherPath


async def no_token() -> str | None:
    return None


PATH = WatcherPath.for_base("http://web.ns.svc:8080/prefix/", no_token)


@pytest.mark.parametrize(
    ("url", "search"),
    [
        ("http://web.ns.svc:8080/prefix/api/searches/s-1", "s-1"),
        ("http://web.ns.svc:8080/prefix/api/searches/s-1?timeoutSeconds=30", "s-1"),
        ("http://WEB.ns.svc:8080/prefix/api/searches/s-1", "s-1"),
        ("http://web.ns.svc:8080/prefix/api/StartSearch?q=x", None),
        ("http://web.ns.svc:8080/prefix/api/searches/s-1/terminate", None),
        ("http://web.ns.svc:8080/prefix/api/searches/s-1?q=x", None),
        ("http://web.ns.svc:8080/api/searches/s-1", None),
        ("http://web.ns.svc:9090/prefix/api/searches/s-1", None),
        ("https://web.ns.svc:8080/prefix/api/searches/s-1", None),
        ("http://user@web.ns.svc:8080/prefix/api/searches/s-1", None),
        ("http://web.ns.svc:8080/prefix/api/searches/S_1", None),
        ("http://web.ns.svc:8080/prefix/api/searches/s-1#x", None),
        ("http://[::1/prefix/api/searches/s-1", None),
    ],
)
def test_only_the_status_route_of_one_search_is_on_the_path(url: str, search: str | None) -> None:
    assert PATH.search_of(url) == search
