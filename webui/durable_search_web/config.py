"""The web service's settings and the typed application keys its parts share."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from durable_search_web.auth import AuthMode, Authorizer
from durable_search_web.cache import SearchCache

MAX_REQUEST_BYTES = 16 * 1024
LONG_POLL_MAX_SECONDS = 60
WATCHER_LONG_POLL_SECONDS = 30


@dataclass(frozen=True)
class WebConfig:
    namespace: str
    host: str = "127.0.0.1"
    port: int = 8080
    watcher_base_url: str | None = None  # default: this service's own listen address
    auth: AuthMode = AuthMode.SERVICE_ACCOUNT
    kubeconfig: str | None = None
    watcher_deadline_margin_seconds: int = 60

    @property
    def own_base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def watcher_base(self) -> str:
        return (self.watcher_base_url or self.own_base_url).rstrip("/")


class WebMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "durable_search_web_requests_total",
            "API requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.long_polls = Gauge(
            "durable_search_web_long_polls", "Long-polls waiting now", registry=self.registry
        )
        self.notify_latency = Histogram(
            "durable_search_web_long_poll_wakeup_seconds",
            "From a change reaching the cache to the waiting long-poll answering",
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
        )
        self.cached_searches = Gauge(
            "durable_search_web_cached_searches", "Searches in the cache", registry=self.registry
        )


CONFIG = web.AppKey("config", WebConfig)
CACHE = web.AppKey("cache", SearchCache)
AUTHORIZER = web.AppKey("authorizer", Authorizer)
METRICS = web.AppKey("metrics", WebMetrics)
