"""Fan-out: from a Search and its resolved providers to the plan and the child HttpTasks.

The plan is the ``results`` list a Search records when it starts: one entry per provider, in a
stable order, with the child's deterministic name (none for a provider that does not exist).
Once recorded it never changes, so a restarted operator re-creates exactly the same children.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from durable_search.api.constants import (
    ANNOTATION_SEARCH_PROVIDER,
    API_VERSION,
    HTTPTASK_KIND,
    LABEL_PROVIDER,
    LABEL_ROLE,
    LABEL_SEARCH_NAME,
    LABEL_SEARCH_UID,
    ROLE_FANOUT,
    SEARCH_KIND,
    Outcome,
)
from durable_search.api.models import ProviderSpec, SearchSpec
from durable_search.api.status import Metadata, OwnerReference, SearchResult
from durable_search.engine.deadline import child_deadline_seconds
from durable_search.engine.names import child_name, label_value
from durable_search.engine.templating import render_url


@dataclass(frozen=True)
class SearchRef:
    """Who a child belongs to: enough for names, labels and the ownerReference."""

    name: str
    namespace: str
    uid: str


def plan_results(
    search: SearchRef, spec: SearchSpec, resolved: Mapping[str, ProviderSpec | None]
) -> list[SearchResult]:
    """The initial ``results``: pending entries, and ``ProviderNotFound`` for missing refs."""
    results: list[SearchResult] = []
    for name, provider in resolved.items():
        if provider is None:
            results.append(
                {
                    "name": name,
                    "outcome": Outcome.PROVIDER_NOT_FOUND.value,
                    "attempts": 0,
                    "message": f'SearchProvider "{name}" does not exist in {search.namespace}',
                }
            )
        else:
            results.append(
                {
                    "name": name,
                    "httpTaskName": child_name(search.name, name, search.uid),
                    "attempts": 0,
                }
            )
    return results


def owned_by(child: Mapping[str, Any], search_uid: str) -> bool:
    """Whether ``child`` is the Search's own: its controller ownerReference has that uid."""
    return any(
        owner.get("kind") == SEARCH_KIND
        and owner.get("controller")
        and owner.get("uid") == search_uid
        for owner in child.get("metadata", {}).get("ownerReferences") or ()
    )


def child_labels(search: SearchRef, provider: str, role: str = ROLE_FANOUT) -> dict[str, str]:
    return {
        LABEL_SEARCH_UID: search.uid,
        LABEL_SEARCH_NAME: label_value(search.name),
        LABEL_PROVIDER: provider,
        LABEL_ROLE: role,
    }


def owner_reference(search: SearchRef, *, controller: bool) -> OwnerReference:
    return {
        "apiVersion": API_VERSION,
        "kind": SEARCH_KIND,
        "name": search.name,
        "uid": search.uid,
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def child_manifest(
    search: SearchRef,
    spec: SearchSpec,
    provider: ProviderSpec,
    *,
    started: dt.datetime,
    now: dt.datetime,
    name: str | None = None,
) -> dict[str, Any]:
    """The HttpTask that fetches ``provider``'s page for the Search's query.

    ``name`` is the one the plan recorded, when it has one: a Search planned under an older
    naming re-creates a lost child under the name it will look it up by.
    """
    task_spec: dict[str, Any] = {
        "request": {
            "method": provider.method,
            "url": render_url(provider.url, spec.query),
            "headers": [h.to_json() for h in provider.headers],
        },
        "deadlineSeconds": child_deadline_seconds(spec, started, now),
    }
    timeout = _tightest(provider.attempt_timeout_seconds, spec.overrides.attempt_timeout_seconds)
    if timeout is not None:
        task_spec["attemptTimeoutSeconds"] = max(math.ceil(timeout), 1)
    retry = dict(provider.retry or {})
    if spec.overrides.max_attempts is not None:
        retry["maxAttempts"] = min(int(retry.get("maxAttempts", 3)), spec.overrides.max_attempts)
    if retry:
        task_spec["retry"] = retry
    if provider.response:
        task_spec["response"] = dict(provider.response)
    task_spec.update(_expression_fields(provider))
    _request_capabilities(task_spec["request"], provider)
    metadata: Metadata = {
        "name": name or child_name(search.name, provider.name, search.uid),
        "namespace": search.namespace,
        "labels": child_labels(search, provider.name),
        "ownerReferences": [owner_reference(search, controller=True)],
    }
    if provider.from_object:
        metadata["annotations"] = {ANNOTATION_SEARCH_PROVIDER: provider.name}
    return {
        "apiVersion": API_VERSION,
        "kind": HTTPTASK_KIND,
        "metadata": metadata,
        "spec": task_spec,
    }


def _expression_fields(provider: ProviderSpec) -> dict[str, Any]:
    """The provider's CEL fields (successCondition, outputs, async), copied as written."""
    fields: dict[str, Any] = {}
    if provider.success_condition is not None:
        fields["successCondition"] = provider.success_condition
    if provider.outputs:
        fields["outputs"] = [o.to_json() for o in provider.outputs]
    if provider.async_:
        fields["async"] = dict(provider.async_)
    return fields


def _request_capabilities(request: dict[str, Any], provider: ProviderSpec) -> None:
    """The provider's body, body source and TLS settings, copied into the child's request."""
    if provider.body is not None:
        request["body"] = provider.body
    if provider.body_encoding is not None:
        request["bodyEncoding"] = provider.body_encoding
    if provider.body_from is not None:
        request["bodyFrom"] = provider.body_from.to_json()
    if provider.tls is not None:
        request["tls"] = provider.tls.to_json()


def _tightest(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None
