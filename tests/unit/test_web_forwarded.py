"""X-Forwarded-* are honoured from trusted proxies only, and only when they hold what they must."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable_search_web.forwarded import (
    ForwardedError,
    parse_address,
    parse_networks,
    resolve,
)

TRUSTED = parse_networks(["10.0.0.0/8", "fd00::/8"])
PROFILE = settings(max_examples=300, derandomize=True, deadline=None)


def origin(peer: str, **headers: str | list[str]) -> tuple[str, str]:
    raw = {
        f"X-Forwarded-{name.title()}": value if isinstance(value, list) else [value]
        for name, value in headers.items()
    }
    found = resolve(peer, "http", "web.internal:8080", raw, TRUSTED)
    return found.base_url, found.client


def test_an_untrusted_peer_is_the_client_and_its_headers_are_ignored() -> None:
    assert origin(
        "198.51.100.7", proto="javascript", host="evil", prefix="//x", **{"for": "1.2.3.4"}
    ) == (
        "http://web.internal:8080",
        "198.51.100.7",
    )


def test_a_trusted_proxy_says_how_the_client_reached_it() -> None:
    assert origin("10.1.2.3", proto="https", host="search.example", prefix="/durable/") == (
        "https://search.example/durable",
        "10.1.2.3",
    )


def test_the_client_is_the_first_untrusted_address_from_the_right() -> None:
    # The client forged "1.1.1.1" on the left; the proxies appended what they saw.
    _, client = origin("10.0.0.1", **{"for": "1.1.1.1, 203.0.113.9, 10.0.0.2"})
    assert client == "203.0.113.9"
    _, client = origin("10.0.0.1", **{"for": "[2001:db8::1]:443, fd00::2"})
    assert client == "2001:db8::1"
    _, client = origin("10.0.0.1", **{"for": "10.0.0.3"})  # all trusted: the leftmost
    assert client == "10.0.0.3"


def test_appended_values_are_read_at_the_outermost_trusted_hop() -> None:
    # lb (10.0.0.2) saw https from the client and appended it; the ingress appended http.
    base, _ = origin(
        "10.0.0.1", proto="javascript, https, http", **{"for": "203.0.113.9, 10.0.0.2"}
    )
    assert base.startswith("https://")
    base, _ = origin("10.0.0.1", proto=["https"], **{"for": "203.0.113.9, 10.0.0.2"})
    assert base.startswith("https://")  # a proxy that overwrites writes one value


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("proto", "javascript"),
        ("proto", "ftp"),
        ("host", "evil.example/path"),
        ("host", "a b"),
        ("host", "[::1"),
        ("host", "[zz::1]"),
        ("host", "example.org:99999"),
        ("host", "user@example.org"),
        ("prefix", "//evil.example"),
        ("prefix", "/../x"),
        ("prefix", "/%2e%2e/x"),
        ("prefix", "/a%2Fb"),
        ("prefix", "x"),
        ("prefix", "/a b"),
        ("prefix", "/a?b"),
        ("for", "not-an-address"),
    ],
)
def test_a_malformed_value_from_a_trusted_proxy_is_refused_by_name(header: str, value: str) -> None:
    with pytest.raises(ForwardedError) as raised:
        origin("10.0.0.1", **{header: value})
    assert raised.value.header == f"X-Forwarded-{header.title()}"


def test_a_malformed_host_header_is_refused_even_without_a_proxy() -> None:
    with pytest.raises(ForwardedError):
        resolve("198.51.100.7", "http", "evil/x", {}, TRUSTED)


def test_ipv4_mapped_and_zoned_addresses_are_judged_as_themselves() -> None:
    assert str(parse_address("::ffff:10.0.0.1")) == "10.0.0.1"
    assert str(parse_address("fe80::1%eth0")) == "fe80::1"
    assert str(parse_address("10.0.0.1:8080")) == "10.0.0.1"
    assert parse_address("unknown") is None
    base, _ = origin("::ffff:10.0.0.1", proto="https")
    assert base.startswith("https://")


def test_trusted_proxy_ranges_must_be_networks() -> None:
    with pytest.raises(ValueError, match="--trusted-proxy"):
        parse_networks(["10.0.0.1/8"])
    with pytest.raises(ValueError, match="--trusted-proxy"):
        parse_networks(["proxy.example"])


@PROFILE
@given(
    st.dictionaries(
        st.sampled_from(["proto", "host", "prefix", "for"]),
        st.text(max_size=40),
        max_size=4,
    )
)
def test_whatever_a_trusted_proxy_sends_is_a_safe_url_or_a_refusal(headers: dict[str, str]) -> None:
    try:
        base, client = origin("10.0.0.1", **headers)
    except ForwardedError:
        return
    scheme, _, rest = base.partition("://")
    assert scheme in ("http", "https")
    assert "/" not in rest.split("/", 1)[0] and not rest.startswith("/")
    assert all(ord(c) > 32 and c not in "<>\"'`\\" for c in base)
    assert parse_address(client) is not None
