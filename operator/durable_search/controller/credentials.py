"""Request headers resolved at send time: literal values, Secret values, and bearer tokens.

Secret values and tokens live only in memory for the exchange that uses them. They are marked
``origin_bound``, so the executor sends them to the original request's origin only, and they
never reach status, Events or logs: errors name the Secret, key or token source, never a value.

Token sources (``spec.request.auth``) are the Kubernetes analogue of the sample's managed
identity: a TokenRequest for a ServiceAccount, or an OAuth 2.0 client-credentials grant. Tokens
are cached until shortly before they expire and refreshed on demand; concurrent requests for
the same token share one fetch.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from durable_search.api.models import (
    OAuth2ClientCredentials,
    RequestSpec,
    SecretKeyRef,
    ServiceAccountTokenSource,
)
from durable_search.http.client import HttpClient, OutgoingRequest, TransportError
from durable_search.http.executor import RequestHeader

# Refresh a token when less than this share of its lifetime is left (at most a minute early).
REFRESH_FRACTION = 0.1
MAX_REFRESH_MARGIN_SECONDS = 60.0
_TOKEN_RESPONSE_LIMIT = 64 * 1024


class CredentialError(Exception):
    """A Secret or token the request needs could not be obtained (message has no secret)."""


@dataclass(frozen=True)
class CachedToken:
    value: str
    expires_at: float  # monotonic
    refresh_at: float  # monotonic


def refresh_time(now: float, lifetime: float) -> float:
    """When to fetch a new token for one that lives ``lifetime`` seconds from ``now``."""
    margin = min(lifetime * REFRESH_FRACTION, MAX_REFRESH_MARGIN_SECONDS)
    return now + max(lifetime - margin, 0.0)


class TokenCache:
    """Tokens by source, fetched once per lifetime; one fetch at a time per source."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[Hashable, CachedToken] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def get(self, key: Hashable, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        """The cached token for ``key``, or a new one from ``fetch`` (token, lifetime seconds)."""
        cached = self._tokens.get(key)
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            now = self._clock()
            if cached is not None and now < cached.refresh_at:
                return cached.value
            value, lifetime = await fetch()
            self._tokens[key] = CachedToken(value, now + lifetime, refresh_time(now, lifetime))
            return value

    def __len__(self) -> int:
        return len(self._tokens)


class Credentials:
    def __init__(self, api_client: k8s.ApiClient, http: HttpClient) -> None:
        self._core = k8s.CoreV1Api(api_client)
        self._http = http
        self.tokens = TokenCache()

    async def headers(self, namespace: str, request: RequestSpec) -> list[RequestHeader]:
        headers = []
        for header in request.headers:
            if header.secret is not None:
                value = await self.secret_value(namespace, header.secret)
                headers.append(RequestHeader(header.name, value, origin_bound=True))
            else:
                headers.append(RequestHeader(header.name, header.value or ""))
        auth = request.auth
        if auth is not None:
            if auth.service_account_token is not None:
                token = await self._service_account_token(namespace, auth.service_account_token)
            else:
                assert auth.oauth2_client_credentials is not None
                token = await self._oauth2_token(namespace, auth.oauth2_client_credentials)
            headers.append(RequestHeader("Authorization", f"Bearer {token}", origin_bound=True))
        return headers

    async def secret_value(self, namespace: str, ref: SecretKeyRef) -> str:
        try:
            secret = await self._core.read_namespaced_secret(ref.name, namespace)
        except ApiException as error:
            raise CredentialError(
                f'cannot read Secret "{ref.name}" in {namespace}: {error.status} {error.reason}'
            ) from None
        data = secret.data or {}
        if ref.key not in data:
            raise CredentialError(f'Secret "{ref.name}" has no key "{ref.key}"')
        return base64.b64decode(data[ref.key]).decode()

    async def _service_account_token(
        self, namespace: str, source: ServiceAccountTokenSource
    ) -> str:
        async def fetch() -> tuple[str, float]:
            request = k8s.AuthenticationV1TokenRequest(
                spec=k8s.V1TokenRequestSpec(
                    audiences=[source.audience], expiration_seconds=source.expiration_seconds
                )
            )
            try:
                issued = await self._core.create_namespaced_service_account_token(
                    source.service_account_name, namespace, request
                )
            except ApiException as error:
                raise CredentialError(
                    f'TokenRequest for ServiceAccount "{source.service_account_name}" in '
                    f"{namespace} failed: {error.status} {error.reason}"
                ) from None
            expires = issued.status.expiration_timestamp
            lifetime = expires.timestamp() - time.time() if expires else source.expiration_seconds
            return issued.status.token, max(float(lifetime), 0.0)

        key = ("sa", namespace, source.service_account_name, source.audience)
        return await self.tokens.get(key, fetch)

    async def _oauth2_token(self, namespace: str, source: OAuth2ClientCredentials) -> str:
        async def fetch() -> tuple[str, float]:
            client_id = await self.secret_value(namespace, source.client_id)
            client_secret = await self.secret_value(namespace, source.client_secret)
            # RFC 6749 §2.3.1: the client authenticates with HTTP Basic, form-encoded parts.
            basic = base64.b64encode(
                f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
            ).decode()
            form = {"grant_type": "client_credentials"}
            if source.scopes:
                form["scope"] = " ".join(source.scopes)
            try:
                response = await self._http.send(
                    OutgoingRequest(
                        "POST",
                        source.token_url,
                        [
                            ("Authorization", f"Basic {basic}"),
                            ("Content-Type", "application/x-www-form-urlencoded"),
                            ("Accept", "application/json"),
                        ],
                        urlencode(form).encode(),
                    ),
                    timeout=30,
                    max_body_bytes=_TOKEN_RESPONSE_LIMIT,
                )
            except TransportError as error:
                raise CredentialError(f"token endpoint {source.token_url}: {error}") from None
            if response.status_code != 200:
                raise CredentialError(
                    f"token endpoint {source.token_url} answered {response.status_code}"
                )
            try:
                document = json.loads(response.body)
                token = str(document["access_token"])
                lifetime = float(document.get("expires_in", 3600))
            except (ValueError, KeyError, TypeError):
                raise CredentialError(
                    f"token endpoint {source.token_url} sent no access_token"
                ) from None
            return token, lifetime

        key = (
            "oauth2",
            namespace,
            source.token_url,
            source.client_id,
            source.client_secret,
            source.scopes,
        )
        return await self.tokens.get(key, fetch)
