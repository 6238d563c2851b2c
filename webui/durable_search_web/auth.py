"""Who the API acts as: the web service's own identity, or each caller's.

``serviceaccount`` (the default, like the sample's anonymous functions): every call uses the web
service's credentials in its one namespace. ``client``: every API route needs a bearer token;
writes go to the API server with the caller's token, and every route's declared permissions
(see ``access.py``) are first checked for that caller, as Argo Server does for its users. The
check is a SelfSubjectAccessReview sent with the caller's token: the API server authenticates
the token and authorizes the verb in one call, and the web service needs no cluster-scoped RBAC
to ask. Answers are cached briefly (bounded, keyed by a hash of the token): allowed and denied
per (token, permission), and a token the API server did not accept at all, so a flood of one
junk token costs one review, not one per request.

The operator's watcher polls ``GET /api/searches/{id}`` with a token for its own ServiceAccount
and audience ``durable-search-web``; that token is no good at the API server (wrong audience),
so it is checked with a TokenReview for that audience, and accepted only for the users named by
``--watcher-user`` (anyone able to mint a token for *some* ServiceAccount could mint one with
this audience) and only on routes that declare ``watcher=True``: the status read.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from enum import StrEnum
from typing import Any

from aiohttp import web

from durable_search.api.constants import GROUP
from durable_search.api.status import Body
from durable_search.errors import KubeApiError
from durable_search.kube.api import KubeApi
from durable_search.kube.client import answered_status
from durable_search_web.access import (
    ANONYMOUS,
    SERVICE,
    Access,
    Caller,
    CallerKind,
    Permission,
)
from durable_search_web.bounded import BoundedTtlMap, token_key
from durable_search_web.clock import SYSTEM_CLOCK, Clock
from durable_search_web.problems import ProblemError, status_phrase

logger = logging.getLogger("durable_search_web.auth")

WATCHER_AUDIENCE = "durable-search-web"
DECISION_TTL_SECONDS = 10.0
UNAUTHENTICATED_TTL_SECONDS = 10.0
WATCHER_REVIEW_TTL_SECONDS = 10.0
CACHE_CAPACITY = 10_000
# RFC 6750's b64token: anything else is not a bearer token, and costs no review.
_B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_UNAUTHENTICATED_HEADERS = {"WWW-Authenticate": "Bearer"}


class AuthMode(StrEnum):
    SERVICE_ACCOUNT = "serviceaccount"
    CLIENT = "client"


def unauthenticated(detail: str) -> ProblemError:
    return ProblemError(401, detail, _UNAUTHENTICATED_HEADERS)


class Authorizer:
    def __init__(
        self,
        mode: AuthMode,
        own: KubeApi,
        namespace: str,
        watcher_users: frozenset[str] = frozenset(),
        clock: Clock = SYSTEM_CLOCK,
        capacity: int = CACHE_CAPACITY,
    ) -> None:
        self.mode = mode
        self.watcher_users = watcher_users
        self._own = own
        self._namespace = namespace
        self._clock = clock
        self._decisions: BoundedTtlMap[tuple[str, Permission], bool] = BoundedTtlMap(capacity)
        self._unauthenticated: BoundedTtlMap[str, bool] = BoundedTtlMap(capacity)
        self._watchers: BoundedTtlMap[str, str] = BoundedTtlMap(capacity)  # "" = not one

    # -- the one check before every handler --------------------------------------------------

    async def authorize(self, request: web.Request, access: Access) -> Caller:
        """The caller of ``request``, once allowed what ``access`` declares (else 401/403)."""
        if self.mode is AuthMode.SERVICE_ACCOUNT:
            return SERVICE
        if access.public:
            return ANONYMOUS
        token = bearer_token(request)
        if (
            access.watcher
            and self.watcher_users
            and WATCHER_AUDIENCE in unverified_audiences(token)
        ):
            user = await self._watcher_user(token)
            if user:
                return Caller(CallerKind.WATCHER, user=user)
            # Not a watcher after all: it may still be a token for the API server too.
        caller = Caller(CallerKind.CLIENT, token=token)
        for permission in access.permissions:
            await self.require(caller, permission)
        return caller

    async def require(self, caller: Caller, permission: Permission) -> None:
        """Raise 401/403 unless ``caller`` may do ``permission`` (beyond the route's own)."""
        if caller.kind is CallerKind.SERVICE:
            return
        if caller.kind is not CallerKind.CLIENT or caller.token is None:
            raise ProblemError(403, f"not allowed to {permission.describe(self._namespace, GROUP)}")
        key = token_key(caller.token)
        now = self._clock.monotonic()
        if self._unauthenticated.get(key, now):
            raise unauthenticated("the bearer token was not accepted by the API server")
        allowed = self._decisions.get((key, permission), now)
        if allowed is None:
            allowed = await self._review(caller.token, key, permission)
            self._decisions.put(
                (key, permission), allowed, self._clock.monotonic() + DECISION_TTL_SECONDS
            )
        if not allowed:
            raise ProblemError(403, f"not allowed to {permission.describe(self._namespace, GROUP)}")

    # -- acting for the caller ---------------------------------------------------------------

    def api_for(self, caller: Caller) -> KubeApi:
        """The API to act with for ``caller``: the caller's own token in client mode (on the
        token-only connections of ``KubeClient.as_token``, never the service's certificate)."""
        if caller.acts_as_service:
            return self._own
        if caller.token is None:
            raise unauthenticated("a bearer token is required (--auth client)")
        return self._own.as_token(caller.token)

    # -- reviews -----------------------------------------------------------------------------

    async def _review(self, token: str, key: str, permission: Permission) -> bool:
        try:
            return await self._own.as_token(token).access_review(self._attributes(permission))
        except KubeApiError as error:
            if answered_status(error) == 401:
                self._unauthenticated.put(
                    key, True, self._clock.monotonic() + UNAUTHENTICATED_TTL_SECONDS
                )
                raise unauthenticated(
                    "the bearer token was not accepted by the API server"
                ) from None
            raise ProblemError(502, f"access review failed: {status_phrase(error)}") from None

    def _attributes(self, permission: Permission) -> Body:
        """The SelfSubjectAccessReview spec that asks for ``permission``."""
        if permission.path is not None:
            return {"nonResourceAttributes": {"path": permission.path, "verb": permission.verb}}
        return {
            "resourceAttributes": {
                "group": GROUP,
                "resource": permission.resource,
                "verb": permission.verb,
                "namespace": self._namespace,
            }
        }

    async def _watcher_user(self, token: str) -> str:
        """The ``--watcher-user`` this token authenticates for our audience, or ""."""
        key = token_key(token)
        cached = self._watchers.get(key, self._clock.monotonic())
        if cached is not None:
            return cached
        try:
            status = await self._own.review_token(token, [WATCHER_AUDIENCE])
        except KubeApiError as error:
            # Not cached, and not a 401 (the watcher would stop): the watcher retries a 502.
            logger.warning(
                "TokenReview failed (%s): the web service needs `create tokenreviews` "
                "(cluster-scoped) in --auth client mode",
                status_phrase(error),
            )
            raise ProblemError(502, f"token review failed: {status_phrase(error)}") from None
        user = self._reviewed_watcher(status)
        ttl = WATCHER_REVIEW_TTL_SECONDS
        expires_in = unverified_expiry(token) - self._clock.now().timestamp()
        if user and expires_in < ttl:
            ttl = max(expires_in, 0.0)  # never trust a token past its own expiry
        self._watchers.put(key, user, self._clock.monotonic() + ttl)
        return user

    def _reviewed_watcher(self, status: Body) -> str:
        """The reviewed user if the TokenReview authenticated a ``--watcher-user`` for our
        audience, else ""."""
        username = (status.get("user") or {}).get("username")
        if (
            status.get("authenticated")
            and WATCHER_AUDIENCE in (status.get("audiences") or ())
            and username in self.watcher_users
        ):
            return str(username)
        return ""


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthenticated("a bearer token is required (--auth client)")
    if not _B64TOKEN.fullmatch(token):
        raise unauthenticated("the bearer token was not accepted by the API server")
    return token


def unverified_claims(token: str) -> dict[str, Any]:
    """A JWT's claims, NOT verified: only to choose which review to ask for, never to trust."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, binascii.Error, RecursionError):
        return {}
    return claims if isinstance(claims, dict) else {}


def unverified_audiences(token: str) -> frozenset[str]:
    audiences = unverified_claims(token).get("aud")
    if isinstance(audiences, str):
        return frozenset({audiences})
    if isinstance(audiences, list):
        return frozenset(a for a in audiences if isinstance(a, str))
    return frozenset()


def unverified_expiry(token: str) -> float:
    """The token's ``exp`` (wall-clock seconds), or +inf when it has none."""
    expiry = unverified_claims(token).get("exp")
    if isinstance(expiry, bool) or not isinstance(expiry, int | float):
        return float("inf")
    try:
        return float(expiry)
    except OverflowError:
        return float("inf")
