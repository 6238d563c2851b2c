"""Request capabilities beyond the sample, end to end: bodies from Secrets and ConfigMaps, binary
bodies, per-task TLS (a private CA, mutual TLS, a server name), a SearchProvider's rate limit and
the holds a 429 + Retry-After puts on an origin.

Every site is a real loopback server recording what arrives (``tests/support/recording.py``);
the TLS site has its own CA and refuses clients without a certificate it issued.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from durable_search.api.status import Body
from tests.support import recording
from tests.support.demo import DemoSite
from tests.support.searches import Searches, create_provider
from tests.support.tasks import create_task, get_task, wait_task
from tests.support.tls import ScratchCa, server_context
from tests.support.waiting import eventually

SECRET_BODY = b'{"apiKey": "body-secret-4242", "query": "caf\xc3\xa9"}'
CONFIG_MAP_BODY = "grant_type=client_credentials&audience=config-map-body-77"


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    running = DemoSite(app=recording.create_app).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def other_site() -> Iterator[DemoSite]:
    running = DemoSite(app=recording.create_app).start()
    try:
        yield running
    finally:
        running.stop()


def received(site: DemoSite, key: str) -> list[recording.Received]:
    return list(site.application[recording.STATE].requests.get(key, ()))


def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def make_secret(
    api_client: client.ApiClient,
    namespace: str,
    name: str,
    data: dict[str, bytes],
    kind: str = "Opaque",
) -> None:
    core(api_client).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name),
            type=kind,
            data={k: base64.b64encode(v).decode() for k, v in data.items()},
        ),
    )


def make_config_map(
    api_client: client.ApiClient, namespace: str, name: str, data: dict[str, str]
) -> None:
    core(api_client).create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)
    )


def refusal(call: Any) -> str:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 422, caught.value.body
    return str(json.loads(caught.value.body)["message"])


# -- bodies ---------------------------------------------------------------------------------


def test_a_body_from_a_secret_or_a_configmap_is_sent_as_stored_and_never_kept(
    api_client: client.ApiClient, namespace: str, operator: object, site: DemoSite
) -> None:
    make_secret(api_client, namespace, "payload", {"body": SECRET_BODY})
    make_config_map(api_client, namespace, "form", {"body": CONFIG_MAP_BODY})
    sources = {
        "from-secret": {"secretKeyRef": {"name": "payload", "key": "body"}},
        "from-config-map": {"configMapKeyRef": {"name": "form", "key": "body"}},
    }
    for name, source in sources.items():
        create_task(
            api_client,
            namespace,
            name,
            {
                "request": {
                    "method": "POST",
                    "url": f"{site.base}/record?key={namespace}-{name}",
                    "headers": [{"name": "Content-Type", "value": "application/json"}],
                    "bodyFrom": source,
                },
                "retry": {"maxAttempts": 1},
            },
        )
    for name, expected in (
        ("from-secret", SECRET_BODY),
        ("from-config-map", CONFIG_MAP_BODY.encode()),
    ):
        task = wait_task(api_client, namespace, name)
        status = task["status"]
        assert status["outcome"] == "Succeeded", status
        # The site got the body byte for byte...
        assert [r.body for r in received(site, f"{namespace}-{name}")] == [expected]
        # ...and echoed it back; what is kept says [redacted] and never holds the body.
        assert status["response"]["body"] == "you sent: [redacted]", status["response"]
        assert expected.decode() not in json.dumps(task, ensure_ascii=False)


def test_a_base64_body_arrives_byte_exact_and_invalid_base64_is_refused(
    api_client: client.ApiClient, namespace: str, operator: object, site: DemoSite
) -> None:
    payload = bytes(range(256)) * 3 + b"\x00\xff\xfe"
    create_task(
        api_client,
        namespace,
        "binary",
        {
            "request": {
                "method": "PUT",
                "url": f"{site.base}/record?key={namespace}-binary",
                "headers": [{"name": "Content-Type", "value": "application/octet-stream"}],
                "body": base64.b64encode(payload).decode(),
                "bodyEncoding": "base64",
            },
        },
    )
    assert wait_task(api_client, namespace, "binary")["status"]["outcome"] == "Succeeded"
    arrived = received(site, f"{namespace}-binary")
    assert [(r.method, r.body) for r in arrived] == [("PUT", payload)]

    bad = {"request": {"url": f"{site.base}/x", "body": "not base64!", "bodyEncoding": "base64"}}
    assert "body is not valid base64" in refusal(
        lambda: create_task(api_client, namespace, "bad", bad)
    )
    both = {
        "request": {
            "url": f"{site.base}/x",
            "body": "x",
            "bodyFrom": {"secretKeyRef": {"name": "payload", "key": "body"}},
        }
    }
    assert "give at most one of body or bodyFrom" in refusal(
        lambda: create_task(api_client, namespace, "both", both)
    )


def test_a_missing_body_source_ends_invalid_once_without_a_request(
    api_client: client.ApiClient, namespace: str, operator: object, site: DemoSite
) -> None:
    create_task(
        api_client,
        namespace,
        "missing",
        {
            "request": {
                "method": "POST",
                "url": f"{site.base}/record?key={namespace}-missing",
                "bodyFrom": {"configMapKeyRef": {"name": "nowhere", "key": "body"}},
            }
        },
    )
    status = wait_task(api_client, namespace, "missing")["status"]
    assert status["outcome"] == "Invalid", status
    assert status["conditions"][0]["reason"] == "InvalidRequest"
    assert 'cannot read ConfigMap "nowhere"' in status["message"]
    assert received(site, f"{namespace}-missing") == []


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> ScratchCa:
    return ScratchCa("durable-search-test-ca")


@pytest.fixture(scope="module")
def tls_site(authority: ScratchCa, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    """An https site whose certificate names only site.test, requiring a client certificate."""
    server = authority.issue("site.test", dns=("site.test",), server=True)
    context = server_context(server, authority, tmp_path_factory.mktemp("tls-site"))
    running = DemoSite(app=recording.create_app, ssl_context=context).start()
    try:
        yield running
    finally:
        running.stop()


def tls_task(url: str, tls: Body) -> Body:
    return {
        "request": {"url": url, "tls": tls},
        "retry": {"maxAttempts": 1},
        "attemptTimeoutSeconds": 10,
    }


def test_mutual_tls_with_a_private_ca_succeeds_and_fails_clearly_without_what_it_needs(
    api_client: client.ApiClient,
    namespace: str,
    operator: object,
    tls_site: DemoSite,
    authority: ScratchCa,
) -> None:
    client_cert = authority.issue("tenant-a", server=False)
    make_secret(
        api_client,
        namespace,
        "client-cert",
        {"tls.crt": client_cert.cert_pem, "tls.key": client_cert.key_pem},
        kind="kubernetes.io/tls",
    )
    make_config_map(
        api_client,
        namespace,
        "cas",
        {
            "right": authority.pem,
            "wrong": ScratchCa("someone-else").pem,
            "broken": "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n",
        },
    )

    def ca(key: str) -> Body:
        return {"configMapKeyRef": {"name": "cas", "key": key}}

    cert = {"secretName": "client-cert"}
    cases = {
        "right": {"caBundleFrom": ca("right"), "clientCertificateFrom": cert},
        "no-client-cert": {"caBundleFrom": ca("right")},
        "wrong-ca": {"caBundleFrom": ca("wrong"), "clientCertificateFrom": cert},
        "system-roots": {"clientCertificateFrom": cert},
        "broken-ca": {"caBundleFrom": ca("broken"), "clientCertificateFrom": cert},
        "opaque-cert": {"caBundleFrom": ca("right"), "clientCertificateFrom": {"secretName": "x"}},
        "no-such-cert": {"caBundleFrom": ca("right"), "clientCertificateFrom": {"secretName": "y"}},
    }
    make_secret(api_client, namespace, "x", {"tls.crt": b"c", "tls.key": b"k"})
    for name, tls in cases.items():
        create_task(
            api_client,
            namespace,
            name,
            tls_task(f"{tls_site.base}/record?key={namespace}-{name}", tls),
        )
    # The certificate names site.test, not 127.0.0.1: serverName says what to verify.
    create_task(
        api_client,
        namespace,
        "named",
        tls_task(
            f"{tls_site.base}/record?key={namespace}-named",
            {**cases["right"], "serverName": "site.test"},
        ),
    )
    results = {name: wait_task(api_client, namespace, name)["status"] for name in [*cases, "named"]}

    assert results["named"]["outcome"] == "Succeeded", results["named"]
    assert len(received(tls_site, f"{namespace}-named")) == 1
    # Right CA and certificate, but the URL's host is not a name the certificate holds.
    assert results["right"]["outcome"] == "TransportError", results["right"]
    assert "TLS handshake failed" in results["right"]["message"]
    assert "127.0.0.1" in results["right"]["message"], results["right"]["message"]
    for name in ("no-client-cert", "wrong-ca", "system-roots"):
        assert results[name]["outcome"] == "TransportError", (name, results[name])
    for name in ("wrong-ca", "system-roots"):
        assert "CERTIFICATE_VERIFY_FAILED" in results[name]["message"], results[name]
    for name, reason in (
        ("broken-ca", 'caBundleFrom ConfigMap "cas" key "broken" is not a usable PEM'),
        ("opaque-cert", "is of type 'Opaque', not kubernetes.io/tls"),
        ("no-such-cert", 'cannot read Secret "y"'),
    ):
        assert results[name]["outcome"] == "Invalid", (name, results[name])
        assert results[name]["conditions"][0]["reason"] == "InvalidRequest"
        assert reason in results[name]["message"], (name, results[name]["message"])
    for name in ("right", "no-client-cert", "wrong-ca", "system-roots", "broken-ca"):
        assert received(tls_site, f"{namespace}-{name}") == [], name
    for status in results.values():
        assert "PRIVATE KEY" not in json.dumps(status)


def test_mutual_tls_without_the_server_name_but_with_the_right_certificate_name(
    api_client: client.ApiClient,
    namespace: str,
    operator: object,
    authority: ScratchCa,
    tmp_path: Path,
) -> None:
    """The client certificate is what the site requires: with it, the request arrives."""
    server = authority.issue("loopback", ips=("127.0.0.1",), server=True)
    site = DemoSite(
        app=recording.create_app, ssl_context=server_context(server, authority, tmp_path)
    ).start()
    try:
        client_cert = authority.issue("tenant-b", server=False)
        make_secret(
            api_client,
            namespace,
            "pair",
            {"tls.crt": client_cert.cert_pem, "tls.key": client_cert.key_pem},
            kind="kubernetes.io/tls",
        )
        make_config_map(api_client, namespace, "ca", {"ca.crt": authority.pem})
        ca = {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}
        with_cert = {"caBundleFrom": ca, "clientCertificateFrom": {"secretName": "pair"}}
        create_task(api_client, namespace, "with", tls_task(f"{site.base}/record?key=w", with_cert))
        create_task(
            api_client,
            namespace,
            "without",
            tls_task(f"{site.base}/record?key=wo", {"caBundleFrom": ca}),
        )
        assert wait_task(api_client, namespace, "with")["status"]["outcome"] == "Succeeded"
        without = wait_task(api_client, namespace, "without")["status"]
        assert without["outcome"] == "TransportError", without
        assert [len(received(site, k)) for k in ("w", "wo")] == [1, 0]
    finally:
        site.stop()


# -- pacing ---------------------------------------------------------------------------------


def test_a_providers_rate_limit_spaces_the_requests_of_many_searches(
    api_client: client.ApiClient, namespace: str, searches: Searches, site: DemoSite
) -> None:
    key = f"{namespace}-paced"
    create_provider(
        api_client,
        namespace,
        "paced",
        f"{site.base}/record?key={key}&q={{query}}",
        rateLimit={"requestsPerSecond": 2, "burst": 1},
    )
    names = [searches.create({"query": f"q{i}", "providerRefs": ["paced"]}) for i in range(8)]
    for name in names:
        body = searches.wait(name, timeout=30)
        assert body["status"]["phase"] == "Completed", body["status"]
        result = searches.result(body, "paced")
        # A wait for the rate limit is not an attempt.
        assert (result["outcome"], result["attempts"]) == ("Succeeded", 1), result
    times = sorted(r.at for r in received(site, key))
    assert len(times) == 8
    offsets = [round(t - times[0], 3) for t in times]
    # 2 per second after a burst of 1: the i-th request no sooner than i * 0.5 s after the
    # first (a late wake-up shortens one gap, never the total), within a scheduling tolerance.
    for i, offset in enumerate(offsets):
        assert offset >= i * 0.5 - 0.1, offsets
    # And not much slower either: the operator waits for the bucket, not for a poll interval.
    assert offsets[-1] < 7 * 0.5 + 2.0, offsets


@pytest.mark.parametrize("code", [429, 503])
def test_a_429_or_503_with_retry_after_holds_back_the_namespaces_other_tasks_to_that_origin(
    api_client: client.ApiClient,
    namespace: str,
    operator: object,
    site: DemoSite,
    other_site: DemoSite,
    code: int,
) -> None:
    busy = f"{namespace}-busy"
    create_task(
        api_client,
        namespace,
        "first",
        {"request": {"url": f"{site.base}/busy?key={busy}&after=4&status={code}"}},
    )
    eventually(lambda: bool(received(site, busy)), timeout=20, message="the first request arrives")
    answered = received(site, busy)[0].at
    # Tasks created after the 429 arrived: same origin, another origin, a short maxInterval.
    specs = {
        "same-origin": {"request": {"url": f"{site.base}/record?key={namespace}-same"}},
        "other-origin": {"request": {"url": f"{other_site.base}/record?key={namespace}-other"}},
        "short-max-interval": {
            "request": {"url": f"{site.base}/record?key={namespace}-short"},
            "retry": {"maxIntervalSeconds": 1},
        },
    }
    for name, spec in specs.items():
        create_task(api_client, namespace, name, spec)
    for name in ["first", *specs]:
        status = wait_task(api_client, namespace, name, timeout=30)["status"]
        assert status["outcome"] == "Succeeded", (name, status)
    first = wait_task(api_client, namespace, "first")["status"]
    assert first["attempts"] == 2  # the 429 or 503, then the retry after Retry-After

    def arrival(site: DemoSite, key: str) -> float:
        [one] = received(site, key)
        return one.at - answered

    same = arrival(site, f"{namespace}-same")
    other = arrival(other_site, f"{namespace}-other")
    short = arrival(site, f"{namespace}-short")
    assert same >= 3.8, f"same origin sent {same:.2f}s after the {code} (Retry-After: 4)"
    assert other < 2.5, f"another origin was held back too: {other:.2f}s"
    assert 0.8 <= short < 3.0, f"a hold is clamped to maxIntervalSeconds (1): {short:.2f}s"
    # Held back, but not an attempt more, and the status says nothing of it.
    for name in specs:
        task = get_task(api_client, namespace, name)
        assert task["status"]["attempts"] == 1, task["status"]
