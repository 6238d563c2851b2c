"""Typed, immutable views of the specs users write.

The API server has already validated and defaulted what arrives here (see ``api.schema``); these
parsers still apply the same defaults so that an object written before a default changed, or a
unit test's hand-made dict, reads the same way. The defaults live here once and the CRD schema
generator reads them from these classes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Json = Mapping[str, Any]

RETRYABLE_STATUS_CODES = (429, 500, 502, 503, 504)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# The sample's rule, as CEL: what successCondition means when it is not given.
DEFAULT_SUCCESS_CONDITION = "response.statusCode == 200"
MAX_OUTPUTS = 16


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_interval_seconds: float = 1.0
    backoff_coefficient: float = 2.0
    max_interval_seconds: float = 30.0
    on_status_codes: tuple[int, ...] = RETRYABLE_STATUS_CODES
    on_transport_errors: bool = True

    @classmethod
    def parse(cls, raw: Json | None) -> RetryPolicy:
        raw = raw or {}
        default = cls()
        return cls(
            max_attempts=int(raw.get("maxAttempts", default.max_attempts)),
            initial_interval_seconds=float(
                raw.get("initialIntervalSeconds", default.initial_interval_seconds)
            ),
            backoff_coefficient=float(raw.get("backoffCoefficient", default.backoff_coefficient)),
            max_interval_seconds=float(raw.get("maxIntervalSeconds", default.max_interval_seconds)),
            on_status_codes=tuple(
                int(c) for c in raw.get("onStatusCodes", default.on_status_codes)
            ),
            on_transport_errors=bool(raw.get("onTransportErrors", default.on_transport_errors)),
        )


@dataclass(frozen=True)
class AsyncPolicy:
    """Durable's 202 pattern: follow ``Location`` until a non-202 answer.

    ``location_headers`` name the status URL (the first present wins); ``complete_when`` (CEL)
    false on a 2xx answer means the operation is still running: polled like a 202.
    """

    enabled: bool = True
    min_poll_interval_seconds: float = 1.0
    max_poll_interval_seconds: float = 60.0
    max_polls: int = 100
    location_headers: tuple[str, ...] = ("location",)
    complete_when: str | None = None

    @classmethod
    def parse(cls, raw: Json | None) -> AsyncPolicy:
        raw = raw or {}
        default = cls()
        return cls(
            enabled=bool(raw.get("enabled", default.enabled)),
            min_poll_interval_seconds=float(
                raw.get("minPollIntervalSeconds", default.min_poll_interval_seconds)
            ),
            max_poll_interval_seconds=float(
                raw.get("maxPollIntervalSeconds", default.max_poll_interval_seconds)
            ),
            max_polls=int(raw.get("maxPolls", default.max_polls)),
            location_headers=tuple(
                str(h).lower() for h in raw.get("locationHeaders", default.location_headers)
            ),
            complete_when=_optional_text(raw.get("completeWhen")),
        )


@dataclass(frozen=True)
class ResponsePolicy:
    max_body_bytes: int = 262144
    keep_headers: tuple[str, ...] = ("content-type", "location", "retry-after", "etag")

    @classmethod
    def parse(cls, raw: Json | None) -> ResponsePolicy:
        raw = raw or {}
        default = cls()
        return cls(
            max_body_bytes=int(raw.get("maxBodyBytes", default.max_body_bytes)),
            keep_headers=tuple(h.lower() for h in raw.get("keepHeaders", default.keep_headers)),
        )


@dataclass(frozen=True)
class Output:
    """A named CEL expression over the final answer, recorded in ``status.outputs``."""

    name: str
    expression: str

    @classmethod
    def parse_all(cls, raw: Any) -> tuple[Output, ...]:
        return tuple(cls(str(o["name"]), str(o["expression"])) for o in raw or ())

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "expression": self.expression}


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str

    @classmethod
    def parse(cls, raw: Json) -> SecretKeyRef:
        return cls(name=str(raw["name"]), key=str(raw["key"]))


@dataclass(frozen=True)
class ConfigMapKeyRef:
    name: str
    key: str

    @classmethod
    def parse(cls, raw: Json) -> ConfigMapKeyRef:
        return cls(name=str(raw["name"]), key=str(raw["key"]))


BODY_ENCODINGS = ("text", "base64")


@dataclass(frozen=True)
class BodySource:
    """``request.bodyFrom``: the body read from a Secret or a ConfigMap key at send time."""

    secret: SecretKeyRef | None = None
    config_map: ConfigMapKeyRef | None = None

    @classmethod
    def parse(cls, raw: Json | None) -> BodySource | None:
        if not raw:
            return None
        secret, config_map = raw.get("secretKeyRef"), raw.get("configMapKeyRef")
        return cls(
            secret=SecretKeyRef.parse(secret) if secret else None,
            config_map=ConfigMapKeyRef.parse(config_map) if config_map else None,
        )

    def to_json(self) -> dict[str, Any]:
        if self.secret is not None:
            return {"secretKeyRef": {"name": self.secret.name, "key": self.secret.key}}
        assert self.config_map is not None
        return {"configMapKeyRef": {"name": self.config_map.name, "key": self.config_map.key}}


@dataclass(frozen=True)
class TlsSpec:
    """``request.tls``: a CA bundle trusted instead of the system roots, a client certificate.

    Everything here names where the material is; the PEM itself is read at send time.
    """

    ca_bundle: ConfigMapKeyRef | None = None
    client_certificate_secret: str | None = None  # a kubernetes.io/tls Secret
    server_name: str | None = None

    @classmethod
    def parse(cls, raw: Json | None) -> TlsSpec | None:
        if not raw:
            return None
        ca = (raw.get("caBundleFrom") or {}).get("configMapKeyRef")
        cert = (raw.get("clientCertificateFrom") or {}).get("secretName")
        name = raw.get("serverName")
        return cls(
            ca_bundle=ConfigMapKeyRef.parse(ca) if ca else None,
            client_certificate_secret=str(cert) if cert else None,
            server_name=str(name) if name else None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.ca_bundle is not None:
            out["caBundleFrom"] = {
                "configMapKeyRef": {"name": self.ca_bundle.name, "key": self.ca_bundle.key}
            }
        if self.client_certificate_secret is not None:
            out["clientCertificateFrom"] = {"secretName": self.client_certificate_secret}
        if self.server_name is not None:
            out["serverName"] = self.server_name
        return out


@dataclass(frozen=True)
class RateLimit:
    """A SearchProvider's ``rateLimit``: requests per second after a burst (token bucket)."""

    requests_per_second: float
    burst: int = 1

    @classmethod
    def parse(cls, raw: Json | None) -> RateLimit | None:
        if not raw or raw.get("requestsPerSecond") is None:
            return None
        return cls(
            requests_per_second=float(raw["requestsPerSecond"]),
            burst=max(int(raw.get("burst", 1)), 1),
        )


@dataclass(frozen=True)
class Header:
    """A request header: a literal ``value`` or one read from a Secret at send time."""

    name: str
    value: str | None = None
    secret: SecretKeyRef | None = None

    @classmethod
    def parse(cls, raw: Json) -> Header:
        source = raw.get("valueFrom") or {}
        ref = source.get("secretKeyRef")
        return cls(
            name=str(raw["name"]),
            value=None if ref else str(raw.get("value", "")),
            secret=SecretKeyRef.parse(ref) if ref else None,
        )

    def to_json(self) -> dict[str, Any]:
        if self.secret:
            return {
                "name": self.name,
                "valueFrom": {"secretKeyRef": {"name": self.secret.name, "key": self.secret.key}},
            }
        return {"name": self.name, "value": self.value or ""}


@dataclass(frozen=True)
class ServiceAccountTokenSource:
    service_account_name: str
    audience: str
    expiration_seconds: int = 600


@dataclass(frozen=True)
class OAuth2ClientCredentials:
    token_url: str
    client_id: SecretKeyRef
    client_secret: SecretKeyRef
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthSpec:
    service_account_token: ServiceAccountTokenSource | None = None
    oauth2_client_credentials: OAuth2ClientCredentials | None = None

    @classmethod
    def parse(cls, raw: Json | None) -> AuthSpec | None:
        if not raw:
            return None
        sa = raw.get("serviceAccountToken")
        oauth = raw.get("oauth2ClientCredentials")
        return cls(
            service_account_token=ServiceAccountTokenSource(
                service_account_name=str(sa["serviceAccountName"]),
                audience=str(sa["audience"]),
                expiration_seconds=int(sa.get("expirationSeconds", 600)),
            )
            if sa
            else None,
            oauth2_client_credentials=OAuth2ClientCredentials(
                token_url=str(oauth["tokenUrl"]),
                client_id=SecretKeyRef.parse(oauth["clientId"]["secretKeyRef"]),
                client_secret=SecretKeyRef.parse(oauth["clientSecret"]["secretKeyRef"]),
                scopes=tuple(oauth.get("scopes", ())),
            )
            if oauth
            else None,
        )


@dataclass(frozen=True)
class RequestSpec:
    url: str
    method: str = "GET"
    headers: tuple[Header, ...] = ()
    body: str | None = None
    auth: AuthSpec | None = None
    body_from: BodySource | None = None
    body_encoding: str = "text"  # or "base64": ``body`` holds bytes
    tls: TlsSpec | None = None

    @classmethod
    def parse(cls, raw: Json) -> RequestSpec:
        return cls(
            url=str(raw["url"]),
            method=str(raw.get("method", "GET")).upper(),
            headers=tuple(Header.parse(h) for h in raw.get("headers", ())),
            body=raw.get("body"),
            auth=AuthSpec.parse(raw.get("auth")),
            body_from=BodySource.parse(raw.get("bodyFrom")),
            body_encoding=str(raw.get("bodyEncoding", "text")),
            tls=TlsSpec.parse(raw.get("tls")),
        )

    def literal_body(self) -> bytes | None:
        """``body`` as the bytes to send; a ``ValueError`` naming the fault if it cannot be.

        The CRD schema already refuses invalid base64; this guards objects it did not check.
        """
        if self.body is None:
            return None
        if self.body_encoding != "base64":
            return self.body.encode()
        try:
            return base64.b64decode(self.body, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("request.body is not valid base64 (bodyEncoding: base64)") from None


@dataclass(frozen=True)
class HttpTaskSpec:
    request: RequestSpec
    deadline_seconds: float = 120.0
    attempt_timeout_seconds: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    async_: AsyncPolicy = field(default_factory=AsyncPolicy)
    max_redirects: int = 5
    response: ResponsePolicy = field(default_factory=ResponsePolicy)
    terminate: bool = False
    # None: the sample's rule (a final 200), whose false is outcome HttpError as before; a
    # condition written in the spec that is false is outcome ConditionNotMet.
    success_condition: str | None = None
    outputs: tuple[Output, ...] = ()

    @property
    def expressions(self) -> tuple[tuple[str, str], ...]:
        """Every CEL expression of the spec, with the field it is in (checked before sending)."""
        found: list[tuple[str, str]] = []
        if self.success_condition is not None:
            found.append(("spec.successCondition", self.success_condition))
        if self.async_.complete_when is not None:
            found.append(("spec.async.completeWhen", self.async_.complete_when))
        found.extend((f"spec.outputs[{o.name}]", o.expression) for o in self.outputs)
        return tuple(found)

    @classmethod
    def parse(cls, raw: Json) -> HttpTaskSpec:
        default_deadline = cls.__dataclass_fields__["deadline_seconds"].default
        default_timeout = cls.__dataclass_fields__["attempt_timeout_seconds"].default
        return cls(
            request=RequestSpec.parse(raw["request"]),
            deadline_seconds=float(raw.get("deadlineSeconds", default_deadline)),
            attempt_timeout_seconds=float(raw.get("attemptTimeoutSeconds", default_timeout)),
            retry=RetryPolicy.parse(raw.get("retry")),
            async_=AsyncPolicy.parse(raw.get("async")),
            max_redirects=int((raw.get("redirects") or {}).get("max", 5)),
            response=ResponsePolicy.parse(raw.get("response")),
            terminate=bool(raw.get("terminate", False)),
            success_condition=_optional_text(raw.get("successCondition")),
            outputs=Output.parse_all(raw.get("outputs")),
        )


@dataclass(frozen=True)
class ProviderSpec:
    """A search site: an inline ``spec.providers`` entry or a SearchProvider's spec."""

    name: str
    url: str
    method: str = "GET"
    headers: tuple[Header, ...] = ()
    attempt_timeout_seconds: float | None = None
    retry: Json | None = None
    response: Json | None = None
    success_condition: str | None = None
    outputs: tuple[Output, ...] = ()
    async_: Json | None = None
    body: str | None = None
    body_encoding: str | None = None
    body_from: BodySource | None = None
    tls: TlsSpec | None = None
    rate_limit: RateLimit | None = None  # SearchProviders only
    # Resolved from a SearchProvider object (not inline): its children carry its name, so
    # the provider's rate limit paces them.
    from_object: bool = False

    @classmethod
    def parse(cls, name: str, raw: Json, *, from_object: bool = False) -> ProviderSpec:
        timeout = raw.get("attemptTimeoutSeconds")
        encoding = raw.get("bodyEncoding")
        return cls(
            success_condition=_optional_text(raw.get("successCondition")),
            outputs=Output.parse_all(raw.get("outputs")),
            async_=raw.get("async"),
            body=raw.get("body"),
            body_encoding=str(encoding) if encoding else None,
            body_from=BodySource.parse(raw.get("bodyFrom")),
            tls=TlsSpec.parse(raw.get("tls")),
            rate_limit=RateLimit.parse(raw.get("rateLimit")) if from_object else None,
            from_object=from_object,
            name=name,
            url=str(raw["url"]),
            method=str(raw.get("method", "GET")).upper(),
            headers=tuple(Header.parse(h) for h in raw.get("headers", ())),
            attempt_timeout_seconds=float(timeout) if timeout is not None else None,
            retry=raw.get("retry"),
            response=raw.get("response"),
        )


@dataclass(frozen=True)
class Overrides:
    """Per-Search tightening of every provider's settings (never loosening)."""

    attempt_timeout_seconds: float | None = None
    max_attempts: int | None = None

    @classmethod
    def parse(cls, raw: Json | None) -> Overrides:
        raw = raw or {}
        timeout = raw.get("attemptTimeoutSeconds")
        attempts = raw.get("maxAttempts")
        return cls(
            attempt_timeout_seconds=float(timeout) if timeout is not None else None,
            max_attempts=int(attempts) if attempts is not None else None,
        )


@dataclass(frozen=True)
class SearchSpec:
    query: str
    providers: tuple[ProviderSpec, ...] = ()
    provider_refs: tuple[str, ...] = ()
    deadline_seconds: float = 300.0
    overrides: Overrides = field(default_factory=Overrides)
    terminate: bool = False
    terminate_reason: str | None = None
    ttl_seconds_after_finished: int | None = None

    @property
    def uses_all_namespace_providers(self) -> bool:
        return not self.providers and not self.provider_refs

    @classmethod
    def parse(cls, raw: Json) -> SearchSpec:
        ttl = raw.get("ttlSecondsAfterFinished")
        default_deadline = cls.__dataclass_fields__["deadline_seconds"].default
        return cls(
            query=str(raw["query"]),
            providers=tuple(ProviderSpec.parse(p["name"], p) for p in raw.get("providers", ())),
            provider_refs=tuple(str(r) for r in raw.get("providerRefs", ())),
            deadline_seconds=float(raw.get("deadlineSeconds", default_deadline)),
            overrides=Overrides.parse(raw.get("overrides")),
            terminate=bool(raw.get("terminate", False)),
            terminate_reason=str(raw["terminateReason"]) if raw.get("terminateReason") else None,
            ttl_seconds_after_finished=int(ttl) if ttl is not None else None,
        )
