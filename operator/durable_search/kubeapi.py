"""Compatibility names for ``durable_search.kube`` (the one road to Kubernetes)."""

from __future__ import annotations

from durable_search.errors import ConflictError, CrdsMissingError, NotFoundError, RefusedError
from durable_search.kube.api import KubeApi
from durable_search.kube.config import load_configuration
from durable_search.kube.objects import merge_patch, version_order, without_bookkeeping

__all__ = [
    "ConflictError",
    "CrdsMissingError",
    "KubeApi",
    "NotFoundError",
    "RefusedError",
    "load_configuration",
    "merge_patch",
    "version_order",
    "without_bookkeeping",
]
