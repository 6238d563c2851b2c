"""What a request needs resolved at send time: headers (literal values, Secret values, bearer
tokens), its body (literal, base64, or ``bodyFrom`` a Secret or ConfigMap key) and its TLS
material (a CA bundle from a ConfigMap, a client certificate from a kubernetes.io/tls Secret).

Secret values and tokens live only in memory for the exchange that uses them. They are marked
``secret``, so the executor sends them to the original request's origin only and redacts them
from whatever the site answers, and they never reach status, Events or logs: errors name the
Secret, key or token source, never a value.

The operator reads Secrets and ConfigMaps and mints tokens with its own rights, so it does so
only while the admission policies that check the author's rights are installed
(``controller.admission``), never for an API-server audience, and a plain-http token endpoint
only where the allow-list opens it.

Token sources (``spec.request.auth``) are the Kubernetes analogue of the sample's managed
identity: a TokenRequest for a ServiceAccount, or an OAuth 2.0 client-credentials grant. Tokens
are cached (a bounded cache; lifetimes clamped) until shortly before they expire; concurrent
requests for the same token share one fetch.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from durable_search.api import timestamps
from durable_search.api.models import (
    ConfigMapKeyRef,
    OAuth2ClientCredentials,
    RequestSpec,
    SecretKeyRef,
    ServiceAccountTokenSource,
    TlsSpec,
)
from durable_search.api.timestamps import parse_time
from durable_search.controller.admission import AdmissionGuard
from durable_search.errors import (
    BlockedError,
    ExchangeError,
    InvalidRequestError,
    KubeApiError,
    TransportError,
)
from durable_search.http.client import ClientSettings, HttpClient, OutgoingRequest
from durable_search.http.executor import RequestHeader
from durable_search.http.tls import TlsMaterial
from durable_search.kube.api import KubeApi
from durable_search.kube.client import ApiError, answered_status

# Refresh a token when less than this share of its lifetime is left (at most a minute early).
REFRESH_FRACTION = 0.1
MAX_REFRESH_MARGIN_SECONDS = 60.0
# Whatever a token endpoint claims, a token is cached at most this long.
MAX_TOKEN_LIFETIME_SECONDS = 3600.0
DEFAULT_TOKEN_LIFETIME_SECONDS = 300.0
MAX_CACHED_TOKENS = 1024
_TOKEN_RESPONSE_LIMIT = 64 * 1024
# What an HTTP header value may hold (RFC 9110 §5.5, visible ASCII and tab: httpx sends ASCII).
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
TLS_SECRET_TYPE = "kubernetes.io/tls"


@dataclass(frozen=True)
class CachedToken:
    value: str
    expires_at: float  # monotonic
    refresh_at: float  # monotonic


def refresh_time(now: float, lifetime: float) -> float:
    """When to fetch a new token for one that lives ``lifetime`` seconds from ``now``."""
    margin = min(lifetime * REFRESH_FRACTION, MAX_REFRESH_MARGIN_SECONDS)
    return now + max(lifetime - margin, 0.0)


def clamp_lifetime(seconds: float) -> float:
    """A lifetime we are willing to cache: finite, at least 0, at most an hour."""
    if not math.isfinite(seconds):
        return MAX_TOKEN_LIFETIME_SECONDS if seconds > 0 else 0.0
    return min(max(seconds, 0.0), MAX_TOKEN_LIFETIME_SECONDS)


class TokenCache:
    """Tokens by source, fetched once per lifetime; one fetch at a time per source.

    Bounded: the least recently used source is forgotten past ``max_entries`` (sources are
    chosen by users, audiences included).
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_entries: int = MAX_CACHED_TOKENS
    ) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._tokens: OrderedDict[Hashable, CachedToken] = OrderedDict()
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def get(self, key: Hashable, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        """The cached token for ``key``, or a new one from ``fetch`` (token, lifetime seconds)."""
        cached = self._fresh(key)
        if cached is not None:
            return cached
        self._forget_idle_locks()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._fresh(key)
            if cached is not None:
                return cached
            value, lifetime = await fetch()
            now = self._clock()
            lifetime = clamp_lifetime(lifetime)
            self._tokens[key] = CachedToken(value, now + lifetime, refresh_time(now, lifetime))
            self._tokens.move_to_end(key)
            while len(self._tokens) > self._max_entries:
                self._tokens.popitem(last=False)
            return value

    def _forget_idle_locks(self) -> None:
        # One lock per source ever asked for would grow without bound (failed fetches too).
        if len(self._locks) > 2 * self._max_entries:
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}

    def _fresh(self, key: Hashable) -> str | None:
        cached = self._tokens.get(key)
        if cached is None or self._clock() >= cached.refresh_at:
            return None
        self._tokens.move_to_end(key)
        return cached.value

    def __len__(self) -> int:
        return len(self._tokens)


class Credentials:
    def __init__(
        self,
        api: KubeApi,
        http: HttpClient,
        settings: ClientSettings,
        guard: AdmissionGuard,
        clock: Callable[[], dt.datetime] = timestamps.now,
    ) -> None:
        self._api = api
        self._http = http
        self._settings = settings
        self._guard = guard
        self._clock = clock  # wall-clock: a minted token's expiry is a timestamp
        self.tokens = TokenCache()
        # (namespace, name) of the operator's own ServiceAccount, when it runs as one.
        self.identity: tuple[str, str] | None = None

    async def headers(self, namespace: str, request: RequestSpec) -> list[RequestHeader]:
        """Every header of ``request``, values resolved; raises an :class:`ExchangeError`."""
        headers = []
        for header in request.headers:
            if header.secret is not None:
                value = await self.secret_value(namespace, header.secret)
                value = _header_value(value, header.secret)
                headers.append(RequestHeader(header.name, value, secret=True))
            else:
                value = header.value or ""
                if not _HEADER_VALUE.fullmatch(value):
                    raise InvalidRequestError(
                        f"header {header.name}: only visible ASCII characters and tabs can be sent"
                    )
                headers.append(RequestHeader(header.name, value))
        auth = request.auth
        if auth is not None:
            if auth.service_account_token is not None:
                token = await self._service_account_token(namespace, auth.service_account_token)
            else:
                assert auth.oauth2_client_credentials is not None
                token = await self._oauth2_token(namespace, auth.oauth2_client_credentials)
            headers.append(RequestHeader("Authorization", f"Bearer {token}", secret=True))
        return headers

    async def secret_value(self, namespace: str, ref: SecretKeyRef) -> str:
        try:
            return (await self.secret_bytes(namespace, ref)).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequestError(
                f'Secret "{ref.name}" key "{ref.key}" is not UTF-8 text'
            ) from None

    async def secret_bytes(self, namespace: str, ref: SecretKeyRef) -> bytes:
        data = (await self._secret(namespace, ref.name)).get("data") or {}
        if ref.key not in data:
            raise InvalidRequestError(f'Secret "{ref.name}" has no key "{ref.key}"')
        return _decoded(data[ref.key], f'Secret "{ref.name}" key "{ref.key}"')

    async def _secret(self, namespace: str, name: str) -> Mapping[str, Any]:
        self._guard.require()
        try:
            return await self._api.read_secret(namespace, name)
        except KubeApiError as error:
            raise _api_error(f'cannot read Secret "{name}" in {namespace}', error) from None

    async def config_map_bytes(self, namespace: str, ref: ConfigMapKeyRef) -> bytes:
        """A ConfigMap key's value: ``data`` as UTF-8, or ``binaryData`` as stored.

        Read only while the admission policies are installed: they check that the author may
        get the ConfigMap (the operator reads it with its own rights).
        """
        self._guard.require()
        try:
            config_map = await self._api.read_config_map(namespace, ref.name)
        except KubeApiError as error:
            raise _api_error(f'cannot read ConfigMap "{ref.name}" in {namespace}', error) from None
        where = f'ConfigMap "{ref.name}" key "{ref.key}"'
        text = (config_map.get("data") or {}).get(ref.key)
        if text is not None:
            return str(text).encode("utf-8")
        binary = (config_map.get("binaryData") or {}).get(ref.key)
        if binary is not None:
            return _decoded(binary, where)
        raise InvalidRequestError(f'ConfigMap "{ref.name}" has no key "{ref.key}"')

    async def body(self, namespace: str, request: RequestSpec) -> tuple[bytes | None, bool]:
        """The body to send, and whether it came from ``bodyFrom`` (then it is redacted)."""
        source = request.body_from
        if source is None:
            try:
                return request.literal_body(), False
            except ValueError as error:
                raise InvalidRequestError(str(error)) from None
        if source.secret is not None:
            return await self.secret_bytes(namespace, source.secret), True
        assert source.config_map is not None
        return await self.config_map_bytes(namespace, source.config_map), True

    async def tls(self, namespace: str, spec: TlsSpec) -> TlsMaterial:
        """The PEM material ``spec`` names, read now (checked by ``http.tls.build_context``)."""
        ca_pem = ca_source = None
        if spec.ca_bundle is not None:
            ref = spec.ca_bundle
            ca_source = f'caBundleFrom ConfigMap "{ref.name}" key "{ref.key}"'
            raw = await self.config_map_bytes(namespace, ref)
            try:
                ca_pem = raw.decode("ascii")
            except UnicodeDecodeError:
                raise InvalidRequestError(f"{ca_source} is not PEM text") from None
        cert_pem = key_pem = None
        cert_source = "the client certificate"
        if spec.client_certificate_secret is not None:
            name = spec.client_certificate_secret
            cert_source = f'clientCertificateFrom Secret "{name}"'
            secret = await self._secret(namespace, name)
            if secret.get("type") != TLS_SECRET_TYPE:
                raise InvalidRequestError(
                    f"{cert_source} is of type {secret.get('type') or 'Opaque'!r}, "
                    f"not {TLS_SECRET_TYPE}"
                )
            data = secret.get("data") or {}
            if "tls.crt" not in data or "tls.key" not in data:
                raise InvalidRequestError(f"{cert_source} lacks tls.crt or tls.key")
            cert_pem = _decoded(data["tls.crt"], f"{cert_source} tls.crt")
            key_pem = _decoded(data["tls.key"], f"{cert_source} tls.key")
        return TlsMaterial(
            ca_pem=ca_pem,
            cert_pem=cert_pem,
            key_pem=key_pem,
            server_name=spec.server_name,
            ca_source=ca_source or "the CA bundle",
            cert_source=cert_source,
        )

    async def _service_account_token(
        self, namespace: str, source: ServiceAccountTokenSource
    ) -> str:
        self._guard.require()
        self._guard.refuse_api_audience(source.audience)
        key = ("sa", namespace, source.service_account_name, source.audience)
        return await self.tokens.get(
            key,
            lambda: self._mint(
                namespace, source.service_account_name, source.audience, source.expiration_seconds
            ),
        )

    async def operator_token(self, audience: str) -> str | None:
        """A token for the operator's own ServiceAccount (None when it runs as something else)."""
        if self.identity is None:
            return None
        namespace, name = self.identity
        return await self.tokens.get(
            ("operator", audience), lambda: self._mint(namespace, name, audience, 3600)
        )

    async def _mint(
        self, namespace: str, account: str, audience: str, seconds: int
    ) -> tuple[str, float]:
        try:
            issued = await self._api.request_token(namespace, account, [audience], seconds)
        except KubeApiError as error:
            raise _api_error(
                f'TokenRequest for ServiceAccount "{account}" in {namespace} failed', error
            ) from None
        status = issued.get("status") or {}
        expires = parse_time(status.get("expirationTimestamp"))
        lifetime = (expires - self._clock()).total_seconds() if expires else seconds
        return str(status.get("token") or ""), float(lifetime)

    async def _oauth2_token(self, namespace: str, source: OAuth2ClientCredentials) -> str:
        self._guard.require()
        if urlsplit(source.token_url).scheme.lower() != "https" and not self._settings.opens(
            source.token_url
        ):
            raise BlockedError(
                f"token endpoint {source.token_url}: client secrets are only sent over https "
                "(or to a host the operator's allow-list opens)"
            )

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
            except ExchangeError as error:
                raise type(error)(f"token endpoint {source.token_url}: {error.message}") from None
            if response.status_code != 200:
                message = f"token endpoint {source.token_url} answered {response.status_code}"
                if response.status_code in (429,) or response.status_code >= 500:
                    raise TransportError(message)
                raise InvalidRequestError(message)
            try:
                document = json.loads(response.body)
                token = str(document["access_token"])
                lifetime = float(document.get("expires_in", DEFAULT_TOKEN_LIFETIME_SECONDS))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise TransportError(
                    f"token endpoint {source.token_url} sent no access_token"
                ) from None
            return _header_value(token, None), lifetime

        key = (
            "oauth2",
            namespace,
            source.token_url,
            source.client_id,
            source.client_secret,
            source.scopes,
        )
        return await self.tokens.get(key, fetch)


def _decoded(value: object, where: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{where} is not valid base64 in the API's answer") from None


def _header_value(value: str, ref: SecretKeyRef | None) -> str:
    """``value`` if it can be sent in a header; an :class:`InvalidRequestError` otherwise."""
    if _HEADER_VALUE.fullmatch(value):
        return value
    where = f'Secret "{ref.name}" key "{ref.key}"' if ref else "the token endpoint's token"
    raise InvalidRequestError(
        f"{where} cannot be sent in a header (only visible ASCII characters and tabs)"
    )


def _api_error(what: str, error: KubeApiError) -> ExchangeError:
    """A failed API call as an outcome: a server-side hiccup is retried, the rest is not."""
    status = answered_status(error)
    message = f"{what}: {status} {error.message}"
    if isinstance(error, ApiError) and (status == 429 or status >= 500):
        return TransportError(message)
    return InvalidRequestError(message)
