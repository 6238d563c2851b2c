"""Credentials are withheld where a policy says so, before any I/O."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client as k8s

from durable_search.api.models import RequestSpec
from durable_search.controller.admission import AdmissionGuard, token_audiences
from durable_search.controller.credentials import Credentials
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
    return Credentials(k8s.ApiClient(), FakeHttp(), settings or ClientSettings(), guard)


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
