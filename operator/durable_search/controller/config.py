"""The operator's configuration: flags and the environment variables beside them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorConfig:
    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()  # empty: the context's namespace
    all_namespaces: bool = False
    allow_cidrs: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    health_host: str = "0.0.0.0"
    health_port: int | None = None
    max_connections: int = 512
    max_connections_per_host: int = 16
    watcher_base_url: str | None = None  # the web service's base URL, for the watcher's path

    @property
    def follows_namespace_patterns(self) -> bool:
        return any(ch in ns for ns in self.namespaces for ch in "*?[")


def parse_list(values: Sequence[str] | None, env: str) -> tuple[str, ...]:
    """Repeated flags, else the comma-separated environment variable beside them."""
    if values:
        return tuple(values)
    raw = os.environ.get(env, "")
    return tuple(v.strip() for v in raw.split(",") if v.strip())
