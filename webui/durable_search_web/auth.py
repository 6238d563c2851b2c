"""Who the API acts as: the web service's own identity, or each caller's.

``serviceaccount`` (the default, like the sample's anonymous functions): every call uses the web
service's credentials in its one namespace. ``client``: every API call needs a bearer token;
writes go to the API server with the caller's token, and reads answered from the shared cache
are first authorized for that caller, as Argo Server does for its users. The check is a
SelfSubjectAccessReview sent with the caller's token: the API server authenticates the token and
authorizes the verb in one call, and the web service needs no cluster-scoped RBAC to ask.
Answers are cached briefly per (token, verb, resource).
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum

from aiohttp import web
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from durable_search.api.constants import GROUP
from durable_search_web.problems import ProblemError

DECISION_TTL_SECONDS = 10.0


class AuthMode(StrEnum):
    SERVICE_ACCOUNT = "serviceaccount"
    CLIENT = "client"


class Authorizer:
    def __init__(
        self, mode: AuthMode, configuration: k8s.Configuration, own: k8s.ApiClient, namespace: str
    ) -> None:
        self.mode = mode
        self._configuration = configuration
        self._own = own
        self._namespace = namespace
        self._decisions: dict[tuple[str, str, str], tuple[bool, float]] = {}

    @asynccontextmanager
    async def client_for(self, request: web.Request) -> AsyncIterator[k8s.ApiClient]:
        """The API client to act with for this request (the caller's own in ``client`` mode)."""
        if self.mode is AuthMode.SERVICE_ACCOUNT:
            yield self._own
            return
        caller = k8s.ApiClient(self._caller_configuration(bearer_token(request)))
        try:
            yield caller
        finally:
            await caller.close()

    async def authorize(self, request: web.Request, verb: str, resource: str = "searches") -> None:
        """Raise 401/403 unless the caller may ``verb`` ``resource`` in the namespace."""
        if self.mode is AuthMode.SERVICE_ACCOUNT:
            return
        token = bearer_token(request)
        key = (hashlib.sha256(token.encode()).hexdigest(), verb, resource)
        cached = self._decisions.get(key)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            allowed = cached[0]
        else:
            allowed = await self._review(token, verb, resource)
            self._decisions[key] = (allowed, now + DECISION_TTL_SECONDS)
            if len(self._decisions) > 10000:
                self._decisions = {k: v for k, v in self._decisions.items() if v[1] > now}
        if not allowed:
            raise ProblemError(
                403, f"not allowed to {verb} {resource}.{GROUP} in namespace {self._namespace}"
            )

    async def _review(self, token: str, verb: str, resource: str) -> bool:
        review = k8s.V1SelfSubjectAccessReview(
            spec=k8s.V1SelfSubjectAccessReviewSpec(
                resource_attributes=k8s.V1ResourceAttributes(
                    group=GROUP, resource=resource, verb=verb, namespace=self._namespace
                )
            )
        )
        caller = k8s.ApiClient(self._caller_configuration(token))
        try:
            answer = await k8s.AuthorizationV1Api(caller).create_self_subject_access_review(review)
        except ApiException as error:
            if error.status == 401:
                raise ProblemError(
                    401,
                    "the bearer token was not accepted by the API server",
                    {"WWW-Authenticate": "Bearer"},
                ) from None
            raise ProblemError(
                502, f"access review failed: {error.status} {error.reason}"
            ) from None
        finally:
            await caller.close()
        return bool(answer.status and answer.status.allowed)

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
    if scheme.lower() != "bearer" or not token.strip():
        raise ProblemError(
            401, "a bearer token is required (--auth client)", {"WWW-Authenticate": "Bearer"}
        )
    return token.strip()
