"""The watcher's trusted path: the one request that may reach the web service past the guard.

Each web-started Search gets a watcher HttpTask that long-polls ``<watcher base URL>/api/
searches/{id}``. The web service usually sits at an address the SSRF guard refuses (a cluster
Service), and opening its host for everyone let any provider's redirect reach the web's
state-changing routes. So nothing is opened: the executor skips the guard for exactly this URL
shape, on the first hop only, and only for an HttpTask owned by the Search the path names
(``controller.tasks`` checks the owner's uid). In ``--auth client`` mode those polls carry a
token for the operator's own ServiceAccount with audience :data:`WEB_AUDIENCE`, which the web
service checks with a TokenReview.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

WEB_AUDIENCE = "durable-search-web"
_SEARCH_ID = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
_QUERY = re.compile(r"(timeoutSeconds=[0-9]{1,2})?")


@dataclass(frozen=True)
class WatcherPath:
    base: str  # scheme://host[:port][/prefix], no trailing slash
    token: Callable[[], Awaitable[str | None]]

    @classmethod
    def for_base(cls, base: str, token: Callable[[], Awaitable[str | None]]) -> WatcherPath:
        return cls(base.rstrip("/"), token)

    def search_of(self, url: str) -> str | None:
        """The Search id ``url`` polls, when it is exactly ``<base>/api/searches/{id}``."""
        try:
            wanted, given = urlsplit(self.base), urlsplit(url)
            same_origin = (
                given.scheme.lower() == wanted.scheme.lower()
                and (given.hostname or "") == (wanted.hostname or "").lower()
                and given.port == wanted.port
            )
        except ValueError:
            return None
        if not same_origin or given.fragment or given.username or given.password:
            return None
        if not _QUERY.fullmatch(given.query):
            return None
        match = re.fullmatch(
            re.escape(wanted.path.rstrip("/")) + rf"/api/searches/({_SEARCH_ID})", given.path
        )
        return match.group(1) if match else None
