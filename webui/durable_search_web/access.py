"""What each route needs before its handler runs: one declaration per route, checked in one place.

Every route is registered with an :class:`Access`: the permissions it needs (Kubernetes verbs on
our resources in the namespace, or a non-resource URL like ``/metrics``), whether the
operator's watcher token is accepted on it, and whether it counts as a start. The middleware in
``app.py`` checks the declaration *before* the handler runs, so no handler can look anything up
(and answer 404, 409 or 410) for a caller who may not ask; a route registered without a
declaration answers 500 instead of running unchecked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web

from durable_search.api.constants import HTTPTASK_PLURAL, PROVIDER_PLURAL, SEARCH_PLURAL

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Permission:
    """A SubjectAccessReview's question: ``verb`` on a ``resource`` of ours, or on a ``path``."""

    verb: str
    resource: str | None = None  # a durablesearch.dev resource
    path: str | None = None  # a non-resource URL

    def describe(self, namespace: str, group: str) -> str:
        if self.path is not None:
            return f"{self.verb} {self.path}"
        return f"{self.verb} {self.resource}.{group} in namespace {namespace}"


GET_SEARCHES = Permission("get", SEARCH_PLURAL)
LIST_SEARCHES = Permission("list", SEARCH_PLURAL)
CREATE_SEARCHES = Permission("create", SEARCH_PLURAL)
PATCH_SEARCHES = Permission("patch", SEARCH_PLURAL)
DELETE_SEARCHES = Permission("delete", SEARCH_PLURAL)
GET_HTTPTASKS = Permission("get", HTTPTASK_PLURAL)
CREATE_HTTPTASKS = Permission("create", HTTPTASK_PLURAL)
LIST_PROVIDERS = Permission("list", PROVIDER_PLURAL)
GET_METRICS = Permission("get", path="/metrics")


@dataclass(frozen=True)
class Access:
    permissions: tuple[Permission, ...] = ()  # empty: anyone (the page, probes, the reference)
    watcher: bool = False  # the operator's watcher token is accepted too (reads only)
    start: bool = False  # counted against the caller's start rate

    @property
    def public(self) -> bool:
        return not self.permissions


PUBLIC = Access()


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    access: Access
    name: str  # the OpenAPI operationId


class CallerKind(StrEnum):
    SERVICE = "service"  # --auth serviceaccount: the web service's own identity
    ANONYMOUS = "anonymous"  # --auth client, on a public route
    CLIENT = "client"  # --auth client: a bearer token the API server accepted
    WATCHER = "watcher"  # the operator's watcher token (TokenReview, --watcher-user)


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    token: str | None = None  # CLIENT only: API calls carry it
    user: str | None = None  # WATCHER: the reviewed user name

    @property
    def acts_as_service(self) -> bool:
        """Whether API calls for this caller use the web service's own credentials.

        The watcher is only ever let through on a read of one Search's status, which the web
        service answers with its own identity (the watcher's token is not for the API server).
        """
        return self.kind in (CallerKind.SERVICE, CallerKind.WATCHER)


SERVICE = Caller(CallerKind.SERVICE)
ANONYMOUS = Caller(CallerKind.ANONYMOUS)
