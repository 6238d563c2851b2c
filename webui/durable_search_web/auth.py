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
import copy
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from durable_search.api.constants import GROUP
from durable_search_web.access import (
    ANONYMOUS,
    SERVICE,
    Access,
    Caller,
    CallerKind,
    Permission,
)
from durable_search_web.bounded import BoundedTtlMap, token_key
from durable_search_web.problems import ProblemError

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
        configuration: k8s.Configuration,
        own: k8s.ApiClient,
        namespace: str,
        watcher_users: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
        capacity: int = CACHE_CAPACITY,
    ) -> None:
        self.mode = mode
        self.watcher_users = watcher_users
        self._configuration = configuration
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
        now = self._clock()
        if self._unauthenticated.get(key, now):
            raise unauthenticated("the bearer token was not accepted by the API server")
        allowed = self._decisions.get((key, permission), now)
        if allowed is None:
            allowed = await self._review(caller.token, key, permission)
            self._decisions.put((key, permission), allowed, self._clock() + DECISION_TTL_SECONDS)
        if not allowed:
            raise ProblemError(403, f"not allowed to {permission.describe(self._namespace, GROUP)}")

    # -- acting for the caller ---------------------------------------------------------------

    @asynccontextmanager
    async def client_for(self, caller: Caller) -> AsyncIterator[k8s.ApiClient]:
        """The API client to act with for ``caller`` (the caller's own token in client mode)."""
        if caller.acts_as_service:
            yield self._own
            return
        if caller.token is None:
            raise unauthenticated("a bearer token is required (--auth client)")
        api = k8s.ApiClient(self._caller_configuration(caller.token))
        try:
            yield api
        finally:
            await api.close()

    # -- reviews -----------------------------------------------------------------------------

    async def _review(self, token: str, key: str, permission: Permission) -> bool:
        if permission.path is not None:
            spec = k8s.V1SelfSubjectAccessReviewSpec(
                non_resource_attributes=k8s.V1NonResourceAttributes(
                    path=permission.path, verb=permission.verb
                )
            )
        else:
            spec = k8s.V1SelfSubjectAccessReviewSpec(
                resource_attributes=k8s.V1ResourceAttributes(
                    group=GROUP,
                    resource=permission.resource,
                    verb=permission.verb,
                    namespace=self._namespace,
                )
            )
        caller = k8s.ApiClient(self._caller_configuration(token))
        try:
            answer = await k8s.AuthorizationV1Api(caller).create_self_subject_access_review(
                k8s.V1SelfSubjectAccessReview(spec=spec)
            )
        except ApiException as error:
            if error.status == 401:
                self._unauthenticated.put(key, True, self._clock() + UNAUTHENTICATED_TTL_SECONDS)
                raise unauthenticated(
                    "the bearer token was not accepted by the API server"
                ) from None
            raise ProblemError(
                502, f"access review failed: {error.status} {error.reason}"
            ) from None
        finally:
            await caller.close()
        return bool(answer.status and answer.status.allowed)

    async def _watcher_user(self, token: str) -> str:
        """The ``--watcher-user`` this token authenticates for our audience, or ""."""
        key = token_key(token)
        cached = self._watchers.get(key, self._clock())
        if cached is not None:
            return cached
        review = k8s.V1TokenReview(
            spec=k8s.V1TokenReviewSpec(token=token, audiences=[WATCHER_AUDIENCE])
        )
        try:
            answer = await k8s.AuthenticationV1Api(self._own).create_token_review(review)
        except ApiException as error:
            # Not cached, and not a 401 (the watcher would stop): the watcher retries a 502.
            logger.warning(
                "TokenReview failed (%s %s): the web service needs `create tokenreviews` "
                "(cluster-scoped) in --auth client mode",
                error.status,
                error.reason,
            )
            raise ProblemError(502, f"token review failed: {error.status} {error.reason}") from None
        status = answer.status
        user = ""
        if (
            status is not None
            and status.authenticated
            and WATCHER_AUDIENCE in (status.audiences or ())
            and status.user is not None
            and status.user.username in self.watcher_users
        ):
            user = str(status.user.username)
        ttl = WATCHER_REVIEW_TTL_SECONDS
        expires_in = unverified_expiry(token) - time.time()
        if user and expires_in < ttl:
            ttl = max(expires_in, 0.0)  # never trust a token past its own expiry
        self._watchers.put(key, user, self._clock() + ttl)
        return user

    def _caller_configuration(self, token: str) -> k8s.Configuration:
        configuration = copy.copy(self._configuration)
        configuration.api_key = {"BearerToken": f"Bearer {token}"}
        configuration.api_key_prefix = {}
        configuration.refresh_api_key_hook = None  # never refresh into the service's own token
        configuration.cert_file = None
        configuration.key_file = None
        configuration.username = None
        configuration.password = None
        return configuration


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
