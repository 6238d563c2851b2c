"""Prometheus metrics of the operator, served on ``--health-port`` at ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.exchanges = Counter(
            "durable_search_http_exchanges_total",
            "HTTP exchanges (attempts and polls) by kind and result",
            ["kind", "result"],
            registry=self.registry,
        )
        self.status_writes = Counter(
            "durable_search_status_writes_total",
            "Status writes by kind",
            ["kind"],
            registry=self.registry,
        )
        self.children_created = Counter(
            "durable_search_httptasks_created_total",
            "HttpTasks created by Searches",
            registry=self.registry,
        )
        self.active_tasks = Gauge(
            "durable_search_active_httptasks", "HttpTask workers running", registry=self.registry
        )
        self.active_searches = Gauge(
            "durable_search_active_searches", "Search workers running", registry=self.registry
        )
        self.ring_members = Gauge(
            "durable_search_ring_members",
            "Live members of the operator ring, as this member sees them (0: standalone)",
            registry=self.registry,
        )
        self.owned_objects = Gauge(
            "durable_search_owned_objects",
            "Unfinished objects this member owns (its share of the ring)",
            ["kind"],
            registry=self.registry,
        )
        self.claims = Counter(
            "durable_search_claims_total",
            "Claims of a ring: taken over from another member, or released to one",
            ["action"],
            registry=self.registry,
        )


METRICS = OperatorMetrics()
