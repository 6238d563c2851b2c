"""The web service's settings and the typed application and request keys its parts share."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from durable_search_web.access import Access, Caller
from durable_search_web.auth import AuthMode, Authorizer
from durable_search_web.cache import SearchCache
from durable_search_web.clock import Clock
from durable_search_web.forwarded import IPNetwork, Origin
from durable_search_web.limits import LongPollSlots, StartLimiter

MAX_REQUEST_BYTES = 16 * 1024
LONG_POLL_MAX_SECONDS = 60
WATCHER_LONG_POLL_SECONDS = 30
MAX_TTL_SECONDS = 2_592_000  # the CRD's bound on ttlSecondsAfterFinished (30 days)


@dataclass(frozen=True)
class WebConfig:
    namespace: str
    host: str = "127.0.0.1"
    port: int = 8080
    watcher_base_url: str | None = None  # default: this service's own listen address
    auth: AuthMode = AuthMode.SERVICE_ACCOUNT
    kubeconfig: str | None = None
    watcher_deadline_margin_seconds: int = 60
    # ttlSecondsAfterFinished of the Searches this service starts; 0: none (kept until purged).
    default_ttl_seconds: int = 86_400
    start_rate: float = 5.0  # starts per second per client; 0: unlimited
    start_burst: int = 20
    max_long_polls: int = 10_000  # 0: unlimited
    trusted_proxies: tuple[IPNetwork, ...] = ()
    watcher_users: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not 0 <= self.default_ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"--default-ttl-seconds must be from 0 to {MAX_TTL_SECONDS}")
        if self.start_rate < 0 or self.start_burst < 1:
            raise ValueError("--start-rate must be at least 0 and --start-burst at least 1")
        if self.max_long_polls < 0:
            raise ValueError("--max-long-polls must be at least 0")

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
        self.refused = Counter(
            "durable_search_web_refused_total",
            "Requests refused by a limit: start_rate (429) or long_polls (503)",
            ["limit"],
            registry=self.registry,
        )
        self.cached_searches = Gauge(
            "durable_search_web_cached_searches", "Searches in the cache", registry=self.registry
        )


CONFIG = web.AppKey("config", WebConfig)
CLOCK = web.AppKey("clock", Clock)  # the one clock the app reads (clock.py)
CACHE = web.AppKey("cache", SearchCache)
AUTHORIZER = web.AppKey("authorizer", Authorizer)
METRICS = web.AppKey("metrics", WebMetrics)
START_LIMITER = web.AppKey("start_limiter", StartLimiter)
LONG_POLLS = web.AppKey("long_polls", LongPollSlots)
# Each registered route's declaration (see access.py); the middleware refuses routes without.
ACCESS = web.AppKey("access", dict[web.AbstractRoute, Access])

ORIGIN = web.RequestKey("origin", Origin)  # how the client reached us (forwarded.py)
CALLER = web.RequestKey("caller", Caller)  # who it is, once authorized
