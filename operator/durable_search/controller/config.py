"""The operator's configuration: flags and the environment variables beside them."""

from __future__ import annotations

import os
import socket
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
    ring: str | None = None  # the ring's name: share the work with the other members
    identity: str | None = None  # this member's name in the ring (default: the Pod's name)
    drain_seconds: float = 25.0  # on SIGTERM, how long a member lets exchanges in flight finish

    def member_identity(self) -> str:
        """This member's identity: the flag, else the Pod's name, else host and pid."""
        if self.identity:
            return self.identity
        pod = os.environ.get("POD_NAME")
        if pod:
            return pod
        return f"{socket.gethostname().split('.')[0].lower()}-{os.getpid()}"

    def lease_namespace(self, context_namespace: str) -> str:
        """Where the ring's Leases live: the Pod's namespace, else the first watched one (a
        name, not a pattern), else the context's namespace."""
        named = [ns for ns in self.namespaces if not any(ch in ns for ch in "*?[")]
        return os.environ.get("POD_NAMESPACE") or (named[0] if named else context_namespace)

    @property
    def follows_namespace_patterns(self) -> bool:
        return any(ch in ns for ns in self.namespaces for ch in "*?[")


def parse_list(values: Sequence[str] | None, env: str) -> tuple[str, ...]:
    """Repeated flags, else the comma-separated environment variable beside them."""
    if values:
        return tuple(values)
    raw = os.environ.get(env, "")
    return tuple(v.strip() for v in raw.split(",") if v.strip())
