"""Managing Searches, decided once for the web API and the CLI (pure: no I/O).

Durable Functions users expect a few verbs beyond "start and poll": start under an id of their
own choosing (idempotently), rerun an instance, purge by filter, terminate with a reason. The
web service (``durable_search_web.api``) and the CLI (``durable_search.commands.manage``) both
reach the API server through ``durable_search.kube``, and what they write and what they select
is decided here, so the two cannot drift:

- ``start_manifest``: a Search as a start request makes it, with its canonical input kept in the
  ``durablesearch.dev/input`` annotation (what an idempotent ``PUT`` compares);
- ``rerun_manifest``: another run of a Search: its spec but ``terminate``/``terminateReason``,
  labelled ``durablesearch.dev/rerun-of``;
- ``watcher_manifest``: the sample's WatchWorkflow, an HttpTask riding the status URL's 202s;
- ``PurgeFilter``: which Searches a purge deletes (never an unfinished one).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from durable_search.api.constants import (
    API_VERSION,
    GROUP,
    HTTPTASK_KIND,
    LABEL_ROLE,
    LABEL_SEARCH_NAME,
    LABEL_SEARCH_UID,
    ROLE_WATCHER,
    SEARCH_KIND,
    SearchPhase,
)
from durable_search.api.status import Body, Metadata, search_phase, search_status
from durable_search.api.timestamps import parse_time
from durable_search.engine.fanout import SearchRef, owner_reference
from durable_search.engine.names import label_value, watcher_name

ANNOTATION_INPUT = f"{GROUP}/input"
LABEL_RERUN_OF = f"{GROUP}/rerun-of"
MAX_TERMINATE_REASON = 256
# A Search's own spec fields a rerun leaves behind: it is a new run, not a stopped one.
RUN_STATE_FIELDS = ("terminate", "terminateReason")
WATCHER_LONG_POLL_SECONDS = 30
DEFAULT_DEADLINE_SECONDS = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def new_search_name() -> str:
    """A generated id: ``s-<12 hex>`` (48 random bits)."""
    return f"s-{secrets.token_hex(6)}"


# -- starting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartInput:
    """What a start request asks for: the query, SearchProvider names, and a watcher or not."""

    query: str
    providers: tuple[str, ...] = ()
    watcher: bool = True

    def canonical(self) -> str:
        """The input as compact JSON with sorted keys and provider names (a set, as in the
        spec's ``providerRefs``): two requests asking for the same run give the same text."""
        document = {
            "providers": sorted(set(self.providers)),
            "query": self.query,
            "watcher": self.watcher,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def start_manifest(name: str, start: StartInput, ttl_seconds: int | None) -> Body:
    """The Search a start request creates, its canonical input in an annotation."""
    spec: Body = {"query": start.query}
    if start.providers:
        spec["providerRefs"] = list(dict.fromkeys(start.providers))
    if ttl_seconds:
        spec["ttlSecondsAfterFinished"] = ttl_seconds
    return {
        "apiVersion": API_VERSION,
        "kind": SEARCH_KIND,
        "metadata": {"name": name, "annotations": {ANNOTATION_INPUT: start.canonical()}},
        "spec": spec,
    }


def recorded_input(search: Mapping[str, Any]) -> str | None:
    """The canonical input a Search was started with, if a start request made it."""
    annotations = (search.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ANNOTATION_INPUT)
    return str(value) if value is not None else None


def same_start(search: Mapping[str, Any], start: StartInput) -> bool | None:
    """Whether ``search`` was started with ``start``'s input; None when no start request made
    it (created with kubectl, say): then it is nobody's earlier ``PUT``."""
    recorded = recorded_input(search)
    if recorded is None:
        return None
    return recorded == start.canonical()


# -- rerunning ------------------------------------------------------------------------------


def rerun_manifest(original: Mapping[str, Any], name: str) -> Body:
    """Another run of ``original`` under ``name``: the same spec but its run state.

    Only the spec, the canonical input (so the new run says what it was started with) and
    the ``rerun-of`` label are carried over; the new Search gets its own uid, status and
    children. The original's full spec is needed (inline providers included): read it from the
    API server, not from a cache that slims it.
    """
    spec = {k: v for k, v in (original.get("spec") or {}).items() if k not in RUN_STATE_FIELDS}
    metadata: Metadata = {
        "name": name,
        "labels": {LABEL_RERUN_OF: label_value(str(original["metadata"]["name"]))},
    }
    recorded = recorded_input(original)
    if recorded is not None:
        metadata["annotations"] = {ANNOTATION_INPUT: recorded}
    return {"apiVersion": API_VERSION, "kind": SEARCH_KIND, "metadata": metadata, "spec": spec}


def watcher_base_of(watcher: Mapping[str, Any], search_name: str) -> str | None:
    """The web service's base URL a Search's watcher polls (``<base>/api/searches/<id>``)."""
    url = str((((watcher.get("spec") or {}).get("request") or {}).get("url")) or "")
    marker = f"/api/searches/{search_name}"
    head, found, _tail = url.partition(marker)
    if not found or not head.startswith(("http://", "https://")):
        return None
    return head


def watcher_manifest(search: Mapping[str, Any], base_url: str, deadline_margin: int = 60) -> Body:
    """The sample's WatchWorkflow: an HttpTask riding ``<base_url>/api/searches/{id}``'s 202
    long-polling to the end, owned by the Search with ``controller: false`` (deleted with it,
    not counted in its fan-in)."""
    metadata: Metadata = search["metadata"]
    ref = SearchRef(metadata["name"], metadata["namespace"], metadata["uid"])
    deadline_seconds = (search.get("spec") or {}).get("deadlineSeconds", DEFAULT_DEADLINE_SECONDS)
    deadline = int(deadline_seconds) + deadline_margin
    url = (
        f"{base_url.rstrip('/')}/api/searches/{ref.name}?timeoutSeconds={WATCHER_LONG_POLL_SECONDS}"
    )
    return {
        "apiVersion": API_VERSION,
        "kind": HTTPTASK_KIND,
        "metadata": {
            "name": watcher_name(ref.name),
            "labels": {
                LABEL_SEARCH_UID: ref.uid,
                LABEL_SEARCH_NAME: label_value(ref.name),
                LABEL_ROLE: ROLE_WATCHER,
            },
            "ownerReferences": [owner_reference(ref, controller=False)],
        },
        "spec": {
            "request": {
                "method": "GET",
                "url": url,
                "headers": [{"name": "Accept", "value": "application/json"}],
            },
            "deadlineSeconds": deadline,
            "attemptTimeoutSeconds": WATCHER_LONG_POLL_SECONDS + 15,
            # A 503 (past --max-long-polls) or 429 says "still running, come back": the
            # first request is retried on it (Retry-After honoured), and so is every poll
            # (onStatusCodes applies to polls for as long as maxPolls allows).
            "retry": {
                "maxAttempts": 10,
                "initialIntervalSeconds": 1,
                "backoffCoefficient": 2,
                "maxIntervalSeconds": 5,
                "onStatusCodes": [429, 502, 503, 504],
                "onTransportErrors": True,
            },
            "async": {
                "enabled": True,
                "minPollIntervalSeconds": 0,
                "maxPollIntervalSeconds": 5,
                "maxPolls": 10000,
            },
            "response": {"maxBodyBytes": 65536},
        },
    }


# -- terminating ----------------------------------------------------------------------------


def terminate_reason_problem(reason: str) -> str | None:
    """Why ``reason`` cannot be a terminate reason (None: it can)."""
    if len(reason) > MAX_TERMINATE_REASON:
        return f"the reason is longer than {MAX_TERMINATE_REASON} characters"
    if _CONTROL.search(reason):
        return "the reason must not contain control characters"
    return None


def terminate_patch(reason: str | None) -> Body:
    spec: Body = {"terminate": True}
    if reason:
        spec["terminateReason"] = reason
    return {"spec": spec}


# -- purging --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeFilter:
    """Which Searches a purge deletes: every filter given must match, and at least one must be
    given (a purge of everything is a mistake more often than a wish)."""

    statuses: frozenset[SearchPhase] | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None

    @property
    def empty(self) -> bool:
        return self.statuses is None and self.created_from is None and self.created_to is None

    def matches(self, search: Mapping[str, Any]) -> bool:
        """Whether the filter selects ``search`` (a Pending or Running one never)."""
        phase = search_phase(search_status(search))
        if not phase.finished:
            return False
        if self.statuses is not None and phase not in self.statuses:
            return False
        created = parse_time(str(search["metadata"].get("creationTimestamp") or ""))
        if created is None:
            return self.created_from is None and self.created_to is None
        if self.created_from is not None and created < self.created_from:
            return False
        return not (self.created_to is not None and created > self.created_to)


def purge_selection(
    searches: Collection[Mapping[str, Any]], selection: PurgeFilter
) -> list[tuple[str, str]]:
    """``(name, uid)`` of each Search the filter selects, oldest first; each delete carries the
    uid as a precondition, so a Search re-created under the name since is never deleted."""
    chosen = [s for s in searches if selection.matches(s)]
    chosen.sort(key=lambda s: (s["metadata"].get("creationTimestamp") or "", s["metadata"]["name"]))
    return [(str(s["metadata"]["name"]), str(s["metadata"]["uid"])) for s in chosen]
