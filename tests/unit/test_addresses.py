"""The SSRF guard's address table: every non-global address is refused unless opened."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_search.http.addresses import AddressPolicy, embedded_ipv4, special_range

DENY = AddressPolicy()


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "127.0.0.1",
        "127.0.0.2",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "255.255.255.255",
        "198.18.0.1",
        "192.0.0.170",
        "192.0.2.1",
        "::",
        "::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
        "2002:a00:1::1",
        "2001:db8::1",
        "2001::1",
        "::127.0.0.1",
        "64:ff9b:1::1",
        "100::1",
        "::ffff:0:7f00:1",  # IPv4-translated 127.0.0.1
        "::ffff:0:a9fe:a9fe",  # IPv4-translated 169.254.169.254
        "1::1",  # outside 2000::/3: never global
        "4000::1",
        "e000::1",
    ],
)
def test_special_addresses_are_refused_by_default(address: str) -> None:
    refusal = DENY.refusal(ipaddress.ip_address(address))
    assert refusal is not None
    assert address.split("%")[0] in refusal or str(ipaddress.ip_address(address)) in refusal


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "1.1.1.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_global_addresses_are_allowed(address: str) -> None:
    assert DENY.refusal(ipaddress.ip_address(address)) is None


def test_allow_cidr_opens_exactly_its_range() -> None:
    policy = AddressPolicy.from_strings(["127.0.0.1/32"])
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.2")) is not None
    assert policy.refusal(ipaddress.ip_address("10.0.0.1")) is not None


def test_refusals_say_why() -> None:
    assert special_range(ipaddress.ip_address("169.254.169.254")) == "link-local (cloud metadata)"
    message = DENY.refusal(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))
    assert message is not None and "embeds 169.254.169.254" in message


GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


@given(st.ip_addresses(v=6))
def test_no_ipv6_address_outside_2000_3_is_global_unless_it_embeds_a_global_ipv4(
    address: ipaddress.IPv6Address,
) -> None:
    inner = embedded_ipv4(address)
    if address not in GLOBAL_UNICAST and inner is None:
        assert special_range(address) is not None
    if inner is not None:
        assert (special_range(address) is None) == (special_range(inner) is None)


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_and_its_mapped_and_translated_forms_are_judged_alike(
    address: ipaddress.IPv4Address,
) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    translated = ipaddress.IPv6Address((0xFFFF << 32) | int(address))
    verdict = DENY.refusal(address) is None
    assert (DENY.refusal(mapped) is None) == verdict
    assert (DENY.refusal(translated) is None) == verdict
