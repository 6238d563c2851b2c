"""Credentials are withheld where a policy says so, before any I/O; tokens live as minted."""

from __future__ import annotations

import datetime as dt

import pytest

from durable_search.api.models import RequestSpec
from durable_search.controller.admission import AdmissionGuard, token_audiences
from durable_search.controller.credentials import Credentials, TokenCache
from durable_search.errors import BlockedError
from durable_search.http.addresses import AddressPolicy
from durable_search.http.client import ClientSettings
from tests.unit.test_task_worker import FakeHttp

OAUTH2 = {
    "tokenUrl": "http://tokens.example/token",
    "clientId": {"secretKeyRef": {"name": "c", "key": "id"}},
    "clientSecret": {"secretKeyRef": {"name": "c", "key": "secret"}},
}


async def credentials(*, installed: bool, settings: ClientSettings | None = None) -> Credentials:
    guard = AdmissionGuard(None)
    guard.installed = installed
    guard.api_audiences = frozenset({"https://kubernetes.default.svc"})
    objects = FakeObjects({}, {})  # never asked: every case here is refused before any read
    return Credentials(objects, FakeHttp(), settings or ClientSettings(), guard)  # type: ignore[arg-type]


def request(**fields: object) -> RequestSpec:
    return RequestSpec.parse({"url": "https://site.example/", **fields})


async def test_without_the_admission_policies_no_secret_is_read_and_no_token_minted() -> None:
    creds = await credentials(installed=False)
    secret_header = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    token = {"serviceAccountToken": {"serviceAccountName": "a", "audience": "https://api.example"}}
    for spec in (request(headers=secret_header), request(auth=token)):
        with pytest.raises(BlockedError, match="admission policies not installed"):
            await creds.headers("ns", spec)
    assert (await creds.headers("ns", request(headers=[{"name": "X", "value": "v"}])))[
        0
    ].value == "v"


async def test_no_token_is_minted_for_the_api_servers_own_audience() -> None:
    creds = await credentials(installed=True)
    token = {
        "serviceAccountToken": {
            "serviceAccountName": "a",
            "audience": "https://kubernetes.default.svc",
        }
    }
    with pytest.raises(BlockedError, match="never minted"):
        await creds.headers("ns", request(auth=token))


async def test_plain_http_token_urls_get_client_secrets_only_where_the_allow_list_opens_them() -> (
    None
):
    creds = await credentials(installed=True)
    with pytest.raises(BlockedError, match="only sent over https"):
        await creds.headers("ns", request(auth={"oauth2ClientCredentials": OAUTH2}))
    opened = ClientSettings(policy=AddressPolicy.from_strings(["127.0.0.0/8"]))
    assert opened.opens("http://127.0.0.1:9/token")
    assert not opened.opens("http://tokens.example/token")
    assert ClientSettings(allow_hosts=frozenset({"tokens.example"})).opens(OAUTH2["tokenUrl"])  # type: ignore[arg-type]


def test_audiences_are_read_from_a_tokens_aud_claim() -> None:
    # header.payload.signature, the payload {"aud": ["https://kubernetes.default.svc"]}
    token = "e30.eyJhdWQiOlsiaHR0cHM6Ly9rdWJlcm5ldGVzLmRlZmF1bHQuc3ZjIl19.sig"
    assert token_audiences(token) == {"https://kubernetes.default.svc"}
    assert token_audiences("not a token") == frozenset()


class FakeObjects:
    """Secrets and ConfigMaps by name, as the API answers them (``data`` base64 for Secrets)."""

    def __init__(self, secrets: dict[str, dict[str, object]], maps: dict[str, object]) -> None:
        self.secrets = secrets
        self.maps = maps

    async def read_secret(self, namespace: str, name: str) -> dict[str, object]:
        from durable_search.errors import NotFoundError

        if name not in self.secrets:
            raise NotFoundError("secrets not found")
        return self.secrets[name]

    async def read_config_map(self, namespace: str, name: str) -> dict[str, object]:
        from durable_search.errors import NotFoundError

        if name not in self.maps:
            raise NotFoundError("configmaps not found")
        return self.maps[name]  # type: ignore[return-value]


def b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


PAIR = {"tls.crt": b64(b"C"), "tls.key": b64(b"K")}


async def resolving(installed: bool = True) -> Credentials:
    guard = AdmissionGuard(None)
    guard.installed = installed
    objects = FakeObjects(
        {
            "payload": {"data": {"body": b64(b"\x00binary\xff")}},
            "pair": {"type": "kubernetes.io/tls", "data": PAIR},
            "opaque": {"type": "Opaque", "data": PAIR},
        },
        {"cm": {"data": {"text": "café"}, "binaryData": {"bin": b64(b"\x01\x02")}}},
    )
    return Credentials(objects, FakeHttp(), ClientSettings(), guard)  # type: ignore[arg-type]


async def test_bodies_come_from_secrets_and_configmaps_as_stored_and_are_marked() -> None:
    from durable_search.errors import InvalidRequestError

    creds = await resolving()

    def body_from(**source: object) -> RequestSpec:
        return request(bodyFrom=source)

    assert await creds.body("ns", body_from(secretKeyRef={"name": "payload", "key": "body"})) == (
        b"\x00binary\xff",
        True,
    )
    text = body_from(configMapKeyRef={"name": "cm", "key": "text"})
    assert await creds.body("ns", text) == ("café".encode(), True)
    binary = body_from(configMapKeyRef={"name": "cm", "key": "bin"})
    assert await creds.body("ns", binary) == (b"\x01\x02", True)
    assert await creds.body("ns", request(body="plain")) == (b"plain", False)
    for spec, message in (
        (body_from(configMapKeyRef={"name": "cm", "key": "nope"}), 'has no key "nope"'),
        (body_from(configMapKeyRef={"name": "gone", "key": "k"}), 'cannot read ConfigMap "gone"'),
        (request(body="%%", bodyEncoding="base64"), "not valid base64"),
    ):
        with pytest.raises(InvalidRequestError, match=message):
            await creds.body("ns", spec)
    with pytest.raises(BlockedError, match="admission policies not installed"):
        await (await resolving(installed=False)).body("ns", text)


async def test_tls_material_is_read_from_a_tls_secret_and_a_configmap() -> None:
    from durable_search.api.models import TlsSpec
    from durable_search.errors import InvalidRequestError

    creds = await resolving()
    spec = TlsSpec.parse(
        {
            "caBundleFrom": {"configMapKeyRef": {"name": "cm", "key": "text"}},
            "clientCertificateFrom": {"secretName": "pair"},
            "serverName": "api.internal",
        }
    )
    assert spec is not None
    with pytest.raises(InvalidRequestError, match="is not PEM text"):
        await creds.tls("ns", spec)  # "café" is not ASCII
    pair_only = TlsSpec(client_certificate_secret="pair", server_name="api.internal")
    material = await creds.tls("ns", pair_only)
    assert (material.cert_pem, material.key_pem, material.server_name) == (
        b"C",
        b"K",
        "api.internal",
    )
    with pytest.raises(InvalidRequestError, match=r"not kubernetes\.io/tls"):
        await creds.tls("ns", TlsSpec(client_certificate_secret="opaque"))


class FakeTokenRequests:
    """TokenRequests answered with one expiry timestamp, each with a new token."""

    def __init__(self, expires: str) -> None:
        self.expires = expires
        self.minted = 0

    async def request_token(
        self, namespace: str, account: str, audiences: list[str], seconds: int
    ) -> dict[str, object]:
        self.minted += 1
        return {"status": {"token": f"t{self.minted}", "expirationTimestamp": self.expires}}


async def test_a_minted_tokens_lifetime_is_reckoned_on_the_injected_clock() -> None:
    wall = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    api = FakeTokenRequests("2031-01-01T00:01:40Z")  # 100 s after the clock's now
    creds = Credentials(
        api,  # type: ignore[arg-type]
        FakeHttp(),
        ClientSettings(),
        AdmissionGuard(None),
        clock=lambda: wall,
    )
    monotonic = [0.0]
    creds.tokens = TokenCache(clock=lambda: monotonic[0])
    creds.identity = ("ns", "operator")
    assert await creds.operator_token("durable-search-web") == "t1"
    monotonic[0] = 89.0  # refreshed a tenth of its life (10 s) before it ends
    assert await creds.operator_token("durable-search-web") == "t1"
    monotonic[0] = 91.0
    assert await creds.operator_token("durable-search-web") == "t2"
