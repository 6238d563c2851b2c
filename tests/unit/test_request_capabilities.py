"""Request capabilities in pure code: parsing, the fan-out's copy, TLS contexts, the executor."""

from __future__ import annotations

import base64
import datetime as dt

import httpx
import pytest

from durable_search.api.constants import ANNOTATION_SEARCH_PROVIDER
from durable_search.api.models import (
    HttpTaskSpec,
    ProviderSpec,
    RequestSpec,
    ResponsePolicy,
    SearchSpec,
)
from durable_search.engine.fanout import SearchRef, child_manifest
from durable_search.engine.httptask import FailureKind, NoAnswer
from durable_search.errors import InvalidRequestError
from durable_search.http.client import IncomingResponse, OutgoingRequest
from durable_search.http.executor import PreparedRequest, origin_of, perform
from durable_search.http.tls import TlsMaterial, build_context
from tests.support.tls import ScratchCa

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
REF = SearchRef("s1", "ns", "uid-1")


def test_a_base64_body_is_decoded_and_a_text_body_encoded() -> None:
    raw = bytes(range(256))
    spec = RequestSpec.parse(
        {"url": "http://a/", "body": base64.b64encode(raw).decode(), "bodyEncoding": "base64"}
    )
    assert spec.literal_body() == raw
    assert RequestSpec.parse({"url": "http://a/", "body": "café"}).literal_body() == "café".encode()
    assert RequestSpec.parse({"url": "http://a/"}).literal_body() is None
    with pytest.raises(ValueError, match="not valid base64"):
        RequestSpec.parse(
            {"url": "http://a/", "body": "@@", "bodyEncoding": "base64"}
        ).literal_body()


def test_body_from_and_tls_parse() -> None:
    spec = HttpTaskSpec.parse(
        {
            "request": {
                "url": "https://a/",
                "bodyFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}},
                "tls": {
                    "caBundleFrom": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}},
                    "clientCertificateFrom": {"secretName": "pair"},
                    "serverName": "api.internal",
                },
            }
        }
    )
    request = spec.request
    assert request.body_from is not None and request.body_from.config_map is not None
    assert request.body_from.config_map.name == "cm"
    assert request.tls is not None
    assert request.tls.client_certificate_secret == "pair"
    assert request.tls.server_name == "api.internal"


def test_children_carry_the_providers_body_tls_and_name_but_only_objects_are_rate_limited() -> None:
    fields = {
        "url": "https://w/?q={query}",
        "method": "POST",
        "bodyFrom": {"secretKeyRef": {"name": "payload", "key": "body"}},
        "tls": {"clientCertificateFrom": {"secretName": "pair"}},
        "rateLimit": {"requestsPerSecond": 2, "burst": 1},
    }
    spec = SearchSpec.parse({"query": "q"})
    from_object = ProviderSpec.parse("wiki", fields, from_object=True)
    inline = ProviderSpec.parse("wiki", fields)
    assert from_object.rate_limit is not None and from_object.rate_limit.requests_per_second == 2
    assert inline.rate_limit is None
    child = child_manifest(REF, spec, from_object, started=NOW, now=NOW)
    request = child["spec"]["request"]
    assert request["bodyFrom"] == fields["bodyFrom"]
    assert request["tls"] == fields["tls"]
    assert "rateLimit" not in child["spec"]
    assert child["metadata"]["annotations"] == {ANNOTATION_SEARCH_PROVIDER: "wiki"}
    assert "annotations" not in child_manifest(REF, spec, inline, started=NOW, now=NOW)["metadata"]


def test_a_tls_context_trusts_only_the_given_ca_and_loads_the_client_pair() -> None:
    authority = ScratchCa("unit-ca")
    pair = authority.issue("client", server=False)
    context = build_context(
        TlsMaterial(ca_pem=authority.pem, cert_pem=pair.cert_pem, key_pem=pair.key_pem)
    )
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "unit-ca"),),)]


@pytest.mark.parametrize(
    ("material", "message"),
    [
        (TlsMaterial(ca_pem="hello"), "holds no PEM certificate"),
        (
            TlsMaterial(ca_pem="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            "is not a usable PEM certificate bundle",
        ),
        (TlsMaterial(cert_pem=b"x"), "needs both tls.crt and tls.key"),
        (TlsMaterial(cert_pem=b"x", key_pem=b"y"), "is not a usable PEM certificate and"),
    ],
)
def test_broken_tls_material_is_an_invalid_request_that_says_which_part(
    material: TlsMaterial, message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        build_context(material)


def test_material_is_keyed_by_content_and_never_printed() -> None:
    key = b"-----BEGIN PRIVATE KEY-----"
    one = TlsMaterial(ca_pem="a", key_pem=key)
    assert one.fingerprint == TlsMaterial(ca_pem="a", key_pem=key).fingerprint
    assert one.fingerprint != TlsMaterial(ca_pem="b", key_pem=key).fingerprint
    assert "PRIVATE" not in repr(one)


class Redirecting:
    """Answers the first URL with a 307 to another origin; records what it was sent."""

    def __init__(self, to: str) -> None:
        self.to = to
        self.sent: list[OutgoingRequest] = []

    async def send(
        self, request: OutgoingRequest, *, timeout: float, max_body_bytes: int
    ) -> IncomingResponse:
        self.sent.append(request)
        if request.url == self.to:
            return IncomingResponse(200, "OK", httpx.Headers(), b"ok", False, None)
        headers = httpx.Headers([("location", self.to)])
        return IncomingResponse(307, "Temporary Redirect", headers, b"", False, None)

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("same_origin", [True, False])
async def test_a_body_from_a_secret_never_follows_a_redirect_to_another_origin(
    same_origin: bool,
) -> None:
    target = "https://a.example/next" if same_origin else "https://evil.example/next"
    site = Redirecting(target)
    tls = TlsMaterial(server_name="a.example")
    prepared = PreparedRequest(
        "POST",
        "https://a.example/",
        (),
        b"secret body",
        origin_of("https://a.example/"),
        body_secret=True,
        tls=tls,
    )
    exchange = await perform(
        site,
        prepared,
        timeout=5,
        max_redirects=5,
        response_policy=ResponsePolicy(),
        clock=lambda: NOW,
    )
    if same_origin:
        assert [r.body for r in site.sent] == [b"secret body", b"secret body"]
        assert [r.tls for r in site.sent] == [tls, tls]
    else:
        assert isinstance(exchange.result, NoAnswer)
        assert exchange.result.kind is FailureKind.BLOCKED
        assert [r.url for r in site.sent] == ["https://a.example/"]


async def test_a_body_from_a_secret_echoed_back_is_redacted() -> None:
    class Echo(Redirecting):
        async def send(
            self, request: OutgoingRequest, *, timeout: float, max_body_bytes: int
        ) -> IncomingResponse:
            return IncomingResponse(200, "OK", httpx.Headers(), b"got " + (request.body or b""),
                                    False, None)  # fmt: skip

    prepared = PreparedRequest(
        "POST", "http://a/", (), b"the-body-secret", origin_of("http://a/"), body_secret=True
    )
    exchange = await perform(
        Echo(""),
        prepared,
        timeout=5,
        max_redirects=0,
        response_policy=ResponsePolicy(),
        clock=lambda: NOW,
    )
    assert exchange.result.body.text == "got [redacted]"  # type: ignore[union-attr]
